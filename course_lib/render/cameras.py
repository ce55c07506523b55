"""Pinhole cameras in the convention of :mod:`course_lib.data.views` (OpenCV style).

Introduced in ``lectures/09_differentiable_rendering.ipynb``.

A :class:`Cameras` holds a batch of intrinsics ``K (B, 3, 3)`` and extrinsics
``Rt (B, 3, 4)`` exactly as :func:`course_lib.data.look_at` returns them: ``x_cam =
R x_world + t`` (camera ``x`` right, ``y`` down, ``z`` forward) and ``(u, v, 1) ~ K
x_cam`` with ``u`` the column and ``v`` the row in pixels, the centre of pixel ``(row i,
col j)`` at ``(j + 0.5, i + 0.5)``.  So a mesh rendered by :mod:`course_lib.render`
lines up pixel for pixel with :func:`course_lib.data.render` of the same shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..data.views import look_at

__all__ = ["Cameras", "look_at_cameras", "perspective_K", "project"]


@dataclass
class Cameras:
    """A batch of pinhole cameras: ``K (B, 3, 3)`` and ``Rt (B, 3, 4)`` (world -> camera).

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.
    """

    K: Tensor
    Rt: Tensor

    def __post_init__(self) -> None:
        if not isinstance(self.K, Tensor) or not isinstance(self.Rt, Tensor):
            raise TypeError("Cameras needs tensors K (B, 3, 3) and Rt (B, 3, 4)")
        if self.K.dim() == 2:
            self.K = self.K[None]
        if self.Rt.dim() == 2:
            self.Rt = self.Rt[None]
        if self.K.dim() != 3 or self.K.shape[1:] != (3, 3):
            raise ValueError(f"K must have shape (B, 3, 3) or (3, 3), got {tuple(self.K.shape)}")
        if self.Rt.dim() != 3 or self.Rt.shape[1:] != (3, 4):
            raise ValueError(f"Rt must have shape (B, 3, 4) or (3, 4), got {tuple(self.Rt.shape)}")
        if self.K.shape[0] != self.Rt.shape[0] and 1 not in (self.K.shape[0], self.Rt.shape[0]):
            raise ValueError(f"K and Rt batch sizes differ: {self.K.shape[0]} vs {self.Rt.shape[0]}")
        if self.K.device != self.Rt.device:
            raise ValueError(f"K is on {self.K.device} but Rt on {self.Rt.device}")
        if not (self.K.is_floating_point() and self.Rt.is_floating_point()):
            raise TypeError("K and Rt must be floating point")

    def __len__(self) -> int:
        return max(self.K.shape[0], self.Rt.shape[0])

    @property
    def device(self) -> torch.device:
        return self.K.device

    def to(self, device: torch.device | str) -> Cameras:
        return Cameras(self.K.to(device), self.Rt.to(device))

    def __getitem__(self, idx: int | slice | Sequence[int] | Tensor) -> Cameras:
        K = self.K.expand(len(self), 3, 3)
        Rt = self.Rt.expand(len(self), 3, 4)
        if isinstance(idx, int):
            idx = slice(idx, idx + 1) if idx != -1 else slice(-1, None)
        return Cameras(K[idx], Rt[idx])

    @property
    def centers(self) -> Tensor:
        """Camera centres in world coordinates, ``(B, 3)``: ``-R^T t``."""
        R, t = self.Rt[:, :, :3], self.Rt[:, :, 3]
        return -(R.transpose(1, 2) @ t[..., None])[..., 0]


def perspective_K(fov: float, size: int | tuple[int, int], device: torch.device | str | None = None) -> Tensor:
    """The intrinsics ``(3, 3)`` of :func:`course_lib.data.look_at`: vertical field of view ``fov`` degrees.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  ``f = H / (2 tan(fov / 2))``,
    principal point at the image centre ``(W / 2, H / 2)``.
    """
    H, W = (size, size) if isinstance(size, (int, np.integer)) else size
    if not 0.0 < fov < 180.0:
        raise ValueError(f"fov must be in (0, 180) degrees, got {fov}")
    f = 0.5 * H / math.tan(math.radians(fov) / 2)
    return torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], dtype=torch.float32, device=device)


def look_at_cameras(azimuth: float | Sequence[float], elevation: float | Sequence[float] = 20.0,
                    distance: float | Sequence[float] = 2.6, fov: float = 50.0,
                    size: int | tuple[int, int] = 64, device: torch.device | str | None = None) -> Cameras:
    """A batch of cameras looking at the origin, built with :func:`course_lib.data.look_at`.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  ``azimuth``,
    ``elevation`` and ``distance`` are numbers or equal-length sequences (a number is
    repeated); the defaults are those of :func:`course_lib.data.render`.
    """
    def seq(x):
        return [float(v) for v in x] if isinstance(x, (Sequence, np.ndarray, Tensor)) else None

    lists = [seq(azimuth), seq(elevation), seq(distance)]
    n = max([len(s) for s in lists if s is not None], default=1)
    if any(s is not None and len(s) != n for s in lists):
        raise ValueError(f"azimuth, elevation and distance must have the same length, got "
                         f"{[len(s) if s is not None else 1 for s in lists]}")
    if n == 0:
        raise ValueError("look_at_cameras needs at least one camera (empty azimuth list)")
    az, el, di = (s if s is not None else [float(x)] * n for s, x in zip(lists, (azimuth, elevation, distance)))
    Ks, Rts = zip(*(look_at(a, e, d, fov, size, device=device) for a, e, d in zip(az, el, di)))
    return Cameras(torch.stack(Ks), torch.stack(Rts))


def project(verts: Tensor, cameras: Cameras) -> Tensor:
    """Project world points ``(B, V, 3)`` to ``(B, V, 3)``: pixel ``u`` (column), ``v`` (row), camera depth ``z``.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  Differentiable;
    points at ``z <= 0`` get ``u = v = 0`` divided by a clamped depth (the rasterisers
    drop faces that touch the near plane).
    """
    K, Rt = cameras.K.to(verts.dtype), cameras.Rt.to(verts.dtype)
    x_cam = verts @ Rt[:, :, :3].transpose(1, 2) + Rt[:, None, :, 3]
    z = x_cam[..., 2:3]
    uvw = x_cam @ K.transpose(1, 2)
    uv = uvw[..., :2] / z.clamp(min=1e-8)
    return torch.cat([uv, z], dim=-1)
