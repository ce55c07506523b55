"""Tests of the chapter-01 self-checks: the reference passes, typical mistakes fail with a helpful message."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from check_helpers import hidden_results_on

from course_lib import checks
from course_lib.checks import data as cd


# ---------------------------------------------------------------------------
# samplers: one right, several wrong
# ---------------------------------------------------------------------------
def _areas(v, f):
    tri = v[f]
    return 0.5 * torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=-1)


def good_sampler(v, f, n, generator):
    idx = torch.multinomial(_areas(v, f), n, replacement=True, generator=generator)
    tri = v[f[idx]]
    r1 = torch.rand(n, 1, generator=generator, dtype=v.dtype).sqrt()
    r2 = torch.rand(n, 1, generator=generator, dtype=v.dtype)
    return (1 - r1) * tri[:, 0] + r1 * (1 - r2) * tri[:, 1] + r1 * r2 * tri[:, 2]


def folding_sampler(v, f, n, generator):
    """Also correct: fold (r1, r2) with r1 + r2 > 1 back into the triangle."""
    idx = torch.multinomial(_areas(v, f), n, replacement=True, generator=generator)
    tri = v[f[idx]]
    r = torch.rand(n, 2, generator=generator, dtype=v.dtype)
    flip = r.sum(-1) > 1
    r[flip] = 1 - r[flip]
    return tri[:, 0] + r[:, :1] * (tri[:, 1] - tri[:, 0]) + r[:, 1:] * (tri[:, 2] - tri[:, 0])


def equal_triangles(v, f, n, generator):
    idx = torch.randint(len(f), (n,), generator=generator)
    tri = v[f[idx]]
    r1 = torch.rand(n, 1, generator=generator).sqrt()
    r2 = torch.rand(n, 1, generator=generator)
    return (1 - r1) * tri[:, 0] + r1 * (1 - r2) * tri[:, 1] + r1 * r2 * tri[:, 2]


def no_sqrt(v, f, n, generator):
    idx = torch.multinomial(_areas(v, f), n, replacement=True, generator=generator)
    tri = v[f[idx]]
    r1 = torch.rand(n, 1, generator=generator)
    r2 = torch.rand(n, 1, generator=generator)
    return (1 - r1) * tri[:, 0] + r1 * (1 - r2) * tri[:, 1] + r1 * r2 * tri[:, 2]


def normalised_weights(v, f, n, generator):
    idx = torch.multinomial(_areas(v, f), n, replacement=True, generator=generator)
    w = torch.rand(n, 3, generator=generator)
    w = w / w.sum(-1, keepdim=True)
    return (w[:, :, None] * v[f[idx]]).sum(1)


def no_fold(v, f, n, generator):
    idx = torch.multinomial(_areas(v, f), n, replacement=True, generator=generator)
    tri = v[f[idx]]
    r = torch.rand(n, 2, generator=generator)
    return tri[:, 0] + r[:, :1] * (tri[:, 1] - tri[:, 0]) + r[:, 1:] * (tri[:, 2] - tri[:, 0])


def ignores_generator(v, f, n, generator):
    return good_sampler(v, f, n, torch.Generator().manual_seed(int(torch.randint(10**6, (1,)))))


def test_sampling_reference_and_folding_pass():
    assert checks.check_sample_triangle_mesh(good_sampler, quiet=True).passed
    assert checks.check_sample_triangle_mesh(folding_sampler, quiet=True).passed


def test_sampling_against_trimesh_sampler_passes():
    """trimesh's own area-weighted sampler (seeded from the generator) is accepted too."""

    def via_trimesh(v, f, n, generator):
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        mesh = trimesh.Trimesh(v.numpy(), f.numpy(), process=False)
        pts, _ = trimesh.sample.sample_surface(mesh, n, seed=seed)
        return torch.as_tensor(pts, dtype=v.dtype)

    assert checks.check_sample_triangle_mesh(via_trimesh, quiet=True).passed


@pytest.mark.parametrize(
    "wrong, words",
    [
        (equal_triangles, "90% of the area"),
        (no_sqrt, "crowd towards vertex 0"),
        (normalised_weights, "crowd towards the centre"),
        (no_fold, "not on the mesh"),
        (ignores_generator, "seeded alike"),
    ],
)
def test_sampling_mistakes_are_named(wrong, words):
    res = checks.check_sample_triangle_mesh(wrong, quiet=True)
    assert res.status == "failed", res.verdict()
    assert words in res.message


def test_sampling_shape_dtype_and_stub():
    res = checks.check_sample_triangle_mesh(lambda v, f, n, g: good_sampler(v, f, n, g)[:-1], quiet=True)
    assert res.status == "failed" and "shape" in res.message
    res = checks.check_sample_triangle_mesh(lambda v, f, n, g: good_sampler(v, f, n, g).double(), quiet=True)
    assert res.status == "failed" and "dtype" in res.message

    def stub(v, f, n, generator):
        raise NotImplementedError()

    assert checks.check_sample_triangle_mesh(stub, quiet=True).status == "not_implemented"
    res = checks.check_sample_triangle_mesh(lambda v, f, n, g: v[f][n], quiet=True)
    assert res.status == "error" and "IndexError" in res.message


def test_barycentric_helper_against_trimesh():
    gen = torch.Generator().manual_seed(0)
    tri = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    w = torch.rand(50, 3, generator=gen, dtype=torch.float64)
    w = w / w.sum(-1, keepdim=True)
    pts = w @ tri
    got, dist = cd.barycentric(pts, tri)
    ref = trimesh.triangles.points_to_barycentric(tri.numpy()[None].repeat(50, 0), pts.numpy())
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-9)
    np.testing.assert_allclose(got.numpy(), w.numpy(), atol=1e-9)
    assert float(dist.max()) < 1e-12


# ---------------------------------------------------------------------------
# voxelisation
# ---------------------------------------------------------------------------
def good_voxelize(occupancy_fn, resolution, bound=1.0):
    c = -bound + (torch.arange(resolution) + 0.5) * (2 * bound / resolution)
    pts = torch.stack(torch.meshgrid(c, c, c, indexing="ij"), dim=-1)
    return occupancy_fn(pts)


def xy_indexing(occupancy_fn, resolution, bound=1.0):
    c = -bound + (torch.arange(resolution) + 0.5) * (2 * bound / resolution)
    return occupancy_fn(torch.stack(torch.meshgrid(c, c, c, indexing="xy"), dim=-1))


def corners(occupancy_fn, resolution, bound=1.0):
    c = torch.linspace(-bound, bound, resolution)
    return occupancy_fn(torch.stack(torch.meshgrid(c, c, c, indexing="ij"), dim=-1))


def zyx(occupancy_fn, resolution, bound=1.0):
    return good_voxelize(occupancy_fn, resolution, bound).permute(2, 1, 0)


def test_voxelize_reference_passes():
    res = checks.check_voxelize(good_voxelize, quiet=True)
    assert res.passed, res.verdict()


def test_voxelize_loop_reference_matches_brute_force():
    """The check's axis-by-axis reference agrees with a triple loop over cell centres."""
    r, b = 5, 1.2
    ref = cd._box_reference(r, b)
    h = 2 * b / r
    for i in range(r):
        for j in range(r):
            for k in range(r):
                p = torch.tensor([-b + (i + 0.5) * h, -b + (j + 0.5) * h, -b + (k + 0.5) * h])
                assert bool(cd._box_occupancy(p)) == bool(ref[i, j, k])
    assert ref.any() and not ref.all()


@pytest.mark.parametrize(
    "wrong, words",
    [
        (xy_indexing, "indexing='ij'"),
        (corners, "cell corners"),
        (zyx, "(z, y, x)"),
        (lambda fn, r, bound=1.0: ~good_voxelize(fn, r, bound), "swapped"),
        (lambda fn, r, bound=1.0: good_voxelize(fn, r, bound).float(), "bool"),
        (lambda fn, r, bound=1.0: good_voxelize(fn, r, 1.0), "voxels differ"),  # ignores bound
    ],
)
def test_voxelize_mistakes_are_named(wrong, words):
    res = checks.check_voxelize(wrong, quiet=True)
    assert res.status == "failed", res.verdict()
    assert words in res.message


def test_voxelize_stub():
    def stub(occupancy_fn, resolution, bound=1.0):
        raise NotImplementedError()

    assert checks.check_voxelize(stub, quiet=True).status == "not_implemented"


# ---------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------
def good_count_bytes(obj):
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.numel()
    if isinstance(obj, trimesh.Trimesh):
        return obj.vertices.nbytes + obj.faces.nbytes
    if isinstance(obj, torch.nn.Module):
        return sum(good_count_bytes(p) for p in obj.parameters())
    if isinstance(obj, dict):
        return sum(good_count_bytes(v) for v in obj.values())
    raise TypeError(type(obj))


def test_count_bytes():
    assert checks.check_count_bytes(good_count_bytes, quiet=True).passed

    def no_faces(obj):
        return obj.vertices.nbytes if isinstance(obj, trimesh.Trimesh) else good_count_bytes(obj)

    res = checks.check_count_bytes(no_faces, quiet=True)
    assert res.status == "failed" and "trimesh box" in res.message
    res = checks.check_count_bytes(lambda o: torch.tensor(good_count_bytes(o)), quiet=True)
    assert res.status == "failed" and "Python int" in res.message
    res = checks.check_count_bytes(lambda o: o.numel(), quiet=True)  # elements, not bytes
    assert res.status == "failed" and "120" in res.message

    def stub(obj):
        raise NotImplementedError()

    assert checks.check_count_bytes(stub, quiet=True).status == "not_implemented"


# ---------------------------------------------------------------------------
# hidden parts (the grader's)
# ---------------------------------------------------------------------------
_hidden = hidden_results_on  # (public result, hidden result)


def full_count_bytes(obj):
    """The lab's solution: good_count_bytes, plus lists and tuples."""
    if isinstance(obj, (list, tuple)):
        return sum(full_count_bytes(v) for v in obj)
    if isinstance(obj, dict):
        return sum(full_count_bytes(v) for v in obj.values())
    return good_count_bytes(obj)


def test_hidden_parts_pass_the_references(monkeypatch):
    for check, answer in ((checks.check_sample_triangle_mesh, good_sampler),
                          (checks.check_sample_triangle_mesh, folding_sampler),
                          (checks.check_voxelize, good_voxelize), (checks.check_count_bytes, full_count_bytes)):
        res, hid = _hidden(monkeypatch, check, answer)
        assert res.passed and hid.passed, hid.verdict()


def test_hidden_sampling_catches_a_copied_generator_and_a_squeeze(monkeypatch):
    def copied_generator(v, f, n, generator):  # reproducible, but the caller's generator never advances
        g = torch.Generator()
        g.set_state(generator.get_state())
        return good_sampler(v, f, n, g)

    res, hid = _hidden(monkeypatch, checks.check_sample_triangle_mesh, copied_generator)
    assert res.passed
    assert hid.status == "failed" and "SAME generator" in hid.message, hid.verdict()
    res, hid = _hidden(monkeypatch, checks.check_sample_triangle_mesh, lambda v, f, n, g: good_sampler(v, f, n, g).squeeze())
    assert res.passed
    assert hid.status == "failed" and ".squeeze()" in hid.message, hid.verdict()


def test_hidden_voxelize_catches_a_squeeze(monkeypatch):
    res, hid = _hidden(monkeypatch, checks.check_voxelize, lambda fn, r, bound=1.0: good_voxelize(fn, r, bound).squeeze())
    assert res.passed
    assert hid.status == "failed" and "R = 1" in hid.message and ".squeeze()" in hid.message, hid.verdict()


def test_hidden_count_bytes_catches_float32_only_and_buffers(monkeypatch):
    def four_bytes(obj):  # right for the public float32 MLP
        if isinstance(obj, torch.nn.Module):
            return 4 * sum(p.numel() for p in obj.parameters())
        return full_count_bytes(obj)

    res, hid = _hidden(monkeypatch, checks.check_count_bytes, four_bytes)
    assert res.passed
    assert hid.status == "failed" and "element_size()" in hid.message, hid.verdict()

    def state_dict(obj):  # counts the buffers too
        if isinstance(obj, torch.nn.Module):
            return sum(full_count_bytes(t) for t in obj.state_dict().values())
        return full_count_bytes(obj)

    res, hid = _hidden(monkeypatch, checks.check_count_bytes, state_dict)
    assert res.passed
    assert hid.status == "failed" and "buffers" in hid.message, hid.verdict()
    res, hid = _hidden(monkeypatch, checks.check_count_bytes, good_count_bytes)  # no lists or tuples
    assert res.passed
    assert hid.status == "error" and "TypeError" in hid.message, hid.verdict()


def test_hidden_parts_flag_the_library(monkeypatch):
    from course_lib.data import samplers
    from course_lib.geometry import memory

    res, hid = _hidden(monkeypatch, checks.check_count_bytes, lambda obj: memory.nbytes(obj))
    assert res.passed
    assert "delegated to course_lib.geometry.memory.nbytes" in hid.message, hid.verdict()
    res, hid = _hidden(monkeypatch, checks.check_voxelize,
                       lambda fn, r, bound=1.0: fn(samplers.voxel_centers(r, bound)).bool())
    assert res.passed
    assert "delegated to course_lib.data.samplers.voxel_centers" in hid.message, hid.verdict()


# ---------------------------------------------------------------------------
# the exact SDF of a box
# ---------------------------------------------------------------------------
def box_sdf(p, half):
    q = p.abs() - half
    return torch.linalg.norm(q.clamp(min=0), dim=-1) + q.max(dim=-1).values.clamp(max=0)


def test_box_sdf_reference_passes_and_stub_is_flagged(monkeypatch):
    from check_helpers import stub

    res, hid = hidden_results_on(monkeypatch, checks.check_box_sdf, box_sdf)
    assert res.passed and hid.passed, (res.verdict(), hid.verdict())
    # the reference agrees with course_lib's Box on random points (and the check's own nearest-point reference)
    from course_lib.data.primitives import Box

    p = torch.randn(500, 3, dtype=torch.float64)
    half = torch.tensor([0.6, 0.3, 0.45], dtype=torch.float64)
    assert torch.allclose(box_sdf(p, half), Box(half.numpy()).sdf(p), atol=1e-9)
    assert torch.allclose(cd._box_sdf_reference(p, half), box_sdf(p, half), atol=1e-12)
    assert checks.check_box_sdf(stub, quiet=True).status == "not_implemented"


@pytest.mark.parametrize("variant, words", [
    ("chebyshev", ["max(q) everywhere", "edge or a corner"]),
    ("outside_only", ["inside the box your SDF is 0"]),
    ("sign", ["sign is flipped"]),
    ("l1", ["L1 norm"]),
    ("squared", ["SQUARED length"]),
    ("min_inside", ["min(q)"]),
    ("full_extents", ["half as large"]),
    ("double_extents", ["twice as large"]),
    ("no_abs", ["|p| - half"]),
])
def test_box_sdf_mistakes_are_named(variant, words):
    res = checks.check_box_sdf(lambda p, half: cd._box_sdf_variant(p, half, variant).to(p.dtype), quiet=True)
    assert res.status == "failed", res.verdict()
    for w in words:
        assert w in res.message, res.message


def test_box_sdf_other_mistakes():
    # reduced over every axis: fine for (N, 3), wrong for (3, 4, 5, 3)
    def flat(p, half):
        q = p.abs() - half
        return (q.clamp(min=0).pow(2).sum(-1) ** 0.5 + q.max(dim=-1).values.clamp(max=0)).reshape(-1)[: p.shape[0]] \
            if p.dim() > 2 else box_sdf(p, half)

    res = checks.check_box_sdf(flat, quiet=True)
    assert res.status == "failed" and "(3, 4, 5" in res.message, res.verdict()
    res = checks.check_box_sdf(lambda p, half: box_sdf(p, half).detach(), quiet=True)
    assert res.status == "failed" and "no gradient" in res.message, res.verdict()

    def sqrt_of_sum(p, half):  # also right: clamp's backward masks sqrt's infinite slope at 0 inside the box
        q = p.abs() - half
        return torch.sqrt(q.clamp(min=0).pow(2).sum(-1)) + q.max(dim=-1).values.clamp(max=0)

    assert checks.check_box_sdf(sqrt_of_sum, quiet=True).passed


def test_box_sdf_hidden_part_catches_float32_only_and_the_library(monkeypatch):
    res, hid = hidden_results_on(monkeypatch, checks.check_box_sdf, lambda p, half: box_sdf(p.float(), half.float()))
    assert res.passed and hid.status == "failed" and "keep the dtype" in hid.message, hid.verdict()
    from course_lib.data.primitives import Box

    res, hid = hidden_results_on(monkeypatch, checks.check_box_sdf,
                                 lambda p, half: Box(half.detach().double().numpy()).sdf(p.double()).to(p.dtype))
    assert res.passed and hid.status == "failed" and "delegated" in hid.message, hid.verdict()
