"""PointSetGen: predict a fixed-size point set from a latent code [Fan2017].

Introduced in ``lectures/05_point_sets.ipynb``.

The decoder of Fan, Su and Guibas (CVPR 2017) ends in two branches whose outputs are
concatenated into one set of points:

* a **fully connected** branch: an MLP from the latent code to ``n_fc * 3`` numbers,
  i.e. ``n_fc`` free points (the paper: 256 points). Each point has its own output
  neurons, so this branch can place points anywhere, which suits thin structures;
* a **deconvolution** (up-convolution) branch: a small 2D feature map is upsampled by
  transposed convolutions into an ``H x W x 3`` map whose every pixel is a point (the paper:
  32 x 24 = 768 points, up-sampled from the image encoder's feature maps). Neighbouring
  pixels share filters and so tend to land near each other: this branch is good at
  smooth, large surfaces.

Our version starts both branches from one latent vector (the output of any encoder's
``global_feature``), so the same decoder serves the auto-encoder (a PointNet encoder
on points) and single-view reconstruction (a ResNet encoder on a rendered view). It is
small, to train on a CPU, but keeps the two branches. :class:`PointSetGen` couples an
encoder and the decoder; :func:`psg_autoencoder` and :func:`psg_single_view` build the two
configurations of the chapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .encoders import PointNet, ResNetEncoder, _check_latent

__all__ = ["PointSetGenDecoder", "PointSetGen", "psg_autoencoder", "psg_single_view"]


class PointSetGenDecoder(nn.Module):
    """Latent code ``(B, latent_dim)`` -> point set ``(B, n_fc + H * W, 3)``, two branches merged.

    Introduced in ``lectures/05_point_sets.ipynb``.

    Parameters
    ----------
    latent_dim:
        Size of the latent code.
    n_fc:
        Points predicted by the fully connected branch (0 switches the branch off).
    map_size:
        ``(H, W)`` of the deconvolution branch's output map; each pixel is a point
        (``(0, 0)`` switches the branch off). ``H`` and ``W`` must be divisible by
        ``2 ** n_upsample``.
    fc_hidden:
        Widths of the hidden layers of the fully connected branch.
    map_channels:
        Channels of the smallest map; halved at each upsampling step (at least 8).
    n_upsample:
        Number of stride-2 transposed convolutions (each doubles H and W).

    The output is ``cat([fc points, map points], dim=1)``: points ``[:n_fc]`` come from
    the fully connected branch and points ``[n_fc:]`` from the map in row-major order
    (``points[:, n_fc + i * W + j]`` is pixel ``(i, j)``); :attr:`branch` labels them.
    """

    def __init__(
        self,
        latent_dim: int = 256,
        n_fc: int = 128,
        map_size: Sequence[int] = (16, 24),
        fc_hidden: Sequence[int] = (512, 512),
        map_channels: int = 128,
        n_upsample: int = 3,
    ) -> None:
        super().__init__()
        h, w = (int(s) for s in map_size)
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        if n_fc < 0 or h < 0 or w < 0:
            raise ValueError(f"n_fc and map_size must be non-negative, got n_fc={n_fc}, map_size={(h, w)}")
        if (h == 0) != (w == 0):
            raise ValueError(f"map_size must be (0, 0) (branch off) or two positive sizes, got {(h, w)}")
        if n_fc == 0 and h == 0:
            raise ValueError("both branches are off: give n_fc > 0 or a non-empty map_size")
        if n_upsample < 0:
            raise ValueError(f"n_upsample must be >= 0, got {n_upsample}")
        f = 2**n_upsample
        if h and (h % f or w % f):
            raise ValueError(f"map_size {(h, w)} must be divisible by 2**n_upsample = {f}")
        self.latent_dim = int(latent_dim)
        self.n_fc = int(n_fc)
        self.map_size = (h, w)
        self.n_map = h * w
        self.n_points = self.n_fc + self.n_map

        self.fc: nn.Module | None = None
        if self.n_fc:
            layers: list[nn.Module] = []
            cin = self.latent_dim
            for c in fc_hidden:
                layers += [nn.Linear(cin, int(c)), nn.ReLU()]
                cin = int(c)
            layers.append(nn.Linear(cin, 3 * self.n_fc))
            self.fc = nn.Sequential(*layers)

        self.seed_map: nn.Module | None = None
        self.upconv: nn.Module | None = None
        if self.n_map:
            h0, w0 = h // f, w // f
            c = int(map_channels)
            self._seed_shape = (c, h0, w0)
            self.seed_map = nn.Sequential(nn.Linear(self.latent_dim, c * h0 * w0), nn.ReLU())
            blocks: list[nn.Module] = []
            for _ in range(n_upsample):
                cout = max(8, c // 2)
                # kernel 4, stride 2, padding 1: exactly doubles H and W
                blocks += [nn.ConvTranspose2d(c, cout, 4, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                           nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU()]
                c = cout
            blocks.append(nn.Conv2d(c, 3, 3, padding=1))
            self.upconv = nn.Sequential(*blocks)

    @property
    def branch(self) -> Tensor:
        """``(n_points,)`` long: 0 for points of the fully connected branch, 1 for the map branch."""
        return torch.cat([torch.zeros(self.n_fc, dtype=torch.long), torch.ones(self.n_map, dtype=torch.long)])

    def forward_branches(self, z: Tensor) -> dict[str, Tensor]:
        """Both branches separately: ``{"fc": (B, n_fc, 3), "map": (B, 3, H, W)}`` (absent when off)."""
        _check_latent(z, self.latent_dim, "PointSetGenDecoder")
        out: dict[str, Tensor] = {}
        if self.fc is not None:
            out["fc"] = self.fc(z).view(z.shape[0], self.n_fc, 3)
        if self.upconv is not None and self.seed_map is not None:
            m = self.seed_map(z).view(z.shape[0], *self._seed_shape)
            out["map"] = self.upconv(m)
        return out

    def forward(self, z: Tensor) -> Tensor:
        """Decode ``z`` ``(B, latent_dim)`` into points ``(B, n_fc + H * W, 3)``."""
        parts = self.forward_branches(z)
        pts = []
        if "fc" in parts:
            pts.append(parts["fc"])
        if "map" in parts:
            pts.append(parts["map"].flatten(2).transpose(1, 2))  # (B, H*W, 3), row-major pixels
        return torch.cat(pts, dim=1)


class PointSetGen(nn.Module):
    """An encoder (any module returning an ``EncoderOutput``) followed by a :class:`PointSetGenDecoder`.

    Introduced in ``lectures/05_point_sets.ipynb``.

    ``forward(inputs)`` returns the predicted points ``(B, N, 3)``; :meth:`encode` returns the
    latent code (the encoder's ``global_feature``).
    """

    def __init__(self, encoder: nn.Module, decoder: PointSetGenDecoder) -> None:
        super().__init__()
        if not isinstance(decoder, PointSetGenDecoder):
            raise TypeError(f"decoder must be a PointSetGenDecoder, got {type(decoder).__name__}")
        self.encoder = encoder
        self.decoder = decoder

    @property
    def n_points(self) -> int:
        """The fixed number of points every prediction has."""
        return self.decoder.n_points

    def encode(self, inputs: Tensor) -> Tensor:
        """The latent code ``(B, latent_dim)``."""
        out = self.encoder(inputs)
        z = out.global_feature if hasattr(out, "global_feature") else out
        if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != self.decoder.latent_dim:
            raise ValueError(f"the encoder's latent code has shape {tuple(getattr(z, 'shape', ()))}, "
                             f"the decoder expects (B, {self.decoder.latent_dim})")
        return z

    def forward(self, inputs: Tensor) -> Tensor:
        """Predict ``(B, n_points, 3)`` from a batch of inputs (points or images)."""
        return self.decoder(self.encode(inputs))


def psg_autoencoder(
    latent_dim: int = 256,
    n_fc: int = 128,
    map_size: Sequence[int] = (16, 24),
    *,
    encoder_hidden: Sequence[int] = (64, 128),
    encoder_feat_dim: int = 512,
    **decoder_kwargs: Any,
) -> PointSetGen:
    """A point-cloud auto-encoder: :class:`~course_lib.models.encoders.PointNet` -> latent -> PointSetGen decoder.

    Introduced in ``lectures/05_point_sets.ipynb``.
    """
    enc = PointNet(in_dim=3, feat_dim=encoder_feat_dim, hidden=encoder_hidden, out_dim=latent_dim)
    return PointSetGen(enc, PointSetGenDecoder(latent_dim, n_fc, map_size, **decoder_kwargs))


def psg_single_view(
    latent_dim: int = 256,
    n_fc: int = 128,
    map_size: Sequence[int] = (16, 24),
    *,
    in_channels: int = 3,
    layers: Sequence[int] = (1, 1, 1, 1),
    width: int = 16,
    **decoder_kwargs: Any,
) -> PointSetGen:
    """Single-view reconstruction: :class:`~course_lib.models.encoders.ResNetEncoder` on an image -> PointSetGen decoder.

    Introduced in ``lectures/05_point_sets.ipynb``. ``in_channels`` is 3 for RGB, 4 for RGB + mask
    or RGB-D (the paper fed RGB plus the object mask).
    """
    enc = ResNetEncoder(in_channels=in_channels, layers=layers, width=width, out_dim=latent_dim, stem="small")
    return PointSetGen(enc, PointSetGenDecoder(latent_dim, n_fc, map_size, **decoder_kwargs))
