"""README's chapter marks equal what the goal records in ``benchmarks/results/*.json`` say (protocol 2)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from course_lib import results
from course_lib.experiments.protocol import goal

ROOT = Path(__file__).resolve().parents[1]
_ROW = re.compile(r"^\|\s*(✅|🟡|🔶|⬜)\s*\|\s*(\d\d) ", re.M)


def readme_marks(text: str) -> dict[str, tuple[str, str]]:
    """``{chapter: (mark, row text)}`` of README's chapter table."""
    out = {}
    for m in _ROW.finditer(text):
        line = text[m.start():text.index("\n", m.start())]
        out[m.group(2)] = (m.group(1), line)
    return out


def test_every_chapter_has_a_row():
    marks = readme_marks((ROOT / "README.md").read_text())
    assert sorted(marks) == sorted(results.CHAPTER_BENCHMARKS)


@pytest.mark.parametrize("chapter", sorted(results.CHAPTER_BENCHMARKS))
def test_readme_mark_equals_the_goal_records(chapter, monkeypatch):
    monkeypatch.delenv("COURSE_VARIETY", raising=False)  # README marks the default family's chapters
    mark, row = readme_marks((ROOT / "README.md").read_text())[chapter]
    expected, reasons = results.chapter_mark(chapter)
    assert mark == expected, (f"README marks chapter {chapter} {mark}, its goal records say {expected}: "
                              + "; ".join(reasons))
    if mark == "🟡":  # a missed goal is named in the row, with the lecture printing its value
        for r in reasons:
            gid = r.split(": ", 1)[1].split(" missed", 1)[0]
            assert gid in row, f"README row {chapter} does not name its missed goal {gid!r}"
    if mark == "🔶":
        assert "benchmarks/" in row, f"README row {chapter} must give the benchmark that measures it"


def test_chapter_mark_reads_goals(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_VARIETY", "base")  # the base family's file names
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    monkeypatch.setitem(results.CHAPTER_BENCHMARKS, "05", ("demo",))

    def write(goals, protocol=2):
        (tmp_path / "demo-laptop.json").write_text(json.dumps({"provenance": {"protocol": protocol},
                                                               "data": {"goals": goals}}))

    assert results.chapter_mark("05")[0] == "🔶"  # not measured
    write([goal("a", "a", 1.0, 2.0, comparison="<=")], protocol=1)
    assert results.chapter_mark("05")[0] == "🔶"  # measured before the protocol
    write([])
    assert results.chapter_mark("05")[0] == "🔶"  # no goal records
    write([goal("a", "a", 1.0, 2.0, comparison="<=")])
    assert results.chapter_mark("05") == ("✅", [])
    write([goal("a", "a", 1.0, 2.0, comparison="<="), goal("b", "b", 3.0, 2.0, comparison="<=")])
    mark, reasons = results.chapter_mark("05")
    assert mark == "🟡" and "b missed" in reasons[0]
    with pytest.raises(ValueError, match="unknown chapter"):
        results.chapter_mark("12")
