"""Chapter 07: the inside/outside sign of real-looking meshes: flipped, doubled and missing faces (issue #33, item 4).

Run from the repository root:

    COURSE_PROFILE=laptop python benchmarks/mesh_sign.py                   # both parts
    COURSE_PROFILE=laptop python benchmarks/mesh_sign.py --part sign       # 4 categories x 3 shapes, 6,000 queries each (~2 min)
    COURSE_PROFILE=laptop python benchmarks/mesh_sign.py --part methods    # 4 categories x 5 shapes (~6 min)
    COURSE_PROFILE=ci python benchmarks/mesh_sign.py                       # seconds: the pipeline only

A part run alone keeps the other part's data (and its provenance) in the result file.

Part ``sign`` (issue #33, item 4):

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

Part ``methods`` (issue #35, item 2): which inside/outside to trust on broken meshes.  For each ShapeNet-lite
marching-cubes mesh, corruptions (flipped faces, doubled faces, an open hole of 2 % and of 10 % of the faces,
a closed internal shell -- the shape's level set at -0.05, a closed part inside the object as ShapeNet models
have --, a stray open sheet through the middle of the box, and combinations) and methods: the generalised
winding number of the faces as they are, the winding number after ``repair_orientation`` (``RealShapes``'s
sign today), visibility from 32 rendered depth maps (:func:`course_lib.geometry.mesh_sdf.visibility_inside`,
OccNet's pre-processing idea), and a combination (the repaired winding number, visibility where it is
ambiguous: ``0.1 < w < 0.9``).  Visibility is computed once per geometry (clean, holes, internal parts)
and reused for its flipped and doubled variants: it renders the same depth maps whatever the faces'
orientation or multiplicity (``tests/test_mesh_sdf.py::test_visibility_does_not_care_about_orientation``),
so its time is that of the undoubled mesh.  Score: agreement of inside/outside with the **exact** occupancy of the
ShapeNet-lite shape (its SDF's sign, not the mesh's), at queries drawn as in part ``sign`` (half uniform in
``[-1, 1]^3``, half area-uniform on the mesh plus N(0, 0.02)), reported separately for the two halves;
paired claims over the meshes (at least 20) per corruption.  No goal: this part informs a choice.

Protocol 2: no choice is made (``SELECTION_PARTS`` is empty); the shapes are training-range seeds
(no model is scored).

Writes ``benchmarks/results/mesh_sign-<profile>-<machine>.md`` and ``mesh_sign-<profile>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import json_path, md_table, provenance, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.data import make_shape, split_seeds  # noqa: E402
from course_lib.experiments.protocol import MIN_SHAPES, claim, claim_sentence, goal, goal_sentence  # noqa: E402
from course_lib.geometry.mesh_sdf import (  # noqa: E402
    corrupt_faces,
    repair_orientation,
    visibility_inside,
    winding_number,
)

SELECTION_PARTS: tuple[str, ...] = ()
"""Protocol 2: nothing is chosen here."""
PARTS = ("sign", "methods")
SIZES = {"ci": {"categories": ("chair", "mug"), "shapes": 1, "queries": 1000, "resolution": 32,
                "methods_shapes": 1, "views": 8, "view_size": 48},
         "laptop": {"categories": ("chair", "mug", "airplane", "lamp"), "shapes": 3, "queries": 6000,
                    "resolution": 64, "methods_shapes": 5, "views": 32, "view_size": 128}}
SIZES["gpu"] = SIZES["laptop"]
CORRUPTIONS = {"30% flipped": {"flip_fraction": 0.3}, "doubled (both orientations)": {"double": True},
               "30% flipped + doubled": {"flip_fraction": 0.3, "double": True}}
GOAL_IDS = {"30% flipped": "sign_flipped", "doubled (both orientations)": "sign_doubled",
            "30% flipped + doubled": "sign_flipped_and_doubled"}
GOAL = 0.99


def part_sign(sz: dict) -> dict:
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
    return {"rows": rows, "goals": goals}


def sign_report(data: dict) -> list[str]:
    sz, rows = data["sizes"], data["rows"]
    return ["Agreement of inside/outside (generalised winding number >= 1/2, libigl's fast winding number) with the "
            f"uncorrupted mesh at {sz['queries']} queries per mesh (half uniform in [-1, 1]^3, half within ~0.02 of "
            f"the surface); ShapeNet-lite marching-cubes meshes at {sz['resolution']}^3, {sz['shapes']} per category; "
            "'open' removes a connected patch of 2% of the faces.", "",
            md_table(["category", "seed", "mesh", "faces", "corruption", "agreement, faces as they are",
                      "agreement, repaired", "repair s", "duplicates dropped", "faces rewound"],
                     [[r["category"], r["seed"], r["mesh"], r["faces"], r["corruption"], f"{r['agreement_raw']:.4f}",
                       f"{r['agreement_repaired']:.4f}", r["repair_seconds"], r["report"]["duplicate_faces"],
                       r["report"]["rewound_faces"]] for r in rows])]


# --- part "methods": which inside/outside to trust on broken meshes ---------------------------------------------
METHODS = ("winding number, faces as they are", "winding number, repaired", "visibility (depth maps)",
           "repaired winding number, visibility where ambiguous")
METHOD_KEYS = ("wn_raw", "wn_repaired", "visibility", "combined")
AMBIGUOUS = (0.1, 0.9)
"""Winding numbers strictly between these are 'ambiguous' (``RealShapes``'s test for skipping a mesh)."""
M_CORRUPTIONS = {
    "none (clean)": {},
    "30% flipped": {"flip_fraction": 0.3},
    "doubled": {"double": True},
    "hole 2%": {"drop_fraction": 0.02},
    "hole 10%": {"drop_fraction": 0.10},
    "internal shell": {"internal": True},
    "stray sheet": {"sheet": True},
    "internal shell + 30% flipped + doubled": {"internal": True, "flip_fraction": 0.3, "double": True},
    "hole 2% + 30% flipped + doubled": {"drop_fraction": 0.02, "flip_fraction": 0.3, "double": True},
    "hole 10% + internal shell + 30% flipped + doubled": {"drop_fraction": 0.10, "internal": True,
                                                          "flip_fraction": 0.3, "double": True},
}
INTERNAL_LEVEL = -0.05
"""The internal shell: the shape's level set at this SDF value (a closed surface 0.05 inside the object)."""


def _internal_shell(shape, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    from course_lib.geometry.mc import marching_cubes, sdf_grid

    bound = 1.0 + 2.0 / resolution
    m = marching_cubes(sdf_grid(shape, resolution, bound), INTERNAL_LEVEL, bound)
    return np.asarray(m.vertices), np.asarray(m.faces)


def _sheet(v: np.ndarray, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A horizontal open square sheet (half the box's width) through the centre of the mesh's box."""
    lo, hi = v.min(0), v.max(0)
    c, h = (lo + hi) / 2, (hi - lo) / 4
    g = np.linspace(-1, 1, n + 1)
    xx, zz = np.meshgrid(g, g, indexing="ij")
    verts = np.stack([c[0] + h[0] * xx.ravel(), np.full(xx.size, c[1]), c[2] + h[2] * zz.ravel()], 1)
    i = np.arange(n)[:, None] * (n + 1) + np.arange(n)[None, :]
    i = i.ravel()
    faces = np.concatenate([np.stack([i, i + 1, i + n + 2], 1), np.stack([i, i + n + 2, i + n + 1], 1)])
    return verts, faces


def _broken(shape, v: np.ndarray, f: np.ndarray, kw: dict, seed: int, resolution: int,
            shell: list) -> tuple[np.ndarray, np.ndarray]:
    kw = dict(kw)
    internal, sheet = kw.pop("internal", False), kw.pop("sheet", False)
    parts = [(v, f)]
    if internal:
        if not shell:
            shell.append(_internal_shell(shape, resolution))
        parts.append(shell[0])
    if sheet:
        parts.append(_sheet(v))
    if len(parts) > 1:  # join the parts into one mesh (faces re-indexed)
        off = np.cumsum([0] + [p[0].shape[0] for p in parts[:-1]])
        v = np.concatenate([p[0] for p in parts])
        f = np.concatenate([p[1] + o for p, o in zip(parts, off)])
    drop = kw.pop("drop_fraction", 0.0)
    if drop:  # the hole is cut in the outer surface (the first part) only
        n_outer = parts[0][1].shape[0]
        vo, fo = corrupt_faces((v, f[:n_outer]), drop_fraction=drop, seed=seed)
        f = np.concatenate([fo, f[n_outer:]])
    if kw:
        v, f = corrupt_faces((v, f), seed=seed + 1, **kw)
    return v, f


def part_methods(sz: dict) -> dict:
    import trimesh

    rng = np.random.default_rng(1)
    half = sz["queries"] // 2
    rows = []
    for cat in sz["categories"]:
        for seed in split_seeds("train", sz["methods_shapes"]):
            shape = make_shape(cat, int(seed))
            mesh = shape.mesh(sz["resolution"])
            v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
            surf, _ = trimesh.sample.sample_surface(mesh, half, seed=int(rng.integers(2**31 - 1)))
            q = torch.tensor(np.concatenate([rng.uniform(-1, 1, (half, 3)),
                                             np.asarray(surf) + rng.normal(0, 0.02, (half, 3))]))
            truth = shape.occupancy(q.float()).bool()
            shell: list = []
            vis_of: dict = {}  # visibility per geometry: flipped and doubled faces render the same depth maps
            for name, kw in M_CORRUPTIONS.items():
                bad = _broken(shape, v, f, kw, int(seed), sz["resolution"], shell)
                geometry = (kw.get("drop_fraction", 0.0), kw.get("internal", False), kw.get("sheet", False))
                out, secs = {}, {}
                t0 = time.perf_counter()
                out["wn_raw"] = winding_number(bad, q, repair=False) >= 0.5
                secs["wn_raw"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                w = winding_number(bad, q, repair=True)
                secs["wn_repaired"] = time.perf_counter() - t0
                out["wn_repaired"] = w >= 0.5
                if geometry not in vis_of:
                    t0 = time.perf_counter()
                    vis_of[geometry] = (visibility_inside(bad, q, views=sz["views"], size=sz["view_size"]),
                                        time.perf_counter() - t0)
                out["visibility"], secs["visibility"] = vis_of[geometry]
                amb = (w > AMBIGUOUS[0]) & (w < AMBIGUOUS[1])
                out["combined"] = torch.where(amb, out["visibility"], out["wn_repaired"])
                secs["combined"] = secs["wn_repaired"] + secs["visibility"]
                row = {"category": cat, "seed": int(seed), "corruption": name, "faces": int(bad[1].shape[0]),
                       "ambiguous_uniform": float(amb[:half].double().mean()),
                       "ambiguous_near": float(amb[half:].double().mean())}
                for k in METHOD_KEYS:
                    ok = out[k] == truth
                    row[f"{k}_uniform"] = float(ok[:half].double().mean())
                    row[f"{k}_near"] = float(ok[half:].double().mean())
                    row[f"{k}_seconds"] = round(secs[k], 3)
                rows.append(row)
                print(cat, seed, name, " ".join(f"{k} {row[k + '_uniform']:.4f}/{row[k + '_near']:.4f}"
                                                for k in METHOD_KEYS), flush=True)
    return {"rows": rows, "queries": sz["queries"], "views": sz["views"], "view_size": sz["view_size"],
            "resolution": sz["resolution"], "shapes_per_category": sz["methods_shapes"],
            "categories": list(sz["categories"])}


def methods_claims(m: dict) -> list[dict]:
    rows, out = m["rows"], []
    for ci, name in enumerate(M_CORRUPTIONS):
        rs = [r for r in rows if r["corruption"] == name]
        if len(rs) < MIN_SHAPES:
            continue
        for where, label in (("uniform", "uniform queries"), ("near", "near-surface queries")):
            for a, b in (("visibility", "wn_repaired"), ("combined", "wn_repaired")):
                an, bn = METHODS[METHOD_KEYS.index(a)], METHODS[METHOD_KEYS.index(b)]
                out.append(claim(f"methods_{a}_vs_{b}_{where}_{ci}",
                                 f"{an} agrees with the exact occupancy more often than {bn} ({name}, {label})",
                                 a=an, b=bn, metric=f"inside/outside agreement with the exact occupancy, {label}",
                                 values_a=[r[f"{a}_{where}"] for r in rs], values_b=[r[f"{b}_{where}"] for r in rs],
                                 higher_is_better=True, unit="shapes", selected_on="none"))
    return out


def methods_report(m: dict, claims: list[dict]) -> list[str]:
    rows = m["rows"]
    n = len({(r["category"], r["seed"]) for r in rows})
    out = ["## Part methods: which inside/outside on broken meshes", "",
           f"{n} ShapeNet-lite marching-cubes meshes at {m['resolution']}^3 ({m['shapes_per_category']} per category: "
           f"{', '.join(m['categories'])}); {m['queries']} queries per mesh, half uniform in [-1, 1]^3, half on the "
           "mesh plus N(0, 0.02); agreement of inside/outside with the **exact** occupancy of the shape (its SDF's "
           "sign; the clean mesh itself is a 64^3 marching-cubes approximation, so even the clean row is below 1 "
           f"near the surface). Visibility: {m['views']} depth maps of {m['view_size']}^2 pixels (Fibonacci sphere, "
           "silhouettes grown by one pixel, eps = one pixel's footprint). 'Combined' = the repaired winding "
           f"number, and visibility where {AMBIGUOUS[0]} < w < {AMBIGUOUS[1]}. The internal shell is the shape's "
           f"level set at {INTERNAL_LEVEL}; the stray sheet is an open horizontal square (half the box's width) "
           "through the box centre; holes are cut in the outer surface only. Visibility is computed once per geometry "
           "and reused for the flipped/doubled variants (the same depth maps; a test checks it), so its time is the "
           "undoubled mesh's.", "",
           "Mean agreement over the meshes, uniform / near-surface queries (worst mesh in brackets):", ""]
    head = ["corruption"] + [f"{mm}" for mm in METHODS] + ["ambiguous w, uniform / near"]
    table = []
    for name in M_CORRUPTIONS:
        rs = [r for r in rows if r["corruption"] == name]
        if not rs:
            continue
        cells = [name]
        for k in METHOD_KEYS:
            u = [r[f"{k}_uniform"] for r in rs]
            nn = [r[f"{k}_near"] for r in rs]
            cells.append(f"{np.mean(u):.4f} / {np.mean(nn):.4f} ({min(u):.3f} / {min(nn):.3f})")
        cells.append(f"{np.mean([r['ambiguous_uniform'] for r in rs]):.4f} / "
                     f"{np.mean([r['ambiguous_near'] for r in rs]):.4f}")
        table.append(cells)
    out.append(md_table(head, table))
    out += ["", "Seconds per mesh (median over meshes and corruptions; shared machine, rough):", ""]
    out.append(md_table(["method", "median s", "max s"],
                        [[METHODS[i], f"{np.median([r[k + '_seconds'] for r in rows]):.3f}",
                          f"{max(r[k + '_seconds'] for r in rows):.3f}"] for i, k in enumerate(METHOD_KEYS)]))
    out += ["", "Best method per corruption (highest mean agreement; ties within 0.0005 listed together):", ""]
    best = []
    for name in M_CORRUPTIONS:
        rs = [r for r in rows if r["corruption"] == name]
        if not rs:
            continue
        line = [name]
        for where in ("uniform", "near"):
            means = {k: float(np.mean([r[f"{k}_{where}"] for r in rs])) for k in METHOD_KEYS}
            top = max(means.values())
            line.append(", ".join(METHODS[METHOD_KEYS.index(k)] for k in METHOD_KEYS if means[k] >= top - 5e-4))
        best.append(line)
    out.append(md_table(["corruption", "best, uniform", "best, near-surface"], best))
    out += ["", "### Claims (paired over the meshes)", ""]
    out += [f"- {claim_sentence(c)}" for c in claims] or ["(fewer than 20 meshes: no claim)"]
    return out


def report(profile: str, data: dict) -> str:
    out = []
    if "rows" in data:
        pv = data.get("sign_provenance") or {}
        out += ["## Part sign: the winding number's sign against the clean mesh", ""]
        if pv:
            out += [f"(run: `{pv.get('command', '?')}` on {pv.get('date', '?')} at {pv.get('commit', '?')}; "
                    f"load {pv.get('loadavg', '?')})", ""]
        out += sign_report(data) + [""]
    if "methods" in data:
        pv = data["methods"].get("provenance") or {}
        out += [f"(run: `{pv.get('command', '?')}` on {pv.get('date', '?')} at {pv.get('commit', '?')}; "
                f"load {pv.get('loadavg', '?')})", ""] if pv else []
        out += methods_report(data["methods"], [c for c in data.get("claims", []) if c["id"].startswith("methods_")])
        out.append("")
    out += ["## Goals", ""]
    if profile == "ci":
        out.append("(ci profile: a pipeline check with tiny sizes; the goals are stated for the laptop profile)\n")
    out += [f"- {goal_sentence(g)}" for g in data.get("goals", [])]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=PARTS + ("all",), default="all")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    profile = config.get_profile()
    sz = SIZES[profile]
    jpath = json_path("mesh_sign", profile)
    data: dict = {}
    if args.part != "all" and jpath.exists():
        old = json.loads(jpath.read_text())
        data = dict(old.get("data", {}))
        if "rows" in data and "sign_provenance" not in data:  # the sign part ran alone before parts existed
            data["sign_provenance"] = old.get("provenance", {})
    if args.part in ("sign", "all"):
        data.update(part_sign(sz))
        data["sign_provenance"] = provenance()
        data["sizes"] = dict(sz)
    if args.part in ("methods", "all"):
        data["methods"] = part_methods(sz)
        data["methods"]["provenance"] = provenance()
        data.setdefault("sizes", dict(sz))
    data["claims"] = methods_claims(data["methods"]) if "methods" in data else []
    data.setdefault("selections", [])
    data.setdefault("goals", [])
    body = report(profile, data)
    path = write_result("mesh_sign", profile, body, notes=args.note, data=data)
    print(body)
    print("wrote", path)


if __name__ == "__main__":
    main()
