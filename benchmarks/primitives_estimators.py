"""Chapter 08 (primitives): can existence be relaxed?  Straight-through and Concrete estimators beside REINFORCE.

Run from the repository root, alone on the machine:

    COURSE_PROFILE=laptop python benchmarks/primitives_estimators.py   # a few minutes on 2 idle cores
    COURSE_PROFILE=ci python benchmarks/primitives_estimators.py       # pipeline check; numbers meaningless

The seed asks whether the existence of a primitive can be reparameterised instead of estimated with REINFORCE.
This benchmark answers it without training anything new: for the chapter's cuboid network (the reordering trick,
the first of ``ch08.seeds``, the checkpoint ``benchmarks/primitives.py`` trains or loads) and for the same
network at its initialisation, on each held-out shape, :func:`course_lib.experiments.primitives.existence_estimators`
measures five single-sample estimators of the gradient of the expected loss with respect to the existence
probabilities against the exact gradient (the reordering trick's, by autograd):

* REINFORCE without a baseline and with the constant baseline ``E[L]`` (unbiased; variance exact, by enumerating
  the ``2^M`` configurations);
* straight-through with the multilinear relaxation (``relaxed_loss``: the loss at fractional existence defined as
  the reordering trick's formula); mean and variance exact by enumeration;
* the binary Concrete (Gumbel-sigmoid) relaxation at temperatures ``TAUS``, soft forward and hard forward
  (straight-through Gumbel); bias and variance by Monte Carlo (``--mc`` draws per shape).

Every number is relative to the exact gradient's squared norm of its shape (``bias / |g|^2``,
``variance / |g|^2``), so that shapes weigh alike.  The claims compare single-sample mean squared errors paired
over the held-out shapes (log10 ratios); the goals check that the straight-through mean equals the exact gradient
(the reason it is unbiased: the relaxation is multilinear) and the run time.

Protocol 2: nothing is chosen here (``SELECTION_PARTS`` is empty): the temperatures are the usual grid, all
reported; the model's epoch was chosen on val by its training.  Writes
``benchmarks/results/primitives_estimators-<profile>-<machine>.md`` and ``primitives_estimators-<profile>.json``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import add_dataset_args, md_table, result_name, use_dataset_args, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import primitives as E  # noqa: E402
from course_lib.experiments.protocol import MIN_SHAPES, budget, claim, claim_sentence, goal, goal_sentence  # noqa: E402
from course_lib.models import primitives as P  # noqa: E402

SELECTION_PARTS: tuple[str, ...] = ()
"""Protocol 2: nothing is chosen here."""
TAUS = (0.1, 0.5, 1.0)
"""The Concrete temperatures (all reported; none is chosen)."""
KS = (1, 64)
"""Samples per estimate in the MSE table: ``bias^2 + variance / K``."""
TIME_BUDGET_S = 600.0
NO_TRAINING = budget(steps=None, examples=None, seconds=None, params=None,
                     note="one fixed network: estimators of its gradient, nothing trained")


def _label(r: dict) -> str:
    names = {"reinforce": "REINFORCE", "reinforce_baseline": "REINFORCE, baseline E[L]",
             "straight_through": "straight-through (multilinear)", "concrete": "Concrete",
             "concrete_hard": "straight-through Gumbel (hard forward)"}
    return names[r["estimator"]] + ("" if r["tau"] is None else f", tau = {r['tau']}")


def measure(model: P.PrimitiveNet, held_out: dict, sz, mc: int, n_shapes: int) -> list[dict]:
    """Per held-out shape: every estimator's row, relative to the exact gradient's squared norm."""
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(n_shapes):
        with torch.no_grad():
            prims = model(held_out["points"][i:i + 1])
            terms = P.primitive_terms(prims, held_out["target_points"][i:i + 1], sz["n_samples"], generator=g)
        res = E.existence_estimators(terms, taus=TAUS, mc_samples=mc, empty=sz["empty"], parsimony=sz["parsimony"],
                                     seed=i)
        n2 = res["exact_norm2"]
        rows = {_label(r): {"bias": r["bias_norm2"] / n2, "variance": r["variance"] / n2,
                            "max_z": r["max_z"], "method": r["method"]} for r in res["rows"]}
        out.append({"shape": i, "category": held_out["category"][i], "exact_norm2": n2, "prob": res["prob"],
                    "rows": rows})
    return out


def summary(per_shape: list[dict]) -> list[dict]:
    labels = list(per_shape[0]["rows"])
    rows = []
    for lab in labels:
        b = [s["rows"][lab]["bias"] for s in per_shape]
        v = [s["rows"][lab]["variance"] for s in per_shape]
        row = {"estimator": lab, "method": per_shape[0]["rows"][lab]["method"],
               "median bias / |g|^2": statistics.median(b), "median variance / |g|^2": statistics.median(v),
               "max z (bias)": max(s["rows"][lab]["max_z"] for s in per_shape)}
        for k in KS:
            row[f"median MSE / |g|^2, K = {k}"] = statistics.median(bi + vi / k for bi, vi in zip(b, v))
        rows.append(row)
    return rows


CLAIMS = (  # id, a, b, sentence
    ("st_vs_reinforce", "straight-through (multilinear)", "REINFORCE, baseline E[L]",
     "The straight-through estimator (multilinear relaxation) has a lower single-sample error than REINFORCE with "
     "a baseline"),
    ("concrete05_vs_reinforce", "Concrete, tau = 0.5", "REINFORCE, baseline E[L]",
     "The Concrete estimator at tau = 0.5 has a lower single-sample error than REINFORCE with a baseline"),
    ("concrete01_vs_reinforce", "Concrete, tau = 0.1", "REINFORCE, baseline E[L]",
     "The Concrete estimator at tau = 0.1 has a lower single-sample error than REINFORCE with a baseline"),
    ("hard_vs_soft_concrete", "straight-through Gumbel (hard forward), tau = 0.5", "Concrete, tau = 0.5",
     "The straight-through Gumbel estimator (hard forward) has a lower single-sample error than the soft Concrete "
     "estimator at tau = 0.5"),
    ("st_vs_concrete05", "straight-through (multilinear)", "Concrete, tau = 0.5",
     "The straight-through estimator (multilinear relaxation) has a lower single-sample error than the Concrete "
     "estimator at tau = 0.5"),
)


def claims_for(per_shape: list[dict], which: str) -> list[dict]:
    out = []
    if len(per_shape) < MIN_SHAPES:
        return out
    for cid, a, b, text in CLAIMS:
        va = [math.log10(s["rows"][a]["bias"] + s["rows"][a]["variance"]) for s in per_shape]
        vb = [math.log10(s["rows"][b]["bias"] + s["rows"][b]["variance"]) for s in per_shape]
        out.append(claim(f"{cid}_{which}", f"{text} ({which} network)", a=a, b=b,
                         metric="log10 single-sample MSE / |g|^2", values_a=va, values_b=vb, higher_is_better=False,
                         unit="shapes", budget={a: NO_TRAINING, b: NO_TRAINING}, selected_on="none"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mc", type=int, default=None, help="Monte Carlo draws per shape (default: 4000; 200 in ci)")
    ap.add_argument("--note", default="")
    add_dataset_args(ap)
    args = ap.parse_args()
    real = use_dataset_args(args)
    profile = config.get_profile()
    sz = config.sizes(profile=profile, prefix="ch08.")
    mc = int(args.mc or (200 if profile == "ci" else 4000))
    t0 = time.perf_counter()
    splits = {s: E.primitive_data(s, profile) for s in ("train", "val")}
    seed = int(sz["seeds"][0])
    trained, hist = E.train_primitives("cuboid", "reorder", splits["train"], val=splits["val"], seed=seed,
                                       profile=profile, progress=False, live_plot=False)
    torch.manual_seed(seed)
    initial = E.build_model("cuboid", profile)  # the same architecture, freshly initialised
    held_out = E.primitive_data("test", profile)  # read once, to report
    n_shapes = len(held_out["points"])
    data: dict = {"taus": list(TAUS), "ks": list(KS), "mc_samples": mc, "n_shapes": n_shapes,
                  "n_primitives": int(sz["n_primitives"]), "model": f"cuboid, reordering trick, seed {seed}",
                  "trained_epochs": int(hist.epochs_run), "best_epoch": int(hist.best_epoch) + 1}
    claims, seconds = [], {}
    for which, model in (("trained", trained), ("initial", initial)):
        t = time.perf_counter()
        model.eval()
        per = measure(model, held_out, sz, mc, n_shapes)
        seconds[which] = time.perf_counter() - t
        data[which] = {"per_shape": per, "summary": summary(per),
                       "mean_prob": statistics.mean(p for s in per for p in s["prob"])}
        claims += claims_for(per, which)
        print(f"{which}: {seconds[which]:.0f} s", flush=True)
    data["claims"] = claims
    data["selections"] = []
    data["seconds"] = seconds
    data["total_s"] = time.perf_counter() - t0
    st = max(s["rows"]["straight-through (multilinear)"]["bias"] for w in ("trained", "initial")
             for s in data[w]["per_shape"])
    data["goals"] = [
        goal("st_unbiased", "straight-through with the multilinear relaxation: its exact mean equals the exact "
             "gradient (largest |E[g^] - g|^2 / |g|^2 over the shapes and both networks)", st, 1e-12,
             comparison="<="),
        goal("estimators_time", "the whole benchmark in at most 10 minutes (wall seconds)", data["total_s"],
             TIME_BUDGET_S, comparison="<="),
    ]
    body = [f"## Estimators of the existence gradient ({n_shapes} held-out shapes, M = {sz['n_primitives']} cuboids)",
            "",
            f"Model: {data['model']} ({data['trained_epochs']} epochs, epoch {data['best_epoch']} kept on val), and the "
            f"same architecture at initialisation; existence probabilities clamped to [1e-4, 1 - 1e-4] so that every "
            f"estimator is defined (existence_estimators' clamp). Per shape: bias and variance of one sample, relative to the exact "
            f"gradient's squared norm; enumeration rows are exact, Monte Carlo rows from {mc} draws (their bias is the "
            f"squared norm of the sample mean's difference less its expected noise, floored at 0; max z: the largest "
            f"|mean - g| / s.e. over the components and shapes). MSE at K samples = bias + variance / K. Medians over "
            f"the shapes.", ""]
    for which in ("trained", "initial"):
        d = data[which]
        body += [f"### {which} network (mean existence probability {d['mean_prob']:.3f})", "",
                 md_table(list(d["summary"][0]), [list(r.values()) for r in d["summary"]]), ""]
    if claims:
        body += ["## Claims (paired over the held-out shapes; 'not separated' = within 2 standard errors)", "",
                 *[f"- {claim_sentence(c)}" for c in claims], ""]
    body += ["## Goals", "", *[f"- {goal_sentence(g)}" for g in data["goals"]], ""]
    notes = "ci profile: a pipeline check only; the numbers mean nothing." if profile == "ci" else ""
    if real is not None:
        data["dataset"] = real
        notes = f"Dataset: {real} (real meshes). " + notes
    path = write_result(result_name("primitives_estimators", real), profile, "\n".join(body), notes=notes, data=data)
    print("\n".join(body))
    print(f"wrote {path} in {data['total_s']:.0f} s")


if __name__ == "__main__":
    main()
