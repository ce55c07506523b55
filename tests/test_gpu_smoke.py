"""benchmarks/gpu_smoke.py on the CPU: every chapter's smoke hook is discovered and runs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("gpu_smoke", ROOT / "benchmarks" / "gpu_smoke.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_smoke"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_discovery_finds_the_migrated_chapters():
    names = _load().discover()
    assert {"encoders", "point_sets", "surfaces"} <= set(names)
    assert "common" not in names


@pytest.mark.usefixtures("base_family")
def test_gpu_smoke_runs_every_module_on_cpu(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("COURSE_PROFILE", "ci")
    smoke = _load()
    import _common

    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    rc = smoke.main(["--device", "cpu", "--steps", "1", "--profile", "ci"])
    out = json.loads((tmp_path / "gpu_smoke-ci.json").read_text())["data"]
    expected = set(smoke.discover())
    assert set(out["modules"]) == expected
    failed = {k: v["status"] for k, v in out["modules"].items() if v["status"] != "ok"}
    assert not failed, failed
    for name, r in out["modules"].items():
        assert r["wall_s"] > 0 and any(k.endswith("loss") for k in r), name
    assert out["ops"]["status"] == "ok" and out["ops"]["mode"] == "check"
    assert rc == 0
    assert list(tmp_path.glob("gpu_smoke-ci-*.md"))
