"""Run solution notebooks in a profile and record what every self-check said, and the time.

The ``ci`` profile (nbval) proves that each solution passes its self-checks on tiny sizes; several
checks only compare numbers outside ``ci`` (for example lab 02's ``check_pointnet_training``, which
compares a student's PointNet with the library's after the same training).  This script executes the
solutions (``solutions/<NN>_*.ipynb``) with ``nbclient`` under the active profile, with strict
self-checks (``COURSE_STRICT_CHECKS=1``: a failed check raises), and records per notebook the wall
time and the text each ``checks.*`` cell printed.

    COURSE_PROFILE=laptop python benchmarks/lab_solutions.py --labs 02

Writes ``results/lab_solutions-<profile>-<machine>.md`` and ``results/lab_solutions-<profile>.json``.
Cost: the solution's own run time in that profile (lab 02, laptop: a few minutes).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import md_table, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


SELECTION_PARTS: tuple[str, ...] = ()
"""Protocol 2 (course_lib.experiments.protocol): this benchmark times the lab solutions; it chooses nothing."""


def run_solution(path: Path, timeout: int) -> dict:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    error = None
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except CellExecutionError as err:
        error = str(err).splitlines()[-1][:500] if str(err) else "CellExecutionError"
    wall = time.perf_counter() - t0
    checks = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "checks." not in cell.source:
            continue
        text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        name = next((ln.split("(")[0].strip() for ln in cell.source.splitlines() if "checks." in ln), "")
        checks.append({"cell": i, "check": name, "output": text.strip()[-600:]})
    return {"notebook": str(path.relative_to(ROOT)), "wall_s": wall, "error": error, "checks": checks}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--labs", nargs="+", required=True, help="two-digit lab numbers, e.g. 02 07")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = ap.parse_args()
    os.environ["COURSE_STRICT_CHECKS"] = "1"
    from course_lib import config

    profile = config.get_profile()
    runs = []
    for lab in args.labs:
        paths = sorted((ROOT / "solutions").glob(f"{lab}_*.ipynb"))
        if not paths:
            raise SystemExit(f"no solution notebook solutions/{lab}_*.ipynb")
        r = run_solution(paths[0], args.timeout)
        print(f"{r['notebook']}: {r['wall_s']:.0f} s, error: {r['error']}", flush=True)
        for c in r["checks"]:
            print(f"  {c['check']}: {c['output'][-200:]}", flush=True)
        runs.append(r)
    body = []
    for r in runs:
        body += [f"## {r['notebook']}", "",
                 f"Wall time {r['wall_s']:.0f} s; {'no error' if r['error'] is None else 'ERROR: ' + r['error']}.", "",
                 md_table(["cell", "check", "what it printed"],
                          [[c["cell"], f"`{c['check']}`", c["output"].replace("\n", " ").replace("|", "/")[-300:]]
                           for c in r["checks"]]), ""]
    path = write_result("lab_solutions", profile, "\n".join(body),
                        notes="Solutions executed with nbclient, strict self-checks (COURSE_STRICT_CHECKS=1).",
                        data={"runs": runs})
    print("wrote", path)
    if any(r["error"] for r in runs):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
