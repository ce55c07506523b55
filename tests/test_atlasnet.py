"""AtlasNet: templates, triangulations (checked with trimesh), decoder, model, mesh quality."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import trimesh

from course_lib.models import atlasnet as an
from course_lib.models.encoders import PointNet, ResNetEncoder
from course_lib.ops import chamfer_distance

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------------
# templates
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 7, 12])
def test_square_grid_is_a_flat_disk(n):
    uv, faces = an.square_grid(n)
    assert uv.shape == (n * n, 2) and faces.shape == (2 * (n - 1) ** 2, 3)
    assert faces.dtype == torch.long and int(faces.min()) == 0 and int(faces.max()) == n * n - 1
    mesh = trimesh.Trimesh(np.c_[uv.numpy(), np.zeros(n * n)], faces.numpy(), process=False)
    # a triangulated square: a disk (Euler characteristic 1), area 1, one orientation (+z)
    assert mesh.euler_number == 1
    assert not mesh.is_watertight
    assert mesh.is_winding_consistent
    assert np.isclose(mesh.area, 1.0)
    assert np.allclose(mesh.face_normals, [0, 0, 1])
    # every interior edge is shared by exactly two faces, boundary edges by one: 4 (n - 1) of them
    edges = trimesh.grouping.group_rows(mesh.edges_sorted, require_count=1)
    assert len(edges) == 4 * (n - 1)


def test_grid_faces_rejects_small_grids():
    with pytest.raises(ValueError, match="grid size"):
        an.grid_faces(1)


@pytest.mark.parametrize("s", [0, 1, 2, 3])
def test_sphere_mesh_is_closed(s):
    v, f = an.sphere_mesh(s)
    assert v.shape == (10 * 4**s + 2, 3) and f.shape == (20 * 4**s, 3)
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(len(v)), atol=1e-6, rtol=0)
    mesh = trimesh.Trimesh(v.numpy(), f.numpy(), process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.euler_number == 2
    assert mesh.volume > 0  # outward faces


def test_samples_and_lattices_live_on_the_templates():
    g = torch.Generator().manual_seed(0)
    sq = an.sample_square(500, g)
    assert sq.shape == (500, 2) and float(sq.min()) >= 0 and float(sq.max()) <= 1
    sp = an.sample_sphere(500, g)
    torch.testing.assert_close(sp.norm(dim=-1), torch.ones(500))
    for n in (1, 10, 777):
        ls = an.lattice_square(n)
        assert ls.shape == (n, 2) and float(ls.min()) >= 0 and float(ls.max()) <= 1
        lp = an.lattice_sphere(n)
        torch.testing.assert_close(lp.norm(dim=-1), torch.ones(n), atol=1e-6, rtol=0)
    # uniformity: the sample mean of the sphere lattice is near 0, each octant gets ~1/8
    lp = an.lattice_sphere(4000)
    assert lp.mean(0).abs().max() < 5e-3
    octant = (lp > 0).long() @ torch.tensor([1, 2, 4])
    frac = torch.bincount(octant, minlength=8).float() / 4000
    assert (frac - 0.125).abs().max() < 0.01


def test_split_evenly():
    for n, k in itertools.product([0, 1, 7, 100, 1001], [1, 3, 25]):
        c = an.split_evenly(n, k)
        assert len(c) == k and sum(c) == n and max(c) - min(c) <= (1 if n else 0)


# ---------------------------------------------------------------------------
# decoder
# ---------------------------------------------------------------------------
def test_patch_decoder_equals_an_mlp_on_the_concatenation():
    torch.manual_seed(0)
    dec = an.PatchDecoder(latent_dim=5, template_dim=2, hidden=(16, 8), batch_norm=False).eval()
    u, z = torch.rand(30, 2), torch.randn(4, 5)
    # the same first layer written as one Linear on [u, z]
    first = torch.nn.Linear(7, 16)
    with torch.no_grad():
        first.weight.copy_(torch.cat([dec.first_u.weight, dec.first_z.weight], dim=1))
        first.bias.copy_(dec.first_u.bias)
    cat = torch.cat([u[None].expand(4, -1, -1), z[:, None].expand(-1, 30, -1)], dim=-1)
    ref = torch.tanh(dec.last(torch.relu(dec.body[0](torch.relu(first(cat))))))
    out = dec(u, z)
    torch.testing.assert_close(out, ref)
    assert out.abs().max() < 1
    # per-shape template points (B, M, d) give the same as shared ones
    torch.testing.assert_close(dec(u[None].expand(4, -1, -1), z), out)


def test_patch_decoder_errors():
    dec = an.PatchDecoder(latent_dim=5, template_dim=2)
    with pytest.raises(ValueError, match=r"\(B, 5\)"):
        dec(torch.rand(10, 2), torch.randn(3, 4))
    with pytest.raises(ValueError, match="template points"):
        dec(torch.rand(10, 3), torch.randn(3, 5))
    with pytest.raises(TypeError):
        dec(torch.rand(10, 2), torch.ones(3, 5, dtype=torch.long))


# ---------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------
def _model(k=5, template="square", latent=32):
    torch.manual_seed(0)
    return an.AtlasNet(PointNet(feat_dim=64, hidden=(32,), out_dim=latent), latent, n_patches=k,
                       template=template, hidden=(32, 16))


@pytest.mark.parametrize("n", [5, 64, 1001])
def test_any_number_of_points_split_between_patches(n):
    m = _model(5)
    x = torch.randn(2, 100, 3)
    for mode in ("random", "lattice"):
        out = m(x, n_points=n, mode=mode)
        assert out.points.shape == (2, n, 3)
        assert out.patch.tolist() == sorted(out.patch.tolist())
        assert torch.bincount(out.patch, minlength=5).tolist() == an.split_evenly(n, 5)
        assert out.template.shape == (n, 2)
    with pytest.raises(ValueError, match="one point per patch"):
        m(x, n_points=4)


def test_random_in_training_lattice_in_eval():
    m = _model(3)
    x = torch.randn(2, 50, 3)
    m.train()
    a, b = m(x, n_points=30).template, m(x, n_points=30).template
    assert not torch.equal(a, b)
    m.eval()
    a, b = m(x, n_points=30), m(x, n_points=30)
    assert torch.equal(a.template, b.template) and torch.equal(a.points, b.points)


def test_square_mesh_carries_the_grid_connectivity():
    m = _model(4).eval()
    x = torch.randn(2, 80, 3)
    meshes = m.mesh(x, resolution=6)
    assert len(meshes) == 2
    mesh = meshes[1]
    assert len(mesh.vertices) == 4 * 36 and len(mesh.faces) == 4 * 2 * 25
    # vertices are the decoded grid points
    uv, _ = an.square_grid(6)
    with torch.no_grad():
        ref = m.decode_template(m.encode(x), [uv] * 4)[1]
    np.testing.assert_allclose(mesh.vertices, ref.numpy(), atol=1e-6)
    # K disjoint disks: Euler characteristic K
    assert mesh.euler_number == 4
    assert np.bincount(mesh.metadata["face_patch"]).tolist() == [50] * 4
    assert np.bincount(mesh.metadata["vertex_patch"]).tolist() == [36] * 4


def test_sphere_variant_gives_a_closed_mesh():
    m = _model(1, "sphere").eval()
    mesh = m.mesh(torch.randn(1, 80, 3), resolution=2)[0]
    assert len(mesh.faces) == 320 and mesh.is_watertight and mesh.euler_number == 2
    assert m(torch.randn(1, 80, 3), n_points=77).template.shape == (77, 3)
    with pytest.raises(ValueError, match="n_patches must be 1"):
        an.AtlasNet(None, 8, n_patches=2, template="sphere")


def test_resnet_encoder_for_single_view():
    torch.manual_seed(0)
    m = an.AtlasNet(ResNetEncoder(in_channels=3, layers=(1, 1), width=8, out_dim=16), 16, n_patches=2,
                    hidden=(16,))
    out = m(torch.rand(3, 3, 32, 32), n_points=40)
    assert out.points.shape == (3, 40, 3)


def test_decoder_only_and_errors():
    m = an.AtlasNet(None, 8, n_patches=2, hidden=(16,))
    assert m.decode(torch.randn(3, 8), n_points=10).points.shape == (3, 10, 3)
    with pytest.raises(ValueError, match="no encoder"):
        m(torch.randn(1, 10, 3))
    with pytest.raises(ValueError, match="template must be"):
        an.AtlasNet(None, 8, template="torus")
    with pytest.raises(ValueError, match="mode"):
        m.decode(torch.randn(1, 8), 10, mode="grid")


def test_fitting_one_shape_lowers_the_chamfer_distance():
    """A decoder-only AtlasNet with a free latent fits a sphere of radius 0.7 (smoke test of training)."""
    torch.manual_seed(0)
    target = 0.7 * an.sample_sphere(400, torch.Generator().manual_seed(1))[None]
    m = an.AtlasNet(None, 8, n_patches=4, hidden=(64, 32), batch_norm=False)
    z = torch.zeros(1, 8, requires_grad=True)
    opt = torch.optim.Adam([*m.parameters(), z], lr=5e-3)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        before = float(chamfer_distance(m.decode(z, 400, "lattice").points, target))
    for _ in range(250):
        loss = chamfer_distance(m.decode(z, 400, generator=g).points, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(chamfer_distance(m.decode(z, 400, "lattice").points, target))
    assert after < 0.1 * before and after < 0.01


def test_atlasnet_loss_is_chamfer():
    m = _model(2)
    x = torch.randn(2, 60, 3)
    loss = an.atlasnet_loss(m.eval(), x, x, n_points=50)
    ref = chamfer_distance(m(x, n_points=50).points, x)
    torch.testing.assert_close(loss, ref)


# ---------------------------------------------------------------------------
# mesh quality
# ---------------------------------------------------------------------------
def _sat_intersect(t1: np.ndarray, t2: np.ndarray) -> bool:
    """Independent reference: separating-axis test (2 normals + 9 edge cross products)."""
    axes = [np.cross(t1[1] - t1[0], t1[2] - t1[0]), np.cross(t2[1] - t2[0], t2[2] - t2[0])]
    for i in range(3):
        for j in range(3):
            axes.append(np.cross(t1[(i + 1) % 3] - t1[i], t2[(j + 1) % 3] - t2[j]))
    for a in axes:
        if np.linalg.norm(a) < 1e-12:
            continue
        p1, p2 = t1 @ a, t2 @ a
        if p1.max() < p2.min() - 1e-12 or p2.max() < p1.min() - 1e-12:
            return False
    return True


def _two_crossing_sheets(n=5, shift=0.37):
    uv, f = an.square_grid(n)
    uv = uv.numpy().astype(np.float64)
    a = np.c_[uv[:, 0], uv[:, 1], np.zeros(len(uv))]  # z = 0 sheet
    b = np.c_[np.full(len(uv), shift), uv[:, 0], uv[:, 1] - 0.5 + 0.013]  # x = shift sheet, crossing it
    verts = np.concatenate([a, b])
    faces = np.concatenate([f.numpy(), f.numpy() + len(uv)])
    return trimesh.Trimesh(verts, faces, process=False), np.r_[np.zeros(len(f)), np.ones(len(f))].astype(int)


def test_triangle_intersections_match_the_separating_axis_test():
    mesh, patch = _two_crossing_sheets()
    pairs = an.triangle_intersections(mesh)
    tris = mesh.triangles
    ref = set()  # the SAT above is complete for non-coplanar pairs: one face from each sheet
    for i in np.flatnonzero(patch == 0):
        for j in np.flatnonzero(patch == 1):
            if _sat_intersect(tris[i], tris[j]):
                ref.add((int(i), int(j)))
    assert len(ref) > 0
    assert {tuple(p) for p in pairs.tolist()} == ref
    q = an.mesh_quality(mesh, patch)
    assert q["intersecting_pairs"] == len(ref) and q["intersecting_pairs_between"] == len(ref)
    assert q["intersecting_pairs_within"] == 0


def test_mesh_quality_on_clean_and_broken_meshes():
    ico = trimesh.creation.icosphere(2)
    q = an.mesh_quality(ico)
    assert q["intersecting_pairs"] == 0 and q["degenerate_frac"] == 0 and q["sliver_frac"] == 0
    assert q["watertight"] == 1 and q["euler"] == 2
    # collapse one face onto a segment, make a sliver: both detected
    v = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0.01, 1]], float)
    f = np.array([[0, 1, 2], [3, 4, 5], [0, 3, 4]])
    q = an.mesh_quality(trimesh.Trimesh(v, f, process=False))
    assert q["degenerate_frac"] == pytest.approx(1 / 3)
    assert q["sliver_frac"] >= 1 / 3
    # a flat grid folded onto itself (second copy shifted by 0.001) overlaps everywhere
    uv, fg = an.square_grid(6)
    a = np.c_[uv.numpy(), np.zeros(36)]
    mesh = trimesh.Trimesh(np.concatenate([a, a + [0.01, 0.01, 0.001]]),
                           np.concatenate([fg.numpy(), fg.numpy() + 36]), process=False)
    q = an.mesh_quality(mesh, np.r_[np.zeros(50), np.ones(50)].astype(int), overlap_radius=0.05)
    assert q["overlap_frac"] == 1.0
    q = an.mesh_quality(mesh, np.r_[np.zeros(50), np.ones(50)].astype(int), overlap_radius=0.001)
    assert q["overlap_frac"] == 0.0
