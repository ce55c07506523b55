# %% [markdown]
# # 02 · Lab: PointNet, farthest point sampling, ball query, set abstraction
#
# You write the pieces at the heart of the lecture's point encoders:
#
# 1. the **PointNet forward pass**: a shared MLP $h$ on every point, then a max over the
#    points (and the indices of the points that win it, the critical points);
# 2. **farthest point sampling** (FPS), which picks well-spread centres;
# 3. **ball query**, which gathers the neighbourhood of each centre;
# 4. a **set-abstraction level** of PointNet++, built from the three;
# 5. DGCNN's **EdgeConv**: the edge features over the k-nearest-neighbour graph in feature
#    space, then the layer itself (a shared linear map and a max over the neighbours);
# 6. the **T-Net orthogonality regulariser** that PointNet adds to its loss;
# 7. ResNet's **residual block**, the unit of the image encoders of section 1 of the lecture.
#
# Each exercise is followed by a **self-check** that tests shapes, invariance and agreement
# with `course_lib`. At the end you train your PointNet on ShapeNet-lite and evaluate it.

# %%
import math

import torch
from torch import nn

from course_lib import checks, config, results, viz
from course_lib.experiments import encoders as C
from course_lib.train import fit, train_or_load

checks.stop_on_failure()  # a wrong answer stops "Run all" at its check, before the cells that use it

print(config.describe())
S = config.sizes(prefix="ch02.")
test_points, test_labels = C.load_point_clouds("test")  # held-out shapes, (S, N, 3) and (S,)
cloud = test_points[0, : S["n_points"]]  # one chair

# %% [markdown]
# ## Exercise 1: the PointNet forward pass
#
# `points` is a batch `(B, N, D)`; `layers` is a list of per-point layers forming $h$
# (a ReLU **between** layers, none after the last). Each layer acts on the last dimension:
# an `nn.Linear` in the self-check, a Linear followed by BatchNorm in the network you train
# at the end, so apply each one as a whole, `x = layer(x)`. Return
#
# * `global_feature` `(B, F)`: for each channel, the max of $h(x_i)$ over the $N$ points;
# * `critical_idx` `(B, F)` (long): for each channel, the index of the point that wins it.
#
# Hint: an `nn.Linear` acts on the last dimension, so `layer(points)` applies it to every
# point at once: that *is* the shared MLP. `tensor.max(dim=...)` returns values and indices.

# %%
def pointnet_encode(points: torch.Tensor, layers: list[nn.Module]) -> tuple[torch.Tensor, torch.Tensor]:
    """PointNet's global feature and critical points.

    Args:
        points: float tensor ``(B, N, D)`` (float32, or float64 with float64 layers).
        layers: a list of ``nn.Module`` (``nn.Linear``, or Linear + BatchNorm blocks), each acting on the last
            dimension, ``D -> F_1 -> ... -> F``; one layer or more.

    Returns:
        ``(global_feature, critical_idx)``: a float tensor ``(B, F)`` of the points' dtype, and a long tensor
        ``(B, F)`` of indices into the ``N`` points. ``B = 1`` and ``N = 1`` keep their axes.
    """
    ### BEGIN SOLUTION
    x = points
    for i, layer in enumerate(layers):
        x = layer(x)
        if i < len(layers) - 1:
            x = torch.relu(x)
    values, idx = x.max(dim=1)
    return values, idx
    ### END SOLUTION


# %%
checks.check_pointnet_encode(pointnet_encode)

# %% [markdown]
# **Critical points.** Encode a chair with random layers and look at the points that win
# the max.
#
# **Predict first.** The last layer has 256 channels and the chair has `S["n_points"]` points. At
# most how many points can be critical? Will you see about that many, or far fewer? And if you feed
# *only* the critical points, will the global feature change? Write your guesses down before running.

# %% tags=["uses-exercise"]
torch.manual_seed(0)
layers = [nn.Linear(3, 64), nn.Linear(64, 128), nn.Linear(128, 256)]
g_crit = None  # the global feature of the critical points alone
with torch.no_grad():
    g, crit = pointnet_encode(cloud[None], layers)
    only = crit[0].unique()
    g_crit, _ = pointnet_encode(cloud[only][None], layers)
print(f"{len(only)} critical points of {len(cloud)}; difference: {(g - g_crit).abs().max().item():.1e}")
fig = viz.plot_points(cloud, color="lightgray", size=2, title="critical points of random layers")
viz.plot_points(cloud[only], color="red", size=4, fig=fig)

# %% [markdown]
# **Observe.** At most 256 points can be critical (one per channel), and you see far fewer: one point
# wins several channels, and fewer than half as many points as channels are critical (about 80 of the
# `ci` profile's 256 points, about 110 of the laptop profile's 1024). Fed alone, the critical points give
# the same global feature (a difference of 0, up to rounding): every other point could move (a little)
# without changing `g`. The same max makes the trained network blind to the order of the points: the
# chapter's benchmark (laptop profile) shuffled held-out clouds and measured the largest change of the
# trained PointNet's logits, below. Why is it exactly zero, not merely small?

# %%
perm = results.get("encoders", "models", "pointnet", "perm_error")
print(f"benchmark (laptop): largest change of the logits after shuffling the points: {perm}"
      if perm is not None else "the benchmark's numbers are not here yet: COURSE_PROFILE=laptop python "
      "benchmarks/encoders.py")

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(g_crit is None)
checks.observe("far fewer critical points than channels: under half of the 256", len(only) < 128,
               measured=f"{len(only)} critical points of {len(cloud)}")
checks.observe("the critical points alone give the same global feature", (g - g_crit).abs().max().item() < 1e-6,
               measured=f"largest difference {(g - g_crit).abs().max().item():.1e}")

# %% [markdown]
# ## Exercise 2: farthest point sampling
#
# Given `x` `(B, N, 3)`, choose `n` indices per cloud: the first is `start_idx`; each next
# one is the point whose distance to its **nearest already chosen** point is the largest.
#
# Keep a tensor `mins` `(B, N)` of "squared distance to the nearest chosen point" (start at
# `inf`); after choosing a point, update `mins = torch.minimum(mins, d)` with `d` the squared
# distances to it, and take `mins.argmax(dim=1)` as the next point. One Python loop over the
# `n` samples is fine; no loop over the batch or the points.

# %%
def farthest_point_sampling(x: torch.Tensor, n: int, start_idx: int = 0) -> torch.Tensor:
    """Farthest point sampling.

    Args:
        x: float tensor ``(B, N, 3)`` (float32 or float64).
        n: a Python int, ``1 <= n <= N``.
        start_idx: a Python int in ``[0, N)``, the first sample of every cloud.

    Returns:
        long tensor ``(B, n)``: indices into the ``N`` points (ties go to the lowest index, as ``argmax``).
    """
    ### BEGIN SOLUTION
    B, N, _ = x.shape
    out = torch.empty(B, n, dtype=torch.long, device=x.device)
    mins = torch.full((B, N), float("inf"), dtype=x.dtype, device=x.device)
    rows = torch.arange(B, device=x.device)
    far = torch.full((B,), start_idx, dtype=torch.long, device=x.device)
    for i in range(n):
        out[:, i] = far
        d = ((x - x[rows, far][:, None]) ** 2).sum(-1)
        mins = torch.minimum(mins, d)
        far = mins.argmax(dim=1)
    return out
    ### END SOLUTION


# %%
checks.check_farthest_point_sampling(farthest_point_sampling)

# %% [markdown]
# ## Exercise 3: ball query
#
# For every centre, the indices of the **first** `k` points of `x` (in index order) within
# distance `radius` (strictly: squared distance `< radius**2`, as PointNet++'s code); if fewer than `k` are inside, repeat the first one found to fill the
# `k` slots (the convention of PointNet++: the result is a dense `(B, M, k)` tensor).
#
# Hint: compute the squared distances `(B, M, N)`; replace the index of every point outside
# the ball by `N` (a value larger than any index); sort along the last dimension and keep the
# first `k`; slots still equal to `N` take the value of slot 0. (Each centre here is close
# to a point of `x`, so every ball holds at least one point.)

# %%
def ball_query(x: torch.Tensor, centers: torch.Tensor, radius: float, k: int) -> torch.Tensor:
    """PointNet++'s ball query.

    Args:
        x: float tensor ``(B, N, 3)`` (float32 or float64).
        centers: float tensor ``(B, M, 3)`` of the same dtype.
        radius: a Python float; a point is inside when its squared distance is ``< radius**2``.
        k: a Python int, ``1 <= k <= N``.

    Returns:
        long tensor ``(B, M, k)``: indices into the ``N`` points.
    """
    ### BEGIN SOLUTION
    N = x.shape[1]
    d2 = ((centers[:, :, None] - x[:, None]) ** 2).sum(-1)  # (B, M, N)
    idx = torch.arange(N, device=x.device).expand_as(d2)
    idx = torch.where(d2 < radius**2, idx, torch.full_like(idx, N))  # strictly inside, as PointNet++
    idx = idx.sort(dim=-1).values[..., :k]
    return torch.where(idx == N, idx[..., :1], idx)
    ### END SOLUTION


# %%
checks.check_ball_query(ball_query)

# %% [markdown]
# **Use them together**: one PointNet++ grouping step on the chair, with your functions.
# Each colour is one ball around an FPS centre.
#
# **Predict first.** 16 balls of radius 0.2 (the shapes fit in the unit sphere), at most 32 points
# each. Will most of the chair be coloured, or most of it stay grey? Which parts get no ball?

# %% tags=["uses-exercise"]
xyz = cloud[None]
labels = torch.full((len(cloud),), -1)  # the ball of each point (-1: none)
centres_idx = farthest_point_sampling(xyz, 16)
centres = xyz[0, centres_idx[0]][None]
groups = ball_query(xyz, centres, 0.2, 32)
for c in range(16):
    labels[groups[0, c]] = c
fig = viz.plot_points(cloud[labels < 0], color="lightgray", size=2, title="16 balls of radius 0.2")
print(f"{int((labels >= 0).sum())} of {len(cloud)} points fall in a ball (at most 16 x 32 = 512 are kept)")
viz.plot_points(cloud[labels >= 0], color=labels[labels >= 0], size=3, fig=fig)

# %% [markdown]
# **Observe.** Most of the chair stays grey: fewer than half of its points fall in a ball, in every
# profile. FPS spreads the 16 centres over the chair, but balls of radius 0.2 cover only patches of it,
# and most grey points lie outside every ball. A ball also keeps only its *first* 32 points: in the
# laptop profile's 1024-point chair the densest balls hold more than 32 points and some points inside a
# ball are left out; the `ci` profile's 256 points are too sparse to show it (no ball holds 32). A second
# level groups the *centres*, which is how PointNet++ grows its receptive field. What would a larger
# radius change, and what would a larger `k` cost?

# %% tags=["uses-exercise"]
checks.raise_if_unfinished((labels < 0).all())
inside = ((xyz[0, None] - centres[0, :, None]) ** 2).sum(-1) < 0.2**2  # (16, N): point in ball
coloured, in_a_ball = int((labels >= 0).sum()), int(inside.any(0).sum())
checks.observe("most of the chair stays grey: fewer than half of its points fall in a ball", coloured < len(cloud) / 2,
               measured=f"{coloured} of {len(cloud)} coloured")
checks.observe("most grey points lie outside every ball", len(cloud) - in_a_ball > (len(cloud) - coloured) / 2,
               measured=f"{len(cloud) - coloured} grey, {len(cloud) - in_a_ball} outside every ball")
checks.observe("the densest balls hold more than 32 points: some points inside a ball are left out",
               in_a_ball > coloured, shown_in=("laptop", "gpu"),
               measured=f"{in_a_ball - coloured} left out; points per ball {inside.sum(1).tolist()}")

# %% [markdown]
# ## Exercise 4: a set-abstraction level
#
# The building block of PointNet++ puts your three functions together. Given `x` `(B, N, 3)`,
# a number of centres `M`, a radius, `k` and a shared `mlp` (a module acting on the last
# dimension, `3 -> F`), return `(centres (B, M, 3), features (B, M, F))`:
#
# 1. `centres`: the points of `x` chosen by your `farthest_point_sampling` (start 0);
# 2. `groups = ball_query(x, centres, radius, k)` `(B, M, k)`, with your ball query;
# 3. the neighbours' coordinates **relative to their centre**, neighbour $-$ centre,
#    `(B, M, k, 3)`: this makes the feature of a region independent of where the region is;
# 4. `features`: the `mlp` on every neighbour, then a max over the `k` neighbours: a small
#    PointNet on each region.
#
# Hint: `x[torch.arange(B)[:, None, None], groups]` gathers the neighbours `(B, M, k, 3)`.
# The self-check compares with `course_lib.ops` and checks that translating the cloud moves
# the centres and leaves the features unchanged.

# %%
def set_abstraction(x: torch.Tensor, n_centres: int, radius: float, k: int, mlp: nn.Module):
    """One set-abstraction level of PointNet++.

    Args:
        x: float tensor ``(B, N, 3)`` (float32, or float64 with a float64 ``mlp``).
        n_centres: a Python int ``M``, ``1 <= M <= N``.
        radius: a Python float; k: a Python int ``>= 1``.
        mlp: an ``nn.Module`` acting on the last dimension, ``3 -> F``.

    Returns:
        ``(centres, features)``: float tensors ``(B, M, 3)`` and ``(B, M, F)`` of the dtype of ``x``.
    """
    ### BEGIN SOLUTION
    rows = torch.arange(x.shape[0], device=x.device)
    centres = x[rows[:, None], farthest_point_sampling(x, n_centres)]  # (B, M, 3)
    groups = ball_query(x, centres, radius, k)  # (B, M, k)
    local = x[rows[:, None, None], groups] - centres[:, :, None]  # (B, M, k, 3)
    return centres, mlp(local).max(dim=2).values
    ### END SOLUTION


# %%
checks.check_set_abstraction(set_abstraction)

# %% [markdown]
# One level on the chair with a random MLP: 32 centres, each summarising its ball of radius
# 0.2 by a 64-dimensional feature (a second level would treat these centres and features as
# a new point cloud, as `course_lib`'s `PointNet2` does).

# %% tags=["uses-exercise"]
torch.manual_seed(0)
mlp = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 64))
with torch.no_grad():
    sa_centres, sa_features = set_abstraction(cloud[None], 32, 0.2, 16, mlp)
print(f"{tuple(cloud[None].shape)} -> centres {tuple(sa_centres.shape)}, features {tuple(sa_features.shape)}")
fig = viz.plot_points(cloud, color="lightgray", size=2, title="32 centres coloured by the norm of their feature")
viz.plot_points(sa_centres[0], color=sa_features[0].norm(dim=-1), size=6, fig=fig)

# %% [markdown]
# ## Exercise 5: EdgeConv's edge features
#
# DGCNN (Wang et al. 2019) replaces PointNet++'s balls by a graph: each point $x_i$ is joined
# to its $k$ nearest neighbours **in the space of its current features** (all $C$ channels, not
# only xyz: the graph changes from layer to layer, the "dynamic graph"), and every edge carries
# the feature $[x_j - x_i,\ x_i]$: the neighbour relative to the point, and the point itself.
#
# Given `x` `(B, N, C)`, return the edge features `(B, N, k, 2C)`: `out[b, i, m]` is
# `[x_j - x_i, x_i]` for the `m`-th neighbour `j` of point `i` in cloud `b`. As in the paper's
# code and `course_lib`'s `EdgeConv`, **the point itself counts** as a neighbour (distance 0, so
# it is its own nearest one, with edge vector 0). The order of the $k$ neighbours is free
# (EdgeConv takes a max over them); listing them by increasing distance is natural.
#
# Hint: squared distances `(B, N, N)` per cloud, `topk(k, largest=False)` (or `argsort`) on
# the last dimension, then gather with `x[torch.arange(B)[:, None, None], idx]`. The self-check
# compares with a float64 loop over the points, on features with 5 channels.

# %%
def edge_features(x: torch.Tensor, k: int) -> torch.Tensor:
    """EdgeConv's edge features over the kNN graph in feature space.

    Args:
        x: float tensor ``(B, N, C)`` (float32 or float64), any ``C >= 1``.
        k: a Python int, ``1 <= k <= N``: the number of neighbours, the point itself included.

    Returns:
        float tensor ``(B, N, k, 2C)`` of the dtype of ``x``: ``[x_j - x_i, x_i]`` for the ``k`` points ``j``
        of the same cloud nearest to ``x_i`` (Euclidean distance on all ``C`` channels), in any order (ties in
        the distance: any of the tied points; course_lib's ``_knn_idx`` leaves them to its search backend, and
        the self-check has none). Differentiable in ``x`` (the kNN indices need no gradient).
    """
    ### BEGIN SOLUTION
    B = x.shape[0]
    with torch.no_grad():
        xd = x.double()  # as course_lib's _knn_idx: float64 distances, stable under a permutation of the points
        d2 = ((xd[:, :, None] - xd[:, None]) ** 2).sum(-1)  # (B, N, N)
        idx = d2.topk(k, dim=-1, largest=False).indices  # (B, N, k): the point itself first
    neighbours = x[torch.arange(B, device=x.device)[:, None, None], idx]  # (B, N, k, C)
    centre = x[:, :, None].expand_as(neighbours)
    return torch.cat([neighbours - centre, centre], dim=-1)
    ### END SOLUTION


# %%
checks.check_edge_features(edge_features)

# %% [markdown]
# ## Exercise 6: the EdgeConv layer
#
# EdgeConv applies one shared `linear` layer `2C -> C'` to every edge feature and takes the
# max over the $k$ neighbours: $x_i' = \max_{j \in \mathrm{kNN}(i)} W [x_j - x_i,\ x_i] + b$.
# (`course_lib`'s `EdgeConv` puts BatchNorm and a LeakyReLU before the max; leave them out.)

# %%
def edge_conv(x: torch.Tensor, k: int, linear: nn.Module) -> torch.Tensor:
    """One EdgeConv layer without normalisation or activation.

    Args:
        x: float tensor ``(B, N, C)``; k: a Python int, ``1 <= k <= N``.
        linear: an ``nn.Module`` acting on the last dimension, ``2C -> C'`` (an ``nn.Linear`` in the self-check).

    Returns:
        float tensor ``(B, N, C')`` of the dtype of ``x``, differentiable in ``x`` and the layer's parameters.
    """
    ### BEGIN SOLUTION
    return linear(edge_features(x, k)).max(dim=2).values
    ### END SOLUTION


# %%
checks.check_edge_conv(edge_conv)

# %% [markdown]
# **A graph in feature space.** The first EdgeConv finds neighbours in xyz; the next ones in the
# space of the features it computed. Take a feature that mostly encodes *height* (what "seat
# level" or "leg level" might look like to a later layer): the height $y$, plus a faint trace
# of the position ($0.1\,x, 0.1\,y, 0.1\,z$). For one point of the chair, its 16 neighbours in xyz
# and in this feature space.
#
# **Predict first.** Where will the feature-space neighbours of a point lie on the chair: next to
# it, as in xyz, or elsewhere? Will their mean distance (in 3D) to the point be about the same as
# for the xyz neighbours, a few times larger, or more?

# %% tags=["uses-exercise"]
k_graph = 16
point = int(cloud[:, 1].argmin())  # the lowest point of the chair: the foot of a leg
features = torch.cat([cloud[:, 1:2], 0.1 * cloud], dim=-1)[None]  # (1, N, 4): height, faint position
near = {}  # graph -> the neighbours' coordinates
with torch.no_grad():
    e_xyz = edge_features(cloud[None], k_graph)[0, point]  # (k, 6): [x_j - x_i, x_i]
    e_feat = edge_features(features, k_graph)[0, point]  # (k, 8)
near_xyz = e_xyz[:, :3] + e_xyz[:, 3:]  # the neighbours' coordinates
near_feat = 10 * (e_feat[:, 1:4] + e_feat[:, 5:])  # the position channels, unscaled
near = {"xyz": near_xyz, "height feature": near_feat}
for name, pts in near.items():
    print(f"kNN in {name}: mean 3D distance of the {k_graph} neighbours to the point "
          f"{(pts - cloud[point]).norm(dim=-1).mean().item():.3f}")
fig = viz.plot_points(cloud, color="lightgray", size=2, title="neighbours in xyz (blue) and in feature space (red)")
viz.plot_points(near_xyz, color="blue", size=5, fig=fig)
viz.plot_points(near_feat, color="red", size=5, fig=fig)

# %% [markdown]
# **Observe.** In xyz the neighbours are a small patch around the point; in the height feature
# they are points at about the same height (closer in height than the xyz neighbours) wherever they are,
# on other legs too (the red points, some of them more than 0.5 away across the chair), so their mean 3D
# distance to the point is a few times larger (1.5 to 6 times; about 2.5 in every profile):
# a single EdgeConv in that space compares the feet of the chair with each other, which layers
# on the xyz graph could only do after many hops. That is what the dynamic graph buys DGCNN. What would happen to the graph if a layer's
# features forgot the position entirely (no faint trace)?

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(len(near) < 2)
offset = {name: pts - cloud[point] for name, pts in near.items()}
dist = {name: o.norm(dim=-1).mean().item() for name, o in offset.items()}
rise = {name: o[:, 1].abs().mean().item() for name, o in offset.items()}
across = offset["height feature"][:, [0, 2]].norm(dim=-1).max().item()
checks.observe("the feature-space neighbours are a few times farther in 3D than the xyz ones (1.5 to 6 times)",
               1.5 < dist["height feature"] / dist["xyz"] < 6,
               measured=f"mean distance {dist['height feature']:.3f} vs {dist['xyz']:.3f}")
checks.observe("they lie at about the point's height: closer in height than the xyz neighbours",
               rise["height feature"] < rise["xyz"],
               measured=f"mean height difference {rise['height feature']:.3f} vs {rise['xyz']:.3f}")
checks.observe("some lie across the chair, on other legs: more than 0.5 away horizontally", across > 0.5,
               measured=f"farthest {across:.2f} away horizontally")

# %% [markdown]
# ## Exercise 7: the T-Net orthogonality regulariser
#
# PointNet's feature T-Net predicts a $K \times K$ matrix $A$ that aligns the per-point
# features. To keep it close to an orthogonal map (which loses no information), Qi et al. 2017
# add $0.001\, L_{reg}$ to the loss, with $L_{reg} = \lVert I - A A^\top \rVert_F^2$. For a batch
# `A` `(B, K, K)`, return the **mean over the batch** of the **squared** Frobenius norm (the sum
# of the squared entries), a scalar: the convention of `course_lib`'s
# `models.encoders.orthogonality_regularizer`, used by `ClassificationLoss`.
#
# (For a square $A$, $\lVert I - A A^\top \rVert_F = \lVert I - A^\top A \rVert_F$: both matrices have
# the eigenvalues $1 - \sigma_i^2$. Either product is right.)

# %%
def orthogonality_loss(A: torch.Tensor) -> torch.Tensor:
    """PointNet's orthogonality regulariser.

    Args:
        A: float tensor ``(B, K, K)`` (float32 or float64), ``B, K >= 1``.

    Returns:
        a 0-dim float tensor of the dtype of ``A``: ``mean_b ||I - A_b A_b^T||_F^2`` (squared Frobenius norm,
        summed over the ``K x K`` entries, averaged over the batch), differentiable in ``A``.
    """
    ### BEGIN SOLUTION
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    return (eye - A @ A.transpose(1, 2)).pow(2).sum(dim=(1, 2)).mean()
    ### END SOLUTION


# %%
checks.check_orthogonality_loss(orthogonality_loss)

# %% [markdown]
# **Random vs orthogonal.** The regulariser of a $64 \times 64$ matrix (the size of PointNet's
# feature transform) for three choices: the identity (what `course_lib`'s T-Net outputs at
# initialisation: its last layer starts at zero with $I$ as bias), a random rotation, and a random
# Gaussian matrix with entries of variance $1/64$, so that every column has norm about 1.
#
# **Predict first.** Columns of norm about 1, in 64 dimensions, are nearly perpendicular. Will
# the Gaussian matrix's regulariser be near 0, near 1, or near 64? How much does the weight
# 0.001 then add to the cross-entropy at initialisation, $\ln(\text{number of classes})$?

# %% tags=["uses-exercise"]
K = 64
gen = torch.Generator().manual_seed(0)
candidates = {"identity": torch.eye(K)[None],
              "random rotation": torch.linalg.qr(torch.randn(1, K, K, generator=gen)).Q,
              "Gaussian, variance 1/K": torch.randn(1, K, K, generator=gen) / K**0.5}
reg = {}  # name -> regulariser
for name, A in candidates.items():
    reg[name] = orthogonality_loss(A).item()
    print(f"{name:>22}: regulariser {reg[name]:8.3f}")

# %% [markdown]
# **Observe.** The identity and the rotation are at 0; the Gaussian matrix is near 64, not near 0
# or 1. Each column alone is nearly a unit vector and nearly perpendicular to each other
# one, but the regulariser sums $K^2$ small errors: the $K$ diagonal entries and the $K(K-1)$
# off-diagonal ones, each of variance about $1/K$, add up to about $K$. Times 0.001, the term adds
# less than a tenth of the cross-entropy at initialisation ($\ln 10 \approx 2.3$ for ShapeNet-lite's
# 10 classes), yet it is what keeps a trained T-Net from collapsing
# channels. Why is an orthogonal feature transform harmless for the max-pool that follows?

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(len(reg) < len(candidates))
gauss = reg["Gaussian, variance 1/K"]
ln_classes = math.log(int(test_labels.max()) + 1)
checks.observe("the identity and the rotation are orthogonal: regulariser 0",
               max(reg["identity"], reg["random rotation"]) < 1e-3,
               measured=f"{reg['identity']:.1e}, {reg['random rotation']:.1e}")
checks.observe(f"the Gaussian matrix's regulariser is near K = {K}, not near 0 or 1 (between K/2 and 2K)",
               K / 2 < gauss < 2 * K, measured=f"{gauss:.1f}")
checks.observe("times 0.001 it adds less than a tenth of the cross-entropy at initialisation, ln(number of classes)",
               0.001 * gauss < 0.1 * ln_classes, measured=f"{0.001 * gauss:.3f} vs ln(classes) = {ln_classes:.2f}")

# %% [markdown]
# ## Exercise 8: ResNet's residual block
#
# The image encoders of the lecture (section 1) stack **basic blocks** (He et al. 2016):
# $y = \mathrm{ReLU}(F(x) + \mathrm{skip}(x))$ with
# $F = \text{conv}_{3\times3}(\text{stride}) \to \text{BN} \to \text{ReLU} \to \text{conv}_{3\times3}
# \to \text{BN}$. When the block keeps the shape (`cin == cout`, stride 1) the skip is the
# identity; when it changes it (more channels, or stride 2, which halves the height and width) $x$
# cannot be added as it is, and the skip is a **projection**: a $1\times1$ convolution with the
# block's stride, followed by BatchNorm.
#
# Complete `ResidualBlock`: the skip in `__init__`, and `forward`. Keep the layer names: the
# self-check loads the weights of `course_lib`'s `models.encoders.BasicBlock` into your layers
# (BatchNorm statistics far from 0 and 1, eval mode) and compares the outputs, with and without a
# projection, at stride 1 and 2.

# %%
class ResidualBlock(nn.Module):
    """ResNet's basic block: ``relu(F(x) + skip(x))``, ``F = conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN``.

    Args:
        cin, cout: ``int`` >= 1, the channels of the input and of the output.
        stride: ``int``, 1 or 2, the stride of ``conv1`` (2 halves the height and the width).

    Layers (their names are the ones ``course_lib``'s ``BasicBlock`` uses): ``conv1``, ``bn1``, ``conv2``,
    ``bn2`` (given), and ``skip``: ``nn.Identity()`` when the shape does not change, otherwise
    ``nn.Sequential(conv, bn)`` with ``conv`` a 1x1 convolution ``cin -> cout`` with the block's stride and no
    bias, ``bn`` a ``BatchNorm2d(cout)``.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        ### BEGIN SOLUTION
        self.skip = nn.Identity()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        ### END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, cin, H, W)`` -> ``(B, cout, ceil(H / stride), ceil(W / stride))``; ``x`` is not changed."""
        ### BEGIN SOLUTION
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.skip(x))
        ### END SOLUTION


# %%
checks.check_residual_block(ResidualBlock)

# %% [markdown]
# **A block that does nothing.** He et al.'s argument: a deeper network should be able to copy a
# shallower one by making its extra blocks the identity. Take a stack of 12 of your blocks (8
# channels) and set the scale of every `bn2` to zero, so that $F(x) = 0$ in every block (this is
# `zero_init_residual=True` of the lecture's `ResNetEncoder`, a common initialisation). Next to it,
# the same stack with every skip replaced by a map to zero: a plain network of the same layers.
#
# **Predict first.** For a non-negative input $x$ (an image, say), what does each stack output?

# %% tags=["uses-exercise"]
class ZeroSkip(nn.Module):
    """No skip connection: the block becomes relu(F(x))."""

    def forward(self, x):
        return torch.zeros_like(x)


through = {}  # "residual" / "plain" -> the stack's output, once your blocks are built
config.seed_everything(0)
stacks = {}  # "residual" / "plain" -> a stack of 12 blocks with F = 0
for kind in ("residual", "plain"):
    blocks = [ResidualBlock(8, 8) for _ in range(12)]
    for block in blocks:
        nn.init.zeros_(block.bn2.weight)  # F(x) = bn2(...) = 0: the block "does nothing" but its skip
        if kind == "plain":
            block.skip = ZeroSkip()
    stacks[kind] = nn.Sequential(*blocks).eval()
image = torch.rand(2, 8, 16, 16, generator=torch.Generator().manual_seed(0))  # non-negative, like pixels
with torch.no_grad():
    through = {kind: stack(image) for kind, stack in stacks.items()}
for kind, out in through.items():
    print(f"{kind:>8}: max |output - input| = {float((out - image).abs().max()):.2e}, "
          f"max |output| = {float(out.abs().max()):.2e}")

# %% [markdown]
# **Observe.** The residual stack returns its input exactly: with $F = 0$ each block is
# $\mathrm{ReLU}(0 + x) = x$ for $x \ge 0$, so twelve blocks that "do nothing" cost nothing. The plain
# stack returns zeros everywhere: without a skip, $F = 0$ erases the signal, and a plain block can
# only pass its input on by *learning* the identity through two convolutions, two BatchNorms and two
# ReLUs. That is the asymmetry behind the degradation He et al. observed (a plain 34-layer network
# training worse than an 18-layer one). What would `ZeroSkip` do to the gradient that reaches the
# first block?

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(len(through) < 2)
checks.observe("with F = 0 the residual stack returns its non-negative input exactly",
               bool(torch.equal(through["residual"], image)),
               measured=f"max |output - input| {float((through['residual'] - image).abs().max()):.1e}")
checks.observe("with F = 0 the plain stack returns zeros everywhere", float(through["plain"].abs().max()) == 0.0,
               measured=f"max |output| {float(through['plain'].abs().max()):.1e}")

# %% [markdown]
# ## Train and evaluate your PointNet
#
# `MyPointNet` wraps your `pointnet_encode` with the layers of `course_lib`'s PointNet:
# every layer of $h$ is a Linear followed by BatchNorm over the channels (as in the paper),
# and the classifier head $\gamma$ is the same MLP. It is trained with exactly the lecture's
# recipe, `C.fit_kwargs("pointnet", ...)`: same optimiser, learning-rate schedule, epochs,
# batch size, points per cloud and augmentation; only the loss function is written out here.
# Next to it, `course_lib`'s PointNet is trained in the same way (or loaded from the
# lecture's checkpoint), and the self-check at the end of the cell compares the two. (This profile's
# schedule is tuned for a network *with* BatchNorm; exercise 4 below removes it.) In the `ci`
# profile only a few steps run: both accuracies are then near chance and are not compared.
#
# **Predict first.** Chance is one class in `n_classes`. What held-out accuracy do you expect
# from your PointNet in this profile, and will it be above, level with, or below course_lib's?

# %% tags=["uses-exercise"]
class PointBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the channels of per-point features (B, N, C), statistics over batch and points."""

    def forward(self, x):
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class MyPointNet(nn.Module):
    """Your `pointnet_encode` with the layers and head of course_lib's PointNet in this profile
    (`S["pointnet"]`; without the T-Nets that the gpu profile adds)."""

    def __init__(self, n_classes: int, arch=S["pointnet"]):
        super().__init__()
        momentum = arch.get("bn_momentum", 0.1)
        dims = (3, *arch["hidden"], arch["feat_dim"])
        self.h = nn.ModuleList(nn.Sequential(nn.Linear(a, b, bias=False), PointBatchNorm(b, momentum=momentum))
                               for a, b in zip(dims[:-1], dims[1:]))
        widths, p = (arch["feat_dim"], *arch["head"]), arch.get("dropout", 0.4)
        head = []
        for a, b in zip(widths[:-1], widths[1:]):
            head += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b, momentum=momentum), nn.ReLU(), nn.Dropout(p)]
        self.gamma = nn.Sequential(*head, nn.Linear(widths[-1], n_classes))

    def forward(self, points):
        g, _ = pointnet_encode(points, list(self.h))
        return self.gamma(g)


train_points, train_labels = C.load_point_clouds("train")
n_classes = int(train_labels.max()) + 1
config.seed_everything(0)
mine = MyPointNet(n_classes)


def loss_fn(model, batch):
    points, labels = batch["points"], batch["label"]
    points = C.augment_points(C.random_subset(points, S["n_points"]))
    logits = model(points)
    return {"loss": nn.functional.cross_entropy(logits, labels),
            "acc": float((logits.argmax(1) == labels).float().mean())}


kw = C.fit_kwargs("pointnet", mine, (train_points, train_labels))  # the lecture's recipe ...
kw["loss_fn"] = loss_fn  # ... with the loss written out
acc = None  # your PointNet's held-out accuracy, once trained
history = fit(mine, **kw)
acc = C.evaluate_accuracy(mine, test_points, test_labels, n_points=S["n_points"])
print(f"your PointNet: test accuracy {acc:.3f} ({len(test_labels)} held-out shapes)")

reference = C.build_classifier("pointnet")  # course_lib's, trained the same way (or loaded)
train_or_load(reference, C.checkpoint_path("pointnet"),
              **C.fit_kwargs("pointnet", reference, (train_points, train_labels)))
checks.check_pointnet_training(mine, reference, test_points[:, : S["n_points"]], test_labels)

# %% [markdown]
# **Observe.** In the laptop profile your PointNet lands far above chance (above 0.8; about 0.96 on the
# 100 held-out shapes) and level with course_lib's, trained the same way in this run (within 0.08, the
# self-check's tolerance). The `ci` run is too small to show either: a few training steps only, its
# accuracy stays near chance and says nothing. The chapter's benchmark trained course_lib's PointNet with
# this recipe (laptop profile, 3 seeds, epochs chosen on validation shapes, 12 where the lecture trains
# 6); its held-out accuracy is below. Which classes would you expect a PointNet to confuse, and why?

# %%
pn = results.get("encoders", "models", "pointnet")
if pn:
    print(f"benchmark (laptop): course_lib's PointNet, {pn['epochs']} epochs, held-out accuracy "
          f"{pn['test_acc']:.3f} ({results.get('encoders', 'n_test')} shapes), {pn['big_test_acc']:.3f} on "
          f"{results.get('encoders', 'n_big_test')} more (mean of {len(results.get('encoders', 'seeds'))} seeds)")
else:
    print("the benchmark's numbers are not here yet: COURSE_PROFILE=laptop python benchmarks/encoders.py")

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(acc is None)
ref_acc = C.evaluate_accuracy(reference, test_points, test_labels, n_points=S["n_points"])
checks.observe("your PointNet is far above chance: held-out accuracy above 0.8", acc > 0.8, shown_in=("laptop", "gpu"),
               measured=f"{acc:.3f}, chance {1 / n_classes:.3f}")
checks.observe("your PointNet is level with course_lib's, trained the same way and far above chance too (within 0.08)",
               abs(acc - ref_acc) <= 0.08 and ref_acc > 0.8, shown_in=("laptop", "gpu"),
               measured=f"{acc:.3f} vs {ref_acc:.3f}")

# %% [markdown]
# **Robustness.** The accuracy of your network against the number of test points (it was
# trained at `S["n_points"]`). Compare with the lecture's curves.
#
# **Predict first.** At a quarter of the training points, will the accuracy hold or collapse? And
# with twice as many points as in training, will it go up, stay, or drop?

# %% tags=["uses-exercise"]
counts = [n for n in S["test_points"] if n <= test_points.shape[1]]
vs_points = {}  # number of test points -> your PointNet's accuracy
vs_points = C.accuracy_vs_points(mine, test_points, test_labels, counts)
ref_points = C.accuracy_vs_points(reference, test_points, test_labels, counts)
print({n: round(a, 3) for n, a in vs_points.items()})
viz.plot_curves(counts, {"your PointNet": list(vs_points.values()),
                         "course_lib's PointNet": list(ref_points.values())},
                xlabel="test points", ylabel="accuracy", log_x=True)

# %% [markdown]
# **Observe.** In the laptop profile the accuracy holds at a quarter of the training points (within
# 0.05 of its value at the training count), stays with twice as many (no more than 0.03 below), and
# even at 64 points, a sixteenth, it is lower but far above chance (above 0.5). In the `ci` profile your
# network is barely trained and its curve is noise at chance level: too small to show any of this, so
# compare the shape of the benchmark's curve with your guess. The benchmark's curve for course_lib's
# PointNet (laptop profile, trained at the number of points it prints) is below. Why does a max over
# points degrade gracefully when points are removed, and why do extra points not hurt it?

# %%
curve = results.get("encoders", "models", "pointnet", "vs_points")
print(f"benchmark (laptop), trained at {results.get('encoders', 'n_points')} points; accuracy by number of test "
      "points: "
      + ", ".join(f"{int(n)}: {a:.3f}" for n, a in curve) if curve else
      "the benchmark's numbers are not here yet: COURSE_PROFILE=laptop python benchmarks/encoders.py")

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(not vs_points)
n_train, fewest = S["n_points"], min(vs_points)
at_train = vs_points[n_train]
curve_here = ", ".join(f"{n}: {a:.2f}" for n, a in vs_points.items())
if n_train // 4 in vs_points:
    checks.observe("at a quarter of the training points the accuracy holds (within 0.05), far above chance",
                   vs_points[n_train // 4] >= at_train - 0.05 and vs_points[n_train // 4] > 0.5,
                   shown_in=("laptop", "gpu"), measured=curve_here)
if 2 * n_train in vs_points:
    checks.observe("with twice the training points it stays (no more than 0.03 below), far above chance",
                   vs_points[2 * n_train] >= at_train - 0.03 and vs_points[2 * n_train] > 0.5,
                   shown_in=("laptop", "gpu"), measured=curve_here)
checks.observe(f"at {fewest} points it is still far above chance (above 0.5)", vs_points[fewest] > 0.5,
               shown_in=("laptop", "gpu"), measured=curve_here)

# %% [markdown]
# ## Questions
#
# Answer in a few sentences or a short derivation, in the cell below (your instructor reads
# them; `python -m course_lib.grade` collects them for marking by hand).
#
# 1. Why is a max over points invariant to their order, and what does a PointNet lose by pooling once over the whole cloud?
# 2. What does a ball query return in a dense region and in a sparse one, and how does a set-abstraction level cope with the difference?
# 3. DGCNN rebuilds its k-nearest-neighbour graph in feature space at every layer. What can a later layer's graph connect that the first layer's cannot?
# 4. EdgeConv feeds $[x_j - x_i,\ x_i]$ to its linear layer. What would it lose with $x_j - x_i$ alone? Is $[x_j,\ x_i]$ any different for a learned linear layer? (Hint: expand $W [x_j - x_i, x_i]$ as $W_1 x_j + (W_2 - W_1) x_i$.)

# %% [markdown] tags=["answer"]
# *Your answers: 1. ... 2. ... 3. ... 4. ...*

# %% [markdown]
# ## To go further
# 1. Replace the max by a mean in `pointnet_encode` and retrain: what happens at 64 points?
# 2. Write a batched FPS with no Python loop over the samples. Is it possible? Why not?
# 3. Ball query keeps the *first* `k` points; change it to keep the `k` nearest. Which one
#    is permutation invariant? Which one is cheaper?
# 4. Replace the BatchNorm layers of `MyPointNet` by `nn.Identity()` and retrain with the same
#    recipe: how far does the test accuracy fall, and how many more epochs (or which learning
#    rate) does the network without BatchNorm need to catch up?
