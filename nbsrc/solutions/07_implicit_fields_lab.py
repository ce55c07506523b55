# %% [markdown]
# # 07 · Lab: the pieces of DeepSDF and Occupancy Networks
#
# Four exercises, each followed by a self-check:
#
# 1. DeepSDF's clamped L1 loss;
# 2. training samples near the surface, labelled as occupancy or as signed distance;
# 3. normals of a field by autograd;
# 4. the test-time latent optimisation of an auto-decoder.
#
# Between them you fit a small SDF decoder with your loss, look at where your samples land,
# compare your normals with a mesh's face normals, and reconstruct an unseen shape with your
# optimisation loop. Write batched code (no Python loops over points).

# %%
import numpy as np
import torch

from course_lib import checks, config, viz
from course_lib.data import make_shape
from course_lib.experiments import implicit as E
from course_lib.geometry import extract_mesh
from course_lib.models import implicit as im

checks.stop_on_failure()  # a wrong answer stops "Run all" at its check, before the cells that use it

print(config.describe())
SZ = config.sizes(prefix="ch07.")

# %% [markdown]
# ## Exercise 1: the clamped L1 loss
#
# DeepSDF compares the predicted and the true signed distances only inside a band of half-width
# $\delta$ around the surface:
#
# $$\mathcal{L}(\hat s, s) = \frac{1}{N}\sum_{k=1}^N \big|\mathrm{clamp}(\hat s_k, -\delta, \delta) -
# \mathrm{clamp}(s_k, -\delta, \delta)\big|.$$
#
# Return a scalar tensor that autograd can differentiate with respect to `pred`. Both sides are
# clamped: beyond the band, a prediction on the right side costs nothing, whatever its value.

# %%
def clamped_l1(pred: torch.Tensor, sdf: torch.Tensor, delta: float = 0.1) -> torch.Tensor:
    ### BEGIN SOLUTION
    return (pred.clamp(-delta, delta) - sdf.clamp(-delta, delta)).abs().mean()
    ### END SOLUTION


# %%
checks.check_clamped_l1(clamped_l1)

# %% [markdown]
# Your loss trains a small auto-decoder on two chairs (a few hundred steps on their exact SDF
# samples; the codes and the decoder are learnt together).

# %%
data = E.implicit_data("train", kind="sdf", sampling="deepsdf", categories=("chair",), per_category=2,
                       n_pool=4000)
torch.manual_seed(0)
model = im.AutoDecoder(2, im.DeepSDFDecoder(c_dim=8, hidden=64, n_layers=4, latent_in=(2,)))
opt = torch.optim.Adam(model.parameters(), lr=2e-3)
idx = torch.arange(2)

# %% tags=["uses-exercise"]
for step in range(SZ["lab_iters"]):
    sel = torch.randint(0, data["query"].shape[1], (1024,))
    loss = clamped_l1(model(idx, data["query"][:, sel]), data["sdf"][:, sel]) + 1e-4 * model.codes(idx).norm(dim=-1).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"after {SZ['lab_iters']} steps: clamped L1 {float(loss):.4f}")

# %% [markdown]
# ## Exercise 2: samples near the surface
#
# Uniform samples rarely land near thin parts. DeepSDF moves surface points by Gaussian noise at two
# scales instead. Write `near_surface_samples(sdf_fn, surface_points, n, sigmas, kind, generator)`:
#
# - draw `n` random surface points (indices with `torch.randint(..., generator=generator)`);
# - add isotropic Gaussian noise: sample `i` gets standard deviation `sigmas[i % len(sigmas)]`
#   (both scales in equal shares), an independent value per coordinate
#   (`torch.randn(n, 3, generator=generator)`);
# - label the moved points: `sdf_fn(points)` for `kind="sdf"`, the occupancy `sdf_fn(points) < 0`
#   (a bool tensor) for `kind="occupancy"`.
#
# Return `(points (n, 3), labels (n,))`. All randomness comes from `generator`.

# %%
def near_surface_samples(sdf_fn, surface_points: torch.Tensor, n: int, sigmas, kind: str,
                         generator: torch.Generator):
    ### BEGIN SOLUTION
    idx = torch.randint(0, surface_points.shape[0], (n,), generator=generator)
    std = torch.tensor([float(s) for s in sigmas], dtype=surface_points.dtype)[torch.arange(n) % len(sigmas)]
    noise = torch.randn(n, 3, generator=generator, dtype=surface_points.dtype)
    points = surface_points[idx] + noise * std[:, None]
    values = sdf_fn(points)
    return points, (values < 0 if kind == "occupancy" else values)
    ### END SOLUTION


# %%
checks.check_near_surface_samples(near_surface_samples)

# %% [markdown]
# Where do your samples land on a chair? The share within 0.03 of the legs, for your sampler against
# uniform samples in $[-1, 1]^3$:

# %% tags=["uses-exercise"]
chair = make_shape("chair", 1000)
surface, _ = chair.sample_surface(2000)
g = torch.Generator().manual_seed(0)
near_pts, near_occ = near_surface_samples(chair.sdf, surface, 4000, (0.01, 0.05), "occupancy", g)
uniform_pts = torch.rand(4000, 3, generator=g) * 2 - 1
for name, p in (("near-surface", near_pts), ("uniform", uniform_pts)):
    print(f"{name:12s}: {100 * float((E.thin_part_sdf(chair, p) < 0.03).float().mean()):.1f} % of the samples "
          "near the legs")
viz.plot_points(near_pts, color=near_occ.float(), size=1.5, title="your samples, colour = inside")

# %% [markdown]
# ## Exercise 3: normals by autograd
#
# The outward normal of a level set of $f$ (negative inside) is $\nabla f / |\nabla f|$. Write
# `autograd_normals(field, points)`: copy the points, mark the copy as requiring gradients, evaluate
# the field, take `torch.autograd.grad` of the *sum* of the values (each value depends only on its
# own point, so the gradient of the sum holds every point's gradient), normalise. Return the normals
# without a graph, and leave the caller's `points` untouched.

# %%
def autograd_normals(field, points: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION
    p = points.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(field(p).sum(), p)
    return grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    ### END SOLUTION


# %%
checks.check_autograd_normals(autograd_normals)

# %% [markdown]
# Compare your normals of the exact SDF with the face normals of the marching-cubes mesh (the
# area-weighted mean cosine; 1 is perfect):

# %% tags=["uses-exercise"]
mesh = extract_mesh(chair, 33, 1.05)
centers = torch.as_tensor(np.array(mesh.triangles_center), dtype=torch.float32)
n_faces = torch.as_tensor(np.array(mesh.face_normals), dtype=torch.float32)
area = torch.as_tensor(np.array(mesh.area_faces), dtype=torch.float32)
cos = (autograd_normals(chair.sdf, centers) * n_faces).sum(-1)
print(f"mean cos(face normal, autograd normal) = {float((cos * area).sum() / area.sum()):.4f}")

# %% [markdown]
# ## Exercise 4: test-time latent optimisation
#
# An auto-decoder has no encoder: the code of a new shape is found by optimisation, the decoder
# frozen. Write `optimise_latent(decoder, points, sdf, z0, iters, lr, reg)`:
#
# - start from a **copy** of `z0` that requires gradients; give **only the code** to
#   `torch.optim.Adam(..., lr=lr)`;
# - for `iters` steps: the prediction `decoder(points[None], z[None])[0]`, the loss
#   `clamped_l1(prediction, sdf) + reg * (z ** 2).mean()` (the prior pulls the code to 0), then
#   `zero_grad`, `backward`, `step`;
# - return the code detached.

# %%
def optimise_latent(decoder, points, sdf, z0, iters: int, lr: float, reg: float) -> torch.Tensor:
    ### BEGIN SOLUTION
    z = z0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(iters):
        loss = clamped_l1(decoder(points[None], z[None])[0], sdf) + reg * (z ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return z.detach()
    ### END SOLUTION


# %%
checks.check_optimise_latent(optimise_latent)

# %% [markdown]
# Reconstruct an unseen chair with the model of exercise 1 (frozen) and your loop. With two training
# shapes the decoder knows little, so expect something between the two chairs.

# %% tags=["uses-exercise"]
test = E.implicit_data("test", kind="sdf", sampling="deepsdf", categories=("chair",), per_category=1, n_pool=4000)
model.eval()
for p in model.parameters():
    p.requires_grad_(False)
z = optimise_latent(model.decoder, test["query"][0], test["sdf"][0], torch.zeros(8), SZ["lab_iters"], 5e-3, 1e-4)
with torch.no_grad():
    err = clamped_l1(model.decoder(test["query"][:1], z[None])[0], test["sdf"][0])
print(f"clamped L1 of the unseen chair with its optimised code: {float(err):.4f}")
m, _ = E.extract(model, z, resolution=33, coarse=9)
if m is not None:
    viz.plot_mesh(m, title="unseen chair, reconstructed by latent optimisation")

# %% [markdown]
# ## Questions
#
# Answer in a few sentences or a short derivation, in the cell below (your instructor reads
# them; `python -m course_lib.grade` collects them for marking by hand).
#
# 1. Show that the clamped L1 gives no gradient where both the prediction and the SDF are beyond delta. What initialisation of the decoder avoids getting stuck there?
# 2. Why do thin parts need samples near the surface, and what does an implicit model lose when almost every sample is near the surface?
# 3. ShapeNet-lite's SDF is only a lower bound for some categories. Which of marching cubes at the 0 level, sphere tracing, and the autograd normal still work with a lower bound, and why?

# %% [markdown] tags=["answer"]
# *Your answers: 1. ... 2. ... 3. ...*

# %% [markdown]
# ## Going further
#
# - Train the auto-decoder of exercise 1 with uniform samples only (`sampling="uniform"`): what
#   happens to the clamped loss at the start, and why (look at how many samples are beyond $\delta$)?
# - Replace `reg * (z ** 2).mean()` by 0 in exercise 4 and optimise from a random `z0`: does the
#   reconstruction change?
# - The lecture `lectures/07_implicit_fields.ipynb` measures these pieces at scale.
