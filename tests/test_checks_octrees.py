"""The chapter-04 self-checks pass the reference, fail plausible wrong answers, and flag stubs."""

from __future__ import annotations

import pytest
import torch
from check_helpers import failed as _failed
from check_helpers import hidden_results_on, stub

from course_lib import checks

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- reference solutions, written independently of course_lib.geometry.octree ---
def cell_states(occ, r):
    B, R = occ.shape[0], occ.shape[1]
    s = R // r
    blocks = occ.reshape(B, r, s, r, s, r, s).permute(0, 1, 3, 5, 2, 4, 6).reshape(B, r, r, r, -1)
    full, anyv = blocks.all(-1), blocks.any(-1)
    return torch.where(full, 1, torch.where(anyv, 2, 0)).long()


def expand_mixed(cells, states):
    parents = cells[states == 2]
    off = torch.tensor([[0, dx, dy, dz] for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)])
    scale = torch.tensor([1, 2, 2, 2])
    return (parents[:, None, :] * scale + off[None]).reshape(-1, 4)


def count_leaves(occ, D):
    R = occ.shape[1]
    G = R // 2 ** D
    n = occ.shape[0] * G ** 3
    for lev in range(D):
        n += 7 * int((cell_states(occ, G * 2 ** lev) == 2).sum())
    return n






def test_references_pass():
    assert checks.check_cell_states(cell_states, quiet=True).passed
    assert checks.check_expand_mixed(expand_mixed, quiet=True).passed
    assert checks.check_count_leaves(count_leaves, quiet=True).passed


def test_library_passes():
    from course_lib.geometry.octree import build_octree, dense_states
    from course_lib.models.ogn import expand_cells

    assert checks.check_cell_states(dense_states, quiet=True).passed
    assert checks.check_expand_mixed(lambda c, s: expand_cells(c, s == 2)[0], quiet=True).passed
    assert checks.check_count_leaves(lambda o, D: build_octree(o, D).num_cells, quiet=True).passed


def test_stubs_are_not_implemented():
    for check in (checks.check_cell_states, checks.check_expand_mixed, checks.check_count_leaves):
        res = check(stub, quiet=True)
        assert res.status == "not_implemented", res.verdict()


def test_cell_states_wrong_answers():
    # full and mixed ids swapped
    _failed(checks.check_cell_states(lambda o, r: torch.where(cell_states(o, r) == 0, 0, 3 - cell_states(o, r)),
                                     quiet=True), "swapped")
    # only "any": full cells called mixed
    def any_only(o, r):
        st = cell_states(o, r)
        return torch.where(st == 1, 2, st)
    _failed(checks.check_cell_states(any_only, quiet=True), "all")

    # majority vote: mostly-full mixed cells called full
    def majority(o, r):
        B, R = o.shape[0], o.shape[1]
        s = R // r
        m = o.float().reshape(B, r, s, r, s, r, s).mean((2, 4, 6))
        return torch.where(m == 0, 0, torch.where(m > 0.5, 1, 2)).long()
    _failed(checks.check_cell_states(majority, quiet=True), "FULL means every voxel")

    # blocks taken with a reshape and no permute
    def no_permute(o, r):
        blocks = o.reshape(o.shape[0], r, r, r, -1)
        return torch.where(blocks.all(-1), 1, torch.where(blocks.any(-1), 2, 0)).long()
    _failed(checks.check_cell_states(no_permute, quiet=True), "block of voxels")

    # float class ids
    _failed(checks.check_cell_states(lambda o, r: cell_states(o, r).float(), quiet=True), "LongTensor")


def test_expand_mixed_wrong_answers():
    _failed(checks.check_expand_mixed(lambda c, s: expand_mixed(c, torch.full_like(s, 2)), quiet=True), "every cell")
    _failed(checks.check_expand_mixed(lambda c, s: expand_mixed(c, torch.where(s == 1, 2, s)), quiet=True),
            "FULL cells too")
    _failed(checks.check_expand_mixed(lambda c, s: expand_mixed(c, torch.where(s == 1, 2, torch.where(s == 2, 1, s))),
                                      quiet=True), "instead of the MIXED")

    def not_doubled(c, s):
        off = torch.tensor([[0, dx, dy, dz] for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)])
        return (c[s == 2][:, None, :] + off[None]).reshape(-1, 4)
    _failed(checks.check_expand_mixed(not_doubled, quiet=True), "2 * parent")

    def dz_slowest(c, s):
        off = torch.tensor([[0, dx, dy, dz] for dz in (0, 1) for dy in (0, 1) for dx in (0, 1)])
        return (c[s == 2][:, None, :] * torch.tensor([1, 2, 2, 2]) + off[None]).reshape(-1, 4)
    _failed(checks.check_expand_mixed(dz_slowest, quiet=True), "wrong order")

    def batch_doubled(c, s):
        out = expand_mixed(c, s)
        out[:, 0] = out[:, 0] * 2
        return out
    _failed(checks.check_expand_mixed(batch_doubled, quiet=True), "batch index")


def test_count_leaves_wrong_answers():
    def plus_eight(o, D):
        G = o.shape[1] // 2 ** D
        return o.shape[0] * G ** 3 + 8 * sum(int((cell_states(o, G * 2 ** lev) == 2).sum()) for lev in range(D))
    _failed(checks.check_count_leaves(plus_eight, quiet=True), "adds 7")

    def no_roots(o, D):
        G = o.shape[1] // 2 ** D
        return 7 * sum(int((cell_states(o, G * 2 ** lev) == 2).sum()) for lev in range(D))
    _failed(checks.check_count_leaves(no_roots, quiet=True), "roots")

    def levels_from_the_top(o, D):  # resolutions R / 2^l for l = 0 .. D-1: misses level 0, adds level D
        return o.shape[0] * (o.shape[1] // 2 ** D) ** 3 + 7 * sum(
            int((cell_states(o, o.shape[1] // 2 ** lev) == 2).sum()) for lev in range(D))
    _failed(checks.check_count_leaves(levels_from_the_top, quiet=True), "level 0 .. D-1")

    def off_by_one_level(o, D):
        G = o.shape[1] // 2 ** D
        return o.shape[0] * G ** 3 + 7 * sum(int((cell_states(o, G * 2 ** lev) == 2).sum()) for lev in range(D - 1))
    _failed(checks.check_count_leaves(off_by_one_level, quiet=True), "level 0 .. D-1")


# --- hidden parts (the grader's) ----------------------------------------------------
_hidden = hidden_results_on  # (public result, hidden result)


def test_hidden_parts_pass_the_references(monkeypatch):
    for check, answer in ((checks.check_cell_states, cell_states), (checks.check_expand_mixed, expand_mixed),
                          (checks.check_count_leaves, count_leaves)):
        res, hid = _hidden(monkeypatch, check, answer)
        assert res.passed and hid.passed, hid.verdict()


def test_hidden_cell_states_catches_a_fixed_resolution(monkeypatch):
    def fixed(occ, r):  # R = 8 as in the public grids
        s = 8 // r
        v = occ.reshape(occ.shape[0], r, s, r, s, r, s)
        return torch.where(v.all(6).all(4).all(2), 1, torch.where(v.any(6).any(4).any(2), 2, 0)).long()

    res, hid = _hidden(monkeypatch, checks.check_cell_states, fixed)
    assert res.passed
    _failed(hid, "is invalid for input of size 64")  # the student's reshape, on the hidden 4^3 grid


def test_hidden_expand_mixed_catches_an_in_place_doubling(monkeypatch):
    def in_place(cells, states):
        cells[:, 1:] *= 2  # doubles the caller's cells
        parents = cells[states == 2]
        off = torch.tensor([[0, dx, dy, dz] for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)])
        return (parents[:, None, :] + off[None]).reshape(-1, 4)

    res, hid = _hidden(monkeypatch, checks.check_expand_mixed, in_place)
    assert res.passed  # the public part passes clones
    _failed(hid, "in place")


def test_hidden_count_leaves_catches_a_fixed_resolution(monkeypatch):
    def fixed(occ, D):  # R = 8 and B = 2, as in the public grids
        G = 8 // 2 ** D
        return 2 * G ** 3 + sum(7 * int((cell_states(occ, G * 2 ** lev) == 2).sum()) for lev in range(D))

    res, hid = _hidden(monkeypatch, checks.check_count_leaves, fixed)
    assert res.passed
    _failed(hid, "not fixed numbers")


def test_hidden_parts_flag_the_library(monkeypatch):
    from course_lib.geometry.octree import build_octree, dense_states

    res, hid = _hidden(monkeypatch, checks.check_cell_states, lambda occ, r: dense_states(occ, r))
    assert res.passed
    _failed(hid, "delegated to course_lib.geometry.octree.dense_states")
    res, hid = _hidden(monkeypatch, checks.check_count_leaves, lambda occ, D: build_octree(occ, D).num_cells)
    assert res.passed
    _failed(hid, "delegated to course_lib.geometry.octree.build_octree")
