"""Chapters 03 (voxels) and 05 (point sets) on a real dataset: a tiny ModelNet-style fixture, ci profile.

The fixture (``tests/_real_fixture.py``) has the ci profile's categories (chair, airplane) as folders of small
trimesh primitives, named so that each category has training, validation (ModelNet's val: CRC32 of the name mod
10 == 0) and test meshes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from _real_fixture import real_env, write_modelnet

from course_lib import config
from course_lib.data.real import ENV_MODELNET
from course_lib.data.real_split import ENV_DATASET
from course_lib.experiments import common
from course_lib.experiments import point_sets as ps
from course_lib.experiments import voxels as V

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def modelnet(tmp_path_factory):
    return write_modelnet(tmp_path_factory.mktemp("real") / "ModelNet", ("chair", "airplane"))


@pytest.fixture()
def real(modelnet, tmp_path_factory, monkeypatch):
    """The ci profile, a cache shared by this module's tests, no COURSE_DATASET."""
    return real_env(monkeypatch, tmp_path_factory.getbasetemp() / "real_cache", modelnet)


def _checkpoints() -> list[str]:
    d = config.cache_dir() / "checkpoints"
    return sorted(p.name for p in d.glob("*.pt")) if d.is_dir() else []


# --- chapter 03 ------------------------------------------------------------------

def test_ch03_data_from_a_real_dataset(real, monkeypatch):
    s = config.sizes("ci", prefix="ch03.")
    R, H = s["resolution"], s["image_size"]
    tr = V.voxel_data("train", "ci", image=True, surface=True, **real)
    assert tr["voxels"].shape == (6, R, R, R) and tr["rgb"].shape == (6, 3, H, H)
    assert tr["target_points"].shape == (6, s["n_target"], 3)
    assert set(tr["categories"]) == {"chair", "airplane"} and tr["dataset"] == "modelnet"
    assert sorted(tr["label"].tolist()) == [0, 0, 0, 1, 1, 1]
    assert all(tr["categories"][int(i)] == c for i, c in zip(tr["label"], tr["category"]))
    assert set(torch.unique(tr["voxels"]).tolist()) == {0.0, 1.0} and 0.02 < float(tr["voxels"].mean()) < 0.5
    assert float(tr["rgb"].std()) > 0  # rendered, not blank
    va, te = V.voxel_data("val", "ci", **real), V.voxel_data("test", "ci", **real)
    assert va["voxels"].shape[0] == 2 and te["voxels"].shape[0] == 4
    assert not set(va["path"]) & set(tr["path"]) and not set(te["path"]) & set(tr["path"])
    # the same rows through COURSE_DATASET and COURSE_MODELNET_DIR
    monkeypatch.setenv(ENV_DATASET, "modelnet")
    monkeypatch.setenv(ENV_MODELNET, real["root"])
    env = V.voxel_data("train", "ci", image=True, surface=True)
    assert torch.equal(env["voxels"], tr["voxels"]) and torch.equal(env["rgb"], tr["rgb"])


def test_ch03_models_train_on_a_real_dataset_under_its_own_checkpoints(real, monkeypatch):
    tr = V.voxel_data("train", "ci", image=True, **real)
    va = V.voxel_data("val", "ci", image=True, **real)
    lite = V.checkpoint_path("ae", "ci")
    assert "modelnet" not in lite.name
    paths = {}
    for task, train in (("ae", V.train_autoencoder), ("svr", V.train_single_view), ("voxnet", V.train_voxnet)):
        paths[task] = path = V.checkpoint_path(task, "ci", tr)
        assert path.name.startswith(f"ch03_{task}-modelnet-ci-") and path != V.checkpoint_path(task, "ci")
        model, hist = train("ci", data=tr, val_data=va, progress=False)  # the ci recipe: 3-4 epochs
        assert hist.epochs_run >= 1 and path.is_file()
        if task == "ae":
            assert V.predict(model, va["voxels"]).shape == va["voxels"].shape
        if task == "svr":
            assert V.predict(model, va["rgb"]).shape == va["voxels"].shape
    assert all("-modelnet-" in n for n in _checkpoints())
    # COURSE_DATASET gives the same names (train.checkpoint_path adds the dataset itself)
    monkeypatch.setenv(ENV_DATASET, "modelnet")
    assert all(V.checkpoint_path(task, "ci", tr) == p for task, p in paths.items())


def test_ch03_lite_only_parts_refuse_naming_the_dataset(real):
    te = V.voxel_data("test", "ci", surface=True, **real)
    assert te["voxels"].shape[0] == 4 and te["target_points"].shape[0] == 4
    for resolution in (None, 8):  # the floor can rebuild shapes from (category, seed): ShapeNet-lite only
        with pytest.raises(NotImplementedError, match="representation_floor .*cannot run on modelnet"):
            V.representation_floor(te, resolution=resolution)


# --- chapter 05 ------------------------------------------------------------------

def test_ch05_autoencoder_on_a_real_dataset(real, monkeypatch):
    s = config.sizes("ci", prefix="ch05.")
    P = config.size("data.n_surface_points", "ci")
    tr, va = ps.train_data("ci", **real), ps.val_data("ci", **real)
    assert tr["points"].shape == (4, P, 3) and tr["target_points"].shape == (4, P, 3) and tr["dataset"] == "modelnet"
    assert va["points"].shape == (4, s["n_points"], 3)
    model, hist = ps.train_autoencoder("chamfer", "ci", data=tr, val=va, progress=False, epochs=1)
    assert hist.epochs_run == 1
    names = _checkpoints()
    assert names and all("-modelnet-ci-" in n for n in names)
    te = ps.test_data("ci", **real)
    assert te["oracle_points"].shape == (4, s["n_points"], 3)
    pred = common.predict(model, te["points"])
    assert pred.shape[0] == 4 and pred.shape[-1] == 3
    assert ps.even_reference("test", 16, profile="ci", **real).shape == (4, 16, 3)
    # the distance to the repaired mesh: the oracle's points are samples of that mesh (0 up to float rounding),
    # the same points pushed 0.05 along x are at most 0.05 away and, on these small closed solids, not on it
    dist = ps.surface_distances(te, {"oracle": te["oracle_points"],
                                     "shifted": te["oracle_points"] + torch.tensor([0.05, 0.0, 0.0])})
    assert dist["oracle"] < 1e-5 and 1e-3 < dist["shifted"] <= 0.05 + 1e-5
    # the same checkpoint name through COURSE_DATASET; ShapeNet-lite's never has the dataset's name
    extra = {**ps._overrides_spec({"epochs": 1}), "validation": ps.MONITOR["chamfer"]}
    explicit = ps.checkpoint_path("chamfer", "ci", dataset="modelnet", **extra)
    assert explicit.name in names and "modelnet" not in ps.checkpoint_path("chamfer", "ci", **extra).name
    monkeypatch.setenv(ENV_DATASET, "modelnet")
    assert ps.checkpoint_path("chamfer", "ci", **extra) == explicit


def test_ch05_single_view_on_a_real_dataset(real):
    H = config.size("data.image_size", "ci")
    tr, va = ps.view_data("train", "ci", **real), ps.view_data("val", "ci", **real)
    assert tr["rgb"].shape == (4, 3, H, H) and float(tr["rgb"].std()) > 0 and va["rgb"].shape[0] == 4
    model, hist = ps.train_single_view("ci", data=tr, val=va, progress=False, epochs=1)
    assert hist.epochs_run == 1
    assert any(n.startswith("ch05_psg_svr_chamfer-modelnet-ci-") for n in _checkpoints())


def test_use_dataset_sets_the_variables(real, monkeypatch, tmp_path):
    assert common.use_dataset(None, None) is None
    with pytest.raises(ValueError, match="--root is for a real dataset"):
        common.use_dataset(None, str(tmp_path))
    assert common.use_dataset("ModelNet40", real["root"]) == "modelnet"
    assert os.environ[ENV_DATASET] == "modelnet"
    assert os.environ[ENV_MODELNET] == str(Path(real["root"]).resolve())
