"""Pretrain the models that the lectures load, chapter by chapter, with one command.

Introduced in ``lectures/00_welcome.ipynb`` (for instructors).  Usage::

    python -m course_lib.pretrain [--profile P] [--chapters 03 07 ...] [--dataset D] [--device D]
                                  [--dry-run [--steps K]] [--verify] [--json FILE]
    torchrun --nproc_per_node=N -m course_lib.pretrain ...      # several processes or GPUs

Each chapter's *jobs* (:func:`jobs_for`) make the same calls as its lecture (the same data functions, the same
``train_*`` recipe of :mod:`course_lib.experiments`, hence the same checkpoint names and training
signatures), so that afterwards the lecture loads every model instead of training it.  Every training goes
through :func:`course_lib.train.train_or_load`: a finished checkpoint is loaded in seconds, an interrupted
run (Ctrl-C) is kept as a partial checkpoint and resumed by the next ``pretrain``; each model has its own
progress bar (per epoch) and the run ends with a summary table (model, profile, epochs, steps, seconds,
status, checkpoint).

``--dry-run`` trains nothing: for each model it prints the sizes (examples, batch size, epochs, steps),
the parameter count, whether a matching checkpoint already exists, and an estimate of the time and the
memory of the full run, measured on this machine's device from ``--steps`` optimisation steps (and one
validation batch): the time of a step times the steps, the validation pass times the epochs; the memory
as the peak resident memory of the process above its level before the steps (on CUDA, the peak memory
allocated).  Run it on the CPU to size the ``gpu`` profile before a GPU is lent; the estimate ignores data
loading, which the chapters cache on disk.

``--verify`` then executes each chosen chapter's lecture notebook with ``COURSE_CHECKPOINTS_ONLY=1``
(:data:`course_lib.train.CHECKPOINTS_ONLY_ENV`): any model the lecture would have to train raises
:class:`course_lib.train.CheckpointMissing`, so a clean run shows that the lecture needs no training.

Under ``torchrun`` every rank runs the same jobs; :func:`course_lib.train.fit` shares each global batch
among the ranks and sums the gradients (:func:`course_lib.train.shard_batch`); rank 0 alone writes the
checkpoints and prints.  ``--dataset`` sets ``COURSE_DATASET`` (real datasets get their own checkpoint
names, :func:`course_lib.train.checkpoint_path`).

What is not pretrained, stated: per-shape optimisations that are the lecture's subject (chapter 09's
silhouette fits, chapter 07's latent search of DeepSDF, chapter 06's 3D-CODED refinement) and chapter 10's
latent GAN (seconds, trained in the lecture); chapter 11 reads the evaluation benchmark's stored
predictions (``benchmarks/evaluation.py --train-missing`` trains what its table needs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Job", "Record", "CHAPTERS", "jobs_for", "run_jobs", "dry_run", "checkpoint_states", "chapter_ready",
           "verify", "format_summary", "main"]

LECTURES_DIR = Path(__file__).resolve().parents[1] / "lectures"


@dataclass(frozen=True)
class Job:
    """One step of a chapter's pretraining: ``run()`` makes the lecture's training calls (each model through
    :func:`course_lib.train.train_or_load`)."""

    chapter: str
    name: str
    run: Callable[[], Any]
    lecture: str


_DATA: dict[tuple[str, str], Any] = {}


def _data(key: str, make: Callable[[], Any]) -> Any:
    """The chapter's data, built once per profile and dataset (several jobs share it, as cells of a lecture do)."""
    from course_lib import config
    from course_lib.data.real_split import dataset_name

    k = (f"{config.get_profile()}/{dataset_name(None)}", key)
    if k not in _DATA:
        _DATA[k] = make()
    return _DATA[k]


# ---------------------------------------------------------------------------
# the lectures' training calls, chapter by chapter (keep in step with nbsrc/lectures/)
# ---------------------------------------------------------------------------
def _ch02_points(name: str) -> None:
    from course_lib.experiments import encoders as C

    train = _data("ch02-points", lambda: C.load_point_clouds("train"))
    C.train_classifier(name, train, checkpoint=C.checkpoint_path(name))


def _ch02_images() -> None:
    from course_lib import config
    from course_lib.experiments import encoders as C

    s = config.sizes(prefix="ch02.")
    views, w = s["views_per_category"], s["resnet_width"]
    if views["train"] <= 0:
        print(f"ch02: profile {config.get_profile()!r} trains no image classifier (as the lecture)")
        return
    val_views = C.load_views("val", views["val"])
    train_views = C.load_views("train", views["train"])
    for mode in ("rgb", "rgbd"):
        C.train_image_classifier(mode, train_views, val_views, epochs=s["image_epochs"], width=w,
                                 checkpoint=C.image_checkpoint_path(mode, views["train"], epochs=s["image_epochs"],
                                                                    width=w))


def _ch03(which: str) -> None:
    from course_lib import config
    from course_lib.experiments import voxels as V

    sz = config.sizes(prefix="ch03.")
    train = _data("ch03-train", lambda: V.voxel_data("train", image=True, extra_views=sz["train_views"]))
    val = _data("ch03-val", lambda: V.voxel_data("val", image=True))
    if which == "multi_view":  # 3D-R2N2's recurrence (lecture 03, section 5b): its own views per shape
        mv_train = _data("ch03-mv-train", lambda: V.multiview_data("train"))
        mv_val = _data("ch03-mv-val", lambda: V.multiview_data("val", views=sz["mv_max_views"]))
        V.train_multiview(data=mv_train, val_data=mv_val)
        return
    if which == "voxnet_scan":  # VoxNet on partial scans (lecture 03, section 3b)
        V.train_voxnet(data=train, val_data=val, scan=True)
        return
    fn = {"voxnet": V.train_voxnet, "autoencoder": V.train_autoencoder, "single_view": V.train_single_view}[which]
    fn(data=train, val_data=val)


def _ch04() -> None:
    from course_lib.experiments import octrees as E

    E.train_ogn(data=E.octree_data("train"), val_data=E.octree_data("val"))


def _ch05(kind: str) -> None:
    from course_lib.experiments import point_sets as P

    if kind == "svr":
        P.train_single_view(data=P.view_data("train"))
        return
    train = _data("ch05-train", P.train_data)
    val = _data("ch05-val", P.val_data)
    P.train_autoencoder(kind, data=train, val=val)


def _ch06(key: str) -> None:
    from course_lib import config
    from course_lib.experiments import surfaces as S

    sz = config.sizes(prefix="ch06.")
    if key.startswith("coded-"):
        S.train_chapter_coded(key.removeprefix("coded-"))
    elif key.startswith("svr-"):
        S.train_chapter_model(key, splits=_data("ch06-img", lambda: S.chapter_splits(image_size=sz["image_size"])))
    else:
        S.train_chapter_model(key, splits=_data("ch06", S.chapter_splits))


def _ch07(which: str) -> None:
    from course_lib import config
    from course_lib.experiments import implicit as E

    if which == "occnet":
        E.train_occnet(E.occnet_train_data())
    else:
        cats = tuple(config.sizes(prefix="ch07.")["sdf_categories"])
        E.train_deepsdf(E.implicit_data("train", kind="sdf", sampling="deepsdf", categories=cats))


def _ch08(kind: str, method: str) -> None:
    from course_lib.experiments import primitives as E

    E.train_primitives(kind, method, _data("ch08-train", lambda: E.primitive_data("train")),
                       val=_data("ch08-val", lambda: E.primitive_data("val")), seed=0)


def _ch10(which: str) -> None:
    from course_lib.experiments import gradient_fields as ex

    train = _data("ch10-train", lambda: ex.load_data("train"))
    if which == "shapegf":
        ex.train_shapegf(train, live_plot=False)
    else:
        ex.train_baselines(train)


def _jobs() -> list[Job]:
    from functools import partial

    from course_lib import config

    jobs = [Job("02", f"ch02 {n}", partial(_ch02_points, n), "02_encoders") for n in ("pointnet", "pointnet2", "dgcnn")]
    jobs.append(Job("02", "ch02 ResNet on RGB and RGB-D views", _ch02_images, "02_encoders"))
    jobs += [Job("03", f"ch03 {w}", partial(_ch03, w), "03_voxels") for w in ("voxnet", "voxnet_scan", "autoencoder",
                                                                                  "single_view", "multi_view")]
    jobs.append(Job("04", "ch04 OGN", _ch04, "04_octrees"))
    jobs += [Job("05", f"ch05 PointSetGen {k}", partial(_ch05, k), "05_point_sets") for k in ("chamfer", "emd", "svr")]
    sz6 = config.sizes(prefix="ch06.")
    from course_lib.experiments import primitives as E8
    from course_lib.experiments.surfaces import AE_MODELS

    keys6 = [key for _, key in AE_MODELS]
    if f"ae-square{sz6['lecture_patches']}" not in keys6:
        keys6.insert(0, f"ae-square{sz6['lecture_patches']}")
    keys6 += [f"svr-square{sz6['lecture_patches']}", f"coded-{sz6['coded_categories'][0]}"]
    jobs += [Job("06", f"ch06 {k}", partial(_ch06, k), "06_surfaces") for k in keys6]
    jobs += [Job("07", f"ch07 {w}", partial(_ch07, w), "07_implicit_fields") for w in ("occnet", "deepsdf")]
    jobs += [Job("08", f"ch08 {k} / {m}", partial(_ch08, k, m), "08_primitives")
             for k, m in E8.VARIANTS]
    jobs += [Job("10", "ch10 ShapeGF", partial(_ch10, "shapegf"), "10_gradient_fields"),
             Job("10", "ch10 baselines (PointSetGen, AtlasNet sphere and patches)", partial(_ch10, "baselines"),
                 "10_gradient_fields")]
    return jobs


CHAPTERS: tuple[str, ...] = ("02", "03", "04", "05", "06", "07", "08", "10")
"""The chapters whose lectures load trained models (00, 01, 09 and 11 train nothing that is kept)."""


def jobs_for(chapters: Sequence[str] | None = None) -> list[Job]:
    """The jobs of ``chapters`` (two-digit strings; ``None``: all), in the course's order.

    Raises ``ValueError`` naming a chapter that does not exist or has nothing to pretrain.
    """
    wanted = list(CHAPTERS) if not chapters else [str(c).zfill(2) for c in chapters]
    unknown = [c for c in wanted if c not in CHAPTERS]
    if unknown:
        raise ValueError(f"nothing to pretrain for chapter(s) {unknown}: the chapters with trained models are "
                         f"{list(CHAPTERS)} (09 fits each shape in the lecture, 11 reads the evaluation benchmark)")
    return [j for j in _jobs() if j.chapter in wanted]


# ---------------------------------------------------------------------------
# running the jobs: every train_or_load call recorded
# ---------------------------------------------------------------------------
@dataclass
class Record:
    """One :func:`course_lib.train.train_or_load` call made by a job."""

    job: str
    model: str
    checkpoint: str
    params: int
    epochs: int
    steps: int | None
    seconds: float
    status: str
    extra: dict[str, Any] = field(default_factory=dict)


def run_jobs(jobs: Sequence[Job]) -> list[Record]:
    """Run ``jobs`` (training what is missing, loading what exists); return one :class:`Record` per model.

    A run interrupted by Ctrl-C keeps the model's partial checkpoint and stops the whole pretraining (run the
    same command again to resume it).
    """
    from course_lib import train as T

    records: list[Record] = []
    current = {"job": ""}

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(model: Any, path: Any, **kwargs: Any) -> Any:
            path = Path(path)
            before = path.stat().st_mtime_ns if path.exists() else None
            t0 = time.perf_counter()
            hist = original(model, path, **kwargs)
            trained = not path.exists() or path.stat().st_mtime_ns != before
            epochs = int(getattr(hist, "epochs_run", 0))
            b = T.loop_budget(model, epochs, kwargs)
            status = ("interrupted" if getattr(hist, "interrupted", False) else "trained now" if trained
                      else "loaded")
            records.append(Record(current["job"], type(model).__name__, str(path), b["params"], epochs, b["steps"],
                                  float(getattr(hist, "wall_time", 0.0)) if trained else time.perf_counter() - t0,
                                  status))
            if status == "interrupted":
                raise KeyboardInterrupt
            return hist

        return recorded

    with T.wrapped_train_or_load(make):
        for job in jobs:
            current["job"] = job.name
            if T.is_main_process():
                print(f"== {job.name} (lecture {job.lecture})", flush=True)
            job.run()
    return records


# ---------------------------------------------------------------------------
# dry run: sizes and a measured estimate per model
# ---------------------------------------------------------------------------
def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


class _PeakMemory:
    """The peak resident memory above the level at entry (sampled every 2 ms; CUDA: peak allocated)."""

    def __init__(self, device: Any) -> None:
        import torch

        self.cuda = getattr(device, "type", str(device)) == "cuda" and torch.cuda.is_available()
        self.peak = 0
        self.base = 0
        self._stop = threading.Event()

    def __enter__(self) -> _PeakMemory:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        self.base = _rss_bytes() or 0
        self.peak = self.base

        def sample() -> None:
            while not self._stop.is_set():
                r = _rss_bytes()
                if r is not None:
                    self.peak = max(self.peak, r)
                self._stop.wait(0.002)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
            return
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes() or 0)

    @property
    def above_base(self) -> int:
        return max(0, self.peak - self.base)


def _estimate(model: Any, kwargs: dict[str, Any], steps: int) -> dict[str, Any]:
    """Time ``steps`` optimisation steps (the first is a warm-up, not timed) and one validation batch."""
    import itertools

    import torch

    from course_lib import config
    from course_lib import train as T

    kwargs = dict(kwargs)
    kwargs.pop("spec", None)
    epochs = int(kwargs.get("epochs", 0))
    size = T.loop_budget(model, epochs, kwargs)
    loader = kwargs.get("train_loader")
    stamps: list[float] = []
    loss_fn = kwargs["loss_fn"]
    device = config.get_device(kwargs.get("device")) if kwargs.get("device") is not None else next(
        (p.device for p in model.parameters()), config.get_device())

    def timed_loss(m: Any, b: Any) -> Any:
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        return loss_fn(m, b)

    short = {**kwargs, "loss_fn": timed_loss, "epochs": 1, "val_loader": None, "val_fn": None, "progress": False,
             "live_plot": False, "scheduler": None, "max_batches_per_epoch": steps + 1}
    short.pop("monitor", None)
    short.pop("mode", None)
    with _PeakMemory(device) as mem:
        hist = T.fit(model, **short)
    if device.type == "cuda":
        torch.cuda.synchronize()
    stamps.append(time.perf_counter())
    diffs = [b - a for a, b in zip(stamps[1:], stamps[2:])] or [b - a for a, b in zip(stamps, stamps[1:])]
    step_s = sorted(diffs)[len(diffs) // 2] if diffs else float("nan")
    val_s = 0.0
    val_loader = kwargs.get("val_loader")
    if val_loader is not None:
        fn = kwargs.get("val_fn") or (lambda m, b: {"val_loss": T._split_loss(loss_fn(m, b))[0]})
        try:
            n_val = len(val_loader)
        except TypeError:
            n_val = 1
        t0 = time.perf_counter()
        T.evaluate(model, list(itertools.islice(iter(val_loader), 1)), fn)
        val_s = (time.perf_counter() - t0) * n_val
    total_steps = size["steps"]
    est = None if total_steps is None else step_s * total_steps + val_s * epochs
    return {"epochs": epochs, "steps_per_epoch": size["steps_per_epoch"], "steps": total_steps,
            "batch_size": size["batch_size"], "examples": getattr(loader, "n", None), "params": size["params"],
            "step_seconds": step_s, "val_seconds_per_epoch": val_s, "estimate_seconds": est,
            "memory_mb": mem.above_base / 2 ** 20, "memory_kind": "CUDA peak allocated" if mem.cuda else
            "peak resident above the process's level", "history": hist}


def _checkpoint_state(model: Any, path: Path, kwargs: dict[str, Any]) -> str:
    import copy

    from course_lib import train as T

    fit_kwargs = {k: v for k, v in kwargs.items() if k not in ("spec", "retrain")}
    sig = T.training_signature(model, kwargs.get("spec"), **fit_kwargs)
    probe = copy.deepcopy(model)
    hist, why = T._load_matching(path, probe, sig)
    if hist is not None:
        return "trained (matching checkpoint)"
    shared = T.class_checkpoint_dir()
    if shared is not None and T._load_matching(shared / path.name, probe, sig)[0] is not None:
        return "in the class folder"
    partial = T.partial_path(path)
    if partial.exists():
        return "partial run (resumed)"
    return "to train" if not path.exists() else "to train (stale: " + why.split(" (")[0] + ")"


def dry_run(jobs: Sequence[Job], steps: int = 3) -> list[Record]:
    """What :func:`run_jobs` would train, with sizes and a measured estimate per model; trains nothing kept.

    Each model runs ``steps`` timed optimisation steps (after one warm-up step) with its real recipe and
    batch size, then the job goes on with that briefly trained model (so later models of a job, which may
    depend on it, are reached); no checkpoint is written.
    """

    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    records: list[Record] = []
    current = {"job": ""}

    def measured(model: Any, path: Any, **kwargs: Any) -> Any:
        path = Path(path)
        state = _checkpoint_state(model, path, kwargs)
        kwargs.pop("retrain", None)
        est = _estimate(model, kwargs, steps)
        hist = est.pop("history")
        records.append(Record(current["job"], type(model).__name__, str(path), est["params"], est["epochs"],
                              est["steps"], float(est["estimate_seconds"] or float("nan")), state, est))
        return hist

    from course_lib import train as T

    with T.wrapped_train_or_load(lambda original: measured):
        for job in jobs:
            current["job"] = job.name
            print(f"== {job.name} (dry run)", flush=True)
            job.run()
    return records


class _NotReady(Exception):
    """Raised inside a job by :func:`checkpoint_states` at the first model without a usable checkpoint."""


def checkpoint_states(jobs: Sequence[Job], *, stop_at_first: bool = False) -> dict[str, str]:
    """``{checkpoint path: state}`` for every model of ``jobs`` (:func:`jobs_for`), training nothing.

    A state is ``"trained (matching checkpoint)"``, ``"in the class folder"`` (:data:`course_lib.train.
    CLASS_CHECKPOINT_ENV`), ``"partial run (resumed)"``, ``"to train"`` or ``"to train (stale: ...)"``.  A
    model whose checkpoint is usable is loaded (so that the job's later models, which may depend on it, are
    reached); with ``stop_at_first`` the walk stops at the first model that would have to train (all that
    :func:`chapter_ready` needs).  The jobs' data is read from the on-disk cache (built on a first call).
    """
    from course_lib import train as T

    states: dict[str, str] = {}
    ready = ("trained (matching checkpoint)", "in the class folder")

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def probe(model: Any, path: Any, **kwargs: Any) -> Any:
            path = Path(path)
            state = _checkpoint_state(model, path, kwargs)
            states[str(path)] = state
            if state not in ready:
                if stop_at_first:
                    raise _NotReady(str(path))
                # go on with the untrained model: the job's later models are still listed
                return T.History()
            return original(model, path, **kwargs)

        return probe

    with T.wrapped_train_or_load(make):
        for job in jobs:
            try:
                job.run()
            except _NotReady:
                break
    return states


def chapter_ready(chapter: str) -> bool:
    """Whether every model that chapter ``chapter``'s lecture loads has a usable checkpoint (in this machine's
    cache or the class folder), so that the lecture trains nothing.  Introduced in
    ``lectures/10_gradient_fields.ipynb``, whose laptop run trains smaller models when this is False."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the loads' messages: the lecture prints its own
        states = checkpoint_states(jobs_for([chapter]), stop_at_first=True)
    return bool(states) and all(v in ("trained (matching checkpoint)", "in the class folder") for v in states.values())


# ---------------------------------------------------------------------------
# verification: the lectures run with COURSE_CHECKPOINTS_ONLY=1
# ---------------------------------------------------------------------------
def verify(chapters: Sequence[str], timeout: int = 600) -> dict[str, str]:
    """Execute each chapter's lecture with ``COURSE_CHECKPOINTS_ONLY=1``; return ``{lecture: "ok" | error}``.

    ``timeout``: seconds per cell; a cell past it (or a kernel that stops answering) is reported, not waited on.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    from course_lib import train as T

    out: dict[str, str] = {}
    lectures = sorted({j.lecture for j in jobs_for(chapters)})
    old = os.environ.get(T.CHECKPOINTS_ONLY_ENV)
    os.environ[T.CHECKPOINTS_ONLY_ENV] = "1"
    try:
        for lec in lectures:
            path = LECTURES_DIR / f"{lec}.ipynb"
            nb = nbformat.read(path, as_version=4)
            t0 = time.perf_counter()
            try:
                NotebookClient(nb, timeout=timeout, kernel_name="python3",
                               resources={"metadata": {"path": str(LECTURES_DIR)}}).execute()
                out[lec] = f"ok ({time.perf_counter() - t0:.0f} s, nothing trained)"
            except CellExecutionError as exc:
                text = str(exc)
                short = next((line for line in text.splitlines() if "CheckpointMissing" in line), text[-300:])
                out[lec] = f"failed: {short.strip()}"
            except (CellTimeoutError, DeadKernelError, TimeoutError, RuntimeError) as exc:
                out[lec] = f"failed: {type(exc).__name__} after {time.perf_counter() - t0:.0f} s"
            print(f"verify {lec}: {out[lec]}", flush=True)
    finally:
        if old is None:
            os.environ.pop(T.CHECKPOINTS_ONLY_ENV, None)
        else:
            os.environ[T.CHECKPOINTS_ONLY_ENV] = old
    return out


# ---------------------------------------------------------------------------
# tables and the command line
# ---------------------------------------------------------------------------
def _fmt_s(s: float | None) -> str:
    if s is None or s != s:
        return "?"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def format_summary(records: Sequence[Record], profile: str, dry: bool = False) -> str:
    """The summary table (markdown) of :func:`run_jobs` or :func:`dry_run` records."""
    if dry:
        head = ("| job | model | params | examples | batch | epochs | steps | s / step | estimate | memory MB | "
                "state | checkpoint |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
        rows = [f"| {r.job} | {r.model} | {r.params:,} | {r.extra.get('examples') or '?'} | "
                f"{r.extra.get('batch_size') or '?'} | {r.epochs} | {r.steps if r.steps is not None else '?'} | "
                f"{r.extra.get('step_seconds', float('nan')):.3f} | {_fmt_s(r.seconds)} | "
                f"{r.extra.get('memory_mb', 0):.0f} | {r.status} | {Path(r.checkpoint).name} |" for r in records]
        total = sum(r.seconds for r in records if r.seconds == r.seconds and r.status.startswith(("to train", "partial")))
        tail = f"\nestimated training time of what is missing, profile {profile!r}: {_fmt_s(total)}"
    else:
        head = ("| job | model | profile | params | epochs | steps | seconds | status | checkpoint |\n"
                "|---|---|---|---|---|---|---|---|---|")
        rows = [f"| {r.job} | {r.model} | {profile} | {r.params:,} | {r.epochs} | "
                f"{r.steps if r.steps is not None else '?'} | {r.seconds:.1f} | {r.status} | {Path(r.checkpoint).name} |"
                for r in records]
        trained = sum(r.seconds for r in records if r.status == "trained now")
        tail = f"\n{len(records)} models; trained now: {_fmt_s(trained)} of training loops"
    return "\n".join([head, *rows]) + tail


def main(argv: Sequence[str] | None = None) -> int:
    from course_lib import config

    ap = argparse.ArgumentParser(prog="python -m course_lib.pretrain", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", choices=config.PROFILES, help="size profile (default: COURSE_PROFILE or the machine's)")
    ap.add_argument("--chapters", nargs="+", metavar="NN", help=f"chapters to pretrain (default: all of {CHAPTERS})")
    ap.add_argument("--dataset", help="shapenet-lite (default), shapenetcore or modelnet (sets COURSE_DATASET)")
    ap.add_argument("--device", help="cpu, cuda, cuda:1, mps (sets COURSE_DEVICE; under torchrun each rank takes "
                                     "cuda:LOCAL_RANK)")
    ap.add_argument("--dry-run", action="store_true", help="train nothing: sizes and a measured estimate per model")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per model in --dry-run (default 3)")
    ap.add_argument("--verify", action="store_true",
                    help="afterwards, run the chapters' lectures with COURSE_CHECKPOINTS_ONLY=1")
    ap.add_argument("--json", help="also write the summary records to this JSON file")
    args = ap.parse_args(argv)

    if args.profile:
        os.environ[config.ENV_PROFILE] = args.profile
    if args.dataset:
        from course_lib.data.real_split import dataset_name

        os.environ["COURSE_DATASET"] = dataset_name(args.dataset)
    from course_lib import train as T

    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    device = args.device
    if world > 1 and device and device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    if device:
        os.environ[config.ENV_DEVICE] = device
    rank, world = T.init_distributed(device)
    if args.dry_run and world > 1:
        raise SystemExit("--dry-run runs in one process: start it without torchrun")
    try:
        jobs = jobs_for(args.chapters)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    profile = config.get_profile()
    if rank == 0:
        print(f"pretrain: profile {profile!r}, {len(jobs)} jobs of chapters "
              f"{sorted({j.chapter for j in jobs})}, device {config.get_device()}, {world} process(es); "
              f"checkpoints in {config.cache_dir() / 'checkpoints'}", flush=True)
    try:
        records = dry_run(jobs, steps=args.steps) if args.dry_run else run_jobs(jobs)
    except KeyboardInterrupt:
        if rank == 0:
            print("\npretrain stopped: the interrupted model is kept as a partial checkpoint; run the same command "
                  "again to resume", flush=True)
        return 130
    if rank == 0:
        print()
        print(format_summary(records, profile, dry=args.dry_run))
        if args.json:
            Path(args.json).write_text(json.dumps(
                [{k: v for k, v in vars(r).items()} for r in records], indent=1, default=str))
    status = 0
    if args.verify and not args.dry_run and rank == 0:
        results = verify(sorted({j.chapter for j in jobs}))
        status = 0 if all(v.startswith("ok") for v in results.values()) else 1
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return status


if __name__ == "__main__":
    sys.exit(main())
