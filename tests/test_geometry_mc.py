"""Dense SDF grids, marching cubes and area-weighted mesh sampling against analytic references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from course_lib.geometry import grid_points, marching_cubes, sample_mesh_surface, sdf_grid


def sphere_sdf(r=0.7, c=(0.1, -0.05, 0.0)):
    c = torch.tensor(c)

    def f(p):
        return (p - c.to(p)).norm(dim=-1) - r

    return f


def test_grid_points_index_order():
    g = grid_points(5, bound=2.0)
    assert g.shape == (5, 5, 5, 3)
    assert g[0, 0, 0].tolist() == [-2, -2, -2]
    assert g[4, 0, 0].tolist() == [2, -2, -2]  # first index is x
    assert g[0, 4, 0].tolist() == [-2, 2, -2]
    assert g[0, 0, 4].tolist() == [-2, -2, 2]


def test_sdf_grid_values_and_chunks():
    f = sphere_sdf()
    g = sdf_grid(f, 17, bound=1.0, chunk=100)
    ref = f(grid_points(17, 1.0).reshape(-1, 3)).reshape(17, 17, 17)
    torch.testing.assert_close(g, ref)
    with pytest.raises(TypeError):
        sdf_grid(3.0, 8)
    with pytest.raises(ValueError):
        sdf_grid(f, 1)


def test_marching_cubes_sphere():
    r, c = 0.7, np.array([0.1, -0.05, 0.0])
    mesh = marching_cubes(sdf_grid(sphere_sdf(r, tuple(c)), 64), 0.0, 1.0)
    assert mesh.is_watertight
    np.testing.assert_allclose(mesh.volume, 4 / 3 * np.pi * r**3, rtol=0.01)
    np.testing.assert_allclose(np.linalg.norm(mesh.vertices - c, axis=1), r, atol=2e-3)
    # outward: face normals point away from the centre
    assert np.all(((mesh.triangles_center - c) * mesh.face_normals).sum(1) > 0)


def test_marching_cubes_index_order_and_bound():
    # a box elongated along x: the mesh must be elongated along x too
    def box(p):
        b = torch.tensor([0.8, 0.3, 0.15])
        d = p.abs() - b
        return d.clamp(min=0).norm(dim=-1) + d.max(-1).values.clamp(max=0)

    mesh = marching_cubes(sdf_grid(box, 41, bound=2.0), 0.0, bound=2.0)
    np.testing.assert_allclose(mesh.bounds[1], [0.8, 0.3, 0.15], atol=2 * 4.0 / 40)
    assert mesh.is_watertight and mesh.volume > 0


def test_marching_cubes_closes_surface_leaving_the_box():
    mesh = marching_cubes(sdf_grid(sphere_sdf(1.2, (0, 0, 0)), 32), 0.0, 1.0)
    assert mesh.is_watertight and mesh.volume > 0


def test_marching_cubes_errors():
    with pytest.raises(ValueError, match="not crossed"):
        marching_cubes(torch.ones(8, 8, 8), 0.0)
    with pytest.raises(ValueError, match="3D"):
        marching_cubes(torch.ones(8, 8), 0.0)
    g = torch.zeros(8, 8, 8)
    g[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        marching_cubes(g, 0.0)


def test_sample_mesh_surface_area_weighted():
    mesh = trimesh.creation.box(extents=(2.0, 1.0, 0.5))
    n = 40000
    pts, nrm = sample_mesh_surface(mesh, n, seed=0)
    assert pts.shape == (n, 3) and pts.dtype == torch.float32
    p = pts.double().numpy()
    # on the surface
    _, dist, _ = trimesh.proximity.closest_point(mesh, p[:2000])
    assert dist.max() < 1e-6
    # fraction of points on each pair of faces is proportional to the area
    areas = {0: 2 * 1.0 * 0.5, 1: 2 * 2.0 * 0.5, 2: 2 * 2.0 * 1.0}  # faces normal to x, y, z
    total = sum(areas.values())
    axis = np.abs(nrm.numpy()).argmax(1)
    for a, area in areas.items():
        frac = np.mean(axis == a)
        expect = area / total
        assert abs(frac - expect) < 4 * np.sqrt(expect * (1 - expect) / n)
    # normals are the outward face normals
    half = np.array([1.0, 0.5, 0.25])
    on_face = np.abs(np.abs(p) - half) < 1e-6
    np.testing.assert_allclose(np.abs(nrm.numpy())[on_face], 1.0, atol=1e-6)
    assert np.all((p * nrm.numpy()).sum(1) > 0)


def test_sample_mesh_surface_seed_and_errors():
    mesh = trimesh.creation.icosphere(2)
    a, _ = sample_mesh_surface(mesh, 100, seed=3)
    b, _ = sample_mesh_surface((mesh.vertices, mesh.faces), 100, seed=3)
    assert torch.equal(a, b)
    with pytest.raises(ValueError):
        sample_mesh_surface(mesh, 0)
    with pytest.raises(TypeError):
        sample_mesh_surface("mesh", 10)
