"""The experiments of chapter 03 (voxels), shared by the lecture, the lab and the benchmark.

Introduced in ``lectures/03_voxels.ipynb``.

* :func:`voxel_data`: ShapeNet-lite occupancy grids (+ rendered views, + surface samples), stacked;
* :func:`grid_batches`: :class:`~course_lib.experiments.common.Batches` ``{"input", "target", "label"}``
  for :func:`course_lib.train.fit` (with VoxNet's voxel-shift augmentation, :func:`jitter_grids`);
* :func:`train_autoencoder`, :func:`train_single_view`, :func:`train_voxnet`: the chapter's
  models trained (or loaded) with :func:`course_lib.train.train_or_load`;
* VoxNet's harder task: :func:`scan_grids` (a single-view partial scan of a grid, rotated about the up
  axis, with depth noise), :func:`random_scans`, :func:`scan_data`, ``train_voxnet(scan=True)``;
  :func:`classify`, :func:`confusion_matrix`, :func:`per_class_accuracy`;
* :func:`train_multiview`: 3D-R2N2's recurrent multi-view model, trained on a random number of views in
  random order (:func:`multiview_data`, :func:`multiview_batches`) and scored after 1..V views
  (:func:`view_orders`, :func:`predict_views`, :func:`iou_by_views`);
* :func:`iou_sweep`: volumetric IoU of predicted probabilities over a threshold sweep
  (3D-R2N2 reports 0.4); :func:`per_shape_iou` for paired comparisons;
* the protocol's records (issue #32): :func:`select_threshold` and :func:`best_epoch_record`
  (what was chosen on ``val``), :func:`fit_budget` (a trained row's steps, examples, seconds,
  parameters); :func:`cosine_adam` is the optimiser of every dense voxel model of chapters 03 and 04;
* :func:`grid_to_mesh`, :func:`voxel_chamfer`: marching-cubes meshes of predicted grids and their
  Chamfer distance to the true surface in the convention of chapters 05/06
  (:data:`course_lib.experiments.surfaces.CD_CONVENTION`);
* :func:`cost_curve`, :func:`fit_exponent`, :func:`surface_fraction`: the curse of
  dimensionality measured -- parameters, activations, peak memory and forward+backward time of
  the same encoder-decoder as the resolution grows.

Splits are those of :class:`course_lib.data.ShapeNetLite` (disjoint seeds for train, val, test):
"test" shapes are never seen in training.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib import config
from course_lib.experiments.common import real_dataset, require_exact_shapes

__all__ = [
    "voxel_data",
    "jitter_grids",
    "flip_grids",
    "grid_batches",
    "occupied_fraction",
    "pos_weight_for",
    "start_at_prior",
    "voxel_loss",
    "classification_loss",
    "checkpoint_path",
    "set_bn_momentum",
    "build_autoencoder",
    "build_single_view",
    "build_voxnet",
    "train_autoencoder",
    "train_single_view",
    "train_voxnet",
    "scan_grids",
    "scan_settings",
    "random_scans",
    "SCAN_SEEDS",
    "scan_seed",
    "scan_data",
    "confusion_matrix",
    "per_class_accuracy",
    "classify",
    "multiview_pool",
    "multiview_data",
    "view_orders",
    "ordered_views",
    "multiview_batches",
    "multiview_val_loss",
    "train_multiview",
    "predict_views",
    "iou_by_views",
    "predict",
    "iou_sweep",
    "best_threshold",
    "per_shape_iou",
    "select_threshold",
    "best_epoch_record",
    "fit_budget",
    "cosine_adam",
    "accuracy",
    "evaluate_reconstruction",
    "representation_floor",
    "resample_grid",
    "resolution_stats",
    "grid_to_mesh",
    "voxel_chamfer",
    "surface_fraction",
    "activation_bytes",
    "cost_curve",
    "fit_exponent",
    "grid_bytes",
    "smoke",
]


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
def voxel_data(split: str, profile: str | None = None, *, resolution: int | None = None,
               categories: Sequence[str] | None = None, per_category: int | None = None,
               image: bool = False, surface: bool = False, image_size: int | None = None,
               extra_views: int = 0, dataset: str | None = None, root: str | None = None) -> dict[str, Any]:
    """ShapeNet-lite grids of ``split`` stacked: ``{"voxels": (S, R, R, R) float 0/1, "label": (S,), ...}``.

    Introduced in ``lectures/03_voxels.ipynb``.  Sizes default to the ``ch03.*`` keys of
    ``profile`` (``resolution``, ``categories``, ``<split>_per_category``, ``image_size``,
    ``n_target``).  ``image=True`` adds the seeded random view ``rgb`` ``(S, 3, H, W)`` and
    ``silhouette``; ``surface=True`` adds ``target_points`` ``(S, n_target, 3)`` (exact surface
    samples, for the Chamfer comparison). ``label`` indexes ``categories`` (this subset, in
    ShapeNet-lite's order). ``extra_views = k > 0`` adds ``views`` ``(S, 1 + k, 3, H, W)``: the
    random view (index 0, the same as ``rgb``) and ``k`` more at azimuths ``17 + 360 i / k`` degrees,
    elevation 25 (training data for the single-view model: 3D-R2N2 trains on 24 views per shape).
    Loaded by :func:`course_lib.experiments.common.load_split` (cached on disk).  ``dataset`` / ``root``
    (or ``COURSE_DATASET`` and ``COURSE_MODELNET_DIR`` / ``COURSE_SHAPENET_DIR``) read a real dataset's meshes
    instead (:class:`course_lib.data.real_split.RealShapes`: grids by winding number, views rendered with
    ShapeNet-lite's cameras); its rows also carry ``path``, ``manifest`` (the skipped meshes) and
    ``dataset`` (its name), which :func:`checkpoint_path` puts in the checkpoint's name.
    """
    from course_lib.data.real_split import dataset_name

    from .common import load_split

    name = dataset_name(dataset)
    where: dict[str, Any] = {} if name == "shapenet-lite" else {"dataset": name, "root": root}

    s = config.sizes(profile, prefix="ch03.")
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    reps = ["voxels"] + (["image"] if image else []) + (["target_points"] if surface else [])
    out = load_split(split, tuple(reps), categories=s["categories"] if categories is None else categories,
                     shapes_per_category=per_category or s[f"{split}_per_category"], profile=profile,
                     voxel_resolution=resolution or s["resolution"], image_size=image_size or s["image_size"],
                     n_target=s["n_target"], **where)
    if extra_views:
        if not image:
            raise ValueError("extra_views needs image=True")
        views = [out["rgb"]]
        for i in range(int(extra_views)):
            more = load_split(split, ("image",), categories=s["categories"] if categories is None else categories,
                              shapes_per_category=per_category or s[f"{split}_per_category"], profile=profile,
                              image_size=image_size or s["image_size"],
                              view=(17.0 + 360.0 * i / int(extra_views), 25.0, 2.6), **where)
            views.append(more["rgb"])
        out["views"] = torch.stack(views, dim=1)
    cats = tuple(out["categories"])
    # labels index this subset's categories (ShapeNet-lite's index all of CATEGORIES)
    out["label"] = torch.tensor([cats.index(c) for c in out["category"]], dtype=torch.long)
    keep = {"voxels", "rgb", "views", "silhouette", "target_points", "label", "seed", "category", "categories"}
    if where:  # a real dataset: which meshes (and which were skipped), and the dataset's name
        keep |= {"path", "manifest"}
        out["dataset"] = name
        keep.add("dataset")
    return {k: v for k, v in out.items() if k in keep}


def jitter_grids(grids: Tensor, jitter: int, generator: torch.Generator | None = None) -> Tensor:
    """Shift each grid of ``(B, R, R, R)`` by a random integer number of voxels in ``[-jitter, jitter]`` per axis.

    Introduced in ``lectures/03_voxels.ipynb``.  VoxNet's translation augmentation (the paper
    shifts by up to 2 voxels); a circular shift (``torch.roll``), harmless for shapes that do
    not touch the border.
    """
    if jitter < 0:
        raise ValueError(f"jitter must be >= 0, got {jitter}")
    if jitter == 0:
        return grids
    shifts = torch.randint(-jitter, jitter + 1, (grids.shape[0], 3), generator=generator).tolist()
    return torch.stack([torch.roll(g, tuple(sh), dims=(0, 1, 2)) for g, sh in zip(grids, shifts)])


def flip_grids(grids: Tensor, probability: float, axes: Sequence[int] = (0, 2),
               generator: torch.Generator | None = None) -> Tensor:
    """Mirror each grid of ``(B, R, R, R)`` along each of ``axes`` with ``probability`` (independently).

    Introduced in ``lectures/03_voxels.ipynb``.  VoxNet's flips (``jitter_chunk`` of the official
    ``scripts/train.py``: each of the two horizontal axes flipped with probability 0.2; the official code
    flips a whole chunk of grids at once, here each grid draws its own). ShapeNet-lite's up axis is ``y``
    (grid axis 1), so the default ``axes`` are the horizontal ``x`` and ``z``.
    """
    if not 0.0 <= float(probability) <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {probability}")
    if any(a not in (0, 1, 2) for a in axes):
        raise ValueError(f"axes must be grid axes in 0..2, got {tuple(axes)}")
    if probability == 0 or not axes:
        return grids
    out = grids.clone()
    for a in axes:
        pick = (torch.rand(grids.shape[0], generator=generator) < float(probability)).to(grids.device)
        if bool(pick.any()):
            out[pick] = out[pick].flip(a + 1)
    return out


def grid_batches(data: dict[str, Any], task: str, batch_size: int, *, seed: int = 0, shuffle: bool = True,
                 jitter: int = 0, flip: float = 0.0, scan: dict[str, float] | None = None) -> Any:
    """:class:`course_lib.experiments.common.Batches` of ``data`` for one task of the chapter.

    Introduced in ``lectures/03_voxels.ipynb``.  ``task`` ``"ae"``: ``{"input": voxels, "target":
    the same voxels}``; ``"svr"``: ``{"input": rgb, "target": voxels}`` (with ``views`` in the data: one
    view drawn at random per shape and batch); ``"voxnet"``:
    ``{"input": voxels, "label"}``. ``jitter`` shifts the input grids (:func:`jitter_grids`; the
    auto-encoder's target moves with its input); ``flip`` mirrors them along the horizontal axes with that
    probability per axis (:func:`flip_grids`, VoxNet's augmentation). ``scan`` (``"voxnet"`` only;
    :func:`scan_settings`' ``{"noise", "max_elevation", "dropout"}``) replaces each full grid by a partial scan from a
    fresh random camera at every batch (:func:`random_scans`), before the flips and shifts.
    """
    from .common import Batches

    if task == "ae":
        keys, rename = ["voxels"], {"voxels": "input"}
    elif task == "svr" and "views" in data:
        keys, rename = ["views", "voxels"], {"views": "input", "voxels": "target"}
    elif task == "svr":
        keys, rename = ["rgb", "voxels"], {"rgb": "input", "voxels": "target"}
    elif task == "voxnet":
        keys, rename = ["voxels", "label"], {"voxels": "input"}
    else:
        raise ValueError(f"task must be 'ae', 'svr' or 'voxnet', got {task!r}")
    if (jitter or flip) and task == "svr":
        raise ValueError("jitter and flip move input grids; the single-view task has image inputs")
    if scan is not None and task != "voxnet":
        raise ValueError("scan makes partial scans of VoxNet's input grids; it needs task='voxnet'")
    sc = None if scan is None else (float(scan["noise"]), float(scan["max_elevation"]), float(scan.get("dropout", 0.0)))
    j, fp = int(jitter), float(flip)
    autoencode = task == "ae"
    pick_view = task == "svr" and "views" in data

    def transform(batch: dict[str, Any], generator: torch.Generator) -> dict[str, Any]:
        if pick_view:  # one random view of each shape
            v = batch["input"]
            which = torch.randint(0, v.shape[1], (v.shape[0],), generator=generator)
            batch["input"] = v[torch.arange(v.shape[0]), which.to(v.device)]
        if sc is not None:  # a fresh random camera per grid and batch
            batch["input"] = random_scans(batch["input"], sc[0], sc[1], generator, sc[2])[0]
        if fp:
            batch["input"] = flip_grids(batch["input"], fp, generator=generator)
        if j:
            batch["input"] = jitter_grids(batch["input"], j, generator)
        if autoencode:
            batch["target"] = batch["input"]
        return batch

    return Batches(data, batch_size, keys=keys, rename=rename, shuffle=shuffle, seed=seed, transform=transform)


def occupied_fraction(grids: Tensor) -> float:
    """The fraction of full voxels over a stack of grids (the class balance of the BCE).

    Introduced in ``lectures/03_voxels.ipynb``.
    """
    if not isinstance(grids, Tensor) or grids.numel() == 0:
        raise ValueError("occupied_fraction needs a non-empty tensor of grids")
    return float((grids > 0.5).double().mean())


def pos_weight_for(grids: Tensor, power: float | None = None, profile: str | None = None) -> float:
    """The positive weight of :func:`course_lib.models.voxels.voxel_bce` for these training grids.

    Introduced in ``lectures/03_voxels.ipynb``.  ``((1 - f) / f) ** power`` with ``f`` the
    occupied fraction and ``power`` the ``ch03.pos_weight_power`` of the profile (0.5: halfway,
    on a log scale, between the plain BCE and a fully balanced one).
    """
    from course_lib.models.voxels import balanced_pos_weight

    p = config.size("ch03.pos_weight_power", profile) if power is None else power
    return balanced_pos_weight(occupied_fraction(grids), power=p)


def start_at_prior(model: torch.nn.Module, grids: Tensor, pos_weight: float | None = None) -> torch.nn.Module:
    """Initialise the model's :class:`~course_lib.models.voxels.VoxelDecoder` read-out at the training prior.

    Introduced in ``lectures/03_voxels.ipynb``.  Every voxel starts at the probability the
    (weighted) BCE would give a voxel that is full with the occupied fraction ``f`` of ``grids``:
    ``p* = w f / (w f + 1 - f)`` (:func:`course_lib.models.voxels.weighted_optimum`), via
    :meth:`~course_lib.models.voxels.VoxelDecoder.set_prior`. Returns ``model``.
    """
    from course_lib.models.voxels import VoxelDecoder, weighted_optimum

    decoders = [m for m in model.modules() if isinstance(m, VoxelDecoder)]
    if not decoders:
        raise TypeError(f"{type(model).__name__} has no VoxelDecoder to initialise")
    p = float(weighted_optimum(occupied_fraction(grids), 1.0 if pos_weight is None else float(pos_weight)))
    for d in decoders:
        d.set_prior(p)
    return model


def voxel_loss(pos_weight: float | None) -> Callable[[Any, dict], dict]:
    """``loss_fn(model, batch)`` for :func:`course_lib.train.fit`: weighted BCE, plus the batch IoU at 0.5.

    Introduced in ``lectures/03_voxels.ipynb``.
    """
    from course_lib.metrics import volumetric_iou
    from course_lib.models.voxels import voxel_bce

    def loss_fn(model: Any, batch: dict) -> dict:
        logits = model(batch["input"])
        target = batch["target"]
        loss = voxel_bce(logits, target, pos_weight)
        with torch.no_grad():
            iou = volumetric_iou(logits > 0, target > 0.5, batched=True)
        return {"loss": loss, "iou": iou}

    return loss_fn


def classification_loss(model: Any, batch: dict) -> dict:
    """Cross-entropy of VoxNet's logits against ``batch["label"]``, plus the batch accuracy.

    Introduced in ``lectures/03_voxels.ipynb``.
    """
    logits = model(batch["input"])
    loss = F.cross_entropy(logits, batch["label"])
    return {"loss": loss, "acc": (logits.argmax(1) == batch["label"]).double().mean()}


# ---------------------------------------------------------------------------
# models and training
# ---------------------------------------------------------------------------
def checkpoint_path(task: str, profile: str | None = None, data: dict[str, Any] | None = None) -> Path:
    """Where the trained chapter-03 model of ``task`` (``"ae"``, ``"svr"``, ``"voxnet"``, ``"mvr"``) is kept.

    :func:`course_lib.train.checkpoint_path` named ``ch03_<task>``, with the data configuration
    (categories, shapes, resolution, image size) in the spec, so that a variant never loads another's weights.
    A real dataset's rows (``data`` from :func:`voxel_data` with ``dataset=``, or ``COURSE_DATASET``) put the
    dataset's name in the file name (``ch03_<task>-<dataset>-<profile>-<hash>.pt``) and in the spec, so that they
    never share a checkpoint with ShapeNet-lite's.
    """
    from course_lib.data.real_split import dataset_name
    from course_lib.train import checkpoint_path as _path

    s = config.sizes(profile, prefix="ch03.")
    spec: dict[str, Any] = {"categories": s["categories"], "train_per_category": s["train_per_category"],
                            "resolution": s["resolution"], "image_size": s["image_size"], "init": "prior-v1"}
    if data is not None:
        spec["views"] = int(data["views"].shape[1]) if "views" in data else 1
        spec["shapes"] = int(data["voxels"].shape[0])
        spec["data_resolution"] = int(data["voxels"].shape[-1])
        spec["seeds"] = str(torch.as_tensor(data["seed"]).sum().item())
    real = real_dataset(data)
    name = f"ch03_{task}"
    if real is not None:
        spec["dataset"] = real
        if real != dataset_name(None):  # train.checkpoint_path adds COURSE_DATASET's name itself
            name = f"{name}-{real}"
    return _path(name, spec, profile)


def set_bn_momentum(model: torch.nn.Module, momentum: float) -> torch.nn.Module:
    """Set the running-average momentum of every BatchNorm of ``model`` (returns it).

    Introduced in ``lectures/03_voxels.ipynb``.  Short CPU runs take a few hundred steps; with
    PyTorch's default 0.1 the eval-mode statistics lag behind the weights and eval-mode
    predictions are much worse than training-mode ones. ``ch03.bn_momentum`` sets it.
    """
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.momentum = float(momentum)
    return model


def build_autoencoder(profile: str | None = None, resolution: int | None = None) -> torch.nn.Module:
    """The chapter's voxel auto-encoder with the ``ch03.*`` sizes of ``profile``.

    Introduced in ``lectures/03_voxels.ipynb``.
    """
    from course_lib.models.voxels import VoxelAutoEncoder

    s = config.sizes(profile, prefix="ch03.")
    model = VoxelAutoEncoder(resolution or s["resolution"], s["latent_dim"], s["encoder_channels"],
                             s["decoder_channels"])
    return set_bn_momentum(model, s["bn_momentum"])


def build_single_view(profile: str | None = None, resolution: int | None = None,
                      multi_view: bool = False) -> torch.nn.Module:
    """The chapter's image -> voxels model (ResNet encoder -> VoxelDecoder) with the ``ch03.*`` sizes.

    Introduced in ``lectures/03_voxels.ipynb``.
    """
    from course_lib.models.voxels import voxel_single_view

    s = config.sizes(profile, prefix="ch03.")
    model = voxel_single_view(resolution or s["resolution"], s["latent_dim"], s["resnet_width"],
                              decoder_channels=s["decoder_channels"], multi_view=multi_view)
    return set_bn_momentum(model, s["bn_momentum"])


def build_voxnet(n_classes: int, profile: str | None = None, resolution: int | None = None) -> torch.nn.Module:
    """VoxNet with the paper's layout at the ``ch03.resolution`` of ``profile``.

    Introduced in ``lectures/03_voxels.ipynb``.
    """
    from course_lib.models.voxels import VoxNet

    return VoxNet(n_classes, resolution or config.size("ch03.resolution", profile))


def cosine_adam(model: torch.nn.Module, lr: float, epochs: int) -> tuple[torch.optim.Optimizer, Any]:
    """Adam at ``lr`` with a cosine decay of the rate to 0 over ``epochs`` (stepped once per epoch).

    Introduced in ``lectures/03_voxels.ipynb``: the schedule of every dense voxel model of chapter 03,
    and of both decoders of chapter 04 (so that their comparison differs in the decoder, not in the
    optimiser). Returns ``(optimizer, scheduler)`` for :func:`course_lib.train.fit`.
    """
    if float(lr) <= 0 or int(epochs) < 1:
        raise ValueError(f"cosine_adam needs lr > 0 and epochs >= 1, got lr={lr}, epochs={epochs}")
    opt = torch.optim.Adam(model.parameters(), lr=float(lr))
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, int(epochs)))


def fit_budget(model: torch.nn.Module, history: Any, n_examples: int, batch_size: int,
               **extra: Any) -> dict[str, Any]:
    """The budget of one trained row (:func:`course_lib.experiments.protocol.budget`).

    Introduced in ``lectures/03_voxels.ipynb``.  One epoch of :class:`~course_lib.experiments.common.Batches`
    is ``ceil(n_examples / batch_size)`` optimiser steps over ``n_examples`` training examples;
    ``history`` (a :class:`course_lib.train.History`) gives the epochs run and the wall time, the
    model its trainable parameters. ``extra`` adds notes (``epochs`` is always added).
    """
    from .protocol import budget

    n, b = int(n_examples), int(batch_size)
    if n < 1 or b < 1:
        raise ValueError(f"fit_budget needs n_examples >= 1 and batch_size >= 1, got {n} and {b}")
    epochs = int(history.epochs_run)
    return budget(steps=epochs * math.ceil(n / b), examples=epochs * n, seconds=float(history.wall_time),
                  params=sum(p.numel() for p in model.parameters() if p.requires_grad), epochs=epochs, **extra)


def best_epoch_record(id: str, history: Any, metric: str = "val_loss") -> dict[str, Any]:
    """The selection record of the epoch :func:`course_lib.train.fit` kept: the best ``metric`` on ``val``.

    Introduced in ``lectures/03_voxels.ipynb``.  ``fit`` restores the weights of the epoch with the
    lowest validation loss; this writes that choice down (every epoch's validation loss, the chosen
    one) with :func:`course_lib.experiments.protocol.selection_record`. Raises when the history has
    no validation (a choice on training data is not one of this chapter's).
    """
    from .protocol import selection_record

    if not getattr(history, "val", None):
        raise ValueError(f"{id}: the history has no validation metrics, so no epoch was chosen on val")
    scores = {f"epoch {i + 1}": float(v[metric]) for i, v in enumerate(history.val)}
    chosen, rec = selection_record(id, scores, metric=f"{metric} on val", higher_is_better=False)
    best = int(getattr(history, "best_epoch", -1))
    if best >= 0 and chosen != f"epoch {best + 1}":
        raise RuntimeError(f"{id}: the history kept epoch {best + 1} but its validation losses point at {chosen}")
    return rec


def _fit(model: torch.nn.Module, task: str, profile: str, data: dict[str, Any], loader: Any, val: Any,
         loss_fn: Callable, epochs: int, retrain: bool, progress: bool, path: Any, **fit_kwargs: Any) -> Any:
    from course_lib.train import train_or_load

    s = config.sizes(profile, prefix="ch03.")
    kw: dict[str, Any] = dict(loss_fn=loss_fn, epochs=epochs, lr=s["lr"], seed=s["seed"], progress=progress,
                              val_loader=val)
    kw.update(fit_kwargs)
    if "optimizer" not in kw:  # Adam with a cosine decay of the learning rate to 0 over the epochs
        kw["optimizer"], sched = cosine_adam(model, kw["lr"], kw["epochs"])
        kw.setdefault("scheduler", sched)
    history = train_or_load(model, path or checkpoint_path(task, profile, data), retrain=retrain,
                            train_loader=loader, **kw)
    model.eval()
    return history


def train_autoencoder(profile: str | None = None, *, data: dict[str, Any] | None = None,
                      val_data: dict[str, Any] | None = None, retrain: bool = False, progress: bool = True,
                      path: str | os.PathLike | None = None, dataset: str | None = None, root: str | None = None,
                      **fit_kwargs: Any) -> tuple[torch.nn.Module, Any]:
    """Train (or load) the voxel auto-encoder with the weighted BCE; return ``(model, history)``.

    Introduced in ``lectures/03_voxels.ipynb``.  All three recipes of the chapter use Adam at
    ``ch03.lr`` with a cosine decay to 0 over the epochs, and keep the weights of the epoch with
    the best validation loss.  Sizes ``ch03.*``; the positive weight comes
    from the training grids (:func:`pos_weight_for`) and is kept as the model's attribute
    ``pos_weight``; the decoder starts at the prior probability (:func:`start_at_prior`).  ``dataset`` /
    ``root`` (or ``COURSE_DATASET``) train on a real dataset when ``data`` is not given (:func:`voxel_data`),
    under that dataset's own checkpoint name (:func:`checkpoint_path`); the same holds for
    :func:`train_single_view` (views rendered from the meshes) and :func:`train_voxnet`.
    """
    profile = profile or config.get_profile()
    s = config.sizes(profile, prefix="ch03.")
    config.seed_everything(s["seed"])
    model = build_autoencoder(profile)
    data = data or voxel_data("train", profile, dataset=dataset, root=root)
    val_data = val_data or voxel_data("val", profile, dataset=dataset, root=root)
    w = pos_weight_for(data["voxels"], profile=profile)
    model.pos_weight = w  # type: ignore[assignment]
    start_at_prior(model, data["voxels"], w)
    loader = grid_batches(data, "ae", s["batch_size"], seed=s["seed"])
    val = grid_batches(val_data, "ae", s["batch_size"], shuffle=False)
    return model, _fit(model, "ae", profile, data, loader, val, voxel_loss(w), s["ae_epochs"], retrain, progress, path,
                       **fit_kwargs)


def train_single_view(profile: str | None = None, *, data: dict[str, Any] | None = None,
                      val_data: dict[str, Any] | None = None, retrain: bool = False, progress: bool = True,
                      path: str | os.PathLike | None = None, dataset: str | None = None, root: str | None = None,
                      **fit_kwargs: Any) -> tuple[torch.nn.Module, Any]:
    """Train (or load) the single-view model (one RGB view -> 32^3 logits); return ``(model, history)``.

    Introduced in ``lectures/03_voxels.ipynb``.
    """
    profile = profile or config.get_profile()
    s = config.sizes(profile, prefix="ch03.")
    config.seed_everything(s["seed"])
    model = build_single_view(profile)
    data = data or voxel_data("train", profile, image=True, extra_views=s["train_views"], dataset=dataset, root=root)
    val_data = val_data or voxel_data("val", profile, image=True, dataset=dataset, root=root)
    w = pos_weight_for(data["voxels"], profile=profile)
    model.pos_weight = w  # type: ignore[assignment]
    start_at_prior(model, data["voxels"], w)
    loader = grid_batches(data, "svr", s["batch_size"], seed=s["seed"])
    val = grid_batches(val_data, "svr", s["batch_size"], shuffle=False)
    return model, _fit(model, "svr", profile, data, loader, val, voxel_loss(w), s["svr_epochs"], retrain, progress, path,
                       **fit_kwargs)


def train_voxnet(profile: str | None = None, *, data: dict[str, Any] | None = None,
                 val_data: dict[str, Any] | None = None, retrain: bool = False, progress: bool = True,
                 path: str | os.PathLike | None = None, jitter: int = 1, flip: float = 0.2,
                 dataset: str | None = None, root: str | None = None, scan: bool = False,
                 **fit_kwargs: Any) -> tuple[torch.nn.Module, Any]:
    """Train (or load) VoxNet on the ``ch03.categories`` (cross-entropy, ``jitter``-voxel shifts, flips).

    Introduced in ``lectures/03_voxels.ipynb``.  Adam instead of the paper's SGD (fewer epochs
    on a CPU); the official code also augments with 12 rotations about the up axis, which our
    canonically oriented ShapeNet-lite shapes do not need, shifts of up to 2 voxels (here ``jitter``)
    and flips of the two horizontal axes with probability 0.2 each (here ``flip``, :func:`flip_grids`).

    ``scan=True`` trains the harder task: partial single-view scans (:func:`scan_grids`, the sensor of
    :func:`scan_settings`), a fresh random camera (heading, elevation, noise) for every training grid at
    every batch, and fixed scans of the validation shapes (:func:`scan_data` with :data:`SCAN_SEEDS`'s
    ``"val"`` seed) for the choice of the epoch. ``data`` / ``val_data`` hold the full grids either way. Its
    checkpoint is ``ch03_voxnet_scan`` (the sensor settings in its spec), the same epochs and recipe.
    """
    profile = profile or config.get_profile()
    s = config.sizes(profile, prefix="ch03.")
    config.seed_everything(s["seed"])
    data = data or voxel_data("train", profile, dataset=dataset, root=root)
    val_data = val_data or voxel_data("val", profile, dataset=dataset, root=root)
    model = build_voxnet(len(data["categories"]), profile)
    sensor = scan_settings(profile) if scan else None
    loader = grid_batches(data, "voxnet", s["batch_size"], seed=s["seed"], jitter=jitter, flip=flip, scan=sensor)
    if scan:
        val_data = scan_data(val_data, scan_seed("val", profile), profile)
        fit_kwargs.setdefault("spec", {"scan": sensor, "val_scan_seed": scan_seed("val", profile)})
        path = path or checkpoint_path("voxnet_scan", profile, data)
    val = grid_batches(val_data, "voxnet", s["batch_size"], shuffle=False)
    return model, _fit(model, "voxnet", profile, data, loader, val, classification_loss, s["voxnet_epochs"], retrain,
                       progress, path, **fit_kwargs)


# ---------------------------------------------------------------------------
# partial scans: VoxNet's harder task
# ---------------------------------------------------------------------------
def scan_grids(grids: Tensor, angles: Tensor, elevations: Tensor | None = None, noise: float = 0.0,
               generator: torch.Generator | None = None, dropout: float = 0.0) -> Tensor:
    """Single-view partial scans of occupancy grids: ``(B, R, R, R)`` -> ``(B, R, R, R)`` float 0/1.

    Introduced in ``lectures/03_voxels.ipynb``.  What a depth sensor sees of each shape, voxelised
    again, in the sensor's frame (VoxNet's LiDAR setting: one side of the object, at an unknown heading):

    1. every full cell's centre ``p`` (voxel units, origin at the grid's centre) is rotated by
       ``angles[b]`` (radians) about the up axis ``y`` (grid axis 1): ``x' = x cos + z sin``,
       ``z' = -x sin + z cos``;
    2. an orthographic camera on the ``+z`` side, raised by ``elevations[b]`` (radians, default 0),
       looks along ``-u`` with ``u = (0, sin e, cos e)``; its pixels are one voxel wide, on the axes
       ``(1, 0, 0)`` and ``(0, cos e, -sin e)``; in each pixel only the cell nearest the camera (largest
       ``p'.u``, ties kept) is seen;
    3. each seen point is lost with probability ``dropout`` (missing returns: dark, shiny or grazing
       surfaces), and moves along the ray by Gaussian depth noise of standard deviation ``noise`` voxels;
    4. the seen points are voxelised again (``floor(p' + R / 2)``); points that leave the box are dropped.

    With ``angles = 0``, ``elevations = 0`` and no noise, a grid seen from ``+z`` keeps, in each column
    ``(i, j)``, exactly its full cell of largest ``k``.  ``generator`` draws the noise and the dropout.
    """
    if not isinstance(grids, Tensor) or grids.dim() != 4 or not (grids.shape[1] == grids.shape[2] == grids.shape[3]):
        raise ValueError(f"scan_grids expects grids (B, R, R, R), got {getattr(grids, 'shape', type(grids).__name__)}")
    B, R = int(grids.shape[0]), int(grids.shape[-1])
    angles = torch.as_tensor(angles, dtype=torch.float64).reshape(-1)
    elev = torch.zeros(B, dtype=torch.float64) if elevations is None else \
        torch.as_tensor(elevations, dtype=torch.float64).reshape(-1)
    if angles.numel() != B or elev.numel() != B:
        raise ValueError(f"scan_grids needs one angle and one elevation per grid: {B} grids, "
                         f"{angles.numel()} angles, {elev.numel()} elevations")
    if not bool(torch.isfinite(angles).all()) or not bool(torch.isfinite(elev).all()):
        raise ValueError("scan_grids: angles and elevations must be finite")
    if bool((elev.abs() >= math.pi / 2).any()):
        raise ValueError("scan_grids: elevations must lie in (-pi/2, pi/2) (a camera straight above sees no side)")
    if not float(noise) >= 0.0 or not math.isfinite(float(noise)):
        raise ValueError(f"scan_grids: noise must be a finite number >= 0 (voxels), got {noise}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"scan_grids: dropout must be a probability in [0, 1), got {dropout}")
    out = torch.zeros(B, R, R, R, dtype=torch.float32)
    idx = (grids.detach().cpu() > 0.5).nonzero()  # (M, 4): grid, i, j, k
    if idx.shape[0] == 0:
        return out.to(grids.device)
    b = idx[:, 0]
    p = idx[:, 1:].double() + 0.5 - R / 2.0
    c, s = torch.cos(angles)[b], torch.sin(angles)[b]
    x, y, z = p[:, 0] * c + p[:, 2] * s, p[:, 1], -p[:, 0] * s + p[:, 2] * c
    ce, se = torch.cos(elev)[b], torch.sin(elev)[b]
    h = y * se + z * ce                                 # along u, towards the camera
    u = torch.floor(x).long() + R                        # pixel column (axis (1, 0, 0))
    v = torch.floor(y * ce - z * se).long() + R          # pixel row (axis (0, cos e, -sin e))
    W = 2 * R + 1                                        # |coordinates| <= sqrt(3) R / 2 < R
    key = (b * W + u) * W + v
    best = torch.full((B * W * W,), -math.inf, dtype=torch.float64).scatter_reduce(0, key, h, reduce="amax")
    seen = h >= best[key] - 1e-9
    if dropout > 0:
        seen &= torch.rand(seen.shape[0], generator=generator, dtype=torch.float64) >= float(dropout)
    pts = torch.stack([x, y, z], dim=1)[seen]
    bs = b[seen]
    if noise > 0:
        d = torch.randn(pts.shape[0], generator=generator, dtype=torch.float64) * float(noise)
        ray = torch.stack([torch.zeros_like(se), se, ce], dim=1)[seen]
        pts = pts + d[:, None] * ray
    cell = torch.floor(pts + R / 2.0).long()
    inside = ((cell >= 0) & (cell < R)).all(dim=1)
    cell, bs = cell[inside], bs[inside]
    out[bs, cell[:, 0], cell[:, 1], cell[:, 2]] = 1.0
    return out.to(grids.device)


def scan_settings(profile: str | None = None) -> dict[str, float]:
    """The partial-scan sensor of ``profile``: ``{"noise": voxels, "max_elevation": degrees, "dropout": fraction}``
    (``ch03.scan_*``).

    Introduced in ``lectures/03_voxels.ipynb``.
    """
    s = config.sizes(profile, prefix="ch03.")
    return {"noise": float(s["scan_noise"]), "max_elevation": float(s["scan_max_elevation"]),
            "dropout": float(s["scan_dropout"])}


def random_scans(grids: Tensor, noise: float, max_elevation: float, generator: torch.Generator | None = None,
                 dropout: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """Scan each grid from its own random camera: ``(scans, angles, elevations)``.

    Introduced in ``lectures/03_voxels.ipynb``.  The heading is uniform in ``[0, 2 pi)``, the elevation uniform
    in ``[0, max_elevation]`` degrees, the depth noise ``noise`` voxels, a fraction ``dropout`` of the returns
    lost (:func:`scan_grids`); everything is drawn from ``generator``, so a seed fixes the scans.
    """
    if not 0.0 <= float(max_elevation) < 90.0:
        raise ValueError(f"max_elevation must be in [0, 90) degrees, got {max_elevation}")
    B = int(grids.shape[0]) if isinstance(grids, Tensor) and grids.dim() >= 1 else 0
    angles = torch.rand(B, generator=generator, dtype=torch.float64) * 2 * math.pi
    elev = torch.rand(B, generator=generator, dtype=torch.float64) * math.radians(float(max_elevation))
    return scan_grids(grids, angles, elev, noise, generator, dropout), angles, elev


SCAN_SEEDS = {"val": 1031, "test": 2063}
"""Offsets added to ``ch03.seed`` for the fixed cameras of the validation and test scans (:func:`scan_seed`)."""


def scan_seed(split: str, profile: str | None = None) -> int:
    """The seed of ``split``'s fixed partial scans: ``ch03.seed + SCAN_SEEDS[split]`` (``"val"`` or ``"test"``).

    Introduced in ``lectures/03_voxels.ipynb``.
    """
    if split not in SCAN_SEEDS:
        raise ValueError(f"fixed scans exist for {sorted(SCAN_SEEDS)}, got {split!r} (training scans are drawn afresh)")
    return int(config.size("ch03.seed", profile)) + SCAN_SEEDS[split]


def scan_data(data: dict[str, Any], seed: int, profile: str | None = None) -> dict[str, Any]:
    """A copy of :func:`voxel_data`'s ``data`` whose ``voxels`` are fixed partial scans (one seeded camera per shape).

    Introduced in ``lectures/03_voxels.ipynb``: the validation and test inputs of the partial-scan task.  The
    full grids stay as ``full``; ``scan_angle`` / ``scan_elevation`` (radians) say where each camera was.  The
    same ``seed`` gives the same scans.
    """
    st = scan_settings(profile)
    g = torch.Generator().manual_seed(int(seed))
    scans, angles, elev = random_scans(data["voxels"], st["noise"], st["max_elevation"], g, st["dropout"])
    return {**data, "voxels": scans, "full": data["voxels"], "scan_angle": angles, "scan_elevation": elev}


def confusion_matrix(predicted: Any, labels: Any, n_classes: int) -> np.ndarray:
    """``(n_classes, n_classes)`` counts: row = true class, column = predicted class.

    Introduced in ``lectures/03_voxels.ipynb``.
    """
    p = np.asarray(torch.as_tensor(predicted).cpu()).reshape(-1).astype(np.int64)
    t = np.asarray(torch.as_tensor(labels).cpu()).reshape(-1).astype(np.int64)
    if p.shape != t.shape:
        raise ValueError(f"confusion_matrix: {p.size} predictions but {t.size} labels")
    n = int(n_classes)
    if n < 1 or (p.size and (min(p.min(), t.min()) < 0 or max(p.max(), t.max()) >= n)):
        raise ValueError(f"confusion_matrix: labels must lie in 0..{n - 1}")
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n)


def per_class_accuracy(confusion: Any) -> np.ndarray:
    """Recall of each class, ``diag / row sums`` of a :func:`confusion_matrix` (nan for a class with no shape).

    Introduced in ``lectures/03_voxels.ipynb``.
    """
    m = np.asarray(confusion, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"per_class_accuracy expects a square matrix, got shape {m.shape}")
    rows = m.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, np.diag(m) / np.where(rows > 0, rows, 1), np.nan)


def classify(model: torch.nn.Module, grids: Tensor, batch_size: int = 64) -> Tensor:
    """Predicted class of each grid ``(S, R, R, R)`` -> ``(S,)`` long (CPU).

    Introduced in ``lectures/03_voxels.ipynb``.
    """
    return predict(model, grids, batch_size, probabilities=False).argmax(1)


# ---------------------------------------------------------------------------
# multi-view: 3D-R2N2's recurrence
# ---------------------------------------------------------------------------
def multiview_pool(profile: str | None = None) -> int:
    """Views rendered per shape for the multi-view model: ``1 + max(ch03.train_views, ch03.mv_max_views - 1)``.

    Introduced in ``lectures/03_voxels.ipynb``.  The shape's random view and the fixed extra views of
    :func:`voxel_data`; in the laptop and gpu profiles this is exactly the single-view model's training
    pool, so both models see the same images.
    """
    s = config.sizes(profile, prefix="ch03.")
    return 1 + max(int(s["train_views"]), int(s["mv_max_views"]) - 1)


def multiview_data(split: str, profile: str | None = None, *, views: int | None = None,
                   per_category: int | None = None, surface: bool = False, **kwargs: Any) -> dict[str, Any]:
    """:func:`voxel_data` of ``split`` with ``views`` rendered views per shape (``views`` ``(S, V, 3, H, W)``).

    Introduced in ``lectures/03_voxels.ipynb``.  ``views`` defaults to :func:`multiview_pool`;
    view 0 is the shape's random view (``rgb``), the others :func:`voxel_data`'s fixed extra azimuths.
    ``per_category`` defaults to the profile's ``ch03.train_per_category`` for ``train`` (the single-view
    model's shapes) and to ``ch03.mv_val_per_category`` / ``ch03.mv_test_per_category`` for ``val`` / ``test``
    (fewer than the chapter's: every extra view is one more rendering; the first shapes of the split, so
    they are among the chapter's own).
    """
    n = multiview_pool(profile) if views is None else int(views)
    if n < 1:
        raise ValueError(f"views must be >= 1, got {n}")
    if per_category is None and split in ("val", "test"):
        per_category = int(config.size(f"ch03.mv_{split}_per_category", profile))
    return voxel_data(split, profile, image=True, extra_views=n - 1, per_category=per_category, surface=surface,
                      **kwargs)


def view_orders(n_shapes: int, n_views: int, seed: int = 0) -> Tensor:
    """One random permutation of ``range(n_views)`` per shape ``(n_shapes, n_views)``, from ``seed``.

    Introduced in ``lectures/03_voxels.ipynb``: the fixed order in which the validation and test shapes
    show their views (the first ``n`` of a row are the shape's ``n`` views), so that every number of
    views is scored on the same shapes and each count adds one view to the previous one.
    """
    if n_shapes < 1 or n_views < 1:
        raise ValueError(f"view_orders needs n_shapes, n_views >= 1, got {n_shapes}, {n_views}")
    g = torch.Generator().manual_seed(int(seed))
    return torch.argsort(torch.rand(int(n_shapes), int(n_views), generator=g), dim=1)


def ordered_views(views: Tensor, order: Tensor) -> Tensor:
    """``views`` ``(S, V, ...)`` rearranged per shape by ``order`` ``(S, k)`` (indices into V): ``(S, k, ...)``.

    Introduced in ``lectures/03_voxels.ipynb``.
    """
    if views.dim() < 2 or order.dim() != 2 or order.shape[0] != views.shape[0]:
        raise ValueError(f"expected views (S, V, ...) and order (S, k), got {tuple(views.shape)} and "
                         f"{tuple(order.shape)}")
    if int(order.max()) >= views.shape[1] or int(order.min()) < 0:
        raise ValueError(f"order indexes views 0..{views.shape[1] - 1}, got values up to {int(order.max())}")
    rows = torch.arange(views.shape[0], device=views.device)[:, None]
    return views[rows, order.to(views.device)]


def multiview_batches(data: dict[str, Any], batch_size: int, max_views: int, *, seed: int = 0,
                      shuffle: bool = True) -> Any:
    """Training batches ``{"input": (B, n, 3, H, W), "target"}`` with a random number ``n`` of views in random order.

    Introduced in ``lectures/03_voxels.ipynb``.  As 3D-R2N2's ``RANDOM_NUM_VIEWS``: each batch draws
    ``n`` uniformly in ``1..max_views`` (one count per batch, so the batch is one tensor), and each shape
    its own ``n`` distinct views of ``data["views"]`` in a random order.
    """
    from .common import Batches

    if "views" not in data:
        raise ValueError("multiview_batches needs data['views'] (multiview_data)")
    pool = int(data["views"].shape[1])
    k = int(max_views)
    if not 1 <= k <= pool:
        raise ValueError(f"max_views must be in 1..{pool} (the views rendered per shape), got {max_views}")

    def transform(batch: dict[str, Any], generator: torch.Generator) -> dict[str, Any]:
        v = batch["input"]
        n = int(torch.randint(1, k + 1, (1,), generator=generator))
        order = torch.argsort(torch.rand(v.shape[0], pool, generator=generator), dim=1)[:, :n]
        batch["input"] = ordered_views(v, order)
        return batch

    return Batches(data, batch_size, keys=["views", "voxels"], rename={"views": "input", "voxels": "target"},
                   shuffle=shuffle, seed=seed, transform=transform)


def multiview_val_loss(pos_weight: float | None) -> Callable[[Any, dict], dict]:
    """``val_fn(model, batch)``: the weighted BCE averaged over 1, 2, ..., V views (the batch's views, in order).

    Introduced in ``lectures/03_voxels.ipynb``.  The epoch kept is the one with the lowest mean over the
    numbers of views, so that no count is favoured; one encoder pass (``all_steps=True``).
    """
    from course_lib.models.voxels import voxel_bce

    def val_fn(model: Any, batch: dict) -> dict:
        steps = model(batch["input"], all_steps=True)  # (B, V, R, R, R)
        target = batch["target"]
        losses = [voxel_bce(steps[:, v], target, pos_weight) for v in range(steps.shape[1])]
        return {"val_loss": torch.stack(losses).mean()}

    return val_fn


def train_multiview(profile: str | None = None, *, data: dict[str, Any] | None = None,
                    val_data: dict[str, Any] | None = None, retrain: bool = False, progress: bool = True,
                    path: str | os.PathLike | None = None, **fit_kwargs: Any) -> tuple[torch.nn.Module, Any]:
    """Train (or load) 3D-R2N2's multi-view model (:class:`~course_lib.models.voxels.MultiViewVoxelGRU`).

    Introduced in ``lectures/03_voxels.ipynb``.  The single-view model's recipe (:func:`train_single_view`:
    the weighted BCE, the prior start, Adam with a cosine decay, ``ch03.svr_epochs`` epochs of
    ``ch03.batch_size``), so that on the same training shapes both take the same optimiser steps; each batch
    shows ``1..ch03.mv_max_views`` views in random order (:func:`multiview_batches`).  The epoch kept has the
    lowest validation loss averaged over 1..V views (:func:`multiview_val_loss`), the validation shapes
    showing their views in the fixed order :func:`view_orders`. ``data`` / ``val_data`` come from
    :func:`multiview_data`. Returns ``(model, history)``.
    """
    profile = profile or config.get_profile()
    s = config.sizes(profile, prefix="ch03.")
    config.seed_everything(s["seed"])
    model = build_single_view(profile, multi_view=True)
    data = data or multiview_data("train", profile)
    val_data = val_data or multiview_data("val", profile, views=int(s["mv_max_views"]))
    w = pos_weight_for(data["voxels"], profile=profile)
    model.pos_weight = w  # type: ignore[assignment]
    start_at_prior(model, data["voxels"], w)
    loader = multiview_batches(data, s["batch_size"], min(int(s["mv_max_views"]), int(data["views"].shape[1])),
                               seed=s["seed"])
    from .common import Batches

    order = view_orders(int(val_data["views"].shape[0]), int(val_data["views"].shape[1]), s["seed"] + 1)
    val = Batches({"views": ordered_views(val_data["views"], order), "voxels": val_data["voxels"]},
                  s["batch_size"], keys=["views", "voxels"], rename={"views": "input", "voxels": "target"},
                  shuffle=False)
    fit_kwargs.setdefault("val_fn", multiview_val_loss(w))
    return model, _fit(model, "mvr", profile, data, loader, val, voxel_loss(w), s["svr_epochs"], retrain, progress,
                       path, **fit_kwargs)


def predict_views(model: torch.nn.Module, views: Tensor, batch_size: int = 16) -> Tensor:
    """Probabilities ``(S, V, R, R, R)`` of a multi-view model after 1, 2, ..., V of ``views`` ``(S, V, 3, H, W)``.

    Introduced in ``lectures/03_voxels.ipynb``.  Entry ``[:, n - 1]`` has seen the first ``n`` views.
    """
    from .common import predict as _predict

    return torch.sigmoid(_predict(model, views, batch_size, all_steps=True))


def iou_by_views(probs: Tensor, target: Tensor, thresholds: Sequence[float]) -> list[Tensor]:
    """Per-shape IoU after each number of views: ``[(S,) for n in 1..V]``, view count ``n`` at ``thresholds[n - 1]``.

    Introduced in ``lectures/03_voxels.ipynb``.  ``probs`` is :func:`predict_views`'s ``(S, V, R, R, R)``.
    """
    if probs.dim() != 5 or len(thresholds) != probs.shape[1]:
        raise ValueError(f"expected probs (S, V, R, R, R) and V thresholds, got {tuple(probs.shape)} and "
                         f"{len(thresholds)} thresholds")
    return [per_shape_iou(probs[:, v], target, float(t)) for v, t in enumerate(thresholds)]


def predict(model: torch.nn.Module, inputs: Tensor, batch_size: int = 32, probabilities: bool = True) -> Tensor:
    """:func:`course_lib.experiments.common.predict`, then the sigmoid of the logits unless ``probabilities=False``.

    Introduced in ``lectures/03_voxels.ipynb``.  Returns CPU tensors.
    """
    from .common import predict as _predict

    out = _predict(model, inputs, batch_size)
    return torch.sigmoid(out) if probabilities else out


# ---------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------
def iou_sweep(probs: Tensor, target: Tensor, thresholds: Sequence[float] | None = None,
              profile: str | None = None) -> dict[float, float]:
    """Mean volumetric IoU of ``probs >= t`` against ``target`` for each threshold ``t``.

    Introduced in ``lectures/03_voxels.ipynb``.  ``probs`` and ``target`` are ``(S, R, R, R)``;
    the IoU is per shape (:func:`course_lib.metrics.volumetric_iou`, batched) then averaged,
    as 3D-R2N2's ``evaluate_voxel_prediction`` does at its threshold 0.4. Thresholds default
    to ``ch03.thresholds``.
    """
    from course_lib.metrics import volumetric_iou

    if not isinstance(probs, Tensor) or not isinstance(target, Tensor):
        raise TypeError("iou_sweep expects torch.Tensor probabilities and targets")
    if probs.shape != target.shape or probs.dim() != 4:
        raise ValueError(f"probs and target must both be (S, R, R, R), got {tuple(probs.shape)} and "
                         f"{tuple(target.shape)}")
    if not probs.is_floating_point() or float(probs.min()) < 0 or float(probs.max()) > 1:
        raise ValueError("probs must be probabilities in [0, 1] (apply torch.sigmoid to logits)")
    ts = config.size("ch03.thresholds", profile) if thresholds is None else thresholds
    gt = target > 0.5
    return {float(t): float(volumetric_iou(probs >= t, gt, batched=True)) for t in ts}


def best_threshold(sweep: dict[float, float]) -> tuple[float, float]:
    """``(threshold, IoU)`` of the best entry of an :func:`iou_sweep` (choose it on validation shapes)."""
    if not sweep:
        raise ValueError("empty sweep")
    t = max(sweep, key=lambda k: sweep[k])
    return t, sweep[t]


def per_shape_iou(probs: Tensor, target: Tensor, threshold: float) -> Tensor:
    """Volumetric IoU of ``probs >= threshold`` against ``target > 0.5``, one value per shape ``(S,)``.

    Introduced in ``lectures/03_voxels.ipynb``: the paired values of the chapter's claims (two
    models, or two thresholds, on the same shapes). Its mean is :func:`iou_sweep`'s entry.
    """
    from course_lib.metrics import volumetric_iou

    if probs.shape != target.shape or probs.dim() != 4:
        raise ValueError(f"probs and target must both be (S, R, R, R), got {tuple(probs.shape)} and "
                         f"{tuple(target.shape)}")
    return volumetric_iou(probs >= float(threshold), target > 0.5, batched=True, reduction="none").double().cpu()


def select_threshold(id: str, probs: Tensor, target: Tensor, thresholds: Sequence[float] | None = None,
                     profile: str | None = None) -> tuple[float, dict[str, Any]]:
    """Choose the IoU threshold on *validation* predictions: ``(threshold, selection record)``.

    Introduced in ``lectures/03_voxels.ipynb``.  :func:`iou_sweep` of ``probs`` against ``target``
    (both from the ``val`` split), the best threshold (ties: the first, as :func:`best_threshold`),
    and the record of :func:`course_lib.experiments.protocol.selection_record` for the benchmark's
    ``data["selections"]``.
    """
    from .protocol import selection_record

    sweep = iou_sweep(probs, target, thresholds, profile)
    chosen, rec = selection_record(id, {str(t): v for t, v in sweep.items()}, metric="mean IoU (val)",
                                   higher_is_better=True)
    return float(chosen), rec


def accuracy(model: torch.nn.Module, grids: Tensor, labels: Tensor, batch_size: int = 64) -> float:
    """Top-1 accuracy of a classifier on ``grids`` ``(S, R, R, R)``.

    Introduced in ``lectures/03_voxels.ipynb``.
    """
    logits = predict(model, grids, batch_size, probabilities=False)
    return float((logits.argmax(1) == labels.cpu()).double().mean())


def resample_grid(grid: Tensor, resolution: int) -> Tensor:
    """Trilinear resampling of ``(R, R, R)`` or ``(S, R, R, R)`` values to ``resolution^3`` (cell-centred).

    Introduced in ``lectures/03_voxels.ipynb``.  Occupancies become fractions in [0, 1];
    threshold them at 0.5 for a grid again.
    """
    if not isinstance(grid, Tensor) or grid.dim() not in (3, 4):
        raise ValueError(f"grid must be (R, R, R) or (S, R, R, R), got {getattr(grid, 'shape', grid)}")
    single = grid.dim() == 3
    g = grid[None] if single else grid
    out = F.interpolate(g[:, None].float(), size=(resolution,) * 3, mode="trilinear", align_corners=False)[:, 0]
    return out[0] if single else out


def grid_to_mesh(probs: Tensor, level: float = 0.5, bound: float = 1.0) -> Any:
    """Marching-cubes mesh of the ``level`` iso-surface of a cell-centred grid ``(R, R, R)``; None if empty.

    Introduced in ``lectures/03_voxels.ipynb``.  Cell ``i`` of the grid sits at
    ``-bound + (i + 0.5) * 2 bound / R`` (the convention of :func:`course_lib.data.voxelize`), so the
    node grid :func:`course_lib.geometry.marching_cubes` expects spans ``+-(bound - bound / R)``.
    Inside is *above* the level for occupancies, hence the sign flip. A grid that never crosses
    ``level`` (all empty or all full) has no surface: the result is None.
    """
    from course_lib.geometry import marching_cubes

    if not isinstance(probs, Tensor) or probs.dim() != 3 or len(set(probs.shape)) != 1:
        raise ValueError(f"grid_to_mesh expects one cubic grid (R, R, R), got {getattr(probs, 'shape', probs)}")
    g = probs.detach().float().cpu()
    if not bool((g > level).any()) or not bool((g < level).any()):
        return None
    R = g.shape[0]
    return marching_cubes(-g, level=-float(level), bound=bound - bound / R)


def voxel_chamfer(probs: Tensor, target_points: Tensor, level: float = 0.5, seed: int = 0) -> dict[str, Any]:
    """Chamfer distance of marching-cubes meshes of predicted grids to surface samples of the true shapes.

    Introduced in ``lectures/03_voxels.ipynb``.  Convention: chapters 05/06's
    (:data:`course_lib.experiments.surfaces.CD_CONVENTION`: squared distances, mean + mean, x 1000),
    with as many mesh samples as target points. Returns ``{"cd": mean over shapes with a mesh,
    "per_shape": (S,) with nan where the prediction is empty, "empty": count}``.
    """
    from .surfaces import mesh_chamfer

    if probs.dim() != 4 or target_points.dim() != 3 or probs.shape[0] != target_points.shape[0]:
        raise ValueError(f"expected probs (S, R, R, R) and target_points (S, N, 3) for the same S, got "
                         f"{tuple(probs.shape)} and {tuple(target_points.shape)}")
    per = []
    for g, pts in zip(probs, target_points):
        mesh = grid_to_mesh(g, level)
        per.append(float("nan") if mesh is None else mesh_chamfer(mesh, pts.float(), seed=seed))
    t = torch.tensor(per, dtype=torch.float64)
    ok = torch.isfinite(t)
    return {"cd": float(t[ok].mean()) if bool(ok.any()) else float("nan"), "per_shape": t,
            "empty": int((~ok).sum())}


def evaluate_reconstruction(probs: Tensor, data: dict[str, Any], *, thresholds: Sequence[float] | None = None,
                            level: float | None = None, chamfer: bool = True,
                            profile: str | None = None) -> dict[str, Any]:
    """IoU sweep, IoU at 3D-R2N2's 0.4, per-category IoU and the marching-cubes Chamfer of predictions.

    Introduced in ``lectures/03_voxels.ipynb``.  ``probs`` ``(S, R, R, R)`` against ``data["voxels"]``
    (and ``data["target_points"]`` for the Chamfer distance, :func:`voxel_chamfer`, at ``level``:
    pass the threshold chosen on *validation* shapes; default 0.5). Returns ``{"sweep", "iou@0.4",
    "iou@level", "per_category", "cd", "cd_empty", "level"}`` (plain floats, JSON-ready).
    """
    from course_lib.metrics import volumetric_iou

    gt = data["voxels"]
    lv = 0.5 if level is None else float(level)
    out: dict[str, Any] = {"sweep": iou_sweep(probs, gt, thresholds, profile), "level": lv}
    out["iou@0.4"] = float(volumetric_iou(probs >= 0.4, gt > 0.5, batched=True))
    per = volumetric_iou(probs >= lv, gt > 0.5, batched=True, reduction="none")
    out["iou@level"] = float(per.mean())
    labels = torch.as_tensor(data["label"])
    out["per_category"] = {c: float(per[labels == i].mean()) for i, c in enumerate(data["categories"])
                           if bool((labels == i).any())}
    if chamfer and "target_points" in data:
        cd = voxel_chamfer(probs, data["target_points"], lv)
        out["cd"], out["cd_empty"] = cd["cd"], cd["empty"]
    return out


def representation_floor(data: dict[str, Any], resolution: int | None = None) -> dict[str, Any]:
    """What the grid itself costs: the Chamfer distance of the marching-cubes mesh of the *true* grids.

    Introduced in ``lectures/03_voxels.ipynb``.  A perfect voxel predictor still pays this
    (the blocky-surface problem), in the convention of :func:`voxel_chamfer`; it shrinks with
    the resolution. ``resolution`` re-voxelises the shapes of ``data`` (its ``category`` and
    ``seed``) at another ``R`` first. ShapeNet-lite only: on a real dataset's rows it refuses
    (:func:`course_lib.experiments.common.require_exact_shapes`; the course's contract for every function that
    can rebuild shapes from their category and seed). Returns ``{"cd": mean, "resolution": R, "per_shape": [...]}``
    (a list of floats, nan where the grid has no surface).
    """
    require_exact_shapes('representation_floor (chapter 03)', data)
    grids = data["voxels"].float()
    if resolution is not None and int(resolution) != int(grids.shape[-1]):
        from course_lib.data import make_shape, voxelize

        if "category" not in data or "seed" not in data:
            raise ValueError("representation_floor at another resolution needs the data's 'category' and 'seed'")
        grids = torch.stack([voxelize(make_shape(c, int(sd)), int(resolution)).float()
                             for c, sd in zip(data["category"], torch.as_tensor(data["seed"]).tolist())])
    cd = voxel_chamfer(grids, data["target_points"], 0.5)
    return {"cd": cd["cd"], "resolution": int(grids.shape[-1]), "per_shape": [float(v) for v in cd["per_shape"]]}


# ---------------------------------------------------------------------------
# the curse of dimensionality
# ---------------------------------------------------------------------------
def grid_bytes(resolution: int, channels: int = 1, bytes_per_value: int = 4) -> int:
    """Bytes of a dense ``channels x R^3`` grid (float32 by default): the ``R^3`` law in one line.

    Introduced in ``lectures/03_voxels.ipynb``.
    """
    return int(channels) * int(resolution) ** 3 * int(bytes_per_value)


def _ball(resolution: int, radius: float = 0.7) -> Tensor:
    c = (torch.arange(resolution, dtype=torch.float64) + 0.5) * 2.0 / resolution - 1.0
    x, y, z = torch.meshgrid(c, c, c, indexing="ij")
    return (x**2 + y**2 + z**2) < radius**2


def surface_fraction(grid: Tensor | int) -> float:
    """Fraction of the grid's cells on the surface: full cells with an empty (or outside) 6-neighbour.

    Introduced in ``lectures/03_voxels.ipynb``.  ``grid`` is an ``(R, R, R)`` occupancy, or an
    int ``R`` for a ball of radius 0.7 in ``[-1, 1]^3``. For a fixed shape it shrinks as
    ``1 / R`` (surface cells grow as ``R^2``, all cells as ``R^3``): most of a dense grid
    stores nothing about the surface.
    """
    occ = _ball(grid) if isinstance(grid, int) else grid > 0.5
    if occ.dim() != 3:
        raise ValueError(f"grid must be (R, R, R), got {tuple(occ.shape)}")
    p = F.pad(occ[None, None].float(), (1, 1, 1, 1, 1, 1))[0, 0]
    interior = torch.ones_like(occ)
    for d in range(3):
        for s in (0, 2):
            sl = [slice(1, -1)] * 3
            sl[d] = slice(s, s + occ.shape[d])
            interior &= p[tuple(sl)] > 0.5
    return float((occ & ~interior).double().sum() / occ.numel())


def activation_bytes(model: torch.nn.Module, x: Tensor) -> int:
    """Bytes of every leaf module's output in one forward pass of ``x`` (what autograd must keep, roughly).

    Introduced in ``lectures/03_voxels.ipynb``.  Counts each leaf module's output tensor once
    (in-place ReLUs would share memory; ours are not in place), so it is an upper bound on the
    activations saved for the backward pass, and independent of the allocator.
    """
    total = 0

    def hook(_m: Any, _i: Any, out: Any) -> None:
        nonlocal total
        if isinstance(out, Tensor):
            total += out.numel() * out.element_size()

    hooks = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return int(total)


def _measure_step(model: torch.nn.Module, x: Tensor, dev: torch.device, repeat: int) -> tuple[float, float]:
    """(peak extra bytes, median seconds) of a forward+backward of the plain BCE on ``x``."""
    from course_lib.models.voxels import voxel_bce

    from .point_sets import peak_memory

    def step() -> None:
        model.zero_grad(set_to_none=True)
        voxel_bce(model(x), x).backward()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    step()  # warm-up (allocations, kernel choice)
    model.zero_grad(set_to_none=True)
    _, peak = peak_memory(step, dev)
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return float(peak), float(np.median(times))


def cost_curve(resolutions: Sequence[int] | None = None, *, profile: str | None = None,
               channels: int | None = None, latent_dim: int | None = None, batch_size: int | None = None,
               repeat: int = 3, device: torch.device | str | None = None, max_bytes: float | None = None,
               time_limit: float = 60.0, progress: bool = False) -> list[dict[str, Any]]:
    """Memory and time of one forward+backward of the same voxel auto-encoder at each resolution.

    Introduced in ``lectures/03_voxels.ipynb``.

    For each ``R`` (default ``ch03.curve_resolutions``): a :class:`~course_lib.models.voxels.VoxelAutoEncoder`
    with ``channels`` (``ch03.curve_channels``) channels in both encoder and decoder and
    ``max_channels = 8 * channels`` (so that only the number of stages changes with ``R``),
    on a batch of ``batch_size`` balls. Each row: ``resolution``, ``params``, ``activation_bytes``
    (:func:`activation_bytes`), ``peak_bytes`` (the extra memory of a forward+backward measured by
    :func:`course_lib.experiments.point_sets.peak_memory`), ``seconds`` (median forward+backward over
    ``repeat``, after one warm-up), ``grid_bytes`` (one float32 input grid) and ``surface_fraction``.
    A resolution is skipped (``skipped`` set, values nan) when the memory predicted from the
    previous one (8 x the larger of its measured peak and twice its activations) exceeds
    ``max_bytes`` (``ch03.curve_max_bytes``) or the previous one took more than ``time_limit`` seconds.
    """
    from course_lib.models.voxels import VoxelAutoEncoder

    s = config.sizes(profile, prefix="ch03.")
    rs = list(s["curve_resolutions"] if resolutions is None else resolutions)
    ch = channels or s["curve_channels"]
    L = latent_dim or s["latent_dim"]
    B = batch_size or s["curve_batch"]
    limit = float(s["curve_max_bytes"] if max_bytes is None else max_bytes)
    dev = config.get_device(device)
    rows: list[dict[str, Any]] = []
    prev_act, prev_time = None, 0.0
    it: Any = rs
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(rs, desc="cost curve")
    for R in it:
        row: dict[str, Any] = {"resolution": int(R), "grid_bytes": grid_bytes(R), "surface_fraction": surface_fraction(R)}
        reason = None
        if prev_act is not None and prev_act * 8 > limit:
            reason = f"predicted peak memory {prev_act * 8 / 2**30:.1f} GiB > limit {limit / 2**30:.1f} GiB"
        elif prev_time > time_limit:
            reason = f"previous resolution took {prev_time:.0f} s > {time_limit:.0f} s"
        if reason:
            row.update(params=float("nan"), activation_bytes=float("nan"), peak_bytes=float("nan"),
                       seconds=float("nan"), skipped=reason)
            rows.append(row)
            continue
        torch.manual_seed(0)
        model = VoxelAutoEncoder(R, L, ch, ch, max_channels=8 * ch).to(dev)
        x = _ball(R).float().to(dev)[None].expand(B, -1, -1, -1).contiguous()
        row["params"] = sum(p.numel() for p in model.parameters())
        row["activation_bytes"] = activation_bytes(model, x)

        row["peak_bytes"], row["seconds"] = _measure_step(model, x, dev, repeat)
        row["skipped"] = ""
        # the next resolution needs ~8x this step's memory: its measured peak, but at least twice the
        # activations (the backward pass holds their gradients too), so a noisy peak never under-predicts
        peak = row["peak_bytes"]
        prev_act = max(2.0 * float(row["activation_bytes"]), peak if math.isfinite(peak) else 0.0)
        prev_time = row["seconds"]
        rows.append(row)
        del model, x
    return rows


def fit_exponent(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Slope of the least-squares line through ``(log x, log y)``: ``y ~ x^slope``.

    Introduced in ``lectures/03_voxels.ipynb``.  Non-finite or non-positive points are dropped;
    needs at least two points left (else nan).
    """
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def resolution_stats(shape: Any, resolution: int, prediction: Tensor | None = None, *, level: float = 0.5,
                     reference_resolution: int = 64) -> dict[str, Any]:
    """One shape at one resolution: its grid, what the grid costs, and how much it loses (for the widget).

    Introduced in ``lectures/03_voxels.ipynb``.  Returns ``voxels`` ``(R, R, R)`` (the shape's
    :func:`course_lib.data.voxelize`), ``float32_bytes`` (a dense float grid) and ``bit_bytes``
    (one bit per cell), ``occupied`` and ``surface_fraction``, and ``iou_vs_fine``: the IoU of the
    grid, upsampled (each cell copied, nearest) to ``max(reference_resolution, R)``, against the
    shape voxelised there -- what the resolution alone costs. With ``prediction`` (probabilities of
    a model at any resolution) also ``prediction`` resampled to ``R`` (:func:`resample_grid`) and
    ``iou_prediction`` (at ``level``) against the grid.
    """
    from course_lib.data import voxelize
    from course_lib.metrics import volumetric_iou

    R = int(resolution)
    gt = voxelize(shape, R).float()
    ref = max(int(reference_resolution), R)
    fine = voxelize(shape, ref)
    up = F.interpolate(gt[None, None], size=(ref,) * 3, mode="nearest")[0, 0] > 0.5
    out: dict[str, Any] = {"voxels": gt, "resolution": R, "float32_bytes": grid_bytes(R),
                           "bit_bytes": math.ceil(R**3 / 8), "occupied": int(gt.sum()),
                           "surface_fraction": surface_fraction(gt), "reference_resolution": ref,
                           "iou_vs_fine": float(volumetric_iou(up, fine))}
    if prediction is not None:
        pred = resample_grid(prediction.detach().float().cpu(), R).clamp(0, 1)
        out["prediction"] = pred
        out["iou_prediction"] = float(volumetric_iou(pred >= level, gt > 0.5))
    return out


# ---------------------------------------------------------------------------
# GPU smoke hook
# ---------------------------------------------------------------------------
def smoke(device: str = "cpu", steps: int = 1, profile: str = "gpu") -> dict[str, float]:
    """A few training steps of the chapter's models on ``device`` with the ``profile``'s sizes.

    Introduced for ``benchmarks/gpu_smoke.py``: the voxel auto-encoder, the single-view model and the
    multi-view 3D-GRU model on two views (weighted BCE) and VoxNet (cross-entropy), each on one synthetic
    batch of ``ch03.batch_size`` balls of random radii (and random images); no data generation, no checkpoint.
    """
    from .common import smoke_steps

    s = config.sizes(profile, prefix="ch03.")
    b, R, size = int(s["batch_size"]), int(s["resolution"]), int(s["image_size"])
    g = torch.Generator().manual_seed(0)
    radii = 0.3 + 0.5 * torch.rand(b, generator=g)
    grids = torch.stack([_ball(R, float(r)).float() for r in radii])
    torch.manual_seed(0)
    out: dict[str, float] = {}
    w = pos_weight_for(grids, profile=profile)
    r = smoke_steps(build_autoencoder(profile), {"input": grids, "target": grids}, voxel_loss(w), steps=steps,
                    device=device, lr=float(s["lr"]))
    out.update({f"ae_{k}": v for k, v in r.items()})
    r = smoke_steps(build_single_view(profile), {"input": torch.rand(b, 3, size, size, generator=g), "target": grids},
                    voxel_loss(w), steps=steps, device=device, lr=float(s["lr"]))
    out.update({f"svr_{k}": v for k, v in r.items()})
    r = smoke_steps(build_single_view(profile, multi_view=True),
                    {"input": torch.rand(b, 2, 3, size, size, generator=g), "target": grids}, voxel_loss(w),
                    steps=steps, device=device, lr=float(s["lr"]))
    out.update({f"mv_{k}": v for k, v in r.items()})
    labels = (radii > 0.55).long()
    r = smoke_steps(build_voxnet(2, profile), {"input": grids, "label": labels}, classification_loss, steps=steps,
                    device=device, lr=float(s["lr"]))
    out.update({f"voxnet_{k}": v for k, v in r.items()})
    out["seconds"] = sum(v for k, v in out.items() if k.endswith("_seconds"))
    return out
