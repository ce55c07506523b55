"""The chapter-07 experiment recipe on ci sizes: data, evaluation against an exact field, MISE, smoke hook."""

import pytest
import torch
from torch import nn

from course_lib import config
from course_lib.data import make_shape
from course_lib.experiments import implicit as ex

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def test_data():
    return ex.implicit_data("test", categories=("chair",), per_category=2, profile="ci", n_pool=600)


def test_implicit_data_keys_and_labels(test_data):
    d = test_data
    assert d["query"].shape == (2, 600, 3) and d["occupancy"].shape == (2, 600) and d["occupancy"].dtype == torch.bool
    shape = make_shape(d["category"][0], int(d["seed"][0]))
    assert torch.equal(d["occupancy"][0], shape.sdf(d["query"][0]) < 0)
    assert d["target_points"].shape[0] == 2 and d["target_normals"].shape == d["target_points"].shape
    assert d["query"].abs().max() <= 1


def test_sampling_strategies_differ():
    kw = dict(categories=("mug",), per_category=1, profile="ci", n_pool=2000, kind="sdf")
    near = ex.implicit_data("train", sampling="near", **kw)["sdf"].abs()
    uni = ex.implicit_data("train", sampling="uniform", **kw)["sdf"].abs()
    mix = ex.implicit_data("train", sampling="mix", **kw)["sdf"].abs()
    assert (near < 0.1).float().mean() > 0.9
    assert (uni < 0.1).float().mean() < 0.4
    assert (near < 0.1).float().mean() > (mix < 0.1).float().mean() > (uni < 0.1).float().mean()
    with pytest.raises(ValueError, match="sampling"):
        ex.implicit_data("train", sampling="poisson", **kw)


def test_query_sampler_shapes():
    data = {"query": torch.rand(3, 50, 3), "occupancy": torch.rand(3, 50) > 0.5, "points": torch.rand(3, 40, 3)}
    out = ex.QuerySampler(20, 10, 0.01)(data, torch.Generator().manual_seed(0))
    assert out["query"].shape == (3, 20, 3) and out["occupancy"].shape == (3, 20) and out["input"].shape == (3, 10, 3)
    # labels follow their points
    for b in range(3):
        for q, o in zip(out["query"][b], out["occupancy"][b]):
            j = (data["query"][b] == q).all(-1).nonzero()[0, 0]
            assert data["occupancy"][b, j] == o


class ExactDecoder(nn.Module):
    """A 'model' whose code indexes a list of shapes and whose field is their exact SDF."""

    kind, level, inside = "sdf", 0.0, "below"
    c_dim = 1

    def __init__(self, shapes):
        super().__init__()
        self.shapes = shapes
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, points, z):
        return torch.stack([self.shapes[int(z[b, 0])].sdf(points[b]) for b in range(points.shape[0])])


def test_evaluation_of_an_exact_field_is_near_perfect(test_data):
    shapes = [make_shape(c, int(s)) for c, s in zip(test_data["category"], test_data["seed"])]
    model = ExactDecoder(shapes)
    res = ex.evaluate_fields(model, torch.arange(2.0)[:, None], test_data, profile="ci", deepsdf=True, keep_meshes=1)
    m = res["metrics"]
    assert res["empty"] == 0 and len(res["meshes"]) == 1
    assert (m["iou"] > 0.97).all()
    # with few surface samples the floor is the sampling itself: compare with two samplings of the truth
    oracle = ex.oracle_chamfer(test_data, "occnet")
    assert (m["cd_l1"] < 1.3 * oracle).all() and (m["nc"] > 0.85).all()
    assert (m["thin_cd"] < 1.5 * oracle).all()
    # an inverted field is caught by every metric
    class Inverted(ExactDecoder):
        def forward(self, points, z):
            return super().forward(points, z) * 0 + 1.0 - 2.0 * (points.norm(dim=-1) < 0.3).float()
    bad = ex.evaluate_fields(Inverted(shapes), torch.arange(2.0)[:, None], test_data, profile="ci")["metrics"]
    assert (bad["iou"] < 0.5).all() and (bad["cd_l1"] > 0.05).all()


def test_mise_experiment_same_mesh_fewer_evaluations():
    r = ex.mise_experiment(make_shape("lamp", 1000).sdf, 65, 17)
    assert r["chamfer"] == 0.0 and r["fraction"] < 0.35 and r["vertices_hierarchical"] == r["vertices_dense"]


def test_smoke_ci():
    out = ex.smoke("cpu", steps=1, profile="ci")
    assert all(v == v for v in out.values()) and out["occnet_params"] > 0 and out["deepsdf_loss"] > 0


def test_builders_reject_unknown_decoder():
    with pytest.raises(ValueError, match="decoder"):
        ex.build_occnet("pointflow", profile="ci")
    assert ex.build_occnet("imnet", profile="ci").level == 0.5


def test_train_occnet_schedule_is_applied_and_validated(tmp_path, monkeypatch):
    monkeypatch.setenv(config.ENV_CACHE, str(tmp_path))
    data = ex.implicit_data("train", categories=("mug",), per_category=2, profile="ci", n_pool=600)
    with pytest.raises(ValueError, match="schedule"):
        ex.train_occnet(data, schedule="step", epochs=1, profile="ci", progress=False)
    cos, h_cos = ex.train_occnet(data, schedule="cosine", epochs=3, profile="ci", progress=False)
    const, h_const = ex.train_occnet(data, schedule="constant", epochs=3, profile="ci", progress=False)
    # the first epoch runs at the same rate, later ones not: a schedule that is ignored gives equal weights
    assert h_cos.train_loss[0] == pytest.approx(h_const.train_loss[0])
    diff = max(float((a - b).abs().max()) for a, b in zip(cos.parameters(), const.parameters()))
    assert diff > 1e-6
    # each variant has its own checkpoint: neither overwrote the other
    assert len(list((config.cache_dir() / "checkpoints").glob("ch07_occnet_occnet_mix-ci-*.pt"))) == 2


def test_occnet_train_data_takes_its_own_shapes_and_sampling(tmp_path, monkeypatch):
    monkeypatch.setenv(config.ENV_CACHE, str(tmp_path))
    # in ci OccNet's set and DeepSDF's have the same size: make them differ so that reading the wrong key fails
    monkeypatch.setitem(config._SIZES["ch07.occnet_train_per_category"], "ci", 2)
    s = config.sizes("ci", prefix="ch07.")
    assert s["occnet_train_per_category"] != s["train_per_category"]
    assert s["occnet_sampling"] != "mix"  # implicit_data's default, so the default below is OccNet's own
    data = ex.occnet_train_data("ci")
    assert data["query"].shape[0] == len(s["categories"]) * 2
    assert data["sampling"] == s["occnet_sampling"]
    ref = ex.implicit_data("train", sampling=s["occnet_sampling"], per_category=2, profile="ci")
    assert torch.equal(data["query"], ref["query"]) and torch.equal(data["occupancy"], ref["occupancy"])
    # both knobs are applied: one shape per category, uniform samples, as implicit_data draws them
    one = ex.occnet_train_data("ci", per_category=1, sampling="uniform")
    ref = ex.implicit_data("train", sampling="uniform", per_category=1, profile="ci")
    assert one["query"].shape[0] == len(s["categories"]) and one["sampling"] == "uniform"
    assert torch.equal(one["query"], ref["query"]) and torch.equal(one["occupancy"], ref["occupancy"])
    with pytest.raises(ValueError, match="per_category"):
        ex.occnet_train_data("ci", per_category=0)
    with pytest.raises(ValueError, match="sampling"):
        ex.occnet_train_data("ci", sampling="poisson")


def test_occnet_goal_needs_both_the_iou_and_the_time():
    iou, sec = ex.OCCNET_GOAL["iou"], ex.OCCNET_GOAL["train_seconds"]
    run = lambda i, t: {"metrics": {"iou": [i, 0.01]}, "train_seconds": t}  # noqa: E731
    assert ex.occnet_goal_met(run(iou, sec)) and ex.occnet_goal_met(run(iou + 0.05, sec / 2))
    assert not ex.occnet_goal_met(run(iou - 0.001, sec / 2))  # short on IoU
    assert not ex.occnet_goal_met(run(iou + 0.05, sec + 1))  # over the time budget
    assert not ex.occnet_goal_met(run(iou - 0.01 + 0.0099, sec))  # the standard error does not count


def _check_n_query(train_fn, data, checkpoints, pattern: str) -> None:
    """``train_fn`` rejects n_query 0 and applies the setting: the same seed and data with 16 and 400
    samples per step give different weights (an ignored setting gives identical ones), each in its own
    checkpoint."""
    with pytest.raises(ValueError, match="n_query"):
        train_fn(data, n_query=0, epochs=1, profile="ci", progress=False)
    few, _ = train_fn(data, n_query=16, epochs=2, profile="ci", progress=False)
    many, _ = train_fn(data, n_query=400, epochs=2, profile="ci", progress=False)
    diff = max(float((a - b).abs().max()) for a, b in zip(few.parameters(), many.parameters()))
    assert diff > 1e-6
    assert len(list(checkpoints.glob(pattern))) == 2


def test_train_occnet_n_query_is_applied_and_validated(tmp_path, monkeypatch):
    monkeypatch.setenv(config.ENV_CACHE, str(tmp_path))
    data = ex.implicit_data("train", categories=("mug",), per_category=2, profile="ci", n_pool=600)
    _check_n_query(ex.train_occnet, data, config.cache_dir() / "checkpoints", "ch07_occnet_occnet_mix-ci-*.pt")


def test_train_deepsdf_n_query_is_its_own_size_applied_and_validated(tmp_path, monkeypatch):
    # DeepSDF's samples per step are not OccNet's: the laptop profile gives OccNet fewer, DeepSDF keeps 2,048
    table = config.size_table()
    assert table["ch07.sdf_n_query"]["laptop"] == 2048
    assert table["ch07.sdf_n_query"]["laptop"] != table["ch07.n_query"]["laptop"]
    monkeypatch.setenv(config.ENV_CACHE, str(tmp_path))
    data = ex.implicit_data("train", categories=("mug",), per_category=2, profile="ci", n_pool=600, kind="sdf")
    _check_n_query(ex.train_deepsdf, data, config.cache_dir() / "checkpoints", "ch07_deepsdf_*-ci-*.pt")


# --- protocol 2: the val split, OccNet's settings, budgets, the selection score ----------------------------

def test_implicit_data_val_split_takes_its_size_and_seeds():
    from course_lib.data import no_test_reads, split_of
    from course_lib.data.splits import TestSplitReadError

    s = config.sizes("ci", prefix="ch07.")
    with no_test_reads("a choice"):  # val is what choices read: allowed there, test is not
        val = ex.implicit_data("val", profile="ci", n_pool=50)
        with pytest.raises(TestSplitReadError):
            ex.implicit_data("test", profile="ci", n_pool=50)
    assert val["query"].shape[0] == s["val_per_category"] * len(s["categories"])
    assert {split_of(int(x)) for x in val["seed"]} == {"val"}
    with pytest.raises(ValueError, match="split"):
        ex.implicit_data("validation", profile="ci", n_pool=50)


def test_occnet_epochs_keeps_the_steps_and_the_query_table():
    # laptop: 90 epochs at 160 shapes per category and 256 queries, 17 at OccNet's 2,048 (about the same time)
    assert ex.occnet_epochs(160, 256, "laptop") == 90
    assert ex.occnet_epochs(40, 256, "laptop") == 360 and ex.occnet_epochs(320, 256, "laptop") == 45
    assert ex.occnet_epochs(80, 2048, "laptop") == 34  # 17 * 160 / 80
    assert ex.occnet_epochs(100_000, 256, "laptop") == 1  # never zero epochs
    with pytest.raises(ValueError, match="query_epochs"):
        ex.occnet_epochs(160, 512, "laptop")
    with pytest.raises(ValueError, match="per_category"):
        ex.occnet_epochs(0, 256, "laptop")


@pytest.mark.parametrize("profile", config.PROFILES)
def test_ch07_config_is_consistent_with_its_selections(profile):
    s = config.sizes(profile, prefix="ch07.")
    # the default setting is one of the candidates each selection tries, and its epochs are ch07.epochs
    assert s["occnet_train_per_category"] in s["shape_candidates"]
    assert s["n_query"] in dict(s["query_epochs"])
    assert s["occnet_sampling"] in ex.OCCNET_SAMPLINGS
    assert ex.occnet_setting(profile)["epochs"] == s["epochs"]
    # the benchmark's claims are paired over >= 20 test shapes (20 with thin parts: chair and mug have them)
    assert s["test_per_category"] * len(s["categories"]) >= 20


def test_occnet_setting_defaults_overrides_and_errors():
    s = config.sizes("laptop", prefix="ch07.")
    d = ex.occnet_setting("laptop")
    assert d == {"per_category": s["occnet_train_per_category"], "epochs": s["epochs"], "n_query": s["n_query"],
                 "sampling": s["occnet_sampling"], "schedule": s["lr_schedule"]}
    o = ex.occnet_setting("laptop", per_category=40, n_query=2048, sampling="uniform", schedule="constant")
    assert o == {"per_category": 40, "epochs": 68, "n_query": 2048, "sampling": "uniform", "schedule": "constant"}
    assert ex.occnet_setting("laptop", per_category=40, epochs=5)["epochs"] == 5
    assert ex.setting_key(d) == "160 shapes x 90 epochs, 256 queries, near, cosine"
    for bad, match in (({"lr": 1.0}, "unknown"), ({"sampling": "poisson"}, "sampling"),
                       ({"schedule": "step"}, "schedule"), ({"n_query": 0}, "n_query"), ({"epochs": 0}, "epochs")):
        with pytest.raises(ValueError, match=match):
            ex.occnet_setting("laptop", **bad)


def test_train_occnet_setting_is_train_occnet_on_its_data(tmp_path, monkeypatch):
    # the default setting loads the very model chapter 11 gets from train_occnet(occnet_train_data())
    monkeypatch.setenv(config.ENV_CACHE, str(tmp_path))
    st = ex.occnet_setting("ci", per_category=1)
    model, hist = ex.train_occnet_setting(st, "ci", progress=False)
    ref, ref_hist = ex.train_occnet(ex.occnet_train_data("ci", per_category=1), epochs=st["epochs"], profile="ci",
                                    progress=False)
    assert ref_hist.epochs_run == hist.epochs_run == st["epochs"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))
    assert len(list((config.cache_dir() / "checkpoints").glob("ch07_occnet_*.pt"))) == 1  # loaded, not trained twice
    # another sampling is another model and another checkpoint
    other, _ = ex.train_occnet_setting({**st, "sampling": "uniform"}, "ci", progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    assert len(list((config.cache_dir() / "checkpoints").glob("ch07_occnet_*.pt"))) == 2
    # every knob of the setting reaches train_occnet: queries, schedule and epochs too
    st2 = {**st, "n_query": 2048, "schedule": "constant", "epochs": 2}
    m2, h2 = ex.train_occnet_setting(st2, "ci", progress=False)
    r2, _ = ex.train_occnet(ex.occnet_train_data("ci", per_category=1), epochs=2, profile="ci", progress=False,
                            n_query=2048, schedule="constant")
    assert h2.epochs_run == 2
    assert all(torch.equal(a, b) for a, b in zip(m2.state_dict().values(), r2.state_dict().values()))
    assert len(list((config.cache_dir() / "checkpoints").glob("ch07_occnet_*.pt"))) == 3


def test_occnet_budget_by_hand():
    from course_lib.train import History

    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))  # 8 + 3 trainable parameters
    model[1].bias.requires_grad_(False)  # a frozen one is not counted
    hist = History(epochs_run=3, wall_time=12.5)
    s = config.sizes("ci", prefix="ch07.")
    # ci: 2 categories, batch 4; 3 shapes per category -> 6 shapes -> 2 batches per epoch
    assert len(s["categories"]) == 2 and s["batch_size"] == 4
    b = ex.occnet_budget(model, hist, {"per_category": 3, "n_query": 100}, "ci")
    assert b == {"steps": 6, "examples": 18, "seconds": 12.5, "params": 10, "epochs": 3, "shapes": 6,
                 "queries_per_step": 100, "queries": 1800}


def test_held_out_iou_is_evaluate_fields_iou_and_thin_index(tmp_path, monkeypatch):
    monkeypatch.setenv(config.ENV_CACHE, str(tmp_path))
    model, _ = ex.train_occnet(ex.implicit_data("train", categories=("mug",), per_category=2, profile="ci",
                                                n_pool=600), epochs=2, profile="ci", progress=False)
    data = ex.implicit_data("val", categories=("airplane", "mug"), per_category=1, profile="ci", n_pool=50)
    iou = ex.held_out_iou(model, data, "ci")
    res = ex.evaluate_fields(model, ex.encode(model, ex.held_out_inputs(data, "ci")), data, profile="ci")
    assert iou.shape == (2,) and torch.allclose(iou, res["metrics"]["iou"])
    # an independent IoU: the field's own inside test and the exact occupancy at the same uniform points
    shape = make_shape(data["category"][1], int(data["seed"][1]))
    z = ex.encode(model, ex.held_out_inputs(data, "ci"))[1]
    p = torch.rand(config.size("ch07.n_iou", "ci"), 3, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        pred = model.decoder(p[None], z[None])[0] > model.level
    truth = shape.occupancy(p)
    assert float(iou[1]) == pytest.approx(float((pred & truth).sum() / (pred | truth).sum()), abs=1e-6)  # float32 ulps
    # the airplane has no thin part: the thin metrics cover the mug only, and say so
    assert res["thin_index"] == [1] and res["metrics"]["thin_recall"].shape == (1,)


# --- the benchmark's claims and goals, from hand-made fragments (no training) ---------------------------------

def _benchmark():
    from check_helpers import load_benchmark

    return load_benchmark("implicit")


def _row(iou, thin, thin_index, steps=100):
    b = {"steps": steps, "examples": 10, "seconds": 1.0, "params": 5}
    return {"per_shape": {"iou": list(iou), "iou_t02": [v - 0.01 for v in iou], "thin_recall": list(thin)},
            "thin_index": list(thin_index), "budget": b, "metrics": {}}


def test_benchmark_claims_pair_the_rows_and_the_thin_shapes():
    B = _benchmark()
    assert B.SELECTION_PARTS == tuple(f"part_select_{s}" for s in B.SWEEPS)  # one guarded part per selection
    n = 24
    thin_idx = list(range(0, n, 1))[:20]
    base = [0.5 + 0.01 * (i % 5) for i in range(n)]
    near = _row([v + 0.05 for v in base], [0.6 + 0.01 * (i % 3) for i in range(20)], thin_idx)
    uni = _row(base, [0.6 + 0.01 * ((i + 1) % 3) for i in range(20)], thin_idx)
    data = {"comparisons": {"rows": {"N": near, "U": uni},
                            "pairs": {"sampling": {"a": "N", "b": "U", "label_a": "near", "label_b": "uniform"}}}}
    claims = {c["id"]: c for c in B.claim_records(data)}
    assert set(claims) == {"sampling_iou", "sampling_thin_recall"}
    assert claims["sampling_iou"]["verdict"] == "ahead" and claims["sampling_iou"]["n"] == n
    assert claims["sampling_iou"]["difference"] == pytest.approx(0.05)
    thin = claims["sampling_thin_recall"]
    assert thin["n"] == 20 and thin["verdict"] == "not separated"  # the recalls differ, but not systematically
    assert set(thin["budget"]) == {"near", "uniform"}
    goals = {g["id"]: g for g in B.goal_records(data, list(claims.values()))}
    assert goals["sampling_thin_recall"]["value"] == "not separated" and not goals["sampling_thin_recall"]["met"]
    # rows scored on different shapes are refused, not paired
    data["comparisons"]["rows"]["U"] = _row(base, [0.6] * 20, [i + 1 for i in thin_idx])
    with pytest.raises(ValueError, match="thin-part shapes differ"):
        B.claim_records(data)
    # fewer than 20 paired shapes: no comparative claim
    data["comparisons"]["rows"] = {"N": _row(base[:10], [0.6] * 10, range(10)), "U": _row(base[:10], [0.5] * 10,
                                                                                            range(10))}
    with pytest.raises(ValueError, match="too few"):
        B.claim_records(data)


def test_benchmark_goals_from_the_parts():
    B = _benchmark()
    occ = {"metrics": {"iou": [0.86, 0.01]}, "train_seconds": 310.0, "shapes": {"test": 50}}
    mise = {"a": {"chamfer": 0.0, "fraction": 0.1}, "b": {"chamfer": 2e-6, "fraction": 0.15}, "_sizes": {}}
    goals = {g["id"]: g for g in B.goal_records({"occnet": occ, "mise": mise,
                                                  "deepsdf": {"ratio_to_oracle": 1.9, "shapes": {"test": 10}}}, [])}
    assert goals["occnet_iou"]["met"] and not goals["occnet_train_seconds"]["met"]  # both halves of OCCNET_GOAL
    assert goals["deepsdf_oracle_ratio"]["met"]
    assert not goals["mise_same_mesh"]["met"] and goals["mise_same_mesh"]["value"] == 2e-6  # the worst field
    assert goals["mise_fraction"]["met"] and goals["mise_fraction"]["value"] == 0.15
    assert "sampling_thin_recall" not in goals  # no claim, no goal


def test_benchmark_compares_the_config_default_with_its_alternative():
    B = _benchmark()
    rows = {f"{p} shapes": {"setting": {"per_category": p}} for p in (1, 3)}
    assert B._alternative("shapes", "ci", rows) == ("3 shapes", "1 shapes")  # ci default 3, the fewest 1
    rows = {k: {"setting": {"sampling": k}} for k in ex.OCCNET_SAMPLINGS}
    assert B._alternative("sampling", "ci", rows) == ("near", "uniform")
    rows = {f"{q} q": {"setting": {"n_query": q}} for q in (256, 2048)}
    assert B._alternative("queries", "ci", rows) == ("256 q", "2048 q")
    assert B._alternative("queries", "ci", {"256 q": rows["256 q"]}) is None  # nothing to compare with


def test_benchmark_refuses_test_rows_older_than_the_selections():
    B = _benchmark()
    st = ex.occnet_setting("ci")
    rows = {"near": {"setting": st}, "uniform": {"setting": {**st, "sampling": "uniform"}}}
    data = {"select_schedule": {"chosen_setting": st}, "select_sampling": {"rows": rows},
            "occnet": {"setting": st}, "mise": {"_setting": st},
            "comparisons": {"pairs": {"sampling": {"a": ex.setting_key(st),
                                                   "b": ex.setting_key(rows["uniform"]["setting"])}}}}
    B._check_fresh(data)  # consistent: nothing to say
    for part, bad in (("occnet", {"setting": {**st, "n_query": 2048}}), ("mise", {"_setting": {**st, "epochs": 9}})):
        with pytest.raises(SystemExit, match=f"rerun --part {part}"):
            B._check_fresh({**data, part: bad})
    stale = {**data, "select_sampling": {"rows": {"near": rows["near"], "mix": {"setting": {**st, "sampling": "mix"}}}}}
    with pytest.raises(SystemExit, match="comparisons part predates the sampling selection"):
        B._check_fresh(stale)


def test_retrieved_iou_scores_the_retrieved_shape_at_the_models_points():
    """Retrieving a test shape itself scores 1; another shape scores the IoU of the two exact occupancies at the
    points field_iou uses (seed = the test index), counted here with numpy; bad indices are refused."""
    import numpy as np

    test = {"category": ["chair", "mug"], "seed": torch.tensor([3_000_000, 3_000_001])}
    train = {"category": ["mug", "chair", "chair"], "seed": torch.tensor([5, 3_000_000, 7])}
    n = 3000
    got = ex.retrieved_iou(test, train, torch.tensor([1, 0]), n=n)
    assert got.dtype == torch.float64 and got.shape == (2,)
    assert got[0].item() == 1.0  # the chair retrieved itself
    p = (torch.rand(n, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    a = make_shape("mug", 5).occupancy(p).numpy().astype(bool)
    b = make_shape("mug", 3_000_001).occupancy(p).numpy().astype(bool)
    ref = np.logical_and(a, b).sum() / np.logical_or(a, b).sum()
    assert got[1].item() == pytest.approx(ref, abs=1e-12)
    assert 0.0 < got[1].item() < 1.0
    with pytest.raises(ValueError, match="one retrieved shape per test shape"):
        ex.retrieved_iou(test, train, [0], n=n)
    with pytest.raises(IndexError, match="out of range"):
        ex.retrieved_iou(test, train, [0, 3], n=n)
