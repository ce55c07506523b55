"""An Octree Generating Network (OGN, Tatarchenko et al., ICCV 2017) decoder in plain PyTorch.

Introduced in ``lectures/04_octrees.ipynb``.

A latent code becomes a small **dense** grid (the grid of tree roots, ``G = R / 2^D``), as in
chapter 03's :class:`~course_lib.models.voxels.VoxelDecoder`.  From there on the decoder works on
**lists of cells** (index tensors ``(N, 4)`` = ``(b, x, y, z)`` with one feature row each):

1. at every level it predicts, for every cell it holds, one of three classes -- empty, full or
   mixed (:data:`~course_lib.geometry.octree.EMPTY`, ``FULL``, ``MIXED``; at the voxel level only
   empty or full);
2. only the cells that are mixed are expanded into their 8 children (:func:`expand_cells`,
   ``repeat_interleave``); a child's features come from its parent's through one linear map per
   child position (a stride-2 transposed convolution restricted to the expanded cells), followed
   by a 3x3x3 convolution among the cells present at that level (:class:`SparseConv3d`);
3. the loss (:func:`ogn_loss`) is the sum over levels of the mean cross-entropy of the cells'
   classes against the ground-truth octree's states (:meth:`Octree.state_at`).

Which cells are expanded is OGN's *propagation mode*: with :data:`PROP_KNOWN` (training) the
ground-truth mixed cells, so every level is supervised where the true surface is; with
:data:`PROP_PRED` (test) the cells the network itself classifies as mixed.  Below the dense
``G^3`` grid of roots (``R^3 / 2^(3 D)`` cells), the work and the memory grow with the number of
mixed cells -- the surface -- instead of ``R^3``: :func:`neighbour_index` uses a dense lookup table
only while it is no larger than the neighbour index it returns (:func:`lookup_method`), and sorted
keys otherwise.  :func:`trace_buffers` records the bytes of every working tensor.

Simplification against OGN: OGN also carries the neighbours of mixed cells along as context
for its convolutions; here the convolution only sees the cells of the level (sparse
"submanifold" convolution), which keeps the code short.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..geometry.octree import EMPTY, FULL, MIXED, Octree, octree_from_boxes

__all__ = [
    "PROP_KNOWN", "PROP_PRED", "CHILD_OFFSETS", "expand_cells", "neighbour_index", "lookup_method", "LOOKUP_TABLE",
    "LOOKUP_SORT", "trace_buffers", "SparseConv3d",
    "OGNOutput", "OGNDecoder", "OGNAutoEncoder", "OGNSingleView", "ogn_loss", "EMPTY", "FULL", "MIXED",
]

PROP_KNOWN = "known"
"""Propagation with the ground-truth structure (OGN's ``PROP_KNOWN``, used for training)."""
PROP_PRED = "pred"
"""Propagation with the predicted structure (OGN's ``PROP_PRED``, used at test time)."""

CHILD_OFFSETS = torch.tensor([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
"""The 8 child offsets, child ``4 dx + 2 dy + dz`` (the order of the octree's bit strings)."""


_TRACES: list[list[dict[str, Any]]] = []


@contextmanager
def trace_buffers() -> Iterator[list[dict[str, Any]]]:
    """Record the working tensors that the OGN code builds while the block runs.

    Introduced in ``lectures/04_octrees.ipynb`` (the memory account,
    :func:`course_lib.experiments.octrees.memory_account`).  Yields a list that fills with one dict
    per tensor: ``name`` (``"cells"``, ``"features"``, ``"logits"``, ``"root grid"``, ``"im2col
    columns"``, ``"neighbour index"``, ``"lookup: ..."``), ``resolution`` of the level, ``shape``,
    ``dtype`` and ``bytes`` (``element_size() * numel()`` of the tensor itself, so the account
    cannot drift from the code).  Outside the block nothing is recorded (one list check).
    """
    rec: list[dict[str, Any]] = []
    _TRACES.append(rec)
    try:
        yield rec
    finally:
        _TRACES.remove(rec)


def _record(name: str, t: Tensor, resolution: int) -> None:
    if _TRACES:
        row = {"name": name, "resolution": int(resolution), "shape": tuple(t.shape), "dtype": str(t.dtype),
               "bytes": t.element_size() * t.numel()}
        for rec in _TRACES:
            rec.append(dict(row))


def _check_cells(cells: Any, who: str) -> Tensor:
    if not isinstance(cells, Tensor) or cells.dim() != 2 or cells.shape[1] != 4:
        raise ValueError(f"{who}: cells must be a tensor (N, 4) of (b, x, y, z), got "
                         f"{tuple(getattr(cells, 'shape', ())) or type(cells).__name__}")
    if cells.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{who}: cells must be integer (long) coordinates, got {cells.dtype}")
    return cells.long()


def expand_cells(cells: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Replace the cells where ``mask`` is true by their 8 children, one level finer.

    Introduced in ``lectures/04_octrees.ipynb``.  ``cells`` ``(N, 4)`` ``(b, x, y, z)`` at
    resolution ``r``; returns ``children`` ``(8 M, 4)`` at resolution ``2 r`` (the children of the
    first selected cell first, each in the order of :data:`CHILD_OFFSETS`) and ``parent``
    ``(8 M,)``, the index in ``cells`` of each child's parent (to gather its features).
    """
    cells = _check_cells(cells, "expand_cells")
    if not isinstance(mask, Tensor) or mask.shape != (cells.shape[0],):
        raise ValueError(f"expand_cells: mask must be a tensor ({cells.shape[0]},), got "
                         f"{tuple(getattr(mask, 'shape', ()))}")
    parent = torch.nonzero(mask.bool(), as_tuple=True)[0].repeat_interleave(8)
    off = CHILD_OFFSETS.to(cells.device).repeat(parent.shape[0] // 8, 1)
    children = cells[parent].clone()
    children[:, 1:] = children[:, 1:] * 2 + off
    return children, parent


LOOKUP_TABLE, LOOKUP_SORT = "table", "sort"
"""The two ways :func:`neighbour_index` finds the neighbours: a dense int32 table of the level's padded
grid, or the cells' sorted keys searched by bisection."""


def lookup_method(num_cells: int, batch_size: int, resolution: int, table_limit: int = 2 ** 24) -> str:
    """Which lookup :func:`neighbour_index` uses for ``num_cells`` cells of ``batch_size`` grids of ``resolution^3``.

    Introduced in ``lectures/04_octrees.ipynb``.  The dense table has ``B (r + 2)^3`` int32 entries
    (the grid padded by one cell on every side): it is used only while it is **no larger than the
    neighbour index it returns** (``27`` int64 per cell, i.e. ``4 B (r + 2)^3 <= 216 N`` bytes, a
    level at least ~1.9 % full) and has at most ``table_limit`` entries; otherwise the cells' keys are
    sorted and searched (:data:`LOOKUP_SORT`), whose memory is a few int64 per cell and per offset
    row.  So the lookup's memory is bounded by a constant times the number of cells, and the table is
    kept where it is cheap (dense, coarse levels), where it is also the faster of the two.
    """
    entries = int(batch_size) * (int(resolution) + 2) ** 3
    return LOOKUP_TABLE if entries <= table_limit and 4 * entries <= 8 * 27 * int(num_cells) else LOOKUP_SORT


def neighbour_index(cells: Tensor, resolution: int, table_limit: int = 2 ** 24, method: str | None = None) -> Tensor:
    """``(N, 27)`` index of each cell's 3x3x3 neighbours among ``cells`` (``-1`` where absent).

    Introduced in ``lectures/04_octrees.ipynb``.  The offsets are in the order of a ``Conv3d``
    kernel (``dx`` slowest).  ``cells`` must be distinct.  Two lookups give the same indices
    (``method``, default :func:`lookup_method`'s choice):

    * :data:`LOOKUP_TABLE`: an int32 table of the ``B (r + 2)^3`` cells of the padded grid, holding
      each cell's row (``-1`` elsewhere), read at the 27 neighbours' keys -- memory ``~ r^3``;
    * :data:`LOOKUP_SORT`: the cells' linear keys sorted once; for each of the 9 rows ``(dx, dy)``
      of the kernel one binary search finds the first key ``>=`` the row's ``dz = -1`` key, and the
      three keys of the row (``dz = -1, 0, 1``) are consecutive, so they sit at that position or
      just after it -- memory ``~ N``, no dense array at all.
    """
    cells = _check_cells(cells, "neighbour_index")
    r = int(resolution)
    dev = cells.device
    n = cells.shape[0]
    if n == 0:
        return torch.zeros(0, 27, dtype=torch.long, device=dev)
    B = int(cells[:, 0].max()) + 1
    method = method or lookup_method(n, B, r, table_limit)
    if method not in (LOOKUP_TABLE, LOOKUP_SORT):
        raise ValueError(f"method must be {LOOKUP_TABLE!r} or {LOOKUP_SORT!r}, got {method!r}")
    d = torch.tensor([-1, 0, 1], device=dev)
    # pad the grid by one cell on every side so that no neighbour falls outside
    rp = r + 2
    key = ((cells[:, 0] * rp + cells[:, 1] + 1) * rp + cells[:, 2] + 1) * rp + cells[:, 3] + 1
    if method == LOOKUP_TABLE:
        offs = torch.stack(torch.meshgrid(d, d, d, indexing="ij"), -1).reshape(27, 3)
        shift = (offs[:, 0] * rp + offs[:, 1]) * rp + offs[:, 2]
        nkey = key[:, None] + shift[None]                                    # (N, 27)
        table = torch.full((B * rp ** 3,), -1, dtype=torch.int32, device=dev)
        table[key] = torch.arange(n, dtype=torch.int32, device=dev)
        nbr = table[nkey].long()
        _record("lookup: dense table", table, r)
        _record("lookup: query keys", nkey, r)
    else:
        dx, dy = torch.meshgrid(d, d, indexing="ij")
        row = ((dx * rp + dy) * rp - 1).reshape(9)                           # the dz = -1 key of each row
        skey, perm = torch.sort(key)
        base = key[:, None] + row[None]                                      # (N, 9)
        pos = torch.searchsorted(skey, base)                                 # first stored key >= base
        skp = torch.cat([skey, skey.new_full((1,), -1)])                     # a sentinel that matches nothing
        pp = torch.cat([perm, perm.new_full((1,), -1)])
        out, p = [], pos
        for j in range(3):                                                   # dz = -1, 0, 1
            hit = skp[p] == base + j
            out.append(torch.where(hit, pp[p], -1))
            p = p + hit                                                      # keys are distinct: the next one follows
        nbr = torch.stack(out, -1).reshape(n, 27)
        _record("lookup: sorted keys", skey, r)
        _record("lookup: sort order", perm, r)
        _record("lookup: query keys", base, r)
        _record("lookup: search positions", pos, r)
    _record("neighbour index", nbr, r)
    return nbr


class SparseConv3d(nn.Module):
    """A 3x3x3 convolution evaluated only at the given cells, reading only the given cells.

    Introduced in ``lectures/04_octrees.ipynb``.  Equal to a dense ``Conv3d`` (zero padding) on a
    grid that is zero outside the cells, read back at the cells.  Weights have the ``Conv3d``
    layout ``(C_out, C_in, 3, 3, 3)``; the computation is a gather of the 27 neighbours' features
    (``(N, 27 C_in)``) and one matrix product.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        ref = nn.Conv3d(int(in_channels), int(out_channels), 3, padding=1, bias=bias)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.weight, self.bias = ref.weight, ref.bias

    def forward(self, x: Tensor, cells: Tensor, resolution: int, nbr: Tensor | None = None) -> Tensor:
        """Features ``(N, C_in)`` at ``cells`` ``(N, 4)`` of a ``resolution^3`` grid -> ``(N, C_out)``."""
        if x.dim() != 2 or x.shape[1] != self.in_channels or x.shape[0] != cells.shape[0]:
            raise ValueError(f"SparseConv3d expects features ({cells.shape[0]}, {self.in_channels}), got {tuple(x.shape)}")
        nbr = neighbour_index(cells, resolution) if nbr is None else nbr
        xp = torch.cat([x, x.new_zeros(1, x.shape[1])])
        cols = xp[nbr].reshape(x.shape[0], 27 * self.in_channels)          # index -1 -> the zero row
        _record("im2col columns", cols, resolution)
        w = self.weight.reshape(self.out_channels, self.in_channels, 27).permute(2, 1, 0)
        y = cols @ w.reshape(27 * self.in_channels, self.out_channels)
        return y + self.bias if self.bias is not None else y


@dataclass
class OGNOutput:
    """What :class:`OGNDecoder` returns: per level the cells it held and their class logits.

    Introduced in ``lectures/04_octrees.ipynb``.  ``logits[l]`` ``(N_l, 3)`` (at the voxel level
    the mixed logit is ``-inf``), ``cells[l]`` ``(N_l, 4)`` ``(b, x, y, z)`` at resolution
    ``resolutions[l]``, ``expanded[l]`` ``(N_l,)`` which cells were expanded, ``targets[l]`` the
    ground-truth states when a target octree was given, ``mode`` the propagation mode.
    """

    logits: list[Tensor]
    cells: list[Tensor]
    expanded: list[Tensor]
    resolutions: list[int]
    batch_size: int
    tree_depth: int
    mode: str
    targets: list[Tensor] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def resolution(self) -> int:
        return self.resolutions[-1]

    @property
    def num_cells(self) -> list[int]:
        """Cells held at each level (the decoder's work and memory)."""
        return [int(c.shape[0]) for c in self.cells]

    def predicted_states(self, level: int) -> Tensor:
        """``(N_l,)`` argmax class of every cell of ``level``."""
        return self.logits[level].argmax(-1)

    def to_octree(self) -> Octree:
        """The decoded shape as an :class:`Octree`: every cell that was not expanded is a leaf, full
        when its full logit beats its empty logit."""
        D = self.tree_depth
        bs, origins, sizes, vals = [], [], [], []
        for lev, (lg, c, ex) in enumerate(zip(self.logits, self.cells, self.expanded)):
            keep = ~ex
            s = 2 ** (D - lev)
            bs.append(c[keep, 0])
            origins.append(c[keep, 1:] * s)
            sizes.append(torch.full_like(c[keep, 0], s))
            vals.append((lg[keep, FULL] > lg[keep, EMPTY]).to(torch.float32)[:, None])
        return octree_from_boxes(self.batch_size, self.resolution, D, torch.cat(bs), torch.cat(origins),
                                 torch.cat(sizes), torch.cat(vals))

    def occupancy(self) -> Tensor:
        """The decoded dense occupancy ``(B, R, R, R)`` bool."""
        return self.to_octree().to_dense() > 0.5


def _check_latent(z: Any, dim: int, who: str) -> Tensor:
    if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != dim or not z.is_floating_point():
        raise ValueError(f"{who} expects float latent codes (B, {dim}), got "
                         f"{tuple(getattr(z, 'shape', ())) or type(z).__name__}")
    if z.shape[0] == 0:
        raise ValueError(f"{who} got an empty batch")
    return z


class OGNDecoder(nn.Module):
    """Latent code ``(B, latent_dim)`` -> an octree of resolution ``R``, predicted level by level.

    Introduced in ``lectures/04_octrees.ipynb``.

    * dense part: Linear + ReLU to a ``min(4, G)^3`` seed grid, ConvTranspose3d(4, 2, 1) + BN + ReLU
      stages up to the ``G^3`` grid of tree roots (``G = R / 2^tree_depth``), a Conv3d(3) + ReLU,
      and a 1x1 head giving the 3 classes of every root cell (level 0);
    * sparse part, levels ``1 .. tree_depth``: children of the expanded cells get
      ``ReLU(W_child f_parent + b)`` (one ``C_{l-1} -> 8 C_l`` linear map), then (where
      ``conv_levels`` says) ``ReLU`` of a :class:`SparseConv3d` among the level's cells, residually,
      and a linear head with 3 classes (2 at the voxel level).

    ``channels`` ``(C_0, ..., C_D)``: features per cell at each level (default halving from 64).
    ``conv_levels``: the levels with a sparse convolution (default ``1 .. D - 1``: the voxel level,
    which holds most cells, predicts each child from its parent alone, like the last transposed
    convolution of a dense decoder).
    ``forward(z, target=None, mode=PROP_PRED)``; ``mode=PROP_KNOWN`` needs the target
    :class:`Octree` (its structure chooses the expanded cells).  ``max_cells`` bounds the cells of
    one level in ``PROP_PRED`` mode (an untrained network may call everything mixed): beyond it
    only the most clearly mixed cells are expanded, with a warning.
    """

    def __init__(self, latent_dim: int, resolution: int, tree_depth: int = 3, channels: tuple[int, ...] | None = None,
                 conv_levels: tuple[int, ...] | None = None, max_cells: int = 4_000_000) -> None:
        super().__init__()
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"OGNDecoder: latent_dim must be an int >= 1, got {latent_dim!r}")
        if isinstance(tree_depth, bool) or not isinstance(tree_depth, int) or not 1 <= tree_depth <= 4:
            raise ValueError(f"OGNDecoder: tree_depth must be an int in [1, 4], got {tree_depth!r}")
        R, D = int(resolution), int(tree_depth)
        if R % 2 ** D or R // 2 ** D < 1 or (R // 2 ** D) & (R // 2 ** D - 1):
            raise ValueError(f"OGNDecoder: resolution must be 2^tree_depth = {2 ** D} times a power of two, got {R}")
        self.latent_dim, self.resolution, self.tree_depth = int(latent_dim), R, D
        self.grid = R // 2 ** D
        chans = tuple(channels) if channels is not None else tuple(max(4, 64 // 2 ** i) for i in range(D + 1))
        if len(chans) != D + 1 or min(chans) < 1:
            raise ValueError(f"OGNDecoder: channels must give {D + 1} positive widths (levels 0..{D}), got {chans}")
        self.channels = chans
        self.conv_levels = tuple(range(1, D)) if conv_levels is None else tuple(conv_levels)
        self.max_cells = int(max_cells)
        self.seed_res = min(4, self.grid)
        c0 = chans[0]
        self.seed = nn.Sequential(nn.Linear(self.latent_dim, c0 * self.seed_res ** 3), nn.ReLU())
        up: list[nn.Module] = []
        r = self.seed_res
        while r < self.grid:
            up += [nn.ConvTranspose3d(c0, c0, 4, stride=2, padding=1, bias=False), nn.BatchNorm3d(c0), nn.ReLU()]
            r *= 2
        up += [nn.Conv3d(c0, c0, 3, padding=1), nn.ReLU()]
        self.dense = nn.Sequential(*up)
        self.head0 = nn.Conv3d(c0, 3, 1)
        self.child = nn.ModuleList([nn.Linear(chans[lev - 1], 8 * chans[lev]) for lev in range(1, D + 1)])
        self.conv = nn.ModuleDict({str(lev): SparseConv3d(chans[lev], chans[lev]) for lev in self.conv_levels})
        self.heads = nn.ModuleList([nn.Linear(chans[lev], 3 if lev < D else 2) for lev in range(1, D + 1)])

    def forward(self, z: Tensor, target: Octree | None = None, mode: str = PROP_PRED) -> OGNOutput:
        """Decode ``z``; see the class docstring.  A ``target`` also fills ``out.targets`` (for the loss)."""
        z = _check_latent(z, self.latent_dim, "OGNDecoder")
        if mode not in (PROP_KNOWN, PROP_PRED):
            raise ValueError(f"mode must be PROP_KNOWN ({PROP_KNOWN!r}) or PROP_PRED ({PROP_PRED!r}), got {mode!r}")
        if target is not None:
            if not isinstance(target, Octree):
                raise TypeError(f"target must be an Octree (course_lib.geometry.build_octree), got {type(target).__name__}")
            if (target.resolution, target.tree_depth, target.batch_size) != (self.resolution, self.tree_depth, z.shape[0]):
                raise ValueError(f"target octree (resolution {target.resolution}, depth {target.tree_depth}, batch "
                                 f"{target.batch_size}) does not fit the decoder (resolution {self.resolution}, depth "
                                 f"{self.tree_depth}, batch {z.shape[0]})")
            if target.device != z.device:
                raise ValueError(f"target is on {target.device} but z is on {z.device}")
        elif mode == PROP_KNOWN:
            raise ValueError("mode PROP_KNOWN propagates the ground-truth structure: pass target=<Octree>")
        B, G, D, dev = z.shape[0], self.grid, self.tree_depth, z.device
        m = self.seed_res
        grid = self.dense(self.seed(z).view(B, self.channels[0], m, m, m))        # (B, C0, G, G, G)
        logit0 = self.head0(grid)
        feats = grid.permute(0, 2, 3, 4, 1).reshape(B * G ** 3, -1)
        logits = [logit0.permute(0, 2, 3, 4, 1).reshape(B * G ** 3, 3)]
        ar = torch.arange(G, device=dev)
        cells = [torch.stack(torch.meshgrid(torch.arange(B, device=dev), ar, ar, ar, indexing="ij"), -1).reshape(-1, 4)]
        for name, t in (("root grid", grid), ("cells", cells[0]), ("logits", logit0)):
            _record(name, t, G)
        targets: list[Tensor] | None = [] if target is not None else None
        expanded: list[Tensor] = []
        for lev in range(D + 1):
            if targets is not None:
                targets.append(target.state_at(lev, cells[lev]))
            if lev == D:
                expanded.append(torch.zeros(cells[lev].shape[0], dtype=torch.bool, device=dev))
                break
            if mode == PROP_KNOWN:
                mask = targets[lev] == MIXED
            else:
                lg = logits[lev].detach()
                mask = lg.argmax(-1) == MIXED
                if int(mask.sum()) * 8 > self.max_cells:
                    keep = self.max_cells // 8
                    warnings.warn(f"OGNDecoder: level {lev + 1} would hold {int(mask.sum()) * 8} cells (> max_cells="
                                  f"{self.max_cells}); expanding only the {keep} most clearly mixed cells "
                                  "(is the network trained?)", RuntimeWarning, stacklevel=2)
                    margin = lg[:, MIXED] - lg[:, :MIXED].max(-1).values
                    top = torch.topk(torch.where(mask, margin, torch.full_like(margin, -float("inf"))), keep).indices
                    mask = torch.zeros_like(mask)
                    mask[top] = True
            expanded.append(mask)
            children, parent = expand_cells(cells[lev], mask)
            c = self.channels[lev + 1]
            h = self.child[lev](feats[mask]).view(-1, 8, c).reshape(-1, c)         # child k of parent p at 8p + k
            h = F.relu(h)
            res = G * 2 ** (lev + 1)
            if str(lev + 1) in self.conv and children.shape[0]:
                h = h + F.relu(self.conv[str(lev + 1)](h, children, res))
            logit = self.heads[lev](h)
            if lev + 1 == D:
                logit = torch.cat([logit, logit.new_full((logit.shape[0], 1), float("-inf"))], 1)
            feats = h
            cells.append(children)
            logits.append(logit)
            for name, t in (("cells", children), ("features", h), ("logits", logit)):
                _record(name, t, res)
            del parent
        return OGNOutput(logits, cells, expanded, [G * 2 ** lev for lev in range(D + 1)], B, D, mode, targets)


def ogn_loss(out: OGNOutput, target: Octree | None = None, level_weights: tuple[float, ...] | None = None) -> dict[str, Tensor]:
    """Sum over levels of the mean cross-entropy of the cells' classes against the ground truth.

    Introduced in ``lectures/04_octrees.ipynb``.  Targets come from ``out.targets`` (filled when the
    decoder got ``target``) or from ``target.state_at``.  Returns ``{"loss": ..., "level_0": ..., ...}``
    (the per-level terms detached, for the history); a level without cells contributes 0.
    At the voxel level the classes are empty/full only.
    """
    if out.targets is None and target is None:
        raise ValueError("ogn_loss needs the ground truth: decode with target=... or pass target")
    D = out.tree_depth
    w = level_weights or (1.0,) * (D + 1)
    if len(w) != D + 1:
        raise ValueError(f"level_weights must have {D + 1} entries, got {len(w)}")
    total = out.logits[0].new_zeros(())
    parts: dict[str, Tensor] = {}
    for lev, (lg, c) in enumerate(zip(out.logits, out.cells)):
        t = out.targets[lev] if out.targets is not None else target.state_at(lev, c)
        if lg.shape[0] == 0:
            parts[f"level_{lev}"] = total.detach() * 0
            continue
        term = F.cross_entropy(lg[:, :2] if lev == D else lg, t)
        parts[f"level_{lev}"] = term.detach()
        total = total + w[lev] * term
    return {"loss": total, **parts}


class OGNAutoEncoder(nn.Module):
    """Chapter 03's :class:`~course_lib.models.voxels.VoxelEncoder` followed by an :class:`OGNDecoder`.

    Introduced in ``lectures/04_octrees.ipynb``.  ``forward(vox (B, R, R, R), target=None,
    mode=PROP_PRED)`` -> :class:`OGNOutput`.  The encoder reads the dense grid (as in chapter 03);
    only the decoder is octree-based, which is what OGN is about.
    """

    def __init__(self, resolution: int, latent_dim: int = 128, encoder_channels: int = 16, tree_depth: int = 3,
                 channels: tuple[int, ...] | None = None, conv_levels: tuple[int, ...] | None = None) -> None:
        super().__init__()
        from .voxels import VoxelEncoder

        self.resolution = int(resolution)
        self.encoder = VoxelEncoder(self.resolution, latent_dim, encoder_channels)
        self.decoder = OGNDecoder(latent_dim, self.resolution, tree_depth, channels, conv_levels)

    def forward(self, vox: Tensor, target: Octree | None = None, mode: str = PROP_PRED) -> OGNOutput:
        return self.decoder(self.encoder(vox), target=target, mode=mode)


class OGNSingleView(nn.Module):
    """One RGB view -> an octree: chapter 02's ResNet encoder followed by an :class:`OGNDecoder`.

    Introduced in ``lectures/04_octrees.ipynb`` (the seed's OGN figure: shapes from a single image).
    ``forward(rgb (B, 3, H, W), target=None, mode=PROP_PRED)`` -> :class:`OGNOutput`; the image encoder is
    chapter 03's single-view one (:class:`~course_lib.models.encoders.ResNetEncoder`, ``stem="small"``), so the
    only difference from chapter 03's image -> voxels model is the decoder.
    """

    def __init__(self, resolution: int, latent_dim: int = 128, width: int = 16, tree_depth: int = 3,
                 channels: tuple[int, ...] | None = None, conv_levels: tuple[int, ...] | None = None,
                 layers: tuple[int, ...] = (1, 1, 1, 1)) -> None:
        super().__init__()
        from .encoders import ResNetEncoder

        self.resolution = int(resolution)
        self.encoder = ResNetEncoder(in_channels=3, layers=layers, width=width, out_dim=latent_dim)
        self.decoder = OGNDecoder(latent_dim, self.resolution, tree_depth, channels, conv_levels)

    def forward(self, rgb: Tensor, target: Octree | None = None, mode: str = PROP_PRED) -> OGNOutput:
        if rgb.dim() != 4 or rgb.shape[1] != 3:
            raise ValueError(f"OGNSingleView expects RGB images (B, 3, H, W), got {tuple(rgb.shape)}")
        return self.decoder(self.encoder(rgb).global_feature, target=target, mode=mode)
