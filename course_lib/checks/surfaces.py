"""Self-checks of chapter 06 (``labs/06_surfaces_lab.ipynb``): grid mesh, patch decoder, atlas mesh, labels.

Introduced in ``lectures/06_surfaces.ipynb``.  The references are geometric facts checked
with trimesh (area, Euler characteristic, orientation of a triangulated square), a
point-by-point evaluation of the student's decoder, and brute-force nearest neighbours.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
import trimesh
from torch import nn

from ._core import CheckFailed, call_student, expect, expect_close, expect_tensor, self_check

__all__ = ["check_grid_faces", "check_patch_decoder", "check_atlas_mesh", "check_transfer_labels"]


def _grid_uv(n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)
    u, v = np.meshgrid(t, t, indexing="ij")
    return np.stack([u.reshape(-1), v.reshape(-1)], axis=-1)


def _check_faces_of_grid(faces: torch.Tensor, n: int) -> None:
    nf = 2 * (n - 1) ** 2
    expect_tensor(faces, f"grid_faces({n})", shape=(nf, 3))
    expect(faces.dtype == torch.long, f"grid_faces({n}) should be a LongTensor (indices), got {faces.dtype}")
    f = faces.numpy()
    expect(f.min() >= 0 and f.max() < n * n, f"grid_faces({n}) has indices outside [0, {n * n - 1}]")
    expect(all(len(set(r)) == 3 for r in f.tolist()),
           f"grid_faces({n}) has a face that repeats a vertex (a collapsed triangle)")
    uv = _grid_uv(n)
    i, j = np.divmod(f, n)
    expect(bool(((i.max(1) - i.min(1)) <= 1).all() and ((j.max(1) - j.min(1)) <= 1).all()),
           f"grid_faces({n}): every triangle must join corners of one grid cell; vertex i*n + j is at "
           f"(i/(n-1), j/(n-1))")
    mesh = trimesh.Trimesh(np.c_[uv, np.zeros(n * n)], f, process=False)
    cell = 1.0 / (n - 1) ** 2
    expect(np.allclose(mesh.area_faces, cell / 2),
           f"grid_faces({n}): every triangle should be half a cell (area {cell / 2:.4g}); some are not")
    expect(len({tuple(sorted(r)) for r in f.tolist()}) == nf, f"grid_faces({n}) lists a triangle twice")
    expect(np.isclose(mesh.area, 1.0), f"grid_faces({n}): the triangles should tile the unit square "
                                       f"(total area 1), got {mesh.area:.4g}")
    edges = Counter(map(tuple, np.sort(mesh.edges, axis=1).tolist()))
    expect(max(edges.values()) <= 2, f"grid_faces({n}): an edge is shared by more than two triangles (overlap)")
    normals_z = mesh.face_normals[:, 2]
    if bool((normals_z < 0).all()):
        raise CheckFailed(f"grid_faces({n}): every triangle is listed CLOCKWISE in the (u, v) plane; list the "
                          "corners counter-clockwise (swap two corners of each triangle), so that the normals "
                          "point to +w")
    expect(bool((normals_z > 0).all()),
           f"grid_faces({n}): {int((normals_z < 0).sum())} of {nf} triangles are clockwise: the triangles are "
           "not all oriented the same way (list every triangle's corners counter-clockwise in the (u, v) plane)")
    expect(mesh.euler_number == 1, f"grid_faces({n}): a triangulated square should have Euler "
                                   f"characteristic V - E + F = 1, got {mesh.euler_number}")


@self_check
def check_grid_faces(fn) -> str:
    """``fn(n) -> LongTensor (2 (n-1)^2, 3)``: the triangles of a regular ``n x n`` grid.

    Vertex ``i * n + j`` is the grid point ``(i / (n - 1), j / (n - 1))``.
    """
    for n in (2, 3, 6):
        faces = call_student(fn, n)
        if not isinstance(faces, torch.Tensor) and isinstance(faces, np.ndarray):
            raise CheckFailed(f"grid_faces({n}) should be a torch.Tensor, got a numpy array (use torch.as_tensor)")
        _check_faces_of_grid(faces, n)
    return "2 (n-1)^2 triangles tiling the square, one orientation, Euler characteristic 1 (n = 2, 3, 6)"


def _affine_residual(y: torch.Tensor, uv: torch.Tensor) -> float:
    """Relative residual of the least-squares fit of ``y (M, 3)`` by an affine map of ``uv (M, 2)``."""
    a = torch.cat([uv.double(), torch.ones(len(uv), 1, dtype=torch.float64)], dim=1)
    sol = torch.linalg.lstsq(a, y.double()).solution
    res = (a @ sol - y.double()).norm()
    return float(res / (y.double() - y.double().mean(0)).norm().clamp_min(1e-12))


@self_check
def check_patch_decoder(cls) -> str:
    """``cls(latent_dim)`` is an ``nn.Module``; ``module(uv (M, 2), z (B, L)) -> (B, M, 3)`` in ``(-1, 1)``.

    An MLP with at least one hidden layer (ReLU) applied to ``[u, v, z]`` point by point, with a
    ``tanh`` output.  The module is tested in training mode (the mode it trains in): BatchNorm,
    which normalises over the points of a batch, makes a point's output depend on the others and
    is rejected; so is Dropout (the same input gives different outputs).
    """
    torch.manual_seed(0)
    dec = call_student(cls, 8)
    expect(isinstance(dec, nn.Module), f"PatchDecoder(8) should be an nn.Module, got {type(dec).__name__}")
    n_params = sum(p.numel() for p in dec.parameters())
    expect(n_params > 0, "the decoder has no parameters: build its layers in __init__ (nn.Linear ...)")
    dec.train()
    g = torch.Generator().manual_seed(1)
    uv, z = torch.rand(50, 2, generator=g), torch.randn(3, 8, generator=g)
    with torch.no_grad():
        out = call_student(dec, uv, z)
    expect_tensor(out, "decoder(uv (50, 2), z (3, 8))", shape=(3, 50, 3))
    with torch.no_grad():
        again = call_student(dec, uv, z)
    expect_tensor(again, "decoder(uv, z)", shape=(3, 50, 3))
    expect(torch.equal(out, again),
           "two calls with the same input gave different outputs in training mode: no Dropout in the decoder "
           "(or anything random)")
    with torch.no_grad():
        part = call_student(dec, uv[10:20], z)
        one_shape = call_student(dec, uv, z[1:2])
    expect_tensor(part, "decoder(uv[10:20], z)", shape=(3, 10, 3))
    expect_tensor(one_shape, "decoder(uv, z[1:2])", shape=(1, 50, 3))
    independent = bool(torch.allclose(part, out[:, 10:20], atol=1e-5) and torch.allclose(one_shape, out[1:2], atol=1e-5))
    if not independent:
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in dec.modules())
        raise CheckFailed(
            "the output of a point depends on the other points or shapes of the batch (decoding uv[10:20] alone, "
            "or one latent code alone, gives other values than within the full batch)"
            + (": that is your BatchNorm, which normalises over the batch in training mode; remove it"
               if has_bn else ": decode every (point, code) pair on its own, with no normalisation over the batch")
        )
    expect(float((out[0] - out[1]).abs().max()) > 1e-6,
           "two different latent codes give the same points: the decoder must use z")
    expect(float(out[0].std(dim=0).max()) > 1e-6, "every template point maps to the same 3D point: use uv")
    # the output range: a tanh keeps every point in [-1, 1] whatever the code
    with torch.no_grad():
        big = call_student(dec, uv, 1000.0 * z)
    expect_tensor(big, "decoder(uv, 1000 z)", shape=(3, 50, 3))
    if bool((big >= 0).all()) and bool((out >= 0).all()):
        raise CheckFailed("all your outputs are >= 0: the decoder should end with a tanh (values in (-1, 1)), "
                          "not a sigmoid or a ReLU")
    expect(bool(out.abs().max() < 1) and bool(big.abs().max() <= 1),
           f"outputs should lie in (-1, 1) for any code (with z scaled by 1000 the largest is "
           f"{float(big.abs().max()):.3g}): end with a tanh")
    # at least one hidden layer: before the tanh, the map uv -> point must not be affine
    # (on the template square and on a wider square, where more hidden units change sign)
    wide = torch.rand(200, 2, generator=g) * 4 - 1.5
    with torch.no_grad():
        out_wide = call_student(dec, wide, z)
    expect_tensor(out_wide, "decoder(uv (200, 2), z)", shape=(3, 200, 3))
    residual = 0.0
    for points, values in ((uv, out), (wide, out_wide)):
        pre = torch.atanh(values.double().clamp(-1 + 1e-9, 1 - 1e-9))
        residual = max(residual, *(_affine_residual(pre[b], points) for b in range(3)))
    expect(residual > 1e-4,
           "for a fixed code your decoder is an affine map of (u, v) followed by the tanh: it needs a hidden "
           "layer with a non-linearity (Linear -> ReLU -> Linear -> ... -> tanh); a single Linear, or Linears "
           "with no ReLU between them, can only shear the square")
    y = call_student(dec, uv, z)
    y.square().sum().backward()
    grads = [p.grad for p in dec.parameters() if p.requires_grad]
    expect(all(gr is not None for gr in grads), "some parameters get no gradient: is every layer used?")
    return f"(B, M, 3) in (-1, 1), point by point in training mode, non-linear in uv, uses z; {n_params} parameters"


def _reference_atlas_mesh(decoders, z, n):
    t = torch.linspace(0.0, 1.0, n)
    u, v = torch.meshgrid(t, t, indexing="ij")
    uv = torch.stack([u.reshape(-1), v.reshape(-1)], dim=-1)
    with torch.no_grad():
        verts = torch.cat([d(uv, z)[0] for d in decoders])
    return verts


@self_check
def check_atlas_mesh(fn) -> str:
    """``fn(decoders, z (1, L), n) -> (vertices (K n^2, 3), faces (K 2 (n-1)^2, 3))``.

    Decode an ``n x n`` grid with each of the ``K`` patch decoders and keep the grid's
    triangles, offset so that patch ``k``'s faces index patch ``k``'s vertices.
    """
    torch.manual_seed(0)

    class _Toy(nn.Module):
        def __init__(self, k: int) -> None:
            super().__init__()
            self.a = nn.Linear(2, 3)
            self.b = nn.Linear(4, 3)
            self.k = k

        def forward(self, uv, z):
            return torch.tanh(self.a(uv)[None] + self.b(z)[:, None] + 0.5 * self.k)

    decoders = [_Toy(k) for k in range(3)]
    z = torch.randn(1, 4)
    for n in (2, 4):
        out = call_student(fn, decoders, z, n)
        expect(isinstance(out, tuple) and len(out) == 2, "return a pair (vertices, faces)")
        verts, faces = out
        expect_tensor(verts, f"vertices (n={n})", shape=(3 * n * n, 3))
        expect_tensor(faces, f"faces (n={n})", shape=(3 * 2 * (n - 1) ** 2, 3))
        expect(faces.dtype == torch.long, f"faces should be a LongTensor, got {faces.dtype}")
        ref = _reference_atlas_mesh(decoders, z, n)
        v = verts.detach()
        for k in range(3):
            block = v[k * n * n:(k + 1) * n * n]
            rk = ref[k * n * n:(k + 1) * n * n]
            if torch.cdist(block, rk).min(dim=1).values.max() <= 1e-5 and not torch.allclose(block, rk, atol=1e-5):
                swapped = rk.reshape(n, n, 3).transpose(0, 1).reshape(-1, 3)
                if torch.allclose(block, swapped, atol=1e-5):
                    raise CheckFailed(f"patch {k}'s vertices are the right points in the transposed grid order: "
                                      "vertex i*n + j is at (u, v) = (i/(n-1), j/(n-1)); use "
                                      "torch.meshgrid(t, t, indexing='ij')")
            if torch.cdist(block, rk).min(dim=1).values.max() > 1e-5:
                raise CheckFailed(f"vertices {k * n * n}..{(k + 1) * n * n - 1} should be patch {k}'s decoded grid "
                                  f"(decoders[{k}](uv, z)), in patch order")
            expect_close(block, rk, f"patch {k}'s vertices (in the grid order of exercise 1, vertex i*n + j "
                         f"at (i/(n-1), j/(n-1)))", atol=1e-5)
        f = faces.numpy()
        expect(f.min() >= 0 and f.max() < 3 * n * n, "face indices point outside the vertex array")
        patch_of = f // (n * n)
        expect(bool((patch_of == patch_of[:, :1]).all()),
               "a triangle joins vertices of two patches: offset patch k's faces by k * n * n")
        per_patch = np.bincount(patch_of[:, 0], minlength=3)
        if per_patch[0] == len(f):
            raise CheckFailed("every triangle indexes patch 0's vertices: offset patch k's faces by k * n * n "
                              "so that they index patch k's vertices")
        expect(bool((per_patch == 2 * (n - 1) ** 2).all()),
               f"patches hold {per_patch.tolist()} triangles, expected {2 * (n - 1) ** 2} each: offset patch k's "
               "copy of the grid's faces by k * n * n")
        for k in range(3):
            sub = f[patch_of[:, 0] == k] - k * n * n
            try:
                _check_faces_of_grid(torch.as_tensor(sub), n)
            except CheckFailed as exc:
                raise CheckFailed(f"patch {k}'s faces (minus the offset {k * n * n}) are not a grid "
                                  f"triangulation: {exc}") from None
    return "K patches decoded on the grid, faces offset patch by patch (n = 2, 4)"


@self_check
def check_transfer_labels(fn) -> str:
    """``fn(deformed (B, V, 3), template_labels (V,), targets (B, M, 3)) -> (B, M)`` long.

    Each target point gets the label of its nearest deformed template vertex.
    """
    g = torch.Generator().manual_seed(3)
    deformed = torch.rand(2, 60, 3, generator=g)
    labels = torch.randint(0, 4, (60,), generator=g)
    targets = torch.rand(2, 150, 3, generator=g)
    out = call_student(fn, deformed, labels, targets)
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (2, 60):
        raise CheckFailed("you returned one label per template vertex (B, V) = (2, 60): return one per TARGET "
                          "point (B, M) = (2, 150); for each target point search among the deformed vertices")
    expect_tensor(out, "labels", shape=(2, 150))
    expect(out.dtype == torch.long, f"labels should be a LongTensor, got {out.dtype}")
    nearest = torch.cdist(targets.double(), deformed.double()).argmin(dim=-1)
    ref = labels[nearest]
    wrong = int((out != ref).sum())
    if wrong:
        far = labels[torch.cdist(targets.double(), deformed.double()).argmax(dim=-1)]
        if torch.equal(out.cpu(), far):
            raise CheckFailed("every target point took the label of its FARTHEST deformed vertex: use argmin, "
                              "not argmax")
        b, m = [int(i) for i in torch.nonzero(out != ref)[0]]
        hint = " (search, for each target point, among the deformed vertices)"
        raise CheckFailed(f"{wrong} of {out.numel()} labels are wrong; e.g. target point {m} of shape {b}: "
                          f"got {int(out[b, m])}, its nearest deformed vertex has label {int(ref[b, m])}{hint}")
    return "every target point takes the label of its nearest deformed template vertex"


# ---------------------------------------------------------------------------
# hidden parts (run by the grader only): other grid sizes, a new faces tensor per call, other latent sizes and widths, one
# point and one code, float64, gradients to the code, K = 1 and K = 5 patches in an nn.ModuleList, one target
# point, points on a vertex, shapes far apart in a batch, the caller's tensors untouched
# ---------------------------------------------------------------------------
def _hidden_grid_faces(fn) -> str:
    for n in (4, 17):
        faces = call_student(fn, n)
        if isinstance(faces, np.ndarray):
            raise CheckFailed(f"grid_faces({n}) should be a torch.Tensor, got a numpy array")
        _check_faces_of_grid(faces, n)
        kept = faces.clone()
        faces += 1000  # a caller offsets the faces in place, as an atlas does patch by patch
        again = call_student(fn, n)
        expect(isinstance(again, torch.Tensor), f"grid_faces({n}) should be a torch.Tensor")
        if torch.equal(again, faces):
            raise CheckFailed(f"grid_faces({n}) returns the same tensor on every call (a cache?): a caller that offsets "
                              "it in place (faces += k * n * n) changes your next answer; return a new tensor")
        expect(torch.equal(again, kept), f"two calls of grid_faces({n}) give different faces")
    return "n = 4 and 17; a new tensor on every call (an in-place offset by the caller does not leak)"


def _hidden_patch_decoder(cls) -> str:
    g = torch.Generator().manual_seed(60)
    sizes = {}
    for latent, hidden in ((1, 16), (5, 16), (5, 48)):
        torch.manual_seed(1)
        dec = call_student(cls, latent, hidden=hidden)
        expect(isinstance(dec, nn.Module), f"PatchDecoder({latent}, hidden={hidden}) should be an nn.Module")
        sizes[(latent, hidden)] = sum(p.numel() for p in dec.parameters())
        dec.train()
        uv, z = torch.rand(9, 2, generator=g), torch.randn(2, latent, generator=g)
        with torch.no_grad():
            out = call_student(dec, uv, z)
            one = call_student(dec, uv[4:5], z[1:2])
        expect_tensor(out, f"PatchDecoder({latent}, hidden={hidden})(uv (9, 2), z (2, {latent}))", shape=(2, 9, 3))
        expect_tensor(one, f"the decoder on one template point and one code (uv (1, 2), z (1, {latent}))",
                      shape=(1, 1, 3))
        expect_close(one[0, 0], out[1, 4], "one point decoded alone vs the same point within the batch", atol=1e-5)
    expect(sizes[(5, 16)] != sizes[(5, 48)],
           f"PatchDecoder(5, hidden=16) and PatchDecoder(5, hidden=48) have the same number of parameters "
           f"({sizes[(5, 16)]}): use the hidden argument as the width of the hidden layers")
    expect(sizes[(1, 16)] != sizes[(5, 16)], "the number of parameters does not change with latent_dim: the first "
                                             "layer takes 2 + latent_dim inputs")
    # float64 after .double(); gradients reach the code (the lab's fit optimises it); inputs untouched
    torch.manual_seed(2)
    dec = call_student(cls, 4).double()
    uv = torch.rand(6, 2, generator=g, dtype=torch.float64)
    z = torch.randn(3, 4, generator=g, dtype=torch.float64).requires_grad_(True)
    before = (uv.clone(), z.detach().clone())
    out = call_student(dec, uv, z)
    expect_tensor(out, "the decoder (in float64) on uv (6, 2), z (3, 4)", shape=(3, 6, 3))
    expect(out.dtype == torch.float64, f"after decoder.double() float64 inputs give {out.dtype}: build nothing in "
                                       "float32 inside forward (use the inputs' dtype)")
    expect(torch.equal(uv, before[0]) and torch.equal(z.detach(), before[1]),
           "the decoder changed the caller's uv or z (in place): work on new tensors")
    expect(out.requires_grad, "the output does not depend on z through autograd (detached?): the lab's fit "
                              "optimises the latent code through your decoder")
    (gz,) = torch.autograd.grad(out.sum(), z, allow_unused=True)
    expect(gz is not None and float(gz.abs().sum()) > 0,
           "no gradient reaches the latent code z: keep z in the graph (no .detach(), no numpy)")
    return "latent sizes 1 and 5, widths 16 and 48, one point and one code, float64, gradients reach z"


class _Shift(nn.Module):
    """A patch decoder for the hidden part: ``tanh(A uv + B z + k)``, each patch distinct."""

    def __init__(self, k: int, latent: int) -> None:
        super().__init__()
        self.a = nn.Linear(2, 3)
        self.b = nn.Linear(latent, 3)
        self.k = 0.3 * k

    def forward(self, uv, z):
        return torch.tanh(self.a(uv)[None] + self.b(z)[:, None] + self.k)


def _hidden_atlas_mesh(fn) -> str:
    torch.manual_seed(61)
    for k_patches, n, as_modules in ((1, 3, False), (5, 2, True), (2, 7, True)):
        decs = [_Shift(k, 6) for k in range(k_patches)]
        decoders = nn.ModuleList(decs) if as_modules else decs
        z = torch.randn(1, 6)
        z_before = z.clone()
        w_before = [p.detach().clone() for p in nn.ModuleList(decs).parameters()]
        out = call_student(fn, decoders, z, n)
        kind = "an nn.ModuleList" if as_modules else "a list"
        expect(isinstance(out, tuple) and len(out) == 2, "return a pair (vertices, faces)")
        verts, faces = out
        what = f"K = {k_patches} decoders in {kind}, n = {n}"
        expect_tensor(verts, f"vertices ({what})", shape=(k_patches * n * n, 3))
        expect_tensor(faces, f"faces ({what})", shape=(k_patches * 2 * (n - 1) ** 2, 3))
        expect(faces.dtype == torch.long, f"faces should be a LongTensor, got {faces.dtype}")
        expect(torch.equal(z, z_before), "the latent code z was changed in place")
        expect(all(torch.equal(p.detach(), w) for p, w in zip(nn.ModuleList(decs).parameters(), w_before)),
               "the decoders' weights changed")
        # reference: every grid vertex decoded on its own, in the order i * n + j, patch after patch
        t = np.linspace(0.0, 1.0, n)
        ref = []
        with torch.no_grad():
            for d in decs:
                for i in range(n):
                    for j in range(n):
                        ref.append(d(torch.tensor([[t[i], t[j]]], dtype=torch.float32), z)[0, 0])
        expect_close(verts.detach(), torch.stack(ref), f"the vertices ({what}), each grid point (i/(n-1), j/(n-1)) "
                     "decoded by its patch", atol=1e-5)
        f = faces.numpy()
        patch_of = f // (n * n)
        expect(bool((patch_of == patch_of[:, :1]).all()), f"a triangle joins vertices of two patches ({what})")
        for k in range(k_patches):
            sub = f[patch_of[:, 0] == k] - k * n * n
            try:
                _check_faces_of_grid(torch.as_tensor(sub), n)
            except CheckFailed as exc:
                raise CheckFailed(f"patch {k}'s faces ({what}, minus the offset {k * n * n}) are not a grid "
                                  f"triangulation: {exc}") from None
        again = call_student(fn, decoders, z, n)
        expect(torch.equal(again[1], faces), f"two calls give different faces ({what}): does your code change a "
                                             "faces tensor in place (+=) that it reuses?")
    return "K = 1, 2 and 5 patches, a list or an nn.ModuleList, n = 2, 3 and 7, vertex by vertex"


def _hidden_transfer_labels(fn) -> str:
    from scipy.spatial import cKDTree

    g = torch.Generator().manual_seed(62)
    for b, v, m, dtype in ((1, 40, 1, torch.float32), (1, 1, 25, torch.float64), (3, 30, 70, torch.float64)):
        deformed = torch.rand(b, v, 3, generator=g, dtype=dtype)
        labels = torch.randint(0, 5, (v,), generator=g)
        targets = torch.rand(b, m, 3, generator=g, dtype=dtype)
        targets[:, 0] = deformed[:, 0]  # a target point exactly on a vertex takes that vertex's label
        before = (deformed.clone(), labels.clone(), targets.clone())
        out = call_student(fn, deformed, labels, targets)
        what = f"labels for B = {b}, V = {v}, M = {m} ({dtype})"
        expect_tensor(out, what, shape=(b, m))
        expect(out.dtype == torch.long, f"{what} should be a LongTensor, got {out.dtype}")
        expect(all(torch.equal(x, y) for x, y in zip(before, (deformed, labels, targets))),
               "your function changed one of its inputs in place")
        ref = torch.stack([labels[torch.as_tensor(cKDTree(deformed[i].double().numpy()).query(
            targets[i].double().numpy())[1])] for i in range(b)])
        bad = int((out != ref).sum())
        expect(bad == 0, f"{what}: {bad} of {out.numel()} labels differ from the nearest vertex (a k-d tree's answer)"
                         + (" (target point 0 sits exactly on vertex 0)" if bool((out[:, 0] != ref[:, 0]).any()) else ""))
    # shapes are independent: moving shape 1's deformed template far away leaves shape 0's labels unchanged
    deformed = torch.rand(2, 30, 3, generator=g)
    labels = torch.randint(0, 5, (30,), generator=g)
    targets = torch.rand(2, 50, 3, generator=g)
    first = call_student(fn, deformed, labels, targets)
    moved = deformed.clone()
    moved[1] = moved[1].flip(0)
    second = call_student(fn, moved, labels, targets)
    expect(torch.equal(second[0], first[0]), "shape 0's labels changed when only shape 1's deformed template "
                                             "changed: search each shape's targets among its own deformed vertices")
    return "one target, one vertex, a target on a vertex, float64, B = 3, shapes independent (vs a k-d tree)"


def _register_hidden() -> None:
    from course_lib.models import atlasnet, coded

    check_grid_faces.hidden(_hidden_grid_faces, references=(atlasnet.grid_faces,))
    check_patch_decoder.hidden(_hidden_patch_decoder,
                               references=(atlasnet.PatchDecoder.__init__, atlasnet.PatchDecoder.forward))
    check_atlas_mesh.hidden(_hidden_atlas_mesh, references=(atlasnet.grid_faces,))
    check_transfer_labels.hidden(_hidden_transfer_labels, references=(coded.transfer_labels,))


_register_hidden()
