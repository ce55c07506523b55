"""Chapter 04's benchmark: the single-view and octree-encoder claims are built from the seeds and shapes the
results hold (over seeds when there are three, paired over shapes when there are twenty), never from fewer."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("_bench_octrees_claims", ROOT / "benchmarks" / "octrees.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _budget(seconds: float) -> dict:
    return {"steps": 240, "examples": 1920, "seconds": seconds, "params": 1000, "runs": 3}


def _svr(seeds: list[int], n_test: int, gap: float) -> dict:
    rng = np.random.default_rng(0)
    per = {}
    for k, R in enumerate((32, 64)):
        runs = [(0.5 + k * gap + 0.01 * rng.standard_normal(n_test)).tolist() for _ in seeds]
        per[str(R)] = {"iou_at_max": np.mean(runs, 0).tolist(), "iou_native": np.mean(runs, 0).tolist(),
                       "iou_at_max_per_seed": runs, "seed_means": [float(np.mean(r)) for r in runs]}
    return {"svr": {"resolutions": [32, 64], "max_resolution": 64, "per_resolution": per, "n_test": n_test,
                    "n_train": 10, "seeds": seeds, "budgets": {"32": _budget(30.0), "64": _budget(80.0)}}}


def test_svr_claims_over_seeds_and_over_shapes(bench):
    cl = {c["id"]: c for c in bench.svr_claims(_svr([0, 1, 2], 30, 0.05))}
    assert set(cl) == {"svr_64_vs_32", "svr_64_vs_32_shapes"}
    assert cl["svr_64_vs_32"]["unit"] == "seeds" and cl["svr_64_vs_32"]["n"] == 3
    assert cl["svr_64_vs_32_shapes"]["unit"] == "shapes" and cl["svr_64_vs_32_shapes"]["n"] == 30
    assert all(c["verdict"] == "ahead" for c in cl.values())
    assert cl["svr_64_vs_32"]["budget"]["OGN 64^3"]["seconds"] == 80.0
    # no gap: not separated, whatever the unit
    assert {c["verdict"] for c in bench.svr_claims(_svr([0, 1, 2], 30, 0.0))} == {"not separated"}


def test_svr_claims_with_one_seed_or_few_shapes(bench):
    one = bench.svr_claims(_svr([0], 30, 0.05))  # an older file: one seed, paired over the shapes only
    assert [c["id"] for c in one] == ["svr_64_vs_32"] and one[0]["unit"] == "shapes"
    few = bench.svr_claims(_svr([0, 1, 2], 8, 0.05))  # too few shapes: the seeds' claim only
    assert [c["id"] for c in few] == ["svr_64_vs_32"] and few[0]["unit"] == "seeds"
    assert bench.svr_claims(_svr([0], 8, 0.05)) == []


def test_octnet_claims_one_per_training_resolution(bench):
    acc = {"32": {"octree": [1.0, 1.0, 1.0], "dense": [1.0, 1.0, 1.0]},
           "64": {"octree": [0.70, 0.72, 0.71], "dense": [0.90, 0.91, 0.92]}}
    data = {"octnet": {"resolutions": [32, 64], "seeds": [0, 1, 2], "accuracy": acc, "n_test": {"32": 30, "64": 30},
                       "budgets": {R: {"octree": _budget(90.0), "dense": _budget(5.0)} for R in ("32", "64")}}}
    cl = {c["id"]: c for c in bench.octnet_claims(data)}
    assert set(cl) == {"octnet_vs_dense_accuracy_32", "octnet_vs_dense_accuracy_64"}
    assert cl["octnet_vs_dense_accuracy_32"]["verdict"] == "not separated"
    assert cl["octnet_vs_dense_accuracy_64"]["verdict"] == "behind" and "64^3" in cl["octnet_vs_dense_accuracy_64"]["text"]
    data["octnet"]["seeds"] = [0, 1]
    assert bench.octnet_claims(data) == []
