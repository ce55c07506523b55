"""Chapter 05 benchmark: PointSetGen trained with Chamfer vs EMD, the mean shape, distance complexity.

Run from the repository root:

    COURSE_PROFILE=laptop python benchmarks/point_sets.py [--threads 1] [--skip-complexity]
    COURSE_PROFILE=laptop python benchmarks/point_sets.py --only-complexity

Writes ``benchmarks/results/point_sets-<profile>-<machine>.md`` and the JSON twin
``benchmarks/results/point_sets-<profile>.json`` that ``lectures/05_point_sets.ipynb`` reads
(``--only-complexity``: ``point_sets_complexity-<profile>...``).  Both training runs start from
the same seed, data and schedule and are re-trained (checkpoints go to the course cache, keyed by
their data and loss, where the lecture's ``train_or_load`` then finds them).  Evaluation: the
model's input is one sampling of each held-out surface, the ground truth an independent one, the
oracle a third (a reference, not a floor), and an evenly spread (farthest-point) sample of the true
surface shows what beats the oracle.

Cost (laptop profile, 2 idle cores, estimated): data ~2 min the first time (cached afterwards),
two auto-encoders ~4-8 min, single view ~3 min, mean shapes ~2 min, complexity ~2 min.
``COURSE_PROFILE=ci`` runs the whole pipeline in about a minute (numbers meaningless).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import md_table, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import point_sets as ps  # noqa: E402
from course_lib.experiments.common import format_table, predict, summarize  # noqa: E402


def _rows_json(table: list[dict]) -> dict[str, dict[str, list[float]]]:
    return {r["model"]: {k: [v[0], v[1]] for k, v in r.items() if k != "model"} for r in table}


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--skip-complexity", action="store_true")
    ap.add_argument("--skip-train", action="store_true", help="load the checkpoints instead of training")
    ap.add_argument("--skip-svr", action="store_true", help="skip single-view reconstruction")
    ap.add_argument("--only-complexity", action="store_true",
                    help="run the complexity curves only and write results/point_sets_complexity-<profile>-*.md")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    profile = config.get_profile()
    s = config.sizes(profile, prefix="ch05.")
    sections: list[str] = []
    data: dict = {"profile": profile, "sizes": {k: s[k] for k in ("n_points", "n_fc", "map_size", "epochs",
                                                                   "emd_method", "train_per_category",
                                                                   "test_per_category", "batch_size", "lr")}}
    t_all = time.perf_counter()
    if args.only_complexity:
        md, cdata = _complexity(s)
        path = write_result("point_sets_complexity", profile, md,
                            notes=f"{args.note}\n\ntorch threads: {torch.get_num_threads()}.",
                            data={"complexity": cdata})
        print("wrote", path)
        return

    # --- data ---------------------------------------------------------------
    t0 = time.perf_counter()
    train = ps.train_data(profile)
    test = ps.test_data(profile)
    even = ps.even_reference("test", s["n_points"], profile=profile)
    t_data = time.perf_counter() - t0
    n = s["n_points"]
    gt = test["target_points"]
    print(f"data: train {tuple(train['points'].shape)}, test {tuple(test['points'].shape)} ({t_data:.0f} s)",
          flush=True)

    # --- training -----------------------------------------------------------
    rows = {"oracle": ps.evaluate_sets(test["oracle_points"], gt),
            "even": ps.evaluate_sets(even, gt)}
    labels = {"oracle": "oracle (a third, independent i.i.d. sampling)",
              "even": "evenly spread sample of the true surface (farthest-point, 8x oversampled)"}
    train_rows, preds, training = [], {}, {}
    for kind in ("chamfer", "emd"):
        t0 = time.perf_counter()
        model, hist = ps.train_autoencoder(kind, profile, data=train, retrain=not args.skip_train,
                                           progress=False, live_plot=False)
        wall = time.perf_counter() - t0
        preds[kind] = predict(model, test["points"])
        rows[kind] = ps.evaluate_sets(preds[kind], gt)
        labels[kind] = f"PointSetGen AE, {kind} loss" + (f" ({s['emd_method']} EMD)" if kind == "emd" else "")
        final = hist.train_loss[-1] if hist.train_loss else float("nan")
        train_rows.append([labels[kind], hist.epochs_run, final, hist.wall_time, wall])
        training[kind] = {"epochs": hist.epochs_run, "final_train_loss": final, "fit_seconds": hist.wall_time}
        print(f"{kind}: {hist.summary()}", flush=True)
    table = summarize(rows)
    data["autoencoding"] = {"convention": ps.CONVENTION, "n_test": int(gt.shape[0]), "labels": labels,
                            "rows": _rows_json(table), "training": training}
    ocd = table[0]["CD x1e3"][0]
    ratio_lines = [f"- {labels[r['model']]}: CD / oracle CD = {r['CD x1e3'][0] / ocd:.2f}" for r in table[1:]]
    shown = [{**r, "model": labels[r["model"]]} for r in table]
    sections.append("## Chamfer vs EMD training (held-out shapes)\n\n" + ps.CONVENTION + "\n\n"
                    + f"{gt.shape[0]} test shapes ({s['test_per_category']} per category), N = {n} points "
                    f"(FC branch {s['n_fc']}, map branch {s['map_size'][0]}x{s['map_size'][1]}); "
                    f"mean ± standard error over shapes.\n\n" + format_table(shown) + "\n\n"
                    + "\n".join(ratio_lines) + "\n\n"
                    + md_table(["run", "epochs", "final train loss", "fit wall time (s)", "total (s)"],
                               train_rows)
                    + f"\n\nTraining: {train['points'].shape[0]} shapes, batch {s['batch_size']}, {s['epochs']} "
                    f"epochs, Adam lr {s['lr']}; input and target: independent random {n}-subsets of two "
                    f"samplings of each surface, redrawn every epoch; EMD loss = course_lib.ops.emd(method="
                    f"'{s['emd_method']}') (unsquared, matching held fixed in the backward pass).")

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
    sdf = ps.surface_distances(test, {"oracle": test["oracle_points"], **preds})
    data["limits"] = {"branches": branches, "map_grid": grid, "sdf_mean": sdf}
    sections.append("### NN-CV per branch (mean over test shapes)\n\n"
                    + md_table(["loss", "points", "NN-CV"], brows)
                    + "\n\n### Map-grid edges and distance to the true surface\n\n"
                    + md_table(["loss", "edge / NN spacing (median)", "(90th percentile)", "NN spacing",
                                "mean |SDF|"],
                               [[k, g["edge_over_spacing_median"], g["edge_over_spacing_p90"], g["spacing_median"],
                                 sdf[k]] for k, g in grid.items()] + [["oracle", "", "", "", sdf["oracle"]]]))

    # --- single view ------------------------------------------------------------
    if not args.skip_svr:
        t0 = time.perf_counter()
        svr_train = ps.view_data("train", profile)
        svr_test = ps.view_data("test", profile)
        t_views = time.perf_counter() - t0
        svr, svr_hist = ps.train_single_view(profile, data=svr_train, retrain=not args.skip_train, progress=False,
                                             live_plot=False)
        sgt = svr_test["target_points"]
        srows = summarize({"oracle": ps.evaluate_sets(svr_test["oracle_points"], sgt),
                           "single_view": ps.evaluate_sets(predict(svr, svr_test["rgb"]), sgt)})
        data["single_view"] = {"rows": _rows_json(srows), "n_train": int(svr_train["rgb"].shape[0]),
                               "n_test": int(sgt.shape[0]), "image_size": list(svr_test["rgb"].shape[2:]),
                               "epochs": svr_hist.epochs_run, "fit_seconds": svr_hist.wall_time,
                               "categories": list(svr_test["categories"])}
        sections.append(
            "## Single-view reconstruction\n\n"
            f"Categories {', '.join(svr_test['categories'])}; {svr_train['rgb'].shape[0]} training views, "
            f"{sgt.shape[0]} held-out views of {tuple(svr_test['rgb'].shape[2:])} px (one seeded random "
            f"view per shape); {s['svr_epochs']} epochs, ResNet width {s['svr_width']}; fit wall time "
            f"{svr_hist.wall_time:.0f} s (building the views: {t_views:.0f} s). Same convention as above; "
            "the model single_view is PointSetGen behind a ResNet, Chamfer loss.\n\n" + format_table(srows))
        print("svr:", svr_hist.summary(), flush=True)

    # --- mean shape -----------------------------------------------------------
    mrows, mdata = [], []
    for kind in ("circle", "sphere"):
        for radius in ("uniform", "two"):
            for dist, squared in (("chamfer", True), ("emd", False), ("emd", True)):
                out = ps.mean_shape(dist, s["mean_points"], kind=kind, radius=radius, steps=s["mean_steps"],
                                    batch=s["mean_batch"], seed=0, squared=squared)
                p = ps.radial_profile(out["points"], kind)
                label = dist + (" squared" if dist == "emd" and squared else "")
                mrows.append([kind, radius, label, p["mean"], p["std"], p["q10"], p["q50"], p["q90"],
                              out["seconds"]])
                mdata.append({"ring": kind, "radius_law": radius, "distance": dist, "squared": squared,
                              **{k: p[k] for k in ("mean", "std", "q10", "q50", "q90")}, "seconds": out["seconds"]})
                print("mean shape", kind, radius, label, f"{p['mean']:.3f} ± {p['std']:.3f}", flush=True)
    data["mean_shape"] = {"n_points": s["mean_points"], "steps": s["mean_steps"], "batch": s["mean_batch"],
                          "rows": mdata}
    sections.append(
        "## Mean shape (Fan et al. 2017)\n\n"
        f"One set of {s['mean_points']} points optimised (Adam, {s['mean_steps']} steps, {s['mean_batch']} rings "
        "per step) for the expected Chamfer distance (squared point distances), EMD (exact; unsquared, as the "
        "course trains and Fan et al. define it) and EMD with squared point distances (`ps.mean_shape`), to "
        "rings of random radius: "
        "'uniform' = U(0.3, 1.0) (mean 0.65), 'two' = 0.3 or 1.0 with probability 1/2 (mean 0.65). "
        "Radii of the optimised points:\n\n"
        + md_table(["ring", "radius law", "distance", "mean r", "std r", "q10", "q50", "q90", "seconds"], mrows))

    # --- complexity -------------------------------------------------------------
    if not args.skip_complexity:
        md, data["complexity"] = _complexity(s)
        sections.append(md)

    data["seconds"] = {"total": time.perf_counter() - t_all, "data": t_data}
    notes = (f"{args.note}\n\ntorch threads: {torch.get_num_threads()}; total benchmark time "
             f"{time.perf_counter() - t_all:.0f} s (data loading {t_data:.0f} s, from the ShapeNet-lite cache "
             "where present).").strip()
    path = write_result("point_sets", profile, "\n\n".join(sections), notes=notes, data=data)
    print("wrote", path)


if __name__ == "__main__":
    main()
