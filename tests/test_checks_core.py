import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import checks
from course_lib.checks import _core
from course_lib.checks._core import CheckFailed, expect_close


def good(x, y):
    return ((x[:, :, None] - y[:, None]) ** 2).sum(-1)


def test_pass_prints_a_clear_verdict(capsys):
    res = checks.check_pairwise_sq_dists(good)
    assert res.passed and res.status == "passed"
    assert "✅ check_pairwise_sq_dists: passed" in capsys.readouterr().out


def test_stub_is_not_implemented_yet(capsys):
    def stub(x, y):
        raise NotImplementedError()

    res = checks.check_pairwise_sq_dists(stub)
    assert res.status == "not_implemented" and not res
    assert "not implemented yet" in capsys.readouterr().out
    assert checks.check_pairwise_sq_dists(lambda x, y: ..., quiet=True).status == "not_implemented"


def test_wrong_values_are_named_without_traceback(capsys):
    res = checks.check_pairwise_sq_dists(lambda x, y: torch.cdist(x, y))  # forgot the square
    out = capsys.readouterr().out
    assert res.status == "failed"
    assert "forgot the square" in out and "Traceback" not in out


def test_wrong_shape_and_dtype():
    res = checks.check_pairwise_sq_dists(lambda x, y: good(x, y)[0], quiet=True)
    assert res.status == "failed" and "shape" in res.message
    res = checks.check_pairwise_sq_dists(lambda x, y: good(x, y).double(), quiet=True)
    assert res.status == "failed" and "dtype" in res.message
    res = checks.check_pairwise_sq_dists(lambda x, y: good(x, y).numpy(), quiet=True)
    assert res.status == "failed" and "numpy" in res.message


def test_symmetry_is_checked():
    def asym(x, y):
        d = good(x, y)
        return d + 1e-2 * torch.arange(d.shape[-1])  # breaks fn(y, x) == fn(x, y).T

    assert checks.check_pairwise_sq_dists(asym, quiet=True).status == "failed"


def test_student_exception_is_reported_with_its_line(capsys):
    def broken(x, y):
        return x @ y  # wrong shapes: raises inside torch

    res = checks.check_pairwise_sq_dists(broken)
    out = capsys.readouterr().out
    assert res.status == "error"
    assert "RuntimeError" in out and "Traceback" not in out
    assert "x @ y" in out  # points at the student's line


def test_results_are_recorded():
    checks.check_nearest_neighbour_dist(lambda x, y: good(x, y).min(-1).values, quiet=True)
    assert checks.RESULTS["check_nearest_neighbour_dist"].passed


def test_expect_close_reports_location():
    try:
        _core.expect_close(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.5, 3.0]), "v")
    except _core.CheckFailed as exc:
        assert "index (1,)" in str(exc) and "1 of 3" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expect_close accepted a wrong value")


def test_not_callable_is_a_failure():
    assert checks.check_pairwise_sq_dists(3, quiet=True).status == "failed"


def test_chamfer_check_names_the_usual_mistakes():
    def nn(x, y):
        return (torch.cdist(x, y) ** 2).min(-1).values

    assert checks.check_chamfer(lambda x, y: (nn(x, y).mean(-1) + nn(y, x).mean(-1)).mean(), quiet=True)
    one_way = checks.check_chamfer(lambda x, y: nn(x, y).mean(-1).mean(), quiet=True)
    assert not one_way and "one direction" in one_way.message
    summed = checks.check_chamfer(lambda x, y: (nn(x, y).mean(-1) + nn(y, x).mean(-1)).sum(), quiet=True)
    assert not summed and "batch" in summed.message
    per_cloud = checks.check_chamfer(lambda x, y: nn(x, y).mean(-1) + nn(y, x).mean(-1), quiet=True)
    assert not per_cloud and "shape" in per_cloud.message


@pytest.mark.parametrize("bad, kind", [
    (torch.tensor([1.0, float("nan"), 3.0]), "NaN"),
    (torch.tensor([1.0, 2.0, float("inf")]), "inf"),
    (torch.tensor([float("-inf"), float("nan"), 3.0]), "NaN and inf"),
    (float("nan"), "NaN"),
    (np.array([1.0, np.nan, 3.0]), "NaN"),
])
def test_expect_close_rejects_nan_and_inf(bad, kind):
    expected = torch.tensor(1.0) if isinstance(bad, float) else torch.tensor([1.0, 2.0, 3.0])
    with pytest.raises(_core.CheckFailed) as err:
        _core.expect_close(bad, expected, "v", atol=math.inf)  # even an infinite tolerance
    assert kind in str(err.value) and "v contains" in str(err.value)
    # NaN is not "close" to NaN either
    with pytest.raises(_core.CheckFailed, match="NaN"):
        _core.expect_close(torch.tensor([float("nan")]), torch.tensor([float("nan")]), "w")


def test_expect_close_accepts_close_values_and_rejects_non_numbers():
    _core.expect_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-7]), "v")
    _core.expect_close(3, 3.0, "v")
    with pytest.raises(_core.CheckFailed, match="tensor or a number"):
        _core.expect_close("3", 3.0, "v")


def test_strict_mode_raises_on_every_verdict_but_passed(monkeypatch, capsys):
    def stub(x, y):
        raise NotImplementedError()

    monkeypatch.delenv(_core.STRICT_ENV, raising=False)
    assert not _core.strict_mode()
    assert checks.check_pairwise_sq_dists(torch.cdist, quiet=True).status == "failed"  # no raise
    monkeypatch.setenv(_core.STRICT_ENV, "1")
    assert _core.strict_mode()
    assert checks.check_pairwise_sq_dists(good, quiet=True).passed
    for wrong in (torch.cdist, stub, lambda x, y: x @ y):
        with pytest.raises(_core.SelfCheckError, match="check_pairwise_sq_dists"):
            checks.check_pairwise_sq_dists(wrong)
    assert "❌" in capsys.readouterr().out  # the verdict is printed before raising
    monkeypatch.setenv(_core.STRICT_ENV, "0")
    assert not _core.strict_mode()


# --- a solution notebook must pass its own self-checks (the repository conftest) ----------
def _notebook(*sources):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    return nb


def test_a_solution_failing_its_self_check_fails_the_notebook_run(tmp_path):
    """nbval on solutions/ with the repository conftest: a wrong answer fails its cell (strict mode),
    even when the solution swallows the exception; the same wrong answer in a lecture does not."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import nbformat

    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "conftest.py", tmp_path / "conftest.py")
    for d in ("solutions", "lectures"):
        (tmp_path / d).mkdir()
    head = "import os, torch\nfrom course_lib import checks\nprint('strict:', os.environ.get('COURSE_STRICT_CHECKS'))"
    good = "def f(x, y):\n    return ((x[:, :, None] - y[:, None]) ** 2).sum(-1)\nchecks.check_pairwise_sq_dists(f)"
    wrong = "def g(x, y):\n    return torch.cdist(x, y)\nchecks.check_pairwise_sq_dists(g)"
    hidden = "try:\n    checks.check_pairwise_sq_dists(lambda x, y: torch.cdist(x, y))\nexcept AssertionError:\n    pass"
    nbformat.write(_notebook(head, good, wrong, hidden), tmp_path / "solutions" / "98_bad_lab.ipynb")
    nbformat.write(_notebook(head, wrong), tmp_path / "lectures" / "98_demo.ipynb")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:randomly",
         "-p", "no:cacheprovider", "-q", "-rA", "solutions", "lectures"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
        env={**os.environ, "COURSE_PROFILE": "ci"},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    passed = [line for line in out.splitlines() if line.startswith("PASSED")]
    assert any("98_bad_lab.ipynb::Cell 2" in line for line in failed), out
    assert any("98_bad_lab.ipynb::Cell 3" in line for line in failed), out
    assert len(failed) == 2, out
    assert any("98_bad_lab.ipynb::Cell 1" in line for line in passed), out  # the right answer passes
    assert any("98_demo.ipynb::Cell 1" in line for line in passed), out  # lectures are not strict
    assert "SelfCheckError" in out and "forgot the square" in out
    assert "a solution notebook must pass its own self-checks" in out


def test_conftest_reads_failed_verdicts():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("root_conftest", Path(__file__).resolve().parents[1] / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.STRICT_ENV == _core.STRICT_ENV
    outs = [{"output_type": "stream", "text": "✅ check_a: passed\n❌ check_b: wrong\n"},
            {"output_type": "display_data", "data": {"text/plain": "⏳ check_c: not implemented yet"}},
            {"output_type": "stream", "text": "a ❌ in the middle of a line is not a verdict"}]
    assert mod.failed_verdicts(outs) == ["❌ check_b: wrong", "⏳ check_c: not implemented yet"]
    assert mod.failed_verdicts([]) == []


_AREAS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "course_lib" / "checks").glob("[!_]*.py"))


@pytest.mark.parametrize("area", _AREAS)
def test_every_check_has_mutation_tests(area):
    """Each check of these modules is exercised by its test file (the reference, the stub and the wrong
    answers: at least three call sites, wrong answers often parametrized); a check added without
    tests fails here."""
    import importlib
    import re
    from pathlib import Path

    mod = importlib.import_module(f"course_lib.checks.{area}")
    text = (Path(__file__).resolve().parent / f"test_checks_{area}.py").read_text()
    for name in mod.__all__:
        assert getattr(mod, name).is_self_check
        calls = len(re.findall(rf"\b{name}\b", text))
        assert calls >= 3, f"{name}: only {calls} mentions in test_checks_{area}.py"


def test_an_answer_of_an_unexpected_kind_gets_a_verdict_not_a_traceback(capsys):
    class Weird:  # passes isinstance-free code paths and then breaks the check's arithmetic
        shape = (3, 7, 5)

    res = checks.check_patch_decoder(lambda L: Weird(), quiet=True)
    assert res.status == "failed" and "nn.Module" in res.message

    @_core.self_check
    def check_broken(fn):
        return 1 / 0

    res = check_broken(None)
    assert res.status == "error" and "could not check your answer" in res.message
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_stop_on_failure_stops_at_a_wrong_answer_not_at_a_stub(capsys):
    from course_lib.checks._core import CheckStop, stop_on_failure

    @checks.self_check
    def check_demo(fn):
        checks.expect(checks.call_student(fn) == 1, "should return 1")

    stop_on_failure(True)
    try:
        with pytest.raises(CheckStop) as info:
            check_demo(lambda: 2)
        assert "❌ check_demo: should return 1" in capsys.readouterr().out  # the verdict first, then the stop
        assert info.value._render_traceback_() == [f"⛔ {info.value}"] and "stop_on_failure(False)" in str(info.value)
        with pytest.raises(CheckStop):
            check_demo(lambda: 1 / 0)  # a crash in the student's code stops too
        assert check_demo(lambda: ...).status == "not_implemented"  # a stub goes on: labs run clean to their stubs
        assert check_demo(lambda: 1).passed
        assert check_demo(lambda: 2, quiet=True).status == "failed"  # tests (quiet) never stop
    finally:
        stop_on_failure(False)
    assert check_demo(lambda: 2).status == "failed"  # off again: the verdict only


def test_every_lab_stops_at_a_failed_check():
    from pathlib import Path

    for src in sorted((Path(__file__).resolve().parents[1] / "nbsrc" / "solutions").glob("*_lab.py")):
        assert "checks.stop_on_failure()" in src.read_text(), src.name


def test_expect_close_keeps_the_digits_of_python_numbers():
    # 1 + 3e-8 is 1.0 in float32: a value that differs only in those digits must still be told apart
    x = 1.0 + 3e-8
    _core.expect_close(x, x, "v", atol=0, rtol=0)
    with pytest.raises(_core.CheckFailed):
        _core.expect_close(1.0, x, "v", atol=1e-9, rtol=0)
    _core.expect_close(torch.tensor([x], dtype=torch.float64), [x], "v", atol=0, rtol=0)
    import numpy as np

    _core.expect_close(np.array([x]), torch.tensor([x], dtype=torch.float64), "v", atol=0, rtol=0)


def _lib_add(x, y):  # stands for a library function (the reference an exercise re-implements)
    if x < 0:
        raise ValueError("the library refuses negative inputs")
    return x + y


class _LibModule(torch.nn.Module):  # stands for a library class
    def __init__(self, k=2):
        super().__init__()
        self.k = k

    def forward(self, x):
        return x * self.k


def _with_hidden(body, refs):
    @_core.self_check
    def check_demo_core(fn) -> str:
        _core.expect(_core.call_student(fn, 1, 2) == 3, "1 + 2 should be 3")
        return "adds"

    check_demo_core.hidden(body, references=refs)
    return check_demo_core


def test_delegation_is_flagged_when_the_hidden_call_errors_for_classes_and_for_the_reference_itself(monkeypatch):
    monkeypatch.setenv(_core.HIDDEN_ENV, "1")

    def hidden_add(fn):
        _core.expect(_core.call_student(fn, -1, 1) == 0, "-1 + 1 should be 0")
        return "negative inputs"

    chk = _with_hidden(hidden_add, (_lib_add,))
    chk(lambda x, y: x + y, quiet=True)  # one's own code: passes both parts
    assert _core.RESULTS["check_demo_core:hidden"].passed
    chk(lambda x, y: _lib_add(x, y), quiet=True)  # a wrapper whose library call raises on the hidden case
    msg = _core.RESULTS["check_demo_core:hidden"].message
    assert "delegated to" in msg and "_lib_add" in msg
    chk(_lib_add, quiet=True)  # the reference itself passed as the answer (its caller is the check)
    assert "delegated to" in _core.RESULTS["check_demo_core:hidden"].message

    def hidden_mod(fn):
        _core.expect(_core.call_student(fn, 5, 0) == 5, "5 + 0 should be 5")
        return "zero"

    chk2 = _with_hidden(hidden_mod, (_LibModule,))
    chk2(lambda x, y: int(_LibModule(k=1)(torch.tensor(x))) + y, quiet=True)  # the class used inside: flagged
    assert "delegated to" in _core.RESULTS["check_demo_core:hidden"].message
    chk2(lambda x, y: x + y, quiet=True)
    assert _core.RESULTS["check_demo_core:hidden"].passed


@torch.no_grad()
def _lib_add_no_grad(x, y):  # a reference behind torch's decorator (as course_lib.data.voxelize is)
    return x + y


def test_a_decorated_reference_is_watched_by_its_own_code_not_the_decorators(monkeypatch):
    monkeypatch.setenv(_core.HIDDEN_ENV, "1")

    def hidden(fn):
        _core.expect(_core.call_student(fn, 2, 2) == 4, "2 + 2 should be 4")
        return "more"

    chk = _with_hidden(hidden, (_lib_add_no_grad,))

    @torch.no_grad()
    def own(x, y):  # the student's own function, behind the same decorator: never "delegated"
        return x + y

    chk(own, quiet=True)
    assert _core.RESULTS["check_demo_core:hidden"].passed, _core.RESULTS["check_demo_core:hidden"].message
    chk(lambda x, y: _lib_add_no_grad(x, y), quiet=True)  # a direct call through the decorator: flagged
    assert "delegated to" in _core.RESULTS["check_demo_core:hidden"].message


# --- the likeliest cause of a generic "values are wrong" message (issue #39, item 3) ---------------------
_E = torch.tensor([[0.5, 1.0, 2.0], [3.0, 4.0, 0.25]])


@pytest.mark.parametrize("wrong, cause", [
    (-_E, "sign is flipped"),
    (2 * _E, "a missing 1/2"),
    (_E / 6, "a mean where a sum is asked"),
    (3 * _E, "a sum where a mean is asked"),
    (_E + 0.1, "off by the same +0.1"),
    (_E * _E, "square of the expected"),
    (_E.sqrt(), "square root of the expected"),
    (_E.flip(-1), "wrong order"),
    (torch.stack([_E[0], _E[1] * 1.5 + 1]), "only batch element(s) 1 of 2"),
])
def test_expect_close_names_the_likeliest_cause(wrong, cause):
    with pytest.raises(CheckFailed) as info:
        expect_close(wrong, _E, "d")
    msg = str(info.value)
    assert "values are wrong" in msg and "Likeliest cause:" in msg and cause in msg, msg


def test_expect_close_names_a_transpose_and_the_first_wrong_value():
    e = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(CheckFailed, match="last two axes are swapped"):
        expect_close(e.T, e, "m")
    with pytest.raises(CheckFailed) as info:
        expect_close(torch.tensor([1.5, 2.0, 9.0]), torch.tensor([1.0, 2.0, 3.0]), "v")
    msg = str(info.value)
    assert "largest error 6 at index (2,)" in msg and "first wrong value is at index (0,): got 1.5, expected 1" in msg


def test_expect_close_claims_no_cause_for_an_unpatterned_error():
    with pytest.raises(CheckFailed) as info:
        expect_close(torch.tensor([1.0, 7.0, -2.0]), torch.tensor([1.1, 2.0, 3.0]), "v")
    assert "Likeliest cause" not in str(info.value)
