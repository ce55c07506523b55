"""Chapter 02 benchmark: PointNet, PointNet++ and DGCNN on single-view partial clouds, over training seeds.

On full clouds of ShapeNet-lite the three encoders are all close to perfect
(``benchmarks/results/encoders-<profile>.json``), so the chapter cannot show where they differ.  Here each
shape is seen from one random camera (its own, drawn from its seed), the depth map is back-projected
and ``ch02.partial_points`` points are drawn from the visible pixels
(:func:`course_lib.experiments.encoders.load_partial_clouds`): the back of every shape is missing.
Each encoder is trained on partial clouds of the training shapes with the recipe of chapter 02 and
tested on partial clouds of held-out shapes; the full-cloud accuracy of the same architecture (from
``results/encoders-<profile>.json``) is printed beside it.

Protocol 2 (``course_lib.experiments.protocol``): the recipe's epoch budgets are the ones
``benchmarks/encoders.py`` chose on val (read from its protocol-2 results file, else ``ch02.train_*``,
said so); ``train_on_val`` (a ``@selection_part``) trains each run and keeps its epoch with the best
validation loss on partial clouds of the validation shapes (``data["selections"]``); the test split is read
after.  Every model is trained with every seed of ``--seeds``; the comparisons are claim records paired
over the seeds, each with both budgets; the goal is a record.

    COURSE_PROFILE=laptop python benchmarks/encoders_partial.py [--seeds 0 1 2] [--models pointnet dgcnn]

Writes ``results/encoders_partial-<profile>-<machine>.md`` and ``results/encoders_partial-<profile>.json``
(read by ``lectures/02_encoders.ipynb``).  Cost (laptop, 2 cores): the renders of ~800 shapes at 96x96
once (~3 min, then cached), then three times the training of ``benchmarks/encoders.py`` at its chosen
epochs (~5 min per seed): about 18 minutes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_dataset_args, md_table, result_name, use_dataset_args, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import encoders as C  # noqa: E402
from course_lib.experiments.common import mean_sem  # noqa: E402
from course_lib.experiments.protocol import MIN_SEEDS, claim_sentence, goal, goal_sentence, selection_part  # noqa: E402

SELECTION_PARTS = ("train_on_val",)
"""Protocol 2: each run keeps its epoch with the best validation loss (the epoch budgets come from
``benchmarks/encoders.py``, which chose them on val)."""


@selection_part
def train_on_val(name, train, val, *, profile: str, seed: int, epochs: int, checkpoint):
    """One run on partial clouds: train ``name`` and keep its epoch with the best validation loss."""
    return C.train_keep_best(name, train, val, profile=profile, seed=seed, epochs=epochs, checkpoint=checkpoint)


def _recipe_epochs(models, profile: str, sizes, real: str | None = None) -> tuple[dict[str, int], str]:
    """The epochs of chapter 02's recipe: those ``benchmarks/encoders.py`` chose on val (on the same dataset),
    else the configuration."""
    from course_lib import results

    r = results.load(result_name("encoders", real), profile)
    if r is not None and r.protocol >= 2 and r.data.get("epochs_selected_on_val"):
        chosen = r.data.get("epochs_chosen", {})
        if all(m in chosen for m in models):
            return {m: int(chosen[m]) for m in models}, "chosen on val by benchmarks/encoders.py"
    return {m: int(sizes[f"train_{m}"]["epochs"]) for m in models}, \
        "ch02.train_* (benchmarks/encoders.py has not chosen them on val in this profile yet)"


def _full_acc(name: str, real: str | None = None) -> float | None:
    """The full-cloud test accuracy of ``name`` in the encoders benchmark's results file on the same dataset
    (None if missing)."""
    from course_lib import results

    return results.get(result_name("encoders", real), "models", name, "test_acc", profile=config.get_profile(),
                       default=None)


def _mean(xs) -> float:
    return mean_sem(list(xs))[0]


def _mean_se(xs) -> str:
    m, se = mean_sem(list(xs))
    return f"{m:.3f}" if se != se else f"{m:.3f} ± {se:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=list(C.MODELS), choices=C.MODELS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (>= 3 for claims)")
    ap.add_argument("--big-test", type=int, default=30,
                    help="also test on this many held-out shapes per category (a superset of the test split; 0: skip)")
    ap.add_argument("--note", default="", help="a sentence on the machine's state during the run")
    add_dataset_args(ap)
    args = ap.parse_args()
    real = use_dataset_args(args)
    if real is not None and args.big_test:  # the big test draws ShapeNet-lite's test seeds beyond the split
        print(f"--dataset {real}: no big test (it reads ShapeNet-lite's test seeds); the test split is the dataset's")
        args.big_test = 0

    profile = config.get_profile()
    sizes = config.sizes(prefix="ch02.")
    n = int(sizes["partial_points"])
    epochs, epochs_from = _recipe_epochs(args.models, profile, sizes, real)
    t0 = time.perf_counter()
    train = C.load_partial_clouds("train", profile=profile)
    val = C.load_partial_clouds("val", profile=profile)
    test = C.load_partial_clouds("test", profile=profile)
    big = C.load_partial_clouds("test", shapes_per_category=args.big_test, profile=profile) if args.big_test else None
    data_s = time.perf_counter() - t0
    vis = test[2].float()
    print(f"data: train {tuple(train[0].shape)}, test {tuple(test[0].shape)}, visible pixels per test view "
          f"{vis.min():.0f}-{vis.max():.0f} ({data_s:.0f} s); epochs {epochs} ({epochs_from})", flush=True)

    n_eval = min(n, int(sizes["n_points"]))
    acc_key = "big_test_acc" if big is not None else "test_acc"
    runs: dict[str, list[dict]] = {name: [] for name in args.models}
    params, selections = {}, []
    for seed in args.seeds:
        for name in args.models:
            ckpt = C.checkpoint_path(name, profile, protocol="best epoch by validation loss", epochs=epochs[name],
                                     seed=seed, input=f"single-view partial clouds, {n} points of a "
                                                      f"{sizes['partial_image_size']}px depth map")
            # the models are trained on partial clouds: the (train, val) pairs of points and labels
            model, hist, wall, kept, rec = train_on_val(name, train[:2], val[:2], profile=profile, seed=seed,
                                                        epochs=epochs[name], checkpoint=ckpt)
            selections.append(rec)
            params.setdefault(name, sum(p.numel() for p in model.parameters()))
            r = {"seed": seed, "epochs": hist.epochs_run, "best_epoch": kept + 1, "train_wall_s": wall,
                 "fit_s": hist.wall_time, "val_loss": hist.val[kept]["val_loss"],
                 "test_acc": C.evaluate_accuracy(model, *test[:2], n_points=n_eval),
                 "big_test_acc": C.evaluate_accuracy(model, *big[:2], n_points=n_eval) if big is not None else None}
            runs[name].append(r)
            print(f"{name} seed {seed}: epoch {kept + 1}/{hist.epochs_run} kept, test {r['test_acc']:.3f}, "
                  f"big test {r['big_test_acc']}, {hist.wall_time:.0f} s", flush=True)

    budgets = {name: C.classifier_budget(name, int(train[0].shape[0]), epochs[name], [r["fit_s"] for r in rs],
                                         params[name], profile) for name, rs in runs.items()}
    models = {name: {"test_acc": _mean(r["test_acc"] for r in rs),
                     "big_test_acc": _mean(r["big_test_acc"] for r in rs) if big is not None else float("nan"),
                     "epochs": epochs[name], "train_wall_s": _mean(r["train_wall_s"] for r in rs),
                     "fit_s": _mean(r["fit_s"] for r in rs), "full_acc": _full_acc(name, real), "params": params[name],
                     "budget": budgets[name], "runs": rs} for name, rs in runs.items()}
    metric = f"accuracy on partial clouds, {big[0].shape[0] if big is not None else test[0].shape[0]} held-out shapes"
    values = {metric: {name: [r[acc_key] for r in rs] for name, rs in runs.items()}}
    specs = [("partial_pointnet2_vs_pointnet", "pointnet2", "pointnet", metric,
              "PointNet++ classifies single-view partial clouds more accurately than PointNet"),
             ("partial_dgcnn_vs_pointnet", "dgcnn", "pointnet", metric,
              "DGCNN classifies single-view partial clouds more accurately than PointNet"),
             ("partial_dgcnn_vs_pointnet2", "dgcnn", "pointnet2", metric,
              "DGCNN classifies single-view partial clouds more accurately than PointNet++")]
    claims = []
    if len(args.seeds) >= MIN_SEEDS:
        claims = C.seed_claims(values, specs, budgets, higher_is_better=True,
                               selected_on="val" if epochs_from.startswith("chosen") else "none")
    else:
        print(f"{len(args.seeds)} seed(s) < {MIN_SEEDS}: no claim recorded", flush=True)
    separated = sum(c["verdict"] != "not separated" for c in claims)
    goals = [goal("partial_separates_encoders", f"partial clouds separate at least one pair of encoders (pairs "
                  f"whose difference exceeds two standard errors, of {len(claims)} compared over "
                  f"{len(args.seeds)} seeds)", separated, 1, comparison=">=")] if claims else []

    rows = [[name, f"{m['epochs']}", budgets[name]["steps"], f"{m['fit_s']:.0f}",
             _mean_se(r["test_acc"] for r in runs[name]),
             _mean_se(r["big_test_acc"] for r in runs[name]) if big is not None else "-",
             "-" if m["full_acc"] is None else f"{m['full_acc']:.3f}"] for name, m in models.items()]
    body = ["## Accuracy on single-view partial clouds (mean ± standard error over the seeds)", "",
            f"Each shape seen from its own random camera (azimuth in [0, 360), elevation as in the dataset's random "
            f"view), rendered at {sizes['partial_image_size']}x{sizes['partial_image_size']}, the depth map "
            f"back-projected, {n} of the visible pixels drawn at random (visible pixels per test view: "
            f"{vis.min():.0f} to {vis.max():.0f}, median {vis.median():.0f}). Trained on {train[0].shape[0]} shapes "
            f"with chapter 02's recipe (sizes `ch02.*`, augmentation; epochs: {epochs_from}), each run keeping its "
            f"epoch with the best validation loss on {val[0].shape[0]} partial clouds; seeds {args.seeds}; tested "
            f"on {test[0].shape[0]} held-out shapes; big test: {data_n_big(big)} held-out shapes (the test split "
            "included). Last column: the same architecture's full-cloud test accuracy (mean over its seeds), from "
            f"`results/{result_name('encoders', real)}-{profile}.json`.", "",
            md_table(["model", "epochs", "steps", "fit s", "test acc (partial)", "big test acc (partial)",
                      "full-cloud accuracy (encoders benchmark)"], rows), ""]
    if claims:
        body += ["## Claims", "", *[f"- {claim_sentence(c)}" for c in claims], ""]
    if goals:
        body += ["## Goals", "", *[f"- {goal_sentence(g)}" for g in goals], ""]
    data = {"n_points": n, "image_size": int(sizes["partial_image_size"]), "n_train": int(train[0].shape[0]),
            "n_val": int(val[0].shape[0]), "n_test": int(test[0].shape[0]), "n_big_test": data_n_big(big),
            "visible_pixels": {"min": float(vis.min()), "median": float(vis.median()), "max": float(vis.max())},
            "seeds": list(args.seeds), "epochs": epochs, "epochs_from": epochs_from, "models": models,
            "claims": claims, "goals": goals, "selections": selections}
    note = f"Data generation / loading took {data_s:.0f} s (not counted; load averages in the header). {args.note}"
    if real is not None:
        data["dataset"] = real
        note = f"Dataset: {real} (real meshes, its own train/val/test split). " + note
    path = write_result(result_name("encoders_partial", real), profile, "\n".join(body), notes=note, data=data)
    print(f"wrote {path}")


def data_n_big(big) -> int:
    return 0 if big is None else int(big[0].shape[0])


if __name__ == "__main__":
    main()
