"""ShapeGF: a shape as the gradient field of its smoothed surface density (Cai et al., ECCV 2020).

Introduced in ``lectures/10_gradient_fields.ipynb``.

A surface ``S`` with its uniform surface density ``P_S``, blurred by an isotropic Gaussian of
standard deviation ``sigma``, gives a density ``Q_sigma(x)`` on all of R^3.  ShapeGF models
its *score* ``grad_x log Q_sigma(x)`` instead of the density itself: no normalising
constant is needed, and points sampled anywhere in space walk onto the surface by
following the field (annealed Langevin dynamics).  This module holds

* the ground truth: :func:`smoothed_log_density` and :func:`analytic_score` of a point
  cloud blurred by a Gaussian (a mixture of ``N`` Gaussians, one per point);
* :func:`sigma_schedule`, the geometric noise levels of the official code (1 -> 0.01 in 10);
* :class:`ScoreNet`, a ResNet of 1x1 convolutions on ``[x, z, sigma]``;
* :func:`dsm_loss`, denoising score matching over the schedule, one sigma per shape;
* :func:`annealed_langevin`, the sampler (the official update order and step sizes);
* :class:`ShapeGF`, the auto-encoder (a PointNet encoder of chapter 02 and the score net);
* :func:`project_to_surface`, :func:`field_grid` and :func:`field_mesh`: the surface as the
  set where the field vanishes;
* :class:`LatentGenerator`, :class:`LatentDiscriminator`, :func:`zero_centered_penalty`
  and :func:`train_latent_gan`: the latent GAN used for generation.

Conventions.  The network predicts the *displacement* ``y = sigma^2 * score`` (units of
length), as the official code does: for a noisy point ``x~ = x + sigma * eps`` the target
is ``y = -(x~ - x) = -sigma * eps`` and ``score = y / sigma^2``.  The loss weight is the
official code's ``1 / (2 sigma)`` on ``||y_pred - y||^2``, which is ``sigma^3 / 2`` in score
units, against NCSN's ``sigma^2 / 2`` (Song and Ermon 2019); ``weighting="ncsn"`` switches
to the latter.  See :func:`dsm_loss` for why we keep the official one.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "SIGMA_BEGIN",
    "SIGMA_END",
    "SIGMA_NUM",
    "PRIOR_BOUND",
    "sigma_schedule",
    "LEVEL_SAMPLING",
    "draw_levels",
    "smoothed_log_density",
    "analytic_score",
    "analytic_score_fn",
    "STABLE_STEP_RATIO",
    "gaussian_langevin_variance",
    "ncsn_epsilon",
    "ScoreNet",
    "dsm_loss",
    "uniform_prior",
    "annealed_langevin",
    "LangevinResult",
    "ShapeGF",
    "project_to_surface",
    "field_grid",
    "field_mesh",
    "LatentGenerator",
    "LatentDiscriminator",
    "zero_centered_penalty",
    "train_latent_gan",
    "GANHistory",
]

SIGMA_BEGIN = 1.0
"""Largest noise level of the official code (``sigma_begin``)."""
SIGMA_END = 0.01
"""Smallest noise level (``sigma_end``)."""
SIGMA_NUM = 10
"""Number of geometric levels for training (``sigma_num``; the generation configs sample with 5)."""
PRIOR_BOUND = 1.5
"""The official sampler starts from points uniform in ``[-1.5, 1.5]^3``."""

ScoreFn = Callable[[Tensor, Tensor], Tensor]


# ---------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------
def _check_cloud(x: Any, name: str, batched: bool | None = None) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.dim() not in (2, 3) or x.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (N, 3) or (B, N, 3), got {tuple(x.shape)}")
    if batched is True and x.dim() != 3:
        raise ValueError(f"{name} must have shape (B, N, 3), got {tuple(x.shape)}")
    if x.shape[-2] == 0 or (x.dim() == 3 and x.shape[0] == 0):
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    return x


def _sigma_per_batch(sigma: Any, b: int, ref: Tensor, name: str = "sigma") -> Tensor:
    """``sigma`` (float, 0-d or ``(B,)``) as a positive ``(B,)`` tensor on ``ref``'s device and dtype."""
    s = torch.as_tensor(sigma, dtype=ref.dtype, device=ref.device)
    if s.dim() == 0:
        s = s.expand(b)
    if s.dim() != 1 or s.shape[0] != b:
        raise ValueError(f"{name} must be a float or a tensor of shape ({b},), got shape {tuple(s.shape)}")
    if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
        raise ValueError(f"{name} must be finite and positive, got {s.tolist()}")
    return s


def sigma_schedule(begin: float = SIGMA_BEGIN, end: float = SIGMA_END, n: int = SIGMA_NUM, *,
                   device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """The ``n`` noise levels ``begin * (end / begin)^(i / (n - 1))``, from large to small.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  The defaults are the official
    code's (1, 0.5995, ..., 0.01); ``n == 1`` gives ``[begin]``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not (begin > 0 and end > 0):
        raise ValueError(f"begin and end must be positive, got {begin} and {end}")
    if n == 1:
        return torch.tensor([float(begin)], device=device, dtype=dtype)
    t = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    s = float(begin) * (float(end) / float(begin)) ** t
    return s.to(device=device, dtype=dtype)


# ---------------------------------------------------------------------------
# the ground truth: a Gaussian-smoothed point cloud
# ---------------------------------------------------------------------------
def _batched_pair(x: Tensor, points: Tensor) -> tuple[Tensor, Tensor, bool]:
    x = _check_cloud(x, "x")
    points = _check_cloud(points, "points")
    unbatched = x.dim() == 2 and points.dim() == 2
    xb = x[None] if x.dim() == 2 else x
    pb = points[None] if points.dim() == 2 else points
    if xb.shape[0] != pb.shape[0]:
        if xb.shape[0] == 1:
            xb = xb.expand(pb.shape[0], -1, -1)
        elif pb.shape[0] == 1:
            pb = pb.expand(xb.shape[0], -1, -1)
        else:
            raise ValueError(f"x and points have different batch sizes: {xb.shape[0]} and {pb.shape[0]}")
    if xb.device != pb.device:
        raise ValueError(f"x and points are on different devices: {xb.device} and {pb.device}")
    pb = pb.to(xb.dtype)
    return xb, pb, unbatched


def _logits(xb: Tensor, pb: Tensor, s: Tensor) -> Tensor:
    """``-||x_m - p_n||^2 / (2 sigma^2)``, ``(B, M, N)``, from exact differences' expansion.

    The expansion ``|x|^2 + |p|^2 - 2 x.p`` is computed about the cloud's centroid, which keeps
    its rounding error far below ``sigma^2`` for clouds of unit size.
    """
    c = pb.mean(dim=1, keepdim=True)
    xc, pc = xb - c, pb - c
    d2 = (xc.square().sum(-1, keepdim=True) + pc.square().sum(-1)[:, None, :]
          - 2.0 * xc @ pc.transpose(1, 2)).clamp_min(0.0)
    return -d2 / (2.0 * s.square()[:, None, None])


def smoothed_log_density(x: Tensor, points: Tensor, sigma: float | Tensor, chunk: int = 4096) -> Tensor:
    r"""``log Q_sigma(x)`` of the cloud ``points`` blurred by ``N(0, sigma^2 I)``.

    Introduced in ``lectures/10_gradient_fields.ipynb``.

    .. math:: Q_\sigma(x) = \frac1N \sum_n \mathcal N(x; p_n, \sigma^2 I)

    (the empirical version of the seed's :math:`\int P_S(s) N(x; s, \sigma^2 I) ds`).
    ``x`` ``(M, 3)`` or ``(B, M, 3)``, ``points`` ``(N, 3)`` or ``(B, N, 3)``, ``sigma`` a float
    or one value per cloud ``(B,)``.  Returns ``(M,)`` or ``(B, M)``; differentiable in ``x``.
    """
    xb, pb, unbatched = _batched_pair(x, points)
    s = _sigma_per_batch(sigma, xb.shape[0], xb)
    n = pb.shape[1]
    outs = []
    for i in range(0, xb.shape[1], chunk):
        lg = _logits(xb[:, i:i + chunk], pb, s)
        outs.append(torch.logsumexp(lg, dim=-1))
    lse = torch.cat(outs, dim=1)
    out = lse - math.log(n) - 1.5 * torch.log(2 * math.pi * s.square())[:, None]
    return out[0] if unbatched else out


def analytic_score(x: Tensor, points: Tensor, sigma: float | Tensor, chunk: int = 4096) -> Tensor:
    r"""The exact score ``grad_x log Q_sigma(x)`` of the Gaussian-smoothed cloud ``points``.

    Introduced in ``lectures/10_gradient_fields.ipynb``.

    .. math:: \nabla_x \log Q_\sigma(x) = \frac{\sum_n w_n(x)\, p_n - x}{\sigma^2},\qquad
              w_n(x) = \operatorname{softmax}_n\Big(-\frac{\|x - p_n\|^2}{2\sigma^2}\Big)

    It points from ``x`` to a weighted mean of the cloud's points, the weights concentrating
    on the nearest ones as ``sigma`` shrinks; ``sigma^2`` times it is the displacement the
    network is trained to predict.  (The official ``ground_truth_field`` helper uses
    ``sigma^2`` instead of ``2 sigma^2`` in the softmax, i.e. the field of a narrower blur.)
    Shapes as :func:`smoothed_log_density`; returns ``(M, 3)`` or ``(B, M, 3)``.  Memory
    ``O(B * chunk * N)``.
    """
    xb, pb, unbatched = _batched_pair(x, points)
    s = _sigma_per_batch(sigma, xb.shape[0], xb)
    outs = []
    for i in range(0, xb.shape[1], chunk):
        xi = xb[:, i:i + chunk]
        w = torch.softmax(_logits(xi, pb, s), dim=-1)
        outs.append((w @ pb - xi) / s.square()[:, None, None])
    out = torch.cat(outs, dim=1)
    return out[0] if unbatched else out


def analytic_score_fn(points: Tensor) -> ScoreFn:
    """``score_fn(x, sigma)`` of the smoothed cloud ``points`` ``(B, N, 3)``, for :func:`annealed_langevin`.

    Introduced in ``lectures/10_gradient_fields.ipynb``.
    """
    pts = _check_cloud(points, "points")

    def score_fn(x: Tensor, sigma: Tensor) -> Tensor:
        return analytic_score(x, pts, sigma)

    return score_fn


# ---------------------------------------------------------------------------
# the score network
# ---------------------------------------------------------------------------
class _CondLinear(nn.Module):
    """A linear map of the condition ``c = [x, z, sigma]``, split into its per-point part (``x``)
    and its per-shape part (``z``, ``sigma``): the same function as a 1x1 convolution of the
    concatenated condition, without repeating the per-shape product at every point."""

    def __init__(self, shape_dim: int, out: int) -> None:
        super().__init__()
        self.point = nn.Linear(3, out)
        self.shape = nn.Linear(shape_dim, out, bias=False)

    def forward(self, x: Tensor, cs: Tensor) -> Tensor:
        return self.point(x) + self.shape(cs)[:, None, :]


NORMS = ("batch", "none")
"""The score network's normalisation: BatchNorm over all points of the batch (official) or none."""


def _norm_layer(norm: str, hidden: int, affine: bool = True) -> nn.Module:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    return nn.BatchNorm1d(hidden, affine=affine) if norm == "batch" else nn.Identity()


def _bn(bn: nn.Module, h: Tensor) -> Tensor:
    """BatchNorm over all points of the batch, ``h`` ``(B, M, C)`` (channels last)."""
    b, m, c = h.shape
    return bn(h.reshape(b * m, c)).reshape(b, m, c)


class _ResBlock(nn.Module):
    """BN-ReLU-linear-BN-ReLU-linear (per point, channels last) plus the condition.

    ``conditioning="add"``: a linear map of ``c`` is added to the block output (the official
    ``resnet_add``); ``"cbn"``: the BatchNorms are conditional, ``gamma`` and ``beta`` linear
    maps of ``c`` initialised to 1 and 0 (``resnet_cbn``).  The second linear layer starts at
    zero, so every block starts as the identity.
    """

    def __init__(self, hidden: int, shape_dim: int, conditioning: str, norm: str = "batch") -> None:
        super().__init__()
        self.conditioning = conditioning
        affine = conditioning != "cbn"
        self.bn0 = _norm_layer(norm, hidden, affine)
        self.bn1 = _norm_layer(norm, hidden, affine)
        self.fc0 = nn.Linear(hidden, hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        nn.init.zeros_(self.fc1.weight)
        if conditioning == "add":
            self.fc_c = _CondLinear(shape_dim, hidden)
        else:
            self.gb0 = _CondLinear(shape_dim, 2 * hidden)
            self.gb1 = _CondLinear(shape_dim, 2 * hidden)
            for m in (self.gb0, self.gb1):
                nn.init.zeros_(m.point.weight)
                nn.init.zeros_(m.shape.weight)
                with torch.no_grad():
                    m.point.bias.zero_()
                    m.point.bias[:hidden] = 1.0

    def _norm(self, bn: nn.Module, h: Tensor, x: Tensor, cs: Tensor, gb: nn.Module | None) -> Tensor:
        h = _bn(bn, h)
        if gb is not None:
            gamma, beta = gb(x, cs).chunk(2, dim=-1)
            h = gamma * h + beta
        return h

    def forward(self, h: Tensor, x: Tensor, cs: Tensor) -> Tensor:
        cbn = self.conditioning == "cbn"
        net = self.fc0(torch.relu(self._norm(self.bn0, h, x, cs, self.gb0 if cbn else None)))
        dx = self.fc1(torch.relu(self._norm(self.bn1, net, x, cs, self.gb1 if cbn else None)))
        out = h + dx
        if not cbn:
            out = out + self.fc_c(x, cs)
        return out


class ScoreNet(nn.Module):
    """The decoder of ShapeGF: ``g(x, z, sigma)``, the displacement ``sigma^2 * score`` at ``x``.

    Introduced in ``lectures/10_gradient_fields.ipynb``.

    Every point is processed on its own (per-point linear layers, the official code's 1x1
    convolutions) from the condition ``c = [x, z, sigma]`` (``sigma`` concatenated as a
    number, as in the official code, so any level between the trained ones can be queried).
    ``n_blocks`` residual blocks of width ``hidden`` (the official: 24 blocks of 256 with
    ``"add"``, 16 with ``"cbn"``), then BN-ReLU-linear to 3.  ``latent_dim=0`` gives an
    unconditional field (one shape).  The per-shape part of every linear map of ``c``
    (``z`` and ``sigma``) is computed once per shape, not once per point.

    Two departures from the official code, off by default: ``sigma_input="log"`` feeds
    ``log sigma`` instead of ``sigma`` (the small levels 0.01, 0.017, 0.028 are then as far
    apart as the large ones), and ``output="scaled"`` returns ``sigma * f(...)`` (the network
    predicts the unit-size ``-eps``, NCSN's parametrisation ``score = f / sigma``), so that the
    displacement has the right order of magnitude at every level from the start.

    ``forward(x (B, M, 3), z (B, L) or None, sigma float or (B,)) -> (B, M, 3)`` (the
    displacement); :meth:`score` divides by ``sigma^2``.
    """

    def __init__(self, latent_dim: int = 128, hidden: int = 256, n_blocks: int = 4,
                 conditioning: str = "add", sigma_input: str = "sigma", output: str = "displacement",
                 norm: str = "batch") -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if sigma_input not in ("sigma", "log"):
            raise ValueError(f"sigma_input must be 'sigma' or 'log', got {sigma_input!r}")
        if output not in ("displacement", "scaled"):
            raise ValueError(f"output must be 'displacement' or 'scaled', got {output!r}")
        self.sigma_input, self.output = sigma_input, output
        if conditioning not in ("add", "cbn"):
            raise ValueError(f"conditioning must be 'add' or 'cbn', got {conditioning!r}")
        if latent_dim < 0 or hidden < 1 or n_blocks < 1:
            raise ValueError(f"need latent_dim >= 0, hidden >= 1, n_blocks >= 1; got {latent_dim}, {hidden}, {n_blocks}")
        self.latent_dim = int(latent_dim)
        self.hidden = int(hidden)
        self.conditioning = conditioning
        shape_dim = self.latent_dim + 1
        self.conv_p = _CondLinear(shape_dim, hidden)
        self.blocks = nn.ModuleList(_ResBlock(hidden, shape_dim, conditioning, norm) for _ in range(n_blocks))
        self.bn_out = _norm_layer(norm, hidden)
        self.conv_out = nn.Linear(hidden, 3)

    def forward(self, x: Tensor, z: Tensor | None, sigma: float | Tensor) -> Tensor:
        x = _check_cloud(x, "x", batched=True)
        b = x.shape[0]
        s = _sigma_per_batch(sigma, b, x)
        if self.latent_dim:
            if z is None or z.dim() != 2 or z.shape != (b, self.latent_dim):
                got = None if z is None else tuple(z.shape)
                raise ValueError(f"z must have shape ({b}, {self.latent_dim}), got {got}")
            cs = torch.cat([z.to(x.dtype), self._sigma_feature(s)], dim=1)
        else:
            cs = self._sigma_feature(s)
        h = self.conv_p(x, cs)
        for blk in self.blocks:
            h = blk(h, x, cs)
        y = self.conv_out(torch.relu(_bn(self.bn_out, h)))
        return y * s[:, None, None] if self.output == "scaled" else y

    def _sigma_feature(self, s: Tensor) -> Tensor:
        return (torch.log(s) if self.sigma_input == "log" else s)[:, None]

    def score(self, x: Tensor, z: Tensor | None, sigma: float | Tensor) -> Tensor:
        """The score estimate ``g / sigma^2`` ``(B, M, 3)``."""
        s = _sigma_per_batch(sigma, x.shape[0], x)
        return self(x, z, s) / s.square()[:, None, None]


# ---------------------------------------------------------------------------
# denoising score matching
# ---------------------------------------------------------------------------
_WEIGHTINGS = ("shapegf", "ncsn")
LEVEL_SAMPLING = ("uniform", "stratified")
"""How :func:`dsm_loss` draws the shapes' noise levels: independently (the official code) or stratified."""


def draw_levels(b: int, n_levels: int, levels: str = "uniform", *, generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> Tensor:
    """Indices ``(b,)`` of the noise level of each of ``b`` shapes among ``n_levels`` levels.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  ``"uniform"`` (the official code)
    draws each index independently and uniformly.  ``"stratified"`` deals the levels like
    cards: the batch is cut into runs of ``n_levels`` shapes and each run gets a random
    permutation of all levels (the last run a random subset), so that every batch of at least
    ``n_levels`` shapes trains every level.  Each shape's level is still uniform, so the loss
    has the same expectation; only its batch-to-batch variance shrinks.
    """
    if levels not in LEVEL_SAMPLING:
        raise ValueError(f"levels must be one of {LEVEL_SAMPLING}, got {levels!r}")
    if isinstance(b, bool) or not isinstance(b, int) or b < 1:
        raise ValueError(f"b (the number of shapes) must be a positive int, got {b!r}")
    if isinstance(n_levels, bool) or not isinstance(n_levels, int) or n_levels < 1:
        raise ValueError(f"n_levels must be a positive int, got {n_levels!r}")
    gen_dev = generator.device if generator is not None else device
    if levels == "uniform":
        idx = torch.randint(0, n_levels, (b,), generator=generator, device=gen_dev)
    else:
        runs = -(-b // n_levels)
        idx = torch.cat([torch.randperm(n_levels, generator=generator, device=gen_dev) for _ in range(runs)])[:b]
        # shuffle so that the incomplete last run is not always the last shapes of the batch
        idx = idx[torch.randperm(b, generator=generator, device=gen_dev)]
    return idx.to(device) if device is not None else idx


def dsm_loss(predict: Callable[[Tensor, Tensor], Tensor], points: Tensor, sigmas: Tensor, *,
             weighting: str = "shapegf", generator: torch.Generator | None = None,
             return_parts: bool = False, levels: str = "uniform") -> Tensor | dict[str, Tensor]:
    r"""Denoising score matching over the noise schedule, one noise level per shape.

    Introduced in ``lectures/10_gradient_fields.ipynb``.

    For each shape ``b`` draw one level ``sigma_b`` uniformly from ``sigmas``, perturb every
    point ``x~ = x + sigma_b * eps`` (``eps ~ N(0, I)``), ask ``predict(x~, sigma (B,))`` for
    the displacement ``y_pred`` ``(B, N, 3)`` and compare it with the target ``-sigma_b eps``
    (``= sigma_b^2`` times the score of the Gaussian kernel at ``x~``):

    * ``weighting="shapegf"`` (default, the official code):
      :math:`\frac{1}{2\sigma}\|y_{pred} + \sigma\epsilon\|^2`, summed over xyz, averaged
      over points and shapes.  In score units this weights level ``sigma`` by ``sigma^3``.
    * ``weighting="ncsn"``: :math:`\frac{1}{2\sigma^2}\|y_{pred} + \sigma\epsilon\|^2`, NCSN's
      ``lambda(sigma) = sigma^2`` (every level's loss of order 1).

    The default is the official weight, so that the library reproduces the official code;
    the chapter's experiments use ``"ncsn"`` with :class:`ScoreNet`'s ``output="scaled"``
    (``ch10.weighting``): with a CPU budget the official weight leaves the small levels, whose
    targets and weights are tiny, untrained.  ``lectures/10_gradient_fields.ipynb`` explains
    the choice and ``benchmarks/gradient_fields.py --ablation`` measures both.

    The minimiser over ``y_pred`` is ``sigma^2 * grad log Q_sigma(x~)`` of the data smoothed
    by the noise (Vincent 2011), whatever the weight.  ``levels`` (:func:`draw_levels`):
    ``"uniform"`` draws each shape's level independently (the official code), ``"stratified"``
    spreads the levels evenly over the batch (same expectation, less variance).
    ``return_parts`` also returns the noisy points, levels and targets (for plots and checks).
    """
    points = _check_cloud(points, "points", batched=True)
    if weighting not in _WEIGHTINGS:
        raise ValueError(f"weighting must be one of {_WEIGHTINGS}, got {weighting!r}")
    sig = torch.as_tensor(sigmas, dtype=points.dtype, device=points.device).reshape(-1)
    if sig.numel() == 0 or bool((sig <= 0).any()):
        raise ValueError("sigmas must be a non-empty list of positive noise levels")
    b = points.shape[0]
    gen_dev = generator.device if generator is not None else points.device
    idx = draw_levels(b, int(sig.numel()), levels, generator=generator, device=points.device)
    s = sig[idx]
    eps = torch.randn(points.shape, generator=generator, device=gen_dev, dtype=points.dtype).to(points.device)
    noisy = points + s[:, None, None] * eps
    target = -s[:, None, None] * eps
    pred = predict(noisy, s)
    if not isinstance(pred, Tensor) or pred.shape != points.shape:
        raise ValueError(f"predict must return a tensor of shape {tuple(points.shape)}, "
                         f"got {getattr(pred, 'shape', type(pred).__name__)}")
    power = 1.0 if weighting == "shapegf" else 2.0
    per = 0.5 * (pred - target).square().sum(-1) / s[:, None] ** power
    loss = per.mean()
    if return_parts:
        return {"loss": loss, "noisy": noisy, "sigma": s, "target": target, "pred": pred}
    return loss


# ---------------------------------------------------------------------------
# annealed Langevin dynamics
# ---------------------------------------------------------------------------
def uniform_prior(batch: int, n_points: int, bound: float = PRIOR_BOUND, *, device: torch.device | str | None = None,
                  dtype: torch.dtype = torch.float32, generator: torch.Generator | None = None) -> Tensor:
    """``(batch, n_points, 3)`` points uniform in ``[-bound, bound]^3`` (the official prior).

    Introduced in ``lectures/10_gradient_fields.ipynb``.
    """
    if batch < 1 or n_points < 1:
        raise ValueError(f"batch and n_points must be positive, got {batch} and {n_points}")
    gen_dev = generator.device if generator is not None else device
    u = torch.rand(batch, n_points, 3, generator=generator, device=gen_dev, dtype=dtype)
    return ((2 * u - 1) * bound).to(device)


@dataclass
class LangevinResult:
    """Output of :func:`annealed_langevin`: the final points and, if asked, the trajectory."""

    points: Tensor
    trajectory: list[Tensor] = field(default_factory=list)
    sigmas: list[float] = field(default_factory=list)


STABLE_STEP_RATIO = 2.0
"""The largest ``step_ratio`` of :func:`annealed_langevin` at which the chain stays bounded on a Gaussian:
one step multiplies the distance to the mode by ``|1 - step_ratio|`` (:func:`gaussian_langevin_variance`)."""


def gaussian_langevin_variance(step_ratio: float, steps: int | None = None, *, sigma: float = 1.0,
                               var0: float = 0.0, noise: bool = True) -> float:
    r"""Variance (per coordinate) of :func:`annealed_langevin`'s chain on the exact score of
    :math:`N(0, \sigma^2 I)`, after ``steps`` steps at level ``sigma`` from variance ``var0``, or its
    limit (``steps=None``).

    Introduced in ``lectures/10_gradient_fields.ipynb`` (the 1-D analysis of the step size).  With
    :math:`\alpha = 2\sigma^2 r` (``r = step_ratio``) one step is "noise :math:`\sqrt\alpha\,\xi`, then
    :math:`x \mathrel{+}= \tfrac{\alpha}{2} s(x)`" with :math:`s(x) = -x/\sigma^2`, i.e.
    :math:`x \leftarrow (1 - r)(x + \sqrt{\alpha}\,\xi)`, so

    .. math:: v_{k+1} = (1 - r)^2 (v_k + 2\sigma^2 r) \;\to\; v_\infty = \frac{2\sigma^2 (1 - r)^2}{2 - r}
              \quad (0 < r < 2).

    Small ratios approach the target's :math:`\sigma^2` (Langevin sampling proper), ``r = 1`` gives 0
    after one step (every point lands *on* the mode: perturb, then project back, which is what ShapeGF
    wants of its last level), ``r = 2`` is a random walk (the variance grows by :math:`4\sigma^2` a step)
    and ``r > 2`` diverges geometrically.  ``noise=False`` drops the noise (the variance then only
    shrinks or grows by :math:`(1 - r)^2`).  Returns ``inf`` for a limit that does not exist.
    """
    r = float(step_ratio)
    if not r > 0:
        raise ValueError(f"step_ratio must be positive, got {step_ratio}")
    if not sigma > 0 or var0 < 0:
        raise ValueError(f"sigma must be positive and var0 non-negative, got sigma={sigma}, var0={var0}")
    a2, add = (1.0 - r) ** 2, (2.0 * sigma * sigma * r if noise else 0.0)
    if steps is None:
        if r >= STABLE_STEP_RATIO:
            return math.inf if (add > 0 or var0 > 0) else 0.0
        return a2 * add / (1.0 - a2) if add > 0 else 0.0
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int or None, got {steps!r}")
    v = float(var0)
    for _ in range(steps):
        v = a2 * (v + add)
    return v


def ncsn_epsilon(step_ratio: float, sigma_last: float) -> float:
    r"""The step constant :math:`\epsilon` of NCSN's rule :math:`\alpha_i = \epsilon\,\sigma_i^2/\sigma_L^2`
    [Song2019] that equals :func:`annealed_langevin`'s :math:`\alpha_i = 2\sigma_i^2 r`:
    :math:`\epsilon = 2 r \sigma_L^2`.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  Both rules scale the step with
    :math:`\sigma_i^2`; NCSN writes the constant relative to the last level.  With ShapeGF's last level
    ``0.01`` and ratio 1, :math:`\epsilon = 2\times10^{-4}` (NCSN's images used :math:`2\times10^{-5}` with
    100 steps per level; ShapeGF takes 10).
    """
    if not step_ratio > 0 or not sigma_last > 0:
        raise ValueError(f"step_ratio and sigma_last must be positive, got {step_ratio}, {sigma_last}")
    return 2.0 * float(step_ratio) * float(sigma_last) ** 2


@torch.no_grad()
def annealed_langevin(score_fn: ScoreFn, x0: Tensor, sigmas: Sequence[float] | Tensor, steps_per_level: int = 10,
                      step_ratio: float = 1.0, *, noise: bool = True, generator: torch.Generator | None = None,
                      return_trajectory: bool = False, clip: float | None = None,
                      allow_unstable: bool = False) -> Tensor | LangevinResult:
    r"""Move the points ``x0`` along the score, level by level from large to small ``sigma``.

    Introduced in ``lectures/10_gradient_fields.ipynb``.

    For each level ``sigma_i`` (in the given order, normally decreasing), ``steps_per_level``
    times, with step :math:`\alpha_i = 2\sigma_i^2 \cdot` ``step_ratio``:

    .. math:: x \leftarrow x + \sqrt{\alpha_i}\,\xi,\quad \xi\sim N(0, I);\qquad
              x \leftarrow x + \tfrac{\alpha_i}{2}\, s(x, \sigma_i)

    the official order (noise first, then the gradient step, so that every level ends on
    a denoising step; with ``step_ratio=1`` the gradient step is ``x += sigma_i^2 s``, the
    network's raw output).  ``noise=False`` drops the noise (plain annealed gradient ascent).
    ``clip`` (not in the official code, default off) clamps the points to ``[-clip, clip]^3``
    after every step, so that a badly trained field cannot send them to infinity.
    ``score_fn(x (B, M, 3), sigma (B,)) -> (B, M, 3)`` is the score (not the displacement).
    Returns the final points, or a :class:`LangevinResult` whose ``trajectory`` holds
    ``x0`` and the points after every level.

    The step size matters (:func:`gaussian_langevin_variance`): on a Gaussian a step multiplies the
    distance to the mode by ``|1 - step_ratio|``, so ratios below 1 sample around the surface, 1
    projects onto it, 2 is a random walk and above 2 the chain diverges.  ``step_ratio`` 2 warns and
    above 2 raises ``ValueError`` unless ``allow_unstable=True`` (for demonstrations).
    """
    x = _check_cloud(x0, "x0", batched=True).clone()
    sig = [float(s) for s in (sigmas.tolist() if isinstance(sigmas, Tensor) else sigmas)]
    if not sig or any(not (s > 0) for s in sig):
        raise ValueError(f"sigmas must be a non-empty sequence of positive levels, got {sig}")
    if isinstance(steps_per_level, bool) or not isinstance(steps_per_level, int) or steps_per_level < 1:
        raise ValueError(f"steps_per_level must be a positive int, got {steps_per_level!r}")
    if not step_ratio > 0:
        raise ValueError(f"step_ratio must be positive, got {step_ratio}")
    if step_ratio > STABLE_STEP_RATIO and not allow_unstable:
        raise ValueError(f"step_ratio {step_ratio} > 2: every step multiplies the distance to the surface by "
                         f"|1 - step_ratio| = {abs(1 - step_ratio):.3g} > 1, so the points diverge (to NaN without a "
                         "clip); use a ratio in (0, 2), or allow_unstable=True to watch it happen")
    if step_ratio >= STABLE_STEP_RATIO:
        warnings.warn(f"step_ratio {step_ratio} is at or beyond the stability limit 2 of the Langevin step: the "
                      "points random-walk (or diverge) instead of settling", RuntimeWarning, stacklevel=2)
    gen_dev = generator.device if generator is not None else x.device
    traj = [x.clone()] if return_trajectory else []
    b = x.shape[0]
    for s in sig:
        alpha = 2.0 * s * s * float(step_ratio)
        s_b = torch.full((b,), s, dtype=x.dtype, device=x.device)
        for _ in range(steps_per_level):
            if noise:
                xi = torch.randn(x.shape, generator=generator, device=gen_dev, dtype=x.dtype).to(x.device)
                x = x + math.sqrt(alpha) * xi
            g = score_fn(x, s_b)
            if g.shape != x.shape:
                raise ValueError(f"score_fn must return shape {tuple(x.shape)}, got {tuple(g.shape)}")
            x = x + 0.5 * alpha * g
            if clip is not None:
                x = x.clamp(-clip, clip)
        if return_trajectory:
            traj.append(x.clone())
    if return_trajectory:
        return LangevinResult(points=x, trajectory=traj, sigmas=sig)
    return x


# ---------------------------------------------------------------------------
# the auto-encoder
# ---------------------------------------------------------------------------
class ShapeGF(nn.Module):
    """The ShapeGF auto-encoder: a PointNet encoder (chapter 02) and a :class:`ScoreNet`.

    Introduced in ``lectures/10_gradient_fields.ipynb``.

    :meth:`encode` maps a cloud ``(B, N, 3)`` (any ``N``) to ``z`` ``(B, latent_dim)``;
    :meth:`loss` is :func:`dsm_loss` of the decoder conditioned on the input's code;
    :meth:`sample` draws any number of points of the decoded shapes with
    :func:`annealed_langevin` from :func:`uniform_prior`.  ``encoder`` defaults to a
    PointNet ``hidden -> feat_dim -> latent_dim`` (the official: 128-128-256-512, then an
    MLP to 128).
    """

    def __init__(self, latent_dim: int = 128, hidden: int = 256, n_blocks: int = 4, conditioning: str = "add",
                 encoder: nn.Module | None = None, encoder_hidden: Sequence[int] = (64, 128),
                 encoder_feat_dim: int = 256, sigmas: Tensor | None = None, sigma_input: str = "sigma",
                 output: str = "displacement", norm: str = "batch") -> None:
        super().__init__()
        from .encoders import PointNet

        self.latent_dim = int(latent_dim)
        self.encoder = encoder if encoder is not None else PointNet(
            in_dim=3, feat_dim=encoder_feat_dim, hidden=tuple(encoder_hidden), out_dim=latent_dim)
        self.decoder = ScoreNet(latent_dim, hidden, n_blocks, conditioning, sigma_input, output, norm)
        self.register_buffer("sigmas", sigma_schedule() if sigmas is None else torch.as_tensor(sigmas).float())

    def encode(self, points: Tensor) -> Tensor:
        """``z`` ``(B, latent_dim)`` of clouds ``(B, N, 3)``."""
        points = _check_cloud(points, "points", batched=True)
        out = self.encoder(points)
        return out.global_feature if hasattr(out, "global_feature") else out

    def score(self, x: Tensor, z: Tensor, sigma: float | Tensor) -> Tensor:
        """The decoder's score estimate at ``x`` for codes ``z`` and level ``sigma``."""
        return self.decoder.score(x, z, sigma)

    def loss(self, inputs: Tensor, targets: Tensor | None = None, *, weighting: str = "shapegf",
             n_target: int | None = None, generator: torch.Generator | None = None,
             levels: str = "uniform") -> Tensor:
        """DSM loss of the field decoded from ``inputs`` against ``targets`` (default: the inputs).

        ``n_target`` keeps a random subset of the target points per step (an unbiased,
        cheaper estimate of the same loss, which averages over points); ``levels`` is
        :func:`dsm_loss`'s (how the shapes' noise levels are drawn).
        """
        targets = inputs if targets is None else targets
        z = self.encode(inputs)
        if n_target is not None and n_target < targets.shape[1]:
            gen_dev = generator.device if generator is not None else targets.device
            sel = torch.randperm(targets.shape[1], generator=generator, device=gen_dev)[:n_target].to(targets.device)
            targets = targets[:, sel]
        return dsm_loss(lambda x, s: self.decoder(x, z, s), targets, self.sigmas, weighting=weighting,
                        generator=generator, levels=levels)

    @torch.no_grad()
    def sample(self, z: Tensor, n_points: int, sigmas: Sequence[float] | Tensor | None = None,
               steps_per_level: int = 10, step_ratio: float = 1.0, *, generator: torch.Generator | None = None,
               return_trajectory: bool = False, chunk: int | None = None,
               clip: float | None = 2 * PRIOR_BOUND) -> Tensor | LangevinResult:
        """``n_points`` points of each decoded shape ``(B, n_points, 3)`` (eval mode, no grad).

        ``sigmas`` defaults to the training schedule; ``chunk`` samples the points in groups
        (they are independent given ``z``) to bound memory.  ``clip`` keeps the points in
        ``[-clip, clip]^3`` (default twice the prior's box; ``None`` is the official sampler):
        an under-trained field can push points outwards without bound (seen after two
        epochs of training in the ci profile).
        """
        was = self.training
        self.eval()
        try:
            sig = self.sigmas if sigmas is None else sigmas
            x0 = uniform_prior(z.shape[0], int(n_points), device=z.device, generator=generator)

            def score_fn(x: Tensor, s: Tensor) -> Tensor:
                return self.decoder.score(x, z, s)

            if chunk is None or return_trajectory or chunk >= n_points:
                return annealed_langevin(score_fn, x0, sig, steps_per_level, step_ratio, generator=generator,
                                         return_trajectory=return_trajectory, clip=clip)
            parts = [annealed_langevin(score_fn, x0[:, i:i + chunk], sig, steps_per_level, step_ratio,
                                       generator=generator, clip=clip) for i in range(0, n_points, chunk)]
            return torch.cat(parts, dim=1)  # type: ignore[arg-type]
        finally:
            self.train(was)

    def forward(self, inputs: Tensor) -> Tensor:
        """The latent code (so that the encoder can be used like chapter 02's)."""
        return self.encode(inputs)


# ---------------------------------------------------------------------------
# the surface: where the field vanishes
# ---------------------------------------------------------------------------
@torch.no_grad()
def project_to_surface(score_fn: ScoreFn, x: Tensor, sigma: float, steps: int = 10) -> Tensor:
    """Move points onto the zero-gradient set: ``x <- x + sigma^2 s(x, sigma)``, ``steps`` times.

    Introduced in ``lectures/10_gradient_fields.ipynb``.

    At a small ``sigma`` the displacement ``sigma^2 s`` points to the nearest part of the
    surface with about its distance as length (the seed: "for small variance, approximates
    a distance field"), so these noise-free steps converge to where the field vanishes (with
    the analytic field they are exactly mean-shift iterations).
    """
    x = _check_cloud(x, "x", batched=True)
    if steps < 1 or not sigma > 0:
        raise ValueError(f"need steps >= 1 and sigma > 0, got {steps} and {sigma}")
    s_b = torch.full((x.shape[0],), float(sigma), dtype=x.dtype, device=x.device)
    for _ in range(steps):
        x = x + sigma * sigma * score_fn(x, s_b)
    return x


@torch.no_grad()
def field_grid(score_fn: ScoreFn, resolution: int, sigma: float, bound: float = 1.0,
               device: torch.device | str | None = None, chunk: int = 32768) -> Tensor:
    """``sigma^2 |s(x, sigma)|`` on an ``R^3`` node grid (``linspace(-bound, bound, R)``, order x, y, z).

    Introduced in ``lectures/10_gradient_fields.ipynb``.  At small ``sigma`` this is close
    to the *unsigned* distance to the surface, 0 on it.  ``score_fn`` is called with a batch
    of one cloud.
    """
    from course_lib.geometry.mc import grid_points

    pts = grid_points(resolution, bound, device=device).reshape(-1, 3)
    vals = []
    s_b = torch.full((1,), float(sigma), device=pts.device)
    for i in range(0, pts.shape[0], chunk):
        g = score_fn(pts[None, i:i + chunk].to(s_b.dtype), s_b)[0]
        vals.append(sigma * sigma * g.norm(dim=-1))
    return torch.cat(vals).reshape(resolution, resolution, resolution)


def field_mesh(score_fn: ScoreFn, resolution: int = 48, sigma: float = 0.02, bound: float = 1.0,
               level: float | None = None, device: torch.device | str | None = None) -> Any:
    """A mesh of the zero-gradient surface: marching cubes of :func:`field_grid` at a small ``level``.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  The field's magnitude is an
    unsigned distance, so its ``level`` set (default: one grid cell) is a thin *shell*
    around the surface, two-sided where the surface is open (a sheet gives two parallel
    sheets).  Returns a ``trimesh.Trimesh``.
    """
    from course_lib.geometry.mc import marching_cubes

    grid = field_grid(score_fn, resolution, sigma, bound, device)
    lev = (2.0 * bound / (resolution - 1)) if level is None else float(level)
    return marching_cubes(grid, level=lev, bound=bound)


# ---------------------------------------------------------------------------
# the latent GAN
# ---------------------------------------------------------------------------
class LatentGenerator(nn.Module):
    """``N(0, I)`` noise ``(B, noise_dim)`` -> latent codes ``(B, latent_dim)``: FC-ReLU-FC-ReLU-FC.

    Introduced in ``lectures/10_gradient_fields.ipynb`` (the official: 128 -> 256 -> 256 -> 128, no BN).
    """

    def __init__(self, latent_dim: int = 128, noise_dim: int = 128, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.noise_dim = int(noise_dim)
        dims = [noise_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], latent_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, noise: Tensor) -> Tensor:
        return self.net(noise)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` generated codes (no grad)."""
        dev = next(self.parameters()).device
        gen_dev = generator.device if generator is not None else dev
        with torch.no_grad():
            return self(torch.randn(n, self.noise_dim, generator=generator, device=gen_dev).to(dev))


class LatentDiscriminator(nn.Module):
    """Codes ``(B, latent_dim)`` -> critic values ``(B,)``: FC-LeakyReLU(0.2) x2 -> 1, no sigmoid.

    Introduced in ``lectures/10_gradient_fields.ipynb`` (the official: 128 -> 512 -> 512 -> 1).
    """

    def __init__(self, latent_dim: int = 128, hidden: Sequence[int] = (512, 512)) -> None:
        super().__init__()
        dims = [latent_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(dims[-1], 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)[:, 0]


def zero_centered_penalty(disc: nn.Module, real: Tensor) -> Tensor:
    """The official ``zero_center`` penalty: ``(mean_b ||grad_z D(z_b)||)^2`` on *real* codes only.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  A zero-centred (R1-like) penalty,
    not WGAN-GP's ``(||grad|| - 1)^2`` on interpolates; note the mean of the norms is
    squared (R1 averages the squared norms).  Differentiable in ``disc``'s parameters.
    """
    z = real.detach().requires_grad_(True)
    d = disc(z)
    (grad,) = torch.autograd.grad(d.sum(), z, create_graph=True)
    return grad.norm(dim=-1).mean().square()


@dataclass
class GANHistory:
    """Per-epoch means of the critic loss, generator loss and penalty of :func:`train_latent_gan`."""

    d_loss: list[float] = field(default_factory=list)
    g_loss: list[float] = field(default_factory=list)
    penalty: list[float] = field(default_factory=list)


def train_latent_gan(latents: Tensor, *, epochs: int, batch_size: int = 256, noise_dim: int | None = None,
                     g_hidden: Sequence[int] = (256, 256), d_hidden: Sequence[int] = (512, 512),
                     lr: float = 1e-4, betas: tuple[float, float] = (0.5, 0.9), gp_weight: float = 1.0,
                     n_critics: int = 1, seed: int = 0, progress: bool = True,
                     device: torch.device | str | None = None) -> tuple[LatentGenerator, LatentDiscriminator, GANHistory]:
    """Train a WGAN on frozen auto-encoder codes ``latents`` ``(S, L)`` (the official l-GAN recipe).

    Introduced in ``lectures/10_gradient_fields.ipynb``.

    Critic: ``mean D(fake) - mean D(real) + gp_weight * zero_centered_penalty(D, real)``;
    generator: ``-mean D(fake)``; ``n_critics`` critic steps per generator step; Adam with
    ``lr`` and ``betas`` for both (the official: 1e-4, (0.5, 0.9), batch 256).  Returns
    ``(generator, discriminator, history)``; both nets are left in eval mode.
    """
    from tqdm.auto import tqdm

    if not isinstance(latents, Tensor) or latents.dim() != 2 or latents.shape[0] < 2:
        raise ValueError(f"latents must be a (S, L) tensor with S >= 2, got "
                         f"{getattr(latents, 'shape', type(latents).__name__)}")
    if epochs < 0 or n_critics < 1 or batch_size < 1:
        raise ValueError(f"need epochs >= 0, n_critics >= 1, batch_size >= 1; got {epochs}, {n_critics}, {batch_size}")
    dev = torch.device(device) if device is not None else latents.device
    data = latents.detach().to(dev).float()
    s, dim = data.shape
    torch.manual_seed(seed)
    gen = LatentGenerator(dim, noise_dim or dim, g_hidden).to(dev)
    disc = LatentDiscriminator(dim, d_hidden).to(dev)
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=betas)
    g = torch.Generator().manual_seed(seed)
    hist = GANHistory()
    bs = min(batch_size, s)
    for _ in tqdm(range(epochs), desc="latent GAN", disable=not progress):
        order = torch.randperm(s, generator=g).to(dev)
        sums = [0.0, 0.0, 0.0]
        steps = 0
        for i in range(0, s - bs + 1, bs):
            real = data[order[i:i + bs]]
            for _c in range(n_critics):
                noise = torch.randn(bs, gen.noise_dim, generator=g).to(dev)
                fake = gen(noise).detach()
                pen = zero_centered_penalty(disc, real)
                d_loss = disc(fake).mean() - disc(real).mean() + gp_weight * pen
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            noise = torch.randn(bs, gen.noise_dim, generator=g).to(dev)
            g_loss = -disc(gen(noise)).mean()
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            sums[0] += float(d_loss.detach())
            sums[1] += float(g_loss.detach())
            sums[2] += float(pen.detach())
            steps += 1
        hist.d_loss.append(sums[0] / max(steps, 1))
        hist.g_loss.append(sums[1] / max(steps, 1))
        hist.penalty.append(sums[2] / max(steps, 1))
    gen.eval()
    disc.eval()
    return gen, disc, hist
