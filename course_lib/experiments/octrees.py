"""The experiments of chapter 04 (octrees), shared by the lecture, the lab and the benchmark.

Introduced in ``lectures/04_octrees.ipynb``.

* :func:`compression`: octree bytes against dense bytes for ShapeNet-lite shapes (and any mesh);
* :func:`octree_data`, :func:`train_ogn`, :func:`train_dense`: OGN and chapter 03's dense
  auto-encoder trained on the same grids (sizes ``ch04.*``) with :func:`course_lib.train.train_or_load`;
* :func:`evaluate_iou`: per-shape volumetric IoU, OGN decoding with its predicted structure, the
  dense decoder cut at the threshold :func:`dense_threshold` chose on validation grids;
  :func:`ae_seeds`: the training seeds of the comparison;
* :func:`decoder_cost`: peak memory and time of one forward+backward of both decoders;
* :func:`memory_account`, :func:`memory_exponents`: stored against working bytes (caches, the
  sparse operator, the OGN decoder's cells, features and neighbour lookups) against dense grids,
  with fitted growth exponents; :func:`decoder_buffers`: the decoder's working tensors;
* :func:`smoke`: the GPU smoke hook.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from course_lib import config
from course_lib.experiments.common import real_dataset, rows_table  # noqa: F401 - rows_table re-exported (E.rows_table)

__all__ = [
    "compression", "mesh_compression", "octree_data", "build_ogn", "build_dense", "ogn_loss_fn", "dense_loss_fn",
    "train_ogn", "train_dense", "dense_threshold", "ae_seeds", "ae_rows", "evaluate_iou", "decoder_cost", "smoke", "level_counts", "slice_figure",
    "memory_figure", "rows_table", "memory_account", "memory_exponents", "account_table", "decoder_buffers",
    "ACCOUNT_ROWS", "ACCOUNT_LABELS", "account_summary", "crossing_resolution", "shell_compression",
    "dense_decoder_buffers", "svr_data", "build_ogn_svr", "train_ogn_svr", "upsample_grid", "svr_iou_at",
    "ENCODER_KINDS", "build_grid_classifier", "train_grid_classifier", "encoder_cost",
]


# ---------------------------------------------------------------------------
# compression
# ---------------------------------------------------------------------------
def _row(name: str, R: int, occ: Tensor, tree_depth: int) -> dict[str, Any]:
    from course_lib.geometry.octree import build_octree

    t = build_octree(occ, tree_depth)
    dense = t.dense_nbytes(torch.float32)
    return {"shape": name, "resolution": R, "leaves": t.num_cells, "octree_bytes": t.nbytes,
            "dense_float_bytes": dense, "dense_bit_bytes": R ** 3 // 8, "ratio": dense / t.nbytes,
            "occupied": float(occ.float().mean()), "round_trip_exact": bool(torch.equal(t.to_dense()[0].bool(), occ))}


def compression(resolutions: Sequence[int] | None = None, categories: Sequence[str] | None = None,
                seed: int | None = None, tree_depth: int | None = None, profile: str | None = None,
                progress: bool = False) -> list[dict[str, Any]]:
    """Octree against dense memory of one ShapeNet-lite shape per category at each resolution.

    Introduced in ``lectures/04_octrees.ipynb``.  Rows: ``shape``, ``resolution``, ``leaves``,
    ``octree_bytes`` (:attr:`Octree.nbytes`), ``dense_float_bytes`` (float32 grid),
    ``dense_bit_bytes`` (one bit per voxel, the most compact dense grid), ``ratio``
    (dense float / octree), ``occupied`` fraction, ``round_trip_exact`` (``to_dense`` gives the grid back).  The shape is ``reserved_seed("demo")``
    unless ``seed`` is given; voxels are :func:`course_lib.data.voxelize`.  Always ShapeNet-lite's demo shapes,
    also under ``COURSE_DATASET`` (a property of the representation, not of the data); a real dataset's meshes go
    through :func:`mesh_compression`.
    """
    return _demo_rows(resolutions, categories, seed, tree_depth, profile, progress, shell=False)


def _demo_rows(resolutions: Sequence[int] | None, categories: Sequence[str] | None, seed: int | None,
               tree_depth: int | None, profile: str | None, progress: bool, *, shell: bool) -> list[dict[str, Any]]:
    """:func:`compression`'s rows (``shell=False``) or :func:`shell_compression`'s (solid and shell rows)."""
    from tqdm.auto import tqdm

    from course_lib.data import CATEGORIES, make_shape, voxel_shell, voxelize

    s = config.sizes(profile, prefix="ch04.")
    res = tuple(resolutions or s["compression_resolutions"])
    cats = tuple(categories or CATEGORIES)
    D = int(tree_depth or s["tree_depth"])
    sd = _demo_seed() if seed is None else int(seed)
    rows = []
    for c in tqdm(cats, disable=not progress, desc="solid vs shell" if shell else "compression"):
        shape = make_shape(c, sd)
        for R in res:
            solid = voxelize(shape, R)
            if not shell:
                rows.append(_row(c, R, solid, D))
                continue
            for kind, occ in (("solid", solid), ("shell", voxel_shell(solid))):
                rows.append({**_row(c, R, occ, D), "grid": kind, "voxels": int(occ.sum())})
    return rows


def shell_compression(resolutions: Sequence[int] | None = None, categories: Sequence[str] | None = None,
                      seed: int | None = None, tree_depth: int | None = None, profile: str | None = None,
                      progress: bool = False) -> list[dict[str, Any]]:
    """Solid against surface (shell) voxelisation of the same shapes, as octrees: :func:`compression`'s rows twice.

    Introduced in ``lectures/04_octrees.ipynb``.  For each ShapeNet-lite demo shape and resolution, the solid grid
    (:func:`course_lib.data.voxelize`) and its one-voxel shell (:func:`course_lib.data.voxel_shell`, what
    surface-voxel representations store) each give a row with ``grid`` ``"solid"`` or ``"shell"``, plus
    ``voxels`` (full cells).  A shell has two boundaries (outside and inside the layer) where the solid has one,
    but no full interior to store either.
    """
    return _demo_rows(resolutions, categories, seed, tree_depth, profile, progress, shell=True)


def mesh_compression(meshes: dict[str, Any], resolutions: Sequence[int], tree_depth: int = 3) -> list[dict[str, Any]]:
    """:func:`compression` for arbitrary closed meshes (``name -> trimesh``), voxelised by ray parity.

    Introduced in ``lectures/04_octrees.ipynb``; meshes from :func:`course_lib.data.load_mesh`
    (normalised into the unit ball) work as they are.
    """
    from course_lib.geometry import mesh_to_voxels

    return [_row(name, R, mesh_to_voxels(m, R), tree_depth) for name, m in meshes.items() for R in resolutions]


def _demo_seed() -> int:
    try:
        from course_lib.data import reserved_seed

        return int(reserved_seed("demo"))
    except ImportError:  # pragma: no cover - older data layer
        return 1


# ---------------------------------------------------------------------------
# auto-encoding
# ---------------------------------------------------------------------------
def octree_data(split: str, profile: str | None = None, *, resolution: int | None = None,
                categories: Sequence[str] | None = None, per_category: int | None = None,
                dataset: str | None = None, root: str | None = None) -> dict[str, Any]:
    """ShapeNet-lite grids ``{"voxels": (S, R, R, R) float 0/1, "label", "category", ...}`` with the ``ch04.*`` sizes.

    Introduced in ``lectures/04_octrees.ipynb`` (chapter 03's :func:`~course_lib.experiments.voxels.voxel_data`,
    cached on disk).  ``dataset`` / ``root`` (or ``COURSE_DATASET`` and ``COURSE_MODELNET_DIR`` /
    ``COURSE_SHAPENET_DIR``) read a real dataset's meshes instead (grids by winding number,
    :class:`course_lib.data.real_split.RealShapes`); its rows also carry ``path``, ``manifest`` and ``dataset``,
    which :func:`train_ogn` / :func:`train_dense` put in the checkpoint's name.
    """
    from .voxels import voxel_data

    s = config.sizes(profile, prefix="ch04.")
    return voxel_data(split, profile, resolution=resolution or s["resolution"],
                      categories=categories or s["categories"], per_category=per_category or s[f"{split}_per_category"],
                      dataset=dataset, root=root)


def build_ogn(profile: str | None = None, resolution: int | None = None) -> torch.nn.Module:
    """The OGN auto-encoder (chapter 03's encoder + :class:`~course_lib.models.ogn.OGNDecoder`), ``ch04.*`` sizes.

    Introduced in ``lectures/04_octrees.ipynb``.
    """
    from course_lib.models.ogn import OGNAutoEncoder

    s = config.sizes(profile, prefix="ch04.")
    R = int(resolution or s["resolution"])
    from .voxels import set_bn_momentum

    model = OGNAutoEncoder(R, s["latent_dim"], s["encoder_channels"], s["tree_depth"], tuple(s["ogn_channels"]))
    return set_bn_momentum(model, s["bn_momentum"])


def build_dense(profile: str | None = None, resolution: int | None = None) -> torch.nn.Module:
    """Chapter 03's dense :class:`~course_lib.models.voxels.VoxelAutoEncoder` with the ``ch04.*`` sizes.

    Introduced in ``lectures/04_octrees.ipynb`` (the baseline of the OGN decoder).
    """
    from course_lib.models.voxels import VoxelAutoEncoder

    s = config.sizes(profile, prefix="ch04.")
    R = int(resolution or s["resolution"])
    from .voxels import set_bn_momentum

    return set_bn_momentum(VoxelAutoEncoder(R, s["latent_dim"], s["encoder_channels"], s["dense_channels"]),
                           s["bn_momentum"])


def ogn_loss_fn(model: Any, batch: dict) -> dict:
    """``loss_fn(model, batch)``: OGN's per-level cross-entropy, trained with the known structure (PROP_KNOWN).

    The target grids are ``batch["target"]`` (an image batch, :func:`train_ogn_svr`) or, for the auto-encoder,
    the input grids themselves."""
    from course_lib.geometry.octree import build_octree
    from course_lib.models.ogn import PROP_KNOWN, ogn_loss

    grids = batch.get("target", batch["input"])
    target = build_octree(grids > 0.5, model.decoder.tree_depth)
    return ogn_loss(model(batch["input"], target, PROP_KNOWN))


def dense_loss_fn(pos_weight: float | None) -> Callable[[Any, dict], dict]:
    """Chapter 03's weighted BCE (:func:`course_lib.experiments.voxels.voxel_loss`)."""
    from .voxels import voxel_loss

    return voxel_loss(pos_weight)


def _ckpt(name: str, profile: str, data: dict[str, Any], seed: int, recipe: str, **extra: Any) -> Any:
    from course_lib.train import checkpoint_path

    from .common import dataset_checkpoint_name

    s = config.sizes(profile, prefix="ch04.")
    spec = {"categories": s["categories"], "resolution": int(data["voxels"].shape[-1]),
            "shapes": int(data["voxels"].shape[0]), "seeds": str(torch.as_tensor(data["seed"]).sum().item()),
            "seed": int(seed), "recipe": recipe, **extra}
    real = real_dataset(data)
    if real is not None:  # a real dataset's models never share a file with ShapeNet-lite's
        spec["dataset"] = real
    return checkpoint_path(dataset_checkpoint_name(name, data), spec, profile)


def _train(model: torch.nn.Module, name: str, loss_fn: Callable, profile: str, data: dict[str, Any],
           val_data: dict[str, Any] | None, retrain: bool, progress: bool, path: Any, seed: int, recipe: str,
           task: str = "ae", spec: dict[str, Any] | None = None, **fit_kwargs: Any) -> Any:
    """Chapter 03's recipe (Adam, cosine decay over the epochs, ``ch04.batch_size``) on ``task``'s batches
    (:func:`~course_lib.experiments.voxels.grid_batches`), the epoch with the lowest validation loss kept;
    ``spec`` adds to the checkpoint's spec (:func:`_ckpt`)."""
    from course_lib.train import train_or_load

    from .voxels import cosine_adam, grid_batches

    s = config.sizes(profile, prefix="ch04.")
    if val_data is None:  # the validation grids of the training rows' dataset
        real = real_dataset(data)
        val_data = octree_data("val", profile, **({} if real is None else {"dataset": real}))
    loader = grid_batches(data, task, s["batch_size"], seed=seed)
    val = grid_batches(val_data, task, s["batch_size"], shuffle=False)
    kw: dict[str, Any] = dict(loss_fn=loss_fn, epochs=s["epochs"], lr=s["lr"], seed=seed, progress=progress,
                              val_loader=val)
    kw.update(fit_kwargs)
    if "optimizer" not in kw:  # chapter 03's schedule: Adam with a cosine decay to 0 over the epochs
        kw["optimizer"], sched = cosine_adam(model, kw["lr"], kw["epochs"])
        kw.setdefault("scheduler", sched)
    history = train_or_load(model, path or _ckpt(name, profile, data, seed, recipe, **(spec or {})), retrain=retrain,
                            train_loader=loader, **kw)
    model.eval()
    return history


def _seed(seed: int | None, profile: str) -> int:
    return int(config.size("ch04.seed", profile) if seed is None else seed)


def ae_seeds(profile: str | None = None) -> list[int]:
    """The training seeds of the benchmark's OGN-vs-dense comparison: ``ch04.seed + i`` for ``i < ch04.ae_seeds``.

    Introduced in ``lectures/04_octrees.ipynb``; the first is the seed every other caller trains with.
    """
    s = config.sizes(profile, prefix="ch04.")
    return [int(s["seed"]) + i for i in range(int(s["ae_seeds"]))]


def train_ogn(profile: str | None = None, *, data: dict[str, Any] | None = None, val_data: dict[str, Any] | None = None,
              retrain: bool = False, progress: bool = True, path: str | os.PathLike | None = None,
              seed: int | None = None, dataset: str | None = None, root: str | None = None,
              **fit_kwargs: Any) -> tuple[torch.nn.Module, Any]:
    """Train (or load) the OGN auto-encoder with the known structure; return ``(model, history)``.

    Introduced in ``lectures/04_octrees.ipynb``.  The per-level 3-class cross-entropy
    (:func:`ogn_loss_fn`), Adam at ``ch04.lr`` with chapter 03's cosine decay
    (:func:`course_lib.experiments.voxels.cosine_adam`) over ``ch04.epochs``, the weights of the epoch
    with the best validation loss kept.  ``seed`` (default ``ch04.seed``) seeds the initialisation
    and the batch order.  ``dataset`` / ``root`` (or ``COURSE_DATASET``) train on a real dataset's grids when
    ``data`` is not given (:func:`octree_data`), under a checkpoint named after it
    (``ch04_ogn_ae-<dataset>-<profile>-<hash>.pt``); the same holds for :func:`train_dense`.
    """
    profile = profile or config.get_profile()
    sd = _seed(seed, profile)
    data = data or octree_data("train", profile, dataset=dataset, root=root)
    if val_data is None and real_dataset(data) is not None:
        val_data = octree_data("val", profile, dataset=real_dataset(data), root=root)
    config.seed_everything(sd)
    model = build_ogn(profile, int(data["voxels"].shape[-1]))
    return model, _train(model, "ch04_ogn_ae", ogn_loss_fn, profile, data, val_data, retrain, progress, path, sd,
                         "cosine-v1", **fit_kwargs)


def train_dense(profile: str | None = None, *, data: dict[str, Any] | None = None,
                val_data: dict[str, Any] | None = None, retrain: bool = False, progress: bool = True,
                path: str | os.PathLike | None = None, seed: int | None = None, dataset: str | None = None,
                root: str | None = None, **fit_kwargs: Any) -> tuple[torch.nn.Module, Any]:
    """Train (or load) chapter 03's dense auto-encoder on the same grids; return ``(model, history)``.

    Introduced in ``lectures/04_octrees.ipynb``.  Chapter 03's recipe: the weighted BCE (the positive
    weight from the training grids, :func:`course_lib.experiments.voxels.pos_weight_for`, kept as
    ``model.pos_weight``), the read-out started at the prior
    (:func:`course_lib.experiments.voxels.start_at_prior`), and the optimiser and schedule of
    :func:`train_ogn` (same epochs, batches and seeds, so the same optimiser steps).  Its decision
    threshold is chosen on validation shapes afterwards (:func:`dense_threshold`).
    """
    from .voxels import pos_weight_for, start_at_prior

    profile = profile or config.get_profile()
    sd = _seed(seed, profile)
    data = data or octree_data("train", profile, dataset=dataset, root=root)
    if val_data is None and real_dataset(data) is not None:
        val_data = octree_data("val", profile, dataset=real_dataset(data), root=root)
    config.seed_everything(sd)
    model = build_dense(profile, int(data["voxels"].shape[-1]))
    w = pos_weight_for(data["voxels"], profile=profile)
    model.pos_weight = w  # type: ignore[assignment]
    start_at_prior(model, data["voxels"], w)
    return model, _train(model, "ch04_dense_ae", dense_loss_fn(w), profile, data, val_data, retrain, progress, path,
                         sd, "prior-cosine-v1", **fit_kwargs)


def dense_threshold(model: torch.nn.Module, val_voxels: Tensor, profile: str | None = None,
                    id: str = "dense_threshold") -> tuple[float, dict[str, Any]]:
    """The dense decoder's probability threshold, chosen on *validation* grids as chapter 03 does.

    Introduced in ``lectures/04_octrees.ipynb``.  The weighted BCE moves the optimal probability of
    a voxel up (chapter 03, section 4), so 0.5 is not its natural cut: the best of the ``ch03.thresholds``
    sweep on ``val_voxels`` (:func:`course_lib.experiments.voxels.select_threshold`). Returns
    ``(threshold, selection record)``; pass the threshold to :func:`evaluate_iou`.
    """
    from .voxels import predict, select_threshold

    return select_threshold(id, predict(model, val_voxels, batch_size=8), val_voxels, profile=profile)


@torch.no_grad()
def evaluate_iou(model: torch.nn.Module, voxels: Tensor, batch_size: int = 8,
                 threshold: float = 0.5) -> dict[str, Tensor]:
    """Per-shape volumetric IoU of a trained auto-encoder on ``voxels`` ``(S, R, R, R)``.

    Introduced in ``lectures/04_octrees.ipynb``.  An OGN model decodes with its *predicted*
    structure (PROP_PRED; each cell's state is the arg-max of its three classes, no threshold); a
    dense model is cut at probability ``threshold`` (``sigmoid(logit) >= threshold``; choose it on
    validation grids with :func:`dense_threshold`).  Returns ``{"iou": (S,), "cells": (S,) cells the
    OGN decoder held (dense: R^3)}``.
    """
    from course_lib.metrics import volumetric_iou
    from course_lib.models.ogn import PROP_PRED, OGNAutoEncoder

    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must be a probability in (0, 1), got {threshold}")
    model.eval()
    dev = next(model.parameters()).device
    ious, cells = [], []
    for i in range(0, voxels.shape[0], batch_size):
        v = voxels[i:i + batch_size].to(dev)
        if isinstance(model, OGNAutoEncoder):
            out = model(v, mode=PROP_PRED)
            pred = out.occupancy()
            per = torch.zeros(v.shape[0], device=dev)
            for c in out.cells:
                per += torch.bincount(c[:, 0], minlength=v.shape[0]).float()
            cells.append(per.cpu())
        else:
            pred = torch.sigmoid(model(v)) >= float(threshold)
            cells.append(torch.full((v.shape[0],), float(v[0].numel())))
        ious.append(volumetric_iou(pred, v > 0.5, batched=True, reduction="none").cpu())
    return {"iou": torch.cat(ious), "cells": torch.cat(cells)}


# ---------------------------------------------------------------------------
# OGN from a single image, at several resolutions
# ---------------------------------------------------------------------------
def svr_data(split: str, resolution: int, profile: str | None = None, *,
             per_category: int | None = None) -> dict[str, Any]:
    """One rendered view and the ``resolution^3`` grid of each shape of ``split`` (``ch04.categories``).

    Introduced in ``lectures/04_octrees.ipynb``: chapter 03's :func:`~course_lib.experiments.voxels.voxel_data`
    with ``image=True``; ``ch04.svr_train_per_category`` training shapes, ``ch04.val_per_category`` validation
    and ``ch04.svr_test_per_category`` test shapes per category unless ``per_category`` is given.
    """
    from .voxels import voxel_data

    s = config.sizes(profile, prefix="ch04.")
    key = {"train": "svr_train_per_category", "val": "val_per_category", "test": "svr_test_per_category"}
    if split not in key:
        raise ValueError(f"split must be one of {tuple(key)}, got {split!r}")
    return voxel_data(split, profile, resolution=int(resolution), categories=s["categories"], image=True,
                      per_category=int(per_category if per_category is not None else s[key[split]]))


def build_ogn_svr(profile: str | None = None, resolution: int | None = None) -> torch.nn.Module:
    """The single-view OGN (:class:`~course_lib.models.ogn.OGNSingleView`) with the ``ch04.*`` sizes.

    Introduced in ``lectures/04_octrees.ipynb``.
    """
    from course_lib.models.ogn import OGNSingleView

    from .voxels import set_bn_momentum

    s = config.sizes(profile, prefix="ch04.")
    model = OGNSingleView(int(resolution or s["resolution"]), s["latent_dim"], s["resnet_width"], s["tree_depth"],
                          tuple(s["ogn_channels"]))
    return set_bn_momentum(model, s["bn_momentum"])


def train_ogn_svr(resolution: int, profile: str | None = None, *, data: dict[str, Any] | None = None,
                  val_data: dict[str, Any] | None = None, seed: int | None = None, retrain: bool = False,
                  progress: bool = True, **fit_kwargs: Any) -> tuple[torch.nn.Module, Any]:
    """Train (or load) the single-view OGN at ``resolution``; the epoch with the lowest validation loss is kept.

    Introduced in ``lectures/04_octrees.ipynb``.  Chapter 03's recipe (Adam, cosine decay over
    ``ch04.svr_epochs`` epochs, ``ch04.batch_size``), the same shapes, views and steps at every resolution, so
    the resolutions differ only in the grids they are supervised with.
    """
    profile = profile or config.get_profile()
    s = config.sizes(profile, prefix="ch04.")
    R = int(resolution)
    sd = _seed(seed, profile)
    data = data or svr_data("train", R, profile)
    val_data = val_data or svr_data("val", R, profile)
    if int(data["voxels"].shape[-1]) != R or int(val_data["voxels"].shape[-1]) != R:
        raise ValueError(f"train_ogn_svr: the grids must be {R}^3, got {tuple(data['voxels'].shape[-3:])} and "
                         f"{tuple(val_data['voxels'].shape[-3:])}")
    config.seed_everything(sd)
    model = build_ogn_svr(profile, R)
    fit_kwargs.setdefault("epochs", int(s["svr_epochs"]))
    return model, _train(model, "ch04_ogn_svr", ogn_loss_fn, profile, data, val_data, retrain, progress, None, sd,
                         "svr-cosine-v1", task="svr", spec={"epochs": fit_kwargs["epochs"]}, **fit_kwargs)


def upsample_grid(grid: Tensor, resolution: int) -> Tensor:
    """Nearest-neighbour upsampling of ``(..., r, r, r)`` grids to ``resolution^3`` (each voxel becomes a block).

    Introduced in ``lectures/04_octrees.ipynb`` (a low-resolution prediction scored at a higher resolution).
    ``resolution`` must be a multiple of ``r``.
    """
    r = int(grid.shape[-1])
    R = int(resolution)
    if grid.dim() < 3 or not (grid.shape[-1] == grid.shape[-2] == grid.shape[-3]):
        raise ValueError(f"upsample_grid: expected (..., r, r, r) grids, got {tuple(grid.shape)}")
    if R < r or R % r:
        raise ValueError(f"upsample_grid: {R} is not a multiple of the grids' resolution {r}")
    k = R // r
    return grid.repeat_interleave(k, -1).repeat_interleave(k, -2).repeat_interleave(k, -3)


@torch.no_grad()
def svr_iou_at(model: torch.nn.Module, rgb: Tensor, truth: Tensor, batch_size: int = 8) -> Tensor:
    """Per-shape IoU of a single-view OGN's predicted grids, upsampled to the resolution of ``truth``.

    Introduced in ``lectures/04_octrees.ipynb``.  Decodes each image with the predicted structure
    (``PROP_PRED``), upsamples the ``R^3`` occupancy to ``truth``'s resolution (:func:`upsample_grid`) and
    scores it against ``truth`` ``(S, R', R', R')`` (:func:`course_lib.metrics.volumetric_iou`).
    """
    from course_lib.metrics import volumetric_iou
    from course_lib.models.ogn import PROP_PRED

    if rgb.shape[0] != truth.shape[0]:
        raise ValueError(f"svr_iou_at: {rgb.shape[0]} images but {truth.shape[0]} grids")
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for i in range(0, rgb.shape[0], batch_size):
        pred = model(rgb[i:i + batch_size].to(dev), mode=PROP_PRED).occupancy()
        pred = upsample_grid(pred, int(truth.shape[-1]))
        out.append(volumetric_iou(pred, truth[i:i + batch_size].to(dev) > 0.5, batched=True, reduction="none").cpu())
    return torch.cat(out).double()


# ---------------------------------------------------------------------------
# the octree encoder (OctNet) against its dense twin
# ---------------------------------------------------------------------------
ENCODER_KINDS = ("octree", "dense")
"""The two classifiers :func:`train_grid_classifier` trains: OctNet's layout on octrees, and on dense grids."""


def build_grid_classifier(kind: str, n_classes: int, profile: str | None = None) -> torch.nn.Module:
    """:class:`~course_lib.models.octnet.OctNetClassifier` (``"octree"``) or its dense twin (``"dense"``).

    Introduced in ``lectures/04_octrees.ipynb``; widths ``ch04.octnet_channels``.
    """
    from course_lib.models.octnet import DenseGridClassifier, OctNetClassifier

    if kind not in ENCODER_KINDS:
        raise ValueError(f"kind must be one of {ENCODER_KINDS}, got {kind!r}")
    ch = tuple(config.size("ch04.octnet_channels", profile))
    return (OctNetClassifier if kind == "octree" else DenseGridClassifier)(int(n_classes), ch)


def train_grid_classifier(kind: str, profile: str | None = None, *, data: dict[str, Any] | None = None,
                          val_data: dict[str, Any] | None = None, seed: int | None = None, retrain: bool = False,
                          progress: bool = True) -> tuple[torch.nn.Module, Any]:
    """Train (or load) the octree or the dense classifier on ``data``'s grids (default: the train split at
    ``ch04.octnet_resolution``); best epoch on val.

    Introduced in ``lectures/04_octrees.ipynb``.  The same grids, batches, epochs (``ch04.octnet_epochs``),
    optimiser, schedule and loss (chapter 03's :func:`~course_lib.experiments.voxels.classification_loss`) for
    both, so the two differ only in the data structure the convolutions run on (the octree network builds its
    octrees from each batch of grids).  Score them with :func:`course_lib.experiments.voxels.accuracy`.
    """
    from .voxels import classification_loss

    profile = profile or config.get_profile()
    s = config.sizes(profile, prefix="ch04.")
    R = int(s["octnet_resolution"])
    sd = _seed(seed, profile)
    data = data or octree_data("train", profile, resolution=R)
    val_data = val_data or octree_data("val", profile, resolution=R)
    config.seed_everything(sd)
    model = build_grid_classifier(kind, len(data["categories"]), profile)
    return model, _train(model, f"ch04_classifier_{kind}", classification_loss, profile, data, val_data, retrain,
                         progress, None, sd, "cosine-v1", task="voxnet", epochs=int(s["octnet_epochs"]),
                         spec={"epochs": int(s["octnet_epochs"]), "channels": list(s["octnet_channels"])})


def encoder_cost(resolutions: Sequence[int] | None = None, *, profile: str | None = None,
                 batch_size: int | None = None, categories: Sequence[str] = ("chair", "airplane"),
                 repeat: int = 2, device: torch.device | str | None = None,
                 max_dense_bytes: float | None = None) -> list[dict[str, Any]]:
    """Time and peak memory of one training step (forward + backward) of the octree and the dense classifier.

    Introduced in ``lectures/04_octrees.ipynb``.  At each ``R`` (default ``ch04.octnet_cost_resolutions``), a batch
    of ``batch_size`` (``ch04.cost_batch``) demo shapes.  Three rows: ``octree`` builds the octree and its
    convolution operators in the step (they depend on the input's structure; the first epoch of training pays
    this), ``octree (cached)`` finds them in a :class:`~course_lib.models.octnet.StructureCache` (every later
    epoch), ``dense``.  Peak memory as :func:`decoder_cost`.  A dense step whose first activation alone would
    exceed ``max_dense_bytes`` is skipped and said so.
    """
    from course_lib.data import make_shape, voxelize
    from course_lib.geometry.octree import build_octree
    from course_lib.models.octnet import StructureCache

    from .point_sets import peak_memory
    from .voxels import classification_loss

    s = config.sizes(profile, prefix="ch04.")
    res = tuple(resolutions or s["octnet_cost_resolutions"])
    B = int(batch_size or s["cost_batch"])
    dev = config.get_device(device)
    max_b = float(max_dense_bytes) if max_dense_bytes is not None else 0.5 * _available_bytes(dev)
    rows = []
    for R in res:
        grids = torch.stack([voxelize(make_shape(categories[i % len(categories)], _demo_seed()), int(R))
                             for i in range(B)]).float().to(dev)
        labels = torch.zeros(B, dtype=torch.long, device=dev)
        for name in ("octree", "octree (cached)", "dense"):
            kind = name.split()[0]
            torch.manual_seed(0)
            model = build_grid_classifier(kind, 2, profile).to(dev)
            c0 = int(s["octnet_channels"][0])
            if kind == "dense" and 4.0 * B * c0 * int(R) ** 3 * 4 > max_b:
                rows.append({"encoder": name, "resolution": int(R), "peak_bytes": float("nan"),
                             "seconds": float("nan"), "skipped": "too large for this machine's memory"})
                continue
            if kind == "octree":
                model.cache_structure = name == "octree (cached)"
                model.cache = StructureCache()  # its own: the warm-up step of _measure fills it

            def step(model: Any = model, grids: Tensor = grids, labels: Tensor = labels) -> None:
                model.zero_grad(set_to_none=True)
                classification_loss(model, {"input": grids, "label": labels})["loss"].backward()

            row = {"encoder": name, "resolution": int(R), **_measure(step, dev, repeat, peak_memory)}
            if kind == "octree":
                row["leaves_per_shape"] = build_octree(grids > 0.5, 3).num_cells / B
            if name == "octree (cached)":
                row["cache_bytes_per_shape"] = model.cache.nbytes / max(1, len(model.cache))
            rows.append(row)
    return rows


def ae_rows(ae: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the OGN-vs-dense comparison with each row's budget (from the benchmark's ``ae`` part).

    Introduced in ``lectures/04_octrees.ipynb``: ``model``, IoU (mean and standard error over the
    training seeds), optimiser ``steps``, training ``examples``, mean training ``seconds``,
    ``params``, the ``loss`` and the ``decision`` rule; for :func:`rows_table`.
    """
    if "per_seed" not in ae or "budgets" not in ae:
        raise ValueError("ae_rows needs the 'ae' part of a protocol-2 octrees benchmark (with per_seed and budgets)")
    rows = []
    for k, name in (("dense", "dense (chapter 03 recipe)"), ("ogn", "OGN (predicted structure)")):
        b = ae["budgets"][k]
        rows.append({"model": name, "IoU (mean over seeds)": float(ae[f"iou_{k}"]),
                     "se (seeds)": float(ae[f"iou_{k}_se"]), "steps": b["steps"], "examples": b["examples"],
                     "train seconds": round(float(b["seconds"]), 1), "params": b["params"], "loss": b["loss"],
                     "decision": b["decision"]})
    return rows


# ---------------------------------------------------------------------------
# memory and time of the decoders
# ---------------------------------------------------------------------------
def decoder_cost(resolutions: Sequence[int] | None = None, *, profile: str | None = None,
                 batch_size: int | None = None, device: torch.device | str | None = None, repeat: int = 2,
                 categories: Sequence[str] = ("chair", "airplane"), dense_channels: Sequence[int] | None = None,
                 max_dense_bytes: float | None = None, progress: bool = False) -> list[dict[str, Any]]:
    """Peak memory and time of one forward+backward of the OGN decoder and of the dense decoder.

    Introduced in ``lectures/04_octrees.ipynb``.  At each ``R``: ``batch_size`` ShapeNet-lite
    shapes (``categories`` in turn, the demo seed); the OGN decoder runs with the known structure
    and its loss, the dense :class:`~course_lib.models.voxels.VoxelDecoder` with the BCE, both from
    the same random latent codes, with the ``ch04.*`` widths (and the dense one also with each of
    ``dense_channels``).  Peak memory is :func:`course_lib.experiments.point_sets.peak_memory`
    (CUDA allocator peak, or the CPU resident-set peak).  A dense run whose activations alone would
    exceed ``max_dense_bytes`` is skipped and reported as such.
    """
    from tqdm.auto import tqdm

    from course_lib.data import make_shape, voxelize
    from course_lib.geometry.octree import build_octree
    from course_lib.models.ogn import PROP_KNOWN, OGNDecoder, ogn_loss
    from course_lib.models.voxels import VoxelDecoder, voxel_bce

    from .point_sets import peak_memory

    s = config.sizes(profile, prefix="ch04.")
    res = tuple(resolutions or s["cost_resolutions"])
    B = int(batch_size or s["cost_batch"])
    dev = config.get_device(device)
    L = int(s["latent_dim"])
    widths = tuple(dense_channels) if dense_channels is not None else (int(s["dense_channels"]),)
    max_b = float(max_dense_bytes) if max_dense_bytes is not None else 0.5 * _available_bytes(dev)
    rows: list[dict[str, Any]] = []
    for R in tqdm(res, disable=not progress, desc="decoder cost"):
        vox = torch.stack([voxelize(make_shape(categories[i % len(categories)], _demo_seed()), R)
                           for i in range(B)]).to(dev)
        target = build_octree(vox, s["tree_depth"])
        torch.manual_seed(0)
        z = torch.randn(B, L, device=dev)
        ogn = OGNDecoder(L, R, s["tree_depth"], tuple(s["ogn_channels"])).to(dev)

        def ogn_step(ogn: Any = ogn, z: Tensor = z, target: Any = target) -> None:
            ogn.zero_grad(set_to_none=True)
            ogn_loss(ogn(z, target, PROP_KNOWN))["loss"].backward()

        rows.append({"decoder": "ogn", "resolution": R, **_measure(ogn_step, dev, repeat, peak_memory),
                     "cells": sum(c.shape[0] for c in ogn(z, target, PROP_KNOWN).cells) / B})
        for w in widths:
            est = 4.0 * B * w * R ** 3 * 6  # the last stage alone: conv-T output, BN, ReLU, grads (float32)
            if est > max_b:
                rows.append({"decoder": f"dense (base {w})", "resolution": R, "peak_bytes": float("nan"),
                             "seconds": float("nan"), "cells": R ** 3, "skipped": f"needs > {est / 2**30:.1f} GiB"})
                continue
            dense, target_d = VoxelDecoder(L, R, base_channels=w).to(dev), vox.float()

            def dense_step(dense: Any = dense, z: Tensor = z, target: Tensor = target_d) -> None:
                dense.zero_grad(set_to_none=True)
                voxel_bce(dense(z), target).backward()

            rows.append({"decoder": f"dense (base {w})", "resolution": R,
                         **_measure(dense_step, dev, repeat, peak_memory), "cells": R ** 3})
    return rows


# ---------------------------------------------------------------------------
# the memory account: stored bytes, working bytes, dense rivals
# ---------------------------------------------------------------------------
ACCOUNT_ROWS = ("octree_stored_bytes", "octree_working_bytes", "decoder_working_bytes", "dense_float_bytes",
                "dense_bit_bytes")
"""The rows of :func:`memory_account` whose growth :func:`memory_exponents` fits by default."""


def _nbytes(*tensors: Tensor) -> int:
    return sum(t.element_size() * t.numel() for t in tensors)


def _cache_bytes(tree: Any) -> int:
    """Bytes of every tensor in an octree's derived-geometry cache (``Leaves`` fields, leaf keys, ...)."""
    import dataclasses

    total = 0
    for v in tree._cache.values():
        if isinstance(v, Tensor):
            total += _nbytes(v)
        elif dataclasses.is_dataclass(v):
            total += _nbytes(*(getattr(v, f.name) for f in dataclasses.fields(v)
                               if isinstance(getattr(v, f.name), Tensor)))
    return total


def decoder_buffers(decoder: torch.nn.Module, z: Tensor, target: Any) -> dict[str, Any]:
    """The working tensors of one forward+backward of an :class:`~course_lib.models.ogn.OGNDecoder`, in bytes.

    Introduced in ``lectures/04_octrees.ipynb``.  Decodes ``z`` with the known structure of ``target``
    (``PROP_KNOWN``, so the cells are the target's and do not depend on the weights) and
    back-propagates :func:`~course_lib.models.ogn.ogn_loss`, under
    :func:`~course_lib.models.ogn.trace_buffers` (every cell list, feature and logit tensor, the root
    grid, each :class:`~course_lib.models.ogn.SparseConv3d`'s im2col columns and neighbour index, and
    the lookup's table or sorted keys) and a ``saved_tensors_hooks`` that sums the distinct storages
    autograd keeps for the backward pass (parameters left out).  Returns ``{"by_name": {name: bytes},
    "trace": [...], "accounted_bytes": sum of the trace, "autograd_saved_bytes": ...,
    "mixed_cells": cells expanded, "cells": cells held, "lookups": [(resolution, method), ...]}``.
    """
    from course_lib.models.ogn import PROP_KNOWN, ogn_loss, trace_buffers

    params = {p.untyped_storage().data_ptr() for p in decoder.parameters()}
    saved: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            saved[st.data_ptr()] = max(saved.get(st.data_ptr(), 0), st.nbytes())
        return t

    decoder.zero_grad(set_to_none=True)
    with trace_buffers() as rec, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = decoder(z, target, PROP_KNOWN)
        loss = ogn_loss(out)["loss"]
    loss.backward()
    by_name: dict[str, int] = {}
    for r in rec:
        by_name[r["name"]] = by_name.get(r["name"], 0) + int(r["bytes"])
    lookups = [(r["resolution"], "table" if r["name"] == "lookup: dense table" else "sort") for r in rec
               if r["name"] in ("lookup: dense table", "lookup: sorted keys")]
    return {"by_name": by_name, "trace": rec, "accounted_bytes": int(sum(by_name.values())),
            "autograd_saved_bytes": int(sum(saved.values())),
            "mixed_cells": int(sum(int(e.sum()) for e in out.expanded)), "cells": int(sum(out.num_cells)),
            "lookups": lookups}


def dense_decoder_buffers(resolution: int, *, latent_dim: int, base_channels: int, batch_size: int = 1,
                          device: torch.device | str = "meta") -> dict[str, Any]:
    """The working tensors of one forward+backward of the dense :class:`~course_lib.models.voxels.VoxelDecoder`, in bytes.

    Introduced in ``lectures/04_octrees.ipynb``: the dense decoder's side of the working-memory
    account, counted the way :func:`decoder_buffers` counts the OGN's.  A forward hook on every leaf
    module sums the bytes of what it returns (``forward_bytes``: the linear seed, each stage's
    transposed convolution, BatchNorm and ReLU outputs, the read-out's logits), and a
    ``saved_tensors_hooks`` sums the distinct storages autograd keeps for the backward pass of
    :func:`~course_lib.models.voxels.voxel_bce` (``autograd_saved_bytes``, parameters left out).

    On ``device="meta"`` (the default) no tensor holds data, so the account of a 256^3 decoder that
    would need gigabytes costs nothing; the unit tests check that it equals the account of a real CPU
    run at small resolutions and an analytic count of the layers' outputs.  Returns ``{"resolution",
    "batch_size", "base_channels", "forward_bytes", "autograd_saved_bytes", "by_layer": {name: bytes}}``.
    """
    from course_lib.models.voxels import VoxelDecoder, voxel_bce

    dev = torch.device(device)
    R, B = int(resolution), int(batch_size)
    if B < 1:
        raise ValueError(f"dense_decoder_buffers: batch_size must be >= 1, got {batch_size}")
    dec = VoxelDecoder(int(latent_dim), R, base_channels=int(base_channels)).to(dev)
    params = {id(p) for p in dec.parameters()}
    saved: dict[tuple[int, int], int] = {}
    keep: list[Tensor] = []  # holds every saved tensor so that no storage id is reused during the count

    def pack(t: Tensor) -> Tensor:
        if id(t) not in params:
            st = t.untyped_storage()
            # meta storages all report data_ptr 0; the storage object's id tells them apart
            key = (st.data_ptr(), id(st) if t.device.type == "meta" else 0)
            saved[key] = max(saved.get(key, 0), st.nbytes())
            keep.append(t)
        return t

    by_layer: dict[str, int] = {}
    hooks = []
    for name, m in dec.named_modules():
        if next(m.children(), None) is None:
            def hook(mod: torch.nn.Module, inp: Any, out: Tensor, name: str = name) -> None:
                by_layer[name] = by_layer.get(name, 0) + out.element_size() * out.numel()
            hooks.append(m.register_forward_hook(hook))
    try:
        z = torch.zeros(B, int(latent_dim), device=dev)
        target = torch.zeros(B, R, R, R, device=dev)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = voxel_bce(dec(z), target)
        loss.backward()
    finally:
        for h in hooks:
            h.remove()
    return {"resolution": R, "batch_size": B, "base_channels": int(base_channels),
            "forward_bytes": int(sum(by_layer.values())), "autograd_saved_bytes": int(sum(saved.values())),
            "by_layer": by_layer}


def memory_account(resolutions: Sequence[int] | None = None, categories: Sequence[str] | None = None, *,
                   profile: str | None = None, seed: int | None = None, tree_depth: int | None = None,
                   decoder: bool = True, progress: bool = False) -> list[dict[str, Any]]:
    """Stored and working bytes of the chapter's octree code against dense grids, per shape and resolution.

    Introduced in ``lectures/04_octrees.ipynb``.  One ShapeNet-lite shape per category (default
    ``ch04.categories``, the demo seed as in :func:`compression`) at each ``R`` (default
    ``ch04.compression_resolutions``); every number is ``element_size() * numel()`` of tensors the
    course's code really builds:

    * ``octree_stored_bytes``: :attr:`Octree.nbytes` (split bits, ``prefix_leafs``, leaf values),
      the number :func:`compression` reports;
    * ``leaf_cache_bytes``: the octree's derived per-leaf geometry (:meth:`Octree.leaves`, the leaf
      keys of :meth:`Octree.locate`), what every traversal and operation uses;
    * ``conv_operator_bytes``: the indices and values of :func:`~course_lib.geometry.octree.conv_operator`
      (the sparse matrix of one :class:`OctreeConv3d`, built once per structure);
    * ``octree_working_bytes``: stored + leaf cache + operator;
    * ``decoder_working_bytes`` (``decoder=True``): :func:`decoder_buffers` of one forward+backward of
      an :class:`~course_lib.models.ogn.OGNDecoder` (``ch04.*`` widths, batch 1, known structure), with
      its parts ``decoder_<name>_bytes``, ``decoder_autograd_saved_bytes``, ``mixed_cells``,
      ``decoder_cells`` and ``lookups`` (the lookup each sparse convolution used);
    * ``dense_float_bytes``: the float32 grid :meth:`Octree.to_dense` returns (``4 R^3``);
    * ``dense_bit_bytes``: the occupancy packed one bit per voxel (``numpy.packbits``, ``R^3 / 8``).
    """
    from tqdm.auto import tqdm

    from course_lib.data import make_shape, voxelize
    from course_lib.geometry.octree import build_octree, conv_operator
    from course_lib.models.ogn import OGNDecoder

    s = config.sizes(profile, prefix="ch04.")
    res = tuple(resolutions or s["compression_resolutions"])
    cats = tuple(categories or s["categories"])
    D = int(tree_depth or s["tree_depth"])
    sd = _demo_seed() if seed is None else int(seed)
    rows: list[dict[str, Any]] = []
    for c in tqdm(cats, disable=not progress, desc="memory account"):
        shape = make_shape(c, sd)
        for R in res:
            occ = voxelize(shape, R)
            t = build_octree(occ, D)
            stored = t.nbytes
            t.leaves()
            t._leaf_keys()
            S = conv_operator(t)
            cache = _cache_bytes(t)
            op = _nbytes(S.indices(), S.values())
            del S
            row: dict[str, Any] = {"shape": c, "resolution": R, "leaves": t.num_cells, "octree_stored_bytes": stored,
                                   "leaf_cache_bytes": cache, "conv_operator_bytes": op,
                                   "octree_working_bytes": stored + cache + op}
            if decoder:
                torch.manual_seed(0)
                dec = OGNDecoder(int(s["latent_dim"]), R, D, tuple(s["ogn_channels"]))
                z = torch.randn(1, int(s["latent_dim"]))
                buf = decoder_buffers(dec, z, t)
                row.update({f"decoder_{k.replace(':', '').replace(' ', '_')}_bytes": v
                            for k, v in sorted(buf["by_name"].items())})
                row.update({"decoder_working_bytes": buf["accounted_bytes"],
                            "decoder_autograd_saved_bytes": buf["autograd_saved_bytes"],
                            "mixed_cells": buf["mixed_cells"], "decoder_cells": buf["cells"],
                            "lookups": ", ".join(f"{r}^3 {m}" for r, m in buf["lookups"])})
                del dec, buf
            row["dense_float_bytes"] = _nbytes(t.to_dense())
            row["dense_bit_bytes"] = int(np.packbits(occ.numpy().astype(bool)).nbytes)
            rows.append(row)
    return rows


def memory_exponents(rows: Sequence[dict[str, Any]], keys: Sequence[str] = ACCOUNT_ROWS) -> dict[str, dict[str, float]]:
    """Fitted growth exponents ``k`` (bytes ~ ``R^k``, least squares on log-log) of :func:`memory_account` rows.

    Introduced in ``lectures/04_octrees.ipynb``.  Returns ``{key: {shape: k, ..., "mean": mean over
    shapes}}`` for each of ``keys`` present in the rows (:func:`course_lib.geometry.memory.fitted_exponents`
    per shape; a shape needs at least two resolutions).
    """
    from course_lib.geometry.memory import fitted_exponents

    out: dict[str, dict[str, float]] = {}
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    for k in keys:
        if not any(k in r for r in rows):
            continue
        per: dict[str, float] = {}
        for sh in shapes:
            pts = sorted((r["resolution"], r[k]) for r in rows if r["shape"] == sh and k in r)
            if len(pts) >= 2:
                per[sh] = fitted_exponents([p[0] for p in pts], {k: [p[1] for p in pts]})[k]
        if per:
            per["mean"] = float(np.mean(list(per.values())))
            out[k] = per
    return out


def account_table(rows: Sequence[dict[str, Any]], keys: Sequence[str] = ACCOUNT_ROWS) -> list[dict[str, Any]]:
    """Per resolution, the mean over shapes of each of ``keys`` of :func:`memory_account` rows (bytes).

    Introduced in ``lectures/04_octrees.ipynb``; for :func:`rows_table`.
    """
    out = []
    for R in sorted({r["resolution"] for r in rows}):
        sel = [r for r in rows if r["resolution"] == R]
        out.append({"R": R, "shapes": len(sel),
                    **{k: float(np.mean([r[k] for r in sel])) for k in keys if all(k in r for r in sel)}})
    return out


ACCOUNT_LABELS = {"octree_stored_bytes": "octree, stored", "leaf_cache_bytes": "octree, per-leaf cache",
                  "conv_operator_bytes": "octree, conv operator", "octree_working_bytes": "octree, working (all three)",
                  "decoder_working_bytes": "OGN decoder, working (fwd+bwd)", "dense_float_bytes": "dense float32 grid",
                  "dense_bit_bytes": "dense bitmask"}
"""Row labels of :func:`account_summary`."""


def account_summary(rows: Sequence[dict[str, Any]], keys: Sequence[str] = tuple(ACCOUNT_LABELS)) -> list[dict[str, Any]]:
    """One line per kind of bytes: the mean over shapes at each resolution and the fitted exponent.

    Introduced in ``lectures/04_octrees.ipynb`` (for :func:`rows_table`).  From :func:`memory_account`
    rows (or the benchmark's ``working_memory`` part): ``{"bytes": label, "<R>^3 bytes": mean, ...,
    "k (mean)": ..., "k min": ..., "k max": ...}`` where ``k`` is :func:`memory_exponents` per shape.
    """
    table = {int(t["R"]): t for t in account_table(rows, keys)}
    exps = memory_exponents(rows, keys)
    out = []
    for k in keys:
        if k not in exps:
            continue
        per = [v for sh, v in exps[k].items() if sh != "mean"]
        out.append({"bytes": ACCOUNT_LABELS.get(k, k), **{f"{R}^3 bytes": table[R][k] for R in sorted(table)},
                    "k (mean)": round(exps[k]["mean"], 2), "k min": round(min(per), 2), "k max": round(max(per), 2)})
    return out


def crossing_resolution(rows: Sequence[dict[str, Any]], a: str, b: str) -> float | None:
    """The resolution where the fitted power laws of the mean ``a`` and ``b`` bytes (over shapes) meet.

    Introduced in ``lectures/04_octrees.ipynb``: e.g. ``("octree_working_bytes", "dense_float_bytes")``
    says from which ``R`` the octree's working set would be smaller than a one-channel float grid, if
    the measured growth went on.  A least-squares line through ``log(mean bytes)`` against ``log(R)``
    for each; ``None`` when the slopes are equal.  An extrapolation: say so where it lies outside the
    measured resolutions.
    """
    t = account_table(rows, (a, b))
    x = np.log([r["R"] for r in t])
    ka, ca = np.polyfit(x, np.log([r[a] for r in t]), 1)
    kb, cb = np.polyfit(x, np.log([r[b] for r in t]), 1)
    if abs(ka - kb) < 1e-12:
        return None
    return float(np.exp((cb - ca) / (ka - kb)))


def _available_bytes(dev: torch.device) -> float:
    if dev.type == "cuda":
        return float(torch.cuda.get_device_properties(dev).total_memory)
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 8.0 * 2 ** 30


def _measure(step: Callable[[], None], dev: torch.device, repeat: int, peak_memory: Callable) -> dict[str, float]:
    step()  # warm-up
    _, peak = peak_memory(step, dev)
    times = []
    for _ in range(max(1, repeat)):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t0)
    return {"peak_bytes": float(peak), "seconds": float(np.median(times))}


# ---------------------------------------------------------------------------
# figures and tables of the lecture
# ---------------------------------------------------------------------------
def level_counts(tree: Any) -> list[dict[str, Any]]:
    """Per level of an occupancy octree: resolution, cells that exist, and how many are empty / full / mixed.

    Introduced in ``lectures/04_octrees.ipynb``.
    """
    from course_lib.geometry.octree import EMPTY, FULL, MIXED

    rows = []
    for lev in range(tree.tree_depth + 1):
        st = tree.cell_states(lev)
        rows.append({"level": lev, "resolution": tree.grid * 2 ** lev, "cells": int(st.numel()),
                     "empty": int((st == EMPTY).sum()), "full": int((st == FULL).sum()),
                     "mixed": int((st == MIXED).sum()), "dense_cells": tree.batch_size * (tree.grid * 2 ** lev) ** 3})
    return rows


_STATE_COLOURS = ((0.0, "#f4f4f4"), (0.333, "#f4f4f4"), (0.333, "#2f6db5"), (0.667, "#2f6db5"),
                  (0.667, "#f39c12"), (1.0, "#f39c12"))


def slice_figure(tree: Any, level: int, index: int, axis: int = 2, title: str | None = None) -> Any:
    """A slice through an occupancy octree: left the states of the level-``level`` cells, right the leaves.

    Introduced in ``lectures/04_octrees.ipynb`` (its widget).  The slice is the plane ``index`` (in
    voxels of the finest grid) across ``axis``.  Left: every cell of the level's grid that the
    plane crosses, coloured empty (light), full (blue) or mixed (orange); right: the side of the
    leaf holding each voxel (``log2``: 0 for single voxels), so the adaptive structure shows.
    The title gives the octree's and the dense grid's memory.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    R, D = tree.resolution, tree.tree_depth
    if not 0 <= int(index) < R:
        raise ValueError(f"index must be in [0, {R}), got {index}")
    st = tree.states(level)[0]
    s = 2 ** (D - level)
    sl = [slice(None)] * 3
    sl[axis] = int(index) // s
    plane = st[tuple(sl)].repeat_interleave(s, 0).repeat_interleave(s, 1).float().numpy()
    lv = tree.leaves()
    dense_level = tree.with_values(torch.log2(lv.size.float())[:, None]).to_dense()[0]
    sl[axis] = int(index)
    sizes = dense_level[tuple(sl)].numpy()
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"cell states at level {level} ({R // s}^3 grid)",
                                                        "leaves: log2(side in voxels)"))
    fig.add_trace(go.Heatmap(z=plane.T, zmin=0, zmax=2, colorscale=list(_STATE_COLOURS), showscale=True,
                             colorbar=dict(tickvals=[0.33, 1, 1.67], ticktext=["empty", "full", "mixed"], x=0.45),
                             hovertemplate="state %{z}<extra></extra>"), 1, 1)
    fig.add_trace(go.Heatmap(z=sizes.T, zmin=0, zmax=D, colorscale="Viridis",
                             colorbar=dict(title="log2 side"), hovertemplate="log2 side %{z}<extra></extra>"), 1, 2)
    for c in (1, 2):
        fig.update_xaxes(scaleanchor=f"y{c if c > 1 else ''}", constrain="domain", row=1, col=c)
    mem = (f"octree {tree.nbytes / 1024:.1f} KiB ({tree.num_cells} leaves) vs dense float32 "
           f"{tree.dense_nbytes() / 1024:.0f} KiB ({tree.dense_nbytes() / tree.nbytes:.1f}x)")
    fig.update_layout(title=(title + " | " if title else "") + mem, height=420, width=900)
    return fig


def memory_figure(rows: Sequence[dict[str, Any]], title: str = "memory against resolution") -> Any:
    """Log-log curves of octree bytes per shape against the dense float32 grid (rows of :func:`compression`).

    Introduced in ``lectures/04_octrees.ipynb``.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    res = sorted({r["resolution"] for r in rows})
    for name in dict.fromkeys(r["shape"] for r in rows):
        pts = sorted((r["resolution"], r["octree_bytes"]) for r in rows if r["shape"] == name)
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=name))
    fig.add_trace(go.Scatter(x=res, y=[4 * R ** 3 for R in res], mode="lines", name="dense float32 (R^3)",
                             line=dict(color="black", dash="dash")))
    fig.add_trace(go.Scatter(x=res, y=[R ** 3 / 8 for R in res], mode="lines", name="dense, 1 bit per voxel",
                             line=dict(color="gray", dash="dot")))
    fig.update_xaxes(type="log", title="resolution R", tickvals=res)
    fig.update_yaxes(type="log", title="bytes")
    fig.update_layout(title=title, height=420)
    return fig


# ---------------------------------------------------------------------------
# GPU smoke hook
# ---------------------------------------------------------------------------
def _ball(R: int, radius: float) -> Tensor:
    t = (torch.arange(R) + 0.5) / R * 2 - 1
    x, y, z = torch.meshgrid(t, t, t, indexing="ij")
    return (x ** 2 + y ** 2 + z ** 2) < radius ** 2


def smoke(device: str = "cpu", steps: int = 1, profile: str = "gpu") -> dict[str, float]:
    """A few training steps of the OGN auto-encoder (known structure) on ``device`` with ``profile``'s sizes.

    Introduced for ``benchmarks/gpu_smoke.py``: one synthetic batch of ``ch04.batch_size`` balls of
    random radii at ``ch04.resolution`` (no data generation, no checkpoint).
    """
    from .common import smoke_steps

    s = config.sizes(profile, prefix="ch04.")
    b, R = int(s["batch_size"]), int(s["resolution"])
    g = torch.Generator().manual_seed(0)
    grids = torch.stack([_ball(R, 0.3 + 0.5 * float(r)).float() for r in torch.rand(b, generator=g)])
    torch.manual_seed(0)
    r = smoke_steps(build_ogn(profile), {"input": grids, "target": grids}, ogn_loss_fn, steps=steps, device=device,
                    lr=float(s["lr"]))
    return {f"ogn_{k}": v for k, v in r.items()} | {"seconds": r["seconds"]}
