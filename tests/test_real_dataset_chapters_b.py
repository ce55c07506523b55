"""Chapters 04 (octrees), 06 (surfaces), 07 (implicit fields) and 08 (primitives) on a real dataset, ci profile.

The fixtures are tiny ModelNet-style (and one ShapeNetCore-style) folders of trimesh primitives written with the
helpers of ``tests/_real_fixture.py``, with the categories these chapters' ci sizes use (chair, mug,
table): each category has training, validation (ModelNet's val: CRC32 of the name mod 10 == 0) and test meshes.
Each test loads a chapter's splits, trains its models for one epoch, and checks the keys and shapes, that the
checkpoints carry the dataset's name (the same through ``dataset=`` and ``COURSE_DATASET``), and that what needs
ShapeNet-lite's exact shapes refuses naming the dataset.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import trimesh
from _real_fixture import real_env, through_env, write_modelnet

from course_lib import config
from course_lib.data.real import SHAPENET_SYNSETS
from course_lib.experiments import common
from course_lib.experiments import implicit as I
from course_lib.experiments import octrees as O
from course_lib.experiments import primitives as PR
from course_lib.experiments import surfaces as S

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CATEGORIES = ("chair", "mug", "table")  # ch04/06/07: chair, mug; ch08: chair, table


@pytest.fixture(scope="module")
def modelnet(tmp_path_factory):
    return write_modelnet(tmp_path_factory.mktemp("real_b") / "ModelNet", CATEGORIES)


@pytest.fixture()
def real(modelnet, tmp_path_factory, monkeypatch):
    """The ci profile, a cache shared by this module's tests, no COURSE_DATASET."""
    return real_env(monkeypatch, tmp_path_factory.getbasetemp() / "real_b_cache", modelnet)


def _checkpoints(prefix: str) -> list[str]:
    d = config.cache_dir() / "checkpoints"
    return sorted(p.name for p in d.glob(f"{prefix}*.pt")) if d.is_dir() else []


# --- chapter 04 ------------------------------------------------------------------

def test_ch04_octree_autoencoders_on_a_real_dataset(real, monkeypatch):
    R = config.size("ch04.resolution", "ci")
    tr, va, te = (O.octree_data(s, "ci", **real) for s in ("train", "val", "test"))
    assert tr["voxels"].shape == (4, R, R, R) and va["voxels"].shape[0] == 2 and te["voxels"].shape[0] == 4
    assert set(tr["category"]) == {"chair", "mug"} and tr["dataset"] == "modelnet" and "path" in tr
    assert set(torch.unique(tr["voxels"]).tolist()) == {0.0, 1.0}
    ogn, h = O.train_ogn("ci", data=tr, val_data=va, progress=False)
    dense, h2 = O.train_dense("ci", data=tr, val_data=va, progress=False)
    assert h.epochs_run >= 1 and h2.epochs_run >= 1
    names = _checkpoints("ch04_")
    assert len(names) == 2 and all(n.startswith(("ch04_ogn_ae-modelnet-ci-", "ch04_dense_ae-modelnet-ci-"))
                                   for n in names)
    iou = O.evaluate_iou(ogn, te["voxels"])
    assert next(iter(iou.values())).shape[0] == 4
    # the same checkpoint through COURSE_DATASET (and the loaders' defaults): nothing is trained again
    through_env(monkeypatch, real)
    _, h3 = O.train_ogn("ci", progress=False)
    assert _checkpoints("ch04_") == names and h3.epochs_run == h.epochs_run


# --- chapter 06 ------------------------------------------------------------------

def test_ch06_surface_models_on_a_real_dataset(real, monkeypatch):
    sz = config.sizes("ci", prefix="ch06.")
    N, H = int(sz["n_points"]), int(sz["image_size"])
    sp = S.chapter_splits("ci", image_size=H, **real)
    tr, va = sp["train"], sp["val"]
    assert tr["points"].shape == (4, N, 3) and tr["normals"].shape == (4, N, 3)
    assert tr["target_points"].shape == (4, N, 3) and tr["rgb"].shape == (4, 3, H, H) and float(tr["rgb"].std()) > 0
    assert va["points"].shape == (4, int(sz["n_input"]), 3) and tr["dataset"] == "modelnet"
    assert "part" not in tr and "parts" not in tr  # real meshes have no part labels
    te = S.surface_dataset(["chair", "mug"], "test", 10, N, oracle=True, **real)
    assert te["oracle_points"].shape == (4, N, 3) and S.oracle_chamfer(te) > 0
    for key in ("ae-square2", "svr-sphere1"):
        model, hist = S.train_chapter_model(key, "ci", splits=sp, progress=False, live_plot=False)
        assert hist.epochs_run >= 1
        assert len(_checkpoints(f"ch06_{key}-modelnet-ci-")) == 1
    pred = common.predict(S.train_chapter_model("ae-square2", "ci", splits=sp, progress=False,
                                                live_plot=False)[0], te["points"])
    assert pred.shape[0] == 4 and pred.shape[-1] == 3
    coded, _ = S.train_chapter_coded("mug", "ci", progress=False, live_plot=False, **real)
    assert len(_checkpoints("ch06_coded-mug-modelnet-ci-")) == 1
    with pytest.raises(NotImplementedError, match="label_transfer .*cannot run on modelnet"):
        S.label_transfer(coded, te)
    assert all("-modelnet-ci-" in n for n in _checkpoints("ch06_"))
    # COURSE_DATASET names the same file
    path = S.checkpoint_path("ae-square2", tr, "ci", n_input=int(sz["n_input"]))
    through_env(monkeypatch, real)
    assert S.checkpoint_path("ae-square2", tr, "ci", n_input=int(sz["n_input"])) == path
    env = S.surface_dataset(["chair"], "train", 1, 16)
    assert torch.equal(env["points"], S.surface_dataset(["chair"], "train", 1, 16, **real)["points"])


# --- chapter 07 ------------------------------------------------------------------

def test_ch07_implicit_data_on_a_real_dataset(real, monkeypatch):
    s = config.sizes("ci", prefix="ch07.")
    tr = I.occnet_train_data("ci", **real)
    assert tr["query"].shape == (6, s["n_pool"], 3) and tr["occupancy"].shape == (6, s["n_pool"])
    assert tr["occupancy"].dtype == torch.bool and tr["sampling"] == "mix" and tr["dataset"] == "modelnet"
    assert 0.05 < float(tr["occupancy"].float().mean()) < 0.95  # inside and outside samples
    te = I.implicit_data("test", profile="ci", **real)
    assert te["target_points"].shape == (4, s["n_eval_points"], 3)
    sdf = I.implicit_data("train", kind="sdf", sampling="deepsdf", categories=("chair",), profile="ci", **real)
    assert sdf["sdf"].shape == (3, s["n_pool"]) and sdf["sdf"].dtype == torch.float32
    assert sdf["sampling"] == "real-near80" and bool((sdf["sdf"] < 0).any()) and bool((sdf["sdf"] > 0).any())
    for sampling, kind in (("near", "occupancy"), ("uniform", "occupancy"), ("mix", "sdf")):
        with pytest.raises(NotImplementedError, match=f"implicit_data\\(sampling='{sampling}'.*cannot run on modelnet"):
            I.implicit_data("train", kind=kind, sampling=sampling, profile="ci", **real)
    with pytest.raises(ValueError, match="root= is for real datasets"):
        I.implicit_data("train", profile="ci", root=real["root"])


def test_ch07_models_on_a_real_dataset_under_their_own_checkpoints(real, monkeypatch):
    tr = I.occnet_train_data("ci", **real)
    occnet, h = I.train_occnet(tr, epochs=1, profile="ci", progress=False)
    assert h.epochs_run == 1 and len(_checkpoints("ch07_occnet_occnet_mix-modelnet-ci-")) == 1
    te = I.implicit_data("test", profile="ci", **real)
    codes = I.encode(occnet, I.held_out_inputs(te, "ci"))
    assert codes.shape[0] == 4
    # scored against the repaired mesh: winding-number inside for the IoU, no part labels so no thin-part rows
    ev = I.evaluate_fields(occnet, codes, te, profile="ci", keep_meshes=1)
    m = ev["metrics"]
    assert {"iou", "cd_l1", "nc", "fscore"} <= set(m) and not {"thin_cd", "thin_recall"} & set(m)
    assert all(v.shape == (4,) and bool(torch.isfinite(v).all()) for v in m.values()) and ev["thin_index"] == []
    assert bool(((m["iou"] >= 0) & (m["iou"] <= 1)).all())
    assert torch.allclose(I.held_out_iou(occnet, te, "ci"), m["iou"])  # the same points, the same mesh inside
    oracle = I.oracle_chamfer(te)
    assert oracle.shape == (4,) and bool((oracle > 0).all()) and bool(torch.isfinite(oracle).all())
    assert I.retrieved_iou(te, te, [0, 1, 2, 3], n=512).tolist() == [1.0] * 4  # a mesh retrieved for itself
    sdf = I.implicit_data("train", kind="sdf", sampling="deepsdf", categories=("chair",), profile="ci", **real)
    _, h2 = I.train_deepsdf(sdf, epochs=1, profile="ci", progress=False)
    assert h2.epochs_run == 1 and len(_checkpoints("ch07_deepsdf_real-near80-modelnet-ci-")) == 1
    assert all("-modelnet-ci-" in n for n in _checkpoints("ch07_"))
    # through COURSE_DATASET: the same rows and the same checkpoint (loaded, not trained again)
    before = _checkpoints("ch07_")
    through_env(monkeypatch, real)
    env = I.occnet_train_data("ci")
    assert torch.equal(env["query"], tr["query"]) and torch.equal(env["occupancy"], tr["occupancy"])
    I.train_occnet(env, epochs=1, profile="ci", progress=False)
    assert _checkpoints("ch07_") == before


# --- chapter 08 ------------------------------------------------------------------

def test_ch08_primitives_on_a_real_dataset(real, monkeypatch):
    n = config.size("ch08.n_points", "ci")
    tr, va, te = (PR.primitive_data(s, "ci", **real) for s in ("train", "val", "test"))
    assert tr["points"].shape == (6, n, 3) and tr["target_points"].shape == (6, n, 3)
    assert set(tr["categories"]) == {"chair", "table"} and tr["dataset"] == "modelnet"
    assert va["points"].shape[0] == 2 and te["points"].shape[0] == 4
    model, hist = PR.train_primitives("cuboid", "reorder", tr, val=va, profile="ci", epochs=1, progress=False,
                                      live_plot=False)
    assert hist.epochs_run == 1
    names = _checkpoints("ch08_")
    assert len(names) == 1 and names[0].startswith("ch08_cuboid_reorder_s0-modelnet-ci-")
    prims = PR.predict_primitives(model, te["points"])
    assert prims.prob.shape == (4, config.size("ch08.n_primitives", "ci"))
    with pytest.raises(NotImplementedError, match="evaluate_primitives .*cannot run on modelnet"):
        PR.evaluate_primitives(model, te, profile="ci")
    res = PR.evaluate_primitives(model, te, profile="ci", iou=False)  # what needs only the target points
    assert set(res) == {"chamfer", "used", "expected"} and all(v.shape == (4,) for v in res.values())
    assert bool(torch.isfinite(res["chamfer"]).all()) and bool((res["used"] >= 1).all())
    through_env(monkeypatch, real)
    env = PR.primitive_data("train", "ci")
    PR.train_primitives("cuboid", "reorder", env, val=PR.primitive_data("val", "ci"), profile="ci", epochs=1,
                        progress=False, live_plot=False)
    assert _checkpoints("ch08_") == names  # the same file, loaded


def test_ch08_and_ch04_on_a_shapenetcore_layout(real, tmp_path, monkeypatch):
    sroot = tmp_path / "ShapeNetCore"
    for cat in ("chair", "table", "mug"):
        for k in range(12):  # ShapeNetCore's split by model id: 10 train, 1 val, 1 test mesh per category
            f = sroot / SHAPENET_SYNSETS[cat] / f"model{k:03d}" / "models" / "model_normalized.obj"
            f.parent.mkdir(parents=True)
            m = trimesh.creation.box((0.6 + 0.03 * k, 1.0, 0.5))
            f.write_text("\n".join([*[f"v {a} {b} {c}" for a, b, c in m.vertices],
                                    *[f"f {a + 1} {b + 1} {c + 1}" for a, b, c in m.faces]]) + "\n")
    assert common.use_dataset("shapenetcore", str(sroot)) == "shapenetcore"
    tr = PR.primitive_data("train", "ci")
    assert tr["dataset"] == "shapenetcore" and tr["points"].shape[0] == 6 and set(tr["category"]) == {"chair", "table"}
    vox = O.octree_data("test", "ci")
    assert vox["dataset"] == "shapenetcore" and vox["voxels"].shape[1:] == (16, 16, 16)
    assert "-shapenetcore-ci-" in O._ckpt("ch04_ogn_ae", "ci", vox, 0, "cosine-v1").name


def test_lite_rows_keep_their_names_and_parts(real):
    """ShapeNet-lite's rows are unchanged: no dataset tag, part labels in chapter 06, names without a dataset."""
    d = S.surface_dataset(["mug"], "train", 1, 16)
    assert "dataset" not in d and "parts" in d and "part" in d
    assert "-modelnet-" not in S.checkpoint_path("ae-psg", d, "ci").name
    assert common.dataset_checkpoint_name("x", d) == "x"
    assert common.dataset_checkpoint_name("x", {"path": ["a"], "dataset": "modelnet"}) == "x-modelnet"


@pytest.mark.parametrize("bench", ["octrees", "surfaces", "implicit", "primitives"])
def test_benchmarks_take_the_dataset_switch(bench, tmp_path):
    """``--dataset`` / ``--root`` reach ``use_dataset`` in each benchmark: ShapeNet-lite with a root folder is
    refused before any work (an unknown option would fail in argparse with another message)."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{bench}.py"
    env = {"COURSE_PROFILE": "ci", "COURSE_RESULTS_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    bad = subprocess.run([sys.executable, str(script), "--dataset", "shapenet-lite", "--root", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode != 0 and "--root is for a real dataset" in bad.stderr, bad.stderr[-2000:]
    assert not list(tmp_path.glob("*.md"))


def test_a_real_test_split_is_guarded_like_shapenet_lite(real):
    """Protocol 2 on a real dataset: inside ``no_test_reads`` (a choice being made) its test split cannot be read."""
    from course_lib.data import TestSplitReadError, no_test_reads

    with no_test_reads("choosing on val"):
        assert PR.primitive_data("val", "ci", **real)["points"].shape[0] == 2
        for load in (lambda: PR.primitive_data("test", "ci", **real), lambda: O.octree_data("test", "ci", **real),
                     lambda: I.implicit_data("test", profile="ci", **real)):
            with pytest.raises(TestSplitReadError, match="modelnet's test split read while 'choosing on val'"):
                load()
    assert PR.primitive_data("test", "ci", **real)["points"].shape[0] == 4


def test_implicit_benchmark_runs_every_part_on_a_real_dataset(modelnet, tmp_path):
    # every part runs on the repaired meshes (fragments and checkpoints named after the dataset); the fixture's
    # 8 test shapes are too few for the comparisons, so the run ends there with one line and writes no results file
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "implicit.py"
    env = {"COURSE_PROFILE": "ci", "COURSE_RESULTS_DIR": str(tmp_path), "COURSE_DATA_DIR": str(tmp_path / "cache"),
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, str(script), "--dataset", "modelnet", "--root", str(modelnet)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "too few for a comparative claim" in out.stderr and "Traceback" not in out.stderr
    frags = sorted(p.name for p in (tmp_path / "cache" / "ch07").glob("bench-v2-ci-modelnet-*.json"))
    assert [f"bench-v2-ci-modelnet-{p}.json" for p in ("comparisons", "deepsdf", "mise", "occnet", "select_queries",
                                                          "select_sampling", "select_schedule", "select_shapes")] == frags
    sampling = json.loads((tmp_path / "cache" / "ch07" / "bench-v2-ci-modelnet-select_sampling.json").read_text())
    assert list(sampling["rows"]) == ["mix"]                       # the one sampling a real dataset has
    occnet = json.loads((tmp_path / "cache" / "ch07" / "bench-v2-ci-modelnet-occnet.json").read_text())
    assert "iou" in occnet["per_shape"] and "thin_recall" not in occnet["per_shape"]   # no part labels
    mise = json.loads((tmp_path / "cache" / "ch07" / "bench-v2-ci-modelnet-mise.json").read_text())
    assert any(k.startswith("mesh SDF, ") for k in mise)
    assert not list(tmp_path.glob("*.md"))
