"""Chapter 04 (octrees): compression of grid-octrees, OGN vs dense decoder cost, OGN auto-encoding IoU.

Run from the repository root:

    COURSE_PROFILE=laptop python benchmarks/octrees.py            # every part
    COURSE_PROFILE=laptop python benchmarks/octrees.py --part compression   # or cost, ae
    COURSE_PROFILE=ci python benchmarks/octrees.py                # pipeline smoke test (~1 min)

Writes ``benchmarks/results/octrees-<profile>-<machine>.md`` and ``benchmarks/results/octrees-<profile>.json``
(read by ``lectures/04_octrees.ipynb``).  A ``--part`` run merges its numbers into the JSON of earlier parts.

* compression: one ShapeNet-lite shape per category (the demo seed) at ``ch04.compression_resolutions``
  (32^3 ... 256^3 on the laptop), octree bytes (:attr:`Octree.nbytes`: split bits + prefix + float32 leaf
  values) against a dense float32 grid; plus meshes read through the loaders: ModelNet when
  ``COURSE_MODELNET_DIR`` is set (first shape of up to 5 categories), else trimesh primitives and a
  ShapeNet-lite mesh written as OFF and read back with ``load_mesh`` (the loader path, not real data).
* cost: peak memory and median time of one forward+backward of the OGN decoder (known structure) and of
  chapter 03's dense decoder (base channels ``ch04.dense_channels`` and 32) at ``ch04.cost_resolutions``.
* ae: OGN and dense auto-encoders trained on the same grids (``ch04.*``), IoU on the test split, OGN
  decoding with its predicted structure.

Cost (laptop profile, 2 cores): not measured on an idle machine. On the shared, loaded machine one training
step at 64^3 (batch 16) took ~4 s for OGN and ~20 s for the dense decoder; ``ch04.*`` trains 15 epochs of 5
batches, so expect minutes for OGN and several times more for the dense baseline (ConvTranspose3d at 64^3 on
a CPU); compression ~5 min (the 256^3 voxelisations dominate), cost ~2 min.  Models are checkpointed
(``train_or_load``), so a second run re-uses them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import RESULTS, md_table, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import octrees as E  # noqa: E402

PARTS = ("compression", "cost", "ae")


def _meshes() -> tuple[dict, str]:
    import trimesh

    from course_lib.data import load_mesh, make_shape

    root = os.environ.get("COURSE_MODELNET_DIR")
    if root:
        from course_lib.data import ModelNet

        ds = ModelNet(root, split="test")
        out, seen = {}, set()
        for i in range(len(ds)):
            cat = ds[i]["category"]
            if cat not in seen and len(seen) < 5:
                seen.add(cat)
                out[f"modelnet/{cat}"] = ds.mesh(i)
        return out, f"ModelNet test shapes from {root}"
    out = {"box": trimesh.creation.box(extents=(1.2, 0.8, 0.5)),
           "capsule": trimesh.creation.capsule(height=0.9, radius=0.45),
           "icosphere": trimesh.creation.icosphere(subdivisions=3, radius=0.8)}
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "chair.off"
        make_shape("chair", E._demo_seed()).mesh(64).export(p)
        out["chair mesh (OFF via load_mesh)"] = load_mesh(p)
    return out, "no COURSE_MODELNET_DIR: trimesh primitives and a ShapeNet-lite mesh read back through load_mesh"


def part_compression(profile: str) -> dict:
    s = config.sizes(profile, prefix="ch04.")
    rows = E.compression(profile=profile, progress=True)
    res = list(s["compression_resolutions"])
    per_res = {}
    for R in res:
        ratios = [r["ratio"] for r in rows if r["resolution"] == R]
        per_res[str(R)] = {"mean_ratio": float(np.mean(ratios)), "min_ratio": float(np.min(ratios)),
                           "max_ratio": float(np.max(ratios))}
    meshes, source = _meshes()
    mesh_res = [R for R in res if R <= 128]
    mrows = E.mesh_compression(meshes, mesh_res, s["tree_depth"])
    return {"rows": rows, "per_resolution": per_res, "mesh_rows": mrows, "mesh_source": source,
            "round_trip_exact": all(r["round_trip_exact"] for r in rows),
            "mesh_round_trip_exact": all(r["round_trip_exact"] for r in mrows)}


def part_cost(profile: str) -> dict:
    s = config.sizes(profile, prefix="ch04.")
    widths = sorted({int(s["dense_channels"]), 32})
    rows = E.decoder_cost(profile=profile, dense_channels=widths, progress=True)
    return {"rows": rows, "batch_size": int(s["cost_batch"]), "dense_channels": widths}


def part_ae(profile: str) -> dict:
    from course_lib.experiments.common import summarize

    data = E.octree_data("train", profile)
    val = E.octree_data("val", profile)
    test = E.octree_data("test", profile)
    ogn, h_ogn = E.train_ogn(profile, data=data, val_data=val)
    dense, h_dense = E.train_dense(profile, data=data, val_data=val)
    r_ogn = E.evaluate_iou(ogn, test["voxels"])
    r_dense = E.evaluate_iou(dense, test["voxels"])
    cats = list(test["categories"])
    per_cat = {}
    for c in cats:
        m = torch.tensor([x == c for x in test["category"]])
        per_cat[c] = {"ogn": float(r_ogn["iou"][m].mean()), "dense": float(r_dense["iou"][m].mean())}
    table = summarize({"OGN (predicted structure)": {"iou": r_ogn["iou"], "cells": r_ogn["cells"]},
                       "dense (chapter 03 decoder)": {"iou": r_dense["iou"], "cells": r_dense["cells"]}})
    return {"resolution": int(test["voxels"].shape[-1]), "categories": cats, "n_train": int(data["voxels"].shape[0]),
            "n_test": int(test["voxels"].shape[0]), "table": table, "per_category": per_cat,
            "iou_ogn": float(r_ogn["iou"].mean()), "iou_dense": float(r_dense["iou"].mean()),
            "train_seconds_ogn": float(h_ogn.wall_time), "train_seconds_dense": float(h_dense.wall_time),
            "epochs": int(config.size("ch04.epochs", profile))}


def _fmt_bytes(b: float) -> str:
    if not np.isfinite(b):
        return "n/a"
    return f"{b / 2**20:.1f} MiB"


def report(profile: str, data: dict) -> str:
    out = []
    if "compression" in data:
        c = data["compression"]
        out.append("## Compression (dense float32 bytes / octree bytes)\n")
        res = sorted({r["resolution"] for r in c["rows"]})
        cats = list(dict.fromkeys(r["shape"] for r in c["rows"]))
        rows = [[cat] + [next(r["ratio"] for r in c["rows"] if r["shape"] == cat and r["resolution"] == R) for R in res]
                for cat in cats]
        rows.append(["**mean**"] + [c["per_resolution"][str(R)]["mean_ratio"] for R in res])
        out.append(md_table(["shape"] + [f"{R}^3" for R in res], rows))
        out.append(f"\nRound trip octree -> dense exact on every category and resolution: {c['round_trip_exact']}")
        out.append(f"\nMeshes ({c['mesh_source']}); round trip exact: {c['mesh_round_trip_exact']}\n")
        mres = sorted({r["resolution"] for r in c["mesh_rows"]})
        names = list(dict.fromkeys(r["shape"] for r in c["mesh_rows"]))
        out.append(md_table(["mesh"] + [f"{R}^3" for R in mres],
                            [[n] + [next(r["ratio"] for r in c["mesh_rows"] if r["shape"] == n and r["resolution"] == R)
                                    for R in mres] for n in names]))
    if "cost" in data:
        k = data["cost"]
        out.append(f"\n## Decoder forward+backward (batch {k['batch_size']})\n")
        out.append(md_table(["decoder", "R", "peak memory", "time (s)", "cells per shape", "note"],
                            [[r["decoder"], r["resolution"], _fmt_bytes(r["peak_bytes"]), r["seconds"], r["cells"],
                              r.get("skipped", "")] for r in k["rows"]]))
    if "ae" in data:
        a = data["ae"]
        out.append(f"\n## Auto-encoding at {a['resolution']}^3 ({a['n_train']} training, {a['n_test']} test shapes, "
                   f"{a['epochs']} epochs)\n")
        from course_lib.experiments.common import format_table

        out.append(format_table(a["table"]))
        out.append(f"\nTraining time: OGN {a['train_seconds_ogn']:.0f} s, dense {a['train_seconds_dense']:.0f} s\n")
        out.append(md_table(["category", "OGN IoU", "dense IoU"],
                            [[c, v["ogn"], v["dense"]] for c, v in a["per_category"].items()]))
    out.append("\n## Goals\n")
    if profile == "ci":
        out.append("(ci profile: a pipeline check with tiny sizes; the goals are stated for the laptop profile)\n")
    out.append(goals(data))
    return "\n".join(out)


def goals(data: dict) -> str:
    lines = []
    c = data.get("compression")
    if c:
        ok = c.get("round_trip_exact") and c.get("mesh_round_trip_exact")
        lines.append(f"- round trip exact on every category and mesh at every resolution: {'met' if ok else 'NOT met'}")
    if c and "128" in c["per_resolution"]:
        m = c["per_resolution"]["128"]["mean_ratio"]
        lines.append(f"- compression at 128^3 >= 10x on average: {m:.1f}x -> {'met' if m >= 10 else 'NOT met'}")
    k = data.get("cost")
    if k:
        rows = k["rows"]
        for R in sorted({r["resolution"] for r in rows}):
            o = next((r for r in rows if r["decoder"] == "ogn" and r["resolution"] == R), None)
            for d in (r for r in rows if r["decoder"].startswith("dense") and r["resolution"] == R):
                if o and np.isfinite(d["peak_bytes"]) and d["peak_bytes"] > 0:
                    lines.append(f"- {R}^3: OGN peak / {d['decoder']} peak = {o['peak_bytes'] / d['peak_bytes']:.3f} "
                                 f"(goal at 128^3: <= 0.25)")
    a = data.get("ae")
    if a:
        gap = a["iou_dense"] - a["iou_ogn"]
        lines.append(f"- IoU at {a['resolution']}^3: OGN {a['iou_ogn']:.3f} vs dense {a['iou_dense']:.3f} (gap {gap:+.3f}, "
                     f"goal <= 0.05) -> {'met' if gap <= 0.05 else 'NOT met'}")
        lines.append(f"- OGN training {a['train_seconds_ogn']:.0f} s (goal <= 300 s at 64^3) -> "
                     f"{'met' if a['train_seconds_ogn'] <= 300 else 'NOT met'}")
    return "\n".join(lines) or "(no part run)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=PARTS + ("all",), default="all")
    args = ap.parse_args()
    profile = config.get_profile()
    json_path = RESULTS / f"octrees-{profile}.json"
    data: dict = {}
    if args.part != "all" and json_path.exists():
        data = dict(json.loads(json_path.read_text()).get("data", {}))
    for part in (PARTS if args.part == "all" else (args.part,)):
        print(f"== {part}", flush=True)
        data[part] = {"compression": part_compression, "cost": part_cost, "ae": part_ae}[part](profile)
    body = report(profile, data)
    notes = ("Octree bytes = packed split bits (ceil(73/32) int32 words per depth-3 tree) + prefix_leafs (one int32 per "
             "tree) + one float32 per leaf; dense = one float32 per voxel. Peak memory: CUDA allocator peak, or the CPU "
             "resident-set peak above the start (course_lib.experiments.point_sets.peak_memory).")
    path = write_result("octrees", profile, body, notes=notes, data=data)
    print(body)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
