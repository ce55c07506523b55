"""ShapeNetLite dataset: splits, representations, per-profile sizes, the on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import course_lib.data.dataset as dsmod
from course_lib import config
from course_lib.data import CATEGORIES, SPLITS, ShapeNetLite, make_shape, split_seeds

SMALL = dict(n_points=64, n_sdf=100, voxel_resolution=8, image_size=12, shapes_per_category=1)


def test_splits_disjoint():
    for profile in config.PROFILES:
        seeds = {s: set(split_seeds(s, config.size(f"data.shapes_per_category_{s}", profile))) for s in SPLITS}
        assert not seeds["train"] & seeds["val"]
        assert not seeds["train"] & seeds["test"]
        assert not seeds["val"] & seeds["test"]
        items = {s: set(ShapeNetLite(s, profile=profile, cache=False).items) for s in SPLITS}
        assert not items["train"] & items["val"] and not items["val"] & items["test"]
        assert not items["train"] & items["test"]
    # even the largest allowed splits are disjoint
    from course_lib.data.splits import MAX_PER_SPLIT

    assert max(split_seeds("train", MAX_PER_SPLIT)) < min(split_seeds("val", 1))
    with pytest.raises(ValueError):
        split_seeds("train", MAX_PER_SPLIT + 1)


def test_sizes_per_profile():
    for profile in config.PROFILES:
        ds = ShapeNetLite("val", ("points",), profile=profile, cache=False)
        assert len(ds) == len(CATEGORIES) * config.size("data.shapes_per_category_val", profile)
        assert ds.n_points == config.size("data.n_surface_points", profile)


def test_all_representations(tmp_path):
    ds = ShapeNetLite("test", ("points", "sdf", "occupancy", "voxels", "image"), categories=["mug", "chair"],
                      cache_dir=tmp_path, **SMALL)
    assert len(ds) == 2
    item = ds[0]
    assert item["category"] == "chair" and item["label"] == CATEGORIES.index("chair")  # CATEGORIES order
    assert item["seed"] == 3_000_000
    expect = {"points": (64, 3), "normals": (64, 3), "sdf_points": (100, 3), "sdf": (100,),
              "occ_points": (100, 3), "occupancy": (100,), "voxels": (8, 8, 8), "rgb": (3, 12, 12),
              "depth": (12, 12), "silhouette": (12, 12), "K": (3, 3), "Rt": (3, 4)}
    for k, shp in expect.items():
        assert tuple(item[k].shape) == shp, k
        assert item[k].dtype == torch.float32, k
    shape = make_shape("chair", 3_000_000)
    torch.testing.assert_close(item["sdf"], shape.sdf(item["sdf_points"]))
    torch.testing.assert_close(item["occupancy"], (shape.sdf(item["occ_points"]) < 0).float())
    assert set(item["voxels"].unique().tolist()) <= {0.0, 1.0}
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["points"].shape == (2, 64, 3) and batch["label"].tolist() == [0, CATEGORIES.index("mug")]


def test_same_items_without_cache():
    a = ShapeNetLite("train", ("points", "sdf"), categories=["lamp"], cache=False, **SMALL)[0]
    b = ShapeNetLite("train", ("points", "sdf"), categories=["lamp"], cache=False, **SMALL)[0]
    for k in ("points", "normals", "sdf_points", "sdf"):
        assert torch.equal(a[k], b[k])


def test_cache_is_used(tmp_path, monkeypatch):
    ds = ShapeNetLite("train", ("points", "image"), categories=["car"], cache_dir=tmp_path, **SMALL)
    first = ds[0]
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert len(files) == 2 and all(f.endswith(".npz") for f in files)  # no temporary files left
    assert f"v{dsmod.GENERATOR_VERSION}" in str(ds.cache_path("points", "car", 0))

    def boom(*args, **kwargs):
        raise AssertionError("should have been read from the cache")

    monkeypatch.setattr(dsmod, "make_shape", boom)
    again = ShapeNetLite("train", ("points", "image"), categories=["car"], cache_dir=tmp_path, **SMALL)[0]
    for k in ("points", "normals", "rgb", "depth", "K", "Rt"):
        assert torch.equal(first[k], again[k])


def test_cache_dir_from_config(tmp_path, monkeypatch):
    monkeypatch.setenv(config.ENV_CACHE, str(tmp_path))
    ShapeNetLite("train", ("voxels",), categories=["bench"], **SMALL)[0]
    assert list(tmp_path.rglob("voxels-r8.npz"))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "wrong_shape", "wrong_key", "nan"])
def test_corrupt_cache_is_rebuilt(tmp_path, damage):
    ds = ShapeNetLite("val", ("sdf",), categories=["table"], cache_dir=tmp_path, **SMALL)
    good = ds[0]
    path = ds.cache_path("sdf", "table", 1_000_000)
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(raw[:200] + bytes(len(raw) - 200))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "wrong_shape":
        dsmod.write_cache_file(path, {"sdf_points": np.zeros((5, 3), np.float32), "sdf": np.zeros(5, np.float32)},
                               f"shapenet_lite/v{dsmod.GENERATOR_VERSION}/table/1000000/{path.stem}")
    elif damage == "wrong_key":
        dsmod.write_cache_file(path, {"sdf_points": np.zeros((100, 3), np.float32), "sdf": np.zeros(100, np.float32)},
                               "shapenet_lite/v0/table/1000000/old")
    else:
        arrays = {"sdf_points": good["sdf_points"].numpy(), "sdf": good["sdf"].numpy().copy()}
        arrays["sdf"][3] = np.nan
        dsmod.write_cache_file(path, arrays, f"shapenet_lite/v{dsmod.GENERATOR_VERSION}/table/1000000/{path.stem}")
    again = ShapeNetLite("val", ("sdf",), categories=["table"], cache_dir=tmp_path, **SMALL)[0]
    assert torch.equal(good["sdf"], again["sdf"]) and torch.equal(good["sdf_points"], again["sdf_points"])
    assert path.read_bytes() == raw  # the file was rewritten correctly


def test_flipped_byte_fails_crc(tmp_path):
    ds = ShapeNetLite("val", ("points",), categories=["mug"], cache_dir=tmp_path, **SMALL)
    good = ds[0]
    path = ds.cache_path("points", "mug", 1_000_000)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3] ^= 0xFF  # inside the stored (uncompressed) array data
    path.write_bytes(bytes(raw))
    name, spec = ds._spec("points", "mug", 1_000_000)
    key = f"shapenet_lite/v{dsmod.GENERATOR_VERSION}/mug/1000000/{name}"
    assert dsmod.read_cache_file(path, key, spec) is None  # zip CRC mismatch: not trusted
    again = ShapeNetLite("val", ("points",), categories=["mug"], cache_dir=tmp_path, **SMALL)[0]
    assert torch.equal(good["points"], again["points"]) and torch.equal(good["normals"], again["normals"])


def test_errors():
    with pytest.raises(ValueError, match="split"):
        ShapeNetLite("training")
    with pytest.raises(ValueError, match="representation"):
        ShapeNetLite("train", ("mesh",))
    with pytest.raises(ValueError) as err:
        ShapeNetLite("train", categories=["chair", "spaceship"])
    assert "spaceship" in str(err.value) and "airplane" in str(err.value)
    with pytest.raises(ValueError, match="view"):
        ShapeNetLite("train", ("image",), view="front")
    ds = ShapeNetLite("train", cache=False, **SMALL)
    with pytest.raises(IndexError):
        ds[len(ds)]
