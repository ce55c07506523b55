"""Area-weighted sampling of mesh surfaces.

Introduced in ``lectures/01_data_and_representations.ipynb``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import trimesh
from torch import Tensor

__all__ = ["as_trimesh", "sample_mesh_surface"]


def as_trimesh(mesh: Any) -> trimesh.Trimesh:
    """Accept a ``trimesh.Trimesh`` or a ``(vertices, faces)`` pair (arrays or tensors)."""
    if isinstance(mesh, trimesh.Trimesh):
        return mesh
    if isinstance(mesh, (tuple, list)) and len(mesh) == 2:
        v, f = mesh
        v = v.detach().cpu().numpy() if isinstance(v, Tensor) else np.asarray(v)
        f = f.detach().cpu().numpy() if isinstance(f, Tensor) else np.asarray(f)
        if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f"expected vertices (V, 3) and faces (F, 3), got {v.shape} and {f.shape}")
        return trimesh.Trimesh(vertices=v, faces=f, process=False)
    raise TypeError(f"expected a trimesh.Trimesh or a (vertices, faces) pair, got {type(mesh).__name__}")


def sample_mesh_surface(mesh: Any, n: int, seed: int | Sequence[int] | None = 0) -> tuple[Tensor, Tensor]:
    """``n`` points uniformly distributed over the surface area, with the face normals.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    A face is chosen with probability proportional to its area, then a point
    uniformly inside it (barycentric ``(1 - sqrt(u), sqrt(u) (1 - v), sqrt(u) v)``).
    Returns ``(points (n, 3) float32, normals (n, 3) float32 unit)``; the normals are
    those of the faces (outward for an outward-oriented mesh).  ``seed`` makes it
    reproducible (``None``: fresh randomness).
    """
    mesh = as_trimesh(mesh)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if len(mesh.faces) == 0:
        raise ValueError("cannot sample an empty mesh (no faces)")
    areas = np.asarray(mesh.area_faces, dtype=np.float64)
    total = areas.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError("mesh has zero total area")
    rng = np.random.default_rng(seed)
    face = rng.choice(len(areas), size=int(n), p=areas / total)
    tri = np.asarray(mesh.triangles, dtype=np.float64)[face]
    u = np.sqrt(rng.random(int(n)))[:, None]
    v = rng.random(int(n))[:, None]
    pts = (1 - u) * tri[:, 0] + u * (1 - v) * tri[:, 1] + u * v * tri[:, 2]
    normals = np.asarray(mesh.face_normals, dtype=np.float64)[face]
    return torch.from_numpy(pts.astype(np.float32)), torch.from_numpy(normals.astype(np.float32))
