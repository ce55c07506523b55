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

Everything but the leaf values depends only on the input's *structure*: the octree, each layer's convolution
operator (:func:`~course_lib.geometry.octree.conv_operator`) and where each leaf goes when pooled.  Building them
is most of an uncached step's time on a CPU (``benchmarks/octrees.py --part octnet``), so a classifier fed dense
grids keeps them per shape in a :class:`StructureCache` (keyed by a digest of the occupancy grid) and assembles a
batch's operators from its shapes' (leaves are stored batch-major, so a batch's operator is block-diagonal in its shapes').  The cached path
computes the same logits and gradients as building everything from the batch (tested); ``cache_structure=False``
builds every time.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..geometry.octree import Octree, OctreeConv3d, build_octree, conv_operator, octree_pool

__all__ = ["OctNetClassifier", "DenseGridClassifier", "StructureCache", "STRUCTURE_CACHE"]


@dataclass
class _Layer:
    rows: Tensor            # (nnz,) int32: row 27 c + o of the convolution operator
    cols: Tensor            # (nnz,) int32: the leaf c'
    weights: Tensor         # (nnz,) float32
    n_in: int               # leaves the convolution runs on
    pool_to: Tensor | None  # (n_in,) int64: the leaf of the pooled octree each leaf goes to (None: no pooling)
    n_out: int              # leaves after the layer (n_in without pooling)


@dataclass
class _ShapePlan:
    values: Tensor          # (N0, 1) the input octree's leaf values
    layers: list[_Layer]

    @property
    def nbytes(self) -> int:
        ts = [self.values] + [t for la in self.layers for t in (la.rows, la.cols, la.weights, la.pool_to)
                              if t is not None]
        return sum(t.numel() * t.element_size() for t in ts)


def _shape_plan(grid: Tensor, tree_depth: int, n_convs: int) -> _ShapePlan:
    """One shape's octree, each layer's convolution operator and pooling map (what the forward pass would build)."""
    t = build_octree(grid[None] > 0.5, tree_depth)
    values = t.values.float()
    layers = []
    for _ in range(n_convs):
        S = conv_operator(t)
        idx = S.indices()
        n_in = t.num_cells
        if t.resolution >= 2:
            pooled = octree_pool(t, torch.zeros(n_in, 1, device=values.device), reduce="max")
            lv = t.leaves()
            pool_to = pooled.locate(lv.batch, torch.div(lv.origin, 2, rounding_mode="floor"))
            n_out = pooled.num_cells
            t = pooled
        else:
            pool_to, n_out = None, n_in
        layers.append(_Layer(idx[0].to(torch.int32), idx[1].to(torch.int32), S.values().float(), n_in, pool_to,
                             n_out))
    return _ShapePlan(values, layers)


def _default_cache_bytes() -> float:
    """30% of the machine's memory, at most 16 GiB (2 GiB where the memory cannot be read)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2.0 * 2 ** 30
    return float(min(0.3 * total, 16 * 2 ** 30))


class StructureCache:
    """Per-shape octree structures of :class:`OctNetClassifier` (its octree, operators and pooling maps), least
    recently used first out once they hold more than ``max_bytes`` (default 30% of the machine's memory, at most
    16 GiB: a 128^3 shape's structure takes tens of MB, ``benchmarks/octrees.py`` measures it).

    Keyed by the device, the resolution, the tree depth, the number of layers and a digest (BLAKE2b) of the
    occupancy grid, so two grids share an entry only when every voxel agrees.  ``hits`` and ``misses`` count
    lookups.  One module-level instance, :data:`STRUCTURE_CACHE`, serves every classifier (models trained on the
    same grids with other seeds reuse it).
    """

    def __init__(self, max_bytes: float | None = None) -> None:
        if max_bytes is None:
            max_bytes = _default_cache_bytes()
        if not max_bytes > 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = float(max_bytes)
        self._plans: OrderedDict[tuple, _ShapePlan] = OrderedDict()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._plans)

    def clear(self) -> None:
        self._plans.clear()
        self.nbytes, self.hits, self.misses = 0, 0, 0

    @staticmethod
    def key(grid: Tensor, tree_depth: int, n_convs: int) -> tuple:
        occ = (grid > 0.5).detach().cpu().numpy()
        digest = hashlib.blake2b(np.packbits(occ).tobytes(), digest_size=16).hexdigest()
        return (str(grid.device), tuple(grid.shape), int(tree_depth), int(n_convs), digest)

    def plan(self, grid: Tensor, tree_depth: int, n_convs: int) -> _ShapePlan:
        """The structure of one grid ``(R, R, R)``, built on a miss."""
        k = self.key(grid, tree_depth, n_convs)
        if k in self._plans:
            self.hits += 1
            self._plans.move_to_end(k)
            return self._plans[k]
        self.misses += 1
        p = _shape_plan(grid, tree_depth, n_convs)
        self._plans[k] = p
        self.nbytes += p.nbytes
        while self.nbytes > self.max_bytes and len(self._plans) > 1:
            _, old = self._plans.popitem(last=False)
            self.nbytes -= old.nbytes
        return p


STRUCTURE_CACHE = StructureCache()


def _channels(in_channels: int, channels: Sequence[int]) -> list[tuple[int, int]]:
    chans = [int(c) for c in channels]
    if not chans or min(chans) < 1 or int(in_channels) < 1:
        raise ValueError(f"channels must be positive widths, got in_channels={in_channels}, channels={channels}")
    return list(zip([int(in_channels)] + chans[:-1], chans))


class OctNetClassifier(nn.Module):
    """Octree -> class logits ``(B, n_classes)``: OctNet's convolution and pooling, a global max, a linear layer.

    ``forward`` also takes dense occupancy grids ``(B, R, R, R)`` and builds their octree (``tree_depth``) first,
    so that it trains and scores with the same batches, losses and helpers as a dense classifier.  With
    ``cache_structure`` (default) the structure of each grid is kept in ``cache`` (default
    :data:`STRUCTURE_CACHE`) and reused when the same grid comes again (every epoch of training); the logits are
    the same either way.
    """

    def __init__(self, n_classes: int, channels: Sequence[int] = (8, 16, 32), in_channels: int = 1,
                 tree_depth: int = 3, cache_structure: bool = True, cache: StructureCache | None = None) -> None:
        super().__init__()
        self.tree_depth = int(tree_depth)
        self.cache_structure = bool(cache_structure)
        self.cache = cache
        self.convs = nn.ModuleList(OctreeConv3d(a, b) for a, b in _channels(in_channels, channels))
        self.head = nn.Linear(int(channels[-1]), int(n_classes))

    def forward(self, octree: Octree | Tensor) -> Tensor:
        if isinstance(octree, Tensor):
            if octree.dim() != 4:
                raise ValueError(f"OctNetClassifier expects an Octree or occupancy grids (B, R, R, R), got "
                                 f"{tuple(octree.shape)}")
            if self.cache_structure and octree.shape[0] > 0:
                cache = self.cache if self.cache is not None else STRUCTURE_CACHE
                return self._forward_plans([cache.plan(g, self.tree_depth, len(self.convs)) for g in octree])
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

    def _forward_plans(self, plans: list[_ShapePlan]) -> Tensor:
        """The forward pass of a batch from its shapes' structures (block-diagonal operators, offset pooling maps)."""
        x = torch.cat([p.values for p in plans])
        dev = x.device
        for i, conv in enumerate(self.convs):
            las = [p.layers[i] for p in plans]
            n_in = torch.tensor([la.n_in for la in las], device=dev)
            off = torch.cumsum(n_in, 0) - n_in
            nnz = torch.tensor([la.rows.numel() for la in las], device=dev)
            rows = torch.cat([la.rows for la in las]).long() + (27 * off).repeat_interleave(nnz)
            cols = torch.cat([la.cols for la in las]).long() + off.repeat_interleave(nnz)
            total = int(n_in.sum())
            # each shape's block is coalesced and the blocks are offset in order, so the whole is coalesced
            S = torch.sparse_coo_tensor(torch.stack([rows, cols]), torch.cat([la.weights for la in las]),
                                        (27 * total, total), is_coalesced=True, check_invariants=False)
            x = F.relu(conv.apply_operator(S, x))
            if las[0].pool_to is not None:
                n_out = torch.tensor([la.n_out for la in las], device=dev)
                off_out = torch.cumsum(n_out, 0) - n_out
                to = torch.cat([la.pool_to for la in las]) + off_out.repeat_interleave(n_in)
                x = x.new_zeros(int(n_out.sum()), x.shape[1]).scatter_reduce(
                    0, to[:, None].expand(-1, x.shape[1]), x, "amax", include_self=False)
        counts = torch.tensor([p.layers[-1].n_out for p in plans], device=dev)
        batch = torch.repeat_interleave(torch.arange(len(plans), device=dev), counts)
        pooled = x.new_full((len(plans), x.shape[1]), float("-inf")).scatter_reduce(
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
