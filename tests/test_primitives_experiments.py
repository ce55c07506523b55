"""Chapter 08 experiment layer: the smoke hook, a short training both ways, evaluation, variance, enumeration."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.experiments import primitives as E
from course_lib.models import primitives as P

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_smoke_cpu_ci():
    out = E.smoke("cpu", steps=1, profile="ci")
    assert math.isfinite(out["loss"]) and out["params"] > 0


def _tiny_data(n=4, seed=0):
    from course_lib.experiments.common import synthetic_clouds

    x = synthetic_clouds(n, 128, seed=seed)
    return {"points": x, "target_points": x.clone(), "category": ["chair"] * n,
            "seed": torch.arange(1000, 1000 + n), "categories": ("chair",)}


@pytest.mark.parametrize("method", E.METHODS)
def test_loss_both_ways_reports_the_same_expected_value(method):
    torch.manual_seed(0)
    model = E.build_model("superquadric", "ci")
    data = _tiny_data()
    batch = {"input": data["points"], "target": data["target_points"]}
    ref = E.PrimitiveLoss("reorder", n_samples=16, seed=3)(model, batch)
    out = E.PrimitiveLoss(method, n_samples=16, seed=3)(model, batch)
    assert torch.allclose(out["expected"], ref["expected"])  # same samples (same seed), same terms
    out["loss"].backward()
    assert model.logit.bias.grad.abs().sum() > 0
    assert "PrimitiveLoss(method=" + method in E.PrimitiveLoss(method).describe()
    with pytest.raises(ValueError, match="method"):
        E.PrimitiveLoss("gumbel")


def test_train_and_evaluate_on_real_shapes(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    tr = E.primitive_data("train", "ci", categories=("chair",), shapes_per_category=2)
    te = E.primitive_data("test", "ci", categories=("chair",), shapes_per_category=1)
    model, hist = E.train_primitives("cuboid", "reinforce", tr, val=te, profile="ci", epochs=2, progress=False,
                                     live_plot=False)
    assert len(hist.train_extra) == 2 and "expected" in hist.train_extra[0] and "val_expected" in hist.val[0]
    res = E.evaluate_primitives(model, te, profile="ci")
    assert res["chamfer"].shape == (1,) and 0 <= float(res["iou"][0]) <= 1 and res["used"][0] >= 1
    # the checkpoint is found again
    again, _ = E.train_primitives("cuboid", "reinforce", tr, val=te, profile="ci", epochs=2, progress=False,
                                  live_plot=False)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_gradient_variance_and_enumeration_cost():
    g = torch.Generator().manual_seed(0)
    prims = P.Primitives(0.1 + 0.3 * torch.rand(1, 4, 3, generator=g), 0.5 + torch.rand(1, 4, 2, generator=g),
                         P.random_quaternions((1, 4), g), 0.4 * torch.randn(1, 4, 3, generator=g),
                         0.2 + 0.6 * torch.rand(1, 4, generator=g))
    terms = P.primitive_terms(prims, 0.5 * torch.randn(1, 64, 3, generator=g), 16, generator=g)
    out = E.gradient_variance(terms, (1, 16), 60, warmup=10)
    assert [r["k"] for r in out["none"]] == [1, 16]
    v = {name: [r["variance"] for r in out[name]] for name in ("none", "baseline")}
    assert v["none"][1] < v["none"][0] and v["baseline"][0] < v["none"][0]  # variance ~ 1/K; baseline helps
    assert all(r["max_z"] < 5 for name in ("none", "baseline") for r in out[name])
    rows = E.enumeration_cost((2, 6), 16, repeat=1)
    assert rows[1]["configurations"] == 64 and rows[1]["max_abs_diff"] < 1e-12
    with pytest.raises(ValueError, match="one shape"):
        E.gradient_variance(P.PrimitiveTerms(terms.coverage_dist.expand(2, -1, -1), terms.sample_dist.expand(2, -1, -1),
                                             terms.sample_inside.expand(2, -1, -1, -1), terms.prob.expand(2, -1)),
                            (1,), 2)


def test_sampling_uniformity_separates_the_two_samplers():
    tv = E.sampling_uniformity((0.8, 0.5, 0.4), (0.2, 0.3), n=8000, reference=50000, resolution=48)
    assert tv["area"] < 0.04 and tv["angles"] > 3 * tv["area"], tv
