"""``report.json`` of the browser test, written by several pytest-xdist workers at once.

``tools/test.py`` spreads the browser test over the machine's cores (each worker has its own JupyterLab and
Chromium); every test adds its measurements to one ``report.json``, so the read-modify-write holds an exclusive
lock on a file beside it (no worker's entry is lost to another's write).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: one process at a time is the only mode there
    fcntl = None


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_UN)


def add_entry(path: Path, key: str, entry: dict) -> None:
    """Set ``data[key] = entry`` in the JSON object at ``path`` (created if missing), under the lock."""
    with _locked(path):
        data = json.loads(path.read_text()) if path.exists() else {}
        data[key] = entry
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(path)
