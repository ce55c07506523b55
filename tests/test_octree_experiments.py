"""Chapter 04 experiment recipes (course_lib.experiments.octrees) on ci sizes."""

from __future__ import annotations

import math

import pytest
import torch
import trimesh

from course_lib.experiments import octrees as E
from course_lib.geometry.octree import build_octree

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_smoke_hook_runs_on_cpu():
    out = E.smoke("cpu", steps=1, profile="ci")
    assert math.isfinite(out["ogn_loss"]) and out["seconds"] > 0 and out["ogn_params"] > 0


def test_compression_rows_count_the_octree_bytes():
    rows = E.compression((16, 32), ("mug",), profile="ci")
    assert [r["resolution"] for r in rows] == [16, 32]
    for r in rows:
        assert r["dense_float_bytes"] == 4 * r["resolution"] ** 3
        assert r["ratio"] == pytest.approx(r["dense_float_bytes"] / r["octree_bytes"])
    box = trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    (row,) = E.mesh_compression({"box": box}, (16,))
    from course_lib.geometry import mesh_to_voxels

    assert row["octree_bytes"] == build_octree(mesh_to_voxels(box, 16)).nbytes


def test_decoder_cost_and_iou_on_tiny_sizes():
    rows = E.decoder_cost((16,), profile="ci", repeat=1)
    assert {r["decoder"] for r in rows} == {"ogn", "dense (base 4)"}
    assert all(r["seconds"] > 0 for r in rows)
    ogn = next(r for r in rows if r["decoder"] == "ogn")
    assert 0 < ogn["cells"] < 16 ** 3 * 8 / 7
    model = E.build_ogn("ci")
    vox = torch.zeros(2, 16, 16, 16)
    vox[:, 4:12, 4:12, 4:12] = 1
    res = E.evaluate_iou(model, vox)
    assert res["iou"].shape == (2,) and ((res["iou"] >= 0) & (res["iou"] <= 1)).all()
    dense = E.build_dense("ci")
    assert E.evaluate_iou(dense, vox)["cells"].tolist() == [16 ** 3] * 2


def test_figures_and_tables():
    from course_lib.data import make_shape, voxelize

    tree = build_octree(voxelize(make_shape("mug", 1), 16))
    rows = E.level_counts(tree)
    assert [r["resolution"] for r in rows] == [2, 4, 8, 16]
    assert rows[0]["cells"] == 8 and rows[-1]["mixed"] == 0
    for a, b in zip(rows[:-1], rows[1:]):
        assert b["cells"] == 8 * a["mixed"]                  # only mixed cells have children
    fig = E.slice_figure(tree, 2, 8, axis=1, title="mug")
    assert len(fig.data) == 2 and "octree" in fig.layout.title.text
    assert fig.data[0].z.shape == (16, 16)
    with pytest.raises(ValueError, match="index"):
        E.slice_figure(tree, 1, 16)
    fig = E.memory_figure(E.compression((16,), ("mug",), profile="ci"))
    assert len(fig.data) == 3
    table = E.rows_table(rows)
    assert table.count("\n") == len(rows) + 1 and "| level |" in table


# --- chapter 03's recipe for the dense baseline, the val threshold, the seeds (protocol 2) --------------

def _balls(n: int, R: int = 16, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    t = (torch.arange(R) + 0.5) / R * 2 - 1
    x, y, z = torch.meshgrid(t, t, t, indexing="ij")
    r = 0.3 + 0.4 * torch.rand(n, generator=g)
    vox = ((x ** 2 + y ** 2 + z ** 2)[None] < r[:, None, None, None] ** 2).float()
    return {"voxels": vox, "seed": torch.arange(n) + 10 * seed}


@pytest.fixture
def captured(monkeypatch):
    """Replace train_or_load by a recorder: what model and settings each recipe hands it (no training)."""
    import course_lib.train as T

    calls = []

    def fake(model, path, *, retrain=False, spec=None, **kw):
        calls.append({"model": model, "path": path, **kw})
        return T.History(epochs_run=kw["epochs"])

    monkeypatch.setattr(T, "train_or_load", fake)
    return calls


def test_dense_baseline_gets_chapter_03_recipe_and_the_ogn_schedule(captured, tmp_path):
    from course_lib.experiments import voxels as V
    from course_lib.models.voxels import weighted_optimum

    data, val = _balls(6), _balls(2, seed=1)
    dense, _ = E.train_dense("ci", data=data, val_data=val, seed=5)
    ogn, _ = E.train_ogn("ci", data=data, val_data=val, seed=5)
    d, o = captured
    # the read-out starts at the prior of the weighted BCE (chapter 03, start_at_prior)
    w = V.pos_weight_for(data["voxels"], profile="ci")
    p = float(weighted_optimum(V.occupied_fraction(data["voxels"]), w))
    assert dense.pos_weight == pytest.approx(w)
    assert float(torch.sigmoid(dense.decoder.out.bias.detach())) == pytest.approx(p)
    # both: Adam with chapter 03's cosine decay over the same epochs, the same seed and batches
    for call in (d, o):
        assert isinstance(call["optimizer"], torch.optim.Adam)
        assert isinstance(call["scheduler"], torch.optim.lr_scheduler.CosineAnnealingLR)
        assert call["scheduler"].T_max == call["epochs"] == E.config.size("ch04.epochs", "ci")
        assert call["seed"] == 5 and call["val_loader"] is not None
    assert len(d["train_loader"]) == len(o["train_loader"])  # same batches per epoch: same optimiser steps
    assert d["path"] != o["path"]
    # the seed is part of the checkpoint and of the initialisation
    E.train_dense("ci", data=data, val_data=val, seed=6)
    E.train_dense("ci", data=data, val_data=val, seed=5)
    p6, p5 = captured[-2], captured[-1]
    assert p6["path"] != p5["path"] and p5["path"] == d["path"]
    w5 = [x.detach() for x in p5["model"].parameters()]
    assert all(torch.equal(a, b) for a, b in zip(w5, (x.detach() for x in d["model"].parameters())))
    assert not all(torch.equal(a, b) for a, b in zip(w5, (x.detach() for x in p6["model"].parameters())))
    assert E.ae_seeds("ci") == [0, 1, 2]


class _Fixed(torch.nn.Module):
    """A 'dense model' that returns the logits of fixed probabilities (one grid per call order)."""

    def __init__(self, probs: torch.Tensor):
        super().__init__()
        self.probs = probs
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.i = 0

    def forward(self, v):
        out = torch.logit(self.probs[self.i:self.i + v.shape[0]].clamp(1e-6, 1 - 1e-6))
        self.i = (self.i + v.shape[0]) % self.probs.shape[0]
        return out


def test_evaluate_iou_cuts_a_dense_model_at_its_threshold_and_dense_threshold_chooses_on_val():
    vox = _balls(3)["voxels"]
    probs = torch.where(vox > 0.5, torch.full_like(vox, 0.8), torch.full_like(vox, 0.6))
    for t, expected in ((0.5, vox.mean((1, 2, 3))), (0.7, torch.ones(3)), (0.9, torch.zeros(3))):
        got = E.evaluate_iou(_Fixed(probs), vox, batch_size=2, threshold=t)["iou"]
        assert got.tolist() == pytest.approx(expected.tolist())
    level, rec = E.dense_threshold(_Fixed(probs), vox, "ci", id="dense_threshold_seed0")
    assert level == 0.7 and rec["id"] == "dense_threshold_seed0" and rec["selected_on"] == "val"
    with pytest.raises(ValueError, match="threshold"):
        E.evaluate_iou(_Fixed(probs), vox, threshold=1.0)


def _bench(name: str):
    from check_helpers import load_benchmark

    return load_benchmark(name)


def test_benchmark_claim_and_goals_from_per_seed_results():
    B = _bench("octrees")
    from course_lib.experiments.protocol import budget

    bud = budget(steps=75, examples=1200, seconds=40.0, params=1000, loss="l", decision="d")
    per_seed = [{"seed": s, "iou_ogn": o, "iou_dense": d} for s, o, d in ((0, 0.55, 0.62), (1, 0.56, 0.61),
                                                                          (2, 0.54, 0.63))]
    ae = {"resolution": 64, "n_test": 30, "per_seed": per_seed, "budgets": {"ogn": bud, "dense": bud},
          "train_seconds_ogn": 40.0}
    (c,) = B.claims({"ae": ae})
    assert c["id"] == B.AE_CLAIM and c["a"] == "dense" and c["verdict"] == "ahead" and c["n"] == 3
    assert c["difference"] == pytest.approx(0.07) and c["unit"] == "seeds"
    g = {r["id"]: r for r in B.goal_records({"ae": ae})}
    assert g["iou_gap"]["value"] == pytest.approx(0.07) and g["iou_gap"]["met"] is False
    assert g["ogn_train_seconds"]["met"] is True
    rows = E.ae_rows(dict(ae, iou_ogn=0.55, iou_ogn_se=0.01, iou_dense=0.62, iou_dense_se=0.01))
    assert [r["model"].split()[0] for r in rows] == ["dense", "OGN"] and rows[0]["steps"] == 75
    assert "| 75 |" in E.rows_table(rows)
    with pytest.raises(ValueError, match="per_seed"):
        E.ae_rows({"table": []})  # a protocol-1 result has no per-seed rows
    with pytest.raises(ValueError, match="too few"):  # fewer than 3 seeds: no claim can be written
        B.claims({"ae": dict(ae, per_seed=per_seed[:2])})


def test_memory_account_dense_rows_stored_bytes_and_sums():
    rows = E.memory_account((16, 32), ("chair", "mug"), profile="ci")
    comp = {(r["shape"], r["resolution"]): r for r in E.compression((16, 32), ("chair", "mug"), profile="ci")}
    assert [(r["shape"], r["resolution"]) for r in rows] == list(comp)
    for r in rows:
        R = r["resolution"]
        assert r["dense_float_bytes"] == 4 * R ** 3 and r["dense_bit_bytes"] == R ** 3 // 8
        assert r["octree_stored_bytes"] == comp[r["shape"], R]["octree_bytes"]
        assert r["octree_working_bytes"] == r["octree_stored_bytes"] + r["leaf_cache_bytes"] + r["conv_operator_bytes"]
        assert r["leaf_cache_bytes"] > r["octree_stored_bytes"]          # the int64 per-leaf geometry
        parts = [v for k, v in r.items() if k.startswith("decoder_") and k.endswith("_bytes")
                 and k not in ("decoder_working_bytes", "decoder_autograd_saved_bytes")]
        assert r["decoder_working_bytes"] == sum(parts)
        assert r["decoder_root_grid_bytes"] == 4 * 16 * (R // 8) ** 3     # ci: C_0 = 16 floats per root
        assert "table" in r["lookups"]
    exps = E.memory_exponents(rows)
    assert exps["dense_float_bytes"]["mean"] == pytest.approx(3.0) and exps["dense_bit_bytes"]["mug"] == pytest.approx(3.0)
    assert set(exps["octree_stored_bytes"]) == {"chair", "mug", "mean"}
    assert 1.5 < exps["octree_stored_bytes"]["mean"] < 3.0
    (t16, t32) = E.account_table(rows)
    assert t16["R"] == 16 and t32["dense_float_bytes"] == 4 * 32 ** 3
    assert t16["octree_stored_bytes"] == (rows[0]["octree_stored_bytes"] + rows[2]["octree_stored_bytes"]) / 2


def test_memory_exponents_fit_a_power_law():
    rows = [{"shape": s, "resolution": R, "octree_stored_bytes": c * R ** 2, "dense_float_bytes": 4 * R ** 3}
            for s, c in (("a", 3), ("b", 7)) for R in (32, 64, 128, 256)]
    exps = E.memory_exponents(rows)
    assert exps["octree_stored_bytes"]["a"] == pytest.approx(2.0) and exps["dense_float_bytes"]["mean"] == pytest.approx(3.0)
    assert "decoder_working_bytes" not in exps


def _ball_tree(R: int, radius: float):
    t = (torch.arange(R) + 0.5) / R * 2 - 1
    x, y, z = torch.meshgrid(t, t, t, indexing="ij")
    return build_octree((x ** 2 + y ** 2 + z ** 2) < radius ** 2, 3)


def test_decoder_working_bytes_grow_with_the_mixed_cells_not_with_R():
    from course_lib.models.ogn import OGNDecoder

    R = 64
    out = {}
    for radius in (0.2, 0.8):
        torch.manual_seed(0)
        dec = OGNDecoder(8, R, 3, (8, 8, 4, 4))
        out[radius] = E.decoder_buffers(dec, torch.randn(1, 8), _ball_tree(R, radius))
    small, big = out[0.2], out[0.8]
    assert small["mixed_cells"] * 4 < big["mixed_cells"]
    assert small["accounted_bytes"] * 4 < big["accounted_bytes"]        # same R, ~16x the surface
    assert small["by_name"]["root grid"] == big["by_name"]["root grid"] == 4 * 8 * 8 ** 3   # the dense part
    # per mixed cell the bytes stay within a factor 2 between the two shapes
    per = [o["accounted_bytes"] / o["mixed_cells"] for o in (small, big)]
    assert max(per) < 2 * min(per)
    # the small ball's finest convolution level is sparse: no dense table there, sorted keys instead
    assert (32, "sort") in small["lookups"] and (32, "table") in big["lookups"]
    for o in (small, big):                                                # the rule: table <= the index
        assert o["by_name"].get("lookup: dense table", 0) <= o["by_name"]["neighbour index"]
        assert 0.5 * o["accounted_bytes"] < o["autograd_saved_bytes"] < 2 * o["accounted_bytes"]


def test_dense_decoder_buffers_meta_equals_a_real_run_and_the_layer_count():
    from course_lib.models.voxels import decoder_channels

    for R in (8, 16, 32):
        meta = E.dense_decoder_buffers(R, latent_dim=6, base_channels=4, batch_size=2)
        real = E.dense_decoder_buffers(R, latent_dim=6, base_channels=4, batch_size=2, device="cpu")
        assert meta["forward_bytes"] == real["forward_bytes"]
        assert meta["autograd_saved_bytes"] == real["autograd_saved_bytes"] > 0
        # analytic: the seed's Linear + ReLU (C0 * 4^3 each), three outputs per stage (conv-T, BN, ReLU) of
        # C * r^3, and the read-out's one logit per voxel; batch 2, float32
        ch = decoder_channels(R, 4, 4, 256)
        floats = 2 * ch[0] * 4 ** 3 + sum(3 * c * (4 * 2 ** (i + 1)) ** 3 for i, c in enumerate(ch[1:])) + R ** 3
        assert meta["forward_bytes"] == 4 * 2 * floats
        assert sum(meta["by_layer"].values()) == meta["forward_bytes"]
        # autograd keeps less than every output (the ReLU's output is the conv's next input) but most of it
        assert 0.4 * meta["forward_bytes"] < meta["autograd_saved_bytes"] < meta["forward_bytes"]
    # the dense account grows like R^3: 8x per doubling once the seed is negligible
    a, b = (E.dense_decoder_buffers(R, latent_dim=6, base_channels=4)["forward_bytes"] for R in (32, 64))
    assert 7.5 < b / a < 8.5
    with pytest.raises(ValueError, match="batch_size"):
        E.dense_decoder_buffers(16, latent_dim=6, base_channels=4, batch_size=0)


def test_account_summary_and_crossing_resolution():
    rows = [{"shape": s, "resolution": R, "octree_working_bytes": c * R ** 2, "dense_float_bytes": 4 * R ** 3}
            for s, c in (("a", 100), ("b", 300)) for R in (32, 64, 128)]
    summ = E.account_summary(rows)
    assert [r["bytes"] for r in summ] == ["octree, working (all three)", "dense float32 grid"]
    assert summ[1]["64^3 bytes"] == 4 * 64 ** 3 and summ[0]["k (mean)"] == 2.0 and summ[1]["k max"] == 3.0
    assert summ[0]["32^3 bytes"] == 200 * 32 ** 2
    assert E.crossing_resolution(rows, "octree_working_bytes", "dense_float_bytes") == pytest.approx(50.0)
    assert E.crossing_resolution(rows, "dense_float_bytes", "dense_float_bytes") is None
    assert "32^3 bytes" in E.rows_table(summ) and "MiB" in E.rows_table(summ)


def test_voxel_shell_against_scipy_erosion_and_the_shell_rows():
    import numpy as np
    from scipy import ndimage

    from course_lib.data import make_shape, voxel_shell, voxelize

    occ = voxelize(make_shape("mug", 3), 24)
    ref = occ.numpy() & ~ndimage.binary_erosion(occ.numpy(), structure=ndimage.generate_binary_structure(3, 1),
                                                border_value=0)
    assert np.array_equal(voxel_shell(occ).numpy(), ref)
    full = torch.ones(5, 5, 5, dtype=torch.bool)
    assert int(voxel_shell(full).sum()) == 5 ** 3 - 3 ** 3      # a full box: everything but its 3^3 core
    assert torch.equal(voxel_shell(full[None].float())[0], voxel_shell(full))   # batched and 0/1 floats
    with pytest.raises(ValueError, match="R, R, R"):
        voxel_shell(torch.ones(4, 4, 5))
    with pytest.raises(ValueError, match="0/1"):
        voxel_shell(torch.full((4, 4, 4), 0.5))
    rows = E.shell_compression((16, 32), ("mug",), profile="ci")
    assert [(r["grid"], r["resolution"]) for r in rows] == [("solid", 16), ("shell", 16), ("solid", 32), ("shell", 32)]
    for r in rows:
        assert r["round_trip_exact"] and r["ratio"] == pytest.approx(r["dense_float_bytes"] / r["octree_bytes"])
    solid, shell = rows[2], rows[3]
    assert shell["voxels"] <= solid["voxels"]


def test_upsample_grid_matches_kron_and_scipy_zoom_and_svr_iou_scores_an_exact_prediction_one():
    import numpy as np
    from scipy import ndimage

    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(2, 4, 4, 4, generator=g) > 0.5
    up = E.upsample_grid(coarse, 16)
    for i in range(2):
        assert np.array_equal(up[i].numpy(), np.kron(coarse[i].numpy(), np.ones((4, 4, 4), dtype=bool)))
        assert np.array_equal(up[i].numpy(), ndimage.zoom(coarse[i].numpy(), 4, order=0, grid_mode=True,
                                                          mode="grid-constant"))
    with pytest.raises(ValueError, match="multiple"):
        E.upsample_grid(coarse, 10)

    class Stub(torch.nn.Module):  # a "model" that predicts the coarse grids exactly
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, rgb, mode=None):
            idx = rgb[:, 0, 0, 0].long()
            return type("Out", (), {"occupancy": lambda self_: coarse[idx]})()

    rgb = torch.zeros(2, 3, 8, 8)
    rgb[1] = 1.0
    truth = up.float()
    iou = E.svr_iou_at(Stub(), rgb, truth)
    assert torch.allclose(iou, torch.ones(2, dtype=torch.float64))
    wrong = E.svr_iou_at(Stub(), rgb.flip(0), truth)        # each image decoded as the other shape
    assert float(wrong.max()) < 1.0
    with pytest.raises(ValueError, match="images but"):
        E.svr_iou_at(Stub(), rgb[:1], truth)


def test_single_view_ogn_trains_on_ci_sizes_and_decodes_an_octree():
    from course_lib.models.ogn import PROP_PRED, OGNSingleView

    with pytest.raises(ValueError, match="RGB images"):
        OGNSingleView(16, 8, 4, 3, (8, 8, 4, 4))(torch.zeros(1, 1, 16, 16))
    model, hist = E.train_ogn_svr(16, "ci", progress=False)
    assert hist.epochs_run >= 1 and hist.val
    data = E.svr_data("val", 16, "ci")
    out = model(data["rgb"][:2], mode=PROP_PRED)
    assert out.occupancy().shape == (2, 16, 16, 16)
    iou = E.svr_iou_at(model, data["rgb"], data["voxels"])
    assert iou.shape == (data["voxels"].shape[0],) and bool(((iou >= 0) & (iou <= 1)).all())


def test_octnet_classifier_equals_its_dense_twin_on_a_fully_split_octree():
    from course_lib.models.octnet import DenseGridClassifier, OctNetClassifier

    i, j, k = torch.meshgrid(*(torch.arange(16),) * 3, indexing="ij")
    checker = (i + j + k) % 2 == 0                       # no two neighbours alike: every leaf is one voxel
    grids = torch.stack([checker, ~checker])
    tree = build_octree(grids, 3)
    assert int(tree.leaves().size.max()) == 1
    torch.manual_seed(0)
    octnet = OctNetClassifier(5, (4, 8))
    dense = DenseGridClassifier(5, (4, 8)).load_octnet(octnet)
    torch.testing.assert_close(octnet(tree), dense(grids), rtol=1e-5, atol=1e-5)
    # on a real shape the leaves are larger: the octree network averages the convolution over each leaf
    from course_lib.data import make_shape, voxelize

    g = voxelize(make_shape("mug", 3), 16)[None]
    assert not torch.allclose(octnet(build_octree(g, 3)), dense(g), atol=1e-6)
    torch.testing.assert_close(octnet(grids), octnet(tree))      # dense grids are built into the same octree
    with pytest.raises(TypeError, match="Octree"):
        octnet([grids])
    with pytest.raises(ValueError, match="Octree or occupancy grids"):
        octnet(grids[0])
    with pytest.raises(ValueError, match="R, R, R"):
        dense(torch.zeros(1, 4, 4, 5))
    with pytest.raises(ValueError, match="channels"):
        OctNetClassifier(3, ())


def test_octnet_structure_cache_gives_the_uncached_logits_and_gradients():
    """The cached path assembles a batch from per-shape operators and pooling maps; it must equal building the
    batch's octree (logits and every parameter's gradient), in any batch order, with repeats hitting the cache."""
    from course_lib.data import make_shape, voxelize
    from course_lib.models.octnet import OctNetClassifier, StructureCache

    shapes = [("mug", 3), ("chair", 1), ("airplane", 2), ("table", 0), ("car", 5)]
    grids = torch.stack([voxelize(make_shape(c, sd), 32) for c, sd in shapes]).float()
    assert int(build_octree(grids > 0.5, 3).leaves().size.max()) > 1      # partly split: the hard case
    torch.manual_seed(0)
    plain = OctNetClassifier(5, (4, 8, 8), cache_structure=False)
    cache = StructureCache()
    cached = OctNetClassifier(5, (4, 8, 8), cache=cache)
    cached.load_state_dict(plain.state_dict())
    a, b = plain(grids), cached(grids)
    torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
    a.square().sum().backward()
    b.square().sum().backward()
    for p, q in zip(plain.parameters(), cached.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-6)
    assert (cache.hits, cache.misses, len(cache)) == (0, 5, 5) and cache.nbytes > 0
    order = torch.tensor([4, 2, 2, 0])                                   # another batch: reordered, a repeat
    torch.testing.assert_close(cached(grids[order]), plain(grids[order]), rtol=1e-6, atol=1e-6)
    assert (cache.hits, cache.misses, len(cache)) == (4, 5, 5)
    flipped = grids[:1].clone()
    flipped[0, 16, 16, 16] = 1.0 - flipped[0, 16, 16, 16]                # one voxel differs: its own entry
    torch.testing.assert_close(cached(flipped), plain(flipped), rtol=1e-6, atol=1e-6)
    assert cache.misses == 6
    # the least recently used structures go once the cache is over its size
    small = StructureCache(max_bytes=1.5 * cache.nbytes / len(cache))
    OctNetClassifier(5, (4, 8, 8), cache=small)(grids)
    assert len(small) == 1 and small.nbytes <= small.max_bytes
    with pytest.raises(ValueError, match="max_bytes"):
        StructureCache(max_bytes=0)
    cache.clear()
    assert (len(cache), cache.nbytes, cache.hits, cache.misses) == (0, 0, 0, 0)
    with pytest.raises(ValueError, match="operator"):                    # an operator of another structure
        cached.convs[0].apply_operator(torch.zeros(27 * 4, 4).to_sparse(), torch.zeros(5, 1))


def test_grid_classifiers_train_on_ci_sizes_and_their_step_cost_is_measured():
    data = E.octree_data("train", "ci", resolution=16)
    model, hist = E.train_grid_classifier("octree", "ci", data=data, val_data=E.octree_data("val", "ci", resolution=16),
                                          progress=False)
    assert hist.epochs_run >= 1 and hist.val
    from course_lib.experiments.voxels import accuracy

    acc = accuracy(model, data["voxels"], data["label"], batch_size=4)
    assert 0.0 <= acc <= 1.0
    rows = E.encoder_cost((16,), profile="ci", batch_size=2, repeat=1)
    assert [r["encoder"] for r in rows] == ["octree", "octree (cached)", "dense"]
    assert all(r["seconds"] > 0 for r in rows) and rows[0]["leaves_per_shape"] > 0
    assert rows[1]["cache_bytes_per_shape"] > 0 and "cache_bytes_per_shape" not in rows[0]
    with pytest.raises(ValueError, match="kind"):
        E.build_grid_classifier("sparse", 2, "ci")
