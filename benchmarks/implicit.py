"""Chapter 07 (implicit fields): OccNet point cloud -> surface, DeepSDF latent optimisation, sampling, MISE.

Run from the repository root (each part in its own process if you like; ``--report`` assembles
the result file from the parts' JSON fragments, and a run without ``--part`` does everything, in order):

    COURSE_PROFILE=laptop python benchmarks/implicit.py --part select_shapes    # choices on val, in this order
    COURSE_PROFILE=laptop python benchmarks/implicit.py --part select_queries
    COURSE_PROFILE=laptop python benchmarks/implicit.py --part select_sampling
    COURSE_PROFILE=laptop python benchmarks/implicit.py --part select_schedule
    COURSE_PROFILE=laptop python benchmarks/implicit.py --part occnet         # reports the OccNet whose setting the val split picked
    COURSE_PROFILE=laptop python benchmarks/implicit.py --part comparisons    # the claims' rows, on test
    COURSE_PROFILE=laptop python benchmarks/implicit.py --part deepsdf
    COURSE_PROFILE=laptop python benchmarks/implicit.py --part mise           # uses the chosen OccNet
    COURSE_PROFILE=laptop python benchmarks/implicit.py --part imnet          # optional: the IM-NET decoder
    COURSE_PROFILE=laptop python benchmarks/implicit.py --report
    COURSE_PROFILE=ci python benchmarks/implicit.py                           # the pipeline only (~1 min)

Writes ``benchmarks/results/implicit-<profile>-<machine>.md`` and ``implicit-<profile>.json`` that
``lectures/07_implicit_fields.ipynb`` reads.  Models are checkpointed under
``config.cache_dir()/checkpoints`` (the lecture loads the same files).

**Protocol 2.**  Every choice of OccNet's training is made on the ``val`` split
(``ch07.val_per_category`` shapes per category), by the held-out IoU at p > 0.5
(:func:`course_lib.experiments.implicit.held_out_iou`), in four selection parts run in this order,
each starting from the choices of the ones before it (the config's values before any choice):

* **select_shapes**: shapes per category (``ch07.shape_candidates``) at the same number of steps
  (:func:`~course_lib.experiments.implicit.occnet_epochs`: more shapes, fewer epochs);
* **select_queries**: occupancy samples per shape and step (``ch07.query_epochs``: the laptop's 256
  with more steps against OccNet's 2,048 with fewer, about the same training time);
* **select_sampling**: near-surface, mixed or uniform training samples;
* **select_schedule**: a cosine-decayed or OccNet's constant learning rate.

The selections go into ``data["selections"]`` with the config's default and whether the choice
equals it (``equals_config``).  Then ``test`` is read, once, to report:

* **occnet**: the Occupancy Network in the chosen setting, point cloud (``ch07.n_input`` points, noise
  0.005) -> mesh (hierarchical marching cubes) on the test shapes: IoU, Chamfer-L1 (OccNet's
  convention), normal consistency, F-score; the oracle (two samplings of the true surface) beside it.
  Goal: IoU >= 0.85 within 300 s of training (``OCCNET_GOAL``).
* **comparisons**: the rows of the lecture's comparative sentences, each a pair of one selection's
  candidates (fixed models), scored on the same test shapes; the claims are paired over those shapes
  (at least 20) with each row's budget (steps, shapes seen, seconds, parameters): many against few
  training shapes at equal steps, the laptop's queries per step against OccNet's 2,048 at about equal
  time (the step ratio is in the budget), cosine against constant learning rate, near-surface against
  uniform samples (IoU, and recall on the thin parts: chair and table legs, lamp stems, mug handles:
  the sampling study), and the chosen model's IoU at p > 0.5 against OccNet's threshold p > 0.2.
* **deepsdf**: the auto-decoder on ``ch07.sdf_categories`` (DeepSDF sampling, 47/50 near the
  surface), unseen test shapes reconstructed by latent optimisation; Chamfer in DeepSDF's convention
  against the oracle (goal: within 3x).  No choice is made (the config's sizes).
* **mise**: hierarchical (33 -> 129 nodes, i.e. 32 -> 128 cells as OccNet's MISE; 17 -> 65 in ci) against dense
  extraction of the chosen OccNet's field and of exact SDFs: evaluations and Chamfer between the meshes
  (goal: the same mesh, Chamfer <= 1e-6, with at most 1/5 of the dense evaluations).

Real datasets (issue #35): ``--dataset`` / ``--root`` (or ``COURSE_DATASET``) run every part on a real dataset's
repaired meshes (:class:`course_lib.experiments.mesh_shape.MeshShape`): the occupancy and SDF samples are
``load_split``'s (so the sampling selection has one candidate, its half-near-the-surface "mix"), IoU is scored
against each mesh's winding-number inside, the thin-part metrics and their claim are absent (real meshes have no
part labels), and MISE extracts the first test meshes' signed distances (exact distance, winding-number sign)
instead of ShapeNet-lite's exact SDFs.  Fragments, checkpoints and results carry the dataset's name
(``implicit-<dataset>-<profile>.*``).

Cost (laptop profile, 2 idle cores), estimated from the protocol-1 run's parts: seven OccNet trainings of
about 250 s each (three set sizes, OccNet's queries, two other samplings, the constant rate; a setting met
twice is loaded, not retrained), each scored on the 50 val shapes, six of them read on the 50 test shapes
(~35 s each), DeepSDF (~210 s) and MISE: about 40 minutes from an empty cache, about 20 with the earlier
run's checkpoints (40 x 360, 160 x 90, 2,048 queries, constant rate and DeepSDF load: their data and
settings are unchanged).  Each part's wall time is in the result file (``_seconds``).
``COURSE_PROFILE=ci`` runs everything in one to two minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import add_dataset_args, md_table, result_name, use_dataset_args, write_result  # noqa: E402

from course_lib import config  # noqa: E402
from course_lib import train as _train  # noqa: E402
from course_lib.data import make_shape, split_seeds  # noqa: E402
from course_lib.experiments import implicit as E  # noqa: E402
from course_lib.experiments.common import mean_sem, real_dataset, summarize  # noqa: E402
from course_lib.experiments.protocol import (  # noqa: E402
    claim,
    claim_sentence,
    goal,
    goal_sentence,
    selection_part,
    selection_record,
)
from course_lib.models.implicit import field_of  # noqa: E402

SWEEPS = ("shapes", "queries", "sampling", "schedule")
"""The selections on val, in the order they run (each starts from the choices before it)."""
PARTS = tuple(f"select_{s}" for s in SWEEPS) + ("occnet", "comparisons", "deepsdf", "mise")
OPTIONAL_PARTS = ("imnet",)  # run only when asked for with --part
SELECTION_PARTS = ("part_select_shapes", "part_select_queries", "part_select_sampling", "part_select_schedule")
"""The parts that make choices (one per entry of :data:`SWEEPS`, in its order): they train on ``train`` and
score on ``val`` only (a test read raises there)."""
VAL_METRIC = "IoU at p > 0.5, mean over the val shapes (held_out_iou)"
SETTING_OF = {"shapes": "per_category", "queries": "n_query", "sampling": "sampling", "schedule": "schedule"}
"""The setting each selection chooses."""


def _frag(profile: str, part: str) -> Path:
    real = real_dataset()  # a real dataset's fragments never mix with ShapeNet-lite's
    return config.cache_dir() / "ch07" / f"bench-v2-{profile}{'' if real is None else '-' + real}-{part}.json"


def _save(profile: str, part: str, data: dict) -> None:
    p = _frag(profile, part)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=1))


def _load(profile: str, part: str) -> dict | None:
    p = _frag(profile, part)
    return json.loads(p.read_text()) if p.exists() else None


def _summary(metrics: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    row = summarize({"m": metrics})[0]
    return {k: list(v) for k, v in row.items() if k != "model"}


# ---------------------------------------------------------------------------
# choices on val
# ---------------------------------------------------------------------------
def _state(profile: str, sweep: str) -> dict[str, Any]:
    """The setting selection ``sweep`` starts from: the config's, with the choices of the selections before it."""
    st = E.occnet_setting(profile)
    for before in SWEEPS[:SWEEPS.index(sweep)]:
        f = _load(profile, f"select_{before}")
        if f is None:
            raise SystemExit(f"run --part select_{before} first: the selections run in the order {SWEEPS}")
        st = dict(f["chosen_setting"])
    return st


def chosen_setting(profile: str) -> dict[str, Any]:
    """The setting every selection chose (the OccNet the benchmark reports)."""
    f = _load(profile, f"select_{SWEEPS[-1]}")
    if f is None:
        raise SystemExit(f"run the selections first (--part select_{SWEEPS[0]} ... select_{SWEEPS[-1]})")
    return dict(f["chosen_setting"])


_VAL: dict[str, dict] = {}


def _val(profile: str) -> dict:
    if profile not in _VAL:
        _VAL[profile] = E.implicit_data("val", profile=profile)
    return _VAL[profile]


def _sweep(sweep: str, profile: str, candidates: dict[str, dict[str, Any]]) -> dict:
    """Train (or load) every candidate setting on train, score it on val, keep the best (selection record)."""
    key = SETTING_OF[sweep]
    default = E.occnet_setting(profile)[key]
    val = _val(profile)
    rows = {}
    for name, st in candidates.items():
        model, hist = E.train_occnet_setting(st, profile, progress=True)
        iou = E.held_out_iou(model, val, profile)
        rows[name] = {"setting": st, "val_iou": list(mean_sem(iou)), "val_per_shape": iou.tolist(),
                      "budget": E.occnet_budget(model, hist, st, profile), "train_summary": hist.summary()}
        print(f"{sweep}: {name}: val IoU {rows[name]['val_iou'][0]:.4f}")
    chosen, rec = selection_record(f"occnet_{sweep}", {n: r["val_iou"][0] for n, r in rows.items()},
                                   metric=VAL_METRIC, higher_is_better=True)
    rec["setting"] = key
    rec["config"] = default
    rec["chosen_value"] = rows[chosen]["setting"][key]
    rec["equals_config"] = rec["chosen_value"] == default
    rec["n_val"] = int(val["query"].shape[0])
    return {"record": rec, "rows": rows, "chosen": chosen, "chosen_setting": rows[chosen]["setting"]}


@selection_part
def part_select_shapes(profile: str) -> dict:
    """Shapes per category (``ch07.shape_candidates``) at the same number of steps, chosen on val."""
    st = _state(profile, "shapes")
    cands = {}
    for per in config.size("ch07.shape_candidates", profile):
        c = E.occnet_setting(profile, **{**st, "per_category": per, "epochs": None})
        cands[f"{per} shapes x {c['epochs']} epochs"] = c
    return _sweep("shapes", profile, cands)


@selection_part
def part_select_queries(profile: str) -> dict:
    """Occupancy samples per shape and step (``ch07.query_epochs``, about equal training time), chosen on val."""
    st = _state(profile, "queries")
    cands = {}
    for q, _ in config.size("ch07.query_epochs", profile):
        c = E.occnet_setting(profile, **{**st, "n_query": q, "epochs": None})
        cands[f"{q} queries x {c['epochs']} epochs"] = c
    return _sweep("queries", profile, cands)


@selection_part
def part_select_sampling(profile: str) -> dict:
    """Near-surface, mixed or uniform training samples, chosen on val.  On a real dataset the samples are
    load_split's (half near the surface, "mix"): the one candidate, recorded as such."""
    st = _state(profile, "sampling")
    smps = E.OCCNET_SAMPLINGS if real_dataset() is None else ("mix",)
    return _sweep("sampling", profile, {smp: E.occnet_setting(profile, **{**st, "sampling": smp}) for smp in smps})


@selection_part
def part_select_schedule(profile: str) -> dict:
    """A cosine-decayed or a constant learning rate, chosen on val."""
    st = _state(profile, "schedule")
    return _sweep("schedule", profile, {sch: E.occnet_setting(profile, **{**st, "schedule": sch})
                                        for sch in _train.SCHEDULES})


# ---------------------------------------------------------------------------
# reports on test (read once, after every choice)
# ---------------------------------------------------------------------------
def _evaluate(model: Any, test: dict, profile: str) -> dict:
    """Every metric of a model on the test shapes: summaries, per-shape values, per category."""
    codes = E.encode(model, E.held_out_inputs(test, profile))
    t0 = time.perf_counter()
    res = E.evaluate_fields(model, codes, test, profile=profile)
    eval_s = time.perf_counter() - t0
    per_cat = {}
    for c in test["categories"]:
        sel = torch.tensor([x == c for x in test["category"]])
        per_cat[c] = {k: float(v[sel].mean()) for k, v in res["metrics"].items() if v.shape[0] == sel.shape[0]}
    return {"metrics": _summary(res["metrics"]), "per_shape": {k: v.tolist() for k, v in res["metrics"].items()},
            "thin_index": res["thin_index"], "per_category": per_cat, "eval_seconds": eval_s,
            "empty": res["empty"], "mean_evaluations_per_mesh": res["evaluations"]}


def _run_row(profile: str, setting: dict[str, Any], test: dict, decoder: str = "occnet") -> dict:
    model, hist = E.train_occnet_setting(setting, profile, decoder=decoder, progress=True)
    out = _evaluate(model, test, profile)
    out.update({"setting": setting, "key": E.setting_key(setting), "budget": E.occnet_budget(model, hist, setting,
                                                                                               profile),
                "train_seconds": float(hist.wall_time), "train_summary": hist.summary()})
    return out


def part_occnet(profile: str, decoder: str = "occnet") -> dict:
    st = chosen_setting(profile)
    test = E.implicit_data("test", profile=profile)  # read once, to report
    out = _run_row(profile, st, test, decoder)
    oracle = E.oracle_chamfer(test, "occnet")
    out.update({"oracle_cd_l1": [float(oracle.mean()), float(oracle.std() / max(1, len(oracle)) ** 0.5)],
                "shapes": {"train": st["per_category"] * len(test["categories"]), "test": int(test["query"].shape[0])},
                "categories": list(test["categories"]), "schedule": st["schedule"], "n_query": st["n_query"],
                "epochs": st["epochs"], "train_per_category": st["per_category"], "sampling": st["sampling"],
                "decoder": decoder})
    return out


def part_imnet(profile: str) -> dict:
    return part_occnet(profile, decoder="imnet")


def _alternative(sweep: str, profile: str, rows: dict) -> tuple[str, str] | None:
    """The two candidates of selection ``sweep`` that the lecture's sentence compares: the config's value
    and its alternative (the fewest shapes, OccNet's 2,048 queries, uniform samples, the other schedule)."""
    key = SETTING_OF[sweep]
    default = E.occnet_setting(profile)[key]
    by_value = {r["setting"][key]: name for name, r in rows.items()}
    if default not in by_value:
        return None
    if sweep == "shapes":
        alt = min(by_value) if min(by_value) != default else max(by_value)
    elif sweep == "queries":
        alt = E.PAPER_N_QUERY if default != E.PAPER_N_QUERY else None
    elif sweep == "sampling":
        alt = "uniform" if default != "uniform" else "near"
    else:
        alt = next((v for v in by_value if v != default), None)
    if alt is None or alt == default or alt not in by_value:
        return None
    return by_value[default], by_value[alt]


def part_comparisons(profile: str) -> dict:
    """Report only: the test rows of the lecture's comparisons, every setting already chosen on val
    (the chosen model's test evaluation reused)."""
    sweeps = {sw: _load(profile, f"select_{sw}") for sw in SWEEPS}
    missing = [sw for sw, f in sweeps.items() if f is None]
    if missing:
        raise SystemExit(f"run the selections first: {', '.join(f'--part select_{m}' for m in missing)}")
    main = _load(profile, "occnet")
    test = E.implicit_data("test", profile=profile)  # read once, to report
    rows: dict[str, dict] = {}
    pairs: dict[str, dict] = {}

    def row(setting: dict[str, Any]) -> str:
        k = E.setting_key(setting)
        if k not in rows:
            if main is not None and main.get("key") == k and main.get("decoder", "occnet") == "occnet":
                rows[k] = {x: v for x, v in main.items() if x not in ("oracle_cd_l1", "shapes", "categories")}
            else:
                rows[k] = _run_row(profile, setting, test)
        return k

    for sw, f in sweeps.items():
        names = _alternative(sw, profile, f["rows"])
        if names is None:
            continue
        a, b = (f["rows"][n]["setting"] for n in names)
        pairs[sw] = {"a": row(a), "b": row(b), "label_a": names[0], "label_b": names[1]}
    sampling = {smp: row(r["setting"]) for smp, r in sweeps["sampling"]["rows"].items()}
    return {"rows": rows, "pairs": pairs, "sampling": sampling, "n_test": int(test["query"].shape[0])}


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


def part_mise(profile: str) -> dict:
    s = config.sizes(profile, prefix="ch07.")
    res, coarse = (65, 17) if profile == "ci" else (129, 33)  # 128^3 cells from 32^3, as OccNet's MISE
    out = {}
    test = E.implicit_data("test", profile=profile, per_category=1)
    if real_dataset() is None:
        seed = split_seeds("test", 1)[0]  # a test shape of each category (a report: no choice is made here)
        for cat in ("chair", "lamp", "airplane"):
            out[f"exact SDF, {cat}"] = E.mise_experiment(make_shape(cat, seed).sdf, res, coarse)
    else:  # a real dataset: the repaired mesh's signed distance (exact distance, winding-number sign)
        from course_lib.experiments.mesh_shape import row_shape

        for i in range(min(3, len(test["category"]))):
            out[f"mesh SDF, {test['category'][i]}"] = E.mise_experiment(row_shape(test, i).sdf, res, coarse)
    st = chosen_setting(profile)
    model, _ = E.train_occnet_setting(st, profile, progress=False)
    z = E.encode(model, E.held_out_inputs(test, profile))[0]
    out[f"OccNet field, {test['category'][0]}"] = E.mise_experiment(field_of(model, z), res, coarse, level=model.level,
                                                                   inside=model.inside)
    out["_sizes"] = {"resolution": res, "coarse": coarse, "profile_eval_resolution": int(s["eval_resolution"])}
    out["_setting"] = st  # underscored: every other key is a field's row
    return out


# ---------------------------------------------------------------------------
# claims and goals
# ---------------------------------------------------------------------------
CLAIM_TEXT = {
    "occnet_shapes": "At the same number of steps, OccNet trained on more shapes for fewer epochs reconstructs the "
                     "held-out shapes with a higher IoU than on fewer shapes for more epochs",
    "occnet_queries": "In about the same training time, fewer occupancy samples per shape and step with more steps "
                      "give OccNet a higher IoU than OccNet's 2,048 samples with fewer steps",
    "occnet_schedule": "A learning rate decayed along a cosine gives OccNet a higher IoU than OccNet's constant rate "
                       "in the same steps",
    "sampling_thin_recall": "Near-surface training samples recover more of the thin parts (legs, stems, handles) "
                            "than uniform samples",
    "sampling_iou": "Near-surface training samples give OccNet a higher IoU than uniform samples",
    "occnet_threshold": "The chosen OccNet's IoU is higher at p > 0.5 than at OccNet's evaluation threshold p > 0.2",
}
"""The lecture's comparative sentences, one claim record each (ids stable)."""
PAIR_CLAIMS = {"shapes": ("occnet_shapes",), "queries": ("occnet_queries",), "schedule": ("occnet_schedule",),
               "sampling": ("sampling_iou", "sampling_thin_recall")}


def _pair_claim(cid: str, comp: dict, sweep: str) -> dict:
    p = comp["pairs"][sweep]
    ra, rb = comp["rows"][p["a"]], comp["rows"][p["b"]]
    la, lb = p["label_a"], p["label_b"]
    bud = {la: ra["budget"], lb: rb["budget"]}
    if cid == "sampling_thin_recall":
        if ra["thin_index"] != rb["thin_index"]:
            raise ValueError("the two rows' thin-part shapes differ: they were not scored on the same test shapes")
        return claim(cid, CLAIM_TEXT[cid], a=la, b=lb, metric="thin-part recall (share of the thin parts' surface "
                     f"samples within tau; {len(ra['thin_index'])} test shapes with thin parts)",
                     values_a=ra["per_shape"]["thin_recall"], values_b=rb["per_shape"]["thin_recall"],
                     higher_is_better=True, unit="shapes", budget=bud, selected_on="val")
    return claim(cid, CLAIM_TEXT[cid], a=la, b=lb, metric="IoU (p > 0.5) on the test shapes",
                 values_a=ra["per_shape"]["iou"], values_b=rb["per_shape"]["iou"], higher_is_better=True,
                 unit="shapes", budget=bud, selected_on="val")


def claim_records(data: dict) -> list[dict]:
    """Every comparative sentence of lecture 07 as a claim record, paired over the test shapes."""
    out = []
    comp = data.get("comparisons")
    if comp:
        for sweep, ids in PAIR_CLAIMS.items():
            if sweep in comp["pairs"]:
                out += [_pair_claim(cid, comp, sweep) for cid in ids]
    occ = data.get("occnet")
    if occ and "per_shape" in occ and "iou_t02" in occ["per_shape"]:
        b = occ["budget"]
        out.append(claim("occnet_threshold", CLAIM_TEXT["occnet_threshold"], a="p > 0.5", b="p > 0.2",
                         metric="IoU on the test shapes (the same model)", values_a=occ["per_shape"]["iou"],
                         values_b=occ["per_shape"]["iou_t02"], higher_is_better=True, unit="shapes",
                         budget={"p > 0.5": b, "p > 0.2": b}, selected_on="val"))
    return out


def _mise_rows(m: dict) -> dict:
    """The fields of the mise part (its other keys, ``_sizes``, ``_setting``, ``_seconds``, start with ``_``)."""
    return {k: v for k, v in m.items() if not k.startswith("_")}


def goal_records(data: dict, claims: list[dict]) -> list[dict]:
    """The chapter's goals as records (ids stable; the laptop profile is the one they are set for)."""
    out = []
    occ = data.get("occnet")
    if occ:
        n = occ["shapes"]["test"]
        out.append(goal("occnet_iou", f"OccNet IoU (p > 0.5), point cloud -> surface, mean over {n} test shapes "
                        "(every training choice made on val)", occ["metrics"]["iou"][0], E.OCCNET_GOAL["iou"],
                        comparison=">="))
        out.append(goal("occnet_train_seconds", "OccNet's training seconds (the same run)", occ["train_seconds"],
                        E.OCCNET_GOAL["train_seconds"], comparison="<="))
    d = data.get("deepsdf")
    if d:
        out.append(goal("deepsdf_oracle_ratio", f"DeepSDF Chamfer of {d['shapes']['test']} unseen test shapes "
                        "(codes by latent optimisation) / the oracle's", d["ratio_to_oracle"], 3.0, comparison="<="))
    m = data.get("mise")
    if m:
        rows = _mise_rows(m)
        out.append(goal("mise_same_mesh", "hierarchical vs dense extraction: largest Chamfer between their meshes "
                        f"over {len(rows)} fields", max(v["chamfer"] for v in rows.values()), 1e-6, comparison="<="))
        out.append(goal("mise_fraction", "hierarchical extraction: largest fraction of the dense evaluations over "
                        f"{len(rows)} fields", max(v["fraction"] for v in rows.values()), 0.2, comparison="<="))
    thin = next((c for c in claims if c["id"] == "sampling_thin_recall"), None)
    if thin:
        out.append(goal("sampling_thin_recall", "the sampling study: near-surface samples ahead of uniform ones on "
                        f"thin-part recall, paired over {thin['n']} test shapes (verdict of claim "
                        "sampling_thin_recall)", thin["verdict"], "ahead", comparison="=="))
    return out


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------
def _fmt(ms: list[float]) -> str:
    return f"{ms[0]:.3f} ± {ms[1]:.2g}"


def _budget_cells(b: dict) -> list[Any]:
    return [b["steps"], b["examples"], b.get("queries", "-"), f"{b['seconds']:.0f}", b["params"]]


_BUDGET_HEAD = ["steps", "shapes seen", "queries seen", "train s", "params"]


def _selection_section(data: dict) -> list[str]:
    body = ["## Choices on validation (protocol 2)", "",
            "Each selection trains its candidates on train and scores them on val (IoU at p > 0.5, the held-out "
            "input clouds); it starts from the choices of the selections above it.  The test split is read only "
            "after the last one.", ""]
    for sw in SWEEPS:
        f = data.get(f"select_{sw}")
        if not f:
            continue
        rec = f["record"]
        body += [f"### {sw} ({rec['setting']})", "",
                 md_table(["candidate", "val IoU"] + _BUDGET_HEAD,
                          [[n, _fmt(r["val_iou"])] + _budget_cells(r["budget"]) for n, r in f["rows"].items()]), "",
                 f"chosen on val: **{rec['chosen']}** ({rec['setting']} = {rec['chosen_value']}); the config's "
                 f"value {rec['config']}: {'the same' if rec['equals_config'] else 'DIFFERENT (update course_lib/config.py)'}",
                 ""]
    return body


def _row_table(comp: dict, keys: list[tuple[str, str]], extra: tuple[tuple[str, str], ...] = ()) -> str:
    rows = []
    for label, k in keys:
        r = comp["rows"][k]
        m = r["metrics"]
        rows.append([label, _fmt(m["iou"]), _fmt(m["iou_t02"]) if "iou_t02" in m else "-", _fmt(m["cd_l1"])]
                    + [_fmt(m[x]) if x in m else "-" for _, x in extra] + _budget_cells(r["budget"]))
    return md_table(["row", "IoU (p > 0.5)", "IoU (p > 0.2)", "Chamfer-L1"] + [h for h, _ in extra] + _BUDGET_HEAD,
                    rows)


def _check_fresh(data: dict) -> None:
    """Refuse to report test rows that predate the selections (a selection re-run after them)."""
    last = data.get(f"select_{SWEEPS[-1]}")
    if last is None:
        return
    for part in ("occnet", "imnet", "mise"):
        if part in data and data[part].get("setting", data[part].get("_setting")) != last["chosen_setting"]:
            raise SystemExit(f"the {part} part was measured in another setting than the selections chose: "
                             f"rerun --part {part}")
    comp = data.get("comparisons")
    if comp:
        for sw in SWEEPS:
            f = data.get(f"select_{sw}")
            pair = comp["pairs"].get(sw)
            if f and pair and not {pair["a"], pair["b"]} <= {E.setting_key(r["setting"]) for r in f["rows"].values()}:
                raise SystemExit(f"the comparisons part predates the {sw} selection: rerun --part comparisons")


def report(profile: str) -> Path:
    data: dict[str, Any] = {}
    for part in PARTS + OPTIONAL_PARTS:
        f = _load(profile, part)
        if f is not None:
            data[part] = f
    data["selections"] = [data[f"select_{sw}"]["record"] for sw in SWEEPS if f"select_{sw}" in data]
    _check_fresh(data)
    comp = data.get("comparisons")
    if comp:
        data["sampling"] = {smp: comp["rows"][k]["metrics"] for smp, k in comp["sampling"].items()}
    claims = claim_records(data)
    data["claims"] = claims
    data["goals"] = goal_records(data, claims)
    said = {c["id"]: claim_sentence(c) for c in claims}
    body = _selection_section(data)
    for part, title in (("occnet", "Occupancy Network"), ("imnet", "IM-NET decoder (same encoder and data)")):
        if part not in data:
            continue
        d = data[part]
        m = d["metrics"]
        body += [f"## {title}: point cloud -> surface on the test shapes", "",
                 f"categories {', '.join(d['categories'])}; {d['shapes']['train']} train / {d['shapes']['test']} "
                 f"test shapes (read once, to report); setting (picked on val): {d['key']}; training: {d['train_summary']}", "",
                 md_table(["IoU (p > 0.5)", "IoU (p > 0.2, OccNet's threshold)", "Chamfer-L1", "normal consistency",
                           "F-score", "oracle Chamfer-L1"],
                          [[_fmt(m["iou"]), _fmt(m["iou_t02"]) if "iou_t02" in m else "-", _fmt(m["cd_l1"]),
                            _fmt(m["nc"]), _fmt(m["fscore"]), _fmt(d["oracle_cd_l1"])]]), "",
                 md_table(["category", "IoU", "Chamfer-L1", "NC", "F-score"],
                          [[c, v["iou"], v["cd_l1"], v["nc"], v["fscore"]] for c, v in d["per_category"].items()]),
                 "", md_table(_BUDGET_HEAD, [_budget_cells(d["budget"])]), ""]
        if part == "occnet" and "occnet_threshold" in said:
            body += [said["occnet_threshold"], ""]
    if comp:
        body += ["## Comparisons on the test shapes (pairs of one selection's candidates, fixed models)", ""]
        for sw, title in (("shapes", "Training shapes at the same number of steps"),
                          ("queries", "Occupancy samples per shape and step, about the same training time"),
                          ("schedule", "Learning-rate schedule (OccNet keeps a constant rate)")):
            if sw not in comp["pairs"]:
                continue
            p = comp["pairs"][sw]
            body += [f"### {title}", "", _row_table(comp, [(p["label_a"], p["a"]), (p["label_b"], p["b"])]), ""]
            body += [said[c] for c in PAIR_CLAIMS[sw] if c in said] + [""]
        body += ["### Sampling: near-surface vs mixed vs uniform, thin parts (the sampling study)", "",
                 _row_table(comp, list(comp["sampling"].items()), (("thin-part completeness", "thin_cd"),
                                                                   ("thin-part recall", "thin_recall"))), ""]
        body += [said[c] for c in PAIR_CLAIMS["sampling"] if c in said] + [""]
    if "deepsdf" in data:
        d = data["deepsdf"]
        body += ["## DeepSDF: unseen shapes by latent optimisation", "",
                 f"categories {', '.join(d['categories'])}; {d.get('n_query', '?')} SDF samples per shape and step; "
                 f"training: {d['train_summary']}; reconstruction of "
                 f"{d['shapes']['test']} shapes in {d['recon_seconds']:.1f} s", "",
                 md_table(["codes", "Chamfer (DeepSDF, x1e3)", "IoU", "Chamfer-L1", "NC"],
                          [["unseen (optimised)", _fmt(d["unseen"]["cd_deepsdf"]), _fmt(d["unseen"]["iou"]),
                            _fmt(d["unseen"]["cd_l1"]), _fmt(d["unseen"]["nc"])],
                           ["training shapes (learnt)", _fmt(d["train_codes"]["cd_deepsdf"]),
                            _fmt(d["train_codes"]["iou"]), _fmt(d["train_codes"]["cd_l1"]),
                            _fmt(d["train_codes"]["nc"])],
                           ["oracle", _fmt(d["oracle_cd_deepsdf"]), "", "", ""]]), "",
                 f"unseen / oracle = {d['ratio_to_oracle']:.2f}", ""]
    if "mise" in data:
        d = _mise_rows(data["mise"])
        sz = data["mise"].get("_sizes", {})
        body += [f"## Hierarchical extraction (MISE): {sz.get('resolution')}^3 nodes from {sz.get('coarse')}^3", "",
                 md_table(["field", "evaluations", "dense", "fraction", "Chamfer(hier, dense)", "s hier", "s dense"],
                          [[k, int(v["evaluations"]), int(v["dense_evaluations"]), v["fraction"], v["chamfer"],
                            v["seconds_hierarchical"], v["seconds_dense"]] for k, v in d.items()]), ""]
    body += ["## Goals", ""] + [f"- {goal_sentence(g)}" for g in data["goals"]] + [""]
    body += ["## Claims", ""] + [f"- {s}" for s in said.values()] + [""]
    notes = "\n".join(f"- {k}: {v}" for k, v in E.CONVENTIONS.items())
    real = real_dataset()
    if real is not None:
        data["dataset"] = real
        notes = (f"Dataset: {real} (real meshes, repaired; IoU against each mesh's winding-number inside, no "
                 "thin-part metrics: real meshes have no part labels; the one sampling is load_split's, half near "
                 "the surface; MISE on the meshes' signed distances).\n\n" + notes)
    return write_result(result_name("implicit", real), profile, "\n".join(body), notes=notes, data=data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=PARTS + OPTIONAL_PARTS, action="append",
                    help="run only these parts (repeatable, run in the order given; imnet runs only when named)")
    ap.add_argument("--report", action="store_true", help="only assemble the result file from the fragments")
    add_dataset_args(ap)
    ap.epilog = ("On a real dataset (--dataset modelnet|shapenetcore): IoU against each repaired mesh's winding-number "
                 "inside, no thin-part metrics (no part labels), one sampling (load_split's), MISE on the meshes' "
                 "signed distances; results implicit-<dataset>-<profile>.*, fragments and checkpoints of their own.")
    args = ap.parse_args()
    use_dataset_args(args)
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
