"""Chapter 03 experiment layer: IoU sweep, marching cubes of grids, Chamfer, the cost curve (small sizes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from course_lib.experiments import voxels as V

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ball(R: int, r: float = 0.7) -> torch.Tensor:
    return V._ball(R, r)


def test_iou_sweep_against_brute_force():
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(3, 6, 6, 6, generator=g)
    target = (torch.rand(3, 6, 6, 6, generator=g) > 0.6).float()
    sweep = V.iou_sweep(probs, target, thresholds=(0.2, 0.4, 0.9))
    for t, got in sweep.items():
        p, q = probs.numpy() >= t, target.numpy() > 0.5
        ref = np.mean([(p[i] & q[i]).sum() / (p[i] | q[i]).sum() for i in range(3)])
        assert got == pytest.approx(ref)
    assert V.best_threshold({0.3: 0.5, 0.4: 0.7, 0.5: 0.6}) == (0.4, 0.7)


def test_iou_sweep_uses_greater_or_equal_like_r2n2():
    probs = torch.full((1, 2, 2, 2), 0.4)
    target = torch.ones(1, 2, 2, 2)
    assert V.iou_sweep(probs, target, (0.4,))[0.4] == 1.0


def test_iou_sweep_errors():
    with pytest.raises(ValueError, match="sigmoid"):
        V.iou_sweep(torch.randn(1, 2, 2, 2) * 5, torch.zeros(1, 2, 2, 2), (0.5,))
    with pytest.raises(ValueError, match=r"\(S, R, R, R\)"):
        V.iou_sweep(torch.rand(2, 2, 2), torch.zeros(2, 2, 2), (0.5,))


def test_grid_to_mesh_of_a_ball():
    R, r = 32, 0.7
    mesh = V.grid_to_mesh(ball(R, r).float())
    assert mesh.is_watertight and mesh.volume > 0
    # the 0.5 level of a binary grid lies half-way between cell centres: the volume is close to the ball's
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * r**3, rel=0.05)
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert np.all(np.abs(radii - r) < 2 * 2 / R)
    assert V.grid_to_mesh(torch.zeros(8, 8, 8)) is None and V.grid_to_mesh(torch.ones(8, 8, 8)) is None
    with pytest.raises(ValueError, match="cubic"):
        V.grid_to_mesh(torch.zeros(4, 4, 5))


def test_grid_to_mesh_centres_match_voxelize_convention():
    # one full cell [i, j, k] at the corner: its mesh is centred on the cell centre
    R = 8
    g = torch.zeros(R, R, R)
    g[1, 2, 5] = 1
    mesh = V.grid_to_mesh(g)
    centre = -1 + (torch.tensor([1, 2, 5]) + 0.5) * 2 / R
    np.testing.assert_allclose(mesh.vertices.mean(0), centre.numpy(), atol=1e-6)


def test_voxel_chamfer_decreases_with_resolution_and_reports_empty():
    r = 0.7
    rng = np.random.default_rng(0)
    d = rng.normal(size=(2000, 3))
    pts = torch.tensor(r * d / np.linalg.norm(d, axis=1, keepdims=True), dtype=torch.float32)
    cds = [V.voxel_chamfer(ball(R, r).float()[None], pts[None])["cd"] for R in (8, 32)]
    assert cds[1] < cds[0]
    out = V.voxel_chamfer(torch.stack([torch.zeros(8, 8, 8), ball(8, r).float()]), torch.stack([pts, pts]))
    assert out["empty"] == 1 and math.isnan(out["per_shape"][0]) and out["cd"] == pytest.approx(cds[0], rel=0.2)


def test_surface_fraction_against_scipy_erosion():
    occ = ball(16).numpy()
    er = ndimage.binary_erosion(np.pad(occ, 1), structure=ndimage.generate_binary_structure(3, 1))[1:-1, 1:-1, 1:-1]
    assert V.surface_fraction(torch.from_numpy(occ)) == pytest.approx((occ & ~er).sum() / occ.size)
    # a fixed shape: the fraction of surface cells halves when R doubles
    fr = [V.surface_fraction(R) for R in (16, 32, 64)]
    assert V.fit_exponent([16, 32, 64], fr) == pytest.approx(-1.0, abs=0.1)
    # a full grid: only the border counts as surface
    assert V.surface_fraction(torch.ones(4, 4, 4)) == pytest.approx(1 - 8 / 64)


def test_fit_exponent():
    xs = [16, 32, 64, 128]
    assert V.fit_exponent(xs, [3 * x**3 for x in xs]) == pytest.approx(3.0)
    assert V.fit_exponent(xs, [1, float("nan"), 16, 64]) == pytest.approx(2.0)
    assert math.isnan(V.fit_exponent([1], [1]))


def test_activation_bytes_counts_leaf_outputs():
    m = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten())
    x = torch.zeros(3, 1, 4, 4, 4)
    assert V.activation_bytes(m, x) == 3 * (2 * 64 * 4) * 3
    assert V.grid_bytes(32) == 32**3 * 4 and V.grid_bytes(8, channels=2, bytes_per_value=1) == 1024


def test_cost_curve_small_and_skips_past_the_memory_limit(monkeypatch):
    from course_lib.experiments import point_sets

    # the CPU peak (resident memory) is noisy below ~1 MB: make it unknown, the skip then uses the activations
    monkeypatch.setattr(point_sets, "peak_memory", lambda fn, device=None: (fn(), float("nan")))
    rows = V.cost_curve((4, 8, 16), channels=2, latent_dim=4, batch_size=1, repeat=1, max_bytes=50_000)
    assert [r["resolution"] for r in rows] == [4, 8, 16]
    assert rows[0]["skipped"] == "" and rows[0]["params"] > 0 and rows[0]["seconds"] > 0
    assert rows[1]["activation_bytes"] > 4 * rows[0]["activation_bytes"]
    assert 16 * rows[1]["activation_bytes"] > 50_000 > 16 * rows[0]["activation_bytes"]
    assert "limit" in rows[2]["skipped"] and math.isnan(rows[2]["seconds"])
    assert rows[1]["grid_bytes"] == 8 * rows[0]["grid_bytes"]
    # a measured peak larger than the activations is what the next resolution is predicted from
    monkeypatch.setattr(point_sets, "peak_memory", lambda fn, device=None: (fn(), 1e6))
    rows = V.cost_curve((4, 8), channels=2, latent_dim=4, batch_size=1, repeat=1, max_bytes=7e6)
    assert rows[0]["peak_bytes"] == 1e6 and "limit" in rows[1]["skipped"]


def test_grid_batches_cover_every_item_and_jitter_moves_input_with_target():
    grids = torch.zeros(5, 6, 6, 6)
    for i in range(5):
        grids[i, i, 0, 0] = 1
    data = {"voxels": grids, "label": torch.arange(5), "rgb": torch.rand(5, 3, 4, 4)}
    b = V.grid_batches(data, "voxnet", 2, seed=0)
    seen = torch.cat([x["label"] for x in b])
    assert sorted(seen.tolist()) == list(range(5)) and len(b) == 3
    batch = next(iter(V.grid_batches(data, "ae", 5, seed=1, jitter=1)))
    assert torch.equal(batch["input"], batch["target"])
    assert batch["input"].sum() == 5  # shifts (rolls) keep every voxel
    assert not torch.equal(batch["input"], grids[batch["index"]])  # some grid moved
    sv = next(iter(V.grid_batches(data, "svr", 5, shuffle=False)))
    assert torch.equal(sv["input"], data["rgb"]) and torch.equal(sv["target"], grids)
    # with several views: one of each shape's views per batch
    data["views"] = torch.stack([data["rgb"], data["rgb"] + 1, data["rgb"] + 2], dim=1)
    seen = set()
    for _ in range(5):
        sv = next(iter(V.grid_batches(data, "svr", 5, shuffle=False, seed=_)))
        assert sv["input"].shape == (5, 3, 4, 4)
        offset = (sv["input"] - data["rgb"]).mean(dim=(1, 2, 3))
        assert torch.allclose(offset, offset.round()) and set(offset.round().tolist()) <= {0.0, 1.0, 2.0}
        seen |= set(offset.round().tolist())
    assert len(seen) > 1
    with pytest.raises(ValueError, match="task"):
        V.grid_batches(data, "points", 2)
    with pytest.raises(ValueError, match="image inputs"):
        V.grid_batches(data, "svr", 2, jitter=1)


def test_jitter_grids_is_a_shift():
    g = torch.zeros(1, 8, 8, 8)
    g[0, 3, 3, 3] = 1
    out = V.jitter_grids(g, 2, torch.Generator().manual_seed(0))
    (i, j, k), = out[0].nonzero().tolist()
    assert max(abs(i - 3), abs(j - 3), abs(k - 3)) <= 2 and out.sum() == 1
    assert V.jitter_grids(g, 0) is g


def test_smoke_hook_ci():
    out = V.smoke("cpu", steps=1, profile="ci")
    assert math.isfinite(out["ae_loss"]) and math.isfinite(out["svr_loss"]) and math.isfinite(out["voxnet_loss"])
    assert out["seconds"] > 0 and out["ae_params"] > 0


def test_checkpoint_path_depends_on_the_data():
    a = V.checkpoint_path("ae", "ci")
    data = {"voxels": torch.zeros(3, 16, 16, 16), "seed": torch.tensor([1, 2, 3])}
    b = V.checkpoint_path("ae", "ci", data)
    assert a != b and a.name.startswith("ch03_ae-ci") and b.name.startswith("ch03_ae-ci")


def test_resample_grid():
    g = ball(8).float()
    torch.testing.assert_close(V.resample_grid(g, 8), g)
    up = V.resample_grid(g[None], 16)
    assert up.shape == (1, 16, 16, 16) and float(up.min()) >= 0 and float(up.max()) <= 1
    iou = ((up[0] > 0.5) & ball(16)).sum() / ((up[0] > 0.5) | ball(16)).sum()
    assert iou > 0.8


def test_voxel_loss_and_classification_loss():
    from course_lib.models.voxels import VoxelAutoEncoder, VoxNet

    ae = VoxelAutoEncoder(8, 4, 2, 2)
    batch = {"input": ball(8).float()[None].repeat(2, 1, 1, 1)}
    batch["target"] = batch["input"]
    out = V.voxel_loss(3.0)(ae, batch)
    assert out["loss"].requires_grad and 0 <= float(out["iou"]) <= 1
    net = VoxNet(3, resolution=16, filters=2, hidden=4)
    out = V.classification_loss(net, {"input": torch.zeros(2, 16, 16, 16), "label": torch.tensor([0, 2])})
    assert out["loss"].requires_grad and float(out["acc"]) in (0.0, 0.5, 1.0)


def test_pos_weight_for():
    grids = torch.zeros(2, 10, 10, 10)
    grids[:, :1] = 1  # 10 % full
    assert V.pos_weight_for(grids, power=1.0) == pytest.approx(9.0)
    assert V.pos_weight_for(grids, power=0.5) == pytest.approx(3.0)


def test_evaluate_reconstruction_and_floor():
    r = 0.6
    rng = np.random.default_rng(1)
    d = rng.normal(size=(500, 3))
    pts = torch.tensor(r * d / np.linalg.norm(d, axis=1, keepdims=True), dtype=torch.float32)
    gt = torch.stack([ball(16, r).float(), ball(16, 0.4).float()])
    data = {"voxels": gt, "label": torch.tensor([0, 1]), "categories": ("a", "b"),
            "target_points": torch.stack([pts, pts * 0.4 / r])}
    out = V.evaluate_reconstruction(gt.clone(), data, thresholds=(0.5,))
    assert out["iou@0.4"] == 1.0 and out["per_category"] == {"a": 1.0, "b": 1.0} and out["cd_empty"] == 0
    floor = V.representation_floor(data)
    assert floor["cd"] == pytest.approx(out["cd"]) and floor["resolution"] == 16
    half = gt.clone()
    half[1] = 0
    out = V.evaluate_reconstruction(half, data, thresholds=(0.5,), chamfer=False)
    assert out["per_category"]["b"] == 0.0 and out["iou@level"] == pytest.approx(0.5) and "cd" not in out


def test_resolution_stats():
    from course_lib.data import make_shape, voxelize

    shape = make_shape("mug", 1000)
    st = V.resolution_stats(shape, 8, reference_resolution=16)
    assert st["voxels"].shape == (8, 8, 8) and st["float32_bytes"] == 2048 and st["bit_bytes"] == 64
    assert torch.equal(st["voxels"], voxelize(shape, 8).float())
    fine = V.resolution_stats(shape, 16, reference_resolution=16)
    assert fine["iou_vs_fine"] == 1.0 and st["iou_vs_fine"] < 1.0
    # a perfect prediction at another resolution, resampled
    st = V.resolution_stats(shape, 16, voxelize(shape, 16).float(), reference_resolution=16)
    assert st["iou_prediction"] == 1.0 and st["prediction"].shape == (16, 16, 16)


def test_start_at_prior():
    from course_lib.models.voxels import VoxelAutoEncoder, voxel_single_view

    grids = torch.zeros(2, 10, 10, 10)
    grids[:, :1] = 1  # f = 0.1
    ae = V.start_at_prior(VoxelAutoEncoder(8, 4, 2, 2), grids, 4.0)
    assert float(torch.sigmoid(ae.decoder.out.bias.detach())) == pytest.approx(0.4 / 1.3)
    sv = V.start_at_prior(voxel_single_view(8, 4, 4, decoder_channels=2), grids)
    assert float(torch.sigmoid(sv.decoder.out.bias.detach())) == pytest.approx(0.1)
    with pytest.raises(TypeError, match="VoxelDecoder"):
        V.start_at_prior(torch.nn.Linear(2, 2), grids)


# --- protocol 2 helpers (issue #32) ------------------------------------------------------------

def test_per_shape_iou_against_brute_force_and_its_mean_is_the_sweep():
    g = torch.Generator().manual_seed(1)
    probs = torch.rand(4, 5, 5, 5, generator=g)
    target = (torch.rand(4, 5, 5, 5, generator=g) > 0.5).float()
    got = V.per_shape_iou(probs, target, 0.6)
    p, q = probs.numpy() >= 0.6, target.numpy() > 0.5
    ref = [(p[i] & q[i]).sum() / (p[i] | q[i]).sum() for i in range(4)]
    assert got.shape == (4,) and got.tolist() == pytest.approx(ref)
    assert float(got.mean()) == pytest.approx(V.iou_sweep(probs, target, (0.6,))[0.6])
    with pytest.raises(ValueError, match=r"\(S, R, R, R\)"):
        V.per_shape_iou(probs[0], target[0], 0.5)


def test_select_threshold_records_the_val_sweep():
    g = torch.Generator().manual_seed(2)
    target = (torch.rand(3, 6, 6, 6, generator=g) > 0.7).float()
    # over-confident probabilities: full voxels near 0.8, empty ones near 0.55 -> the best cut lies above 0.5
    probs = torch.where(target > 0.5, torch.full_like(target, 0.8), torch.full_like(target, 0.55))
    level, rec = V.select_threshold("ae_threshold", probs, target, thresholds=(0.3, 0.5, 0.7, 0.9))
    assert level == 0.7 and rec["chosen"] == "0.7" and rec["selected_on"] == "val"
    frac = float(target.mean((1, 2, 3)).mean())  # below 0.55 every voxel is predicted full: IoU = occupied fraction
    assert rec["candidates"] == pytest.approx({"0.3": frac, "0.5": frac, "0.7": 1.0, "0.9": 0.0})
    assert (level, 1.0) == V.best_threshold(V.iou_sweep(probs, target, (0.3, 0.5, 0.7, 0.9)))


def _history(val_losses, best):
    from course_lib.train import History

    return History(val=[{"val_loss": v} for v in val_losses], best_epoch=best, epochs_run=len(val_losses),
                   wall_time=12.5)


def test_best_epoch_record_matches_the_history_and_refuses_a_mismatch():
    rec = V.best_epoch_record("ae_best_epoch", _history([0.9, 0.4, 0.5], 1))
    assert rec["chosen"] == "epoch 2" and rec["higher_is_better"] is False and len(rec["candidates"]) == 3
    with pytest.raises(RuntimeError, match="kept epoch 3"):
        V.best_epoch_record("x", _history([0.9, 0.4, 0.5], 2))
    with pytest.raises(ValueError, match="no validation"):
        V.best_epoch_record("x", _history([], -1))


def test_fit_budget_counts_steps_and_examples_by_hand():
    model = torch.nn.Linear(3, 2)  # 8 parameters
    b = V.fit_budget(model, _history([1.0] * 4, 0), n_examples=10, batch_size=4)
    assert b == {"steps": 12, "examples": 40, "seconds": 12.5, "params": 8, "epochs": 4}  # ceil(10/4) = 3 per epoch
    model.bias.requires_grad_(False)
    assert V.fit_budget(model, _history([1.0], 0), 4, 4, loss="x")["params"] == 6
    with pytest.raises(ValueError, match="batch_size"):
        V.fit_budget(model, _history([1.0], 0), 4, 0)


def test_cosine_adam_decays_to_zero_over_the_epochs():
    model = torch.nn.Linear(2, 1)
    opt, sched = V.cosine_adam(model, 1e-2, 4)
    assert isinstance(opt, torch.optim.Adam)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1e-2 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="epochs"):
        V.cosine_adam(model, 1e-2, 0)


def test_representation_floor_at_another_resolution_revoxelises_the_shapes():
    from course_lib.data import make_shape, voxelize

    shapes = [("mug", 11), ("chair", 12)]
    pts = torch.stack([torch.as_tensor(make_shape(c, s).sample_surface(256, seed=0)[0]).float() for c, s in shapes])
    data = {"voxels": torch.stack([voxelize(make_shape(c, s), 16).float() for c, s in shapes]),
            "target_points": pts, "category": [c for c, _ in shapes], "seed": torch.tensor([s for _, s in shapes])}
    at16, at8 = V.representation_floor(data), V.representation_floor(data, resolution=8)
    assert at16["resolution"] == 16 and at8["resolution"] == 8 and len(at8["per_shape"]) == 2
    ref = V.voxel_chamfer(torch.stack([voxelize(make_shape(c, s), 8).float() for c, s in shapes]), pts, 0.5)
    assert at8["per_shape"] == pytest.approx(ref["per_shape"].tolist()) and at8["cd"] == pytest.approx(ref["cd"])
    with pytest.raises(ValueError, match="category"):
        V.representation_floor({"voxels": data["voxels"], "target_points": pts}, resolution=8)


def test_flip_grids_mirrors_horizontal_axes_with_the_probability():
    g = torch.arange(2 * 4**3, dtype=torch.float32).view(2, 4, 4, 4)
    assert torch.equal(V.flip_grids(g, 0.0), g)
    torch.testing.assert_close(V.flip_grids(g, 1.0), g.flip(1).flip(3))  # x and z, never y (up)
    torch.testing.assert_close(V.flip_grids(g, 1.0, axes=(1,)), g.flip(2))
    gen = torch.Generator().manual_seed(0)
    many = torch.arange(4000, dtype=torch.float32).view(4000, 1, 1, 1).expand(4000, 2, 1, 1).contiguous()
    many[:, 1] += 0.5  # flipping x swaps the two cells
    out = V.flip_grids(many, 0.2, axes=(0,), generator=gen)
    frac = float((out[:, 0, 0, 0] != many[:, 0, 0, 0]).double().mean())
    assert abs(frac - 0.2) < 0.03
    with pytest.raises(ValueError, match="probability"):
        V.flip_grids(g, 1.5)
    with pytest.raises(ValueError, match="axes"):
        V.flip_grids(g, 0.5, axes=(3,))


def test_voxnet_batches_flip_and_svr_refuses_flip():
    grids = torch.zeros(8, 6, 6, 6)
    grids[:, 0, 2, 2] = 1.0  # a voxel at x = 0: a flip of x moves it to x = 5
    data = {"voxels": grids, "label": torch.zeros(8, dtype=torch.long)}
    moved = 0
    for batch in V.grid_batches(data, "voxnet", 8, seed=0, flip=0.5):
        moved += int(batch["input"][:, 5, 2, 2].sum())
        assert torch.equal(batch["input"].sum((1, 2, 3)), torch.ones(8))
    assert 0 < moved < 8
    with pytest.raises(ValueError, match="flip"):
        V.grid_batches({"rgb": torch.zeros(2, 3, 4, 4), "voxels": grids[:2]}, "svr", 2, flip=0.2)


# ---------------------------------------------------------------------------
# partial scans (VoxNet's harder task)
# ---------------------------------------------------------------------------
def _top_z(grid: np.ndarray) -> np.ndarray:
    """Reference: in each column (i, j), the full cell of largest k (what a camera on +z sees first)."""
    out = np.zeros_like(grid, dtype=bool)
    R = grid.shape[2]
    has = grid.any(axis=2)
    k = R - 1 - np.argmax(grid[:, :, ::-1], axis=2)
    i, j = np.nonzero(has)
    out[i, j, k[i, j]] = True
    return out


def _cube(R: int = 16, lo: int = 4, hi: int = 12) -> torch.Tensor:
    g = torch.zeros(R, R, R)
    g[lo:hi, lo:hi, lo:hi] = 1
    return g


def test_scan_of_a_cube_from_plus_z_keeps_only_its_top_z_cells():
    g = _cube()
    scan = V.scan_grids(g[None], torch.zeros(1))[0]
    ref = np.zeros((16, 16, 16), dtype=bool)
    ref[4:12, 4:12, 11] = True  # the +z face: one cell per column
    np.testing.assert_array_equal(scan.numpy() > 0.5, ref)
    assert scan.dtype == torch.float32 and set(scan.unique().tolist()) == {0.0, 1.0}


def test_scan_matches_the_numpy_reference_on_random_grids_and_a_quarter_turn():
    rng = np.random.default_rng(0)
    grids = (rng.random((3, 12, 12, 12)) < 0.3).astype(np.float32)
    grids[:, 0], grids[:, -1], grids[:, :, :, 0] = 0, 0, 0  # nothing on the x border or at k = 0 (any content works)
    scans = V.scan_grids(torch.tensor(grids), torch.zeros(3)).numpy() > 0.5
    for s, g in zip(scans, grids):
        np.testing.assert_array_equal(s, _top_z(g > 0.5))
    # a quarter turn about y (x' = z, z' = -x): the rotated grid G'[i', j, k'] = G[R - 1 - k', j, i'], seen from +z
    rot = V.scan_grids(torch.tensor(grids), torch.full((3,), math.pi / 2)).numpy() > 0.5
    for s, g in zip(rot, grids):
        turned = (g > 0.5).transpose(2, 1, 0)[:, :, ::-1]
        np.testing.assert_array_equal(s, _top_z(turned))


def test_scan_from_above_sees_the_top_and_the_front_never_the_back():
    g = _cube()
    scan = V.scan_grids(g[None], torch.zeros(1), torch.tensor([math.radians(30)]))[0] > 0.5
    assert bool((scan <= (g > 0.5)).all())  # no rotation, no noise: seen cells are cells of the shape
    i, j, k = scan.nonzero().T
    assert bool(((j >= 9) | (k >= 9)).all())  # within 2 cells of the top (j = 11) or front (k = 11) face
    assert bool((j == 11).any()) and bool((k == 11).any())
    assert not bool(((k == 4) & (j < 9)).any())  # the back face stays hidden
    assert not bool(((j == 4) & (k < 9)).any())  # so does the bottom


def test_scan_noise_moves_points_along_the_ray_only():
    g = _cube()[None].repeat(2, 1, 1, 1)
    clean = V.scan_grids(g, torch.zeros(2))
    noisy = V.scan_grids(g, torch.zeros(2), noise=1.5, generator=torch.Generator().manual_seed(0))
    # seen from +z at elevation 0 the ray is the z axis: every column keeps one point, only k changes
    assert torch.equal(noisy.amax(3), clean.amax(3)) and not torch.equal(noisy, clean)
    assert torch.equal(noisy.sum((1, 2, 3)), clean.sum((1, 2, 3)))


def test_random_scans_and_scan_data_are_deterministic_by_seed():
    grids = torch.stack([_cube(), _cube(lo=2, hi=9)])
    a = V.random_scans(grids, 0.5, 40.0, torch.Generator().manual_seed(3))
    b = V.random_scans(grids, 0.5, 40.0, torch.Generator().manual_seed(3))
    c = V.random_scans(grids, 0.5, 40.0, torch.Generator().manual_seed(4))
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert not torch.equal(a[0], c[0])
    scans, angles, elev = a
    assert scans.shape == grids.shape and scans.dtype == torch.float32
    assert bool(((angles >= 0) & (angles < 2 * math.pi)).all()) and bool(((elev >= 0) & (elev <= math.radians(40))).all())
    assert 0 < scans.sum() < grids.sum()  # a partial view holds fewer cells than the solid
    data = {"voxels": grids, "label": torch.tensor([0, 1])}
    d1, d2 = V.scan_data(data, 7, "ci"), V.scan_data(data, 7, "ci")
    assert torch.equal(d1["voxels"], d2["voxels"]) and torch.equal(d1["full"], grids) and d1["label"] is data["label"]
    assert V.scan_seed("val", "ci") != V.scan_seed("test", "ci")
    with pytest.raises(ValueError, match="train"):
        V.scan_seed("train", "ci")
    with pytest.raises(ValueError, match="max_elevation"):
        V.random_scans(grids, 0.5, 90.0)


def test_scan_grids_errors():
    g = _cube()[None]
    with pytest.raises(ValueError, match=r"\(B, R, R, R\)"):
        V.scan_grids(g[0], torch.zeros(1))
    with pytest.raises(ValueError, match="one angle"):
        V.scan_grids(g, torch.zeros(2))
    with pytest.raises(ValueError, match="elevations"):
        V.scan_grids(g, torch.zeros(1), torch.tensor([math.pi / 2]))
    with pytest.raises(ValueError, match="finite"):
        V.scan_grids(g, torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="noise"):
        V.scan_grids(g, torch.zeros(1), noise=-1.0)
    with pytest.raises(ValueError, match="dropout"):
        V.scan_grids(g, torch.zeros(1), dropout=1.0)
    assert V.scan_grids(torch.zeros(2, 8, 8, 8), torch.zeros(2)).sum() == 0  # nothing to see: an empty scan


def test_voxnet_batches_with_scans():
    grids = _cube(R=12, lo=3, hi=9)[None].repeat(4, 1, 1, 1)
    data = {"voxels": grids, "label": torch.zeros(4, dtype=torch.long)}
    batch = next(iter(V.grid_batches(data, "voxnet", 4, seed=0, scan={"noise": 0.0, "max_elevation": 30.0})))
    assert batch["input"].shape == grids.shape and bool((batch["input"].sum((1, 2, 3)) < grids.sum((1, 2, 3))).all())
    with pytest.raises(ValueError, match="voxnet"):
        V.grid_batches(data, "ae", 2, scan={"noise": 0.0, "max_elevation": 30.0})


def test_confusion_matrix_and_per_class_accuracy_by_hand():
    pred, true = torch.tensor([0, 1, 1, 2, 0, 1]), torch.tensor([0, 1, 2, 2, 1, 1])
    conf = V.confusion_matrix(pred, true, 4)
    ref = np.zeros((4, 4), dtype=int)
    for p, t in zip(pred.tolist(), true.tolist()):
        ref[t, p] += 1
    np.testing.assert_array_equal(conf, ref)
    acc = V.per_class_accuracy(conf)
    np.testing.assert_allclose(acc[:3], [1.0, 2 / 3, 0.5])
    assert math.isnan(acc[3])  # no shape of class 3
    assert conf.trace() / conf.sum() == pytest.approx(float((pred == true).double().mean()))
    with pytest.raises(ValueError, match="labels"):
        V.confusion_matrix(pred, true, 2)
    with pytest.raises(ValueError, match="predictions"):
        V.confusion_matrix(pred[:2], true, 4)
    with pytest.raises(ValueError, match="square"):
        V.per_class_accuracy(np.zeros((2, 3)))


def test_train_voxnet_on_scans_ci(tmp_path):
    tr, va = V.voxel_data("train", "ci"), V.voxel_data("val", "ci")
    model, hist = V.train_voxnet("ci", data=tr, val_data=va, scan=True, path=tmp_path / "scan.pt", progress=False)
    assert hist.epochs_run >= 1 and hist.val and V.classify(model, tr["voxels"]).shape == tr["label"].shape
    rec = V.best_epoch_record("voxnet_scan_best_epoch", hist)
    assert rec["selected_on"] == "val"


def test_scan_dropout_keeps_a_subset_of_the_returns_at_the_rate():
    g = _cube(R=32, lo=2, hi=30)[None]
    clean = V.scan_grids(g, torch.zeros(1))
    kept = V.scan_grids(g, torch.zeros(1), dropout=0.5, generator=torch.Generator().manual_seed(0))
    assert bool((kept <= clean).all())  # no noise: the kept returns are among the clean ones
    assert float(kept.sum() / clean.sum()) == pytest.approx(0.5, abs=0.08)  # 28 x 28 = 784 returns
