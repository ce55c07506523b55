"""An OctNet-style octree encoder and its dense twin, for classification.

Introduced in ``lectures/04_octrees.ipynb`` (the octree *encoder*: OctNet's convolution and pooling,
trained and timed against a dense 3D CNN of the same layout).

:class:`OctNetClassifier` runs ``len(channels)`` blocks of :class:`~course_lib.geometry.octree.OctreeConv3d`
(one output per leaf), ReLU and OctNet's 2x2x2 grid pooling (:func:`~course_lib.geometry.octree.octree_pool`,
max), then a global max over each shape's leaves and a linear layer.  :class:`DenseGridClassifier` is the same
network on the dense grid (``nn.Conv3d`` with zero padding, ReLU, ``max_pool3d``, global max, linear).  With the
same weights the two give the same logits whenever every leaf of every layer is a single voxel (a fully split
octree); otherwise the octree network computes, per leaf, the mean of the dense convolution over the leaf
(OctNet's approximation: the structure of the output is the structure of the input).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..geometry.octree import Octree, OctreeConv3d, build_octree, octree_pool

__all__ = ["OctNetClassifier", "DenseGridClassifier"]


def _channels(in_channels: int, channels: Sequence[int]) -> list[tuple[int, int]]:
    chans = [int(c) for c in channels]
    if not chans or min(chans) < 1 or int(in_channels) < 1:
        raise ValueError(f"channels must be positive widths, got in_channels={in_channels}, channels={channels}")
    return list(zip([int(in_channels)] + chans[:-1], chans))


class OctNetClassifier(nn.Module):
    """Octree -> class logits ``(B, n_classes)``: OctNet's convolution and pooling, a global max, a linear layer.

    ``forward`` also takes dense occupancy grids ``(B, R, R, R)`` and builds their octree (``tree_depth``) first,
    so that it trains and scores with the same batches, losses and helpers as a dense classifier.
    """

    def __init__(self, n_classes: int, channels: Sequence[int] = (8, 16, 32), in_channels: int = 1,
                 tree_depth: int = 3) -> None:
        super().__init__()
        self.tree_depth = int(tree_depth)
        self.convs = nn.ModuleList(OctreeConv3d(a, b) for a, b in _channels(in_channels, channels))
        self.head = nn.Linear(int(channels[-1]), int(n_classes))

    def forward(self, octree: Octree | Tensor) -> Tensor:
        if isinstance(octree, Tensor):
            if octree.dim() != 4:
                raise ValueError(f"OctNetClassifier expects an Octree or occupancy grids (B, R, R, R), got "
                                 f"{tuple(octree.shape)}")
            octree = build_octree(octree > 0.5, self.tree_depth)
        if not isinstance(octree, Octree):
            raise TypeError(f"OctNetClassifier expects an Octree (build_octree), got {type(octree).__name__}")
        t, x = octree, octree.values.float()
        for conv in self.convs:
            x = F.relu(conv(t, x))
            if t.resolution >= 2:
                t = octree_pool(t, x, reduce="max")
                x = t.values
        batch = t.leaves().batch
        pooled = x.new_full((t.batch_size, x.shape[1]), float("-inf")).scatter_reduce(
            0, batch[:, None].expand(-1, x.shape[1]), x, "amax", include_self=True)
        return self.head(pooled)


class DenseGridClassifier(nn.Module):
    """Dense grid ``(B, R, R, R)`` -> class logits: the same layout as :class:`OctNetClassifier` on ``nn.Conv3d``."""

    def __init__(self, n_classes: int, channels: Sequence[int] = (8, 16, 32), in_channels: int = 1) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv3d(a, b, 3, padding=1) for a, b in _channels(in_channels, channels))
        self.head = nn.Linear(int(channels[-1]), int(n_classes))

    def forward(self, grid: Tensor) -> Tensor:
        if grid.dim() != 4 or not (grid.shape[1] == grid.shape[2] == grid.shape[3]):
            raise ValueError(f"DenseGridClassifier expects grids (B, R, R, R), got {tuple(grid.shape)}")
        x = grid.float()[:, None]
        for conv in self.convs:
            x = F.relu(conv(x))
            if x.shape[-1] >= 2:
                x = F.max_pool3d(x, 2)
        return self.head(x.amax(dim=(2, 3, 4)))

    def load_octnet(self, octnet: OctNetClassifier) -> DenseGridClassifier:
        """Copy an :class:`OctNetClassifier`'s weights (the same layouts); returns ``self``."""
        with torch.no_grad():
            for a, b in zip(self.convs, octnet.convs):
                a.weight.copy_(b.weight)
                a.bias.copy_(b.bias)
            self.head.load_state_dict(octnet.head.state_dict())
        return self
