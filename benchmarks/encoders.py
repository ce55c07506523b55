"""Chapter 02 benchmark: PointNet, PointNet++ and DGCNN classifiers on ShapeNet-lite, over training seeds.

Protocol 2 (``course_lib.experiments.protocol``):

1. **Choices on val.**  ``choose_epochs`` (a ``@selection_part``: reading the test split there raises)
   trains each encoder for each epoch budget of ``ch02.epoch_candidates`` (one selection seed, not a
   reporting seed) and keeps the budget with the best validation loss; ``train_on_val`` trains one
   reporting run and keeps its epoch with the best validation loss.  Both land in
   ``data["selections"]``.  ``--epochs-from-config`` skips the first choice (the ``ch02.train_*``
   epochs, recorded as not selected).
2. **Budgets.**  Every model's row carries its budget (steps, examples, seconds, parameters); the
   budgets are not equal (each model has its own epochs and batch size), and every claim says by how much.
3. **Seeds.**  Each model is trained with every seed of ``--seeds`` (at least 3 for a claim) and tested on
   held-out shapes (the test split, read only after every choice); the comparisons are claim records
   paired over the seeds (accuracy on the big test, and at the fewest and the most input points).
4. **Goals** as records (:data:`course_lib.experiments.encoders.GOALS`).

Writes ``results/encoders-<profile>-<machine>.md`` and the JSON twin ``results/encoders-<profile>.json``
that ``lectures/02_encoders.ipynb`` reads, and saves the first seed's weights
(:func:`course_lib.experiments.encoders.checkpoint_path`, keyed by data, architecture, the chosen epochs and
this protocol; the lecture and the lab train without a validation split, so they keep their own checkpoint).

    COURSE_PROFILE=laptop python benchmarks/encoders.py [--seeds 0 1 2] [--models pointnet dgcnn] [--no-save]

Cost (laptop profile, 2 idle cores, from the per-epoch times of the last protocol-1 run: PointNet ~4 s,
PointNet++ ~2.5 s, DGCNN ~12 s per epoch): choosing the epochs ~9 min (6+12, 20+40 and 8+16 epochs), three
seeds at the chosen budgets ~16 min (if the choices are the ``ch02.train_*`` epochs), evaluation ~1 min
per seed, data ~1 min the first time: about 30 minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_dataset_args, md_table, result_name, timeit, use_dataset_args, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import encoders as C  # noqa: E402
from course_lib.experiments.common import mean_sem  # noqa: E402
from course_lib.experiments.protocol import (  # noqa: E402
    MIN_SEEDS,
    claim_sentence,
    goal_sentence,
    selection_part,
    selection_record,
)

SELECTION_PARTS = ("choose_epochs", "train_on_val")
"""Protocol 2: the epoch budget of each encoder and the epoch each run keeps are chosen on val."""

LABELS = {"pointnet": "PointNet", "pointnet2": "PointNet++", "dgcnn": "DGCNN"}


def _load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "n/a"


@selection_part
def choose_epochs(models, train, val, *, profile: str, seed: int) -> tuple[dict[str, int], list[dict]]:
    """For each model, train once per epoch budget of ``ch02.epoch_candidates`` and keep the budget whose
    run reaches the lowest validation loss (the epoch budget is a choice, made on val)."""
    chosen, records = {}, []
    for name in models:
        scores = {}
        for epochs in C.epoch_candidates(name, profile):
            t = time.perf_counter()
            _, hist = C.train_classifier(name, train, val, profile=profile, seed=seed, epochs=epochs,
                                         progress=False, live_plot=False)
            scores[str(epochs)] = hist.best_metric
            print(f"choose epochs, {name}: {epochs} epochs -> best val loss {hist.best_metric:.4f} "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
        pick, rec = selection_record(f"epochs/{name}", scores, metric=f"best validation loss of a run of that many "
                                     f"epochs (selection seed {seed})", higher_is_better=False)
        chosen[name] = int(pick)
        records.append(rec)
    return chosen, records


@selection_part
def train_on_val(name, train, val, *, profile: str, seed: int, epochs: int, checkpoint):
    """One reporting run: train ``name`` on the training clouds and keep its epoch with the best validation loss."""
    return C.train_keep_best(name, train, val, profile=profile, seed=seed, epochs=epochs, checkpoint=checkpoint)


def _mean(xs) -> float:
    return mean_sem(list(xs))[0]


def _mean_se(xs) -> str:
    m, se = mean_sem(list(xs))
    return f"{m:.3f}" if se != se else f"{m:.3f} ± {se:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=list(C.MODELS), choices=C.MODELS)
    ap.add_argument("--no-save", action="store_true", help="do not save the first seed's checkpoints")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (>= 3 for claims)")
    ap.add_argument("--selection-seed", type=int, default=100, help="the seed of the epoch-budget runs on val")
    ap.add_argument("--epochs-from-config", action="store_true",
                    help="skip the choice of the epoch budgets on val: train the ch02.train_* epochs")
    ap.add_argument("--name", default="encoders", help="result file name (default: encoders)")
    ap.add_argument("--big-test", type=int, default=50,
                    help="also test on this many held-out shapes per category (the first n test seeds, a "
                         "superset of the profile's test split; 0 to skip)")
    ap.add_argument("--note", default="", help="a sentence on the machine's state during the run")
    add_dataset_args(ap)
    args = ap.parse_args()
    real = use_dataset_args(args)
    if real is not None and args.big_test:  # the big test draws ShapeNet-lite's test seeds beyond the split
        print(f"--dataset {real}: no big test (it reads ShapeNet-lite's test seeds); the test split is the dataset's")
        args.big_test = 0

    profile = config.get_profile()
    sizes = config.sizes(prefix="ch02.")
    load_start = _load()
    t0 = time.perf_counter()
    train = C.load_point_clouds("train")
    val = C.load_point_clouds("val")
    data_s = time.perf_counter() - t0
    configured = {name: int(sizes[f"train_{name}"]["epochs"]) for name in args.models}
    selections: list[dict] = []
    if args.epochs_from_config:
        epochs = dict(configured)
    else:
        t = time.perf_counter()
        epochs, recs = choose_epochs(args.models, train, val, profile=profile, seed=args.selection_seed)
        selections += recs
        print(f"epochs chosen on val: {epochs} ({time.perf_counter() - t:.0f} s)", flush=True)
    differs = {n: (epochs[n], configured[n]) for n in args.models if epochs[n] != configured[n]}
    if differs:
        print(f"NOTE: the epochs chosen on val differ from ch02.train_* (chosen, configured): {differs}; the "
              "lecture trains the configured ones", flush=True)

    # the test split is read only now, after every choice
    t0 = time.perf_counter()
    test = C.load_point_clouds("test")
    big = C.load_point_clouds("test", shapes_per_category=args.big_test) if args.big_test else None
    data_s += time.perf_counter() - t0
    print(f"data: train {tuple(train[0].shape)}, val {tuple(val[0].shape)}, test {tuple(test[0].shape)} "
          f"({data_s:.1f} s)", flush=True)

    n_train = int(sizes["n_points"])
    counts = [n for n in sizes["test_points"] if n <= test[0].shape[1]]
    sigmas = list(sizes["jitter_sigmas"])
    acc_key = "big_test_acc" if big is not None else "test_acc"
    runs: dict[str, list[dict]] = {name: [] for name in args.models}
    params, infer = {}, {}
    for seed in args.seeds:
        for name in args.models:
            ckpt = None
            if not args.no_save and seed == args.seeds[0]:
                ckpt = C.checkpoint_path(name, profile, protocol="best epoch by validation loss", epochs=epochs[name])
            model, hist, wall, kept, rec = train_on_val(name, train, val, profile=profile, seed=seed,
                                                        epochs=epochs[name], checkpoint=ckpt)
            selections.append(rec)
            r = {"seed": seed, "epochs": hist.epochs_run, "best_epoch": kept + 1, "train_wall_s": wall,
                 "fit_s": hist.wall_time, "val_loss": hist.val[kept]["val_loss"], "val_acc": hist.val[kept]["val_acc"],
                 "test_acc": C.evaluate_accuracy(model, *test, n_points=n_train),
                 "big_test_acc": C.evaluate_accuracy(model, *big, n_points=n_train) if big is not None else None,
                 "vs_points": [[n, a] for n, a in C.accuracy_vs_points(model, *test, counts).items()],
                 "vs_jitter": [[s, a] for s, a in C.accuracy_vs_jitter(model, *test, sigmas, n_points=n_train).items()],
                 "perm_error": C.permutation_error(model, test[0][:8, :n_train])}
            runs[name].append(r)
            if name not in params:
                params[name] = sum(p.numel() for p in model.parameters())
                batch = test[0][: int(sizes["batch_size"]), :n_train]
                with torch.no_grad():
                    infer[name] = timeit(lambda m=model, b=batch: m(b), repeat=3) * 1000
            print(f"{name} seed {seed}: epoch {kept + 1}/{hist.epochs_run} kept, test {r['test_acc']:.3f}, "
                  f"big test {r['big_test_acc']}, {hist.wall_time:.0f} s", flush=True)

    # summaries, budgets, claims, goals
    models, budgets = {}, {}
    for name, rs in runs.items():
        budgets[name] = C.classifier_budget(name, int(train[0].shape[0]), epochs[name], [r["fit_s"] for r in rs],
                                            params[name], profile)
        models[name] = {
            "params": params[name], "epochs": epochs[name], "epochs_configured": configured[name],
            "test_acc": _mean(r["test_acc"] for r in rs),
            "big_test_acc": _mean(r["big_test_acc"] for r in rs) if big is not None else float("nan"),
            "fit_s": _mean(r["fit_s"] for r in rs), "train_wall_s": _mean(r["train_wall_s"] for r in rs),
            "perm_error": max(r["perm_error"] for r in rs), "inference_ms": infer[name],
            "vs_points": [[n, _mean(r["vs_points"][i][1] for r in rs)] for i, n in enumerate(counts)],
            "vs_jitter": [[sg, _mean(r["vs_jitter"][i][1] for r in rs)] for i, sg in enumerate(sigmas)],
            "budget": {"architecture": dict(sizes[name]), "training": {**dict(sizes["train_" + name]),
                                                                       "epochs": epochs[name]},
                       **budgets[name]},
            "runs": rs}
    few, many = counts[0], counts[-1]
    metric = f"accuracy, {big[0].shape[0] if big is not None else test[0].shape[0]} held-out shapes"
    values = {metric: {n: [r[acc_key] for r in rs] for n, rs in runs.items()},
              f"accuracy at {few} points": {n: [r["vs_points"][0][1] for r in rs] for n, rs in runs.items()},
              f"accuracy at {many} points": {n: [r["vs_points"][-1][1] for r in rs] for n, rs in runs.items()}}
    specs = [("pointnet2_vs_pointnet", "pointnet2", "pointnet", metric,
              "PointNet++ classifies held-out full clouds more accurately than PointNet"),
             ("dgcnn_vs_pointnet", "dgcnn", "pointnet", metric,
              "DGCNN classifies held-out full clouds more accurately than PointNet"),
             ("dgcnn_vs_pointnet2", "dgcnn", "pointnet2", metric,
              "DGCNN classifies held-out full clouds more accurately than PointNet++"),
             ("pointnet_vs_pointnet2_fewest_points", "pointnet", "pointnet2", f"accuracy at {few} points",
              f"PointNet keeps more accuracy than PointNet++ with only {few} input points (trained at {n_train})"),
             ("pointnet_vs_dgcnn_fewest_points", "pointnet", "dgcnn", f"accuracy at {few} points",
              f"PointNet keeps more accuracy than DGCNN with only {few} input points (trained at {n_train})"),
             ("pointnet2_vs_dgcnn_most_points", "pointnet2", "dgcnn", f"accuracy at {many} points",
              f"PointNet++ (ball grouping) keeps more accuracy than DGCNN (kNN) with {many} input points "
              f"(trained at {n_train})")]
    claims = []
    if len(args.seeds) >= MIN_SEEDS:
        claims = C.seed_claims(values, specs, budgets, higher_is_better=True,
                               selected_on="none" if args.epochs_from_config else "val")
    else:
        print(f"{len(args.seeds)} seed(s) < {MIN_SEEDS}: no claim recorded", flush=True)
    goals = C.encoder_goals({n: {"accuracy": values[metric][n], "fit_s": [r["fit_s"] for r in rs],
                                 "perm_error": [r["perm_error"] for r in rs]} for n, rs in runs.items()}, claims)

    rows = [[name, m["params"], f"{m['epochs']} (config {m['epochs_configured']})", budgets[name]["steps"],
             budgets[name]["batch_size"], f"{m['fit_s']:.0f}", _mean_se(r["val_acc"] for r in runs[name]),
             _mean_se(r["test_acc"] for r in runs[name]),
             _mean_se(r["big_test_acc"] for r in runs[name]) if big is not None else "-",
             f"{m['perm_error']:.1e}", f"{m['inference_ms']:.0f}"] for name, m in models.items()]
    seed_rows = [[name, r["seed"], f"{r['best_epoch']}/{r['epochs']}", f"{r['fit_s']:.0f}", f"{r['val_loss']:.4f}",
                  f"{r['test_acc']:.3f}", "-" if r["big_test_acc"] is None else f"{r['big_test_acc']:.3f}"]
                 for name, rs in runs.items() for r in rs]
    sel = [s for s in selections if s["id"].startswith("epochs/")]
    body = ["## Protocol", "",
            (f"Epoch budgets chosen on val (best validation loss, selection seed {args.selection_seed}): "
             + "; ".join(f"{s['id'].split('/')[1]}: {s['chosen']} of {list(s['candidates'])}" for s in sel)
             if sel else "Epoch budgets: the `ch02.train_*` configuration (not selected, --epochs-from-config)."),
            f"Every run keeps its epoch with the best validation loss ({val[0].shape[0]} shapes). Seeds {args.seeds}; "
            "the test split is read after every choice.", "",
            "## Accuracy and time (mean ± standard error over the seeds)", "",
            f"Trained on {train[0].shape[0]} shapes ({n_train} random points per cloud per step, augmented: "
            f"rotation about y, scale 0.8-1.25, jitter 0.01); tested on {test[0].shape[0]} held-out shapes "
            f"at {n_train} points; big test: {0 if big is None else big[0].shape[0]} held-out shapes "
            f"({args.big_test} test seeds per category, the test split included). Steps and batch: the training "
            "budget (the budgets differ between models). Fit s: the training loop's clock, mean over the seeds. "
            "Permutation error: largest change of the logits under a full random permutation of the points (eval "
            f"mode), largest over the seeds. Inference: median time of one forward pass on a batch of "
            f"{int(sizes['batch_size'])} clouds.", "",
            md_table(["model", "parameters", "epochs", "steps", "batch", "fit s", "val acc (kept epoch)", "test acc",
                      "big test acc", "perm. error", "inference ms/batch"], rows), "",
            "## Runs", "",
            md_table(["model", "seed", "kept epoch", "fit s", "val loss", "test acc", "big test acc"], seed_rows), "",
            f"## Test accuracy versus the number of input points (trained at {n_train}; mean over the seeds)", "",
            md_table(["model"] + [str(n) for n in counts],
                     [[n] + [f"{a:.3f}" for _, a in m["vs_points"]] for n, m in models.items()]), "",
            "## Test accuracy versus Gaussian jitter (sigma, unit-sphere units; mean over the seeds)", "",
            md_table(["model"] + [str(s) for s in sigmas],
                     [[n] + [f"{a:.3f}" for _, a in m["vs_jitter"]] for n, m in models.items()]), ""]
    if claims:
        body += ["## Claims", "", *[f"- {claim_sentence(c)}" for c in claims], ""]
    body += ["## Goals", "", *[f"- {goal_sentence(g)}" for g in goals], "", "## Configurations", "",
             *[f"- {name}: architecture {dict(sizes[name])}, training {models[name]['budget']['training']}"
               for name in models]]
    data = {"n_points": n_train, "n_train": int(train[0].shape[0]), "n_val": int(val[0].shape[0]),
            "n_test": int(test[0].shape[0]), "n_big_test": 0 if big is None else int(big[0].shape[0]),
            "counts": counts, "sigmas": sigmas, "seeds": list(args.seeds), "epochs_chosen": epochs,
            "epochs_selected_on_val": not args.epochs_from_config, "models": models, "claims": claims,
            "goals": goals, "selections": selections}
    note = (f"Data generation / loading took {data_s:.0f} s (not counted in training time). "
            f"Load average (1/5/15 min) at the start: {load_start}; at the end: {_load()}. {args.note}")
    path = write_result(result_name(args.name, real), profile, "\n".join(body), notes=note, data=data)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
