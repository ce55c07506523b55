"""The autograder (course_lib.grade): real runs of lab 00 (solution, blank, wrong answers, a loop) and the scoring rules."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import nbformat
import pytest

from course_lib import grade
from course_lib.checks import _core

ROOT = Path(__file__).resolve().parents[1]
LAB = "00_welcome_lab"
REF = ROOT / "labs" / f"{LAB}.ipynb"
SOLUTION = ROOT / "solutions" / f"{LAB}.ipynb"


def _edited(tmp_path: Path, name: str, edit) -> Path:
    nb = nbformat.read(str(SOLUTION), as_version=4)
    edit(nb)
    out = tmp_path / f"{name}_{LAB}.ipynb"
    nbformat.write(nb, str(out))
    return out


def _cell_with(nb, text: str) -> int:
    hits = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and text in c.source]
    assert hits, text
    return hits[0]


def test_expected_checks_come_from_the_course_lab():
    assert grade.expected_checks(REF) == ["check_pairwise_sq_dists", "check_pairwise_sq_dists:hidden",
                                          "check_nearest_neighbour_dist", "check_nearest_neighbour_dist:hidden",
                                          "check_chamfer", "check_chamfer:hidden"]
    assert grade.lab_of("alice_00_welcome_lab.ipynb", grade.known_labs()) == LAB
    with pytest.raises(ValueError, match="cannot tell which lab"):
        grade.lab_of("homework.ipynb", grade.known_labs())


def test_answers_are_collected_from_the_answer_cells(tmp_path):
    nb = nbformat.read(str(REF), as_version=4)
    cells = [c for c in nb.cells if "answer" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1  # every lab has one answer cell after its questions
    cells[0].source = "1. Because the two samplings differ. 2. ..."
    out = tmp_path / f"ans_{LAB}.ipynb"
    nbformat.write(nb, str(out))
    assert grade.answers_of(out) == ["1. Because the two samplings differ. 2. ..."]
    g = grade.Grade(str(out), LAB, {"check_a": 1}, {"check_a": "passed"}, "ok", 1.0, [], grade.answers_of(out))
    assert "answers to the questions" in g.feedback() and "Because the two samplings differ" in g.feedback()
    grade.write_csv([g], tmp_path / "g.csv")
    with open(tmp_path / "g.csv") as fh:
        assert next(csv.DictReader(fh))["answer words"] == "8"


def test_every_lab_has_questions_and_an_answer_cell():
    for lab in grade.known_labs():
        nb = nbformat.read(str(ROOT / "labs" / f"{lab}.ipynb"), as_version=4)
        assert any("## Questions" in c.source for c in nb.cells if c.cell_type == "markdown"), lab
        assert len(grade.answers_of(ROOT / "labs" / f"{lab}.ipynb")) == 1, lab


def test_scoring_rules():
    exp = ["check_a", "check_b", "check_c", "check_d"]
    logged = {"check_a": {"name": "check_a", "status": "passed", "message": "passed", "target": "__main__"},
              "check_b": {"name": "check_b", "status": "failed", "message": "wrong shape", "target": "__main__"},
              "check_c": {"name": "check_c", "status": "passed", "message": "passed", "target": "course_lib.metrics"}}
    pts, why, status = grade.score(exp, logged, {"status": "ok", "errors": []})
    assert pts == {"check_a": 1, "check_b": 0, "check_c": 0, "check_d": 0} and status == "ok"
    assert why["check_b"] == "wrong shape" and "course_lib function" in why["check_c"] and "removed" in why["check_d"]
    _, why, status = grade.score(exp, {}, {"status": "timeout", "errors": ["ran past 5 s"]})
    assert status == "timeout" and all("not reached" in w for w in why.values())
    _, _, status = grade.score(exp, logged, {"status": "ok", "errors": ["code cell 3: ValueError: x"]})
    assert status == "cell errors"


def test_self_checks_log_their_verdict_for_the_grader(tmp_path, monkeypatch):
    from course_lib import checks

    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(_core.GRADE_LOG_ENV, str(log))
    checks.check_pairwise_sq_dists(lambda x, y: ((x[:, :, None] - y[:, None]) ** 2).sum(-1), quiet=True)
    checks.check_pairwise_sq_dists(lambda x, y: ..., quiet=True)
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["status"] for r in recs] == ["passed", "not_implemented"]
    assert recs[0]["name"] == "check_pairwise_sq_dists" and recs[0]["target"] == __name__


def test_grades_of_real_runs(tmp_path):
    """Solution: full marks; blank lab: zero; a wrong chamfer, a deleted check and an infinite loop in one notebook:
    exactly those two checks lost, the loop interrupted by the cell limit and the rest still graded; a notebook-wide
    limit: killed, the rest not reached."""
    def loop(nb):
        at = _cell_with(nb, "checks.check_pairwise_sq_dists(") + 1
        nb.cells.insert(at, nbformat.v4.new_code_cell("while True:\n    pass"))

    def wrong(nb):  # chamfer summed instead of averaged, the nearest-neighbour check's call deleted, and a loop
        i = _cell_with(nb, "def chamfer")
        assert ".mean(" in nb.cells[i].source
        nb.cells[i].source = nb.cells[i].source.replace(".mean(", ".sum(")
        j = _cell_with(nb, "checks.check_nearest_neighbour_dist(")
        nb.cells[j].source = "pass"
        loop(nb)

    sol = grade.grade_notebook(SOLUTION, LAB, cell_timeout=120)
    assert sol.total == 6 and sol.status == "ok", sol.feedback()  # 3 checks, each with its hidden part
    blank = grade.grade_notebook(REF, LAB, cell_timeout=120)
    assert blank.total == 0 and "not implemented" in blank.reasons["check_chamfer"], blank.feedback()
    w = grade.grade_notebook(_edited(tmp_path, "wrong", wrong), LAB, cell_timeout=30)  # 30 s: imports on a loaded machine
    assert w.checks == {"check_pairwise_sq_dists": 1, "check_pairwise_sq_dists:hidden": 1,
                        "check_nearest_neighbour_dist": 0, "check_nearest_neighbour_dist:hidden": 0,
                        "check_chamfer": 0, "check_chamfer:hidden": 0}, w.feedback()
    assert "public part" in w.reasons["check_chamfer:hidden"]
    assert "removed" in w.reasons["check_nearest_neighbour_dist"] and w.cell_errors  # the loop was interrupted
    killed = grade.grade_notebook(_edited(tmp_path, "killed", loop), LAB, cell_timeout=600, notebook_timeout=15)
    assert killed.status == "timeout" and killed.checks["check_chamfer"] == 0, killed.feedback()
    assert "not reached" in killed.reasons["check_chamfer"]
    out = tmp_path / "grades.csv"
    grade.write_csv([sol, blank, w], out)
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["total"] for r in rows] == ["6", "0", "2"] and rows[2]["check_chamfer"] == "0"
    assert os.environ.get(_core.GRADE_LOG_ENV) is None  # the grader's settings stay in its child processes


def test_grade_many_runs_jobs_at_once_and_keeps_the_order(monkeypatch):
    import threading
    import time as _time

    running, peak, lock = [0], [0], threading.Lock()

    def fake(sub, lab, **kw):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        _time.sleep(0.05 * (3 - int(str(sub)[-1]) % 3))  # later ones finish first
        with lock:
            running[0] -= 1
        return grade.Grade(str(sub), lab, {"check_a": 1}, {}, "ok", 0.0)

    monkeypatch.setattr(grade, "grade_notebook", fake)
    seen = []
    subs = [(f"s{i}", "00_welcome_lab") for i in range(6)]
    out = grade.grade_many(subs, jobs=3, on_done=lambda g: seen.append(g.submission), cell_timeout=5)
    assert [g.submission for g in out] == [f"s{i}" for i in range(6)]  # the order given, not the finishing order
    assert sorted(seen) == sorted(g.submission for g in out) and peak[0] == 3
    with pytest.raises(ValueError, match="jobs"):
        grade.grade_many(subs, jobs=0)
