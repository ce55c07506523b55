"""Image losses for inverse rendering: the (soft) silhouette IoU.

Introduced in ``lectures/09_differentiable_rendering.ipynb``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["silhouette_iou", "silhouette_iou_loss"]


def _check_pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise TypeError("pred and target must be tensors (B, H, W) or (H, W)")
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if pred.dim() not in (2, 3) or pred.numel() == 0:
        raise ValueError(f"silhouettes must have shape (B, H, W) or (H, W), got {tuple(pred.shape)}")
    if pred.device != target.device:
        raise ValueError(f"pred is on {pred.device} but target on {target.device}")
    if pred.dim() == 2:
        pred, target = pred[None], target[None]
    return pred, target.to(pred.dtype)


def silhouette_iou(pred: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """Soft intersection over union per image, ``(B,)``: ``sum(p t) / sum(p + t - p t)``.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  For binary masks it is
    the ordinary IoU; two empty masks score 1.
    """
    p, t = _check_pair(pred, target)
    inter = (p * t).sum((1, 2))
    union = (p + t - p * t).sum((1, 2))
    return (inter + eps) / (union + eps)


def silhouette_iou_loss(pred: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """``1 - silhouette_iou``, averaged over the batch (a scalar): the loss of Kato et al. and SoftRas.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.
    """
    return (1.0 - silhouette_iou(pred, target, eps)).mean()


del torch
