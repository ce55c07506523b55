# %% [markdown]
# # 01 · Lab: sampling surfaces, voxelising shapes, counting bytes, a box's SDF
#
# Three conversions between the representations of the lecture, and one implicit shape, written by you:
#
# 1. **mesh → points**: area-weighted sampling of a triangle mesh;
# 2. **implicit shape → voxels**: occupancy at the centres of the cells of a grid;
# 3. **how much memory?**: the bytes of tensors, meshes and networks, and the table
#    of memory per representation that follows from it;
# 4. **an exact SDF**: the signed distance to a box, the primitive most ShapeNet-lite parts are made of.
#
# Each exercise is a function to complete; the cell after it runs a **self-check** that
# compares your function with independent references and with `course_lib`.

# %%

import torch

from course_lib import checks, config, data, geometry, results, viz

checks.stop_on_failure()  # a wrong answer stops "Run all" at its check, before the cells that use it

print(config.describe())
n_points = config.size("ch01.lab_n_points")
resolution = config.size("ch01.lab_voxel_resolution")
shape = data.make_shape("chair", data.reserved_seed("demo3"))  # a demo shape, outside every split
mesh = shape.mesh(config.size("ch01.mesh_resolution"))
print(shape, f"| mesh: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces")

# %% [markdown]
# ## Exercise 1: area-weighted surface sampling
#
# A triangle mesh is `vertices` `(V, 3)` and `faces` `(F, 3)` (indices of the three corners
# of each triangle). A point **uniform on the surface** is drawn in two steps:
#
# 1. pick a triangle $f$ with probability $A_f / \sum_g A_g$, where the area is
#    $A_f = \tfrac12 \lVert (b-a)\times(c-a)\rVert$ for corners $a, b, c$;
# 2. pick a point uniform inside it. With $r_1, r_2 \sim U(0,1)$,
#    $$p = (1-\sqrt{r_1})\,a + \sqrt{r_1}(1-r_2)\,b + \sqrt{r_1}\,r_2\,c .$$
#
# Why the square root? $\sqrt{r_1}$ is the (scaled) distance from $a$ to the segment through
# the point parallel to $bc$; the length of that segment grows linearly with the distance, so
# the density of the distance must grow linearly too, which is what $\sqrt{r_1}$ has
# ($P(\sqrt{r_1}\le s) = s^2$). Without it, points crowd near $a$.
#
# Write `sample_triangle_mesh(vertices, faces, n, generator)` returning `(n, 3)` points with
# the dtype of `vertices`. Draw **every** random number from `generator`
# (`torch.multinomial(..., generator=generator)`, `torch.rand(..., generator=generator)`),
# so that the result is reproducible. No Python loop over triangles or points.

# %%
def sample_triangle_mesh(vertices: torch.Tensor, faces: torch.Tensor, n: int,
                         generator: torch.Generator) -> torch.Tensor:
    """``n`` points uniform on the surface of a triangle mesh.

    Args:
        vertices: float tensor ``(V, 3)`` (float32 or float64).
        faces: long tensor ``(F, 3)`` of indices into ``vertices`` (zero-area triangles may occur).
        n: a Python int ``>= 1``.
        generator: a ``torch.Generator`` (CPU); draw every random number from it, so that each call advances it.

    Returns:
        tensor ``(n, 3)`` with the dtype of ``vertices`` (``(1, 3)`` for ``n = 1``). Leave the inputs unchanged.
    """
    ### BEGIN SOLUTION
    tri = vertices[faces]  # (F, 3, 3)
    areas = 0.5 * torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1).norm(dim=-1)
    idx = torch.multinomial(areas, n, replacement=True, generator=generator)
    a, b, c = tri[idx].unbind(dim=1)
    r1 = torch.rand(n, 1, generator=generator, dtype=vertices.dtype).sqrt()
    r2 = torch.rand(n, 1, generator=generator, dtype=vertices.dtype)
    return (1 - r1) * a + r1 * (1 - r2) * b + r1 * r2 * c
    ### END SOLUTION


# %%
checks.check_sample_triangle_mesh(sample_triangle_mesh)

# %% [markdown]
# **Use it.** Sample the chair's mesh and compare with the library's sampler
# (`course_lib.geometry.sample_mesh_surface`), in Chamfer distance: your samples against the
# library's, and the library's against its own samples with another seed.
#
# **Predict first.** Will Chamfer(yours, library) be about the same as Chamfer(library, library
# with another seed), clearly larger, or zero? Write your guess down before running.

# %% tags=["uses-exercise"]
from course_lib.ops import chamfer_distance  # noqa: E402

v = torch.tensor(mesh.vertices, dtype=torch.float32)
f = torch.tensor(mesh.faces, dtype=torch.long)
cd = {}  # Chamfer distance to the library's samples
mine = sample_triangle_mesh(v, f, n_points, torch.Generator().manual_seed(0))
lib_a, _ = geometry.sample_mesh_surface(mesh, n_points, seed=1)
lib_b, _ = geometry.sample_mesh_surface(mesh, n_points, seed=2)
cd["yours"] = chamfer_distance(mine, lib_a).item()
cd["library, another seed"] = chamfer_distance(lib_b, lib_a).item()
print(f"Chamfer(yours, library) = {cd['yours']:.2e}")
print(f"Chamfer(library, library with another seed) = {cd['library, another seed']:.2e}")
viz.subplots([viz.plot_points(mine, color="y", title="your samples"),
              viz.plot_points(lib_a, color="y", title="course_lib.geometry.sample_mesh_surface")])

# %% [markdown]
# **Observe.** Your samples are as close to the library's as the library's are to themselves with
# another seed: the two distances agree within a factor 1.5 (within a few percent, in fact), in every
# profile. Neither is zero: two independent samplings of one surface are never at distance zero, and the
# Chamfer distance of a resampling is the floor below which no comparison of point sets can go. The
# benchmark `splits` (laptop profile) measured it on 100 held-out shapes, next to the distance from
# each to its nearest *training* shape, below. It used fewer points than this lab does (the floor
# falls as the points get denser), so compare the ratio, not the values. What does it mean for a
# reconstruction whose Chamfer distance to its target is at that floor?

# %%
floor = results.get("splits", "summary", "all")
if floor:
    print(f"benchmark (laptop), {results.get('splits', 'sizes', 'n_points')} points per shape: a shape against its "
          f"own resampling {floor['oracle']:.2e}, against its nearest training shape {floor['nearest']:.2e} "
          f"(mean over {floor['n_test']} test shapes)")
else:
    print("the benchmark's numbers are not here yet: COURSE_PROFILE=laptop python benchmarks/splits.py")

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(len(cd) < 2)
ratio = cd["yours"] / cd["library, another seed"]
checks.observe("your samples are as close to the library's as the library's resampling is (within a factor 1.5), "
               "and neither distance is zero",
               cd["yours"] > 0 and cd["library, another seed"] > 0 and 1 / 1.5 < ratio < 1.5,
               measured=f"{cd['yours']:.2e} vs {cd['library, another seed']:.2e}, ratio {ratio:.2f}")

# %% [markdown]
# ## Exercise 2: voxelisation from an occupancy function
#
# A voxel grid of resolution $R$ splits the box $[-b, b]^3$ into $R^3$ cubic cells of side
# $h = 2b/R$. Cell $(i, j, k)$ has its centre at
# $$c_{ijk} = \big(-b + (i+\tfrac12)h,\; -b + (j+\tfrac12)h,\; -b + (k+\tfrac12)h\big),$$
# and we call it occupied when its centre is inside the shape. `occupancy_fn` maps points
# `(..., 3)` to a bool tensor `(...)` (for a procedural shape: `shape.occupancy`, i.e.
# `shape.sdf(p) < 0`).
#
# Write `voxelize(occupancy_fn, resolution, bound=1.0)` returning a bool tensor
# `(R, R, R)` with `grid[i, j, k]` the cell at $(x_i, y_j, z_k)$ (index order x, y, z;
# `torch.meshgrid(..., indexing="ij")` gives that order).

# %%
def voxelize(occupancy_fn, resolution: int, bound: float = 1.0) -> torch.Tensor:
    """Occupancy of the centres of the ``R^3`` cells of ``[-bound, bound]^3``.

    Args:
        occupancy_fn: a callable mapping a float tensor of points ``(..., 3)`` to a bool tensor ``(...)``.
        resolution: a Python int ``R >= 1`` (odd or even).
        bound: a Python float ``> 0``.

    Returns:
        bool tensor ``(R, R, R)`` (``(1, 1, 1)`` for ``R = 1``), index order x, y, z.
    """
    ### BEGIN SOLUTION
    h = 2 * bound / resolution
    c = -bound + (torch.arange(resolution, dtype=torch.float32) + 0.5) * h
    centres = torch.stack(torch.meshgrid(c, c, c, indexing="ij"), dim=-1)  # (R, R, R, 3)
    return occupancy_fn(centres).bool()
    ### END SOLUTION


# %%
checks.check_voxelize(voxelize)

# %% [markdown]
# **Use it.** Voxelise the chair at two resolutions. At low resolution thin parts (legs,
# the back's slats) vanish or thicken: a cell is all or nothing.
#
# **Predict first.** The fine grid has 8 times as many cells as the coarse one. Will it have
# exactly 8 times as many *occupied* cells, more, or fewer? And one refinement further? (No benchmark
# records this one: your own numbers are the observation.)

# %% tags=["uses-exercise"]
occupied = {}  # resolution -> occupied cells of your grid
coarse = voxelize(shape.occupancy, resolution // 2)
fine = voxelize(shape.occupancy, resolution)
finer = voxelize(shape.occupancy, 2 * resolution)
for grid in (coarse, fine, finer):
    occupied[len(grid)] = int(grid.sum())
for r in (resolution // 2, resolution):
    print(f"{r}^3: {occupied[r]} occupied cells; {2 * r}^3: {occupied[2 * r]} occupied cells "
          f"(ratio {occupied[2 * r] / max(occupied[r], 1):.2f}, 8 for a perfect refinement)")
viz.subplots([viz.plot_voxels(coarse), viz.plot_voxels(fine)])

# %% [markdown]
# **Observe.** The ratio is not 8: a cell is full when its *centre* is inside, so the fine grid gains
# cells where the surface cuts through a coarse cell whose centre was outside, and loses some where a
# coarse centre was just inside. At $8^3$ (the `ci` profile's coarse grid) the cells are a quarter of
# the box wide, and one centre in the seat or the back fills a whole cell: the coarse grid fattens the
# chair, and the ratio is far below 8 (about 3.4). From $16^3$ on (the `laptop` profile's coarse grid)
# gains and losses nearly balance: the ratio is within 10% of 8 (about 8.4 at $16^3 \to 32^3$, 7.9 at
# $32^3 \to 64^3$). In every profile the second ratio is closer to 8 than the first. Once the cells are
# small, why can the ratio land above 8 as well as below it, and what does each case say about the legs?

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(len(occupied) < 3)
first, second = (occupied[2 * r] / max(occupied[r], 1) for r in (resolution // 2, resolution))
ratios = f"{resolution // 2}^3 -> {resolution}^3: x{first:.2f}, {resolution}^3 -> {2 * resolution}^3: x{second:.2f}"
checks.observe("refining once more brings the ratio closer to 8", abs(second - 8) < abs(first - 8), measured=ratios)
checks.observe(f"from {resolution}^3 to {2 * resolution}^3 the ratio is within 10% of 8", abs(second - 8) < 0.8,
               measured=ratios)

# %% [markdown]
# ## Exercise 3: how many bytes?
#
# Write `count_bytes(obj)` returning an `int`:
#
# - a tensor: bytes per element × number of elements (`t.element_size() * t.numel()`);
# - a `trimesh.Trimesh`: the bytes of its `vertices` and `faces` arrays (numpy's `.nbytes`);
# - a `torch.nn.Module`: the bytes of its parameters;
# - a `dict`, `list` or `tuple`: the sum over its values.

# %%
import trimesh  # noqa: E402


def count_bytes(obj) -> int:
    """Bytes held by ``obj``.

    Args:
        obj: a ``torch.Tensor`` (any dtype, any shape, possibly empty, 0-d or a strided view), a ``trimesh.Trimesh``,
            a ``torch.nn.Module`` (any dtype), or a ``dict``, ``list`` or ``tuple`` of these (nested).

    Returns:
        a Python ``int``.
    """
    ### BEGIN SOLUTION
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.numel()
    if isinstance(obj, trimesh.Trimesh):
        return int(obj.vertices.nbytes + obj.faces.nbytes)
    if isinstance(obj, torch.nn.Module):
        return sum(count_bytes(p) for p in obj.parameters())
    if isinstance(obj, dict):
        return sum(count_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(count_bytes(v) for v in obj)
    raise TypeError(f"cannot count the bytes of {type(obj).__name__}")
    ### END SOLUTION


# %%
checks.check_count_bytes(count_bytes)

# %% [markdown]
# **Use it: the memory table.** Lecture 01's table, filled with your code: for each resolution $R$,
# the bytes of the lecture's car as a bool voxel grid (your `voxelize`), a float32 SDF grid, a
# marching-cubes mesh, a float32 point set with one point per surface voxel, and two MLPs that
# represent the SDF (their size does not depend on $R$ at all; how *well* they represent the shape
# does). `geometry.memory_table` builds the representations and counts each with your
# `count_bytes`; the cell then compares your table with the lecture's (course_lib's own count).
#
# **Predict first.** When the resolution doubles, by what factor does each row grow: the bool
# grid, the SDF grid, the mesh, the points, the MLPs?

# %% tags=["uses-exercise"]
resolutions = config.size("ch01.memory_resolutions")
slope = {}  # growth exponent of each row, once the table is built
car = data.make_shape("car", data.reserved_seed("demo"))  # the lecture's car
yours = geometry.memory_table(car, resolutions, count=count_bytes, voxelize=lambda s, r: voxelize(s.occupancy, r))
table = yours["rows"]
for name, row in table.items():
    print(f"{name:>31}: " + "  ".join(f"R={r}: {b / 1024:9.1f} KiB" for r, b in zip(resolutions, row)))
same = table == geometry.memory_table(car, resolutions)["rows"]
print("your table equals the lecture's:", "yes" if same else "NO: compare your count_bytes and voxelize with the checks")
slope = geometry.fitted_exponents(resolutions, table)
print("growth exponents (least squares on log-log; the MLPs do not grow): "
      + ", ".join(f"{k} {v:.2f}" for k, v in slope.items()))
viz.plot_curves(resolutions, table, log_x=True, log_y=True, xlabel="resolution R", ylabel="bytes",
                title="memory per representation")

# %% [markdown]
# **Observe.** When the resolution doubles, the dense grids (bool and SDF) grow 8 times, the surfaces
# (mesh and points) about 4 times, the MLPs not at all. The exponents above are the slopes of the log-log
# plot: exactly 3 for the dense grids, about 2 for the surfaces (between 1.7 and 2.4; in the `ci` profile
# the resolutions are small and close, so the surface slopes are rougher, up to 2.2), 0 for the MLPs.
# Chapter 04's octree stores a shape in a number of cells that grows like
# its surface; the benchmark `octrees` (laptop profile) measured how many times smaller it is than the
# dense float32 grid, below. Why does the gap widen as R grows, and what does that predict for R = 512?

# %%
per_r = results.get("octrees", "compression", "per_resolution")
print("benchmark (laptop), dense float32 grid / octree, mean over its shapes: "
      + ", ".join(f"R={r}: {v['mean_ratio']:.1f}x" for r, v in per_r.items()) if per_r else
      "the benchmark's numbers are not here yet: COURSE_PROFILE=laptop python benchmarks/octrees.py")

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(not slope)
grids, surfaces = ("voxels (bool)", "SDF grid (float32)"), ("mesh (marching cubes)", "points (one per surface voxel)")
per_doubling = ", ".join(f"{k} x{2 ** v:.1f}" for k, v in slope.items())
checks.observe("the dense grids grow 8 times when R doubles (exponent 3)",
               all(abs(slope[k] - 3) < 0.05 for k in grids), measured=per_doubling)
checks.observe("the surfaces grow about 4 times when R doubles (exponent about 2: between 1.7 and 2.4)",
               all(1.7 < slope[k] < 2.4 for k in surfaces), measured=per_doubling)
checks.observe("the MLPs do not grow at all: the same bytes at every R",
               all(len(set(row)) == 1 for k, row in table.items() if k.startswith("MLP")),
               measured=", ".join(f"{k} {row[0] / 1024:.1f} KiB" for k, row in table.items() if k.startswith("MLP")))

# %% [markdown]
# ## Exercise 4: the exact signed distance to a box
#
# Most parts of ShapeNet-lite's shapes (seats, legs, wings) are boxes, and the lecture's SDF is
# built from their signed distances. Take the axis-aligned box $[-h, h]$ (half extents
# $h = (h_x, h_y, h_z)$, centred at the origin) and, for a point $p$, the per-axis excess
# $q = |p| - h$. Work out the distance case by case, then write **one** vectorised expression:
#
# * inside the box ($q \le 0$ on every axis): the nearest surface point is on the nearest face;
# * outside, in front of a face (one $q_k > 0$): the distance is that $q_k$;
# * outside, beyond an edge (two positive) or a corner (three): the nearest point of the box is on
#   that edge or at that corner.
#
# Write `box_sdf(p, half)` for points `p` of any leading shape `(..., 3)`, negative inside. The
# self-check compares with the distance to the nearest point of the box ($p$ clamped to $[-h, h]$)
# and with `course_lib`'s `Box`, on points inside, in front of faces, beyond edges and corners.

# %%
def box_sdf(p: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """The exact signed distance from points to the box ``[-half, half]``.

    Args:
        p: float tensor ``(..., 3)`` (float32 or float64); not changed.
        half: float tensor ``(3,)`` of the same dtype, the half extents (> 0).

    Returns:
        float tensor ``(...)`` of the dtype of ``p``: negative inside, 0 on the surface, positive outside;
        differentiable in ``p``.
    """
    ### BEGIN SOLUTION
    q = p.abs() - half
    outside = torch.linalg.norm(q.clamp(min=0.0), dim=-1)  # beyond a face, an edge or a corner
    inside = q.max(dim=-1).values.clamp(max=0.0)  # minus the distance to the nearest face
    return outside + inside
    ### END SOLUTION


# %%
checks.check_box_sdf(box_sdf)

# %% [markdown]
# **Use it: the distance against a bound.** A tempting shortcut is $\max_k q_k$: it is the
# distance inside the box and in front of each face. The slice $z = 0$ of a box of half extents
# $(0.6, 0.3, 0.45)$ through both, and their ratio on the ray beyond a corner,
# $p = h + s\,(1, 1, 1)$.
#
# **Predict first.** Where do your SDF and $\max_k q_k$ differ, and which one is larger there? How
# large can the ratio get beyond a corner?

# %% tags=["uses-exercise"]
half = torch.tensor([0.6, 0.3, 0.45])


def bound(p):
    return (p.abs() - half).max(dim=-1).values


ratio = {}  # s -> your SDF / max(q) on the corner ray
with torch.no_grad():
    viz.subplots([viz.plot_sdf_slice(lambda p: box_sdf(p, half), title="your box SDF, z = 0"),
                  viz.plot_sdf_slice(bound, title="max(q), z = 0")], cols=2)
    gen = torch.Generator().manual_seed(0)
    cloud = (torch.rand(20000, 3, generator=gen) * 2 - 1) * 1.2
    exact, chebyshev = box_sdf(cloud, half), bound(cloud)
    beyond = (cloud.abs() > half).sum(-1)  # on how many axes a point is past the box
    for s in (0.01, 0.1, 0.5, 2.0):
        corner_point = half + s * torch.ones(3)
        ratio[s] = float(box_sdf(corner_point[None], half)[0] / bound(corner_point[None])[0])
for k, name in ((0, "inside"), (1, "in front of a face"), (2, "beyond an edge"), (3, "beyond a corner")):
    gap = (exact - chebyshev)[beyond == k]
    print(f"{name:>18}: {int((beyond == k).sum()):5d} points, your SDF - max(q) from {gap.min():.3f} to {gap.max():.3f}")
print("beyond the corner, your SDF / max(q):", {s: round(r, 3) for s, r in ratio.items()})

# %% [markdown]
# **Observe.** The two agree (to rounding) inside the box and in front of each face; beyond an edge or
# a corner your SDF is never smaller and on average larger (equal only where one excess is tiny): $\max_k q_k$ is the distance to the nearest face's *plane*, which the
# box does not fill there, so it underestimates the distance. On the corner ray the ratio is
# $\lVert (s, s, s)\rVert / s = \sqrt 3$ at every distance ($\sqrt 2$ beyond an edge). Such a bound is
# still safe for sphere tracing (`data.render` steps by the SDF: a smaller step never passes through
# the surface, it only takes more steps), but it is not a distance: its gradient's norm is 1 while its
# value is not the distance, which is why an SDF's exactness is checked by distances, not by the
# gradient alone. What would an *over*estimate (say, the L1 norm of the positive $q$'s) do to sphere tracing?

# %% tags=["uses-exercise"]
checks.raise_if_unfinished(len(ratio) < 4)
agree = (exact - chebyshev)[beyond <= 1].abs().max().item()
apart = (exact - chebyshev)[beyond >= 2]
checks.observe("inside the box and in front of a face your SDF and max(q) agree", agree < 1e-6,
               measured=f"largest difference {agree:.1e}")
checks.observe("beyond an edge or a corner your SDF is never below max(q), and above it on average",
               bool((apart > -1e-6).all()) and apart.mean().item() > 0,
               measured=f"difference there from {apart.min().item():.3f} to {apart.max().item():.3f}, "
                        f"mean {apart.mean().item():.3f}")
checks.observe("on the corner ray the ratio is sqrt(3) at every distance",
               all(abs(r - 3**0.5) < 1e-4 for r in ratio.values()),
               measured=", ".join(f"s={s}: {r:.4f}" for s, r in ratio.items()))

# %% [markdown]
# ## Questions
#
# Answer in a few sentences or a short derivation, in the cell below (your instructor reads
# them; `python -m course_lib.grade` collects them for marking by hand).
#
# 1. Show that choosing a triangle with probability proportional to its area, then barycentric weights (1 - sqrt(u), sqrt(u)(1 - v), sqrt(u) v), gives points uniform over the surface.
# 2. Write the bytes of a 128^3 float32 grid, a 128^3 bitmask and 2,048 float32 points. How does each grow when the resolution doubles?
# 3. Lecture 01 measures that most test shapes have a training shape within twice their own resampling distance. What does that mean for how you read a reconstruction score?

# %% [markdown] tags=["answer"]
# *Your answers: 1. ... 2. ... 3. ...*

# %% [markdown]
# ## To go further
#
# - Make `sample_triangle_mesh` also return the normal of the triangle each point came from.
# - Voxelise a *point cloud* instead of an occupancy function: mark the cells that contain
#   at least one point (`torch.floor`, then `index_put_`). Which cells does it miss?
# - Fit a straight line to log(bytes) versus log(R) for each representation of the table:
#   the slopes should be close to 3 (grids) and 2 (surfaces).
