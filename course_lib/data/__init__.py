"""ShapeNet-lite: procedural shapes with exact SDFs, samplers, rendered views, datasets, real-data loaders.

Introduced in ``lectures/01_data_representations.ipynb``.
"""

from __future__ import annotations

from .shapes import CATEGORIES, GENERATOR_VERSION, MAX_SEED, Shape, make_shape

__all__ = ["CATEGORIES", "GENERATOR_VERSION", "MAX_SEED", "Shape", "make_shape"]
