"""Chapter 10 (gradient fields, ShapeGF): auto-encoding, analytic-field oracle, upsampling, generation.

Run from the repository root, alone on the machine:

    COURSE_PROFILE=laptop python benchmarks/gradient_fields.py            # the whole chapter
    COURSE_PROFILE=ci python benchmarks/gradient_fields.py               # pipeline check (seconds; numbers meaningless)
    COURSE_PROFILE=laptop python benchmarks/gradient_fields.py --skip upsampling generation   # parts only

Writes ``benchmarks/results/gradient_fields-<profile>-<machine>.md`` and
``benchmarks/results/gradient_fields-<profile>.json`` (read by ``lectures/10_gradient_fields.ipynb``).
Models are checkpointed under ``config.cache_dir()/checkpoints`` (the lecture loads the same
files), so a second run only evaluates.

Parts, in order, with the laptop profile's sizes (``ch10.*`` in ``course_lib/config.py``):

1. ``analytic``: annealed Langevin with the exact field of each held-out input cloud (a perfect
   network), CD / EMD against an independent sampling; goal: CD within 2x the oracle.
2. ``schedule``: ShapeGF trained ``ch10.schedule_epochs`` epochs (laptop 100) with a constant learning rate
   and with the course's cosine decay to 1/100 (the official code: constant for half the run, then linear
   to 1/100; not measured here), auto-encoding CD / EMD of both.
3. ``levels``: the same budget with each batch's noise levels drawn independently (the official code) and
   dealt evenly over the batch (``ch10.level_sampling="stratified"``, the course), seeds 0 and 1 each
   (the stratified seed-0 run is the schedule part's cosine run, loaded from its checkpoint).
4. ``autoencoding``: ShapeGF (``ch10.epochs`` epochs, laptop 240 = 1,920 steps of 16 shapes, a score network
   of 8 blocks of 128; the course's parametrisation: log sigma in, sigma-scaled output, NCSN weight, stratified
   noise levels; ``--ablation`` adds the official parametrisation)
   against PointSetGen and AtlasNet sphere / 25 patches (40 epochs each), same data (3 categories x 40
   training shapes, 2,048 input points), same PointNet encoder, same learning-rate schedule, one table with
   the oracle; CD x1e4 and EMD x1e2 (exact) at 1,024 points.
5. ``upsampling``: a second ShapeGF trained on 512 points per shape; both sampled from
   2,048 ... 128 runtime input points on a larger test split of its own (``ch10.upsample_test_per_category``,
   laptop 40 per category = 120 shapes, the chapter's 30 test shapes among them), with the paired change
   between neighbouring runtime sizes (the same shapes and prior draws in every cell), next to the seed's
   table in the same terms; goals: the strict "mean falls at every step" and the seed's shape
   (:func:`course_lib.experiments.gradient_fields.upsampling_in_seed_shape`: paired falls up to the size
   where every seed row stops falling, 512, and no step rises).
6. ``generation``: latent GAN on the training codes, as many samples as test shapes,
   MMD-CD / COV-CD / 1-NNA-CD against the test shapes, next to training shapes plus noise.
7. ``robustness``: reconstruction from 64 / 32 input points and from a half-occluded cloud.

Cost: every part's wall time is in the result file's "Time" table (the committed laptop run on 2 idle
cores: 2,441 s in all, of which the levels part 539 s and the upsampling sampling on 120 shapes 587 s;
``--ablation`` adds one more ShapeGF training, not timed here).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import md_table, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import gradient_fields as ex  # noqa: E402
from course_lib.experiments.common import format_table  # noqa: E402

PARTS = ("analytic", "schedule", "levels", "autoencoding", "upsampling", "generation", "robustness")


def _rows_to_data(rows):
    return {r["model"]: {k: list(v) for k, v in r.items() if k != "model"} for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip", nargs="*", default=(), choices=PARTS)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--ablation", action="store_true",
                    help="also train ShapeGF with the official parametrisation (raw sigma in, displacement out, "
                         "weight 1/(2 sigma)) and add its row to the auto-encoding table (about 4 more minutes)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    profile = config.get_profile()
    sz = dict(config.sizes(profile, prefix="ch10."))
    t_all = time.perf_counter()
    seconds: dict[str, float] = {}
    data: dict = {"sizes": {k: (list(v) if isinstance(v, tuple) else v) for k, v in sz.items()},
                  "convention": ex.CONVENTION, "seconds": seconds, "goals": {}}
    body: list[str] = [f"Convention: {ex.CONVENTION}.", ""]

    t0 = time.perf_counter()
    train = ex.load_data("train", profile=profile)
    test = ex.load_data("test", profile=profile)
    seconds["data"] = time.perf_counter() - t0
    n_out = int(test["target_points"].shape[1])
    target, oracle = test["target_points"], test["oracle_points"]
    oracle_m = ex.ae_metrics(oracle, target)
    oracle_cd, oracle_emd = float(oracle_m["CD x1e4"].mean()), float(oracle_m["EMD x1e2"].mean())
    body += [f"Data: {', '.join(train['categories'])}; {len(train['points'])} training and {len(target)} test shapes; "
             f"{train['points'].shape[1]} input points (stream 0), {n_out} target points (stream 1), oracle = "
             "stream 2 against stream 1.", ""]

    if "analytic" not in args.skip:
        t0 = time.perf_counter()
        pred = ex.analytic_oracle(test["points"], n_out, steps_per_level=10)
        m = ex.ae_metrics(pred, target)
        cd, emd = float(m["CD x1e4"].mean()), float(m["EMD x1e2"].mean())
        seconds["analytic"] = time.perf_counter() - t0
        data["analytic"] = {"CD x1e4": cd, "EMD x1e2": emd, "oracle CD x1e4": oracle_cd, "oracle EMD x1e2": oracle_emd}
        data["goals"]["analytic CD within 2x oracle"] = bool(cd <= 2 * oracle_cd)
        body += ["## Annealed Langevin with the analytic field of the held-out input cloud", "",
                 md_table(["", "CD x1e4", "EMD x1e2"], [["analytic field (10 levels x 10 steps)", cd, emd],
                                                        ["oracle", oracle_cd, oracle_emd]]),
                 "", f"CD ratio to the oracle: {cd / oracle_cd:.3g} (goal <= 2).", ""]

    if "schedule" not in args.skip:
        # the course decays the learning rate (cosine to 1/100): against a constant rate, measured
        t0 = time.perf_counter()
        n_ep = int(sz["schedule_epochs"])
        rows, sched_data = [], {}
        for sched in ("constant", "cosine"):
            m_s, h_s = ex.train_shapegf(train, profile=profile, epochs=n_ep, schedule=sched, retrain=args.retrain,
                                        live_plot=False, name=f"ch10_shapegf_schedule_{sched}")
            r = ex.ae_metrics(ex.reconstruct(m_s, test["points"], n_out, profile=profile), target)
            cd, emd = float(r["CD x1e4"].mean()), float(r["EMD x1e2"].mean())
            sched_data[sched] = {"CD x1e4": cd, "EMD x1e2": emd, "ratio to oracle": cd / oracle_cd,
                                 "train": h_s.summary()}
            rows.append([sched, cd, emd, cd / oracle_cd, h_s.summary()])
            print(f"schedule {sched}: CD x1e4 {cd:.4g} ({cd / oracle_cd:.3g}x the oracle), EMD x1e2 {emd:.4g}",
                  flush=True)
            del m_s
        seconds["schedule"] = time.perf_counter() - t0
        data["schedule"] = {"epochs": n_ep, **sched_data}
        body += [f"## Learning-rate schedule ({n_ep} epochs each; cosine decay to 1/100 against a constant rate)", "",
                 md_table(["schedule", "CD x1e4", "EMD x1e2", "CD / oracle", "training"], rows), ""]

    if "levels" not in args.skip:
        # the course deals each batch's noise levels evenly ("stratified"); the official code draws them
        # independently ("uniform"); two seeds each, because the uniform draw's spread between runs is the point
        t0 = time.perf_counter()
        n_ep = int(sz["schedule_epochs"])
        rows, lev_data = [], {}
        for levels in ("uniform", "stratified"):
            lev_data[levels] = {}
            for seed in (0, 1):
                # (stratified, seed 0, cosine) is the schedule part's cosine run: same spec, same checkpoint
                name = ("ch10_shapegf_schedule_cosine" if (levels, seed) == (sz["level_sampling"], int(sz["seed"]))
                        else f"ch10_shapegf_levels_{levels}_s{seed}")
                m_l, h_l = ex.train_shapegf(train, profile=profile, epochs=n_ep, schedule="cosine", levels=levels,
                                            seed=seed, retrain=args.retrain, live_plot=False, name=name)
                r = ex.ae_metrics(ex.reconstruct(m_l, test["points"], n_out, profile=profile), target)
                cd, emd = float(r["CD x1e4"].mean()), float(r["EMD x1e2"].mean())
                lev_data[levels][str(seed)] = {"CD x1e4": cd, "EMD x1e2": emd, "ratio to oracle": cd / oracle_cd,
                                               "train": h_l.summary()}
                rows.append([levels, seed, cd, emd, cd / oracle_cd, h_l.summary()])
                print(f"levels {levels} seed {seed}: CD x1e4 {cd:.4g} ({cd / oracle_cd:.3g}x the oracle), "
                      f"EMD x1e2 {emd:.4g}", flush=True)
                del m_l
        seconds["levels"] = time.perf_counter() - t0
        data["levels"] = {"epochs": n_ep, **lev_data}
        body += [f"## Noise levels per batch ({n_ep} epochs each, cosine rate; independent draws, as the official "
                 "code, against levels dealt evenly over each batch; two seeds each)", "",
                 md_table(["levels", "seed", "CD x1e4", "EMD x1e2", "CD / oracle", "training"], rows), ""]

    model = None
    if "autoencoding" not in args.skip or "upsampling" not in args.skip or "generation" not in args.skip \
            or "robustness" not in args.skip:
        t0 = time.perf_counter()
        model, hist = ex.train_shapegf(train, profile=profile, retrain=args.retrain, live_plot=False)
        seconds["train ShapeGF"] = time.perf_counter() - t0

    if "autoencoding" not in args.skip:
        t0 = time.perf_counter()
        preds = {"ShapeGF": ex.reconstruct(model, test["points"], n_out, profile=profile)}
        seconds["sample ShapeGF"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        baselines = ex.train_baselines(train, profile=profile, retrain=args.retrain)
        seconds["train baselines"] = time.perf_counter() - t0
        for name, bl in baselines.items():
            preds[name] = ex.predict_baseline(bl, test["points"], n_out)
        if args.ablation:
            t0 = time.perf_counter()
            off, _ = ex.train_shapegf(train, profile=profile, retrain=args.retrain, live_plot=False, official=True,
                                      name="ch10_shapegf_official")
            preds["ShapeGF, official parametrisation"] = ex.reconstruct(off, test["points"], n_out, profile=profile)
            seconds["ablation (official parametrisation)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows, per = ex.autoencoding_table(preds, target, oracle)
        seconds["AE metrics"] = time.perf_counter() - t0
        data["autoencoding"] = _rows_to_data(rows)
        means = {k: {m: float(v.mean()) for m, v in d.items()} for k, d in per.items()}
        others = [k for k in means if k not in ("ShapeGF", "Oracle") and not k.startswith("ShapeGF,")]
        data["goals"]["ShapeGF ahead of every baseline on CD"] = all(
            means["ShapeGF"]["CD x1e4"] < means[k]["CD x1e4"] for k in others)
        data["goals"]["ShapeGF ahead of every baseline on EMD"] = all(
            means["ShapeGF"]["EMD x1e2"] < means[k]["EMD x1e2"] for k in others)
        data["goals"]["ShapeGF CD within 1.5x oracle"] = bool(means["ShapeGF"]["CD x1e4"] <= 1.5 * oracle_cd)
        data["autoencoding_ratio_to_oracle"] = {k: means[k]["CD x1e4"] / oracle_cd for k in means}
        body += ["## Auto-encoding (held-out shapes; mean ± standard error over shapes)", "", format_table(rows), "",
                 "ShapeGF CD / oracle CD: " f"{means['ShapeGF']['CD x1e4'] / oracle_cd:.3g} (goal <= 1.5).", ""]

    if "upsampling" not in args.skip:
        t0 = time.perf_counter()
        models = {}
        for n_train in sz["upsample_train"]:
            n_train = int(n_train)
            if n_train >= train["points"].shape[1]:
                models[n_train] = model
            else:
                models[n_train], _ = ex.train_shapegf(train, n_train_points=n_train, profile=profile,
                                                      retrain=args.retrain, live_plot=False)
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
        data["upsampling"] = {"cd": {str(a): {str(b): v for b, v in d.items()} for a, d in res["cd"].items()},
                              "emd": {str(a): {str(b): v for b, v in d.items()} for a, d in res["emd"].items()},
                              "shapes": k, "test_per_category": per_up}
        runtime = [int(r) for r in sz["upsample_runtime"]]
        rows = []
        for n_train in res["cd"]:
            rows.append([f"train {n_train}"] + [res["cd"][n_train].get(r, "-") for r in runtime]
                        + [res["emd"][n_train].get(r, "-") for r in runtime])
        body += [f"## Upsampling ({k} test shapes; rows: training points per shape; columns: runtime input points; "
                 f"{n_out} points sampled)", "",
                 md_table([""] + [f"CD {r}" for r in runtime] + [f"EMD {r}" for r in runtime], rows), ""]
        big, small = max(res["cd"]), min(res["cd"])
        common = [r for r in runtime if r in res["cd"][big] and r in res["cd"][small]]
        if big != small and common:
            worst = max(res["cd"][small][r] / res["cd"][big][r] for r in common)
            data["goals"][f"train {small} within 20% of train {big} (CD)"] = bool(worst <= 1.2)
            data["upsampling"]["worst_ratio"] = worst
            body += [f"Worst CD ratio train {small} / train {big} over runtime sizes {common}: {worst:.3g} "
                     "(goal <= 1.2).", ""]
        seq = [res["cd"][big][r] for r in runtime if r in res["cd"][big]]
        data["goals"]["CD mean falls at every step as runtime points grow (strict)"] = \
            all(a <= b for a, b in zip(seq, seq[1:]))
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
        data["goals"][f"upsampling in the seed's shape (paired: falls up to {shape['falls_up_to']} runtime points, "
                      "no step rises)"] = shape["met"]
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
        gen, _, ghist = ex.train_generator(model, train["points"], profile=profile)
        seconds["train latent GAN"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = len(target)
        samples = {"ShapeGF + latent GAN": ex.generate(model, gen, n, n_out, profile=profile),
                   "training shapes + noise 0.02": ex.noisy_training_baseline(train["target_points"][:, :n_out], n),
                   "training shapes (copies)": ex.noisy_training_baseline(train["target_points"][:, :n_out], n,
                                                                          noise=0.0)}
        tab = ex.generation_table(samples, target)
        seconds["generation"] = time.perf_counter() - t0
        data["generation"] = tab
        cols = ["MMD-CD x1e3", "COV-CD %", "1-NNA-CD %"]
        body += [f"## Generation ({n} samples against the {n} test shapes; PointFlow's MMD/COV/1-NNA with CD)", "",
                 md_table(["samples"] + cols, [[k] + [v[c] for c in cols] for k, v in tab.items()]), "",
                 "1-NNA: 50% = indistinguishable from the test set, 100% = separable.", ""]

    if "robustness" not in args.skip:
        t0 = time.perf_counter()
        rob = ex.sparse_and_partial(model, test["points"], target, profile=profile)
        seconds["robustness"] = time.perf_counter() - t0
        data["robustness"] = rob
        body += ["## Sparse and occluded inputs (ShapeGF, CD x1e4)", "",
                 md_table(["input", "CD x1e4"], [[k, v["CD x1e4"]] for k, v in rob.items()]), ""]

    seconds["total"] = time.perf_counter() - t_all
    body += ["## Goals", "", md_table(["goal", "met"], [[k, "yes" if v else "NO"] for k, v in data["goals"].items()]),
             "", "## Time (s)", "", md_table(["part", "seconds"], [[k, v] for k, v in seconds.items()])]
    note = args.note or ("ci profile: a pipeline check, the numbers mean nothing." if profile == "ci" else "")
    path = write_result("gradient_fields", profile, "\n".join(body), notes=note, data=data)
    print("\n".join(body))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
