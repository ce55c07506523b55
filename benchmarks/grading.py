"""The grader on a class (issue #36): 30 submissions of the course's labs, graded, each against the mark it must get.

The submissions are made from the course's own notebooks, each with the mark it must earn written down
*before* grading:

* **solutions** of all twelve labs: full marks (every check and every hidden part);
* **blank** labs (the generated stubs) of four labs: zero;
* **wrong answers**, one exercise of each of nine labs edited as a student might get it wrong (a sum for a mean,
  corners for voxel centres, a missing square, ...): exactly that check and its hidden part lost;
* a **crash** (the kernel dies before an exercise's check): the checks before it kept, the rest "not reached";
* two **infinite loops** inside an exercise: the cell is interrupted at the per-cell limit, that check lost, the
  rest graded;
* a **deleted check** (its call removed from the notebook): that check lost (the grader reads the checks from the
  course's lab, not from the submission);
* **forged outputs** (a blank lab whose stored outputs claim every check passed): zero, since outputs are never
  trusted.

Run (alone; the ``ci`` profile, as the grader's default)::

    python benchmarks/grading.py [--jobs 2] [--cell-timeout 120]

Writes ``benchmarks/results/grading-ci-<machine>.md`` and ``grading-ci.json``: per submission the expected and
the graded mark, the run's status and time; exits non-zero if any mark differs from the expected one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import REPO, md_table, write_result  # noqa: E402

SELECTION_PARTS = ()
"""Protocol 2: this script chooses nothing (it grades submissions against marks fixed in advance)."""

LABS = ["00_welcome_lab", "01_data_and_representations_lab", "02_encoders_lab", "03_voxels_lab", "04_octrees_lab",
        "05_point_sets_lab", "06_surfaces_lab", "07_implicit_fields_lab", "08_primitives_lab",
        "09_differentiable_rendering_lab", "10_gradient_fields_lab", "11_evaluation_lab"]

# (lab, the exercise's `def` line, text in it, its replacement, the check it must lose, what the mistake is)
WRONG = [
    ("00_welcome_lab", "def chamfer", ".mean(", ".sum(", "check_chamfer", "sums where the Chamfer distance averages"),
    ("01_data_and_representations_lab", "def voxelize", "(torch.arange(resolution, dtype=torch.float32) + 0.5) * h",
     "torch.arange(resolution, dtype=torch.float32) * h", "check_voxelize", "samples cell corners, not centres"),
    ("03_voxels_lab", "def voxel_iou", "torch.ones_like(union)", "torch.zeros_like(union)", "check_voxel_iou",
     "scores two empty grids 0 instead of 1"),
    ("05_point_sets_lab", "def ae_loss", '"target"]).mean()', '"target"]).sum()', "check_ae_loss",
     "sums the batch's losses instead of averaging"),
    ("07_implicit_fields_lab", "def autograd_normals", "return grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)",
     "return grad", "check_autograd_normals", "the gradient returned without normalising it"),
    ("08_primitives_lab", "def inside_outside", "q[..., 2] ** (2 / e1)", "q[..., 2] ** (2 / e2)",
     "check_inside_outside", "the two shape exponents swapped on z"),
    ("09_differentiable_rendering_lab", "def iou_loss", "(pred + target - pred * target).sum((1, 2))",
     "(pred + target).sum((1, 2))", "check_iou_loss", "the union counts the intersection twice"),
    ("10_gradient_fields_lab", "def analytic_score", "(w @ points - x) / sigma ** 2", "(w @ points - x) / sigma",
     "check_analytic_score", "divides by sigma, not sigma squared"),
    ("11_evaluation_lab", "def mmd", "m_rs.min(dim=1)", "m_rs.min(dim=0)", "check_mmd",
     "the minimum over the wrong axis"),
]
BLANK = ["00_welcome_lab", "05_point_sets_lab", "08_primitives_lab", "11_evaluation_lab"]
# (lab, the exercise's `def` line, the check it must lose)
LOOPS = [("04_octrees_lab", "def expand_mixed", "check_expand_mixed"),
         ("11_evaluation_lab", "def coverage", "check_coverage")]
CRASH = ("02_encoders_lab", "check_ball_query")  # the kernel exits just before this check's cell
DELETED = ("06_surfaces_lab", 0)  # the first check's call removed
FORGED = "03_voxels_lab"


@dataclass
class Submission:
    name: str
    lab: str
    kind: str
    expected: Callable[[list[str]], int]  # the expected checks of the lab -> the expected total
    why: str


def _cell_with(nb, text: str) -> int:
    hits = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and text in c.source]
    if not hits:
        raise SystemExit(f"no code cell holds {text!r}: the benchmark's edits no longer match the notebook")
    return hits[0]


def _lost(names: list[str], *lost: str) -> int:
    return sum(1 for n in names if n.split(":")[0] not in lost)


def _before(names: list[str], check: str) -> int:
    return names.index(check)


def build(folder: Path) -> list[Submission]:
    """Write the 30 submissions into ``folder``; return them with their expected marks."""
    import nbformat

    def read(kind: str, lab: str):
        return nbformat.read(str(REPO / kind / f"{lab}.ipynb"), as_version=4)

    def write(nb, name: str) -> Path:
        path = folder / f"{name}.ipynb"
        nbformat.write(nb, str(path))
        return path

    subs: list[Submission] = []
    for lab in LABS:
        write(read("solutions", lab), f"solution_{lab}")
        subs.append(Submission(f"solution_{lab}", lab, "solution", len, "every check passes"))
    for lab in BLANK:
        write(read("labs", lab), f"blank_{lab}")
        subs.append(Submission(f"blank_{lab}", lab, "blank", lambda names: 0, "every exercise a stub"))
    for lab, where, old, new, check, why in WRONG:
        nb = read("solutions", lab)
        cell = nb.cells[_cell_with(nb, where)]
        if old not in cell.source:
            raise SystemExit(f"{lab}: {old!r} is not in the cell of {where!r}")
        cell.source = cell.source.replace(old, new, 1)
        write(nb, f"wrong_{lab}")
        subs.append(Submission(f"wrong_{lab}", lab, "wrong answer",
                               lambda names, c=check: _lost(names, c), f"{why}: {check} lost"))
    for lab, where, check in LOOPS:
        nb = read("solutions", lab)
        cell = nb.cells[_cell_with(nb, where)]
        lines = cell.source.split("\n")
        at = next(i for i, line in enumerate(lines) if line.startswith(where))
        # the body's first statement: an endless loop, as a student's `while` without progress
        lines.insert(at + 1, "    while True:\n        pass")
        cell.source = "\n".join(lines)
        write(nb, f"loop_{lab}")
        subs.append(Submission(f"loop_{lab}", lab, "infinite loop", lambda names, c=check: _lost(names, c),
                               f"the exercise of {check} never returns: interrupted, that check lost"))
    lab, check = CRASH
    nb = read("solutions", lab)
    nb.cells.insert(_cell_with(nb, f"checks.{check}("), nbformat.v4.new_code_cell("import os\nos._exit(1)"))
    write(nb, f"crash_{lab}")
    subs.append(Submission(f"crash_{lab}", lab, "crash", lambda names, c=check: _before(names, c),
                           f"the kernel dies before {check}: the checks before it kept"))
    lab, k = DELETED
    nb = read("solutions", lab)
    expected = _expected(lab)
    first = [n for n in expected if ":" not in n][k]
    i = _cell_with(nb, f"checks.{first}(")
    nb.cells[i].source = "\n".join(line for line in nb.cells[i].source.split("\n") if f"checks.{first}(" not in line)
    write(nb, f"deleted_{lab}")
    subs.append(Submission(f"deleted_{lab}", lab, "deleted check", lambda names, c=first: _lost(names, c),
                           f"the call of {first} removed: that check lost"))
    nb = read("labs", FORGED)
    for cell in nb.cells:
        if cell.cell_type == "code" and "checks.check_" in cell.source:
            names = [w.split("(")[0] for w in cell.source.split("checks.")[1:]]
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                                   text="".join(f"✅ {n}: passed\n" for n in names))]
    write(nb, f"forged_{FORGED}")
    subs.append(Submission(f"forged_{FORGED}", FORGED, "forged outputs", lambda names: 0,
                           "stubs whose stored outputs claim every check passed"))
    return subs


def _expected(lab: str) -> list[str]:
    from course_lib import grade

    return grade.expected_checks(REPO / "labs" / f"{lab}.ipynb")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cell-timeout", type=int, default=120)
    ap.add_argument("--notebook-timeout", type=int, default=900)
    ap.add_argument("--keep", default=None, help="a folder to keep the submissions and feedback in")
    ap.add_argument("--note", default="", help="a sentence for the result file's notes")
    args = ap.parse_args()
    from tqdm.auto import tqdm

    from course_lib import grade

    with tempfile.TemporaryDirectory(prefix="course_grading_") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        subs = build(folder)
        bar = tqdm(total=len(subs), desc="grading")
        t0 = time.perf_counter()
        grades = grade.grade_many([(folder / f"{s.name}.ipynb", s.lab) for s in subs], jobs=args.jobs,
                                  on_done=lambda g: bar.update(1), cell_timeout=args.cell_timeout,
                                  notebook_timeout=args.notebook_timeout)
        wall = time.perf_counter() - t0
        bar.close()
        if args.keep:
            grade.write_csv(grades, folder / "grades.csv")
            for g in grades:
                (folder / f"{Path(g.submission).stem}.txt").write_text(g.feedback())
    rows, data, wrong = [], [], 0
    for s, g in zip(subs, grades):
        want = s.expected(list(g.checks))
        ok = g.total == want
        wrong += not ok
        lost = [n for n, p in g.checks.items() if not p]
        rows.append([s.name, s.kind, f"{want}/{len(g.checks)}", f"{g.total}/{len(g.checks)}", "yes" if ok else "**NO**",
                     g.status, f"{g.seconds:.0f}", ", ".join(lost) if 0 < len(lost) < len(g.checks) else
                     ("none" if not lost else "all")])
        data.append({"submission": s.name, "lab": s.lab, "kind": s.kind, "why": s.why, "expected": want,
                     "graded": g.total, "max": len(g.checks), "as_expected": ok, "status": g.status,
                     "seconds": round(g.seconds, 1), "lost": lost,
                     "reasons": {n: g.reasons.get(n, "") for n in lost}})
    body = (f"{len(subs)} submissions of {len({s.lab for s in subs})} labs graded with `grade.grade_many` "
            f"({args.jobs} at once, a cell limit of {args.cell_timeout} s, a notebook limit of "
            f"{args.notebook_timeout} s) in {wall / 60:.1f} min; **{len(subs) - wrong} of {len(subs)} marks as "
            "expected**.\n\n" + md_table(["submission", "kind", "expected", "graded", "as expected", "run", "s",
                                          "checks lost"], rows))
    notes = ("Expected marks are written in the script before grading (solution: all; blank and forged: 0; a "
             "wrong answer, a loop or a deleted call: all but that check and its hidden part; a crash: the checks "
             "before it). Times are wall-clock with two submissions running at once on this machine."
             + (" " + args.note if args.note else ""))
    write_result("grading", "ci", body, notes=notes,
                 data={"submissions": data, "wall_s": round(wall, 1), "jobs": args.jobs,
                       "cell_timeout": args.cell_timeout, "as_expected": len(subs) - wrong, "n": len(subs)})
    print(body)
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
