"""Real datasets behind the course's one data API: ModelNet and ShapeNetCore with ShapeNet-lite's keys.

Introduced in ``lectures/01_data_and_representations.ipynb``.  ``load_split(split, representations,
dataset=...)`` (:func:`course_lib.experiments.common.load_split`) and the ``COURSE_DATASET`` environment
variable (``shapenet-lite``, the default, ``shapenetcore`` or ``modelnet``) pick the dataset; the roots come
from ``root=`` or ``COURSE_SHAPENET_DIR`` / ``COURSE_MODELNET_DIR``.  :class:`RealShapes` returns the keys
of :class:`course_lib.data.ShapeNetLite` for the representations real meshes support:

* ``points`` / ``normals``, ``target_points`` / ``target_normals``, ``oracle_points``: three independent
  area-uniform samplings of the normalised mesh (streams 0, 1, 2, reproducible per file);
* ``sdf`` -> ``sdf_points``, ``sdf`` (80 % near the surface, as ShapeNet-lite) and ``occupancy`` ->
  ``occ_points``, ``occupancy`` (50 % near the surface): the exact distance to the mesh, the sign from the
  generalised winding number of the mesh after :func:`course_lib.geometry.mesh_sdf.repair_orientation`
  (real meshes have flipped and doubled faces);
* ``voxels``: inside at the voxel centres by the same winding number (parity voxelisation breaks along
  every ray through a hole);
* ``image`` -> ``rgb``, ``depth``, ``silhouette``, ``K``, ``Rt``: one rendered view of the normalised mesh by
  exact ray casting (:func:`course_lib.data.views.render_mesh`), with ShapeNet-lite's cameras and shading:
  ``view="random"`` draws azimuth in [0, 360), elevation in [10, 40] degrees and distance 2.6 from the
  item's seed, as :class:`course_lib.data.ShapeNetLite` does from its, or a fixed
  ``(azimuth, elevation, distance)``; the size is ``image_size`` (default ``data.image_size``).  Needs no
  inside, so no mesh is skipped for it;
* ``label``, ``category``, ``seed`` (a stable id of the file: the CRC32 of its path below the root) and
  ``path``.

A mesh whose inside cannot be decided (more than :data:`MAX_AMBIGUOUS` of uniform points of its box have a
winding number between 0.1 and 0.9 after the repair: large holes, a sheet, a soup) is **skipped** when an
inside/outside representation is asked for, and listed with its reason in :attr:`RealShapes.manifest`;
it is never returned with wrong labels.

Why the winding number and not visibility from depth maps (OccNet's pre-processing idea,
:func:`course_lib.geometry.mesh_sdf.visibility_inside`): measured on 20 ShapeNet-lite meshes against the exact
occupancy (``benchmarks/results/mesh_sign-laptop-cpu2.md``, part ``methods``), the repaired winding number agrees
more often on every corruption (flipped, doubled, holes of 2 % and 10 % of the faces, a closed internal shell, a
stray sheet, and combinations), paired over the meshes: near the surface 0.978 against 0.923 on clean, flipped,
doubled faces and internal parts, 0.972 against 0.866 with a 2 % hole, 0.933 against 0.777 with a 10 % hole
(uniform queries 0.996-1.000 against 0.977-0.997), at a twentieth of the cost (about 0.1 s against 2 s per
mesh).  Visibility is limited by its pixels near the surface and sees into every hole; using it only where the
winding number is ambiguous (``0.1 < w < 0.9``) was also behind (0.961 against 0.972 near the surface with a 2 %
hole).  So inside/outside stays the repaired winding number, with the skip rule above.

Splits: ShapeNetCore's deterministic split by model id (:class:`course_lib.data.ShapeNetCore`); ModelNet
has ``train`` and ``test`` folders, and its ``val`` is a deterministic tenth of ``train`` (the CRC32 of
the file name mod 10 equal to 0), removed from ``train``, so that choices can be made on validation here
too.  Official splits: ModelNet's ``train`` and ``test`` folders are used as they are (``test`` is the whole ``test``
folder; ``train`` and ``val`` partition the ``train`` folder as above); for ShapeNetCore a split file in the official
``all.csv`` format (``id,synsetId,subSynsetId,modelId,split``: ``split_csv=``, ``--split-csv`` or
``COURSE_SHAPENET_SPLIT_CSV``, :func:`course_lib.data.real.read_split_csv`) puts each model it names in its split
(models it does not name are in none), otherwise the deterministic split by model id.

Cache: ``config.cache_dir() / "real" / "v<_CACHE_VERSION>" / <dataset> / <hash of the path>``, one ``.npz`` per
representation named by its parameters (for ``image``: size and view, as ShapeNet-lite's), written atomically
(a temporary file in the same folder, then ``os.replace``) with a key inside (the cache version, the mesh's path
below the root and its size in bytes, the parameters) and checked on every read (key, every array's shape and
dtype, finite values, the zip CRC): a half-written, damaged, stale or foreign file is rebuilt, never trusted.

At scale: ``python -m course_lib.data.real_split --dataset modelnet --root PATH --split train --workers 8``
(or :meth:`RealShapes.prepare`, which :meth:`RealShapes.stacked` calls) builds every representation of every
mesh of a split in ``workers`` processes (default ``COURSE_WORKERS``, else 1: in this process) with a progress
bar in shapes per second, and prints the summary (shapes done, already cached, skipped with their reasons,
seconds, shapes per second).  Interrupted, it resumes: intact cache files are kept, the rest is rebuilt.  The
meshes skipped (unreadable, or inside/outside undecidable when such a representation is asked for) are listed
with their reason in ``manifest.json`` next to the dataset's cache (:func:`manifest_file`: ``path``,
``category``, ``reason``, ``kind``, ``size``); the next run skips them without reading them again, unless
``retry_skipped=True`` (``--retry-skipped``).  A mesh file whose size changed is looked at again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import config
from .dataset import parse_view

__all__ = ["DATASETS", "ENV_DATASET", "ENV_WORKERS", "ENV_SPLIT_CSV", "MAX_AMBIGUOUS", "dataset_name",
           "default_workers", "manifest_file", "read_manifest", "RealShapes", "format_summary", "main"]

DATASETS: tuple[str, ...] = ("shapenet-lite", "shapenetcore", "modelnet")
ENV_DATASET = "COURSE_DATASET"
ENV_WORKERS = "COURSE_WORKERS"
ENV_SPLIT_CSV = "COURSE_SHAPENET_SPLIT_CSV"
MAX_AMBIGUOUS = 0.02
"""Largest share of uniform points of a mesh's box whose winding number is between 0.1 and 0.9 (after the
orientation repair) for the mesh's inside/outside to be trusted."""
REAL_REPRESENTATIONS: tuple[str, ...] = ("points", "target_points", "oracle_points", "sdf", "occupancy", "voxels",
                                        "image")
_INSIDE_REPS = ("sdf", "occupancy", "voxels")
_STREAMS = {"points": 0, "target_points": 1, "oracle_points": 2}
_CACHE_VERSION = 2  # 2: a key (mesh size, parameters) in every file, the JSON manifest


def dataset_name(dataset: str | None = None) -> str:
    """The dataset to use: ``dataset``, else ``COURSE_DATASET``, else ``"shapenet-lite"``; checked."""
    name = (dataset if dataset is not None else os.environ.get(ENV_DATASET, "")).strip().lower() or "shapenet-lite"
    name = {"shapenet_lite": "shapenet-lite", "shapenet": "shapenetcore", "modelnet40": "modelnet",
            "modelnet10": "modelnet"}.get(name, name)
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r} (from {'dataset=' if dataset is not None else ENV_DATASET}); "
                         f"choose one of {', '.join(DATASETS)}")
    return name


def _entries(dataset: str, split: str, categories: Iterable[str] | str | None, root: str | os.PathLike | None,
             split_csv: str | os.PathLike | None = None) -> tuple[list[tuple[str, int, Path]], tuple[str, ...], Path]:
    """(category, label, path) of every mesh of the split, and the category names, and the root."""
    from .real import ModelNet, ShapeNetCore

    if dataset == "shapenetcore":
        csv_file = split_csv if split_csv is not None else (os.environ.get(ENV_SPLIT_CSV) or None)
        ds = ShapeNetCore(root, split, categories, representations=("points",), split_csv=csv_file)
        return ds.entries, ds.categories, ds.root
    if split_csv is not None:
        raise ValueError("split_csv is ShapeNet's split file; ModelNet's splits are its train and test folders")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    ds = ModelNet(root, "test" if split == "test" else "train", categories, representations=("points",))
    entries = ds.entries
    if split != "test":  # val: a deterministic tenth of ModelNet's train folder
        def in_val(p: Path) -> bool:
            return zlib.crc32(p.name.encode()) % 10 == 0

        entries = [e for e in entries if in_val(e[2]) == (split == "val")]
    return entries, ds.categories, ds.root


# --- one shape's arrays: built in this process or in a worker process ------------------------------------

class _Builder:
    """Everything a worker needs to build and cache one mesh's representations (picklable, no dataset state)."""

    def __init__(self, dataset: str, root: Path, cache_root: Path | None, n_points: int, n_target: int, n_sdf: int,
                 voxel_resolution: int, image_size: int, view: Any) -> None:
        self.dataset, self.root, self.cache_root = dataset, root, cache_root
        self.n_points, self.n_target, self.n_sdf = n_points, n_target, n_sdf
        self.voxel_resolution, self.image_size, self.view = voxel_resolution, image_size, view

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def seed(self, path: Path) -> int:
        return int(zlib.crc32(self.rel(path).encode()))

    def mesh(self, path: Path) -> Any:
        import trimesh

        from ..geometry.mesh_sdf import repair_orientation
        from .real import load_mesh

        v, f, _ = repair_orientation(load_mesh(path))
        if len(f) == 0:
            raise ValueError("the mesh has no faces")
        return trimesh.Trimesh(v, f, process=False)

    def view_of(self, path: Path) -> tuple[float, float, float]:
        if self.view != "random":
            return self.view  # type: ignore[no-any-return]
        rng = np.random.default_rng(np.random.SeedSequence([self.seed(path), 41]))
        return float(rng.uniform(0, 360)), float(rng.uniform(10, 40)), 2.6

    def inside_problem(self, mesh: Any, path: Path) -> str:
        from ..geometry.mesh_sdf import mesh_box, winding_number

        lo, hi = mesh_box(mesh, 0.1)
        rng = np.random.default_rng(self.seed(path))
        q = torch.as_tensor(rng.uniform(lo, hi, size=(2000, 3)))
        w = winding_number(mesh, q, repair=False)
        ambiguous = float(((w > 0.1) & (w < 0.9)).double().mean())
        if ambiguous > MAX_AMBIGUOUS:
            return (f"inside/outside undecidable after the orientation repair: {ambiguous:.1%} of uniform points "
                    f"have a winding number between 0.1 and 0.9 (at most {MAX_AMBIGUOUS:.0%} allowed): large "
                    "holes, an open sheet or a triangle soup")
        return ""

    def build(self, rep: str, path: Path, mesh: Any) -> dict[str, np.ndarray]:
        from ..geometry.mesh_sdf import sample_mesh_occupancy, sample_mesh_sdf, winding_number
        from ..geometry.sampling import sample_mesh_surface
        from .samplers import DEFAULT_SIGMAS

        seed = self.seed(path)
        if rep in _STREAMS:
            n = self.n_points if rep == "points" else self.n_target
            p, nrm = sample_mesh_surface(mesh, n, seed=[seed, _STREAMS[rep]])
            key = {"points": ("points", "normals"), "target_points": ("target_points", "target_normals"),
                   "oracle_points": ("oracle_points", None)}[rep]
            out = {key[0]: p.numpy()}
            if key[1]:
                out[key[1]] = nrm.numpy()
            return out
        if rep == "sdf":
            p, d = sample_mesh_sdf(mesh, self.n_sdf, near_surface_fraction=0.8, sigmas=DEFAULT_SIGMAS, seed=seed)
            return {"sdf_points": p.numpy(), "sdf": d.numpy()}
        if rep == "occupancy":
            p, o = sample_mesh_occupancy(mesh, self.n_sdf, near_surface_fraction=0.5, sigmas=DEFAULT_SIGMAS,
                                         seed=seed + 1)
            return {"occ_points": p.numpy(), "occupancy": o.numpy()}
        if rep == "image":
            from .views import render_mesh

            a, e, d = self.view_of(path)
            out = render_mesh(mesh, azimuth=a, elevation=e, distance=d, size=self.image_size)
            return {k: out[k].numpy() for k in ("rgb", "depth", "silhouette", "K", "Rt")}
        r = self.voxel_resolution
        c = (torch.arange(r, dtype=torch.float64) + 0.5) / r * 2 - 1  # cell centres of [-1, 1]^3
        grid = torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)
        return {"voxels": (winding_number(mesh, grid, repair=False) >= 0.5).reshape(r, r, r).numpy()}

    def spec(self, rep: str, path: Path) -> str:
        if rep == "image":
            a, e, d = self.view_of(path)
            return f"image-s{self.image_size}-a{a:.4f}-e{e:.4f}-d{d:.4f}"
        return {"points": f"points-n{self.n_points}", "target_points": f"target-n{self.n_target}",
                "oracle_points": f"oracle-n{self.n_target}", "sdf": f"sdf-n{self.n_sdf}",
                "occupancy": f"occ-n{self.n_sdf}", "voxels": f"voxels-r{self.voxel_resolution}"}[rep]

    def layout(self, rep: str) -> dict[str, tuple[tuple[int, ...], str]]:
        """The arrays of a representation: name -> (shape, dtype kind), checked on every read of the cache."""
        n, t, m, r, s = self.n_points, self.n_target, self.n_sdf, self.voxel_resolution, self.image_size
        return {"points": {"points": ((n, 3), "f"), "normals": ((n, 3), "f")},
                "target_points": {"target_points": ((t, 3), "f"), "target_normals": ((t, 3), "f")},
                "oracle_points": {"oracle_points": ((t, 3), "f")},
                "sdf": {"sdf_points": ((m, 3), "f"), "sdf": ((m,), "f")},
                "occupancy": {"occ_points": ((m, 3), "f"), "occupancy": ((m,), "b")},
                "voxels": {"voxels": ((r, r, r), "b")},
                "image": {"rgb": ((3, s, s), "f"), "depth": ((s, s), "f"), "silhouette": ((s, s), "f"),
                          "K": ((3, 3), "f"), "Rt": ((3, 4), "f")}}[rep]

    def cache_file(self, rep: str, path: Path) -> Path:
        if self.cache_root is None:
            raise RuntimeError("this dataset was made with cache=False")
        h = hashlib.sha1(f"{self.dataset}/{self.rel(path)}".encode()).hexdigest()[:16]
        return self.cache_root / h / f"{self.spec(rep, path)}.npz"

    def key(self, rep: str, path: Path) -> str:
        """What a cache file must hold to be trusted: the version, the mesh (path below the root and its size in
        bytes: a replaced file is rebuilt) and the representation's parameters."""
        return f"real-v{_CACHE_VERSION}|{self.dataset}|{self.rel(path)}|{_size(path)}|{self.spec(rep, path)}"

    def read(self, rep: str, path: Path) -> dict[str, np.ndarray] | None:
        """The cached arrays if the file is complete and matches (else ``None``: rebuild)."""
        from .dataset import read_cache_file

        if self.cache_root is None:
            return None
        return read_cache_file(self.cache_file(rep, path), self.key(rep, path), self.layout(rep))

    def has(self, rep: str, path: Path) -> bool:
        """Whether a cache file with the right key is there (cheap: its arrays are checked when read)."""
        if self.cache_root is None:
            return False
        try:
            with np.load(self.cache_file(rep, path), allow_pickle=False) as z:
                return "__key__" in z.files and str(z["__key__"]) == self.key(rep, path)
        except Exception:  # noqa: BLE001 - missing, half-written or damaged: not there
            return False

    def write(self, rep: str, path: Path, arrays: dict[str, np.ndarray]) -> None:
        from .dataset import write_cache_file

        if self.cache_root is not None:
            try:
                write_cache_file(self.cache_file(rep, path), arrays, self.key(rep, path))
            except OSError:  # a read-only or full disk: the arrays are still returned, only not kept
                pass

    def prepare(self, path: Path, reps: Sequence[str], check_inside: bool) -> tuple[str, str, int]:
        """Make one mesh ready: ``(reason, kind, built)``.  ``reason`` is '' when the mesh is usable, ``kind`` is
        ``"read"`` (unusable for anything) or ``"inside"`` (unusable for inside/outside), ``built`` the number of
        representations built now (those already cached and intact are not).  A cached inside/outside
        representation proves that the inside check passed when it was built, so it is not run again."""
        missing = [r for r in reps if self.read(r, path) is None]
        checked = any(r in _INSIDE_REPS and r not in missing for r in reps)
        if not missing and (checked or not check_inside):
            return "", "", 0
        try:
            mesh = self.mesh(path)
        except Exception as exc:  # noqa: BLE001 - an unreadable mesh is skipped with its reason
            return f"could not be read or repaired ({type(exc).__name__}: {exc})", "read", 0
        if check_inside and not checked:
            reason = self.inside_problem(mesh, path)
            if reason:
                return reason, "inside", 0
        if missing:
            self.remove_stale_temporaries(path)
        for rep in missing:
            self.write(rep, path, self.build(rep, path, mesh))
        return "", "", len(missing)

    def remove_stale_temporaries(self, path: Path, age_s: float = 3600.0) -> None:
        """Delete the temporary files an interrupted writer left in this mesh's cache folder (older than ``age_s``:
        a younger one may belong to a process writing it now).  They are never read: a file becomes visible
        only under its final name."""
        import time

        if self.cache_root is None:
            return
        folder = self.cache_file("points", path).parent
        with contextlib.suppress(OSError):
            for f in folder.glob("*.tmp"):
                with contextlib.suppress(OSError):
                    if time.time() - f.stat().st_mtime > age_s:
                        f.unlink()


def _size(path: Path) -> int:
    try:
        return int(path.stat().st_size)
    except OSError:
        return -1


_WORKER_BUILDER: _Builder | None = None


def _init_worker(builder: _Builder) -> None:
    global _WORKER_BUILDER
    torch.set_num_threads(1)  # one shape per process: the processes use the cores
    _WORKER_BUILDER = builder


def _prepare_in_worker(path: Path, reps: tuple[str, ...], check_inside: bool) -> tuple[str, str, int]:
    assert _WORKER_BUILDER is not None
    return _WORKER_BUILDER.prepare(path, reps, check_inside)


def default_workers() -> int:
    """Worker processes for preprocessing: ``COURSE_WORKERS`` if set, else 1 (in this process)."""
    value = os.environ.get(ENV_WORKERS, "").strip()
    if not value:
        return 1
    try:
        n = int(value)
    except ValueError as err:
        raise ValueError(f"{ENV_WORKERS} must be a positive integer, got {value!r}") from err
    if n < 1:
        raise ValueError(f"{ENV_WORKERS} must be a positive integer, got {value!r}")
    return n


# --- the manifest of skipped meshes -------------------------------------------------------------------------

def manifest_file(dataset: str) -> Path:
    """The JSON list of a real dataset's skipped meshes, next to its cache (see the module docstring)."""
    return config.cache_dir() / "real" / f"v{_CACHE_VERSION}" / dataset_name(dataset) / "manifest.json"


def read_manifest(dataset: str) -> dict[str, dict[str, Any]]:
    """The skipped meshes recorded for ``dataset``: path below the root -> entry (``path``, ``category``,
    ``reason``, ``kind``, ``size``).  A missing or unreadable file is an empty manifest (everything is checked)."""
    f = manifest_file(dataset)
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
        if data.get("version") != _CACHE_VERSION or not isinstance(data.get("skipped"), list):
            return {}
        return {e["rel"]: e for e in data["skipped"] if isinstance(e, dict) and "rel" in e and "reason" in e}
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return {}


def _write_manifest(dataset: str, entries: dict[str, dict[str, Any]]) -> None:
    f = manifest_file(dataset)
    data = {"version": _CACHE_VERSION, "dataset": dataset,
            "skipped": [entries[k] for k in sorted(entries)]}
    try:
        f.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=f.parent, prefix=f.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=1)
            os.replace(tmp, f)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        pass


class RealShapes(Dataset):
    """A split of ModelNet or ShapeNetCore with ShapeNet-lite's item keys (see the module docstring).

    Introduced in ``lectures/01_data_and_representations.ipynb``.  ``shapes_per_category`` keeps the
    first meshes of each category (sorted paths), after skipping those whose inside cannot be decided
    when ``sdf``, ``occupancy`` or ``voxels`` are asked for; :attr:`manifest` lists the skipped ones with
    their reason.  Sizes default to the config's (``data.n_surface_points``, ``data.n_sdf_samples``,
    ``data.voxel_resolution``, ``data.image_size``); ``view`` is ``"random"`` (a view per mesh drawn from its
    seed, with ShapeNet-lite's ranges) or a fixed ``(azimuth, elevation, distance)``, as for
    :class:`course_lib.data.ShapeNetLite`.

    Preprocessing (module docstring, "At scale"): ``workers`` processes (default ``COURSE_WORKERS``, else 1:
    in this process), a progress bar when ``progress``; the skipped meshes of earlier runs (the JSON manifest
    next to the cache) are skipped again without being read unless ``retry_skipped``; ``split_csv`` (or
    ``COURSE_SHAPENET_SPLIT_CSV``) is a ShapeNet split file in the official ``all.csv`` format.
    """

    def __init__(self, dataset: str, split: str = "train", representations: Sequence[str] | str = ("points",), *,
                 categories: Iterable[str] | str | None = None, shapes_per_category: int | None = None,
                 root: str | os.PathLike | None = None, profile: str | None = None, n_points: int | None = None,
                 n_target: int | None = None, n_sdf: int | None = None, voxel_resolution: int | None = None,
                 image_size: int | None = None, view: str | Sequence[float] = "random", cache: bool = True,
                 workers: int | None = None, progress: bool = False, retry_skipped: bool = False,
                 split_csv: str | os.PathLike | None = None, **unused: Any) -> None:
        name = dataset_name(dataset)
        if name == "shapenet-lite":
            raise ValueError("RealShapes reads real meshes; ShapeNet-lite is course_lib.data.ShapeNetLite")
        reps = (representations,) if isinstance(representations, str) else tuple(representations)
        bad = [r for r in reps if r not in REAL_REPRESENTATIONS]
        if bad or not reps:
            raise ValueError(f"unknown representation(s) {bad or reps!r} for real meshes; valid: "
                             f"{', '.join(REAL_REPRESENTATIONS)}")
        ignored = sorted(k for k, v in unused.items() if v is not None)
        if ignored:
            raise TypeError(f"RealShapes got unexpected argument(s) {ignored}")
        prof = config.get_profile() if profile is None else profile
        self.dataset, self.split, self.representations = name, split, reps
        self.n_points = int(n_points if n_points is not None else config.size("data.n_surface_points", prof))
        self.n_target = int(n_target if n_target is not None else self.n_points)
        self.n_sdf = int(n_sdf if n_sdf is not None else config.size("data.n_sdf_samples", prof))
        self.voxel_resolution = int(voxel_resolution if voxel_resolution is not None
                                    else config.size("data.voxel_resolution", prof))
        self.image_size = int(image_size if image_size is not None else config.size("data.image_size", prof))
        if self.image_size < 1:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        self.view = parse_view(view)
        self.cache = bool(cache)
        self.workers = default_workers() if workers is None else int(workers)
        if self.workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        self.progress, self.retry_skipped = bool(progress), bool(retry_skipped)
        if split == "test":  # protocol 2: inside no_test_reads (a choice being made) the test split is off limits
            from .splits import check_test_read

            check_test_read(f"{name}'s test split")
        entries, self.categories, self.root = _entries(name, split, categories, root, split_csv)
        self._builder = _Builder(name, self.root,
                                 config.cache_dir() / "real" / f"v{_CACHE_VERSION}" / name if self.cache else None,
                                 self.n_points, self.n_target, self.n_sdf, self.voxel_resolution, self.image_size,
                                 self.view)
        self.manifest: list[dict[str, str]] = []
        self.summary: dict[str, Any] = {"dataset": name, "split": split, "representations": list(reps),
                                        "workers": self.workers, "built": 0, "cached": 0, "skipped_now": 0,
                                        "skipped_known": 0, "seconds": 0.0}
        self._known = {} if self.retry_skipped else read_manifest(name)
        self._ready: set[Path] = set()
        need_inside = any(r in _INSIDE_REPS for r in reps)
        k = None if shapes_per_category is None else int(shapes_per_category)
        # candidates per category, in order; a skip recorded by an earlier run is taken without reading the mesh
        todo: dict[str, list[tuple[str, int, Path]]] = {}
        for e in entries:
            todo.setdefault(e[0], []).append(e)
        verdict: dict[Path, str] = {}
        while True:  # rounds: the next candidates each category still needs (one round unless meshes are skipped)
            batch: list[tuple[str, int, Path]] = []
            for cands in todo.values():
                need = None if k is None else k - sum(1 for e in cands if verdict.get(e[2]) == "")
                for e in cands:
                    if need is not None and need <= 0:
                        break
                    if e[2] in verdict:
                        continue
                    known = self._known_skip(e[2], need_inside)
                    if known is not None:  # skipped by an earlier run: not read again
                        verdict[e[2]] = known
                        self.summary["skipped_known"] += 1
                        continue
                    batch.append(e)
                    need = None if need is None else need - 1
            if not batch:
                break
            if need_inside:  # the inside check needs the mesh: build its arrays in the same pass (with a cache)
                verdict.update(self._run(batch, reps if self.cache else (), True))
            else:  # nothing to decide now: the meshes are read when prepared (prepare(), stacked()) or indexed
                verdict.update({e[2]: "" for e in batch})
        kept_entries: list[tuple[str, int, Path]] = []
        for e in entries:
            if e[2] not in verdict:
                continue
            if verdict[e[2]]:
                self.manifest.append({"path": str(e[2]), "category": e[0], "reason": verdict[e[2]]})
            else:
                kept_entries.append(e)
        self.entries = kept_entries

    # --- preprocessing ------------------------------------------------------------------------------------
    def _known_skip(self, path: Path, need_inside: bool) -> str | None:
        e = self._known.get(self._builder.rel(path))
        if e is None or e.get("size") != _size(path) or (e.get("kind") == "inside" and not need_inside):
            return None
        return str(e["reason"])

    def _run(self, batch: list[tuple[str, int, Path]], reps: Sequence[str], check_inside: bool) -> dict[Path, str]:
        """Prepare ``batch`` (in ``workers`` processes), record skips in the manifest file; path -> reason."""
        import time

        out: dict[Path, str] = {}
        results: dict[Path, tuple[str, str, int]] = {}
        t0 = time.perf_counter()
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(batch), desc=f"{self.dataset} {self.split}", unit="shape")
        # a shape whose files are all there with the right key is done (its arrays are checked when read, and a
        # damaged one is rebuilt then); the others go to the workers
        todo = []
        for e in batch:
            if reps and all(self._builder.has(r, e[2]) for r in reps):
                results[e[2]] = ("", "", 0)
                if bar is not None:
                    bar.update(1)
            else:
                todo.append(e)
        try:
            if self.workers == 1 or len(todo) <= 1:
                for _cat, _label, path in todo:
                    results[path] = self._builder.prepare(path, tuple(reps), check_inside)
                    if bar is not None:
                        bar.update(1)
            else:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor, as_completed

                ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds torch's threads
                with ProcessPoolExecutor(min(self.workers, len(todo)), mp_context=ctx, initializer=_init_worker,
                                         initargs=(self._builder,)) as pool:
                    futures = {pool.submit(_prepare_in_worker, path, tuple(reps), check_inside):
                               path for _cat, _label, path in todo}
                    try:
                        for fut in as_completed(futures):
                            results[futures[fut]] = fut.result()
                            if bar is not None:
                                bar.update(1)
                    except BaseException:
                        pool.shutdown(wait=True, cancel_futures=True)
                        raise
        finally:
            if bar is not None:
                bar.close()
            self.summary["seconds"] += time.perf_counter() - t0
            self._record(batch, results, reps, check_inside)
        for path, (reason, _kind, _built) in results.items():
            out[path] = reason
        return out

    def _record(self, batch: list[tuple[str, int, Path]], results: dict[Path, tuple[str, str, int]],
                reps: Sequence[str], check_inside: bool) -> None:
        """Count what was done and write the skips (and un-skips after a retry) in the manifest file."""
        if not results:
            return
        entries = read_manifest(self.dataset)
        changed = False
        for cat, _label, path in batch:
            if path not in results:
                continue
            reason, kind, built = results[path]
            rel = self._builder.rel(path)
            if reason:
                self.summary["skipped_now"] += 1
                entries[rel] = {"rel": rel, "path": str(path), "category": cat, "reason": reason, "kind": kind,
                                "size": _size(path)}
                changed = True
            else:
                if reps and self.cache:
                    self._ready.add(path)
                self.summary["built" if built else "cached"] += 1
                if rel in entries and (entries[rel].get("kind") == "read" or check_inside):  # a retry that passed
                    del entries[rel]
                    changed = True
        if changed:
            _write_manifest(self.dataset, entries)

    def prepare(self, workers: int | None = None, progress: bool | None = None) -> dict[str, Any]:
        """Build and cache every representation of every mesh of the split that is not cached yet.

        Introduced in ``lectures/01_data_and_representations.ipynb``.  Runs in ``workers`` processes (default:
        the dataset's), with a progress bar in shapes per second when ``progress``; a mesh that cannot be read
        is dropped from :attr:`entries`, listed in :attr:`manifest` and in the manifest file.  Interrupted, it
        resumes where it stopped: intact cache files are kept, half-written or damaged ones rebuilt.  Returns
        :attr:`summary` (``shapes``, ``built``, ``cached``, ``skipped`` with ``reasons``, ``seconds``,
        ``shapes_per_second``).  Without a cache (``cache=False``) nothing is prepared in advance.
        """
        if workers is not None:
            if int(workers) < 1:
                raise ValueError(f"workers must be a positive integer, got {workers!r}")
            self.workers = int(workers)
        if progress is not None:
            self.progress = bool(progress)
        batch = [e for e in self.entries if e[2] not in self._ready] if self.cache else []
        if batch:
            reasons = self._run(batch, self.representations, False)
            dropped = [e for e in self.entries if reasons.get(e[2])]
            for cat, _label, path in dropped:
                self.manifest.append({"path": str(path), "category": cat, "reason": reasons[path]})
            self.entries = [e for e in self.entries if not reasons.get(e[2])]
        s = self.summary
        s["shapes"] = len(self.entries)
        s["skipped"] = len(self.manifest)
        reasons_count: dict[str, int] = {}
        for m in self.manifest:
            short = m["reason"].split(":")[0].split(" (")[0]
            reasons_count[short] = reasons_count.get(short, 0) + 1
        s["reasons"] = reasons_count
        done = s["built"] + s["cached"] + s["skipped_now"]
        s["shapes_per_second"] = done / s["seconds"] if s["seconds"] > 0 else float("nan")
        s["manifest_file"] = str(manifest_file(self.dataset))
        return dict(s)

    # --- per mesh -------------------------------------------------------------------
    def _rel(self, path: Path) -> str:
        return self._builder.rel(path)

    def _seed(self, path: Path) -> int:
        return self._builder.seed(path)

    def _mesh(self, path: Path) -> Any:
        return self._builder.mesh(path)

    def _view_of(self, path: Path) -> tuple[float, float, float]:
        """``(azimuth, elevation, distance)`` of the mesh's view: ShapeNet-lite's ranges, drawn from its seed."""
        return self._builder.view_of(path)

    def mesh(self, index: int) -> Any:
        """The normalised, orientation-repaired ``trimesh.Trimesh`` of item ``index`` (for renders from other views)."""
        return self._mesh(self.entries[index][2])

    def _inside_problem(self, path: Path) -> str:
        """Why the inside of this mesh cannot be trusted ('' when it can)."""
        try:
            mesh = self._mesh(path)
        except Exception as exc:  # noqa: BLE001 - an unreadable mesh is skipped with its reason
            return f"could not be read or repaired ({type(exc).__name__}: {exc})"
        return self._builder.inside_problem(mesh, path)

    def _cache_file(self, rep: str, path: Path) -> Path:
        return self._builder.cache_file(rep, path)

    def _get(self, rep: str, path: Path, box: list[Any]) -> dict[str, np.ndarray]:
        arrays = self._builder.read(rep, path) if self.cache else None
        if arrays is not None:
            return arrays
        if not box:
            box.append(self._mesh(path))
        arrays = self._builder.build(rep, path, box[0])
        if self.cache:
            self._builder.write(rep, path, arrays)
        return arrays

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} meshes")
        cat, label, path = self.entries[index]
        item: dict[str, Any] = {"label": int(label), "category": cat, "seed": self._seed(path), "path": str(path)}
        box: list[Any] = []
        for rep in self.representations:
            for k, a in self._get(rep, path, box).items():
                t = torch.from_numpy(np.ascontiguousarray(a))
                item[k] = t.float() if t.dtype == torch.bool else t
        return item

    def stacked(self, progress: bool = False) -> dict[str, Any]:
        """Every item stacked like :meth:`course_lib.data.ShapeNetLite.stacked` (plus ``path``, ``manifest``).

        With a cache, the meshes not prepared yet are prepared first (:meth:`prepare`, in ``workers``
        processes); an unreadable one is then skipped and listed in ``manifest``."""
        if self.cache:
            self.prepare(progress=progress or self.progress)
        if len(self) == 0:
            raise ValueError(f"{self.dataset} {self.split}: no mesh to stack (skipped: {len(self.manifest)}; "
                             "see .manifest)")
        it = range(len(self))
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=f"{self.dataset} {self.split}")
        items = [self[i] for i in it]
        out: dict[str, Any] = {}
        for k in items[0]:
            vals = [x[k] for x in items]
            if isinstance(vals[0], torch.Tensor):
                out[k] = torch.stack(vals)
            elif k in ("label", "seed"):
                out[k] = torch.tensor(vals, dtype=torch.int64)
            else:
                out[k] = vals
        out["categories"] = self.categories
        out["manifest"] = list(self.manifest)
        return out


# --- command line ---------------------------------------------------------------------------------------------

def format_summary(summary: dict[str, Any], manifest: Sequence[dict[str, str]] = ()) -> str:
    """The summary of :meth:`RealShapes.prepare` as lines of text (and the skipped meshes, at most 20)."""
    s = summary
    rate = s.get("shapes_per_second", float("nan"))
    lines = [f"{s['dataset']} {s['split']} ({', '.join(s['representations'])}; {s['workers']} worker(s)): "
             f"{s.get('shapes', 0)} shapes ready ({s['built']} built now, {s['cached']} already cached), "
             f"{s.get('skipped', 0)} skipped ({s['skipped_now']} now, {s['skipped_known']} known from the manifest)",
             f"{s['seconds']:.1f} s, {rate:.2f} shapes/s" if rate == rate else f"{s['seconds']:.1f} s"]
    for reason, n in sorted(s.get("reasons", {}).items(), key=lambda kv: -kv[1]):
        lines.append(f"  skipped {n}: {reason}")
    for m in list(manifest)[:20]:
        lines.append(f"  - {m['category']}: {m['path']}: {m['reason']}")
    if len(manifest) > 20:
        lines.append(f"  ... and {len(manifest) - 20} more")
    if "manifest_file" in s:
        lines.append(f"manifest: {s['manifest_file']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m course_lib.data.real_split``: preprocess splits of a real dataset into the cache.

    Introduced in ``lectures/01_data_and_representations.ipynb`` (README, "Use your own data")."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m course_lib.data.real_split",
                                 description="Build and cache every representation of a real dataset's split "
                                             "(parallel, resumable), and print what was done and skipped.")
    ap.add_argument("--dataset", required=True, choices=("modelnet", "shapenetcore"))
    ap.add_argument("--root", default=None, help="the dataset folder (default COURSE_MODELNET_DIR / "
                                                 "COURSE_SHAPENET_DIR)")
    ap.add_argument("--split", nargs="+", default=["train"], choices=("train", "val", "test"))
    ap.add_argument("--representations", nargs="+", default=list(REAL_REPRESENTATIONS), choices=REAL_REPRESENTATIONS)
    ap.add_argument("--categories", nargs="+", default=None)
    ap.add_argument("--shapes-per-category", type=int, default=None)
    ap.add_argument("--profile", default=None, help="the sizes' profile (default COURSE_PROFILE)")
    ap.add_argument("--workers", type=int, default=None,
                    help=f"processes (default {ENV_WORKERS}, else the number of CPUs)")
    ap.add_argument("--split-csv", default=None, help="ShapeNet split file in the official all.csv format")
    ap.add_argument("--retry-skipped", action="store_true", help="look again at the meshes the manifest skips")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    workers = args.workers if args.workers is not None else (
        default_workers() if os.environ.get(ENV_WORKERS, "").strip() else (os.cpu_count() or 1))
    import course_lib.data.real_split as module  # not __main__'s copy: the worker processes import this one

    for split in args.split:
        try:
            ds = module.RealShapes(args.dataset, split, args.representations, root=args.root,
                                   categories=args.categories, shapes_per_category=args.shapes_per_category,
                                   profile=args.profile, workers=workers, progress=not args.no_progress,
                                   retry_skipped=args.retry_skipped, split_csv=args.split_csv)
            summary = ds.prepare()
        except KeyboardInterrupt:
            print(f"interrupted ({args.dataset} {split}): what is finished is cached; run the same command again to "
                  "resume", file=sys.stderr, flush=True)
            return 130
        print(format_summary(summary, ds.manifest), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
