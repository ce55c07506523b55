"""Point-cloud operations: kNN, gathering, farthest-point sampling, ball query, Chamfer, EMD.

Pure PyTorch (scipy, and pykdtree when installed, on the CPU where they are the better tool),
batched, differentiable, on CPU and GPU: no CUDA extension to build.

Introduced in ``lectures/02_encoders.ipynb`` (kNN, FPS, ball query) and
``lectures/05_point_sets.ipynb`` (Chamfer, EMD).
"""

from __future__ import annotations

from .chamfer import chamfer_distance
from .emd import EMDResult, emd
from .neighbors import gather_points, knn
from .sampling import ball_query, coordinate_hash, farthest_point_sampling

__all__ = ["knn", "gather_points", "farthest_point_sampling", "ball_query", "coordinate_hash", "chamfer_distance", "emd",
           "EMDResult"]
