"""How held out is held out: each test shape against its nearest training shape, and chapter 10's memoriser.

Run from the repository root, alone on the machine:

    COURSE_PROFILE=laptop python benchmarks/splits.py                 # every category, the memoriser
    COURSE_PROFILE=ci python benchmarks/splits.py                     # pipeline check (numbers meaningless)
    COURSE_PROFILE=laptop python benchmarks/splits.py --categories chair airplane car --per-category 40
    COURSE_PROFILE=laptop python benchmarks/splits.py --variety wide  # ShapeNet-lite's wide family

Writes ``benchmarks/results/splits-<profile>-<machine>.md`` and ``benchmarks/results/splits-<profile>.json``
(read by ``lectures/01_data_and_representations.ipynb``).  Issue #32, item 6.  With ``--variety wide`` the
shapes are ``make_shape(category, seed, variety="wide")`` of the same split seeds, built and sampled here
(never from a cache), and the files are ``splits-wide-*``.

Two parts, with the laptop profile's sizes (those of chapter 10, ``ch10.*`` in ``course_lib/config.py``,
whose memorising baseline raised the question):

1. ``distances``, per category (default: every category of ShapeNet-lite): the ``ch10.train_per_category``
   training shapes (laptop 40) and ``ch10.test_per_category`` test shapes (laptop 10), sampled with
   ``ch10.n_target`` points (laptop 1,024, the points chapter 10 scores at; ``--points`` changes it).  For each
   test shape: the Chamfer distance to its nearest training shape of the category (``target_points``, stream 1,
   on both sides), its oracle distance (``target_points`` against ``oracle_points``, stream 2: a resampling of
   itself) and, for each training shape, the distance to its nearest *other* training shape of the category
   (leave-one-out, the same set size less one).  Convention:
   :data:`course_lib.experiments.retrieval.CONVENTION` (PointFlow's CD, printed x 1e4).  Goal
   ``no_near_duplicates``: at most 5 % of the test shapes have a training shape within 2x their oracle distance
   (the factor and the threshold of issue #32).  Claim ``oracle_vs_nearest``: a test shape's resampling against
   its nearest training shape, paired over every test shape.
2. ``memoriser``: chapter 10's memorising "generator" (``noisy_training_baseline``: as many training shapes as
   test shapes, drawn at random with replacement, plus Gaussian noise of std 0.02) on chapter 10's categories
   and splits, its MMD-CD / COV-CD / 1-NNA-CD against the test shapes with and without noise (seed 0: the
   chapter's own draw), then the spread of the noise-free 1-NNA over ``--draws`` draws (with replacement as the
   chapter, and stratified: as many shapes per category as the test split, without replacement), over
   ``--noisy-draws`` noisy draws, and the 1-NNA two exchangeable sets of these sizes give in expectation.

No choice is made here (``SELECTION_PARTS = ()``): the sizes are chapter 10's, the factor and the threshold
the issue's.  Cost: the "Time" table of the result file; the ci run takes about half a minute on 2 cores (most
of it generating the shapes), the laptop run an estimated 3-6 minutes (every shape of 10 categories, 1,024
points: about 12,000 within-category and 15,000 memoriser Chamfer pairs at a few ms each).
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import md_table, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.data import CATEGORIES, make_shape  # noqa: E402
from course_lib.data.shapes import VARIETIES  # noqa: E402
from course_lib.data.splits import SAMPLING_STREAMS, split_seeds  # noqa: E402
from course_lib.experiments import gradient_fields as gf  # noqa: E402
from course_lib.experiments import retrieval as rt  # noqa: E402
from course_lib.experiments.common import budget, claim, goal, load_split  # noqa: E402
from course_lib.experiments.protocol import MIN_SHAPES  # noqa: E402
from course_lib.metrics_generation import SCALES, mmd_cov, one_nna  # noqa: E402

SELECTION_PARTS: tuple[str, ...] = ()
"""Protocol 2: this benchmark measures the splits; it chooses nothing (sizes from ``ch10.*``, factor and threshold
from issue #32)."""

FACTOR = 2.0
"""A test shape with a training shape within this many oracle distances has a near-duplicate (issue #32)."""
NEAR_DUPLICATE_TARGET = 0.05
"""The goal: at most this fraction of test shapes has a near-duplicate in the training set."""
CD_SCALE = 1e4
"""Distances are printed x 1e4 (chapter 10's convention)."""
NOISE = float(inspect.signature(gf.noisy_training_baseline).parameters["noise"].default)
"""Chapter 10's memoriser noise (the default of ``noisy_training_baseline``)."""


def _stats(values: list[float]) -> dict[str, float]:
    return {"k": len(values), "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0, "min": min(values), "max": max(values)}


def load_points(split, representations, categories, n, profile, n_points, variety="base"):
    """``load_split``'s ``target_points`` / ``oracle_points``, ``seed`` and ``label`` of ``split``.

    ``variety="base"`` while the base family is active (``main`` sets ``COURSE_VARIETY`` to ``--variety``):
    :func:`load_split` itself (ShapeNetLite and its caches).  Otherwise: the same split seeds and sampling streams,
    from ``make_shape(category, seed, variety=variety)``, built here and never cached (so that no cache file of
    one family can stand for a shape of the other).
    """
    if variety == "base" and config.variety() == "base":
        return load_split(split, representations, categories=list(categories), shapes_per_category=n,
                          profile=profile, n_target=n_points)
    stream = {"target_points": SAMPLING_STREAMS["target"], "oracle_points": SAMPLING_STREAMS["oracle"]}
    out: dict = {rep: [] for rep in representations}
    seeds, labels = [], []
    for cat in categories:
        for seed in split_seeds(split, n):
            shape = make_shape(cat, seed, variety=variety)
            for rep in representations:
                out[rep].append(shape.sample_surface(n_points, stream=stream[rep])[0])
            seeds.append(seed)
            labels.append(shape.label)
    res = {rep: torch.stack(v) for rep, v in out.items()}
    res["seed"] = torch.tensor(seeds, dtype=torch.long)
    res["label"] = torch.tensor(labels, dtype=torch.long)
    return res


def part_distances(categories, n_train, n_test, n_points, chunk, profile, seconds, variety="base"):
    """Per category: nearest training shape, oracle and leave-one-out distances (lists, one per shape)."""
    per_shape, groups = {}, {}
    for cat in categories:
        t0 = time.perf_counter()
        train = load_points("train", ("target_points",), [cat], n_train, profile, n_points, variety)
        test = load_points("test", ("target_points", "oracle_points"), [cat], n_test, profile, n_points, variety)
        t1 = time.perf_counter()
        near = rt.nearest_training_distances(test["target_points"], train["target_points"], chunk=chunk)
        orc = rt.oracle_distances(test["target_points"], test["oracle_points"], chunk=chunk)
        loo = rt.leave_one_out_distances(train["target_points"], chunk=chunk)
        t2 = time.perf_counter()
        seconds[f"{cat}: data"] = t1 - t0
        seconds[f"{cat}: distances"] = t2 - t1
        groups[cat] = {"nearest": near.distance, "oracle": orc, "loo": loo.distance}
        per_shape[cat] = {"test_seed": test["seed"].tolist(), "nearest": near.distance.tolist(),
                          "nearest_seed": train["seed"][near.index].tolist(), "oracle": orc.tolist(),
                          "train_seed": train["seed"].tolist(), "loo": loo.distance.tolist(),
                          "loo_seed": train["seed"][loo.index].tolist()}
        print(f"{cat}: nearest/oracle median {float((near.distance / orc).median()):.3g}, "
              f"{t2 - t0:.1f} s", flush=True)
    return per_shape, groups


def part_memoriser(categories, n_train, n_test, n_points, draws, noisy_draws, chunk, profile, seconds,
                   variety="base"):
    """Chapter 10's memorising baseline: its generation metrics with and without noise, and their spread."""
    t0 = time.perf_counter()
    train = load_points("train", ("target_points",), categories, n_train, profile, n_points, variety)
    test = load_points("test", ("target_points",), categories, n_test, profile, n_points, variety)
    pool, refs = train["target_points"], test["target_points"]
    seconds["memoriser: data"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    d_rr = rt.chamfer_matrix(refs, chunk=chunk)
    d_rp = rt.chamfer_matrix(refs, pool, chunk=chunk)
    d_pp = rt.chamfer_matrix(pool, chunk=chunk)
    seconds["memoriser: distance matrices"] = time.perf_counter() - t0
    n = len(refs)

    def metrics(d_rs, d_ss):
        m = mmd_cov(d_rs)
        nna = one_nna(d_rr, d_ss, d_rs)
        return {"MMD-CD x1e3": m["mmd"] * SCALES["mmd-cd"], "COV-CD %": m["cov"] * SCALES["cov"],
                "1-NNA-CD %": nna["acc"] * SCALES["1-nna"], "1-nna": nna["acc"], "1-nna_t": nna["acc_t"],
                "1-nna_f": nna["acc_f"]}

    t0 = time.perf_counter()
    idx0 = rt.memoriser_indices(len(pool), n, seed=0)
    copies = metrics(d_rp[:, idx0], d_pp[idx0][:, idx0])
    noisy_runs = []
    for s in range(max(1, noisy_draws)):
        smp = gf.noisy_training_baseline(pool, n, seed=s)  # chapter 10's call (its default noise)
        noisy_runs.append(metrics(rt.chamfer_matrix(refs, smp, chunk=chunk), rt.chamfer_matrix(smp, chunk=chunk)))
    seconds["memoriser: noisy draws"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = [rt.one_nna_subset(d_rr, d_rp, d_pp, rt.memoriser_indices(len(pool), n, seed=s))["acc"]
           for s in range(draws)]
    labels = train["label"]
    strat = ([rt.one_nna_subset(d_rr, d_rp, d_pp, rt.stratified_indices(labels, n_test, seed=s))["acc"]
              for s in range(draws)] if n_train >= n_test else [])  # the test split's design, if the pool allows
    seconds["memoriser: noise-free draws"] = time.perf_counter() - t0
    cross = rt.nearest_from_matrix(d_rp).index
    return {
        "categories": list(categories), "n_refs": n, "n_samples": n, "n_pool": len(pool), "noise": NOISE,
        "n_points": n_points,
        "one_nna": {"noisy": noisy_runs[0], "copies": copies},
        "draws": {"replacement": _stats(rep), **({"stratified": _stats(strat)} if strat else {}),
                  "noisy": _stats([r["1-nna"] for r in noisy_runs])},
        "expected_exchangeable": rt.expected_one_nna(n, n),
        "nearest_of_other_category": float((labels[cross] != test["label"]).double().mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--categories", nargs="+", default=None, choices=CATEGORIES,
                    help="categories of the distance part (default: all of ShapeNet-lite)")
    ap.add_argument("--per-category", type=int, default=None,
                    help="training shapes per category (default ch10.train_per_category; the memoriser too)")
    ap.add_argument("--test-per-category", type=int, default=None,
                    help="test shapes per category (default ch10.test_per_category; the memoriser too)")
    ap.add_argument("--points", type=int, default=None, help="points per cloud (default ch10.n_target)")
    ap.add_argument("--memoriser-categories", nargs="+", default=None, choices=CATEGORIES,
                    help="the memoriser's categories (default ch10.categories)")
    ap.add_argument("--no-memoriser", action="store_true", help="skip the memoriser part")
    ap.add_argument("--draws", type=int, default=1000, help="noise-free memoriser draws (cheap: one matrix)")
    ap.add_argument("--noisy-draws", type=int, default=None, help="noisy memoriser draws (default: ci 2, else 5)")
    ap.add_argument("--chunk", type=int, default=256, help="cloud pairs per Chamfer call")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--variety", default=config.variety(), choices=VARIETIES,
                    help="ShapeNet-lite family (default COURSE_VARIETY, else the course's default family; base: "
                         "results in splits-*; wide: make_shape(..., variety='wide'), results in splits-wide-*)")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    os.environ[config.ENV_VARIETY] = args.variety  # the results file, caches and provenance follow the family
    if args.threads:
        torch.set_num_threads(args.threads)
    profile = config.get_profile()
    sz = dict(config.sizes(profile, prefix="ch10."))
    cats = tuple(c for c in CATEGORIES if c in (args.categories or CATEGORIES))
    n_train = int(args.per_category or sz["train_per_category"])
    n_test = int(args.test_per_category or sz["test_per_category"])
    n_points = int(args.points or sz["n_target"])
    noisy_draws = args.noisy_draws if args.noisy_draws is not None else (2 if profile == "ci" else 5)
    if n_train < 2:
        raise SystemExit("--per-category must be >= 2 (leave-one-out needs two training shapes per category)")
    if args.draws < 2 or noisy_draws < 1:
        raise SystemExit("--draws must be >= 2 (a spread needs two draws) and --noisy-draws >= 1")
    t_all = time.perf_counter()
    seconds: dict[str, float] = {}

    per_shape, groups = part_distances(cats, n_train, n_test, n_points, args.chunk, profile, seconds, args.variety)
    summary = rt.summarize_splits(groups, factor=FACTOR)
    pooled = summary.get("all") or next(iter(summary.values()))
    goals = [goal("no_near_duplicates",
                  f"fraction of test shapes with a training shape of their category within {FACTOR:g}x their oracle "
                  f"Chamfer distance ({len(cats)} categories, {n_train} training and {n_test} test shapes each, "
                  f"{n_points} points; near-duplicate threshold: at most {NEAR_DUPLICATE_TARGET:.0%})",
                  pooled["frac_within"], NEAR_DUPLICATE_TARGET, comparison="<=")]
    claims = []
    near_all = torch.cat([g["nearest"] for g in groups.values()])
    orc_all = torch.cat([g["oracle"] for g in groups.values()])
    none_budget = budget(steps=None, examples=None, seconds=None, params=None, note="no training")
    if len(near_all) >= MIN_SHAPES:
        claims.append(claim("oracle_vs_nearest", "A test shape's own resampling is closer to it than its nearest "
                            "training shape (CD)", a="resampling (oracle)", b="nearest training shape",
                            metric="CD (PointFlow, raw)", values_a=orc_all, values_b=near_all,
                            higher_is_better=False, unit="shapes",
                            budget={"resampling (oracle)": none_budget, "nearest training shape": none_budget},
                            selected_on="none"))
    else:
        print(f"claim oracle_vs_nearest skipped: {len(near_all)} test shapes < {MIN_SHAPES}", flush=True)

    data: dict = {"variety": args.variety, "convention": rt.CONVENTION, "scale": CD_SCALE, "factor": FACTOR,
                  "near_duplicate_target": NEAR_DUPLICATE_TARGET, "categories": list(cats),
                  "sizes": {"train_per_category": n_train, "test_per_category": n_test, "n_points": n_points},
                  "summary": summary, "per_shape": per_shape, "seconds": seconds}
    body = [f"ShapeNet-lite variety: {args.variety}.", "", f"Convention: {rt.CONVENTION}; distances x {CD_SCALE:g}.", "",
            f"## Test shapes against their nearest training shape ({n_train} training and {n_test} test shapes per "
            f"category, {n_points} points)", "",
            md_table(["category", "test", "train", "oracle", "nearest", "leave-one-out", "nearest/oracle",
                      "closest pair", "nearest/l-o-o", f"within {FACTOR:g}x oracle"],
                     [[k, s["n_test"], s["n_train"], s["oracle"] * CD_SCALE, s["nearest"] * CD_SCALE,
                       s["loo"] * CD_SCALE, s["ratio_oracle"], s["ratio_oracle_min"], s["ratio_loo"],
                       f"{100 * s['frac_within']:.0f}%"] for k, s in summary.items()]), "",
            "Distances are medians; nearest/oracle is the median over test shapes of the per-shape ratio, closest "
            "pair its smallest value, nearest/l-o-o the ratio of the medians.", ""]

    if not args.no_memoriser:
        mcats = tuple(c for c in CATEGORIES if c in (args.memoriser_categories or sz["categories"]))
        mem = part_memoriser(mcats, n_train, n_test, n_points, int(args.draws), int(noisy_draws), args.chunk,
                             profile, seconds, args.variety)
        data["memoriser"] = mem
        cols = ["MMD-CD x1e3", "COV-CD %", "1-NNA-CD %"]
        d = mem["draws"]
        body += [f"## Chapter 10's memoriser ({', '.join(mcats)}: {mem['n_samples']} training shapes drawn with "
                 f"replacement against {mem['n_refs']} test shapes)", "",
                 md_table(["samples (seed 0, the chapter's draw)"] + cols,
                          [[f"training shapes + noise {NOISE:g}"] + [mem["one_nna"]["noisy"][c] for c in cols],
                           ["training shapes (copies)"] + [mem["one_nna"]["copies"][c] for c in cols]]), "",
                 md_table(["1-NNA-CD % over draws", "draws", "mean", "sd", "min", "max"],
                          [[name, v["k"], 100 * v["mean"], 100 * v["sd"], 100 * v["min"], 100 * v["max"]]
                           for name, v in (("with replacement, no noise (the chapter's draw)", d["replacement"]),
                                           ("stratified without replacement, no noise", d.get("stratified")),
                                           (f"with replacement, noise {NOISE:g}", d["noisy"])) if v]), "",
                 f"Two exchangeable sets of {mem['n_refs']} and {mem['n_samples']} clouds: 1-NNA "
                 f"{100 * mem['expected_exchangeable']:.2f}% in expectation. Test shapes whose nearest training "
                 f"shape (over all {len(mcats)} categories) is of another category: "
                 f"{100 * mem['nearest_of_other_category']:.0f}%.", ""]

    data["goals"], data["claims"] = goals, claims
    seconds["total"] = time.perf_counter() - t_all
    text = rt.describe_splits(data)
    print(text, flush=True)
    body += ["## What the measurement shows", "", text, "",
             "## Goals", "", md_table(["goal", "value", "target", "met"],
                                      [[g["id"], g["value"], f"{g['comparison']} {g['target']}",
                                        "yes" if g["met"] else "NO"] for g in goals]), ""]
    if claims:
        from course_lib.experiments.protocol import claim_sentence

        body += ["## Claims", ""] + [f"- {claim_sentence(c)}" for c in claims] + [""]
    body += ["## Time (s)", "", md_table(["part", "seconds"], [[k, v] for k, v in seconds.items()])]
    note = args.note or ("ci profile: a pipeline check, the numbers mean nothing." if profile == "ci" else "")
    name = "splits" if args.variety == "base" else f"splits-{args.variety}"
    path = write_result(name, profile, "\n".join(body), notes=note, data=data)
    print(f"wrote {path} ({seconds['total']:.0f} s)")


if __name__ == "__main__":
    main()
