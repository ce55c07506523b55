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
