# %% [markdown]
# # 00 · Lab: warming up with point clouds
#
# Three small exercises that every later chapter builds on: squared distances between two
# point clouds, nearest-neighbour distances, and the Chamfer distance. Each one is a function
# to complete; the cell after it runs a **self-check**. Then you use your Chamfer distance to
# train a point set with the course's training loop.
#
# Conventions: a batch of point clouds is a tensor of shape `(B, N, 3)`; write batched code
# (no Python loops over points).

# %%
import torch

from course_lib import checks, config, results, train, viz

checks.stop_on_failure()  # a wrong answer stops "Run all" at its check, before the cells that use it

print(config.describe())

# %% [markdown]
# ## Exercise 1: pairwise squared distances
#
# Given `x` of shape `(B, N, 3)` and `y` of shape `(B, M, 3)`, return `D` of shape
# `(B, N, M)` with $D_{b,i,j} = \lVert x_{b,i} - y_{b,j}\rVert^2$.
#
# *Hint:* broadcasting `x[:, :, None, :] - y[:, None, :, :]` has shape `(B, N, M, 3)`;
# or expand $\lVert a-b\rVert^2 = \lVert a\rVert^2 - 2a\cdot b + \lVert b\rVert^2$.

# %%
def pairwise_sq_dists(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION
    diff = x[:, :, None, :] - y[:, None, :, :]
    return (diff**2).sum(-1)
    ### END SOLUTION


# %%
checks.check_pairwise_sq_dists(pairwise_sq_dists)

# %% [markdown]
# ## Exercise 2: nearest-neighbour distances
#
# For every point of `x`, the squared distance to its nearest point of `y`: a tensor of
# shape `(B, N)`. Use your `pairwise_sq_dists`.

# %%
def nearest_neighbour_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION
    return pairwise_sq_dists(x, y).min(dim=-1).values
    ### END SOLUTION


# %%
checks.check_nearest_neighbour_dist(nearest_neighbour_dist)

# %% [markdown]
# ## Exercise 3: the Chamfer distance
#
# $$
# \mathrm{CD}(X, Y) = \frac{1}{N}\sum_{i}\min_{j}\lVert x_i-y_j\rVert^2
#   + \frac{1}{M}\sum_{j}\min_{i}\lVert x_i-y_j\rVert^2
# $$
#
# for each cloud of the batch, then averaged over the batch: return a scalar (shape `()`),
# ready to be a loss. One line is enough. The self-check also checks that gradients reach
# the points (a loss computed through `.detach()`, `.item()` or NumPy cannot train anything).

# %%
def chamfer(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    cd = (nearest_neighbour_dist(x, y).mean(-1) + nearest_neighbour_dist(y, x).mean(-1)).mean()  # SOLUTION
    return cd


# %%
checks.check_chamfer(chamfer)

# %% [markdown]
# ## Use it: learn a point set
#
# The parameters are the coordinates of `n` points; the loss is your Chamfer distance to
# random samplings of a circle. `train.fit` runs the loop with a progress bar and returns
# the history.

# %%
n_points = config.size("welcome.n_points")
epochs = config.size("welcome.epochs")


def circle(n, radius=0.8, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * 2 * torch.pi
    return torch.stack([radius * torch.cos(t), radius * torch.sin(t), torch.zeros(n)], -1)


class PointSet(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.xyz = torch.nn.Parameter(0.1 * torch.randn(n, 3))


# %% [markdown]
# **Predict first.** The points start in a small blob at the centre. After training, where will
# their mean distance to the axis (the radius) be: below, on, or beyond the circle's 0.8? Will all
# points end at about the same radius, or spread over a band of radii? Write your guesses down.


# %% tags=["uses-exercise"]
torch.manual_seed(0)  # the starting blob: the same at every run
model = PointSet(n_points)
targets = [circle(n_points, seed=s) for s in range(8)]
radius = None  # the learned points' distances to the axis, once trained
history = train.fit(
    model, targets, loss_fn=lambda m, y: chamfer(m.xyz[None], y[None]), epochs=epochs, lr=0.02, seed=0
)
print(history.summary())
radius = model.xyz.detach()[:, :2].norm(dim=-1)
print(f"learned points: mean radius {radius.mean():.3f} (target 0.8), spread of the radii (std) {radius.std():.3f}, "
      f"max |z| {model.xyz.detach()[:, 2].abs().max():.3f}")
viz.plot_points(model.xyz.detach(), title="your learned point set")

# %% [markdown]
# **Observe.** The points leave the blob and move out towards the circle without overshooting it (mean
# radius between 0.6 and 0.82), all at about one radius: a band much narrower than the radius itself
# (spread under a fifth of it). With `COURSE_PROFILE=laptop` (20 epochs) they end *on* the circle: mean radius 0.80
# (within 0.02), spread under 0.02. In the `ci` profile the loop runs 3 epochs only, too few to get
# there: the points are still on their way (mean radius about 0.7), and the cell below says so.
# Chapter 05's benchmark (laptop profile) ran a harder version of this experiment: 128 points trained
# with the Chamfer distance against circles whose radius is itself random (uniform between 0.3 and 1.0,
# average 0.65); its record is printed below: its points spread over a wider band than yours. Did your
# points end where you predicted? Why does a fixed circle pull every point to one radius, while circles
# of random radius leave the points spread over a band?

# %%
rows = results.get("point_sets", "mean_shape", "rows")
row = next((r for r in rows or [] if r["ring"] == "circle" and r["radius_law"] == "uniform"
            and r["distance"] == "chamfer"), None)
if row:
    print(f"benchmark (laptop, chapter 05, {row['budget']['steps']} steps): circles of radius U(0.3, 1.0), Chamfer: "
          f"mean radius {row['mean']:.3f}, spread (std) {row['std']:.3f}, 10% to 90% of the points between "
          f"{row['q10']:.3f} and {row['q90']:.3f}")
else:
    print("the benchmark's numbers are not here yet: COURSE_PROFILE=laptop python benchmarks/point_sets.py")

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(radius is None)
r_mean, r_std = radius.mean().item(), radius.std().item()
checks.observe("the points move out of the blob towards the circle without overshooting it: mean radius between "
               "0.6 and 0.82", 0.6 < r_mean < 0.82, measured=f"mean radius {r_mean:.3f}, target 0.8")
checks.observe("they end at about one radius: the spread of the radii is under a fifth of their mean",
               r_std < 0.2 * r_mean, measured=f"spread (std) {r_std:.3f}, mean {r_mean:.3f}")
checks.observe("with enough epochs they end on the circle: mean radius within 0.02 of 0.8, spread under 0.02",
               abs(r_mean - 0.8) < 0.02 and r_std < 0.02, shown_in=("laptop", "gpu"),
               measured=f"mean radius {r_mean:.3f}, spread {r_std:.3f} after {epochs} epochs")
if row:
    checks.observe("a fixed circle leaves your points in a narrower band than the benchmark's circles of random radius",
                   r_std < row["std"], measured=f"spread {r_std:.3f} vs the benchmark's {row['std']:.3f}")

# %% [markdown]
# ## Questions
#
# Answer in a few sentences or a short derivation, in the cell below (your instructor reads
# them; `python -m course_lib.grade` collects them for marking by hand).
#
# 1. Two independent samplings of the same circle have a Chamfer distance above 0. Why, and how should it change when both clouds get four times more points?
# 2. The self-checks call your function on several seeded inputs and shapes, not one. Name a mistake that a single random input could let through.
# 3. In the point-set experiment, what would unequal spacing of the learnt points along the circle tell you about what the Chamfer distance rewards?

# %% [markdown] tags=["answer"]
# *Your answers: 1. ... 2. ... 3. ...*

# %% [markdown]
# ## What next
#
# Open `lectures/01_data_and_representations.ipynb`. If a self-check puzzles you, read its
# message again: it says what it compared and where the first difference is.
