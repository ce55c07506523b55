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


# ---------------------------------------------------------------------------
# the exact variance of REINFORCE by enumeration (protocol 2: the 1/K law analytically)
# ---------------------------------------------------------------------------
def _config_index(z):
    """Row of P.enumerate_configurations holding configuration z (row c = the bits of c)."""
    return (z.long() * (2 ** torch.arange(z.shape[-1]))).sum(-1)


def test_exact_score_variance_matches_the_hand_formula_for_one_primitive():
    theta, l1, l0 = 0.3, 2.0, 0.5          # L(z = 1), L(z = 0); row 0 of the enumeration is z = 0
    out = E.exact_score_variance(torch.tensor([l0, l1], dtype=torch.float64), torch.tensor([theta], dtype=torch.float64))
    assert out["gradient"].tolist() == pytest.approx([l1 - l0])
    assert out["expected_loss"] == pytest.approx(theta * l1 + (1 - theta) * l0)
    assert out["c"] == pytest.approx(1 / (theta * (1 - theta)))
    for b in (0.0, 0.7, out["expected_loss"], -1.0):
        hand = (l1 - b) ** 2 / theta + (l0 - b) ** 2 / (1 - theta) - (l1 - l0) ** 2
        assert out["variance_1"](b) == pytest.approx(hand, rel=1e-12)
    # the best constant: d/db of the quadratic is 0
    bs = torch.linspace(-2, 3, 501).tolist()
    assert out["variance_1"](out["optimal_baseline"]) <= min(out["variance_1"](b) for b in bs) + 1e-12


def test_exact_score_variance_matches_brute_force_monte_carlo():
    g = torch.Generator().manual_seed(4)
    m, n = 3, 400_000
    prob = 0.25 + 0.5 * torch.rand(m, generator=g, dtype=torch.float64)
    losses = torch.rand(2 ** m, generator=g, dtype=torch.float64) * 3
    out = E.exact_score_variance(losses, prob)
    z = (torch.rand(n, m, generator=g, dtype=torch.float64) < prob).double()
    score = z / prob - (1 - z) / (1 - prob)
    ell = losses[_config_index(z)]
    for b in (0.0, out["expected_loss"]):
        est = (ell - b)[:, None] * score                                               # single-sample estimates
        se = est.std(0) / n ** 0.5
        assert ((est.mean(0) - out["gradient"]).abs() < 5 * se).all()                  # unbiased
        v_mc = float(est.var(0).sum())
        assert v_mc == pytest.approx(out["variance_1"](b), rel=0.02)
        assert out["gradient_norm2"] > 0.05 * v_mc                                  # forgetting -|g|^2 would fail
        k = 4                                                                          # the 1/K law for K i.i.d.
        est_k = est[: n - n % k].reshape(-1, k, m).mean(1)
        assert float(est_k.var(0).sum()) == pytest.approx(out["variance_1"](b) / k, rel=0.04)
    with pytest.raises(ValueError, match="one value per configuration"):
        E.exact_score_variance(losses[:-1], prob)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        E.exact_score_variance(losses, prob + 1)


def _tiny_terms(m=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    prims = P.Primitives(0.1 + 0.3 * torch.rand(1, m, 3, generator=g), 0.5 + torch.rand(1, m, 2, generator=g),
                         P.random_quaternions((1, m), g), 0.4 * torch.randn(1, m, 3, generator=g),
                         0.2 + 0.6 * torch.rand(1, m, generator=g))
    return P.primitive_terms(prims, 0.5 * torch.randn(1, 64, 3, generator=g), 16, generator=g)


def test_exact_gradient_variance_matches_a_simulated_moving_average_baseline():
    terms = _tiny_terms()
    ex = E.exact_gradient_variance(terms, (1, 2, 8), momentum=0.5)
    assert ex["max_abs_gradient_diff"] < 1e-12                   # enumeration E[L s] == autograd of the reordering
    rows = {r["k"]: r for r in ex["rows"]}
    assert rows[8]["none"] == pytest.approx(rows[1]["none"] / 8) and rows[1]["fixed"] < rows[1]["none"]
    assert rows[1]["optimal"] <= rows[1]["fixed"] <= rows[1]["moving_average"]
    # brute force: run the estimator with a moving-average baseline (momentum 0.5) for many steps
    prob = terms.prob[0].double()
    m = prob.numel()
    z_all = P.enumerate_configurations(m)
    fixed = P.PrimitiveTerms(terms.coverage_dist.double(), terms.sample_dist.double(), terms.sample_inside,
                             terms.prob.double())
    table = P.configuration_loss(fixed, z_all[:, None, :], empty=4.0, parsimony=1e-3)["loss"][:, 0]
    g = torch.Generator().manual_seed(1)
    for k in (1, 2):
        steps, warm = 200_000, 200
        z = (torch.rand(steps, k, m, generator=g, dtype=torch.float64) < prob).double()
        ell = table[_config_index(z)]                                                # (steps, K)
        means = ell.mean(1).tolist()
        base, b = [], means[0]
        for t in range(steps):                                   # the baseline of step t comes from steps < t
            base.append(b)
            b = 0.5 * b + 0.5 * means[t]
        score = z / prob - (1 - z) / (1 - prob)
        est = ((ell - torch.tensor(base, dtype=torch.float64)[:, None])[..., None] * score).mean(1)[warm:]
        v_mc = float(est.var(0).sum())
        assert v_mc == pytest.approx(rows[k]["moving_average"], rel=0.03), k
        # the baseline's own fluctuation is resolved: a fixed b = E[L] would predict a different number
        assert v_mc != pytest.approx(rows[k]["fixed"], rel=0.03), k
    with pytest.raises(ValueError, match="max_m"):
        E.exact_gradient_variance(terms, (1,), max_m=3)
    with pytest.raises(ValueError, match="one shape"):
        E.exact_gradient_variance(P.PrimitiveTerms(terms.coverage_dist.expand(2, -1, -1),
                                                   terms.sample_dist.expand(2, -1, -1),
                                                   terms.sample_inside.expand(2, -1, -1, -1),
                                                   terms.prob.expand(2, -1)), (1,))


def test_run_budget_counts_steps_examples_and_params():
    from types import SimpleNamespace

    model = E.build_model("cuboid", "ci")
    hist = SimpleNamespace(epochs_run=3, wall_time=1.25)
    b = E.run_budget(model, hist, 10, "ci", note="x")                   # ci batch size 8: 2 batches per epoch
    assert (b["steps"], b["examples"], b["seconds"], b["epochs"], b["note"]) == (6, 30, 1.25, 3, "x")
    assert b["params"] == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="n_train"):
        E.run_budget(model, hist, 0, "ci")


def test_exact_size_drift_volume_formula_and_analytic_cuboid_keeps_its_volume():
    """The superquadric volume (Beta functions) is checked against Monte Carlo through inside_outside; a cuboid
    started at its target's exact size keeps its volume with the analytic coverage (ci sizes, few steps)."""
    zero = E.exact_size_drift("superquadric", steps=1, lr=0.0, eps=(0.5, 0.8), profile="ci")
    assert zero["volume_change"] == pytest.approx(0.0, abs=1e-6)  # float32 log and exp of the sizes
    # the Beta-function volume against Monte Carlo
    _m = math
    a, e1, e2 = (0.5, 0.3, 0.2), 0.5, 0.8
    beta = lambda x, y: _m.exp(_m.lgamma(x) + _m.lgamma(y) - _m.lgamma(x + y))  # noqa: E731
    vol = 2 * a[0] * a[1] * a[2] * e1 * e2 * beta(e1 / 2 + 1, e1) * beta(e2 / 2, e2 / 2)
    g = torch.Generator().manual_seed(0)
    u = (torch.rand(400_000, 3, generator=g, dtype=torch.float64) * 2 - 1) * torch.tensor(a, dtype=torch.float64)
    f = P.superquadric_inside_outside(u, torch.tensor(a, dtype=torch.float64), torch.tensor([e1, e2], dtype=torch.float64))
    mc = float((f <= 1).double().mean()) * 8 * a[0] * a[1] * a[2]
    assert vol == pytest.approx(mc, rel=0.01)
    out = E.exact_size_drift("cuboid", "analytic", steps=60, profile="ci")
    sampled = E.exact_size_drift("cuboid", "samples", steps=60, profile="ci")
    # seeded: the analytic coverage stays within 1%; the sampled one shrinks the cuboid by about a tenth
    assert abs(out["volume_change"]) <= 0.01 and sampled["volume_change"] < -0.05
    with pytest.raises(ValueError, match="closed form"):
        E.exact_size_drift("superquadric", "analytic", steps=1, profile="ci")
