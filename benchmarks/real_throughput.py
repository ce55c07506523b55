"""Preprocessing throughput of real meshes (issue #35): shapes per minute for each representation, on this machine.

A ShapeNetCore-layout folder is written to a temporary directory from ShapeNet-lite meshes (marching cubes of
each shape's SDF at ``--resolution``, about 10,000 faces at 64 and 40,000 at 128) with the defects real files
have: ``--flip`` of the faces turned over and ``--double`` of them stored twice with both orientations.  Then
every representation of :data:`course_lib.data.real_split.REAL_REPRESENTATIONS` is built alone, from an empty
cache, by :class:`course_lib.data.real_split.RealShapes` (``prepare``: the path of
``python -m course_lib.data.real_split``) with 1 worker and with ``--workers`` workers, and all of them together.
Each cell is the wall time of a fresh cache (nothing is read back), in shapes per minute; the time to prepare
``--estimate-shapes`` meshes of the same size follows by proportion (meshes of other sizes cost in proportion to
their faces for the surface samples and the winding number; the rendered view depends on the image size).

Run it alone on the machine (it times):

    COURSE_PROFILE=laptop python benchmarks/real_throughput.py
    COURSE_PROFILE=laptop python benchmarks/real_throughput.py --resolution 128 --shapes 6

Writes ``benchmarks/results/real_throughput-<profile>-<machine>.md`` and ``real_throughput-<profile>.json``.
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

from _common import md_table, write_result  # noqa: E402

SELECTION_PARTS: tuple[str, ...] = ()
"""Protocol 2: this script chooses nothing (it times preprocessing of training-range shapes)."""

DEFAULT_ESTIMATE = 43_783
"""Meshes of the 13-category ShapeNet subset of 3D-R2N2 used by OccNet and AtlasNet [recalled count; pass
``--estimate-shapes`` with your own dataset's count]."""


def write_defective_shapenet(root: Path, categories: list[str], per_category: int, resolution: int, *,
                             flip: float, double: float, seed: int = 0) -> dict[str, float]:
    """ShapeNetCore's layout (``<synset>/<model>/models/model_normalized.obj``) with ``per_category`` meshes per
    category, each with a share ``flip`` of its faces reversed and a share ``double`` stored twice (both ways),
    and an ``all.csv`` split file putting every model in ``train``.  Returns the mean face count of the files."""
    import numpy as np

    from course_lib.data import make_shape, split_seeds
    from course_lib.data.real import SHAPENET_SYNSETS

    rng = np.random.default_rng(seed)
    faces_written, rows = [], ["id,synsetId,subSynsetId,modelId,split"]
    for cat in categories:
        syn = SHAPENET_SYNSETS[cat]
        for i, sd in enumerate(split_seeds("train", per_category)):
            mesh = make_shape(cat, int(sd)).mesh(resolution)
            v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces).copy()
            flip_rows = rng.random(len(f)) < flip
            f[flip_rows] = f[flip_rows][:, ::-1]
            dup = f[rng.random(len(f)) < double][:, ::-1]
            f = np.concatenate([f, dup])
            model = f"{cat}{i:04d}"
            d = root / syn / model / "models"
            d.mkdir(parents=True, exist_ok=True)
            with open(d / "model_normalized.obj", "w") as fh:
                fh.write("mtllib model_normalized.mtl\n")
                fh.writelines(f"v {a:.6f} {b:.6f} {c:.6f}\n" for a, b, c in v)
                fh.writelines(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in f)
            faces_written.append(len(f))
            rows.append(f"{len(rows)},{syn},{syn},{model},train")
    (root / "all.csv").write_text("\n".join(rows) + "\n")
    return {"mean_faces": float(np.mean(faces_written)), "files": len(faces_written)}


def time_prepare(root: Path, csv: Path, reps: tuple[str, ...], categories: list[str], workers: int,
                 profile: str) -> dict[str, float]:
    """Build ``reps`` for every mesh from an empty cache (a fresh ``COURSE_DATA_DIR``); seconds and shapes."""
    from course_lib.data.real_split import RealShapes

    with tempfile.TemporaryDirectory() as cache:
        old = os.environ.get("COURSE_DATA_DIR")
        os.environ["COURSE_DATA_DIR"] = cache
        try:
            t0 = time.perf_counter()
            ds = RealShapes("shapenetcore", "train", reps, root=root, categories=categories, profile=profile,
                            workers=workers, split_csv=csv)
            summary = ds.prepare()
            seconds = time.perf_counter() - t0
        finally:
            if old is None:
                os.environ.pop("COURSE_DATA_DIR", None)
            else:
                os.environ["COURSE_DATA_DIR"] = old
    n = int(summary.get("shapes", 0))
    return {"seconds": seconds, "shapes": n, "skipped": int(summary.get("skipped", 0)),
            "per_minute": 60.0 * n / seconds if seconds > 0 else float("nan")}


def main() -> None:
    import torch

    from course_lib import config
    from course_lib.data.real_split import REAL_REPRESENTATIONS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--categories", nargs="+", default=["chair", "airplane", "table"])
    ap.add_argument("--shapes", type=int, default=8, help="meshes per category")
    ap.add_argument("--resolution", type=int, default=64, help="marching-cubes resolution of each mesh")
    ap.add_argument("--flip", type=float, default=0.3)
    ap.add_argument("--double", type=float, default=0.1)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--estimate-shapes", type=int, default=DEFAULT_ESTIMATE)
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    profile = config.get_profile()
    worker_counts = sorted({1, int(args.workers)})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ShapeNetCore"
        t0 = time.perf_counter()
        made = write_defective_shapenet(root, list(args.categories), args.shapes, args.resolution, flip=args.flip,
                                        double=args.double)
        write_s = time.perf_counter() - t0
        cells: dict[str, dict[str, dict[str, float]]] = {}
        for rep in (*REAL_REPRESENTATIONS, "all"):
            reps = tuple(REAL_REPRESENTATIONS) if rep == "all" else (rep,)
            for w in worker_counts:
                r = time_prepare(root, root / "all.csv", reps, list(args.categories), w, profile)
                cells.setdefault(rep, {})[str(w)] = r
                print(f"{rep:14s} workers {w}: {r['shapes']} shapes in {r['seconds']:.1f} s "
                      f"({r['per_minute']:.1f} per minute, {r['skipped']} skipped)", flush=True)
    sizes = {k: config.size(f"data.{k}", profile) for k in ("n_surface_points", "n_sdf_samples", "voxel_resolution",
                                                           "image_size")}
    best = {rep: max(v.values(), key=lambda r: r["per_minute"]) for rep, v in cells.items()}
    est_h = {rep: args.estimate_shapes / r["per_minute"] / 60.0 for rep, r in best.items() if r["per_minute"] > 0}
    header = ["representation", *[f"{w} worker(s): shapes/min" for w in worker_counts], "hours for "
              f"{args.estimate_shapes:,} meshes (fastest)"]
    rows = [[rep, *[f"{v[str(w)]['per_minute']:.1f}" for w in worker_counts], f"{est_h.get(rep, float('nan')):.1f}"]
            for rep, v in cells.items()]
    body = [f"Meshes: {made['files']} ShapeNet-lite training shapes ({', '.join(args.categories)}) as marching-cubes "
            f"meshes at R = {args.resolution}, {made['mean_faces']:.0f} faces on average after the defects "
            f"({args.flip:.0%} of the faces flipped, {args.double:.0%} doubled with both orientations), written as "
            f"ShapeNetCore v2 OBJ files in {write_s:.1f} s.", "",
            f"Sizes ({profile} profile): {sizes}; torch threads {torch.get_num_threads()}.", "",
            "Each cell: every mesh built from an empty cache (no file read back), wall time in shapes per minute.",
            "", md_table(header, rows), "",
            f"The last column divides {args.estimate_shapes:,} meshes (the 13-category ShapeNet subset, a recalled "
            "count; `--estimate-shapes` sets another) by the fastest rate; real meshes with more or fewer faces "
            "take proportionally longer or shorter for the samples and the inside test.", ""]
    data = {"meshes": made, "categories": list(args.categories), "resolution": args.resolution, "flip": args.flip,
            "double": args.double, "sizes": sizes, "workers": worker_counts, "cells": cells,
            "estimate_shapes": args.estimate_shapes, "estimate_hours": est_h, "claims": [], "goals": []}
    path = write_result("real_throughput", profile, "\n".join(body), notes=args.note, data=data)
    print("\n".join(body))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
