"""Grid-octrees (course_lib.geometry.octree) against brute-force and independent references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import trimesh

from course_lib.data import CATEGORIES, make_shape, voxelize
from course_lib.geometry import mesh_to_voxels
from course_lib.geometry.octree import (
    EMPTY,
    FULL,
    MIXED,
    OctreeConv3d,
    build_octree,
    conv_operator,
    morton_decode,
    morton_encode,
    octree_from_boxes,
    octree_from_mesh,
    octree_from_sdf,
    octree_pool,
    octree_unpool,
    subdivide,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def close(a, b, atol=1e-5):
    """Same shape and values within atol (relative and absolute); torch.testing is slow to import."""
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, atol=atol, rtol=atol), float((a - b).abs().max())


def random_occupancy(B=2, R=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    occ = torch.zeros(B, R, R, R, dtype=torch.bool)
    occ[0, 3 * R // 16:11 * R // 16, 2 * R // 16:9 * R // 16, 5 * R // 16:14 * R // 16] = True  # a box
    occ[-1] = torch.rand(R, R, R, generator=g) > 0.8     # noise: mostly voxel leaves
    return occ


def brute_state(block: np.ndarray) -> int:
    if block.all():
        return FULL
    if not block.any():
        return EMPTY
    return MIXED


# --- round trips -------------------------------------------------------------------------

@pytest.mark.parametrize("R", [32, 64])
def test_round_trip_every_category(R):
    for c in CATEGORIES:
        occ = voxelize(make_shape(c, 3), R)
        assert occ.any(), c
        tree = build_octree(occ)
        dense = tree.to_dense()
        assert dense.shape == (1, R, R, R) and dense.dtype == torch.float32
        assert torch.equal(dense[0].bool(), occ), c
        assert torch.equal(dense[0], occ.float()), c          # exactly 0.0 / 1.0
        assert tree.num_cells < R ** 3 / 4, c                 # it compresses


def test_round_trip_other_depths_and_batches():
    occ = random_occupancy(B=3, R=16)
    for D in (1, 2, 3, 4):
        t = build_octree(occ, tree_depth=D)
        assert t.grid == 16 // 2 ** D and t.resolution == 16
        assert torch.equal(t.to_dense().bool(), occ)
    # 0/1 floats are accepted; a (R, R, R) grid is one item
    t = build_octree(occ[0].float())
    assert t.batch_size == 1 and torch.equal(t.to_dense()[0].bool(), occ[0])


def test_round_trip_on_a_trimesh_primitive():
    # a rotated box: its inside is known in closed form (independent of the ray-parity voxeliser)
    R, ext = 32, np.array([1.1, 0.7, 0.5])
    rot = trimesh.transformations.rotation_matrix(0.4, [1, 2, 3])
    rot[:3, 3] = [0.03, -0.05, 0.02]
    mesh = trimesh.creation.box(extents=ext, transform=rot)
    tree = octree_from_mesh(mesh, R)
    h = 2.0 / R
    t = -1 + h * (np.arange(R) + 0.5)
    centres = np.stack(np.meshgrid(t, t, t, indexing="ij"), -1).reshape(-1, 3)
    local = (centres - rot[:3, 3]) @ rot[:3, :3]
    ref = torch.from_numpy((np.abs(local) < ext / 2).all(1).reshape(R, R, R))
    assert ref.sum() > 1000
    assert torch.equal(tree.to_dense()[0].bool(), ref)
    assert torch.equal(tree.to_dense()[0].bool(), mesh_to_voxels(mesh, R))


def test_from_sdf_matches_voxelize():
    shape = make_shape("mug", 1)
    tree = octree_from_sdf(shape, 32)
    assert torch.equal(tree.to_dense()[0].bool(), voxelize(shape, 32))
    sphere = octree_from_sdf(lambda p: p.norm(dim=-1) - 0.5, 16, tree_depth=2)
    t = -1 + (torch.arange(16) + 0.5) / 8
    x, y, z = torch.meshgrid(t, t, t, indexing="ij")
    assert torch.equal(sphere.to_dense()[0].bool(), x ** 2 + y ** 2 + z ** 2 < 0.25)


# --- states and cells --------------------------------------------------------------------

def test_states_by_brute_force():
    occ = random_occupancy(B=2, R=16)
    tree = build_octree(occ)                       # G = 2, levels at 2, 4, 8, 16
    o = occ.numpy()
    for level in range(4):
        r = 2 * 2 ** level
        s = 16 // r
        st = tree.states(level)
        assert st.shape == (2, r, r, r) and st.dtype == torch.long
        ref = np.zeros((2, r, r, r), dtype=np.int64)
        for b, i, j, k in itertools.product(range(2), range(r), range(r), range(r)):
            ref[b, i, j, k] = brute_state(o[b, i * s:(i + 1) * s, j * s:(j + 1) * s, k * s:(k + 1) * s])
        np.testing.assert_array_equal(st.numpy(), ref)
        # the cells that exist are the root cells and the children of mixed cells
        cells = tree.cells(level)
        if level == 0:
            expect = {(b, i, j, k) for b, i, j, k in itertools.product(range(2), range(2), range(2), range(2))}
        else:
            parent = tree.states(level - 1).numpy()
            expect = {(b, i, j, k) for b, i, j, k in itertools.product(range(2), range(r), range(r), range(r))
                      if parent[b, i // 2, j // 2, k // 2] == MIXED}
        assert {tuple(c) for c in cells.tolist()} == expect
        assert len(cells) == len(expect)
        np.testing.assert_array_equal(tree.cell_states(level).numpy(), ref[tuple(cells.T.numpy())])
    assert (tree.states(3) != MIXED).all()


def test_state_at_any_cell():
    occ = random_occupancy(B=2, R=16)
    tree = build_octree(occ)
    for level in range(4):
        r = 2 * 2 ** level
        allc = torch.tensor(list(itertools.product(range(2), range(r), range(r), range(r))))
        st = tree.states(level)
        assert torch.equal(tree.state_at(level, allc), st[tuple(allc.T)])


def test_locate_by_brute_force():
    occ = random_occupancy(B=2, R=16)
    tree = build_octree(occ)
    lv = tree.leaves()
    owner = -torch.ones(2, 16, 16, 16, dtype=torch.long)
    for i in range(tree.num_cells):
        b, (x, y, z), s = lv.batch[i], lv.origin[i].tolist(), int(lv.size[i])
        assert (owner[b, x:x + s, y:y + s, z:z + s] == -1).all()     # leaves do not overlap
        owner[b, x:x + s, y:y + s, z:z + s] = i
    assert (owner >= 0).all()                                        # ... and cover the grid
    q = torch.tensor(list(itertools.product(range(2), range(0, 16, 3), range(16), range(1, 16, 2))))
    assert torch.equal(tree.locate(q[:, 0], q[:, 1:]), owner[tuple(q.T)])


def test_morton_round_trip():
    x, y, z = torch.randint(0, 8, (3, 100))
    code = morton_encode(x, y, z, 3)
    assert code.max() < 512
    assert all(torch.equal(a, b) for a, b in zip(morton_decode(code, 3), (x, y, z)))
    # x is the most significant bit of each triple: child 4 dx + 2 dy + dz
    assert morton_encode(torch.tensor([1]), torch.tensor([0]), torch.tensor([1]), 1).item() == 5


# --- memory -----------------------------------------------------------------------------

def test_nbytes_hand_count_single_voxel():
    occ = torch.zeros(8, 8, 8, dtype=torch.bool)
    occ[2, 5, 7] = True
    tree = build_octree(occ)
    # one tree; root split, its child (0,1,1) = code 3 split, grandchild (1,2,3): parent 3, child (1,0,1)=5
    # leaves: 7 + 7 children + 8 voxels = 22; structure: 73 bits -> 3 int32 words; prefix_leafs: 1 int32
    assert tree.num_cells == 22
    assert tree.bits.tolist() == [[(1 << 0) | (1 << (1 + 3)), 1 << (9 + 8 * 3 + 5 - 32), 0]]
    assert tree.nbytes == 3 * 4 + 4 + 22 * 4 == 104
    assert tree.dense_nbytes() == 8 ** 3 * 4
    # an empty and a full 16^3 grid: 8 trees, one leaf each
    for fill in (False, True):
        t = build_octree(torch.full((16, 16, 16), fill))
        assert t.num_cells == 8 and t.nbytes == 8 * 12 + 8 * 4 + 8 * 4
        assert t.prefix_leafs.tolist() == list(range(8))


def test_prefix_leafs_counts_leaves_per_tree():
    tree = build_octree(random_occupancy(B=2, R=16))
    counts = torch.bincount(tree.leaves().tree, minlength=tree.n_trees)
    assert torch.equal(tree.prefix_leafs.long(), torch.cumsum(counts, 0) - counts)


# --- errors -----------------------------------------------------------------------------

def test_bad_inputs():
    with pytest.raises(ValueError, match="multiple of 2\\^tree_depth"):
        build_octree(torch.zeros(12, 12, 12, dtype=torch.bool))
    with pytest.raises(ValueError, match="cubic"):
        build_octree(torch.zeros(8, 8, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match="0 or 1"):
        build_octree(torch.full((8, 8, 8), 0.5))
    with pytest.raises(TypeError, match="torch.Tensor"):
        build_octree(np.zeros((8, 8, 8), bool))
    with pytest.raises(ValueError, match="tree_depth"):
        build_octree(torch.zeros(8, 8, 8, dtype=torch.bool), tree_depth=0)
    tree = build_octree(torch.zeros(8, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="level"):
        tree.states(4)
    with pytest.raises(ValueError, match="tile"):
        octree_from_boxes(1, 8, 3, torch.zeros(1), torch.zeros(1, 3), torch.tensor([4]), torch.zeros(1, 1))
    ft = tree.with_values(torch.full((1, 1), 0.3))
    with pytest.raises(ValueError, match="occupancy octree"):
        ft.states(0)


# --- operations --------------------------------------------------------------------------

def _leaf_means(tree, dense):
    """Mean of a dense (B, C, R, R, R) grid over each leaf (owner of each voxel by tree walk)."""
    B, C, R = dense.shape[0], dense.shape[1], dense.shape[-1]
    q = torch.stack(torch.meshgrid(*[torch.arange(n) for n in (B, R, R, R)], indexing="ij"), -1).reshape(-1, 4)
    owner = tree.locate(q[:, 0], q[:, 1:])
    vals = dense.permute(0, 2, 3, 4, 1).reshape(-1, C)
    sums = vals.new_zeros(tree.num_cells, C).index_add(0, owner, vals)
    return sums / (tree.leaves().size.to(vals.dtype) ** 3)[:, None]


def test_conv_equals_dense_conv_averaged_per_leaf():
    torch.manual_seed(0)
    tree = build_octree(random_occupancy(B=2, R=8), tree_depth=2)       # 2^3 trees per item
    x = torch.randn(tree.num_cells, 2, dtype=torch.float64, requires_grad=True)
    conv = OctreeConv3d(2, 3).double()
    y = conv(tree, x)
    assert y.shape == (tree.num_cells, 3)
    # reference: dense grid, nn.functional.conv3d (zero padding), mean over each leaf's voxels
    dense = tree.with_values(x).to_dense()
    ref = _leaf_means(tree, F.conv3d(dense, conv.weight, conv.bias, padding=1))
    close(y, ref, atol=1e-10)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad((y * g).sum(), x, retain_graph=True)
    (gr,) = torch.autograd.grad((ref * g).sum(), x)
    close(gx, gr, atol=1e-10)
    # the operator is structural: reusing it gives the same result
    S = conv_operator(tree)
    close(conv(tree, x, operator=S), y)
    # a homogeneous cell costs one row: the operator has 27 rows per leaf, not per voxel
    assert S.shape == (tree.num_cells * 27, tree.num_cells)


def test_conv_constant_input_inside_big_cells():
    # on a constant field the output of an interior cell is sum(W) * c, computed once for the cell
    tree = build_octree(torch.ones(16, 16, 16, dtype=torch.bool))   # 8 root leaves of 8^3 voxels
    conv = OctreeConv3d(1, 1, bias=False)
    y = conv(tree)
    dense = F.conv3d(tree.to_dense()[:, None], conv.weight, padding=1)
    close(y, _leaf_means(tree, dense))


@pytest.mark.parametrize("reduce", ["max", "mean"])
def test_pool_equals_dense_pool(reduce):
    torch.manual_seed(1)
    tree = build_octree(random_occupancy(B=2, R=16))
    x = torch.randn(tree.num_cells, 3)
    pooled = octree_pool(tree, x, reduce=reduce)
    dense = tree.with_values(x).to_dense()
    ref = F.max_pool3d(dense, 2) if reduce == "max" else F.avg_pool3d(dense, 2)
    assert pooled.resolution == 8
    close(pooled.to_dense(), ref)
    assert pooled.num_cells < tree.num_cells


def test_unpool_and_subdivide():
    torch.manual_seed(2)
    tree = build_octree(random_occupancy(B=2, R=16))
    x = torch.randn(tree.num_cells, 2)
    up = octree_unpool(tree, x)
    dense = tree.with_values(x).to_dense()
    near = dense.repeat_interleave(2, 2).repeat_interleave(2, 3).repeat_interleave(2, 4)
    assert up.resolution == 32 and up.num_cells == tree.num_cells + 7 * int((tree.leaves().level == 0).sum())
    close(up.to_dense(), near)
    lv = tree.leaves()
    mask = lv.size > 1
    fine = subdivide(tree, mask, x)
    assert fine.num_cells == tree.num_cells + 7 * int(mask.sum())
    assert torch.equal(fine.to_dense(), dense)          # children inherit the parent's value
    with pytest.raises(ValueError, match="finest"):
        subdivide(tree, lv.size == 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    occ = random_occupancy(B=2, R=16)
    cpu = build_octree(occ)
    gpu = build_octree(occ.cuda())
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu.to_dense().cpu(), cpu.to_dense())
    assert torch.equal(gpu.bits.cpu(), cpu.bits) and gpu.nbytes == cpu.nbytes
    x = torch.randn(cpu.num_cells, 2)
    conv = OctreeConv3d(2, 2)
    close(conv.cuda()(gpu, x.cuda()).cpu(), conv.cpu()(cpu, x), atol=1e-5)


def test_round_trip_on_a_mesh_read_by_the_loaders(tmp_path):
    # an OFF file read through course_lib.data.load_mesh (normalised: centre 0, farthest vertex at 1)
    from course_lib.data import load_mesh

    box = trimesh.creation.box(extents=(2.0, 1.0, 1.0))
    box.apply_translation([5.0, 5.0, 5.0])
    path = tmp_path / "box.off"
    box.export(path)
    mesh = load_mesh(path)
    R = 32
    tree = octree_from_mesh(mesh, R)
    half = np.array([1.0, 0.5, 0.5]) / np.sqrt(1.5)
    t = -1 + 2.0 / R * (np.arange(R) + 0.5)
    centres = np.stack(np.meshgrid(t, t, t, indexing="ij"), -1)
    ref = torch.from_numpy((np.abs(centres) < half).all(-1))
    assert torch.equal(tree.to_dense()[0].bool(), ref)
    assert tree.nbytes < tree.dense_nbytes() / 4
