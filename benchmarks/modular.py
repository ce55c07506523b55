"""Encoders x decoders: every input with every output representation, one recipe, one budget, one score.

Run from the repository root, alone on the machine:

    COURSE_PROFILE=laptop python benchmarks/modular.py        # 18 pairs: about 15 min to train on 2 cores
    COURSE_PROFILE=ci python benchmarks/modular.py            # pipeline check (numbers meaningless)

Writes ``benchmarks/results/modular-<profile>-<machine>.md`` and ``modular-<profile>.json`` (read by
``lectures/11_evaluation.ipynb``).

Protocol 2: every pair (:class:`course_lib.experiments.modular.ModularNet`) is trained inside the selection part
``part_train`` on the train split, with the same optimiser, learning rate (chapters 05-07's, not tuned per pair),
batch and steps (``ch11.mod_*``), and keeps the epoch its own validation loss prefers; the test split is read
after, once, to score: Chamfer x1e3 (AtlasNet's convention) between the output surface's samples and the test
target points, and IoU at the test occupancy samples (half of them near the surface) where the output encloses a
volume (the cuboids of the primitive decoder enclose their union).  Claims pair two cells over the test shapes: for each decoder, the encoders against each other (what the
input contributes); for each encoder, the decoders against the point decoder on Chamfer (what the output
representation contributes).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import add_dataset_args, md_table, result_name, use_dataset_args, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import modular as MD  # noqa: E402
from course_lib.experiments.protocol import (  # noqa: E402
    MIN_SHAPES,
    claim,
    claim_sentence,
    goal,
    goal_sentence,
    selection_part,
)

SELECTION_PARTS = ("part_train",)
"""Protocol 2: ``part_train`` trains every pair and picks each one's epoch on its own validation loss."""


@selection_part
def part_train(profile: str, retrain: bool) -> dict:
    """Every pair trained on the train split, each at the epoch its own val loss prefers (no test shape read)."""
    train = MD.modular_data("train", profile)
    val = MD.modular_data("val", profile)
    return {"train": train, "models": {(e, d): MD.train_pair(e, d, train, val, profile, progress=True, retrain=retrain)
                                       for e in MD.ENCODERS for d in MD.DECODERS}}


def _cell(v: list[float]) -> str:
    a = np.asarray(v, dtype=float)
    if np.isnan(a).all():
        return "-"
    return f"{np.nanmean(a):.4g} ± {np.nanstd(a, ddof=1) / np.sqrt(np.isfinite(a).sum()):.2g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--note", default="")
    add_dataset_args(ap)
    args = ap.parse_args()
    real = use_dataset_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    profile = config.get_profile()
    s = config.sizes(profile, prefix="ch11.")
    sz = {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.items() if k.startswith("mod_")}
    t0 = time.perf_counter()
    trained = part_train(profile, args.retrain)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    test = MD.modular_data("test", profile)
    cells = MD.score_cells(trained["models"], trained["train"], test, profile)
    score_s = time.perf_counter() - t0
    shapes = [f"{c}/{int(sd)}" for c, sd in zip(test["category"], test["seed"])]
    claims = []
    if len(shapes) >= MIN_SHAPES:
        budget = {k: c["budget"] for k, c in cells.items()}
        for d in MD.DECODERS:
            for i, a in enumerate(MD.ENCODERS):
                for b in MD.ENCODERS[i + 1:]:
                    ka, kb = f"{a}/{d}", f"{b}/{d}"
                    claims.append(claim(f"mod-enc-{d}-{a}-vs-{b}", f"With the {d} decoder, the {a} encoder ends "
                                        f"closer to the true surface than the {b} encoder (Chamfer, test shapes)",
                                        a=ka, b=kb, metric="CD x1e3", values_a=cells[ka]["cd"], values_b=cells[kb]["cd"],
                                        higher_is_better=False, unit="shapes", budget=budget))
        for e in MD.ENCODERS:
            for d in MD.DECODERS:
                if d == "points":
                    continue
                ka, kb = f"{e}/{d}", f"{e}/points"
                claims.append(claim(f"mod-dec-{e}-{d}-vs-points", f"From the {e} encoder, the {d} decoder ends closer "
                                    "to the true surface than the point decoder (Chamfer, test shapes)",
                                    a=ka, b=kb, metric="CD x1e3", values_a=cells[ka]["cd"], values_b=cells[kb]["cd"],
                                    higher_is_better=False, unit="shapes", budget=budget))
    rows_cd = [[e] + [_cell(cells[f"{e}/{d}"]["cd"]) for d in MD.DECODERS] for e in MD.ENCODERS]
    rows_iou = [[e] + [_cell(cells[f"{e}/{d}"]["iou"]) for d in MD.DECODERS] for e in MD.ENCODERS]
    b0 = next(iter(cells.values()))["budget"]
    body = [f"Sizes (`ch11.mod_*`): {sz}", "",
            f"Test shapes: {len(shapes)} ({', '.join(sorted(set(test['category'])))}), never seen in training or in any "
            f"choice. Every pair: {b0['steps']} optimiser steps, {b0['examples']} training examples; each keeps the "
            "epoch its own validation loss prefers.", "",
            "## Chamfer x1e3 (squared, mean each way, summed; output surface samples against the test target points)",
            "", md_table(["encoder \\ decoder", *MD.DECODERS], rows_cd), "",
            "## IoU at the test occupancy samples (half near the surface); '-': no volume", "",
            md_table(["encoder \\ decoder", *MD.DECODERS], rows_iou), "",
            "## Budgets", "",
            md_table(["pair", "steps", "examples", "train s", "params", "best epoch / epochs"],
                     [[k, c["budget"]["steps"], c["budget"]["examples"], f"{c['budget']['seconds']:.0f}",
                       c["budget"]["params"], f"{c['best_epoch']} / {c['epochs']}"] for k, c in cells.items()]), "",
            "## Claims", ""]
    body += [f"- {claim_sentence(c)}" for c in claims] or ["- none: fewer than 20 test shapes in this profile"]
    steps = {c["budget"]["steps"] for c in cells.values()}
    goals = [goal("mod-table-size", "decoders in the cross table, each with every encoder (issue #37: at least 5 "
                  "with 3 encoders)", len(MD.DECODERS) if len(MD.ENCODERS) >= 3 else 0, 5, comparison=">="),
             goal("mod-equal-steps", "every pair trained for the same number of optimiser steps", len(steps) == 1, True,
                  comparison="==")]
    body += ["", "## Goals", ""] + [f"- `{g['id']}`: {goal_sentence(g)}" for g in goals]
    body += ["", f"Time: training (or loading) {train_s:.0f} s, test data and scoring {score_s:.0f} s.", ""]
    data = {"sizes": sz, "shapes": shapes, "encoders": list(MD.ENCODERS), "decoders": list(MD.DECODERS),
            "cells": cells, "claims": claims, "goals": goals, "seconds": {"train": train_s, "score": score_s}}
    path = write_result(result_name("modular", real), profile, "\n".join(body), notes=args.note, data=data)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
