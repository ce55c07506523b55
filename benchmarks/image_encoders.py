"""Chapter 02 benchmark: does depth help? ResNet classifiers on RGB versus RGB-D views, over training seeds.

Trains the chapter's small ResNet (``C.train_image_classifier``, the profile's width and
epochs) on rendered ShapeNet-lite views, once per input mode and seed, and measures the
accuracy on held-out test views (other shapes, each seen from its own random camera), the
validation accuracy of the kept epoch and the training time.

Protocol 2 (``course_lib.experiments.protocol``): ``train_on_val`` (a ``@selection_part``: reading the
test split there raises) trains one run and keeps its epoch with the best validation accuracy
(``data["selections"]``); the test views are read after every run is trained.  Both modes train the same
epochs on the same views (equal budgets, stated per row); "RGB-D against RGB" is a claim record paired
over the seeds (at least 3); the goal is a record.

    COURSE_PROFILE=laptop python benchmarks/image_encoders.py [--seeds 0 1 2] [--test-per-category 20]
    COURSE_PROFILE=laptop python benchmarks/image_encoders.py --dataset modelnet --root /data/ModelNet10

Writes ``results/image_encoders-<profile>-<machine>.md`` and the JSON twin
``results/image_encoders-<profile>.json`` that ``lectures/02_encoders.ipynb`` reads.
Cost (laptop profile, 2 idle cores, last run): six trainings of ~16 s each plus rendering the views
(~1-2 min the first time): about 3 minutes.  The ``ci`` profile trains no image classifier in the lecture
(``ch02.views_per_category``); here it trains on 2 views per category to check the pipeline.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_dataset_args, md_table, result_name, use_dataset_args, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import encoders as C  # noqa: E402
from course_lib.experiments.common import predict  # noqa: E402
from course_lib.experiments.protocol import (  # noqa: E402
    MIN_SEEDS,
    budget,
    claim,
    claim_sentence,
    goal,
    goal_sentence,
    selection_part,
)

SELECTION_PARTS = ("train_on_val",)
"""Protocol 2: each run keeps its epoch with the best validation accuracy."""

BATCH_SIZE = 32
"""``C.train_image_classifier``'s default batch size (the budgets below count its steps)."""


@selection_part
def train_on_val(mode: str, train, val, *, epochs: int, width: int, seed: int):
    """One run: train the ResNet on ``mode`` views and keep its epoch with the best validation accuracy."""
    t = time.perf_counter()
    model, hist = C.train_image_classifier(mode, train, val, epochs=epochs, width=width, seed=seed,
                                           batch_size=BATCH_SIZE, progress=False, live_plot=False)
    wall = time.perf_counter() - t
    kept, rec = C.best_epoch_record(f"best_epoch/{mode}/seed{seed}", hist, metric="val_acc", higher_is_better=True)
    return model, hist, wall, kept, rec


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x).argmax(1) == y).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--test-per-category", type=int, default=None,
                    help="held-out test shapes per category (default: 20; 2 in the ci profile)")
    ap.add_argument("--note", default="", help="a sentence on the machine's state during the run")
    add_dataset_args(ap)
    args = ap.parse_args()
    real = use_dataset_args(args)

    profile = config.get_profile()
    s = config.sizes(prefix="ch02.")
    views = dict(s["views_per_category"])
    smoke = views["train"] == 0
    if smoke:  # the lecture trains nothing in this profile: a pipeline check on a handful of views
        views["train"] = 2
    n_test = args.test_per_category if args.test_per_category is not None else (2 if profile == "ci" else 20)
    epochs, width = int(s["image_epochs"]), int(s["resnet_width"])
    t0 = time.perf_counter()
    train = C.load_views("train", views["train"])
    val = C.load_views("val", views["val"])
    data_s = time.perf_counter() - t0

    rows, runs, selections, models = [], [], [], {}
    for mode in ("rgb", "rgbd"):
        for seed in args.seeds:
            model, hist, wall, kept, rec = train_on_val(mode, train, val, epochs=epochs, width=width, seed=seed)
            selections.append(rec)
            models[(mode, seed)] = model
            runs.append({"mode": mode, "seed": seed, "epochs": hist.epochs_run, "best_epoch": kept + 1,
                         "train_wall_s": wall, "fit_s": hist.wall_time, "val_acc": hist.val[kept]["val_acc"]})
    # the test views are read only now, after every run has made its choice on val
    t0 = time.perf_counter()
    test = C.load_views("test", n_test)
    data_s += time.perf_counter() - t0
    print(f"views: train {len(train[2])}, val {len(val[2])}, test {len(test[2])} ({data_s:.0f} s)", flush=True)
    for r in runs:
        r["test_acc"] = _accuracy(models[(r["mode"], r["seed"])], C.image_inputs(test[0], test[1], r["mode"]), test[2])
        rows.append([r["mode"], r["seed"], f"{r['best_epoch']}/{r['epochs']}", f"{r['train_wall_s']:.0f}",
                     f"{r['val_acc']:.3f}", f"{r['test_acc']:.3f}"])
        print(rows[-1], flush=True)

    summary, budgets = {}, {}
    steps = C.training_steps(len(train[2]), BATCH_SIZE, epochs, drop_last=False)
    for mode in ("rgb", "rgbd"):
        a = [r["test_acc"] for r in runs if r["mode"] == mode]
        secs = [r["fit_s"] for r in runs if r["mode"] == mode]
        params = sum(p.numel() for p in models[(mode, args.seeds[0])].parameters())
        budgets[mode] = budget(steps=steps, examples=steps * BATCH_SIZE, seconds=statistics.mean(secs),
                               params=params, epochs=epochs, batch_size=BATCH_SIZE, width=width)
        summary[mode] = {"mean": statistics.mean(a), "std": statistics.pstdev(a), "min": min(a), "max": max(a),
                         "se": statistics.stdev(a) / math.sqrt(len(a)) if len(a) > 1 else float("nan"),
                         "accs": a, "budget": budgets[mode]}
    claims = []
    if len(args.seeds) >= MIN_SEEDS:
        claims.append(claim("rgbd_vs_rgb", "Adding the depth channel (RGB-D) classifies held-out views more "
                            "accurately than RGB alone", a="rgbd", b="rgb", metric=f"accuracy, {len(test[2])} held-out "
                            "views", values_a=summary["rgbd"]["accs"], values_b=summary["rgb"]["accs"],
                            higher_is_better=True, unit="seeds", budget=budgets, selected_on="none"))
    else:
        print(f"{len(args.seeds)} seed(s) < {MIN_SEEDS}: no claim recorded", flush=True)
    worst = min(summary[m]["mean"] for m in summary)
    goals = [goal("image_accuracy", f"a ResNet on rendered views classifies held-out views well above chance "
                  f"(lower of the two modes' mean accuracies over {len(args.seeds)} seeds)", worst,
                  C.GOALS["image_accuracy"], comparison=">=")]

    srows = [[m, f"{r['mean']:.3f}", f"{r['se']:.3f}", f"{r['std']:.3f}", f"{r['min']:.3f}", f"{r['max']:.3f}",
              r["budget"]["steps"], r["budget"]["params"], f"{r['budget']['seconds']:.0f}"] for m, r in summary.items()]
    body = "\n".join([
        "## RGB versus RGB-D", "",
        f"ResNet-18 layout, width {width}, {epochs} epochs, batch {BATCH_SIZE}, Adam 2e-3, random horizontal flips; "
        f"each run keeps its epoch with the best validation accuracy (protocol 2: a choice on val). Views: "
        f"{len(train[2])} train ({views['train']} shapes per category{', ci pipeline check' if smoke else ''}), "
        f"{len(val[2])} validation, {len(test[2])} test ({n_test} held-out shapes per category), "
        f"{train[0].shape[-1]} x {train[0].shape[-2]} pixels, one random camera per shape. RGB-D adds the depth "
        f"map as a fourth channel (scaled by {C.DEPTH_SCALE}, background 0).", "",
        md_table(["mode", "seed", "kept epoch", "train wall s", "val acc (kept epoch)", "test acc"], rows), "",
        "## Test accuracy over the seeds, and each mode's budget (the same steps)", "",
        md_table(["mode", "mean", "standard error", "std", "min", "max", "steps", "parameters", "fit s"], srows), "",
        *(["## Claims", "", *[f"- {claim_sentence(c)}" for c in claims], ""] if claims else []),
        "## Goals", "", *[f"- {goal_sentence(g)}" for g in goals],
    ])
    note = (f"Rendering / loading the views took {data_s:.0f} s (not counted). Load average at the end: "
            f"{' / '.join(f'{v:.1f}' for v in os.getloadavg())}. {args.note}")
    data = {"n_train": len(train[2]), "n_val": len(val[2]), "n_test": len(test[2]), "epochs": epochs,
            "width": width, "image_size": int(train[0].shape[-1]), "seeds": args.seeds, "runs": runs,
            "summary": summary, "claims": claims, "goals": goals, "selections": selections}
    if real is not None:
        data["dataset"] = real
        note = f"Dataset: {real} (real meshes rendered with ShapeNet-lite's cameras; its own split). " + note
    path = write_result(result_name("image_encoders", real), profile, body, notes=note, data=data)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
