# %% [markdown]
# # 02 · Lab: PointNet, farthest point sampling, ball query, set abstraction
#
# You write the pieces at the heart of the lecture's point encoders:
#
# 1. the **PointNet forward pass**: a shared MLP $h$ on every point, then a max over the
#    points (and the indices of the points that win it, the critical points);
# 2. **farthest point sampling** (FPS), which picks well-spread centres;
# 3. **ball query**, which gathers the neighbourhood of each centre;
# 4. a **set-abstraction level** of PointNet++, built from the three.
#
# Each exercise is followed by a **self-check** that tests shapes, invariance and agreement
# with `course_lib`. At the end you train your PointNet on ShapeNet-lite and evaluate it.

# %%
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
with torch.no_grad():
    g, crit = pointnet_encode(cloud[None], layers)
    only = crit[0].unique()
    g_crit, _ = pointnet_encode(cloud[only][None], layers)
print(f"{len(only)} critical points of {len(cloud)}; difference: {(g - g_crit).abs().max().item():.1e}")
fig = viz.plot_points(cloud, color="lightgray", size=2, title="critical points of random layers")
viz.plot_points(cloud[only], color="red", size=4, fig=fig)

# %% [markdown]
# **Observe.** One point can win several channels, so there are at most 256 critical points, and
# usually far fewer; every other point could move (a little) without changing `g`. The same max makes
# the trained network blind to the order of the points: the chapter's benchmark (laptop profile)
# shuffled held-out clouds and measured the largest change of the trained PointNet's logits, below.
# Why is it exactly zero, not merely small?

# %%
perm = results.get("encoders", "models", "pointnet", "perm_error")
print(f"benchmark (laptop): largest change of the logits after shuffling the points: {perm}"
      if perm is not None else "the benchmark's numbers are not here yet: COURSE_PROFILE=laptop python "
      "benchmarks/encoders.py")

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
centres_idx = farthest_point_sampling(xyz, 16)
centres = xyz[0, centres_idx[0]][None]
groups = ball_query(xyz, centres, 0.2, 32)
labels = torch.full((len(cloud),), -1)
for c in range(16):
    labels[groups[0, c]] = c
fig = viz.plot_points(cloud[labels < 0], color="lightgray", size=2, title="16 balls of radius 0.2")
print(f"{int((labels >= 0).sum())} of {len(cloud)} points fall in a ball (at most 16 x 32 = 512 are kept)")
viz.plot_points(cloud[labels >= 0], color=labels[labels >= 0], size=3, fig=fig)

# %% [markdown]
# **Observe.** A ball keeps only its *first* 32 points: in a dense region (the seat) many points
# inside a ball are left out, and FPS spreads the centres, so thin parts far from any centre stay
# grey. A second level groups the *centres*, which is how PointNet++ grows its receptive field.
# What would a larger radius change, and what would a larger `k` cost?

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
# ## Train and evaluate your PointNet
#
# `MyPointNet` wraps your `pointnet_encode` with the layers of `course_lib`'s PointNet:
# every layer of $h$ is a Linear followed by BatchNorm over the channels (as in the paper),
# and the classifier head $\gamma$ is the same MLP. It is trained with exactly the lecture's
# recipe, `C.fit_kwargs("pointnet", ...)`: same optimiser, learning-rate schedule, epochs,
# batch size, points per cloud and augmentation; only the loss function is written out here.
# Next to it, `course_lib`'s PointNet is trained in the same way (or loaded from the
# lecture's checkpoint). With a correct `pointnet_encode` the two reach the same accuracy up
# to the seed, and the self-check at the end of the cell compares them. (This profile's
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
history = fit(mine, **kw)
acc = C.evaluate_accuracy(mine, test_points, test_labels, n_points=S["n_points"])
print(f"your PointNet: test accuracy {acc:.3f} ({len(test_labels)} held-out shapes)")

reference = C.build_classifier("pointnet")  # course_lib's, trained the same way (or loaded)
train_or_load(reference, C.checkpoint_path("pointnet"),
              **C.fit_kwargs("pointnet", reference, (train_points, train_labels)))
checks.check_pointnet_training(mine, reference, test_points[:, : S["n_points"]], test_labels)

# %% [markdown]
# **Observe.** The chapter's benchmark trained course_lib's PointNet with this recipe (laptop
# profile, 3 seeds, epochs chosen on validation shapes); its held-out accuracy is below. Your
# network, with the same layers and recipe, should land within a seed's spread of it in the laptop
# profile; in the `ci` profile it trained for a few steps only and its accuracy says nothing. Which
# classes would you expect a PointNet to confuse, and why?

# %%
pn = results.get("encoders", "models", "pointnet")
if pn:
    print(f"benchmark (laptop): course_lib's PointNet, {pn['epochs']} epochs, held-out accuracy "
          f"{pn['test_acc']:.3f} ({results.get('encoders', 'n_test')} shapes), {pn['big_test_acc']:.3f} on "
          f"{results.get('encoders', 'n_big_test')} more (mean of {len(results.get('encoders', 'seeds'))} seeds)")
else:
    print("the benchmark's numbers are not here yet: COURSE_PROFILE=laptop python benchmarks/encoders.py")

# %% [markdown]
# **Robustness.** The accuracy of your network against the number of test points (it was
# trained at `S["n_points"]`). Compare with the lecture's curves.
#
# **Predict first.** At a quarter of the training points, will the accuracy hold or collapse? And
# with twice as many points as in training, will it go up, stay, or drop?

# %% tags=["uses-exercise"]
counts = [n for n in S["test_points"] if n <= test_points.shape[1]]
vs_points = C.accuracy_vs_points(mine, test_points, test_labels, counts)
ref_points = C.accuracy_vs_points(reference, test_points, test_labels, counts)
print({n: round(a, 3) for n, a in vs_points.items()})
viz.plot_curves(counts, {"your PointNet": list(vs_points.values()),
                         "course_lib's PointNet": list(ref_points.values())},
                xlabel="test points", ylabel="accuracy", log_x=True)

# %% [markdown]
# **Observe.** The benchmark's curve for course_lib's PointNet (laptop profile, trained at the
# number of points it prints) is below. In the `ci` profile your network is barely trained and its curve is
# noise: compare the shape of the benchmark's curve with your guess. Why does a max over points
# degrade gracefully when points are removed, and why do extra points not hurt it?

# %%
curve = results.get("encoders", "models", "pointnet", "vs_points")
print(f"benchmark (laptop), trained at {results.get('encoders', 'n_points')} points; accuracy by number of test "
      "points: "
      + ", ".join(f"{int(n)}: {a:.3f}" for n, a in curve) if curve else
      "the benchmark's numbers are not here yet: COURSE_PROFILE=laptop python benchmarks/encoders.py")

# %% [markdown]
# ## Questions
#
# Answer in a few sentences or a short derivation, in the cell below (your instructor reads
# them; `python -m course_lib.grade` collects them for marking by hand).
#
# 1. Why is a max over points invariant to their order, and what does a PointNet lose by pooling once over the whole cloud?
# 2. What does a ball query return in a dense region and in a sparse one, and how does a set-abstraction level cope with the difference?
# 3. DGCNN rebuilds its k-nearest-neighbour graph in feature space at every layer. What can a later layer's graph connect that the first layer's cannot?

# %% [markdown] tags=["answer"]
# *Your answers: 1. ... 2. ... 3. ...*

# %% [markdown]
# ## To go further
# 1. Replace the max by a mean in `pointnet_encode` and retrain: what happens at 64 points?
# 2. Write a batched FPS with no Python loop over the samples. Is it possible? Why not?
# 3. Ball query keeps the *first* `k` points; change it to keep the `k` nearest. Which one
#    is permutation invariant? Which one is cheaper?
# 4. Replace the BatchNorm layers of `MyPointNet` by `nn.Identity()` and retrain with the same
#    recipe: how far does the test accuracy fall, and how many more epochs (or which learning
#    rate) does the network without BatchNorm need to catch up?
