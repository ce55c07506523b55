"""Voxel models of chapter 03: layouts against the papers' arithmetic, errors, the GRU equations, the loss."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.models import ResNetEncoder
from course_lib.models.voxels import (
    ConvGRU3d,
    MultiViewVoxelGRU,
    SingleViewVoxels,
    VoxelAutoEncoder,
    VoxelDecoder,
    VoxelEncoder,
    VoxNet,
    balanced_pos_weight,
    decoder_channels,
    voxel_bce,
    voxel_single_view,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# --- decoder -------------------------------------------------------------------
@pytest.mark.parametrize("R", [4, 8, 16, 32])
def test_decoder_output_shape_and_stages(R):
    dec = VoxelDecoder(latent_dim=8, resolution=R, base_channels=4)
    out = dec(torch.randn(2, 8))
    assert out.shape == (2, R, R, R) and out.dtype == torch.float32
    ups = [m for m in dec.modules() if isinstance(m, torch.nn.ConvTranspose3d)]
    assert len(ups) == int(math.log2(R // 4)) == dec.n_stages
    assert all(m.kernel_size == (4, 4, 4) and m.stride == (2, 2, 2) and m.padding == (1, 1, 1) for m in ups)
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in dec.modules()) == len(ups)


def test_decoder_channels_halve_and_cap():
    assert decoder_channels(32, 32, 4) == [256, 128, 64, 32]
    assert decoder_channels(32, 32, 4, max_channels=100) == [100, 100, 64, 32]
    assert decoder_channels(16, 8, 2) == [64, 32, 16, 8]
    assert VoxelDecoder(8, 16, 8, min_resolution=2).channels == [64, 32, 16, 8]


def test_decoder_parameter_count_matches_the_layer_arithmetic():
    L, R, b = 10, 16, 4
    dec = VoxelDecoder(L, R, b)
    c = [16, 8, 4]  # 4^3 -> 8^3 -> 16^3
    expected = L * c[0] * 64 + c[0] * 64  # linear to the seed grid
    for cin, cout in zip(c[:-1], c[1:]):
        expected += cin * cout * 4**3 + 2 * cout  # transposed conv without bias + BatchNorm affine
    expected += c[-1] + 1  # last 1x1x1 conv to one logit
    assert n_params(dec) == expected
    assert n_params(VoxelDecoder(L, R, b, head_kernel=3)) == expected + 26 * c[-1]


def test_decoder_upsampling_doubles_exactly():
    # ConvTranspose3d(k=4, s=2, p=1): out = (in - 1) * 2 - 2 + 4 = 2 in
    dec = VoxelDecoder(4, 32, 2, min_resolution=4)
    x = torch.randn(1, dec.seed_channels, 4, 4, 4)
    sizes = []
    for stage in dec.up:
        x = stage(x)
        sizes.append(x.shape[-1])
    assert sizes == [8, 16, 32]


@pytest.mark.parametrize("R,m", [(24, 4), (2, 4), (16, 3), (0, 4)])
def test_decoder_rejects_bad_resolutions(R, m):
    with pytest.raises(ValueError, match="power of two"):
        VoxelDecoder(8, R, min_resolution=m)


def test_decoder_rejects_bad_latents():
    dec = VoxelDecoder(8, 8, 4)
    with pytest.raises(ValueError, match=r"\(B, 8\)"):
        dec(torch.randn(3, 7))
    with pytest.raises(ValueError, match="batch dimension"):
        dec(torch.randn(8))
    with pytest.raises(TypeError, match="floating-point"):
        dec(torch.ones(2, 8, dtype=torch.long))
    with pytest.raises(TypeError):
        VoxelDecoder(8, 8.0)


def test_decoder_eval_is_per_sample():
    dec = VoxelDecoder(6, 8, 4).eval()
    z = torch.randn(3, 6)
    torch.testing.assert_close(dec(z)[1:2], dec(z[1:2]), rtol=1e-5, atol=1e-5)


# --- encoder --------------------------------------------------------------------
@pytest.mark.parametrize("R", [4, 8, 16])
def test_encoder_shapes_and_bool_input(R):
    enc = VoxelEncoder(R, 12, base_channels=4)
    vox = torch.rand(2, R, R, R) > 0.5
    z = enc(vox)
    assert z.shape == (2, 12)
    torch.testing.assert_close(z, enc(vox.float()))
    assert enc(vox[:, None].float()).shape == (2, 12)  # (B, 1, R, R, R) accepted too
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv3d)]
    assert len(convs) == int(math.log2(R // 4))
    assert all(m.stride == (2, 2, 2) for m in convs)


def test_encoder_rejects_bad_grids():
    enc = VoxelEncoder(8, 4, 2)
    with pytest.raises(ValueError, match="resolution 8"):
        enc(torch.zeros(1, 16, 16, 16))
    with pytest.raises(ValueError, match="batch dimension"):
        enc(torch.zeros(8, 8, 8))
    with pytest.raises(ValueError, match="cubic"):
        enc(torch.zeros(1, 8, 8, 4))
    with pytest.raises(ValueError, match="empty"):
        enc(torch.zeros(0, 8, 8, 8))
    with pytest.raises(TypeError):
        enc([[0.0]])
    with pytest.raises(ValueError, match="power of two"):
        VoxelEncoder(12, 4)


def test_autoencoder_round_trip_shape_and_gradients():
    ae = VoxelAutoEncoder(8, latent_dim=6, encoder_channels=2, decoder_channels=2)
    vox = (torch.rand(2, 8, 8, 8) > 0.7).float()
    logits = ae(vox)
    assert logits.shape == vox.shape
    voxel_bce(logits, vox, 2.0).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in ae.parameters())


def test_autoencoder_learns_one_shape():
    torch.manual_seed(0)
    R = 8
    c = (torch.arange(R) + 0.5) / R * 2 - 1
    x, y, z = torch.meshgrid(c, c, c, indexing="ij")
    ball = ((x**2 + y**2 + z**2) < 0.6).float()[None].repeat(2, 1, 1, 1)
    ae = VoxelAutoEncoder(R, latent_dim=8, encoder_channels=4, decoder_channels=4)
    opt = torch.optim.Adam(ae.parameters(), 1e-2)
    for _ in range(60):
        opt.zero_grad()
        loss = voxel_bce(ae(ball), ball)
        loss.backward()
        opt.step()
    ae.eval()
    pred = torch.sigmoid(ae(ball)) > 0.5
    inter = (pred & (ball > 0)).sum()
    union = (pred | (ball > 0)).sum()
    assert inter / union > 0.9


# --- VoxNet ---------------------------------------------------------------------
def test_voxnet_layout_matches_the_paper_at_32():
    net = VoxNet(10)
    assert net.feature_size == 6  # 32 -k5 s2-> 14 -k3-> 12 -pool-> 6
    expected = (32 * (125 + 1)) + (32 * (32 * 27 + 1)) + (32 * 6**3 * 128 + 128) + (128 * 10 + 10)
    assert n_params(net) == expected
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    assert [m.kernel_size for m in convs] == [(5, 5, 5), (3, 3, 3)] and convs[0].stride == (2, 2, 2)
    # the official config: leaky ReLU (0.1) after the convolutions, Lasagne's default ReLU after fc1
    acts = [m for m in net.features if isinstance(m, torch.nn.LeakyReLU)]
    assert len(acts) == 2 and all(a.negative_slope == 0.1 for a in acts)
    assert [type(m) for m in net.head if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU))] == [torch.nn.ReLU]
    assert isinstance(net.head[2], torch.nn.ReLU)  # right after the hidden FC layer
    assert isinstance(VoxNet(10, fc_activation="leaky").head[2], torch.nn.LeakyReLU)
    assert [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)] == [0.2, 0.3, 0.4]
    assert net(torch.rand(3, 32, 32, 32) > 0.5).shape == (3, 10)


@pytest.mark.parametrize("R,s", [(11, 1), (16, 2), (24, 4), (64, 14)])
def test_voxnet_any_resolution(R, s):
    net = VoxNet(3, resolution=R, filters=4, hidden=8)
    assert net.feature_size == s
    assert net(torch.zeros(2, R, R, R)).shape == (2, 3)


def test_voxnet_feeds_minus_one_one_like_the_official_loader():
    torch.manual_seed(0)
    a = VoxNet(3, resolution=16, filters=4, hidden=8).eval()
    b = VoxNet(3, resolution=16, filters=4, hidden=8, centered_input=False).eval()
    b.load_state_dict(a.state_dict())
    v = torch.rand(2, 16, 16, 16) > 0.7
    torch.testing.assert_close(a(v), b(2.0 * v.float() - 1.0))  # 2 v - 1, as dimatura/voxnet's data_loader
    assert not torch.allclose(a(v), b(v))
    assert "centered_input=True" in repr(a)  # part of the checkpoint signature


def test_voxnet_errors():
    with pytest.raises(ValueError, match="fc_activation"):
        VoxNet(3, fc_activation="tanh")
    with pytest.raises(ValueError, match=">= 11"):
        VoxNet(3, resolution=10)
    with pytest.raises(ValueError, match="n_classes"):
        VoxNet(1)
    with pytest.raises(ValueError, match="resolution 16"):
        VoxNet(3, resolution=16, filters=2)(torch.zeros(1, 32, 32, 32))


def test_voxnet_is_not_translation_blind():
    # a classifier must see *where* voxels are: two different occupancies give different logits
    net = VoxNet(3, resolution=16, filters=4, hidden=8).eval()
    a = torch.zeros(1, 16, 16, 16)
    b = a.clone()
    a[0, 2:6, 2:6, 2:6] = 1
    b[0, 8:14, 8:14, 8:14] = 1
    assert not torch.allclose(net(a), net(b))


# --- image -> voxels -------------------------------------------------------------
def test_single_view_model():
    model = voxel_single_view(resolution=8, latent_dim=16, width=4, decoder_channels=4)
    assert isinstance(model, SingleViewVoxels) and isinstance(model.encoder, ResNetEncoder)
    out = model(torch.rand(2, 3, 16, 16))
    assert out.shape == (2, 8, 8, 8)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(2, 4, 16, 16))
    with pytest.raises(TypeError):
        model(torch.ones(2, 3, 16, 16, dtype=torch.uint8))


def test_single_view_rejects_mismatched_latent():
    enc = ResNetEncoder(width=4, layers=(1,), out_dim=10)
    with pytest.raises(ValueError, match="expects \\(B, 12\\)"):
        SingleViewVoxels(enc, VoxelDecoder(12, 8, 2))(torch.rand(1, 3, 8, 8))


def _hand_conv3d(h, weight, bias):
    """A 'same' 3D convolution written as a sum over the kernel's offsets (no F.conv3d): the reference."""
    B, C, m = h.shape[0], h.shape[1], h.shape[2]
    k = weight.shape[-1]
    p = k // 2
    hp = torch.zeros(B, C, m + 2 * p, m + 2 * p, m + 2 * p, dtype=h.dtype)
    hp[:, :, p:p + m, p:p + m, p:p + m] = h
    out = bias.view(1, -1, 1, 1, 1).expand(B, -1, m, m, m).clone()
    for a in range(k):
        for b in range(k):
            for c in range(k):
                patch = hp[:, :, a:a + m, b:b + m, c:c + m]  # the neighbour at offset (a-p, b-p, c-p)
                out = out + torch.einsum("oi,bixyz->boxyz", weight[:, :, a, b, c], patch)
    return out


def _hand_gru_step(cell, x, h):
    """3D-R2N2's equations with explicit ops: per-cell input weights, hand-written convolutions."""
    C, m = cell.channels, cell.grid
    W = cell.input.weight.view(3, C, m, m, m, cell.input_dim)  # one (C, D) matrix per gate and cell
    wx = torch.einsum("gcxyzd,bd->bgcxyz", W, x)
    Uu, Ur = cell.hidden.weight[:C], cell.hidden.weight[C:]
    bu, br = cell.hidden.bias[:C], cell.hidden.bias[C:]
    u = torch.sigmoid(wx[:, 0] + _hand_conv3d(h, Uu, bu))
    r = torch.sigmoid(wx[:, 1] + _hand_conv3d(h, Ur, br))
    cand = torch.tanh(wx[:, 2] + _hand_conv3d(r * h, cell.candidate.weight, cell.candidate.bias))
    return (1 - u) * h + u * cand


@pytest.mark.parametrize("grid,kernel", [(4, 3), (3, 1), (2, 3), (4, 5)])
def test_conv_gru_matches_3d_r2n2_equations_by_hand(grid, kernel):
    torch.manual_seed(0)
    cell = ConvGRU3d(5, 3, grid=grid, kernel=kernel).double()
    x, h = torch.randn(2, 5, dtype=torch.float64), torch.randn(2, 3, grid, grid, grid, dtype=torch.float64)
    torch.testing.assert_close(cell(x, h), _hand_gru_step(cell, x, h))
    # from a zero state
    torch.testing.assert_close(cell(x), cell(x, torch.zeros_like(h)))
    u, r, cand, new = cell.gates(x, h)
    assert ((u > 0) & (u < 1)).all() and ((r > 0) & (r < 1)).all() and (cand.abs() < 1).all()
    torch.testing.assert_close(new, (1 - u) * h + u * cand)


def test_conv_gru_on_one_cell_is_a_standard_gru_cell():
    """grid 1: every cell of the 3D GRU sees only itself, so it is the GRU of Cho et al.
    (``h' = (1 - u) h + u tanh(W x + U (r . h))``), written here with matrices."""
    torch.manual_seed(1)
    D, C = 6, 4
    for kernel in (1, 3):  # on a 1^3 grid only the kernel's centre tap touches the cell
        cell = ConvGRU3d(D, C, grid=1, kernel=kernel).double()
        x, h = torch.randn(3, D, dtype=torch.float64), torch.randn(3, C, dtype=torch.float64)
        Wu, Wr, Wh = cell.input.weight.view(3, C, D)
        c = kernel // 2
        Uu, Ur = cell.hidden.weight[:C, :, c, c, c], cell.hidden.weight[C:, :, c, c, c]
        Uh = cell.candidate.weight[:, :, c, c, c]
        bu, br, bh = cell.hidden.bias[:C], cell.hidden.bias[C:], cell.candidate.bias
        u = torch.sigmoid(x @ Wu.T + h @ Uu.T + bu)
        r = torch.sigmoid(x @ Wr.T + h @ Ur.T + br)
        ref = (1 - u) * h + u * torch.tanh(x @ Wh.T + (r * h) @ Uh.T + bh)
        torch.testing.assert_close(cell(x, h.view(3, C, 1, 1, 1)).view(3, C), ref)


def test_conv_gru_with_one_channel_equals_torch_gru_cell():
    """torch.nn.GRUCell (one hidden unit: r . (U h) = U (r . h)); its z gates the *old* state,
    z = 1 - u = sigmoid(-(W_u x + U_u h + b_u)), so its z weights are minus ours."""
    torch.manual_seed(2)
    D = 7
    cell = ConvGRU3d(D, 1, grid=1, kernel=1).double()
    ref = torch.nn.GRUCell(D, 1).double()
    Wu, Wr, Wh = cell.input.weight.view(3, 1, D)
    with torch.no_grad():  # torch's gate order: r, z, n
        ref.weight_ih.copy_(torch.cat([Wr, -Wu, Wh]))
        ref.weight_hh.copy_(torch.stack([cell.hidden.weight[1, 0, 0, 0, 0], -cell.hidden.weight[0, 0, 0, 0, 0],
                                         cell.candidate.weight[0, 0, 0, 0, 0]]).view(3, 1))
        ref.bias_ih.copy_(torch.stack([cell.hidden.bias[1], -cell.hidden.bias[0], cell.candidate.bias[0]]))
        ref.bias_hh.zero_()
    x, h = torch.randn(4, D, dtype=torch.float64), torch.randn(4, 1, dtype=torch.float64)
    torch.testing.assert_close(cell(x, h.view(4, 1, 1, 1, 1)).view(4, 1), ref(x, h))


def test_conv_gru_rejects_bad_input():
    with pytest.raises(ValueError, match="odd"):
        ConvGRU3d(4, 2, kernel=2)
    with pytest.raises(ValueError, match="channels"):
        ConvGRU3d(4, 0)
    cell = ConvGRU3d(4, 2, grid=2)
    with pytest.raises(ValueError, match="hidden grid"):
        cell(torch.randn(3, 4), torch.zeros(3, 2, 4, 4, 4))


def test_multi_view_gru():
    torch.manual_seed(0)
    model = voxel_single_view(resolution=8, latent_dim=8, width=4, decoder_channels=4, multi_view=True).eval()
    assert isinstance(model, MultiViewVoxelGRU)
    views = torch.rand(2, 3, 3, 16, 16)
    out = model(views)
    assert out.shape == (2, 8, 8, 8)
    # a single view works too (V = 1), and more views change the prediction
    one = model(views[:, :1])
    assert one.shape == (2, 8, 8, 8) and not torch.allclose(one, out)
    # all_steps: the prediction after each view, in one pass
    steps = model(views, all_steps=True)
    assert steps.shape == (2, 3, 8, 8, 8)
    torch.testing.assert_close(steps[:, 0], one)
    torch.testing.assert_close(steps[:, 1], model(views[:, :2]))
    torch.testing.assert_close(steps[:, 2], out)
    # the recurrence is not order invariant (nothing forces it to be)
    assert not torch.allclose(model(views.flip(1)), out)
    with pytest.raises(ValueError, match=r"\(B, V, C, H, W\)"):
        model(torch.rand(2, 3, 16, 16))


def test_multi_view_gru_gradient_reaches_every_view():
    torch.manual_seed(0)
    model = voxel_single_view(resolution=8, latent_dim=8, width=4, decoder_channels=4, multi_view=True)
    views = torch.rand(2, 3, 3, 16, 16, requires_grad=True)
    model(views).sum().backward()
    assert all(float(views.grad[:, v].abs().sum()) > 0 for v in range(3))
    assert model.gru.input.weight.grad is not None and float(model.gru.hidden.weight.grad.abs().sum()) > 0


# --- loss ----------------------------------------------------------------------------
def test_voxel_bce_matches_the_formula():
    torch.manual_seed(0)
    logits, t = torch.randn(2, 4, 4, 4), (torch.rand(2, 4, 4, 4) > 0.7).float()
    p = torch.sigmoid(logits.double())
    w = 3.0
    ref = -(w * t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()
    torch.testing.assert_close(voxel_bce(logits, t, w).double(), ref, rtol=1e-5, atol=1e-6)
    ref1 = -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()
    torch.testing.assert_close(voxel_bce(logits, t.bool()).double(), ref1, rtol=1e-5, atol=1e-6)


def test_pos_weight_moves_the_optimum_as_documented():
    # minimising w t log(s) + (1-t) log(1-s) over a constant logit gives s = w p / (w p + 1 - p)
    t = torch.zeros(1000)
    t[:100] = 1  # p = 0.1
    w = 4.0
    a = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([a], max_iter=100)

    def closure():
        opt.zero_grad()
        loss = voxel_bce(a.expand(1000), t, w)
        loss.backward()
        return loss

    opt.step(closure)
    assert abs(torch.sigmoid(a).item() - w * 0.1 / (w * 0.1 + 0.9)) < 1e-3


def test_voxel_bce_errors():
    with pytest.raises(ValueError, match="shape"):
        voxel_bce(torch.zeros(2, 4), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="> 0"):
        voxel_bce(torch.zeros(2), torch.zeros(2), 0.0)
    with pytest.raises(ValueError, match="empty"):
        voxel_bce(torch.zeros(0), torch.zeros(0))


def test_balanced_pos_weight():
    assert balanced_pos_weight(0.1, power=1) == pytest.approx(9.0)
    assert balanced_pos_weight(0.1) == pytest.approx(3.0)
    assert balanced_pos_weight(0.6) == 1.0
    assert balanced_pos_weight(1e-4, power=1, max_weight=20) == 20
    with pytest.raises(ValueError):
        balanced_pos_weight(0.0)


def test_set_prior_and_weighted_optimum():
    dec = VoxelDecoder(4, 8, 2).set_prior(0.1)
    assert float(torch.sigmoid(dec.out.bias.detach())) == pytest.approx(0.1)
    with torch.no_grad():
        dec.up[-1][1].weight.zero_()  # zero the last BatchNorm's scale and shift: features become 0
        dec.up[-1][1].bias.zero_()
        p = torch.sigmoid(dec.eval()(torch.randn(2, 4)))
    torch.testing.assert_close(p, torch.full_like(p, 0.1))
    from course_lib.models.voxels import weighted_optimum

    assert weighted_optimum(0.1, 1.0) == pytest.approx(0.1)
    assert weighted_optimum(0.1, 4.0) == pytest.approx(0.4 / 1.3)
    with pytest.raises(ValueError):
        dec.set_prior(1.0)
