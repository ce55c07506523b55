"""Mutation tests of the chapter-00 self-checks: the reference passes, a stub is "not implemented
yet", and each plausible wrong answer fails with a message naming the mistake."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from check_helpers import failed as _fails
from check_helpers import stub

from course_lib import checks

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]


# --- references (the lab's solutions, written again here) -------------------
def sq(x, y):
    return ((x[:, :, None, :] - y[:, None, :, :]) ** 2).sum(-1)


def sq_expanded(x, y):  # the other route of the hint: |a|^2 - 2 a.b + |b|^2
    return (x * x).sum(-1)[:, :, None] - 2 * x @ y.transpose(1, 2) + (y * y).sum(-1)[:, None, :]


def nn_dist(x, y):
    return sq(x, y).min(dim=-1).values


def chamfer(x, y):
    return (nn_dist(x, y).mean(-1) + nn_dist(y, x).mean(-1)).mean()






def test_references_pass():
    assert checks.check_pairwise_sq_dists(sq, quiet=True).passed
    assert checks.check_pairwise_sq_dists(sq_expanded, quiet=True).passed
    assert checks.check_nearest_neighbour_dist(nn_dist, quiet=True).passed
    assert checks.check_chamfer(chamfer, quiet=True).passed
    from course_lib import ops

    assert checks.check_chamfer(lambda x, y: ops.chamfer_distance(x, y), quiet=True).passed


@pytest.mark.parametrize("check", [checks.check_pairwise_sq_dists, checks.check_nearest_neighbour_dist,
                                   checks.check_chamfer])
def test_stubs_are_not_implemented(check):
    res = check(stub, quiet=True)
    assert res.status == "not_implemented" and "not implemented yet" in res.verdict()
    assert check(lambda x, y: ..., quiet=True).status == "not_implemented"


@pytest.mark.parametrize("wrong, words", [
    (lambda x, y: torch.cdist(x, y), ["SQUARED", "forgot the square"]),
    (lambda x, y: sq(x, y).sqrt(), ["SQUARED"]),
    (lambda x, y: sq(y, x), ["(B, M, N)"]),
    (lambda x, y: (x[:, :, None] - y[:, None]) ** 2, ["sum the squared differences"]),
    (lambda x, y: (x[:, :, None] - y[:, None]).abs().sum(-1), ["L1"]),
    (lambda x, y: ((x[:, :, None] - y[:, None]) ** 2).mean(-1), ["mean over the coordinates"]),
    (lambda x, y: sq(x, y).double(), ["dtype"]),
    (lambda x, y: sq(x, y).numpy(), ["numpy"]),
    (lambda x, y: sq(x, y) / 0, ["NaN or inf"]),
    (lambda x, y: sq(x, y) + 1e-2 * torch.arange(y.shape[1]), ["values are wrong"]),
])
def test_pairwise_sq_dists_mistakes(wrong, words):
    _fails(checks.check_pairwise_sq_dists(wrong, quiet=True), *words)


@pytest.mark.parametrize("wrong, words", [
    (lambda x, y: sq(x, y).min(dim=1).values, ["over the points of x"]),
    (lambda x, y: torch.cdist(x, y).min(dim=-1).values, ["plain distances", "SQUARED"]),
    (lambda x, y: sq(x, y).max(dim=-1).values, ["max"]),
    (lambda x, y: sq(x, y).min(dim=-1), ["not the indices"]),
    (lambda x, y: sq(x, y).argmin(dim=-1), ["not the indices"]),
    (lambda x, y: sq(x, y).min(dim=-1).values.sqrt().sqrt(), ["values are wrong"]),
])
def test_nearest_neighbour_mistakes(wrong, words):
    _fails(checks.check_nearest_neighbour_dist(wrong, quiet=True), *words)


def _nn(x, y):
    return (torch.cdist(x, y) ** 2).min(-1).values


@pytest.mark.parametrize("wrong, words", [
    (lambda x, y: _nn(x, y).mean(-1).mean(), ["one direction (x to y)"]),
    (lambda x, y: _nn(y, x).mean(-1).mean(), ["one direction (y to x)"]),
    (lambda x, y: torch.maximum(_nn(x, y).mean(-1), _nn(y, x).mean(-1)).mean(), ["max of the two"]),
    (lambda x, y: (_nn(x, y).mean(-1) + _nn(y, x).mean(-1)).sum(), ["summed over the batch"]),
    (lambda x, y: _nn(x, y).mean(-1) + _nn(y, x).mean(-1), ["shape (B,)", "mean over the batch"]),
    (lambda x, y: (torch.cdist(x, y).min(-1).values.mean(-1) + torch.cdist(y, x).min(-1).values.mean(-1)).mean(),
     ["plain distances"]),
    (lambda x, y: (_nn(x, y).mean(-1) + _nn(y, x).mean(-1)).mean() / 2, ["averaged the two directions"]),
    (lambda x, y: chamfer(x, y).detach(), ["no gradient", ".detach()"]),
    (lambda x, y: torch.tensor(chamfer(x, y).item()), ["no gradient"]),
    (lambda x, y: chamfer(x, y) * float("nan"), ["NaN"]),
])
def test_chamfer_mistakes(wrong, words):
    _fails(checks.check_chamfer(wrong, quiet=True), *words)


def test_chamfer_wrong_gradient_is_caught():
    class WrongGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return 2 * g

    _fails(checks.check_chamfer(lambda x, y: chamfer(WrongGrad.apply(x), y), quiet=True), "gradient")


def _lecture_function(path: Path, name: str):
    """The function ``name`` as written in a notebook source (executed on its own)."""
    tree = ast.parse(path.read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    ns: dict = {"torch": torch}
    exec(compile(ast.Module([node], []), str(path), "exec"), ns)
    return ns[name]


def test_lecture_00_forgot_the_square_diagnosis_fires():
    """Lecture 00 shows a student who forgot the square: the verdict must say so."""
    fn = _lecture_function(ROOT / "nbsrc" / "lectures" / "00_welcome.py", "forgot_the_square")
    res = checks.check_pairwise_sq_dists(fn, quiet=True)
    _fails(res, "forgot the square")
    right = _lecture_function(ROOT / "nbsrc" / "lectures" / "00_welcome.py", "right")
    assert checks.check_pairwise_sq_dists(right, quiet=True).passed


def test_lab_00_solutions_pass_their_checks():
    path = ROOT / "nbsrc" / "solutions" / "00_welcome_lab.py"
    src = path.read_text()
    tree = ast.parse(src)
    ns: dict = {"torch": torch}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in ("pairwise_sq_dists", "nearest_neighbour_dist",
                                                               "chamfer"):
            exec(compile(ast.Module([node], []), str(path), "exec"), ns)
    assert checks.check_pairwise_sq_dists(ns["pairwise_sq_dists"], quiet=True).passed
    assert checks.check_nearest_neighbour_dist(ns["nearest_neighbour_dist"], quiet=True).passed
    assert checks.check_chamfer(ns["chamfer"], quiet=True).passed


def test_hidden_parts_run_only_for_the_grader_and_catch_what_the_public_part_misses(monkeypatch):
    from course_lib import ops
    from course_lib.checks import _core

    def squeezed(x, y):  # a habit that is right on the public sizes and wrong on a batch of one or one point
        return sq(x, y).min(dim=-1).values.squeeze()

    def float32_only(x, y):  # casts everything to float32
        return sq(x.float(), y.float())

    def delegating(x, y):  # wraps the library's own implementation
        return ops.chamfer_distance(x, y)

    monkeypatch.delenv(_core.HIDDEN_ENV, raising=False)
    _core.RESULTS.clear()
    assert checks.check_nearest_neighbour_dist(squeezed, quiet=True).passed  # the public part cannot see it
    assert "check_nearest_neighbour_dist:hidden" not in _core.RESULTS
    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    for check, fn in ((checks.check_pairwise_sq_dists, sq), (checks.check_nearest_neighbour_dist, nn_dist),
                      (checks.check_chamfer, chamfer)):
        assert check(fn, quiet=True).passed
        assert _core.RESULTS[check.__name__ + ":hidden"].passed, _core.RESULTS[check.__name__ + ":hidden"].verdict()
    assert checks.check_nearest_neighbour_dist(squeezed, quiet=True).passed
    assert "has shape" in _core.RESULTS["check_nearest_neighbour_dist:hidden"].message
    checks.check_pairwise_sq_dists(float32_only, quiet=True)
    assert "should stay torch.float64" in _core.RESULTS["check_pairwise_sq_dists:hidden"].message
    assert checks.check_chamfer(delegating, quiet=True).passed
    hid = _core.RESULTS["check_chamfer:hidden"]
    assert hid.status == "failed" and "delegated to course_lib.ops.chamfer.chamfer_distance" in hid.message
    checks.check_chamfer(lambda x, y: ..., quiet=True)
    assert "public part" in _core.RESULTS["check_chamfer:hidden"].message
    # the check's own use of the library (its references) is not the student's: the solution is not flagged
    assert checks.check_chamfer(chamfer, quiet=True).passed and _core.RESULTS["check_chamfer:hidden"].passed
