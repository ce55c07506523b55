"""Implicit-field models: Occupancy Networks, the DeepSDF auto-decoder and an IM-NET decoder.

Introduced in ``lectures/07_implicit_fields.ipynb``.

All three decoders share one interface, ``decoder(points (B, T, 3), z (B, C)) -> (B, T)``: a
*function of space* conditioned on a shape code, the volumetric version of the
"space-mapping trick".  Each decoder says what its output is (attribute ``kind``) and so
where its surface lies (``level``) and which side is inside (``inside``):

==================  ===================================  ==========  ==============
decoder             output (``kind``)                    ``level``   ``inside``
==================  ===================================  ==========  ==============
OccNetDecoder       occupancy logit (``"logit"``)        0           above
IMNetDecoder        occupancy value in ~[0, 1]           0.5         above
DeepSDFDecoder      signed distance (``"sdf"``), tanh    0           below
==================  ===================================  ==========  ==============

* **Occupancy Network** (Mescheder et al., CVPR 2019; ``im2mesh/onet/models/decoder.py:
  DecoderCBatchNorm``): the query point is lifted by a linear layer, then ResNet blocks whose
  batch norms are *conditional* (scale and shift predicted from the code ``c``), a last
  conditional batch norm, ReLU and a linear layer to one logit.  Trained with binary cross
  entropy on occupancy samples; the code comes from an encoder (here chapter 02's PointNet).
* **DeepSDF** (Park et al., CVPR 2019; ``networks/deep_sdf_decoder.py``): an MLP on
  ``[z, xyz]`` with weight norm, ReLU and dropout, the input concatenated again at a middle
  layer (the layer before is narrower so the width stays constant), a final ``tanh``.  There is
  no encoder: each training shape owns a code in an embedding table (an *auto-decoder*),
  optimised with the network under a norm penalty; a new shape's code is found at test time by
  optimising it alone (:func:`reconstruct_latent`).  Loss: L1 between SDFs clamped to
  ``[-delta, delta]``, ``delta = 0.1``.
* **IM-NET** (Chen and Zhang, CVPR 2019; ``IM-NET-pytorch/modelAE.py``): a plain MLP on
  ``[z, xyz]`` with leaky ReLUs (slope 0.02) and a "leaky clip" output
  ``max(min(h, 0.01 h + 0.99), 0.01 h)``, trained with the squared error on 0/1 occupancy.

Sizes here are small (the papers use 256-512 wide layers) so that training takes minutes on a
laptop; the widths are arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = [
    "CBatchNorm", "CResnetBlock", "OccNetDecoder", "IMNetDecoder", "DeepSDFDecoder",
    "OccupancyNetwork", "AutoDecoder", "occupancy_loss", "imnet_loss", "clamped_l1", "latent_penalty",
    "deepsdf_loss", "reconstruct_latent", "interpolate_latents", "field_of",
]


# ---------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------
def _check_query(points: Any, z: Any, c_dim: int, who: str) -> tuple[Tensor, Tensor]:
    if not isinstance(points, Tensor) or not isinstance(z, Tensor):
        raise TypeError(f"{who} expects tensors points (B, T, 3) and z (B, {c_dim})")
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"{who}: points must have shape (B, T, 3), got {tuple(points.shape)}"
                         + (" (add a batch dimension with points[None])" if points.dim() == 2 else ""))
    if z.dim() != 2 or z.shape[-1] != c_dim:
        raise ValueError(f"{who}: z must have shape (B, {c_dim}), got {tuple(z.shape)}")
    if z.shape[0] != points.shape[0]:
        raise ValueError(f"{who}: {points.shape[0]} point sets but {z.shape[0]} codes")
    if points.shape[1] == 0:
        raise ValueError(f"{who}: no query points (T = 0)")
    if not points.is_floating_point():
        raise TypeError(f"{who}: points must be floating point, got {points.dtype}")
    if points.device != z.device:
        raise ValueError(f"{who}: points on {points.device} but z on {z.device}")
    return points, z


# ---------------------------------------------------------------------------
# Occupancy Networks
# ---------------------------------------------------------------------------
class CBatchNorm(nn.Module):
    """Conditional batch norm over the last dimension of ``x (B, T, F)``: ``gamma(c) * BN(x) + beta(c)``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  The statistics are taken over all
    ``B * T`` points (as ``BatchNorm1d`` on OccNet's ``(B, F, T)`` layout); the affine part
    comes from the code ``c (B, C)`` by linear maps, initialised to the identity
    (``gamma = 1, beta = 0``) as in OccNet's ``CBatchNorm1d``.
    """

    def __init__(self, c_dim: int, f_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(f_dim, affine=False)
        self.gamma = nn.Linear(c_dim, f_dim)
        self.beta = nn.Linear(c_dim, f_dim)
        nn.init.zeros_(self.gamma.weight)
        nn.init.ones_(self.gamma.bias)
        nn.init.zeros_(self.beta.weight)
        nn.init.zeros_(self.beta.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:  # noqa: D102
        b, t, f = x.shape
        xn = self.bn(x.reshape(b * t, f)).reshape(b, t, f)
        return self.gamma(c)[:, None] * xn + self.beta(c)[:, None]


class CResnetBlock(nn.Module):
    """OccNet's conditional ResNet block: ``x + fc1(relu(cbn1(fc0(relu(cbn0(x))))))``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  The last layer's weight starts at zero
    (as in OccNet's ``CResnetBlockConv1d``; we zero its bias too), so every block starts as the
    identity.
    """

    def __init__(self, c_dim: int, size: int) -> None:
        super().__init__()
        self.bn0 = CBatchNorm(c_dim, size)
        self.bn1 = CBatchNorm(c_dim, size)
        self.fc0 = nn.Linear(size, size)
        self.fc1 = nn.Linear(size, size)
        nn.init.zeros_(self.fc1.weight)
        nn.init.zeros_(self.fc1.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:  # noqa: D102
        h = self.fc0(F.relu(self.bn0(x, c)))
        h = self.fc1(F.relu(self.bn1(h, c)))
        return x + h


class OccNetDecoder(nn.Module):
    """Occupancy Network decoder (``DecoderCBatchNorm``): ``(points (B, T, 3), c (B, C)) -> logits (B, T)``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  OccNet: ``hidden=256``, 5 blocks.
    """

    kind, level, inside = "logit", 0.0, "above"

    def __init__(self, c_dim: int = 128, hidden: int = 128, n_blocks: int = 3) -> None:
        super().__init__()
        if c_dim < 1 or hidden < 1 or n_blocks < 1:
            raise ValueError("OccNetDecoder needs c_dim, hidden and n_blocks >= 1")
        self.c_dim = int(c_dim)
        self.fc_p = nn.Linear(3, hidden)
        self.blocks = nn.ModuleList(CResnetBlock(c_dim, hidden) for _ in range(n_blocks))
        self.bn = CBatchNorm(c_dim, hidden)
        self.fc_out = nn.Linear(hidden, 1)

    def forward(self, points: Tensor, z: Tensor) -> Tensor:  # noqa: D102
        points, z = _check_query(points, z, self.c_dim, "OccNetDecoder")
        x = self.fc_p(points)
        for block in self.blocks:
            x = block(x, z)
        return self.fc_out(F.relu(self.bn(x, z))).squeeze(-1)


class IMNetDecoder(nn.Module):
    """IM-NET decoder: an MLP on ``[z, xyz]``, leaky ReLU 0.02, "leaky clip" output near ``[0, 1]``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  IM-NET-pytorch: widths
    ``(1024, 1024, 1024, 512, 256, 128)``; the surface is the 0.5 level; loss :func:`imnet_loss`.
    """

    kind, level, inside = "value", 0.5, "above"

    def __init__(self, c_dim: int = 128, widths: Sequence[int] = (256, 256, 128, 64)) -> None:
        super().__init__()
        if c_dim < 1 or not widths:
            raise ValueError("IMNetDecoder needs c_dim >= 1 and at least one width")
        self.c_dim = int(c_dim)
        dims = [self.c_dim + 3, *[int(w) for w in widths], 1]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, points: Tensor, z: Tensor) -> Tensor:  # noqa: D102
        points, z = _check_query(points, z, self.c_dim, "IMNetDecoder")
        h = torch.cat([z[:, None].expand(-1, points.shape[1], -1), points], dim=-1)
        for layer in self.layers[:-1]:
            h = F.leaky_relu(layer(h), 0.02)
        h = self.layers[-1](h).squeeze(-1)
        return torch.maximum(torch.minimum(h, 0.01 * h + 0.99), 0.01 * h)


class DeepSDFDecoder(nn.Module):
    """DeepSDF decoder: weight-normalised ReLU MLP on ``[z, xyz]``, the input re-injected at ``latent_in``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.

    ``n_layers`` hidden layers of width ``hidden``; the layer before each layer of
    ``latent_in`` outputs ``hidden - (C + 3)`` so that the concatenation with ``[z, xyz]`` is
    ``hidden`` wide (DeepSDF: 8 layers of 512, ``latent_in=(4,)``, dropout 0.2, weight norm,
    final ``tanh``).  Dropout is off in ``eval()`` mode.
    """

    kind, level, inside = "sdf", 0.0, "below"

    def __init__(self, c_dim: int = 64, hidden: int = 128, n_layers: int = 6, latent_in: Sequence[int] = (3,),
                 dropout: float = 0.0, use_weight_norm: bool = True, tanh: bool = True) -> None:
        super().__init__()
        self.c_dim = int(c_dim)
        d_in = self.c_dim + 3
        latent_in = tuple(int(i) for i in latent_in)
        if n_layers < 2 or any(not 0 < i < n_layers for i in latent_in):
            raise ValueError(f"DeepSDFDecoder needs n_layers >= 2 and latent_in in 1..n_layers-1, got "
                             f"{n_layers}, {latent_in}")
        if any(hidden <= d_in for _ in latent_in):
            raise ValueError(f"hidden ({hidden}) must exceed the input width c_dim + 3 ({d_in}) to re-inject it")
        self.latent_in = latent_in
        layers = []
        for i in range(n_layers):
            a = d_in if i == 0 else hidden
            b = hidden - d_in if (i + 1) in latent_in else hidden
            lin = nn.Linear(a, b)
            layers.append(weight_norm(lin) if use_weight_norm else lin)
        self.layers = nn.ModuleList(layers)
        self.out = nn.Linear(hidden, 1)
        # start with outputs near 0, inside the clamp band: the clamped L1 has no gradient where
        # |prediction| > delta, so a network that starts with every output beyond delta never learns
        with torch.no_grad():
            self.out.weight.mul_(0.01)
            self.out.bias.zero_()
        self.dropout = float(dropout)
        self.tanh = bool(tanh)

    def forward(self, points: Tensor, z: Tensor) -> Tensor:  # noqa: D102
        points, z = _check_query(points, z, self.c_dim, "DeepSDFDecoder")
        inp = torch.cat([z[:, None].expand(-1, points.shape[1], -1), points], dim=-1)
        h = inp
        for i, layer in enumerate(self.layers):
            if i in self.latent_in:
                h = torch.cat([h, inp], dim=-1)
            h = F.relu(layer(h))
            if self.dropout:
                h = F.dropout(h, self.dropout, self.training)
        h = self.out(h).squeeze(-1)
        return torch.tanh(h) if self.tanh else h


# ---------------------------------------------------------------------------
# whole models
# ---------------------------------------------------------------------------
class OccupancyNetwork(nn.Module):
    """Encoder-decoder implicit model: ``forward(inputs, query (B, T, 3)) -> decoder values (B, T)``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  ``encoder`` is any module returning an
    :class:`~course_lib.models.encoders.EncoderOutput` (``.global_feature (B, C)``), e.g. a
    PointNet on a partial or sparse point cloud (OccNet's point-cloud completion) or a ResNet
    on images; ``decoder`` one of this module's decoders with ``c_dim = C``.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    @property
    def kind(self) -> str:  # noqa: D102
        return self.decoder.kind

    @property
    def level(self) -> float:  # noqa: D102
        return float(self.decoder.level)

    @property
    def inside(self) -> str:  # noqa: D102
        return self.decoder.inside

    def encode(self, inputs: Tensor) -> Tensor:
        """The shape codes ``(B, C)``."""
        out = self.encoder(inputs)
        return out.global_feature if hasattr(out, "global_feature") else out

    def forward(self, inputs: Tensor, query: Tensor) -> Tensor:  # noqa: D102
        return self.decoder(query, self.encode(inputs))

    def loss(self, pred: Tensor, occupancy: Tensor) -> Tensor:
        """The decoder's training loss on occupancy targets (BCE for logits, squared error for IM-NET)."""
        return occupancy_loss(pred, occupancy) if self.kind == "logit" else imnet_loss(pred, occupancy)


class AutoDecoder(nn.Module):
    """DeepSDF auto-decoder: one learnt code per training shape (an ``nn.Embedding``) and a decoder.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  ``forward(index (B,), points (B, T, 3))``.
    Codes start at ``N(0, init_std^2)`` (DeepSDF: ``1 / sqrt(C)``) and are kept within
    ``code_bound`` in norm by the embedding's ``max_norm`` (DeepSDF's ``CodeBound = 1``).
    """

    def __init__(self, n_shapes: int, decoder: nn.Module, init_std: float | None = None,
                 code_bound: float | None = 1.0) -> None:
        super().__init__()
        if isinstance(n_shapes, bool) or not isinstance(n_shapes, int) or n_shapes < 1:
            raise ValueError(f"n_shapes must be a positive int, got {n_shapes!r}")
        self.decoder = decoder
        c = int(decoder.c_dim)
        self.codes = nn.Embedding(n_shapes, c, max_norm=code_bound)
        nn.init.normal_(self.codes.weight, 0.0, init_std if init_std is not None else c ** -0.5)

    kind, level, inside = "sdf", 0.0, "below"

    def forward(self, index: Tensor, points: Tensor) -> Tensor:  # noqa: D102
        if not isinstance(index, Tensor) or index.dtype not in (torch.int64, torch.int32) or index.dim() != 1:
            raise TypeError("index must be a 1-D integer tensor of shape indices (B,)")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.codes.num_embeddings):
            raise ValueError(f"shape index out of range [0, {self.codes.num_embeddings})")
        return self.decoder(points, self.codes(index))


def field_of(model: nn.Module, z: Tensor) -> Callable[[Tensor], Tensor]:
    """The field of one shape as a callable ``points (N, 3) -> (N,)`` (for extraction and normals).

    Introduced in ``lectures/07_implicit_fields.ipynb``.  ``model`` is a decoder or a model with a
    ``.decoder``; ``z`` one code ``(C,)``.  Put the model in ``eval()`` mode first (batch norm and
    dropout).  The callable's ``__self__`` is the model so extraction finds its device.
    """
    dec = getattr(model, "decoder", model)
    if not isinstance(z, Tensor) or z.dim() != 1:
        raise ValueError(f"z must be one code of shape (C,), got {getattr(z, 'shape', type(z))}")

    class _Field:
        __self__ = dec

        def __call__(self, points: Tensor) -> Tensor:
            return dec(points[None], z.to(points.device)[None])[0]

    return _Field()


# ---------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------
def _check_pair(pred: Any, target: Any, who: str) -> None:
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"{who} expects tensors")
    if pred.shape != target.shape:
        raise ValueError(f"{who}: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if pred.numel() == 0:
        raise ValueError(f"{who}: empty tensors")


def occupancy_loss(logits: Tensor, occupancy: Tensor, reduction: str = "mean") -> Tensor:
    """Binary cross entropy of occupancy logits ``(B, T)`` against 0/1 (or bool) targets.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  ``reduction="mean"`` averages every
    point; ``"occnet"`` sums over a shape's points and averages over shapes (OccNet's
    ``compute_loss``; its gradient is ``T`` times larger, hence its learning rate 1e-4).
    """
    _check_pair(logits, occupancy, "occupancy_loss")
    bce = F.binary_cross_entropy_with_logits(logits, occupancy.to(logits.dtype), reduction="none")
    if reduction == "mean":
        return bce.mean()
    if reduction == "occnet":
        return bce.reshape(bce.shape[0], -1).sum(-1).mean()
    raise ValueError(f"reduction must be 'mean' or 'occnet', got {reduction!r}")


def imnet_loss(values: Tensor, occupancy: Tensor) -> Tensor:
    """IM-NET's loss: mean squared error between predicted values and 0/1 occupancy.

    Introduced in ``lectures/07_implicit_fields.ipynb``.
    """
    _check_pair(values, occupancy, "imnet_loss")
    return ((values - occupancy.to(values.dtype)) ** 2).mean()


def clamped_l1(pred: Tensor, sdf: Tensor, delta: float = 0.1) -> Tensor:
    """DeepSDF's loss: ``mean |clamp(pred, -delta, delta) - clamp(sdf, -delta, delta)|``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  Clamping spends the network's capacity
    near the surface (``|sdf| < delta``); beyond it only the sign matters.
    """
    _check_pair(pred, sdf, "clamped_l1")
    if not delta > 0:
        raise ValueError(f"delta must be positive, got {delta}")
    return (pred.clamp(-delta, delta) - sdf.clamp(-delta, delta)).abs().mean()


def latent_penalty(z: Tensor) -> Tensor:
    """Mean code norm ``mean_i ||z_i||`` (DeepSDF's ``code_reg_lambda`` term, before its weight).

    Introduced in ``lectures/07_implicit_fields.ipynb``.  DeepSDF's training code sums
    ``||z||`` over samples and divides by their number: per sample it is this mean.  (The
    paper writes the Gaussian prior's ``||z||^2 / sigma^2``; test-time reconstruction in its
    code uses ``mean(z^2)``.)
    """
    if not isinstance(z, Tensor) or z.dim() != 2:
        raise ValueError(f"z must be codes of shape (B, C), got {getattr(z, 'shape', type(z))}")
    return z.norm(dim=-1).mean()


def deepsdf_loss(model: AutoDecoder, batch: dict[str, Tensor], *, delta: float = 0.1, code_reg: float = 1e-4,
                 warmup: float = 1.0) -> dict[str, Tensor]:
    """Clamped L1 plus ``code_reg * warmup * mean ||z||`` for a batch ``{"index", "sdf_points", "sdf"}``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  ``warmup`` in [0, 1] is DeepSDF's
    ``min(1, epoch / 100)``.  Returns ``{"loss", "l1", "reg"}`` (``loss`` is what is minimised).
    """
    idx = batch["index"]
    pred = model(idx, batch["sdf_points"])
    l1 = clamped_l1(pred, batch["sdf"], delta)
    reg = latent_penalty(model.codes(idx))
    return {"loss": l1 + code_reg * float(warmup) * reg, "l1": l1.detach(), "reg": reg.detach()}


def reconstruct_latent(decoder: nn.Module, points: Tensor, sdf: Tensor, *, iters: int = 800, lr: float = 5e-3,
                       reg: float = 1e-4, delta: float = 0.1, init_std: float = 0.01, n_samples: int | None = 8000,
                       seed: int = 0, progress: bool = False) -> tuple[Tensor, list[float]]:
    """DeepSDF test-time reconstruction: optimise one code ``z`` so that the frozen decoder fits ``sdf``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.

    As DeepSDF's ``reconstruct.py``: ``z ~ N(0, init_std^2)``, Adam with learning rate ``lr``
    divided by 10 at half the iterations, loss = clamped L1 on ``n_samples`` random samples per
    step (all when None) ``+ reg * mean(z^2)``.  The decoder's parameters are not changed
    (nor their gradients).  Returns ``(z (C,), losses per iteration)``.
    """
    if not isinstance(points, Tensor) or points.dim() != 2 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {getattr(points, 'shape', type(points))}")
    if not isinstance(sdf, Tensor) or sdf.shape != points.shape[:1]:
        raise ValueError(f"sdf must have shape ({points.shape[0]},), got {getattr(sdf, 'shape', type(sdf))}")
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be a positive int, got {iters!r}")
    dev = next(decoder.parameters()).device
    points, sdf = points.to(dev), sdf.to(dev)
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    z = (torch.randn(int(decoder.c_dim), generator=g) * init_std).to(dev).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    was_training = decoder.training
    decoder.eval()
    req = [p.requires_grad for p in decoder.parameters()]
    for p in decoder.parameters():
        p.requires_grad_(False)
    losses: list[float] = []
    try:
        it = range(iters)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="latent optimisation", leave=False)
        for i in it:
            if i == iters // 2:
                for group in opt.param_groups:
                    group["lr"] = lr / 10
            if n_samples is not None and n_samples < points.shape[0]:
                sel = torch.randint(0, points.shape[0], (n_samples,), generator=g).to(dev)
                p, s = points[sel], sdf[sel]
            else:
                p, s = points, sdf
            pred = decoder(p[None], z[None])[0]
            loss = clamped_l1(pred, s, delta) + reg * (z ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    finally:
        for p, r in zip(decoder.parameters(), req):
            p.requires_grad_(r)
        decoder.train(was_training)
    return z.detach(), losses


def interpolate_latents(z0: Tensor, z1: Tensor, steps: int = 5) -> Tensor:
    """Codes on the segment from ``z0`` to ``z1``: ``(steps, C)`` (both ends included).

    Introduced in ``lectures/07_implicit_fields.ipynb``.
    """
    if z0.shape != z1.shape or z0.dim() != 1:
        raise ValueError(f"z0 and z1 must be codes of one shape (C,), got {tuple(z0.shape)}, {tuple(z1.shape)}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    t = torch.linspace(0, 1, steps, device=z0.device, dtype=z0.dtype)[:, None]
    return (1 - t) * z0 + t * z1
