"""k-nearest neighbours and point gathering, batched, differentiable, CPU and GPU.

Introduced in ``lectures/02_encoders.ipynb`` (DGCNN's dynamic graph) and used by
``lectures/05_point_sets.ipynb`` (Chamfer distance).

How it works. The *search* (which points are nearest) is not differentiable and runs
under ``torch.no_grad``: on the CPU a KD-tree (``pykdtree`` when installed, else
``scipy.spatial.cKDTree``) for low dimensions, otherwise a blocked brute force in torch
that never holds more than ``config.size("ops.block_elements")`` distances at once.
The returned squared distances are then *recomputed* in torch from the coordinates,
``||x_i - y_idx||^2``, so their gradient with respect to ``x`` and ``y`` is exact
(the indices are piecewise constant, so this is the true gradient almost everywhere).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import _jit
from ._validate import as_batched, block_elements, check_int, check_lengths, check_pair

try:  # optional, faster KD-tree (OpenMP, float32 native); scipy is the fallback
    from pykdtree.kdtree import KDTree as _PyKDTree
except Exception:  # pragma: no cover - depends on the environment
    _PyKDTree = None

from scipy.spatial import cKDTree

__all__ = ["knn", "gather_points", "knn_search", "BACKENDS"]

BACKENDS = ("auto", "kdtree", "brute")
"""Search backends of :func:`knn`: ``auto`` picks ``kdtree`` on the CPU for D <= 8 and
large enough inputs, ``brute`` (blocked torch) otherwise and always on GPUs."""

_KDTREE_MAX_DIM = 8
_KDTREE_MIN_PAIRS = 2**12  # below this many pairs per cloud, brute force is as fast
_LARGE_QUERY = 2**15  # queries of at least this many points use several threads


def gather_points(x: Tensor, idx: Tensor) -> Tensor:
    """Pick points (or features) by index: ``out[b, ...] = x[b, idx[b, ...]]``.

    Introduced in ``lectures/02_encoders.ipynb``.

    Args:
        x: ``(B, N, C)`` points or features (or ``(N, C)`` with ``idx`` of any shape).
        idx: integer tensor ``(B, ...)`` with values in ``[0, N)``.

    Returns:
        ``(B, ..., C)`` (or ``idx.shape + (C,)`` for unbatched ``x``); differentiable in ``x``.
    """
    if not isinstance(x, Tensor) or not isinstance(idx, Tensor):
        raise TypeError("gather_points expects torch tensors x (B, N, C) and idx (B, ...)")
    if idx.dtype.is_floating_point or idx.dtype == torch.bool:
        raise TypeError(f"idx must be an integer tensor, got dtype {idx.dtype}")
    if x.device != idx.device:
        raise ValueError(f"x is on {x.device} but idx is on {idx.device}")
    if x.dim() not in (2, 3):
        raise ValueError(f"x must have shape (B, N, C) or (N, C), got {tuple(x.shape)}")
    n = x.shape[-2]
    if idx.numel() > 0:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= n:
            raise ValueError(f"idx values must lie in [0, {n}), got range [{lo}, {hi}]")
    if x.dim() == 2:
        return x[idx.long()]
    if idx.dim() < 1 or idx.shape[0] != x.shape[0]:
        raise ValueError(
            f"idx must start with the batch dimension {x.shape[0]} of x, got shape {tuple(idx.shape)}"
        )
    b, c = x.shape[0], x.shape[-1]
    flat = idx.reshape(b, -1).long()
    out = torch.gather(x, 1, flat.unsqueeze(-1).expand(b, flat.shape[1], c))
    return out.reshape(*idx.shape, c)


# ---------------------------------------------------------------------------
# search (no gradient)
# ---------------------------------------------------------------------------
def _brute_search(
    x: Tensor, y: Tensor, k: int, y_lengths: Tensor | None, block: int
) -> Tensor:
    """Blocked brute-force kNN indices (B, N, k), never more than ``block`` distances at once."""
    b, n, _ = x.shape
    m = y.shape[1]
    cols = min(m, max(k, block // max(1, b)))
    rows = max(1, min(n, block // max(1, b * cols)))
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    x, y = x.to(dtype), y.to(dtype)
    x2 = (x * x).sum(-1)
    y2 = (y * y).sum(-1)
    out = torch.empty(b, n, k, dtype=torch.long, device=x.device)
    col_ids = torch.arange(m, device=x.device)
    for r0 in range(0, n, rows):
        xr = x[:, r0:r0 + rows]
        best_d: Tensor | None = None
        best_i: Tensor | None = None
        for c0 in range(0, m, cols):
            yc = y[:, c0:c0 + cols]
            d = torch.baddbmm(
                x2[:, r0:r0 + rows, None] + y2[:, None, c0:c0 + cols], xr, yc.transpose(1, 2), alpha=-2.0
            )
            if y_lengths is not None:
                pad = col_ids[None, c0:c0 + cols] >= y_lengths[:, None]  # (B, c)
                d.masked_fill_(pad[:, None, :], float("inf"))
            kk = min(k, d.shape[-1])
            dv, di = torch.topk(d, kk, dim=-1, largest=False, sorted=False)
            di = di + c0
            if best_d is None:
                best_d, best_i = dv, di
            else:
                cat_d = torch.cat([best_d, dv], -1)
                cat_i = torch.cat([best_i, di], -1)
                best_d, sel = torch.topk(cat_d, min(k, cat_d.shape[-1]), dim=-1, largest=False, sorted=False)
                best_i = torch.gather(cat_i, -1, sel)
        assert best_i is not None
        out[:, r0:r0 + rows] = best_i
    return out


def _tree_query(data: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k nearest points of ``data`` for each row of ``q`` (one cloud, CPU).

    ``pykdtree`` when installed (a dependency of the course; it builds and queries about 3x
    faster than scipy here, see ``benchmarks/results/ops-*.md``), else scipy's cKDTree
    (built without median balancing, which builds faster), on all cores for large queries.
    """
    if _PyKDTree is not None:
        _, ii = _PyKDTree(data).query(q, k=k)
        return np.asarray(ii)
    workers = -1 if len(q) >= _LARGE_QUERY else 1
    _, ii = cKDTree(data, balanced_tree=False, compact_nodes=False).query(q, k=k, workers=workers)
    return np.asarray(ii)


def _kdtree_search(x: Tensor, y: Tensor, k: int, x_lengths: Tensor | None, y_lengths: Tensor | None) -> Tensor:
    """KD-tree kNN indices (B, N, k) on the CPU (pykdtree if installed, else scipy)."""
    b, n, _ = x.shape
    out = np.zeros((b, n, k), dtype=np.int64)
    dt = np.float64 if x.dtype == torch.float64 else np.float32
    xn = x.detach().cpu().numpy().astype(dt, copy=False)
    yn = y.detach().cpu().numpy().astype(dt, copy=False)
    for i in range(b):
        nx = n if x_lengths is None else int(x_lengths[i])
        ny = yn.shape[1] if y_lengths is None else int(y_lengths[i])
        q = np.ascontiguousarray(xn[i, :nx])
        data = np.ascontiguousarray(yn[i, :ny])
        ii = _tree_query(data, q, k)
        out[i, :nx] = np.asarray(ii, dtype=np.int64).reshape(nx, k)
    return torch.from_numpy(out).to(x.device)


def knn_search(
    x: Tensor,
    y: Tensor,
    k: int,
    *,
    x_lengths: Tensor | None = None,
    y_lengths: Tensor | None = None,
    backend: str = "auto",
) -> Tensor:
    """Indices (B, N, k) of the k nearest points of ``y`` for each point of ``x`` (no checks, no grad).

    The order of the k neighbours is not guaranteed (:func:`knn` sorts them).

    Inputs are batched and validated already; see :func:`knn` for the public entry point.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    with torch.no_grad():
        if backend == "auto":
            small = x.shape[1] * y.shape[1] < _KDTREE_MIN_PAIRS
            use_tree = x.device.type == "cpu" and x.shape[-1] <= _KDTREE_MAX_DIM and not small
            backend = "kdtree" if use_tree else "brute"
        if backend == "kdtree":
            idx = _kdtree_search(x, y, k, x_lengths, y_lengths)
        else:
            idx = _brute_search(x, y, k, y_lengths, block_elements(x.device))
        if x_lengths is not None:  # padded query points: index 0 by convention
            pad = torch.arange(x.shape[1], device=x.device)[None, :] >= x_lengths[:, None]
            idx.masked_fill_(pad[..., None], 0)
        return idx


class _SqDistCPU(torch.autograd.Function):
    """||x_i - y_idx||^2 on the CPU (compiled with numba, else NumPy), with its exact gradient.

    The same values and gradients as the torch expression in :func:`_sq_dist`, without
    torch's intra-op threading, whose start-up cost dominates these small memory-bound
    steps (and explodes when the cores are shared).
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, y: Tensor, idx: Tensor) -> Tensor:  # type: ignore[override]
        xn, yn, ii = x.detach().numpy(), y.detach().numpy(), idx.numpy()
        ctx.jit = _jit.AVAILABLE
        if ctx.jit:  # compiled: one pass, nothing but the output allocated
            ctx.save_for_backward(x, y, idx)  # (torch checks they are not modified in place)
            return torch.from_numpy(_jit.sqdist_gather(xn, yn, ii))
        b = xn.shape[0]
        diff = xn[:, :, None, :] - yn[np.arange(b)[:, None, None], ii]  # (B, N, k, D)
        ctx.diff = diff
        ctx.idx = ii
        ctx.m = yn.shape[1]
        return torch.from_numpy(np.einsum("bnkd,bnkd->bnk", diff, diff))

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        if ctx.jit:
            xn, yn, ii = (t.detach().numpy() for t in ctx.saved_tensors)
            gx_np, gy_np = _jit.sqdist_backward(xn, yn, ii, np.ascontiguousarray(grad.numpy(), dtype=xn.dtype))
            return (torch.from_numpy(gx_np) if ctx.needs_input_grad[0] else None,
                    torch.from_numpy(gy_np) if ctx.needs_input_grad[1] else None, None)
        diff, ii, m = ctx.diff, ctx.idx, ctx.m
        g2 = 2.0 * grad.numpy()[..., None] * diff  # d/dx of ||x - y||^2 times the incoming gradient
        gx = torch.from_numpy(g2.sum(2)) if ctx.needs_input_grad[0] else None
        gy = None
        if ctx.needs_input_grad[1]:
            b, _, _, d = diff.shape
            flat = (ii + (np.arange(b) * m)[:, None, None]).ravel()
            gy_np = np.empty((b * m, d), dtype=diff.dtype)
            for c in range(d):
                gy_np[:, c] = -np.bincount(flat, weights=g2[..., c].ravel(), minlength=b * m)
            gy = torch.from_numpy(gy_np.reshape(b, m, d))
        return gx, gy, None


def _sq_dist(x: Tensor, y: Tensor, idx: Tensor) -> Tensor:
    """||x[b, i] - y[b, idx[b, i, j]]||^2 computed from differences (exact and differentiable).

    On the CPU (float32 / float64) a NumPy autograd function computes the same values and
    gradients with less overhead; elsewhere plain torch (also twice differentiable).
    """
    if idx.numel() == 0:
        return x.new_zeros(idx.shape)
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.dtype == y.dtype:
        return _SqDistCPU.apply(x, y, idx)
    nn = gather_points(y, idx)
    return ((x.unsqueeze(2) - nn) ** 2).sum(-1)


def knn(
    x: Tensor,
    y: Tensor,
    k: int,
    *,
    x_lengths: Tensor | Sequence[int] | None = None,
    y_lengths: Tensor | Sequence[int] | None = None,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest points of ``y`` for every point of ``x``, in any dimension D.

    Introduced in ``lectures/02_encoders.ipynb``.

    Args:
        x: queries, ``(B, N, D)`` or ``(N, D)``; any feature dimension ``D >= 1``.
        y: the searched cloud, ``(B, M, D)`` or ``(M, D)`` (same rank, batch, D and device as ``x``).
        k: number of neighbours, ``1 <= k <= M`` (``<= min(y_lengths)`` for ragged batches).
        x_lengths, y_lengths: optional ``(B,)`` numbers of valid points per cloud (ragged
            batches padded at the end). Padded queries get ``dist2 = 0`` and ``idx = 0``;
            padded points of ``y`` are never returned.
        backend: ``"auto"``, ``"kdtree"`` (CPU only) or ``"brute"`` (blocked torch, any device).

    Returns:
        ``(dist2, idx)``: squared Euclidean distances ``(B, N, k)`` sorted ascending and the
        long indices into ``y`` ``(B, N, k)`` (without the batch dimension for unbatched
        input). ``dist2`` is differentiable with respect to ``x`` and ``y`` (exact gradient,
        recomputed from the coordinates).

    Raises:
        TypeError / ValueError for non-tensors, wrong rank, empty clouds, NaN/inf,
        mismatched batch sizes, dimensions or devices, and ``k`` out of range.
    """
    xb, xu = as_batched(x, "x")
    yb, yu = as_batched(y, "y")
    xb, yb = check_pair(xb, yb, "x", "y", xu, yu)
    k = check_int(k, "k")
    b, n, _ = xb.shape
    m = yb.shape[1]
    xl = check_lengths(x_lengths, b, n, "x_lengths", xb.device)
    yl = check_lengths(y_lengths, b, m, "y_lengths", xb.device)
    m_min = m if yl is None else int(yl.min())
    if k < 1 or k > m_min:
        raise ValueError(f"k must satisfy 1 <= k <= {m_min} (the number of points in y), got k={k}")
    if backend == "kdtree" and xb.device.type != "cpu":
        raise ValueError("backend='kdtree' runs on the CPU only; use 'brute' or 'auto' on a GPU")
    idx = knn_search(xb, yb, k, x_lengths=xl, y_lengths=yl, backend=backend)
    dist2 = _sq_dist(xb, yb, idx)
    if k > 1:  # sort by the exact distances, so the order does not depend on the backend
        dist2, order = torch.sort(dist2, dim=-1, stable=True)
        idx = torch.gather(idx, -1, order)
    if xl is not None:
        pad = torch.arange(n, device=xb.device)[None, :] >= xl[:, None]
        dist2 = dist2.masked_fill(pad[..., None], 0.0)
    if xu:
        return dist2[0], idx[0]
    return dist2, idx
