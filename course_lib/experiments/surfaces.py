"""The experiments of chapter 06 (surfaces), shared by the lecture, the lab and the benchmark.

Introduced in ``lectures/06_surfaces.ipynb``.

* :func:`surface_dataset`: ShapeNet-lite surface samples (+ part labels, + rendered views),
  cached on disk;
* :func:`build_atlasnet`, :func:`train_atlasnet`: AtlasNet auto-encoders (PointNet) and
  single-view models (ResNet) trained with :func:`course_lib.train.train_or_load`;
* :func:`evaluate_chamfer`, :func:`oracle_chamfer`: the Chamfer distance on held-out shapes
  in one stated convention (:data:`CD_CONVENTION`);
* :func:`train_coded`, :func:`label_transfer`: 3D-CODED on one category and the accuracy of
  part labels carried from the template.

Split seeds: ``train`` shapes are seeds ``1, 2, ...`` of each category, ``val`` seeds
``5001, ...``, ``test`` seeds ``10001, ...``; seed 0 is the 3D-CODED template.  They are
disjoint, so "test" shapes are never seen in training.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from course_lib import config
from course_lib import ops as _ops

__all__ = [
    "CD_CONVENTION",
    "SPLIT_OFFSETS",
    "split_seeds",
    "surface_dataset",
    "batches",
    "build_atlasnet",
    "atlas_loss_fn",
    "train_atlasnet",
    "predict_points",
    "build_psg",
    "estimate_normals",
    "mesh_chamfer",
    "mesh_quality_summary",
    "chamfer_per_shape",
    "evaluate_chamfer",
    "oracle_chamfer",
    "train_coded",
    "label_transfer",
]

CD_CONVENTION = ("Chamfer distance: squared Euclidean nearest-neighbour distances, mean over each cloud's "
                 "points, the two directions summed, averaged over shapes, x 1000 "
                 "(course_lib.ops.chamfer_distance defaults; AtlasNet's convention)")
"""The one convention every Chamfer number of chapter 06 uses."""

SPLIT_OFFSETS = {"train": 1, "val": 5001, "test": 10001}
"""First seed of each split (seed 0 is reserved for templates)."""


def split_seeds(split: str, n: int) -> list[int]:
    """The seeds of the first ``n`` shapes of ``split`` (the same for every category).

    Introduced in ``lectures/06_surfaces.ipynb``.
    """
    if split not in SPLIT_OFFSETS:
        raise ValueError(f"split must be one of {tuple(SPLIT_OFFSETS)}, got {split!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return [SPLIT_OFFSETS[split] + i for i in range(n)]


def _cache_path(key: str) -> Path:
    h = hashlib.sha1(key.encode()).hexdigest()[:16]
    return config.cache_dir() / "ch06" / f"{h}.pt"


def _cached(key: str, build: Any) -> dict[str, Any]:
    path = _cache_path(key)
    if path.exists():
        try:
            item = torch.load(path, weights_only=True)
            if item.get("key") == key:
                return item
        except Exception:  # noqa: BLE001 - a corrupt cache file is rebuilt, never trusted
            pass
    item = build()
    item["key"] = key
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(item, tmp)
    os.replace(tmp, path)
    return item


def _one_shape(category: str, seed: int, n_points: int, image_size: int | None) -> dict[str, Any]:
    from course_lib.data import GENERATOR_VERSION, make_shape, render

    shape = None

    def get_shape() -> Any:
        nonlocal shape
        shape = shape or make_shape(category, seed)
        return shape

    def points() -> dict[str, Any]:
        s = get_shape()
        pts, nrm = s.sample_surface(n_points, seed=seed)
        return {"points": pts, "normals": nrm, "part": s.part_labels(pts), "parts": list(s.parts)}

    item = dict(_cached(f"v{GENERATOR_VERSION}|{category}|{seed}|{n_points}|None", points))
    if image_size:
        img = _cached(f"v{GENERATOR_VERSION}|{category}|{seed}|image|{image_size}",
                      lambda: {"rgb": render(get_shape(), size=int(image_size))["rgb"].float()})
        item["rgb"] = img["rgb"]
    return item


def surface_dataset(categories: Sequence[str], split: str, n_per_category: int, n_points: int,
                    image_size: int | None = None) -> dict[str, Any]:
    """Surface samples of ShapeNet-lite shapes, stacked, with part labels (and rendered views).

    Introduced in ``lectures/06_surfaces.ipynb``.

    Returns a dict: ``points`` ``(S, n_points, 3)`` on the exact surface (``Shape.sample_surface``),
    ``normals`` ``(S, n_points, 3)``, ``part`` ``(S, n_points)`` part index of each point into
    ``parts[s]`` (the shape's own part names), ``category`` ``(S,)`` index into ``categories``,
    ``seed`` ``(S,)``, and with ``image_size`` ``rgb`` ``(S, 3, H, W)`` (the default view of
    :func:`course_lib.data.render`).  Each shape is cached under ``config.cache_dir()/ch06``.
    """
    from course_lib.data import CATEGORIES

    cats = list(categories)
    for c in cats:
        if c not in CATEGORIES:
            raise ValueError(f"unknown category {c!r}; valid: {', '.join(CATEGORIES)}")
    items, cat_idx, seeds = [], [], []
    for ci, c in enumerate(cats):
        for s in split_seeds(split, n_per_category):
            items.append(_one_shape(c, s, int(n_points), image_size))
            cat_idx.append(ci)
            seeds.append(s)
    out: dict[str, Any] = {
        "points": torch.stack([it["points"] for it in items]),
        "normals": torch.stack([it["normals"] for it in items]),
        "part": torch.stack([it["part"] for it in items]),
        "parts": [tuple(it["parts"]) for it in items],
        "category": torch.tensor(cat_idx),
        "seed": torch.tensor(seeds),
        "categories": tuple(cats),
    }
    if image_size:
        out["rgb"] = torch.stack([it["rgb"] for it in items])
    return out


def batches(data: dict[str, Any], batch_size: int, input_key: str = "points", n_input: int | None = None,
            shuffle: bool = True, seed: int = 0) -> list[dict[str, Tensor]]:
    """A list of batches ``{"input", "target", "index"}`` (a fresh shuffle each call with ``seed``).

    Introduced in ``lectures/06_surfaces.ipynb``.  ``input`` is ``data[input_key]`` (points or
    ``rgb``); for points, ``n_input`` keeps a random subset of each cloud as the encoder's
    input (the target stays the full cloud).
    """
    n = len(data["points"])
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
    out = []
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        x = data[input_key][idx]
        if input_key == "points" and n_input is not None and n_input < x.shape[1]:
            sel = torch.randperm(x.shape[1], generator=g)[:n_input]
            x = x[:, sel]
        out.append({"input": x, "target": data["points"][idx], "index": idx})
    return out


def build_atlasnet(template: str = "square", n_patches: int = 25, latent_dim: int = 128,
                   encoder: str = "pointnet", hidden: Sequence[int] = (128, 128, 64),
                   n_points: int = 1024, image_channels: int = 3) -> Any:
    """An AtlasNet with a small PointNet (auto-encoding) or ResNet (single view) encoder.

    Introduced in ``lectures/06_surfaces.ipynb``.  CPU-sized: PointNet ``h`` = 64-128-256,
    ResNet of two stages of width 16; each patch decoder an MLP ``hidden`` (the paper:
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
    """``loss_fn(model, batch)`` for :func:`course_lib.train.fit`: Chamfer of ``n_points`` decoded points."""

    def loss_fn(model: Any, batch: dict[str, Tensor]) -> Tensor:
        return _ops.chamfer_distance(_forward(model, batch["input"], n_points), batch["target"])

    return loss_fn


def train_atlasnet(model: Any, data: dict[str, Any], *, epochs: int, batch_size: int, n_points: int,
                   checkpoint: str | os.PathLike, input_key: str = "points", n_input: int | None = None,
                   lr: float = 1e-3, seed: int = 0, retrain: bool = False, progress: bool = True,
                   live_plot: Any = "auto") -> Any:
    """Train (or load) an AtlasNet-like model with :func:`course_lib.train.train_or_load`.

    Introduced in ``lectures/06_surfaces.ipynb``.  One epoch = one pass over freshly
    shuffled batches (:func:`batches`); the template is resampled at every step.
    """
    from course_lib import train

    class _Epochs:
        def __init__(self) -> None:
            self.epoch = 0

        def __iter__(self):
            self.epoch += 1
            return iter(batches(data, batch_size, input_key, n_input, shuffle=True, seed=seed * 1000 + self.epoch))

        def __len__(self) -> int:
            return (len(data["points"]) + batch_size - 1) // batch_size

    return train.train_or_load(model, checkpoint, retrain=retrain, train_loader=_Epochs(),
                               loss_fn=atlas_loss_fn(n_points), epochs=epochs, lr=lr, seed=seed,
                               progress=progress, live_plot=live_plot)


@torch.no_grad()
def predict_points(model: Any, inputs: Tensor, n_points: int, batch_size: int = 32) -> Tensor:
    """Eval-mode predictions ``(S, n_points, 3)`` (AtlasNet: the template lattice; any model with
    ``model(x, n_points=...)`` returning ``.points``, or a tensor)."""
    model.eval()
    return torch.cat([_forward(model, inputs[i:i + batch_size], n_points)
                      for i in range(0, len(inputs), batch_size)])


def chamfer_per_shape(pred: Tensor, target: Tensor) -> Tensor:
    """Per-shape Chamfer distance in :data:`CD_CONVENTION` (x 1000), ``(S,)``."""
    return 1000.0 * _ops.chamfer_distance(pred, target, reduction="none")


def evaluate_chamfer(pred: Tensor, target: Tensor) -> float:
    """Mean Chamfer distance over shapes in :data:`CD_CONVENTION` (x 1000).

    Introduced in ``lectures/06_surfaces.ipynb``.
    """
    return float(chamfer_per_shape(pred, target).mean())


def oracle_chamfer(categories: Sequence[str], split: str, n_per_category: int, n_points: int,
                   reference: dict[str, Any] | None = None) -> float:
    """The oracle row: Chamfer between two *independent* samplings of each true surface.

    Introduced in ``lectures/06_surfaces.ipynb``.  A perfect model that outputs
    ``n_points`` points exactly on the true surface still pays this sampling error; no
    model can be expected to beat it.  ``reference`` is the dataset the other rows are
    measured against (default: built here).
    """
    from course_lib.data import GENERATOR_VERSION, make_shape

    ref = reference or surface_dataset(categories, split, n_per_category, n_points)
    n = ref["points"].shape[1]
    other = []
    for c, s in zip(ref["category"].tolist(), ref["seed"].tolist()):
        cat = ref["categories"][c]
        item = _cached(f"v{GENERATOR_VERSION}|{cat}|{s}|{n}|oracle",
                       lambda cat=cat, s=s: {"points": make_shape(cat, s).sample_surface(n, seed=s + 7_000_000)[0]})
        other.append(item["points"])
    return evaluate_chamfer(torch.stack(other).to(ref["points"].dtype), ref["points"])


# ---------------------------------------------------------------------------
# 3D-CODED
# ---------------------------------------------------------------------------
def train_coded(category: str, data: dict[str, Any], *, epochs: int, batch_size: int, checkpoint: str | os.PathLike,
                latent_dim: int = 64, hidden: Sequence[int] = (128, 128, 64), template_resolution: int = 24,
                edge_weight: float = 0.1, n_input: int | None = 512, lr: float = 1e-3, seed: int = 0,
                retrain: bool = False, progress: bool = True, live_plot: Any = "auto") -> tuple[Any, Any]:
    """Train (or load) a 3D-CODED model of ``category``: PointNet encoder, template seed 0.

    Introduced in ``lectures/06_surfaces.ipynb``.  ``data`` holds the training shapes of that
    category (:func:`surface_dataset`).  Returns ``(model, history)``.
    """
    from course_lib import train
    from course_lib.models.coded import TemplateDeformer, coded_loss, make_template
    from course_lib.models.encoders import PointNet

    config.seed_everything(seed)
    template = make_template(category, seed=0, resolution=template_resolution)
    model = TemplateDeformer(PointNet(in_dim=3, feat_dim=256, hidden=(64, 128), out_dim=latent_dim), template,
                             latent_dim=latent_dim, hidden=hidden)

    class _Epochs:
        def __init__(self) -> None:
            self.epoch = 0

        def __iter__(self):
            self.epoch += 1
            return iter(batches(data, batch_size, "points", n_input, shuffle=True, seed=seed * 1000 + self.epoch))

        def __len__(self) -> int:
            return (len(data["points"]) + batch_size - 1) // batch_size

    def loss_fn(m: Any, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return coded_loss(m, batch["input"], batch["target"], edge_weight=edge_weight)

    hist = train.train_or_load(model, checkpoint, retrain=retrain, train_loader=_Epochs(), loss_fn=loss_fn,
                               epochs=epochs, lr=lr, seed=seed, progress=progress, live_plot=live_plot)
    return model, hist


def label_transfer(model: Any, data: dict[str, Any], refine_steps: int = 0, n_input: int | None = 512,
                   batch_size: int = 32) -> dict[str, Any]:
    """Carry the template's part labels onto every shape of ``data``; measure the accuracy.

    Introduced in ``lectures/06_surfaces.ipynb``.

    For each shape: encode it (optionally refine the latent, :func:`refine_latent`), deform
    the template, give each surface point the label of its nearest deformed template vertex,
    and compare with the generator's true part label (by part *name*).  The baseline does the
    same with the undeformed template (nearest template vertex, no learning).  Returns
    ``{"accuracy", "baseline", "per_shape", "per_shape_baseline", "pred", "true", "deformed"}``.
    """
    from course_lib.models.coded import label_accuracy, refine_latent, remap_labels, transfer_labels

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
            z = refine_latent(model, z, target, steps=refine_steps)
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
