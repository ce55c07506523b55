"""Chapter 08 primitives: rotations, inside-outside functions, surface sampling, the expected loss two ways.

References are independent: scipy rotations, analytic shapes (sphere, ellipsoid, octahedron, cube),
an itertools enumeration of the 2^M configurations, autograd of that enumeration, and trimesh
area-weighted samples of a marching-cubes mesh for the uniformity of the surface samples.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from course_lib.models import primitives as P

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _near_one(x, tol):
    return bool((x - 1).abs().max() < tol)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- rotations ---------------------------------------------------------------------------------
def test_quaternion_matches_scipy():
    from scipy.spatial.transform import Rotation

    q = P.random_quaternions((20,), gen(), dtype=torch.float64)
    r = P.quaternion_to_matrix(q)
    ref = Rotation.from_quat(q[:, [1, 2, 3, 0]].numpy()).as_matrix()  # scipy: (x, y, z, w)
    assert np.allclose(r.numpy(), ref, atol=1e-12)
    # unnormalised input is normalised
    assert torch.allclose(P.quaternion_to_matrix(3.0 * q), r, atol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        P.quaternion_to_matrix(torch.zeros(3, 3))


def _prims(b=2, m=3, kind="superquadric", seed=0, dtype=torch.float64):
    g = gen(seed)
    return P.Primitives(size=0.1 + 0.4 * torch.rand(b, m, 3, generator=g, dtype=dtype),
                        eps=0.3 + torch.rand(b, m, 2, generator=g, dtype=dtype),
                        rotation=P.random_quaternions((b, m), g, dtype=dtype),
                        translation=0.5 * torch.randn(b, m, 3, generator=g, dtype=dtype),
                        prob=torch.rand(b, m, generator=g, dtype=dtype), kind=kind)


def test_local_world_roundtrip_and_rigid_motion():
    prims = _prims()
    pts = torch.randn(2, 7, 3, generator=gen(1), dtype=torch.float64)
    local = prims.to_local(pts)                                   # (B, M, N, 3)
    back = prims.to_world(local)
    assert torch.allclose(back, pts[:, None].expand_as(back), atol=1e-12)
    # a rigid motion keeps distances to the centre
    d_world = (pts[:, None] - prims.translation[:, :, None]).norm(dim=-1)
    assert torch.allclose(local.norm(dim=-1), d_world, atol=1e-12)


# --- inside-outside -----------------------------------------------------------------------------
def test_sphere_and_ellipsoid_are_quadratic():
    p = torch.randn(100, 3, generator=gen(), dtype=torch.float64)
    a = torch.tensor([0.7, 0.7, 0.7], dtype=torch.float64)
    one = torch.ones(2, dtype=torch.float64)
    f = P.superquadric_inside_outside(p, a, one)
    assert torch.allclose(f, (p ** 2).sum(-1) / 0.49, rtol=1e-9)
    a = torch.tensor([1.0, 0.5, 0.2], dtype=torch.float64)
    f = P.superquadric_inside_outside(p, a, one)
    assert torch.allclose(f, ((p / a) ** 2).sum(-1), rtol=1e-9)


def test_octahedron_and_homogeneity():
    p = torch.randn(100, 3, generator=gen(2), dtype=torch.float64)
    two = torch.full((2,), 2.0, dtype=torch.float64)
    f = P.superquadric_inside_outside(p, torch.ones(3, dtype=torch.float64), two)
    assert torch.allclose(f, p.abs().sum(-1), rtol=1e-9)
    eps = torch.tensor([0.6, 1.3], dtype=torch.float64)
    a = torch.tensor([0.4, 0.8, 0.3], dtype=torch.float64)
    f1 = P.superquadric_inside_outside(p, a, eps)
    f2 = P.superquadric_inside_outside(2.5 * p, a, eps)
    assert torch.allclose(f2, 2.5 ** (2 / 0.6) * f1, rtol=1e-8)


def test_cube_limit():
    p = 2 * torch.rand(200, 3, generator=gen(3), dtype=torch.float64) - 1
    a = torch.tensor([0.9, 0.5, 0.3], dtype=torch.float64)
    box = P.cuboid_inside_outside(p, a)
    assert torch.allclose(box, ((p / a) ** 2).amax(-1))
    errs = []
    for e in (0.2, 0.1, 0.05):  # (F is clamped at exp(60): smaller e would saturate at |p / a| ~ 3)
        f = P.superquadric_inside_outside(p, a, torch.full((2,), e, dtype=torch.float64))
        errs.append(float((f ** e / box - 1).abs().max()))
    assert errs[0] > errs[1] > errs[2] and errs[2] < 0.1, errs
    # inside/outside agree with the box away from its surface
    f = P.superquadric_inside_outside(p, a, torch.full((2,), 0.02, dtype=torch.float64))
    far = (box - 1).abs() > 0.1
    assert bool(((f < 1) == (box < 1))[far].all())


def test_angle_parametrisation_lies_on_the_surface_and_small_eps_does_not_overflow():
    eta = torch.linspace(-1.5, 1.5, 31, dtype=torch.float64)
    om = torch.linspace(-3.1, 3.1, 31, dtype=torch.float64)
    ee, oo = torch.meshgrid(eta, om, indexing="ij")
    a = torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64)
    for eps in ((1.0, 1.0), (0.4, 1.5), (1.2, 0.3)):
        e = torch.tensor(eps, dtype=torch.float64)
        x = P.superquadric_angle_points(ee, oo, a, e)
        assert _near_one(P.superquadric_inside_outside(x, a, e), 1e-8)
    f = P.superquadric_inside_outside(torch.full((1, 3), 10.0), torch.full((3,), 0.05), torch.full((2,), 0.1))
    assert torch.isfinite(f).all() and f.item() > 1e20
    g = torch.full((3,), 0.05, requires_grad=True)
    P.superquadric_inside_outside(torch.tensor([[0.01, -0.02, 0.0]]), g, torch.full((2,), 0.1)).sum().backward()
    assert torch.isfinite(g.grad).all()


def test_inside_outside_errors():
    with pytest.raises(ValueError, match="positive"):
        P.superquadric_inside_outside(torch.zeros(3), torch.zeros(3), torch.ones(2))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        P.superquadric_inside_outside(torch.zeros(3), torch.ones(3), torch.ones(3))
    with pytest.raises(TypeError, match="floating"):
        P.superquadric_inside_outside(torch.zeros(3, dtype=torch.long), torch.ones(3), torch.ones(2))


def test_primitives_contains_a_placed_sphere():
    b, m = 1, 2
    q = torch.tensor([[[0.9, 0.1, -0.3, 0.2], [1.0, 0, 0, 0]]], dtype=torch.float64)
    prims = P.Primitives(size=torch.tensor([[[0.3] * 3, [0.2, 0.4, 0.1]]], dtype=torch.float64),
                         eps=torch.ones(b, m, 2, dtype=torch.float64), rotation=q,
                         translation=torch.tensor([[[0.2, 0.0, -0.1], [-0.5, 0.3, 0.0]]], dtype=torch.float64),
                         prob=torch.full((b, m), 0.5, dtype=torch.float64))
    pts = torch.randn(1, 500, 3, generator=gen(4), dtype=torch.float64) * 0.5
    inside = prims.contains(pts)
    ref0 = (pts[0] - torch.tensor([0.2, 0.0, -0.1], dtype=torch.float64)).norm(dim=-1) < 0.3
    ref1 = (((pts[0] - torch.tensor([-0.5, 0.3, 0.0], dtype=torch.float64)) / torch.tensor(
        [0.2, 0.4, 0.1], dtype=torch.float64)) ** 2).sum(-1) < 1
    assert torch.equal(inside[0, 0], ref0) and torch.equal(inside[0, 1], ref1)
    with pytest.raises(ValueError, match="points must be"):
        prims.contains(torch.zeros(2, 5, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="kind"):
        P.Primitives(prims.size, prims.eps, prims.rotation, prims.translation, prims.prob, kind="cone")
    with pytest.raises(ValueError, match="size must be"):
        P.Primitives(prims.size[:, :1], prims.eps, prims.rotation, prims.translation, prims.prob)


# --- surface samples ---------------------------------------------------------------------------
def _bins(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """24 regions: octant x dominant axis of the normalised point."""
    u = x / a
    octant = (u > 0).astype(int) @ np.array([1, 2, 4])
    return octant * 3 + np.abs(u).argmax(1)


def _reference_fractions(a, eps, n=200_000):
    """Area fractions per bin from trimesh samples of a marching-cubes mesh of the superquadric."""
    import trimesh
    from skimage.measure import marching_cubes

    r = 72
    t = np.linspace(-1.1, 1.1, r)
    grid = torch.tensor(np.stack(np.meshgrid(t * a[0], t * a[1], t * a[2], indexing="ij"), -1))
    f = P.superquadric_inside_outside(grid, torch.tensor(a), torch.tensor(eps)).numpy()
    verts, faces, _, _ = marching_cubes(np.log(f), 0.0, spacing=tuple(2.2 * ai / (r - 1) for ai in a))
    verts = verts - 1.1 * np.asarray(a)
    pts, _ = trimesh.sample.sample_surface(trimesh.Trimesh(verts, faces), n, seed=0)
    return np.bincount(_bins(pts, np.asarray(a)), minlength=24) / n


@pytest.mark.parametrize("a,eps", [((1.0, 0.6, 0.3), (1.0, 1.0)), ((0.8, 0.5, 0.4), (0.2, 0.3)),
                                   ((0.5, 0.5, 0.9), (1.4, 0.5))])
def test_superquadric_samples_are_area_uniform(a, eps):
    ref = _reference_fractions(a, eps)
    size, e = torch.tensor([a], dtype=torch.float64), torch.tensor([eps], dtype=torch.float64)
    n = 20_000
    x = P.sample_superquadric_surface(size, e, n, generator=gen(5))[0]
    assert _near_one(P.superquadric_inside_outside(x, size[0], e[0]), 1e-6)
    got = np.bincount(_bins(x.numpy(), np.asarray(a)), minlength=24) / n
    tv = 0.5 * np.abs(got - ref).sum()
    assert tv < 0.03, (tv, got, ref)
    # uniform angles are visibly not uniform over the area (the test can fail)
    g = gen(6)
    eta = torch.asin(2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) if eps == (1.0, 1.0) else \
        (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * math.pi
    om = (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) * math.pi
    if eps != (1.0, 1.0):
        y = P.superquadric_angle_points(eta, om, size[0], e[0]).numpy()
        tv_angles = 0.5 * np.abs(np.bincount(_bins(y, np.asarray(a)), minlength=24) / n - ref).sum()
        assert tv_angles > 3 * tv and tv_angles > 0.05, (tv_angles, tv)


def test_samples_are_differentiable_and_batched():
    size = torch.full((2, 3, 3), 0.4, requires_grad=True)
    eps = torch.full((2, 3, 2), 0.8, requires_grad=True)
    x = P.sample_superquadric_surface(size, eps, 50, generator=gen())
    assert x.shape == (2, 3, 50, 3)
    x.square().sum().backward()
    assert size.grad.abs().sum() > 0 and eps.grad.abs().sum() > 0
    c = P.sample_cuboid_surface(size, 40, generator=gen())
    assert c.shape == (2, 3, 40, 3)
    assert _near_one(P.cuboid_inside_outside(c, size[..., None, :]), 1e-6)


def test_cuboid_samples_follow_face_areas():
    a = torch.tensor([[1.0, 0.5, 0.25]])
    x = P.sample_cuboid_surface(a, 30_000, generator=gen(7))[0]
    ax = (x / a).abs().argmax(-1)
    frac = torch.bincount(ax, minlength=3).double() / len(ax)
    area = torch.tensor([0.5 * 0.25, 0.25, 0.5], dtype=torch.float64)
    assert torch.allclose(frac, area / area.sum(), atol=0.01)
    # uniform within a face: mean and second moment of a uniform on [-a, a]
    face = x[ax == 2][:, :2]
    assert torch.allclose(face.mean(0), torch.zeros(2), atol=0.02)
    assert torch.allclose((face ** 2).mean(0), a[0, :2] ** 2 / 3, rtol=0.05)


# --- expectation over existence ------------------------------------------------------------------
def _itertools_expectation(d, p, empty):
    """Independent reference: a Python loop over the 2^M configurations (float64)."""
    m = len(d)
    total = 0.0
    for z in itertools.product((0, 1), repeat=m):
        prob = 1.0
        for zm, pm in zip(z, p):
            prob *= pm if zm else 1 - pm
        on = [dm for zm, dm in zip(z, d) if zm]
        total += prob * (min(on) if on else empty)
    return total


def test_enumeration_matches_itertools():
    g = gen(8)
    d, p = torch.rand(6, dtype=torch.float64, generator=g), torch.rand(6, dtype=torch.float64, generator=g)
    ref = _itertools_expectation(d.tolist(), p.tolist(), 3.0)
    assert abs(float(P.expected_min_distance_enumerate(d, p, empty=3.0)) - ref) < 1e-12


@pytest.mark.parametrize("m", [1, 2, 3, 5, 8, 12])
def test_reordering_trick_equals_enumeration(m):
    g = gen(m)
    d = torch.rand(4, 3, m, dtype=torch.float64, generator=g)
    p = torch.rand(4, 3, m, dtype=torch.float64, generator=g)
    for empty in (0.0, 2.5):
        exact = P.expected_min_distance(d, p, empty=empty)
        brute = P.expected_min_distance_enumerate(d, p, empty=empty)
        assert exact.shape == (4, 3)
        assert torch.allclose(exact, brute, atol=1e-6, rtol=0)
        assert torch.allclose(exact, brute, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("m", [2, 4, 7, 12])
def test_reordering_gradient_equals_enumeration_autograd(m):
    g = gen(100 + m)
    d0 = torch.rand(3, m, dtype=torch.float64, generator=g)
    p0 = torch.rand(3, m, dtype=torch.float64, generator=g)
    w = torch.randn(3, dtype=torch.float64, generator=g)
    grads = []
    for fn in (P.expected_min_distance, P.expected_min_distance_enumerate):
        d, p = d0.clone().requires_grad_(), p0.clone().requires_grad_()
        (fn(d, p, empty=1.5) * w).sum().backward()
        grads.append((d.grad, p.grad))
    assert torch.allclose(grads[0][0], grads[1][0], atol=1e-9)
    assert torch.allclose(grads[0][1], grads[1][1], atol=1e-9)
    if m <= 4:
        assert torch.autograd.gradcheck(lambda d, p: P.expected_min_distance(d, p, empty=0.7),
                                        (d0.clone().requires_grad_(), p0.clone().requires_grad_()))


def test_reordering_edge_cases():
    d = torch.tensor([0.3, 0.3, 0.1, 0.9], dtype=torch.float64)  # ties
    for p in (torch.tensor([0.0, 1.0, 0.0, 1.0]), torch.tensor([1.0, 1.0, 1.0, 1.0]),
              torch.tensor([0.0, 0.0, 0.0, 0.0]), torch.tensor([0.2, 0.7, 0.5, 0.1])):
        p = p.double().requires_grad_()
        e = P.expected_min_distance(d, p, empty=5.0)
        assert torch.allclose(e, P.expected_min_distance_enumerate(d, p.detach(), empty=5.0))
        e.backward()
        assert torch.isfinite(p.grad).all()
        pe = p.detach().clone().requires_grad_()
        P.expected_min_distance_enumerate(d, pe, empty=5.0).backward()
        assert torch.allclose(p.grad, pe.grad, atol=1e-12)
    # broadcasting prob (M,) against dist (N, M); float32 works
    d = torch.rand(10, 5)
    p = torch.rand(5)
    assert P.expected_min_distance(d, p).shape == (10,)
    with pytest.raises(ValueError, match="disagree"):
        P.expected_min_distance(torch.rand(3, 4), torch.rand(3, 5))
    with pytest.raises(TypeError):
        P.expected_min_distance(torch.rand(3, 4).tolist(), torch.rand(3, 4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        P.expected_min_distance(torch.rand(3, 4), torch.randn(3, 4) * 3)


# --- REINFORCE ---------------------------------------------------------------------------------
def _toy_f(d):
    def f(z):  # min over existing of d, 2.0 if none, plus 0.1 per primitive
        masked = torch.where(z > 0.5, d, torch.full_like(z, math.inf)).amin(-1)
        return torch.where(torch.isinf(masked), torch.full_like(masked, 2.0), masked) + 0.1 * z.sum(-1)
    return f


def test_reinforce_is_unbiased_within_its_standard_error():
    g = gen(9)
    m = 5
    d = torch.rand(m, dtype=torch.float64, generator=g)
    p = (0.2 + 0.6 * torch.rand(m, dtype=torch.float64, generator=g)).requires_grad_()
    exact_val = P.expected_min_distance(d, p, empty=2.0) + 0.1 * p.sum()
    (exact,) = torch.autograd.grad(exact_val, p)
    f = _toy_f(d)
    reps, k = 400, 16
    for baseline in (0.0, float(exact_val.detach())):
        est = torch.stack([P.reinforce_gradient(f, p.detach(), k, baseline=baseline, generator=g)
                           for _ in range(reps)])
        se = est.std(0) / math.sqrt(reps)
        z = (est.mean(0) - exact) / se
        assert z.abs().max() < 4.5, z
        if baseline == 0.0:
            var0 = est.var(0).sum()
        else:
            assert est.var(0).sum() < 0.5 * var0  # a good baseline cuts the variance
    # the estimator is the formula (f - b) * (z / p - (1 - z) / (1 - p))
    g1, g2 = gen(3), gen(3)
    est = P.reinforce_gradient(f, p.detach(), 7, baseline=0.3, generator=g1)
    zz = (torch.rand(7, m, generator=g2, dtype=torch.float64) < p.detach()).double()
    ref = ((f(zz) - 0.3)[:, None] * (zz / p.detach() - (1 - zz) / (1 - p.detach()))).mean(0)
    assert torch.allclose(est, ref)


def test_moving_average_baseline():
    b = P.MovingAverageBaseline(0.9)
    assert b.value == 0.0
    b.update(torch.tensor([2.0, 4.0]))
    assert b.value == pytest.approx(3.0)
    b.update(1.0)
    assert b.value == pytest.approx(0.9 * 3.0 + 0.1 * 1.0)
    with pytest.raises(ValueError):
        P.MovingAverageBaseline(1.0)


# --- the losses ---------------------------------------------------------------------------------
def _terms(kind="superquadric", m=4, seed=0):
    prims = _prims(b=2, m=m, kind=kind, seed=seed)
    target = 0.6 * torch.randn(2, 64, 3, generator=gen(seed + 1), dtype=torch.float64)
    return prims, target, P.primitive_terms(prims, target, 32, generator=gen(seed + 2))


@pytest.mark.parametrize("kind", P.KINDS)
def test_expected_loss_equals_average_over_configurations(kind):
    _, _, terms = _terms(kind)
    exact = P.expected_loss(terms, empty=4.0, parsimony=0.05)["loss"]
    brute = P._all_configurations_loss(terms, empty=4.0, parsimony=0.05)
    assert torch.allclose(exact, brute, atol=1e-10)


def test_terms_against_brute_force():
    prims, target, terms = _terms(m=3, seed=4)
    samples = prims.sample_surface(32, gen(6))  # the same generator state as in _terms
    b, m = 2, 3
    for i in range(b):
        for k in range(m):
            d2 = torch.cdist(target[i], samples[i, k]).pow(2).amin(-1)
            inside = prims.contains(target)[i, k]
            d2 = torch.where(inside, torch.zeros_like(d2), d2)
            assert torch.allclose(terms.coverage_dist[i, :, k], d2, atol=1e-10)
            c2 = torch.cdist(samples[i, k], target[i]).pow(2).amin(-1)
            assert torch.allclose(terms.sample_dist[i, k], c2, atol=1e-10)
    assert not terms.sample_inside[:, torch.arange(m), :, torch.arange(m)].any()  # never inside itself


def test_configuration_loss_discards_samples_inside_other_primitives():
    # two unit spheres overlapping; target = the union's surface: consistency of z=(1,1) only counts
    # the samples outside the other sphere
    one = torch.ones(1, 2, 3, dtype=torch.float64)
    prims = P.Primitives(0.5 * one, torch.ones(1, 2, 2, dtype=torch.float64),
                         torch.tensor([[[1.0, 0, 0, 0]] * 2], dtype=torch.float64),
                         torch.tensor([[[-0.25, 0, 0], [0.25, 0, 0]]], dtype=torch.float64),
                         torch.full((1, 2), 0.5, dtype=torch.float64))
    union = P.union_surface_points(P.Primitives(prims.size, prims.eps, prims.rotation, prims.translation,
                                                torch.ones(1, 2, dtype=torch.float64)), 2000, generator=gen())[0]
    terms = P.primitive_terms(prims, union[None], 500, generator=gen(1))
    both = P.configuration_loss(terms, torch.ones(1, 1, 2, dtype=torch.float64))
    assert float(both["consistency"]) < 2e-3 and float(both["coverage"]) < 2e-3
    # the same without discarding: the inner caps are far from the union's surface
    keep_all = P.PrimitiveTerms(terms.coverage_dist, terms.sample_dist, torch.zeros_like(terms.sample_inside),
                                terms.prob)
    naive = P.configuration_loss(keep_all, torch.ones(1, 1, 2, dtype=torch.float64))
    assert float(naive["consistency"]) > 5 * float(both["consistency"])
    # no primitive: coverage is the empty value
    none = P.configuration_loss(terms, torch.zeros(1, 1, 2, dtype=torch.float64), empty=4.0)
    assert float(none["coverage"]) == 4.0 and float(none["consistency"]) == 0.0


def test_reinforce_loss_gradient_is_unbiased_for_the_probabilities():
    _, _, terms = _terms(m=3, seed=7)
    logits = torch.logit(terms.prob.detach()).requires_grad_()

    def with_prob(p):
        return P.PrimitiveTerms(terms.coverage_dist.detach(), terms.sample_dist.detach(), terms.sample_inside, p)

    (exact,) = torch.autograd.grad(P.expected_loss(with_prob(torch.sigmoid(logits)))["loss"].sum(), logits)
    base = P.MovingAverageBaseline(0.9)
    g = gen(11)
    ests = []
    for _ in range(300):
        out = P.reinforce_loss(with_prob(torch.sigmoid(logits)), 8, base, generator=g)
        (gr,) = torch.autograd.grad(out["loss"] * 2, logits)  # the surrogate averages over B = 2 shapes
        ests.append(gr)
    est = torch.stack(ests)
    z = (est.mean(0) - exact) / (est.std(0) / math.sqrt(len(est)))
    assert z.abs().max() < 4.5, z


def test_primitive_net_shapes_ranges_and_gradients():
    from course_lib.models import PointNet

    torch.manual_seed(0)
    for kind in P.KINDS:
        net = P.PrimitiveNet(PointNet(feat_dim=32, hidden=(16,), out_dim=16), 16, 5, kind)
        x = torch.randn(3, 100, 3)
        prims = net(x)
        assert prims.size.shape == (3, 5, 3) and prims.prob.shape == (3, 5) and prims.kind == kind
        assert bool((prims.size > 0.02 - 1e-6).all() and (prims.size < 0.7).all())
        assert bool((prims.eps >= 0.4).all() and (prims.eps <= 1.5).all())
        assert bool((prims.prob > 0.85).all())  # biased towards existing at the start
        terms = P.primitive_terms(prims, x * 0.3, 16, generator=gen())
        P.expected_loss(terms, parsimony=0.01)["loss"].mean().backward()
        assert net.logit.bias.grad.abs().sum() > 0 and net.translation.weight.grad.abs().sum() > 0
        assert net.size.bias.grad.abs().sum() > 0


def test_union_occupancy_and_meshes():
    prims, target, _ = _terms(m=3, seed=12)
    occ = P.union_occupancy(prims, target)
    ref = (prims.contains(target) & (prims.prob > 0.5)[:, :, None]).any(1)
    assert torch.equal(occ, ref)
    meshes = P.primitive_meshes(prims, 0)
    assert len(meshes) == 3 and all(m.metadata["prob"] == pytest.approx(float(prims.prob[0, i]))
                                    for i, m in enumerate(meshes))
    v = torch.as_tensor(meshes[1].vertices)[None]
    f = prims[0].inside_outside(v)[0, 1]
    assert _near_one(f, 1e-6)
    cub = P.primitive_meshes(_prims(kind="cuboid"), 1)
    assert all(m.is_watertight for m in cub)


@pytest.mark.parametrize("eps", [(1.0, 1.0), (0.44, 0.42), (0.1, 1.8)])
def test_primitive_meshes_are_closed(eps):
    """The superquadric mesh has no pinholes at its poles or seam (merged to 1e-6), and for eps = (1, 1)
    it is the ellipsoid: volume 4/3 pi abc."""
    pr = P.Primitives(size=torch.tensor([[[0.45, 0.07, 0.48]]]), eps=torch.tensor([[list(eps)]]),
                      rotation=torch.tensor([[[1.0, 0, 0, 0]]]), translation=torch.zeros(1, 1, 3),
                      prob=torch.ones(1, 1))
    mesh = P.primitive_meshes(pr, 0)[0].copy()
    mesh.merge_vertices(digits_vertex=6)
    mesh.update_faces(mesh.nondegenerate_faces())
    assert mesh.is_watertight
    if eps == (1.0, 1.0):
        assert float(mesh.volume) == pytest.approx(4 / 3 * math.pi * 0.45 * 0.07 * 0.48, rel=0.02)


def test_cuboid_squared_distance_matches_trimesh_outside_and_is_zero_inside():
    import trimesh

    a = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    pts = (torch.rand(400, 3, generator=g, dtype=torch.float64) - 0.5) * 2.4
    d2 = P.cuboid_squared_distance(pts, a)
    inside = (pts.abs() <= a).all(-1)
    assert inside.any() and (~inside).any()
    assert torch.all(d2[inside] == 0)
    box = trimesh.creation.box(extents=(2 * a).numpy())
    _, dist, _ = trimesh.proximity.closest_point(box, pts[~inside].numpy())
    assert np.allclose(d2[~inside].sqrt().numpy(), dist, atol=1e-9)
    # differentiable in the size: d/da_k of (|p_k| - a_k)^2 on the one active axis
    p = torch.tensor([[0.9, 0.0, 0.0]], dtype=torch.float64)
    a_var = a.clone().requires_grad_(True)
    P.cuboid_squared_distance(p, a_var).sum().backward()
    assert torch.allclose(a_var.grad, torch.tensor([-2 * 0.4, 0.0, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="positive"):
        P.cuboid_squared_distance(p, -a)


def test_analytic_coverage_is_exact_and_refuses_superquadrics():
    g = torch.Generator().manual_seed(1)
    b, m = 2, 3
    size = 0.2 + 0.3 * torch.rand(b, m, 3, generator=g)
    prims = P.Primitives(size, torch.ones(b, m, 2), P.random_quaternions((b, m), generator=g),
                         0.3 * torch.randn(b, m, 3, generator=g), torch.full((b, m), 0.5), "cuboid")
    target = torch.randn(b, 50, 3, generator=g)
    t = P.primitive_terms(prims, target, 16, generator=g, coverage="analytic")
    local = prims.to_local(target)                                     # (B, M, N, 3)
    ref = ((local.abs() - size[:, :, None]).clamp_min(0) ** 2).sum(-1).transpose(1, 2)
    assert torch.allclose(t.coverage_dist, ref)
    # a sampled coverage is never below the exact distance to the solid (samples lie on its surface)
    ts = P.primitive_terms(prims, target, 16, generator=torch.Generator().manual_seed(2), coverage="samples")
    assert bool((ts.coverage_dist >= t.coverage_dist - 1e-6).all())
    sq = P.Primitives(size, torch.ones(b, m, 2), prims.rotation, prims.translation, prims.prob, "superquadric")
    with pytest.raises(ValueError, match="closed form"):
        P.primitive_terms(sq, target, 16, coverage="analytic")
    with pytest.raises(ValueError, match="coverage must be one of"):
        P.primitive_terms(prims, target, 16, coverage="exact")
