"""Differentiable rendering in plain PyTorch: cameras, hard and soft (SoftRas) rasterisers, losses.

Introduced in ``lectures/09_differentiable_rendering.ipynb``.  Cameras follow the
convention of :mod:`course_lib.data.views` (its ``K`` and ``Rt``), so a mesh rendered
here lines up with :func:`course_lib.data.render` of the same shape.
"""

from __future__ import annotations

from .cameras import Cameras, look_at_cameras, perspective_K, project
from .losses import silhouette_iou, silhouette_iou_loss
from .raster import (
    DEFAULT_GAMMA,
    DEFAULT_SIGMA,
    face_shading,
    faces_per_pixel,
    rasterize_silhouette,
    render_mesh,
)

__all__ = [
    "Cameras", "DEFAULT_GAMMA", "DEFAULT_SIGMA", "face_shading", "faces_per_pixel", "look_at_cameras", "perspective_K", "project",
    "rasterize_silhouette", "render_mesh", "silhouette_iou", "silhouette_iou_loss",
]
