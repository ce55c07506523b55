"""Tests of course_lib.viz figures: inspected as plotly objects, no browser needed."""

from __future__ import annotations

import itertools
import sys
import warnings

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
import trimesh

from course_lib import viz
from course_lib.viz import widgets as vw


def _xyz(trace) -> np.ndarray:
    return np.stack([np.asarray(trace.x), np.asarray(trace.y), np.asarray(trace.z)], axis=1)


# ---------------------------------------------------------------------------
# points
# ---------------------------------------------------------------------------
def test_points_small_cloud_is_drawn_whole():
    pts = torch.randn(300, 3)
    fig = viz.plot_points(pts)
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 1 and fig.data[0].type == "scatter3d"
    np.testing.assert_allclose(_xyz(fig.data[0]), pts.numpy(), rtol=0, atol=0)
    assert fig.layout.scene.aspectmode == "data"
    assert fig.layout.scene.camera.up.y == 1  # y is up in course_lib.data
    assert not fig.data[0].meta["capped"]


def test_points_cap_is_honoured_and_announced():
    pts = torch.randn(5000, 3, dtype=torch.float64)
    fig = viz.plot_points(pts, max_points=700, seed=3)
    shown = _xyz(fig.data[0])
    assert shown.shape == (700, 3)
    assert "700 of 5,000" in fig.layout.title.text
    # every drawn point is a distinct point of the input
    rows = {tuple(r) for r in pts.numpy().astype(np.float32)}
    assert all(tuple(r) in rows for r in shown)
    assert len({tuple(r) for r in shown}) == 700
    # the same seed gives the same subset, another seed another one
    again = _xyz(viz.plot_points(pts, max_points=700, seed=3).data[0])
    other = _xyz(viz.plot_points(pts, max_points=700, seed=4).data[0])
    np.testing.assert_array_equal(shown, again)
    assert not np.array_equal(shown, other)


def test_points_colour_by_value_follows_the_subset():
    gen = torch.Generator().manual_seed(0)
    pts = torch.randn(2000, 3, generator=gen)
    values = pts[:, 0] * 10 + pts[:, 1]  # a value we can recompute from each drawn point
    fig = viz.plot_points(pts, color=values, max_points=500, color_title="v")
    tr = fig.data[0]
    shown = _xyz(tr)
    np.testing.assert_allclose(np.asarray(tr.marker.color), shown[:, 0] * 10 + shown[:, 1], rtol=1e-5, atol=1e-5)
    assert tr.marker.showscale and tr.marker.colorscale is not None
    assert tr.marker.colorbar.title.text == "v"


def test_points_colour_options():
    pts = np.random.default_rng(0).normal(size=(50, 3))
    assert viz.plot_points(pts, color="red").data[0].marker.color == "red"
    tr = viz.plot_points(pts, color="z").data[0]
    np.testing.assert_allclose(np.asarray(tr.marker.color), pts[:, 2].astype(np.float32))
    labels = torch.arange(50) % 3
    cols = viz.plot_points(pts, color=labels).data[0].marker.color
    assert len(set(cols)) == 3 and cols[0] == cols[3] != cols[1]
    rgb = np.zeros((50, 3))
    rgb[:, 0] = 1.0
    assert set(viz.plot_points(pts, color=rgb).data[0].marker.color) == {"rgb(255,0,0)"}


def test_points_overlay_and_grad_tensor():
    a = torch.randn(10, 3, requires_grad=True)
    fig = viz.plot_points(a, name="a")
    fig2 = viz.plot_points(torch.randn(20, 3), fig=fig, color="black", name="b")
    assert fig2 is fig and len(fig.data) == 2
    assert [t.name for t in fig.data] == ["a", "b"]


@pytest.mark.parametrize("bad", [torch.randn(10, 2), torch.randn(2, 10, 3), torch.zeros(0, 3)])
def test_points_bad_shape(bad):
    with pytest.raises(ValueError, match="points"):
        viz.plot_points(bad)


def test_points_bad_colour_length():
    with pytest.raises(ValueError, match="color"):
        viz.plot_points(torch.randn(10, 3), color=torch.randn(9))


# ---------------------------------------------------------------------------
# meshes
# ---------------------------------------------------------------------------
def test_mesh_from_trimesh_and_pair():
    box = trimesh.creation.box()
    fig = viz.plot_mesh(box, show_edges=True, title="box")
    mesh_tr = fig.data[0]
    assert mesh_tr.type == "mesh3d"
    np.testing.assert_array_equal(np.stack([mesh_tr.i, mesh_tr.j, mesh_tr.k], 1), box.faces)
    np.testing.assert_allclose(_xyz(mesh_tr), box.vertices, atol=1e-6)
    # edges: 3 segments + a break per face
    assert fig.data[1].mode == "lines" and len(fig.data[1].x) == 5 * len(box.faces)
    v = torch.tensor(box.vertices, dtype=torch.float32)
    f = torch.tensor(box.faces)
    fig2 = viz.plot_mesh((v, f), color=v[:, 2])
    assert fig2.data[0].intensitymode == "vertex"
    np.testing.assert_allclose(np.asarray(fig2.data[0].intensity), box.vertices[:, 2], atol=1e-6)
    fig3 = viz.plot_mesh((v, f), color=np.arange(len(box.faces), dtype=float))
    assert fig3.data[0].intensitymode == "cell"


def test_mesh_errors():
    v = torch.rand(4, 3)
    with pytest.raises(ValueError, match="faces"):
        viz.plot_mesh((v, torch.tensor([[0, 1, 4]])))
    with pytest.raises(ValueError, match="no faces"):
        viz.plot_mesh((v, torch.zeros(0, 3, dtype=torch.long)))
    with pytest.raises(TypeError, match="Trimesh"):
        viz.plot_mesh(v)


# ---------------------------------------------------------------------------
# voxels
# ---------------------------------------------------------------------------
def _brute_force_exposed_faces(occ: np.ndarray) -> int:
    count = 0
    dims = occ.shape
    for i, j, k in itertools.product(*(range(d) for d in dims)):
        if not occ[i, j, k]:
            continue
        for d in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
            n = (i + d[0], j + d[1], k + d[2])
            inside = all(0 <= n[a] < dims[a] for a in range(3))
            if not inside or not occ[n]:
                count += 1
    return count


def _triangles(trace) -> np.ndarray:
    v = _xyz(trace).astype(np.float64)
    return v[np.stack([trace.i, trace.j, trace.k], 1)]


@pytest.mark.parametrize("seed", [0, 1])
def test_voxels_draw_exactly_the_exposed_faces(seed):
    occ = np.random.default_rng(seed).random((5, 4, 6)) < 0.45
    fig = viz.plot_voxels(torch.from_numpy(occ), bound=1.0)
    tr = fig.data[0]
    expected = _brute_force_exposed_faces(occ)
    assert len(tr.i) == 2 * expected
    assert tr.meta["n_faces"] == expected and tr.meta["n_occupied"] == int(occ.sum())
    # total area = number of faces x the area of one face (cells are 2/5 x 2/4 x 2/6)
    tris = _triangles(tr)
    areas = 0.5 * np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]), axis=1)
    h = 2.0 / np.array(occ.shape)
    _corners, axes, _signs = viz.voxel_faces(occ)
    face_area = np.array([h[(a + 1) % 3] * h[(a + 2) % 3] for a in axes])
    np.testing.assert_allclose(areas.sum(), face_area.sum(), rtol=1e-5)
    assert np.abs(_xyz(tr)).max() <= 1.0 + 1e-6


def test_voxels_faces_point_outwards():
    occ = np.zeros((3, 3, 3), bool)
    occ[1, 1, 1] = True
    tr = viz.plot_voxels(occ, bound=1.5).data[0]
    tris = _triangles(tr)
    assert len(tris) == 12
    normals = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
    outward = tris.mean(1)  # the voxel's centre is the origin
    assert (np.einsum("ij,ij->i", normals, outward) > 0).all()
    np.testing.assert_allclose(np.abs(_xyz(tr)).max(), 0.5)  # the middle cell spans [-0.5, 0.5]


def test_voxels_values_threshold_and_empty_grid():
    vals = torch.zeros(4, 4, 4)
    vals[0, 0, 0] = 0.9
    vals[3, 3, 3] = 0.2
    assert viz.plot_voxels(vals).data[0].meta["n_occupied"] == 1
    empty = viz.plot_voxels(torch.zeros(4, 4, 4, dtype=torch.bool))
    assert len(empty.data) == 0 and "0 occupied" in empty.layout.title.text
    with pytest.raises(ValueError, match="grid"):
        viz.plot_voxels(torch.zeros(4, 4))


def test_voxels_32_cubed_stays_light():
    c = (torch.arange(32) + 0.5) / 16 - 1
    x, y, z = torch.meshgrid(c, c, c, indexing="ij")
    ball = x**2 + y**2 + z**2 < 0.8**2
    tr = viz.plot_voxels(ball).data[0]
    # only the shell is drawn: far fewer faces than 6 per occupied voxel
    assert tr.meta["n_faces"] < 0.25 * 6 * int(ball.sum())
    assert tr.meta["n_faces"] == _brute_force_exposed_faces(ball.numpy())


# ---------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------
def test_images_shapes_and_kinds():
    grey = torch.rand(20, 30)
    rgb = torch.rand(3, 20, 30)
    fig = viz.plot_images([grey, rgb], titles=["g", "rgb"])
    assert [t.type for t in fig.data] == ["heatmap", "image"]
    assert np.asarray(fig.data[0].z).shape == (20, 30)
    z_rgb = np.asarray(fig.data[1].z)
    assert z_rgb.shape == (20, 30, 3) and z_rgb.dtype == np.uint8
    np.testing.assert_array_equal(z_rgb[..., 0], np.clip(rgb[0].numpy() * 255, 0, 255).astype(np.uint8))
    assert [a.text for a in fig.layout.annotations] == ["g", "rgb"]


def test_images_channels_last():
    rgb = torch.rand(3, 20, 30)
    a = np.asarray(viz.plot_images(rgb).data[0].z)
    b = np.asarray(viz.plot_images(rgb.permute(1, 2, 0)).data[0].z)
    np.testing.assert_array_equal(a, b)
    assert len(viz.plot_images(torch.rand(2, 8, 9, 3)).data) == 2
    rgba = np.zeros((8, 9, 4), np.uint8)
    assert np.asarray(viz.plot_images(rgba).data[0].z).shape == (8, 9, 3)


def test_images_batches_and_depth_background():
    assert len(viz.plot_images(torch.rand(5, 3, 8, 8), cols=2).data) == 5
    assert len(viz.plot_images(torch.rand(4, 8, 8)).data) == 4
    depth = torch.rand(8, 8)
    depth[0, 0] = float("inf")
    z = np.asarray(viz.plot_images(depth).data[0].z, dtype=float)
    assert np.isnan(z[0, 0]) and np.isfinite(z[1:, :]).all()
    with pytest.raises(ValueError, match="titles"):
        viz.plot_images(torch.rand(2, 8, 8), titles=["one"])
    with pytest.raises(ValueError, match="images"):
        viz.plot_images(torch.rand(2, 2, 2, 2, 2))


# ---------------------------------------------------------------------------
# SDF slices and subplots
# ---------------------------------------------------------------------------
def test_sdf_slice_matches_analytic_sphere():
    fig = viz.plot_sdf_slice(lambda p: p.norm(dim=-1) - 0.5, axis="y", value=0.3, resolution=33)
    hm = fig.data[0]
    x, z = np.meshgrid(np.asarray(hm.x), np.asarray(hm.y), indexing="xy")
    expected = np.sqrt(x**2 + 0.3**2 + z**2) - 0.5
    np.testing.assert_allclose(np.asarray(hm.z), expected, atol=1e-5)
    assert fig.data[1].type == "contour" and fig.layout.xaxis.title.text == "x"
    assert fig.layout.yaxis.title.text == "z"


def test_sdf_slice_from_grid_takes_nearest_slice():
    grid = torch.arange(4, dtype=torch.float32).view(4, 1, 1).expand(4, 4, 4).clone() - 1.5
    fig = viz.plot_sdf_slice(grid, axis="x", value=0.6)  # nodes of x: -1, -1/3, 1/3, 1 -> index 2
    assert np.allclose(np.asarray(fig.data[0].z), 0.5)
    assert np.allclose(viz.plot_sdf_slice(grid, axis="x", value=0.7).data[0].z, 1.5)
    with pytest.raises(ValueError, match="axis"):
        viz.plot_sdf_slice(grid, axis="w")


def test_subplots_mixes_scenes_and_images():
    f1 = viz.plot_points(torch.randn(30, 3), color=torch.rand(30), title="cloud")
    f2 = viz.plot_images(torch.rand(8, 8))
    f3 = viz.plot_voxels(torch.rand(4, 4, 4) > 0.5)
    out = viz.subplots([f1, f2, f3], cols=3)
    assert [t.type for t in out.data] == ["scatter3d", "heatmap", "mesh3d"]
    assert out.layout.scene.aspectmode == "data" and out.layout.scene2.aspectmode == "data"
    assert out.layout.scene.camera.up.y == 1
    assert list(out.layout.scene2.xaxis.range) == [-1, 1]  # the voxel figure's box is kept
    top = viz.plot_points(torch.randn(5, 3))
    top.update_scenes(camera={"up": {"x": 0, "y": 0, "z": 1}, "eye": {"x": 0, "y": 0, "z": 2}})
    assert viz.subplots([top, f1]).layout.scene.camera.eye.z == 2
    assert out.layout.annotations[0].text == "cloud"
    assert not out.data[0].marker.showscale
    assert out.layout.yaxis.autorange == "reversed"
    with pytest.raises(TypeError):
        viz.subplots([f1, "nope"])


# ---------------------------------------------------------------------------
# widgets and their fallback
# ---------------------------------------------------------------------------
def _render(scale: float, kind: str, n: int = 5) -> go.Figure:
    return viz.plot_points(torch.ones(n, 3) * scale, title=f"{kind} {scale}")


def test_no_kernel_means_static_figure():
    assert not viz.widgets_available()  # pytest is not a Jupyter kernel
    fig = viz.interact(_render, scale=(1, 4), kind=["a", "b"], n=7)
    assert isinstance(fig, go.Figure)
    assert fig.layout.title.text == "a 1" and len(fig.data[0].x) == 7


def test_missing_ipywidgets_degrades_to_static(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # makes `import ipywidgets` fail
    monkeypatch.setattr(vw, "_in_kernel", lambda: True)
    assert vw._import_ipywidgets() is None
    assert not viz.widgets_available()
    fig = viz.interact(_render, scale=range(2, 5), kind=("u", "v"))
    assert isinstance(fig, go.Figure) and fig.layout.title.text == "u 2"


def test_widget_bundle_has_widget_view_and_static_fallback(monkeypatch):
    monkeypatch.setattr(vw, "widgets_available", lambda: True)
    calls = []

    def render(scale, kind, n):
        calls.append((scale, kind, n))
        return _render(scale, kind, n)

    app = viz.interact(render, scale=(1.0, 3.0), kind=["a", "b"], n=4, title="demo")
    assert isinstance(app, viz.Interactive)
    assert calls == [(1.0, "a", 4)]
    assert set(app.controls) == {"scale", "kind"} and app.fixed == {"n": 4}
    assert app.controls["scale"].continuous_update is False
    bundle = app._repr_mimebundle_()
    assert vw.WIDGET_MIME in bundle and bundle[vw.WIDGET_MIME]["model_id"] == app.widget.model_id
    assert "text/html" in bundle and "plotly" in bundle["text/html"].lower()
    assert bundle[vw.PLOTLY_MIME]["layout"]["title"]["text"] == "a 1.0"
    # moving a control re-renders; the fallback keeps the initial values
    fig = app.update(kind="b", scale=2.5)
    assert calls[-1] == (2.5, "b", 4) and fig.layout.title.text == "b 2.5"
    assert app.output.outputs[0]["data"][vw.PLOTLY_MIME]["layout"]["title"]["text"] == "b 2.5"
    assert app._repr_mimebundle_()[vw.PLOTLY_MIME]["layout"]["title"]["text"] == "a 1.0"
    with pytest.raises(ValueError, match="no control"):
        app.update(nope=1)


def test_widget_render_error_is_shown_not_raised(monkeypatch):
    monkeypatch.setattr(vw, "widgets_available", lambda: True)

    def render(k):
        if k == "bad":
            raise RuntimeError("boom")
        return _render(1.0, k)

    app = viz.interact(render, k=["ok", "bad"])
    app.update(k="bad")
    assert "boom" in app.status.value and app.figure.layout.title.text == "ok 1.0"


def test_interact_control_specs(monkeypatch):
    import ipywidgets as w

    monkeypatch.setattr(vw, "widgets_available", lambda: True)
    slider = w.IntSlider(value=3, min=0, max=9)
    app = viz.interact(lambda a, b, c, d: _render(float(a), str((b, c, d))), a=slider, b=range(1, 10, 2),
                       c=True, d=[("one", 1), ("two", 2)])
    assert app.controls["a"] is slider
    assert isinstance(app.controls["b"], w.IntSlider) and app.controls["b"].max == 9
    assert isinstance(app.controls["c"], w.Checkbox)
    assert app.values == {"a": 3, "b": 1, "c": True, "d": 1}
    app2 = viz.interact(lambda x, k: _render(x, str(k)), x=(-1.0, 1.0, 0.1, 0.0), k=(2, 8, 2, 4))
    assert app2.values == {"x": 0.0, "k": 4} and isinstance(app2.controls["k"], w.IntSlider)
    monkeypatch.setattr(vw, "widgets_available", lambda: False)
    assert viz.interact(lambda x: _render(x, "s"), x=(0.0, 2.0, 0.5, 1.5)).layout.title.text == "s 1.5"
    with pytest.raises(ValueError, match="outside"):
        viz.interact(lambda x: _render(x, "s"), x=(0.0, 2.0, 0.5, 3.0))
    with pytest.raises(TypeError):
        viz.interact(lambda: "not a figure")


# ---------------------------------------------------------------------------
# k3d
# ---------------------------------------------------------------------------
def test_k3d_points_plot_and_attribute():
    pytest.importorskip("k3d")
    pts = torch.randn(3000, 3)
    vals = torch.rand(3000)
    plot = viz.k3d_points(pts, color=vals, max_points=1000)
    assert type(plot).__name__ == "Plot" and len(plot.objects) == 1
    obj = plot.objects[0]
    assert obj.positions.shape == (1000, 3)
    assert obj.attribute.shape == (1000,)
    # attribute values belong to the drawn points
    np.testing.assert_allclose(obj.color_range, [float(obj.attribute.min()), float(obj.attribute.max())])
    rgb = viz.k3d_points(pts[:3], color=np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])).objects[0]
    assert list(rgb.colors) == [0xFF0000, 0x00FF00, 0x0000FF]


def test_k3d_missing_falls_back_to_plotly(monkeypatch):
    monkeypatch.setitem(sys.modules, "k3d", None)
    assert not viz.k3d_available()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fig = viz.k3d_points(torch.randn(50, 3))
    assert isinstance(fig, go.Figure) and any("k3d is not installed" in str(r.message) for r in rec)


# ---------------------------------------------------------------------------
# curves and diagrams
# ---------------------------------------------------------------------------
def test_curves_carry_values_and_log_axes():
    fig = viz.plot_curves([8, 16, 32], {"voxels": [512, 4096, 32768], "points": [1, None, 3]},
                          log_x=True, log_y=True, xlabel="R")
    assert [t.name for t in fig.data] == ["voxels", "points"]
    np.testing.assert_array_equal(fig.data[0].y, [512, 4096, 32768])
    assert np.isnan(fig.data[1].y[1])
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    with pytest.raises(ValueError, match="values"):
        viz.plot_curves([1, 2], {"a": [1]})


def test_diagram_has_a_box_per_stage_and_arrows_between():
    fig = viz.plot_diagram(["data", ("encoder", "E"), "latent", "decoder", "loss"], loop_back="gradients")
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    arrows = [a for a in fig.layout.annotations if a.showarrow]
    assert len(rects) == 5
    assert len(arrows) == 4 + 1  # between consecutive boxes, plus the loop back
    assert any("gradients" in (a.text or "") for a in fig.layout.annotations)
    with pytest.raises(ValueError):
        viz.plot_diagram([])


def test_k3d_plot_carries_a_static_fallback():
    pytest.importorskip("k3d")
    from IPython.core.formatters import DisplayFormatter

    pts = torch.randn(20_000, 3)
    plot = viz.k3d_points(pts)
    data, _meta = DisplayFormatter().format(plot)
    assert vw.WIDGET_MIME in data and "text/html" in data
    static = data[vw.PLOTLY_MIME]
    assert static["data"][0]["type"] == "scatter3d"
    assert "10,000 of 20,000" in static["layout"]["title"]["text"]


def test_side_by_side_puts_every_object_in_one_scene():
    import numpy as np

    from course_lib import viz

    a = viz.plot_points(np.random.default_rng(0).normal(size=(50, 3)))
    b = viz.plot_points(np.random.default_rng(1).normal(size=(60, 3)) + 5.0)
    fig = viz.side_by_side([a, b], titles=["a", "b"], gap=0.5)
    assert len([k for k in fig.layout if k.startswith("scene")]) <= 1
    xa, xb = np.asarray(fig.data[0].x), np.asarray(fig.data[1].x)
    assert xb.min() - xa.max() == pytest.approx(0.5)  # placed next to each other, gap apart
    np.testing.assert_allclose(np.asarray(fig.data[1].y), np.asarray(b.data[0].y))  # only x moves
    assert [t.text for t in fig.layout.scene.annotations] == ["a", "b"]
    with pytest.raises(TypeError, match="3D"):
        viz.side_by_side([viz.plot_curves([1, 2], {"c": [1, 2]})])


def test_plot_confusion_normalises_rows_and_writes_counts():
    m = np.array([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
    fig = viz.plot_confusion(m, ["a", "b", "c"], title="cm")
    hm = fig.data[0]
    assert isinstance(hm, go.Heatmap)
    z = np.asarray(hm.z)
    assert np.allclose(z[0], [0.75, 0.25, 0]) and np.allclose(z[1], 0) and np.allclose(z[2], [0.25, 0.25, 0.5])
    assert np.asarray(hm.text)[2, 2] == "4"
    raw = viz.plot_confusion(torch.as_tensor(m), ["a", "b", "c"], normalize=False)
    assert np.array_equal(np.asarray(raw.data[0].z), m)
    with pytest.raises(ValueError, match="names"):
        viz.plot_confusion(m, ["a", "b"])


def test_plot_embedding_one_trace_per_present_class():
    xy = np.arange(12, dtype=float).reshape(6, 2)
    fig = viz.plot_embedding(xy, [0, 0, 2, 2, 2, 0], ["chair", "mug", "car"])
    assert [t.name for t in fig.data] == ["chair", "car"]
    assert np.array_equal(np.asarray(fig.data[1].x), [4.0, 6.0, 8.0])
    with pytest.raises(ValueError, match="named"):
        viz.plot_embedding(xy, [0, 0, 3, 0, 0, 0], ["chair", "mug", "car"])
