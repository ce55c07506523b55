"""Preprocessing real datasets at scale (issue #35 item 3) on tiny fixture folders: worker processes give the
same arrays as one process, an interrupted run resumes (half-written and damaged cache files are rebuilt, intact
ones kept), the JSON manifest of skipped meshes is written, read back and retried on request, the command line
prints its summary, and the official splits (ModelNet's folders, a ShapeNet ``all.csv``) are used."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import torch
import trimesh
from _real_fixture import mesh as _mesh
from _real_fixture import names as _names
from _real_fixture import write_off as _write_off

from course_lib.data import real_split as RS
from course_lib.data.real import SHAPENET_SYNSETS, read_split_csv
from course_lib.data.real_split import RealShapes, manifest_file, read_manifest

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPS = ("points", "target_points", "sdf", "occupancy", "voxels", "image")
SIZES = {"n_points": 32, "n_target": 24, "n_sdf": 64, "voxel_resolution": 8, "image_size": 12, "profile": "ci"}


@pytest.fixture(scope="module")
def modelnet(tmp_path_factory):
    """chair: 3 boxes; airplane: 3 cylinders, an open tube (inside undecidable) and an empty file (unreadable);
    every name outside ModelNet's val, plus one test mesh per category."""
    root = tmp_path_factory.mktemp("prep") / "ModelNet"
    for cat, n in (("chair", 3), ("airplane", 4)):
        for k, name in enumerate(_names(cat, False, n)):
            _write_off(root / cat / "train" / name, _mesh(cat, k))
        _write_off(root / cat / "test" / f"{cat}_test.off", _mesh(cat, 5))
    tube = trimesh.creation.cylinder(radius=0.3, height=1.0, sections=10)
    keep = np.abs(tube.face_normals[:, 2]) < 0.5  # no caps: open at both ends
    _write_off(root / "airplane" / "train" / _names("airplane", False, 4)[-1],
               trimesh.Trimesh(tube.vertices, tube.faces[keep], process=False))
    (root / "airplane" / "train" / _names("zz_empty", False, 1)[0]).write_text("")
    return root


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(RS.ENV_WORKERS, raising=False)
    monkeypatch.delenv(RS.ENV_SPLIT_CSV, raising=False)
    return tmp_path / "cache"


def _counting_build(monkeypatch):
    """Record (file name, representation) of every representation built (in this process)."""
    calls: list[tuple[str, str]] = []
    build = RS._Builder.build

    def counted(self, rep, path, mesh):
        calls.append((path.name, rep))
        return build(self, rep, path, mesh)

    monkeypatch.setattr(RS._Builder, "build", counted)
    return calls


def test_workers_give_the_same_arrays_as_one_process(modelnet, cache, monkeypatch, tmp_path):
    one = RealShapes("modelnet", "train", REPS, root=modelnet, workers=1, **SIZES)
    a = one.stacked()
    assert one.summary["built"] == 6 and len(one) == 6
    assert sorted(m["path"].rsplit("/", 1)[1][:4] for m in one.manifest) == ["airp", "zz_e"]
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "cache2"))
    two = RealShapes("modelnet", "train", REPS, root=modelnet, workers=2, **SIZES)
    b = two.stacked()
    assert two.summary["built"] == 6 and two.summary["skipped_now"] == 2
    assert a.keys() == b.keys() and a["path"] == b["path"] and a["manifest"] == b["manifest"]
    for k, v in a.items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, b[k]), k
    # COURSE_WORKERS is the default; a bad count is an error naming it
    monkeypatch.setenv(RS.ENV_WORKERS, "3")
    assert RealShapes("modelnet", "train", ("points",), root=modelnet, **SIZES).workers == 3
    monkeypatch.setenv(RS.ENV_WORKERS, "zero")
    with pytest.raises(ValueError, match="COURSE_WORKERS must be a positive integer"):
        RealShapes("modelnet", "train", ("points",), root=modelnet, **SIZES)


def test_an_interrupted_run_resumes_and_rebuilds_only_what_is_missing_or_damaged(modelnet, cache, monkeypatch):
    build = RS._Builder.build
    n = {"calls": 0}

    def interrupted(self, rep, path, mesh):
        n["calls"] += 1
        if n["calls"] == 8:  # Ctrl-C in the middle of the second shape
            raise KeyboardInterrupt
        return build(self, rep, path, mesh)

    monkeypatch.setattr(RS._Builder, "build", interrupted)
    with pytest.raises(KeyboardInterrupt):
        RealShapes("modelnet", "train", REPS, root=modelnet, **SIZES)
    monkeypatch.setattr(RS._Builder, "build", build)
    files = sorted(cache.rglob("*.npz"))
    assert len(files) == 7 and not list(cache.rglob("*.tmp"))  # the first shape's 6 files, 1 of the second
    calls = _counting_build(monkeypatch)
    ds = RealShapes("modelnet", "train", REPS, root=modelnet, **SIZES)
    ref = ds.stacked()
    assert len(calls) == 6 * 6 - 7 and ds.summary["built"] == 5 and ds.summary["cached"] == 1
    # now damage the cache: a corrupt file, a half-written temporary file left next to a deleted one, a file of
    # another mesh copied over (wrong key), and an array of the wrong shape under the right key
    p0, p1, p2, p3 = (ds.entries[i][2] for i in range(4))
    f = ds._cache_file("points", p0)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    g = ds._cache_file("sdf", p1)
    tmp = g.with_name(g.name + ".abc123.tmp")
    tmp.write_bytes(g.read_bytes()[:100])
    os.utime(tmp, (time.time() - 7200, time.time() - 7200))  # left by a run killed two hours ago
    g.unlink()
    ds._cache_file("voxels", p3).write_bytes(ds._cache_file("voxels", p2).read_bytes())
    from course_lib.data.dataset import write_cache_file

    h = ds._cache_file("occupancy", p2)
    write_cache_file(h, {"occ_points": np.zeros((3, 3), np.float32), "occupancy": np.zeros(3, bool)},
                     ds._builder.key("occupancy", p2))
    calls.clear()
    again = RealShapes("modelnet", "train", REPS, root=modelnet, **SIZES)
    out = again.stacked()
    assert sorted(calls) == sorted([(p0.name, "points"), (p1.name, "sdf"), (p3.name, "voxels"),
                                    (p2.name, "occupancy")])
    assert g.is_file() and not tmp.exists()  # rebuilt under its name; the stale temporary file removed
    for k, v in ref.items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(v, out[k]), k
    calls.clear()
    RealShapes("modelnet", "train", REPS, root=modelnet, **SIZES).stacked()
    assert calls == []  # all intact now


def test_the_manifest_is_written_read_back_and_retried_on_request(modelnet, cache, monkeypatch):
    ds = RealShapes("modelnet", "train", ("occupancy",), root=modelnet, categories=["airplane"], **SIZES)
    ds.prepare()
    data = json.loads(manifest_file("modelnet").read_text())
    skipped = {e["path"].rsplit("/", 1)[1]: e for e in data["skipped"]}
    assert len(skipped) == 2 and {e["category"] for e in skipped.values()} == {"airplane"}
    empty = next(k for k in skipped if k.startswith("zz_empty"))
    tube = next(k for k in skipped if not k.startswith("zz_empty"))
    assert "could not be read" in skipped[empty]["reason"] and skipped[empty]["kind"] == "read"
    assert "undecidable" in skipped[tube]["reason"] and skipped[tube]["kind"] == "inside"
    assert {m["reason"] for m in ds.manifest} == {e["reason"] for e in skipped.values()}
    # the next run skips them without reading them
    read = []
    mesh = RS._Builder.mesh
    monkeypatch.setattr(RS._Builder, "mesh", lambda self, path: read.append(path.name) or mesh(self, path))
    again = RealShapes("modelnet", "train", ("occupancy",), root=modelnet, categories=["airplane"], **SIZES)
    again.prepare()
    assert read == [] and again.summary["skipped_known"] == 2 and again.manifest == ds.manifest
    # surface points need no inside: the tube is used, the unreadable file stays skipped without being read
    pts = RealShapes("modelnet", "train", ("points",), root=modelnet, categories=["airplane"], **SIZES)
    pts.prepare()
    assert tube in read and empty not in read and len(pts) == 4  # 3 cylinders, the tube
    assert [m["path"].rsplit("/", 1)[1] for m in pts.manifest] == [empty]
    # retry_skipped looks again: with a looser rule the tube now passes and leaves the manifest
    read.clear()
    monkeypatch.setattr(RS, "MAX_AMBIGUOUS", 1.0)
    kept = RealShapes("modelnet", "train", ("occupancy",), root=modelnet, categories=["airplane"], **SIZES)
    assert read == [] and len(kept) == 3  # without retry: still skipped
    retried = RealShapes("modelnet", "train", ("occupancy",), root=modelnet, categories=["airplane"],
                         retry_skipped=True, **SIZES)
    assert sorted(read) == sorted([empty, tube]) and len(retried) == 4
    assert [e["path"].rsplit("/", 1)[1] for e in read_manifest("modelnet").values()] == [empty]
    # shapes_per_category counts kept meshes only, and a known skip is not read again
    read.clear()
    monkeypatch.setattr(RS, "MAX_AMBIGUOUS", 0.02)
    first = RealShapes("modelnet", "train", ("occupancy",), root=modelnet, categories=["airplane"],
                       shapes_per_category=2, **SIZES)
    assert len(first) == 2 and read == []  # cached: neither read nor checked again


def test_the_command_line_prints_the_summary(modelnet, cache, capsys):
    assert RS.main(["--dataset", "modelnet", "--root", str(modelnet), "--split", "train", "test", "--workers", "1",
                    "--representations", "points", "voxels", "--profile", "ci", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "modelnet train (points, voxels; 1 worker(s)): 6 shapes ready (6 built now, 0 already cached), " \
           "2 skipped (2 now, 0 known from the manifest)" in out
    assert "modelnet test" in out and "shapes/s" in out and "skipped 1: could not be read or repaired" in out
    assert str(manifest_file("modelnet")) in out
    RS.main(["--dataset", "modelnet", "--root", str(modelnet), "--representations", "points", "voxels",
             "--profile", "ci", "--no-progress", "--workers", "1"])
    assert "6 shapes ready (0 built now, 6 already cached), 2 skipped (0 now, 2 known" in capsys.readouterr().out


def test_the_command_line_says_how_to_resume_after_an_interruption(modelnet, cache, capsys, monkeypatch):
    def interrupted(self, rep, path, mesh):
        raise KeyboardInterrupt

    monkeypatch.setattr(RS._Builder, "build", interrupted)
    assert RS.main(["--dataset", "modelnet", "--root", str(modelnet), "--representations", "points",
                    "--profile", "ci", "--no-progress", "--workers", "1"]) == 130
    assert "interrupted (modelnet train): what is finished is cached; run the same command again to resume" in \
        capsys.readouterr().err


def test_modelnet_uses_its_train_and_test_folders(modelnet, cache):
    test = RealShapes("modelnet", "test", ("points",), root=modelnet, **SIZES)
    assert sorted(e[2].name for e in test.entries) == ["airplane_test.off", "chair_test.off"]
    train = RealShapes("modelnet", "train", ("points",), root=modelnet, **SIZES)
    val = RealShapes("modelnet", "val", ("points",), root=modelnet, **SIZES)
    assert len(val) == 0 and all(e[2].parent.name == "train" for e in train.entries) and len(train) == 8
    with pytest.raises(ValueError, match="ModelNet's splits are its train and test folders"):
        RealShapes("modelnet", "train", ("points",), root=modelnet, split_csv="all.csv", **SIZES)


def _shapenet(root, models):
    syn = SHAPENET_SYNSETS["chair"]
    for m in models:
        f = root / syn / m / "models" / "model_normalized.obj"
        f.parent.mkdir(parents=True)
        box = trimesh.creation.box((1, 0.5, 0.8))
        f.write_text("\n".join([*[f"v {a} {b} {c}" for a, b, c in box.vertices],
                                *[f"f {a + 1} {b + 1} {c + 1}" for a, b, c in box.faces]]) + "\n")
    return syn


def test_a_shapenet_split_csv_assigns_the_shapes_it_names(tmp_path, cache, monkeypatch):
    root = tmp_path / "ShapeNetCore"
    models = [f"m{i}" for i in range(6)]
    syn = _shapenet(root, models)
    csv = tmp_path / "all.csv"
    csv.write_text("id,synsetId,subSynsetId,modelId,split\n"
                   f"1,{syn},{syn},m0,train\n2,{syn},{syn},m1,train\n3,{int(syn)},{syn},m2,val\n"
                   f"4,{syn},{syn},m3,test\n5,{syn},{syn},m5,test\n6,04379243,04379243,m4,train\n")
    assert read_split_csv(csv)[(syn, "m2")] == "val"  # the synset id without its leading zero
    got = {s: sorted(e[2].parts[-3] for e in RealShapes("shapenetcore", s, ("points",), root=root,
                                                          split_csv=csv, **SIZES).entries)
           for s in ("train", "val", "test")}
    assert got == {"train": ["m0", "m1"], "val": ["m2"], "test": ["m3", "m5"]}  # m4 is a table's id in the file
    monkeypatch.setenv(RS.ENV_SPLIT_CSV, str(csv))
    assert len(RealShapes("shapenetcore", "test", ("points",), root=root, **SIZES)) == 2
    monkeypatch.delenv(RS.ENV_SPLIT_CSV)
    import zlib

    default = sorted(e[2].parts[-3] for e in RealShapes("shapenetcore", "test", ("points",), root=root,
                                                          **SIZES).entries)
    assert default == sorted(m for m in models if zlib.crc32(m.encode()) % 10 == 0)  # the documented split
    for text, match in (("id,synsetId,modelId\n1,x,y\n", "columns split missing"),
                        (f"id,synsetId,subSynsetId,modelId,split\n1,{syn},{syn},m0,training\n", "line 2: split must"),
                        (f"id,synsetId,subSynsetId,modelId,split\n1,{syn},{syn},m0,train\n2,{syn},{syn},m0,test\n",
                         "in two splits")):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(ValueError, match=match):
            RealShapes("shapenetcore", "train", ("points",), root=root, split_csv=bad, **SIZES)
