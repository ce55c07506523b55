"""The ShapeNet-lite gallery: one shape, any representation, chosen with widgets.

Introduced in ``lectures/01_data_and_representations.ipynb``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from .plotly_vis import plot_images, plot_mesh, plot_points, plot_sdf_slice, plot_voxels
from .widgets import Interactive, interact

__all__ = ["REPRESENTATIONS", "gallery", "gallery_figure"]

REPRESENTATIONS: tuple[str, ...] = ("points", "mesh", "voxels", "sdf slice", "images")
"""What the gallery can show for a shape."""

_CACHE: OrderedDict[tuple, go.Figure] = OrderedDict()
_CACHE_SIZE = 32


def _default(key: str, value: Any) -> Any:
    if value is not None:
        return value
    from course_lib import config

    return config.size(key)


def gallery_figure(
    category: str,
    seed: int,
    representation: str = "points",
    *,
    n_points: int | None = None,
    mesh_resolution: int | None = None,
    voxel_resolution: int | None = None,
    image_size: int | None = None,
) -> go.Figure:
    """The figure of one procedural shape in one representation (cached).

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    Args:
        category: one of ``course_lib.data.CATEGORIES``.
        seed: the shape's seed.
        representation: one of :data:`REPRESENTATIONS`.
        n_points, mesh_resolution, voxel_resolution, image_size: sizes (default: the
            ``data.*`` sizes of the active profile).
    """
    from course_lib import data

    if representation not in REPRESENTATIONS:
        raise ValueError(f"unknown representation {representation!r}; choose from {', '.join(REPRESENTATIONS)}")
    if category not in data.CATEGORIES:
        raise ValueError(f"unknown category {category!r}; choose from {', '.join(data.CATEGORIES)}")
    n_points = _default("data.n_surface_points", n_points)
    mesh_resolution = _default("data.mesh_resolution", mesh_resolution)
    voxel_resolution = _default("data.voxel_resolution", voxel_resolution)
    image_size = _default("data.image_size", image_size)
    key = (category, int(seed), representation, n_points, mesh_resolution, voxel_resolution, image_size)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]

    shape = data.make_shape(category, int(seed))
    name = f"{category} #{seed}"
    if representation == "points":
        pts, _normals = shape.sample_surface(n_points, seed=int(seed))
        fig = plot_points(pts, color="y", title=f"{name}: {n_points:,} surface points", size=2)
    elif representation == "mesh":
        mesh = shape.mesh(mesh_resolution)
        fig = plot_mesh(mesh, title=f"{name}: mesh ({len(mesh.faces):,} triangles)")
    elif representation == "voxels":
        grid = data.voxelize(shape, voxel_resolution)
        fig = plot_voxels(grid, title=f"{name}: {voxel_resolution}^3 voxels ({int(grid.sum()):,} occupied)")
    elif representation == "sdf slice":
        fig = plot_sdf_slice(shape, axis="z", value=0.0, resolution=max(64, 2 * mesh_resolution),
                             title=f"{name}: SDF on the plane z = 0")
    else:
        views = data.render(shape, size=image_size)
        depth = views["depth"].float().clone()
        depth[views["silhouette"] <= 0] = float("nan")  # background: blank, not "depth 0"
        fig = plot_images([views["rgb"], depth, views["silhouette"]],
                          titles=["RGB", "depth", "silhouette"])
        fig.update_layout(title={"text": f"{name}: rendered views", "x": 0.5, "xanchor": "center"},
                          margin={"t": 70})
    _CACHE[key] = fig
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return fig


def gallery(
    categories: Sequence[str] | None = None,
    seeds: range = range(10),
    representations: Sequence[str] = REPRESENTATIONS,
    **sizes: Any,
) -> Interactive | go.Figure:
    """Browse ShapeNet-lite: a category dropdown, a seed slider and a representation dropdown.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    ``sizes`` are passed to :func:`gallery_figure` (``n_points``, ``mesh_resolution``,
    ``voxel_resolution``, ``image_size``).  Without a widget frontend this is the
    static figure of the first category, seed and representation.
    """
    from course_lib import data

    cats = list(categories) if categories is not None else list(data.CATEGORIES)
    reps = list(representations)
    for r in reps:
        if r not in REPRESENTATIONS:
            raise ValueError(f"unknown representation {r!r}; choose from {', '.join(REPRESENTATIONS)}")

    def render(category: str, seed: int, representation: str) -> go.Figure:
        return gallery_figure(category, seed, representation, **sizes)

    return interact(render, title="ShapeNet-lite gallery", category=cats, seed=seeds, representation=reps)
