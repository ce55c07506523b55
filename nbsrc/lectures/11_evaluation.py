# %% [markdown]
# # 11 · Evaluation: every model of the course in one table, and what the numbers mean
#
# Ten chapters, ten families of models, and each chapter scored its models the way its papers
# do: voxel IoU at a threshold (3D-R2N2), Chamfer ×10³ (AtlasNet), Chamfer ×10⁴ and EMD ×10²
# (PointFlow, ShapeGF), Chamfer-L1 and normal consistency (OccNet), a Chamfer on 30,000 points
# (DeepSDF). Those numbers cannot be put side by side, and the papers' own numbers move with the
# protocol, which is the point of this chapter:
#
# - 3D-R2N2 reports an IoU of about 0.56 on ShapeNet; OccNet re-evaluated it under its own
#   protocol and got 0.493 [Mescheder2019];
# - SoftRas reports 64.6 mean IoU on its renders; the same method is about 62 on NMR's data and
#   59 under DIB-R's set-up (the official repositories' issues);
# - DeepSDF's released code gives 0.157 where the paper reports 0.204 (the official
#   repository's issues).
#
# This lecture (1) defines every metric with its convention and shows where each one fails,
# (2) puts **every model of the course** on the **same held-out shapes** under **one convention
# per column**, with the oracle as a reference, (3) scores the same predictions under each paper's
# convention to measure how much a number moves, and (4) uses the table to show the limits of
# learned approaches the seed names: watertightness, scaling, bias.
#
# Library: `course_lib.metrics` (point metrics and the papers' presets),
# `course_lib.metrics_generation` (MMD, COV, 1-NNA, JSD), `course_lib.experiments.evaluation`
# (the table). The table itself is computed by `benchmarks/evaluation.py` from the chapters'
# checkpoints; this notebook reads its file and recomputes small parts live.

# %%
import math

import numpy as np
import plotly.graph_objects as go
import torch

from course_lib import config, metrics, results, viz
from course_lib.data import SAMPLING_STREAMS, make_shape, split_seeds
from course_lib.experiments import evaluation as ev_lib
from course_lib.ops import farthest_point_sampling

print(config.describe())
SZ = config.sizes(prefix="ch11.")
PROFILE = config.get_profile()
print({k: SZ[k] for k in ("categories", "per_category", "n_points", "emd_points", "n_iou", "tau")})

# %% [markdown]
# **On your own data.** `ev_lib.eval_shapes(dataset="modelnet", root=...)` (or `COURSE_DATASET=modelnet` with
# `COURSE_MODELNET_DIR` set before starting Jupyter; `shapenetcore` and `COURSE_SHAPENET_DIR` likewise) gives
# the table's held-out shapes from a real dataset: the first test meshes of each category, normalised and
# repaired, their target and oracle samples drawn on the mesh and the IoU labels from its winding number
# (meshes whose inside cannot be decided are skipped). Each model of the table comes from its chapter's recipe,
# which follows the same switch; what needs ShapeNet-lite's exact shapes refuses with an error naming the
# dataset. The demos on one ShapeNet-lite chair (the conventions, the oracle, the creases) stay on ShapeNet-lite.

# %% [markdown]
# ## 1. The metrics and their conventions
#
# Let $X$ be the predicted points and $Y$ the target points, $d(x, Y) = \min_{y\in Y}\|x-y\|$.
#
# | metric | definition | sees | blind to |
# |---|---|---|---|
# | Chamfer | $\frac1{|X|}\sum_x d(x,Y)^p + \frac1{|Y|}\sum_y d(y,X)^p$ | both directions of nearness | density: many points on one spot cost little |
# | EMD | $\min_\phi \frac1N\sum_x \|x - \phi(x)\|$, $\phi$ a bijection | density as well as position | needs equal counts; $O(N^3)$ exact |
# | F-score@$\tau$ | harmonic mean of precision $P(d(x,Y)<\tau)$ and recall $P(d(y,X)<\tau)$ | the fraction that is right | how wrong the rest is |
# | Hausdorff | $\max(\max_x d(x,Y), \max_y d(y,X))$ | the worst point | everything else: one outlier decides |
# | normal consistency | mean $|n_x\cdot n_{y(x)}|$ both ways, halved | orientation of the surface | needs normals: a mesh |
# | IoU | $|A\cap B|/|A\cup B|$ of two volumes | the inside | thin parts (little volume) |
#
# The conventions differ in five places: squared ($p=2$) or plain ($p=1$) distances; the **sum**
# or the **mean** of the two directions; a **scale** folded into the table (×10³, ×10⁴); the
# **number of points** of both clouds (2,048 for PointFlow, 30,000 for DeepSDF, 100,000 for
# OccNet); and the **frame and unit** the distances are measured in. This course measures in its
# own frame (shapes inside $[-1, 1]^3$). OccNet's meshes sit in a unit cube and its unit is a tenth of
# each object's longest bounding-box edge (its authors: "we multiply the Chamfer-L1 values by a
# factor of 10", occupancy_networks issue #61); PointFlow and ShapeGF undo their normalisation into
# ShapeNet's coordinates before measuring; DeepSDF measures in the original mesh frame. A squared
# Chamfer scales with the square of the frame, so halving the shapes' size divides it by four: as
# large as any other axis here. `metrics.PRESETS` names each paper's choice with its source; the
# OccNet preset applies its unit per target shape (`cd_unit="bbox/10"`, about ×5 for our shapes, whose
# longest edge is near 2); the others measure in our frame by default, so their *formulas* match the
# papers but their *units* match only after the shapes are put in each paper's frame, which each
# preset names (`frame`) and applies when asked (`in_paper_frame=True`; section 4 measures it):

# %%
for name, conv in metrics.PRESETS.items():
    print(f"{name:10s} squared={conv.cd_squared!s:5s} directions={conv.cd_directions:4s} scale={conv.cd_scale:g} "
          f"unit={conv.cd_unit:7s} frame={conv.frame:13s} points={conv.n_points}  ({conv.source})")

# %% [markdown]
# One pair of clouds, every convention. The two clouds are independent samplings of one held-out
# chair (the oracle: both are perfect). The spread of the printed numbers is purely a matter of
# convention:

# %%
chair = make_shape("chair", split_seeds("test", 1)[0])
n = int(SZ["n_points"])
y_pts, y_nrm = chair.sample_surface(n, stream=SAMPLING_STREAMS["target"])
x_pts, x_nrm = chair.sample_surface(n, stream=SAMPLING_STREAMS["oracle"])
for name, conv in metrics.PRESETS.items():
    out = metrics.evaluate(x_pts, y_pts, conv, pred_normals=x_nrm, gt_normals=y_nrm, fscore_tau=float(SZ["tau"]),
                           emd_method="sinkhorn" if n > 1024 else "exact")
    print(f"{name:10s} " + "  ".join(f"{k} {v:.4g}" for k, v in out.items()))

# %% [markdown]
# **Failure modes, measured.** Three perturbations of the oracle cloud, each aimed at one blind
# spot: (a) half the points collapsed onto a tenth of them (a density defect: the surface is still
# covered, unevenly), (b) one point moved far away (an outlier), (c) every point shifted by
# $\tau/2$ along its normal (all slightly off, none grossly). The second table divides each
# metric by its oracle value (F-score: the oracle's value divided by the perturbed one, so that
# above 1 means worse everywhere); the last line names the metric each defect moves most.

# %%
def perturbations(x, nrm, tau):
    g = torch.Generator().manual_seed(0)
    k = x.shape[0]
    clumped = x.clone()
    few = torch.randint(0, k // 10, (k // 2,), generator=g)
    clumped[k // 2:] = x[few] + 0.002 * torch.randn(k // 2, 3, generator=g)
    outlier = x.clone()
    outlier[0] = torch.tensor([1.5, 1.5, 1.5])
    shifted = x + 0.5 * tau * nrm
    return {"oracle": x, "(a) half clumped": clumped, "(b) one outlier": outlier, "(c) shifted by tau/2": shifted}


m = min(n, int(SZ["emd_points"]))
rows = []
for name, pts in perturbations(x_pts[:m], x_nrm[:m], float(SZ["tau"])).items():
    rows.append({"model": name,
                 "cd": float(metrics.chamfer(pts, y_pts[:m], scale=1e3)),
                 "emd": float(metrics.emd(pts, y_pts[:m], scale=1e2)),
                 "fscore": float(metrics.fscore(pts, y_pts[:m], float(SZ["tau"]))),
                 "hausdorff": float(metrics.hausdorff(pts, y_pts[:m]))})
print(ev_lib.format_rows(rows, ("cd", "emd", "fscore", "hausdorff"), extra=()))
ratios = [{"model": r["model"], "cd": r["cd"] / rows[0]["cd"], "emd": r["emd"] / rows[0]["emd"],
           "fscore": rows[0]["fscore"] / r["fscore"] if min(r["fscore"], rows[0]["fscore"]) > 0 else float("nan"),
           "hausdorff": r["hausdorff"] / rows[0]["hausdorff"]}
          for r in rows]
print("\nworse than the oracle by a factor of:")
print(ev_lib.format_rows(ratios, ("cd", "emd", "fscore", "hausdorff"), extra=()))
for r in ratios[1:]:
    most = max((c for c in ("cd", "emd", "fscore", "hausdorff") if math.isfinite(r[c])), key=lambda c: r[c])
    print(f"{r['model']}: moves {ev_lib.HEADERS[most]} most")

# %% [markdown]
# ## 2. The oracle, and what beats it
#
# A model whose points were i.i.d. samples of the true surface would still score a non-zero
# Chamfer: two finite samplings never coincide. That score, the **oracle** (ShapeGF's table has
# it), is the natural reference, and it depends on the point count. But it is **not a floor**:
# points spread more *evenly* than i.i.d. samples leave fewer gaps, and score lower. A
# farthest-point sample of a dense sampling is such a set. The curve below (computed live) shows
# both against the number of points:

# %%
counts = [128, 256, 512, 1024] + ([2048] if PROFILE != "ci" else [])
dense, _ = chair.sample_surface(8 * max(counts), stream=SAMPLING_STREAMS["oracle"])
iid, even = [], []
for k in counts:
    tgt, _ = chair.sample_surface(k, stream=SAMPLING_STREAMS["target"])
    o, _ = chair.sample_surface(k, stream=SAMPLING_STREAMS["oracle"])
    iid.append(float(metrics.chamfer(o, tgt, scale=1e3)))
    idx = farthest_point_sampling(dense[None], k)[0]
    even.append(float(metrics.chamfer(dense[idx], tgt, scale=1e3)))
fig = go.Figure([go.Scatter(x=counts, y=iid, name="oracle (i.i.d. sampling)", mode="lines+markers"),
                 go.Scatter(x=counts, y=even, name="farthest-point sample of the surface", mode="lines+markers")])
fig.update_layout(xaxis_type="log", yaxis_type="log", xaxis_title="points in both clouds",
                  yaxis_title="CD x1e3 (AtlasNet convention)", height=360, title="the oracle is a reference, not a floor")
fig

# %% [markdown]
# ## 3. One table: every model on the same held-out shapes
#
# `benchmarks/evaluation.py` loads each chapter's model **from its checkpoint** (nothing is
# retrained: `train.checkpoints_only()` makes a missing checkpoint an error), feeds it the kind
# of input its chapter trained on, for the same held-out shapes (the test split of the two
# categories every chapter trained on), and turns every output into points, a mesh where there is
# one and an occupancy where the output encloses a volume.
#
# **Held out from what?** A test split on which a chapter tuned its epochs or thresholds is held
# out from training, not from model selection. Under the course's protocol (chapter 00) every
# chapter chooses on its **validation** split, and the test split is a fresh range of seeds that no
# chapter looked at before reporting: nothing in this table was chosen on these shapes. Each row
# also carries its **budget**, read from the checkpoint its chapter's recipe loaded (optimiser
# steps, training examples, training seconds, parameters), and two **retrieval** rows return the
# nearest training shape instead of a reconstruction (chosen by the code of chapter 06's AtlasNet
# encoder, or by an oracle that looks at the target: Tatarchenko et al., CVPR 2019, found that
# single-view networks on ShapeNet do little more than that). Every column has one convention:

# %%
for c, text in ev_lib.COLUMNS.items():
    print(f"{ev_lib.HEADERS[c]:12s} {text}")

# %%
R = results.show("evaluation", "laptop")
TABLE = R.data["table"] if R is not None else None
if TABLE is not None:
    print("held-out shapes:", ", ".join(R.data["shapes"]))
    print(ev_lib.format_rows(TABLE))
    print("\ninputs and budgets (steps, training examples, training seconds, parameters):")
    budgets = R.data.get("budgets", {})
    for r in TABLE:
        if r["chapter"] != "-":
            b = budgets.get(r["model"]) or {}
            cost = ", ".join(f"{k} {b[k]:.0f}" for k in ("steps", "examples", "seconds", "params")
                             if b.get(k) is not None) or b.get("note", "not recorded")
            print(f"  {r['model'][:44]:44s} {r['representation']:28s} from {r['input']}; {cost}")

# %% [markdown]
# **Reading the table critically.** First, the inputs differ: the voxel and octree
# auto-encoders see the shape's whole grid, the point models a clean sampling, OccNet a few noisy
# points, the single-view model one image, DeepSDF SDF samples, the silhouette fit eight views
# (and a fit is per shape, not learned). The table compares *tasks* as much as representations,
# and a row is only a fair rival of rows with the same input. Second, a difference of means is
# not yet a finding: every comparison below is a **claim** paired over the held-out shapes (the
# two rows' values shape by shape, the mean difference and its standard error), and its verdict
# is "not separated" when the difference is within two standard errors. A model is compared with
# the oracle at its own point count (PointSetGen outputs fewer points than the table's count, and
# fewer points score a larger Chamfer by sampling alone), and a row scored on too few shapes is
# left out of the claims. Which claims hold for the oracle column by column? Predict, then read:

# %%
CLAIMS = results.claims("evaluation")


def say_all(prefix):
    """Print every claim of the table whose id starts with ``prefix`` (or say that none was measured)."""
    ids = [c["id"] for c in CLAIMS if c["id"].startswith(prefix)]
    for cid in ids or [prefix + "..."]:
        results.say("evaluation", cid)


for col in ("cd", "emd", "fscore"):
    print(f"--- against the oracle on {ev_lib.HEADERS[col]}:")
    say_all(f"oracle-{col}-")
left = R.data.get("claims_left_out", []) if R is not None else []
if left:
    print(f"\nnot compared ({len(left)} comparisons): " + "; ".join(sorted({c['reason'] for c in left})))

# %% [markdown]
# Does a network do more than retrieve the nearest training shape (chosen by its code)? And
# how does each row fare against the next one in the ranking by Chamfer (at the table's point
# count) and by IoU? Each step of a ranking is a claim of its own: a ranking whose neighbours
# are "not separated" orders noise.

# %%
print("--- against the nearest training shape chosen by AtlasNet's latent code (CD):")
say_all("retrieval-cd-")
for col in ("cd", "iou"):
    print(f"\n--- the ranking by {ev_lib.HEADERS[col]}, each row against the next:")
    say_all(f"rank-{col}-")
if TABLE is not None:
    models = [r for r in TABLE if r["chapter"] != "-"]

    def ok(v):
        return v is not None and math.isfinite(v)

    by_cd = ev_lib.ranking(models, "cd")
    by_iou = ev_lib.ranking(models, "iou", higher_is_better=True)
    shared = [m for m in by_cd if m in by_iou]
    print(f"\nKendall's tau between the rankings of the means by Chamfer and by IoU over the {len(shared)} models "
          f"with a volume: {ev_lib.kendall([by_cd.index(m) for m in shared], [by_iou.index(m) for m in shared]):.2f}")
    closed = [r["model"] for r in models if ok(r["watertight"]) and r["watertight"] == 1.0]
    print("\nevery output mesh watertight:", ", ".join(closed))
    print("no surface at all (points only):", ", ".join(r["model"] for r in models if not ok(r["nc"])))

# %% [markdown]
# The voxel rows deserve a second look: their IoU here is against the **exact** occupancy, not
# against the voxelised target of chapter 03, so it includes the grid's own error. The
# reference rows "exact shape's voxels" say how much the exact shape's own grid, sampled at the
# cell centres, loses under this protocol. Like the oracle, they are a reference, not a bound: a
# grid of volume fractions, or a model's soft probabilities meshed at one half, can come nearer
# to the exact surface than the sampled binary grid.
#
# **Widget.** Pick a held-out shape and a group of models: the target and every model's points
# (as stored by the benchmark) side by side in one 3D scene, each with its scores.

# %%
PRED = ev_lib.load_predictions("laptop")
GROUPS = {"voxels and octrees": ("03", "04"), "point sets and gradient fields": ("05", "10"),
          "surfaces": ("06", "09"), "fields and primitives": ("07", "08")}


def show_models(shape=0, group="surfaces"):
    if PRED is None or R is None:
        return viz.plot_points(y_pts, size=1.5, title="not measured yet: run benchmarks/evaluation.py")
    name = PRED["shapes"][shape]
    i = R.data["shapes"].index(name)
    figs, titles = [viz.plot_points(PRED["target"][shape], size=1.5)], [f"target {name}"]
    for model in PRED["models"]:
        info = R.data["models"][model]
        if info["chapter"] not in GROUPS[group] or PRED["points"][model][shape] is None:
            continue
        s = info["per_shape"][i] or {}
        iou = s.get("iou")
        figs.append(viz.plot_points(PRED["points"][model][shape].clamp(-1.5, 1.5), size=1.5))
        titles.append(f"{model}: CD {s.get('cd', float('nan')):.3g}" + (f", IoU {iou:.2f}" if iou is not None else ""))
    return viz.side_by_side(figs, titles, height=420)


viz.interact(show_models, shape=range(0, len(PRED["shapes"]) if PRED else 1), group=list(GROUPS))

# %% [markdown]
# ## 4. Protocol sensitivity: the same predictions, each paper's convention
#
# The benchmark scored the very same predictions again under each preset (first at the table's
# point count, then at each paper's own count where the output can be resampled: a mesh or a
# field can, a fixed point set cannot), at several point counts, F-score thresholds and IoU sample
# counts. Scale alone multiplies a number by ten (×10³ against ×10⁴); whether squaring changes
# the ranking is Kendall's tau between a squared and an unsquared convention (1: the same order).
# The point count moves every row's Chamfer, the oracle's included; the cell after the figure
# asks whether it also reorders the models: Kendall's tau between the rankings at the smallest
# and the largest count, and the pairs of models that swap.

# %%
if R is not None:
    P = R.data["protocol"]
    print("each preset at the table's point count (CD):")
    print(ev_lib.format_rows([{"model": k, **v} for k, v in P["presets"].items()], tuple(P["preset_points"]),
                             extra=()))
    print("\neach preset at its paper's point count:", P["preset_points"])
    print(ev_lib.format_rows([{"model": k, **v} for k, v in P["presets_own_count"].items()],
                             tuple(P["preset_points"]), extra=()))
    print("\nKendall's tau between the model rankings of two conventions:")
    for k, v in P["kendall"].items():
        print(f"  {k:24s} {v:.2f}")

# %%
if R is not None:
    pc = P["point_count"]
    fig = go.Figure([go.Scatter(x=[int(k) for k in v], y=list(v.values()), name=name, mode="lines+markers")
                     for name, v in pc.items()])
    fig.update_layout(xaxis_type="log", yaxis_type="log", xaxis_title="points in both clouds",
                      yaxis_title="CD x1e3", height=420, title="the same outputs, sampled at other point counts")
fig if R is not None else None

# %%
if R is not None:
    o = next(v for k, v in pc.items() if k.startswith("oracle"))
    lo, hi = min(o, key=int), max(o, key=int)
    rows_pc = {k: v for k, v in pc.items() if not k.startswith(("oracle", "exact")) and lo in v and hi in v}
    names = list(rows_pc)
    a, b = [rows_pc[m][lo] for m in names], [rows_pc[m][hi] for m in names]
    swaps = [(names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))
             if (a[i] - a[j]) * (b[i] - b[j]) < 0]
    print(f"the oracle's CD x1e3 at {lo} and at {hi} points: {o[lo]:.3g} and {o[hi]:.3g}")
    print(f"Kendall's tau between the models' rankings at {lo} and at {hi} points ({len(names)} models): "
          f"{ev_lib.kendall(a, b):.2f}; {len(swaps)} of {len(names) * (len(names) - 1) // 2} pairs swap"
          + (": " + "; ".join(f"{x} / {y}" for x, y in swaps) if swaps else ""))

# %%
if R is not None:
    print("F-score against its threshold tau:")
    print(ev_lib.format_rows([{"model": k, **v} for k, v in P["fscore"].items()], tuple(next(iter(P["fscore"].values()))),
                             extra=()))
    print("\nIoU against the number of uniform sample points:")
    print(ev_lib.format_rows([{"model": k, **v} for k, v in P["iou_points"].items()],
                             tuple(next(iter(P["iou_points"].values()))), extra=()))

# %% [markdown]
# **The fifth axis: the frame.** Before measuring, each paper puts its shapes (and so its predictions,
# which follow their targets) into a frame of its own: `metrics.FRAMES` lists the four the presets
# use, and `metrics.frame_transform(y, frame)` returns the similarity $y \mapsto (y - c)\,s$ fixed by
# the target $y$. A squared Chamfer distance is multiplied by $s^2$, a plain one and the EMD by $s$.
# OccNet's unit (a tenth of the longest edge) is itself a frame, so its preset gives the same number
# in any frame. First the frames and their factor $s$ on one pair (the oracle chair above):

# %%
for f, text in metrics.FRAMES.items():
    _, s_f = metrics.frame_transform(y_pts, f)
    xf, yf = metrics.to_frame(x_pts, y_pts, f)
    print(f"{f:14s} s = {float(s_f.reshape(())):.3f}   CD x1e3 = {float(metrics.chamfer(xf, yf, scale=1e3)):.4g}"
          f"   ({text})")

# %% [markdown]
# The factor differs from shape to shape: a long, thin airplane and a compact chair of the same
# bounding-box diagonal get different unit-cube or unit-ball factors. A table's mean then weighs
# the shapes differently in each frame, and the question is whether the *ranking* of the models
# moves. The benchmark measured the table's predictions in each frame (AtlasNet's formula), and each
# preset in its paper's frame:

# %%
if R is not None and "frames" in R.data["protocol"]:
    print("CD x1e3 (AtlasNet formula) of the same predictions in each frame:")
    print(ev_lib.format_rows([{"model": k, **v} for k, v in P["frames"].items()], tuple(metrics.FRAMES), extra=()))
    print("\nthe per-shape factor s of each frame (min / mean / max over the table's shapes):")
    for f, v in P["frame_scale"].items():
        print(f"  {f:14s} {v['min']:.3f} / {v['mean']:.3f} / {v['max']:.3f}")
    print(f"\nKendall's tau between the ranking in the course's frame and in each frame "
          f"({len(P['frame_models'])} models scored on every shape):")
    for f, t in P["frame_kendall"].items():
        sw = P["frame_swaps"][f]
        print(f"  {f:14s} {t:.2f}; {len(sw)} pair(s) swap" + (": " + "; ".join(" / ".join(x) for x in sw) if sw else ""))
    print("\neach preset in its paper's frame", P["preset_frames"], ":")
    print(ev_lib.format_rows([{"model": k, **v} for k, v in P["presets_paper_frame"].items()],
                             tuple(P["preset_frames"]), extra=()))
elif R is not None:
    print("the results file predates the frame study: run `COURSE_PROFILE=laptop python benchmarks/evaluation.py`")

# %% [markdown]
# **The IoU threshold** is a convention too: chapter 03 swept it for its voxel auto-encoder, and
# chapter 07 scored its OccNet at its own level and at the official code's `threshold: 0.2`. From their files:

# %%
vox = results.get("voxels", "ae", "sweep")
if vox:
    print("chapter 03 voxel auto-encoder, IoU against the threshold:", {k: round(v, 3) for k, v in vox.items()})
occ = results.get("implicit", "occnet", "metrics")
if occ:
    print(f"chapter 07 OccNet: IoU at p > 0.5 {occ['iou'][0]:.3f}, at p > 0.2 (OccNet's) {occ['iou_t02'][0]:.3f}")

# %% [markdown]
# ## 5. Evaluate models yourself
#
# The same functions score any model. Here two models of chapters 05 and 06 on a few held-out
# shapes, in the current profile (in `ci` they are the tiny models of that profile; in `laptop`
# they load the chapters' checkpoints, and a missing one says which chapter to run).

# %%
from course_lib import train  # noqa: E402

few = ev_lib.eval_shapes(per_category=1)
pick = [m for m in ev_lib.MODELS if m.name in ("PointSetGen (Chamfer loss)", "AtlasNet 25 patches")]
try:
    mine = ev_lib.evaluate_models(few, pick, checkpoints_only=PROFILE != "ci", progress=False)
    print(ev_lib.format_rows(ev_lib.table_rows(mine)))
except train.CheckpointMissing as exc:
    print("not evaluated:", exc)

# %% [markdown]
# **Generation metrics.** A generative model is scored by comparing a *set* of generated clouds
# with a set of held-out reference clouds through a cloud distance $d$ (PointFlow's conventions,
# `course_lib.metrics_generation`): **MMD** (for each reference, the distance to its closest
# sample, averaged: fidelity), **COV** (the fraction of references that are some sample's
# closest: diversity), **1-NNA** (the leave-one-out 1-NN accuracy of telling the two sets apart:
# 50% ideal). A memorising "model" (training shapes with noise) scores well on all three, which is
# why the references must be held out and why chapter 10 printed that baseline beside ShapeGF:

# %%
gen = results.get("gradient_fields", "generation")
if gen:
    for name, row in gen.items():
        print(f"{name:32s} " + "  ".join(f"{k} {v:.3g}" for k, v in row.items()))

# %% [markdown]
# **The benchmark's goals**: the whole table within twenty minutes on a laptop's two cores from
# the chapters' checkpoints, and every model row scored on all the held-out shapes (so that every
# row enters the claims):

# %%
results.show_goals("evaluation")

# %% [markdown]
# ## 6. The limits of learned approaches, measured
#
# **Too smooth?** The tutorial's critique of learned reconstructions is that they round off sharp
# edges. The benchmark labels each target point as lying at a *crease* (its normal turns by more than
# a threshold to one of its nearest neighbours) or on a *flat* region (`ev_lib.crease_labels`), and
# measures, for every model with a mesh output, how well the normal of the nearest predicted point
# matches there. The oracle (a second sampling of the true surface) loses at creases too, since its
# nearest sample may lie across the edge, so each model is compared with the oracle's loss, shape by
# shape. Before reading: which representations would you expect to lose most at creases, and why might
# a marching-cubes surface lose there even when the field is right?

# %%
if R is not None and "sharp_edges" in R.data:
    se = R.data["sharp_edges"]
    print(f"crease labels: {se['labels']}")
    for name, r in se["rows"].items():
        print(f"  {name:52s} NC at creases {r['nc_crease']:.3f}   on flat regions {r['nc_flat']:.3f}   "
              f"({r['shapes']} shapes)")
    # every row loses at creases, the oracle too (its nearest sample may lie across the edge): the question is
    # whether a model loses more than the oracle, shape by shape, from the benchmark's stored per-shape values
    from course_lib.experiments.protocol import claim_sentence  # noqa: E402

    for c in ev_lib.sharp_edge_study(R.data["models"])["gap_claims"]:
        print(claim_sentence(c))
elif R is not None:
    print("the results file predates the sharp-edge study: run `COURSE_PROFILE=laptop python benchmarks/evaluation.py`")
pts_c, nrm_c = chair.sample_surface(int(SZ["n_points"]), stream=SAMPLING_STREAMS["target"])
lab_c = ev_lib.crease_labels(pts_c, nrm_c)
viz.plot_points(pts_c, color=lab_c.float(), title="one held-out chair's target points: 1 crease, 0 flat, -1 between")

# %% [markdown]
# **Watertightness.** Only some representations give a closed surface by construction: marching
# cubes of a grid or a field (closed inside the box), a deformed sphere or template. Open patches
# (AtlasNet) do not, and point sets and gradient fields have no surface at all (chapter 06's
# Poisson step or chapter 10's zero set must add one). The table's watertight column, by
# representation:

# %%
if TABLE is not None:
    for r in models:
        wt = r["watertight"]
        print(f"{r['representation']:28s} {r['model']:36s} "
              + (f"watertight {wt:.2f}" if wt is not None and math.isfinite(wt) else "no surface"))

# %% [markdown]
# What the column checks, and what it does not: a mesh counts as watertight when every edge is shared by
# exactly two faces (trimesh's `is_watertight`). That test does not look for *self-intersections*: a
# deformed sphere that folds through itself (chapter 09's one-view fits without regularisers do) still
# counts as closed, though its inside is no longer well defined. And a set of primitives (chapter 08)
# counts when *each* primitive is closed; their union's surface, where two primitives overlap, runs
# inside the other one, so the union is a closed solid but its mesh is not one clean surface until the
# overlaps are cut away (a boolean union, which the course does not compute). Read a full column as "every
# edge closed", not as "ready to 3D-print".
#
# **Scaling.** Chapter 03 measured how a dense voxel decoder's cost grows with the resolution
# $R$; chapter 04 how much an octree saves. Fitted exponents and peak memory from their files:

# %%
curve = results.get("voxels", "curve", "exponents")
if curve:
    print("dense 3D CNN, log-log slopes against R:", {k: round(v, 2) for k, v in curve.items()})
ae = results.get("octrees", "ae")
if ae:
    print(f"chapter 04 auto-encoding: OGN trained in {ae['train_seconds_ogn']:.0f} s, dense in "
          f"{ae['train_seconds_dense']:.0f} s at {ae['resolution']}^3")

# %% [markdown]
# **Bias.** A learned model knows the categories it was trained on. Two measurements: the
# chairs-only DeepSDF of chapter 07 on chairs and on airplanes (same table, per category), and the
# models that never saw benches reconstructing benches (the benchmark's bias study), next to the
# oracle.

# %%
if R is not None:
    for name in ("DeepSDF (trained on chairs)", "Occupancy Network", "ShapeGF"):
        pc = R.data["models"][name]["per_category"]
        print(f"{name:30s} " + "  ".join(f"{c}: CD {pc[c]['cd']:.3g}" for c in pc if pc[c]))
    u = R.data["unseen"]
    print(f"\nunseen category: {u['category']} ({len(u['shapes'])} shapes)")
    print(ev_lib.format_rows(u["rows"], ("cd", "fscore", "iou"), extra=("chapter",)))

# %% [markdown]
# **A real mesh.** Real meshes (ModelNet, ShapeNetCore) are rarely watertight, and the inside of
# an open mesh is not defined by ray parity. `course_lib.data.load_mesh` reads OFF/OBJ files
# (set `COURSE_MODELNET_DIR` to use your ModelNet copy); without one, a ShapeNet-lite chair is
# written to OFF with a few faces removed, as a scan with holes would be. The generalised winding
# number (chapter 07's `mesh_sdf`) still gives a sensible inside; ray parity (trimesh's
# `contains`) does not:

# %%
import os  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from course_lib.data import load_mesh  # noqa: E402

if os.environ.get("COURSE_MODELNET_DIR"):
    from course_lib.data import ModelNet

    real = ModelNet(os.environ["COURSE_MODELNET_DIR"], split="test").mesh(0)
    source = "ModelNet test mesh 0"
else:
    full = chair.mesh(48 if PROFILE == "ci" else 64)
    keep = np.ones(len(full.faces), bool)
    keep[np.random.default_rng(0).choice(len(full.faces), 40, replace=False)] = False
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "chair_with_holes.off"
        full.update_faces(keep)
        full.export(p)
        real = load_mesh(p, normalize=False)
    source = "ShapeNet-lite chair with 40 faces removed, read back from OFF"
q = torch.rand(int(SZ["n_iou"]) // 4, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
wind = ev_lib.mesh_occupancy(real)(q)
parity = torch.as_tensor(real.contains(q.numpy()))
print(f"{source}: watertight {real.is_watertight}; winding-number inside and ray-parity inside disagree on "
      f"{float((wind != parity).float().mean()):.1%} of uniform points")
if not os.environ.get("COURSE_MODELNET_DIR"):
    print(f"against the exact occupancy: winding number right on {float((wind == chair.occupancy(q)).float().mean()):.1%}, "
          f"ray parity on {float((parity == chair.occupancy(q)).float().mean()):.1%}")

# %% [markdown]
# ## 7. Encoders × decoders: the modular framework
#
# The tutorial describes reconstruction as two modules: an **encoder** of whatever the input is (an
# image, a point cloud, a voxel grid) into a code, and a **decoder** of the code into a representation
# (voxels, an octree, points, patches, an implicit field, primitives). The papers each fix one pair. Section 3's table mixes the
# two effects: its rows differ in input, output, size and recipe at once. Here the course's modules are
# put together in every combination (`experiments.modular`): the same shapes, optimiser, learning rate,
# batch and steps for every pair, each decoder with its usual loss (cross-entropy on the grid or at the
# occupancy samples, OGN's per-level cross-entropy with the target's octree structure for the octree (chapter
# 04; decoded with its own predicted structure), Chamfer for points and patches, chapter 08's expected loss for the cuboids, with
# chapter 08's number of primitives, samples and parsimony), each pair at the epoch its own validation loss
# prefers, and one score: Chamfer of the output surface's samples against the test targets, and IoU
# where the output encloses a volume. Read a row to see what the decoder contributes for one input,
# and a column to see what the input contributes for one output. Before looking: which column do you
# expect to depend most on the input?

# %%
from course_lib.experiments import modular as modular_lib  # noqa: E402

MOD = results.show("modular", "laptop")
if MOD is not None:
    cells = MOD.data["cells"]
    print("Chamfer x1e3 (mean over the test shapes), laptop benchmark; rows: encoders, columns: decoders")
    print(modular_lib.cross_table_text(MOD.data))
    b0 = next(iter(cells.values()))["budget"]
    print(f"every pair: {b0['steps']} steps, {b0['examples']} examples; "
          f"{len(MOD.data['shapes'])} test shapes")
    for c in MOD.data["claims"]:
        results.say("modular", c["id"])
    results.show_goals("modular")
else:  # a small live table: two encoders, two decoders, this profile's sizes
    live = modular_lib.cross_table(encoders=("image", "points"), decoders=("points", "implicit"))
    for k, v in live["means"].items():
        print(f"{k:18s} CD x1e3 {v['cd']:.3g}   IoU {v['iou']:.3f}   ({live['cells'][k]['budget']['steps']} steps, "
              f"{config.get_profile()} sizes: the numbers show the code path only)")

# %% [markdown]
# **The same table on the other family.** Lecture 01 measured how close ShapeNet-lite's test shapes sit to
# their nearest training shape: the base family has near-duplicates across its splits, the wide family far
# fewer. The benchmark was run on both families (same recipe,
# steps and sizes, `COURSE_VARIETY=base` or `wide`), each scored on its own test shapes; those are other
# shapes, so the two tables are not paired, and each is read on its own: do the same encoders and decoders
# lead within it? Below, the table of the family that is not active.

# %%
OTHER = "base" if config.variety() == "wide" else "wide"
MOD_OTHER = results.load("modular", "laptop", OTHER)
if MOD_OTHER is None:
    print(f"not measured yet: `COURSE_VARIETY={OTHER} COURSE_PROFILE=laptop python benchmarks/modular.py`")
else:
    print(f"modular on the {OTHER} family: {MOD_OTHER.describe()}")
    print(modular_lib.cross_table_text(MOD_OTHER.data))
    print()
    results.show_families("modular")  # the claims whose verdict changes, both families' sentences

# %% [markdown]
# ## The chapter on both families
#
# The whole table of section 3 was measured on both ShapeNet-lite families: every chapter's model loaded from
# the checkpoint its chapter trained on that family, scored on the family's own fresh test shapes, with the
# same columns, conventions and protocol study. Section 3 printed the active family's table (named in the
# notebook's first line); here is the other one. The two families' test shapes differ, so no row is
# paired across them: each claim keeps its own difference, standard error and verdict, read within its
# family, and `results.show_families` prints the ones whose verdict changes and each goal met in one family
# only. Before reading, predict: on the wide family, whose test shapes sit farther from every training shape,
# which rows should lose most against the oracle, and should the retrieval rows climb or fall in the ranking?

# %%
EV_OTHER = results.load("evaluation", "laptop", OTHER)
if EV_OTHER is None:
    print(f"not measured yet: `COURSE_VARIETY={OTHER} COURSE_PROFILE=laptop python benchmarks/evaluation.py`")
else:
    print(f"evaluation on the {OTHER} family: {EV_OTHER.describe()}")
    print("held-out shapes:", ", ".join(EV_OTHER.data["shapes"]))
    print(ev_lib.format_rows(EV_OTHER.data["table"]))
    print()
    results.show_families("evaluation")  # the claims whose verdict changes, both families' sentences

# %% [markdown]
# ## Summary
#
# - Every 3D metric hides a convention: squared or plain distances, sum or mean of the two
#   directions, a scale, a point count, a threshold. `metrics.PRESETS` names the papers' choices;
#   print the convention beside every number.
# - Each metric has a blind spot: Chamfer ignores density, Hausdorff sees one point, F-score
#   ignores how wrong the misses are, IoU ignores thin parts, normal consistency needs a mesh.
# - The oracle (two independent samplings) is a reference, not a floor: a set spread more evenly
#   than i.i.d. samples can score below it, as the farthest-point curve of section 2 shows.
# - One protocol across representations turns ten chapters into one table: the same fresh
#   held-out shapes, nothing chosen on them, a budget per row and a claim per comparison. It
#   cannot crown a representation: the inputs differ from row to row, and a ranking is only as
#   firm as the claims between its neighbours.
# - Encoder and decoder are separate choices: with one recipe and one budget for every pair
#   (section 7), a row of the cross table isolates the output representation and a column the input.
# - The limits of learned approaches are measurable: which outputs are closed surfaces, how cost
#   grows with resolution, how a model fares on a category it never saw, and what a real,
#   non-watertight mesh does to the notion of inside.
#
# ## Exercises
#
# 1. Add a column to `ev_lib.score`: the Chamfer distance restricted to thin parts (chapter 07's
#    `thin_part_sdf`). Which representation loses most on chair legs?
# 2. Re-rank the table by EMD and by F-score at each threshold of section 4. Which model moves the
#    most, and why?
# 3. Read the oracle's Chamfer at OccNet's point count off section 2's curve (extend it): how
#    does it compare with the models' differences in the table?
# 4. Replace the i.i.d. target by a farthest-point target. Which rows of the table change, and
#    does any model now "beat" the oracle on Chamfer?
# 5. Run `benchmarks/evaluation.py --unseen lamp` and compare with the bench study. Which
#    representations transfer better, and is that a property of the representation or of the
#    training set?
# 6. Make the voxel rows fair to their grid: score them against the voxelised target (chapter 03's
#    protocol) and compare with the table's IoU.
#
# ## References
#
# - [Mescheder2019] L. Mescheder, M. Oechsle, M. Niemeyer, S. Nowozin, A. Geiger. Occupancy
#   Networks: Learning 3D Reconstruction in Function Space. CVPR 2019.
# - [Park2019] J. J. Park, P. Florence, J. Straub, R. Newcombe, S. Lovegrove. DeepSDF: Learning
#   Continuous Signed Distance Functions for Shape Representation. CVPR 2019.
# - [Yang2019] G. Yang, X. Huang, Z. Hao, M.-Y. Liu, S. Belongie, B. Hariharan. PointFlow: 3D
#   Point Cloud Generation with Continuous Normalizing Flows. ICCV 2019.
# - [Cai2020] R. Cai et al. Learning Gradient Fields for Shape Generation. ECCV 2020.
# - [Groueix2018] T. Groueix, M. Fisher, V. G. Kim, B. Russell, M. Aubry. AtlasNet: A Papier-Mâché
#   Approach to Learning 3D Surface Generation. CVPR 2018.
# - [Choy2016] C. B. Choy, D. Xu, J. Gwak, K. Chen, S. Savarese. 3D-R2N2: A Unified Approach for
#   Single and Multi-view 3D Object Reconstruction. ECCV 2016.
# - [Liu2019] S. Liu, T. Li, W. Chen, H. Li. Soft Rasterizer: A Differentiable Renderer for
#   Image-based 3D Reasoning. ICCV 2019.
# - [Tatarchenko2019] M. Tatarchenko, S. R. Richter, R. Ranftl, Z. Li, V. Koltun, T. Brox. What Do
#   Single-view 3D Reconstruction Networks Learn? CVPR 2019 (the F-score argument).
# - [Achlioptas2018] P. Achlioptas et al. Learning Representations and Generative Models for 3D
#   Point Clouds. ICML 2018 (MMD, COV).
# - [LopezPaz2017] D. Lopez-Paz, M. Oquab. Revisiting Classifier Two-Sample Tests. ICLR 2017 (1-NNA).
