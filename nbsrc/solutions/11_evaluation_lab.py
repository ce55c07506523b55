# %% [markdown]
# # 11 · Lab: scoring generated shapes: MMD, COV and 1-NNA
#
# A generative model is not judged one shape at a time: it outputs a *set* of shapes, and the
# question is whether that set looks like a set of real shapes. The standard answer
# (Achlioptas et al. 2018; PointFlow, Yang et al. 2019; ShapeGF uses PointFlow's code) compares
# the $S$ generated clouds with $R$ **held-out** reference clouds through a distance between
# clouds $d$ (Chamfer or EMD), summarised by three numbers. You implement them, and the
# distance under the conventions papers use:
#
# 1. **MMD** (minimum matching distance): fidelity;
# 2. **COV** (coverage): diversity;
# 3. **1-NNA** (1-nearest-neighbour accuracy): both at once, a two-sample test;
# 4. the **Chamfer distance under a named convention** (squared or not, sum or mean, scale).
#
# Each exercise is followed by a self-check. Then you score three or four generators with your
# own code (a memorising one, a mode-collapsed one, ShapeGF's latent GAN, and fresh shapes of
# the same distribution) and see what each metric sees. Write batched code (no Python loops
# over points or clouds).
#
# Throughout, $M_{rs}$ is the `(R, S)` matrix $M_{rs}[r, s] = d(\text{ref}_r, \text{sample}_s)$:
# **rows are references, columns are samples**. $M_{rr}$ `(R, R)` and $M_{ss}$ `(S, S)` hold the
# distances within each set (zero on their diagonals).

# %%
import plotly.graph_objects as go
import torch

from course_lib import checks, config, metrics, results, viz
from course_lib import metrics_generation as mg
from course_lib.experiments import gradient_fields as ex

checks.stop_on_failure()  # a wrong answer stops "Run all" at its check, before the cells that use it

print(config.describe())
PROFILE = config.get_profile()
SZ = config.sizes(prefix="ch10.")
DEVICE = config.get_device()
# held-out references per category (the ci profile takes a few more than chapter 10's test set)
REFS_PER_CATEGORY = {"ci": 4, "laptop": int(SZ["test_per_category"]), "gpu": int(SZ["test_per_category"])}[PROFILE]
_ = torch.manual_seed(int(SZ["seed"]))

# %% [markdown]
# ## Exercise 1: MMD, the minimum matching distance
#
# For each **reference**, the distance to its closest sample; averaged over the references:
#
# $$\mathrm{MMD} = \frac1R\sum_{r=1}^R \min_{s} M_{rs}[r, s].$$
#
# It asks "is every real shape matched well by *some* generated shape?". Return one number
# (a float or a 0-dim tensor).
#
# *Hint:* `m.min(dim=...)` returns `(values, indices)`; which axis runs over the samples?

# %%
def mmd(m_rs: torch.Tensor) -> torch.Tensor:
    """Minimum matching distance.

    Args:
        m_rs: float tensor ``(R, S)`` (float32 or float64, possibly a non-contiguous view), ``m_rs[r, s]`` the
            distance from reference ``r`` to sample ``s``; ``R, S >= 1``. Leave it unchanged.

    Returns:
        one number: a 0-dim tensor (or a Python float), the mean over references of the closest-sample distance.
    """
    ### BEGIN SOLUTION
    return m_rs.min(dim=1).values.mean()
    ### END SOLUTION


# %%
checks.check_mmd(mmd)

# %% [markdown]
# ## Exercise 2: COV, coverage
#
# For each **sample**, find its nearest reference; COV is the fraction of references chosen
# at least once:
#
# $$\mathrm{COV} = \frac{\big|\{\operatorname{argmin}_r M_{rs}[r, s] : s = 1..S\}\big|}{R}.$$
#
# Two samples that pick the same reference count it once. Return a fraction in $[0, 1]$.
#
# *Hint:* `torch.unique(...)` and `.numel()`.

# %%
def coverage(m_rs: torch.Tensor) -> float:
    """Coverage: the fraction of references that are the nearest reference of at least one sample.

    Args:
        m_rs: float tensor ``(R, S)`` (float32 or float64), rows references, columns samples; ``R, S >= 1``.
            Leave it unchanged.

    Returns:
        a Python float (or a 0-dim tensor) in ``[0, 1]`` (a fraction, not a percentage).
    """
    ### BEGIN SOLUTION
    return m_rs.argmin(dim=0).unique().numel() / m_rs.shape[0]
    ### END SOLUTION


# %%
checks.check_coverage(coverage)

# %% [markdown]
# ## Exercise 3: 1-NNA, the leave-one-out two-sample test
#
# Put the $R + S$ clouds together, in the order references then samples, with the distance
# matrix
#
# $$D = \begin{pmatrix} M_{rr} & M_{rs} \\ M_{rs}^\top & M_{ss}\end{pmatrix}\quad (R+S)\times(R+S),$$
#
# label references 1 and samples 0, and predict each cloud's label by its nearest **other**
# cloud (leave-one-out: a cloud's distance to itself, the diagonal, is excluded; set it to
# $+\infty$). 1-NNA is the fraction of clouds predicted right (Lopez-Paz and Oquab 2017): 0.5
# when the two sets are indistinguishable, 1.0 when they are separable. Return the overall
# accuracy, one number.
#
# *Hints:* `torch.cat` twice builds $D$ (a new tensor: do not change the caller's matrices in
# place); `Tensor.fill_diagonal_`; index the label vector with `D.argmin(1)`.

# %%
def one_nna(m_rr: torch.Tensor, m_ss: torch.Tensor, m_rs: torch.Tensor) -> torch.Tensor:
    """The leave-one-out 1-nearest-neighbour accuracy over the R references and the S samples.

    Args:
        m_rr: float tensor ``(R, R)``, distances among the references (symmetric, zero diagonal).
        m_ss: float tensor ``(S, S)``, distances among the samples (symmetric, zero diagonal).
        m_rs: float tensor ``(R, S)``, reference-to-sample distances. All three of one dtype (float32 or float64),
            any scale (distances may be far larger than 1); ``R, S >= 1``. Leave them unchanged.

    Returns:
        one number: a 0-dim tensor (or a Python float) in ``[0, 1]``.
    """
    ### BEGIN SOLUTION
    r, s = m_rs.shape
    d = torch.cat([torch.cat([m_rr, m_rs], 1), torch.cat([m_rs.t(), m_ss], 1)], 0)
    d.fill_diagonal_(float("inf"))
    label = torch.cat([torch.ones(r), torch.zeros(s)]).to(d.device)
    return (label[d.argmin(1)] == label).float().mean()
    ### END SOLUTION


# %%
checks.check_one_nna(one_nna)

# %% [markdown]
# ## Exercise 4: the Chamfer distance under a named convention
#
# Papers do not agree on what "Chamfer distance" means (`course_lib.metrics`, `PRESETS`). With
# $d(X\to Y) = \frac1N\sum_{x\in X}\min_{y\in Y}\operatorname{dist}(x, y)$, where
# $\operatorname{dist}$ is $\lVert x-y\rVert^2$ (`squared=True`) or $\lVert x-y\rVert$
# (`squared=False`),
#
# $$\mathrm{CD}(X, Y) = \text{scale}\cdot\begin{cases}d(X\to Y) + d(Y\to X) & \text{directions} = \texttt{"sum"}\\
#   \tfrac12\big(d(X\to Y) + d(Y\to X)\big) & \text{directions} = \texttt{"mean"}\end{cases}$$
#
# for a batch `x (B, N, 3)`, `y (B, M, 3)`: return one value per cloud, shape `(B,)`. It must
# equal `metrics.chamfer(x, y, squared=..., directions=..., scale=..., reduction="none")`.
#
# *Hint:* `torch.cdist(x, y)` gives the `(B, N, M)` plain distances. Its default mode computes
# them through a matrix product, which loses about four digits in float32 for near points;
# `compute_mode="donot_use_mm_for_euclid_dist"` computes them exactly.

# %%
def chamfer_convention(x: torch.Tensor, y: torch.Tensor, squared: bool = True, directions: str = "sum",
                       scale: float = 1.0) -> torch.Tensor:
    """The Chamfer distance of each pair of clouds under a named convention.

    Args:
        x: float tensor ``(B, N, 3)`` (float32 or float64; clouds may lie far from the origin).
        y: float tensor ``(B, M, 3)``, same dtype as ``x``; cloud ``y[b]`` is compared with ``x[b]`` only.
        squared: a Python bool, ``True`` for ``||x - y||^2``, ``False`` for ``||x - y||``.
        directions: the string ``"sum"`` or ``"mean"`` (of the two directional means).
        scale: a Python float multiplying the result.

    Returns:
        tensor ``(B,)`` of ``x``'s dtype. Leave ``x`` and ``y`` unchanged.
    """
    ### BEGIN SOLUTION
    d = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")
    if squared:
        d = d.square()
    per = d.min(2).values.mean(1) + d.min(1).values.mean(1)
    if directions == "mean":
        per = per / 2
    elif directions != "sum":
        raise ValueError(f"directions must be 'sum' or 'mean', got {directions!r}")
    return scale * per
    ### END SOLUTION


# %%
checks.check_chamfer_convention(chamfer_convention)

# %% [markdown]
# ### One pair of clouds, four papers, four numbers
#
# The same two clouds scored under each preset's Chamfer convention, with your function. Two
# pairs: two independent samplings of one held-out shape (the oracle: what a perfect
# reconstruction scores) and two different held-out shapes of the same category.

# %%
train = ex.load_data("train")
test = ex.load_data("test", per_category=REFS_PER_CATEGORY)
n_pts = int(test["target_points"].shape[1])
print(f"{len(train['points'])} training shapes, {len(test['points'])} held-out references of {test['categories']}, "
      f"{n_pts} points each")
same_cat = [i for i in range(len(test["category"])) if test["category"][i] == test["category"][0]]
pairs = {"two samplings of one shape": (test["target_points"][:1], test["oracle_points"][:1]),
         "two shapes of one category": (test["target_points"][same_cat[0]][None],
                                        test["target_points"][same_cat[1]][None])}
PRESET_NAMES = ("atlasnet", "pointflow", "occnet", "deepsdf")

# %% [markdown]
# **Predict first.** Under which preset will the two pairs be furthest apart, as a *ratio* (wrong shape
# / right shape): a squared convention (AtlasNet, PointFlow) or OccNet's plain one? And by roughly how
# much do the four numbers of the *same* pair differ: a factor 2, 10 or 100?

# %% tags=["uses-exercise"]
by_preset = {}
for pname in PRESET_NAMES:
    conv = metrics.PRESETS[pname]
    # your function gives the formula; the preset's unit (OccNet: a tenth of the target's longest box edge) on top
    by_preset[pname] = {k: float(chamfer_convention(a, b, conv.cd_squared, conv.cd_directions, conv.cd_scale)[0]
                                 * conv.unit_factor(b)[0])
                        for k, (a, b) in pairs.items()}
    print(f"{pname:>9} (squared={conv.cd_squared!s:>5}, {conv.cd_directions}, x{conv.cd_scale:g}, unit {conv.cd_unit}): "
          + ", ".join(f"{k} {v:.4g}" for k, v in by_preset[pname].items())
          + f"; ratio {by_preset[pname]['two shapes of one category'] / by_preset[pname]['two samplings of one shape']:.3g}")
fig = go.Figure([go.Bar(name=k, x=list(PRESET_NAMES), y=[by_preset[p][k] for p in PRESET_NAMES]) for k in pairs])
fig.update_layout(barmode="group", yaxis={"type": "log", "title": {"text": "Chamfer distance (log scale)"}},
                  title="the same two pairs of clouds under four papers' conventions", height=380)

# %% [markdown]
# **Observe.** The four numbers of one pair span about two orders of magnitude: PointFlow's is 100 to
# 250 times OccNet's, depending on the number of points (about 130 with the `laptop` profile's 1,024,
# 250 with the `ci` profile's 256). The squared conventions (AtlasNet, PointFlow, DeepSDF) set the two
# pairs further apart, as a ratio, than OccNet's plain one: about 2.4 against 1.5 in the `laptop` run,
# 1.5 against 1.2 in the `ci` run, whose 256 points set even two samplings of one shape far apart (the
# gap between two samplings grows as the points thin out). Chapter 11's benchmark (laptop profile) scored
# the oracle pair (two samplings of each of 20 held-out shapes, 2,048 points) under every preset; its
# record is printed below. Your first column is one shape of a smaller set (fewer points raise every
# Chamfer distance), so compare the *factors* between presets, not the digits. Which two presets give the
# same number, and why?

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(len(by_preset) < len(PRESET_NAMES))
same = [by_preset[p]["two samplings of one shape"] for p in PRESET_NAMES]
ratio = {p: by_preset[p]["two shapes of one category"] / by_preset[p]["two samplings of one shape"]
         for p in PRESET_NAMES}
checks.observe("the four numbers of one pair span about two orders of magnitude (a factor between 30 and 1,000)",
               30 < max(same) / min(same) < 1000,
               measured=f"two samplings of one shape: {min(same):.4g} to {max(same):.4g}, "
                        f"a factor {max(same) / min(same):.0f}")
checks.observe("a squared convention sets the wrong shape further from the right one, as a ratio, than OccNet's "
               "plain one",
               ratio["pointflow"] > ratio["occnet"],
               measured=f"ratio {ratio['pointflow']:.2f} (PointFlow) against {ratio['occnet']:.2f} (OccNet)")

# %%
presets = results.get("evaluation", "protocol", "presets", "oracle (2048 points)")
if presets:
    print("benchmark (laptop, oracle pair, mean of 20 shapes): "
          + ", ".join(f"{p} {presets[p]:.4g}" for p in PRESET_NAMES if p in presets))
else:
    print("the benchmark's numbers are not here yet: COURSE_PROFILE=laptop python benchmarks/evaluation.py")

# %% [markdown]
# The numbers move by orders of magnitude (AtlasNet and DeepSDF share one Chamfer: they differ
# in the number of points they evaluate with), and so does the *ratio* between the two pairs:
# squaring the distances stretches large errors and shrinks small ones, so a squared Chamfer
# separates a wrong shape from a right one by a much larger factor than OccNet's plain one. A
# table from another paper can only be compared after matching the convention, the scale, the
# number of points (OccNet evaluates 100,000, DeepSDF 30,000, PointFlow 2,048), the unit (OccNet's
# is a tenth of each object's longest bounding-box edge) and the normalisation of the shapes.
#
# ## Use it: evaluate generators
#
# The references are held-out shapes (`test`, stream 1: `target_points`), never seen in
# training. Each generator produces as many clouds as there are references ($S = R$, as
# PointFlow does):
#
# - **memorising**: random training shapes plus a little noise
#   (`ex.noisy_training_baseline`), a "generator" that has learnt nothing but the training set;
# - **mode-collapsed**: one training shape, over and over (each copy a fresh random subset of
#   its three samplings, plus noise): good shapes, no diversity;
# - **ShapeGF + latent GAN** (chapter 10), trained on the same training shapes; it loads
#   lecture 10's checkpoint when that lecture has run, otherwise it trains (seconds in the
#   `ci` profile, minutes in the others; set `USE_SHAPEGF = False` to skip it);
# - **fresh shapes**: shapes of the *validation* split, new draws from the very distribution the
#   references come from: what a perfect generator would output.
#
# **Predict first.** Before running the two cells below, rank the four generators on each metric:
# which one has the lowest MMD, which the highest COV, whose 1-NNA is closest to 50%? Which generator
# will no metric here tell apart from the perfect one?

# %%
def collapsed_generator(data: dict, n_shapes: int, index: int = 0, noise: float = 0.01, seed: int = 0) -> torch.Tensor:
    """``n_shapes`` clouds of ONE shape: random subsets of its three samplings, plus Gaussian noise."""
    g = torch.Generator().manual_seed(seed)
    pool = torch.cat([data[k][index] for k in ("points", "target_points", "oracle_points")])  # (P, 3)
    n = int(data["target_points"].shape[1])
    idx = torch.rand(n_shapes, len(pool), generator=g).argsort(dim=1)[:, :n]  # (n_shapes, n)
    x = pool[idx]
    return x + noise * torch.randn(x.shape, generator=g)


USE_SHAPEGF = True
refs = test["target_points"]
n_gen = len(refs)
sets = {"memorising": ex.noisy_training_baseline(train["target_points"], n_gen, noise=0.02),
        "mode-collapsed": collapsed_generator(train, n_gen)}
if USE_SHAPEGF:
    model, _ = ex.train_shapegf(train, live_plot=False)
    gan, _, _ = ex.train_generator(model, train["points"], progress=False)
    sets["ShapeGF + latent GAN"] = ex.generate(model, gan, n_gen, n_pts).clamp(-1.5, 1.5)
sets["fresh shapes"] = ex.load_data("val", per_category=REFS_PER_CATEGORY)["target_points"]
for name, x in sets.items():
    print(f"{name:>22}: {tuple(x.shape)}")
viz.side_by_side([viz.plot_points(refs[0], size=1.5)] + [viz.plot_points(x[0], size=1.5) for x in sets.values()],
                 titles=["a reference", *sets])

# %% [markdown]
# Now the scores, with your four functions: the distance matrices are built with your
# `chamfer_convention` under PointFlow's convention (squared, summed, no scale: the raw value;
# papers then print MMD-CD x1e3), by `mg.pairwise_distances`, which takes any batched distance
# `d(x (K, N, 3), y (K, M, 3)) -> (K,)`. $M_{rr}$ is the same for every generator. The library's
# `mg.generation_metrics` (PointFlow's code path) computes the same numbers independently.

# %% tags=["uses-exercise"]
scores = {}  # generator -> its three scores, set below with your functions


def my_cd(a, b):
    return chamfer_convention(a, b, True, "sum", 1.0)


refs_d = refs.to(DEVICE)
m_rr = mg.pairwise_distances(refs_d, refs_d, my_cd)
for name, smp in sets.items():
    smp = smp.to(DEVICE)
    m_rs = mg.pairwise_distances(refs_d, smp, my_cd)
    m_ss = mg.pairwise_distances(smp, smp, my_cd)
    scores[name] = {"MMD-CD x1e3": float(mmd(m_rs)) * mg.SCALES["mmd-cd"],
                    "COV %": float(coverage(m_rs)) * mg.SCALES["cov"],
                    "1-NNA %": float(one_nna(m_rr, m_ss, m_rs)) * mg.SCALES["1-nna"]}
    lib = mg.generation_metrics(smp, refs_d, "cd")
    print(f"{name:>22}: " + ", ".join(f"{k} {v:.4g}" for k, v in scores[name].items())
          + f"   (library: MMD {lib['mmd'] * 1e3:.4g}, COV {lib['cov'] * 100:.4g}, 1-NNA {lib['1-nna'] * 100:.4g})")
bars = [go.Figure(go.Bar(x=list(scores), y=[scores[n][k] for n in scores],
                         marker_color=["#4c78a8", "#f58518", "#54a24b", "#b279a2"][:len(scores)]))
        for k in ("MMD-CD x1e3", "COV %", "1-NNA %")]
fig = viz.subplots(bars, titles=["MMD-CD x1e3 (lower is better; log scale)", "COV % (higher is better)",
                                 "1-NNA % (50 is ideal)"], height=380)
fig.update_yaxes(type="log", row=1, col=1)
fig.add_hline(y=50, line_dash="dash", line_color="grey", row=1, col=3)
fig.update_layout(margin={"l": 40, "r": 10, "t": 40, "b": 90})

# %% [markdown]
# **Observe.** In the `ci` profile the sets are tiny (8 references) and ShapeGF is barely trained: read
# the pattern, not the digits, and rerun with `COURSE_PROFILE=laptop` (30 references). What each metric
# sees:
#
# - **Fresh shapes** are the target: the lowest MMD, or nearly, a 1-NNA near 50% (noisy with few clouds,
#   and slightly below 50% on average: leaving a cloud out leaves its own set one cloud short) and the COV
#   that $S = R$ random draws reach (below 100%, about 55 to 65% in our runs: some references are
#   nobody's nearest).
# - **Memorisation** scores about as well: an MMD close to the fresh shapes' (within a factor 1.5), a COV
#   within a reference or two of theirs, and a 1-NNA far closer to 50% than mode collapse's and ShapeGF's
#   (53% in our `laptop` run; 75% in the `ci` run, where each of the 16 clouds moves it by 6 points).
#   Training shapes *are* shapes of the right distribution, so they match the references, cover them,
#   and mix with them. None of these metrics can tell a model that generalises from one that copies its training set; that is why the references
#   must be **held out** (scored against the training set itself, a copier matches every reference almost
#   exactly, see below), and why a table should carry this trivial baseline.
# - **Mode collapse** covers one reference: COV falls to about $1/R$ (every sample picks the same
#   reference) and 1-NNA rises to 90% or more (the samples' nearest neighbours are one another). Its MMD
#   is several times the fresh shapes': the references of the other categories are matched badly (in
#   the `laptop` run, the highest MMD of the four).
# - **ShapeGF** (a real model) is only as good as its training: its samples are told apart from the
#   references (1-NNA of 85% in our `laptop` run, 100% in the `ci` run) and its MMD is well above
#   memorisation's (2.2 times in our `laptop` run). In the `ci` profile, barely trained, its samples are
#   blurry and far from every reference: an MMD about a hundred times the others'.

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(len(scores) < len(sets))
fresh, mem, col = scores["fresh shapes"], scores["memorising"], scores["mode-collapsed"]
failures = [n for n in scores if n not in ("memorising", "fresh shapes")]  # mode collapse, ShapeGF if it ran
mmd_of = {n: row["MMD-CD x1e3"] for n, row in scores.items()}
off_50 = {n: abs(row["1-NNA %"] - 50) for n, row in scores.items()}
best_two = (fresh["MMD-CD x1e3"], mem["MMD-CD x1e3"])
checks.observe("fresh shapes and memorisation have the two lowest MMDs, within a factor 1.5 of each other",
               max(best_two) < min(mmd_of[n] for n in failures) and max(best_two) < 1.5 * min(best_two),
               measured="MMD-CD x1e3 " + ", ".join(f"{n} {v:.3g}" for n, v in mmd_of.items()))
checks.observe("fresh shapes: a 1-NNA near 50% (35 to 65%) and a COV below 90%",
               35 < fresh["1-NNA %"] < 65 and fresh["COV %"] < 90,
               measured=f"1-NNA {fresh['1-NNA %']:.3g}%, COV {fresh['COV %']:.3g}%")
checks.observe("memorisation's 1-NNA is far closer to 50% than mode collapse's and ShapeGF's "
               "(by 10 points or more)",
               off_50["memorising"] + 10 <= min(off_50[n] for n in failures),
               measured="1-NNA % " + ", ".join(f"{n} {row['1-NNA %']:.3g}" for n, row in scores.items()))
checks.observe("mode collapse covers about one reference (COV at most 2/R) and its 1-NNA rises above 80%",
               col["COV %"] / 100 * len(refs) <= 2 and col["1-NNA %"] > 80,
               measured=f"COV {col['COV %']:.3g}% of {len(refs)} references, 1-NNA {col['1-NNA %']:.3g}%")
checks.observe("mode collapse's MMD is several times the fresh shapes' (over 3 times)",
               col["MMD-CD x1e3"] > 3 * fresh["MMD-CD x1e3"],
               measured=f"MMD-CD x1e3 {col['MMD-CD x1e3']:.3g} against {fresh['MMD-CD x1e3']:.3g}")
if "ShapeGF + latent GAN" in scores:
    sgf = scores["ShapeGF + latent GAN"]
    checks.observe("ShapeGF's samples are told apart from the references (1-NNA of 75% or more) and its MMD "
                   "is well above memorisation's (over 1.5 times)",
                   sgf["1-NNA %"] >= 75 and sgf["MMD-CD x1e3"] > 1.5 * mem["MMD-CD x1e3"],
                   measured=f"1-NNA {sgf['1-NNA %']:.3g}%, MMD-CD x1e3 {sgf['MMD-CD x1e3']:.3g} "
                            f"against {mem['MMD-CD x1e3']:.3g}")

# %% [markdown]
# Chapter 10's benchmark (laptop profile) scored ShapeGF + latent GAN and the two training-set baselines
# against held-out references with the library's functions; its record is printed below. Compare its
# ranking with yours and with your prediction.

# %%
generation = results.get("gradient_fields", "generation")
if generation:
    for name, row in generation.items():
        print(f"benchmark (laptop) {name:>30}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items()))
else:
    print("the benchmark's numbers are not here yet: COURSE_PROFILE=laptop python benchmarks/gradient_fields.py")

# %% [markdown]
# **Why held-out references.** The memorising baseline scored against the *training* shapes
# it copies (the library's functions, so this cell does not depend on your exercises):

# %%
copies = ex.noisy_training_baseline(train["target_points"], len(train["target_points"]), noise=0.02)
copier = {}
for refs_name, r_set in (("held-out references", refs), ("the training shapes", train["target_points"])):
    copier[refs_name] = m = mg.generation_metrics(copies, r_set, "cd")
    print(f"memorising vs {refs_name:>20}: MMD-CD x1e3 {m['mmd'] * 1e3:.4g}, COV {m['cov']:.0%}, "
          f"1-NNA {m['1-nna']:.0%}")

# %% [markdown]
# Against its own training set the copier's MMD is the noise level only and its 1-NNA falls
# **below** 50%: each copy's nearest cloud is its original, in the other set, so both get the
# wrong label. A 1-NNA well under 50% is the signature of samples that copy the references.

# %%
own, held_out = copier["the training shapes"], copier["held-out references"]
checks.observe("scored against the training set it copies, the copier's 1-NNA falls well below 50% (under 30%) "
               "and its MMD drops below the one against held-out references",
               own["1-nna"] < 0.3 and own["mmd"] < held_out["mmd"],
               measured=f"1-NNA {own['1-nna']:.0%} (held-out: {held_out['1-nna']:.0%}), MMD-CD x1e3 "
                        f"{own['mmd'] * 1e3:.3g} (held-out: {held_out['mmd'] * 1e3:.3g})")

# %% [markdown]
# ## Questions
#
# Answer in a few sentences or a short derivation, in the cell below (your instructor reads
# them; `python -m course_lib.grade` collects them for marking by hand).
#
# 1. Why does the 1-NNA of a perfect generator approach 50%, and what does a value far below 50% mean?
# 2. Construct two predictions whose ranking flips between the squared-and-summed Chamfer convention and the unsquared-and-averaged one.
# 3. Why is the oracle row (an independent sampling of the true surface) a reference to read against and not a floor that no model can beat?

# %% [markdown] tags=["answer"]
# *Your answers: 1. ... 2. ... 3. ...*

# %% [markdown]
# ## Going further
#
# - Score the generators with EMD instead of Chamfer (`mg.generation_metrics(..., "emd")`, or
#   `mg.pairwise_distances(..., "emd")` with your functions): does the ranking change?
# - Mode collapse with $k$ modes: repeat $k$ training shapes instead of one and plot COV and
#   1-NNA against $k$.
# - Give the memorising baseline more noise (0.02, 0.05, 0.1): which metric degrades first?
# - Draw $S = 4R$ fresh shapes instead of $R$: COV rises although the generator did not get
#   better. Why does PointFlow fix $S = R$?
# - Build the distance matrices with OccNet's convention (plain distances, mean of the two
#   directions) instead of PointFlow's: do MMD, COV and 1-NNA rank the generators the same way?
# - PointFlow also reports the Jensen-Shannon divergence of the point occupancies
#   (`mg.jsd_voxels`): which of the generators above can fool it, and why?
