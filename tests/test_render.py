"""course_lib.render: cameras in the data convention, hard/soft rasterisation against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from course_lib import data
from course_lib.data.views import camera_rays
from course_lib.geometry import icosphere
from course_lib.render import (
    Cameras,
    look_at_cameras,
    perspective_K,
    project,
    rasterize_silhouette,
    render_mesh,
    silhouette_iou,
    silhouette_iou_loss,
)
from course_lib.render.raster import _pairs_culled

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mug():
    shape = data.make_shape("mug", 1)
    mesh = shape.mesh(48)
    v = torch.tensor(np.asarray(mesh.vertices), dtype=torch.float32)
    f = torch.tensor(np.asarray(mesh.faces), dtype=torch.long)
    return shape, mesh, v, f


def _ray_cast(mesh: trimesh.Trimesh, cams: Cameras, size: int):
    """trimesh's ray casting through the pixel centres of data.views.camera_rays."""
    sil, depth = [], []
    for k in range(len(cams)):
        o, d = camera_rays(cams.K[k], cams.Rt[k], (size, size))
        o, d = o.reshape(-1, 3).numpy(), d.reshape(-1, 3).numpy()
        locs, ray_idx, _ = mesh.ray.intersects_location(o, d, multiple_hits=False)
        s = np.zeros(size * size, np.float32)
        s[ray_idx] = 1
        z = np.zeros(size * size, np.float32)
        R, t = cams.Rt[k, :, :3].numpy(), cams.Rt[k, :, 3].numpy()
        z[ray_idx] = locs @ R[2] + t[2]
        sil.append(s.reshape(size, size))
        depth.append(z.reshape(size, size))
    return torch.tensor(np.stack(sil)), torch.tensor(np.stack(depth))


# --- cameras -----------------------------------------------------------------------------
def test_cameras_match_data_look_at():
    cams = look_at_cameras([0.0, 45.0, 200.0], [10.0, 20.0, -30.0], 2.5, 40.0, (24, 32))
    for k, (a, e) in enumerate([(0.0, 10.0), (45.0, 20.0), (200.0, -30.0)]):
        K, Rt = data.look_at(a, e, 2.5, 40.0, (24, 32))
        assert torch.equal(cams.K[k], K) and torch.equal(cams.Rt[k], Rt)
    assert torch.allclose(perspective_K(40.0, (24, 32)), cams.K[0])
    # the camera centre sits at r (cos e sin a, sin e, cos e cos a)
    a, e = math.radians(45.0), math.radians(20.0)
    c = 2.5 * torch.tensor([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])
    assert torch.allclose(cams.centers[1], c, atol=1e-5)


def test_project_inverts_camera_rays():
    cams = look_at_cameras(30.0, 20.0, 2.6, 50.0, 16)
    o, d = camera_rays(cams.K[0], cams.Rt[0], (16, 16))
    pts = (o + 1.7 * d).reshape(1, -1, 3)
    uvz = project(pts, cams)[0]
    v, u = torch.meshgrid(torch.arange(16) + 0.5, torch.arange(16) + 0.5, indexing="ij")
    assert torch.allclose(uvz[:, 0], u.reshape(-1), atol=1e-3)
    assert torch.allclose(uvz[:, 1], v.reshape(-1), atol=1e-3)
    # the origin projects to the image centre; image y points down: a point above the origin has a smaller row
    c = project(torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.3, 0.0]]]), cams)[0]
    assert torch.allclose(c[0, :2], torch.tensor([8.0, 8.0]), atol=1e-4)
    assert c[1, 1] < c[0, 1]


# --- hard rasteriser vs independent references ----------------------------------------------
def test_hard_silhouette_and_depth_match_trimesh_ray_casting(mug):
    _, mesh, v, f = mug
    cams = look_at_cameras([150.0], [-10.0], 2.6, 50.0, 32)
    ref_sil, ref_depth = _ray_cast(mesh, cams, 32)
    out = render_mesh(v[None], f, cams, 32)
    assert silhouette_iou(out["silhouette"], ref_sil).min() >= 0.99
    both = (out["silhouette"] > 0) & (ref_sil > 0)
    assert torch.allclose(out["depth"][both], ref_depth[both], atol=1e-3)
    assert torch.all(out["depth"][out["silhouette"] == 0] == 0)
    assert torch.equal(rasterize_silhouette(v[None], f, cams, 32), out["silhouette"])


def test_hard_silhouette_lines_up_with_data_render(mug):
    shape, _, v, f = mug
    ref = data.render(shape, azimuth=60.0, elevation=25.0, size=32)
    sil = rasterize_silhouette(v, f, look_at_cameras(60.0, 25.0, 2.6, 50.0, 32), 32)
    # a 48^3 marching-cubes mesh of the SDF against the SDF sphere-traced: same camera, same pixels
    assert float(silhouette_iou(sil[0], ref["silhouette"])) >= 0.97


def test_sphere_silhouette_is_the_analytic_disc():
    v, f = icosphere(3)
    r, dist, fov, n = 0.5, 3.0, 40.0, 48
    cams = look_at_cameras(0.0, 0.0, dist, fov, n)
    sil = rasterize_silhouette(v * r, f, cams, n)[0]
    # the cone tangent to the sphere has half-angle asin(r / dist): a disc of radius f tan(asin(r/dist)) pixels
    fpx = 0.5 * n / math.tan(math.radians(fov) / 2)
    rad = fpx * math.tan(math.asin(r / dist))
    yy, xx = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing="ij")
    disc = (((xx - n / 2) ** 2 + (yy - n / 2) ** 2) <= rad ** 2).float()
    assert float(silhouette_iou(sil, disc)) >= 0.97  # the icosphere is inscribed: slightly smaller


def test_hard_depth_picks_the_nearest_face():
    # two parallel squares at z = 0.5 and z = -0.5 (world), the camera on +z: the front one wins
    sq = torch.tensor([[-0.4, -0.4, 0.0], [0.4, -0.4, 0.0], [0.4, 0.4, 0.0], [-0.4, 0.4, 0.0]])
    v = torch.cat([sq + torch.tensor([0.0, 0.0, 0.5]), sq * 1.5 + torch.tensor([0.0, 0.0, -0.5])])
    f = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    cams = look_at_cameras(0.0, 0.0, 2.0, 60.0, 16)
    out = render_mesh(v, f, cams, 16)
    centre = out["depth"][0, 8, 8]
    assert abs(float(centre) - 1.5) < 1e-4
    assert int(out["face_index"][0, 8, 8]) in (0, 1)
    assert int(out["face_index"][0, 0, 0]) == -1 and float(out["rgb"][0, :, 0, 0].min()) == 1.0


# --- soft rasteriser ---------------------------------------------------------------------------
def test_soft_approaches_hard_as_sigma_shrinks():
    v, f = icosphere(2)
    cams = look_at_cameras([10.0, 100.0], 20.0, 2.6, 50.0, 24)
    hard = rasterize_silhouette(v * 0.8, f, cams, 24)
    errs = [float((rasterize_silhouette(v * 0.8, f, cams, 24, sigma=s) - hard).abs().mean())
            for s in (1e-3, 1e-4, 1e-5, 1e-6, 1e-8)]
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 1e-3


def test_soft_values_formula_for_one_triangle():
    # one triangle, a pixel outside it at a known distance: A = sigmoid(-d^2 / sigma)
    K = torch.tensor([[10.0, 0, 5.0], [0, 10.0, 5.0], [0, 0, 1]])
    Rt = torch.cat([torch.eye(3), torch.tensor([[0.0], [0.0], [2.0]])], 1)
    cams = Cameras(K, Rt)
    # in camera z = 2 plane: pixel u = 10 x / 2 + 5 -> vertices at pixels (1, 1), (4, 1), (1, 4)
    px = torch.tensor([[1.0, 1.0], [4.0, 1.0], [1.0, 4.0]])
    v = torch.cat([(px - 5.0) * 2.0 / 10.0, torch.zeros(3, 1)], 1)
    f = torch.tensor([[0, 1, 2]])
    sigma = 1e-2
    A = rasterize_silhouette(v, f, cams, 10, sigma=sigma, method="dense")[0]
    # pixel (row 2, col 5): centre (5.5, 2.5) lies outside, beyond the hypotenuse x + y = 5
    d2 = ((5.5 + 2.5 - 5.0) / math.sqrt(2)) ** 2 * (2.0 / 10) ** 2
    assert abs(float(A[2, 5]) - 1 / (1 + math.exp(d2 / sigma))) < 1e-5
    # pixel (row 1, col 1): centre (1.5, 1.5) inside, nearest edge at distance 0.5
    d2 = 0.25 * (2.0 / 10) ** 2
    assert abs(float(A[1, 1]) - 1 / (1 + math.exp(-d2 / sigma))) < 1e-5


def test_soft_colour_and_depth_approach_the_z_buffer():
    v, f = icosphere(2)
    cams = look_at_cameras([10.0, 100.0], 20.0, 2.6, 50.0, 24)
    hard = render_mesh(v * 0.7, f, cams, 24)
    errs = []
    for sigma, gamma in ((1e-4, 1e-3), (1e-6, 1e-5), (1e-8, 1e-6)):
        soft = render_mesh(v * 0.7, f, cams, 24, sigma=sigma, gamma=gamma)
        errs.append(float((soft["rgb"] - hard["rgb"]).abs().mean() + (soft["depth"] - hard["depth"]).abs().mean()))
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-3, errs


@pytest.mark.parametrize("sigma", [None, 1e-3, 1e-4])
def test_culled_equals_dense(sigma):
    v, f = icosphere(2)
    g = torch.Generator().manual_seed(0)
    v = (v * 0.7 + 0.05 * torch.randn(v.shape, generator=g))[None].expand(3, -1, -1).contiguous()
    cams = look_at_cameras([0.0, 70.0, 250.0], [30.0, -20.0, 5.0], [2.6, 2.2, 3.0], 50.0, (20, 28))
    a = rasterize_silhouette(v, f, cams, (20, 28), sigma=sigma)
    b = rasterize_silhouette(v, f, cams, (20, 28), sigma=sigma, method="dense")
    assert a.shape == (3, 20, 28)
    assert torch.allclose(a, b, atol=1e-6)
    ra = render_mesh(v, f, cams, (20, 28), sigma=sigma)
    rb = render_mesh(v, f, cams, (20, 28), sigma=sigma, method="dense")
    for k in ("silhouette", "depth", "rgb"):
        assert torch.allclose(ra[k], rb[k], atol=1e-5), k
    assert float(ra["rgb"].min()) >= 0.0 and float(ra["rgb"].max()) <= 1.0 + 1e-6


def test_culled_gradients_equal_dense():
    v, f = icosphere(1)
    cams = look_at_cameras([20.0, 200.0], 20.0, 2.6, 50.0, 16)
    grads = []
    for method in ("culled", "dense"):
        x = (v * 0.8).clone().requires_grad_(True)
        out = render_mesh(x, f, cams, 16, sigma=3e-3, gamma=1e-2, method=method)
        (out["silhouette"].square().sum() + out["rgb"].sum() + out["depth"].sum()).backward()
        grads.append(x.grad)
    assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], atol=1e-4)


def test_culling_visits_far_fewer_pairs_than_dense():
    v, f = icosphere(3)  # 1280 faces
    cams = look_at_cameras(30.0, 20.0, 2.6, 50.0, 64)
    tri = project(v[None], cams)[:, f]
    pairs = _pairs_culled(tri, torch.ones(1, f.shape[0], dtype=torch.bool), math.sqrt(1e-4 * 18.4) * 32, 64, 64)
    assert pairs.pix.numel() < 0.02 * f.shape[0] * 64 * 64


# --- gradients ---------------------------------------------------------------------------------
def test_hard_renderer_has_zero_gradient_autograd_and_finite_differences():
    v, f = icosphere(2)
    cams = look_at_cameras(30.0, 20.0, 2.6, 50.0, 24)
    x = (v * 0.8).clone().requires_grad_(True)
    target = torch.zeros(1, 24, 24)
    sil = rasterize_silhouette(x, f, cams, 24)
    assert sil.requires_grad  # autograd runs through the renderer ...
    (g,) = torch.autograd.grad(silhouette_iou_loss(sil, target + 1.0), x)
    assert torch.count_nonzero(g) == 0  # ... and returns exactly zero
    # finite differences: a small move of a vertex changes no pixel at all
    base = rasterize_silhouette(v * 0.8, f, cams, 24)
    for i in range(0, v.shape[0], 20):
        for dim in range(3):
            w = v * 0.8
            w[i, dim] += 1e-4
            assert torch.equal(rasterize_silhouette(w, f, cams, 24), base)
    # the soft renderer does have a gradient
    s = rasterize_silhouette(x, f, cams, 24, sigma=1e-4)
    (gs,) = torch.autograd.grad(silhouette_iou_loss(s, target + 1.0), x)
    assert gs.abs().sum() > 0


def test_soft_gradient_matches_finite_differences():
    v, f = icosphere(0)
    cams = look_at_cameras(30.0, 20.0, 2.6, 50.0, 10)
    x = (v * 0.8).double().requires_grad_(True)
    cams64 = Cameras(cams.K.double(), cams.Rt.double())

    def fn(y):
        return rasterize_silhouette(y, f, cams64, 10, sigma=5e-3, cull_eps=1e-12)

    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5)


def test_iou_matches_numpy_and_loss_range():
    g = torch.Generator().manual_seed(3)
    a = (torch.rand(4, 9, 7, generator=g) > 0.5).float()
    b = (torch.rand(4, 9, 7, generator=g) > 0.4).float()
    an, bn = a.numpy().astype(bool), b.numpy().astype(bool)
    ref = [(an[i] & bn[i]).sum() / (an[i] | bn[i]).sum() for i in range(4)]
    assert np.allclose(silhouette_iou(a, b).numpy(), ref, atol=1e-5)
    assert abs(float(silhouette_iou_loss(a, a))) < 1e-6
    assert abs(float(silhouette_iou_loss(a, 1 - a)) - 1.0) < 1e-5


# --- errors -----------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors():
    v, f = icosphere(0)
    cams = look_at_cameras(0.0, 0.0, 2.0, 50.0, 8)
    with pytest.raises(ValueError, match="shape"):
        rasterize_silhouette(v[:, :2], f, cams, 8)
    with pytest.raises(TypeError, match="integer"):
        rasterize_silhouette(v, f.float(), cams, 8)
    with pytest.raises(ValueError, match="outside"):
        rasterize_silhouette(v, f + 100, cams, 8)
    with pytest.raises(TypeError, match="Cameras"):
        rasterize_silhouette(v, f, (cams.K, cams.Rt), 8)
    with pytest.raises(ValueError, match="sigma"):
        rasterize_silhouette(v, f, cams, 8, sigma=-1.0)
    with pytest.raises(ValueError, match="method"):
        rasterize_silhouette(v, f, cams, 8, method="tiles")
    with pytest.raises(ValueError, match="cameras"):
        rasterize_silhouette(v[None].expand(2, -1, -1), f, look_at_cameras([0.0, 1.0, 2.0], 0.0, 2.0), 8)
    with pytest.raises(ValueError, match="same length"):
        look_at_cameras([0.0, 1.0], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="shape"):
        silhouette_iou(torch.zeros(2, 3, 3), torch.zeros(2, 3, 4))


def test_one_mesh_many_cameras_broadcasts():
    v, f = icosphere(1)
    cams = look_at_cameras([0.0, 90.0, 180.0], 10.0, 2.6, 50.0, 12)
    many = rasterize_silhouette(v * 0.7, f, cams, 12, sigma=1e-3)
    each = torch.cat([rasterize_silhouette(v * 0.7, f, cams[k], 12, sigma=1e-3) for k in range(3)])
    assert many.shape == (3, 12, 12) and torch.allclose(many, each, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    v, f = icosphere(2)
    cams = look_at_cameras([0.0, 90.0], 10.0, 2.6, 50.0, 32)
    cpu = render_mesh(v * 0.7, f, cams, 32, sigma=1e-4)
    gpu = render_mesh((v * 0.7).cuda(), f.cuda(), cams.to("cuda"), 32, sigma=1e-4)
    for k in ("silhouette", "depth", "rgb"):
        assert torch.allclose(cpu[k], gpu[k].cpu(), atol=1e-4), k


def test_faces_behind_the_camera_are_dropped():
    # a big triangle crossing the camera plane, plus a small one in front
    v = torch.tensor([[-0.2, -0.2, 0.0], [0.2, -0.2, 0.0], [0.0, 0.2, 0.0],
                      [-1.0, 0.0, 3.0], [1.0, 0.0, 3.0], [0.0, 1.0, -1.0]])
    f = torch.tensor([[0, 1, 2], [3, 4, 5]])
    cams = look_at_cameras(0.0, 0.0, 2.0, 60.0, 16)
    out = render_mesh(v, f, cams, 16)
    alone = render_mesh(v[:3], f[:1], cams, 16)
    assert torch.equal(out["silhouette"], alone["silhouette"]) and torch.isfinite(out["depth"]).all()
    soft = rasterize_silhouette(v, f, cams, 16, sigma=1e-3)
    assert torch.isfinite(soft).all()


def test_camera_validation():
    K, Rt = data.look_at(0.0, 0.0, 2.0, 50.0, 8)
    with pytest.raises(ValueError, match="K must have shape"):
        Cameras(K[:2], Rt)
    with pytest.raises(ValueError, match="Rt must have shape"):
        Cameras(K, Rt[:, :3])
    with pytest.raises(TypeError):
        Cameras(K.numpy(), Rt)
    with pytest.raises(ValueError, match="batch sizes"):
        Cameras(K[None].expand(2, 3, 3), Rt[None].expand(3, 3, 4))
    cams = Cameras(K, Rt)
    assert len(cams) == 1 and cams[0].K.shape == (1, 3, 3)
    with pytest.raises(ValueError, match="gamma"):
        render_mesh(torch.rand(3, 3), torch.tensor([[0, 1, 2]]), cams, 8, sigma=1e-3, gamma=0.0)


def test_faces_per_pixel_counts_what_the_silhouette_blends():
    """The count equals, pixel by pixel, the number of faces whose own soft silhouette reaches cull_eps there
    (each face rendered alone through the public rasteriser: an independent route)."""
    from course_lib.geometry import icosphere
    from course_lib.render import faces_per_pixel, look_at_cameras, rasterize_silhouette

    v, f = icosphere(1, radius=0.5)
    cams = look_at_cameras([30.0], 20.0, size=20)
    sigma, eps = 3e-3, 1e-3
    count = faces_per_pixel(v[None], f, cams, 20, sigma, cull_eps=eps)
    ref = torch.zeros(1, 20, 20, dtype=torch.long)
    for k in range(f.shape[0]):
        d = rasterize_silhouette(v[None], f[k:k + 1], cams, 20, sigma=sigma, cull_eps=1e-12)
        ref += (d >= eps).long()
    diff = (count - ref).abs()
    assert count.dtype == torch.long and count.max() >= 2 and count.sum() > 0
    assert int((diff > 0).sum()) <= 2, f"{int((diff > 0).sum())} pixels differ"  # ties at exactly eps
    with pytest.raises(ValueError, match="sigma"):
        faces_per_pixel(v[None], f, cams, 20, None)
