"""The browser test's report file under several writers (tests/browser/browser_report.py): the pytest-xdist
workers of ``tools/test.py``'s browser step each add their notebooks' entries to one ``report.json``."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing as mp
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("browser_report", ROOT / "tests" / "browser" / "browser_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _writer(path: str, worker: int, n: int) -> None:
    mod = _module()
    for i in range(n):
        mod.add_entry(Path(path), f"w{worker}-{i}", {"worker": worker, "i": i, "pad": "x" * 2000})


def test_entries_of_concurrent_writers_are_all_kept(tmp_path):
    path = tmp_path / "report.json"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 30)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    data = json.loads(path.read_text())
    assert sorted(data) == sorted(f"w{w}-{i}" for w in range(4) for i in range(30))
    assert data["w3-29"] == {"worker": 3, "i": 29, "pad": "x" * 2000}


def test_an_entry_replaces_its_key_and_keeps_the_others(tmp_path):
    mod = _module()
    path = tmp_path / "sub" / "report.json"
    mod.add_entry(path, "a", {"v": 1})
    mod.add_entry(path, "b", {"v": 2})
    mod.add_entry(path, "a", {"v": 3})
    assert json.loads(path.read_text()) == {"a": {"v": 3}, "b": {"v": 2}}
