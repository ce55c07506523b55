"""course_lib: the library behind the course "Deep learning for 3D surface generation".

Every real implementation of the course lives here; the notebooks stay thin.
Subpackages (imported on first use, so ``import course_lib`` stays fast):

- ``config``   profiles, sizes, device, seeding
- ``data``     ShapeNet-lite procedural shapes, datasets, real-data loaders
- ``geometry`` sampling, voxels, marching cubes, Poisson, mesh utilities
- ``ops``      chamfer, knn, farthest-point sampling, ball query, EMD
- ``models``   encoders, decoders, whole models
- ``metrics``  evaluation with explicit conventions
- ``train``    the one training loop
- ``viz``      plotly / k3d figures and widgets
- ``checks``   self-checks called by the labs
- ``labs``     solutions -> labs generator
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "config", "data", "geometry", "ops", "models", "render", "metrics",
    "train", "viz", "checks", "labs", "results", "experiments",
}


def doctor(**kwargs: Any) -> Any:
    """Print an environment report; see :mod:`course_lib._doctor`."""
    from ._doctor import doctor as _doctor

    return _doctor(**kwargs)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'course_lib' has no attribute {name!r}")


__all__ = sorted(_SUBMODULES | {"doctor", "__version__"})
