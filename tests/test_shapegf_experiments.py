"""Chapter-10 experiment helpers on synthetic clouds (no ShapeNet-lite generation in unit tests)."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.experiments import gradient_fields as ex

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _spheres(b, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, 3, generator=g)
    return 0.5 * x / x.norm(dim=-1, keepdim=True)


def test_smoke_hook_runs_on_cpu():
    out = ex.smoke("cpu", steps=1, profile="ci")
    assert math.isfinite(out["ae_loss"]) and out["ae_params"] > 0 and "disc_loss" in out


def test_toy_2d_score_matches_finite_differences():
    pts = ex.toy_cloud_2d(50, seed=1).double()
    x = torch.tensor([[0.3, -0.2], [0.0, 0.5]], dtype=torch.float64)
    sigma = 0.2

    def logq(y):
        d2 = ((y[:, None] - pts[None]) ** 2).sum(-1)
        return torch.logsumexp(-d2 / (2 * sigma ** 2), -1)

    h = 1e-6
    fd = torch.stack([(logq(x + h * e) - logq(x - h * e)) / (2 * h) for e in torch.eye(2, dtype=torch.float64)], -1)
    torch.testing.assert_close(ex.toy_score_2d(x, pts, sigma), fd, rtol=1e-5, atol=1e-5)
    assert ex.toy_cloud_2d(30).shape == (30, 2)


def test_ae_metrics_conventions():
    a, b = _spheres(2, 64, 0), _spheres(2, 64, 1)
    m = ex.ae_metrics(a, a.clone())
    assert float(m["CD x1e4"].abs().max()) < 1e-6 and float(m["EMD x1e2"].abs().max()) < 1e-5
    m = ex.ae_metrics(a, b)
    d = torch.cdist(a.double(), b.double()) ** 2
    cd = (d.min(2).values.mean(1) + d.min(1).values.mean(1)) * 1e4
    torch.testing.assert_close(m["CD x1e4"].double(), cd, rtol=1e-4, atol=1e-4)
    rows, per = ex.autoencoding_table({"copy": a}, b, b.clone(), emd=False)
    assert [r["model"] for r in rows] == ["copy", "Oracle"] and per["Oracle"]["CD x1e4"].abs().max() < 1e-6


def test_analytic_oracle_lands_on_the_sphere():
    inputs = _spheres(2, 200, 0)
    out = ex.analytic_oracle(inputs, 150, steps_per_level=3)
    assert out.shape == (2, 150, 3)
    assert float((out.norm(dim=-1) - 0.5).abs().mean()) < 0.01


def test_noisy_training_baseline_and_generation_table():
    train = _spheres(6, 32, 0)
    base = ex.noisy_training_baseline(train, 4, noise=0.01)
    assert base.shape == (4, 32, 3)
    assert float((base - train[torch.randint(0, 6, (4,), generator=torch.Generator().manual_seed(0))]).std()) \
        == pytest.approx(0.01, rel=0.2)
    tab = ex.generation_table({"copies": train[:3].clone()}, train[:3])
    assert tab["copies"]["COV-CD %"] == 100.0 and tab["copies"]["MMD-CD x1e3"] == pytest.approx(0.0, abs=1e-6)


def test_occlusion_keeps_one_side():
    pts = _spheres(3, 100, 2)
    part = ex._occlude(pts, 0.5)
    assert part.shape == (3, 50, 3)


def test_fit_single_shape_and_tiny_autoencoder_pipeline():
    cloud = _spheres(1, 64, 0)[0]
    net, losses = ex.fit_single_shape(cloud, steps=5, hidden=8, n_blocks=1, batch=2, progress=False)
    assert len(losses) == 5 and not net.training
    with pytest.raises(ValueError, match="one cloud"):
        ex.fit_single_shape(cloud[None], steps=1)
    model = ex.build_shapegf("ci")
    x = _spheres(3, 64, 1)
    out = ex.reconstruct(model, x, 20, steps_per_level=1, profile="ci")
    assert out.shape == (3, 20, 3) and float(out.abs().max()) <= 3.0 + 1e-6
    res = ex.upsampling_table({64: model}, x, x[:, :20], (64, 16, 128), steps_per_level=1, emd=False, profile="ci")
    assert set(res["cd"][64]) == {64, 16}
    mid = ex.interpolate(model, x[0], x[1], 3, 10, profile="ci")
    assert mid.shape == (3, 10, 3)


def test_train_shapegf_schedule_is_applied_and_validated(tmp_path, monkeypatch):
    from course_lib import config

    monkeypatch.setenv(config.ENV_CACHE, str(tmp_path))
    x = _spheres(8, 128, seed=3)
    data = {"points": x, "target_points": x.flip(1), "seed": torch.arange(8), "categories": ("sphere",)}
    with pytest.raises(ValueError, match="schedule"):
        ex.train_shapegf(data, epochs=1, schedule="step", profile="ci", progress=False, live_plot=False)
    cos, h_cos = ex.train_shapegf(data, epochs=3, schedule="cosine", profile="ci", progress=False, live_plot=False)
    const, h_const = ex.train_shapegf(data, epochs=3, schedule="constant", profile="ci", progress=False,
                                      live_plot=False)
    # same seed and first epoch at the same rate; the later epochs differ only through the schedule
    assert h_cos.train_loss[0] == pytest.approx(h_const.train_loss[0])
    assert max(float((a - b).abs().max()) for a, b in zip(cos.parameters(), const.parameters())) > 1e-6
    assert len(list((config.cache_dir() / "checkpoints").glob("ch10_shapegf-ci-*.pt"))) == 2


def test_train_shapegf_levels_option_is_applied_and_validated(tmp_path, monkeypatch):
    from course_lib import config

    monkeypatch.setenv(config.ENV_CACHE, str(tmp_path))
    x = _spheres(8, 128, seed=4)
    data = {"points": x, "target_points": x.flip(1), "seed": torch.arange(8), "categories": ("sphere",)}
    with pytest.raises(ValueError, match="levels"):
        ex.train_shapegf(data, epochs=1, levels="sorted", profile="ci", progress=False, live_plot=False)
    uni, _ = ex.train_shapegf(data, epochs=2, levels="uniform", profile="ci", progress=False, live_plot=False)
    strat, _ = ex.train_shapegf(data, epochs=2, levels="stratified", profile="ci", progress=False, live_plot=False)
    assert max(float((a - b).abs().max()) for a, b in zip(uni.parameters(), strat.parameters())) > 1e-6
    assert len(list((config.cache_dir() / "checkpoints").glob("ch10_shapegf-ci-*.pt"))) == 2


def test_paired_steps_against_hand_computed_differences():
    # three shapes, three sizes: 64 -> 128 falls clearly, 128 -> 256 is flat (differences cancel)
    per = {128: [2.0, 2.2, 1.9], 64: [3.0, 3.3, 2.8], 256: [2.1, 2.1, 1.9]}
    steps = ex.paired_steps(per)
    assert [(s["fewer"], s["more"]) for s in steps] == [(64, 128), (128, 256)]
    d = torch.tensor([1.0, 1.1, 0.9], dtype=torch.float64)
    assert steps[0]["mean"] == pytest.approx(float(d.mean()))
    assert steps[0]["se"] == pytest.approx(float(d.std() / 3 ** 0.5))
    assert steps[0]["verdict"] == "falls"
    assert steps[1]["mean"] == pytest.approx(0.0, abs=1e-12) and steps[1]["verdict"] == "flat"
    # a consistent rise is called a rise, not flat; unpaired noise of the same size is flat
    assert ex.paired_steps({64: [1.0, 1.1, 0.9], 128: [2.0, 2.1, 1.9]})[0]["verdict"] == "rises"
    assert ex.paired_steps({64: [1.0, 2.0, 3.0], 128: [2.0, 3.0, 1.0]})[0]["verdict"] == "flat"
    with pytest.raises(ValueError, match="two runtime sizes"):
        ex.paired_steps({64: [1.0, 2.0]})
    with pytest.raises(ValueError, match="same number"):
        ex.paired_steps({64: [1.0, 2.0], 128: [1.0]})


def test_seed_falling_range_read_off_the_seed_table():
    # by hand from the seed: every row falls 128 -> 256 -> 512; at 512 -> 1024 the 10K row rises
    # (0.999 -> 1.057) and so does the 3K row (1.003 -> 1.059)
    assert ex.SEED_UPSAMPLING_CD["10K"][512] < ex.SEED_UPSAMPLING_CD["10K"][1024]
    assert ex.seed_falling_range() == 512
    assert ex.seed_falling_range({"a": {128: 3.0, 256: 2.0, 512: 1.0}}) == 512
    # one row that rises at the first step stops the range at the smallest size
    assert ex.seed_falling_range({"a": {128: 3.0, 256: 2.0}, "b": {128: 1.0, 256: 2.0}}) == 128
    # a row that does not reach a size does not vote on its steps
    assert ex.seed_falling_range({"a": {128: 3.0, 256: 2.0, 512: 1.5}, "b": {128: 3.0, 256: 2.0}}) == 512
    with pytest.raises(ValueError, match="two runtime sizes"):
        ex.seed_falling_range({"a": {128: 1.0}})


def test_relative_steps_against_hand_computed_ratios():
    # keys as a JSON file has them (strings); the default steps are the seed's runtime sizes
    steps = ex.relative_steps({"512": 2.0, "256": 3.0, "128": 6.0})
    assert [(s["fewer"], s["more"]) for s in steps] == [(128, 256), (256, 512), (512, 1024), (1024, 2048)]
    assert steps[0]["change"] == pytest.approx(1.0) and steps[1]["change"] == pytest.approx(0.5)
    assert steps[2]["change"] is None and steps[3]["change"] is None
    # the seed's 10K row, 512 -> 1024: 0.999 / 1.057 - 1 (a rise with more points)
    seed = ex.relative_steps(ex.SEED_UPSAMPLING_CD["10K"])
    assert seed[2]["change"] == pytest.approx(0.999 / 1.057 - 1)
    assert [s["fewer"] for s in ex.relative_steps({64: 1.0, 32: 2.0}, sizes=[64, 32])] == [32]
    with pytest.raises(ValueError, match="two runtime sizes"):
        ex.relative_steps({64: 1.0}, sizes=[64])


def _steps(verdicts, sizes=(128, 256, 512, 1024, 2048)):
    return [{"fewer": a, "more": b, "mean": 0.0, "se": 1.0, "verdict": v}
            for (a, b), v in zip(zip(sizes, sizes[1:]), verdicts)]


def test_upsampling_in_seed_shape_accepts_a_fall_then_a_plateau_only():
    # the seed's shape: falls up to 512, flat or falling beyond
    ok = ex.upsampling_in_seed_shape(_steps(["falls", "falls", "flat", "flat"]))
    assert ok["met"] and ok["falls_up_to"] == 512 and ok["failing"] == []
    assert ex.upsampling_in_seed_shape(_steps(["falls"] * 4))["met"]
    # an encoder that ignores its input: flat everywhere
    flat = ex.upsampling_in_seed_shape(_steps(["flat"] * 4))
    assert not flat["met"] and not flat["sparse_steps_fall"]
    # one sparse step flat is enough to fail
    assert not ex.upsampling_in_seed_shape(_steps(["falls", "flat", "falls", "falls"]))["met"]
    # a dense step that rises beyond the noise breaks the shape, and is named
    rise = ex.upsampling_in_seed_shape(_steps(["falls", "falls", "falls", "rises"]))
    assert not rise["met"] and rise["sparse_steps_fall"] and not rise["no_step_rises"]
    assert [(s["fewer"], s["more"]) for s in rise["failing"]] == [(1024, 2048)]
    # a stricter range, given by hand, turns the plateau into a failure
    assert not ex.upsampling_in_seed_shape(_steps(["falls", "falls", "falls", "flat"]), falls_up_to=2048)["met"]
    with pytest.raises(ValueError, match="sparse end"):
        ex.upsampling_in_seed_shape(_steps(["falls"], sizes=(1024, 2048)))
    with pytest.raises(ValueError, match="at least one"):
        ex.upsampling_in_seed_shape([])


def test_upsampling_table_per_shape_values_match_the_means():
    model = ex.build_shapegf("ci")
    x = _spheres(3, 64, 1)
    res = ex.upsampling_table({64: model}, x, x[:, :20], (64, 16), steps_per_level=1, emd=False, profile="ci")
    for r in (64, 16):
        vals = res["cd_per_shape"][64][r]
        assert len(vals) == 3 and sum(vals) / 3 == pytest.approx(res["cd"][64][r], rel=1e-6)
    # cells are paired: the same input gives the same per-shape values
    again = ex.upsampling_table({64: model}, x, x[:, :20], (64,), steps_per_level=1, emd=False, profile="ci")
    assert again["cd_per_shape"][64][64] == res["cd_per_shape"][64][64]


# --- protocol 2: budgets, width override, per-reference generation metrics -------------------------

def _sphere_data(seed: int, n: int = 8):
    x = _spheres(n, 128, seed=seed)
    return {"points": x, "target_points": x.flip(1), "seed": torch.arange(n), "categories": ("sphere",)}


def test_train_shapegf_width_override_changes_model_and_checkpoint(tmp_path, monkeypatch):
    from course_lib import config

    monkeypatch.setenv(config.ENV_CACHE, str(tmp_path))
    data = _sphere_data(5)
    sz = config.sizes("ci", prefix="ch10.")
    default, _ = ex.train_shapegf(data, epochs=1, profile="ci", progress=False, live_plot=False)
    # the profile's own width is the default: same checkpoint name, loaded not retrained
    same, _ = ex.train_shapegf(data, epochs=1, profile="ci", progress=False, live_plot=False,
                               hidden=int(sz["hidden"]), n_blocks=int(sz["n_blocks"]))
    assert len(list((config.cache_dir() / "checkpoints").glob("ch10_shapegf-ci-*.pt"))) == 1
    assert all(torch.equal(a, b) for a, b in zip(default.parameters(), same.parameters()))
    narrow, _ = ex.train_shapegf(data, epochs=1, profile="ci", progress=False, live_plot=False,
                                 hidden=int(sz["hidden"]) // 2, n_blocks=int(sz["n_blocks"]) + 1)
    assert len(list((config.cache_dir() / "checkpoints").glob("ch10_shapegf-ci-*.pt"))) == 2
    assert sum(p.numel() for p in narrow.parameters()) != sum(p.numel() for p in default.parameters())
    with pytest.raises(ValueError, match="positive"):
        ex.train_shapegf(data, epochs=1, profile="ci", progress=False, live_plot=False, hidden=-3)


def test_training_budget_counts_steps_examples_and_params():
    from course_lib.train import History

    net = torch.nn.Linear(3, 4)  # 16 trainable parameters
    frozen = torch.nn.Linear(2, 2)
    for p in frozen.parameters():
        p.requires_grad_(False)
    model = torch.nn.Sequential(net, frozen)
    h = History(epochs_run=5, wall_time=12.5)
    b = ex.training_budget(model, h, n_shapes=120, batch_size=16)
    # 120 shapes in batches of 16: 8 batches per epoch (the last one of 8 shapes)
    assert (b["steps"], b["examples"], b["seconds"], b["params"], b["epochs"]) == (40, 600, 12.5, 16, 5)
    assert ex.training_budget(model, h, 96, 16)["steps"] == 30
    with pytest.raises(ValueError, match="positive"):
        ex.training_budget(model, h, 0, 16)


def test_baselines_get_the_steps_of_shapegf(tmp_path, monkeypatch):
    from course_lib import config

    monkeypatch.setenv(config.ENV_CACHE, str(tmp_path))
    data = _sphere_data(6, n=6)
    sz = config.sizes("ci", prefix="ch10.")
    assert int(sz["baseline_epochs"]) == int(sz["epochs"])  # equal budgets by configuration
    model, h = ex.train_shapegf(data, profile="ci", progress=False, live_plot=False)
    hist: dict = {}
    bls = ex.train_baselines(data, which=("PointSetGen", "AtlasNet sphere"), profile="ci", progress=False,
                             histories=hist)
    assert set(hist) == set(bls) == {"PointSetGen", "AtlasNet sphere"}
    ref = ex.training_budget(model, h, 6, int(sz["batch_size"]))
    for name, bl in bls.items():
        b = ex.training_budget(bl, hist[name], 6, int(sz["batch_size"]))
        assert (b["steps"], b["examples"]) == (ref["steps"], ref["examples"]) and b["steps"] > 0


def test_per_index_generation_parts_on_hand_made_matrices():
    # two references, two samples; sample 0 is near reference 0, sample 1 too (reference 1 uncovered)
    m_rs = torch.tensor([[1.0, 2.0], [5.0, 6.0]])
    m_rr = torch.tensor([[0.0, 9.0], [9.0, 0.0]])
    m_ss = torch.tensor([[0.0, 0.5], [0.5, 0.0]])
    parts = ex._per_index_from_matrices(m_rr, m_ss, m_rs)
    assert parts["mmd"].tolist() == [1.0, 5.0]
    assert parts["cov"].tolist() == [1.0, 0.0]
    # leave-one-out nearest: ref0 -> sample0 (wrong), ref1 -> sample0 (5 < 6 < 9: wrong),
    # sample0 -> sample1 (0.5: right), sample1 -> sample0 (right)
    assert parts["1-nna"].tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="as many samples"):
        ex._per_index_from_matrices(m_rr, torch.zeros(3, 3), torch.zeros(2, 3))


def test_generation_per_reference_means_are_the_table_values():
    refs = _spheres(6, 48, 0) * torch.tensor([1.0, 0.7, 1.2])
    samples = _spheres(6, 48, 1) * torch.linspace(0.6, 1.3, 6)[:, None, None]
    per = ex.generation_per_reference(samples, refs)
    tab = ex.generation_table({"s": samples}, refs)["s"]
    for k, vals in per.items():
        assert len(vals) == 6 and sum(vals) / 6 == pytest.approx(tab[k], rel=1e-6, abs=1e-9), k
    assert set(per["COV-CD %"]) <= {0.0, 100.0} and set(per["1-NNA-CD %"]) <= {0.0, 50.0, 100.0}
    with pytest.raises(ValueError, match="as many samples"):
        ex.generation_per_reference(samples[:5], refs)


def test_nna_gap_values_measure_the_distance_from_fifty():
    above = [100.0, 50.0, 100.0, 50.0]  # mean 75
    below = [0.0, 50.0, 50.0, 0.0]  # mean 25
    assert ex.nna_gap_values(above) == [50.0, 0.0, 50.0, 0.0]
    assert ex.nna_gap_values(below) == [50.0, 0.0, 0.0, 50.0]
    # both are 25 points from the ideal: a paired claim on these parts cannot separate them
    assert sum(ex.nna_gap_values(above)) / 4 == sum(ex.nna_gap_values(below)) / 4 == 25.0
    with pytest.raises(ValueError, match="at least one"):
        ex.nna_gap_values([])
