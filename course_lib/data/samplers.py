"""Samplers on ShapeNet-lite shapes: SDF and occupancy samples, voxel grids.

Introduced in ``lectures/01_data_and_representations.ipynb`` (used again in
``lectures/03_voxels.ipynb`` and ``lectures/07_implicit_fields.ipynb``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .shapes import Shape, check_seed

__all__ = ["sample_sdf", "sample_occupancy", "sample_near_surface", "voxelize", "voxel_centers", "sdf_gradient_stats"]

DEFAULT_SIGMAS: tuple[float, float] = (0.01, 0.05)
"""Standard deviations of the two near-surface Gaussians (DeepSDF uses variances 0.0025 and 0.00025,
i.e. sigma 0.05 and ~0.016, for shapes in the unit sphere)."""


def _check_shape(shape: Any) -> Shape:
    if not isinstance(shape, Shape):
        raise TypeError(f"expected a course_lib.data.Shape (from make_shape), got {type(shape).__name__}")
    return shape


def _check_n(n: Any, name: str = "n") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be a positive int, got {n!r}")
    return int(n)


def _check_fraction(f: Any) -> float:
    f = float(f)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"near_surface_fraction must be in [0, 1], got {f}")
    return f


def _check_sigmas(sigmas: Sequence[float]) -> tuple[float, ...]:
    s = tuple(float(x) for x in sigmas)
    if not s or any(not np.isfinite(x) or x <= 0 for x in s):
        raise ValueError(f"sigmas must be positive numbers, got {sigmas!r}")
    return s


def _generator(shape: Shape, seed: int | None, salt: int) -> torch.Generator:
    s = shape.seed if seed is None else check_seed(seed)
    g = torch.Generator()
    ss = np.random.SeedSequence([s, salt, shape.label])
    g.manual_seed(int(ss.generate_state(1, np.uint64)[0] & 0x7FFF_FFFF_FFFF_FFFF))
    return g


def sample_near_surface(shape: Shape, n: int, sigmas: Sequence[float] = DEFAULT_SIGMAS,
                        seed: int | None = None) -> Tensor:
    """``n`` points: surface samples plus isotropic Gaussian noise, the scales used in equal shares.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  Points are clipped to ``[-1, 1]^3``.
    """
    shape = _check_shape(shape)
    n = _check_n(n)
    sigmas = _check_sigmas(sigmas)
    g = _generator(shape, seed, 11)
    surf_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
    pts, _ = shape.sample_surface(n, seed=surf_seed)
    scale = torch.tensor(sigmas, dtype=torch.float32)[torch.arange(n) % len(sigmas)]
    noise = torch.randn(n, 3, generator=g) * scale[:, None]
    return (pts + noise).clamp(-1.0, 1.0)


def _mixed_points(shape: Shape, n: int, near_surface_fraction: float, sigmas: Sequence[float],
                  seed: int | None, salt: int) -> Tensor:
    n = _check_n(n)
    frac = _check_fraction(near_surface_fraction)
    n_near = int(round(frac * n))
    g = _generator(shape, seed, salt)
    parts = []
    if n_near:
        near_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
        parts.append(sample_near_surface(shape, n_near, sigmas, seed=near_seed))
    if n - n_near:
        parts.append(torch.rand(n - n_near, 3, generator=g) * 2 - 1)
    pts = torch.cat(parts)
    perm = torch.randperm(n, generator=g)
    return pts[perm].contiguous()


@torch.no_grad()
def sample_sdf(shape: Shape, n: int, near_surface_fraction: float = 0.8,
               sigmas: Sequence[float] = DEFAULT_SIGMAS, seed: int | None = None,
               device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """SDF samples as in DeepSDF: ``(points (n, 3), sdf (n,))`` float32.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    A fraction ``near_surface_fraction`` of the points are surface samples moved by
    Gaussian noise (the scales ``sigmas`` in equal shares); the rest are uniform in
    ``[-1, 1]^3``.  The order is shuffled.  ``seed=None`` derives the randomness from
    the shape's seed (reproducible).  The SDF values are those of :meth:`Shape.sdf`
    (exact outside, a bound with the right sign inside).
    """
    shape = _check_shape(shape)
    pts = _mixed_points(shape, n, near_surface_fraction, sigmas, seed, 21)
    if device is not None:
        pts = pts.to(device)
    return pts, shape.sdf(pts).float()


@torch.no_grad()
def sample_occupancy(shape: Shape, n: int, near_surface_fraction: float = 0.5,
                     sigmas: Sequence[float] = DEFAULT_SIGMAS, seed: int | None = None,
                     device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Occupancy samples as in Occupancy Networks: ``(points (n, 3) float32, inside (n,) bool)``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  Same sampling as
    :func:`sample_sdf` (default: half near the surface, half uniform in ``[-1, 1]^3``).
    """
    shape = _check_shape(shape)
    pts = _mixed_points(shape, n, near_surface_fraction, sigmas, seed, 31)
    if device is not None:
        pts = pts.to(device)
    return pts, shape.occupancy(pts)


def voxel_centers(resolution: int, bound: float = 1.0, device: torch.device | str | None = None) -> Tensor:
    """Centres of the ``R^3`` cells of ``[-bound, bound]^3``: ``(R, R, R, 3)``, index order x, y, z.

    Introduced in ``lectures/01_data_and_representations.ipynb``.
    """
    resolution = _check_n(resolution, "resolution")
    h = 2.0 * bound / resolution
    t = -bound + h * (torch.arange(resolution, dtype=torch.float32, device=device) + 0.5)
    return torch.stack(torch.meshgrid(t, t, t, indexing="ij"), dim=-1)


@torch.no_grad()
def voxelize(shape: Shape, resolution: int, device: torch.device | str | None = None) -> Tensor:
    """Voxel occupancy ``(R, R, R)`` bool: cell ``[i, j, k]`` of ``[-1, 1]^3`` is full when its centre is inside.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  Index order x, y, z
    (``grid[i]`` is the slab at ``x = -1 + (i + 0.5) * 2 / R``).  A real mesh
    (:class:`course_lib.experiments.mesh_shape.MeshShape`, from a real dataset's rows) is voxelised by the same
    rule, its inside decided by the repaired winding number.
    """
    if not isinstance(shape, Shape) and type(shape).__name__ == "MeshShape" and hasattr(shape, "occupancy"):
        centers = voxel_centers(resolution, 1.0, device)
        return shape.occupancy(centers.reshape(-1, 3)).reshape(centers.shape[:3]).bool()
    shape = _check_shape(shape)
    centers = voxel_centers(resolution, 1.0, device)
    return shape.occupancy(centers.reshape(-1, 3)).reshape(centers.shape[:3])


def voxel_shell(grid: Tensor) -> Tensor:
    """The surface voxels of a solid occupancy grid: the full cells with at least one empty face neighbour.

    Introduced in ``lectures/04_octrees.ipynb`` (surface against solid voxelisation).  ``grid`` ``(..., R, R, R)``
    bool (or 0/1); a cell outside the grid counts as empty, so a full cell on the border is on the shell.  The
    result is a one-voxel-thick layer (6-connectivity): a closed surface in the grid's own terms, what
    surface-voxel datasets (O-CNN's inputs, for example) store instead of the solid.  Same shape, bool.
    """
    g = torch.as_tensor(grid)
    if g.dim() < 3 or not (g.shape[-1] == g.shape[-2] == g.shape[-3]):
        raise ValueError(f"voxel_shell: expected a (..., R, R, R) grid, got shape {tuple(g.shape)}")
    if g.dtype != torch.bool:
        if g.is_floating_point() and not bool(((g == 0) | (g == 1)).all()):
            raise ValueError("voxel_shell: expected an occupancy grid of 0/1 or bool values")
        g = g != 0
    pad = torch.nn.functional.pad(g.to(torch.uint8), (1, 1, 1, 1, 1, 1), value=0).bool()
    core = pad[..., 1:-1, 1:-1, 1:-1]
    interior = core.clone()
    for dim in (-1, -2, -3):
        for step in (-1, 1):
            interior &= pad.roll(step, dims=dim)[..., 1:-1, 1:-1, 1:-1]
    return core & ~interior


def sdf_gradient_stats(shape: Shape, n: int = 20_000, seed: int = 0, bound: float = 1.1,
                       tol: float = 0.01) -> dict[str, float]:
    """How close ``shape.sdf`` is to a true distance: the gradient norm at ``n`` uniform points of ``[-bound, bound]^3``.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  A true signed distance has
    ``|grad f| = 1`` almost everywhere; a *bound* (ellipsoids, differences of solids) has a smaller
    norm where it underestimates the distance.  Returns the fraction of points inside, and for the
    inside and the outside points separately the fraction with ``| |grad f| - 1 | <= tol`` and the
    minimum norm (``nan`` when no point falls there).
    """
    shape = _check_shape(shape)
    n = _check_n(n)
    g = torch.Generator().manual_seed(int(seed))
    pts = (torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 - 1) * float(bound)
    f, grad = shape.gradient(pts.float())
    norm = grad.norm(dim=-1)
    out: dict[str, float] = {"inside_fraction": float((f < 0).float().mean())}
    for name, mask in (("inside", f < 0), ("outside", f > 0)):
        if bool(mask.any()):
            out[f"{name}_unit_fraction"] = float(((norm[mask] - 1).abs() <= tol).float().mean())
            out[f"{name}_min_norm"] = float(norm[mask].min())
        else:
            out[f"{name}_unit_fraction"] = float("nan")
            out[f"{name}_min_norm"] = float("nan")
    return out
