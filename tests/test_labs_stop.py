"""Issue #39's goal: a deliberate sign error in any lab stops "Run all" at its check, not later.

For every lab, the solution notebook is executed in a fresh kernel (``ci`` profile) with its first exercise's
answer sign-flipped (a tensor negated, a boolean tensor inverted, the first tensor of a tuple flipped): the run
must stop with ``CheckStop`` in the cell of that exercise's self-check, and no later cell may run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_CHECK = re.compile(r"^checks\.(check_\w+)\((\w+)\)", re.MULTILINE)

_FLIP = '''
import torch as _torch


def _sign_flipped(fn):
    def flip(out):
        if isinstance(out, _torch.Tensor):
            return ~out if out.dtype == _torch.bool else -out
        if isinstance(out, tuple) and out:
            return (flip(out[0]),) + tuple(out[1:])
        raise TypeError(f"the test cannot flip a {type(out).__name__}")

    def wrong(*args, **kwargs):
        return flip(fn(*args, **kwargs))

    return wrong


{name} = _sign_flipped({name})
'''


@pytest.mark.parametrize("solution", sorted((ROOT / "solutions").glob("*_lab.ipynb")), ids=lambda p: p.stem)
def test_a_sign_error_stops_run_all_at_its_check(solution, monkeypatch):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(solution, as_version=4)
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and _CHECK.search(c.source))
    name = _CHECK.search(nb.cells[first].source).group(2)
    nb.cells.insert(first, nbformat.v4.new_code_cell(_FLIP.replace("{name}", name)))
    check_cell = first + 1
    nb.cells.append(nbformat.v4.new_code_cell("print('RAN PAST THE CHECK')"))
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)
    monkeypatch.delenv("COURSE_HIDDEN_CHECKS", raising=False)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(solution.parent)}})
    with pytest.raises(CellExecutionError) as info:
        client.execute()
    assert info.value.ename == "CheckStop", f"{solution.name}: stopped by {info.value.ename}, not at its check"
    ran = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.get("execution_count")]
    assert max(ran) == check_cell, f"{solution.name}: cells ran up to {max(ran)}, the check is cell {check_cell}"
    out = "".join(o.get("text", "") for o in nb.cells[check_cell].outputs if o.get("output_type") == "stream")
    assert "❌" in out, f"{solution.name}: the check's verdict was not printed before the stop"
