#!/usr/bin/env python3
"""The course's one test command: ``python tools/test.py``.

Runs, in order: ruff; ``python -m course_lib.labs --check`` (labs and notebooks in step with
their sources); a check that no committed notebook carries outputs; then one pytest run over
the unit tests (``tests/``) and, with nbval (``--nbval-lax``), every notebook in
``lectures/``, ``solutions/`` and ``labs/`` under ``COURSE_PROFILE=ci``, printing each
notebook's time.  Exits non-zero if any step fails.

Then, unless ``--fast`` or ``--no-browser``, the browser test (``tests/browser``): every lecture and
solution run in JupyterLab in headless Chromium (``COURSE_BROWSER_TEST=1``; skipped with the install
command when Chromium is missing, a failure under ``CI=true``).

Options: ``--fast`` skips the notebooks and the browser test; ``--no-browser`` the browser test only;
extra arguments go to the first pytest run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def committed_notebooks() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
        return [ROOT / p for p in out]
    except (OSError, subprocess.CalledProcessError):
        return sorted(p for d in ("lectures", "solutions", "labs") for p in (ROOT / d).glob("*.ipynb"))


def check_no_outputs() -> int:
    bad = []
    for path in committed_notebooks():
        if not path.exists():
            continue
        nb = json.loads(path.read_text())
        for cell in nb.get("cells", []):
            if cell.get("cell_type") == "code" and (cell.get("outputs") or cell.get("execution_count")):
                bad.append(path.relative_to(ROOT))
                break
    for p in bad:
        print(f"HAS OUTPUTS: {p} (run `python -m course_lib.labs` to rebuild it clean)")
    print(f"outputs check: {len(bad)} notebook(s) with committed outputs")
    return 1 if bad else 0


def run(step: str, cmd: list[str], env: dict[str, str] | None = None) -> tuple[str, int, float]:
    print(f"\n=== {step}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    return step, rc, time.perf_counter() - t0


def main(argv: list[str]) -> int:
    fast = "--fast" in argv
    browser = not fast and "--no-browser" not in argv
    extra = [a for a in argv if a not in ("--fast", "--no-browser")]
    py = sys.executable
    env = dict(os.environ, COURSE_PROFILE="ci", PYTHONHASHSEED="0", MPLBACKEND="Agg")
    results = [
        run("ruff", [py, "-m", "ruff", "check",
                     *[p for p in ("course_lib", "tests", "benchmarks", "tools", "conftest.py") if (ROOT / p).exists()]]),
        run("labs check", [py, "-m", "course_lib.labs", "--check",
                           *([] if os.environ.get("CI", "").lower() in ("1", "true", "yes") else
                             ["--allow-edited-labs"])]),
    ]
    t0 = time.perf_counter()
    print("\n=== outputs check", flush=True)
    results.append(("outputs check", check_no_outputs(), time.perf_counter() - t0))
    targets = ["tests"]
    if not fast:
        targets += [d for d in ("lectures", "solutions", "labs") if any((ROOT / d).glob("*.ipynb"))]
    pytest_cmd = [py, "-m", "pytest", *targets, "--nbval-lax", "--nbval-current-env",
                  "--nbval-cell-timeout=600", "-p", "no:cacheprovider", "-q", "--durations=10", *extra]
    results.append(run("pytest (unit tests + notebooks, COURSE_PROFILE=ci)", pytest_cmd, env))
    if browser:
        results.append(run("browser test (JupyterLab in headless Chromium, COURSE_PROFILE=ci)",
                           [py, "-m", "pytest", "tests/browser", "-p", "no:cacheprovider", "-q", "-s",
                            "--durations=5"], dict(env, COURSE_BROWSER_TEST="1")))
    print("\n=== summary")
    for step, rc, secs in results:
        print(f"{'ok  ' if rc == 0 else 'FAIL'} {secs:7.1f} s  {step}" + ("" if rc == 0 else f" (exit {rc})"))
    failed = [s for s, rc, _ in results if rc != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
