"""``ShapeNetLite``: a torch Dataset over (category, seed) pairs, cached on disk.

Introduced in ``lectures/01_data_and_representations.ipynb``.

Splits
------
The one split scheme of :mod:`course_lib.data.splits`: the ``i``-th shape of a category has
seed ``1_000 + i`` in ``train``, ``1_000_000 + i`` in ``val`` and ``3_000_000 + i`` in
``test``; seeds below 1,000 are reserved (templates, demo shapes).  The number of shapes per
category comes from the config sizes ``data.shapes_per_category_<split>`` of the profile.

Input and target
----------------
``"points"`` and ``"target_points"`` are two *independent* samplings of the same surface
(sampling streams 0 and 1), ``"oracle_points"`` a third (stream 2): train a model on
``points`` and score it against ``target_points``, so that it is never scored on its own input.

Cache
-----
Each representation of each shape is stored as one ``.npz`` file under
``config.cache_dir() / "shapenet_lite" / "v<GENERATOR_VERSION>" / <category> / <seed>/``
(``v<GENERATOR_VERSION>-wide-r<revision>`` for the wide family, ``COURSE_VARIETY=wide``, whose ``cache_dir`` is also its own),
named by the representation and its parameters (the generator version is in the
path *and* inside the file).  Files are written atomically (a temporary file in
the same folder, then ``os.replace``; no fsync: a power cut may lose a file, which is then
rebuilt), so concurrent DataLoader workers and
interrupted runs never leave half-written files under the final name.  A file that
cannot be read, fails its zip CRC check, has the wrong key, or has arrays of the
wrong shape, dtype or with NaNs is rebuilt and overwritten, never trusted.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import config
from .samplers import DEFAULT_SIGMAS, sample_occupancy, sample_sdf, voxelize
from .shapes import CATEGORIES, GENERATOR_VERSION, Shape, check_category, family_tag, make_shape
from .splits import SAMPLING_STREAMS, SPLIT_SEED_OFFSET, SPLITS, split_seeds
from .views import render

__all__ = ["ShapeNetLite", "SPLITS", "REPRESENTATIONS", "SPLIT_SEED_OFFSET", "split_seeds",
           "read_cache_file", "write_cache_file"]

REPRESENTATIONS: tuple[str, ...] = ("points", "target_points", "oracle_points", "parts", "sdf", "occupancy",
                                   "voxels", "image")

# --- atomic, validated cache files ----------------------------------------------

def write_cache_file(path: Path, arrays: dict[str, np.ndarray], key: str) -> None:
    """Write ``arrays`` and ``key`` to ``path`` (.npz) atomically: temporary file, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __key__=np.array(key), **arrays)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_cache_file(path: Path, key: str, spec: dict[str, tuple[tuple[int, ...], str]]) -> dict[str, np.ndarray] | None:
    """Read a cache file if it is intact and matches ``key`` and ``spec`` (name -> (shape, dtype kind)).

    Returns ``None`` (meaning "rebuild") for a missing, unreadable, truncated or
    mismatching file; every array is read completely so zip CRC errors surface here.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if "__key__" not in z.files or str(z["__key__"]) != key:
                return None
            out = {}
            for name, (shape, kind) in spec.items():
                if name not in z.files:
                    return None
                a = z[name]
                if tuple(a.shape) != tuple(shape) or a.dtype.kind != kind:
                    return None
                if kind == "f" and not np.all(np.isfinite(a)):
                    return None
                out[name] = a
            return out
    except Exception:  # any damage (BadZipFile, EOFError, ValueError, OSError, CRC) -> rebuild
        return None


# --- the dataset ---------------------------------------------------------------

def parse_view(view: Any) -> str | tuple[float, float, float]:
    """``"random"`` (or ``None``) or an ``(azimuth, elevation, distance)`` triple of floats; anything else is a
    ``ValueError`` naming both forms.  Shared by ShapeNet-lite and the real datasets' rendered views."""
    if view is None or isinstance(view, str):
        if view not in (None, "random"):
            raise ValueError(f"view must be 'random' or (azimuth, elevation, distance), got {view!r}")
        return "random"
    v = tuple(float(x) for x in view)
    if len(v) != 3:
        raise ValueError(f"view must be 'random' or (azimuth, elevation, distance), got {view!r}")
    return v  # type: ignore[return-value]


class ShapeNetLite(Dataset):
    """Procedural ShapeNet-lite shapes as a torch Dataset, one item per (category, seed).

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    Parameters
    ----------
    split: ``"train"``, ``"val"`` or ``"test"`` (disjoint seeds, see the module docstring).
    representations: any subset of :data:`REPRESENTATIONS`.  Item keys:
        ``"points"`` -> ``points`` (N, 3) float32 and unit ``normals`` (N, 3);
        ``"target_points"`` -> ``target_points``, ``target_normals`` (N_target, 3): an independent
        sampling of the same surface (the loss' and the metric's target);
        ``"oracle_points"`` -> ``oracle_points`` (N_target, 3): a third independent sampling;
        ``"parts"`` -> ``part`` (N,) int64, the part index of each of ``points`` into the shape's parts;
        ``"sdf"`` -> ``sdf_points`` (M, 3), ``sdf`` (M,) (80 % near the surface);
        ``"occupancy"`` -> ``occ_points`` (M, 3), ``occupancy`` (M,) float32 in {0, 1}
        (50 % near the surface); ``"voxels"`` -> ``voxels`` (R, R, R) float32 in {0, 1};
        ``"image"`` -> ``rgb`` (3, H, W), ``depth`` (H, W), ``silhouette`` (H, W), ``K`` (3, 3),
        ``Rt`` (3, 4).  Every item also has ``label`` (int), ``category`` (str), ``seed`` (int).
    n_target: points of ``target_points`` / ``oracle_points`` (default ``n_points``).
    n_points, n_sdf, voxel_resolution, image_size: default to the config sizes
        ``data.n_surface_points``, ``data.n_sdf_samples``, ``data.voxel_resolution``,
        ``data.image_size`` of ``profile``.
    categories: a subset of :data:`CATEGORIES` (default: all), in that order.
    shapes_per_category: overrides ``data.shapes_per_category_<split>``.
    view: ``"random"`` (a view per shape drawn from its seed: azimuth in [0, 360),
        elevation in [10, 40] degrees, distance 2.6) or a fixed ``(azimuth, elevation, distance)``.
    cache: store and reuse items under ``cache_dir`` (default ``config.cache_dir()``).
    """

    def __init__(self, split: str = "train", representations: Sequence[str] | str = ("points",),
                 n_points: int | None = None, categories: Iterable[str] | None = None,
                 profile: str | None = None, cache: bool = True, *, n_sdf: int | None = None,
                 voxel_resolution: int | None = None, image_size: int | None = None,
                 shapes_per_category: int | None = None, view: str | Sequence[float] = "random",
                 cache_dir: str | os.PathLike | None = None, n_target: int | None = None) -> None:
        if isinstance(representations, str):
            representations = (representations,)
        reps = tuple(representations)
        bad = [r for r in reps if r not in REPRESENTATIONS]
        if bad or not reps:
            raise ValueError(
                f"Unknown representation(s) {bad or reps!r}. Valid representations are: {', '.join(REPRESENTATIONS)}"
            )
        self.split = split
        if split not in SPLITS:
            raise ValueError(f"Unknown split {split!r}. Valid splits are: {', '.join(SPLITS)}")
        self.profile = config.get_profile() if profile is None else profile
        cats = CATEGORIES if categories is None else tuple(categories)
        if isinstance(categories, str):
            cats = (categories,)
        for c in cats:
            check_category(c)
        if not cats:
            raise ValueError("categories must not be empty")
        self.categories = tuple(c for c in CATEGORIES if c in cats)
        self.representations = reps

        def sz(value: Any, key: str) -> int:
            v = config.size(key, self.profile) if value is None else value
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{key.split('.')[-1]} must be a positive int, got {v!r}")
            return int(v)

        self.n_points = sz(n_points, "data.n_surface_points")
        self.n_target = self.n_points if n_target is None else sz(n_target, "n_target")
        self.n_sdf = sz(n_sdf, "data.n_sdf_samples")
        self.voxel_resolution = sz(voxel_resolution, "data.voxel_resolution")
        self.image_size = sz(image_size, "data.image_size")
        n = config.size(f"data.shapes_per_category_{split}", self.profile) \
            if shapes_per_category is None else shapes_per_category
        self.seeds = split_seeds(split, n)
        self.view = parse_view(view)
        self.cache = bool(cache)
        self.cache_root = Path(cache_dir) if cache_dir is not None else config.cache_dir()
        self.variety = config.variety()  # the family is fixed when the dataset is made (COURSE_VARIETY)
        self.items: list[tuple[str, int]] = [(c, s) for c in self.categories for s in self.seeds]

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        fam = "" if self.variety == "base" else f", variety={self.variety!r}"
        return (f"ShapeNetLite(split={self.split!r}, {len(self)} shapes, categories={len(self.categories)}, "
                f"representations={self.representations}, profile={self.profile!r}{fam})")

    # --- per-representation build specs ------------------------------------
    def _view_of(self, category: str, seed: int) -> tuple[float, float, float]:
        if self.view != "random":
            return self.view  # type: ignore[return-value]
        ss = np.random.SeedSequence([seed, 41, CATEGORIES.index(category)])
        rng = np.random.default_rng(ss)
        return float(rng.uniform(0, 360)), float(rng.uniform(10, 40)), 2.6

    def _spec(self, rep: str, category: str, seed: int) -> tuple[str, dict[str, tuple[tuple[int, ...], str]]]:
        n, m, r, s = self.n_points, self.n_sdf, self.voxel_resolution, self.image_size
        if rep == "points":
            return f"points-n{n}", {"points": ((n, 3), "f"), "normals": ((n, 3), "f")}
        if rep == "target_points":
            nt = self.n_target
            return (f"points-n{nt}-stream{SAMPLING_STREAMS['target']}",
                    {"target_points": ((nt, 3), "f"), "target_normals": ((nt, 3), "f")})
        if rep == "oracle_points":
            nt = self.n_target
            return f"points-n{nt}-stream{SAMPLING_STREAMS['oracle']}", {"oracle_points": ((nt, 3), "f")}
        if rep == "parts":
            return f"parts-n{n}", {"part": ((n,), "i")}
        if rep == "sdf":
            sig = "-".join(f"{x:g}" for x in DEFAULT_SIGMAS)
            return f"sdf-n{m}-f0.8-s{sig}", {"sdf_points": ((m, 3), "f"), "sdf": ((m,), "f")}
        if rep == "occupancy":
            sig = "-".join(f"{x:g}" for x in DEFAULT_SIGMAS)
            return f"occ-n{m}-f0.5-s{sig}", {"occ_points": ((m, 3), "f"), "occupancy": ((m,), "b")}
        if rep == "voxels":
            return f"voxels-r{r}", {"voxels": ((r, r, r), "b")}
        a, e, d = self._view_of(category, seed)
        return (f"image-s{s}-a{a:.4f}-e{e:.4f}-d{d:.4f}",
                {"rgb": ((3, s, s), "f"), "depth": ((s, s), "f"), "silhouette": ((s, s), "f"),
                 "K": ((3, 3), "f"), "Rt": ((3, 4), "f")})

    def _build(self, rep: str, shape: Shape) -> dict[str, np.ndarray]:
        if rep == "points":
            p, nrm = shape.sample_surface(self.n_points)
            return {"points": p.numpy(), "normals": nrm.numpy()}
        if rep == "target_points":
            p, nrm = shape.sample_surface(self.n_target, stream=SAMPLING_STREAMS["target"])
            return {"target_points": p.numpy(), "target_normals": nrm.numpy()}
        if rep == "oracle_points":
            p, _ = shape.sample_surface(self.n_target, stream=SAMPLING_STREAMS["oracle"])
            return {"oracle_points": p.numpy()}
        if rep == "parts":
            p, _ = shape.sample_surface(self.n_points)
            return {"part": shape.part_labels(p).numpy().astype(np.int64)}
        if rep == "sdf":
            p, d = sample_sdf(shape, self.n_sdf, near_surface_fraction=0.8)
            return {"sdf_points": p.numpy(), "sdf": d.numpy()}
        if rep == "occupancy":
            p, o = sample_occupancy(shape, self.n_sdf, near_surface_fraction=0.5)
            return {"occ_points": p.numpy(), "occupancy": o.numpy()}
        if rep == "voxels":
            return {"voxels": voxelize(shape, self.voxel_resolution).numpy()}
        a, e, d = self._view_of(shape.category, shape.seed)
        out = render(shape, azimuth=a, elevation=e, distance=d, size=self.image_size)
        return {k: out[k].numpy() for k in ("rgb", "depth", "silhouette", "K", "Rt")}

    def _version_dir(self) -> str:
        """``v<GENERATOR_VERSION>``, with ``-<family>-r<revision>`` for a family other than the base one."""
        return f"v{GENERATOR_VERSION}" + family_tag(self.variety)

    def cache_path(self, rep: str, category: str, seed: int) -> Path:
        """Where the cache file of one representation of one shape lives."""
        name, _ = self._spec(rep, category, seed)
        return self.cache_root / "shapenet_lite" / self._version_dir() / category / str(seed) / f"{name}.npz"

    def _get(self, rep: str, category: str, seed: int, shape_box: list[Shape]) -> dict[str, np.ndarray]:
        name, spec = self._spec(rep, category, seed)
        key = f"shapenet_lite/{self._version_dir()}/{category}/{seed}/{name}"
        path = self.cache_path(rep, category, seed)
        if self.cache:
            got = read_cache_file(path, key, spec)
            if got is not None:
                return got
        if not shape_box:
            shape_box.append(make_shape(category, seed, variety=self.variety))
        arrays = self._build(rep, shape_box[0])
        if self.cache:
            try:
                write_cache_file(path, arrays, key)
            except OSError as err:  # read-only or full disk: keep going without the cache
                warnings.warn(f"ShapeNetLite: could not write the cache file {path}: {err}", stacklevel=3)
        return arrays

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} shapes")
        category, seed = self.items[index]
        item: dict[str, Any] = {"label": CATEGORIES.index(category), "category": category, "seed": seed}
        box: list[Shape] = []
        for rep in self.representations:
            arrays = self._get(rep, category, seed, box)
            for k, a in arrays.items():
                t = torch.from_numpy(np.ascontiguousarray(a))
                item[k] = t.float() if t.dtype == torch.bool else t
        return item

    def stacked(self, progress: bool = False) -> dict[str, Any]:
        """Every item stacked: each tensor key ``(S, ...)``, ``label`` ``(S,)`` int64, ``seed`` ``(S,)``
        int64, ``category`` a list of names; plus ``categories`` (this dataset's category tuple).

        Introduced in ``lectures/01_data_and_representations.ipynb``.  The small datasets of the
        course fit in memory; this is how chapters load a split once and batch it with
        :class:`course_lib.experiments.common.Batches`.
        """
        if len(self) == 0:
            raise ValueError(f"{self!r} is empty: nothing to stack")
        it: Iterable[int] = range(len(self))
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=f"ShapeNet-lite {self.split}")
        items = [self[i] for i in it]
        out: dict[str, Any] = {}
        for k, v in items[0].items():
            if isinstance(v, torch.Tensor):
                out[k] = torch.stack([x[k] for x in items])
        out["label"] = torch.tensor([x["label"] for x in items], dtype=torch.long)
        out["seed"] = torch.tensor([x["seed"] for x in items], dtype=torch.long)
        out["category"] = [x["category"] for x in items]
        out["categories"] = self.categories
        return out

    def shape(self, index: int) -> Shape:
        """The :class:`Shape` of item ``index`` (for meshes, renders from other views, part labels)."""
        category, seed = self.items[index]
        return make_shape(category, seed, variety=self.variety)

    def prepare(self, progress: bool = False) -> ShapeNetLite:
        """Build (or check) every item once, filling the cache; returns ``self``."""
        it: Iterable[int] = range(len(self))
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=f"ShapeNet-lite {self.split}")
        for i in it:
            self[i]
        return self
