"""The experiments of chapter 05 (point sets), shared by the lecture, the lab and the benchmark.

Introduced in ``lectures/05_point_sets.ipynb``.  Built on the shared layer of
:mod:`course_lib.experiments.common` (splits, batches, ``predict``, result tables) and
:func:`course_lib.train.checkpoint_path`.

* Data: :func:`train_data` (ShapeNet-lite: the encoder's input ``points`` and an independent
  sampling ``target_points`` of the same surfaces), :func:`val_data` (the validation shapes every
  choice is made on), :func:`test_data` (input, target and the *oracle* sampling of held-out
  shapes, read only to report), :func:`autoencoder_batches` (random ``n``-point subsets of both
  streams, redrawn every epoch), :func:`val_batches`;
* Training: :func:`build_autoencoder`, :func:`point_loss`, :func:`train_autoencoder`
  (``"chamfer"`` or ``"emd"`` loss, through :func:`course_lib.train.train_or_load`, the best
  epoch chosen on ``val`` by :func:`val_metrics` / :data:`MONITOR`), and the single-view model
  (:func:`view_data`, :func:`view_batches`, :func:`train_single_view`);
* The measuring protocol (:mod:`course_lib.experiments.protocol`): :func:`best_epoch_record` (the
  epoch each run kept, as a selection record on ``val``), :func:`fit_budget` (a row's budget) and
  :func:`pair_by_shape` (per-shape values of two tables on their common shapes, for a paired claim);
* Evaluation in one stated convention (:data:`CONVENTION`): :func:`evaluate_sets`, and the
  uniformity statistic :func:`nn_uniformity`; tables with
  :func:`course_lib.experiments.common.summarize` / ``format_table``;
* The mean-shape experiment of Fan et al. (2017): :func:`sample_rings`,
  :func:`mean_shape`, :func:`radial_profile`;
* Complexity: :func:`peak_memory`, :func:`time_distances`;
* :func:`smoke`: a few training steps of both models (``benchmarks/gpu_smoke.py``).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from course_lib import config
from course_lib import metrics as _metrics
from course_lib import ops as _ops
from course_lib.experiments.common import Batches, real_dataset, subsample
from course_lib.experiments.common import load_split as _load_split
from course_lib.metrics import describe_chamfer

__all__ = [
    "CONVENTION",
    "MONITOR",
    "train_data",
    "val_data",
    "test_data",
    "autoencoder_batches",
    "val_batches",
    "val_metrics",
    "best_epoch_record",
    "fit_budget",
    "pair_by_shape",
    "build_autoencoder",
    "view_data",
    "view_batches",
    "build_single_view",
    "train_single_view",
    "point_loss",
    "data_spec",
    "train_autoencoder",
    "checkpoint_path",
    "nn_distances",
    "nn_uniformity",
    "evaluate_sets",
    "even_reference",
    "sample_radii",
    "sample_rings",
    "mean_shape",
    "radial_profile",
    "peak_memory",
    "time_distances",
    "complexity_summary",
    "map_grid_stats",
    "surface_distances",
    "smoke",
]

CONVENTION = (
    "every set has N points (the model's output size); the model's input = N surface samples (sampling "
    "stream 0); the ground truth = N other, independent samples of the same surface (stream 1); the oracle "
    "= N samples of a third, independent sampling (stream 2), scored against the same ground truth: a "
    "reference, not a floor (points of the true surface spread more evenly can score lower: the benchmark's "
    "claims even_vs_oracle_*). CD: " + describe_chamfer("atlasnet") + ". EMD: exact optimal one-to-one matching (SciPy's linear_sum_assignment, a "
    "Jonker-Volgenant solver), mean unsquared matched distance, x100. F-score at tau = 0.05 (Euclidean), "
    "in %. NN-CV: coefficient of variation (std / mean) of each point's distance "
    "to its nearest other point of the same set (lower = more uniform). All averaged over the held-out shapes."
)
"""The one convention every table of chapter 05 uses."""

CD_SCALE = 1e3
EMD_SCALE = 1e2
TAU = 0.05


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
def _sizes(profile: str | None) -> dict[str, Any]:
    return config.sizes(profile, prefix="ch05.")


def load_split(split: str, representations: Any, *, dataset: str | None = None, root: str | None = None,
               **kwargs: Any) -> dict[str, Any]:
    """:func:`course_lib.experiments.common.load_split`; a real dataset's rows also carry ``dataset`` (its name)."""
    from course_lib.data.real_split import dataset_name

    name = dataset_name(dataset)
    if name == "shapenet-lite":
        return _load_split(split, representations, dataset=dataset, root=root, **kwargs)
    out = _load_split(split, representations, dataset=name, root=root, **kwargs)
    out["dataset"] = name
    return out


def train_data(profile: str | None = None, categories: Sequence[str] | None = None,
               shapes_per_category: int | None = None, *, dataset: str | None = None,
               root: str | None = None) -> dict[str, Any]:
    """The training shapes of the chapter: ``points`` (input) and ``target_points`` (an independent
    sampling), both ``(S, P, 3)`` with ``P = data.n_surface_points``, plus ``label``, ``seed``, ``category``.

    Introduced in ``lectures/05_point_sets.ipynb``.  ``categories`` / ``shapes_per_category``
    default to ``ch05.categories`` / ``ch05.train_per_category``; cached on disk by
    :class:`course_lib.data.ShapeNetLite`.  ``dataset`` / ``root`` (or ``COURSE_DATASET`` and
    ``COURSE_MODELNET_DIR`` / ``COURSE_SHAPENET_DIR``) read a real dataset's meshes instead
    (:class:`course_lib.data.real_split.RealShapes`; its rows also carry ``path`` and ``dataset``); the same
    holds for :func:`val_data`, :func:`test_data`, :func:`view_data` and :func:`even_reference`.
    """
    s = _sizes(profile)
    return load_split("train", ("points", "target_points"), profile=profile, dataset=dataset, root=root,
                      categories=s["categories"] if categories is None else categories,
                      shapes_per_category=s["train_per_category"] if shapes_per_category is None
                      else shapes_per_category)


def val_data(profile: str | None = None, categories: Sequence[str] | None = None,
             shapes_per_category: int | None = None, n: int | None = None, *, dataset: str | None = None,
             root: str | None = None) -> dict[str, Any]:
    """Validation shapes, on which every choice of the chapter is made (the best epoch): ``points``
    (the model's input) and ``target_points`` (an independent sampling), ``n`` points each (default
    ``ch05.n_points``), fixed (no redrawing), ``ch05.val_per_category`` shapes per category.

    Introduced in ``lectures/05_point_sets.ipynb``.
    """
    s = _sizes(profile)
    n = int(s["n_points"] if n is None else n)
    return load_split("val", ("points", "target_points"), profile=profile, dataset=dataset, root=root,
                      categories=s["categories"] if categories is None else categories,
                      shapes_per_category=s["val_per_category"] if shapes_per_category is None
                      else shapes_per_category, n_points=n, n_target=n)


def test_data(profile: str | None = None, categories: Sequence[str] | None = None,
              shapes_per_category: int | None = None, n: int | None = None, *, dataset: str | None = None,
              root: str | None = None) -> dict[str, Any]:
    """Held-out shapes with three independent samplings of ``n`` points (default ``ch05.n_points``):
    ``points`` (the model's input), ``target_points`` (the ground truth every metric uses) and
    ``oracle_points`` (the oracle row: a reference, not a floor).

    Introduced in ``lectures/05_point_sets.ipynb``.
    """
    s = _sizes(profile)
    n = int(s["n_points"] if n is None else n)
    return load_split("test", ("points", "target_points", "oracle_points"), profile=profile, dataset=dataset,
                      root=root,
                      categories=s["categories"] if categories is None else categories,
                      shapes_per_category=s["test_per_category"] if shapes_per_category is None
                      else shapes_per_category, n_points=n, n_target=n)


def _subsample_keys(n: int, keys: Sequence[str]) -> Callable[[dict[str, Any], torch.Generator], dict[str, Any]]:
    def transform(batch: dict[str, Any], gen: torch.Generator) -> dict[str, Any]:
        for k in keys:
            if batch[k].shape[1] > n:
                batch[k] = subsample(batch[k], n, gen)
        return batch

    return transform


def autoencoder_batches(data: dict[str, Any], n: int, batch_size: int, seed: int = 0,
                        shuffle: bool = True) -> Batches:
    """Auto-encoder batches ``{"input": (B, n, 3), "target": (B, n, 3), "index"}`` over :func:`train_data`.

    Introduced in ``lectures/05_point_sets.ipynb``: :class:`~course_lib.experiments.common.Batches`
    whose ``input`` is a random ``n``-subset of ``points`` and ``target`` one of
    ``target_points`` (an independent sampling of the same surface), redrawn every epoch.
    """
    for k in ("points", "target_points"):
        if not 1 <= n <= data[k].shape[1]:
            raise ValueError(f"need 1 <= n <= {data[k].shape[1]} ({k} per shape), got n = {n}")
    return Batches(data, batch_size, keys=("points", "target_points"),
                   rename={"points": "input", "target_points": "target"}, shuffle=shuffle, seed=seed,
                   transform=_subsample_keys(int(n), ("input", "target")))


def val_batches(data: dict[str, Any], batch_size: int, input_key: str = "points") -> Batches:
    """Validation batches ``{"input", "target", "index"}``: every shape once, in order, unchanged.

    Introduced in ``lectures/05_point_sets.ipynb``.  ``data`` is :func:`val_data` (``input_key``
    ``"points"``) or :func:`view_data` of ``"val"`` (``input_key="rgb"``); the target is its
    ``target_points``, so each epoch is scored on the same fixed sets.
    """
    if input_key not in data or "target_points" not in data:
        raise KeyError(f"validation data needs {input_key!r} and 'target_points', it has {sorted(data)}")
    return Batches(data, batch_size, keys=(input_key, "target_points"),
                   rename={input_key: "input", "target_points": "target"}, shuffle=False)


# ---------------------------------------------------------------------------
# models and training
# ---------------------------------------------------------------------------
_ARCH_KEYS = ("latent_dim", "n_fc", "map_size", "n_upsample", "map_channels", "fc_hidden", "encoder_feat_dim")


def build_autoencoder(profile: str | None = None, **overrides: Any) -> torch.nn.Module:
    """The chapter's PointSetGen auto-encoder with the sizes of ``profile`` (``ch05.*`` config keys).

    Introduced in ``lectures/05_point_sets.ipynb``.  ``overrides`` replace sizes of the
    architecture (``n_fc=0`` switches the FC branch off, ``map_size=(0, 0)`` the map branch;
    exercise 4 of the lecture).
    """
    from course_lib.models import psg_autoencoder

    unknown = sorted(set(overrides) - set(_ARCH_KEYS))
    if unknown:
        raise ValueError(f"unknown architecture size(s) {unknown}; use {list(_ARCH_KEYS)}")
    s = {**_sizes(profile), **overrides}
    return psg_autoencoder(latent_dim=s["latent_dim"], n_fc=s["n_fc"], map_size=s["map_size"],
                           n_upsample=s["n_upsample"], map_channels=s["map_channels"],
                           fc_hidden=s["fc_hidden"], encoder_feat_dim=s["encoder_feat_dim"])


def point_loss(kind: str, emd_method: str = "exact", **emd_kwargs: Any) -> Callable[[Any, dict], dict]:
    """A ``loss_fn(model, batch)`` for :func:`course_lib.train.fit`: Chamfer or EMD to ``batch["target"]``.

    Introduced in ``lectures/05_point_sets.ipynb``. ``kind="chamfer"``:
    :func:`course_lib.ops.chamfer_distance` (squared, mean + mean). ``kind="emd"``:
    :func:`course_lib.ops.emd` with ``emd_method`` (unsquared; the gradient holds the matching
    fixed). The returned dict also reports the batch Chamfer distance under ``"cd"``.
    """
    if kind not in ("chamfer", "emd"):
        raise ValueError(f"kind must be 'chamfer' or 'emd', got {kind!r}")

    def loss_fn(model: Any, batch: dict) -> dict:
        pred = model(batch["input"])
        target = batch["target"]
        if kind == "chamfer":
            loss = _ops.chamfer_distance(pred, target)
            return {"loss": loss}
        loss = _ops.emd(pred, target, method=emd_method, **emd_kwargs).cost
        with torch.no_grad():
            cd = _ops.chamfer_distance(pred, target)
        return {"loss": loss, "cd": cd}

    return loss_fn


MONITOR = {"chamfer": "val_cd", "emd": "val_emd"}
"""The validation metric on which each run's best epoch is chosen: its own loss, measured on ``val``."""


def val_metrics(emd_method: str = "exact", with_emd: bool = True, **emd_kwargs: Any) -> Callable[[Any, dict], dict]:
    """A ``val_fn(model, batch)`` for :func:`course_lib.train.fit`: ``{"val_cd", "val_emd"}`` of the batch.

    Introduced in ``lectures/05_point_sets.ipynb``.  Chamfer distance and EMD (``emd_method``,
    unsquared) of the predictions to ``batch["target"]``, in the units of :func:`point_loss`; the
    run keeps the epoch with the lowest :data:`MONITOR` value of its loss.  ``with_emd=False``
    leaves the EMD out (the Chamfer runs, which do not monitor it: the exact EMD of every
    validation shape after every epoch is costly at the ``gpu`` sizes).
    """
    def val_fn(model: Any, batch: dict) -> dict:
        pred = model(batch["input"])
        target = batch["target"]
        out = {"val_cd": _ops.chamfer_distance(pred, target)}
        if with_emd:
            out["val_emd"] = _ops.emd(pred, target, method=emd_method, **emd_kwargs).cost
        return out

    return val_fn


def data_spec(profile: str | None = None, task: str = "ae", **extra: Any) -> dict[str, Any]:
    """The data configuration a chapter-05 checkpoint depends on (part of its name, see :func:`checkpoint_path`)."""
    s = _sizes(profile)
    if task == "svr":
        spec = {"categories": s["svr_categories"], "train_per_category": s["svr_train_per_category"],
                "image_size": config.size("data.image_size", profile), "view": "random"}
    else:
        spec = {"categories": s["categories"], "train_per_category": s["train_per_category"]}
    spec.update({"samples_per_shape": config.size("data.n_surface_points", profile), "n_points": s["n_points"],
                 "input": "stream 0", "target": "stream 1", "val_per_category": s["val_per_category"], **extra})
    return spec


def _overrides_spec(fit_kwargs: dict[str, Any]) -> dict[str, str]:
    """What a caller changed in the training (``loss_fn=``, ``epochs=``, ...): part of the checkpoint name,
    so that a variant (an exercise's loss) never overwrites the chapter's own checkpoint."""
    from course_lib.train import describe_callable

    return {f"override_{k}": describe_callable(v) for k, v in sorted(fit_kwargs.items())
            if k not in ("progress", "live_plot")}


def checkpoint_path(kind: str, profile: str | None = None, task: str = "ae", *, dataset: str | None = None,
                    **extra: Any) -> Path:
    """Where the trained chapter-05 model of ``kind`` (``"chamfer"``/``"emd"``) is kept (git-ignored cache):
    :func:`course_lib.train.checkpoint_path` keyed by :func:`data_spec` and the loss.  A real dataset
    (``COURSE_DATASET``, or ``dataset``: the name of the rows trained on, :func:`course_lib.experiments.common.real_dataset`)
    is in the file name, ``ch05_psg_<task>_<kind>-<dataset>-<profile>-<hash>.pt``: never ShapeNet-lite's."""
    from course_lib.data.real_split import dataset_name
    from course_lib.train import checkpoint_path as _path

    s = _sizes(profile)
    loss = {"loss": kind, "emd_method": s["emd_method"] if kind == "emd" else None}
    name = f"ch05_psg_{task}_{kind}"
    if dataset is not None and dataset != "shapenet-lite" and dataset != dataset_name(None):
        name = f"{name}-{dataset}"  # train.checkpoint_path adds COURSE_DATASET's name itself
    return _path(name, {**data_spec(profile, task, **extra), **loss}, profile)


def train_autoencoder(kind: str, profile: str | None = None, *, data: dict[str, Any] | None = None,
                      val: dict[str, Any] | None = None, validate: bool = True, retrain: bool = False,
                      progress: bool = True, path: str | os.PathLike | None = None, dataset: str | None = None,
                      root: str | None = None, **fit_kwargs: Any) -> tuple[torch.nn.Module, Any]:
    """Train (or load) the auto-encoder with the ``"chamfer"`` or ``"emd"`` loss; return ``(model, history)``.

    Introduced in ``lectures/05_point_sets.ipynb``. Sizes: ``ch05.*`` of ``profile``; the EMD
    solver is ``ch05.emd_method``. Same seed, data, schedule and number of steps for both losses.
    ``data``: :func:`train_data` (loaded here when ``None``). With ``validate`` (the default) the
    run is scored on ``val`` (:func:`val_data`, loaded when ``None``) after every epoch and keeps
    the epoch with the lowest :data:`MONITOR` value (its own loss on validation): the only choice
    the training makes, and it never sees the test split (:func:`best_epoch_record` records it).
    The checkpoint is :func:`checkpoint_path` unless ``path`` is given; ``fit_kwargs`` that change
    the training (an exercise's ``loss_fn=``, ``epochs=``) are part of its name, so such a run never
    overwrites the chapter's model.  ``dataset`` / ``root`` (or ``COURSE_DATASET``) train on a real dataset
    when ``data`` / ``val`` are not given, under that dataset's own checkpoint name (:func:`checkpoint_path`).
    """
    from course_lib.train import train_or_load

    if kind not in MONITOR:
        raise ValueError(f"kind must be 'chamfer' or 'emd', got {kind!r}")
    profile = profile or config.get_profile()
    s = _sizes(profile)
    config.seed_everything(s["seed"])
    model = build_autoencoder(profile)
    data = train_data(profile, dataset=dataset, root=root) if data is None else data
    batches = autoencoder_batches(data, s["n_points"], s["batch_size"], seed=s["seed"])
    kw: dict[str, Any] = dict(loss_fn=point_loss(kind, s["emd_method"]), epochs=s["epochs"], lr=s["lr"],
                              seed=s["seed"], progress=progress)
    if validate:
        val = val_data(profile, dataset=dataset, root=root) if val is None else val
        kw.update(val_loader=val_batches(val, s["batch_size"]),
                  val_fn=val_metrics(s["emd_method"], with_emd=kind == "emd"), monitor=MONITOR[kind], mode="min")
    kw.update(fit_kwargs)
    extra = {**_overrides_spec(fit_kwargs), "validation": MONITOR[kind] if validate else None}
    history = train_or_load(model, path or checkpoint_path(kind, profile, dataset=real_dataset(data), **extra),
                            retrain=retrain,
                            train_loader=batches, **kw)
    model.eval()
    return model, history


def view_data(split: str, profile: str | None = None, *, dataset: str | None = None,
              root: str | None = None) -> dict[str, Any]:
    """Rendered RGB views and surface samples of the ``ch05.svr_*`` shapes of ``split``.

    Introduced in ``lectures/05_point_sets.ipynb``. Returns the stacked
    :class:`~course_lib.data.ShapeNetLite` items: ``rgb`` ``(S, 3, H, W)`` (a seeded random view
    per shape) and ``target_points`` (the ground truth). For ``"test"`` also ``oracle_points``,
    both with ``ch05.n_points`` points; for ``"val"`` (``ch05.val_per_category`` shapes)
    ``ch05.n_points`` target points; for ``"train"`` ``data.n_surface_points`` target points.  On a real
    dataset (``dataset`` / ``root`` or ``COURSE_DATASET``) the views are rendered from its meshes with
    ShapeNet-lite's random cameras (:func:`course_lib.data.views.render_mesh`).
    """
    s = _sizes(profile)
    where = {"dataset": dataset, "root": root}
    if split == "train":
        return load_split("train", ("image", "target_points"), profile=profile, categories=s["svr_categories"],
                          shapes_per_category=s["svr_train_per_category"], **where)
    n = int(s["n_points"])
    if split == "val":
        return load_split("val", ("image", "target_points"), profile=profile, categories=s["svr_categories"],
                          shapes_per_category=s["val_per_category"], n_target=n, **where)
    return load_split(split, ("image", "target_points", "oracle_points"), profile=profile,
                      categories=s["svr_categories"], shapes_per_category=s["test_per_category"], n_target=n,
                      **where)


def view_batches(data: dict[str, Any], n: int, batch_size: int, seed: int = 0) -> Batches:
    """Single-view batches ``{"input": rgb (B, 3, H, W), "target": n random target points (B, n, 3)}``.

    Introduced in ``lectures/05_point_sets.ipynb`` (:class:`~course_lib.experiments.common.Batches`).
    """
    if n > data["target_points"].shape[1]:
        raise ValueError(f"n = {n} exceeds the {data['target_points'].shape[1]} samples per shape")
    return Batches(data, batch_size, keys=("rgb", "target_points"), rename={"rgb": "input", "target_points": "target"},
                   seed=seed, transform=_subsample_keys(int(n), ("target",)))


def build_single_view(profile: str | None = None) -> torch.nn.Module:
    """PointSetGen behind a small ResNet on RGB views, with the ``ch05.*`` sizes of ``profile``."""
    from course_lib.models import psg_single_view

    s = _sizes(profile)
    return psg_single_view(latent_dim=s["latent_dim"], n_fc=s["n_fc"], map_size=s["map_size"],
                           n_upsample=s["n_upsample"], map_channels=s["map_channels"], fc_hidden=s["fc_hidden"],
                           width=s["svr_width"])


def train_single_view(profile: str | None = None, *, data: dict[str, Any] | None = None,
                      val: dict[str, Any] | None = None, validate: bool = True, retrain: bool = False,
                      progress: bool = True, dataset: str | None = None, root: str | None = None,
                      **fit_kwargs: Any) -> tuple[torch.nn.Module, Any]:
    """Train (or load) PointSetGen for single-view reconstruction (ResNet on RGB views, Chamfer loss).

    Introduced in ``lectures/05_point_sets.ipynb``. Sizes: ``ch05.*`` (``svr_*`` keys). With
    ``validate`` the best epoch is chosen on the ``val`` views (:func:`view_data`, the Chamfer
    distance), as for :func:`train_autoencoder`.
    """
    from course_lib.train import train_or_load

    profile = profile or config.get_profile()
    s = _sizes(profile)
    config.seed_everything(s["seed"])
    model = build_single_view(profile)
    data = view_data("train", profile, dataset=dataset, root=root) if data is None else data
    batches = view_batches(data, s["n_points"], s["batch_size"], seed=s["seed"])
    kw: dict[str, Any] = dict(loss_fn=point_loss("chamfer"), epochs=s["svr_epochs"], lr=s["lr"], seed=s["seed"],
                              progress=progress)
    if validate:
        val = view_data("val", profile, dataset=dataset, root=root) if val is None else val
        kw.update(val_loader=val_batches(val, s["batch_size"], input_key="rgb"),
                  val_fn=val_metrics(s["emd_method"], with_emd=False), monitor=MONITOR["chamfer"], mode="min")
    kw.update(fit_kwargs)
    extra = {**_overrides_spec(fit_kwargs), "validation": MONITOR["chamfer"] if validate else None}
    history = train_or_load(model, checkpoint_path("chamfer", profile, task="svr", dataset=real_dataset(data), **extra),
                            retrain=retrain,
                            train_loader=batches, **kw)
    model.eval()
    return model, history


def best_epoch_record(id: str, history: Any, monitor: str | None = None) -> tuple[int, dict[str, Any]]:
    """The epoch a run kept, as a selection record on ``val``: ``(epoch (1-based), record)``.

    Introduced in ``lectures/05_point_sets.ipynb``: :func:`course_lib.experiments.protocol.selection_record`
    over the ``monitor`` value (default ``history.monitor``) of every epoch of ``history.val``
    (lower is better).  Raises when the run was not validated, or when the epoch the training loop
    kept is not the one the record chooses (the two rules must agree).
    """
    from course_lib.experiments.protocol import selection_record

    monitor = monitor or history.monitor
    if not history.val:
        raise ValueError(f"{id}: the run was not validated (no history.val): its best epoch was not chosen on val")
    scores = {f"epoch {e + 1}": float(v[monitor]) for e, v in enumerate(history.val)}
    chosen, rec = selection_record(id, scores, metric=monitor, higher_is_better=False, split="val")
    epoch = int(chosen.split()[1])
    if history.best_epoch >= 0 and epoch != history.best_epoch + 1:
        raise ValueError(f"{id}: the training kept epoch {history.best_epoch + 1}, the record chooses {epoch}")
    return epoch, rec


def fit_budget(model: torch.nn.Module, history: Any, n_train: int, batch_size: int, **extra: Any) -> dict[str, Any]:
    """The budget (:func:`course_lib.experiments.protocol.budget`) of one training run.

    Introduced in ``lectures/05_point_sets.ipynb``: ``steps`` = epochs run x batches per epoch
    (``ceil(n_train / batch_size)``), ``examples`` = epochs x ``n_train``, ``seconds`` = the run's
    wall time (``history.wall_time``, as recorded when it trained), ``params`` = trainable
    parameters; ``epochs`` and the kept ``best_epoch`` (1-based, when validated) are added.
    """
    from course_lib.experiments.protocol import budget

    if n_train < 1 or batch_size < 1:
        raise ValueError(f"need n_train >= 1 and batch_size >= 1, got {n_train} and {batch_size}")
    epochs = int(history.epochs_run)
    per_epoch = math.ceil(int(n_train) / int(batch_size))
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    best = int(history.best_epoch) + 1 if history.val and history.best_epoch >= 0 else None
    return budget(steps=epochs * per_epoch, examples=epochs * int(n_train), seconds=float(history.wall_time),
                  params=params, epochs=epochs, best_epoch=best, **extra)


def pair_by_shape(a: dict[str, Any], values_a: Any, b: dict[str, Any], values_b: Any) -> tuple[list, list, list]:
    """Per-shape values of two evaluations on the shapes they share, paired: ``(keys, va, vb)``.

    Introduced in ``lectures/05_point_sets.ipynb`` (the single-view model against the
    auto-encoder, tested on overlapping sets of shapes).  ``a`` and ``b`` are the data dicts
    (``category`` and ``seed`` per shape); ``values_a`` / ``values_b`` one value per shape of each,
    in the data's order.  Keys are ``(category, seed)`` in ``a``'s order.
    """
    def keys(d: dict[str, Any]) -> list[tuple[str, int]]:
        return [(str(c), int(s)) for c, s in zip(d["category"], d["seed"])]

    ka, kb = keys(a), keys(b)
    va, vb = [float(v) for v in values_a], [float(v) for v in values_b]
    if len(va) != len(ka) or len(vb) != len(kb):
        raise ValueError(f"one value per shape: {len(va)} values for {len(ka)} shapes, {len(vb)} for {len(kb)}")
    where_b = {k: i for i, k in enumerate(kb)}
    common = [k for k in ka if k in where_b]
    where_a = {k: i for i, k in enumerate(ka)}
    return common, [va[where_a[k]] for k in common], [vb[where_b[k]] for k in common]


# ---------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------
def nn_distances(points: Tensor) -> Tensor:
    """Distance from each point to its nearest *other* point of the same set: ``(B, N, 3) -> (B, N)``.

    Introduced in ``lectures/05_point_sets.ipynb``. Duplicated points are at distance 0.
    """
    if not isinstance(points, Tensor) or points.dim() not in (2, 3) or points.shape[-1] != 3:
        raise ValueError(f"points must be (N, 3) or (B, N, 3), got {getattr(points, 'shape', type(points))}")
    unb = points.dim() == 2
    p = points[None] if unb else points
    if p.shape[1] < 2:
        raise ValueError("a set needs at least 2 points to have nearest neighbours")
    d2, idx = _ops.knn(p, p, 2)
    ar = torch.arange(p.shape[1], device=p.device)[None, :]
    # the first neighbour is the point itself unless a duplicate came first: take the one that is not self
    other = torch.where(idx[..., 0] == ar, d2[..., 1], d2[..., 0])
    out = other.clamp_min(0).sqrt()
    return out[0] if unb else out


def nn_uniformity(points: Tensor) -> Tensor:
    """Coefficient of variation (std / mean) of the nearest-neighbour distances of each set.

    Introduced in ``lectures/05_point_sets.ipynb``. ``(B, N, 3) -> (B,)`` (or a scalar for one set).
    0 for a perfectly regular set (every point equally far from its nearest neighbour); about
    0.5 for i.i.d. uniform samples of a surface; large when points clump (some pairs nearly
    coincide while others are far apart). Scale invariant.
    """
    d = nn_distances(points)
    mean = d.mean(-1)
    return d.std(-1) / mean.clamp_min(1e-12)


@torch.no_grad()
def evaluate_sets(pred: Tensor, gt: Tensor, tau: float = TAU) -> dict[str, Tensor]:
    """Per-shape metrics of predicted sets against ground-truth sets, in :data:`CONVENTION`.

    Introduced in ``lectures/05_point_sets.ipynb``. ``pred`` and ``gt``: ``(S, N, 3)`` (``gt`` is the
    ``target_points`` of :func:`test_data`, never the model's input). F-score:
    :func:`course_lib.metrics.fscore`. Returns
    ``{"CD x1e3", "EMD x1e2", "F@0.05 %", "NN-CV"}``, each ``(S,)``.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape (S, N, 3), got {tuple(pred.shape)} "
                         f"and {tuple(gt.shape)}")
    pred, gt = pred.float(), gt.float()
    cd = _ops.chamfer_distance(pred, gt, reduction="none") * CD_SCALE
    emd = _ops.emd(pred, gt, method="exact", reduction="none").cost * EMD_SCALE
    f = _metrics.fscore(pred, gt, tau, reduction="none") * 100
    return {"CD x1e3": cd, "EMD x1e2": emd, f"F@{tau:g} %": f, "NN-CV": nn_uniformity(pred)}


def even_reference(split: str, n: int, *, profile: str | None = None, categories: Sequence[str] | None = None,
                   shapes_per_category: int | None = None, oversample: int = 8, dataset: str | None = None,
                   root: str | None = None) -> Tensor:
    """An *evenly spread* ``n``-point sample of each true surface of a split: farthest-point
    sampling of ``oversample * n`` samples of the oracle stream (cached by ShapeNet-lite).

    Introduced in ``lectures/05_point_sets.ipynb`` to show that the oracle row (i.i.d. samples) is
    a reference, not a floor: points exactly on the true surface but spread more evenly than
    i.i.d. samples score lower Chamfer and EMD against an i.i.d. ground truth.  The shapes and
    their order are those of :func:`test_data` with the same arguments; ``(S, n, 3)``.
    """
    s = _sizes(profile)
    dense = load_split(split, ("oracle_points",), profile=profile, dataset=dataset, root=root,
                       categories=s["categories"] if categories is None else categories,
                       shapes_per_category=s["test_per_category"] if shapes_per_category is None
                       else shapes_per_category, n_target=int(oversample) * int(n))["oracle_points"]
    idx = _ops.farthest_point_sampling(dense, int(n), start_idx="farthest")
    return torch.gather(dense, 1, idx[..., None].expand(-1, -1, 3))


# ---------------------------------------------------------------------------
# the mean-shape experiment
# ---------------------------------------------------------------------------
RADIUS_DISTRIBUTIONS = ("uniform", "two", "normal")


def sample_radii(kind: str, n: int, generator: torch.Generator | None = None, *, low: float = 0.3,
                 high: float = 1.0, sigma: float = 0.15, mean: float = 0.65) -> Tensor:
    """``n`` radii from a named distribution (float64).

    Introduced in ``lectures/05_point_sets.ipynb``. ``"uniform"``: U(low, high);
    ``"two"``: low or high with probability 1/2 each; ``"normal"``: N(mean, sigma) clipped at 0.02.
    """
    if kind not in RADIUS_DISTRIBUTIONS:
        raise ValueError(f"unknown radius distribution {kind!r}; use one of {RADIUS_DISTRIBUTIONS}")
    if not 0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got low={low}, high={high}")
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    if kind == "uniform":
        return low + (high - low) * u
    if kind == "two":
        return torch.where(u < 0.5, torch.full_like(u, low), torch.full_like(u, high))
    return (mean + sigma * torch.randn(n, generator=generator, dtype=torch.float64)).clamp_min(0.02)


def sample_rings(radii: Tensor, n: int, kind: str = "circle", generator: torch.Generator | None = None) -> Tensor:
    """One point set per radius: ``n`` i.i.d. uniform points on a circle (in the z = 0 plane) or a sphere.

    Introduced in ``lectures/05_point_sets.ipynb``. Returns ``(len(radii), n, 3)`` float32.
    """
    if kind not in ("circle", "sphere"):
        raise ValueError(f"kind must be 'circle' or 'sphere', got {kind!r}")
    b = radii.shape[0]
    if kind == "circle":
        t = 2 * math.pi * torch.rand(b, n, generator=generator, dtype=torch.float64)
        u = torch.stack([t.cos(), t.sin(), torch.zeros_like(t)], -1)
    else:
        g = torch.randn(b, n, 3, generator=generator, dtype=torch.float64)
        u = g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (radii.to(torch.float64)[:, None, None] * u).float()


def mean_shape(distance: str, n_points: int = 128, *, kind: str = "circle", radius: str = "uniform",
               radius_kwargs: dict[str, float] | None = None, steps: int = 300, batch: int = 16,
               lr: float = 0.01, seed: int = 0, emd_method: str = "exact",
               squared: bool | None = None) -> dict[str, Any]:
    """Optimise one point set ``x`` for ``E_s[d(x, s)]`` over rings ``s`` of random radius.

    Introduced in ``lectures/05_point_sets.ipynb``. This is the experiment of Fan et al. (2017,
    Fig. "mean shape"): ``x* = argmin_x E_{s ~ S} d(x, s)``, estimated by Adam with a fresh
    batch of ``batch`` rings (each ``n_points`` i.i.d. points, radius drawn from ``radius``)
    at every step. ``distance``: ``"chamfer"`` (:func:`course_lib.ops.chamfer_distance`, squared
    distances) or ``"emd"`` (:func:`course_lib.ops.emd`, ``emd_method``).  ``squared`` chooses the
    EMD's ground cost: ``False`` (the default for ``"emd"``) is the unsquared distance the course
    trains with and Fan et al. define (a 1-Wasserstein distance); ``True`` the squared distance
    (the 2-Wasserstein barycentre: each point is pulled to the *average* of its matches).  The
    Chamfer distance is always squared here (``squared=False`` with ``"chamfer"`` is an error).
    Returns ``{"points": (n, 3), "loss": [per step], "seconds": float, "squared": bool}``. The start
    is the same for every distance: a small random blob.
    """
    if squared is None:
        squared = distance == "chamfer"
    if distance == "chamfer" and not squared:
        raise ValueError("the course's Chamfer distance is squared: use squared=None or True with 'chamfer'")
    if distance not in ("chamfer", "emd"):
        raise ValueError(f"distance must be 'chamfer' or 'emd', got {distance!r}")
    if n_points < 2 or steps < 1 or batch < 1:
        raise ValueError("need n_points >= 2, steps >= 1 and batch >= 1")
    gen = torch.Generator().manual_seed(seed)
    x0 = 0.05 * torch.randn(n_points, 3, generator=gen)
    if kind == "circle":
        x0[:, 2] = 0
    x = torch.nn.Parameter(x0)
    opt = torch.optim.Adam([x], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.05)
    rk = radius_kwargs or {}
    losses = []
    t0 = time.perf_counter()
    for _ in range(steps):
        r = sample_radii(radius, batch, gen, **rk)
        s = sample_rings(r, n_points, kind, gen)
        xb = x[None].expand(batch, -1, -1)
        if distance == "chamfer":
            loss = _ops.chamfer_distance(xb, s)
        else:
            loss = _ops.emd(xb, s, method=emd_method, squared=bool(squared)).cost
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return {"points": x.detach().clone(), "loss": losses, "seconds": time.perf_counter() - t0,
            "squared": bool(squared)}


def radial_profile(points: Tensor, kind: str = "circle", bins: Sequence[float] | int = 20,
                   r_max: float = 1.2) -> dict[str, Any]:
    """Radii of a point set (in the z = 0 plane for circles, 3D for spheres) and their summary.

    Introduced in ``lectures/05_point_sets.ipynb``. Returns ``{"radii", "mean", "std", "q10",
    "q50", "q90", "hist", "edges", "off_plane"}`` (``off_plane``: mean |z|, circles only).
    """
    p = points.detach().double()
    r = p[..., :2].norm(dim=-1) if kind == "circle" else p.norm(dim=-1)
    hist, edges = np.histogram(r.numpy().ravel(), bins=bins, range=(0.0, r_max))
    q = torch.quantile(r.ravel(), torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    return {"radii": r, "mean": float(r.mean()), "std": float(r.std()), "q10": float(q[0]),
            "q50": float(q[1]), "q90": float(q[2]), "hist": hist, "edges": edges,
            "off_plane": float(p[..., 2].abs().mean()) if kind == "circle" else 0.0}


# ---------------------------------------------------------------------------
# complexity
# ---------------------------------------------------------------------------
def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


_MALLOC_TUNED = False


def _return_freed_memory() -> None:
    """glibc only: serve large blocks by mmap (returned to the OS when freed) and trim the heap.

    Without this, memory freed by an earlier call stays in the process and a later call that
    reuses it does not raise the resident size: its peak would read as 0.
    """
    global _MALLOC_TUNED
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        if not _MALLOC_TUNED:
            libc.mallopt(-3, 1 << 17)  # M_MMAP_THRESHOLD = 128 KiB, fixed (no dynamic raise)
            _MALLOC_TUNED = True
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_memory(fn: Callable[[], Any], device: torch.device | str | None = None) -> tuple[Any, float]:
    """Run ``fn()``; return ``(its result, the peak extra memory it needed in bytes)``.

    Introduced in ``lectures/05_point_sets.ipynb``. On CUDA: ``torch.cuda.max_memory_allocated``
    above the memory in use before the call. On Linux CPUs: the peak resident set size
    (``VmHWM``, reset through ``/proc/self/clear_refs``) above the resident size before the
    call; this counts every allocation (torch, NumPy, SciPy) but also the allocator's
    granularity, so values below ~1 MB are noise. With glibc, large blocks are then served by
    ``mmap`` and the heap is trimmed first, so memory freed by earlier calls is not silently
    reused. Elsewhere: ``nan``.
    """
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda":
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        out = fn()
        torch.cuda.synchronize(dev)
        return out, float(torch.cuda.max_memory_allocated(dev) - base)
    if sys.platform.startswith("linux") and _status_bytes("VmHWM") is not None:
        _return_freed_memory()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            out = fn()
            return out, float("nan")
        base = _status_bytes("VmRSS") or 0
        out = fn()
        peak = _status_bytes("VmHWM") or 0
        return out, float(max(peak - base, 0))
    return fn(), float("nan")


def _distance_call(method: str, x: Tensor, y: Tensor, kwargs: dict[str, Any]) -> Callable[[], float]:
    if method == "chamfer":
        return lambda: float(_ops.chamfer_distance(x, y, **kwargs))
    return lambda: float(_ops.emd(x, y, method=method, **kwargs).cost)


def time_distances(ns: Sequence[int], methods: Sequence[str] = ("chamfer", "exact", "sinkhorn", "auction"),
                   *, repeat: int = 1, seed: int = 0, device: torch.device | str | None = None,
                   time_limit: float = 30.0, solver_kwargs: dict[str, dict[str, Any]] | None = None
                   ) -> list[dict[str, Any]]:
    """Time, peak memory and value of Chamfer and the EMD solvers of :mod:`course_lib.ops` as N grows.

    Introduced in ``lectures/05_point_sets.ipynb``. For each N, two independent samplings of N
    points of the unit sphere (a realistic, nearly matched pair) are compared by every method;
    ``rel_err`` is ``value / exact EMD - 1`` for the EMD approximations (``nan`` for Chamfer,
    which is a different quantity). A method whose previous N took longer than ``time_limit``
    seconds is skipped for larger N (its row has ``seconds = nan``). Each row:
    ``{"N", "method", "seconds", "memory_MB", "value", "rel_err"}``. Each method first runs
    once, untimed, on 16 points, so that one-time costs (loading a compiled kernel, imports)
    are not charged to the smallest N.
    """
    dev = config.get_device(device) if device is not None else torch.device("cpu")
    kw = solver_kwargs or {}
    rows: list[dict[str, Any]] = []
    slow: set[str] = set()
    gen = torch.Generator().manual_seed(seed)
    tiny = sample_rings(torch.ones(2, dtype=torch.float64), 16, "sphere", gen).to(dev)
    for m in methods:  # warm-up
        _distance_call(m, tiny[0], tiny[1], kw.get(m, {}))()
    for n in ns:
        gen = torch.Generator().manual_seed(seed + int(n))
        x = sample_rings(torch.ones(1, dtype=torch.float64), int(n), "sphere", gen)[0].to(dev)
        y = sample_rings(torch.ones(1, dtype=torch.float64), int(n), "sphere", gen)[0].to(dev)
        exact_value = None
        for m in methods:
            if m in slow:
                rows.append({"N": int(n), "method": m, "seconds": float("nan"), "memory_MB": float("nan"),
                             "value": float("nan"), "rel_err": float("nan")})
                continue
            fn = _distance_call(m, x, y, kw.get(m, {}))
            times = []
            mem = float("nan")
            value = float("nan")
            for i in range(max(1, repeat)):
                t0 = time.perf_counter()
                if i == 0:
                    value, mem = peak_memory(fn, dev)
                else:
                    fn()
                times.append(time.perf_counter() - t0)
            sec = float(np.median(times))
            if m == "exact":
                exact_value = value
            rows.append({"N": int(n), "method": m, "seconds": sec, "memory_MB": mem / 2**20, "value": value,
                         "rel_err": float("nan")})
            if sec > time_limit:
                slow.add(m)
        if exact_value is not None:
            for row in rows:
                if row["N"] == int(n) and row["method"] in ("sinkhorn", "auction") and math.isfinite(row["value"]):
                    row["rel_err"] = row["value"] / exact_value - 1.0
    return rows


def complexity_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The numbers lecture 05 states about :func:`time_distances` rows, computed from the rows.

    Introduced in ``lectures/05_point_sets.ipynb``: ``ns``; per method the seconds at the smallest and
    largest N measured, ``growth`` (time ratio of each doubling of N), ``peak_MB`` at the largest N;
    ``auction_speedup`` and ``sinkhorn_slowdown`` (exact seconds / method seconds, and its inverse):
    ``[[N, ratio], ...]``; ``rel_err`` of the approximations at the smallest and largest N.
    """
    out: dict[str, Any] = {"ns": sorted({int(r["N"]) for r in rows}), "methods": {}}
    by = {(r["method"], int(r["N"])): r for r in rows}
    for m in sorted({r["method"] for r in rows}):
        ns = [n for n in out["ns"] if (m, n) in by and math.isfinite(by[m, n]["seconds"])]
        if not ns:
            continue
        sec = [by[m, n]["seconds"] for n in ns]
        out["methods"][m] = {
            "n_min": ns[0], "n_max": ns[-1], "seconds_min_n": sec[0], "seconds_max_n": sec[-1],
            "growth": [b / a if a > 0 else float("nan") for a, b in zip(sec[:-1], sec[1:])],
            "peak_MB": by[m, ns[-1]]["memory_MB"],
            "rel_err_min_n": by[m, ns[0]]["rel_err"], "rel_err_max_n": by[m, ns[-1]]["rel_err"],
        }
    for m, key in (("auction", "auction_speedup"), ("sinkhorn", "sinkhorn_slowdown")):
        ratios = []
        for n in out["ns"]:
            if ("exact", n) in by and (m, n) in by:
                e, x = by["exact", n]["seconds"], by[m, n]["seconds"]
                if math.isfinite(e) and math.isfinite(x) and e > 0 and x > 0:
                    ratios.append([n, e / x if key == "auction_speedup" else x / e])
        out[key] = ratios
    return out


def map_grid_stats(pred: Tensor, n_fc: int, map_size: Sequence[int], reduction: str = "mean"
                   ) -> dict[str, Any]:
    """How far apart grid neighbours of the map branch land, relative to the points' spacing.

    Introduced in ``lectures/05_point_sets.ipynb``: for predictions ``(S, n_fc + H W, 3)``, the
    length of each map-grid edge divided by the median nearest-neighbour distance of the set;
    returns the mean over shapes of its median and 90th percentile, and the median spacing.
    ``reduction="none"``: the per-shape values ``(S,)`` instead (tensors), plus the per-shape
    median edge length ``edge_median`` (for a paired claim against ``spacing_median``).
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    h, w = int(map_size[0]), int(map_size[1])
    if pred.dim() != 3 or pred.shape[1] != n_fc + h * w:
        raise ValueError(f"pred must be (S, n_fc + H * W, 3) = (S, {n_fc + h * w}, 3), got {tuple(pred.shape)}")
    grid = pred[:, n_fc:].reshape(-1, h, w, 3)
    edges = torch.cat([(grid[:, 1:] - grid[:, :-1]).norm(dim=-1).flatten(1),
                       (grid[:, :, 1:] - grid[:, :, :-1]).norm(dim=-1).flatten(1)], 1)
    spacing = nn_distances(pred).median(1).values
    per = {"edge_over_spacing_median": edges.median(1).values / spacing,
           "edge_over_spacing_p90": edges.quantile(0.9, dim=1) / spacing,
           "spacing_median": spacing, "edge_median": edges.median(1).values}
    if reduction == "none":
        return per
    return {k: float(per[k].mean()) for k in ("edge_over_spacing_median", "edge_over_spacing_p90", "spacing_median")}


def surface_distances(data: dict[str, Any], sets: dict[str, Tensor], max_shapes: int | None = None,
                      reduction: str = "mean") -> dict[str, Any]:
    """Mean |SDF| of each point set of ``sets`` (``name -> (S, N, 3)``) to the true surfaces of ``data``.

    Introduced in ``lectures/05_point_sets.ipynb`` (our shapes have exact signed distances:
    :meth:`course_lib.data.Shape.sdf`; a real dataset's rows use the exact distance to the repaired mesh,
    :meth:`course_lib.experiments.mesh_shape.MeshShape.sdf`, whose magnitude needs no sign).  The first
    ``max_shapes`` shapes (default: all); their mean, or with ``reduction="none"`` the per-shape values (lists).
    """
    from .mesh_shape import row_shape

    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    n = len(data["seed"]) if max_shapes is None else min(int(max_shapes), len(data["seed"]))
    acc: dict[str, list[float]] = {k: [] for k in sets}
    for i in range(n):
        shape = row_shape(data, i)
        for k, v in sets.items():
            acc[k].append(float(shape.sdf(v[i]).abs().mean()))
    if reduction == "none":
        return acc
    return {k: float(np.mean(v)) for k, v in acc.items()}


# ---------------------------------------------------------------------------
# GPU smoke hook (benchmarks/gpu_smoke.py)
# ---------------------------------------------------------------------------
def smoke(device: str = "cpu", steps: int = 1, profile: str = "gpu") -> dict[str, float]:
    """A few training steps of the chapter's models on ``device`` with the ``profile``'s sizes.

    Introduced for ``benchmarks/gpu_smoke.py``: the auto-encoder with the Chamfer loss and with
    the EMD loss (``ch05.emd_method``), and the single-view model (Chamfer), each on one
    synthetic batch of ``ch05.batch_size`` shapes; no data generation, no checkpoint.
    """
    from course_lib.experiments.common import smoke_steps, synthetic_clouds

    s = _sizes(profile)
    b, n = int(s["batch_size"]), int(s["n_points"])
    batch = {"input": synthetic_clouds(b, n, seed=0), "target": synthetic_clouds(b, n, seed=1)}
    out: dict[str, float] = {}
    torch.manual_seed(0)
    for kind in ("chamfer", "emd"):
        r = smoke_steps(build_autoencoder(profile), batch, point_loss(kind, s["emd_method"]), steps=steps,
                        device=device, lr=float(s["lr"]))
        out.update({f"ae_{kind}_{k}": v for k, v in r.items()})
    size = int(config.size("data.image_size", profile))
    views = {"input": torch.rand(b, 3, size, size), "target": batch["target"]}
    r = smoke_steps(build_single_view(profile), views, point_loss("chamfer"), steps=steps, device=device,
                    lr=float(s["lr"]))
    out.update({f"svr_{k}": v for k, v in r.items()})
    out["seconds"] = sum(v for k, v in out.items() if k.endswith("_seconds"))
    return out
