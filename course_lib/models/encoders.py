"""Encoders: a ResNet for RGB / RGB-D images and three point-cloud encoders.

Introduced in ``lectures/02_encoders.ipynb``.

Every encoder maps a batch to an :class:`EncoderOutput` whose ``global_feature``
(also reachable as ``out["global"]``) is the latent code that the decoders of the
later chapters take.  The point encoders follow the construction of the tutorial,

.. math::  E(x_1, \\dots, x_n) = \\gamma\\big(g(h(x_1), \\dots, h(x_n))\\big),

with ``h`` a shared per-point MLP, ``g`` the symmetric max over the points and
``gamma`` an MLP on the pooled vector:

* :class:`PointNet` [Qi2017]: ``h`` sees one point at a time (receptive field: one
  point, then all points), optional input / feature T-Nets.
* :class:`PointNet2` [Qi2017b], single-scale grouping: farthest point sampling picks
  centres, ball query gathers neighbourhoods, a small PointNet runs on each
  neighbourhood in *local* coordinates, and levels are stacked (hierarchy).
* :class:`DGCNN` [Wang2019]: EdgeConv on ``[x_j - x_i, x_i]`` over the k nearest
  neighbours, recomputed in *feature* space at every layer (dynamic graph).

Shapes of the course live inside the unit sphere, which is also the normalisation
PointNet++ used for ModelNet40, so the paper's radii (0.2, 0.4) apply unchanged.

Neighbourhood operations (kNN, FPS, ball query, gather) come from :mod:`course_lib.ops`.
BatchNorm in eval mode acts point by point, so every encoder is permutation invariant
in eval mode (up to float rounding; for PointNet++ also up to which ``k`` points ball
query keeps when a ball holds more than ``k``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import ops as _ops

__all__ = [
    "EncoderOutput",
    "SharedMLP",
    "TNet",
    "orthogonality_regularizer",
    "POINTNET_POOLS",
    "PointNet",
    "SetAbstraction",
    "PointNet2",
    "EdgeConv",
    "DGCNN",
    "BasicBlock",
    "ResNetEncoder",
    "rgbd_input",
    "PointClassifier",
    "PointNetClassifier",
    "PointNet2Classifier",
    "DGCNNClassifier",
    "receptive_fields",
]


# ---------------------------------------------------------------------------
# Output container and input validation
# ---------------------------------------------------------------------------
@dataclass
class EncoderOutput:
    """What an encoder returns.

    Attributes
    ----------
    global_feature:
        ``(B, F)`` the latent code (after ``gamma`` when the encoder has one).
        ``out["global"]`` is an alias.
    point_features:
        ``(B, N, C)`` per-point features (PointNet, DGCNN) or the features of the
        last set-abstraction centres (PointNet++), when asked for.
    pooled:
        ``(B, C)`` the max-pooled vector ``g(h(x_1), ..., h(x_n))`` before ``gamma``.
    critical_idx:
        ``(B, C)`` for each channel of ``pooled``, the index of the point that wins
        the max (the "critical points" of [Qi2017]).  For PointNet++ the indices
        refer to the centres of the last sampled level.  ``None`` for a PointNet that
        pools by mean or sum (``pool=``): no point wins those.
    transforms:
        T-Net matrices by name (``"input"`` ``(B,3,3)``, ``"feature"`` ``(B,C,C)``).
    levels:
        One dict per hierarchy level (PointNet++: ``xyz``, ``center_idx``,
        ``group_idx``; DGCNN: ``knn_idx``), used by :func:`receptive_fields`.
    """

    global_feature: Tensor
    point_features: Tensor | None = None
    pooled: Tensor | None = None
    critical_idx: Tensor | None = None
    transforms: dict[str, Tensor] = field(default_factory=dict)
    levels: list[dict[str, Any]] = field(default_factory=list)

    _ALIASES = {"global": "global_feature"}

    def __getitem__(self, key: str) -> Any:
        name = self._ALIASES.get(key, key)
        if name not in self.__dataclass_fields__:
            raise KeyError(f"EncoderOutput has no field {key!r}; fields: global, "
                           + ", ".join(f for f in self.__dataclass_fields__ if f != "global_feature"))
        return getattr(self, name)


def _check_points(points: Any, in_dim: int, who: str) -> Tensor:
    if not isinstance(points, Tensor):
        raise TypeError(f"{who} expects a torch.Tensor of points (B, N, {in_dim}), got {type(points).__name__}")
    if not points.is_floating_point():
        raise TypeError(f"{who} expects floating-point points, got dtype {points.dtype}")
    if points.dim() != 3 or points.shape[-1] != in_dim:
        raise ValueError(
            f"{who} expects points of shape (B, N, {in_dim}), got {tuple(points.shape)}"
            + (" (add a batch dimension with points[None])" if points.dim() == 2 else "")
        )
    if points.shape[0] == 0 or points.shape[1] == 0:
        raise ValueError(f"{who} got an empty batch or an empty point cloud: shape {tuple(points.shape)}")
    return points


# ---------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------
class _BatchNormLast(nn.BatchNorm1d):
    """BatchNorm over the last (channel) dimension of a tensor of any rank.

    Statistics are taken over every leading dimension (batch, points, neighbours),
    exactly as ``Conv1d/Conv2d + BatchNorm`` do in the channels-first layout.
    """

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).reshape(shape)


def _check_latent(z: Any, dim: int, who: str) -> Tensor:
    """The one check of a batch of latent codes ``(B, dim)`` (decoders of chapters 05 and 06)."""
    if not isinstance(z, Tensor):
        raise TypeError(f"{who} expects a latent code torch.Tensor (B, {dim}), got {type(z).__name__}")
    if not z.is_floating_point():
        raise TypeError(f"{who} expects a floating-point latent code, got dtype {z.dtype}")
    if z.dim() != 2 or z.shape[1] != dim:
        raise ValueError(f"{who} expects a latent code of shape (B, {dim}), got {tuple(z.shape)}"
                         + (" (add a batch dimension with z[None])" if z.dim() == 1 and z.shape[0] == dim else ""))
    if z.shape[0] == 0:
        raise ValueError(f"{who} got an empty batch of latent codes")
    return z


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)
    raise ValueError(f"unknown activation {name!r}; use 'relu' or 'leaky_relu'")


class SharedMLP(nn.Sequential):
    """The same MLP applied to every point (the ``h`` of PointNet).

    Introduced in ``lectures/02_encoders.ipynb``.  Acts on the last dimension of a
    tensor ``(..., C_in) -> (..., C_out)``: a ``Linear`` layer per point is the same
    as the 1x1 convolution of the papers.  Each layer is ``Linear -> BatchNorm ->
    activation``; ``last_activation=False`` keeps BatchNorm but drops the activation
    of the last layer (``last_bn=False`` drops its BatchNorm too, with a bias).
    """

    def __init__(
        self,
        channels: Sequence[int],
        *,
        activation: str = "relu",
        last_activation: bool = True,
        last_bn: bool = True,
        dropout: float = 0.0,
    ) -> None:
        channels = [int(c) for c in channels]
        if len(channels) < 2 or min(channels) < 1:
            raise ValueError(f"SharedMLP needs at least two positive channel sizes, got {channels}")
        layers: list[nn.Module] = []
        n = len(channels) - 1
        for i, (cin, cout) in enumerate(zip(channels[:-1], channels[1:])):
            last = i == n - 1
            bn = last_bn or not last
            layers.append(nn.Linear(cin, cout, bias=not bn))
            if bn:
                layers.append(_BatchNormLast(cout))
            if not last or last_activation:
                layers.append(_activation(activation))
                if dropout > 0 and not last:
                    layers.append(nn.Dropout(dropout))
        super().__init__(*layers)
        self.channels = tuple(channels)


def _max_pool(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    values, idx = x.max(dim=dim)
    return values, idx


# ---------------------------------------------------------------------------
# PointNet
# ---------------------------------------------------------------------------
class TNet(nn.Module):
    """A mini-PointNet that predicts a ``k x k`` alignment matrix (the T-Net of [Qi2017]).

    Introduced in ``lectures/02_encoders.ipynb``.  Its last layer starts at zero with
    the identity as bias, so at initialisation the transform is exactly ``I``.
    """

    def __init__(self, k: int, hidden: Sequence[int] = (64, 128, 1024), head: Sequence[int] = (512, 256)) -> None:
        super().__init__()
        self.k = int(k)
        self.point_mlp = SharedMLP((self.k, *hidden))
        self.head = SharedMLP((hidden[-1], *head))
        self.out = nn.Linear(head[-1], self.k * self.k)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.copy_(torch.eye(self.k).flatten())

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(B, N, k)`` -> transform ``(B, k, k)``."""
        pooled = self.point_mlp(x).max(dim=1).values
        return self.out(self.head(pooled)).view(-1, self.k, self.k)


def orthogonality_regularizer(transform: Tensor) -> Tensor:
    """``mean_b ||I - A_b A_b^T||_F^2`` for a batch of square matrices ``(B, k, k)``.

    Introduced in ``lectures/02_encoders.ipynb``.  [Qi2017] adds ``0.001`` times this
    term (on the feature transform) to the classification loss so that the learned
    feature alignment stays close to an orthogonal map and loses no information.
    """
    if not isinstance(transform, Tensor) or transform.dim() != 3 or transform.shape[1] != transform.shape[2]:
        raise ValueError(f"expected a batch of square matrices (B, k, k), got "
                         f"{tuple(transform.shape) if isinstance(transform, Tensor) else type(transform).__name__}")
    k = transform.shape[-1]
    eye = torch.eye(k, dtype=transform.dtype, device=transform.device)
    diff = eye - transform @ transform.transpose(1, 2)
    return diff.pow(2).sum(dim=(1, 2)).mean()


POINTNET_POOLS: tuple[str, ...] = ("max", "mean", "sum")
"""The symmetric functions :class:`PointNet` can pool with (``pool=``; the first is the paper's)."""


class PointNet(nn.Module):
    """PointNet encoder [Qi2017]: ``gamma(max_i h(x_i))``.

    Introduced in ``lectures/02_encoders.ipynb``.

    Parameters
    ----------
    in_dim:
        Channels per point (3 for xyz; more for xyz + normals, ...).  The input
        T-Net, when on, transforms the first three (xyz).
    feat_dim:
        Width of the last layer of ``h``, i.e. of the max-pooled vector (1024 in the
        paper).
    hidden:
        Widths of the earlier layers of ``h`` (the paper: 64, 64, 64, 128).
    input_transform, feature_transform:
        Add the input (3x3) / feature (``hidden[0]`` square) T-Net.  The feature
        transform is applied after the first layer of ``h``.
    out_dim:
        If given, ``gamma`` is an MLP ``feat_dim -> out_dim`` and ``global_feature``
        is its output; otherwise ``gamma`` is the identity.
    tnet_scale:
        Multiplies the widths of the T-Nets (1.0 = the paper's 64/128/1024, 512/256).
    pool:
        The symmetric function ``g`` over the points: ``"max"`` (the paper's, the default),
        ``"mean"`` or ``"sum"`` (the alternatives Qi et al. compare; lecture 02's exercise 1).
        Only the max has a winning point per channel: with ``"mean"`` / ``"sum"`` the output's
        ``critical_idx`` is ``None``.

    The last layer of ``h`` has BatchNorm but no ReLU, so that the max has a unique
    winner per channel (with a ReLU many channels are 0 on every point and the
    "critical point" of such a channel is meaningless).
    """

    def __init__(
        self,
        in_dim: int = 3,
        feat_dim: int = 1024,
        hidden: Sequence[int] = (64, 128),
        input_transform: bool = False,
        feature_transform: bool = False,
        out_dim: int | None = None,
        tnet_scale: float = 1.0,
        pool: str = "max",
    ) -> None:
        super().__init__()
        if in_dim < 1 or feat_dim < 1 or len(hidden) < 1:
            raise ValueError("PointNet needs in_dim >= 1, feat_dim >= 1 and at least one hidden width")
        if pool not in POINTNET_POOLS:
            raise ValueError(f"pool must be one of {POINTNET_POOLS}, got {pool!r}")
        self.pool = pool
        if input_transform and in_dim < 3:
            raise ValueError("the input transform acts on xyz: it needs in_dim >= 3")
        self.in_dim = int(in_dim)
        self.feat_dim = int(feat_dim)
        self.hidden = tuple(int(h) for h in hidden)

        def s(c: int) -> int:
            return max(4, int(round(c * tnet_scale)))

        tnet_hidden, tnet_head = (s(64), s(128), s(1024)), (s(512), s(256))
        self.input_tnet = TNet(3, tnet_hidden, tnet_head) if input_transform else None
        self.first = SharedMLP((self.in_dim, self.hidden[0]))
        self.feature_tnet = TNet(self.hidden[0], tnet_hidden, tnet_head) if feature_transform else None
        self.rest = SharedMLP((*self.hidden, self.feat_dim), last_activation=False)
        self.gamma = (
            SharedMLP((self.feat_dim, int(out_dim)), last_activation=False, last_bn=False)
            if out_dim is not None
            else nn.Identity()
        )
        self.out_dim = int(out_dim) if out_dim is not None else self.feat_dim

    def point_features(self, points: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``h(x_i)`` for every point: ``(B, N, in_dim)`` -> ``((B, N, feat_dim), transforms)``."""
        transforms: dict[str, Tensor] = {}
        x = points
        if self.input_tnet is not None:
            a = self.input_tnet(x[..., :3])
            transforms["input"] = a
            x = torch.cat([x[..., :3] @ a, x[..., 3:]], dim=-1)
        x = self.first(x)
        if self.feature_tnet is not None:
            a = self.feature_tnet(x)
            transforms["feature"] = a
            x = x @ a
        return self.rest(x), transforms

    def forward(self, points: Tensor, return_point_features: bool = False) -> EncoderOutput:
        """Encode ``points`` ``(B, N, in_dim)``."""
        _check_points(points, self.in_dim, "PointNet")
        feats, transforms = self.point_features(points)
        crit: Tensor | None = None
        if self.pool == "max":
            pooled, crit = _max_pool(feats, dim=1)
        elif self.pool == "mean":
            pooled = feats.mean(dim=1)
        else:
            pooled = feats.sum(dim=1)
        return EncoderOutput(
            global_feature=self.gamma(pooled),
            point_features=feats if return_point_features else None,
            pooled=pooled,
            critical_idx=crit,
            transforms=transforms,
        )


# ---------------------------------------------------------------------------
# PointNet++ (single-scale grouping)
# ---------------------------------------------------------------------------
GROUPINGS: tuple[str, ...] = ("ball_hashed", "ball_query", "knn_in_ball")
"""The groupings of :class:`SetAbstraction` (the first is the default)."""


class SetAbstraction(nn.Module):
    """One set-abstraction level of PointNet++ (single-scale grouping).

    Introduced in ``lectures/02_encoders.ipynb``.

    ``n_centers`` centres are chosen by farthest point sampling; each gathers up
    to ``n_samples`` points within ``radius`` (ball query); their coordinates are
    made *local* (relative to the centre, divided by ``radius`` when
    ``normalize_local``), concatenated with their features, passed through a shared
    MLP and max-pooled over the neighbourhood.  ``n_centers=None`` is the final
    "group all" level: one centre at the origin, every point in its group, global
    coordinates.

    Three groupings (what a ball keeps when it holds more than ``n_samples`` points):

    * ``"ball_query"``: the paper's code, the *first* ``n_samples`` points in index order.
      On i.i.d. shuffled samples this is a random subset of the ball, but which points are
      kept depends on the order of the input: the level is not exactly permutation invariant.
    * ``"ball_hashed"`` (the default): the same rule with the index order replaced by a
      pseudo-random order computed from the coordinates (:func:`course_lib.ops.coordinate_hash`):
      a pseudo-random subset of the whole ball, as the reference keeps on shuffled input, and
      independent of the input order.
    * ``"knn_in_ball"``: the ``n_samples`` *nearest* points (those beyond the radius replaced
      by the nearest one).  Order independent too, but when balls are crowded the radius never
      binds and the level becomes a kNN grouping whose neighbourhood shrinks as the density grows.
    """

    def __init__(
        self,
        n_centers: int | None,
        radius: float | None,
        n_samples: int | None,
        in_channels: int,
        mlp: Sequence[int],
        normalize_local: bool = True,
        grouping: str = "ball_hashed",
    ) -> None:
        super().__init__()
        if grouping not in GROUPINGS:
            raise ValueError(f"grouping must be one of {', '.join(GROUPINGS)}, got {grouping!r}")
        self.grouping = grouping
        if n_centers is not None and (radius is None or radius <= 0 or not n_samples or n_samples < 1):
            raise ValueError("a sampled SetAbstraction level needs radius > 0 and n_samples >= 1")
        self.n_centers = n_centers
        self.radius = radius
        self.n_samples = n_samples
        self.in_channels = int(in_channels)
        self.normalize_local = normalize_local
        self.mlp = SharedMLP((3 + self.in_channels, *mlp))
        self.out_channels = int(mlp[-1])

    def forward(
        self, xyz: Tensor, feats: Tensor | None, fps_start: int | str = 0
    ) -> tuple[Tensor, Tensor, dict[str, Any]]:
        """``xyz`` ``(B, N, 3)``, ``feats`` ``(B, N, C)`` or None -> ``(new_xyz, new_feats, info)``.

        ``fps_start``: the ``start_idx`` of :func:`course_lib.ops.farthest_point_sampling`.
        """
        B, N, _ = xyz.shape
        if self.n_centers is None:
            grouped = xyz[:, None]  # (B, 1, N, 3) global coordinates
            group_idx = torch.arange(N, device=xyz.device).expand(B, 1, N)
            center_idx = None
            new_xyz = xyz.new_zeros(B, 1, 3)
            if feats is not None:
                grouped = torch.cat([grouped, feats[:, None]], dim=-1)
        else:
            m = min(self.n_centers, N)
            center_idx = _ops.farthest_point_sampling(xyz, m, start_idx=fps_start)
            new_xyz = _ops.gather_points(xyz, center_idx)
            k = min(int(self.n_samples), N)
            if self.grouping == "ball_query":
                group_idx = _ops.ball_query(xyz, new_xyz, float(self.radius), k)
            elif self.grouping == "ball_hashed":
                group_idx = _ops.ball_query(xyz, new_xyz, float(self.radius), k,
                                            priority=_ops.coordinate_hash(xyz))
            else:
                d2, group_idx = _ops.knn(new_xyz, xyz, k)
                group_idx = torch.where(d2 <= float(self.radius) ** 2, group_idx, group_idx[..., :1])
            local = _ops.gather_points(xyz, group_idx) - new_xyz[:, :, None]  # (B, M, k, 3)
            if self.normalize_local:
                local = local / float(self.radius)
            grouped = local
            if feats is not None:
                grouped = torch.cat([grouped, _ops.gather_points(feats, group_idx)], dim=-1)
        h = self.mlp(grouped)  # (B, M, k, C')
        new_feats, arg = h.max(dim=2)
        info = {"xyz": new_xyz, "center_idx": center_idx, "group_idx": group_idx,
                "argmax": arg, "n_in": N, "radius": self.radius}
        return new_xyz, new_feats, info


class PointNet2(nn.Module):
    """PointNet++ encoder [Qi2017b], single-scale grouping (SSG).

    Introduced in ``lectures/02_encoders.ipynb``.

    Parameters
    ----------
    in_dim:
        Channels per point; the first three are xyz, the rest start as features.
    levels:
        One ``(n_centers, radius, n_samples, mlp_widths)`` per sampled level.  The
        default is the paper's ModelNet40 classifier: ``(512, 0.2, 32, (64,64,128))``,
        ``(128, 0.4, 64, (128,128,256))``; radii are in the units of shapes inside the
        unit sphere, which is also our normalisation.
    global_mlp:
        Widths of the final "group all" level (the paper: 256, 512, 1024).
    out_dim:
        Optional ``gamma`` MLP on the pooled vector, as in :class:`PointNet`.
    normalize_local:
        Divide local coordinates by the radius (keeps their scale near 1 at every level).
        A departure from the reference code, which uses the raw offsets.
    grouping:
        ``"ball_hashed"`` (default: a pseudo-random subset of each ball, order independent),
        ``"ball_query"`` (the paper's first-found points) or ``"knn_in_ball"`` (nearest
        points), see :class:`SetAbstraction`.
    fps_start:
        Where the first level's farthest point sampling starts: ``"farthest"`` (default,
        the point farthest from the centroid), ``"random"`` or a fixed index (the
        reference implementation: 0).

    With the defaults the encoder is permutation invariant: the first level's farthest
    point sampling starts at the point farthest from the centroid (``fps_start="farthest"``)
    rather than at index 0, and each ball keeps a subset chosen by a hash of the coordinates
    rather than by index. The reference implementation starts at index 0 and keeps the first
    points found (``fps_start=0, grouping="ball_query", normalize_local=False``), which depends
    on the order of the input.
    """

    def __init__(
        self,
        in_dim: int = 3,
        levels: Sequence[tuple[int, float, int, Sequence[int]]] = (
            (512, 0.2, 32, (64, 64, 128)),
            (128, 0.4, 64, (128, 128, 256)),
        ),
        global_mlp: Sequence[int] = (256, 512, 1024),
        out_dim: int | None = None,
        normalize_local: bool = True,
        grouping: str = "ball_hashed",
        fps_start: int | str = "farthest",
    ) -> None:
        super().__init__()
        if in_dim < 3:
            raise ValueError("PointNet2 needs xyz: in_dim >= 3")
        if isinstance(fps_start, str) and fps_start not in ("farthest", "random"):
            raise ValueError(f"fps_start must be an int, 'farthest' or 'random', got {fps_start!r}")
        self.fps_start = fps_start
        self.in_dim = int(in_dim)
        sa = []
        channels = self.in_dim - 3
        for n_centers, radius, n_samples, mlp in levels:
            sa.append(SetAbstraction(int(n_centers), float(radius), int(n_samples), channels, mlp, normalize_local,
                                     grouping))
            channels = int(mlp[-1])
        sa.append(SetAbstraction(None, None, None, channels, global_mlp))
        self.sa = nn.ModuleList(sa)
        self.feat_dim = int(global_mlp[-1])
        self.gamma = (
            SharedMLP((self.feat_dim, int(out_dim)), last_activation=False, last_bn=False)
            if out_dim is not None
            else nn.Identity()
        )
        self.out_dim = int(out_dim) if out_dim is not None else self.feat_dim

    def forward(
        self, points: Tensor, return_point_features: bool = False, fps_start: int | str | None = None
    ) -> EncoderOutput:
        """Encode ``points`` ``(B, N, in_dim)``.

        The first level's FPS starts at ``fps_start`` (default: the encoder's ``fps_start``);
        the next levels start at their first center.
        """
        if fps_start is None:
            fps_start = self.fps_start
        _check_points(points, self.in_dim, "PointNet2")
        xyz = points[..., :3]
        feats = points[..., 3:] if self.in_dim > 3 else None
        levels = []
        last_feats = feats
        for i, sa in enumerate(self.sa):
            new_xyz, new_feats, info = sa(xyz, feats, fps_start=fps_start if i == 0 else 0)
            if i == 0:
                info["input_xyz"] = xyz
            levels.append(info)
            last_feats = feats
            xyz, feats = new_xyz, new_feats
        pooled = feats[:, 0]
        crit = levels[-1]["argmax"][:, 0]
        return EncoderOutput(
            global_feature=self.gamma(pooled),
            point_features=last_feats if return_point_features else None,
            pooled=pooled,
            critical_idx=crit,
            levels=levels,
        )


# ---------------------------------------------------------------------------
# DGCNN
# ---------------------------------------------------------------------------
class EdgeConv(nn.Module):
    """EdgeConv [Wang2019]: ``x_i' = max_{j in kNN(i)} act(BN(W [x_j - x_i, x_i]))``.

    Introduced in ``lectures/02_encoders.ipynb``.

    The neighbours are the ``k`` nearest points *in the space of the input features*
    (the point itself included, as in the reference implementation), so the graph
    changes from layer to layer: the "dynamic graph".  Since ``W [x_j - x_i, x_i] =
    W_1 x_j + (W_2 - W_1) x_i``, the linear map is applied per point and only the sum
    is formed per edge; this is exact and saves ``k`` times the matrix products.

    ``norm_after_max=True`` is a cheaper variant for CPUs: ``x_i' = act(BN(max_j W
    [x_j - x_i, x_i]))``, i.e. BatchNorm and activation after the max, on ``N`` points
    instead of ``N k`` edges.  Since ``max_j (W_1 x_j + (W_2 - W_1) x_i) = (W_2 - W_1)
    x_i + max_j W_1 x_j``, no ``(B, N, k, C)`` tensor is kept for the backward pass.
    The two differ only through BatchNorm (statistics over points instead of edges,
    and a negative BN scale turning the paper's max into a min).
    """

    def __init__(self, in_channels: int, out_channels: int, k: int = 20, norm_after_max: bool = False) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.k = int(in_channels), int(out_channels), int(k)
        self.norm_after_max = bool(norm_after_max)
        self.linear = nn.Linear(2 * self.in_channels, self.out_channels, bias=False)
        self.bn = _BatchNormLast(self.out_channels)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor, knn_idx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x`` ``(B, N, C)`` -> ``((B, N, C'), knn_idx (B, N, k))``."""
        if knn_idx is None:
            knn_idx = _knn_idx(x.detach(), min(self.k, x.shape[1]))
        w1, w2 = self.linear.weight[:, : self.in_channels], self.linear.weight[:, self.in_channels:]
        a = F.linear(x, w1)  # applied to x_j
        b = F.linear(x, w2 - w1)  # applied to x_i
        if self.norm_after_max:
            return self.act(self.bn(b + _neighbour_max(a, knn_idx))), knn_idx
        edges = _ops.gather_points(a, knn_idx) + b[:, :, None]  # (B, N, k, C')
        out = self.act(self.bn(edges)).max(dim=2).values
        return out, knn_idx


def _knn_idx(x: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` nearest neighbours of every point of ``x`` among ``x`` (itself included).

    The distances are computed in float64: in float32 the matrix-product form ``|a|^2 + |b|^2 - 2 a.b`` rounds
    differently for the same pair of points at another position in the matrix, so two nearly equidistant
    neighbours (relative gap ~1e-5, measured on chapter 02's trained DGCNN) swap under a permutation of the
    points and the encoder stops being permutation invariant; in float64 such a swap needs a gap ~1e-14.
    """
    if x.dtype in (torch.float16, torch.bfloat16, torch.float32):
        x = x.double()
    search = getattr(getattr(_ops, "neighbors", None), "knn_search", None)
    if search is not None:  # indices only: skips the differentiable distances of ops.knn
        return search(x, x, k)
    return _ops.knn(x, x, k)[1]


def _neighbour_max(a: Tensor, knn_idx: Tensor) -> Tensor:
    """``out[b, i, c] = max_{j in knn_idx[b, i]} a[b, j, c]``, differentiable in ``a``.

    The winners are found without autograd; the gradient then flows through a
    ``(B, N, C)`` gather instead of a ``(B, N, k, C)`` one.
    """
    B, N, C = a.shape
    flat = a.reshape(B * N, C)
    rows = (knn_idx + torch.arange(B, device=a.device)[:, None, None] * N).reshape(B * N, -1)
    with torch.no_grad():  # find the winners without autograd
        cand = flat.index_select(0, rows.reshape(-1)).view(B * N, -1, C)  # (B N, k, C)
        src = rows.gather(1, cand.max(dim=1).indices)  # (B N, C): row of the winning neighbour (max is faster than argmax here)
    return flat.gather(0, src).reshape(B, N, C)


class DGCNN(nn.Module):
    """Dynamic Graph CNN encoder [Wang2019].

    Introduced in ``lectures/02_encoders.ipynb``.

    A stack of :class:`EdgeConv` layers (the first on xyz, the next ones with kNN
    recomputed on the current features), the concatenation of their outputs, a
    shared layer to ``emb_dim`` and a max over the points.  The paper uses widths
    (64, 64, 128, 256), ``emb_dim=1024``, ``k=20`` and concatenates max and mean
    pooling; ``pool="max"`` (default) keeps the max only, as PointNet does.
    ``norm_after_max`` selects the cheaper EdgeConv variant (see :class:`EdgeConv`).
    """

    def __init__(
        self,
        in_dim: int = 3,
        k: int = 20,
        channels: Sequence[int] = (64, 64, 128, 256),
        emb_dim: int = 1024,
        out_dim: int | None = None,
        pool: str = "max",
        norm_after_max: bool = False,
    ) -> None:
        super().__init__()
        if pool not in ("max", "max+mean"):
            raise ValueError(f"pool must be 'max' or 'max+mean', got {pool!r}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.in_dim, self.k, self.pool = int(in_dim), int(k), pool
        convs, cin = [], self.in_dim
        for c in channels:
            convs.append(EdgeConv(cin, int(c), self.k, norm_after_max))
            cin = int(c)
        self.convs = nn.ModuleList(convs)
        self.emb = SharedMLP((sum(int(c) for c in channels), int(emb_dim)), activation="leaky_relu")
        self.feat_dim = int(emb_dim) * (2 if pool == "max+mean" else 1)
        self.gamma = (
            SharedMLP((self.feat_dim, int(out_dim)), last_activation=False, last_bn=False)
            if out_dim is not None
            else nn.Identity()
        )
        self.out_dim = int(out_dim) if out_dim is not None else self.feat_dim

    def forward(self, points: Tensor, return_point_features: bool = False) -> EncoderOutput:
        """Encode ``points`` ``(B, N, in_dim)``."""
        _check_points(points, self.in_dim, "DGCNN")
        x, outs, levels = points, [], []
        for conv in self.convs:
            x, idx = conv(x)
            outs.append(x)
            levels.append({"knn_idx": idx, "n_in": points.shape[1]})
        feats = self.emb(torch.cat(outs, dim=-1))
        pooled, crit = _max_pool(feats, dim=1)
        if self.pool == "max+mean":
            pooled = torch.cat([pooled, feats.mean(dim=1)], dim=-1)
        return EncoderOutput(
            global_feature=self.gamma(pooled),
            point_features=feats if return_point_features else None,
            pooled=pooled,
            critical_idx=crit,
            levels=levels,
        )


# ---------------------------------------------------------------------------
# ResNet image encoder
# ---------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """The two-convolution residual block of ResNet-18/34 [He2015]: ``relu(F(x) + skip(x))``.

    Introduced in ``lectures/02_encoders.ipynb``.  ``skip`` is the identity, or a
    strided 1x1 convolution + BatchNorm when the shape changes.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.skip(x))


class ResNetEncoder(nn.Module):
    """A ResNet-18/34 image encoder for RGB (3 channels) or RGB-D (4 channels) images.

    Introduced in ``lectures/02_encoders.ipynb``.

    Parameters
    ----------
    in_channels:
        3 for RGB, 4 for RGB-D (depth as a fourth channel, see :func:`rgbd_input`).
    layers:
        Blocks per stage: ``(2, 2, 2, 2)`` is ResNet-18, ``(3, 4, 6, 3)`` ResNet-34.
    width:
        Channels of the first stage (64 in the paper); stage ``s`` has ``width * 2**s``.
    out_dim:
        If given, a linear layer maps the pooled ``8 * width`` vector to ``out_dim``.
    stem:
        ``"imagenet"``: 7x7 stride-2 convolution + 3x3 max pool (224 px images);
        ``"small"``: one 3x3 stride-1 convolution (the CIFAR variant; our 32-128 px
        renders keep more resolution with it).
    zero_init_residual:
        Start the last BatchNorm of every block at zero, so that each block starts
        as (ReLU of) its skip connection.

    With ``in_channels=3``, ``width=64``, ``stem="imagenet"`` and ``out_dim=1000`` the
    layout (and the parameter count) is that of torchvision's ``resnet18``/``resnet34``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        layers: Sequence[int] = (2, 2, 2, 2),
        width: int = 64,
        out_dim: int | None = None,
        stem: str = "small",
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if stem not in ("imagenet", "small"):
            raise ValueError(f"stem must be 'imagenet' or 'small', got {stem!r}")
        if in_channels < 1 or width < 1 or not layers:
            raise ValueError("ResNetEncoder needs in_channels >= 1, width >= 1 and at least one stage")
        self.in_channels = int(in_channels)
        if stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                nn.MaxPool2d(3, 2, 1),
            )
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(width), nn.ReLU())
        stages, cin = [], width
        for s, n in enumerate(layers):
            cout = width * 2**s
            blocks = [BasicBlock(cin, cout, stride=1 if s == 0 else 2)]
            blocks += [BasicBlock(cout, cout) for _ in range(int(n) - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.feat_dim = cin
        self.fc = nn.Linear(cin, int(out_dim)) if out_dim is not None else nn.Identity()
        self.out_dim = int(out_dim) if out_dim is not None else cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward(self, images: Tensor, return_feature_maps: bool = False) -> EncoderOutput:
        """Encode ``images`` ``(B, in_channels, H, W)``; ``levels`` holds the stage maps when asked."""
        if not isinstance(images, Tensor) or not images.is_floating_point():
            raise TypeError("ResNetEncoder expects a floating-point torch.Tensor (B, C, H, W)")
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"ResNetEncoder expects images of shape (B, {self.in_channels}, H, W), "
                             f"got {tuple(images.shape)}")
        x = self.stem(images)
        maps = []
        for stage in self.stages:
            x = stage(x)
            if return_feature_maps:
                maps.append({"features": x})
        pooled = x.mean(dim=(2, 3))
        return EncoderOutput(global_feature=self.fc(pooled), pooled=pooled, levels=maps)


def rgbd_input(rgb: Tensor, depth: Tensor, depth_scale: float = 1.0) -> Tensor:
    """Stack an RGB batch ``(B, 3, H, W)`` and a depth batch ``(B, H, W)`` into ``(B, 4, H, W)``.

    Introduced in ``lectures/02_encoders.ipynb``.  Depth is divided by ``depth_scale``
    (so that its values are of the order of the colours); the background (depth 0 or
    inf) becomes 0.  Unbatched ``(3, H, W)`` / ``(H, W)`` inputs give ``(4, H, W)``.
    """
    if rgb.dim() == 3 and depth.dim() == 2:
        return rgbd_input(rgb[None], depth[None], depth_scale)[0]
    if rgb.dim() != 4 or rgb.shape[1] != 3 or depth.dim() != 3 or depth.shape != (rgb.shape[0], *rgb.shape[2:]):
        raise ValueError(f"expected rgb (B, 3, H, W) and depth (B, H, W) of matching sizes, got "
                         f"{tuple(rgb.shape)} and {tuple(depth.shape)}")
    d = torch.where(torch.isfinite(depth), depth, torch.zeros_like(depth)) / depth_scale
    return torch.cat([rgb, d[:, None].to(rgb.dtype)], dim=1)


# ---------------------------------------------------------------------------
# Classifier heads
# ---------------------------------------------------------------------------
class PointClassifier(nn.Module):
    """An encoder followed by an MLP classification head (the ``gamma`` of [Qi2017] §4).

    Introduced in ``lectures/02_encoders.ipynb``.  ``forward`` returns logits
    ``(B, n_classes)``; :meth:`forward_with_output` also returns the encoder output
    (the loss needs its T-Net transforms).
    """

    def __init__(self, encoder: nn.Module, n_classes: int, hidden: Sequence[int] = (512, 256),
                 dropout: float = 0.4) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        self.encoder = encoder
        self.n_classes = int(n_classes)
        dim = int(encoder.out_dim)
        self.head = nn.Sequential(
            SharedMLP((dim, *hidden), dropout=dropout),
            nn.Dropout(dropout),
            nn.Linear(hidden[-1] if hidden else dim, self.n_classes),
        ) if hidden else nn.Linear(dim, self.n_classes)

    def forward_with_output(self, points: Tensor) -> tuple[Tensor, EncoderOutput]:
        """Logits and the encoder output."""
        out = self.encoder(points)
        return self.head(out.global_feature), out

    def forward(self, points: Tensor) -> Tensor:
        """Logits ``(B, n_classes)``."""
        return self.forward_with_output(points)[0]


class PointNetClassifier(PointClassifier):
    """:class:`PointClassifier` on a :class:`PointNet` (introduced in ``lectures/02_encoders.ipynb``)."""


class PointNet2Classifier(PointClassifier):
    """:class:`PointClassifier` on a :class:`PointNet2` (introduced in ``lectures/02_encoders.ipynb``)."""


class DGCNNClassifier(PointClassifier):
    """:class:`PointClassifier` on a :class:`DGCNN` (introduced in ``lectures/02_encoders.ipynb``)."""


# ---------------------------------------------------------------------------
# Receptive fields
# ---------------------------------------------------------------------------
def receptive_fields(output: EncoderOutput, point: int, batch: int = 0) -> list[Tensor]:
    """Which input points can influence the feature "at" ``point``, level by level.

    Introduced in ``lectures/02_encoders.ipynb``.  Returns one boolean mask over the
    ``N`` input points per level of ``output.levels``:

    * PointNet++: at level ``l`` the centre nearest to input point ``point`` is taken;
      the mask marks every input point in the union of its ball, the balls of those
      points' centres one level down, and so on (the last level, "group all", covers
      every point);
    * DGCNN: after EdgeConv layer ``l`` the feature of ``point`` depends on its kNN at
      layer ``l``, their kNN at layer ``l-1``, ... (the graph is recomputed per layer);
    * PointNet (no levels): an empty list; its per-point feature sees one point and
      the max sees all of them.
    """
    levels = output.levels
    if not levels:
        return []
    n = int(levels[0]["n_in"])
    if not 0 <= point < n:
        raise ValueError(f"point index {point} out of range for {n} input points")
    if "knn_idx" in levels[0]:
        masks, reach = [], torch.zeros(n, dtype=torch.bool, device=levels[0]["knn_idx"].device)
        reach[point] = True
        # rf_l(point) = union over j in knn_l(point) of rf_{l-1}(j): propagate full adjacency.
        rf = torch.eye(n, dtype=torch.bool, device=reach.device)
        for lev in levels:
            idx = lev["knn_idx"][batch]  # (N, k)
            rf = rf[idx].any(dim=1)  # (N, N): rows = points, cols = input points
            masks.append(rf[point].clone())
        return masks
    # PointNet++: levels[l] has xyz (centres), group_idx into level l-1 points.
    masks = []
    input_xyz = levels[0].get("input_xyz")
    if input_xyz is None:
        raise ValueError("receptive_fields needs output.levels[0]['input_xyz'] (set by PointNet2.forward)")
    input_xyz_point = input_xyz[batch, point]
    for li, lev in enumerate(levels):
        if lev["center_idx"] is None:  # group all
            masks.append(torch.ones(n, dtype=torch.bool, device=lev["group_idx"].device))
            continue
        dist = (lev["xyz"][batch] - input_xyz_point).pow(2).sum(-1)
        sel = torch.zeros(lev["xyz"].shape[1], dtype=torch.bool, device=dist.device)
        sel[int(dist.argmin())] = True
        for lj in range(li, -1, -1):  # push the selection down to the input points
            members = levels[lj]["group_idx"][batch][sel].flatten()
            n_prev = int(levels[lj]["n_in"])
            sel = torch.zeros(n_prev, dtype=torch.bool, device=dist.device)
            sel[members] = True
        masks.append(sel)
    return masks

