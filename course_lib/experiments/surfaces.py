"""The experiments of chapter 06 (surfaces), shared by the lecture, the lab and the benchmark.

Introduced in ``lectures/06_surfaces.ipynb``.  Built on the shared layer of
:mod:`course_lib.experiments.common` (splits, :class:`~course_lib.experiments.common.Batches`,
``predict``) and :func:`course_lib.train.checkpoint_path`.

* :func:`surface_dataset`: ShapeNet-lite shapes of a split (:class:`course_lib.data.ShapeNetLite`):
  the encoder's input ``points`` (sampling stream 0) with their part labels, an independent
  sampling ``target_points`` (stream 1: the loss' and the metric's target), the ``oracle_points``
  (stream 2) and rendered views;
* :func:`build_atlasnet`, :func:`train_atlasnet`: AtlasNet auto-encoders (PointNet) and
  single-view models (ResNet) trained with :func:`course_lib.train.train_or_load`;
* :func:`evaluate_chamfer`, :func:`oracle_chamfer`: the Chamfer distance on held-out shapes
  in one stated convention (:data:`CD_CONVENTION`);
* :func:`train_coded`, :func:`label_transfer`: 3D-CODED on one category (the template is the
  reserved shape ``reserved_seed("template")``, outside every split) and the accuracy of part
  labels carried from the template;
* the chapter's recipes (protocol 2, :mod:`course_lib.experiments.protocol`):
  :func:`chapter_splits` (train and val), :func:`train_chapter_model` / :func:`train_chapter_coded`
  (one recipe per model, the epoch kept chosen on ``val``; the lecture, the benchmark and chapter 11
  load the same checkpoints), :func:`best_epoch_record`, :func:`training_budget`,
  :func:`select_poisson_resolution` (Poisson's grid chosen on ``val``), :func:`retrieval_clouds`
  (the nearest training shape as a baseline), :func:`format_measured` (the benchmark's tables);
* :func:`smoke`: a few training steps of every model (``benchmarks/gpu_smoke.py``).

Splits: :func:`course_lib.data.split_seeds` (the one scheme of the course): a test shape is
never a training shape, and the template is neither.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from course_lib import config
from course_lib import ops as _ops
from course_lib.experiments.common import (
    Batches,
    dataset_checkpoint_name,
    load_split,
    real_dataset,
    require_exact_shapes,
    subsample,
    tag_dataset,
)
from course_lib.metrics import describe_chamfer

__all__ = [
    "CD_CONVENTION",
    "surface_dataset",
    "surface_batches",
    "data_spec",
    "checkpoint_path",
    "build_atlasnet",
    "atlas_loss_fn",
    "chamfer_loss_fn",
    "fixed_template_loss_fn",
    "TEMPLATE_SAMPLING",
    "train_atlasnet",
    "output_size",
    "build_psg",
    "estimate_normals",
    "mesh_chamfer",
    "mesh_quality_summary",
    "chamfer_per_shape",
    "evaluate_chamfer",
    "oracle_chamfer",
    "coded_template",
    "train_coded",
    "label_transfer",
    "val_batches",
    "AE_MODELS",
    "SVR_MODELS",
    "POISSON_INPUTS",
    "parse_model_key",
    "chapter_splits",
    "build_chapter_model",
    "train_chapter_model",
    "train_chapter_coded",
    "best_epoch_record",
    "training_budget",
    "encode_all",
    "format_measured",
    "retrieval_clouds",
    "poisson_meshes",
    "mesh_chamfer_per_shape",
    "select_poisson_resolution",
    "smoke",
]

CD_CONVENTION = (describe_chamfer("atlasnet") + "; averaged over shapes; predictions are scored against "
                 "target_points, an independent sampling of the true surface that the encoder never saw")
"""The one convention every Chamfer number of chapter 06 uses."""


def surface_dataset(categories: Sequence[str], split: str, n_per_category: int, n_points: int,
                    image_size: int | None = None, n_input: int | None = None, *,
                    oracle: bool = False, profile: str | None = None, dataset: str | None = None,
                    root: str | None = None) -> dict[str, Any]:
    """ShapeNet-lite shapes of ``split``, stacked: input points with part labels, target points, views.

    Introduced in ``lectures/06_surfaces.ipynb``.

    Returns the stacked :class:`course_lib.data.ShapeNetLite` items: ``points``, ``normals``
    ``(S, n_input, 3)`` (the encoder's input, sampling stream 0; ``n_input`` defaults to
    ``n_points``), ``part`` ``(S, n_input)`` the part index of each input point into ``parts[s]``
    (the shape's own part names), ``target_points``, ``target_normals`` ``(S, n_points, 3)`` (an
    independent sampling: what the loss and the metrics compare with), with ``oracle``
    ``oracle_points`` ``(S, n_points, 3)`` (a third sampling), with ``image_size`` ``rgb``
    ``(S, 3, H, W)`` (one seeded random view per shape), and ``label``, ``seed``, ``category``
    (names), ``categories``.  One on-disk cache for every chapter.

    ``dataset`` / ``root`` (or ``COURSE_DATASET`` and ``COURSE_MODELNET_DIR`` / ``COURSE_SHAPENET_DIR``) read a
    real dataset's meshes instead (:class:`course_lib.data.real_split.RealShapes`: the same samplings, views
    rendered with ShapeNet-lite's cameras); real meshes have no part labels, so their rows have no ``part`` /
    ``parts`` (:func:`label_transfer` refuses them) and carry ``path``, ``manifest`` and ``dataset`` instead,
    which :func:`checkpoint_path` puts in the checkpoint's name.
    """
    from course_lib.data.real_split import dataset_name

    name = dataset_name(dataset)
    real = name != "shapenet-lite"
    reps = ["points"] + ([] if real else ["parts"]) + ["target_points"] + (["oracle_points"] if oracle else []) \
        + (["image"] if image_size else [])
    kw: dict[str, Any] = {"image_size": int(image_size)} if image_size else {}
    if real:
        kw.update(dataset=name, root=root)
    elif root is not None:
        raise ValueError("root= is for real datasets (dataset='modelnet' or 'shapenetcore')")
    out = load_split(split, reps, categories=list(categories), shapes_per_category=int(n_per_category),
                     profile=profile, n_points=int(n_input or n_points), n_target=int(n_points), **kw)
    if real:
        return tag_dataset(out, name, categories, split)
    from course_lib.data import make_shape

    out["parts"] = [make_shape(c, int(s)).parts for c, s in zip(out["category"], out["seed"].tolist())]
    return out


def surface_batches(data: dict[str, Any], batch_size: int, input_key: str = "points", n_input: int | None = None,
                    shuffle: bool = True, seed: int = 0) -> Batches:
    """Training batches ``{"input", "target", "index"}`` over :func:`surface_dataset` (fresh order every epoch).

    Introduced in ``lectures/06_surfaces.ipynb``: :class:`~course_lib.experiments.common.Batches` with
    ``input`` = ``data[input_key]`` (``"points"`` or ``"rgb"``; for points, ``n_input`` keeps a new
    random subset of each cloud every epoch) and ``target`` = ``target_points``.
    """
    transform = None
    if input_key == "points" and n_input is not None and n_input < data["points"].shape[1]:
        def transform(batch: dict[str, Any], gen: torch.Generator) -> dict[str, Any]:
            batch["input"] = subsample(batch["input"], int(n_input), gen)
            return batch

    return Batches(data, batch_size, keys=(input_key, "target_points"),
                   rename={input_key: "input", "target_points": "target"}, shuffle=shuffle, seed=seed,
                   transform=transform)


def data_spec(data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """What a chapter-06 checkpoint depends on in ``data`` (categories, shapes, points, views) plus ``extra``."""
    spec: dict[str, Any] = {"categories": list(data["categories"]), "shapes": len(data["seed"]),
                            "seeds": [int(data["seed"].min()), int(data["seed"].max())],
                            "input_points": int(data["points"].shape[1]),
                            "target_points": int(data["target_points"].shape[1])}
    if "rgb" in data:
        spec["image"] = list(data["rgb"].shape[1:])
    real = real_dataset(data)
    if real is not None:
        spec["dataset"] = real
    spec.update(extra)
    return spec


def checkpoint_path(name: str, data: dict[str, Any], profile: str | None = None, **extra: Any) -> Path:
    """The checkpoint of the chapter-06 model ``name`` trained on ``data``: :func:`course_lib.train.checkpoint_path`
    keyed by :func:`data_spec` (and ``extra``: the loss variant, the input size, ...).

    Introduced in ``lectures/06_surfaces.ipynb``.  Rows of a real dataset (``dataset`` from
    :func:`surface_dataset`, or ``COURSE_DATASET``) put its name in the file name,
    ``ch06_<name>-<dataset>-<profile>-<hash>.pt``: never ShapeNet-lite's.
    """
    from course_lib.train import checkpoint_path as _path

    return _path(dataset_checkpoint_name(f"ch06_{name}", data), data_spec(data, **extra), profile)


def build_atlasnet(template: str = "square", n_patches: int = 25, latent_dim: int = 128,
                   encoder: str = "pointnet", hidden: Sequence[int] = (128, 128, 64),
                   n_points: int = 1024, image_channels: int = 3) -> Any:
    """An AtlasNet with a small PointNet (auto-encoding) or ResNet (single view) encoder.

    Introduced in ``lectures/06_surfaces.ipynb``.  CPU-sized: PointNet ``h`` = 64-128-256,
    ResNet of three stages (one residual block each, width 16); each patch decoder an MLP ``hidden`` (the paper:
    1024-512-256-128 with a 1024-d latent).
    """
    from course_lib.models.atlasnet import AtlasNet
    from course_lib.models.encoders import PointNet, ResNetEncoder

    if encoder == "pointnet":
        enc = PointNet(in_dim=3, feat_dim=256, hidden=(64, 128), out_dim=latent_dim)
    elif encoder == "resnet":
        enc = ResNetEncoder(in_channels=image_channels, layers=(1, 1, 1), width=16, out_dim=latent_dim)
    else:
        raise ValueError(f"encoder must be 'pointnet' or 'resnet', got {encoder!r}")
    return AtlasNet(enc, latent_dim, n_patches=n_patches if template == "square" else 1, template=template,
                    hidden=hidden, n_points=n_points)


def _forward(model: Any, x: Tensor, n_points: int) -> Tensor:
    """Points predicted by an AtlasNet (``n_points`` of them) or a fixed-size model (PointSetGen)."""
    from course_lib.models.atlasnet import AtlasNet

    if isinstance(model, AtlasNet):
        return model(x, n_points=n_points).points
    out = model(x)
    return out.points if hasattr(out, "points") else out


def build_psg(n_points: int, latent_dim: int = 128, encoder: str = "pointnet", image_channels: int = 3) -> Any:
    """PointSetGen (chapter 05, :mod:`course_lib.models.psg`) with exactly ``n_points`` outputs.

    Introduced in ``lectures/06_surfaces.ipynb`` as the baseline at equal points.  About a
    quarter of the points come from the fully connected branch, the rest from an
    ``H x W`` up-convolved map (``H``, ``W`` multiples of 8).
    """
    from course_lib.models import psg

    best = None
    for h in range(8, n_points + 1, 8):
        for w in range(h, n_points + 1, 8):
            hw = h * w
            if hw >= n_points:
                break
            score = abs(hw - 0.75 * n_points) + 0.01 * abs(w - 2 * h)
            if best is None or score < best[0]:
                best = (score, h, w)
    if best is None:
        raise ValueError(f"n_points={n_points} is too small for PointSetGen's map branch (needs > 64)")
    _, h, w = best
    n_fc = n_points - h * w
    if encoder == "pointnet":
        return psg.psg_autoencoder(latent_dim, n_fc, (h, w), encoder_hidden=(64, 128), encoder_feat_dim=256,
                                   fc_hidden=(256, 256), map_channels=64)
    if encoder == "resnet":
        return psg.psg_single_view(latent_dim, n_fc, (h, w), in_channels=image_channels, layers=(1, 1, 1),
                                   width=16, fc_hidden=(256, 256), map_channels=64)
    raise ValueError(f"encoder must be 'pointnet' or 'resnet', got {encoder!r}")


def atlas_loss_fn(n_points: int) -> Any:
    """``loss_fn(model, batch)`` for :func:`course_lib.train.fit`: Chamfer of ``n_points`` decoded points.

    The chapter's one training loss for every model that outputs points, AtlasNet *and* PointSetGen
    (the baseline at equal points, and chapter 10's): :data:`chamfer_loss_fn` is the same function
    under the name that says so.  For an AtlasNet the template is sampled afresh at every call in
    training mode (a lattice in eval mode); :func:`fixed_template_loss_fn` keeps one sample instead.
    (The name stays: it is part of the stored training signature of every chapter-06 checkpoint.)
    """

    def loss_fn(model: Any, batch: dict[str, Tensor]) -> Tensor:
        return _ops.chamfer_distance(_forward(model, batch["input"], n_points), batch["target"])

    return loss_fn


chamfer_loss_fn = atlas_loss_fn
"""The Chamfer training loss of any point-output model (AtlasNet or PointSetGen): :func:`atlas_loss_fn`."""

TEMPLATE_SAMPLING: tuple[str, ...] = ("random", "fixed")
"""How :func:`train_atlasnet` samples an AtlasNet's template at each step: ``"random"`` (fresh points every
step, the paper's and the chapter's) or ``"fixed"`` (one random sample, the same at every step and at
validation: lecture 06's exercise 1)."""


def fixed_template_loss_fn(n_points: int, seed: int = 0) -> Any:
    """:func:`atlas_loss_fn` with a *fixed* template: the same ``n_points`` random template points (drawn from
    ``seed``) at every step, in training and in eval mode.

    Introduced in ``lectures/06_surfaces.ipynb`` (exercise 1: the map is then trained only at those points;
    look at the mesh on a finer grid).  AtlasNet only: PointSetGen has no template.
    """

    def loss_fn(model: Any, batch: dict[str, Tensor]) -> Tensor:
        from course_lib.models.atlasnet import AtlasNet

        if not isinstance(model, AtlasNet):
            raise ValueError(f"a fixed template needs an AtlasNet; {type(model).__name__} has no template")
        gen = torch.Generator().manual_seed(int(seed))  # the same draw at every call
        pts = model(batch["input"], n_points=n_points, mode="random", generator=gen).points
        return _ops.chamfer_distance(pts, batch["target"])

    return loss_fn


def val_batches(data: dict[str, Any], batch_size: int, input_key: str = "points",
                n_input: int | None = None) -> Batches:
    """Validation batches over :func:`surface_dataset` data: a fixed order and, for points, the first
    ``n_input`` points of each cloud (i.i.d. samples, so a random subset that is the same every epoch).

    Introduced in ``lectures/06_surfaces.ipynb`` (the best epoch is chosen on them, protocol 2).
    """
    transform = None
    if input_key == "points" and n_input is not None and n_input < data["points"].shape[1]:
        def transform(batch: dict[str, Any], gen: torch.Generator) -> dict[str, Any]:
            batch["input"] = batch["input"][:, :int(n_input)]
            return batch

    return Batches(data, batch_size, keys=(input_key, "target_points"),
                   rename={input_key: "input", "target_points": "target"}, shuffle=False, transform=transform)


def train_atlasnet(model: Any, data: dict[str, Any], *, epochs: int, batch_size: int, n_points: int,
                   checkpoint: str | os.PathLike, input_key: str = "points", n_input: int | None = None,
                   lr: float = 1e-3, seed: int = 0, retrain: bool = False, progress: bool = True,
                   live_plot: Any = "auto", val_data: dict[str, Any] | None = None,
                   template: str = "random") -> Any:
    """Train (or load) a point-output model (an AtlasNet, or PointSetGen) with :func:`course_lib.train.train_or_load`.

    Introduced in ``lectures/06_surfaces.ipynb``.  One epoch = one pass over freshly
    shuffled batches (:func:`surface_batches`: the input from ``data[input_key]``, the target
    ``target_points``); the loss is the Chamfer distance (:data:`chamfer_loss_fn`).  ``template``
    (:data:`TEMPLATE_SAMPLING`): ``"random"`` resamples an AtlasNet's template at every step;
    ``"fixed"`` keeps one sample (:func:`fixed_template_loss_fn`, exercise 1; give it its own
    ``checkpoint``).  ``checkpoint``: from :func:`checkpoint_path`.  With ``val_data`` (the ``val``
    split, :func:`val_batches`) the Chamfer loss is measured on it after every epoch and the best
    epoch's weights are kept (the choice :func:`best_epoch_record` records); without it the best
    *training* epoch is kept.
    """
    from course_lib import train

    if template not in TEMPLATE_SAMPLING:
        raise ValueError(f"template must be one of {TEMPLATE_SAMPLING}, got {template!r}")
    loss = atlas_loss_fn(n_points) if template == "random" else fixed_template_loss_fn(n_points, seed)
    batches = surface_batches(data, batch_size, input_key, n_input, shuffle=True, seed=seed)
    kw: dict[str, Any] = {}
    if val_data is not None:
        kw["val_loader"] = val_batches(val_data, batch_size, input_key, n_input)
    return train.train_or_load(model, checkpoint, retrain=retrain, train_loader=batches,
                               loss_fn=loss, epochs=epochs, lr=lr, seed=seed,
                               progress=progress, live_plot=live_plot, **kw)


def output_size(model: Any, n_points: int) -> dict[str, int]:
    """The keyword arguments that make ``model`` output ``n_points`` points: ``{"n_points": n}`` for an
    AtlasNet (any number), ``{}`` for a fixed-size model (PointSetGen).  Use with
    :func:`course_lib.experiments.common.predict`: ``predict(m, x, **output_size(m, n))``."""
    from course_lib.models.atlasnet import AtlasNet

    return {"n_points": int(n_points)} if isinstance(model, AtlasNet) else {}


def chamfer_per_shape(pred: Tensor, target: Tensor) -> Tensor:
    """Per-shape Chamfer distance in :data:`CD_CONVENTION` (x 1000), ``(S,)``."""
    return 1000.0 * _ops.chamfer_distance(pred, target, reduction="none")


def evaluate_chamfer(pred: Tensor, target: Tensor) -> float:
    """Mean Chamfer distance over shapes in :data:`CD_CONVENTION` (x 1000).

    Introduced in ``lectures/06_surfaces.ipynb``.
    """
    return float(chamfer_per_shape(pred, target).mean())


def oracle_chamfer(data: dict[str, Any]) -> float:
    """The oracle row: Chamfer between ``oracle_points`` and ``target_points``, two *independent*
    samplings of each true surface (:func:`surface_dataset` with ``oracle=True``).

    Introduced in ``lectures/06_surfaces.ipynb``.  A *reference*, not a floor: a model whose
    points are spread more evenly over the true surface than i.i.d. samples (a farthest-point
    sample, a lattice) scores below it.  The same definition as :func:`course_lib.metrics.oracle` (the
    course's one oracle: the oracle sampling stream against the target stream), read from the rows
    already loaded, so that it works for a real dataset's rows as well.
    """
    if "oracle_points" not in data:
        raise ValueError("oracle_chamfer needs surface_dataset(..., oracle=True) (no 'oracle_points' in the data)")
    return evaluate_chamfer(data["oracle_points"], data["target_points"])


# ---------------------------------------------------------------------------
# 3D-CODED
# ---------------------------------------------------------------------------
def coded_template(category: str, resolution: int = 24) -> Any:
    """The 3D-CODED template of ``category``: the reserved shape ``reserved_seed("template")``, outside every split."""
    from course_lib.data import reserved_seed
    from course_lib.models.coded import make_template

    return make_template(category, seed=reserved_seed("template"), resolution=resolution)


def build_coded(category: str, latent_dim: int = 64, hidden: Sequence[int] = (128, 128, 64),
                template_resolution: int = 24) -> Any:
    """A 3D-CODED model of ``category``: PointNet encoder, the reserved template (:func:`coded_template`)."""
    from course_lib.models.coded import TemplateDeformer
    from course_lib.models.encoders import PointNet

    return TemplateDeformer(PointNet(in_dim=3, feat_dim=256, hidden=(64, 128), out_dim=latent_dim),
                            coded_template(category, template_resolution), latent_dim=latent_dim, hidden=hidden)


def coded_loss_fn(edge_weight: float = 0.1) -> Any:
    """``loss_fn(model, batch)``: the unsupervised 3D-CODED loss (:func:`course_lib.models.coded.coded_loss`)."""
    from course_lib.models.coded import coded_loss

    def loss_fn(m: Any, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return coded_loss(m, batch["input"], batch["target"], edge_weight=edge_weight)

    return loss_fn


def train_coded(category: str, data: dict[str, Any], *, epochs: int, batch_size: int, checkpoint: str | os.PathLike,
                latent_dim: int = 64, hidden: Sequence[int] = (128, 128, 64), template_resolution: int = 24,
                edge_weight: float = 0.1, n_input: int | None = 512, lr: float = 1e-3, seed: int = 0,
                retrain: bool = False, progress: bool = True, live_plot: Any = "auto",
                val_data: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """Train (or load) a 3D-CODED model of ``category``: PointNet encoder, template ``reserved_seed("template")``.

    Introduced in ``lectures/06_surfaces.ipynb``.  ``data`` holds the training shapes of that
    category (:func:`surface_dataset`); the input is (a random ``n_input`` subset of) ``points``,
    the Chamfer target ``target_points``.  With ``val_data`` the loss is measured on the ``val``
    shapes after every epoch and the best epoch is kept.  Returns ``(model, history)``.
    """
    from course_lib import train

    config.seed_everything(seed)
    model = build_coded(category, latent_dim, hidden, template_resolution)
    batches = surface_batches(data, batch_size, "points", n_input, shuffle=True, seed=seed)
    kw: dict[str, Any] = {}
    if val_data is not None:
        kw["val_loader"] = val_batches(val_data, batch_size, "points", n_input)
    hist = train.train_or_load(model, checkpoint, retrain=retrain, train_loader=batches,
                               loss_fn=coded_loss_fn(edge_weight), epochs=epochs, lr=lr, seed=seed,
                               progress=progress, live_plot=live_plot, **kw)
    return model, hist


def label_transfer(model: Any, data: dict[str, Any], refine_steps: int = 0, n_input: int | None = 512,
                   batch_size: int = 32, edge_weight: float = 0.1) -> dict[str, Any]:
    """Carry the template's part labels onto every shape of ``data``; measure the accuracy.

    Introduced in ``lectures/06_surfaces.ipynb``.

    For each shape: encode its ``points`` (the scan; optionally refine the latent against them,
    :func:`course_lib.models.coded.refine_latent`, whose loss is the training loss: Chamfer plus
    ``edge_weight`` times the edge-length term; pass the ``edge_weight`` the model was trained with,
    :func:`train_coded`'s, 0.1 by default), deform the template, give each of these
    points the label of its nearest deformed template vertex,
    and compare with the generator's true part label (by part *name*).  The baseline does the
    same with the undeformed template (nearest template vertex, no learning).  Returns
    ``{"accuracy", "baseline", "per_shape", "per_shape_baseline", "pred", "true", "deformed"}``.
    """
    from course_lib.models.coded import label_accuracy, refine_latent, remap_labels, transfer_labels

    require_exact_shapes("label_transfer (chapter 06: part labels)", data)
    model.eval()
    pts = data["points"]
    true = torch.stack([remap_labels(p, parts, model.parts) for p, parts in zip(data["part"], data["parts"])])
    preds, deformed = [], []
    for i in range(0, len(pts), batch_size):
        target = pts[i:i + batch_size]
        x = target[:, :n_input] if n_input else target
        with torch.no_grad():
            z = model.encode(x)
        if refine_steps:
            z = refine_latent(model, z, target, steps=refine_steps, edge_weight=edge_weight)
        with torch.no_grad():
            d = model.decode(z)
        deformed.append(d)
        preds.append(transfer_labels(d, model.template_labels, target))
    pred = torch.cat(preds)
    base = transfer_labels(model.template_vertices[None].expand(len(pts), -1, -1).contiguous(),
                           model.template_labels, pts)
    acc, acc0 = label_accuracy(pred, true), label_accuracy(base, true)
    return {"accuracy": float(acc.mean()), "baseline": float(acc0.mean()), "per_shape": acc,
            "per_shape_baseline": acc0, "pred": pred, "true": true, "deformed": torch.cat(deformed)}


# ---------------------------------------------------------------------------
# Meshes: Poisson from points versus AtlasNet's direct mesh
# ---------------------------------------------------------------------------
def estimate_normals(points: Tensor, k: int = 16, reference: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Unit normals of a point cloud ``(N, 3)`` by local PCA over ``k`` neighbours, then oriented.

    Introduced in ``lectures/06_surfaces.ipynb`` (Poisson needs oriented normals and a
    point-set generator gives none).  The normal is the direction of least variance of each
    neighbourhood.  Orientation: with ``reference = (points, normals)`` each normal takes the
    sign of the nearest reference normal (an *oracle* orientation, to isolate the surface
    fitting); otherwise it points away from the cloud's centroid (right for convex-ish parts,
    wrong on the inner faces of legs and handles).
    """
    if not isinstance(points, Tensor) or points.dim() != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be a tensor (N, 3), got {getattr(points, 'shape', type(points))}")
    k = min(int(k), points.shape[0])
    if k < 3:
        raise ValueError("need at least 3 points (and k >= 3) to fit a plane")
    p = points.detach().double()
    _, idx = _ops.knn(p, p, k)
    nb = p[idx]  # (N, k, 3)
    c = nb - nb.mean(dim=1, keepdim=True)
    cov = c.transpose(1, 2) @ c
    _, vecs = torch.linalg.eigh(cov)
    n = vecs[:, :, 0]
    if reference is not None:
        rp, rn = reference
        _, j = _ops.knn(p, rp.detach().double(), 1)
        sign = torch.sign((n * rn.double()[j[:, 0]]).sum(-1))
    else:
        sign = torch.sign((n * (p - p.mean(0))).sum(-1))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    return (n * sign[:, None]).to(points.dtype)


def mesh_chamfer(mesh: Any, target: Tensor, seed: int = 0) -> float:
    """Chamfer distance (:data:`CD_CONVENTION`, x 1000) between ``len(target)`` area-weighted samples of
    ``mesh`` and the ``target`` points ``(N, 3)``.

    Introduced in ``lectures/06_surfaces.ipynb``.
    """
    from course_lib.geometry import sample_mesh_surface

    pts, _ = sample_mesh_surface(mesh, int(target.shape[0]), seed=seed)
    return evaluate_chamfer(pts[None].to(target), target[None])


def mesh_quality_summary(meshes: Sequence[Any], intersections: bool = True) -> dict[str, float]:
    """Means over meshes of :func:`course_lib.models.atlasnet.mesh_quality` (with patch ids when present).

    Introduced in ``lectures/06_surfaces.ipynb``.
    """
    from course_lib.models.atlasnet import mesh_quality

    rows = [mesh_quality(m, m.metadata.get("face_patch"), intersections=intersections) for m in meshes]
    keys = sorted({k for r in rows for k in r})
    return {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}


# ---------------------------------------------------------------------------
# The chapter's recipes (protocol 2): one per model, shared by the lecture, the benchmark and chapter 11
# ---------------------------------------------------------------------------
AE_MODELS: tuple[tuple[str, str], ...] = (
    ("AtlasNet sphere", "ae-sphere1"), ("AtlasNet 1 patch", "ae-square1"), ("AtlasNet 5 patches", "ae-square5"),
    ("AtlasNet 25 patches", "ae-square25"), ("PointSetGen", "ae-psg"))
"""The auto-encoding rows (PointNet encoder): ``(name, key)`` with ``key`` for :func:`train_chapter_model`."""
SVR_MODELS: tuple[tuple[str, str], ...] = (
    ("AtlasNet 25 patches (ResNet)", "svr-square25"), ("AtlasNet sphere (ResNet)", "svr-sphere1"),
    ("PointSetGen (ResNet)", "svr-psg"))
"""The single-view rows (ResNet encoder on one rendered view)."""

POISSON_INPUTS: dict[str, str] = {
    "pca": "Poisson(PointSetGen), centroid-oriented PCA normals",
    "oracle": "Poisson(PointSetGen), oracle-oriented normals",
    "true": "Poisson(the input's true points and normals)",
}
"""What :func:`poisson_meshes` reconstructs from (its ``normals`` argument) and the row's name."""


def parse_model_key(key: str) -> tuple[str, str, int]:
    """``"ae-square25"`` -> ``("ae", "square", 25)``, ``"svr-sphere1"`` -> ``("svr", "sphere", 1)``,
    ``"ae-psg"`` -> ``("ae", "psg", 0)``: task (auto-encoding or single view), template, patches."""
    import re

    m = re.fullmatch(r"(ae|svr)-(?:(psg)|(sphere)1|square([1-9][0-9]*))", str(key))
    if m is None:
        raise ValueError(f"unknown chapter-06 model key {key!r}: 'ae-' or 'svr-' followed by 'psg', 'sphere1' "
                         "or 'square<K>'")
    if m.group(2):
        return m.group(1), "psg", 0
    if m.group(3):
        return m.group(1), "sphere", 1
    return m.group(1), "square", int(m.group(4))


def chapter_splits(profile: str | None = None, *, image_size: int | None = None,
                   categories: Sequence[str] | None = None, dataset: str | None = None,
                   root: str | None = None) -> dict[str, dict[str, Any]]:
    """The chapter's ``{"train": ..., "val": ...}`` shapes (:func:`surface_dataset`, ``ch06.*`` sizes).

    Introduced in ``lectures/06_surfaces.ipynb``.  The ``val`` shapes (``ch06.val_per_category``,
    with ``ch06.n_input`` input points) are where every choice of the chapter is made: the best
    epoch of each model, Poisson's grid.  The test split is never read here.  ``dataset`` / ``root`` (or
    ``COURSE_DATASET``): a real dataset's meshes (:func:`surface_dataset`).
    """
    sz = config.sizes(profile, prefix="ch06.")
    cats = list(categories or sz["categories"])
    n, n_in = int(sz["n_points"]), int(sz["n_input"])
    where = {"dataset": dataset, "root": root}
    return {"train": surface_dataset(cats, "train", int(sz["train_per_category"]), n, image_size, profile=profile,
                                     **where),
            "val": surface_dataset(cats, "val", int(sz["val_per_category"]), n, image_size, n_input=n_in,
                                   profile=profile, **where)}


def _val_spec(val: dict[str, Any]) -> dict[str, Any]:
    return {"shapes": len(val["seed"]), "seeds": [int(val["seed"].min()), int(val["seed"].max())],
            "categories": list(val["categories"])}


def build_chapter_model(key: str, profile: str | None = None) -> Any:
    """The untrained model ``key`` (:func:`parse_model_key`) at the profile's ``ch06.*`` sizes."""
    sz = config.sizes(profile, prefix="ch06.")
    task, template, k = parse_model_key(key)
    enc, n = ("pointnet" if task == "ae" else "resnet"), int(sz["n_points"])
    if template == "psg":
        return build_psg(n, int(sz["latent_dim"]), enc)
    return build_atlasnet(template, k, int(sz["latent_dim"]), enc, sz["hidden"], n)


def train_chapter_model(key: str, profile: str | None = None, *, splits: dict[str, dict[str, Any]] | None = None,
                        retrain: bool = False, seed: int = 0, progress: bool = True,
                        live_plot: Any = "auto", dataset: str | None = None,
                        root: str | None = None, template: str = "random") -> tuple[Any, Any]:
    """Train (or load) the chapter's model ``key`` by the chapter's one recipe: ``(model in eval mode, history)``.

    Introduced in ``lectures/06_surfaces.ipynb``; ``benchmarks/surfaces.py`` and chapter 11 load the
    same checkpoints.  ``key`` is ``"ae-sphere1"``, ``"ae-square<K>"``, ``"ae-psg"`` (PointNet on
    ``ch06.n_input`` points) or ``"svr-..."`` (ResNet on one view).  ``ch06.epochs`` epochs of Adam on
    the training split, the best epoch chosen on the ``val`` split (:func:`best_epoch_record`);
    ``splits`` from :func:`chapter_splits` (with ``image_size`` for ``svr``) avoids reloading them.
    Without ``splits``, ``dataset`` / ``root`` (or ``COURSE_DATASET``) train on a real dataset's meshes, under a
    checkpoint named after it (:func:`checkpoint_path`); the same holds for :func:`train_chapter_coded`.
    ``template="fixed"`` (an AtlasNet ``key`` only; exercise 1) trains on one fixed template sample
    (:func:`train_atlasnet`), under a checkpoint of its own.
    """
    sz = config.sizes(profile, prefix="ch06.")
    task, kind, _ = parse_model_key(key)
    if template not in TEMPLATE_SAMPLING:
        raise ValueError(f"template must be one of {TEMPLATE_SAMPLING}, got {template!r}")
    if template != "random" and kind == "psg":
        raise ValueError(f"{key} is PointSetGen: it has no template to fix")
    if splits is None:
        splits = chapter_splits(profile, image_size=int(sz["image_size"]) if task == "svr" else None,
                                dataset=dataset, root=root)
    if task == "svr" and "rgb" not in splits["train"]:
        raise ValueError(f"{key} reads views: pass chapter_splits(image_size=...) as splits")
    n_in = int(sz["n_input"]) if task == "ae" else None
    config.seed_everything(seed)
    model = build_chapter_model(key, profile)
    extra = {} if template == "random" else {"template": template}  # the chapter's own checkpoints keep their names
    path = checkpoint_path(key, splits["train"], profile, n_input=n_in, val=_val_spec(splits["val"]), **extra)
    hist = train_atlasnet(model, splits["train"], epochs=int(sz["epochs"]), batch_size=int(sz["batch_size"]),
                          n_points=int(sz["n_points"]), checkpoint=path, input_key="rgb" if task == "svr" else "points",
                          n_input=n_in, seed=seed, retrain=retrain, progress=progress, live_plot=live_plot,
                          val_data=splits["val"], template=template)
    return model.eval(), hist


def train_chapter_coded(category: str, profile: str | None = None, *,
                        splits: dict[str, dict[str, Any]] | None = None, retrain: bool = False, seed: int = 0,
                        progress: bool = True, live_plot: Any = "auto", dataset: str | None = None,
                        root: str | None = None, edge_weight: float = 0.1) -> tuple[Any, Any]:
    """Train (or load) the chapter's 3D-CODED model of ``category``: ``(model in eval mode, history)``.

    Introduced in ``lectures/06_surfaces.ipynb``; the benchmark and chapter 11 load the same
    checkpoint.  ``ch06.coded_epochs`` epochs on the category's training shapes, the best epoch
    chosen on its ``val`` shapes.  ``edge_weight`` (of the edge-length term, :func:`coded_loss_fn`; 0.1
    is the chapter's) other than 0.1 trains under a checkpoint of its own (exercise 3); give the same
    value to :func:`label_transfer`.
    """
    sz = config.sizes(profile, prefix="ch06.")
    if splits is None:
        splits = chapter_splits(profile, categories=[category], dataset=dataset, root=root)
    if list(splits["train"]["categories"]) != [category]:
        raise ValueError(f"3D-CODED of {category!r} trains on that category only, got the splits of "
                         f"{list(splits['train']['categories'])}")
    n_in = int(sz["n_input"])
    extra = {} if float(edge_weight) == 0.1 else {"edge_weight": float(edge_weight)}  # the chapter's keeps its name
    path = checkpoint_path(f"coded-{category}", splits["train"], profile, n_input=n_in, val=_val_spec(splits["val"]),
                           **extra)
    model, hist = train_coded(category, splits["train"], epochs=int(sz["coded_epochs"]), edge_weight=edge_weight,
                              batch_size=int(sz["batch_size"]), checkpoint=path, latent_dim=int(sz["latent_dim"]),
                              hidden=sz["hidden"], template_resolution=int(sz["template_resolution"]), n_input=n_in,
                              seed=seed, retrain=retrain, progress=progress, live_plot=live_plot,
                              val_data=splits["val"])
    return model.eval(), hist


def best_epoch_record(id: str, history: Any) -> dict[str, Any]:
    """The selection record of the epoch a validated training kept (protocol 2: the choice is made on ``val``).

    Introduced in ``lectures/06_surfaces.ipynb``.  ``history`` is the :class:`course_lib.train.History`
    of a run with a validation loader; the candidates are its epochs (1-based), scored by the
    monitored validation metric.  Raises ``ValueError`` for a run without validation, and
    ``RuntimeError`` when the kept epoch is not the record's choice.
    """
    from course_lib.experiments.protocol import selection_record

    if not history.val:
        raise ValueError(f"{id}: the run has no validation history (trained without val_data), so its epoch "
                         "was not chosen on the val split")
    scores = {str(i + 1): float(v[history.monitor]) for i, v in enumerate(history.val)}
    chosen, rec = selection_record(id, scores, metric=f"{history.monitor} (val split)", higher_is_better=False)
    if int(chosen) != int(history.best_epoch) + 1:
        raise RuntimeError(f"{id}: the run kept epoch {history.best_epoch + 1}, but its validation scores choose "
                           f"epoch {chosen}")
    return rec


def training_budget(model: Any, history: Any, n_train: int, batch_size: int) -> dict[str, Any]:
    """One row's :func:`~course_lib.experiments.protocol.budget` from its training history.

    Introduced in ``lectures/06_surfaces.ipynb``: one epoch is ``ceil(n_train / batch_size)``
    optimiser steps over ``n_train`` examples; ``seconds`` is the training loop's wall time as
    recorded in the checkpoint (on the machine that trained it); ``params`` the trainable ones.
    """
    import math

    from course_lib.experiments.protocol import budget

    if n_train < 1 or batch_size < 1:
        raise ValueError(f"n_train and batch_size must be >= 1, got {n_train} and {batch_size}")
    epochs = int(history.epochs_run)
    return budget(steps=epochs * math.ceil(n_train / batch_size), examples=epochs * int(n_train),
                  seconds=float(history.wall_time),
                  params=sum(p.numel() for p in model.parameters() if p.requires_grad),
                  epochs=epochs, best_epoch=int(history.best_epoch) + 1)


def encode_all(model: Any, x: Tensor, batch_size: int = 64) -> Tensor:
    """The latent codes ``(S, D)`` of an encoder-decoder's ``encode`` on inputs ``x`` ``(S, ...)``, in eval
    mode and without gradients (the training mode is restored)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.cat([model.encode(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]).cpu()
    finally:
        model.train(was)


def retrieval_clouds(train: dict[str, Any], test: dict[str, Any], model: Any | None = None,
                     n_input: int | None = None, input_key: str = "points") -> dict[str, Tensor]:
    """The retrieval baseline (:func:`course_lib.experiments.retrieval.retrieve`): for each shape of ``test``,
    a training shape's cloud (its ``target_points``) as the reconstruction.

    Introduced in ``lectures/06_surfaces.ipynb``.  ``"oracle"``: the training shape nearest to the test
    shape's *target* (Chamfer): it looks at the answer, an upper bound of retrieval, not a method.
    ``"latent"`` (with ``model``): the training shape whose code ``model.encode`` is nearest (L2) to the
    code of the test *input* (``input_key``: the first ``n_input`` points of ``points``, or the ``rgb``
    views of a single-view model): the baseline a real system can run, with the model's own encoder.
    """
    from course_lib.experiments import retrieval as R

    clouds = train["target_points"]
    out = {"oracle": R.retrieve(clouds, test["target_points"], by="oracle").clouds}
    if model is not None:
        if input_key not in train or input_key not in test:
            raise KeyError(f"retrieval by the latent code needs {input_key!r} in both the training and the test data")
        xa, xb = train[input_key], test[input_key]
        if input_key == "points" and n_input is not None:
            xa, xb = xa[:, :int(n_input)], xb[:, :int(n_input)]
        out["latent"] = R.retrieve(clouds, by="latent", train_codes=encode_all(model, xa),
                                   query_codes=encode_all(model, xb)).clouds
    return out


def format_measured(data: dict[str, Any], part: str) -> str:
    """A plain-text table of one part (``"ae"``, ``"svr"``, ``"coded"``, ``"poisson"``) of ``benchmarks/surfaces.py``'s
    stored data (protocol 2: per-shape values, budgets): means over the held-out shapes, per category, and
    each row's budget (optimiser steps, training seconds, parameters).

    Introduced in ``lectures/06_surfaces.ipynb`` (the lecture prints the laptop benchmark's tables with it).
    """
    if part not in data:
        raise KeyError(f"the results have no {part!r} part (parts: {[k for k in ('ae', 'svr', 'coded', 'poisson') if k in data]})")
    p = data[part]
    cats = list(data.get("categories", []))

    def mean(v: Any) -> float:
        return float(np.mean(v))

    def per_cat(v: Any, shapes: dict[str, Any]) -> list[float]:
        a = np.asarray(v, dtype=float)
        return [float(a[[i for i, c in enumerate(shapes["category"]) if c == cat]].mean()) for cat in cats]

    def bud(b: dict[str, Any] | None) -> str:
        if not b or b.get("steps") is None:
            return "-"
        return f"{b['steps']} steps, {b['seconds']:.0f} s, {b['params']} params"

    lines = []
    if part in ("ae", "svr"):
        lines.append(f"{'model':<64} {'CD x1e3':>8} {'random':>8} " + " ".join(f"{c:>9}" for c in cats) + "  budget")
        rows = [("oracle", p["oracle"], None, None)] + [(r["name"], r["cd"], r.get("cd_random_template"), r["budget"])
                                                       for r in p["rows"]]
        rows += [(r["name"], r["cd"], None, r["budget"]) for r in (p.get("retrieval") or {}).get("rows", [])]
        for name, cd, rnd, b in rows:
            rs = f"{mean(rnd):8.3f}" if rnd is not None else " " * 8
            lines.append(f"{name[:64]:<64} {mean(cd):8.3f} {rs} " + " ".join(f"{x:9.3f}" for x in per_cat(cd, p["shapes"]))
                         + f"  {bud(b)}")
    elif part == "coded":
        lines.append(f"{'category':<10} {'baseline':>9} {'3D-CODED':>9} {'refined':>9}  budget")
        for r in p["rows"]:
            lines.append(f"{r['category']:<10} {mean(r['baseline']):9.3f} {mean(r['accuracy']):9.3f} "
                         f"{mean(r['accuracy_refined']):9.3f}  {bud(r['budget'])}")
    else:
        lines.append(f"{'surface':<54} {'grid':>5} {'mesh CD x1e3':>12} {'watertight':>10} {'s / shape':>9}")
        for r in p["rows"]:
            lines.append(f"{r['name']:<54} {r['resolution']:>5} {mean(r['cd']):12.3f} {mean(r['watertight']):10.2f} "
                         f"{mean(r['seconds']):9.3f}")
    return "\n".join(lines)


def poisson_meshes(data: dict[str, Any], resolution: int, normals: str = "pca",
                   points: Tensor | None = None, k: int = 16) -> list[tuple[Any, float]]:
    """Poisson meshes (with the seconds each took) of every shape of ``data`` (:func:`surface_dataset`).

    Introduced in ``lectures/06_surfaces.ipynb``.  ``normals`` (:data:`POISSON_INPUTS`): ``"pca"``
    meshes ``points`` ``(S, N, 3)`` (a generator's output) with PCA normals oriented away from the
    centroid; ``"oracle"`` the same points with PCA normals oriented by the nearest true normal of
    the input; ``"true"`` the input's own true points and normals (``points`` unused).
    """
    from course_lib.geometry import poisson_reconstruct

    if normals not in POISSON_INPUTS:
        raise ValueError(f"normals must be one of {sorted(POISSON_INPUTS)}, got {normals!r}")
    if normals != "true" and (points is None or points.dim() != 3 or len(points) != len(data["points"])):
        raise ValueError(f"normals={normals!r} meshes a generator's points: pass points (S, N, 3) for the "
                         f"{len(data['points'])} shapes")
    import time

    out = []
    for i in range(len(data["points"])):
        t0 = time.perf_counter()
        if normals == "true":
            mesh = poisson_reconstruct(data["points"][i], data["normals"][i], int(resolution))
        else:
            ref = (data["points"][i], data["normals"][i]) if normals == "oracle" else None
            mesh = poisson_reconstruct(points[i], estimate_normals(points[i], k, ref), int(resolution))
        out.append((mesh, time.perf_counter() - t0))
    return out


def mesh_chamfer_per_shape(meshes: Sequence[Any], target: Tensor) -> Tensor:
    """:func:`mesh_chamfer` of each mesh against its shape's ``target`` points ``(S, N, 3)``: ``(S,)``."""
    if len(meshes) != len(target):
        raise ValueError(f"{len(meshes)} meshes for {len(target)} target clouds")
    return torch.tensor([mesh_chamfer(m, target[i]) for i, m in enumerate(meshes)], dtype=torch.float64)


def select_poisson_resolution(id: str, data: dict[str, Any], candidates: Sequence[int], normals: str = "pca",
                              points: Tensor | None = None) -> tuple[int, dict[str, Any]]:
    """Poisson's grid resolution chosen on ``val`` shapes: the lowest mean mesh Chamfer among ``candidates``.

    Introduced in ``lectures/06_surfaces.ipynb``.  ``data`` must hold ``val`` shapes only (a
    ``ValueError`` otherwise); the scoring runs inside
    :func:`~course_lib.experiments.protocol.select_on_val`.  Returns ``(resolution, record)``.
    """
    from course_lib.data import split_of
    from course_lib.experiments.protocol import select_on_val

    if "path" in data:  # a real dataset's rows: their seeds are file ids, the loader recorded the split
        splits = {str(data.get("split", "unknown"))}
    else:
        splits = {split_of(int(s)) for s in data["seed"].tolist()}
    if splits != {"val"}:
        raise ValueError(f"{id}: Poisson's grid is chosen on val shapes only, got shapes of {sorted(splits)}")
    if not candidates:
        raise ValueError(f"{id}: no candidate resolution")

    def score(res: int) -> float:
        meshes = [m for m, _ in poisson_meshes(data, res, normals, points)]
        return float(mesh_chamfer_per_shape(meshes, data["target_points"]).mean())

    _, res, rec = select_on_val(id, {str(int(r)): int(r) for r in candidates}, score,
                                metric="mesh CD x1e3 (val split)", higher_is_better=False)
    return res, rec


# ---------------------------------------------------------------------------
# GPU smoke hook (benchmarks/gpu_smoke.py)
# ---------------------------------------------------------------------------
def smoke(device: str = "cpu", steps: int = 1, profile: str = "gpu") -> dict[str, float]:
    """A few training steps of every model of the chapter on ``device`` with the ``profile``'s ``ch06.*`` sizes.

    Introduced for ``benchmarks/gpu_smoke.py``: AtlasNet with ``ch06.lecture_patches`` squares and
    with the sphere (PointNet encoder), the single-view AtlasNet (ResNet), PointSetGen at equal
    points and 3D-CODED (template of the first ``ch06.coded_categories``), each on one synthetic
    batch; no data generation beyond the template, no checkpoint.
    """
    from course_lib.experiments.common import smoke_steps, synthetic_clouds

    s = config.sizes(profile, prefix="ch06.")
    b, n, n_in = int(s["batch_size"]), int(s["n_points"]), int(s["n_input"])
    batch = {"input": synthetic_clouds(b, n_in, seed=0), "target": synthetic_clouds(b, n, seed=1)}
    views = {"input": torch.rand(b, 3, int(s["image_size"]), int(s["image_size"])), "target": batch["target"]}
    out: dict[str, float] = {}
    torch.manual_seed(0)
    runs = {
        "atlasnet_square": (build_atlasnet("square", int(s["lecture_patches"]), s["latent_dim"], "pointnet",
                                           s["hidden"], n), batch),
        "atlasnet_sphere": (build_atlasnet("sphere", 1, s["latent_dim"], "pointnet", s["hidden"], n), batch),
        "atlasnet_svr": (build_atlasnet("square", int(s["lecture_patches"]), s["latent_dim"], "resnet", s["hidden"], n),
                         views),
        "psg": (build_psg(n, s["latent_dim"], "pointnet"), batch),
    }
    for name, (model, data) in runs.items():
        r = smoke_steps(model, data, atlas_loss_fn(n), steps=steps, device=device)
        out.update({f"{name}_{k}": v for k, v in r.items()})
    coded = build_coded(s["coded_categories"][0], s["latent_dim"], s["hidden"], int(s["template_resolution"]))
    r = smoke_steps(coded, batch, coded_loss_fn(), steps=steps, device=device)
    out.update({f"coded_{k}": v for k, v in r.items()})
    out["seconds"] = sum(v for k, v in out.items() if k.endswith("_seconds"))
    return out
