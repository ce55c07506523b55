"""The one split scheme: disjoint splits for every chapter's configuration, reserved seeds outside them,
independent sampling streams."""

from __future__ import annotations

import pytest
import torch

from course_lib import config
from course_lib.data import RESERVED, SPLITS, ShapeNetLite, make_shape, reserved_seed, split_of, split_seeds
from course_lib.data.splits import FIRST_SPLIT_SEED, MAX_PER_SPLIT


def _largest_request(profile: str) -> int:
    """The most shapes per category any size key of any chapter asks for in ``profile``."""
    out = 0
    for key, row in config.size_table().items():
        name = key.split(".", 1)[1]
        v = row[profile]
        if ("per_category" in name or name.startswith("shapes_per")) and isinstance(v, int):
            out = max(out, v)
    return out


@pytest.mark.parametrize("profile", config.PROFILES)
def test_splits_disjoint_for_every_chapter_configuration(profile):
    n = _largest_request(profile)
    assert n >= 1
    seeds = {s: set(split_seeds(s, n)) for s in SPLITS}
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not seeds[a] & seeds[b], (a, b)
        assert all(split_of(x) == a for x in seeds[a])
        assert not seeds[a] & set(RESERVED.values())
        assert min(seeds[a]) >= FIRST_SPLIT_SEED


def test_reserved_seeds_are_outside_every_split():
    for name, seed in RESERVED.items():
        assert reserved_seed(name) == seed
        assert split_of(seed) == "reserved"
    for s in SPLITS:
        assert not set(split_seeds(s, MAX_PER_SPLIT)) & set(RESERVED.values())
    with pytest.raises(ValueError, match="Unknown reserved"):
        reserved_seed("nope")
    with pytest.raises(ValueError, match="Unknown split"):
        split_seeds("dev", 1)


def test_streams_are_independent_samplings_of_one_surface():
    shape = make_shape("mug", split_seeds("test", 1)[0])
    a, _ = shape.sample_surface(256)
    b, _ = shape.sample_surface(256, stream=1)
    a2, _ = shape.sample_surface(256, stream=0)
    assert torch.equal(a, a2)
    assert not torch.allclose(a, b)
    # both on the surface
    assert shape.sdf(a).abs().max() < 1e-3 and shape.sdf(b).abs().max() < 1e-3
    # not a permutation of each other: the nearest other-sample distance is not zero
    d = torch.cdist(b, a).min(dim=1).values
    assert (d > 1e-6).float().mean() > 0.99
    with pytest.raises(ValueError, match="stream"):
        shape.sample_surface(8, stream=-1)


def test_dataset_input_target_and_oracle_differ_and_stack(tmp_path):
    ds = ShapeNetLite("test", ("points", "target_points", "oracle_points", "parts"), categories=["mug", "chair"],
                      n_points=64, n_target=48, shapes_per_category=2, cache_dir=tmp_path)
    st = ds.stacked()
    assert st["points"].shape == (4, 64, 3) and st["target_points"].shape == (4, 48, 3)
    assert st["oracle_points"].shape == (4, 48, 3) and st["part"].shape == (4, 64)
    assert st["seed"].tolist() == split_seeds("test", 2) * 2
    assert st["category"] == ["chair", "chair", "mug", "mug"]
    assert not torch.allclose(st["points"][:, :48], st["target_points"])
    assert not torch.allclose(st["oracle_points"], st["target_points"])
    # the cached second read is identical
    again = ShapeNetLite("test", ("target_points",), categories=["mug", "chair"], n_points=64, n_target=48,
                         shapes_per_category=2, cache_dir=tmp_path).stacked()
    assert torch.equal(again["target_points"], st["target_points"])
    # part labels agree with the shape's own labelling of the points
    shape = ds.shape(0)
    assert torch.equal(st["part"][0], shape.part_labels(st["points"][0]))
