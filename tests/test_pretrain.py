"""``python -m course_lib.pretrain``: the lectures' jobs, the dry run's estimate, resuming, the summary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from course_lib import pretrain as PT
from course_lib import train as T
from course_lib.experiments.common import Batches

ROOT = Path(__file__).resolve().parents[1]

# What each job calls, as it must appear in the lecture it prepares (a lecture that changes its call makes
# this test fail until the job is changed too).
LECTURE_CALLS = {
    "02_encoders": ["C.load_point_clouds(\"train\")", "C.train_classifier(name, train_data, checkpoint=C.checkpoint_path(name))",
                    "C.image_checkpoint_path(mode, views[\"train\"], epochs=S[\"image_epochs\"], width=w)"],
    "03_voxels": ["V.voxel_data(\"train\", image=True, extra_views=SZ[\"train_views\"])", "V.voxel_data(\"val\", image=True)",
                  "V.train_voxnet(data=train, val_data=val)", "V.train_voxnet(data=train, val_data=val, scan=True)",
                  "V.train_autoencoder(data=train, val_data=val)",
                  "V.train_single_view(data=train, val_data=val)", "V.multiview_data(\"train\")",
                  "V.multiview_data(\"val\", views=K)", "V.train_multiview(data=mv_train, val_data=mv_val)"],
    "04_octrees": ["E.octree_data(\"train\")", "E.octree_data(\"val\")", "E.train_ogn(data=train, val_data=val)"],
    "05_point_sets": ["P.train_data()", "P.val_data()", "P.train_autoencoder(kind, data=train, val=val)",
                      "P.view_data(\"train\")", "P.train_single_view(data=svr_train)"],
    "06_surfaces": ["S.chapter_splits()", "S.train_chapter_model(key, splits=SPLITS)", "S.AE_MODELS",
                    "S.chapter_splits(image_size=size)", "S.train_chapter_model(f\"svr-square{K}\", splits=SPLITS_IMG)",
                    "SZ[\"coded_categories\"][0]", "S.train_chapter_coded(cat)"],
    "07_implicit_fields": ["E.occnet_train_data()", "E.train_occnet(train)",
                           "E.implicit_data(\"train\", kind=\"sdf\", sampling=\"deepsdf\", categories=cats)",
                           "E.train_deepsdf(sdf_train)"],
    "08_primitives": ["E.primitive_data(\"train\")", "E.primitive_data(\"val\")",
                      "E.train_primitives(kind, method, train_set, val=val_set, seed=0)"],
    "10_gradient_fields": ["ex.load_data(\"train\")", "ex.train_shapegf(train, live_plot=False",
                           "ex.train_baselines(train"],
}


def test_every_chapter_with_trained_models_has_jobs_and_its_lecture_makes_the_same_calls():
    jobs = PT.jobs_for(None)
    assert sorted({j.chapter for j in jobs}) == list(PT.CHAPTERS)
    assert {j.lecture for j in jobs} == set(LECTURE_CALLS)
    for lecture, calls in LECTURE_CALLS.items():
        assert (ROOT / "lectures" / f"{lecture}.ipynb").exists()
        src = (ROOT / "nbsrc" / "lectures" / f"{lecture}.py").read_text()
        for call in calls:
            assert call in src, f"{lecture} no longer calls {call}: update course_lib.pretrain's job"
    names = [j.name for j in PT.jobs_for(["8"])]
    assert names == ["ch08 superquadric / reorder", "ch08 superquadric / reinforce", "ch08 cuboid / reorder"]


def test_chapters_without_models_are_refused_by_name():
    with pytest.raises(ValueError, match=r"\['09'\]"):
        PT.jobs_for(["9"])
    with pytest.raises(SystemExit, match="nothing to pretrain"):
        PT.main(["--chapters", "11", "--dry-run"])


def _tiny_job(path: Path, epochs: int = 3) -> PT.Job:
    def run() -> None:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(40, 3, generator=g)
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
        loader = Batches({"x": x, "y": x.sum(1, keepdim=True)}, 8, seed=0)
        val = Batches({"x": x[:16], "y": x[:16].sum(1, keepdim=True)}, 8, shuffle=False)
        T.train_or_load(model, path, train_loader=loader, val_loader=val, epochs=epochs, lr=1e-2, seed=0,
                        progress=False, live_plot=False, loss_fn=lambda m, b: ((m(b["x"]) - b["y"]) ** 2).mean())

    return PT.Job("99", "tiny", run, "none")


def test_dry_run_measures_and_writes_nothing_then_run_trains_loads_and_summarises(tmp_path, monkeypatch):
    monkeypatch.delenv(T.CHECKPOINTS_ONLY_ENV, raising=False)
    path = tmp_path / "tiny.pt"
    dry = PT.dry_run([_tiny_job(path)], steps=2)
    assert len(dry) == 1 and not path.exists() and not T.partial_path(path).exists()
    r = dry[0]
    assert (r.params, r.epochs, r.steps, r.status) == (3 * 32 + 32 + 32 + 1, 3, 15, "to train")
    assert r.extra["examples"] == 40 and r.extra["batch_size"] == 8 and r.extra["steps_per_epoch"] == 5
    assert r.extra["step_seconds"] > 0 and r.extra["val_seconds_per_epoch"] > 0
    assert r.seconds == pytest.approx(r.extra["step_seconds"] * 15 + r.extra["val_seconds_per_epoch"] * 3)
    assert r.extra["memory_mb"] >= 0
    table = PT.format_summary(dry, "ci", dry=True)
    assert "| tiny | Sequential | 161 | 40 | 8 | 3 | 15 |" in table and "to train" in table

    first = PT.run_jobs([_tiny_job(path)])
    assert [x.status for x in first] == ["trained now"] and path.exists()
    assert first[0].steps == 15 and first[0].epochs == 3
    again = PT.run_jobs([_tiny_job(path)])
    assert [x.status for x in again] == ["loaded"]
    assert PT.dry_run([_tiny_job(path)], steps=1)[0].status == "trained (matching checkpoint)"
    assert PT.dry_run([_tiny_job(path, epochs=4)], steps=1)[0].status.startswith("to train (stale")
    summary = PT.format_summary(first + again, "ci")
    assert re.search(r"\| tiny \| Sequential \| ci \| 161 \| 3 \| 15 \| [0-9.]+ \| trained now \| tiny\.pt \|", summary)
    assert "| loaded |" in summary


def test_an_interrupted_model_stops_pretraining_and_is_resumed(tmp_path, monkeypatch):
    path = tmp_path / "tiny.pt"
    calls = {"n": 0}
    original_fit = T.fit

    def interrupted_fit(model, **kw):
        calls["n"] += 1
        if calls["n"] == 1:  # Ctrl-C during the second epoch
            kw = {**kw, "loss_fn": _interrupt_after(kw["loss_fn"], 7)}
        return original_fit(model, **kw)

    monkeypatch.setattr(T, "fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        PT.run_jobs([_tiny_job(path)])
    assert not path.exists() and T.partial_path(path).exists()
    out = PT.run_jobs([_tiny_job(path)])
    assert out[0].status == "trained now" and out[0].epochs == 3 and path.exists()


def _interrupt_after(fn, n):
    count = {"n": 0}

    def wrapped(m, b):
        count["n"] += 1
        if count["n"] > n:
            raise KeyboardInterrupt
        return fn(m, b)

    return wrapped


def test_checkpoints_only_environment_variable_refuses_to_train(tmp_path, monkeypatch):
    monkeypatch.setenv(T.CHECKPOINTS_ONLY_ENV, "1")
    with pytest.raises(T.CheckpointMissing, match="no checkpoint"):
        PT.run_jobs([_tiny_job(tmp_path / "tiny.pt")])
    monkeypatch.setenv(T.CHECKPOINTS_ONLY_ENV, "0")
    assert PT.run_jobs([_tiny_job(tmp_path / "tiny.pt")])[0].status == "trained now"


def test_a_real_dataset_gets_its_own_checkpoint_names(monkeypatch):
    monkeypatch.delenv("COURSE_DATASET", raising=False)
    lite = T.checkpoint_path("ch03_voxnet", {"a": 1}, "ci").name
    monkeypatch.setenv("COURSE_DATASET", "modelnet")
    real = T.checkpoint_path("ch03_voxnet", {"a": 1}, "ci").name
    assert lite.startswith("ch03_voxnet-ci-") and real.startswith("ch03_voxnet-modelnet-ci-")
    assert lite.split("-")[-1] == real.split("-")[-1]
    monkeypatch.setenv("COURSE_DATASET", "imagenet")
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        T.checkpoint_path("x", None, "ci")


def test_checkpoint_states_and_chapter_ready_train_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(T.CHECKPOINTS_ONLY_ENV, raising=False)
    monkeypatch.delenv(T.CLASS_CHECKPOINT_ENV, raising=False)
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    jobs = [_tiny_job(a), _tiny_job(b, epochs=2)]
    states = PT.checkpoint_states(jobs)
    assert states == {str(a): "to train", str(b): "to train"} and not a.exists() and not b.exists()
    assert PT.checkpoint_states(jobs, stop_at_first=True) == {str(a): "to train"}  # stopped at the first
    PT.run_jobs(jobs[:1])
    assert PT.checkpoint_states(jobs) == {str(a): "trained (matching checkpoint)", str(b): "to train"}
    monkeypatch.setattr(PT, "jobs_for", lambda chapters: jobs)
    assert PT.chapter_ready("99") is False
    PT.run_jobs(jobs[1:])
    assert PT.chapter_ready("99") is True
    # a checkpoint in the instructor's class folder counts as ready
    shared = tmp_path / "class"
    shared.mkdir()
    b.rename(shared / b.name)
    assert PT.chapter_ready("99") is False
    monkeypatch.setenv(T.CLASS_CHECKPOINT_ENV, str(shared))
    assert PT.checkpoint_states(jobs)[str(b)] == "in the class folder" and PT.chapter_ready("99") is True
