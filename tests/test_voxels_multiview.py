"""3D-R2N2's recurrence in chapter 03: view orders and batches, training and scoring on tiny sizes, the benchmark's
claims (issue #33)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

from course_lib.experiments import voxels as V
from course_lib.experiments.protocol import validate_records
from course_lib.models.voxels import MultiViewVoxelGRU, voxel_bce, voxel_single_view

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("voxels_multiview_bench", ROOT / "benchmarks" / "voxels_multiview.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["voxels_multiview_bench"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_view_orders_are_seeded_permutations():
    a, b = V.view_orders(7, 5, seed=3), V.view_orders(7, 5, seed=3)
    assert torch.equal(a, b) and a.shape == (7, 5)
    assert all(sorted(r.tolist()) == list(range(5)) for r in a)
    assert not torch.equal(a, V.view_orders(7, 5, seed=4))
    with pytest.raises(ValueError):
        V.view_orders(0, 5)


def test_ordered_views_gathers_per_shape():
    views = torch.arange(3 * 4).view(3, 4, 1).expand(3, 4, 2).float()  # view j of shape i holds 4 i + j
    order = torch.tensor([[3, 0], [1, 2], [0, 3]])
    out = V.ordered_views(views, order)
    assert out.shape == (3, 2, 2)
    assert out[:, :, 0].tolist() == [[3, 0], [5, 6], [8, 11]]
    with pytest.raises(ValueError, match="indexes views"):
        V.ordered_views(views, torch.tensor([[4], [0], [0]]))


def _tiny_data(S=6, P=5, R=8, H=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    radii = 0.3 + 0.4 * torch.rand(S, generator=g)
    vox = torch.stack([V._ball(R, float(r)).float() for r in radii])
    # view j of shape i: a constant image whose brightness encodes (i, j), so batches can be traced back
    views = torch.stack([torch.stack([torch.full((3, H, H), (10 * i + j) / 100.0) for j in range(P)])
                         for i in range(S)])
    return {"voxels": vox, "views": views, "seed": torch.arange(S), "label": torch.zeros(S, dtype=torch.long)}


def test_multiview_batches_random_number_and_order_of_distinct_views():
    data = _tiny_data(S=6, P=5)
    loader = V.multiview_batches(data, 4, 5, seed=0)
    counts = set()
    for _ in range(15):
        for batch in loader:
            x, idx = batch["input"], batch["index"]
            n = x.shape[1]
            counts.add(n)
            assert 1 <= n <= 5 and x.shape[2:] == (3, 16, 16)
            code = torch.round(x[:, :, 0, 0, 0] * 100).long()  # 10 i + j
            assert torch.equal(code // 10, idx[:, None].expand(-1, n))  # the views are the shape's own
            for row in code % 10:
                assert len(set(row.tolist())) == n  # distinct views
            assert torch.equal(batch["target"], data["voxels"][idx])
    assert counts == {1, 2, 3, 4, 5}
    with pytest.raises(ValueError, match="max_views"):
        V.multiview_batches(data, 4, 6)
    with pytest.raises(ValueError, match="views"):
        V.multiview_batches({"voxels": data["voxels"]}, 4, 2)


def test_train_multiview_tiny_and_score_by_views(tmp_path, monkeypatch):
    monkeypatch.setattr(V, "build_single_view",
                        lambda profile=None, resolution=None, multi_view=False: V.set_bn_momentum(
                            voxel_single_view(8, 8, 4, layers=(1,), decoder_channels=2, multi_view=multi_view),
                            0.3))
    tr, va = _tiny_data(S=6, P=5, seed=0), _tiny_data(S=3, P=5, seed=1)
    model, hist = V.train_multiview("ci", data=tr, val_data=va, progress=False, path=tmp_path / "mv.pt")
    assert isinstance(model, MultiViewVoxelGRU) and not model.training
    assert hist.epochs_run == V.config.size("ch03.svr_epochs", "ci") and len(hist.val) == hist.epochs_run
    assert all(math.isfinite(v["val_loss"]) for v in hist.val)
    # the same steps as the single-view recipe on the same shapes
    b = V.fit_budget(model, hist, 6, V.config.size("ch03.batch_size", "ci"))
    assert b["steps"] == hist.epochs_run * math.ceil(6 / V.config.size("ch03.batch_size", "ci"))
    # scored after 1..V views, entry n - 1 equal to the model run on the first n views
    probs = V.predict_views(model, va["views"])
    assert probs.shape == (3, 5, 8, 8, 8) and float(probs.min()) >= 0 and float(probs.max()) <= 1
    with torch.no_grad():
        torch.testing.assert_close(probs[:, 1], torch.sigmoid(model(va["views"][:, :2])))
    ious = V.iou_by_views(probs, va["voxels"], [0.5] * 5)
    assert len(ious) == 5 and all(x.shape == (3,) for x in ious)
    torch.testing.assert_close(ious[2], V.per_shape_iou(probs[:, 2], va["voxels"], 0.5))
    with pytest.raises(ValueError, match="thresholds"):
        V.iou_by_views(probs, va["voxels"], [0.5] * 4)
    # the val loss is the mean over 1..V views
    fn = V.multiview_val_loss(2.0)
    with torch.no_grad():
        got = float(fn(model, {"input": va["views"], "target": va["voxels"]})["val_loss"])
        want = sum(float(voxel_bce(model(va["views"][:, :n]), va["voxels"], 2.0)) for n in range(1, 6)) / 5
    assert got == pytest.approx(want, rel=1e-5)


def test_multiview_pool_covers_the_single_view_pool_and_the_view_counts():
    for profile in ("ci", "laptop", "gpu"):
        s = V.config.sizes(profile, prefix="ch03.")
        pool = V.multiview_pool(profile)
        assert pool >= s["mv_max_views"] and pool >= 1 + s["train_views"]
    assert V.multiview_pool("laptop") == 1 + V.config.size("ch03.train_views", "laptop")  # the same images


def _fake_results(n=24, k=5, gain=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = 0.4 + 0.2 * torch.rand(n, generator=g)
    iou = [(base + gain * v + 0.01 * torch.rand(n, generator=g)).tolist() for v in range(k)]
    bud = {"steps": 10, "examples": 40, "seconds": 1.0, "params": 5}
    return {"max_views": k, "resolution": 8, "n_test": n, "image_size": 16,
            "svr": {"iou": (base + 0.01 * torch.rand(n, generator=g)).tolist(), "iou@0.4": base.tolist(),
                    "level": 0.5, "budget": dict(bud, views_per_shape=1)},
            "mv": {"iou_by_views": iou, "iou@0.4_by_views": iou, "levels": [0.5] * k,
                   "iou_reversed": (torch.tensor(iou[-1]) - 0.001).tolist(), "budget": dict(bud, views_per_shape=5),
                   "hidden_grid": [4, 4]},
            "selections": [], "seconds": {"train_data": 1, "test_data": 1, "eval": 1, "total": 3}}


def test_benchmark_claims_and_goal(tmp_path, monkeypatch):
    bench = _bench()
    assert bench.SELECTION_PARTS == ("train_models_on_val",)
    assert getattr(bench.train_models_on_val, "__selection_part__", False)  # reading test there raises
    d = _fake_results(gain=0.05)
    cl = bench.claims(d)
    ids = [c["id"] for c in cl]
    assert ids == ["mv_2_vs_1_views", "mv_3_vs_2_views", "mv_4_vs_3_views", "mv_5_vs_4_views", "mv_5_vs_1_views",
                   "mv_1_vs_svr", "mv_5_vs_svr", "mv_5_order"]
    by = {c["id"]: c for c in cl}
    assert by["mv_5_vs_1_views"]["verdict"] == "ahead" and by["mv_5_vs_1_views"]["n"] == 24
    assert by["mv_5_vs_1_views"]["difference"] == pytest.approx(0.2, abs=0.02)
    assert set(by["mv_5_vs_svr"]["budget"]) == {"3D-GRU, 5 views", "single view (one image)"}
    goals = bench.goal_records(d, cl)
    assert goals[0]["id"] == "mv_iou_rises_with_views" and goals[0]["met"]
    flat = _fake_results(gain=0.0)
    assert not bench.goal_records(flat, bench.claims(flat))[0]["met"]
    with pytest.raises(ValueError, match="too few"):
        bench.claims(_fake_results(n=10))
    d["claims"], d["goals"] = cl, goals
    validate_records(d)
    monkeypatch.setattr(bench, "write_result", lambda name, profile, body, notes="", data=None: (body, data))
    body, data = bench.report(d, "ci")
    assert "3D-GRU, 5 views" in body and data is d
