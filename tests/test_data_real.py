"""Real-data loaders (ModelNet OFF, ShapeNetCore v2 OBJ) on tiny fixture files written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from course_lib.data import ModelNet, ShapeNetCore, load_mesh, normalize_mesh, read_obj, read_off
from course_lib.data.real import ENV_MODELNET, ENV_SHAPENET, SHAPENET_SYNSETS

# a unit cube [0, 2] x [0, 1] x [0, 1] + 5 as quads (OFF) -- offset and anisotropic on purpose
CUBE_V = np.array([[x, y, z] for x in (0, 2) for y in (0, 1) for z in (0, 1)], float) + 5.0
CUBE_QUADS = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]


def write_off(path, verts, faces, merged_header=False):
    lines = ["OFF" + (f"{len(verts)} {len(faces)} 0" if merged_header else "")]
    if not merged_header:
        lines += ["# a comment", f"{len(verts)} {len(faces)} 0"]
    lines += [" ".join(f"{c:.6f}" for c in v) for v in verts]
    lines += [f"{len(f)} " + " ".join(str(i) for i in f) for f in faces]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def write_obj(path, verts, faces):
    lines = ["# test", "mtllib model_normalized.mtl", "o part"]
    lines += ["v " + " ".join(f"{c:.6f}" for c in v) for v in verts]
    lines += ["vt 0 0", "vn 0 0 1"]
    for k, f in enumerate(faces):  # mix the index forms, including negative indices
        if k % 3 == 0:
            toks = [f"{i + 1}/1/1" for i in f]
        elif k % 3 == 1:
            toks = [f"{i + 1}//1" for i in f]
        else:
            toks = [str(i - len(verts)) for i in f]
        lines.append("f " + " ".join(toks))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def check_normalised(mesh):
    v = np.asarray(mesh.vertices)
    np.testing.assert_allclose(0.5 * (v.min(0) + v.max(0)), 0.0, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1).max(), 1.0, rtol=1e-9)


def test_read_off_and_obj_match_trimesh(tmp_path):
    write_off(tmp_path / "a.off", CUBE_V, CUBE_QUADS)
    write_off(tmp_path / "b.off", CUBE_V, CUBE_QUADS, merged_header=True)
    write_obj(tmp_path / "c.obj", CUBE_V, CUBE_QUADS)
    ref = trimesh.load(tmp_path / "a.off", force="mesh", process=False)  # independent reader
    for name in ("a.off", "b.off", "c.obj"):
        m = read_off(tmp_path / name) if name.endswith("off") else read_obj(tmp_path / name)
        assert len(m.faces) == 12 and m.is_watertight
        np.testing.assert_allclose(m.vertices, CUBE_V, atol=1e-6)
        np.testing.assert_allclose(abs(m.volume), 2.0, rtol=1e-9)
        np.testing.assert_allclose(m.area, ref.area, rtol=1e-9)


def test_bad_files(tmp_path):
    (tmp_path / "x.off").write_text("PLY\n1 2 3\n")
    with pytest.raises(ValueError, match="not an OFF"):
        read_off(tmp_path / "x.off")
    (tmp_path / "t.off").write_text("OFF\n8 6 0\n0 0 0\n")
    with pytest.raises(ValueError, match="truncated"):
        read_off(tmp_path / "t.off")
    (tmp_path / "m.stl").write_text("solid")
    with pytest.raises(ValueError, match="unsupported"):
        load_mesh(tmp_path / "m.stl")
    with pytest.raises(FileNotFoundError):
        load_mesh(tmp_path / "missing.off")


def test_normalisation(tmp_path):
    write_off(tmp_path / "a.off", CUBE_V, CUBE_QUADS)
    m = load_mesh(tmp_path / "a.off")
    check_normalised(m)
    raw = read_off(tmp_path / "a.off")
    _, center, scale = normalize_mesh(raw)
    np.testing.assert_allclose(center, [6.0, 5.5, 5.5])
    np.testing.assert_allclose(scale, 1 / np.linalg.norm([1.0, 0.5, 0.5]))


@pytest.fixture
def modelnet_root(tmp_path):
    root = tmp_path / "ModelNet10"
    ico = trimesh.creation.icosphere(1)
    for cat, n_train, n_test in (("chair", 2, 1), ("bathtub", 1, 1)):
        for split, n in (("train", n_train), ("test", n_test)):
            for i in range(n):
                if cat == "chair":
                    write_off(root / cat / split / f"{cat}_{i:04d}.off", CUBE_V * (i + 1), CUBE_QUADS, merged_header=i == 1)
                else:
                    write_off(root / cat / split / f"{cat}_{i:04d}.off", ico.vertices * 3 + 1, ico.faces)
    return root


def test_modelnet(modelnet_root, monkeypatch):
    ds = ModelNet(modelnet_root, "train", representations=("points", "voxels"), n_points=50, voxel_resolution=8)
    assert ds.categories == ("bathtub", "chair") and len(ds) == 3
    item = ds[1]
    assert item["category"] == "chair" and item["label"] == 1
    assert item["points"].shape == (50, 3) and item["normals"].shape == (50, 3)
    assert item["voxels"].shape == (8, 8, 8) and item["voxels"].sum() > 0
    # the points lie on the normalised mesh
    mesh = ds.mesh(1)
    check_normalised(mesh)
    _, d, _ = trimesh.proximity.closest_point(mesh, item["points"].double().numpy())
    assert d.max() < 1e-5
    assert torch.equal(ds[1]["points"], item["points"])  # reproducible
    assert len(ModelNet(modelnet_root, "test", categories=["bathtub"])) == 1
    monkeypatch.setenv(ENV_MODELNET, str(modelnet_root))
    assert len(ModelNet(split="test")) == 2


def test_modelnet_errors(modelnet_root, tmp_path, monkeypatch):
    with pytest.raises(ValueError) as err:
        ModelNet(modelnet_root, categories=["sofa"])
    assert "sofa" in str(err.value) and "bathtub" in str(err.value) and "chair" in str(err.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ModelNet(tmp_path / "nowhere")
    monkeypatch.delenv(ENV_MODELNET, raising=False)
    with pytest.raises(FileNotFoundError, match=ENV_MODELNET):
        ModelNet()
    with pytest.raises(ValueError, match="split"):
        ModelNet(modelnet_root, "val")


@pytest.fixture
def shapenet_root(tmp_path):
    root = tmp_path / "ShapeNetCore.v2"
    for cat in ("chair", "mug"):
        for i in range(12):
            write_obj(root / SHAPENET_SYNSETS[cat] / f"model{i:03d}" / "models" / "model_normalized.obj",
                      CUBE_V * (1 + 0.1 * i), CUBE_QUADS)
    (root / SHAPENET_SYNSETS["chair"] / "broken_no_obj").mkdir()
    return root


def test_shapenet(shapenet_root, monkeypatch):
    splits = {s: ShapeNetCore(shapenet_root, s, n_points=20) for s in ("train", "val", "test")}
    paths = {s: {e[2] for e in ds.entries} for s, ds in splits.items()}
    assert sum(len(p) for p in paths.values()) == 24  # every model in exactly one split
    assert not paths["train"] & paths["val"] and not paths["train"] & paths["test"] and not paths["val"] & paths["test"]
    ds = ShapeNetCore(shapenet_root, "train", categories=["mug"], n_points=20)
    assert ds.categories == ("chair", "mug")
    item = ds[0]
    assert item["category"] == "mug" and item["label"] == 1 and item["points"].shape == (20, 3)
    check_normalised(ds.mesh(0))
    by_id = ShapeNetCore(shapenet_root, "train", categories=[SHAPENET_SYNSETS["mug"]], n_points=20)
    assert [e[2] for e in by_id.entries] == [e[2] for e in ds.entries]
    monkeypatch.setenv(ENV_SHAPENET, str(shapenet_root))
    assert len(ShapeNetCore(split="test")) == len(splits["test"])


def test_shapenet_errors(shapenet_root, monkeypatch):
    with pytest.raises(ValueError) as err:
        ShapeNetCore(shapenet_root, categories=["airplane"])
    assert "airplane" in str(err.value) and "chair" in str(err.value) and "mug" in str(err.value)
    monkeypatch.delenv(ENV_SHAPENET, raising=False)
    with pytest.raises(FileNotFoundError, match=ENV_SHAPENET):
        ShapeNetCore()
    with pytest.raises(ValueError, match="representation"):
        ShapeNetCore(shapenet_root, representations=("sdf",))
