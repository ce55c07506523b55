"""Structural rules every notebook source follows (see CONTRIBUTING.md)."""

import re
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted((ROOT / "nbsrc" / "lectures").glob("*.py"))
SOLUTIONS = sorted((ROOT / "nbsrc" / "solutions").glob("*.py"))


def cells(path):
    return jupytext.read(path, fmt="py:percent").cells


def code(cs):
    return [c for c in cs if c.cell_type == "code"]


@pytest.mark.parametrize("path", LECTURES + SOLUTIONS, ids=lambda p: p.name)
def test_first_code_cell_prints_profile_and_device(path):
    first = code(cells(path))[0].source
    assert "config.describe()" in first, f"{path.name}: the first code cell must print config.describe()"


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_lecture_has_widget_summary_and_exercises(path):
    cs = cells(path)
    src = "\n".join(c.source for c in code(cs))
    assert re.search(r"viz\.(interact|gallery)\(|ipywidgets", src), f"{path.name}: no widget"
    md = "\n".join(c.source for c in cs if c.cell_type == "markdown").lower()
    assert re.search(r"^#{2,3} *(\d+\.)? *summary", md, re.M), f"{path.name}: no summary section"
    assert "exercises" in md, f"{path.name}: no exercises to go further"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_exercise_is_followed_by_a_self_check(path):
    cs = code(cells(path))
    exercises = [i for i, c in enumerate(cs) if "### BEGIN SOLUTION" in c.source or "# SOLUTION" in c.source]
    assert len(exercises) >= 2, f"{path.name}: a lab needs several exercises"
    for i in exercises:
        nxt = cs[i + 1].source if i + 1 < len(cs) else ""
        assert "checks." in nxt, f"{path.name}: exercise in code cell {i} is not followed by a self-check cell"


def test_every_lecture_source_is_built():
    for p in LECTURES:
        assert (ROOT / "lectures" / (p.stem + ".ipynb")).exists(), p.name
    for p in SOLUTIONS:
        assert (ROOT / "solutions" / (p.stem + ".ipynb")).exists(), p.name
        assert (ROOT / "labs" / (p.stem + ".ipynb")).exists(), p.name
