"""Chapter 02 benchmark: does depth help? ResNet classifiers on RGB versus RGB-D views.

Trains the chapter's small ResNet (``C.train_image_classifier``, the profile's width and
epochs) on rendered ShapeNet-lite views, once per input mode and seed, and measures the
accuracy on held-out test views (other shapes, each seen from its own random camera), the
validation accuracy of the kept epoch and the training time. Several seeds, because with a
few hundred views one run's difference between the modes can be noise.

    COURSE_PROFILE=laptop python benchmarks/image_encoders.py [--seeds 0 1 2] [--test-per-category 20]

Writes ``results/image_encoders-<profile>-<machine>.md`` and the JSON twin
``results/image_encoders-<profile>.json`` that ``lectures/02_encoders.ipynb`` reads.
Cost (laptop profile, 2 idle cores, estimated): six trainings of ~1-2 min each, ~10 min.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import md_table, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import encoders as C  # noqa: E402
from course_lib.experiments.common import predict  # noqa: E402


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x).argmax(1) == y).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--test-per-category", type=int, default=20)
    ap.add_argument("--note", default="", help="a sentence on the machine's state during the run")
    args = ap.parse_args()

    profile = config.get_profile()
    s = config.sizes(prefix="ch02.")
    views = s["views_per_category"]
    if views["train"] == 0:
        raise SystemExit(f"profile {profile!r} trains no image classifier (ch02.views_per_category)")
    t0 = time.perf_counter()
    train = C.load_views("train", views["train"])
    val = C.load_views("val", views["val"])
    test = C.load_views("test", args.test_per_category)
    data_s = time.perf_counter() - t0
    print(f"views: train {len(train[2])}, val {len(val[2])}, test {len(test[2])} ({data_s:.0f} s)", flush=True)

    rows, runs, summary = [], [], {}
    for mode in ("rgb", "rgbd"):
        accs = []
        for seed in args.seeds:
            t = time.perf_counter()
            model, hist = C.train_image_classifier(mode, train, val, epochs=int(s["image_epochs"]),
                                                   width=int(s["resnet_width"]), seed=seed, progress=False,
                                                   live_plot=False)
            wall = time.perf_counter() - t
            acc = _accuracy(model, C.image_inputs(test[0], test[1], mode), test[2])
            val_acc = hist.val[hist.best_epoch]["val_acc"] if hist.best_epoch >= 0 else float("nan")
            accs.append(acc)
            rows.append([mode, seed, hist.epochs_run, f"{wall:.0f}", f"{val_acc:.3f}", f"{acc:.3f}"])
            runs.append({"mode": mode, "seed": seed, "epochs": hist.epochs_run, "train_wall_s": wall,
                         "val_acc": val_acc, "test_acc": acc})
            print(rows[-1], flush=True)
        summary[mode] = accs
    srows = [[m, f"{statistics.mean(a):.3f}", f"{statistics.pstdev(a):.3f}", f"{min(a):.3f}", f"{max(a):.3f}"]
             for m, a in summary.items()]
    params = sum(p.numel() for p in C.ImageClassifier(3, 10, width=int(s["resnet_width"])).parameters())
    body = "\n".join([
        "## RGB versus RGB-D", "",
        f"ResNet-18 layout, width {s['resnet_width']} ({params:,} parameters with 3 input channels), "
        f"{s['image_epochs']} epochs, batch 32, Adam 2e-3, random horizontal flips; the epoch with the best "
        f"validation accuracy is kept. Views: {len(train[2])} train ({views['train']} shapes per category), "
        f"{len(val[2])} validation, {len(test[2])} test ({args.test_per_category} held-out shapes per category), "
        f"{train[0].shape[-1]} x {train[0].shape[-2]} pixels, one random camera per shape. RGB-D adds the depth "
        f"map as a fourth channel (scaled by {C.DEPTH_SCALE}, background 0).", "",
        md_table(["mode", "seed", "epochs", "train wall s", "val acc (kept epoch)", "test acc"], rows), "",
        "## Test accuracy over the seeds", "",
        md_table(["mode", "mean", "std", "min", "max"], srows),
    ])
    note = (f"Rendering / loading the views took {data_s:.0f} s (not counted). Load average at the end: "
            f"{' / '.join(f'{v:.1f}' for v in os.getloadavg())}. {args.note}")
    data = {"n_train": len(train[2]), "n_val": len(val[2]), "n_test": len(test[2]), "epochs": int(s["image_epochs"]),
            "width": int(s["resnet_width"]), "image_size": int(train[0].shape[-1]), "seeds": args.seeds,
            "runs": runs,
            "summary": {m: {"mean": statistics.mean(a), "std": statistics.pstdev(a), "min": min(a), "max": max(a),
                            "accs": a} for m, a in summary.items()}}
    path = write_result("image_encoders", profile, body, notes=note, data=data)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
