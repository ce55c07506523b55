"""Chapter 02 benchmark: PointNet, PointNet++ and DGCNN classifiers on ShapeNet-lite.

For each point encoder: train with the profile's sizes (``config.sizes(prefix="ch02.")``),
then measure test accuracy on held-out seeds at the training number of points, accuracy
versus the number of input points and versus jitter, the permutation error, the training
wall time and the inference time.  Writes ``results/encoders-<profile>-<machine>.md`` and the
JSON twin ``results/encoders-<profile>.json`` that ``lectures/02_encoders.ipynb`` reads (every
model's training budget is stored beside its accuracy: the budgets are not equal, the lecture says
so), and saves the trained weights (:func:`course_lib.experiments.encoders.checkpoint_path`, keyed by
data, architecture, training and this protocol: the best epoch by validation loss; the lecture and
the lab train without a validation split, so they keep their own checkpoint).

    COURSE_PROFILE=laptop python benchmarks/encoders.py [--models pointnet dgcnn] [--no-save]

Cost (laptop profile, 2 idle cores, from the last recorded run): PointNet ~0.5 min, PointNet++
~1.5 min, DGCNN ~4 min of training, plus data (~1 min the first time) and evaluation (~2 min).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import md_table, timeit, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import encoders as C  # noqa: E402


def _load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="*", default=list(C.MODELS), choices=C.MODELS)
    ap.add_argument("--no-save", action="store_true", help="do not save the checkpoints for the notebooks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="encoders", help="result file name (default: encoders)")
    ap.add_argument("--big-test", type=int, default=50,
                    help="also test on this many held-out shapes per category (the first n test seeds, a "
                         "superset of the profile's test split; 0 to skip)")
    ap.add_argument("--note", default="", help="a sentence on the machine's state during the run")
    args = ap.parse_args()

    profile = config.get_profile()
    sizes = config.sizes(prefix="ch02.")
    load_start = _load()
    t0 = time.perf_counter()
    train = C.load_point_clouds("train")
    val = C.load_point_clouds("val")
    test = C.load_point_clouds("test")
    big = C.load_point_clouds("test", shapes_per_category=args.big_test) if args.big_test else None
    data_s = time.perf_counter() - t0
    print(f"data: train {tuple(train[0].shape)}, val {tuple(val[0].shape)}, test {tuple(test[0].shape)} "
          f"({data_s:.1f} s)", flush=True)

    n_train = int(sizes["n_points"])
    counts = [n for n in sizes["test_points"] if n <= test[0].shape[1]]
    sigmas = list(sizes["jitter_sigmas"])
    rows, pts_rows, jit_rows, notes = [], [], [], []
    data: dict = {"n_points": n_train, "n_train": int(train[0].shape[0]), "n_val": int(val[0].shape[0]),
                  "n_test": int(test[0].shape[0]), "n_big_test": 0 if big is None else int(big[0].shape[0]),
                  "counts": counts, "sigmas": sigmas, "models": {}}
    for name in args.models:
        # its own checkpoint: selected by validation loss, so not the lecture's (which trains without val)
        ckpt = None if args.no_save else C.checkpoint_path(name, profile, protocol="best epoch by validation loss")
        print(f"--- {name}", flush=True)
        t = time.perf_counter()
        model, hist = C.train_classifier(name, train, val, profile=profile, checkpoint=ckpt, retrain=True,
                                         seed=args.seed, progress=False, live_plot=False)
        wall = time.perf_counter() - t
        acc = C.evaluate_accuracy(model, *test, n_points=n_train)
        big_acc = C.evaluate_accuracy(model, *big, n_points=n_train) if big is not None else float("nan")
        vs_pts = C.accuracy_vs_points(model, *test, counts)
        vs_jit = C.accuracy_vs_jitter(model, *test, sigmas, n_points=n_train)
        perm = C.permutation_error(model, test[0][:8, :n_train])
        batch = test[0][: int(sizes["batch_size"]), :n_train]
        with torch.no_grad():
            infer = timeit(lambda m=model, b=batch: m(b), repeat=3)
        params = sum(p.numel() for p in model.parameters())
        best_val = hist.val[hist.best_epoch]["val_acc"] if hist.val and hist.best_epoch >= 0 else float("nan")
        rows.append([name, params, hist.epochs_run, f"{wall:.0f}", f"{hist.wall_time:.0f}", f"{best_val:.3f}",
                     f"{acc:.3f}", f"{big_acc:.3f}", f"{perm:.1e}", f"{infer * 1000:.0f}"])
        pts_rows.append([name] + [f"{vs_pts[n]:.3f}" for n in counts])
        jit_rows.append([name] + [f"{vs_jit[s]:.3f}" for s in sigmas])
        notes.append(f"- {name}: architecture {dict(sizes[name])}, training {dict(sizes['train_' + name])}")
        data["models"][name] = {
            "params": params, "epochs": hist.epochs_run, "train_wall_s": wall, "fit_s": hist.wall_time,
            "val_acc": best_val, "test_acc": acc, "big_test_acc": big_acc, "perm_error": perm,
            "inference_ms": infer * 1000, "vs_points": [[n, vs_pts[n]] for n in counts],
            "vs_jitter": [[sg, vs_jit[sg]] for sg in sigmas],
            "budget": {"architecture": dict(sizes[name]), "training": dict(sizes["train_" + name])}}
        print(rows[-1], flush=True)

    body = ["## Accuracy and time", "",
            f"Trained on {train[0].shape[0]} shapes ({n_train} random points per cloud per step, augmented: "
            f"rotation about y, scale 0.8-1.25, jitter 0.01), best epoch by validation loss "
            f"({val[0].shape[0]} shapes); tested on {test[0].shape[0]} held-out shapes (other seeds) "
            f"at {n_train} points; big test: {0 if big is None else big[0].shape[0]} held-out shapes "
            f"({args.big_test} test seeds per category, the test split included), for a finer comparison "
            "(one error is 0.2% there, 1% on the test split). Wall time: the whole `train_classifier` call (fit + validation each "
            "epoch); fit time: the training loop's own clock. Permutation error: largest change of the logits "
            "under a random permutation of the points (eval mode). Inference: median time of one forward "
            f"pass on a batch of {int(sizes['batch_size'])} clouds.", "",
            md_table(["model", "parameters", "epochs", "train wall s", "fit s", "val acc (best epoch)", "test acc",
                      "big test acc", "perm. error", "inference ms/batch"], rows), "",
            "## Test accuracy versus the number of input points (trained at "
            f"{n_train})", "",
            md_table(["model"] + [str(n) for n in counts], pts_rows), "",
            "## Test accuracy versus Gaussian jitter (sigma, unit-sphere units)", "",
            md_table(["model"] + [str(s) for s in sigmas], jit_rows), "",
            "## Configurations", "", *notes]
    note = (f"Data generation / loading took {data_s:.0f} s (not counted in training time). "
            f"Load average (1/5/15 min) at the start: {load_start}; at the end: {_load()}. {args.note}")
    path = write_result(args.name, profile, "\n".join(body), notes=note, data=data)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
