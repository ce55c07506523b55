"""Chapter 10 (gradient fields, ShapeGF): auto-encoding, analytic-field oracle, upsampling, generation.

Run from the repository root, alone on the machine:

    COURSE_PROFILE=laptop python benchmarks/gradient_fields.py            # the whole chapter
    COURSE_PROFILE=ci python benchmarks/gradient_fields.py               # pipeline check (minutes; numbers meaningless)
    COURSE_PROFILE=laptop python benchmarks/gradient_fields.py --skip upsampling generation   # parts only

Writes ``benchmarks/results/gradient_fields-<profile>-<machine>.md`` and
``benchmarks/results/gradient_fields-<profile>.json`` (read by ``lectures/10_gradient_fields.ipynb``).
Models are checkpointed under ``config.cache_dir()/checkpoints`` (the lecture loads the same
files), so a second run only evaluates.

Protocol 2 (``course_lib.experiments.protocol``): the three choices of the chapter (learning-rate
schedule, how the noise levels are drawn, the score network's width) are made on the ``val``
split by the selection parts (``SELECTION_PARTS``, run inside ``no_test_reads``) and recorded in
``data["selections"]``; the main model is trained with what they chose, and ``test`` is read only
after, to report.  Every row of a comparison table carries its budget (optimiser steps, shapes
seen, training seconds, parameters); ShapeGF and the three baselines get the same steps.  The
comparisons are claim records (``data["claims"]``, paired over the test shapes), the chapter's
goals goal records (``data["goals"]``).

Parts, in order, with the laptop profile's sizes (``ch10.*`` in ``course_lib/config.py``):

1. ``analytic``: annealed Langevin with the exact field of each held-out input cloud (a perfect
   network), CD / EMD against an independent sampling; goal: CD within 2x the oracle.
2. ``schedule`` (selection, val): ShapeGF trained ``ch10.schedule_epochs`` epochs (laptop 100) with a constant
   learning rate and with the course's cosine decay to 1/100 (the official code: constant for half the run,
   then linear to 1/100; not a candidate here); the lower validation CD is kept.
3. ``levels`` (selection, val): the same budget with each batch's noise levels drawn independently (the
   official code) and dealt evenly over the batch ("stratified"), seeds 0 and 1 each; the lower mean
   validation CD over the two seeds is kept (the stratified seed-0 run is the schedule part's, loaded).
4. ``width`` (selection, val): the score networks of ``ch10.width_candidates`` (laptop 8 blocks of 128 and
   4 of 64) at the same budget with the chosen schedule and levels; the lower validation CD is kept.
5. ``autoencoding``: ShapeGF (``ch10.epochs`` epochs, laptop 240 = 1,920 steps of 16 shapes, the chosen
   schedule, levels and width; the course's parametrisation: log sigma in, sigma-scaled output, NCSN weight;
   ``--ablation`` adds the official parametrisation) against PointSetGen and AtlasNet sphere / 25 patches,
   each trained ``ch10.baseline_epochs`` (= ``ch10.epochs``) epochs of the same batches, i.e. the same
   optimiser steps, with the Adam recipe of chapters 05-06 (1e-3, decayed the same way; not tuned); same
   data (3 categories x 40 training shapes, 2,048 input points), same PointNet encoder; one table with the
   oracle and every row's budget; CD x1e4 and EMD x1e2 (exact) at 1,024 points; claims: ShapeGF against
   each baseline on CD and on EMD, paired over the 30 test shapes; goal: ShapeGF's CD within 1.5x the oracle.
6. ``upsampling``: a second ShapeGF trained on 512 points per shape; both sampled from
   2,048 ... 128 runtime input points on a larger test split of its own (``ch10.upsample_test_per_category``,
   laptop 40 per category = 120 shapes, the chapter's 30 test shapes among them), with the paired change
   between neighbouring runtime sizes (the same shapes and prior draws in every cell), next to the seed's
   table in the same terms; goals: train 512 within 20% of the main row, the strict "mean falls at every
   step" and the seed's shape (:func:`course_lib.experiments.gradient_fields.upsampling_in_seed_shape`: paired
   falls up to the size where every seed row stops falling, 512, and no step rises).
7. ``generation``: latent GAN on the training codes, as many samples as test shapes,
   MMD-CD / COV-CD / 1-NNA-CD against the test shapes, next to training shapes plus noise (the
   memorising baseline); claims: the generator against the memorising baseline on each metric, paired
   over the test shapes (:func:`course_lib.experiments.gradient_fields.generation_per_reference`).
8. ``robustness``: reconstruction from 64 / 32 input points and from a half-occluded cloud; the
   denoising loss per level on the test shapes with the analytic and zero fields beside it; every model's
   reconstruction from inputs with Gaussian noise (``ch10.noise_levels``) and of shapes turned about the up
   axis (``ch10.rotation_angles``), with claims on the rise of CD from the clean input to the harshest setting,
   ShapeGF against each baseline paired over the test shapes
   (:func:`course_lib.experiments.gradient_fields.robustness_claims`); seconds per shape of each model.

Cost: every part's wall time is in the result file's "Time" table.  The last protocol-1 laptop run
(2 idle cores, every model retrained) took 2,441 s, of which the two selection parts 886 s, the
baselines 121 s at 40 epochs and the upsampling sampling on 120 shapes 587 s.  Protocol 2 trains the
baselines 6x longer (about 720 s for the three), one more small trial (width 64 x 4, about 70 s with its
scoring) and makes the new validation and test shapes once (their cache): about 3,200 s with ``--retrain``.
With the checkpoints of the protocol-1 run in the cache (the training data and every ShapeGF run's settings
are unchanged, so they load) only the baselines and the width trial train: about 1,700 s.  If a val choice
differs from ``ch10.*``, the main and train-512 models are trained for it (up to about 660 s more).
``--ablation`` adds one more ShapeGF training, not timed here.
The per-level loss, noisy-input and timing additions of the robustness part (issue #37 item 6) sample
ShapeGF on the test shapes once per ``ch10.noise_levels`` and ``ch10.rotation_angles`` entry, plus once
for 0 degrees and twice for the timing; not yet timed
in the laptop profile (their seconds go to the "Time" table).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import add_dataset_args, md_table, result_name, use_dataset_args, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import gradient_fields as ex  # noqa: E402
from course_lib.experiments.protocol import (  # noqa: E402
    budget,
    claim,
    claim_sentence,
    goal,
    goal_sentence,
    selection_part,
    selection_record,
)

PARTS = ("analytic", "schedule", "levels", "width", "autoencoding", "upsampling", "generation", "robustness")
SELECTION_PARTS = ("select_schedule", "select_levels", "select_width")
"""The parts that make the chapter's choices: on ``val`` only (``no_test_reads``), before anything else reads test."""

MEMORISING = "training shapes + noise 0.02"
"""The memorising generation baseline (training clouds plus Gaussian noise of std 0.02)."""
_BUDGET_COLS = ["steps", "shapes seen", "train s", "params"]


def _rows_to_data(rows):
    return {r["model"]: {k: list(v) for k, v in r.items() if k != "model"} for r in rows}


def _budget_cells(b: dict[str, Any] | None) -> list[Any]:
    if b is None:
        return ["-"] * len(_BUDGET_COLS)
    return ["-" if b.get(k) is None else b[k] for k in ("steps", "examples", "seconds", "params")]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def _width_name(width) -> str:
    return f"{int(width[0])}x{int(width[1])}"


def _incumbent_first(candidates, incumbent: str) -> list[str]:
    """The candidates with the profile's current value first, so that a tie keeps it (selection_record keeps the
    first of equal scores)."""
    return sorted(candidates, key=lambda c: c != incumbent)


def _trial_name(sz, *, schedule: str, levels: str, seed: int, width) -> str:
    """The checkpoint name of a selection trial (the names of the protocol-1 runs are kept, so their files load)."""
    default_width = (int(sz["hidden"]), int(sz["n_blocks"]))
    if tuple(int(v) for v in width) != default_width:
        return f"ch10_shapegf_width_{_width_name(width)}_{levels}_s{seed}"
    if (levels, seed) == (sz["level_sampling"], int(sz["seed"])):
        return f"ch10_shapegf_schedule_{schedule}"
    return f"ch10_shapegf_levels_{levels}_s{seed}"


def _trial(train, val, sz, profile, retrain, *, schedule: str, levels: str, seed: int, width) -> dict[str, Any]:
    """One selection trial: ShapeGF at ``ch10.schedule_epochs`` epochs, scored on the validation shapes."""
    n_out = int(val["target_points"].shape[1])
    m, h = ex.train_shapegf(train, profile=profile, epochs=int(sz["schedule_epochs"]), schedule=schedule,
                            levels=levels, seed=seed, hidden=int(width[0]), n_blocks=int(width[1]),
                            retrain=retrain, live_plot=False,
                            name=_trial_name(sz, schedule=schedule, levels=levels, seed=seed, width=width))
    r = ex.ae_metrics(ex.reconstruct(m, val["points"], n_out, profile=profile), val["target_points"])
    orc = float(ex.ae_metrics(val["oracle_points"], val["target_points"], emd=False)["CD x1e4"].mean())
    cd, emd = float(r["CD x1e4"].mean()), float(r["EMD x1e2"].mean())
    out = {"CD x1e4": cd, "EMD x1e2": emd, "ratio to oracle": cd / orc, "train": h.summary(),
           "budget": ex.training_budget(m, h, len(train["points"]), int(sz["batch_size"]))}
    print(f"  {schedule} / {levels} / seed {seed} / {_width_name(width)}: val CD x1e4 {cd:.4g} "
          f"({cd / orc:.3g}x the val oracle), EMD x1e2 {emd:.4g}", flush=True)
    del m
    return out


@selection_part
def select_schedule(train, val, sz, profile, retrain, *, levels: str, width) -> dict[str, Any]:
    """The learning-rate schedule (``ch10.lr_schedule``): constant against cosine decay, lower val CD kept."""
    order = _incumbent_first(("cosine", "constant"), str(sz["lr_schedule"]))
    runs = {sched: _trial(train, val, sz, profile, retrain, schedule=sched, levels=levels, seed=int(sz["seed"]),
                          width=width) for sched in order}
    chosen, rec = selection_record("ch10.lr_schedule", {k: v["CD x1e4"] for k, v in runs.items()},
                                   metric="val CD x1e4", higher_is_better=False)
    return {"chosen": chosen, "record": rec, "runs": runs, "epochs": int(sz["schedule_epochs"])}


@selection_part
def select_levels(train, val, sz, profile, retrain, *, schedule: str, width) -> dict[str, Any]:
    """How each batch's noise levels are drawn (``ch10.level_sampling``): lower mean val CD over two seeds kept."""
    seeds = (int(sz["seed"]), int(sz["seed"]) + 1)
    runs = {how: {str(sd): _trial(train, val, sz, profile, retrain, schedule=schedule, levels=how, seed=sd,
                                  width=width) for sd in seeds}
            for how in _incumbent_first(("stratified", "uniform"), str(sz["level_sampling"]))}
    scores = {how: sum(r["CD x1e4"] for r in by_seed.values()) / len(by_seed) for how, by_seed in runs.items()}
    chosen, rec = selection_record("ch10.level_sampling", scores, metric=f"val CD x1e4, mean of seeds {seeds}",
                                   higher_is_better=False)
    return {"chosen": chosen, "record": rec, "runs": runs, "epochs": int(sz["schedule_epochs"])}


@selection_part
def select_width(train, val, sz, profile, retrain, *, schedule: str, levels: str) -> dict[str, Any]:
    """The score network's width and depth (``ch10.hidden`` x ``ch10.n_blocks``): lower val CD kept."""
    default = (int(sz["hidden"]), int(sz["n_blocks"]))
    widths = [default] + [w for w in ((int(a), int(b)) for a, b in sz["width_candidates"]) if w != default]
    cands = {_width_name(w): w for w in widths}
    runs = {name: _trial(train, val, sz, profile, retrain, schedule=schedule, levels=levels, seed=int(sz["seed"]),
                         width=w) for name, w in cands.items()}
    chosen, rec = selection_record("ch10.width", {k: v["CD x1e4"] for k, v in runs.items()},
                                   metric="val CD x1e4 (hidden x blocks)", higher_is_better=False)
    return {"chosen": chosen, "width": cands[chosen], "record": rec, "runs": runs,
            "epochs": int(sz["schedule_epochs"])}


def _selection_md(title: str, res: dict[str, Any], flat: list[tuple[list[Any], dict[str, Any]]],
                  first_cols: list[str]) -> list[str]:
    rows = [lead + [r["CD x1e4"], r["EMD x1e2"], r["ratio to oracle"], *_budget_cells(r["budget"])]
            for lead, r in flat]
    return [f"## Selection on val: {title} ({res['epochs']} epochs each)", "",
            md_table(first_cols + ["val CD x1e4", "val EMD x1e2", "CD / val oracle", *_BUDGET_COLS], rows), "",
            f"Chosen: **{res['chosen']}** (record `{res['record']['id']}`).", ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip", nargs="*", default=(), choices=PARTS)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--ablation", action="store_true",
                    help="also train ShapeGF with the official parametrisation (raw sigma in, displacement out, "
                         "weight 1/(2 sigma)) and add its row to the auto-encoding table (about 4 more minutes)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--note", default="")
    add_dataset_args(ap)
    args = ap.parse_args()
    real = use_dataset_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    profile = config.get_profile()
    sz = dict(config.sizes(profile, prefix="ch10."))
    t_all = time.perf_counter()
    seconds: dict[str, float] = {}
    goals: list[dict[str, Any]] = []
    claims: list[dict[str, Any]] = []
    selections: list[dict[str, Any]] = []
    budgets: dict[str, Any] = {}
    data: dict = {"sizes": {k: (list(v) if isinstance(v, tuple) else v) for k, v in sz.items()},
                  "convention": ex.CONVENTION, "seconds": seconds, "goals": goals, "claims": claims,
                  "selections": selections, "budgets": budgets}
    body: list[str] = [f"Convention: {ex.CONVENTION}.", ""]
    bs = int(sz["batch_size"])

    # --- choices, on val only --------------------------------------------------------------
    t0 = time.perf_counter()
    train = ex.load_data("train", profile=profile)
    val = ex.load_data("val", profile=profile)
    seconds["data (train, val)"] = time.perf_counter() - t0
    n_train, n_val = len(train["points"]), len(val["points"])
    default_width = (int(sz["hidden"]), int(sz["n_blocks"]))
    choice = {"schedule": str(sz["lr_schedule"]), "levels": str(sz["level_sampling"]), "width": default_width}
    if "schedule" not in args.skip:
        t0 = time.perf_counter()
        res = select_schedule(train, val, sz, profile, args.retrain, levels=choice["levels"], width=choice["width"])
        seconds["schedule (selection)"] = time.perf_counter() - t0
        choice["schedule"] = res["chosen"]
        selections.append(res["record"])
        data["schedule"] = {"epochs": res["epochs"], "split": "val", "chosen": res["chosen"], **res["runs"]}
        body += _selection_md("learning-rate schedule (cosine decay to 1/100 or constant)", res,
                              [([k], r) for k, r in res["runs"].items()], ["schedule"])
    if "levels" not in args.skip:
        t0 = time.perf_counter()
        res = select_levels(train, val, sz, profile, args.retrain, schedule=choice["schedule"], width=choice["width"])
        seconds["levels (selection)"] = time.perf_counter() - t0
        choice["levels"] = res["chosen"]
        selections.append(res["record"])
        data["levels"] = {"epochs": res["epochs"], "split": "val", "chosen": res["chosen"], **res["runs"]}
        body += _selection_md(f"noise levels per batch (independent draws, as the official code, or dealt evenly; "
                              f"{choice['schedule']} rate; two seeds each)", res,
                              [([how, sd], r) for how, by in res["runs"].items() for sd, r in by.items()],
                              ["levels", "seed"])
    if "width" not in args.skip:
        t0 = time.perf_counter()
        res = select_width(train, val, sz, profile, args.retrain, schedule=choice["schedule"], levels=choice["levels"])
        seconds["width (selection)"] = time.perf_counter() - t0
        choice["width"] = res["width"]
        selections.append(res["record"])
        data["width"] = {"epochs": res["epochs"], "split": "val", "chosen": res["chosen"], **res["runs"]}
        body += _selection_md(f"score network, hidden x blocks ({choice['schedule']} rate, {choice['levels']} levels)",
                              res, [([k], r) for k, r in res["runs"].items()], ["hidden x blocks"])
    del val
    data["choice"] = {"schedule": choice["schedule"], "levels": choice["levels"], "hidden": choice["width"][0],
                      "n_blocks": choice["width"][1]}
    defaults = {"schedule": str(sz["lr_schedule"]), "levels": str(sz["level_sampling"]), "hidden": default_width[0],
                "n_blocks": default_width[1]}
    data["config_matches_choice"] = data["choice"] == defaults
    notes = []
    if not data["config_matches_choice"]:
        differ = {k: (defaults[k], v) for k, v in data["choice"].items() if defaults[k] != v}
        notes.append(f"The val choice differs from course_lib/config.py's ch10.* ({differ}, config -> chosen): the "
                     "benchmark's main model uses the choice; set config to it so that the lecture and chapter 11 "
                     "load the same model.")
        print("WARNING: " + notes[-1], flush=True)
    body += [f"Main model's choices (made on val): {data['choice']}; config agrees: {data['config_matches_choice']}.",
             ""]
    shapegf_kw = {"schedule": choice["schedule"], "levels": choice["levels"], "hidden": choice["width"][0],
                  "n_blocks": choice["width"][1]}

    # --- reporting, on test --------------------------------------------------------------------
    t0 = time.perf_counter()
    test = ex.load_data("test", profile=profile)
    seconds["data (test)"] = time.perf_counter() - t0
    n_out = int(test["target_points"].shape[1])
    target, oracle = test["target_points"], test["oracle_points"]
    oracle_m = ex.ae_metrics(oracle, target)
    oracle_cd, oracle_emd = float(oracle_m["CD x1e4"].mean()), float(oracle_m["EMD x1e2"].mean())
    body += [f"Data: {', '.join(train['categories'])}; {n_train} training, {n_val} validation and "
             f"{len(target)} test shapes; {train['points'].shape[1]} input points (stream 0), {n_out} target points "
             "(stream 1), oracle = stream 2 against stream 1.", ""]

    if "analytic" not in args.skip:
        t0 = time.perf_counter()
        pred = ex.analytic_oracle(test["points"], n_out, steps_per_level=10)
        m = ex.ae_metrics(pred, target)
        cd, emd = float(m["CD x1e4"].mean()), float(m["EMD x1e2"].mean())
        seconds["analytic"] = time.perf_counter() - t0
        data["analytic"] = {"CD x1e4": cd, "EMD x1e2": emd, "oracle CD x1e4": oracle_cd, "oracle EMD x1e2": oracle_emd}
        goals.append(goal("analytic_cd_within_2x_oracle",
                          "CD of annealed Langevin with the analytic field of the input cloud / oracle CD (test)",
                          cd / oracle_cd, 2.0, comparison="<="))
        body += ["## Annealed Langevin with the analytic field of the held-out input cloud", "",
                 md_table(["", "CD x1e4", "EMD x1e2", *_BUDGET_COLS],
                          [["analytic field (10 levels x 10 steps)", cd, emd, *_budget_cells(None)],
                           ["oracle", oracle_cd, oracle_emd, *_budget_cells(None)]]),
                 "", f"CD ratio to the oracle: {cd / oracle_cd:.3g} (goal <= 2).", ""]

    model = None
    if "autoencoding" not in args.skip or "upsampling" not in args.skip or "generation" not in args.skip \
            or "robustness" not in args.skip:
        t0 = time.perf_counter()
        model, hist = ex.train_shapegf(train, profile=profile, retrain=args.retrain, live_plot=False, **shapegf_kw)
        seconds["train ShapeGF"] = time.perf_counter() - t0
        budgets["ShapeGF"] = ex.training_budget(model, hist, n_train, bs)

    if "autoencoding" not in args.skip:
        t0 = time.perf_counter()
        preds = {"ShapeGF": ex.reconstruct(model, test["points"], n_out, profile=profile)}
        seconds["sample ShapeGF"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        bl_hist: dict[str, Any] = {}
        baselines = ex.train_baselines(train, profile=profile, retrain=args.retrain, histories=bl_hist)
        seconds["train baselines"] = time.perf_counter() - t0
        for name, bl in baselines.items():
            budgets[name] = ex.training_budget(bl, bl_hist[name], n_train, bs)
            t0 = time.perf_counter()
            preds[name] = ex.predict_baseline(bl, test["points"], n_out)
            seconds[f"sample {name}"] = time.perf_counter() - t0
        if args.ablation:
            t0 = time.perf_counter()
            off, off_h = ex.train_shapegf(train, profile=profile, retrain=args.retrain, live_plot=False, official=True,
                                          name="ch10_shapegf_official", **shapegf_kw)
            name = "ShapeGF, official parametrisation"
            preds[name] = ex.reconstruct(off, test["points"], n_out, profile=profile)
            budgets[name] = ex.training_budget(off, off_h, n_train, bs)
            seconds["ablation (official parametrisation)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows, per = ex.autoencoding_table(preds, target, oracle)
        seconds["AE metrics"] = time.perf_counter() - t0
        data["autoencoding"] = _rows_to_data(rows)
        data["autoencoding_per_shape"] = {k: {m: [float(x) for x in v.tolist()] for m, v in d.items()}
                                          for k, d in per.items()}  # paired rows for benchmarks/retrieval.py
        data["autoencoding_shapes"] = [[str(c), int(sd)] for c, sd in zip(test["category"], test["seed"].tolist())]
        means = {k: {m: float(v.mean()) for m, v in d.items()} for k, d in per.items()}
        data["autoencoding_ratio_to_oracle"] = {k: means[k]["CD x1e4"] / oracle_cd for k in means}
        goals.append(goal("shapegf_cd_within_1p5x_oracle", "ShapeGF's auto-encoding CD / oracle CD (test)",
                          means["ShapeGF"]["CD x1e4"] / oracle_cd, 1.5, comparison="<="))
        for name in baselines:
            for metric, short in (("CD x1e4", "cd"), ("EMD x1e2", "emd")):
                claims.append(claim(
                    f"ae_{short}_vs_{_slug(name)}",
                    f"ShapeGF reconstructs the held-out shapes closer than {name} ({metric.split()[0]})",
                    a="ShapeGF", b=name, metric=metric, values_a=per["ShapeGF"][metric], values_b=per[name][metric],
                    higher_is_better=False, unit="shapes",
                    budget={"ShapeGF": budgets["ShapeGF"], name: budgets[name]}, selected_on="val"))
        fmt = lambda ms: f"{ms[0]:.3g} ± {ms[1]:.2g}"  # noqa: E731
        body += ["## Auto-encoding (held-out test shapes; mean ± standard error over shapes; budget of each row: "
                 "optimiser steps, shapes seen, training seconds on this machine, trainable parameters)", "",
                 md_table(["model", "CD x1e4", "EMD x1e2", "CD / oracle", *_BUDGET_COLS],
                          [[r["model"], fmt(r["CD x1e4"]), fmt(r["EMD x1e2"]), r["CD x1e4"][0] / oracle_cd,
                            *_budget_cells(budgets.get(r["model"]))] for r in rows]), "",
                 "ShapeGF CD / oracle CD: " f"{means['ShapeGF']['CD x1e4'] / oracle_cd:.3g} (goal <= 1.5).", ""]

    if "upsampling" not in args.skip:
        t0 = time.perf_counter()
        models, up_budget = {}, {}
        for n_tr in sz["upsample_train"]:
            n_tr = int(n_tr)
            if n_tr >= train["points"].shape[1]:
                models[n_tr] = model
                up_budget[n_tr] = budgets["ShapeGF"]
            else:
                models[n_tr], h_up = ex.train_shapegf(train, n_train_points=n_tr, profile=profile,
                                                      retrain=args.retrain, live_plot=False, **shapegf_kw)
                up_budget[n_tr] = ex.training_budget(models[n_tr], h_up, n_train, bs)
                budgets[f"ShapeGF, train {n_tr} points"] = up_budget[n_tr]
        seconds["train upsampling models"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        # its own, larger test split: the chapter's test seeds are a per-category prefix of it
        per_up = int(sz.get("upsample_test_per_category", sz["test_per_category"]))
        up = test if per_up <= int(sz["test_per_category"]) else ex.load_data("test", per_category=per_up,
                                                                              profile=profile)
        k = min(int(sz["upsample_shapes"]), len(up["target_points"]))
        res = ex.upsampling_table(models, up["points"][:k], up["target_points"][:k],
                                  [int(r) for r in sz["upsample_runtime"]], profile=profile)
        seconds["upsampling sampling"] = time.perf_counter() - t0
        dsm_points = {n_tr: min(n_tr, int(train["target_points"].shape[1])) for n_tr in models}
        data["upsampling"] = {"cd": {str(a): {str(b): v for b, v in d.items()} for a, d in res["cd"].items()},
                              "emd": {str(a): {str(b): v for b, v in d.items()} for a, d in res["emd"].items()},
                              "shapes": k, "test_per_category": per_up,
                              "dsm_points": {str(a): v for a, v in dsm_points.items()}}
        runtime = [int(r) for r in sz["upsample_runtime"]]
        rows = []
        for n_tr in res["cd"]:
            rows.append([f"train {n_tr} (DSM on {dsm_points[n_tr]})"] + [res["cd"][n_tr].get(r, "-") for r in runtime]
                        + [res["emd"][n_tr].get(r, "-") for r in runtime] + _budget_cells(up_budget[n_tr]))
        body += [f"## Upsampling ({k} test shapes; rows: training points per shape, of which the DSM targets; "
                 f"columns: runtime input points; {n_out} points sampled)", "",
                 md_table([""] + [f"CD {r}" for r in runtime] + [f"EMD {r}" for r in runtime] + _BUDGET_COLS, rows),
                 ""]
        big, small = max(res["cd"]), min(res["cd"])
        common = [r for r in runtime if r in res["cd"][big] and r in res["cd"][small]]
        if big != small and common:
            worst = max(res["cd"][small][r] / res["cd"][big][r] for r in common)
            data["upsampling"]["worst_ratio"] = worst
            goals.append(goal("upsampling_train_small_within_20pct",
                              f"worst CD ratio train {small} / train {big} points over runtime sizes {common} (test)",
                              worst, 1.2, comparison="<="))
            body += [f"Worst CD ratio train {small} / train {big} over runtime sizes {common}: {worst:.3g} "
                     "(goal <= 1.2).", ""]
        seq = [res["cd"][big][r] for r in runtime if r in res["cd"][big]]
        goals.append(goal("upsampling_strict_fall",
                          f"train {big}: the mean CD falls at every step as the runtime points grow (strict)",
                          bool(all(a <= b for a, b in zip(seq, seq[1:]))), True, comparison="=="))
        # the strict goal compares means; the paired view says which steps the test shapes can resolve
        steps = ex.paired_steps(res["cd_per_shape"][big])
        data["upsampling"]["paired_steps"] = {str(big): steps}
        data["upsampling"]["cd_per_shape"] = {str(a): {str(b): v for b, v in d.items()}
                                              for a, d in res["cd_per_shape"].items()}
        body += [f"Paired steps (train {big}; per shape CD(fewer) - CD(more), mean ± standard error over the {k} "
                 "shapes; 'falls' / 'rises' beyond 2 standard errors, else 'flat'):", "",
                 md_table(["runtime points", "CD(fewer) - CD(more)", "s.e.", "verdict"],
                          [[f"{s['fewer']} -> {s['more']}", s["mean"], s["se"], s["verdict"]] for s in steps]), ""]
        # the seed's own table: a fall up to seed_falling_range(), then a plateau of a few percent either way
        shape = ex.upsampling_in_seed_shape(steps)
        data["upsampling"]["seed_shape"] = shape
        goals.append(goal("upsampling_in_seed_shape",
                          f"train {big}: paired CD falls up to {shape['falls_up_to']} runtime points and no step "
                          "rises (the seed's table's shape)", bool(shape["met"]), True, comparison="=="))
        verdict = {(s["fewer"], s["more"]): s["verdict"] for s in steps}
        rel = {f"seed, train {name}": ex.relative_steps(row) for name, row in ex.SEED_UPSAMPLING_CD.items()}
        rel[f"ours, train {big}"] = ex.relative_steps(res["cd"][big])
        seed_rows = [[name] + ["-" if st["change"] is None else f"{100 * st['change']:+.1f}%"
                               + (f" ({verdict[(st['fewer'], st['more'])]})" if name.startswith("ours")
                                  and (st["fewer"], st["more"]) in verdict else "") for st in row]
                     for name, row in rel.items()]
        body += ["The seed's table in the same terms (CD(fewer) / CD(more) - 1 per step; the seed gives no standard "
                 f"errors). Every seed row falls up to {shape['falls_up_to']} runtime points and moves a few percent "
                 "either way above it:", "",
                 md_table(["row"] + [f"{st['fewer']} -> {st['more']}" for st in next(iter(rel.values()))], seed_rows),
                 ""]

    if "generation" not in args.skip:
        t0 = time.perf_counter()
        gen, disc, ghist = ex.train_generator(model, train["points"], profile=profile)
        gan_seconds = time.perf_counter() - t0
        seconds["train latent GAN"] = gan_seconds
        t0 = time.perf_counter()
        n = len(target)
        samples = {"ShapeGF + latent GAN": ex.generate(model, gen, n, n_out, profile=profile),
                   MEMORISING: ex.noisy_training_baseline(train["target_points"][:, :n_out], n),
                   "training shapes (copies)": ex.noisy_training_baseline(train["target_points"][:, :n_out], n,
                                                                          noise=0.0)}
        tab = ex.generation_table(samples, target)
        per_ref = {k: ex.generation_per_reference(v, target) for k, v in samples.items()
                   if k in ("ShapeGF + latent GAN", MEMORISING)}
        seconds["generation"] = time.perf_counter() - t0
        ae_b = budgets["ShapeGF"]
        gan_steps = len(ghist.g_loss) * (n_train // min(int(sz["gan_batch"]), n_train))
        gen_budget = budget(steps=ae_b["steps"] + gan_steps,
                            examples=ae_b["examples"] + gan_steps * min(int(sz["gan_batch"]), n_train),
                            seconds=ae_b["seconds"] + gan_seconds,
                            params=ae_b["params"] + sum(p.numel() for p in gen.parameters())
                            + sum(p.numel() for p in disc.parameters()),
                            note=f"auto-encoder {ae_b['steps']} steps + latent GAN {gan_steps} generator steps "
                                 "(as many critic steps)")
        none_budget = budget(steps=None, examples=None, seconds=None, params=None,
                             note="no training: training clouds drawn at random")
        gen_budgets = {"ShapeGF + latent GAN": gen_budget, MEMORISING: none_budget,
                       "training shapes (copies)": none_budget}
        data["generation"] = tab
        data["generation_budgets"] = gen_budgets
        data["generation_per_reference"] = per_ref
        a, b = "ShapeGF + latent GAN", MEMORISING
        for cid, text, metric, va, vb, hib in (
                ("gen_mmd_vs_memorising", "ShapeGF + latent GAN matches the held-out shapes more closely than "
                 "memorised training shapes do (MMD-CD)", "MMD-CD x1e3",
                 per_ref[a]["MMD-CD x1e3"], per_ref[b]["MMD-CD x1e3"], False),
                ("gen_cov_vs_memorising", "ShapeGF + latent GAN covers more of the held-out shapes than memorised "
                 "training shapes do (COV-CD)", "COV-CD %", per_ref[a]["COV-CD %"], per_ref[b]["COV-CD %"], True),
                ("gen_1nna_vs_memorising", "ShapeGF + latent GAN's samples are harder to tell from the held-out "
                 "shapes than memorised training shapes are (1-NNA-CD, distance from the ideal 50%)",
                 "|1-NNA-CD - 50| (points of %)", ex.nna_gap_values(per_ref[a]["1-NNA-CD %"]),
                 ex.nna_gap_values(per_ref[b]["1-NNA-CD %"]), False)):
            claims.append(claim(cid, text, a=a, b=b, metric=metric, values_a=va, values_b=vb, higher_is_better=hib,
                                unit="shapes", budget={a: gen_budget, b: none_budget}, selected_on="val"))
        cols = ["MMD-CD x1e3", "COV-CD %", "1-NNA-CD %"]
        body += [f"## Generation ({n} samples against the {n} test shapes; PointFlow's MMD/COV/1-NNA with CD; "
                 "budget: the auto-encoder plus the latent GAN)", "",
                 md_table(["samples"] + cols + _BUDGET_COLS,
                          [[k] + [v[c] for c in cols] + _budget_cells(gen_budgets.get(k)) for k, v in tab.items()]), "",
                 "1-NNA: 50% = indistinguishable from the test set, 100% = separable.", ""]

    if "robustness" not in args.skip:
        t0 = time.perf_counter()
        rob = ex.sparse_and_partial(model, test["points"], target, profile=profile)
        seconds["robustness"] = time.perf_counter() - t0
        data["robustness"] = rob
        body += ["## Sparse and occluded inputs (ShapeGF, CD x1e4)", "",
                 md_table(["input", "CD x1e4"], [[k, v["CD x1e4"]] for k, v in rob.items()]), ""]
        # issue #37 item 6: the field level by level, noisy inputs, inference time (same test shapes)
        t0 = time.perf_counter()
        lv = ex.shapegf_dsm_per_level(model, test["points"], target, n_target=int(sz["n_dsm"]), profile=profile)
        seconds["DSM per level"] = time.perf_counter() - t0
        data["field_levels"] = lv
        body += [f"## Denoising loss per level on the test shapes ({sz['weighting']} weight)", "",
                 md_table(["sigma", *[k for k in lv if k != "sigma"]],
                          [[s_, *[lv[k][i] for k in lv if k != "sigma"]] for i, s_ in enumerate(lv["sigma"])]), ""]
        if "autoencoding" in args.skip:
            baselines = ex.train_baselines(train, profile=profile, retrain=args.retrain)
        models = {"ShapeGF": model, **baselines}
        t0 = time.perf_counter()
        noise_levels = [0.0, *[float(v) for v in sz["noise_levels"]]]
        noisy_per: dict[str, Any] = {}
        noisy = ex.noise_robustness(models, test["points"], target, noise_levels, profile=profile, per_shape=noisy_per)
        seconds["noisy inputs"] = time.perf_counter() - t0
        data["noise_robustness"] = {k: {str(n): v for n, v in row.items()} for k, row in noisy.items()}
        rob_budget = {k: budgets[k] for k in models if k in budgets}
        claims.extend(ex.robustness_claims(noisy_per, study="noise", unit_label="input noise std", budget=rob_budget))
        body += ["## Reconstruction from noisy inputs (CD x1e4 by input noise std)", "",
                 md_table(["model", *[str(n) for n in noise_levels]],
                          [[k, *row.values()] for k, row in noisy.items()]), ""]
        t0 = time.perf_counter()
        angles = [0.0, *[float(a) for a in sz["rotation_angles"]]]
        turned_per: dict[str, Any] = {}
        turned = ex.rotation_robustness(models, test["points"], target, angles, profile=profile, per_shape=turned_per)
        seconds["rotated inputs"] = time.perf_counter() - t0
        claims.extend(ex.robustness_claims(turned_per, study="rotation", unit_label="degrees about y",
                                           budget=rob_budget))
        data["rotation_robustness"] = {k: {str(a): v for a, v in row.items()} for k, row in turned.items()}
        body += ["## Reconstruction of shapes turned about y (CD x1e4 by angle in degrees)", "",
                 md_table(["model", *[str(a) for a in angles]], [[k, *row.values()] for k, row in turned.items()]), ""]
        t0 = time.perf_counter()
        n_time = min(10, len(test["points"]))
        per_shape_s = {"ShapeGF": ex.seconds_per_shape(lambda x: ex.reconstruct(model, x, n_out, profile=profile),
                                                       test["points"][:n_time], repeat=2)}
        for name, bl in baselines.items():
            per_shape_s[name] = ex.seconds_per_shape(lambda x, bl=bl: ex.predict_baseline(bl, x, n_out),
                                                     test["points"][:n_time], repeat=2)
        seconds["inference time"] = time.perf_counter() - t0
        data["inference_seconds"] = {"shapes": n_time, "n_points": int(n_out), "steps_per_level": int(sz["steps_per_level"]),
                                     "levels": int(len(model.sigmas)), "threads": torch.get_num_threads(),
                                     "per_shape": per_shape_s}
        body += [f"## Inference time (s per shape, {n_out} points, {n_time} test shapes, best of 2)", "",
                 md_table(["model", "s per shape"], [[k, v] for k, v in per_shape_s.items()]), ""]

    seconds["total"] = time.perf_counter() - t_all
    body += ["## Claims (paired over the test shapes; 'not shown' = within 2 standard errors)", ""]
    body += [f"- `{c['id']}`: {claim_sentence(c)}" for c in claims] or ["(none measured in this run)"]
    body += ["", "## Goals", ""]
    body += [f"- `{g['id']}`: {goal_sentence(g)}" for g in goals] or ["(none measured in this run)"]
    body += ["", "## Time (s)", "", md_table(["part", "seconds"], [[k, v] for k, v in seconds.items()])]
    note = args.note or ("ci profile: a pipeline check, the numbers mean nothing." if profile == "ci" else "")
    note = " ".join([note, *notes]).strip()
    path = write_result(result_name("gradient_fields", real), profile, "\n".join(body), notes=note, data=data)
    print("\n".join(body))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
