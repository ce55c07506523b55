"""Self-checks of chapter 10 (``labs/10_gradient_fields_lab.ipynb``): analytic score, DSM loss, annealed Langevin,
the conditioning layer.

Introduced in ``lectures/10_gradient_fields.ipynb``.  The references: the library's
:func:`course_lib.models.shapegf.analytic_score` (itself tested against autograd of an
independent log density), the DSM loss recomputed from what the student's loss fed to the
predictor, and the Langevin update recovered from the points the student's loop passed to
a probing score function (step by regression, noise by its spread), then a run on the
analytic field of a sphere.
"""

from __future__ import annotations

import math

import torch

from ._core import CheckFailed, call_student, expect, expect_close, expect_tensor, self_check

__all__ = ["check_analytic_score", "check_dsm_loss", "check_annealed_langevin", "check_condition_layer"]


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-3, atol: float = 1e-6) -> bool:
    return a.shape == b.shape and bool(torch.isfinite(a).all()) and bool(
        ((a - b).abs() <= atol + rtol * b.abs()).all())


# ---------------------------------------------------------------------------
# exercise 1: the analytic score
# ---------------------------------------------------------------------------
@self_check
def check_analytic_score(fn) -> str:
    """``fn(x (B, M, 3), points (B, N, 3), sigma float) -> (B, M, 3)``: grad_x log Q_sigma(x).

    ``Q_sigma`` is the cloud blurred by ``N(0, sigma^2 I)``: the mixture of one Gaussian per point.
    """
    from course_lib.models.shapegf import analytic_score

    g = torch.Generator().manual_seed(0)
    pts = torch.rand(2, 12, 3, generator=g) - 0.5
    x = torch.rand(2, 9, 3, generator=g) - 0.5
    for sigma in (0.3, 0.08):
        out = call_student(fn, x.clone(), pts.clone(), sigma)
        expect_tensor(out, f"score (sigma={sigma})", shape=(2, 9, 3), finite=False)
        out = out.detach().to(torch.float64)
        ref = analytic_score(x.double(), pts.double(), sigma)
        if not bool(torch.isfinite(out).all()):
            raise CheckFailed(f"the score contains NaN or inf at sigma={sigma}")
        if _close(out, ref):
            continue
        disp = ref * sigma ** 2
        if _close(out, -ref):
            raise CheckFailed("wrong direction: the score points from x towards the (weighted) cloud points, "
                              "(sum_n w_n p_n - x) / sigma^2")
        if _close(out, disp):
            raise CheckFailed("that is sigma^2 times the score (the displacement towards the cloud): divide by sigma^2")
        if _close(out, ref * sigma):
            raise CheckFailed("divide by sigma^2, not by sigma (the Gaussian's log is -|x - p|^2 / (2 sigma^2))")
        narrow = analytic_score(x.double(), pts.double(), sigma / math.sqrt(2)) / 2.0
        if _close(out, narrow):
            raise CheckFailed("the weights should be softmax(-|x - p_n|^2 / (2 sigma^2)): the factor 2 is missing")
        plain = (pts.double().mean(1, keepdim=True) - x.double()) / sigma ** 2
        if _close(out, plain):
            raise CheckFailed("every point got the same weight: w_n must be the softmax over n of "
                              "-|x - p_n|^2 / (2 sigma^2) (the nearest points dominate)")
        xd, pd = x.double(), pts.double()
        d2 = torch.cdist(xd, pd).square()
        named = (
            ("the softmax runs over the query points (dim 1) instead of the cloud's points: the weights of each "
             "query x sum to 1 over the N points, softmax(..., dim=-1)", torch.softmax(-d2 / (2 * sigma ** 2), 1)),
            ("the weights use the distance |x - p_n|, not its square: softmax(-|x - p_n|^2 / (2 sigma^2))",
             torch.softmax(-d2.sqrt() / (2 * sigma ** 2), -1)),
            ("only the nearest point counts (a hard argmin): every point has the weight softmax(-|x - p_n|^2 / "
             "(2 sigma^2)) over n", torch.nn.functional.one_hot(d2.argmin(-1), pts.shape[1]).double()),
        )
        for msg, w in named:
            if _close(out, (w @ pd - xd) / sigma ** 2):
                raise CheckFailed(msg)
        if _close(out, (torch.softmax(-d2 / (2 * sigma), -1) @ pd - xd) / sigma ** 2):
            raise CheckFailed("the weights divide by 2 sigma; the Gaussian's log is -|x - p|^2 / (2 sigma^2) (sigma is "
                              "a standard deviation, sigma^2 the variance)")
        if _close(out, ref / pts.shape[1]):
            raise CheckFailed("you divided by N: the softmax weights already sum to 1 over the points, so "
                              "sum_n w_n p_n is the weighted mean; do not divide again")
        err = float((out - ref).abs().max() / ref.abs().max())
        i = tuple(int(v) for v in (~((out - ref).abs() <= 1e-6 + 1e-3 * ref.abs())).nonzero()[0])
        raise CheckFailed(f"wrong values at sigma={sigma} (largest error {err:.2%} of the largest score; the first "
                          f"differing element is at index {i}: got {float(out[i]):.6g}, expected {float(ref[i]):.6g}). "
                          "Likeliest cause: the weights, softmax over the N cloud points (dim -1) of "
                          "-|x - p_n|^2 / (2 sigma^2), or the score (sum_n w_n p_n - x) / sigma^2")
    # small sigma, far from the cloud: exp underflows unless the softmax subtracts its maximum
    far = x + 3.0
    out = call_student(fn, far.clone(), pts.clone(), 0.01)
    expect_tensor(out, "score far from the cloud", shape=(2, 9, 3), finite=False)
    if not bool(torch.isfinite(out).all()):
        raise CheckFailed("NaN or inf at sigma=0.01 for points far from the cloud: exp(-d^2 / (2 sigma^2)) "
                          "underflows to 0/0; use torch.softmax (or subtract the largest logit)")
    expect_close(out.detach().double() * 1e-4, analytic_score(far.double(), pts.double(), 0.01) * 1e-4,
                 "sigma^2 * score at sigma=0.01 far from the cloud", atol=1e-4, rtol=1e-3)
    return "matches the gradient of the smoothed log density at sigma = 0.3, 0.08 and 0.01 (far points)"


# ---------------------------------------------------------------------------
# exercise 2: denoising score matching
# ---------------------------------------------------------------------------
class _Recorder:
    """A small differentiable predictor that records what it was called with."""

    def __init__(self, per_shape: int = 0) -> None:
        # per_shape = B: one weight per shape, (B, 1, 1), all 0.7 (the same predictions): the gradient of the loss
        # with respect to it gives the weight each shape has in the loss
        self.weight = torch.full((per_shape, 1, 1), 0.7, requires_grad=True) if per_shape else \
            torch.tensor(0.7, requires_grad=True)
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.detach().clone(), torch.as_tensor(sigma).detach().clone()))
        return self.weight * torch.tanh(x) * 0.1


def _weight_of_each_shape(fn, points: torch.Tensor, sigmas: torch.Tensor) -> None:
    """Fail with a named message if each shape's weight in the loss is 1 / (2 sigma') for a level sigma' of the schedule
    other than the one of its noise (two draws of the levels).

    A second call with one predictor weight per shape: d loss / d weight_b, divided by what the reference's squared
    error gives with a weight 1 per shape, is the weight ``1 / (2 sigma'_b)`` the loss gives shape ``b``.
    """
    b = points.shape[0]
    rec = _Recorder(per_shape=b)
    loss = call_student(fn, rec, points.clone(), sigmas.clone())
    if len(rec.calls) != 1 or not isinstance(loss, torch.Tensor) or loss.dim() != 0 or not loss.requires_grad:
        return
    xt, s = rec.calls[0]
    if xt.shape != points.shape or s.shape != (b,):
        return
    (g,) = torch.autograd.grad(loss, rec.weight, allow_unused=True)
    w = rec.weight.detach().clone().requires_grad_()
    unweighted = (w * torch.tanh(xt) * 0.1 + (xt - points)).square().sum(-1).mean()  # weight 1 per shape
    (u,) = torch.autograd.grad(unweighted, w)
    if g is None or not bool((g.abs() > 0).all()) or not bool((u.abs() > 0).all()):
        return
    implied = (u / (2 * g)).reshape(-1)  # the sigma'_b of each shape's weight 1 / (2 sigma'_b)
    nearest = sigmas[(implied[:, None] - sigmas[None]).abs().argmin(-1)]
    on_schedule = bool(((implied - nearest).abs() < 1e-3 * nearest).all())
    differ = int(((nearest - s).abs() > 1e-6).sum())
    if on_schedule and differ:
        raise CheckFailed(f"the weight 1 / (2 sigma) of {differ} of the {b} shapes uses another level than the "
                          "shape's noise (two draws of the levels?): draw one level per shape once, and use that same "
                          "sigma for the noise, for predict and for the weight")


def _noise_shared(eps: torch.Tensor, unit: str, fix: str) -> None:
    """Fail with a named message if the standard normal noise ``eps`` ``(B, N, 3)`` is one draw shared by every
    element of the batch, or one vector shared by every point of an element (``unit`` names an element)."""
    e = eps.double()
    if e.shape[1] > 1 and float(e.std(dim=1).mean()) < 0.1 * float(e.abs().mean()) + 1e-9:
        raise CheckFailed(f"every point of a {unit} got the same noise vector (noise of shape (B, 1, 3) broadcast over "
                          f"the points): draw noise of {fix}")
    if e.shape[0] > 1:
        if torch.allclose(e[0], e[1], atol=1e-5):
            raise CheckFailed(f"every {unit} of the batch got the same noise (one draw broadcast over the batch): draw "
                              f"noise of {fix}, so that each {unit} gets its own")
        a, b = e[0] - e[0].mean(), e[1] - e[1].mean()
        corr = float((a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12))
        if abs(corr) > 0.5:
            raise CheckFailed(f"the noise of two {unit}s of the batch is correlated ({corr:.2f}): draw it "
                              f"independently, {fix}")


def _levels_drawn(fn, sigmas: torch.Tensor) -> None:
    """A call with 2,000 shapes: every level of the schedule is drawn, about equally often."""
    n_shapes = 2000
    rec = _Recorder()
    call_student(fn, rec, torch.zeros(n_shapes, 2, 3), sigmas.clone())
    if len(rec.calls) != 1 or rec.calls[0][1].shape != (n_shapes,):
        return
    drawn = rec.calls[0][1]
    idx = (drawn[:, None] - sigmas[None]).abs().argmin(-1)
    counts = torch.bincount(idx, minlength=len(sigmas))
    never = [i for i in range(len(sigmas)) if counts[i] == 0]
    lv = len(sigmas)
    if never == [lv - 1]:
        raise CheckFailed(f"the last (smallest) level sigmas[-1] = {float(sigmas[-1]):g} was never drawn in {n_shapes} "
                          "shapes, so it is never trained: torch.randint(len(sigmas), (B,)) already excludes its upper "
                          "bound (no - 1)")
    if never == [0]:
        raise CheckFailed(f"the first (largest) level sigmas[0] = {float(sigmas[0]):g} was never drawn in {n_shapes} "
                          "shapes: the indices start at 0, torch.randint(len(sigmas), (B,)) (not randint(1, L))")
    if never and never == list(range(never[0], lv)):
        raise CheckFailed(f"the smallest levels sigmas[{never[0]}:] were never drawn in {n_shapes} shapes (only the "
                          f"first {never[0]} of the {lv} levels): draw the index from all of them, "
                          "torch.randint(len(sigmas), (B,))")
    if never:
        raise CheckFailed(f"the levels {never} of the schedule were never drawn in {n_shapes} shapes: draw the index "
                          "uniformly from all of them, torch.randint(len(sigmas), (B,))")
    expect(bool((counts > 0.6 * n_shapes / lv).all()),
           f"the levels should be drawn uniformly (about {n_shapes // lv} times each in {n_shapes} shapes); they were "
           f"drawn {counts.tolist()} times: torch.randint(len(sigmas), (B,))")


@self_check
def check_dsm_loss(fn) -> str:
    """``fn(predict, points (B, N, 3), sigmas (L,)) -> scalar``: the DSM loss with the official weighting.

    One ``sigma`` per shape from ``sigmas``; ``x~ = x + sigma eps``; target ``-sigma eps``;
    ``predict(x~, sigma (B,))``; loss ``mean over shapes and points of ||pred - target||^2 / (2 sigma)``.
    """
    from course_lib.models.shapegf import sigma_schedule

    g = torch.Generator().manual_seed(1)
    b, n = 48, 300
    points = torch.rand(b, n, 3, generator=g) - 0.5
    sigmas = sigma_schedule()
    rec = _Recorder()
    torch.manual_seed(0)
    loss = call_student(fn, rec, points.clone(), sigmas.clone())
    expect(len(rec.calls) == 1, f"predict should be called exactly once (on all the noisy points), "
                                f"it was called {len(rec.calls)} times")
    xt, s = rec.calls[0]
    expect(tuple(xt.shape) == (b, n, 3), f"predict got noisy points of shape {tuple(xt.shape)}, expected {(b, n, 3)}")
    expect(s.dim() == 1 and s.shape[0] == b,
           f"predict should get one sigma per shape, a tensor of shape ({b},); got shape {tuple(s.shape)}")
    if not all(bool((sigmas - v).abs().min() < 1e-6) for v in s):
        if all(bool((sigmas.square() - v).abs().min() < 1e-7) for v in s):
            raise CheckFailed("predict got sigma^2: pass it the level sigma itself (one per shape, the standard "
                              "deviation of the noise)")
        if all(float(v) == int(v) and 0 <= int(v) < len(sigmas) for v in s):
            raise CheckFailed("predict got the index of each shape's level, not the level: pass sigmas[idx]")
        raise CheckFailed("the sigmas passed to predict should be drawn from the schedule `sigmas`")
    expect(len(set(s.tolist())) > 1, "every shape got the same sigma: draw one level per *shape* "
                                     "(torch.randint(len(sigmas), (B,))), not one per batch")
    if bool(((xt - points).abs() < 1e-7).all()):
        raise CheckFailed("predict got the clean points: pass it the noisy points x~ = x + sigma * eps (it learns to "
                          "point from them back to the clean ones)")
    eps = (xt - points) / s[:, None, None]
    _noise_shared(eps, "shape", "the points' full shape, torch.randn_like(points)")
    std = eps.std(dim=(1, 2))
    if bool(((std - s).abs() < 0.1 * s).all()) and not bool(((std - 1).abs() < 0.15).all()):
        raise CheckFailed("the noise is sigma^2 * eps: perturb with x + sigma * eps (sigma is a standard deviation)")
    if not bool(((std - 1).abs() < 0.15).all()):
        # one sigma per shape: |x~ - x| / sigma is chi with 3 degrees of freedom, its 90% / 10% quantiles ~3.3
        r = (xt - points).norm(dim=-1)
        spread = torch.quantile(r, 0.9, dim=1) / torch.quantile(r, 0.1, dim=1).clamp_min(1e-12)
        if float(spread.median()) > 8:
            raise CheckFailed("the noise level varies from point to point within a shape (a sigma drawn per point?): "
                              "draw one level per shape, torch.randint(len(sigmas), (B,)), and broadcast it over the "
                              "points, sigma[:, None, None] * eps")
        raise CheckFailed(f"(x~ - x) / sigma should be standard normal noise per shape; its std per shape ranges "
                          f"{float(std.min()):.3g}..{float(std.max()):.3g}. Likeliest cause: the noise is not "
                          f"sigma[:, None, None] * torch.randn_like(points), with the sigma passed to predict")
    expect(abs(float(eps.mean())) < 0.05, "the noise should have zero mean (torch.randn, not torch.rand)")
    expect(isinstance(loss, torch.Tensor) and loss.dim() == 0,
           f"return a scalar tensor, got {getattr(loss, 'shape', type(loss).__name__)}")
    expect(loss.requires_grad, "the loss is detached from predict's output: no gradient would reach the network")
    with torch.no_grad():
        pred = rec.weight * torch.tanh(xt) * 0.1
        target = -(xt - points)
        sq = (pred - target).square().sum(-1)  # (B, N)
        ref = (0.5 * sq / s[:, None]).mean()
        wrong = {
            "the target has the wrong sign: it is -sigma * eps (pointing back to the clean point)":
                (0.5 * (pred + target).square().sum(-1) / s[:, None]).mean(),
            "that is NCSN's weight 1 / (2 sigma^2); this lab uses the official code's 1 / (2 sigma)":
                (0.5 * sq / s[:, None] ** 2).mean(),
            "the weight is missing: divide each shape's squared error by 2 sigma":
                (0.5 * sq).mean(),
            "the weight should divide by sigma, not multiply": (0.5 * sq * s[:, None]).mean(),
            "the factor 1/2 is missing": (sq / s[:, None]).mean(),
            "sum the squared error over xyz (you averaged over the 3 coordinates)": ref / 3,
            "average over points and shapes (you summed)": (0.5 * sq / s[:, None]).sum(),
            "average over points and shapes (you summed over the points)": (0.5 * sq / s[:, None]).sum(1).mean(),
            "the weight 1 / (2 sigma) is missing (neither the 1/2 nor the division by sigma): divide each shape's "
            "squared error by 2 sigma": sq.mean(),
            "the target is -eps; it is -sigma * eps = -(x~ - x), the displacement back to the clean point":
                (0.5 * (pred + (xt - points) / s[:, None, None]).square().sum(-1) / s[:, None]).mean(),
            "one weight for the whole batch, 1 / (2 mean(sigma)): divide each shape's squared error by its own "
            "2 sigma (sigma[:, None], broadcast over the points)": (0.5 * sq).mean() / s.mean(),
            "the error is not squared (the norm ||pred - target||): use the squared norm, "
            "(pred - target).square().sum(-1), not .norm(dim=-1)": (0.5 * sq.sqrt() / s[:, None]).mean(),
            "sigma[:, None, None] against the squared error of shape (B, N) broadcasts to (B, B, N): every shape's "
            "error is divided by every shape's sigma. After .sum(-1) the weight is 1 / (2 sigma[:, None])":
                (0.5 * sq / s[:, None, None]).mean(),
            "the target is the clean point itself; it is the displacement back to it, -sigma * eps = x - x~":
                (0.5 * (pred - points).square().sum(-1) / s[:, None]).mean(),
            "the target -eps / sigma is the score; ShapeGF's network predicts the displacement sigma^2 * score "
            "= -sigma * eps": (0.5 * (pred + (xt - points) / s[:, None, None] ** 2).square().sum(-1) / s[:, None]).mean(),
        }
    got = loss.detach()
    if not bool(torch.isfinite(got)):
        raise CheckFailed("the loss is NaN or inf")
    if not _close(got, ref, rtol=1e-4):
        for msg, val in wrong.items():
            if _close(got, val, rtol=1e-4):
                raise CheckFailed(msg)
        _weight_of_each_shape(fn, points, sigmas)
        raise CheckFailed(f"the loss is {float(got):.6g}; recomputed from the noisy points and sigmas your code "
                          f"passed to predict it should be {float(ref):.6g} (the mean over shapes and points of "
                          f"||pred - target||^2 / (2 sigma)). Likeliest cause: the target (-sigma * eps = -(x~ - x)), "
                          f"the weight (each shape's own sigma, the one of its noise) or the reduction (sum over "
                          f"xyz, mean over points and shapes)")
    loss.backward()
    expect(rec.weight.grad is not None and bool(rec.weight.grad.abs() > 0),
           "no gradient reaches predict's parameters")
    _levels_drawn(fn, sigmas)
    # a second call (the next training step) must draw fresh noise and levels, and leave the points alone
    given = points.clone()
    rec2 = _Recorder()
    call_student(fn, rec2, given, sigmas.clone())
    expect(torch.equal(given, points), "the points were modified in place: perturb a copy (x + sigma * eps), "
                                       "the caller's clean points must stay as they were")
    if rec2.calls:
        xt2, s2 = rec2.calls[0]
        if torch.equal(xt2, xt) and torch.equal(s2, s):
            raise CheckFailed("two calls drew the same noise and the same levels: a generator seeded inside the "
                              "function (torch.Generator().manual_seed(...)) repeats them at every training step. "
                              "Draw from the global random state (torch.randn_like, torch.randint) so that each "
                              "step sees new noise")
    return f"one sigma per shape, x + sigma eps, target -sigma eps, weight 1/(2 sigma); loss {float(got):.4g}"


# ---------------------------------------------------------------------------
# exercise 3: annealed Langevin dynamics
# ---------------------------------------------------------------------------
class _Probe:
    """Score ``-c x / sigma^2``, recording every call's points and level."""

    def __init__(self, c: float = 0.5) -> None:
        self.c = c
        self.calls: list[tuple[torch.Tensor, float]] = []

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1)
        if s.numel() not in (1, x.shape[0]):
            raise CheckFailed(f"score_fn should get sigma as a float or one value per cloud ({x.shape[0]},), "
                              f"got {s.numel()} values")
        self.calls.append((x.detach().clone(), float(s[0])))
        return -self.c * x / s.reshape(-1, 1, 1) ** 2 if s.numel() > 1 else -self.c * x / float(s) ** 2


def _langevin_noise_pattern(x0: torch.Tensor, probe: _Probe, ratio: float, k: int) -> None:
    """Name noise that is reused across steps or shared by the points, before the step-size regression (whose
    estimate such noise confounds: reused noise is correlated with x).

    The noise of each step is recovered assuming the reference update (noise, then the step alpha/2 * score) and
    divided by sqrt(alpha): it should be a fresh standard normal draw at each step.
    """
    us = []
    for t, (x, s) in enumerate(probe.calls):
        if t == 0:
            r = x - x0
        else:
            xa, sa = probe.calls[t - 1]
            r = x - xa - sa ** 2 * ratio * (-probe.c * xa / sa ** 2)
        us.append((r / math.sqrt(2 * s ** 2 * ratio)).double())
    if not all(float(u.abs().mean()) > 0.05 for u in us):  # no noise somewhere: the transition check names it
        return
    shared = [float(u.std(dim=1).mean()) < 0.1 * float(u.abs().mean()) for u in us]
    if all(shared):
        raise CheckFailed("every point got the same noise vector (noise of shape (B, 1, 3), or (1, 1, 3), broadcast "
                          "over the points): draw noise of x's full shape, torch.randn_like(x), so that every point "
                          "moves on its own")

    u0 = us[0]  # the first noise step, from x0: exactly sqrt(alpha) * noise
    if abs(float(u0.mean())) > 0.2:
        raise CheckFailed(f"the noise has mean {float(u0.mean()):.2f} (in units of sqrt(alpha)): it should be "
                          "standard normal, torch.randn_like(x), not torch.rand_like(x)")
    z = (u0 - u0.mean()) / u0.std()
    kurt = float(z.pow(4).mean())
    if not 2.5 < kurt < 3.6:
        raise CheckFailed(f"the noise is not Gaussian (its kurtosis is {kurt:.2f}, a Gaussian's is 3; a uniform's "
                          "1.8): draw it with torch.randn_like(x)")

    def same(a: torch.Tensor, b: torch.Tensor) -> bool:  # the same draw (up to a small deterministic part)
        return float((a - b).abs().mean()) < 0.1 * float(a.abs().mean())

    pairs = [(t, same(us[t], us[t + 1])) for t in range(len(us) - 1)]
    within = [c for t, c in pairs if (t + 1) % k]  # both steps at one level
    across = [c for t, c in pairs if (t + 1) % k == 0]  # the last step of a level and the first of the next
    if within and all(within):
        if across and all(across):
            raise CheckFailed("the same noise is reused at every step (drawn once before the loops): draw a fresh "
                              "torch.randn_like(x) inside the inner loop, at every step")
        raise CheckFailed("the same noise is reused at every step of a level (drawn once per level, outside the inner "
                          "loop): draw a fresh torch.randn_like(x) at every step")


@self_check
def check_annealed_langevin(fn) -> str:
    """``fn(score_fn, x0 (B, M, 3), sigmas, steps_per_level, step_ratio) -> (B, M, 3)``.

    For each sigma (large to small), ``steps_per_level`` times: ``alpha = 2 sigma^2 step_ratio``;
    ``x += sqrt(alpha) * noise``; ``x += alpha / 2 * score_fn(x, sigma)``.
    """
    from course_lib.models.shapegf import analytic_score_fn, sigma_schedule, uniform_prior

    sigmas = [1.0, 0.3, 0.1]
    k, ratio = 3, 0.3
    probe = _Probe()
    x0 = torch.randn(1, 3000, 3, generator=torch.Generator().manual_seed(2))
    given = x0.clone()
    torch.manual_seed(0)
    out = call_student(fn, probe, given, list(sigmas), k, ratio)
    expect(torch.equal(given, x0), "x0 was modified in place (x = x0; x += ...): work on a copy "
                                   "(x = x0.clone(), or x = x + ...), the caller's starting points must stay as they were")
    expect_tensor(out, "the final points", shape=(1, 3000, 3))
    n_calls = len(probe.calls)
    expect(n_calls > 0, "score_fn was never called")
    levels = [c[1] for c in probe.calls]
    if n_calls != len(sigmas) * k:
        seen = {round(v, 6) for v in levels}
        missing = [v for v in sigmas if round(v, 6) not in seen]
        if missing and seen <= {round(v, 6) for v in sigmas}:
            raise CheckFailed(f"score_fn never got the levels {missing}: run steps_per_level steps at *every* level of "
                              f"sigmas, from the first to the last (it got only {sorted(seen, reverse=True)})")
        if n_calls % len(sigmas) == 0:
            raise CheckFailed(f"score_fn was called {n_calls // len(sigmas)} times per level, expected "
                              f"steps_per_level = {k}")
        raise CheckFailed(f"score_fn was called {n_calls} times, expected len(sigmas) * steps_per_level = "
                          f"{len(sigmas) * k}")
    expected_levels = [s for s in sigmas for _ in range(k)]
    if [round(v, 6) for v in levels] == [round(v, 6) for v in reversed(expected_levels)]:
        raise CheckFailed("the levels run from small to large sigma: anneal from the largest sigma down")
    expect(all(abs(a - b) < 1e-6 for a, b in zip(levels, expected_levels)),
           f"score_fn got the levels {[round(v, 4) for v in levels]}; expected each sigma of `sigmas` "
           f"{k} times, in order")
    _langevin_noise_pattern(x0, probe, ratio, k)
    # each transition: x_next = x + c * score(x) + noise, with c = alpha / 2 and noise std sqrt(alpha)
    for t in range(n_calls - 1):
        (xa, sa), (xb, sb) = probe.calls[t], probe.calls[t + 1]
        alpha_next = 2 * sb ** 2 * ratio
        sc = -probe.c * xa / sa ** 2
        delta = xb - xa
        c = float((delta * sc).sum() / sc.square().sum())
        c_ref = sa ** 2 * ratio
        if abs(c - c_ref) > 0.1 * c_ref:
            if abs(c + c_ref) < 0.1 * c_ref:
                raise CheckFailed(f"the gradient step goes against the score (x - alpha/2 * score): the score points "
                                  f"towards the data, x + alpha/2 * score (sigma={sa:g})")
            if abs(c - sa * ratio) < 0.1 * sa * ratio:
                raise CheckFailed(f"alpha = 2 sigma^2 step_ratio: you used sigma, not sigma^2 (sigma={sa:g})")
            if sa != sigmas[-1] and abs(c - sigmas[-1] ** 2 * ratio) < 0.5 * sigmas[-1] ** 2 * ratio:
                raise CheckFailed(f"alpha uses the last sigma at every level: it changes with the level, alpha = "
                                  f"2 sigma^2 step_ratio with the current sigma (sigma={sa:g})")
            if sa != sigmas[0] and abs(c - sigmas[0] ** 2 * ratio) < 0.1 * sigmas[0] ** 2 * ratio:
                raise CheckFailed(f"alpha uses the first sigma at every level: it changes with the level, alpha = "
                                  f"2 sigma^2 step_ratio with the current sigma (sigma={sa:g})")
            if abs(c - 2 * c_ref) < 0.1 * c_ref:
                raise CheckFailed(f"the gradient step is alpha * score; it should be alpha / 2 * score "
                                  f"(sigma={sa:g})")
            if abs(c - c_ref / 2) < 0.1 * c_ref:
                raise CheckFailed("the step size should be alpha = 2 sigma^2 step_ratio (the gradient step is then "
                                  "sigma^2 step_ratio * score); you used sigma^2 step_ratio")
            if abs(c - c_ref / ratio) < 0.1 * c_ref / ratio:
                raise CheckFailed("step_ratio is ignored: alpha = 2 sigma^2 * step_ratio")
            raise CheckFailed(f"at sigma={sa:g} the gradient step moved x by {c:.3g} * score; expected "
                              f"alpha / 2 = sigma^2 * step_ratio = {c_ref:.3g}")
        noise = delta - c_ref * sc
        std = float(noise.std())
        want = math.sqrt(alpha_next)
        if std < 1e-6:
            raise CheckFailed("no noise is added: each step adds sqrt(alpha) * N(0, I) (that is what makes it "
                              "Langevin dynamics rather than gradient ascent)")
        if abs(std - want) > 0.1 * want:
            prev = math.sqrt(2 * sa ** 2 * ratio)
            if sa != sb and abs(std - prev) < 0.1 * prev and t + 2 < n_calls and sa == sigmas[0]:
                (xc, _sc) = probe.calls[t + 2]
                sc_b = -probe.c * xb / sb ** 2
                c_next = float(((xc - xb) * sc_b).sum() / sc_b.square().sum())
                if abs(c_next - sigmas[0] ** 2 * ratio) < 0.2 * sigmas[0] ** 2 * ratio:
                    raise CheckFailed(f"alpha uses the first sigma at every level: it changes with the level, alpha = "
                                      f"2 sigma^2 step_ratio with the current sigma (sigma={sb:g})")
            if sa != sb and abs(std - prev) < 0.1 * prev:
                raise CheckFailed("the noise comes after the gradient step (it has the previous level's size): in "
                                  "each step add the noise first, then take the gradient step, so that every "
                                  "level ends on a denoising step")
            if abs(std - alpha_next) < 0.1 * alpha_next:
                raise CheckFailed("the noise has std alpha; it should be sqrt(alpha)")
            if abs(std - sb) < 0.1 * sb:
                raise CheckFailed(f"the noise has std sigma; it should be sqrt(alpha) = sigma sqrt(2 step_ratio) "
                                  f"(sigma={sb:g})")
            unsq = math.sqrt(2 * sb * ratio)
            if abs(std - unsq) < 0.1 * unsq:
                raise CheckFailed(f"alpha = 2 sigma^2 step_ratio: you used sigma, not sigma^2 (the noise has std "
                                  f"sqrt(2 sigma step_ratio) at sigma={sb:g})")
            raise CheckFailed(f"the noise added before step {t + 2} has std {std:.3g}; expected sqrt(alpha) = "
                              f"{want:.3g} (alpha = 2 sigma^2 step_ratio at sigma={sb:g})")
    # the last operation must be the gradient step (noise first, then the step)
    x_last, s_last = probe.calls[-1]
    alpha_last = 2 * s_last ** 2 * ratio
    final_ref = x_last + 0.5 * alpha_last * (-probe.c * x_last / s_last ** 2)
    o = out.detach().to(x_last.dtype)
    if not _close(o, final_ref, rtol=1e-4, atol=1e-5):
        resid = o - final_ref
        if abs(float(resid.std()) - math.sqrt(alpha_last)) < 0.2 * math.sqrt(alpha_last):
            raise CheckFailed("the loop ends with a noise step: in each step add the noise first, then take the "
                              "gradient step, so that the last operation denoises")
        coef = float((resid * final_ref).sum() / final_ref.square().sum())
        raise CheckFailed(f"the returned points are not the last gradient step x + alpha/2 * score(x, sigma) "
                          f"applied to the points of the last score_fn call (relative mismatch {coef:+.2g})")
    # every cloud of a batch gets its own noise
    pair = _Probe()
    twins = torch.randn(1, 500, 3, generator=torch.Generator().manual_seed(5)).expand(2, 500, 3).clone()
    call_student(fn, pair, twins, [0.5], 1, ratio)
    expect(len(pair.calls) == 1, f"with one level and one step score_fn should be called once, got {len(pair.calls)}")
    moved = pair.calls[0][0]
    if torch.allclose(moved[0], moved[1]):
        raise CheckFailed("both clouds of the batch got the same noise (noise drawn for one cloud and broadcast): "
                          "draw noise of x's full shape, torch.randn_like(x), so that every cloud moves on its own")
    # and on the analytic field of a sphere the samples land on the surface
    g = torch.Generator().manual_seed(3)
    v = torch.randn(1, 300, 3, generator=g)
    cloud = 0.5 * v / v.norm(dim=-1, keepdim=True)
    torch.manual_seed(1)
    x0 = uniform_prior(1, 300, generator=torch.Generator().manual_seed(4))
    out = call_student(fn, analytic_score_fn(cloud), x0, sigma_schedule(), 10, 1.0)
    expect_tensor(out, "samples on the analytic field", shape=(1, 300, 3))
    r = out.detach()[0].norm(dim=-1)
    err = float((r - 0.5).abs().mean())
    expect(err < 0.01, f"with the analytic field of a sphere of radius 0.5 the samples end {err:.3g} from it on "
                       "average (expected < 0.01)")
    return (f"levels in order, step alpha/2 * score, noise sqrt(alpha) first; sphere samples end {err:.1e} from "
            f"the surface")


# ---------------------------------------------------------------------------
# exercise 4: the conditioning layer c = [x, z, sigma]
# ---------------------------------------------------------------------------
def _condition_ref(x: torch.Tensor, z: torch.Tensor, s: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None,
                   order: str = "xzs", zmap=None, smap=None) -> torch.Tensor:
    """The linear map of the per-point condition, built point by point's parts (float64); variants by arguments."""
    b, m, _ = x.shape
    zz = z[:, None, :].expand(b, m, -1) if zmap is None else zmap(z, b, m)
    ss = s[:, None, None].expand(b, m, 1) if smap is None else smap(s, b, m)
    parts = {"x": x, "z": zz, "s": ss}
    c = torch.cat([parts[k] for k in order], dim=-1)
    out = c @ w.T
    return out if bias is None else out + bias


@self_check
def check_condition_layer(fn) -> str:
    """``fn(x (B, M, 3), z (B, L), sigma (B,), weight (H, 3 + L + 1), bias (H,)) -> (B, M, H)``.

    The first layer of ShapeGF's decoder: at every point, ``weight @ c + bias`` with the condition
    ``c = [x, z, sigma]`` (the point's coordinates, its shape's code, its shape's noise level, in that order).
    """
    g = torch.Generator().manual_seed(4)
    b, m, lat, h = 3, 7, 4, 5  # 3 + L + 1 = 8 columns, H = 5 rows: a missing transpose shows in the shape
    x = torch.rand(b, m, 3, generator=g, dtype=torch.float64) - 0.5
    z = torch.randn(b, lat, generator=g, dtype=torch.float64)
    s = torch.tensor([0.3, 0.05, 0.01], dtype=torch.float64)
    w = torch.randn(h, 3 + lat + 1, generator=g, dtype=torch.float64)
    bias = torch.randn(h, generator=g, dtype=torch.float64)
    given = [t.clone() for t in (x, z, s, w, bias)]
    out = call_student(fn, *given)
    expect(all(torch.equal(a, c) for a, c in zip(given, (x, z, s, w, bias))),
           "an input was modified in place: the caller's x, z, sigma, weight and bias must stay as they were")
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (b, m, 3 + lat + 1):
        raise CheckFailed(f"the result has shape {tuple(out.shape)}: that is the condition c itself; apply the layer, "
                          "c @ weight.T + bias, to get (B, M, H)")
    expect_tensor(out, f"condition_layer(x ({b}, {m}, 3), z ({b}, {lat}), sigma ({b},), weight ({h}, {3 + lat + 1}), "
                       f"bias ({h},))", shape=(b, m, h))
    ref = _condition_ref(x, z, s, w, bias)
    o = out.detach().double()
    if not _close(o, ref, rtol=1e-6, atol=1e-9):
        mixed = lambda v, b_, m_: v.repeat(m_, *([1] * (v.dim() - 1)))[: b_ * m_].reshape(b_, m_, -1)  # noqa: E731
        first = lambda v, b_, m_: v[:1].reshape(1, 1, -1).expand(b_, m_, -1)  # noqa: E731
        named = (
            ("the order of the condition is [x, z, sigma] (the columns of weight: 3 for x, L for z, 1 for sigma); "
             "you concatenated [x, sigma, z]", dict(order="xsz")),
            ("the order of the condition is [x, z, sigma]; you concatenated [z, x, sigma]", dict(order="zxs")),
            ("the order of the condition is [x, z, sigma]; you concatenated [z, sigma, x]", dict(order="zsx")),
            ("the order of the condition is [x, z, sigma]; you concatenated [sigma, z, x]", dict(order="szx")),
            ("the bias is missing: weight @ c + bias", dict(bias=None)),
            ("every point got the first shape's code z[0]: each shape's points get their own code, "
             "z[:, None, :].expand(B, M, L)", dict(zmap=first)),
            ("every point got the first shape's sigma: each shape's points get their own level, "
             "sigma[:, None, None].expand(B, M, 1)", dict(smap=lambda v, b_, m_: first(v[:, None], b_, m_))),
            ("the codes are mixed across shapes: z.repeat(M, 1).reshape(B, M, L) puts the codes of other shapes at "
             "the points of a shape (repeat tiles the whole batch); use z[:, None, :].expand(B, M, L) or "
             "z.repeat_interleave(M, 0).reshape(B, M, L)", dict(zmap=mixed)),
            ("the levels are mixed across shapes: sigma.repeat(M) tiles the whole batch; use "
             "sigma[:, None, None].expand(B, M, 1)", dict(smap=lambda v, b_, m_: mixed(v[:, None], b_, m_))),
            ("the condition takes sigma itself (the official code), not log(sigma)",
             dict(smap=lambda v, b_, m_: v.log()[:, None, None].expand(b_, m_, 1))),
            ("the condition takes sigma, not sigma^2", dict(smap=lambda v, b_, m_: (v ** 2)[:, None, None].expand(b_, m_, 1))),
            ("sigma is missing from the condition (its column of weight is unused): c = [x, z, sigma]",
             dict(smap=lambda v, b_, m_: torch.zeros(b_, m_, 1, dtype=v.dtype))),
            ("z is missing from the condition (its columns of weight are unused): c = [x, z, sigma]",
             dict(zmap=lambda v, b_, m_: torch.zeros(b_, m_, v.shape[1], dtype=v.dtype))),
        )
        for msg, kw in named:
            bias_ = kw.pop("bias", bias)
            if _close(o, _condition_ref(x, z, s, w, bias_, **kw), rtol=1e-6, atol=1e-9):
                raise CheckFailed(msg)
        expect_close(out, ref, "the layer weight @ [x, z, sigma] + bias at every point", atol=1e-9, rtol=1e-6)
    # shapes are independent: permuting the batch permutes the result; a batch of one; float32 with gradients
    perm = torch.tensor([2, 0, 1])
    out_p = call_student(fn, x[perm].clone(), z[perm].clone(), s[perm].clone(), w.clone(), bias.clone())
    expect_close(out_p, ref[perm], "the result for the batch in another order (each shape must use only its own "
                 "z and sigma)", atol=1e-9, rtol=1e-6)
    one = call_student(fn, x[1:2].clone(), z[1:2].clone(), s[1:2].clone(), w.clone(), bias.clone())
    expect_close(one, ref[1:2], "the result for a batch of one shape", atol=1e-9, rtol=1e-6)
    xf, zf, wf = x.float().clone(), z.float().clone().requires_grad_(True), w.float().clone().requires_grad_(True)
    outf = call_student(fn, xf, zf, s.float().clone(), wf, bias.float().clone())
    expect(isinstance(outf, torch.Tensor) and outf.dtype == torch.float32,
           f"for float32 inputs the result should stay float32, got {getattr(outf, 'dtype', type(outf).__name__)}")
    expect(outf.requires_grad, "the result carries no gradient to z and weight: do not detach (the encoder learns z "
                               "through this layer)")
    gz, gw = torch.autograd.grad(outf.sum(), (zf, wf), allow_unused=True)
    expect(gz is not None and gw is not None and bool((gz.abs().sum(-1) > 0).all()),
           "no gradient reaches every shape's code z")
    return "weight @ [x, z, sigma] + bias at every point, each shape with its own code and level; differentiable"


# ---------------------------------------------------------------------------
# hidden parts (run by the grader only): other sizes, a batch of one, float64, edge cases, inputs left alone,
# batch independence, fresh noise at every call and noise independent across clouds and points
# ---------------------------------------------------------------------------
def _ref_score_autograd(x: torch.Tensor, points: torch.Tensor, sigma: float) -> torch.Tensor:
    """grad_x log Q_sigma(x) by autograd of the log density, in float64, one cloud at a time (independent route)."""
    out = []
    for xb, pb in zip(x.double(), points.double()):
        xr = xb.clone().requires_grad_(True)
        logq = torch.logsumexp(-((xr[:, None] - pb[None]) ** 2).sum(-1) / (2 * sigma ** 2), dim=-1).sum()
        (g,) = torch.autograd.grad(logq, xr)
        out.append(g)
    return torch.stack(out)


def _hidden_analytic_score(fn) -> str:
    g = torch.Generator().manual_seed(100)
    cases = (  # (B, M, N, sigma, dtype, what)
        (1, 7, 5, 0.2, torch.float64, "a batch of one in float64"),
        (3, 1, 1, 0.5, torch.float32, "one query point and a cloud of one point (the score is (p - x) / sigma^2)"),
        (2, 4, 30, 5.0, torch.float64, "a large sigma (the weights are almost uniform)"),
        (2, 6, 40, 0.02, torch.float64, "a small sigma (the nearest point dominates)"),
    )
    for b, m, n, sigma, dtype, what in cases:
        pts = torch.rand(b, n, 3, generator=g, dtype=dtype) - 0.5
        x = torch.rand(b, m, 3, generator=g, dtype=dtype) - 0.5
        x_in, p_in = x.clone(), pts.clone()
        out = call_student(fn, x_in, p_in, sigma)
        expect_tensor(out, f"the score for {what} (B={b}, M={m}, N={n})", shape=(b, m, 3))
        expect(out.dtype == dtype, f"for {dtype} inputs the score should stay {dtype}, got {out.dtype} (no .float() "
                                   "or torch.tensor(...) of a fixed dtype inside the function)")
        expect(torch.equal(x_in, x) and torch.equal(p_in, pts),
               "x or points was modified in place (x -= ..., x.sub_(...)): the caller's tensors must stay as they were")
        ref = _ref_score_autograd(x, pts, sigma)
        scale = float(ref.abs().max()) + 1e-12
        tol = 1e-4 if dtype == torch.float32 else 1e-7
        expect_close(out / scale, ref / scale, f"the score (divided by its largest value) for {what}", atol=tol, rtol=tol)
    # clouds are independent: changing cloud 1 (and its queries) leaves element 0's score unchanged
    pts = torch.rand(2, 20, 3, generator=g, dtype=torch.float64) - 0.5
    x = torch.rand(2, 8, 3, generator=g, dtype=torch.float64) - 0.5
    a = call_student(fn, x.clone(), pts.clone(), 0.1)
    pts2, x2 = pts.clone(), x.clone()
    pts2[1] += 2.0
    x2[1] = -x2[1]
    b_ = call_student(fn, x2, pts2, 0.1)
    expect_close(b_[0], a[0], "element 0's score after changing only cloud 1: each query must use its own cloud "
                 "(batched distances (B, M, N), softmax over the N points of the same cloud)", atol=1e-9, rtol=1e-9)
    return "float64, a batch of one, one point, large and small sigma, clouds independent, inputs unchanged"


class _Twin:
    """A predictor that records its input and returns zeros (plus a parameter, for the gradient)."""

    def __init__(self) -> None:
        self.weight = torch.tensor(0.0, requires_grad=True, dtype=torch.float64)
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.detach().clone(), torch.as_tensor(sigma).detach().clone()))
        return self.weight * x


def _hidden_dsm_loss(fn) -> str:
    g = torch.Generator().manual_seed(101)
    sigmas = torch.tensor([0.5, 0.2, 0.1, 0.05], dtype=torch.float64)
    # a batch of one, float64, one point per cloud: the loss recomputed from what predict got
    for b, n in ((1, 200), (6, 1)):
        points = torch.rand(b, n, 3, generator=g, dtype=torch.float64) - 0.5
        rec = _Twin()
        loss = call_student(fn, rec, points.clone(), sigmas.clone())
        expect(len(rec.calls) == 1, f"predict should be called once, it was called {len(rec.calls)} times (B={b})")
        xt, s = rec.calls[0]
        expect(tuple(xt.shape) == (b, n, 3) and tuple(s.shape) == (b,),
               f"for B={b}, N={n} predict got points {tuple(xt.shape)} and sigma {tuple(s.shape)}, "
               f"expected {(b, n, 3)} and ({b},)")
        expect(isinstance(loss, torch.Tensor) and loss.dim() == 0, f"for B={b}, N={n} return a scalar tensor")
        target = -(xt - points)
        ref = sum(float(((0.0 * xt[i, j] - target[i, j]) ** 2).sum()) / (2 * float(s[i]))
                  for i in range(b) for j in range(n)) / (b * n)
        expect_close(loss.detach(), ref, f"the loss for B={b}, N={n} (float64, recomputed point by point from the "
                     "noisy points and levels given to predict)", atol=1e-9, rtol=1e-6)
    # every level is drawn (torch.randint's upper bound is exclusive), about equally often
    counts = torch.zeros(len(sigmas))
    rec = _Twin()
    points = torch.zeros(2000, 1, 3, dtype=torch.float64)
    call_student(fn, rec, points, sigmas.clone())
    for v in rec.calls[0][1]:
        counts[int((sigmas - v).abs().argmin())] += 1
    if counts[-1] == 0:
        raise CheckFailed("the last level sigmas[-1] was never drawn in 2000 shapes: torch.randint(len(sigmas), (B,)) "
                          "already excludes its upper bound (no - 1)")
    expect(bool((counts > 350).all()), f"the levels should be drawn uniformly; in 2000 shapes they were drawn "
                                       f"{[int(c) for c in counts]} times")
    # the noise is independent across shapes of a batch (the same cloud repeated)
    cloud = torch.rand(1, 300, 3, generator=g, dtype=torch.float64)
    rec = _Twin()
    twins = cloud.expand(4, -1, -1).clone()
    call_student(fn, rec, twins, sigmas[:1].clone())
    eps = (rec.calls[0][0] - twins) / sigmas[0]
    if torch.allclose(eps[0], eps[1]):
        raise CheckFailed("every shape of the batch got the same noise (drawn for one shape and broadcast): "
                          "draw noise of the points' full shape, torch.randn_like(points)")
    corr = float((eps[0] * eps[1]).mean() / (eps[0].std() * eps[1].std()))
    expect(abs(corr) < 0.2, f"the noise of two shapes is correlated ({corr:.2f}): draw it independently per shape")
    # reproducible under torch.manual_seed (the global random state), fresh without it
    vals = []
    for _ in range(2):
        torch.manual_seed(7)
        rec = _Twin()
        call_student(fn, rec, cloud.expand(3, -1, -1).clone(), sigmas.clone())
        vals.append(rec.calls[0])
    if not (torch.equal(vals[0][0], vals[1][0]) and torch.equal(vals[0][1], vals[1][1])):
        raise CheckFailed("after the same torch.manual_seed two calls drew different noise: draw from torch's global "
                          "random state (torch.randn_like, torch.randint), not numpy or Python's random")
    return "a batch of one, one point per shape, float64, every level drawn, noise independent per shape, seedable"


def _hidden_annealed_langevin(fn) -> str:
    ratio = 0.2
    sigmas = torch.tensor([0.8, 0.4, 0.2], dtype=torch.float64)
    k = 2
    x0 = torch.randn(3, 2000, 3, generator=torch.Generator().manual_seed(102), dtype=torch.float64)
    given = x0.clone()
    probe = _Probe(c=0.5)
    torch.manual_seed(3)
    out = call_student(fn, probe, given, sigmas.clone(), k, ratio)
    expect(torch.equal(given, x0), "x0 was modified in place: work on a copy")
    expect_tensor(out, "the final points (sigmas given as a 1-D tensor, float64 x0, B=3)", shape=(3, 2000, 3))
    expect(out.dtype == torch.float64, f"for a float64 x0 the samples should stay float64, got {out.dtype}")
    levels = [c[1] for c in probe.calls]
    expected_levels = [float(s) for s in sigmas for _ in range(k)]
    expect(len(levels) == len(expected_levels) and all(abs(a - b) < 1e-6 for a, b in zip(levels, expected_levels)),
           f"with sigmas given as a tensor {sigmas.tolist()} score_fn got the levels {[round(v, 4) for v in levels]}; "
           f"expected each level {k} times in order (iterate over the tensor and use float(sigma))")
    # the first noise step: x0 + sqrt(alpha) * noise, noise independent across clouds and across points
    alpha0 = 2 * float(sigmas[0]) ** 2 * ratio
    noise = (probe.calls[0][0] - x0) / math.sqrt(alpha0)
    std = noise.std(dim=(1, 2))
    expect(bool(((std - 1).abs() < 0.1).all()), f"the first noise step, divided by sqrt(alpha), should have std 1 in "
                                                f"every cloud; got {[round(float(v), 3) for v in std]}")
    per_point = noise.std(dim=1).mean()
    expect(float(per_point) > 0.8, "every point of a cloud got the same noise vector: draw noise of x's full shape "
                                   "(torch.randn_like(x))")
    corr = float((noise[0] * noise[1]).mean())
    expect(abs(corr) < 0.1, f"the noise of clouds 0 and 1 is correlated ({corr:.2f}): draw it independently")
    # the last operation is the gradient step, exactly, in float64
    x_last, s_last = probe.calls[-1]
    final_ref = x_last + (s_last ** 2 * ratio) * (-probe.c * x_last / s_last ** 2)
    expect_close(out, final_ref, "the returned points vs the last gradient step x + alpha/2 * score(x, sigma) "
                 "(float64)", atol=1e-6, rtol=1e-6)
    # one level, one step, a batch of one point
    p1 = _Probe()
    one = call_student(fn, p1, torch.zeros(1, 1, 3, dtype=torch.float64), [0.3], 1, 1.0)
    expect_tensor(one, "the result for a batch of one cloud of one point", shape=(1, 1, 3))
    expect(len(p1.calls) == 1, f"with one level and one step score_fn should be called once, got {len(p1.calls)}")
    # fresh noise at each call; the same noise after the same torch.manual_seed
    runs = []
    for seed in (11, None, 11):
        if seed is not None:
            torch.manual_seed(seed)
        runs.append(call_student(fn, _Probe(), x0[:1].clone(), [0.5, 0.1], 2, ratio))
    if torch.equal(runs[0], runs[1]):
        raise CheckFailed("two calls returned the same samples: a generator seeded inside the function "
                          "(torch.Generator().manual_seed(...)) repeats the same noise at every call; draw from "
                          "the global random state (torch.randn_like(x))")
    expect(torch.equal(runs[0], runs[2]), "after the same torch.manual_seed two calls gave different samples: draw the "
                                          "noise from torch's global random state (not numpy or Python's random)")
    return "sigmas as a tensor, float64, B=3 and B=1, noise per cloud and per point, fresh at each call, seedable"


def _hidden_condition_layer(fn) -> str:
    g = torch.Generator().manual_seed(103)
    for b, m, lat, h, dtype, what in ((1, 9, 6, 4, torch.float64, "a batch of one"),
                                      (4, 1, 3, 7, torch.float64, "one point per shape"),
                                      (2, 50, 1, 3, torch.float64, "a code of one number"),
                                      (3, 20, 16, 8, torch.float32, "float32")):
        x = torch.rand(b, m, 3, generator=g, dtype=dtype) - 0.5
        z = torch.randn(b, lat, generator=g, dtype=dtype)
        s = torch.rand(b, generator=g, dtype=dtype) + 0.01
        w = torch.randn(h, 3 + lat + 1, generator=g, dtype=dtype)
        bias = torch.randn(h, generator=g, dtype=dtype)
        given = [t.clone() for t in (x, z, s, w, bias)]
        out = call_student(fn, *given)
        expect_tensor(out, f"the layer for {what} (B={b}, M={m}, L={lat}, H={h})", shape=(b, m, h))
        expect(out.dtype == dtype, f"for {dtype} inputs the result should stay {dtype}, got {out.dtype}")
        expect(all(torch.equal(a, c) for a, c in zip(given, (x, z, s, w, bias))),
               "an input was modified in place: the caller's tensors must stay as they were")
        ref = torch.stack([torch.stack([w.double() @ torch.cat([x[i, j].double(), z[i].double(), s[i:i + 1].double()])
                                        + bias.double() for j in range(m)]) for i in range(b)])
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        expect_close(out.double(), ref, f"the layer for {what} (point by point in float64)", atol=tol, rtol=tol)
    # the gradient with respect to z: d sum(out) / dz_b = M * (column sums of weight's z columns)
    b, m, lat, h = 2, 6, 4, 5
    x = torch.rand(b, m, 3, generator=g, dtype=torch.float64)
    z = torch.randn(b, lat, generator=g, dtype=torch.float64, requires_grad=True)
    s = torch.tensor([0.2, 0.05], dtype=torch.float64)
    w = torch.randn(h, 3 + lat + 1, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(h, generator=g, dtype=torch.float64)
    out = call_student(fn, x, z, s, w, bias)
    gz, gw = torch.autograd.grad(out.sum(), (z, w))
    expect_close(gz, (m * w.detach()[:, 3:3 + lat].sum(0)).expand(b, lat), "the gradient with respect to z",
                 atol=1e-10, rtol=1e-9)
    c = torch.cat([x, z.detach()[:, None].expand(b, m, lat), s[:, None, None].expand(b, m, 1)], -1)
    expect_close(gw, c.sum((0, 1)).expand(h, -1), "the gradient with respect to weight", atol=1e-10, rtol=1e-9)
    return "a batch of one, one point, a code of one number, float32 and float64, gradients, inputs kept"


def _register_hidden() -> None:
    from course_lib.models import shapegf as gf

    check_analytic_score.hidden(_hidden_analytic_score, references=(gf.analytic_score, gf.smoothed_log_density))
    check_condition_layer.hidden(_hidden_condition_layer, references=(gf._CondLinear.forward, gf.ScoreNet.forward))
    check_dsm_loss.hidden(_hidden_dsm_loss, references=(gf.dsm_loss, gf.draw_levels))
    # the undecorated function: @torch.no_grad()'s wrapper code is shared by every decorated function, so a
    # student's own @torch.no_grad() annealed_langevin would be taken for the library's
    check_annealed_langevin.hidden(_hidden_annealed_langevin,
                                   references=(getattr(gf.annealed_langevin, "__wrapped__", gf.annealed_langevin),))


_register_hidden()
