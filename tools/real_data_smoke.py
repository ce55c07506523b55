#!/usr/bin/env python3
"""Every chapter that takes a real dataset, run through its entry points on it in a few seconds each.

``python tools/real_data_smoke.py`` writes the tests' tiny ModelNet-style fixture (``tests/_real_fixture.py``:
small primitives in the ci profile's categories) into a temporary folder, selects it with the one switch
(:func:`course_lib.experiments.common.use_dataset`, which sets ``COURSE_DATASET`` and the root variable, as every
benchmark's ``--dataset`` / ``--root`` does) and, per chapter, loads its splits, trains its models for a step or an
epoch (ci sizes), scores them, and checks that the parts that need ShapeNet-lite's exact procedural shapes refuse
with an error naming the dataset (``NotImplementedError``).  It prints one line per chapter (``chapter 07: ok
(3.1 s)``) and the refusals, and exits non-zero if a chapter fails.

Running every ci lecture notebook on the fixture takes minutes per notebook; this takes seconds per chapter, so CI
can afford it (``tests/test_real_dataset_chapters_c.py`` runs a subset).  On your own copy:
``python tools/real_data_smoke.py --dataset modelnet --root ~/data/ModelNet40 --chapters 03 05`` (the ci profile's
sizes and categories; the cache is a temporary folder unless ``--cache DIR``).

Options: ``--chapters 03 04 ...`` (default: all of :data:`CHAPTERS`), ``--dataset`` (``modelnet``, the fixture's
layout, or ``shapenetcore``), ``--root`` (default: write the fixture), ``--cache``, ``--profile`` (default ``ci``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIXTURE_CATEGORIES = ("chair", "airplane", "mug", "table")
"""The categories of every supporting chapter's ci sizes (ch03/05/09/11: chair, airplane; ch04/06/07: chair, mug;
ch08: chair, table; ch09's fits: mug)."""


def _refuses(fn: Callable[[], object], who: str, dataset: str, log: list[str]) -> None:
    """``fn()`` must raise ``NotImplementedError`` naming ``dataset``; the refusal is logged."""
    try:
        fn()
    except NotImplementedError as exc:
        if dataset not in str(exc):
            raise AssertionError(f"{who} refused without naming {dataset}: {exc}") from exc
        log.append(f"{who} refuses: {str(exc).splitlines()[0][:160]}")
        return
    raise AssertionError(f"{who} ran on {dataset}: it needs ShapeNet-lite's exact shapes and must refuse")


def _names(data: dict, dataset: str) -> None:
    if data.get("dataset") != dataset or "path" not in data:
        raise AssertionError(f"the rows are not {dataset}'s meshes (dataset={data.get('dataset')!r})")


def ch03(p: str, ds: str, log: list[str]) -> None:
    from course_lib.experiments import voxels as V

    tr = V.voxel_data("train", p, image=True, surface=True)
    va, te = V.voxel_data("val", p, image=True), V.voxel_data("test", p, surface=True)
    _names(tr, ds)
    model, _ = V.train_autoencoder(p, data=tr, val_data=va, progress=False)
    assert V.predict(model, te["voxels"]).shape == te["voxels"].shape
    _refuses(lambda: V.representation_floor(te), "voxels.representation_floor", ds, log)


def ch04(p: str, ds: str, log: list[str]) -> None:
    from course_lib.experiments import octrees as O

    tr, va, te = (O.octree_data(s, p) for s in ("train", "val", "test"))
    _names(tr, ds)
    ogn, _ = O.train_ogn(p, data=tr, val_data=va, progress=False)
    assert next(iter(O.evaluate_iou(ogn, te["voxels"]).values())).shape[0] == te["voxels"].shape[0]


def ch05(p: str, ds: str, log: list[str]) -> None:
    from course_lib.experiments import common
    from course_lib.experiments import point_sets as ps

    tr, va, te = ps.train_data(p), ps.val_data(p), ps.test_data(p)
    _names(tr, ds)
    model, _ = ps.train_autoencoder("chamfer", p, data=tr, val=va, progress=False, epochs=1)
    assert common.predict(model, te["points"]).shape[0] == te["points"].shape[0]
    dist = ps.surface_distances(te, {"oracle": te["oracle_points"]})  # to the repaired mesh
    if not dist["oracle"] < 1e-4:
        raise AssertionError(f"chapter 05: the oracle's points lie {dist['oracle']:.3g} from their own mesh")


def ch06(p: str, ds: str, log: list[str]) -> None:
    from course_lib import config
    from course_lib.experiments import surfaces as S

    sp = S.chapter_splits(p, image_size=int(config.size("ch06.image_size", p)))
    _names(sp["train"], ds)
    _, hist = S.train_chapter_model("ae-square2", p, splits=sp, progress=False, live_plot=False)
    assert hist.epochs_run >= 1


def ch07(p: str, ds: str, log: list[str]) -> None:
    from course_lib.experiments import implicit as I

    tr = I.occnet_train_data(p)
    te = I.implicit_data("test", profile=p)
    _names(te, ds)
    occnet, _ = I.train_occnet(tr, epochs=1, profile=p, progress=False)
    ev = I.evaluate_fields(occnet, I.encode(occnet, I.held_out_inputs(te, p)), te, profile=p)
    assert ev["metrics"]["iou"].shape[0] == te["points"].shape[0]
    assert I.oracle_chamfer(te).shape[0] == te["points"].shape[0]
    _refuses(lambda: I.implicit_data("train", kind="sdf", sampling="near", profile=p), "implicit.implicit_data("
             "sampling='near')", ds, log)


def ch08(p: str, ds: str, log: list[str]) -> None:
    from course_lib.experiments import primitives as PR

    tr, va, te = (PR.primitive_data(s, p) for s in ("train", "val", "test"))
    _names(tr, ds)
    model, _ = PR.train_primitives("cuboid", "reorder", tr, val=va, profile=p, epochs=1, progress=False,
                                   live_plot=False)
    assert PR.evaluate_primitives(model, te, profile=p, iou=False)["chamfer"].shape[0] == te["points"].shape[0]
    _refuses(lambda: PR.evaluate_primitives(model, te, profile=p), "primitives.evaluate_primitives (IoU)", ds, log)


def ch09(p: str, ds: str, log: list[str]) -> None:
    from course_lib import config
    from course_lib.experiments import rendering as R
    from course_lib.experiments import silhouette_learning as SL

    shape = R.paired_shapes("test", tuple(config.size("ch09.categories", p))[:1], 1, profile=p)[0]
    if getattr(shape, "dataset", None) != ds:
        raise AssertionError(f"paired_shapes gave {type(shape).__name__}, not a mesh of {ds}")
    size, views = 24, R.view_rig(2)
    sil, cams = R.target_views(shape, views, size)
    res = R.fit_silhouettes(sil, cams, steps=2, level=1)
    sc = R.score_fit(res, shape, views, R.heldout_rig(2, len(views)), size, n_points=256)
    assert 0.0 <= sc["heldout_iou"] <= 1.0
    tr, va = SL.learning_data("train", p), SL.learning_data("val", p)
    _names(tr, ds)
    model, _ = SL.train_deformer("silhouettes", tr, va, p, progress=False)
    assert len(SL.score_deformer(model, SL.learning_data("test", p), p)["cd"]) > 0


def ch11(p: str, ds: str, log: list[str]) -> None:
    from course_lib.experiments import evaluation as EV

    ev = EV.eval_shapes(p, per_category=1)
    if getattr(ev.shapes[0], "dataset", None) != ds:
        raise AssertionError(f"eval_shapes gave {type(ev.shapes[0]).__name__}, not a mesh of {ds}")
    rec = EV.Reconstruction(points=ev.oracle[0], normals=ev.oracle_normals[0], occupancy=ev.shapes[0].occupancy)
    sc = EV.score(rec, ev, 0)
    assert sc["iou"] == 1.0 and sc["cd"] > 0


CHAPTERS: dict[str, Callable[[str, str, list[str]], None]] = {
    "03": ch03, "04": ch04, "05": ch05, "06": ch06, "07": ch07, "08": ch08, "09": ch09, "11": ch11}
"""The chapters that take a real dataset, each with its smoke run."""


def run(chapters: list[str], dataset: str, root: str, profile: str = "ci") -> dict[str, dict[str, object]]:
    """Run ``chapters`` on ``dataset`` at ``root`` (sets ``COURSE_DATASET`` and its root variable); returns per
    chapter ``{"ok": bool, "seconds": float, "refusals": [...], "error": str}``, printing a line each."""
    import torch

    from course_lib.experiments.common import use_dataset

    torch.set_num_threads(1)
    name = use_dataset(dataset, root)
    out: dict[str, dict[str, object]] = {}
    for ch in chapters:
        log: list[str] = []
        t0 = time.perf_counter()
        try:
            CHAPTERS[ch](profile, str(name), log)
            out[ch] = {"ok": True, "refusals": log, "error": ""}
        except Exception as exc:  # noqa: BLE001 - reported per chapter, the others still run
            out[ch] = {"ok": False, "refusals": log, "error": f"{type(exc).__name__}: {exc}",
                       "traceback": traceback.format_exc()}
        out[ch]["seconds"] = time.perf_counter() - t0
        r = out[ch]
        print(f"chapter {ch}: {'ok' if r['ok'] else 'FAILED'} ({r['seconds']:.1f} s)"
              + ("" if r["ok"] else f": {r['error']}"), flush=True)
        for line in log:
            print(f"  {line}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python tools/real_data_smoke.py", description=__doc__.splitlines()[0])
    ap.add_argument("--chapters", nargs="+", default=list(CHAPTERS), choices=list(CHAPTERS))
    ap.add_argument("--dataset", default="modelnet", choices=("modelnet", "shapenetcore"))
    ap.add_argument("--root", default=None, help="the dataset folder (default: write the tests' tiny fixture)")
    ap.add_argument("--cache", default=None, help="COURSE_DATA_DIR for the run (default: a temporary folder)")
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--write-fixture", metavar="DIR", default=None,
                    help="only write the tiny ModelNet-layout fixture into DIR and exit (the test command's step "
                         "that runs every lecture on it)")
    args = ap.parse_args(argv)
    if args.write_fixture:
        sys.path.insert(0, str(ROOT / "tests"))
        from _real_fixture import write_modelnet

        print(write_modelnet(Path(args.write_fixture), FIXTURE_CATEGORIES))
        return 0
    with tempfile.TemporaryDirectory(prefix="real_smoke_") as tmp:
        os.environ["COURSE_DATA_DIR"] = args.cache or os.path.join(tmp, "cache")
        os.environ.setdefault("COURSE_PROFILE", args.profile)
        root = args.root
        if root is None:
            if args.dataset != "modelnet":
                ap.error("the fixture has ModelNet's layout: give --root for shapenetcore")
            sys.path.insert(0, str(ROOT / "tests"))
            from _real_fixture import write_modelnet

            root = str(write_modelnet(Path(tmp) / "ModelNet", FIXTURE_CATEGORIES))
        res = run(args.chapters, args.dataset, root, args.profile)
    bad = [ch for ch, r in res.items() if not r["ok"]]
    for ch in bad:
        print(f"\nchapter {ch}:\n{res[ch].get('traceback', '')}", file=sys.stderr)
    print(f"{len(res) - len(bad)} of {len(res)} chapters ok on {args.dataset}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
