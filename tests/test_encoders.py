"""Tests of course_lib.models.encoders against brute-force loops and published numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from scipy.stats import ortho_group

import course_lib.ops as ops
from course_lib.models import encoders as E

# ---------------------------------------------------------------------------
# Private brute-force stand-ins, used only while course_lib.ops lacks a function
# (the models always call course_lib.ops.<name>; these fill the name if absent).
# ---------------------------------------------------------------------------


def _bf_knn(x, y, k, **_):
    d = ((x[..., :, None, :] - y[..., None, :, :]) ** 2).sum(-1)
    return d.topk(k, dim=-1, largest=False)


def _bf_fps(x, n, *, start_idx=0, generator=None):
    B, N, _ = x.shape
    idx = torch.zeros(B, n, dtype=torch.long)
    dist = torch.full((B, N), float("inf"))
    cur = torch.full((B,), int(start_idx), dtype=torch.long)
    for i in range(n):
        idx[:, i] = cur
        d = ((x - x[torch.arange(B), cur][:, None]) ** 2).sum(-1)
        dist = torch.minimum(dist, d)
        cur = dist.argmax(-1)
    return idx


def _bf_ball_query(x, centers, radius, k):
    d = ((centers[:, :, None] - x[:, None]) ** 2).sum(-1)
    N = x.shape[1]
    key = torch.where(d <= radius**2, torch.arange(N).expand_as(d), torch.full_like(d, N, dtype=torch.long))
    key = key.sort(dim=-1).values[..., :k]
    return torch.where(key == N, key[..., :1], key)


def _bf_gather(x, idx):
    B, C = x.shape[0], x.shape[-1]
    flat = idx.reshape(B, -1)
    out = torch.gather(x, 1, flat[..., None].expand(-1, -1, C))
    return out.reshape(*idx.shape, C)


_FALLBACKS = {"knn": _bf_knn, "farthest_point_sampling": _bf_fps,
              "ball_query": _bf_ball_query, "gather_points": _bf_gather}


@pytest.fixture(autouse=True)
def _ops_fallback(monkeypatch):
    for name, fn in _FALLBACKS.items():
        if not hasattr(ops, name):
            monkeypatch.setattr(ops, name, fn, raising=False)


def _cloud(B=2, N=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, 3, generator=g)
    return x / x.norm(dim=-1).max() * 0.9


def _small_pn2(**kw):
    return E.PointNet2(levels=((16, 0.5, 64, (8, 16)), (4, 0.9, 64, (16, 16))), global_mlp=(16, 32), **kw)


def _small_dgcnn(**kw):
    return E.DGCNN(k=5, channels=(8, 8, 16), emb_dim=32, **kw)


def _warm_bn(model, x):
    """Give BatchNorm non-trivial running statistics, then switch to eval mode."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x * 1.3 + 0.1)
    model.eval()
    return model


# ---------------------------------------------------------------------------
# Shapes and API
# ---------------------------------------------------------------------------
def test_pointnet_shapes_and_aliases():
    m = E.PointNet(feat_dim=32, hidden=(8, 16), input_transform=True, feature_transform=True, tnet_scale=0.125)
    x = _cloud(3, 50)
    out = m(x, return_point_features=True)
    assert out.global_feature.shape == (3, 32) and out["global"] is out.global_feature
    assert out.point_features.shape == (3, 50, 32)
    assert out.critical_idx.shape == (3, 32) and out.critical_idx.dtype == torch.long
    assert out.transforms["input"].shape == (3, 3, 3) and out.transforms["feature"].shape == (3, 8, 8)
    # T-Nets start at the identity
    assert torch.allclose(out.transforms["input"], torch.eye(3).expand(3, 3, 3))
    g = E.PointNet(feat_dim=32, hidden=(8,), out_dim=7)(x)
    assert g.global_feature.shape == (3, 7) and g.pooled.shape == (3, 32)


def test_pointnet2_and_dgcnn_shapes():
    x = _cloud(2, 64)
    out = _small_pn2()(x, return_point_features=True)
    assert out.global_feature.shape == (2, 32)
    assert out.point_features.shape == (2, 4, 16)  # features of the last sampled centres
    assert [lv["xyz"].shape[1] for lv in out.levels] == [16, 4, 1]
    assert out.levels[0]["group_idx"].shape == (2, 16, 64)
    d = _small_dgcnn()(x, return_point_features=True)
    assert d.global_feature.shape == (2, 32) and d.point_features.shape == (2, 64, 32)
    assert len(d.levels) == 3 and d.levels[0]["knn_idx"].shape == (2, 64, 5)
    d2 = _small_dgcnn(pool="max+mean", out_dim=5)(x)
    assert d2.pooled.shape == (2, 64) and d2.global_feature.shape == (2, 5)


@pytest.mark.parametrize("bad,err", [
    (np.zeros((2, 10, 3), np.float32), TypeError),
    (torch.zeros(10, 3), ValueError),
    (torch.zeros(2, 10, 4), ValueError),
    (torch.zeros(2, 0, 3), ValueError),
    (torch.zeros(2, 10, 3, dtype=torch.long), TypeError),
])
def test_bad_input_raises(bad, err):
    for m in (E.PointNet(feat_dim=8, hidden=(4,)), _small_pn2(), _small_dgcnn()):
        with pytest.raises(err):
            m(bad)


# ---------------------------------------------------------------------------
# Permutation invariance (eval mode, non-trivial BatchNorm statistics)
# ---------------------------------------------------------------------------
def test_pointnet_permutation_invariance():
    x = _cloud(2, 100, seed=1)
    m = _warm_bn(E.PointNet(feat_dim=64, hidden=(16, 32), input_transform=True, feature_transform=True,
                            tnet_scale=0.0625), x)
    perm = torch.randperm(100, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = m(x).global_feature, m(x[:, perm]).global_feature
    assert (a - b).abs().max() < 1e-5
    # ... whereas the concatenation of per-point features (no symmetric g) is not invariant
    with torch.no_grad():
        fa, _ = m.point_features(x)
        fb, _ = m.point_features(x[:, perm])
    assert (fa.flatten(1) - fb.flatten(1)).abs().max() > 1e-2


def test_pointnet2_permutation_invariance_with_fixed_fps_start():
    # n_samples >= N: every ball keeps all of its points, whatever their order
    x = _cloud(2, 64, seed=2)
    m = _warm_bn(_small_pn2(), x)
    g = torch.Generator().manual_seed(4)
    perm = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(63, generator=g)])  # keep the start
    with torch.no_grad():
        a, b = m(x).global_feature, m(x[:, perm]).global_feature
    assert (a - b).abs().max() < 1e-5


def test_pointnet2_default_is_permutation_invariant():
    # any permutation (the first point moves too): FPS starts at the point farthest from the
    # centroid and the groups are the nearest points in each ball (balls hold more than k here)
    x = _cloud(2, 300, seed=21)
    torch.manual_seed(0)
    m = _warm_bn(E.PointNet2(levels=((32, 0.4, 8, (8, 16)), (8, 0.8, 8, (16, 16))), global_mlp=(16, 32)), x)
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(22))
    assert perm[0] != 0
    with torch.no_grad():
        a, b = m(x), m(x[:, perm])
    assert (a.global_feature - b.global_feature).abs().max() < 1e-5
    # the same centers, as points: the permuted run picked perm-relabelled indices
    assert torch.equal(perm[b.levels[0]["center_idx"]], a.levels[0]["center_idx"])
    with torch.no_grad():  # the reference behaviour (start at index 0) is not
        c = m(x[:, perm], fps_start=0)
    assert not torch.equal(perm[c.levels[0]["center_idx"]], a.levels[0]["center_idx"])
    m.fps_start = 0  # the constructor's / attribute's default is used when forward gets none
    with torch.no_grad():
        assert torch.equal(m(x[:, perm]).levels[0]["center_idx"], c.levels[0]["center_idx"])
    with pytest.raises(ValueError, match="fps_start"):
        E.PointNet2(fps_start="middle")


def test_pointnet2_grouping_and_order():
    # balls hold more than n_samples points: the paper's ball query keeps the first ones in index
    # order (order dependent); knn_in_ball keeps the nearest ones (order independent)
    x = _cloud(2, 200, seed=13)
    g = torch.Generator().manual_seed(14)
    perm = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(199, generator=g)])
    errs = {}
    for grouping in ("ball_query", "knn_in_ball", "ball_hashed"):
        torch.manual_seed(0)
        m = E.PointNet2(levels=((16, 0.5, 8, (8, 16)),), global_mlp=(16, 32), grouping=grouping)
        m = _warm_bn(m, x)
        with torch.no_grad():
            errs[grouping] = (m(x).global_feature - m(x[:, perm]).global_feature).abs().max().item()
            out = m(x)
        d2 = ((x[:, :, None] - out.levels[0]["xyz"][:, None]) ** 2).sum(-1)  # (B, N, M)
        members = out.levels[0]["group_idx"]
        for b in range(2):
            for c in range(16):
                inside = d2[b, :, c] <= 0.25
                assert inside[members[b, c]].all()
                if grouping == "knn_in_ball" and inside.sum() >= 8:
                    nearest = d2[b, :, c].topk(8, largest=False).indices
                    assert set(members[b, c].tolist()) == set(nearest.tolist())
    assert errs["knn_in_ball"] < 1e-5
    assert errs["ball_hashed"] < 1e-5
    assert errs["ball_query"] > 1e-4


def test_default_grouping_keeps_the_radius_scale():
    # crowded balls (far more points than n_samples): knn_in_ball's kept points huddle near the centre,
    # while the default hashed ball query spreads over the whole ball like the reference's random subset
    x = _cloud(1, 2000, seed=21)
    spread = {}
    for grouping in ("ball_hashed", "knn_in_ball", "ball_query"):
        m = E.PointNet2(levels=((16, 0.4, 8, (8,)),), global_mlp=(8,), grouping=grouping).eval()
        with torch.no_grad():
            out = m(x)
        lv = out.levels[0]
        members = x[0][lv["group_idx"][0]]  # (16, 8, 3)
        spread[grouping] = (members - lv["xyz"][0][:, None]).norm(dim=-1).mean().item()
    assert spread["knn_in_ball"] < 0.6 * spread["ball_hashed"]
    assert abs(spread["ball_hashed"] - spread["ball_query"]) < 0.25 * spread["ball_query"]
    assert E.PointNet2().sa[0].grouping == "ball_hashed"


@pytest.mark.parametrize("after_max", [False, True])
def test_dgcnn_permutation_invariance(after_max):
    x = _cloud(2, 80, seed=5)
    m = _warm_bn(_small_dgcnn(norm_after_max=after_max), x)
    perm = torch.randperm(80, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        a, b = m(x).global_feature, m(x[:, perm]).global_feature
    assert (a - b).abs().max() < 1e-5


# ---------------------------------------------------------------------------
# T-Net regulariser, critical points
# ---------------------------------------------------------------------------
def test_orthogonality_regularizer_matches_formula():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 5, 5))
    expected = np.mean([sum((float(i == j) - sum(A[b, i, t] * A[b, j, t] for t in range(5))) ** 2
                            for i in range(5) for j in range(5)) for b in range(4)])
    got = E.orthogonality_regularizer(torch.tensor(A))
    assert abs(got.item() - expected) < 1e-9 * max(1.0, expected)
    Q = torch.tensor(np.stack([ortho_group.rvs(6, random_state=s) for s in range(3)]))
    assert E.orthogonality_regularizer(Q).item() < 1e-20
    with pytest.raises(ValueError):
        E.orthogonality_regularizer(torch.zeros(2, 3, 4))


def test_critical_points_reproduce_global_feature():
    x = _cloud(2, 200, seed=7)
    m = _warm_bn(E.PointNet(feat_dim=48, hidden=(16, 32)), x)
    with torch.no_grad():
        out = m(x, return_point_features=True)
        for b in range(2):
            crit = out.critical_idx[b].unique()
            assert len(crit) < 200
            sub = m(x[b: b + 1, crit]).pooled[0]
            assert (sub - out.pooled[b]).abs().max() < 1e-5
            # the critical index is where the max is reached
            won = out.point_features[b].gather(0, out.critical_idx[b][None]).squeeze(0)
            assert torch.equal(won, out.pooled[b])
            # dropping all critical points changes the feature
            keep = torch.ones(200, dtype=torch.bool)
            keep[crit] = False
            rest = m(x[b: b + 1, keep]).pooled[0]
            assert (rest - out.pooled[b]).abs().max() > 1e-3


@pytest.mark.parametrize("pool", E.POINTNET_POOLS)
def test_pointnet_pool_is_the_named_symmetric_function(pool):
    """``pool=`` (lecture 02's exercise 1) pools h(x_i) by max, mean or sum: checked against h itself, permutation
    invariant; only the max names winning points."""
    x = _cloud(2, 50, seed=11)
    m = _warm_bn(E.PointNet(feat_dim=24, hidden=(8, 16), pool=pool), x)
    with torch.no_grad():
        out = m(x, return_point_features=True)
        h = out.point_features
        want = {"max": h.max(dim=1).values, "mean": h.mean(dim=1), "sum": h.sum(dim=1)}[pool]
        assert torch.allclose(out.pooled, want, atol=1e-6)
        perm = torch.randperm(50, generator=torch.Generator().manual_seed(0))
        assert torch.allclose(m(x[:, perm]).pooled, out.pooled, atol=1e-5)
        if pool == "max":
            assert out.critical_idx is not None and out.critical_idx.shape == (2, 24)
        else:
            assert out.critical_idx is None
        # a repeated cloud: max and mean stay, the sum doubles
        twice = m(torch.cat([x, x], dim=1)).pooled
    assert torch.allclose(twice, out.pooled * (2.0 if pool == "sum" else 1.0), atol=1e-4)


def test_pointnet_pool_rejects_unknown_names():
    with pytest.raises(ValueError, match="pool must be one of"):
        E.PointNet(feat_dim=8, hidden=(4,), pool="median")


# ---------------------------------------------------------------------------
# EdgeConv and DGCNN against brute-force loops
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("after_max", [False, True])
def test_edgeconv_matches_brute_force_loop(after_max):
    torch.manual_seed(0)
    B, N, C, Co, k = 2, 7, 3, 4, 3
    x = torch.randn(B, N, C, dtype=torch.float64)
    conv = E.EdgeConv(C, Co, k, norm_after_max=after_max).double()
    with torch.no_grad():
        conv.bn.running_mean.uniform_(-0.5, 0.5)
        conv.bn.running_var.uniform_(0.5, 2.0)
        conv.bn.weight.uniform_(-1.5, 1.5)
        conv.bn.bias.uniform_(-0.5, 0.5)
    conv.eval()
    with torch.no_grad():
        out, idx = conv(x)
    W = conv.linear.weight.detach().numpy()
    bn = conv.bn
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()
    xn = x.numpy()
    for b in range(B):
        tree = cKDTree(xn[b])
        _, nn_idx = tree.query(xn[b], k=k)
        for i in range(N):
            assert set(idx[b, i].tolist()) == set(nn_idx[i].tolist())
            def bn_act(e):
                e = (e - bn.running_mean.numpy()) * scale + bn.bias.detach().numpy()
                return np.where(e > 0, e, 0.2 * e)

            best = np.full(Co, -np.inf)
            for j in nn_idx[i]:
                e = W @ np.concatenate([xn[b, j] - xn[b, i], xn[b, i]])
                best = np.maximum(best, e if after_max else bn_act(e))
            np.testing.assert_allclose(out[b, i].numpy(), bn_act(best) if after_max else best, atol=1e-10)


def test_dgcnn_recomputes_knn_in_feature_space():
    x = _cloud(1, 40, seed=8)
    m = _warm_bn(_small_dgcnn(), x)
    with torch.no_grad():
        out = m(x)
        f0, _ = m.convs[0](x)
    xyz_nn = cKDTree(x[0].numpy()).query(x[0].numpy(), k=5)[1]
    feat_nn = cKDTree(f0[0].numpy()).query(f0[0].numpy(), k=5)[1]
    lvl0, lvl1 = out.levels[0]["knn_idx"][0], out.levels[1]["knn_idx"][0]
    assert all(set(lvl0[i].tolist()) == set(xyz_nn[i].tolist()) for i in range(40))
    assert all(set(lvl1[i].tolist()) == set(feat_nn[i].tolist()) for i in range(40))
    assert any(set(xyz_nn[i].tolist()) != set(feat_nn[i].tolist()) for i in range(40))


# ---------------------------------------------------------------------------
# PointNet++ set abstraction
# ---------------------------------------------------------------------------
def test_set_abstraction_groups_balls_in_local_coordinates():
    x = _cloud(2, 64, seed=9).double()
    m = _warm_bn(_small_pn2().double(), x)
    with torch.no_grad():
        out = m(x)
        shifted = m(x + torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64))
    lv = out.levels[0]
    xn = x.numpy()
    for b in range(2):
        centres = lv["xyz"][b].numpy()
        np.testing.assert_allclose(centres, xn[b, lv["center_idx"][b].numpy()])
        # FPS: each new centre is the point farthest from the previous ones
        for i in range(1, len(centres)):
            d = np.min(((xn[b][:, None] - centres[None, :i]) ** 2).sum(-1), axis=1)
            assert np.isclose(d[lv["center_idx"][b, i]], d.max())
        # ball query: members are within the radius, and (k >= N) every point in the ball is a member
        for c in range(len(centres)):
            members = set(lv["group_idx"][b, c].tolist())
            inside = set(np.nonzero(((xn[b] - centres[c]) ** 2).sum(-1) <= 0.5**2)[0].tolist())
            assert members == inside
    # local coordinates: the features of the sampled levels ignore a translation ...
    for a, s in zip(out.levels[:2], shifted.levels[:2]):
        assert torch.equal(a["center_idx"], s["center_idx"])
    # ... the global feature (group all uses global coordinates) does not
    assert (out.global_feature - shifted.global_feature).abs().max() > 1e-3


def test_set_abstraction_level_features_translation_invariant():
    x = _cloud(1, 64, seed=10)
    sa = E.SetAbstraction(16, 0.5, 64, 0, (8, 8)).eval()
    with torch.no_grad():
        _, f1, _ = sa(x, None)
        _, f2, _ = sa(x + torch.tensor([0.5, 0.0, -0.25]), None)
    assert (f1 - f2).abs().max() < 1e-5


# ---------------------------------------------------------------------------
# Receptive fields
# ---------------------------------------------------------------------------
def test_receptive_fields():
    x = _cloud(1, 60, seed=11)
    d = _small_dgcnn()
    d.eval()
    with torch.no_grad():
        out = d(x)
    masks = E.receptive_fields(out, 3)
    assert len(masks) == 3
    knn0 = set(cKDTree(x[0].numpy()).query(x[0, 3].numpy(), k=5)[1].tolist())
    assert set(torch.nonzero(masks[0]).flatten().tolist()) == knn0
    assert all((m1 & ~m2).sum() == 0 for m1, m2 in zip(masks[:-1], masks[1:]))  # growing
    p = _small_pn2()
    p.eval()
    with torch.no_grad():
        out2 = p(x)
    m2 = E.receptive_fields(out2, 3)
    assert len(m2) == 3 and m2[-1].all()
    assert 0 < m2[0].sum() <= 60
    assert E.receptive_fields(E.PointNet(feat_dim=8, hidden=(4,)).eval()(x), 0) == []
    with pytest.raises(ValueError):
        E.receptive_fields(out, 60)


# ---------------------------------------------------------------------------
# ResNet
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("in_channels", [3, 4])
def test_resnet_output_shapes(in_channels):
    m = E.ResNetEncoder(in_channels=in_channels, width=8, out_dim=16)
    out = m(torch.randn(2, in_channels, 32, 32), return_feature_maps=True)
    assert out.global_feature.shape == (2, 16) and out.pooled.shape == (2, 64)
    assert [tuple(lv["features"].shape[1:]) for lv in out.levels] == [(8, 32, 32), (16, 16, 16),
                                                                       (32, 8, 8), (64, 4, 4)]
    with pytest.raises(ValueError):
        m(torch.randn(2, 7 - in_channels, 32, 32))


def test_rgbd_input():
    rgb, depth = torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8) * 3
    depth[0, 0, 0] = float("inf")
    x = E.rgbd_input(rgb, depth, depth_scale=3.0)
    assert x.shape == (2, 4, 8, 8) and torch.equal(x[:, :3], rgb)
    assert x[0, 3, 0, 0] == 0 and torch.allclose(x[1, 3], depth[1] / 3)
    assert E.rgbd_input(rgb[0], depth[1]).shape == (4, 8, 8)
    with pytest.raises(ValueError):
        E.rgbd_input(rgb, depth[:, :4])


@pytest.mark.parametrize("layers,expected", [((2, 2, 2, 2), 11_689_512), ((3, 4, 6, 3), 21_797_672)])
def test_resnet_parameter_count_matches_torchvision(layers, expected):
    # torchvision's published counts for resnet18 / resnet34 (1000 classes, ImageNet stem)
    m = E.ResNetEncoder(3, layers, 64, out_dim=1000, stem="imagenet")
    assert sum(p.numel() for p in m.parameters()) == expected


def test_resnet_skip_connections():
    m = E.ResNetEncoder(3, (2, 2), width=8, zero_init_residual=True).eval()
    x = torch.relu(torch.randn(2, 8, 16, 16))
    block = m.stages[0][1]  # identity skip: with F = 0 the block is the identity on x >= 0
    with torch.no_grad():
        assert torch.allclose(block(x), x)
        down = m.stages[1][0]  # projection skip
        assert torch.allclose(down(x), torch.relu(down.skip(x)))
    # without zero init the residual branch is active
    m2 = E.ResNetEncoder(3, (2, 2), width=8).eval()
    with torch.no_grad():
        assert (m2.stages[0][1](x) - x).abs().max() > 1e-3


# ---------------------------------------------------------------------------
# Gradients reach every parameter
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: E.PointNetClassifier(E.PointNet(feat_dim=16, hidden=(8, 8), input_transform=True,
                                            feature_transform=True, tnet_scale=0.125, out_dim=12), 4,
                                 hidden=(8,), dropout=0.0),
    lambda: E.PointNet2Classifier(_small_pn2(out_dim=8), 4, hidden=(8,), dropout=0.0),
    lambda: E.DGCNNClassifier(_small_dgcnn(out_dim=8), 4, hidden=(8,), dropout=0.0),
    lambda: E.DGCNNClassifier(_small_dgcnn(out_dim=8, norm_after_max=True), 4, hidden=(8,), dropout=0.0),
])
def test_gradient_reaches_all_parameters(make):
    torch.manual_seed(0)
    model = make()
    for m in model.modules():  # the T-Nets start at exactly I (zero last layer): leave that point
        if isinstance(m, E.TNet):
            torch.nn.init.normal_(m.out.weight, std=0.01)
    x = _cloud(4, 64, seed=12)
    logits, out = model.forward_with_output(x)
    assert logits.shape == (4, 4)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3]))
    for a in out.transforms.values():
        loss = loss + E.orthogonality_regularizer(a)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


def test_resnet_gradient_reaches_all_parameters():
    m = E.ResNetEncoder(4, (1, 1), width=4, out_dim=3)
    m(torch.randn(2, 4, 16, 16)).global_feature.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_encoders_run_on_cuda():
    x = _cloud(2, 64).cuda()
    for m in (E.PointNet(feat_dim=8, hidden=(4,)), _small_pn2(), _small_dgcnn()):
        out = m.cuda()(x)
        assert out.global_feature.is_cuda


def test_dgcnn_knn_ranks_near_ties_exactly_in_either_order():
    """Far from the origin, float32's |a|^2 + |b|^2 - 2 a.b cannot tell two candidates 1e-4 apart; DGCNN's kNN
    computes in float64, so the nearer one wins whatever the order of the points (permutation invariance)."""
    from course_lib.models import encoders as ME

    c = torch.tensor([100.0, -80.0, 60.0])
    q = c.clone()
    near = c + torch.tensor([1.0, 0.0, 0.0])
    far = c + torch.tensor([0.0, 1.0001, 0.0])  # 1e-4 farther: survives float32 storage, not its mm-path rounding
    others = c + 50 + torch.arange(12.0)[:, None] * torch.tensor([1.0, 2.0, 3.0])
    for order in ((q, near, far), (q, far, near), (far, q, near), (near, far, q)):
        pts = torch.stack([*order, *others])[None].float()
        idx = ME._knn_idx(pts, 2)[0]
        qi = next(i for i, p in enumerate(order) if p is q)
        ni = next(i for i, p in enumerate(order) if p is near)
        assert set(idx[qi].tolist()) == {qi, ni}
