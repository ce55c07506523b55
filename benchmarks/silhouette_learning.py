"""Chapter 09: one image-to-mesh network trained across the dataset from silhouettes only, against 3D supervision.

Run from the repository root, alone on the machine:

    COURSE_PROFILE=laptop python benchmarks/silhouette_learning.py      # about 6-8 minutes on 2 cores
    COURSE_PROFILE=ci python benchmarks/silhouette_learning.py          # pipeline check (numbers meaningless)

Writes ``benchmarks/results/silhouette_learning-<profile>-<machine>.md`` and ``silhouette_learning-<profile>.json``
(read by ``lectures/09_differentiable_rendering.ipynb``).

Protocol 2: the two networks (:class:`course_lib.experiments.silhouette_learning.SphereDeformer`, the same
architecture, data, optimiser and steps; ``ch09.learn_*``) are trained inside the selection part
``part_train``, where each keeps the epoch its *own* validation loss prefers (soft-silhouette IoU on the
validation shapes' views for the silhouette model, Chamfer for the 3D one); the test split is read after, once,
to report: Chamfer (x1e3, AtlasNet's convention) and hard-silhouette IoU from held-out views, per shape, and two
claims paired over the test shapes.  The learning rate is chapter 06's (not tuned for either).
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
from course_lib.experiments import silhouette_learning as SL  # noqa: E402
from course_lib.experiments.protocol import claim_sentence, selection_part  # noqa: E402

SELECTION_PARTS = ("part_train",)
"""Protocol 2: ``part_train`` trains both networks and picks each one's epoch on its own validation loss."""


@selection_part
def part_train(profile: str, retrain: bool) -> dict:
    """Both networks, each with the regulariser scale and the epoch its own val loss prefers (no test shape read)."""
    return SL.train_both(profile, progress=True, retrain=retrain)


def _mean_se(v: list[float]) -> str:
    a = np.asarray(v, dtype=float)
    se = a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else float("nan")
    return f"{a.mean():.4g} ± {se:.2g}"


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
    sz = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.sizes(profile, prefix="ch09.").items()
          if k.startswith("learn_") or k in ("sigma", "lambda_lap", "lambda_flat", "n_heldout_views")}
    t0 = time.perf_counter()
    trained = part_train(profile, args.retrain)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    test = SL.learning_data("test", profile, progress=True)
    rep = SL.report_supervision(trained, test, profile)
    score_s = time.perf_counter() - t0
    rows = rep["rows"]
    names = {"silhouettes": "from silhouettes only (soft IoU over the views)",
             "3d": "from 3D (Chamfer to surface points)"}
    body = [f"Sizes (`ch09.*`): {sz}", "",
            f"Test shapes: {len(rep['shapes'])} ({', '.join(sorted(set(test['category'])))}), never seen in training "
            "or in any choice.", "",
            "CD: squared Euclidean nearest-neighbour distances, mean over each cloud, the two directions summed, "
            "x 1000 (AtlasNet's convention), between samples of the predicted mesh and the target's surface points. "
            "Hard IoU: the predicted mesh's hard silhouette against the true one, mean over held-out views (elevation "
            "15, azimuths between the training cameras). Means ± standard errors over the test shapes.", "",
            md_table(["supervision", "CD x1e3", "hard IoU, held-out views", "best epoch (own val loss)", "epochs",
                      "steps", "examples", "train s", "params"],
                     [[names[k], _mean_se(r["cd"]), _mean_se(r["iou_heldout"]), r["best_epoch"], r["epochs"],
                       r["budget"]["steps"], r["budget"]["examples"], f"{r['budget']['seconds']:.0f}",
                       r["budget"]["params"]] for k, r in rows.items()]), "",
            "## Claims", ""]
    body += [f"- {claim_sentence(c)}" for c in rep["claims"]] or ["- none: fewer than 20 test shapes in this profile"]
    body += ["", "## Choices made on val (each supervision by its own loss)", ""]
    body += [f"- {r['id']}: {r['chosen']} ({r['metric']}; candidates {r['candidates']})" for r in rep["selections"]]
    body += ["", f"Time: training (or loading) {train_s:.0f} s, every candidate included; test data and scoring "
             f"{score_s:.0f} s.", ""]
    data = {"sizes": sz, "shapes": rep["shapes"], "rows": rows, "claims": rep["claims"], "goals": [],
            "selections": rep["selections"], "reg_scale": rep["reg_scale"],
            "seconds": {"train": train_s, "score": score_s}}
    path = write_result(result_name("silhouette_learning", real), profile, "\n".join(body), notes=args.note, data=data)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
