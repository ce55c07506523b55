"""Tests of course_lib.experiments.encoders (augmentation, loss, evaluation, builders)."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import config
from course_lib.experiments import encoders as C
from course_lib.models import encoders as E


def _clouds(B=4, N=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, N, 3, generator=g) * 0.4


def test_rotate_up_keeps_height_and_radius():
    x = _clouds()
    ang = torch.tensor([0.3, -1.0, math.pi, 2.5])
    y = C.rotate_up(x, ang)
    assert torch.allclose(y[..., 1], x[..., 1])
    assert torch.allclose(y[..., [0, 2]].norm(dim=-1), x[..., [0, 2]].norm(dim=-1), atol=1e-6)
    # a quarter turn about y maps +z to +x (right-handed: R_y(90) z = x)
    e = torch.tensor([[[0.0, 0.0, 1.0]]])
    assert torch.allclose(C.rotate_up(e, torch.tensor([math.pi / 2])), torch.tensor([[[1.0, 0.0, 0.0]]]), atol=1e-6)


def test_augment_and_jitter():
    x = _clouds()
    torch.manual_seed(0)
    y = C.augment_points(x, rotate=False, scale=None, jitter=0.01, jitter_clip=0.02)
    assert (y - x).abs().max() <= 0.02 + 1e-7 and (y - x).abs().max() > 0
    z = C.augment_points(x, rotate=False, scale=(2.0, 2.0), jitter=0.0)
    assert torch.allclose(z, 2 * x)
    j = C.jitter_points(torch.zeros(1, 20000, 3), 0.05)
    assert abs(j.std().item() - 0.05) < 0.002
    with pytest.raises(ValueError):
        C.jitter_points(x, -1.0)
    with pytest.raises(ValueError):
        C.augment_points(x[0])


def test_random_subset_distinct_points():
    x = torch.arange(60.0).view(1, 20, 3).expand(3, -1, -1).contiguous()
    s = C.random_subset(x, 7, generator=torch.Generator().manual_seed(1))
    assert s.shape == (3, 7, 3)
    for b in range(3):
        rows = {tuple(r.tolist()) for r in s[b]}
        assert len(rows) == 7 and rows <= {tuple(r.tolist()) for r in x[b]}
    with pytest.raises(ValueError):
        C.random_subset(x, 21)


def _tiny_model(n_classes=3):
    return E.PointNetClassifier(E.PointNet(feat_dim=16, hidden=(8,), feature_transform=True, tnet_scale=0.0625),
                                n_classes, hidden=(8,), dropout=0.0)


def test_classification_loss_includes_regulariser():
    torch.manual_seed(0)
    m = _tiny_model()
    for mod in m.modules():
        if isinstance(mod, E.TNet):
            torch.nn.init.normal_(mod.out.weight, std=0.5)
    x, y = _clouds(6, 40), torch.tensor([0, 1, 2, 0, 1, 2])
    m.eval()  # deterministic forward (BN running stats, no dropout)
    torch.manual_seed(3)
    with_reg = C.ClassificationLoss(40, augment=False, reg_weight=1.0)(m, (x, y))
    torch.manual_seed(3)
    no_reg = C.ClassificationLoss(40, augment=False, reg_weight=0.0)(m, (x, y))
    logits, out = m.forward_with_output(x)
    expected = E.orthogonality_regularizer(out.transforms["feature"])
    assert abs((with_reg["loss"] - no_reg["loss"]).item() - expected.item()) < 1e-4 and expected > 0
    assert 0.0 <= with_reg["acc"] <= 1.0


def test_evaluate_accuracy_counts_correct_predictions():
    class Oracle(torch.nn.Module):  # predicts the class from the sign of the mean x coordinate
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, p):
            m = p[..., 0].mean(1)
            return torch.stack([-m, m], dim=1)

    x = _clouds(10, 30)
    labels = (x[..., 0].mean(1) > 0).long()
    assert C.evaluate_accuracy(Oracle(), x, labels) == 1.0
    assert C.evaluate_accuracy(Oracle(), x, 1 - labels) == 0.0
    flipped = labels.clone()
    flipped[:3] = 1 - flipped[:3]
    assert C.evaluate_accuracy(Oracle(), x, flipped, batch_size=4) == pytest.approx(0.7)
    res = C.accuracy_vs_points(Oracle(), x, labels, [5, 30, 60])
    assert set(res) == {5, 30} and res[30] == 1.0
    assert set(C.accuracy_vs_jitter(Oracle(), x, labels, [0.0, 0.1])) == {0.0, 0.1}


def test_builders_follow_the_profile_and_permutation_error():
    for name in C.MODELS:
        m = C.build_classifier(name, 5, profile="ci")
        assert m(_clouds(2, 64)).shape == (2, 5)
        kw = C.fit_kwargs(name, m, (_clouds(8, 64), torch.arange(8) % 5), profile="ci")
        assert kw["epochs"] == config.size(f"ch02.train_{name}", "ci")["epochs"]
    with pytest.raises(ValueError):
        C.build_classifier("resnet", 5)
    m = C.build_classifier("pointnet", 5, profile="ci")
    assert C.permutation_error(m, _clouds(2, 64)) < 1e-5
    ref = C.build_classifier("pointnet2", 5, profile="ci", grouping="ball_query", fps_start=0)
    assert ref.encoder.fps_start == 0 and all(sa.grouping == "ball_query" for sa in ref.encoder.sa[:-1])
    assert C.build_classifier("pointnet2", 5, profile="ci").encoder.fps_start == "farthest"
    # the full permutation moves point 0 too, so FPS started at index 0 shows up; the default does not
    torch.manual_seed(0)
    x = _clouds(2, 256)
    default = C.build_classifier("pointnet2", 5, profile="ci").eval()
    assert C.permutation_error(default, x) < 1e-5
    torch.manual_seed(0)
    fps0 = C.build_classifier("pointnet2", 5, profile="ci", fps_start=0).eval()
    assert C.permutation_error(fps0, x) > 1e-4
    with pytest.raises(TypeError):
        C.build_classifier("pointnet", 5, profile="ci", no_such_option=1)


def test_ci_training_runs_and_learns_something():
    # two separable classes (small vs large spheres); a few steps must lower the loss
    from course_lib import train as T

    g = torch.Generator().manual_seed(0)
    pts = torch.randn(32, 64, 3, generator=g)
    pts = pts / pts.norm(dim=-1, keepdim=True)
    labels = torch.arange(32) % 2
    pts = pts * torch.where(labels == 0, 0.3, 0.9)[:, None, None]
    model = C.build_classifier("pointnet", 2, profile="ci")
    kw = C.fit_kwargs("pointnet", model, (pts, labels), (pts, labels), profile="ci", progress=False,
                      live_plot=False)
    kw.update(epochs=25, max_batches_per_epoch=None)
    hist = T.fit(model, **kw)
    assert hist.train_loss[-1] < hist.train_loss[0]
    assert C.evaluate_accuracy(model, pts, labels) >= 0.9


def test_critical_points_and_figures():
    torch.manual_seed(0)
    x = _clouds(1, 64)[0]
    for name in C.MODELS:
        m = C.build_classifier(name, 3, profile="ci").eval()
        crit = C.critical_points(m, x)
        assert crit.dim() == 1 and 0 < len(crit) <= 64 and crit.max() < 64
        if name == "pointnet":  # the critical points alone give the same global feature
            with torch.no_grad():
                full = m.encoder(x[None]).pooled
                sub = m.encoder(x[crit][None]).pooled
            assert (full - sub).abs().max() < 1e-5
        fig = C.critical_points_figure(m, x)
        assert len(fig.data) == 2 and len(fig.data[1].x) == len(crit)
        # "critical" only where they are a critical set: a PointNet without T-Nets
        tnets = name == "pointnet" and (m.encoder.input_tnet is not None or m.encoder.feature_tnet is not None)
        want = "critical points" if name == "pointnet" and not tnets else "winning points"
        assert C.winning_points_name(m)[0] == want and want in fig.layout.title.text and fig.data[1].name == want
        for level in (0, 5):
            fig = C.receptive_field_figure(m, x, point=3, level=level)
            assert fig.data[-1].x[0] == pytest.approx(float(x[3, 0]))


def test_image_helpers():
    rgb, depth = torch.rand(6, 3, 16, 16), torch.rand(6, 16, 16) * 3
    assert C.image_inputs(rgb, depth, "rgb") is rgb
    x = C.image_inputs(rgb, depth, "rgbd")
    assert x.shape == (6, 4, 16, 16) and torch.allclose(x[:, 3], depth / C.DEPTH_SCALE)
    with pytest.raises(ValueError):
        C.image_inputs(rgb, depth, "depth")
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    model, hist = C.train_image_classifier("rgbd", (rgb, depth, labels), (rgb, depth, labels), epochs=1,
                                           width=4, batch_size=3, progress=False, live_plot=False)
    assert model(x).shape == (6, 3) and len(hist.val) == 1 and 0 <= hist.val[0]["val_acc"] <= 1


def test_load_point_clouds_larger_held_out_split_extends_the_test_split():
    small = C.load_point_clouds("test", profile="ci", categories=("mug", "lamp"))
    big = C.load_point_clouds("test", profile="ci", categories=("mug", "lamp"), shapes_per_category=3)
    per = config.size("data.shapes_per_category_test", "ci")
    assert big[0].shape[0] == 6 and small[0].shape[0] == 2 * per
    # the same seeds come first in each category: the profile's split is a subset
    for c in range(2):
        assert torch.equal(big[0][3 * c: 3 * c + per], small[0][per * c: per * (c + 1)])
        assert torch.equal(big[1][3 * c: 3 * c + per], small[1][per * c: per * (c + 1)])


def test_make_loader_is_batches_of_dicts_reshuffled_each_epoch():
    pts, labels = _clouds(10, 8), torch.arange(10)
    loader = C.make_loader(pts, labels, 4, shuffle=True, seed=0)
    assert len(loader) == 3
    e1 = [b["label"].tolist() for b in loader]
    e2 = [b["label"].tolist() for b in loader]
    assert sorted(sum(e1, [])) == list(range(10)) and e1 != e2
    b = next(iter(loader))
    assert torch.equal(b["points"], pts[b["index"]])


def test_checkpoint_path_depends_on_the_variant(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    a = C.checkpoint_path("pointnet", "ci")
    assert a == C.checkpoint_path("pointnet", "ci")
    assert a != C.checkpoint_path("pointnet2", "ci")
    assert a != C.checkpoint_path("pointnet", "ci", grouping="knn")
    assert a.name.startswith("ch02_pointnet-ci-")


def test_smoke_runs_every_model_on_cpu(one_torch_thread):
    out = C.smoke("cpu", steps=1, profile="ci")
    for name in (*C.MODELS, "resnet_rgbd"):
        assert out[f"{name}_params"] > 0 and math.isfinite(out[f"{name}_loss"])
    assert out["seconds"] > 0


# --- protocol 2: budgets, the kept epoch, claims over seeds, goals -------------------------------------

def test_training_steps_by_hand():
    assert C.training_steps(400, 32, 6) == 12 * 6  # 400 // 32 = 12 full batches
    assert C.training_steps(400, 32, 6, drop_last=False) == 13 * 6  # the last partial batch counts
    assert C.training_steps(400, 16, 40) == 1000
    assert C.training_steps(40, 16, 3, max_batches=2) == 6
    assert C.training_steps(10, 32, 5) == 0
    with pytest.raises(ValueError):
        C.training_steps(10, 0, 1)


def test_classifier_budget_follows_the_profile():
    b = C.classifier_budget("pointnet2", 400, 40, [90.0, 110.0], 1234, "laptop")
    assert b["steps"] == 1000 and b["examples"] == 16000 and b["seconds"] == 100.0 and b["params"] == 1234
    assert b["epochs"] == 40 and b["batch_size"] == 16
    assert C.classifier_budget("pointnet", 400, 6, [1.0], 1, "laptop")["steps"] == 72  # batch 32
    assert C.classifier_budget("dgcnn", 40, 3, [1.0], 1, "ci")["steps"] == 6  # max_batches 2


def test_epoch_candidates_and_the_epochs_override():
    assert C.epoch_candidates("pointnet", "laptop") == (6, 12)
    with pytest.raises(ValueError, match="unknown model"):
        C.epoch_candidates("resnet", "laptop")
    model = C.build_classifier("pointnet", 2, profile="ci")
    pts, labels = _clouds(8, 32), torch.arange(8) % 2
    kw = C.fit_kwargs("pointnet", model, (pts, labels), profile="ci", epochs=7)
    assert kw["epochs"] == 7 and kw["scheduler"].T_max == 7
    assert C.fit_kwargs("pointnet", model, (pts, labels), profile="ci")["epochs"] == 1
    with pytest.raises(ValueError, match="epochs"):
        C.fit_kwargs("pointnet", model, (pts, labels), profile="ci", epochs=0)


def test_best_epoch_record_agrees_with_the_training_loop():
    from course_lib.train import History

    h = History(val=[{"val_loss": 1.0, "val_acc": 0.5}, {"val_loss": 0.4, "val_acc": 0.9},
                     {"val_loss": 0.4, "val_acc": 0.9}, {"val_loss": 0.7, "val_acc": 0.95}])
    kept, rec = C.best_epoch_record("x", h)
    assert kept == 1 and rec["chosen"] == "epoch 2" and rec["selected_on"] == "val"  # ties: the first
    assert len(rec["candidates"]) == 4
    kept, rec = C.best_epoch_record("x", h, metric="val_acc", higher_is_better=True)
    assert kept == 3
    with pytest.raises(ValueError, match="no validation curve"):
        C.best_epoch_record("x", History())
    with pytest.raises(ValueError, match="no 'val_f1'"):
        C.best_epoch_record("x", h, metric="val_f1")
    # a real run: the record keeps the epoch the training loop kept
    from course_lib import train as T

    pts, labels = _clouds(16, 32), torch.arange(16) % 2
    model = C.build_classifier("pointnet", 2, profile="ci")
    kw = C.fit_kwargs("pointnet", model, (pts, labels), (pts, labels), profile="ci", progress=False,
                      live_plot=False, epochs=4)
    hist = T.fit(model, **kw)
    assert C.best_epoch_record("run", hist)[0] == hist.best_epoch


def _budgets(*names, steps=100):
    from course_lib.experiments.protocol import budget

    return {n: budget(steps=steps, examples=steps * 16, seconds=1.0, params=10) for n in names}


def test_seed_claims_pair_over_seeds_and_skip_what_did_not_run():
    values = {"acc": {"a": [0.90, 0.91, 0.92], "b": [0.80, 0.82, 0.81], "c": [0.90, 0.80, 0.92]}}
    specs = [("a_vs_b", "a", "b", "acc", "A beats B"), ("c_vs_a", "c", "a", "acc", "C beats A"),
             ("a_vs_d", "a", "d", "acc", "D did not run"), ("x", "a", "b", "f1", "no such metric")]
    out = {c["id"]: c for c in C.seed_claims(values, specs, _budgets("a", "b", "c"))}
    assert set(out) == {"a_vs_b", "c_vs_a"}
    assert out["a_vs_b"]["verdict"] == "ahead" and out["a_vs_b"]["difference"] == pytest.approx(0.1)
    assert out["c_vs_a"]["verdict"] == "not separated" and out["a_vs_b"]["unit"] == "seeds"
    assert out["a_vs_b"]["budget"]["a"]["steps"] == 100
    with pytest.raises(ValueError, match="too few"):
        C.seed_claims({"acc": {"a": [0.9, 0.8], "b": [0.7, 0.6]}}, specs[:1], _budgets("a", "b"))


def test_encoder_goals_computed_from_the_runs():
    models = {"pointnet": {"accuracy": [0.95, 0.93, 0.94], "fit_s": [20, 25, 22], "perm_error": [0.0, 0.0, 0.0]},
              "pointnet2": {"accuracy": [0.9, 0.9, 0.9], "fit_s": [100, 310, 90], "perm_error": [0.0, 2e-5, 0.0]}}
    claims = [{"id": "pointnet2_vs_pointnet", "verdict": "behind"}, {"id": "dgcnn_vs_pointnet", "verdict": "ahead"}]
    g = {r["id"]: r for r in C.encoder_goals(models, claims)}
    assert g["pointnet_accuracy"]["value"] == pytest.approx(0.94) and g["pointnet_accuracy"]["met"]
    assert g["train_seconds"]["value"] == 310 and not g["train_seconds"]["met"]
    assert not g["permutation_error"]["met"]
    assert not g["pointnet2_not_behind_pointnet"]["met"] and g["dgcnn_not_behind_pointnet"]["met"]
    claims[0]["verdict"] = "not separated"
    assert {r["id"]: r for r in C.encoder_goals(models, claims)}["pointnet2_not_behind_pointnet"]["met"]


def test_train_keep_best_records_the_epoch_it_kept(tmp_path):
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(16, 64, 3, generator=g)
    pts = pts / pts.norm(dim=-1, keepdim=True)
    labels = torch.arange(16) % 2
    pts = pts * torch.where(labels == 0, 0.3, 0.9)[:, None, None]
    model, hist, wall, kept, rec = C.train_keep_best("pointnet", (pts, labels), (pts, labels), profile="ci", seed=0,
                                                     epochs=3, checkpoint=tmp_path / "m.pt")
    losses = [v["val_loss"] for v in hist.val]
    assert wall > 0 and len(losses) == 3
    assert kept == losses.index(min(losses))  # 0-based: the epoch the loop kept, the lowest validation loss
    assert rec["selected_on"] == "val" and rec["id"] == "best_epoch/pointnet/seed0"
    assert rec["chosen"] == f"epoch {kept + 1}"


def test_confusion_matrix_counts_as_a_loop_and_its_trace_is_the_accuracy():
    class Thirds(torch.nn.Module):  # class from the mean x coordinate, in three bins
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, p):
            m = p[..., 0].mean(1)
            return torch.stack([-(m + 0.1).abs(), -m.abs(), -(m - 0.1).abs()], dim=1)

    x = _clouds(40, 20)
    gen = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 3, (40,), generator=gen)
    cm = C.confusion_matrix(Thirds(), x, labels, 3, batch_size=7)
    pred = Thirds()(x).argmax(1)
    ref = torch.zeros(3, 3, dtype=torch.long)
    for t, q in zip(labels.tolist(), pred.tolist()):  # the definition, one shape at a time
        ref[t, q] += 1
    assert torch.equal(cm, ref) and int(cm.sum()) == 40
    assert float(cm.trace()) / 40 == pytest.approx(C.evaluate_accuracy(Thirds(), x, labels))
    with pytest.raises(ValueError, match="labels"):
        C.confusion_matrix(Thirds(), x, labels[:5], 3)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        C.confusion_matrix(Thirds(), x, labels, 2)


def test_global_features_and_pca_2d():
    import numpy as np

    config.seed_everything(0)
    model = C.build_classifier("pointnet", n_classes=3, profile="ci")
    x = _clouds(6, 32)
    f = C.global_features(model, x, batch_size=4)
    model.eval()
    with torch.no_grad():
        ref = model.forward_with_output(x)[1].global_feature
    assert f.shape == ref.shape and torch.allclose(f, ref, atol=1e-5)
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(30, 5, generator=gen) * torch.tensor([5.0, 3.0, 1.0, 0.5, 0.1])
    xy = C.pca_2d(feats).numpy()
    centred = feats.double().numpy() - feats.double().numpy().mean(0)
    w, v = np.linalg.eigh(np.cov(centred, rowvar=False))  # an independent route: the covariance's eigenvectors
    ref_xy = centred @ v[:, ::-1][:, :2]
    for k in range(2):
        assert np.allclose(np.abs(xy[:, k]), np.abs(ref_xy[:, k]), atol=1e-8)
        assert abs(np.corrcoef(xy[:, k], ref_xy[:, k])[0, 1]) > 0.999999
    with pytest.raises(ValueError):
        C.pca_2d(torch.zeros(1, 4))


def test_winning_points_are_named_by_what_they_are():
    pn = E.PointNet(feat_dim=16, hidden=(8,))
    assert C.winning_points_name(pn)[0] == "critical points"
    with_tnet = E.PointNet(feat_dim=16, hidden=(8,), input_transform=True, tnet_scale=0.0625)
    assert C.winning_points_name(with_tnet)[0] == "winning points" and "T-Net" in C.winning_points_name(with_tnet)[1]
    for name, why in (("pointnet2", "FPS"), ("dgcnn", "kNN graph")):
        got = C.winning_points_name(C.build_classifier(name, 3, profile="ci"))
        assert got[0] == "winning points" and why in got[1]


@pytest.mark.parametrize("pool", ["mean", "sum"])
def test_pointnet_pool_variant_builds_trains_and_keeps_its_own_checkpoint(pool, tmp_path, monkeypatch):
    """Lecture 02's exercise 1: build_classifier("pointnet", pool=...) and its own checkpoint name."""
    m = C.build_classifier("pointnet", 3, profile="ci", pool=pool).eval()
    x = _clouds(2, 40)
    with torch.no_grad():
        assert m(x).shape == (2, 3)
        assert m.encoder(x).critical_idx is None
    with pytest.raises(ValueError, match="no critical points"):
        C.critical_points(m, x[0])
    base = C.checkpoint_path("pointnet", "ci")
    mine = C.checkpoint_path("pointnet", "ci", arch={"pool": pool})
    assert mine != base and mine != C.checkpoint_path("pointnet", "ci", arch={"pool": "max"})
    with pytest.raises(ValueError, match="chapter's own"):
        C.train_classifier("pointnet", (x, torch.tensor([0, 1])), profile="ci", checkpoint=base, arch={"pool": pool})


def test_train_classifier_on_a_split_smaller_than_one_batch_trains_in_one_batch(tmp_path):
    """A small real dataset (fewer training shapes than ch02's batch) trains on one batch of all of them per
    epoch instead of stopping on an empty loader; fewer than 2 shapes (no BatchNorm batch) is refused by name."""
    from course_lib import config

    bs = int(dict(config.sizes("ci", prefix="ch02."))["train_pointnet"].get(
        "batch_size", config.size("ch02.batch_size", "ci")))
    n = max(2, bs - 1)
    x, y = _clouds(n, 40), torch.arange(n) % 3
    model, hist = C.train_classifier("pointnet", (x, y), profile="ci", checkpoint=tmp_path / "small.pt", epochs=1)
    assert hist.epochs_run == 1 and len(hist.train_loss) == 1
    with pytest.raises(ValueError, match="at least 2 training shapes"):
        C.train_classifier("pointnet", (x[:1], y[:1]), profile="ci", checkpoint=tmp_path / "one.pt", epochs=1)
