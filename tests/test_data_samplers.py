"""SDF / occupancy samplers and voxel grids of ShapeNet-lite shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib.data import make_shape, sample_occupancy, sample_sdf, voxel_centers, voxelize


def test_sample_sdf_values_and_mixture():
    shape = make_shape("chair", 0)
    pts, sdf = sample_sdf(shape, 4000, near_surface_fraction=0.75, sigmas=(0.01, 0.05))
    assert pts.shape == (4000, 3) and sdf.shape == (4000,)
    assert pts.dtype == torch.float32 and sdf.dtype == torch.float32
    assert pts.abs().max() <= 1.0
    torch.testing.assert_close(sdf, shape.sdf(pts))
    # about 75 % of the points are within 4 sigma_max of the surface; uniform points mostly are not
    near = (sdf.abs() < 0.2).float().mean().item()
    uni_pts, uni_sdf = sample_sdf(shape, 4000, near_surface_fraction=0.0)
    far_frac = (uni_sdf.abs() < 0.2).float().mean().item()
    assert near > 0.75 and near > far_frac + 0.3
    # uniform points: mean ~ 0, variance ~ 1/3 per axis
    np.testing.assert_allclose(uni_pts.mean(0).numpy(), 0.0, atol=0.05)
    np.testing.assert_allclose(uni_pts.var(0).numpy(), 1 / 3, atol=0.03)


def test_sample_sdf_two_scales():
    shape = make_shape("mug", 0)
    pts, sdf = sample_sdf(shape, 6000, near_surface_fraction=1.0, sigmas=(0.005, 0.05))
    a = sdf.abs()
    # half of the points at each scale: |sdf| of the small scale mostly < 3 * 0.005
    frac_small = (a < 0.015).float().mean().item()
    assert 0.45 < frac_small < 0.75
    assert (a < 0.2).all()


def test_sample_sdf_reproducible_and_errors():
    shape = make_shape("table", 1)
    a = sample_sdf(shape, 500)
    b = sample_sdf(make_shape("table", 1), 500)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = sample_sdf(shape, 500, seed=123)
    assert not torch.equal(a[0], c[0])
    with pytest.raises(ValueError, match="near_surface_fraction"):
        sample_sdf(shape, 10, near_surface_fraction=1.5)
    with pytest.raises(ValueError, match="n must"):
        sample_sdf(shape, 0)
    with pytest.raises(ValueError, match="sigmas"):
        sample_sdf(shape, 10, sigmas=(0.0,))
    with pytest.raises(TypeError, match="Shape"):
        sample_sdf("chair", 10)


def test_sample_occupancy():
    shape = make_shape("sofa", 0)
    pts, occ = sample_occupancy(shape, 3000)
    assert occ.dtype == torch.bool and occ.shape == (3000,)
    assert torch.equal(occ, shape.sdf(pts) < 0)
    assert 0.05 < occ.float().mean() < 0.95


def test_voxel_centers_order():
    c = voxel_centers(4)
    assert c.shape == (4, 4, 4, 3)
    np.testing.assert_allclose(c[0, 0, 0].numpy(), [-0.75, -0.75, -0.75])
    np.testing.assert_allclose(c[3, 1, 2].numpy(), [0.75, -0.25, 0.25])


def test_voxelize_matches_mesh_contains():
    shape = make_shape("car", 0)
    R = 12
    vox = voxelize(shape, R)
    assert vox.shape == (R, R, R) and vox.dtype == torch.bool
    # independent: cell centres computed here, inside test by trimesh on the shape's mesh
    t = -1 + (np.arange(R) + 0.5) * 2 / R
    centers = np.stack(np.meshgrid(t, t, t, indexing="ij"), -1).reshape(-1, 3)
    inside = shape.mesh(64).contains(centers).reshape(R, R, R)
    assert (inside == vox.numpy()).mean() > 0.99
    assert vox.sum() > 20
    # index order: the car is longest along x
    occupied = np.argwhere(vox.numpy())
    ext = occupied.max(0) - occupied.min(0)
    assert ext[0] == ext.max()


@pytest.mark.usefixtures("base_family")
def test_sdf_gradient_stats_against_finite_differences():
    from course_lib.data import sdf_gradient_stats

    chair = make_shape("chair", 2_000_000)
    st = sdf_gradient_stats(chair, n=3000, seed=1)
    # the chair is a union of exact box SDFs: a true distance inside and outside
    assert st["inside_unit_fraction"] == 1.0 and st["outside_unit_fraction"] == 1.0
    bottle = make_shape("bottle", 2_000_000)
    sb = sdf_gradient_stats(bottle, n=3000, seed=1)
    assert sb["outside_unit_fraction"] < 0.9 and sb["outside_min_norm"] < 0.9  # the ellipsoid bound
    # independent reference: central finite differences of the SDF at the same points
    g = torch.Generator().manual_seed(1)
    pts = ((torch.rand(3000, 3, generator=g, dtype=torch.float64) * 2 - 1) * 1.1).float()
    h = 1e-3
    eye = torch.eye(3) * h
    fd = torch.stack([(bottle.sdf(pts + e) - bottle.sdf(pts - e)) / (2 * h) for e in eye], -1).norm(dim=-1)
    f = bottle.sdf(pts)
    out = f > 0
    ref = float(((fd[out] - 1).abs() <= 0.01).float().mean())
    assert abs(ref - sb["outside_unit_fraction"]) < 0.02
