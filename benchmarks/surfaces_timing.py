"""Training time of chapter 06's models, each run alone on an otherwise idle machine.

``benchmarks/surfaces.py`` measured accuracy on a machine shared with other jobs, so its wall
times are inflated. This script retrains chosen models from scratch (same sizes, same data, a
throw-away checkpoint folder) one after the other and records wall and CPU seconds, to check
the chapter's goal "each training run <= 5 minutes" on 2 CPU cores.

    COURSE_PROFILE=laptop python benchmarks/surfaces_timing.py --models ae-square25 svr-square25
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import add_dataset_args, md_table, result_name, use_dataset_args, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import surfaces as S  # noqa: E402

MODELS = {
    "ae-sphere1": ("sphere", 1, "pointnet"),
    "ae-square25": ("square", 25, "pointnet"),
    "svr-square25": ("square", 25, "resnet"),
}


SELECTION_PARTS: tuple[str, ...] = ()
"""Protocol 2 (course_lib.experiments.protocol): this benchmark times chapter 06's reconstructions; it chooses nothing."""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--threads", type=int, default=2)
    add_dataset_args(ap)
    args = ap.parse_args()
    real = use_dataset_args(args)
    torch.set_num_threads(args.threads)
    profile = config.get_profile()
    sz = config.sizes(prefix="ch06.")
    cats, n = sz["categories"], sz["n_points"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            template, k, encoder = MODELS[name]
            image_size = sz["image_size"] if encoder == "resnet" else None
            train = S.surface_dataset(cats, "train", sz["train_per_category"], n, image_size)
            model = S.build_atlasnet(template, k, sz["latent_dim"], encoder, sz["hidden"], n)
            load = os.getloadavg()[0]
            c0, t0 = time.process_time(), time.perf_counter()
            hist = S.train_atlasnet(model, train, epochs=sz["epochs"], batch_size=sz["batch_size"], n_points=n,
                                    input_key="rgb" if encoder == "resnet" else "points",
                                    n_input=None if encoder == "resnet" else sz["n_input"],
                                    checkpoint=Path(tmp) / f"{name}.pt", retrain=True, progress=False,
                                    live_plot=False)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            rows.append((name, hist.epochs_run, len(train["points"]), round(wall, 1), round(cpu, 1),
                         f"{load:.2f}", f"{hist.train_loss[-1]:.4g}"))
            print(rows[-1], flush=True)
    headers = ["model", "epochs", "training shapes", "wall s", "CPU s", "load avg at start", "final loss"]
    body = md_table(headers, rows)
    data = {"threads": args.threads, "rows": [dict(zip(headers, r)) for r in rows]}
    notes = (f"Each model retrained from scratch, alone, with {args.threads} torch threads; the 1-minute load average "
             "at the start of each run is in the table.")
    if real is not None:
        data["dataset"] = real
        notes = f"Dataset: {real} (real meshes). " + notes
    path = write_result(result_name("surfaces_timing", real), profile, body, notes=notes, data=data)
    print("wrote", path)


if __name__ == "__main__":
    main()
