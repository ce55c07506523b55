"""Earth mover's distance between point clouds: exact, Sinkhorn and auction, batched.

Introduced in ``lectures/05_point_sets.ipynb``.

The EMD of two clouds of the same size N is the cost of the best one-to-one matching,

    EMD(X, Y) = min over permutations s of (1/N) sum_i ||x_i - y_s(i)||      (``squared=False``)

(``||.||^2`` with ``squared=True``). Three solvers:

- ``"exact"``: the Hungarian-type solver of ``scipy.optimize.linear_sum_assignment``
  (CPU, float64), the reference.
- ``"auction"``: Bertsekas' auction with eps-scaling. One-to-one by construction, and
  *certified*: the final eps is chosen from a lower bound of the EMD (the mean
  nearest-neighbour distance, both ways) so that the result exceeds the exact EMD by at
  most ``rel_tol`` (default 1%) relative. On the CPU a compiled Gauss-Seidel loop (numba,
  :mod:`course_lib.ops._jit`; a NumPy version when numba is missing); on GPUs Jacobi
  bidding vectorised in torch.
- ``"sinkhorn"``: entropy-regularised OT in the log domain with eps-scaling, batched
  (GPU friendly). The iterations run under ``torch.no_grad``; the plan is then *rounded*
  to an exactly feasible transport plan (Altschuler, Weed and Rigollet 2017, Alg. 2), so
  its cost is an upper bound of the EMD, and a dual lower bound (c-transform of the
  Sinkhorn potential) is returned with it: ``info["lower"] <= EMD <= cost``. The plan is
  not a permutation (mass is spread over near neighbours).

Gradients (all three): the matching or plan P is held fixed and the cost <P, C(x, y)> is
differentiated in the coordinates. By the envelope (Danskin) theorem this is the gradient
of the EMD wherever the optimal matching is unique (exact, auction) and of the regularised
OT value for Sinkhorn; no autograd graph is stored per iteration.

Accuracy against exact (measured by ``benchmarks/ops.py``, see
``benchmarks/results/ops-laptop-cpu.md``): in the docstring of :func:`emd`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from . import _jit
from ._validate import as_batched, check_pair
from .chamfer import safe_sqrt

__all__ = ["emd", "EMDResult", "METHODS", "pairwise_cost"]

METHODS = ("exact", "sinkhorn", "auction")
_REDUCTIONS = ("mean", "sum", "none")


class EMDResult(tuple):
    """``(cost, assignment)`` with attributes ``.cost``, ``.assignment`` and ``.info``.

    ``assignment`` is a long tensor ``(B, N)`` (``y[assignment[b, i]]`` is matched to
    ``x[b, i]``) for ``"exact"`` and ``"auction"``, the transport plan ``(B, N, M)`` (rows
    sum to 1/N, columns to 1/M) for ``"sinkhorn"``. ``info`` holds solver diagnostics.
    """

    cost: Tensor
    assignment: Tensor
    info: dict[str, Any]

    def __new__(cls, cost: Tensor, assignment: Tensor, info: dict[str, Any]) -> EMDResult:
        self = super().__new__(cls, (cost, assignment))
        self.cost = cost
        self.assignment = assignment
        self.info = info
        return self


def pairwise_cost(x: Tensor, y: Tensor, squared: bool) -> Tensor:
    """Cost matrix (B, N, M): ``||x_i - y_j||^2`` or ``||x_i - y_j||``, differentiable."""
    d2 = ((x.unsqueeze(2) - y.unsqueeze(1)) ** 2).sum(-1)
    return d2 if squared else safe_sqrt(d2)


def _fast_cost(x: Tensor, y: Tensor, squared: bool, dtype: torch.dtype) -> Tensor:
    """The same cost matrix without gradient, by the |x|^2 + |y|^2 - 2 x.y expansion (solvers only)."""
    x, y = x.detach().to(dtype), y.detach().to(dtype)
    d2 = torch.baddbmm((x * x).sum(-1)[:, :, None] + (y * y).sum(-1)[:, None, :], x, y.transpose(1, 2),
                       alpha=-2.0).clamp_min_(0.0)
    return d2 if squared else d2.sqrt_()


def _matched_cost(x: Tensor, y: Tensor, assign: Tensor, squared: bool) -> Tensor:
    """Mean cost (B,) of a one-to-one matching, recomputed in torch (differentiable)."""
    ym = torch.gather(y, 1, assign.unsqueeze(-1).expand(-1, -1, y.shape[-1]))
    d2 = ((x - ym) ** 2).sum(-1)
    return (d2 if squared else safe_sqrt(d2)).mean(1)


# ---------------------------------------------------------------------------
# exact
# ---------------------------------------------------------------------------
def _exact(x: Tensor, y: Tensor, squared: bool) -> tuple[Tensor, dict[str, Any]]:
    c = _fast_cost(x, y, squared, torch.float64).cpu().numpy()
    out = np.empty(c.shape[:2], dtype=np.int64)
    for b in range(c.shape[0]):
        _, cols = linear_sum_assignment(c[b])
        out[b] = cols
    return torch.from_numpy(out).to(x.device), {"method": "exact"}


# ---------------------------------------------------------------------------
# auction
# ---------------------------------------------------------------------------
def _auction(
    cost: Tensor, eps_final: Tensor, factor: float, max_rounds: int, eps_start: Tensor
) -> tuple[Tensor, dict[str, Any]]:
    """Jacobi auction with eps-scaling on a batch of square cost matrices (B, N, N), float64.

    Persons (rows) bid for objects (columns); benefit = -cost. Returns the person -> object
    assignment (B, N). ``eps_final`` is per cloud (B,). The total cost is within N * eps_final
    of the optimum (Bertsekas 1988); eps-scaling keeps prices between phases and only frees
    the persons that violate eps-complementary slackness.
    """
    b, n, _ = cost.shape
    dev = cost.device
    benefit = -cost.reshape(b * n, n)  # flattened persons
    price = torch.zeros(b, n, dtype=cost.dtype, device=dev)
    person_of = torch.full((b * n,), -1, dtype=torch.long, device=dev)  # object (flat) -> person (flat)
    object_of = torch.full((b * n,), -1, dtype=torch.long, device=dev)  # person (flat) -> object (local)
    batch_of_person = torch.arange(b, device=dev).repeat_interleave(n)
    span = (cost.amax(dim=(1, 2)) - cost.amin(dim=(1, 2))).clamp_min(1e-12)
    eps = torch.maximum(torch.minimum(span / 4.0, eps_start), eps_final)
    rounds = 0
    phases = 0
    neg_inf = torch.tensor(float("-inf"), dtype=cost.dtype, device=dev)
    while True:
        phases += 1
        eps_p = eps[batch_of_person]  # (B*N,)
        # free the persons violating eps-complementary slackness for the new eps
        assigned = object_of >= 0
        if bool(assigned.any()):
            vals = benefit - price[batch_of_person]
            best = vals.max(1).values
            own = vals.gather(1, object_of.clamp_min(0)[:, None])[:, 0]
            bad = assigned & (own < best - eps_p)
            if bool(bad.any()):
                objs = batch_of_person[bad] * n + object_of[bad]
                person_of[objs] = -1
                object_of[bad] = -1
        while True:
            free = torch.nonzero(object_of < 0).squeeze(1)
            if free.numel() == 0:
                break
            rounds += 1
            if rounds > max_rounds:
                raise RuntimeError(f"auction did not converge in {max_rounds} bidding rounds")
            bp = batch_of_person[free]
            vals = benefit[free] - price[bp]
            if n > 1:
                top = torch.topk(vals, 2, dim=1)
                v1, v2, j1 = top.values[:, 0], top.values[:, 1], top.indices[:, 0]
            else:
                v1, j1 = vals[:, 0], torch.zeros_like(free)
                v2 = v1
            bid = price[bp, j1] + (v1 - v2) + eps_p[free]
            obj = bp * n + j1  # flat object id
            best_bid = torch.full((b * n,), float("-inf"), dtype=cost.dtype, device=dev)
            best_bid.scatter_reduce_(0, obj, bid, reduce="amax")
            is_top = bid >= best_bid[obj]
            winner = torch.full((b * n,), b * n, dtype=torch.long, device=dev)
            winner.scatter_reduce_(0, obj[is_top], free[is_top], reduce="amin")
            won = torch.nonzero(winner < b * n).squeeze(1)  # flat objects with a new owner
            new_owner = winner[won]
            old = person_of[won]
            had = old >= 0
            object_of[old[had]] = -1
            person_of[won] = new_owner
            object_of[new_owner] = won % n
            price.view(-1)[won] = torch.where(torch.isfinite(best_bid[won]), best_bid[won], neg_inf)
        if bool((eps <= eps_final).all()):
            break
        eps = torch.maximum(eps / factor, eps_final)
    info = {"method": "auction", "rounds": rounds, "phases": phases, "eps": eps_final.detach().cpu()}
    return object_of.view(b, n), info


def _auction_numpy(
    cost: np.ndarray,
    eps_final: np.ndarray,
    factor: float,
    max_rounds: int,
    eps_start: np.ndarray,
    small: int = 32,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The same auction in NumPy for the CPU, where per-call overhead dominates torch.

    Jacobi rounds (all free persons bid at once) while many persons are free; once at most
    ``small`` are free, a Gauss-Seidel loop (one bid at a time, the displaced owner bidding
    next) finishes the phase with far fewer array calls. Same eps-CS guarantee.
    """
    b, n, _ = cost.shape
    benefit = -cost.reshape(b * n, n)
    price = np.zeros((b, n))
    pflat = price.reshape(-1)
    person_of = np.full(b * n, -1, np.int64)
    object_of = np.full(b * n, -1, np.int64)
    bop = np.repeat(np.arange(b), n)
    rows = np.arange(b * n)
    span = np.maximum(cost.max(axis=(1, 2)) - cost.min(axis=(1, 2)), 1e-12)
    eps = np.maximum(np.minimum(span / 4.0, eps_start), eps_final)
    rounds = bids = phases = 0
    while True:
        phases += 1
        eps_p = eps[bop]
        assigned = object_of >= 0
        if assigned.any():  # free the persons violating eps-CS for the new eps
            vals = benefit - price[bop]
            own = vals[rows, np.maximum(object_of, 0)]
            bad = assigned & (own < vals.max(1) - eps_p)
            if bad.any():
                person_of[bop[bad] * n + object_of[bad]] = -1
                object_of[bad] = -1
        free = np.flatnonzero(object_of < 0)
        while free.size:
            rounds += 1
            if rounds > max_rounds:
                raise RuntimeError(f"auction did not converge in {max_rounds} bidding rounds")
            if free.size <= small:
                stack = free.tolist()
                buf = np.empty(n)
                while stack:
                    i = stack.pop()
                    bb = int(bop[i])
                    np.subtract(benefit[i], price[bb], out=buf)
                    j = int(buf.argmax())
                    if n > 1:
                        v1 = buf[j]
                        buf[j] = -np.inf
                        inc = v1 - buf.max()
                    else:
                        inc = 0.0
                    obj = bb * n + j
                    pflat[obj] += inc + eps_p[i]
                    old = int(person_of[obj])
                    if old >= 0:
                        object_of[old] = -1
                        stack.append(old)
                    person_of[obj] = i
                    object_of[i] = j
                    bids += 1
                break
            bids += free.size
            bp = bop[free]
            vals = benefit[free] - price[bp]
            k = np.arange(free.size)
            j1 = vals.argmax(1)
            if n > 1:
                v1 = vals[k, j1]
                vals[k, j1] = -np.inf
                inc = v1 - vals.max(1)
            else:
                j1 = np.zeros(free.size, np.int64)
                inc = np.zeros(free.size)
            bid = price[bp, j1] + inc + eps_p[free]
            obj = bp * n + j1
            order = np.lexsort((-bid, obj))  # by object, best bid first
            obj_s = obj[order]
            head = np.ones(obj_s.size, bool)
            head[1:] = obj_s[1:] != obj_s[:-1]
            won = obj_s[head]
            winner = free[order][head]
            old = person_of[won]
            object_of[old[old >= 0]] = -1
            person_of[won] = winner
            object_of[winner] = won % n
            pflat[won] = bid[order][head]
            free = np.flatnonzero(object_of < 0)
        if (eps <= eps_final).all():
            break
        eps = np.maximum(eps / factor, eps_final)
    info = {"method": "auction", "rounds": rounds, "bids": bids, "phases": phases}
    return object_of.reshape(b, n), info


def _auction_compiled(
    cost: np.ndarray, eps_final: np.ndarray, eps_start: np.ndarray, max_rounds: int, factor: float = 8.0
) -> tuple[Tensor, dict[str, Any]]:
    """The compiled Gauss-Seidel auction (numba), one cloud at a time; same guarantee as the others.

    ``max_rounds`` caps the bids at ``max_rounds * N`` per cloud (a Gauss-Seidel round is one bid).
    eps shrinks by ``factor`` per phase (8 measured fastest at N=2,048, 4 and 5 within 20%).
    """
    b, n, _ = cost.shape
    out = np.empty((b, n), np.int64)
    bids = phases = 0
    for i in range(b):
        obj, nb, nph, ok = _jit.auction_gauss_seidel(
            np.ascontiguousarray(-cost[i]), float(eps_final[i]), float(eps_start[i]), factor, max_rounds * n
        )
        if not ok:
            raise RuntimeError(f"auction did not converge in {max_rounds * n} bids (cloud {i})")
        out[i] = obj
        bids += nb
        phases = max(phases, nph)
    return torch.from_numpy(out), {"method": "auction", "bids": bids, "phases": phases, "compiled": True}


# ---------------------------------------------------------------------------
# sinkhorn
# ---------------------------------------------------------------------------
def _round_plan(p: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Round a near-feasible plan (B, N, M) to one with row sums ``a`` and column sums ``b`` exactly."""
    r = p.sum(2)
    p = p * (a / r.clamp_min(1e-300)).clamp(max=1.0)[:, :, None]
    c = p.sum(1)
    p = p * (b / c.clamp_min(1e-300)).clamp(max=1.0)[:, None, :]
    er = a - p.sum(2)
    ec = b - p.sum(1)
    mass = er.sum(1).clamp_min(1e-300)
    return p + er[:, :, None] * ec[:, None, :] / mass[:, None, None]


def _matvec(kern: Tensor, v: Tensor, transpose: bool = False) -> Tensor:
    """Batched K v (or K^T v); small problems avoid BLAS threading, whose start-up dominates them."""
    if kern.numel() < 2**16:
        return (kern * v[:, None, :]).sum(2) if not transpose else (kern * v[:, :, None]).sum(1)
    k = kern.transpose(1, 2) if transpose else kern
    return torch.bmm(k, v[:, :, None])[..., 0]


def _sinkhorn(
    cost: Tensor, eps_final: Tensor, scaling: float, max_iter: int, tol: float, omega: float = 1.0
) -> tuple[Tensor, dict[str, Any]]:
    """Stabilised Sinkhorn with eps-scaling on (B, N, M) costs; returns a feasible plan, no grad.

    Log-domain potentials (f, g) are *absorbed* into the kernel
    K = exp((f_i + g_j - C_ij) / eps) at every change of eps and whenever the scalings
    (u, v) grow large (Schmitzer 2019, "Stabilized sparse scaling algorithms for entropy
    regularized transport problems"); in between, each iteration is two batched
    matrix-vector products, so the costly exponentials are paid once per eps stage.
    """
    bsz, n, m = cost.shape
    dt, dev = cost.dtype, cost.device
    a = torch.full((bsz, n), 1.0 / n, dtype=dt, device=dev)
    b = torch.full((bsz, m), 1.0 / m, dtype=dt, device=dev)
    f = torch.zeros(bsz, n, dtype=dt, device=dev)
    g = torch.zeros(bsz, m, dtype=dt, device=dev)
    eps = torch.maximum(cost.amax(dim=(1, 2)).clamp_min(1e-12), eps_final)
    it = 0
    err = torch.full((bsz,), float("inf"), dtype=dt, device=dev)
    final = False
    while True:
        if bool((eps <= eps_final).all()):
            final = True
        ee = eps[:, None, None]
        kern = torch.exp((f[:, :, None] + g[:, None, :] - cost) / ee)
        u = torch.ones(bsz, n, dtype=dt, device=dev)
        v = torch.ones(bsz, m, dtype=dt, device=dev)
        inner = 0
        while it < max_iter:
            u_new = a / _matvec(kern, v).clamp_min(1e-300)
            u = u_new if omega == 1.0 else u.pow(1 - omega) * u_new.pow(omega)
            v_new = b / _matvec(kern, u, transpose=True).clamp_min(1e-300)
            v = v_new if omega == 1.0 else v.pow(1 - omega) * v_new.pow(omega)
            it += 1
            inner += 1
            if inner % 5 and it < max_iter:
                continue
            # columns are exact after the v update; the row error is |u * K v - a|_1
            err = (u * _matvec(kern, v) - a).abs().sum(1)
            big = bool((u.amax() > 1e30) | (v.amax() > 1e30))
            if big:
                break
            if final:
                if bool((err < tol).all()):
                    break
            elif inner >= 5 and bool((err < 0.1).all()) or inner >= 50:
                break
        f = f + eps[:, None] * torch.log(u.clamp_min(1e-300))
        g = g + eps[:, None] * torch.log(v.clamp_min(1e-300))
        if final and (not big or it >= max_iter):
            break
        if it >= max_iter:
            final = True
        eps = torch.maximum(eps * scaling, eps_final)
    ee = eps_final[:, None, None]
    plan = torch.exp((f[:, :, None] + g[:, None, :] - cost) / ee)
    err = (plan.sum(2) - a).abs().sum(1)
    plan = _round_plan(plan, a, b)
    # a certified lower bound: f and the c-transform of f are dual feasible
    g_c = (cost - f[:, :, None]).amin(1)
    lower = (f * a).sum(1) + (g_c * b).sum(1)
    info = {"method": "sinkhorn", "iterations": it, "eps": eps_final.detach().cpu(),
            "marginal_error": err.detach().cpu(), "lower": lower}
    return plan, info


def _nn_lower_bound(cost: Tensor) -> Tensor:
    """max(mean row minimum, mean column minimum) of (B, N, M) costs: a lower bound of the EMD."""
    return torch.maximum(cost.amin(2).mean(1), cost.amin(1).mean(1))


def emd(
    x: Tensor,
    y: Tensor,
    method: str = "exact",
    squared: bool = False,
    *,
    reduction: str = "mean",
    rel_tol: float = 1e-2,
    eps: float | None = None,
    scaling: float = 0.5,
    max_iter: int = 5000,
    tol: float = 1e-3,
    overrelax: float = 1.8,
    max_rounds: int = 1_000_000,
) -> EMDResult:
    """Earth mover's distance: the mean matched distance of the best one-to-one matching.

    Introduced in ``lectures/05_point_sets.ipynb``.

    Args:
        x: ``(B, N, 3)`` or ``(N, 3)``.
        y: ``(B, M, 3)`` or ``(M, 3)``; ``M == N`` for ``"exact"`` and ``"auction"`` (Sinkhorn
            accepts ``M != N`` with uniform weights 1/N and 1/M).
        method: ``"exact"`` (scipy Hungarian, CPU), ``"auction"`` or ``"sinkhorn"`` (any device).
        squared: match with ``||x - y||^2`` instead of ``||x - y||`` (default: unsquared, the
            PointFlow / ShapeGF convention before their x1e2 scale).
        reduction: over the batch: ``"mean"``, ``"sum"`` or ``"none"`` (``(B,)``).
        rel_tol: auction only: the certified relative excess over the exact EMD (default 1e-2).
        eps: Sinkhorn only: final entropic temperature in cost units; default
            ``0.02 x`` (a lower bound of the EMD: the mean nearest-neighbour distance), per cloud.
        scaling: Sinkhorn eps-scaling factor per iteration (0 < scaling < 1).
        max_iter: Sinkhorn iteration cap. tol: Sinkhorn L1 row-marginal tolerance.
        overrelax: Sinkhorn over-relaxation factor omega in [1, 2) (Thibault et al. 2017,
            "Overrelaxed Sinkhorn-Knopp"): each scaling moves omega times the plain step in
            the log domain; 1 is plain Sinkhorn. 1.8 needs about 3x fewer iterations here.
        max_rounds: auction bidding-round cap (a safety net; it raises when reached). The
            compiled CPU path bids one person at a time and caps the bids at ``max_rounds * N``.

    Returns:
        :class:`EMDResult` ``(cost, assignment)`` with ``.info``: cost is a scalar (or ``(B,)``),
        differentiable in ``x`` and ``y`` (envelope theorem, the matching held fixed).
        ``info["lower"]`` (Sinkhorn) is a certified lower bound per cloud, and
        ``info["marginal_error"]`` the L1 row-marginal error before rounding.

    Accuracy and speed against ``"exact"``, measured by ``benchmarks/ops.py`` (results in
    ``benchmarks/results/ops-laptop-cpu.md``; two samplings of a bumpy ellipsoid, the second
    stretched, unsquared, defaults, 2 CPU cores): auction +0.007% (N=1,024) and +0.006%
    (N=2,048), bounded by ``rel_tol`` by construction, about 3x faster than exact (compiled
    path; the first call in a process also loads the compiled kernel). Sinkhorn +0.55%
    (N=1,024, 1,290 iterations) and +0.85% (N=2,048, 2,665 iterations), its dual lower bound
    -0.05% at both sizes; on a CPU it is slower than exact, 20-100x over N = 64 ... 2,048 in the last
    laptop run (``benchmarks/results/point_sets-laptop.json``, ``complexity.summary.sinkhorn_slowdown``; it is
    written for GPUs, where its speed is not yet measured).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    xb, xu = as_batched(x, "x", dim3=True)
    yb, yu = as_batched(y, "y", dim3=True)
    xb, yb = check_pair(xb, yb, "x", "y", xu, yu)
    n, m = xb.shape[1], yb.shape[1]
    if method != "sinkhorn" and n != m:
        raise ValueError(
            f"method={method!r} matches points one to one and needs clouds of equal size, got N={n} "
            f"and M={m} (use method='sinkhorn' for unequal sizes, or resample)"
        )
    if not 0.0 < scaling < 1.0:
        raise ValueError(f"scaling must lie in (0, 1), got {scaling}")
    if rel_tol <= 0:
        raise ValueError(f"rel_tol must be positive, got {rel_tol}")
    if not 1.0 <= overrelax < 2.0:
        raise ValueError(f"overrelax must lie in [1, 2), got {overrelax}")
    if eps is not None and not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")

    if method == "exact":
        assign, info = _exact(xb, yb, squared)
        per = _matched_cost(xb, yb, assign, squared)
        out_assign: Tensor = assign
    else:
        with torch.no_grad():
            cost = _fast_cost(xb, yb, squared, torch.float64)
            lb = _nn_lower_bound(cost)
            floor = torch.full_like(lb, 1e-9)
            if method == "auction":
                # eps-CS bounds the total excess by N * eps, i.e. the mean cost by eps
                eps_final = torch.maximum(rel_tol * lb, floor)
                # eps-scaling starts at the nearest-neighbour scale (lb): starting higher only
                # shuffles the matching (measured: about 1.6x more time at N=2,048)
                if cost.device.type == "cpu" and _jit.AVAILABLE:
                    assign, info = _auction_compiled(cost.numpy(), eps_final.numpy(), lb.numpy(), max_rounds)
                elif cost.device.type == "cpu":
                    a_np, info = _auction_numpy(cost.numpy(), eps_final.numpy(), 5.0, max_rounds, lb.numpy())
                    assign = torch.from_numpy(a_np)
                else:
                    assign, info = _auction(cost, eps_final, 5.0, max_rounds, lb)
                info["eps"] = eps_final.cpu()
                info["lower"] = lb
            else:
                e = torch.full_like(lb, eps) if eps is not None else torch.maximum(0.02 * lb, floor)
                plan, info = _sinkhorn(cost, e, scaling, max_iter, tol, overrelax)
            del cost
        if method == "auction":
            per = _matched_cost(xb, yb, assign, squared)
            out_assign = assign
        else:
            plan = plan.to(xb.dtype)
            per = _plan_cost(xb, yb, plan, squared)
            out_assign = plan
    if xu:
        return EMDResult(per[0], out_assign[0], info)
    cost_out = per.mean() if reduction == "mean" else per.sum() if reduction == "sum" else per
    return EMDResult(cost_out, out_assign, info)


def _plan_cost(x: Tensor, y: Tensor, plan: Tensor, squared: bool) -> Tensor:
    """<P, C(x, y)> per cloud (B,) for a fixed plan, differentiable in x and y."""
    if squared:  # closed form, no (B, N, M) autograd buffers
        xx = (plan.sum(2) * (x * x).sum(-1)).sum(1)
        yy = (plan.sum(1) * (y * y).sum(-1)).sum(1)
        xy = (x * torch.bmm(plan, y)).sum((1, 2))
        return xx + yy - 2 * xy
    return (plan * pairwise_cost(x, y, squared=False)).sum((1, 2))
