"""The experiments of chapter 02 (encoders): shape classification on ShapeNet-lite.

Introduced in ``lectures/02_encoders.ipynb``.

Everything a notebook or a benchmark needs to train and evaluate PointNet, PointNet++ and
DGCNN as classifiers (and small ResNets on rendered views), with the sizes of the active
profile (``config.sizes(prefix="ch02.")``), on the shared layer of
:mod:`course_lib.experiments.common` (one split scheme, :class:`~course_lib.experiments.common.Batches`,
:func:`~course_lib.experiments.common.predict`, :func:`course_lib.train.checkpoint_path`):

* :func:`load_point_clouds`, :func:`load_views`: a split of ShapeNet-lite as tensors;
  :func:`load_partial_clouds`: single-view partial clouds (the depth map of one random view,
  back-projected), where the encoders differ more than on full clouds;
* :func:`make_loader`: the training batches (``{"points", "label"}`` dicts);
* :func:`augment_points`, :func:`jitter_points`, :func:`random_subset`: augmentation
  (random rotation about the up axis ``y``, anisotropic scaling, Gaussian jitter);
* :func:`build_classifier`, :func:`fit_kwargs`, :func:`train_classifier`: the models and
  the arguments of :func:`course_lib.train.fit` / :func:`course_lib.train.train_or_load`;
* :func:`evaluate_accuracy`, :func:`accuracy_vs_points`, :func:`accuracy_vs_jitter`,
  :func:`permutation_error`: the measurements of the chapter;
* :func:`epoch_candidates`, :func:`training_steps`, :func:`classifier_budget`, :func:`best_epoch_record`,
  :func:`seed_claims`, :func:`encoder_goals`, :data:`GOALS`: the measuring protocol of the chapter's
  benchmarks (epochs and the kept epoch chosen on ``val``, comparisons over training seeds with
  their budgets, goals as records; :mod:`course_lib.experiments.protocol`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import config
from course_lib.experiments.common import Batches, load_split, predict, subsample
from course_lib.models.encoders import (
    DGCNN,
    DGCNNClassifier,
    PointClassifier,
    PointNet,
    PointNet2,
    PointNet2Classifier,
    PointNetClassifier,
    orthogonality_regularizer,
)

__all__ = [
    "MODELS",
    "UP_AXIS",
    "load_point_clouds",
    "partial_cloud",
    "load_partial_clouds",
    "make_loader",
    "random_subset",
    "jitter_points",
    "rotate_up",
    "augment_points",
    "ClassificationLoss",
    "accuracy_fn",
    "build_classifier",
    "fit_kwargs",
    "checkpoint_path",
    "image_checkpoint_path",
    "train_classifier",
    "evaluate_accuracy",
    "accuracy_vs_points",
    "accuracy_vs_jitter",
    "permutation_error",
    "confusion_matrix",
    "global_features",
    "pca_2d",
    "epoch_candidates",
    "training_steps",
    "classifier_budget",
    "best_epoch_record",
    "seed_claims",
    "GOALS",
    "encoder_goals",
    "critical_points",
    "critical_points_figure",
    "winning_points_name",
    "receptive_field_figure",
    "DEPTH_SCALE",
    "load_views",
    "image_inputs",
    "ImageClassifier",
    "train_image_classifier",
    "smoke",
]

MODELS: tuple[str, ...] = ("pointnet", "pointnet2", "dgcnn")
"""The point encoders of the chapter, by name."""

UP_AXIS = 1
"""ShapeNet-lite shapes stand with ``y`` up (see :mod:`course_lib.data`)."""


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------
def load_point_clouds(
    split: str, n_points: int | None = None, *, profile: str | None = None,
    categories: Sequence[str] | None = None, shapes_per_category: int | None = None,
) -> tuple[Tensor, Tensor]:
    """A split of ShapeNet-lite as ``(points (S, N, 3) float32, labels (S,) long)``.

    ``n_points=None`` keeps the dataset's default (``config`` key ``data.n_surface_points``);
    ``shapes_per_category=None`` the profile's split size. The shapes of different splits
    come from different seeds (held out).
    """
    data = load_split(split, ("points",), n_points=n_points, categories=categories, profile=profile,
                      shapes_per_category=shapes_per_category)
    return data["points"].float(), data["label"]


def partial_cloud(depth: Tensor, K: Tensor, Rt: Tensor, n_points: int,
                  generator: torch.Generator | None = None) -> Tensor:
    """``n_points`` points of the surface seen in one depth map: ``(n_points, 3)`` in world coordinates.

    Introduced in ``lectures/02_encoders.ipynb``.  Every pixel that hit the shape is
    back-projected (:func:`course_lib.data.depth_to_points`); ``n_points`` of them are drawn
    uniformly at random, without replacement when the view holds enough pixels, with replacement
    otherwise (a thin shape seen edge-on).  The points are in random order, so their first ``n``
    are a uniform random subset, as for full clouds.  Raises ``ValueError`` on an empty view.
    """
    from course_lib.data import depth_to_points

    pts = depth_to_points(depth, K, Rt)
    if pts.shape[0] == 0:
        raise ValueError("partial_cloud: the depth map holds no pixel of the shape (empty view)")
    if pts.shape[0] >= n_points:
        idx = torch.randperm(pts.shape[0], generator=generator)[:n_points]
    else:
        idx = torch.randint(pts.shape[0], (n_points,), generator=generator)
    return pts[idx.to(pts.device)]


def load_partial_clouds(
    split: str, n_points: int | None = None, *, profile: str | None = None,
    categories: Sequence[str] | None = None, shapes_per_category: int | None = None,
    image_size: int | None = None, seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Single-view partial clouds of a split: ``(points (S, n, 3) float32, labels (S,), visible (S,))``.

    Introduced in ``lectures/02_encoders.ipynb``.  Each shape is seen from its own random camera
    (:class:`course_lib.data.ShapeNetLite`'s ``view="random"``: the same camera as its rendered
    view), rendered at ``image_size`` (default ``ch02.partial_image_size``) and back-projected by
    :func:`partial_cloud` to ``n_points`` points (default ``ch02.partial_points``); ``visible`` is
    the number of pixels that hit the shape.  The renders are cached with the dataset.  Points stay
    in world coordinates (shapes stand upright in the unit sphere), so only the visible side of
    each shape is there: the back, and whatever the front hides, is missing.
    """
    s = _sizes(profile)
    n = int(n_points if n_points is not None else s["partial_points"])
    size = int(image_size if image_size is not None else s["partial_image_size"])
    data = load_split(split, ("image",), categories=categories, shapes_per_category=shapes_per_category,
                      profile=profile, image_size=size)
    g = torch.Generator().manual_seed(int(seed))
    clouds, visible = [], []
    for i in range(len(data["label"])):
        depth = torch.as_tensor(data["depth"][i]).float()
        visible.append(int((depth > 0).sum()))
        clouds.append(partial_cloud(depth, torch.as_tensor(data["K"][i]), torch.as_tensor(data["Rt"][i]), n,
                                    generator=g))
    return torch.stack(clouds).float(), data["label"], torch.tensor(visible)


def _xy(batch: Any, x_key: str = "points") -> tuple[Tensor, Tensor]:
    """``(inputs, labels)`` of a :func:`make_loader` batch (a dict) or of a ``(x, y)`` pair."""
    if isinstance(batch, Mapping):
        return batch[x_key], batch["label"]
    return batch[0], batch[1]


def make_loader(points: Tensor, labels: Tensor, batch_size: int, *, shuffle: bool = False,
                seed: int = 0, drop_last: bool = False, key: str = "points") -> Batches:
    """Batches ``{key: (B, N, 3), "label": (B,), "index": (B,)}`` over ``(points, labels)``.

    Introduced in ``lectures/02_encoders.ipynb``: a thin wrapper over
    :class:`course_lib.experiments.common.Batches` (reshuffled at every epoch when ``shuffle``).
    ``key="images"`` for image batches.
    """
    if points.shape[0] != labels.shape[0]:
        raise ValueError(f"{points.shape[0]} clouds but {labels.shape[0]} labels")
    return Batches({key: points, "label": labels}, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)


def _check_cloud(points: Any, who: str) -> Tensor:
    if not isinstance(points, Tensor) or not points.is_floating_point():
        raise TypeError(f"{who} expects a floating-point tensor of points (B, N, 3)")
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"{who} expects points of shape (B, N, 3), got {tuple(points.shape)}")
    return points


def random_subset(points: Tensor, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` distinct points of each cloud, chosen uniformly at random: ``(B, N, 3) -> (B, n, 3)``.

    Introduced in ``lectures/02_encoders.ipynb``; :func:`course_lib.experiments.common.subsample`
    (``generator`` is a CPU generator) that returns the clouds unchanged when ``n == N``.
    """
    _check_cloud(points, "random_subset")
    if not 1 <= n <= points.shape[1]:
        raise ValueError(f"cannot take {n} points out of clouds of {points.shape[1]}")
    if n == points.shape[1]:
        return points
    return subsample(points, int(n), generator)


def jitter_points(points: Tensor, sigma: float, clip: float | None = None,
                  generator: torch.Generator | None = None) -> Tensor:
    """Add i.i.d. Gaussian noise of standard deviation ``sigma`` (clipped to ``±clip``) to every coordinate.

    Introduced in ``lectures/02_encoders.ipynb``.
    """
    _check_cloud(points, "jitter_points")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return points
    noise = torch.randn(points.shape, device=points.device, dtype=points.dtype, generator=generator) * sigma
    if clip is not None:
        noise = noise.clamp(-clip, clip)
    return points + noise


def rotate_up(points: Tensor, angles: Tensor) -> Tensor:
    """Rotate each cloud ``b`` by ``angles[b]`` (radians) about the up axis ``y``.

    Introduced in ``lectures/02_encoders.ipynb``.
    """
    _check_cloud(points, "rotate_up")
    c, s = torch.cos(angles), torch.sin(angles)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    rot = torch.stack([c, zero, s, zero, one, zero, -s, zero, c], dim=-1).view(-1, 3, 3)
    return points @ rot.transpose(1, 2).to(points.dtype)


def augment_points(
    points: Tensor,
    *,
    rotate: bool = True,
    scale: tuple[float, float] | None = (0.8, 1.25),
    jitter: float = 0.01,
    jitter_clip: float = 0.05,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Training-time augmentation of a batch ``(B, N, 3)``.

    Introduced in ``lectures/02_encoders.ipynb``.  A random rotation about the up axis
    (shapes keep standing), a random anisotropic scale per axis in ``scale``, and a
    clipped Gaussian jitter.  Every random number is drawn with ``generator`` (or the
    global generator) on ``points``' device.
    """
    _check_cloud(points, "augment_points")
    B, dev = points.shape[0], points.device
    out = points
    if rotate:
        angles = torch.rand(B, device=dev, generator=generator) * (2 * math.pi)
        out = rotate_up(out, angles)
    if scale is not None:
        lo, hi = scale
        s = lo + (hi - lo) * torch.rand(B, 1, 3, device=dev, generator=generator)
        out = out * s.to(out.dtype)
    return jitter_points(out, jitter, jitter_clip, generator)


# ---------------------------------------------------------------------------
# Loss and metrics for course_lib.train.fit
# ---------------------------------------------------------------------------
class ClassificationLoss:
    """``loss_fn(model, batch)`` for :func:`course_lib.train.fit`.

    Introduced in ``lectures/02_encoders.ipynb``.  Takes a random subset of
    ``n_points`` points per cloud, augments (unless ``augment=False``), and returns
    ``{"loss": cross-entropy + reg_weight * ||I - A A^T||^2 (feature T-Net), "acc": ...}``.
    """

    def __init__(self, n_points: int, *, augment: bool = True, reg_weight: float = 1e-3,
                 label_smoothing: float = 0.0) -> None:
        self.n_points, self.augment = int(n_points), augment
        self.reg_weight, self.label_smoothing = reg_weight, label_smoothing

    def __call__(self, model: nn.Module, batch: Any) -> dict[str, Any]:
        points, labels = _xy(batch)
        points = random_subset(points, min(self.n_points, points.shape[1]))
        if self.augment:
            points = augment_points(points)
        logits, out = model.forward_with_output(points)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        reg = out.transforms.get("feature")
        if reg is not None and self.reg_weight > 0:
            loss = loss + self.reg_weight * orthogonality_regularizer(reg)
        acc = (logits.argmax(dim=1) == labels).float().mean()
        return {"loss": loss, "acc": float(acc)}


def accuracy_fn(n_points: int | None = None):
    """``val_fn(model, batch) -> {"val_acc", "val_loss"}`` on the first ``n_points`` points of each cloud.

    Introduced in ``lectures/02_encoders.ipynb``.  Surface samples are i.i.d., so the
    first ``n`` points are a uniform random subset, the same one at every epoch.
    """

    def fn(model: nn.Module, batch: Any) -> dict[str, float]:
        points, labels = _xy(batch)
        if n_points is not None:
            points = points[:, :n_points]
        logits = model(points)
        return {"val_acc": float((logits.argmax(1) == labels).float().mean()),
                "val_loss": float(F.cross_entropy(logits, labels))}

    return fn


# ---------------------------------------------------------------------------
# Models and training set-up from the profile
# ---------------------------------------------------------------------------
def _sizes(profile: str | None) -> Mapping[str, Any]:
    return config.sizes(profile, prefix="ch02.")


def build_classifier(name: str, n_classes: int | None = None, *, profile: str | None = None,
                     **overrides: Any) -> PointClassifier:
    """The classifier ``name`` (one of :data:`MODELS`) with the widths of ``profile``.

    Introduced in ``lectures/02_encoders.ipynb``.  ``n_classes`` defaults to the number
    of ShapeNet-lite categories.  ``overrides`` replace entries of the profile's
    architecture (``config.sizes(prefix="ch02.")[name]``), e.g.
    ``build_classifier("pointnet2", grouping="ball_query", fps_start=0)``.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if n_classes is None:
        from course_lib.data import CATEGORIES

        n_classes = len(CATEGORIES)
    arch = {**dict(_sizes(profile)[f"{name}"]), **overrides}
    head = tuple(arch.pop("head", (256, 128)))
    dropout = float(arch.pop("dropout", 0.4))
    momentum = arch.pop("bn_momentum", None)
    if name == "pointnet":
        model: PointClassifier = PointNetClassifier(PointNet(**arch), n_classes, hidden=head, dropout=dropout)
    elif name == "pointnet2":
        model = PointNet2Classifier(PointNet2(**arch), n_classes, hidden=head, dropout=dropout)
    else:
        model = DGCNNClassifier(DGCNN(**arch), n_classes, hidden=head, dropout=dropout)
    if momentum is not None:  # short runs: let the eval-mode statistics follow the weights faster
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.momentum = float(momentum)
    return model


def checkpoint_path(name: str, profile: str | None = None, *, arch: Mapping[str, Any] | None = None,
                    **spec: Any) -> Path:
    """Where the notebooks and the benchmark keep the trained ``name`` classifier of ``profile``.

    Introduced in ``lectures/02_encoders.ipynb``: :func:`course_lib.train.checkpoint_path` with a
    spec holding the data configuration (categories, shapes per category, points per cloud),
    the architecture, the training settings and the loss (cross-entropy + T-Net regulariser,
    augmentation); ``arch`` holds the architecture overrides of :func:`build_classifier` (for
    example ``{"pool": "mean"}``, lecture 02's exercise 1), so that such a model never takes the
    chapter's checkpoint; ``spec`` adds to it (for example an exercise's variant).
    """
    from course_lib import train as T
    from course_lib.data import CATEGORIES

    profile = profile or config.get_profile()
    s = _sizes(profile)
    full = {"data": {"categories": list(CATEGORIES),
                     "train_per_category": config.size("data.shapes_per_category_train", profile),
                     "points_per_cloud": config.size("data.n_surface_points", profile)},
            "n_points": s["n_points"], "arch": {**dict(s[name]), **dict(arch or {})},
            "train": dict(s[f"train_{name}"]),
            "loss": "cross-entropy + 1e-3 T-Net regulariser, augment (rotate up, scale, jitter)", **spec}
    return T.checkpoint_path(f"ch02_{name}", full, profile)


def image_checkpoint_path(mode: str, n_views: int, *, epochs: int, width: int, profile: str | None = None,
                          **spec: Any) -> Path:
    """Where the ResNet classifier on ``mode`` views (``"rgb"``/``"rgbd"``) is kept (:func:`course_lib.train.checkpoint_path`).

    Introduced in ``lectures/02_encoders.ipynb``.
    """
    from course_lib import train as T

    profile = profile or config.get_profile()
    full = {"mode": mode, "views_per_category": n_views, "epochs": epochs, "width": width,
            "image_size": config.size("data.image_size", profile), "loss": "cross-entropy, horizontal flips", **spec}
    return T.checkpoint_path(f"ch02_resnet_{mode}", full, profile)


def fit_kwargs(
    name: str,
    model: nn.Module,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor] | None = None,
    *,
    profile: str | None = None,
    seed: int = 0,
    progress: bool = True,
    live_plot: str | bool = "auto",
    epochs: int | None = None,
) -> dict[str, Any]:
    """The keyword arguments of :func:`course_lib.train.fit` / ``train_or_load`` for model ``name``.

    Introduced in ``lectures/02_encoders.ipynb``.  Adam with a cosine learning-rate
    schedule; epochs, learning rate, batch size and the training ``n_points`` come
    from ``config.sizes(prefix="ch02.")``.  With ``val`` the best epoch by validation
    loss is kept (validation accuracy on a few dozen shapes saturates at 1.0 early and would
    keep the first epoch that reaches it).  ``epochs`` replaces the profile's number of epochs (the
    cosine schedule follows it), e.g. an epoch budget chosen on ``val`` by the benchmark.
    """
    s = _sizes(profile)
    tr = dict(s[f"train_{name}"])
    epochs, lr = (int(tr["epochs"]) if epochs is None else _positive_int(epochs, "epochs")), float(tr["lr"])
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=float(tr.get("weight_decay", 1e-4)))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs), eta_min=lr * 0.01)
    n_train = len(train[1])
    if n_train < 2:
        raise ValueError(f"train_classifier needs at least 2 training shapes (BatchNorm batches), got {n_train}")
    # the last incomplete batch is dropped (a batch of one breaks BatchNorm); a split smaller than one batch (a
    # small real dataset) trains in one batch of all its shapes rather than in none
    batch = min(int(tr.get("batch_size", s["batch_size"])), n_train)
    kw: dict[str, Any] = dict(
        train_loader=make_loader(*train, batch, shuffle=True, seed=seed, drop_last=True),
        loss_fn=ClassificationLoss(int(s["n_points"])),
        epochs=epochs,
        optimizer=opt,
        scheduler=sched,
        seed=seed,
        progress=progress,
        live_plot=live_plot,
        max_batches_per_epoch=tr.get("max_batches"),
    )
    if val is not None:
        kw.update(val_loader=make_loader(*val, 64), val_fn=accuracy_fn(int(s["n_points"])),
                  monitor="val_loss", mode="min")
    return kw


def train_classifier(
    name: str,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor] | None = None,
    *,
    profile: str | None = None,
    checkpoint: str | Path | None = None,
    retrain: bool = False,
    seed: int = 0,
    progress: bool = True,
    live_plot: str | bool = "auto",
    device: str | torch.device | None = None,
    epochs: int | None = None,
    arch: Mapping[str, Any] | None = None,
) -> tuple[PointClassifier, Any]:
    """Build, then train (or load from ``checkpoint``) the classifier ``name``; return ``(model, history)``.

    Introduced in ``lectures/02_encoders.ipynb``.  The seed is set before the model is built, so
    initialisation, batches and augmentation all follow ``seed``; ``epochs`` overrides the profile's
    (:func:`fit_kwargs`); ``arch`` overrides the architecture (:func:`build_classifier`'s keyword
    arguments, e.g. ``{"pool": "mean"}``): give it to :func:`checkpoint_path` too, as
    ``checkpoint_path(name, arch=arch)``, or the variant would replace the chapter's checkpoint
    (which is refused).
    """
    from course_lib import train as T

    if arch and checkpoint is not None and Path(checkpoint) == checkpoint_path(name, profile):
        raise ValueError(f"arch={dict(arch)} changes the model, but checkpoint is the chapter's own "
                         f"{name!r} checkpoint: pass checkpoint=checkpoint_path({name!r}, arch={dict(arch)})")
    config.seed_everything(seed)
    model = build_classifier(name, profile=profile, **dict(arch or {})).to(config.get_device(device))
    kw = fit_kwargs(name, model, train, val, profile=profile, seed=seed, progress=progress, live_plot=live_plot,
                    epochs=epochs)
    if checkpoint is None:
        hist = T.fit(model, **kw)
    else:
        hist = T.train_or_load(model, checkpoint, retrain=retrain, **kw)
    model.eval()
    return model, hist


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------
@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module,
    points: Tensor,
    labels: Tensor,
    *,
    n_points: int | None = None,
    jitter: float = 0.0,
    batch_size: int = 64,
    seed: int = 0,
) -> float:
    """Accuracy of ``model`` (eval mode) on clouds cut to their first ``n_points`` points, optionally jittered.

    Introduced in ``lectures/02_encoders.ipynb``.  Surface samples are i.i.d., so the first
    ``n`` points are a uniform random subset.  The jitter is drawn from a CPU generator
    seeded with ``seed`` (the same noise on every device).
    """
    _check_cloud(points, "evaluate_accuracy")
    if n_points is not None and not 1 <= n_points <= points.shape[1]:
        raise ValueError(f"n_points={n_points} but the clouds have {points.shape[1]} points")
    p = points[:, :n_points]
    if jitter > 0:
        p = jitter_points(p.cpu(), jitter, generator=torch.Generator().manual_seed(seed))
    logits = predict(model, p, batch_size)
    return float((logits.argmax(1) == labels.cpu()).float().mean())


def confusion_matrix(model: nn.Module, points: Tensor, labels: Tensor, n_classes: int, *,
                     n_points: int | None = None, batch_size: int = 64) -> Tensor:
    """Counts ``(n_classes, n_classes)`` int64: row = true category, column = predicted one.

    Introduced in ``lectures/02_encoders.ipynb``.  ``model`` in eval mode on the clouds cut to their first
    ``n_points`` points, as :func:`evaluate_accuracy` (whose value is the trace over the sum).
    """
    _check_cloud(points, "confusion_matrix")
    labels = torch.as_tensor(labels).cpu().long()
    if labels.shape != (points.shape[0],):
        raise ValueError(f"confusion_matrix: {points.shape[0]} clouds but labels of shape {tuple(labels.shape)}")
    if n_classes < 2 or int(labels.min()) < 0 or int(labels.max()) >= n_classes:
        raise ValueError(f"confusion_matrix: labels must lie in [0, {n_classes}), got {int(labels.min())}.."
                         f"{int(labels.max())}")
    pred = predict(model, points[:, :n_points], batch_size).argmax(1).cpu()
    return torch.bincount(labels * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


@torch.no_grad()
def global_features(model: nn.Module, points: Tensor, *, n_points: int | None = None,
                    batch_size: int = 64) -> Tensor:
    """The encoder's global feature of each cloud ``(B, D)`` (CPU): what the classifier's head sees.

    Introduced in ``lectures/02_encoders.ipynb``; ``model`` is a :class:`~course_lib.models.PointClassifier`.
    """
    _check_cloud(points, "global_features")
    if not hasattr(model, "forward_with_output"):
        raise TypeError(f"global_features needs a point classifier (forward_with_output), got {type(model).__name__}")
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = [model.forward_with_output(points[i:i + batch_size, :n_points].to(dev))[1].global_feature.cpu()
           for i in range(0, points.shape[0], batch_size)]
    model.train(was)
    return torch.cat(out)


def pca_2d(features: Tensor) -> Tensor:
    """The first two principal coordinates of ``features`` ``(B, D)`` -> ``(B, 2)`` float64 (centred, SVD; the
    sign of each axis fixed so that its largest coordinate is positive)."""
    if features.dim() != 2 or features.shape[0] < 2:
        raise ValueError(f"pca_2d needs (B, D) features with B >= 2, got {tuple(features.shape)}")
    x = features.double() - features.double().mean(0)
    u, sv, _ = torch.linalg.svd(x, full_matrices=False)
    xy = u[:, :2] * sv[:2]
    if xy.shape[1] < 2:  # D == 1
        xy = torch.cat([xy, torch.zeros_like(xy)], 1)
    sign = torch.sign(xy.gather(0, xy.abs().argmax(0, keepdim=True)))
    return xy * torch.where(sign == 0, torch.ones_like(sign), sign)


def accuracy_vs_points(model: nn.Module, points: Tensor, labels: Tensor, counts: Sequence[int]) -> dict[int, float]:
    """Test accuracy for each number of input points in ``counts`` (those above the clouds' size are skipped).

    Introduced in ``lectures/02_encoders.ipynb``.
    """
    return {int(n): evaluate_accuracy(model, points, labels, n_points=int(n))
            for n in counts if n <= points.shape[1]}


def accuracy_vs_jitter(model: nn.Module, points: Tensor, labels: Tensor, sigmas: Sequence[float],
                       n_points: int | None = None) -> dict[float, float]:
    """Test accuracy for each jitter standard deviation in ``sigmas`` (unit-sphere units).

    Introduced in ``lectures/02_encoders.ipynb``.
    """
    return {float(s): evaluate_accuracy(model, points, labels, n_points=n_points, jitter=float(s))
            for s in sigmas}


@torch.no_grad()
def permutation_error(model: nn.Module, points: Tensor, seed: int = 0) -> float:
    """Largest change of the logits (eval mode) when the points of each cloud are shuffled.

    Introduced in ``lectures/02_encoders.ipynb``.  Every point moves (a full random permutation,
    point 0 included), so a model whose result depends on which point comes first (PointNet++'s
    farthest point sampling started at index 0, ball query keeping the first points in index
    order) shows a non-zero error.
    """
    _check_cloud(points, "permutation_error")
    was = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    N = points.shape[1]
    perm = torch.randperm(N, generator=g)
    if N > 1 and int(perm[0]) == 0:  # make sure the first point moves too
        perm = torch.roll(perm, 1)
    a = model(points)
    b = model(points[:, perm.to(points.device)])
    model.train(was)
    return float((a - b).abs().max())


# ---------------------------------------------------------------------------
# The measuring protocol of the chapter's benchmarks (course_lib.experiments.protocol)
# ---------------------------------------------------------------------------
def _positive_int(x: Any, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int,)) or x < 1:
        raise ValueError(f"{what} must be a positive int, got {x!r}")
    return int(x)


def epoch_candidates(name: str, profile: str | None = None) -> tuple[int, ...]:
    """The epoch budgets the benchmark tries for ``name`` on ``val`` (``config`` key ``ch02.epoch_candidates``).

    Introduced in ``lectures/02_encoders.ipynb``.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    cands = tuple(int(e) for e in _sizes(profile)["epoch_candidates"][name])
    if not cands or any(e < 1 for e in cands):
        raise ValueError(f"ch02.epoch_candidates[{name!r}] must hold positive epoch counts, got {cands}")
    return cands


def training_steps(n_examples: int, batch_size: int, epochs: int, *, drop_last: bool = True,
                   max_batches: int | None = None) -> int:
    """Optimiser steps of ``epochs`` epochs over ``n_examples`` in batches of ``batch_size``.

    Introduced in ``lectures/02_encoders.ipynb``.  ``drop_last``: the last incomplete batch is skipped
    (the point classifiers) or kept (the image classifiers); ``max_batches`` caps the batches per epoch.

    >>> training_steps(400, 32, 6), training_steps(400, 32, 6, drop_last=False), training_steps(400, 16, 2, max_batches=3)
    (72, 78, 6)
    """
    if n_examples < 0 or batch_size < 1 or epochs < 0:
        raise ValueError(f"need n_examples >= 0, batch_size >= 1, epochs >= 0; got {n_examples}, {batch_size}, {epochs}")
    per = n_examples // batch_size if drop_last else -(-n_examples // batch_size)
    if max_batches is not None:
        per = min(per, int(max_batches))
    return per * int(epochs)


def classifier_budget(name: str, n_train: int, epochs: int, seconds: Sequence[float], params: int,
                      profile: str | None = None, **extra: Any) -> dict[str, Any]:
    """The budget of one point classifier's row (:func:`course_lib.experiments.protocol.budget`).

    Introduced in ``lectures/02_encoders.ipynb``: the steps and examples of ``epochs`` epochs over
    ``n_train`` clouds with the profile's batch size and batch cap for ``name``, the mean training
    ``seconds`` over the seeds, the trainable ``params``; ``extra`` adds notes (epochs, batch size,
    learning rate are added here).
    """
    from course_lib.experiments.protocol import budget

    s = _sizes(profile)
    tr = dict(s[f"train_{name}"])
    bs = int(tr.get("batch_size", s["batch_size"]))
    steps = training_steps(int(n_train), bs, int(epochs), drop_last=True, max_batches=tr.get("max_batches"))
    secs = [float(x) for x in seconds]
    return budget(steps=steps, examples=steps * bs, seconds=sum(secs) / len(secs) if secs else None,
                  params=int(params), epochs=int(epochs), batch_size=bs, lr=float(tr["lr"]), **extra)


def train_keep_best(name: str, train: Any, val: Any, *, profile: str, seed: int, epochs: int,
                    checkpoint: Any) -> tuple[Any, Any, float, int, dict[str, Any]]:
    """One benchmark run: train classifier ``name`` afresh and keep its epoch with the best validation loss.

    Introduced for ``benchmarks/encoders.py`` and ``benchmarks/encoders_partial.py`` (their selection parts).
    Returns ``(model, history, wall seconds, kept epoch, selection record)``.
    """
    t = time.perf_counter()
    model, hist = train_classifier(name, train, val, profile=profile, checkpoint=checkpoint, retrain=True,
                                   seed=seed, epochs=epochs, progress=False, live_plot=False)
    wall = time.perf_counter() - t
    kept, rec = best_epoch_record(f"best_epoch/{name}/seed{seed}", hist)
    return model, hist, wall, kept, rec


def best_epoch_record(id: str, hist: Any, metric: str = "val_loss", higher_is_better: bool = False
                      ) -> tuple[int, dict[str, Any]]:
    """The epoch a run kept, as a selection record of its validation curve: ``(epoch index, record)``.

    Introduced in ``lectures/02_encoders.ipynb``.  ``hist.val[i][metric]`` is the validation score
    after epoch ``i + 1``; the record (:func:`course_lib.experiments.protocol.selection_record`, on
    ``val``) lists every epoch.  Raises when the run has no validation curve.
    """
    from course_lib.experiments.protocol import selection_record

    val = getattr(hist, "val", None)
    if not val:
        raise ValueError(f"{id}: the run has no validation curve (train with a val split)")
    if any(metric not in v for v in val):
        raise ValueError(f"{id}: the validation curve has no {metric!r}")
    chosen, rec = selection_record(id, {f"epoch {i + 1}": float(v[metric]) for i, v in enumerate(val)},
                                   metric=metric, higher_is_better=higher_is_better)
    return int(chosen.split()[1]) - 1, rec


def seed_claims(values: Mapping[str, Mapping[str, Sequence[float]]],
                specs: Sequence[tuple[str, str, str, str, str]], budgets: Mapping[str, Mapping[str, Any]],
                *, higher_is_better: bool = True, selected_on: str = "val") -> list[dict[str, Any]]:
    """Claim records comparing trained models over their training seeds.

    Introduced in ``lectures/02_encoders.ipynb``.  ``values[metric][model]`` holds one value per seed
    (the same seeds, in the same order, for every model); each spec is ``(id, a, b, metric, text)``.
    A spec whose models or metric are missing is skipped; fewer than three seeds raise (see
    :func:`course_lib.experiments.protocol.claim`).
    """
    from course_lib.experiments.protocol import claim

    out = []
    for cid, a, b, metric, text in specs:
        vals = values.get(metric, {})
        if a not in vals or b not in vals:
            continue
        out.append(claim(cid, text, a=a, b=b, metric=metric, values_a=vals[a], values_b=vals[b],
                         higher_is_better=higher_is_better, unit="seeds",
                         budget={a: dict(budgets[a]), b: dict(budgets[b])}, selected_on=selected_on))
    return out


GOALS: dict[str, float] = {"pointnet_accuracy": 0.90, "train_seconds": 300.0, "permutation_error": 1e-5,
                           "image_accuracy": 0.80}
"""The chapter's goals (laptop profile, 2 CPU cores): PointNet's held-out accuracy on full clouds, every
training run under 5 minutes, invariance to the order of the points (largest change of the logits), and
(proposed with protocol 2) a ResNet on rendered views well above the 10 % of chance in both input modes."""


def encoder_goals(models: Mapping[str, Mapping[str, Any]], claims: Sequence[Mapping[str, Any]],
                  goals: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """The goal records of ``benchmarks/encoders.py`` from its per-model summary and claims.

    Introduced in ``lectures/02_encoders.ipynb``.  ``models[name]`` holds ``"accuracy"`` (per seed, the
    claims' metric), ``"fit_s"`` and ``"perm_error"`` (per seed).  Goals: PointNet's mean accuracy, the
    slowest training run, the largest permutation error, and for PointNet++ and DGCNN "at least as
    accurate as PointNet": their claim against PointNet is not ``"behind"``.
    """
    from course_lib.experiments.protocol import goal

    g = dict(GOALS if goals is None else goals)
    out = []
    if "pointnet" in models:
        accs = [float(a) for a in models["pointnet"]["accuracy"]]
        out.append(goal("pointnet_accuracy", f"PointNet's held-out accuracy on full clouds (mean of {len(accs)} "
                        "seeds)", sum(accs) / len(accs), g["pointnet_accuracy"], comparison=">="))
    if models:
        slow = max(float(x) for m in models.values() for x in m["fit_s"])
        out.append(goal("train_seconds", "every training run under 5 minutes (slowest run, seconds)", slow,
                        g["train_seconds"], comparison="<="))
        perm = max(float(x) for m in models.values() for x in m["perm_error"])
        out.append(goal("permutation_error", "every model invariant to the order of its points (largest change "
                        "of the logits under a full permutation)", perm, g["permutation_error"], comparison="<="))
    by_id = {c["id"]: c for c in claims}
    for name, label in (("pointnet2", "PointNet++"), ("dgcnn", "DGCNN")):
        c = by_id.get(f"{name}_vs_pointnet")
        if c is not None:
            out.append(goal(f"{name}_not_behind_pointnet", f"{label} at least as accurate as PointNet on full "
                            "clouds (its claim against PointNet is not 'behind')", c["verdict"] != "behind", True,
                            comparison="=="))
    return out


# ---------------------------------------------------------------------------
# Figures for the lecture's widget
# ---------------------------------------------------------------------------
def _encoder(model: nn.Module) -> nn.Module:
    return model.encoder if isinstance(model, PointClassifier) else model


@torch.no_grad()
def critical_points(model: nn.Module, points: Tensor) -> Tensor:
    """The indices of the critical points of one cloud ``(N, 3)``: the points that win the max.

    Introduced in ``lectures/02_encoders.ipynb``.  For PointNet and DGCNN they index
    ``points``; for PointNet++ the max is over the last level's centres, so the indices
    are mapped back to the input points those centres were sampled from.  Only for PointNet
    without T-Nets are they a critical set in the paper's sense (these points alone give the same
    pooled feature); for PointNet++ and DGCNN removing the other points moves the FPS centres and
    changes the kNN graph, so they are the points behind the pooled features, no more.
    """
    enc = _encoder(model)
    was = enc.training
    enc.eval()
    out = enc(points[None].to(next(enc.parameters()).device))
    enc.train(was)
    if out.critical_idx is None:
        raise ValueError(f"this encoder pools by {getattr(enc, 'pool', '?')!r}: no point wins a mean or a sum, so "
                         "there are no critical points (pool='max' has them)")
    crit = out.critical_idx[0]
    sampled = [lv for lv in out.levels if lv.get("center_idx") is not None]
    for lv in reversed(sampled):  # centres of level l are indices into the points of level l-1
        crit = lv["center_idx"][0][crit]
    return crit.unique().cpu()


def winning_points_name(model: nn.Module) -> tuple[str, str]:
    """What to call the points behind the max of ``model``: ``(name, why)``.

    Introduced in ``lectures/02_encoders.ipynb``.  ``("critical points", ...)`` only for a PointNet
    without T-Nets (those points alone give the same pooled feature, [Qi2017]'s critical set);
    ``("winning points", why)`` for the others: a PointNet with T-Nets (the T-Nets pool too, so
    it holds only approximately), PointNet++ (removing points moves the FPS centres) and DGCNN
    (removing points changes the kNN graph).
    """
    enc = _encoder(model)
    if isinstance(enc, PointNet):
        if enc.input_tnet is None and enc.feature_tnet is None:
            return "critical points", "these points alone give the same pooled feature"
        return "winning points", "the T-Nets pool over all the points too: a critical set only approximately"
    if isinstance(enc, PointNet2):
        return "winning points", "the FPS centres behind the max; removing other points moves the centres"
    if isinstance(enc, DGCNN):
        return "winning points", "behind the max; removing other points changes the kNN graph"
    return "winning points", "the points behind the max"


def critical_points_figure(model: nn.Module, points: Tensor, title: str | None = None):
    """The cloud in grey with the points that win the max in red (a plotly Figure).

    Introduced in ``lectures/02_encoders.ipynb``.  They are called critical points only where they
    are a critical set (a PointNet without T-Nets), winning points otherwise (:func:`winning_points_name`).
    """
    from course_lib import viz

    crit = critical_points(model, points)
    name, why = winning_points_name(model)
    fig = viz.plot_points(points, color="lightgray", size=2, name="points",
                          title=title or f"{len(crit)} {name} of {len(points)}<br><sup>{why}</sup>")
    return viz.plot_points(points[crit], color="red", size=4, fig=fig, name=name)


@torch.no_grad()
def receptive_field_figure(model: nn.Module, points: Tensor, point: int = 0, level: int = 0,
                           title: str | None = None):
    """The input points that can influence the feature "at" input point ``point`` after level ``level``.

    Introduced in ``lectures/02_encoders.ipynb``.  PointNet: level 0 is the point itself
    and level 1 (the max) is every point; PointNet++ and DGCNN: see
    :func:`course_lib.models.encoders.receptive_fields`.  ``level`` is clipped to the
    model's number of levels.
    """
    from course_lib import viz
    from course_lib.models.encoders import receptive_fields

    enc = _encoder(model)
    was = enc.training
    enc.eval()
    out = enc(points[None].to(next(enc.parameters()).device))
    enc.train(was)
    masks = receptive_fields(out, int(point))
    n = points.shape[0]
    if not masks:  # PointNet: one point, then all of them
        single = torch.zeros(n, dtype=torch.bool)
        single[int(point)] = True
        masks = [single, torch.ones(n, dtype=torch.bool)]
    level = max(0, min(int(level), len(masks) - 1))
    mask = masks[level].cpu()
    fig = viz.plot_points(points, color="lightgray", size=2, name="all points",
                          title=title or f"level {level + 1}/{len(masks)}: {int(mask.sum())} of {n} points")
    if mask.any():
        fig = viz.plot_points(points[mask], color="royalblue", size=3, fig=fig, name="receptive field")
    return viz.plot_points(points[int(point)][None], color="red", size=8, fig=fig, name="chosen point")


# ---------------------------------------------------------------------------
# Image encoders on the rendered views
# ---------------------------------------------------------------------------
DEPTH_SCALE = 3.0
"""Depth maps are divided by this (camera at distance 2.6 from the centre) before entering a CNN."""


def load_views(split: str, shapes_per_category: int, *, profile: str | None = None
               ) -> tuple[Tensor, Tensor, Tensor]:
    """Rendered views of a split: ``(rgb (S, 3, H, W), depth (S, H, W), labels (S,))``.

    Introduced in ``lectures/02_encoders.ipynb``.  One view per shape (its own random
    camera, see :class:`course_lib.data.ShapeNetLite`); background depth is 0.
    """
    data = load_split(split, ("image",), shapes_per_category=shapes_per_category, profile=profile)
    return data["rgb"].float(), data["depth"].float(), data["label"]


def image_inputs(rgb: Tensor, depth: Tensor, mode: str) -> Tensor:
    """``"rgb"``: the colours ``(B, 3, H, W)``; ``"rgbd"``: colours + scaled depth ``(B, 4, H, W)``.

    Introduced in ``lectures/02_encoders.ipynb``.
    """
    from course_lib.models.encoders import rgbd_input

    if mode == "rgb":
        return rgb
    if mode == "rgbd":
        return rgbd_input(rgb, depth, depth_scale=DEPTH_SCALE)
    raise ValueError(f"mode must be 'rgb' or 'rgbd', got {mode!r}")


class ImageClassifier(nn.Module):
    """A :class:`~course_lib.models.encoders.ResNetEncoder` followed by a linear layer.

    Introduced in ``lectures/02_encoders.ipynb``.
    """

    def __init__(self, in_channels: int, n_classes: int, width: int = 16, layers: Sequence[int] = (2, 2, 2, 2)
                 ) -> None:
        super().__init__()
        from course_lib.models.encoders import ResNetEncoder

        self.encoder = ResNetEncoder(in_channels, layers, width, stem="small")
        self.head = nn.Linear(self.encoder.out_dim, n_classes)

    def forward(self, images: Tensor) -> Tensor:
        """Logits ``(B, n_classes)``."""
        return self.head(self.encoder(images).global_feature)


def train_image_classifier(
    mode: str,
    train_views: tuple[Tensor, Tensor, Tensor],
    val_views: tuple[Tensor, Tensor, Tensor] | None = None,
    *,
    epochs: int = 5,
    width: int = 16,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    live_plot: str | bool = "auto",
    bn_momentum: float = 0.3,
) -> tuple[ImageClassifier, Any]:
    """Train a ResNet-18-layout classifier on RGB or RGB-D views; return ``(model, history)``.

    Introduced in ``lectures/02_encoders.ipynb``.  Augmentation: random horizontal flips.
    With ``checkpoint`` the weights are loaded when present (``train_or_load``).
    """
    from course_lib import train as T

    config.seed_everything(seed)
    rgb, depth, labels = train_views
    x = image_inputs(rgb, depth, mode)
    model = ImageClassifier(x.shape[1], int(labels.max()) + 1 if val_views is None
                            else int(max(labels.max(), val_views[2].max())) + 1, width=width)
    for mod in model.modules():  # short runs: eval-mode statistics must keep up with the weights
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.momentum = bn_momentum

    def loss_fn(m: nn.Module, batch: Any) -> dict[str, Any]:
        imgs, y = _xy(batch, "images")
        flip = torch.rand(imgs.shape[0], device=imgs.device) < 0.5
        imgs = torch.where(flip[:, None, None, None], imgs.flip(-1), imgs)
        logits = m(imgs)
        return {"loss": F.cross_entropy(logits, y), "acc": float((logits.argmax(1) == y).float().mean())}

    kw: dict[str, Any] = dict(train_loader=make_loader(x, labels, batch_size, shuffle=True, seed=seed, key="images"),
                              loss_fn=loss_fn, epochs=epochs, lr=lr, seed=seed, progress=progress,
                              live_plot=live_plot)
    if val_views is not None:
        xv = image_inputs(*val_views[:2], mode)

        def val_fn(m: nn.Module, batch: Any) -> dict[str, float]:
            imgs, y = _xy(batch, "images")
            return {"val_acc": float((m(imgs).argmax(1) == y).float().mean())}

        kw.update(val_loader=make_loader(xv, val_views[2], 64, key="images"), val_fn=val_fn, monitor="val_acc", mode="max")
    hist = T.fit(model, **kw) if checkpoint is None else T.train_or_load(model, checkpoint, **kw)
    model.eval()
    return model, hist


# ---------------------------------------------------------------------------
# GPU smoke hook (benchmarks/gpu_smoke.py)
# ---------------------------------------------------------------------------
def smoke(device: str = "cpu", steps: int = 1, profile: str = "gpu") -> dict[str, float]:
    """A few training steps of each classifier of the chapter (and the RGB-D ResNet) on ``device``.

    Introduced for ``benchmarks/gpu_smoke.py``: the ``profile``'s widths, one synthetic batch of
    ``ch02.batch_size`` clouds of ``ch02.n_points`` points (no data generation, no checkpoint).
    Returns ``{"<model>_seconds", "<model>_loss", "<model>_params", ...}`` (and ``peak_mem_mb`` on CUDA).
    """
    from course_lib.data import CATEGORIES
    from course_lib.experiments.common import smoke_steps, synthetic_clouds

    s = _sizes(profile)
    b, n = int(s["batch_size"]), int(s["n_points"])
    points = synthetic_clouds(b, n, device="cpu")
    labels = torch.arange(b) % len(CATEGORIES)
    out: dict[str, float] = {}
    torch.manual_seed(0)
    for name in MODELS:
        model = build_classifier(name, profile=profile)
        r = smoke_steps(model, {"points": points, "label": labels}, ClassificationLoss(n), steps=steps, device=device)
        out.update({f"{name}_{k}": v for k, v in r.items()})
    size = int(config.size("data.image_size", profile))
    bi = min(b, 8)
    images = torch.rand(bi, 4, size, size)
    model = ImageClassifier(4, len(CATEGORIES), width=int(s["resnet_width"]))

    def image_loss(m: nn.Module, batch: Any) -> Tensor:
        return F.cross_entropy(m(batch["images"]), batch["label"])

    r = smoke_steps(model, {"images": images, "label": labels[:bi]}, image_loss, steps=steps, device=device)
    out.update({f"resnet_rgbd_{k}": v for k, v in r.items()})
    out["seconds"] = sum(v for k, v in out.items() if k.endswith("_seconds"))
    return out
