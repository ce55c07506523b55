"""Results files: benchmarks write JSON with provenance, lectures read it back."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from course_lib import results

ROOT = Path(__file__).resolve().parents[1]


def _common(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "benchmarks" / "_common.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "RESULTS", tmp_path)
    return mod


def test_write_then_load_roundtrip(tmp_path, monkeypatch):
    common = _common(tmp_path, monkeypatch)
    monkeypatch.setattr(sys, "argv", ["benchmarks/demo.py", "--quick"])
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    md = common.write_result("demo", "laptop", "| a |\n|---|\n| 1 |", data={"cd": 1.25, "rows": [1, 2]})
    assert md.exists() and "load average" in md.read_text()
    r = results.load("demo", "laptop")
    assert r is not None and r.data["cd"] == 1.25 and r.data["rows"] == [1, 2]
    line = r.describe()
    assert "benchmarks/demo.py --quick" in line and "load average" in line
    assert results.get("demo", "rows", 1) == 2
    assert results.get("demo", "missing", default="x") == "x"
    # not measured: None, and show() says how to measure it
    assert results.load("demo", "gpu") is None
    assert results.show("demo", "gpu") is None


@pytest.mark.usefixtures("base_family")
def test_a_broken_file_is_an_error_not_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    (tmp_path / "x-laptop.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        results.load("x", "laptop")
    (tmp_path / "y-laptop.json").write_text(json.dumps({"rows": 1}))
    with pytest.raises(ValueError, match="no 'data'"):
        results.load("y", "laptop")
    with pytest.raises(ValueError, match="plain name"):
        results.load("../x", "laptop")
