"""Every chapter benchmark takes the real-dataset switch (issue #35): ``--dataset`` / ``--root``, or a reason why not.

A benchmark either calls ``_common.add_dataset_args`` (or declares ``--dataset`` itself) and applies it before any
work, or it is listed in :data:`NO_DATASET` with the reason it has no real-dataset mode.  The behavioural check
runs each benchmark's ``main()`` with ``--root`` and no ``--dataset``: the switch must stop it at once with the
message of :func:`course_lib.experiments.common.use_dataset`, before it loads or trains anything.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))

NO_DATASET = {
    "data.py": "times ShapeNet-lite's generation; a real dataset's preprocessing is benchmarks/real_throughput.py",
    "first_run.py": "times the lectures, which read COURSE_DATASET themselves",
    "gpu_smoke.py": "a device check on synthetic tensors",
    "grading.py": "grades the labs, whose exercises are on ShapeNet-lite",
    "lab_solutions.py": "runs the labs' solutions, whose exercises are on ShapeNet-lite",
    "mesh_sdf.py": "controlled holes in clean meshes against the installable peers: a real mesh has no clean twin",
    "mesh_sign.py": "controlled corruptions of clean meshes: a real mesh has no clean twin to agree with",
    "ops.py": "times the course's operators on synthetic tensors",
    "real_throughput.py": "already on real meshes (the ModelNet-layout defects it writes, or --root)",
    "real_views.py": "already on real meshes",
    "sdf_exactness.py": "measures where ShapeNet-lite's analytic signed distance is exact; real meshes have none",
    "site_build.py": "times the website's build",
    "splits.py": "measures ShapeNet-lite's split seeds and near-duplicates",
}
"""Benchmarks without a real-dataset mode, each with its reason."""


def _takes_dataset(path: Path) -> bool:
    src = path.read_text()
    return "add_dataset_args(ap)" in src or '"--dataset"' in src


def test_every_benchmark_takes_the_switch_or_says_why():
    names = {p.name for p in BENCHMARKS}
    assert set(NO_DATASET) <= names, f"NO_DATASET lists missing benchmarks: {sorted(set(NO_DATASET) - names)}"
    for p in BENCHMARKS:
        takes = _takes_dataset(p)
        assert takes != (p.name in NO_DATASET), (
            f"{p.name}: " + ("takes --dataset but is listed in NO_DATASET" if takes else
                             "has no --dataset / --root (add _common.add_dataset_args) and no reason in NO_DATASET"))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("path", [p for p in BENCHMARKS if _takes_dataset(p)], ids=lambda p: p.name)
def test_root_without_a_dataset_stops_before_any_work(path, monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_DATASET", raising=False)
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path / "results"))  # nothing may be written anyway
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "argv", [str(path), "--root", str(tmp_path / "no_such_dataset")])
    mod = _load(path)
    with pytest.raises(SystemExit) as exc:
        mod.main()
    assert "--root is for a real dataset" in str(exc.value.code)
    assert not (tmp_path / "results").exists()


def test_too_few_shapes_for_a_claim_ends_a_benchmark_with_one_line():
    import subprocess

    from course_lib.experiments.protocol import TooFewForClaim, claim

    with pytest.raises(TooFewForClaim, match="too few"):
        claim("x", "A beats B", a="A", b="B", metric="m", values_a=[1.0] * 4, values_b=[2.0] * 4,
              higher_is_better=True, unit="shapes")
    assert issubclass(TooFewForClaim, ValueError)
    code = ("import sys; sys.path.insert(0, 'benchmarks'); import _common; "
            "from course_lib.experiments.protocol import claim; "
            "claim('x', 't', a='a', b='b', metric='m', values_a=[1, 2], values_b=[1, 2], higher_is_better=True, "
            "unit='seeds')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2
    assert "stopped before writing results" in r.stderr and "Traceback" not in r.stderr
