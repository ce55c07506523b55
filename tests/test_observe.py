"""checks.observe: a lab's stated expectation tested on the run that just happened (issue #39)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from course_lib import checks
from course_lib.checks._observe import OBSERVATIONS_LOG_ENV


@pytest.fixture
def ci(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)
    monkeypatch.delenv(OBSERVATIONS_LOG_ENV, raising=False)


def test_a_statement_that_holds_is_confirmed(ci, capsys):
    assert checks.observe("the fine grid has more full cells", torch.tensor(True), measured="80 vs 10") is True
    out = capsys.readouterr().out
    assert "as the text says: the fine grid has more full cells (80 vs 10)" in out


def test_a_statement_that_fails_is_flagged_and_raises_in_strict_mode(ci, capsys, monkeypatch):
    assert checks.observe("the loss falls", False) is False
    assert "unlike the text" in capsys.readouterr().out
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(checks.ObservationMismatch, match="'ci' run does not show .*the loss falls"):
        checks.observe("the loss falls", np.bool_(False))
    assert checks.observe("the loss falls", np.bool_(True)) is True  # strict mode lets a true statement pass


def test_a_statement_for_larger_runs_never_raises_in_a_smaller_profile(ci, capsys, monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    assert checks.observe("the samples stay in the box", False, shown_in=("laptop", "gpu")) is False
    out = capsys.readouterr().out
    assert "too small to show it" in out and "laptop / gpu" in out
    monkeypatch.setenv("COURSE_PROFILE", "laptop")
    with pytest.raises(checks.ObservationMismatch):
        checks.observe("the samples stay in the box", False, shown_in=("laptop", "gpu"))


def test_verdicts_are_logged_as_json_lines(ci, tmp_path, monkeypatch):
    log = tmp_path / "obs.jsonl"
    monkeypatch.setenv(OBSERVATIONS_LOG_ENV, str(log))
    checks.observe("a", True)
    checks.observe("b", False, shown_in=("laptop",), measured="3 < 4")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert rows == [{"statement": "a", "profile": "ci", "holds": True, "applies": True, "measured": ""},
                    {"statement": "b", "profile": "ci", "holds": False, "applies": False, "measured": "3 < 4"}]


@pytest.mark.parametrize("bad, error", [(torch.tensor([True, False]), ValueError), (0.5, TypeError),
                                         ("yes", TypeError)])
def test_holds_must_be_one_truth_value(ci, bad, error):
    with pytest.raises(error, match="observe"):
        checks.observe("s", bad)


def test_statement_and_profiles_are_validated(ci):
    with pytest.raises(ValueError, match="statement"):
        checks.observe("  ", True)
    with pytest.raises(ValueError, match="shown_in"):
        checks.observe("s", True, shown_in=("laptpo",))


def test_a_statement_about_smaller_runs_is_informational_in_a_larger_profile(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    assert checks.observe("still far from the oracle after a few epochs", False, shown_in=("ci", "laptop")) is False
    out = capsys.readouterr().out
    assert "trains longer" in out and "too small" not in out


def test_raise_if_unfinished_stops_an_observe_cell_as_a_stub_would():
    checks.raise_if_unfinished(False)  # the experiment ran: nothing happens
    with pytest.raises(NotImplementedError, match="the training above stopped at an exercise not done yet"):
        checks.raise_if_unfinished(True, what="training")
