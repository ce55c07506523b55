"""Voxel grids from meshes (ray parity) and from signed distance functions.

Introduced in ``lectures/01_data_and_representations.ipynb`` (used again in ``lectures/03_voxels.ipynb``).

Convention (the same as :func:`course_lib.data.voxelize`): a grid of resolution ``R``
splits ``[-bound, bound]^3`` into ``R^3`` cells; cell ``[i, j, k]`` (index order x, y,
z) is full when its *centre* ``-bound + (i + 0.5) * 2 * bound / R`` is inside.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .mc import _as_sdf_fn, _check_bound, _check_resolution
from .sampling import as_trimesh

__all__ = ["mesh_to_voxels", "sdf_to_voxels"]

# rays are shifted by this fraction of a cell (irrational ratios) so that they
# almost surely miss mesh edges and vertices, where parity counting is ambiguous
_JITTER = (np.sqrt(2.0) * 1e-6, np.sqrt(3.0) * 1e-6)


def mesh_to_voxels(mesh: Any, resolution: int, bound: float = 1.0) -> Tensor:
    """Solid voxelisation of a closed mesh: ``(R, R, R)`` bool, True where the cell centre is inside.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    One ray per ``(x, y)`` column of cell centres is cast along ``+z``; the
    crossings with the triangles are found in closed form (2D barycentric
    coordinates in the ``xy`` projection, vectorised in NumPy) and a centre is
    inside when an odd number of crossings lies below it (the parity rule).
    Exact for a watertight mesh (up to rays grazing an edge, made improbable by a
    tiny fixed offset of the rays); for a mesh with holes the parity, and so the
    result, can be wrong along the columns through the holes.
    """
    mesh = as_trimesh(mesh)
    R = _check_resolution(resolution, minimum=1)
    bound = _check_bound(bound)
    h = 2.0 * bound / R
    tri = np.asarray(mesh.triangles, dtype=np.float64)
    occ = np.zeros((R, R, R), dtype=bool)
    if len(tri) == 0:
        return torch.from_numpy(occ)
    # grid coordinates of the vertices, in units of cells; a centre has coordinate i + 0.5
    g = (tri + bound) / h
    g[..., 0] -= _JITTER[0]
    g[..., 1] -= _JITTER[1]
    x, y, z = g[..., 0], g[..., 1], g[..., 2]
    # columns whose centre (i + 0.5, j + 0.5) may be inside the triangle's xy bounding box
    i0 = np.clip(np.ceil(x.min(1) - 0.5), 0, R).astype(np.int64)
    i1 = np.clip(np.floor(x.max(1) - 0.5), -1, R - 1).astype(np.int64)
    j0 = np.clip(np.ceil(y.min(1) - 0.5), 0, R).astype(np.int64)
    j1 = np.clip(np.floor(y.max(1) - 0.5), -1, R - 1).astype(np.int64)
    ni, nj = np.maximum(i1 - i0 + 1, 0), np.maximum(j1 - j0 + 1, 0)
    area2 = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    keep = (ni * nj > 0) & (np.abs(area2) > 1e-14)
    counts = np.zeros((R, R, R + 1), dtype=np.int32)
    fids = np.nonzero(keep)[0]
    # process triangles in chunks to bound memory
    chunk_pairs = 2_000_000
    start = 0
    while start < len(fids):
        sizes = (ni * nj)[fids]
        csum = np.cumsum(sizes[start:])
        stop = start + max(1, int(np.searchsorted(csum, chunk_pairs, side="right")))
        f = fids[start:stop]
        start = stop
        n_pairs = (ni * nj)[f]
        owner = np.repeat(np.arange(len(f)), n_pairs)
        local = np.arange(n_pairs.sum()) - np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs)
        fo = f[owner]
        ci = i0[fo] + local // nj[fo]
        cj = j0[fo] + local % nj[fo]
        px, py = ci + 0.5, cj + 0.5
        xa, ya = x[fo], y[fo]
        # barycentric coordinates of (px, py) in the projected triangle
        w1 = ((px - xa[:, 0]) * (ya[:, 2] - ya[:, 0]) - (xa[:, 2] - xa[:, 0]) * (py - ya[:, 0])) / area2[fo]
        w2 = ((xa[:, 1] - xa[:, 0]) * (py - ya[:, 0]) - (px - xa[:, 0]) * (ya[:, 1] - ya[:, 0])) / area2[fo]
        w0 = 1.0 - w1 - w2
        hit = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        zf = z[fo]
        zh = w0 * zf[:, 0] + w1 * zf[:, 1] + w2 * zf[:, 2]
        # first cell centre strictly above the crossing: k with k + 0.5 > zh
        kz = np.clip(np.floor(zh + 0.5), 0, R).astype(np.int64)
        np.add.at(counts, (ci[hit], cj[hit], kz[hit]), 1)
    below = np.cumsum(counts, axis=2)[:, :, :R]
    occ = (below % 2) == 1
    return torch.from_numpy(occ)


@torch.no_grad()
def sdf_to_voxels(fn_or_shape: Any, resolution: int, bound: float = 1.0,
                  device: torch.device | str | None = None) -> Tensor:
    """Voxels from an SDF (callable or object with ``.sdf``): cell centres with ``sdf < 0``; ``(R, R, R)`` bool.

    Introduced in ``lectures/01_data_and_representations.ipynb``.
    """
    fn = _as_sdf_fn(fn_or_shape)
    R = _check_resolution(resolution, minimum=1)
    bound = _check_bound(bound)
    h = 2.0 * bound / R
    t = -bound + h * (torch.arange(R, dtype=torch.float32, device=device) + 0.5)
    pts = torch.stack(torch.meshgrid(t, t, t, indexing="ij"), dim=-1).reshape(-1, 3)
    vals = torch.as_tensor(fn(pts)).reshape(R, R, R)
    return vals < 0
