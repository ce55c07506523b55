# %% [markdown]
# # 03 · Voxels: 3D convolutions, VoxNet, 3D-R2N2, and the price of a dense grid
#
# The simplest way to give a shape to a neural network is to cut its bounding box into a regular
# grid of $R \times R \times R$ little cubes, *voxels*, and to store one bit per cube: full or
# empty. An occupancy grid is an image with one more axis, so everything that works on images
# carries over unchanged: convolutions, pooling, transposed convolutions, encoder-decoders. This
# is why the first deep 3D models were voxel models: VoxNet [Maturana2015] classifies grids,
# 3D ShapeNets [Wu2015] generates them, 3D-R2N2 [Choy2016] predicts them from images.
#
# The catch is in the exponent. A grid stores $R^3$ cells, but a surface only meets about $R^2$
# of them: most of the memory (and of the computation of a dense 3D CNN) is spent on empty space
# and on the inside of the shape, and doubling the resolution multiplies every activation (and the
# work of every layer) by eight.
# This chapter builds the models, trains them on ShapeNet-lite, and **measures** that cost;
# chapter 04 (octrees) is the answer to it.
#
# Plan: (1) occupancy grids and what they cost; (2) from 2D to 3D convolution; (3) VoxNet;
# (4) a voxel auto-encoder and its loss; (5) single-view reconstruction (3D-R2N2) and the
# multi-view recurrence; (6) IoU and its threshold; (7) blocky surfaces, meshes and the
# Chamfer distance; (8) the curse of dimensionality, measured; (9) a widget; (10) the goals.
#
# The code lives in `course_lib.models.voxels` (models) and `course_lib.experiments.voxels`
# (data, training, evaluation); the benchmark `benchmarks/voxels.py` measures exactly what this
# notebook shows.

# %%

import torch

from course_lib import config, results, viz
from course_lib.data import make_shape, reserved_seed, voxelize
from course_lib.experiments.mesh_shape import row_shape
from course_lib.experiments import voxels as V
from course_lib.models import voxels as M

print(config.describe())

# %% [markdown]
# Every size comes from the `ch03.*` block of `course_lib.config`. In the `ci` profile the grids are
# $16^3$ and the models are trained for a couple of epochs on a handful of shapes: the code path is
# shown, the numbers mean nothing. Measured numbers come from the laptop benchmark's results file
# (`benchmarks/voxels.py` writes `benchmarks/results/voxels-laptop.json`), never typed in.

# %%
SZ = config.sizes(prefix="ch03.")
print({k: SZ[k] for k in ("resolution", "categories", "train_per_category", "test_per_category",
                          "ae_epochs", "svr_epochs", "voxnet_epochs")})
MEASURED = results.show("voxels", "laptop", command="COURSE_PROFILE=laptop python benchmarks/voxels.py")
LAB = MEASURED.data if MEASURED is not None else {}

# %% [markdown]
# ## 1. Occupancy grids and what they cost
#
# A grid of resolution $R$ splits $[-1, 1]^3$ into $R^3$ cells of side $h = 2/R$; cell $(i, j, k)$
# (index order $x, y, z$) is full when its **centre** $c_{ijk} = -1 + (i + \tfrac12, j + \tfrac12,
# k + \tfrac12)\,h$ is inside the shape (`course_lib.data.voxelize`). A dense float32 grid takes
# $4R^3$ bytes; a bit mask $R^3/8$. Both grow as $R^3$, while the cells that touch the surface
# grow as its area divided by $h^2$, i.e. as $R^2$: the *fraction* of surface cells falls as $1/R$.

# %%
demo = make_shape("chair", reserved_seed("demo"))
figs, rows = [], []
for R in (8, 16, 32):
    g = voxelize(demo, R)
    figs.append(viz.plot_voxels(g))
    rows.append((R, int(g.sum()), V.grid_bytes(R), V.surface_fraction(g.float())))
viz.subplots(figs, titles=[f"{R}^3" for R in (8, 16, 32)], height=330)

# %%
print(f"{'R':>4} {'full cells':>10} {'float32 grid':>13} {'surface cells / all cells':>26}")
for R, full, nbytes, frac in rows:
    print(f"{R:>4} {full:>10} {nbytes / 1024:>10.1f} KiB {frac:>26.4f}")
print("dense float32 grid at 128^3:", V.grid_bytes(128) / 2**20, "MiB; at 256^3:", V.grid_bytes(256) / 2**20, "MiB")

# %% [markdown]
# ## 2. From 2D to 3D convolution
#
# A 3D convolution with kernel size $k$ slides a $C_\text{out} \times C_\text{in} \times k \times k
# \times k$ filter over the grid:
#
# $$y_{o}[x] = b_o + \sum_{c=1}^{C_\text{in}} \sum_{\delta \in \{-\lfloor k/2\rfloor, \dots\}^3}
#   w_{o,c}[\delta]\; x_c[x + \delta].$$
#
# It has $k^3 C_\text{in} C_\text{out}$ weights ($k^2 C_\text{in} C_\text{out}$ in 2D) and costs
# that many multiply-adds **per output cell**, of which there are $R^3$. The output size follows the
# 2D rule on each axis, $\lfloor (R + 2p - k)/s \rfloor + 1$; so Conv3d($k=4$, $s=2$, $p=1$) halves
# an even $R$, and its transpose, ConvTranspose3d($k=4$, $s=2$, $p=1$), doubles it exactly:
# $(R - 1)\,s - 2p + k = 2R$. One changed input voxel changes a $k^3$ block of outputs (its
# receptive field), which is what the lab's self-check for a 3D conv block tests.

# %%
conv = torch.nn.Conv3d(1, 1, 3, padding=1, bias=False)
x = torch.zeros(1, 1, 9, 9, 9)
x[0, 0, 4, 4, 4] = 1.0
with torch.no_grad():
    touched = conv(x)[0, 0].abs() > 0
print("outputs changed by one voxel: a", tuple(int(v) for v in (touched.nonzero().amax(0) - touched.nonzero().amin(0) + 1)),
      "block;", touched.sum().item(), "cells")
up = torch.nn.ConvTranspose3d(4, 2, 4, stride=2, padding=1)
print("ConvTranspose3d(k=4, s=2, p=1):", tuple(up(torch.zeros(1, 4, 4, 4, 4)).shape[2:]), "from (4, 4, 4)")

# %% [markdown]
# ## 3. VoxNet: a 3D CNN classifier
#
# VoxNet [Maturana2015] is two convolutions, a pooling and two fully connected layers, on a $32^3$
# grid. Its official configuration (`scripts/config/shapenet10.py` of `dimatura/voxnet`):
# Conv3d(32 filters, $5^3$, stride 2) → Conv3d(32, $3^3$) → max-pool 2 → FC 128 → FC classes, leaky
# ReLU of slope $0.1$ after the two convolutions and a plain ReLU after FC 128 (the configuration leaves
# that layer at Lasagne's default nonlinearity), dropout $0.2$, $0.3$, $0.4$ after the three stages. The
# official loader (`scripts/train.py`) feeds $2v - 1$: a voxel enters as $-1$ (empty) or $+1$ (full), so empty
# space is a signal of its own rather than a zero that only the bias answers. Training uses SGD, augmented by
# $12$ rotations about the up axis, shifts of up to $2$ voxels and mirror flips of the two horizontal axes
# (probability $0.2$ each). Without padding the grids shrink $32 \to 14 \to 12 \to 6$, so the first FC layer
# sees $32 \cdot 6^3$ features. `M.VoxNet` has exactly this layout and input scaling at any resolution
# $R \ge 11$. We train it with Adam (fewer epochs on a CPU), shifts of one voxel (`V.jitter_grids`) and the
# same flips (`V.flip_grids`: each grid draws its own, where the official code flips a whole chunk of grids at
# once); ShapeNet-lite shapes are upright and aligned, so no rotation is needed.

# %%
net = M.VoxNet(10)
print(net)
print("parameters:", sum(p.numel() for p in net.parameters()))

# %% [markdown]
# **On your own data.** Set `COURSE_DATASET=modelnet` (or `shapenetcore`) and `COURSE_MODELNET_DIR`
# (`COURSE_SHAPENET_DIR`) before starting Jupyter, or pass `dataset="modelnet", root=...` to `V.voxel_data`:
# the grids are then the real meshes' voxels (inside by their repaired winding number), the views rendered with
# ShapeNet-lite's cameras; `python benchmarks/voxels.py --dataset modelnet --root DIR` runs the benchmark.

# %%
train = V.voxel_data("train", image=True, extra_views=SZ["train_views"])
val = V.voxel_data("val", image=True)
test = V.voxel_data("test", image=True, surface=True)
print(f"{len(train['label'])} training, {len(val['label'])} validation, {len(test['label'])} test shapes "
      f"({len(train['categories'])} categories, {train['voxels'].shape[-1]}^3 grids); "
      f"{V.occupied_fraction(train['voxels']):.3f} of the training voxels are full")

# %% [markdown]
# Read VoxNet's accuracy with care. ShapeNet-lite's ten procedural categories differ in their coarse
# shape (a bottle, a mug, an airplane), so a score near the maximum says that *this task* is easy, not
# that VoxNet is a strong classifier. The paper tests on ModelNet (CAD models of confusable classes,
# such as desk and table) and on real scans (Sydney Urban Objects, NYUv2) [Maturana2015]. The goal
# record at the end of the notebook says so next to the number, and section 3b poses the harder task of
# the paper's sensors: one partial, noisy scan at an unknown heading.

# %%
voxnet, h_voxnet = V.train_voxnet(data=train, val_data=val)
acc = V.accuracy(voxnet, test["voxels"], test["label"])
print(f"live ({config.get_profile()} profile): VoxNet test accuracy {acc:.3f} on {len(test['label'])} held-out shapes")
if "voxnet" in LAB:
    print(f"laptop benchmark: test accuracy {LAB['voxnet']['accuracy']:.3f} on {LAB['voxnet']['n_test']} shapes, "
          f"{LAB['voxnet']['n_classes']} classes, {LAB['voxnet']['train_seconds']:.0f} s of training")

# %% [markdown]
# ### 3b. A task on which the score means something: partial scans
#
# VoxNet was built for range sensors: its LiDAR test set (Sydney Urban Objects) holds objects seen from
# one side, at an unknown heading, with missing and noisy returns, and the paper augments and votes over
# rotations about the up axis for that reason [Maturana2015]. `V.scan_grids` makes the same kind of input
# from a ShapeNet-lite grid, in four steps:
#
# 1. rotate the shape by a random heading $\theta$ about the up axis $y$ (the sensor does not know the
#    object's pose);
# 2. look at it with an orthographic camera on the $+z$ side, raised by a random elevation $e$: pixels one
#    voxel wide, and in each pixel only the cell nearest the camera (largest $p \cdot u$ with
#    $u = (0, \sin e, \cos e)$) is seen, so the back and whatever the front hides are missing;
# 3. lose each return with probability $q$ and move the others along the ray by Gaussian depth noise;
# 4. voxelise the seen points again, in the sensor's frame.
#
# Training draws a new camera for every grid at every batch (`V.grid_batches(..., scan=...)`), so the
# network never sees the same scan twice; the validation and test shapes are scanned once each, from seeded
# cameras (`V.scan_data`). The recipe and the epochs are those of section 3; the epoch kept is again the one
# with the lowest validation loss, now on the validation scans. With $\theta = e = 0$ and no noise the scan
# keeps, in each column $(i, j)$ of the grid, exactly its full cell of largest $k$: the test of the scanner
# checks that against a direct numpy computation.

# %%
SCAN = V.scan_settings()
print("sensor:", SCAN)
shape_scans = V.random_scans(test["voxels"][:1], SCAN["noise"], SCAN["max_elevation"],
                             torch.Generator().manual_seed(0), SCAN["dropout"])[0]
viz.subplots([viz.plot_voxels(test["voxels"][0]), viz.plot_voxels(shape_scans[0])],
             titles=[f"{test['category'][0]}: full grid", "one partial scan (sensor frame)"], height=330)

# %%
test_scans = V.scan_data(test, V.scan_seed("test"))
voxnet_scan, h_voxnet_scan = V.train_voxnet(data=train, val_data=val, scan=True)
pred = V.classify(voxnet_scan, test_scans["voxels"])
print(f"live ({config.get_profile()} profile): partial-scan VoxNet test accuracy "
      f"{float((pred == test['label']).double().mean()):.3f} on {len(test['label'])} held-out shapes; "
      f"{float(test_scans['voxels'].sum((1, 2, 3)).mean()):.0f} cells per scan against "
      f"{float(test['voxels'].sum((1, 2, 3)).mean()):.0f} per full grid")

# %% [markdown]
# The laptop benchmark scores three rows on the same held-out shapes: the full-shape model on full grids,
# the same model on the scans, and the scan model on the scans; then the per-class accuracy (the
# diagonal of the confusion matrix over its row sums) and the confusion matrix of the scan model, whose
# off-diagonal cells say which categories a single view confuses. Which pairs would you expect to be
# confused when only one side is seen?

# %%
SCAN_LAB = LAB.get("voxnet_scan")
if SCAN_LAB is None:
    print("partial scans, laptop benchmark: not measured yet (`COURSE_PROFILE=laptop python benchmarks/voxels.py "
          "--part voxnet_scan`, then `--report`)")
else:
    cats = SCAN_LAB["categories"]
    print(f"laptop benchmark, {SCAN_LAB['n_test']} held-out shapes, {SCAN_LAB['n_classes']} classes:")
    print(f"{'':>44}{'accuracy':>9}  " + " ".join(f"{c[:7]:>7}" for c in cats))
    for key, name in (("full_on_full", "trained on full, tested on full"),
                      ("full_on_scan", "trained on full, tested on scans"),
                      ("scan_on_scan", "trained on scans, tested on scans")):
        r = SCAN_LAB["rows"][key]
        print(f"{name:>44}{r['accuracy']:>9.3f}  " + " ".join(f"{a:>7.2f}" for a in r["per_class"]))
    print("\nconfusion matrix of the scan model (rows: true class, columns: predicted)")
    print(f"{'':>10}" + "".join(f"{c[:6]:>7}" for c in cats))
    for c, row in zip(cats, SCAN_LAB["rows"]["scan_on_scan"]["confusion"]):
        print(f"{c[:10]:>10}" + "".join(f"{v:>7d}" for v in row))
for claim_id in ("voxnet_full_vs_partial", "voxnet_scan_training"):
    results.say("voxels", claim_id)

# %% [markdown]
# ## 4. A voxel auto-encoder, and a loss for mostly empty grids
#
# The encoder (`M.VoxelEncoder`) halves the grid with strided convolutions down to $4^3$ and maps
# it to a latent code $z$; the decoder (`M.VoxelDecoder`) maps $z$ to a $C_0 \times 4^3$ seed grid and
# doubles it with transposed convolutions (BatchNorm + ReLU after each) while halving the channels,
# then reads one **logit** per voxel. This decoder is also the 3D half of 3D-R2N2 below.
#
# The target is a 0/1 grid $y$, the prediction $p = \sigma(\ell)$; the natural loss is the binary
# cross-entropy averaged over the $R^3$ voxels. But a shape fills only a few percent of its box
# (printed above), so an all-empty prediction already has a small loss, and training lingers there.
# We handle the imbalance with a **positive weight** $w$ on the full voxels:
#
# $$\mathcal L = -\frac{1}{R^3}\sum_{v} \big[\, w\, y_v \log p_v + (1 - y_v) \log (1 - p_v) \big],
#   \qquad w = \Big(\frac{1 - f}{f}\Big)^{\gamma},$$
#
# with $f$ the occupied fraction of the training grids and $\gamma$ = `ch03.pos_weight_power` ($\gamma = 1$
# balances the two classes exactly, $\gamma = 0$ is the plain BCE). Why a weight and not a focal
# loss: it is one interpretable number, and its effect is known in closed form. For a voxel that is
# full with probability $q$, the weighted loss is minimised by
#
# $$p^\star = \frac{w q}{w q + 1 - q},$$
#
# so the model over-predicts on purpose, and the threshold that turns probabilities into a grid
# should move up. 3D-R2N2 uses a two-class softmax cross-entropy, i.e. the unweighted loss.
#
# One more detail matters on a CPU budget: with the read-out's bias at $0$, every voxel starts at
# $p = 0.5$, and Adam moves a parameter by about the learning rate per step, so hundreds of steps go
# into pushing the empty space down. We start the bias at the prior instead,
# $b = \log\frac{p^\star}{1 - p^\star}$ with $q = f$ (`V.start_at_prior`), the initialisation that
# RetinaNet [Lin2017] uses for its rare foreground class.

# %%
ae, h_ae = V.train_autoencoder(data=train, val_data=val)
print(f"positive weight w = {ae.pos_weight:.2f}")
probs_ae = V.predict(ae, test["voxels"])
sweep_ae = V.iou_sweep(V.predict(ae, val["voxels"]), val["voxels"])  # the sweep a threshold is chosen from: val
print("live: auto-encoding IoU on the validation shapes by threshold:", {t: round(v, 3) for t, v in sweep_ae.items()})
if "ae" in LAB:
    print(f"laptop benchmark: IoU {LAB['ae']['iou@level']:.3f} at the validation threshold {LAB['ae']['level']}, "
          f"{LAB['ae']['iou@0.4']:.3f} at 0.4 ({LAB['ae']['n_test']} held-out shapes)")

# %% [markdown]
# ## 5. Single-view reconstruction: 3D-R2N2
#
# 3D-R2N2 [Choy2016] encodes a $127 \times 127$ image with a 2D residual CNN, and decodes a $32^3$
# grid with a 3D CNN. Between the two sits its multi-view idea: a **3D convolutional GRU** on a
# $4^3 \times 128$ hidden grid reads the views one by one, so that each new view can correct the
# cells the previous ones got wrong (section 5b trains it). Our single-view model
# (`M.voxel_single_view`) is the chapter 02 ResNet encoder followed by the decoder of section 4, on
# $64 \times 64$ images (the `laptop` profile) and with the weighted BCE of section 4 instead of the paper's
# two-class softmax; the paper's decoder upsamples by unpooling followed by residual $3^3$ convolutions, ours
# by transposed convolutions. We train on the shape's random view plus `ch03.train_views` fixed extra views,
# one drawn per shape and step, and test on held-out shapes from their own random view.

# %%
svr, h_svr = V.train_single_view(data=train, val_data=val)
probs_svr = V.predict(svr, test["rgb"])
sweep_svr = V.iou_sweep(V.predict(svr, val["rgb"]), val["voxels"])  # validation shapes: where t is chosen
level_svr, _ = V.best_threshold(sweep_svr)
print("live: single-view IoU on the validation shapes by threshold:", {t: round(v, 3) for t, v in sweep_svr.items()})
print(f"live: single-view test IoU at the chosen t = {level_svr}: "
      f"{V.iou_sweep(probs_svr, test['voxels'], [level_svr])[level_svr]:.3f}")
if "svr" in LAB:
    print(f"laptop benchmark: single-view IoU {LAB['svr']['iou@level']:.3f} at the validation threshold "
          f"{LAB['svr']['level']}, {LAB['svr']['iou@0.4']:.3f} at 0.4; per category "
          + ", ".join(f"{c} {v:.2f}" for c, v in LAB["svr"]["per_category"].items()))

# %%
i = 0
viz.subplots([viz.plot_images(test["rgb"][i]), viz.plot_voxels(test["voxels"][i]),
              viz.plot_voxels(probs_svr[i], threshold=level_svr)],
             titles=["input view (held-out shape)", "true grid", f"prediction (p >= {level_svr})"], height=330)

# %% [markdown]
# ## 5b. Several views: 3D-R2N2's recurrence, trained
#
# One image hides the back of the shape. 3D-R2N2 [Choy2016] lets a model look at any number of views by
# folding them, one at a time, into a **grid of hidden states** $h \in \mathbb R^{C \times 4 \times 4 \times 4}$,
# the seed grid that the decoder turns into the $32^3$ prediction. Each view $t$ is encoded by the same 2D
# network into a code $x_t$ (`M.MultiViewVoxelGRU`), and a 3D convolutional GRU (`M.ConvGRU3d`) updates the
# grid:
#
# $$u_t = \sigma\big(W_u x_t + U_u * h_{t-1} + b_u\big),\qquad r_t = \sigma\big(W_r x_t + U_r * h_{t-1} + b_r\big),$$
#
# $$h_t = (1 - u_t) \odot h_{t-1} + u_t \odot \tanh\big(W_h x_t + U_h * (r_t \odot h_{t-1}) + b_h\big),
#   \qquad h_0 = 0.$$
#
# Two different operators act here, as in the official code (`FCConv3DLayer`):
#
# - $W x_t$ is a **fully connected** map from the code to the whole grid, with its own weights for every
#   cell: each cell decides what it reads from the image. A cell stands for a block of the output grid
#   (an $8^3$ block of the $32^3$ grid after three doublings), so this is where a view says something
#   about one region of space;
# - $U * h$ is a $3^3$ **convolution** of the hidden grid, the same weights at every cell: a cell's gates
#   also look at its neighbours' states, which ties the regions together.
#
# The update gate $u_t$ is a number in $(0, 1)$ for every cell and channel: near $0$ the cell keeps what the
# earlier views wrote, near $1$ it takes the new candidate. A view that shows a region clearly can rewrite
# that region and leave the rest alone. The reset gate $r_t$ lets the candidate ignore the old state where
# the new view disagrees with it. With $h_0 = 0$ the first step is $h_1 = u_1 \odot \tanh(W_h x_1 + b_h)$:
# one view is a single-view model with a gated seed. With a grid of one cell, the cell is the GRU of Cho et
# al. (2014) (the unit tests check it against one).
#
# Nothing makes $h_t$ independent of the order of the views: the GRU reads a sequence. 3D-R2N2 does not
# force invariance; it trains on views **in random order and in random number** (`RANDOM_NUM_VIEWS`, up to
# five views), so that the model works with any count and leans on no particular order. We do the same
# (`V.multiview_batches`): each training batch draws $n$ uniformly in $\{1, \dots, 5\}$ (`ch03.mv_max_views`),
# and each shape $n$ of its rendered views in a random order. The recipe is the single-view model's
# (`V.train_multiview`: same shapes, loss, prior start, schedule, epochs and batch size, hence the same
# number of optimiser steps); a step of the multi-view model encodes $n$ images per shape, so it costs more
# time, which the benchmark's budget table records. The epoch kept has the lowest validation loss averaged
# over $1, \dots, 5$ views.
#
# How we score it: every test shape shows its views in one fixed random order (`V.view_orders`); the model is
# scored after the first $n$ of them, for $n = 1, \dots, 5$, each count at its own threshold chosen on the
# validation shapes, and the single-view model on the first view, so that its score pairs with the one-view
# score. 3D-R2N2 reports its IoU rising with the number of views [Choy2016]. **Predict** before you read
# the figure: should the curve rise at every step, or mostly at the first ones? Does the multi-view model
# shown one view reach the single-view model, which spent all its steps on one view?

# %%
MV = results.show("voxels_multiview", "laptop", command="COURSE_PROFILE=laptop python benchmarks/voxels_multiview.py")
K = SZ["mv_max_views"]
mv_train, mv_val = V.multiview_data("train"), V.multiview_data("val", views=K)
mv, h_mv = V.train_multiview(data=mv_train, val_data=mv_val)  # a tiny model in the ci profile
mv_test = V.multiview_data("test", views=K)
views_test = V.ordered_views(mv_test["views"], V.view_orders(len(mv_test["voxels"]), K, SZ["seed"] + 2))
views_val = V.ordered_views(mv_val["views"], V.view_orders(len(mv_val["voxels"]), K, SZ["seed"] + 1))
probs_val = V.predict_views(mv, views_val)  # thresholds: one per number of views, chosen on val
levels_mv = [V.best_threshold(V.iou_sweep(probs_val[:, n], mv_val["voxels"]))[0] for n in range(K)]
live_mv = [float(x.mean()) for x in V.iou_by_views(V.predict_views(mv, views_test), mv_test["voxels"], levels_mv)]
live_svr = float(V.per_shape_iou(V.predict(svr, views_test[:, 0]), mv_test["voxels"], level_svr).mean())
print(f"live ({config.get_profile()} profile, {len(mv_test['voxels'])} test shapes): multi-view IoU after 1..{K} views",
      [round(v, 3) for v in live_mv], f"; single-view model on the first view {live_svr:.3f}")

# %%
if MV is not None:
    d = MV.data
    n_views = list(range(1, d["max_views"] + 1))
    curves = {"3D-GRU (multi-view)": [results.mean(v) for v in d["mv"]["iou_by_views"]],
              "single-view model (always one image)": [results.mean(d["svr"]["iou"])] * len(n_views)}
    where = f"laptop benchmark, {d['n_test']} held-out shapes"
    print("thresholds chosen on val, by number of views:", d["mv"]["levels"], "; budgets:",
          {k: d[k]["budget"]["steps"] for k in ("svr", "mv")}, "steps")
else:
    n_views = list(range(1, K + 1))
    curves = {"3D-GRU (multi-view)": live_mv, "single-view model (always one image)": [live_svr] * K}
    where = f"live, {config.get_profile()} profile: a pipeline check, its numbers mean nothing"
viz.plot_curves(n_views, curves, title=f"test IoU against the number of views ({where})",
                xlabel="number of views n", ylabel="mean IoU")

# %% [markdown]
# One held-out shape, its views in the order the model reads them, and the prediction after each of them
# (this profile's model, each count at its own validation threshold): where does a new view rewrite the grid?

# %%
i = 0
steps_i = V.predict_views(mv, views_test[i:i + 1])[0]
viz.subplots([viz.plot_images(views_test[i, n]) for n in range(K)], titles=[f"view {n + 1}" for n in range(K)],
             height=220)

# %%
viz.subplots([viz.plot_voxels(steps_i[n], threshold=levels_mv[n]) for n in range(K)]
             + [viz.plot_voxels(mv_test["voxels"][i])],
             titles=[f"after {n + 1} view{'s' if n else ''} (p >= {levels_mv[n]})" for n in range(K)] + ["true grid"],
             height=330)

# %% [markdown]
# **Observe.** What the laptop benchmark measured, each comparison paired over the same test shapes and
# written from its record: one more view at each step, five views against one, the multi-view model against
# the single-view model (with one and with five views), and the same five views shown in reverse order.

# %%
mv_claims = [c["id"] for c in results.claims("voxels_multiview")] or ["mv_5_vs_1_views", "mv_1_vs_svr"]
for claim_id in mv_claims:
    results.say("voxels_multiview", claim_id)
_ = results.show_goals("voxels_multiview")

# %% [markdown]
# ## 6. IoU, and why its value depends on the threshold and the protocol
#
# The volumetric IoU of a predicted grid $P = \{v : p_v \ge t\}$ and the true grid $G$ is
# $|P \cap G| / |P \cup G|$, computed per shape and averaged (3D-R2N2's `evaluate_voxel_prediction`,
# with `TEST.VOXEL_THRESH` $= 0.4$). The number depends on choices that papers make differently:
#
# - **the threshold** $t$: the curves below move by a lot across $t$, and a positive weight moves their
#   maximum (section 4); pick $t$ on validation shapes, never on the test set;
# - **the resolution**: at a coarse grid, a thin part is either one layer of cells or nothing, and a
#   one-cell error is a large fraction of it;
# - **where IoU is evaluated**: on the grid, or (Occupancy Networks [Mescheder2019]) on random points
#   of the bounding volume against the true occupancy. Re-evaluated with OccNet's protocol, the same
#   3D-R2N2 model scores an IoU of $0.493$ in the OccNet paper's table, below what 3D-R2N2 reports under
#   its own protocol. Compare numbers only under one protocol.

# %%
viz.plot_curves(list(sweep_ae), {"auto-encoder": list(sweep_ae.values()), "single view": list(sweep_svr.values())},
                title=f"IoU on the validation shapes vs threshold (live, {config.get_profile()} profile)",
                xlabel="threshold t (p >= t is full)", ylabel="mean IoU")

# %% [markdown]
# The live curves above come from this profile's tiny models. What the laptop benchmark measured, each
# comparison paired over the same held-out shapes and written from its record (the difference, its
# standard error, the number of shapes and a verdict; a difference within two standard errors is
# "not separated"): does the threshold chosen on validation shapes move the IoU, against the natural
# cut $0.5$ and against 3D-R2N2's $0.4$, and how far apart are the grid-in and image-in models?

# %%
for claim_id in ("ae_val_threshold_vs_05", "ae_val_threshold_vs_04", "svr_val_threshold_vs_05",
                 "svr_val_threshold_vs_04", "ae_vs_svr_iou"):
    results.say("voxels", claim_id)

# %% [markdown]
# ## 7. Blocky surfaces: meshes from grids, and the Chamfer distance
#
# A grid has no surface, only cubes. To compare with the point and mesh models of chapters 05 and 06
# we extract a level set of the (cell-centred) probabilities with marching cubes (`V.grid_to_mesh`):
# for a prediction, at the threshold chosen on validation shapes; for a true 0/1 grid, at $0.5$. We
# sample the mesh, and measure the Chamfer distance to an independent sampling of
# the true surface in the course's convention (squared distances, mean of each direction, summed,
# $\times 1000$; `course_lib.experiments.surfaces.CD_CONVENTION`). Even the *true* grid pays a price
# that only the resolution can lower: its mesh is a staircase (`V.representation_floor`). Read that
# number as a *reference*, not a bound: a predicted grid's mesh is extracted at another level from soft
# probabilities, and nothing stops it from landing a little closer to the surface than the true grid's
# staircase does. Chapter 06's
# single-view models are scored in the same convention (on their own categories and sizes, so the
# comparison is indicative).

# %%
floors = {}
for R in (8, 16, 32):
    floors[R] = V.representation_floor({"voxels": torch.stack([voxelize(row_shape(test, i), R).float()
                                                               for i in range(len(test["seed"]))]),
                                        "target_points": test["target_points"]})["cd"]
print("Chamfer x1000 of the marching-cubes mesh of the TRUE grid (the representation's reference, not a bound):",
      {R: round(v, 3) for R, v in floors.items()})
cd_svr = V.voxel_chamfer(probs_svr, test["target_points"], level_svr)
print(f"live: single-view prediction, mesh at p = {level_svr}: Chamfer x1000 {cd_svr['cd']:.3f} "
      f"({cd_svr['empty']} predictions without a surface)")
if "svr" in LAB:
    print(f"laptop benchmark: single-view Chamfer x1000 {LAB['svr']['cd']:.3f}, true-grid reference at "
          f"{LAB['svr']['resolution']}^3 {LAB['svr']['floor']['cd']:.3f}")
other = results.load("surfaces", "laptop")  # chapter 06, same Chamfer convention (its own categories and sizes)
if other is not None and "svr" in other.data:
    print("chapter 06 laptop benchmark, single view, mean Chamfer x1000: "  # protocol 2 keeps per-shape lists
          + "; ".join(f"{r.get('name', '?')} {results.mean(r.get('cd')):.3f}" for r in other.data["svr"].get("rows", [])))
else:
    print("chapter 06's laptop results (AtlasNet / PointSetGen single view, same convention) are not measured yet")
results.say("voxels", "floor_falls_with_resolution")
mesh_true = V.grid_to_mesh(voxelize(demo, 16).float())
viz.subplots([viz.plot_mesh(demo.mesh(48)), viz.plot_mesh(mesh_true)],
             titles=["the true surface", "marching cubes of its 16^3 grid"], height=330)

# %% [markdown]
# ## 8. The curse of dimensionality, measured
#
# The same encoder-decoder at growing resolutions (`V.cost_curve`: the auto-encoder with
# `ch03.curve_channels` channels, a batch of `ch03.curve_batch` balls): parameters, the bytes of all
# layer outputs of one forward pass (what autograd keeps for the backward pass), the peak extra memory
# of a forward+backward (resident memory on the CPU, measured with
# `course_lib.experiments.point_sets.peak_memory`; allocated memory on CUDA), and the time of one
# forward+backward. For a dense CNN we expect activations, peak memory and time to grow as $R^{3}$
# (every layer's output has $R^3$ cells per channel, up to the stride of its stage), while the surface
# fraction falls as $R^{-1}$; the fitted slopes of the log-log lines below say how close the
# measurement comes (small grids are dominated by fixed overheads, so the slope is best read at the
# large end). The parameters grow slowly: a convolution's weights do not depend on the grid it slides
# over; only one stage per doubling is added.

# %%
live = V.cost_curve()
rows = [r for r in live if not r["skipped"]]
print(f"live ({config.get_profile()} profile, {config.get_device()}):")
for r in live:
    print(f"  R={r['resolution']:>3}: params {r['params']:>9.0f}, activations {r['activation_bytes'] / 2**20:8.2f} MiB, "
          f"peak {r['peak_bytes'] / 2**20:8.2f} MiB, {r['seconds'] * 1e3:8.1f} ms {r['skipped']}")
curve = LAB["curve"]["rows"] if "curve" in LAB else live
label = "laptop benchmark" if "curve" in LAB else f"live, {config.get_profile()} profile"
ok = [r for r in curve if not r["skipped"]]
xs = [r["resolution"] for r in ok]
print(f"{label}: fitted exponents (log-log slope in R):",
      {k: round(V.fit_exponent(xs, [r[k] for r in ok]), 2)
       for k in ("params", "activation_bytes", "peak_bytes", "seconds", "surface_fraction")})
skipped = [r for r in curve if r["skipped"]]
if skipped:
    print("not run:", "; ".join(f"{r['resolution']}^3 ({r['skipped']})" for r in skipped))
first = ok[0]
viz.plot_curves(xs, {"activations": [r["activation_bytes"] / first["activation_bytes"] for r in ok],
                     "peak memory": [r["peak_bytes"] / first["peak_bytes"] for r in ok],
                     "forward+backward time": [r["seconds"] / first["seconds"] for r in ok],
                     "parameters": [r["params"] / first["params"] for r in ok],
                     "surface fraction": [r["surface_fraction"] / first["surface_fraction"] for r in ok]},
                title=f"cost relative to {xs[0]}^3 ({label})", xlabel="resolution R", ylabel="ratio",
                log_x=True, log_y=True)

# %% [markdown]
# ## 9. Widget: one shape at one resolution
#
# Choose a held-out shape and a resolution: the grid, what it costs, how much of the shape it keeps
# (IoU of the grid, upsampled cell by cell, against the same shape voxelised at $64^3$), and the
# prediction of the single-view model from that shape's view, resampled to the chosen resolution and
# scored against the grid there.

# %%
def show_resolution(shape_index: int = 0, resolution: int = 16):
    k = int(shape_index)
    shape = row_shape(test, k)  # ShapeNet-lite's shape, or a real dataset's mesh
    st = V.resolution_stats(shape, resolution, probs_svr[k], level=level_svr)
    title = (f"{test['category'][k]}, {resolution}^3: float32 {st['float32_bytes'] / 1024:.1f} KiB, "
             f"bits {st['bit_bytes'] / 1024:.2f} KiB; grid IoU vs {st['reference_resolution']}^3 "
             f"{st['iou_vs_fine']:.3f}; prediction IoU {st['iou_prediction']:.3f}")
    fig = viz.subplots([viz.plot_voxels(st["voxels"]), viz.plot_voxels(st["prediction"], threshold=level_svr)],
                       titles=["true grid", "single-view prediction (resampled)"], height=360)
    fig.update_layout(title={"text": title, "x": 0.5, "xanchor": "center", "font": {"size": 12}})
    return fig


viz.interact(show_resolution, shape_index=range(0, len(test["category"])), resolution=[8, 16, 32, 64])

# %% [markdown]
# ## 10. The chapter's goals
#
# The goals of the chapter, each with the value the laptop benchmark measured (✅ met, 🟡 not met).

# %%
results.show_goals("voxels")

# %% [markdown]
# ## The chapter on both families
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
for name in ("voxels", "voxels_multiview"):
    results.show_families(name)
    print()

# %% [markdown]
# ## Summary
#
# - An occupancy grid is an image with a third axis: 3D convolutions, pooling and transposed
#   convolutions carry over, and so do the architectures (VoxNet's classifier, 3D-R2N2's image encoder
#   followed by a 3D decoder).
# - A classification score means something only on a task that can be failed: full, aligned procedural
#   shapes are nearly separable by their coarse shape; one partial, noisy scan at an unknown heading is the
#   task VoxNet was built for, read with its confusion matrix and per-class accuracy.
# - 3D-R2N2 fuses views with a 3D convolutional GRU: a grid of hidden states, each cell reading every view
#   through its own weights and its neighbours through a convolution; trained on random numbers and orders
#   of views, scored against the number of views.
# - Grids are mostly empty: a plain BCE lets empty predictions score a small loss; a positive weight
#   counters that and, analytically, moves the optimal probability of a voxel up ($p^\star$), hence the
#   best threshold: IoU is reported over a threshold sweep, with the threshold chosen on validation shapes.
# - IoU depends on the threshold, the resolution and where it is evaluated: numbers from different
#   protocols do not compare.
# - A grid's surface is a staircase: even the true grid has a Chamfer distance that only resolution lowers
#   (a reference for the predictions, not a bound on them).
# - Memory and time grow as $R^3$ while the surface grows as $R^2$: the waste grows as $R$. Chapter 04
#   spends memory only near the surface (octrees).
#
# ## Exercises
#
# 1. Train the auto-encoder with `pos_weight_power` $0$ (plain BCE) and $1$ (balanced): where does the
#    best threshold of the sweep move, and does the best IoU change? Compare with $p^\star$ of section 4.
# 2. Evaluate IoU on random points of the box instead of the grid (`course_lib.metrics.volumetric_iou`
#    on the shape's occupancy at those points, against the trilinearly interpolated prediction): by how
#    much does the single-view score move?
# 3. Make the fusion order invariant: replace the GRU by the mean of the views' lifted grids $W x_t$ (a
#    permutation-invariant pooling, as in chapter 02's set encoders). Compare its IoU-against-views curve
#    with the GRU's at the same number of steps: what does the gating buy, and what does the order cost?
# 4. Replace the decoder's transposed convolutions by nearest upsampling followed by a $3^3$ convolution:
#    do the checkerboard artefacts of the predicted grids change?
# 5. Extend `V.cost_curve` to the largest resolution that fits your machine and check the exponents.
# 6. Add VoxNet's test-time voting to the partial-scan task: classify each test scan at $12$ headings about the
#    up axis (rotate the scan's grid) and average the logits. Which cells of the confusion matrix move? Then
#    change one sensor setting at a time (`ch03.scan_noise`, `ch03.scan_dropout`, `ch03.scan_max_elevation`)
#    and read the validation accuracy: which loss of information costs the classifier most?
#
# **References.** [Maturana2015] D. Maturana, S. Scherer, VoxNet: A 3D Convolutional Neural Network for
# Real-Time Object Recognition, IROS 2015. [Wu2015] Z. Wu et al., 3D ShapeNets: A Deep Representation for
# Volumetric Shapes, CVPR 2015. [Choy2016] C. Choy et al., 3D-R2N2: A Unified Approach for Single and
# Multi-view 3D Object Reconstruction, ECCV 2016. [Mescheder2019] L. Mescheder et al., Occupancy Networks:
# Learning 3D Reconstruction in Function Space, CVPR 2019. [Qi2016] C. Qi et al., Volumetric and Multi-View
# CNNs for Object Classification on 3D Data, CVPR 2016. [Lin2017] T.-Y. Lin et al., Focal Loss for Dense
# Object Detection, ICCV 2017.
