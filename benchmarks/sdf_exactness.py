"""Chapters 01 and 07: where ShapeNet-lite's signed distance is exact, and where it is only a bound (issue #33, item 4).

Run from the repository root:

    COURSE_PROFILE=laptop python benchmarks/sdf_exactness.py     # every category, 3 shapes each (~2-3 min)
    COURSE_PROFILE=ci python benchmarks/sdf_exactness.py         # seconds: the pipeline only

ShapeNet-lite's shapes are unions (and, for some parts, differences or shells) of analytic primitives.
The SDF of a union of *exact* primitive SDFs is exact outside the union (the distance to the union is the
smallest distance to a part) and only a bound inside; a primitive whose own SDF is a bound (an ellipsoid,
a shell, a rounded or tapered part) makes the union's SDF a bound outside too.  This benchmark measures
it per category: for points outside each shape (``shape.sdf > 0.02``; uniform in ``[-1, 1]^3`` and near
the surface), the shape's SDF against the exact distance to a fine marching-cubes mesh of the same shape
(libigl's point-mesh distance through :func:`course_lib.geometry.mesh_sdf.mesh_sdf`; the mesh's own
error is below half a cell, ``1/res``).  A category counts as *exact outside* when at least 99 % of its
outside points agree within ``tol = 1.5 / res``; otherwise the fraction below the mesh distance (the
SDF underestimates: a bound) is what it is.

Protocol 2: no choice is made (``SELECTION_PARTS`` is empty); training-range seeds, no model.

Writes ``benchmarks/results/sdf_exactness-<profile>-<machine>.md`` and ``sdf_exactness-<profile>.json``
(read by lectures 01 and 07).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import md_table, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.data import CATEGORIES, make_shape, split_seeds  # noqa: E402
from course_lib.geometry.mesh_sdf import mesh_sdf  # noqa: E402

SELECTION_PARTS: tuple[str, ...] = ()
"""Protocol 2: nothing is chosen here."""
SIZES = {"ci": {"categories": ("chair", "mug"), "shapes": 1, "queries": 2000, "resolution": 48},
         "laptop": {"categories": tuple(CATEGORIES), "shapes": 3, "queries": 6000, "resolution": 128}}
SIZES["gpu"] = SIZES["laptop"]
EXACT_SHARE = 0.99


def measure(category: str, seed: int, queries: int, resolution: int, rng: np.random.Generator) -> dict:
    """Outside points of one shape: its SDF against the distance to its fine mesh."""
    shape = make_shape(category, seed)
    mesh = shape.mesh(resolution)
    half = queries // 2
    q = np.concatenate([rng.uniform(-1, 1, (half, 3)), mesh.sample(half) + rng.normal(0, 0.05, (half, 3))])
    qt = torch.tensor(q, dtype=torch.float32)
    with torch.no_grad():
        s = shape.sdf(qt).double().numpy()
    d = np.abs(mesh_sdf(mesh, torch.tensor(q, dtype=torch.float64)).numpy())
    out = s > 0.02
    tol = 1.5 / resolution
    diff = s[out] - d[out]
    far = s > 0.1  # ratios only where the mesh's own error (~1 / res) is small against the distance
    return {"category": category, "seed": seed, "outside": int(out.sum()), "tol": tol,
            "agree": float((np.abs(diff) <= tol).mean()), "under": float((diff < -tol).mean()),
            "over": float((diff > tol).mean()), "median_ratio": float(np.median(s[far] / np.maximum(d[far], 1e-9))),
            "min_ratio": float(np.min(s[far] / np.maximum(d[far], 1e-9)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    profile = config.get_profile()
    sz = SIZES[profile]
    rng = np.random.default_rng(0)
    rows = []
    for cat in sz["categories"]:
        for seed in split_seeds("train", sz["shapes"]):
            r = measure(cat, int(seed), sz["queries"], sz["resolution"], rng)
            rows.append(r)
            print(cat, seed, {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}, flush=True)
    per_cat = {}
    for cat in sz["categories"]:
        rs = [r for r in rows if r["category"] == cat]
        agree = min(r["agree"] for r in rs)
        per_cat[cat] = {"agree_min": agree, "under_max": max(r["under"] for r in rs),
                        "over_max": max(r["over"] for r in rs), "min_ratio": min(r["min_ratio"] for r in rs),
                        "exact_outside": agree >= EXACT_SHARE}
    body = [f"Outside points (shape.sdf > 0.02) of {sz['shapes']} training shapes per category, {sz['queries']} "
            "queries each (half uniform in [-1, 1]^3, half near the surface); the SDF against the exact distance to "
            f"the shape's marching-cubes mesh at {sz['resolution']}^3 (libigl); agreement within 1.5 / resolution.",
            "", md_table(["category", "exact outside", "agree (worst shape)", "SDF below the distance (worst)",
                          "SDF above the distance (worst)", "smallest SDF / distance (SDF > 0.1)"],
                         [[c, "yes" if v["exact_outside"] else "no (a bound)", f"{v['agree_min']:.4f}",
                           f"{v['under_max']:.4f}", f"{v['over_max']:.4f}", f"{v['min_ratio']:.3f}"]
                          for c, v in per_cat.items()]), ""]
    path = write_result("sdf_exactness", profile, "\n".join(body), notes=args.note,
                        data={"rows": rows, "per_category": per_cat, "sizes": dict(sz), "claims": [], "goals": [],
                              "selections": []})
    print("wrote", path)


if __name__ == "__main__":
    main()
