"""The tiny real-dataset fixtures of the chapter tests (``tests/test_real_dataset_chapters*.py``) and of
``tools/real_data_smoke.py``: ModelNet-style folders of small trimesh primitives.

Each category of :func:`write_modelnet` has 3 training meshes, 2 validation meshes (ModelNet's val: CRC32 of the
name mod 10 == 0, see :mod:`course_lib.data.real_split`) and 2 test meshes: chairs are boxes of different
proportions, every other category cylinders.  :func:`real_env` puts a test on the ci profile with a cache of its
own and no dataset variables (``monkeypatch`` restores them afterwards).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import trimesh

from course_lib.data.real import ENV_MODELNET, ENV_SHAPENET
from course_lib.data.real_split import ENV_DATASET

__all__ = ["write_off", "names", "mesh", "write_modelnet", "real_env", "through_env"]


def write_off(path: Path, m: trimesh.Trimesh) -> None:
    """``m`` as an OFF file at ``path`` (folders made)."""
    v, f = np.asarray(m.vertices), np.asarray(m.faces)
    lines = ["OFF", f"{len(v)} {len(f)} 0", *[" ".join(f"{c:.6f}" for c in x) for x in v],
             *["3 " + " ".join(str(i) for i in t) for t in f]]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def names(prefix: str, val: bool, n: int) -> list[str]:
    """``n`` file names that fall into ModelNet's val split (``val``) or stay in its train split."""
    out, i = [], 0
    while len(out) < n:
        name = f"{prefix}_{i:03d}.off"
        if (zlib.crc32(name.encode()) % 10 == 0) == val:
            out.append(name)
        i += 1
    return out


def mesh(category: str, k: int) -> trimesh.Trimesh:
    """Mesh ``k`` of ``category``: a box for chairs, a cylinder for any other category."""
    if category == "chair":  # boxes of different proportions
        return trimesh.creation.box((0.6 + 0.1 * k, 1.0, 0.5 + 0.05 * k))
    return trimesh.creation.cylinder(radius=0.2 + 0.03 * k, height=1.0, sections=12)


def write_modelnet(root: Path, categories: Sequence[str]) -> Path:
    """A ModelNet-layout folder at ``root``: per category 3 train, 2 val (in ``train/``) and 2 test meshes."""
    root = Path(root)
    for cat in categories:
        items = [("train", n) for n in names(cat, False, 3) + names(cat, True, 2)]
        items += [("test", f"{cat}_test_{i}.off") for i in range(2)]
        for k, (split, name) in enumerate(items):
            write_off(root / cat / split / name, mesh(cat, k))
    return root


def real_env(monkeypatch, cache: Path, root: Path) -> dict[str, str]:
    """The ci profile, the cache ``cache``, no ``COURSE_DATASET`` / root variables; returns the keyword arguments
    ``{"dataset": "modelnet", "root": root}`` of the chapter loaders."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(cache))
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    for name in (ENV_DATASET, ENV_MODELNET, ENV_SHAPENET):  # setenv first: monkeypatch restores them afterwards
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return {"dataset": "modelnet", "root": str(root)}


def through_env(monkeypatch, real: dict[str, str]) -> None:
    """Select the same dataset through ``COURSE_DATASET`` and ``COURSE_MODELNET_DIR`` instead."""
    monkeypatch.setenv(ENV_DATASET, real["dataset"])
    monkeypatch.setenv(ENV_MODELNET, real["root"])
