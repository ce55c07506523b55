"""Benchmark of the data pipeline: ShapeNet-lite generation (cold and cached) and Poisson reconstruction.

Run from the repository root:

    python benchmarks/data.py                # writes benchmarks/results/data-<profile>-<machine>.md (+ .json)
    python benchmarks/data.py --threads 1    # pin torch to one thread (useful on a shared machine)
    python benchmarks/data.py --quick        # 1 shape per category, grids 32 and 48 (pipeline check)

Measured:
1. Time to generate 100 ShapeNet-lite shapes (10 per category) with 2,048 surface
   points and 10,000 SDF samples each: cold (empty cache folder), then again from
   the cache.
2. Poisson reconstruction (``course_lib.geometry.poisson_reconstruct``) from 10,000
   oriented points of a sphere, a torus and a ShapeNet-lite chair: time and Chamfer
   error (symmetric mean nearest-neighbour distance, scipy cKDTree, 50,000 samples
   per surface) against the exact surface, versus the grid resolution.  The
   "reference" column is the Chamfer distance between two independent 50,000-point
   i.i.d. samples of the reference itself: the level of a perfect surface sampled the same way
   (a reference, not a strict floor: a more evenly spread sample would score below it).

The JSON twin ``benchmarks/results/data-<profile>.json`` holds the same tables.  Cost: ~2-4 min
on 2 cores (the grid-128 Poisson solves dominate).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.data import CATEGORIES, ShapeNetLite, make_shape, reserved_seed  # noqa: E402
from course_lib.data.shapes import _make_shape_cached  # noqa: E402
from course_lib.geometry import poisson_reconstruct, sample_mesh_surface  # noqa: E402

SELECTION_PARTS: tuple[str, ...] = ()
"""Protocol 2 (course_lib.experiments.protocol): this benchmark measures data generation and caching; it chooses nothing."""


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    return 0.5 * float(cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean())


def bench_generation(n_per_category: int) -> tuple[list[str], list[dict]]:
    tmp = Path(tempfile.mkdtemp(prefix="course_bench_cache_"))
    try:
        kw = dict(representations=("points", "sdf"), n_points=2048, n_sdf=10000,
                  shapes_per_category=n_per_category, cache_dir=tmp)
        rows, data = [], []
        for label, cache in (("cold (empty cache)", True), ("from cache", True), ("no cache at all", False)):
            _make_shape_cached.cache_clear()  # no shapes kept in memory from the previous run
            t0, c0 = time.perf_counter(), time.process_time()
            ds = ShapeNetLite("train", cache=cache, **kw)
            for i in range(len(ds)):
                ds[i]
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            rows.append(f"| {label} | {len(ds)} | {wall:.2f} | {cpu:.2f} | {1000 * wall / len(ds):.1f} |")
            data.append({"run": label, "shapes": len(ds), "wall_s": wall, "cpu_s": cpu,
                         "ms_per_shape": 1000 * wall / len(ds)})
        size = sum(f.stat().st_size for f in tmp.rglob("*.npz"))
        rows.append(f"\nCache size on disk: {size / 2**20:.1f} MiB for {len(ds)} shapes.")
        data.append({"cache_MiB": size / 2**20})
        return rows, data
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_poisson(resolutions: list[int]) -> tuple[list[str], list[dict]]:
    n_in, n_eval = 10000, 50000
    chair = make_shape("chair", reserved_seed("demo"))  # a shape outside every split
    refs = {
        "sphere r=0.8": trimesh.creation.icosphere(6, radius=0.8),
        "torus R=0.6 r=0.25": trimesh.creation.torus(0.6, 0.25, major_sections=256, minor_sections=128),
        "ShapeNet-lite chair (demo)": chair.mesh(160),
    }

    def torus_dist(q: np.ndarray) -> np.ndarray:
        radial = np.sqrt(q[:, 0] ** 2 + q[:, 1] ** 2) - 0.6
        return np.abs(np.sqrt(radial**2 + q[:, 2] ** 2) - 0.25)

    exact = {
        "sphere r=0.8": lambda q: np.abs(np.linalg.norm(q, axis=1) - 0.8),
        "torus R=0.6 r=0.25": torus_dist,
        "ShapeNet-lite chair (demo)": lambda q: chair.sdf(torch.from_numpy(q)).abs().numpy(),
    }
    rows, data = [], []
    for name, ref in refs.items():
        if name.startswith("ShapeNet"):
            pts, nrm = chair.sample_surface(n_in, seed=1)  # exact surface points and normals
            r1 = chair.sample_surface(n_eval, seed=2)[0].double().numpy()
            r2 = chair.sample_surface(n_eval, seed=3)[0].double().numpy()
        else:
            pts, nrm = sample_mesh_surface(ref, n_in, seed=1)
            r1 = sample_mesh_surface(ref, n_eval, seed=2)[0].double().numpy()
            r2 = sample_mesh_surface(ref, n_eval, seed=3)[0].double().numpy()
        floor = chamfer(r1, r2)
        for R in resolutions:
            t0 = time.perf_counter()
            rec = poisson_reconstruct(pts, nrm, resolution=R)
            dt = time.perf_counter() - t0
            q = sample_mesh_surface(rec, n_eval, seed=4)[0].double().numpy()
            cd = chamfer(q, r1)
            d = exact[name](q)
            rows.append(f"| {name} | {R} | {dt:.3f} | {cd:.5f} | {floor:.5f} | {cd - floor:.5f} | "
                        f"{d.mean():.5f} | {d.max():.4f} | {'yes' if rec.is_watertight else 'no'} |")
            data.append({"surface": name, "resolution": R, "seconds": dt, "chamfer": cd, "reference": floor,
                         "mean_dist": float(d.mean()), "max_dist": float(d.max()),
                         "watertight": bool(rec.is_watertight)})
    return rows, data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--per-category", type=int, default=10, help="shapes per category (10 x 10 = 100)")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[32, 48, 64, 96, 128])
    ap.add_argument("--quick", action="store_true", help="1 shape per category, grids 32 and 48")
    ap.add_argument("--note", default="", help="free text added to the header (e.g. 'shared machine')")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.per_category, args.resolutions = 1, [32, 48]
    profile = config.get_profile()
    gen, gen_data = bench_generation(args.per_category)
    poi, poi_data = bench_poisson(args.resolutions)
    body = "\n".join([
        f"Sizes are fixed by the benchmark, not by the profile; categories: {len(CATEGORIES)} "
        f"({', '.join(CATEGORIES)}).",
        "",
        f"## Generation: {args.per_category * len(CATEGORIES)} shapes, 2,048 surface points + 10,000 SDF samples each",
        "",
        "| run | shapes | wall s | CPU s (process) | ms / shape (wall) |",
        "|---|---|---|---|---|",
        *gen,
        "",
        "## Poisson reconstruction from 10,000 oriented points",
        "",
        "Chamfer = mean over both directions of the nearest-neighbour distance (not squared), 50,000 samples "
        "per surface; reference = the same between two i.i.d. samples of the reference surface.  mean / max dist: "
        "distance from 50,000 samples of the reconstruction to the exact surface (analytic for the sphere and "
        "torus; |SDF| for the chair, exact outside the shape and a lower bound inside).",
        "",
        "| surface | grid R | time s | Chamfer | reference | Chamfer - reference | mean dist | max dist | watertight |",
        "|---|---|---|---|---|---|---|---|---|",
        *poi,
    ])
    path = write_result("data", profile, body, notes=args.note,
                        data={"per_category": args.per_category, "generation": gen_data, "poisson": poi_data})
    print(body)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
