"""Chapter 05 benchmark: PointSetGen trained with Chamfer vs EMD, the mean shape, distance complexity.

Run from the repository root:

    COURSE_PROFILE=laptop python benchmarks/point_sets.py [--threads 1] [--skip-complexity]

Writes ``benchmarks/results/point_sets-<profile>-<machine>.md``. Both training runs start from the
same seed, data and schedule and are re-trained (checkpoints are written to the course cache,
where the lecture's ``train_or_load`` then finds them).
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


def _complexity_section(s: dict) -> str:
    """Time, memory and error of Chamfer and the three EMD solvers as N grows (markdown)."""
    crow = ps.time_distances(s["complexity_ns"], time_limit=20.0, repeat=3)
    return ("## Complexity (one pair of N-point samplings of the unit sphere)\n\n"
            "Seconds: median of 3 runs. Peak memory: peak resident set size above the start (VmHWM, "
            "first run; glibc large blocks served by mmap and the heap trimmed before), so allocator "
            "granularity makes values below ~1 MB noise. rel_err = value / exact EMD - 1. A method is skipped for "
            "larger N once it took more than 20 s.\n\n"
            + md_table(["N", "method", "seconds", "peak MB", "value", "rel_err"],
                       [[r["N"], r["method"], r["seconds"], r["memory_MB"], r["value"], r["rel_err"]]
                        for r in crow]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--skip-complexity", action="store_true")
    ap.add_argument("--skip-train", action="store_true", help="load the checkpoints instead of training")
    ap.add_argument("--skip-svr", action="store_true", help="skip single-view reconstruction")
    ap.add_argument("--only-complexity", action="store_true",
                    help="run the complexity curves only and write results/point_sets_complexity-<profile>-*.md")
    ap.add_argument("--note", default="The 2-core machine was shared with other agents during this run: "
                    "wall times are inflated (by 2-5x in our spot checks) relative to an idle laptop.")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    profile = config.get_profile()
    s = config.sizes(profile, prefix="ch05.")
    sections: list[str] = []
    t_all = time.perf_counter()
    if args.only_complexity:
        path = write_result("point_sets_complexity", profile, _complexity_section(s),
                            notes=f"{args.note}\n\ntorch threads: {torch.get_num_threads()}.")
        print("wrote", path)
        return

    # --- data ---------------------------------------------------------------
    t0 = time.perf_counter()
    train = ps.point_clouds("train", profile, s["categories"], s["train_per_category"])["points"]
    test = ps.point_clouds("test", profile, s["categories"], s["test_per_category"])
    t_data = time.perf_counter() - t0
    n = s["n_points"]
    gt, oracle = ps.held_out(test["points"], n, seed=123)
    print(f"data: train {tuple(train.shape)}, test {tuple(test['points'].shape)} ({t_data:.0f} s)", flush=True)

    # --- training -----------------------------------------------------------
    rows = {"oracle (independent surface samples)": ps.evaluate_sets(oracle, gt)}
    train_rows = []
    preds = {}
    for kind in ("chamfer", "emd"):
        t0 = time.perf_counter()
        model, hist = ps.train_autoencoder(kind, profile, train_points=train, retrain=not args.skip_train,
                                           progress=False, live_plot=False)
        wall = time.perf_counter() - t0
        pred = ps.predict(model, gt)
        preds[kind] = pred
        label = f"PointSetGen AE, {kind} loss" + (f" ({s['emd_method']} EMD)" if kind == "emd" else "")
        rows[label] = ps.evaluate_sets(pred, gt)
        train_rows.append([label, hist.epochs_run, len(hist.train_loss) and hist.train_loss[-1],
                           hist.wall_time if not args.skip_train else float("nan"), wall])
        print(f"{kind}: {hist.summary()}", flush=True)
    table = ps.results_table(rows)
    ocd = table[0]["CD x1e3"][0]
    ratio_lines = [f"- {r['model']}: CD / oracle CD = {r['CD x1e3'][0] / ocd:.2f}" for r in table[1:]]
    sections.append("## Chamfer vs EMD training (held-out shapes)\n\n" + ps.CONVENTION + "\n\n"
                    + f"{gt.shape[0]} test shapes ({s['test_per_category']} per category), N = {n} points "
                    f"(FC branch {s['n_fc']}, map branch {s['map_size'][0]}x{s['map_size'][1]}); "
                    f"mean ± standard error over shapes.\n\n" + ps.format_table(table) + "\n\n"
                    + "\n".join(ratio_lines) + "\n\n"
                    + md_table(["run", "epochs", "final train loss", "fit wall time (s)", "total (s)"],
                               train_rows)
                    + f"\n\nTraining: {train.shape[0]} shapes, batch {s['batch_size']}, {s['epochs']} epochs, "
                    f"Adam lr {s['lr']}; EMD loss = course_lib.ops.emd(method='{s['emd_method']}') "
                    "(unsquared, matching held fixed in the backward pass).")

    # per-branch uniformity
    branch = ps.build_autoencoder(profile).decoder.branch
    brows = []
    for kind, pred in preds.items():
        for b, name in ((0, "FC branch"), (1, "map branch")):
            brows.append([kind, name, float(ps.nn_uniformity(pred[:, branch == b]).mean())])
    brows.append(["oracle", "(same number of points as the map branch)",
                  float(ps.nn_uniformity(oracle[:, : int((branch == 1).sum())]).mean())])
    sections.append("### NN-CV per branch (mean over test shapes)\n\n"
                    + md_table(["loss", "points", "NN-CV"], brows))

    # --- single view ------------------------------------------------------------
    if not args.skip_svr:
        t0 = time.perf_counter()
        svr_train = ps.view_point_pairs("train", profile)
        svr_test = ps.view_point_pairs("test", profile)
        t_views = time.perf_counter() - t0
        svr, svr_hist = ps.train_single_view(profile, data=svr_train, retrain=not args.skip_train, progress=False,
                                             live_plot=False)
        sgt, sor = ps.held_out(svr_test["points"], n, seed=5)
        srows = ps.results_table({"oracle": ps.evaluate_sets(sor, sgt),
                                  "PointSetGen single view (ResNet, chamfer loss)":
                                      ps.evaluate_sets(ps.predict(svr, svr_test["rgb"]), sgt)})
        sections.append(
            "## Single-view reconstruction\n\n"
            f"Categories {', '.join(s['svr_categories'] or ['all'])}; {svr_train['rgb'].shape[0]} training views, "
            f"{svr_test['rgb'].shape[0]} held-out views of {tuple(svr_test['rgb'].shape[2:])} px (one seeded random "
            f"view per shape); {s['svr_epochs']} epochs, ResNet width {s['svr_width']}; fit wall time "
            f"{svr_hist.wall_time:.0f} s (building the views: {t_views:.0f} s). Same convention as above.\n\n"
            + ps.format_table(srows))
        print("svr:", svr_hist.summary(), flush=True)

    # --- mean shape -----------------------------------------------------------
    mrows = []
    for kind in ("circle", "sphere"):
        for radius in ("uniform", "two"):
            for dist in ("chamfer", "emd"):
                out = ps.mean_shape(dist, s["mean_points"], kind=kind, radius=radius, steps=s["mean_steps"],
                                    batch=s["mean_batch"], seed=0)
                p = ps.radial_profile(out["points"], kind)
                mrows.append([kind, radius, dist, p["mean"], p["std"], p["q10"], p["q50"], p["q90"],
                              out["seconds"]])
                print("mean shape", kind, radius, dist, f"{p['mean']:.3f} ± {p['std']:.3f}", flush=True)
    sections.append(
        "## Mean shape (Fan et al. 2017)\n\n"
        f"One set of {s['mean_points']} points optimised (Adam, {s['mean_steps']} steps, {s['mean_batch']} rings "
        "per step) for the expected squared-distance Chamfer or EMD (exact) to rings of random radius: "
        "'uniform' = U(0.3, 1.0) (mean 0.65), 'two' = 0.3 or 1.0 with probability 1/2 (mean 0.65). "
        "Radii of the optimised points:\n\n"
        + md_table(["ring", "radius law", "distance", "mean r", "std r", "q10", "q50", "q90", "seconds"], mrows))

    # --- complexity -------------------------------------------------------------
    if not args.skip_complexity:
        sections.append(_complexity_section(s))

    notes = (f"{args.note}\n\ntorch threads: {torch.get_num_threads()}; total benchmark time "
             f"{time.perf_counter() - t_all:.0f} s (data loading {t_data:.0f} s, from the ShapeNet-lite cache "
             "where present).")
    path = write_result("point_sets", profile, "\n\n".join(sections), notes=notes)
    print("wrote", path)


if __name__ == "__main__":
    main()
