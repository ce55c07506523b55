"""Mesh regularisers for fitting a deformable template: uniform Laplacian, flatten, icosphere.

Introduced in ``lectures/09_differentiable_rendering.ipynb``.

* :func:`uniform_laplacian` the sparse ``(V, V)`` matrix ``L = I - D^{-1} A`` (``A`` the
  vertex adjacency, ``D`` the degrees), so ``(L x)_i = x_i - mean of x over i's neighbours``;
* :func:`laplacian_loss` ``sum_i ||(L V)_i||^2`` per mesh, averaged over the batch
  (SoftRas' ``LaplacianLoss``);
* :func:`flatten_loss` ``sum over interior edges of (cos theta + 1)^2``, ``theta`` the angle
  between the two faces at the edge measured inside the surface (``theta = pi`` for a flat
  pair, so flat costs 0; Kato et al. 2018, SoftRas' ``FlattenLoss``);
* :func:`icosphere` the template (642 vertices, 1280 faces at level 3).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["icosphere", "mesh_edges", "uniform_laplacian", "laplacian_loss", "edge_face_pairs", "flatten_loss"]


def _check_faces(faces: Tensor, n_verts: int | None = None) -> Tensor:
    if not isinstance(faces, Tensor) or faces.dtype not in (torch.int64, torch.int32):
        raise TypeError("faces must be an integer tensor (F, 3)")
    if faces.dim() != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
        raise ValueError(f"faces must have shape (F, 3) with F > 0, got {tuple(faces.shape)}")
    if n_verts is not None and (int(faces.min()) < 0 or int(faces.max()) >= n_verts):
        raise ValueError(f"faces index vertices outside [0, {n_verts - 1}]")
    return faces.long()


def _check_verts(verts: Tensor) -> tuple[Tensor, bool]:
    if not isinstance(verts, Tensor) or not verts.is_floating_point():
        raise TypeError("verts must be a floating-point tensor (V, 3) or (B, V, 3)")
    single = verts.dim() == 2
    v = verts[None] if single else verts
    if v.dim() != 3 or v.shape[-1] != 3 or v.shape[1] == 0:
        raise ValueError(f"verts must have shape (V, 3) or (B, V, 3) with V > 0, got {tuple(verts.shape)}")
    return v, single


def icosphere(level: int = 3, radius: float = 1.0, device: torch.device | str | None = None,
              dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """The icosphere template ``(verts (V, 3), faces (F, 3))``, outward faces.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  Level ``s`` has
    ``10 * 4^s + 2`` vertices: 642 vertices and 1280 faces at level 3 (Kato's
    ``sphere_642``).  The same mesh as :func:`course_lib.models.atlasnet.sphere_mesh`.
    """
    from ..models.atlasnet import sphere_mesh

    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    v, f = sphere_mesh(level, device=device, dtype=dtype)
    return v * radius, f


def mesh_edges(faces: Tensor) -> Tensor:
    """The unique undirected edges ``(E, 2)`` (smaller index first) of a triangle mesh."""
    faces = _check_faces(faces)
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return torch.unique(torch.sort(e, dim=1).values, dim=0)


def uniform_laplacian(faces: Tensor, n_verts: int) -> Tensor:
    """The uniform Laplacian ``I - D^{-1} A`` as a sparse COO tensor ``(V, V)``.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  Isolated vertices get a
    zero row.
    """
    faces = _check_faces(faces, n_verts)
    e = mesh_edges(faces)
    i = torch.cat([e[:, 0], e[:, 1]])
    j = torch.cat([e[:, 1], e[:, 0]])
    dev = faces.device
    deg = torch.zeros(n_verts, device=dev).index_add(0, i, torch.ones(i.numel(), device=dev))
    has = deg > 0
    d = torch.arange(n_verts, device=dev)
    rows = torch.cat([d[has], i])
    cols = torch.cat([d[has], j])
    vals = torch.cat([torch.ones(int(has.sum()), device=dev), -1.0 / deg[i]])
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (n_verts, n_verts),
                                   check_invariants=True).coalesce()


def laplacian_loss(verts: Tensor, faces: Tensor, L: Tensor | None = None) -> Tensor:
    """``sum_i ||x_i - mean of its neighbours||^2`` per mesh, averaged over the batch (a scalar).

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  ``verts`` ``(V, 3)``
    or ``(B, V, 3)``; pass a precomputed ``L`` (:func:`uniform_laplacian`) to save time.
    """
    v, _ = _check_verts(verts)
    if L is None:
        L = uniform_laplacian(faces, v.shape[1])
    L = L.to(v.dtype)
    B, V, _ = v.shape
    lv = torch.sparse.mm(L, v.permute(1, 0, 2).reshape(V, B * 3)).reshape(V, B, 3)
    return lv.square().sum((0, 2)).mean()


def edge_face_pairs(faces: Tensor) -> Tensor:
    """For every interior edge, ``(v0, v1, a, b)``: its endpoints and the vertices opposite it in its two faces.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  Edges of more or fewer
    than two faces (boundaries, non-manifold edges) are skipped.  Returns ``(E, 4)`` long.
    """
    faces = _check_faces(faces)
    dev = faces.device
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])  # (3F, 2)
    opp = torch.cat([faces[:, 2], faces[:, 0], faces[:, 1]])
    key = torch.sort(e, dim=1).values
    uniq, inv, counts = torch.unique(key, dim=0, return_inverse=True, return_counts=True)
    order = torch.argsort(inv, stable=True)
    inv_s = inv[order]
    first = torch.ones_like(inv_s, dtype=torch.bool)
    first[1:] = inv_s[1:] != inv_s[:-1]
    start = torch.nonzero(first).squeeze(1)
    two = counts[inv_s[start]] == 2
    s = start[two]
    if s.numel() == 0:
        return torch.zeros(0, 4, dtype=torch.long, device=dev)
    a, b = opp[order[s]], opp[order[s + 1]]
    ed = uniq[inv_s[s]]
    return torch.stack([ed[:, 0], ed[:, 1], a, b], dim=1)


def flatten_loss(verts: Tensor, faces: Tensor, pairs: Tensor | None = None, eps: float = 1e-6) -> Tensor:
    """``sum over interior edges of (cos theta + 1)^2`` per mesh, averaged over the batch.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  ``theta`` is the angle
    at the edge between the two faces (between the perpendiculars dropped from the two
    opposite vertices onto the edge): ``pi`` when the faces are coplanar (loss 0), ``pi / 2``
    for a right-angled fold (loss 1), 0 when they fold onto each other (loss 4).  Pass a
    precomputed ``pairs`` (:func:`edge_face_pairs`) to save time.
    """
    v, _ = _check_verts(verts)
    if pairs is None:
        pairs = edge_face_pairs(faces)
    if pairs.numel() == 0:
        return v.sum() * 0.0
    p0, p1, pa, pb = (v[:, pairs[:, k]] for k in range(4))
    e = p1 - p0
    e2 = e.square().sum(-1, keepdim=True).clamp(min=eps)

    def perp(p):
        w = p - p0
        return w - (w * e).sum(-1, keepdim=True) / e2 * e

    ua, ub = perp(pa), perp(pb)
    cos = (ua * ub).sum(-1) / (ua.norm(dim=-1) * ub.norm(dim=-1)).clamp(min=eps)
    return (cos + 1.0).square().sum(-1).mean()

