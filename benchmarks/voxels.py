"""Chapter 03 (voxels): VoxNet accuracy, auto-encoding and single-view IoU at 32^3, the memory/time curve.

Run from the repository root (each part can run in its own process; ``--report`` then assembles the
result file from the parts' JSON fragments; with no ``--part`` every part runs, then the report):

    COURSE_PROFILE=laptop python benchmarks/voxels.py --part voxnet
    COURSE_PROFILE=laptop python benchmarks/voxels.py --part voxnet_scan
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

Protocol 2 (issue #32): every choice is made on the validation shapes, in the parts listed in
``SELECTION_PARTS`` (the test split cannot be read there): the epoch each model keeps (lowest validation
loss) and the IoU threshold of the auto-encoder and the single-view model.  The test split (the fresh
range) is read afterwards, once, to report.  ``data["selections"]``, ``data["claims"]`` and
``data["goals"]`` hold the records the lecture prints with ``results.say`` / ``results.show_goals``:

* claims, paired over the same held-out shapes (>= 20; the ci profile loads more test shapes than the
  lecture for that): the threshold chosen on val against 0.5 and against 3D-R2N2's 0.4 (per model), the
  auto-encoder against the single-view model (each row's budget: steps, examples, seconds, parameters),
  and the representation floor at R against R/2 (no training);
* the partial-scan task (issue #33, part ``voxnet_scan``): VoxNet trained and tested on single-view partial scans
  (``V.scan_grids``: a random heading about the up axis, a raised orthographic camera, lost returns, depth
  noise; a fresh camera per training grid and batch, seeded cameras for val and test), over the profile's
  categories, with the same recipe and epochs as the full-shape model; three rows on the same test shapes
  (full model on full grids, full model on scans, scan model on scans), each with its per-class accuracy
  and confusion matrix; claims ``voxnet_full_vs_partial`` and ``voxnet_scan_training`` (paired over those
  shapes, 0/1 per shape);
* goals (issue #13, laptop profile on 2 CPU cores): single-view IoU >= 0.6 at 32^3 on held-out shapes in
  <= 5 min of training; auto-encoding IoU >= 0.8; VoxNet test accuracy >= 90 % (on procedural categories
  that coarse shape separates: a score near 1 says the task is easy, not that VoxNet is strong); the
  memory/time curve up to the largest resolution that fits in 8 GB, activations growing as R^3.

Each fragment keeps its own provenance (command, commit); fragments are ``bench-v2-*`` (protocol 1's
``bench-v1-*`` are never merged).

Cost (laptop, 2 cores; from the last laptop run, protocol 1, a loaded machine: voxnet 53 s, ae 207 s,
svr 262 s, curve 17 s): ~9-10 min with every model retrained (the checkpoints of protocol 1 are re-used
when their signature matches: the recipes did not change, so a warm cache trains nothing), plus ~2-4 min
once to generate the 100 shapes of the fresh test split (voxels, a rendered view, surface samples).
The ``voxnet_scan`` part adds ~1-2 min: its own model trains once (15 epochs took about 45 s on one thread of a
loaded 2-core machine in a development run at laptop sizes; scanning a batch of 32 grids takes ~20 ms), and
the full-shape model is loaded from the ``voxnet`` part's checkpoint (trained here if that part has not run).
``COURSE_PROFILE=ci`` runs every part in about a minute (pipeline check only; its numbers mean nothing).

Real datasets (issue #35): ``--dataset modelnet`` or ``--dataset shapenetcore`` (with ``--root DIR``, or
``COURSE_MODELNET_DIR`` / ``COURSE_SHAPENET_DIR``; ``COURSE_DATASET`` works too) runs every part on that
dataset's meshes (:class:`course_lib.data.real_split.RealShapes`: grids by winding number, views rendered with
ShapeNet-lite's random cameras, the profile's categories by name): VoxNet, the auto-encoder, the single-view
model (its threshold chosen on val as here).  What needs ShapeNet-lite's exact shapes is left out, with a note
in the report: the representation floor (``V.representation_floor`` refuses real rows; at R/2 it re-voxelises
each shape from its category and seed; the table shows nan) and so the claim ``floor_falls_with_resolution``.  The curve uses synthetic balls (the same
on every dataset).  The checkpoints carry the dataset's name (``ch03_<task>-<dataset>-<profile>-<hash>.pt``),
the fragments too, and the results are ``benchmarks/results/voxels-<dataset>-<profile>-<machine>.md`` and
``voxels-<dataset>-<profile>.json``: ShapeNet-lite's files are never overwritten.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import md_table, provenance, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.data import CATEGORIES  # noqa: E402
from course_lib.experiments import voxels as V  # noqa: E402
from course_lib.experiments.common import use_dataset  # noqa: E402
from course_lib.experiments.protocol import (  # noqa: E402
    MIN_SHAPES,
    budget,
    claim,
    claim_sentence,
    goal,
    goal_sentence,
    selection_part,
)

PARTS = ("voxnet", "voxnet_scan", "ae", "svr", "curve")
SELECTION_PARTS = ("train_voxnet_on_val", "train_voxnet_scan_on_val", "train_reconstruction_on_val")
"""The parts that make choices, on train and val only: the best epoch of each model (lowest validation
loss, kept by ``train_or_load``; for the partial-scan VoxNet, on fixed scans of the validation shapes) and
the IoU threshold of each reconstruction model (best validation IoU). The curve makes none (fixed sizes,
synthetic balls)."""


def _dataset() -> str | None:
    """The real dataset this run reads (``COURSE_DATASET``, set by ``--dataset``), or None for ShapeNet-lite."""
    from course_lib.data.real_split import dataset_name

    name = dataset_name(None)
    return None if name == "shapenet-lite" else name


def _result_name() -> str:
    """``voxels`` for ShapeNet-lite, ``voxels-<dataset>`` for a real dataset (its own result files)."""
    real = _dataset()
    return "voxels" if real is None else f"voxels-{real}"


def _frag(profile: str, part: str) -> Path:
    # v2: protocol 2 (fresh test split, records); v1 fragments of protocol 1 are never merged
    real = _dataset()
    tag = "" if real is None else f"{real}-"
    return config.cache_dir() / "ch03" / f"bench-v2-{tag}{profile}-{part}.json"


def _save(profile: str, part: str, data: dict) -> None:
    p = _frag(profile, part)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=1, default=float))


def _test_per_category(profile: str) -> int:
    """Test shapes per category for the paired claims: the profile's, raised to reach MIN_SHAPES in all
    (only the ci profile needs it; the laptop profile's 10 x 10 = 100 shapes are unchanged)."""
    s = config.sizes(profile, prefix="ch03.")
    n_cats = len(s["categories"] or CATEGORIES)
    return max(int(s["test_per_category"]), math.ceil(MIN_SHAPES / n_cats))


@selection_part
def train_voxnet_on_val(profile: str, retrain: bool) -> dict:
    """Train (or load) VoxNet; the epoch kept is the one with the lowest validation loss."""
    tr, va = V.voxel_data("train", profile), V.voxel_data("val", profile)
    model, hist = V.train_voxnet(profile, data=tr, val_data=va, retrain=retrain, progress=False)
    return {"model": model, "hist": hist, "n_classes": len(tr["categories"]),
            "budget": V.fit_budget(model, hist, len(tr["label"]), config.size("ch03.batch_size", profile)),
            "selections": [V.best_epoch_record("voxnet_best_epoch", hist)]}


@selection_part
def train_voxnet_scan_on_val(profile: str, retrain: bool) -> dict:
    """Train (or load) VoxNet on partial single-view scans (``V.train_voxnet(scan=True)``: a fresh random camera
    per training grid and batch); the epoch kept is the one with the lowest loss on fixed scans of the
    validation shapes."""
    tr, va = V.voxel_data("train", profile), V.voxel_data("val", profile)
    model, hist = V.train_voxnet(profile, data=tr, val_data=va, retrain=retrain, progress=False, scan=True)
    return {"model": model, "hist": hist,
            "budget": V.fit_budget(model, hist, len(tr["label"]), config.size("ch03.batch_size", profile)),
            "selections": [V.best_epoch_record("voxnet_scan_best_epoch", hist)]}


def _classified(pred: torch.Tensor, labels: torch.Tensor, n_classes: int) -> dict:
    conf = V.confusion_matrix(pred, labels, n_classes)
    return {"accuracy": float((pred == labels).double().mean()), "correct": (pred == labels).int().tolist(),
            "confusion": conf.tolist(), "per_class": [float(x) for x in V.per_class_accuracy(conf)]}


def run_voxnet_scan(profile: str, retrain: bool) -> dict:
    """The harder task: VoxNet on partial scans, against VoxNet on full shapes, on the same test shapes.

    Both models are trained with the same recipe and epochs (the full-shape one is the ``voxnet`` part's
    checkpoint, loaded when that part ran first). The test shapes (>= MIN_SHAPES, see _test_per_category) are
    read once; each is scanned from one seeded camera (``V.scan_seed("test")``). Three rows: the full-shape
    model on the full grids, the same model on the scans (trained on full shapes only), the scan model on the
    scans."""
    t0 = time.perf_counter()
    full = train_voxnet_on_val(profile, retrain)
    part = train_voxnet_scan_on_val(profile, retrain)
    te = V.voxel_data("test", profile, per_category=_test_per_category(profile))  # read once, to report
    ts = V.scan_data(te, V.scan_seed("test", profile), profile)
    n, labels = full["n_classes"], te["label"]
    rows = {"full_on_full": _classified(V.classify(full["model"], te["voxels"]), labels, n),
            "full_on_scan": _classified(V.classify(full["model"], ts["voxels"]), labels, n),
            "scan_on_scan": _classified(V.classify(part["model"], ts["voxels"]), labels, n)}
    return {"rows": rows, "categories": list(te["categories"]), "n_classes": n, "n_test": int(labels.shape[0]),
            "resolution": int(te["voxels"].shape[-1]), "scan": V.scan_settings(profile),
            "test_scan_seed": V.scan_seed("test", profile),
            "cells_full": float(te["voxels"].sum((1, 2, 3)).mean()), "cells_scan": float(ts["voxels"].sum((1, 2, 3)).mean()),
            "shapes": [f"{c}/{int(sd)}" for c, sd in zip(te["category"], torch.as_tensor(te["seed"]).tolist())],
            "budget": {"full": full["budget"], "scan": part["budget"]},
            "train_seconds": part["hist"].wall_time, "epochs": part["hist"].epochs_run,
            "wall_seconds": time.perf_counter() - t0, "selections": part["selections"]}


def run_voxnet(profile: str, retrain: bool) -> dict:
    t0 = time.perf_counter()
    sel = train_voxnet_on_val(profile, retrain)
    te = V.voxel_data("test", profile)  # read once, to report
    model, hist = sel["model"], sel["hist"]
    real = {} if _dataset() is None else {"dataset": _dataset()}
    return {**real, "accuracy": V.accuracy(model, te["voxels"], te["label"]), "n_test": int(te["voxels"].shape[0]),
            "n_classes": sel["n_classes"], "train_seconds": hist.wall_time, "epochs": hist.epochs_run,
            "wall_seconds": time.perf_counter() - t0, "resolution": int(te["voxels"].shape[-1]),
            "budget": sel["budget"], "selections": sel["selections"]}


@selection_part
def train_reconstruction_on_val(task: str, profile: str, retrain: bool) -> dict:
    """Train (or load) the auto-encoder (``task="ae"``) or the single-view model (``"svr"``), then choose its
    IoU threshold on the validation shapes; the epoch kept is the one with the lowest validation loss."""
    s = config.sizes(profile, prefix="ch03.")
    image = task == "svr"
    tr = V.voxel_data("train", profile, image=image, extra_views=s["train_views"] if image else 0)
    va = V.voxel_data("val", profile, image=image)
    train = V.train_single_view if image else V.train_autoencoder
    model, hist = train(profile, data=tr, val_data=va, retrain=retrain, progress=False)
    key = "rgb" if image else "voxels"
    level, thr = V.select_threshold(f"{task}_threshold", V.predict(model, va[key]), va["voxels"], profile=profile)
    return {"model": model, "hist": hist, "level": level, "val_iou": thr["candidates"][str(level)],
            "budget": V.fit_budget(model, hist, int(tr["voxels"].shape[0]), s["batch_size"]),
            "selections": [V.best_epoch_record(f"{task}_best_epoch", hist), thr]}


def _reconstruction(task: str, profile: str, retrain: bool) -> dict:
    image = task == "svr"
    sel = train_reconstruction_on_val(task, profile, retrain)
    model, hist, level = sel["model"], sel["hist"], sel["level"]
    # the test split, read once to report (more shapes than the lecture's in the ci profile: see _test_per_category)
    te = V.voxel_data("test", profile, image=image, surface=True, per_category=_test_per_category(profile))
    key = "rgb" if image else "voxels"
    probs = V.predict(model, te[key])
    ev = V.evaluate_reconstruction(probs, te, level=level, profile=profile)
    R = int(te["voxels"].shape[-1])
    # the representation floor: ShapeNet-lite only (representation_floor refuses a real dataset's rows)
    floor = {"floor": V.representation_floor(te)} if _dataset() is None else {}
    ev.update(train_seconds=hist.wall_time, epochs=hist.epochs_run, val_iou_at_level=sel["val_iou"],
              pos_weight=float(getattr(model, "pos_weight", float("nan"))), n_test=int(te["voxels"].shape[0]),
              resolution=R, **floor,
              params=sum(p.numel() for p in model.parameters()), budget=sel["budget"], selections=sel["selections"],
              shapes=[f"{c}/{int(sd)}" for c, sd in zip(te["category"], torch.as_tensor(te["seed"]).tolist())],
              iou_per_shape={name: V.per_shape_iou(probs, te["voxels"], t).tolist()
                             for name, t in (("level", level), ("0.4", 0.4), ("0.5", 0.5))})
    if task == "ae" and _dataset() is None:  # the floor one resolution down, on the same shapes (a paired claim;
        # it re-voxelises each shape from its category and seed)
        ev["floor_half"] = V.representation_floor(te, resolution=R // 2)
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


def _no_training() -> dict:
    return budget(steps=None, examples=None, seconds=None, params=None)


def claims(parts: dict) -> list[dict]:
    """The lecture's comparisons as records: paired over the same held-out shapes (fixed, trained models)."""
    out = []
    sc = parts.get("voxnet_scan")
    if sc:
        rows, b = sc["rows"], sc["budget"]
        names = {"full_on_full": "VoxNet, full shapes", "scan_on_scan": "VoxNet, partial scans",
                 "full_on_scan": "VoxNet trained on full shapes, partial scans"}
        metric = f"test accuracy (1 = correct) at {sc['resolution']}^3"
        for cid, text, ka, kb in (
                ("voxnet_full_vs_partial", "VoxNet classifies full shapes in their canonical pose more accurately "
                 "than partial single-view scans (random heading, lost returns, depth noise), each model trained on its own input",
                 "full_on_full", "scan_on_scan"),
                ("voxnet_scan_training", "On partial scans, the VoxNet trained on scans is more accurate than the "
                 "one trained on full shapes", "scan_on_scan", "full_on_scan")):
            bud = {names[k]: b["scan" if k.startswith("scan") else "full"] for k in (ka, kb)}
            out.append(claim(cid, text, a=names[ka], b=names[kb], metric=metric, values_a=rows[ka]["correct"],
                             values_b=rows[kb]["correct"], higher_is_better=True, unit="shapes", budget=bud,
                             selected_on="val"))
    names = {"ae": "auto-encoder (grid in)", "svr": "single view (one image in)"}
    for task in ("ae", "svr"):
        r = parts.get(task)
        if not r:
            continue
        per, lv = r["iou_per_shape"], r["level"]
        b = r["budget"]
        for other, why in (("0.5", "the natural cut of a probability"), ("0.4", "3D-R2N2's TEST.VOXEL_THRESH")):
            a_name, b_name = f"{task}, t = {lv} (chosen on val)", f"{task}, t = {other}"
            out.append(claim(
                f"{task}_val_threshold_vs_{other.replace('.', '')}",
                f"With the weighted BCE, the threshold chosen on validation shapes gives the {names[task]} a higher "
                f"test IoU than t = {other} ({why})",
                a=a_name, b=b_name, metric=f"IoU at {r['resolution']}^3", values_a=per["level"], values_b=per[other],
                higher_is_better=True, unit="shapes", budget={a_name: b, b_name: b}, selected_on="val"))
    ae, svr = parts.get("ae"), parts.get("svr")
    if ae and svr:
        if ae["shapes"] != svr["shapes"]:
            raise RuntimeError("the ae and svr parts were scored on different test shapes: re-run both")
        out.append(claim(
            "ae_vs_svr_iou", "Reconstructing from the grid itself (auto-encoding) gives a higher IoU than "
            "reconstructing from one image (single view), each at its threshold chosen on val",
            a=names["ae"], b=names["svr"], metric=f"IoU at {ae['resolution']}^3",
            values_a=ae["iou_per_shape"]["level"], values_b=svr["iou_per_shape"]["level"], higher_is_better=True,
            unit="shapes", budget={names["ae"]: ae["budget"], names["svr"]: svr["budget"]}, selected_on="val"))
    if ae and "floor_half" in ae:
        fa, fb = ae["floor"]["per_shape"], ae["floor_half"]["per_shape"]
        pairs = [(x, y) for x, y in zip(fa, fb) if math.isfinite(x) and math.isfinite(y)]
        R, h = ae["floor"]["resolution"], ae["floor_half"]["resolution"]
        a_name, b_name = f"true grid at {R}^3", f"true grid at {h}^3"
        out.append(claim(
            "floor_falls_with_resolution", f"The staircase floor falls with the resolution: the marching-cubes mesh "
            f"of the true {R}^3 grid is closer to the surface than that of the true {h}^3 grid (shapes where both "
            "grids have a surface)",
            a=a_name, b=b_name, metric="Chamfer x1000", values_a=[x for x, _ in pairs], values_b=[y for _, y in pairs],
            higher_is_better=False, unit="shapes", budget={a_name: _no_training(), b_name: _no_training()},
            selected_on="none"))
    return out


def goal_records(parts: dict) -> list[dict]:
    """The chapter's goals (issue #13) as records; ids are stable across profiles (set for the laptop one)."""
    out = []
    v = parts.get("voxnet")
    if v:
        real = v.get("dataset")
        if real:
            text = (f"VoxNet test accuracy on {v['n_test']} held-out shapes of {v['n_classes']} {real} categories at "
                    f"{v['resolution']}^3")
        else:
            text = (f"VoxNet test accuracy on {v['n_test']} held-out shapes of {v['n_classes']} "
                    "ShapeNet-lite categories at {0}^3. These procedural categories are separable by their coarse "
                    "shape, so a score near 1 says the task is easy here, not that VoxNet is strong (the paper's "
                    "test is ModelNet)".format(v["resolution"]))
        out.append(goal("voxnet_accuracy", text, v["accuracy"], 0.9, comparison=">="))
    for task, target, what in (("ae", 0.8, "auto-encoding"), ("svr", 0.6, "single-view")):
        r = parts.get(task)
        if r:
            out.append(goal(f"{task}_iou", f"{what} IoU at {r['resolution']}^3 on {r['n_test']} held-out shapes, at the "
                            f"threshold chosen on val ({r['level']})", r["iou@level"], target, comparison=">="))
    if parts.get("svr"):
        out.append(goal("svr_train_seconds", "single-view training seconds (goal: at most 5 min on 2 CPU cores)",
                        parts["svr"]["train_seconds"], 300.0, comparison="<="))
    c = parts.get("curve")
    if c:
        skipped = [r for r in c["rows"] if r["skipped"]]
        reached = not skipped or "memory" in skipped[0]["skipped"]
        out.append(goal("curve_to_memory_limit", "the cost curve runs every resolution up to the one predicted not "
                        f"to fit in {c['max_bytes'] / 2**30:.0f} GiB", bool(reached), True, comparison="=="))
        out.append(goal("activation_exponent", "activation bytes grow as R^3: fitted log-log slope at least 2.8",
                        c["exponents"]["activation_bytes"], 2.8, comparison=">="))
    return out


def report(profile: str) -> Path:
    parts = {p: json.loads(_frag(profile, p).read_text()) for p in PARTS if _frag(profile, p).exists()}
    if not parts:
        raise SystemExit(f"no fragments for profile {profile!r}: run the parts first")
    lines = ["Each part's run: " + "; ".join(
        f"{p}: `{r['provenance'].get('command', '?')}` at {r['provenance'].get('commit', '?')}"
        for p, r in parts.items() if "provenance" in r), ""]
    if "voxnet" in parts:
        v = parts["voxnet"]
        lines += ["## VoxNet classification", "",
                  md_table(["resolution", "classes", "test shapes", "accuracy", "goal", "train s", "steps", "params"],
                           [[v["resolution"], v["n_classes"], v["n_test"], v["accuracy"], ">= 0.90",
                             v["train_seconds"], v["budget"]["steps"], v["budget"]["params"]]]), "",
                  f"On {v['dataset']}'s meshes." if v.get("dataset") else
                  "ShapeNet-lite's procedural categories are separable by coarse shape: this accuracy says the task "
                  "is easy, not that VoxNet is strong (the partial-scan section poses a harder task).", ""]
    if "voxnet_scan" in parts:
        sc = parts["voxnet_scan"]
        what = {"full_on_full": "trained on full shapes, tested on full shapes",
                "full_on_scan": "trained on full shapes, tested on partial scans",
                "scan_on_scan": "trained on partial scans, tested on partial scans"}
        lines += [f"## VoxNet on partial single-view scans ({sc['n_classes']} classes, {sc['n_test']} held-out "
                  f"shapes, {sc['resolution']}^3)", "",
                  f"Sensor: one orthographic view per shape at a random heading about the up axis, elevation 0 to "
                  f"{sc['scan']['max_elevation']:g} degrees, depth noise {sc['scan']['noise']:g} voxels, "
                  f"{sc['scan'].get('dropout', 0.0):g} of the returns lost; "
                  f"{sc['cells_scan']:.0f} full cells per scan on average against {sc['cells_full']:.0f} per full grid.",
                  "",
                  md_table(["model", "accuracy"] + list(sc["categories"]),
                           [[what[k], r["accuracy"], *r["per_class"]] for k, r in sc["rows"].items()]), "",
                  "Confusion matrix of the scan model on the scans (rows: true class, columns: predicted):", "",
                  md_table(["true \\ predicted"] + list(sc["categories"]),
                           [[c, *row] for c, row in zip(sc["categories"], sc["rows"]["scan_on_scan"]["confusion"])]),
                  ""]
    for task, title, target in (("ae", "Voxel auto-encoding", ">= 0.8"), ("svr", "Single-view reconstruction", ">= 0.6")):
        if task not in parts:
            continue
        r = parts[task]
        lines += [f"## {title} ({r['resolution']}^3, {r['n_test']} held-out shapes)", "",
                  md_table(["IoU@0.4 (R2N2)", f"IoU@{r['level']} (best on val)", "goal", "CD x1000 (MC mesh)",
                            "CD floor (MC of true grid)", "no surface (all empty/full)", "pos weight", "train s",
                            "steps", "examples", "params"],
                           [[r["iou@0.4"], r["iou@level"], target, r.get("cd", float("nan")),
                             r["floor"]["cd"] if "floor" in r else float("nan"),
                             r.get("cd_empty", 0), r["pos_weight"], r["train_seconds"], r["budget"]["steps"],
                             r["budget"]["examples"], r["budget"]["params"]]]), "",
                  "Threshold sweep on the val split (where the threshold is picked; the report uses that threshold only): "
                  + ", ".join(f"{k}: {v:.3f}" for k, v in next(x for x in r["selections"]
                                                                if x["id"] == f"{task}_threshold")["candidates"].items()),
                  "",
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
    real = _dataset()
    if real is not None:
        lines += [f"Dataset: {real} (real meshes; grids by winding number, views rendered with ShapeNet-lite's "
                  "cameras). Not run on it (needs ShapeNet-lite's exact shapes): the representation floor (at R and R/2) "
                  "and its claim floor_falls_with_resolution.", ""]
    data = dict(parts)
    data["selections"] = [rec for p in PARTS if p in parts for rec in parts[p].get("selections", [])]
    data["claims"] = claims(parts)
    data["goals"] = goal_records(parts)
    lines += ["## Claims", ""] + [f"- {claim_sentence(c)}" for c in data["claims"]] + [""]
    lines += ["## Choices made on val", ""] + [f"- {r['id']}: {r['chosen']} ({r['metric']})"
                                               for r in data["selections"]] + [""]
    lines += ["## Goals", ""]
    if profile == "ci":
        lines.append("(ci profile: a pipeline check with tiny sizes; the goals are stated for the laptop profile)\n")
    lines += [f"- {goal_sentence(g)}" for g in data["goals"]]
    from course_lib.experiments.surfaces import CD_CONVENTION

    notes = ("Convention: " + CD_CONVENTION + ". IoU: per shape, then averaged (3D-R2N2's evaluate_voxel_prediction uses pred >= t).")
    if real is not None:
        data["dataset"] = real
    return write_result(_result_name(), profile, "\n".join(lines), notes=notes, data=data)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="On a real dataset (--dataset modelnet|shapenetcore) every part runs (VoxNet, ae, svr with views "
               "rendered from the meshes, the curve) except what needs ShapeNet-lite's exact "
               "shapes: the representation floor (at R and R/2) and its claim floor_falls_with_resolution. Results: "
               "results/voxels-<dataset>-<profile>-*.md / .json; checkpoints ch03_<task>-<dataset>-*.pt.")
    ap.add_argument("--part", choices=PARTS, action="append", help="run only these parts (repeatable)")
    ap.add_argument("--report", action="store_true", help="only assemble the report from the fragments")
    ap.add_argument("--retrain", action="store_true", help="train again even if checkpoints exist")
    ap.add_argument("--dataset", help="shapenet-lite (default), modelnet or shapenetcore (sets COURSE_DATASET); "
                    "a real dataset runs every part but the representation floor (see below)")
    ap.add_argument("--root", help="the real dataset's folder (default: COURSE_MODELNET_DIR / COURSE_SHAPENET_DIR)")
    args = ap.parse_args()
    try:
        use_dataset(args.dataset, args.root)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    profile = config.get_profile()
    if not args.report:
        for part in args.part or PARTS:
            t0 = time.perf_counter()
            if part == "voxnet":
                out = run_voxnet(profile, args.retrain)
            elif part == "voxnet_scan":
                out = run_voxnet_scan(profile, args.retrain)
            elif part == "curve":
                out = run_curve(profile)
            else:
                out = _reconstruction(part, profile, args.retrain)
            out["part_seconds"] = time.perf_counter() - t0
            out["provenance"] = provenance()
            _save(profile, part, out)
            print(f"{part}: done in {out['part_seconds']:.0f} s", flush=True)
    print(f"wrote {report(profile)}")


if __name__ == "__main__":
    main()
