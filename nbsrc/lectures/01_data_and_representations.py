# %% [markdown]
# # 01 · Data and representations
#
# Before any network: what goes **in** (images, depth maps, point clouds), what comes
# **out** (voxels, points, meshes, signed distance functions), how the two are tied
# together in the training setup that every later chapter reuses, how to convert one
# representation into another, and what each one costs in memory.
#
# **Contents**
# 1. Data types: RGB, RGB-D, point clouds
# 2. The training setup: synthetic data → encoder → latent code → decoder → loss
# 3. Four representations of one shape: voxels, points, meshes, signed distances
# 4. Sampling a surface uniformly
# 5. Conversions between representations
# 6. Memory per representation, measured
# 7. The gallery
# 8. How held out is the test split?
# 9. Summary, exercises, references

# %%
import os
import time

import torch

from course_lib import config, data, geometry, results, viz
from course_lib.experiments import retrieval
from course_lib.experiments.common import load_split
from course_lib.models import PointNet
from course_lib.ops import chamfer_distance

print(config.describe())
S = config.sizes(prefix="ch01.")
print(dict(S))

# %% [markdown]
# ## Why learn 3D at all?
#
# Classical multi-view reconstruction recovers geometry from many calibrated photographs
# and fills the gaps with hand-made assumptions, for instance that walls are axis-aligned
# planes (the "Manhattan world" of Furukawa et al., 2009). Learning replaces such rules by a
# prior **extracted from data**: after seeing thousands of chairs, a network can guess the
# hidden back of a chair from one photograph. The price is a dataset of 3D shapes and a
# choice of how to represent a shape as a tensor, which is what this chapter is about.
#
# Our data set is **ShapeNet-lite**, a procedural stand-in for ShapeNet (Chang et al.,
# 2015): ten categories of shapes built from analytic primitives with seeded random
# sizes. Because every shape is a formula, we know exactly what is inside and outside it, and its
# signed distance exactly or as a lower bound (section 3 measures where), and every other
# representation can be derived from it with no download.

# %%
shape = data.make_shape("chair", data.reserved_seed("demo3"))  # a demo shape, outside every split
print(shape)
print("categories:", ", ".join(data.CATEGORIES))

# %% [markdown]
# ## 1. Data types: what a sensor gives us
#
# | input | what it is | tensor | typical encoder (chapter 02) |
# |---|---|---|---|
# | **RGB image** | colours seen by a camera | `(3, H, W)` | a 2D CNN, e.g. ResNet (He et al., 2016) |
# | **RGB-D image** | colours + the depth of each pixel (Kinect, LiDAR-equipped phones) | `(4, H, W)` | the same CNN with 4 input channels |
# | **point cloud** | unordered 3D samples of the visible or whole surface (scanners, depth back-projected) | `(N, 3)` | PointNet and successors (Qi et al., 2017) |
#
# `data.render` draws a shape from a known camera: a shaded RGB image, a depth map and a
# silhouette, with the intrinsics `K` and the extrinsics `Rt`.

# %%
views = data.render(shape, size=S["image_size"])
print({k: tuple(v.shape) for k, v in views.items() if hasattr(v, "shape")})
depth_vis = torch.where(views["silhouette"] > 0, views["depth"], torch.full_like(views["depth"], float("nan")))
viz.plot_images([views["rgb"], depth_vis, views["silhouette"]], titles=["RGB", "depth", "silhouette"],
                colorscale="Viridis")

# %% [markdown]
# An RGB-D image is only **2.5D**: one depth per pixel, so only the surface seen by the
# camera. Back-projecting the depth map with the pinhole model gives a partial point cloud.
# A pixel $(u, v)$ with depth $d$ (the $z$ coordinate in the camera frame) comes from the
# camera-frame point $X_c = d\,K^{-1}(u, v, 1)^\top$, and with $[R \mid t]$ mapping world to
# camera coordinates, the world point is $X = R^\top (X_c - t)$. (Conventions of
# `data.render`: OpenCV camera, $x$ right, $y$ down, $z$ forward; the centre of the pixel in
# row $i$, column $j$ is $(u, v) = (j + 0.5, i + 0.5)$.)

# %%
H, W = views["depth"].shape
rows, cols = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
hit = views["silhouette"] > 0
uv1 = torch.stack([cols + 0.5, rows + 0.5, torch.ones(H, W)], dim=-1)[hit]  # (n, 3)
x_cam = views["depth"][hit][:, None] * (uv1 @ torch.linalg.inv(views["K"]).T)
R, t = views["Rt"][:, :3], views["Rt"][:, 3]
partial = (x_cam - t) @ R  # R^T (x_cam - t), written for row vectors
print(f"{len(partial)} points from a {H}x{W} depth map; their SDF: max |f| = {shape.sdf(partial).abs().max():.1e}")
full, _ = shape.sample_surface(S["n_points"], seed=0)
fig = viz.plot_points(full, color="lightgrey", size=1.5, name="whole surface")
viz.plot_points(partial, color="crimson", size=2.5, name="seen by the camera", fig=fig,
                title="a depth map covers one side only")

# %% [markdown]
# ## 2. The training setup
#
# Almost every method of this course trains the same pipeline on **synthetic data**:
# render many views of many 3D models (as 3D-R2N2 did with ShapeNet, Choy et al., 2016),
# so that each input comes with its ground-truth shape.

# %%
viz.plot_diagram(
    [("synthetic data", "renders / scans of 3D models"), ("encoder E", "CNN or PointNet"),
     ("latent code z", "a vector, e.g. 256 floats"), ("decoder D", "voxels, points, mesh, SDF"),
     ("loss", "compare with the ground truth")],
    colors=["#f2f0f7", "#deebf7", "#fee6ce", "#deebf7", "#fde0dd"],
    loop_back="gradients update D and E",
    title="training setup for 3D reconstruction",
)

# %% [markdown]
# The encoder $E$ turns the input into a fixed-size **latent code** $z = E(x)$; the decoder
# $D$ turns $z$ into a shape in some representation; a loss $\mathcal{L}(D(E(x)), S)$ compares
# it with the ground truth $S$; both are trained by gradient descent. The chapters differ by
# the decoder (voxels: 03, octrees: 04, points: 05, surfaces: 06, implicit fields: 07,
# primitives: 08, gradient fields: 10) and therefore by the loss, which must compare two
# shapes in that representation. Here is the whole loop once, untrained, on a batch of
# four point clouds: a PointNet encoder, a fully connected decoder that outputs points,
# and the Chamfer distance as the loss.

# %%
torch.manual_seed(0)
batch = torch.stack([geometry.sample_mesh_surface(data.make_shape(c, data.reserved_seed("demo")).mesh(S["mesh_resolution"]), 512, seed=0)[0]
                     for c in ("chair", "table", "mug", "airplane")])  # (B, N, 3): a batch of clouds
encoder = PointNet(feat_dim=256, hidden=(64, 128))
decoder = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 512 * 3))
z = encoder(batch).global_feature
prediction = decoder(z).view(-1, 512, 3)
loss = chamfer_distance(prediction, batch)
loss.backward()
print(f"input {tuple(batch.shape)} -> latent {tuple(z.shape)} -> output {tuple(prediction.shape)}; "
      f"Chamfer loss {loss.item():.3f}; encoder gradient norm "
      f"{sum(p.grad.norm() ** 2 for p in encoder.parameters() if p.grad is not None) ** 0.5:.3f}")

# %% [markdown]
# **Real datasets, one switch.** ShapeNet-lite is generated on your machine; if you have ModelNet or
# ShapeNetCore on disk, `load_split(split, representations, dataset="modelnet", root=...)` (or the
# environment variable `COURSE_DATASET=modelnet` / `shapenetcore`, with `COURSE_MODELNET_DIR` /
# `COURSE_SHAPENET_DIR`) returns the same keys from real meshes: three independent samplings, SDF and
# occupancy samples and voxels whose inside comes from the winding number of the repaired mesh
# (chapter 07 explains both), and rendered views (`image`: the mesh ray cast with `data.render_mesh`
# from the same random cameras as ShapeNet-lite's); a mesh whose inside cannot be decided is skipped
# and listed in `manifest` with the reason. For a whole dataset, preprocess once in parallel and resumably:
# `python -m course_lib.data.real_split --dataset modelnet --split train val test --workers 8` (README,
# "Use your own data"). The cell runs only where such a folder is set. (Of the
# chapters' own recipes, chapters 02-08 and 10 take the switch so far; 09 and 11 do not yet.)

# %%
if os.environ.get("COURSE_MODELNET_DIR"):
    real = load_split("train", ("points", "occupancy"), dataset="modelnet", shapes_per_category=2, n_points=1024)
    print(f"ModelNet: {tuple(real['points'].shape)} points of {sorted(set(real['category']))}; "
          f"{len(real['manifest'])} meshes skipped")
else:
    print("no COURSE_MODELNET_DIR set: the lecture uses ShapeNet-lite (nothing is downloaded)")

# %% [markdown]
# ## 3. Four representations of one shape
#
# In 2D the answer is obvious: an image is a grid of pixels. In 3D there is no single
# answer, and each choice shapes the network that produces it.
#
# **Signed distance function (SDF).** For a solid $\Omega$ with surface $\partial\Omega$,
# $$f(x) = \begin{cases} -\,d(x, \partial\Omega) & x \in \Omega \\ +\,d(x, \partial\Omega) & x \notin \Omega \end{cases}$$
# The surface is the zero level set $\{x : f(x) = 0\}$, the outward normal is
# $\nabla f / \lVert\nabla f\rVert$, and a true distance has $\lVert \nabla f\rVert = 1$ almost
# everywhere. DeepSDF (Park et al., 2019) learns $f$ with an MLP.
#
# **Occupancy.** $o(x) = \mathbb{1}[x \in \Omega] = \mathbb{1}[f(x) < 0]$: only the sign. Occupancy
# networks (Mescheder et al., 2019) and IM-NET (Chen & Zhang, 2019) learn it as a
# classifier.
#
# **Voxels.** Occupancy sampled on a regular $R^3$ grid: cell $(i,j,k)$ is full when its
# centre is inside. Easy for 3D convolutions (3D ShapeNets, Wu et al., 2015; 3D-R2N2 at
# $32^3$), but the memory grows as $R^3$.
#
# **Points.** $N$ samples of the surface, an unordered set: PointNet reads them,
# PointSetGen (Fan et al., 2017) outputs them. No connectivity, no inside or outside.
#
# **Mesh.** Vertices $V \in \mathbb{R}^{n_v \times 3}$ and triangles $F \in \{0..n_v-1\}^{n_f\times 3}$:
# the standard of graphics. AtlasNet (Groueix et al., 2018) produces surfaces by deforming
# squares.

# %%
mesh = shape.mesh(S["mesh_resolution"])
points, normals = shape.sample_surface(S["n_points"], seed=0)
voxels = data.voxelize(shape, S["voxel_resolution"])
viz.subplots(
    [viz.plot_voxels(voxels), viz.plot_points(points, color="y", size=1.5),
     viz.plot_mesh(mesh), viz.plot_sdf_slice(shape, axis="z", value=0.0)],
    titles=[f"voxels {S['voxel_resolution']}^3", f"{S['n_points']} points",
            f"mesh, {len(mesh.faces)} triangles", "SDF, slice z = 0"],
    cols=4, height=360,
)

# %% [markdown]
# Slide a plane through the chair: red is inside ($f < 0$), blue outside, the black line is
# the surface $f = 0$. Far from the shape the colour grows linearly with the distance.

# %%
viz.interact(lambda axis, value: viz.plot_sdf_slice(shape, axis=axis, value=value, resolution=96),
             axis=["z", "x", "y"], value=(-0.9, 0.9, 0.05, 0.0), title="SDF slices")

# %% [markdown]
# The properties of an SDF can be checked numerically: on surface samples $f \approx 0$,
# the normalised gradient is the normal, and near the surface $\lVert\nabla f\rVert \approx 1$.

# %%
sdf_on_surface, grad = shape.gradient(points)
near = points + 0.05 * normals  # 0.05 outside the surface
sdf_near, grad_near = shape.gradient(near)
print(f"|f| on surface samples: max {sdf_on_surface.abs().max():.2e}")
print(f"f at 0.05 outside: mean {sdf_near.mean():.4f} (expected 0.05 where the surface is locally flat)")
print(f"|grad f| at 0.05 outside: mean {grad_near.norm(dim=-1).mean():.4f}")
cos = torch.nn.functional.cosine_similarity(grad, normals, dim=-1)
print(f"cosine between grad f and the returned normals: min {cos.min():.4f}")

# %% [markdown]
# Is every ShapeNet-lite SDF a *true* distance, with $\lVert\nabla f\rVert = 1$ everywhere? A union
# ($\min$) of exact primitive SDFs is exact outside and, almost everywhere, inside too. Two
# constructions are only **bounds** (they never overestimate the distance, which is all sphere
# tracing and Newton projection need): ellipsoids, and differences and intersections of solids. Where a bound
# underestimates, its gradient is shorter than 1. Measured below on uniform points of the
# box $[-1.1, 1.1]^3$, per category (fraction of points with $\lvert\lVert\nabla f\rVert - 1\rvert \le 0.01$):

# %%
rows = []
for cat in data.CATEGORIES[: S["gradient_categories"]]:
    st = data.sdf_gradient_stats(data.make_shape(cat, data.split_seeds("test", 1)[0]), n=S["gradient_points"])
    rows.append((cat, st["inside_unit_fraction"], st["inside_min_norm"], st["outside_unit_fraction"],
                 st["outside_min_norm"]))
print(f"{'category':10s} {'inside: unit':>13s} {'min':>6s} {'outside: unit':>14s} {'min':>6s}")
for cat, iu, imin, ou, omin in rows:
    print(f"{cat:10s} {iu:13.3f} {imin:6.2f} {ou:14.3f} {omin:6.2f}")
exact = [r[0] for r in rows if r[1] == 1.0 and r[3] == 1.0]
print(f"exact distance at every sampled point: {', '.join(exact) or 'none'}")

# %% [markdown]
# | | voxels | points | mesh | SDF / occupancy network |
# |---|---|---|---|---|
# | memory | $R^3$ | $N$ | $n_v + n_f$ (about $R^2$) | the network's parameters |
# | resolution | fixed by $R$ | fixed by $N$ | adaptive | any: query anywhere |
# | topology | any | none (no connectivity) | fixed by the template, or any if extracted | any |
# | easy for a network to output? | yes (3D CNN) | yes (MLP) | hard (connectivity) | yes (MLP per point) |
# | surface for rendering | blocky | needs reconstruction | yes | after marching cubes |

# %% [markdown]
# ## 4. Sampling a surface uniformly
#
# Surface samples feed PointNet, and the Chamfer distance between a prediction and the
# ground truth is computed on them, so they must be spread **uniformly by area**: a mesh
# has small triangles where the surface is curved and large ones where it is flat, and
# sampling "a few points per triangle" would over-represent the curved parts.
#
# 1. choose triangle $f$ with probability $A_f / \sum_g A_g$;
# 2. choose a point uniform inside it. Barycentric weights from two uniform numbers
#    $r_1, r_2$: $\;p = (1-\sqrt{r_1})\,a + \sqrt{r_1}(1-r_2)\,b + \sqrt{r_1}\,r_2\,c$ (the formula of
#    Osada et al., 2002). The square root is needed because the slice of the triangle at
#    distance $s$ from $a$ has a length proportional to $s$: the distance must have density
#    $\propto s$, and $\sqrt{r_1}$ has exactly that law.
#
# The figure compares three recipes in one triangle (2 000 points each).

# %%
g = torch.Generator().manual_seed(0)
tri = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.3, 0.9, 0.0]])
r1, r2 = torch.rand(2000, 1, generator=g), torch.rand(2000, 1, generator=g)
right = (1 - r1.sqrt()) * tri[0] + r1.sqrt() * (1 - r2) * tri[1] + r1.sqrt() * r2 * tri[2]
no_sqrt = (1 - r1) * tri[0] + r1 * (1 - r2) * tri[1] + r1 * r2 * tri[2]
w = torch.rand(2000, 3, generator=g)
normalised = (w / w.sum(-1, keepdim=True)) @ tri
figs = [viz.plot_points(p, size=2) for p in (right, no_sqrt, normalised)]
for f in figs:
    f.update_scenes(camera={"up": {"x": 0, "y": 1, "z": 0}, "eye": {"x": 0, "y": 0, "z": 2}})
viz.subplots(figs, titles=["sqrt trick: uniform", "no sqrt: crowds at vertex a", "normalised weights: crowds at the centre"],
             height=330)

# %% [markdown]
# The library's sampler is `geometry.sample_mesh_surface` (you write your own in the lab).
# `Shape.sample_surface` samples its marching-cubes mesh this way and then projects every
# point onto the exact zero level set with a few Newton steps, $x \leftarrow x - f(x)\,\nabla f / \lVert\nabla f\rVert^2$.

# %%
pts_mesh, nrm_mesh = geometry.sample_mesh_surface(mesh, S["n_points"], seed=0)
print(f"samples of the mesh: |f| mean {shape.sdf(pts_mesh).abs().mean():.2e} (the mesh is an approximation)")
print(f"projected samples (Shape.sample_surface): |f| mean {shape.sdf(points).abs().mean():.2e}")

# %% [markdown]
# ## 5. Conversions
#
# | from → to | how | library |
# |---|---|---|
# | mesh → points | area-weighted sampling | `geometry.sample_mesh_surface` |
# | SDF → voxels | sign at cell centres | `data.voxelize` |
# | SDF → mesh | marching cubes on a grid of values (Lorensen & Cline, 1987) | `geometry.sdf_grid`, `geometry.marching_cubes` |
# | mesh → voxels | inside test at cell centres | `geometry.mesh_to_voxels` |
# | points (+ normals) → mesh | Poisson reconstruction (Kazhdan et al., 2006) | `geometry.poisson_reconstruct` |
#
# **Marching cubes** evaluates $f$ on the nodes of a grid, finds the cells whose corners
# change sign, and places triangle vertices on the cell edges by linear interpolation of
# $f$. The result is a closed mesh whose detail is limited by the grid: compare
# resolutions.

# %%
mc_figs, mc_titles = [], []
for r in sorted({16, S["mesh_resolution"] // 2, S["mesh_resolution"]}):
    t0 = time.perf_counter()
    grid = geometry.sdf_grid(shape, r, bound=1.1)
    m = geometry.marching_cubes(grid, level=0.0, bound=1.1)
    mc_figs.append(viz.plot_mesh(m))
    mc_titles.append(f"R = {r}: {len(m.faces)} triangles, {time.perf_counter() - t0:.2f} s")
viz.subplots(mc_figs, titles=mc_titles, height=350)

# %% [markdown]
# The same question for voxels: how fine must the grid be before the legs appear?

# %%
viz.interact(lambda resolution: viz.plot_voxels(data.voxelize(shape, resolution)),
             resolution=(8, 48, 4, S["voxel_resolution"]), title="voxel resolution")

# %% [markdown]
# **Mesh → voxels** gives the same grid as the SDF route when the mesh is fine enough;
# the differences are cells whose centre lies between the mesh and the exact surface.

# %%
r = S["voxel_resolution"]
from_sdf = data.voxelize(shape, r)
from_mesh = geometry.mesh_to_voxels(mesh, r)
agree = (from_sdf == from_mesh).float().mean().item()
iou = ((from_sdf & from_mesh).sum() / (from_sdf | from_mesh).sum()).item()
print(f"{r}^3 voxels from the SDF vs from the mesh: {100 * agree:.2f}% of the cells agree, IoU {iou:.3f}")

# %% [markdown]
# **Points → mesh.** Poisson reconstruction finds an indicator function whose gradient best
# matches the oriented normals of the points, then extracts its level set. It needs
# normals, and it closes holes smoothly; chapter 06 uses it as the contrast to AtlasNet.

# %%
rec = geometry.poisson_reconstruct(points, normals, resolution=S["poisson_resolution"])
err = shape.sdf(torch.as_tensor(rec.vertices, dtype=torch.float32)).abs()
print(f"Poisson mesh: {len(rec.faces)} triangles; distance of its vertices to the true surface: "
      f"mean {err.mean():.4f}, max {err.max():.4f}")
viz.subplots([viz.plot_points(points, size=1.5, color="y"), viz.plot_mesh(rec)],
             titles=["input: oriented points", "Poisson reconstruction"], height=350)

# %% [markdown]
# ## 6. Memory per representation, measured
#
# For each resolution $R$ we build the representations of a car (a chunky shape: the
# chair's thin legs are "all surface" at low resolution) and count their bytes
# (`tensor.element_size() * tensor.numel()`, numpy's `nbytes` for meshes) with
# `geometry.memory_table`; the lab fills the same table with your own `count_bytes` and `voxelize`:
#
# - a bool voxel grid ($R^3$ bytes) and a float32 SDF grid ($4R^3$ bytes);
# - the marching-cubes mesh at the same $R$ (float64 vertices and int64 faces, as trimesh
#   stores them);
# - a float32 point cloud with one point per **surface voxel** (a fair "same detail" count);
# - an MLP SDF: a small one (3 → 128 → 128 → 1) and one of DeepSDF's size (Park et al.,
#   2019: 8 layers of 512 units on a 256-float latent code plus $x$), independent of $R$.

# %%
car = data.make_shape("car", data.reserved_seed("demo"))
mem = geometry.memory_table(car, S["memory_resolutions"], device=config.get_device())
resolutions, table = mem["resolutions"], mem["rows"]
print(f"{'R':>30}" + "".join(f"{r:>12}" for r in resolutions))
for name, row in table.items():
    print(f"{name:>30}" + "".join(f"{b / 1024:>10.1f}Ki" for b in row))
print(f"{'surface / occupied voxels':>30}" + "".join(f"{s:>12.2f}" for s in mem["surface_share"]))
viz.plot_curves(resolutions, table, log_x=True, log_y=True, xlabel="resolution R", ylabel="bytes",
                title="memory per representation (log-log: slope 3 for grids, 2 for surfaces)")

# %% [markdown]
# The slopes on the log-log plot are the lesson of chapters 03 and 04: a dense grid pays
# for every cell of the volume, while the information sits on the surface, whose cell count
# grows only as $R^2$ (the last row: the share of occupied voxels that touch the outside
# shrinks as $R$ grows). Octrees (chapter 04) spend memory only near the surface; implicit
# networks (chapter 07) have a fixed cost whatever the resolution at which we query them.

# %%
fit = geometry.fitted_exponents(resolutions, table)
print("fitted exponents (bytes ~ R^k):", {k: round(v, 2) for k, v in fit.items()})

# %% [markdown]
# ## 7. The gallery
#
# Pick a category, a seed and a representation. With a widget frontend (JupyterLab,
# Notebook 7, VS Code, Colab) the controls redraw the figure when you release them;
# elsewhere (a static viewer, a headless run) you see the figure of the first choice.

# %%
viz.gallery(seeds=range(S["gallery_seeds"]), n_points=S["n_points"], mesh_resolution=S["mesh_resolution"],
            voxel_resolution=S["voxel_resolution"], image_size=S["image_size"])

# %% [markdown]
# For clouds of hundreds of thousands of points plotly gets slow; `viz.k3d_points` draws
# them all with k3d (WebGL). Without k3d, or in a viewer without widgets, you get a capped
# plotly figure instead.

# %%
big, _ = geometry.sample_mesh_surface(mesh, 20 * S["n_points"], seed=1)
viz.k3d_points(big, color=big[:, 1], name=f"{len(big)} points")

# %% [markdown]
# ## 8. How held out is the test split?
#
# Every chapter trains on `train`, makes its choices on `val` and reports on `test`
# (`data.split_seeds`: three disjoint ranges of seeds). Disjoint seeds do not make different
# shapes: a generator with a few parameters per category can draw a test chair that is nearly a
# copy of a training chair, and then a network that only *retrieves* the nearest training shape
# scores well without reconstructing anything. Tatarchenko et al. (CVPR 2019) showed that on
# ShapeNet single-view reconstruction a retrieval baseline scores about as well as the networks
# of the time, which is why a **retrieval row** belongs in every reconstruction table of this course.
#
# The yardstick is the **oracle distance** of a test shape $t$: the Chamfer distance between two
# independent samplings of its own surface (`target_points` and `oracle_points`), what a perfect
# reconstruction scores. Against it we put
#
# - the distance to the nearest training shape, $d_\text{near}(t) = \min_{s \in \text{train}} \mathrm{CD}(t, s)$:
#   a training shape within twice the oracle distance is a near-duplicate;
# - the spread of the training set itself, the leave-one-out distance
#   $d_\text{loo}(s) = \min_{s' \neq s} \mathrm{CD}(s, s')$: if the test shapes come from the same
#   distribution as the training shapes, $d_\text{near}$ and $d_\text{loo}$ have about the same median
#   (a test shape searches one training shape more than a training shape does).
#
# `course_lib.experiments.retrieval` computes the three (`nearest_training_distances`,
# `oracle_distances`, `leave_one_out_distances`) and the baseline itself: `retrieve(train, query,
# by="oracle")` picks the training shape nearest to the answer (an upper bound: it looks at the
# target), `by="latent"` the one whose encoder code is nearest (what a real system can run). Here
# is one test chair and the training chair retrieval would answer with.

# %%
n_demo = config.size("data.n_surface_points")
chairs = data.ShapeNetLite("train", "target_points", categories="chair", n_target=n_demo).stacked()
probe = data.ShapeNetLite("test", ("target_points", "oracle_points"), categories="chair", shapes_per_category=1,
                          n_target=n_demo).stacked()
found = retrieval.retrieve(chairs["target_points"], probe["target_points"][0], by="oracle")
oracle_cd = retrieval.oracle_distances(probe["target_points"], probe["oracle_points"])[0]
print(f"test chair (seed {int(probe['seed'][0])}): nearest of {len(chairs['seed'])} training chairs is seed "
      f"{int(chairs['seed'][found.index])}, CD {found.distance:.2e} = {found.distance / oracle_cd:.2f} x its oracle "
      f"distance {oracle_cd:.2e}")
shift = torch.tensor([2.2, 0.0, 0.0])  # one 3D scene (each scene costs the page a WebGL context)
fig = viz.plot_points(probe["target_points"][0], size=1.5, color="steelblue", name="test chair",
                      title="a test chair (left) and its nearest training chair (right)")
viz.plot_points(found.clouds + shift, size=1.5, color="darkorange", name="nearest training chair", fig=fig)

# %% [markdown]
# One chair says little. `benchmarks/splits.py` measures every test shape of every category at
# chapter 10's sizes, and chapter 10's memorising baseline (training shapes plus noise), whose
# generation score raised the question: its 1-NNA with and without noise, its spread over many
# draws, and what two exchangeable sets of the same sizes score in expectation. It was first run on
# the **base family**, the shapes the course started with (`make_shape(category, seed, variety="base")`,
# a few parameters per category). The table and the sentences below are printed from that results
# file, the sentences written by `retrieval.describe_splits` from its numbers.

# %%
SPLITS = results.show("splits", "laptop", variety="base")
if SPLITS is not None:
    print(retrieval.format_splits_table(SPLITS.data["summary"], scale=SPLITS.data["scale"]))
    print()
    print(retrieval.describe_splits(SPLITS.data))
    print()
    results.say("splits", "oracle_vs_nearest", variety="base")
    results.show_goals("splits", variety="base")

# %% [markdown]
# **A wider family.** If the categories vary too little, the remedy is more variety: more part types,
# wider proportions and changes of topology per category (swivel and cantilever chairs, stools,
# trestle and pedestal tables, delta wings and twin tails, pickups and convertibles, arm lamps, cups
# without handles, L-shaped sofas, ladder bookshelves, ...). The **wide family** builds them from the
# same exact primitives (`make_shape(category, seed, variety="wide")`). `COURSE_VARIETY=wide jupyter lab`
# runs the whole course on it: `make_shape(category, seed)` and every chapter's data then make wide
# shapes, and the lectures read the wide family's results (each family keeps its own cache folder and
# results files: a benchmark run on the wide family writes `<name>-wide-<profile>.json`, on the base
# family `<name>-<profile>.json`). The course's default is still the base family
# (`config.DEFAULT_VARIETY`). Wide shapes are watertight and keep the base family's thickness rule, but
# one is not always in one piece: a car's wheels or a mug's lid may float just apart from the body.
# The same measurement on the wide family, from its own results file (`benchmarks/splits.py --variety
# wide`), and the same three seeds' chairs in each family:

# %%
WIDE = results.show("splits-wide", "laptop")
if WIDE is not None:
    print(retrieval.format_splits_table(WIDE.data["summary"], scale=WIDE.data["scale"]))
    print()
    print(retrieval.describe_splits(WIDE.data))
    results.show_goals("splits-wide")
import plotly.graph_objects as go  # noqa: E402

# three chairs of each family, seen from the side (a flat figure: the page already holds its share of 3D scenes)
fig = go.Figure()
for row, (variety, colour) in enumerate((("base", "steelblue"), ("wide", "darkorange"))):
    for k, name in enumerate(("demo", "demo2", "demo3")):
        pts = data.make_shape("chair", data.reserved_seed(name),
                              variety=variety).sample_surface(800)[0]
        fig.add_trace(go.Scatter(x=(pts[:, 2] + 2.4 * k).tolist(), y=(pts[:, 1] - 2.4 * row).tolist(), mode="markers",
                                 marker={"size": 2, "color": colour}, name=f"{variety} family", legendgroup=variety,
                                 showlegend=k == 0))
fig.update_layout(title="the same three seeds in each family, side view: base (top), wide (bottom)", height=420,
                  xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"})
fig

# %% [markdown]
# The wide family becomes the course's default once every benchmark the lectures read is measured on it.
# How far that is, chapter by chapter: README's mark on each family's results files (🔶 where a chapter's
# benchmarks have not run on it yet), how many of the chapter's claims measured on both families keep their
# verdict (each chapter's lecture ends with the ones that change), and the benchmarks its lecture reads that
# are still to run on the wide family (`python -m course_lib.results` prints the same with the commands;
# `--claims` adds every changed verdict). A goal met on one family and missed on the other is read within its
# family: the wide family's test shapes are farther from the training shapes.

# %%
from course_lib.experiments.common import rows_table  # noqa: E402

print(rows_table([{**r, "wide_missing": ", ".join(r["wide_missing"]) or "-"} for r in results.family_status("laptop")]))

# %% [markdown]
# ## Summary
#
# - Inputs: RGB images `(3, H, W)`, RGB-D images (2.5D: one depth per pixel, only the
#   visible side) and point clouds `(N, 3)`.
# - The training setup: synthetic data with known shapes → encoder → latent code →
#   decoder → a loss that compares shapes in the decoder's representation.
# - Representations: voxels (dense, $R^3$), points (no connectivity), meshes (compact,
#   hard to generate), SDF/occupancy (continuous, any topology, a mesh by marching cubes).
# - Uniform surface sampling: triangles by area, then the $\sqrt{r_1}$ barycentric trick.
# - Memory: grids grow as $R^3$, surfaces as $R^2$, networks not at all.
# - Held out: disjoint seeds are not different shapes. A test shape's distance to its nearest
#   training shape, read against its oracle distance and the training set's leave-one-out
#   distance, says how new it is; the retrieval baseline (`retrieval.retrieve`) goes in every
#   reconstruction table. ShapeNet-lite's wide family (`COURSE_VARIETY=wide`) is built so that its test
#   shapes sit farther from the training shapes than the base family's.
#
# ## Exercises to go further
#
# 1. Back-project the depth maps of several cameras (`data.render` with other views) and
#    merge them: how many views cover the whole chair?
# 2. Sample with marching cubes *without* the Newton projection at $R = 16$ and at $R = 64$:
#    how far are the points from the true surface? Plot the mean $|f|$ against $R$.
# 3. Voxelise at $R = 128$ and count the surface voxels; extrapolate the memory of a dense
#    grid versus a sparse list of surface voxels at $R = 1024$.
# 4. Replace marching cubes on the SDF by marching cubes on the *voxel* grid (level $0.5$):
#    why is the mesh blocky, and how does the error shrink with $R$?
# 5. Retrieve by latent code: encode the training chairs and the test chair of section 8 with the
#    untrained `PointNet` of section 2 (`.global_feature`) and call `retrieval.retrieve(...,
#    by="latent")`. Does it pick the oracle's chair? Over all test chairs, how often?
#
# ## References
#
# - Chang et al., *ShapeNet: An Information-Rich 3D Model Repository*, arXiv 2015.
# - Chen & Zhang, *Learning Implicit Fields for Generative Shape Modeling* (IM-NET), CVPR 2019.
# - Choy et al., *3D-R2N2: A Unified Approach for Single and Multi-view 3D Object Reconstruction*, ECCV 2016.
# - Fan, Su & Guibas, *A Point Set Generation Network for 3D Object Reconstruction from a Single Image*, CVPR 2017.
# - Furukawa et al., *Manhattan-World Stereo*, CVPR 2009.
# - Groueix et al., *AtlasNet: A Papier-Mâché Approach to Learning 3D Surface Generation*, CVPR 2018.
# - He et al., *Deep Residual Learning for Image Recognition*, CVPR 2016.
# - Kazhdan, Bolitho & Hoppe, *Poisson Surface Reconstruction*, SGP 2006; Kazhdan & Hoppe, *Screened Poisson Surface Reconstruction*, ToG 2013.
# - Lorensen & Cline, *Marching Cubes: A High Resolution 3D Surface Construction Algorithm*, SIGGRAPH 1987.
# - Mescheder et al., *Occupancy Networks: Learning 3D Reconstruction in Function Space*, CVPR 2019.
# - Osada et al., *Shape Distributions*, ACM ToG 2002.
# - Park et al., *DeepSDF: Learning Continuous Signed Distance Functions for Shape Representation*, CVPR 2019.
# - Qi et al., *PointNet: Deep Learning on Point Sets for 3D Classification and Segmentation*, CVPR 2017.
# - Tatarchenko et al., *What Do Single-view 3D Reconstruction Networks Learn?*, CVPR 2019.
# - Wu et al., *3D ShapeNets: A Deep Representation for Volumetric Shapes*, CVPR 2015.
