"""The OGN decoder (course_lib.models.ogn) against brute-force loops and dense references."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from course_lib.geometry.octree import MIXED, build_octree, dense_states
from course_lib.models.ogn import (
    LOOKUP_SORT,
    LOOKUP_TABLE,
    PROP_KNOWN,
    PROP_PRED,
    OGNDecoder,
    SparseConv3d,
    expand_cells,
    lookup_method,
    neighbour_index,
    ogn_loss,
    trace_buffers,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def close(a, b, atol=1e-5):
    """Same shape and values within atol (relative and absolute); torch.testing is slow to import."""
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, atol=atol, rtol=atol), float((a - b).abs().max())


def two_shapes(R=16):
    occ = torch.zeros(2, R, R, R, dtype=torch.bool)
    occ[0, 2:11, 3:9, 4:13] = True
    x, y, z = torch.meshgrid(*[torch.arange(R) - R / 2 + 0.5] * 3, indexing="ij")
    occ[1] = x ** 2 + y ** 2 + z ** 2 < (0.35 * R) ** 2
    return occ


def brute_expand(cells, mask):
    out, parent = [], []
    for i, (c, m) in enumerate(zip(cells.tolist(), mask.tolist())):
        if m:
            for dx, dy, dz in itertools.product((0, 1), repeat=3):   # child 4 dx + 2 dy + dz
                out.append([c[0], 2 * c[1] + dx, 2 * c[2] + dy, 2 * c[3] + dz])
                parent.append(i)
    return torch.tensor(out, dtype=torch.long).reshape(-1, 4), torch.tensor(parent, dtype=torch.long)


def test_expand_cells_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    cells = torch.randint(0, 8, (30, 4), generator=g)
    mask = torch.rand(30, generator=g) > 0.5
    ch, par = expand_cells(cells, mask)
    rch, rpar = brute_expand(cells, mask)
    assert torch.equal(ch, rch) and torch.equal(par, rpar)
    ch, par = expand_cells(cells, torch.zeros(30, dtype=torch.bool))
    assert ch.shape == (0, 4) and par.shape == (0,)
    with pytest.raises(ValueError, match="mask"):
        expand_cells(cells, mask[:5])
    with pytest.raises(TypeError, match="integer"):
        expand_cells(cells.float(), mask)


def test_neighbour_index_matches_a_dict():
    g = torch.Generator().manual_seed(1)
    r = 6
    cells = torch.unique(torch.randint(0, r, (120, 4), generator=g) % torch.tensor([2, r, r, r]), dim=0)
    cells = cells[torch.randperm(len(cells), generator=g)]
    nbr = neighbour_index(cells, r)
    assert torch.equal(nbr, neighbour_index(cells, r, table_limit=0))     # table and binary search agree
    where = {tuple(c): i for i, c in enumerate(cells.tolist())}
    offs = list(itertools.product((-1, 0, 1), repeat=3))
    for i, c in enumerate(cells.tolist()):
        for k, (dx, dy, dz) in enumerate(offs):
            assert nbr[i, k] == where.get((c[0], c[1] + dx, c[2] + dy, c[3] + dz), -1)


def brute_neighbours(cells, r):
    where = {tuple(c): i for i, c in enumerate(cells.tolist())}
    offs = list(itertools.product((-1, 0, 1), repeat=3))              # dx slowest, as a Conv3d kernel
    out = [[where.get((c[0], c[1] + dx, c[2] + dy, c[3] + dz), -1) if all(0 <= v < r for v in
            (c[1] + dx, c[2] + dy, c[3] + dz)) else -1 for dx, dy, dz in offs] for c in cells.tolist()]
    return torch.tensor(out, dtype=torch.long).reshape(-1, 27)


@pytest.mark.parametrize("r,batch,n,seed", [(1, 2, 2, 0), (2, 1, 8, 1), (3, 3, 40, 2), (5, 2, 150, 3),
                                            (8, 1, 30, 4), (8, 2, 900, 5), (16, 3, 400, 6)])
def test_both_lookups_equal_a_brute_force_reference(r, batch, n, seed):
    """Random cell sets, dense and sparse, with cells on every face, edge and corner of the grid."""
    g = torch.Generator().manual_seed(seed)
    cells = torch.randint(0, r, (n, 4), generator=g)
    cells[:, 0] = torch.randint(0, batch, (n,), generator=g)
    corners = torch.tensor([[b, x, y, z] for b in range(batch) for x in (0, r - 1) for y in (0, r - 1)
                            for z in (0, r - 1)])
    face = torch.tensor([[0, 0, y, z] for y in range(r) for z in range(r)] + [[batch - 1, x, r - 1, z]
                                                                               for x in range(r) for z in range(r)])
    cells = torch.unique(torch.cat([cells, corners, face]), dim=0)
    cells = cells[torch.randperm(len(cells), generator=g)]
    ref = brute_neighbours(cells, r)
    for method in (LOOKUP_TABLE, LOOKUP_SORT, None):
        assert torch.equal(neighbour_index(cells, r, method=method), ref), method
    assert torch.equal(neighbour_index(cells, r, table_limit=0), ref)     # the old way to force the sorted keys
    assert torch.equal(neighbour_index(cells.int(), r, method=LOOKUP_SORT), ref)
    assert neighbour_index(cells[:0], r, method=LOOKUP_SORT).shape == (0, 27)
    with pytest.raises(ValueError, match="method"):
        neighbour_index(cells, r, method="hash")


def test_the_dense_table_is_used_only_while_no_larger_than_the_index_it_returns():
    # 4 B (r + 2)^3 bytes of table against 27 * 8 N bytes of index
    assert lookup_method(54, 1, 1) == LOOKUP_TABLE                  # 4 * 27 = 108 <= 216 * 54
    r = 30
    n_eq = 4 * (r + 2) ** 3 // 216                                   # 606: the table's bytes equal the index's
    assert 4 * (r + 2) ** 3 <= 216 * (n_eq + 1)
    assert lookup_method(n_eq + 1, 1, r) == LOOKUP_TABLE and lookup_method(n_eq - 1, 1, r) == LOOKUP_SORT
    assert lookup_method(2 * n_eq + 2, 2, r) == LOOKUP_TABLE and lookup_method(n_eq + 1, 2, r) == LOOKUP_SORT
    assert lookup_method(10 ** 9, 1, 300, table_limit=2 ** 24) == LOOKUP_SORT   # the absolute cap still holds
    # what neighbour_index builds follows the rule, and is recorded
    cells = torch.cartesian_prod(torch.arange(1), torch.arange(8), torch.arange(8), torch.arange(8))
    with trace_buffers() as rec:
        neighbour_index(cells, 8)                                  # full level: table
        neighbour_index(cells[:20], 64)                            # 20 cells in 64^3: sorted keys
    names = [x["name"] for x in rec]
    assert names.count("lookup: dense table") == 1 and names.count("lookup: sorted keys") == 1
    table = next(x for x in rec if x["name"] == "lookup: dense table")
    assert table["bytes"] == 4 * 10 ** 3 and table["resolution"] == 8
    idx = [x for x in rec if x["name"] == "neighbour index"]
    assert [x["bytes"] for x in idx] == [8 * 27 * 512, 8 * 27 * 20]
    sorted_bytes = sum(x["bytes"] for x in rec[rec.index(table) + 3:] if x["name"].startswith("lookup"))
    assert sorted_bytes == 8 * (2 * 20 + 2 * 9 * 20)               # keys, order, 9 queries and positions per cell
    with trace_buffers() as rec2:
        pass
    neighbour_index(cells, 8)
    assert rec2 == []                                              # nothing recorded outside the block


def test_decoder_records_its_working_tensors():
    torch.manual_seed(0)
    occ = two_shapes(16)
    target = build_octree(occ, 2)
    dec = OGNDecoder(8, 16, 2, (8, 8, 4))
    with trace_buffers() as rec:
        out = dec(torch.randn(2, 8), target, PROP_KNOWN)
    cells = [x["bytes"] for x in rec if x["name"] == "cells"]
    assert cells == [c.element_size() * c.numel() for c in out.cells]
    assert sum(x["bytes"] for x in rec if x["name"] == "im2col columns") == 27 * 8 * 4 * out.num_cells[1]
    assert [x["resolution"] for x in rec if x["name"] == "neighbour index"] == [8]


def test_sparse_conv_equals_dense_conv_at_the_cells():
    torch.manual_seed(2)
    r = 6
    cells = torch.unique(torch.randint(0, r, (150, 4)) % torch.tensor([2, r, r, r]), dim=0)
    x = torch.randn(len(cells), 3, dtype=torch.float64)
    conv = SparseConv3d(3, 4).double()
    y = conv(x, cells, r)
    dense = torch.zeros(2, 3, r, r, r, dtype=torch.float64)
    dense[cells[:, 0], :, cells[:, 1], cells[:, 2], cells[:, 3]] = x
    ref = F.conv3d(dense, conv.weight, conv.bias, padding=1)[cells[:, 0], :, cells[:, 1], cells[:, 2], cells[:, 3]]
    close(y, ref)


def test_known_mode_follows_the_ground_truth_structure():
    occ = two_shapes(16)
    tgt = build_octree(occ, tree_depth=2)                           # 4^3 roots, levels 4, 8, 16
    torch.manual_seed(0)
    dec = OGNDecoder(8, 16, tree_depth=2, channels=(16, 8, 8))
    out = dec(torch.randn(2, 8), tgt, PROP_KNOWN)
    assert out.resolutions == [4, 8, 16]
    for lev in range(3):
        got = {tuple(c) for c in out.cells[lev].tolist()}
        assert got == {tuple(c) for c in tgt.cells(lev).tolist()}
        assert len(got) == out.cells[lev].shape[0]
        # targets = brute-force states of the dense grid at that level
        st = dense_states(occ, out.resolutions[lev])
        c = out.cells[lev]
        assert torch.equal(out.targets[lev], st[c[:, 0], c[:, 1], c[:, 2], c[:, 3]])
        assert out.logits[lev].shape == (len(c), 3)
    assert torch.isinf(out.logits[2][:, MIXED]).all()               # no mixed voxel
    # loss = sum of the per-level mean cross-entropies, gradient reaches every parameter
    loss = ogn_loss(out)
    ref = sum(F.cross_entropy(out.logits[lev][:, :2] if lev == 2 else out.logits[lev], out.targets[lev])
              for lev in range(3))
    close(loss["loss"], ref)
    loss["loss"].backward()
    assert all(p.grad is not None for p in dec.parameters())


def test_predicted_mode_expands_the_predicted_mixed_cells():
    torch.manual_seed(3)
    dec = OGNDecoder(8, 16, tree_depth=2, channels=(16, 8, 8)).eval()
    with torch.no_grad():
        dec.head0.bias.copy_(torch.tensor([0.0, -1.0, 0.1]))           # about half the roots mixed
        out = dec(torch.randn(2, 8), mode=PROP_PRED)
    assert out.targets is None
    for lev in range(2):
        mixed = out.logits[lev].argmax(-1) == MIXED
        assert torch.equal(out.expanded[lev], mixed)
        rch, _ = brute_expand(out.cells[lev], mixed)
        assert torch.equal(out.cells[lev + 1], rch)
    assert 0 < out.cells[1].shape[0] < 8 * out.cells[0].shape[0]
    # the decoded octree: brute-force painting of the unexpanded cells
    occ = out.occupancy()
    ref = torch.zeros(2, 16, 16, 16, dtype=torch.bool)
    for lev in range(3):
        s = 2 ** (2 - lev)
        for c, lg, ex in zip(out.cells[lev].tolist(), out.logits[lev], out.expanded[lev]):
            if not ex:
                ref[c[0], c[1] * s:(c[1] + 1) * s, c[2] * s:(c[2] + 1) * s, c[3] * s:(c[3] + 1) * s] = bool(lg[1] > lg[0])
    assert torch.equal(occ, ref)


def test_max_cells_caps_the_predicted_expansion():
    torch.manual_seed(4)
    dec = OGNDecoder(8, 16, tree_depth=2, channels=(8, 8, 8), max_cells=80).eval()
    with torch.no_grad():
        dec.head0.bias.copy_(torch.tensor([0.0, 0.0, 5.0]))            # every root "mixed"
        with pytest.warns(RuntimeWarning, match="max_cells"):
            out = dec(torch.randn(2, 8), mode=PROP_PRED)
    assert out.cells[1].shape[0] <= 80 and int(out.expanded[0].sum()) == 10


def test_training_with_known_structure_then_decoding_with_predicted():
    occ = two_shapes(16)
    tgt = build_octree(occ, tree_depth=2)
    torch.manual_seed(0)
    dec = OGNDecoder(8, 16, tree_depth=2, channels=(32, 16, 8))
    z = torch.randn(2, 8)
    opt = torch.optim.Adam(dec.parameters(), lr=5e-3)
    first = None
    for _ in range(40):
        loss = ogn_loss(dec(z, tgt, PROP_KNOWN))["loss"]
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.2 * first
    dec.eval()
    with torch.no_grad():
        pred = dec(z, tgt, PROP_PRED).occupancy()
    iou = (pred & occ).sum() / (pred | occ).sum()
    assert iou > 0.9


def test_bad_arguments():
    dec = OGNDecoder(8, 16, tree_depth=2, channels=(8, 8, 8))
    with pytest.raises(ValueError, match="target"):
        dec(torch.randn(1, 8), mode=PROP_KNOWN)
    with pytest.raises(ValueError, match="mode"):
        dec(torch.randn(1, 8), mode="guess")
    with pytest.raises(ValueError, match="does not fit"):
        dec(torch.randn(1, 8), build_octree(torch.zeros(32, 32, 32, dtype=torch.bool), 2), PROP_KNOWN)
    with pytest.raises(ValueError, match="latent"):
        dec(torch.randn(1, 5))
    with pytest.raises(ValueError, match="resolution"):
        OGNDecoder(8, 24, tree_depth=3)
    with pytest.raises(ValueError, match="channels"):
        OGNDecoder(8, 16, tree_depth=2, channels=(8, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_known_mode():
    occ = two_shapes(16).cuda()
    tgt = build_octree(occ, tree_depth=2)
    dec = OGNDecoder(8, 16, tree_depth=2, channels=(8, 8, 8)).cuda()
    out = dec(torch.randn(2, 8, device="cuda"), tgt, PROP_KNOWN)
    ogn_loss(out)["loss"].backward()
    assert out.cells[2].device.type == "cuda" and out.occupancy().shape == (2, 16, 16, 16)
