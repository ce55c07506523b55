"""PointSetGen decoder and models: shapes, branch layout, errors, gradients, a tiny overfit."""

from __future__ import annotations

import pytest
import torch

from course_lib.models import PointSetGen, PointSetGenDecoder, psg_autoencoder, psg_single_view
from course_lib.models.encoders import PointNet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_decoder_shapes_and_branch_layout():
    dec = PointSetGenDecoder(latent_dim=32, n_fc=10, map_size=(8, 12), fc_hidden=(16,), map_channels=16,
                             n_upsample=2)
    z = torch.randn(3, 32)
    out = dec(z)
    assert out.shape == (3, 10 + 96, 3)
    assert dec.n_points == 106
    parts = dec.forward_branches(z)
    assert parts["fc"].shape == (3, 10, 3) and parts["map"].shape == (3, 3, 8, 12)
    # the first n_fc points are the FC branch; the rest are the map pixels in row-major order
    torch.testing.assert_close(out[:, :10], parts["fc"])
    i, j = 5, 7
    torch.testing.assert_close(out[:, 10 + i * 12 + j], parts["map"][:, :, i, j])
    assert dec.branch.tolist() == [0] * 10 + [1] * 96


def test_single_branches():
    fc_only = PointSetGenDecoder(latent_dim=8, n_fc=5, map_size=(0, 0), fc_hidden=(8,))
    assert fc_only(torch.randn(2, 8)).shape == (2, 5, 3) and fc_only.upconv is None
    map_only = PointSetGenDecoder(latent_dim=8, n_fc=0, map_size=(4, 4), map_channels=8, n_upsample=1)
    assert map_only(torch.randn(2, 8)).shape == (2, 16, 3) and map_only.fc is None


def test_map_branch_upsamples_by_transposed_convolutions():
    dec = PointSetGenDecoder(latent_dim=8, n_fc=4, map_size=(16, 24), map_channels=32, n_upsample=3)
    ups = [m for m in dec.upconv.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(ups) == 3 and all(m.stride == (2, 2) for m in ups)
    assert dec._seed_shape == (32, 2, 3)


@pytest.mark.parametrize(
    "kwargs, err",
    [
        (dict(n_fc=0, map_size=(0, 0)), ValueError),
        (dict(map_size=(10, 12), n_upsample=2), ValueError),
        (dict(map_size=(8, 0)), ValueError),
        (dict(n_fc=-1), ValueError),
        (dict(latent_dim=0), ValueError),
    ],
)
def test_decoder_bad_construction(kwargs, err):
    with pytest.raises(err):
        PointSetGenDecoder(**kwargs)


def test_decoder_bad_input():
    dec = PointSetGenDecoder(latent_dim=16, n_fc=4, map_size=(8, 8), n_upsample=2, map_channels=8)
    with pytest.raises(ValueError, match=r"\(B, 16\)"):
        dec(torch.randn(16))
    with pytest.raises(ValueError, match="shape"):
        dec(torch.randn(2, 15))
    with pytest.raises(TypeError, match="floating"):
        dec(torch.ones(2, 16, dtype=torch.long))
    with pytest.raises(TypeError):
        dec([0.0] * 16)


def test_gradients_reach_both_branches():
    dec = PointSetGenDecoder(latent_dim=16, n_fc=4, map_size=(8, 8), n_upsample=2, map_channels=8)
    z = torch.randn(2, 16, requires_grad=True)
    dec(z).pow(2).sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert dec.fc[0].weight.grad.abs().sum() > 0
    assert dec.seed_map[0].weight.grad.abs().sum() > 0


def test_autoencoder_and_single_view():
    torch.manual_seed(0)
    ae = psg_autoencoder(latent_dim=32, n_fc=8, map_size=(8, 8), n_upsample=2, map_channels=16,
                         encoder_feat_dim=64, encoder_hidden=(16, 32))
    pts = torch.randn(2, 100, 3)
    assert ae(pts).shape == (2, 72, 3) and ae.n_points == 72
    assert ae.encode(pts).shape == (2, 32)
    svr = psg_single_view(latent_dim=32, n_fc=8, map_size=(8, 8), n_upsample=2, map_channels=16, width=8)
    assert svr(torch.randn(2, 3, 32, 32)).shape == (2, 72, 3)
    svr4 = psg_single_view(latent_dim=32, n_fc=8, map_size=(8, 8), n_upsample=2, in_channels=4, width=8)
    assert svr4(torch.randn(2, 4, 32, 32)).shape == (2, 72, 3)


def test_autoencoder_is_permutation_invariant_in_eval():
    torch.manual_seed(1)
    ae = psg_autoencoder(latent_dim=16, n_fc=4, map_size=(4, 4), n_upsample=1, map_channels=8,
                         encoder_feat_dim=32, encoder_hidden=(16,)).eval()
    pts = torch.randn(2, 50, 3)
    perm = torch.randperm(50)
    with torch.no_grad():
        torch.testing.assert_close(ae(pts), ae(pts[:, perm]), atol=1e-5, rtol=1e-5)


def test_latent_mismatch_is_reported():
    enc = PointNet(feat_dim=32, hidden=(16,), out_dim=24)
    model = PointSetGen(enc, PointSetGenDecoder(latent_dim=16, n_fc=4, map_size=(0, 0)))
    with pytest.raises(ValueError, match="latent"):
        model(torch.randn(2, 10, 3))
    with pytest.raises(TypeError):
        PointSetGen(enc, torch.nn.Linear(3, 3))


def test_decoder_fits_one_shape_with_chamfer():
    """Decoding a fixed code, the two branches learn a circle (Chamfer to brute force)."""
    torch.manual_seed(0)
    t = torch.linspace(0, 2 * torch.pi, 65)[:-1]
    target = torch.stack([0.7 * t.cos(), 0.7 * t.sin(), torch.zeros_like(t)], -1)[None]
    dec = PointSetGenDecoder(latent_dim=8, n_fc=16, map_size=(4, 8), fc_hidden=(32,), map_channels=16,
                             n_upsample=1)
    z = torch.randn(1, 8)
    opt = torch.optim.Adam(dec.parameters(), lr=3e-3)

    def cd(a, b):
        d = torch.cdist(a, b) ** 2
        return d.min(2).values.mean() + d.min(1).values.mean()

    with torch.no_grad():
        start = float(cd(dec(z), target))
    for _ in range(300):
        opt.zero_grad()
        loss = cd(dec(z), target)
        loss.backward()
        opt.step()
    dec.eval()
    with torch.no_grad():
        end = float(cd(dec(z), target))
    assert end < 0.05 * start and end < 5e-3
