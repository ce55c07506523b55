"""The website built from checkpoints (issue #38's goal: <= 10 minutes on 2 cores), timed.

Runs ``python tools/build_site.py --force`` (every lecture and lab solution executed again, the ``auto``
profile: laptop where the chapter's laptop checkpoints are in the cache, else ci; Sphinx after) into a
temporary folder, and records the wall time in all, the execution and Sphinx parts, each page's execution
time and profile, and the heaviest page.  Writes ``benchmarks/results/site_build-<profile>-<machine>.md`` and
the JSON twin.  Run it alone, after the checkpoints exist (``python -m course_lib.pretrain --verify`` or the
lectures run once):

    python benchmarks/site_build.py --jobs 2
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import REPO, md_table, write_result  # noqa: E402

from course_lib.experiments.protocol import goal  # noqa: E402

SELECTION_PARTS = ()
"""Protocol 2: this script chooses nothing (it builds the site and times it)."""

GOAL_S = 600.0
_PAGE = re.compile(r"^  (\S+\.ipynb): (\w+) ([\d.]+) s$")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2, help="build_site's --jobs (notebooks executed at once)")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    out = Path(tempfile.mkdtemp(prefix="course-site-")) / "html"
    cmd = [sys.executable, str(REPO / "tools" / "build_site.py"), "--force", "--jobs", str(args.jobs), "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    text = proc.stdout + proc.stderr
    pages = []
    for line in proc.stdout.splitlines():
        m = _PAGE.match(line)
        if m:
            pages.append({"notebook": m.group(1), "profile": m.group(2), "seconds": float(m.group(3))})
    summary = next((line for line in proc.stdout.splitlines() if line.startswith("site: ")), "")
    parts = re.search(r"execution (\d+) s, sphinx (\d+) s", summary)
    heaviest = max(((p.stat().st_size, p.relative_to(out).as_posix()) for p in out.rglob("*.html")), default=(0, "-")) \
        if out.exists() else (0, "-")
    data = {"rc": proc.returncode, "wall_s": wall, "jobs": args.jobs, "pages": pages,
            "execution_s": float(parts.group(1)) if parts else None, "sphinx_s": float(parts.group(2)) if parts else None,
            "heaviest_html": {"page": heaviest[1], "bytes": heaviest[0]},
            "goals": [goal("site_build_10_min", f"the site builds from checkpoints in <= {GOAL_S:.0f} s on 2 cores "
                           "(a failed build counts as not built)", round(wall, 1) if proc.returncode == 0 else math.inf,
                           GOAL_S, comparison="<=")]}
    table = md_table(["notebook", "profile", "execution (s)"],
                     [[p["notebook"], p["profile"], f"{p['seconds']:.0f}"] for p in sorted(pages, key=lambda p: p["notebook"])])
    verdict = "met" if data["goals"][0]["met"] else "missed"
    body = (f"`{' '.join(['python', 'tools/build_site.py', '--force', '--jobs', str(args.jobs)])}` into a temporary "
            f"folder: exit code {proc.returncode}, **{wall:.0f} s in all** (goal <= {GOAL_S:.0f} s: {verdict}); "
            f"execution {data['execution_s']} s, Sphinx {data['sphinx_s']} s, {args.jobs} notebooks at a time. "
            f"Heaviest HTML page: {heaviest[1]} ({heaviest[0] / 1e6:.2f} MB, assets not counted).\n\n{table}\n")
    if proc.returncode:
        body += "\nThe build failed; its last lines:\n\n```\n" + "\n".join(text.splitlines()[-15:]) + "\n```\n"
    write_result("site_build", "auto", body, notes=args.note, data=data)
    print(body)


if __name__ == "__main__":
    main()
