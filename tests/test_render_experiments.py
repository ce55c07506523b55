"""course_lib.experiments.rendering: the chapter-09 recipes on tiny sizes."""

from __future__ import annotations

import pytest
import torch

from course_lib.experiments import rendering as R
from course_lib.geometry import icosphere
from course_lib.render import rasterize_silhouette, silhouette_iou

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_view_rigs_are_disjoint():
    fit = R.view_rig(4)
    held = R.heldout_rig(2, 4)
    assert [e for _, e in fit] == [30.0, -10.0, 30.0, -10.0]
    assert {tuple(v) for v in fit}.isdisjoint({tuple(v) for v in held})
    with pytest.raises(ValueError):
        R.view_rig(0)


def test_zero_gradient_demo():
    z = R.zero_gradient_demo(level=1, size=16, fd_steps=(1e-4,))
    assert z["hard_grad_norm"] == 0.0 and z["hard_grad_nonzero"] == 0
    assert z["soft_grad_norm"] > 0
    assert z["finite_differences"][1e-4]["pixels_changed"] == 0


def test_vertex_gradient_image_matches_finite_differences():
    v, f = icosphere(1)
    v = v * 0.7
    cams = R._cameras([(30.0, 20.0)], 16)
    g = R.vertex_gradient_image(v, f, cams, 16, 1e-3, vertex=3)
    n = v[3] / v[3].norm()
    h = 1e-3
    w1, w0 = v.clone(), v.clone()
    w1[3] += h * n
    w0[3] -= h * n
    fd = (rasterize_silhouette(w1, f, cams, 16, sigma=1e-3) - rasterize_silhouette(w0, f, cams, 16, sigma=1e-3))[0] / (2 * h)
    assert g.shape == (16, 16) and g.abs().max() > 0
    assert torch.allclose(g, fd, atol=2e-2 * float(fd.abs().max()))


def test_fit_improves_iou_on_a_synthetic_target():
    v, f = icosphere(2)
    cams = R._cameras(R.view_rig(3), 24)
    target = rasterize_silhouette(v * torch.tensor([0.8, 0.45, 0.6]), f, cams, 24)
    res = R.fit_silhouettes(target, cams, level=1, steps=25, sigma=1e-3, snapshot_every=10, lr=0.02)
    assert res.history["iou"][-1] > res.history["iou"][0] + 0.1
    assert res.snapshot_steps == [0, 10, 20, 25] and len(res.snapshots) == 4
    with pytest.raises(ValueError, match="cameras"):
        R.fit_silhouettes(target[:2], cams, steps=1)


def test_evaluate_fit_on_a_shape():
    from course_lib import data

    shape = data.make_shape("bottle", data.split_seeds("test", 1)[0])
    views = R.heldout_rig(1, 4)
    target, cams = R.target_views(shape, views, 16, cache=False)
    assert target.shape == (1, 16, 16) and 0 < float(target.mean()) < 1
    v, f = icosphere(1)
    ev = R.evaluate_fit(v * 0.4, f, shape, views, 16, n_points=200)
    assert 0.0 < ev["iou"] < 1.0 and ev["chamfer"] > 0
    assert abs(ev["iou"] - float(silhouette_iou(rasterize_silhouette(v * 0.4, f, cams, 16), target)[0])) < 1e-6


def test_raster_speed_runs_and_agrees():
    r = R.raster_speed(level=1, size=12, batch=2, repeat=1)
    assert r["max_abs_diff"] < 1e-5 and set(r["seconds"]) == {"culled", "dense"}


def test_smoke_ci():
    out = R.smoke("cpu", steps=1, profile="ci")
    assert out["seconds"] > 0 and out["loss"] == out["loss"]
