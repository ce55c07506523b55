"""Single-view partial clouds (chapter 02): back-projection of a depth map and the split loader."""

from __future__ import annotations

import pytest
import torch

from course_lib.data import depth_to_points, make_shape, render
from course_lib.data.views import camera_rays
from course_lib.experiments import encoders as C


@pytest.fixture(scope="module")
def view():
    shape = make_shape("mug", 0)
    return shape, render(shape, azimuth=40.0, elevation=25.0, size=40)


def test_back_projected_points_lie_on_the_surface(view):
    # independent reference: the shape's exact SDF vanishes on the surface
    shape, r = view
    pts = depth_to_points(r["depth"], r["K"], r["Rt"])
    assert pts.shape == (int(r["silhouette"].sum()), 3)
    assert shape.sdf(pts).abs().max() < 2e-3


def test_back_projection_matches_the_ray_parameterisation(view):
    # a second route: origin + t * direction along each pixel's ray, with t = z / (d . forward)
    _, r = view
    H, W = r["depth"].shape
    o, d = camera_rays(r["K"], r["Rt"], (H, W))
    forward = r["Rt"][2, :3]
    hit = r["depth"] > 0
    t = r["depth"][hit] / (d[hit] @ forward)
    ref = o[hit] + t[:, None] * d[hit]
    torch.testing.assert_close(depth_to_points(r["depth"], r["K"], r["Rt"]), ref, atol=1e-5, rtol=1e-5)


def test_only_the_side_facing_the_camera_is_seen(view):
    shape, r = view
    pts = depth_to_points(r["depth"], r["K"], r["Rt"])
    cam = -(r["Rt"][:, :3].T @ r["Rt"][:, 3])
    _, g = shape.gradient(pts)
    facing = ((cam - pts) * g).sum(-1)  # outward normal towards the camera
    assert (facing > 0).float().mean() > 0.97
    full, nf = shape.sample_surface(4000)
    assert ((cam - full) * nf).sum(-1).lt(0).float().mean() > 0.3  # the full cloud holds a back side


def test_depth_to_points_rejects_bad_input(view):
    _, r = view
    with pytest.raises(ValueError, match="depth"):
        depth_to_points(r["depth"][None], r["K"], r["Rt"])
    with pytest.raises(ValueError, match="K must be"):
        depth_to_points(r["depth"], r["K"][:2], r["Rt"])


def test_partial_cloud_draws_without_replacement_when_it_can(view):
    _, r = view
    n_vis = int(r["silhouette"].sum())
    g = torch.Generator().manual_seed(0)
    few = C.partial_cloud(r["depth"], r["K"], r["Rt"], n_vis // 2, generator=g)
    assert few.shape == (n_vis // 2, 3)
    assert torch.unique(few, dim=0).shape[0] == n_vis // 2
    many = C.partial_cloud(r["depth"], r["K"], r["Rt"], 2 * n_vis, generator=g)
    assert many.shape == (2 * n_vis, 3)
    seen = depth_to_points(r["depth"], r["K"], r["Rt"])
    assert torch.cdist(many, seen, compute_mode="donot_use_mm_for_euclid_dist").amin(1).max() < 1e-5  # drawn with replacement from the visible pixels only
    assert torch.cdist(few, seen, compute_mode="donot_use_mm_for_euclid_dist").amin(1).max() < 1e-5
    with pytest.raises(ValueError, match="empty view"):
        C.partial_cloud(torch.zeros_like(r["depth"]), r["K"], r["Rt"], 10)


def test_load_partial_clouds_ci_split():
    pts, labels, visible = C.load_partial_clouds("test", 64, profile="ci", categories=("chair", "lamp"),
                                                 shapes_per_category=2, image_size=32)
    assert pts.shape == (4, 64, 3) and pts.dtype == torch.float32
    assert labels.shape == (4,) and visible.shape == (4,)
    assert (visible > 0).all()
    assert pts.norm(dim=-1).max() <= 1.0 + 1e-4  # shapes lie in the unit sphere
