"""Mesh regularisers of chapter 09 (uniform Laplacian, flatten, icosphere) against trimesh and analytic cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from course_lib.geometry import (
    edge_face_pairs,
    flatten_loss,
    icosphere,
    laplacian_loss,
    mesh_edges,
    uniform_laplacian,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _grid(n: int = 6, z_bump: float = 0.0):
    t = torch.linspace(0.0, 1.0, n)
    y, x = torch.meshgrid(t, t, indexing="ij")
    v = torch.stack([x.reshape(-1), y.reshape(-1), torch.zeros(n * n)], -1)
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            faces += [[a, b, d], [a, d, c]]
    if z_bump:
        v[(n // 2) * n + n // 2, 2] = z_bump
    return v, torch.tensor(faces)


def test_icosphere_template():
    v, f = icosphere(3)
    assert v.shape == (642, 3) and f.shape == (1280, 3)
    assert torch.allclose(v.norm(dim=-1), torch.ones(642), atol=1e-5)
    mesh = trimesh.Trimesh(v.numpy(), f.numpy(), process=False)
    assert mesh.is_watertight and mesh.volume > 0  # closed, outward faces
    v2, _ = icosphere(1, radius=0.5)
    assert v2.shape == (42, 3) and torch.allclose(v2.norm(dim=-1), torch.full((42,), 0.5), atol=1e-5)
    with pytest.raises(ValueError):
        icosphere(2, radius=0.0)


def test_uniform_laplacian_equals_trimesh():
    v, f = icosphere(2)
    mesh = trimesh.Trimesh(v.numpy(), f.numpy(), process=False)
    ref = np.eye(len(v)) - trimesh.smoothing.laplacian_calculation(mesh, equal_weight=True).toarray()
    L = uniform_laplacian(f, len(v)).to_dense().numpy()
    assert np.allclose(L, ref, atol=1e-6)
    assert np.allclose(L.sum(1), 0, atol=1e-6)  # constants are in the kernel


def test_laplacian_of_flat_grid_is_zero_off_the_boundary():
    v, f = _grid(6)
    L = uniform_laplacian(f, len(v))
    lv = torch.sparse.mm(L, v)
    assert torch.all(lv[:, 2] == 0)  # nothing out of the plane
    n = 6
    interior = [i * n + j for i in range(1, n - 1) for j in range(1, n - 1)]
    assert torch.allclose(lv[interior], torch.zeros(len(interior), 3), atol=1e-6)
    # loss = sum of squared rows; a bump at the centre raises it
    bumped, _ = _grid(6, z_bump=0.3)
    assert float(laplacian_loss(bumped, f)) > float(laplacian_loss(v, f)) + 0.05


def test_laplacian_loss_by_hand_and_batched():
    # a tetrahedron: every vertex has the other three as neighbours
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    f = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    ref = sum(float(((v[i] - v[[j for j in range(4) if j != i]].mean(0)) ** 2).sum()) for i in range(4))
    assert abs(float(laplacian_loss(v, f)) - ref) < 1e-6
    batch = torch.stack([v, 2 * v])
    assert abs(float(laplacian_loss(batch, f)) - (ref + 4 * ref) / 2) < 1e-5
    x = v.clone().requires_grad_(True)
    laplacian_loss(x, f).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_edges_and_edge_face_pairs():
    v, f = icosphere(2)
    e = mesh_edges(f)
    assert e.shape == (480, 2)  # E = 3F / 2
    p = edge_face_pairs(f)
    assert p.shape == (480, 4)
    fs = {frozenset(t) for t in f.tolist()}
    for v0, v1, a, b in p[::37].tolist():
        assert frozenset((v0, v1, a)) in fs and frozenset((v0, v1, b)) in fs and a != b
    _, fg = _grid(4)
    assert edge_face_pairs(fg).shape[0] == 3 * 3 + 2 * (2 * 3)  # 9 diagonals + 12 interior grid edges


def test_flatten_loss_analytic():
    v, f = _grid(5)
    assert float(flatten_loss(v, f)) < 1e-10  # flat: every dihedral angle is pi
    # two triangles folded at a right angle along the x axis: cos(pi/2) + 1 = 1
    fold = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, 0, 1]])
    ff = torch.tensor([[0, 1, 2], [1, 0, 3]])
    assert abs(float(flatten_loss(fold, ff)) - 1.0) < 1e-6
    for ang in (0.3, 1.2, 2.5):
        w = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, math.cos(ang), math.sin(ang)]])
        assert abs(float(flatten_loss(w, ff)) - (math.cos(ang) + 1) ** 2) < 1e-5
    # a finer sphere is flatter; a bump costs more
    v2, f2 = icosphere(2)
    v3, f3 = icosphere(3)
    assert float(flatten_loss(v3, f3)) < float(flatten_loss(v2, f2))
    bumped, _ = _grid(5, z_bump=0.3)
    assert float(flatten_loss(bumped, f)) > 0.01
    x = bumped.clone().requires_grad_(True)
    flatten_loss(x, f).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_regulariser_input_errors():
    v, f = icosphere(0)
    with pytest.raises(TypeError):
        laplacian_loss(v, f.float())
    with pytest.raises(ValueError, match="outside"):
        uniform_laplacian(f, 5)
    with pytest.raises(ValueError, match="shape"):
        flatten_loss(v[:, :2], f)
