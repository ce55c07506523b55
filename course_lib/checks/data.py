"""Self-checks of chapter 01 (``labs/01_data_and_representations_lab.ipynb``).

Introduced in ``lectures/01_data_and_representations.ipynb``.

* :func:`check_sample_triangle_mesh` -- area-weighted surface sampling.  A statistical
  check, with references independent of any sampler: points must lie on the mesh
  (barycentric test), the share of points per triangle must match the share of area
  (binomial tolerance), the barycentric weights of points in one triangle must follow
  the law of a uniform point (each weight is Beta(1, 2): ``P(w <= t) = 1 - (1 - t)^2``,
  Kolmogorov-Smirnov test), and the mean of samples on a cone must match its exact
  area-weighted centroid.
* :func:`check_voxelize` -- occupancy at cell centres, compared exactly with a reference
  built axis by axis and with ``course_lib.data.voxelize``; common mistakes (axes
  swapped, cell corners instead of centres) are recognised and named.
* :func:`check_count_bytes` -- the memory of tensors, meshes, modules and containers.
* :func:`check_box_sdf` -- the exact signed distance of an axis-aligned box, against a nearest-point
  reference (the point of the box nearest to ``p`` is ``p`` clamped to the box) and
  ``course_lib.data.primitives.Box``; the plausible mistakes (the Chebyshev bound ``max(q)``, no interior
  term, an L1 norm outside, full instead of half extents, ``min`` for ``max`` inside) are named.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import trimesh
from scipy import stats

from ._core import CheckFailed, call_student, expect, expect_close, expect_tensor, self_check

__all__ = ["check_sample_triangle_mesh", "check_voxelize", "check_count_bytes", "check_box_sdf"]

_SQRT_HINT = (
    "pick r1, r2 ~ U(0, 1) and use the weights (1 - sqrt(r1), sqrt(r1) (1 - r2), sqrt(r1) r2)"
)


# ---------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------
def barycentric(points: torch.Tensor, tri: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Barycentric weights ``(n, 3)`` of points projected on the plane of ``tri (3, 3)``, and their
    distances ``(n,)`` to that plane (float64)."""
    p = points.detach().cpu().double()
    a, b, c = tri.double()
    v0, v1, v2 = b - a, c - a, p - a
    d00, d01, d11 = v0 @ v0, v0 @ v1, v1 @ v1
    d20, d21 = v2 @ v0, v2 @ v1
    den = d00 * d11 - d01 * d01
    wb = (d11 * d20 - d01 * d21) / den
    wc = (d00 * d21 - d01 * d20) / den
    nrm = torch.linalg.cross(v0, v1)
    dist = (v2 @ nrm).abs() / nrm.norm()
    return torch.stack([1 - wb - wc, wb, wc], dim=-1), dist


def _on_triangle(points: torch.Tensor, tri: torch.Tensor, tol: float) -> torch.Tensor:
    w, dist = barycentric(points, tri)
    return (dist <= tol) & (w >= -tol).all(-1)


def _uniform_weight_cdf(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return 1.0 - (1.0 - t) ** 2


def _call_sampler(fn: Any, verts: torch.Tensor, faces: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    out = call_student(fn, verts, faces, n, gen)
    expect_tensor(out, f"the samples (n={n})", shape=(n, 3), dtype=verts.dtype)
    return out


@self_check
def check_sample_triangle_mesh(fn) -> str:
    """``fn(vertices (V,3), faces (F,3) long, n, generator) -> (n, 3)`` points uniform on the surface."""
    # 1. two triangles of very different areas (9 : 1), in different planes
    verts = torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 3.0, 0.0],
                          [0.0, 0.0, 2.0], [1.0, 0.0, 2.0], [0.0, 1.0, 2.0]])
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    n = 20_000
    pts = _call_sampler(fn, verts, faces, n, seed=0)
    on_big = _on_triangle(pts, verts[faces[0]], 1e-4)
    on_small = _on_triangle(pts, verts[faces[1]], 1e-4)
    off = ~(on_big | on_small)
    if off.any():
        i = int(off.nonzero()[0])
        raise CheckFailed(
            f"{int(off.sum())} of {n} points are not on the mesh (e.g. {pts[i].tolist()}): a point of a "
            "triangle is w0 a + w1 b + w2 c with weights >= 0 that sum to 1 "
            "(if you draw two uniform numbers, fold the pairs with r1 + r2 > 1 back, or use the sqrt trick)"
        )
    frac = float(on_big.double().mean())
    p = 0.9
    tol = 5 * math.sqrt(p * (1 - p) / n)
    if abs(frac - p) > tol:
        raise CheckFailed(
            f"the triangle with 90% of the area received {100 * frac:.1f}% of the points: choose each "
            "point's triangle with probability area / total area (torch.multinomial(areas, n, "
            "replacement=True, generator=generator))"
        )
    # 2. uniform inside one (obtuse, tilted) triangle
    tri = torch.tensor([[0.2, -0.3, 0.5], [1.4, 0.1, -0.2], [0.1, 0.9, 0.3]])
    one = _call_sampler(fn, tri, torch.tensor([[0, 1, 2]]), n, seed=1)
    w, _ = barycentric(one, tri)
    pvals = [stats.kstest(w[:, k].numpy(), _uniform_weight_cdf).pvalue for k in range(3)]
    if min(pvals) < 1e-6:
        means = w.mean(0)
        var = w.var(0)
        k = int(means.argmax())
        if float(means.max()) > 1 / 3 + 0.02:
            where = f"they crowd towards vertex {k} (mean weight {float(means[k]):.2f}, expected 1/3)"
        elif float(var.mean()) < 1 / 18 - 0.005:
            where = "they crowd towards the centre (weights vary too little)"
        else:
            where = "their barycentric weights do not follow the law of a uniform point"
        raise CheckFailed(
            f"points are not uniform inside a triangle: {where}; {_SQRT_HINT} "
            f"(Kolmogorov-Smirnov p-value {min(pvals):.1e})"
        )
    # 3. reproducible with the generator, and random across seeds
    again = _call_sampler(fn, tri, torch.tensor([[0, 1, 2]]), n, seed=1)
    expect(torch.equal(one, again),
           "two calls with generators seeded alike gave different points: draw every random number "
           "from `generator` (e.g. torch.rand(n, generator=generator))")
    other = _call_sampler(fn, tri, torch.tensor([[0, 1, 2]]), n, seed=2)
    expect(not torch.equal(one, other), "different seeds gave identical points: use the generator you are given")
    # 4. a real mesh: the mean of the samples is the exact area-weighted centroid of a cone
    cone = trimesh.creation.cone(radius=1.0, height=2.0, sections=24)
    cv = torch.tensor(cone.vertices, dtype=torch.float32)
    cf = torch.tensor(cone.faces, dtype=torch.long)
    cp = _call_sampler(fn, cv, cf, n, seed=3)
    areas = cone.area_faces
    exact = (cone.triangles_center * areas[:, None]).sum(0) / areas.sum()
    tol = 5 * cp.double().std(0).numpy() / math.sqrt(n) + 1e-6
    err = np.abs(cp.double().mean(0).numpy() - exact)
    if (err > tol).any():
        raise CheckFailed(
            f"on a cone mesh the mean of your samples is {np.round(cp.double().mean(0).numpy(), 3).tolist()}, "
            f"the exact surface centroid is {np.round(exact, 3).tolist()}: some triangles get too many "
            "or too few points"
        )
    return (f"on the mesh; {100 * frac:.1f}% of the points on the triangle with 90% of the area; "
            f"uniform inside a triangle (KS p-values {', '.join(f'{q:.2f}' for q in pvals)}); "
            "reproducible; cone centroid matches")


# ---------------------------------------------------------------------------
# voxelisation
# ---------------------------------------------------------------------------
def _centres(resolution: int, bound: float) -> torch.Tensor:
    return -bound + (torch.arange(resolution, dtype=torch.float64) + 0.5) * (2 * bound / resolution)


def _box_occupancy(p: torch.Tensor) -> torch.Tensor:
    """An off-centre box: x in (0.25, 0.9), y in (-0.7, -0.1), z in (-0.6, 0.3)."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    return (x > 0.25) & (x < 0.9) & (y > -0.7) & (y < -0.1) & (z > -0.6) & (z < 0.3)


def _box_reference(resolution: int, bound: float, corners: bool = False) -> torch.Tensor:
    """The box's voxels built axis by axis (no meshgrid involved)."""
    c = torch.linspace(-bound, bound, resolution, dtype=torch.float64) if corners else _centres(resolution, bound)
    mx = (c > 0.25) & (c < 0.9)
    my = (c > -0.7) & (c < -0.1)
    mz = (c > -0.6) & (c < 0.3)
    return mx[:, None, None] & my[None, :, None] & mz[None, None, :]


def _diagnose(out: torch.Tensor, ref: torch.Tensor, resolution: int, bound: float) -> str:
    if torch.equal(out, ref.permute(2, 1, 0)):
        return "your grid is indexed (z, y, x): grid[i, j, k] must be the cell at (x_i, y_j, z_k)"
    if torch.equal(out, ref.permute(1, 0, 2)):
        return ("x and y are swapped: torch.meshgrid(..., indexing='xy') does that; use indexing='ij'")
    for perm in ((0, 2, 1), (2, 0, 1), (1, 2, 0)):
        if torch.equal(out, ref.permute(*perm)):
            return f"your axes are permuted ({perm}): grid[i, j, k] must be the cell at (x_i, y_j, z_k)"
    for dims in ((0,), (1,), (2,)):
        if torch.equal(out, ref.flip(dims)):
            return f"axis {'xyz'[dims[0]]} is reversed: cell 0 is the one at the low end, -bound"
    if torch.equal(out, _box_reference(resolution, bound, corners=True)):
        return ("you sampled the cell corners (torch.linspace(-bound, bound, R), the grid-node convention of "
                "an SDF grid for marching cubes); a voxel grid samples the cell centres "
                "-bound + (i + 0.5) * 2 * bound / R")
    if torch.equal(out, ~ref):
        return "inside and outside are swapped: True must mean occupied"
    return f"{int((out != ref).sum())} of {ref.numel()} voxels differ from the reference"


@self_check
def check_voxelize(fn) -> str:
    """``fn(occupancy_fn, resolution, bound=1.0) -> BoolTensor (R, R, R)``: occupancy at cell centres."""
    checked = []
    for resolution, bound in ((8, 1.0), (7, 1.0), (10, 1.1)):
        out = call_student(fn, _box_occupancy, resolution, bound)
        expect_tensor(out, f"the grid (R={resolution})", shape=(resolution,) * 3)
        expect(out.dtype == torch.bool,
               f"the grid has dtype {out.dtype}: return a bool tensor (True = occupied)")
        ref = _box_reference(resolution, bound)
        if not torch.equal(out.cpu(), ref):
            raise CheckFailed(f"R={resolution}, bound={bound}: " + _diagnose(out.cpu(), ref, resolution, bound))
        checked.append(resolution)
    # against the library, on procedural shapes
    try:
        from course_lib import data

        lib_voxelize = data.voxelize
    except (ImportError, AttributeError):
        return f"matches the reference on an off-centre box at R = {checked}"
    for category, seed, resolution in (("chair", 0, 16), ("mug", 1, 12)):
        shape = data.make_shape(category, seed)
        out = call_student(fn, shape.occupancy, resolution, 1.0)
        expect_tensor(out, f"the grid of a {category} (R={resolution})", shape=(resolution,) * 3)
        lib = lib_voxelize(shape, resolution).cpu()
        diff = int((out.cpu().bool() != lib.bool()).sum())
        expect(diff == 0, f"the {category} (seed {seed}) at R={resolution}: {diff} voxels differ from "
                          "course_lib.data.voxelize")
    return (f"matches the reference on an off-centre box at R = {checked} and course_lib.data.voxelize "
            "on a chair and a mug")


# ---------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------
@self_check
def check_count_bytes(fn) -> str:
    """``fn(obj) -> int``: bytes of a tensor, a mesh (vertices + faces), a module's parameters, or a container."""
    box = trimesh.creation.box()
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    cases = [
        ("a float32 tensor (10, 3)", torch.zeros(10, 3), 120),
        ("a bool voxel grid (4, 4, 4)", torch.zeros(4, 4, 4, dtype=torch.bool), 64),
        ("a float64 tensor (5,)", torch.zeros(5, dtype=torch.float64), 40),
        ("a trimesh box (8 float64 vertices, 12 int64 faces)", box,
         box.vertices.nbytes + box.faces.nbytes),
        ("an MLP 3 -> 16 -> 1 (float32 parameters)", mlp, (3 * 16 + 16 + 16 + 1) * 4),
        ("a dict of two float32 (100, 3) tensors", {"points": torch.zeros(100, 3), "normals": torch.zeros(100, 3)},
         2400),
    ]
    for what, obj, expected in cases:
        out = call_student(fn, obj)
        if isinstance(out, torch.Tensor) and out.numel() == 1:
            raise CheckFailed(f"for {what} you returned a tensor: return a Python int (int(...))")
        expect(isinstance(out, (int, np.integer)) and not isinstance(out, bool),
               f"for {what} you returned {type(out).__name__}: return an int")
        expect(int(out) == expected, f"{what}: you counted {int(out)} bytes, expected {expected}")
    return "tensors, meshes, modules and dicts counted right"


# ---------------------------------------------------------------------------
# hidden parts (run by the grader only): float64, one point, a zero-area triangle, a mesh far from the origin,
# fresh draws from one generator; a grid of one cell, odd and even resolutions, one occupied cell; empty, 0-d,
# strided and float16 tensors, float64 modules, modules with buffers, nested containers
# ---------------------------------------------------------------------------
# ---------------------------------------------------------------------------
# the exact SDF of an axis-aligned box [-half, half]
# ---------------------------------------------------------------------------
def _box_sdf_reference(p: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """Independent of the q-formula: outside, the distance to the nearest point of the box (``p`` clamped to
    it); inside, minus the distance to the nearest face.  float64."""
    p, h = p.double(), half.double()
    nearest = torch.maximum(torch.minimum(p, h), -h)
    outside = (p - nearest).norm(dim=-1)
    to_face = (h - p.abs()).min(dim=-1).values  # > 0 inside
    return torch.where(outside > 0, outside, -to_face.clamp(min=0.0))


def _box_sdf_variant(p: torch.Tensor, half: torch.Tensor, variant: str) -> torch.Tensor:
    """The plausible wrong answers of the exercise, computed from ``q = |p| - half``."""
    p, h = p.double(), half.double()
    q = {"full_extents": p.abs() - h / 2, "double_extents": p.abs() - 2 * h, "no_abs": p - h}.get(variant, p.abs() - h)
    out = q.clamp(min=0.0).norm(dim=-1)
    inside = q.max(dim=-1).values.clamp(max=0.0)
    if variant == "chebyshev":
        return q.max(dim=-1).values
    if variant == "outside_only":
        return out
    if variant == "sign":
        return -(out + inside)
    if variant == "l1":
        return q.clamp(min=0.0).sum(dim=-1) + inside
    if variant == "min_inside":
        return out + q.min(dim=-1).values.clamp(max=0.0)
    if variant == "squared":
        return q.clamp(min=0.0).pow(2).sum(dim=-1) + inside
    return out + inside


_BOX_MISTAKES = (
    ("chebyshev", "you returned max(q) everywhere: exact inside and in front of a face, but beyond an edge or a "
                  "corner the nearest point of the box is on that edge or corner, at the Euclidean length of "
                  "max(q, 0) (clamp each axis), which max(q) underestimates (a bound, not the distance)"),
    ("outside_only", "inside the box your SDF is 0: there the distance to the surface is that of the nearest face, "
                     "-min(half - |p|), i.e. max(q) < 0; add max(q).clamp(max=0)"),
    ("sign", "your sign is flipped: an SDF is negative inside and positive outside"),
    ("l1", "outside you summed the positive q's (an L1 norm): the distance to an edge or corner is the Euclidean "
           "length of max(q, 0)"),
    ("squared", "outside you returned the SQUARED length of max(q, 0): take its square root (torch.linalg.norm)"),
    ("min_inside", "inside you took min(q): the nearest face is the one with the largest q (closest to 0), max(q)"),
    ("full_extents", "your box is half as large: half holds the HALF extents, the box spans [-half, half], so "
                     "q = |p| - half"),
    ("double_extents", "your box is twice as large: half holds the half extents already, q = |p| - half"),
    ("no_abs", "you used p - half, not |p| - half: the box is symmetric about the origin, so its SDF depends on "
               "|p| (your SDF is wrong for negative coordinates)"),
)


def _box_points(half: torch.Tensor, gen: torch.Generator, n: int = 300) -> torch.Tensor:
    """Random points around the box, plus points inside, in front of faces, beyond edges and beyond corners."""
    h = half.double()
    rnd = (torch.rand(n, 3, generator=gen, dtype=torch.float64) * 2 - 1) * 1.6
    corners = torch.tensor([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)],
                           dtype=torch.float64)
    beyond_corner = corners * (h + 0.3)
    beyond_edge = torch.tensor([[1.0, 1.0, 0.0], [-1.0, 0.0, 1.0], [0.0, -1.0, -1.0]], dtype=torch.float64)
    beyond_edge = beyond_edge * (h + 0.25) + (1 - beyond_edge.abs()) * h * 0.3
    faces = torch.tensor([[1.0, 0.1, -0.2], [0.2, -1.0, 0.1], [-0.1, 0.2, 1.0]], dtype=torch.float64) * (h + 0.2)
    inside = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.1, -0.2], [-0.2, 0.6, 0.3]], dtype=torch.float64) * h
    return torch.cat([rnd, beyond_corner, beyond_edge, faces, inside])


@self_check
def check_box_sdf(fn) -> str:
    """``fn(p (..., 3), half (3,)) -> (...)``: the exact signed distance to the box ``[-half, half]`` (negative
    inside).  References: the nearest point of the box (``p`` clamped to it) and ``course_lib``'s ``Box``."""
    from course_lib.data.primitives import Box

    gen = torch.Generator().manual_seed(60)
    half = torch.tensor([0.6, 0.3, 0.45])
    pts = _box_points(half, gen).float()
    out = call_student(fn, pts.clone(), half.clone())
    expect_tensor(out, "box_sdf(p (N, 3), half)", shape=(len(pts),))
    ref = _box_sdf_reference(pts, half)
    got = out.detach().double()
    if not torch.allclose(got, ref, atol=1e-5):
        for variant, message in _BOX_MISTAKES:
            if torch.allclose(got, _box_sdf_variant(pts, half, variant), atol=1e-5):
                raise CheckFailed(message)
        bad = (got - ref).abs() > 1e-5
        where = []
        for name, mask in (("inside the box", ref < 0), ("outside", ref > 0)):
            if bool((bad & mask).any()):
                where.append(name)
        raise CheckFailed(f"wrong distances at {int(bad.sum())} of {len(pts)} points ({' and '.join(where)}); the "
                          f"first: p = {[round(float(v), 3) for v in pts[bad][0]]}, yours {float(got[bad][0]):.4f}, "
                          f"expected {float(ref[bad][0]):.4f}")
    lib = Box(half.double().numpy()).sdf(pts.double())
    expect(torch.allclose(ref, lib, atol=1e-6), "internal: the two references disagree")
    # any leading shape
    grid = pts[:60].reshape(3, 4, 5, 3)
    out2 = call_student(fn, grid, half)
    expect_tensor(out2, "box_sdf(p (3, 4, 5, 3), half)", shape=(3, 4, 5))
    expect(torch.allclose(out2.detach().double().reshape(-1), ref[:60], atol=1e-5),
           "with p of shape (3, 4, 5, 3) the distances differ from those of the same points as (60, 3): reduce over "
           "the last axis only (dim=-1)")
    # differentiable, and its gradient has norm 1 where the SDF is smooth (here: off the box's ridges)
    q = torch.tensor([[1.0, 0.05, 0.1], [0.9, 0.6, 0.7], [0.1, 0.05, 0.02]], requires_grad=True)
    v = call_student(fn, q, half)
    expect(isinstance(v, torch.Tensor) and v.requires_grad, "the SDF carries no gradient: compute it with torch "
                                                            "operations on p, without detaching")
    (g,) = torch.autograd.grad(v.sum(), q)
    if not bool(torch.isfinite(g).all()):
        raise CheckFailed(f"the gradient is NaN or inf at a point off the box's ridges ({g.tolist()}): inside the "
                          "box the outside term is the length of a zero vector, and sqrt has an infinite slope at 0; "
                          "use torch.linalg.norm (its gradient at 0 is 0), or clamp before squaring")
    unit = torch.allclose(g.norm(dim=-1), torch.ones(3), atol=1e-4)
    expect(unit, f"the gradient's norm at three points off the ridges is {g.norm(dim=-1).tolist()}, not 1: an "
                         "exact SDF changes at unit rate along its gradient")
    return (f"{len(pts)} points inside, in front of faces, beyond edges and corners; any leading shape; "
            "|gradient| = 1")


def _hidden_sample_triangle_mesh(fn) -> str:
    # a mesh of three triangles with areas 1 : 2 : 5 (float64, far from the origin) and one zero-area triangle
    verts = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 1, 0],        # area 1
                          [0, 0, 1], [2, 0, 1], [0, 2, 1],          # area 2
                          [0, 0, 3], [5, 0, 3], [0, 2, 3],          # area 5
                          [1, 1, 5], [2, 2, 5], [3, 3, 5]], dtype=torch.float64) + 1000.0
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [9, 10, 11], [6, 7, 8]])
    before = (verts.clone(), faces.clone())
    n = 6_000
    pts = _call_sampler(fn, verts, faces, n, seed=20)  # shape (n, 3) and dtype float64
    expect(torch.equal(verts, before[0]) and torch.equal(faces, before[1]),
           "your function changed `vertices` or `faces` in place: compute on new tensors")
    shares = []
    on_any = torch.zeros(n, dtype=torch.bool)
    for f in (0, 1, 3):
        on = _on_triangle(pts, verts[faces[f]], 1e-6)
        on_any |= on
        shares.append(float(on.double().mean()))
    expect(bool(on_any.all()), f"{int((~on_any).sum())} of {n} float64 points are not on the triangles (a mesh "
                               "1000 units from the origin, tolerance 1e-6): keep the dtype of `vertices` (float64) "
                               "for the random weights too")
    for share, p in zip(shares, (1 / 8, 2 / 8, 5 / 8)):
        tol = 5 * math.sqrt(p * (1 - p) / n)
        expect(abs(share - p) <= tol, f"on triangles of areas 1 : 2 : 5 (and one of area 0) the shares of the points "
                                      f"are {', '.join(f'{s:.3f}' for s in shares)}, expected 0.125, 0.25, 0.625")
    # one point
    one = call_student(fn, verts[:3], faces[:1], 1, torch.Generator().manual_seed(21))
    if isinstance(one, torch.Tensor) and one.dim() == 1:
        raise CheckFailed(f"n = 1 gives shape {tuple(one.shape)}: a .squeeze() drops the points axis; return (n, 3) "
                          "for every n")
    expect_tensor(one, "one sample (n = 1)", shape=(1, 3), dtype=torch.float64)
    expect(bool(_on_triangle(one, verts[:3], 1e-6).all()), "the single sample is not on its triangle")
    # one generator, two calls: fresh points (the generator advances), and a copy of it gives the same
    gen = torch.Generator().manual_seed(22)
    state = gen.get_state()
    a = call_student(fn, verts, faces, 50, gen)
    b = call_student(fn, verts, faces, 50, gen)
    expect_tensor(a, "the samples (n=50)", shape=(50, 3))
    expect(not torch.equal(a, b), "two calls with the SAME generator gave the same points: draw from `generator` "
                                  "itself (do not copy or re-seed it), so that each call advances it")
    gen2 = torch.Generator()
    gen2.set_state(state)
    c = call_student(fn, verts, faces, 50, gen2)
    expect(torch.equal(a, c), "a generator in the same state gave other points: draw every random number from it")
    return "float64 far from the origin, areas 1 : 2 : 5 and a zero-area triangle, n = 1, fresh draws, inputs kept"


def _ball_at(centre: torch.Tensor, radius: float):
    def occ(p: torch.Tensor) -> torch.Tensor:
        if p.shape[-1] != 3:
            raise CheckFailed(f"occupancy_fn was called on points of shape {tuple(p.shape)}: pass (..., 3) points")
        return ((p.double() - centre) ** 2).sum(-1) < radius**2
    return occ


def _hidden_voxelize(fn) -> str:
    # a grid of one cell: its centre is the origin
    for inside in (True, False):
        occ = _ball_at(torch.zeros(3, dtype=torch.float64) if inside else torch.full((3,), 5.0, dtype=torch.float64),
                       0.5)
        out = call_student(fn, occ, 1, 2.0)
        if isinstance(out, torch.Tensor) and out.dim() < 3:
            raise CheckFailed(f"a grid of one cell (R = 1) has shape {tuple(out.shape)}: a .squeeze() drops its axes; "
                              "return (R, R, R) for every R")
        expect_tensor(out, "the grid for R = 1", shape=(1, 1, 1))
        expect(bool(out.bool().item()) == inside, f"R = 1, bound = 2: the one cell's centre is the origin, which is "
                                                  f"{'inside' if inside else 'outside'} the shape")
    # one occupied cell, at an asymmetric position, for odd and even R and other bounds
    for resolution, bound, cell in ((2, 0.5, (1, 0, 1)), (5, 0.7, (0, 3, 4)), (9, 1.3, (8, 2, 5)), (16, 1.0, (3, 14, 7))):
        c = _centres(resolution, bound)
        centre = torch.stack([c[cell[0]], c[cell[1]], c[cell[2]]])
        h = 2 * bound / resolution
        out = call_student(fn, _ball_at(centre, 0.4 * h), resolution, bound)
        expect_tensor(out, f"the grid (R={resolution}, bound={bound})", shape=(resolution,) * 3)
        expect(out.dtype == torch.bool, f"the grid has dtype {out.dtype}: return a bool tensor")
        got = [tuple(int(v) for v in i) for i in out.cpu().nonzero()]
        expect(got == [cell], f"R={resolution}, bound={bound}: a ball of radius 0.4 h around the centre of cell "
                              f"{cell} should occupy that cell only, got the cells {got[:4]}"
                              f"{' ...' if len(got) > 4 else ''}: cell (i, j, k) is centred at -bound + (i + 1/2) h "
                              "on each axis, in the order x, y, z")
    again = call_student(fn, _box_occupancy, 7, 1.0)
    expect(torch.equal(again.cpu(), _box_reference(7, 1.0)), "a second call on the box gives another grid")
    return "R = 1 (inside and outside), one occupied cell at R = 2, 5, 9, 16 with bounds 0.5 to 1.3"


def _hidden_count_bytes(fn) -> str:
    bn = torch.nn.BatchNorm1d(4)  # 8 parameters, and buffers (running mean, var, count) that are not parameters
    big = torch.zeros(6, 8)
    shared = torch.nn.Linear(2, 2)
    cases = [
        ("an empty float32 tensor (0, 3)", torch.zeros(0, 3), 0),
        ("a 0-d float64 tensor", torch.tensor(1.0, dtype=torch.float64), 8),
        ("a float16 tensor (7,)", torch.zeros(7, dtype=torch.float16), 14),
        ("an int8 tensor (3, 3)", torch.zeros(3, 3, dtype=torch.int8), 9),
        ("a strided view t[:, ::2] of a float32 (6, 8) tensor (24 elements)", big[:, ::2], 96),
        ("an MLP 3 -> 16 -> 1 in float64 (model.double())",
         torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)).double(),
         (3 * 16 + 16 + 16 + 1) * 8),
        ("a BatchNorm1d(4): parameters only, its buffers are not parameters", bn, 8 * 4),
        ("one Linear(2, 2) used twice in a Sequential (its parameters count once)",
         torch.nn.Sequential(shared, shared), 6 * 4),
        ("an empty dict", {}, 0),
        ("a list of a tuple of a float32 (2,) tensor and a dict holding an int64 (3,) tensor",
         [(torch.zeros(2), {"idx": torch.zeros(3, dtype=torch.long)})], 8 + 24),
    ]
    for what, obj, expected in cases:
        out = call_student(fn, obj)
        if isinstance(out, torch.Tensor):
            raise CheckFailed(f"for {what} you returned a tensor: return a Python int (int(...))")
        expect(isinstance(out, (int, np.integer)) and not isinstance(out, bool),
               f"for {what} you returned {type(out).__name__}: return an int")
        if int(out) != expected and isinstance(obj, torch.nn.Module) and "float64" in what and \
                int(out) == expected // 2:
            raise CheckFailed(f"{what}: you counted {int(out)} bytes, expected {expected}: 4 bytes per parameter is "
                              "float32 only; use each tensor's element_size()")
        if int(out) != expected and obj is bn:
            raise CheckFailed(f"{what}: you counted {int(out)} bytes, expected {expected}: count module.parameters() "
                              "only (a state_dict also holds the buffers, which are not parameters)")
        expect(int(out) == expected, f"{what}: you counted {int(out)} bytes, expected {expected}")
    return "empty, 0-d, float16, int8 and strided tensors, a float64 MLP, a BatchNorm, shared layers, nested containers"


def _hidden_box_sdf(fn) -> str:
    gen = torch.Generator().manual_seed(61)
    for half, dtype, what in ((torch.tensor([0.5, 0.5, 0.5]), torch.float64, "a cube, float64"),
                              (torch.tensor([1e-3, 0.7, 0.2]), torch.float32, "a thin plate"),
                              (torch.tensor([0.2, 0.3, 0.4]), torch.float64, "far points, float64")):
        pts = _box_points(half, gen, n=50)
        if what.startswith("far"):
            pts = pts * 50
        pts, h = pts.to(dtype), half.to(dtype)
        before_p, before_h = pts.clone(), h.clone()
        out = call_student(fn, pts, h)
        expect_tensor(out, f"box_sdf ({what})", shape=(len(pts),))
        expect(out.dtype == dtype, f"for {dtype} points the SDF is {out.dtype}: keep the dtype")
        expect(torch.equal(pts, before_p) and torch.equal(h, before_h),
               "your function changed p or half in place: leave the inputs as they came")
        ref = _box_sdf_reference(pts, h)
        expect_close(out, ref, f"box_sdf ({what})", atol=1e-5 if dtype == torch.float32 else 1e-10,
                     rtol=1e-6)
    # one point, and points exactly on the surface (distance 0)
    half = torch.tensor([0.4, 0.2, 0.3], dtype=torch.float64)
    one = call_student(fn, torch.tensor([[0.4, 0.0, 0.1]], dtype=torch.float64), half)
    expect_tensor(one, "box_sdf of one point", shape=(1,))
    on = torch.tensor([[0.4, 0.1, -0.2], [0.0, -0.2, 0.0], [0.4, 0.2, 0.3]], dtype=torch.float64)
    vals = call_student(fn, on, half)
    expect(bool((vals.detach().abs() < 1e-9).all()), f"on the surface (a face, a face centre, a corner) the SDF is "
                                                       f"0, got {vals.detach().tolist()}")
    return "a cube, a thin plate, far points, float64, one point, points on the surface, inputs unchanged"


def _register_hidden() -> None:
    from course_lib import data, geometry
    from course_lib.data import samplers
    from course_lib.geometry import memory, sampling

    check_sample_triangle_mesh.hidden(_hidden_sample_triangle_mesh,
                                      references=(geometry.sample_mesh_surface, sampling.sample_mesh_surface))
    check_voxelize.hidden(_hidden_voxelize, references=(data.voxelize, samplers.voxelize, samplers.voxel_centers))
    check_count_bytes.hidden(_hidden_count_bytes, references=(memory.nbytes,))
    from course_lib.data import primitives

    check_box_sdf.hidden(_hidden_box_sdf, references=(primitives.Box.local_sdf, primitives.Primitive.sdf,
                                                     primitives.RoundBox.local_sdf))


_register_hidden()
