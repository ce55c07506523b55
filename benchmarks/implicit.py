"""Chapter 07 (implicit fields): OccNet point cloud -> surface, DeepSDF latent optimisation, sampling, MISE.

Run from the repository root (each part in its own process if you like; ``--report`` assembles
the result file from the parts' JSON fragments, and a run without ``--part`` does everything):

    COURSE_PROFILE=laptop python benchmarks/implicit.py --part occnet
    COURSE_PROFILE=laptop python benchmarks/implicit.py --part deepsdf
    COURSE_PROFILE=laptop python benchmarks/implicit.py --part sampling
    COURSE_PROFILE=laptop python benchmarks/implicit.py --part mise     # uses the occnet part's model
    COURSE_PROFILE=laptop python benchmarks/implicit.py --part imnet    # optional: the IM-NET decoder
    COURSE_PROFILE=laptop python benchmarks/implicit.py --report
    COURSE_PROFILE=ci python benchmarks/implicit.py                      # the pipeline only (~1-2 min)

Writes ``benchmarks/results/implicit-<profile>-<machine>.md`` and ``implicit-<profile>.json`` that
``lectures/07_implicit_fields.ipynb`` reads.  Models are checkpointed under
``config.cache_dir()/checkpoints`` (the lecture loads the same files).

* **occnet**: an Occupancy Network (PointNet encoder, conditional-BN decoder, BCE) trained on the
  ``ch07.categories`` train shapes (``ch07.occnet_train_per_category`` per category, ``ch07.occnet_sampling``
  samples: near the surface), then point cloud (``ch07.n_input`` points, noise
  0.005) -> mesh (hierarchical marching cubes) on held-out test shapes: IoU, Chamfer-L1 (OccNet's
  convention), normal consistency, F-score; the oracle (two samplings of the true surface) beside it.
  Also the training time (goal: IoU >= 0.85 within 5 minutes of training on the laptop).
* **deepsdf**: the auto-decoder on ``ch07.sdf_categories`` (DeepSDF sampling, 47/50 near the
  surface), unseen test shapes reconstructed by latent optimisation; Chamfer in DeepSDF's convention
  against the oracle (goal: within 3x).
* **sampling**: the same OccNet trained with uniform, mixed and near-surface samples on
  ``ch07.sampling_categories``; IoU, Chamfer-L1 and the thin parts' completeness / recall.
* **occnet_constant**: the same model and data with OccNet's constant learning rate instead of the
  course's cosine decay (the departure measured).
* **occnet_queries**: the same model and data with OccNet's 2,048 occupancy samples per shape and step
  (``ch07.paper_query_epochs`` epochs, about the same training time) instead of the laptop profile's
  256 with more steps (the departure measured).
* **occnet_shapes**: the same model on the smaller training set of DeepSDF and the sampling study
  (``ch07.train_per_category`` shapes per category, ``ch07.small_set_epochs`` epochs: as many steps).
* **mise**: hierarchical (33 -> 129 nodes, i.e. 32 -> 128 cells as OccNet's MISE; 17 -> 65 in ci) against dense
  extraction of a trained OccNet field and of exact SDFs: evaluations and Chamfer between the meshes
  (goal: the same mesh, Chamfer <= 1e-6, with at most 1/5 of the dense evaluations).

Cost (laptop profile, 2 idle cores): each part's wall time is in the result file (``_seconds``);
the committed laptop run's total is in the result file (four OccNet trainings, DeepSDF, three
sampling trainings, MISE).
``COURSE_PROFILE=ci`` runs everything in ~1-3 min.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import md_table, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib.data import make_shape  # noqa: E402
from course_lib.experiments import implicit as E  # noqa: E402
from course_lib.experiments.common import summarize  # noqa: E402
from course_lib.models.implicit import field_of  # noqa: E402

PARTS = ("occnet", "occnet_constant", "occnet_queries", "occnet_shapes", "deepsdf", "sampling", "mise")
OPTIONAL_PARTS = ("imnet",)  # run only when asked for with --part


def _frag(profile: str, part: str) -> Path:
    return config.cache_dir() / "ch07" / f"bench-v1-{profile}-{part}.json"


def _save(profile: str, part: str, data: dict) -> None:
    p = _frag(profile, part)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=1))


def _summary(metrics: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    row = summarize({"m": metrics})[0]
    return {k: list(v) for k, v in row.items() if k != "model"}


def part_imnet(profile: str) -> dict:
    return part_occnet(profile, decoder="imnet")


def part_occnet_constant(profile: str) -> dict:
    """The same Occupancy Network with OccNet's constant learning rate (the course decays it)."""
    return part_occnet(profile, schedule="constant")


def part_occnet_shapes(profile: str) -> dict:
    """The same Occupancy Network on the smaller training set of DeepSDF and the sampling study
    (``ch07.train_per_category`` shapes per category) for as many steps (``ch07.small_set_epochs``)."""
    s = config.sizes(profile, prefix="ch07.")
    return part_occnet(profile, per_category=int(s["train_per_category"]), epochs=int(s["small_set_epochs"]))


def part_occnet_queries(profile: str) -> dict:
    """The same Occupancy Network with OccNet's 2,048 queries per shape and step, at about the same
    training time (``ch07.paper_query_epochs`` epochs; the course's laptop profile takes fewer queries)."""
    s = config.sizes(profile, prefix="ch07.")
    return part_occnet(profile, n_query=2048, epochs=int(s["paper_query_epochs"]))


def part_occnet(profile: str, decoder: str = "occnet", schedule: str | None = None, n_query: int | None = None,
                epochs: int | None = None, per_category: int | None = None) -> dict:
    s = config.sizes(profile, prefix="ch07.")
    train = E.occnet_train_data(profile, per_category=per_category)
    test = E.implicit_data("test", profile=profile)
    model, hist = E.train_occnet(train, decoder=decoder, profile=profile, progress=True, schedule=schedule,
                                 n_query=n_query, epochs=epochs)
    train_s = float(hist.wall_time)  # the training run's own time (also when loaded from its checkpoint)
    codes = E.encode(model, E.held_out_inputs(test, profile))
    t0 = time.perf_counter()
    res = E.evaluate_fields(model, codes, test, profile=profile)
    eval_s = time.perf_counter() - t0
    oracle = E.oracle_chamfer(test, "occnet")
    per_cat = {}
    for c in test["categories"]:
        sel = torch.tensor([x == c for x in test["category"]])
        per_cat[c] = {k: float(v[sel].mean()) for k, v in res["metrics"].items() if v.shape[0] == sel.shape[0]}
    return {"metrics": _summary(res["metrics"]), "per_category": per_cat,
            "oracle_cd_l1": [float(oracle.mean()), float(oracle.std() / max(1, len(oracle)) ** 0.5)],
            "train_seconds": train_s, "train_summary": hist.summary(), "eval_seconds": eval_s,
            "empty": res["empty"], "mean_evaluations_per_mesh": res["evaluations"],
            "shapes": {"train": int(train["query"].shape[0]), "test": int(test["query"].shape[0])},
            "categories": list(test["categories"]),
            "schedule": schedule or s["lr_schedule"], "n_query": int(n_query or s["n_query"]),
            "epochs": int(epochs or s["epochs"]), "train_per_category": int(train["query"].shape[0])
            // len(train["categories"]), "sampling": train.get("sampling")}


def part_deepsdf(profile: str) -> dict:
    s = config.sizes(profile, prefix="ch07.")
    cats = tuple(s["sdf_categories"])
    # the training shapes are scored too (with their learnt codes): as many target points as the test shapes
    train = E.implicit_data("train", kind="sdf", sampling="deepsdf", categories=cats, profile=profile,
                            n_target=int(s["n_eval_points"]))
    test = E.implicit_data("test", kind="sdf", sampling="deepsdf", categories=cats, profile=profile)
    model, hist = E.train_deepsdf(train, profile=profile, progress=True)
    t0 = time.perf_counter()
    codes = E.reconstruct_unseen(model, test, profile=profile, progress=True)
    recon_s = time.perf_counter() - t0
    res = E.evaluate_fields(model, codes, test, profile=profile, deepsdf=True)
    k = int(test["query"].shape[0])  # as many training shapes as test shapes, with their learnt codes
    head = {key: (val[:k] if isinstance(val, (torch.Tensor, list)) else val) for key, val in train.items()}
    train_res = E.evaluate_fields(model, model.codes.weight.detach()[:k], head, profile=profile, deepsdf=True)
    oracle = E.oracle_chamfer(test, "deepsdf")
    cd = res["metrics"]["cd_deepsdf"]
    return {"unseen": _summary(res["metrics"]), "train_codes": _summary(train_res["metrics"]),
            "oracle_cd_deepsdf": [float(oracle.mean()), float(oracle.std() / max(1, len(oracle)) ** 0.5)],
            "ratio_to_oracle": float(cd.mean() / oracle.mean()), "recon_seconds": recon_s,
            "train_summary": hist.summary(), "empty": res["empty"], "categories": list(cats),
            "n_query": int(s["sdf_n_query"]),
            "shapes": {"train": int(train["query"].shape[0]), "test": int(test["query"].shape[0])}}


def part_sampling(profile: str) -> dict:
    out = E.sampling_experiment(profile=profile, progress=True)
    return {smp: _summary(m) for smp, m in out.items()}


def part_mise(profile: str) -> dict:
    s = config.sizes(profile, prefix="ch07.")
    res, coarse = (65, 17) if profile == "ci" else (129, 33)  # 128^3 cells from 32^3, as OccNet's MISE
    out = {}
    for cat in ("chair", "lamp", "airplane"):
        shape = make_shape(cat, 2_000_000)
        out[f"exact SDF, {cat}"] = E.mise_experiment(shape.sdf, res, coarse)
    train = E.occnet_train_data(profile)
    test = E.implicit_data("test", profile=profile, per_category=1)
    model, _ = E.train_occnet(train, profile=profile, progress=False)
    z = E.encode(model, E.held_out_inputs(test, profile))[0]
    out[f"OccNet field, {test['category'][0]}"] = E.mise_experiment(field_of(model, z), res, coarse, level=model.level,
                                                                   inside=model.inside)
    out["_sizes"] = {"resolution": res, "coarse": coarse, "profile_eval_resolution": int(s["eval_resolution"])}
    return out


def _comparison_table(d: dict, other: dict, cols: tuple[tuple[str, str], ...], fmt) -> str:
    """The chapter's model beside one variant: the columns ``cols`` (header, key) that set them apart, then
    IoU at both thresholds, Chamfer-L1 and the training time."""
    return md_table([h for h, _ in cols] + ["IoU (p > 0.5)", "IoU (p > 0.2)", "Chamfer-L1", "train s"],
                    [[x.get(k, "?") for _, k in cols] + [fmt(x["metrics"]["iou"]), fmt(x["metrics"]["iou_t02"]),
                                                         fmt(x["metrics"]["cd_l1"]), f"{x['train_seconds']:.0f}"]
                     for x in (d, other)])


def report(profile: str) -> Path:
    data = {}
    for part in PARTS + OPTIONAL_PARTS:
        p = _frag(profile, part)
        if p.exists():
            data[part] = json.loads(p.read_text())
    body = []
    fmt = lambda ms: f"{ms[0]:.3f} ± {ms[1]:.2g}"  # noqa: E731
    for part, title in (("occnet", "Occupancy Network"), ("imnet", "IM-NET decoder (same encoder and data)")):
        if part not in data:
            continue
        d = data[part]
        m = d["metrics"]
        body += [f"## {title}: point cloud -> surface on held-out shapes", "",
                 f"categories {', '.join(d['categories'])}; {d['shapes']['train']} train / {d['shapes']['test']} "
                 f"test shapes; {d.get('sampling', '?')} training samples; training: {d['train_summary']}", "",
                 md_table(["IoU (p > 0.5)", "IoU (p > 0.2, OccNet's threshold)", "Chamfer-L1", "normal consistency",
                           "F-score", "oracle Chamfer-L1"],
                          [[fmt(m["iou"]), fmt(m["iou_t02"]) if "iou_t02" in m else "-", fmt(m["cd_l1"]),
                            fmt(m["nc"]), fmt(m["fscore"]), fmt(d["oracle_cd_l1"])]]), "",
                 md_table(["category", "IoU", "Chamfer-L1", "NC", "F-score"],
                          [[c, v["iou"], v["cd_l1"], v["nc"], v["fscore"]] for c, v in d["per_category"].items()]),
                 "", f"goal (OccNet): IoU >= {E.OCCNET_GOAL['iou']} with <= {E.OCCNET_GOAL['train_seconds']:.0f} s "
                 f"of training; here IoU {m['iou'][0]:.3f} "
                 + (f"(p > 0.2: {m['iou_t02'][0]:.3f}) " if "iou_t02" in m else "")
                 + f"after {d['train_seconds']:.0f} s of training: {'met' if E.occnet_goal_met(d) else 'not met'}",
                 ""]
        for other, title, cols in (
                ("occnet_constant", "Learning-rate schedule (OccNet keeps a constant rate; the course decays it, cosine "
                 "to 1/100):", (("schedule", "schedule"),)),
                ("occnet_queries", "Occupancy samples per shape and step (OccNet 2,048; the course's laptop profile "
                 "fewer, with more steps in about the same time):", (("queries per shape", "n_query"),
                                                                     ("epochs", "epochs"))),
                ("occnet_shapes", "Training shapes (procedural shapes are free: the course trains OccNet on more shapes "
                 "for fewer epochs; the smaller set is DeepSDF's and the sampling study's, at the same number of "
                 "steps):", (("shapes per category", "train_per_category"), ("epochs", "epochs")))):
            if part == "occnet" and other in data:
                body += [title, "", _comparison_table(d, data[other], cols, fmt), ""]
    if "deepsdf" in data:
        d = data["deepsdf"]
        body += ["## DeepSDF: unseen shapes by latent optimisation", "",
                 f"categories {', '.join(d['categories'])}; {d.get('n_query', '?')} SDF samples per shape and step; "
                 f"training: {d['train_summary']}; reconstruction of "
                 f"{d['shapes']['test']} shapes in {d['recon_seconds']:.1f} s", "",
                 md_table(["codes", "Chamfer (DeepSDF, x1e3)", "IoU", "Chamfer-L1", "NC"],
                          [["unseen (optimised)", fmt(d["unseen"]["cd_deepsdf"]), fmt(d["unseen"]["iou"]),
                            fmt(d["unseen"]["cd_l1"]), fmt(d["unseen"]["nc"])],
                           ["training shapes (learnt)", fmt(d["train_codes"]["cd_deepsdf"]),
                            fmt(d["train_codes"]["iou"]), fmt(d["train_codes"]["cd_l1"]),
                            fmt(d["train_codes"]["nc"])],
                           ["oracle", fmt(d["oracle_cd_deepsdf"]), "", "", ""]]), "",
                 f"unseen / oracle = {d['ratio_to_oracle']:.2f} (goal: <= 3)", ""]
    if "sampling" in data:
        d = data["sampling"]
        body += ["## Sampling: uniform vs mixed vs near-surface, thin parts", "",
                 md_table(["sampling", "IoU", "Chamfer-L1", "thin-part completeness", "thin-part recall"],
                          [[k, fmt(v["iou"]), fmt(v["cd_l1"]), fmt(v["thin_cd"]), fmt(v["thin_recall"])]
                           for k, v in d.items() if not k.startswith("_")]), ""]
    if "mise" in data:
        d = {k: v for k, v in data["mise"].items() if not k.startswith("_")}
        sz = data["mise"].get("_sizes", {})
        body += [f"## Hierarchical extraction (MISE): {sz.get('resolution')}^3 nodes from {sz.get('coarse')}^3", "",
                 md_table(["field", "evaluations", "dense", "fraction", "Chamfer(hier, dense)", "s hier", "s dense"],
                          [[k, int(v["evaluations"]), int(v["dense_evaluations"]), v["fraction"], v["chamfer"],
                            v["seconds_hierarchical"], v["seconds_dense"]] for k, v in d.items()]), "",
                 "goal: the same mesh (Chamfer <= 1e-6, mean squared vertex distance) with a fraction <= 0.2", ""]
    notes = "\n".join(f"- {k}: {v}" for k, v in E.CONVENTIONS.items())
    return write_result("implicit", profile, "\n".join(body), notes=notes, data=data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=PARTS + OPTIONAL_PARTS, action="append",
                    help="run only these parts (repeatable; imnet runs only when named)")
    ap.add_argument("--report", action="store_true", help="only assemble the result file from the fragments")
    args = ap.parse_args()
    profile = config.get_profile()
    if not args.report:
        for part in args.part or PARTS:
            t0 = time.perf_counter()
            out = globals()[f"part_{part}"](profile)
            out["_seconds"] = time.perf_counter() - t0
            _save(profile, part, out)
            print(f"{part}: {out['_seconds']:.1f} s")
    print(report(profile))


if __name__ == "__main__":
    main()
