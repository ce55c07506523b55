"""Evaluation metrics for 3D shapes, with the convention as an explicit argument.

Introduced in ``lectures/11_evaluation.ipynb`` (Chamfer and EMD first appear in
``lectures/05_point_sets.ipynb``).

Papers disagree on what "Chamfer distance" means: squared or plain distances, the sum or
the mean of the two directions, and a scale (x1e3, x1e4) folded into the table. Here each
function takes the convention as arguments, and :data:`PRESETS` names the conventions of
the papers the course follows, each with the place it comes from:

===============  ===========================================================================
preset           convention (and source)
===============  ===========================================================================
``atlasnet``     CD = mean sq. NN distance X->Y + mean sq. NN distance Y->X, x1e3.
                 AtlasNet (Groueix et al., CVPR 2018): the training loss is
                 ``mean(dist1) + mean(dist2)`` of the squared-distance Chamfer module of
                 its repository; the paper's tables print CD multiplied by 10^3.
``pointflow``    CD as above, x1e4; EMD = (1/N) sum of *unsquared* matched distances, x1e2.
                 PointFlow (Yang et al., ICCV 2019), ``metrics/evaluation_metrics.py``:
                 ``dl.mean(1) + dr.mean(1)`` of squared distances, and
                 ``match_cost(sample, ref) / N`` (an *approximate* matching of unsquared
                 distances; we compute the exact EMD, which is never larger). Scales from
                 the papers' table captions.
``shapegf``      Same as ``pointflow``: ShapeGF (Cai et al., ECCV 2020) evaluates with
                 PointFlow's code (CD x1e4, EMD x1e2 in its auto-encoding tables).
``occnet``       "Chamfer-L1" = (accuracy + completeness) / 2 with *unsquared* distances,
                 normal consistency = mean of |cos| in both directions / 2, volumetric IoU.
                 Occupancy Networks (Mescheder et al., CVPR 2019), ``im2mesh/eval.py``.
                 Unit: a tenth of the longest edge of the object's bounding box (the
                 authors, occupancy_networks issue #61: "we multiply the Chamfer-L1 values by
                 a factor of 10" on their unit-cube meshes); ``cd_unit="bbox/10"`` applies it
                 per target shape. 100,000 surface points.
``deepsdf``      CD = sum of the two mean squared NN distances (no halving) on 30,000
                 surface samples. DeepSDF (Park et al., CVPR 2019),
                 ``deep_sdf/metrics/chamfer.py`` (``compute_trimesh_chamfer``); its tables
                 print CD multiplied by 10^3 (scale as read from the paper, not from code).
===============  ===========================================================================

All point metrics accept ``(N, 3)`` or batched ``(B, N, 3)`` clouds (batched results are
per cloud, ``(B,)``, unless ``reduction="mean"``) and share the input checks of
:mod:`course_lib.ops`. :func:`oracle` gives the floor a model is judged against: the metric
between two independent samplings of the same surface.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .ops._validate import as_batched, check_pair
from .ops.chamfer import chamfer_distance, safe_sqrt
from .ops.emd import emd as _emd
from .ops.neighbors import _sq_dist, knn_search

__all__ = [
    "chamfer",
    "chamfer_l2",
    "chamfer_l1",
    "emd",
    "fscore",
    "hausdorff",
    "normal_consistency",
    "volumetric_iou",
    "Convention",
    "PRESETS",
    "FRAMES",
    "describe_chamfer",
    "describe_emd",
    "frame_transform",
    "to_frame",
    "evaluate",
    "oracle",
]

_DIRECTIONS = ("sum", "mean")
_REDUCTIONS = ("mean", "none")


def _reduce(per: Tensor, unbatched: bool, reduction: str) -> Tensor:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if unbatched:
        return per[0]
    return per.mean() if reduction == "mean" else per


def _pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, bool]:
    xb, xu = as_batched(x, "x", dim3=True)
    yb, yu = as_batched(y, "y", dim3=True)
    xb, yb = check_pair(xb, yb, "x", "y", xu, yu)
    return xb, yb, xu


def _nn(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Squared distance (B, N) from each point of ``a`` to its nearest point of ``b``, and its index."""
    idx = knn_search(a, b, 1)
    return _sq_dist(a, b, idx)[..., 0], idx[..., 0]


# ---------------------------------------------------------------------------
# Chamfer family
# ---------------------------------------------------------------------------
def chamfer(
    x: Tensor,
    y: Tensor,
    *,
    squared: bool = True,
    directions: str = "sum",
    scale: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """Chamfer distance with an explicit convention.

    Introduced in ``lectures/11_evaluation.ipynb``.

    ``d(X->Y) = mean_x min_y dist(x, y)`` with ``dist = ||x - y||^2`` (``squared=True``) or
    ``||x - y||``; the result is ``scale * (d(X->Y) + d(Y->X))`` for ``directions="sum"``
    and half of it for ``directions="mean"``. See :data:`PRESETS` for the published choices.

    Returns a scalar for unbatched input, else ``(B,)`` (``reduction="none"``) or the batch mean.
    """
    if directions not in _DIRECTIONS:
        raise ValueError(f"directions must be one of {_DIRECTIONS}, got {directions!r}")
    xb, yb, xu = _pair(x, y)
    per = chamfer_distance(xb, yb, squared=squared, reduction="none")
    if directions == "mean":
        per = per / 2
    return _reduce(per * scale, xu, reduction)


def chamfer_l2(x: Tensor, y: Tensor, *, scale: float = 1.0, reduction: str = "mean") -> Tensor:
    """Squared-L2 Chamfer, the two directional means summed (AtlasNet, PointFlow, DeepSDF)."""
    return chamfer(x, y, squared=True, directions="sum", scale=scale, reduction=reduction)


def chamfer_l1(x: Tensor, y: Tensor, *, scale: float = 1.0, reduction: str = "mean") -> Tensor:
    """OccNet's "Chamfer-L1": *unsquared* L2 distances, the two directional means averaged.

    Despite the name it is not an L1 norm of coordinates: ``(accuracy + completeness) / 2``
    with Euclidean distances (Mescheder et al. 2019, ``im2mesh/eval.py``).
    """
    return chamfer(x, y, squared=False, directions="mean", scale=scale, reduction=reduction)


def emd(
    x: Tensor,
    y: Tensor,
    *,
    squared: bool = False,
    scale: float = 1.0,
    method: str = "exact",
    reduction: str = "mean",
    **solver_kwargs: Any,
) -> Tensor:
    """Earth mover's distance ``scale * (1/N) sum_i dist(x_i, y_s(i))`` for the best matching s.

    Introduced in ``lectures/11_evaluation.ipynb``; the solvers are :func:`course_lib.ops.emd`.
    Default: exact, unsquared, per point (PointFlow / ShapeGF before their x1e2 scale).
    """
    xb, yb, xu = _pair(x, y)
    per = _emd(xb, yb, method, squared, reduction="none", **solver_kwargs).cost
    return _reduce(per * scale, xu, reduction)


# ---------------------------------------------------------------------------
# F-score, Hausdorff, normals, IoU
# ---------------------------------------------------------------------------
def fscore(
    pred: Tensor,
    gt: Tensor,
    tau: float,
    *,
    reduction: str = "mean",
    return_precision_recall: bool = False,
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """F-score at distance threshold ``tau`` (Tatarchenko et al., CVPR 2019; Knapitsch et al. 2017).

    Introduced in ``lectures/11_evaluation.ipynb``.

    precision = fraction of predicted points within ``tau`` (Euclidean, ``<=``) of the ground
    truth, recall = fraction of ground-truth points within ``tau`` of the prediction,
    F = 2 P R / (P + R) (0 when both are 0). ``tau`` is in the units of the clouds (our shapes
    lie in the unit sphere, so tau = 0.01 is 0.5% of the diameter).
    """
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau}")
    pb, gb, pu = _pair(pred, gt)
    with torch.no_grad():
        d_pg, _ = _nn(pb, gb)
        d_gp, _ = _nn(gb, pb)
        t2 = float(tau) ** 2
        precision = (d_pg <= t2).to(pb.dtype).mean(1)
        recall = (d_gp <= t2).to(pb.dtype).mean(1)
        denom = precision + recall
        f = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-30), torch.zeros_like(denom))
    if return_precision_recall:
        return _reduce(f, pu, reduction), _reduce(precision, pu, reduction), _reduce(recall, pu, reduction)
    return _reduce(f, pu, reduction)


def hausdorff(x: Tensor, y: Tensor, *, squared: bool = False, reduction: str = "mean") -> Tensor:
    """Symmetric Hausdorff distance ``max(max_x min_y d, max_y min_x d)`` (Euclidean by default).

    Introduced in ``lectures/11_evaluation.ipynb``. Differentiable (a subgradient).
    """
    xb, yb, xu = _pair(x, y)
    d_xy, _ = _nn(xb, yb)
    d_yx, _ = _nn(yb, xb)
    per = torch.maximum(d_xy.amax(1), d_yx.amax(1))
    if not squared:
        per = safe_sqrt(per)
    return _reduce(per, xu, reduction)


def normal_consistency(
    x: Tensor,
    x_normals: Tensor,
    y: Tensor,
    y_normals: Tensor,
    *,
    absolute: bool = True,
    reduction: str = "mean",
) -> Tensor:
    """Normal consistency (OccNet): the mean |cos| between each point's normal and its nearest neighbour's.

    Introduced in ``lectures/11_evaluation.ipynb``.

    Averaged over both directions: ``(mean_x |<n_x, n_NN_Y(x)>| + mean_y |<n_y, n_NN_X(y)>|) / 2``
    (Mescheder et al. 2019, ``im2mesh/eval.py``, "normals" = mean of normals accuracy and
    completeness). Normals are normalised first; ``absolute=False`` keeps the sign (for
    consistently oriented normals). 1 is perfect.
    """
    xb, yb, xu = _pair(x, y)
    nxb, nxu = as_batched(x_normals, "x_normals", dim3=True)
    nyb, nyu = as_batched(y_normals, "y_normals", dim3=True)
    if nxb.shape != xb.shape or nyb.shape != yb.shape or nxu != xu or nyu != xu:
        raise ValueError(
            f"normals must have the shape of their points: x {tuple(x.shape)} vs x_normals "
            f"{tuple(x_normals.shape)}, y {tuple(y.shape)} vs y_normals {tuple(y_normals.shape)}"
        )
    nxb = torch.nn.functional.normalize(nxb.to(xb), dim=-1)
    nyb = torch.nn.functional.normalize(nyb.to(yb), dim=-1)
    _, i_xy = _nn(xb, yb)
    _, i_yx = _nn(yb, xb)
    c_xy = (nxb * torch.gather(nyb, 1, i_xy[..., None].expand(-1, -1, 3))).sum(-1)
    c_yx = (nyb * torch.gather(nxb, 1, i_yx[..., None].expand(-1, -1, 3))).sum(-1)
    if absolute:
        c_xy, c_yx = c_xy.abs(), c_yx.abs()
    per = (c_xy.mean(1) + c_yx.mean(1)) / 2
    return _reduce(per, xu, reduction)


def volumetric_iou(
    occ_a: Tensor, occ_b: Tensor, *, batched: bool = False, reduction: str = "mean"
) -> Tensor:
    """Intersection over union of two occupancies (voxel grids or occupancy at shared points).

    Introduced in ``lectures/03_voxels.ipynb``.

    Inputs are boolean (or 0/1, or probabilities thresholded at 0.5) of the same shape. With
    ``batched=True`` the first dimension indexes shapes and the IoU is per shape. Two empty
    occupancies have IoU 1 (they agree). OccNet evaluates it on 100,000 points drawn
    uniformly in the bounding volume.
    """
    for name, t in (("occ_a", occ_a), ("occ_b", occ_b)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if occ_a.shape != occ_b.shape:
        raise ValueError(f"occupancies differ in shape: {tuple(occ_a.shape)} vs {tuple(occ_b.shape)}")
    if occ_a.device != occ_b.device:
        raise ValueError(f"occ_a is on {occ_a.device} but occ_b is on {occ_b.device}")
    if occ_a.numel() == 0:
        raise ValueError("occupancies are empty tensors")

    def as_bool(t: Tensor) -> Tensor:
        if t.dtype == torch.bool:
            return t
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError("occupancy contains NaN or inf values")
        return t > 0.5

    a, b = as_bool(occ_a), as_bool(occ_b)
    if batched:
        if a.dim() < 2:
            raise ValueError(f"batched=True needs a leading batch dimension, got shape {tuple(a.shape)}")
        a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    else:
        a, b = a.reshape(1, -1), b.reshape(1, -1)
    inter = (a & b).sum(1).double()
    union = (a | b).sum(1).double()
    per = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
    return _reduce(per, not batched, reduction)


# ---------------------------------------------------------------------------
# frames
# ---------------------------------------------------------------------------
FRAMES: dict[str, str] = {
    "course": "the course's frame as it is: shapes inside [-1, 1]^3 (no change)",
    "unit-cube": "the bounding box centred at the origin, its longest edge of length 1 (Occupancy Networks' "
                 "meshes)",
    "unit-ball": "the centroid at the origin, the farthest point at distance 1 (AtlasNet's code, its default "
                 "'UnitBall' normalisation)",
    "unit-diagonal": "the bounding box centred at the origin, its diagonal of length 1: ShapeNet's own "
                     "coordinates, modelled this way here (PointFlow and ShapeGF undo their normalisation, "
                     "DeepSDF undoes its unit sphere, before measuring)",
}
"""The normalisation frames of :func:`frame_transform`, each with the papers that use it."""


def frame_transform(y: Tensor, frame: str) -> tuple[Tensor, Tensor]:
    """The similarity that puts the cloud ``y`` ``(N, 3)`` or ``(B, N, 3)`` into ``frame`` (:data:`FRAMES`).

    Introduced in ``lectures/11_evaluation.ipynb``.  Returns ``(centre, scale)`` of shapes ``(..., 1, 3)`` and
    ``(..., 1, 1)`` with ``y_in_frame = (y - centre) * scale``.  A squared Chamfer distance is multiplied by
    ``scale**2``, an unsquared one and the EMD by ``scale``.  Raises on an unknown frame, an empty cloud, or a
    cloud of one point (its size, and so the scale, is zero).
    """
    if frame not in FRAMES:
        raise ValueError(f"unknown frame {frame!r}; known frames: {', '.join(FRAMES)}")
    if not isinstance(y, Tensor) or y.dim() not in (2, 3) or y.shape[-1] != 3:
        raise ValueError(f"y must be a cloud (N, 3) or (B, N, 3), got {getattr(y, 'shape', type(y).__name__)}")
    if y.shape[-2] == 0:
        raise ValueError("y is an empty cloud: its frame is undefined")
    lo, hi = y.amin(-2, keepdim=True), y.amax(-2, keepdim=True)
    if frame == "course":
        return torch.zeros_like(lo), torch.ones_like(lo[..., :1])
    if frame == "unit-ball":
        centre = y.mean(-2, keepdim=True)
        size = (y - centre).norm(dim=-1).amax(-1, keepdim=True).unsqueeze(-1)
    else:
        centre = (lo + hi) / 2
        edges = hi - lo
        size = edges.amax(-1, keepdim=True) if frame == "unit-cube" else edges.norm(dim=-1, keepdim=True)
    if bool((size <= 0).any()):
        raise ValueError(f"the target cloud has no extent: its {frame!r} frame is undefined")
    return centre, 1.0 / size


def to_frame(x: Tensor, y: Tensor, frame: str) -> tuple[Tensor, Tensor]:
    """Both clouds moved by the similarity that puts the *target* ``y`` into ``frame`` (:func:`frame_transform`):
    the prediction follows its target, as a paper's normalisation of the ground truth carries its prediction."""
    centre, scale = frame_transform(y, frame)
    if x.dim() != y.dim():
        raise ValueError(f"x and y must both be (N, 3) or both (B, N, 3), got {tuple(x.shape)} and {tuple(y.shape)}")
    return (x - centre) * scale, (y - centre) * scale


# ---------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Convention:
    """One paper's metric convention (see the module docstring for the sources)."""

    name: str
    cd_squared: bool
    cd_directions: str
    cd_scale: float
    emd_squared: bool | None = None  # None: the paper does not report EMD
    emd_scale: float = 1.0
    normals: bool = False
    n_points: int | None = None  # surface points the paper evaluates with
    source: str = ""
    cd_unit: str = "frame"
    """``"frame"``: distances in the shapes' own frame; ``"bbox/10"``: in units of a tenth of the longest edge of
    the *target's* bounding box, per shape (OccNet's unit: its tables multiply by 10 / that edge)."""
    frame: str = "course"
    """The frame the paper's shapes are normalised into before its metric (a key of :data:`FRAMES`); used only
    when a metric is asked for ``in_paper_frame=True``.  The default numbers stay in the course's frame."""

    def unit_factor(self, y: Tensor) -> Tensor:
        """What a distance in the shapes' frame is multiplied by to be in this convention's unit: 1, or for
        ``cd_unit="bbox/10"`` ``10 / (longest edge of y's bounding box)``, per cloud (``(B,)`` for ``(B, M, 3)``)."""
        if self.cd_unit == "frame":
            return torch.ones(y.shape[:-2], dtype=y.dtype, device=y.device)
        if self.cd_unit != "bbox/10":
            raise ValueError(f"unknown cd_unit {self.cd_unit!r}: 'frame' or 'bbox/10'")
        edge = (y.amax(-2) - y.amin(-2)).amax(-1)
        if bool((edge <= 0).any()):
            raise ValueError("the target cloud's bounding box is a single point: OccNet's unit (its longest edge "
                             "/ 10) is undefined")
        return 10.0 / edge

    def chamfer(self, x: Tensor, y: Tensor, *, reduction: str = "mean", in_paper_frame: bool = False) -> Tensor:
        """The Chamfer distance of this convention (in its unit: :meth:`unit_factor`).

        ``in_paper_frame=True``: both clouds are first moved into the paper's frame (:attr:`frame`, fixed by the
        target ``y`` of each pair: :func:`to_frame`), as the paper's own numbers are."""
        if in_paper_frame:
            x, y = to_frame(x, y, self.frame)
        if self.cd_unit == "frame":
            return chamfer(x, y, squared=self.cd_squared, directions=self.cd_directions,
                           scale=self.cd_scale, reduction=reduction)
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        per = chamfer(x, y, squared=self.cd_squared, directions=self.cd_directions, scale=self.cd_scale,
                      reduction="none")
        factor = self.unit_factor(y).to(per.dtype)
        per = per * (factor ** 2 if self.cd_squared else factor)
        return per if per.dim() == 0 or reduction == "none" else per.mean()

    def emd(self, x: Tensor, y: Tensor, *, reduction: str = "mean", in_paper_frame: bool = False, **kw: Any) -> Tensor:
        """The EMD of this convention (exact); raises if the paper reports none.  ``in_paper_frame``: as in
        :meth:`chamfer`."""
        if self.emd_squared is None:
            raise ValueError(f"the {self.name!r} convention reports no EMD")
        if in_paper_frame:
            x, y = to_frame(x, y, self.frame)
        return emd(x, y, squared=self.emd_squared, scale=self.emd_scale, reduction=reduction, **kw)


PRESETS: dict[str, Convention] = {
    "atlasnet": Convention(
        "atlasnet", cd_squared=True, cd_directions="sum", cd_scale=1e3, frame="unit-ball",
        source="Groueix et al. 2018 (AtlasNet): mean(dist1)+mean(dist2) of squared distances; tables x1e3",
    ),
    "pointflow": Convention(
        "pointflow", cd_squared=True, cd_directions="sum", cd_scale=1e4, emd_squared=False, emd_scale=1e2,
        n_points=2048, frame="unit-diagonal",
        source="Yang et al. 2019 (PointFlow), metrics/evaluation_metrics.py; CD x1e4, EMD x1e2",
    ),
    "shapegf": Convention(
        "shapegf", cd_squared=True, cd_directions="sum", cd_scale=1e4, emd_squared=False, emd_scale=1e2,
        n_points=2048, frame="unit-diagonal",
        source="Cai et al. 2020 (ShapeGF), evaluated with PointFlow's code; CD x1e4, EMD x1e2",
    ),
    "occnet": Convention(
        "occnet", cd_squared=False, cd_directions="mean", cd_scale=1.0, normals=True, n_points=100_000,
        cd_unit="bbox/10", frame="unit-cube",
        source="Mescheder et al. 2019 (Occupancy Networks), im2mesh/eval.py: Chamfer-L1, normal consistency, IoU; "
               "unit 1/10 of the longest bounding-box edge, i.e. x10 on their unit-cube meshes (authors, issue #61)",
    ),
    "deepsdf": Convention(
        "deepsdf", cd_squared=True, cd_directions="sum", cd_scale=1e3, n_points=30_000, frame="unit-diagonal",
        source="Park et al. 2019 (DeepSDF), deep_sdf/metrics/chamfer.py; 30,000 samples; tables x1e3",
    ),
}
"""Named conventions; ``PRESETS["pointflow"].chamfer(x, y)`` etc."""


def describe_chamfer(preset: str | Convention, *, scale: float | None = None) -> str:
    """The one sentence that says what a Chamfer number of ``preset`` is (every chapter's convention text uses it).

    Introduced in ``lectures/11_evaluation.ipynb``.  ``scale`` overrides the preset's (``1``: no scale)."""
    conv = _convention(preset)
    sc = conv.cd_scale if scale is None else float(scale)
    kind = "squared" if conv.cd_squared else "unsquared"
    how = "summed" if conv.cd_directions == "sum" else "averaged"
    unit = (", in units of a tenth of the target's longest bounding-box edge (OccNet's)" if conv.cd_unit == "bbox/10"
            else "")
    scaled = f", x {sc:g}" if sc != 1 else ", no scale"
    return (f"Chamfer distance ('{conv.name}' convention of course_lib.metrics): {kind} Euclidean nearest-neighbour "
            f"distances, the mean over each cloud, the two directions {how}{scaled}{unit}; shapes in the course's "
            "frame (inside [-1, 1]^3)")


def describe_emd(preset: str | Convention, *, scale: float | None = None) -> str:
    """The one sentence that says what an EMD number of ``preset`` is (exact optimal one-to-one matching)."""
    conv = _convention(preset)
    if conv.emd_squared is None:
        raise ValueError(f"the {conv.name!r} convention reports no EMD")
    sc = conv.emd_scale if scale is None else float(scale)
    kind = "squared" if conv.emd_squared else "unsquared"
    scaled = f", x {sc:g}" if sc != 1 else ", no scale"
    return (f"EMD ('{conv.name}' convention of course_lib.metrics): exact optimal one-to-one matching, the mean "
            f"{kind} matched distance{scaled}")


def _convention(preset: str | Convention) -> Convention:
    if isinstance(preset, Convention):
        return preset
    try:
        return PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}") from None


def evaluate(
    pred: Tensor,
    gt: Tensor,
    preset: str | Convention = "pointflow",
    *,
    pred_normals: Tensor | None = None,
    gt_normals: Tensor | None = None,
    fscore_tau: float | None = 0.01,
    emd_method: str = "exact",
    reduction: str = "mean",
) -> dict[str, float | Tensor]:
    """All point metrics of one convention in a dict (floats for ``reduction="mean"``).

    Introduced in ``lectures/11_evaluation.ipynb``.

    Keys: ``"cd"``, ``"emd"`` (if the convention has one and the clouds have equal sizes),
    ``"normal_consistency"`` (if both normals are given), ``"fscore"`` (at ``fscore_tau``,
    unless None) and ``"hausdorff"``.
    """
    conv = _convention(preset)
    out: dict[str, float | Tensor] = {"cd": conv.chamfer(pred, gt, reduction=reduction)}
    if conv.emd_squared is not None and pred.shape[-2] == gt.shape[-2]:
        out["emd"] = conv.emd(pred, gt, reduction=reduction, method=emd_method)
    if pred_normals is not None and gt_normals is not None:
        out["normal_consistency"] = normal_consistency(pred, pred_normals, gt, gt_normals, reduction=reduction)
    if fscore_tau is not None:
        out["fscore"] = fscore(pred, gt, fscore_tau, reduction=reduction)  # type: ignore[assignment]
    out["hausdorff"] = hausdorff(pred, gt, reduction=reduction)
    if reduction == "mean":
        return {k: float(v.detach()) if isinstance(v, Tensor) else v for k, v in out.items()}
    return out


def _sample(surface: Any, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """(points, normals) float32 tensors from a trimesh mesh or an object with ``sample_surface``."""
    if hasattr(surface, "sample_surface"):
        pts, nrm = surface.sample_surface(n, seed=seed)
    else:
        try:
            import trimesh
        except ImportError as exc:  # pragma: no cover - trimesh is a dependency
            raise TypeError("oracle needs a trimesh.Trimesh or an object with sample_surface(n, seed)") from exc
        if not isinstance(surface, trimesh.Trimesh):
            raise TypeError(
                "oracle expects a trimesh.Trimesh or an object with .sample_surface(n, seed=...) returning "
                f"(points, normals), got {type(surface).__name__}"
            )
        pts, face = trimesh.sample.sample_surface(surface, n, seed=seed)
        nrm = surface.face_normals[face]
    pts_t = torch.as_tensor(np.asarray(pts) if not isinstance(pts, Tensor) else pts, dtype=torch.float32)
    nrm_t = torch.as_tensor(np.asarray(nrm) if not isinstance(nrm, Tensor) else nrm, dtype=torch.float32)
    return pts_t, nrm_t


def oracle(
    shape_or_mesh: Any,
    n: int,
    metric: str | Convention | Callable[[Tensor, Tensor], Tensor] = "pointflow",
    *,
    seeds: tuple[int, int] = (0, 1),
    **evaluate_kwargs: Any,
) -> dict[str, float] | float:
    """The metric between two independent i.i.d. samplings of the same surface: a reference level.

    Introduced in ``lectures/11_evaluation.ipynb``.

    A model whose points are i.i.d. samples of the true surface scores about this much, because
    two finite samplings of one surface do not coincide (ShapeGF's "Oracle" column). It is a
    *reference, not a floor*: points of the true surface spread more evenly than i.i.d. samples
    (a farthest-point sample, a lattice) score below it. ``shape_or_mesh`` is a ``trimesh.Trimesh``
    or any object with ``.sample_surface(n, seed=...)`` returning ``(points, normals)``. For a
    ``course_lib.data`` shape the two samplings are its ``target`` and ``oracle`` sampling streams
    (:data:`course_lib.data.SAMPLING_STREAMS`), the same points as ShapeNet-lite's
    ``target_points`` and ``oracle_points`` (``seeds`` is then not used). ``metric`` is a preset name / :class:`Convention` (returns the
    :func:`evaluate` dict, normals included) or a callable ``metric(x, y) -> Tensor`` (returns
    a float).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if seeds[0] == seeds[1]:
        raise ValueError("the two samplings need different seeds")
    from course_lib.data import SAMPLING_STREAMS, Shape

    if isinstance(shape_or_mesh, Shape):  # the dataset's own independent streams (one oracle for the course)
        y, ny = shape_or_mesh.sample_surface(int(n), stream=SAMPLING_STREAMS["target"])
        x, nx = shape_or_mesh.sample_surface(int(n), stream=SAMPLING_STREAMS["oracle"])
    else:
        x, nx = _sample(shape_or_mesh, int(n), seeds[0])
        y, ny = _sample(shape_or_mesh, int(n), seeds[1])
    if callable(metric) and not isinstance(metric, Convention):
        return float(metric(x, y))
    return evaluate(x, y, metric, pred_normals=nx, gt_normals=ny, **evaluate_kwargs)  # type: ignore[return-value]
