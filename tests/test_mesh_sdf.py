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


# ---------------------------------------------------------------------------
# visibility from rendered depth maps: a second inside/outside (issue #35, item 2)
# ---------------------------------------------------------------------------
VIS = {"views": 16, "size": 64}  # small and quick; the defaults are 32 views of 128^2


def _box(size=1.2):
    return trimesh.creation.box((size, size, size))


def _away(points, signed, margin):
    """Queries at least ``margin`` away from the surface (``signed``: an analytic signed distance)."""
    return points[signed.abs() > margin]


def _box_sdf(p, half=0.6):
    q = p.abs() - half
    return q.clamp_min(0).norm(dim=1) + q.amax(1).clamp_max(0)


def test_fibonacci_views_cover_the_sphere():
    v = ms.fibonacci_views(64)
    assert v.shape == (64, 2)
    assert (np.abs(v[:, 1]) <= 89.0).all() and (v[:, 0] >= 0).all() and (v[:, 0] < 360).all()
    a, e = np.radians(v[:, 0]), np.radians(v[:, 1])
    d = np.stack([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)], 1)
    assert np.linalg.norm(d.mean(0)) < 0.05  # evenly spread: no side favoured
    assert (d @ d.T - np.eye(64) < 0.97).all()  # no two directions (nearly) the same
    with pytest.raises(ValueError, match="positive int"):
        ms.fibonacci_views(0)


@pytest.mark.parametrize("which", ["sphere", "box"])
def test_visibility_matches_the_analytic_inside_away_from_the_surface(which, one_torch_thread):
    if which == "sphere":
        mesh = trimesh.creation.icosphere(3, radius=0.8)
        p = _queries(2000, seed=1, lo=-1.2, hi=1.2)
        signed = p.norm(dim=1) - 0.8
    else:
        mesh = _box()
        p = _queries(2000, seed=2, lo=-1.0, hi=1.0)
        signed = _box_sdf(p)
    keep = signed.abs() > 0.05
    inside = ms.visibility_inside(mesh, p, **VIS)
    assert inside.dtype == torch.bool and inside.shape == (2000,)
    assert torch.equal(inside[keep], signed[keep] < 0)
    assert int(keep.sum()) > 1500 and bool((signed[keep] < 0).any())


def test_visibility_does_not_care_about_orientation(one_torch_thread):
    mesh = _box()
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    p = _queries(1500, seed=3, lo=-0.9, hi=0.9)
    ref = ms.visibility_inside((v, f), p, **VIS)
    for kw in ({"flip_fraction": 0.5}, {"double": True}, {"flip_fraction": 0.3, "double": True}):
        assert torch.equal(ms.visibility_inside(ms.corrupt_faces((v, f), seed=5, **kw), p, **VIS), ref), kw
    assert torch.equal(ms.visibility_inside((v, f[:, ::-1].copy()), p, **VIS), ref)  # all faces inward


def _with_inner_sphere(radius=0.3, inward=False):
    box, ball = _box(), trimesh.creation.icosphere(2, radius=radius)
    fb = np.asarray(ball.faces)[:, ::-1] if inward else np.asarray(ball.faces)
    v = np.concatenate([box.vertices, ball.vertices])
    f = np.concatenate([box.faces, fb + len(box.vertices)])
    return v, np.ascontiguousarray(f)


def test_an_internal_part_changes_neither_label_but_the_winding_number_counts_it_twice(one_torch_thread):
    p = _queries(1500, seed=4, lo=-0.9, hi=0.9)
    signed = _box_sdf(p)
    keep = (signed.abs() > 0.05) & ((p.norm(dim=1) - 0.3).abs() > 0.03)
    p = p[keep]
    box, both = _box(), _with_inner_sphere()
    vis_box, vis_both = ms.visibility_inside(box, p, **VIS), ms.visibility_inside(both, p, **VIS)
    assert torch.equal(vis_box, vis_both)  # the inner part is hidden from every view
    assert torch.equal(vis_both, _box_sdf(p) < 0)
    w = ms.winding_number(both, p, method="torch")
    in_ball = p.norm(dim=1) < 0.3
    assert in_ball.any()
    assert torch.allclose(w[in_ball], torch.full_like(w[in_ball], 2.0), atol=1e-6)  # counted twice: w = 2
    assert torch.equal(w >= 0.5, _box_sdf(p) < 0)  # ... which still reads as inside
    # an internal part wound inward (a cavity, as the faces say) cancels the box: w = 0 in it; the repair
    # orients every closed component outward, so the repaired winding number calls it inside again
    w_in = ms.winding_number(_with_inner_sphere(inward=True), p, method="torch", repair=False)
    assert torch.allclose(w_in[in_ball], torch.zeros_like(w_in[in_ball]), atol=1e-6)
    w_rep = ms.winding_number(_with_inner_sphere(inward=True), p, method="torch", repair=True)
    assert (w_rep[in_ball] > 1.5).all()


def test_visibility_fills_a_closed_cavity(one_torch_thread):
    # a hollow ball (outer sphere out, inner sphere in): no camera sees into the cavity, so visibility fills it;
    # the winding number of the faces as given gets it right (w = 0 there)
    outer, inner = trimesh.creation.icosphere(3, radius=0.8), trimesh.creation.icosphere(3, radius=0.4)
    v = np.concatenate([outer.vertices, inner.vertices])
    f = np.concatenate([outer.faces, np.asarray(inner.faces)[:, ::-1] + len(outer.vertices)])
    p = _queries(1500, seed=6, lo=-0.35, hi=0.35)
    p = p[p.norm(dim=1) < 0.35]
    assert bool(ms.visibility_inside((v, f), p, **VIS).all())
    assert bool((ms.winding_number((v, f), p, method="torch", repair=False) < 0.5).all())


def test_a_hole_what_each_method_does(one_torch_thread):
    # the +x side of the box removed: a large hole
    box = _box()
    keep = box.triangles_center[:, 0] < 0.59
    v, f = np.asarray(box.vertices), np.asarray(box.faces)[keep]
    assert f.shape[0] == 10
    p = _queries(3000, seed=7, lo=-0.5, hi=0.5)  # all inside the box, 0.1 from its sides
    vis = ms.visibility_inside((v, f), p, **VIS)
    # visibility: the cameras on the open side look in; every point in the box is seen, so called outside
    assert float(vis.double().mean()) < 0.02
    # winding number: the hole is bridged: w falls from about 0.93 at the closed end towards 1/2 at the opening,
    # and every point 0.1 or more inside the box still reads as inside
    w = ms.winding_number((v, f), p, method="torch")
    far, near = p[:, 0] < -0.3, p[:, 0] > 0.3
    assert bool((w[far] > 0.85).all()) and bool((w[near] < 0.85).all())
    assert bool((w >= 0.5).all())
    # outside the box both say outside
    q = _queries(500, seed=8, lo=-1.2, hi=1.2)
    q = q[_box_sdf(q) > 0.05]
    assert not ms.visibility_inside((v, f), q, **VIS).any()
    assert bool((ms.winding_number((v, f), q, method="torch")[q[:, 0] < 0.3] < 0.5).all())


def test_visibility_points_outside_the_bounding_sphere_and_scale(one_torch_thread):
    mesh = trimesh.creation.icosphere(3, radius=0.8)
    scaled = (np.asarray(mesh.vertices) * 50.0 + 7.0, np.asarray(mesh.faces))  # any scale and place
    p = _queries(800, seed=9, lo=-1.2, hi=1.2)
    keep = (p.norm(dim=1) - 0.8).abs() > 0.05
    got = ms.visibility_inside(scaled, p[keep] * 50.0 + 7.0, **VIS)
    assert torch.equal(got, p[keep].norm(dim=1) < 0.8)
    far = torch.tensor([[500.0, 0.0, 0.0], [7.0, 7.0, 7.0]], dtype=torch.float64)
    assert ms.visibility_inside(scaled, far, **VIS).tolist() == [False, True]


@pytest.mark.parametrize("kw, msg", [({"views": 0}, "views"), ({"size": 1}, "size"), ({"eps": -1.0}, "eps"),
                                     ({"min_views": 0}, "min_views"), ({"min_views": 17}, "min_views"),
                                     ({"dilate": -1}, "dilate"), ({"views": 2.5}, "views")])
def test_visibility_rejects_bad_arguments(sphere, kw, msg):
    with pytest.raises(ValueError, match=msg):
        ms.visibility_inside(sphere, torch.zeros(3, 3), **{**VIS, **kw})


def test_visibility_rejects_bad_points_and_meshes(sphere):
    with pytest.raises(ValueError, match="shape"):
        ms.visibility_inside(sphere, torch.zeros(3, 2))
    with pytest.raises(TypeError, match="floating"):
        ms.visibility_inside(sphere, torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="degenerate"):
        ms.visibility_inside((np.zeros((3, 3)), np.array([[0, 1, 2]])), torch.zeros(2, 3))
