# %% [markdown]
# # 05 · Point sets: PointSetGen, Chamfer versus EMD
#
# Voxels and octrees (chapters 03 and 04) spend memory on *space*. A point cloud spends it
# only on the *surface*: $N$ points, $3N$ numbers. PointSetGen [Fan2017] was the first
# network to output a point set directly: an encoder turns the input (an image, or a point
# cloud for an auto-encoder) into a latent code, and a decoder turns the code into
# $N$ points.
#
# The hard part is the **loss**. The network outputs points in some order; the ground truth
# is a set, with no order. The loss must not care about the order:
# $L(\{x_{\sigma(i)}\}, Y) = L(X, Y)$ for every permutation $\sigma$. Two such distances are
# used everywhere since that paper:
#
# - the **Chamfer distance** (CD): every point goes to its *nearest neighbour* in the other set,
#   in both directions: $O(N^2)$ distances (or $O(N \log N)$ with a KD-tree);
# - the **Earth Mover's distance** (EMD): the best *one-to-one matching* between the two
#   sets, an assignment problem: $O(N^3)$ with the Hungarian algorithm.
#
# This notebook measures what each distance costs, what each one *wants* (the mean-shape
# experiment of Fan et al.), trains the same PointSetGen model with each, and ends on what
# a point set cannot do, the starting point of chapter 06.
#
# Everything below calls `course_lib` (`course_lib.models.psg`, `course_lib.ops`), and the
# experiments live in `course_lib.experiments.point_sets`, so that the benchmark
# (`benchmarks/point_sets.py`) measures exactly what you see here.

# %%
import numpy as np
import plotly.graph_objects as go
import torch

from course_lib import config, ops, viz
from course_lib.experiments import point_sets as P
from course_lib.models import PointSetGenDecoder

print(config.describe())

# %% [markdown]
# Every size comes from the `ch05.*` block of `course_lib.config`. In the `ci` profile
# everything is tiny and barely trained: only the code path is shown, and the numbers
# quoted in the text come from the laptop-profile benchmark
# (`benchmarks/results/point_sets-laptop-cpu2.md`).

# %%
SZ = config.sizes(prefix="ch05.")
print({k: SZ[k] for k in ("n_points", "n_fc", "map_size", "epochs", "emd_method", "mean_points")})

# %% [markdown]
# ## 1. Two distances between point sets
#
# For $X = \{x_i\}_{i=1}^N$ and $Y = \{y_j\}_{j=1}^M$, the course's Chamfer distance is
#
# $$
# \mathrm{CD}(X, Y) = \frac{1}{N}\sum_{i}\min_{j}\lVert x_i - y_j\rVert^2
#   + \frac{1}{M}\sum_{j}\min_{i}\lVert x_i - y_j\rVert^2 ,
# $$
#
# and, for two sets of the same size $N$, the Earth Mover's distance is the cost of the best
# bijection $\phi: X \to Y$,
#
# $$
# \mathrm{EMD}(X, Y) = \min_{\phi \text{ bijective}} \frac{1}{N}\sum_{i} \lVert x_i - \phi(x_i)\rVert .
# $$
#
# (Papers square the distances or not, sum or average the two Chamfer directions, and scale
# by $10^3$ or $10^4$: `course_lib.metrics` names each convention. Here the Chamfer distance
# uses squared distances, the EMD plain ones, as in PointFlow and ShapeGF.)
#
# The figure draws what each distance pairs up: nearest neighbours (CD, both directions:
# one point may be chosen by many, another by none) and the optimal matching (EMD: every
# point exactly once).

# %%
gen = torch.Generator().manual_seed(0)
t = torch.rand(12, generator=gen) * 2 * torch.pi
X = torch.stack([0.9 * t.cos(), 0.9 * t.sin(), torch.zeros(12)], -1)
Y = torch.cat([torch.rand(9, 2, generator=gen) * 0.8 - 0.4 + torch.tensor([0.3, 0.0]), torch.zeros(9, 1)], -1)
Y = torch.cat([Y, X[:3] * 1.05])  # 12 points: a blob and three near the ring

_, (nn_xy, nn_yx) = ops.chamfer_distance(X, Y, return_indices=True)
match = ops.emd(X, Y, method="exact").assignment


def pairing_figure(pairs, title):
    fig = go.Figure()
    for i, j in pairs:
        fig.add_trace(go.Scatter(x=[X[i, 0], Y[j, 0]], y=[X[i, 1], Y[j, 1]], mode="lines",
                                 line=dict(color="gray", width=1), showlegend=False))
    fig.add_trace(go.Scatter(x=X[:, 0], y=X[:, 1], mode="markers", name="X", marker=dict(size=9)))
    fig.add_trace(go.Scatter(x=Y[:, 0], y=Y[:, 1], mode="markers", name="Y", marker=dict(size=9)))
    fig.update_layout(title=title, yaxis=dict(scaleanchor="x"), height=380)
    return fig


cd_pairs = [(i, int(nn_xy[i])) for i in range(12)] + [(int(nn_yx[j]), j) for j in range(12)]
viz.subplots([pairing_figure(cd_pairs, f"Chamfer: nearest neighbours (CD = {float(ops.chamfer_distance(X, Y)):.3f})"),
              pairing_figure([(i, int(match[i])) for i in range(12)],
                             f"EMD: one-to-one matching (EMD = {float(ops.emd(X, Y).cost):.3f})")], cols=2)

# %% [markdown]
# Three points of $X$ have a near twin in $Y$; the other nine points of $X$ are far from
# the blob. For the Chamfer distance, a blob point only needs *some* point of $X$ nearby,
# and the points of the ring only need some point of $Y$: many lines land on the same
# few points. The EMD has to send every point of the ring to its own point of the blob:
# it sees that most of the mass is in the wrong place.
#
# ## 2. What each distance costs
#
# - **Chamfer**: for each point, its nearest neighbour in the other set. Brute force
#   computes all $NM$ distances ($O(N^2)$ time; `course_lib.ops` never holds the whole
#   matrix); a KD-tree does it in $O(N \log N)$ on the CPU.
# - **EMD, exactly**: an assignment problem. The Hungarian algorithm [Kuhn1955] solves it
#   in $O(N^3)$; the linear-programming (simplex) route has the same order in practice.
#   `ops.emd(method="exact")` calls SciPy's `linear_sum_assignment`, a shortest augmenting
#   path solver of the Jonker–Volgenant family (also $O(N^3)$ in the worst case, much faster
#   than the textbook Hungarian method in practice).
# - **EMD, approximately**:
#   - **Sinkhorn** [Cuturi2013] adds an entropy term $-\varepsilon H(P)$ to the transport
#     problem; the optimal plan is then $P = \mathrm{diag}(u) K \mathrm{diag}(v)$ with
#     $K = e^{-C/\varepsilon}$, and $u, v$ are found by alternately rescaling rows and
#     columns. Each iteration is $O(N^2)$ and parallel; the number of iterations grows as
#     $\varepsilon$ shrinks, and the result overestimates the EMD by an amount that goes to
#     0 with $\varepsilon$. For a fixed additive accuracy the total time is near-linear *in the
#     size of the input* [Altschuler2017], and the input is the $N^2$ entries of the cost
#     matrix: about $N^2$ up to logarithmic factors, not about $N$.
#     The plan is fractional, not a matching.
#   - **Auction** [Bertsekas1988]: points "bid" for targets, prices rise, and the final
#     matching costs at most $N\varepsilon$ more than the optimum: an *additive* guarantee
#     (not a relative $(1+\epsilon)$ factor), so $\varepsilon$ must be small against the
#     typical matched distance;
#     $\varepsilon$-scaling keeps it fast; the worst case is still about $O(N^3)$.
#
# We time each as $N$ grows, on two independent samplings of the unit sphere, with the
# peak memory (resident set size above the start) and the relative error of the
# approximations against the exact EMD.

# %%
rows = P.time_distances(SZ["complexity_ns"], time_limit=10.0)
ns = list(SZ["complexity_ns"])
methods = ["chamfer", "exact", "sinkhorn", "auction"]
sec = {m: [r["seconds"] for r in rows if r["method"] == m] for m in methods}
viz.plot_curves(ns, sec, title="time of one distance between two N-point sets", xlabel="N",
                ylabel="seconds", log_x=True, log_y=True)

# %%
print(f"{'N':>6} {'method':>9} {'seconds':>9} {'peak MB':>8} {'value':>8} {'rel. error':>10}")
for r in rows:
    print(f"{r['N']:>6} {r['method']:>9} {r['seconds']:>9.4f} {r['memory_MB']:>8.1f} {r['value']:>8.4f} "
          f"{r['rel_err']:>10.2e}")

# %% [markdown]
# Read the slopes on the log-log plot: doubling $N$ multiplies the time by about $2^k$ for a
# method of order $N^k$. What we measured on the laptop benchmark (2 CPU cores, see
# `benchmarks/results/point_sets_complexity-laptop-cpu2.md`): the Chamfer distance (KD-tree)
# took 0.5 to 6 milliseconds from 64 to 2,048 points, with well under 1 MB of extra memory.
# The exact EMD went from 0.6 ms at 64 points to 0.49 s at 2,048 (each doubling of $N$
# multiplied its time by 3 to 6), and its peak memory followed the $N \times N$ float64 cost
# matrix (64 MB at 2,048). The auction (a compiled loop on the CPU) matched it at small $N$
# and was 3.5x faster at 2,048 (0.14 s), with an error below 2e-4 relative (certified below
# `rel_tol`). Sinkhorn was 15 to 65 times slower than exact on the CPU (it pays off on a
# GPU, where its iterations run in parallel over a batch); its value is an upper bound (its
# plan is rounded to an exactly feasible one), 0.25 % above the exact EMD at 64 points and
# 0.8 % at 2,048 with the library's default settings.
#
# This is why the Chamfer distance is the default loss, and why our EMD-trained model
# below uses small sets ($N$ = `ch05.n_points`) and an exact or certified solver (the
# benchmark of this chapter trained it with the exact one).
#
# ## 3. The mean shape carries the characteristics of the distance
#
# Fan et al. asked: if the target is *uncertain*, what does a network trained with each
# distance predict? Take a distribution $\mathcal{S}$ of point clouds (circles of random
# radius), and look for the one point set that is closest to all of them on average:
#
# $$
# \bar{x} = \arg\min_{x} \; \mathbb{E}_{s \sim \mathcal{S}} \big[ d(x, s) \big].
# $$
#
# A network facing an ambiguous input (a view that does not say how deep the object is)
# is pushed towards this mean. No network is needed to find it: we optimise the $N$
# coordinates of $x$ directly with Adam, drawing fresh circles at every step. Both
# distances use squared point-to-point costs here, so that they differ only in *how* points
# are paired (nearest neighbours or a matching).

# %%
mean_kw = dict(steps=SZ["mean_steps"], batch=SZ["mean_batch"], seed=0)
means = {}
for kind in ("circle", "sphere"):
    for dist in ("chamfer", "emd"):
        means[kind, dist] = P.mean_shape(dist, SZ["mean_points"], kind=kind, radius="two", **mean_kw)
        prof = P.radial_profile(means[kind, dist]["points"], kind)
        print(f"{kind:>6} {dist:>7}: radius of the mean's points {prof['mean']:.3f} ± {prof['std']:.3f} "
              f"(10% / 50% / 90%: {prof['q10']:.2f} / {prof['q50']:.2f} / {prof['q90']:.2f}), "
              f"{means[kind, dist]['seconds']:.1f} s")

# %%
gen = torch.Generator().manual_seed(1)
samples = P.sample_rings(P.sample_radii("two", 6, gen), SZ["mean_points"], "circle", gen)
figs = [viz.plot_points(samples.reshape(-1, 3), color="lightgray", title="input: circles of radius 0.3 or 1.0")]
for dist in ("chamfer", "emd"):
    figs.append(viz.plot_points(means["circle", dist]["points"], color="crimson", size=4,
                                title=f"{dist} mean"))
viz.subplots(figs, cols=3)

# %%
hist = {}
for dist in ("chamfer", "emd"):
    prof = P.radial_profile(means["circle", dist]["points"], "circle", bins=24, r_max=1.2)
    hist[dist] = prof["hist"]
centers = 0.5 * (prof["edges"][1:] + prof["edges"][:-1])
viz.plot_curves(centers, hist, title="radii of the mean's points (circles of radius 0.3 or 1.0)",
                xlabel="radius", ylabel="number of points")

# %% [markdown]
# **What we observe** (laptop profile, 128 points, 400 steps; `benchmarks/results/point_sets-laptop-cpu2.md`):
#
# - The **EMD mean is one circle**: every point ends at the same radius (spread below
#   0.01), close to the mean radius 0.65. With a one-to-one matching, each point is pulled
#   towards the average of the points it is matched to, and those come from both circles.
# - The **Chamfer mean splits** into concentric rings: most points sit on a ring near the
#   middle radius, and a few form rings near the two extreme radii (in a longer run of ours,
#   at 0.33 and 0.94 for circles of radius 0.3 and 1.0). Each extra ring lowers the
#   target-to-prediction term for the circles near it, at the price of a few points far
#   from the other circles. The radial spread (std 0.08 to 0.15) is more than 30 times that
#   of the EMD mean.
# - On spheres the picture is the same in 3D; the EMD mean's radius is a little below the
#   mean radius (at finite $N$ the matched target points are spread over directions, and
#   their average is shorter).
#
# So a Chamfer-trained network hedges by *scattering* points over the plausible shapes,
# while an EMD-trained network predicts a single, *averaged* shape with evenly spread
# points. Try other radius laws and sizes with the widget (each redraw optimises both means
# again, a few seconds).

# %%
def mean_shapes_view(radius_law="two", n_points=64, low=0.3, high=1.0):
    figs = []
    for dist in ("chamfer", "emd"):
        out = P.mean_shape(dist, int(n_points), kind="circle", radius=radius_law,
                           radius_kwargs=dict(low=low, high=max(high, low)), steps=SZ["widget_steps"],
                           batch=SZ["mean_batch"], seed=0)
        prof = P.radial_profile(out["points"], "circle")
        figs.append(viz.plot_points(out["points"], color="crimson", size=4,
                                    title=f"{dist}: r = {prof['mean']:.2f} ± {prof['std']:.2f}"))
    return viz.subplots(figs, cols=2, height=380)


viz.interact(mean_shapes_view, radius_law=["two", "uniform", "normal"], n_points=(16, 256, 16, 64),
             low=(0.1, 1.0, 0.05, 0.3), high=(0.1, 1.0, 0.05, 1.0))

# %% [markdown]
# ## 4. PointSetGen
#
# The decoder of [Fan2017] ends in **two branches**, concatenated:
#
# - a **fully connected branch**: an MLP from the code to $3 n_{fc}$ numbers, i.e. $n_{fc}$
#   free points (256 in the paper). Every point has its own output neurons: good for thin,
#   irregular parts;
# - a **deconvolution branch**: the code becomes a small 2D feature map, transposed
#   convolutions upsample it to an $H \times W$ map with 3 channels, and every pixel is a
#   point (32 × 24 = 768 points in the paper). Neighbouring pixels share filters and end up
#   close together: good for large smooth surfaces.
#
# In the paper the deconvolution branch starts from the image encoder's feature maps (an
# hourglass); ours starts both branches from one latent vector, so that the same decoder
# serves an auto-encoder (PointNet encoder, chapter 02) and single-view reconstruction
# (ResNet encoder). Sizes here: `ch05.n_fc` points from the FC branch and a
# `ch05.map_size` map.

# %%
model = P.build_autoencoder()
dec = model.decoder
n_par = sum(p.numel() for p in model.parameters())
print(f"{model.n_points} points = {dec.n_fc} (FC branch) + {dec.map_size[0]} x {dec.map_size[1]} (map branch); "
      f"{n_par / 1e6:.2f} M parameters")
print(dec)

# %% [markdown]
# ## 5. Training with Chamfer, training with EMD
#
# Same model, same data (ShapeNet-lite, every category), same seed and schedule; only the
# loss changes. Each batch gives the encoder $N$ surface samples of a shape and compares the
# prediction with $N$ *other* samples of the same surface, as at test time.
# `train_or_load` loads the checkpoints when they exist (the benchmark writes them), else
# trains (laptop profile: a few minutes each on 2 cores).

# %%
train_pts = P.point_clouds("train", None, SZ["categories"], SZ["train_per_category"])["points"]
test = P.point_clouds("test", None, SZ["categories"], SZ["test_per_category"])
gt, oracle = P.held_out(test["points"], SZ["n_points"], seed=123)
models, hists = {}, {}
for kind in ("chamfer", "emd"):
    models[kind], hists[kind] = P.train_autoencoder(kind, train_points=train_pts)

# %% [markdown]
# The table evaluates both on held-out shapes, in one convention (printed below the
# table). The **oracle** row is what a perfect sampler of the true surface would score: $N$
# independent samples of the same surface. No $N$-point prediction is expected to beat it
# on average.

# %%
preds = {k: P.predict(m, gt) for k, m in models.items()}
rows = {"oracle": P.evaluate_sets(oracle, gt)}
rows.update({f"trained with {k}": P.evaluate_sets(p, gt) for k, p in preds.items()})
table = P.results_table(rows)
print(P.format_table(table))
print()
print(P.CONVENTION)

# %% [markdown]
# **What we measured** (laptop profile, 100 held-out shapes, 256 points; exact numbers in
# the benchmark file): both models are within 1.4 times the oracle's Chamfer distance. The
# Chamfer-trained model has the slightly lower Chamfer distance (17.6 against 18.6, x1e3)
# and F-score; the EMD-trained model has a far lower EMD (13.5 against 20.5, x1e2: the
# oracle's level, 13.3) and **more uniform** points: NN-CV (the coefficient of variation of
# nearest-neighbour distances) 0.37 against 0.47. Both are below the 0.51 of i.i.d. surface
# samples: a trained set is more regular than a random sample. Colour each predicted point
# by its distance to its nearest neighbour to see where the Chamfer model leaves gaps and
# packs points together.

# %%
i = 0
d_nn = {k: P.nn_distances(p[i]) for k, p in preds.items()}
vmax = float(max(d.max() for d in d_nn.values()))
figs = [viz.plot_points(gt[i], color="gray", size=3, title=f"ground truth ({test['category'][i]})")]
for k in preds:
    cv = float(P.nn_uniformity(preds[k][i]))
    figs.append(viz.plot_points(preds[k][i], color=d_nn[k].clamp(max=vmax), size=3,
                                title=f"{k}: NN-CV {cv:.2f}"))
viz.subplots(figs, cols=3)

# %% [markdown]
# Where do the two branches put their points? The FC points (red) and the map points (blue)
# of the same predictions:

# %%
branch = dec.branch
colors = np.where(branch.numpy() == 0, "crimson", "royalblue")
figs = []
for k in preds:
    fig = viz.plot_points(preds[k][i][branch == 1], color="royalblue", size=3, title=f"{k}: FC (red), map (blue)")
    viz.plot_points(preds[k][i][branch == 0], color="crimson", size=4, fig=fig)
    figs.append(fig)
viz.subplots(figs, cols=2)
for k, p in preds.items():
    print(f"{k}: NN-CV of the FC points {float(P.nn_uniformity(p[:, branch == 0]).mean()):.2f}, "
          f"of the map points {float(P.nn_uniformity(p[:, branch == 1]).mean()):.2f}")

# %% [markdown]
# ## 6. Single-view reconstruction
#
# The same decoder behind a small ResNet (chapter 02) on one rendered RGB view is the setting
# of the paper: from one image, predict the whole point set. A view does not show the back
# of the object, so the target is uncertain, and the mean-shape experiment above predicts
# what the Chamfer loss does with that uncertainty. (A few categories, Chamfer loss, the
# `ch05.svr_*` sizes.) On the laptop benchmark (4 categories, 160 training views of 64 px),
# the held-out Chamfer distance was 20.4 (x1e3) against the oracle's 13.7: 1.5 times the
# floor, where the auto-encoder, which sees the points, reached 1.3 times.

# %%
svr_train = P.view_point_pairs("train")
svr_test = P.view_point_pairs("test")
svr, svr_hist = P.train_single_view(data=svr_train)
svr_pred = P.predict(svr, svr_test["rgb"])
svr_gt, _ = P.held_out(svr_test["points"], SZ["n_points"], seed=5)
svr_cd = P.evaluate_sets(svr_pred, svr_gt)["CD x1e3"]
print(f"single view: CD x1e3 on {len(svr_cd)} held-out views = {float(svr_cd.mean()):.2f}")
j = 0
viz.subplots([viz.plot_images(svr_test["rgb"][j], titles=["input view"]),
              viz.plot_points(svr_pred[j], color="crimson", size=3, title="predicted points"),
              viz.plot_points(svr_gt[j], color="gray", size=3, title="ground truth")], cols=3)

# %% [markdown]
# ## 7. The limits of PointSetGen
#
# 1. **A fixed number of points.** The last layer has $3N$ outputs (or an $H \times W$ map):
#    asking for more points means a new network and new training.
# 2. **No connectivity.** The output is a set: nothing says which points are neighbours on
#    the surface, so there is no mesh. The map branch has a 2D grid, but grid neighbours are
#    not surface neighbours: the edges of that grid are far longer than the spacing of the
#    points (measured below), they jump across the shape.
# 3. **Points are not on one surface.** The points are independent outputs; nothing makes
#    them lie on a common surface. Our shapes have exact signed distance functions, so we
#    can measure how far each predicted point is from the true surface.

# %%
H, W = dec.map_size
k = "chamfer"
grid = preds[k][:, dec.n_fc:].reshape(-1, H, W, 3)
edges = torch.cat([(grid[:, 1:] - grid[:, :-1]).norm(dim=-1).flatten(1),
                   (grid[:, :, 1:] - grid[:, :, :-1]).norm(dim=-1).flatten(1)], 1)
spacing = P.nn_distances(preds[k]).median(1).values
print(f"map-grid edges / nearest-neighbour spacing: median {float((edges.median(1).values / spacing).mean()):.1f}, "
      f"90th percentile {float((edges.quantile(0.9, dim=1) / spacing).mean()):.1f}")

from course_lib.data import make_shape  # noqa: E402

sdf_err = {name: [] for name in ("oracle", *preds)}
for s_i in range(min(10, gt.shape[0])):
    shape = make_shape(test["category"][s_i], test["seed"][s_i])
    sdf_err["oracle"].append(shape.sdf(oracle[s_i]).abs().mean())
    for name, p in preds.items():
        sdf_err[name].append(shape.sdf(p[s_i]).abs().mean())
for name, v in sdf_err.items():
    print(f"{name:>8}: mean distance of the points to the true surface {float(torch.stack(v).mean()):.4f}")

# %% [markdown]
# What we measured (laptop profile, all 100 test shapes): the map-grid edges are 6 to 8
# times longer than the nearest-neighbour spacing (median; 12 to 14 times at the 90th
# percentile), so the grid is no mesh of the surface. The oracle's points lie on the
# surface (mean |SDF| below 1e-8: they are projected onto it), while the predicted points
# are on average 0.04 away from it, about half their own spacing (0.08 to 0.09). Chapter 06 answers
# all three limits with one change: instead of predicting points, predict a *map* from a 2D
# square (or a sphere) to the surface. Sample the square as densely as you like (any number
# of points), keep the square's triangulation (connectivity), and every point is, by
# construction, on the same surface: the image of the square.
#
# ## Summary
#
# - A point-set decoder outputs $N$ points; its loss must be permutation invariant.
# - Chamfer: nearest neighbours, $O(N^2)$ (less with a KD-tree); EMD: a one-to-one matching,
#   $O(N^3)$ exactly (Hungarian), approximated by Sinkhorn (entropic, parallel) or an auction.
# - The mean shape of a distribution reveals the distance: the EMD mean is one averaged
#   shape, the Chamfer mean scatters its points over the plausible shapes.
# - PointSetGen merges an FC branch (free points) and an upconvolution branch (a map of
#   points). Trained with EMD its points are more uniform; trained with Chamfer it wins on
#   the Chamfer distance.
# - Its limits (fixed $N$, no connectivity, no surface) motivate chapter 06.
#
# ## Exercises to go further
#
# 1. Train with the *sum* CD + EMD. Where does it land in the table?
# 2. In the mean-shape widget, pick the `normal` law with a small spread. When do the two
#    means agree?
# 3. Replace the exact EMD loss by `ops.emd(method="sinkhorn", eps=...)` with a large `eps`.
#    How does the uniformity of the predictions change as `eps` grows?
# 4. Switch off one branch (`n_fc=0` or `map_size=(0, 0)`) and retrain: which categories
#    suffer most?
#
# **References.** [Fan2017] Fan, Su, Guibas, *A Point Set Generation Network for 3D Object
# Reconstruction from a Single Image*, CVPR 2017. [Kuhn1955] Kuhn, *The Hungarian method for
# the assignment problem*. [Cuturi2013] Cuturi, *Sinkhorn distances*, NeurIPS 2013.
# [Altschuler2017] Altschuler, Weed, Rigollet, *Near-linear time approximation algorithms
# for optimal transport via Sinkhorn iteration*, NeurIPS 2017. [Bertsekas1988] Bertsekas,
# *The auction algorithm*, Annals of OR 1988.
