"""The one split scheme of ShapeNet-lite, shared by every chapter and benchmark.

Introduced in ``lectures/01_data_and_representations.ipynb``.

A ShapeNet-lite shape is named by ``(category, seed)``.  Seeds are cut into ranges that never
overlap, the same for every category:

============  ==========================  =====================================================
range         seeds                       use
============  ==========================  =====================================================
reserved      ``0 .. 999``                named shapes outside every split: templates (3D-CODED),
                                          demo shapes of the lectures (:data:`RESERVED`)
``train``     ``1_000 + i``               training shapes
``val``       ``1_000_000 + i``           validation (model selection)
``test``      ``2_000_000 + i``           held-out evaluation
============  ==========================  =====================================================

So a test shape is never a training shape of any chapter, and a template is never a training or
test shape (``tests/test_data_splits.py`` proves it for every chapter's configuration).

Surface samples of one shape come in independent *streams* (:data:`SAMPLING_STREAMS`): the
encoder's input and the loss' target are different samplings of the same surface, so a model is
scored on points it never saw.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SPLITS", "SPLIT_SEED_OFFSET", "MAX_PER_SPLIT", "RESERVED", "FIRST_SPLIT_SEED",
           "SAMPLING_STREAMS", "split_seeds", "reserved_seed", "split_of"]

SPLITS: tuple[str, ...] = ("train", "val", "test")
FIRST_SPLIT_SEED = 1_000
"""Seeds below this are reserved (never in a split)."""
SPLIT_SEED_OFFSET: dict[str, int] = {"train": FIRST_SPLIT_SEED, "val": 1_000_000, "test": 2_000_000}
MAX_PER_SPLIT = 999_000
"""The most shapes per category a split can hold (train must stay below val's first seed)."""

RESERVED: dict[str, int] = {
    "template": 0,  # 3D-CODED's template shape of each category (chapter 06)
    "demo": 1,      # the shape a lecture shows first
    "demo2": 2,
    "demo3": 3,
}
"""Named seeds outside every split."""

SAMPLING_STREAMS: dict[str, int] = {"input": 0, "target": 1, "oracle": 2}
"""Independent surface-sampling streams of one shape (``Shape.sample_surface(..., stream=k)``)."""


def split_seeds(split: str, n: int) -> list[int]:
    """The seeds of the first ``n`` shapes (of every category) in ``split``; disjoint across splits.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    >>> split_seeds("train", 3)
    [1000, 1001, 1002]
    >>> split_seeds("test", 2)
    [2000000, 2000001]
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}. Valid splits are: {', '.join(SPLITS)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= MAX_PER_SPLIT:
        raise ValueError(f"number of shapes per category must be an int in [0, {MAX_PER_SPLIT}], got {n!r}")
    off = SPLIT_SEED_OFFSET[split]
    return [off + i for i in range(int(n))]


def reserved_seed(name: str) -> int:
    """The seed of a named reserved shape (``"template"``, ``"demo"``, ...), outside every split."""
    try:
        return RESERVED[name]
    except KeyError:
        raise ValueError(f"Unknown reserved shape {name!r}. Known: {', '.join(RESERVED)}") from None


def split_of(seed: int) -> str:
    """``"reserved"``, ``"train"``, ``"val"`` or ``"test"``: which range a seed falls in."""
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if seed < FIRST_SPLIT_SEED:
        return "reserved"
    for split in reversed(SPLITS):
        if seed >= SPLIT_SEED_OFFSET[split]:
            if seed - SPLIT_SEED_OFFSET[split] < MAX_PER_SPLIT:
                return split
            break
    return "outside"
