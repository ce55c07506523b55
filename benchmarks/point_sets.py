"""Chapter 05 benchmark: PointSetGen trained with Chamfer vs EMD, the mean shape, distance complexity.

Run from the repository root:

    COURSE_PROFILE=laptop python benchmarks/point_sets.py [--threads 1] [--skip-complexity]
    COURSE_PROFILE=laptop python benchmarks/point_sets.py --only-complexity

Writes ``benchmarks/results/point_sets-<profile>-<machine>.md`` and the JSON twin
``benchmarks/results/point_sets-<profile>.json`` that ``lectures/05_point_sets.ipynb`` reads
(``--only-complexity``: ``point_sets_complexity-<profile>...``).

Protocol 2 (``course_lib.experiments.protocol``):

* **Choices on val.**  The only choice is each training run's best epoch, made on the validation
  shapes (``ch05.val_per_category``) by the run's own loss (``ps.MONITOR``); the two training
  parts (:data:`SELECTION_PARTS`) run inside ``no_test_reads``, and their choices are stored as
  selection records (``data["selections"]``).  Epochs, learning rate and batch size are the fixed
  ``ch05.*`` values (Adam's usual 1e-3, set when the chapter was written, never tuned on any split).
* **Equal budgets.**  Both losses train from the same seed, data, schedule and number of steps
  (checked); every table row carries a budget (steps, examples, seconds, parameters).
* **Claims.**  Every comparison the lecture makes is a claim record (``data["claims"]``): the two
  losses on each metric, the evenly spread sample against the i.i.d. oracle, and the map-grid
  edges against the point spacing, paired over the test shapes (at least 20); the auto-encoder
  against the single-view model, paired over the test shapes they share; the mean shapes, paired
  over ``ch05.mean_seeds`` seeds.  The chapter's goals are goal records (``data["goals"]``).
* **Test read once**, after training, to report.

Evaluation: the model's input is one sampling of each held-out surface, the ground truth an
independent one, the oracle a third (a reference, not a floor), and an evenly spread
(farthest-point) sample of the true surface is the row that tests whether i.i.d. sampling itself
costs something.  Checkpoints go to the course cache, keyed by their data, loss and validation,
where the lecture's ``train_or_load`` then finds them.

Cost (laptop profile, 2 idle cores, estimated): data ~2 min the first time (cached afterwards),
two auto-encoders ~1.5 min, single view ~0.5 min, mean shapes ~2 min, complexity ~2 min: about
6-8 min in all.  ``COURSE_PROFILE=ci`` runs the whole pipeline in about a minute (numbers meaningless).

Real datasets (issue #35): ``--dataset modelnet`` or ``--dataset shapenetcore`` (with ``--root DIR``, or
``COURSE_MODELNET_DIR`` / ``COURSE_SHAPENET_DIR``; ``COURSE_DATASET`` works too) runs the auto-encoders (Chamfer
and EMD, their oracle and evenly spread rows, the claims), the per-branch uniformity and map-grid edges, and the
single-view model (views rendered from the meshes with ShapeNet-lite's random cameras) on that dataset's meshes
(the profile's categories by name).  Left out, with a note: the mean distance to the true surface ("mean |SDF|",
``ps.surface_distances``), which needs ShapeNet-lite's exact signed distance.  The mean-shape experiment and the
complexity curves use synthetic rings and clouds (the same on every dataset).  Checkpoints carry the dataset's
name (``ch05_psg_<task>_<kind>-<dataset>-<profile>-<hash>.pt``) and the results are
``benchmarks/results/point_sets-<dataset>-<profile>-<machine>.md`` and ``point_sets-<dataset>-<profile>.json``
(``point_sets_complexity-<dataset>-...`` with ``--only-complexity``): ShapeNet-lite's files are never overwritten.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import md_table, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import point_sets as ps  # noqa: E402
from course_lib.experiments.common import (  # noqa: E402
    budget,
    claim,
    format_table,
    goal,
    predict,
    selection_part,
    summarize,
    use_dataset,
)
from course_lib.experiments.protocol import seed_budget  # noqa: E402

KINDS = ("chamfer", "emd")
SELECTION_PARTS = ("train_autoencoders", "train_single_view")
"""The parts that make choices (each run's best epoch, on val); they run inside ``no_test_reads``."""

NO_TRAINING = budget(steps=None, examples=None, seconds=None, params=None, note="no training (a sampling)")
ORACLE_FACTOR = 1.5
"""Goal: each trained model within this factor of the i.i.d. oracle on the metric it is trained on
(the course's usual target, as for ShapeGF in chapter 10)."""
RADIUS_TOLERANCE = 0.05
"""Goal: the squared-EMD (W2) mean lies within this of the average radius (the theory's answer)."""


def _rows_json(table: list[dict]) -> dict[str, dict[str, list[float]]]:
    return {r["model"]: {k: [v[0], v[1]] for k, v in r.items() if k != "model"} for r in table}


def _per_shape(metrics: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    return {k: [float(x) for x in v] for k, v in metrics.items()}


def _budget_rows(labels: dict[str, str], budgets: dict[str, dict]) -> str:
    return md_table(["row", "steps", "examples", "seconds", "params", "epochs (kept)"],
                    [[labels.get(k, k), b["steps"] if b["steps"] is not None else "-",
                      b["examples"] if b["examples"] is not None else "-",
                      b["seconds"] if b["seconds"] is not None else "-",
                      b["params"] if b["params"] is not None else "-",
                      f"{b['epochs']} ({b['best_epoch']})" if b.get("epochs") else "-"]
                     for k, b in budgets.items()])


def _complexity(s: dict) -> tuple[str, dict]:
    """Time, memory and error of Chamfer and the three EMD solvers as N grows (markdown, data)."""
    crow = ps.time_distances(s["complexity_ns"], time_limit=20.0, repeat=3)
    md = ("## Complexity (one pair of N-point samplings of the unit sphere)\n\n"
          "Seconds: median of 3 runs. Peak memory: peak resident set size above the start (VmHWM, "
          "first run; glibc large blocks served by mmap and the heap trimmed before), so allocator "
          "granularity makes values below ~1 MB noise. rel_err = value / exact EMD - 1. A method is skipped for "
          "larger N once it took more than 20 s.\n\n"
          + md_table(["N", "method", "seconds", "peak MB", "value", "rel_err"],
                     [[r["N"], r["method"], r["seconds"], r["memory_MB"], r["value"], r["rel_err"]]
                      for r in crow]))
    return md, {"rows": crow, "summary": ps.complexity_summary(crow)}


# --- the parts that choose (on val only) ---------------------------------------------
@selection_part
def train_autoencoders(profile: str, data: dict, val: dict, retrain: bool) -> dict[str, Any]:
    """Both losses from the same seed, data and schedule; each run keeps its best epoch on val."""
    s = config.sizes(profile, prefix="ch05.")
    out: dict[str, Any] = {"models": {}, "histories": {}, "budgets": {}, "selections": [], "wall": {}}
    n_train = int(data["points"].shape[0])
    for kind in KINDS:
        t0 = time.perf_counter()
        model, hist = ps.train_autoencoder(kind, profile, data=data, val=val, retrain=retrain, progress=False,
                                           live_plot=False)
        out["wall"][kind] = time.perf_counter() - t0
        _, rec = ps.best_epoch_record(f"best_epoch_{kind}", hist)
        out["selections"].append(rec)
        out["models"][kind], out["histories"][kind] = model, hist
        out["budgets"][kind] = ps.fit_budget(model, hist, n_train, s["batch_size"], lr=s["lr"])
        print(f"{kind}: {hist.summary()}", flush=True)
    steps = {k: b["steps"] for k, b in out["budgets"].items()}
    if len(set(steps.values())) != 1:
        raise RuntimeError(f"the two losses must train for the same number of steps, got {steps}")
    return out


@selection_part
def train_single_view(profile: str, data: dict, val: dict, retrain: bool) -> dict[str, Any]:
    """PointSetGen behind a ResNet (Chamfer loss); the run keeps its best epoch on the val views."""
    s = config.sizes(profile, prefix="ch05.")
    model, hist = ps.train_single_view(profile, data=data, val=val, retrain=retrain, progress=False,
                                       live_plot=False)
    _, rec = ps.best_epoch_record("best_epoch_single_view", hist)
    print("svr:", hist.summary(), flush=True)
    return {"model": model, "history": hist, "selection": rec,
            "budget": ps.fit_budget(model, hist, int(data["rgb"].shape[0]), s["batch_size"], lr=s["lr"])}


# --- claims ------------------------------------------------------------------------------
_METRICS = {"CD x1e3": ("the Chamfer distance", False), "EMD x1e2": ("the EMD", False),
            "F@0.05 %": ("the F-score at tau = 0.05", True), "NN-CV": ("uniformity (NN-CV)", False)}


def autoencoding_claims(per: dict[str, dict[str, list[float]]], budgets: dict[str, dict],
                        names: dict[str, str]) -> list[dict]:
    """The two losses on every metric, and the even sample against the oracle, paired over shapes."""
    out = [
        claim("chamfer_vs_emd_cd", "PointSetGen trained with Chamfer reconstructs closer than trained with EMD, "
              "on the Chamfer distance", a=names["chamfer"], b=names["emd"], metric="CD x1e3",
              values_a=per["chamfer"]["CD x1e3"], values_b=per["emd"]["CD x1e3"], higher_is_better=False,
              unit="shapes", budget={names["chamfer"]: budgets["chamfer"], names["emd"]: budgets["emd"]}),
        claim("emd_vs_chamfer_emd", "PointSetGen trained with EMD reconstructs closer than trained with Chamfer, "
              "on the EMD", a=names["emd"], b=names["chamfer"], metric="EMD x1e2",
              values_a=per["emd"]["EMD x1e2"], values_b=per["chamfer"]["EMD x1e2"], higher_is_better=False,
              unit="shapes", budget={names["chamfer"]: budgets["chamfer"], names["emd"]: budgets["emd"]}),
        claim("chamfer_vs_emd_fscore", "PointSetGen trained with Chamfer has a higher F-score (tau = 0.05) than "
              "trained with EMD", a=names["chamfer"], b=names["emd"], metric="F@0.05 %",
              values_a=per["chamfer"]["F@0.05 %"], values_b=per["emd"]["F@0.05 %"], higher_is_better=True,
              unit="shapes", budget={names["chamfer"]: budgets["chamfer"], names["emd"]: budgets["emd"]}),
        claim("emd_vs_chamfer_uniformity", "PointSetGen trained with EMD spreads its points more evenly (lower "
              "NN-CV) than trained with Chamfer", a=names["emd"], b=names["chamfer"], metric="NN-CV",
              values_a=per["emd"]["NN-CV"], values_b=per["chamfer"]["NN-CV"], higher_is_better=False,
              unit="shapes", budget={names["chamfer"]: budgets["chamfer"], names["emd"]: budgets["emd"]}),
    ]
    for m, short in (("CD x1e3", "cd"), ("EMD x1e2", "emd"), ("F@0.05 %", "fscore")):
        what, hib = _METRICS[m]
        out.append(claim(f"even_vs_oracle_{short}", "An evenly spread sample of the true surface scores better "
                         f"than the i.i.d. oracle on {what}", a=names["even"], b=names["oracle"], metric=m,
                         values_a=per["even"][m], values_b=per["oracle"][m], higher_is_better=hib, unit="shapes",
                         budget={names["even"]: budgets["even"], names["oracle"]: budgets["oracle"]},
                         selected_on="none"))
    return out


def mean_shape_runs(s: dict) -> list[dict]:
    """Every mean-shape run: rings x radius laws x distances; the 'two' law over ``mean_seeds`` seeds."""
    runs = []
    for kind in ("circle", "sphere"):
        for radius in ("uniform", "two"):
            seeds = range(int(s["mean_seeds"])) if radius == "two" else (0,)
            for seed in seeds:
                for dist, squared in (("chamfer", True), ("emd", False), ("emd", True)):
                    out = ps.mean_shape(dist, s["mean_points"], kind=kind, radius=radius, steps=s["mean_steps"],
                                        batch=s["mean_batch"], seed=seed, squared=squared)
                    p = ps.radial_profile(out["points"], kind)
                    label = dist + (" squared" if dist == "emd" and squared else "")
                    runs.append({"ring": kind, "radius_law": radius, "distance": dist, "squared": squared,
                                 "label": label, "seed": seed,
                                 **{k: p[k] for k in ("mean", "std", "q10", "q50", "q90")},
                                 "seconds": out["seconds"],
                                 "budget": budget(steps=s["mean_steps"], examples=s["mean_steps"] * s["mean_batch"],
                                                  seconds=out["seconds"], params=3 * s["mean_points"])})
                    print("mean shape", kind, radius, label, "seed", seed, f"{p['mean']:.3f} ± {p['std']:.3f}",
                          flush=True)
    return runs


def _seed_values(by: dict, seeds: list[int], average: float, label: str, key: str) -> list[float]:
    """One value per seed of the runs ``by[label]``: a radial statistic, or ``"off"`` = |mean radius - average|."""
    return [abs(by[label][k]["mean"] - average) if key == "off" else by[label][k][key] for k in seeds]


def _seed_budget(by: dict, seeds: list[int], label: str) -> dict:
    return seed_budget([by[label][k]["budget"] for k in seeds], seconds=[by[label][k]["seconds"] for k in seeds])


def mean_shape_claims(runs: list[dict], average: float) -> tuple[list[dict], list[dict]]:
    """Per ring (law 'two'), paired over seeds: the Chamfer mean spreads more than either EMD mean, and
    the squared-EMD mean lies closer to the average radius than the unsquared one; plus the goals."""
    claims, goals = [], []
    for ring in ("circle", "sphere"):
        by = {}
        for r in runs:
            if r["ring"] == ring and r["radius_law"] == "two":
                by.setdefault(r["label"], {})[r["seed"]] = r
        seeds = sorted(by["chamfer"])
        vals = functools.partial(_seed_values, by, seeds, average)
        bud = functools.partial(_seed_budget, by, seeds)
        for other in ("emd", "emd squared"):
            claims.append(claim(
                f"mean_{ring}_chamfer_vs_{other.replace(' ', '_')}_spread",
                f"The Chamfer mean spreads its points over more radii than the {other.replace('emd', 'EMD')} mean "
                f"({ring}s of radius 0.3 or 1.0)", a="Chamfer mean", b=f"{other.replace('emd', 'EMD')} mean",
                metric="std of the radii", values_a=vals("chamfer", "std"), values_b=vals(other, "std"),
                higher_is_better=True, unit="seeds", budget={"Chamfer mean": bud("chamfer"),
                                                             f"{other.replace('emd', 'EMD')} mean": bud(other)},
                selected_on="none"))
        claims.append(claim(
            f"mean_{ring}_squared_vs_unsquared_radius",
            f"The squared-EMD mean lies closer to the average radius {average:g} than the unsquared-EMD mean "
            f"({ring}s of radius 0.3 or 1.0)", a="EMD squared mean", b="EMD mean",
            metric=f"|mean radius - {average:g}|", values_a=vals("emd squared", "off"), values_b=vals("emd", "off"),
            higher_is_better=False, unit="seeds", budget={"EMD squared mean": bud("emd squared"),
                                                          "EMD mean": bud("emd")}, selected_on="none"))
        off = sum(vals("emd squared", "off")) / len(seeds)
        goals.append(goal(f"squared_emd_mean_at_average_radius_{ring}",
                          f"the squared-EMD (W2) mean of {ring}s of radius 0.3 or 1.0 lies at the average radius "
                          f"{average:g} (|mean radius - {average:g}|, mean over {len(seeds)} seeds)",
                          off, RADIUS_TOLERANCE, comparison="<="))
    return claims, goals


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="On a real dataset (--dataset modelnet|shapenetcore) the auto-encoders, their limits (NN-CV per "
               "branch, map-grid edges) and the single-view model (views rendered from the meshes) run; the mean "
               "|SDF| to the true surface needs ShapeNet-lite's exact shapes and is left out. Results: "
               "results/point_sets-<dataset>-<profile>-*.md / .json; checkpoints ch05_psg_*-<dataset>-*.pt.")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--skip-complexity", action="store_true")
    ap.add_argument("--skip-train", action="store_true", help="load the checkpoints instead of training")
    ap.add_argument("--skip-svr", action="store_true", help="skip single-view reconstruction")
    ap.add_argument("--only-complexity", action="store_true",
                    help="run the complexity curves only and write results/point_sets_complexity-<profile>-*.md")
    ap.add_argument("--note", default="")
    ap.add_argument("--dataset", help="shapenet-lite (default), modelnet or shapenetcore (sets COURSE_DATASET); "
                    "a real dataset runs everything but the mean |SDF| (see below)")
    ap.add_argument("--root", help="the real dataset's folder (default: COURSE_MODELNET_DIR / COURSE_SHAPENET_DIR)")
    args = ap.parse_args()
    try:
        real = use_dataset(args.dataset, args.root)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    tag = "" if real is None else f"-{real}"  # a real dataset's results never overwrite ShapeNet-lite's
    if args.threads:
        torch.set_num_threads(args.threads)
    profile = config.get_profile()
    s = config.sizes(profile, prefix="ch05.")
    sections: list[str] = []
    data: dict = {"profile": profile, "sizes": {k: s[k] for k in ("n_points", "n_fc", "map_size", "epochs",
                                                                   "emd_method", "train_per_category",
                                                                   "val_per_category", "test_per_category",
                                                                   "batch_size", "lr", "mean_seeds")}}
    t_all = time.perf_counter()
    if args.only_complexity:
        md, cdata = _complexity(s)
        path = write_result(f"point_sets_complexity{tag}", profile, md,
                            notes=f"{args.note}\n\ntorch threads: {torch.get_num_threads()}.",
                            data={"complexity": cdata})
        print("wrote", path)
        return
    claims: list[dict] = []
    goals: list[dict] = []
    selections: list[dict] = []

    # --- data and training (train and val only) -------------------------------
    t0 = time.perf_counter()
    train = ps.train_data(profile)
    val = ps.val_data(profile)
    t_data = time.perf_counter() - t0
    n = s["n_points"]
    print(f"data: train {tuple(train['points'].shape)}, val {tuple(val['points'].shape)} ({t_data:.0f} s)",
          flush=True)
    ae = train_autoencoders(profile, train, val, not args.skip_train)
    selections += ae["selections"]

    # --- the test split, read once, to report -----------------------------------
    t0 = time.perf_counter()
    test = ps.test_data(profile)
    even = ps.even_reference("test", n, profile=profile)
    t_data += time.perf_counter() - t0
    gt = test["target_points"]
    preds = {k: predict(m, test["points"]) for k, m in ae["models"].items()}
    metrics = {"oracle": ps.evaluate_sets(test["oracle_points"], gt), "even": ps.evaluate_sets(even, gt)}
    metrics.update({k: ps.evaluate_sets(p, gt) for k, p in preds.items()})
    labels = {"oracle": "oracle (a third, independent i.i.d. sampling)",
              "even": "evenly spread sample of the true surface (farthest-point, 8x oversampled)"}
    labels.update({k: f"PointSetGen AE, {k} loss" + (f" ({s['emd_method']} EMD)" if k == "emd" else "")
                   for k in KINDS})
    names = {"oracle": "i.i.d. oracle", "even": "even sample", "chamfer": "trained with Chamfer",
             "emd": "trained with EMD"}
    budgets = {"oracle": NO_TRAINING, "even": NO_TRAINING, **ae["budgets"]}
    per = {k: _per_shape(v) for k, v in metrics.items()}
    table = summarize(metrics)
    training = {k: {"epochs": h.epochs_run, "best_epoch": h.best_epoch + 1, "final_train_loss": h.train_loss[-1],
                    "best_val": h.best_metric, "monitor": h.monitor, "fit_seconds": h.wall_time}
                for k, h in ae["histories"].items()}
    data["autoencoding"] = {"convention": ps.CONVENTION, "n_test": int(gt.shape[0]), "labels": labels,
                            "rows": _rows_json(table), "budgets": budgets, "training": training,
                            "per_shape": per, "shapes": [[c, int(x)] for c, x in zip(test["category"], test["seed"])]}
    claims += autoencoding_claims(per, budgets, names)
    ocd, oemd = table[0]["CD x1e3"][0], table[0]["EMD x1e2"][0]
    by_model = {r["model"]: r for r in table}
    ratio_lines = [f"- {labels[r['model']]}: CD / oracle CD = {r['CD x1e3'][0] / ocd:.2f}, EMD / oracle EMD = "
                   f"{r['EMD x1e2'][0] / oemd:.2f}" for r in table[1:]]
    shown = [{**r, "model": labels[r["model"]]} for r in table]
    train_rows = [[labels[k], h.epochs_run, h.best_epoch + 1, h.monitor, h.best_metric, h.train_loss[-1],
                   h.wall_time, ae["wall"][k]] for k, h in ae["histories"].items()]
    sections.append("## Chamfer vs EMD training (held-out shapes)\n\n" + ps.CONVENTION + "\n\n"
                    + f"{gt.shape[0]} test shapes ({s['test_per_category']} per category), N = {n} points "
                    f"(FC branch {s['n_fc']}, map branch {s['map_size'][0]}x{s['map_size'][1]}); "
                    f"mean ± standard error over shapes.\n\n" + format_table(shown) + "\n\n"
                    + "\n".join(ratio_lines) + "\n\n"
                    + "Budget of each row (steps = optimiser steps; examples = training shapes seen; seconds = "
                    "fit wall time; the kept epoch was chosen on val):\n\n" + _budget_rows(labels, budgets) + "\n\n"
                    + md_table(["run", "epochs", "kept epoch (val)", "monitor", "best val", "final train loss",
                                "fit wall time (s)", "total (s)"], train_rows)
                    + f"\n\nTraining: {train['points'].shape[0]} shapes, batch {s['batch_size']}, {s['epochs']} "
                    f"epochs, Adam lr {s['lr']} (fixed, not tuned); input and target: independent random "
                    f"{n}-subsets of two samplings of each surface, redrawn every epoch; EMD loss = "
                    f"course_lib.ops.emd(method='{s['emd_method']}') (unsquared, matching held fixed in the backward "
                    f"pass). Each run keeps the epoch with the lowest own loss on {val['points'].shape[0]} validation "
                    "shapes (selection records in the JSON).")

    # per-branch uniformity, map-grid edges, distance to the true surface
    dec = ps.build_autoencoder(profile).decoder
    branch = dec.branch
    brows, branches = [], {}
    for kind, pred in preds.items():
        branches[kind] = {}
        for b, name in ((0, "fc"), (1, "map")):
            cv = float(ps.nn_uniformity(pred[:, branch == b]).mean())
            branches[kind][name] = cv
            brows.append([kind, f"{name} branch", cv])
    branches["oracle_map_size"] = float(ps.nn_uniformity(test["oracle_points"][:, : int((branch == 1).sum())]).mean())
    brows.append(["oracle", "(same number of points as the map branch)", branches["oracle_map_size"]])
    grid = {kind: ps.map_grid_stats(p, dec.n_fc, dec.map_size) for kind, p in preds.items()}
    grid_per = {kind: ps.map_grid_stats(p, dec.n_fc, dec.map_size, reduction="none") for kind, p in preds.items()}
    if real is None:
        sdf = ps.surface_distances(test, {"oracle": test["oracle_points"], **preds})
    else:  # the exact distance to the true surface is ShapeNet-lite's (rebuilt from category and seed)
        sdf = {k: float("nan") for k in ("oracle", *preds)}
    data["limits"] = {"branches": branches, "map_grid": grid, "sdf_mean": sdf}
    for kind in KINDS:
        claims.append(claim(
            f"map_edges_vs_spacing_{kind}", f"The map-grid edges of PointSetGen {names[kind]} are longer than the nearest-neighbour spacing of its points (so grid neighbours are not surface "
            "neighbours)", a="map-grid edge", b="nearest-neighbour spacing", metric="median per shape",
            values_a=grid_per[kind]["edge_median"], values_b=grid_per[kind]["spacing_median"],
            higher_is_better=True, unit="shapes",
            budget={"map-grid edge": budgets[kind], "nearest-neighbour spacing": budgets[kind]}))
    sections.append("### NN-CV per branch (mean over test shapes)\n\n"
                    + md_table(["loss", "points", "NN-CV"], brows)
                    + "\n\n### Map-grid edges and distance to the true surface\n\n"
                    + md_table(["loss", "edge / NN spacing (median)", "(90th percentile)", "NN spacing",
                                "mean |SDF|"],
                               [[k, g["edge_over_spacing_median"], g["edge_over_spacing_p90"], g["spacing_median"],
                                 sdf[k]] for k, g in grid.items()] + [["oracle", "", "", "", sdf["oracle"]]])
                    + ("" if real is None else f"\n\nmean |SDF| is not measured on {real}: it needs ShapeNet-lite's "
                       "exact signed distance (nan above)."))

    # --- single view ------------------------------------------------------------
    if not args.skip_svr:
        t0 = time.perf_counter()
        svr_train = ps.view_data("train", profile)
        svr_val = ps.view_data("val", profile)
        t_views = time.perf_counter() - t0
        sv = train_single_view(profile, svr_train, svr_val, not args.skip_train)
        selections.append(sv["selection"])
        t0 = time.perf_counter()
        svr_test = ps.view_data("test", profile)
        t_views += time.perf_counter() - t0
        sgt = svr_test["target_points"]
        smetrics = {"oracle": ps.evaluate_sets(svr_test["oracle_points"], sgt),
                    "single_view": ps.evaluate_sets(predict(sv["model"], svr_test["rgb"]), sgt)}
        srows = summarize(smetrics)
        sbudgets = {"oracle": NO_TRAINING, "single_view": sv["budget"]}
        h = sv["history"]
        keys, v_ae, v_sv = ps.pair_by_shape(test, per["chamfer"]["CD x1e3"], svr_test,
                                            _per_shape(smetrics["single_view"])["CD x1e3"])
        claims.append(claim(
            "autoencoder_vs_single_view_cd", "The auto-encoder, which sees the points, reconstructs closer than "
            "PointSetGen from one view (Chamfer distance, both trained with Chamfer)",
            a="auto-encoder", b="single view", metric="CD x1e3", values_a=v_ae, values_b=v_sv,
            higher_is_better=False, unit="shapes",
            budget={"auto-encoder": ae["budgets"]["chamfer"], "single view": sv["budget"]}))
        data["single_view"] = {"rows": _rows_json(srows), "budgets": sbudgets, "n_train": int(svr_train["rgb"].shape[0]),
                               "n_test": int(sgt.shape[0]), "image_size": list(svr_test["rgb"].shape[2:]),
                               "epochs": h.epochs_run, "best_epoch": h.best_epoch + 1, "fit_seconds": h.wall_time,
                               "categories": list(svr_test["categories"]), "n_paired_with_autoencoder": len(keys)}
        sections.append(
            "## Single-view reconstruction\n\n"
            f"Categories {', '.join(svr_test['categories'])}; {svr_train['rgb'].shape[0]} training views, "
            f"{svr_val['rgb'].shape[0]} validation views (the kept epoch: {h.best_epoch + 1} of {h.epochs_run}), "
            f"{sgt.shape[0]} held-out views of {tuple(svr_test['rgb'].shape[2:])} px (one seeded random "
            f"view per shape); {s['svr_epochs']} epochs, ResNet width {s['svr_width']}; fit wall time "
            f"{h.wall_time:.0f} s (building the views: {t_views:.0f} s). Same convention as above; "
            "the model single_view is PointSetGen behind a ResNet, Chamfer loss. Compared with the auto-encoder "
            f"on the {len(keys)} test shapes both are scored on (claim autoencoder_vs_single_view_cd).\n\n"
            + format_table(srows) + "\n\n" + _budget_rows({}, sbudgets))

    # --- mean shape -----------------------------------------------------------
    runs = mean_shape_runs(s)
    average = 0.5 * (0.3 + 1.0)  # ps.sample_radii's default low and high
    mclaims, mgoals = mean_shape_claims(runs, average)
    claims += mclaims
    mrows = [[r["ring"], r["radius_law"], r["label"], r["mean"], r["std"], r["q10"], r["q50"], r["q90"], r["seconds"],
              r["budget"]["steps"], r["budget"]["params"]] for r in runs if r["seed"] == 0]
    data["mean_shape"] = {"n_points": s["mean_points"], "steps": s["mean_steps"], "batch": s["mean_batch"],
                          "seeds": int(s["mean_seeds"]),
                          "rows": [{k: v for k, v in r.items() if k != "label"} for r in runs if r["seed"] == 0],
                          "runs": [{k: v for k, v in r.items() if k != "label"} for r in runs]}
    sections.append(
        "## Mean shape (Fan et al. 2017)\n\n"
        f"One set of {s['mean_points']} points optimised (Adam, {s['mean_steps']} steps, {s['mean_batch']} rings "
        "per step) for the expected Chamfer distance (squared point distances), EMD (exact; unsquared, as the "
        "course trains and Fan et al. define it) and EMD with squared point distances (`ps.mean_shape`), to "
        "rings of random radius: "
        "'uniform' = U(0.3, 1.0) (mean 0.65), 'two' = 0.3 or 1.0 with probability 1/2 (mean 0.65). "
        f"Radii of the optimised points (seed 0; the 'two' law also ran seeds 1 to {int(s['mean_seeds']) - 1} for the "
        "claims; every distance gets the same steps and parameters):\n\n"
        + md_table(["ring", "radius law", "distance", "mean r", "std r", "q10", "q50", "q90", "seconds", "steps",
                    "params"], mrows))

    # --- goals --------------------------------------------------------------------
    by_id = {c["id"]: c for c in claims}
    goals.append(goal("chamfer_model_cd_within_oracle_factor",
                      f"PointSetGen trained with Chamfer: mean CD within {ORACLE_FACTOR}x the i.i.d. oracle's "
                      "(CD / oracle CD)", by_model["chamfer"]["CD x1e3"][0] / ocd, ORACLE_FACTOR, comparison="<="))
    goals.append(goal("emd_model_emd_within_oracle_factor",
                      f"PointSetGen trained with EMD: mean EMD within {ORACLE_FACTOR}x the i.i.d. oracle's "
                      "(EMD / oracle EMD)", by_model["emd"]["EMD x1e2"][0] / oemd, ORACLE_FACTOR, comparison="<="))
    own = by_id["chamfer_vs_emd_cd"]["verdict"] == "ahead" and by_id["emd_vs_chamfer_emd"]["verdict"] == "ahead"
    goals.append(goal("each_loss_ahead_on_its_own_metric",
                      "each loss ahead of the other on the metric it trains (Chamfer-trained on CD, EMD-trained on "
                      "EMD; paired over the test shapes, beyond 2 standard errors)", own, True, comparison="=="))
    goals += mgoals

    # --- complexity -------------------------------------------------------------
    if not args.skip_complexity:
        md, data["complexity"] = _complexity(s)
        sections.append(md)

    data["claims"], data["goals"], data["selections"] = claims, goals, selections
    if real is not None:
        data["dataset"] = real
    sections.append("## Claims (protocol 2)\n\n" + md_table(
        ["id", "a", "b", "metric", "a - b", "se", "n", "verdict"],
        [[c["id"], c["a"], c["b"], c["metric"], c["difference"], c["se"], f"{c['n']} {c['unit']}", c["verdict"]]
         for c in claims]) + "\n\n## Goals\n\n" + md_table(
        ["id", "measured", "target", "met"],
        [[g["id"], g["value"], f"{g['comparison']} {g['target']}", "yes" if g["met"] else "no"] for g in goals])
        + "\n\n## Selections (made on val)\n\n" + md_table(
        ["id", "metric", "chosen", "candidates"],
        [[r["id"], r["metric"], r["chosen"], len(r["candidates"])] for r in selections]))

    data["seconds"] = {"total": time.perf_counter() - t_all, "data": t_data}
    notes = (f"{args.note}\n\ntorch threads: {torch.get_num_threads()}; total benchmark time "
             f"{time.perf_counter() - t_all:.0f} s (data loading {t_data:.0f} s, from the "
             f"{'ShapeNet-lite' if real is None else real} cache where present).").strip()
    if real is not None:
        notes = f"Dataset: {real} (real meshes).\n\n{notes}"
    path = write_result(f"point_sets{tag}", profile, "\n\n".join(sections), notes=notes, data=data)
    print("wrote", path)


if __name__ == "__main__":
    main()
