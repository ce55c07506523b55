"""Shared helpers for the benchmark scripts: machine description, timing, result files.

Every benchmark writes ``benchmarks/results/<name>-<profile>-<machine>.md`` with
:func:`write_result`, which records the machine, the profile, the exact command, the date,
the git commit and the load average above the tables, so that a number in this folder can always
be traced to the run that produced it.  With ``data=`` it also writes the JSON twin
``benchmarks/results/<name>-<profile>.json`` (provenance + data) that lectures read through
:mod:`course_lib.results`.
"""

from __future__ import annotations

import datetime as _dt
import json
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

REPO = Path(__file__).resolve().parent.parent


def _too_few_hook(kind: type, exc: BaseException, tb: Any) -> None:
    """Every benchmark imports this module: a claim asked for on too few test shapes or seeds (a small real
    dataset, say) ends the run with one line that says so, not a stack trace deep in the protocol."""
    from course_lib.experiments.protocol import TooFewForClaim

    if isinstance(exc, TooFewForClaim):
        print(f"{Path(sys.argv[0]).name}: stopped before writing results: {exc}. Run it on a split with at least "
              "that many test shapes (a larger dataset or profile), or on more seeds.", file=sys.stderr)
        raise SystemExit(2)
    sys.__excepthook__(kind, exc, tb)


sys.excepthook = _too_few_hook
RESULTS = Path(os.environ.get("COURSE_RESULTS_DIR") or REPO / "benchmarks" / "results")
"""Where results go: ``COURSE_RESULTS_DIR`` (as :func:`course_lib.results.results_dir`) or ``benchmarks/results``."""


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


def loadavg() -> str:
    """The 1-, 5- and 15-minute load averages (``"?"`` where the OS does not say)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (OSError, AttributeError):
        return "?"


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
                              cwd=REPO, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command() -> str:
    prof = os.environ.get("COURSE_PROFILE")
    prefix = f"COURSE_PROFILE={prof} " if prof else ""
    # the family always, set or not: the default family is to change (base, then wide), and a bare command
    # would then not say which family a file measured
    prefix = f"COURSE_VARIETY={_variety()} " + prefix
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


def git_dirty() -> bool:
    """Whether tracked files differ from the commit (then the numbers are not of committed code).

    Result files (``benchmarks/results/``) do not count: a benchmark run while an earlier one's
    results wait to be committed still measures committed code."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                             text=True, cwd=REPO, check=True).stdout
        changed = [line[3:] for line in out.splitlines() if line.strip()]
        return any(not path.startswith("benchmarks/results/") for path in changed)
    except (OSError, subprocess.CalledProcessError):
        return False


def provenance(load_at_start: str | None = None) -> dict[str, Any]:
    """Command, date, commit (``+dirty`` when uncommitted changes exist), machine and load averages."""
    commit = git_commit() + ("+dirty" if git_dirty() else "")
    out: dict[str, Any] = {
        "command": command(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "machine": machine_tag(),
        "protocol": _protocol_version(),
        "variety": _variety(),
        **machine(),
        "loadavg": loadavg() if load_at_start is None else f"start {load_at_start}, end {loadavg()}",
    }
    return out


_LOAD_AT_IMPORT = loadavg()


def _variety() -> str:
    from course_lib.config import variety

    return variety()


def _protocol_version() -> int:
    from course_lib.experiments.protocol import PROTOCOL_VERSION

    return PROTOCOL_VERSION


def json_path(name: str, profile: str) -> Path:
    """``results/<name>-<profile>.json``, ``name`` tagged with the active family (``<name>-wide`` under
    ``COURSE_VARIETY=wide``, :func:`course_lib.results.variety_name`): where :func:`write_result` writes and a
    benchmark merging parts reads."""
    from course_lib.results import variety_name

    return RESULTS / f"{variety_name(name)}-{profile}.json"


def write_result(name: str, profile: str, body: str, notes: str = "", data: Any = None) -> Path:
    """Write ``results/<name>-<profile>-<machine>.md`` with the provenance header; return its path.

    ``name`` is tagged with ShapeNet-lite's active family (:func:`course_lib.results.variety_name`:
    ``<name>-wide`` under ``COURSE_VARIETY=wide``), so a run on the wide family never overwrites the base one's.

    With ``data`` (anything JSON-serialisable: numbers, lists, dicts), also write
    ``results/<name>-<profile>.json`` = ``{"provenance": ..., "data": data}`` for
    :func:`course_lib.results.load`.  The load averages at the start (import of this module) and
    at the end of the run are recorded.
    """
    if isinstance(data, dict):
        from course_lib.experiments.protocol import validate_records

        validate_records(data)  # claims and goals are checked before anything is written
    from course_lib.results import variety_name

    name = variety_name(name)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{profile}-{machine_tag()}.md"
    prov = provenance(_LOAD_AT_IMPORT)
    head = [f"# {name} ({profile} profile)", ""]
    head.append(f"- command: `{prov['command']}`")
    head.append(f"- date: {prov['date']}")
    head.append(f"- commit: {prov['commit']}")
    head.append(f"- protocol: {prov['protocol']} (choices on val only; test read once, to report)")
    head.append(f"- ShapeNet-lite family: {prov['variety']} (COURSE_VARIETY)")
    head.append(f"- load average (1, 5, 15 min): {prov['loadavg']}")
    for k, v in machine().items():
        head.append(f"- {k}: {v}")
    if notes:
        head += ["", notes.strip()]
    path.write_text("\n".join(head) + "\n\n" + body.strip() + "\n")
    if data is not None:
        jpath = json_path(name, profile)
        text = json.dumps({"provenance": prov, "data": data}, indent=1, sort_keys=False, default=_jsonable)
        tmp = jpath.with_name(jpath.name + ".tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, jpath)
    return path


def _jsonable(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, (set, tuple)):
        return list(v)
    raise TypeError(f"not JSON-serialisable: {type(v).__name__}")


def add_dataset_args(ap: Any) -> None:
    """``--dataset`` / ``--root``: the real-dataset switch of a chapter's benchmark (issue #35)."""
    ap.add_argument("--dataset", help="shapenet-lite (default), modelnet or shapenetcore (sets COURSE_DATASET)")
    ap.add_argument("--root", help="the real dataset's folder (default: COURSE_MODELNET_DIR / COURSE_SHAPENET_DIR)")


def use_dataset_args(args: Any) -> str | None:
    """Apply ``--dataset`` / ``--root`` (:func:`course_lib.experiments.common.use_dataset`): the real dataset now in
    use, or None for ShapeNet-lite; a bad combination stops the script with its message."""
    from course_lib.experiments.common import use_dataset

    try:
        return use_dataset(getattr(args, "dataset", None), getattr(args, "root", None))
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def result_name(name: str, real: str | None) -> str:
    """The results file's name: ``name`` on ShapeNet-lite, ``name-<dataset>`` on a real dataset (never mixed)."""
    return name if real is None else f"{name}-{real}"
