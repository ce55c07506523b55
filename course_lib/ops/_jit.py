"""Compiled CPU kernels (numba): the auction EMD solver and bucketed farthest-point sampling.

Both are loops of many tiny steps that NumPy can only run as a Python loop or as whole-array
passes. Without numba, :mod:`course_lib.ops` falls back to NumPy implementations with the same
results (slower); on GPUs the torch implementations run instead.

Auction (``emd(..., method="auction")``). Bertsekas' auction is a long sequence of tiny steps (one person bids, one object changes
hands), which NumPy can only run as a Python loop or as Jacobi rounds over whole rows. Compiled,
each bid is one pass over a row of the benefit matrix: about 3x faster than scipy's exact
solver at N=2,048 (``benchmarks/results/ops-laptop-cpu.md``). Without numba, ``emd`` falls back
to the NumPy implementation in :mod:`course_lib.ops.emd` (same guarantee, slower).
"""

from __future__ import annotations

import numpy as np

try:  # optional at import time: the NumPy auction is the fallback
    from numba import njit

    AVAILABLE = True
except Exception:  # pragma: no cover - depends on the environment
    AVAILABLE = False

    def njit(*args, **kwargs):  # type: ignore[no-redef]
        """Stand-in decorator when numba is missing (the function is then never called)."""
        return lambda f: f


__all__ = ["AVAILABLE", "auction_gauss_seidel", "fps_bucketed"]


@njit(cache=True)
def auction_gauss_seidel(
    benefit: np.ndarray, eps_final: float, eps_start: float, factor: float, max_bids: int
) -> tuple[np.ndarray, int, int, bool]:
    """Auction with eps-scaling on one square benefit matrix (N, N), float64 (benefit = -cost).

    Gauss-Seidel bidding: one free person at a time bids for its best object, raising the
    price by (best - second best value) + eps; the person it displaces bids next. Prices are
    kept between eps phases and only the persons that violate eps-complementary slackness
    for the new eps are freed. At the end every person holds an object within eps of its
    best, so the total benefit is within N * eps of the optimum (Bertsekas 1988).

    Returns ``(object_of, bids, phases, converged)``; ``converged`` is False when
    ``max_bids`` was reached (the assignment is then incomplete).
    """
    n = benefit.shape[0]
    price = np.zeros(n)
    person_of = np.full(n, -1, np.int64)
    object_of = np.full(n, -1, np.int64)
    stack = np.empty(n, np.int64)
    eps = max(eps_start, eps_final)
    bids = 0
    phases = 0
    while True:
        phases += 1
        top = 0
        for i in range(n):  # free the persons that violate eps-CS for the new eps
            j = object_of[i]
            if j >= 0:
                best = -np.inf
                for k in range(n):
                    v = benefit[i, k] - price[k]
                    if v > best:
                        best = v
                if benefit[i, j] - price[j] < best - eps:
                    object_of[i] = -1
                    person_of[j] = -1
                    stack[top] = i
                    top += 1
            else:
                stack[top] = i
                top += 1
        while top > 0:
            top -= 1
            i = stack[top]
            v1 = -np.inf
            v2 = -np.inf
            j1 = 0
            for k in range(n):  # best and second-best value in one pass
                v = benefit[i, k] - price[k]
                if v > v2:
                    if v > v1:
                        v2 = v1
                        v1 = v
                        j1 = k
                    else:
                        v2 = v
            inc = v1 - v2 if v2 > -np.inf else 0.0
            price[j1] += inc + eps
            old = person_of[j1]
            if old >= 0:
                object_of[old] = -1
                stack[top] = old
                top += 1
            person_of[j1] = i
            object_of[i] = j1
            bids += 1
            if bids >= max_bids:
                return object_of, bids, phases, False
        if eps <= eps_final:
            break
        eps = max(eps / factor, eps_final)
    return object_of, bids, phases, True


@njit(cache=True)
def _bucket_sort(x: np.ndarray, per_cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Counting sort of the points (L, D) into the cells of a regular grid (about ``per_cell`` each).

    Returns ``order`` (bucket position -> original index; increasing inside each bucket) and
    ``bstart`` (start position of each non-empty bucket, plus L at the end).
    """
    n_pts, dim = x.shape
    g = max(1, int(round((n_pts / per_cell) ** (1.0 / dim))))
    lo = np.empty(dim)
    scale = np.empty(dim)
    for d in range(dim):
        mn = x[0, d]
        mx = x[0, d]
        for p in range(1, n_pts):
            v = x[p, d]
            mn = min(mn, v)
            mx = max(mx, v)
        lo[d] = mn
        scale[d] = g / (mx - mn) if mx > mn else 0.0
    key = np.zeros(n_pts, np.int64)
    for p in range(n_pts):
        k = 0
        for d in range(dim):
            c = min(int((x[p, d] - lo[d]) * scale[d]), g - 1)
            k = k * g + c
        key[p] = k
    count = np.zeros(g**dim + 1, np.int64)
    for p in range(n_pts):
        count[key[p] + 1] += 1
    for c in range(g**dim):
        count[c + 1] += count[c]
    nb = 0
    for c in range(g**dim):
        if count[c + 1] > count[c]:
            nb += 1
    bstart = np.empty(nb + 1, np.int64)
    b = 0
    for c in range(g**dim):
        if count[c + 1] > count[c]:
            bstart[b] = count[c]
            b += 1
    bstart[nb] = n_pts
    order = np.empty(n_pts, np.int64)
    fill = count[:-1].copy()
    for p in range(n_pts):  # stable: original order kept inside each bucket
        order[fill[key[p]]] = p
        fill[key[p]] += 1
    return order, bstart


@njit(cache=True)
def fps_bucketed(x: np.ndarray, n: int, start: int, per_cell: int = 64) -> np.ndarray:
    """Exact farthest-point sampling of one cloud ``x`` (L, D), float32 or float64.

    The same indices as the plain loop (squared distances summed over coordinates in order,
    ties to the lowest index), with the points grouped in grid buckets with bounding boxes:
    a bucket whose box is farther from the new center than the bucket's current largest
    distance cannot change, so it is skipped (the idea of QuickFPS, Han et al. 2023, with a
    grid instead of a KD-tree). Box distances are computed like point distances from clamped
    coordinate differences, so in floating point too they never exceed a point's distance.
    """
    n_pts, dim = x.shape
    order, bstart = _bucket_sort(x, per_cell)
    nb = bstart.shape[0] - 1
    xs = np.empty((n_pts, dim), x.dtype)
    for p in range(n_pts):
        for d in range(dim):
            xs[p, d] = x[order[p], d]
    lo = np.empty((nb, dim), x.dtype)
    hi = np.empty((nb, dim), x.dtype)
    for b in range(nb):
        for d in range(dim):
            lo[b, d] = xs[bstart[b], d]
            hi[b, d] = xs[bstart[b], d]
        for p in range(bstart[b] + 1, bstart[b + 1]):
            for d in range(dim):
                v = xs[p, d]
                lo[b, d] = min(lo[b, d], v)
                hi[b, d] = max(hi[b, d], v)
    inf = x.dtype.type(np.inf)
    zero = x.dtype.type(0.0)
    mins = np.full(n_pts, inf, x.dtype)
    bmax = np.full(nb, inf, x.dtype)
    barg = np.zeros(nb, np.int64)
    c = np.empty(dim, x.dtype)
    out = np.empty(n, np.int64)
    far = 0
    for p in range(n_pts):
        if order[p] == start:
            far = p
    for i in range(n):
        out[i] = order[far]
        for d in range(dim):
            c[d] = xs[far, d]
        for b in range(nb):
            acc = zero
            for d in range(dim):  # squared distance from c to the box: a lower bound
                t = lo[b, d] - c[d]
                if t < zero:
                    t = c[d] - hi[b, d]
                    if t < zero:
                        t = zero
                acc = acc + t * t
            if acc >= bmax[b]:
                continue
            best = -inf
            arg = bstart[b]
            for p in range(bstart[b], bstart[b + 1]):
                acc = zero
                for d in range(dim):
                    t = xs[p, d] - c[d]
                    acc = acc + t * t
                m = mins[p]
                if acc < m:
                    m = acc
                    mins[p] = acc
                if m > best:  # strict: the first (lowest original index) of equal maxima
                    best = m
                    arg = p
            bmax[b] = best
            barg[b] = arg
        best = -inf
        for b in range(nb):
            v = bmax[b]
            if v > best or (v == best and order[barg[b]] < order[far]):
                best = v
                far = barg[b]
    return out


@njit(cache=True)
def sqdist_gather(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``out[b, i, k] = ||x[b, i] - y[b, idx[b, i, k]]||^2`` for ``x`` (B, N, D), ``y`` (B, M, D).

    The forward of :func:`course_lib.ops.neighbors._sq_dist` on the CPU: one pass, no
    ``(B, N, k, D)`` temporary.
    """
    nb, n, dim = x.shape
    kk = idx.shape[2]
    out = np.empty((nb, n, kk), x.dtype)
    for b in range(nb):
        for i in range(n):
            for k in range(kk):
                j = idx[b, i, k]
                acc = x.dtype.type(0.0)
                for d in range(dim):
                    t = x[b, i, d] - y[b, j, d]
                    acc += t * t
                out[b, i, k] = acc
    return out


@njit(cache=True)
def sqdist_backward(
    x: np.ndarray, y: np.ndarray, idx: np.ndarray, grad: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``sum(grad * sqdist_gather(x, y, idx))`` with respect to ``x`` and ``y``."""
    nb, n, dim = x.shape
    kk = idx.shape[2]
    gx = np.zeros_like(x)
    gy = np.zeros_like(y)
    for b in range(nb):
        for i in range(n):
            for k in range(kk):
                j = idx[b, i, k]
                g2 = 2.0 * grad[b, i, k]
                for d in range(dim):
                    t = (x[b, i, d] - y[b, j, d]) * g2
                    gx[b, i, d] += t
                    gy[b, j, d] -= t
    return gx, gy
