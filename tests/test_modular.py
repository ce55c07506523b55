"""The encoder x decoder table: every pair builds, the surface extraction of the two volumetric decoders against an
analytic sphere, and one budget for every pair in the ci profile."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.experiments import modular as MD
from course_lib.ops import chamfer_distance


@pytest.mark.parametrize("enc", MD.ENCODERS)
@pytest.mark.parametrize("dec", MD.DECODERS)
def test_every_pair_builds_and_decodes(enc, dec):
    m = MD.ModularNet(enc, dec, latent=8, resolution=8, n_points=32, n_patches=2, width=4, hidden=16).eval()
    x = {"image": torch.rand(2, 3, 16, 16), "points": torch.rand(2, 64, 3), "voxels": torch.rand(2, 8, 8, 8)}[enc]
    if dec == "implicit":
        assert m(x, torch.rand(2, 10, 3)).shape == (2, 10)
        with pytest.raises(ValueError, match="query"):
            m(x)
    elif dec == "primitives":
        prims = m(x)
        assert prims.kind == "cuboid" and prims.prob.shape == (2, 8) and prims.size.shape == (2, 8, 3)
    elif dec == "octree":
        out = m(x)
        assert out.resolution == 8 and out.occupancy().shape == (2, 8, 8, 8) and out.mode == "pred"
        with pytest.raises(ValueError, match="octree"):
            MD.ModularNet(enc, "points", latent=8, n_points=32, hidden=16)(x, target=object())
    else:
        assert m(x).shape == ({"voxels": (2, 8, 8, 8), "points": (2, 32, 3), "patches": (2, 32, 3)}[dec])


class _TwoBoxes(torch.nn.Module):
    """A 'primitive decoder' giving two axis-aligned cuboids (half-sizes 0.3, 0.2, 0.1 at x = -0.5 and +0.5) and a
    third, larger one whose existence probability is below 1/2 (it must not appear)."""

    def forward(self, z):
        from course_lib.models.primitives import Primitives

        b = z.shape[0]
        size = torch.tensor([[0.3, 0.2, 0.1], [0.3, 0.2, 0.1], [0.6, 0.6, 0.6]]).expand(b, 3, 3)
        trans = torch.tensor([[-0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]]).expand(b, 3, 3)
        rot = torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(b, 3, 4)
        return Primitives(size=size, eps=torch.ones(b, 3, 2), rotation=rot, translation=trans,
                          prob=torch.tensor([0.9, 0.8, 0.3]).expand(b, 3), kind="cuboid")


def test_primitive_decoder_samples_the_union_of_existing_cuboids():
    m = MD.ModularNet("points", "primitives", latent=8, hidden=16, n_primitives=3).eval()
    m.decoder = _TwoBoxes()
    pts, occ = MD.predict_surface(m, torch.rand(1, 64, 3), 500, seed=0)
    assert pts.shape == (500, 3)
    # every sample on the surface of one of the two existing boxes (analytic: L-inf distance in box units is 1)
    half = torch.tensor([0.3, 0.2, 0.1])
    local = [(pts - torch.tensor([c, 0.0, 0.0])).abs() / half for c in (-0.5, 0.5)]
    on_box = [((loc.amax(-1) - 1).abs() < 1e-4) for loc in local]
    assert bool((on_box[0] | on_box[1]).all()) and int(on_box[0].sum()) > 100 and int(on_box[1].sum()) > 100
    # occupancy of the union: the two boxes, not the improbable third one
    q = torch.tensor([[-0.5, 0.0, 0.0], [0.5, 0.1, 0.05], [0.0, 0.0, 0.0], [-0.5, 0.25, 0.0], [0.85, 0.0, 0.0]])
    assert occ(q).tolist() == [True, True, False, False, False]


def test_primitive_loss_is_chapter_08s_expected_loss():
    from course_lib.models.primitives import expected_loss, primitive_terms

    torch.manual_seed(0)
    m = MD.ModularNet("points", "primitives", latent=8, hidden=16, n_primitives=3)
    batch = {"points": torch.rand(2, 64, 3), "target_points": torch.rand(2, 50, 3) * 2 - 1}
    torch.manual_seed(1)
    got = MD.modular_loss(m, primitives={"n_samples": 8, "empty": 4.0, "parsimony": 0.01})(m, batch)
    torch.manual_seed(1)
    terms = primitive_terms(m(batch["points"]), batch["target_points"], 8)
    want = expected_loss(terms, empty=4.0, parsimony=0.01)["loss"].mean()
    assert torch.allclose(got, want)
    got.backward()
    assert m.decoder.logit.weight.grad is not None and float(m.decoder.logit.weight.grad.abs().sum()) > 0


def test_octree_loss_is_chapter_04s_ogn_loss_with_the_target_structure():
    from course_lib.geometry.octree import build_octree
    from course_lib.models.ogn import PROP_KNOWN, ogn_loss

    torch.manual_seed(0)
    m = MD.ModularNet("voxels", "octree", latent=8, resolution=16, width=4, hidden=16)
    assert m.decoder.tree_depth == 3 and m.decoder.channels == (16, 8, 4, 4)
    vox = (torch.rand(2, 16, 16, 16) > 0.7).float()
    got = MD.modular_loss(m)(m, {"voxels": vox})
    target = build_octree(vox > 0.5, 3)
    want = ogn_loss(m.decoder(m.encode(vox), target, PROP_KNOWN))["loss"]
    assert torch.allclose(got, want) and float(got.detach()) > 0
    assert MD.ModularNet("voxels", "octree", latent=8, resolution=4, width=4).decoder.tree_depth == 2


def test_unknown_names():
    with pytest.raises(ValueError, match="encoder"):
        MD.ModularNet("depth", "points")
    with pytest.raises(ValueError, match="decoder"):
        MD.ModularNet("points", "mesh")


class _SphereGrid(torch.nn.Module):
    """A 'decoder' whose logits are those of a ball of radius 0.5, whatever the code."""

    def __init__(self, r: int) -> None:
        super().__init__()
        t = (torch.arange(r) + 0.5) / r * 2 - 1  # cell centres
        g = torch.stack(torch.meshgrid(t, t, t, indexing="ij"), -1)
        self.logits = 20.0 * (0.5 - g.norm(dim=-1))

    def forward(self, z):
        return self.logits.expand(z.shape[0], -1, -1, -1)


class _SphereField(torch.nn.Module):
    def forward(self, q, z):
        return 20.0 * (0.5 - q.norm(dim=-1))


class _Const(torch.nn.Module):
    def __init__(self, r: int) -> None:
        super().__init__()
        self.r = r

    def forward(self, z):
        return torch.full((z.shape[0], self.r, self.r, self.r), -5.0)


class _SphereOctree(torch.nn.Module):
    """An 'OGN' whose output's occupancy is the ball of radius 0.5 at the cell centres (what ``occupancy()`` of a
    decoded octree gives), whatever the code; ``tree_depth`` as a real decoder's."""

    tree_depth = 3

    def __init__(self, r: int, empty: bool = False) -> None:
        super().__init__()
        self.grid = _SphereGrid(r).logits > 0 if not empty else torch.zeros(r, r, r, dtype=torch.bool)

    def forward(self, z, target=None, mode="pred"):
        from types import SimpleNamespace

        g = self.grid.expand(z.shape[0], -1, -1, -1)
        return SimpleNamespace(occupancy=lambda: g)


class _ConstField(torch.nn.Module):
    def forward(self, q, z):
        return torch.full(q.shape[:-1], -5.0)


def _sphere_test(n=400, q=4000):
    g = torch.Generator().manual_seed(0)
    d = torch.randn(1, n, 3, generator=g)
    pts = 0.5 * d / d.norm(dim=-1, keepdim=True)
    occ_pts = torch.rand(1, q, 3, generator=g) * 2 - 1
    return {"points": torch.rand(1, 64, 3), "target_points": pts, "occ_points": occ_pts,
            "occupancy": (occ_pts.norm(dim=-1) < 0.5).float(), "seed": torch.tensor([0]), "category": ["ball"]}


@pytest.mark.parametrize("dec", ["voxels", "octree", "implicit"])
def test_volumetric_decoders_mesh_the_analytic_ball(dec):
    r = 32
    m = MD.ModularNet("points", dec, latent=8, resolution=r, width=4, hidden=16).eval()
    m.decoder = {"voxels": _SphereGrid(r), "octree": _SphereOctree(r)}.get(dec, _SphereField())
    test = _sphere_test()
    pts, occ = MD.predict_surface(m, test["points"], 2000, resolution=48)
    radius = pts.norm(dim=-1)
    tol = 2.0 / r if dec != "implicit" else 2.0 / 47
    assert float((radius - 0.5).abs().max()) < tol  # on the sphere, to a cell
    sc = MD.score_pair(m, test, resolution=48)
    d = torch.randn(1, 400, 3, generator=torch.Generator().manual_seed(9))
    other = 0.5 * d / d.norm(dim=-1, keepdim=True)  # the oracle: another sampling of the true sphere
    oracle = 1e3 * float(chamfer_distance(other, test["target_points"]).mean())
    assert sc["iou"][0] > 0.9 and sc["cd"][0] < 1.5 * oracle
    empty = MD.ModularNet("points", dec, latent=8, resolution=r, width=4, hidden=16).eval()
    empty.decoder = {"voxels": _Const(r), "octree": _SphereOctree(r, empty=True)}.get(dec, _ConstField())
    p0, _ = MD.predict_surface(empty, test["points"], 100, resolution=24)
    assert p0.shape == (1, 3) and float(p0.abs().sum()) == 0.0  # nothing decoded: one point at the origin


def test_points_decoders_have_no_volume():
    m = MD.ModularNet("points", "points", latent=8, n_points=50, hidden=16).eval()
    sc = MD.score_pair(m, _sphere_test(n=50))
    assert math.isnan(sc["iou"][0]) and sc["cd"][0] > 0


def test_one_budget_for_every_pair_in_ci():
    res = MD.cross_table("ci", encoders=("points", "image"), decoders=("points", "implicit"))
    budgets = [c["budget"] for c in res["cells"].values()]
    assert len(budgets) == 4 and len({(b["steps"], b["examples"]) for b in budgets}) == 1
    for name, c in res["cells"].items():
        assert len(c["cd"]) == len(res["shapes"]) and 1 <= c["best_epoch"] <= c["epochs"]
        assert all(math.isnan(x) for x in c["iou"]) == name.endswith("/points")


def test_print_decoder_cells_prints_the_measured_cells_and_their_claim(capsys, monkeypatch, tmp_path):
    from course_lib.experiments.modular import print_decoder_cells

    print_decoder_cells("implicit")  # the committed laptop results
    out = capsys.readouterr().out
    assert "image  -> implicit: Chamfer" in out and "points -> implicit: Chamfer" in out
    assert "With the implicit decoder, the image encoder" in out
    monkeypatch.setenv("COURSE_RESULTS_DIR", str(tmp_path))
    print_decoder_cells("implicit")
    assert "not measured yet" in capsys.readouterr().out


def test_cross_table_text():
    data = {"encoders": ["image", "points"], "decoders": ["voxels", "points"],
            "cells": {"image/voxels": {"cd": [1.0, 3.0], "iou": [0.5, 0.7]},
                      "image/points": {"cd": [2.0, 2.0], "iou": [math.nan, math.nan]},
                      "points/voxels": {"cd": [4.0, 6.0], "iou": [0.2, 0.4]},
                      "points/points": {"cd": [0.5, 1.5], "iou": [math.nan, math.nan]}}}
    rows = MD.cross_table_text(data).splitlines()
    assert rows[0].split() == ["voxels", "points"]
    assert rows[1].split() == ["image", "2", "2"] and rows[2].split() == ["points", "5", "1"]
    assert MD.cross_table_text(data, "iou").splitlines()[1].split() == ["image", "0.6", "-"]
