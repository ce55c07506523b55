"""Chapter 04 (octrees): compression of grid-octrees, OGN vs dense decoder cost, OGN auto-encoding IoU.

Run from the repository root:

    COURSE_PROFILE=laptop python benchmarks/octrees.py            # every part
    COURSE_PROFILE=laptop python benchmarks/octrees.py --part compression   # or cost, ae, working_memory,
                                                                           # dense_working, shell
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
* dense_working: the dense decoder's working bytes at every resolution, counted on the meta device
  (``E.dense_decoder_buffers``), beside the OGN decoder's of working_memory (goal ``decoder_working_ratio``);
* shell: solid against surface (one-voxel shell) voxelisation of the demo shapes, as octrees
  (``E.shell_compression``);
* svr: OGN from a single image at every ``ch04.svr_resolutions``, ``ch04.ae_seeds`` training seeds each, every
  prediction upsampled to the largest resolution and scored there; claims over the seeds and paired over the
  test shapes (each shape's IoU averaged over the seeds);
* octnet: OctNet's encoder against its dense twin: classification accuracy over ``ch04.ae_seeds`` seeds at
  each of ``ch04.octnet_resolutions`` and the time and memory of one training step at ``ch04.octnet_cost_resolutions``;
* working_memory: the exact byte account (``memory_account``) of ``ch04.categories`` shapes at
  ``ch04.compression_resolutions``: the octree's stored bytes, its working bytes (per-leaf cache, the
  convolution's sparse operator), the OGN decoder's working tensors in one forward+backward (cells,
  features, logits, im2col columns, neighbour indices, lookup tables or sorted keys), a dense float32 grid
  and a dense bitmask, with fitted growth exponents; one decoder forward+backward per shape at the two
  largest resolutions with its CPU peak RSS next to the accounted bytes; and the two neighbour lookups
  (dense table, sorted keys) on the chair's convolution levels, bytes and time.
* ae: the chapter's comparison under protocol 2, over ``ch04.ae_seeds`` training seeds (3): OGN and
  chapter 03's dense auto-encoder trained on the same grids with the same batches, epochs and optimiser
  (Adam with chapter 03's cosine decay), so the same optimiser steps; the dense one with chapter 03's
  recipe (weighted BCE, read-out started at the prior, the threshold chosen on val).  Every choice (best
  epoch of each, the dense threshold) is made in ``train_and_select`` (``SELECTION_PARTS``) on train and
  val only; the test split is read afterwards, once, to report.  The losses differ (per-level 3-class CE
  against weighted voxel BCE) and so do the widths: the table gives each row's budget (steps, examples,
  seconds, parameters).  The gap is the claim ``dense_vs_ogn_iou`` (paired over the seeds).

Real datasets (issue #35): ``--dataset modelnet`` or ``--dataset shapenetcore`` (with ``--root DIR``, or
``COURSE_MODELNET_DIR`` / ``COURSE_SHAPENET_DIR``; ``COURSE_DATASET`` works too) trains and tests the
auto-encoders (part ae) on that dataset's grids (by winding number, :class:`course_lib.data.real_split.RealShapes`,
the profile's categories by name), and the compression part's mesh rows are the first test mesh of up to 5 of
its categories.  compression's per-category rows, cost and working_memory stay on ShapeNet-lite's demo shapes
(properties of the representation and of the decoders, the same on every dataset).  Checkpoints carry the
dataset's name (``ch04_<model>_ae-<dataset>-<profile>-<hash>.pt``) and the results are
``benchmarks/results/octrees-<dataset>-<profile>-<machine>.md`` / ``octrees-<dataset>-<profile>.json``:
ShapeNet-lite's files are never overwritten.

``data["selections"]``, ``data["claims"]`` and ``data["goals"]`` hold the protocol's records (read by the
lecture with ``results.say`` / ``results.show_goals``); each part keeps its own ``provenance``, and a
``--part`` run drops the parts of an older file that were measured before protocol 2.

Cost (laptop profile, 2 cores), estimated from the last laptop run (protocol 1, one seed, a loaded
2-core machine: OGN 40 s and dense 176 s of training for 75 steps each): ae ~11-12 min for 3 seeds of
both models (+ ~1 min to generate the 30 shapes of the fresh test split at 64^3 on a cold cache);
compression ~5 min (the 256^3 voxelisations dominate); cost ~2 min; working_memory ~14 min
(measured with a load average of 5-11 on 2 cores: the 256^3 voxelisations and sparse operators dominate);
~35 min in all.  Models are
checkpointed (``train_or_load``, one checkpoint per seed), so a second run re-uses them.
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

from _common import json_path, md_table, provenance, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import octrees as E  # noqa: E402
from course_lib.experiments.common import real_dataset, use_dataset  # noqa: E402
from course_lib.experiments.protocol import (  # noqa: E402
    MIN_SEEDS,
    MIN_SHAPES,
    claim,
    claim_sentence,
    goal,
    goal_sentence,
    seed_budget,
    selection_part,
)

PARTS = ("compression", "cost", "ae", "working_memory", "dense_working", "shell", "svr", "octnet")
SELECTION_PARTS = ("train_and_select", "svr_train_on_val", "octnet_train_on_val")
"""The part that makes choices (best epochs, the dense threshold), on train and val only; compression and
cost make none (one demo shape per category, fixed sizes), and neither do working_memory, dense_working and shell
(exact bytes)."""


def _meshes() -> tuple[dict, str]:
    import trimesh

    from course_lib.data import load_mesh, make_shape

    real = real_dataset()
    if real is not None:  # --dataset: the first test mesh of up to 5 of its categories, normalised and repaired
        from course_lib.data.real_split import RealShapes

        ds = RealShapes(real, "test", ("points",))
        out, seen = {}, set()
        for i, (cat, _, _) in enumerate(ds.entries):
            if cat not in seen and len(seen) < 5:
                seen.add(cat)
                out[f"{real}/{cat}"] = ds.mesh(i)
        return out, f"{real} test meshes from {ds.root}"
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


def part_working_memory(profile: str) -> dict:
    import time

    from course_lib.data import make_shape, voxelize
    from course_lib.experiments.point_sets import peak_memory
    from course_lib.geometry.octree import build_octree
    from course_lib.models.ogn import (
        PROP_KNOWN,
        OGNDecoder,
        lookup_method,
        neighbour_index,
        ogn_loss,
        trace_buffers,
    )

    s = config.sizes(profile, prefix="ch04.")
    res = [int(R) for R in s["compression_resolutions"]]
    D, L, chans = int(s["tree_depth"]), int(s["latent_dim"]), tuple(s["ogn_channels"])
    cats = list(s["categories"])
    rows = E.memory_account(res, cats, profile=profile, progress=True)
    exps = E.memory_exponents(rows)
    peak_res = res[-2:]
    steps, lookups = [], []
    for c in cats:
        for R in peak_res:
            t = build_octree(voxelize(make_shape(c, E._demo_seed()), R), D)
            torch.manual_seed(0)
            dec, z = OGNDecoder(L, R, D, chans), torch.randn(1, L)

            def step(dec=dec, z=z, t=t) -> None:
                dec.zero_grad(set_to_none=True)
                ogn_loss(dec(z, t, PROP_KNOWN))["loss"].backward()

            step()  # warm-up
            _, peak = peak_memory(step)
            t0 = time.perf_counter()
            step()
            sec = time.perf_counter() - t0
            buf = E.decoder_buffers(dec, z, t)
            steps.append({"shape": c, "resolution": R, "mixed_cells": buf["mixed_cells"], "cells": buf["cells"],
                          "accounted_bytes": buf["accounted_bytes"], "autograd_saved_bytes": buf["autograd_saved_bytes"],
                          "peak_rss_bytes": float(peak), "seconds": sec,
                          "lookups": ", ".join(f"{r}^3 {m}" for r, m in buf["lookups"])})
            if c != cats[0]:
                continue
            for lev in dec.conv_levels:  # the levels where a SparseConv3d looks its neighbours up
                cells, r = t.cells(lev), t.grid * 2 ** lev
                rec = {"shape": c, "resolution": R, "level": lev, "level_resolution": r, "cells": int(cells.shape[0]),
                       "chosen": lookup_method(int(cells.shape[0]), 1, r)}
                ref = None
                for m in ("table", "sort"):
                    with trace_buffers() as tr:
                        nbr = neighbour_index(cells, r, method=m)
                    ref = nbr if ref is None else ref
                    rec[f"{m}_same"] = bool(torch.equal(nbr, ref))
                    rec[f"{m}_lookup_bytes"] = sum(x["bytes"] for x in tr if x["name"].startswith("lookup"))
                    rec["index_bytes"] = sum(x["bytes"] for x in tr if x["name"] == "neighbour index")
                    ts = []
                    for _ in range(3):
                        t0 = time.perf_counter()
                        neighbour_index(cells, r, method=m)
                        ts.append(time.perf_counter() - t0)
                    rec[f"{m}_seconds"] = float(np.median(ts))
                lookups.append(rec)
    return {"rows": rows, "exponents": exps, "table": E.account_table(rows), "decoder_steps": steps,
            "lookups": lookups, "resolutions": res, "categories": cats, "peak_resolutions": peak_res,
            "timing_note": "times measured on a shared 2-core machine (other jobs running): indicative only"}


@selection_part
def svr_train_on_val(profile: str) -> dict:
    """Train (or load) the single-view OGN at every ``ch04.svr_resolutions`` for every seed of ``ch04.ae_seeds``;
    each run keeps its epoch with the lowest validation loss (the only choice; train and val only)."""
    from course_lib.experiments import voxels as V

    s = config.sizes(profile, prefix="ch04.")
    out = {"models": {}, "budgets": {}, "selections": [], "n_train": None}
    for R in (int(r) for r in s["svr_resolutions"]):
        data, val = E.svr_data("train", R, profile), E.svr_data("val", R, profile)
        for seed in E.ae_seeds(profile):
            model, hist = E.train_ogn_svr(R, profile, data=data, val_data=val, seed=seed, progress=False)
            n = int(data["voxels"].shape[0])
            out["n_train"] = n
            out["models"][(R, seed)] = model
            out["budgets"].setdefault(R, []).append(
                V.fit_budget(model, hist, n, int(s["batch_size"]), loss="per-level 3-class CE",
                             decision="arg-max state", input="one RGB view"))
            out["selections"].append(V.best_epoch_record(f"ogn_svr_best_epoch_{R}_seed{seed}", hist))
            print(f"single-view OGN {R}^3 seed {seed}: {hist.epochs_run} epochs, {hist.wall_time:.0f} s", flush=True)
    return out


def _mean_budget(bs: list[dict]) -> dict:
    """One row's budget from its seeds' runs: the first run's, with the wall seconds averaged over the runs."""
    return seed_budget(bs, count_key="runs")


def part_svr(profile: str) -> dict:
    """OGN from a single image at every resolution and seed, each prediction upsampled to the largest and scored
    there."""
    s = config.sizes(profile, prefix="ch04.")
    res = [int(r) for r in s["svr_resolutions"]]
    hi = max(res)
    seeds = E.ae_seeds(profile)
    sel = svr_train_on_val(profile)
    test = E.svr_data("test", hi, profile)  # read once, to report
    per = {}
    for R in res:
        at_max = [E.svr_iou_at(sel["models"][(R, sd)], test["rgb"], test["voxels"]) for sd in seeds]
        if R != hi:
            native_t = E.svr_data("test", R, profile)
            native = [E.svr_iou_at(sel["models"][(R, sd)], native_t["rgb"], native_t["voxels"]) for sd in seeds]
        else:
            native = at_max
        per[str(R)] = {"iou_at_max": torch.stack(at_max).mean(0).tolist(),  # each shape's IoU, mean over seeds
                       "iou_native": torch.stack(native).mean(0).tolist(),
                       "iou_at_max_per_seed": [x.tolist() for x in at_max],
                       "seed_means": [float(x.mean()) for x in at_max]}
    return {"resolutions": res, "max_resolution": hi, "per_resolution": per, "n_test": int(test["voxels"].shape[0]),
            "n_train": sel["n_train"], "seeds": seeds,
            "budgets": {str(R): _mean_budget(b) for R, b in sel["budgets"].items()},
            "selections": sel["selections"], "categories": list(s["categories"] or []),
            "shapes": [[str(c), int(x)] for c, x in zip(test["category"], test["seed"].tolist())]}


def svr_claims(data: dict) -> list[dict]:
    """Does a finer prediction beat a coarser one upsampled, when both are scored at the largest resolution?
    Over the training seeds (each seed's mean IoU over the test shapes) and, where a file has one seed only,
    paired over the test shapes; with several seeds the shapes' claim (seed-averaged IoU) is added."""
    v = data.get("svr")
    if not v:
        return []
    hi, res = v["max_resolution"], v["resolutions"]
    seeded = len(v.get("seeds", [])) >= MIN_SEEDS
    out = []
    for a, b in [(x, y) for i, x in enumerate(res) for y in res[:i]]:
        na, nb = f"OGN {a}^3", f"OGN {b}^3 upsampled"
        text = (f"From a single image, the OGN predicting {a}^3 reconstructs the shape better at {hi}^3 than the OGN "
                f"predicting {b}^3, upsampled")
        budget = {na: v["budgets"][str(a)], nb: v["budgets"][str(b)]}
        pa, pb = v["per_resolution"][str(a)], v["per_resolution"][str(b)]
        if seeded:
            out.append(claim(f"svr_{a}_vs_{b}", text + " (over training seeds)", a=na, b=nb,
                             metric=f"mean IoU at {hi}^3 over {v['n_test']} test shapes, per seed",
                             values_a=pa["seed_means"], values_b=pb["seed_means"], higher_is_better=True,
                             unit="seeds", budget=budget, selected_on="val"))
        if v["n_test"] >= MIN_SHAPES:
            out.append(claim(f"svr_{a}_vs_{b}" + ("_shapes" if seeded else ""), text + (
                " (paired over the test shapes, each shape's IoU averaged over the seeds)" if seeded else ""),
                a=na, b=nb, metric=f"IoU at {hi}^3 ({v['n_test']} test shapes)", values_a=pa["iou_at_max"],
                values_b=pb["iou_at_max"], higher_is_better=True, unit="shapes", budget=budget, selected_on="val"))
    return out


@selection_part
def octnet_train_on_val(profile: str) -> dict:
    """Train (or load) the octree and the dense classifier at every ``ch04.octnet_resolutions`` for every seed of
    ``ch04.ae_seeds``; each keeps its epoch with the lowest validation loss (the only choice; train and val only)."""
    from course_lib.experiments import voxels as V
    from course_lib.models.octnet import STRUCTURE_CACHE

    s = config.sizes(profile, prefix="ch04.")
    out = {"models": {}, "budgets": {}, "selections": [], "n_train": None, "categories": None,
           "resolutions": [int(r) for r in s["octnet_resolutions"]]}
    for R in out["resolutions"]:
        data, val = E.octree_data("train", profile, resolution=R), E.octree_data("val", profile, resolution=R)
        out["n_train"], out["categories"] = int(data["voxels"].shape[0]), list(data["categories"])
        for seed in E.ae_seeds(profile):
            for kind in E.ENCODER_KINDS:
                if kind == "octree":  # every run pays for building its shapes' structures once (its first epoch)
                    STRUCTURE_CACHE.clear()
                model, hist = E.train_grid_classifier(kind, profile, data=data, val_data=val, seed=seed,
                                                      progress=False)
                out["models"][(R, kind, seed)] = model
                out["budgets"].setdefault(str(R), {}).setdefault(kind, []).append(
                    V.fit_budget(model, hist, int(data["voxels"].shape[0]), int(s["batch_size"]),
                                 loss="cross-entropy", input="octree" if kind == "octree" else "dense grid"))
                out["selections"].append(V.best_epoch_record(f"octnet_{kind}_{R}_best_epoch_seed{seed}", hist))
                print(f"{kind} classifier {R}^3 seed {seed}: {hist.epochs_run} epochs, {hist.wall_time:.0f} s",
                      flush=True)
    return out


def part_octnet(profile: str) -> dict:
    """OctNet's encoder against its dense twin: accuracy on the test grids (3 seeds) at every training resolution,
    and the cost of a step."""
    from course_lib.experiments import voxels as V

    sel = octnet_train_on_val(profile)
    acc, n_test = {}, {}
    for R in sel["resolutions"]:
        test = E.octree_data("test", profile, resolution=R)  # read once, to report
        n_test[str(R)] = int(test["voxels"].shape[0])
        acc[str(R)] = {kind: [V.accuracy(sel["models"][(R, kind, sd)], test["voxels"], test["label"], batch_size=16)
                              for sd in E.ae_seeds(profile)] for kind in E.ENCODER_KINDS}
    budgets = {R: {kind: _mean_budget(bs) for kind, bs in per.items()} for R, per in sel["budgets"].items()}
    cost = E.encoder_cost(profile=profile)
    return {"resolutions": sel["resolutions"], "n_train": sel["n_train"], "n_test": n_test,
            "categories": sel["categories"], "seeds": E.ae_seeds(profile), "accuracy": acc, "budgets": budgets,
            "selections": sel["selections"], "cost": cost}


def octnet_claims(data: dict) -> list[dict]:
    v = data.get("octnet")
    if not v or len(v["seeds"]) < MIN_SEEDS or "resolutions" not in v:
        return []
    return [claim(f"octnet_vs_dense_accuracy_{R}", f"The octree encoder (OctNet's convolution and pooling) "
                  f"classifies the held-out {R}^3 grids more accurately than its dense twin", a="octree",
                  b="dense", metric=f"accuracy, {v['n_test'][str(R)]} test shapes",
                  values_a=v["accuracy"][str(R)]["octree"], values_b=v["accuracy"][str(R)]["dense"],
                  higher_is_better=True, unit="seeds", budget=v["budgets"][str(R)], selected_on="val")
            for R in v["resolutions"]]


def part_shell(profile: str) -> dict:
    """Solid against surface (shell) voxelisation of the demo shapes, as octrees (E.shell_compression)."""
    s = config.sizes(profile, prefix="ch04.")
    res = [int(R) for R in s["compression_resolutions"]]
    rows = E.shell_compression(res, profile=profile, progress=True)
    per = {}
    for R in res:
        for kind in ("solid", "shell"):
            rs = [r for r in rows if r["resolution"] == R and r["grid"] == kind]
            per[f"{kind}/{R}"] = {"mean_ratio": float(np.mean([r["ratio"] for r in rs])),
                                  "mean_octree_bytes": float(np.mean([r["octree_bytes"] for r in rs])),
                                  "mean_voxels": float(np.mean([r["voxels"] for r in rs])),
                                  "mean_leaves": float(np.mean([r["leaves"] for r in rs]))}
    exps = {}
    for kind in ("solid", "shell"):
        ks = []
        for c in dict.fromkeys(r["shape"] for r in rows):
            rs = sorted((r for r in rows if r["shape"] == c and r["grid"] == kind), key=lambda r: r["resolution"])
            x = np.log([r["resolution"] for r in rs])
            ks.append({"octree_bytes": float(np.polyfit(x, np.log([r["octree_bytes"] for r in rs]), 1)[0]),
                       "voxels": float(np.polyfit(x, np.log([r["voxels"] for r in rs]), 1)[0])})
        exps[kind] = {k: float(np.mean([e[k] for e in ks])) for k in ("octree_bytes", "voxels")}
    return {"rows": rows, "per_resolution": per, "exponents": exps, "resolutions": res,
            "round_trip_exact": all(r["round_trip_exact"] for r in rows)}


def part_dense_working(profile: str) -> dict:
    """The dense decoder's working bytes at every resolution of the working-memory account, counted on the
    meta device (no data: a 256^3 dense decoder needs gigabytes) the way decoder_buffers counts the OGN's."""
    s = config.sizes(profile, prefix="ch04.")
    widths = sorted({int(s["dense_channels"]), 32})
    rows = []
    for w in widths:
        for R in (int(r) for r in s["compression_resolutions"]):
            d = E.dense_decoder_buffers(R, latent_dim=int(s["latent_dim"]), base_channels=w)
            rows.append({k: d[k] for k in ("resolution", "batch_size", "base_channels", "forward_bytes",
                                           "autograd_saved_bytes")})
    return {"rows": rows, "trained_width": int(s["dense_channels"]), "device": "meta"}


@selection_part
def train_and_select(profile: str, seed: int) -> dict:
    """Train (or load) both auto-encoders with one seed; every choice on ``val``: the best epoch of each
    (lowest validation loss) and the dense decoder's probability threshold (best validation IoU)."""
    from course_lib.experiments import voxels as V

    data, val = E.octree_data("train", profile), E.octree_data("val", profile)
    s = config.sizes(profile, prefix="ch04.")
    ogn, h_ogn = E.train_ogn(profile, data=data, val_data=val, seed=seed, progress=False)
    dense, h_dense = E.train_dense(profile, data=data, val_data=val, seed=seed, progress=False)
    level, thr = E.dense_threshold(dense, val["voxels"], profile, id=f"dense_threshold_seed{seed}")
    n, b = int(data["voxels"].shape[0]), int(s["batch_size"])
    return {"ogn": ogn, "dense": dense, "level": level, "n_train": n,
            "budget": {"ogn": V.fit_budget(ogn, h_ogn, n, b, loss="per-level 3-class CE", decision="arg-max state"),
                       "dense": V.fit_budget(dense, h_dense, n, b, loss="weighted voxel BCE",
                                             decision=f"p >= {level} (chosen on val)")},
            "selections": [V.best_epoch_record(f"ogn_best_epoch_seed{seed}", h_ogn),
                           V.best_epoch_record(f"dense_best_epoch_seed{seed}", h_dense), thr]}


def part_ae(profile: str) -> dict:
    from course_lib.experiments.common import mean_sem

    seeds = E.ae_seeds(profile)
    runs = {sd: train_and_select(profile, sd) for sd in seeds}  # train and val only
    test = E.octree_data("test", profile)  # read once, to report
    cats = [c for c in test["categories"] if c in set(test["category"])]  # a real dataset lists all of its own
    per_seed, per_shape = [], {"ogn": [], "dense": []}
    for sd, r in runs.items():
        r_ogn = E.evaluate_iou(r["ogn"], test["voxels"])
        r_dense = E.evaluate_iou(r["dense"], test["voxels"], threshold=r["level"])
        per_seed.append({"seed": sd, "iou_ogn": float(r_ogn["iou"].mean()), "iou_dense": float(r_dense["iou"].mean()),
                         "dense_threshold": r["level"], "cells_ogn": float(r_ogn["cells"].mean()),
                         "budget": r["budget"]})
        per_shape["ogn"].append(r_ogn["iou"])
        per_shape["dense"].append(r_dense["iou"])
    shape_iou = {k: torch.stack(v).mean(0) for k, v in per_shape.items()}  # each shape's IoU, mean over seeds
    per_cat = {}
    for c in cats:
        m = torch.tensor([x == c for x in test["category"]])
        per_cat[c] = {k: float(v[m].mean()) for k, v in shape_iou.items()}
    budgets = {}
    for k in ("ogn", "dense"):
        rows = [p["budget"][k] for p in per_seed]
        budgets[k] = _mean_budget(rows)
    budgets["dense"]["decision"] = ("p >= t, t chosen on val per seed: "
                                    + ", ".join(str(p["dense_threshold"]) for p in per_seed))
    return {"resolution": int(test["voxels"].shape[-1]), "categories": cats, "n_train": runs[seeds[0]]["n_train"],
            "n_test": int(test["voxels"].shape[0]),
            "seeds": seeds, "per_seed": per_seed, "per_category": per_cat, "budgets": budgets,
            "shapes": [f"{c}/{int(sd)}" for c, sd in zip(test["category"], torch.as_tensor(test["seed"]).tolist())],
            "shape_iou": {k: v.tolist() for k, v in shape_iou.items()},
            "iou_ogn": mean_sem([p["iou_ogn"] for p in per_seed])[0],
            "iou_dense": mean_sem([p["iou_dense"] for p in per_seed])[0],
            "iou_ogn_se": mean_sem([p["iou_ogn"] for p in per_seed])[1],
            "iou_dense_se": mean_sem([p["iou_dense"] for p in per_seed])[1],
            "train_seconds_ogn": budgets["ogn"]["seconds"], "train_seconds_dense": budgets["dense"]["seconds"],
            "epochs": int(config.size("ch04.epochs", profile)),
            "selections": [rec for r in runs.values() for rec in r["selections"]]}


AE_CLAIM = "dense_vs_ogn_iou"


def claims(data: dict) -> list[dict]:
    """The chapter's comparison as a record: the dense decoder against OGN, paired over training seeds."""
    a = data.get("ae")
    if not a or "per_seed" not in a:
        return []
    R = a["resolution"]
    text = (f"Predicting the structure costs IoU: at equal optimiser steps, chapter 03's dense decoder (weighted voxel "
            f"BCE, read-out at the prior, threshold chosen on val) auto-encodes {R}^3 grids with a higher IoU than the "
            f"OGN decoder (per-level 3-class CE, predicted structure)")
    return [claim(AE_CLAIM, text, a="dense", b="OGN", metric=f"IoU at {R}^3 (mean over {a['n_test']} test shapes)",
                  values_a=[p["iou_dense"] for p in a["per_seed"]], values_b=[p["iou_ogn"] for p in a["per_seed"]],
                  higher_is_better=True, unit="seeds",
                  budget={"dense": a["budgets"]["dense"], "OGN": a["budgets"]["ogn"]}, selected_on="val")]


def goal_records(data: dict) -> list[dict]:
    """The chapter's goals as records (ids stable across profiles; the laptop profile is the one they are set for)."""
    out = []
    c = data.get("compression")
    if c:
        ok = bool(c.get("round_trip_exact") and c.get("mesh_round_trip_exact"))
        out.append(goal("round_trip_exact", "octree -> dense round trip exact on every category and mesh at every "
                        "resolution", ok, True, comparison="=="))
        res = sorted(int(k) for k in c["per_resolution"])
        R = 128 if 128 in res else res[-1]
        out.append(goal("compression_ratio", f"mean compression at {R}^3, dense float32 bytes / octree bytes (one "
                        "shape per category; against a 1-bit-per-voxel mask the ratio is 32 times smaller)",
                        c["per_resolution"][str(R)]["mean_ratio"], 10.0, comparison=">="))
    k = data.get("cost")
    if k:
        rows = k["rows"]
        w = int(k.get("dense_channels", [8])[0])
        both = [R for R in sorted({r["resolution"] for r in rows})
                if any(r["decoder"] == "ogn" and r["resolution"] == R for r in rows)
                and any(r["decoder"] == f"dense (base {w})" and r["resolution"] == R and np.isfinite(r["peak_bytes"])
                        and r["peak_bytes"] > 0 for r in rows)]
        if both:
            R = 128 if 128 in both else both[-1]
            o = next(r for r in rows if r["decoder"] == "ogn" and r["resolution"] == R)
            d = next(r for r in rows if r["decoder"] == f"dense (base {w})" and r["resolution"] == R)
            out.append(goal("ogn_peak_ratio", f"peak memory of one OGN decoder step / the dense decoder's (base {w}) "
                            f"at {R}^3 (one measurement, batch {k['batch_size']})", o["peak_bytes"] / d["peak_bytes"],
                            0.25, comparison="<="))
    w, dw = data.get("working_memory"), data.get("dense_working")
    if w and dw:
        R = max(int(r) for r in w["resolutions"])
        ogn = float(np.mean([r["decoder_autograd_saved_bytes"] for r in w["rows"] if r["resolution"] == R]))
        d = next((r for r in dw["rows"] if r["resolution"] == R and r["base_channels"] == dw["trained_width"]), None)
        if d is not None:
            out.append(goal("decoder_working_ratio", f"working memory of one decoder forward+backward at {R}^3, batch 1: "
                            "the bytes autograd keeps for the backward pass, OGN (mean over "
                            f"{len(w['categories'])} shapes, measured) / the dense decoder's (base {d['base_channels']}, "
                            "counted on the meta device)", ogn / d["autograd_saved_bytes"], 1 / 8, comparison="<="))
    a = data.get("ae")
    if a and "per_seed" in a:
        gap = float(np.mean([p["iou_dense"] - p["iou_ogn"] for p in a["per_seed"]]))
        out.append(goal("iou_gap", f"IoU gap dense - OGN at {a['resolution']}^3, mean over {len(a['per_seed'])} "
                        "training seeds at equal steps (the dense threshold chosen on val)", gap, 0.05,
                        comparison="<="))
        out.append(goal("ogn_train_seconds", f"OGN training seconds at {a['resolution']}^3 (mean over seeds)",
                        a["train_seconds_ogn"], 300.0, comparison="<="))
    return out


def _fmt_bytes(b: float) -> str:
    if not np.isfinite(b):
        return "n/a"
    return f"{b / 2**20:.1f} MiB"


WM_ROWS = (("octree_stored_bytes", "octree stored"), ("leaf_cache_bytes", "leaf cache"),
           ("conv_operator_bytes", "conv operator"), ("octree_working_bytes", "octree working"),
           ("decoder_working_bytes", "OGN decoder working"), ("dense_float_bytes", "dense float32"),
           ("dense_bit_bytes", "dense bitmask"))
"""The rows of the working-memory table (key in ``memory_account``'s rows, label)."""


def _fmt_b(b: float) -> str:
    if not np.isfinite(b):
        return "n/a"
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if b >= size:
            return f"{b / size:.2f} {unit}"
    return f"{b:.0f} B"


def working_memory_report(w: dict) -> list[str]:
    """The Markdown of the ``working_memory`` part: the account per resolution, exponents, decoder steps, lookups."""
    res = [int(R) for R in w["resolutions"]]
    out = [f"\n## Working memory: stored against working bytes (exact; mean over {len(w['categories'])} shapes: "
           f"{', '.join(w['categories'])})\n",
           "Every number is element_size() x numel() of tensors the course's code builds (memory_account): the "
           "octree's stored arrays, its per-leaf cache and the sparse convolution operator, the OGN decoder's working "
           "tensors in one forward+backward (batch 1, known structure), a dense float32 grid and a dense bitmask. "
           "The exponent k is the least-squares slope of log(bytes) against log(R) (bytes ~ R^k), per shape, "
           "then averaged.\n"]
    table = {int(t["R"]): t for t in E.account_table(w["rows"], [k for k, _ in WM_ROWS])}
    exps = E.memory_exponents(w["rows"], [k for k, _ in WM_ROWS])
    out.append(md_table(["bytes"] + [f"{R}^3" for R in res] + ["exponent k (mean)", "k range over shapes"],
                        [[lab] + [_fmt_b(table[R][k]) for R in res]
                         + [f"{exps[k]['mean']:.2f}",
                            f"{min(v for s, v in exps[k].items() if s != 'mean'):.2f} .. "
                            f"{max(v for s, v in exps[k].items() if s != 'mean'):.2f}"]
                         for k, lab in WM_ROWS if k in exps]))
    parts = sorted({k for r in w["rows"] for k in r if k.startswith("decoder_") and k.endswith("_bytes")
                    and k not in ("decoder_working_bytes", "decoder_autograd_saved_bytes")})
    out.append("\nThe OGN decoder's working bytes by tensor (mean over shapes) and the bytes "
               "autograd kept for the backward pass (a cross-check):\n")
    out.append(md_table(["R", "mixed cells", "cells held"] + [p[len("decoder_"):-len("_bytes")].replace("_", " ")
                                                              for p in parts] + ["total", "autograd saved"],
                        [[R, float(np.mean([r["mixed_cells"] for r in w["rows"] if r["resolution"] == R])),
                          float(np.mean([r["decoder_cells"] for r in w["rows"] if r["resolution"] == R]))]
                         + [_fmt_b(float(np.mean([r.get(p, 0) for r in w["rows"] if r["resolution"] == R])))
                            for p in parts]
                         + [_fmt_b(table[R]["decoder_working_bytes"]),
                            _fmt_b(float(np.mean([r["decoder_autograd_saved_bytes"] for r in w["rows"]
                                                  if r["resolution"] == R])))] for R in res]))
    out.append(f"\nOne OGN decoder forward+backward per shape (batch 1, known structure, ch04 widths): accounted bytes "
               f"against the CPU peak resident set above the start (VmHWM; includes gradients, the backward's "
               f"temporaries and the allocator). Seconds: {w['timing_note']}.\n")
    out.append(md_table(["shape", "R", "mixed cells", "cells held", "accounted", "autograd saved", "peak RSS",
                         "peak / accounted", "seconds (shared machine)", "lookups"],
                        [[d["shape"], d["resolution"], d["mixed_cells"], d["cells"], _fmt_b(d["accounted_bytes"]),
                          _fmt_b(d["autograd_saved_bytes"]), _fmt_b(d["peak_rss_bytes"]),
                          d["peak_rss_bytes"] / d["accounted_bytes"], d["seconds"], d["lookups"]]
                         for d in w["decoder_steps"]]))
    out.append("\nThe two neighbour lookups on the convolution levels of the first shape (the ground-truth cells of the "
               "level): lookup bytes (table or sorted keys with their query and position arrays) against the (N, 27) "
               "int64 index they return; both return the same index. Seconds: median of 3, shared machine.\n")
    out.append(md_table(["R", "level", "level grid", "cells N", "index", "dense table path", "sorted-key path",
                         "same index", "chosen", "table s", "sort s"],
                        [[x["resolution"], x["level"], f"{x['level_resolution']}^3", x["cells"], _fmt_b(x["index_bytes"]),
                          _fmt_b(x["table_lookup_bytes"]), _fmt_b(x["sort_lookup_bytes"]), x["sort_same"], x["chosen"],
                          x["table_seconds"], x["sort_seconds"]] for x in w["lookups"]]))
    return out


def report(profile: str, data: dict) -> str:
    out = ["Each part's run: " + "; ".join(
        f"{p}: `{data[p]['provenance'].get('command', '?')}` at {data[p]['provenance'].get('commit', '?')}"
        for p in PARTS if p in data and "provenance" in data[p]), ""]
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
    if "working_memory" in data:
        out.extend(working_memory_report(data["working_memory"]))
    if "svr" in data:
        v = data["svr"]
        hi = v["max_resolution"]
        seeds = v.get("seeds", [])
        out.append(f"\n## OGN from a single image, scored at {hi}^3 ({v['n_train']} training, {v['n_test']} test shapes, "
                   f"seeds {seeds})\n")
        out.append("One RGB view -> ResNet encoder -> OGN decoder, trained at each resolution with the same shapes, "
                   "views, epochs and batches (the best epoch of each run on val); each prediction decoded with its "
                   f"predicted structure, upsampled (nearest) to {hi}^3 and scored against the {hi}^3 grids; "
                   "native: scored at its own resolution. IoUs are means over the test shapes and the seeds; train s "
                   "is the mean over the seeds.\n")
        out.append(md_table(["resolution", f"IoU at {hi}^3", f"per seed at {hi}^3", "IoU (native)", "steps",
                             "train s", "params"],
                            [[f"{R}^3", float(np.mean(v["per_resolution"][str(R)]["iou_at_max"])),
                              ", ".join(f"{x:.3f}" for x in v["per_resolution"][str(R)].get("seed_means", [])),
                              float(np.mean(v["per_resolution"][str(R)]["iou_native"])), v["budgets"][str(R)]["steps"],
                              f"{v['budgets'][str(R)]['seconds']:.0f}", v["budgets"][str(R)]["params"]]
                             for R in v["resolutions"]]))
        out.extend(f"- {claim_sentence(c)}" for c in data.get("claims", []) if c["id"].startswith("svr_"))
    if "octnet" in data and "resolutions" in data["octnet"]:
        v = data["octnet"]
        out.append(f"\n## The octree encoder against its dense twin ({v['n_train']} training shapes, "
                   f"{', '.join(f'{R}^3' for R in v['resolutions'])}, seeds {v['seeds']})\n")
        out.append("The same layout (convolution, ReLU, 2x2x2 max pooling per block, global max, linear), the same "
                   "grids, batches, epochs and optimiser; the octree network runs OctNet's convolution (one output per "
                   "leaf) and grid pooling on octrees (each shape's structure built in its first epoch and cached), the "
                   "dense one nn.Conv3d and max_pool3d. Best epoch "
                   "of each run on val.\n")
        out.append(md_table(["R", "encoder", "test shapes", "accuracy (mean over seeds)", "per seed", "steps",
                             "train s (mean)", "params"],
                            [[f"{R}^3", k, v["n_test"][str(R)], float(np.mean(a)), ", ".join(f"{x:.3f}" for x in a),
                              v["budgets"][str(R)][k]["steps"], f"{v['budgets'][str(R)][k]['seconds']:.0f}",
                              v["budgets"][str(R)][k]["params"]]
                             for R in v["resolutions"] for k, a in v["accuracy"][str(R)].items()]))
        out.append("\nOne training step (forward + backward), demo shapes: `octree` builds the octrees and their "
                   "convolution operators in the step (the first epoch), `octree (cached)` finds them in the "
                   "structure cache (every later epoch; the bytes it keeps per shape in the last column):\n")
        out.append(md_table(["encoder", "R", "seconds", "peak memory", "leaves per shape", "note", "cache per shape"],
                            [[r["encoder"], r["resolution"], r["seconds"], _fmt_bytes(r["peak_bytes"]),
                              r.get("leaves_per_shape", ""), r.get("skipped", ""),
                              _fmt_bytes(r["cache_bytes_per_shape"]) if "cache_bytes_per_shape" in r else ""]
                             for r in v["cost"]]))
        out.extend(f"- {claim_sentence(c)}" for c in data.get("claims", []) if c["id"].startswith("octnet_"))
    if "shell" in data:
        sh = data["shell"]
        out.append("\n## Solid against surface (shell) voxelisation (one demo shape per category)\n")
        out.append("The same shapes voxelised solid (voxelize) and as their one-voxel shell (voxel_shell), each stored "
                   "as an octree; means over the shapes; k: the fitted exponent of bytes (or full voxels) ~ R^k.\n")
        out.append(md_table(["grid", "R", "full voxels", "leaves", "octree bytes", "dense float32 / octree"],
                            [[kind, R, sh["per_resolution"][f"{kind}/{R}"]["mean_voxels"],
                              sh["per_resolution"][f"{kind}/{R}"]["mean_leaves"],
                              _fmt_b(sh["per_resolution"][f"{kind}/{R}"]["mean_octree_bytes"]),
                              sh["per_resolution"][f"{kind}/{R}"]["mean_ratio"]]
                             for R in sh["resolutions"] for kind in ("solid", "shell")]))
        out.append("\n" + md_table(["grid", "k (octree bytes)", "k (full voxels)"],
                                   [[kind, f"{e['octree_bytes']:.2f}", f"{e['voxels']:.2f}"]
                                    for kind, e in sh["exponents"].items()]))
        out.append(f"\nRound trip exact on every grid: {sh['round_trip_exact']}")
    if "dense_working" in data:
        dw = data["dense_working"]
        out.append("\n## The dense decoder's working bytes (counted, batch 1)\n")
        out.append("One forward+backward of the dense VoxelDecoder with the BCE (ch04 latent width), counted on the "
                   "meta device by dense_decoder_buffers: the outputs of every layer (forward) and the distinct storages "
                   "autograd keeps for the backward pass, the same two counts as the OGN's table above. A unit test "
                   "checks that the meta count equals a real CPU run's and an analytic count of the layers' outputs.\n")
        wm = data.get("working_memory")
        ogn = ({int(R): float(np.mean([r["decoder_autograd_saved_bytes"] for r in wm["rows"] if r["resolution"] == R]))
                for R in wm["resolutions"]} if wm else {})
        out.append(md_table(["decoder", "R", "forward outputs", "autograd saved", "OGN autograd saved (mean)",
                             "OGN / dense"],
                            [[f"dense (base {r['base_channels']})", r["resolution"], _fmt_b(r["forward_bytes"]),
                              _fmt_b(r["autograd_saved_bytes"]),
                              _fmt_b(ogn[r["resolution"]]) if r["resolution"] in ogn else "",
                              ogn[r["resolution"]] / r["autograd_saved_bytes"] if r["resolution"] in ogn else ""]
                             for r in dw["rows"]]))
    if "ae" in data and "per_seed" in data["ae"]:
        a = data["ae"]
        out.append(f"\n## Auto-encoding at {a['resolution']}^3 ({a['n_train']} training, {a['n_test']} test shapes, "
                   f"{a['epochs']} epochs, seeds {a['seeds']})\n")
        out.append("Both decoders: the same training grids, batches, epochs and optimiser (Adam, chapter 03's cosine "
                   "decay), hence the same optimiser steps; the best epoch of each on val. They differ in the loss "
                   "(OGN: per-level 3-class cross-entropy on the known structure; dense: weighted voxel BCE, read-out "
                   "started at the prior), the decision rule (OGN: arg-max state, decoding its predicted structure; "
                   "dense: a probability threshold chosen on val) and the width.\n")
        out.append(E.rows_table(E.ae_rows(a)))
        out.append("\n" + md_table(["seed", "OGN IoU", "dense IoU", "dense threshold (val)", "OGN cells per shape"],
                                   [[p["seed"], p["iou_ogn"], p["iou_dense"], p["dense_threshold"], p["cells_ogn"]]
                                    for p in a["per_seed"]]))
        out.append("\nPer category (each shape's IoU averaged over the seeds):\n")
        out.append(md_table(["category", "OGN IoU", "dense IoU"],
                            [[c, v["ogn"], v["dense"]] for c, v in a["per_category"].items()]))
        out.append("\n## Claims\n")
        out.extend(f"- {claim_sentence(c)}" for c in data.get("claims", []))
        out.append("\n## Choices made on val\n")
        out.extend(f"- {r['id']}: {r['chosen']} ({r['metric']})" for r in data.get("selections", []))
    out.append("\n## Goals\n")
    if profile == "ci":
        out.append("(ci profile: a pipeline check with tiny sizes; the goals are stated for the laptop profile)\n")
    out.append(goals(data))
    return "\n".join(out)


def goals(data: dict) -> str:
    return "\n".join(f"- {goal_sentence(g)}" for g in data.get("goals", [])) or "(no part run)"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="On a real dataset (--dataset modelnet|shapenetcore) part ae trains and tests on its grids and the "
               "compression part's mesh rows are its meshes; compression's per-category rows, cost and working_memory "
               "stay on ShapeNet-lite's demo shapes. Results: results/octrees-<dataset>-<profile>-*.md / .json; "
               "checkpoints ch04_*_ae-<dataset>-*.pt.")
    ap.add_argument("--part", choices=PARTS + ("all",), default="all")
    ap.add_argument("--dataset", help="shapenet-lite (default), modelnet or shapenetcore (sets COURSE_DATASET)")
    ap.add_argument("--root", help="the real dataset's folder (default: COURSE_MODELNET_DIR / COURSE_SHAPENET_DIR)")
    args = ap.parse_args()
    try:
        real = use_dataset(args.dataset, args.root)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    name = "octrees" if real is None else f"octrees-{real}"  # a real dataset never overwrites ShapeNet-lite's
    profile = config.get_profile()
    jpath = json_path(name, profile)
    data: dict = {}
    if args.part != "all" and jpath.exists():
        old = dict(json.loads(jpath.read_text()).get("data", {}))
        for part in PARTS:  # keep only parts measured under protocol 2 (each carries its own provenance)
            if part in old and int(old[part].get("provenance", {}).get("protocol", 1)) >= 2:
                data[part] = old[part]
            elif part in old:
                print(f"dropping part {part!r} of {jpath.name}: measured before protocol 2; re-run --part {part}")
    for part in (PARTS if args.part == "all" else (args.part,)):
        print(f"== {part}", flush=True)
        data[part] = {"compression": part_compression, "cost": part_cost, "ae": part_ae,
                      "working_memory": part_working_memory, "dense_working": part_dense_working,
                      "shell": part_shell, "svr": part_svr, "octnet": part_octnet}[part](profile)
        data[part]["provenance"] = provenance()
    data["selections"] = (list(data.get("ae", {}).get("selections", [])) + list(data.get("svr", {}).get("selections", []))
                          + list(data.get("octnet", {}).get("selections", [])))
    data["claims"] = claims(data) + svr_claims(data) + octnet_claims(data)
    data["goals"] = goal_records(data)
    body = report(profile, data)
    notes = ("Octree bytes = packed split bits (ceil(73/32) int32 words per depth-3 tree) + prefix_leafs (one int32 per "
             "tree) + one float32 per leaf; dense = one float32 per voxel. Peak memory: CUDA allocator peak, or the CPU "
             "resident-set peak above the start (course_lib.experiments.point_sets.peak_memory).")
    if real is not None:
        data["dataset"] = real
        notes = (f"Dataset: {real} (real meshes; part ae on its grids, compression's mesh rows on its meshes; the "
                 "other rows on ShapeNet-lite's demo shapes).\n\n" + notes)
    path = write_result(name, profile, body, notes=notes, data=data)
    print(body)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
