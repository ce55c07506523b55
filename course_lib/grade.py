"""Autograding of lab notebooks: execute each submission fresh, collect every self-check verdict as points.

Introduced in ``lectures/00_welcome.ipynb`` (for instructors).  Usage::

    python -m course_lib.grade SUBMISSIONS... --out grades.csv [--feedback DIR] [--profile ci]
                               [--cell-timeout 120] [--notebook-timeout 900] [--lab 03_voxels_lab] [--jobs N]

``SUBMISSIONS`` are ``.ipynb`` files or folders of them.  Each submission's lab is recognised from its
file name (it must contain the lab's name, e.g. ``alice_03_voxels_lab.ipynb``) unless ``--lab`` names it.
The checks a lab must reach are read from the course's own generated lab (``labs/<lab>.ipynb``), never
from the submission, so deleting a check call does not remove it from the grade.

How a submission is graded:

* its outputs are discarded and it is executed from the top in a fresh kernel, in a child process, with
  ``COURSE_PROFILE`` (default ``ci``), a limit per cell (``--cell-timeout``: the cell is interrupted and
  execution goes on with the next cell) and a limit for the whole notebook (``--notebook-timeout``: the
  child is killed);
* every self-check that runs appends its verdict to a log that the grader reads afterwards
  (:data:`GRADE_LOG_ENV`); a check scores 1 when its last verdict is "passed", else 0, with the reason:
  its own message, "not reached" (the notebook stopped, crashed or ran out of time before it), or
  "checked a course_lib function" (the check was called on the library's reference instead of the
  student's code);
* a cell that raises does not stop the run (each exercise is graded on its own), but its error is
  reported in the feedback;
* a check with a hidden part (more cases, other sizes, edge cases; :mod:`course_lib.checks._core`) runs it
  too, graded as its own point ``<check>:hidden``; a submission whose function calls the library's own
  implementation of the exercise fails that part with "delegated to ...", which the feedback shows.

Writes a CSV (one row per submission: the lab, one column per check, the total, the maximum, the run's
status and seconds) and, with ``--feedback``, one text file per submission with every check's verdict,
the cells that raised, why a check was not reached, and the text of the cells tagged ``answer`` (each
lab's free-response questions, marked by hand; the CSV counts their words).  The grader never hangs: a
looping cell is interrupted, a looping notebook killed.

A limitation, stated: the checks run inside the student's kernel, so a student who deliberately writes
forged lines into the log from their own code could fake verdicts; the grader trusts the kernel, not the
file's stored outputs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["GRADE_LOG_ENV", "expected_checks", "with_hidden_parts", "known_labs", "lab_of", "grade_notebook",
           "grade_many", "score", "answers_of", "Grade", "write_csv", "main"]

from course_lib.checks._core import (
    GRADE_LOG_ENV,  # every self-check appends {"name", "status", "message", "target"}
    HIDDEN_ENV,  # the checks' hidden parts run (more cases; a call to the library's own implementation is flagged)
)

LABS_DIR = Path(__file__).resolve().parents[1] / "labs"
_CHECK_CALL = re.compile(r"\bchecks\.(check_\w+)\s*\(")


def expected_checks(lab_notebook: str | os.PathLike) -> list[str]:
    """The self-checks a lab calls, in order, each once: read from the code cells of ``lab_notebook``."""
    import nbformat

    nb = nbformat.read(str(lab_notebook), as_version=4)
    out: list[str] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for name in _CHECK_CALL.findall(cell.source):
            if name not in out:
                out.append(name)
    if not out:
        raise ValueError(f"{lab_notebook} calls no self-check (checks.check_...): nothing to grade")
    return with_hidden_parts(out)


def with_hidden_parts(names: list[str]) -> list[str]:
    """``names`` with ``<check>:hidden`` after every check that has a hidden part (graded as its own point)."""
    from course_lib import checks
    from course_lib.checks._core import HIDDEN_SUFFIX

    out: list[str] = []
    for name in names:
        out.append(name)
        fn = getattr(checks, name, None)
        if fn is not None and getattr(fn, "has_hidden", lambda: False)():
            out.append(name + HIDDEN_SUFFIX)
    return out


def known_labs(labs_dir: Path = LABS_DIR) -> list[str]:
    """The lab names of the course (``03_voxels_lab`` ...), from ``labs_dir``."""
    return sorted(p.stem for p in Path(labs_dir).glob("*_lab.ipynb"))


def lab_of(path: str | os.PathLike, labs: list[str]) -> str:
    """The lab a submission belongs to, from its file name (the longest lab name it contains)."""
    name = Path(path).name
    hits = [lab for lab in labs if lab in name]
    if not hits:
        raise ValueError(f"cannot tell which lab {name!r} is: its name must contain one of {labs} (or pass --lab)")
    return max(hits, key=len)


@dataclass
class Grade:
    """The grade of one submission."""

    submission: str
    lab: str
    checks: dict[str, int]
    reasons: dict[str, str]
    status: str  # "ok" | "cell errors" | "timeout" | "crashed"
    seconds: float
    cell_errors: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.checks.values())

    def feedback(self) -> str:
        lines = [f"submission: {self.submission}", f"lab: {self.lab}",
                 f"score: {self.total} / {len(self.checks)}", f"run: {self.status} in {self.seconds:.1f} s", ""]
        for name, pts in self.checks.items():
            lines.append(f"{'✅' if pts else '❌'} {name}: {pts} point(s). {self.reasons.get(name, '')}".rstrip())
        if self.cell_errors:
            lines += ["", "cells that raised (the run went on with the next cell):", *[f"- {e}" for e in self.cell_errors]]
        if self.answers:
            lines += ["", "answers to the questions (marked by hand):", *self.answers]
        return "\n".join(lines) + "\n"


def answers_of(notebook: str | os.PathLike) -> list[str]:
    """The text of the cells tagged ``answer`` (the free-response questions' answers) of a submission."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    return [c.source.strip() for c in nb.cells if "answer" in c.get("metadata", {}).get("tags", [])]


def _run_one(notebook: str, log: str, cell_timeout: int, report: str) -> None:
    """Child process: execute ``notebook`` (outputs discarded) and write what happened to ``report``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:  # never trust stored outputs
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
                            interrupt_on_timeout=True, resources={"metadata": {"path": str(Path(notebook).parent)}})
    status, errors = "ok", []
    try:
        client.execute()
    except CellTimeoutError as exc:
        status, errors = "timeout", [f"a cell ran past {cell_timeout} s: {str(exc).splitlines()[0]}"]
    except DeadKernelError as exc:
        status, errors = "crashed", [f"the kernel died: {exc}"]
    except Exception as exc:  # noqa: BLE001 - any failure of the run is reported, never raised
        status, errors = "crashed", [f"{type(exc).__name__}: {exc}"]
    code_index = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code_index += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                errors.append(f"code cell {code_index}: {out.get('ename')}: {out.get('evalue')}")
    Path(report).write_text(json.dumps({"status": status, "errors": errors}))


def _read_log(log: Path) -> dict[str, dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}
    if not log.exists():
        return last
    for line in log.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("name"), str):
            last[rec["name"]] = rec
    return last


def grade_notebook(submission: str | os.PathLike, lab: str, *, reference: str | os.PathLike | None = None,
                   profile: str = "ci", cell_timeout: int = 120, notebook_timeout: int = 900) -> Grade:
    """Execute one submission and grade it against the self-checks of ``reference`` (default ``labs/<lab>.ipynb``)."""
    submission = Path(submission)
    ref = Path(reference) if reference is not None else LABS_DIR / f"{lab}.ipynb"
    expected = expected_checks(ref)
    with tempfile.TemporaryDirectory(prefix="course_grade_") as tmp:
        log, report = Path(tmp) / "checks.jsonl", Path(tmp) / "run.json"
        env = dict(os.environ)
        env.update({GRADE_LOG_ENV: str(log), "COURSE_PROFILE": profile, HIDDEN_ENV: "1"})
        env.pop("COURSE_STRICT_CHECKS", None)
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "course_lib.grade", "--run-one", str(submission), str(log), str(cell_timeout),
               str(report)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            _, err = proc.communicate(timeout=notebook_timeout)
            run = json.loads(report.read_text()) if report.exists() else {
                "status": "crashed", "errors": [f"the grading process failed: {err.decode(errors='replace')[-500:]}"]}
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the child and its kernel
            proc.wait()
            run = {"status": "timeout", "errors": [f"the notebook ran past {notebook_timeout} s and was stopped"]}
        seconds = time.perf_counter() - t0
        logged = _read_log(log)
    points, reasons, status = score(expected, logged, run)
    try:
        answers = answers_of(submission)
    except Exception as exc:  # noqa: BLE001 - an unreadable notebook is reported, not raised
        answers = [f"(could not read the answers: {type(exc).__name__}: {exc})"]
    return Grade(str(submission), lab, points, reasons, status, seconds, list(run["errors"]), answers)


def grade_many(submissions: list[tuple[str | os.PathLike, str]], *, jobs: int = 1,
               on_done: Any = None, **kwargs: Any) -> list[Grade]:
    """Grade ``(submission, lab)`` pairs, ``jobs`` at a time; the grades in the order given.

    ``kwargs`` go to :func:`grade_notebook` (``profile``, ``cell_timeout``, ``notebook_timeout``, ``reference``);
    ``on_done(grade)`` is called as each one finishes (a progress bar, a line printed).
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    out: list[Grade | None] = [None] * len(submissions)
    # threads suffice: each grade waits on its own child process
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(grade_notebook, sub, lab, **kwargs): i for i, (sub, lab) in enumerate(submissions)}
        for fut in as_completed(futures):
            g = fut.result()
            out[futures[fut]] = g
            if on_done is not None:
                on_done(g)
    return [g for g in out if g is not None]


def score(expected: list[str], logged: dict[str, dict[str, Any]],
          run: dict[str, Any]) -> tuple[dict[str, int], dict[str, str], str]:
    """Points and reasons per expected check from the logged verdicts (the last per check) and the run's
    ``{"status", "errors"}``; returns ``(points, reasons, status)``."""
    points, reasons = {}, {}
    for name in expected:
        rec = logged.get(name)
        if rec is None:
            points[name] = 0
            reasons[name] = ("not reached: the notebook stopped before this check ran" if run["status"] != "ok" else
                             "not run: its call was removed, or the cell calling it never ran")
        elif str(rec.get("target", "")).startswith("course_lib"):
            points[name] = 0
            reasons[name] = (f"the check was called on {rec['target']}, a course_lib function, not on your own code")
        else:
            points[name] = int(rec.get("status") == "passed")
            reasons[name] = str(rec.get("message", ""))
    status = run["status"] if run["status"] != "ok" or not run["errors"] else "cell errors"
    return points, reasons, status


def write_csv(grades: list[Grade], path: str | os.PathLike) -> None:
    """One row per submission; the check columns are the union over the labs graded (empty where n/a)."""
    cols: list[str] = []
    for g in grades:
        cols += [c for c in g.checks if c not in cols]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["submission", "lab", *cols, "total", "max", "status", "seconds", "answer words"])
        for g in grades:
            words = sum(len(a.split()) for a in g.answers)
            w.writerow([g.submission, g.lab, *[g.checks.get(c, "") for c in cols], g.total, len(g.checks), g.status,
                        f"{g.seconds:.1f}", words])


def _submissions(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        elif p.suffix == ".ipynb" and p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p} is neither a notebook nor a folder of notebooks")
    if not out:
        raise FileNotFoundError(f"no notebook found in {paths}")
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--run-one"]:
        _run_one(argv[1], argv[2], int(argv[3]), argv[4])
        return 0
    ap = argparse.ArgumentParser(prog="python -m course_lib.grade", description=__doc__.splitlines()[0])
    ap.add_argument("submissions", nargs="+", help="notebooks or folders of notebooks")
    ap.add_argument("--out", required=True, help="the CSV to write")
    ap.add_argument("--feedback", default=None, help="a folder for one feedback file per submission")
    ap.add_argument("--lab", default=None, help="the lab of every submission (default: from each file name)")
    ap.add_argument("--reference", default=None, help="the lab notebook whose checks are expected (default: labs/)")
    ap.add_argument("--profile", default="ci", help="COURSE_PROFILE of the runs (default ci)")
    ap.add_argument("--cell-timeout", type=int, default=120)
    ap.add_argument("--notebook-timeout", type=int, default=900)
    ap.add_argument("--jobs", type=int, default=1, help="submissions executed at once (default 1)")
    args = ap.parse_args(argv)
    labs = known_labs()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    subs = _submissions(args.submissions)
    pairs = [(sub, args.lab or lab_of(sub, labs)) for sub in subs]
    bar = tqdm(total=len(pairs), desc="grading") if tqdm is not None else None

    def done(g: Grade) -> None:
        print(f"{g.submission}: {g.total}/{len(g.checks)} ({g.status}, {g.seconds:.0f} s)", flush=True)
        if args.feedback:
            Path(args.feedback).mkdir(parents=True, exist_ok=True)
            (Path(args.feedback) / f"{Path(g.submission).stem}.txt").write_text(g.feedback())
        if bar is not None:
            bar.update(1)

    grades = grade_many(pairs, jobs=args.jobs, on_done=done, reference=args.reference, profile=args.profile,
                        cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout)
    if bar is not None:
        bar.close()
    write_csv(grades, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
