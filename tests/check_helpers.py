"""Helpers shared by the tests: self-check stubs and verdicts (``tests/test_checks_*.py``), benchmark loading."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name_or_path: str | Path) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (or a path) as a module, with ``benchmarks/`` on the path for ``_common``."""
    path = Path(name_or_path) if str(name_or_path).endswith(".py") else BENCHMARKS / f"{name_or_path}.py"
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{path.stem}_under_test", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(path.parent))


def stub(*args, **kwargs):
    """A student's function that is not written yet."""
    raise NotImplementedError()


def failed(res, *words, ignore_case: bool = False) -> None:
    """Assert that a check rejected an answer and that its message names each of ``words``."""
    assert res.status in ("failed", "error"), res.verdict()
    msg = res.message.lower() if ignore_case else res.message
    for w in words:
        assert (w.lower() if ignore_case else w) in msg, res.message


def hidden_results(check, answer):
    """Run ``check`` on ``answer`` (its hidden part runs when ``COURSE_HIDDEN_CHECKS`` is set by the caller);
    return (public result, hidden result)."""
    from course_lib.checks import _core

    res = check(answer, quiet=True)
    return res, _core.RESULTS[check.__name__ + _core.HIDDEN_SUFFIX]


def hidden_results_on(monkeypatch, check, answer):
    """:func:`hidden_results` with the hidden part switched on for this test (``monkeypatch``)."""
    from course_lib.checks import _core

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    return hidden_results(check, answer)
