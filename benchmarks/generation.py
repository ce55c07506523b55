"""Chapter 10, generation: why ShapeGF's samples are behind the memorising baseline (EMD, per category), and
the upsampling table's sparse end.

Run from the repository root, alone on the machine:

    COURSE_PROFILE=laptop python benchmarks/generation.py     # about 10 minutes on 2 cores (estimate)
    COURSE_PROFILE=ci python benchmarks/generation.py         # pipeline check (numbers meaningless)

Writes ``benchmarks/results/generation-<profile>-<machine>.md`` and ``benchmarks/results/generation-<profile>.json``
(read by ``lectures/10_gradient_fields.ipynb``).  It trains no ShapeGF: it loads the chapter's main model and
the upsampling table's small-training model from their checkpoints (``benchmarks/gradient_fields.py`` trains
them, with the choices it made on val; the checkpoints' specs are those of ``ch10.*``, which the results file
of that benchmark says agree with its choice).  Only latent GANs are trained here (seconds each).

Protocol 2 (``course_lib.experiments.protocol``):

1. ``latent`` (selection, ``val``): where the codes come from, decoded by the same model and sampler:
   the official latent GAN at ``ch10.gan_epochs`` epochs, the same GAN with ``ch10.gen_gan_long_epochs``
   (3x the steps: the GAN's budget), a Gaussian with the training codes' mean and covariance, and a random
   training code plus ``ch10.gen_code_noise`` x the codes' per-dimension standard deviation (the latent
   distribution); ``ch10.gen_seeds`` seeds each (GAN training and sampling).  Each candidate samples as
   many shapes as there are validation shapes; the score is the distance of 1-NNA-CD from the ideal 50%,
   mean over the seeds; the lowest is kept (ties: the official GAN, listed first).
2. ``test``, a report only (the test split is read once, after part 1): the source fixed by part 1 on val, the
   official GAN, the training codes themselves decoded (a diagnostic, not a
   candidate: what the decoder gives a perfect memoriser in code space) and the memorising baseline
   (training shapes + noise 0.02, as in ``benchmarks/gradient_fields.py``), each with the same seeds, against
   the test shapes: MMD / COV / 1-NNA with Chamfer (every seed) and with the exact EMD (seed 0, on the first
   ``ch10.gen_emd_points`` points of every cloud: an exact matching costs ``O(N^3)`` per pair; not for the
   diagnostic row).  Claims,
   paired over the test shapes (per-reference values averaged over the seeds): the chosen source against
   the memorising baseline on all six metrics; the chosen source against the official GAN (CD); the decoded
   training codes against the memorising baseline (CD: how much of the gap the decoder alone leaves).
3. ``categories``: one generator per category (the chosen source fitted to that category's training codes
   only) against that category's test shapes, CD and EMD, beside the memorising baseline of the category
   (seed 0; too few shapes per category for claims); and which category each sample of the mixed generators
   resembles (the category of its nearest training shape under CD).
4. ``drift`` (the upsampling table's 512 row at sparse inputs): for the main model and the model trained on
   fewer points, how far the code moves when the encoder sees only the first k of the points
   (``ex.code_drift``, in units of the median distance between two shapes' codes), on the upsampling
   benchmark's test split; claim: the main model's drift against the small model's at the sparsest size
   (paired over the shapes); and, when ``gradient_fields-<profile>.json`` holds the per-shape table, the
   rank correlation between a shape's drift and its CD increase, and the table's own paired difference at
   the sparsest size as a claim.

Cost (laptop, 2 idle cores; estimated from the chapter benchmark's times, not measured yet): latent GANs about
6.6 ms per epoch (3 seeds x (2,000 + 6,000) epochs on val, up to 3 more per category: 160-280 s); decoding about
0.17 s per shape (about 800 shapes: about 140 s); the exact EMD at 512 points 15-30 ms per pair (4,000-5,500
pairs: 60-170 s): 7-10 minutes.  ``--skip categories`` or ``--skip drift`` shortens it.
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

from course_lib import config, results  # noqa: E402
from course_lib.experiments import gradient_fields as ex  # noqa: E402
from course_lib.experiments.protocol import (  # noqa: E402
    MIN_SHAPES,
    budget,
    claim,
    claim_sentence,
    selection_part,
    selection_record,
)

PARTS = ("latent", "test", "categories", "drift")
SELECTION_PARTS = ("select_latent",)
"""The part that chooses the latent distribution: on ``val`` only (``no_test_reads``)."""

MEMORISING = "training shapes + noise 0.02"
CODES = "training codes, decoded"
GAN = "latent GAN"
CD_KEYS = ("MMD-CD x1e3", "COV-CD %", "1-NNA-CD %")
EMD_KEYS = ("MMD-EMD x1e2", "COV-EMD %", "1-NNA-EMD %")


def _mean(v) -> float:
    v = list(v)
    return sum(v) / len(v)


def _seed_mean(per_seed: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Per-reference values averaged over seeds (still one value per reference shape)."""
    return {k: [_mean(vals) for vals in zip(*(d[k] for d in per_seed))] for k in per_seed[0]}


def _candidates(sz) -> dict[str, dict[str, Any]]:
    return {f"{GAN}, {int(sz['gan_epochs'])} epochs": {"source": "gan", "epochs": int(sz["gan_epochs"])},
            f"{GAN}, {int(sz['gen_gan_long_epochs'])} epochs": {"source": "gan",
                                                                 "epochs": int(sz["gen_gan_long_epochs"])},
            "Gaussian fitted to the training codes": {"source": "gaussian"},
            f"training codes + noise {float(sz['gen_code_noise']):g} std": {"source": "codes+noise",
                                                                            "noise": float(sz["gen_code_noise"])}}


def _gan(codes, epochs: int, seed: int, sz, cache: dict) -> tuple[Any, float, int, int]:
    """A latent GAN on ``codes`` (trained once per (epochs, seed, codes) in this run): (generator, seconds, steps,
    parameters of the generator and the critic)."""
    from course_lib.models.shapegf import train_latent_gan

    key = (int(epochs), int(seed), id(codes))
    if key not in cache:
        t0 = time.perf_counter()
        gen, disc, hist = train_latent_gan(codes, epochs=int(epochs), batch_size=int(sz["gan_batch"]),
                                           seed=int(seed), progress=False)
        bs = min(int(sz["gan_batch"]), len(codes))
        params = sum(p.numel() for m in (gen, disc) for p in m.parameters())
        cache[key] = (gen, time.perf_counter() - t0, len(hist.g_loss) * (len(codes) // bs), params)
    return cache[key]


def _codes_of(spec, codes, n: int, seed: int, sz, gans: dict) -> Any:
    if spec["source"] == "gan":
        gen = _gan(codes, spec["epochs"], seed, sz, gans)[0]
        return ex.sample_codes("gan", codes, n, seed=seed, gan=gen)
    return ex.sample_codes(spec["source"], codes, n, seed=seed, noise=spec.get("noise", 0.25))


@selection_part
def select_latent(model, codes, val, sz, profile, gans: dict) -> dict[str, Any]:
    """Where the generator's codes come from: the lowest mean |1-NNA-CD - 50| on val over the seeds is kept."""
    from course_lib.metrics_generation import pairwise_distances

    refs = val["target_points"]
    n, n_out = len(refs), int(refs.shape[1])
    m_rr = pairwise_distances(refs, refs, "cd", batch_size=16)
    seeds = list(range(int(sz["gen_seeds"])))
    runs: dict[str, Any] = {}
    for name, spec in _candidates(sz).items():
        per_seed = []
        for sd in seeds:
            smp = ex.decode_codes(model, _codes_of(spec, codes, n, sd, sz, gans), n_out, profile=profile, seed=sd)
            pr = ex.generation_per_reference(smp, refs, "cd", m_rr=m_rr)
            per_seed.append({k: _mean(v) for k, v in pr.items()})
        gap = [abs(r["1-NNA-CD %"] - 50.0) for r in per_seed]
        runs[name] = {"spec": spec, "per_seed": per_seed, "|1-NNA-CD - 50|": _mean(gap),
                      **{k: _mean(r[k] for r in per_seed) for k in CD_KEYS}}
        print(f"  val, {name}: " + ", ".join(f"{k} {runs[name][k]:.4g}" for k in (*CD_KEYS, "|1-NNA-CD - 50|")),
              flush=True)
    scores = {k: v["|1-NNA-CD - 50|"] for k, v in runs.items()}
    chosen, rec = selection_record("ch10.latent_distribution", scores,
                                   metric=f"val |1-NNA-CD - 50| (points of %), mean of seeds {seeds}",
                                   higher_is_better=False)
    return {"chosen": chosen, "spec": runs[chosen]["spec"], "record": rec, "runs": runs, "seeds": seeds}


def _claim_ok(n: int) -> bool:
    return n >= MIN_SHAPES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip", nargs="*", default=(), choices=PARTS)
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
    claims: list[dict[str, Any]] = []
    selections: list[dict[str, Any]] = []
    notes: list[str] = []
    data: dict[str, Any] = {"sizes": {k: (list(v) if isinstance(v, tuple) else v) for k, v in sz.items()
                                      if k.startswith("gen") or k in ("gan_epochs", "gan_batch", "upsample_train",
                                                                       "upsample_runtime", "steps_per_level")},
                            "convention": ex.CONVENTION, "seconds": seconds, "claims": claims, "goals": [],
                            "selections": selections}
    body: list[str] = [f"Convention: {ex.CONVENTION}. Generation metrics: PointFlow's MMD / COV / 1-NNA "
                       "(MMD-CD x1e3, MMD-EMD x1e2 with the exact matching, COV and 1-NNA in %).", ""]

    t0 = time.perf_counter()
    train = ex.load_data("train", profile=profile)
    val = ex.load_data("val", profile=profile)
    seconds["data (train, val)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, hist = ex.train_shapegf(train, profile=profile, live_plot=False, progress=False)
    if hist.epochs_run < int(sz["epochs"]) and profile != "ci":
        notes.append(f"WARNING: the main ShapeGF ran {hist.epochs_run} of {sz['epochs']} epochs (not the checkpoint "
                     "of benchmarks/gradient_fields.py?).")
    codes = ex._codes(model, train["points"])
    seconds["load ShapeGF, encode training shapes"] = time.perf_counter() - t0
    ae_budget = ex.training_budget(model, hist, len(train["points"]), int(sz["batch_size"]))
    n_out = int(train["target_points"].shape[1])
    gans: dict = {}
    body += [f"Data: {', '.join(train['categories'])}; {len(train['points'])} training shapes (their codes fit every "
             f"latent distribution), {len(val['points'])} validation shapes (the choice), test shapes (the report); "
             f"{n_out} points per sample. Model: the chapter's main ShapeGF, loaded ({ae_budget['steps']} steps).", ""]

    chosen_name, chosen_spec = f"{GAN}, {int(sz['gan_epochs'])} epochs", {"source": "gan",
                                                                           "epochs": int(sz["gan_epochs"])}
    if "latent" not in args.skip:
        t0 = time.perf_counter()
        res = select_latent(model, codes, val, sz, profile, gans)
        seconds["latent (selection, val)"] = time.perf_counter() - t0
        chosen_name, chosen_spec = res["chosen"], res["spec"]
        selections.append(res["record"])
        data["latent"] = {"split": "val", "chosen": chosen_name, "seeds": res["seeds"],
                          "runs": {k: {kk: vv for kk, vv in v.items()} for k, v in res["runs"].items()}}
        body += [f"## Selection on val: where the codes come from ({len(val['points'])} validation shapes, "
                 f"as many samples, seeds {res['seeds']}; mean over the seeds)", "",
                 md_table(["codes"] + list(CD_KEYS) + ["1-NNA-CD distance from 50"],
                          [[k] + [v[c] for c in CD_KEYS] + [v["|1-NNA-CD - 50|"]] for k, v in res["runs"].items()]),
                 "",
                 f"Chosen: **{chosen_name}** (record `{res['record']['id']}`).", ""]
    del val
    default_name = f"{GAN}, {int(sz['gan_epochs'])} epochs"

    # --- reporting, on test -----------------------------------------------------------------
    t0 = time.perf_counter()
    test = ex.load_data("test", profile=profile)
    seconds["data (test)"] = time.perf_counter() - t0
    refs = test["target_points"]
    n = len(refs)
    seeds = list(range(int(sz["gen_seeds"])))
    emd_pts = min(int(sz["gen_emd_points"]), n_out)

    def gen_budget(spec) -> dict[str, Any]:
        if spec["source"] != "gan":
            return budget(steps=ae_budget["steps"], examples=ae_budget["examples"], seconds=ae_budget["seconds"],
                          params=ae_budget["params"], note="the auto-encoder; the latent distribution is fitted, "
                                                           "not trained")
        _, secs, steps, gan_params = _gan(codes, spec["epochs"], 0, sz, gans)
        return budget(steps=ae_budget["steps"] + steps, examples=ae_budget["examples"] + steps * min(
            int(sz["gan_batch"]), len(codes)), seconds=ae_budget["seconds"] + secs,
            params=ae_budget["params"] + gan_params,
            note=f"auto-encoder {ae_budget['steps']} steps + latent GAN {steps} generator steps (as many critic "
                 "steps; seed 0's GAN training seconds)")

    none_budget = budget(steps=None, examples=None, seconds=None, params=None,
                         note="no training: training clouds drawn at random")
    first: dict[str, Any] = {}  # each test row's seed-0 samples (the categories part reuses them)
    if "test" not in args.skip:
        from course_lib.metrics_generation import pairwise_distances

        t0 = time.perf_counter()
        rows = {chosen_name: chosen_spec}
        if default_name != chosen_name:
            rows[default_name] = {"source": "gan", "epochs": int(sz["gan_epochs"])}
        rows[CODES] = {"source": "codes+noise", "noise": 0.0}
        rows[MEMORISING] = {"source": "memorising"}
        m_rr = {"cd": pairwise_distances(refs, refs, "cd", batch_size=16)}
        r_emd = refs[:, :emd_pts]
        m_rr["emd"] = pairwise_distances(r_emd, r_emd, "emd", batch_size=16)
        per_ref: dict[str, dict[str, Any]] = {}
        budgets: dict[str, Any] = {}
        for name, spec in rows.items():
            cd_seeds, emd0 = [], None
            for sd in seeds:
                if spec["source"] == "memorising":
                    smp = ex.noisy_training_baseline(train["target_points"][:, :n_out], n, seed=sd)
                else:
                    smp = ex.decode_codes(model, _codes_of(spec, codes, n, sd, sz, gans), n_out, profile=profile,
                                          seed=sd)
                cd_seeds.append(ex.generation_per_reference(smp, refs, "cd", m_rr=m_rr["cd"]))
                if sd == seeds[0]:
                    first[name] = smp
                    if name != CODES:  # the diagnostic row gets Chamfer only (the exact EMD is the costly part)
                        emd0 = ex.generation_per_reference(smp, refs, "emd", n_points=emd_pts, m_rr=m_rr["emd"])
            per_ref[name] = {**_seed_mean(cd_seeds), **(emd0 or {})}
            per_ref[name]["per_seed_means"] = [{k: _mean(v) for k, v in d.items()} for d in cd_seeds]
            budgets[name] = none_budget if spec["source"] == "memorising" else gen_budget(spec)
            print(f"  test, {name}: " + ", ".join(f"{k} {_mean(per_ref[name][k]):.4g}" for k in CD_KEYS + EMD_KEYS
                                                  if k in per_ref[name]), flush=True)
        seconds["test (sampling and metrics)"] = time.perf_counter() - t0
        table = {name: {k: _mean(v[k]) for k in CD_KEYS + EMD_KEYS if k in v} for name, v in per_ref.items()}
        data["test"] = {"table": table, "per_reference": {k: {m: v[m] for m in CD_KEYS + EMD_KEYS if m in v}
                                                          for k, v in per_ref.items()},
                        "per_seed_means": {k: v["per_seed_means"] for k, v in per_ref.items()},
                        "chosen": chosen_name, "rows": list(rows), "emd_points": emd_pts, "seeds": seeds,
                        "shapes": n, "budgets": budgets}

        def values(name, key):
            v = per_ref[name][key]
            return ex.nna_gap_values(v) if key.startswith("1-NNA") else v

        def add(cid, text, a, b, key):
            if not _claim_ok(n):
                return
            nna = key.startswith("1-NNA")
            metric = f"|{key.split(' ')[0]} - 50| (points of %)" if nna else key
            claims.append(claim(cid, text, a=a, b=b, metric=metric, values_a=values(a, key), values_b=values(b, key),
                                higher_is_better=key.startswith("COV"), unit="shapes",
                                budget={a: budgets[a], b: budgets[b]}, selected_on="val"))

        words = {"MMD": "match the held-out shapes more closely than", "COV": "cover more of the held-out shapes "
                 "than", "1-NNA": "are harder to tell from the held-out shapes than"}
        for key in CD_KEYS + EMD_KEYS:
            short, dist = key.split(" ")[0].rsplit("-", 1)
            add(f"gen_{short.lower().replace('-', '')}_{dist.lower()}_vs_memorising",
                f"Samples of ShapeGF with the {chosen_name} {words[short]} memorised training shapes ({short}-{dist})",
                chosen_name, MEMORISING, key)
        if default_name != chosen_name:
            for key in CD_KEYS:
                short = key.split(" ")[0].rsplit("-", 1)[0]
                add(f"latent_{short.lower().replace('-', '')}_cd_vs_gan",
                    f"Samples of ShapeGF with the {chosen_name} {words[short]} samples with the official "
                    f"{default_name} ({short}-CD)", chosen_name, default_name, key)
        for key in CD_KEYS:
            short = key.split(" ")[0].rsplit("-", 1)[0]
            add(f"codes_{short.lower().replace('-', '')}_cd_vs_memorising",
                f"The training codes decoded by ShapeGF {words[short]} the training shapes themselves ({short}-CD)",
                CODES, MEMORISING, key)
        body += [f"## Test: {n} samples against the {n} test shapes (CD: mean of seeds {seeds}; EMD: exact, seed "
                 f"{seeds[0]}, first {emd_pts} points of every cloud)", "",
                 md_table(["samples"] + list(CD_KEYS + EMD_KEYS) + ["steps", "train s"],
                          [[k] + [v.get(c, "-") for c in CD_KEYS + EMD_KEYS]
                           + ["-" if budgets[k]["steps"] is None else budgets[k]["steps"],
                              "-" if budgets[k]["seconds"] is None else budgets[k]["seconds"]]
                           for k, v in table.items()]), "",
                 "1-NNA: 50% = indistinguishable from the test set, 100% = separable, below 50% = closer to the test "
                 "shapes than they are to each other (copies of near neighbours).", ""]

    if "categories" not in args.skip:
        t0 = time.perf_counter()
        cats = list(train["categories"])
        per_cat: dict[str, Any] = {}
        for cat in cats:
            tr = [i for i, c in enumerate(train["category"]) if c == cat]
            te = [i for i, c in enumerate(test["category"]) if c == cat]
            c_codes, c_refs = codes[tr], refs[te]
            smp = {chosen_name: ex.decode_codes(model, _codes_of(chosen_spec, c_codes, len(te), 0, sz, {}), n_out,
                                                profile=profile, seed=0),
                   MEMORISING: ex.noisy_training_baseline(train["target_points"][tr][:, :n_out], len(te), seed=0)}
            per_cat[cat] = ex.generation_table(smp, c_refs, ("cd", "emd"), n_points={"emd": emd_pts})
            per_cat[cat]["shapes"] = {"train": len(tr), "test": len(te)}
        share: dict[str, Any] = {}
        for name, spec in ((chosen_name, chosen_spec), (default_name, {"source": "gan",
                                                                      "epochs": int(sz["gan_epochs"])})):
            smp = first.get(name)
            if smp is None:
                smp = ex.decode_codes(model, _codes_of(spec, codes, n, 0, sz, gans), n_out, profile=profile, seed=0)
            got = ex.nearest_category(smp, train["target_points"], train["category"])
            share[name] = {c: got.count(c) / len(got) for c in cats}
        share["test shapes"] = {c: list(test["category"]).count(c) / n for c in cats}
        seconds["categories"] = time.perf_counter() - t0
        data["categories"] = {"per_category": per_cat, "share": share,
                              "note": "one generator per category: the chosen source fitted to that category's "
                                      "training codes only; seed 0"}
        cols = list(CD_KEYS + EMD_KEYS)
        body += [f"## Per category (one generator per category: {chosen_name} fitted to the category's training "
                 "codes; as many samples as the category's test shapes; seed 0; too few shapes for claims)", "",
                 md_table(["category", "samples"] + cols,
                          [[cat, k] + [v[c] for c in cols] for cat, d in per_cat.items() for k, v in d.items()
                           if k != "shapes"]), "",
                 "Which category each sample of the mixed generators resembles (nearest training shape, CD); share "
                 "of the samples:", "",
                 md_table(["samples"] + cats, [[k] + [v[c] for c in cats] for k, v in share.items()]), ""]

    if "drift" not in args.skip:
        t0 = time.perf_counter()
        small = min(int(v) for v in sz["upsample_train"])
        big = int(train["points"].shape[1])
        m_small, _ = ex.train_shapegf(train, n_train_points=small, profile=profile, live_plot=False, progress=False)
        per_up = int(sz.get("upsample_test_per_category", sz["test_per_category"]))
        up = ex.load_data("test", per_category=per_up, profile=profile)
        k = min(int(sz["upsample_shapes"]), len(up["points"]))
        inputs = up["points"][:k]
        sizes = sorted({int(r) for r in sz["upsample_runtime"] if int(r) <= small} | {small})
        drift = {f"train {big}": ex.code_drift(model, inputs, sizes, reference=small),
                 f"train {small}": ex.code_drift(m_small, inputs, sizes, reference=small)}
        sparsest = sizes[0]
        d_info: dict[str, Any] = {"sizes": sizes, "reference": small, "shapes": k,
                                  "drift": {m: {str(s): v for s, v in d["drift"].items()} for m, d in drift.items()},
                                  "spacing": {m: d["spacing"] for m, d in drift.items()},
                                  "mean": {m: {str(s): _mean(v) for s, v in d["drift"].items()}
                                           for m, d in drift.items()}}
        a, b = f"ShapeGF, train {big} points", f"ShapeGF, train {small} points"
        if _claim_ok(k) and sparsest < small:
            claims.append(claim(
                f"drift_{sparsest}_vs_{small}", f"The main model's code moves less than the {small}-point model's when "
                f"the input drops from {small} to {sparsest} points (distance / median distance between shapes)",
                a=a, b=b, metric=f"code drift {small} -> {sparsest} points (shape spacings)",
                values_a=drift[f"train {big}"]["drift"][sparsest], values_b=drift[f"train {small}"]["drift"][sparsest],
                higher_is_better=False, unit="shapes", selected_on="none"))
        # the chapter benchmark's per-shape CDs of the same shapes, when its results file has them
        gf = results.get("gradient_fields", "upsampling", profile=profile)
        if gf and "cd_per_shape" in gf and int(gf.get("shapes", -1)) == k:
            cps = gf["cd_per_shape"]
            if str(big) in cps and str(small) in cps and str(sparsest) in cps[str(big)] and str(small) in cps[str(big)]:
                from scipy.stats import spearmanr

                rise = [x - y for x, y in zip(cps[str(big)][str(sparsest)], cps[str(big)][str(small)])]
                rho = spearmanr(drift[f"train {big}"]["drift"][sparsest], rise)
                d_info["spearman_drift_vs_cd_rise"] = {"rho": float(rho.statistic), "p": float(rho.pvalue),
                                                       "model": a, "from": small, "to": sparsest}
                if _claim_ok(k):
                    claims.append(claim(
                        f"upsampling_cd_{sparsest}_vs_{small}", f"The main model reconstructs from {sparsest} input "
                        f"points closer than the {small}-point model (CD, the upsampling table's cells)",
                        a=a, b=b, metric=f"CD x1e4 at {sparsest} runtime points", values_a=cps[str(big)][str(sparsest)],
                        values_b=cps[str(small)][str(sparsest)], higher_is_better=False, unit="shapes",
                        selected_on="none"))
        seconds["drift"] = time.perf_counter() - t0
        data["drift"] = d_info
        body += [f"## The upsampling table's sparse end: how far the code moves ({k} test shapes of the upsampling "
                 f"split; code at k points against the code at {small} points, in units of the median distance "
                 "between two shapes' codes at that size; mean over shapes)", "",
                 md_table(["model"] + [f"k = {s}" for s in sizes],
                          [[m] + [d_info["mean"][m][str(s)] for s in sizes] for m in d_info["mean"]]), ""]
        if "spearman_drift_vs_cd_rise" in d_info:
            sp = d_info["spearman_drift_vs_cd_rise"]
            body += [f"Spearman correlation over the shapes between the main model's drift and its CD increase "
                     f"({small} -> {sparsest} runtime points, from gradient_fields-{profile}.json): "
                     f"rho = {sp['rho']:.3g} (p = {sp['p']:.2g}).", ""]
        else:
            body += [f"(gradient_fields-{profile}.json has no per-shape upsampling table of these {k} shapes: no "
                     "correlation with the CD.)", ""]

    seconds["total"] = time.perf_counter() - t_all
    body += ["## Claims (paired over shapes; 'not shown' = within 2 standard errors)", ""]
    body += [f"- `{c['id']}`: {claim_sentence(c)}" for c in claims] or ["(none measured in this run)"]
    body += ["", "## Time (s)", "", md_table(["part", "seconds"], [[k, v] for k, v in seconds.items()])]
    note = args.note or ("ci profile: a pipeline check, the numbers mean nothing." if profile == "ci" else "")
    note = " ".join([note, *notes]).strip()
    path = write_result(result_name("generation", real), profile, "\n".join(body), notes=note, data=data)
    print("\n".join(body))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
