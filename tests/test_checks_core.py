import math

import numpy as np
import pytest
import torch

from course_lib import checks
from course_lib.checks import _core


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
