"""Hybrid grid-octrees (OctNet): a regular grid of shallow octrees over an ``R^3`` occupancy grid.

Introduced in ``lectures/04_octrees.ipynb``.

Layout (the one of OctNet, Riegler et al., CVPR 2017, in plain PyTorch)
------------------------------------------------------------------------
An ``R^3`` grid is cut into ``G^3`` blocks of ``(2^D)^3`` voxels (``D = tree_depth``,
``G = R / 2^D``); each block is one shallow octree.  Level ``l`` of a tree (``0 <= l <= D``)
has cells of side ``2^(D - l)`` voxels, so the *level-l grid* of the whole volume has
resolution ``G 2^l`` (level 0 = the grid of tree roots, level ``D`` = the voxels).

* **Structure**: each tree is a bit string in breadth-first ("heap") order: bit 0 says
  whether the root is split, bits ``1..8`` the 8 children of the root, bits ``9..72`` the 64
  grandchildren (``D = 3``: 1 + 8 + 64 = 73 bits); the children of bit ``i`` are bits
  ``8 i + 1 .. 8 i + 8``.  A split bit is 1 exactly when the cell is *mixed* (holds both full
  and empty voxels).  Bits are packed in ``ceil(n_bits / 32)`` int32 words per tree (OctNet
  pads the 73 bits to 4 words, we keep 3).  The 8 children of a cell are ordered by
  ``4 dx + 2 dy + dz`` (index order x, y, z as everywhere in the course), so within one
  level the cells of a tree are in Morton (Z-curve) order.
* **Values**: one value vector per *leaf* (a cell that is not split), in the order of the
  leaves' heap index, tree after tree (trees in ``(b, x, y, z)`` row-major order), plus
  OctNet's ``prefix_leafs`` (the number of leaves before each tree) for random access.

:attr:`Octree.nbytes` counts exactly these three arrays.  The cell states used by OGN
(:data:`EMPTY`, :data:`FULL`, :data:`MIXED` = 0, 1, 2) are read from the structure and the
leaf values (:meth:`Octree.states`, :meth:`Octree.cell_states`, :meth:`Octree.state_at`).

Operations for learning (features on leaves): :class:`OctreeConv3d` (a 3x3x3 convolution
computed once per leaf through a structural sparse operator, see its docstring),
:func:`octree_pool`, :func:`octree_unpool`, :func:`subdivide`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "EMPTY", "FULL", "MIXED", "STATE_NAMES", "Octree", "build_octree", "octree_from_boxes",
    "octree_from_sdf", "octree_from_mesh", "dense_states", "morton_encode", "morton_decode",
    "conv_operator", "OctreeConv3d", "octree_pool", "octree_unpool", "subdivide",
]

EMPTY, FULL, MIXED = 0, 1, 2
"""OGN's class ids of a cell: all voxels empty, all full, or both (only these are subdivided)."""
STATE_NAMES = ("empty", "full", "mixed")

_MAX_DEPTH = 4


# --- small helpers ------------------------------------------------------------------

def _n_bits(depth: int) -> int:
    """Split bits of a tree of depth ``depth``: the nodes of levels ``0 .. depth - 1``."""
    return (8 ** depth - 1) // 7


def _level_offset(level: int) -> int:
    """Heap index of the first cell of ``level`` (0, 1, 9, 73, ...)."""
    return (8 ** level - 1) // 7


def morton_encode(x: Tensor, y: Tensor, z: Tensor, bits: int) -> Tensor:
    """Interleave the ``bits`` low bits of ``x, y, z`` (x most significant in each triple).

    Introduced in ``lectures/04_octrees.ipynb``.  The code of a cell of a tree's level ``l``
    grid (``bits = l``) is its rank in the tree's breadth-first order within that level.
    """
    code = torch.zeros_like(x)
    for i in range(bits):
        code = code | (((x >> i) & 1) << (3 * i + 2)) | (((y >> i) & 1) << (3 * i + 1)) | (((z >> i) & 1) << (3 * i))
    return code


def morton_decode(code: Tensor, bits: int) -> tuple[Tensor, Tensor, Tensor]:
    """Inverse of :func:`morton_encode`."""
    x, y, z = torch.zeros_like(code), torch.zeros_like(code), torch.zeros_like(code)
    for i in range(bits):
        x = x | (((code >> (3 * i + 2)) & 1) << i)
        y = y | (((code >> (3 * i + 1)) & 1) << i)
        z = z | (((code >> (3 * i)) & 1) << i)
    return x, y, z


def _pack_bits(flags: Tensor) -> Tensor:
    """``(T, n)`` bool -> ``(T, ceil(n / 32))`` int32 words (bit ``i`` of a tree in word ``i // 32``)."""
    T, n = flags.shape
    W = max(1, math.ceil(n / 32))
    pad = torch.zeros(T, W * 32, dtype=torch.int64, device=flags.device)
    pad[:, :n] = flags.to(torch.int64)
    weights = (torch.ones(32, dtype=torch.int64, device=flags.device) << torch.arange(32, device=flags.device))
    words = (pad.view(T, W, 32) * weights).sum(-1)
    words = torch.where(words >= 2**31, words - 2**32, words)  # two's complement into int32
    return words.to(torch.int32)


def _test_bits(words: Tensor, tree: Tensor, index: Tensor) -> Tensor:
    """Bit ``index`` of tree ``tree`` (vectors of equal length) -> bool."""
    w = words[tree, index // 32].to(torch.int64) & 0xFFFFFFFF
    return ((w >> (index % 32)) & 1).bool()


def _check_depth(tree_depth: Any) -> int:
    if isinstance(tree_depth, bool) or not isinstance(tree_depth, int) or not 1 <= tree_depth <= _MAX_DEPTH:
        raise ValueError(f"tree_depth must be an int in [1, {_MAX_DEPTH}] (OctNet uses 3), got {tree_depth!r}")
    return tree_depth


def _check_occupancy(occupancy: Any, tree_depth: int) -> Tensor:
    if not isinstance(occupancy, Tensor):
        raise TypeError(f"build_octree expects a torch.Tensor occupancy grid (R, R, R) or (B, R, R, R), "
                        f"got {type(occupancy).__name__}")
    occ = occupancy
    if occ.dim() == 3:
        occ = occ[None]
    if occ.dim() != 4 or not (occ.shape[1] == occ.shape[2] == occ.shape[3]):
        raise ValueError(f"build_octree expects a cubic grid (R, R, R) or (B, R, R, R), got shape {tuple(occupancy.shape)}")
    if occ.numel() == 0:
        raise ValueError(f"build_octree got an empty grid of shape {tuple(occupancy.shape)}")
    R, s = occ.shape[1], 2 ** tree_depth
    if R % s:
        raise ValueError(f"the resolution R={R} must be a multiple of 2^tree_depth = {s} "
                         f"(a grid of shallow octrees of depth {tree_depth}); pad the grid or lower tree_depth")
    if occ.dtype != torch.bool:
        if occ.is_complex() or not ((occ == 0) | (occ == 1)).all():
            raise ValueError("build_octree expects an occupancy grid: bool, or numbers all equal to 0 or 1")
        occ = occ != 0
    return occ


# --- the data structure -----------------------------------------------------------------

@dataclass
class Leaves:
    """Per-leaf geometry of an :class:`Octree` (derived from the bits, not stored)."""

    tree: Tensor    # (N,) tree index
    level: Tensor   # (N,) level 0..D
    code: Tensor    # (N,) Morton code within the tree's level grid
    batch: Tensor   # (N,) batch index
    cell: Tensor    # (N, 3) coordinates in the level-``level`` grid of the whole volume
    origin: Tensor  # (N, 3) first voxel, in the finest grid
    size: Tensor    # (N,) side in voxels, 2^(D - level)


@dataclass
class Octree:
    """A batch of grid-octrees: OctNet's three arrays plus the sizes that give them meaning.

    Introduced in ``lectures/04_octrees.ipynb``.  Build one with :func:`build_octree` (from an
    occupancy grid), :func:`octree_from_sdf`, :func:`octree_from_mesh` or
    :func:`octree_from_boxes`.

    Attributes: ``bits`` ``(T, W)`` int32 (the packed split bits of the ``T = B G^3`` trees),
    ``prefix_leafs`` ``(T,)`` int32, ``values`` ``(N, C)`` (one row per leaf),
    ``batch_size`` ``B``, ``grid`` ``G``, ``tree_depth`` ``D``.
    """

    bits: Tensor
    prefix_leafs: Tensor
    values: Tensor
    batch_size: int
    grid: int
    tree_depth: int
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    # -- sizes ----------------------------------------------------------------------
    @property
    def resolution(self) -> int:
        """``R = G 2^D``, the side of the finest (voxel) grid."""
        return self.grid * 2 ** self.tree_depth

    @property
    def n_trees(self) -> int:
        return self.batch_size * self.grid ** 3

    @property
    def num_cells(self) -> int:
        """Number of leaf cells (the cells that hold a value)."""
        return int(self.values.shape[0])

    @property
    def channels(self) -> int:
        return int(self.values.shape[1])

    @property
    def device(self) -> torch.device:
        return self.values.device

    @property
    def nbytes(self) -> int:
        """Bytes really held: split bits + ``prefix_leafs`` + leaf values (what OctNet stores)."""
        return sum(t.numel() * t.element_size() for t in (self.bits, self.prefix_leafs, self.values))

    def dense_nbytes(self, dtype: torch.dtype = torch.float32) -> int:
        """Bytes of the dense ``(B, C, R, R, R)`` grid of ``dtype`` holding the same values."""
        return self.batch_size * self.channels * self.resolution ** 3 * torch.empty((), dtype=dtype).element_size()

    def with_values(self, values: Tensor) -> Octree:
        """The same structure with new leaf values ``(N, C')`` (e.g. the output of a layer)."""
        if not isinstance(values, Tensor) or values.dim() != 2 or values.shape[0] != self.num_cells:
            raise ValueError(f"values must be a tensor (num_cells={self.num_cells}, C), "
                             f"got {tuple(getattr(values, 'shape', ()))}")
        out = Octree(self.bits, self.prefix_leafs, values, self.batch_size, self.grid, self.tree_depth)
        out._cache = self._cache  # same structure, same derived geometry
        return out

    def __repr__(self) -> str:
        return (f"Octree(batch={self.batch_size}, resolution={self.resolution}, grid={self.grid}^3 trees of depth "
                f"{self.tree_depth}, leaves={self.num_cells}, channels={self.channels}, nbytes={self.nbytes})")

    # -- traversal ---------------------------------------------------------------------
    def _tree_coords(self, tree: Tensor) -> tuple[Tensor, Tensor]:
        G = self.grid
        b = tree // G ** 3
        r = tree % G ** 3
        xyz = torch.stack([r // (G * G), (r // G) % G, r % G], dim=-1)
        return b, xyz

    def nodes(self, level: int) -> tuple[Tensor, Tensor, Tensor]:
        """The cells that exist at ``level``: ``(tree, code, split)`` in (tree, Morton) order.

        A cell exists when every ancestor is split; it is split when it is mixed.
        """
        return self._walk(self._check_level(level))[level]

    def _walk(self, level: int) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Breadth-first walk of all trees down to ``level``: per level ``(tree, code, split)``."""
        dev = self.bits.device
        tree = torch.arange(self.n_trees, device=dev)
        code = torch.zeros_like(tree)
        out = []
        for lev in range(level + 1):
            split = (_test_bits(self.bits, tree, _level_offset(lev) + code) if lev < self.tree_depth
                     else torch.zeros_like(tree, dtype=torch.bool))
            out.append((tree, code, split))
            if lev < level:
                n = int(split.sum())
                tree = tree[split].repeat_interleave(8)
                code = (code[split] * 8).repeat_interleave(8) + torch.arange(8, device=dev).repeat(n)
        return out

    def leaves(self) -> Leaves:
        """Every leaf's tree, level, Morton code and box, in storage order.

        Derived from the bits once and cached (the cache is not part of :attr:`nbytes`: it is
        what any traversal would recompute: eleven int64 per leaf, the tree, level, code, batch and
        size and the three coordinates of ``cell`` and of ``origin``;
        :func:`course_lib.experiments.octrees.memory_account` counts it).
        """
        if "leaves" not in self._cache:
            self._cache["leaves"] = self._compute_leaves()
        return self._cache["leaves"]

    def _compute_leaves(self) -> Leaves:
        D = self.tree_depth
        parts = []
        for lev, (tree, code, split) in enumerate(self._walk(D)):
            keep = ~split
            parts.append((tree[keep], torch.full_like(tree[keep], lev), code[keep]))
        tree = torch.cat([p[0] for p in parts])
        level = torch.cat([p[1] for p in parts])
        code = torch.cat([p[2] for p in parts])
        heap = (8 ** level - 1) // 7 + code
        order = torch.argsort(tree * _n_bits(D + 1) + heap, stable=True)
        tree, level, code = tree[order], level[order], code[order]
        return self._leaf_geometry(tree, level, code)

    def _leaf_geometry(self, tree: Tensor, level: Tensor, code: Tensor) -> Leaves:
        D = self.tree_depth
        b, txyz = self._tree_coords(tree)
        lx, ly, lz = morton_decode(code, D)  # decoding with D bits is exact for any level <= D
        local = torch.stack([lx, ly, lz], dim=-1)
        cell = (txyz << level[:, None]) + local
        size = 1 << (D - level)
        return Leaves(tree, level, code, b, cell, cell * size[:, None], size)

    def _check_level(self, level: Any) -> int:
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= self.tree_depth:
            raise ValueError(f"level must be an int in [0, tree_depth={self.tree_depth}], got {level!r}")
        return level

    def _leaf_keys(self) -> Tensor:
        if "keys" not in self._cache:
            lv = self.leaves()
            self._cache["keys"] = lv.tree * _n_bits(self.tree_depth + 1) + (8 ** lv.level - 1) // 7 + lv.code
        return self._cache["keys"]

    def locate(self, batch: Tensor, voxel: Tensor) -> Tensor:
        """Index of the leaf holding voxel ``voxel`` ``(Q, 3)`` (finest-grid coordinates) of item ``batch`` ``(Q,)``.

        Walks each query down its tree (no dense grid is built).
        """
        D, G = self.tree_depth, self.grid
        voxel = voxel.to(torch.int64)
        t = batch.to(torch.int64) * G ** 3
        tv = voxel >> D
        tree = t + tv[:, 0] * G * G + tv[:, 1] * G + tv[:, 2]
        local = voxel & (2 ** D - 1)
        level = torch.full_like(tree, D)
        done = torch.zeros_like(tree, dtype=torch.bool)
        code_at = torch.zeros_like(tree)
        for lev in range(D):
            sub = local >> (D - lev)
            code = morton_encode(sub[:, 0], sub[:, 1], sub[:, 2], lev)
            split = _test_bits(self.bits, tree, _level_offset(lev) + code)
            new = ~done & ~split
            level = torch.where(new, torch.full_like(level, lev), level)
            code_at = torch.where(new, code, code_at)
            done = done | new
        code_d = morton_encode(local[:, 0], local[:, 1], local[:, 2], D)
        code_at = torch.where(done, code_at, code_d)
        key = tree * _n_bits(D + 1) + (8 ** level - 1) // 7 + code_at
        keys = self._leaf_keys()
        idx = torch.searchsorted(keys, key)
        return idx.clamp_max(keys.numel() - 1)

    # -- dense views -----------------------------------------------------------------
    def to_dense(self, level: int | None = None) -> Tensor:
        """The dense grid of the leaf values: ``(B, R, R, R)`` for one channel, else ``(B, C, R, R, R)``.

        Exact: every voxel gets the value of the leaf that contains it.  With ``level`` the
        grid stops at that level's resolution (finer leaves are left out: use it only for
        levels at or below every leaf of interest, as :meth:`states` does).  Differentiable
        in the values.
        """
        D = self.tree_depth
        level = D if level is None else self._check_level(level)
        lv = self.leaves()
        B, C, G = self.batch_size, self.channels, self.grid
        out = self.values.new_zeros(B, C, G, G, G)
        for lev in range(level + 1):
            if lev:
                out = out.repeat_interleave(2, 2).repeat_interleave(2, 3).repeat_interleave(2, 4)
            m = lv.level == lev
            if m.any():
                c = lv.cell[m]
                out = _put(out, lv.batch[m], c, self.values[m])
        return out[:, 0] if C == 1 else out

    def _binary_values(self) -> Tensor:
        v = self.values
        if v.shape[1] != 1 or not ((v == 0) | (v == 1)).all():
            raise ValueError("cell states need an occupancy octree (one channel, values 0 or 1)")
        return v[:, 0] != 0

    def states(self, level: int) -> Tensor:
        """Dense ``(B, r, r, r)`` long grid of the cell states at ``level`` (``r = G 2^level``).

        :data:`EMPTY`, :data:`FULL` or :data:`MIXED` for every cell of the level's grid, whether
        it exists in the tree (then mixed = split) or lies inside a coarser leaf (then it has that
        leaf's state).  Needs an occupancy octree.
        """
        level = self._check_level(level)
        full = self._binary_values()
        lv = self.leaves()
        B, G = self.batch_size, self.grid
        out = torch.zeros(B, 1, G, G, G, dtype=torch.long, device=self.device)
        for lev in range(level + 1):
            if lev:
                out = out.repeat_interleave(2, 2).repeat_interleave(2, 3).repeat_interleave(2, 4)
            m = lv.level == lev
            out = _put(out, lv.batch[m], lv.cell[m], full[m].long()[:, None])
            if lev == level and lev < self.tree_depth:
                tree, code, split = self.nodes(lev)
                cells = self._cells_of(tree[split], code[split], lev)
                out = _put(out, cells[:, 0], cells[:, 1:], torch.full((len(cells), 1), MIXED, device=self.device))
        return out[:, 0]

    def _cells_of(self, tree: Tensor, code: Tensor, level: int) -> Tensor:
        b, txyz = self._tree_coords(tree)
        x, y, z = morton_decode(code, level)
        cell = (txyz << level) + torch.stack([x, y, z], dim=-1)
        return torch.cat([b[:, None], cell], dim=1)

    def cells(self, level: int) -> Tensor:
        """``(N_l, 4)`` long ``(b, x, y, z)`` of the cells that exist at ``level`` (level-grid coordinates)."""
        tree, code, _ = self.nodes(self._check_level(level))
        return self._cells_of(tree, code, level)

    def cell_states(self, level: int) -> Tensor:
        """``(N_l,)`` states of the cells that exist at ``level``, in the order of :meth:`cells`."""
        return self.state_at(level, self.cells(level))

    def state_at(self, level: int, cells: Tensor) -> Tensor:
        """States of arbitrary cells ``(Q, 4)`` ``(b, x, y, z)`` of the level-``level`` grid (sparse lookup).

        Used as OGN's targets: a predicted cell that does not exist in the ground-truth tree lies
        inside a homogeneous leaf and gets that leaf's state.
        """
        level = self._check_level(level)
        full = self._binary_values()
        if cells.numel() == 0:
            return torch.zeros(0, dtype=torch.long, device=self.device)
        D = self.tree_depth
        voxel = cells[:, 1:].to(torch.int64) << (D - level)
        idx = self.locate(cells[:, 0], voxel)
        leaf_level = self.leaves().level[idx]
        st = full[idx].long()
        return torch.where(leaf_level > level, torch.full_like(st, MIXED), st)


def _put(out: Tensor, b: Tensor, cell: Tensor, vals: Tensor) -> Tensor:
    """``out[b, :, x, y, z] = vals`` out of place (keeps autograd)."""
    if b.numel() == 0:
        return out
    B, C, r = out.shape[0], out.shape[1], out.shape[2]
    flat = out.permute(0, 2, 3, 4, 1).reshape(-1, C)
    lin = ((b * r + cell[:, 0]) * r + cell[:, 1]) * r + cell[:, 2]
    flat = flat.index_copy(0, lin, vals.to(flat.dtype))
    return flat.view(B, r, r, r, C).permute(0, 4, 1, 2, 3)


# --- construction ---------------------------------------------------------------------------

def dense_states(occupancy: Tensor, resolution: int) -> Tensor:
    """Brute-force states of every cell of the ``resolution^3`` grid over an occupancy ``(B, R, R, R)``.

    Introduced in ``lectures/04_octrees.ipynb``: empty when no voxel of the cell is full, full
    when all are, mixed otherwise.  ``R`` must be a multiple of ``resolution``.
    """
    occ = occupancy if occupancy.dim() == 4 else occupancy[None]
    R = occ.shape[-1]
    if resolution < 1 or R % resolution:
        raise ValueError(f"resolution must divide R={R}, got {resolution}")
    s = R // resolution
    v = occ.bool().reshape(occ.shape[0], resolution, s, resolution, s, resolution, s)
    anyv = v.any(6).any(4).any(2)
    allv = v.all(6).all(4).all(2)
    return torch.where(allv, FULL, torch.where(anyv, MIXED, EMPTY)).long()


def _per_tree_morton(grid: Tensor, G: int, level: int) -> Tensor:
    """``(B, G 2^l, G 2^l, G 2^l)`` -> ``(B G^3, 8^l)``: each tree's cells in Morton order."""
    B = grid.shape[0]
    s = 2 ** level
    x = grid.reshape(B, G, s, G, s, G, s).permute(0, 1, 3, 5, 2, 4, 6).reshape(B * G ** 3, *([2] * (3 * level)))
    if level == 0:
        return x.reshape(B * G ** 3, 1)
    # dims 1..lev are the bits of x (most significant first), then those of y, then z
    perm = [0]
    for i in range(level):
        perm += [1 + i, 1 + level + i, 1 + 2 * level + i]
    return x.permute(*perm).reshape(B * G ** 3, 8 ** level)


def build_octree(occupancy: Tensor, tree_depth: int = 3) -> Octree:
    """Build the grid-octree of an occupancy grid ``(R, R, R)`` or ``(B, R, R, R)`` (bool or 0/1).

    Introduced in ``lectures/04_octrees.ipynb``.  ``R`` must be a multiple of ``2^tree_depth``
    (a ValueError says so otherwise).  A cell is split exactly when it is mixed; every leaf
    holds its (homogeneous) occupancy as a float32 value, so :meth:`Octree.to_dense`
    reproduces the input exactly.  Runs on the input's device.
    """
    D = _check_depth(tree_depth)
    occ = _check_occupancy(occupancy, D)
    B, R = occ.shape[0], occ.shape[1]
    G = R // 2 ** D
    # any / all of each cell, finest to coarsest
    anys, alls = [occ], [occ]
    for _ in range(D):
        a, b = anys[0], alls[0]
        r = a.shape[1] // 2
        anys.insert(0, a.reshape(B, r, 2, r, 2, r, 2).any(6).any(4).any(2))
        alls.insert(0, b.reshape(B, r, 2, r, 2, r, 2).all(6).all(4).all(2))
    flags = [_per_tree_morton(anys[lev] & ~alls[lev], G, lev) for lev in range(D)]
    bits = _pack_bits(torch.cat(flags, dim=1))
    tree0 = Octree(bits, torch.zeros(B * G ** 3, dtype=torch.int32, device=occ.device),
                   torch.zeros(0, 1, device=occ.device), B, G, D)
    lv = tree0.leaves()
    vals = torch.empty(lv.tree.shape[0], dtype=torch.float32, device=occ.device)
    for lev in range(D + 1):
        m = lv.level == lev
        c = lv.cell[m]
        vals[m] = alls[lev][lv.batch[m], c[:, 0], c[:, 1], c[:, 2]].float()
    counts = torch.bincount(lv.tree, minlength=B * G ** 3)
    prefix = (torch.cumsum(counts, 0) - counts).to(torch.int32)
    out = Octree(bits, prefix, vals[:, None], B, G, D)
    out._cache = tree0._cache
    return out


def octree_from_boxes(batch_size: int, resolution: int, tree_depth: int, batch: Tensor, origin: Tensor,
                      size: Tensor, values: Tensor) -> Octree:
    """An octree from its leaves given as cubes: item ``batch`` ``(N,)``, first voxel ``origin`` ``(N, 3)``,
    side ``size`` ``(N,)`` (powers of two, aligned), values ``(N, C)``.

    Introduced in ``lectures/04_octrees.ipynb`` (pooling, unpooling and the OGN decoder's output
    use it).  Boxes larger than one tree are cut into trees.  The boxes must tile every item's
    ``R^3`` grid exactly (a ValueError says so otherwise).
    """
    D = _check_depth(tree_depth)
    R = int(resolution)
    if R % 2 ** D:
        raise ValueError(f"the resolution R={R} must be a multiple of 2^tree_depth = {2 ** D}")
    G, S = R // 2 ** D, 2 ** D
    dev = values.device
    batch, origin, size = batch.to(torch.int64), origin.to(torch.int64), size.to(torch.int64)
    if values.dim() != 2 or values.shape[0] != batch.shape[0]:
        raise ValueError(f"values must be (N, C) with N = {batch.shape[0]} boxes, got {tuple(values.shape)}")
    big = size > S
    if big.any():
        k = size[big] // S
        reps = k ** 3
        j = torch.arange(int(reps.sum()), device=dev) - torch.repeat_interleave(torch.cumsum(reps, 0) - reps, reps)
        kk = torch.repeat_interleave(k, reps)
        off = torch.stack([j // (kk * kk), (j // kk) % kk, j % kk], dim=-1) * S
        src = torch.nonzero(big)[:, 0].repeat_interleave(reps)
        batch = torch.cat([batch[~big], batch[src]])
        origin = torch.cat([origin[~big], origin[src] + off])
        size = torch.cat([size[~big], torch.full_like(src, S)])
        values = torch.cat([values[~big], values[src]])
    if batch.numel() and ((size & (size - 1)) != 0).any() or (origin % size[:, None] != 0).any():
        raise ValueError("box sizes must be powers of two and box origins multiples of their size")
    vol = torch.zeros(batch_size, dtype=torch.int64, device=dev).index_add_(0, batch, size ** 3)
    if (vol != R ** 3).any():
        raise ValueError(f"the boxes do not tile the {R}^3 grid (covered volume per item {vol.tolist()})")
    level = D - torch.log2(size.double()).round().long()
    tv = origin >> D
    tree = batch * G ** 3 + tv[:, 0] * G * G + tv[:, 1] * G + tv[:, 2]
    # morton code at each leaf's own level = code of the D-bit local coords shifted
    code = morton_encode(origin[:, 0] & (S - 1), origin[:, 1] & (S - 1), origin[:, 2] & (S - 1), D) >> (3 * (D - level))
    flags = torch.zeros(batch_size * G ** 3, _n_bits(D), dtype=torch.bool, device=dev)
    for lev in range(D):
        m = level > lev
        anc = code[m] >> (3 * (level[m] - lev))
        flags[tree[m], _level_offset(lev) + anc] = True
    bits = _pack_bits(flags)
    key = tree * _n_bits(D + 1) + (8 ** level - 1) // 7 + code
    order = torch.argsort(key)
    if key.numel() > 1 and (key[order][1:] == key[order][:-1]).any():
        raise ValueError("two boxes are the same cell")
    counts = torch.bincount(tree, minlength=batch_size * G ** 3)
    prefix = (torch.cumsum(counts, 0) - counts).to(torch.int32)
    out = Octree(bits, prefix, values[order], int(batch_size), G, D)
    if out.leaves().tree.numel() != out.num_cells:
        raise ValueError("the boxes do not form an octree (overlapping or misaligned cells)")
    return out


def octree_from_sdf(fn_or_shape: Any, resolution: int, tree_depth: int = 3, bound: float = 1.0,
                    device: torch.device | str | None = None) -> Octree:
    """Octree of the voxelisation of an SDF (callable or ShapeNet-lite ``Shape``), one item.

    Introduced in ``lectures/04_octrees.ipynb``; the voxels are
    :func:`course_lib.geometry.sdf_to_voxels` (cell centre inside <=> ``sdf < 0``, the same as
    :func:`course_lib.data.voxelize` for a shape).
    """
    from .voxels import sdf_to_voxels

    return build_octree(sdf_to_voxels(fn_or_shape, resolution, bound, device=device), tree_depth)


def octree_from_mesh(mesh: Any, resolution: int, tree_depth: int = 3, bound: float = 1.0) -> Octree:
    """Octree of the solid voxelisation of a closed mesh (:func:`course_lib.geometry.mesh_to_voxels`).

    Introduced in ``lectures/04_octrees.ipynb``.  Works for the real meshes of the loaders
    (:func:`course_lib.data.load_mesh`); a mesh with holes voxelises with the caveats of
    ``mesh_to_voxels``.
    """
    from .voxels import mesh_to_voxels

    return build_octree(mesh_to_voxels(mesh, resolution, bound), tree_depth)


# --- operations for learning ---------------------------------------------------------------

_OFFSETS = torch.tensor([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])


def _overlap(a0: Tensor, s: Tensor, b0: Tensor, t: Tensor) -> Tensor:
    """Length of ``[a0, a0 + s) n [b0, b0 + t)`` (broadcast)."""
    return (torch.minimum(a0 + s, b0 + t) - torch.maximum(a0, b0)).clamp_min(0)


def conv_operator(octree: Octree) -> Tensor:
    """The structural sparse matrix ``(N 27, N)`` of the exact 3x3x3 octree convolution.

    Introduced in ``lectures/04_octrees.ipynb``.  Row ``27 c + o`` holds the weights with which
    the leaves ``c'`` make up the mean of the input over leaf ``c`` shifted by offset ``o`` (one
    voxel in each direction, ``o`` in the order of a Conv3d kernel): the fraction of the shifted
    cell covered by ``c'``.  It depends only on the structure, so one operator serves every layer
    that keeps it.  Neighbours are found by walking the trees from one voxel just outside each
    leaf in each of the 26 directions (no dense grid is built).
    """
    lv = octree.leaves()
    N, dev, R = lv.tree.shape[0], octree.device, octree.resolution
    offs = _OFFSETS.to(dev)
    dirs = offs[(offs != 0).any(1)]                                 # 26 directions
    # one voxel of the same-size neighbour block in each direction: just outside the leaf
    step = torch.where(dirs[None] > 0, lv.size[:, None, None], torch.where(dirs[None] < 0, -1, 0))
    q = lv.origin[:, None, :] + step
    inside = ((q >= 0) & (q < R)).all(-1)
    src = torch.arange(N, device=dev)[:, None].expand(N, 26)[inside]
    qb = lv.batch[:, None].expand(N, 26)[inside]
    found = octree.locate(qb, q[inside])
    # keep pairs where the found leaf is at least as big; the smaller side finds the bigger one
    keep = lv.size[found] >= lv.size[src]
    a, b = src[keep], found[keep]
    ar = torch.arange(N, device=dev)
    key = torch.unique(torch.cat([a * N + b, b * N + a, ar * N + ar]))
    c, cp = key // N, key % N
    oc, sc, ocp, scp = lv.origin[c], lv.size[c], lv.origin[cp], lv.size[cp]
    # per axis and offset in {-1, 0, 1}: overlap of [o + d, o + d + s) with the other cell
    d = torch.tensor([-1, 0, 1], device=dev)
    ov = _overlap(oc[:, :, None] + d, sc[:, None, None], ocp[:, :, None], scp[:, None, None])  # (P, 3, 3)
    w = (ov[:, 0, :, None, None] * ov[:, 1, None, :, None] * ov[:, 2, None, None, :]).reshape(-1, 27)
    w = w.to(torch.float32) / (sc.to(torch.float32) ** 3)[:, None]
    nz = w > 0
    p_idx, o_idx = torch.nonzero(nz, as_tuple=True)
    rows = c[p_idx] * 27 + o_idx
    cols = cp[p_idx]
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), w[nz], (N * 27, N),
                                   check_invariants=False).coalesce()


class OctreeConv3d(nn.Module):
    """A 3x3x3 convolution (zero padding) on the leaves of an octree, one output value per leaf.

    Introduced in ``lectures/04_octrees.ipynb``.

    The output of a leaf is the *mean over its voxels* of the dense convolution of the dense
    input (so the output keeps the input's structure, as in OctNet).  Because the input is
    constant on each leaf, that mean equals ``sum_o W_o m_o(c)`` where ``m_o(c)`` is the mean of
    the input over the leaf shifted by ``o``, a fixed linear mix of the leaf and its neighbours.
    We compute it in the *sparse formulation*: ``m = S x`` with the structural operator ``S`` of
    :func:`conv_operator` (built once per structure), then one ``(27 C_in) -> C_out`` matrix
    product per leaf.  A homogeneous cell of ``s^3`` voxels costs one row instead of ``s^3``
    dense outputs -- OctNet's "compute it once per cell, only the boundary differs" -- and the
    code is plain ``torch.sparse.mm`` + ``matmul``, which run on CPU and CUDA and are
    differentiable; OctNet's hand-written per-face/edge/corner CUDA kernels compute the same
    numbers.  Weights have the layout of ``nn.Conv3d`` ``(C_out, C_in, 3, 3, 3)``.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        ref = nn.Conv3d(self.in_channels, self.out_channels, 3, padding=1, bias=bias)
        self.weight = ref.weight
        self.bias = ref.bias

    def forward(self, octree: Octree, features: Tensor | None = None, operator: Tensor | None = None) -> Tensor:
        """Features ``(N, C_in)`` on the leaves (default ``octree.values``) -> ``(N, C_out)``."""
        x = octree.values if features is None else features
        if x.dim() != 2 or x.shape[0] != octree.num_cells or x.shape[1] != self.in_channels:
            raise ValueError(f"OctreeConv3d expects features ({octree.num_cells}, {self.in_channels}), "
                             f"got {tuple(x.shape)}")
        return self.apply_operator(conv_operator(octree) if operator is None else operator, x)

    def apply_operator(self, operator: Tensor, features: Tensor) -> Tensor:
        """The convolution given its structural operator ``(N 27, N)`` (:func:`conv_operator`) and features
        ``(N, C_in)`` -> ``(N, C_out)``: what :meth:`forward` computes once the operator is known (a network that
        meets the same structure again can keep the operator, :class:`course_lib.models.octnet.StructureCache`)."""
        x = features.to(self.weight.dtype)
        if operator.shape != (27 * x.shape[0], x.shape[0]) or x.shape[1] != self.in_channels:
            raise ValueError(f"apply_operator expects an operator (27 N, N) and features (N, {self.in_channels}), got "
                             f"{tuple(operator.shape)} and {tuple(x.shape)}")
        m = torch.sparse.mm(operator.to(x.dtype), x).view(x.shape[0], 27 * self.in_channels)
        w = self.weight.reshape(self.out_channels, self.in_channels, 27).permute(2, 1, 0).reshape(-1, self.out_channels)
        y = m @ w
        return y + self.bias if self.bias is not None else y


def octree_pool(octree: Octree, features: Tensor | None = None, reduce: str = "max") -> Octree:
    """2x2x2 pooling (OctNet's grid pooling): resolution ``R -> R / 2``.

    Introduced in ``lectures/04_octrees.ipynb``.  The voxels of the finest level are pooled in
    groups of 8 siblings (``reduce`` ``"max"`` or ``"mean"``); every other cell keeps its value
    and is halved in size.  The result equals dense 2x2x2 pooling of :meth:`Octree.to_dense`.
    Trees keep their depth when the grid of trees can halve, else they lose one level.
    """
    if reduce not in ("max", "mean"):
        raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}")
    x = octree.values if features is None else features
    R, D, G = octree.resolution, octree.tree_depth, octree.grid
    if R < 2:
        raise ValueError("cannot pool a 1^3 grid")
    lv = octree.leaves()
    fine = lv.size == 1
    coarse = ~fine
    fo = lv.origin[fine] // 2
    fb = lv.batch[fine]
    key = ((fb * R + fo[:, 0]) * R + fo[:, 1]) * R + fo[:, 2]
    uk, inv = torch.unique(key, return_inverse=True)
    xf = x[fine]
    pooled = x.new_zeros(uk.numel(), x.shape[1]).scatter_reduce(
        0, inv[:, None].expand(-1, x.shape[1]), xf, "amax" if reduce == "max" else "mean", include_self=False)
    first = torch.zeros(uk.numel(), dtype=torch.long, device=x.device).scatter_(0, inv, torch.arange(
        inv.numel(), device=x.device))
    nb = torch.cat([lv.batch[coarse], fb[first]])
    no = torch.cat([lv.origin[coarse] // 2, fo[first]])
    ns = torch.cat([lv.size[coarse] // 2, torch.ones_like(uk)])
    nv = torch.cat([x[coarse], pooled])
    nd = D if G % 2 == 0 else D - 1
    if nd < 1:
        raise ValueError("cannot pool further: the trees would vanish (tree_depth 1 and an odd grid)")
    return octree_from_boxes(octree.batch_size, R // 2, nd, nb, no, ns, nv)


def octree_unpool(octree: Octree, features: Tensor | None = None) -> Octree:
    """Unpooling (OctNet's grid unpooling): resolution ``R -> 2 R``, every cell doubles in size.

    Introduced in ``lectures/04_octrees.ipynb``.  Equals nearest-neighbour upsampling of the
    dense grid; the structure stays as coarse as it was (no detail is invented -- deciding where
    to subdivide is the OGN decoder's job).
    """
    x = octree.values if features is None else features
    lv = octree.leaves()
    return octree_from_boxes(octree.batch_size, 2 * octree.resolution, octree.tree_depth, lv.batch,
                             lv.origin * 2, lv.size * 2, x)


def subdivide(octree: Octree, mask: Tensor, features: Tensor | None = None) -> Octree:
    """Split the leaves where ``mask`` ``(N,)`` is true into their 8 children, which inherit the value.

    Introduced in ``lectures/04_octrees.ipynb``.  The dense grid is unchanged; the structure is
    finer (this is how a decoder gets room for detail).  Leaves of the finest level cannot split.
    """
    x = octree.values if features is None else features
    lv = octree.leaves()
    mask = mask.to(torch.bool)
    if mask.shape != (octree.num_cells,):
        raise ValueError(f"mask must be ({octree.num_cells},), got {tuple(mask.shape)}")
    if (lv.size[mask] == 1).any():
        raise ValueError("leaves of the finest level (single voxels) cannot be subdivided")
    keep = ~mask
    h = lv.size[mask] // 2
    ch = torch.tensor([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], device=x.device)
    co = (lv.origin[mask][:, None, :] + ch[None] * h[:, None, None]).reshape(-1, 3)
    return octree_from_boxes(
        octree.batch_size, octree.resolution, octree.tree_depth,
        torch.cat([lv.batch[keep], lv.batch[mask].repeat_interleave(8)]),
        torch.cat([lv.origin[keep], co]),
        torch.cat([lv.size[keep], h.repeat_interleave(8)]),
        torch.cat([x[keep], x[mask].repeat_interleave(8, 0)]))
