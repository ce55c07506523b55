"""Figures and widgets: plotly figures tests can inspect, k3d for large clouds, degrading widgets.

Introduced in ``lectures/01_data_and_representations.ipynb``.

- :func:`plot_points`, :func:`plot_mesh`, :func:`plot_voxels`, :func:`plot_images`,
  :func:`plot_sdf_slice`, :func:`subplots`: return ``plotly.graph_objects.Figure`` objects.
- :func:`k3d_points`: a ``k3d.Plot`` for very large clouds (plotly fallback without k3d).
- :func:`interact`, :func:`widgets_available`: ipywidgets controls driving a figure, with a
  static fallback for frontends without the widget manager.
- :func:`gallery`: browse the procedural shapes of ``course_lib.data``.
"""

from __future__ import annotations

from .k3d_vis import k3d_available, k3d_points
from .plotly_vis import (
    DEFAULT_MAX_POINTS,
    plot_confusion,
    plot_curves,
    plot_diagram,
    plot_embedding,
    plot_images,
    plot_mesh,
    plot_points,
    plot_sdf_slice,
    plot_voxels,
    side_by_side,
    subplots,
    voxel_faces,
)
from .shape_gallery import REPRESENTATIONS, gallery, gallery_figure
from .widgets import Interactive, interact, static_bundle, widgets_available

__all__ = [
    "DEFAULT_MAX_POINTS",
    "REPRESENTATIONS",
    "Interactive",
    "gallery",
    "gallery_figure",
    "interact",
    "k3d_available",
    "k3d_points",
    "plot_confusion",
    "plot_curves",
    "plot_diagram",
    "plot_embedding",
    "plot_images",
    "plot_mesh",
    "plot_points",
    "plot_sdf_slice",
    "plot_voxels",
    "static_bundle",
    "side_by_side",
    "subplots",
    "voxel_faces",
    "widgets_available",
]
