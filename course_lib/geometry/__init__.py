"""Geometry conversions: surface sampling, voxels, SDF grids, marching cubes, Poisson reconstruction.

Introduced in ``lectures/01_data_and_representations.ipynb``.
"""

from __future__ import annotations

from .mc import grid_points, marching_cubes, sdf_grid, sdf_grid_narrow_band
from .poisson import poisson_indicator, poisson_reconstruct
from .sampling import as_trimesh, sample_mesh_surface
from .voxels import mesh_to_voxels, sdf_to_voxels

__all__ = [
    "as_trimesh", "grid_points", "marching_cubes", "mesh_to_voxels", "poisson_indicator",
    "poisson_reconstruct", "sample_mesh_surface", "sdf_grid", "sdf_grid_narrow_band", "sdf_to_voxels",
]
