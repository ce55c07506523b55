"""Occupancy Network, DeepSDF auto-decoder and IM-NET decoder: shapes, formulas, training behaviour."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.models import PointNet
from course_lib.models import implicit as im


def _onet(c=16):
    return im.OccupancyNetwork(PointNet(feat_dim=32, hidden=(16,), out_dim=c), im.OccNetDecoder(c, 32, 2))


def test_occnet_shapes_and_kind(one_torch_thread):
    m = _onet()
    out = m(torch.randn(3, 50, 3), torch.randn(3, 70, 3))
    assert out.shape == (3, 70) and m.kind == "logit" and m.level == 0.0 and m.inside == "above"


def test_cbatchnorm_is_identity_affine_at_init_and_follows_the_code(one_torch_thread):
    cbn = im.CBatchNorm(4, 6)
    x, c = torch.randn(2, 30, 6), torch.randn(2, 4)
    ref = F.batch_norm(x.reshape(-1, 6), None, None, training=True).reshape(2, 30, 6)
    assert torch.allclose(cbn(x, c), ref, atol=1e-5)
    with torch.no_grad():
        cbn.gamma.weight.normal_()
        cbn.beta.weight.normal_()
    y = cbn(x, c)
    g, b = cbn.gamma(c), cbn.beta(c)
    assert torch.allclose(y, g[:, None] * ref + b[:, None], atol=1e-5)
    assert not torch.allclose(y[0], y[1] * 0 + (g[1] * ref[0] + b[1]), atol=1e-3)  # codes differ -> outputs differ


def test_cresnet_block_starts_as_identity(one_torch_thread):
    blk = im.CResnetBlock(4, 8)
    x = torch.randn(2, 10, 8)
    assert torch.allclose(blk(x, torch.randn(2, 4)), x)


def test_decoder_input_errors():
    dec = im.OccNetDecoder(8, 16, 1)
    with pytest.raises(ValueError, match=r"\(B, T, 3\)"):
        dec(torch.randn(10, 3), torch.randn(1, 8))
    with pytest.raises(ValueError, match=r"z must have shape \(B, 8\)"):
        dec(torch.randn(1, 10, 3), torch.randn(1, 7))
    with pytest.raises(ValueError, match="point sets but"):
        dec(torch.randn(2, 10, 3), torch.randn(3, 8))
    with pytest.raises(ValueError, match="no query points"):
        dec(torch.randn(2, 0, 3), torch.randn(2, 8))


def test_deepsdf_decoder_reinjects_the_input_with_constant_width(one_torch_thread):
    d = im.DeepSDFDecoder(c_dim=10, hidden=40, n_layers=5, latent_in=(3,), dropout=0.2)
    widths = [layer.out_features for layer in d.layers]
    assert widths == [40, 40, 40 - 13, 40, 40]
    assert [layer.in_features for layer in d.layers] == [13, 40, 40, 40, 40]
    assert all(hasattr(layer, "parametrizations") for layer in d.layers)  # weight norm
    p, z = torch.randn(2, 9, 3), torch.randn(2, 10)
    d.eval()
    out = d(p, z)
    assert out.shape == (2, 9) and out.abs().max() < 1  # tanh
    assert torch.equal(out, d(p, z))  # no dropout in eval
    d.train()
    assert not torch.equal(d(p, z), d(p, z))  # dropout in training
    with pytest.raises(ValueError, match="hidden"):
        im.DeepSDFDecoder(c_dim=40, hidden=40)
    with pytest.raises(ValueError, match="latent_in"):
        im.DeepSDFDecoder(n_layers=4, latent_in=(4,))


def test_deepsdf_decoder_really_uses_the_reinjected_input(one_torch_thread):
    # cutting the path through the first layers leaves the output dependent on xyz via the skip
    d = im.DeepSDFDecoder(c_dim=4, hidden=16, n_layers=4, latent_in=(2,), use_weight_norm=False).eval()
    with torch.no_grad():
        for layer in d.layers[:2]:
            layer.weight.zero_()
            layer.bias.zero_()
    p = torch.randn(1, 20, 3)
    out = d(p, torch.zeros(1, 4))
    assert out.std() > 0


def test_imnet_leaky_clip(one_torch_thread):
    dec = im.IMNetDecoder(4, (8,))
    with torch.no_grad():
        dec.layers[-1].weight.zero_()
    vals = []
    for b in (-2.0, 0.3, 3.0):
        with torch.no_grad():
            dec.layers[-1].bias.fill_(b)
        vals.append(float(dec(torch.randn(1, 1, 3), torch.randn(1, 4)).detach()))
    assert vals == pytest.approx([-0.02, 0.3, 0.99 + 0.03])
    assert dec.level == 0.5 and dec.inside == "above"


def test_clamped_l1_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 0.2, 200), rng.normal(0, 0.2, 200)
    ref = np.abs(np.clip(a, -0.1, 0.1) - np.clip(b, -0.1, 0.1)).mean()
    assert float(im.clamped_l1(torch.tensor(a), torch.tensor(b))) == pytest.approx(ref)
    assert float(im.clamped_l1(torch.tensor([0.5]), torch.tensor([0.3]))) == 0.0  # both beyond delta
    with pytest.raises(ValueError, match="differ in shape"):
        im.clamped_l1(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="delta"):
        im.clamped_l1(torch.zeros(3), torch.zeros(3), delta=0)


def test_occupancy_losses():
    logits, occ = torch.randn(3, 40), torch.rand(3, 40) > 0.5
    p = torch.sigmoid(logits)
    ref = -(occ * p.log() + (~occ) * (1 - p).log()).mean()
    assert torch.allclose(im.occupancy_loss(logits, occ), ref, atol=1e-6)
    assert torch.allclose(im.occupancy_loss(logits, occ, "occnet"), 40 * ref, atol=1e-4)
    assert torch.allclose(im.imnet_loss(p, occ), ((p - occ.float()) ** 2).mean())
    with pytest.raises(ValueError, match="reduction"):
        im.occupancy_loss(logits, occ, "sum")


def test_autodecoder_codes(one_torch_thread):
    ad = im.AutoDecoder(500, im.DeepSDFDecoder(c_dim=64, hidden=80, n_layers=3, latent_in=(1,)), code_bound=None)
    std = ad.codes.weight.std().item()
    assert abs(std - 64 ** -0.5) < 0.01
    out = ad(torch.tensor([0, 499]), torch.randn(2, 5, 3))
    assert out.shape == (2, 5)
    with pytest.raises(ValueError, match="out of range"):
        ad(torch.tensor([500]), torch.randn(1, 5, 3))
    with pytest.raises(TypeError, match="integer"):
        ad(torch.tensor([0.0]), torch.randn(1, 5, 3))
    bounded = im.AutoDecoder(3, im.DeepSDFDecoder(c_dim=4, hidden=16, n_layers=2, latent_in=(1,)),
                             init_std=10.0, code_bound=1.0)
    z = bounded.codes(torch.arange(3))
    assert (z.norm(dim=-1) <= 1.0 + 1e-5).all()


def test_deepsdf_loss_gradient_reaches_codes(one_torch_thread):
    ad = im.AutoDecoder(4, im.DeepSDFDecoder(c_dim=8, hidden=32, n_layers=3, latent_in=(1,)))
    batch = {"index": torch.tensor([1, 2]), "sdf_points": torch.randn(2, 30, 3), "sdf": torch.randn(2, 30) * 0.05}
    out = im.deepsdf_loss(ad, batch, code_reg=1e-2)
    out["loss"].backward()
    g = ad.codes.weight.grad
    assert g[1].abs().sum() > 0 and g[2].abs().sum() > 0 and g[0].abs().sum() == 0
    assert float(out["loss"]) == pytest.approx(float(out["l1"]) + 1e-2 * float(out["reg"]), rel=1e-5)


class RadiusDecoder(nn.Module):
    """sdf = |p| - (0.5 + 0.1 z_0): a decoder whose right code is known."""

    c_dim = 2

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, points, z):
        return points.norm(dim=-1) - (0.5 + 0.1 * self.w * z[:, :1])


def test_reconstruct_latent_finds_the_code_and_keeps_the_decoder(one_torch_thread):
    dec = RadiusDecoder()
    p = torch.randn(500, 3) * 0.4
    sdf = p.norm(dim=-1) - 0.6
    z, losses = im.reconstruct_latent(dec, p, sdf, iters=120, lr=0.1, reg=1e-6, n_samples=200)
    assert float(z[0]) == pytest.approx(1.0, abs=0.05)
    assert losses[-1] < 0.1 * losses[0]
    assert float(dec.w) == 1.0 and dec.w.grad is None and dec.w.requires_grad
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        im.reconstruct_latent(dec, p[None], sdf)
    with pytest.raises(ValueError, match="sdf must have shape"):
        im.reconstruct_latent(dec, p, sdf[:-1])


def test_autodecoder_learns_two_spheres(one_torch_thread):
    torch.manual_seed(0)
    ad = im.AutoDecoder(2, im.DeepSDFDecoder(c_dim=4, hidden=32, n_layers=3, latent_in=(1,)), code_bound=None)
    # near-surface samples, as DeepSDF: uniform ones are mostly beyond delta, where the clamped loss is flat
    radius = torch.tensor([[0.3], [0.7]])
    d = torch.nn.functional.normalize(torch.randn(2, 400, 3), dim=-1)
    p = d * (radius + 0.05 * torch.randn(2, 400))[..., None]
    sdf = p.norm(dim=-1) - radius
    opt = torch.optim.Adam(ad.parameters(), lr=5e-3)
    batch = {"index": torch.arange(2), "sdf_points": p, "sdf": sdf}
    first = float(im.clamped_l1(ad(torch.arange(2), p), sdf).detach())
    for _ in range(200):
        loss = im.deepsdf_loss(ad, batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = ad(torch.arange(2), p)
    assert float(im.clamped_l1(out, sdf)) < 0.3 * first
    assert ((out < 0) == (sdf < 0)).float().mean() > 0.85


def test_field_of_and_interpolation(one_torch_thread):
    m = _onet().eval()
    z = m.encode(torch.randn(1, 40, 3))[0]
    f = im.field_of(m, z)
    q = torch.randn(25, 3)
    assert torch.allclose(f(q), m.decoder(q[None], z[None])[0])
    zs = im.interpolate_latents(torch.zeros(3), torch.ones(3), 5)
    assert torch.allclose(zs[:, 0], torch.linspace(0, 1, 5))
    with pytest.raises(ValueError, match=r"\(C,\)"):
        im.field_of(m, z[None])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_models_on_cuda():
    m = _onet().cuda()
    assert m(torch.randn(2, 30, 3).cuda(), torch.randn(2, 40, 3).cuda()).device.type == "cuda"
    ad = im.AutoDecoder(3, im.DeepSDFDecoder(c_dim=8, hidden=32, n_layers=3, latent_in=(1,))).cuda()
    z, _ = im.reconstruct_latent(ad.decoder, torch.randn(50, 3).cuda(), torch.zeros(50).cuda(), iters=3)
    assert z.device.type == "cuda"
