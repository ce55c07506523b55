"""Loaders for real shape collections on disk: ModelNet (OFF) and ShapeNetCore v2 (OBJ).

Introduced in ``lectures/01_data_and_representations.ipynb``.

Nothing is ever downloaded: point the loaders at folders you already have, with an
argument or an environment variable (``COURSE_MODELNET_DIR``, ``COURSE_SHAPENET_DIR``).
Expected layouts:

* ModelNet10/40: ``<root>/<category>/<train|test>/<name>.off``
* ShapeNetCore v2: ``<root>/<synset id>/<model id>/models/model_normalized.obj``
  (categories may be given by name, e.g. ``"chair"``, or by synset id, ``"03001627"``)

Every mesh is normalised like ShapeNet-lite: bounding-box centre at the origin,
farthest vertex at distance 1 (see :func:`normalize_mesh`).  Real meshes are often
not watertight (ShapeNet especially), so these datasets offer surface points and
normals (area-weighted, face normals) and parity voxels, not SDFs; voxels of a
mesh with holes can be wrong along the rays through the holes.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from torch.utils.data import Dataset

from .. import config

__all__ = [
    "ENV_MODELNET", "ENV_SHAPENET", "SHAPENET_SYNSETS", "read_off", "read_obj", "load_mesh",
    "normalize_mesh", "read_split_csv", "ModelNet", "ShapeNetCore",
]

ENV_MODELNET = "COURSE_MODELNET_DIR"
ENV_SHAPENET = "COURSE_SHAPENET_DIR"

SHAPENET_SYNSETS: dict[str, str] = {
    "airplane": "02691156", "bag": "02773838", "basket": "02801938", "bathtub": "02808440",
    "bed": "02818832", "bench": "02828884", "bookshelf": "02871439", "bottle": "02876657",
    "bowl": "02880940", "bus": "02924116", "cabinet": "02933112", "camera": "02942699",
    "can": "02946921", "cap": "02954340", "car": "02958343", "chair": "03001627",
    "clock": "03046257", "dishwasher": "03207941", "display": "03211117", "earphone": "03261776",
    "faucet": "03325088", "file": "03337140", "guitar": "03467517", "helmet": "03513137",
    "jar": "03593526", "keyboard": "03085013", "knife": "03624134", "lamp": "03636649",
    "laptop": "03642806", "loudspeaker": "03691459", "mailbox": "03710193", "microphone": "03759954",
    "microwave": "03761084", "motorcycle": "03790512", "mug": "03797390", "piano": "03928116",
    "pillow": "03938244", "pistol": "03948459", "pot": "03991062", "printer": "04004475",
    "remote": "04074963", "rifle": "04090263", "rocket": "04099429", "skateboard": "04225987",
    "sofa": "04256520", "stove": "04330267", "table": "04379243", "telephone": "04401088",
    "tower": "04460130", "train": "04468005", "vessel": "04530566", "washer": "04554684",
}
"""ShapeNetCore v2 synset ids of the 55 categories, by the usual short name."""


# --- file readers ----------------------------------------------------------------

def _fan(poly: Sequence[int]) -> list[list[int]]:
    return [[poly[0], poly[i], poly[i + 1]] for i in range(1, len(poly) - 1)]


def read_off(path: str | os.PathLike) -> trimesh.Trimesh:
    """Read an OFF file (polygons are fan-triangulated); no processing, no normalisation.

    Handles the ModelNet quirk where the counts follow ``OFF`` on the same line
    (``OFF490 518 0``), comments (``#``) and blank lines.
    """
    path = Path(path)
    with open(path, encoding="utf-8", errors="replace") as f:
        tokens_lines = [ln.split("#", 1)[0].strip() for ln in f]
    lines = [ln for ln in tokens_lines if ln]
    if not lines or not lines[0].upper().startswith("OFF"):
        raise ValueError(f"{path}: not an OFF file (first line {lines[0][:20] if lines else ''!r})")
    head = lines[0][3:].strip()
    rest = lines[1:]
    if not head:
        if not rest:
            raise ValueError(f"{path}: OFF file has no counts line")
        head, rest = rest[0], rest[1:]
    try:
        nv, nf = (int(x) for x in head.split()[:2])
    except ValueError as err:
        raise ValueError(f"{path}: bad OFF counts line {head!r}") from err
    if len(rest) < nv + nf:
        raise ValueError(f"{path}: truncated OFF file ({len(rest)} lines for {nv} vertices and {nf} faces)")
    verts = np.array([[float(x) for x in ln.split()[:3]] for ln in rest[:nv]], dtype=np.float64).reshape(-1, 3)
    faces: list[list[int]] = []
    for ln in rest[nv:nv + nf]:
        vals = [int(x) for x in ln.split()]
        k = vals[0]
        poly = vals[1:1 + k]
        if len(poly) != k or k < 3:
            raise ValueError(f"{path}: bad OFF face line {ln!r}")
        faces.extend(_fan(poly))
    f_arr = np.array(faces, dtype=np.int64).reshape(-1, 3)
    if f_arr.size and (f_arr.min() < 0 or f_arr.max() >= nv):
        raise ValueError(f"{path}: face index out of range")
    return trimesh.Trimesh(vertices=verts, faces=f_arr, process=False)


def read_obj(path: str | os.PathLike) -> trimesh.Trimesh:
    """Read the geometry of a Wavefront OBJ file (``v`` and ``f`` records; all groups merged).

    Face entries may be ``i``, ``i/t``, ``i//n`` or ``i/t/n``, with negative
    (relative) indices; polygons are fan-triangulated.  Materials are ignored.
    """
    path = Path(path)
    verts: list[list[float]] = []
    faces: list[list[int]] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for ln in f:
            if ln.startswith("v "):
                verts.append([float(x) for x in ln.split()[1:4]])
            elif ln.startswith("f "):
                idx = []
                for tok in ln.split()[1:]:
                    i = int(tok.split("/")[0])
                    idx.append(i - 1 if i > 0 else len(verts) + i)
                if len(idx) >= 3:
                    faces.extend(_fan(idx))
    if not verts:
        raise ValueError(f"{path}: no vertices in OBJ file")
    v = np.array(verts, dtype=np.float64)
    f_arr = np.array(faces, dtype=np.int64).reshape(-1, 3)
    if f_arr.size and (f_arr.min() < 0 or f_arr.max() >= len(v)):
        raise ValueError(f"{path}: face index out of range")
    return trimesh.Trimesh(vertices=v, faces=f_arr, process=False)


def normalize_mesh(mesh: trimesh.Trimesh) -> tuple[trimesh.Trimesh, np.ndarray, float]:
    """ShapeNet-lite normalisation: returns ``(mesh, center, scale)`` with ``v_new = scale * (v - center)``.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  ``center`` is the
    bounding-box centre of the vertices used by faces; ``scale`` puts the farthest
    such vertex at distance 1 (for a mesh this is the farthest surface point).
    """
    used = np.unique(np.asarray(mesh.faces).reshape(-1)) if len(mesh.faces) else np.arange(len(mesh.vertices))
    if len(used) == 0:
        raise ValueError("cannot normalise an empty mesh")
    v = np.asarray(mesh.vertices, dtype=np.float64)
    pts = v[used]
    center = 0.5 * (pts.min(0) + pts.max(0))
    radius = float(np.linalg.norm(pts - center, axis=1).max())
    if radius <= 0:
        raise ValueError("cannot normalise a mesh whose vertices all coincide")
    scale = 1.0 / radius
    out = trimesh.Trimesh(vertices=(v - center) * scale, faces=np.asarray(mesh.faces), process=False)
    return out, center, scale


def load_mesh(path: str | os.PathLike, normalize: bool = True) -> trimesh.Trimesh:
    """Load an ``.off`` or ``.obj`` file as a ``trimesh.Trimesh`` (normalised by default).

    Introduced in ``lectures/01_data_and_representations.ipynb``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such mesh file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".off":
        mesh = read_off(path)
    elif suffix == ".obj":
        mesh = read_obj(path)
    else:
        raise ValueError(f"unsupported mesh format {suffix!r} (expected .off or .obj): {path}")
    return normalize_mesh(mesh)[0] if normalize else mesh


# --- datasets --------------------------------------------------------------------------

def read_split_csv(path: str | os.PathLike) -> dict[tuple[str, str], str]:
    """``(synset id, model id) -> split`` from a ShapeNet split file in the official ``all.csv`` format.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  The columns are
    ``id,synsetId,subSynsetId,modelId,split`` (a header line; only ``synsetId``, ``modelId`` and
    ``split`` are used); synset ids written without their leading zero (``2691156``, as spreadsheets
    save them) are padded to 8 digits.  ``split`` is ``train``, ``val`` or ``test``; anything else,
    a missing column or a model listed twice with two splits is a ``ValueError`` naming the line.
    """
    import csv

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no such ShapeNet split file: {path}")
    out: dict[tuple[str, str], str] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = {c.strip(): c for c in (reader.fieldnames or [])}
        missing = [c for c in ("synsetId", "modelId", "split") if c not in cols]
        if missing:
            raise ValueError(f"{path}: not a ShapeNet split file (columns {', '.join(missing)} missing; expected "
                             "id,synsetId,subSynsetId,modelId,split)")
        for line, row in enumerate(reader, start=2):
            syn = (row[cols["synsetId"]] or "").strip()
            model = (row[cols["modelId"]] or "").strip()
            split = (row[cols["split"]] or "").strip().lower()
            if not syn or not model:
                raise ValueError(f"{path}, line {line}: empty synsetId or modelId")
            if split not in ("train", "val", "test"):
                raise ValueError(f"{path}, line {line}: split must be train, val or test, got {split!r}")
            syn = syn.zfill(8) if syn.isdigit() else syn
            if out.setdefault((syn, model), split) != split:
                raise ValueError(f"{path}, line {line}: model {syn}/{model} is in two splits "
                                 f"({out[(syn, model)]} and {split})")
    return out


def _root(root: str | os.PathLike | None, env: str, what: str) -> Path:
    value = root if root is not None else os.environ.get(env)
    if not value:
        raise FileNotFoundError(
            f"No {what} folder given: pass root=... or set the environment variable {env}. "
            "Nothing is downloaded by the course; the procedural ShapeNetLite works without it."
        )
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"The {what} folder {path} does not exist (from {'root' if root else env}).")
    return path


class _MeshDataset(Dataset):
    """Shared item logic: a list of (category, label, path) and per-item representations."""

    REPRESENTATIONS = ("points", "voxels")

    def __init__(self, entries: list[tuple[str, int, Path]], categories: tuple[str, ...],
                 representations: Sequence[str] | str, n_points: int | None, voxel_resolution: int | None,
                 profile: str | None) -> None:
        reps = (representations,) if isinstance(representations, str) else tuple(representations)
        bad = [r for r in reps if r not in self.REPRESENTATIONS]
        if bad or not reps:
            raise ValueError(f"Unknown representation(s) {bad or reps!r} for real meshes. "
                             f"Valid: {', '.join(self.REPRESENTATIONS)}")
        self.entries = entries
        self.categories = categories
        self.representations = reps
        prof = config.get_profile() if profile is None else profile
        self.n_points = int(n_points if n_points is not None else config.size("data.n_surface_points", prof))
        self.voxel_resolution = int(voxel_resolution if voxel_resolution is not None
                                    else config.size("data.voxel_resolution", prof))

    def __len__(self) -> int:
        return len(self.entries)

    def mesh(self, index: int) -> trimesh.Trimesh:
        """The normalised mesh of item ``index``."""
        return load_mesh(self.entries[index][2])

    def __getitem__(self, index: int) -> dict[str, Any]:
        from ..geometry import mesh_to_voxels, sample_mesh_surface

        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} meshes")
        category, label, path = self.entries[index]
        mesh = load_mesh(path)
        item: dict[str, Any] = {"label": label, "category": category, "path": str(path)}
        if "points" in self.representations:
            seed = zlib.crc32("/".join(path.parts[-4:]).encode())  # reproducible per file
            p, n = sample_mesh_surface(mesh, self.n_points, seed=seed)
            item["points"], item["normals"] = p, n
        if "voxels" in self.representations:
            item["voxels"] = mesh_to_voxels(mesh, self.voxel_resolution).float()
        return item


def _pick(available: list[str], categories: Iterable[str] | None, what: str,
          alias: dict[str, str] | None = None) -> list[str]:
    if categories is None:
        return available
    if isinstance(categories, str):
        categories = [categories]
    out = []
    for c in categories:
        key = alias.get(c, c) if alias else c
        if key not in available:
            names = available if not alias else [
                f"{n} ({s})" for n, s in sorted(alias.items()) if s in available] + [
                s for s in available if s not in alias.values()]
            raise ValueError(f"Unknown {what} category {c!r}. Available in this folder: {', '.join(names) or 'none'}")
        out.append(key)
    return out


class ModelNet(_MeshDataset):
    """ModelNet10/40 meshes from ``<root>/<category>/<split>/*.off`` as a torch Dataset.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  ``root`` defaults
    to ``$COURSE_MODELNET_DIR``.  Items: ``label`` (index in :attr:`categories`, the
    sorted folder names), ``category``, ``path``, and ``points``/``normals`` (N, 3)
    and/or ``voxels`` (R, R, R) float32.
    """

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train",
                 categories: Iterable[str] | None = None, representations: Sequence[str] | str = ("points",),
                 n_points: int | None = None, voxel_resolution: int | None = None,
                 profile: str | None = None) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"ModelNet has the splits 'train' and 'test', got {split!r}")
        base = _root(root, ENV_MODELNET, "ModelNet")
        available = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
        chosen = _pick(available, categories, "ModelNet")
        entries = []
        for c in chosen:
            label = available.index(c)
            folder = base / c / split
            if folder.is_dir():
                entries += [(c, label, f) for f in sorted(folder.iterdir()) if f.suffix.lower() == ".off"]
        self.root, self.split = base, split
        super().__init__(entries, tuple(available), representations, n_points, voxel_resolution, profile)


class ShapeNetCore(_MeshDataset):
    """ShapeNetCore v2 meshes from ``<root>/<synset>/<model>/models/model_normalized.obj``.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  ``root`` defaults
    to ``$COURSE_SHAPENET_DIR``.  Categories by name (:data:`SHAPENET_SYNSETS`) or
    synset id.  ShapeNet has no official split file inside the archive: given ``split_csv``
    (a split file in the official ``all.csv`` format, see :func:`read_split_csv`), a model is in
    the split the file names for it (models the file does not name are in no split); otherwise
    the split is deterministic by model id: a model is in ``test`` if the CRC32 of its id mod
    10 is 0, ``val`` if it is 1, else ``train`` (disjoint by construction).
    """

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train",
                 categories: Iterable[str] | None = None, representations: Sequence[str] | str = ("points",),
                 n_points: int | None = None, voxel_resolution: int | None = None,
                 profile: str | None = None, split_csv: str | os.PathLike | None = None) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        base = _root(root, ENV_SHAPENET, "ShapeNetCore")
        official = read_split_csv(split_csv) if split_csv is not None else None
        available = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
        chosen = _pick(available, categories, "ShapeNetCore", alias=SHAPENET_SYNSETS)
        by_id = {v: k for k, v in SHAPENET_SYNSETS.items()}
        want = {"test": 0, "val": 1}.get(split)
        entries = []
        for syn in chosen:
            label = available.index(syn)
            for model in sorted(p for p in (base / syn).iterdir() if p.is_dir()):
                f = model / "models" / "model_normalized.obj"
                if not f.is_file():
                    continue
                if official is not None:
                    if official.get((syn, model.name)) == split:
                        entries.append((by_id.get(syn, syn), label, f))
                    continue
                bucket = zlib.crc32(model.name.encode()) % 10
                if (want is None and bucket > 1) or bucket == want:
                    entries.append((by_id.get(syn, syn), label, f))
        self.root, self.split = base, split
        names = tuple(by_id.get(s, s) for s in available)
        super().__init__(entries, names, representations, n_points, voxel_resolution, profile)
