"""Repository-wide pytest hooks.

- Notebooks run by nbval: print each notebook's wall time (setup + all cells) at the end,
  flagged when over the ci-profile budget.
- Labs (``labs/*.ipynb``): a cell may raise only ``NotImplementedError`` (a stub the student
  has not filled yet); any other exception fails the cell, even where nbval's
  ``raises-exception`` tag would let it pass.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

NOTEBOOK_BUDGET_S = 90.0
_NB_TIMES: dict[str, float] = defaultdict(float)


def _notebook_of(nodeid: str) -> str | None:
    path = nodeid.split("::", 1)[0]
    return path if path.endswith(".ipynb") else None


def pytest_runtest_logreport(report):
    nb = _notebook_of(report.nodeid)
    if nb is not None:
        _NB_TIMES[nb] += report.duration


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.passed:
        return
    if "labs" not in Path(str(getattr(item, "path", ""))).parts:
        return
    for out in getattr(item, "test_outputs", None) or []:
        if out.get("output_type") == "error" and out.get("ename") != "NotImplementedError":
            rep.outcome = "failed"
            rep.longrepr = (
                f"a lab cell raised {out.get('ename')}: {out.get('evalue')}\n"
                "labs may raise only NotImplementedError (a stub not filled in yet); make the cell "
                "independent of earlier stubs or have it call the student's function itself."
            )
            return


def pytest_terminal_summary(terminalreporter):
    if not _NB_TIMES:
        return
    tr = terminalreporter
    tr.section("notebook times")
    total = 0.0
    for nb, t in sorted(_NB_TIMES.items()):
        total += t
        flag = "  <-- OVER the 90 s ci budget" if t > NOTEBOOK_BUDGET_S else ""
        tr.write_line(f"{t:7.1f} s  {nb}{flag}")
    tr.write_line(f"{total:7.1f} s  all notebooks")
