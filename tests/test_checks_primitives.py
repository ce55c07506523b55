"""The chapter-08 self-checks pass the reference, fail plausible wrong answers by name, and flag stubs."""

from __future__ import annotations

import pytest
import torch
from check_helpers import failed as _failed
from check_helpers import hidden_results, stub

from course_lib import checks
from course_lib.models import primitives as P

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- reference solutions, written independently of course_lib.models.primitives ---
def inside_outside(points, size, eps):
    q = (points / size).abs()
    e1, e2 = eps[..., 0], eps[..., 1]
    return (q[..., 0] ** (2 / e2) + q[..., 1] ** (2 / e2)) ** (e2 / e1) + q[..., 2] ** (2 / e1)


def reinforce_gradient(losses, z, prob, baseline):
    score = z / prob - (1 - z) / (1 - prob)
    return ((losses - baseline)[:, None] * score).mean(0)


def expected_min_distance(dist, prob):
    d, order = torch.sort(dist, dim=-1)
    p = torch.gather(prob, -1, order)
    before = torch.cumprod(torch.cat([torch.ones_like(p[..., :1]), 1 - p[..., :-1]], -1), -1)
    return (d * p * before).sum(-1)






def test_references_pass():
    assert checks.check_inside_outside(inside_outside, quiet=True).passed
    assert checks.check_reinforce_gradient(reinforce_gradient, quiet=True).passed
    assert checks.check_expected_min_distance(expected_min_distance, quiet=True).passed


def test_library_functions_pass():
    assert checks.check_inside_outside(P.superquadric_inside_outside, quiet=True).passed
    assert checks.check_expected_min_distance(P.expected_min_distance, quiet=True).passed


def test_stubs_are_not_implemented():
    for check in (checks.check_inside_outside, checks.check_reinforce_gradient, checks.check_expected_min_distance):
        res = check(stub, quiet=True)
        assert res.status == "not_implemented", res.verdict()
        assert check(lambda *a: ..., quiet=True).status == "not_implemented"


# --- inside-outside ------------------------------------------------------------------------------
def test_inside_outside_wrong_answers():
    _failed(checks.check_inside_outside(lambda p, a, e: inside_outside(p, a, e.flip(-1)), quiet=True), "swapped")

    def no_abs(p, a, e):
        q = p / a
        e1, e2 = e[..., 0], e[..., 1]
        return (q[..., 0] ** (2 / e2) + q[..., 1] ** (2 / e2)) ** (e2 / e1) + q[..., 2] ** (2 / e1)
    _failed(checks.check_inside_outside(no_abs, quiet=True), "absolute value")

    def inverted(p, a, e):
        q = (p / a).abs()
        e1, e2 = e[..., 0], e[..., 1]
        return (q[..., 0] ** (e2 / 2) + q[..., 1] ** (e2 / 2)) ** (e1 / e2) + q[..., 2] ** (e1 / 2)
    _failed(checks.check_inside_outside(inverted, quiet=True), "inverted")
    _failed(checks.check_inside_outside(lambda p, a, e: inside_outside(p, torch.ones_like(p), e), quiet=True),
            "size")
    _failed(checks.check_inside_outside(lambda p, a, e: inside_outside(p * a * a, a, e), quiet=True), "divide")

    def no_outer(p, a, e):
        q = (p / a).abs()
        return q[..., 0] ** (2 / e[..., 1]) + q[..., 1] ** (2 / e[..., 1]) + q[..., 2] ** (2 / e[..., 0])
    _failed(checks.check_inside_outside(no_outer, quiet=True), "outer power")
    _failed(checks.check_inside_outside(lambda p, a, e: inside_outside(p, a, e)[..., None], quiet=True), "shape")
    _failed(checks.check_inside_outside(lambda p, a, e: inside_outside(p, a, e) + 0.01, quiet=True), "wrong")
    # F^(e1/2) (a "radial" distance) is a different function: rejected
    _failed(checks.check_inside_outside(lambda p, a, e: inside_outside(p, a, e) ** (e[..., 0] / 2), quiet=True),
            "wrong")


# --- REINFORCE ---------------------------------------------------------------------------------
def test_reinforce_wrong_answers():
    _failed(checks.check_reinforce_gradient(lambda lo, z, p, b: reinforce_gradient(lo, z, p, 0.0), quiet=True),
            "baseline is not subtracted")
    _failed(checks.check_reinforce_gradient(lambda lo, z, p, b: reinforce_gradient(lo, z, p, -b), quiet=True),
            "added instead")
    _failed(checks.check_reinforce_gradient(lambda lo, z, p, b: len(lo) * reinforce_gradient(lo, z, p, b),
                                            quiet=True), "mean")
    _failed(checks.check_reinforce_gradient(
        lambda lo, z, p, b: ((lo - b)[:, None] * (z / p + (1 - z) / (1 - p))).mean(0), quiet=True), "sign")
    _failed(checks.check_reinforce_gradient(
        lambda lo, z, p, b: ((lo - b)[:, None] * (z - (1 - z))).mean(0), quiet=True), "log p(z)")
    _failed(checks.check_reinforce_gradient(
        lambda lo, z, p, b: ((lo - b)[:, None] * (z / p)).mean(0), quiet=True), "absent")
    _failed(checks.check_reinforce_gradient(lambda lo, z, p, b: reinforce_gradient(lo, z, p, b).sum(), quiet=True),
            "shape")
    # a biased "estimator": the baseline computed from the current samples, not leave-one-out
    _failed(checks.check_reinforce_gradient(
        lambda lo, z, p, b: reinforce_gradient(lo, z, p, b) * 1.05, quiet=True), "wrong")


# --- reordering trick --------------------------------------------------------------------------
def test_expected_min_distance_wrong_answers():
    def unsorted(d, p):
        before = torch.cumprod(torch.cat([torch.ones_like(p[..., :1]), 1 - p[..., :-1]], -1), -1)
        return (d * p * before).sum(-1)
    _failed(checks.check_expected_min_distance(unsorted, quiet=True), "not sorted")
    _failed(checks.check_expected_min_distance(lambda d, p: -expected_min_distance(-d, p), quiet=True),
            "descending")

    def inclusive(d, p):
        ds, order = torch.sort(d, -1)
        ps = torch.gather(p, -1, order)
        return (ds * ps * torch.cumprod(1 - ps, -1)).sum(-1)
    _failed(checks.check_expected_min_distance(inclusive, quiet=True), "j < k")

    def no_theta(d, p):
        ds, order = torch.sort(d, -1)
        ps = torch.gather(p, -1, order)
        before = torch.cumprod(torch.cat([torch.ones_like(ps[..., :1]), 1 - ps[..., :-1]], -1), -1)
        return (ds * before).sum(-1)
    _failed(checks.check_expected_min_distance(no_theta, quiet=True), "theta_(k)")

    def no_gather(d, p):
        ds, _ = torch.sort(d, -1)
        before = torch.cumprod(torch.cat([torch.ones_like(p[..., :1]), 1 - p[..., :-1]], -1), -1)
        return (ds * p * before).sum(-1)
    _failed(checks.check_expected_min_distance(no_gather, quiet=True), "reordered")
    _failed(checks.check_expected_min_distance(lambda d, p: expected_min_distance(d, p).detach(), quiet=True),
            "detached")
    _failed(checks.check_expected_min_distance(lambda d, p: expected_min_distance(d, p)[..., None], quiet=True),
            "shape")

    def numpy_path(d, p):
        import numpy as np
        return torch.as_tensor(np.asarray(expected_min_distance(d.detach(), p.detach())))
    _failed(checks.check_expected_min_distance(numpy_path, quiet=True), "detached")
    # a gradient that is wrong although the values are right (a straight-through hack)
    def wrong_grad(d, p):
        v = expected_min_distance(d, p)
        return v.detach() + (d * p).sum(-1) - (d * p).sum(-1).detach()
    _failed(checks.check_expected_min_distance(wrong_grad, quiet=True), "gradient")


# --- wrong answers found by the chapter 07-08 review (probes/ch07_ch08/wrong08.py) ---------------
def test_inside_outside_in_float32_is_rejected():
    def in_float32(p, a, e):  # computes in float32 and casts back: overflows for far points and small eps
        return inside_outside(p.float(), a.float(), e.float()).to(p.dtype)

    _failed(checks.check_inside_outside(in_float32, quiet=True), "float32")

    def returns_float32(p, a, e):
        return inside_outside(p, a, e).float()

    _failed(checks.check_inside_outside(returns_float32, quiet=True), "dtype")


def test_expected_min_distance_in_log_space_is_rejected():
    def log_space(d, p):  # exp(cumsum(log(1 - p))): right values, NaN gradients where p == 1
        ds, order = torch.sort(d, -1)
        ps = torch.gather(p, -1, order)
        lb = torch.cumsum(torch.log(1 - ps), -1)
        before = torch.exp(torch.cat([torch.zeros_like(lb[..., :1]), lb[..., :-1]], -1))
        return (ds * ps * before).sum(-1)

    _failed(checks.check_expected_min_distance(log_space, quiet=True), "exactly 1", "cumprod")


# --- each mistake of the lab walkthrough is named (issue #39; probes/student_labs/mut08*.py) ----------------
def _superquadric(points, size, eps, inner=lambda e: 2 / e, outer=lambda e1, e2: e2 / e1):
    q = (points / size).abs()
    e1, e2 = eps[..., 0], eps[..., 1]
    return (q[..., 0] ** inner(e2) + q[..., 1] ** inner(e2)) ** outer(e1, e2) + q[..., 2] ** inner(e1)


def _eps_of_point_0(points, size, eps):
    first = eps.reshape(-1, 2)[0]
    return inside_outside(points, size, first)


def _size_of_point_0(points, size, eps):
    return inside_outside(points, size.reshape(-1, 3)[0], eps)


def _clamped(points, size, eps):
    return inside_outside(torch.maximum(torch.minimum(points, size), -size), size, eps)


@pytest.mark.parametrize("wrong, words", [
    (lambda p, a, e: _superquadric(p, a, e, outer=lambda e1, e2: e1 / e2), ["outer power is inverted", "e2/e1"]),
    (lambda p, a, e: _superquadric(p, a, e, inner=lambda e: e / 2), ["exponents are inverted", "not eps/2"]),
    (_eps_of_point_0, ["first point's eps", "broadcast"]),
    (_size_of_point_0, ["first point's size", "broadcast"]),
    (_clamped, ["clamped", "do not clamp"]),
    (lambda p, a, e: inside_outside(p, a, e).clamp(max=1.0), ["capped at 1"]),
])
def test_inside_outside_mistakes_are_named(wrong, words):
    _failed(checks.check_inside_outside(wrong, quiet=True), *words)


def _terms(losses, z, prob, baseline, score=None):
    score = z / prob - (1 - z) / (1 - prob) if score is None else score
    return (losses - baseline)[:, None] * score


@pytest.mark.parametrize("wrong, words", [
    (lambda lo, z, p, b: reinforce_gradient(lo, z, p, lo.mean()), ["mean of the K losses", "losses - baseline"]),
    (lambda lo, z, p, b: -reinforce_gradient(lo, z, p, b), ["sign is flipped", "descent direction"]),
    (lambda lo, z, p, b: _terms(lo, z, p, b).mean().repeat(p.shape[0]), ["both the K samples and the M primitives",
                                                                         ".mean(0)"]),
    (lambda lo, z, p, b: _terms(lo, z, p, b).mean(1)[:p.shape[0]], ["over the M primitives (dim 1)", ".mean(0)"]),
    (lambda lo, z, p, b: _terms(lo, z, p, b, score=z - p).mean(0), ["with respect to the logit",
                                                                     "z / theta - (1 - z) / (1 - theta)"]),
    (lambda lo, z, p, b: 1.3 * _terms(lo, z, p, b).mean(0).mean().expand_as(p),
     ["every primitive got the same value"]),
])
def test_reinforce_mistakes_are_named(wrong, words):
    _failed(checks.check_reinforce_gradient(wrong, quiet=True), *words)


def test_reinforce_other_mistakes_get_the_likeliest_cause():
    res = checks.check_reinforce_gradient(lambda lo, z, p, b: reinforce_gradient(lo, z, p, b) * 1.05, quiet=True)
    _failed(res, "values are wrong", "first differing element is at index (0,)", "expected", "Likeliest cause")


def _sorted(dist, prob):
    d, order = torch.sort(dist, dim=-1)
    return d, torch.gather(prob, -1, order)


def _exclusive(p):
    return torch.cumprod(torch.cat([torch.ones_like(p[..., :1]), 1 - p[..., :-1]], -1), -1)


def _by_probability(dist, prob):
    p, order = torch.sort(prob, dim=-1, descending=True)
    return (torch.gather(dist, -1, order) * p * _exclusive(p)).sum(-1)


def _rolled(dist, prob):
    d, p = _sorted(dist, prob)
    return (d * p * torch.roll(torch.cumprod(1 - p, -1), 1, dims=-1)).sum(-1)


def _divided(dist, prob):
    d, p = _sorted(dist, prob)
    return (d * p * torch.cumprod(1 - p, -1) / (1 - p)).sum(-1)


def _product_detached(dist, prob):
    d, p = _sorted(dist, prob)
    return (d * p * _exclusive(p).detach()).sum(-1)


def _weight_detached(dist, prob):
    d, p = _sorted(dist, prob)
    return (d * p.detach() * _exclusive(p)).sum(-1)


@pytest.mark.parametrize("wrong, words", [
    (lambda d, p: expected_min_distance(d, p) / (1 - (1 - p).prod(-1)), ["divided by P(at least one", "counts the "
                                                                          "all-absent configuration as 0"]),
    (lambda d, p: expected_min_distance(d, p) + 2.0 * (1 - p).prod(-1), ["all-absent configuration costs 2",
                                                                         "drop that term"]),
    (lambda d, p: expected_min_distance(d, p) + 0.5 * (1 - p).prod(-1), ["costs 0.5"]),
    (lambda d, p: (d * p).sum(-1), ["ignores the minimum", "nearest existing primitive"]),
    (_by_probability, ["sorted by the probabilities instead of the distances"]),
    (_rolled, ["starts with prod_k (1 - theta_(k)) instead of 1", "torch.roll"]),
    (_divided, ["NaN or inf with prob = (1, 0, 1)", "division by (1 - theta)"]),
    (_product_detached, ["exclusive product", "is detached", "keep the whole product in the graph"]),
    (_weight_detached, ["factor theta_(k)", "is detached"]),
])
def test_expected_min_distance_mistakes_are_named(wrong, words):
    _failed(checks.check_expected_min_distance(wrong, quiet=True), *words)


def test_expected_min_distance_other_mistakes_get_the_likeliest_cause():
    res = checks.check_expected_min_distance(lambda d, p: 1.01 * expected_min_distance(d, p), quiet=True)
    _failed(res, "values are wrong", "first differing element is at index (0, 0)", "Likeliest cause",
            "exclusive cumulative product")


def test_the_diagnoses_let_correct_answers_through():
    """Correct answers written other ways than the references pass every new diagnosis."""
    def per_point_loop(points, size, eps):
        flat = points.reshape(-1, 3)
        a = torch.broadcast_to(size, points.shape).reshape(-1, 3)
        e = torch.broadcast_to(eps, points.shape[:-1] + (2,)).reshape(-1, 2)
        return torch.stack([inside_outside(flat[i], a[i], e[i]) for i in range(len(flat))]).reshape(points.shape[:-1])

    def argsort_then_gather(dist, prob):
        order = torch.argsort(dist, dim=-1)
        p = torch.gather(prob, -1, order)
        return (torch.gather(dist, -1, order) * p * _exclusive(p)).sum(-1)

    def einsum_reinforce(losses, z, prob, baseline):
        return torch.einsum("k,km->m", losses - baseline, z / prob - (1 - z) / (1 - prob)) / len(losses)

    assert checks.check_inside_outside(per_point_loop, quiet=True).passed
    assert checks.check_expected_min_distance(argsort_then_gather, quiet=True).passed
    assert checks.check_reinforce_gradient(einsum_reinforce, quiet=True).passed


# --- hidden parts (the grader's COURSE_HIDDEN_CHECKS=1) -----------------------------------------
_hidden = hidden_results  # (public result, hidden result)


def test_hidden_parts_pass_the_references(monkeypatch):
    from course_lib.checks import _core

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    for check, fn in ((checks.check_inside_outside, inside_outside),
                      (checks.check_reinforce_gradient, reinforce_gradient),
                      (checks.check_expected_min_distance, expected_min_distance)):
        res, hid = _hidden(check, fn)
        assert res.passed and hid.passed, hid.verdict()


def _columns_by_colon(points, size, eps):  # [:, k] is the last dimension only for 2-D points
    q = (points / size).abs()
    e1, e2 = eps[..., 0], eps[..., 1]
    return (q[:, 0] ** (2 / e2) + q[:, 1] ** (2 / e2)) ** (e2 / e1) + q[:, 2] ** (2 / e1)


def _baseline_in_place(losses, z, prob, baseline):
    losses -= baseline  # also changes the caller's tensor
    return (losses[:, None] * (z / prob - (1 - z) / (1 - prob))).mean(0)


def _pairwise_strict(dist, prob):
    # no sort: the k-th primitive is the nearest existing one if every strictly closer one is absent
    closer = dist[..., None, :] < dist[..., :, None]  # [..., k, j]: j is closer than k
    none_closer = torch.where(closer, 1 - prob[..., None, :], torch.ones_like(closer, dtype=prob.dtype)).prod(-1)
    return (dist * prob * none_closer).sum(-1)


def _float64_one(dist, prob):
    d, order = torch.sort(dist, dim=-1)
    p = torch.gather(prob, -1, order)
    lead = torch.ones(p.shape[:-1] + (1,), dtype=torch.float64)
    before = torch.cumprod(torch.cat([lead, 1 - p[..., :-1]], -1), -1)
    return (d * p * before).sum(-1)


@pytest.mark.parametrize("check, wrong, words", [
    (checks.check_inside_outside, _columns_by_colon, ["(4, 7)", "[..., k]"]),
    (checks.check_inside_outside, lambda p, a, e: inside_outside(p.double(), a.double(), e.double()),
     ["keep the input's dtype"]),
    (checks.check_reinforce_gradient, _baseline_in_place, ["changed the caller's losses"]),
    (checks.check_expected_min_distance, _pairwise_strict, ["ties", "strict <"]),
    (checks.check_expected_min_distance, _float64_one, ["keep the inputs' dtype"]),
])
def test_hidden_parts_catch_what_the_public_part_lets_through(monkeypatch, check, wrong, words):
    from course_lib.checks import _core

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    res, hid = _hidden(check, wrong)
    assert res.passed, res.verdict()  # the public part lets it through...
    _failed(hid, *words)              # ...the hidden part names it


def test_hidden_parts_flag_a_wrapper_of_the_library(monkeypatch):
    from course_lib.checks import _core

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    res, hid = _hidden(checks.check_inside_outside, lambda p, a, e: P.superquadric_inside_outside(p, a, e))
    assert res.passed
    _failed(hid, "delegated to course_lib.models.primitives.superquadric_inside_outside")
    res, hid = _hidden(checks.check_expected_min_distance, lambda d, p: P.expected_min_distance(d, p))
    assert res.passed
    _failed(hid, "delegated to course_lib.models.primitives.expected_min_distance")
