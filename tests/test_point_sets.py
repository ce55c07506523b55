"""Chapter-05 experiment helpers, against scipy, brute force and analytic facts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from course_lib.experiments import common
from course_lib.experiments import point_sets as ps

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _unique_points(s=3, p=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(s, p, 3, generator=gen)


def test_autoencoder_batches_take_input_and_target_from_their_own_streams():
    pts = _unique_points(5, 40)
    tgt = _unique_points(5, 30, seed=9)
    data = {"points": pts, "target_points": tgt, "label": torch.arange(5)}
    batches = ps.autoencoder_batches(data, 12, batch_size=2, seed=1)
    assert len(batches) == 3
    seen, firsts = 0, []
    for b in batches:
        assert b["input"].shape[1:] == (12, 3) and b["target"].shape == b["input"].shape
        for i, k in enumerate(b["index"].tolist()):
            rows_in = {tuple(r) for r in b["input"][i].tolist()}
            rows_t = {tuple(r) for r in b["target"][i].tolist()}
            assert len(rows_in) == 12 and rows_in <= {tuple(r) for r in pts[k].tolist()}
            assert len(rows_t) == 12 and rows_t <= {tuple(r) for r in tgt[k].tolist()}
            seen += 1
        firsts.append(b["input"])
    assert seen == 5
    again = next(iter(batches))["input"]
    assert not torch.equal(again, firsts[0])  # a new subset (and order) every epoch
    with pytest.raises(ValueError, match="n <= 30"):
        ps.autoencoder_batches(data, 31, 2)


def test_test_data_streams_are_independent_samplings(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    d = ps.test_data("ci", categories=("mug",), shapes_per_category=1, n=64)
    assert d["points"].shape == d["target_points"].shape == d["oracle_points"].shape == (1, 64, 3)
    assert not torch.equal(d["points"], d["target_points"])
    assert not torch.equal(d["target_points"], d["oracle_points"])
    from course_lib.data import split_of

    assert split_of(int(d["seed"][0])) == "test"


def test_checkpoint_path_keys_the_loss_and_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    a = ps.checkpoint_path("chamfer", "ci")
    assert a == ps.checkpoint_path("chamfer", "ci")
    assert a != ps.checkpoint_path("emd", "ci") and a != ps.checkpoint_path("chamfer", "ci", task="svr")
    assert a != ps.checkpoint_path("chamfer", "ci", train_per_category=3)


def test_a_changed_training_never_takes_the_chapters_checkpoint(tmp_path, monkeypatch):
    # an exercise's loss_fn= (or epochs=) is part of the checkpoint's name: it cannot overwrite the lecture's model
    def my_loss(model, batch):
        return ps.point_loss("chamfer")(model, batch)

    base = ps.checkpoint_path("chamfer", "ci", **{**ps._overrides_spec({}), "validation": "val_cd"})
    custom = ps.checkpoint_path("chamfer", "ci", **{**ps._overrides_spec({"loss_fn": my_loss}), "validation": "val_cd"})
    longer = ps.checkpoint_path("chamfer", "ci", **{**ps._overrides_spec({"epochs": 7}), "validation": "val_cd"})
    quiet = ps.checkpoint_path("chamfer", "ci", **{**ps._overrides_spec({"progress": False, "live_plot": False}),
                                                   "validation": "val_cd"})
    assert len({base, custom, longer}) == 3 and quiet == base
    assert base != ps.checkpoint_path("chamfer", "ci", validation=None)


def test_val_data_and_batches_are_fixed_and_from_the_val_split(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    from course_lib.data import split_of

    v = ps.val_data("ci", categories=("mug",), shapes_per_category=3, n=32)
    assert v["points"].shape == v["target_points"].shape == (3, 32, 3)
    assert not torch.equal(v["points"], v["target_points"])
    assert {split_of(int(x)) for x in v["seed"]} == {"val"}
    vb = ps.val_batches(v, 2)
    first, again = [b["input"] for b in vb], [b["input"] for b in vb]
    assert len(first) == 2 and all(torch.equal(a, b) for a, b in zip(first, again))  # same sets every epoch
    assert torch.equal(torch.cat(first), v["points"]) and torch.equal(next(iter(vb))["target"], v["target_points"][:2])
    with pytest.raises(KeyError, match="rgb"):
        ps.val_batches(v, 2, input_key="rgb")
    # per-shape distances to the true surface: samples of the surface are on it, a shifted copy is not
    per = ps.surface_distances(v, {"samples": v["target_points"], "shifted": v["target_points"] + 0.05},
                               reduction="none")
    assert len(per["samples"]) == 3 and max(per["samples"]) < 1e-5 and min(per["shifted"]) > 1e-3
    mean = ps.surface_distances(v, {"shifted": v["target_points"] + 0.05})
    assert mean["shifted"] == pytest.approx(float(np.mean(per["shifted"])))


def test_val_metrics_against_the_ops():
    from course_lib import ops

    gen = torch.Generator().manual_seed(3)
    batch = {"input": torch.rand(2, 16, 3, generator=gen), "target": torch.rand(2, 16, 3, generator=gen)}
    shift = torch.nn.Module()
    shift.forward = lambda x: x + 0.1  # a "model" that moves every point
    out = ps.val_metrics("exact")(shift, batch)
    pred = batch["input"] + 0.1
    assert float(out["val_cd"]) == pytest.approx(float(ops.chamfer_distance(pred, batch["target"])), abs=1e-6)
    d = torch.cdist(pred[0].double(), batch["target"][0].double()).numpy()
    r, c = linear_sum_assignment(d)
    d1 = torch.cdist(pred[1].double(), batch["target"][1].double()).numpy()
    r1, c1 = linear_sum_assignment(d1)
    assert float(out["val_emd"]) == pytest.approx(0.5 * (d[r, c].mean() + d1[r1, c1].mean()), abs=1e-5)
    assert set(ps.val_metrics("exact", with_emd=False)(shift, batch)) == {"val_cd"}
    assert ps.MONITOR == {"chamfer": "val_cd", "emd": "val_emd"}


def test_fit_budget_counts_steps_examples_and_parameters():
    from course_lib.train import History

    model = torch.nn.Linear(3, 2)  # 8 parameters
    frozen = torch.nn.Linear(2, 2)
    for q in frozen.parameters():
        q.requires_grad_(False)
    net = torch.nn.Sequential(model, frozen)
    h = History(train_loss=[1.0] * 5, val=[{"val_cd": 1.0}] * 5, best_epoch=3, wall_time=12.5, epochs_run=5)
    b = ps.fit_budget(net, h, n_train=10, batch_size=4, lr=1e-3)
    assert b["steps"] == 5 * 3 and b["examples"] == 50 and b["params"] == 8 and b["seconds"] == 12.5
    assert b["epochs"] == 5 and b["best_epoch"] == 4 and b["lr"] == 1e-3
    assert ps.fit_budget(net, History(train_loss=[1.0], epochs_run=1), 4, 4)["best_epoch"] is None
    with pytest.raises(ValueError, match="n_train"):
        ps.fit_budget(net, h, 0, 4)


def test_pair_by_shape_keeps_only_the_common_shapes_in_order():
    a = {"category": ["mug", "chair", "car"], "seed": [5, 6, 7]}
    b = {"category": ["car", "mug", "lamp"], "seed": [7, 5, 9]}
    keys, va, vb = ps.pair_by_shape(a, [1.0, 2.0, 3.0], b, torch.tensor([30.0, 10.0, 99.0]))
    assert keys == [("mug", 5), ("car", 7)] and va == [1.0, 3.0] and vb == [10.0, 30.0]
    with pytest.raises(ValueError, match="one value per shape"):
        ps.pair_by_shape(a, [1.0], b, [1.0, 2.0, 3.0])


def test_map_grid_stats_per_shape_against_a_hand_made_grid():
    # a 2 x 3 map of points 0.5 apart (a regular grid), no FC points: every edge is 0.5, every spacing 0.5
    ys, xs = torch.meshgrid(torch.arange(2.0), torch.arange(3.0), indexing="ij")
    grid = 0.5 * torch.stack([xs, ys, torch.zeros_like(xs)], -1).reshape(1, 6, 3)
    per = ps.map_grid_stats(grid, 0, (2, 3), reduction="none")
    assert per["edge_median"].tolist() == [0.5] and per["spacing_median"].tolist() == [0.5]
    assert per["edge_over_spacing_median"].tolist() == [1.0]
    # shuffle the map (the grid no longer follows the surface): edges grow, the spacing stays
    shuffled = grid[:, [0, 5, 1, 4, 2, 3]]
    m = ps.map_grid_stats(torch.cat([grid, shuffled]), 0, (2, 3))
    per2 = ps.map_grid_stats(torch.cat([grid, shuffled]), 0, (2, 3), reduction="none")
    assert float(per2["edge_median"][1]) > 0.5 and float(per2["spacing_median"][1]) == pytest.approx(0.5)
    assert m["edge_over_spacing_median"] == pytest.approx(float(per2["edge_over_spacing_median"].mean()))
    with pytest.raises(ValueError, match="n_fc"):
        ps.map_grid_stats(grid, 1, (2, 3))
    with pytest.raises(ValueError, match="reduction"):
        ps.map_grid_stats(grid, 0, (2, 3), reduction="sum")


def test_smoke_runs_both_losses_and_the_single_view_model():
    out = ps.smoke("cpu", steps=1, profile="ci")
    for name in ("ae_chamfer", "ae_emd", "svr"):
        assert out[f"{name}_params"] > 0 and math.isfinite(out[f"{name}_loss"])


def test_nn_distances_match_kdtree_with_duplicates():
    pts = _unique_points(2, 50, seed=4)
    pts[0, 7] = pts[0, 3]  # a duplicate: both are at distance 0
    d = ps.nn_distances(pts)
    for k in range(2):
        ref, _ = cKDTree(pts[k].double().numpy()).query(pts[k].double().numpy(), k=2)
        np.testing.assert_allclose(d[k].numpy(), ref[:, 1], atol=1e-5)
    assert float(d[0, 7]) == 0.0 and float(d[0, 3]) == 0.0
    assert ps.nn_distances(pts[0]).shape == (50,)


def test_uniformity_orders_regular_iid_and_clumped_sets():
    g = torch.linspace(0, 1, 8)
    grid = torch.stack(torch.meshgrid(g, g, torch.zeros(1), indexing="ij"), -1).reshape(-1, 3)
    cv_grid = float(ps.nn_uniformity(grid))
    gen = torch.Generator().manual_seed(0)
    iid = torch.rand(2000, 3, generator=gen) * torch.tensor([1.0, 1.0, 0.0])
    cv_iid = float(ps.nn_uniformity(iid))
    # half of the points get a near twin: a mixture of tiny and ordinary gaps
    clumped = torch.cat([iid[:1000], iid[:500] + 1e-4 * torch.randn(500, 3, generator=gen)])
    cv_clumped = float(ps.nn_uniformity(clumped))
    assert cv_grid < 1e-4
    # i.i.d. uniform points in the plane: nearest-neighbour distance is Rayleigh, CV = sqrt(4/pi - 1) = 0.523
    assert abs(cv_iid - math.sqrt(4 / math.pi - 1)) < 0.06
    assert cv_clumped > 1.5 * cv_iid
    assert abs(float(ps.nn_uniformity(3.0 * iid)) - cv_iid) < 1e-4  # scale invariant


def test_evaluate_sets_against_brute_force_and_scipy():
    gen = torch.Generator().manual_seed(5)
    pred = torch.rand(3, 20, 3, generator=gen)
    gt = torch.rand(3, 20, 3, generator=gen)
    m = ps.evaluate_sets(pred, gt, tau=0.2)
    for k in range(3):
        d = torch.cdist(pred[k].double(), gt[k].double())
        cd = (d**2).min(1).values.mean() + (d**2).min(0).values.mean()
        assert abs(float(m["CD x1e3"][k]) - 1e3 * float(cd)) < 1e-2
        r, c = linear_sum_assignment(d.numpy())
        assert abs(float(m["EMD x1e2"][k]) - 1e2 * d.numpy()[r, c].mean()) < 1e-3
        prec = (d.min(1).values <= 0.2).double().mean()
        rec = (d.min(0).values <= 0.2).double().mean()
        f = 0.0 if prec + rec == 0 else float(2 * prec * rec / (prec + rec))
        assert abs(float(m["F@0.2 %"][k]) - 100 * f) < 1e-3
    # a set against itself: CD = EMD = 0, F = 100
    same = ps.evaluate_sets(gt, gt, tau=0.05)
    assert float(same["CD x1e3"].abs().max()) < 1e-6 and float(same["EMD x1e2"].abs().max()) < 1e-4
    assert float(same["F@0.05 %"].min()) == 100.0
    same = ps.evaluate_sets(gt, gt, tau=0.2)
    table = common.summarize({"a": m, "b": same})
    text = common.format_table(table)
    assert text.count("\n") == 3 and "CD x1e3" in text
    with pytest.raises(ValueError, match="same shape"):
        ps.evaluate_sets(pred, gt[:, :10])


def test_mean_sem_against_scipy():
    from scipy import stats

    v = torch.tensor([0.3, 1.7, 2.2, 0.9, 4.1])
    mean, sem = common.mean_sem(v)
    assert mean == pytest.approx(float(np.mean(v.numpy().astype(np.float64))))
    assert sem == pytest.approx(float(stats.sem(v.numpy().astype(np.float64))))
    assert math.isnan(common.mean_sem([2.0])[1]) and common.mean_sem([2.0])[0] == 2.0
    with pytest.raises(ValueError, match="empty"):
        common.mean_sem([])
    # summarize uses the same mean and standard error for every metric
    row = common.summarize({"a": {"m": v}})[0]
    assert row["m"] == pytest.approx((mean, sem))


def test_rings_and_radii():
    gen = torch.Generator().manual_seed(0)
    r = ps.sample_radii("uniform", 1000, gen, low=0.3, high=1.0)
    assert float(r.min()) >= 0.3 and float(r.max()) <= 1.0 and abs(float(r.mean()) - 0.65) < 0.03
    two = ps.sample_radii("two", 100, gen, low=0.4, high=0.9)
    assert set(two.tolist()) == {0.4, 0.9}
    rings = ps.sample_rings(r[:4], 50, "circle", gen)
    assert rings.shape == (4, 50, 3) and float(rings[..., 2].abs().max()) == 0.0
    torch.testing.assert_close(rings[..., :2].norm(dim=-1), r[:4, None].float().expand(4, 50))
    sph = ps.sample_rings(r[:4], 50, "sphere", gen)
    torch.testing.assert_close(sph.norm(dim=-1), r[:4, None].float().expand(4, 50))
    with pytest.raises(ValueError, match="radius distribution"):
        ps.sample_radii("gamma", 3)


def test_mean_shapes_emd_keeps_one_circle_chamfer_spreads():
    kw = dict(n_points=48, kind="circle", radius="two", radius_kwargs=dict(low=0.3, high=1.0), steps=200,
              batch=8, lr=0.01, seed=0)
    emd = ps.radial_profile(ps.mean_shape("emd", squared=True, **kw)["points"])
    cd = ps.radial_profile(ps.mean_shape("chamfer", **kw)["points"])
    # EMD (squared ground cost): one circle near the mean radius 0.65 (the W2 barycentre)
    assert abs(emd["mean"] - 0.65) < 0.05 and emd["std"] < 0.03
    # Chamfer: points spread over several radii
    assert cd["std"] > 0.05 and cd["std"] > 3 * emd["std"]
    assert emd["off_plane"] < 1e-6


def test_unsquared_emd_mean_is_one_circle_but_not_the_average_radius():
    # W1 (the unsquared EMD the course trains with): for radii 0.3 or 1.0 the expected cost of a
    # circle of radius r is flat on [0.3, 1.0], so the mean stays one circle wherever it first lands
    kw = dict(n_points=48, kind="circle", radius="two", radius_kwargs=dict(low=0.3, high=1.0), steps=200,
              batch=8, lr=0.01, seed=0)
    out = ps.mean_shape("emd", **kw)
    assert out["squared"] is False
    w1 = ps.radial_profile(out["points"])
    assert w1["std"] < 0.03 and 0.3 <= w1["mean"] <= 1.0
    assert abs(w1["mean"] - 0.65) > 0.1  # not the W2 answer
    with pytest.raises(ValueError, match="squared"):
        ps.mean_shape("chamfer", squared=False, **kw)


def test_peak_memory_sees_a_large_allocation():
    def alloc():
        a = np.ones(40 * 2**20 // 8)  # 40 MB
        return float(a.sum())

    value, mem = ps.peak_memory(alloc)
    assert value == 40 * 2**20 // 8
    if not math.isnan(mem):
        assert 30 * 2**20 < mem < 200 * 2**20


def test_time_distances_rows_and_bounds():
    rows = ps.time_distances((16, 32), ("chamfer", "exact", "sinkhorn", "auction"))
    assert len(rows) == 8
    by = {(r["N"], r["method"]): r for r in rows}
    for n in (16, 32):
        ex = by[(n, "exact")]["value"]
        assert by[(n, "sinkhorn")]["value"] >= ex - 1e-9  # rounded plan: an upper bound
        assert by[(n, "auction")]["value"] >= ex - 1e-9 and by[(n, "auction")]["rel_err"] <= 1e-3 + 1e-9
        assert math.isnan(by[(n, "chamfer")]["rel_err"])
        assert all(r["seconds"] >= 0 for r in rows)


def test_point_loss_values_and_a_tiny_training_run(tmp_path):
    from course_lib import ops

    gen = torch.Generator().manual_seed(7)
    r = torch.full((12,), 0.7, dtype=torch.float64)
    pts = ps.sample_rings(r, 256, "sphere", gen)  # 12 "shapes", 256 samples each
    data = {"points": pts, "target_points": ps.sample_rings(r, 256, "sphere", gen)}
    batch = next(iter(ps.autoencoder_batches(data, 16, batch_size=4, seed=0)))

    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.rand(1, 16, 3, generator=gen))

        def forward(self, x):
            return self.p.expand(x.shape[0], -1, -1)

    m = Fixed()
    out = ps.point_loss("emd")(m, batch)
    ref = ops.emd(m.p.detach().expand(4, -1, -1), batch["target"], method="exact").cost
    assert abs(float(out["loss"].detach()) - float(ref)) < 1e-6 and "cd" in out
    out = ps.point_loss("chamfer")(m, batch)
    assert abs(float(out["loss"].detach()) - float(ops.chamfer_distance(m.p.detach().expand(4, -1, -1),
                                                                batch["target"]))) < 1e-6
    with pytest.raises(ValueError, match="chamfer"):
        ps.point_loss("l2")
    val = {"points": pts[:4, :128], "target_points": data["target_points"][:4, :128]}
    model, hist = ps.train_autoencoder("emd", "ci", data=data, val=val, path=tmp_path / "ae.pt", progress=False,
                                       live_plot=False, epochs=3)
    assert (tmp_path / "ae.pt").exists() and hist.epochs_run == 3 and all(math.isfinite(v) for v in hist.train_loss)
    assert common.predict(model, pts[:3, :128]).shape == (3, 128, 3)  # ci model: 128 points
    # the kept epoch is the one with the lowest validation EMD (its own loss), and the record says so
    assert hist.monitor == "val_emd" and len(hist.val) == 3
    scores = [v["val_emd"] for v in hist.val]
    assert hist.best_epoch == scores.index(min(scores))
    epoch, rec = ps.best_epoch_record("best_epoch_emd", hist)
    assert epoch == hist.best_epoch + 1 and rec["selected_on"] == "val" and rec["chosen"] == f"epoch {epoch}"
    assert rec["candidates"] == {f"epoch {i + 1}": v for i, v in enumerate(scores)}
    # the validation EMD of the kept weights is that epoch's, recomputed independently
    ref = ops.emd(common.predict(model, val["points"]), val["target_points"], method="exact").cost
    assert abs(float(ref) - min(scores)) < 1e-4
    _, unvalidated = ps.train_autoencoder("chamfer", "ci", data=data, validate=False, path=tmp_path / "c.pt",
                                          progress=False, live_plot=False, epochs=1)
    with pytest.raises(ValueError, match="not validated"):
        ps.best_epoch_record("x", unvalidated)


def test_view_batches():
    gen = torch.Generator().manual_seed(0)
    rgb = torch.rand(5, 3, 8, 8, generator=gen)
    pts = _unique_points(5, 30)
    vb = ps.view_batches({"rgb": rgb, "target_points": pts}, 10, batch_size=2, seed=0)
    assert len(vb) == 3
    for b in vb:
        assert b["input"].shape[1:] == (3, 8, 8) and b["target"].shape[1:] == (10, 3)
        for img, tgt in zip(b["input"], b["target"]):
            k = int(torch.nonzero((rgb == img).flatten(1).all(1))[0])  # which shape this view is
            assert {tuple(r) for r in tgt.tolist()} <= {tuple(r) for r in pts[k].tolist()}
    with pytest.raises(ValueError, match="different lengths"):
        ps.view_batches({"rgb": rgb[:4], "target_points": pts}, 10, 2)
    with pytest.raises(ValueError, match="exceeds"):
        ps.view_batches({"rgb": rgb, "target_points": pts}, 31, 2)


def test_an_even_sample_of_the_true_surface_beats_the_iid_oracle(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    d = ps.test_data("ci", categories=("mug", "chair"), shapes_per_category=1, n=64)
    even = ps.even_reference("test", 64, profile="ci", categories=("mug", "chair"), shapes_per_category=1)
    assert even.shape == (2, 64, 3)
    oracle = ps.evaluate_sets(d["oracle_points"], d["target_points"])
    ev = ps.evaluate_sets(even, d["target_points"])
    assert float(ev["CD x1e3"].mean()) < float(oracle["CD x1e3"].mean())
    assert float(ev["EMD x1e2"].mean()) < float(oracle["EMD x1e2"].mean())
    assert float(ev["NN-CV"].mean()) < 0.5 * float(oracle["NN-CV"].mean())


def test_complexity_summary_from_rows():
    rows = [{"N": n, "method": m, "seconds": s, "memory_MB": 1.0, "value": 1.0, "rel_err": e}
            for n, m, s, e in [(64, "exact", 1.0, float("nan")), (128, "exact", 4.0, float("nan")),
                               (64, "auction", 0.5, 1e-4), (128, "auction", 1.0, 2e-4)]]
    s = ps.complexity_summary(rows)
    assert s["ns"] == [64, 128] and s["methods"]["exact"]["growth"] == [4.0]
    assert s["auction_speedup"] == [[64, 2.0], [128, 4.0]]
    assert s["methods"]["auction"]["rel_err_max_n"] == 2e-4


def test_build_autoencoder_overrides_switch_a_branch_off():
    full = ps.build_autoencoder("ci")
    fc_only = ps.build_autoencoder("ci", map_size=(0, 0))
    map_only = ps.build_autoencoder("ci", n_fc=0)
    x = torch.rand(2, full.n_points, 3)
    assert fc_only.n_points + map_only.n_points == full.n_points
    assert common.predict(fc_only, x).shape == (2, fc_only.n_points, 3)
    assert map_only.decoder.fc is None and fc_only.decoder.upconv is None
    with pytest.raises(ValueError, match="unknown architecture"):
        ps.build_autoencoder("ci", nfc=0)
