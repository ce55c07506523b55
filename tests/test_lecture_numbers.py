"""Lectures never type a measured number: numbers in their prose come from a paper or from a file.

Every markdown cell of every lecture source (``nbsrc/lectures/*.py``) is scanned for numbers that
look *measured*: decimals (``0.98``, ``13.7``), and integers with a unit of time, memory or
ratio (``26 s``, ``64 MB``, ``3.5x``, ``88 %``).  Such a number is allowed only

* inside math (``$...$``) or code (`` `...` ``), where it is a definition or a parameter;
* in a sentence that cites where it comes from: a paper (``[Name2017]``, ``et al.``, a year in
  parentheses) or the paper's own report ("reports", "the paper");
* in the references list.

Anything else (a result of the course typed into prose) fails: print it from
``course_lib.results`` or compute it in a cell instead.  ``test_the_rule_can_fail`` proves the scan
catches such a number.

**Comparative sentences** (protocol 2, issue #32) are held to the same rule: a sentence that says
one measured thing beats, is ahead of, is better or worse than, falls like or stalls against
another cannot be typed.  The lecture prints it from its claim record
(``course_lib.results.say(benchmark, claim_id)``), which carries the difference, its standard
error, ``n`` and the verdict.  Allowed are sentences that cite a paper, questions (a prompt to
the student), instructions ("Compare ...", "Predict ..."), and statements true by construction
("by construction", "by definition", "analytically", "in theory", "in expectation").
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LECTURES = sorted((ROOT / "nbsrc" / "lectures").glob("*.py"))

_MEASURED = re.compile(
    r"(?<![\w.\[])(\d+(?:[.,]\d+)*\.\d+|\d+(?:,\d{3})*)\s*(?:(s|ms|µs|min|MB|MiB|GB|GiB|kB|%|x|×|times)\b|(?=[^\w]))"
)
_CITES = re.compile(r"\[[A-Z][A-Za-z]+\d{4}[a-z]?\]|et al\.|\((?:[A-Z][^()]*)?(?:19|20)\d{2}\)|\b(?:19|20)\d{2}\b"
                    r"|reports?|reported|the paper|papers|README|official")


def markdown_cells(path: Path) -> list[tuple[int, str]]:
    """(first line number, text) of each markdown cell of a jupytext percent script."""
    cells, cur, start, in_md = [], [], 0, False
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("# %%"):
            if in_md and cur:
                cells.append((start, "\n".join(cur)))
            in_md = "[markdown]" in line
            cur, start = [], i + 1
        elif in_md:
            cur.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
    if in_md and cur:
        cells.append((start, "\n".join(cur)))
    return cells


def _strip(text: str) -> str:
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"\$[^$]*\$", " ", text)
    text = re.sub(r"`[^`]*`", " ", text)
    return text


def prose_sentences(text: str, *, headings: bool) -> list[str]:
    """The sentences of one markdown cell's prose: math and code removed, the references list cut off,
    headings kept or dropped (a heading names a topic, it asserts nothing)."""
    body = _strip(text)
    if re.search(r"^\s*\*?\*?References", body, flags=re.M):
        body = re.split(r"^\s*\*?\*?References", body, flags=re.M)[0]
    if not headings:
        body = re.sub(r"^\s*#+ .*$", "", body, flags=re.M)
    return re.split(r"(?<=[.!?;])\s+(?=[A-Z(*])|\n\s*\n|\n\s*[-*] |\n\s*\d+\. ", body)


def suspicious_numbers(text: str) -> list[str]:
    """Measured-looking numbers of one markdown cell that no citation backs (see the module doc)."""
    out = []
    for s in prose_sentences(text, headings=True):
        if _CITES.search(s):
            continue
        for m in _MEASURED.finditer(s):
            num, unit = m.group(1), m.group(2)
            if unit is None and "." not in num:
                continue  # a bare integer (a count, a chapter number): not a measurement
            if unit is None and re.fullmatch(r"\d\.\d", num) and re.search(r"\b(?:Python|torch|version)\b", s):
                continue
            out.append(f"{num}{(' ' + unit) if unit else ''} in: {s.strip()[:120]!r}")
    return out


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_lectures_type_no_measured_number(path):
    bad = []
    for line, text in markdown_cells(path):
        bad += [f"{path.name}:{line}: {b}" for b in suspicious_numbers(text)]
    assert not bad, ("numbers typed into lecture prose without a source (print them from "
                     "course_lib.results or a cell, or cite the paper they come from):\n" + "\n".join(bad))


def test_the_rule_can_fail():
    assert suspicious_numbers("PointNet reached 0.98 after 26 s of training.")
    assert suspicious_numbers("The auction was 3.5x faster and used 64 MB.")
    assert not suspicious_numbers("The paper reports 89.2 % on ModelNet40 (Qi et al., 2017).")
    assert not suspicious_numbers("With $\\sigma = 0.05$ and `k=16` the loss is defined as above.")
    assert not suspicious_numbers("Chapter 3 uses 32 shapes per category.")


_COMPARATIVE = re.compile(
    r"\b(beats?|beaten|beating|outperform\w*|ahead of|better than|worse than|lower than|higher than|closer than|"
    r"more accurate|less accurate|wins?|loses? to|falls? like|stalls?|helps|hurts|trails?|surpass\w*)\b", re.I)
_NOT_A_CLAIM = re.compile(r"\?|\b(?:by construction|by definition|analytically|in theory|in expectation)\b", re.I)
_IMPERATIVE = re.compile(r"^\W*(?:compare|predict|check|try|look|guess|ask|decide|see whether|measure)\b", re.I)


def typed_comparisons(text: str) -> list[str]:
    """Comparative sentences of one markdown cell typed without a claim record (see the module doc)."""
    out = []
    for s in prose_sentences(text, headings=False):
        s = s.strip()
        if not _COMPARATIVE.search(s) or _CITES.search(s) or _NOT_A_CLAIM.search(s) or _IMPERATIVE.search(s):
            continue
        out.append(s[:160])
    return out


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_lectures_type_no_comparison(path):
    bad = []
    for line, text in markdown_cells(path):
        bad += [f"{path.name}:{line}: {b!r}" for b in typed_comparisons(text)]
    assert not bad, ("comparative sentences typed into lecture prose (print them from their claim record with "
                     "course_lib.results.say(benchmark, claim_id), cite the paper, or make them a question):\n"
                     + "\n".join(bad))


def test_the_comparison_rule_can_fail():
    assert typed_comparisons("ShapeGF beats PointSetGen on both metrics.")
    assert typed_comparisons("The reordering trick is better than REINFORCE, and superquadrics win.")
    assert typed_comparisons("The variance falls like 1/K.")
    assert typed_comparisons("With a small sigma the fit stalls.")
    assert not typed_comparisons("Which of the two losses wins on its own metric?")
    assert not typed_comparisons("Compare the rows before concluding that depth helps.")
    assert not typed_comparisons("AtlasNet beats PointSetGen in the paper's table (Groueix et al., 2018).")
    assert not typed_comparisons("For K i.i.d. samples the variance falls like 1/K by construction.")
    assert not typed_comparisons("## The oracle, and what beats it")
