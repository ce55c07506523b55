"""Memory per representation: the bytes of one shape as a grid, a mesh, a point set and a network.

Introduced in ``lectures/01_data_and_representations.ipynb`` (section 6) and used by its lab
(``labs/01_data_and_representations_lab.ipynb``, exercise 3), which fills the same table with the
student's own ``count_bytes`` and ``voxelize``: one table, one shape and one set of conventions for both.

Conventions (the lecture states them):

* a **bool voxel grid** of ``R^3`` cells (one byte per cell, as torch stores ``bool``) and a **float32 SDF grid**
  on the ``R^3`` nodes of ``[-bound, bound]^3``;
* the **marching-cubes mesh** of that SDF grid, with float64 vertices and int64 faces, as trimesh stores them;
* a float32 **point set with one point per surface voxel** (an occupied cell with an empty, or outside, face
  neighbour): a point set with the detail of the grid;
* an **MLP SDF** whose size does not depend on ``R``: a small one (3 → 128 → 128 → 1) and one of DeepSDF's size
  (Park et al., 2019: 8 layers of 512 units on a 256-float latent code plus ``x``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["nbytes", "surface_voxels", "mlp_sdf", "memory_table", "fitted_exponents", "MEMORY_ROWS"]

MEMORY_ROWS = ("voxels (bool)", "SDF grid (float32)", "mesh (marching cubes)", "points (one per surface voxel)",
               "MLP SDF, small", "MLP SDF, DeepSDF-sized")
"""The rows of :func:`memory_table`, in order."""


def nbytes(obj: Any) -> int:
    """Bytes held by ``obj``'s arrays: a tensor (``element_size * numel``), a numpy array (``nbytes``), a
    ``trimesh.Trimesh`` (its ``vertices`` and ``faces``), an ``nn.Module`` (its parameters), or a dict, list or
    tuple of these (the sum).  Raises ``TypeError`` naming anything else (Python's own object overhead is not
    counted: the course compares representations, not interpreters)."""
    if isinstance(obj, Tensor):
        return obj.element_size() * obj.numel()
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, nn.Module):
        return sum(nbytes(p) for p in obj.parameters())
    if isinstance(obj, Mapping):
        return sum(nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(v) for v in obj)
    if hasattr(obj, "vertices") and hasattr(obj, "faces"):  # a trimesh.Trimesh (or a mesh like it)
        return int(np.asarray(obj.vertices).nbytes + np.asarray(obj.faces).nbytes)
    raise TypeError(f"cannot count the bytes of a {type(obj).__name__}: expected a tensor, an array, a mesh, a "
                    "module, or a dict/list/tuple of them")


def surface_voxels(vox: Tensor) -> Tensor:
    """The occupied cells of a ``(R, R, R)`` bool grid with at least one empty face neighbour (cells outside the
    grid count as empty); same shape, bool."""
    if not isinstance(vox, Tensor) or vox.dim() != 3 or vox.dtype != torch.bool:
        got = f"{tuple(vox.shape)} {vox.dtype}" if isinstance(vox, Tensor) else type(vox).__name__
        raise ValueError(f"surface_voxels expects a (R, R, R) bool tensor, got {got}")
    p = torch.nn.functional.pad(vox[None, None].float(), (1,) * 6)[0, 0].bool()
    interior = vox.clone()
    for axis in range(3):
        for step in (1, -1):
            interior &= torch.roll(p, step, axis)[1:-1, 1:-1, 1:-1]
    return vox & ~interior


def mlp_sdf(widths: Sequence[int]) -> nn.Sequential:
    """A ReLU MLP with the given layer widths (no activation after the last layer), e.g. ``(3, 128, 128, 1)``."""
    if len(widths) < 2 or any(int(w) < 1 for w in widths):
        raise ValueError(f"mlp_sdf needs at least two positive widths, got {tuple(widths)}")
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(int(a), int(b)), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def memory_table(shape: Any, resolutions: Sequence[int], *, bound: float = 1.1,
                 count: Callable[[Any], int] = nbytes,
                 voxelize: Callable[[Any, int], Tensor] | None = None,
                 device: torch.device | str | None = None) -> dict[str, Any]:
    """The bytes of ``shape`` in every representation of :data:`MEMORY_ROWS`, for each resolution.

    ``count`` counts the bytes of an object (default :func:`nbytes`; the lab passes the student's) and
    ``voxelize(shape, R)`` makes the bool grid (default :func:`course_lib.data.voxelize`; the lab passes the
    student's).  Returns ``{"resolutions": [...], "rows": {row: [bytes per R]}, "surface_share": [surface voxels /
    occupied voxels per R], "surface_voxels": [count per R]}``.
    """
    from course_lib import data

    from .mc import marching_cubes, sdf_grid

    res = [int(r) for r in resolutions]
    if not res or any(r < 2 for r in res):
        raise ValueError(f"memory_table needs resolutions of at least 2, got {tuple(resolutions)}")
    vox_fn = voxelize if voxelize is not None else (lambda s, r: data.voxelize(s, r, device=device))
    small, deep = mlp_sdf((3, 128, 128, 1)), mlp_sdf((256 + 3, *[512] * 8, 1))
    rows: dict[str, list[int]] = {k: [] for k in MEMORY_ROWS}
    share, n_surf = [], []
    for r in res:
        vox = torch.as_tensor(vox_fn(shape, r)).cpu().bool()
        sdf = sdf_grid(shape, r, bound=bound, device=device).cpu()
        mesh = marching_cubes(sdf, 0.0, bound=bound)
        n = int(surface_voxels(vox).sum())
        rows["voxels (bool)"].append(int(count(vox)))
        rows["SDF grid (float32)"].append(int(count(sdf)))
        rows["mesh (marching cubes)"].append(int(count(mesh)))
        rows["points (one per surface voxel)"].append(int(count(torch.zeros(n, 3))))
        rows["MLP SDF, small"].append(int(count(small)))
        rows["MLP SDF, DeepSDF-sized"].append(int(count(deep)))
        share.append(n / max(int(vox.sum()), 1))
        n_surf.append(n)
    return {"resolutions": res, "rows": rows, "surface_share": share, "surface_voxels": n_surf}


def fitted_exponents(resolutions: Sequence[int], rows: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """The slope ``k`` of a least-squares line through ``log(bytes)`` against ``log(R)`` (bytes ~ ``R^k``) for
    each row whose bytes change with ``R``; needs at least two resolutions."""
    if len(resolutions) < 2:
        raise ValueError("fitted_exponents needs at least two resolutions")
    x = np.log(np.asarray(resolutions, dtype=float))
    out = {}
    for name, row in rows.items():
        y = np.asarray(row, dtype=float)
        if np.all(y == y[0]):
            continue  # constant in R (the MLPs): no exponent to fit
        out[name] = float(np.polyfit(x, np.log(y), 1)[0])
    return out
