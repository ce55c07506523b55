"""Chapter 10, issue #37 item 6: the field level by level, NCSN's schedule rule, noisy inputs, timing.

Independent references: the closed-form score of one Gaussian (a one-point cloud), the expected
denoising loss of a zero predictor, NCSN's formula written with scipy here, the exact chi law
for large dimensions (where NCSN's Gaussian approximation of the radius holds), and distances of
hand-made clouds.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from course_lib.experiments import gradient_fields as ex
from course_lib.models import shapegf as gf

SIGMAS = [1.0, 0.3, 0.05]


def one_point_score(p: torch.Tensor):
    """The exact score of N(p, sigma^2 I), written without the library: -(x - p) / sigma^2."""
    return lambda x, s: -(x - p) / s[:, None, None] ** 2


def test_score_error_zero_for_the_exact_score_and_one_for_zero():
    p = torch.tensor([[0.2, -0.1, 0.3]], dtype=torch.float64)
    exact = ex.score_error_per_level(one_point_score(p), p, SIGMAS, n_eval=500)
    zero = ex.score_error_per_level(lambda x, s: torch.zeros_like(x), p, SIGMAS, n_eval=500)
    for r in exact:
        assert r["relative"] < 1e-12 and r["cosine"] == pytest.approx(1.0)
    for r in zero:
        assert r["relative"] == pytest.approx(1.0)
        # E ||eps / sigma||^2 = 3 / sigma^2 for the one-point cloud (sample estimate)
        assert r["norm"] * r["sigma"] ** 2 == pytest.approx(3.0, rel=0.2)


def test_score_error_scales_and_shifts():
    p = torch.tensor([[0.0, 0.0, 0.0]], dtype=torch.float64)
    half = ex.score_error_per_level(lambda x, s: 0.5 * one_point_score(p)(x, s), p, SIGMAS, n_eval=400)
    assert all(r["relative"] == pytest.approx(0.25) for r in half)
    delta = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    shifted = ex.score_error_per_level(lambda x, s: one_point_score(p)(x, s) + delta, p, SIGMAS, n_eval=400)
    assert all(r["error"] == pytest.approx(1.0) for r in shifted)


def test_score_error_planar_noise_stays_in_the_plane_and_matches_the_2d_toy():
    toy = ex.toy_cloud_2d(50).double()
    pts = torch.cat([toy, torch.zeros(50, 1, dtype=toy.dtype)], -1)
    seen = []

    def spy(x, s):
        seen.append(x.clone())
        return torch.cat([ex.toy_score_2d(x[0, :, :2], toy, float(s)), torch.zeros_like(x[0, :, :1])], -1)[None]

    rows = ex.score_error_per_level(spy, pts, [0.2, 0.05], n_eval=100, noise_dims=2)
    assert all(float(x[..., 2].abs().max()) == 0.0 for x in seen)
    assert all(r["relative"] < 1e-10 for r in rows)


def test_score_error_rejects_bad_input():
    with pytest.raises(ValueError, match="points"):
        ex.score_error_per_level(lambda x, s: x, torch.zeros(5, 2), SIGMAS)
    with pytest.raises(ValueError, match="shape"):
        ex.score_error_per_level(lambda x, s: x[..., :2], torch.zeros(5, 3), SIGMAS)
    with pytest.raises(ValueError, match="positive"):
        ex.score_error_per_level(lambda x, s: x, torch.zeros(5, 3), [0.1, 0.0])


def test_dsm_per_level_references():
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(4, 300, 3, generator=g, dtype=torch.float64)
    zero = ex.dsm_per_level(lambda x, s: torch.zeros_like(x), pts, SIGMAS, weighting="ncsn")
    assert zero == pytest.approx([1.5] * 3, rel=0.05)  # E ||eps||^2 / 2 in 3D
    zero_sg = ex.dsm_per_level(lambda x, s: torch.zeros_like(x), pts, SIGMAS, weighting="shapegf")
    assert [v / s for v, s in zip(zero_sg, SIGMAS)] == pytest.approx(zero)  # weight 1/(2 sigma) = sigma x ncsn's
    # every shape a single repeated point: the displacement p - x~ is the exact target, loss 0
    one = torch.rand(3, 1, 3, generator=g, dtype=torch.float64).expand(-1, 20, -1).contiguous()
    exact = ex.dsm_per_level(lambda x, s: one[:, :1] - x, one, SIGMAS)
    assert max(exact) < 1e-20


def test_shapegf_dsm_per_level_runs_and_orders_its_references():
    torch.manual_seed(0)
    model = ex.build_shapegf("ci")
    x = torch.rand(3, 64, 3) * 2 - 1
    rows = ex.shapegf_dsm_per_level(model, x, x, n_target=32, profile="ci")
    assert rows["sigma"] == pytest.approx(model.sigmas.tolist())
    for k in ("ShapeGF", "analytic field of the target points", "zero field"):
        assert len(rows[k]) == len(rows["sigma"]) and all(math.isfinite(v) for v in rows[k])
    # the analytic field of the perturbed points minimises the empirical loss: never above the zero field
    assert all(a <= z + 1e-6 for a, z in zip(rows["analytic field of the target points"], rows["zero field"]))


def paper_formula(gamma: float, d: int) -> float:
    a = math.sqrt(2 * d) * (gamma - 1)
    return stats.norm.cdf(a + 3 * gamma) - stats.norm.cdf(a - 3 * gamma)


@pytest.mark.parametrize("gamma,d", [(1.05, 3072), (1.2, 100), (1.668, 3), (3.0, 10)])
def test_ncsn_overlap_matches_the_papers_formula(gamma, d):
    assert ex.ncsn_overlap(gamma, d) == pytest.approx(paper_formula(gamma, d))


def test_ncsn_overlap_exact_agrees_in_high_dimension():
    # the radius of N(0, I_D) is close to N(sqrt(D), 1/2) when D is large: both laws agree there
    for gamma in (1.01, 1.03, 1.05):
        assert ex.ncsn_overlap(gamma, 3072, exact=True) == pytest.approx(ex.ncsn_overlap(gamma, 3072), abs=0.02)
    # a Monte Carlo estimate of the exact law in 3D
    g = torch.Generator().manual_seed(0)
    r = torch.randn(200000, 3, generator=g, dtype=torch.float64).norm(dim=-1)
    gamma = 1.6
    lo, hi = max(gamma * (math.sqrt(3) - 3 / math.sqrt(2)), 0.0), gamma * (math.sqrt(3) + 3 / math.sqrt(2))
    assert ex.ncsn_overlap(gamma, 3, exact=True) == pytest.approx(float(((r >= lo) & (r <= hi)).double().mean()),
                                                                   abs=3e-3)


def test_ncsn_ratio():
    g = ex.ncsn_ratio(3072)
    assert g is not None and g > 1 and paper_formula(g, 3072) == pytest.approx(0.5, abs=1e-6)
    assert ex.ncsn_ratio(3) is None and ex.ncsn_ratio(4) is None  # sqrt(2 D) <= 3: overlap never falls to 0.5
    assert ex.ncsn_ratio(5) is not None


def test_noise_schedule_rule_on_hand_made_clouds():
    clouds = torch.zeros(2, 4, 3)
    clouds[0, 1] = torch.tensor([0.6, 0.0, 0.0])
    clouds[1, 2] = torch.tensor([0.0, 0.0, -0.8])
    clouds[1, 3] = torch.tensor([0.0, 0.9, 0.0])  # the largest pair: (0, 0.9, 0) and (0, 0, -0.8)
    r = ex.noise_schedule_rule(clouds, gf.sigma_schedule())
    assert r["max_pairwise"] == pytest.approx(math.hypot(0.9, 0.8))
    assert r["sigma_1 / max_pairwise"] == pytest.approx(1.0 / math.hypot(0.9, 0.8))
    assert r["geometric"] and r["gamma"] == pytest.approx(100 ** (1 / 9), rel=1e-5)
    assert r["overlap"] == pytest.approx(paper_formula(r["gamma"], 3))
    assert not ex.noise_schedule_rule(clouds, [1.0, 0.5, 0.1])["geometric"]
    with pytest.raises(ValueError, match="large to small"):
        ex.noise_schedule_rule(clouds, [0.1, 1.0])


def test_add_input_noise_std_and_seed():
    x = torch.zeros(2, 5000, 3)
    y = ex.add_input_noise(x, 0.05, seed=1)
    assert float(y.std()) == pytest.approx(0.05, rel=0.05)
    assert torch.equal(y, ex.add_input_noise(x, 0.05, seed=1)) and torch.equal(ex.add_input_noise(x, 0.0), x)
    assert float(x.abs().max()) == 0.0  # input unchanged
    with pytest.raises(ValueError, match="non-negative"):
        ex.add_input_noise(x, -0.1)


def test_noise_robustness_and_timing_run_on_a_tiny_model():
    torch.manual_seed(0)
    model = ex.build_shapegf("ci")
    x = torch.rand(2, 32, 3) * 2 - 1
    out = ex.noise_robustness({"ShapeGF": model}, x, x, [0.0, 0.05], profile="ci")
    assert set(out["ShapeGF"]) == {0.0, 0.05} and all(math.isfinite(v) for v in out["ShapeGF"].values())
    calls = []
    t = ex.seconds_per_shape(lambda inp: calls.append(len(inp)), x, repeat=2)
    assert t >= 0 and calls == [1, 2, 2]


def test_rotation_robustness_turns_inputs_and_targets_alike():
    class Identity:  # a "baseline" that returns its input: it follows any rotation exactly
        pass

    x = torch.rand(2, 16, 3) * 2 - 1
    seen = []

    def fake_predict(model, inputs, n_points):
        seen.append(inputs.clone())
        return inputs[:, :n_points]

    import course_lib.experiments.gradient_fields as mod

    orig = mod.predict_baseline
    mod.predict_baseline = fake_predict
    try:
        out = ex.rotation_robustness({"identity": Identity()}, x, x, [0.0, 90.0, 180.0])
    finally:
        mod.predict_baseline = orig
    assert all(v < 1e-6 for v in out["identity"].values())  # followed the rotation: CD 0 at every angle
    # 90 degrees about y: (x, y, z) -> (z, y, -x), written independently
    expect = torch.stack([x[..., 2], x[..., 1], -x[..., 0]], -1)
    assert torch.allclose(seen[1], expect, atol=1e-6)
    assert torch.allclose(seen[0], x)


def test_noise_robustness_fills_per_shape_values_whose_mean_is_the_row():
    torch.manual_seed(0)
    model = ex.build_shapegf("ci")
    x = torch.rand(3, 32, 3) * 2 - 1
    per: dict = {}
    out = ex.noise_robustness({"ShapeGF": model}, x, x, [0.0, 0.05], profile="ci", per_shape=per)
    for noise in (0.0, 0.05):
        assert len(per["ShapeGF"][noise]) == 3
        assert math.isclose(sum(per["ShapeGF"][noise]) / 3, out["ShapeGF"][noise], rel_tol=1e-5)


def test_robustness_claims_pair_the_rise_to_the_harshest_setting():
    n = 24
    g = torch.Generator().manual_seed(1)
    clean_a = torch.rand(n, generator=g).tolist()
    clean_b = torch.rand(n, generator=g).tolist()
    # A rises by 1 (+ small noise) to the harshest setting, B by 3: A's rise is smaller (ahead, lower is better)
    jitter = (torch.rand(n, generator=g) * 0.1).tolist()
    per = {"ShapeGF": {0.0: clean_a, 0.01: [v + 0.5 for v in clean_a], 0.05: [v + 1 + j for v, j in zip(clean_a, jitter)]},
           "PSG": {0.0: clean_b, 0.01: clean_b, 0.05: [v + 3 for v in clean_b]}}
    (rec,) = ex.robustness_claims(per, study="noise", unit_label="input noise std")
    assert rec["id"] == "noise_rise_vs_psg" and rec["a"] == "ShapeGF" and rec["b"] == "PSG"
    expect = sum(1 + j - 3 for j in jitter) / n  # hand computation of the paired mean difference of the rises
    assert math.isclose(rec["difference"], expect, rel_tol=1e-9, abs_tol=1e-9)
    assert rec["n"] == n and rec["verdict"] == "ahead" and "0.05" in rec["metric"]
    # the harshest setting is the largest in magnitude (a negative angle counts too)
    per_rot = {"ShapeGF": {0.0: clean_a, -90.0: clean_a, 45.0: clean_a}, "PSG": {0.0: clean_a, -90.0: clean_a, 45.0: clean_a}}
    (rec,) = ex.robustness_claims(per_rot, study="rotation", unit_label="degrees about y")
    assert "-90" in rec["metric"] and rec["verdict"] == "not separated"
    with pytest.raises(ValueError, match="clean setting 0"):
        ex.robustness_claims({"ShapeGF": {0.05: clean_a}, "PSG": {0.05: clean_b}}, study="noise", unit_label="std")
    with pytest.raises(ValueError, match="too few"):
        ex.robustness_claims({k: {s: v[:5] for s, v in row.items()} for k, row in per.items()},
                             study="noise", unit_label="std")
