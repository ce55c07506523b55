"""Chapter 09's learning across the dataset: the mesh sampler against analytic areas and trimesh, the two losses
against direct computations, and the two networks' equal budget in the ci profile."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from course_lib.experiments import rendering as R
from course_lib.experiments import silhouette_learning as SL
from course_lib.geometry import icosphere
from course_lib.ops import chamfer_distance
from course_lib.render import rasterize_silhouette, silhouette_iou_loss


def test_sample_mesh_points_on_the_surface_and_by_area():
    # two triangles in the plane z = 0, of areas 0.5 and 3: a seventh of the points on the first
    v = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [3, 0, 0], [0, 3, 0]]], requires_grad=True)
    f = torch.tensor([[0, 1, 2], [1, 3, 4]])
    mesh = trimesh.Trimesh(v[0].detach().numpy(), f.numpy(), process=False)
    assert mesh.area_faces.tolist() == pytest.approx([0.5, 3.0])
    g = torch.Generator().manual_seed(0)
    pts = SL.sample_mesh_points(v, f, 20000, generator=g)
    assert pts.shape == (1, 20000, 3)
    _, dist, _ = trimesh.proximity.closest_point(mesh, pts[0].detach().numpy().astype(np.float64))
    assert float(dist.max()) < 1e-5
    first = (pts[0, :, 0] + pts[0, :, 1] <= 1.0 + 1e-6).float().mean()
    assert float(first) == pytest.approx(1 / 7, abs=0.012)
    pts.sum().backward()  # differentiable in the vertices
    assert v.grad is not None and float(v.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="verts"):
        SL.sample_mesh_points(v[0], f, 10)


def test_deformer_starts_at_the_template_and_checks_its_input():
    m = SL.SphereDeformer(level=1, latent=8, hidden=16, width=4, radius=0.5)
    out = m(torch.rand(2, 3, 16, 16))
    assert out.shape == (2, 42, 3)
    assert torch.allclose(out, m.template.expand(2, -1, -1))
    assert torch.allclose(out.norm(dim=-1), torch.full((2, 42), 0.5), atol=1e-6)
    with pytest.raises(ValueError, match="RGB"):
        m(torch.rand(2, 1, 16, 16))


class _Fixed(torch.nn.Module):
    """A 'network' that outputs the given vertices for every image."""

    def __init__(self, verts: torch.Tensor) -> None:
        super().__init__()
        self.v = torch.nn.Parameter(verts.clone())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.v.expand(images.shape[0], -1, -1)


def test_the_two_losses_against_direct_computations():
    v, f = icosphere(2, radius=0.5)
    cams = R._cameras(R.view_rig(2), 24)
    target = rasterize_silhouette(v * 0.8, f, cams, 24)  # a smaller sphere's hard silhouettes
    pts = (v * 0.8)[None].expand(3, -1, -1)
    batch = {"rgb": torch.rand(3, 3, 8, 8), "views": target[None].expand(3, -1, -1, -1), "target_points": pts}
    model = _Fixed(v)
    kw = {"sigma": 1e-4, "lambda_lap": 0.0, "lambda_flat": 0.0, "cull_eps": 1e-4}
    sil = SL.supervision_loss("silhouettes", cams, 24, f, **kw)(model, batch)
    soft = rasterize_silhouette(v[None].expand(2, -1, -1), f, cams, 24, sigma=1e-4, cull_eps=1e-4)
    assert float(sil["data"]) == pytest.approx(float(silhouette_iou_loss(soft, target)), rel=1e-5)
    torch.manual_seed(0)
    d3 = SL.supervision_loss("3d", cams, 24, f, n_points=4000, **kw)(model, batch)
    # samples of a sphere of radius 0.5 against points of radius 0.4: about 0.1^2 each way
    assert float(d3["data"]) == pytest.approx(2 * 0.1 ** 2, rel=0.35)
    assert float(chamfer_distance(pts[:1], pts[:1])) == 0.0
    reg = SL.supervision_loss("3d", cams, 24, f, n_points=64, sigma=1e-4, lambda_lap=1.0, lambda_flat=0.0)(model, batch)
    assert float(reg["loss"].detach()) == pytest.approx(float(reg["data"]) + float(reg["laplacian"]), rel=1e-5)
    with pytest.raises(ValueError, match="kind"):
        SL.supervision_loss("depth", cams, 24, f, **kw)


def test_back_view_and_camera_view_invert_look_at():
    from course_lib.data import look_at

    assert SL.back_view((30.0, 20.0)) == (210.0, 20.0)
    assert SL.back_view((270.0, -10.0)) == (90.0, -10.0)
    for az, el in ((30.0, 20.0), (200.0, -10.0), (359.0, 35.0)):
        _, rt = look_at(az, el, 2.6, 50.0, 32)
        assert SL.camera_view(rt) == pytest.approx((az, el), abs=1e-4)


def test_both_networks_get_the_same_budget_in_ci():
    res = SL.compare_supervision("ci", progress=False)
    rows = res["rows"]
    assert set(rows) == set(SL.SUPERVISIONS)
    b3, bs = rows["3d"]["budget"], rows["silhouettes"]["budget"]
    assert (b3["steps"], b3["examples"], b3["params"]) == (bs["steps"], bs["examples"], bs["params"]) and b3["steps"] > 0
    for r in rows.values():
        assert len(r["cd"]) == len(res["shapes"]) == len(r["iou_heldout"])
        assert 1 <= r["best_epoch"] <= r["epochs"] and all(0.0 <= x <= 1.0 for x in r["iou_heldout"])
    assert res["claims"] == []  # ci: fewer than 20 test shapes, no comparative statement
    assert [r["id"] for r in res["selections"]] == ["learn_reg_scale_sil", "learn_reg_scale_3d"]
    for r in res["selections"]:  # each chose among the candidates by its own val loss
        assert r["selected_on"] == "val" and set(r["candidates"]) == {"0.1", "1"}
        assert float(r["chosen"]) == res["reg_scale"]["silhouettes" if r["id"].endswith("sil") else "3d"]
    mon = SL.monitor_images(res["models"], res["test"], 0)
    s = res["test"]["image_size"]
    assert mon["true"].shape == (2, s, s) and mon["3d"].shape == (2, s, s) and mon["input"].shape[0] == 3
    front = rasterize_silhouette(res["models"]["3d"](res["test"]["rgb"][:1]).detach(), res["models"]["3d"].faces,
                                 R._cameras([res["test"]["input_views"][0]], s), s)[0]
    assert torch.equal(mon["3d"][0], front)  # row 0: the input's own view
