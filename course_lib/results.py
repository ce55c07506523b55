"""Measured results, read from the files the benchmarks wrote: lectures print these, never type them.

Introduced in ``lectures/00_welcome.ipynb``.

Every benchmark (``benchmarks/*.py``) writes ``benchmarks/results/<name>-<profile>.json`` beside
its Markdown report, with its provenance: the command, the date, the git commit, the machine
and the load average while it ran.  A lecture reads it::

    from course_lib import results
    r = results.load("point_sets", "laptop")     # None when not measured yet
    results.show("point_sets", "laptop")          # prints provenance (or how to measure it)
    r["tables"]["autoencoding"]                   # the data the benchmark stored

The folder is ``COURSE_RESULTS_DIR`` or ``benchmarks/results`` of the repository that holds
this package.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["Result", "results_dir", "path_of", "load", "show", "get"]

ENV_RESULTS = "COURSE_RESULTS_DIR"


def results_dir() -> Path:
    """``COURSE_RESULTS_DIR`` or ``<repository>/benchmarks/results``."""
    env = os.environ.get(ENV_RESULTS)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def path_of(name: str, profile: str) -> Path:
    """Where the results of benchmark ``name`` in ``profile`` are kept."""
    if not name or "/" in name:
        raise ValueError(f"benchmark name must be a plain name, got {name!r}")
    return results_dir() / f"{name}-{profile}.json"


class Result(dict):
    """The content of one results file (a dict) with its provenance as attributes."""

    @property
    def provenance(self) -> Mapping[str, Any]:
        return self.get("provenance", {})

    def describe(self) -> str:
        """One line: the command, commit, date, machine and load that produced these numbers."""
        p = self.provenance
        load = p.get("loadavg")
        load_txt = f", load average {load}" if load is not None else ""
        return (f"measured by `{p.get('command', '?')}` at commit {p.get('commit', '?')} on "
                f"{p.get('date', '?')}, {p.get('cpu') or p.get('machine', '?')}{load_txt}")

    @property
    def data(self) -> Mapping[str, Any]:
        return self.get("data", {})


def load(name: str, profile: str = "laptop") -> Result | None:
    """The results of benchmark ``name`` measured in ``profile``, or ``None`` if never measured.

    Raises ``ValueError`` for a file that exists but is not valid JSON (a broken file is never
    silently taken as "not measured").
    """
    path = path_of(name, profile)
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(content, dict) or "data" not in content:
        raise ValueError(f"{path} is not a results file (no 'data' entry)")
    return Result(content)


def show(name: str, profile: str = "laptop", command: str | None = None) -> Result | None:
    """Print where the results of ``name`` come from (or that they are not measured yet); return them."""
    r = load(name, profile)
    if r is None:
        cmd = command or f"COURSE_PROFILE={profile} python benchmarks/{name}.py"
        print(f"{name} ({profile} profile): not measured yet; `{cmd}` measures it and writes {path_of(name, profile)}")
        return None
    print(f"{name} ({profile} profile): {r.describe()}")
    return r


def get(name: str, *keys: str | int, profile: str = "laptop", default: Any = None) -> Any:
    """One value of a results file: ``get("point_sets", "autoencoding", "chamfer", "CD")``; ``default``
    when the file or the key is missing."""
    r = load(name, profile)
    if r is None:
        return default
    cur: Any = r.data
    for k in keys:
        try:
            cur = cur[k]
        except (KeyError, IndexError, TypeError):
            return default
    return cur
