"""Self-checks of chapter 04 (``labs/04_octrees_lab.ipynb``): cell states, expanding mixed cells, counting leaves.

Introduced in ``lectures/04_octrees.ipynb``.  The references are the library's octree
(:func:`course_lib.geometry.octree.build_octree`, itself tested against brute-force loops) and
a plain loop over the parent cells.
"""

from __future__ import annotations

import numpy as np
import torch

from ._core import CheckFailed, call_student, expect, expect_tensor, self_check

__all__ = ["check_cell_states", "check_expand_mixed", "check_count_leaves"]

_NAMES = {0: "EMPTY (0)", 1: "FULL (1)", 2: "MIXED (2)"}


def _grids() -> torch.Tensor:
    g = torch.Generator().manual_seed(4)
    occ = torch.zeros(2, 8, 8, 8, dtype=torch.bool)
    occ[0, 0:4, 0:4, 0:8] = True                      # whole full cells at every level
    occ[0, 5:7, 1:6, 2:5] = True
    occ[1] = torch.rand(8, 8, 8, generator=g) > 0.6
    occ[1, 4:8, 4:8, 4:8] = True
    occ[1, 0:2, 6:8, 0:2] = False
    return occ


@self_check
def check_cell_states(fn) -> str:
    """``fn(occupancy (B, R, R, R) bool, r) -> (B, r, r, r)`` long: the state of every cell of the ``r^3`` grid.

    Cell ``[b, i, j, k]`` covers voxels ``[i s:(i+1) s, j s:(j+1) s, k s:(k+1) s]`` with ``s = R / r``;
    it is EMPTY (0) when none is full, FULL (1) when all are, MIXED (2) otherwise.
    """
    from course_lib.geometry.octree import dense_states

    occ = _grids()
    for r in (4, 2, 8, 1):
        got = call_student(fn, occ.clone(), r)
        expect_tensor(got, f"cell_states(occupancy, {r})", shape=(2, r, r, r))
        expect(got.dtype == torch.long, f"cell_states should return a LongTensor of class ids, got {got.dtype}")
        ref = dense_states(occ, r)
        bad = got != ref
        if not bad.any():
            continue
        if ((ref == 1) & bad).any() and (got[ref == 1] == 2).all() and ((ref == 2) & bad).any() \
                and (got[ref == 2] == 1).all():
            raise CheckFailed("FULL and MIXED are swapped: the class ids are EMPTY = 0, FULL = 1, MIXED = 2")
        if ((ref == 1) & bad).any() and (got[ref == 1] == 2).all():
            raise CheckFailed(f"at r={r}, cells whose voxels are all full are called MIXED: a cell is FULL (1) when "
                              "*all* its voxels are full (test .all() as well as .any())")
        if ((ref == 2) & bad).any() and (got[(ref == 2) & bad] == 1).all() and not ((ref != 2) & bad).any():
            raise CheckFailed(f"at r={r}, cells with some empty voxels are called FULL: FULL means every voxel is "
                              "full (a majority or a mean > 0.5 is not enough)")
        b, i, j, k = [int(v) for v in torch.nonzero(bad)[0]]
        raise CheckFailed(f"at r={r}, {int(bad.sum())} of {bad.numel()} cells are wrong; e.g. cell [{b}, {i}, {j}, {k}]: "
                          f"got {int(got[b, i, j, k])}, expected {_NAMES[int(ref[b, i, j, k])]}. Cell [i, j, k] covers "
                          "the block of voxels [i*s:(i+1)*s, j*s:(j+1)*s, k*s:(k+1)*s] (reshape to (B, r, s, r, s, "
                          "r, s) and reduce over the s axes)")
    return "empty / full / mixed at 8^3, 4^3, 2^3, 1^3 on two grids"


def _reference_children(cells: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    out = []
    for c, s in zip(cells.tolist(), states.tolist()):
        if s == 2:
            for dx in (0, 1):
                for dy in (0, 1):
                    for dz in (0, 1):
                        out.append([c[0], 2 * c[1] + dx, 2 * c[2] + dy, 2 * c[3] + dz])
    return torch.tensor(out, dtype=torch.long).reshape(-1, 4)


@self_check
def check_expand_mixed(fn) -> str:
    """``fn(cells (N, 4) long (b, x, y, z), states (N,) long) -> children (8 M, 4)`` long, one level finer.

    Only the ``M`` MIXED cells are expanded, parent after parent in the order of ``cells``; the
    children of ``(b, x, y, z)`` are ``(b, 2x + dx, 2y + dy, 2z + dz)`` in the order of
    ``4 dx + 2 dy + dz`` (dz fastest).
    """
    g = torch.Generator().manual_seed(5)
    cells = torch.cat([torch.randint(0, 3, (25, 1), generator=g), torch.randint(0, 8, (25, 3), generator=g)], 1)
    states = torch.randint(0, 3, (25,), generator=g)
    states[:3] = torch.tensor([2, 1, 0])
    ref = _reference_children(cells, states)
    got = call_student(fn, cells.clone(), states.clone())
    expect(isinstance(got, torch.Tensor), f"return a tensor of children, got {type(got).__name__}")
    n_mixed, n_full = int((states == 2).sum()), int((states == 1).sum())
    if got.dim() == 2 and got.shape[0] == 8 * cells.shape[0] != ref.shape[0]:
        raise CheckFailed("you expanded every cell: only MIXED cells (state 2) get children; empty and full cells "
                          "are leaves")
    if got.dim() == 2 and got.shape[0] == 8 * (n_full + n_mixed) != ref.shape[0]:
        raise CheckFailed("you expanded the FULL cells too: only MIXED cells (state 2) get children")
    if got.dim() == 2 and got.shape[0] == 8 * n_full != ref.shape[0]:
        raise CheckFailed("you expanded the FULL cells (state 1) instead of the MIXED ones (state 2)")
    expect_tensor(got, "children", shape=(ref.shape[0], 4))
    expect(got.dtype == torch.long, f"children should be a LongTensor of coordinates, got {got.dtype}")
    if torch.equal(got, ref):
        empty = call_student(fn, cells[:0].clone(), states[:0].clone())
        expect(isinstance(empty, torch.Tensor) and tuple(empty.shape) == (0, 4),
               "with no cell at all, return an empty (0, 4) tensor")
        return f"{n_mixed} mixed cells of 25 -> {ref.shape[0]} children, in order"
    expect(bool((got[:, 0] == ref[:, 0]).all()), "the batch index (column 0) of a child must be its parent's, "
                                                 "and must not be doubled")
    undoubled = ref.clone()
    undoubled[:, 1:] = cells[states == 2].repeat_interleave(8, 0)[:, 1:] + (ref[:, 1:] % 2)
    if torch.equal(got, undoubled):
        raise CheckFailed("children are at parent + offset: one level finer the coordinates double, child = "
                          "2 * parent + offset")
    if sorted(map(tuple, got.tolist())) == sorted(map(tuple, ref.tolist())):
        raise CheckFailed("the right children in the wrong order: parent after parent, and within a parent child "
                          "4*dx + 2*dy + dz (dx slowest, dz fastest)")
    wrong = int((got != ref).any(1).sum())
    i = int(torch.nonzero((got != ref).any(1))[0])
    raise CheckFailed(f"{wrong} of {ref.shape[0]} children are wrong; e.g. row {i}: got {got[i].tolist()}, "
                      f"expected {ref[i].tolist()}")


@self_check
def check_count_leaves(fn) -> str:
    """``fn(occupancy (B, R, R, R) bool, tree_depth) -> int``: the number of leaves of its grid-octree.

    The roots are the ``B (R / 2^D)^3`` cells of level 0; each MIXED cell of levels ``0 .. D - 1``
    is split, replacing one leaf by its 8 children.
    """
    from course_lib.geometry.octree import MIXED, build_octree, dense_states

    occ = _grids()
    for D in (1, 2, 3):
        got = call_student(fn, occ.clone(), D)
        expect(isinstance(got, (int, torch.Tensor)) and not isinstance(got, bool),
               f"return an int (or a 0-d tensor), got {type(got).__name__}")
        got = int(got)
        ref = build_octree(occ, D).num_cells
        if got == ref:
            continue
        G = 8 // 2 ** D
        mixed = sum(int((dense_states(occ, G * 2 ** lev) == MIXED).sum()) for lev in range(D))
        roots = 2 * G ** 3
        if got == roots + 8 * mixed:
            raise CheckFailed(f"tree_depth={D}: got {got}; a split replaces one leaf by 8 children, so it adds 7 "
                              "leaves, not 8 (the split cell stops being a leaf)")
        if got == 7 * mixed:
            raise CheckFailed(f"tree_depth={D}: got {got}; you forgot the {roots} roots (the level-0 cells are "
                              "leaves until split)")
        raise CheckFailed(f"tree_depth={D}: got {got} leaves, expected {ref}: add 7 for each mixed cell of every "
                          f"level 0 .. D-1 (level l has resolution {G} * 2^l; the voxels of level D are never mixed)")
    return "leaves = roots + 7 x (mixed cells of levels 0 .. D-1), for D = 1, 2, 3"


# ---------------------------------------------------------------------------
# hidden parts (run by the grader only): other resolutions (not powers of two), a batch of one, a grid of one
# occupied voxel, empty and full grids, a non-contiguous grid, no mixed cell, inputs unchanged; references by
# NumPy loops over the cells
# ---------------------------------------------------------------------------
def _loop_states(occ: torch.Tensor, r: int) -> torch.Tensor:
    a = occ.numpy()
    b, big = a.shape[0], a.shape[1]
    s = big // r
    out = np.zeros((b, r, r, r), dtype=np.int64)
    for bi in range(b):
        for i in range(r):
            for j in range(r):
                for k in range(r):
                    block = a[bi, i * s:(i + 1) * s, j * s:(j + 1) * s, k * s:(k + 1) * s]
                    out[bi, i, j, k] = 1 if block.all() else (2 if block.any() else 0)
    return torch.from_numpy(out)


def _loop_leaves(occ: torch.Tensor, depth: int) -> int:
    """Leaves of the grid-octree, by recursion over the cells (a mixed cell above the last level splits)."""
    a = occ.numpy()
    g = a.shape[1] // 2 ** depth

    def leaves(block: np.ndarray, level: int) -> int:
        if level == depth or block.all() or not block.any():
            return 1
        h = block.shape[0] // 2
        return sum(leaves(block[x:x + h, y:y + h, z:z + h], level + 1)
                   for x in (0, h) for y in (0, h) for z in (0, h))

    s = a.shape[1] // g
    return sum(leaves(a[bi, i * s:(i + 1) * s, j * s:(j + 1) * s, k * s:(k + 1) * s], 0)
               for bi in range(a.shape[0]) for i in range(g) for j in range(g) for k in range(g))


def _hidden_grids() -> list[tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(40)
    one = torch.zeros(1, 4, 4, 4, dtype=torch.bool)
    one[0, 1, 2, 3] = True
    rnd = torch.rand(3, 6, 6, 6, generator=g) > 0.5
    rnd[1] = False
    rnd[2] = True
    rnd[0, :3, :3, :3] = True
    twelve = torch.rand(2, 12, 12, 12, generator=g) > 0.7
    twelve[0, 6:, 6:, 6:] = True
    t = (torch.rand(1, 4, 4, 4, generator=g) > 0.5).transpose(1, 3)  # a non-contiguous view
    return [("a 4^3 grid with one occupied voxel (B = 1)", one),
            ("three 6^3 grids (random, empty, full)", rnd),
            ("two 12^3 grids", twelve),
            ("a non-contiguous 4^3 grid (a transposed view, B = 1)", t)]


def _hidden_cell_states(fn) -> str:
    for what, occ in _hidden_grids():
        big = occ.shape[1]
        for r in (d for d in range(1, big + 1) if big % d == 0):
            before = occ.clone()
            got = call_student(fn, occ, r)
            if occ.shape[0] == 1 and isinstance(got, torch.Tensor) and got.dim() == 3:
                raise CheckFailed(f"{what}, r={r}: the result has shape {tuple(got.shape)}: a .squeeze() drops the "
                                  "batch axis; return (B, r, r, r) for every B")
            expect_tensor(got, f"cell_states of {what} at r={r}", shape=(occ.shape[0], r, r, r))
            expect(got.dtype == torch.long, f"cell_states should return a LongTensor, got {got.dtype}")
            expect(torch.equal(occ, before), "your function changed the occupancy grid in place")
            ref = _loop_states(occ, r)
            bad = got.cpu() != ref
            if bad.any():
                b, i, j, k = [int(v) for v in torch.nonzero(bad)[0]]
                raise CheckFailed(f"{what}, r={r} (s = {big // r} voxels per cell side): {int(bad.sum())} of "
                                  f"{bad.numel()} cells are wrong, e.g. [{b}, {i}, {j}, {k}]: got "
                                  f"{int(got[b, i, j, k])}, expected {_NAMES[int(ref[b, i, j, k])]}; s = R / r need "
                                  "not be a power of two (reshape with s, not a fixed 2)")
    return "a batch of one, one occupied voxel, empty and full grids, R = 6 and 12 at every divisor, a strided view"


def _hidden_expand_mixed(fn) -> str:
    g = torch.Generator().manual_seed(41)
    cases = [("one mixed cell", torch.tensor([[3, 5, 0, 7]]), torch.tensor([2])),
             ("no mixed cell", torch.tensor([[0, 1, 1, 1], [1, 0, 0, 0]]), torch.tensor([0, 1])),
             ("every cell mixed, coordinates up to 500", torch.cat([torch.randint(0, 6, (9, 1), generator=g),
                                                                    torch.randint(0, 500, (9, 3), generator=g)], 1),
              torch.full((9,), 2)),
             ("60 cells in random order", torch.cat([torch.randint(0, 4, (60, 1), generator=g),
                                                     torch.randint(0, 16, (60, 3), generator=g)], 1),
              torch.randint(0, 3, (60,), generator=g))]
    for what, cells, states in cases:
        before = (cells.clone(), states.clone())
        got = call_student(fn, cells, states)
        ref = _reference_children(before[0], before[1])
        expect(torch.equal(cells, before[0]) and torch.equal(states, before[1]),
               f"{what}: your function changed `cells` or `states` in place (e.g. cells[:, 1:] *= 2): compute the "
               "children in new tensors")
        expect_tensor(got, f"the children ({what})", shape=(ref.shape[0], 4))
        expect(got.dtype == torch.long, f"children should be a LongTensor, got {got.dtype}")
        if not torch.equal(got.cpu(), ref):
            i = int(torch.nonzero((got.cpu() != ref).any(1))[0])
            raise CheckFailed(f"{what}: row {i} is {got[i].tolist()}, expected {ref[i].tolist()} (a plain loop over "
                              "the parents, children in the order 4*dx + 2*dy + dz)")
    return "one mixed cell, none, all, large coordinates, 60 cells; inputs unchanged"


def _hidden_count_leaves(fn) -> str:
    for what, occ in _hidden_grids():
        big = occ.shape[1]
        for depth in (d for d in range(1, 4) if big % 2 ** d == 0):
            before = occ.clone()
            got = call_student(fn, occ, depth)
            expect(isinstance(got, (int, torch.Tensor)) and not isinstance(got, bool),
                   f"return an int (or a 0-d tensor), got {type(got).__name__}")
            if isinstance(got, torch.Tensor) and got.numel() != 1:
                raise CheckFailed(f"{what}, tree_depth={depth}: return one number, got a tensor of shape "
                                  f"{tuple(got.shape)}")
            expect(torch.equal(occ, before), "your function changed the occupancy grid in place")
            ref = _loop_leaves(occ, depth)
            g = big // 2 ** depth
            expect(int(got) == ref, f"{what}, tree_depth={depth}: got {int(got)} leaves, expected {ref} (the roots "
                                    f"are {occ.shape[0]} x {g}^3 cells, G = R / 2^D: use the grid's own R and B, "
                                    "not fixed numbers)")
    return "depths 1 to 3 on grids of R = 4, 6 and 12 (G = 3), B = 1 to 3, empty, full and one-voxel grids"


def _register_hidden() -> None:
    from course_lib.geometry import octree
    from course_lib.models import ogn

    states_refs = (octree.dense_states, octree.build_octree, octree.Octree.states, octree.Octree.cell_states)
    check_cell_states.hidden(_hidden_cell_states, references=states_refs)
    check_expand_mixed.hidden(_hidden_expand_mixed, references=(ogn.expand_cells,))
    check_count_leaves.hidden(_hidden_count_leaves, references=states_refs)


_register_hidden()
