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


def test_a_stored_fit_is_the_fit_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("COURSE_RECOMPUTE", raising=False)
    v, f = icosphere(1)
    cams = R._cameras(R.view_rig(2), 16)
    target = rasterize_silhouette(v * 0.6, f, cams, 16)
    kw = {"level": 1, "steps": 4, "sigma": 1e-3, "snapshot_every": 2}
    live = R.fit_silhouettes(target, cams, **kw)
    first = R.fit_silhouettes(target, cams, store=True, **kw)
    again = R.fit_silhouettes(target, cams, store=True, **kw)
    assert (live.stored, first.stored, again.stored) == (False, False, True)
    assert torch.equal(again.verts, live.verts) and torch.equal(first.verts, live.verts)
    assert again.history == live.history and again.snapshot_steps == live.snapshot_steps
    other = R.fit_silhouettes(target, cams, store=True, **{**kw, "steps": 5})
    assert not other.stored  # another setting is another stored fit


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


# --- protocol 2: what the benchmark reports and how it compares ------------------------------------

def test_zero_gradient_demo_a_large_step_flips_pixels():
    z = R.zero_gradient_demo(level=1, size=16, fd_steps=(1e-4, 0.1))
    big = z["finite_differences"][0.1]
    assert big["pixels_changed"] > 0 and big["max_abs_slope"] > 0
    assert z["finite_differences"][1e-4]["pixels_changed"] == 0


def test_soft_iou_bias_demo_rewards_a_hidden_layer():
    b = R.soft_iou_bias_demo(level=2, size=24, n_views=3)
    assert 0.5 < b["soft_iou_exact"] < 1.0  # the exact shape does not score 1
    assert b["hard_iou_layered"] == 1.0  # the inner copy is hidden: the hard silhouette is unchanged
    assert b["soft_iou_layered"] > b["soft_iou_exact"]  # ... but the loss pays for it
    assert b["faces"] == 320 and b["faces_coarser"] == 80
    with pytest.raises(ValueError, match="level"):
        R.soft_iou_bias_demo(level=0)
    with pytest.raises(ValueError, match="inner"):
        R.soft_iou_bias_demo(level=1, inner=1.2)


def test_soft_iou_bias_demo_matches_a_hand_computation():
    from course_lib.render import silhouette_iou_loss

    v, f = icosphere(1, radius=0.6)
    cams = R._cameras(R.view_rig(2), 16)
    hard = rasterize_silhouette(v, f, cams, 16)
    soft = rasterize_silhouette(v, f, cams, 16, sigma=1e-3, cull_eps=1e-4)
    expected = 1.0 - float(silhouette_iou_loss(soft, hard))
    b = R.soft_iou_bias_demo(level=1, size=16, n_views=2, sigma=1e-3)
    assert b["soft_iou_exact"] == pytest.approx(expected, abs=1e-6)


def test_score_fit_names_soft_and_hard_ious():
    from course_lib import data

    shape = data.make_shape("bottle", data.split_seeds("val", 1)[0])
    fit_views, held = R.view_rig(2), R.heldout_rig(1, 2)
    target, cams = R.target_views(shape, fit_views, 16, cache=False)
    res = R.fit_silhouettes(target, cams, level=1, steps=3, sigma=1e-3)
    sc = R.score_fit(res, shape, fit_views, held, 16, n_points=200)
    assert sc["soft_iou_fit_views"] == res.history["iou"][-1]
    hard = rasterize_silhouette(res.verts[None], res.faces, cams, 16)
    assert sc["hard_iou_fit_views"] == pytest.approx(float(silhouette_iou(hard, target).mean()), abs=1e-6)
    ev = R.evaluate_fit(res.verts, res.faces, shape, held, 16, n_points=200)
    assert sc["heldout_iou"] == ev["iou"] and sc["chamfer"] == ev["chamfer"]
    res.history["iou"] = []
    with pytest.raises(ValueError, match="at least one step"):
        R.score_fit(res, shape, fit_views, held, 16)


def test_paired_shapes_order_and_guard():
    from course_lib.data import TestSplitReadError, no_test_reads

    shapes = R.paired_shapes("val", ["mug", "car"], 3)  # 3 shapes over 2 categories: 2 seeds each
    assert [(s.category, s.seed) for s in shapes] == [("mug", 1_000_000), ("mug", 1_000_001),
                                                       ("car", 1_000_000), ("car", 1_000_001)]
    assert len(R.paired_shapes("val", ["mug", "car"], 4)) == 4
    with no_test_reads("choosing sigma"):
        with pytest.raises(TestSplitReadError):
            R.paired_shapes("test", ["mug"], 1)
    with pytest.raises(ValueError):
        R.paired_shapes("val", ["mug"], 0)


def test_fit_budget_counts_the_template():
    b = R.fit_budget(150, 8, [1.0, 3.0], level=3, sigma=1e-4)
    assert b == {"steps": 150, "examples": 1200, "seconds": 2.0, "params": 3 * 642, "views": 8, "sigma": 1e-4}


def test_sigma_candidates_add_the_default_and_the_annealed_schedule():
    c = R.sigma_candidates((1e-3, 1e-5), 1e-4, 1e-3)
    assert list(c) == ["fixed 0.001", "fixed 0.0001", "fixed 1e-05", "annealed 0.001 -> 0.0001"]
    assert c["annealed 0.001 -> 0.0001"] == {"sigma": 1e-4, "sigma_start": 1e-3}
    assert c["fixed 1e-05"] == {"sigma": 1e-5, "sigma_start": None}
    assert "annealed" not in " ".join(R.sigma_candidates((1e-3,), 1e-4, None))
    with pytest.raises(ValueError, match="> 0"):
        R.sigma_candidates((0.0,), 1e-4, None)


def _rows(names, n=20, **shift):
    """One row per shape per setting: IoU 0.8 + small noise + shift[name], CD 5 - 10 * shift."""
    g = torch.Generator().manual_seed(0)
    noise = (torch.rand(n, generator=g) * 0.01).tolist()
    return {name: [{"shape": f"mug/{i}", "heldout_iou": 0.8 + noise[i] + shift.get(name, 0.0),
                    "chamfer": 5.0 + noise[i] - 10 * shift.get(name, 0.0)} for i in range(n)] for name in names}


def test_sigma_claims_verdicts_and_stable_ids():
    c = R.sigma_candidates((1e-3, 1e-4, 1e-5), 1e-4, 1e-3)
    budgets = {n: R.fit_budget(10, 4, [1.0], 2) for n in c}
    # the default is ahead of the small sigma, behind the large one, level with the annealed schedule
    rows = _rows(c, **{"fixed 1e-05": -0.05, "fixed 0.001": 0.05})
    out = {r["id"]: r for r in R.sigma_claims(rows, c, 1e-4, budgets)}
    assert set(out) == {"sigma_small_heldout_iou", "sigma_small_chamfer", "sigma_large_heldout_iou",
                        "sigma_large_chamfer", "annealed_heldout_iou", "annealed_chamfer"}
    assert out["sigma_small_heldout_iou"]["verdict"] == "ahead"
    assert out["sigma_small_heldout_iou"]["difference"] == pytest.approx(0.05)
    assert out["sigma_small_chamfer"]["verdict"] == "ahead"  # CD lower for the default
    assert out["sigma_large_heldout_iou"]["verdict"] == "behind"
    assert out["annealed_heldout_iou"]["verdict"] == "not separated" and out["annealed_heldout_iou"]["n"] == 20
    assert out["annealed_heldout_iou"]["a"] == "annealed 0.001 -> 0.0001"
    assert all(r["unit"] == "shapes" and r["selected_on"] == "none" for r in out.values())
    assert "val shapes" in out["sigma_small_heldout_iou"]["text"]


def test_sigma_claims_refuse_unpaired_or_too_few_shapes():
    c = R.sigma_candidates((1e-3,), 1e-4, None)
    budgets = {n: R.fit_budget(10, 4, [1.0], 2) for n in c}
    rows = _rows(c)
    rows["fixed 0.001"] = rows["fixed 0.001"][::-1]
    with pytest.raises(ValueError, match="same shapes"):
        R.sigma_claims(rows, c, 1e-4, budgets)
    with pytest.raises(ValueError, match="too few"):
        R.sigma_claims(_rows(c, n=19), c, 1e-4, budgets)
    with pytest.raises(ValueError, match="default"):
        R.sigma_claims({"fixed 0.001": rows["fixed 0.0001"]}, c, 1e-4, budgets)


def test_regulariser_claims():
    names = ("IoU + Laplacian + flatten", "IoU only")
    rows = _rows(names, **{"IoU only": 0.02})
    for i, r in enumerate(rows["IoU + Laplacian + flatten"]):
        r["flatten"] = 5.0 + i % 3
    for i, r in enumerate(rows["IoU only"]):
        r["flatten"] = 400.0 + i
    budgets = {n: R.fit_budget(10, 1, [1.0], 2) for n in names}
    out = {r["id"]: r for r in R.regulariser_claims(rows, budgets)}
    assert out["regularised_flatten"]["verdict"] == "ahead"
    assert out["regularised_heldout_iou"]["verdict"] == "behind"
    assert out["regularised_chamfer"]["verdict"] == "behind"


def test_goal_records_from_the_parts():
    parts = {"agreement": {"rows": [{"iou_vs_ray_casting": 1.0}, {"iou_vs_ray_casting": 0.998}]},
             "speed": {"cpu": {"max_abs_diff": 1e-7}},
             "multi": {"rows": [{"heldout_iou": 0.95}, {"heldout_iou": 0.86}]}}
    g = {r["id"]: r for r in R.goal_records(parts)}
    assert g["ray_casting_iou"]["value"] == 0.998 and not g["ray_casting_iou"]["met"]
    assert g["culled_vs_dense"]["met"]
    assert g["multi_view_heldout_iou"]["value"] == pytest.approx(0.905) and g["multi_view_heldout_iou"]["met"]
    parts["multi"]["rows"][0]["heldout_iou"] = 0.93
    assert not {r["id"]: r for r in R.goal_records(parts)}["multi_view_heldout_iou"]["met"]
    assert R.goal_records({}) == []


def test_renderer_settings_put_the_cull_rule_in_pytorch3d_terms():
    import math

    s = R.renderer_settings(1e-4, 1e-4, 64)
    # PyTorch3D's silhouette tutorial: blur_radius = log(1 / 1e-4 - 1) * sigma
    assert math.isclose(s["pytorch3d_blur_radius"], math.log(1.0 / 1e-4 - 1.0) * 1e-4)
    # at d^2 = blur_radius a face's coverage sigmoid(-d^2 / sigma) is exactly the cull threshold
    assert math.isclose(1.0 / (1.0 + math.exp(s["pytorch3d_blur_radius"] / s["sigma"])), 1e-4, rel_tol=1e-9)
    assert s["softras_sigma_val"] == s["pytorch3d_sigma"] == 1e-4 and s["softras_dist_eps"] == 1e-4
    assert math.isclose(s["band_half_width_px"], math.sqrt(s["pytorch3d_blur_radius"]) * 32)
    with pytest.raises(ValueError, match="cull_eps"):
        R.renderer_settings(1e-4, 0.7, 64)


def test_to_pytorch3d_view_turns_the_axes_as_pytorch3d_sees_them():
    """PyTorch3D's view axes: +X left, +Y up, +Z into the scene. A point the course's camera sees right of the
    image centre must get X_view < 0, a point above the centre Y_view > 0, and depth is unchanged."""
    from course_lib.render import look_at_cameras, project

    cams = look_at_cameras([30.0, 200.0], [20.0, -35.0], size=32)
    pts = torch.randn(2, 50, 3) * 0.5
    uvz = project(pts, cams)
    Rm, T = R.to_pytorch3d_view(cams)
    view = pts @ Rm + T[:, None]
    right = uvz[..., 0] > 16.0
    above = uvz[..., 1] < 16.0
    assert right.any() and (~right).any() and above.any() and (~above).any()
    assert ((view[..., 0] < 0) == right).all() and ((view[..., 1] > 0) == above).all()
    assert torch.allclose(view[..., 2], uvz[..., 2], atol=1e-5)
    assert torch.allclose(Rm @ Rm.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-5)  # still a rotation
    assert torch.allclose(torch.linalg.det(Rm), torch.ones(2), atol=1e-5)


def test_look_at_torch_is_data_look_at_and_differentiable():
    from course_lib.data.views import look_at

    az = torch.tensor([30.0, 200.0], requires_grad=True)
    el = torch.tensor([20.0, -35.0], requires_grad=True)
    cams = R.look_at_torch(az, el, size=32)
    for i, (a, e) in enumerate([(30.0, 20.0), (200.0, -35.0)]):
        K, Rt = look_at(a, e, 2.6, 50.0, 32)  # the numpy route
        assert torch.allclose(cams.K[i], K, atol=1e-5) and torch.allclose(cams.Rt[i], Rt, atol=1e-5)
    cams.Rt.sum().backward()
    assert az.grad is not None and az.grad.abs().sum() > 0 and el.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="azimuth and elevation"):
        R.look_at_torch(torch.tensor(30.0), torch.tensor(20.0))


def test_camera_pose_fit_finds_a_nearby_pose_and_the_landscape_is_zero_there():
    from course_lib import data

    m = data.make_shape("mug", data.split_seeds("test", 1)[0]).mesh(12)
    v, f = torch.tensor(m.vertices, dtype=torch.float32), torch.tensor(m.faces, dtype=torch.long)
    true = (40.0, 25.0)
    target = rasterize_silhouette(v[None], f, R.look_at_torch(torch.tensor([true[0]]), torch.tensor([true[1]]),
                                                              size=24), 24)[0]
    land = R.pose_landscape(v, f, target, [0.0, 20.0, 40.0, 60.0, 220.0], true[1], size=24)
    assert float(land[2]) == 0.0 and (land[[0, 1, 3, 4]] > 0.02).all()
    fit = R.fit_camera_pose(v, f, target, (52.0, 18.0), size=24, steps=40)
    assert abs(R.wrap_degrees(fit["azimuth"] - true[0])) < 6 and abs(fit["elevation"] - true[1]) < 6
    assert fit["hard_loss"] < fit["history"]["loss"][0] and len(fit["history"]["azimuth"]) == 40


def test_seam_levels_bound_and_back_faces():
    """Analytic floor: where two faces meet, A = 1 - s(x) s(-x) >= 3/4 (s the sigmoid), reached on the edge;
    back faces only add occluders, so the closed mesh is never darker than its front sheet."""
    from course_lib.render import look_at_cameras

    v, f = icosphere(2)
    v = v * 0.6
    cam = look_at_cameras(30.0, 20.0, R.CAMERA["distance"], R.CAMERA["fov"], 48)
    for sigma in (1e-3, 1e-5):
        s = R.seam_levels(v, f, cam, 48, sigma)
        assert 0.75 - 1e-6 <= s["front_only"] <= s["closed"] <= 1.0
        assert 0 < s["front_faces"] < f.shape[0] and s["interior_pixels"] > 0
    sharp = R.seam_levels(v, f, cam, 48, 1e-6)
    assert sharp["front_only"] == pytest.approx(0.75, abs=0.02)  # pixel centres near the sheet's edges
    assert sharp["closed"] > 0.9  # the back faces behind every seam
    with pytest.raises(ValueError, match="one camera"):
        R.seam_levels(v, f, look_at_cameras(torch.tensor([0.0, 90.0]), torch.tensor([0.0, 0.0]), 2.6, 50.0, 48),
                      48, 1e-4)
    with pytest.raises(ValueError, match="inside the silhouette"):
        R.seam_levels(v * 0.01, f, cam, 48, 1e-4)


def test_local_minima_against_scipy():
    from scipy.signal import argrelmin

    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        v = torch.rand(40, generator=g).numpy()
        assert R.local_minima(v) == [int(i) for i in argrelmin(v)[0]]
        assert R.local_minima(v, circular=True) == [int(i) for i in argrelmin(v, mode="wrap")[0]]
    assert R.local_minima([1.0, 1.0, 1.0]) == []  # plateaus are not strict minima


def test_camera_pose_study_small():
    v, f = icosphere(1, radius=0.5)
    v = v * torch.tensor([1.0, 0.6, 0.3])  # an ellipsoid: the azimuth matters
    st = R.camera_pose_study(v, f, (40.0, 20.0), size=24, steps=0, n_starts=1, tolerance=25.0, grid_step=30.0)
    assert st["target"].shape == (24, 24)
    assert len(st["runs"]) == 1 and st["runs"][0]["start"] == (40.0, 5.0)  # one start: the true azimuth
    assert st["runs"][0]["azimuth"] == pytest.approx(40.0) and len(st["found"]) == 1  # 0 steps: ends where it began
    assert len(st["azimuths"]) == 12 and st["landscape"].shape == (12,)
    assert st["minima"] == [st["azimuths"][i] for i in R.local_minima(st["landscape"], circular=True)]
    far = R.camera_pose_study(v, f, (40.0, 20.0), size=24, steps=0, n_starts=2, tolerance=5.0, grid_step=30.0)
    assert far["found"] == []  # starts at -50 and 130 degrees, and no step
    with pytest.raises(ValueError, match="n_starts"):
        R.camera_pose_study(v, f, (40.0, 20.0), size=24, steps=1, n_starts=0)


def test_fit_shaded_without_colour_is_the_silhouette_fit_and_colour_pulls():
    from course_lib.data import make_shape, render, split_seeds

    shape = make_shape("mug", split_seeds("train", 1)[0])
    views = R.view_rig(2)
    rgb, sil, cams = R.shaded_views(shape, views, 24)
    ref = render(shape, azimuth=views[1][0], elevation=views[1][1], distance=R.CAMERA["distance"],
                 fov=R.CAMERA["fov"], size=24, color="uniform")
    assert torch.equal(rgb[1], ref["rgb"]) and torch.equal(sil[1], ref["silhouette"])
    kw = {"level": 1, "steps": 6, "lr": 0.02, "sigma": 1e-4, "lambda_lap": 0.03, "lambda_flat": 3e-4,
          "cull_eps": 1e-4}
    a = R.fit_shaded(rgb, sil, cams, lambda_rgb=0.0, **kw)
    b = R.fit_silhouettes(sil, cams, **kw)
    assert torch.allclose(a.verts, b.verts, atol=1e-6)  # the same loop, the same steps
    c = R.fit_shaded(rgb, sil, cams, lambda_rgb=5.0, **kw)
    assert not torch.allclose(c.verts, a.verts) and c.history["rgb"][-1] < c.history["rgb"][0]
    with pytest.raises(ValueError, match="target_rgb"):
        R.fit_shaded(rgb[:, :1], sil, cams)
    with pytest.raises(TypeError, match="Shape"):
        R.shaded_views("mug", views, 24)
