"""A student's first run (issue #36): each lecture and lab, executed as a student would, on a fresh cache.

For every notebook asked for (default: all lectures, then all lab solutions), in the profile of
``COURSE_PROFILE`` (the point is ``laptop``):

1. **first run**: executed top to bottom in a fresh kernel with an empty cache (``COURSE_DATA_DIR`` a new
   temporary folder shared by the notebooks of this run, so that a later notebook may reuse what an
   earlier one generated, as on a student's machine), wall time recorded;
2. **second run** (``--again``): the same notebook again on the now-filled cache (checkpoints and data
   present): what every later "Restart kernel and run all" costs.

A notebook over ``--limit`` seconds (default 600, the issue's 10 minutes) is stopped and recorded as such.
Writes ``benchmarks/results/first_run-<profile>-<machine>.md`` and the JSON twin.  Run it alone:

    COURSE_PROFILE=laptop python benchmarks/first_run.py --again
    COURSE_PROFILE=laptop python benchmarks/first_run.py --notebooks lectures/03_voxels.ipynb --again --merge
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import REPO, git_commit, json_path, md_table, write_result  # noqa: E402

SELECTION_PARTS = ()
"""Protocol 2: this script chooses nothing (it trains the recipes as they are and times them)."""


def run_notebook(path: Path, limit: int, observations: list[dict] | None = None) -> tuple[str, float]:
    """Execute ``path`` in a fresh kernel (outputs discarded); ``(status, seconds)``.

    With ``observations`` (a list), the verdicts of the notebook's ``checks.observe`` calls (a lab's stated
    expectations tested on the run, issue #39) are appended to it.
    """
    import json

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(str(path), as_version=4)
    fd, log = tempfile.mkstemp(prefix="observations-", suffix=".jsonl")
    os.close(fd)
    os.environ["COURSE_OBSERVATIONS_LOG"] = log  # the kernel inherits this process's environment
    t0 = time.perf_counter()
    client = NotebookClient(nb, timeout=limit, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
        status = "ok"
    except CellTimeoutError:
        status = f"stopped: a cell ran past {limit} s"
    except CellExecutionError as exc:
        last = [line for line in str(exc).splitlines() if line.strip()][-1:]
        status = f"error: {last[0][:160] if last else 'a cell raised'}"
    except DeadKernelError:
        status = "the kernel died"
    seconds = time.perf_counter() - t0
    os.environ.pop("COURSE_OBSERVATIONS_LOG", None)
    if observations is not None:
        observations += [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    os.unlink(log)
    return status, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--notebooks", nargs="+", help="notebooks to run (default: lectures/*.ipynb, solutions/*.ipynb)")
    ap.add_argument("--again", action="store_true", help="also run each notebook a second time on the filled cache")
    ap.add_argument("--limit", type=int, default=600, help="seconds per cell before the notebook is stopped")
    ap.add_argument("--cache", help="the cache folder (default: a new temporary folder)")
    ap.add_argument("--note", default="")
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows of notebooks not run now from the existing results file (each row records "
                         "its own commit and date), so that the notebooks can be measured in several sittings")
    args = ap.parse_args()
    cache = args.cache or tempfile.mkdtemp(prefix="course-first-run-")
    os.environ["COURSE_DATA_DIR"] = cache
    os.environ.pop("COURSE_CHECKPOINT_DIR", None)
    from course_lib import config

    profile = config.get_profile()
    books = [Path(p) for p in args.notebooks] if args.notebooks else (
        sorted((REPO / "lectures").glob("*.ipynb")) + sorted((REPO / "solutions").glob("*.ipynb")))
    rows = []
    for nb in books:
        nb = nb if nb.is_absolute() else REPO / nb
        seen: list[dict] = []
        status, first = run_notebook(nb, args.limit, seen)
        row = {"notebook": str(nb.relative_to(REPO)), "first_status": status, "first_s": first, "observations": seen,
               "commit": git_commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        if args.again:
            status2, second = run_notebook(nb, args.limit)
            row.update(again_status=status2, again_s=second)
        rows.append(row)
        print(row, flush=True)
    if args.merge:
        import json

        old = json_path("first_run", profile)
        if old.exists():
            done = {r["notebook"] for r in rows}
            kept = [r for r in json.loads(old.read_text())["data"]["rows"] if r["notebook"] not in done]
            rows = sorted(kept + rows, key=lambda r: r["notebook"])
    data = {"profile": profile, "rows": rows, "cache": "fresh temporary folder" if not args.cache else args.cache,
            "limit_s": args.limit}
    head = ["notebook", "first run (s)", "status", "from the filled cache (s)", "status", "commit", "date"]
    table = md_table(head, [[r["notebook"], f"{r['first_s']:.0f}", r["first_status"],
                             f"{r['again_s']:.0f}" if "again_s" in r else "-", r.get("again_status", "-"),
                             r.get("commit", "-"), r.get("date", "-")] for r in rows])
    body = (f"Each notebook executed top to bottom in a fresh kernel, profile {profile!r}, on a cache that starts "
            f"empty (shared by the notebooks of the run, in the order listed). Goals (issue #36): first run <= 10 "
            f"minutes per lecture; from checkpoints <= 60 s of compute.\n\n{table}\n")
    obs = [(r["notebook"], o) for r in rows for o in r.get("observations", [])]
    if obs:
        agree = sum(o["holds"] for _, o in obs if o["applies"])
        applies = sum(o["applies"] for _, o in obs)
        body += (f"\n## What the labs say a run shows, tested on the first run (`checks.observe`)\n\n"
                 f"{agree} of the {applies} statements that the text makes for the {profile!r} profile held"
                 f" ({len(obs) - applies} more are promised only for larger profiles).\n\n"
                 + md_table(["notebook", "statement", "promised here", "held", "measured"],
                            [[nb, o["statement"], "yes" if o["applies"] else "no", "yes" if o["holds"] else "**no**",
                              o.get("measured", "")] for nb, o in obs]) + "\n")
    write_result("first_run", profile, body, notes=args.note, data=data)
    print(body)


if __name__ == "__main__":
    main()
