"""Geometry conversions: surface sampling, voxels, SDF grids, marching cubes, Poisson reconstruction.

Introduced in ``lectures/01_data_and_representations.ipynb``.
"""

from __future__ import annotations

from .mc import grid_points, marching_cubes, sdf_grid
from .sampling import as_trimesh, sample_mesh_surface

__all__ = ["as_trimesh", "grid_points", "marching_cubes", "sample_mesh_surface", "sdf_grid"]
