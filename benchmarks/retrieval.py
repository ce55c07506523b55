"""The retrieval baseline beside the models of chapters 05, 07 and 10 (issue #32, item 6).

Run from the repository root, alone on the machine, after the chapters' own benchmarks of the same
profile (it loads their checkpoints and reads their result files; nothing trains):

    COURSE_PROFILE=laptop python benchmarks/retrieval.py                  # chapters 05, 07 and 10 (minutes)
    COURSE_PROFILE=laptop python benchmarks/retrieval.py --chapters 05 07
    COURSE_PROFILE=laptop python benchmarks/retrieval.py --dataset modelnet --root /data/ModelNet10  # after the
        # chapters' benchmarks ran with the same --dataset

Tatarchenko et al. (CVPR 2019) showed that single-view reconstruction networks on ShapeNet score
about as well as *retrieving* the nearest training shape.  Here each chapter's reconstruction table
gets that row, on the chapter's own test shapes and with the chapter's own metrics:

* ``oracle``: the training shape nearest to the test shape's *target* (Chamfer,
  :func:`course_lib.experiments.retrieval.retrieve`): it looks at the answer, an upper bound of
  retrieval, not a method;
* ``latent``: the training shape whose code under the chapter's trained encoder is nearest (L2) to the
  code of the test *input*: the baseline a real system can run.

The training shapes are the ones the chapter's model trained on.  Chapter 05 scores point sets (CD x1e3,
EMD x1e2, F-score; the retrieved shape's independent sampling, ``target_points``), chapter 07 OccNet's
volumetric IoU (:func:`course_lib.experiments.implicit.retrieved_iou`, the same points as the model's
IoU) and Chamfer-L1 (the retrieved shape's 2,048 surface points against the chapter's 20,000 target
points; the oracle retrieval chooses with 1,024 points of each cloud), chapter 10 CD x1e4 and EMD x1e2 (exact).  Each model's per-shape values come from its
chapter's result file and are paired with the retrieval rows shape by shape (the shape lists are
checked); the comparisons are claim records (``data["claims"]``).

Protocol 2: no choice is made here (``SELECTION_PARTS`` is empty); only the test split is read, to
report, with models whose choices were made on ``val`` by their chapters.

Writes ``benchmarks/results/retrieval-<profile>-<machine>.md`` and ``retrieval-<profile>.json`` (read by
lectures 05, 07 and 10 through ``course_lib.results``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import add_dataset_args, md_table, result_name, use_dataset_args, write_result  # noqa: E402

from course_lib import config, results  # noqa: E402
from course_lib.experiments import retrieval as RET  # noqa: E402
from course_lib.experiments.protocol import budget, claim, claim_sentence  # noqa: E402
from course_lib.train import checkpoints_only  # noqa: E402

SELECTION_PARTS: tuple[str, ...] = ()
"""Protocol 2: nothing is chosen here; the models' choices were made on val by their chapters."""
CHAPTERS = ("05", "07", "10")
NO_BUDGET = budget(steps=None, examples=None, seconds=None, params=None, note="no learning")
ORACLE_POINTS = 1024
"""Points per cloud with which the oracle retrieval of chapter 07 chooses among its 1,600 training shapes."""


def _load(name: str, profile: str, real: str | None) -> dict:
    """A chapter's results file on the same dataset, or a message that says which benchmark to run first."""
    r = results.load(result_name(name, real), profile)
    if r is None:
        flag = "" if real is None else f" --dataset {real}"
        raise SystemExit(f"no results/{result_name(name, real)}-{profile}.json: run "
                         f"`COURSE_PROFILE={profile} python benchmarks/{name}.py{flag}` first")
    return r


def _ids(d: dict) -> list[list]:
    return [[str(c), int(s)] for c, s in zip(d["category"], d["seed"].tolist())]


def _list(t) -> list[float]:
    return [float(x) for x in (t.tolist() if isinstance(t, torch.Tensor) else t)]


def _check_shapes(ours: list[list], theirs: list[list] | None, chapter: str) -> None:
    if theirs is not None and [list(x) for x in theirs] != ours:
        raise RuntimeError(f"chapter {chapter}: the test shapes differ from those of its result file "
                           f"({ours[:2]}... against {theirs[:2]}...); re-run its benchmark with this code")


def _row(name: str, by: str, bud: dict, values: dict[str, Any], index) -> dict:
    return {"name": name, "by": by, "budget": bud, "index": [int(i) for i in index],
            **{k: _list(v) for k, v in values.items()}}


# ---------------------------------------------------------------------------
# chapter 05: PointSetGen auto-encoders
# ---------------------------------------------------------------------------
def part_05(profile: str, real: str | None = None) -> dict:
    from course_lib.experiments import point_sets as ps

    res = _load("point_sets", profile, real)["data"]["autoencoding"]
    s = config.sizes(profile, prefix="ch05.")
    n = int(s["n_points"])
    train, val = ps.train_data(profile), ps.val_data(profile)
    with checkpoints_only():
        model, _ = ps.train_autoencoder("chamfer", profile, data=train, val=val, retrain=False, progress=False,
                                        live_plot=False)
    test = ps.test_data(profile)  # read once, to report
    _check_shapes(_ids(test), res.get("shapes"), "05")
    clouds = train["target_points"][:, :n]  # the retrieved shape's independent sampling, n points like a prediction
    codes_train = RET_codes(model, train["points"][:, :n])
    codes_test = RET_codes(model, test["points"])
    gt = test["target_points"]
    rows = []
    for by, r in (("oracle", RET.retrieve(clouds, gt, by="oracle")),
                  ("latent", RET.retrieve(clouds, by="latent", train_codes=codes_train, query_codes=codes_test))):
        m = ps.evaluate_sets(r.clouds, gt)
        bud = NO_BUDGET if by == "oracle" else dict(res["budgets"]["chamfer"], note="the encoder of PointSetGen (Chamfer)")
        rows.append(_row(RET_NAMES[by].format(encoder="PointSetGen (Chamfer loss)"), by, bud,
                         {k: m[k] for k in ("CD x1e3", "EMD x1e2", "F@0.05 %")}, r.index))
    models = {"PointSetGen (Chamfer loss)": ("chamfer", "CD x1e3"), "PointSetGen (EMD loss)": ("emd", "EMD x1e2")}
    claims = []
    for name, (key, metric) in models.items():
        for r in rows:
            claims.append(claim(f"ch05-{key}-vs-retrieval-{r['by']}",
                                f"{name} reconstructs closer than the {r['name']} ({metric})", a=name, b=r["name"],
                                metric=metric, values_a=res["per_shape"][key][metric], values_b=r[metric],
                                higher_is_better=False, unit="shapes",
                                budget={name: res["budgets"][key], r["name"]: r["budget"]}, selected_on="val"))
    return {"chapter": "05", "metrics": ["CD x1e3", "EMD x1e2", "F@0.05 %"], "shapes": _ids(test),
            "training_shapes": len(train["seed"]), "rows": rows, "claims": claims,
            "models": {name: {m: float(np.mean(res["per_shape"][key][m])) for m in ("CD x1e3", "EMD x1e2", "F@0.05 %")}
                       for name, (key, _) in models.items()}}


# ---------------------------------------------------------------------------
# chapter 07: the Occupancy Network
# ---------------------------------------------------------------------------
def part_07(profile: str, real: str | None = None) -> dict:
    from course_lib import metrics
    from course_lib.experiments import implicit as E
    from course_lib.experiments.common import load_split

    res = _load("implicit", profile, real)["data"]["occnet"]
    st = dict(res["setting"])
    with checkpoints_only():
        model, _ = E.train_occnet_setting(st, profile, progress=False)
    s = config.sizes(profile, prefix="ch07.")
    train = load_split("train", ("points",), categories=tuple(res["categories"]),
                       shapes_per_category=int(st["per_category"]), profile=profile)
    test = E.implicit_data("test", profile=profile)  # read once, to report
    if len(test["category"]) != len(res["per_shape"]["iou"]):
        raise RuntimeError(f"chapter 07: {len(test['category'])} test shapes here, "
                           f"{len(res['per_shape']['iou'])} in its result file")
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(train["points"].shape[1], generator=g)[:ORACLE_POINTS]
    pick_t = torch.randperm(test["target_points"].shape[1], generator=g)[:ORACLE_POINTS]
    oracle = RET.retrieve(train["points"][:, pick], test["target_points"][:, pick_t], by="oracle", chunk=64)
    codes_train = E.encode(model, E.held_out_inputs(train, profile))  # the encoder's input, as for a test shape
    codes_test = E.encode(model, E.held_out_inputs(test, profile))
    latent = RET.retrieve(train["points"][:, :1], by="latent", train_codes=codes_train, query_codes=codes_test)
    occnet_cd = metrics.PRESETS["occnet"]
    n_t = int(test["target_points"].shape[1])
    rows = []
    for by, r in (("oracle", oracle), ("latent", latent)):
        iou = E.retrieved_iou(test, train, r.index, n=int(s["n_iou"]))
        cd = torch.stack([occnet_cd.chamfer(train["points"][int(j), :n_t], test["target_points"][i])
                          for i, j in enumerate(r.index.tolist())])
        bud = NO_BUDGET if by == "oracle" else dict(res["budget"], note="the encoder of the Occupancy Network")
        rows.append(_row(RET_NAMES[by].format(encoder="the Occupancy Network"), by, bud,
                         {"iou": iou, "cd_l1": cd}, r.index))
    name = "Occupancy Network"
    claims = []
    for r in rows:
        claims.append(claim(f"ch07-occnet-vs-retrieval-{r['by']}-iou",
                            f"The {name} reconstructs better than the {r['name']} (IoU)", a=name, b=r["name"],
                            metric="IoU", values_a=res["per_shape"]["iou"], values_b=r["iou"], higher_is_better=True,
                            unit="shapes", budget={name: res["budget"], r["name"]: r["budget"]}))
        claims.append(claim(f"ch07-occnet-vs-retrieval-{r['by']}-cd",
                            f"The {name} reconstructs closer than the {r['name']} (Chamfer-L1)", a=name,
                            b=r["name"], metric="Chamfer-L1", values_a=res["per_shape"]["cd_l1"], values_b=r["cd_l1"],
                            higher_is_better=False, unit="shapes",
                            budget={name: res["budget"], r["name"]: r["budget"]}))
    return {"chapter": "07", "metrics": ["iou", "cd_l1"], "shapes": _ids(test), "training_shapes": len(train["seed"]),
            "rows": rows, "claims": claims, "setting": st,
            "models": {name: {"iou": float(np.mean(res["per_shape"]["iou"])),
                              "cd_l1": float(np.mean(res["per_shape"]["cd_l1"]))}}}


# ---------------------------------------------------------------------------
# chapter 10: ShapeGF
# ---------------------------------------------------------------------------
def part_10(profile: str, real: str | None = None) -> dict:
    from course_lib.experiments import gradient_fields as G

    d = _load("gradient_fields", profile, real)["data"]
    choice = d["choice"]
    per = d.get("autoencoding_per_shape")
    train = G.load_data("train", profile=profile)
    with checkpoints_only():
        model, _ = G.train_shapegf(train, profile=profile, live_plot=False, schedule=choice["schedule"],
                                   levels=choice["levels"], hidden=int(choice["hidden"]),
                                   n_blocks=int(choice["n_blocks"]))
    test = G.load_data("test", profile=profile)  # read once, to report
    _check_shapes(_ids(test), d.get("autoencoding_shapes"), "10")
    gt = test["target_points"]
    if per is None:  # a result file written before the per-shape values were stored: sample ShapeGF again
        pred = G.reconstruct(model, test["points"], int(gt.shape[1]), profile=profile)
        per = {"ShapeGF": {k: _list(v) for k, v in G.ae_metrics(pred, gt).items()}}
        print("ShapeGF re-sampled:", {k: round(float(np.mean(v)), 4) for k, v in per["ShapeGF"].items()},
              "(the chapter's file:", {k: v[0] for k, v in d["autoencoding"]["ShapeGF"].items()}, ")", flush=True)
    clouds = train["target_points"]
    rows = []
    for by, r in (("oracle", RET.retrieve(clouds, gt, by="oracle")),
                  ("latent", RET.retrieve(clouds, by="latent", train_codes=RET_codes(model, train["points"]),
                                          query_codes=RET_codes(model, test["points"])))):
        m = G.ae_metrics(r.clouds, gt)
        bud = NO_BUDGET if by == "oracle" else dict(d["budgets"]["ShapeGF"], note="the encoder of ShapeGF")
        rows.append(_row(RET_NAMES[by].format(encoder="ShapeGF"), by, bud, m, r.index))
    claims = []
    for name in ("ShapeGF", "PointSetGen", "AtlasNet sphere", "AtlasNet patches"):
        if name not in per:
            continue
        for r in rows:
            for metric in ("CD x1e4", "EMD x1e2"):
                claims.append(claim(f"ch10-{name.lower().replace(' ', '-')}-vs-retrieval-{r['by']}-"
                                    f"{metric.split()[0].lower()}",
                                    f"{name} reconstructs closer than the {r['name']} ({metric.split()[0]})",
                                    a=name, b=r["name"], metric=metric, values_a=per[name][metric],
                                    values_b=r[metric], higher_is_better=False, unit="shapes",
                                    budget={name: d["budgets"][name], r["name"]: r["budget"]}))
    return {"chapter": "10", "metrics": ["CD x1e4", "EMD x1e2"], "shapes": _ids(test),
            "training_shapes": len(train["seed"]), "rows": rows, "claims": claims,
            "models": {name: {m: float(np.mean(v)) for m, v in per[name].items()} for name in per}}


RET_NAMES = {"oracle": "nearest training shape (oracle: by Chamfer to the test target)",
             "latent": "nearest training shape (by the latent code of {encoder})"}


def RET_codes(model: Any, x: torch.Tensor) -> torch.Tensor:  # noqa: N802 - grouped with RET_NAMES
    from course_lib.experiments.surfaces import encode_all

    return encode_all(model, x)


PARTS = {"05": part_05, "07": part_07, "10": part_10}


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def report(parts: dict[str, dict]) -> str:
    body = ["Retrieval baseline (Tatarchenko et al. 2019): a training shape as the reconstruction, chosen by an "
            "oracle that sees the test target (an upper bound) or by the chapter's encoder (a real baseline). "
            "Mean ± standard error over the chapter's test shapes; the models' rows are their chapters' "
            "(benchmarks/results/<chapter>-<profile>.json).", ""]
    for ch, p in parts.items():
        ms = p["metrics"]
        rows = [[name, *[_fmt(v[m]) for m in ms], "model"] for name, v in p["models"].items()]
        for r in p["rows"]:
            rows.append([r["name"], *[f"{np.mean(r[m]):.4g} ± {np.std(r[m], ddof=1) / len(r[m]) ** 0.5:.2g}"
                                      for m in ms], f"retrieval ({p['training_shapes']} training shapes)"])
        body += [f"## Chapter {ch} ({len(p['shapes'])} test shapes)", "", md_table(["row", *ms, "kind"], rows), "",
                 *[f"- {claim_sentence(c)}" for c in p["claims"]], ""]
    return "\n".join(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chapters", nargs="+", default=list(CHAPTERS), choices=CHAPTERS)
    ap.add_argument("--note", default="")
    add_dataset_args(ap)
    args = ap.parse_args()
    real = use_dataset_args(args)
    profile = config.get_profile()
    out: dict[str, dict] = {}
    seconds = {}
    for ch in args.chapters:
        t0 = time.perf_counter()
        out[ch] = PARTS[ch](profile, real)
        seconds[ch] = round(time.perf_counter() - t0, 1)
        print(f"chapter {ch}: {seconds[ch]} s", flush=True)
    claims = [c for p in out.values() for c in p["claims"]]
    data = {"chapters": {ch: {k: v for k, v in p.items() if k != "claims"} for ch, p in out.items()},
            "claims": claims, "goals": [], "selections": [], "seconds": seconds}
    notes = args.note
    if real is not None:
        data["dataset"] = real
        notes = (f"Dataset: {real} (real meshes; the chapters' models and result files of the same dataset, "
                 f"results/<chapter>-{real}-<profile>.json). " + notes)
    path = write_result(result_name("retrieval", real), profile, report(out) + f"\nSeconds per chapter: {seconds}.",
                        notes=notes, data=data)
    print("wrote", path)


if __name__ == "__main__":
    main()
