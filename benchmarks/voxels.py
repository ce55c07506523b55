"""Chapter 03 (voxels): VoxNet accuracy, auto-encoding and single-view IoU at 32^3, the memory/time curve.

Run from the repository root (each part can run in its own process; ``--report`` then assembles the
result file from the parts' JSON fragments; with no ``--part`` every part runs, then the report):

    COURSE_PROFILE=laptop python benchmarks/voxels.py --part voxnet
    COURSE_PROFILE=laptop python benchmarks/voxels.py --part ae
    COURSE_PROFILE=laptop python benchmarks/voxels.py --part svr
    COURSE_PROFILE=laptop python benchmarks/voxels.py --part curve
    COURSE_PROFILE=laptop python benchmarks/voxels.py --report

Writes ``benchmarks/results/voxels-<profile>-<machine>.md`` and the JSON twin
``benchmarks/results/voxels-<profile>.json`` that ``lectures/03_voxels.ipynb`` reads.  The models are
the lecture's: trained (or loaded) by :mod:`course_lib.experiments.voxels` with
:func:`course_lib.train.train_or_load` under ``config.cache_dir()/checkpoints`` (``--retrain`` trains
again).  Evaluation is on held-out ShapeNet-lite test shapes (never seen in training); the threshold for
the Chamfer meshes is the one with the best IoU on the validation shapes; the IoU sweep over thresholds
is reported on the test shapes, with 3D-R2N2's 0.4 (``TEST.VOXEL_THRESH``) singled out.

Goals (issue #13, laptop profile on 2 CPU cores): single-view IoU >= 0.6 at 32^3 on held-out shapes in
<= 5 min of training; auto-encoding IoU >= 0.8; VoxNet test accuracy >= 90 %; the memory/time curve up to
the largest resolution that fits in 8 GB, with fitted exponents.

Cost (laptop, 2 cores, estimated from per-sample timings on a loaded machine, not measured end to end):
data generation once (~400 shapes: voxels, 5 renders each) ~3-5 min, then cached; voxnet ~1-2 min;
ae ~3-4 min; svr ~5 min; curve ~2 min (16^3 ... 128^3; 256^3 is listed but runs only when 8 x the
measured memory of 128^3 fits in ``ch03.curve_max_bytes`` = 8 GiB, otherwise the row says why it was skipped).  ``COURSE_PROFILE=ci`` runs every part in about a
minute (pipeline check only; its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import md_table, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import voxels as V  # noqa: E402

PARTS = ("voxnet", "ae", "svr", "curve")


def _frag(profile: str, part: str) -> Path:
    return config.cache_dir() / "ch03" / f"bench-v1-{profile}-{part}.json"


def _save(profile: str, part: str, data: dict) -> None:
    p = _frag(profile, part)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=1, default=float))


def run_voxnet(profile: str, retrain: bool) -> dict:
    tr, va, te = V.voxel_data("train", profile), V.voxel_data("val", profile), V.voxel_data("test", profile)
    t0 = time.perf_counter()
    model, hist = V.train_voxnet(profile, data=tr, val_data=va, retrain=retrain, progress=False)
    return {"accuracy": V.accuracy(model, te["voxels"], te["label"]), "n_test": int(te["voxels"].shape[0]),
            "n_classes": len(tr["categories"]), "train_seconds": hist.wall_time, "epochs": hist.epochs_run,
            "wall_seconds": time.perf_counter() - t0, "resolution": int(tr["voxels"].shape[-1])}


def _reconstruction(task: str, profile: str, retrain: bool) -> dict:
    s = config.sizes(profile, prefix="ch03.")
    image = task == "svr"
    tr = V.voxel_data("train", profile, image=image, extra_views=s["train_views"] if image else 0)
    va = V.voxel_data("val", profile, image=image)
    te = V.voxel_data("test", profile, image=image, surface=True)
    train = V.train_single_view if image else V.train_autoencoder
    model, hist = train(profile, data=tr, val_data=va, retrain=retrain, progress=False)
    key = "rgb" if image else "voxels"
    level, val_iou = V.best_threshold(V.iou_sweep(V.predict(model, va[key]), va["voxels"], profile=profile))
    ev = V.evaluate_reconstruction(V.predict(model, te[key]), te, level=level, profile=profile)
    ev.update(train_seconds=hist.wall_time, epochs=hist.epochs_run, val_iou_at_level=val_iou,
              pos_weight=float(getattr(model, "pos_weight", float("nan"))), n_test=int(te["voxels"].shape[0]),
              resolution=int(te["voxels"].shape[-1]), floor=V.representation_floor(te),
              params=sum(p.numel() for p in model.parameters()))
    ev["sweep"] = {str(k): v for k, v in ev["sweep"].items()}
    return ev


def run_curve(profile: str) -> dict:
    rows = V.cost_curve(profile=profile, progress=False)
    ok = [r for r in rows if not r["skipped"]]
    xs = [r["resolution"] for r in ok]
    exps = {k: V.fit_exponent(xs, [r[k] for r in ok]) for k in
            ("params", "activation_bytes", "peak_bytes", "seconds", "grid_bytes", "surface_fraction")}
    s = config.sizes(profile, prefix="ch03.")
    return {"rows": rows, "exponents": exps, "channels": s["curve_channels"], "batch": s["curve_batch"],
            "max_bytes": s["curve_max_bytes"], "device": str(config.get_device())}


def report(profile: str) -> Path:
    parts = {p: json.loads(_frag(profile, p).read_text()) for p in PARTS if _frag(profile, p).exists()}
    if not parts:
        raise SystemExit(f"no fragments for profile {profile!r}: run the parts first")
    lines = []
    if "voxnet" in parts:
        v = parts["voxnet"]
        lines += ["## VoxNet classification", "",
                  md_table(["resolution", "classes", "test shapes", "accuracy", "goal", "train s"],
                           [[v["resolution"], v["n_classes"], v["n_test"], v["accuracy"], ">= 0.90",
                             v["train_seconds"]]]), ""]
    for task, title, goal in (("ae", "Voxel auto-encoding", ">= 0.8"), ("svr", "Single-view reconstruction", ">= 0.6")):
        if task not in parts:
            continue
        r = parts[task]
        lines += [f"## {title} ({r['resolution']}^3, {r['n_test']} held-out shapes)", "",
                  md_table(["IoU@0.4 (R2N2)", f"IoU@{r['level']} (best on val)", "goal", "CD x1000 (MC mesh)",
                            "CD floor (MC of true grid)", "no surface (all empty/full)", "pos weight", "train s"],
                           [[r["iou@0.4"], r["iou@level"], goal, r.get("cd", float("nan")), r["floor"]["cd"],
                             r.get("cd_empty", 0), r["pos_weight"], r["train_seconds"]]]), "",
                  "Threshold sweep (test): " + ", ".join(f"{k}: {v:.3f}" for k, v in r["sweep"].items()), "",
                  "Per category (at the validation threshold): "
                  + ", ".join(f"{k} {v:.3f}" for k, v in r["per_category"].items()), ""]
    if "curve" in parts:
        c = parts["curve"]
        rows = [[r["resolution"], r["params"], r["activation_bytes"] / 2**20, r["peak_bytes"] / 2**20, r["seconds"],
                 r["surface_fraction"], r["skipped"] or "-"] for r in c["rows"]]
        lines += [f"## Memory and time of one forward+backward (auto-encoder, {c['channels']} channels, "
                  f"batch {c['batch']}, {c['device']})", "",
                  md_table(["R", "params", "activations MiB", "peak MiB", "seconds", "surface fraction", "skipped"],
                           rows), "",
                  "Fitted exponents (log-log slope in R): " + ", ".join(f"{k} {v:.2f}" for k, v in c["exponents"].items()),
                  ""]
    from course_lib.experiments.surfaces import CD_CONVENTION

    notes = ("Convention: " + CD_CONVENTION + ". IoU: per shape, then averaged (3D-R2N2's evaluate_voxel_prediction uses pred >= t).")
    return write_result("voxels", profile, "\n".join(lines), notes=notes, data=parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=PARTS, action="append", help="run only these parts (repeatable)")
    ap.add_argument("--report", action="store_true", help="only assemble the report from the fragments")
    ap.add_argument("--retrain", action="store_true", help="train again even if checkpoints exist")
    args = ap.parse_args()
    profile = config.get_profile()
    if not args.report:
        for part in args.part or PARTS:
            t0 = time.perf_counter()
            if part == "voxnet":
                out = run_voxnet(profile, args.retrain)
            elif part == "curve":
                out = run_curve(profile)
            else:
                out = _reconstruction(part, profile, args.retrain)
            out["part_seconds"] = time.perf_counter() - t0
            _save(profile, part, out)
            print(f"{part}: done in {out['part_seconds']:.0f} s", flush=True)
    print(f"wrote {report(profile)}")


if __name__ == "__main__":
    main()
