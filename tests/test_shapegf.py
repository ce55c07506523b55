"""ShapeGF (chapter 10): the analytic field, DSM, annealed Langevin, the auto-encoder, the latent GAN.

References are independent: torch.distributions / scipy for the smoothed density, finite
differences, the denoising identity of Vincent (2011), an independent Chamfer (scipy cKDTree).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from scipy.special import logsumexp

from course_lib.models import shapegf as gf

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _sphere(n, seed, r=0.5, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return (r * x / x.norm(dim=-1, keepdim=True)).to(dtype)


def _chamfer_np(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    da, _ = cKDTree(b).query(a)
    db, _ = cKDTree(a).query(b)
    return float((da ** 2).mean() + (db ** 2).mean())


# --- schedule ------------------------------------------------------------------------------
def test_sigma_schedule_is_the_official_geometric_one():
    s = gf.sigma_schedule()
    expected = [1.0, 0.5995, 0.3594, 0.2154, 0.1292, 0.0774, 0.0464, 0.0278, 0.0167, 0.01]
    assert s.shape == (10,)
    np.testing.assert_allclose(s.numpy(), expected, atol=6e-5)
    ratios = s[1:] / s[:-1]
    np.testing.assert_allclose(ratios.numpy(), np.full(9, 0.01 ** (1 / 9)), rtol=1e-5)
    np.testing.assert_allclose(gf.sigma_schedule(1.0, 0.01, 5).numpy(), [1, 0.31623, 0.1, 0.031623, 0.01], rtol=1e-4)
    assert gf.sigma_schedule(n=1).tolist() == [1.0]
    with pytest.raises(ValueError, match="positive"):
        gf.sigma_schedule(0.0, 0.01, 3)


# --- ground truth --------------------------------------------------------------------------
def test_log_density_matches_scipy_mixture():
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(7, 3, generator=g, dtype=torch.float64)
    x = torch.rand(11, 3, generator=g, dtype=torch.float64)
    for sigma in (0.05, 0.3, 1.0):
        d2 = ((x.numpy()[:, None] - pts.numpy()[None]) ** 2).sum(-1)
        ref = logsumexp(-d2 / (2 * sigma ** 2), axis=1) - math.log(7) - 1.5 * math.log(2 * math.pi * sigma ** 2)
        np.testing.assert_allclose(gf.smoothed_log_density(x, pts, sigma).numpy(), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sigma", [0.02, 0.2, 1.0])
def test_analytic_score_is_the_gradient_of_the_log_density(sigma):
    g = torch.Generator().manual_seed(1)
    pts = torch.rand(2, 9, 3, generator=g, dtype=torch.float64)
    x = (pts[:, :5] + 0.5 * sigma * torch.randn(2, 5, 3, generator=g, dtype=torch.float64)).requires_grad_(True)
    # independent log density: torch.distributions, not our formula
    normal = torch.distributions.Normal(pts[:, None], sigma)  # (2, 1, 9, 3)
    logp = torch.logsumexp(normal.log_prob(x[:, :, None]).sum(-1), dim=-1) - math.log(9)
    (ref,) = torch.autograd.grad(logp.sum(), x)
    out = gf.analytic_score(x.detach(), pts, sigma)
    torch.testing.assert_close(out, ref, rtol=1e-8, atol=1e-8 / sigma ** 2)


def test_analytic_score_finite_differences_and_per_cloud_sigma():
    g = torch.Generator().manual_seed(2)
    pts = torch.rand(2, 6, 3, generator=g, dtype=torch.float64)
    x = torch.rand(2, 4, 3, generator=g, dtype=torch.float64)
    sig = torch.tensor([0.1, 0.4], dtype=torch.float64)
    out = gf.analytic_score(x, pts, sig)
    h = 1e-6
    for b in range(2):
        for k in range(3):
            e = torch.zeros(3, dtype=torch.float64)
            e[k] = h
            fd = (gf.smoothed_log_density(x[b] + e, pts[b], float(sig[b]))
                  - gf.smoothed_log_density(x[b] - e, pts[b], float(sig[b]))) / (2 * h)
            torch.testing.assert_close(out[b, :, k], fd, rtol=1e-5, atol=1e-5)


def test_analytic_score_float32_small_sigma_is_accurate():
    pts = _sphere(300, 0) + torch.tensor([0.3, -0.2, 0.1])
    x = pts[:50] + 0.01 * torch.randn(50, 3, generator=torch.Generator().manual_seed(3))
    ref = gf.analytic_score(x.double(), pts.double(), 0.01)
    out = gf.analytic_score(x, pts, 0.01)
    # displacement units (sigma^2 * score): error far below sigma
    assert float(((out.double() - ref) * 1e-4).abs().max()) < 1e-4


def test_analytic_score_points_to_the_single_point():
    p = torch.tensor([[0.2, -0.1, 0.4]])
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    out = gf.analytic_score(x, p, 0.3)
    torch.testing.assert_close(out, (p - x) / 0.09)


def test_ground_truth_input_errors():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        gf.analytic_score(torch.zeros(4, 2), torch.zeros(3, 3), 0.1)
    with pytest.raises(ValueError, match="positive"):
        gf.analytic_score(torch.zeros(4, 3), torch.zeros(3, 3), 0.0)
    with pytest.raises(ValueError, match="empty"):
        gf.analytic_score(torch.zeros(4, 3), torch.zeros(0, 3), 0.1)
    with pytest.raises(TypeError, match="floating"):
        gf.analytic_score(torch.zeros(4, 3, dtype=torch.long), torch.zeros(3, 3), 0.1)
    with pytest.raises(ValueError, match="batch sizes"):
        gf.analytic_score(torch.zeros(2, 4, 3), torch.zeros(3, 5, 3), 0.1)


# --- DSM -----------------------------------------------------------------------------------
def _cloud_data(n_draws, seed):
    """Clean training points drawn from a 5-point 'surface' (the empirical density's support)."""
    g = torch.Generator().manual_seed(seed)
    support = torch.rand(5, 3, generator=g, dtype=torch.float64)
    idx = torch.randint(0, 5, (1, n_draws), generator=g)
    return support, support[idx[0]][None]


def test_dsm_minimiser_is_the_smoothed_score():
    """Vincent (2011): loss(f) - loss(f*) = E[w ||f - f*||^2], f* = sigma^2 grad log Q_sigma."""
    support, data = _cloud_data(40000, 0)
    sigma = 0.2
    sig = torch.tensor([sigma], dtype=torch.float64)

    def best(xt, s):
        return s[:, None, None] ** 2 * gf.analytic_score(xt, support[None].expand(xt.shape[0], -1, -1), s)

    delta = torch.tensor([0.03, -0.02, 0.01], dtype=torch.float64)
    l_best = gf.dsm_loss(best, data, sig, generator=torch.Generator().manual_seed(5))
    l_shift = gf.dsm_loss(lambda xt, s: best(xt, s) + delta, data, sig, generator=torch.Generator().manual_seed(5))
    l_scaled = gf.dsm_loss(lambda xt, s: 0.8 * best(xt, s), data, sig, generator=torch.Generator().manual_seed(5))
    expected_gap = 0.5 * float(delta.square().sum()) / sigma
    assert abs(float(l_shift - l_best) - expected_gap) < 0.1 * expected_gap
    assert float(l_scaled) > float(l_best)
    # and the ncsn weighting only rescales by 1/sigma at a single level
    l_ncsn = gf.dsm_loss(best, data, sig, weighting="ncsn", generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(l_ncsn, l_best / sigma)


def test_dsm_single_point_exact_zero():
    p = torch.tensor([0.1, 0.2, 0.3])
    data = p.expand(3, 50, 3).contiguous()
    loss = gf.dsm_loss(lambda xt, s: p - xt, data, gf.sigma_schedule())
    assert float(loss) < 1e-10


def test_dsm_one_sigma_per_shape_and_unit_noise():
    seen = {}

    def predict(xt, s):
        seen["xt"], seen["s"] = xt, s
        return torch.zeros_like(xt)

    sigmas = gf.sigma_schedule()
    pts = torch.zeros(8, 4000, 3)
    loss = gf.dsm_loss(predict, pts, sigmas, generator=torch.Generator().manual_seed(0))
    s = seen["s"]
    assert s.shape == (8,)
    assert all(any(abs(float(v) - float(t)) < 1e-7 for t in sigmas) for v in s)
    eps = seen["xt"] / s[:, None, None]
    np.testing.assert_allclose(eps.std(dim=(1, 2)).numpy(), 1.0, atol=0.05)
    # y = 0: per shape 0.5 * sigma^2 |eps|^2 / sigma = 0.5 * sigma * |eps|^2 ~ 1.5 sigma
    expected = float((0.5 * (s[:, None, None] * eps).square().sum(-1) / s[:, None]).mean())
    assert abs(float(loss) - expected) < 1e-5


def test_dsm_errors():
    with pytest.raises(ValueError, match="weighting"):
        gf.dsm_loss(lambda x, s: x, torch.zeros(1, 4, 3), gf.sigma_schedule(), weighting="sigma2")
    with pytest.raises(ValueError, match="shape"):
        gf.dsm_loss(lambda x, s: x[:, :2], torch.zeros(1, 4, 3), gf.sigma_schedule())
    with pytest.raises(ValueError, match="positive"):
        gf.dsm_loss(lambda x, s: x, torch.zeros(1, 4, 3), torch.tensor([0.1, -1.0]))


# --- Langevin ------------------------------------------------------------------------------
def test_langevin_with_the_analytic_field_lands_on_the_surface():
    """Goal of the issue, small: CD(samples, surface) within 2x the oracle (two samplings)."""
    n = 400
    held_out = _sphere(n, 0)  # the field's cloud
    target = _sphere(n, 1)  # independent sampling of the same sphere
    other = _sphere(n, 2)
    x0 = gf.uniform_prior(1, n, generator=torch.Generator().manual_seed(0))
    out = gf.annealed_langevin(gf.analytic_score_fn(held_out[None]), x0, gf.sigma_schedule(), 10, 1.0,
                               generator=torch.Generator().manual_seed(1))
    assert out.shape == (1, n, 3)
    radial = (out[0].norm(dim=-1) - 0.5).abs()
    assert float(radial.max()) < 0.02
    cd = _chamfer_np(out[0], target)
    oracle = _chamfer_np(other, target)
    assert cd < 2.0 * oracle, (cd, oracle)


def test_langevin_update_order_and_step():
    # score = -x / v (a Gaussian N(0, v)): without noise one step is x <- x (1 - alpha / (2 v))
    x0 = torch.ones(1, 3, 3)
    v = 4.0
    out = gf.annealed_langevin(lambda x, s: -x / v, x0, [0.5], 2, 0.5, noise=False)
    alpha = 2 * 0.25 * 0.5
    torch.testing.assert_close(out, x0 * (1 - alpha / (2 * v)) ** 2)
    # with noise and score 0 the spread after K steps is sqrt(K alpha)
    big = torch.zeros(1, 20000, 3)
    out = gf.annealed_langevin(lambda x, s: torch.zeros_like(x), big, [0.3], 4, 1.0,
                               generator=torch.Generator().manual_seed(0))
    assert abs(float(out.std()) - math.sqrt(4 * 2 * 0.09)) < 0.01
    # noise before the gradient step: the last operation is a denoising step
    res = gf.annealed_langevin(lambda x, s: -x / s[:, None, None] ** 2, big[:, :10], [0.3], 1, 1.0,
                               generator=torch.Generator().manual_seed(0))
    assert float(res.abs().max()) < 1e-6  # x + noise, then x <- x - x = 0


def test_langevin_trajectory_and_errors():
    res = gf.annealed_langevin(lambda x, s: -x, torch.ones(2, 5, 3), gf.sigma_schedule(n=3), 2,
                               return_trajectory=True, noise=False)
    assert len(res.trajectory) == 4 and res.sigmas == pytest.approx([1.0, 0.1, 0.01])
    torch.testing.assert_close(res.trajectory[-1], res.points)
    with pytest.raises(ValueError, match="steps_per_level"):
        gf.annealed_langevin(lambda x, s: x, torch.ones(1, 5, 3), [0.1], 0)
    with pytest.raises(ValueError, match="sigmas"):
        gf.annealed_langevin(lambda x, s: x, torch.ones(1, 5, 3), [], 1)
    with pytest.raises(ValueError, match="shape"):
        gf.annealed_langevin(lambda x, s: x[:, :2], torch.ones(1, 5, 3), [0.1], 1)


def test_uniform_prior_box():
    x = gf.uniform_prior(2, 5000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 5000, 3)
    assert float(x.abs().max()) <= 1.5 and float(x.abs().max()) > 1.45


# --- the surface ---------------------------------------------------------------------------
def test_project_to_surface_and_distance_field():
    cloud = _sphere(2000, 0)[None]
    fn = gf.analytic_score_fn(cloud)
    g = torch.Generator().manual_seed(1)
    x = _sphere(200, 5)[None] * (1 + 0.3 * (torch.rand(1, 200, 1, generator=g) - 0.5))
    y = gf.project_to_surface(fn, x, 0.03, steps=20)
    assert float((y[0].norm(dim=-1) - 0.5).abs().max()) < 0.01
    # sigma^2 |score| approximates the unsigned distance near the surface
    grid = gf.field_grid(fn, 17, 0.03, bound=1.0)
    from course_lib.geometry.mc import grid_points

    pts = grid_points(17, 1.0).reshape(-1, 3)
    dist = (pts.norm(dim=-1) - 0.5).abs().reshape(17, 17, 17)
    near = (dist > 0.06) & (dist < 0.25)
    assert float((grid[near] - dist[near]).abs().max()) < 0.02
    mesh = gf.field_mesh(fn, resolution=20, sigma=0.03, bound=0.8)
    r = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(r - 0.5).max() < 0.12  # a shell one cell (0.07) around the sphere


# --- networks ------------------------------------------------------------------------------
@pytest.mark.parametrize("cond", ["add", "cbn"])
def test_scorenet_shapes_pointwise_and_conditioning(cond):
    torch.manual_seed(0)
    net = gf.ScoreNet(latent_dim=8, hidden=16, n_blocks=2, conditioning=cond)
    for p in net.parameters():  # break the zero init so that every input matters
        torch.nn.init.normal_(p, std=0.3)
    net.eval().requires_grad_(False)
    x, z = torch.randn(2, 30, 3), torch.randn(2, 8)
    y = net(x, z, 0.1)
    assert y.shape == (2, 30, 3)
    torch.testing.assert_close(net(x[:, 5:9], z, 0.1), y[:, 5:9], atol=1e-5, rtol=1e-5)
    assert float((net(x, z, 0.5) - y).abs().max()) > 1e-4
    assert float((net(x, z.flip(0), 0.1) - y).abs().max()) > 1e-4
    torch.testing.assert_close(net.score(x, z, 0.1), y / 0.01)
    with pytest.raises(ValueError, match="z must have shape"):
        net(x, torch.randn(2, 7), 0.1)


def test_scorenet_learns_one_shape_field():
    torch.manual_seed(0)
    cloud = _sphere(64, 0)[None]
    net = gf.ScoreNet(latent_dim=0, hidden=32, n_blocks=2)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sigmas = gf.sigma_schedule(1.0, 0.05, 4)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(80):
        loss = gf.dsm_loss(lambda x, s: net(x, None, s), cloud.expand(4, -1, -1), sigmas, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-20:]) < 0.6 * np.mean(losses[:10])


def test_shapegf_autoencoder_end_to_end():
    torch.manual_seed(0)
    model = gf.ShapeGF(latent_dim=8, hidden=16, n_blocks=1, encoder_hidden=(16,), encoder_feat_dim=32)
    pts = torch.stack([_sphere(64, 0), _sphere(64, 1) * 0.5])
    loss = model.loss(pts, n_target=32, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.encoder.parameters() if p.requires_grad)
    assert all(p.grad is not None for p in model.decoder.parameters() if p.requires_grad)
    z = model.encode(pts).detach()
    assert z.shape == (2, 8)
    for n in (7, 100):
        out = model.sample(z, n, sigmas=[1.0, 0.1], steps_per_level=2, generator=torch.Generator().manual_seed(0))
        assert out.shape == (2, n, 3) and torch.isfinite(out).all()
    out = model.sample(z, 50, sigmas=[0.1], steps_per_level=1, chunk=20)
    assert out.shape == (2, 50, 3)
    assert model.training  # sample restores the mode


# --- latent GAN ----------------------------------------------------------------------------
def test_zero_centered_penalty_on_a_linear_critic():
    d = torch.nn.Linear(4, 1)

    class D(torch.nn.Module):
        def forward(self, z):
            return d(z)[:, 0]

    real = torch.randn(10, 4)
    pen = gf.zero_centered_penalty(D(), real)
    torch.testing.assert_close(pen, d.weight.square().sum())
    pen.backward()
    torch.testing.assert_close(d.weight.grad, 2 * d.weight.detach())


def test_zero_centered_penalty_mean_of_norms_squared():
    class Q(torch.nn.Module):  # D(z) = 0.5 |z|^2, gradient z
        def forward(self, z):
            return 0.5 * z.square().sum(-1)

    real = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    torch.testing.assert_close(gf.zero_centered_penalty(Q(), real), torch.tensor(9.0))  # ((5 + 1) / 2)^2


def test_latent_gan_moves_towards_the_codes():
    g = torch.Generator().manual_seed(0)
    codes = 2.0 + 0.3 * torch.randn(256, 4, generator=g)
    gen, disc, hist = gf.train_latent_gan(codes, epochs=60, batch_size=64, lr=2e-3, g_hidden=(32,),
                                          d_hidden=(32,), progress=False, seed=0)
    fake = gen.sample(512, generator=torch.Generator().manual_seed(1))
    assert fake.shape == (512, 4)
    assert float((fake.mean(0) - 2.0).abs().max()) < 0.5
    assert len(hist.d_loss) == 60
    with pytest.raises(ValueError, match="latents"):
        gf.train_latent_gan(torch.zeros(5), epochs=1)


def test_scorenet_scaled_output_and_log_sigma_input():
    torch.manual_seed(0)
    base = gf.ScoreNet(latent_dim=4, hidden=16, n_blocks=1)
    scaled = gf.ScoreNet(latent_dim=4, hidden=16, n_blocks=1, output="scaled")
    scaled.load_state_dict(base.state_dict())
    for m in (base, scaled):
        m.eval().requires_grad_(False)
    x, z = torch.randn(2, 10, 3), torch.randn(2, 4)
    sig = torch.tensor([0.5, 0.02])
    torch.testing.assert_close(scaled(x, z, sig), base(x, z, sig) * sig[:, None, None])
    torch.testing.assert_close(scaled.score(x, z, sig), base(x, z, sig) / sig[:, None, None])
    logn = gf.ScoreNet(latent_dim=4, hidden=16, n_blocks=1, sigma_input="log").eval().requires_grad_(False)
    logn.load_state_dict(base.state_dict())
    assert float(logn._sigma_feature(sig)[1, 0]) == pytest.approx(float(torch.log(sig[1])))
    assert float((logn(x, z, sig) - base(x, z, sig)).abs().max()) > 0
    with pytest.raises(ValueError, match="output"):
        gf.ScoreNet(output="score")
    with pytest.raises(ValueError, match="sigma_input"):
        gf.ScoreNet(sigma_input="sqrt")


def test_draw_levels_uniform_is_the_official_draw():
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    a = gf.draw_levels(16, 10, "uniform", generator=g1)
    b = torch.randint(0, 10, (16,), generator=g2)
    assert torch.equal(a, b)


@pytest.mark.parametrize("b,n_levels", [(16, 10), (30, 10), (7, 10), (10, 3)])
def test_draw_levels_stratified_spreads_every_batch(b, n_levels):
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        idx = gf.draw_levels(b, n_levels, "stratified", generator=g)
        assert idx.shape == (b,) and idx.dtype == torch.long
        counts = torch.bincount(idx, minlength=n_levels)
        assert counts.numel() == n_levels  # only valid levels
        # as even as a batch of b can be: every count is floor(b/L) or ceil(b/L)
        assert int(counts.min()) >= b // n_levels and int(counts.max()) <= -(-b // n_levels)
        if b < n_levels:
            assert int(counts.max()) == 1  # no level twice while another is missing


def test_draw_levels_stratified_keeps_each_shape_uniform():
    # the marginal of every position is uniform (unbiased loss): chi-square against uniform
    from scipy.stats import chisquare

    g = torch.Generator().manual_seed(1)
    draws = torch.stack([gf.draw_levels(16, 10, "stratified", generator=g) for _ in range(3000)])
    for pos in (0, 9, 15):
        counts = torch.bincount(draws[:, pos], minlength=10).numpy()
        assert chisquare(counts).pvalue > 1e-3
    # while the uniform draw misses levels in most batches of 16, the stratified one never does
    g = torch.Generator().manual_seed(2)
    missing = sum(int((torch.bincount(gf.draw_levels(16, 10, "uniform", generator=g), minlength=10) == 0).any())
                  for _ in range(200))
    assert missing > 100


def test_draw_levels_errors_and_dsm_loss_option():
    with pytest.raises(ValueError, match="levels"):
        gf.draw_levels(4, 10, "sorted")
    with pytest.raises(ValueError, match="positive int"):
        gf.draw_levels(0, 10)
    with pytest.raises(ValueError, match="n_levels"):
        gf.draw_levels(4, 0)
    x = torch.randn(20, 16, 3)
    sig = gf.sigma_schedule()
    parts = gf.dsm_loss(lambda p, s: torch.zeros_like(p), x, sig, levels="stratified", return_parts=True,
                        generator=torch.Generator().manual_seed(0))
    used = {round(float(v), 6) for v in parts["sigma"]}
    assert used == {round(float(v), 6) for v in sig}  # 20 shapes, 10 levels: every level twice
    with pytest.raises(ValueError, match="levels"):
        gf.dsm_loss(lambda p, s: torch.zeros_like(p), x, sig, levels="sorted")


def test_scorenet_without_norm_is_independent_of_the_batch():
    torch.manual_seed(0)
    x, z = torch.randn(2, 32, 3), torch.randn(2, 8)
    for norm, independent in (("none", True), ("batch", False)):
        net = gf.ScoreNet(latent_dim=8, hidden=16, n_blocks=2, norm=norm)
        for blk in net.blocks:  # leave the identity start so that the blocks matter
            torch.nn.init.normal_(blk.fc1.weight, std=0.3)
        net.train()
        alone = net(x[:1], z[:1], torch.tensor([0.1]))
        together = net(x, z, torch.tensor([0.1, 1.0]))[:1]
        assert torch.allclose(alone, together, atol=1e-6) == independent
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in gf.ScoreNet(4, 8, 1, norm="none").modules())
    with pytest.raises(ValueError, match="norm"):
        gf.ScoreNet(4, 8, 1, norm="layer")


@pytest.mark.parametrize("ratio", [0.1, 0.5, 1.0, 1.5])
def test_gaussian_langevin_variance_matches_the_sampler(ratio):
    """The closed-form variance of the chain on N(0, sigma^2) against annealed_langevin with the exact score
    (60,000 coordinates), after 1, 3 and 10 steps from a unit-variance start, and the limit formula against a
    long run of the recursion."""
    sigma = 0.1
    x0 = torch.randn(1, 20000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for k in (1, 3, 10):
        out = gf.annealed_langevin(lambda x, s: -x / s[:, None, None] ** 2, x0, [sigma], k, ratio,
                                   generator=torch.Generator().manual_seed(k))
        want = gf.gaussian_langevin_variance(ratio, k, sigma=sigma, var0=1.0)
        assert float(out.var()) == pytest.approx(want, rel=0.03, abs=1e-12)
    lim = gf.gaussian_langevin_variance(ratio, sigma=sigma)
    assert lim == pytest.approx(gf.gaussian_langevin_variance(ratio, 2000, sigma=sigma, var0=1.0), rel=1e-9, abs=1e-15)
    assert lim == pytest.approx(2 * sigma ** 2 * (1 - ratio) ** 2 / (2 - ratio), abs=1e-15)


def test_gaussian_langevin_variance_regimes():
    s2 = 0.01
    assert gf.gaussian_langevin_variance(1e-4, sigma=0.1) == pytest.approx(s2, rel=1e-3)  # small steps: the target
    assert gf.gaussian_langevin_variance(1.0, 1, sigma=0.1, var0=5.0) == 0.0  # ratio 1: projected onto the mode
    assert gf.gaussian_langevin_variance(0.5, sigma=0.1) == pytest.approx(s2 / 3)  # std 0.058 of a 0.1 target
    assert gf.gaussian_langevin_variance(2.0, 10, sigma=0.1) == pytest.approx(10 * 4 * s2)  # a random walk
    assert math.isinf(gf.gaussian_langevin_variance(2.0, sigma=0.1))
    assert gf.gaussian_langevin_variance(2.5, 10, sigma=0.1, var0=1.0) > 1.5 ** 20  # geometric divergence
    assert gf.gaussian_langevin_variance(0.5, 4, sigma=0.1, var0=1.0, noise=False) == pytest.approx(0.25 ** 4)
    with pytest.raises(ValueError, match="step_ratio"):
        gf.gaussian_langevin_variance(0.0)
    with pytest.raises(ValueError, match="steps"):
        gf.gaussian_langevin_variance(0.5, -1)


def test_ncsn_epsilon():
    assert gf.ncsn_epsilon(1.0, 0.01) == pytest.approx(2e-4)
    # the two step rules agree at every level
    for s in (1.0, 0.1, 0.01):
        assert gf.ncsn_epsilon(0.7, 0.01) * s ** 2 / 0.01 ** 2 == pytest.approx(2 * s ** 2 * 0.7)
    with pytest.raises(ValueError):
        gf.ncsn_epsilon(1.0, 0.0)


def test_langevin_refuses_unstable_ratios():
    x = torch.ones(1, 5, 3)
    with pytest.raises(ValueError, match="diverge"):
        gf.annealed_langevin(lambda x, s: -x, x, [0.1], 2, 2.5)
    with pytest.warns(RuntimeWarning, match="stability limit"):
        gf.annealed_langevin(lambda x, s: -x, x, [0.1], 2, 2.0)
    with pytest.warns(RuntimeWarning):
        out = gf.annealed_langevin(lambda x, s: -x / s[:, None, None] ** 2, x, [0.1], 30, 2.5, allow_unstable=True,
                                   noise=False)
    assert float(out.abs().max()) > 1e4  # |1 - 2.5|^30 growth, as the analysis says
