"""Rendered views: camera conventions and sphere tracing against trimesh ray casting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib.data import look_at, make_shape, render
from course_lib.data.views import camera_rays


def test_look_at_conventions():
    K, Rt = look_at(30.0, 20.0, 2.5, 60.0, (40, 60))
    R, t = Rt[:, :3].double(), Rt[:, 3].double()
    torch.testing.assert_close(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-6, rtol=0)
    c = -R.T @ t
    np.testing.assert_allclose(c.norm().item(), 2.5, rtol=1e-6)
    a, e = np.radians(30), np.radians(20)
    np.testing.assert_allclose(c.numpy(), 2.5 * np.array([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)]),
                               atol=1e-5)
    # the origin projects to the image centre; a point above it to a smaller row (y down)
    def project(x):
        xc = R @ torch.tensor(x, dtype=torch.float64) + t
        uvw = K.double() @ xc
        return (uvw[:2] / uvw[2]).numpy()

    np.testing.assert_allclose(project([0, 0, 0]), [30.0, 20.0], atol=1e-4)
    assert project([0, 0.3, 0])[1] < 20.0
    # focal length from the vertical field of view
    np.testing.assert_allclose(K[1, 1].item(), 20.0 / np.tan(np.radians(30)), rtol=1e-6)
    with pytest.raises(ValueError, match="elevation"):
        look_at(0, 90, 2.0, 40, 8)


@pytest.mark.parametrize("category", ["chair", "mug"])
def test_render_matches_mesh_ray_casting(category):
    shape = make_shape(category, 0)
    size = 32
    out = render(shape, azimuth=40.0, elevation=25.0, distance=2.6, fov=50.0, size=size)
    assert out["rgb"].shape == (3, size, size) and out["depth"].shape == (size, size)
    assert out["K"].shape == (3, 3) and out["Rt"].shape == (3, 4)
    sil = out["silhouette"].numpy() > 0.5
    # independent reference: trimesh ray casting against the shape's mesh, same rays
    mesh = shape.mesh(56)
    o, d = camera_rays(out["K"], out["Rt"], (size, size))
    o, d = o.reshape(-1, 3).double().numpy(), d.reshape(-1, 3).double().numpy()
    locs, ray_idx, _ = mesh.ray.intersects_location(o, d, multiple_hits=False)
    ref = np.zeros(size * size, bool)
    ref[ray_idx] = True
    assert (ref == sil.reshape(-1)).mean() > 0.97
    assert sil.sum() > 50
    # depth: camera-space z of the first hit, compared where both hit
    R, t = out["Rt"][:, :3].double().numpy(), out["Rt"][:, 3].double().numpy()
    z_ref = np.zeros(size * size)
    z_ref[ray_idx] = locs @ R[2] + t[2]
    both = ref & sil.reshape(-1)
    err = np.abs(z_ref[both] - out["depth"].numpy().reshape(-1)[both])
    assert np.median(err) < 0.01
    assert (out["depth"].numpy()[~sil] == 0).all()
    rgb = out["rgb"].numpy()
    assert rgb.min() >= 0 and rgb.max() <= 1
    assert (rgb[:, ~sil] == 1.0).all()


def test_render_unprojected_depth_lies_on_the_surface():
    shape = make_shape("table", 2)
    out = render(shape, azimuth=-60.0, elevation=30.0, distance=3.0, fov=45.0, size=32)
    K, Rt = out["K"].double(), out["Rt"].double()
    rows, cols = np.nonzero(out["silhouette"].numpy())
    z = out["depth"].double()[rows, cols]
    pix = torch.stack([torch.tensor(cols) + 0.5, torch.tensor(rows) + 0.5, torch.ones(len(rows))], 0).double()
    x_cam = (torch.linalg.inv(K) @ pix) * z
    x_world = (Rt[:, :3].T @ (x_cam - Rt[:, 3:])).T
    assert shape.sdf(x_world).abs().max() < 2e-3


def test_render_size_from_config(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    from course_lib import config

    out = render(make_shape("lamp", 0))
    s = config.size("data.image_size", "ci")
    assert out["rgb"].shape == (3, s, s)
