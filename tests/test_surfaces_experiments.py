"""Chapter-06 experiment helpers: splits, batches, PointSetGen at equal points, normals, mesh metrics."""

from __future__ import annotations

import pytest
import torch
import trimesh

from course_lib.experiments import surfaces as S
from course_lib.ops import chamfer_distance

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_dataset_streams_parts_and_batches():
    from course_lib.data import split_of

    d = S.surface_dataset(["mug"], "train", 2, 64, n_input=32, profile="ci")
    assert d["points"].shape == (2, 32, 3) and d["part"].shape == (2, 32)
    assert d["target_points"].shape == (2, 64, 3)
    assert d["parts"][0] == ("body", "handle")
    assert all(split_of(s) == "train" for s in d["seed"].tolist())
    # the target is another sampling than the input: no input point is a target point
    assert torch.cdist(d["points"][0], d["target_points"][0]).min() > 0
    b = list(S.surface_batches(d, 1, n_input=16, seed=3))
    assert len(b) == 2 and b[0]["input"].shape == (1, 16, 3) and b[0]["target"].shape == (1, 64, 3)
    k = int(b[0]["index"][0])
    assert torch.equal(b[0]["target"][0], d["target_points"][k])
    with pytest.raises(ValueError, match="category"):
        S.surface_dataset(["teapot"], "train", 1, 8)


def test_checkpoint_path_is_keyed_by_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    d = S.surface_dataset(["mug"], "train", 2, 64, n_input=32, profile="ci")
    a = S.checkpoint_path("ae-square5", d, "ci")
    assert a == S.checkpoint_path("ae-square5", d, "ci") and a.name.startswith("ch06_ae-square5-ci-")
    assert a != S.checkpoint_path("ae-square5", d, "ci", n_input=16)
    assert a != S.checkpoint_path("ae-square5", {**d, "seed": d["seed"] + 1}, "ci")


def test_the_template_is_outside_every_split():
    from course_lib.data import reserved_seed, split_of

    assert split_of(reserved_seed("template")) == "reserved"
    t = S.coded_template("mug", 12)
    assert len(t.vertices) > 0


def test_smoke_runs_every_model():
    out = S.smoke("cpu", steps=1, profile="ci")
    for name in ("atlasnet_square", "atlasnet_sphere", "atlasnet_svr", "psg", "coded"):
        assert out[f"{name}_params"] > 0 and out[f"{name}_loss"] == out[f"{name}_loss"]


@pytest.mark.parametrize("n", [256, 1000, 1024])
def test_psg_at_equal_points(n):
    m = S.build_psg(n, latent_dim=16)
    assert m.n_points == n
    assert m(torch.randn(2, 100, 3)).shape == (2, n, 3)


def test_estimate_normals_on_a_sphere():
    ico = trimesh.creation.icosphere(3)
    p = torch.as_tensor(ico.vertices, dtype=torch.float32) * 0.7 + torch.tensor([0.1, 0.0, -0.1])
    radial = (p - torch.tensor([0.1, 0.0, -0.1])) / 0.7
    n = S.estimate_normals(p, k=12)
    assert float((n * radial).sum(-1).min()) > 0.98  # outward, along the radius
    # oracle orientation against flipped reference normals flips them all
    n2 = S.estimate_normals(p, k=12, reference=(p, -radial))
    assert float((n2 * radial).sum(-1).max()) < -0.98


def test_mesh_chamfer_and_evaluate_chamfer_convention():
    ico = trimesh.creation.icosphere(4)
    target = torch.nn.functional.normalize(torch.randn(2000, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    cd = S.mesh_chamfer(ico, target)
    assert 0 < cd < 5  # both are the unit sphere: only the sampling gap remains (x1000)
    x, y = torch.rand(2, 50, 3), torch.rand(2, 60, 3)
    assert S.evaluate_chamfer(x, y) == pytest.approx(1000 * float(chamfer_distance(x, y)), rel=1e-6)
    # by hand: squared distances, mean per direction, summed
    d = torch.cdist(x[0], y[0]) ** 2
    hand = 1000 * (d.min(1).values.mean() + d.min(0).values.mean())
    assert float(S.chamfer_per_shape(x, y)[0]) == pytest.approx(float(hand), rel=1e-5)


def test_training_a_tiny_atlasnet_through_train_or_load(tmp_path):
    from course_lib.experiments.common import predict

    d = S.surface_dataset(["mug"], "train", 2, 64, profile="ci")
    m = S.build_atlasnet("square", 2, 8, "pointnet", (16,), 64)
    h = S.train_atlasnet(m, d, epochs=2, batch_size=2, n_points=64, checkpoint=tmp_path / "a.pt", progress=False,
                         live_plot=False)
    assert h.epochs_run == 2 and (tmp_path / "a.pt").exists()
    m2 = S.build_atlasnet("square", 2, 8, "pointnet", (16,), 64)
    h2 = S.train_atlasnet(m2, d, epochs=2, batch_size=2, n_points=64, checkpoint=tmp_path / "a.pt", progress=False,
                          live_plot=False)
    assert h2.epochs_run == 2
    for a, b in zip(m.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    assert predict(m2, d["points"], **S.output_size(m2, 40)).shape == (2, 40, 3)
    psg = S.build_psg(256, latent_dim=8)
    assert S.output_size(psg, 256) == {} and predict(psg, d["points"]).shape == (2, 256, 3)


def test_fixed_template_keeps_one_sample_and_its_own_signature(tmp_path):
    """Lecture 06's exercise 1: template="fixed" decodes the same template points at every step (in training
    and in eval mode), under a training signature of its own; the default keeps the chapter's signature."""
    from course_lib import train as T

    d = S.surface_dataset(["mug"], "train", 2, 64, profile="ci")
    m = S.build_atlasnet("square", 2, 8, "pointnet", (16,), 64)
    batch = {"input": d["points"], "target": d["target_points"]}
    fixed = S.fixed_template_loss_fn(64, seed=3)
    m.train()
    with torch.no_grad():
        a, b = fixed(m, batch), fixed(m, batch)
        r1, r2 = S.atlas_loss_fn(64)(m, batch), S.atlas_loss_fn(64)(m, batch)
    assert float(a) == float(b)  # the same template points every call (BatchNorm aside: train mode, same batch)
    assert float(r1) != float(r2)  # the default resamples
    m.eval()
    with torch.no_grad():
        assert float(fixed(m, batch)) == float(fixed(m, batch))
    assert S.chamfer_loss_fn is S.atlas_loss_fn
    sig = T.describe_callable
    assert sig(S.atlas_loss_fn(64)) == sig(S.chamfer_loss_fn(64)) != sig(S.fixed_template_loss_fn(64))
    with pytest.raises(ValueError, match="no template"):
        fixed(S.build_psg(256, latent_dim=8), batch)
    h = S.train_atlasnet(m, d, epochs=1, batch_size=2, n_points=64, checkpoint=tmp_path / "f.pt", progress=False,
                         live_plot=False, template="fixed")
    assert h.epochs_run == 1
    with pytest.raises(ValueError, match="template must be one of"):
        S.train_atlasnet(m, d, epochs=1, batch_size=2, n_points=64, checkpoint=tmp_path / "g.pt", progress=False,
                         live_plot=False, template="lattice")
    with pytest.raises(ValueError, match="no template to fix"):
        S.train_chapter_model("ae-psg", "ci", template="fixed")


def test_label_transfer_refines_with_the_given_edge_weight(monkeypatch):
    """Lecture 06's exercise 3: label_transfer passes its edge_weight to refine_latent (the training value)."""
    from course_lib.models import coded

    seen = []
    real = coded.refine_latent

    def spy(model, z, target, steps=50, lr=5e-3, edge_weight=0.1):
        seen.append(edge_weight)
        return real(model, z, target, steps=1, lr=lr, edge_weight=edge_weight)

    monkeypatch.setattr(coded, "refine_latent", spy)
    d = S.surface_dataset(["mug"], "test", 1, 64, profile="ci")
    m = S.build_coded("mug", latent_dim=8, hidden=(16,), template_resolution=8)
    S.label_transfer(m, d, refine_steps=2, n_input=32, edge_weight=10.0)
    S.label_transfer(m, d, refine_steps=2, n_input=32)
    assert seen == [10.0, 0.1]


def test_oracle_is_the_chamfer_between_two_independent_samplings_of_the_true_surface():
    from course_lib.data import SAMPLING_STREAMS, make_shape

    ref = S.surface_dataset(["mug"], "test", 1, 128, oracle=True, profile="ci")
    val = S.oracle_chamfer(ref)
    shape = make_shape("mug", int(ref["seed"][0]))
    target = shape.sample_surface(128, stream=SAMPLING_STREAMS["target"])[0]
    other = shape.sample_surface(128, stream=SAMPLING_STREAMS["oracle"])[0]
    assert val == pytest.approx(1000 * float(chamfer_distance(other[None], target[None])), rel=1e-5)
    assert val > 0
    with pytest.raises(ValueError, match="oracle=True"):
        S.oracle_chamfer(S.surface_dataset(["mug"], "test", 1, 128, profile="ci"))


# --- protocol 2: the chapter's recipes, choices on val, budgets, retrieval -------------------------

def test_parse_model_key():
    assert S.parse_model_key("ae-square25") == ("ae", "square", 25)
    assert S.parse_model_key("svr-sphere1") == ("svr", "sphere", 1)
    assert S.parse_model_key("ae-psg") == ("ae", "psg", 0)
    for bad in ("ae-square0", "ae-sphere2", "vae-psg", "ae-square", "ae-psg1"):
        with pytest.raises(ValueError, match="model key"):
            S.parse_model_key(bad)


def test_val_batches_keep_the_first_points_in_a_fixed_order():
    d = {"points": torch.arange(3 * 10 * 3, dtype=torch.float32).view(3, 10, 3), "target_points": torch.rand(3, 7, 3)}
    first = list(S.val_batches(d, 2, n_input=4))
    again = list(S.val_batches(d, 2, n_input=4))
    assert [b["index"].tolist() for b in first] == [[0, 1], [2]]
    assert torch.equal(first[0]["input"], d["points"][:2, :4]) and torch.equal(first[1]["input"], again[1]["input"])
    assert torch.equal(first[1]["target"], d["target_points"][2:])


def _history(val, best):
    from course_lib.train import History

    return History(train_loss=[1.0] * len(val), val=[{"val_loss": v} for v in val], best_epoch=best,
                   best_metric=val[best] if val else float("nan"), monitor="val_loss", wall_time=12.5,
                   epochs_run=len(val))


def test_best_epoch_record_is_the_kept_epoch():
    rec = S.best_epoch_record("e", _history([0.5, 0.3, 0.4], best=1))
    assert rec["chosen"] == "2" and rec["selected_on"] == "val" and rec["candidates"] == {"1": 0.5, "2": 0.3, "3": 0.4}
    with pytest.raises(RuntimeError, match="kept epoch 3"):
        S.best_epoch_record("e", _history([0.5, 0.3, 0.4], best=2))  # a run that kept another epoch than val's best
    with pytest.raises(ValueError, match="no validation"):
        S.best_epoch_record("e", _history([], best=-1))


def test_training_budget_by_hand():
    m = torch.nn.Linear(3, 2)  # 8 parameters
    m.bias.requires_grad_(False)  # 6 trainable
    b = S.training_budget(m, _history([0.5, 0.3, 0.4], best=1), n_train=10, batch_size=4)
    assert b == {"steps": 9, "examples": 30, "seconds": 12.5, "params": 6, "epochs": 3, "best_epoch": 2}
    with pytest.raises(ValueError, match=">= 1"):
        S.training_budget(m, _history([0.5], best=0), n_train=0, batch_size=4)


def test_train_chapter_model_keeps_the_best_val_epoch_and_loads_it(tmp_path, monkeypatch):
    from course_lib.data import split_of

    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    splits = S.chapter_splits("ci")
    assert {split_of(s) for s in splits["val"]["seed"].tolist()} == {"val"}
    assert splits["val"]["points"].shape[1] == 256  # ch06.n_input in ci
    m, h = S.train_chapter_model("ae-square1", "ci", splits=splits, progress=False, live_plot=False)
    assert not m.training and len(h.val) == h.epochs_run == 2 and h.monitor == "val_loss"
    assert S.best_epoch_record("x", h)["chosen"] == str(h.best_epoch + 1)
    m2, h2 = S.train_chapter_model("ae-square1", "ci", splits=splits, progress=False, live_plot=False)
    assert h2.to_dict() == h.to_dict()  # loaded, not retrained
    for a, b in zip(m.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="views"):
        S.train_chapter_model("svr-psg", "ci", splits=splits, progress=False, live_plot=False)
    with pytest.raises(ValueError, match="that category only"):
        S.train_chapter_coded("mug", "ci", splits=splits, progress=False, live_plot=False)


def test_select_poisson_resolution_on_val_only(tmp_path, monkeypatch):
    from course_lib.geometry import poisson_reconstruct

    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    val = S.surface_dataset(["mug"], "val", 2, 128, n_input=128, profile="ci")
    res, rec = S.select_poisson_resolution("grid", val, (8, 16), "true")
    means = {}
    for r in (8, 16):  # by hand: Poisson of the true points and normals, mesh Chamfer against the target
        means[r] = sum(S.mesh_chamfer(poisson_reconstruct(val["points"][i], val["normals"][i], r),
                                      val["target_points"][i]) for i in range(2)) / 2
    assert res == min(means, key=means.get) and rec["chosen"] == str(res)
    assert rec["candidates"] == pytest.approx({str(k): v for k, v in means.items()})
    test = S.surface_dataset(["mug"], "test", 1, 128, profile="ci")
    with pytest.raises(ValueError, match="val shapes only"):
        S.select_poisson_resolution("grid", test, (8,), "true")
    with pytest.raises(ValueError, match="pass points"):
        S.poisson_meshes(val, 8, "pca")


def test_retrieval_clouds_by_oracle_and_by_latent_code():
    g = torch.Generator().manual_seed(0)
    train = {"target_points": torch.rand(3, 50, 3, generator=g) + torch.tensor([[[0.0, 0, 0]], [[3.0, 0, 0]], [[6.0, 0, 0]]]),
             "points": torch.rand(3, 40, 3, generator=g) + torch.tensor([[[0.0, 0, 0]], [[3.0, 0, 0]], [[6.0, 0, 0]]])}
    test = {"target_points": train["target_points"][[1]] + 0.01, "points": torch.rand(1, 40, 3, generator=g) + 5.6}

    class MeanCode(torch.nn.Module):  # the code of a cloud is its centroid
        def encode(self, x):
            return x.mean(1)

    out = S.retrieval_clouds(train, test, MeanCode(), n_input=20)
    assert torch.equal(out["oracle"][0], train["target_points"][1])  # nearest to the target by Chamfer
    assert torch.equal(out["latent"][0], train["target_points"][2])  # nearest centroid to the input's (x ~ 6.1)
    assert set(S.retrieval_clouds(train, test)) == {"oracle"}
    with pytest.raises(KeyError, match="rgb"):
        S.retrieval_clouds(train, test, MeanCode(), input_key="rgb")


def test_format_measured_prints_means_per_category_and_budgets():
    shapes = {"category": ["chair", "chair", "mug"], "seed": [1, 2, 3]}
    bud = {"steps": 12, "examples": 96, "seconds": 3.4, "params": 77}
    data = {"categories": ["chair", "mug"],
            "ae": {"shapes": shapes, "oracle": [1.0, 2.0, 4.0],
                   "rows": [{"name": "M", "cd": [2.0, 4.0, 9.0], "cd_random_template": [3.0, 3.0, 3.0], "budget": bud}]},
            "coded": {"rows": [{"category": "mug", "baseline": [0.5, 0.7], "accuracy": [0.9, 0.7],
                                "accuracy_refined": [1.0, 1.0], "budget": bud}]}}
    lines = S.format_measured(data, "ae").splitlines()
    oracle, m = lines[1].split(), lines[2].split()
    assert oracle[1:4] == ["2.333", "1.500", "4.000"]  # mean, chair, mug
    assert m[1:5] == ["5.000", "3.000", "3.000", "9.000"] and "12 steps, 3 s, 77 params" in lines[2]
    assert S.format_measured(data, "coded").splitlines()[1].split()[:4] == ["mug", "0.600", "0.800", "1.000"]
    with pytest.raises(KeyError, match="no 'svr' part"):
        S.format_measured(data, "svr")
