"""A real dataset's mesh standing in for a ShapeNet-lite shape where a chapter scores or renders one shape.

Introduced in ``lectures/09_differentiable_rendering.ipynb`` (and used by chapters 07 and 11).  ShapeNet-lite's
:class:`course_lib.data.Shape` can be rebuilt from ``(category, seed)`` and answers exact questions (surface
samples, occupancy, renders).  A mesh of ModelNet or ShapeNetCore is answered from the mesh itself, prepared as
:class:`course_lib.data.real_split.RealShapes` prepares it (normalised into the course's frame, orientation
repaired): :class:`MeshShape` has the same methods the chapters call on a ``Shape``:

* ``sample_surface(n, stream=...)``: the area-uniform samples of the rows' streams (0 input, 1 target, 2 oracle:
  the same points as the rows' ``points`` / ``target_points`` / ``oracle_points`` of that size);
* ``occupancy(points)``: the generalised winding number of the repaired mesh >= 0.5 (the rows' ``occupancy``),
  ``sdf(points)``: the exact distance to the mesh with that sign;
* ``mesh()``: the repaired mesh (a ``Shape``'s is extracted by marching cubes);
* ``render(...)``: exact ray casting of the mesh (:func:`course_lib.data.views.render_mesh`) with
  :func:`course_lib.data.render`'s cameras; ``parts`` is empty (real meshes have no part labels).

:func:`row_shape` gives the shape of row ``i`` of a chapter loader's rows (a ``MeshShape`` for rows of a real
dataset, which carry ``path``; ShapeNet-lite's ``Shape`` otherwise); :func:`real_shapes` the first meshes of
each category of a real split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["MeshShape", "load_mesh_shape", "row_shape", "real_shapes"]


@dataclass
class MeshShape:
    """One real mesh (normalised, orientation repaired) with the methods of :class:`course_lib.data.Shape` that the
    chapters use; ``seed`` is the rows' ``seed`` (the CRC32 of the file's path below the dataset's root)."""

    category: str
    seed: int
    path: str
    dataset: str
    surface: Any = field(repr=False)  # the trimesh.Trimesh
    parts: tuple[str, ...] = ()

    def mesh(self, resolution: int | None = None) -> Any:
        """The repaired mesh itself (``resolution``, the marching-cubes resolution of a ``Shape``'s, is unused)."""
        return self.surface

    def sample_surface(self, n: int, seed: int | None = None, *, stream: int = 0,
                       device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """``n`` area-uniform points of the mesh and their face normals: stream ``stream`` of seed ``seed``
        (default the mesh's own: the rows' samplings)."""
        from course_lib.geometry.sampling import sample_mesh_surface

        p, nrm = sample_mesh_surface(self.surface, int(n), seed=[int(self.seed if seed is None else seed), int(stream)])
        return p.to(device), nrm.to(device)

    def occupancy(self, points: Tensor) -> Tensor:
        """Inside (bool) at ``points (..., 3)``: the winding number of the repaired mesh >= 0.5."""
        from course_lib.geometry.mesh_sdf import winding_number

        pts = torch.as_tensor(points)
        w = winding_number(self.surface, pts.reshape(-1, 3).double().cpu(), repair=False)
        return (w >= 0.5).reshape(pts.shape[:-1]).to(pts.device)

    def sdf(self, points: Tensor) -> Tensor:
        """Signed distance to the repaired mesh at ``points (..., 3)`` (exact magnitude, winding-number sign)."""
        from course_lib.geometry.mesh_sdf import mesh_sdf

        pts = torch.as_tensor(points)
        d = mesh_sdf(self.surface, pts.reshape(-1, 3).double().cpu(), repair=False)
        return d.reshape(pts.shape[:-1]).to(device=pts.device, dtype=pts.dtype if pts.is_floating_point()
                                             else torch.float32)

    def render(self, azimuth: float = 30.0, elevation: float = 20.0, distance: float = 2.6, fov: float = 50.0,
               size: int | None = None, *, color: str = "uniform", **kw: Any) -> dict[str, Any]:
        """The mesh rendered by exact ray casting with ShapeNet-lite's cameras and shading."""
        from course_lib.data.views import render_mesh

        return render_mesh(self.surface, azimuth=azimuth, elevation=elevation, distance=distance, fov=fov, size=size,
                           color="uniform" if color == "parts" else color, **kw)

    def key(self) -> str:
        """What identifies the mesh in a cache key: the dataset, the path and the file's size."""
        p = Path(self.path)
        return f"{self.dataset}:{p.as_posix()}:{p.stat().st_size if p.exists() else -1}"


def load_mesh_shape(path: str, category: str, seed: int, dataset: str) -> MeshShape:
    """The mesh at ``path`` read, normalised and repaired as :class:`course_lib.data.real_split.RealShapes` does."""
    import trimesh

    from course_lib.data.real import load_mesh
    from course_lib.geometry.mesh_sdf import repair_orientation

    v, f, _ = repair_orientation(load_mesh(path))
    if len(f) == 0:
        raise ValueError(f"{path}: the mesh has no faces")
    return MeshShape(str(category), int(seed), str(path), str(dataset), trimesh.Trimesh(v, f, process=False))


def row_shape(data: Mapping[str, Any], i: int) -> Any:
    """The shape of row ``i`` of a chapter loader's rows: a :class:`MeshShape` for a real dataset's rows (they hold
    ``path``), else ShapeNet-lite's :func:`course_lib.data.make_shape` from the row's category and seed."""
    if "path" in data:
        from .common import real_dataset

        return load_mesh_shape(data["path"][i], data["category"][i], int(data["seed"][i]),
                               real_dataset(data) or "real")
    from course_lib.data import make_shape

    return make_shape(data["category"][i], int(data["seed"][i]))


def real_shapes(split: str, categories: Sequence[str], per_category: int, *, dataset: str | None = None,
                root: str | None = None, profile: str | None = None, inside: bool = False) -> list[MeshShape]:
    """The first ``per_category`` meshes of each of ``categories`` in ``split`` of a real dataset (``dataset`` /
    ``root`` or ``COURSE_DATASET`` and its root variable), as :class:`MeshShape`, category by category.

    ``inside=True`` skips the meshes whose inside cannot be decided (:class:`course_lib.data.real_split.RealShapes`'
    rule for ``occupancy``), as the rows of an inside/outside representation do; a category with fewer meshes
    than asked raises.  Inside :func:`course_lib.data.no_test_reads` asking for ``"test"`` raises."""
    from course_lib.data.real_split import RealShapes, dataset_name

    name = dataset_name(dataset)
    if name == "shapenet-lite":
        raise ValueError("real_shapes reads a real dataset: give dataset='modelnet' or 'shapenetcore' (or set "
                         "COURSE_DATASET)")
    ds = RealShapes(name, split, ("occupancy",) if inside else ("points",), categories=list(categories),
                    shapes_per_category=int(per_category), root=root, profile=profile)
    out = []
    for cat in categories:
        got = [(c, p) for c, _, p in ds.entries if c == cat]
        if len(got) < int(per_category):
            raise ValueError(f"{name} {split}: category {cat!r} has {len(got)} usable mesh(es), {per_category} asked "
                             f"(skipped: {[m['path'] for m in ds.manifest]})")
        out += [load_mesh_shape(str(p), c, ds._seed(Path(p)), name) for c, p in got[:int(per_category)]]
    return out
