"""Dense SDF grids and marching cubes (scikit-image).

Introduced in ``lectures/01_data_and_representations.ipynb`` (used again in ``lectures/07_implicit_fields.ipynb``).

Grid convention (shared by :func:`sdf_grid` and :func:`marching_cubes`): a grid of
resolution ``R`` holds values at the ``R**3`` *nodes* ``linspace(-bound, bound, R)``
along each axis, indexed ``grid[i, j, k]`` = value at ``(x_i, y_j, z_k)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import trimesh
from skimage import measure
from torch import Tensor

__all__ = ["grid_points", "sdf_grid", "sdf_grid_narrow_band", "marching_cubes"]


def _check_resolution(resolution: Any, minimum: int = 2) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)):
        raise TypeError(f"resolution must be an int, got {type(resolution).__name__}")
    if resolution < minimum:
        raise ValueError(f"resolution must be >= {minimum}, got {resolution}")
    return int(resolution)


def _check_bound(bound: Any) -> float:
    bound = float(bound)
    if not np.isfinite(bound) or bound <= 0:
        raise ValueError(f"bound must be a positive finite number, got {bound}")
    return bound


def grid_points(resolution: int, bound: float = 1.0, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> Tensor:
    """The ``(R, R, R, 3)`` node coordinates ``linspace(-bound, bound, R)`` (index order x, y, z).

    Introduced in ``lectures/01_data_and_representations.ipynb``.
    """
    resolution = _check_resolution(resolution)
    bound = _check_bound(bound)
    t = torch.linspace(-bound, bound, resolution, device=device, dtype=dtype)
    return torch.stack(torch.meshgrid(t, t, t, indexing="ij"), dim=-1)


def _as_sdf_fn(fn_or_shape: Any) -> Callable[[Tensor], Tensor]:
    if hasattr(fn_or_shape, "sdf") and callable(fn_or_shape.sdf):
        return fn_or_shape.sdf
    if callable(fn_or_shape):
        return fn_or_shape
    raise TypeError(
        "sdf_grid expects a callable points (N, 3) -> values (N,) or an object with an .sdf method, "
        f"got {type(fn_or_shape).__name__}"
    )


@torch.no_grad()
def sdf_grid(fn_or_shape: Any, resolution: int, bound: float = 1.0, *,
             device: torch.device | str | None = None, chunk: int = 262144) -> Tensor:
    """Evaluate an SDF (a callable or a ``Shape``) at the grid nodes; returns ``(R, R, R)`` float32.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    ``fn_or_shape`` maps points ``(N, 3)`` to values ``(N,)``; it is called in chunks of
    ``chunk`` points on ``device`` (default: the CPU, or the device of a torch module's
    parameters when ``fn_or_shape`` is an ``nn.Module``).
    """
    fn = _as_sdf_fn(fn_or_shape)
    resolution = _check_resolution(resolution)
    bound = _check_bound(bound)
    if device is None and isinstance(fn_or_shape, torch.nn.Module):
        p = next(fn_or_shape.parameters(), None)
        device = p.device if p is not None else None
    pts = grid_points(resolution, bound, device=device).reshape(-1, 3)
    out = []
    for start in range(0, pts.shape[0], chunk):
        v = fn(pts[start:start + chunk])
        v = torch.as_tensor(v).reshape(-1)
        out.append(v.float())
    return torch.cat(out).reshape(resolution, resolution, resolution)


@torch.no_grad()
def sdf_grid_narrow_band(fn_or_shape: Any, resolution: int, bound: float = 1.0, *, coarse: int = 4,
                         device: torch.device | str | None = None, chunk: int = 262144) -> Tensor:
    """Like :func:`sdf_grid`, but evaluates the fine grid only near the surface.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    Requires a *distance bound*: ``|f(x)| <= distance(x, surface)`` with the right
    sign (true for exact SDFs and for min/max CSG of them).  The field is first
    evaluated on every ``coarse``-th node; a fine node whose nearest coarse node
    ``c`` has ``|f(c)| > sqrt(3) * coarse / 2 * h + 1.01 h`` (``h`` the fine spacing) is
    farther than one cell from the surface, so it gets ``f(c)`` (right sign, no edge
    from it crosses the surface) and is not evaluated.  All other nodes are exact.
    Marching cubes on the result equals marching cubes on the full grid.
    """
    fn = _as_sdf_fn(fn_or_shape)
    resolution = _check_resolution(resolution)
    bound = _check_bound(bound)
    coarse = _check_resolution(coarse, minimum=1)
    h = 2.0 * bound / (resolution - 1)
    pts = grid_points(resolution, bound, device=device)
    ci = torch.arange(0, resolution, coarse, device=pts.device)
    if ci[-1] != resolution - 1:
        ci = torch.cat([ci, torch.tensor([resolution - 1], device=pts.device)])
    cpts = pts[ci][:, ci][:, :, ci].reshape(-1, 3)
    cval = torch.cat([torch.as_tensor(fn(cpts[s:s + chunk])).reshape(-1).float()
                      for s in range(0, cpts.shape[0], chunk)]).reshape(len(ci), len(ci), len(ci))
    # nearest coarse index of every fine index
    fi = torch.arange(resolution, device=pts.device)
    near = torch.argmin((fi[:, None] - ci[None, :]).abs(), dim=1)
    grid = cval[near][:, near][:, :, near].clone()
    thresh = np.sqrt(3.0) * coarse / 2 * h + 1.01 * h
    mask = grid.abs() <= thresh
    todo = pts[mask]
    if todo.shape[0]:
        vals = torch.cat([torch.as_tensor(fn(todo[s:s + chunk])).reshape(-1).float()
                          for s in range(0, todo.shape[0], chunk)])
        grid[mask] = vals
    return grid


def marching_cubes(grid: Tensor | np.ndarray, level: float = 0.0, bound: float = 1.0) -> trimesh.Trimesh:
    """Extract the ``level`` iso-surface of a node grid as a watertight, outward-oriented mesh.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    ``grid`` follows the convention of :func:`sdf_grid` (values at
    ``linspace(-bound, bound, R)``, index order x, y, z) with **values below
    ``level`` inside** (an SDF).  For an occupancy or indicator field where inside is
    *above* the level, pass ``-grid`` and ``-level``.

    Details: scikit-image's ``marching_cubes`` (Lewiner) returns vertices in index
    units along the array axes; they are mapped to world coordinates with spacing
    ``2 * bound / (R - 1)``.  The grid is closed by a one-node border of "outside"
    values, so the mesh is watertight even where the surface leaves the box (it is
    then cut flat, up to one cell outside ``bound``).  Nodes within ``1e-4`` cell of ``level``
    are nudged outward, which avoids zero-area triangles that would break watertightness.  Faces are
    oriented so normals point outward (positive volume).
    """
    bound = _check_bound(bound)
    if isinstance(grid, Tensor):
        g = grid.detach().to("cpu", torch.float64).numpy()
    else:
        g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 3 or min(g.shape) < 2:
        raise ValueError(f"grid must be a 3D array with every side >= 2, got shape {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("grid contains NaN or infinite values")
    level = float(level)
    spacing = 2.0 * bound / (np.array(g.shape, dtype=np.float64) - 1.0)
    if not (g.min() < level < g.max()) and not (g.min() < level and g.max() == level):
        raise ValueError(
            f"level {level} is not crossed by the grid (min {g.min():.4g}, max {g.max():.4g}): "
            "no surface to extract"
        )
    eps = 1e-4 * float(spacing.min())
    g = np.where(np.abs(g - level) < eps, level + eps, g)
    outside = level + float(spacing.max())
    g = np.pad(g, 1, mode="constant", constant_values=max(outside, float(g.max())))
    verts, faces, _, _ = measure.marching_cubes(g, level=level, gradient_direction="descent")
    verts = (verts - 1.0) * spacing - bound
    # with "descent" (inside = below the level) scikit-image orients faces outward;
    # tests check the volume is positive
    return trimesh.Trimesh(vertices=verts, faces=faces, process=True)
