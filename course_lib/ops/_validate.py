"""Input checks shared by the point-cloud ops: clear errors raised at the entry point.

Introduced in ``lectures/05_point_sets.ipynb``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .. import config

__all__ = ["as_batched", "check_pair", "check_lengths", "block_elements"]


_CPU_BLOCK = 2**20


def block_elements(device: torch.device | None = None) -> int:
    """The largest number of pairwise distances one block may hold (``ops.block_elements``).

    Every brute-force path (chamfer, knn, ball query, EMD costs) works in blocks of at most
    this many entries, so memory stays O(B * (N + M)) plus one block. On the CPU blocks are
    also capped at ``_CPU_BLOCK`` entries (4 MB in float32), which stay in cache between the
    distance computation and the top-k: DGCNN's feature-space kNN (B=16, N=1,024, k=20) ran
    1.4x faster than with 2^24-entry blocks.
    """
    n = int(config.size("ops.block_elements"))
    if device is not None and torch.device(device).type == "cpu":
        n = min(n, _CPU_BLOCK)
    return n


def _all_finite(x: Tensor) -> bool:
    """True when no entry is NaN or inf (NumPy on the CPU: no thread start-up for a cheap scan)."""
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        arr = x.detach().numpy()
        # the sum is finite iff every entry is (barring overflow, which the full check then settles)
        return bool(np.isfinite(arr.sum())) or bool(np.isfinite(arr).all())
    return bool(torch.isfinite(x).all())


def as_batched(
    x: object,
    name: str,
    *,
    dim3: bool = False,
    allow_empty: bool = False,
    check_finite: bool = True,
) -> tuple[Tensor, bool]:
    """Return ``(x as (B, N, D), was_unbatched)`` after checking type, rank, size and values.

    ``dim3=True`` requires the last dimension to be 3 (chamfer, EMD, metrics).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, D) or (B, N, D), got {type(x).__name__}")
    if x.dim() not in (2, 3):
        raise ValueError(
            f"{name} must have shape (N, D) or (B, N, D) (rank 2 or 3), got rank {x.dim()} "
            f"with shape {tuple(x.shape)}"
        )
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if dim3 and x.shape[-1] != 3:
        raise ValueError(f"{name} must hold 3D points (last dimension 3), got shape {tuple(x.shape)}")
    if x.shape[-1] < 1:
        raise ValueError(f"{name} must have a feature dimension D >= 1, got shape {tuple(x.shape)}")
    if x.shape[-2] == 0 and not allow_empty:
        raise ValueError(f"{name} is an empty point cloud (shape {tuple(x.shape)}); it needs at least one point")
    if x.dim() == 3 and x.shape[0] == 0:
        raise ValueError(f"{name} has an empty batch (shape {tuple(x.shape)})")
    if check_finite and x.numel() > 0 and not _all_finite(x):
        raise ValueError(f"{name} contains NaN or inf values")
    unbatched = x.dim() == 2
    return (x.unsqueeze(0) if unbatched else x), unbatched


def check_pair(x: Tensor, y: Tensor, xname: str, yname: str, x_unb: bool, y_unb: bool) -> tuple[Tensor, Tensor]:
    """Check that two batched clouds agree in rank, batch size, feature dimension and device.

    Returns both cast to their common floating dtype.
    """
    if x_unb != y_unb:
        raise ValueError(
            f"{xname} and {yname} must both be batched (B, N, D) or both unbatched (N, D); got ranks "
            f"{3 - int(x_unb)} and {3 - int(y_unb)}"
        )
    if x.device != y.device:
        raise ValueError(f"{xname} is on {x.device} but {yname} is on {y.device}; move them to one device")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"batch sizes differ: {xname} has {x.shape[0]} clouds, {yname} has {y.shape[0]}")
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"feature dimensions differ: {xname} has D={x.shape[-1]}, {yname} has D={y.shape[-1]}"
        )
    if x.dtype != y.dtype:
        dt = torch.promote_types(x.dtype, y.dtype)
        x, y = x.to(dt), y.to(dt)
    return x, y


def check_lengths(
    lengths: Tensor | Sequence[int] | None, batch: int, n: int, name: str, device: torch.device
) -> Tensor | None:
    """Validate per-cloud lengths (ragged batches): a LongTensor (B,) with 1 <= L <= N, or None."""
    if lengths is None:
        return None
    t = torch.as_tensor(lengths, device=device)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers, got dtype {t.dtype}")
    t = t.to(torch.long)
    if t.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},) (one length per cloud), got {tuple(t.shape)}")
    if batch > 0:
        lo, hi = int(t.min()), int(t.max())
        if lo < 1:
            raise ValueError(f"{name} must be >= 1 (an empty cloud has no nearest neighbour), got min {lo}")
        if hi > n:
            raise ValueError(f"{name} must be <= the padded size {n}, got max {hi}")
    return t


def check_int(value: object, name: str) -> int:
    """``value`` as a Python int; ``TypeError`` naming ``name`` for bools, floats and the rest."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)
