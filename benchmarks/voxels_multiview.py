"""Chapter 03 (voxels): 3D-R2N2's recurrence measured -- IoU against the number of views, next to the single-view model.

Run from the repository root, alone on the machine:

    COURSE_PROFILE=laptop python benchmarks/voxels_multiview.py
    COURSE_PROFILE=laptop python benchmarks/voxels_multiview.py --dataset modelnet --root /data/ModelNet10

Writes ``benchmarks/results/voxels_multiview-<profile>-<machine>.md`` and the JSON twin
``benchmarks/results/voxels_multiview-<profile>.json`` that ``lectures/03_voxels.ipynb`` reads (the
IoU-against-views figure and the claims).  ``--retrain`` trains again even if checkpoints exist.

What runs (:mod:`course_lib.experiments.voxels`):

* the course's single-view model (:func:`V.train_single_view`, the same call and checkpoint as
  ``benchmarks/voxels.py --part svr``: a warm cache trains nothing);
* 3D-R2N2's multi-view model (:func:`V.train_multiview`: the chapter 02 ResNet encoder on every view, the
  3D convolutional GRU on a 4^3 hidden grid, the voxel decoder), with the single-view recipe and the same
  number of optimiser steps (same training shapes, batch size and epochs; the script refuses to report
  otherwise), each batch showing a random number (1..``ch03.mv_max_views``) of views in random order, as
  3D-R2N2's ``RANDOM_NUM_VIEWS``.  In the laptop and gpu profiles both models draw from the same rendered
  views of each training shape.

Protocol 2 (issue #32).  Every choice is made on the validation shapes in ``train_models_on_val`` (listed in
``SELECTION_PARTS``; the test split cannot be read there): each model's epoch (lowest validation loss; the
multi-view model's averaged over 1..V views) and the IoU threshold of the single-view model and of the
multi-view model at each number of views (best validation IoU, the validation shapes showing their views in
a fixed random order).  Then the test split (the fresh range, >= 20 shapes in every profile) is read once:
each shape shows its views in a fixed random order (:func:`V.view_orders`), the multi-view model is scored
after 1, 2, ..., V of them, the single-view model on the first.  Claims (``data["claims"]``, paired over the
test shapes, each with both rows' budgets): n views against n - 1 and 5 against 1; the multi-view model
with 1 and with 5 views against the single-view model; five views in the given order against the reversed
order (a GRU is not order invariant; how much does the order matter?).  Goal: IoU rises from 1 to 5 views.

Cost (sized from the ci profile, step timings at laptop sizes and the laptop runs of ``benchmarks/voxels.py``):
in the laptop profile on 2 cores about 8-10 min from a cold cache: the single-view model ~160 s (390 steps),
the multi-view model ~1.7x that per step (it encodes 3 views per shape on average) plus its validation over
1..5 views, ~5 min, and 4 more renderings of each of the 20 validation (``ch03.mv_val_per_category``) and 30
test shapes (``ch03.mv_test_per_category``), 200 renderings at 0.3-1 s each; about 3 min less when the
single-view checkpoint of ``benchmarks/voxels.py`` exists (it does not depend on VoxNet, so a ``voxels.py`` run of any
part order serves).  ``COURSE_PROFILE=ci`` runs in about a minute with 1..2 views (``ch03.mv_max_views``; a
pipeline check only, its numbers mean nothing).
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

from _common import add_dataset_args, md_table, result_name, use_dataset_args, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.data import CATEGORIES  # noqa: E402
from course_lib.experiments import voxels as V  # noqa: E402
from course_lib.experiments.protocol import (  # noqa: E402
    MIN_SHAPES,
    claim,
    claim_sentence,
    goal,
    goal_sentence,
    selection_part,
)

NAME = "voxels_multiview"
SELECTION_PARTS = ("train_models_on_val",)
"""The part that makes choices, on train and val only: each model's epoch and every IoU threshold."""

SVR = "single view (one image)"


def mv_name(n: int) -> str:
    return f"3D-GRU, {n} view{'s' if n > 1 else ''}"


def _test_per_category(profile: str) -> int:
    """Test shapes per category: ``ch03.mv_test_per_category``, raised so that the claims have >= MIN_SHAPES
    paired shapes."""
    s = config.sizes(profile, prefix="ch03.")
    n_cats = len(s["categories"] or CATEGORIES)
    return max(int(s["mv_test_per_category"]), math.ceil(MIN_SHAPES / n_cats))


@selection_part
def train_models_on_val(profile: str, retrain: bool) -> dict:
    """Train (or load) both models on ``train`` (epochs kept on ``val``), then choose their thresholds on ``val``."""
    s = config.sizes(profile, prefix="ch03.")
    k = int(s["mv_max_views"])
    t0 = time.perf_counter()
    # the single-view model exactly as benchmarks/voxels.py trains it (same data, same checkpoint)
    tr_svr = V.voxel_data("train", profile, image=True, extra_views=s["train_views"])
    va_svr = V.voxel_data("val", profile, image=True)
    tr_mv = V.multiview_data("train", profile)
    va_mv = V.multiview_data("val", profile, views=k)
    data_seconds = time.perf_counter() - t0
    svr, h_svr = V.train_single_view(profile, data=tr_svr, val_data=va_svr, retrain=retrain, progress=False)
    mv, h_mv = V.train_multiview(profile, data=tr_mv, val_data=va_mv, retrain=retrain, progress=False)
    b_svr = V.fit_budget(svr, h_svr, int(tr_svr["voxels"].shape[0]), s["batch_size"],
                         views_per_shape=int(tr_svr["views"].shape[1]) if "views" in tr_svr else 1)
    b_mv = V.fit_budget(mv, h_mv, int(tr_mv["voxels"].shape[0]), s["batch_size"],
                        views_per_shape=int(tr_mv["views"].shape[1]), views_per_example=f"1..{k}")
    if b_svr["steps"] != b_mv["steps"]:
        raise RuntimeError(f"unequal optimiser steps: single view {b_svr['steps']}, multi-view {b_mv['steps']}")
    # thresholds on val: the validation shapes show their views in a fixed random order
    order = V.view_orders(int(va_mv["voxels"].shape[0]), k, s["seed"] + 1)
    views = V.ordered_views(va_mv["views"], order)
    t_svr, rec_svr = V.select_threshold("svr_threshold", V.predict(svr, views[:, 0]), va_mv["voxels"],
                                        profile=profile)
    probs = V.predict_views(mv, views)
    levels, recs = [], []
    for n in range(1, k + 1):
        t, rec = V.select_threshold(f"mv_threshold_{n}_views", probs[:, n - 1], va_mv["voxels"], profile=profile)
        levels.append(t)
        recs.append(rec)
    return {"svr": svr, "mv": mv, "h_svr": h_svr, "h_mv": h_mv, "budget_svr": b_svr, "budget_mv": b_mv,
            "level_svr": t_svr, "levels_mv": levels, "data_seconds": data_seconds,
            "n_val": int(va_mv["voxels"].shape[0]),
            "selections": [V.best_epoch_record("svr_best_epoch", h_svr), V.best_epoch_record("mv_best_epoch", h_mv),
                           rec_svr, *recs]}


def run(profile: str, retrain: bool) -> dict:
    t_start = time.perf_counter()
    s = config.sizes(profile, prefix="ch03.")
    k = int(s["mv_max_views"])
    sel = train_models_on_val(profile, retrain)
    # the test split, read once, to report
    t0 = time.perf_counter()
    te = V.multiview_data("test", profile, views=k, per_category=_test_per_category(profile))
    order = V.view_orders(int(te["voxels"].shape[0]), k, s["seed"] + 2)
    views = V.ordered_views(te["views"], order)
    test_data_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    gt = te["voxels"]
    p_svr = V.predict(sel["svr"], views[:, 0])
    p_mv = V.predict_views(sel["mv"], views)
    p_rev = V.predict(sel["mv"], views.flip(1))
    levels = sel["levels_mv"]
    iou_mv = [x.tolist() for x in V.iou_by_views(p_mv, gt, levels)]
    iou_mv_04 = [x.tolist() for x in V.iou_by_views(p_mv, gt, [0.4] * k)]
    eval_seconds = time.perf_counter() - t0
    R = int(gt.shape[-1])
    return {
        "resolution": R, "n_test": int(gt.shape[0]), "n_val": sel["n_val"], "max_views": k,
        "image_size": int(te["views"].shape[-1]),
        "shapes": [f"{c}/{int(sd)}" for c, sd in zip(te["category"], torch.as_tensor(te["seed"]).tolist())],
        "view_order": order.tolist(),
        "svr": {"level": sel["level_svr"], "iou": V.per_shape_iou(p_svr, gt, sel["level_svr"]).tolist(),
                "iou@0.4": V.per_shape_iou(p_svr, gt, 0.4).tolist(), "budget": sel["budget_svr"],
                "train_seconds": sel["h_svr"].wall_time, "epochs": sel["h_svr"].epochs_run,
                "pos_weight": float(getattr(sel["svr"], "pos_weight", float("nan")))},
        "mv": {"levels": levels, "iou_by_views": iou_mv, "iou@0.4_by_views": iou_mv_04,
               "iou_reversed": V.per_shape_iou(p_rev, gt, levels[-1]).tolist(), "budget": sel["budget_mv"],
               "train_seconds": sel["h_mv"].wall_time, "epochs": sel["h_mv"].epochs_run,
               "hidden_grid": [int(sel["mv"].gru.channels), int(sel["mv"].gru.grid)],
               "pos_weight": float(getattr(sel["mv"], "pos_weight", float("nan")))},
        "selections": sel["selections"],
        "seconds": {"train_data": sel["data_seconds"], "test_data": test_data_seconds, "eval": eval_seconds,
                    "total": time.perf_counter() - t_start},
    }


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def claims(d: dict) -> list[dict]:
    """The chapter's multi-view comparisons, paired over the same test shapes."""
    k, R = d["max_views"], d["resolution"]
    metric = f"IoU at {R}^3"
    iou = d["mv"]["iou_by_views"]
    bm, bs = d["mv"]["budget"], d["svr"]["budget"]
    out = []

    def mv_claim(id: str, text: str, a: int, b: int) -> dict:
        return claim(id, text, a=mv_name(a), b=mv_name(b), metric=metric, values_a=iou[a - 1], values_b=iou[b - 1],
                     higher_is_better=True, unit="shapes", budget={mv_name(a): bm, mv_name(b): bm}, selected_on="val")

    for n in range(2, k + 1):
        out.append(mv_claim(f"mv_{n}_vs_{n - 1}_views", f"One more view ({n} instead of {n - 1}) raises the "
                            "recurrent model's test IoU", n, n - 1))
    if k > 2:
        out.append(mv_claim(f"mv_{k}_vs_1_views", f"The recurrent model's test IoU is higher with {k} views "
                            "than with 1", k, 1))
    for n in sorted({1, k}):
        out.append(claim(
            f"mv_{n}_vs_svr", f"The recurrent model shown {n} view{'s' if n > 1 else ''} gives a higher test IoU "
            "than the single-view model shown one (the same first view, equal optimiser steps)",
            a=mv_name(n), b=SVR, metric=metric, values_a=iou[n - 1], values_b=d["svr"]["iou"],
            higher_is_better=True, unit="shapes", budget={mv_name(n): bm, SVR: bs}, selected_on="val"))
    a_name, b_name = f"{mv_name(k)}, given order", f"{mv_name(k)}, reversed order"
    out.append(claim(
        f"mv_{k}_order", f"The order of the views matters: the recurrent model's IoU with the {k} views in the "
        "given order is higher than with the same views reversed",
        a=a_name, b=b_name, metric=metric, values_a=iou[k - 1], values_b=d["mv"]["iou_reversed"],
        higher_is_better=True, unit="shapes", budget={a_name: bm, b_name: bm}, selected_on="val"))
    return out


def goal_records(d: dict, claim_recs: list[dict]) -> list[dict]:
    k = d["max_views"]
    rises = next((c for c in claim_recs if c["id"] == f"mv_{k}_vs_1_views"), None)
    if rises is None:
        return []
    return [goal("mv_iou_rises_with_views", f"3D-R2N2's recurrence: the test IoU rises from 1 to {k} views "
                 f"(verdict of the paired claim mv_{k}_vs_1_views over {rises['n']} test shapes)",
                 rises["verdict"], "ahead", comparison="==")]


def report(d: dict, profile: str, note: str = "", real: str | None = None) -> Path:
    k = d["max_views"]
    iou, iou04, lv = d["mv"]["iou_by_views"], d["mv"]["iou@0.4_by_views"], d["mv"]["levels"]
    rows = [[SVR, 1, d["svr"]["level"], _mean(d["svr"]["iou"]), _mean(d["svr"]["iou@0.4"])]]
    rows += [[mv_name(n), n, lv[n - 1], _mean(iou[n - 1]), _mean(iou04[n - 1])] for n in range(1, k + 1)]
    rows.append([f"{mv_name(k)}, reversed order", k, lv[-1], _mean(d["mv"]["iou_reversed"]), float("nan")])
    bud = [[name, b["steps"], b["examples"], b["seconds"], b["params"], b.get("views_per_shape"),
            b.get("views_per_example", 1)]
           for name, b in ((SVR, d["svr"]["budget"]), ("3D-GRU (multi-view)", d["mv"]["budget"]))]
    sec = d["seconds"]
    lines = [f"## IoU against the number of views ({d['resolution']}^3, {d['n_test']} held-out shapes, "
             f"{d['image_size']}^2 views, each shape's views in a fixed random order)", "",
             md_table(["model", "views", "threshold (chosen on val)", "IoU at that threshold", "IoU@0.4 (R2N2)"],
                      rows), "",
             "## Budgets (equal optimiser steps)", "",
             md_table(["row", "steps", "examples", "train s", "params", "views rendered per training shape",
                       "views per example"], bud), "",
             f"Hidden grid of the 3D-GRU: {d['mv']['hidden_grid'][0]} channels x {d['mv']['hidden_grid'][1]}^3 "
             "(the paper: 128 x 4^3).", "",
             f"Seconds: training data {sec['train_data']:.0f} (inside the selection part), test data "
             f"{sec['test_data']:.0f}, evaluation {sec['eval']:.0f}, whole run {sec['total']:.0f}.", ""]
    lines += ["## Claims", ""] + [f"- {claim_sentence(c)}" for c in d["claims"]] + [""]
    lines += ["## Choices made on val", ""] + [f"- {r['id']}: {r['chosen']} ({r['metric']})"
                                               for r in d["selections"]] + [""]
    lines += ["## Goals", ""]
    if profile == "ci":
        lines.append("(ci profile: a pipeline check with tiny sizes; the goals are stated for the laptop profile)\n")
    lines += [f"- {goal_sentence(g)}" for g in d["goals"]]
    notes = ("IoU: per shape, then averaged (3D-R2N2's evaluate_voxel_prediction uses pred >= t). The multi-view "
             "model is scored after each of the first n views of every test shape; the single-view model on the "
             "first view, so its row pairs with the 1-view row." + (f"\n\n{note}" if note else ""))
    if real is not None:
        d["dataset"] = real
        notes = f"Dataset: {real} (real meshes: grids by winding number, views rendered with ShapeNet-lite's cameras; " \
                "its own split).\n\n" + notes
    return write_result(result_name(NAME, real), profile, "\n".join(lines), notes=notes, data=d)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--retrain", action="store_true", help="train again even if checkpoints exist")
    ap.add_argument("--note", default="", help="a line added to the result file's notes (how it was run)")
    add_dataset_args(ap)
    args = ap.parse_args()
    real = use_dataset_args(args)
    profile = config.get_profile()
    d = run(profile, args.retrain)
    d["claims"] = claims(d)
    d["goals"] = goal_records(d, d["claims"])
    print(f"wrote {report(d, profile, args.note, real)} in {d['seconds']['total']:.0f} s")


if __name__ == "__main__":
    main()
