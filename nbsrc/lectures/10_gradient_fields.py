# %% [markdown]
# # 10 · Gradient fields: a shape as the score of its blurred surface (ShapeGF)
#
# Chapters 05 and 06 decoded a latent code into a *fixed set* of points or into a *map* from
# a template. ShapeGF [Cai2020] decodes it into a **vector field** instead. Blur the surface
# $S$ of a shape with a Gaussian of width $\sigma$: the result is a density
# $Q_{\sigma,S}(x) = \int P_S(s)\,\mathcal N(x; s, \sigma^2 I)\,ds$ on all of space. The
# network learns its **score** $\nabla_x \log Q_{\sigma,S}(x)$, the direction in which the
# blurred surface gets denser. Points dropped anywhere and moved along it, with a little noise
# and a shrinking $\sigma$, end on the surface. This gives three things that chapters 05 and 06
# did not have:
#
# - **any number of points**: sample as many starting points as you like; they move
#   independently;
# - **no normalising constant**: a density must integrate to one, a score does not care;
# - **the surface as a set**: where the field vanishes (for small $\sigma$ it behaves like a
#   distance field around the surface).
#
# The tools come from score-based generative modelling: score matching [Hyvarinen2005],
# *denoising* score matching [Vincent2011], noise-conditional scores and annealed Langevin
# dynamics [Song2019]. For *generation* (new shapes), ShapeGF trains a GAN on the latent codes
# of its auto-encoder [Achlioptas2018], and scores the result with PointFlow's metrics [Yang2019].
#
# Every computation below is in `course_lib.models.shapegf` and
# `course_lib.experiments.gradient_fields`; the benchmark `benchmarks/gradient_fields.py` runs
# the same functions at the laptop sizes.

# %%
import math
import warnings

import numpy as np
import plotly.graph_objects as go
import torch

from course_lib import config, pretrain, results, viz
from course_lib.data import make_shape, reserved_seed
from course_lib.experiments import gradient_fields as ex
from course_lib.experiments import retrieval as RET
from course_lib.experiments.common import format_table
from course_lib.models import shapegf as gf

print(config.describe())

# %% [markdown]
# All sizes come from the `ch10.*` block of `course_lib.config`. In the `ci` profile every
# model is trained for a few steps only, so the learned fields below are poor on purpose: the
# cells show the code path, and the measured laptop results are read from the benchmark's file.

# %%
SZ = config.sizes(prefix="ch10.")
PROFILE = config.get_profile()
print({k: SZ[k] for k in ("categories", "train_per_category", "test_per_category", "n_points", "n_target",
                          "epochs", "hidden", "n_blocks")})
torch.manual_seed(int(SZ["seed"]))

# %% [markdown]
# ## 1. From a density to its score
#
# Take a cloud $\{p_n\}_{n=1}^N$ of the surface. Blurring it gives a mixture of $N$ Gaussians,
#
# $$Q_\sigma(x) = \frac1N\sum_n \mathcal N(x; p_n, \sigma^2 I),\qquad
#   \nabla_x \log Q_\sigma(x) = \frac{\sum_n w_n(x)\,p_n - x}{\sigma^2},\qquad
#   w_n(x) = \operatorname{softmax}_n\!\Big(-\frac{\|x-p_n\|^2}{2\sigma^2}\Big).$$
#
# The score points from $x$ to a weighted mean of the cloud; as $\sigma$ shrinks the weights
# concentrate on the nearest points, so $\sigma^2\nabla\log Q_\sigma(x)$ becomes the vector
# from $x$ to (about) its nearest surface point. The normalising constant of $Q_\sigma$ has
# disappeared from the score: that is why modelling scores is convenient. This is
# `gf.analytic_score` (the "ground-truth field"; the official repository has a similar
# debugging helper).
#
# **The 2D toy.** A curve in the plane plays the surface. Move $\sigma$: the background is
# $\log Q_\sigma$, the arrows the normalised field, the orange points the result of annealed
# Langevin dynamics (section 3) run from uniform noise down to that $\sigma$. Large $\sigma$:
# a smooth field with one basin, samples spread as a blob. Small $\sigma$: the field points to
# the nearest part of the curve, samples lie on it.

# %%
toy = ex.toy_cloud_2d(int(SZ["toy_points"]))
grid_t = torch.linspace(-1.3, 1.3, 41)
gx, gy = torch.meshgrid(grid_t, grid_t, indexing="xy")
grid_xy = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)
toy_x0 = 1.3 * (2 * torch.rand(1, 300, 2, generator=torch.Generator().manual_seed(0)) - 1)


def toy_logq(x, sigma):
    pad = torch.cat([x, torch.zeros_like(x[:, :1])], -1)
    return gf.smoothed_log_density(pad, torch.cat([toy, torch.zeros_like(toy[:, :1])], -1), sigma)


def toy_samples(sigma):
    levels = [s for s in gf.sigma_schedule().tolist() if s >= sigma - 1e-9] or [sigma]
    x0 = torch.cat([toy_x0, torch.zeros_like(toy_x0[..., :1])], -1)
    cloud = torch.cat([toy, torch.zeros_like(toy[:, :1])], -1)[None]

    def score2d(x, s):  # the 2D score, the third coordinate pinned at 0
        g = gf.analytic_score(x, cloud, s)
        g[..., 2] = 0.0
        return g

    x = gf.annealed_langevin(score2d, x0, levels, 10, 1.0, generator=torch.Generator().manual_seed(1))
    x[..., 2] = 0.0
    return x[0, :, :2]


def show_toy(sigma=0.3):
    logq = toy_logq(grid_xy, sigma).reshape(41, 41)
    field = ex.toy_score_2d(grid_xy[::2], toy, sigma)
    field = 0.06 * field / field.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    xs, ys = [], []
    for (x0, y0), (dx, dy) in zip(grid_xy[::2].tolist(), field.tolist()):
        xs += [x0, x0 + dx, None]
        ys += [y0, y0 + dy, None]
    smp = toy_samples(sigma)
    fig = go.Figure()
    fig.add_trace(go.Contour(x=grid_t.numpy(), y=grid_t.numpy(), z=logq.numpy(), colorscale="Blues",
                             showscale=False, contours_coloring="heatmap", name="log Q"))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="black", width=1), name="field"))
    fig.add_trace(go.Scatter(x=toy[:, 0], y=toy[:, 1], mode="markers", marker=dict(size=2, color="white"),
                             name="curve"))
    fig.add_trace(go.Scatter(x=smp[:, 0], y=smp[:, 1], mode="markers", marker=dict(size=4, color="orange"),
                             name="Langevin samples"))
    fig.update_layout(title=f"sigma = {sigma:.3g}", height=460, width=520, yaxis_scaleanchor="x",
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


viz.interact(show_toy, sigma=[round(s, 4) for s in gf.sigma_schedule().tolist()])

# %% [markdown]
# The formula is checked in `tests/test_shapegf.py` against autograd of an independent log
# density (torch.distributions) and against finite differences. A quick look in 3D: the score
# of a sphere's cloud, a little off the surface, points back to it with about the distance as
# length.

# %%
sph = torch.randn(2000, 3, generator=torch.Generator().manual_seed(0))
sph = 0.5 * sph / sph.norm(dim=-1, keepdim=True)
probe = torch.tensor([[0.0, 0.0, 0.6], [0.0, 0.0, 0.4], [0.7, 0.0, 0.0]])
disp = 0.05 ** 2 * gf.analytic_score(probe, sph, 0.05)
for p, d in zip(probe.tolist(), disp.tolist()):
    print(f"x = {p}: sigma^2 * score = {np.round(d, 3).tolist()} (distance to the sphere {abs(np.linalg.norm(p) - 0.5):.2f})")

# %% [markdown]
# ## 2. Learning the score: denoising score matching
#
# We do not know $Q_{\sigma,S}$ for a shape we only have samples of, and score matching
# [Hyvarinen2005] avoids it through an integration by parts that costs a Hessian trace.
# **Denoising** score matching [Vincent2011] is cheaper: perturb a clean sample,
# $\tilde x = x + \sigma\epsilon$, and regress the score of the *perturbation kernel*,
# $\nabla_{\tilde x}\log\mathcal N(\tilde x; x, \sigma^2 I) = -\epsilon/\sigma$. Because
#
# $$\mathbb E_{x,\epsilon}\big\|s(\tilde x) + \epsilon/\sigma\big\|^2
#   = \mathbb E_{\tilde x}\big\|s(\tilde x) - \nabla\log Q_\sigma(\tilde x)\big\|^2 + \text{const},$$
#
# the minimiser is the score of the *blurred data*, exactly the field of section 1.
#
# **What ShapeGF's code does** (facts of `trainers/ae_trainer_3D.py`):
#
# - ten levels $\sigma$, geometric from $1$ to $0.01$ (`gf.sigma_schedule()`), **one $\sigma$ per
#   shape** of the batch, shared by all its points, drawn independently and uniformly for each shape;
# - the network predicts the **displacement** $y = \sigma^2 s$ (units of length), target
#   $-\sigma\epsilon$ (pointing back to the clean point);
# - loss $\frac{1}{2\sigma}\|y_{pred} + \sigma\epsilon\|^2$. In score units that weights level
#   $\sigma$ by $\sigma^3$; NCSN [Song2019] uses $\sigma^2$ (every level's loss then of order 1).
#
# **What we use and why.** The library implements the official choices (`gf.dsm_loss`
# defaults to the $1/(2\sigma)$ weight; `gf.ScoreNet` defaults to raw $\sigma$ in and the
# displacement out) and NCSN's (`weighting="ncsn"`; `ScoreNet(sigma_input="log",
# output="scaled")`, which returns $\sigma f$ so that the network predicts the unit-size $-\epsilon$,
# NCSN's $s = f/\sigma$). The chapter's experiments use **NCSN's weight with the log-sigma input
# and the scaled output** (`ch10.weighting`, `ch10.sigma_input`, `ch10.output`). The reason is
# the training budget: the official network gets 2,000 epochs on a GPU, ours minutes on a CPU.
# With the official parametrisation we expect the small levels to be learned last: their targets
# are tiny ($\sigma\epsilon$ with $\sigma = 0.01$), their weight in the loss is small, and
# $\sigma = 0.01$, $0.017$, $0.028$ are nearly the same input number, whereas the scaled output
# gives every level a displacement of the right size from the first step. This is a reason, not a
# measurement: no results file of the course holds the comparison yet.
# `benchmarks/gradient_fields.py --ablation` adds the official variant to the auto-encoding table
# (exercise 2). The minimiser of the loss is the same for every weight; only the trade-off between
# levels and the ease of learning change.
#
# **How the levels are drawn, our second departure.** With 16 shapes per batch and ten levels,
# independent draws leave some level out of most batches and give others three or four shapes;
# the loss of each step then depends on which levels it happened to draw, and so do the
# BatchNorm statistics of the score network, which are computed over all the points of the
# batch. The course deals the levels like cards instead (`gf.draw_levels(..., "stratified")`,
# `ch10.level_sampling`): each run of ten shapes gets every level once, in random order. Every
# shape's level is still uniform over the ten, so the loss has the same expectation as the
# official draw; only the variation between batches shrinks. Whether that matters at our budget
# is a choice the benchmark makes on the validation split, over two seeds (section 6 prints it).

# %%
rng = torch.Generator().manual_seed(0)
for how in gf.LEVEL_SAMPLING:
    counts = torch.bincount(gf.draw_levels(16, 10, how, generator=rng), minlength=10).tolist()
    print(f"{how:>10}: shapes per level in one batch of 16: {counts}")

# %% [markdown]
# A numerical check of the identity on a 5-point "surface": the analytic field has the smallest
# loss, and a constant shift $\delta$ costs $\|\delta\|^2/(2\sigma)$ more.

# %%
g = torch.Generator().manual_seed(0)
support = torch.rand(5, 3, generator=g, dtype=torch.float64)
clean = support[torch.randint(0, 5, (20000,), generator=g)][None]
sig = torch.tensor([0.2], dtype=torch.float64)


def best(xt, s):
    return s[:, None, None] ** 2 * gf.analytic_score(xt, support[None], s)


delta = torch.tensor([0.03, 0.0, 0.0], dtype=torch.float64)
losses = {name: float(gf.dsm_loss(f, clean, sig, generator=torch.Generator().manual_seed(1)))
          for name, f in [("analytic field", best), ("analytic + delta", lambda x, s: best(x, s) + delta),
                          ("0.8 x analytic", lambda x, s: 0.8 * best(x, s)), ("zero", lambda x, s: 0 * x)]}
for k, v in losses.items():
    print(f"{k:>18}: {v:.5f}")
print(f"gap of the shift {losses['analytic + delta'] - losses['analytic field']:.5f}, "
      f"predicted ||delta||^2 / (2 sigma) = {float(delta.square().sum()) / 0.4:.5f}")

# %% [markdown]
# **The network** (`gf.ScoreNet`): every point on its own, conditioned on $c = [x, z, \sigma]$
# ($\sigma$ simply concatenated, so any level in between can be queried). The official decoder
# is a ResNet of 24 blocks of width 256 on 1x1 convolutions, each block adding a linear map of
# $c$ (`resnet_add`), or 16 blocks with conditional BatchNorm (`resnet_cbn`); ours has the same
# structure with `ch10.n_blocks` blocks of width `ch10.hidden` (both variants are implemented).

# %% [markdown]
# ## 3. Sampling: annealed Langevin dynamics
#
# Langevin dynamics draws samples of a density from its score alone:
# $x \leftarrow x + \frac{\alpha}{2}\nabla\log Q(x) + \sqrt{\alpha}\,\xi$, $\xi\sim\mathcal N(0, I)$.
# With one small $\sigma$ two things go wrong [Song2019]: far from the data the learned score
# is never trained (no noisy sample ever lands there), and the field of a small $\sigma$ barely
# mixes between distant parts. **Annealing** fixes both: start with $\sigma = 1$ (a smooth field
# that is accurate everywhere the prior puts points), and hand the points down the schedule.
#
# The official sampler (`langevin_dynamics` in the repository; `gf.annealed_langevin` here):
# the prior is **uniform in $[-1.5, 1.5]^3$**; for each level, 10 steps of size
# $\alpha_i = 2\sigma_i^2\cdot$`step_ratio` (ratio 1), each **noise first, then the gradient
# step**, so every level ends denoised. With ratio 1 the gradient step is $x \leftarrow x +
# \sigma_i^2 s(x) = x + y_{pred}$: the network's raw output. Reconstruction uses the 10 training
# levels (100 evaluations); the generation configs sample with 5.
#
# First with the *analytic* field of a held-out cloud, i.e. a perfect network. The samples are
# compared with an **independent** sampling of the same surface; the **oracle** is a third
# sampling against that one (what a perfect sampler of the true surface scores).

# %%
demo = make_shape("chair", reserved_seed("demo"))
n_demo = int(SZ["n_target"])
cloud_in = demo.sample_surface(n_demo, stream=0)[0]
cloud_tgt = demo.sample_surface(n_demo, stream=1)[0]
cloud_orc = demo.sample_surface(n_demo, stream=2)[0]
x0 = gf.uniform_prior(1, n_demo, generator=torch.Generator().manual_seed(0))
run = gf.annealed_langevin(gf.analytic_score_fn(cloud_in[None]), x0, gf.sigma_schedule(), 10, 1.0,
                           generator=torch.Generator().manual_seed(1), return_trajectory=True)
m_an = ex.ae_metrics(run.points, cloud_tgt[None])
m_or = ex.ae_metrics(cloud_orc[None], cloud_tgt[None])
print(ex.CONVENTION)
print(f"analytic field: CD x1e4 {float(m_an['CD x1e4']):.3g}, EMD x1e2 {float(m_an['EMD x1e2']):.3g}")
print(f"oracle:         CD x1e4 {float(m_or['CD x1e4']):.3g}, EMD x1e2 {float(m_or['EMD x1e2']):.3g}  (live, {PROFILE} sizes)")

# %% [markdown]
# ### How big a step? Langevin, perturb-and-project, divergence
#
# Take the simplest field there is, the exact score of a Gaussian $N(0, \sigma^2)$ at its own level,
# $s(x) = -x/\sigma^2$. One step of the sampler with $\alpha = 2\sigma^2 r$ ($r$ = `step_ratio`) is
# "noise, then gradient step": $x \leftarrow (1 - r)\,(x + \sqrt{\alpha}\,\xi)$. The variance of the
# points then follows $v_{k+1} = (1-r)^2 (v_k + 2\sigma^2 r)$, which settles at
# $v_\infty = 2\sigma^2 (1-r)^2/(2-r)$ for $0 < r < 2$ (`gf.gaussian_langevin_variance`):
#
# - **small $r$**: $v_\infty \to \sigma^2$, the target's own variance. This is Langevin sampling
#   proper, and it needs many small steps;
# - **$r = 1$** (the official setting): $v = 0$ after a single step. Every point is pushed by the
#   noise and then projected back onto the mode: *perturb and project*, not a sample of $Q_\sigma$.
#   For ShapeGF that is what we want (points *on* the surface at the last level), but it is a
#   different algorithm from the one the formula above describes;
# - **$r = 2$**: $|1 - r| = 1$, a random walk whose variance grows by $4\sigma^2$ per step;
#   **$r > 2$** diverges geometrically, which is why `gf.annealed_langevin` warns at 2 and refuses
#   more unless asked (`allow_unstable=True`).
#
# (The formula has one more root of $v_\infty = \sigma^2$: $r = 3/2$, a chain that overshoots the mode at
# every step and lands on the other side. Check it from the formula before you read the printout.)
#
# NCSN [Song2019] writes the same step rule as $\alpha_i = \epsilon\,\sigma_i^2/\sigma_L^2$; ours is
# $\epsilon = 2 r \sigma_L^2$ (`gf.ncsn_epsilon`). One more departure from the official sampler:
# `ShapeGF.sample` clamps the points to $[-3, 3]^3$ after every step (twice the prior's box), so
# that a badly trained field cannot throw points to infinity; `gf.annealed_langevin` itself does not
# clip unless given `clip`. The cell measures the chain's spread on the exact Gaussian score
# (points, 3 coordinates each) next to the formula.

# %%
sigma_1d = 0.1
x_1d = torch.randn(1, 4000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
print(f"NCSN's epsilon for ratio 1 and the last level {gf.SIGMA_END}: {gf.ncsn_epsilon(1.0, gf.SIGMA_END):.1e}")
fig_1d = go.Figure()
for ratio in (0.1, 0.5, 1.0, 1.5, 2.0):
    ks = list(range(0, 11))
    theory = [gf.gaussian_langevin_variance(ratio, k, sigma=sigma_1d, var0=1.0) ** 0.5 for k in ks]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # ratio 2 warns: the chain random-walks
        measured = [float(x_1d.std())] + [
            float(gf.annealed_langevin(lambda x, s: -x / s[:, None, None] ** 2, x_1d, [sigma_1d], k, ratio,
                                       generator=torch.Generator().manual_seed(k)).std()) for k in ks[1:]]
    floor = 1e-4  # a log axis cannot show 0: ratio 1 collapses to exactly 0, drawn at this floor
    fig_1d.add_trace(go.Scatter(x=ks, y=[max(v, floor) for v in theory], mode="lines", name=f"ratio {ratio}: formula"))
    fig_1d.add_trace(go.Scatter(x=ks, y=[max(v, floor) for v in measured], mode="markers",
                                name=f"ratio {ratio}: measured"))
    print(f"ratio {ratio}: std after 10 steps {measured[-1]:.3f} (formula {theory[-1]:.3f}; the target's std is "
          f"{sigma_1d})")
fig_1d.add_hline(y=sigma_1d, line_dash="dot", annotation_text="target std sigma")
fig_1d.update_layout(title="Langevin chain on the exact score of N(0, 0.1^2), started at std 1 (0 drawn at 1e-4)",
                     xaxis_title="steps at this level", yaxis_title="std of the points", yaxis_type="log")
fig_1d

# %% [markdown]
# **The sampling trajectory.** Slide through the levels: the cloud after each of the ten levels
# (level 0 is the uniform prior).

# %%
LAST_LEVEL = len(run.trajectory) - 1


def show_level(level=LAST_LEVEL):
    pts = run.trajectory[level][0]
    title = "uniform prior" if level == 0 else f"after level {level} (sigma = {run.sigmas[level - 1]:.3g})"
    fig = viz.plot_points(pts.clamp(-1.5, 1.5), color="y", size=2.0, title=title)
    fig.update_layout(height=420)
    return fig


viz.interact(show_level, level=(0, LAST_LEVEL, 1, LAST_LEVEL))

# %% [markdown]
# The laptop benchmark measures the same on every held-out test shape (goal of the chapter: CD
# within $2\times$ the oracle):

# %%
R = results.show("gradient_fields", "laptop")
if R is not None and "analytic" in R.data:
    a = R.data["analytic"]
    print(f"analytic field CD x1e4 {a['CD x1e4']:.3g} vs oracle {a['oracle CD x1e4']:.3g} "
          f"(ratio {a['CD x1e4'] / a['oracle CD x1e4']:.2f}); EMD x1e2 {a['EMD x1e2']:.3g} vs {a['oracle EMD x1e2']:.3g}")

# %% [markdown]
# ## 4. One shape, learned
#
# Before any auto-encoder: an unconditional `ScoreNet` (`latent_dim=0`) fitted by DSM to the
# demo chair alone (`ex.fit_single_shape`), then sampled. Because points move independently,
# the same network gives 256 or 4,096 points: nothing in the model fixes the number.

# %%
net, single_losses = ex.fit_single_shape(cloud_in[: int(SZ["single_points"])], steps=int(SZ["single_steps"]),
                                         hidden=int(SZ["single_hidden"]), progress=False)
print(f"DSM loss: first 10 steps {np.mean(single_losses[:10]):.3f}, last 10 {np.mean(single_losses[-10:]):.3f} "
      f"({len(single_losses)} steps, {PROFILE} profile)")


def learned(x, s):
    return net.score(x, None, s)


def show_single(n_points=256):
    with torch.no_grad():
        out = gf.annealed_langevin(learned, gf.uniform_prior(1, n_points, generator=torch.Generator().manual_seed(2)),
                                   gf.sigma_schedule(), int(SZ["steps_per_level"]), 1.0, clip=3.0,
                                   generator=torch.Generator().manual_seed(3))[0]
    cd = float(ex.ae_metrics(out[None], cloud_tgt[None], emd=False)["CD x1e4"])
    return viz.subplots([viz.plot_points(cloud_tgt, size=1.5), viz.plot_points(out.clamp(-1.5, 1.5), size=2.0)],
                        titles=["the chair (target sampling)", f"{n_points} samples of the learned field, "
                                                              f"CD x1e4 {cd:.3g}"], height=380)


viz.interact(show_single, n_points=[256, 1024, 4096])

# %% [markdown]
# ### The learned score beside the analytic one, level by level (the 2D toy)
#
# The network above is judged by its samples. On the 2D toy of section 1 we can judge the field
# itself, because the true score is known in closed form. The toy curve is put in the plane $z = 0$
# of 3D space and the same `ScoreNet` is fitted to it by DSM (`ex.fit_single_shape`,
# `ch10.toy_steps` steps). In that plane the 3D blurred density's score has the 2D score of
# section 1 as its first two coordinates and zero as its third, so the comparison is exact. For each
# level $\sigma$ we draw points of the blurred curve, $\tilde x = p + \sigma\epsilon$ with $\epsilon$ in the
# plane, and measure (`ex.score_error_per_level`)
#
# $$e(\sigma) = \frac{\mathbb E_{\tilde x}\,\|s_\theta(\tilde x,\sigma) - \nabla\log Q_\sigma(\tilde x)\|^2}
#                    {\mathbb E_{\tilde x}\,\|\nabla\log Q_\sigma(\tilde x)\|^2},$$
#
# the error relative to the size of the true score: 0 for a perfect field, 1 for a field that is zero
# everywhere. The numerator is the Fisher divergence at that level, the quantity that DSM minimises
# up to a constant (section 2), so this is the per-level loss with the constant removed.
#
# **Predict** before you run the cell: at which levels will the learned field be nearest the true one
# after a short training, the large ones (a smooth field with one basin) or the small ones (a field
# that must point to the nearest part of the curve, with a size of order $1/\sigma$)?

# %%
toy3 = torch.cat([toy, torch.zeros_like(toy[:, :1])], -1)
toy_net, toy_losses = ex.fit_single_shape(toy3, steps=int(SZ["toy_steps"]), hidden=int(SZ["single_hidden"]),
                                          progress=False)
toy_sigmas = gf.sigma_schedule()
toy_err = ex.score_error_per_level(lambda x, s: toy_net.score(x, None, s), toy3, toy_sigmas, noise_dims=2,
                                   n_eval=int(SZ["toy_points"]))
print(f"score network on the 2D toy: {len(toy_losses)} DSM steps ({PROFILE} profile); per level:")
for r in toy_err:
    print(f"  sigma {r['sigma']:.3g}: relative error {r['relative']:.3g}, mean cosine to the true score "
          f"{r['cosine']:.2f}, E|true score|^2 {r['norm']:.3g}")
best_lvl, worst_lvl = min(toy_err, key=lambda r: r["relative"]), max(toy_err, key=lambda r: r["relative"])
print(f"on this run: smallest relative error at sigma {best_lvl['sigma']:.3g} ({best_lvl['relative']:.3g}), "
      f"largest at sigma {worst_lvl['sigma']:.3g} ({worst_lvl['relative']:.3g})")
viz.plot_curves([r["sigma"] for r in toy_err], {"relative error e(sigma)": [r["relative"] for r in toy_err],
                                                "1 - mean cosine": [1 - r["cosine"] for r in toy_err]},
                title="learned score against the analytic one, 2D toy", xlabel="sigma", ylabel="error",
                log_x=True, log_y=True)

# %% [markdown]
# Side by side at one level: the true field (left) and the learned one (right), both normalised to
# unit arrows so that the directions can be compared where the true score is large.

# %%
def toy_arrows(vectors, title):
    v = 0.06 * vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    xs, ys = [], []
    for (x0, y0), (dx, dy) in zip(grid_xy[::2].tolist(), v.tolist()):
        xs += [x0, x0 + dx, None]
        ys += [y0, y0 + dy, None]
    fig = go.Figure([go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="black", width=1), name="field"),
                     go.Scatter(x=toy[:, 0], y=toy[:, 1], mode="markers", marker=dict(size=2, color="orange"),
                                name="curve")])
    fig.update_layout(title=title, yaxis_scaleanchor="x", showlegend=False)
    return fig


def show_toy_learned(sigma=float(toy_sigmas[4])):
    pts = torch.cat([grid_xy[::2], torch.zeros_like(grid_xy[::2, :1])], -1)[None]
    with torch.no_grad():
        learned_2d = toy_net.score(pts, None, sigma)[0, :, :2]
    return viz.subplots([toy_arrows(ex.toy_score_2d(grid_xy[::2], toy, sigma), f"analytic, sigma = {sigma:.3g}"),
                         toy_arrows(learned_2d, f"learned, sigma = {sigma:.3g}")], titles=["analytic", "learned"],
                        height=380)


viz.interact(show_toy_learned, sigma=[round(s, 4) for s in toy_sigmas.tolist()])

# %% [markdown]
# ## 5. The surface: where the field vanishes
#
# On the surface the blurred density is locally maximal, so its gradient vanishes; for small
# $\sigma$, $\sigma^2\|\nabla\log Q_\sigma(x)\|$ is close to the *unsigned* distance to the
# surface (the seed: "for small variance, approximates distance field around surface"). Two
# ways to use it:
#
# - **move points onto it**: noise-free steps $x \leftarrow x + \sigma^2 s(x)$ at a small
#   $\sigma$ (`gf.project_to_surface`; with the analytic field these are mean-shift iterations);
# - **mesh it**: evaluate $\sigma^2\|s\|$ on a grid (`gf.field_grid`) and run marching cubes at a
#   level of one cell (`gf.field_mesh`). An unsigned distance has no inside, so the level set is
#   a thin **shell** on both sides of the surface: two sheets for an open one. A watertight,
#   one-sided mesh needs a sign (chapter 07's implicit fields).
#
# With the analytic field of the held-out cloud, a slice of the magnitude and the shell:

# %%
field_fn = gf.analytic_score_fn(cloud_in[None])
res_mesh = 32 if PROFILE != "ci" else 20
grid = gf.field_grid(field_fn, res_mesh, sigma=0.03, bound=1.0)
shell = gf.field_mesh(field_fn, resolution=res_mesh, sigma=0.03, bound=1.0)
pushed = cloud_in[None] + 0.08 * torch.randn(1, n_demo, 3, generator=torch.Generator().manual_seed(5))
on = gf.project_to_surface(field_fn, pushed, 0.03, steps=10)
d_before = float(ex.ae_metrics(pushed, cloud_tgt[None], emd=False)["CD x1e4"])
d_after = float(ex.ae_metrics(on, cloud_tgt[None], emd=False)["CD x1e4"])
print(f"points pushed off the surface: CD x1e4 {d_before:.3g}; after 10 projection steps {d_after:.3g}")
print(f"shell mesh: {len(shell.vertices)} vertices, {len(shell.faces)} faces, watertight {shell.is_watertight}")
mid = res_mesh // 2
heat = go.Figure(go.Heatmap(z=grid[:, :, mid].T.numpy(), colorscale="Viridis", colorbar=dict(title="sigma^2|s|")))
heat.update_layout(title="sigma^2 |score| on the slice z = 0", height=380, width=420, yaxis_scaleanchor="x")
viz.subplots([heat, viz.plot_mesh(shell)], titles=["field magnitude, slice z = 0", "marching cubes at one cell"],
             height=380)

# %% [markdown]
# ## 6. Auto-encoding ShapeNet-lite
#
# `gf.ShapeGF` = the PointNet encoder of chapter 02 (the same 64-128-256 PointNet the
# baselines use, so the comparison is decoder against decoder) + the score network, trained
# by DSM on the encoded shape. Inputs and targets are **independent samplings** of each
# surface (streams 0 and 1 of `Shape.sample_surface`): a model is never scored on the very
# points it was shown. The baselines: PointSetGen (chapter 05) and AtlasNet with one sphere or
# 25 square patches (chapter 06), trained with the Chamfer loss on the same data.
#
# **Budgets.** Every model sees the same batches for the same number of epochs
# (`ch10.baseline_epochs` equals `ch10.epochs`), so each gets the same number of optimiser steps;
# each keeps the Adam recipe of its own chapter (no learning rate was tuned for this table). The
# cell prints each row's budget: optimiser steps, shapes seen, training seconds, trainable
# parameters. A ShapeGF step costs more than a baseline step (every point is a DSM sample at one
# noise level), so equal steps are not equal seconds; the seconds are printed next to the steps.
# The convention is ShapeGF's and PointFlow's (CD x1e4 squared-sum, EMD x1e2; `course_lib.metrics`
# preset `shapegf`).

# %% [markdown]
# **On your own data.** Set `COURSE_DATASET=modelnet` (or `shapenetcore`) and `COURSE_MODELNET_DIR`
# (`COURSE_SHAPENET_DIR`) before starting Jupyter: `ex.load_data` then returns three independent samplings of
# the real meshes, and every model of this chapter trains on them under checkpoints of their own;
# `python benchmarks/gradient_fields.py --dataset modelnet --root DIR` runs the benchmark.

# %%
train = ex.load_data("train")
test = ex.load_data("test")
n_out = int(test["target_points"].shape[1])
print(f"{len(train['points'])} training and {len(test['points'])} test shapes of {train['categories']}; "
      f"input {train['points'].shape[1]} points, target {n_out}")
# a laptop's first run without the chapter's trained models trains smaller ones (see the message)
QUICK = PROFILE == "laptop" and not pretrain.chapter_ready("10")
quick = {"epochs": int(SZ["first_run_epochs"])} if QUICK else {}
if QUICK:
    full = results.get("gradient_fields", "budgets") or {}
    full_s = sum(full.get(k, {}).get("seconds", 0.0) for k in ("ShapeGF", "PointSetGen", "AtlasNet sphere",
                                                                 "AtlasNet patches"))
    print(f"First run: the chapter's trained models are not on this machine (nor in a class folder), so this "
          f"lecture trains smaller ones: {SZ['first_run_epochs']} epochs each instead of {SZ['epochs']}. "
          + (f"The full ones trained in {full_s / 60:.0f} min on the benchmark's 2-core CPU. " if full_s else "")
          + "To get them: `python -m course_lib.pretrain --chapters 10` (then re-run this lecture), or ask your "
          "instructor for the class folder (COURSE_CHECKPOINT_DIR). The laptop tables below come from the full ones.")
model, hist = ex.train_shapegf(train, live_plot=False, **quick)
baseline_hist = {}
baselines = ex.train_baselines(train, histories=baseline_hist, **quick)
live_budget = {"ShapeGF": ex.training_budget(model, hist, len(train["points"]), int(SZ["batch_size"]))}
for name, bl in baselines.items():
    live_budget[name] = ex.training_budget(bl, baseline_hist[name], len(train["points"]), int(SZ["batch_size"]))

# %%
# store=True: the samplings are computed on the first run and read back from the cache afterwards
# (keyed by the weights, the inputs and the settings), like the checkpoints
preds = {"ShapeGF": ex.reconstruct(model, test["points"], n_out, store=True)}
for name, bl in baselines.items():
    preds[name] = ex.predict_baseline(bl, test["points"], n_out)
rows, per_shape = ex.autoencoding_table(preds, test["target_points"], test["oracle_points"])
print(f"live, {PROFILE} profile (tiny training in ci: the numbers mean nothing there)")
print(format_table(rows))


def print_budgets(budgets):
    for name, b in budgets.items():
        if b.get("steps") is None:
            print(f"{name:>34}: no training")
        else:
            print(f"{name:>34}: {b['steps']} steps, {b['examples']} shapes seen, {b['seconds']:.1f} s, "
                  f"{b['params']:,} parameters")


print("budgets:")
print_budgets(live_budget)

# %% [markdown]
# **Training curves.** Equal steps are only a fair budget if every model used them: a baseline whose
# loss is still going down at its last epoch was stopped early, and one that flattened long before
# had steps to spare. Each checkpoint keeps its training history (`train.History.train_loss`, the
# mean loss of each epoch), so the curves below are those of the very models in the table. The
# losses are in different units (ShapeGF's is the denoising loss of section 4, the baselines' the
# Chamfer distance they are trained on), so each curve is divided by its first epoch's value and
# drawn on a log scale: read the shapes, not the heights. The cell also prints, for each model, the
# relative change of its loss over the last tenth of its epochs (near zero: flat at the end).

# %%
train_curves = {"ShapeGF (DSM loss)": hist.train_loss,
                **{f"{name} (Chamfer loss)": h.train_loss for name, h in baseline_hist.items()}}
n_epochs = min(len(c) for c in train_curves.values())
fig_curves = None
if n_epochs >= 2:
    steps_per_epoch = live_budget["ShapeGF"]["steps"] / max(len(hist.train_loss), 1)
    fig_curves = viz.plot_curves([(i + 1) * steps_per_epoch for i in range(n_epochs)],
                                 {k: [v / c[0] for v in c[:n_epochs]] for k, c in train_curves.items()},
                                 title="training loss / its first epoch's value", xlabel="optimiser steps",
                                 ylabel="relative training loss", log_y=True)
    tail = max(1, n_epochs // 10)
    for k, c in train_curves.items():
        last, before = sum(c[n_epochs - tail:n_epochs]) / tail, sum(c[n_epochs - 2 * tail:n_epochs - tail]) / tail
        print(f"{k:>30}: {len(c)} epochs; last tenth against the tenth before: {100 * (last / before - 1):+.1f}%")
else:
    print("fewer than two epochs in a history: no curve to draw")
fig_curves

# %% [markdown]
# ### The 3D model's field, level by level
#
# A single training loss mixes ten levels. `ex.shapegf_dsm_per_level` splits it: every held-out
# shape is encoded, and the field is scored on its target points perturbed at one level at a time
# (the chapter's weight, `ch10.weighting`), next to two references on the very same perturbations:
# the **analytic field of the target points** (the exact minimiser of this loss on these points: no
# network can go below it) and the **zero field** ($3/2$ at every level with the NCSN weight, in
# expectation). Where the network's row sits between the two says, level by level, how much of the
# learnable part it has learned. With the laptop checkpoint (from `python -m course_lib.pretrain
# --chapters 10`) the cell scores that model; in the `ci` profile, a model of two epochs.

# %%
lvl = ex.shapegf_dsm_per_level(model, test["points"], test["target_points"], n_target=int(SZ["n_dsm"]))
print(f"per-level DSM loss on {len(test['points'])} test shapes ({SZ['weighting']} weight, live, {PROFILE} profile):")
for i, s in enumerate(lvl["sigma"]):
    gap = lvl["zero field"][i] - lvl["analytic field of the target points"][i]
    learned_share = (lvl["zero field"][i] - lvl["ShapeGF"][i]) / gap if gap > 0 else float("nan")
    print(f"  sigma {s:.3g}: ShapeGF {lvl['ShapeGF'][i]:.3g}, analytic {lvl['analytic field of the target points'][i]:.3g}, "
          f"zero {lvl['zero field'][i]:.3g}; share of the learnable gap closed {learned_share:.2f}")
if R is not None and "field_levels" in R.data:
    lv_l = R.data["field_levels"]
    print("laptop benchmark (its test shapes and checkpoint):")
    for i, s in enumerate(lv_l["sigma"]):
        print(f"  sigma {s:.3g}: " + ", ".join(f"{k} {v[i]:.3g}" for k, v in lv_l.items() if k != "sigma"))
else:
    print("laptop benchmark: not measured yet (`COURSE_PROFILE=laptop python benchmarks/gradient_fields.py` "
          "records it in its robustness part)")
viz.plot_curves(lvl["sigma"], {k: v for k, v in lvl.items() if k != "sigma"},
                title="denoising loss per noise level, held-out shapes", xlabel="sigma", ylabel="DSM loss",
                log_x=True, log_y=True)

# %% [markdown]
# The laptop-profile table of the benchmark. The seed's table compares l-GAN, AtlasNet (sphere
# and patches), PointFlow, ShapeGF and the oracle; ours has PointSetGen in place of l-GAN and no
# PointFlow, and our shapes are normalised to the unit ball (theirs are not), so only the
# ranking and the ratios to the oracle can be compared, not the values:

# %%
if R is not None and "autoencoding" in R.data:
    ae = R.data["autoencoding"]
    for name, v in ae.items():
        print(f"{name:>18}: " + ", ".join(f"{k} {m:.3g} ± {s:.2g}" for k, (m, s) in v.items()))
    if R.data.get("budgets"):
        print("budgets:")
        print_budgets(R.data["budgets"])
    else:
        print("budgets: not recorded in this file (measured before protocol 2; its baselines had 6x fewer steps)")

# %% [markdown]
# **Reading the table.** In the seed's table ShapeGF has the lower CD and EMD than AtlasNet on
# the airplane, chair and car rows, while on the whole of ShapeNet AtlasNet's patches have the
# lower CD [Cai2020]. Does the laptop run reproduce either? A difference between two means is
# only worth reading next to its noise: the benchmark pairs the models shape by shape over the
# test shapes (every model sees the same inputs) and writes one claim per baseline and metric,
# with both budgets. The next cell prints them; "not shown" means the difference is within two
# standard errors.
#
# Where the gap to the oracle comes from: if the analytic field of section 3 lands near the
# oracle (the chapter's first goal, printed at the end), the sampler is not the cause and the gap
# is the learned field's. The laptop score network is small (`ch10.n_blocks` blocks of
# `ch10.hidden` units, against ShapeGF's 24 blocks of 256) and sees about two thousand denoising
# steps, and a field that is slightly wrong at the smallest noise level leaves every point a
# little off the surface, which the squared Chamfer distance punishes. The decoders of chapters 05
# and 06 are trained on the Chamfer distance itself; ShapeGF never is. The `gpu` profile trains a
# wider network for longer.

# %%
for baseline in ("PointSetGen", "AtlasNet sphere", "AtlasNet patches"):
    for metric in ("cd", "emd"):
        results.say("gradient_fields", f"ae_{metric}_vs_{baseline.lower().replace(' ', '_')}")

# %% [markdown]
# **Does the network do more than retrieve?** Tatarchenko et al. (CVPR 2019) found that
# single-view reconstruction networks on ShapeNet score about as well as returning the nearest
# training shape. `benchmarks/retrieval.py` puts that baseline beside this chapter's models, on the
# same test shapes and metrics: the training shape whose code under ShapeGF's encoder is nearest to the code of
# the test input (a method any trained encoder gives you), and the training shape nearest to the
# test *target* (an oracle that looks at the answer: an upper bound of retrieval). Predict before
# you run the cell: is the network ahead of the retrieval it could have done with its own encoder?

# %%
RET.show_chapter("10")

# %% [markdown]
# ### Three choices, made on the validation split
#
# The course departs from the official recipe in three places; each is a *choice*, so the
# benchmark makes it on the **validation** shapes (`load_data("val")`, never seen in training and
# disjoint from the test shapes), with short runs of `ch10.schedule_epochs` epochs, before it reads
# the test split at all. The main model is then trained with what was chosen, and the choice is
# recorded in the results file next to the candidates' validation scores.
#
# - **The learning-rate schedule.** A denoising loss is noisy (every step draws new noise levels and
#   new perturbations), and a run at a constant rate ends wherever its last noisy steps left it. The
#   official code keeps Adam at $10^{-3}$ for the first half of its 2,000 epochs, then lowers it
#   linearly to a hundredth by 95% of the run (its `get_opt`). The candidates here are a cosine decay
#   to a hundredth over the whole, much shorter, run, and a constant rate (`ch10.lr_schedule`); the
#   official half-constant, half-linear shape is not a candidate.
# - **How the noise levels are drawn**: independently (official) or dealt evenly over each batch
#   (`ch10.level_sampling`), two seeds each. Look at the spread between the two seeds of each row as
#   well as at the mean: does a run's final error depend on its luck more with independent draws?
# - **The width and depth of the score network** (`ch10.width_candidates`: `ch10.hidden` units x
#   `ch10.n_blocks` blocks, and a smaller one).
#
# A choice made on validation says which candidate was better *on those shapes at that budget*;
# it is not a test-set comparison, and the cell prints it as a choice, not as a claim.

# %%
SELECTIONS = {"schedule": "learning-rate schedule", "levels": "noise levels per batch", "width": "hidden x blocks"}
if R is not None and R.protocol >= 2 and R.data.get("selections"):
    for part, title in SELECTIONS.items():
        sel = R.data.get(part)
        if sel is None:
            continue
        print(f"{title} ({sel['epochs']} epochs each, scored on {sel['split']}), chosen: {sel['chosen']}")
        for cand, v in sel.items():
            if not isinstance(v, dict):
                continue
            runs = v.items() if "CD x1e4" not in v else [("", v)]
            for seed, r in runs:
                b = r["budget"]
                print(f"  {cand:>10}{' seed ' + seed if seed else '':>8}: val CD x1e4 {r['CD x1e4']:.4g} "
                      f"({r['ratio to oracle']:.2f}x the val oracle), EMD x1e2 {r['EMD x1e2']:.4g}; "
                      f"{b['steps']} steps, {b['seconds']:.0f} s, {b['params']:,} parameters")
    print("main model:", R.data["choice"], "| config agrees:", R.data["config_matches_choice"])
else:
    print("no choice on the validation split recorded yet (the results file predates protocol 2): "
          "COURSE_PROFILE=laptop python benchmarks/gradient_fields.py")

# %%
def show_recon(shape=0):
    figs = [viz.plot_points(test["target_points"][shape], size=1.5)]
    figs += [viz.plot_points(p[shape].clamp(-1.5, 1.5), size=1.5) for p in preds.values()]
    return viz.subplots(figs, titles=["target", *preds], height=320)


viz.interact(show_recon, shape=range(0, len(test["points"])))

# %% [markdown]
# ## 7. Upsampling: train on few points, sample many
#
# The seed's upsampling table trains with N points per shape (10k, 3k, 1k) and gives the
# encoder 2,048 ... 128 points at run time; the output always has the same number of points.
# Error grows as the runtime input gets sparser, and barely depends on the training N [Cai2020]. Our
# version trains with `ch10.upsample_train` input points per shape. The denoising targets are the
# first of those points of the independent target sampling, at most `ch10.n_target` of them: the
# top row's field is trained on `ch10.n_target` target points, not on all of its input points (the
# benchmark's table names both). Both rows get the same optimiser steps. The benchmark fills the
# table on a larger test split of its own (`ch10.upsample_test_per_category` shapes per category,
# this chapter's test shapes among them), so that the paired steps below have enough shapes to
# resolve:

# %%
if R is not None and "upsampling" in R.data:
    up = R.data["upsampling"]
    for metric in ("cd", "emd"):
        print(metric.upper(), "(rows: training points; columns: runtime points)")
        for n_train, row in up[metric].items():
            print(f"  train {n_train:>5}: " + "  ".join(f"{r}: {v:.3g}" for r, v in row.items()))
    first = next(iter(up["cd"].values()))
    ns = sorted(first, key=int)
    falls = all(first[a] >= first[b] for a, b in zip(ns, ns[1:]))
    change = first[ns[0]] / first[ns[-1]] - 1
    print(f"CD {'falls at every step' if falls else 'does not fall at every step'} as the runtime input grows; "
          f"{ns[0]} points: {first[ns[0]]:.3g}, {ns[-1]} points: {first[ns[-1]]:.3g} "
          f"(the sparsest input scores {100 * change:+.0f}% against the densest)")
    for n_train, steps in up.get("paired_steps", {}).items():
        print(f"paired steps, train {n_train}, {up['shapes']} shapes (CD(fewer) - CD(more), mean ± s.e.):")
        for st in steps:
            print(f"  {st['fewer']:>5} -> {st['more']:>5}: {st['mean']:+.3g} ± {st['se']:.2g}  {st['verdict']}")
        shape = ex.upsampling_in_seed_shape(steps)
        print(f"in the seed's shape (paired falls up to {shape['falls_up_to']} runtime points, no step rises): "
              f"{'yes' if shape['met'] else 'no'}"
              + ("" if shape["met"] else f"; failing steps: {[(s['fewer'], s['more']) for s in shape['failing']]}"))
else:
    live = ex.upsampling_table({int(train["points"].shape[1]): model}, test["points"], test["target_points"],
                               [int(r) for r in SZ["upsample_runtime"]], emd=False)
    print(f"live, {PROFILE} profile, CD x1e4 against runtime points:", live["cd"])

# %% [markdown]
# In the seed's table the error falls as the sparse runtime input gets denser, then levels off
# (the step-by-step comparison below shows where). A model whose field
# barely depends on its code (an under-trained encoder–decoder, whose samples are close to an
# average shape whatever the input) shows no such trend, and one whose error is dominated by the
# field's own blur (the auto-encoding table's gap to the oracle) shows a trend that flattens once
# the input is dense enough for the encoder. Look at the two rows at the sparse runtime sizes: if
# the row trained on fewer points scores as well there, what could explain it (which input density
# did each encoder see in training)?
#
# A difference between two column means is only worth reading next to its noise. Every cell
# uses the same test shapes and the same prior draws for Langevin, so the cells are **paired**:
# `ex.paired_steps` takes, shape by shape, the error with fewer runtime points minus the error
# with more, and reports the mean of those differences with its standard error. A step is
# called "falls" or "rises" only when the mean is more than two standard errors from zero;
# otherwise the test shapes cannot tell it from "flat". Read the strict "falls at every step"
# line above against these verdicts: a flat step where the means happen to go the wrong way is
# a plateau, not a reversal.
#
# What does the seed's table itself look like step by step? Below, each of its rows is turned
# into the same relative change per step, next to ours. `ex.seed_falling_range` finds the
# largest runtime size up to which every row of the seed falls; above it the seed's rows move
# a few percent up *or* down (they give no standard errors, so we cannot say which of those
# moves are noise). So "reproduced in shape" means: a paired fall up to that size and no
# significant rise anywhere (`ex.upsampling_in_seed_shape`), not a fall at every step, which
# the seed's own rows do not show either.

# %%
rows = {f"seed, train {name}": row for name, row in ex.SEED_UPSAMPLING_CD.items()}
if R is not None and "upsampling" in R.data:
    n_big, ours = max(R.data["upsampling"]["cd"].items(), key=lambda kv: int(kv[0]))
    rows[f"ours, train {n_big}"] = ours
print("CD(fewer) / CD(more) - 1 per step:", "  ".join(f"{s['fewer']}->{s['more']}"
                                                       for s in ex.relative_steps(ex.SEED_UPSAMPLING_CD["10K"])))
for name, row in rows.items():
    print(f"  {name:>16}: " + "  ".join("      -" if s["change"] is None else f"{100 * s['change']:+6.1f}%"
                                        for s in ex.relative_steps(row)))
print("the seed's rows all fall up to", ex.seed_falling_range(), "runtime points")

# %% [markdown]
# ### The sparse end of the small row: the encoder's code
#
# Look again at the two rows at the sparsest runtime inputs: which one keeps its error there? The last
# claim of the next cell pairs the two rows shape by shape at the sparsest size, so it says whether the
# upsampling shapes separate them, and in which direction. A candidate explanation for a gap there is
# the *encoder*, not the field. A PointNet code is a maximum over the points' features; with fewer points the
# maximum is taken over fewer draws, so the code moves. The main model's encoder has only ever seen
# dense inputs (`ch10.n_points` points), the other's inputs of the small training size, which is
# nearer the sparse end. `benchmarks/generation.py` measures the first link directly: for every
# upsampling shape, how far each model's code moves when its input drops from the small training
# size to fewer points (`ex.code_drift`), in units of the median distance between the codes of two
# different shapes (so that the two models' codes, which have different scales, are compared in the
# same terms). The second link, from the code's move to the error, is measured by the rank
# correlation over the shapes between the main model's drift and the rise of its error in the
# upsampling table. Predict before you run the cell: which model's code moves further?

# %%
G = results.show("generation", "laptop")
if G is not None and "drift" in G.data:
    d = G.data["drift"]
    print(f"code at k points against the code at {d['reference']} points, in median distances between two shapes' "
          f"codes (mean over {d['shapes']} upsampling shapes):")
    for m, row in d["mean"].items():
        print(f"  {m:>12}: " + "  ".join(f"k = {k}: {v:.3g}" for k, v in row.items()))
    sp = d.get("spearman_drift_vs_cd_rise")
    if sp:
        print(f"rank correlation over the shapes between the main model's drift and its CD rise "
              f"({sp['from']} -> {sp['to']} runtime points): rho = {sp['rho']:.2f} (p = {sp['p']:.2g})")
    for c in results.claims("generation"):
        if c["id"].startswith(("drift_", "upsampling_cd_")):
            results.say("generation", c["id"])

# %% [markdown]
# ## 8. Generation: a GAN on the latent codes
#
# The auto-encoder gives every training shape a code $z$. ShapeGF generates new shapes by
# training a GAN on those codes with the auto-encoder frozen [Achlioptas2018], then decoding a
# generated code with annealed Langevin. The official recipe (`gf.train_latent_gan`): an MLP
# generator (noise 128 → 256 → 256 → 128) and critic (128 → 512 → 512 → 1, LeakyReLU 0.2), a
# WGAN loss, and a **zero-centred gradient penalty on the real codes only**,
# $(\operatorname{mean}\|\nabla_z D(z_{real})\|)^2$ with weight 1 (not WGAN-GP's
# $(\|\nabla\|-1)^2$ on interpolates); Adam $10^{-4}$, betas $(0.5, 0.9)$.
#
# **Scoring a set of shapes** (PointFlow's conventions, `course_lib.metrics_generation`):
# with $M_{rs} = CD(\text{ref}_r, \text{sample}_s)$ between the held-out shapes and as many
# samples,
# - **MMD**: for each reference, its closest sample; mean over references (fidelity);
# - **COV**: for each sample, its closest reference; fraction of references chosen (diversity);
# - **1-NNA**: classify every cloud of the union by its nearest other cloud (leave-one-out);
#   50% means the sets are indistinguishable, 100% separable.
#
# None of these numbers means much alone, so the table has a **trivial baseline**: training
# shapes plus a little noise (what a model that only memorises would score). A generator earns its
# training only where it gets nearer the ideal than this baseline (lower MMD, higher COV, 1-NNA
# nearer 50%); otherwise it has learned nothing the training set does not already give. Its budget
# is the auto-encoder's plus the GAN's; the baseline trains nothing.

# %%
gen, _, gan_hist = ex.train_generator(model, train["points"], progress=False, store=True)  # trained once, then read
n_gen = len(test["points"])
samples = {"ShapeGF + latent GAN": ex.generate(model, gen, n_gen, n_out),
           "training shapes + noise": ex.noisy_training_baseline(train["target_points"][:, :n_out], n_gen)}
gen_tab = ex.generation_table(samples, test["target_points"])
print(f"live, {PROFILE} profile:")
for k, v in gen_tab.items():
    print(f"{k:>24}: " + ", ".join(f"{m} {x:.3g}" for m, x in v.items()))
if R is not None and "generation" in R.data:
    print("laptop benchmark:")
    for k, v in R.data["generation"].items():
        print(f"{k:>28}: " + ", ".join(f"{m} {x:.3g}" for m, x in v.items()))
    if R.data.get("generation_budgets"):
        print_budgets(R.data["generation_budgets"])

# %% [markdown]
# The benchmark splits each metric into one value per held-out shape (the shape's distance to its
# closest sample for MMD, whether some sample picked it for COV, the 1-NN verdicts of the shape and
# of one sample for 1-NNA; `ex.generation_per_reference`), so that the generator and the baseline
# are paired over the same shapes. For 1-NNA the claim compares the distances from the ideal 50%
# (`ex.nna_gap_values`). Where does the laptop run stand?

# %%
for metric in ("mmd", "cov", "1nna"):
    results.say("gradient_fields", f"gen_{metric}_vs_memorising")

# %% [markdown]
# ### Why is generation behind? Three suspects, measured
#
# A generated shape goes through two stages: a code from the latent distribution, then the decoder's
# field sampled by Langevin. Where the claims above put the generator behind the memorising baseline,
# each of three parts could be the cause, and `benchmarks/generation.py` (which reuses the chapter's
# trained auto-encoder, and trains only latent GANs) isolates each:
#
# - **The decoder.** Decode the training codes themselves: a memoriser in code space. Whatever gap this
#   row leaves to the training shapes (the memorising baseline) is the auto-encoder's, and no latent
#   distribution can close it.
# - **The GAN's budget.** The same GAN with `ch10.gen_gan_long_epochs` epochs instead of `ch10.gan_epochs`.
#   The laptop profile has a few hundred codes at most and one GAN step per epoch.
# - **The latent distribution.** Codes from a Gaussian with the training codes' mean and covariance
#   (`ex.sample_codes("gaussian", ...)`, exact without factorising the covariance), or a random training
#   code plus noise of `ch10.gen_code_noise` times each dimension's standard deviation, instead of the GAN.
#
# Keeping one of these is a *choice*, so it is made on the validation shapes: the lowest distance of
# 1-NNA-CD from the ideal 50%, averaged over `ch10.gen_seeds` seeds. Only then are the test shapes read: MMD, COV
# and 1-NNA with Chamfer and with the **exact EMD** (`course_lib.metrics_generation.generation_metrics(...,
# "emd")`, on the first `ch10.gen_emd_points` points of each cloud, since one exact matching costs
# $O(N^3)$), with the decoded training codes beside them as a diagnostic (not a candidate: they generate
# nothing new). Predict before you run the cell: which suspect do you expect to matter most?

# %%
if G is None:
    print("not measured yet: `COURSE_PROFILE=laptop python benchmarks/generation.py` measures it")
else:
    lat = G.data.get("latent")
    if lat:
        print(f"choice on val ({len(lat['seeds'])} seeds each; MMD-CD x1e3, COV-CD %, 1-NNA-CD %, |1-NNA-CD - 50|):")
        for name, r in lat["runs"].items():
            print(f"  {name:>40}: " + "  ".join(f"{r[k]:.3g}" for k in ("MMD-CD x1e3", "COV-CD %", "1-NNA-CD %",
                                                                        "|1-NNA-CD - 50|")))
        print("  chosen:", lat["chosen"])
    tst = G.data.get("test")
    if tst:
        print(f"test ({tst['shapes']} samples against the {tst['shapes']} test shapes; CD: mean of seeds "
              f"{tst['seeds']}; EMD: exact, seed {tst['seeds'][0]}, {tst['emd_points']} points per cloud):")
        for name, r in tst["table"].items():
            print(f"  {name:>40}: " + ", ".join(f"{k} {v:.3g}" for k, v in r.items()))

# %% [markdown]
# The claims, paired over the test shapes (one value per held-out shape, averaged over the seeds):
# the chosen generator against the memorising baseline on each metric, the chosen latent distribution
# against the official GAN (when val chose another), and the decoded training codes against the
# training shapes. The first line sums up where the claims put the generator.

# %%
gen_claims = [c for c in results.claims("generation") if c["id"].startswith(("gen_", "latent_", "codes_"))]
vs_memo = [c for c in gen_claims if c["id"].startswith("gen_")]
if vs_memo:
    say_as = {"behind": "behind the memorising baseline on", "not separated": "not separated from it on",
              "ahead": "ahead of it on"}
    by = {v: [c["metric"] for c in vs_memo if c["verdict"] == v] for v in say_as}
    print(f"From the claims, ShapeGF's generation ({vs_memo[0]['a']}) is "
          + "; ".join(f"{say_as[v]} {', '.join(ms)}" for v, ms in by.items() if ms) + ".")
for c in gen_claims:
    results.say("generation", c["id"])

# %% [markdown]
# **Per category.** The paper and PointFlow train and score one category at a time; the table above
# mixes the chapter's categories (`ch10.categories`). The benchmark fits one generator per category (the chosen latent distribution, on that
# category's training codes only) and scores it against that category's test shapes, beside the
# memorising baseline of the same category. There are few test shapes per category in the laptop
# profile and one seed, so these rows carry no claim; read them for the pattern across categories.
# The second table asks the mixed generator a simpler question: which category does each sample
# resemble (the category of its nearest training shape)? A generator that drops a category gives it
# no sample.

# %%
if G is not None and "categories" in G.data:
    cat = G.data["categories"]
    for c_name, rows_c in cat["per_category"].items():
        sh = rows_c.get("shapes", {})
        print(f"{c_name} ({sh.get('train')} training codes, {sh.get('test')} test shapes):")
        for name, r in rows_c.items():
            if name != "shapes":
                print(f"  {name:>40}: " + ", ".join(f"{k} {v:.3g}" for k, v in r.items()))
    print("share of the samples per category (nearest training shape):")
    for name, r in cat["share"].items():
        print(f"  {name:>40}: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in r.items()))

# %% [markdown]
# **Latent interpolation**: decode codes on the segment between two held-out shapes.

# %%
steps_i = 5
inter = ex.interpolate(model, test["points"][0], test["points"][-1], steps_i, 512 if PROFILE != "ci" else 128)
viz.subplots([viz.plot_points(p.clamp(-1.5, 1.5), size=1.5) for p in inter],
             titles=[f"t = {t:.2f}" for t in np.linspace(0, 1, steps_i)], height=260)

# %% [markdown]
# ## 9. Sparse and occluded inputs
#
# The seed's motivations: densify sparse data (LiDAR) and complete occluded objects. The
# encoder is a max-pooled PointNet, so it accepts any number of input points; the output
# always has as many points as asked. It was trained on complete, dense clouds only. Compare the
# sparse and occluded rows with the dense one: does the seed's "robust to sparsity and occlusion"
# hold at this budget, and what would training have to show the encoder for completion to work?
# Read the occluded row with the encoder in mind: half a chair is, to a max-pooled PointNet, a
# different point set, and nothing in training asked its code to stay near the whole chair's; the
# field then draws the shape the code names, in full, wherever that code puts it. Completion has to
# be trained for (partial inputs against complete targets), as chapter 02's partial-scan
# experiment does for classification.

# %%
if R is not None and "robustness" in R.data:
    rob_m = R.data["robustness"]
    print("laptop benchmark, CD x1e4:", {k: round(v["CD x1e4"], 3) for k, v in rob_m.items()})
    dense_key = next(k for k in rob_m if k.startswith("dense"))
    for k, v in rob_m.items():
        if k != dense_key:
            print(f"   {k}: {v['CD x1e4'] / rob_m[dense_key]['CD x1e4']:.1f} times the dense input's CD")
else:
    rob = ex.sparse_and_partial(model, test["points"], test["target_points"], sparse=(32,))
    print(f"live, {PROFILE} profile, CD x1e4:", {k: round(v["CD x1e4"], 3) for k, v in rob.items()})

# %% [markdown]
# **Noisy inputs.** The seed's critique asks about noise; the encoder was trained on clean samples only.
# Here every test input gets Gaussian noise of standard deviation `ch10.noise_levels` added to each
# coordinate (`ex.add_input_noise`), and every model reconstructs from the same noisy inputs
# (`ex.noise_robustness`). The target stays the clean surface. Predict first: which decoder do you
# expect to be hurt the most by the same input noise, given that all share the same PointNet encoder?

# %%
noise_levels = [0.0, *[float(v) for v in SZ["noise_levels"]]]
noisy = ex.noise_robustness({"ShapeGF": model, **baselines}, test["points"], test["target_points"], noise_levels[1:])
rob_noise = {name: {0.0: float(ex.ae_metrics(p, test["target_points"], emd=False)["CD x1e4"].mean()), **noisy[name]}
             for name, p in preds.items()}  # the clean row: the auto-encoding table's own reconstructions
def robustness_rows(live, key, by):
    """Print the live rows (this profile) and the laptop benchmark's rows of one robustness study."""
    print(f"live, {PROFILE} profile, mean CD x1e4 over {len(test['points'])} test shapes, by {by}:")
    for name, row in live.items():
        print(f"  {name:>18}: " + "  ".join(f"{k:g}: {v:.3g}" for k, v in row.items()))
    if R is not None and key in R.data:
        print(f"laptop benchmark, mean CD x1e4 by {by}:")
        for name, row in R.data[key].items():
            print(f"  {name:>18}: " + "  ".join(f"{k}: {v:.3g}" for k, v in row.items()))
    else:
        print("laptop benchmark: not measured yet (`COURSE_PROFILE=laptop python benchmarks/gradient_fields.py`)")
    study = key.split("_")[0]  # the claims: the rise of CD to the harshest setting, paired over the test shapes
    recs = [c for c in results.claims("gradient_fields") if c["id"].startswith(f"{study}_rise_vs_")]
    for c in recs:
        results.say("gradient_fields", c["id"])
    if not recs:
        print(f"claims ({study}): not measured under the protocol yet "
              "(`COURSE_PROFILE=laptop python benchmarks/gradient_fields.py`)")


robustness_rows(rob_noise, "noise_robustness", "input noise std")
viz.plot_curves(noise_levels, {name: list(row.values()) for name, row in rob_noise.items()},
                title=f"reconstruction from noisy inputs ({PROFILE} profile)", xlabel="input noise std",
                ylabel="CD x1e4", log_y=True)

# %% [markdown]
# **Rotated inputs.** Nothing in the model is equivariant (section 11), and every training shape was
# upright and aligned. Turn each test input *and* its target by the same angle about the up axis $y$
# (`ex.rotation_robustness`, angles `ch10.rotation_angles`): a model that followed the rotation would
# score as at 0 degrees. Predict first: what does a PointNet code of a chair turned by a quarter turn
# look like to a decoder that has only seen upright chairs?

# %%
rot_angles = [0.0, *[float(a) for a in SZ["rotation_angles"]]]
turned = ex.rotation_robustness({"ShapeGF": model, **baselines}, test["points"], test["target_points"], rot_angles[1:])
rob_rot = {name: {0.0: rob_noise[name][0.0], **turned[name]} for name in turned}  # 0 degrees: the clean row above
robustness_rows(rob_rot, "rotation_robustness", "rotation about y (degrees)")
viz.plot_curves(rot_angles, {name: list(row.values()) for name, row in rob_rot.items()},
                title=f"reconstruction of rotated shapes ({PROFILE} profile)", xlabel="rotation about y (degrees)",
                ylabel="CD x1e4", log_y=True)

# %% [markdown]
# **The chapter's goals**, as the benchmark recorded them (each against its target; a goal
# never compares ShapeGF with a baseline, the claims above do that):

# %%
results.show_goals("gradient_fields")

# %% [markdown]
# ## 10. The noise schedule, and the link to diffusion models
#
# **Design rules for the schedule.** Song & Ermon [Song2020] analyse how to choose the levels of a
# noise-conditional score model. Two of their rules concern the schedule itself:
#
# - *Technique 1*: take $\sigma_1$ about as large as the largest distance between two training data
#   points, so that at the first level Langevin dynamics can carry a sample from any mode to any other;
# - *Technique 2*: take the levels in a geometric progression, $\sigma_{i-1}/\sigma_i = \gamma$, with
#   enough levels that neighbouring perturbed distributions overlap. For $x\sim\mathcal N(0,\sigma_i^2 I_D)$
#   the radius $\|x\|$ concentrates around $\sqrt D\,\sigma_i$ with a spread of about $\sigma_i/\sqrt2$;
#   they ask that such a sample fall in the typical shell of the previous level,
#   $\sigma_{i-1}(\sqrt D \pm 3/\sqrt 2)$, with probability about one half, which with the Gaussian
#   approximation of the radius reads
#
# $$\Phi\big(\sqrt{2D}(\gamma-1)+3\gamma\big) - \Phi\big(\sqrt{2D}(\gamma-1)-3\gamma\big) \approx 0.5$$
#
#   ($\Phi$ the standard normal CDF; `ex.ncsn_overlap`, and `exact=True` for the radius's true
#   $\chi_D$ law).
#
# In ShapeGF a data point is one point of one shape: the field is learned per point, in $D = 3$, and
# the distances that matter are those between two points of the same shape. `ex.noise_schedule_rule`
# checks the course's schedule (the official code's) against both rules on the training clouds. It
# also prints what technique 2 would ask if the whole cloud were one vector of $D = 3N$ numbers (the
# way NCSN treats an image, and a diffusion model that denoises the whole cloud at once does).

# %%
rule = ex.noise_schedule_rule(train["target_points"], model.sigmas)
print(f"largest distance between two points of one training cloud: {rule['max_pairwise']:.3g}; "
      f"sigma_1 = {rule['sigma_1']:.3g}, sigma_1 / that distance = {rule['sigma_1 / max_pairwise']:.2f}")
print(f"ratios between neighbouring levels: {min(rule['ratios']):.4f} to {max(rule['ratios']):.4f} "
      f"(geometric: {rule['geometric']})")
print(f"technique 2 in D = {rule['dim']} at gamma = {rule['gamma']:.3f}: overlap {rule['overlap']:.4f} "
      f"(Gaussian radius), {rule['overlap_exact']:.4f} (exact chi law); target about 0.5")
print("ratio at which the overlap falls to 0.5 in D = 3:",
      "none (the overlap stays above 0.5 at every ratio)" if rule["rule_ratio"] is None else f"{rule['rule_ratio']:.3f}")
d_cloud = 3 * int(train["target_points"].shape[1])
g_cloud = ex.ncsn_ratio(d_cloud)
n_levels = 1 + math.log(rule["sigma_1"] / float(model.sigmas[-1])) / math.log(g_cloud)
print(f"the whole cloud as one vector, D = {d_cloud}: gamma = {g_cloud:.4f}, i.e. about {math.ceil(n_levels)} levels "
      f"from {rule['sigma_1']:.3g} to {float(model.sigmas[-1]):.3g} (the course uses {len(model.sigmas)}); "
      f"overlap at the course's ratio: {ex.ncsn_overlap(rule['gamma'], d_cloud):.3g}")

# %% [markdown]
# Read the printout with the shapes' normalisation in mind: every shape lies in the unit ball, so no
# two of its points are more than 2 apart by construction. In $D = 3$ the radius of a Gaussian sample
# is spread so widely that neighbouring levels overlap at any ratio NCSN's formula can see; the
# number of levels is then a matter of the sampler's budget (steps per level) rather than of overlap.
# For a model of the whole cloud, the same rule asks for the number of levels printed last; diffusion
# models of whole clouds do run long chains (PVD [Zhou2021] uses 1,000 steps). Technique 1 is a
# different matter: is the course's first level as large as the printed distance asks? And what does
# ShapeGF's start, a uniform prior over the box $[-1.5, 1.5]^3$, change about the distances the first
# level has to bridge?
#
# **From annealed Langevin to diffusion models.** ShapeGF's perturbation $\tilde x = x + \sigma_i\epsilon$
# and NCSN's [Song2019] are the same family; Song et al. [Song2021] show that as the number of levels
# grows it becomes the solution of a stochastic differential equation. Writing $\sigma(t)$ for the
# level at time $t\in[0,1]$,
#
# $$\text{VE SDE (NCSN, ShapeGF):}\quad dx = \sqrt{\tfrac{d[\sigma^2(t)]}{dt}}\,dw,\qquad
#   \text{VP SDE (DDPM [Ho2020]):}\quad dx = -\tfrac12\beta(t)\,x\,dt + \sqrt{\beta(t)}\,dw .$$
#
# The discrete chains are $x_i = x_{i-1} + \sqrt{\sigma_i^2-\sigma_{i-1}^2}\,z$ (levels in increasing
# order) and DDPM's $x_i = \sqrt{1-\beta_i}\,x_{i-1} + \sqrt{\beta_i}\,z$, whose marginal is
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$. Any forward SDE
# $dx = f(x,t)\,dt + g(t)\,dw$ has a reverse-time SDE [Anderson1982]
#
# $$dx = \big[f(x,t) - g(t)^2\,\nabla_x\log p_t(x)\big]\,dt + g(t)\,d\bar w ,$$
#
# which needs only the score of every perturbed distribution $p_t$: exactly what a noise-conditional
# network $s_\theta(x,\sigma)$ estimates. Three consequences connect this chapter to diffusion models:
#
# - **the loss**: DDPM's $\mathbb E\|\epsilon_\theta(x_t,t)-\epsilon\|^2$ is denoising score matching
#   with the weight $\lambda(\sigma) = \sigma^2$ and $\epsilon_\theta = -\sigma s_\theta$ [Ho2020, Song2021].
#   It is the course's choice (`weighting="ncsn"`, `output="scaled"`: the network predicts $-\epsilon$);
# - **the sampler**: annealed Langevin dynamics is what Song et al. call a *corrector* (MCMC at a fixed
#   level); a discretisation of the reverse SDE is a *predictor*, and their predictor-corrector samplers
#   alternate the two. The deterministic *probability flow* ODE
#   $dx = [f(x,t) - \tfrac12 g(t)^2\nabla_x\log p_t(x)]\,dt$ has the same marginals [Song2021];
# - **point clouds**: Luo & Hu [Luo2021] train a DDPM on the points of a shape conditioned on a latent
#   code (the points diffuse independently, as in ShapeGF, and a latent flow generates codes), and
#   PVD [Zhou2021] diffuses the whole cloud with a point-voxel network. ShapeGF is the annealed-Langevin
#   ancestor of both.

# %% [markdown]
# ## 11. Limitations
#
# The seed's critique, which the course's experiments make concrete:
# - **no runtime analysis** in the paper: sampling costs 100 network evaluations per point
#   (50 for generation), against one for PointSetGen or AtlasNet (the benchmark's "Time" table
#   has each model's sampling seconds on the test shapes);
# - **rotation and translation**: nothing in the model is equivariant; shapes are centred and
#   aligned by the data (section 9 turns the test shapes);
# - **noise and real data**: the training clouds are clean samples of exact surfaces; a noisy
#   scan is itself a blurred surface, and the field learns the blur (section 9 reconstructs from noisy
#   inputs);
# - **single objects**: "struggles to generalize to scenes outside of the training
#   distribution"; a scene is not one shape in a unit box;
# - the surface is an **unsigned** set: no inside/outside, no watertight mesh without more work.

# %% [markdown]
# **Time per shape, measured here.** The cell times each model's reconstruction of a few test shapes
# with the same number of output points (`ex.seconds_per_shape`: the best of two runs after a warm-up
# shape), on this machine, in the current profile and with its sampler settings (`ch10.steps_per_level`
# steps on each of the levels). These are live timings of whatever this machine is doing now; the
# laptop benchmark's timings (same function, measured alone on its machine) are printed below them.

# %%
time_in = test["points"][: min(4, len(test["points"]))]
secs = {f"ShapeGF ({len(model.sigmas)} levels x {SZ['steps_per_level']} steps)":
        ex.seconds_per_shape(lambda x: ex.reconstruct(model, x, n_out), time_in, repeat=2)}
for name, bl in baselines.items():
    secs[name] = ex.seconds_per_shape(lambda x, bl=bl: ex.predict_baseline(bl, x, n_out), time_in, repeat=2)
print(f"live, {PROFILE} profile, {config.describe()}; {n_out} output points per shape, {len(time_in)} shapes:")
for name, t in secs.items():
    print(f"  {name:>34}: {1e3 * t:.3g} ms per shape")
fastest = min(secs.values())
print("ratio to the fastest model:", {k: round(v / fastest, 1) for k, v in secs.items()})
if R is not None and "inference_seconds" in R.data:
    t_l = R.data["inference_seconds"]
    print(f"laptop benchmark ({t_l['n_points']} points, {t_l['shapes']} shapes, {t_l['levels']} levels x "
          f"{t_l['steps_per_level']} steps, {t_l['threads']} threads):")
    for name, t in t_l["per_shape"].items():
        print(f"  {name:>34}: {1e3 * t:.3g} ms per shape")
else:
    print("laptop benchmark: not measured yet (`COURSE_PROFILE=laptop python benchmarks/gradient_fields.py`)")

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
for name in ("gradient_fields", "generation"):
    results.show_families(name)
    print()

# %% [markdown]
# ## Summary
#
# - ShapeGF represents a shape by the score $\nabla_x\log Q_\sigma$ of its Gaussian-blurred
#   surface density, for a range of $\sigma$; for a cloud it has a closed form (a softmax-weighted
#   mean minus $x$, over $\sigma^2$).
# - Denoising score matching learns it from samples alone: perturb by $\sigma\epsilon$, regress
#   $-\sigma\epsilon$ (the official code: displacement units, weight $1/(2\sigma)$, one $\sigma$ per
#   shape, 10 geometric levels from 1 to 0.01).
# - Annealed Langevin dynamics samples any number of points: uniform prior in $[-1.5, 1.5]^3$,
#   10 steps per level, noise then step $\alpha = 2\sigma^2$.
# - The surface is where the field vanishes; $\sigma^2\|s\|$ is close to an unsigned distance.
# - The field can be judged level by level: against the analytic score on the 2D toy
#   (`ex.score_error_per_level`) and, for the 3D model, as a per-level denoising loss between the
#   analytic field of the target points and the zero field (`ex.shapegf_dsm_per_level`).
# - NCSN's schedule rules [Song2020] (the first level as large as the data's largest distance, a
#   geometric progression whose neighbouring levels overlap) are checked on the course's schedule
#   by `ex.noise_schedule_rule`; in the limit of many levels the perturbation is the variance-exploding
#   SDE of [Song2021], DDPM's loss is DSM with the weight $\sigma^2$, and annealed Langevin is the
#   corrector of a predictor-corrector sampler.
# - An auto-encoder gives codes; a WGAN with a zero-centred penalty on real codes generates new
#   ones; MMD / COV / 1-NNA (with Chamfer and with the exact EMD) score the generated set, next to a
#   trivial baseline that memorises. Where generation stands against it, and which of the decoder,
#   the GAN's budget and the latent distribution is to blame, is printed from the claims of
#   `benchmarks/generation.py` (section 8), with the choice of latent distribution made on val.
#
# ## Exercises
#
# 1. Sample the single-shape field of section 4 with the smallest level only (`[0.01]`, no
#    annealing). Where do points that start far from the chair end up? Why does the analytic
#    field of section 3 not show the problem?
# 2. Train the single-shape field with the official parametrisation
#    (`ex.fit_single_shape(..., official=True)`) and compare the samples' Chamfer distance and the
#    DSM loss per level (against a predictor that returns zero) at equal steps.
# 3. Sample with 5 levels instead of 10 and with `step_ratio` $0.5$ and $1.9$ (2 is the edge of stability). Which
#    matters more?
# 4. The official debugging field uses $\exp(-\|x - p\|^2/\sigma^2)$ in its softmax. Which blur
#    does that correspond to? Show that the sampler still lands on the surface.
# 5. Replace the trivial generation baseline by training shapes *without* noise. What does
#    1-NNA become, and why is a value below 50% possible?
# 6. Mesh the learned field of section 4 with `gf.field_mesh` and compare it with the analytic
#    field's shell: where do they differ?
# 7. Train the auto-encoder of section 6 for a few epochs with `levels="uniform"` and with
#    `levels="stratified"` (`ex.train_shapegf(..., levels=..., seed=...)`), two seeds each, and
#    compare the spread of the Chamfer distances. Then recompute the BatchNorm statistics of a
#    uniform run over a whole epoch (`reset_running_stats()`, `momentum=None`, forward passes
#    in train mode without gradients): how much of its gap was in those statistics?
#
# ## References
#
# - [Cai2020] R. Cai, G. Yang, H. Averbuch-Elor, Z. Hao, S. Belongie, N. Snavely, B. Hariharan.
#   Learning Gradient Fields for Shape Generation. ECCV 2020.
# - [Song2019] Y. Song, S. Ermon. Generative Modeling by Estimating Gradients of the Data
#   Distribution. NeurIPS 2019.
# - [Song2020] Y. Song, S. Ermon. Improved Techniques for Training Score-Based Generative Models.
#   NeurIPS 2020.
# - [Song2021] Y. Song, J. Sohl-Dickstein, D. P. Kingma, A. Kumar, S. Ermon, B. Poole. Score-Based
#   Generative Modeling through Stochastic Differential Equations. ICLR 2021.
# - [Ho2020] J. Ho, A. Jain, P. Abbeel. Denoising Diffusion Probabilistic Models. NeurIPS 2020.
# - [Anderson1982] B. D. O. Anderson. Reverse-time diffusion equation models. Stochastic Processes
#   and their Applications 12(3), 1982.
# - [Luo2021] S. Luo, W. Hu. Diffusion Probabilistic Models for 3D Point Cloud Generation. CVPR 2021.
# - [Zhou2021] L. Zhou, Y. Du, J. Wu. 3D Shape Generation and Completion through Point-Voxel
#   Diffusion. ICCV 2021.
# - [Vincent2011] P. Vincent. A Connection Between Score Matching and Denoising Autoencoders.
#   Neural Computation 2011.
# - [Hyvarinen2005] A. Hyvärinen. Estimation of Non-Normalized Statistical Models by Score
#   Matching. JMLR 2005.
# - [Achlioptas2018] P. Achlioptas, O. Diamanti, I. Mitliagkas, L. Guibas. Learning
#   Representations and Generative Models for 3D Point Clouds. ICML 2018.
# - [Yang2019] G. Yang, X. Huang, Z. Hao, M.-Y. Liu, S. Belongie, B. Hariharan. PointFlow: 3D
#   Point Cloud Generation with Continuous Normalizing Flows. ICCV 2019.
