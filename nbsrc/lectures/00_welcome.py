# %% [markdown]
# # 00 · Welcome: how this course works
#
# This course is about **generating 3D surfaces with deep networks**: given an image, a
# depth map or a point cloud, predict a shape, and represent that shape as voxels, an
# octree, a point set, a deformed surface, an implicit field, a set of primitives or a
# gradient field. It follows the arc of the tutorial *Deep Learning for 3D: Toward Surface
# Generation* (Groueix & Langlois) and ends with ShapeGF (Cai et al., 2020).
#
# Every method is implemented for real in the library `course_lib`, tested against
# independent references, and small enough to train on a laptop CPU. The notebooks are
# thin: they explain, call `course_lib`, and plot.
#
# | part | what it is for |
# |---|---|
# | `lectures/NN_topic.ipynb` | the explanation, with figures and widgets to play with |
# | `labs/NN_topic_lab.ipynb` | exercises for you, each followed by a **self-check** |
# | `solutions/NN_topic_lab.ipynb` | the same lab, worked (the labs are generated from it) |
# | `course_lib/` | every implementation, documented; each function names the notebook that introduces it |
#
# ## The chapters
#
# | NN | chapter | the idea in one line |
# |---|---|---|
# | 00 | welcome | profiles, self-checks, the training loop (this notebook) |
# | 01 | data & representations | RGB, RGB-D, points; voxels, meshes, signed distances; converting between them |
# | 02 | encoders | ResNet for images; PointNet, PointNet++, DGCNN for point clouds |
# | 03 | voxels | 3D CNNs and the curse of dimensionality, measured |
# | 04 | octrees | spend memory only where the surface is (OctNet, OGN) |
# | 05 | point sets | PointSetGen; Chamfer versus Earth Mover's distance |
# | 06 | surfaces | AtlasNet: deform squares or a sphere; 3D-CODED; Poisson |
# | 07 | implicit fields | occupancy and SDF networks; marching cubes |
# | 08 | primitives | cuboids and superquadrics; REINFORCE versus the reordering trick |
# | 09 | differentiable rendering | why rasterisation has no gradient, and how to get one |
# | 10 | gradient fields | ShapeGF: score matching and annealed Langevin dynamics |
# | 11 | evaluation | metrics with explicit conventions, one table for every model |
#
# The README marks which chapters have landed.

# %% [markdown]
# ## Your environment
#
# The first code cell of every notebook prints the **profile** and the **device**.

# %%
import torch

import course_lib
from course_lib import checks, config, train, viz

print(config.describe())

# %% [markdown]
# `course_lib.doctor()` tells you what your machine can do for the course: versions,
# whether a GPU is there, whether widgets can be shown, where generated data is cached.
# Run it first when something looks wrong, and paste its output when you ask for help.

# %%
course_lib.doctor();

# %% [markdown]
# ## One knob: the profile
#
# Every size in every notebook (number of points, epochs, grid resolutions, dataset
# sizes) comes from one table in `course_lib.config`, read through `config.size(...)`.
# The environment variable `COURSE_PROFILE` picks the column:
#
# - `ci`: tiny sizes so that an automatic run of every notebook finishes in seconds
#   (results are meaningless, only the code path is checked);
# - `laptop`: the default without a GPU; every experiment runs in minutes on a CPU;
# - `gpu`: the default when CUDA is available; larger models and datasets.
#
# Start JupyterLab with, say, `COURSE_PROFILE=laptop jupyter lab` to force a profile,
# or put `%env COURSE_PROFILE=ci` in the first cell of a notebook (before importing
# `course_lib`). A misspelt profile is an error that lists the valid names.
#
# Here is one block of the table:

# %%
table = config.size_table()
rows = [k for k in table if k.startswith(("welcome.", "data."))]
width = max(len(k) for k in rows)
print(f"{'size':<{width}}  " + "  ".join(f"{p:>8}" for p in config.PROFILES))
for k in rows:
    print(f"{k:<{width}}  " + "  ".join(f"{str(table[k][p]):>8}" for p in config.PROFILES))

# %% [markdown]
# The same code runs on the CPU and on a GPU: `config.get_device()` returns CUDA when it
# is there and the CPU otherwise (set `COURSE_DEVICE=cpu` to force the CPU), and
# `config.seed_everything(seed)` seeds Python, NumPy and torch so that a run repeats on the same
# machine and versions (it does not switch torch to deterministic algorithms, so another machine, a
# GPU or another thread count may differ in the last digits).

# %%
device = config.get_device()
gen = config.seed_everything(0)
print("device:", device, "| a seeded draw:", torch.rand(3, generator=gen))

# %% [markdown]
# ## Self-checks
#
# In a lab, every exercise is a function with its body replaced by
# `raise NotImplementedError()`. The cell after it calls a self-check from
# `course_lib.checks`, which runs your function on small seeded inputs, compares with an
# independent reference, and prints one line: passed, not implemented yet, or *what* is
# wrong (a shape, a dtype, a value and where, a symmetry). The common mistakes of each
# exercise are recognised and named: the check compares your answer with each of them
# before it compares with the reference. Here is what the three outcomes look like for the
# warm-up exercise of this chapter's lab, the matrix of squared distances between two
# batched point clouds $D_{b,i,j} = \lVert x_{b,i} - y_{b,j} \rVert^2$; the second answer
# forgets the square (`torch.cdist` returns plain distances), and the check says so. (In a lab,
# `checks.stop_on_failure()` in the first cell makes a wrong answer also stop "Run all" at its
# check, so that the cells that use your function do not run on it; a stub that is not written yet
# does not stop anything. Here, in the lecture, the run goes on.)

# %%
def not_done(x, y):
    raise NotImplementedError()


def forgot_the_square(x, y):
    return torch.cdist(x, y)


def right(x, y):
    return ((x[:, :, None, :] - y[:, None, :, :]) ** 2).sum(-1)


for fn in (not_done, forgot_the_square, right):
    checks.check_pairwise_sq_dists(fn)

# %% [markdown]
# ## The training loop
#
# Every chapter trains with the same loop, `course_lib.train.fit`: a progress bar, the
# loss history, optional validation that keeps the best weights, checkpoints, and a clean
# stop on *Kernel → Interrupt* (the best weights so far are kept; interrupted before the first
# epoch ends, there are none yet, and the model keeps what it has learnt). Its companion
# `train.train_or_load(model, path, ...)` loads a checkpoint when one exists, so that
# re-running a notebook is quick, and it never loads weights that were trained otherwise:
# the checkpoint records the architecture, the loss, the optimiser, the epochs and the data
# (`train.checkpoint_path(name, spec)` puts a hash of the data settings in the file name).
# An interrupted run is kept as a *partial* checkpoint and resumed by the next call, never
# served as a finished one. It prints one line saying what it loaded or why it trains. In a class,
# the instructor can train the models once and share the folder: with `COURSE_CHECKPOINT_DIR`
# pointing to it (`train.class_checkpoint_dir()`), a matching checkpoint there is loaded first and
# the folder is never written; anything missing trains on your machine, into your own cache.
#
# As a first taste of chapter 05, we *learn a point set*: the parameters are the
# coordinates of $N$ points, and the loss is the Chamfer distance to points sampled on a
# circle of radius $0.8$,
#
# $$
# \mathrm{CD}(X, Y) = \frac{1}{|X|}\sum_{x\in X}\min_{y\in Y}\lVert x-y\rVert^2
#   + \frac{1}{|Y|}\sum_{y\in Y}\min_{x\in X}\lVert x-y\rVert^2 .
# $$

# %%
from course_lib.ops import chamfer_distance

n_points = config.size("welcome.n_points")
epochs = config.size("welcome.epochs")


def circle(n, radius=0.8, noise=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * 2 * torch.pi
    pts = torch.stack([radius * torch.cos(t), radius * torch.sin(t), torch.zeros(n)], -1)
    return pts + noise * torch.randn(n, 3, generator=g)


class PointSet(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.xyz = torch.nn.Parameter(0.1 * torch.randn(n, 3))


targets = [circle(n_points, seed=s) for s in range(8)]  # 8 random samplings of the circle
model = PointSet(n_points)
history = train.fit(
    model, targets, loss_fn=lambda m, y: chamfer_distance(m.xyz, y), epochs=epochs, lr=0.02, seed=0
)
print(history.summary())

# %%
fig = viz.plot_points(circle(n_points), color="lightgray", name="target", title="learned points (blue) on the circle")
viz.plot_points(model.xyz.detach(), color="royalblue", name="learned", fig=fig)

# %% [markdown]
# ## How the course measures
#
# A number in this course is worth reading only if a rerun gives it back for the reason the
# lecture gives. Every benchmark and lecture follows one protocol
# (`course_lib.experiments.protocol`), the practice of careful papers on learned 3D
# reconstruction (Tatarchenko et al., 2019, showed how far a missing baseline can mislead):
#
# 1. **Three splits, three jobs.** Models learn on `train`; every choice (learning rate,
#    epochs, set size, threshold, schedule, noise levels) is made on `val`; `test` is read once,
#    at the end, to report. The test shapes are seeds nobody has chosen anything on.
# 2. **Equal budgets.** Rivals in a comparison get the same optimiser steps, each with its own
#    recipe tuned on `val`, and every table shows each row's steps, examples seen, seconds and
#    parameters.
# 3. **Seeds and standard errors.** A comparative sentence needs at least 3 training seeds (or
#    20 shapes scored by fixed models), and its verdict comes from the mean paired difference
#    $\bar d$ and its standard error $s/\sqrt{n}$: *ahead* or *behind* only when
#    $|\bar d| > 2\,s/\sqrt{n}$, else *not separated*, which is a result too.
# 4. **Claims written from results.** Benchmarks store each comparison as a *claim record* and
#    each goal as a *goal record* in `benchmarks/results/*.json`; lectures print them
#    (`results.say`, `results.show_goals`) instead of typing them.
#
# The library enforces the first rule: inside a selection, asking for a test shape raises.
# Below, the point-set fit above chooses its learning rate on validation samplings of the
# circle, then reports on test samplings.

# %%
from course_lib.data import TestSplitReadError, split_seeds
from course_lib.experiments import protocol

print("first seeds of each split:", {s: split_seeds(s, 2) for s in ("train", "val", "test")})

val_targets = [circle(n_points, seed=100 + s) for s in range(4)]  # validation samplings
test_targets = [circle(n_points, seed=200 + s) for s in range(4)]  # test samplings, read once


def fit_points(lr, seed):
    torch.manual_seed(seed)
    m = PointSet(n_points)
    train.fit(m, targets, loss_fn=lambda m, y: chamfer_distance(m.xyz, y), epochs=epochs, lr=lr, seed=seed,
              progress=False, live_plot=False)
    return m


def mean_cd(m, clouds):
    with torch.no_grad():
        return float(torch.stack([chamfer_distance(m.xyz, y) for y in clouds]).mean())


lrs = {"0.002": 0.002, "0.02": 0.02, "0.2": 0.2}
name, lr, record = protocol.select_on_val("welcome.lr", lrs, lambda lr: mean_cd(fit_points(lr, 0), val_targets),
                                          metric="val CD", higher_is_better=False)
print("chosen on val:", record["chosen"], "from", {k: round(v, 5) for k, v in record["candidates"].items()})


def peeking(lr):  # a scorer that looks at the test split: refused
    split_seeds("test", 4)
    return 0.0


try:
    protocol.select_on_val("welcome.lr (peeking)", lrs, peeking, metric="CD", higher_is_better=False)
except TestSplitReadError as err:
    print("refused:", str(err)[:110], "...")

# %% [markdown]
# Now a comparative sentence, tested rather than typed: is the learning rate chosen on
# validation closer to the circle on the test samplings than one ten times smaller? Three
# training seeds each, the same epochs for both (equal budgets), then the verdict.

# %%
small = lr / 10
seeds = [0, 1, 2]
cd_chosen = [mean_cd(fit_points(lr, s), test_targets) for s in seeds]
cd_small = [mean_cd(fit_points(small, s), test_targets) for s in seeds]
steps = epochs * len(targets)
bud = protocol.budget(steps=steps, examples=steps, seconds=None, params=3 * n_points)
rec = protocol.claim("welcome.lr", f"lr {name} (chosen on val) fits the circle closer than lr {small:g}",
                     a=f"lr {name}", b=f"lr {small:g}", metric="test CD", values_a=cd_chosen, values_b=cd_small,
                     higher_is_better=False, unit="seeds", budget={f"lr {name}": bud, f"lr {small:g}": bud})
print(protocol.claim_sentence(rec))

# %% [markdown]
# ## A widget
#
# Lectures have widgets to play with. They need a Jupyter frontend with the widget
# manager (JupyterLab 4, Notebook 7, VS Code, Colab); anywhere else (a static viewer, a
# headless run) the same cell shows a still figure of the initial values instead of a
# blank cell. Drag the sliders: how many points does it take before the circle reads as
# a circle, and how much noise before it does not?

# %%
def noisy_circle(n_points=64, noise=0.0):
    return viz.plot_points(circle(n_points, noise=noise), title=f"{n_points} points, noise {noise:.2f}")


viz.interact(noisy_circle, n_points=(8, 1024, 8), noise=(0.0, 0.2, 0.01))

# %% [markdown]
# ## Working with a GPU, or without one
#
# Nothing in the course needs a GPU. Without one, the `laptop` profile keeps every
# experiment in minutes. With one, the `gpu` profile is chosen automatically and the same
# notebooks train larger models on more data; `course_lib` puts tensors on the device of
# their inputs, so no code changes.
#
# ## For instructors
#
# - Notebook sources are the scripts in `nbsrc/` (jupytext percent format): readable diffs,
#   no outputs. `python -m course_lib.labs` builds `lectures/` and `solutions/` from them, then
#   `labs/` from `solutions/` (solution markers → `raise NotImplementedError()`).
#   `python -m course_lib.labs --check` fails when any generated notebook is out of step.
# - `python tools/test.py` runs everything CI runs: ruff, unit tests, the labs check, and every
#   notebook under the `ci` profile with each notebook's time.
# - `python -m course_lib.pretrain --profile laptop` trains, once, every model the lectures load
#   (`--dry-run` lists them with sizes and a measured estimate of time and memory; `torchrun
#   --nproc_per_node=N -m course_lib.pretrain` shares the batches among N processes or GPUs); share the
#   checkpoint folder with the class through `COURSE_CHECKPOINT_DIR`.
# - `python -m course_lib.grade SUBMISSIONS --out grades.csv` executes submitted labs fresh and turns
#   every self-check into a point (README, "For instructors").
#
# ## Summary
#
# - Lectures explain, labs practise, solutions show one way; `course_lib` holds the real code.
# - `COURSE_PROFILE` (`ci`, `laptop`, `gpu`) sets every size; `config.describe()` and
#   `course_lib.doctor()` say where you are.
# - Self-checks answer in one line: passed, not implemented yet, or what is wrong.
# - `train.fit` / `train.train_or_load` train everything in the course.
# - Choices on `val`, a report on `test`, equal budgets, 3 seeds or 20 shapes behind every
#   comparison, and sentences printed from their claim records.
#
# ## Exercises to go further
#
# 1. Re-run the point-set fit with `COURSE_PROFILE=laptop` and with 10× fewer epochs. Where
#    do the learned points end up when training stops early?
# 2. Replace the circle by two concentric circles. Does the Chamfer distance spread the
#    points over both, in proportion to their lengths? (Chapter 05 answers this properly.)
# 3. Interrupt a long `train.fit` run with *Kernel → Interrupt* and check that
#    `history.interrupted` is `True` and the model holds the best weights (`history.best_epoch`). What
#    happens if you interrupt during the first epoch?
# 4. Run the learning-rate claim with one seed only: what does `protocol.claim` say, and why
#    is that the right answer? Then compare the chosen rate with one ten times *larger*.
