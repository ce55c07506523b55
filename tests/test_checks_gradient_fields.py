"""The chapter-10 self-checks pass the reference, fail plausible wrong answers by name, and flag stubs."""

from __future__ import annotations

import math

import pytest
import torch
from check_helpers import failed as _failed
from check_helpers import hidden_results, stub

from course_lib import checks

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- reference solutions, written independently of course_lib.models.shapegf ---------------
def analytic_score(x, points, sigma, two=2.0, sign=1.0, power=2, uniform=False, naive=False):
    d2 = torch.cdist(x, points).square()
    if uniform:
        w = torch.full_like(d2, 1.0 / points.shape[1])
    elif naive:
        e = torch.exp(-d2 / (two * sigma ** 2))
        w = e / e.sum(-1, keepdim=True)
    else:
        w = torch.softmax(-d2 / (two * sigma ** 2), dim=-1)
    return sign * (w @ points - x) / sigma ** power


def dsm_loss(predict, points, sigmas, *, target_sign=-1.0, power=1, half=0.5, noise_power=1, per_batch=False,
             reduce="mean", detach=False, mean_xyz=False):
    b = points.shape[0]
    idx = torch.randint(0, len(sigmas), (1,) if per_batch else (b,)).expand(b)
    s = sigmas[idx]
    eps = torch.randn_like(points)
    noisy = points + s[:, None, None] ** noise_power * eps
    target = target_sign * (noisy - points)
    pred = predict(noisy, s)
    if detach:
        pred = pred.detach()
    sq = (pred - target).square()
    sq = sq.mean(-1) if mean_xyz else sq.sum(-1)
    per = half * sq / s[:, None] ** power
    return per.mean() if reduce == "mean" else per.sum()


def langevin(score_fn, x0, sigmas, steps, ratio, *, reverse=False, extra_step=0, alpha_factor=2.0,
             grad_coef=0.5, noise_pow=0.5, noise=True, grad_first=False, ignore_ratio=False):
    x = x0.clone()
    levels = list(sigmas)[::-1] if reverse else list(sigmas)
    for s in levels:
        s = float(s)
        alpha = alpha_factor * s * s * (1.0 if ignore_ratio else ratio)
        sb = torch.full((x.shape[0],), s)
        for _ in range(steps + extra_step):
            if grad_first:
                x = x + grad_coef * alpha * score_fn(x, sb)
            if noise:
                x = x + alpha ** noise_pow * torch.randn_like(x)
            if not grad_first:
                x = x + grad_coef * alpha * score_fn(x, sb)
    return x






def test_references_pass():
    assert checks.check_analytic_score(analytic_score, quiet=True).passed
    assert checks.check_dsm_loss(dsm_loss, quiet=True).passed
    assert checks.check_annealed_langevin(langevin, quiet=True).passed


def test_library_functions_pass():
    from course_lib.models import shapegf as gf

    assert checks.check_analytic_score(gf.analytic_score, quiet=True).passed
    assert checks.check_dsm_loss(gf.dsm_loss, quiet=True).passed
    assert checks.check_annealed_langevin(
        lambda f, x, s, k, r: gf.annealed_langevin(f, x, s, k, r), quiet=True).passed


def test_stubs_are_not_implemented():
    for check in (checks.check_analytic_score, checks.check_dsm_loss, checks.check_annealed_langevin):
        res = check(stub, quiet=True)
        assert res.status == "not_implemented", res.verdict()


def test_analytic_score_wrong_answers():
    c = checks.check_analytic_score
    _failed(c(lambda x, p, s: analytic_score(x, p, s, sign=-1.0), quiet=True), "wrong direction")
    _failed(c(lambda x, p, s: analytic_score(x, p, s, power=0), quiet=True), "displacement", "divide by sigma^2")
    _failed(c(lambda x, p, s: analytic_score(x, p, s, power=1), quiet=True), "not by sigma")
    _failed(c(lambda x, p, s: analytic_score(x, p, s, two=1.0), quiet=True), "factor 2")
    _failed(c(lambda x, p, s: analytic_score(x, p, s, uniform=True), quiet=True), "same weight")
    _failed(c(lambda x, p, s: analytic_score(x, p, s, naive=True), quiet=True), "underflows", "softmax")
    _failed(c(lambda x, p, s: analytic_score(x, p, s)[:, :, :2], quiet=True), "shape")
    _failed(c(lambda x, p, s: analytic_score(x, p, s) * float("nan"), quiet=True), "NaN")


def test_dsm_loss_wrong_answers():
    c = checks.check_dsm_loss
    _failed(c(lambda f, p, s: dsm_loss(f, p, s, target_sign=1.0), quiet=True), "wrong sign")
    _failed(c(lambda f, p, s: dsm_loss(f, p, s, power=2), quiet=True), "NCSN")
    _failed(c(lambda f, p, s: dsm_loss(f, p, s, power=0), quiet=True), "weight is missing")
    _failed(c(lambda f, p, s: dsm_loss(f, p, s, power=-1), quiet=True), "not multiply")
    _failed(c(lambda f, p, s: dsm_loss(f, p, s, half=1.0), quiet=True), "1/2")
    _failed(c(lambda f, p, s: dsm_loss(f, p, s, noise_power=2), quiet=True), "sigma^2 * eps")
    _failed(c(lambda f, p, s: dsm_loss(f, p, s, per_batch=True), quiet=True), "per *shape*")
    _failed(c(lambda f, p, s: dsm_loss(f, p, s, reduce="sum"), quiet=True), "summed")
    _failed(c(lambda f, p, s: dsm_loss(f, p, s, detach=True), quiet=True), "detached")
    _failed(c(lambda f, p, s: dsm_loss(f, p, s, mean_xyz=True), quiet=True), "over xyz")
    _failed(c(lambda f, p, s: dsm_loss(f, p, s) * float("nan"), quiet=True), "NaN")

    def scalar_sigma(f, p, s):
        i = int(torch.randint(0, len(s), (1,)))
        return dsm_loss(lambda x, _s: f(x, s[i]), p, s[i:i + 1])

    _failed(c(scalar_sigma, quiet=True), "one sigma per shape")


def test_annealed_langevin_wrong_answers():
    c = checks.check_annealed_langevin

    def mut(**kw):
        return lambda f, x, s, k, r: langevin(f, x, s, k, r, **kw)

    _failed(c(mut(reverse=True), quiet=True), "small to large")
    _failed(c(mut(extra_step=1), quiet=True), "per level", "steps_per_level")
    _failed(c(mut(extra_step=-1), quiet=True), "per level")
    _failed(c(mut(grad_coef=1.0), quiet=True), "alpha / 2")
    _failed(c(mut(alpha_factor=1.0), quiet=True), "2 sigma^2")
    _failed(c(mut(ignore_ratio=True), quiet=True), "step_ratio")
    _failed(c(mut(noise=False), quiet=True), "no noise")
    _failed(c(mut(noise_pow=1.0), quiet=True), "std alpha")
    _failed(c(mut(grad_first=True), quiet=True), "noise first")
    _failed(c(lambda f, x, s, k, r: langevin(f, x, s, k, r)[:, :10], quiet=True), "shape")

    def nan_out(f, x, s, k, r):
        return langevin(f, x, s, k, r) * math.nan

    _failed(c(nan_out, quiet=True), "NaN")


# --- the mistakes the lab walkthrough found accepted (probes/student_labs/mut10.py) -----------------------
def _dsm_reference(predict, points, sigmas, generator=None):
    b = points.shape[0]
    idx = torch.randint(len(sigmas), (b,), generator=generator)
    s = sigmas[idx]
    eps = torch.randn(points.shape, generator=generator)
    pred = predict(points + s[:, None, None] * eps, s)
    return ((pred + s[:, None, None] * eps) ** 2).sum(-1).div(2 * s[:, None]).mean()


def test_dsm_loss_with_a_generator_reseeded_at_every_call():
    def reseeded(predict, points, sigmas):
        return _dsm_reference(predict, points, sigmas, generator=torch.Generator().manual_seed(0))

    assert checks.check_dsm_loss(lambda f, p, s: _dsm_reference(f, p, s), quiet=True).passed
    _failed(checks.check_dsm_loss(reseeded, quiet=True), "same noise", "seeded inside")


def test_dsm_loss_that_modifies_the_points():
    def in_place(predict, points, sigmas):
        out = _dsm_reference(predict, points, sigmas)
        points.add_(1.0)
        return out

    _failed(checks.check_dsm_loss(in_place, quiet=True), "in place")


def _langevin(score_fn, x0, sigmas, steps, ratio, shared_noise=False, inplace=False):
    x = x0 if inplace else x0.clone()
    for sg in sigmas:
        sg = float(sg)
        a = 2 * sg ** 2 * ratio
        st = torch.full((x.shape[0],), sg, dtype=x.dtype)
        for _ in range(steps):
            n = torch.randn_like(x[:1]).expand_as(x) if shared_noise else torch.randn_like(x)
            if inplace:
                x += a ** 0.5 * n
                x += a / 2 * score_fn(x, st)
            else:
                x = x + a ** 0.5 * n
                x = x + a / 2 * score_fn(x, st)
    return x


def test_langevin_with_noise_shared_across_the_batch():
    assert checks.check_annealed_langevin(_langevin, quiet=True).passed
    _failed(checks.check_annealed_langevin(lambda *a: _langevin(*a, shared_noise=True), quiet=True), "same noise",
           "randn_like(x)")


def test_langevin_that_overwrites_x0():
    _failed(checks.check_annealed_langevin(lambda *a: _langevin(*a, inplace=True), quiet=True), "in place")


# --- each mistake of the lab walkthrough is named (issue #39; probes/student_labs/mut10*.py) ---------------
def _dsm_parts(predict, points, sigmas, *, noisy_input=True, per_point=False):
    """Draw the levels and the noise, call predict; return (pred, target -sigma eps, sigma (B, 1), eps)."""
    b, n = points.shape[:2]
    if per_point:
        s_pt = sigmas[torch.randint(len(sigmas), (b, n))]
        eps = torch.randn_like(points)
        pred = predict(points + s_pt[..., None] * eps, s_pt[:, 0])
        return pred, -s_pt[..., None] * eps, s_pt, eps
    s = sigmas[torch.randint(len(sigmas), (b,))]
    eps = torch.randn_like(points)
    pred = predict(points + s[:, None, None] * eps if noisy_input else points, s)
    return pred, -s[:, None, None] * eps, s[:, None], eps


def _dsm_without_weight(predict, points, sigmas):
    pred, target, _, _ = _dsm_parts(predict, points, sigmas)
    return (pred - target).pow(2).sum(-1).mean()


def _dsm_target_minus_eps(predict, points, sigmas):
    pred, _, s, eps = _dsm_parts(predict, points, sigmas)
    return ((pred + eps).pow(2).sum(-1) / (2 * s)).mean()


def _dsm_batch_sigma(predict, points, sigmas):
    pred, target, s, _ = _dsm_parts(predict, points, sigmas)
    return (pred - target).pow(2).sum(-1).mean() / (2 * s.mean())


def _dsm_norm(predict, points, sigmas):
    pred, target, s, _ = _dsm_parts(predict, points, sigmas)
    return ((pred - target).norm(dim=-1) / (2 * s)).mean()


def _dsm_weight_from_a_second_draw(predict, points, sigmas):
    pred, target, _, _ = _dsm_parts(predict, points, sigmas)
    other = sigmas[torch.randint(len(sigmas), (points.shape[0],))]
    return ((pred - target).pow(2).sum(-1) / (2 * other[:, None])).mean()


def _dsm_clean_points(predict, points, sigmas):
    pred, target, s, _ = _dsm_parts(predict, points, sigmas, noisy_input=False)
    return ((pred - target).pow(2).sum(-1) / (2 * s)).mean()


def _dsm_sigma_per_point(predict, points, sigmas):
    pred, target, s, _ = _dsm_parts(predict, points, sigmas, per_point=True)
    return ((pred - target).pow(2).sum(-1) / (2 * s)).mean()


@pytest.mark.parametrize("wrong, words", [
    (_dsm_without_weight, ["weight 1 / (2 sigma) is missing", "divide each shape's squared error by 2 sigma"]),
    (_dsm_target_minus_eps, ["target is -eps", "-sigma * eps"]),
    (_dsm_batch_sigma, ["one weight for the whole batch", "its own"]),
    (_dsm_norm, ["not squared", "square"]),
    (_dsm_weight_from_a_second_draw, ["another level than the shape's noise", "two draws"]),
    (_dsm_clean_points, ["predict got the clean points", "x + sigma * eps"]),
    (_dsm_sigma_per_point, ["varies from point to point", "one level per shape"]),
])
def test_dsm_loss_mistakes_are_named(wrong, words):
    _failed(checks.check_dsm_loss(wrong, quiet=True), *words)


def test_dsm_loss_other_mistakes_get_the_likeliest_cause():
    _failed(checks.check_dsm_loss(lambda f, p, s: 1.1 * dsm_loss(f, p, s), quiet=True), "it should be",
            "Likeliest cause", "the target", "the weight", "the reduction")


def _score_with(x, points, sigma, weights):
    return (weights(torch.cdist(x, points)) @ points - x) / sigma ** 2


@pytest.mark.parametrize("wrong, words", [
    (lambda x, p, s: _score_with(x, p, s, lambda d: torch.softmax(-d ** 2 / (2 * s ** 2), dim=1)),
     ["over the query points (dim 1)", "dim=-1"]),
    (lambda x, p, s: _score_with(x, p, s, lambda d: torch.softmax(-d / (2 * s ** 2), dim=-1)),
     ["distance |x - p_n|, not its square"]),
    (lambda x, p, s: _score_with(x, p, s, lambda d: torch.nn.functional.one_hot(d.argmin(-1), p.shape[1]).to(x)),
     ["only the nearest point counts"]),
    (lambda x, p, s: 1.2 * analytic_score(x, p, s), ["first differing element", "Likeliest cause"]),
])
def test_analytic_score_mistakes_are_named(wrong, words):
    _failed(checks.check_analytic_score(wrong, quiet=True), *words)


def test_the_diagnoses_let_correct_answers_through():
    """Correct answers written other ways than the references pass every new diagnosis."""
    def dsm_noise_first(predict, points, sigmas):  # draws the noise before the levels: still right
        eps = torch.randn_like(points)
        s = sigmas[torch.randint(len(sigmas), (points.shape[0],))][:, None, None]
        noisy = points + s * eps
        return (0.5 * (predict(noisy, s.reshape(-1)) - (points - noisy)).square().sum(-1) / s[..., 0]).mean()

    def dsm_loop(predict, points, sigmas):  # the weight applied shape by shape
        s = sigmas[torch.randint(len(sigmas), (points.shape[0],))]
        eps = torch.randn_like(points)
        pred = predict(points + s[:, None, None] * eps, s)
        per = [((pred[i] + s[i] * eps[i]) ** 2).sum(-1).mean() / (2 * s[i]) for i in range(len(s))]
        return torch.stack(per).mean()

    assert checks.check_dsm_loss(dsm_noise_first, quiet=True).passed
    assert checks.check_dsm_loss(dsm_loop, quiet=True).passed


# --- hidden parts (the grader's COURSE_HIDDEN_CHECKS=1) ------------------------------------------------
_hidden = hidden_results  # (public result, hidden result)


def test_hidden_parts_pass_the_references(monkeypatch):
    from course_lib.checks import _core

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    for check, fn in ((checks.check_analytic_score, analytic_score), (checks.check_dsm_loss, dsm_loss),
                      (checks.check_annealed_langevin, langevin)):
        public, hid = _hidden(check, fn)
        assert public.passed, public.verdict()
        assert hid.passed, hid.verdict()


def test_hidden_parts_catch_what_the_public_parts_miss(monkeypatch):
    from course_lib.checks import _core

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")

    def score_float32(x, p, s):  # casts to float32: right on the public float32 data
        return analytic_score(x.float(), p.float(), s)

    def score_in_place(x, p, s):  # overwrites the caller's x: the public part passes copies
        d2 = torch.cdist(x, p).square()
        w = torch.softmax(-d2 / (2 * s ** 2), dim=-1)
        x -= w @ p
        return -x / s ** 2

    for fn, words in ((score_float32, ("should stay torch.float64",)), (score_in_place, ("in place",))):
        public, hid = _hidden(checks.check_analytic_score, fn)
        assert public.passed, public.verdict()
        _failed(hid, *words)

    def dsm_off_by_one(predict, points, sigmas):  # never draws the last level (randint's bound is exclusive)
        b = points.shape[0]
        s = sigmas[torch.randint(0, len(sigmas) - 1, (b,))]
        eps = torch.randn_like(points)
        pred = predict(points + s[:, None, None] * eps, s)
        return (0.5 * (pred + s[:, None, None] * eps).square().sum(-1) / s[:, None]).mean()

    def dsm_shared_noise(predict, points, sigmas):  # one noise draw broadcast over the batch
        b = points.shape[0]
        s = sigmas[torch.randint(len(sigmas), (b,))]
        eps = torch.randn_like(points[:1]).expand_as(points)
        pred = predict(points + s[:, None, None] * eps, s)
        return (0.5 * (pred + s[:, None, None] * eps).square().sum(-1) / s[:, None]).mean()

    for fn, words in ((dsm_off_by_one, ("never drawn", "upper bound")), (dsm_shared_noise, ("same noise",))):
        public, hid = _hidden(checks.check_dsm_loss, fn)  # the public part names them now (issue #34)
        _failed(public, *words)

    def dsm_numpy_noise(predict, points, sigmas):  # numpy's random state: fresh, but not seedable with torch
        import numpy as np

        b = points.shape[0]
        s = sigmas[torch.as_tensor(np.random.randint(len(sigmas), size=b))]
        eps = torch.as_tensor(np.random.randn(*points.shape), dtype=points.dtype)
        pred = predict(points + s[:, None, None] * eps, s)
        return (0.5 * (pred + s[:, None, None] * eps).square().sum(-1) / s[:, None]).mean()

    public, hid = _hidden(checks.check_dsm_loss, dsm_numpy_noise)
    assert public.passed, public.verdict()
    _failed(hid, "torch.manual_seed")

    def langevin_seeded(score_fn, x0, sigmas, steps, ratio):  # a generator seeded inside: same noise every call
        g = torch.Generator().manual_seed(0)
        x = x0.clone()
        for sg in sigmas:
            a = 2 * float(sg) ** 2 * ratio
            for _ in range(steps):
                x = x + a ** 0.5 * torch.randn(x.shape, generator=g, dtype=x.dtype)
                x = x + a / 2 * score_fn(x, torch.full((x.shape[0],), float(sg)))
        return x

    def langevin_float32(score_fn, x0, sigmas, steps, ratio):
        return langevin(score_fn, x0.float(), sigmas, steps, ratio)

    for fn, words in ((langevin_seeded, ("same samples", "seeded inside")),
                      (langevin_float32, ("should stay float64",))):
        public, hid = _hidden(checks.check_annealed_langevin, fn)
        assert public.passed, public.verdict()
        _failed(hid, *words)


def test_hidden_part_accepts_an_own_langevin_decorated_with_no_grad(monkeypatch):
    """@torch.no_grad()'s wrapper is one code object for every decorated function: the library's decorated
    annealed_langevin must not make a student's own decorated one look like a call to it."""
    from course_lib.checks import _core

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    public, hid = _hidden(checks.check_annealed_langevin, torch.no_grad()(_langevin))
    assert public.passed and hid.passed, hid.verdict()


def test_hidden_parts_flag_a_wrapper_around_the_library(monkeypatch):
    from course_lib.checks import _core
    from course_lib.models import shapegf as gf

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    _, hid = _hidden(checks.check_analytic_score, lambda x, p, s: gf.analytic_score(x, p, s))
    _failed(hid, "delegated to course_lib.models.shapegf.analytic_score")
    _, hid = _hidden(checks.check_dsm_loss, lambda f, p, s: gf.dsm_loss(f, p, s))
    _failed(hid, "delegated to course_lib.models.shapegf.dsm_loss")
    _, hid = _hidden(checks.check_annealed_langevin, lambda f, x, s, k, r: gf.annealed_langevin(f, x, s, k, r))
    _failed(hid, "delegated to course_lib.models.shapegf.annealed_langevin")


# --- issue #34: level draws that skip levels, noise shared or reused (probes ch09_ch10/t2.py, t7.py) --------------
def _dsm_draw(draw, noise=None):
    def fn(predict, points, sigmas):
        b = points.shape[0]
        s = sigmas[draw(len(sigmas), b)]
        eps = torch.randn_like(points) if noise is None else noise(points)
        pred = predict(points + s[:, None, None] * eps, s)
        return (0.5 * (pred + s[:, None, None] * eps).square().sum(-1) / s[:, None]).mean()

    return fn


@pytest.mark.parametrize("draw, words", [
    (lambda lv, b: torch.randint(lv - 1, (b,)), ("sigmas[-1]", "never drawn", "upper bound")),
    (lambda lv, b: torch.randint(lv // 2, (b,)), ("smallest levels sigmas[5:]", "never drawn")),
    (lambda lv, b: torch.randint(1, lv, (b,)), ("sigmas[0]", "start at 0")),
    (lambda lv, b: torch.randint(lv, (b,)).clamp(2, 6), ("never drawn",)),
    (lambda lv, b: torch.multinomial(torch.linspace(0.2, 3.0, lv), b, replacement=True), ("uniformly",)),
])
def test_dsm_loss_level_draws_that_skip_or_favour_levels(draw, words):
    _failed(checks.check_dsm_loss(_dsm_draw(draw), quiet=True), *words)


@pytest.mark.parametrize("noise, words", [
    (lambda p: torch.randn(p.shape[1:]).expand_as(p), ("every shape of the batch got the same noise",)),
    (lambda p: torch.randn(p.shape[0], 1, 3).expand_as(p), ("every point of a shape got the same noise vector",)),
    (lambda p: (lambda e: (e + 0.9 * e[:1]) / 1.345)(torch.randn_like(p)), ("correlated",)),
])
def test_dsm_loss_noise_shared_across_shapes_or_points(noise, words):
    _failed(checks.check_dsm_loss(_dsm_draw(lambda lv, b: torch.randint(lv, (b,)), noise), quiet=True), *words)


def _langevin_noise(make):
    """A Langevin loop whose noise for (level i, step j) comes from make(x, i, j, memory)."""
    @torch.no_grad()
    def fn(score_fn, x0, sigmas, steps, ratio):
        x, memory = x0.clone(), {}
        for i, sg in enumerate(sigmas):
            sg = float(sg)
            a = 2 * sg ** 2 * ratio
            st = torch.full((x.shape[0],), sg, dtype=x.dtype)
            for j in range(steps):
                x = x + a ** 0.5 * make(x, i, j, memory)
                x = x + a / 2 * score_fn(x, st)
        return x

    return fn


@pytest.mark.parametrize("make, words", [
    (lambda x, i, j, m: m.setdefault("xi", torch.randn_like(x)), ("reused at every step", "drawn once before")),
    (lambda x, i, j, m: m.setdefault(i, torch.randn_like(x)), ("reused at every step of a level",)),
    (lambda x, i, j, m: torch.randn(1, 1, 3).expand_as(x), ("every point got the same noise vector",)),
    (lambda x, i, j, m: torch.randn(x.shape[0], 1, 3).expand_as(x), ("every point got the same noise vector",)),
    (lambda x, i, j, m: torch.randn(x.shape[1:]).expand_as(x), ("both clouds of the batch got the same noise",)),
])
def test_langevin_noise_reused_or_shared_is_named(make, words):
    assert checks.check_annealed_langevin(_langevin_noise(lambda x, i, j, m: torch.randn_like(x)), quiet=True).passed
    _failed(checks.check_annealed_langevin(_langevin_noise(make), quiet=True), *words)


# --- issue #34: lab 10's exercise 4, the conditioning layer weight @ [x, z, sigma] + bias ------------------------
def condition_layer(x, z, sigma, weight, bias, *, order="xzs", zmap=None, smap=None, use_bias=True):
    b, m, _ = x.shape
    zz = z[:, None, :].expand(b, m, -1) if zmap is None else zmap(z, b, m)
    ss = sigma[:, None, None].expand(b, m, 1) if smap is None else smap(sigma, b, m)
    parts = {"x": x, "z": zz, "s": ss}
    out = torch.cat([parts[k] for k in order], -1) @ weight.T
    return out + bias if use_bias else out


def condition_split(x, z, sigma, weight, bias):  # the library's way: the per-shape part once per shape
    cs = torch.cat([z, sigma[:, None]], -1)
    return x @ weight[:, :3].T + (cs @ weight[:, 3:].T)[:, None, :] + bias


def test_condition_layer_references_and_stub():
    for fn in (condition_layer, condition_split):
        assert checks.check_condition_layer(fn, quiet=True).passed
    assert checks.check_condition_layer(stub, quiet=True).status == "not_implemented"


def _tiled(v, b, m):  # z.repeat(M, 1).reshape(B, M, L): the whole batch tiled
    return v.reshape(b, -1).repeat(m, 1).reshape(b, m, -1)


@pytest.mark.parametrize("kw, words", [
    (dict(order="xsz"), ("[x, sigma, z]",)),
    (dict(order="zxs"), ("[z, x, sigma]",)),
    (dict(use_bias=False), ("bias is missing",)),
    (dict(zmap=lambda z, b, m: z[:1, None, :].expand(b, m, -1)), ("first shape's code",)),
    (dict(smap=lambda s, b, m: s[:1, None, None].expand(b, m, 1)), ("first shape's sigma",)),
    (dict(zmap=_tiled), ("codes are mixed across shapes",)),
    (dict(smap=_tiled), ("levels are mixed across shapes",)),
    (dict(smap=lambda s, b, m: s.log()[:, None, None].expand(b, m, 1)), ("not log(sigma)",)),
    (dict(smap=lambda s, b, m: (s * s)[:, None, None].expand(b, m, 1)), ("not sigma^2",)),
    (dict(smap=lambda s, b, m: torch.zeros(b, m, 1, dtype=s.dtype)), ("sigma is missing",)),
])
def test_condition_layer_mistakes_are_named(kw, words):
    _failed(checks.check_condition_layer(lambda *a: condition_layer(*a, **kw), quiet=True), *words)


def test_condition_layer_other_mistakes():
    c = checks.check_condition_layer

    def only_condition(x, z, sigma, weight, bias):
        b, m, _ = x.shape
        return torch.cat([x, z[:, None, :].expand(b, m, -1), sigma[:, None, None].expand(b, m, 1)], -1)

    _failed(c(only_condition, quiet=True), "the condition c itself")
    _failed(c(lambda *a: condition_layer(*a).detach(), quiet=True), "no gradient")
    _failed(c(lambda *a: condition_layer(*a).double(), quiet=True), "should stay float32")
    _failed(c(lambda x, z, s, w, b: condition_layer(x, z, s, w.T.contiguous().T, b)[:, :, :4], quiet=True), "shape")

    def in_place(x, z, sigma, weight, bias):
        out = condition_layer(x, z, sigma, weight, bias)
        z.zero_()
        return out

    _failed(c(in_place, quiet=True), "in place")


# --- issue #34: more plausible mistakes, each named --------------------------------------------------------------
def _score_weights(weights_scale, divide=1.0):
    def fn(x, p, s):
        w = torch.softmax(-torch.cdist(x, p).square() / weights_scale(s), -1)
        return (w @ p - x) / s ** 2 / (p.shape[1] if divide == "N" else 1.0)

    return fn


@pytest.mark.parametrize("fn, words", [
    (_score_weights(lambda s: 2 * s), ("divide by 2 sigma;",)),
    (_score_weights(lambda s: 2 * s ** 2, divide="N"), ("divided by N",)),
])
def test_analytic_score_more_mistakes(fn, words):
    _failed(checks.check_analytic_score(fn, quiet=True), *words)


def _dsm_variant(*, predict_sigma=lambda s, i: s, loss=None):
    def fn(predict, points, sigmas):
        b = points.shape[0]
        i = torch.randint(len(sigmas), (b,))
        s = sigmas[i]
        eps = torch.randn_like(points)
        noisy = points + s[:, None, None] * eps
        pred = predict(noisy, predict_sigma(s, i))
        return loss(pred, points, noisy, s, eps)

    return fn


@pytest.mark.parametrize("kw, words", [
    (dict(predict_sigma=lambda s, i: s ** 2), ("predict got sigma^2",)),
    (dict(predict_sigma=lambda s, i: i.float()), ("index of each shape's level",)),
    (dict(loss=lambda pred, p, xt, s, e: (0.5 * (pred + s[:, None, None] * e).square().sum(-1) / s[:, None, None])
          .mean()), ("broadcasts to (B, B, N)",)),
    (dict(loss=lambda pred, p, xt, s, e: (0.5 * (pred - p).square().sum(-1) / s[:, None]).mean()),
     ("the clean point itself",)),
    (dict(loss=lambda pred, p, xt, s, e: (0.5 * (pred + e / s[:, None, None]).square().sum(-1) / s[:, None]).mean()),
     ("-eps / sigma is the score",)),
])
def test_dsm_loss_more_mistakes(kw, words):
    kw.setdefault("loss", lambda pred, p, xt, s, e: (0.5 * (pred + s[:, None, None] * e).square().sum(-1)
                                                     / s[:, None]).mean())
    _failed(checks.check_dsm_loss(_dsm_variant(**kw), quiet=True), *words)


def _langevin_variant(*, alpha=lambda s, levels, r: 2 * s * s * r, noise=lambda x, s, a: a ** 0.5 * torch.randn_like(x),
                      sign=1.0):
    @torch.no_grad()
    def fn(score_fn, x0, sigmas, steps, ratio):
        x, levels = x0.clone(), [float(v) for v in sigmas]
        for sg in levels:
            a = alpha(sg, levels, ratio)
            st = torch.full((x.shape[0],), sg, dtype=x.dtype)
            for _ in range(steps):
                x = x + noise(x, sg, a)
                x = x + sign * a / 2 * score_fn(x, st)
        return x

    return fn


@pytest.mark.parametrize("kw, words", [
    (dict(alpha=lambda s, lv, r: 2 * s * r), ("you used sigma, not sigma^2",)),
    (dict(alpha=lambda s, lv, r: 2 * lv[-1] ** 2 * r), ("the last sigma at every level",)),
    (dict(alpha=lambda s, lv, r: 2 * lv[0] ** 2 * r), ("the first sigma at every level",)),
    (dict(sign=-1.0), ("against the score",)),
    (dict(noise=lambda x, s, a: s * torch.randn_like(x)), ("noise has std sigma",)),
    (dict(noise=lambda x, s, a: a ** 0.5 * (torch.rand_like(x) * 2 - 1) * 3 ** 0.5), ("not Gaussian",)),
    (dict(noise=lambda x, s, a: a ** 0.5 * torch.rand_like(x)), ("torch.rand_like",)),
])
def test_langevin_more_mistakes(kw, words):
    assert checks.check_annealed_langevin(_langevin_variant(), quiet=True).passed
    _failed(checks.check_annealed_langevin(_langevin_variant(**kw), quiet=True), *words)


def test_condition_layer_hidden_part(monkeypatch):
    from check_helpers import hidden_results_on

    for fn in (condition_layer, condition_split):
        public, hid = hidden_results_on(monkeypatch, checks.check_condition_layer, fn)
        assert public.passed and hid.passed, hid.verdict()

    def in_float32(x, z, sigma, weight, bias):  # right to float32 precision on the public float64 inputs
        return condition_layer(x.float(), z.float(), sigma.float(), weight.float(), bias.float())

    public, hid = hidden_results_on(monkeypatch, checks.check_condition_layer, in_float32)
    assert public.passed, public.verdict()
    _failed(hid, "should stay torch.float64")


@pytest.mark.parametrize("pick, words", [
    (lambda lv: lv[-1:], ("never got the levels [1.0, 0.3]",)),
    (lambda lv: lv[:-1], ("never got the levels [0.1]",)),
    (lambda lv: lv[1:], ("never got the levels [1.0]",)),
])
def test_langevin_levels_skipped_are_named(pick, words):
    """The walkthrough's 'only the last level run' was reported as a wrong number of steps per level."""
    def fn(score_fn, x0, sigmas, steps, ratio):
        return langevin(score_fn, x0, pick(list(sigmas)), steps, ratio)

    _failed(checks.check_annealed_langevin(fn, quiet=True), *words)
