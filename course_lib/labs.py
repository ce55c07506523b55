"""Build the course notebooks: sources -> lectures/solutions -> labs.

Introduced in ``lectures/00_welcome.ipynb`` (for instructors).

Two steps, both deterministic, both checked in CI:

1. ``nbsrc/lectures/*.py`` and ``nbsrc/solutions/*.py`` (jupytext "percent" scripts, the form we
   write and review notebooks in) become ``lectures/*.ipynb`` and ``solutions/*.ipynb``, without outputs.
2. Every ``solutions/NN_x_lab.ipynb`` becomes ``labs/NN_x_lab.ipynb``: code between
   ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is replaced by ``raise NotImplementedError()``
   at the indentation of the ``BEGIN`` marker; a one-line ``x = <expr>  # SOLUTION`` becomes
   ``x = ...``; cells tagged ``solution-only`` are dropped; cells holding a stub, and cells tagged
   ``uses-exercise`` (they run the student's code), are tagged ``raises-exception`` for nbval.
   Nested or unterminated markers are errors naming the notebook and the cell, and so is a
   line that looks like a misspelt marker (``### BEGIN SOLUTON``, ``#BEGIN SOLUTION``,
   ``### end solution``, ``x = 1  # solution``): a misspelt marker would leak the solution.

**A lab a student has edited is never overwritten.**  Each generated lab records, in its
metadata (``course_lib.lab_sha256``), a fingerprint of its cells (type, source, tags; not the
outputs).  Before replacing a lab whose text changed, the build compares the file's cells with
the fingerprint it was generated with: if they differ (someone edited the lab since), the file
is left alone, the build names it and exits with status 3.  ``--force`` overwrites it anyway.
A lab from before fingerprints counts as unedited only when it equals its committed version
(``git show HEAD:labs/X``).

Usage::

    python -m course_lib.labs            # write every generated notebook (edited labs are kept)
    python -m course_lib.labs --force    # ... and overwrite edited labs too
    python -m course_lib.labs --check    # exit 1 and name each notebook out of step with its source
"""

from __future__ import annotations

import argparse
import ast
import copy
import difflib
import hashlib
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
ONE_LINE = "# SOLUTION"
STUB = "raise NotImplementedError()"
TAG_RAISES = "raises-exception"
TAG_USES = "uses-exercise"
TAG_SOLUTION_ONLY = "solution-only"
META_KEY = "course_lib"
HASH_KEY = "lab_sha256"

LAB_BANNER = (
    "> **This lab is generated** from `solutions/{name}` by `python -m course_lib.labs`. "
    "Work in this copy: replace each `raise NotImplementedError()` (or `...`) with your code, "
    "then run the self-check cell that follows it."
)


class LabError(ValueError):
    """A solution notebook whose markers cannot be turned into a lab."""


@dataclass
class Change:
    """One generated notebook that differs from (or is missing next to) its source."""

    target: Path
    source: Path
    reason: str
    edited: bool = False
    """A lab whose cells were changed after it was generated (a student's work)."""


# ---------------------------------------------------------------------------
# Step 2: solution -> lab
# ---------------------------------------------------------------------------
_ONE_LINE_TAIL = re.compile(r"#\s*SOLUTION\s*$")
_ASSIGN = re.compile(r"^(?P<lhs>\s*[^=#'\"]*?[^=!<>:+\-*/%&|^@\s])\s*(?P<op>=)(?!=)\s*(?P<rhs>.+?)\s*#\s*SOLUTION\s*$")


_FUZZY_BLOCK = re.compile(r"^#+\s*(?P<which>begin|end)[\s_\-]*(?P<word>[a-z]+)", re.IGNORECASE)
_TRAILING_WORD = re.compile(r"#\s*(?P<word>[A-Za-z]+)\s*$")


def _like_solution(word: str) -> bool:
    word = word.lower()
    return word[:1] == "s" and len(word) <= 11 and difflib.SequenceMatcher(None, word, "solution").ratio() >= 0.75


def _misspelt_marker(stripped: str) -> str | None:
    """The marker a line seems to mean when it is not written exactly, else None."""
    if stripped in (BEGIN, END):
        return None
    m = _FUZZY_BLOCK.match(stripped)
    if m and _like_solution(m.group("word")):
        return BEGIN if m.group("which").lower() == "begin" else END
    if not stripped.startswith("#"):
        t = _TRAILING_WORD.search(stripped)
        if t and _like_solution(t.group("word")) and not _ONE_LINE_TAIL.search(stripped):
            return ONE_LINE
    return None


def _one_line(line: str, where: str) -> str:
    """``x = expr  # SOLUTION`` -> ``x = ...`` (type annotations kept; ``a, b = ...`` -> ``a, b = ..., ...``)."""
    m = _ASSIGN.match(line)
    if not m:
        raise LabError(
            f"{where}: a '{ONE_LINE}' marker must end a one-line assignment like "
            f"'x = <expr>  {ONE_LINE}', got: {line.strip()!r}"
        )
    lhs = m.group("lhs")
    try:
        target = ast.parse(lhs.strip() + " = 0").body[0].targets[0]  # type: ignore[attr-defined]
    except (SyntaxError, AttributeError, IndexError):
        target = None
    if isinstance(target, (ast.Tuple, ast.List)) and not any(isinstance(e, ast.Starred) for e in target.elts):
        return f"{lhs} = {', '.join(['...'] * len(target.elts))}"
    return f"{lhs} = ..."


def strip_solutions(source: str, where: str) -> tuple[str, bool]:
    """Replace the solution markers of one cell; return the new source and whether it changed.

    ``where`` names the notebook and cell for error messages.
    """
    out: list[str] = []
    inside = False
    begin_line = 0
    changed = False
    for lineno, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise LabError(
                    f"{where}, line {lineno}: nested '{BEGIN}' (the one on line {begin_line} "
                    f"is not closed by '{END}')"
                )
            inside, begin_line, changed = True, lineno, True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + STUB)
            continue
        if stripped == END:
            if not inside:
                raise LabError(f"{where}, line {lineno}: '{END}' without a matching '{BEGIN}'")
            inside = False
            continue
        meant = _misspelt_marker(stripped)
        if meant is not None:
            raise LabError(
                f"{where}, line {lineno}: {stripped!r} looks like a misspelt solution marker; write exactly "
                f"'{meant}'" + (" at the end of a one-line assignment" if meant == ONE_LINE else
                                " alone on its line") + " (a misspelt marker would leave the solution in the lab)"
            )
        if inside:
            continue
        if _ONE_LINE_TAIL.search(stripped) and not stripped.startswith("#"):
            out.append(_one_line(line, f"{where}, line {lineno}"))
            changed = True
            continue
        if BEGIN in line or END in line:
            raise LabError(f"{where}, line {lineno}: a solution marker must stand alone on its line")
        out.append(line)
    if inside:
        raise LabError(f"{where}: '{BEGIN}' on line {begin_line} is never closed by '{END}'")
    return "\n".join(out), changed


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _set_tags(cell, tags: list[str]) -> None:
    if tags:
        cell.setdefault("metadata", {})["tags"] = tags
    else:
        cell.get("metadata", {}).pop("tags", None)


def clean_notebook(nb) -> None:
    """Strip outputs, execution counts and per-run metadata; give cells stable ids."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        md = cell.setdefault("metadata", {})
        for key in ("execution", "collapsed", "scrolled", "jupyter", "ExecuteTime", "lines_to_next_cell"):
            md.pop(key, None)
        cell["id"] = f"cell-{i:03d}"
    nb.metadata.pop("jupytext", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.nbformat, nb.nbformat_minor = 4, 5


def fingerprint(nb) -> str:
    """sha256 of what a student edits in a notebook: each cell's type, source and tags (not outputs,
    execution counts, ids or other metadata, which running a notebook changes)."""
    cells = [[c.get("cell_type"), c.get("source") if isinstance(c.get("source"), str) else "".join(c.get("source")),
              sorted(c.get("metadata", {}).get("tags", []))] for c in nb.cells]
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode()).hexdigest()


def make_lab(solution, name: str):
    """Return the lab notebook generated from a solution notebook (not modified)."""
    lab = copy.deepcopy(solution)
    cells = []
    found = False
    for index, cell in enumerate(solution.cells):
        tags = _tags(cell)
        if TAG_SOLUTION_ONLY in tags:
            continue
        new = copy.deepcopy(cell)
        where = f"{name}: cell {index}"
        if cell.cell_type == "code":
            new.source, changed = strip_solutions(cell.source, where)
            found |= changed
            if (changed or TAG_USES in tags) and TAG_RAISES not in tags:
                tags.append(TAG_RAISES)
        elif BEGIN in cell.source or END in cell.source:
            raise LabError(f"{where}: solution markers are only allowed in code cells")
        _set_tags(new, tags)
        cells.append(new)
    if not found:
        raise LabError(f"{name}: no '{BEGIN}' or '{ONE_LINE}' marker: a lab needs at least one exercise")
    banner = nbformat.v4.new_markdown_cell(LAB_BANNER.format(name=name))
    lab.cells = [banner, *cells]
    clean_notebook(lab)
    lab.metadata[META_KEY] = {"generated_from": f"solutions/{name}", HASH_KEY: fingerprint(lab)}
    return lab


# ---------------------------------------------------------------------------
# Step 1: nbsrc (jupytext percent) -> ipynb
# ---------------------------------------------------------------------------
def notebook_from_source(path: Path):
    """Read a jupytext percent script into a clean notebook."""
    import jupytext

    nb = jupytext.read(path, fmt="py:percent")
    clean_notebook(nb)
    return nb


def dumps(nb) -> str:
    return nbformat.writes(nb) + "\n"


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------
def planned(root: Path) -> list[tuple[Path, Path, str]]:
    """Every (target, source, text) the build would write, in a stable order."""
    out: list[tuple[Path, Path, str]] = []
    solution_texts: dict[Path, str] = {}
    for kind in ("lectures", "solutions"):
        for src in sorted((root / "nbsrc" / kind).glob("*.py")):
            target = root / kind / (src.stem + ".ipynb")
            text = dumps(notebook_from_source(src))
            out.append((target, src, text))
            if kind == "solutions":
                solution_texts[target] = text
    # solutions with no nbsrc script are sources themselves
    for sol in sorted((root / "solutions").glob("*_lab.ipynb")):
        solution_texts.setdefault(sol, sol.read_text())
    for sol, text in sorted(solution_texts.items()):
        if not sol.name.endswith("_lab.ipynb"):
            continue
        nb = nbformat.reads(text, as_version=4)
        lab = make_lab(nb, sol.name)
        out.append((root / "labs" / sol.name, sol, dumps(lab)))
    return out


def _committed_text(root: Path, path: Path) -> str | None:
    """The text of ``path`` at git HEAD, or None (not a git checkout, not committed, no git)."""
    try:
        rel = path.resolve().relative_to(root.resolve()).as_posix()
        proc = subprocess.run(["git", "-C", str(root), "show", f"HEAD:{rel}"], capture_output=True, timeout=20)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    return proc.stdout.decode() if proc.returncode == 0 else None


def lab_status(root: Path, path: Path) -> str:
    """``"generated"`` if the lab at ``path`` holds the cells it was generated with, ``"edited"`` otherwise.

    A lab carries the fingerprint of its generated cells in its metadata; a lab from before
    fingerprints counts as generated only when it equals its committed version.
    """
    text = path.read_text()
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception:  # noqa: BLE001 - an unreadable notebook is not ours to overwrite
        return "edited"
    stored = nb.metadata.get(META_KEY, {}).get(HASH_KEY)
    if stored is None:
        return "generated" if _committed_text(root, path) == text else "edited"
    return "generated" if stored == fingerprint(nb) else "edited"


def check(root: Path) -> list[Change]:
    """List every generated notebook that differs from what its source generates."""
    changes: list[Change] = []
    expected: set[Path] = set()
    for target, source, text in planned(root):
        expected.add(target)
        rel_t, rel_s = target.relative_to(root), source.relative_to(root)
        if not target.exists():
            changes.append(Change(rel_t, rel_s, "missing"))
        elif target.read_text() != text:
            edited = target.parent.name == "labs" and lab_status(root, target) == "edited"
            changes.append(Change(rel_t, rel_s, "differs from what its source generates"
                                  + (" (and was edited after it was generated)" if edited else ""), edited))
    for lab in sorted((root / "labs").glob("*.ipynb")):
        if lab not in expected:
            changes.append(Change(lab.relative_to(root), Path("?"), "has no solution in solutions/"))
    return changes


def build(root: Path, *, force: bool = False, kept: list[Path] | None = None) -> list[Path]:
    """Write every generated notebook whose text changed; return the paths written.

    A lab that was edited since it was generated (see :func:`lab_status`) is not overwritten
    unless ``force``; its path is appended to ``kept``.
    """
    written = []
    for target, _source, text in planned(root):
        if target.exists() and target.read_text() == text:
            continue
        if (target.exists() and not force and target.parent.name == "labs"
                and lab_status(root, target) == "edited"):
            if kept is not None:
                kept.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".ipynb.tmp")
        tmp.write_text(text)
        tmp.replace(target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.labs", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if any generated notebook is out of step")
    parser.add_argument("--force", action="store_true",
                        help="also overwrite labs edited since they were generated (their changes are lost)")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: cwd)")
    parser.add_argument("--allow-edited-labs", action="store_true",
                        help="with --check: a lab edited after it was generated (a student's work) is reported, "
                             "not a failure (tools/test.py passes it outside CI)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.check:
            changes = check(root)
            edited = [c for c in changes if c.edited]
            failing = [c for c in changes if not (args.allow_edited_labs and c in edited)]
            for c in changes:
                if c in failing:
                    print(f"OUT OF STEP: {c.target} ({c.reason}; source: {c.source})")
                else:
                    print(f"your edited lab: {c.target} differs from the generated one (your work; not a failure "
                          "here, CI checks the committed labs)")
            if failing:
                print(f"{len(failing)} notebook(s) out of step: run `python -m course_lib.labs` and commit.")
                return 1
            print("labs check: every generated notebook matches its source"
                  + (f" (apart from {len(edited)} lab(s) you edited)." if changes else "."))
            return 0
        kept: list[Path] = []
        for path in build(root, force=args.force, kept=kept):
            print(f"wrote {path.relative_to(root)}")
        for path in kept:
            print(f"NOT OVERWRITTEN: {path.relative_to(root)} was edited after it was generated (your work?). "
                  "Move it out of labs/ to keep it and rerun, or rerun with --force to replace it "
                  "(its changes are lost).", file=sys.stderr)
        return 3 if kept else 0
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
