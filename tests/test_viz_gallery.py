"""The gallery against the procedural shapes of course_lib.data (small sizes)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from course_lib import data, viz
from course_lib.viz import shape_gallery as vg
from course_lib.viz import widgets as vw

SIZES = {"n_points": 300, "mesh_resolution": 16, "voxel_resolution": 8, "image_size": 24}


def test_points_and_sdf_slice_of_a_shape():
    shape = data.make_shape("mug", 1)
    fig = viz.gallery_figure("mug", 1, "points", **SIZES)
    pts = np.stack([fig.data[0].x, fig.data[0].y, fig.data[0].z], 1)
    assert pts.shape == (300, 3)
    # the points are the shape's own surface samples: on its zero level set
    assert shape.sdf(torch.as_tensor(pts, dtype=torch.float32)).abs().max() < 1e-3
    sl = viz.gallery_figure("mug", 1, "sdf slice", **SIZES)
    assert sl.data[0].type == "heatmap" and sl.data[1].type == "contour"


def test_mesh_and_cache():
    fig = viz.gallery_figure("table", 0, "mesh", **SIZES)
    assert fig.data[0].type == "mesh3d"
    assert viz.gallery_figure("table", 0, "mesh", **SIZES) is fig  # cached


def test_voxels_match_data_voxelize():
    if not hasattr(data, "voxelize"):
        pytest.skip("course_lib.data.voxelize not available yet")
    fig = viz.gallery_figure("chair", 2, "voxels", **SIZES)
    grid = data.voxelize(data.make_shape("chair", 2), SIZES["voxel_resolution"])
    assert fig.data[0].meta["n_occupied"] == int(grid.sum())


def test_images():
    if not hasattr(data, "render"):
        pytest.skip("course_lib.data.render not available yet")
    fig = viz.gallery_figure("car", 0, "images", **SIZES)
    assert [t.type for t in fig.data] == ["image", "heatmap", "heatmap"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="representation"):
        viz.gallery_figure("chair", 0, "hologram")
    with pytest.raises(ValueError, match="category"):
        viz.gallery_figure("spaceship", 0, "points")


def test_gallery_static_and_widget(monkeypatch):
    fig = viz.gallery(categories=["mug"], seeds=range(2), representations=["sdf slice"], **SIZES)
    assert isinstance(fig, go.Figure)
    monkeypatch.setattr(vw, "widgets_available", lambda: True)
    app = viz.gallery(categories=["mug", "bottle"], seeds=range(2), representations=["sdf slice", "points"], **SIZES)
    assert set(app.controls) == {"category", "seed", "representation"}
    fig2 = app.update(category="bottle", representation="points")
    assert "bottle" in fig2.layout.title.text and fig2.data[0].type == "scatter3d"
    assert vg.REPRESENTATIONS[0] == "points"
