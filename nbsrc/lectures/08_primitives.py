# %% [markdown]
# # 08 · Primitives: shapes as a few cuboids and superquadrics
#
# The previous chapters reconstruct a surface as faithfully as they can: thousands of points,
# a mesh, a fine field. This chapter asks for the opposite: describe a chair with **as few
# simple solids as possible**, a box for the seat, one for the back, four thin ones for the
# legs. Such an abstraction is useful in itself (it exposes the parts and the structure of a
# shape, it can be edited or animated), and for man-made objects it captures sharp edges that
# smooth decoders round off.
#
# Two difficulties, both unsupervised (nobody tells the network where the parts are):
#
# 1. **placing** the primitives: a loss between a *union of solids* and a target surface;
# 2. **how many**: each of $M$ predicted primitives may or may not exist, a discrete choice that
#    gradient descent cannot make directly.
#
# We follow [Tulsiani2017] (cuboids, existence learned with REINFORCE) and
# [Paschalidou2019] (superquadrics, and an exact expectation that needs no REINFORCE: the
# *reordering trick*). Everything runs the library: `course_lib.models.primitives` (primitives,
# losses, both estimators) and `course_lib.experiments.primitives` (data, training, metrics),
# which the benchmark `benchmarks/primitives.py` also uses.

# %%
import math

import torch

from course_lib import config, results, viz
from course_lib.experiments import primitives as E
from course_lib.experiments.common import rows_table
from course_lib.models import primitives as P

print(config.describe())

# %% [markdown]
# Sizes come from the `ch08.*` block of `course_lib.config`; in the `ci` profile the models are
# trained for a few steps only, so their pictures are rough and their numbers mean nothing. The
# measured numbers are read from the laptop benchmark's results file
# (`benchmarks/results/primitives-laptop.json`), never typed in; the cells below say when it
# has not been measured yet and show live, `ci`-sized numbers, labelled as such.

# %%
SZ = config.sizes(prefix="ch08.")
PROFILE = config.get_profile()
print({k: SZ[k] for k in ("categories", "train_per_category", "n_points", "n_primitives", "n_samples", "epochs")})
MEASURED = results.show("primitives", "laptop")

# %% [markdown]
# **On your own data.** `E.primitive_data(split, dataset="modelnet", root=...)` (or `COURSE_DATASET=modelnet`
# with `COURSE_MODELNET_DIR` set before starting Jupyter; `shapenetcore` and `COURSE_SHAPENET_DIR` likewise)
# gives real meshes' points, and `E.train_primitives` trains on them under checkpoints named after the
# dataset. The IoU of `E.evaluate_primitives` needs ShapeNet-lite's exact occupancy and refuses real meshes
# (`iou=False` keeps the Chamfer distance, the primitives used and the expected loss; Section 6 uses it there);
# `python benchmarks/primitives.py --dataset modelnet --root DIR` runs the rest of the benchmark.

# %% [markdown]
# ## 1. Two families of primitives
#
# A primitive lives in its own frame: a half-size $a = (a_1, a_2, a_3)$, a rotation $R$ (given
# by a unit quaternion, which a network can output as any 4-vector and normalise), a
# translation $t$: a world point $p$ has local coordinates $x = R^\top (p - t)$.
#
# A **superquadric** [Barr1981, Paschalidou2019] adds two shape exponents. Its
# *inside-outside function*
#
# $$
# F(x) = \Big(\big|\tfrac{x_1}{a_1}\big|^{2/\varepsilon_2} + \big|\tfrac{x_2}{a_2}\big|^{2/\varepsilon_2}\Big)^{\varepsilon_2/\varepsilon_1}
#        + \big|\tfrac{x_3}{a_3}\big|^{2/\varepsilon_1}
# $$
#
# is below 1 inside, 1 on the surface, above 1 outside. $\varepsilon_2$ shapes the horizontal
# cross-section, $\varepsilon_1$ the vertical profile: $\varepsilon_1=\varepsilon_2=1$ is an
# ellipsoid, both near 0 a box with sharp edges, $\varepsilon=2$ an octahedron, and in between
# cylinders ($\varepsilon_1 \to 0$, $\varepsilon_2 = 1$), rounded boxes and pillows. One
# family with 11 degrees of freedom (3 sizes, 2 exponents, 3 for the rotation, 3 for the
# translation), from spheres to boxes. $F$ is computed in log space
# (`P.superquadric_inside_outside`): with small exponents the powers $2/\varepsilon$ are large
# and would overflow.
#
# A **cuboid** [Tulsiani2017] is the limit: $F_\square(x) = \max_k (x_k/a_k)^2$.
#
# Move the sliders. The points are surface samples, drawn **uniformly over the area** (section 2).

# %%
def show_superquadric(eps1=1.0, eps2=1.0, a1=0.5, a2=0.35, a3=0.25):
    prims = P.Primitives(size=torch.tensor([[[a1, a2, a3]]]), eps=torch.tensor([[[eps1, eps2]]]),
                         rotation=torch.tensor([[[1.0, 0.0, 0.0, 0.0]]]), translation=torch.zeros(1, 1, 3),
                         prob=torch.ones(1, 1))
    mesh = P.primitive_meshes(prims, 0, resolution=32)[0]
    pts = prims.sample_surface(600, torch.Generator().manual_seed(0))[0, 0]
    fig = viz.plot_mesh(mesh, color="lightsteelblue", opacity=0.6,
                        title=f"superquadric eps1={eps1:.2f}, eps2={eps2:.2f}, a=({a1:.2f}, {a2:.2f}, {a3:.2f})")
    return viz.plot_points(pts, color="crimson", size=2.0, fig=fig)


viz.interact(show_superquadric, eps1=(0.1, 2.0, 0.1, 1.0), eps2=(0.1, 2.0, 0.1, 1.0), a1=(0.1, 1.0, 0.05, 0.5),
             a2=(0.1, 1.0, 0.05, 0.35), a3=(0.1, 1.0, 0.05, 0.25))

# %% [markdown]
# The analytic cases, checked: for the sphere $F = |x|^2/r^2$; for the octahedron
# ($\varepsilon = 2$) $F = |x_1|+|x_2|+|x_3|$; and $F^{\varepsilon}$ tends to the cuboid's
# $F_\square$ as $\varepsilon\to 0$ ($F$ is homogeneous of degree $2/\varepsilon_1$, so its
# $\varepsilon$-th power is a scale-consistent "norm").

# %%
x = torch.randn(1000, 3, dtype=torch.float64)
a = torch.tensor([0.9, 0.5, 0.3], dtype=torch.float64)
r = torch.full((3,), 0.7, dtype=torch.float64)
print("sphere:", float((P.superquadric_inside_outside(x, r, torch.ones(2, dtype=torch.float64))
                        - (x ** 2).sum(-1) / 0.49).abs().max()))
print("octahedron:", float((P.superquadric_inside_outside(x, torch.ones(3, dtype=torch.float64),
                                                          torch.full((2,), 2.0, dtype=torch.float64))
                            - x.abs().sum(-1)).abs().max()))
box = P.cuboid_inside_outside(x.clamp(-1, 1), a)
for e in (0.5, 0.2, 0.1, 0.05):
    f = P.superquadric_inside_outside(x.clamp(-1, 1), a, torch.full((2,), e, dtype=torch.float64))
    print(f"eps = {e:4.2f}: max |F^eps / F_box - 1| = {float((f ** e / box - 1).abs().max()):.3f}")

# %% [markdown]
# ## 2. Samples uniform over the surface, not over the angles
#
# The losses below compare points sampled on each primitive with the target, so the samples
# must cover the surface evenly. The classical parametrisation by two angles,
# $x_1 = a_1 \cos^{\varepsilon_1}\!\eta\,\cos^{\varepsilon_2}\!\omega$, ... (signed powers), is
# *not* uniform: with small exponents most of the angle range maps to the edges and corners,
# and the faces get few points. Paschalidou's code steps the angles adaptively to keep the
# distance between samples constant. We use another exact route:
#
# 1. directions $u$ uniform on the unit sphere, projected radially onto the unit-size
#    superquadric, $p = u\,F(u)^{-\varepsilon_1/2}$ (exact, because $F$ is homogeneous);
# 2. the area that a small solid angle around $u$ covers is $dA = r^3 |\nabla F(p)|\,d\Omega\,/\,k$
#    with $r=|p|$, $k = 2/\varepsilon_1$ (Euler's identity $\nabla F\cdot p = kF$), times the
#    stretch $a_1a_2a_3\,|a^{-1}\odot n|$ of the scaling by $a$;
# 3. resample the candidates in proportion to that area (`P.sample_superquadric_surface`).
#
# The selection is discrete, but the selected points are differentiable functions of $a$ and
# $\varepsilon$: the losses move the primitives through them.
#
# Measured: the share of samples in 24 regions of the surface against a reference of
# area-weighted samples of a fine marching-cubes mesh (total variation, 0 = identical;
# `E.sampling_uniformity`).

# %%
a_box, e_box = (0.8, 0.5, 0.4), (0.2, 0.3)
tv = E.sampling_uniformity(a_box, e_box, n=20000)
print(f"size {a_box}, eps {e_box}: total variation to uniform, area-weighted {tv['area']:.3f}, "
      f"uniform angles {tv['angles']:.3f}")
g = torch.Generator().manual_seed(0)
size_t, eps_t = torch.tensor([a_box], dtype=torch.float64), torch.tensor([e_box], dtype=torch.float64)
area_pts = P.sample_superquadric_surface(size_t, eps_t, 1500, generator=g)[0]
eta = (torch.rand(1500, generator=g, dtype=torch.float64) - 0.5) * math.pi
om = (2 * torch.rand(1500, generator=g, dtype=torch.float64) - 1) * math.pi
angle_pts = P.superquadric_angle_points(eta, om, size_t[0], eps_t[0])
viz.subplots([viz.plot_points(angle_pts, size=1.5), viz.plot_points(area_pts, size=1.5)],
             titles=["uniform angles: crowded edges", "area-weighted resampling"], height=340)

# %% [markdown]
# ## 3. A loss between a union of solids and a surface
#
# The target is a set of surface points $X$ (ShapeNet-lite). The primitives give surface
# samples $P_m$. A plain Chamfer distance between $X$ and $\bigcup_m P_m$ is wrong for a
# *union*: where two primitives overlap, the part of each surface that lies **inside the other**
# is not on the surface of the union, and its samples are far from every target point. Chamfer
# would push the primitives apart to make those samples disappear, although the union is right.
# Hence two directions, after [Tulsiani2017]:
#
# - **coverage** $X\to P$: every target point should be near some primitive,
#   $\Delta_i^m$ = squared distance from $x_i$ to the samples of primitive $m$, **zero when $x_i$
#   is inside $m$** (it is covered), and the loss is $\frac1N\sum_i\min_m \Delta_i^m$;
# - **consistency** $P\to X$: the samples of each primitive should be near the target, **except
#   samples inside another primitive**, which are discarded. This rule is the course's variant:
#   the code of [Tulsiani2017] charges each sample its distance to the target *volume* (samples
#   inside the target cost nothing), and [Paschalidou2019] weights each primitive's samples by
#   its existence probability $\theta_m$ and discards none.
#
# Two overlapping spheres whose union is the target: with the inner samples discarded the
# loss is near zero; without, it is not.

# %%
def two_spheres(gap):
    return P.Primitives(size=torch.full((1, 2, 3), 0.5, dtype=torch.float64), eps=torch.ones(1, 2, 2, dtype=torch.float64),
                        rotation=torch.tensor([[[1.0, 0, 0, 0]] * 2], dtype=torch.float64),
                        translation=torch.tensor([[[-gap, 0, 0], [gap, 0, 0]]], dtype=torch.float64),
                        prob=torch.ones(1, 2, dtype=torch.float64))


target = P.union_surface_points(two_spheres(0.25), 2000, generator=torch.Generator().manual_seed(1))[0][None]
terms = P.primitive_terms(two_spheres(0.25), target, 400, generator=torch.Generator().manual_seed(2))
both = torch.ones(1, 1, 2, dtype=torch.float64)
kept = P.configuration_loss(terms, both)
naive = P.configuration_loss(P.PrimitiveTerms(terms.coverage_dist, terms.sample_dist,
                                              torch.zeros_like(terms.sample_inside), terms.prob), both)
print(f"consistency with the inner samples discarded: {float(kept['consistency']):.5f}; "
      f"plain (all samples): {float(naive['consistency']):.5f}; coverage {float(kept['coverage']):.5f}")
samples = two_spheres(0.25).sample_surface(400, torch.Generator().manual_seed(2))[0].reshape(-1, 3)
inner = terms.sample_inside[0].any(-1).reshape(-1).float()
viz.plot_points(samples, color=inner, colorscale=[[0, "steelblue"], [1, "orange"]],
                title="samples of two overlapping spheres; orange: inside the other sphere (discarded)")

# %% [markdown]
# **Is the loss's minimum the target?** Start one primitive *exactly* on a target of its own kind
# and let the optimiser move it. With the coverage measured to a few dozen surface samples, a target
# point just outside a face costs its distance to the nearest *sample*, not to the surface, and the
# samples near edges and corners see their nearest target points on one side only: the sampled loss
# has its minimum somewhere else than the target, and the primitive drifts (the table says which way
# and how far). For a cuboid the distance to the solid has a closed form,
# $\sum_k \max(|p_k| - a_k, 0)^2$ in its own frame (`P.cuboid_squared_distance`,
# `primitive_terms(..., coverage="analytic")`), with no sampling error in the coverage; a superquadric
# has none, so its only remedy is more samples. What is left is the noise of the consistency term (its
# samples are fresh at every step) and of Adam's steps. Measured by the benchmark (each setting, three
# seeds; the volume change after the stated number of steps; the chapter's models train with the
# sampled coverage):

# %%
exact = results.get("primitives", "exact_size")
if exact is None:
    print("not measured yet: COURSE_PROFILE=laptop python benchmarks/primitives.py")
else:
    for r in exact:
        print(f"{r['kind']:12s} coverage={r['coverage']:8s} {r['n_samples']:5d} samples/primitive: volume change "
              f"{r['mean_pct']:+6.2f} % on average, largest |change| {r['max_abs_pct']:.2f} % ({r['steps']} steps)")

# %% [markdown]
# ## 4. How many primitives? Existence as Bernoulli variables
#
# The network predicts $M$ primitives and, for each, a probability $\theta_m$ that it exists:
# $z_m\sim\mathrm{Bern}(\theta_m)$, independent. For a configuration $z$ the loss
# $L(z)$ simply ignores the absent primitives (coverage: the minimum over existing ones only;
# consistency: only existing primitives' samples, and only the other *existing* primitives
# discard them). The training loss is its expectation
#
# $$ \mathcal L(\theta) = \mathbb E_{z\sim p_\theta}\big[L(z)\big] = \sum_{z\in\{0,1\}^M} p_\theta(z)\,L(z), $$
#
# a sum over $2^M$ configurations. Plus a parsimony term $\lambda\,\mathbb E[\#\text{primitives}]
# = \lambda\sum_m\theta_m$. When no primitive exists the coverage has no minimum; we give it a
# fixed cost (`ch08.empty` = 4, the largest squared distance within the unit ball), so that
# switching everything off is never free. (Paschalidou's code counts it as 0.)
#
# ### 4.1 The log-likelihood trick (REINFORCE) [Williams1992]
#
# For a discrete $z$ the gradient of an expectation is
#
# $$
# \nabla_\theta \mathbb E[L(z)] = \sum_z L(z)\,\nabla_\theta p_\theta(z)
#   = \sum_z L(z)\,p_\theta(z)\,\nabla_\theta\log p_\theta(z)
#   = \mathbb E\big[L(z)\,\nabla_\theta\log p_\theta(z)\big],
# $$
#
# estimated by Monte Carlo with $K$ samples: $\hat g = \frac1K\sum_k (L(z_k) - b)\,\nabla_\theta\log p_\theta(z_k)$,
# where for Bernoulli variables $\partial_{\theta_m}\log p_\theta(z) = z_m/\theta_m - (1-z_m)/(1-\theta_m)$.
# The baseline $b$ changes nothing on average ($\mathbb E[\nabla\log p] = 0$) as long as it does
# not depend on the current samples; Tulsiani's moving average of past losses
# ($b\leftarrow 0.9\,b + 0.1\,\bar L$) is such a baseline.
#
# The estimate is unbiased, but noisy. How noisy? For one shape with fixed geometry the loss
# of each of the $2^M$ configurations can be computed, so the variance of the single-sample
# estimate is a finite sum, computed **exactly** by enumeration (`E.exact_gradient_variance`,
# total variance = trace of the covariance):
#
# $$
# V_1(b) = \sum_z p_\theta(z)\,\big(L(z)-b\big)^2\,\big\|\nabla_\theta\log p_\theta(z)\big\|^2 - \big\|\nabla_\theta\mathcal L\big\|^2 .
# $$
#
# With $K$ i.i.d. configurations and a baseline that does not depend on them, the estimate is a
# mean of $K$ independent single-sample estimates, so its variance is $V_1(b)/K$ analytically.
# $V_1$ is a quadratic in $b$, minimised by the constant $b^* = \mathbb E[L\|s\|^2]/\mathbb E[\|s\|^2]$
# ($s$ the score). The moving average is itself random: in its stationary regime its mean is
# $\mathbb E[L]$ and its own fluctuation adds $\frac{1-\beta}{1+\beta}\,\mathrm{Var}(L)\,\mathbb E\|s\|^2/K^2$
# (momentum $\beta$). Below, on a real shape (the untrained model, whose probabilities all start
# near $\theta \approx 0.92$, the initial bias), the exact variances, and beside them the
# variances *sampled* from repeated estimates (`E.gradient_variance`). "max |bias| / s.e."
# compares the mean of the sampled estimates with the exact gradient in units of its standard
# error, only for the components whose rarer outcome is drawn, in expectation, at least
# `E.MIN_EVENTS` times over all the draws (the cell prints that number); the others are untested.

# %%
test = E.primitive_data("test")
torch.manual_seed(0)
init_model = E.build_model("superquadric").eval()
with torch.no_grad():
    prims0 = init_model(test["points"][:1])
    terms0 = P.primitive_terms(prims0, test["target_points"][:1], SZ["n_samples"],
                               generator=torch.Generator().manual_seed(0))
live_var = E.gradient_variance(terms0, SZ["variance_ks"], SZ["variance_reps"], empty=SZ["empty"],
                               parsimony=SZ["parsimony"])
ks = live_var["ks"]
live_exact = None  # the gpu profile's M is too large to enumerate: sampled only
if SZ["n_primitives"] <= E.EXACT_MAX_M:
    live_exact = E.exact_gradient_variance(terms0, ks, empty=SZ["empty"], parsimony=SZ["parsimony"])
    print(f"exact gradient |g|^2 = {live_exact['exact_norm2']:.3g}; E[L] = {live_exact['expected_loss']:.3g}, "
          f"best constant baseline b* = {live_exact['optimal_baseline']:.3g}")
    print(f"exact, by enumeration of the {live_exact['configurations']} configurations (V_1 / K analytically):")
    for r in live_exact["rows"]:
        print(f"  K = {r['k']:4d}: no baseline {r['none']:.3g} | b = E[L] {r['fixed']:.3g} | "
              f"moving average {r['moving_average']:.3g} | b* {r['optimal']:.3g}")
print(f"sampled ({PROFILE} profile, {live_var['reps']} estimates per K; bias tested where the rarer outcome is "
      f"expected at least {E.MIN_EVENTS:g} times):")
for a_, b_ in zip(live_var["none"], live_var["baseline"]):
    print(f"  K = {a_['k']:4d}: variance {a_['variance']:.3g} (no baseline) vs {b_['variance']:.3g} (moving average); "
          f"max |bias| / s.e. {a_['max_z']:.2f} / {b_['max_z']:.2f} ({a_['untested']} of {SZ['n_primitives']} "
          "components too rarely absent to test)")
curves = {"sampled, no baseline": [r["variance"] for r in live_var["none"]],
          "sampled, moving average": [r["variance"] for r in live_var["baseline"]],
          "|exact gradient|^2": [live_var["exact_norm2"]] * len(ks)}
if live_exact is not None:
    curves = {"exact, no baseline": [r["none"] for r in live_exact["rows"]],
              "exact, moving average": [r["moving_average"] for r in live_exact["rows"]], **curves}
viz.plot_curves(ks, curves,
                title=f"REINFORCE: total variance of the gradient estimate (live, {PROFILE} profile)",
                xlabel="samples K", ylabel="variance", log_x=True, log_y=True)

# %% [markdown]
# The exact curves are $V_1/K$ by construction. A *trained* model has probabilities near 0 or 1,
# where the score $1/\theta$ or $1/(1-\theta)$ is huge for the rare draws: the exact variance is
# still finite, but a few thousand sampled estimates contain those draws only a handful of
# times, so the sampled variances are noisy and need not trace $1/K$ (heavy tails). The laptop
# benchmark computes both on a trained model:

# %%
v = MEASURED.data.get("variance", {}) if MEASURED is not None else {}
# results measured before the exact variance existed hold only the sampled table, at the top level
v_exact, v_sampled = (v["exact"], v["sampled"]) if "sampled" in v else (None, v if "none" in v else None)
if v_exact is not None:
    print(f"laptop benchmark, exact (enumeration of {v_exact['configurations']} configurations), "
          f"probabilities {', '.join(f'{p:.3g}' for p in v_exact['prob'])}:")
    for r in v_exact["rows"]:
        print(f"  K = {r['k']:4d}: no baseline {r['none']:.3g} | b = E[L] {r['fixed']:.3g} | "
              f"moving average {r['moving_average']:.3g} | b* {r['optimal']:.3g}")
else:
    print("laptop exact variance: not measured yet (COURSE_PROFILE=laptop python benchmarks/primitives.py)")
if v_sampled is not None:
    print(f"laptop benchmark, sampled ({v_sampled['reps']} estimates per K), |exact gradient|^2 = "
          f"{v_sampled['exact_norm2']:.3g}:")
    for a_, b_ in zip(v_sampled["none"], v_sampled["baseline"]):
        print(f"  K = {a_['k']:4d}: variance {a_['variance']:.3g} (no baseline), {b_['variance']:.3g} (moving average); "
              f"max z {a_['max_z']:.2f} / {b_['max_z']:.2f} ({a_['untested']} components untested)")

# %% [markdown]
# ### 4.2 The reordering trick: the exact expectation [Paschalidou2019]
#
# The consistency term is easy: it is *multilinear* in $z$ (each product involves distinct,
# independent primitives), so its expectation is the same formula with $z$ replaced by
# $\theta$. The coverage is the hard part, because of the minimum. Fix a target point $x_i$
# and sort its distances, $\Delta_i^{(1)}\le\Delta_i^{(2)}\le\dots\le\Delta_i^{(M)}$. The
# minimum over the existing primitives equals $\Delta_i^{(k)}$ exactly when the $k$-th closest
# exists and the $k-1$ closer ones do not:
#
# $$
# \min_{m: z_m=1}\Delta_i^m = \Delta_i^{(k)} \quad\text{iff}\quad z_{(1)}=\dots=z_{(k-1)}=0,\ z_{(k)}=1,
# $$
#
# an event of probability $\theta_{(k)}\prod_{j<k}(1-\theta_{(j)})$. Hence
#
# $$
# \mathbb E\Big[\min_{m: z_m=1}\Delta_i^m\Big] = \sum_{k=1}^M \Delta_i^{(k)}\,\theta_{(k)}\prod_{j<k}\big(1-\theta_{(j)}\big)
#   \;+\; \texttt{empty}\prod_{k}(1-\theta_k):
# $$
#
# a sort and an exclusive cumulative product, $O(M\log M)$ instead of $2^M$, exact, and
# differentiable in both the distances and the probabilities (`P.expected_min_distance`).
# Checked against the brute-force enumeration, values and gradients:

# %%
g = torch.Generator().manual_seed(0)
for m in (1, 3, 8, 12):
    d = torch.rand(50, m, dtype=torch.float64, generator=g)
    p = torch.rand(50, m, dtype=torch.float64, generator=g).requires_grad_()
    e1 = P.expected_min_distance(d, p, empty=2.0)
    (g1,) = torch.autograd.grad(e1.sum(), p)
    e1 = e1.detach()
    p2 = p.detach().clone().requires_grad_()
    e2 = P.expected_min_distance_enumerate(d, p2, empty=2.0)
    (g2,) = torch.autograd.grad(e2.sum(), p2)
    print(f"M = {m:2d} ({2 ** m:5d} configurations): max |value diff| {float((e1 - e2).abs().max()):.1e}, "
          f"max |gradient diff| {float((g1 - g2).abs().max()):.1e}")

# %% [markdown]
# And the cost of the enumeration as $M$ grows (live timings on this machine, shared by whatever
# else runs on it):

# %%
cost = E.enumeration_cost(SZ["enumeration_ms"], SZ["enumeration_points"], repeat=3)
viz.plot_curves([r["m"] for r in cost], {"enumeration (2^M)": [1e3 * r["enumerate_s"] for r in cost],
                                         "reordering trick": [1e3 * r["reorder_s"] for r in cost]},
                title=f"exact expectation for {SZ['enumeration_points']} points (live)", xlabel="M",
                ylabel="milliseconds", log_y=True)

# %%
if MEASURED is not None and "enumeration" in MEASURED.data:
    print("laptop benchmark:")
    for r in MEASURED.data["enumeration"]["rows"]:
        print(f"  M = {r['m']:2d}: enumeration {1e3 * r['enumerate_s']:9.2f} ms, reordering {1e3 * r['reorder_s']:6.2f} ms, "
              f"max |diff| {r['max_abs_diff']:.1e}")
else:
    print("laptop enumeration cost: not measured yet (COURSE_PROFILE=laptop python benchmarks/primitives.py)")

# %% [markdown]
# ### 4.3 Relaxing existence: straight-through and Concrete estimators [Maddison2017]
#
# The seed asks why we do not simply *reparameterise* existence, as a VAE reparameterises a
# Gaussian. The reparameterisation trick writes the random variable as a differentiable function
# of the parameters and of noise that does not depend on them, $z = h(\theta, \varepsilon)$; a
# Bernoulli variable is $z = [u < \theta]$, a step function, whose derivative in $\theta$ is zero
# almost everywhere. Two fixes are in common use:
#
# - **straight-through** (Bengio et al. 2013): draw the hard $z$ in the forward pass, and in the
#   backward pass pretend that $\partial z/\partial\theta = 1$, so the estimate is
#   $\partial \tilde L/\partial z$ evaluated at the sample;
# - the **binary Concrete** or Gumbel-sigmoid relaxation [Maddison2017, Jang2017]: replace $z$ by
#   $\tilde z = \sigma\big((\operatorname{logit}\theta + \operatorname{logit} u)/\tau\big)$,
#   $u\sim U(0, 1)$, a smooth variable in $(0, 1)$ that becomes the Bernoulli draw as the
#   temperature $\tau \to 0$; its hard-forward variant (straight-through Gumbel) uses
#   $[\tilde z > 1/2]$ forward and $\tilde z$ backward.
#
# Both need the loss at a **fractional** existence $\tilde L(z)$, $z\in[0,1]^M$, and that is
# where existence is hard to relax: the coverage of a target point is the distance to the nearest
# *existing* primitive, a minimum over a set, and a set has no half members. Any relaxation is a
# choice. The natural one agrees with the loss on every 0/1 configuration and is multilinear in
# $z$; it is exactly the reordering trick's formula with $z$ in place of $\theta$
# (`E.relaxed_loss`). Two consequences, which the cells below measure:
#
# 1. Straight-through with this $\tilde L$ is **unbiased**: $\partial\tilde L/\partial z_m$ does not
#    involve $z_m$ and is multilinear in the others, so its mean over independent draws is its value
#    at $\theta$, the exact gradient. It still has variance (one configuration per estimate).
# 2. The Concrete estimator is the gradient of $\mathbb E[\tilde L(\tilde z)]$, which is **not**
#    $\mathbb E[L(z)]$: in general it is biased at any temperature above zero (already for one
#    primitive and a linear loss, as a unit test checks by quadrature); the bias vanishes only in the
#    limit $\tau\to 0$, where $\partial\tilde z/\partial\theta$ becomes a spike (which the variance
#    pays for). The table says how large both are at three temperatures.
#
# And the lesson of the section: a relaxation needs a closed-form loss at fractional existence,
# and for this loss that closed form *is* the exact expectation, whose gradient has no variance at
# all. Relaxing pays only where $\tilde L$ cannot be written down (a renderer, a mesh boolean),
# and there its bias is whatever the surrogate makes it. `E.existence_estimators` measures every
# estimator on one shape: REINFORCE and straight-through exactly by enumeration, Concrete by
# Monte Carlo (bias and variance relative to the exact gradient's squared norm; the bias of a
# Monte Carlo row is its sample mean's distance to the exact gradient less the noise expected from
# the draws, and "max z" says how many standard errors the worst component is off).

# %%
if SZ["n_primitives"] <= E.EXACT_MAX_M:
    est = E.existence_estimators(terms0, taus=(0.1, 0.5, 1.0), mc_samples=200 if PROFILE == "ci" else 2000,
                                 empty=SZ["empty"], parsimony=SZ["parsimony"])
    n2 = est["exact_norm2"]
    names_ = [r["estimator"] + ("" if r["tau"] is None else f" (tau {r['tau']})") for r in est["rows"]]
    for name_, r in zip(names_, est["rows"]):
        print(f"{name_:32s} {r['method']:11s} bias/|g|^2 {r['bias_norm2'] / n2:9.3g}  "
              f"variance/|g|^2 {r['variance'] / n2:9.3g}  max z {r['max_z']:5.1f}")
    import plotly.graph_objects as go

    fig_est = go.Figure([go.Bar(name="bias / |g|^2", x=names_, y=[max(r["bias_norm2"] / n2, 1e-12) for r in est["rows"]]),
                         go.Bar(name="variance / |g|^2 (one sample)", x=names_,
                                y=[r["variance"] / n2 for r in est["rows"]])])
    fig_est.update_layout(barmode="group", yaxis_type="log", title="estimators of the existence gradient (live, one "
                          "shape; bias floored at 1e-12 for display)", height=420)
    fig_est.show()
else:
    print(f"M = {SZ['n_primitives']} primitives: too many to enumerate; the laptop profile's table is below")

# %% [markdown]
# Play with the relaxation itself: the histogram of $\tilde z$ for one primitive. At high
# temperature the samples crowd around the middle (a "half-existing" primitive, the relaxation's
# bias); at low temperature they pile up at 0 and 1 with the Bernoulli's proportions, and the
# derivative $\partial\tilde z/\partial\theta$ becomes a spike (the variance).

# %%
def show_concrete(theta: float = 0.7, tau: float = 0.5):
    import plotly.graph_objects as go

    u_ = torch.rand(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64).clamp(1e-9, 1 - 1e-9)
    th = torch.tensor(theta, dtype=torch.float64)
    zt = torch.sigmoid((torch.logit(th) + torch.logit(u_)) / tau)
    fig = go.Figure(go.Histogram(x=zt.numpy(), nbinsx=50, histnorm="probability"))
    fig.update_layout(title=f"binary Concrete samples: theta = {theta:.2f}, tau = {tau:.2f}; mean {float(zt.mean()):.3f} "
                      f"(a Bernoulli's mean is {theta:.2f})", xaxis_title="z~", yaxis_title="share", height=360)
    return fig


viz.interact(show_concrete, theta=(0.05, 0.95, 0.05, 0.7), tau=(0.05, 2.0, 0.05, 0.5))

# %% [markdown]
# The laptop benchmark (`benchmarks/primitives_estimators.py`) measures the same estimators on
# every held-out shape, for the chapter's trained cuboid network and for the same network at its
# initialisation; the claims compare single-sample errors paired over the shapes:

# %%
EST = results.load("primitives_estimators", "laptop")
if EST is None:
    print("not measured yet: COURSE_PROFILE=laptop python benchmarks/primitives_estimators.py")
else:
    for which_ in ("trained", "initial"):
        print(f"{which_} network (mean existence probability {EST.data[which_]['mean_prob']:.3f}):")
        print(rows_table(EST.data[which_]["summary"], digits=3))
    for c in EST.data["claims"]:
        results.say("primitives_estimators", c["id"])
    results.show_goals("primitives_estimators")

# %% [markdown]
# ## 5. Training: the exact expectation against REINFORCE
#
# The network (`P.PrimitiveNet`): a PointNet encoder (chapter 02) and one linear head per
# parameter, each squashed into its range: translation $0.8\tanh$, half-sizes in
# $[0.02, 0.7]$ starting small (Tulsiani biases them small), exponents $0.4 + 1.1\,\sigma$
# (Paschalidou's range $[0.4, 1.5]$), quaternions starting at the identity, existence
# $\sigma$ with a bias that starts every primitive at $\theta\approx 0.92$.
#
# The same model is trained twice, from the same initialisation and batches: with the exact
# expected loss (reordering trick + exact consistency), and with REINFORCE (one configuration
# per shape and step; the geometry gets the gradient of the sampled loss, the probabilities the
# score-function gradient with the moving-average baseline). Both report the **exact** expected
# loss, so the curves compare. Checkpoints are shared with the benchmark: after the laptop
# benchmark has run, this only loads them.

# %%
train_set = E.primitive_data("train")
val_set = E.primitive_data("val")
models, hists = {}, {}
for kind, method in E.VARIANTS:
    models[kind, method], hists[kind, method] = E.train_primitives(kind, method, train_set, val=val_set, seed=0)
viz.plot_curves(list(range(1, len(hists["superquadric", "reorder"].val) + 1)),
                {f"{k} / {m}": [v["val_expected"] for v in h.val] for (k, m), h in hists.items()},
                title=f"exact expected loss on validation shapes ({PROFILE} profile, seed 0)", xlabel="epoch",
                ylabel="E[loss]", log_y=True)

# %% [markdown]
# ## 6. Results on held-out shapes
#
# Three numbers per model, on test shapes it never saw: the Chamfer distance between the
# **union's surface** (samples of the primitives with $\theta>0.5$, minus those inside another
# one) and the target, the **IoU** of the union against the true occupancy at uniform points of
# $[-1,1]^3$, and the number of primitives used:

# %%
print(E.CD_CONVENTION)
exact = "dataset" not in test  # a real dataset (COURSE_DATASET) has no exact occupancy, so no IoU
live = {key: E.evaluate_primitives(m, test, iou=exact) for key, m in models.items()}
print(f"live ({PROFILE} profile, seed 0, {len(test['points'])} test shapes):")
for (kind, method), r in live.items():
    iou = f"{float(r['iou'].mean()):.3f}" if exact else "n/a (real meshes)"
    print(f"  {kind:12s} {method:9s}: CD x1e3 {float(r['chamfer'].mean()):7.2f} | IoU {iou} | "
          f"primitives used {float(r['used'].mean()):.1f} of {SZ['n_primitives']}")

# %%
if MEASURED is not None and "training" in MEASURED.data:
    print(f"laptop benchmark, mean ± sd over seeds {MEASURED.data['sizes']['seeds']}:")
    for s in MEASURED.data["training"]["summary"]:
        bud = s.get("budget") or {}
        print(f"  {s['kind']:12s} {s['method']:9s}: CD x1e3 {s['chamfer']:.2f} ± {s['chamfer_sd']:.2f} | "
              f"IoU {s['iou']:.3f} ± {s['iou_sd']:.3f} | used {s['used']:.1f} | train {s['train_s']:.0f} s"
              + (f" | {bud['steps']} steps, {bud['params']} parameters" if bud else ""))
else:
    print("laptop comparison: not measured yet (COURSE_PROFILE=laptop python benchmarks/primitives.py)")

# %% [markdown]
# Each comparison is a claim tested on the training seeds, paired by seed: the difference of the
# two rows, its standard error over the seeds and a verdict, "not separated" when the difference
# is within two standard errors. The sentences are written from the benchmark's results file:

# %%
for claim_id in ("reorder_vs_reinforce_cd", "reorder_vs_reinforce_val_expected", "superquadric_vs_cuboid_cd",
                 "superquadric_vs_cuboid_iou"):
    results.say("primitives", claim_id)
results.show_goals("primitives")

# %% [markdown]
# **How to read the comparison.** With three seeds only a gap that is consistent from seed to
# seed separates two rows, and "not separated" is a result, not a failure to report. What the
# reordering trick guarantees does not depend on the seeds: the expectation over existence and
# its gradient are exact by construction (see the reordering trick above), so no estimator noise
# enters the probabilities' updates. Does REINFORCE, whose noisy gradient keeps switching primitives on and off, keep
# more of them alive? And does the exact gradient switch a badly placed primitive off for good
# (its $\theta_m$ goes to 0, and with it the gradient of its geometry)? The "primitives used"
# column is where to look; this chapter does not measure the cause. Exercise: train more seeds
# (`ch08.seeds`) and check whether the verdicts change.

# %% [markdown]
# ### 6.1 Three consistency terms, two schedules ([Tulsiani2017], [Paschalidou2019])
#
# The consistency term of this chapter is the course's variant (`consistency="surface"`, the default: a sample
# costs its squared distance to the nearest target *surface point*; samples inside another existing primitive are
# discarded). Two others are in `P.primitive_terms(..., consistency=...)`, both multilinear in $z$, so the
# reordering trick stays exact for each:
#
# - `"volume"`, the consistency of [Tulsiani2017]: a sample costs its squared distance to the target *solid*,
#   $\max(\mathrm{sdf}(p), 0)^2$, nothing when it lies inside the target, and nothing is discarded. ShapeNet-lite
#   has the signed distance of every shape (`E.shapes_sdf`); Tulsiani's code reads it from a precomputed grid of
#   closest surface points and weights the samples by area over the union of the existing primitives;
# - `"paschalidou"`, the primitive-to-point-cloud term of [Paschalidou2019]: the nearest target point again,
#   nothing discarded, primitive $m$ weighted by $\theta_m$ and by its share of the (ellipsoid-approximated)
#   surface area, as the official `prim_to_pcl_loss` weights it (that code, unless `use_chamfer` is set, searches
#   the nearest target point only among the target points inside the primitive; the course searches all, as the
#   paper's equation does).
#
# And the existence probabilities can train from the first step (`existence_schedule="joint"`, the default) or in
# the two stages of Tulsiani's official scripts (`"two_stage"`): first the existence head gets no gradient and the
# parsimony term is off, then everything trains with it (their scripts scale the probability head's learning rate
# by `1e-4`, then by `0.2`; the course freezes it, then uses the full rate).
#
# On the two overlapping spheres of Section 3 (their union is the target, its signed distance the smaller of the
# two spheres'), each variant's consistency for the same samples:

# %%
def union_sdf(pts):  # the two spheres of two_spheres(0.25): radius 0.5, centres (-0.25, 0, 0) and (0.25, 0, 0)
    c = torch.tensor([[-0.25, 0.0, 0.0], [0.25, 0.0, 0.0]], dtype=pts.dtype)
    return torch.minimum((pts - c[0]).norm(dim=-1), (pts - c[1]).norm(dim=-1)) - 0.5


for consistency in P.CONSISTENCIES:
    kw = {"target_sdf": union_sdf} if consistency == "volume" else {}
    t = P.primitive_terms(two_spheres(0.25), target, 400, generator=torch.Generator().manual_seed(2),
                          consistency=consistency, **kw)
    print(f"{consistency:12s} consistency of both spheres: {float(P.configuration_loss(t, both)['consistency']):.5f}")

# %% [markdown]
# What each changes after training is a measurement: `benchmarks/primitives_consistency.py` trains cuboids
# with each variant (and the course's variant with each schedule), the same steps and seeds, the best epoch chosen
# on validation, and scores them once on the held-out shapes. Its claims, each against the course's variant:

# %%
for claim_id in ("volume_vs_surface_cd", "volume_vs_surface_iou", "paschalidou_vs_surface_cd",
                 "paschalidou_vs_surface_iou", "two_stage_vs_joint_cd", "two_stage_vs_joint_iou"):
    results.say("primitives_consistency", claim_id)

# %% [markdown]
# ### 6.2 Inter-object coherence and stability over seeds [Tulsiani2017]
#
# [Tulsiani2017]'s figures show a striking property: the network uses the *same* primitive for the
# same part across the shapes of a category (one primitive is always the seat), although nothing in
# the loss asks for it. `E.part_coherence` turns that figure into a number. Each target point goes to
# its nearest existing primitive; a primitive takes the part (ShapeNet-lite's part labels) most of its
# points lie on; a primitive is *coherent on a shape* when that part is the one the same primitive
# index takes most often on the *other* shapes of the category. A network that ignored the index would
# score what a random shuffle of each shape's primitive indices scores: that is the chance level it is
# compared with, shape by shape. Live, on this profile's test shapes (the cuboid model of section 5):

# %%
if "dataset" in test:
    print("part coherence needs ShapeNet-lite's part labels: skipped on a real dataset")
else:
    coh = E.part_coherence(models["cuboid", "reorder"], test, permutations=20)
    print(f"cuboids (live): agreement {float(coh['agreement'].nanmean()):.3f}, chance "
          f"{float(coh['chance'].nanmean()):.3f}, purity {float(coh['purity'].nanmean()):.3f} over "
          f"{len(test['points'])} shapes")
    print(rows_table(coh["table"][:12], digits=2))

# %% [markdown]
# The laptop benchmark (`benchmarks/primitives_coherence.py`) does it for every seed of the
# reordering-trick models and states the comparison with chance as a claim paired over the held-out
# shapes; it also keeps every run's validation curve, the seed's "loss evolution" figure, one line per
# seed:

# %%
COH = results.load("primitives_coherence", "laptop")
if COH is None:
    print("not measured yet: COURSE_PROFILE=laptop python benchmarks/primitives_coherence.py")
else:
    for kind_, v_ in COH.data["coherence"]["variants"].items():
        print(f"{kind_}s: agreement {v_['mean_agreement']:.3f} against chance {v_['mean_chance']:.3f}, purity "
              f"{v_['mean_purity']:.3f}")
    for c in COH.data["claims"]:
        results.say("primitives_coherence", c["id"])
    curves_ = {f"{k} seed {r['seed']}": r["val_expected"] for k, rs in COH.data["stability"].items() for r in rs}
    n_ep = max(len(c) for c in curves_.values())
    viz.plot_curves(list(range(1, n_ep + 1)), {k: list(c) + [None] * (n_ep - len(c)) for k, c in curves_.items()},
                    title="exact expected loss on val, every variant and seed (laptop benchmark)", xlabel="epoch",
                    ylabel="E[loss]", log_y=True).show()
    print(rows_table([{"variant": k, "seed": r["seed"], "best": r["best"], "best epoch": r["best_epoch"],
                         "last": r["last"]} for k, rs in COH.data["stability"].items() for r in rs], digits=4))

# %% [markdown]
# **Primitives from an image.** [Tulsiani2017] also predicts primitives from a single image. Chapter
# 11's modular framework (`experiments.modular`) trains the same cuboid decoder from chapter 02's ResNet
# image encoder and from a PointNet, on the same shapes, with the same optimiser and steps (the budgets
# are printed); the two rows and the comparison, from its results file:

# %%
from course_lib.experiments.modular import print_decoder_cells  # noqa: E402

print_decoder_cells("primitives")

# %% [markdown]
# ## 7. A shape's fitted primitives and their existence probabilities
#
# Pick a held-out shape and a model; every primitive is drawn, coloured by its existence
# probability, and the threshold hides the unlikely ones. The target points are grey.

# %%
preds = {key: E.predict_primitives(m, test["points"]) for key, m in models.items()}
labels = [f"{k} / {m}" for k, m in preds]


def show_fit(model=labels[0], shape=0, threshold=0.5):
    key = tuple(model.split(" / "))
    prims = preds[key]
    fig = viz.plot_points(test["target_points"][shape], color="gray", size=1.5, name="target")
    probs = prims.prob[shape].tolist()
    for mesh in P.primitive_meshes(prims, shape, resolution=16, threshold=threshold):
        pr = mesh.metadata["prob"]
        fig = viz.plot_mesh(mesh, color=f"rgb({int(255 * pr)}, {int(80 + 100 * (1 - pr))}, {int(255 * (1 - pr))})",
                            opacity=0.55, fig=fig, name=f"#{mesh.metadata['index']} p={pr:.2f}")
    shown = sum(p > threshold for p in probs)
    fig.update_layout(title=f"{model}: {shown} of {len(probs)} primitives with p > {threshold:.2f}; "
                            f"p = {', '.join(f'{p:.2f}' for p in probs)}")
    return fig


viz.interact(show_fit, model=labels, shape=range(0, len(test["points"])), threshold=(0.0, 0.95, 0.05, 0.5))

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
for name in ("primitives", "primitives_estimators", "primitives_consistency", "primitives_coherence"):
    results.show_families(name)
    print()

# %% [markdown]
# ## Summary
#
# - A primitive is an inside-outside function in its own frame; superquadrics span ellipsoids,
#   cylinders and boxes with two exponents, and cuboids are their limit.
# - Surface samples must be uniform over the **area**: uniform angles crowd the edges; an
#   area-weighted resampling of a radial projection is exact and keeps the gradient.
# - Plain Chamfer is wrong for unions; coverage counts inside points as covered and the course's
#   consistency discards samples inside other primitives. [Tulsiani2017] charges a sample its distance
#   to the target solid instead, [Paschalidou2019] weights each primitive by $\theta_m$ and its area
#   share (`consistency="volume"` / `"paschalidou"`); `existence_schedule="two_stage"` is Tulsiani's
#   schedule for the existence probabilities.
# - Existence is a Bernoulli variable and the loss an expectation over $2^M$ configurations.
#   REINFORCE estimates its gradient without bias; for $K$ i.i.d. samples its variance is
#   $V_1/K$ analytically, and the baseline enters $V_1$ as a quadratic whose minimum is the
#   constant $b^*$ (the REINFORCE section computes the exact numbers by enumeration). The
#   reordering trick computes the gradient **exactly** in $O(M\log M)$.
# - Relaxing existence (straight-through, binary Concrete) needs the loss at fractional existence;
#   its multilinear extension makes straight-through unbiased but noisy and the Concrete estimator
#   biased, and it already is the exact expectation: for this loss, relaxing buys nothing.
#
# ## Exercises
#
# 1. Set `ch08.empty` to 0 (Paschalidou's convention) and retrain: how many primitives survive,
#    and why can switching everything off become attractive?
# 2. Replace the moving-average baseline by the mean loss of the *other* configurations of the
#    same batch (leave-one-out, with $K\ge2$). Is it still unbiased? Measure its variance with
#    `E.gradient_variance` as a template, and compare with the exact variances of
#    `E.exact_gradient_variance`.
# 3. Increase the parsimony weight `ch08.parsimony` by factors of 10 and plot the number of
#    primitives used against the Chamfer distance.
# 4. Write the expected consistency when a sample counts as discarded only if it is inside an
#    existing primitive *with probability above $0.5$*: is it still exact? What changes?
# 5. Fit superquadrics with $\varepsilon$ restricted to $[0.1, 0.2]$ (nearly boxes) and compare
#    with the cuboid model.
# 6. Train superquadrics with `consistency="volume"`: which samples stop costing anything, and
#    what could a primitive that bulges *inside* the target do without being charged? Check on a
#    fitted shape.
# 7. Relax existence the *naive* way: coverage as the minimum of $\Delta^m / \tilde z_m$ (a primitive
#    that barely exists looks far away). Does it agree with the loss on hard configurations? Measure
#    the bias of its Concrete estimator with `E.existence_estimators` as a template, beside the
#    multilinear one.
#
# **References.** [Tulsiani2017] S. Tulsiani, H. Su, L. Guibas, A. Efros, J. Malik, Learning Shape
# Abstractions by Assembling Volumetric Primitives, CVPR 2017. [Paschalidou2019] D. Paschalidou,
# A. O. Ulusoy, A. Geiger, Superquadrics Revisited: Learning 3D Shape Parsing beyond Cuboids,
# CVPR 2019. [Williams1992] R. J. Williams, Simple Statistical Gradient-Following Algorithms for
# Connectionist Reinforcement Learning, Machine Learning 1992. [Barr1981] A. H. Barr,
# Superquadrics and Angle-Preserving Transformations, IEEE CG&A 1981. [Maddison2017] C. J. Maddison,
# A. Mnih, Y. W. Teh, The Concrete Distribution: A Continuous Relaxation of Discrete Random Variables,
# ICLR 2017. [Jang2017] E. Jang, S. Gu, B. Poole, Categorical Reparameterization with Gumbel-Softmax,
# ICLR 2017. Bengio, Léonard, Courville, Estimating or Propagating Gradients Through Stochastic
# Neurons for Conditional Computation, arXiv 2013 (the straight-through estimator).
