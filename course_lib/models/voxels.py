"""Voxel models: VoxNet, a 3D convolutional encoder / transposed-convolution decoder, image -> voxels.

Introduced in ``lectures/03_voxels.ipynb``.

An occupancy grid ``(B, R, R, R)`` is an image with one more axis, so 2D convolution,
pooling and transposed convolution carry over unchanged to 3D (``nn.Conv3d``,
``nn.MaxPool3d``, ``nn.ConvTranspose3d``). The price is the third power of the resolution:
every activation has ``R^3`` cells per channel. The models here are:

* :class:`VoxNet` -- the classifier of Maturana and Scherer (IROS 2015): Conv3d(32, k5,
  stride 2) -> Conv3d(32, k3) -> max-pool 2 -> FC 128 -> FC classes, leaky ReLU (slope 0.1)
  after the convolutions, ReLU after FC 128, dropout after each stage, inputs in {-1, 1} (the
  official code); the paper uses 32^3 grids, here any resolution >= 11 works;
* :class:`VoxelEncoder` -- strided Conv3d stages ``R^3 -> 4^3`` then a linear layer to a latent code;
* :class:`VoxelDecoder` -- a linear layer to a small ``min_resolution^3`` grid, then
  ConvTranspose3d(k=4, s=2, p=1) stages, each doubling the resolution, down to occupancy logits;
* :class:`VoxelAutoEncoder` -- the two together;
* :class:`SingleViewVoxels` -- the chapter 02 :class:`~course_lib.models.ResNetEncoder` on one
  image followed by a :class:`VoxelDecoder` (the single-view 3D-R2N2 of Choy et al., ECCV 2016,
  without its recurrence);
* :class:`MultiViewVoxelGRU` -- 3D-R2N2's multi-view model: its 3D convolutional GRU
  (:class:`ConvGRU3d`) on a ``4^3`` hidden grid fuses the codes of several views, then the
  decoder's upsampling path turns the final hidden grid into logits.

All ``forward`` methods return **logits** (apply ``torch.sigmoid`` for probabilities); the
loss is :func:`voxel_bce`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .encoders import ResNetEncoder, _check_latent

__all__ = [
    "VoxNet",
    "VoxelEncoder",
    "VoxelDecoder",
    "VoxelAutoEncoder",
    "SingleViewVoxels",
    "MultiViewVoxelGRU",
    "ConvGRU3d",
    "voxel_single_view",
    "voxel_bce",
    "balanced_pos_weight",
    "weighted_optimum",
    "decoder_channels",
]


# ---------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------
def _check_power_of_two(resolution: Any, minimum: int, who: str) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise TypeError(f"{who}: resolution must be an int, got {type(resolution).__name__}")
    if minimum < 1 or minimum & (minimum - 1):
        raise ValueError(f"{who}: min_resolution must be a power of two >= 1, got {minimum}")
    if resolution < minimum or resolution & (resolution - 1):
        raise ValueError(f"{who}: resolution must be a power of two >= {minimum} "
                         f"(each stage doubles or halves it), got {resolution}")
    return int(resolution)


def _check_grid(vox: Any, resolution: int | None, who: str, dtype: torch.dtype | None = None) -> Tensor:
    """``(B, R, R, R)`` (or ``(B, 1, R, R, R)``) bool/float -> float ``(B, 1, R, R, R)``."""
    if not isinstance(vox, Tensor):
        raise TypeError(f"{who} expects a voxel grid torch.Tensor (B, R, R, R), got {type(vox).__name__}")
    if vox.dim() == 5 and vox.shape[1] == 1:
        vox = vox[:, 0]
    if vox.dim() != 4 or not (vox.shape[1] == vox.shape[2] == vox.shape[3]):
        hint = " (add a batch dimension with vox[None])" if vox.dim() == 3 else ""
        raise ValueError(f"{who} expects cubic grids of shape (B, R, R, R), got {tuple(vox.shape)}{hint}")
    if resolution is not None and vox.shape[1] != resolution:
        raise ValueError(f"{who} was built for resolution {resolution}, got grids of {vox.shape[1]}^3")
    if vox.shape[0] == 0:
        raise ValueError(f"{who} got an empty batch")
    if vox.dtype == torch.bool or not vox.is_floating_point():
        vox = vox.to(dtype or torch.get_default_dtype())
    return vox[:, None]


# ---------------------------------------------------------------------------
# VoxNet
# ---------------------------------------------------------------------------
class VoxNet(nn.Module):
    """The VoxNet classifier [Maturana2015] on occupancy grids ``(B, R, R, R)`` -> logits ``(B, n_classes)``.

    Introduced in ``lectures/03_voxels.ipynb``.

    Layout of the official ``shapenet10`` configuration (``dimatura/voxnet``): Conv3d(``filters``, k5,
    stride 2) -> dropout 0.2 -> Conv3d(``filters``, k3) -> MaxPool3d(2) -> dropout 0.3 -> FC ``hidden``
    -> dropout 0.4 -> FC ``n_classes``; leaky ReLU of slope 0.1 after each convolution and a plain
    ReLU after the hidden FC layer (the config leaves ``fc1`` at Lasagne's default nonlinearity;
    ``fc_activation="leaky"`` uses the leaky one there too). The official loader feeds ``2 v - 1``, so
    occupancies ``{0, 1}`` enter as ``{-1, 1}``: empty space is not zero, and a zero-padded border differs
    from it; ``centered_input=False`` feeds ``{0, 1}``. Convolutions are unpadded as in the paper
    (32^3 -> 14^3 -> 12^3 -> 6^3), so the first FC layer has ``filters * s^3`` inputs with
    ``s = ((R - 5) // 2 + 1 - 2) // 2``; any resolution ``R >= 11`` is accepted.
    """

    def __init__(self, n_classes: int, resolution: int = 32, filters: int = 32, hidden: int = 128,
                 dropout: Sequence[float] = (0.2, 0.3, 0.4), negative_slope: float = 0.1, *,
                 fc_activation: str = "relu", centered_input: bool = True) -> None:
        super().__init__()
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"VoxNet: n_classes must be an int >= 2, got {n_classes!r}")
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 11:
            raise ValueError(f"VoxNet: resolution must be an int >= 11 (k5 stride 2, k3 and a 2x pool "
                             f"must leave at least one cell), got {resolution!r}")
        if len(dropout) != 3 or not all(0.0 <= p < 1.0 for p in dropout):
            raise ValueError(f"VoxNet: dropout must be three probabilities in [0, 1), got {tuple(dropout)}")
        if fc_activation not in ("relu", "leaky"):
            raise ValueError(f"VoxNet: fc_activation must be 'relu' (official) or 'leaky', got {fc_activation!r}")
        self.n_classes, self.resolution = int(n_classes), int(resolution)
        self.centered_input = bool(centered_input)
        s1 = (resolution - 5) // 2 + 1
        s2 = s1 - 2
        self.feature_size = s2 // 2
        act = nn.LeakyReLU(negative_slope)
        self.features = nn.Sequential(
            nn.Conv3d(1, filters, 5, stride=2), act, nn.Dropout(dropout[0]),
            nn.Conv3d(filters, filters, 3), act,
            nn.MaxPool3d(2), nn.Dropout(dropout[1]),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(filters * self.feature_size**3, hidden),
            nn.ReLU() if fc_activation == "relu" else nn.LeakyReLU(negative_slope), nn.Dropout(dropout[2]),
            nn.Linear(hidden, n_classes),
        )

    def extra_repr(self) -> str:
        return f"centered_input={self.centered_input}"

    def forward(self, vox: Tensor) -> Tensor:
        """Logits ``(B, n_classes)`` of grids ``(B, R, R, R)`` (bool or float occupancy in [0, 1])."""
        x = _check_grid(vox, self.resolution, "VoxNet", self.head[1].weight.dtype)
        if self.centered_input:
            x = 2.0 * x - 1.0
        return self.head(self.features(x))


# ---------------------------------------------------------------------------
# encoder and decoder
# ---------------------------------------------------------------------------
def decoder_channels(resolution: int, base_channels: int = 32, min_resolution: int = 4,
                     max_channels: int = 256) -> list[int]:
    """Channels of the :class:`VoxelDecoder` grids, from the ``min_resolution^3`` seed to ``R^3``.

    Introduced in ``lectures/03_voxels.ipynb``.  The grid at ``min_resolution * 2**s`` has
    ``min(max_channels, base_channels * 2**(n - s))`` channels (``n`` upsampling stages):
    channels halve while the resolution doubles, so the last grid has ``base_channels``.
    """
    R = _check_power_of_two(resolution, min_resolution, "decoder_channels")
    n = int(round(math.log2(R // min_resolution)))
    return [min(int(max_channels), int(base_channels) * 2 ** (n - s)) for s in range(n + 1)]


class VoxelDecoder(nn.Module):
    """Latent code ``(B, latent_dim)`` -> occupancy logits ``(B, R, R, R)``.

    Introduced in ``lectures/03_voxels.ipynb``.

    A linear layer (+ ReLU) makes a ``C0 x m^3`` seed grid (``m = min_resolution``); each of
    the ``log2(R / m)`` stages is ConvTranspose3d(k=4, stride=2, padding=1) -- which exactly
    doubles the resolution, ``(m - 1) * 2 - 2 + 4 = 2m`` -- followed by BatchNorm3d and ReLU,
    with the channels halving (:func:`decoder_channels`, capped at ``max_channels``); a last
    Conv3d (kernel ``head_kernel``, 1 by default: a per-voxel linear read-out, cheap at full
    resolution) maps the ``base_channels`` features to one logit per voxel.

    ``resolution`` must be a power of two ``>= min_resolution`` (a ValueError says so otherwise).
    :meth:`decode_grid` runs the upsampling path from a seed grid (used by the 3D-GRU).
    """

    def __init__(self, latent_dim: int, resolution: int, base_channels: int = 32, min_resolution: int = 4,
                 *, max_channels: int = 256, head_kernel: int = 1) -> None:
        super().__init__()
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"VoxelDecoder: latent_dim must be an int >= 1, got {latent_dim!r}")
        if head_kernel < 1 or head_kernel % 2 == 0:
            raise ValueError(f"VoxelDecoder: head_kernel must be odd and >= 1, got {head_kernel}")
        if base_channels < 1 or max_channels < 1:
            raise ValueError(f"VoxelDecoder: base_channels and max_channels must be >= 1, "
                             f"got {base_channels}, {max_channels}")
        self.resolution = _check_power_of_two(resolution, min_resolution, "VoxelDecoder")
        self.latent_dim, self.min_resolution = int(latent_dim), int(min_resolution)
        self.channels = decoder_channels(resolution, base_channels, min_resolution, max_channels)
        self.seed_channels = self.channels[0]
        m = self.min_resolution
        self.seed = nn.Sequential(nn.Linear(self.latent_dim, self.seed_channels * m**3), nn.ReLU())
        stages: list[nn.Module] = []
        for cin, cout in zip(self.channels[:-1], self.channels[1:]):
            stages.append(nn.Sequential(nn.ConvTranspose3d(cin, cout, 4, stride=2, padding=1, bias=False),
                                        nn.BatchNorm3d(cout), nn.ReLU()))
        self.up = nn.ModuleList(stages)
        self.out = nn.Conv3d(self.channels[-1], 1, head_kernel, padding=head_kernel // 2)

    def set_prior(self, probability: float) -> VoxelDecoder:
        """Start every voxel at ``probability``: the read-out's bias becomes ``log(p / (1 - p))``.

        Introduced in ``lectures/03_voxels.ipynb``.  The prior initialisation of RetinaNet
        [Lin2017]: with the default bias 0 every voxel starts at 0.5, and Adam, whose steps are
        about ``lr`` each, needs hundreds of steps just to move the bias of a mostly empty grid to
        a few units below 0; starting from the occupied fraction removes that phase. Returns ``self``.
        """
        p = float(probability)
        if not 0.0 < p < 1.0:
            raise ValueError(f"probability must be in (0, 1), got {p}")
        with torch.no_grad():
            self.out.bias.fill_(math.log(p / (1.0 - p)))
        return self

    @property
    def n_stages(self) -> int:
        """Number of upsampling (resolution-doubling) stages."""
        return len(self.up)

    def decode_grid(self, grid: Tensor) -> Tensor:
        """Seed grid ``(B, seed_channels, m, m, m)`` -> logits ``(B, R, R, R)`` (the upsampling path)."""
        m = self.min_resolution
        if not isinstance(grid, Tensor) or grid.dim() != 5 or tuple(grid.shape[1:]) != (self.seed_channels, m, m, m):
            raise ValueError(f"VoxelDecoder.decode_grid expects (B, {self.seed_channels}, {m}, {m}, {m}), "
                             f"got {tuple(getattr(grid, 'shape', ()))}")
        x = grid
        for stage in self.up:
            x = stage(x)
        return self.out(x)[:, 0]

    def forward(self, z: Tensor) -> Tensor:
        """Decode ``z`` ``(B, latent_dim)`` into occupancy logits ``(B, R, R, R)``."""
        _check_latent(z, self.latent_dim, "VoxelDecoder")
        m = self.min_resolution
        return self.decode_grid(self.seed(z).view(z.shape[0], self.seed_channels, m, m, m))


class VoxelEncoder(nn.Module):
    """Occupancy grids ``(B, R, R, R)`` -> latent codes ``(B, latent_dim)``.

    Introduced in ``lectures/03_voxels.ipynb``.

    ``log2(R / min_resolution)`` stages of Conv3d(k=4, stride=2, padding=1) (which exactly
    halves the resolution) + BatchNorm3d + ReLU, the channels doubling from ``base_channels``
    (capped at ``max_channels``), then a linear layer from the flattened ``min_resolution^3``
    grid to the code. ``resolution`` must be a power of two ``>= min_resolution``.
    """

    def __init__(self, resolution: int, latent_dim: int, base_channels: int = 16, *, min_resolution: int = 4,
                 max_channels: int = 256) -> None:
        super().__init__()
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"VoxelEncoder: latent_dim must be an int >= 1, got {latent_dim!r}")
        if base_channels < 1 or max_channels < 1:
            raise ValueError(f"VoxelEncoder: base_channels and max_channels must be >= 1, "
                             f"got {base_channels}, {max_channels}")
        self.resolution = _check_power_of_two(resolution, min_resolution, "VoxelEncoder")
        self.latent_dim, self.min_resolution = int(latent_dim), int(min_resolution)
        n = int(round(math.log2(self.resolution // self.min_resolution)))
        stages: list[nn.Module] = []
        cin = 1
        self.channels = [1]
        for s in range(n):
            cout = min(int(max_channels), int(base_channels) * 2**s)
            stages.append(nn.Sequential(nn.Conv3d(cin, cout, 4, stride=2, padding=1, bias=False),
                                        nn.BatchNorm3d(cout), nn.ReLU()))
            self.channels.append(cout)
            cin = cout
        self.down = nn.Sequential(*stages)
        self.fc = nn.Linear(cin * self.min_resolution**3, self.latent_dim)

    def forward(self, vox: Tensor) -> Tensor:
        """Encode grids ``(B, R, R, R)`` (bool or float occupancy) into ``(B, latent_dim)``."""
        x = _check_grid(vox, self.resolution, "VoxelEncoder", self.fc.weight.dtype)
        return self.fc(self.down(x).flatten(1))


class VoxelAutoEncoder(nn.Module):
    """:class:`VoxelEncoder` -> :class:`VoxelDecoder`: grids ``(B, R, R, R)`` -> logits ``(B, R, R, R)``.

    Introduced in ``lectures/03_voxels.ipynb``.
    """

    def __init__(self, resolution: int, latent_dim: int = 128, encoder_channels: int = 16,
                 decoder_channels: int = 32, *, max_channels: int = 256) -> None:
        super().__init__()
        self.resolution = int(resolution)
        self.encoder = VoxelEncoder(resolution, latent_dim, encoder_channels, max_channels=max_channels)
        self.decoder = VoxelDecoder(latent_dim, resolution, decoder_channels, max_channels=max_channels)

    def encode(self, vox: Tensor) -> Tensor:
        """The latent code ``(B, latent_dim)``."""
        return self.encoder(vox)

    def forward(self, vox: Tensor) -> Tensor:
        """Reconstruction logits ``(B, R, R, R)``."""
        return self.decoder(self.encoder(vox))


# ---------------------------------------------------------------------------
# image -> voxels
# ---------------------------------------------------------------------------
def _check_images(images: Any, channels: int, who: str) -> Tensor:
    if not isinstance(images, Tensor) or not images.is_floating_point():
        raise TypeError(f"{who} expects floating-point images torch.Tensor (B, {channels}, H, W), "
                        f"got {type(images).__name__}" + (f" of {images.dtype}" if isinstance(images, Tensor) else ""))
    return images


class SingleViewVoxels(nn.Module):
    """One image ``(B, C, H, W)`` -> occupancy logits ``(B, R, R, R)``: a 2D encoder and a :class:`VoxelDecoder`.

    Introduced in ``lectures/03_voxels.ipynb``.  ``encoder`` is any module whose output is a
    ``(B, latent_dim)`` tensor or has a ``global_feature`` of that shape (the chapter 02
    :class:`~course_lib.models.ResNetEncoder`); :func:`voxel_single_view` builds the standard one.
    """

    def __init__(self, encoder: nn.Module, decoder: VoxelDecoder) -> None:
        super().__init__()
        if not isinstance(decoder, VoxelDecoder):
            raise TypeError(f"decoder must be a VoxelDecoder, got {type(decoder).__name__}")
        self.encoder, self.decoder = encoder, decoder
        self.resolution = decoder.resolution

    def encode(self, images: Tensor) -> Tensor:
        """The latent code ``(B, latent_dim)`` of a batch of images."""
        _check_images(images, getattr(self.encoder, "in_channels", 3), type(self).__name__)
        out = self.encoder(images)
        z = out.global_feature if hasattr(out, "global_feature") else out
        if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != self.decoder.latent_dim:
            raise ValueError(f"the image encoder's code has shape {tuple(getattr(z, 'shape', ()))}, "
                             f"the decoder expects (B, {self.decoder.latent_dim})")
        return z

    def forward(self, images: Tensor) -> Tensor:
        """Occupancy logits ``(B, R, R, R)``."""
        return self.decoder(self.encode(images))


class ConvGRU3d(nn.Module):
    """3D-R2N2's 3D convolutional GRU cell [Choy2016] on hidden grids ``(B, C, m, m, m)``.

    Introduced in ``lectures/03_voxels.ipynb``.  The input is the code ``x`` ``(B, D)`` of one view.
    As in the official code (``FCConv3DLayer`` of ``chrischoy/3D-R2N2``), each gate adds a fully
    connected map of ``x`` -- its own weights for every cell of the grid, ``W x`` ``(B, C, m, m, m)`` --
    to a ``kernel^3`` convolution ``U * h`` of the hidden grid, plus one bias per channel:

    ``u = sigmoid(W_u x + U_u * h + b_u)``, ``r = sigmoid(W_r x + U_r * h + b_r)``,
    ``h~ = tanh(W_h x + U_h * (r . h) + b_h)``, ``h' = (1 - u) . h + u . h~``

    (``.`` is the element-wise product).  The official code writes the last line as
    ``u . h + (1 - u) . h~``; the two are the same family (swap the sign of ``u``'s pre-activation).
    With ``grid=1`` a cell is the GRU of Cho et al. (2014), which ``tests/test_voxels_models.py``
    checks, together with the grid case against a hand-written convolution.  The paper's hidden
    grid is ``4^3 x 128`` with ``3^3`` kernels.  ``h=None`` starts from zeros.
    """

    def __init__(self, input_dim: int, channels: int, grid: int = 4, kernel: int = 3) -> None:
        super().__init__()
        for name, v in (("input_dim", input_dim), ("channels", channels), ("grid", grid), ("kernel", kernel)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"ConvGRU3d: {name} must be an int >= 1, got {v!r}")
        if kernel % 2 == 0:
            raise ValueError(f"ConvGRU3d: kernel must be odd (the grid keeps its size), got {kernel}")
        self.input_dim, self.channels, self.grid, self.kernel = int(input_dim), int(channels), int(grid), int(kernel)
        # W_u, W_r, W_h: one fully connected map per gate, its own weights for every cell (no bias: b is per channel)
        self.input = nn.Linear(self.input_dim, 3 * self.channels * self.grid**3, bias=False)
        # U_u, U_r (with b_u, b_r) and U_h (with b_h): convolutions of the hidden grid
        self.hidden = nn.Conv3d(channels, 2 * channels, kernel, padding=kernel // 2)
        self.candidate = nn.Conv3d(channels, channels, kernel, padding=kernel // 2)

    def gates(self, x: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(u, r, h~, h')`` of one step: the update and reset gates, the candidate and the new hidden grid."""
        _check_latent(x, self.input_dim, "ConvGRU3d")
        B, C, m = x.shape[0], self.channels, self.grid
        if h is None:
            h = x.new_zeros(B, C, m, m, m)
        elif not isinstance(h, Tensor) or tuple(h.shape) != (B, C, m, m, m):
            raise ValueError(f"ConvGRU3d: the hidden grid must be ({B}, {C}, {m}, {m}, {m}), "
                             f"got {tuple(getattr(h, 'shape', ()))}")
        wu, wr, wh = self.input(x).view(B, 3, C, m, m, m).unbind(1)
        uu, ur = self.hidden(h).chunk(2, dim=1)
        u = torch.sigmoid(wu + uu)
        r = torch.sigmoid(wr + ur)
        cand = torch.tanh(wh + self.candidate(r * h))
        return u, r, cand, (1 - u) * h + u * cand

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """One step: ``x`` ``(B, input_dim)``, ``h`` ``(B, C, m, m, m)`` or None (zeros) -> new ``h``."""
        return self.gates(x, h)[3]


class MultiViewVoxelGRU(nn.Module):
    """Several views ``(B, V, C, H, W)`` -> occupancy logits ``(B, R, R, R)`` (3D-R2N2's multi-view model).

    Introduced in ``lectures/03_voxels.ipynb``.  Every view goes through the same 2D encoder (its code
    through a leaky ReLU, as the official code's ``fc7``); a :class:`ConvGRU3d` folds the codes, one
    view at a time, into a hidden grid of ``decoder.seed_channels x m^3``; the decoder's upsampling path
    (:meth:`VoxelDecoder.decode_grid`) turns the last hidden grid into logits. ``all_steps=True`` decodes
    the hidden grid after every view: ``(B, V, R, R, R)``, entry ``v`` having seen views ``0..v`` (one
    encoder pass scores every number of views). The result depends on the order of the views (a GRU is
    not order invariant); 3D-R2N2 trains on random orders and numbers of views.
    """

    def __init__(self, encoder: nn.Module, decoder: VoxelDecoder, latent_dim: int, kernel: int = 3) -> None:
        super().__init__()
        if not isinstance(decoder, VoxelDecoder):
            raise TypeError(f"decoder must be a VoxelDecoder, got {type(decoder).__name__}")
        self.encoder, self.decoder = encoder, decoder
        self.resolution = decoder.resolution
        self.gru = ConvGRU3d(latent_dim, decoder.seed_channels, decoder.min_resolution, kernel)

    def codes(self, views: Tensor) -> Tensor:
        """The codes ``(B, V, latent_dim)`` of every view (one encoder pass over the ``B V`` images)."""
        _check_images(views, getattr(self.encoder, "in_channels", 3), "MultiViewVoxelGRU")
        if views.dim() != 5 or views.shape[1] < 1 or views.shape[0] < 1:
            raise ValueError(f"MultiViewVoxelGRU expects views of shape (B, V, C, H, W) with B, V >= 1, "
                             f"got {tuple(views.shape)}")
        B, V = views.shape[:2]
        out = self.encoder(views.flatten(0, 1))
        z = out.global_feature if hasattr(out, "global_feature") else out
        if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != self.gru.input_dim:
            raise ValueError(f"the image encoder's code has shape {tuple(getattr(z, 'shape', ()))}, "
                             f"the GRU expects (B, {self.gru.input_dim})")
        return F.leaky_relu(z, 0.01).view(B, V, -1)

    def forward(self, views: Tensor, all_steps: bool = False) -> Tensor:
        """Occupancy logits ``(B, R, R, R)`` from ``views`` ``(B, V, C, H, W)`` (``(B, V, R, R, R)`` with ``all_steps``)."""
        codes = self.codes(views)
        h = None
        steps = []
        for v in range(codes.shape[1]):
            h = self.gru(codes[:, v], h)
            if all_steps:
                steps.append(h)
        if not all_steps:
            return self.decoder.decode_grid(h)
        B, V = codes.shape[:2]
        logits = self.decoder.decode_grid(torch.cat(steps, 0))  # (V B, R, R, R), view-major
        return logits.view(V, B, *logits.shape[1:]).transpose(0, 1)


def voxel_single_view(resolution: int = 32, latent_dim: int = 128, width: int = 16,
                      layers: Sequence[int] = (1, 1, 1, 1), decoder_channels: int = 32, in_channels: int = 3,
                      multi_view: bool = False, max_channels: int = 256) -> SingleViewVoxels | MultiViewVoxelGRU:
    """Image -> voxels with the chapter 02 ResNet encoder (``stem="small"``) and a :class:`VoxelDecoder`.

    Introduced in ``lectures/03_voxels.ipynb``.  ``multi_view=True`` returns the
    :class:`MultiViewVoxelGRU` variant (inputs ``(B, V, C, H, W)``).
    """
    if multi_view:
        enc = ResNetEncoder(in_channels=in_channels, layers=layers, width=width, out_dim=latent_dim)
        dec = VoxelDecoder(latent_dim, resolution, decoder_channels, max_channels=max_channels)
        return MultiViewVoxelGRU(enc, dec, latent_dim)
    enc = ResNetEncoder(in_channels=in_channels, layers=layers, width=width, out_dim=latent_dim)
    return SingleViewVoxels(enc, VoxelDecoder(latent_dim, resolution, decoder_channels, max_channels=max_channels))


# ---------------------------------------------------------------------------
# loss
# ---------------------------------------------------------------------------
def balanced_pos_weight(occupied_fraction: float | Tensor, power: float = 0.5, max_weight: float = 50.0) -> float:
    """The positive-class weight ``((1 - f) / f) ** power`` for an occupied fraction ``f``.

    Introduced in ``lectures/03_voxels.ipynb``.  ``power=1`` makes full and empty voxels weigh
    the same in total (the "balanced" weight); ``power=0`` is the plain BCE. The weight is
    clipped to ``[1, max_weight]`` (a grid more than half full needs no up-weighting).
    """
    f = float(occupied_fraction)
    if not 0.0 < f < 1.0:
        raise ValueError(f"occupied_fraction must be in (0, 1), got {f}")
    if power < 0:
        raise ValueError(f"power must be >= 0, got {power}")
    return float(min(max_weight, max(1.0, ((1.0 - f) / f) ** power)))


def weighted_optimum(probability: float | Tensor, pos_weight: float) -> float | Tensor:
    """The probability the weighted BCE drives a voxel to when it is full with ``probability`` q.

    Introduced in ``lectures/03_voxels.ipynb``.  Minimising ``-(w q log p + (1 - q) log(1 - p))``
    over ``p`` gives ``p* = w q / (w q + 1 - q)`` (``w = 1``: ``p* = q``).
    """
    if float(pos_weight) <= 0:
        raise ValueError(f"pos_weight must be > 0, got {pos_weight}")
    q = probability
    return pos_weight * q / (pos_weight * q + 1 - q)


def voxel_bce(logits: Tensor, target: Tensor, pos_weight: float | None = None) -> Tensor:
    """Mean binary cross-entropy of occupancy logits ``(B, R, R, R)`` against a 0/1 grid, full voxels weighted.

    Introduced in ``lectures/03_voxels.ipynb``.

    Most voxels of a shape are empty (a 32^3 chair fills a few percent of its grid), so the
    plain BCE is dominated by the empty cells and an "all empty" grid is a strong local
    minimum. We handle the imbalance with a **positive weight** ``w`` (the loss of a full
    voxel is multiplied by ``w``, see :func:`balanced_pos_weight`) rather than a focal loss:
    it is one interpretable number, keeps the loss a proper log-likelihood of a re-weighted
    problem, and its effect on the optimum is known exactly -- the minimiser predicts
    ``p_w = w p / (w p + 1 - p)`` instead of ``p``, i.e. it moves the 0.5 decision boundary
    to ``p = 1 / (1 + w)``. That is one more reason to report IoU over a threshold sweep.
    ``pos_weight=None`` (or 1) is the plain BCE.
    """
    if not isinstance(logits, Tensor) or not isinstance(target, Tensor):
        raise TypeError("voxel_bce expects torch.Tensor logits and target")
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} differ in shape")
    if logits.numel() == 0:
        raise ValueError("voxel_bce got empty tensors")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be floating point, got {logits.dtype}")
    if logits.device != target.device:
        raise ValueError(f"logits are on {logits.device} but the target is on {target.device}")
    t = target.to(logits.dtype)
    pw = None
    if pos_weight is not None:
        if float(pos_weight) <= 0:
            raise ValueError(f"pos_weight must be > 0, got {pos_weight}")
        pw = torch.tensor(float(pos_weight), dtype=logits.dtype, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, t, pos_weight=pw)
