"""Plotly figures for the representations of the course: points, meshes, voxels, images, SDF slices.

Introduced in ``lectures/01_data_and_representations.ipynb``.

Every function returns a :class:`plotly.graph_objects.Figure` (never shows it), so that
tests can inspect the traces and notebooks can combine figures with :func:`subplots`.
Figures stay light enough for a notebook: point clouds are capped (a seeded random
subset, announced in the title), voxel grids are drawn as the exposed faces of their
occupied cells only, and arrays are passed to plotly as compact ``float32`` buffers.
3D scenes use ``aspectmode="data"`` so that shapes are never stretched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

__all__ = [
    "CAMERA",
    "DEFAULT_MAX_POINTS",
    "POINT_COLOR",
    "MESH_COLOR",
    "VOXEL_COLOR",
    "plot_points",
    "plot_mesh",
    "plot_voxels",
    "voxel_faces",
    "plot_images",
    "plot_sdf_slice",
    "plot_curves",
    "plot_diagram",
    "plot_confusion",
    "plot_embedding",
    "subplots",
]

DEFAULT_MAX_POINTS = 10_000
"""Default cap on the number of points drawn by :func:`plot_points`."""

POINT_COLOR = "#1f77b4"
MESH_COLOR = "#9ecae1"
VOXEL_COLOR = "#8c6bb1"

_QUALITATIVE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)
_SCENE_TYPES = {"scatter3d", "mesh3d", "cone", "streamtube", "volume", "isosurface", "surface"}


# ---------------------------------------------------------------------------
# input conversion
# ---------------------------------------------------------------------------
def _to_numpy(x: Any, what: str) -> np.ndarray:
    """Tensor (any device, with or without grad), array or nested list -> numpy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except Exception as exc:  # noqa: BLE001
        raise TypeError(f"{what} should be a torch.Tensor or numpy array, got {type(x).__name__}") from exc


def _as_points(points: Any, what: str = "points") -> np.ndarray:
    arr = _to_numpy(points, what)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"{what} should have shape (N, 3), got {tuple(arr.shape)}")
    if arr.shape[0] == 0:
        raise ValueError(f"{what} is empty (0 points): nothing to plot")
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{what} should be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def _is_css_colour(c: Any) -> bool:
    return isinstance(c, str)


def _rgb_strings(rgb: np.ndarray) -> list[str]:
    """(N, 3) colours in [0, 1] (floats) or [0, 255] (integers) -> 'rgb(r,g,b)' strings."""
    if np.issubdtype(rgb.dtype, np.floating):
        rgb = np.clip(np.nan_to_num(rgb) * 255.0, 0, 255)
    rgb = np.asarray(rgb).astype(np.int64).clip(0, 255)
    return [f"rgb({r},{g},{b})" for r, g, b in rgb]


CAMERA: dict[str, Any] = {"up": {"x": 0, "y": 1, "z": 0}, "eye": {"x": 1.25, "y": 0.8, "z": 1.55}}
"""Default 3D camera: y is up (the ShapeNet frame of ``course_lib.data``), seen from the front-right."""


def _scene_layout(fig: go.Figure, title: str | None) -> go.Figure:
    fig.update_scenes(
        aspectmode="data",
        xaxis_title="x",
        yaxis_title="y",
        zaxis_title="z",
    )
    fig.for_each_scene(lambda sc: sc.update(camera=CAMERA) if sc.camera.up.y is None else None)
    layout: dict[str, Any] = {"margin": {"l": 0, "r": 0, "t": 40 if title else 10, "b": 0}}
    if title is not None:
        layout["title"] = {"text": title, "x": 0.5, "xanchor": "center"}
    if not fig.layout.height:
        layout["height"] = 450
    fig.update_layout(**layout)
    return fig


def _subsample(n: int, max_points: int | None, seed: int) -> np.ndarray | None:
    """Sorted indices of a seeded random subset of size ``max_points``, or None if no cap applies."""
    if max_points is None or n <= max_points:
        return None
    if max_points <= 0:
        raise ValueError(f"max_points should be positive, got {max_points}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_points, replace=False))


# ---------------------------------------------------------------------------
# point clouds
# ---------------------------------------------------------------------------
def plot_points(
    points: Any,
    color: Any = None,
    max_points: int | None = DEFAULT_MAX_POINTS,
    size: float = 2.0,
    title: str | None = None,
    fig: go.Figure | None = None,
    *,
    name: str | None = None,
    colorscale: str = "Viridis",
    color_title: str | None = None,
    opacity: float = 1.0,
    seed: int = 0,
) -> go.Figure:
    """A 3D scatter plot of a point cloud.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    Args:
        points: ``(N, 3)`` tensor (any device) or array.
        color: ``None`` (one default colour), a CSS colour (``"red"``, ``"#ff0000"``),
            ``"x"``/``"y"``/``"z"`` (colour by that coordinate), ``(N,)`` values
            (floats: a continuous colour scale with a colour bar; integers: one
            qualitative colour per label, e.g. part labels) or ``(N, 3)`` RGB colours in
            [0, 1] (floats) or [0, 255] (integers).
        max_points: draw at most this many points: a random subset chosen with ``seed``
            (the same subset every time); the title says so. ``None`` draws all.
        size: marker size in pixels.
        title: figure title (``None``: none unless the cloud was capped).
        fig: add the cloud to this figure (to overlay several clouds) instead of a new one.
        name: legend name of the trace.
        colorscale: plotly colour scale for continuous values.
        color_title: title of the colour bar.
        opacity: marker opacity.
        seed: seed of the subset drawn when capping.

    Returns:
        the figure, with one ``Scatter3d`` trace added.
    """
    pts = _as_points(points)
    n = pts.shape[0]
    idx = _subsample(n, max_points, seed)
    shown = pts if idx is None else pts[idx]

    marker: dict[str, Any] = {"size": size, "opacity": opacity}
    if color is None:
        marker["color"] = POINT_COLOR
    elif isinstance(color, str) and color in ("x", "y", "z"):
        marker.update(color=shown[:, "xyz".index(color)], colorscale=colorscale, showscale=True,
                      colorbar={"title": {"text": color_title or color}, "thickness": 12})
    elif _is_css_colour(color):
        marker["color"] = color
    else:
        values = _to_numpy(color, "color")
        if values.shape[0] != n or values.ndim not in (1, 2) or (values.ndim == 2 and values.shape[1] != 3):
            raise ValueError(
                f"color should be a CSS colour, (N,) values or (N, 3) RGB with N={n}, "
                f"got shape {tuple(values.shape)}"
            )
        vals = values if idx is None else values[idx]
        if values.ndim == 2:
            marker["color"] = _rgb_strings(vals)
        elif np.issubdtype(vals.dtype, np.integer) or vals.dtype == np.bool_:
            labels = vals.astype(np.int64)
            marker["color"] = [_QUALITATIVE[int(v) % len(_QUALITATIVE)] for v in labels]
        else:
            marker.update(color=vals.astype(np.float32), colorscale=colorscale, showscale=True,
                          colorbar={"title": {"text": color_title or ""}, "thickness": 12})

    capped = idx is not None
    note = f"showing {len(shown):,} of {n:,} points" if capped else f"{n:,} points"
    trace = go.Scatter3d(
        x=shown[:, 0], y=shown[:, 1], z=shown[:, 2],
        mode="markers",
        marker=marker,
        name=name or note,
        hovertemplate="(%{x:.3f}, %{y:.3f}, %{z:.3f})<extra></extra>",
        meta={"n_points": n, "n_shown": len(shown), "capped": capped},
    )
    if fig is None:
        fig = go.Figure()
        if capped:
            suffix = f"showing {len(shown):,} of {n:,} points (random subset, seed {seed})"
            title = f"{title} — {suffix}" if title else suffix
    elif capped and title:
        title = f"{title} — showing {len(shown):,} of {n:,} points"
    fig.add_trace(trace)
    return _scene_layout(fig, title)


# ---------------------------------------------------------------------------
# meshes
# ---------------------------------------------------------------------------
def _mesh_arrays(mesh: Any) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(mesh, "vertices") and hasattr(mesh, "faces"):
        verts, faces = mesh.vertices, mesh.faces
    elif isinstance(mesh, (tuple, list)) and len(mesh) == 2:
        verts, faces = mesh
    else:
        raise TypeError(
            f"mesh should be a trimesh.Trimesh or a (vertices, faces) pair, got {type(mesh).__name__}"
        )
    v = _to_numpy(verts, "mesh vertices")
    f = _to_numpy(faces, "mesh faces")
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"mesh vertices should have shape (V, 3), got {tuple(v.shape)}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"mesh faces should have shape (F, 3) (triangles), got {tuple(f.shape)}")
    if not np.issubdtype(f.dtype, np.integer):
        raise TypeError(f"mesh faces should hold integer vertex indices, got dtype {f.dtype}")
    if f.shape[0] == 0:
        raise ValueError("mesh has no faces: nothing to plot")
    if f.min() < 0 or f.max() >= v.shape[0]:
        raise ValueError(f"mesh faces index vertices in [{f.min()}, {f.max()}] but there are {v.shape[0]} vertices")
    return v.astype(np.float32, copy=False), f.astype(np.int32, copy=False)


def plot_mesh(
    mesh: Any,
    color: Any = None,
    opacity: float = 1.0,
    title: str | None = None,
    fig: go.Figure | None = None,
    *,
    name: str | None = None,
    show_edges: bool = False,
    colorscale: str = "Viridis",
    flatshading: bool = True,
) -> go.Figure:
    """A triangle mesh as a plotly ``Mesh3d``.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    Args:
        mesh: a ``trimesh.Trimesh`` or a ``(vertices (V, 3), faces (F, 3))`` pair of tensors/arrays.
        color: ``None`` (default colour), a CSS colour, ``(V,)`` per-vertex values, ``(F,)``
            per-face values (vertex values win when V == F) or ``(V, 3)`` RGB vertex colours.
        opacity: surface opacity.
        title: figure title.
        fig: add to this figure instead of a new one.
        name: legend name.
        show_edges: also draw the triangle edges (a ``Scatter3d`` of lines): handy for small meshes.
        colorscale: plotly colour scale for values.
        flatshading: one normal per triangle (crisp facets) instead of smoothed normals.
    """
    v, f = _mesh_arrays(mesh)
    kw: dict[str, Any] = {}
    if color is None:
        kw["color"] = MESH_COLOR
    elif _is_css_colour(color):
        kw["color"] = color
    else:
        vals = _to_numpy(color, "color")
        if vals.ndim == 2 and vals.shape == (v.shape[0], 3):
            kw["vertexcolor"] = _rgb_strings(vals)
        elif vals.ndim == 1 and vals.shape[0] == v.shape[0]:
            kw.update(intensity=vals.astype(np.float32), intensitymode="vertex", colorscale=colorscale)
        elif vals.ndim == 1 and vals.shape[0] == f.shape[0]:
            kw.update(intensity=vals.astype(np.float32), intensitymode="cell", colorscale=colorscale)
        else:
            raise ValueError(
                f"color should be a CSS colour, ({v.shape[0]},) vertex values, ({f.shape[0]},) face values "
                f"or ({v.shape[0]}, 3) RGB, got shape {tuple(vals.shape)}"
            )
    trace = go.Mesh3d(
        x=v[:, 0], y=v[:, 1], z=v[:, 2],
        i=f[:, 0], j=f[:, 1], k=f[:, 2],
        opacity=opacity,
        flatshading=flatshading,
        lighting={"ambient": 0.45, "diffuse": 0.8, "specular": 0.1, "roughness": 0.8},
        lightposition={"x": 100, "y": 200, "z": 150},
        name=name or f"mesh: {v.shape[0]:,} vertices, {f.shape[0]:,} faces",
        hoverinfo="skip",
        **kw,
    )
    if fig is None:
        fig = go.Figure()
    fig.add_trace(trace)
    if show_edges:
        tri = v[f]  # (F, 3, 3)
        seg = np.concatenate([tri, tri[:, :1], np.full((len(f), 1, 3), np.nan, np.float32)], axis=1)
        seg = seg.reshape(-1, 3)
        fig.add_trace(go.Scatter3d(
            x=seg[:, 0], y=seg[:, 1], z=seg[:, 2], mode="lines",
            line={"color": "#333333", "width": 2}, name="edges", hoverinfo="skip",
        ))
    return _scene_layout(fig, title)


# ---------------------------------------------------------------------------
# voxels
# ---------------------------------------------------------------------------
def voxel_faces(grid: Any, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exposed faces of a voxel grid's occupied cells, as quads on the integer lattice.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    A face of an occupied cell is exposed when the neighbouring cell across it is empty
    or outside the grid.  Returns ``(corners (Q, 4, 3) int, axis (Q,) int, sign (Q,) int)``:
    lattice corners of each quad (cell ``(i, j, k)`` spans ``[i, i+1] x [j, j+1] x [k, k+1]``),
    ordered counter-clockwise seen from outside, the axis of the face normal and its sign.
    """
    occ = _occupied(grid, threshold)
    padded = np.pad(occ, 1, constant_values=False)
    inner = (slice(1, -1),) * 3
    corners, axes, signs = [], [], []
    unit = np.eye(3, dtype=np.int64)
    for a in range(3):
        u, w = (a + 1) % 3, (a + 2) % 3
        for s in (1, -1):
            nb = [slice(1, -1)] * 3
            nb[a] = slice(1 + s, padded.shape[a] - 1 + s)
            exposed = padded[inner] & ~padded[tuple(nb)]
            cells = np.argwhere(exposed)  # (q, 3)
            if len(cells) == 0:
                continue
            base = cells + (unit[a] if s > 0 else 0)
            quad = np.stack([base, base + unit[u], base + unit[u] + unit[w], base + unit[w]], axis=1)
            if s < 0:
                quad = quad[:, ::-1]
            corners.append(quad)
            axes.append(np.full(len(cells), a))
            signs.append(np.full(len(cells), s))
    if not corners:
        return np.zeros((0, 4, 3), np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(corners), np.concatenate(axes), np.concatenate(signs)


def _occupied(grid: Any, threshold: float) -> np.ndarray:
    g = _to_numpy(grid, "grid")
    if g.ndim != 3:
        raise ValueError(f"grid should have shape (X, Y, Z), got {tuple(g.shape)}")
    return g.astype(bool) if g.dtype == np.bool_ else (g > threshold)


def _shade(hex_colour: str, factor: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgb({int(r * factor)},{int(g * factor)},{int(b * factor)})"


def plot_voxels(
    grid: Any,
    bound: float = 1.0,
    color: str = VOXEL_COLOR,
    title: str | None = None,
    fig: go.Figure | None = None,
    *,
    threshold: float = 0.5,
    opacity: float = 1.0,
    name: str | None = None,
) -> go.Figure:
    """A voxel grid drawn as the exposed faces of its occupied cells (a ``Mesh3d``).

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    Only faces between an occupied and an empty cell (or the grid border) are drawn,
    two triangles each, shaded by orientation so that the cubes read well without
    relying on lighting; a 32^3 grid of a solid shape stays a few thousand faces.

    Args:
        grid: ``(X, Y, Z)`` boolean occupancy, or values (occupied where ``> threshold``);
            index order x, y, z; cells tile the box ``[-bound, bound]^3``.
        bound: half-size of the box the grid covers.
        color: hex colour of the cubes (``"#rrggbb"``).
        title, fig, name, opacity: as in :func:`plot_points`.
    """
    occ = _occupied(grid, threshold)
    dims = np.array(occ.shape, dtype=np.float64)
    h = 2.0 * bound / dims
    quads, axes, _signs = voxel_faces(occ)
    n_occ = int(occ.sum())
    if fig is None:
        fig = go.Figure()
    if len(quads):
        lattice, inverse = np.unique(quads.reshape(-1, 3), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1, 4)
        verts = (-bound + lattice * h).astype(np.float32)
        tris = np.concatenate([inverse[:, [0, 1, 2]], inverse[:, [0, 2, 3]]], axis=0)
        if not color.startswith("#") or len(color) != 7:
            raise ValueError(f"plot_voxels needs a hex colour like '#8c6bb1', got {color!r}")
        shades = np.array([_shade(color, fac) for fac in (0.78, 1.0, 0.9)])
        facecolor = np.concatenate([shades[axes], shades[axes]])
        fig.add_trace(go.Mesh3d(
            x=verts[:, 0], y=verts[:, 1], z=verts[:, 2],
            i=tris[:, 0].astype(np.int32), j=tris[:, 1].astype(np.int32), k=tris[:, 2].astype(np.int32),
            facecolor=facecolor,
            flatshading=True,
            opacity=opacity,
            lighting={"ambient": 0.75, "diffuse": 0.35, "specular": 0.0},
            name=name or f"{n_occ:,} occupied voxels ({len(quads):,} exposed faces)",
            hoverinfo="skip",
            meta={"n_occupied": n_occ, "n_faces": int(len(quads)), "shape": list(occ.shape)},
        ))
    if title is None:
        title = f"{'x'.join(str(s) for s in occ.shape)} voxels, {n_occ:,} occupied"
    fig.update_scenes(
        xaxis_range=[-bound, bound], yaxis_range=[-bound, bound], zaxis_range=[-bound, bound]
    )
    return _scene_layout(fig, title)


# ---------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------
def _split_images(images: Any) -> list[np.ndarray]:
    """Tensor/array or list -> list of (H, W) grey or (H, W, 3) RGB arrays."""
    if isinstance(images, (list, tuple)):
        out: list[np.ndarray] = []
        for im in images:
            out.extend(_split_images(im))
        return out
    arr = _to_numpy(images, "images")
    if arr.ndim == 2:
        return [arr]
    if arr.ndim == 3:
        if arr.shape[0] == 3:
            return [np.moveaxis(arr, 0, -1)]
        if arr.shape[0] == 1:
            return [arr[0]]
        if arr.shape[-1] in (3, 4):  # channels last (H, W, 3|4), as matplotlib and PIL have it
            return [arr[..., :3]]
        return [a for a in arr]  # a batch of grey images (B, H, W)
    if arr.ndim == 4 and arr.shape[1] in (1, 3):
        return [a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1) for a in arr]
    if arr.ndim == 4 and arr.shape[-1] in (3, 4):
        return [a[..., :3] for a in arr]
    raise ValueError(
        "images should be (H, W), (3, H, W), (H, W, 3), (B, H, W), (B, 1|3, H, W), (B, H, W, 3) "
        f"or a list of those, got shape {tuple(arr.shape)}"
    )


def plot_images(
    images: Any,
    titles: Sequence[str] | None = None,
    cols: int | None = None,
    *,
    colorscale: str = "gray",
    height: int | None = None,
    showscale: bool = False,
) -> go.Figure:
    """Images side by side: grey maps (silhouettes, depth) and RGB images.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    Args:
        images: one ``(H, W)`` grey or ``(3, H, W)`` RGB image (channels first, as in torch;
            channels last ``(H, W, 3)`` is accepted too when ``H`` is not 1 or 3), a batch
            ``(B, H, W)`` / ``(B, 3, H, W)`` / ``(B, H, W, 3)``, or a list of those.  RGB floats are
            read in [0, 1], integers in [0, 255]; non-finite grey values (e.g. the depth
            of background pixels) are left blank.
        titles: one title per image.
        cols: images per row (default: all in one row, at most 4).
        colorscale: plotly colour scale of grey images (e.g. ``"gray"``, ``"Viridis"`` for depth).
        height: figure height in pixels.
        showscale: show a colour bar for grey images.
    """
    ims = _split_images(images)
    if not ims:
        raise ValueError("images is empty: nothing to plot")
    n = len(ims)
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} images")
    cols = cols or min(n, 4)
    rows = (n + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles) if titles else None,
                        horizontal_spacing=0.03, vertical_spacing=0.08 if titles else 0.03)
    for t, im in enumerate(ims):
        r, c = t // cols + 1, t % cols + 1
        if im.ndim == 3:
            z = im
            if np.issubdtype(z.dtype, np.floating) or z.dtype == np.bool_:
                z = np.clip(np.nan_to_num(z.astype(np.float32)) * 255.0, 0, 255)
            fig.add_trace(go.Image(z=z.astype(np.uint8), hoverinfo="skip"), row=r, col=c)
        else:
            z = im.astype(np.float32)
            z = np.where(np.isfinite(z), z, np.nan)
            fig.add_trace(go.Heatmap(z=z, colorscale=colorscale, showscale=showscale,
                                     hovertemplate="(%{x}, %{y}): %{z:.3f}<extra></extra>"), row=r, col=c)
        suffix = "" if t == 0 else str(t + 1)
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{suffix}", row=r, col=c)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_layout(height=height or 260 * rows + (30 if titles else 0),
                      margin={"l": 5, "r": 5, "t": 40 if titles else 10, "b": 5},
                      plot_bgcolor="white")
    return fig


# ---------------------------------------------------------------------------
# SDF slices
# ---------------------------------------------------------------------------
def plot_sdf_slice(
    sdf: Any,
    axis: str = "z",
    value: float = 0.0,
    resolution: int = 128,
    bound: float = 1.0,
    title: str | None = None,
    *,
    zero_level: bool = True,
    colorscale: str = "RdBu",
) -> go.Figure:
    """A planar slice of a signed distance function, with its zero level set drawn.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    Args:
        sdf: a callable mapping points ``(..., 3)`` (a float32 tensor) to distances ``(...)``,
            an object with such an ``.sdf`` method (a shape), or an ``(R, R, R)`` grid of values
            at the nodes ``linspace(-bound, bound, R)`` (the convention of
            ``course_lib.geometry.sdf_grid``; the slice nearest to ``value`` is shown).
        axis: the axis normal to the slice (``"x"``, ``"y"`` or ``"z"``); the plane is ``axis = value``.
        value: where the plane cuts the axis.
        resolution: pixels per side when sampling a callable.
        bound: the slice covers ``[-bound, bound]^2``.
        title: figure title.
        zero_level: draw the contour ``sdf = 0`` (the surface) in black.
        colorscale: a diverging scale centred at 0 (with plotly's ``"RdBu"``: inside, negative, is red; outside is blue).
    """
    if axis not in ("x", "y", "z"):
        raise ValueError(f"axis should be 'x', 'y' or 'z', got {axis!r}")
    a = "xyz".index(axis)
    other = [i for i in range(3) if i != a]
    if isinstance(sdf, (torch.Tensor, np.ndarray)):
        grid = _to_numpy(sdf, "sdf grid").astype(np.float32)
        if grid.ndim != 3:
            raise ValueError(f"an sdf grid should have shape (R, R, R), got {tuple(grid.shape)}")
        r = grid.shape[a]
        k = int(np.clip(np.rint((value + bound) / (2 * bound) * (r - 1)), 0, r - 1))
        img = np.take(grid, k, axis=a)  # indices (other[0], other[1])
        n0, n1 = img.shape
        c0 = np.linspace(-bound, bound, n0, dtype=np.float32)
        c1 = np.linspace(-bound, bound, n1, dtype=np.float32)
    else:
        fn: Callable[[torch.Tensor], torch.Tensor]
        if hasattr(sdf, "sdf") and callable(sdf.sdf):
            fn = sdf.sdf
        elif callable(sdf):
            fn = sdf
        else:
            raise TypeError(f"sdf should be a callable, a shape with .sdf or a grid, got {type(sdf).__name__}")
        c0 = c1 = np.linspace(-bound, bound, resolution, dtype=np.float32)
        g0, g1 = np.meshgrid(c0, c1, indexing="ij")
        pts = np.zeros((resolution, resolution, 3), np.float32)
        pts[..., other[0]], pts[..., other[1]], pts[..., a] = g0, g1, value
        with torch.no_grad():
            out = fn(torch.from_numpy(pts))
        img = _to_numpy(out, "sdf values").astype(np.float32).reshape(resolution, resolution)
    # heatmap: rows are the vertical axis (other[1]), columns the horizontal one (other[0])
    z = img.T
    lim = float(np.nanmax(np.abs(z))) or 1.0
    fig = go.Figure(go.Heatmap(x=c0, y=c1, z=z, colorscale=colorscale, zmid=0.0, zmin=-lim, zmax=lim,
                               colorbar={"title": {"text": "sdf"}, "thickness": 12},
                               hovertemplate="(%{x:.2f}, %{y:.2f}): %{z:.3f}<extra></extra>"))
    if zero_level:
        fig.add_trace(go.Contour(x=c0, y=c1, z=z, contours={"start": 0, "end": 0, "size": 1, "coloring": "none"},
                                 line={"color": "black", "width": 2}, showscale=False, hoverinfo="skip",
                                 name="sdf = 0"))
    names = "xyz"
    fig.update_layout(
        title={"text": title or f"SDF on the plane {axis} = {value:g}", "x": 0.5, "xanchor": "center"},
        xaxis_title=names[other[0]], yaxis_title=names[other[1]],
        yaxis={"scaleanchor": "x"}, height=420, width=480,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


# ---------------------------------------------------------------------------
# combining figures
# ---------------------------------------------------------------------------
def _is_3d(fig: go.Figure) -> bool:
    return any(t.type in _SCENE_TYPES for t in fig.data)


def subplots(
    figs: Sequence[go.Figure],
    titles: Sequence[str] | None = None,
    cols: int | None = None,
    *,
    height: int | None = None,
) -> go.Figure:
    """Put several figures side by side (3D scenes and 2D plots may be mixed).

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    Each figure's traces are copied into its own cell; 3D cells keep equal aspect
    ratios. Colour bars are hidden (they would overlap).  ``titles`` default to
    each figure's own title.
    """
    figs = list(figs)
    if not figs:
        raise ValueError("subplots needs at least one figure")
    for f in figs:
        if not isinstance(f, go.Figure):
            raise TypeError(f"subplots takes plotly Figures, got {type(f).__name__}")
    n = len(figs)
    if titles is None:
        titles = [(f.layout.title.text or "") for f in figs]
    elif len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} figures")
    cols = cols or min(n, 3)
    rows = (n + cols - 1) // cols
    specs = [[None] * cols for _ in range(rows)]
    kinds = ["scene" if _is_3d(f) else "xy" for f in figs]
    for t, kind in enumerate(kinds):
        specs[t // cols][t % cols] = {"type": kind}
    out = make_subplots(rows=rows, cols=cols, specs=specs, subplot_titles=list(titles),
                        horizontal_spacing=0.02, vertical_spacing=0.06)
    for t, f in enumerate(figs):
        r, c = t // cols + 1, t % cols + 1
        for tr in f.data:
            tr = go.Figure(tr).data[0]  # a copy
            if "showscale" in tr:
                tr.showscale = False
            if "marker" in tr and tr.marker is not None and "showscale" in tr.marker:
                tr.marker.showscale = False
            out.add_trace(tr, row=r, col=c)
        if kinds[t] == "xy":
            src_y = f.layout.yaxis
            if src_y.autorange == "reversed" or (src_y.scaleanchor is not None):
                xref = out.get_subplot(r, c).xaxis.plotly_name.replace("axis", "")
                out.update_yaxes(autorange=src_y.autorange, scaleanchor=xref, row=r, col=c)
        else:  # keep the figure's own camera and axis ranges
            src = f.layout.scene
            scene = out.get_subplot(r, c)
            scene.update(aspectmode="data", camera=src.camera if src.camera.up.y is not None
                         or src.camera.up.z is not None else CAMERA)
            for ax in ("xaxis", "yaxis", "zaxis"):
                if src[ax].range is not None:
                    scene[ax].range = src[ax].range
    out.update_layout(height=height or 380 * rows, showlegend=False,
                      margin={"l": 0, "r": 0, "t": 40, "b": 0})
    return out


def side_by_side(figs: Sequence[go.Figure], titles: Sequence[str] | None = None, gap: float = 0.3, *,
                 height: int | None = None) -> go.Figure:
    """Several 3D figures in **one** 3D scene, each object moved along ``x`` next to the previous one.

    Introduced in ``lectures/06_surfaces.ipynb``.  A browser keeps at most 16 WebGL contexts per
    page (Chromium) and each 3D scene of a plotly figure takes one, so a lecture with many
    :func:`subplots` of 3D figures loses its oldest figures (they go blank).  This puts all the
    objects in a single scene (one context; they rotate together), ``gap`` apart (in data units),
    with each title as a label above its object.  Only 3D figures are accepted.
    """
    figs = list(figs)
    if not figs:
        raise ValueError("side_by_side needs at least one figure")
    for f in figs:
        if not isinstance(f, go.Figure) or not _is_3d(f):
            raise TypeError("side_by_side takes 3D plotly Figures (scatter3d / mesh3d traces)")
    if titles is None:
        titles = [(f.layout.title.text or "") for f in figs]
    elif len(titles) != len(figs):
        raise ValueError(f"got {len(titles)} titles for {len(figs)} figures")
    out = go.Figure()
    offset, labels = 0.0, []
    for f, title in zip(figs, titles):
        xs = [np.asarray(tr.x, dtype=float) for tr in f.data if getattr(tr, "x", None) is not None and len(tr.x)]
        lo = min(float(np.nanmin(x)) for x in xs) if xs else 0.0
        hi = max(float(np.nanmax(x)) for x in xs) if xs else 0.0
        top = max((float(np.nanmax(np.asarray(tr.y, dtype=float))) for tr in f.data
                   if getattr(tr, "y", None) is not None and len(tr.y)), default=0.0)  # y is up
        shift = offset - lo
        for tr in f.data:
            tr = go.Figure(tr).data[0]  # a copy
            if getattr(tr, "x", None) is not None and len(tr.x):
                tr.x = np.asarray(tr.x, dtype=float) + shift
            if "showscale" in tr:
                tr.showscale = False
            if "marker" in tr and tr.marker is not None and "showscale" in tr.marker:
                tr.marker.showscale = False
            out.add_trace(tr)
        labels.append({"x": (lo + hi) / 2 + shift, "y": top + 0.15, "z": 0.0, "text": title, "showarrow": False})
        offset += (hi - lo) + gap
    _scene_layout(out, None)
    out.update_layout(scene={"aspectmode": "data", "annotations": labels}, showlegend=False,
                      height=height or 380, margin={"l": 0, "r": 0, "t": 20, "b": 0})
    return out


# ---------------------------------------------------------------------------
# curves and diagrams
# ---------------------------------------------------------------------------
def plot_curves(
    x: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    *,
    title: str | None = None,
    xlabel: str = "",
    ylabel: str = "",
    log_x: bool = False,
    log_y: bool = False,
) -> go.Figure:
    """Several named curves over the same ``x`` (e.g. memory versus resolution), one line each.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    Missing values may be ``None`` or NaN (a gap in the line).
    """
    xs = np.asarray(_to_numpy(x, "x"), dtype=np.float64)
    if xs.ndim != 1 or len(xs) == 0:
        raise ValueError(f"x should be a non-empty 1D sequence, got shape {tuple(xs.shape)}")
    if not curves:
        raise ValueError("curves is empty: nothing to plot")
    fig = go.Figure()
    for t, (name, ys) in enumerate(curves.items()):
        y = np.array([np.nan if v is None else float(v) for v in ys], dtype=np.float64)
        if y.shape != xs.shape:
            raise ValueError(f"curve {name!r} has {len(y)} values for {len(xs)} x values")
        fig.add_trace(go.Scatter(x=xs, y=y, mode="lines+markers", name=str(name),
                                 line={"color": _QUALITATIVE[t % len(_QUALITATIVE)]}))
    fig.update_layout(
        title={"text": title, "x": 0.5, "xanchor": "center"} if title else None,
        xaxis={"title": {"text": xlabel}, "type": "log" if log_x else "linear"},
        yaxis={"title": {"text": ylabel}, "type": "log" if log_y else "linear"},
        height=420, margin={"l": 10, "r": 10, "t": 50 if title else 10, "b": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def plot_diagram(
    stages: Sequence[str | tuple[str, str]],
    *,
    title: str | None = None,
    colors: Sequence[str] | None = None,
    loop_back: str | None = None,
) -> go.Figure:
    """A left-to-right block diagram: one box per stage, arrows between consecutive boxes.

    Introduced in ``lectures/01_data_and_representations.ipynb`` (the training setup).

    Args:
        stages: box labels, or ``(label, detail)`` pairs (the detail is written under the label).
        title: figure title.
        colors: fill colour per box.
        loop_back: if given, a label for an arrow from the last box back to the second one
            (e.g. "gradients" from the loss to the encoder).
    """
    items = [(s, "") if isinstance(s, str) else (str(s[0]), str(s[1])) for s in stages]
    if not items:
        raise ValueError("stages is empty: nothing to draw")
    n = len(items)
    palette = list(colors) if colors is not None else ["#deebf7"] * n
    if len(palette) != n:
        raise ValueError(f"got {len(palette)} colours for {n} stages")
    width, gap = 1.0, 0.45
    fig = go.Figure()
    for t, ((label, detail), fill) in enumerate(zip(items, palette)):
        x0 = t * (width + gap)
        fig.add_shape(type="rect", x0=x0, x1=x0 + width, y0=0, y1=1, fillcolor=fill,
                      line={"color": "#3b6ea8", "width": 2}, layer="below")
        text = f"<b>{label}</b>" + (f"<br><span style='font-size:11px'>{detail}</span>" if detail else "")
        fig.add_annotation(x=x0 + width / 2, y=0.5, text=text, showarrow=False, font={"size": 13})
        if t:
            fig.add_annotation(x=x0, y=0.5, ax=x0 - gap, ay=0.5, xref="x", yref="y", axref="x", ayref="y",
                               text="", showarrow=True, arrowhead=2, arrowsize=1.2, arrowwidth=2,
                               arrowcolor="#3b6ea8")
    total = n * width + (n - 1) * gap
    if loop_back and n >= 2:
        x_last = (n - 1) * (width + gap) + width / 2
        x_second = (width + gap) + width / 2
        fig.add_shape(type="path", path=f"M {x_last},0 L {x_last},-0.35 L {x_second},-0.35 L {x_second},-0.02",
                      line={"color": "#d62728", "width": 2, "dash": "dot"})
        fig.add_annotation(x=x_second, y=0, ax=x_second, ay=-0.2, xref="x", yref="y", axref="x", ayref="y",
                           text="", showarrow=True, arrowhead=2, arrowcolor="#d62728", arrowwidth=2)
        fig.add_annotation(x=(x_last + x_second) / 2, y=-0.42, text=loop_back, showarrow=False,
                           font={"color": "#d62728", "size": 12})
    fig.update_xaxes(visible=False, range=[-0.1, total + 0.1])
    fig.update_yaxes(visible=False, range=[-0.6, 1.15])
    fig.update_layout(height=230, plot_bgcolor="white", margin={"l": 5, "r": 5, "t": 40 if title else 5, "b": 5},
                      title={"text": title, "x": 0.5, "xanchor": "center"} if title else None)
    return fig


def plot_confusion(matrix: Any, names: Sequence[str], *, title: str | None = None, normalize: bool = True) -> go.Figure:
    """A confusion matrix as a heatmap: rows the true classes, columns the predicted ones.

    Introduced in ``lectures/02_encoders.ipynb``.  With ``normalize`` each row is divided by its count (the
    share of a class's shapes given each answer; an empty row stays 0) and the raw count is written in the cell.
    """
    m = np.asarray(_to_numpy(matrix, "matrix"), dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(names):
        raise ValueError(f"matrix should be ({len(names)}, {len(names)}) for {len(names)} names, got {m.shape}")
    rows = m.sum(1, keepdims=True)
    z = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0) if normalize else m
    labels = [str(n) for n in names]
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=labels, colorscale="Blues", zmin=0, zmax=1 if normalize else None,
                               text=m.astype(int).astype(str), texttemplate="%{text}",
                               hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>"))
    fig.update_layout(title={"text": title, "x": 0.5, "xanchor": "center"} if title else None,
                      xaxis={"title": {"text": "predicted"}}, yaxis={"title": {"text": "true"}, "autorange": "reversed"},
                      height=420, margin={"l": 10, "r": 10, "t": 50 if title else 10, "b": 10})
    return fig


def plot_embedding(xy: Any, labels: Any, names: Sequence[str], *, title: str | None = None) -> go.Figure:
    """2D coordinates of samples (e.g. :func:`course_lib.experiments.encoders.pca_2d` of global features), one
    colour per class; introduced in ``lectures/02_encoders.ipynb``."""
    pts = np.asarray(_to_numpy(xy, "xy"), dtype=np.float64)
    lab = np.asarray(_to_numpy(labels, "labels")).astype(int)
    if pts.ndim != 2 or pts.shape[1] != 2 or lab.shape != (pts.shape[0],):
        raise ValueError(f"xy should be (B, 2) with B labels, got xy {pts.shape} and labels {lab.shape}")
    if len(lab) and (lab.min() < 0 or lab.max() >= len(names)):
        raise ValueError(f"labels must lie in [0, {len(names)}) to be named, got {lab.min()}..{lab.max()}")
    fig = go.Figure()
    for c, name in enumerate(names):
        sel = lab == c
        if sel.any():
            fig.add_trace(go.Scatter(x=pts[sel, 0], y=pts[sel, 1], mode="markers", name=str(name),
                                     marker={"size": 7, "color": _QUALITATIVE[c % len(_QUALITATIVE)]}))
    fig.update_layout(title={"text": title, "x": 0.5, "xanchor": "center"} if title else None,
                      xaxis={"title": {"text": "principal axis 1"}}, yaxis={"title": {"text": "principal axis 2"}},
                      height=420, margin={"l": 10, "r": 10, "t": 50 if title else 10, "b": 10})
    return fig
