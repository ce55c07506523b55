"""Chapter 06 (surfaces): AtlasNet vs PointSetGen, mesh quality, 3D-CODED label transfer, Poisson.

Run from the repository root (each part can run in its own process; ``--report`` then
assembles the result file from the parts' JSON fragments; ``--part all`` runs every part, then
the report, in one process):

    COURSE_PROFILE=laptop python benchmarks/surfaces.py --part ae
    COURSE_PROFILE=laptop python benchmarks/surfaces.py --part svr
    COURSE_PROFILE=laptop python benchmarks/surfaces.py --part coded
    COURSE_PROFILE=laptop python benchmarks/surfaces.py --part poisson   # needs the ae part's models
    COURSE_PROFILE=laptop python benchmarks/surfaces.py --report

Writes ``benchmarks/results/surfaces-<profile>-<machine>.md`` and the JSON twin
``benchmarks/results/surfaces-<profile>.json`` (every part's numbers, its choices, claims and
goals) that ``lectures/06_surfaces.ipynb`` reads.  Models are trained (or loaded) by the
chapter's recipes (:func:`course_lib.experiments.surfaces.train_chapter_model`,
``train_chapter_coded``): the lecture and chapter 11 load the same checkpoints.

Protocol 2 (:mod:`course_lib.experiments.protocol`):

* every choice is made on the ``val`` split, in the parts listed in :data:`SELECTION_PARTS`
  (the best epoch of every model; Poisson's grid resolution for each of its three inputs); the
  records go to ``data["selections"]``.  The test split (fresh seeds) is read after, to report;
* every row carries its budget (optimiser steps, examples, training seconds, parameters): the
  rivals of a table train for the same epochs on the same shapes;
* the comparisons the lecture makes are claims paired over the held-out shapes
  (``data["claims"]``: at least 20 shapes each, one trained model per row), printed by the
  lecture with ``results.say("surfaces", id)``; the goals are records (``data["goals"]``).

Evaluation: the encoder sees ``n_input`` points of one sampling of each held-out surface (or a
view), every Chamfer distance is against an independent sampling (``target_points``), the
oracle is a third sampling (a reference, not a floor).

Real datasets (issue #35): ``--dataset modelnet`` or ``--dataset shapenetcore`` (with ``--root DIR``, or
``COURSE_MODELNET_DIR`` / ``COURSE_SHAPENET_DIR``; ``COURSE_DATASET`` works too) runs the parts ae, svr (views
rendered from the meshes with ShapeNet-lite's random cameras) and poisson on that dataset's meshes
(:class:`course_lib.data.real_split.RealShapes`, the profile's categories by name).  Left out, with a note: part
coded, whose label transfer is scored against ShapeNet-lite's part labels (real meshes have none).  Checkpoints
carry the dataset's name (``ch06_<key>-<dataset>-<profile>-<hash>.pt``), so do the fragments, and the results are
``benchmarks/results/surfaces-<dataset>-<profile>-<machine>.md`` / ``surfaces-<dataset>-<profile>.json``:
ShapeNet-lite's files are never overwritten.

Cost (laptop profile, 2 cores, estimated from the runs of protocol 1 plus the validation passes):
ae ~9 min (five models), svr ~7 min, coded ~2 min (four categories, 20 test shapes each),
poisson ~2 min (the grid choice on val included): about 20 min in all, every model retrained
(the checkpoints of protocol 1 had no validation).  ``COURSE_PROFILE=ci`` runs every part in
well under a minute.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import md_table, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.experiments import surfaces as S  # noqa: E402
from course_lib.experiments.common import predict, real_dataset, use_dataset  # noqa: E402
from course_lib.experiments.protocol import budget, claim, goal, selection_part  # noqa: E402
from course_lib.models.atlasnet import AtlasNet  # noqa: E402

SELECTION_PARTS = ("fit_ae_models", "fit_svr_models", "fit_coded_models", "choose_poisson_grids")
"""The parts that make choices (on ``val``): the best epoch of every model, Poisson's grid."""

PARTS = ("ae", "svr", "coded", "poisson")
NO_BUDGET = budget(steps=None, examples=None, seconds=None, params=None, note="no learning")
TRAINING_GOAL_S = 300.0
"""The chapter's goal: each training run <= 5 minutes on 2 cores (laptop profile)."""


def _frag(profile: str, part: str) -> Path:
    # v3: protocol 2 (best epochs on val, the fresh test split, per-shape values for the claims); fragments
    # of earlier runs measured something else and are never mixed in
    real = real_dataset()
    tag = "" if real is None else f"{real}-"  # a real dataset's fragments never mix with ShapeNet-lite's
    return config.cache_dir() / "ch06" / f"bench-v3-{tag}{profile}-{part}.json"


REAL_PARTS = ("ae", "svr", "poisson")
"""The parts that run on a real dataset (coded scores part labels, which only ShapeNet-lite has)."""


def _predict(model, x, n):
    return predict(model, x, **S.output_size(model, n))


def _fitted(key: str, model, hist, n_train: int, batch_size: int) -> dict[str, Any]:
    return {"model": model, "key": key, "selection": S.best_epoch_record(f"best epoch of {key}", hist),
            "budget": S.training_budget(model, hist, n_train, batch_size)}


def _list(t) -> list[float]:
    return [float(v) for v in (t.tolist() if hasattr(t, "tolist") else t)]


# ---------------------------------------------------------------------------------------------
# selection parts: training with the best epoch on val, Poisson's grid on val (no test read)
# ---------------------------------------------------------------------------------------------
@selection_part
def fit_ae_models(profile: str, sz, retrain: bool) -> dict[str, dict[str, Any]]:
    """The auto-encoders (PointNet encoder), each at its best epoch on the val split."""
    splits = S.chapter_splits(profile)
    out = {}
    for name, key in S.AE_MODELS:
        model, hist = S.train_chapter_model(key, profile, splits=splits, retrain=retrain, progress=False,
                                            live_plot=False)
        out[name] = _fitted(key, model, hist, len(splits["train"]["seed"]), int(sz["batch_size"]))
    return out


@selection_part
def fit_svr_models(profile: str, sz, retrain: bool) -> dict[str, dict[str, Any]]:
    """The single-view models (ResNet encoder), each at its best epoch on the val split."""
    splits = S.chapter_splits(profile, image_size=int(sz["image_size"]))
    out = {}
    for name, key in S.SVR_MODELS:
        model, hist = S.train_chapter_model(key, profile, splits=splits, retrain=retrain, progress=False,
                                            live_plot=False)
        out[name] = _fitted(key, model, hist, len(splits["train"]["seed"]), int(sz["batch_size"]))
    return out


@selection_part
def fit_coded_models(profile: str, sz, retrain: bool) -> dict[str, dict[str, Any]]:
    """One 3D-CODED model per category, each at its best epoch on that category's val shapes."""
    out = {}
    for cat in sz["coded_categories"]:
        splits = S.chapter_splits(profile, categories=[cat])
        model, hist = S.train_chapter_coded(cat, profile, splits=splits, retrain=retrain, progress=False,
                                            live_plot=False)
        out[cat] = _fitted(f"coded-{cat}", model, hist, len(splits["train"]["seed"]), int(sz["batch_size"]))
    return out


@selection_part
def choose_poisson_grids(profile: str, sz) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Poisson's grid resolution for each of its inputs, chosen on the val shapes (mesh Chamfer)."""
    from course_lib import train

    splits = S.chapter_splits(profile)
    with train.checkpoints_only():  # the ae part trained it; a missing checkpoint names the part to run
        psg, _ = S.train_chapter_model("ae-psg", profile, splits=splits, progress=False, live_plot=False)
    val = splits["val"]
    pred = _predict(psg, val["points"], int(sz["n_points"]))
    chosen, records = {}, []
    for mode in S.POISSON_INPUTS:
        res, rec = S.select_poisson_resolution(f"Poisson grid, {mode}", val, sz["poisson_resolutions"], mode,
                                               None if mode == "true" else pred)
        chosen[mode] = res
        records.append(rec)
    return chosen, records


# ---------------------------------------------------------------------------------------------
# the parts: choices first, then the test split, read once to report
# ---------------------------------------------------------------------------------------------
def _test(sz, image_size=None) -> dict[str, Any]:
    return S.surface_dataset(sz["categories"], "test", sz["test_per_category"], sz["n_points"], image_size,
                             n_input=sz["n_input"], oracle=True)


def _shapes(test) -> dict[str, Any]:
    return {"category": list(test["category"]), "seed": [int(s) for s in test["seed"].tolist()]}


def part_ae(profile: str, sz, retrain: bool) -> dict:
    fitted = fit_ae_models(profile, sz, retrain)
    test = _test(sz)
    n = int(sz["n_points"])
    x_test, target = test["points"], test["target_points"]
    out = {"shapes": _shapes(test), "oracle": _list(S.chamfer_per_shape(test["oracle_points"], target)),
           "selections": [f["selection"] for f in fitted.values()], "rows": []}
    for name, f in fitted.items():
        model = f["model"]
        row = {"name": name, "key": f["key"], "budget": f["budget"],
               "cd": _list(S.chamfer_per_shape(_predict(model, x_test, n), target))}
        if isinstance(model, AtlasNet):
            torch.manual_seed(0)
            pred_random = predict(model, x_test, n_points=n, mode="random")  # i.i.d. template samples, like the oracle
            row["cd_random_template"] = _list(S.chamfer_per_shape(pred_random, target))
            with torch.no_grad():
                z = model.encode(x_test)
            res = sz["sphere_subdivisions"] if f["key"] == "ae-sphere1" else sz["mesh_resolution"]
            meshes = model.decode_mesh(z, res)
            row.update(mesh_res=res, quality=S.mesh_quality_summary(meshes),
                       mesh_cd=_list(S.mesh_chamfer_per_shape(meshes, target)),
                       watertight=[float(m.is_watertight) for m in meshes])
        out["rows"].append(row)
        print(name, f"CD {np.mean(row['cd']):.3f}", f["budget"], flush=True)
    out["retrieval"] = retrieval_rows(S.chapter_splits(profile)["train"], test, "AtlasNet 25 patches",
                                      fitted["AtlasNet 25 patches"], int(sz["n_input"]), "points")
    return out


RETRIEVAL_NAMES = {"oracle": "nearest training shape (oracle: by Chamfer to the test target)",
                   "latent": "nearest training shape (by the latent code of {encoder})"}


def retrieval_rows(train, test, name: str, encoder: dict[str, Any], n_input: int | None,
                   input_key: str) -> dict[str, Any]:
    """The retrieval baseline's rows (Tatarchenko et al. 2019): a training shape as the reconstruction, chosen
    by an oracle that sees the target, and by the code of ``encoder``'s model (its budget: that model's)."""
    clouds = S.retrieval_clouds(train, test, encoder["model"], n_input, input_key)
    return {"rows": [{"name": RETRIEVAL_NAMES[k].format(encoder=name), "by": k,
                      "budget": NO_BUDGET if k == "oracle" else dict(encoder["budget"], note=f"{name}'s encoder"),
                      "cd": _list(S.chamfer_per_shape(c, test["target_points"]))} for k, c in clouds.items()],
            "training_shapes": len(train["seed"])}


def part_svr(profile: str, sz, retrain: bool) -> dict:
    fitted = fit_svr_models(profile, sz, retrain)
    size = int(sz["image_size"])
    test = _test(sz, size)
    n = int(sz["n_points"])
    out = {"shapes": _shapes(test), "image_size": size,
           "oracle": _list(S.chamfer_per_shape(test["oracle_points"], test["target_points"])),
           "selections": [f["selection"] for f in fitted.values()], "rows": []}
    for name, f in fitted.items():
        pred = _predict(f["model"], test["rgb"], n)
        out["rows"].append({"name": name, "key": f["key"], "budget": f["budget"],
                            "cd": _list(S.chamfer_per_shape(pred, test["target_points"]))})
        print(name, f"CD {np.mean(out['rows'][-1]['cd']):.3f}", flush=True)
    out["retrieval"] = retrieval_rows(S.chapter_splits(profile, image_size=size)["train"], test,
                                      "AtlasNet 25 patches (ResNet)", fitted["AtlasNet 25 patches (ResNet)"], None, "rgb")
    return out


def part_coded(profile: str, sz, retrain: bool) -> dict:
    from course_lib.ops import chamfer_distance

    fitted = fit_coded_models(profile, sz, retrain)
    n_in = int(sz["n_input"])
    out = {"selections": [f["selection"] for f in fitted.values()], "rows": []}
    for cat, f in fitted.items():
        test = S.surface_dataset([cat], "test", sz["coded_test_per_category"], sz["n_points"], n_input=n_in)
        r0 = S.label_transfer(f["model"], test, refine_steps=0, n_input=n_in)
        r1 = S.label_transfer(f["model"], test, refine_steps=sz["refine_steps"], n_input=n_in)
        cd = 1000 * chamfer_distance(r1["deformed"], test["target_points"], reduction="none")
        row = {"category": cat, "shapes": _shapes(test), "budget": f["budget"],
               "baseline": _list(r0["per_shape_baseline"]), "accuracy": _list(r0["per_shape"]),
               "accuracy_refined": _list(r1["per_shape"]), "refine_steps": int(sz["refine_steps"]), "cd": _list(cd),
               "template_vertices": int(f["model"].template_vertices.shape[0])}
        out["rows"].append(row)
        print(cat, {k: round(float(np.mean(row[k])), 4) for k in ("baseline", "accuracy", "accuracy_refined")},
              flush=True)
    return out


def part_poisson(profile: str, sz) -> dict:
    from course_lib import train

    grids, records = choose_poisson_grids(profile, sz)
    test = _test(sz)
    n = int(sz["n_points"])
    with train.checkpoints_only():
        splits = S.chapter_splits(profile)
        models = {key: S.train_chapter_model(key, profile, splits=splits, progress=False, live_plot=False)
                  for key in ("ae-psg", "ae-square25", "ae-sphere1")}
    budgets = {k: S.training_budget(m, h, len(splits["train"]["seed"]), int(sz["batch_size"]))
               for k, (m, h) in models.items()}
    pred = _predict(models["ae-psg"][0], test["points"], n)
    rows = []
    for mode, name in S.POISSON_INPUTS.items():
        built = S.poisson_meshes(test, grids[mode], mode, None if mode == "true" else pred)
        meshes = [m for m, _ in built]
        bud = NO_BUDGET if mode == "true" else dict(budgets["ae-psg"], note="PointSetGen's training; Poisson "
                                                    "fits each shape, no training")
        rows.append({"name": name, "input": mode, "resolution": grids[mode], "budget": bud,
                     "cd": _list(S.mesh_chamfer_per_shape(meshes, test["target_points"])),
                     "watertight": [float(m.is_watertight) for m in meshes], "faces": [len(m.faces) for m in meshes],
                     "seconds": [s for _, s in built]})
    for key, name, res in (("ae-square25", "AtlasNet 25 patches, direct mesh", sz["mesh_resolution"]),
                           ("ae-sphere1", "AtlasNet sphere, direct mesh", sz["sphere_subdivisions"])):
        model = models[key][0]
        meshes, secs = [], []
        for i in range(len(test["points"])):
            t0 = time.perf_counter()
            with torch.no_grad():
                meshes.append(model.mesh(test["points"][i:i + 1], res)[0])
            secs.append(time.perf_counter() - t0)
        rows.append({"name": name, "input": key, "resolution": res, "budget": budgets[key],
                     "cd": _list(S.mesh_chamfer_per_shape(meshes, test["target_points"])),
                     "watertight": [float(m.is_watertight) for m in meshes], "faces": [len(m.faces) for m in meshes],
                     "seconds": secs})
    return {"shapes": _shapes(test), "grids": grids, "selections": records, "rows": rows}


# ---------------------------------------------------------------------------------------------
# claims and goals, from the parts' per-shape values
# ---------------------------------------------------------------------------------------------
def _by_name(rows) -> dict[str, dict]:
    return {r["name"]: r for r in rows}


def _cd_claim(id, text, rows, a, b, key="cd"):
    return claim(id, text, a=a, b=b, metric="CD x1e3" if key != "mesh_cd" else "mesh CD x1e3",
                 values_a=rows[a][key], values_b=rows[b][key], higher_is_better=False, unit="shapes",
                 budget={a: rows[a]["budget"], b: rows[b]["budget"]})


def build_claims(parts: dict[str, dict]) -> list[dict[str, Any]]:
    """Every comparison the lecture makes, as a claim paired over the held-out shapes."""
    out = []
    if "ae" in parts:
        rows = _by_name(parts["ae"]["rows"])
        for id, a, b in (("ae-25-vs-sphere", "AtlasNet 25 patches", "AtlasNet sphere"),
                         ("ae-25-vs-1", "AtlasNet 25 patches", "AtlasNet 1 patch"),
                         ("ae-25-vs-5", "AtlasNet 25 patches", "AtlasNet 5 patches"),
                         ("ae-1-vs-sphere", "AtlasNet 1 patch", "AtlasNet sphere"),
                         ("ae-25-vs-psg", "AtlasNet 25 patches", "PointSetGen"),
                         ("ae-sphere-vs-psg", "AtlasNet sphere", "PointSetGen")):
            out.append(_cd_claim(id, f"{a} reconstructs held-out shapes closer than {b} (CD)", rows, a, b))
        a = "AtlasNet 25 patches"
        out.append(claim("ae-lattice-vs-random", f"{a} scores a lower CD on its evenly spread template lattice than "
                         "on i.i.d. template samples", a=f"{a}, lattice", b=f"{a}, i.i.d. template",
                         metric="CD x1e3", values_a=rows[a]["cd"], values_b=rows[a]["cd_random_template"],
                         higher_is_better=False, unit="shapes",
                         budget={f"{a}, lattice": rows[a]["budget"], f"{a}, i.i.d. template": rows[a]["budget"]}))
        out.append(claim("ae-random-vs-oracle", f"{a}, on i.i.d. template samples, is closer to the target than the "
                         "oracle (CD)", a=a, b="oracle", metric="CD x1e3", values_a=rows[a]["cd_random_template"],
                         values_b=parts["ae"]["oracle"], higher_is_better=False, unit="shapes",
                         budget={a: rows[a]["budget"], "oracle": NO_BUDGET}))
        for r in parts["ae"].get("retrieval", {}).get("rows", []):
            out.append(claim(f"ae-25-vs-retrieval-{r['by']}", f"{a} reconstructs closer than the {r['name']} (CD)",
                             a=a, b=r["name"], metric="CD x1e3", values_a=rows[a]["cd"], values_b=r["cd"],
                             higher_is_better=False, unit="shapes", budget={a: rows[a]["budget"], r["name"]: r["budget"]}))
        out.append(_cd_claim("mesh-25-vs-sphere", "AtlasNet 25 patches' direct mesh is closer to the target than the "
                             "sphere's (mesh CD)", rows, "AtlasNet 25 patches", "AtlasNet sphere", key="mesh_cd"))
    if "svr" in parts:
        rows = _by_name(parts["svr"]["rows"])
        for id, a, b in (("svr-25-vs-psg", "AtlasNet 25 patches (ResNet)", "PointSetGen (ResNet)"),
                         ("svr-25-vs-sphere", "AtlasNet 25 patches (ResNet)", "AtlasNet sphere (ResNet)")):
            out.append(_cd_claim(id, f"from one view, {a} reconstructs closer than {b} (CD)", rows, a, b))
        a = "AtlasNet 25 patches (ResNet)"
        for r in parts["svr"].get("retrieval", {}).get("rows", []):
            out.append(claim(f"svr-25-vs-retrieval-{r['by']}", f"from one view, {a} reconstructs closer than the "
                             f"{r['name']} (CD)", a=a, b=r["name"], metric="CD x1e3", values_a=rows[a]["cd"],
                             values_b=r["cd"], higher_is_better=False, unit="shapes",
                             budget={a: rows[a]["budget"], r["name"]: r["budget"]}))
    if "coded" in parts:
        pooled = {"accuracy": [], "baseline": [], "accuracy_refined": []}
        for r in parts["coded"]["rows"]:
            c = r["category"]
            bud = {"3D-CODED": r["budget"], "undeformed template": NO_BUDGET}
            out.append(claim(f"coded-{c}", f"3D-CODED carries part labels onto held-out {c} shapes more accurately "
                             "than the undeformed template", a="3D-CODED", b="undeformed template",
                             metric="label accuracy", values_a=r["accuracy"], values_b=r["baseline"],
                             higher_is_better=True, unit="shapes", budget=bud))
            refined = {"3D-CODED refined": dict(r["budget"], refine_steps=r["refine_steps"]), "3D-CODED": r["budget"]}
            out.append(claim(f"refine-{c}", f"the test-time latent refinement raises 3D-CODED's label accuracy on {c}",
                             a="3D-CODED refined", b="3D-CODED", metric="label accuracy",
                             values_a=r["accuracy_refined"], values_b=r["accuracy"], higher_is_better=True,
                             unit="shapes", budget=refined))
            for k in pooled:
                pooled[k] += r[k]
        out.append(claim("coded-all", "3D-CODED carries part labels more accurately than the undeformed template, "
                         "pooled over its categories", a="3D-CODED", b="undeformed template", metric="label accuracy",
                         values_a=pooled["accuracy"], values_b=pooled["baseline"], higher_is_better=True,
                         unit="shapes", budget={"3D-CODED": budget(steps=None, examples=None, seconds=None, params=None,
                                                                   note="one model per category: see coded-<category>"),
                                                "undeformed template": NO_BUDGET}))
    if "poisson" in parts:
        rows = _by_name(parts["poisson"]["rows"])
        P, A = S.POISSON_INPUTS, "AtlasNet 25 patches, direct mesh"
        for id, a, b, text in (
                ("poisson-psg-vs-atlas", P["pca"], A, "Poisson on PointSetGen's points gives a mesh closer to the "
                 "target than AtlasNet's direct mesh (mesh CD)"),
                ("poisson-true-vs-atlas", P["true"], A, "Poisson on the input's true points and normals gives a mesh "
                 "closer to the target than AtlasNet's direct mesh (mesh CD)"),
                ("poisson-oracle-vs-pca", P["oracle"], P["pca"], "orienting PointSetGen's PCA normals by the true "
                 "normals gives a closer Poisson mesh than orienting them away from the centroid (mesh CD)"),
                ("poisson-true-vs-psg", P["true"], P["pca"], "Poisson on the input's true points and normals gives a "
                 "closer mesh than Poisson on PointSetGen's points (mesh CD)")):
            out.append(claim(id, text, a=a, b=b, metric="mesh CD x1e3", values_a=rows[a]["cd"],
                             values_b=rows[b]["cd"], higher_is_better=False, unit="shapes",
                             budget={a: rows[a]["budget"], b: rows[b]["budget"]}))
    return out


def build_goals(parts: dict[str, dict]) -> list[dict[str, Any]]:
    out = []
    budgets = [r["budget"] for p in ("ae", "svr", "coded") if p in parts for r in parts[p]["rows"]]
    if budgets:
        longest = max(float(b["seconds"]) for b in budgets)
        out.append(goal("training-time", "each chapter-06 training run within 5 minutes (the longest run's wall "
                        "seconds; 2 cores in the laptop profile)", round(longest, 1), TRAINING_GOAL_S, comparison="<="))
    if "ae" in parts:
        sphere = _by_name(parts["ae"]["rows"])["AtlasNet sphere"]
        out.append(goal("sphere-closed", "every AtlasNet sphere mesh of the held-out shapes is closed (watertight "
                        "fraction; combinatorially closed, not necessarily embedded)",
                        float(np.mean(sphere["watertight"])), 1.0, comparison="=="))
    return out


# ---------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------
def _mean(v) -> float:
    return float(np.mean(v))


def _per_category(values, shapes, cats) -> list[float]:
    v = np.asarray(values, dtype=float)
    return [float(v[[i for i, c in enumerate(shapes["category"]) if c == cat]].mean()) for cat in cats]


def _bud_cells(b) -> list:
    def f(x, digits=1):
        return "-" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else x)
    return [f(b.get("steps")), f(b.get("examples")), f(b.get("seconds")), f(b.get("params")), b.get("best_epoch", "-")]


BUDGET_HEADERS = ["steps", "examples", "train s", "params", "best epoch (val)"]


def _retrieval_table(part: dict, cats) -> list[str]:
    ret = part.get("retrieval") or {}
    if not ret.get("rows"):
        return []
    return [f"Retrieval baseline: the nearest of the {ret['training_shapes']} training shapes (its target_points) as "
            "the reconstruction (course_lib.experiments.retrieval; Tatarchenko et al. 2019).", "",
            md_table(["retrieval", "CD x1e3", *cats, *BUDGET_HEADERS],
                     [[r["name"], _mean(r["cd"]), *_per_category(r["cd"], part["shapes"], cats), *_bud_cells(r["budget"])]
                      for r in ret["rows"]]), ""]


def report(profile: str, sz, extra_note: str = "") -> Path:
    parts = {p: json.loads(_frag(profile, p).read_text()) for p in PARTS if _frag(profile, p).exists()}
    cats = list(sz["categories"])
    real = real_dataset()
    body = [f"Convention: {S.CD_CONVENTION}.", ""]
    if real is not None:
        body += [f"Dataset: {real} (real meshes; views rendered with ShapeNet-lite's cameras). Not run on it: part "
                 "coded (3D-CODED's label transfer is scored against ShapeNet-lite's part labels).", ""]
    body += [f"Data: {'ShapeNet-lite' if real is None else real} categories {', '.join(cats)}; {sz['train_per_category']} training, "
            f"{sz['val_per_category']} validation and {sz['test_per_category']} held-out test shapes per category "
            "(the course's split scheme, `course_lib.data.split_seeds`: the test split is the fresh one of protocol 2, "
            "read only after every choice was made on val); every model outputs "
            f"{sz['n_points']} points; the encoder sees {sz['n_input']} points of one sampling of the surface "
            "(auto-encoding) or "
            f"one {sz['image_size']}x{sz['image_size']} rendered RGB view from a seeded random camera (single view); "
            "every Chamfer distance is against an independent sampling of the surface (target_points). Small CPU models "
            f"(latent {sz['latent_dim']}, patch MLP {sz['hidden']}), {sz['epochs']} epochs each, Adam 1e-3, the epoch "
            "kept chosen on the val split. Budgets: optimiser steps, training examples seen, wall seconds of the "
            "training loop (as recorded in the checkpoint), trainable parameters.", ""]
    if "ae" in parts:
        ae = parts["ae"]
        body += ["## Auto-encoding (PointNet encoder), held-out shapes", ""]
        rows = [["oracle (an independent sampling of the true surface: a reference, not a floor)", _mean(ae["oracle"]),
                 "", *_per_category(ae["oracle"], ae["shapes"], cats), *["-"] * len(BUDGET_HEADERS)]]
        for r in ae["rows"]:
            rnd = _mean(r["cd_random_template"]) if "cd_random_template" in r else ""
            rows.append([r["name"], _mean(r["cd"]), rnd, *_per_category(r["cd"], ae["shapes"], cats),
                         *_bud_cells(r["budget"])])
        body += ["CD x1e3 (mean over the shapes): AtlasNet decodes an evenly spread (Fibonacci) lattice of its "
                 "template; 'random template' decodes i.i.d. template samples instead (the sampling the oracle has).",
                 "", md_table(["model", "CD x1e3", "CD, random template", *cats, *BUDGET_HEADERS], rows), ""]
        body += _retrieval_table(ae, cats)
        body += ["## Mesh quality of AtlasNet's direct meshes (held-out shapes, mean per mesh)", "",
                 "degenerate: area < 1e-10; sliver: smallest angle < 5 deg; intersecting: faces crossing a face that "
                 "shares no vertex with them (segment-triangle tests); pairs within / between: intersecting face pairs "
                 "of the same patch / of two patches; overlap: face centres within 0.02 of a face centre of another "
                 "patch; mesh CD: CD of area-weighted samples of the mesh. Grid and subdivisions are fixed in the "
                 "config (not chosen).", ""]
        qrows = []
        for r in ae["rows"]:
            if "quality" not in r:
                continue
            q = r["quality"]
            qrows.append([r["name"], r["mesh_res"], int(q["faces"]), q["degenerate_frac"], q["sliver_frac"],
                          q["intersecting_frac"], q.get("intersecting_pairs_within", float("nan")),
                          q.get("intersecting_pairs_between", float("nan")), q.get("overlap_frac", 0.0),
                          _mean(r["watertight"]), q["euler"], _mean(r["mesh_cd"])])
        body += [md_table(["model", "grid / subdiv.", "faces", "degenerate", "sliver", "intersecting",
                           "pairs within", "pairs between", "overlap", "watertight", "Euler", "mesh CD x1e3"],
                          qrows), ""]
    if "svr" in parts:
        sv = parts["svr"]
        body += [f"## Single-view reconstruction (ResNet encoder, {sv['image_size']} px RGB), held-out shapes", ""]
        rows = [["oracle", _mean(sv["oracle"]), *_per_category(sv["oracle"], sv["shapes"], cats),
                 *["-"] * len(BUDGET_HEADERS)]]
        rows += [[r["name"], _mean(r["cd"]), *_per_category(r["cd"], sv["shapes"], cats), *_bud_cells(r["budget"])]
                 for r in sv["rows"]]
        body += [md_table(["model", "CD x1e3", *cats, *BUDGET_HEADERS], rows), ""]
        body += _retrieval_table(sv, cats)
    if "coded" in parts:
        body += ["## 3D-CODED: part labels carried from the template (reserved seed, outside every split) to "
                 f"held-out shapes ({sz['coded_test_per_category']} per category)", "",
                 "accuracy = fraction of a shape's surface points whose transferred part name equals the "
                 "generator's (Shape.part_labels), averaged over the held-out shapes; baseline = nearest vertex "
                 "of the *undeformed* template (no learning); refined = after the test-time latent optimisation.",
                 ""]
        rows = [[r["category"], r["template_vertices"], _mean(r["baseline"]), _mean(r["accuracy"]),
                 _mean(r["accuracy_refined"]), r["refine_steps"], _mean(r["cd"]), *_bud_cells(r["budget"])]
                for r in parts["coded"]["rows"]]
        body += [md_table(["category", "template verts", "baseline acc", "3D-CODED acc", "refined acc",
                           "refine steps", "CD x1e3 (refined)", *BUDGET_HEADERS], rows), ""]
    if "poisson" in parts:
        p = parts["poisson"]
        body += ["## Poisson reconstruction of PointSetGen's points vs AtlasNet's direct mesh", "",
                 "mesh CD: CD between area-weighted samples of the mesh and the true points; seconds per shape "
                 "include normal estimation; each Poisson input's grid was chosen on the val shapes "
                 f"(candidates {list(sz['poisson_resolutions'])}).", ""]
        rows = [[r["name"], r["resolution"], _mean(r["cd"]), _mean(r["watertight"]), int(_mean(r["faces"])),
                 _mean(r["seconds"])] for r in p["rows"]]
        body += [md_table(["surface", "grid / subdiv.", "mesh CD x1e3", "watertight", "faces", "s / shape"], rows), ""]
    selections = [s for p in parts.values() for s in p.get("selections", [])]
    claims, goals = build_claims(parts), build_goals(parts)
    if selections:
        body += ["## Choices made on the val split (protocol 2)", "",
                 md_table(["choice", "metric", "chosen", "candidates"],
                          [[s["id"], s["metric"], s["chosen"], len(s["candidates"])] for s in selections]), ""]
    if claims:
        from course_lib.experiments.protocol import claim_sentence

        body += ["## Claims (paired over the held-out shapes; 'ahead' / 'behind' beyond two standard errors)", ""]
        body += [f"- `{c['id']}`: {claim_sentence(c)}" for c in claims] + [""]
    if goals:
        from course_lib.experiments.protocol import goal_sentence

        body += ["## Goals", ""] + [f"- `{g['id']}`: {goal_sentence(g)}" for g in goals] + [""]
    note = ("torch ran with the --threads of each part's process; parts may run as separate processes. "
            "'train s' is the wall time of the training loop recorded in the checkpoint (on the machine that trained it).")
    if extra_note:
        note += "\n\n" + extra_note
    data = {"convention": S.CD_CONVENTION, "categories": cats,
            "sizes": {k: sz[k] for k in ("train_per_category", "val_per_category", "test_per_category",
                                         "coded_test_per_category", "n_points", "n_input", "epochs", "latent_dim",
                                         "image_size")},
            **parts, "selections": selections, "claims": claims, "goals": goals}
    if real is not None:
        data["dataset"] = real
    return write_result("surfaces" if real is None else f"surfaces-{real}", profile, "\n".join(body), notes=note,
                        data=data)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="On a real dataset (--dataset modelnet|shapenetcore) the parts ae, svr (views rendered from the meshes) "
               "and poisson run; coded (label transfer against ShapeNet-lite's part labels) is left out. Results: "
               "results/surfaces-<dataset>-<profile>-*.md / .json; checkpoints ch06_*-<dataset>-*.pt.")
    ap.add_argument("--part", choices=(*PARTS, "all"))
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--note", default="", help="a free-text note added to the result file (with --report)")
    ap.add_argument("--dataset", help="shapenet-lite (default), modelnet or shapenetcore (sets COURSE_DATASET)")
    ap.add_argument("--root", help="the real dataset's folder (default: COURSE_MODELNET_DIR / COURSE_SHAPENET_DIR)")
    args = ap.parse_args()
    try:
        real = use_dataset(args.dataset, args.root)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    if real is not None and args.part == "coded":
        raise SystemExit(f"part coded cannot run on {real}: 3D-CODED's label transfer is scored against "
                         "ShapeNet-lite's part labels (real meshes have none)")
    torch.set_num_threads(args.threads)
    profile = config.get_profile()
    sz = config.sizes(prefix="ch06.")
    every = PARTS if real is None else REAL_PARTS
    for part in (every if args.part == "all" else (args.part,) if args.part else ()):
        config.seed_everything(0)
        out = part_poisson(profile, sz) if part == "poisson" else \
            {"ae": part_ae, "svr": part_svr, "coded": part_coded}[part](profile, sz, args.retrain)
        _frag(profile, part).parent.mkdir(parents=True, exist_ok=True)
        _frag(profile, part).write_text(json.dumps(out, indent=1))
    if args.report or not args.part or args.part == "all":
        print(report(profile, sz, args.note))


if __name__ == "__main__":
    main()
