"""Chapter 07: the inside/outside sign of real-looking meshes: flipped, doubled and missing faces (issue #33, item 4).

Run from the repository root:

    COURSE_PROFILE=laptop python benchmarks/mesh_sign.py      # 4 categories x 3 shapes, 6,000 queries each (~2 min)
    COURSE_PROFILE=ci python benchmarks/mesh_sign.py          # seconds: the pipeline only

Real meshes (ShapeNet's among them) store faces twice, once per orientation, and have faces whose
winding is flipped against their neighbours'.  The generalised winding number sums signed solid
angles, so both defects break the sign that ``course_lib.geometry.mesh_sdf`` takes from it.  For each
ShapeNet-lite marching-cubes mesh, closed and opened (a patch of 2 % of the faces removed), the
benchmark corrupts the faces (``corrupt_faces``: 30 % flipped at random; every face doubled with the
other orientation; both) and measures, at queries uniform in ``[-1, 1]^3`` and near the surface (half
each), how often inside/outside (winding number >= 1/2) agrees with the uncorrupted mesh's, without
and with :func:`course_lib.geometry.mesh_sdf.repair_orientation` (the default of ``mesh_sdf`` and
``winding_number``).  Goals: agreement >= 99 % on every mesh and corruption with the repair.  The
repair's cost per mesh is timed.

Protocol 2: no choice is made (``SELECTION_PARTS`` is empty); the shapes are training-range seeds
(no model is scored).

Writes ``benchmarks/results/mesh_sign-<profile>-<machine>.md`` and ``mesh_sign-<profile>.json``.
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

from _common import md_table, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.data import make_shape, split_seeds  # noqa: E402
from course_lib.experiments.protocol import goal, goal_sentence  # noqa: E402
from course_lib.geometry.mesh_sdf import corrupt_faces, repair_orientation, winding_number  # noqa: E402

SELECTION_PARTS: tuple[str, ...] = ()
"""Protocol 2: nothing is chosen here."""
SIZES = {"ci": {"categories": ("chair", "mug"), "shapes": 1, "queries": 1000, "resolution": 32},
         "laptop": {"categories": ("chair", "mug", "airplane", "lamp"), "shapes": 3, "queries": 6000,
                    "resolution": 64}}
SIZES["gpu"] = SIZES["laptop"]
CORRUPTIONS = {"30% flipped": {"flip_fraction": 0.3}, "doubled (both orientations)": {"double": True},
               "30% flipped + doubled": {"flip_fraction": 0.3, "double": True}}
GOAL_IDS = {"30% flipped": "sign_flipped", "doubled (both orientations)": "sign_doubled",
            "30% flipped + doubled": "sign_flipped_and_doubled"}
GOAL = 0.99


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
            mesh = make_shape(cat, int(seed)).mesh(sz["resolution"])
            v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
            half = sz["queries"] // 2
            q = torch.tensor(np.concatenate([rng.uniform(-1, 1, (half, 3)),
                                             mesh.sample(half) + rng.normal(0, 0.02, (half, 3))]))
            for kind, base in (("closed", (v, f)), ("open (2% of faces removed)",
                                                     corrupt_faces((v, f), drop_fraction=0.02, seed=int(seed)))):
                ref = winding_number(base, q, repair=False) >= 0.5
                for name, kw in CORRUPTIONS.items():
                    bad = corrupt_faces(base, seed=int(seed) + 1, **kw)
                    t0 = time.perf_counter()
                    _, _, rep = repair_orientation(bad)
                    t_rep = time.perf_counter() - t0
                    raw = float(((winding_number(bad, q, repair=False) >= 0.5) == ref).double().mean())
                    fixed = float(((winding_number(bad, q, repair=True) >= 0.5) == ref).double().mean())
                    rows.append({"category": cat, "seed": int(seed), "mesh": kind, "corruption": name,
                                 "faces": int(bad[1].shape[0]), "agreement_raw": raw, "agreement_repaired": fixed,
                                 "repair_seconds": round(t_rep, 3), "report": rep})
                    print(cat, seed, kind, name, f"raw {raw:.4f} repaired {fixed:.4f} ({t_rep:.2f} s)", flush=True)
    goals = []
    for name in CORRUPTIONS:
        vals = [r["agreement_repaired"] for r in rows if r["corruption"] == name]
        goals.append(goal(GOAL_IDS[name],
                          f"lowest inside/outside agreement with the clean mesh over every mesh (closed and open), "
                          f"faces {name}, with repair_orientation", min(vals), GOAL, comparison=">="))
    body = ["Agreement of inside/outside (generalised winding number >= 1/2, libigl's fast winding number) with the "
            f"uncorrupted mesh at {sz['queries']} queries per mesh (half uniform in [-1, 1]^3, half within ~0.02 of "
            f"the surface); ShapeNet-lite marching-cubes meshes at {sz['resolution']}^3, {sz['shapes']} per category; "
            "'open' removes a connected patch of 2% of the faces.", "",
            md_table(["category", "seed", "mesh", "faces", "corruption", "agreement, faces as they are",
                      "agreement, repaired", "repair s", "duplicates dropped", "faces rewound"],
                     [[r["category"], r["seed"], r["mesh"], r["faces"], r["corruption"], f"{r['agreement_raw']:.4f}",
                       f"{r['agreement_repaired']:.4f}", r["repair_seconds"], r["report"]["duplicate_faces"],
                       r["report"]["rewound_faces"]] for r in rows]), "",
            "## Goals", "", *[f"- {goal_sentence(g)}" for g in goals], ""]
    path = write_result("mesh_sign", profile, "\n".join(body), notes=args.note,
                        data={"rows": rows, "goals": goals, "claims": [], "selections": [], "sizes": dict(sz)})
    print("wrote", path)


if __name__ == "__main__":
    main()
