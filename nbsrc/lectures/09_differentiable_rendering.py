# %% [markdown]
# # 09 · Differentiable rendering: from images back to meshes
#
# Every chapter so far learned 3D from 3D supervision: points, voxels, SDF samples. Most of
# the world's data are **images**. If we could differentiate a renderer, an image loss could
# pull a mesh into shape: render it, compare with the photograph, push the vertices down the
# gradient. That is *inverse rendering*, and it runs into one wall at once: **rasterisation
# is not differentiable**. A pixel is either covered by a triangle or not; move a vertex by a
# hair and either nothing changes or a pixel flips. The derivative is zero almost everywhere
# and undefined where it is not.
#
# This chapter follows the way out that the tutorial slides sketch:
#
# - render **silhouettes** only, which avoids the z-buffer (Kato et al. [Kato2018]);
# - replace the hard edge by a **smooth** one, so that pixels near an edge feel the vertex:
#   Kato's approximate gradient, and the probabilistic **soft rasteriser** (SoftRas,
#   [Liu2019]) that we implement;
# - fit a sphere to silhouettes, and see that it needs **regularisers** (smoothness) and
#   **several views** [Petersen2019].
#
# The official renderers (neural_renderer, SoftRas, nvdiffrast) are CUDA extensions. The
# course's `course_lib.render` is plain PyTorch: batched, the same code on CPU and GPU, and
# with the cameras of `course_lib.data.render`, so a mesh rendered here lines up pixel for
# pixel with the data's own views. The experiments live in
# `course_lib.experiments.rendering`, the measurements in `benchmarks/rendering.py`.

# %%
import numpy as np
import torch

from course_lib import config, data, results, viz
from course_lib.experiments import rendering as R
from course_lib.geometry import flatten_loss, icosphere, laplacian_loss
from course_lib.render import look_at_cameras, project, rasterize_silhouette, render_mesh, silhouette_iou

print(config.describe())
torch.set_num_threads(1)  # every tensor of this chapter is small: more threads only add synchronisation

# %% [markdown]
# Sizes come from the `ch09.*` block of `course_lib.config`: in the `ci` profile the images
# are tiny and the fits run for a few steps, so the pictures only show the code path. The
# numbers that matter come from the laptop benchmark's results file, read below (never typed
# in by hand); where it is missing the lecture says so and shows live, ci-sized numbers.

# %%
SZ = config.sizes(prefix="ch09.")
SIZE, LEVEL = int(SZ["image_size"]), int(SZ["template_level"])
print({k: SZ[k] for k in ("image_size", "template_level", "n_views", "fit_steps", "sigma", "categories")})
MEASURED = results.show("rendering", "laptop", command="COURSE_PROFILE=laptop python benchmarks/rendering.py")
M = MEASURED.data if MEASURED is not None else {}

# %% [markdown]
# ## 1. The rendering pipeline
#
# A mesh is a list of vertices $x_i \in \mathbb{R}^3$ and triangles. Rendering it takes four steps:
#
# 1. **Camera transform**: $x_{cam} = R\,x + t$. Our cameras follow `course_lib.data.views`
#    (OpenCV style): camera $x$ to the right, $y$ **down**, $z$ forward into the scene.
# 2. **Projection**: $(u, v, 1)^\top \sim K\,x_{cam}$ with
#    $K = \begin{pmatrix} f & 0 & W/2 \\ 0 & f & H/2 \\ 0 & 0 & 1\end{pmatrix}$,
#    $f = H / (2\tan(\mathrm{fov}/2))$; $u$ is the column, $v$ the row, and the centre of
#    pixel (row $i$, column $j$) is $(j + \tfrac12, i + \tfrac12)$.
# 3. **Rasterisation**: for every pixel centre $p$ and projected triangle, decide whether $p$
#    is inside (three edge functions with the same sign).
# 4. **Z-buffer and shading**: among the triangles covering $p$, keep the nearest one
#    (smallest camera $z$, interpolated perspective-correctly) and colour the pixel with it.
#
# Below, the same ShapeNet-lite shape twice: on the left the data module's view (sphere
# tracing the exact SDF), on the right `render_mesh` of its marching-cubes mesh. Same camera,
# same pixels.

# %%
shape = data.make_shape("mug", data.reserved_seed("demo"))
ref = data.render(shape, azimuth=30.0, elevation=20.0, size=SIZE, color="uniform")
mesh = shape.mesh(48 if config.get_profile() == "ci" else 96)
mv = torch.tensor(np.asarray(mesh.vertices), dtype=torch.float32)
mf = torch.tensor(np.asarray(mesh.faces), dtype=torch.long)
cam = look_at_cameras(30.0, 20.0, R.CAMERA["distance"], R.CAMERA["fov"], SIZE)
out = render_mesh(mv, mf, cam, SIZE)
iou = float(silhouette_iou(out["silhouette"][0], ref["silhouette"]))
both = (out["silhouette"][0] > 0) & (ref["silhouette"] > 0)
print(f"mesh: {len(mesh.faces)} faces; silhouette IoU (mesh rasterised vs SDF traced) = {iou:.4f}; "
      f"median |depth difference| on common pixels = {float((out['depth'][0] - ref['depth'])[both].abs().median()):.4f}")
viz.plot_images([ref["rgb"], out["rgb"][0], ref["depth"].masked_fill(ref["depth"] == 0, float("nan")),
                 out["depth"][0].masked_fill(out["depth"][0] == 0, float("nan"))],
                titles=["data.render (SDF)", "render_mesh (z-buffer)", "depth, data.render", "depth, render_mesh"],
                cols=4, colorscale="Viridis")

# %%
if M.get("agreement"):
    print("laptop benchmark: hard silhouette vs trimesh ray casting and vs data.render")
    for r in M["agreement"]["rows"]:
        print(f"  {r['shape']}: IoU vs ray casting {r['iou_vs_ray_casting']:.4f}, "
              f"vs data.render {r['iou_vs_data_render']:.4f} (min over views {r['iou_vs_data_render_min']:.4f})")
else:
    print("laptop agreement numbers not measured yet (run the benchmark above); the live value is printed above")

# %% [markdown]
# ## 2. Where the derivative vanishes
#
# Write the silhouette at pixel $p$ as $S(p) = \max_j \mathbb{1}[p \in T_j(x)]$, where $T_j(x)$
# is the projected triangle $j$, which depends on the vertices $x$. For almost every $x$, a
# small move leaves every indicator unchanged: $\partial S(p) / \partial x = 0$. At the
# instants where an edge crosses a pixel centre the function jumps and has no derivative.
# So any loss of the image, $\mathcal{L}(S(x))$, has a gradient of exactly zero with respect
# to the vertices.
#
# `rasterize_silhouette(..., sigma=None)` builds its coverage from `torch.sign` of the edge
# functions, so autograd *does* run through it and returns the honest answer. We also move
# each vertex along its normal by a finite step and count the pixels that change.

# %%
zg = R.zero_gradient_demo(level=LEVEL, size=SIZE, fd_steps=(1e-3,))
fd = zg["finite_differences"][1e-3]
print(f"hard renderer: |dL/dx| = {zg['hard_grad_norm']} ({zg['hard_grad_nonzero']} non-zero entries); "
      f"moving each of the {zg['vertices']} vertices by 1e-3 changed {fd['pixels_changed']} pixels "
      f"(max |finite-difference slope| {fd['max_abs_slope']:.3g})")
print(f"soft renderer (sigma={zg['sigma']}): |dL/dx| = {zg['soft_grad_norm']:.4f}, "
      f"{zg['soft_grad_nonzero_vertices']} of {zg['vertices']} vertices get a gradient")

# %% [markdown]
# A larger step does flip pixels, but the slope it measures is a jump divided by the step:
# it grows without bound as the step shrinks. Nothing to descend on.
#
# ## 3. Blurring the edge
#
# **Kato's approximate gradient** [Kato2018] keeps the hard forward pass and invents a
# backward pass: when a vertex moves, its edges sweep across pixels; for a pixel $p$ whose
# colour would change from $I_0$ to $I_1$ once the edge reaches it after a move $\delta x$, the
# gradient is taken to be the slope $(I_1 - I_0)/\delta x$ of that linear interpolation, in the
# direction that reduces the loss. It works, but the forward and backward passes no longer
# describe the same function.
#
# **The soft rasteriser** [Liu2019] changes the forward pass instead, so that autograd gives
# the true gradient of a smooth image. Each triangle covers each pixel with a probability
#
# $$D_j(p) = \operatorname{sigmoid}\!\left(\delta_j(p)\, \frac{d_j(p)^2}{\sigma}\right), \qquad
#   \delta_j(p) = \begin{cases} +1 & p \in T_j \\ -1 & \text{otherwise,}\end{cases}$$
#
# where $d_j(p)$ is the screen distance from $p$ to the triangle's edges and $\sigma$ a
# temperature. Exactly on an edge $D_j = \tfrac12$; deep inside, $1$; far outside, $0$. The
# silhouette treats the triangles as independent occluders:
#
# $$A(p) = 1 - \prod_j \bigl(1 - D_j(p)\bigr).$$
#
# Where two faces share an edge inside the silhouette, a pixel centre on that edge gets
# $1 - \tfrac12 \cdot \tfrac12 = \tfrac34$ (and never less nearby): faint seams inside the
# soft silhouette, visible in the widget below.
#
# As $\sigma \to 0$ every $D_j$ becomes the indicator and $A$ the hard silhouette; for
# $\sigma > 0$ a vertex influences every pixel within a few $\sqrt{\sigma}$ of its edges.
# We measure $d$ in normalised screen units (the image height spans $2$), as SoftRas does, so
# $\sigma$ means the same at every resolution. Colour and depth use a softmax over the faces
# with weights $D_j \exp(z'_j/\gamma)$, $z'_j$ the normalised inverse depth, and a background
# term: a soft z-buffer (`render_mesh(..., sigma=...)`).
#
# The widget: a sphere of radius $0.6$ (162 vertices) seen from one camera. Left, its soft silhouette;
# right, $\partial A(p)/\partial t$ when one vertex moves outwards by $t$ (forward-mode autograd,
# `R.vertex_gradient_image`). Drag $\log_{10}\sigma$: small $\sigma$ gives a sharp image and a
# gradient confined to a thin band around the vertex's edges; large $\sigma$ a blurred image
# whose gradient reaches far.

# %%
v_s, f_s = icosphere(2)  # large faces, so that one vertex's edges span several pixels
v_s = v_s * 0.6
cam1 = look_at_cameras(30.0, 20.0, R.CAMERA["distance"], R.CAMERA["fov"], SIZE)
uvz = project(v_s[None], cam1)[0]
# a vertex on the rim of the silhouette: the farthest from the image centre
silhouette_vertex = int(((uvz[:, 0] - SIZE / 2) ** 2 + (uvz[:, 1] - SIZE / 2) ** 2).argmax())


def sigma_view(log10_sigma=-3.0, vertex=silhouette_vertex):
    sigma = 10.0 ** log10_sigma
    soft = rasterize_silhouette(v_s, f_s, cam1, SIZE, sigma=sigma)[0]
    grad = R.vertex_gradient_image(v_s, f_s, cam1, SIZE, sigma, vertex=int(vertex))
    m = float(grad.abs().max()) or 1.0
    fig = viz.plot_images([soft, grad / m], titles=[f"soft silhouette, sigma = {sigma:.1e}",
                                                   f"dA/dt for vertex {vertex} (max |.| = {m:.3g})"],
                          colorscale="RdBu")
    fig.data[0].update(colorscale="gray", zmin=0, zmax=1)
    fig.data[1].update(zmin=-1, zmax=1)
    u, v_ = float(uvz[int(vertex), 0]), float(uvz[int(vertex), 1])
    fig.add_scatter(x=[u - 0.5], y=[v_ - 0.5], mode="markers", marker={"color": "orange", "size": 8},
                    showlegend=False, row=1, col=2)
    return fig


viz.interact(sigma_view, log10_sigma=(-6.0, -1.5, 0.25, -3.0), vertex=(0, len(v_s) - 1, 1, silhouette_vertex))

# %% [markdown]
# ## 4. What it costs, and how to make it cheap
#
# Evaluated naively, the soft silhouette compares every face with every pixel: $F \cdot H
# \cdot W$ terms, about five million per image for the 1,280-face template at $64^2$
# pixels, each with a distance to three segments, all kept for the backward pass. But
# $D_j(p) < \varepsilon$ once $d_j(p)^2 > \sigma \log(1/\varepsilon - 1)$: a face only matters
# inside its screen bounding box grown by $\sqrt{\sigma \log(1/\varepsilon - 1)}$. The default
# `method="culled"` enumerates exactly those (pixel, face) pairs and sums $\log(1 - D_j)$ per
# pixel with `index_add`; `method="dense"` evaluates everything with the same formulas and
# the same cut-off $\varepsilon$ (`cull_eps`), which the unit tests use as the reference.

# %%
live = R.raster_speed(level=int(SZ["speed_level"]), size=int(SZ["speed_size"]), batch=int(SZ["speed_batch"]),
                      repeat=1, warmup=False)
print(f"live ({config.get_profile()} sizes: {live['faces']} faces, {live['size']}^2, batch {live['batch']}): "
      f"culled {live['seconds']['culled'] * 1e3:.1f} ms, dense {live['seconds']['dense'] * 1e3:.1f} ms "
      f"forward+backward; max |difference| {live['max_abs_diff']:.1e}")
if M.get("speed"):
    for dev, r in M["speed"].items():
        print(f"laptop benchmark on {dev}: {r['faces']} faces, {r['size']}^2, batch {r['batch']}: culled "
              f"{r['seconds']['culled']:.3f} s, dense {r['seconds']['dense']:.3f} s (x{r['speedup']:.0f}), "
              f"max |difference| {r['max_abs_diff']:.1e}")
else:
    print("laptop speed not measured yet: COURSE_PROFILE=laptop python benchmarks/rendering.py --part speed")

# %% [markdown]
# ## 5. Inverse rendering as optimisation: one silhouette
#
# The unknowns are one offset per vertex of an icosphere (642 vertices at level 3, the
# template of [Kato2018]). The loss compares soft silhouettes $A$ with target masks $T$ by
# their intersection over union,
#
# $$\mathcal{L}_{IoU} = 1 - \frac{\sum_p A(p)\,T(p)}{\sum_p A(p) + T(p) - A(p)\,T(p)},$$
#
# averaged over views, and Adam moves the vertices (the betas of SoftRas' deformation demo,
# twice its learning rate, `ch09.lr`).
# The targets are the data module's silhouettes of a held-out (test split) ShapeNet-lite
# shape, so they come from the exact SDF, not from the renderer we optimise.
#
# First, one view only, as on the slides. With the silhouette loss alone the vertices are
# free to do anything the one view cannot see: depth is unconstrained and neighbouring
# vertices need not stay neighbours. Two regularisers keep it a surface:
#
# - **Laplacian** smoothness: $\mathcal{L}_{lap} = \sum_i \bigl\| x_i - \tfrac{1}{|N(i)|}\sum_{k \in N(i)} x_k \bigr\|^2$,
#   each vertex near the mean of its neighbours (`geometry.laplacian_loss`);
# - **flatten**: $\mathcal{L}_{flat} = \sum_{e} (\cos\theta_e + 1)^2$ over the edges, $\theta_e$ the
#   angle between the two faces at $e$, which is $\pi$ (cost $0$) when they are coplanar
#   (`geometry.flatten_loss`, [Kato2018]).
#
# We use the weights of SoftRas' deformation demo (`ch09.lambda_lap`, `ch09.lambda_flat`).

# %%
test_shape = data.make_shape(SZ["categories"][0], data.split_seeds("test", 1)[0])
FIT = {"level": LEVEL, "lr": float(SZ["lr"]), "sigma": float(SZ["sigma"]), "sigma_start": float(SZ["sigma_start"])}
HELD = R.heldout_rig(int(SZ["n_heldout_views"]), int(SZ["n_views"]))
t1, c1 = R.target_views(test_shape, [(30.0, 30.0)], SIZE)
single = {}
for name, lap, flat in (("with regularisers", SZ["lambda_lap"], SZ["lambda_flat"]), ("IoU only", 0.0, 0.0)):
    res = R.fit_silhouettes(t1, c1, steps=int(SZ["single_view_steps"]), lambda_lap=float(lap),
                            lambda_flat=float(flat), **FIT)
    ev = R.evaluate_fit(res.verts, res.faces, test_shape, HELD, SIZE, int(SZ["n_eval_points"]))
    single[name] = (res, ev)
    print(f"one view, {name}: IoU on the fitted view {res.history['iou'][-1]:.3f}, on held-out views "
          f"{ev['iou']:.3f}; Laplacian {float(laplacian_loss(res.verts, res.faces)):.3g}, "
          f"flatten {float(flatten_loss(res.verts, res.faces)):.3g} (live, {config.get_profile()} sizes)")
viz.subplots([viz.plot_mesh((r.verts, r.faces)) for r, _ in single.values()],
             titles=[f"one view, {k}" for k in single], height=340)

# %%
if M.get("single"):
    for r in M["single"]["rows"]:
        print(f"laptop benchmark, one view, {r['name']}: fitted view IoU {r['fit_view_iou']:.3f}, held-out "
              f"{r['heldout_iou']:.3f}, CD x1e3 {r['chamfer']:.2f}, Laplacian {r['laplacian']:.3g}, "
              f"flatten {r['flatten']:.3g}")
else:
    print("laptop single-view fit not measured yet: COURSE_PROFILE=laptop python benchmarks/rendering.py --part single")

# %% [markdown]
# Read the two rows against each other before trusting the slides' story. The regularisers keep
# the surface a surface: the Laplacian and flatten energies of the regularised fit are orders of
# magnitude lower (each edge folded flat onto its neighbour adds up to $4$ to the flatten energy,
# so the unregularised fit's value means many folded edges). But the held-out IoU and the Chamfer distance do **not** reward that:
# in the laptop benchmark the unregularised fit scores better on both (printed above), because
# silhouettes and nearest-neighbour distances cannot see a crumpled or folded sheet,
# only where it lies. A metric measures what it measures; chapter 06's normal consistency, or a
# count of self-intersecting faces, would see the difference. Neither fit can invent what the
# single view hides: the held-out views see the sides the fitted view could not, and there the
# fit is a guess.
#
# ## 6. Several views
#
# Each additional view carves away what lies outside its silhouette: with enough views the
# fit approaches the **visual hull** of the shape, the largest volume consistent with all
# silhouettes. Concavities that no silhouette shows (the inside of a mug) stay filled, and a
# sphere cannot grow a handle's hole: silhouettes of a genus-0 mesh have limits. We fit
# `ch09.n_views` views (elevations alternately above and below the equator) and score on
# held-out views at another elevation, plus the 3D Chamfer distance to the true surface.
# The temperature is annealed from `ch09.sigma_start` to `ch09.sigma`: wide gradients first,
# sharp edges last (Section 8 shows why).

# %%
views = R.view_rig(int(SZ["n_views"]))
tm, cm = R.target_views(test_shape, views, SIZE)
multi = R.fit_silhouettes(tm, cm, steps=int(SZ["fit_steps"]), lambda_lap=float(SZ["lambda_lap"]),
                          lambda_flat=float(SZ["lambda_flat"]), snapshot_every=max(1, int(SZ["fit_steps"]) // 10),
                          **FIT)
ev_m = R.evaluate_fit(multi.verts, multi.faces, test_shape, HELD, SIZE, int(SZ["n_eval_points"]))
th, ch = R.target_views(test_shape, HELD, SIZE)
print(f"live ({config.get_profile()} sizes, {multi.seconds:.1f} s): IoU on the fitting views "
      f"{multi.history['iou'][-1]:.3f}, on held-out views {ev_m['iou']:.3f}; CD x1e3 {ev_m['chamfer']:.2f}")
print(R.CD_CONVENTION)


LAST = len(multi.snapshots) - 1


def fit_view(snapshot=LAST):
    verts = multi.snapshots[int(snapshot)]
    step = multi.snapshot_steps[int(snapshot)]
    fit_sil = rasterize_silhouette(verts, multi.faces, cm[0], SIZE)[0]
    held_sil = rasterize_silhouette(verts, multi.faces, ch[0], SIZE)[0]
    return viz.plot_images([tm[0], fit_sil, th[0], held_sil],
                           titles=["target, fitting view", f"fit after {step} steps", "target, held-out view",
                                   f"fit, held-out view (IoU {float(silhouette_iou(held_sil, th[0])):.3f})"], cols=4)


viz.interact(fit_view, snapshot=(0, LAST, 1, LAST))

# %%
viz.subplots([viz.plot_mesh((multi.verts, multi.faces)), viz.plot_mesh(mesh)],
             titles=["fitted icosphere", "true surface (marching cubes)"], height=360)

# %%
if M.get("multi"):
    m = M["multi"]
    for r in m["rows"]:
        print(f"laptop benchmark: {r['shape']}: held-out IoU {r['heldout_iou']:.3f}, CD x1e3 {r['chamfer']:.2f}, "
              f"{r['seconds']:.0f} s")
    u = m["unregularised"]
    print(f"  mean held-out IoU {m['mean_heldout_iou']:.3f}; without regularisers ({u['shape']}): "
          f"held-out IoU {u['heldout_iou']:.3f}, CD x1e3 {u['chamfer']:.2f}")
else:
    print("laptop multi-view fits not measured yet: COURSE_PROFILE=laptop python benchmarks/rendering.py --part multi")

# %% [markdown]
# **Where the sphere falls short.** Compare the shapes above. A deformed icosphere is still a
# sphere: genus 0, one connected piece, as many vertices as it started with. A mug's handle or a
# chair's gaps between legs and back make holes in some silhouettes that no deformation of a
# sphere can open, and thin parts (an airplane's wings, a chair's legs) get only a handful of the
# 642 vertices. The shapes whose held-out IoU is lowest are the ones with holes and thin parts;
# more steps sharpen the fit on the training views but cannot change the topology. Chapter 06's
# patches and chapter 07's implicit fields lift that limit.

# %% [markdown]
# ## 7. The loss curve
#
# The IoU on the fitting views rises fast while the silhouettes' interiors fill, then slowly
# as the edges settle; the regularisers trade a little IoU for a smooth surface.

# %%
steps = np.arange(len(multi.history["iou"]))
viz.plot_curves(steps, {"IoU (fitting views)": multi.history["iou"],
                        "lambda_lap * Laplacian": [float(SZ["lambda_lap"]) * x for x in multi.history["laplacian"]]},
                xlabel="step", title="multi-view fit")

# %% [markdown]
# ## 8. The effect of sigma
#
# A small $\sigma$ renders nearly the true silhouette but a vertex then talks only to the
# pixels within a fraction of a pixel of its edges: most steps see no gradient and the fit
# stalls. A large $\sigma$ gives every vertex a wide view but a blurred, fattened silhouette, so
# the fit converges to the wrong size. The benchmark fits with each fixed $\sigma$ of
# `ch09.sigmas`, and once with the annealed schedule.

# %%
if M.get("sigma"):
    for r in M["sigma"]["rows"]:
        print(f"laptop benchmark, sigma={r['sigma']:.0e}: blur {r['mean_abs_diff_to_hard']:.4f}, gradient pixels "
              f"{r['gradient_pixels_one_vertex']}, held-out IoU {r['heldout_iou']:.3f}, CD x1e3 {r['chamfer']:.2f}")
    a = M["sigma"]["annealed"]
    print(f"  annealed {a['sigma_start']:.0e} -> {a['sigma']:.0e}: held-out IoU {a['heldout_iou']:.3f}")
else:
    print("laptop sigma sweep not measured yet: COURSE_PROFILE=laptop python benchmarks/rendering.py --part sigma")
    for s in SZ["sigmas"]:
        g = R.vertex_gradient_image(v_s, f_s, cam1, SIZE, float(s), vertex=silhouette_vertex)
        print(f"  live: sigma={s:.0e}: {int((g.abs() > 1e-6).sum())} pixels feel vertex {silhouette_vertex}")

# %% [markdown]
# ## Summary
#
# - Rasterisation and the z-buffer are step functions of the vertices: the gradient of any
#   image loss is exactly zero (autograd says so, finite differences agree).
# - Two ways out: an approximate backward pass (Kato's neural renderer) or a smooth forward pass
#   (SoftRas): per-face coverage $\operatorname{sigmoid}(\delta\, d^2/\sigma)$, aggregated as
#   $1 - \prod(1 - D_j)$, colour by a softmax over depth. $\sigma$ trades sharpness for reach.
# - Culling faces by their grown bounding boxes makes the soft rasteriser cost the area of the
#   faces' neighbourhoods instead of $F \cdot H \cdot W$, with the same output.
# - Fitting a mesh to silhouettes is an optimisation over vertices; one view is ill-posed, the
#   Laplacian and flatten regularisers keep the surface a surface (which silhouette IoU and
#   Chamfer do not reward: measured), and several views pin the shape down to its visual hull,
#   up to what a deformed sphere can be (no holes).
#
# ## Exercises
#
# 1. Add a shading term: fit to `data.render`'s RGB images with `render_mesh(..., sigma=...)`
#    and compare the held-out IoU with the silhouette-only fit. Where does shading help?
# 2. Implement Kato's approximate gradient as a `torch.autograd.Function` around the hard
#    rasteriser (forward: hard silhouette; backward: for each pixel whose value would flip when
#    an edge moved onto it, the interpolated slope). Compare its gradient image with SoftRas'.
# 3. Replace the uniform Laplacian by the cotangent Laplacian. Does the fitted mesh keep more
#    even triangles?
# 4. Fit a mug with increasing `n_views`. Plot held-out IoU against the number of views; why
#    does it saturate below one?
#
# **References**
#
# - [Kato2018] H. Kato, Y. Ushiku, T. Harada. Neural 3D Mesh Renderer. CVPR 2018.
# - [Liu2019] S. Liu, T. Li, W. Chen, H. Li. Soft Rasterizer: A Differentiable Renderer for
#   Image-based 3D Reasoning. ICCV 2019.
# - [Petersen2019] F. Petersen, A. H. Bermano, O. Deussen, D. Cohen-Or. Pix2Vex: Image-to-Geometry
#   Reconstruction using a Smooth Differentiable Renderer. arXiv:1903.11149, 2019.
# - [Laine2020] S. Laine et al. Modular Primitives for High-Performance Differentiable Rendering
#   (nvdiffrast). SIGGRAPH Asia 2020.
