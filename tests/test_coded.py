"""3D-CODED: templates, deformation, regulariser, latent refinement, label transfer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from course_lib.data import make_shape
from course_lib.models import coded
from course_lib.ops import chamfer_distance

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _sphere_template(subdiv=2):
    ico = trimesh.creation.icosphere(subdiv)
    v = torch.as_tensor(ico.vertices, dtype=torch.float32) * 0.6
    labels = (v[:, 0] > 0).long()  # two "parts": left and right halves
    return coded.Template(v, torch.as_tensor(ico.faces), labels, ("left", "right"), "sphere", 0)


def test_make_template_is_a_labelled_surface_of_the_category():
    t = coded.make_template("mug", seed=0, resolution=20)
    shape = make_shape("mug", 0)
    assert t.parts == shape.parts and t.category == "mug"
    assert t.vertices.shape[1] == 3 and t.labels.shape == (len(t.vertices),)
    # vertices lie on the surface (marching cubes at 20^3: within a cell), labels are the generator's
    assert shape.sdf(t.vertices).abs().max() < 2.2 / 20
    assert torch.equal(t.labels, shape.part_labels(t.vertices))
    assert t.mesh().is_watertight
    # edges: E = 3F/2 for a closed triangle mesh
    assert len(t.edges()) * 2 == 3 * len(t.faces)


def test_remap_labels_by_name():
    labels = torch.tensor([0, 1, 2, 1])
    out = coded.remap_labels(labels, ("top", "leg", "shelf"), ("leg", "top", "base"))
    assert out.tolist() == [1, 0, -1, 0]
    with pytest.raises(ValueError, match="labels must lie"):
        coded.remap_labels(torch.tensor([3]), ("a", "b"), ("a",))


def test_deformer_starts_at_the_template_and_keeps_its_faces():
    t = _sphere_template()
    m = coded.TemplateDeformer(None, t, latent_dim=8, hidden=(16,))
    z = torch.randn(3, 8)
    d = m.decode(z)
    assert d.shape == (3, len(t.vertices), 3)
    torch.testing.assert_close(d, t.vertices[None].expand(3, -1, -1))
    meshes = m.deformed_mesh(z)
    assert len(meshes) == 3 and np.array_equal(meshes[0].faces, t.faces.numpy())
    with pytest.raises(TypeError, match="Template"):
        coded.TemplateDeformer(None, t.vertices)
    with pytest.raises(ValueError, match="no encoder"):
        m(torch.randn(1, 10, 3))


def test_edge_length_loss_is_zero_for_rigid_motions_and_analytic_for_scaling():
    t = _sphere_template()
    e = t.edges()
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)))
    rigid = (t.vertices @ q.T + torch.tensor([0.3, -0.2, 0.1]))[None]
    assert float(coded.edge_length_loss(rigid, t.vertices, e)) < 1e-10
    for s in (0.5, 1.3):
        # every edge length multiplied by s: mean((s l - l)^2) / mean(l^2) = (s - 1)^2
        val = coded.edge_length_loss(s * t.vertices[None], t.vertices, e)
        assert float(val) == pytest.approx((s - 1) ** 2, rel=1e-5)


def test_transfer_labels_is_the_nearest_deformed_vertex():
    g = torch.Generator().manual_seed(0)
    deformed = torch.rand(2, 50, 3, generator=g)
    labels = torch.randint(0, 4, (50,), generator=g)
    targets = torch.rand(2, 200, 3, generator=g)
    out = coded.transfer_labels(deformed, labels, targets)
    ref = labels[torch.cdist(targets, deformed).argmin(dim=-1)]
    assert torch.equal(out, ref)
    with pytest.raises(ValueError, match="one label per template vertex"):
        coded.transfer_labels(deformed, labels[:10], targets)


def test_label_accuracy_counts_missing_parts_as_wrong():
    acc = coded.label_accuracy(torch.tensor([[0, 1, 1, 0]]), torch.tensor([[0, 1, -1, 1]]))
    assert acc.tolist() == [0.5]


def test_fitting_a_stretched_target_transfers_labels():
    """Deform a sphere (labels: sign of x) onto a stretched, shifted ellipsoid; the labels follow it."""
    torch.manual_seed(0)
    t = _sphere_template(2)
    m = coded.TemplateDeformer(None, t, latent_dim=4, hidden=(64, 64))
    ico = trimesh.creation.icosphere(3)
    target = torch.as_tensor(ico.vertices, dtype=torch.float32) * torch.tensor([0.95, 0.45, 0.45])
    target = (target + torch.tensor([0.35, 0.1, 0.0]))[None]
    true = (target[0, :, 0] > 0.35).long()
    z = torch.zeros(1, 4)
    base = coded.label_accuracy(coded.transfer_labels(t.vertices[None], t.labels, target)[0], true)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    with torch.no_grad():
        before = float(chamfer_distance(m.decode(z), target))
    for _ in range(200):
        d = m.decode(z)
        loss = chamfer_distance(d, target) + 0.1 * coded.edge_length_loss(d, m.template_vertices, m.template_edges)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        d = m.decode(z)
    after = float(chamfer_distance(d, target))
    acc = coded.label_accuracy(coded.transfer_labels(d, m.template_labels, target)[0], true)
    assert after < 0.2 * before
    assert float(base) < 0.85  # nearest undeformed template vertex: the shift fools it
    assert float(acc) > 0.95


def test_refine_latent_fits_better_and_leaves_the_decoder_alone():
    torch.manual_seed(0)
    t = _sphere_template(1)
    m = coded.TemplateDeformer(None, t, latent_dim=6, hidden=(32,))
    torch.nn.init.normal_(m.decoder.last.weight, std=0.1)  # a decoder that depends on z
    target = (0.8 * t.vertices)[None]
    z0 = torch.zeros(1, 6)
    params = [p.clone() for p in m.parameters()]
    z1 = coded.refine_latent(m, z0, target, steps=60, lr=0.05)
    with torch.no_grad():
        c0 = float(chamfer_distance(m.decode(z0), target))
        c1 = float(chamfer_distance(m.decode(z1), target))
    assert c1 < c0
    assert all(torch.equal(a, b) for a, b in zip(params, m.parameters()))
    assert all(p.requires_grad for p in m.parameters())
