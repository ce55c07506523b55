"""Shared helpers for the benchmark scripts: machine description, timing, result files.

Every benchmark writes ``benchmarks/results/<name>-<profile>-<machine>.md`` with
:func:`write_result`, which records the machine, the profile, the exact command, the date and
the git commit above the tables, so that a number in this folder can always be traced to
the run that produced it.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import median
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_tag() -> str:
    """A short name for the machine: ``cuda-<gpu>`` or ``cpu<cores>``."""
    if torch.cuda.is_available():
        return "cuda-" + torch.cuda.get_device_name(0).replace(" ", "_").replace("/", "_")
    return f"cpu{os.cpu_count()}"


def machine() -> dict[str, str]:
    info = {
        "cpu": f"{cpu_model()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "os": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=RESULTS.parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command() -> str:
    prof = os.environ.get("COURSE_PROFILE")
    prefix = f"COURSE_PROFILE={prof} " if prof else ""
    return prefix + "python " + " ".join(shlex.quote(a) for a in sys.argv)


def timeit(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds (CUDA synchronised)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return median(times)


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def write_result(name: str, profile: str, body: str, notes: str = "") -> Path:
    """Write ``results/<name>-<profile>-<machine>.md`` with the provenance header; return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{profile}-{machine_tag()}.md"
    head = [f"# {name} ({profile} profile)", ""]
    head.append(f"- command: `{command()}`")
    head.append(f"- date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    head.append(f"- commit: {git_commit()}")
    for k, v in machine().items():
        head.append(f"- {k}: {v}")
    if notes:
        head += ["", notes.strip()]
    path.write_text("\n".join(head) + "\n\n" + body.strip() + "\n")
    return path
