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
import plotly.graph_objects as go
import torch

from course_lib import config, ops, results, viz
from course_lib.experiments import point_sets as P
from course_lib.experiments import retrieval as RET
from course_lib.experiments.common import format_table, predict, summarize

print(config.describe())

# %% [markdown]
# Every size comes from the `ch05.*` block of `course_lib.config`. In the `ci` profile
# everything is tiny and barely trained: only the code path is shown. The measured numbers
# of the text are read from the laptop-profile benchmark's results file
# (`benchmarks/point_sets.py` writes `benchmarks/results/point_sets-laptop.json`), never typed
# in: where it has not been measured yet, the cell says so and prints the command.
#
# The same goes for every *comparison* (which of two losses reconstructs the shapes more closely,
# whether anything scores below the oracle):
# the benchmark stores each one as a claim record, paired over the held-out shapes (or over
# seeds), with its difference, standard error and verdict, and `results.say` prints it. Every
# choice behind those numbers (here: the epoch each training run keeps) was made on a
# validation split; the test shapes are read once, to report.

# %%
SZ = config.sizes(prefix="ch05.")
print({k: SZ[k] for k in ("n_points", "n_fc", "map_size", "epochs", "emd_method", "mean_points")})
MEASURED = results.show("point_sets", "laptop")  # None until the laptop benchmark has run


def measured(*keys, fmt="{:.3g}", source="point_sets"):
    """A number of the laptop benchmark's results file, formatted (or 'not measured yet')."""
    v = results.get(source, *keys, default=None)
    return "(not measured yet)" if v is None else fmt.format(v)

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
# method of order $N^k$. The cell below states what the laptop benchmark measured (2 CPU
# cores, `benchmarks/point_sets.py`), read from its results file, and the
# same summary of the live rows above.

# %%
def complexity_report(summary, label):
    m = summary["methods"]
    lines = [f"{label}:"]
    if "chamfer" in m:
        c = m["chamfer"]
        lines.append(f"- Chamfer (KD-tree): {1e3 * c['seconds_min_n']:.2g} ms at N = {c['n_min']}, "
                     f"{1e3 * c['seconds_max_n']:.2g} ms at N = {c['n_max']}, peak extra memory {c['peak_MB']:.2g} MiB")
    if "exact" in m:
        e = m["exact"]
        lines.append(f"- exact EMD: {e['seconds_min_n']:.2g} s at N = {e['n_min']}, {e['seconds_max_n']:.2g} s at "
                     f"N = {e['n_max']}; each doubling of N multiplied its time by "
                     + ", ".join(f"{g:.1f}" for g in e["growth"])
                     + f"; peak memory {e['peak_MB']:.3g} MiB at N = {e['n_max']} (an N x N float64 cost matrix is "
                     f"{8 * e['n_max'] ** 2 / 2 ** 20:.3g} MiB)")
    for key, name, ratio in (("auction_speedup", "auction", "exact time / auction time"),
                             ("sinkhorn_slowdown", "sinkhorn", "sinkhorn time / exact time")):
        if summary.get(key) and name in m:
            r = [v for _, v in summary[key]]
            lines.append(f"- {name}: {ratio} from {min(r):.2g} to {max(r):.2g} over the N measured "
                         f"({summary[key][-1][1]:.2g} at N = {summary[key][-1][0]}); value / exact EMD - 1 = "
                         f"{m[name]['rel_err_min_n']:.1e} at N = {m[name]['n_min']}, "
                         f"{m[name]['rel_err_max_n']:.1e} at N = {m[name]['n_max']}")
    print("\n".join(lines))


measured_complexity = results.get("point_sets", "complexity")  # the full benchmark run measures it too
if measured_complexity is not None:
    complexity_report(measured_complexity["summary"], "laptop benchmark (benchmarks/results/point_sets-laptop.json)")
else:
    print("laptop benchmark: not measured yet; `COURSE_PROFILE=laptop python benchmarks/point_sets.py` measures it")
complexity_report(P.complexity_summary(rows), f"this notebook ({config.get_profile()} profile, live)")

# %% [markdown]
# The auction is a compiled loop on the CPU; its matching is certified within `rel_tol` of the
# optimum. Sinkhorn's value is an upper bound (its plan is rounded to an exactly feasible
# one); each of its iterations is a dense matrix product, the kind of work a GPU runs in
# parallel over a batch, which a 2-core CPU cannot exploit.
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
# coordinates of $x$ directly with Adam, drawing fresh circles at every step.
#
# The answer depends on the *ground cost* as much as on the pairing. The Chamfer distance is
# squared. The EMD as Fan et al. define it, and as we train with it in section 5, is
# unsquared: a 1-Wasserstein distance. We also run the EMD with squared costs (a
# 2-Wasserstein distance), which pairs points like the EMD but pays like the Chamfer
# distance. The three means tell different stories.

# %%
mean_kw = dict(steps=SZ["mean_steps"], batch=SZ["mean_batch"], seed=0)
means = {}
VARIANTS = {"chamfer": ("chamfer", None), "emd": ("emd", False), "emd squared": ("emd", True)}
for kind in ("circle", "sphere"):
    for name, (dist, squared) in VARIANTS.items():
        means[kind, name] = P.mean_shape(dist, SZ["mean_points"], kind=kind, radius="two", squared=squared,
                                         **mean_kw)
        prof = P.radial_profile(means[kind, name]["points"], kind)
        print(f"{kind:>6} {name:>11}: radius of the mean's points {prof['mean']:.3f} ± {prof['std']:.3f} "
              f"(10% / 50% / 90%: {prof['q10']:.2f} / {prof['q50']:.2f} / {prof['q90']:.2f}), "
              f"{means[kind, name]['seconds']:.1f} s")

# %%
gen = torch.Generator().manual_seed(1)
samples = P.sample_rings(P.sample_radii("two", 6, gen), SZ["mean_points"], "circle", gen)
figs = [viz.plot_points(samples.reshape(-1, 3), color="lightgray", title="input: circles of radius 0.3 or 1.0")]
for name in VARIANTS:
    figs.append(viz.plot_points(means["circle", name]["points"], color="crimson", size=4,
                                title=f"{name} mean"))
viz.subplots(figs, cols=4)

# %%
hist = {}
for name in VARIANTS:
    prof = P.radial_profile(means["circle", name]["points"], "circle", bins=24, r_max=1.2)
    hist[name] = prof["hist"]
centers = 0.5 * (prof["edges"][1:] + prof["edges"][:-1])
viz.plot_curves(centers, hist, title="radii of the mean's points (circles of radius 0.3 or 1.0)",
                xlabel="radius", ylabel="number of points")

# %% [markdown]
# **What to look for** (the table below is the laptop benchmark's, read from its results file,
# and the claims after it are paired over seeds):
#
# - In theory, with **squared costs, the EMD mean is one circle at the average radius** of the
#   two circles ($0.65$): with a one-to-one matching and a squared cost, each point is pulled to
#   the *average* of the points it is matched to, and those come from both circles.
# - With the **unsquared EMD** (the one we train with) the mean is still *one* circle, but not
#   at the average radius: for radii $0.3$ or $1.0$ with equal probability, the expected
#   cost of a circle of radius $r$ between them is $\tfrac12(r - 0.3) + \tfrac12(1 - r)$, the same
#   for every $r$, so nothing pulls the points to $0.65$; they stop wherever they first reach
#   the flat region. The "averaged shape" of the usual story is a property of the squared
#   cost; what both EMDs share is that the points move *together*.
# - The **Chamfer mean may split** into concentric rings: most points on a ring near the
#   middle radius, and a few on rings near the two extreme radii. Each extra ring lowers the
#   target-to-prediction term for the circles near it, at the price of a few points far
#   from the other circles. Whether its radial spread exceeds that of each EMD mean is a claim
#   below.
# - Check whether spheres tell the same story in 3D. At finite $N$ the matched target points
#   are spread over directions, so their average is shorter than the radius: in expectation the
#   squared-EMD mean sits a little inside $0.65$.

# %%
if MEASURED is not None and "mean_shape" in MEASURED.data:
    ms = MEASURED.data["mean_shape"]
    print(f"laptop benchmark: {ms['n_points']} points, {ms['steps']} steps, {ms['batch']} rings per step")
    print(f"{'ring':>7} {'radius law':>10} {'distance':>12} {'mean r':>7} {'std r':>6} {'q10':>5} {'q50':>5} {'q90':>5}")
    for r in ms["rows"]:
        label = r["distance"] + (" squared" if r["distance"] == "emd" and r.get("squared") else "")
        print(f"{r['ring']:>7} {r['radius_law']:>10} {label:>12} {r['mean']:7.3f} {r['std']:6.3f} "
              f"{r['q10']:5.2f} {r['q50']:5.2f} {r['q90']:5.2f}")
print()
for ring in ("circle", "sphere"):  # radius 0.3 or 1.0, paired over the benchmark's seeds
    for cid in ("chamfer_vs_emd_spread", "chamfer_vs_emd_squared_spread", "squared_vs_unsquared_radius"):
        results.say("point_sets", f"mean_{ring}_{cid}")

# %% [markdown]
# Fan et al. (2017) draw the lesson for networks: facing an ambiguous input, a Chamfer-trained
# network hedges by *scattering* points over the plausible shapes, while an EMD-trained network
# keeps its points together on a single shape; the claims above say how far our means carry
# that lesson, and the theory says that single shape is the *average* shape only when the cost
# is squared. Try other radius laws, spreads and sizes with the widget (each redraw optimises
# the three means again, a few seconds).

# %%
def mean_shapes_view(radius_law="two", n_points=64, low=0.3, high=1.0, sigma=0.15):
    figs = []
    for name, (dist, squared) in VARIANTS.items():
        out = P.mean_shape(dist, int(n_points), kind="circle", radius=radius_law, squared=squared,
                           radius_kwargs=dict(low=low, high=max(high, low), sigma=sigma), steps=SZ["widget_steps"],
                           batch=SZ["mean_batch"], seed=0)
        prof = P.radial_profile(out["points"], "circle")
        figs.append(viz.plot_points(out["points"], color="crimson", size=4,
                                    title=f"{name}: r = {prof['mean']:.2f} ± {prof['std']:.2f}"))
    return viz.subplots(figs, cols=3, height=380)


viz.interact(mean_shapes_view, radius_law=["two", "uniform", "normal"], n_points=(16, 256, 16, 64),
             low=(0.1, 1.0, 0.05, 0.3), high=(0.1, 1.0, 0.05, 1.0), sigma=(0.01, 0.3, 0.01, 0.15))

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
# Same model, same data (ShapeNet-lite, every category), same seed, schedule and number of
# optimiser steps; only the loss changes. Each batch gives the encoder $N$ surface samples of a
# shape and compares the prediction with $N$ *other* samples of the same surface, as at test
# time. After every epoch the run is scored on validation shapes (`P.val_data`) with its own
# loss, and it keeps its best epoch there: the one choice the training makes, never on the test
# shapes. `train_or_load` loads the checkpoints when they exist (the benchmark writes them),
# else trains (laptop profile: a minute or two each on 2 cores).

# %% [markdown]
# **On your own data.** Set `COURSE_DATASET=modelnet` (or `shapenetcore`) and `COURSE_MODELNET_DIR`
# (`COURSE_SHAPENET_DIR`) before starting Jupyter, or pass `dataset="modelnet", root=...` to `P.train_data`,
# `P.val_data` and `P.test_data`: the auto-encoders then train on real meshes' samplings under checkpoints named
# after the dataset, and the distance to the surface is the exact distance to the repaired mesh;
# `python benchmarks/point_sets.py --dataset modelnet --root DIR` runs the benchmark.

# %%
train = P.train_data()  # input `points` and an independent sampling `target_points` of each surface
val = P.val_data()      # validation shapes: each run keeps its best epoch here
models, hists = {}, {}
for kind in ("chamfer", "emd"):
    models[kind], hists[kind] = P.train_autoencoder(kind, data=train, val=val)
    print(f"{kind}: kept epoch {hists[kind].best_epoch + 1} of {hists[kind].epochs_run} "
          f"(lowest {hists[kind].monitor} on {len(val['seed'])} validation shapes)")
test = P.test_data()    # held-out shapes, read after training: input, ground truth and oracle
gt, oracle = test["target_points"], test["oracle_points"]

# %% [markdown]
# The table evaluates both on held-out shapes, in one convention (printed below the
# table). The encoder sees one sampling of each test surface (`test["points"]`); every metric
# compares the prediction with an *independent* sampling (`test["target_points"]`), so a model
# cannot score well by copying its input. The **oracle** row scores a third independent
# sampling of the true surface against the same ground truth.
#
# The oracle is a **reference, not a floor**. Its points lie exactly on the surface, but they
# are i.i.d.: they clump in places and leave gaps in others, and both the Chamfer distance and
# the EMD charge for that. The row "even" is a farthest-point sample of a dense sampling of the
# same true surface (`P.even_reference`): points on the surface, spread *evenly*. The claims
# printed after the measured table say whether it scores below the oracle on CD, EMD and
# F-score, paired over the test shapes. Where it does, a trained decoder that spreads its points
# evenly can score below the oracle without being a perfect model: compare models with each
# other at equal sampling, and read the oracle as the level of an i.i.d. sample.

# %%
preds = {k: predict(m, test["points"]) for k, m in models.items()}
even = P.even_reference("test", SZ["n_points"])
rows = {"oracle (i.i.d. sampling)": P.evaluate_sets(oracle, gt), "even (farthest-point sample)": P.evaluate_sets(even, gt)}
rows.update({f"trained with {k}": P.evaluate_sets(p, gt) for k, p in preds.items()})
table = summarize(rows)
print(f"this notebook ({config.get_profile()} profile, live):")
print(format_table(table))
print()
print(P.CONVENTION)

# %% [markdown]
# **What the laptop benchmark measured** (read from its results file; same convention).
# Compare the two losses on each metric: which model wins on its own loss, which one has the
# more uniform points (lower NN-CV), and where the i.i.d. oracle and the even sample sit.

# %%
def print_measured_table(section, names):
    if MEASURED is None or section not in MEASURED.data:
        print("laptop benchmark: not measured yet: `COURSE_PROFILE=laptop python benchmarks/point_sets.py`")
        return None
    rows_m = MEASURED.data[section]["rows"]
    table_m = [{"model": names.get(k, k), **{m: tuple(v) for m, v in r.items()}} for k, r in rows_m.items()]
    print(f"laptop benchmark ({MEASURED.data[section].get('n_test', '?')} held-out shapes):")
    print(format_table(table_m))
    return rows_m


ae_rows = print_measured_table("autoencoding", {"oracle": "oracle (i.i.d. sampling)", "even": "even (farthest-point)",
                                                "chamfer": "trained with chamfer", "emd": "trained with emd"})
if ae_rows:
    cd_o = ae_rows["oracle"]["CD x1e3"][0]
    for k in ("chamfer", "emd"):
        print(f"{k}: CD / oracle CD = {ae_rows[k]['CD x1e3'][0] / cd_o:.2f}")
    for k, b in (MEASURED.data["autoencoding"].get("budgets") or {}).items():
        if b.get("steps") is not None:
            print(f"budget of {k}: {b['steps']} steps, {b['examples']} training shapes seen, {b['seconds']:.0f} s, "
                  f"{b['params']} parameters, kept epoch {b.get('best_epoch')} (chosen on val)")

# %% [markdown]
# The comparisons, each paired over the test shapes (difference ± standard error; "not
# separated" when the difference is within two standard errors):

# %%
for cid in ("chamfer_vs_emd_cd", "emd_vs_chamfer_emd", "chamfer_vs_emd_fscore", "emd_vs_chamfer_uniformity",
            "even_vs_oracle_cd", "even_vs_oracle_emd", "even_vs_oracle_fscore"):
    results.say("point_sets", cid)

# %% [markdown]
# **Does the network do more than retrieve?** Tatarchenko et al. (CVPR 2019) found that
# single-view reconstruction networks on ShapeNet score about as well as returning the nearest
# training shape. `benchmarks/retrieval.py` puts that baseline beside this chapter's models, on the
# same test shapes and metrics: the training shape whose code under the Chamfer-trained PointSetGen's encoder is nearest to the code of
# the test input (a method any trained encoder gives you), and the training shape nearest to the
# test *target* (an oracle that looks at the answer: an upper bound of retrieval). Predict before
# you run the cell: is the network ahead of the retrieval it could have done with its own encoder?

# %%
RET.show_chapter("05")

# %% [markdown]
# Colour each predicted point by its distance to its nearest neighbour to see where each
# model leaves gaps and packs points together.

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
# of the same predictions. Compare the NN-CV of the two branches (printed below the figure):
# which branch does each loss make more uniform?

# %%
branch = dec.branch
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
# `ch05.svr_*` sizes.) The laptop benchmark's numbers follow the live ones.

# %%
svr_train = P.view_data("train")
svr_test = P.view_data("test")
svr, svr_hist = P.train_single_view(data=svr_train)
svr_pred = predict(svr, svr_test["rgb"])
svr_gt = svr_test["target_points"]
svr_cd = P.evaluate_sets(svr_pred, svr_gt)["CD x1e3"]
print(f"this notebook: single view, CD x1e3 on {len(svr_cd)} held-out views = {float(svr_cd.mean()):.2f}")
sv_rows = print_measured_table("single_view", {"single_view": "PointSetGen, single view"})
if sv_rows and ae_rows:
    print(f"single view: CD / oracle CD = {sv_rows['single_view']['CD x1e3'][0] / sv_rows['oracle']['CD x1e3'][0]:.2f}"
          f" (the auto-encoder, which sees the points: "
          f"{ae_rows['chamfer']['CD x1e3'][0] / ae_rows['oracle']['CD x1e3'][0]:.2f})")
results.say("point_sets", "autoencoder_vs_single_view_cd")  # paired over the test shapes both are scored on
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
#    the surface, so there is no mesh. The map branch has a 2D grid, but nothing makes grid
#    neighbours surface neighbours: below, the length of the grid's edges is measured against
#    the spacing of the points (an edge much longer than the spacing jumps across the shape).
# 3. **Points are not on one surface.** The points are independent outputs; nothing makes
#    them lie on a common surface. Our shapes have exact signed distance functions, so we
#    can measure how far each predicted point is from the true surface.

# %%
grid_stats = {k: P.map_grid_stats(p, dec.n_fc, dec.map_size) for k, p in preds.items()}
sdf_err = P.surface_distances(test, {"oracle": oracle, **preds}, max_shapes=10)
print(f"this notebook ({config.get_profile()} profile, live; |SDF| over the first 10 test shapes):")
for k, g in grid_stats.items():
    print(f"{k:>8}: map-grid edge / nearest-neighbour spacing: median {g['edge_over_spacing_median']:.1f}, "
          f"90th percentile {g['edge_over_spacing_p90']:.1f}; spacing {g['spacing_median']:.3f}")
for name, v in sdf_err.items():
    print(f"{name:>8}: mean distance of the points to the true surface {v:.2g}")
if MEASURED is not None and "limits" in MEASURED.data:
    lim = MEASURED.data["limits"]
    print(f"laptop benchmark (all {MEASURED.data['autoencoding']['n_test']} test shapes):")
    for k, g in lim["map_grid"].items():
        print(f"{k:>8}: edge / spacing median {g['edge_over_spacing_median']:.1f}, 90th percentile "
              f"{g['edge_over_spacing_p90']:.1f}; spacing {g['spacing_median']:.3f}; mean |SDF| {lim['sdf_mean'][k]:.2g}")
    print(f"  oracle: mean |SDF| {lim['sdf_mean']['oracle']:.2g}")
for kind in ("chamfer", "emd"):
    results.say("point_sets", f"map_edges_vs_spacing_{kind}")

# %% [markdown]
# Read the numbers above: compare each model's map-grid edges with its nearest-neighbour
# spacing (an edge many spacings long is no edge of a mesh of the surface), and its mean |SDF|
# with its spacing. The oracle's points lie on the surface by construction (they are projected
# onto it), so their |SDF| is at rounding level. Chapter 06 answers
# all three limits with one change: instead of predicting points, predict a *map* from a 2D
# square (or a sphere) to the surface. Sample the square as densely as you like (any number
# of points), keep the square's triangulation (connectivity), and every point is, by
# construction, on one continuous sheet: the image of the square (which may still fold onto
# itself).
#
# **The chapter's goals**, measured by the laptop benchmark (each trained model within a factor
# of the i.i.d. oracle on the metric it trains; each loss ahead on its own metric; the
# squared-EMD mean at the average radius):

# %%
results.show_goals("point_sets")

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
for name in ("point_sets",):
    results.show_families(name)
    print()

# %% [markdown]
# ## Summary
#
# - A point-set decoder outputs $N$ points; its loss must be permutation invariant.
# - Chamfer: nearest neighbours, $O(N^2)$ (less with a KD-tree); EMD: a one-to-one matching,
#   $O(N^3)$ exactly (Hungarian, or SciPy's Jonker–Volgenant solver), approximated by Sinkhorn
#   (entropic, parallel) or an auction.
# - The mean shape of a distribution reveals the distance. For the circles of section 3, the
#   squared-cost EMD mean is in theory one circle at the average radius (the 2-Wasserstein
#   barycentre of the circles); the unsquared EMD we train with also gives one circle, but at no
#   particular radius; the Chamfer mean may scatter its points over the plausible circles. Section 3
#   prints what the runs show, each claim paired over seeds.
# - PointSetGen merges an FC branch (free points) and an upconvolution branch (a map of
#   points). The same model trained with Chamfer or with EMD is judged on an independent
#   sampling of the held-out surfaces: compare the two on each metric and on uniformity.
# - The oracle (an i.i.d. sampling of the true surface) is a reference, not a floor: section 5
#   prints whether an evenly spread sample of the same surface scores below it.
# - Its limits (fixed $N$, no connectivity, no surface) motivate chapter 06.
#
# ## Exercises to go further
#
# 1. Train with the *sum* CD + EMD. Where does it land in the table?
# 2. In the mean-shape widget, pick the `normal` law with a small spread. When do the two
#    means agree?
# 3. Replace the exact EMD loss by `ops.emd(method="sinkhorn", eps=...)` with a large `eps`.
#    How does the uniformity of the predictions change as `eps` grows?
# 4. Switch off one branch (`P.build_autoencoder(n_fc=0)` or `map_size=(0, 0)`) and retrain
#    it with `train.fit` on `P.autoencoder_batches` (Chamfer loss): which categories suffer most?
#
# **References.** [Fan2017] Fan, Su, Guibas, *A Point Set Generation Network for 3D Object
# Reconstruction from a Single Image*, CVPR 2017. [Kuhn1955] Kuhn, *The Hungarian method for
# the assignment problem*. [Cuturi2013] Cuturi, *Sinkhorn distances*, NeurIPS 2013.
# [Altschuler2017] Altschuler, Weed, Rigollet, *Near-linear time approximation algorithms
# for optimal transport via Sinkhorn iteration*, NeurIPS 2017. [Bertsekas1988] Bertsekas,
# *The auction algorithm*, Annals of OR 1988.
