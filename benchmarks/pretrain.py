"""Instructors' pretraining (issue #36): what ``python -m course_lib.pretrain`` trains, sized and verified.

Two parts, each recorded in ``benchmarks/results/pretrain-<profile>-<machine>.md`` (and the JSON twin):

* ``--dry-run`` (default): every model the lectures load, with its sizes, parameter count, whether its
  checkpoint exists here, and the estimate of time and memory measured from a few steps on this machine
  (:func:`course_lib.pretrain.dry_run`).  Run it in the ``gpu`` profile on a CPU to size a GPU loan.
* ``--train --verify``: pretrain the chosen chapters into a **fresh** cache (``--cache``, default a new
  temporary folder, so nothing of this machine's cache is reused), then execute each of their lectures
  with ``COURSE_CHECKPOINTS_ONLY=1`` (a lecture that would still train fails) and record each lecture's
  wall time from the checkpoints.

    COURSE_PROFILE=gpu python benchmarks/pretrain.py --dry-run --steps 3
    COURSE_PROFILE=ci python benchmarks/pretrain.py --train --verify          # fresh cache, all chapters
    COURSE_PROFILE=laptop python benchmarks/pretrain.py --train --verify --chapters 03 05
    COURSE_PROFILE=laptop python benchmarks/pretrain.py --train --verify --dataset modelnet --root /data/ModelNet10

Run it alone on the machine (the timings are the point).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import add_dataset_args, md_table, result_name, use_dataset_args, write_result  # noqa: E402

SELECTION_PARTS = ()
"""Protocol 2: this script chooses nothing (it trains the recipes as they are and times them)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="sizes and estimates only (the default)")
    ap.add_argument("--train", action="store_true", help="pretrain into a fresh cache")
    ap.add_argument("--verify", action="store_true", help="then run the lectures with COURSE_CHECKPOINTS_ONLY=1")
    ap.add_argument("--chapters", nargs="+")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--cache", help="cache folder for --train (default: a new temporary folder)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--note", default="")
    add_dataset_args(ap)
    args = ap.parse_args()
    real = use_dataset_args(args)  # COURSE_DATASET, inherited by the lectures --verify runs
    if args.train:
        cache = args.cache or tempfile.mkdtemp(prefix="course-pretrain-")
        os.environ["COURSE_DATA_DIR"] = cache  # before course_lib reads it
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from course_lib import config
    from course_lib import pretrain as PT

    profile = config.get_profile()
    jobs = PT.jobs_for(args.chapters)
    data: dict = {"profile": profile, "chapters": sorted({j.chapter for j in jobs}), "threads": torch.get_num_threads()}
    body = []
    if not args.train:
        t0 = time.perf_counter()
        recs = PT.dry_run(jobs, steps=args.steps)
        data["dry_run"] = [{k: v for k, v in vars(r).items()} for r in recs]
        data["dry_run_seconds"] = time.perf_counter() - t0
        body += [f"## Dry run ({args.steps} timed steps per model, after one warm-up step)", "",
                 PT.format_summary(recs, profile, dry=True), ""]
    else:
        t0 = time.perf_counter()
        recs = PT.run_jobs(jobs)
        data["pretrain"] = [{k: v for k, v in vars(r).items()} for r in recs]
        data["pretrain_seconds"] = time.perf_counter() - t0
        data["cache"] = "fresh temporary folder" if not args.cache else args.cache
        body += [f"## Pretraining into a fresh cache: {data['pretrain_seconds'] / 60:.1f} min in all "
                 "(data generation included)", "", PT.format_summary(recs, profile), ""]
        if args.verify:
            out = PT.verify(data["chapters"])
            data["verify"] = out
            body += ["## The lectures from these checkpoints (COURSE_CHECKPOINTS_ONLY=1: training is an error)", "",
                     md_table(["lecture", "result"], [[k, v] for k, v in out.items()]), ""]
    notes = args.note
    if real is not None:
        data["dataset"] = real
        notes = f"Dataset: {real} (real meshes; its checkpoints carry its name). " + notes
    write_result(result_name("pretrain", real), profile, "\n".join(body), notes=notes, data=data)
    print("\n".join(body))


if __name__ == "__main__":
    main()
