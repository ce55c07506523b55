"""Chapter 02 benchmark: PointNet, PointNet++ and DGCNN on single-view partial clouds.

On full clouds of ShapeNet-lite the three encoders all reach 0.99-1.00 test accuracy
(``benchmarks/results/encoders-laptop.json``), so the chapter cannot show where they differ.  Here each
shape is seen from one random camera (its own, drawn from its seed), the depth map is back-projected
and ``ch02.partial_points`` points are drawn from the visible pixels
(:func:`course_lib.experiments.encoders.load_partial_clouds`): the back of every shape is missing.
Each encoder is trained on partial clouds of the training shapes with the recipe of chapter 02 (same
sizes, same augmentation, best epoch by validation loss on partial clouds of the validation shapes) and
tested on partial clouds of held-out shapes; the full-cloud accuracy of the same architecture (from
``results/encoders-<profile>.json``) is printed beside it.

    COURSE_PROFILE=laptop python benchmarks/encoders_partial.py [--models pointnet dgcnn] [--big-test 30]

Writes ``results/encoders_partial-<profile>-<machine>.md`` and ``results/encoders_partial-<profile>.json``
(read by ``lectures/02_encoders.ipynb``).  Cost (laptop, 2 cores): the renders of ~700 shapes at 96x96
once (~3 min, then cached), then about the training time of ``benchmarks/encoders.py`` (~5 min).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import md_table, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import encoders as C  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="*", default=list(C.MODELS), choices=C.MODELS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--big-test", type=int, default=30,
                    help="also test on this many held-out shapes per category (a superset of the test split; 0: skip)")
    ap.add_argument("--note", default="", help="a sentence on the machine's state during the run")
    args = ap.parse_args()

    profile = config.get_profile()
    sizes = config.sizes(prefix="ch02.")
    n = int(sizes["partial_points"])
    t0 = time.perf_counter()
    train = C.load_partial_clouds("train", profile=profile)
    val = C.load_partial_clouds("val", profile=profile)
    test = C.load_partial_clouds("test", profile=profile)
    big = C.load_partial_clouds("test", shapes_per_category=args.big_test, profile=profile) if args.big_test else None
    data_s = time.perf_counter() - t0
    vis = test[2].float()
    print(f"data: train {tuple(train[0].shape)}, test {tuple(test[0].shape)}, visible pixels per test view "
          f"{vis.min():.0f}-{vis.max():.0f} ({data_s:.0f} s)", flush=True)

    data: dict = {"n_points": n, "image_size": int(sizes["partial_image_size"]), "n_train": int(train[0].shape[0]),
                  "n_val": int(val[0].shape[0]), "n_test": int(test[0].shape[0]),
                  "n_big_test": 0 if big is None else int(big[0].shape[0]),
                  "visible_pixels": {"min": float(vis.min()), "median": float(vis.median()), "max": float(vis.max())},
                  "models": {}}
    rows = []
    for name in args.models:
        print(f"--- {name}", flush=True)
        ckpt = C.checkpoint_path(name, profile, protocol="best epoch by validation loss",
                                 input=f"single-view partial clouds, {n} points of a "
                                       f"{sizes['partial_image_size']}px depth map")
        t = time.perf_counter()
        model, hist = C.train_classifier(name, train[:2], val[:2], profile=profile, checkpoint=ckpt, retrain=True,
                                         seed=args.seed, progress=False, live_plot=False)
        wall = time.perf_counter() - t
        n_eval = min(n, int(sizes["n_points"]))
        acc = C.evaluate_accuracy(model, *test[:2], n_points=n_eval)
        big_acc = C.evaluate_accuracy(model, *big[:2], n_points=n_eval) if big is not None else float("nan")
        data["models"][name] = {"test_acc": acc, "big_test_acc": big_acc,
                                "epochs": hist.epochs_run, "train_wall_s": wall, "fit_s": hist.wall_time,
                                "full_acc": _full_acc(name)}
        rows.append([name, hist.epochs_run, f"{wall:.0f}", f"{acc:.3f}", f"{big_acc:.3f}",
                     "-" if data["models"][name]["full_acc"] is None else f"{data['models'][name]['full_acc']:.3f}"])
        print(rows[-1], flush=True)

    body = ["## Accuracy on single-view partial clouds", "",
            f"Each shape seen from its own random camera (azimuth in [0, 360), elevation as in the dataset's random "
            f"view), rendered at {sizes['partial_image_size']}x{sizes['partial_image_size']}, the depth map "
            f"back-projected, {n} of the visible pixels drawn at random (visible pixels per test view: "
            f"{vis.min():.0f} to {vis.max():.0f}, median {vis.median():.0f}). Trained on {train[0].shape[0]} shapes "
            f"with chapter 02's recipe (sizes `ch02.*`, augmentation, best epoch by validation loss on "
            f"{val[0].shape[0]} partial clouds); tested on {test[0].shape[0]} held-out shapes; big test: "
            f"{data['n_big_test']} held-out shapes (the test split included). Last column: the same architecture's "
            "full-cloud test accuracy, from `results/encoders-" + profile + ".json`.", "",
            md_table(["model", "epochs", "train wall s", "test acc (partial)", "big test acc (partial)",
                      "full-cloud accuracy (encoders benchmark)"], rows)]
    note = f"Data generation / loading took {data_s:.0f} s (not counted; load averages in the header). {args.note}"
    path = write_result("encoders_partial", profile, "\n".join(body), notes=note, data=data)
    print(f"wrote {path}")


def _full_acc(name: str) -> float | None:
    """The full-cloud test accuracy of ``name`` in the encoders benchmark's results file (None if missing)."""
    from course_lib import results

    return results.get("encoders", "models", name, "test_acc", profile=config.get_profile(), default=None)


if __name__ == "__main__":
    main()
