"""Repository-wide pytest hooks.

- Notebooks run by nbval: print each notebook's wall time (setup + all cells) at the end,
  flagged when over the ci-profile budget.
- Labs (``labs/*.ipynb``): a cell may raise only ``NotImplementedError`` (a stub the student
  has not filled yet); any other exception fails the cell, even where nbval's
  ``raises-exception`` tag would let it pass.
- With ``COURSE_SAVE_EXECUTED=DIR``, every lecture and solution that nbval runs is written, with the outputs
  of that run, to ``DIR/lectures/`` and ``DIR/solutions/`` at the end of the session (each xdist worker writes
  its own notebooks): the website is built from them (``tools/build_site.py --executed DIR``) instead of
  executing every notebook a second time.
- Solutions (``solutions/*.ipynb``) must pass their own self-checks. Their kernels start with
  ``COURSE_STRICT_CHECKS=1``, so a self-check that does not pass raises
  (``course_lib.checks._core.SelfCheckError``) and fails its cell; and a cell whose output holds
  a self-check verdict other than "passed" (a ``❌`` or ``⏳`` line) fails too, in case the check
  ran in a way that does not raise.  Lectures and labs run without strict mode (lecture 00
  shows wrong answers on purpose; a lab's stubs are "not implemented yet").
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

import pytest

STRICT_ENV = "COURSE_STRICT_CHECKS"  # = course_lib.checks._core.STRICT_ENV (not imported: no torch here)
_BAD_VERDICT = re.compile(r"^\s*(❌|⏳) (check_\w+): ?(.*)$", re.MULTILINE)

NOTEBOOK_BUDGET_S = 90.0
_NB_TIMES: dict[str, float] = defaultdict(float)


def _notebook_of(nodeid: str) -> str | None:
    path = nodeid.split("::", 1)[0]
    return path if path.endswith(".ipynb") else None


def pytest_runtest_logreport(report):
    nb = _notebook_of(report.nodeid)
    if nb is not None:
        _NB_TIMES[nb] += report.duration


def _kind(item) -> str | None:
    """``"labs"``, ``"solutions"`` or ``"lectures"`` for a notebook cell item, else None."""
    path = Path(str(getattr(item, "path", "")))
    if path.suffix != ".ipynb":
        return None
    for kind in ("labs", "solutions", "lectures"):
        if kind in path.parts:
            return kind
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    """Start the kernels of solutions/*.ipynb with strict self-checks (nbval starts a notebook's
    kernel in the setup of its first cell; the kernel inherits this process's environment)."""
    kind = _kind(item)
    if kind is None:  # unit tests: leave the environment alone
        yield
        return
    before = os.environ.get(STRICT_ENV)
    if kind == "solutions":
        os.environ[STRICT_ENV] = "1"
    else:
        os.environ.pop(STRICT_ENV, None)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(STRICT_ENV, None)
        else:
            os.environ[STRICT_ENV] = before


def _output_texts(outputs) -> list[str]:
    texts = []
    for out in outputs or []:
        if out.get("output_type") == "stream":
            texts.append(str(out.get("text", "")))
        elif out.get("output_type") in ("display_data", "execute_result"):
            texts.append(str(out.get("data", {}).get("text/plain", "")))
    return texts


def failed_verdicts(outputs) -> list[str]:
    """The self-check verdict lines (``❌ check_x: ...`` / ``⏳ check_x: ...``) in a cell's outputs."""
    return [m.group(0).strip() for text in _output_texts(outputs) for m in _BAD_VERDICT.finditer(text)]


SAVE_EXECUTED_ENV = "COURSE_SAVE_EXECUTED"
_EXECUTED: dict[str, tuple[str, object]] = {}  # notebook path -> (kind, its nbformat node, outputs filled in)


def _keep_outputs(item, kind: str | None) -> None:
    """Copy this cell's outputs from nbval's run into the notebook node, to be written at session end."""
    if kind not in ("lectures", "solutions") or not os.environ.get(SAVE_EXECUTED_ENV):
        return
    cell, nb = getattr(item, "cell", None), getattr(getattr(item, "parent", None), "nb", None)
    if cell is None or nb is None:
        return
    outs = getattr(item, "test_outputs", None)
    if outs is not None:
        cell.outputs = outs
        cell.execution_count = getattr(item, "cell_num", None)
    _EXECUTED[str(getattr(item, "path", item.fspath))] = (kind, nb)


def pytest_sessionfinish(session):
    target = os.environ.get(SAVE_EXECUTED_ENV)
    if not target or not _EXECUTED:
        return
    import nbformat

    for path, (kind, nb) in _EXECUTED.items():
        out = Path(target) / kind / Path(path).name
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(out))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        _keep_outputs(item, _kind(item))
    if rep.when != "call" or not rep.passed:
        return
    kind = _kind(item)
    if kind == "solutions":
        bad = failed_verdicts(getattr(item, "test_outputs", None))
        if bad:
            rep.outcome = "failed"
            rep.longrepr = ("a solution notebook must pass its own self-checks; this cell printed:\n  "
                            + "\n  ".join(bad))
        return
    if kind != "labs":
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
