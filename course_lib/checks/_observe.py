"""What a lab's text says a run shows, compared with what this run showed (issue #39).

A lab asks a student to predict the outcome of each experiment, then tells them, in its **Observe**
paragraph, what the run shows.  :func:`observe` turns that sentence into a test of the run that just
happened: it prints whether this run agrees with the text, so a student whose run disagrees learns it
from the cell rather than from a sentence that quietly contradicts the plot above it.

- In strict mode (``COURSE_STRICT_CHECKS=1``: the solutions in CI, run in the ``ci`` profile) a run that
  disagrees with its text raises :class:`ObservationMismatch`, so a statement that the ``ci`` run does not
  bear out fails CI.
- A statement that only a larger run can show names the profiles that show it (``shown_in``); in the
  other profiles the cell prints the verdict with the note that this run is too small, and never raises.
  That note is the text's "the ``ci`` run is too small to show it".
- With ``COURSE_OBSERVATIONS_LOG=FILE`` every verdict is appended to ``FILE`` as a JSON line (statement,
  profile, holds, applies): ``benchmarks/first_run.py`` collects the ``laptop`` verdicts that way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import torch

from ._core import strict_mode

__all__ = ["ObservationMismatch", "observe", "raise_if_unfinished", "OBSERVATIONS_LOG_ENV", "PROFILES"]

OBSERVATIONS_LOG_ENV = "COURSE_OBSERVATIONS_LOG"
PROFILES = ("ci", "laptop", "gpu")


class ObservationMismatch(AssertionError):
    """Raised in strict mode when a run does not show what its lab's text says it shows."""


def _as_bool(holds: Any) -> bool:
    if isinstance(holds, torch.Tensor):
        if holds.numel() != 1:
            raise ValueError(f"observe: `holds` must be one truth value, got a tensor of shape {tuple(holds.shape)}")
        return bool(holds.item())
    if hasattr(holds, "item") and not isinstance(holds, (bool, int, float)):  # numpy scalars
        return bool(holds.item())
    if not isinstance(holds, (bool, int)):
        raise TypeError(f"observe: `holds` must be a bool (the comparison that tests the statement), "
                        f"got {type(holds).__name__}")
    return bool(holds)


def observe(statement: str, holds: Any, *, shown_in: Sequence[str] = PROFILES, measured: str = "") -> bool:
    """Print whether this run shows ``statement`` (the lab's expectation); return the verdict.

    Parameters
    ----------
    statement:
        The expectation in words, as the lab's text gives it ("the quarter-size sample is farther from the
        chair than the full one").
    holds:
        The comparison that tests it on this run's numbers (a bool, or a one-element tensor).
    shown_in:
        The profiles whose runs are large enough to show it (default: all).  In any other profile the
        verdict is printed as information only.
    measured:
        The numbers the verdict rests on, printed after the statement ("CD x1e4 12.3 vs 10.1").
    """
    from course_lib import config

    if not isinstance(statement, str) or not statement.strip():
        raise ValueError("observe: `statement` must be a non-empty sentence")
    unknown = [p for p in shown_in if p not in PROFILES]
    if unknown or not shown_in:
        raise ValueError(f"observe: `shown_in` must list profiles among {PROFILES}, got {list(shown_in)}")
    verdict = _as_bool(holds)
    profile = config.get_profile()
    applies = profile in shown_in
    tail = f" ({measured})" if measured else ""
    if verdict:
        line = f"👀 as the text says: {statement}{tail}"
    elif applies:
        line = f"⚠️ unlike the text, this run does not show: {statement}{tail}"
    elif PROFILES.index(profile) < min(PROFILES.index(p) for p in shown_in):
        line = (f"ℹ️ not in this run: {statement}{tail}; the '{profile}' run is too small to show it "
                f"(the {' / '.join(p for p in shown_in)} profile does)")
    else:
        line = (f"ℹ️ not in this run: {statement}{tail}; the text says it of the {' / '.join(shown_in)} "
                f"profile only, and this '{profile}' run trains longer")
    if verdict and not applies:
        line += f" (shown here although the text promises it only in the {' / '.join(shown_in)} profile)"
    print(line)
    log = os.environ.get(OBSERVATIONS_LOG_ENV, "").strip()
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"statement": statement, "profile": profile, "holds": verdict,
                                 "applies": applies, "measured": measured}) + "\n")
    if applies and not verdict and strict_mode():
        raise ObservationMismatch(f"the '{profile}' run does not show what the lab says it shows: {statement}{tail}")
    return verdict


def raise_if_unfinished(missing: Any, what: str = "experiment") -> None:
    """In an observe cell: raise ``NotImplementedError`` (a lab's "not done yet", which lets a lab run clean up
    to its stubs) when ``missing`` is true, i.e. the ``what`` cell above stopped at an exercise still a stub
    and left its results unset.  Introduced with :func:`observe`; every lab's observe cells start with it."""
    if missing:
        raise NotImplementedError(f"the {what} above stopped at an exercise not done yet: finish it and run it again")
