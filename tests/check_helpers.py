"""Helpers shared by the self-check tests (``tests/test_checks_*.py``)."""

from __future__ import annotations


def stub(*args, **kwargs):
    """A student's function that is not written yet."""
    raise NotImplementedError()


def failed(res, *words, ignore_case: bool = False) -> None:
    """Assert that a check rejected an answer and that its message names each of ``words``."""
    assert res.status in ("failed", "error"), res.verdict()
    msg = res.message.lower() if ignore_case else res.message
    for w in words:
        assert (w.lower() if ignore_case else w) in msg, res.message
