"""k3d views for large point clouds (WebGL, hundreds of thousands of points).

Introduced in ``lectures/01_data_and_representations.ipynb``.

k3d is imported lazily: when it is missing (or its widget frontend is), use
:func:`course_lib.viz.plot_points`, which caps the cloud instead.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .plotly_vis import _as_points, _subsample, _to_numpy, plot_points

__all__ = ["k3d_points", "k3d_available"]


def _import_k3d() -> Any:
    try:
        import k3d
    except Exception:  # noqa: BLE001 - any failure means "no k3d"
        return None
    return k3d


def k3d_available() -> bool:
    """True when the ``k3d`` package imports.

    Introduced in ``lectures/01_data_and_representations.ipynb``.
    """
    return _import_k3d() is not None


def _hex_to_int(colour: str) -> int:
    h = colour.lstrip("#")
    if len(h) != 6:
        raise ValueError(f"k3d_points needs a hex colour like '#1f77b4', got {colour!r}")
    return int(h, 16)


def k3d_points(
    points: Any,
    color: Any = None,
    max_points: int | None = None,
    point_size: float | None = None,
    *,
    shader: str = "3d",
    plot: Any = None,
    name: str | None = None,
    seed: int = 0,
    height: int = 450,
) -> Any:
    """A k3d plot of a point cloud (uncapped by default: k3d draws millions of points).

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    Args:
        points: ``(N, 3)`` tensor or array.
        color: ``None``, a hex colour ``"#rrggbb"``, ``(N,)`` values (mapped through Viridis)
            or ``(N, 3)`` RGB in [0, 1] (floats) or [0, 255] (integers).
        max_points: optional cap (a seeded random subset, as in :func:`plot_points`).
        point_size: point size in scene units (default: 1/200 of the bounding-box diagonal).
        shader: k3d shader: ``"3d"``, ``"flat"``, ``"mesh"``, ``"dot"``.
        plot: add to this ``k3d.Plot`` instead of a new one.
        name: object name shown in k3d's menu.
        seed: seed of the subset when capping.

    Returns:
        a ``k3d.plot.Plot``; when k3d is not installed, a warning and the plotly
        figure of :func:`plot_points` (capped at its default) instead.
    """
    pts = _as_points(points)
    k3d = _import_k3d()
    if k3d is None:
        warnings.warn(
            "k3d is not installed (pip install k3d); showing a capped plotly figure instead.",
            RuntimeWarning, stacklevel=2,
        )
        return plot_points(pts, color=color, title=name)
    n = len(pts)
    idx = _subsample(n, max_points, seed)
    shown = pts if idx is None else pts[idx]
    if point_size is None:
        diag = float(np.linalg.norm(shown.max(0) - shown.min(0))) or 1.0
        point_size = diag / 200.0
    kw: dict[str, Any] = {}
    if color is None:
        kw["color"] = 0x1F77B4
    elif isinstance(color, str):
        kw["color"] = _hex_to_int(color)
    else:
        vals = _to_numpy(color, "color")
        if vals.shape[0] != n:
            raise ValueError(f"color has {vals.shape[0]} entries for {n} points")
        vals = vals if idx is None else vals[idx]
        if vals.ndim == 2 and vals.shape[1] == 3:
            rgb = vals.astype(np.float64)
            if np.issubdtype(vals.dtype, np.floating):
                rgb = rgb * 255.0
            rgb = np.clip(rgb, 0, 255).astype(np.uint32)
            kw["colors"] = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
        elif vals.ndim == 1:
            v = vals.astype(np.float32)
            kw.update(attribute=v, color_map=k3d.colormaps.matplotlib_color_maps.Viridis,
                      color_range=[float(np.nanmin(v)), float(np.nanmax(v))])
        else:
            raise ValueError(f"color should be (N,) values or (N, 3) RGB, got shape {tuple(vals.shape)}")
    obj = k3d.points(positions=shown.astype(np.float32), point_size=float(point_size), shader=shader,
                     name=name or f"{len(shown):,} points", **kw)
    if plot is None:
        plot = k3d.plot(height=height, grid_visible=False)
    plot += obj
    _attach_static_fallback(plot, pts, color, name)
    return plot


def _attach_static_fallback(plot: Any, pts: np.ndarray, color: Any, name: str | None) -> None:
    """Make the plot display with a capped plotly copy next to the widget view.

    A frontend without the widget manager (nbviewer, a headless run) then shows the
    static figure instead of nothing.  Only the points drawn by :func:`k3d_points` are
    in the fallback.
    """
    from .widgets import static_bundle

    widget_bundle = plot._repr_mimebundle_

    def bundle(**kwargs: Any) -> Any:
        out = static_bundle(plot_points(pts, color=color, title=name))
        got = widget_bundle(**kwargs)
        if isinstance(got, tuple):  # (data, metadata), as anywidget returns it
            out.update(got[0] or {})
            return out, got[1]
        out.update(got or {})
        return out

    plot._repr_mimebundle_ = bundle
