"""Conversions: mesh -> voxels (ray parity), SDF -> voxels, oriented points -> mesh (Poisson)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from course_lib.data import make_shape, voxelize
from course_lib.geometry import mesh_to_voxels, poisson_reconstruct, sample_mesh_surface, sdf_to_voxels


def centers(R, bound=1.0):
    t = -bound + (np.arange(R) + 0.5) * 2 * bound / R
    return np.stack(np.meshgrid(t, t, t, indexing="ij"), -1)


def test_mesh_to_voxels_box_exact():
    # faces on cell boundaries (even multiples of 0.1), between the centres (odd multiples) of a 10^3 grid
    lo, hi = np.array([-0.6, -0.2, -0.8]), np.array([0.4, 0.6, 0.2])
    T = np.eye(4)
    T[:3, 3] = (lo + hi) / 2
    box = trimesh.creation.box(extents=hi - lo, transform=T)
    vox = mesh_to_voxels(box, 10).numpy()
    c = centers(10)
    expect = np.all((c > lo) & (c < hi), axis=-1)
    assert np.array_equal(vox, expect)


def test_mesh_to_voxels_matches_trimesh_contains():
    torus = trimesh.creation.torus(0.55, 0.2, major_sections=64, minor_sections=32)
    torus.apply_transform(trimesh.transformations.rotation_matrix(0.4, (1, 1, 0)))
    R = 20
    vox = mesh_to_voxels(torus, R).numpy()
    ref = torus.contains(centers(R).reshape(-1, 3)).reshape(R, R, R)
    assert (vox == ref).mean() > 0.999
    assert vox.sum() > 100
    # a bound other than 1
    vox2 = mesh_to_voxels(torus, 12, bound=0.8).numpy()
    ref2 = torus.contains(centers(12, 0.8).reshape(-1, 3)).reshape(12, 12, 12)
    assert (vox2 == ref2).mean() > 0.999


def test_mesh_and_sdf_voxels_agree_for_shapes():
    for category in ("chair", "lamp"):
        shape = make_shape(category, 3)
        a = mesh_to_voxels(shape.mesh(96), 24)
        b = voxelize(shape, 24)
        c = sdf_to_voxels(shape, 24)
        assert torch.equal(b, c)
        assert (a == b).float().mean() > 0.995


def test_sdf_to_voxels_callable():
    vox = sdf_to_voxels(lambda p: p.norm(dim=-1) - 0.5, 16).numpy()
    assert np.array_equal(vox, np.linalg.norm(centers(16), axis=-1) < 0.5)


def _chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Chamfer distance (mean of the two mean nearest-neighbour distances), scipy cKDTree."""
    return 0.5 * (cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean())


POISSON_TOL = 1.5e-3  # Chamfer above the sampling floor, for 5,000 input points on a 64^3 grid


def _check_poisson(ref: trimesh.Trimesh, distance_to_surface) -> tuple[float, np.ndarray]:
    pts, nrm = sample_mesh_surface(ref, 5000, seed=0)
    rec = poisson_reconstruct(pts, nrm, resolution=64)
    assert rec.is_watertight
    n = 40000
    r1 = sample_mesh_surface(ref, n, seed=1)[0].double().numpy()
    r2 = sample_mesh_surface(ref, n, seed=2)[0].double().numpy()
    q = sample_mesh_surface(rec, n, seed=3)[0].double().numpy()
    floor = _chamfer(r1, r2)  # two samples of the *same* surface: the sampling floor
    cd = _chamfer(q, r1)
    assert cd < floor + POISSON_TOL, (cd, floor)
    # and directly against the analytic surface
    d = distance_to_surface(q)
    assert d.mean() < 3e-3 and d.max() < 0.015
    # power of the test: a sphere 1.5 % larger would fail the same tolerance
    return floor, r1


def test_poisson_sphere():
    ref = trimesh.creation.icosphere(6, radius=0.8)
    floor, r1 = _check_poisson(ref, lambda q: np.abs(np.linalg.norm(q, axis=1) - 0.8))
    bigger = trimesh.creation.icosphere(6, radius=0.8 * 1.015)
    wrong = sample_mesh_surface(bigger, 40000, seed=4)[0].double().numpy()
    assert _chamfer(wrong, r1) > floor + POISSON_TOL


def test_poisson_torus():
    ref = trimesh.creation.torus(0.6, 0.25, major_sections=256, minor_sections=128)

    def dist(q):
        radial = np.sqrt(q[:, 0] ** 2 + q[:, 1] ** 2) - 0.6
        return np.abs(np.sqrt(radial**2 + q[:, 2] ** 2) - 0.25)

    _check_poisson(ref, dist)
    # genus 1 is kept: Euler characteristic 0
    pts, nrm = sample_mesh_surface(ref, 5000, seed=0)
    assert poisson_reconstruct(pts, nrm, resolution=48).euler_number == 0


def test_poisson_errors():
    p = torch.rand(10, 3)
    with pytest.raises(ValueError, match="differ"):
        poisson_reconstruct(p, torch.rand(9, 3))
    with pytest.raises(ValueError, match="shape"):
        poisson_reconstruct(torch.rand(10, 2), torch.rand(10, 2))
    with pytest.raises(ValueError, match="resolution"):
        poisson_reconstruct(p, p, resolution=4)
    with pytest.raises(TypeError):
        poisson_reconstruct([1, 2, 3], p)
