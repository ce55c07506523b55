import random

import numpy as np
import pytest
import torch

from course_lib import config


def test_profile_from_env(monkeypatch):
    for name in config.PROFILES:
        monkeypatch.setenv("COURSE_PROFILE", name)
        assert config.get_profile() == name
    monkeypatch.setenv("COURSE_PROFILE", " Laptop ")
    assert config.get_profile() == "laptop"


def test_default_profile_follows_cuda(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert config.get_profile() == "laptop"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.get_profile() == "gpu"


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "huge")
    with pytest.raises(config.ProfileError) as err:
        config.get_profile()
    msg = str(err.value)
    assert "'huge'" in msg
    for name in config.PROFILES:
        assert name in msg
    with pytest.raises(ValueError, match="Valid profiles"):
        config.size("data.voxel_resolution", profile="tiny")


def test_every_size_has_every_profile():
    table = config.size_table()
    assert table, "the size table is empty"
    for key, row in table.items():
        assert set(row) == set(config.PROFILES), key
        assert "." in key, f"size keys are '<area>.<name>', got {key!r}"


def test_sizes_grow_or_stay_with_the_profile():
    # ci must never be bigger than laptop for numeric sizes: CI has to stay fast. Learning rates are
    # not sizes (a tiny ci run may use a larger one) and are exempt.
    for key, row in config.size_table().items():
        if key.rsplit(".", 1)[-1] in ("lr", "seed"):
            continue
        if isinstance(row["ci"], (int, float)):
            assert row["ci"] <= row["laptop"], key


def test_size_lookup_and_prefix(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    assert config.size("welcome.n_points") == config.size_table()["welcome.n_points"]["ci"]
    block = config.sizes(prefix="welcome.")
    assert set(block) == {"n_points", "epochs"}
    with pytest.raises(KeyError, match="welcome"):
        config.size("welcome.nope")
    with pytest.raises(TypeError):
        block["n_points"] = 3  # read-only


def test_device_falls_back_to_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert config.get_device("cuda").type == "cpu"
    assert config.get_device("cpu").type == "cpu"
    assert config.get_device().type == "cpu"
    monkeypatch.setenv("COURSE_DEVICE", "cuda:3")
    assert config.get_device().type == "cpu"


def test_seed_everything_is_reproducible():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3)

    config.seed_everything(123)
    a = draw()
    config.seed_everything(123)
    b = draw()
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    config.seed_everything(124)
    c = draw()
    assert not torch.equal(a[2], c[2])
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError):
            config.seed_everything(bad)


@pytest.mark.usefixtures("base_family")
def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "c"))
    assert config.cache_dir() == tmp_path / "c"


def test_describe_names_profile_and_device(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    line = config.describe()
    assert "ci" in line and "device" in line


def test_a_chapter_knob_that_repeats_a_dataset_knob_is_an_alias():
    """Review finding (duplicated resolution knobs): a chapter's ``image_size`` / ``voxel_resolution`` /
    ``resolution`` equal to the dataset's in every profile must be an alias of it (one row), not a copy."""
    table = config._SIZES
    for key, row in table.items():
        leaf = key.split(".", 1)[1]
        for ref in ("data.image_size", "data.voxel_resolution"):
            if key == ref or leaf not in ("image_size", "voxel_resolution", "resolution"):
                continue
            if dict(row) == dict(table[ref]):
                assert row is table[ref], f"{key} repeats {ref}: make it an alias (config._SAME_AS)"
    assert config.size("ch03.image_size", "gpu") == config.size("data.image_size", "gpu")
