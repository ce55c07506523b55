"""course_lib.experiments.retrieval against brute-force references (scipy's cKDTree, numpy) and hand-built cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from course_lib.experiments import retrieval as rt


def cd_ref(x, y) -> float:
    """Squared-L2 Chamfer, the two directional means summed, with scipy's KD-tree."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    d_xy = cKDTree(y).query(x)[0]
    d_yx = cKDTree(x).query(y)[0]
    return float((d_xy ** 2).mean() + (d_yx ** 2).mean())


def cd_l1_ref(x, y) -> float:
    """OccNet's 'Chamfer-L1': unsquared distances, the two means averaged."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float((cKDTree(y).query(x)[0].mean() + cKDTree(x).query(y)[0].mean()) / 2)


def matrix_ref(a, b, ref=cd_ref) -> np.ndarray:
    return np.array([[ref(x, y) for y in b] for x in a])


def sphere_like(radius: float, stretch: float, n: int, gen: torch.Generator) -> torch.Tensor:
    """n points on an axis-stretched sphere: one 'shape' per (radius, stretch), a fresh sampling per call."""
    v = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    v = v / v.norm(dim=1, keepdim=True)
    return (v * radius * torch.tensor([stretch, 1.0, 1.0 / stretch], dtype=torch.float64)).float()


def shapes(params, n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([sphere_like(r, s, n, g) for r, s in params])


PARAMS = [(0.5, 1.0), (0.6, 1.3), (0.7, 0.8), (0.8, 1.6), (0.9, 1.1), (1.0, 0.7)]


# --- distances -------------------------------------------------------------
def test_chamfer_matrix_matches_scipy():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(4, 50, 3, generator=g)
    b = torch.rand(3, 70, 3, generator=g)
    d = rt.chamfer_matrix(a, b, chunk=5)
    assert d.shape == (4, 3)
    np.testing.assert_allclose(d.numpy(), matrix_ref(a.numpy(), b.numpy()), rtol=1e-5)
    d1 = rt.chamfer_matrix(a, b, squared=False, directions="mean", chunk=2)
    np.testing.assert_allclose(d1.numpy(), matrix_ref(a.numpy(), b.numpy(), cd_l1_ref), rtol=1e-5)


def test_chamfer_matrix_symmetric_and_chunk_invariant():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(5, 40, 3, generator=g)
    full = rt.chamfer_matrix(a, a.clone(), chunk=3)
    sym = rt.chamfer_matrix(a, chunk=1)
    np.testing.assert_allclose(sym.numpy(), full.numpy(), rtol=1e-6, atol=1e-12)
    assert torch.equal(sym, sym.t())
    assert torch.all(torch.diagonal(sym) == 0)
    np.testing.assert_allclose(rt.chamfer_matrix(a, chunk=1000).numpy(), sym.numpy(), rtol=1e-6)
    np.testing.assert_allclose(sym.numpy(), matrix_ref(a.numpy(), a.numpy()), rtol=1e-5, atol=1e-12)


def test_nearest_training_distances_matches_brute_force():
    g = torch.Generator().manual_seed(2)
    test = torch.rand(6, 60, 3, generator=g)
    train = torch.rand(9, 80, 3, generator=g) * 1.5
    res = rt.nearest_training_distances(test, train, chunk=7)
    ref = matrix_ref(test.numpy(), train.numpy())
    np.testing.assert_allclose(res.distance.numpy(), ref.min(1), rtol=1e-5)
    np.testing.assert_array_equal(res.index.numpy(), ref.argmin(1))
    one = rt.nearest_training_distances(test[2], train)
    assert one.distance.dim() == 0 and int(one.index) == int(ref[2].argmin())


def test_a_duplicated_shape_is_found_at_the_oracle_distance():
    n = 512
    train = shapes(PARAMS, n, seed=10)        # one sampling of every shape
    targets = shapes(PARAMS, n, seed=11)      # the same shapes, another sampling (the test targets)
    oracle = shapes(PARAMS, n, seed=12)       # a third sampling
    res = rt.nearest_training_distances(targets, train)
    assert res.index.tolist() == list(range(len(PARAMS)))  # each test shape finds its own copy
    orc = rt.oracle_distances(targets, oracle)
    ratio = res.distance / orc
    assert torch.all(ratio < 1.6) and torch.all(ratio > 0.6), ratio  # a resampling is as near as the oracle
    s = rt.split_summary(res.distance, orc, rt.leave_one_out_distances(train).distance)
    assert s["frac_within"] == 1.0
    # without the copies, the nearest training shape is another shape, many oracle distances away
    res2 = rt.nearest_training_distances(targets[::2], train[1::2])
    assert torch.all(res2.distance > 3 * orc[::2])


def test_leave_one_out_never_returns_self_and_finds_a_copy():
    g = torch.Generator().manual_seed(3)
    train = torch.rand(7, 40, 3, generator=g)
    res = rt.leave_one_out_distances(train, chunk=4)
    assert torch.all(res.index != torch.arange(7))
    ref = matrix_ref(train.numpy(), train.numpy())
    np.fill_diagonal(ref, np.inf)
    np.testing.assert_allclose(res.distance.numpy(), ref.min(1), rtol=1e-5)
    np.testing.assert_array_equal(res.index.numpy(), ref.argmin(1))
    dup = torch.cat([train, train[3:4]])  # shape 3 twice: each finds the other at distance 0
    r2 = rt.leave_one_out_distances(dup)
    assert int(r2.index[3]) == 7 and int(r2.index[7]) == 3
    assert float(r2.distance[3]) == 0.0 and float(r2.distance[7]) == 0.0


def test_oracle_distances_matches_scipy():
    g = torch.Generator().manual_seed(4)
    x, y = torch.rand(5, 30, 3, generator=g), torch.rand(5, 30, 3, generator=g)
    d = rt.oracle_distances(x, y, chunk=2)
    np.testing.assert_allclose(d.numpy(), [cd_ref(a, b) for a, b in zip(x.numpy(), y.numpy())], rtol=1e-5)


# --- retrieval ---------------------------------------------------------------
def test_retrieve_by_oracle_is_the_nearest_training_shape():
    train = shapes(PARAMS, 256, seed=20)
    q = shapes(PARAMS[::-1], 256, seed=21)
    r = rt.retrieve(train, q, by="oracle")
    assert r.index.tolist() == list(range(len(PARAMS)))[::-1]
    assert torch.equal(r.clouds, train[r.index])
    np.testing.assert_allclose(r.distance.numpy(), [cd_ref(a, b) for a, b in zip(q.numpy(), r.clouds.numpy())],
                               rtol=1e-5)
    one = rt.retrieve(train, q[0])
    assert int(one.index) == len(PARAMS) - 1 and one.clouds.shape == (256, 3)


def test_retrieve_by_latent_uses_the_codes_not_the_clouds():
    train = shapes(PARAMS, 64, seed=22)
    train_codes = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0], [-3.0, 0.0], [0.0, -3.0]])
    query_codes = torch.tensor([[4.0, 4.5], [0.9, 0.2], [-2.0, 0.1]])
    r = rt.retrieve(train, None, by="latent", train_codes=train_codes, query_codes=query_codes)
    assert r.index.tolist() == [3, 1, 4]
    assert torch.equal(r.clouds, train[[3, 1, 4]])
    ref = np.linalg.norm(query_codes.numpy()[:, None] - train_codes.numpy()[None], axis=-1).min(1)
    np.testing.assert_allclose(r.distance.numpy(), ref, rtol=1e-6)
    # the clouds passed as query are ignored: the same answer with a query that would pick otherwise
    r2 = rt.retrieve(train, train[:3], by="latent", train_codes=train_codes, query_codes=query_codes)
    assert r2.index.tolist() == [3, 1, 4]
    one = rt.retrieve(train, by="latent", train_codes=train_codes, query_codes=query_codes[1])
    assert int(one.index) == 1 and one.clouds.shape == (64, 3)


# --- summaries ----------------------------------------------------------------
def test_split_summary_hand_computed():
    s = rt.split_summary([1.0, 4.0, 9.0, 3.0], [1.0, 1.0, 3.0, 2.0], [2.0, 4.0, 6.0], factor=2.0)
    # ratios 1, 4, 3, 1.5: median 2.25, min 1; within 2x: shapes 0 and 3
    assert s["n_test"] == 4 and s["n_train"] == 3
    assert s["nearest"] == pytest.approx(3.5) and s["oracle"] == pytest.approx(1.5) and s["loo"] == pytest.approx(4.0)
    assert s["ratio_oracle"] == pytest.approx(2.25) and s["ratio_oracle_min"] == pytest.approx(1.0)
    assert s["ratio_loo"] == pytest.approx(3.5 / 4.0)
    assert s["frac_within"] == pytest.approx(0.5)
    assert rt.split_summary([1.0, 4.0, 9.0, 3.0], [1.0, 1.0, 3.0, 2.0], [2.0], factor=3.0)["frac_within"] == 0.75


def test_summarize_splits_pools_every_category():
    groups = {"a": {"nearest": [2.0, 6.0], "oracle": [1.0, 1.0], "loo": [2.0, 2.0, 4.0]},
              "b": {"nearest": torch.tensor([3.0]), "oracle": torch.tensor([1.0]), "loo": torch.tensor([3.0, 3.0])}}
    out = rt.summarize_splits(groups)
    assert list(out) == ["a", "b", "all"]
    assert out["a"]["ratio_oracle"] == pytest.approx(4.0) and out["b"]["frac_within"] == 0.0
    assert out["all"]["n_test"] == 3 and out["all"]["n_train"] == 5
    assert out["all"]["ratio_oracle"] == pytest.approx(3.0) and out["all"]["frac_within"] == pytest.approx(1 / 3)
    table = rt.format_splits_table(out)
    assert "nearest/oracle" in table and "within 2x oracle" in table and table.count("\n") == 4
    assert "4.00" in table  # category a's median ratio


def _data(frac_within: float, copies: float = 0.33, mean: float = 0.48, sd: float = 0.05) -> dict:
    summ = {"chair": {"n_test": 10, "n_train": 40, "nearest": 4e-3, "oracle": 1e-3, "loo": 4e-3, "ratio_oracle": 3.9,
                      "ratio_oracle_min": 1.5, "ratio_loo": 1.0, "frac_within": frac_within, "factor": 2.0},
            "car": {"n_test": 10, "n_train": 40, "nearest": 2e-3, "oracle": 1e-3, "loo": 2e-3, "ratio_oracle": 2.4,
                    "ratio_oracle_min": 1.7, "ratio_loo": 1.1, "frac_within": frac_within, "factor": 2.0}}
    summ["all"] = dict(summ["chair"], n_test=20, ratio_oracle=3.0)
    return {"summary": summ, "near_duplicate_target": 0.05,
            "memoriser": {"categories": ["chair", "car"], "n_refs": 20, "n_samples": 20, "noise": 0.02,
                          "one_nna": {"noisy": {"1-nna": 0.35}, "copies": {"1-nna": copies}},
                          "draws": {"replacement": {"k": 100, "mean": mean, "sd": sd, "min": 0.3, "max": 0.6}},
                          "expected_exchangeable": rt.expected_one_nna(20, 20)}}


def test_describe_splits_writes_the_verdict_from_the_numbers():
    clean = rt.describe_splits(_data(0.0))
    assert "no near-duplicates" in clean and "2.4-3.9x" in clean and "20 test shapes of 2 categories" in clean
    assert "0% of the test shapes" in clean and "at most 5%" in clean
    assert "3.0 standard deviations below" in clean and "more than one draw's luck" in clean
    dirty = rt.describe_splits(_data(0.5, copies=0.45))
    assert "hold near-duplicates" in dirty and "no near-duplicates" not in dirty
    assert "one draw's luck accounts for it" in dirty
    assert f"{100 * rt.expected_one_nna(20, 20):.0f}% in expectation" in dirty
    with pytest.raises(ValueError, match="summary"):
        rt.describe_splits({})


# --- the memoriser -----------------------------------------------------------
def test_memoriser_indices_are_chapter_10s_draw():
    from course_lib.experiments.gradient_fields import noisy_training_baseline

    train = torch.rand(12, 20, 3, generator=torch.Generator().manual_seed(5))
    for seed in (0, 3):
        idx = rt.memoriser_indices(12, 9, seed=seed)
        assert torch.equal(train[idx], noisy_training_baseline(train, 9, noise=0.0, seed=seed))
    assert idx.dtype == torch.long and int(idx.max()) < 12


def test_one_nna_subset_equals_generation_metrics_on_the_clouds():
    from course_lib.metrics_generation import generation_metrics

    g = torch.Generator().manual_seed(6)
    refs = torch.rand(6, 30, 3, generator=g)
    pool = torch.rand(10, 30, 3, generator=g) * 1.2
    idx = torch.tensor([0, 3, 3, 7, 9, 1])  # a repeat, as a draw with replacement gives
    got = rt.one_nna_subset(rt.chamfer_matrix(refs), rt.chamfer_matrix(refs, pool), rt.chamfer_matrix(pool), idx)
    ref = generation_metrics(pool[idx], refs, "cd")
    assert got["acc"] == pytest.approx(ref["1-nna"]) and got["acc_t"] == pytest.approx(ref["1-nna_t"])
    with pytest.raises(ValueError, match="index must lie"):
        rt.one_nna_subset(rt.chamfer_matrix(refs), rt.chamfer_matrix(refs, pool), rt.chamfer_matrix(pool), [10])


def _brute_one_nna(ref: np.ndarray, smp: np.ndarray) -> float:
    x = np.concatenate([ref, smp])
    lab = np.r_[np.ones(len(ref)), np.zeros(len(smp))]
    d = np.abs(x[:, None] - x[None])
    np.fill_diagonal(d, np.inf)
    return float((lab[d.argmin(1)] == lab).mean())


def test_expected_one_nna_hand_values_and_monte_carlo():
    assert rt.expected_one_nna(1, 1) == 0.0
    assert rt.expected_one_nna(2, 1) == pytest.approx(1 / 3)
    assert rt.expected_one_nna(30, 30) == pytest.approx(1740 / 3540)
    rng = np.random.default_rng(0)
    acc = [_brute_one_nna(rng.normal(size=5), rng.normal(size=7)) for _ in range(4000)]
    assert np.mean(acc) == pytest.approx(rt.expected_one_nna(5, 7), abs=0.01)


def test_stratified_indices():
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    idx = rt.stratified_indices(labels, 2, seed=1)
    assert idx.numel() == 6 and len(set(idx.tolist())) == 6
    assert labels[idx].tolist() == [0, 0, 1, 1, 2, 2]
    draws = {tuple(rt.stratified_indices(labels, 2, seed=k).tolist()) for k in range(20)}
    assert len(draws) > 1  # the subset is random, not the first elements of each label
    with pytest.raises(ValueError, match="fewer than per_label"):
        rt.stratified_indices(labels, 4)


# --- bad inputs ------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors():
    x = torch.rand(3, 10, 3)
    with pytest.raises(TypeError, match="torch.Tensor"):
        rt.chamfer_matrix(x.numpy())
    with pytest.raises(ValueError, match=r"\(S, N, 3\)"):
        rt.chamfer_matrix(torch.rand(3, 10, 2))
    with pytest.raises(ValueError, match="no cloud"):
        rt.nearest_training_distances(x, torch.rand(0, 10, 3))
    with pytest.raises(ValueError, match="empty clouds"):
        rt.chamfer_matrix(torch.rand(2, 0, 3))
    with pytest.raises(TypeError, match="floating point"):
        rt.chamfer_matrix(torch.ones(2, 4, 3, dtype=torch.long))
    bad = x.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        rt.nearest_training_distances(bad, x)
    with pytest.raises(ValueError, match="chunk"):
        rt.chamfer_matrix(x, chunk=0)
    with pytest.raises(ValueError, match="directions"):
        rt.chamfer_matrix(x, directions="max")
    with pytest.raises(ValueError, match="at least 2"):
        rt.leave_one_out_distances(x[:1])
    with pytest.raises(ValueError, match="same shapes"):
        rt.oracle_distances(x, x[:2])
    with pytest.raises(ValueError, match="by must be"):
        rt.retrieve(x, x, by="clouds")
    with pytest.raises(ValueError, match="needs query"):
        rt.retrieve(x)
    with pytest.raises(ValueError, match="only with by='latent'"):
        rt.retrieve(x, x, train_codes=torch.rand(3, 4))
    with pytest.raises(ValueError, match="needs train_codes"):
        rt.retrieve(x, by="latent", query_codes=torch.rand(2, 4))
    with pytest.raises(ValueError, match="one code per training shape"):
        rt.retrieve(x, by="latent", train_codes=torch.rand(4, 4), query_codes=torch.rand(2, 4))
    with pytest.raises(ValueError, match="code sizes differ"):
        rt.retrieve(x, by="latent", train_codes=torch.rand(3, 4), query_codes=torch.rand(2, 5))
    with pytest.raises(ValueError, match="paired"):
        rt.split_summary([1.0, 2.0], [1.0], [1.0])
    with pytest.raises(ValueError, match="> 0"):
        rt.split_summary([1.0], [0.0], [1.0])
    with pytest.raises(ValueError, match="finite distances"):
        rt.split_summary([math.nan], [1.0], [1.0])
    with pytest.raises(KeyError, match="lacks"):
        rt.summarize_splits({"a": {"nearest": [1.0], "oracle": [1.0]}})
    with pytest.raises(ValueError, match="square"):
        rt.nearest_from_matrix(torch.rand(2, 3), exclude_self=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(7)
    test, train = torch.rand(4, 200, 3, generator=g), torch.rand(6, 300, 3, generator=g)
    cpu = rt.nearest_training_distances(test, train)
    gpu = rt.nearest_training_distances(test.cuda(), train.cuda())
    assert gpu.distance.device.type == "cuda"
    np.testing.assert_allclose(gpu.distance.cpu().numpy(), cpu.distance.numpy(), rtol=1e-4)
    assert torch.equal(gpu.index.cpu(), cpu.index)
    r = rt.retrieve(train.cuda(), test.cuda())
    assert r.clouds.device.type == "cuda" and torch.equal(r.index.cpu(), cpu.index)


def test_format_chapter_rows_prints_models_and_retrieval_with_sem():
    from scipy.stats import sem

    from course_lib.experiments.retrieval import format_chapter_rows

    cd = [1.0, 2.0, 4.0]
    data = {"chapters": {"05": {"metrics": ["CD x1e3"], "shapes": [["chair", 1], ["chair", 2], ["mug", 3]],
                                "training_shapes": 40, "models": {"PointSetGen": {"CD x1e3": 0.5}},
                                "rows": [{"name": "nearest training shape (oracle)", "by": "oracle", "CD x1e3": cd}]}}}
    txt = format_chapter_rows(data, "05")
    assert "3 test shapes" in txt and "PointSetGen" in txt and "0.5" in txt
    assert f"{sum(cd) / 3:.4g} ± {sem(cd):.2g}" in txt
    assert "retrieval from 40 training shapes" in txt
    with pytest.raises(KeyError, match=r"measured: \['05'\]"):
        format_chapter_rows(data, "07")


def test_retrieval_benchmark_report_and_claims_from_records():
    """benchmarks/retrieval.py's report prints the models' rows, the retrieval rows and each claim sentence."""
    from check_helpers import load_benchmark

    from course_lib.experiments.protocol import claim

    B = load_benchmark("retrieval")
    assert B.SELECTION_PARTS == () and set(B.PARTS) == {"05", "07", "10"}
    vals_a, vals_b = [1.0 + 0.01 * i for i in range(20)], [2.0 + 0.01 * i for i in range(20)]
    c = claim("ch05-x", "A reconstructs closer than B (CD x1e3)", a="A", b="B", metric="CD x1e3", values_a=vals_a,
              values_b=vals_b, higher_is_better=False, unit="shapes")
    parts = {"05": {"metrics": ["CD x1e3"], "shapes": [["chair", i] for i in range(20)], "training_shapes": 40,
                    "models": {"A": {"CD x1e3": 1.1}},
                    "rows": [{"name": "nearest training shape (oracle)", "by": "oracle", "CD x1e3": vals_b}],
                    "claims": [c]}}
    txt = B.report(parts)
    assert "## Chapter 05 (20 test shapes)" in txt and "| A | 1.1 | model |" in txt
    assert "nearest training shape (oracle)" in txt and "A ahead of B" in txt


@pytest.mark.usefixtures("base_family")
def test_show_chapter_prints_the_table_and_only_that_chapters_claims(tmp_path, monkeypatch, capsys):
    import json

    from course_lib.experiments.protocol import claim
    from course_lib.experiments.retrieval import show_chapter

    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    assert show_chapter("05") is None and "not measured yet" in capsys.readouterr().out
    va, vb = [1.0 + 0.01 * i for i in range(20)], [2.0] * 20
    recs = [claim(f"ch{c}-x", f"A beats B in {c}", a="A", b="B", metric="CD", values_a=va, values_b=vb,
                  higher_is_better=False, unit="shapes") for c in ("05", "07")]
    part = {"metrics": ["CD"], "shapes": [["chair", i] for i in range(20)], "training_shapes": 4,
            "models": {"A": {"CD": 1.1}}, "rows": [{"name": "nearest", "by": "oracle", "CD": vb}]}
    (tmp_path / "retrieval-laptop.json").write_text(json.dumps(
        {"provenance": {"protocol": 2}, "data": {"chapters": {"05": part}, "claims": recs, "goals": []}}))
    table = show_chapter("05")
    out = capsys.readouterr().out
    assert table in out and "A beats B in 05" in out and "A beats B in 07" not in out
    assert show_chapter("10") is None and "--chapters 10" in capsys.readouterr().out
