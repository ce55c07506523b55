"""ShapeNet-lite: procedural shapes with exact SDFs, samplers, rendered views, datasets, real-data loaders.

Introduced in ``lectures/01_data_and_representations.ipynb``.
"""

from __future__ import annotations

from .dataset import REPRESENTATIONS, ShapeNetLite
from .real import ModelNet, ShapeNetCore, load_mesh, normalize_mesh, read_obj, read_off
from .samplers import (
    DEFAULT_SIGMAS,
    sample_near_surface,
    sample_occupancy,
    sample_sdf,
    sdf_gradient_stats,
    voxel_centers,
    voxel_shell,
    voxelize,
)
from .shapes import CATEGORIES, GENERATOR_VERSION, MAX_SEED, Shape, make_shape
from .splits import (
    RESERVED,
    SAMPLING_STREAMS,
    SPLIT_SEED_OFFSET,
    SPLITS,
    TestSplitReadError,
    no_test_reads,
    reserved_seed,
    split_of,
    split_seeds,
)
from .views import depth_to_points, look_at, render, render_mesh

__all__ = [
    "ModelNet", "ShapeNetCore", "load_mesh", "normalize_mesh", "read_obj", "read_off",
    "CATEGORIES", "DEFAULT_SIGMAS", "REPRESENTATIONS", "SPLITS", "ShapeNetLite", "split_seeds", "GENERATOR_VERSION",
    "MAX_SEED", "RESERVED", "SAMPLING_STREAMS", "SPLIT_SEED_OFFSET", "reserved_seed", "split_of", "TestSplitReadError", "no_test_reads", "Shape", "look_at",
    "make_shape",
    "render", "render_mesh", "depth_to_points", "sdf_gradient_stats", "sample_near_surface", "sample_occupancy", "sample_sdf", "voxel_centers", "voxel_shell", "voxelize",
]
