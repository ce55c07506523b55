"""Chapter 08 (primitives): the reordering trick against enumeration and REINFORCE, cuboids against superquadrics.

Run from the repository root, alone on the machine (one command, every part in order):

    COURSE_PROFILE=laptop python benchmarks/primitives.py --retrain  # ~7.5 min on 2 idle cores (last run: 445 s)
    COURSE_PROFILE=ci python benchmarks/primitives.py                # pipeline check, ~30 s; numbers meaningless

Protocol 2 (issue #32, ``course_lib.experiments.protocol``): the only choice is each training run's
best epoch, made on ``val`` inside ``part_train`` (listed in ``SELECTION_PARTS``, run inside
``no_test_reads``) and recorded in ``data["selections"]``; the held-out split is read once, after,
by ``part_evaluate``.  Every table row carries its budget (steps, examples, seconds, parameters);
the comparisons (reordering trick vs REINFORCE, superquadrics vs cuboids) are claims paired over the
training seeds of ``ch08.seeds`` (``data["claims"]``, verdict ``ahead`` / ``behind`` / ``not
separated``); the goals are records (``data["goals"]``).

What it measures (sizes from the ``ch08.*`` block of ``course_lib.config``):

1. ``enumeration``: the exact expectation by brute force over ``2^M`` configurations against the
   reordering trick, time and largest disagreement (values; gradients for ``M <= 12``), as ``M`` grows;
   how uniform over the area the superquadric surface samples are (vs uniform angles); and whether a
   primitive started at its target's exact size keeps its volume under the chapter's loss, with the
   sampled and the analytic (cuboid) coverage (:func:`course_lib.experiments.primitives.exact_size_drift`);
2. ``training``: the same PointNet -> ``M`` primitives model trained with the exact expected loss
   (reordering trick) and with REINFORCE (one configuration per shape and step, moving-average
   baseline), superquadrics, for every seed of ``ch08.seeds``; and cuboids with the reordering trick
   for the same seeds.  Each run: the curve of the exact expected loss (train, validation), the wall
   time, its budget, and on held-out shapes the Chamfer distance, IoU and number of primitives used;
3. ``variance``: REINFORCE's estimate of the gradient of the existence probabilities for one held-out
   shape under the trained (first seed, superquadric, reordering) model: its **exact** variance by
   enumerating the ``2^M`` configurations (one sample, then ``1/K`` analytically for ``K`` i.i.d.
   samples; no baseline, ``b = E[L]``, the stationary moving average, the best constant), and beside
   it the variance *sampled* from ``ch08.variance_reps`` estimates per ``K`` with a bias test.

Laptop cost: the last laptop run (protocol 1, same training, ``--retrain``) took 445 s on an idle
2-core machine: 9 training runs of ``ch08.epochs`` = 300 epochs (32-56 s each), the sampled variance,
enumeration and sampling; the exact variance adds well under a second.  Generating and caching the
ShapeNet-lite shapes of the fresh test range adds ~1 min the first time.  Checkpoints go to
``config.cache_dir()/checkpoints``; a second run only evaluates (``--retrain`` trains again).  Writes
``benchmarks/results/primitives-<profile>-<machine>.md`` and ``benchmarks/results/primitives-<profile>.json``.

Real datasets (issue #35): ``--dataset modelnet`` or ``--dataset shapenetcore`` (with ``--root DIR``, or
``COURSE_MODELNET_DIR`` / ``COURSE_SHAPENET_DIR``; ``COURSE_DATASET`` works too) trains and evaluates on that
dataset's meshes (the profile's categories by name): the Chamfer distance, primitives used and the exact expected
loss on held-out meshes, the claims on them, and the variance part.  Left out, with a note: the IoU (against
ShapeNet-lite's exact occupancy; nan in the tables) and its claim ``superquadric_vs_cuboid_iou``.  The enumeration,
sampling and exact-size parts use no dataset.  Checkpoints carry the dataset's name
(``ch08_<kind>_<method>_s<seed>-<dataset>-<profile>-<hash>.pt``) and the results are
``benchmarks/results/primitives-<dataset>-<profile>-<machine>.md`` / ``primitives-<dataset>-<profile>.json``:
ShapeNet-lite's files are never overwritten.
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
from course_lib.experiments.common import (  # noqa: E402
    claim,
    goal,
    real_dataset,
    selection_part,
    selection_record,
    use_dataset,
)
from course_lib.experiments.protocol import claim_sentence, goal_sentence, seed_budget  # noqa: E402
from course_lib.models import primitives as P  # noqa: E402

VARIANTS = E.VARIANTS


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


def part_exact_size(sz) -> list[dict]:
    """A primitive started at its target's exact size: volume change after ``EXACT_SIZE_STEPS`` steps, 3 seeds."""
    rows = []
    ns = int(sz["n_samples"])
    settings = [("cuboid", "samples", ns), ("cuboid", "analytic", ns)] + [
        ("superquadric", "samples", ns * f) for f in (1, 4, 16, 64)]
    for kind, cov, n in settings:
        runs = [E.exact_size_drift(kind, cov, n_samples=n, steps=EXACT_SIZE_STEPS, seed=seed) for seed in (0, 1, 2)]
        ch = [100 * r["volume_change"] for r in runs]
        rows.append({"kind": kind, "coverage": cov, "n_samples": n, "n_target": runs[0]["n_target"],
                     "steps": EXACT_SIZE_STEPS, "volume_change_pct": ch, "mean_pct": sum(ch) / len(ch),
                     "max_abs_pct": max(abs(c) for c in ch)})
        print("exact size", rows[-1], flush=True)
    return rows


EXACT_SIZE_STEPS = 300


def _mean_sd(values: list[float]) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if len(t) > 1 else 0.0


SELECTION_PARTS = ("part_train",)
"""The parts that make choices (protocol 2): training picks each run's best epoch on ``val``."""


@selection_part
def part_train(sz, profile: str, retrain: bool) -> list[dict]:
    """Train every variant for every seed on ``train``; the best epoch by the exact expected loss on ``val``.

    The only choice of the benchmark (each run's epoch) is recorded with ``selection_record``; it runs
    inside the protocol's read guard (``@selection_part``), so nothing here can read the held-out split.
    """
    splits = {s: E.primitive_data(s, profile) for s in ("train", "val")}
    runs = []
    for seed in sz["seeds"]:
        for kind, method in VARIANTS:
            model, hist = E.train_primitives(kind, method, splits["train"], val=splits["val"], seed=seed,
                                             profile=profile, retrain=retrain, progress=False, live_plot=False)
            scores = {str(e + 1): v["val_expected"] for e, v in enumerate(hist.val)}
            chosen, rec = selection_record(f"best_epoch/{kind}/{method}/seed{seed}", scores,
                                           metric="exact expected loss on val (epoch)", higher_is_better=False)
            if int(chosen) - 1 != hist.best_epoch:
                raise RuntimeError(f"{kind}/{method}/seed {seed}: the kept weights are from epoch "
                                   f"{hist.best_epoch + 1}, the val curve's best is epoch {chosen}")
            note = ("each step also computes the exact expected loss, for reporting (not back-propagated)"
                    if method == "reinforce" else "")
            bud = E.run_budget(model, hist, len(splits["train"]["points"]), profile,
                               **({"note": note} if note else {}))
            runs.append({"kind": kind, "method": method, "seed": seed, "model": model, "hist": hist,
                         "selection": rec, "budget": bud})
    return runs


def part_evaluate(trained: list[dict], profile: str) -> tuple[dict, object, dict]:
    """The held-out split, read once, after every choice: Chamfer, IoU, primitives used per run."""
    held_out = E.primitive_data("test", profile)
    runs, keep = [], None
    for t in trained:
        kind, method, seed, model, hist = t["kind"], t["method"], t["seed"], t["model"], t["hist"]
        t0 = time.perf_counter()
        real = real_dataset(held_out)  # a real dataset has no exact occupancy: no IoU (nan below)
        res = E.evaluate_primitives(model, held_out, profile=profile, seed=seed, iou=real is None)
        if real is not None:
            res["iou"] = torch.full_like(res["chamfer"], math.nan)
        row = {"kind": kind, "method": method, "seed": seed, "train_s": hist.wall_time, "epochs": hist.epochs_run,
               "best_epoch": hist.best_epoch, "eval_s": time.perf_counter() - t0, "budget": t["budget"],
               "chamfer": float(res["chamfer"].mean()), "iou": float(res["iou"].mean()),
               "used": float(res["used"].mean()), "test_expected": float(res["expected"].mean()),
               "curve_train_expected": [e.get("expected", math.nan) for e in hist.train_extra],
               "curve_val_expected": [v.get("val_expected", math.nan) for v in hist.val],
               "per_shape": {k: v.tolist() for k, v in res.items()}}
        row["final_val_expected"] = row["curve_val_expected"][-1] if row["curve_val_expected"] else math.nan
        runs.append(row)
        if keep is None and (kind, method) == ("superquadric", "reorder"):
            keep = model
        print(f"{kind:12s} {method:9s} seed {seed}: CD {row['chamfer']:.2f} IoU {row['iou']:.3f} "
              f"used {row['used']:.1f} ({row['train_s']:.0f} s, {row['budget']['steps']} steps)", flush=True)
    summary = []
    for kind, method in VARIANTS:
        rs = [r for r in runs if (r["kind"], r["method"]) == (kind, method)]
        s = {"kind": kind, "method": method, "seeds": len(rs), "budget": _row_budget(rs)}
        for key in ("chamfer", "iou", "used", "train_s", "test_expected", "final_val_expected"):
            s[key], s[key + "_sd"] = _mean_sd([r[key] for r in rs])
        summary.append(s)
    return {"runs": runs, "summary": summary}, keep, held_out


def _row_budget(rs: list[dict]) -> dict:
    """A table row's budget over its seeds: steps, examples, params of one run; seconds the mean per run."""
    return seed_budget([r["budget"] for r in rs])


def part_variance(sz, profile: str, model, held_out) -> dict:
    """REINFORCE's gradient of the existence probabilities on one held-out shape: exact (enumeration) and sampled."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        prims = model(held_out["points"][:1])
        terms = P.primitive_terms(prims, held_out["target_points"][:1], sz["n_samples"], generator=g)
    exact = None
    if sz["n_primitives"] <= E.EXACT_MAX_M:
        t0 = time.perf_counter()
        exact = E.exact_gradient_variance(terms, sz["variance_ks"], empty=sz["empty"], parsimony=sz["parsimony"])
        exact["seconds"] = time.perf_counter() - t0
        for r in exact["rows"]:
            print("exact variance", r, flush=True)
    else:
        print(f"exact variance: {sz['n_primitives']} primitives exceed E.EXACT_MAX_M = {E.EXACT_MAX_M}, "
              "sampled only", flush=True)
    sampled = E.gradient_variance(terms, sz["variance_ks"], sz["variance_reps"], empty=sz["empty"],
                                  parsimony=sz["parsimony"])
    sampled["prob"] = prims.prob[0].tolist()
    for variant in ("none", "baseline"):
        for r in sampled[variant]:
            print("sampled variance", variant, r, flush=True)
    return {"exact": exact, "sampled": sampled}


CLAIMS = (  # id, sentence tested, (kind, method) of a and b with their labels, metric key, label, higher is better
    ("reorder_vs_reinforce_cd", "The reordering trick reconstructs closer than REINFORCE (superquadrics)",
     ("superquadric", "reorder", "reordering trick"), ("superquadric", "reinforce", "REINFORCE"),
     "chamfer", "held-out Chamfer x1e3", False),
    ("reorder_vs_reinforce_val_expected",
     "The reordering trick ends with a lower validation expected loss than REINFORCE (superquadrics)",
     ("superquadric", "reorder", "reordering trick"), ("superquadric", "reinforce", "REINFORCE"),
     "final_val_expected", "exact expected loss on val, last epoch", False),
    ("superquadric_vs_cuboid_cd", "Superquadrics reconstruct closer than cuboids (reordering trick)",
     ("superquadric", "reorder", "superquadrics"), ("cuboid", "reorder", "cuboids"),
     "chamfer", "held-out Chamfer x1e3", False),
    ("superquadric_vs_cuboid_iou", "Superquadrics reach a higher IoU than cuboids (reordering trick)",
     ("superquadric", "reorder", "superquadrics"), ("cuboid", "reorder", "cuboids"),
     "iou", "held-out IoU", True),
)


def _claims(training: dict) -> list[dict]:
    """The chapter's comparative statements, paired over the training seeds (protocol 2)."""
    by = {(s["kind"], s["method"]): s for s in training["summary"]}
    out = []
    for cid, text, (ka, ma, la), (kb, mb, lb), key, metric, hib in CLAIMS:
        if key == "iou" and training.get("dataset"):  # no exact occupancy on a real dataset
            continue
        ra = sorted((r for r in training["runs"] if (r["kind"], r["method"]) == (ka, ma)), key=lambda r: r["seed"])
        rb = sorted((r for r in training["runs"] if (r["kind"], r["method"]) == (kb, mb)), key=lambda r: r["seed"])
        if [r["seed"] for r in ra] != [r["seed"] for r in rb]:
            raise RuntimeError(f"claim {cid}: the two rows were trained on different seeds")
        out.append(claim(cid, text, a=la, b=lb, metric=metric, values_a=[r[key] for r in ra],
                         values_b=[r[key] for r in rb], higher_is_better=hib, unit="seeds",
                         budget={la: by[ka, ma]["budget"], lb: by[kb, mb]["budget"]}, selected_on="val"))
    return out


def _goals(data: dict) -> list[dict]:
    goals: list[dict] = []
    if "enumeration" in data:
        small = [r for r in data["enumeration"]["rows"] if r["m"] <= 12]
        goals.append(goal("reorder_equals_enumeration",
                          "reordering trick = enumeration of the 2^M configurations (largest absolute difference "
                          "of the expected value, M <= 12, float64)",
                          max(r["max_abs_diff"] for r in small), 1e-6, comparison="<="))
        goals.append(goal("gradients_match",
                          "reordering trick's gradients = enumeration's (largest absolute difference, M <= 12, float64)",
                          max(r["max_abs_grad_diff"] for r in data["enumeration"]["gradients"]), 1e-6,
                          comparison="<="))
    if "variance" in data:
        ex, sm = data["variance"]["exact"], data["variance"]["sampled"]
        if ex is not None:
            goals.append(goal("enumerated_reinforce_gradient_exact",
                              "the mean REINFORCE gradient by enumeration E[L s] = the reordering trick's "
                              "gradient (largest absolute difference, one held-out shape)",
                              ex["max_abs_gradient_diff"], 1e-9, comparison="<="))
        goals.append(goal("reinforce_unbiased_within_4_se",
                          "sampled REINFORCE estimates are unbiased: largest abs(mean - exact) / s.e. over the "
                          f"components whose rarer outcome is expected >= {sm['min_events']:g} times in all the "
                          "draws (the others untested)",
                          max(r["max_z"] for v in ("none", "baseline") for r in sm[v]), 4.0, comparison="<="))
    if "exact_size" in data:
        ana = next(r for r in data["exact_size"] if r["coverage"] == "analytic")
        goals.append(goal("exact_size_keeps_volume", "a cuboid started at its target's exact size keeps its volume "
                          f"within 1% after {ana['steps']} steps with the analytic coverage (largest |change| in %, "
                          "3 seeds)", ana["max_abs_pct"], 1.0, comparison="<="))
    if "training" in data:
        goals.append(goal("every_run_under_5_min", "every training run takes under 5 minutes (wall seconds, "
                          "longest run)", max(r["train_s"] for r in data["training"]["runs"]), 300.0,
                          comparison="<="))
    return goals


def report(data: dict, profile: str, sz) -> str:
    body = []
    if "enumeration" in data:
        grads = {r["m"]: r["max_abs_grad_diff"] for r in data["enumeration"]["gradients"]}
        body += ["## Exact expectation: enumeration (2^M) vs reordering trick",
                 f"{sz['enumeration_points']} target points, float64, CPU, median of 3.", "",
                 md_table(["M", "configurations", "enumerate (ms)", "reorder (ms)", "speed-up", "max abs diff",
                           "max abs grad diff"],
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
    if "exact_size" in data:
        body += ["## A primitive started at the target's exact size",
                 f"One primitive (size, rotation, translation and, for superquadrics, exponents trainable), started "
                 f"on a target of its own kind with half-sizes (0.5, 0.3, 0.2) (superquadric exponents (0.5, 0.8)), "
                 f"{EXACT_SIZE_STEPS} Adam steps at ch08.lr on the chapter's coverage + consistency loss, fresh "
                 "surface samples every step; the volume change in % (3 seeds: target sampling and samples). "
                 "'samples': a target point's distance to the nearest of n surface samples; 'analytic': the exact "
                 "distance to the solid cuboid.", "",
                 md_table(["primitive", "coverage", "samples per primitive", "target points", "volume change % "
                           "(seeds 0, 1, 2)", "mean %", "max |%|"],
                          [[r["kind"], r["coverage"], r["n_samples"], r["n_target"],
                            ", ".join(f"{c:+.2f}" for c in r["volume_change_pct"]), f"{r['mean_pct']:+.2f}",
                            f"{r['max_abs_pct']:.2f}"] for r in data["exact_size"]]), ""]
    if "training" in data:
        body += ["## Training both ways, cuboids vs superquadrics",
                 f"{E.CD_CONVENTION}. IoU on {sz['iou_points']} uniform points of [-1, 1]^3. Mean ± sd over seeds "
                 f"{tuple(sz['seeds'])}; {sz['n_primitives']} primitives, {sz['epochs']} epochs, categories "
                 f"{tuple(sz['categories'])}, best epoch by the exact expected loss on val (the only choice; "
                 "the held-out split is read once, after it). Budget: optimiser steps, training shapes seen and "
                 "trainable parameters of one run, mean wall seconds of one run.", "",
                 md_table(["primitives", "expectation", "seeds", "CD x1e3", "IoU", "primitives used",
                           "final val E[loss]", "steps", "examples", "params", "train (s)"],
                          [[s["kind"], s["method"], s["seeds"], f"{s['chamfer']:.2f} ± {s['chamfer_sd']:.2f}",
                            f"{s['iou']:.3f} ± {s['iou_sd']:.3f}", f"{s['used']:.1f} ± {s['used_sd']:.1f}",
                            f"{s['final_val_expected']:.4f} ± {s['final_val_expected_sd']:.4f}",
                            s["budget"]["steps"], s["budget"]["examples"], s["budget"]["params"],
                            f"{s['train_s']:.0f}"] for s in data["training"]["summary"]]), "",
                 md_table(["primitives", "expectation", "seed", "CD x1e3", "IoU", "used", "final val E[loss]",
                           "train (s)", "best epoch (val)"],
                          [[r["kind"], r["method"], r["seed"], r["chamfer"], r["iou"], r["used"],
                            r["final_val_expected"], r["train_s"], r["best_epoch"] + 1]
                           for r in data["training"]["runs"]]), ""]
    if "claims" in data and data["claims"]:
        body += ["## Claims (paired over the training seeds; 'not separated' = within 2 standard errors)", "",
                 md_table(["claim", "metric", "a", "b", "mean a", "mean b", "a - b", "se", "n", "verdict"],
                          [[c["id"], c["metric"], c["a"], c["b"], c["mean_a"], c["mean_b"], c["difference"], c["se"],
                            c["n"], c["verdict"]] for c in data["claims"]]), "",
                 *[f"- {claim_sentence(c)}" for c in data["claims"]], ""]
    if "variance" in data:
        ex, v = data["variance"]["exact"], data["variance"]["sampled"]
        body += ["## REINFORCE: variance of the gradient of the existence probabilities",
                 f"One held-out shape, the trained superquadric model (seed {sz['seeds'][0]}, reordering trick); "
                 f"probabilities {', '.join(f'{p:.4g}' for p in v['prob'])}.", ""]
        if ex is None:
            body += [f"**Exact**: not computed ({sz['n_primitives']} primitives, more than the "
                     f"{E.EXACT_MAX_M} the enumeration allows).", ""]
        else:
            body += [f"**Exact** (enumeration of the {ex['configurations']} configurations, float64): the total "
                     "variance (trace of the covariance) of the single-sample estimate, divided by K analytically "
                     "for K i.i.d. configurations. Baselines: none (b = 0); the constant b = E[L] = "
                     f"{ex['expected_loss']:.4g}; the moving average (momentum {ex['momentum']:g}) in its "
                     "stationary regime (its own fluctuation adds (1 - m) / (1 + m) Var(L) E|s|^2 / K^2); the best "
                     f"constant b* = {ex['optimal_baseline']:.4g}. |exact gradient|^2 = {ex['exact_norm2']:.4g}; "
                     "enumeration vs reordering trick, largest |gradient difference| "
                     f"{ex['max_abs_gradient_diff']:.2g}.", "",
                     md_table(["K", "none", "b = E[L]", "moving average", "b = b*"],
                              [[r["k"], r["none"], r["fixed"], r["moving_average"], r["optimal"]]
                               for r in ex["rows"]]), ""]
        body += [f"**Sampled** ({v['reps']} estimates per K; heavy-tailed where a probability is near 0 or 1, so "
                 "these variances are noisy estimates of the exact ones). max z = largest |mean - exact| / "
                 "standard error over the components whose rarer outcome is expected at least "
                 f"{v['min_events']:g} times in all the draws (untested: the others).", "",
                 md_table(["K", "variance (no baseline)", "variance (baseline)", "MSE (no baseline)",
                           "MSE (baseline)", "max z (no)", "max z (baseline)", "untested"],
                          [[a["k"], a["variance"], b["variance"], a["mse"], b["mse"], a["max_z"], b["max_z"],
                            a["untested"]] for a, b in zip(v["none"], v["baseline"])]), ""]
    goals = data.get("goals") or _goals(data)
    if goals:
        body += ["## Goals", "", md_table(["goal", "measured", "target", "met"],
                                         [[g["text"], g["value"], f"{g['comparison']} {g['target']}", g["met"]]
                                          for g in goals])]
    return "\n".join(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("all", "enumeration", "training"), default="all",
                    help="'enumeration' also measures the sampling; 'training' also runs the variance part "
                         "(it needs the trained model)")
    ap.add_argument("--retrain", action="store_true", help="train again even when checkpoints exist")
    ap.add_argument("--dataset", help="shapenet-lite (default), modelnet or shapenetcore (sets COURSE_DATASET); a "
                    "real dataset runs everything but the IoU (see above)")
    ap.add_argument("--root", help="the real dataset's folder (default: COURSE_MODELNET_DIR / COURSE_SHAPENET_DIR)")
    args = ap.parse_args()
    try:
        real = use_dataset(args.dataset, args.root)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    profile = config.get_profile()
    sz = config.sizes(profile=profile, prefix="ch08.")
    t0 = time.perf_counter()
    data: dict = {"profile": profile, "sizes": {k: v for k, v in sz.items()}}
    if args.part in ("all", "enumeration"):
        data["enumeration"] = part_enumeration(sz)
        data["sampling"] = part_sampling()
        data["exact_size"] = part_exact_size(sz)
    if args.part in ("all", "training"):
        trained = part_train(sz, profile, args.retrain)
        data["selections"] = [t["selection"] for t in trained]
        data["training"], model, held_out = part_evaluate(trained, profile)
        if real is not None:
            data["training"]["dataset"] = real
        data["claims"] = _claims(data["training"])
        data["variance"] = part_variance(sz, profile, model, held_out)
    data["goals"] = _goals(data)
    data["total_s"] = time.perf_counter() - t0
    notes = ("ci profile: a pipeline check only (tiny data, 2 epochs); the numbers mean nothing."
             if profile == "ci" else "")
    if real is not None:
        data["dataset"] = real
        notes = (f"Dataset: {real} (real meshes). Not measured on it (needs ShapeNet-lite's exact occupancy): the "
                 "IoU (nan) and the claim superquadric_vs_cuboid_iou.\n\n" + notes).strip()
    path = write_result("primitives" if real is None else f"primitives-{real}", profile, report(data, profile, sz),
                        notes=notes, data=data)
    print(f"wrote {path} in {data['total_s']:.0f} s")
    for c in data.get("claims", []):
        print(claim_sentence(c))
    for g in data["goals"]:
        print(goal_sentence(g))


if __name__ == "__main__":
    main()
