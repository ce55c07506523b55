# %% [markdown]
# # 04 · Octrees: spend memory where the surface is
#
# Chapter 03 decoded shapes into dense grids: every activation has $R^3$ cells, and a $2\times$
# finer grid costs $8\times$ the memory and the work, although the *surface* of a shape -- the only
# place where the occupancy changes -- crosses only about $R^2$ of those cells. Octrees store a
# big homogeneous region as one cell and subdivide only where the surface passes. This chapter
# builds the **hybrid grid-octree** of OctNet [Riegler2017], the operations a network needs on it
# (convolution, pooling, unpooling), and an **octree generating network** (OGN) decoder
# [Tatarchenko2017] that predicts the structure level by level, and measures what it saves.
#
# Everything is plain PyTorch (index tensors; no compiled extension), batched, and runs on the
# CPU and on CUDA with the same code. The official implementations are a Torch7/CUDA library and
# an unsupported Caffe fork.

# %%
import numpy as np
import torch

from course_lib import config, results, viz
from course_lib.data import make_shape, voxelize
from course_lib.experiments import octrees as E
from course_lib.geometry.octree import (
    OctreeConv3d,
    build_octree,
    conv_operator,
    octree_pool,
    octree_unpool,
)
from course_lib.models.ogn import PROP_KNOWN, PROP_PRED, ogn_loss

print(config.describe())
SZ = config.sizes(prefix="ch04.")
torch.set_num_threads(min(2, torch.get_num_threads()))
try:
    from course_lib.data import reserved_seed

    DEMO = reserved_seed("demo")
except ImportError:  # older data layer
    DEMO = 1

# %% [markdown]
# ## 1. The hybrid grid-octree
#
# A full octree over a $256^3$ grid has depth 8, and walking it from the root to a voxel takes 8
# dependent steps. OctNet instead cuts the volume into a **regular grid of shallow octrees**, each
# of depth $D=3$ (so one tree covers $8^3$ voxels). With $G = R / 2^D$ trees per axis, level $l$ of
# the trees ($0 \le l \le D$) forms a grid of resolution $G\,2^l$ over the whole volume:
# level 0 is the grid of roots, level $D$ the voxels.
#
# **Structure as a bit string.** A tree is described by one bit per possible inner node, in
# breadth-first order: bit 0 says whether the root is split, bits 1..8 its 8 children, bits
# 9..72 the 64 grandchildren -- $1 + 8 + 64 = 73$ bits, and the children of bit $i$ are the bits
# $8i+1 \dots 8i+8$, so no pointer is stored. OctNet packs them in four 32-bit integers per tree;
# we pack them in $\lceil 73/32 \rceil = 3$.
#
# **Values on the leaves.** Every leaf (a cell that is not split) holds one value per channel, in
# the leaves' breadth-first order, tree after tree, plus one integer per tree: the number of
# leaves before it (`prefix_leafs`), to find a tree's values without scanning. That is all the
# memory the octree *stores*: `Octree.nbytes` counts these three arrays. The operations of sections 4
# and 5 build working tables on top of it (per-leaf geometry, the convolution operator, neighbour
# lists; section 7 counts them), and for a one-channel occupancy a dense *bit mask* is a fair rival to compare with (printed
# below): octrees pay off for feature maps of many channels, where every leaf saves a float per
# channel and per voxel it covers.
#
# A cell is split exactly when it is **mixed**, i.e. when it holds both full and empty voxels. A
# split adds 7 leaves (one leaf becomes 8), so
# $$\#\text{leaves} = G^3 + 7 \sum_{l=0}^{D-1} \#\text{mixed cells of level } l .$$

# %%
R = SZ["widget_resolution"]
shape = make_shape("chair", DEMO)
occ = voxelize(shape, R)
tree = build_octree(occ, tree_depth=SZ["tree_depth"])
print(tree)
assert torch.equal(tree.to_dense()[0].bool(), occ)  # the round trip is exact
print(f"octree: {tree.nbytes} bytes stored; dense float32 grid: {tree.dense_nbytes()} bytes "
      f"({tree.dense_nbytes() / tree.nbytes:.1f}x the octree); dense bit mask: {R ** 3 // 8} bytes "
      f"({R ** 3 / 8 / tree.nbytes:.2f}x the octree)")

# the bit string of the first tree that is split, read back from its three int32 words
t = int(torch.nonzero(tree.bits[:, 0] & 1)[0])
bits = [(int(tree.bits[t, i // 32]) >> (i % 32)) & 1 for i in range(73)]
print(f"tree {t}: root {bits[0]} | level 1 {''.join(map(str, bits[1:9]))} | level 2 "
      f"{''.join(map(str, bits[9:73]))}")

# %% [markdown]
# ## 2. Three cell states
#
# At every level, a cell is **empty** (no full voxel), **full** (all voxels full) or **mixed**
# (any other configuration). These are OGN's three classes, with ids 0, 1, 2. Only mixed cells have
# children; a voxel (level $D$) is never mixed. The table counts the cells that *exist* at each
# level (the roots, then the children of mixed cells) against the cells of a dense grid of that
# resolution.

# %%
print(E.rows_table(E.level_counts(tree)))

# %% [markdown]
# ### The widget: slice through the octree
#
# Pick a level and a plane. Left: the states of that level's cells crossed by the plane
# (light = empty, blue = full, orange = mixed); at the coarse levels nearly everything is empty
# or mixed, and mixed cells hug the surface. Right: the side of the leaf that holds each voxel --
# big cells away from the surface, single voxels along it. The title compares the octree's memory
# with the dense grid's.

# %%
cats = ("chair", "airplane", "mug", "table", "lamp")
trees = {c: build_octree(voxelize(make_shape(c, DEMO), R), SZ["tree_depth"]) for c in cats}


def show_slice(category="chair", level=2, plane=R // 2, axis=2):
    return E.slice_figure(trees[category], level, plane, axis, title=category)


viz.interact(show_slice, category=list(cats), level=(0, SZ["tree_depth"], 1, 2), plane=(0, R - 1, 1, R // 2),
             axis=[2, 0, 1])

# %% [markdown]
# ## 3. The memory curve
#
# The dense grid grows as $R^3$; the octree grows with the number of leaves, which are
# concentrated along the surface: roughly $R^2$. The curves below are computed live at this
# profile's resolutions (one shape per category); the benchmark measures one shape per category at
# $32^3 \dots 256^3$, and meshes read through the loaders up to $128^3$ (trimesh primitives and a
# ShapeNet-lite mesh written and read back, unless `COURSE_MODELNET_DIR` points at ModelNet).
# Chapter 03's dense curve is the dashed line, and a one-bit-per-voxel mask the dotted one. Tatarchenko et al. report, in their memory and runtime comparison on ShapeNet cars, that the
# saving of the OGN decoder grows with the resolution, up to resolutions where the dense decoder no
# longer fits in GPU memory [Tatarchenko2017].

# %%
live = E.compression(categories=cats, progress=False)
E.memory_figure(live, title=f"octree vs dense bytes (live, {config.get_profile()} profile)")

# %%
MEASURED = results.show("octrees", "laptop")
if MEASURED is not None and "compression" in MEASURED.data:
    per = MEASURED.data["compression"]["per_resolution"]
    print(E.rows_table([{"resolution": int(k), **v} for k, v in per.items()]))
else:
    ratio = {R_: sum(r["ratio"] for r in live if r["resolution"] == R_) / len(cats)
             for R_ in sorted({r["resolution"] for r in live})}
    print("live (ci-sized) mean compression, dense float32 / octree:",
          {k: round(v, 1) for k, v in ratio.items()})

# %% [markdown]
# **Solid or surface voxels?** Everything so far voxelised the *solid*: a cell is full when its centre is
# inside. Many pipelines store only the *surface* voxels instead (O-CNN's octrees hold the surface, with
# normals), the one-voxel shell of the solid (`voxel_shell`: the full cells with an empty face neighbour).
# The shell has far fewer full voxels, about $R^2$ instead of $R^3$; as an octree it is another story,
# because the shell has a boundary on both sides of its one-voxel layer, and mixed cells are what the octree
# pays for. Live, one shape, then the benchmark's table over the demo shapes with the fitted exponents:

# %%
from course_lib.data import voxel_shell  # noqa: E402

solid_ = voxelize(make_shape("mug", E._demo_seed()), SZ["widget_resolution"])
for kind_, occ_ in (("solid", solid_), ("shell", voxel_shell(solid_))):
    t_ = build_octree(occ_, SZ["tree_depth"])
    print(f"{kind_:5s} at {SZ['widget_resolution']}^3: {int(occ_.sum()):6d} full voxels, {t_.num_cells:6d} octree "
          f"leaves, {t_.nbytes:7d} octree bytes")
SH = results.get("octrees", "shell", profile="laptop")
if SH is None:
    print("shell not measured yet: `COURSE_PROFILE=laptop python benchmarks/octrees.py --part shell`")
else:
    print(E.rows_table([{"grid": kind_, "R": R_, **SH["per_resolution"][f"{kind_}/{R_}"]}
                        for R_ in SH["resolutions"] for kind_ in ("solid", "shell")]))
    print({kind_: {k: round(v, 2) for k, v in e.items()} for kind_, e in SH["exponents"].items()},
          "(fitted exponents k of bytes ~ R^k)")

# %% [markdown]
# ## 4. Convolution on the octree: once per cell
#
# Inside a leaf the input is constant, so a $3\times3\times3$ convolution gives the same result at
# every voxel of the leaf that is at least one voxel away from its border: the sum of the kernel
# times the constant. OctNet exploits this and keeps one output value per leaf (the structure of
# the output is the structure of the input), the cell's *average* of the dense result, and only
# the border needs neighbours [Riegler2017].
#
# We compute exactly that number with a **sparse formulation** instead of OctNet's hand-written
# per-face, per-edge and per-corner kernels. Write $m_o(c)$ for the mean of the input over leaf
# $c$ shifted by the kernel offset $o \in \{-1,0,1\}^3$. The output of leaf $c$ is
# $$ y_c = b + \sum_o W_o\, m_o(c), \qquad m_o(c) = \sum_{c'} \frac{|(c+o)\cap c'|}{|c|}\, x_{c'} ,$$
# a fixed linear mix of $c$ and the leaves it touches, with weights that depend only on the
# structure. We store these weights once as a sparse matrix $S$ of shape $(27N, N)$
# (`conv_operator`), and a layer is one `torch.sparse.mm` followed by one matrix product with the
# $(27 C_{in}) \times C_{out}$ kernel. A homogeneous cell of $s^3$ voxels costs one row instead of
# $s^3$ dense outputs; the code runs unchanged on CUDA, and autograd differentiates it. Why not
# OctNet's kernels? They are faster, but they are a few thousand lines of CUDA; ours is a few
# lines of PyTorch whose result is checked against the dense convolution in the unit tests.

# %%
small = build_octree(voxelize(shape, 16), tree_depth=2)
x = torch.randn(small.num_cells, 2)
conv = OctreeConv3d(2, 4)
y = conv(small, x)
dense = torch.nn.functional.conv3d(small.with_values(x).to_dense(), conv.weight, conv.bias, padding=1)
# average the dense result over each leaf (the reference)
lv = small.leaves()
ref = torch.stack([dense[0, :, o[0]:o[0] + s, o[1]:o[1] + s, o[2]:o[2] + s].mean((1, 2, 3))
                   for o, s in zip(lv.origin.tolist(), lv.size.tolist())])
print(f"octree conv vs dense conv averaged per leaf: max difference {(y - ref).abs().max():.2e}")
S = conv_operator(small)
print(f"{small.num_cells} leaves -> {y.shape[0]} outputs (dense: {16 ** 3} outputs); "
      f"operator: {S.shape[0]} x {S.shape[1]}, {S._nnz()} non-zeros")

# %% [markdown]
# **Pooling and unpooling.** OctNet's $2\times2\times2$ grid pooling merges each group of 8 sibling
# voxels into one voxel of the coarser grid, and every bigger cell simply keeps its value at half its
# size; unpooling doubles every cell. Both equal their dense counterparts (max pooling,
# nearest-neighbour upsampling) on the dense grid, and unpooling invents no detail: deciding
# where to subdivide is the decoder's job.

# %%
pooled = octree_pool(small, x, reduce="max")
up = octree_unpool(small, x)
print(f"pool: R {small.resolution} -> {pooled.resolution}, leaves {small.num_cells} -> {pooled.num_cells}; "
      f"equals dense max-pool: {torch.allclose(pooled.to_dense(), torch.nn.functional.max_pool3d(small.with_values(x).to_dense(), 2))}")
print(f"unpool: R {small.resolution} -> {up.resolution}, leaves {small.num_cells} -> {up.num_cells}")

# %% [markdown]
# **An octree encoder, trained and timed.** OctNet's point is an *encoder* that runs at resolutions a
# dense 3D CNN cannot afford. `models.octnet.OctNetClassifier` stacks `OctreeConv3d`, ReLU and
# `octree_pool` blocks, then takes a global max over each shape's leaves; `DenseGridClassifier` is
# the same layout on dense grids (`nn.Conv3d`, `max_pool3d`). With the same weights the two give the
# same logits when every leaf is one voxel, which the unit tests check; on real shapes the octree
# network averages each convolution over a leaf, OctNet's approximation. Live, the two on the same
# shapes with the same weights:

# %%
from course_lib.models.octnet import DenseGridClassifier, OctNetClassifier  # noqa: E402

torch.manual_seed(0)
octnet_ = OctNetClassifier(len(cats), tuple(SZ["octnet_channels"]))
dense_ = DenseGridClassifier(len(cats), tuple(SZ["octnet_channels"])).load_octnet(octnet_)
grids_ = torch.stack([voxelize(make_shape(c, DEMO), SZ["octnet_resolution"]) for c in cats[:2]])
with torch.no_grad():
    print("octree logits:", octnet_(build_octree(grids_, SZ["tree_depth"]))[0, :4].numpy().round(4))
    print("dense logits: ", dense_(grids_)[0, :4].numpy().round(4))

# %% [markdown]
# Everything but the leaf values depends only on the input's structure: the octree, each layer's
# operator $S$ and where each leaf goes when pooled. Building them is work a network need not repeat
# (the `octree` and `octree (cached)` rows of the step-cost table below measure how much), so the
# classifier keeps each shape's structure in a `StructureCache` the first time it
# sees the shape and, for a batch, stacks its shapes' operators block by block (leaves are stored
# shape by shape, so a batch's operator is block-diagonal). The logits and gradients are the same as
# building everything from the batch (a unit test checks it); the price is memory, the structures kept per
# shape (the last column of the step-cost table below).
#
# The benchmark trains both networks, with the same grids, batches, epochs and optimiser, over three
# seeds at every training resolution of the profile ($32^3$, $64^3$ and $128^3$ on the laptop; every
# octree run starts with an empty cache, so its time includes building its shapes' structures once),
# and times one training step of each as the resolution grows: `octree` builds the structure in the
# step, `octree (cached)` finds it in the cache:

# %%
ON = results.get("octrees", "octnet", profile="laptop")
if ON is None or "resolutions" not in ON:
    print("octnet not measured yet: `COURSE_PROFILE=laptop python benchmarks/octrees.py --part octnet`")
else:
    print(E.rows_table([{"R": R_, "encoder": k, "accuracy (mean over seeds)": float(np.mean(a)),
                         "test shapes": ON["n_test"][str(R_)], "steps": ON["budgets"][str(R_)][k]["steps"],
                         "train s": ON["budgets"][str(R_)][k]["seconds"]}
                        for R_ in ON["resolutions"] for k, a in ON["accuracy"][str(R_)].items()]))
    print(E.rows_table([{k: r.get(k, "") for k in ("encoder", "resolution", "seconds", "peak_bytes", "skipped",
                                                   "cache_bytes_per_shape")}
                        for r in ON["cost"]]))
    for R_ in ON["resolutions"]:
        results.say("octrees", f"octnet_vs_dense_accuracy_{R_}")

# %% [markdown]
# ## 5. Decoding an octree: classification at every level
#
# An encoder can reuse the input's structure; a *decoder* cannot: the structure of the output is
# what it must predict. OGN [Tatarchenko2017] decodes coarse to fine:
#
# 1. the latent code becomes a small dense grid -- here the $G^3$ grid of roots -- with a few
#    transposed convolutions, as in chapter 03;
# 2. at every level each cell is classified **empty / full / mixed**;
# 3. only the mixed cells are expanded into 8 children (`expand_cells`: `repeat_interleave` of the
#    parents' indices and features), which get their features from their parent through one
#    linear map per child position, then a $3\times3\times3$ convolution among the cells of that
#    level (`SparseConv3d`, a gather of the 27 neighbours and one matrix product);
# 4. the loss is the sum over levels of the mean cross-entropy against the ground-truth octree's
#    states, $\mathcal L = \sum_{l=0}^{D} \frac{1}{N_l}\sum_{c \in \text{level } l} \mathrm{CE}(p_c, s_c)$.
#
# Since the ground-truth octree is known, every level is supervised. **Propagation modes:** in
# training the expanded cells are the ground-truth mixed cells (`PROP_KNOWN`), so the finer levels
# see the right cells from the first step; at test time the decoder expands the cells it *predicts*
# as mixed (`PROP_PRED`). A predicted cell that does not exist in the ground truth lies inside a
# homogeneous leaf and takes that leaf's state as its target. Below the small dense grid of roots,
# work and memory grow with the number of mixed cells -- the surface -- not with $R^3$. One place
# needs care: to find the 27 neighbours of each cell, `neighbour_index` can fill a dense int32 lookup
# table of the level's whole grid, $(r+2)^3$ entries however few cells the level holds. It does so only
# while that table is no larger than the $(N, 27)$ index it returns (`lookup_method`: a level at least
# about 2 % full); otherwise it sorts the cells' keys and finds each row of three neighbours with one
# binary search, which needs a few integers per cell and no dense array (section 7 measures both).
# (Simplification: OGN also carries the neighbours of mixed cells along as convolution context; we do
# not.)
#
# **Relatives.** `SparseConv3d` computes outputs only at the cells that exist and reads only existing
# neighbours: what Graham, Engelcke and van der Maaten (CVPR 2018) call a *submanifold* sparse
# convolution, the building block of today's sparse 3D libraries (MinkowskiEngine, spconv,
# TorchSparse); a plain sparse convolution would also create outputs at every empty neighbour and let
# the active set grow layer after layer. O-CNN (Wang et al., SIGGRAPH 2017) is the octree encoder of the
# same family: it stores only the finest non-empty octants of the *surface* (with normals) and runs
# its convolutions there, level by level, so its input is the shell of the paragraph on solid and
# surface voxels above, not the solid.
#
# The cell below trains (or loads) the OGN auto-encoder with this profile's sizes. In the `ci`
# profile that is a single epoch on a handful of shapes: its predictions are meaningless there, and
# the cell only shows the mechanics; the laptop profile trains it for real (see the benchmark).

# %%
train = E.octree_data("train")
val = E.octree_data("val")
test = E.octree_data("test")
ogn, hist = E.train_ogn(data=train, val_data=val)
with torch.no_grad():
    vox = test["voxels"][:2]
    target = build_octree(vox > 0.5, SZ["tree_depth"])
    known = ogn(vox, target, PROP_KNOWN)
    pred = ogn(vox, target, PROP_PRED)
print("cells held per level, known structure:    ", known.num_cells)
print("cells held per level, predicted structure:", pred.num_cells)
print(f"dense grid: {2 * ogn.resolution ** 3} cells at the last level")
print({k: round(float(v), 3) for k, v in ogn_loss(pred).items()})

# %%
res = E.evaluate_iou(ogn, test["voxels"])
print(f"live ({config.get_profile()} profile) OGN auto-encoding IoU on {len(res['iou'])} test shapes: "
      f"{res['iou'].mean():.3f}")
rec = pred.occupancy()[0]
viz.subplots([viz.plot_voxels(vox[0] > 0.5, title="input"), viz.plot_voxels(rec, title="OGN, predicted structure")],
             titles=["input", "decoded"])

# %% [markdown]
# **On your own data.** The auto-encoders of this section run on ModelNet or ShapeNetCore with one
# switch: set `COURSE_DATASET=modelnet` (or `shapenetcore`) and `COURSE_MODELNET_DIR`
# (`COURSE_SHAPENET_DIR`) before starting Jupyter, or pass `dataset="modelnet", root=...` to
# `E.octree_data` and `E.train_ogn`. The grids then come from the repaired meshes (chapter 01) and the
# checkpoints carry the dataset's name, so they never mix with ShapeNet-lite's. The memory sections keep
# ShapeNet-lite's demo shapes (they measure the representation, not the data);
# `python benchmarks/octrees.py --dataset modelnet --root DIR` runs the benchmark on your meshes.

# %% [markdown]
# ### 5b. From a single image: is a higher resolution worth it?
#
# OGN's best-known figure decodes ShapeNet cars from one image at $32^3$, $64^3$ and $128^3$, and the finer
# ones show detail the coarse one cannot [Tatarchenko2017]. The honest version of that question scores every prediction at
# the *same* resolution: does a $128^3$ prediction beat a $32^3$ prediction simply upsampled to $128^3$ (each
# voxel a $4^3$ block)? `models.ogn.OGNSingleView` is chapter 03's image encoder in front of the OGN
# decoder; the benchmark trains one per resolution on the same shapes, views, epochs and batches (the best
# epoch of each on val), three training seeds per resolution, upsamples every prediction to the largest
# resolution (`E.upsample_grid`) and scores it there (`E.svr_iou_at`); the comparisons are made over the
# seeds and, paired, over the test shapes:

# %%
SVR = results.get("octrees", "svr", profile="laptop")
if SVR is None:
    print("svr not measured yet: `COURSE_PROFILE=laptop python benchmarks/octrees.py --part svr`")
else:
    hi_ = SVR["max_resolution"]
    print(E.rows_table([{"resolution": R_, f"IoU at {hi_}^3": float(np.mean(SVR["per_resolution"][str(R_)]["iou_at_max"])),
                         "per seed": ", ".join(f"{x:.3f}" for x in SVR["per_resolution"][str(R_)].get("seed_means", [])),
                         "IoU (own resolution)": float(np.mean(SVR["per_resolution"][str(R_)]["iou_native"])),
                         "steps": SVR["budgets"][str(R_)]["steps"], "train s": SVR["budgets"][str(R_)]["seconds"]}
                        for R_ in SVR["resolutions"]]))
    for c in results.claims("octrees", "laptop"):
        if c["id"].startswith("svr_"):
            results.say("octrees", c["id"])

# %% [markdown]
# The octree decoder is also one column of chapter 11's encoder × decoder table (`experiments.modular`):
# there the same OGN decoder, at $32^3$, is trained from an image, a point cloud and a voxel grid with the
# recipe and steps every other decoder gets, and scored under chapter 11's conventions. Its cells, beside
# the claim comparing the image and the voxel encoders:

# %%
from course_lib.experiments.modular import print_decoder_cells  # noqa: E402

print_decoder_cells("octree", ("image", "voxels"))

# %% [markdown]
# ## 6. The memory of the two decoders
#
# Here is the peak memory of one forward and backward pass of the OGN decoder (known structure)
# against chapter 03's dense decoder at the same final resolution, computed live at this profile's
# sizes; the benchmark measures $32^3$, $64^3$ and $128^3$ on the laptop, and the auto-encoding IoU
# of both at $64^3$.

# %%
cost = E.decoder_cost(repeat=1)
print(E.rows_table(cost))
if MEASURED is not None and "cost" in MEASURED.data:
    print("measured (cost, laptop profile):")
    print(E.rows_table(MEASURED.data["cost"]["rows"]))

# %% [markdown]
# **What the auto-encoding comparison holds equal, and what it does not.** The benchmark trains both
# auto-encoders at $64^3$ on the same grids, with the same batches, epochs and optimiser (Adam with
# chapter 03's cosine decay), hence the same number of optimiser steps, over three training seeds;
# each keeps its epoch with the best validation loss. The dense decoder gets chapter 03's recipe:
# the weighted BCE, its read-out started at the prior, and a probability threshold chosen on the
# validation shapes. What differs is the part under study and what comes with it: the **loss**
# (OGN's per-level three-class cross-entropy against the weighted voxel BCE), the **decision rule**
# (OGN takes the most likely state of each cell, the dense model cuts a probability) and the
# **width** of the decoders (the table lists each row's steps, examples, seconds and parameters). So
# the IoU gap says what predicting the structure costs under one training budget, and the time and
# memory columns what it saves.
#
# **Absolute quality**: a few minutes of CPU training on a few dozen shapes gives modest IoUs at
# $64^3$ for both, and the gap, not the absolute value, is the chapter's point (the `gpu` profile
# trains on more shapes for longer). Look at the per-category rows: which categories do both
# decoders find hardest, and do thin parts explain it?

# %%
ae = MEASURED.data.get("ae", {}) if MEASURED is not None else {}
if "per_seed" in ae:
    print(E.rows_table(E.ae_rows(ae)))
    print(E.rows_table([{"category": c, **v} for c, v in ae["per_category"].items()]))
results.say("octrees", "dense_vs_ogn_iou")
results.show_goals("octrees")

# %% [markdown]
# ## 7. Stored bytes and working bytes
#
# Section 3 counted what an octree **stores**: split bits, one integer per tree and one float per leaf.
# Nothing computes on that alone. Every operation of this chapter first builds **working** tensors
# from it, and these are what the memory of a program is made of:
#
# - the per-leaf geometry (`Octree.leaves()`: tree, level, Morton code, batch, cell, origin and size of
#   every leaf, as int64, plus the sorted leaf keys that `locate` searches), cached once per structure;
# - the convolution's sparse operator (`conv_operator`): up to 27 weighted neighbours per leaf, with
#   two int64 indices and a float32 value each;
# - in the OGN decoder, for every level: the cells' coordinates, their features and logits, and at each
#   sparse convolution the gathered $(N, 27 C)$ columns, the $(N, 27)$ neighbour index and the lookup
#   (a dense table or the sorted keys) that built it.
#
# `memory_account` adds up `element_size() * numel()` of these tensors as the course's code creates
# them (the decoder's through `trace_buffers`, one forward and backward pass), next to a dense float32
# grid and a dense bitmask (eight voxels per byte), and fits the growth exponent $k$ of
# bytes $\sim R^k$ for each row. The decoder's total is a *sum* of every working tensor created in the
# pass, not all alive at once. Autograd's saved tensors and the process's peak resident memory are
# two independent checks on it. First live, for the demo chair at this profile's small resolutions:

# %%
acc_res = [R_ for R_ in SZ["compression_resolutions"] if R_ <= SZ["widget_resolution"]]
live_acc = E.memory_account(acc_res, ("chair",))
print(E.rows_table(E.account_summary(live_acc)))
print("decoder lookups per resolution:", {r["resolution"]: r["lookups"] for r in live_acc})

# %% [markdown]
# The benchmark's account, at $32^3 \dots 256^3$ on the profile's shapes, with the exponents, where
# the fitted lines meet, one decoder step per shape at the two largest resolutions with its peak
# resident memory, and the two neighbour lookups side by side:

# %%
WM = results.get("octrees", "working_memory", profile="laptop")
if WM is None:
    print("working_memory not measured yet: `COURSE_PROFILE=laptop python benchmarks/octrees.py --part working_memory`")
else:
    print(E.rows_table(E.account_summary(WM["rows"])))
    lo, hi = min(WM["resolutions"]), max(WM["resolutions"])
    for a, b in (("octree_stored_bytes", "dense_bit_bytes"), ("octree_working_bytes", "dense_float_bytes"),
                 ("decoder_working_bytes", "dense_float_bytes")):
        Rx = E.crossing_resolution(WM["rows"], a, b)
        where = "" if Rx is None else f"R = {Rx:.0f}" + ("" if lo <= Rx <= hi else f" (extrapolated beyond {lo}..{hi})")
        print(f"{E.ACCOUNT_LABELS[a]} = {E.ACCOUNT_LABELS[b]} where the fitted lines meet: {where or 'parallel'}")
    print(E.rows_table([{k: d[k] for k in ("shape", "resolution", "mixed_cells", "cells", "accounted_bytes",
                                          "autograd_saved_bytes", "peak_rss_bytes", "lookups")}
                        for d in WM["decoder_steps"]]))
    print(E.rows_table([{"R": x["resolution"], "level grid": x["level_resolution"], "cells": x["cells"],
                         "index bytes": x["index_bytes"], "table path bytes": x["table_lookup_bytes"],
                         "sorted path bytes": x["sort_lookup_bytes"], "same index": x["sort_same"],
                         "chosen": x["chosen"], "table s": x["table_seconds"], "sort s": x["sort_seconds"]}
                        for x in WM["lookups"]]))
    print(WM["timing_note"])

# %% [markdown]
# The OGN decoder's working bytes need a rival counted the same way: the dense decoder's. Running it at
# $256^3$ would take gigabytes, so `dense_decoder_buffers` runs it on PyTorch's *meta* device, where
# tensors have shapes and no data, and counts what autograd keeps for the backward pass exactly as for
# the OGN (a unit test checks the meta count against a real run at small sizes). Live at this
# profile's sizes, then the benchmark's table and goal:

# %%
for R_ in acc_res:
    d_ = E.dense_decoder_buffers(R_, latent_dim=SZ["latent_dim"], base_channels=SZ["dense_channels"])
    print(f"dense decoder (base {SZ['dense_channels']}) at {R_}^3: forward outputs {d_['forward_bytes'] / 2**20:.2f} MiB, "
          f"autograd saved {d_['autograd_saved_bytes'] / 2**20:.2f} MiB")
DW = results.get("octrees", "dense_working", profile="laptop")
if DW is None:
    print("dense_working not measured yet: `COURSE_PROFILE=laptop python benchmarks/octrees.py --part dense_working`")
elif WM is not None:
    ogn_saved = {R_: float(np.mean([r["decoder_autograd_saved_bytes"] for r in WM["rows"] if r["resolution"] == R_]))
                 for R_ in WM["resolutions"]}
    print(E.rows_table([{"decoder": f"dense (base {r['base_channels']})", "R": r["resolution"],
                         "dense autograd saved": r["autograd_saved_bytes"],
                         "OGN autograd saved (mean)": ogn_saved.get(r["resolution"], float("nan")),
                         "OGN / dense": ogn_saved.get(r["resolution"], float("nan")) / r["autograd_saved_bytes"]}
                        for r in DW["rows"]]))
    from course_lib.experiments.protocol import goal_sentence

    for g in results.goals("octrees", "laptop"):
        if g["id"] == "decoder_working_ratio":
            print(goal_sentence(g))

# %% [markdown]
# **Reading the account.** The stored octree is the small row, and it stays small: its exponent sits
# well below 3. Set it beside the float32 grid in the table, then beside the honest rival for a single
# channel of occupancy, the bitmask: the lines printed above say where the fitted lines of the stored
# octree and the bitmask meet. The working rows tell a different story. The per-leaf cache spends about
# a dozen int64 per leaf where the stored octree spends a few bytes, and the convolution operator spends
# far more (27 neighbours, each with two indices and a weight): read the working total against the
# dense float32 row, resolution by resolution, and where their fitted lines meet. The sparse structure
# pays where the dense side multiplies and the sparse side does not: the operator and the leaf cache are
# built once per structure and shared by every channel and every layer, while a dense feature map costs
# $4 C R^3$ bytes for $C$ channels, each layer again (section 6's decoder steps measured both sides with
# tens of channels); with one channel, a few layers, or coarse grids, the bookkeeping is what you pay for.
#
# The OGN decoder's working bytes grow with the mixed cells: its exponent is that of the surface, not
# 3, and most of it is the gathered convolution columns, not the indices. The dense part that is left
# is the grid of roots ($R^3/512$ cells for trees of depth 3) and, where a level is at least 2 % full,
# a lookup table no larger than the neighbour index. The peak resident memory of a real step sits
# above the account: the backward pass allocates gradients of the same size as the columns, and the
# allocator rounds. The lookup table shows the trade: the dense table is faster where it is small,
# the sorted keys need memory in proportion to the cells but pay a binary search per row (the times
# are from a shared machine: read them as rough). What we did **not** measure: GPU memory (the
# account's bytes are the same tensors, but CUDA's caching allocator adds its own slack), the octree
# *encoder's* activations in a training step, and anything above $256^3$.

# %% [markdown]
# ## 8. The chapter on both families
#
# Lecture 01 measured how close ShapeNet-lite's test shapes sit to their nearest training shape: in the base
# family most test shapes have a near-duplicate among the training shapes, in the wide family they sit farther.
# Every benchmark of this chapter was run on both families with the same recipes (`COURSE_VARIETY=base` or
# `wide`); the numbers above are the active family's, named in the notebook's first line. The two families'
# test shapes differ, so nothing is paired across them: each claim keeps its own difference, standard error
# and verdict, read within its family.
# `results.show_families` prints how many of the chapter's claims keep their verdict from one family to the
# other, both sentences of each claim that changes and each goal met in one family only (or the command that
# measures a family not measured yet). Before reading, predict: which of this chapter's comparisons should
# change when the test shapes stop resembling the training shapes?

# %%
for name in ("octrees",):
    results.show_families(name)
    print()

# %% [markdown]
# ## 9. Summary
#
# - A **hybrid grid-octree** is a grid of shallow trees (depth 3 in OctNet); each tree's structure is
#   a 73-bit string in breadth-first order, its values live on the leaves, and the round trip to the
#   dense grid is exact.
# - A cell is **empty, full or mixed**; only mixed cells are split, so the leaves follow the surface
#   and the number of leaves follows the surface area -- about $R^2$ in the limit of fine grids -- instead
#   of $R^3$ (coarse grids are in between, and a one-bit mask is a fair rival for a single channel).
# - A convolution keeps the structure and costs one output per leaf; here it is a structural sparse
#   matrix times the features. Pooling and unpooling change the resolution and keep cells whole.
# - An encoder's structure depends only on its input, so its operators can be built once per shape and
#   kept (memory for time); a decoder's cannot, its structure is what it predicts.
# - An **OGN decoder** turns generation into classification at every level, supervised by the
#   ground-truth octree; it trains with the known structure and generates with the predicted one.
# - **Stored is not worked with**: the octree stores a few bytes per leaf, but its operations build
#   per-leaf caches and a sparse operator many times larger; the structure pays once many channels
#   and layers share them. The OGN decoder's working memory grows with the mixed cells, as long as its
#   neighbour lookup uses sorted keys wherever a dense table would cost more than the index it builds.
#
# ## 10. Exercises
#
# 1. Change `tree_depth` to 1, 2 and 4 and plot `nbytes` against it for one shape. Why does OctNet
#    keep trees shallow although deeper trees compress better?
# 2. Count the leaves of a sphere of radius $r$ at resolution $R$ and check the $R^2$ growth.
# 3. With `OctreeConv3d`, verify that on a constant input the output of a big interior cell is the
#    kernel's sum times the constant. Which leaves differ, and why?
# 4. Train the OGN auto-encoder with `PROP_PRED` from the first step (decode with the predicted
#    structure and compute `ogn_loss` on it). What goes wrong early in training?
# 5. At $128^3$, how many cells does the OGN decoder hold at its last level, compared with $128^3$?
#
# ## References
#
# - [Riegler2017] G. Riegler, A. O. Ulusoy, A. Geiger. OctNet: Learning Deep 3D Representations at
#   High Resolutions. CVPR 2017.
# - [Tatarchenko2017] M. Tatarchenko, A. Dosovitskiy, T. Brox. Octree Generating Networks: Efficient
#   Convolutional Architectures for High-resolution 3D Outputs. ICCV 2017.
