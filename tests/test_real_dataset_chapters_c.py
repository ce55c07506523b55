"""Chapters 09 (differentiable rendering) and 11 (evaluation) on a real dataset, ci profile, and
``tools/real_data_smoke.py``.

The fixture is the tiny ModelNet-style folder of ``tests/_real_fixture.py`` with the categories of these chapters'
ci sizes (chair, airplane; mug for chapter 09's per-shape fits).  Each test loads a chapter's shapes through
``dataset=`` / ``root=`` and through ``COURSE_DATASET``, checks that they are the real meshes (silhouettes from
ray casting the repaired mesh, surface samples of the rows' streams, winding-number inside), that models train
under checkpoints named after the dataset, and that the ShapeNet-lite defaults are unchanged.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _real_fixture import real_env, through_env, write_modelnet

from course_lib import config
from course_lib.data import Shape, TestSplitReadError, no_test_reads
from course_lib.experiments import common
from course_lib.experiments import evaluation as EV
from course_lib.experiments import rendering as R
from course_lib.experiments import silhouette_learning as SL
from course_lib.experiments.mesh_shape import MeshShape, row_shape

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CATEGORIES = ("chair", "airplane", "mug")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def modelnet(tmp_path_factory):
    return write_modelnet(tmp_path_factory.mktemp("real_c") / "ModelNet", CATEGORIES)


@pytest.fixture()
def real(modelnet, tmp_path_factory, monkeypatch):
    """The ci profile, a cache shared by this module's tests, no COURSE_DATASET."""
    return real_env(monkeypatch, tmp_path_factory.getbasetemp() / "real_c_cache", modelnet)


def _checkpoints(prefix: str) -> list[str]:
    d = config.cache_dir() / "checkpoints"
    return sorted(p.name for p in d.glob(f"{prefix}*.pt")) if d.is_dir() else []


# --- chapter 09: per-shape fits ------------------------------------------------------

def test_ch09_fits_take_real_meshes(real, monkeypatch):
    shapes = R.paired_shapes("test", ("chair", "mug"), 4, **real)
    assert [type(s) for s in shapes] == [MeshShape] * 4 and [s.category for s in shapes] == ["chair"] * 2 + ["mug"] * 2
    assert all(s.dataset == "modelnet" and s.parts == () for s in shapes)
    sh, size = shapes[0], 24
    # the target silhouette is the mesh ray cast from the view: the rows' ``image`` of the same view says the same
    view = (40.0, 25.0)
    sil, cams = R.target_views(sh, [view], size)
    row = common.load_split("test", "image", categories=["chair"], shapes_per_category=1, image_size=size,
                            view=(*view, R.CAMERA["distance"]), **real)
    assert row["path"][0] == sh.path and len(cams) == 1
    assert torch.equal(sil[0], row["silhouette"][0]) and 0.02 < float(sil.mean()) < 0.9
    # the rows' surface streams: the mesh's target samples are the rows' target points
    tp = common.load_split("test", "target_points", categories=["chair"], shapes_per_category=1, n_target=64, **real)
    assert torch.allclose(sh.sample_surface(64, stream=1)[0], tp["target_points"][0])
    # a fit and its score run on the mesh; the rendered views are cached under another key than a lite shape's
    res = R.fit_silhouettes(sil, cams, steps=2, level=1, sigma=1e-4)
    sc = R.score_fit(res, sh, [view], R.heldout_rig(2, 1), size, n_points=128)
    assert 0.0 <= sc["heldout_iou"] <= 1.0 and sc["chamfer"] > 0
    rgb, sil2, _ = R.shaded_views(sh, [view], size)
    assert rgb.shape == (1, 3, size, size) and torch.equal(sil2[0], sil[0])
    # COURSE_DATASET gives the same meshes; ShapeNet-lite stays the default
    lite = R.paired_shapes("test", ("chair",), 1)
    assert isinstance(lite[0], Shape)
    through_env(monkeypatch, real)
    assert [s.path for s in R.paired_shapes("test", ("chair", "mug"), 4)] == [s.path for s in shapes]


def test_ch09_real_shapes_refuse_clearly(real):
    with pytest.raises(ValueError, match="root= is for real datasets"):
        R.paired_shapes("test", ("chair",), 1, root=real["root"])
    with pytest.raises(ValueError, match="category 'chair' has 2 usable mesh"):
        R.paired_shapes("test", ("chair",), 3, **real)
    with no_test_reads("choosing sigma on val"):
        assert len(R.paired_shapes("val", ("chair",), 2, **real)) == 2
        with pytest.raises(TestSplitReadError, match="modelnet's test split read while 'choosing sigma on val'"):
            R.paired_shapes("test", ("chair",), 1, **real)


# --- chapter 09: learning across the dataset ------------------------------------------

def test_ch09_networks_learn_from_real_silhouettes(real, monkeypatch):
    s = config.sizes("ci", prefix="ch09.")
    tr, va = SL.learning_data("train", "ci", **real), SL.learning_data("val", "ci", **real)
    size, k = int(s["learn_image_size"]), int(s["learn_views"])
    assert tr["dataset"] == "modelnet" and len(tr["path"]) == 6  # 3 training meshes per category in the fixture
    assert tr["views"].shape == (6, k, size, size) and float(tr["views"].mean()) > 0.01
    assert tr["rgb"].shape[0] == 6 and float(tr["rgb"].std()) > 0 and va["views"].shape[0] == 4
    paths = {}
    for kind in SL.SUPERVISIONS:
        model, hist = SL.train_deformer(kind, tr, va, "ci", progress=False)
        assert hist.epochs_run >= 1
        paths[kind] = _checkpoints("ch09_learn_")
    names = _checkpoints("ch09_learn_")
    assert len(names) == 2 and all("-modelnet-ci-" in n for n in names)
    te = SL.learning_data("test", "ci", **real)
    sc = SL.score_deformer(model, te, "ci")
    assert len(sc["cd"]) == 4 and all(0.0 <= x <= 1.0 for x in sc["iou_heldout"])
    mon = SL.monitor_images({"m": model}, te, 0)
    assert mon["true"].shape == (2, size, size) and float(mon["true"].sum()) > 0
    assert isinstance(row_shape(te, 0), MeshShape) and row_shape(te, 0).path == te["path"][0]
    # through COURSE_DATASET: the same rows, the same checkpoints (loaded, not trained again)
    through_env(monkeypatch, real)
    env = SL.learning_data("train", "ci")
    assert torch.equal(env["views"], tr["views"]) and env["path"] == tr["path"]
    SL.train_deformer("3d", env, SL.learning_data("val", "ci"), "ci", progress=False)
    assert _checkpoints("ch09_learn_") == names


# --- chapter 11 ------------------------------------------------------------------

def test_ch11_eval_shapes_from_a_real_dataset(real, monkeypatch):
    s = config.sizes("ci", prefix="ch11.")
    ev = EV.eval_shapes("ci", per_category=2, **real)
    n, q = int(s["n_points"]), int(s["n_iou"])
    assert len(ev) == 4 and ev.category == ["chair", "chair", "airplane", "airplane"]
    assert all(isinstance(sh, MeshShape) for sh in ev.shapes) and ev.names()[0] == f"chair/{ev.seed[0]}"
    assert ev.target.shape == (4, n, 3) and ev.oracle.shape == (4, n, 3) and ev.iou_points.shape == (4, q, 3)
    assert not torch.equal(ev.target, ev.oracle)  # independent streams
    rows = common.load_split("test", ("target_points", "oracle_points"), categories=["chair", "airplane"],
                             shapes_per_category=2, n_target=n, **real)
    assert torch.allclose(ev.target, rows["target_points"]) and torch.allclose(ev.oracle, rows["oracle_points"])
    assert 0.01 < float(ev.iou_occupancy.float().mean()) < 0.5
    # the oracle scored as a reconstruction: every column computed against the mesh
    rec = EV.Reconstruction(points=ev.oracle[0], normals=ev.oracle_normals[0], occupancy=ev.shapes[0].occupancy)
    sc = EV.score(rec, ev, 0)
    assert sc["iou"] == 1.0 and 0 < sc["cd"] < 50 and sc["fscore"] > 0 and sc["emd"] > 0  # two samplings: > 0
    # COURSE_DATASET: the same shapes; root= without a real dataset is refused
    with pytest.raises(ValueError, match="root= is for real datasets"):
        EV.eval_shapes("ci", per_category=1, root=real["root"])
    through_env(monkeypatch, real)
    assert EV.eval_shapes("ci", per_category=2).names() == ev.names()


# --- tools/real_data_smoke.py --------------------------------------------------------

def test_real_data_smoke_runs_a_subset(modelnet, tmp_path):
    env = {"COURSE_PROFILE": "ci", "COURSE_DATA_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin",
           "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "real_data_smoke.py"), "--root", str(modelnet),
                          "--chapters", "07", "09", "11"], capture_output=True, text=True, env=env, timeout=300,
                         cwd=ROOT)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    for ch in ("07", "09", "11"):
        assert f"chapter {ch}: ok" in out.stdout
    assert "refuses" in out.stdout  # the parts that need exact shapes are listed with their refusal


def test_reference_voxels_of_a_real_mesh_follow_the_cell_centre_rule():
    """course_lib.data.voxelize of a real mesh (chapter 11's exact-voxel reference rows, chapter 03's floor): a cell is full when its centre is inside (here an
    icosphere of radius 0.6, against the analytic ball test at the centres, up to the facets' sag)."""
    import trimesh

    from course_lib.data import make_shape, voxelize
    from course_lib.data.samplers import voxel_centers
    from course_lib.experiments.mesh_shape import MeshShape

    ball = trimesh.creation.icosphere(subdivisions=4, radius=0.6)
    sh = MeshShape("mug", 0, "ball.off", "modelnet", ball)
    grid = voxelize(sh, 16)
    r = voxel_centers(16, 1.0).norm(dim=-1)
    sure = (r < 0.59) | (r > 0.601)  # away from the facets' sag (at most 0.6 * (1 - cos) of an edge's half-angle)
    assert grid.dtype == torch.bool and grid.shape == (16, 16, 16)
    assert torch.equal(grid[sure], (r < 0.6)[sure])
    shape = make_shape("chair", 0)  # a ShapeNet-lite shape: its exact occupancy at the centres
    c = voxel_centers(8, 1.0)
    assert torch.equal(voxelize(shape, 8), shape.occupancy(c.reshape(-1, 3)).reshape(8, 8, 8))
    with pytest.raises(TypeError, match="expected a course_lib.data.Shape"):
        voxelize(object(), 8)
