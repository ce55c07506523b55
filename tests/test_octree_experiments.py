"""Chapter 04 experiment recipes (course_lib.experiments.octrees) on ci sizes."""

from __future__ import annotations

import math

import pytest
import torch
import trimesh

from course_lib.experiments import octrees as E
from course_lib.geometry.octree import build_octree

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_smoke_hook_runs_on_cpu():
    out = E.smoke("cpu", steps=1, profile="ci")
    assert math.isfinite(out["ogn_loss"]) and out["seconds"] > 0 and out["ogn_params"] > 0


def test_compression_rows_count_the_octree_bytes():
    rows = E.compression((16, 32), ("mug",), profile="ci")
    assert [r["resolution"] for r in rows] == [16, 32]
    for r in rows:
        assert r["dense_float_bytes"] == 4 * r["resolution"] ** 3
        assert r["ratio"] == pytest.approx(r["dense_float_bytes"] / r["octree_bytes"])
    box = trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    (row,) = E.mesh_compression({"box": box}, (16,))
    from course_lib.geometry import mesh_to_voxels

    assert row["octree_bytes"] == build_octree(mesh_to_voxels(box, 16)).nbytes


def test_decoder_cost_and_iou_on_tiny_sizes():
    rows = E.decoder_cost((16,), profile="ci", repeat=1)
    assert {r["decoder"] for r in rows} == {"ogn", "dense (base 4)"}
    assert all(r["seconds"] > 0 for r in rows)
    ogn = next(r for r in rows if r["decoder"] == "ogn")
    assert 0 < ogn["cells"] < 16 ** 3 * 8 / 7
    model = E.build_ogn("ci")
    vox = torch.zeros(2, 16, 16, 16)
    vox[:, 4:12, 4:12, 4:12] = 1
    res = E.evaluate_iou(model, vox)
    assert res["iou"].shape == (2,) and ((res["iou"] >= 0) & (res["iou"] <= 1)).all()
    dense = E.build_dense("ci")
    assert E.evaluate_iou(dense, vox)["cells"].tolist() == [16 ** 3] * 2


def test_figures_and_tables():
    from course_lib.data import make_shape, voxelize

    tree = build_octree(voxelize(make_shape("mug", 1), 16))
    rows = E.level_counts(tree)
    assert [r["resolution"] for r in rows] == [2, 4, 8, 16]
    assert rows[0]["cells"] == 8 and rows[-1]["mixed"] == 0
    for a, b in zip(rows[:-1], rows[1:]):
        assert b["cells"] == 8 * a["mixed"]                  # only mixed cells have children
    fig = E.slice_figure(tree, 2, 8, axis=1, title="mug")
    assert len(fig.data) == 2 and "octree" in fig.layout.title.text
    assert fig.data[0].z.shape == (16, 16)
    with pytest.raises(ValueError, match="index"):
        E.slice_figure(tree, 1, 16)
    fig = E.memory_figure(E.compression((16,), ("mug",), profile="ci"))
    assert len(fig.data) == 3
    table = E.rows_table(rows)
    assert table.count("\n") == len(rows) + 1 and "| level |" in table
