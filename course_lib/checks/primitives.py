"""Self-checks of chapter 08 (``labs/08_primitives_lab.ipynb``): inside-outside, REINFORCE, reordering trick.

Introduced in ``lectures/08_primitives.ipynb``.  The references: the closed forms of the
sphere, the ellipsoid and the octahedron plus the angle parametrisation of the surface (for the
inside-outside function); the score-function formula evaluated directly and a Monte-Carlo test
of unbiasedness (REINFORCE); a brute-force enumeration of all ``2^M`` configurations and its
autograd gradient (the reordering trick).  Each known wrong answer gets a message naming it.
"""

from __future__ import annotations

import math

import torch

from ._core import CheckFailed, call_student, expect, expect_close, expect_tensor, self_check

__all__ = ["check_inside_outside", "check_reinforce_gradient", "check_expected_min_distance"]


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    a, b = a.detach().double(), b.detach().double()
    return a.shape == b.shape and bool(torch.isfinite(a).all()) and bool(((a - b).abs() <= atol + rtol * b.abs()).all())


def _expect_close(out: torch.Tensor, ref: torch.Tensor, what: str, cause: str, rtol: float, atol: float) -> None:
    """``expect_close`` whose message also gives the first differing element and the likeliest cause."""
    try:
        expect_close(out, ref, what, rtol=rtol, atol=atol)
    except CheckFailed as exc:
        msg = str(exc)
        a = torch.as_tensor(out).detach().double()
        e = torch.as_tensor(ref).detach().double()
        if a.shape == e.shape and a.numel():
            bad = ~((a - e).abs() <= atol + rtol * e.abs())  # NaN counts as differing
            if bool(bad.any()):
                idx = tuple(int(i) for i in bad.nonzero()[0])
                msg += (f"; the first differing element is at index {idx}: got {a[idx].item():.6g}, expected "
                        f"{e[idx].item():.6g}")
        raise CheckFailed(f"{msg}. Likeliest cause: {cause}") from None


# ---------------------------------------------------------------------------
# 1. the superquadric inside-outside function
# ---------------------------------------------------------------------------
def _ref_f(p: torch.Tensor, a: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    x, y, z = (p / a).abs().unbind(-1)
    e1, e2 = e[..., 0], e[..., 1]
    return (x ** (2 / e2) + y ** (2 / e2)) ** (e2 / e1) + z ** (2 / e1)


@self_check
def check_inside_outside(fn) -> str:
    """``fn(points (..., 3), size (..., 3), eps (..., 2)) -> F (...)``: the superquadric inside-outside function.

    ``F = ((x/a1)^(2/e2) + (y/a2)^(2/e2))^(e2/e1) + (z/a3)^(2/e1)`` in the local frame; ``< 1``
    inside, ``1`` on the surface.
    """
    g = torch.Generator().manual_seed(0)
    n = 64
    p = torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.6
    a = 0.2 + 0.8 * torch.rand(n, 3, generator=g, dtype=torch.float64)
    e = 0.4 + 1.1 * torch.rand(n, 2, generator=g, dtype=torch.float64)
    out = call_student(fn, p.clone(), a.clone(), e.clone())  # copies: an in-place slip is the hidden part's
    expect(isinstance(out, torch.Tensor), f"F should be a torch.Tensor, got {type(out).__name__}")
    if out.shape != (n,):
        raise CheckFailed(f"F(points (64, 3), size (64, 3), eps (64, 2)) has shape {tuple(out.shape)}, expected (64,): "
                          "one value per point (sum over x, y, z inside the formula)")
    if not bool(torch.isfinite(out).all()):
        raise CheckFailed("F contains NaN or inf: a negative coordinate raised to a fractional power is NaN; "
                          "take the absolute value |x / a| before the powers")
    ref = _ref_f(p, a, e)
    if not _close(out, ref):
        swapped = _ref_f(p, a, e.flip(-1))
        inverted = ((p / a).abs()[..., 0] ** (e[..., 1] / 2) + (p / a).abs()[..., 1] ** (e[..., 1] / 2)) ** (
            e[..., 0] / e[..., 1]) + (p / a).abs()[..., 2] ** (e[..., 0] / 2)
        unscaled = _ref_f(p, torch.ones_like(a), e)
        times = _ref_f(p * a * a, a, e)  # multiplied by the size instead of divided
        no_outer = (p / a).abs()[..., 0] ** (2 / e[..., 1]) + (p / a).abs()[..., 1] ** (2 / e[..., 1]) + \
            (p / a).abs()[..., 2] ** (2 / e[..., 0])
        if _close(out, swapped):
            raise CheckFailed("F matches the formula with eps1 and eps2 swapped: eps2 shapes the (x, y) cross-section "
                              "(exponent 2/eps2), eps1 the z profile (2/eps1 and the outer power eps2/eps1)")
        if _close(out, inverted):
            raise CheckFailed("the exponents are inverted: the powers are 2/eps (and eps2/eps1 outside), not eps/2")
        if _close(out, unscaled):
            raise CheckFailed("F ignores the size: divide each coordinate by its half-size a_k first")
        if _close(out, times):
            raise CheckFailed("divide the coordinates by the sizes (x / a1), do not multiply them")
        if _close(out, no_outer):
            raise CheckFailed("the outer power is missing: (x^(2/e2) + y^(2/e2)) is raised to e2/e1 before adding z")
        q = (p / a).abs()
        e1, e2 = e[..., 0], e[..., 1]
        if _close(out, (q[..., 0] ** (2 / e2) + q[..., 1] ** (2 / e2)) ** (e1 / e2) + q[..., 2] ** (2 / e1)):
            raise CheckFailed("the outer power is inverted: (x^(2/e2) + y^(2/e2)) is raised to e2/e1 (eps2 over "
                              "eps1), not e1/e2")
        if _close(out, (q[..., 0] ** (e2 / 2) + q[..., 1] ** (e2 / 2)) ** (e2 / e1) + q[..., 2] ** (e1 / 2)):
            raise CheckFailed("the exponents are inverted: the inner powers are 2/eps2 (x and y) and 2/eps1 (z), "
                              "not eps/2")
        for name, first in (("eps", _ref_f(p, a, e[:1])), ("size", _ref_f(p, a[:1], e))):
            if _close(out, first):
                raise CheckFailed(f"every point got the first point's {name} (a float({name}[0, 0]) or "
                                  f"{name}.reshape(-1, {e.shape[-1] if name == 'eps' else 3})[0]): each point has its "
                                  f"own {name}; keep {name} a tensor and index its last dimension "
                                  f"({name}[..., k]), so that it broadcasts against the points")
        if _close(out, ref.clamp(max=1.0)):
            raise CheckFailed("F is capped at 1: outside the superquadric F is above 1 (that tells outside from "
                              "inside); return F itself, not clamped")
        box = (q <= 1).all(-1)  # points with every |x / a_k| <= 1
        if bool(box.any()) and not bool(box.all()) and _close(out[box], ref[box]):
            raise CheckFailed(f"F is right at the {int(box.sum())} points with every |x / a_k| <= 1 and wrong at "
                              f"the {int((~box).sum())} others: the coordinates are clamped (x / a to [-1, 1]); do "
                              "not clamp, F keeps growing outside the superquadric")
        _expect_close(out, ref, "F at random points (sizes in [0.2, 1], eps in [0.4, 1.5])",
                      "an exponent: 2/eps2 for x and y, 2/eps1 for z, and eps2/eps1 for the outer power of "
                      "(x^(2/e2) + y^(2/e2)), with eps[..., 0] = eps1 and x, y, z divided by the sizes",
                      rtol=1e-5, atol=1e-8)
    # analytic cases
    ones = torch.ones(n, 2, dtype=torch.float64)
    sph = call_student(fn, p, torch.full((n, 3), 0.5, dtype=torch.float64), ones)
    expect_close(sph, (p ** 2).sum(-1) / 0.25, "F of the sphere of radius 0.5 (eps1 = eps2 = 1) should be |p|^2 / 0.25",
                 rtol=1e-6)
    octa = call_student(fn, p, torch.ones(n, 3, dtype=torch.float64), 2 * ones)
    expect_close(octa, p.abs().sum(-1), "F of the octahedron (eps1 = eps2 = 2, size 1) should be |x| + |y| + |z|",
                 rtol=1e-6)
    # points of the angle parametrisation are on the surface, and broadcasting works
    eta = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 3.0
    om = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * 6.2

    def fexp(x, q):
        return torch.sign(x) * x.abs() ** q

    a1 = torch.tensor([0.3, 0.5, 0.8], dtype=torch.float64)
    e1 = torch.tensor([0.6, 1.3], dtype=torch.float64)
    surf = torch.stack([a1[0] * fexp(torch.cos(eta), e1[0]) * fexp(torch.cos(om), e1[1]),
                        a1[1] * fexp(torch.cos(eta), e1[0]) * fexp(torch.sin(om), e1[1]),
                        a1[2] * fexp(torch.sin(eta), e1[0])], -1)
    on = call_student(fn, surf, a1, e1)
    expect_tensor(on, "F(surface points (64, 3), size (3,), eps (2,))", shape=(n,))
    expect_close(on, torch.ones(n, dtype=torch.float64), "F on points of the surface (they should give exactly 1; "
                 "size (3,) and eps (2,) broadcast against points (64, 3))", rtol=1e-6, atol=1e-6)
    # points near the centre and small eps: the powers reach 1e-60, below float32's smallest number (~1e-45)
    # but fine in float64. An implementation that computes in float32 (or casts its result) gets 0 or loses
    # the values here; keep the input's dtype
    near = torch.tensor([[1e-3, 2e-3, 0.0], [3e-3, 1e-3, 2e-3], [2e-3, 0.0, 3e-3]], dtype=torch.float64)
    e_small = torch.tensor([0.1, 0.1], dtype=torch.float64)
    unit = torch.ones(3, dtype=torch.float64)
    tiny = call_student(fn, near, unit, e_small)
    expect(isinstance(tiny, torch.Tensor), f"F should be a torch.Tensor, got {type(tiny).__name__}")
    if tiny.dtype != torch.float64:
        raise CheckFailed(f"float64 inputs give F in {tiny.dtype}: keep the input's dtype (no .float() inside)")
    ref_tiny = _ref_f(near, unit, e_small)
    if bool((tiny == 0).any()):
        raise CheckFailed("F is exactly 0 for points near the centre with eps = 0.1 (the true values are ~1e-55, "
                          "beyond float32's range but held by the float64 inputs): do not compute in float32 "
                          "(no .float() inside); keep the input's dtype")
    expect_close(tiny, ref_tiny, "F of points near the centre with eps = 0.1 (values ~1e-55, float64)", rtol=1e-9,
                 atol=0.0)
    return ("matches the formula, the sphere, the octahedron, equals 1 on the surface, and keeps float64 where "
            "float32 would underflow")


# ---------------------------------------------------------------------------
# 2. the REINFORCE estimator
# ---------------------------------------------------------------------------
def _ref_reinforce(losses, z, prob, baseline):
    return ((losses - baseline)[:, None] * (z / prob - (1 - z) / (1 - prob))).mean(0)


@self_check
def check_reinforce_gradient(fn) -> str:
    """``fn(losses (K,), z (K, M), prob (M,), baseline) -> (M,)``: the score-function estimate of ``d E[L] / d prob``.

    ``(1/K) sum_k (losses_k - baseline) * (z_km / prob_m - (1 - z_km) / (1 - prob_m))``.
    """
    g = torch.Generator().manual_seed(1)
    k, m = 12, 5
    prob = 0.15 + 0.7 * torch.rand(m, generator=g, dtype=torch.float64)
    z = (torch.rand(k, m, generator=g, dtype=torch.float64) < prob).double()
    losses = 1.0 + torch.rand(k, generator=g, dtype=torch.float64)
    b = 0.8
    out = call_student(fn, losses.clone(), z.clone(), prob.clone(), b)
    expect(isinstance(out, torch.Tensor), f"the estimate should be a torch.Tensor, got {type(out).__name__}")
    if out.shape != (m,):
        raise CheckFailed(f"the estimate has shape {tuple(out.shape)}, expected (M,) = ({m},): one derivative per "
                          "probability, averaged over the K samples")
    expect_tensor(out, "the estimate", shape=(m,))
    ref = _ref_reinforce(losses, z, prob, b)
    score = z / prob - (1 - z) / (1 - prob)
    if not _close(out, ref):
        wrong = {
            "the baseline is not subtracted: use (losses - baseline)": _ref_reinforce(losses, z, prob, 0.0),
            "the baseline is added instead of subtracted: use (losses - baseline)": _ref_reinforce(losses, z, prob, -b),
            "sum over the K samples instead of the mean: divide by K": k * ref,
            "wrong sign for the absent primitives: d log(1 - theta) / d theta = -1 / (1 - theta)":
                ((losses - b)[:, None] * (z / prob + (1 - z) / (1 - prob))).mean(0),
            "this is the gradient of p(z), not of log p(z): divide by theta (present) and 1 - theta (absent)":
                ((losses - b)[:, None] * (z - (1 - z))).mean(0),
            "only the present primitives contribute here: absent ones give -(L - b) / (1 - theta)":
                ((losses - b)[:, None] * (z / prob)).mean(0),
            "the sign is flipped: that is minus d E[L] / d theta (the descent direction); return the gradient "
            "itself, the optimiser subtracts it": -ref,
            "the baseline is the mean of the K losses, not the baseline passed in: use (losses - baseline) (a "
            "baseline computed from the same samples biases the estimate)": _ref_reinforce(losses, z, prob,
                                                                                          losses.mean()),
            "(z - theta) is the score with respect to the logit, not to theta: use d log p(z) / d theta = "
            "z / theta - (1 - z) / (1 - theta)": ((losses - b)[:, None] * (z - prob)).mean(0),
            "averaged over both the K samples and the M primitives (one value repeated for every primitive): "
            "average over the samples only, .mean(0) (dim 0), one derivative per primitive":
                ((losses - b)[:, None] * score).mean().expand(m),
            "averaged over the M primitives (dim 1) instead of the K samples (dim 0): use .mean(0), one "
            "derivative per primitive": ((losses - b)[:, None] * score).mean(1)[:m],
        }
        for msg, val in wrong.items():
            if _close(out, val):
                raise CheckFailed(msg)
        if bool((out == out[0]).all()):
            raise CheckFailed("every primitive got the same value: the estimate has one derivative per primitive; "
                              "average (losses - baseline)[:, None] * score over the K samples only (.mean(0))")
        _expect_close(out, ref, "the REINFORCE estimate (K = 12 samples, M = 5, baseline 0.8)",
                      "the score z / theta - (1 - z) / (1 - theta) (theta = prob, broadcast over the K samples), "
                      "the factor (losses - baseline)[:, None], or the mean over dim 0", rtol=1e-6, atol=1e-5)
    # unbiased: the average of many estimates approaches the exact gradient of E[L]
    d = torch.rand(m, generator=g, dtype=torch.float64)

    def f(zz):
        masked = torch.where(zz > 0.5, d, torch.full_like(zz, math.inf)).amin(-1)
        return torch.where(torch.isinf(masked), torch.full_like(masked, 2.0), masked)

    p = prob.clone().requires_grad_()
    # exact: sum over configurations, by enumeration
    zs = ((torch.arange(2 ** m)[:, None] >> torch.arange(m)) & 1).double()
    pz = torch.prod(zs * p + (1 - zs) * (1 - p), -1)
    (exact,) = torch.autograd.grad((pz * f(zs)).sum(), p)
    ests = []
    for _ in range(300):
        zz = (torch.rand(32, m, generator=g, dtype=torch.float64) < prob).double()
        ests.append(call_student(fn, f(zz), zz, prob.clone(), 1.0))
    est = torch.stack([torch.as_tensor(e, dtype=torch.float64) for e in ests])
    zscore = ((est.mean(0) - exact) / (est.std(0) / math.sqrt(len(est)))).abs().max()
    expect(bool(zscore < 5), f"averaged over 300 estimates the result is {float(zscore):.1f} standard errors away "
                             "from the exact gradient: the estimator is biased")
    return f"the formula, and unbiased (300 estimates within {float(zscore):.1f} standard errors of the exact gradient)"


# ---------------------------------------------------------------------------
# 3. the reordering trick
# ---------------------------------------------------------------------------
def _enumerate(dist: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
    m = dist.shape[-1]
    zs = ((torch.arange(2 ** m)[:, None] >> torch.arange(m)) & 1).to(dist.dtype)
    pz = torch.prod(zs * prob[..., None, :] + (1 - zs) * (1 - prob[..., None, :]), -1)
    masked = torch.where(zs.bool(), dist[..., None, :], torch.full_like(zs, math.inf)).amin(-1)
    masked = torch.where(torch.isinf(masked), torch.zeros_like(masked), masked)
    return (pz * masked).sum(-1)


def _variant(dist, prob, *, sort=True, descending=False, shift=True, weight=True, gather=True):
    if sort:
        d, order = torch.sort(dist, dim=-1, descending=descending)
        p = torch.gather(prob, -1, order) if gather else prob
    else:
        d, p = dist, prob
    keep = torch.cumprod(1 - p, -1)
    before = torch.cat([torch.ones_like(keep[..., :1]), keep[..., :-1]], -1) if shift else keep
    return (d * (p if weight else 1) * before).sum(-1)


def _variant_grad(dist: torch.Tensor, prob: torch.Tensor, w: torch.Tensor, detached: str) -> torch.Tensor:
    """The gradient with respect to prob of the reordering trick with its ``"product"`` or its ``"weight"`` detached."""
    p = prob.clone().requires_grad_()
    d, order = torch.sort(dist, -1)
    ps = torch.gather(p, -1, order)
    before = torch.cumprod(torch.cat([torch.ones_like(ps[..., :1]), 1 - ps[..., :-1]], -1), -1)
    if detached == "product":
        before = before.detach()
    else:
        ps = ps.detach()
    val = (d * ps * before).sum(-1)
    (gp,) = torch.autograd.grad((val * w).sum(), p, allow_unused=True)
    return torch.zeros_like(prob) if gp is None else gp


@self_check
def check_expected_min_distance(fn) -> str:
    """``fn(dist (..., M), prob (..., M)) -> (...)``: ``E[min over existing primitives of dist]`` by the reordering trick.

    Sort the distances, weight the ``k``-th smallest by ``theta_(k) prod_{j<k} (1 - theta_(j))``; the
    all-absent configuration counts 0.  Checked against the enumeration of all ``2^M``
    configurations, values and gradients.
    """
    g = torch.Generator().manual_seed(2)
    dist = torch.rand(3, 4, 6, generator=g, dtype=torch.float64)
    prob = torch.rand(3, 4, 6, generator=g, dtype=torch.float64)
    out = call_student(fn, dist.clone(), prob.clone())
    expect(isinstance(out, torch.Tensor), f"the expectation should be a torch.Tensor, got {type(out).__name__}")
    if out.shape != (3, 4):
        raise CheckFailed(f"fn(dist (3, 4, 6), prob (3, 4, 6)) has shape {tuple(out.shape)}, expected (3, 4): "
                          "reduce over the last dimension (the M primitives) only")
    expect_tensor(out, "the expectation", shape=(3, 4))
    ref = _enumerate(dist, prob)
    if not _close(out, ref, rtol=1e-7, atol=1e-9):
        wrong = {
            "the distances are not sorted: the formula holds for Delta_(1) <= ... <= Delta_(M) (torch.sort first)":
                _variant(dist, prob, sort=False),
            "sorted in descending order: the nearest primitive (smallest distance) comes first":
                _variant(dist, prob, descending=True),
            "the product includes the k-th primitive itself: it runs over the closer ones only (j < k); shift the "
            "cumulative product by one (start with 1)": _variant(dist, prob, shift=False),
            "the k-th term lacks theta_(k): the k-th nearest must exist, with probability theta_(k)":
                _variant(dist, prob, weight=False),
            "the probabilities are not reordered with the distances: gather prob with the sorting permutation":
                _variant(dist, prob, gather=False),
        }
        none = torch.prod(1 - prob, -1)  # the probability that no primitive exists
        d_sorted, order = torch.sort(dist, -1)
        p_sorted = torch.gather(prob, -1, order)
        by_prob = "sorted by the probabilities instead of the distances: sort dist (ascending) and gather prob " \
                  "with that permutation"
        named = [*wrong.items(),
                 ("divided by P(at least one primitive exists) = 1 - prod (1 - theta): that is E[min | some "
                  "primitive exists]; the exercise's expectation counts the all-absent configuration as 0, do not "
                  "divide", ref / (1 - none)),
                 ("theta_m * Delta_m summed over all primitives ignores the minimum: only the nearest existing "
                  "primitive counts; weight the k-th nearest by theta_(k) prod_{j<k} (1 - theta_(j))",
                  (dist * prob).sum(-1)),
                 ("the exclusive product starts with prod_k (1 - theta_(k)) instead of 1 (torch.roll wraps the last "
                  "cumulative product around to the front): build it as torch.cat([ones, cumprod(1 - p)[..., :-1]])",
                  (d_sorted * p_sorted * torch.roll(torch.cumprod(1 - p_sorted, -1), 1, -1)).sum(-1))]
        for desc in (True, False):
            p_by_prob, o_by_prob = torch.sort(prob, -1, descending=desc)
            named.append((by_prob, _variant(torch.gather(dist, -1, o_by_prob), p_by_prob, sort=False)))
        for msg, val in named:
            if _close(out, val, rtol=1e-7, atol=1e-9):
                raise CheckFailed(msg)
        # the all-absent configuration given a cost c (the library's `empty`): out = ref + c * prod (1 - theta)
        c = float(((out.detach().double() - ref) * none).sum() / none.square().sum())
        if abs(c) > 1e-6 and _close(out, ref + c * none, rtol=1e-7, atol=1e-9):
            raise CheckFailed(f"the all-absent configuration costs {c:.3g} here (+ {c:.3g} * prod (1 - theta)): in "
                              "this exercise it counts 0 (the library's `empty` argument, 0 by default); drop "
                              "that term")
        _expect_close(out, ref, "E[min] against the enumeration of all 2^6 configurations",
                      "the weight of the k-th smallest distance, theta_(k) prod_{j<k} (1 - theta_(j)): the "
                      "probabilities gathered with the sorting permutation of dist, and the exclusive cumulative "
                      "product (its first factor 1)", rtol=1e-7, atol=1e-9)
    for m in (1, 2, 9):
        d = torch.rand(5, m, generator=g, dtype=torch.float64)
        p = torch.rand(5, m, generator=g, dtype=torch.float64)
        expect_close(call_student(fn, d, p), _enumerate(d, p), f"E[min] for M = {m} against the enumeration",
                     rtol=1e-7, atol=1e-9)
    # gradients
    d = dist.clone().requires_grad_()
    p = prob.clone().requires_grad_()
    w = torch.randn(3, 4, generator=g, dtype=torch.float64)
    val = call_student(fn, d, p)
    if not val.requires_grad:
        raise CheckFailed("the result does not depend differentiably on dist and prob (detached?): the "
                          "reordering trick must stay differentiable")
    gd, gp = torch.autograd.grad((val * w).sum(), (d, p), allow_unused=True)
    d2, p2 = dist.clone().requires_grad_(), prob.clone().requires_grad_()
    rd, rp = torch.autograd.grad((_enumerate(d2, p2) * w).sum(), (d2, p2))
    expect(gp is not None and gd is not None, "no gradient reaches dist or prob (detached or recomputed from "
                                              "numbers?): keep the computation in torch")
    if not _close(gp, rp, rtol=1e-6, atol=1e-9):
        for detached, msg in (
                ("product", "the exclusive product prod_{j<k} (1 - theta_(j)) is detached (or built from numbers): "
                            "its gradient with respect to prob is missing; keep the whole product in the graph "
                            "(no .detach(), .item() or torch.no_grad)"),
                ("weight", "the factor theta_(k) of each term is detached (or built from numbers): its gradient with "
                           "respect to prob is missing; keep it in the graph (no .detach(), .item() or "
                           "torch.no_grad)")):
            if _close(gp, _variant_grad(dist, prob, w, detached), rtol=1e-6, atol=1e-9):
                raise CheckFailed(msg)
    cause = ("part of the computation is outside the graph (.detach(), .item(), torch.no_grad, a numpy round-trip) "
             "or altered after the values were computed")
    _expect_close(gp, rp, "the gradient with respect to prob (vs autograd of the enumeration)", cause, rtol=1e-6,
                  atol=1e-9)
    _expect_close(gd, rd, "the gradient with respect to dist (vs autograd of the enumeration)", cause, rtol=1e-6,
                  atol=1e-9)
    # certain configurations: exact 0 / 1 probabilities (a sigmoid of a logit above ~17 is exactly 1.0 in float32)
    d = torch.tensor([[0.5, 0.2, 0.9]], dtype=torch.float64)
    one = call_student(fn, d, torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64))
    if isinstance(one, torch.Tensor) and not bool(torch.isfinite(one).all()):
        raise CheckFailed("E[min] is NaN or inf with prob = (1, 0, 1), where a primitive exists for certain: a "
                          "division by (1 - theta) (the exclusive product as cumprod(1 - p) / (1 - p)) is 0 / 0 "
                          "there; build it without dividing, torch.cumprod of (1 - p) shifted by one (start with 1)")
    expect_close(one, torch.tensor([0.5], dtype=torch.float64), "with prob = (1, 0, 1) the minimum over the existing "
                 "primitives (0.5, 0.9) is 0.5", atol=1e-12)
    d1 = torch.tensor([[0.5, 0.2, 0.9, 0.7]], dtype=torch.float64, requires_grad=True)
    p1 = torch.tensor([[1.0, 0.0, 1.0, 0.5]], dtype=torch.float64, requires_grad=True)
    g1 = torch.autograd.grad(call_student(fn, d1, p1).sum(), (d1, p1), allow_unused=True)
    d2 = d1.detach().clone().requires_grad_()
    p2 = p1.detach().clone().requires_grad_()
    r1 = torch.autograd.grad(_enumerate(d2, p2).sum(), (d2, p2))
    if any(g is not None and not bool(torch.isfinite(g).all()) for g in g1):
        raise CheckFailed("the gradient is NaN or inf where a probability is exactly 1 (or 0): the exclusive product "
                          "through exp(cumsum(log(1 - p))) takes log(0) there. Use torch.cumprod(1 - p) (shifted by "
                          "one) so that certain primitives keep finite gradients")
    for name, g, r in (("prob", g1[1], r1[1]), ("dist", g1[0], r1[0])):
        expect(g is not None, f"no gradient reaches {name} when some probabilities are exactly 0 or 1")
        expect_close(g, r, f"the gradient with respect to {name} at prob = (1, 0, 1, 0.5) (vs the enumeration)",
                     rtol=1e-6, atol=1e-9)
    return "equals the enumeration over 2^M configurations (M = 1, 2, 6, 9), values and gradients"


# ---------------------------------------------------------------------------
# hidden parts (run by the grader only): other shapes and batch layouts, float32 kept, points at the centre and
# exactly on the surface, near-box and pinched exponents, a single sample, ties, the caller's tensors untouched
# ---------------------------------------------------------------------------
def _unchanged(before: tuple[torch.Tensor, ...], after: tuple[torch.Tensor, ...], names: tuple[str, ...]) -> None:
    for b, a, name in zip(before, after, names):
        if not torch.equal(a, b):
            raise CheckFailed(f"your function changed the caller's {name} tensor (an in-place operation such as "
                              f"-=, /=, abs_() or sort_() on an argument): work on new tensors")


def _loop_f(p: torch.Tensor, a: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """F point by point with Python floats (an independent reference); inputs already broadcast to (N, 3/2)."""
    out = []
    for (x, y, z), (a1, a2, a3), (e1, e2) in zip(p.double().tolist(), a.double().tolist(), e.double().tolist()):
        xy = abs(x / a1) ** (2 / e2) + abs(y / a2) ** (2 / e2)
        out.append(xy ** (e2 / e1) + abs(z / a3) ** (2 / e1))
    return torch.tensor(out, dtype=torch.float64)


def _hidden_inside_outside(fn) -> str:
    g = torch.Generator().manual_seed(80)
    # a batch of 4 primitives with 7 points each: points (4, 7, 3), size (4, 1, 3), eps (4, 1, 2), in float32
    p = torch.randn(4, 7, 3, generator=g) * 0.5
    a = 0.2 + 0.8 * torch.rand(4, 1, 3, generator=g)
    e = 0.3 + 1.6 * torch.rand(4, 1, 2, generator=g)
    before = (p.clone(), a.clone(), e.clone())
    out = call_student(fn, p, a, e)
    expect(isinstance(out, torch.Tensor), f"F should be a torch.Tensor, got {type(out).__name__}")
    _unchanged(before, (p, a, e), ("points", "size", "eps"))
    if out.shape != (4, 7):
        raise CheckFailed(f"F(points (4, 7, 3), size (4, 1, 3), eps (4, 1, 2)) has shape {tuple(out.shape)}, expected "
                          "(4, 7): index the last dimension with [..., k] (not [:, k], which is the second dimension "
                          "of a 3-D tensor), so that any leading dimensions broadcast")
    expect(out.dtype == torch.float32, f"float32 inputs give F in {out.dtype}: keep the input's dtype")
    ref = _loop_f(p.reshape(-1, 3), a.expand(4, 7, 3).reshape(-1, 3), e.expand(4, 7, 2).reshape(-1, 2)).reshape(4, 7)
    expect_close(out, ref, "F for points (4, 7, 3), size (4, 1, 3), eps (4, 1, 2) in float32 (eps in [0.3, 1.9])",
                 rtol=1e-4, atol=1e-6)
    # special points: the centre (F = 0, no NaN), the tips on the axes and the corner of a near-box, in float64
    a1 = torch.tensor([0.6, 0.4, 0.3], dtype=torch.float64)
    pts = torch.tensor([[0.0, 0.0, 0.0], [0.6, 0.0, 0.0], [0.0, -0.4, 0.0], [0.0, 0.0, 0.3], [0.3, 0.2, -0.15],
                        [-0.6, 0.4, 0.3]], dtype=torch.float64)
    for eps in ((1.0, 1.0), (0.1, 0.1), (1.9, 0.5), (0.5, 1.9)):
        e1 = torch.tensor(eps, dtype=torch.float64)
        got = call_student(fn, pts, a1, e1)
        expect_tensor(got, f"F at special points with eps = {eps}", shape=(6,))
        expect(bool(torch.isfinite(got).all()),
               f"F is NaN or inf at the centre or on an axis with eps = {eps} (a 0 to a negative power, or a log of 0?)")
        ref = _loop_f(pts, a1.expand(6, 3), e1.expand(6, 2))
        expect_close(got, ref, f"F at the centre, the tips on the axes (exactly 1), half-way and a corner, "
                     f"eps = {eps}", rtol=1e-9, atol=1e-12)
    # one point, everything unbatched: points (3,), size (3,), eps (2,) -> a 0-d tensor
    one = call_student(fn, torch.tensor([0.1, 0.2, 0.1], dtype=torch.float64), a1, torch.tensor([0.7, 1.2],
                                                                                                  dtype=torch.float64))
    expect_tensor(one, "F of a single point (3,) with size (3,) and eps (2,)", shape=())
    expect_close(one, _loop_f(torch.tensor([[0.1, 0.2, 0.1]]), a1[None], torch.tensor([[0.7, 1.2]]))[0],
                 "F of a single point", rtol=1e-9)
    return ("batched (4, 7, 3) against (4, 1, 3) in float32, the centre, the axes' tips, near-box and pinched eps, "
            "one point, inputs untouched")


def _loop_reinforce(losses, z, prob, baseline) -> torch.Tensor:
    k, m = z.shape
    out = [0.0] * m
    for i in range(k):
        for j in range(m):
            zij, pj = float(z[i, j]), float(prob[j])
            score = 1 / pj if zij > 0.5 else -1 / (1 - pj)
            out[j] += (float(losses[i]) - float(baseline)) * score / k
    return torch.tensor(out, dtype=torch.float64)


def _hidden_reinforce_gradient(fn) -> str:
    g = torch.Generator().manual_seed(81)
    for k, m, dtype, baseline in ((1, 1, torch.float64, 0.3), (1, 6, torch.float32, 0.0), (40, 3, torch.float32, 1.2),
                                  (7, 9, torch.float64, torch.tensor(0.5, dtype=torch.float64))):
        prob = (0.05 + 0.9 * torch.rand(m, generator=g, dtype=torch.float64)).to(dtype)
        z = (torch.rand(k, m, generator=g, dtype=torch.float64) < prob.double()).to(dtype)
        losses = (torch.rand(k, generator=g, dtype=torch.float64) * 2).to(dtype)
        before = (losses.clone(), z.clone(), prob.clone())
        out = call_student(fn, losses, z, prob, baseline)
        what = f"the estimate for K = {k}, M = {m}, {dtype}, baseline {float(baseline)}" + (
            " (a 0-d tensor)" if isinstance(baseline, torch.Tensor) else "")
        _unchanged(before, (losses, z, prob), ("losses", "z", "prob"))
        expect_tensor(out, what, shape=(m,))
        expect(out.dtype == dtype, f"{what} comes back as {out.dtype}: keep the inputs' dtype")
        expect_close(out, _loop_reinforce(losses, z, prob, baseline), what,
                     rtol=1e-9 if dtype == torch.float64 else 1e-5, atol=1e-12 if dtype == torch.float64 else 1e-6)
    # each primitive's derivative involves its own probability only: changing prob[1] leaves entry 0 as it was
    prob = torch.tensor([0.3, 0.6, 0.8], dtype=torch.float64)
    z = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0]], dtype=torch.float64)
    losses = torch.tensor([0.2, 0.9, 0.4], dtype=torch.float64)
    first = call_student(fn, losses, z, prob, 0.1)
    prob2 = prob.clone()
    prob2[1] = 0.1
    second = call_student(fn, losses, z, prob2, 0.1)
    expect_close(second[0], first[0], "entry 0 of the estimate after changing prob[1] only (each derivative uses its "
                 "own primitive's probability)", atol=1e-12)
    return "K = 1 and M = 1, float32 kept, a tensor baseline, a loop reference, entries independent, inputs untouched"


def _hidden_expected_min_distance(fn) -> str:
    g = torch.Generator().manual_seed(82)
    # float32 with other leading dimensions, and a single configuration of one primitive
    dist = torch.rand(2, 1, 3, 5, generator=g)
    prob = torch.rand(2, 1, 3, 5, generator=g)
    before = (dist.clone(), prob.clone())
    out = call_student(fn, dist, prob)
    expect(isinstance(out, torch.Tensor), f"the expectation should be a torch.Tensor, got {type(out).__name__}")
    _unchanged(before, (dist, prob), ("dist", "prob"))
    expect_tensor(out, "E[min] for dist, prob (2, 1, 3, 5) in float32", shape=(2, 1, 3))
    expect(out.dtype == torch.float32, f"float32 inputs give {out.dtype}: keep the inputs' dtype (build the leading "
                                       "1 of the exclusive product with torch.ones_like, not a float64 tensor)")
    expect_close(out, _enumerate(dist.double(), prob.double()), "E[min] for (2, 1, 3, 5) float32 inputs against the "
                 "enumeration", rtol=1e-5, atol=1e-6)
    one = call_student(fn, torch.tensor([[0.7]], dtype=torch.float64), torch.tensor([[0.4]], dtype=torch.float64))
    expect_tensor(one, "E[min] of one primitive (batch (1, 1))", shape=(1,))
    expect_close(one, torch.tensor([0.28], dtype=torch.float64), "E[min] of one primitive at distance 0.7 with "
                 "probability 0.4 (0.7 * 0.4)", atol=1e-12)
    # ties: equal distances (a point inside two primitives, or at the same distance from both)
    d = torch.tensor([[0.3, 0.3, 0.8, 0.3], [0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 0.2, 0.6]], dtype=torch.float64)
    p = torch.tensor([[0.5, 0.4, 0.9, 0.2], [0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.5, 0.5]], dtype=torch.float64)
    tied = call_student(fn, d, p)
    expect_tensor(tied, "E[min] with tied distances", shape=(3,))
    ref = _enumerate(d, p)
    if not _close(tied, ref, rtol=1e-9, atol=1e-12):
        raise CheckFailed(f"with equal distances (ties) E[min] is {[round(v, 4) for v in tied.double().tolist()]}, "
                          f"the enumeration gives {[round(v, 4) for v in ref.tolist()]}: a tied primitive must count "
                          "as 'closer' for exactly one of the pair (a 'closer than' mask with a strict < counts it for "
                          "neither); sorting handles ties, in any order")
    # batch independence: changing the distances of row 1 leaves row 0's value unchanged
    d = torch.rand(2, 6, generator=g, dtype=torch.float64)
    p = torch.rand(2, 6, generator=g, dtype=torch.float64)
    a = call_student(fn, d, p)
    d2 = d.clone()
    d2[1] = d2[1].flip(0) + 1.0
    b = call_student(fn, d2, p)
    expect_close(b[0], a[0], "row 0's value after changing row 1's distances only (each row is on its own)",
                 atol=1e-12)
    # M = 12 against the enumeration of its 4096 configurations
    d = torch.rand(3, 12, generator=g, dtype=torch.float64)
    p = torch.rand(3, 12, generator=g, dtype=torch.float64)
    expect_close(call_student(fn, d, p), _enumerate(d, p), "E[min] for M = 12 against the enumeration", rtol=1e-9,
                 atol=1e-12)
    return "float32 kept with 3 leading dimensions, one primitive, ties, rows independent, M = 12, inputs untouched"


def _register_hidden() -> None:
    from course_lib.models import primitives as lib

    check_inside_outside.hidden(_hidden_inside_outside, references=(lib.superquadric_inside_outside,))
    check_reinforce_gradient.hidden(_hidden_reinforce_gradient,
                                    references=(lib.reinforce_gradient, lib.bernoulli_log_prob))
    check_expected_min_distance.hidden(_hidden_expected_min_distance,
                                       references=(lib.expected_min_distance, lib.expected_min_distance_enumerate))


_register_hidden()
