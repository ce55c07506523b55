"""Self-checks that labs call after each exercise.

Introduced in ``lectures/00_welcome.ipynb``.  Each submodule holds the checks of
one chapter or library area and lists them in its ``__all__``; every check is
re-exported here, so a lab calls ``course_lib.checks.<name>(student_fn)``.
To add checks, drop a module in this package: no edit here is needed.
"""

from __future__ import annotations

import importlib
import pkgutil

from ._core import (  # noqa: F401
    RESULTS,
    CheckFailed,
    CheckResult,
    CheckStop,
    call_student,
    expect,
    expect_close,
    expect_tensor,
    self_check,
    stop_on_failure,
)
from ._observe import ObservationMismatch, observe, raise_if_unfinished  # noqa: F401

__all__ = ["RESULTS", "CheckFailed", "CheckResult", "CheckStop", "call_student", "expect",
           "expect_close", "expect_tensor", "self_check", "stop_on_failure", "observe", "ObservationMismatch", "raise_if_unfinished"]


def _collect() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        for name in getattr(mod, "__all__", []):
            globals()[name] = getattr(mod, name)
            __all__.append(name)


_collect()
