#!/usr/bin/env python3
"""The course's one test command: ``python tools/test.py``.

Runs, in order: ruff; ``python -m course_lib.labs --check`` (labs and notebooks in step with
their sources); a check that no committed notebook carries outputs; then one pytest run over
the unit tests (``tests/``) and, with nbval (``--nbval-lax``), every notebook in
``lectures/``, ``solutions/`` and ``labs/`` under ``COURSE_PROFILE=ci``, printing each
notebook's time; then every lecture once more on a real dataset's layout (``COURSE_DATASET=modelnet`` on the
tests' tiny fixture, :func:`real_data_step`).  Exits non-zero if any step fails.

Then, unless ``--fast`` or ``--no-browser``, the website built from the notebooks nbval just executed
(``tools/build_site.py --executed``; nbval's outputs are kept through ``COURSE_SAVE_EXECUTED``), and the
browser test (``tests/browser``): the website's pages opened in headless Chromium, and every lecture and
solution run in JupyterLab (``COURSE_BROWSER_TEST=1``, on the same workers as the pytest run; skipped with
the install command when Chromium is missing, a failure under ``CI=true``).

The pytest run is spread over the machine's cores with pytest-xdist (``-n 2 --dist loadfile`` on CI's 2 cores:
a notebook's cells stay together in one worker; each worker's torch uses one thread, so two workers do not
fight over the cores).  ``COURSE_TEST_WORKERS=1`` (or ``--serial``) runs it in one process.

Options: ``--fast`` skips the notebooks and the browser test; ``--no-browser`` the browser test only;
``--serial`` one pytest process; extra arguments go to the first pytest run.
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


def test_workers() -> int:
    """Workers of the pytest run: ``COURSE_TEST_WORKERS`` if set, else the cores this process may use, at most
    4 (past that the notebooks' kernels, not the tests, are the limit)."""
    env = os.environ.get("COURSE_TEST_WORKERS", "").strip()
    if env:
        return max(1, int(env))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def xdist(workers: int, env: dict[str, str], dist: str = "loadfile") -> tuple[list[str], dict[str, str]]:
    """pytest-xdist's arguments for ``workers`` processes and the environment they run in: each worker's torch
    (and its notebooks' kernels) on one thread, so that the workers do not fight over the cores.  One worker:
    no arguments and ``env`` unchanged."""
    if workers <= 1:
        return [], env
    return ["-n", str(workers), "--dist", dist], dict(env, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def site_step(py: str, executed: Path, env: dict[str, str]) -> tuple[str, int, float]:
    """Build the website from the notebooks nbval just executed (nothing runs twice); its pages are then
    opened by the browser step (``tests/browser/test_site.py``).  Without Sphinx (the ``site`` extra) the
    step is skipped with the install command, except under ``CI=true``, where that is a failure."""
    step = "website (tools/build_site.py --executed, from nbval's runs)"
    try:
        import myst_nb  # noqa: F401
        import sphinx  # noqa: F401
    except ImportError:
        ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
        print(f"\n=== {step}: Sphinx / MyST-NB missing: pip install -e '.[dev,site]' -c constraints.txt"
              + (" (a failure under CI=true)" if ci else " (skipped)"), flush=True)
        return step, 1 if ci else 0, 0.0
    return run(step, [py, "tools/build_site.py", "--executed", str(executed), "--profile", "ci", "--strict"], env)


def real_data_step(py: str, workers: int, env: dict[str, str]) -> tuple[str, int, float]:
    """Every lecture under ``COURSE_PROFILE=ci`` with ``COURSE_DATASET=modelnet`` pointed at the tests' tiny fixture
    (``tools/real_data_smoke.py --write-fixture``), in a cache of its own: a chapter that takes a real dataset runs
    on it, and a part that needs ShapeNet-lite's exact shapes says so by name (the lectures print the refusal)."""
    import shutil

    base = ROOT / ".cache" / "real-fixture"
    shutil.rmtree(base, ignore_errors=True)
    step = "lectures on a real dataset's layout (ModelNet fixture, COURSE_PROFILE=ci)"
    made = run("write the ModelNet fixture", [py, "tools/real_data_smoke.py", "--write-fixture", str(base / "ModelNet")])
    if made[1] != 0:
        return step, made[1], made[2]
    real_env = dict(env, COURSE_DATASET="modelnet", COURSE_MODELNET_DIR=str(base / "ModelNet"),
                    COURSE_DATA_DIR=str(base / "cache"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    real_env.pop("COURSE_SAVE_EXECUTED", None)
    parallel, real_env = xdist(workers, real_env)
    return run(step, [py, "-m", "pytest", "lectures", "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=600",
                      "-p", "no:cacheprovider", "-q", *parallel], real_env)


def browser_step(py: str, workers: int, env: dict[str, str]) -> tuple[str, int, float]:
    """The browser test (``tests/browser``), spread over ``workers`` pytest-xdist processes (``--dist load``: one
    test at a time to whichever worker is free; each worker starts its own JupyterLab and Chromium, and its
    kernels use one torch thread, as in the nbval run).  ``COURSE_TEST_WORKERS=1`` (or ``--serial``) runs it in one
    process."""
    parallel, browser_env = xdist(workers, dict(env, COURSE_BROWSER_TEST="1"), dist="load")
    return run(f"browser test (JupyterLab in headless Chromium, COURSE_PROFILE=ci, {workers} worker(s))",
               [py, "-m", "pytest", "tests/browser", "-p", "no:cacheprovider", "-q", "-s", "--durations=5",
                *parallel], browser_env)


def main(argv: list[str]) -> int:
    fast = "--fast" in argv
    browser = not fast and "--no-browser" not in argv
    serial = "--serial" in argv
    extra = [a for a in argv if a not in ("--fast", "--no-browser", "--serial")]
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
    workers = 1 if serial else test_workers()
    parallel, pytest_env = xdist(workers, env)
    pytest_cmd = [py, "-m", "pytest", *targets, "--nbval-lax", "--nbval-current-env",
                  "--nbval-cell-timeout=600", "-p", "no:cacheprovider", "-q", "--durations=10", *parallel, *extra]
    executed = ROOT / ".cache" / "site" / "ci-executed"
    if not fast:  # keep nbval's executed lectures and solutions: the website is built from them
        import shutil

        shutil.rmtree(executed, ignore_errors=True)
        pytest_env = dict(pytest_env, COURSE_SAVE_EXECUTED=str(executed))
    results.append(run(f"pytest (unit tests + notebooks, COURSE_PROFILE=ci, {workers} worker(s))", pytest_cmd,
                       pytest_env))
    if not fast:  # issue #35: every lecture once more on a real dataset's layout (the tests' tiny ModelNet fixture)
        results.append(real_data_step(py, workers, env))
    if browser and executed.exists():
        results.append(site_step(py, executed, env))
    if browser:
        results.append(browser_step(py, workers, env))
    print("\n=== summary")
    for step, rc, secs in results:
        print(f"{'ok  ' if rc == 0 else 'FAIL'} {secs:7.1f} s  {step}" + ("" if rc == 0 else f" (exit {rc})"))
    failed = [s for s, rc, _ in results if rc != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
