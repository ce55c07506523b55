"""Geometry conversions: surface sampling, voxels, SDF grids, marching cubes, Poisson reconstruction.

Introduced in ``lectures/01_data_and_representations.ipynb``.
"""

from __future__ import annotations

from .mc import grid_points, marching_cubes, sdf_grid, sdf_grid_narrow_band
from .memory import fitted_exponents, memory_table, mlp_sdf, nbytes, surface_voxels
from .poisson import poisson_indicator, poisson_reconstruct
from .sampling import as_trimesh, sample_mesh_surface
from .voxels import mesh_to_voxels, sdf_to_voxels

__all__ = [
    "as_trimesh", "fitted_exponents", "grid_points", "marching_cubes", "memory_table", "mesh_to_voxels", "mlp_sdf",
    "nbytes", "poisson_indicator", "surface_voxels",
    "poisson_reconstruct", "sample_mesh_surface", "sdf_grid", "sdf_grid_narrow_band", "sdf_to_voxels",
]

# --- 07 implicit fields: mesh -> SDF, hierarchical extraction, autograd normals ----------
# isort: split
from .extract import (  # noqa: F401, E402
    ExtractInfo,
    as_field,
    extract_mesh,
    field_grid,
    field_normals,
    hierarchical_extract,
    hierarchical_grid,
    mesh_field_normal_consistency,
)
from .mesh_sdf import (  # noqa: F401, E402
    has_igl,
    mesh_box,
    mesh_sdf,
    point_triangle_distance,
    sample_mesh_occupancy,
    sample_mesh_sdf,
    winding_number,
)

__all__ += [
    "ExtractInfo", "as_field", "extract_mesh", "field_grid", "field_normals", "hierarchical_extract",
    "hierarchical_grid", "mesh_field_normal_consistency", "has_igl", "mesh_box", "mesh_sdf",
    "point_triangle_distance", "sample_mesh_occupancy", "sample_mesh_sdf", "winding_number",
]

# isort: split
# chapter 09 (differentiable rendering): mesh regularisers and the icosphere template
from .mesh_reg import (  # noqa: E402
    edge_face_pairs,
    flatten_loss,
    icosphere,
    laplacian_loss,
    mesh_edges,
    uniform_laplacian,
)

__all__ += ["edge_face_pairs", "flatten_loss", "icosphere", "laplacian_loss", "mesh_edges", "uniform_laplacian"]

# isort: split
# --- 04 octrees: grid-octrees (OctNet) -------------------------------------------
from .octree import (  # noqa: F401, E402
    Octree,
    OctreeConv3d,
    build_octree,
    dense_states,
    octree_from_boxes,
    octree_from_mesh,
    octree_from_sdf,
    octree_pool,
    octree_unpool,
    subdivide,
)

__all__ += ["Octree", "OctreeConv3d", "build_octree", "dense_states", "octree_from_boxes", "octree_from_mesh",
            "octree_from_sdf", "octree_pool", "octree_unpool", "subdivide"]
