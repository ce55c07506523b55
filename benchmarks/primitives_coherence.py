"""Chapter 08 (primitives): does primitive m cover the same part across shapes, and how stable is training over seeds?

Run from the repository root, alone on the machine, ideally after ``benchmarks/primitives.py`` (it loads the
same checkpoints; a missing one is trained with the same call):

    COURSE_PROFILE=laptop python benchmarks/primitives_coherence.py
    COURSE_PROFILE=ci python benchmarks/primitives_coherence.py      # pipeline check; numbers meaningless

Two parts, on the chapter's variants (``benchmarks/primitives.py``'s ``VARIANTS``) and seeds (``ch08.seeds``):

* **coherence** (the reordering-trick models): :func:`course_lib.experiments.primitives.part_coherence` on every
  held-out shape: the share of its primitives whose part (the part most of their nearest target points lie on)
  is the part the same primitive index takes most often on the *other* shapes of the category, against the
  same share with the shape's primitive indices shuffled (chance).  Per shape, averaged over the seeds; the
  claim pairs the two over the held-out shapes.  Tulsiani et al. (2017) show consistent parses as a figure; this
  is that figure as a number.
* **stability**: the validation curves (exact expected loss on val, every epoch) of every variant and seed, as
  the seed's loss-evolution figure, with each run's best and last value; no comparative sentence is made from
  three curves.

Protocol 2: nothing is chosen here (``SELECTION_PARTS`` is empty); the models' epochs were chosen on val by
their training; the held-out split is read once, to report.  Writes
``benchmarks/results/primitives_coherence-<profile>-<machine>.md`` and ``primitives_coherence-<profile>.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import add_dataset_args, md_table, result_name, use_dataset_args, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import primitives as E  # noqa: E402
from course_lib.experiments.protocol import MIN_SHAPES, budget, claim, claim_sentence, goal, goal_sentence  # noqa: E402

SELECTION_PARTS: tuple[str, ...] = ()
"""Protocol 2: nothing is chosen here."""
VARIANTS = E.VARIANTS
"""The chapter's variants (``E.VARIANTS``), as ``benchmarks/primitives.py`` trains them."""
TIME_BUDGET_S = 900.0


def train_all(sz, profile: str) -> dict:
    splits = {s: E.primitive_data(s, profile) for s in ("train", "val")}
    out = {}
    for kind, method in VARIANTS:
        for seed in sz["seeds"]:
            model, hist = E.train_primitives(kind, method, splits["train"], val=splits["val"], seed=int(seed),
                                             profile=profile, progress=False, live_plot=False)
            out[(kind, method, int(seed))] = (model.eval(), hist, E.run_budget(model, hist, len(splits["train"]["points"]),
                                                                               profile))
            print(f"{kind} {method} seed {seed}: {hist.epochs_run} epochs, best {hist.best_epoch + 1}", flush=True)
    return out


def part_coherence(models: dict, held_out: dict, sz, profile: str) -> dict:
    out = {}
    claims = []
    for kind, method in VARIANTS:
        if method != "reorder":
            continue
        runs = []
        for seed in sz["seeds"]:
            model, _, bud = models[(kind, method, int(seed))]
            r = E.part_coherence(model, held_out, profile=profile, seed=int(seed))
            runs.append({"seed": int(seed), "agreement": r["agreement"].tolist(), "chance": r["chance"].tolist(),
                         "purity": r["purity"].tolist(), "table": r["table"], "budget": bud})
        shapes = len(held_out["points"])
        agree = [statistics.fmean(x for x in (run["agreement"][i] for run in runs) if x == x) for i in range(shapes)]
        chance = [statistics.fmean(x for x in (run["chance"][i] for run in runs) if x == x) for i in range(shapes)]
        out[kind] = {"runs": runs, "agreement": agree, "chance": chance,
                     "mean_agreement": statistics.fmean(agree), "mean_chance": statistics.fmean(chance),
                     "mean_purity": statistics.fmean(x for run in runs for x in run["purity"] if x == x)}
        if shapes >= MIN_SHAPES:
            none = budget(steps=None, examples=None, seconds=None, params=None, note="no learning: shuffled indices")
            claims.append(claim(f"coherence_{kind}", f"The primitives of the {kind} network (reordering trick) cover "
                                "the same part across the shapes of a category more often than chance", a=f"{kind}s",
                                b="shuffled primitive indices", metric="share of a shape's primitives on the part the "
                                "same index takes on the other shapes (mean over seeds)", values_a=agree,
                                values_b=chance, higher_is_better=True, unit="shapes",
                                budget={f"{kind}s": runs[0]["budget"], "shuffled primitive indices": none},
                                selected_on="val"))
    return {"variants": out, "claims": claims}


def part_stability(models: dict) -> dict:
    out = {}
    for (kind, method, seed), (_, hist, bud) in models.items():
        curve = [float(v["val_expected"]) for v in hist.val]
        out.setdefault(f"{kind}/{method}", []).append({"seed": seed, "val_expected": curve, "best": min(curve),
                                                       "best_epoch": int(hist.best_epoch) + 1, "last": curve[-1],
                                                       "steps": bud["steps"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--note", default="")
    add_dataset_args(ap)
    args = ap.parse_args()
    real = use_dataset_args(args)
    if real is not None:
        raise SystemExit(f"benchmarks/primitives_coherence.py cannot run on {real}: coherence needs ShapeNet-lite's "
                         "part labels (real meshes have none); the stability curves are benchmarks/primitives.py's "
                         f"training on {real} (run it with --dataset {real})")
    profile = config.get_profile()
    sz = config.sizes(profile=profile, prefix="ch08.")
    t0 = time.perf_counter()
    models = train_all(sz, profile)
    held_out = E.primitive_data("test", profile)  # read once, to report
    data = {"variants": [list(v) for v in VARIANTS], "seeds": [int(s) for s in sz["seeds"]],
            "n_test": len(held_out["points"]), "n_primitives": int(sz["n_primitives"])}
    data["coherence"] = part_coherence(models, held_out, sz, profile)
    data["stability"] = part_stability(models)
    data["claims"] = data["coherence"].pop("claims")
    data["selections"] = []
    data["total_s"] = time.perf_counter() - t0
    data["goals"] = [goal("coherence_time", "the whole benchmark in at most 15 minutes (wall seconds, checkpoints "
                          "trained if missing)", data["total_s"], TIME_BUDGET_S, comparison="<=")]
    body = [f"## Inter-object coherence ({data['n_test']} held-out shapes, {sz['n_primitives']} primitives, seeds "
            f"{data['seeds']})", "",
            "Per shape: the share of its primitives whose part (majority of its nearest target points) is the part the "
            "same primitive index takes most often on the other shapes of the category; chance: the same with the "
            "shape's primitive indices shuffled (50 shuffles). Means over the shapes (each shape averaged over the "
            "seeds); purity: the mean share of a primitive's points on its own part.", "",
            md_table(["network", "agreement", "chance", "purity"],
                     [[k, f"{v['mean_agreement']:.3f}", f"{v['mean_chance']:.3f}", f"{v['mean_purity']:.3f}"]
                      for k, v in data["coherence"]["variants"].items()]), ""]
    for kind, v in data["coherence"]["variants"].items():
        t = [r for r in v["runs"][0]["table"]]
        body += [f"### {kind}s, seed {v['runs'][0]['seed']}: each primitive's part across the shapes", "",
                 md_table(["category", "primitive", "shapes", "part", "share"],
                          [[r["category"], r["primitive"], r["shapes"], r["part"], f"{r['share']:.2f}"] for r in t]), ""]
    body += ["## Stability over seeds (exact expected loss on val)", "",
             md_table(["variant", "seed", "steps", "best", "best epoch", "last"],
                      [[k, r["seed"], r["steps"], f"{r['best']:.4g}", r["best_epoch"], f"{r['last']:.4g}"]
                       for k, rs in data["stability"].items() for r in rs]), ""]
    if data["claims"]:
        body += ["## Claims", "", *[f"- {claim_sentence(c)}" for c in data["claims"]], ""]
    body += ["## Goals", "", *[f"- {goal_sentence(g)}" for g in data["goals"]], ""]
    notes = "ci profile: a pipeline check only; the numbers mean nothing." if profile == "ci" else ""
    path = write_result(result_name("primitives_coherence", real), profile, "\n".join(body), notes=(notes + " " +
                        args.note).strip(), data=data)
    print("\n".join(body))
    print(f"wrote {path} in {data['total_s']:.0f} s")


if __name__ == "__main__":
    main()
