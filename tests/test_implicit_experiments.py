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
    assert len(list((tmp_path / "checkpoints").glob("ch07_occnet_occnet_mix-ci-*.pt"))) == 2


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
    _check_n_query(ex.train_occnet, data, tmp_path / "checkpoints", "ch07_occnet_occnet_mix-ci-*.pt")


def test_train_deepsdf_n_query_is_its_own_size_applied_and_validated(tmp_path, monkeypatch):
    # DeepSDF's samples per step are not OccNet's: the laptop profile gives OccNet fewer, DeepSDF keeps 2,048
    table = config.size_table()
    assert table["ch07.sdf_n_query"]["laptop"] == 2048
    assert table["ch07.sdf_n_query"]["laptop"] != table["ch07.n_query"]["laptop"]
    monkeypatch.setenv(config.ENV_CACHE, str(tmp_path))
    data = ex.implicit_data("train", categories=("mug",), per_category=2, profile="ci", n_pool=600, kind="sdf")
    _check_n_query(ex.train_deepsdf, data, tmp_path / "checkpoints", "ch07_deepsdf_*-ci-*.pt")
