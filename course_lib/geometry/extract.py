"""Meshes from implicit fields: dense and hierarchical (MISE-style) marching cubes, normals by autograd.

Introduced in ``lectures/07_implicit_fields.ipynb``.

A *field* is any callable ``points (N, 3) -> values (N,)``: an exact SDF (``shape.sdf``), a
network's SDF or its occupancy logits.  ``inside="below"`` (SDF: inside where the value is
below ``level``) or ``inside="above"`` (occupancy probability or logit: inside above).

Hierarchical extraction follows the idea of OccNet's MISE (Mescheder et al. 2019,
``im2mesh/utils/libmise``): evaluate a coarse grid, then, level by level, evaluate the
finer nodes only inside cells whose corners disagree (inside vs outside), filling the other
nodes by trilinear interpolation of the coarser level, which keeps their side.  We add a
one-cell dilation of the refined set and a final *closure* pass (every finest cell whose
corners disagree gets all its corners evaluated exactly), so the grid is exact on every
cell that marching cubes turns into triangles: the mesh is then the dense one, except for
surface pieces entirely hidden inside one coarse cell (parts thinner than a coarse cell
whose corners all lie on one side), which no coarse-to-fine scheme can see.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import trimesh
from torch import Tensor

from .mc import _check_bound, _check_resolution, grid_points, marching_cubes

__all__ = [
    "as_field", "field_grid", "extract_mesh", "hierarchical_grid", "hierarchical_extract", "ExtractInfo",
    "field_normals", "mesh_field_normal_consistency",
]

_INSIDE = ("below", "above")


def as_field(fn: Any) -> Callable[[Tensor], Tensor]:
    """A callable ``(N, 3) -> (N,)`` from a callable or an object with ``.sdf`` (a ``Shape``).

    Introduced in ``lectures/07_implicit_fields.ipynb``.
    """
    if hasattr(fn, "sdf") and callable(fn.sdf):
        return fn.sdf
    if callable(fn):
        return fn
    raise TypeError(f"a field must be a callable points (N, 3) -> values (N,), got {type(fn).__name__}")


def _check_inside(inside: str) -> str:
    if inside not in _INSIDE:
        raise ValueError(f"inside must be 'below' (SDF) or 'above' (occupancy), got {inside!r}")
    return inside


def _device_of(fn: Any, device: Any) -> torch.device:
    if device is not None:
        return torch.device(device)
    mod = getattr(fn, "__self__", fn)
    if isinstance(mod, torch.nn.Module):
        p = next(mod.parameters(), None)
        if p is not None:
            return p.device
    return torch.device("cpu")


@torch.no_grad()
def _evaluate(fn: Callable[[Tensor], Tensor], pts: Tensor, chunk: int) -> Tensor:
    out = []
    for s in range(0, pts.shape[0], chunk):
        v = torch.as_tensor(fn(pts[s:s + chunk])).reshape(-1)
        if v.shape[0] != min(chunk, pts.shape[0] - s):
            raise ValueError(f"the field returned {v.shape[0]} values for {min(chunk, pts.shape[0] - s)} points")
        out.append(v.float())
    if not out:
        return torch.zeros(0, device=pts.device)
    return torch.cat(out).to(pts.device)


@torch.no_grad()
def field_grid(fn: Any, resolution: int, bound: float = 1.0, *, device: torch.device | str | None = None,
               chunk: int = 65536) -> Tensor:
    """Dense ``(R, R, R)`` grid of a field at the nodes ``linspace(-bound, bound, R)`` (see :mod:`.mc`).

    Introduced in ``lectures/07_implicit_fields.ipynb``.
    """
    field = as_field(fn)
    resolution = _check_resolution(resolution)
    bound = _check_bound(bound)
    dev = _device_of(field, device)
    pts = grid_points(resolution, bound, device=dev).reshape(-1, 3)
    return _evaluate(field, pts, chunk).reshape(resolution, resolution, resolution)


def _to_sdf_convention(grid: Tensor, level: float, inside: str) -> tuple[Tensor, float]:
    return (grid, level) if inside == "below" else (-grid, -level)


def extract_mesh(fn: Any, resolution: int = 64, bound: float = 1.0, level: float = 0.0, *,
                 inside: str = "below", device: torch.device | str | None = None,
                 chunk: int = 65536) -> trimesh.Trimesh:
    """Marching cubes of the ``level`` set of any field on a dense ``resolution^3`` node grid.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  ``inside="above"`` for occupancy
    (probabilities with ``level=0.5``, logits with ``level=0``).  Raises ``ValueError`` when
    the level is not crossed (an empty or full prediction).
    """
    inside = _check_inside(inside)
    grid = field_grid(fn, resolution, bound, device=device, chunk=chunk)
    g, lv = _to_sdf_convention(grid, float(level), inside)
    return marching_cubes(g, lv, bound)


@dataclass
class ExtractInfo:
    """Book-keeping of a hierarchical extraction: evaluations made against the dense grid's."""

    evaluations: int
    dense_evaluations: int
    levels: list[int]
    resolution: int

    @property
    def fraction(self) -> float:
        """Evaluations as a fraction of the dense grid's."""
        return self.evaluations / self.dense_evaluations


def _cell_disagree(grid: Tensor, level: float) -> Tensor:
    """``(n-1)^3`` bool: cells whose 8 corners are not all on one side of ``level`` (inside = below)."""
    ins = (grid < level).float()[None, None]
    anyin = F.max_pool3d(ins, 2, stride=1)
    allin = -F.max_pool3d(-ins, 2, stride=1)
    return ((anyin > 0) & (allin < 1))[0, 0]


def _nodes_of_cells(cells: Tensor) -> Tensor:
    """``(n-1)^3`` cell mask -> ``n^3`` node mask (the 8 corners of each marked cell)."""
    return F.max_pool3d(cells.float()[None, None], 2, stride=1, padding=1)[0, 0] > 0


@torch.no_grad()
def hierarchical_grid(fn: Any, resolution: int = 129, coarse: int = 33, bound: float = 1.0,
                      level: float = 0.0, *, inside: str = "below", dilate: int = 1,
                      device: torch.device | str | None = None, chunk: int = 65536) -> tuple[Tensor, ExtractInfo]:
    """A ``(R, R, R)`` node grid of a field evaluated coarse-to-fine (MISE); returns ``(grid, info)``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.

    ``resolution - 1`` must be ``(coarse - 1) * 2^k`` (e.g. 33 -> 65 -> 129 nodes, i.e. 32 ->
    128 cells as OccNet's ``resolution_0=32, upsampling_steps=2``).  At each level, cells whose
    corners disagree (and ``dilate`` cells around them) are subdivided and their new nodes
    evaluated; the other new nodes get the trilinear interpolation of the coarser level.
    A closure pass at the finest level evaluates every remaining corner of disagreeing cells.
    ``info.evaluations`` counts the field's evaluations (``info.fraction`` of the dense grid).
    Values follow the field's own sign (``inside`` only decides which side is "in").
    """
    field = as_field(fn)
    inside = _check_inside(inside)
    resolution = _check_resolution(resolution)
    coarse = _check_resolution(coarse)
    bound = _check_bound(bound)
    steps = math.log2((resolution - 1) / (coarse - 1)) if resolution >= coarse else -1.0
    if steps < 0 or steps != int(steps):
        raise ValueError(
            f"resolution - 1 ({resolution - 1}) must be coarse - 1 ({coarse - 1}) times a power of two "
            "(e.g. coarse=33, resolution=129)")
    steps = int(steps)
    if isinstance(dilate, bool) or not isinstance(dilate, int) or dilate < 0:
        raise ValueError(f"dilate must be a non-negative int, got {dilate!r}")
    lv = float(level)
    sgn = 1.0 if inside == "below" else -1.0
    dev = _device_of(field, device)
    axis = torch.linspace(-bound, bound, resolution, device=dev)  # the same nodes as grid_points

    def coords(idx: Tensor) -> Tensor:  # integer node indices (M, 3) of the finest grid -> points
        return axis[idx]

    n_evals = 0
    stride = 2 ** steps
    t = torch.arange(0, resolution, stride, device=dev)
    idx = torch.stack(torch.meshgrid(t, t, t, indexing="ij"), -1).reshape(-1, 3)
    g = _evaluate(field, coords(idx), chunk).reshape(coarse, coarse, coarse) * sgn
    n_evals += idx.shape[0]
    evaluated = torch.ones_like(g, dtype=torch.bool)
    levels = [coarse]
    while stride > 1:
        n = g.shape[0]
        active = _cell_disagree(g, sgn * lv)
        if dilate:
            active = F.max_pool3d(active.float()[None, None], 2 * dilate + 1, stride=1, padding=dilate)[0, 0] > 0
        # upsample values (trilinear = exact midpoints) and the masks
        fine = F.interpolate(g[None, None], size=(2 * n - 1,) * 3, mode="trilinear", align_corners=True)[0, 0]
        fine[::2, ::2, ::2] = g
        ev = torch.zeros_like(fine, dtype=torch.bool)
        ev[::2, ::2, ::2] = evaluated
        fine_cells = active.repeat_interleave(2, 0).repeat_interleave(2, 1).repeat_interleave(2, 2)
        todo = _nodes_of_cells(fine_cells) & ~ev
        stride //= 2
        nodes = todo.nonzero() * stride
        if nodes.shape[0]:
            fine[todo] = _evaluate(field, coords(nodes), chunk) * sgn
            n_evals += nodes.shape[0]
        ev |= todo
        g, evaluated = fine, ev
        levels.append(g.shape[0])
    # closure: every disagreeing finest cell has exact corners
    for _ in range(64):
        todo = _nodes_of_cells(_cell_disagree(g, sgn * lv)) & ~evaluated
        if not bool(todo.any()):
            break
        nodes = todo.nonzero()
        g[todo] = _evaluate(field, coords(nodes), chunk) * sgn
        evaluated |= todo
        n_evals += nodes.shape[0]
    info = ExtractInfo(evaluations=n_evals, dense_evaluations=resolution ** 3, levels=levels,
                       resolution=resolution)
    return g * sgn, info


def hierarchical_extract(fn: Any, resolution: int = 129, coarse: int = 33, bound: float = 1.0,
                         level: float = 0.0, *, inside: str = "below", dilate: int = 1,
                         device: torch.device | str | None = None,
                         chunk: int = 65536) -> tuple[trimesh.Trimesh, ExtractInfo]:
    """Marching cubes on :func:`hierarchical_grid`: ``(mesh, info)`` with far fewer field evaluations.

    Introduced in ``lectures/07_implicit_fields.ipynb``.
    """
    grid, info = hierarchical_grid(fn, resolution, coarse, bound, level, inside=inside, dilate=dilate,
                                   device=device, chunk=chunk)
    g, lv = _to_sdf_convention(grid, float(level), _check_inside(inside))
    return marching_cubes(g, lv, bound), info


def field_normals(fn: Any, points: Tensor, *, inside: str = "below", create_graph: bool = False) -> Tensor:
    """Unit outward normals of a field's level sets at ``points (N, 3)``, by autograd: ``±grad f / |grad f|``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.

    For an SDF (``inside="below"``) the outward normal is ``+grad f``; for an occupancy
    (``"above"``) it is ``-grad f``.  ``create_graph=True`` keeps the graph (for a loss on
    normals, e.g. the eikonal term).  Returned on the points' device.
    """
    field = as_field(fn)
    inside = _check_inside(inside)
    if not isinstance(points, Tensor) or points.dim() != 2 or points.shape[-1] != 3:
        raise ValueError(f"points must be a tensor of shape (N, 3), got {getattr(points, 'shape', type(points))}")
    if not points.is_floating_point():
        raise TypeError(f"points must be floating point, got {points.dtype}")
    p = points.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        v = torch.as_tensor(field(p)).reshape(-1)
        (g,) = torch.autograd.grad(v.sum(), p, create_graph=create_graph)
    if inside == "above":
        g = -g
    return g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def mesh_field_normal_consistency(mesh: trimesh.Trimesh, fn: Any, *, inside: str = "below",
                                  absolute: bool = False, device: torch.device | str | None = None) -> float:
    """Mean cosine between a mesh's face normals and the field's autograd normals at the face centres.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  Area-weighted; 1 is perfect.
    ``absolute=True`` takes ``|cos|`` (OccNet's normal consistency ignores orientation).
    """
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError("mesh must be a non-empty trimesh.Trimesh")
    field = as_field(fn)
    dev = _device_of(field, device)
    centers = torch.as_tensor(np.array(mesh.triangles_center), dtype=torch.float32, device=dev)
    fn_ = torch.as_tensor(np.array(mesh.face_normals), dtype=torch.float32, device=dev)
    area = torch.as_tensor(np.array(mesh.area_faces), dtype=torch.float32, device=dev)
    n = field_normals(field, centers, inside=inside)
    cos = (n * fn_).sum(-1)
    if absolute:
        cos = cos.abs()
    return float((cos * area).sum() / area.sum().clamp_min(1e-30))
