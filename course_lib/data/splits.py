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
retired       ``2_000_000 + i``           the first test range (protocol 1): choices were made
                                          on it, so it is in no split any more
``test``      ``3_000_000 + i``           held-out evaluation, read only to report (protocol 2)
============  ==========================  =====================================================

**Protocol 2 (issue #32).** Every choice (hyper-parameters, epochs, thresholds, ...) is made on
``val``; ``test`` is read once, to report.  :func:`no_test_reads` enforces it: inside it, asking
for test seeds (:func:`split_seeds`) or making a test shape (:func:`course_lib.data.make_shape`)
raises :class:`TestSplitReadError`.  Selection helpers and the sweep parts of the benchmarks run
inside it (:mod:`course_lib.experiments.protocol`).  The first test range, on which earlier
versions of the course chose things, is retired: no split uses it.

So a test shape is never a training shape of any chapter, and a template is never a training or
test shape (``tests/test_data_splits.py`` proves it for every chapter's configuration).

Surface samples of one shape come in independent *streams* (:data:`SAMPLING_STREAMS`): the
encoder's input and the loss' target are different samplings of the same surface, so a model is
scored on points it never saw.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import numpy as np

__all__ = ["SPLITS", "SPLIT_SEED_OFFSET", "MAX_PER_SPLIT", "RESERVED", "FIRST_SPLIT_SEED", "RETIRED_TEST_OFFSET",
           "SAMPLING_STREAMS", "split_seeds", "reserved_seed", "split_of", "TestSplitReadError", "no_test_reads",
           "check_test_read", "reading_test_forbidden"]

SPLITS: tuple[str, ...] = ("train", "val", "test")
FIRST_SPLIT_SEED = 1_000
"""Seeds below this are reserved (never in a split)."""
SPLIT_SEED_OFFSET: dict[str, int] = {"train": FIRST_SPLIT_SEED, "val": 1_000_000, "test": 3_000_000}
RETIRED_TEST_OFFSET = 2_000_000
"""The first test range (``2_000_000 + i``), retired by protocol 2: choices had been made on it."""
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
    [3000000, 3000001]

    Inside :func:`no_test_reads`, asking for ``"test"`` raises :class:`TestSplitReadError`.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}. Valid splits are: {', '.join(SPLITS)}")
    if split == "test":
        check_test_read("the test split's seeds")
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
    """``"reserved"``, ``"train"``, ``"val"``, ``"test"``, ``"retired"`` (the first test range) or
    ``"outside"``: which range a seed falls in."""
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if seed < FIRST_SPLIT_SEED:
        return "reserved"
    ranges = sorted([*SPLIT_SEED_OFFSET.items(), ("retired", RETIRED_TEST_OFFSET)], key=lambda kv: kv[1])
    for split, off in reversed(ranges):
        if seed >= off:
            return split if seed - off < MAX_PER_SPLIT else "outside"
    return "outside"


class TestSplitReadError(RuntimeError):
    """The test split was read where only ``train``/``val`` may be (a choice being made): protocol 2."""

    __test__ = False  # not a pytest test class


_FORBID_TEST: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("course_lib_forbid_test", default=())


@contextlib.contextmanager
def no_test_reads(reason: str) -> Iterator[None]:
    """Inside this block, reading the test split raises :class:`TestSplitReadError` naming ``reason``.

    Introduced in ``lectures/00_welcome.ipynb`` (the protocol).  Used by the selection helpers of
    :mod:`course_lib.experiments.protocol` and the sweep parts of every benchmark: a choice is made
    on ``val``, never on ``test``.  Blocks nest.

    >>> with no_test_reads("choosing the epochs"):
    ...     split_seeds("val", 1)
    [1000000]
    """
    if not isinstance(reason, str) or not reason:
        raise ValueError(f"no_test_reads needs a non-empty reason (what is being chosen), got {reason!r}")
    token = _FORBID_TEST.set(_FORBID_TEST.get() + (reason,))
    try:
        yield
    finally:
        _FORBID_TEST.reset(token)


def reading_test_forbidden() -> tuple[str, ...]:
    """The reasons of the :func:`no_test_reads` blocks now open (innermost last); empty outside them."""
    return _FORBID_TEST.get()


def check_test_read(what: str) -> None:
    """Raise :class:`TestSplitReadError` when ``what`` (a test read) happens inside :func:`no_test_reads`."""
    reasons = _FORBID_TEST.get()
    if reasons:
        raise TestSplitReadError(
            f"{what} read while {reasons[-1]!r} is being chosen: choices are made on the 'val' split, and "
            f"'test' is read only to report, after every choice is fixed (protocol 2, course_lib.data.splits)")
