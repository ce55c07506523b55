"""Chapter 08 (primitives): the reordering trick against enumeration and REINFORCE, cuboids against superquadrics.

Run from the repository root, alone on the machine (one command, every part in order):

    COURSE_PROFILE=laptop python benchmarks/primitives.py            # about 10 min on 2 idle cores (estimate)
    COURSE_PROFILE=ci python benchmarks/primitives.py                # pipeline check, ~1 min; numbers meaningless

What it measures (sizes from the ``ch08.*`` block of ``course_lib.config``):

1. ``enumeration``: the exact expectation by brute force over ``2^M`` configurations against the
   reordering trick, time and largest disagreement (values; gradients for ``M <= 12``), as ``M`` grows;
   and how uniform over the area the superquadric surface samples are (vs uniform angles);
2. ``training``: the same PointNet -> ``M`` primitives model trained with the exact expected loss
   (reordering trick) and with REINFORCE (one configuration per shape and step, moving-average
   baseline), superquadrics, for every seed of ``ch08.seeds``; and cuboids with the reordering trick
   for the same seeds.  Each run: the curve of the exact expected loss (train, validation), the wall
   time, and on held-out shapes the Chamfer distance, IoU and number of primitives used;
3. ``variance``: REINFORCE's estimate of the gradient of the existence probabilities for one held-out
   shape under the trained (seed 0, superquadric, reordering) model, against the exact gradient, as the
   number of samples grows, with and without the baseline.

Laptop cost (an estimate from single steps timed on the loaded shared machine, not a measurement;
the first run's report gives the real times): generating and caching the 108 ShapeNet-lite shapes
once (~1-2 min), 9 training runs of ``ch08.epochs`` = 300 epochs of 5 batches at ~0.04 s per step
(~60 s each, measured in a trial), the variance part ~1 min, enumeration and sampling ~30 s: about 6-10 min in all.  Checkpoints go to ``config.cache_dir()/checkpoints``; a
second run only evaluates (``--retrain`` trains again).  Writes
``benchmarks/results/primitives-<profile>-<machine>.md`` and ``benchmarks/results/primitives-<profile>.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import md_table, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import primitives as E  # noqa: E402
from course_lib.models import primitives as P  # noqa: E402

VARIANTS = (("superquadric", "reorder"), ("superquadric", "reinforce"), ("cuboid", "reorder"))


def part_enumeration(sz) -> dict:
    rows = E.enumeration_cost(sz["enumeration_ms"], sz["enumeration_points"])
    g = torch.Generator().manual_seed(1)
    grad_rows = []
    for m in [m for m in sz["enumeration_ms"] if m <= 12]:
        d0 = torch.rand(8, m, generator=g, dtype=torch.float64)
        p0 = torch.rand(8, m, generator=g, dtype=torch.float64)
        grads = []
        for fn in (P.expected_min_distance, P.expected_min_distance_enumerate):
            d, p = d0.clone().requires_grad_(), p0.clone().requires_grad_()
            fn(d, p, empty=1.0).sum().backward()
            grads.append(torch.cat([d.grad.reshape(-1), p.grad.reshape(-1)]))
        grad_rows.append({"m": m, "max_abs_grad_diff": float((grads[0] - grads[1]).abs().max())})
    for r in rows:
        print("enumeration", r, flush=True)
    return {"rows": rows, "gradients": grad_rows}


SAMPLING_SHAPES = (((1.0, 0.6, 0.3), (1.0, 1.0)), ((0.8, 0.5, 0.4), (0.2, 0.3)), ((0.5, 0.5, 0.9), (1.4, 0.5)),
                   ((0.5, 0.5, 0.5), (0.1, 0.1)))


def part_sampling() -> list[dict]:
    rows = []
    for size, eps in SAMPLING_SHAPES:
        tv = E.sampling_uniformity(size, eps)
        rows.append({"size": list(size), "eps": list(eps), "tv_area": tv["area"], "tv_angles": tv["angles"]})
        print("sampling", rows[-1], flush=True)
    return rows


def _run(kind: str, method: str, seed: int, data: dict, profile: str, retrain: bool) -> tuple[dict, object]:
    t0 = time.perf_counter()
    model, hist = E.train_primitives(kind, method, data["train"], val=data["val"], seed=seed, profile=profile,
                                     retrain=retrain, progress=False, live_plot=False)
    res = E.evaluate_primitives(model, data["test"], profile=profile, seed=seed)
    row = {"kind": kind, "method": method, "seed": seed, "train_s": hist.wall_time, "epochs": hist.epochs_run,
           "best_epoch": hist.best_epoch, "run_s": time.perf_counter() - t0,
           "chamfer": float(res["chamfer"].mean()), "iou": float(res["iou"].mean()),
           "used": float(res["used"].mean()), "test_expected": float(res["expected"].mean()),
           "curve_train_expected": [e.get("expected", math.nan) for e in hist.train_extra],
           "curve_val_expected": [v.get("val_expected", math.nan) for v in hist.val],
           "per_shape": {k: v.tolist() for k, v in res.items()}}
    print(f"{kind:12s} {method:9s} seed {seed}: CD {row['chamfer']:.2f} IoU {row['iou']:.3f} used {row['used']:.1f} "
          f"({row['train_s']:.0f} s)", flush=True)
    return row, model


def _mean_sd(values: list[float]) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if len(t) > 1 else 0.0


def part_training(sz, profile: str, retrain: bool) -> tuple[dict, object, dict]:
    data = {s: E.primitive_data(s, profile) for s in ("train", "val", "test")}
    runs, keep = [], None
    for seed in sz["seeds"]:
        for kind, method in VARIANTS:
            row, model = _run(kind, method, seed, data, profile, retrain)
            runs.append(row)
            if keep is None and (kind, method) == ("superquadric", "reorder"):
                keep = model
    summary = []
    for kind, method in VARIANTS:
        rs = [r for r in runs if (r["kind"], r["method"]) == (kind, method)]
        s = {"kind": kind, "method": method, "seeds": len(rs)}
        for key in ("chamfer", "iou", "used", "train_s", "test_expected"):
            s[key], s[key + "_sd"] = _mean_sd([r[key] for r in rs])
        finals = [r["curve_val_expected"][-1] if r["curve_val_expected"] else math.nan for r in rs]
        s["final_val_expected"], s["final_val_expected_sd"] = _mean_sd(finals)
        summary.append(s)
    return {"runs": runs, "summary": summary}, keep, data


def part_variance(sz, profile: str, model, data) -> dict:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        prims = model(data["test"]["points"][:1])
        terms = P.primitive_terms(prims, data["test"]["target_points"][:1], sz["n_samples"], generator=g)
    out = E.gradient_variance(terms, sz["variance_ks"], sz["variance_reps"], empty=sz["empty"],
                              parsimony=sz["parsimony"])
    out["prob"] = prims.prob[0].tolist()
    for variant in ("none", "baseline"):
        for r in out[variant]:
            print("variance", variant, r, flush=True)
    return out


def _goals(data: dict) -> dict:
    goals: dict = {}
    if "enumeration" in data:
        small = [r for r in data["enumeration"]["rows"] if r["m"] <= 12]
        goals["reorder_equals_enumeration_1e-6"] = all(r["max_abs_diff"] < 1e-6 for r in small)
        goals["gradients_match_1e-6"] = all(r["max_abs_grad_diff"] < 1e-6 for r in data["enumeration"]["gradients"])
    if "variance" in data:
        goals["reinforce_unbiased_within_4_se"] = all(r["max_z"] < 4 for v in ("none", "baseline")
                                                      for r in data["variance"][v])
    if "training" in data:
        s = {(r["kind"], r["method"]): r for r in data["training"]["summary"]}
        sq, rf, cu = s[("superquadric", "reorder")], s[("superquadric", "reinforce")], s[("cuboid", "reorder")]
        goals["reorder_lower_chamfer_than_reinforce"] = sq["chamfer"] < rf["chamfer"]
        goals["superquadric_better_iou_than_cuboid"] = sq["iou"] > cu["iou"]
        goals["superquadric_lower_chamfer_than_cuboid"] = sq["chamfer"] < cu["chamfer"]
        goals["every_run_under_5_min"] = all(r["train_s"] < 300 for r in data["training"]["runs"])
    return goals


def report(data: dict, profile: str, sz) -> str:
    body = []
    if "enumeration" in data:
        grads = {r["m"]: r["max_abs_grad_diff"] for r in data["enumeration"]["gradients"]}
        body += ["## Exact expectation: enumeration (2^M) vs reordering trick",
                 f"{sz['enumeration_points']} target points, float64, CPU, median of 3.", "",
                 md_table(["M", "configurations", "enumerate (ms)", "reorder (ms)", "speed-up", "max |diff|",
                           "max |grad diff|"],
                          [[r["m"], r["configurations"], 1e3 * r["enumerate_s"], 1e3 * r["reorder_s"],
                            r["enumerate_s"] / max(r["reorder_s"], 1e-12), r["max_abs_diff"],
                            grads.get(r["m"], "-")] for r in data["enumeration"]["rows"]]), ""]
    if "sampling" in data:
        body += ["## Surface samples: area-weighted resampling vs uniform angles",
                 "Total-variation distance of the share of 20,000 samples in 24 regions (octant x dominant axis) "
                 "to the shares of 200,000 area-weighted samples of a marching-cubes mesh (0 = uniform over the area).",
                 "", md_table(["size", "eps", "TV area-weighted", "TV uniform angles"],
                              [[tuple(r["size"]), tuple(r["eps"]), r["tv_area"], r["tv_angles"]]
                               for r in data["sampling"]]), ""]
    if "training" in data:
        body += ["## Training both ways, cuboids vs superquadrics",
                 f"{E.CD_CONVENTION}. IoU on {sz['iou_points']} uniform points of [-1, 1]^3. Mean ± sd over seeds "
                 f"{tuple(sz['seeds'])}; {sz['n_primitives']} primitives, {sz['epochs']} epochs, categories "
                 f"{tuple(sz['categories'])}, best epoch by the validation expected loss.", "",
                 md_table(["primitives", "expectation", "seeds", "CD x1e3", "IoU", "primitives used",
                           "final val E[loss]", "train (s)"],
                          [[s["kind"], s["method"], s["seeds"], f"{s['chamfer']:.2f} ± {s['chamfer_sd']:.2f}",
                            f"{s['iou']:.3f} ± {s['iou_sd']:.3f}", f"{s['used']:.1f} ± {s['used_sd']:.1f}",
                            f"{s['final_val_expected']:.4f} ± {s['final_val_expected_sd']:.4f}",
                            f"{s['train_s']:.0f}"] for s in data["training"]["summary"]]), "",
                 md_table(["primitives", "expectation", "seed", "CD x1e3", "IoU", "used", "train (s)", "best epoch"],
                          [[r["kind"], r["method"], r["seed"], r["chamfer"], r["iou"], r["used"], r["train_s"],
                            r["best_epoch"] + 1] for r in data["training"]["runs"]]), ""]
    if "variance" in data:
        v = data["variance"]
        body += ["## REINFORCE: variance of the gradient of the existence probabilities",
                 f"One held-out shape, the trained superquadric model (seed 0); {v['reps']} estimates per K. "
                 f"|exact gradient|^2 = {v['exact_norm2']:.4g} (the reordering trick: exact, variance 0). "
                 "max z = largest |mean - exact| / standard error over the components whose rarer outcome is "
                 "expected at least 30 times in all the draws (untested: the others).", "",
                 md_table(["K", "variance (no baseline)", "variance (baseline)", "MSE (no baseline)",
                           "MSE (baseline)", "max z (no)", "max z (baseline)", "untested"],
                          [[a["k"], a["variance"], b["variance"], a["mse"], b["mse"], a["max_z"], b["max_z"],
                            a["untested"]] for a, b in zip(v["none"], v["baseline"])]), ""]
    goals = _goals(data)
    if goals:
        body += ["## Goals", "", md_table(["goal", "met"], [[k, v] for k, v in goals.items()])]
    return "\n".join(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("all", "enumeration", "training"), default="all",
                    help="'enumeration' also measures the sampling; 'training' also runs the variance part "
                         "(it needs the trained model)")
    ap.add_argument("--retrain", action="store_true", help="train again even when checkpoints exist")
    args = ap.parse_args()
    profile = config.get_profile()
    sz = config.sizes(profile=profile, prefix="ch08.")
    t0 = time.perf_counter()
    data: dict = {"profile": profile, "sizes": {k: v for k, v in sz.items()}}
    if args.part in ("all", "enumeration"):
        data["enumeration"] = part_enumeration(sz)
        data["sampling"] = part_sampling()
    if args.part in ("all", "training"):
        data["training"], model, splits = part_training(sz, profile, args.retrain)
        data["variance"] = part_variance(sz, profile, model, splits)
    data["goals"] = _goals(data)
    data["total_s"] = time.perf_counter() - t0
    notes = ("ci profile: a pipeline check only (tiny data, 2 epochs); the numbers mean nothing."
             if profile == "ci" else "")
    path = write_result("primitives", profile, report(data, profile, sz), notes=notes, data=data)
    print(f"wrote {path} in {data['total_s']:.0f} s; goals: {data['goals']}")


if __name__ == "__main__":
    main()
