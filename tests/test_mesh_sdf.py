"""mesh_sdf, winding numbers and the real-mesh samplers, against trimesh and analytic references."""

import importlib
import math

import numpy as np
import pytest
import torch
import trimesh

from course_lib.data.real import load_mesh

# the module (course_lib.geometry.mesh_sdf is the function of the same name once the package is imported)
ms = importlib.import_module("course_lib.geometry.mesh_sdf")

METHODS = ["torch"] + (["igl"] if ms.has_igl() else [])


@pytest.fixture(scope="module")
def sphere():
    return trimesh.creation.icosphere(2)  # 320 faces, watertight


@pytest.fixture(scope="module")
def open_sphere(sphere):
    # cap removed: not watertight
    keep = sphere.triangles_center[:, 2] < 0.6
    return trimesh.Trimesh(sphere.vertices, sphere.faces[keep], process=False)


def _queries(n=600, seed=0, lo=-1.3, hi=1.3):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=g, dtype=torch.float64) * (hi - lo) + lo


@pytest.mark.parametrize("method", METHODS)
def test_distance_matches_trimesh_closest_point(open_sphere, method, one_torch_thread):
    p = _queries()
    mesh_abs = ms.mesh_sdf(open_sphere, p, method=method).abs().numpy()
    _, ref, _ = trimesh.proximity.closest_point(open_sphere, p.numpy())
    assert np.abs(mesh_abs - ref).max() < 1e-9
    assert mesh_abs.dtype == np.float64


@pytest.mark.parametrize("method", METHODS)
def test_sign_matches_ray_containment_on_watertight_mesh(method, one_torch_thread):
    m = trimesh.creation.box((1.0, 0.6, 1.4))
    m = trimesh.Trimesh(m.vertices, m.faces)
    p = _queries(800, seed=1, lo=-0.9, hi=0.9)
    inside_ref = m.contains(p.numpy())
    s = ms.mesh_sdf(m, p, method=method)
    assert ((s < 0).numpy() == inside_ref).all()


def test_sphere_sdf_is_close_to_analytic(one_torch_thread):
    m = trimesh.creation.icosphere(3)
    p = _queries(300, seed=2)
    s = ms.mesh_sdf(m, p, method="torch")
    exact = p.norm(dim=-1) - 1.0
    # the polyhedron lies inside the unit sphere: distance error bounded by the chord sag
    assert (s - exact).abs().max() < 0.02
    far = (exact.abs() > 0.05)
    assert (torch.sign(s[far]) == torch.sign(exact[far])).all()


def test_winding_number_closed_mesh_is_one_inside_zero_outside(sphere, one_torch_thread):
    p = torch.tensor([[0.0, 0.0, 0.0], [0.3, -0.2, 0.1], [2.0, 0.0, 0.0], [0.0, -3.0, 1.0]], dtype=torch.float64)
    w = ms.winding_number(sphere, p, method="torch")
    assert torch.allclose(w, torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-9)


def test_winding_number_of_open_mesh_is_fraction_of_solid_angle(sphere, one_torch_thread):
    # one face seen from the centre of the sphere subtends (about) its share of 4 pi
    m = trimesh.Trimesh(sphere.vertices, sphere.faces[:80], process=False)
    w = ms.winding_number(m, torch.zeros(1, 3, dtype=torch.float64), method="torch")
    # solid angle of the 80 faces from the centre = area of their projection on the unit sphere
    tri = sphere.vertices[sphere.faces[:80]]
    ref = 0.0
    for a, b, c in tri:  # spherical excess via l'Huilier-free formula (Eriksson 1990), scalar loop
        num = np.dot(a, np.cross(b, c))
        den = 1 + np.dot(a, b) + np.dot(b, c) + np.dot(c, a)
        ref += 2 * math.atan2(num, den)
    assert abs(float(w) - ref / (4 * math.pi)) < 1e-9
    assert 0.2 < float(w) < 0.3


@pytest.mark.skipif(not ms.has_igl(), reason="libigl not installed")
def test_igl_and_torch_agree_on_open_mesh(open_sphere, one_torch_thread):
    p = _queries(1000, seed=3)
    a, wa = ms.mesh_sdf(open_sphere, p, method="igl", return_winding=True)
    b, wb = ms.mesh_sdf(open_sphere, p, method="torch", return_winding=True)
    assert torch.allclose(a.abs(), b.abs(), atol=1e-10)
    assert (wa - wb).abs().max() < 0.02  # fast winding number is an approximation
    assert (torch.sign(a) == torch.sign(b)).float().mean() >= 0.995


def test_open_mesh_sign_is_robust_where_parity_fails(open_sphere, one_torch_thread):
    # points deep inside and far outside are classified right although the mesh has a hole
    p = torch.tensor([[0.0, 0.0, -0.3], [0.2, 0.1, -0.5], [0.0, 0.0, -2.0], [1.5, 1.5, 0.0]], dtype=torch.float64)
    s = ms.mesh_sdf(open_sphere, p, method="torch")
    assert (s[:2] < 0).all() and (s[2:] > 0).all()


def test_point_triangle_distance_brute_force(one_torch_thread):
    rng = np.random.default_rng(4)
    tris = torch.as_tensor(rng.normal(size=(7, 3, 3)))
    pts = torch.as_tensor(rng.normal(size=(20, 3)) * 2)
    d = ms.point_triangle_distance(pts, tris)
    # reference: dense barycentric sampling of each triangle (upper bound, tight to ~1e-2)
    u = np.linspace(0, 1, 161)
    uu, vv = np.meshgrid(u, u)
    ok = uu + vv <= 1
    bary = np.stack([1 - uu[ok] - vv[ok], uu[ok], vv[ok]], 1)
    for j in range(7):
        samples = bary @ tris[j].numpy()
        ref = np.linalg.norm(pts.numpy()[:, None] - samples[None], axis=-1).min(1)
        assert np.all(d[:, j].numpy() <= ref + 1e-12)
        assert np.all(ref - d[:, j].numpy() < 0.03)
    # and exactly against trimesh's closest point on triangles
    for j in range(7):
        cp = trimesh.triangles.closest_point(np.repeat(tris[j].numpy()[None], 20, 0), pts.numpy())
        assert np.allclose(d[:, j].numpy(), np.linalg.norm(cp - pts.numpy(), axis=1), atol=1e-9)


def test_degenerate_triangle_reduces_to_segment(one_torch_thread):
    tri = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]]], dtype=torch.float64)
    d = ms.point_triangle_distance(torch.tensor([[1.0, 1.0, 0.0], [3.0, 0.0, 0.0]], dtype=torch.float64), tri)
    assert torch.allclose(d[:, 0], torch.tensor([1.0, 1.0], dtype=torch.float64))


def test_dtype_and_vertices_faces_pair(sphere, one_torch_thread):
    p = _queries(50).float()
    s = ms.mesh_sdf((torch.as_tensor(sphere.vertices), torch.as_tensor(sphere.faces)), p, method="torch")
    assert s.dtype == torch.float32 and s.shape == (50,)
    s2 = ms.mesh_sdf(sphere, p.numpy(), method="torch")
    assert torch.allclose(s, s2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_cuda_points_stay_on_cuda(sphere):
    p = _queries(100).cuda()
    s = ms.mesh_sdf(sphere, p)
    assert s.device.type == "cuda"
    assert torch.allclose(s.cpu(), ms.mesh_sdf(sphere, p.cpu(), method="torch"), atol=1e-9)


@pytest.mark.parametrize("bad, err, msg", [
    (torch.zeros(0, 3), ValueError, "empty"),
    (torch.zeros(4, 2), ValueError, r"\(N, 3\)"),
    (torch.zeros(4, 3, dtype=torch.long), TypeError, "floating"),
    (torch.tensor([[float("nan"), 0.0, 0.0]]), ValueError, "NaN"),
    ([[0.0, 0.0, 0.0]], TypeError, "torch.Tensor"),
])
def test_bad_points(sphere, bad, err, msg):
    with pytest.raises(err, match=msg):
        ms.mesh_sdf(sphere, bad)


def test_bad_mesh_and_method(sphere):
    p = torch.zeros(2, 3)
    with pytest.raises(TypeError, match="Trimesh"):
        ms.mesh_sdf("mesh.obj", p)
    with pytest.raises(ValueError, match="no faces"):
        ms.mesh_sdf((np.zeros((3, 3)), np.zeros((0, 3), dtype=int)), p)
    with pytest.raises(ValueError, match="out of range"):
        ms.mesh_sdf((np.zeros((3, 3)), np.array([[0, 1, 5]])), p)
    with pytest.raises(ValueError, match="unknown method"):
        ms.mesh_sdf(sphere, p, method="raycast")


# --- samplers ---------------------------------------------------------------------------
def test_mesh_box_padding(sphere):
    lo, hi = ms.mesh_box(sphere, 0.1)
    assert np.allclose(hi, sphere.vertices.max(0) + 0.1) and np.allclose(lo, sphere.vertices.min(0) - 0.1)
    with pytest.raises(ValueError, match="padding"):
        ms.mesh_box(sphere, -1)


def test_sample_mesh_sdf_near_surface_and_uniform(open_sphere, one_torch_thread):
    pts, sdf = ms.sample_mesh_sdf(open_sphere, 400, near_surface_fraction=0.5, sigmas=(0.01, 0.05), seed=0,
                                  method="torch")
    assert pts.shape == (400, 3) and sdf.shape == (400,) and pts.dtype == sdf.dtype == torch.float32
    lo, hi = ms.mesh_box(open_sphere, 0.1)
    assert (pts.numpy() >= lo - 0.5).all() and (pts.numpy() <= hi + 0.5).all()
    # about half the points within a few sigma of the surface, uniform ones spread out
    near = (sdf.abs() < 0.15).float().mean()
    assert 0.5 <= float(near) < 0.75
    _, ref, _ = trimesh.proximity.closest_point(open_sphere, pts.numpy().astype(np.float64))
    assert np.allclose(sdf.abs().numpy(), ref, atol=1e-6)
    pts2, _ = ms.sample_mesh_sdf(open_sphere, 400, near_surface_fraction=0.5, sigmas=(0.01, 0.05), seed=0,
                                 method="torch")
    assert torch.equal(pts, pts2)


def test_sample_mesh_occupancy_uniform_is_in_padded_box(sphere, one_torch_thread):
    pts, occ = ms.sample_mesh_occupancy(sphere, 500, seed=1, method="torch")
    lo, hi = ms.mesh_box(sphere, 0.1)
    assert (pts.numpy() >= lo - 1e-6).all() and (pts.numpy() <= hi + 1e-6).all()
    assert occ.dtype == torch.bool
    assert np.array_equal(occ.numpy(), sphere.contains(pts.numpy().astype(np.float64)))
    # volume fraction of the (polyhedral) unit sphere in a box of side 2.2
    assert abs(occ.float().mean().item() - sphere.volume / 2.2**3) < 0.06


def test_samplers_reject_bad_arguments(sphere):
    with pytest.raises(ValueError, match="n must"):
        ms.sample_mesh_sdf(sphere, 0)
    with pytest.raises(ValueError, match="near_surface_fraction"):
        ms.sample_mesh_sdf(sphere, 10, near_surface_fraction=1.5)
    with pytest.raises(ValueError, match="sigmas"):
        ms.sample_mesh_sdf(sphere, 10, sigmas=(0.0,))


def test_real_loader_feeds_the_sampler(tmp_path, one_torch_thread):
    # a tetrahedron OFF file with one face missing (open), loaded by the chapter 01 loader
    path = tmp_path / "tet.off"
    path.write_text("OFF\n4 3 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n")
    mesh = load_mesh(path)
    pts, sdf = ms.sample_mesh_sdf(mesh, 64, seed=0, method="torch")
    assert torch.isfinite(sdf).all() and pts.shape == (64, 3)


def test_modelnet_loader_feeds_the_sampler(tmp_path, one_torch_thread):
    from course_lib.data.real import ModelNet

    folder = tmp_path / "box" / "train"
    folder.mkdir(parents=True)
    box = trimesh.creation.box((1.0, 2.0, 0.5)).subdivide().subdivide()  # 192 triangles
    lines = ["OFF", f"{len(box.vertices)} {len(box.faces) - 2} 0"]  # two triangles missing: a small hole
    lines += [" ".join(map(str, v)) for v in box.vertices] + ["3 " + " ".join(map(str, f)) for f in box.faces[2:]]
    (folder / "b.off").write_text("\n".join(lines) + "\n")
    ds = ModelNet(tmp_path, "train")
    mesh = ds.mesh(0)
    assert not mesh.is_watertight
    pts, occ = ms.sample_mesh_occupancy(mesh, 500, seed=0, method="torch")
    # the normalised box: half sides proportional to (0.5, 1, 0.25), farthest vertex at distance 1
    half = np.array([0.5, 1.0, 0.25]) / np.linalg.norm([0.5, 1.0, 0.25])
    inside = (np.abs(pts.numpy()) < half).all(1)
    hole = np.asarray(box.triangles_center[:2]) / np.linalg.norm([0.5, 1.0, 0.25])
    far_from_hole = np.linalg.norm(pts.numpy()[:, None] - hole[None], axis=-1).min(1) > 0.3
    assert far_from_hole.mean() > 0.8
    assert np.array_equal(occ.numpy()[far_from_hole], inside[far_from_hole])


def test_auto_falls_back_to_torch_without_libigl(sphere, monkeypatch, one_torch_thread):
    monkeypatch.setattr(ms, "has_igl", lambda: False)
    p = _queries(40)
    assert torch.allclose(ms.mesh_sdf(sphere, p), ms.mesh_sdf(sphere, p, method="torch"))
    with pytest.raises(ImportError, match="pip install libigl"):
        ms.mesh_sdf(sphere, p, method="igl")


# --- the orientation repair: flipped and doubled faces (real meshes have both) ---------------------------
def _two_boxes():
    """Two disjoint unit-ish boxes (two components), outward wound, watertight."""
    a = trimesh.creation.box((1.0, 1.0, 1.0))
    b = trimesh.creation.box((0.6, 0.6, 0.6))
    b.apply_translation((2.0, 0.0, 0.0))
    return trimesh.util.concatenate([a, b])


def _inside_reference(points):
    """Inside one of the two boxes, analytically."""
    p = np.asarray(points)
    in_a = (np.abs(p) < 0.5).all(1)
    in_b = (np.abs(p - np.array([2.0, 0.0, 0.0])) < 0.3).all(1)
    return in_a | in_b


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kw", [dict(flip_fraction=0.3), dict(double=True), dict(flip_fraction=0.5, double=True)])
def test_repaired_sign_survives_flipped_and_doubled_faces(method, kw, one_torch_thread):
    mesh = _two_boxes()
    rng = np.random.default_rng(0)
    q = rng.uniform([-1.0, -1.0, -1.0], [3.0, 1.0, 1.0], (600, 3))
    q = q[np.abs(np.abs(q) - 0.5).min(1) > 1e-3]  # not on a face plane of the first box
    truth = _inside_reference(q)
    bad = ms.corrupt_faces(mesh, seed=1, **kw)
    raw = (ms.winding_number(bad, torch.tensor(q), method=method, repair=False) >= 0.5).numpy()
    assert (raw == truth).mean() < 0.99  # the corruption does break the plain winding number
    fixed = (ms.winding_number(bad, torch.tensor(q), method=method) >= 0.5).numpy()
    assert (fixed == truth).all()
    sdf = ms.mesh_sdf(bad, torch.tensor(q), method=method).numpy()
    assert ((sdf < 0) == truth).all()


def test_repair_orientation_reports_and_keeps_the_surface():
    mesh = _two_boxes()
    v, f = ms.corrupt_faces(mesh, flip_fraction=0.4, double=True, seed=3)
    v2, f2, rep = ms.repair_orientation((v, f))
    assert rep["duplicate_faces"] == len(mesh.faces) and rep["components"] == 2 and rep["degenerate_faces"] == 0
    assert f2.shape == mesh.faces.shape
    fixed = trimesh.Trimesh(v2, f2, process=False)
    assert fixed.is_watertight and fixed.is_winding_consistent
    assert fixed.volume == pytest.approx(mesh.volume, rel=1e-9)  # outward: positive volume, the boxes' own
    # the same set of triangles (as vertex positions), so every distance is unchanged
    key = lambda t: sorted(tuple(sorted(map(tuple, np.round(tri, 9)))) for tri in t)  # noqa: E731
    assert key(fixed.triangles) == key(mesh.triangles)
    # a clean mesh is left as it is
    _, f3, rep3 = ms.repair_orientation(mesh)
    assert rep3["duplicate_faces"] == 0 and rep3["rewound_faces"] == 0


def test_corrupt_faces_does_what_it_says():
    mesh = trimesh.creation.icosphere(2)
    v, f = ms.corrupt_faces(mesh, double=True)
    assert f.shape[0] == 2 * len(mesh.faces) and np.array_equal(f[len(mesh.faces):], mesh.faces[:, ::-1])
    _, f = ms.corrupt_faces(mesh, flip_fraction=0.3, seed=0)
    flipped = (f != mesh.faces).any(1).mean()
    assert 0.2 < flipped < 0.4
    _, f = ms.corrupt_faces(mesh, drop_fraction=0.1, seed=0)
    assert f.shape[0] == len(mesh.faces) - round(0.1 * len(mesh.faces))
    assert not trimesh.Trimesh(v, f, process=False).is_watertight
    with pytest.raises(ValueError, match="flip_fraction"):
        ms.corrupt_faces(mesh, flip_fraction=1.5)


def test_repair_keeps_a_consistent_mesh_broken_into_fragments():
    """Faces removed at random split a mesh into open fragments; the repair must not turn any of them over
    (an open fragment keeps the orientation most of its faces had), so the winding number is unchanged."""
    mesh = trimesh.creation.icosphere(3)
    rng = np.random.default_rng(0)
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)[rng.random(len(mesh.faces)) > 0.3]
    _, f2, rep = ms.repair_orientation((v, f))
    assert rep["components"] > 1 and rep["rewound_faces"] == 0
    # with 30% of those faces flipped, each fragment returns to the orientation most of its faces had; only an
    # isolated face has no neighbour to outvote it, so the sign is compared away from the surface
    v3, f3 = ms.corrupt_faces((v, f), flip_fraction=0.3, seed=1)
    q = torch.tensor(rng.uniform(-1.5, 1.5, (2000, 3)))
    q = q[(q.norm(dim=-1) - 1).abs() > 0.1]
    want = ms.winding_number((v, f), q, repair=False) >= 0.5
    assert float(((ms.winding_number((v3, f3), q, repair=False) >= 0.5) == want).double().mean()) < 0.99
    assert float(((ms.winding_number((v3, f3), q) >= 0.5) == want).double().mean()) >= 0.99
