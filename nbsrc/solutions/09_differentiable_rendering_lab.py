# %% [markdown]
# # 09 · Lab: a soft rasteriser and a silhouette fit
#
# Four exercises, each followed by a self-check:
#
# 1. the soft coverage of one triangle, SoftRas' $D = \operatorname{sigmoid}(\delta\, d^2/\sigma)$;
# 2. the aggregation of the faces' coverages into a silhouette, $1 - \prod_f (1 - D_f)$;
# 3. the silhouette IoU loss;
# 4. the uniform Laplacian regulariser.
#
# Then you render a triangle with your coverage, and fit an icosphere to the silhouettes of a
# held-out ShapeNet-lite shape with your loss and your regulariser, using the library's soft
# rasteriser (`course_lib.render.rasterize_silhouette`). Write batched code: no Python loop
# over points or pixels (a loop over the three edges of a triangle is fine).

# %%
import math

import torch

from course_lib import checks, config, data, results, viz
from course_lib.experiments import rendering as R
from course_lib.geometry import icosphere
from course_lib.render import rasterize_silhouette

checks.stop_on_failure()  # a wrong answer stops "Run all" at its check, before the cells that use it

print(config.describe())
torch.set_num_threads(1)  # every tensor of this chapter is small: more threads only add synchronisation
SZ = config.sizes(prefix="ch09.")

# %% [markdown]
# ## Exercise 1: the soft coverage of one triangle
#
# Given points `points` of shape `(P, 2)` and a triangle `tri` of shape `(3, 2)` (same 2D
# units), return the coverage of every point, shape `(P,)`:
#
# $$D(p) = \operatorname{sigmoid}\!\left(\delta(p)\,\frac{d(p)^2}{\sigma}\right),$$
#
# where $d(p)$ is the distance from $p$ to the triangle (the nearest point of its three edges,
# each a **segment**) and $\delta(p) = +1$ if $p$ is strictly inside the triangle, $-1$
# otherwise. The triangle may be listed clockwise or counter-clockwise.
#
# *Hints:* the distance from $p$ to the segment $[a, b]$ is $\|p - (a + t (b - a))\|$ with
# $t = \operatorname{clamp}\bigl(\frac{(p - a)\cdot(b - a)}{\|b - a\|^2}, 0, 1\bigr)$. The point
# is inside when the three cross products $(b - a) \times (p - a)$, $(c - b) \times (p - b)$,
# $(a - c) \times (p - c)$ all have the same sign.

# %%
def soft_coverage(points: torch.Tensor, tri: torch.Tensor, sigma: float) -> torch.Tensor:
    """SoftRas' coverage ``sigmoid(delta d^2 / sigma)`` of one triangle at every point.

    Args:
        points: float tensor ``(P, 2)`` (float32 or float64), 2D positions (any units: the lab uses pixels).
        tri: float tensor ``(3, 2)``, same dtype and units, the corners in either orientation; it may require
            grad (the gradient must reach it).
        sigma: a Python float > 0, in the squared units of ``points`` (px^2 in the lab).

    Returns:
        tensor ``(P,)`` of the inputs' dtype, in [0, 1]. Leave ``points`` and ``tri`` unchanged.
    """
    ### BEGIN SOLUTION
    d2 = None
    cross = []
    for k in range(3):
        a, b = tri[k], tri[(k + 1) % 3]
        e = b - a
        t = (((points - a) * e).sum(-1) / (e * e).sum()).clamp(0.0, 1.0)
        dk = ((points - a - t[:, None] * e) ** 2).sum(-1)
        d2 = dk if d2 is None else torch.minimum(d2, dk)
        w = points - a
        cross.append(e[0] * w[:, 1] - e[1] * w[:, 0])
    c = torch.stack(cross)
    inside = (c > 0).all(0) | (c < 0).all(0)
    sign = torch.where(inside, 1.0, -1.0).to(points.dtype)
    return torch.sigmoid(sign * d2 / sigma)
    ### END SOLUTION


# %%
checks.check_soft_coverage(soft_coverage)

# %% [markdown]
# ### Look at it
#
# One triangle on a $48 \times 48$ pixel grid for three temperatures: the edge at $D = 1/2$
# stays put, the transition widens like $\sqrt{\sigma}$.
#
# **Predict first.** From $\sigma = 1$ to $100$ px$^2$, how wide (in pixels) will the band where the
# coverage goes from 0.1 to 0.9 become: about 1, 3 or 10 pixels? Will the corners look sharper or
# rounder than the edges?

# %% tags=["uses-exercise"]
images = []  # set below, once your soft_coverage runs
n = 48
jj, ii = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing="xy")
pix = torch.stack([jj.reshape(-1), ii.reshape(-1)], -1)
triangle = torch.tensor([[8.0, 40.0], [40.0, 30.0], [18.0, 6.0]])
images = [soft_coverage(pix, triangle, s).reshape(n, n) for s in (1.0, 10.0, 100.0)]
viz.plot_images(images, titles=[f"sigma = {s} px^2" for s in (1, 10, 100)])

# %% [markdown]
# **Observe.** The edge at $D = 1/2$ does not move: the same pixels are more than half covered at every
# $\sigma$. The band $0.1 < D < 0.9$ lies where $d^2 < \sigma \ln 9$, within $\sqrt{\sigma \ln 9}$ of the
# edge on either side, so it grows like $\sqrt{\sigma}$: about 3 pixels wide at $\sigma = 1$ px$^2$, about
# 3 times wider at $\sigma = 10$, and at $\sigma = 100$ px$^2$ wider than the triangle itself (its inscribed
# circle has a radius of about 10 px): no pixel, not even the centre, reaches 0.9. The corners look
# rounder than the edges: outside the triangle the coverage depends only on the distance to it, and the
# points at one distance from a corner lie on a circle around it, so the band's outer border ($D = 0.1$)
# turns the corners into circular arcs. The next cell measures this on your three images.
#
# The chapter's benchmark (laptop profile) rendered a whole mug softly at the $\sigma$ values the fits
# use ($\sigma$ there is in squared *normalised screen* units, not pixels) and compared with the hard
# silhouette; its record is printed below. How does the difference to the hard silhouette shrink with
# $\sigma$, and what does a smaller $\sigma$ cost the gradient (question 1)?

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(len(images) < 3)
perimeter = float(sum((triangle[k] - triangle[k - 1]).norm() for k in range(3)))
area = 0.5 * abs(float(torch.linalg.det(torch.stack([triangle[1] - triangle[0], triangle[2] - triangle[0]]))))
band = [int(((im > 0.1) & (im < 0.9)).sum()) for im in images]
width = [b / perimeter for b in band]  # the band's area over the edges' length: its mean width in pixels
checks.observe("the edge D = 1/2 stays put: the same pixels are more than half covered at every sigma",
               all(torch.equal(im > 0.5, images[0] > 0.5) for im in images),
               measured="pixels above 1/2: " + ", ".join(str(int((im > 0.5).sum())) for im in images))
checks.observe("at sigma = 1 px^2 the band 0.1 < D < 0.9 is about 3 pixels wide (between 2 and 4.5)",
               2.0 < width[0] < 4.5, measured=f"band area / perimeter {width[0]:.1f} px")
checks.observe("the band grows like sqrt(sigma): about 3 times wider at sigma = 10 than at sigma = 1 "
               "(2 to 4.5 times)",
               2.0 < width[1] / width[0] < 4.5, measured=f"{width[1]:.1f} px against {width[0]:.1f} px")
checks.observe("at sigma = 100 px^2 the band is wider than the triangle: no pixel reaches D = 0.9",
               float(images[2].max()) < 0.9, measured=f"largest coverage {float(images[2].max()):.2f}")
# at sigma = 10, D = 0.1 at the distance r outside the edges: the pixels above 0.1 fill the triangle grown by r,
# either with round corners (area A + P r + pi r^2) or as a larger triangle with sharp ones (A (1 + r / inradius)^2)
r = (10.0 * math.log(9.0)) ** 0.5
above = int((images[1] > 0.1).sum())
round_corners = area + perimeter * r + math.pi * r ** 2
sharp_corners = area * (1 + r / (2 * area / perimeter)) ** 2
checks.observe("the corners are rounded: at sigma = 10 the pixels with D > 0.1 fill the triangle grown with round "
               "corners, not a larger triangle with sharp ones",
               abs(above - round_corners) < abs(above - sharp_corners),
               measured=f"{above} pixels; round corners {round_corners:.0f}, sharp corners {sharp_corners:.0f}")

# %%
agreement = results.get("rendering", "agreement")
if agreement:
    for sig, row in agreement["rows"][0]["soft"].items():
        print(f"benchmark (laptop, {agreement['rows'][0]['shape']}, {agreement['size']} px): sigma {sig}: mean "
              f"|soft - hard| {row['mean_abs_diff_to_hard']:.4f}, IoU of the soft image thresholded at 1/2 "
              f"{row['iou_thresholded']:.3f}")
else:
    print("the benchmark's numbers are not here yet: COURSE_PROFILE=laptop python benchmarks/rendering.py")

# %% [markdown]
# ## Exercise 2: from the faces' coverages to a silhouette
#
# A mesh has many faces, and a pixel near an edge is partly covered by several of them. SoftRas
# reads each coverage $D_f$ as the probability that face $f$ covers the pixel and combines them
# as independent events: the pixel is covered unless **no** face covers it,
#
# $$S = 1 - \prod_{f\ \text{drawn}} \bigl(1 - D_f\bigr).$$
#
# `coverage` has shape `(B, F, H, W)` (face `f`'s coverage of every pixel of image `b`) and
# `valid` `(B, F)` (bool) says which faces are drawn: a face behind the camera or of zero area is
# not (the library's rasteriser drops them), and it must change nothing. Return `(B, H, W)`.
#
# *Hints:* the faces are dimension 1. A face that is not drawn is a factor 1 in the product. A plain
# product is fine here; the library computes it in log space (`torch.log1p`, `torch.expm1`): if you
# do too, a coverage of exactly 1 (a saturated sigmoid inside a face) must not give NaN.

# %%
def aggregate_silhouette(coverage: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """SoftRas' silhouette ``1 - prod_f (1 - D_f)`` over the faces that are drawn.

    Args:
        coverage: float tensor ``(B, F, H, W)`` (float32 or float64), values in [0, 1]; it may require grad.
        valid: bool tensor ``(B, F)``, True for the faces that are drawn in image ``b``.

    Returns:
        tensor ``(B, H, W)`` of ``coverage``'s dtype, in [0, 1], that carries the gradient to ``coverage``.
        Leave ``coverage`` and ``valid`` unchanged.
    """
    ### BEGIN SOLUTION
    miss = torch.where(valid[:, :, None, None], 1.0 - coverage, torch.ones_like(coverage))
    return 1.0 - miss.prod(dim=1)
    ### END SOLUTION


# %%
checks.check_aggregate_silhouette(aggregate_silhouette)

# %% [markdown]
# ### Look at it: seams and layers
#
# A square made of two triangles that share its diagonal, on the same $48 \times 48$ grid, at
# $\sigma = 10$ px$^2$: your `soft_coverage` for each triangle, your `aggregate_silhouette` to
# combine them. The cell also combines them with the largest coverage (max over the faces) and, your
# way, the square listed twice (a hidden second layer of the same faces, as when a fit folds a mesh
# onto itself).
#
# **Predict first.** A pixel centre on the shared diagonal is on an edge of both triangles
# ($d = 0$, so $D = 1/2$ for each). What will the silhouette be there: 1/2, 3/4 or 1? And with the
# max over the faces? Will the square listed twice look the same as the square listed once?

# %% tags=["uses-exercise"]
seam = {}  # set below, once your soft_coverage and aggregate_silhouette run
square = torch.tensor([[8.0, 8.0], [40.0, 8.0], [40.0, 40.0], [8.0, 40.0]])
halves = torch.stack([square[[0, 1, 2]], square[[0, 2, 3]]])  # two triangles sharing the diagonal (8, 8)-(40, 40)
cov = torch.stack([soft_coverage(pix, t, 10.0).reshape(n, n) for t in halves])[None]  # (1, 2, 48, 48)
once = aggregate_silhouette(cov, torch.ones(1, 2, dtype=torch.bool))[0]
twice = aggregate_silhouette(torch.cat([cov, cov], 1), torch.ones(1, 4, dtype=torch.bool))[0]
by_max = cov[0].amax(0)
diag = torch.arange(8, 40)  # the pixels whose centres lie on the diagonal
seam = {"once": float(once[diag, diag].mean()), "max": float(by_max[diag, diag].mean()),
        "twice": float(twice[diag, diag].mean())}
print("silhouette on the diagonal: " + ", ".join(f"{k} {v:.3f}" for k, v in seam.items()))
viz.plot_images([once, by_max, twice], titles=["1 - prod(1 - D)", "max over faces", "the square listed twice"])

# %% [markdown]
# **Observe.** On the diagonal the silhouette is $1 - \frac12\cdot\frac12 = 3/4$, not 1: the edge the two
# triangles share shows as a seam of lower coverage across the square, as wide as the band of exercise 1 (it narrows
# with $\sigma$). With the max over the faces the seam falls to 1/2, as low as the square's outer border:
# the inner edge would look like a hole, and only the larger coverage would get a gradient. The square
# listed twice is not the same silhouette: the seam rises to $1 - (1/2)^4 \approx 0.94$ and the whole soft
# area grows, although the covered shape has not changed. A soft-IoU fit can therefore gain by stacking
# faces (question 2). Where, on a closed mesh seen from outside, are there always two layers?

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(len(seam) < 3)
checks.observe("on the shared diagonal the silhouette is 3/4 (1 - 1/2 x 1/2): the inner edge shows as a seam",
               abs(seam["once"] - 0.75) < 0.01, measured=f"mean on the diagonal {seam['once']:.3f}")
checks.observe("with the max over the faces the seam falls to 1/2", abs(seam["max"] - 0.5) < 0.01,
               measured=f"mean on the diagonal {seam['max']:.3f}")
checks.observe("the square listed twice lifts the seam to about 0.94 (1 - (1/2)^4) and the soft area grows, though "
               "the shape is the same",
               abs(seam["twice"] - 0.9375) < 0.01 and float(twice.sum()) > float(once.sum()),
               measured=f"seam {seam['twice']:.3f}; soft area {float(twice.sum()):.0f} against "
                        f"{float(once.sum()):.0f} px")

# %% [markdown]
# ## Exercise 3: the silhouette IoU loss
#
# `pred` and `target` are silhouettes of shape `(B, H, W)` with values in $[0, 1]$ (soft or
# binary). Return one number: the mean over the batch of
#
# $$1 - \frac{\sum_p \mathrm{pred}(p)\,\mathrm{target}(p)}{\sum_p \mathrm{pred}(p) + \mathrm{target}(p) - \mathrm{pred}(p)\,\mathrm{target}(p)}.$$

# %%
def iou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The silhouette loss ``mean over the batch of 1 - soft IoU``.

    Args:
        pred: float tensor ``(B, H, W)`` (float32 or float64), values in [0, 1] (soft silhouettes); it may
            require grad.
        target: float tensor ``(B, H, W)``, same dtype, values in [0, 1] (0./1. for a binary mask); every image
            has at least one nonzero pixel in ``pred`` or ``target``.

    Returns:
        a scalar tensor (shape ``()``) of ``pred``'s dtype that carries the gradient to ``pred``.
    """
    ### BEGIN SOLUTION
    inter = (pred * target).sum((1, 2))
    union = (pred + target - pred * target).sum((1, 2))
    return (1.0 - inter / union).mean()
    ### END SOLUTION


# %%
checks.check_iou_loss(iou_loss)

# %% [markdown]
# ## Exercise 4: the uniform Laplacian regulariser
#
# For a mesh with vertices `verts` `(V, 3)` and triangles `faces` `(F, 3)`, return
#
# $$\mathcal{L}_{lap} = \sum_i \Bigl\| x_i - \frac{1}{|N(i)|} \sum_{k \in N(i)} x_k \Bigr\|^2,$$
#
# where $N(i)$ is the set of vertices joined to $i$ by an edge (each neighbour once, even
# though an inner edge belongs to two faces).
#
# *Hints:* stack the three edges of every face, sort each pair and keep the unique rows
# (`torch.unique(..., dim=0)`); then accumulate neighbour sums and degrees with `index_add`.

# %%
def laplacian_loss(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """The uniform Laplacian regulariser ``sum_i ||x_i - mean of x over i's neighbours||^2``.

    Args:
        verts: float tensor ``(V, 3)`` (float32 or float64); it may require grad.
        faces: int64 tensor ``(F, 3)`` of vertex indices in ``[0, V)``, every vertex in at least one face;
            faces may be listed in either orientation.

    Returns:
        a scalar tensor (shape ``()``) of ``verts``' dtype. Leave ``verts`` and ``faces`` unchanged.
    """
    ### BEGIN SOLUTION
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = torch.unique(torch.sort(e, dim=1).values, dim=0)
    i = torch.cat([e[:, 0], e[:, 1]])
    j = torch.cat([e[:, 1], e[:, 0]])
    sums = torch.zeros_like(verts).index_add(0, i, verts[j])
    deg = torch.zeros(verts.shape[0], dtype=verts.dtype).index_add(0, i, torch.ones(i.numel(), dtype=verts.dtype))
    lap = verts - sums / deg.clamp(min=1)[:, None]
    return lap.square().sum()
    ### END SOLUTION


# %%
checks.check_laplacian_loss(laplacian_loss)

# %% [markdown]
# ## Use them: fit an icosphere to silhouettes
#
# The targets are `data.render` silhouettes of a test-split shape from `ch09.n_views` cameras.
# The loop below is all of inverse rendering: render the current mesh softly from every view,
# compare with your IoU loss, add your Laplacian, step. Then we score the fit on views it never
# saw, with the hard renderer.
#
# **Predict first.** Starting from a sphere, after the loop's steps, will the hard IoU on the views the
# fit never saw be about 0.5, 0.7 or 0.9? Will the held-out views score higher or lower than the views
# the mesh was fitted to?

# %%
shape = data.make_shape(SZ["categories"][0], data.split_seeds("test", 1)[0])
size, level = int(SZ["image_size"]), int(SZ["template_level"])
views = R.view_rig(int(SZ["n_views"]))
held = R.heldout_rig(int(SZ["n_heldout_views"]), int(SZ["n_views"]))
target, cams = R.target_views(shape, views, size)
v0, faces = icosphere(level, radius=0.5)
steps = int(SZ["lab_steps"])
start = R.evaluate_fit(v0, faces, shape, held, size, int(SZ["n_eval_points"]))  # the sphere, before any step

# %% tags=["uses-exercise"]
ev = ev_fit = None  # set below, once the fit has run
offset = torch.zeros_like(v0, requires_grad=True)
opt = torch.optim.Adam([offset], lr=float(SZ["lr"]), betas=(0.5, 0.99))
history = []
for step in range(steps):
    sigma = float(SZ["sigma_start"]) * (float(SZ["sigma"]) / float(SZ["sigma_start"])) ** (step / max(steps - 1, 1))
    verts = v0 + offset
    sil = rasterize_silhouette(verts[None], faces, cams, size, sigma=sigma)
    loss = iou_loss(sil, target) + float(SZ["lambda_lap"]) * laplacian_loss(verts, faces)
    opt.zero_grad()
    loss.backward()
    opt.step()
    history.append(float(loss.detach()))
fitted = (v0 + offset).detach()
ev = R.evaluate_fit(fitted, faces, shape, held, size, int(SZ["n_eval_points"]))
ev_fit = R.evaluate_fit(fitted, faces, shape, views, size, int(SZ["n_eval_points"]))
print(f"{steps} steps: loss {history[0]:.3f} -> {history[-1]:.3f}; held-out IoU {start['iou']:.3f} "
      f"(the sphere) -> {ev['iou']:.3f}, on the {len(views)} fitted views {ev_fit['iou']:.3f}; "
      f"CD x1e3 {start['chamfer']:.2f} -> {ev['chamfer']:.2f} ({R.CD_CONVENTION})")
viz.plot_mesh((fitted, faces), title=f"icosphere fitted to {len(views)} silhouettes of a {shape.category}")

# %% [markdown]
# **Observe.** The starting sphere scores about 0.45 on the held-out views. In the `laptop` profile (150
# steps on 64-pixel images from 8 views) the fit lifts that to about 0.9; the chapter's benchmark ran the
# same kind of fit for 300 steps on test shapes of four categories and reached 0.91 on its held-out views
# (its record is printed below). The `ci` run is too small to get there: 10 steps on 32-pixel images from
# 4 views stop around 0.75, still far above the sphere. In every profile the views the fit never saw score
# a little lower than the views it was fitted to, or about the same: a few silhouettes from around the
# shape pin its outline down between them too. Which parts of a shape can no silhouette show (question 3)?

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(ev_fit is None)
checks.observe("the fit lifts the held-out IoU well above the starting sphere's (by more than 0.2)",
               ev["iou"] > start["iou"] + 0.2, measured=f"held-out IoU {start['iou']:.3f} -> {ev['iou']:.3f}")
checks.observe("the held-out IoU reaches about 0.9 (above 0.85)", ev["iou"] > 0.85, shown_in=("laptop", "gpu"),
               measured=f"held-out IoU {ev['iou']:.3f} after {steps} steps")
checks.observe("the held-out views score a little lower than the fitted ones, or about the same "
               "(at most 0.02 higher)",
               ev["iou"] <= ev_fit["iou"] + 0.02,
               measured=f"IoU held-out {ev['iou']:.3f}, fitted views {ev_fit['iou']:.3f}")

# %%
multi = results.get("rendering", "multi")
if multi:
    b = multi["budget"]
    print(f"benchmark (laptop, {len(multi['rows'])} test shapes, {b['views']} views, {b['steps']} steps): hard IoU "
          f"on the fitted views {multi['mean_hard_iou_fit_views']:.3f}, on {len(multi['heldout_views'])} held-out "
          f"views {multi['mean_heldout_iou']:.3f}")
else:
    print("the benchmark's numbers are not here yet: COURSE_PROFILE=laptop python benchmarks/rendering.py")

# %% [markdown]
# ## Questions
#
# Answer in a few sentences or a short derivation, in the cell below (your instructor reads
# them; `python -m course_lib.grade` collects them for marking by hand).
#
# 1. Why does a hard silhouette give a zero gradient almost everywhere, and what does the temperature sigma of a soft silhouette trade?
# 2. A soft-IoU objective can score a folded or layered mesh better than the exact shape. How, and what do the regularisers do about it?
# 3. Fitting a mesh to the silhouettes of one view: what about the shape is left unconstrained, and how many views remove the ambiguity?

# %% [markdown] tags=["answer"]
# *Your answers: 1. ... 2. ... 3. ...*

# %% [markdown]
# ## Going further
#
# - Drop the Laplacian (`lambda_lap = 0`) and fit to **one** view: look at the mesh from the
#   side. Then add `course_lib.geometry.flatten_loss` as well.
# - Replace the annealed $\sigma$ by a fixed one, `1e-5` then `1e-3`. Predict first: does a tiny
#   $\sigma$ starve the fit of gradient, does a large one blur it to the wrong size? Then compare
#   the held-out IoU and the Chamfer distance of the three runs with the lecture's σ claims
#   (`results.say("rendering", ...)`), which are measured over 20 shapes.
# - Time your `soft_coverage` on all pixels of a $64 \times 64$ image for a 1,280-face mesh
#   (a loop over faces) and compare with `rasterize_silhouette`: why is the library faster?
