"""Self-checks of chapter 07 (``labs/07_implicit_fields_lab.ipynb``): clamped L1, near-surface samples,
normals by autograd, test-time latent optimisation.

Introduced in ``lectures/07_implicit_fields.ipynb``.  The references are formulas evaluated on
hand-made inputs whose answer is known (values inside and beyond the clamp, a plane whose
offsets are the noise itself, an ellipsoid whose gradient is analytic, a decoder whose right
code is known).
"""

from __future__ import annotations

import torch
from torch import nn

from ._core import CheckFailed, call_student, expect, expect_close, expect_tensor, self_check

__all__ = ["check_clamped_l1", "check_near_surface_samples", "check_autograd_normals", "check_optimise_latent"]


def _scalar(v, what: str) -> float:
    t = expect_tensor(v, what)
    expect(t.numel() == 1, f"{what} should be a scalar (one number), got shape {tuple(t.shape)}")
    return float(t.detach())


@self_check
def check_clamped_l1(fn) -> str:
    """``fn(pred, sdf, delta=0.1) -> scalar``: ``mean |clamp(pred, -delta, delta) - clamp(sdf, -delta, delta)|``."""
    def call(p, s, **kw):
        return _scalar(call_student(fn, torch.tensor(p, dtype=torch.float64), torch.tensor(s, dtype=torch.float64),
                                   **kw), "clamped_l1(pred, sdf)")

    # inside the band: a plain mean absolute error
    g = torch.Generator().manual_seed(0)
    s = (torch.rand(40, generator=g, dtype=torch.float64) - 0.5) * 0.1
    p = s + (torch.rand(40, generator=g, dtype=torch.float64) - 0.5) * 0.05
    ref = float((p - s).abs().mean())
    got = call(p.tolist(), s.tolist())
    if abs(got - float(((p - s) ** 2).mean())) < 1e-9 and abs(got - ref) > 1e-9:
        raise CheckFailed("inside the band you return the mean SQUARED error: DeepSDF's loss is an L1, |a - b|")
    if abs(got - float((p - s).abs().sum())) < 1e-9:
        raise CheckFailed("you return the SUM over the samples: take the mean, so the loss does not grow with the "
                          "number of samples")
    expect_close(got, ref, "clamped_l1 on values inside [-delta, delta] (a plain mean |pred - sdf|)", atol=1e-9)
    # beyond the band
    both_out = call([0.5], [0.3])       # 0: both clamp to 0.1
    pred_in = call([0.05], [0.3])       # 0.05: the target clamps
    target_in = call([0.5], [0.05])     # 0.05: the prediction clamps
    if both_out > 0.3:
        raise CheckFailed("pred 0.5, sdf 0.3 should cost 0 (both clamp to delta), you give "
                          f"{both_out:.3g}: you clamp the target but not the PREDICTION")
    if both_out > 1e-9 and abs(pred_in - 0.25) < 1e-9 and abs(target_in - 0.45) < 1e-9:
        raise CheckFailed("no clamping at all: clamp both the prediction and the target to [-delta, delta] "
                          "(pred 0.5 vs sdf 0.3 should cost 0)")
    if both_out > 1e-9 and abs(pred_in - 0.25) < 1e-9:
        raise CheckFailed("you clamp the prediction but not the TARGET: pred 0.05 vs sdf 0.3 should cost "
                          "|0.05 - 0.1| = 0.05")
    expect_close(both_out, 0.0, "clamped_l1(0.5, 0.3) (both beyond delta)", atol=1e-9)
    expect_close(pred_in, 0.05, "clamped_l1(0.05, 0.3)", atol=1e-9)
    expect_close(target_in, 0.05, "clamped_l1(0.5, 0.05)", atol=1e-9)
    expect_close(call([-0.5], [0.3]), 0.2, "clamped_l1(-0.5, 0.3) (opposite sides: -0.1 vs 0.1)", atol=1e-9)
    got_delta = call([0.5], [0.15], delta=0.2)
    expect(abs(got_delta - 0.05) < 1e-9,
           f"with delta=0.2, clamped_l1(0.5, 0.15) should be |0.2 - 0.15| = 0.05, got {got_delta:.3g}: use the "
           "delta argument, not a hard-coded 0.1")
    # a batch of rows (B, N), as the lab calls it: still ONE number, the mean over every sample
    pb = (p.reshape(2, 20) * 3).clone()
    sb = s.reshape(2, 20).clone()
    out_b = call_student(fn, pb, sb)
    expect_tensor(out_b, "clamped_l1(pred (2, 20), sdf (2, 20))")
    if out_b.numel() != 1:
        raise CheckFailed(f"for (B, N) inputs the loss has shape {tuple(out_b.shape)}: reduce over every sample "
                          "(.mean(), not .mean(-1)), so that the loss is one number you can call backward() on")
    ref_b = float((pb.clamp(-0.1, 0.1) - sb.clamp(-0.1, 0.1)).abs().mean())
    expect_close(float(out_b.detach()), ref_b, "clamped_l1 on a (2, 20) batch", atol=1e-9)
    # gradient: flows inside the band, none beyond
    x = torch.tensor([0.02, 0.5], dtype=torch.float64, requires_grad=True)
    out = call_student(fn, x, torch.tensor([0.0, 0.0], dtype=torch.float64))
    expect(isinstance(out, torch.Tensor) and out.requires_grad,
           "the loss does not depend on pred through autograd (did you .detach() or go through numpy / .item()?)")
    (gx,) = torch.autograd.grad(out, x)
    expect(abs(float(gx[0]) - 0.5) < 1e-9 and float(gx[1]) == 0.0,
           f"gradient w.r.t. pred should be [sign/N, 0] = [0.5, 0] (no gradient beyond delta), got {gx.tolist()}")
    return "L1 inside the band, flat beyond it on both sides, mean over samples, delta respected, gradients right"


@self_check
def check_near_surface_samples(fn) -> str:
    """``fn(sdf_fn, surface_points (P, 3), n, sigmas, kind, generator) -> (points (n, 3), labels (n,))``.

    Sample ``i`` is a random surface point (drawn with ``generator``) plus isotropic Gaussian
    noise of standard deviation ``sigmas[i % len(sigmas)]``; ``labels`` is ``sdf_fn(points)``
    for ``kind="sdf"`` and the occupancy ``sdf_fn(points) < 0`` (bool) for ``kind="occupancy"``.
    """
    # three far-apart surface points: every sample's base point and offset are unambiguous
    surf = torch.tensor([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])

    def sdf_fn(p):  # the half-space below the plane z = 0 is inside
        return p[..., 2]

    sig = (0.01, 0.1)
    n = 4000
    out = call_student(fn, sdf_fn, surf, n, sig, "sdf", torch.Generator().manual_seed(0))
    expect(isinstance(out, (tuple, list)) and len(out) == 2, "return a pair (points, labels)")
    pts, lab = out
    expect_tensor(pts, "points", shape=(n, 3))
    expect_tensor(lab, "labels (kind='sdf')", shape=(n,))
    expect(lab.is_floating_point(), f"SDF labels should be floating point, got {lab.dtype}")
    base = surf[torch.cdist(pts.double(), surf.double()).argmin(1)]
    off = pts.double() - base.double()
    if float(off.abs().max()) < 1e-9:
        raise CheckFailed("the points are exactly the surface points: add the Gaussian noise")
    expect(float(off.abs().max()) < 1.5,
           "the points are not near the surface points (start from surface points, then add noise; not uniform "
           "points in a box)")
    base_idx = torch.cdist(pts.double(), surf.double()).argmin(1)
    counts = torch.bincount(base_idx, minlength=3)
    cycled = float((base_idx == torch.arange(n) % 3).double().mean())
    if cycled > 0.9:
        raise CheckFailed("the base points cycle through the surface points in order (0, 1, 2, 0, 1, 2, ...): draw "
                          "a random surface point for each sample (torch.randint with the generator), so that the "
                          "noise scale of a sample does not decide which surface point it starts from")
    expect(int(counts.min()) > n // 6,
           f"the samples start from the surface points unevenly ({counts.tolist()} of {n} from each of 3 points): "
           "draw a random surface point for each sample")
    s0, s1 = float(off[0::2].std()), float(off[1::2].std())
    if abs(s0 - 1e-4) < 5e-5 and abs(s1 - 1e-2) < 5e-3:
        raise CheckFailed("the noise has standard deviation sigma**2: sigma is the STANDARD DEVIATION, multiply "
                          "randn by sigma")
    if abs(s0 - s1) / max(s0, s1) < 0.3:
        raise CheckFailed(f"the two halves have the same spread ({s0:.3g} vs {s1:.3g}): sample i should use "
                          "sigmas[i % len(sigmas)] (both scales in equal shares)")
    if abs(s0 - 0.1) < 0.02 and abs(s1 - 0.01) < 0.005:
        raise CheckFailed("the scales are swapped: sample i should use sigmas[i % len(sigmas)] (sample 0: "
                          "sigmas[0])")
    per_axis = off[1::2].std(0)
    if float(per_axis.min()) < 1e-9:
        raise CheckFailed("the noise moves the points along some axes only: add noise to every coordinate "
                          "(isotropic)")
    expect(abs(s0 - 0.01) < 0.002 and abs(s1 - 0.1) < 0.02,
           f"the noise of samples 0, 2, 4, ... has std {s0:.3g} (expected 0.01) and of 1, 3, 5, ... {s1:.3g} "
           "(expected 0.1)")
    corr = torch.corrcoef(torch.stack([off[1::2, 0], off[1::2, 2]]))[0, 1]
    expect(not bool(abs(corr) > 0.5),
           "the x and z offsets are the same number: draw an independent Gaussian per coordinate (randn(n, 3))")
    if torch.allclose(lab.double(), torch.zeros_like(lab.double()), atol=1e-7):
        raise CheckFailed("the labels are 0: evaluate sdf_fn at the NOISY points, not at the surface points")
    expect_close(lab, sdf_fn(pts), "labels (kind='sdf') = sdf_fn(points)", atol=1e-6)
    again = call_student(fn, sdf_fn, surf, n, sig, "sdf", torch.Generator().manual_seed(0))
    expect(torch.equal(again[0], pts), "two calls with the same generator seed give different points: draw all "
                                       "randomness from the generator argument")
    pts2, occ = call_student(fn, sdf_fn, surf, n, sig, "occupancy", torch.Generator().manual_seed(1))
    expect_tensor(occ, "labels (kind='occupancy')", shape=(n,))
    expect(occ.dtype == torch.bool, f"occupancy labels should be bool (inside = True), got {occ.dtype}")
    inside_ref = sdf_fn(pts2) < 0
    if torch.equal(occ, ~inside_ref):
        raise CheckFailed("occupancy is inverted: inside is where the SDF is NEGATIVE")
    expect(torch.equal(occ, inside_ref), "occupancy labels should be sdf_fn(points) < 0")
    return f"noise std {s0:.3g} / {s1:.3g} for sigmas {sig}, isotropic, labels at the moved points, occupancy = sdf < 0"


def _ellipsoid(p: torch.Tensor) -> torch.Tensor:
    # a wobbly ellipsoid, an implicit function that is not a distance: gradient
    # (2x/0.81 + 0.6 cos 2x, 2y/0.25, 2z/0.09)
    return (p[..., 0] / 0.9) ** 2 + (p[..., 1] / 0.5) ** 2 + (p[..., 2] / 0.3) ** 2 + 0.3 * torch.sin(2 * p[..., 0]) - 1


@self_check
def check_autograd_normals(fn) -> str:
    """``fn(field, points (N, 3)) -> (N, 3)``: unit outward normals ``grad f / |grad f|`` by autograd.

    ``field`` maps ``(N, 3) -> (N,)`` and is negative inside (an SDF or any implicit function);
    ``points`` do not require grad.  The result should carry no graph.
    """
    g = torch.Generator().manual_seed(0)
    p = torch.randn(64, 3, generator=g, dtype=torch.float64) * 0.5
    given = p.clone()
    calls: list[bool] = []

    def field(q: torch.Tensor) -> torch.Tensor:
        calls.append(bool(q.requires_grad))
        return _ellipsoid(q)

    n = call_student(fn, field, given)
    expect_tensor(n, "normals", shape=(64, 3))
    grad = torch.stack([2 * p[:, 0] / 0.81 + 0.6 * torch.cos(2 * p[:, 0]), 2 * p[:, 1] / 0.25, 2 * p[:, 2] / 0.09], -1)
    ref = grad / grad.norm(dim=-1, keepdim=True)
    norms = n.detach().double().norm(dim=-1)
    if torch.allclose(n.detach().double(), -ref, atol=1e-4):
        raise CheckFailed("the normals point INWARD: the outward normal is +grad f (f grows outwards)")
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
        if torch.allclose(n.detach().double(), grad, atol=1e-4):
            raise CheckFailed("the normals are not unit vectors: divide the gradient by its norm")
        raise CheckFailed(f"the normals should have unit length, got lengths from {norms.min():.3g} to "
                          f"{norms.max():.3g}")
    if calls and not any(calls):
        raise CheckFailed(f"the field was evaluated {len(calls)} times, never on points that require grad: that is "
                          "finite differences, not autograd. Make a copy of the points with "
                          "requires_grad_(True), evaluate the field once and call torch.autograd.grad")
    err = float((n.detach().double() - ref).norm(dim=-1).max())
    if err > 1e-6:
        raise CheckFailed(f"the normals are off by up to {err:.2g} from grad f / |grad f| (finite differences, or "
                          "a wrong field?): use torch.autograd.grad of field(points).sum() with respect to the "
                          "points")
    expect(not n.requires_grad, "the normals still carry an autograd graph: detach them (or do not create_graph)")
    expect(given.grad is None and not given.requires_grad and torch.equal(given, p),
           "the input points were modified (requires_grad or .grad set): work on a detached copy")
    return "outward, unit length, equal to grad f / |grad f| of a wobbly ellipsoid to 1e-6, no graph kept"


class _RadiusDecoder(nn.Module):
    """``f = 2 (|p| - (0.4 + 0.2 z_0))`` (``z_1`` unused): zero on the sphere of radius ``0.4 + 0.2 z_0``, but twice
    as steep as a distance, so that its error against a true SDF differs from point to point: near the
    surface the clamped L1 is smallest at ``z_0 = (r - 0.4) / 0.2``, while far samples (beyond the clamp)
    would pull an unclamped loss elsewhere."""

    c_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([0.2]))

    def forward(self, points: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return 2 * (points.norm(dim=-1) - (0.4 + self.w * z[:, :1]))


@self_check
def check_optimise_latent(fn) -> str:
    """``fn(decoder, points (N, 3), sdf (N,), z0 (C,), iters, lr, reg) -> z (C,)``: DeepSDF test-time optimisation.

    Adam on a copy of ``z0`` only (the decoder is frozen), minimising ``clamped_l1(decoder(points[None],
    z[None])[0], sdf) + reg * mean(z ** 2)`` for ``iters`` steps.
    """
    dec = _RadiusDecoder()
    g = torch.Generator().manual_seed(0)
    d = torch.randn(600, 3, generator=g)
    d = d / d.norm(dim=-1, keepdim=True)
    radius = 0.6
    # a quarter of the samples near the surface, the rest far outside it (beyond the clamp), as DeepSDF's
    # samples include some far from the surface
    r = torch.cat([radius + 0.03 * torch.randn(150, generator=g), 1.0 + 0.5 * torch.rand(450, generator=g)])
    pts = d * r[:, None]
    sdf = pts.norm(dim=-1) - radius
    z0 = torch.tensor([0.75, 0.5])  # the start's zero set lies within the clamp band of the surface
    z0_copy = z0.clone()
    w0 = dec.w.detach().clone()
    z = call_student(fn, dec, pts, sdf, z0, 200, 0.05, 0.02)
    expect_tensor(z, "the optimised code", shape=(2,))
    expect(torch.equal(z0, z0_copy), "z0 was changed in place: optimise a copy (z0.clone().requires_grad_())")
    if not torch.equal(dec.w.detach(), w0):
        raise CheckFailed("the decoder's weights changed: optimise the code ONLY (give Adam [z], not "
                          "decoder.parameters())")
    expect(not z.requires_grad, "return the code detached (z.detach())")
    if torch.allclose(z, z0):
        raise CheckFailed("z did not move from z0: call loss.backward() and optimizer.step() in the loop")
    want = (radius - 0.4) / 0.2
    if float(z[0]) > want + 0.5:
        raise CheckFailed(f"the code's first entry went to {float(z[0]):.3g}, past the sphere's {want:.2f}: the samples "
                          "far from the surface pulled it. Clamp both the prediction and the sdf to [-delta, delta] "
                          "(your clamped_l1), so that samples beyond the band stop counting, and use an L1, not a "
                          "squared error")
    if abs(float(z[0]) - want) > 0.1:
        raise CheckFailed(f"the code's first entry should reach about {want:.2f} (the sphere's radius), got "
                          f"{float(z[0]):.3g}: minimise the clamped L1 between decoder(points, z) and sdf "
                          "(did you forget optimizer.zero_grad(), or the sign of the loss? The penalty is "
                          "reg * mean(z ** 2), added to the data term)")
    if abs(float(z[1]) - 0.5) < 0.05:
        raise CheckFailed("the unused entry of z stayed at its start (0.5): add the penalty reg * mean(z ** 2), "
                          "which pulls the code towards the prior's mean 0")
    expect(float(z[1]) < 0.45 and float(z[1]) > -0.2,
           f"the unused entry should decay from 0.5 towards 0 under the penalty, got {float(z[1]):.3g}")
    return f"code recovered (z_0 = {float(z[0]):.3f}, want {want:.2f}), decoder untouched, penalty active"



# ---------------------------------------------------------------------------
# hidden parts (run by the grader only): other shapes and deltas, float32 and float64, a single sample, points
# exactly on the surface, fresh randomness per generator, the caller's tensors untouched, an exact Adam trajectory
# ---------------------------------------------------------------------------
def _loop_clamped_l1(pred: torch.Tensor, sdf: torch.Tensor, delta: float) -> float:
    """The clamped L1 in float64, one sample at a time (an independent reference)."""
    total = 0.0
    ps, ss = pred.detach().double().reshape(-1).tolist(), sdf.detach().double().reshape(-1).tolist()
    for a, b in zip(ps, ss):
        total += abs(min(max(a, -delta), delta) - min(max(b, -delta), delta))
    return total / len(ps)


def _hidden_clamped_l1(fn) -> str:
    g = torch.Generator().manual_seed(70)
    for shape, dtype, delta in (((3, 4, 5), torch.float32, 0.05), ((1,), torch.float64, 0.1),
                                ((1, 7), torch.float32, 0.3), ((200,), torch.float64, 0.02)):
        pred = ((torch.rand(shape, generator=g, dtype=torch.float64) - 0.5) * 4 * delta).to(dtype)
        sdf = ((torch.rand(shape, generator=g, dtype=torch.float64) - 0.5) * 4 * delta).to(dtype)
        p_before, s_before = pred.clone(), sdf.clone()
        out = call_student(fn, pred, sdf, delta=delta)
        what = f"clamped_l1 on {dtype} inputs of shape {tuple(shape)} with delta={delta}"
        expect_tensor(out, what)
        expect(out.numel() == 1, f"{what} has shape {tuple(out.shape)}: the loss is one number, the mean over "
                                 "every sample")
        if not torch.equal(sdf, s_before) or not torch.equal(pred, p_before):
            which = "sdf" if not torch.equal(sdf, s_before) else "pred"
            raise CheckFailed(f"{what} changed the caller's {which} tensor: an in-place clamp_ (or a [...] = "
                              "assignment) overwrites the data; use the out-of-place clamp")
        expect(out.dtype == dtype, f"{what} returns {out.dtype}: keep the inputs' dtype (no .float() or .double())")
        tol = 1e-12 if dtype == torch.float64 else 1e-6
        expect_close(float(out.detach()), _loop_clamped_l1(pred, sdf, delta), what, atol=tol, rtol=1e-5)
    # exactly on the band's edge and a single sample: pred = delta costs nothing against any sdf >= delta
    edge = call_student(fn, torch.tensor([0.1, -0.1], dtype=torch.float64),
                        torch.tensor([0.1, -0.7], dtype=torch.float64))
    expect_close(float(expect_tensor(edge, "clamped_l1 at the band's edge").detach()), 0.0,
                 "clamped_l1(pred = (0.1, -0.1), sdf = (0.1, -0.7)) (on or beyond the edge, same side)", atol=1e-12)
    # gradient on a (3, 4, 5) float32 batch: sign / N inside the band, 0 beyond it
    pred = ((torch.rand(3, 4, 5, generator=g) - 0.5) * 0.4).requires_grad_(True)
    sdf = (torch.rand(3, 4, 5, generator=g) - 0.5) * 0.4
    out = call_student(fn, pred, sdf)
    expect(isinstance(out, torch.Tensor) and out.requires_grad,
           "the loss of a (3, 4, 5) batch does not depend on pred through autograd")
    (gp,) = torch.autograd.grad(out.sum(), pred)
    inside = pred.detach().abs() < 0.1
    ref = torch.where(inside, torch.sign(pred.detach() - sdf.clamp(-0.1, 0.1)) / pred.numel(), torch.zeros_like(sdf))
    expect_close(gp, ref, "the gradient w.r.t. pred on a (3, 4, 5) batch (sign / N inside the band, 0 beyond)",
                 atol=1e-7)
    again = call_student(fn, pred.detach(), sdf)
    expect(float(again) == float(out.detach()), "two calls on the same inputs give different losses")
    return "float32 and float64 kept, shapes (1,) to (3, 4, 5), other deltas, the band's edge, inputs untouched"


def _hidden_near_surface_samples(fn) -> str:
    # one surface point at the origin: every point IS its offset; three scales in a list, float64 surface points
    origin = torch.zeros(1, 3, dtype=torch.float64)
    sig = [0.001, 0.1, 1.0]
    n = 3000

    def sphere(p):  # float64 in, float64 out
        return p.norm(dim=-1) - 0.5

    before = origin.clone()
    rng_before = torch.get_rng_state()
    out = call_student(fn, sphere, origin, n, sig, "sdf", torch.Generator().manual_seed(5))
    expect(isinstance(out, (tuple, list)) and len(out) == 2, "return a pair (points, labels)")
    pts, lab = out
    expect_tensor(pts, "points (three sigmas given as a list, one surface point)", shape=(n, 3))
    expect_tensor(lab, "labels (kind='sdf')", shape=(n,))
    expect(torch.equal(torch.get_rng_state(), rng_before),
           "the call used torch's global random generator (torch.manual_seed, or randint/randn without "
           "generator=...): draw every random number from the generator argument")
    expect(torch.equal(origin, before), "the surface points were changed in place: add the noise to a copy")
    expect(pts.dtype == torch.float64, f"float64 surface points give {pts.dtype} points: keep their dtype")
    stds = [float(pts[i::3].double().std()) for i in range(3)]
    for i, (s, want) in enumerate(zip(stds, sig)):
        expect(abs(s - want) < 0.15 * want,
               f"with sigmas {sig} (a list of 3), samples {i}, {i + 3}, {i + 6}, ... have std {s:.3g}, expected "
               f"{want}: sample i uses sigmas[i % len(sigmas)], for any number of scales")
    expect_close(lab, (pts.double().norm(dim=-1) - 0.5), "labels = sdf_fn(points) for a sphere (float64)",
                 atol=1e-12)
    # randomness: another seed gives other points, the same seed the same ones
    other = call_student(fn, sphere, origin, n, sig, "sdf", torch.Generator().manual_seed(6))[0]
    same = call_student(fn, sphere, origin, n, sig, "sdf", torch.Generator().manual_seed(5))[0]
    expect(torch.equal(same, pts), "two calls with the same generator seed give different points")
    expect(not torch.allclose(other, pts),
           "generators with different seeds give the same points: the randomness must come from the generator "
           "argument (not from a fixed torch.manual_seed inside your function)")
    # a single sample
    one, one_lab = call_student(fn, sphere, origin, 1, torch.tensor([0.2]), "occupancy",
                                torch.Generator().manual_seed(7))
    expect_tensor(one, "points for n = 1 (sigmas given as a 1-D tensor)", shape=(1, 3))
    expect_tensor(one_lab, "labels for n = 1", shape=(1,))
    expect(one_lab.dtype == torch.bool and bool(one_lab[0]) == bool(sphere(one)[0] < 0),
           "the occupancy of a single sample should be the bool sdf_fn(point) < 0")
    # points exactly on the surface (sigma 0): sdf 0 is NOT inside (occupancy is sdf < 0, strict)
    surf = torch.tensor([[0.3, -0.2, 0.0], [0.0, 0.4, 0.0], [-0.5, 0.1, 0.0]])
    pts0, occ0 = call_student(fn, lambda p: p[..., 2], surf, 12, (0.0,), "occupancy", torch.Generator().manual_seed(8))
    expect_tensor(occ0, "occupancy of points exactly on the surface", shape=(12,))
    expect(float((pts0[:, 2]).abs().max()) == 0.0, "with sigma = 0 the points should be the surface points themselves")
    expect(not bool(occ0.any()), "points exactly on the surface (sdf = 0) are labelled inside: the occupancy is "
                                 "sdf_fn(points) < 0, strictly (did you write <= 0?)")
    return "sigmas as a list of 3 scales and as a tensor, float64 kept, n = 1, sigma 0 on the surface, generator-only randomness"


class _Plane(nn.Module):
    """``f(p) = w . p + b``: its outward normal is ``w / |w|`` everywhere (an analytic reference)."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([0.3, -1.2, 0.4], dtype=dtype))
        self.b = nn.Parameter(torch.tensor(0.1, dtype=dtype))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return p @ self.w + self.b


def _hidden_autograd_normals(fn) -> str:
    g = torch.Generator().manual_seed(71)
    # a sphere SDF about an off-centre point: normals (p - c) / |p - c|, in float32 and float64, N = 1 and N = 50
    c = torch.tensor([0.2, -0.1, 0.3], dtype=torch.float64)
    for n, dtype in ((1, torch.float64), (50, torch.float32), (50, torch.float64)):
        p = (torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.6).to(dtype)
        given = p.clone()
        out = call_student(fn, lambda q: (q - c.to(q.dtype)).norm(dim=-1) - 0.4, p)
        what = f"the normals of an off-centre sphere for N = {n} {dtype} points"
        expect_tensor(out, what, shape=(n, 3))
        expect(out.dtype == dtype, f"{what} come back as {out.dtype}: keep the points' dtype (no .float() inside)")
        ref = (p.double() - c) / (p.double() - c).norm(dim=-1, keepdim=True)
        expect_close(out, ref, what, atol=1e-12 if dtype == torch.float64 else 2e-6, rtol=0)
        expect(torch.equal(p, given) and p.grad is None and not p.requires_grad,
               "the caller's points were changed (values, requires_grad or .grad): work on a detached copy")
        again = call_student(fn, lambda q: (q - c.to(q.dtype)).norm(dim=-1) - 0.4, p)
        expect(torch.equal(again, out), f"two calls give different normals for {what}")
    # a field with parameters (as a network is): the normals need no gradient of the parameters
    plane = _Plane(torch.float64)
    p = torch.randn(20, 3, generator=g, dtype=torch.float64)
    out = call_student(fn, plane, p)
    expect_tensor(out, "the normals of a plane w . p + b (an nn.Module)", shape=(20, 3))
    w = plane.w.detach()
    expect_close(out, (w / w.norm()).expand(20, 3), "the normals of the plane w . p + b (w / |w| everywhere)",
                 atol=1e-12, rtol=0)
    if plane.w.grad is not None or plane.b.grad is not None:
        raise CheckFailed("your code left gradients in the field's parameters (.backward() accumulates into every "
                          "parameter the field uses, and would pollute a training step): take "
                          "torch.autograd.grad(values.sum(), points_copy), which computes the points' gradient only")
    return "an off-centre sphere in float32 and float64 (N = 1 and 50), a plane module whose parameters stay untouched"


class _LinearCodeDecoder(nn.Module):
    """``f(p, z) = |p| - 0.5 + p . (A z)`` in float64: smooth in ``z``, its Adam trajectory is computed by hand."""

    def __init__(self, c_dim: int) -> None:
        super().__init__()
        self.c_dim = c_dim
        self.a = nn.Parameter(torch.linspace(-0.6, 0.6, 3 * c_dim, dtype=torch.float64).reshape(3, c_dim))

    def forward(self, points: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return points.norm(dim=-1) - 0.5 + (points * (z @ self.a.T)[:, None, :]).sum(-1)


def _adam_reference(decoder, points, sdf, z0, iters, lr, reg, penalty) -> torch.Tensor:
    """Adam written out (betas 0.9, 0.999, eps 1e-8) on the clamped L1 plus ``reg * penalty(z)``, in float64."""
    a = decoder.a.detach()
    z = z0.detach().clone().double()
    m, v = torch.zeros_like(z), torch.zeros_like(z)
    for t in range(1, iters + 1):
        zz = z.clone().requires_grad_(True)
        pred = points.norm(dim=-1) - 0.5 + (points * (a @ zz)).sum(-1)
        loss = (pred.clamp(-0.1, 0.1) - sdf.clamp(-0.1, 0.1)).abs().mean() + reg * penalty(zz)
        (gz,) = torch.autograd.grad(loss, zz)
        m = 0.9 * m + 0.1 * gz
        v = 0.999 * v + 0.001 * gz * gz
        denom = (v / (1 - 0.999 ** t)).sqrt() + 1e-8
        z = z - lr / (1 - 0.9 ** t) * m / denom
    return z


def _hidden_optimise_latent(fn) -> str:
    g = torch.Generator().manual_seed(72)
    dec = _LinearCodeDecoder(3)
    w0 = dec.a.detach().clone()
    d = torch.randn(300, 3, generator=g, dtype=torch.float64)
    pts = d / d.norm(dim=-1, keepdim=True) * (0.5 + 0.15 * torch.randn(300, 1, generator=g, dtype=torch.float64))
    z_true = torch.tensor([0.2, -0.1, 0.05], dtype=torch.float64)
    sdf = dec(pts[None], z_true[None])[0].detach()
    z0 = torch.tensor([-0.3, 0.4, 0.1], dtype=torch.float64)
    z0_copy = z0.clone()
    for iters, lr, reg in ((7, 0.02, 0.05), (1, 0.1, 0.0), (25, 0.004, 0.3)):
        z = call_student(fn, dec, pts, sdf, z0, iters, lr, reg)
        what = f"the code after iters={iters}, lr={lr}, reg={reg}"
        expect_tensor(z, what, shape=(3,))
        expect(torch.equal(z0, z0_copy), "z0 was changed in place: optimise a copy")
        expect(torch.equal(dec.a.detach(), w0), "the decoder's weights changed: give Adam the code only")
        refs = {pen: _adam_reference(dec, pts, sdf, z0, iters, lr, reg, f) for pen, f in
                (("mean", lambda z: (z ** 2).mean()), ("sum", lambda z: (z ** 2).sum()))}
        err = min(float((z.detach().double() - r).abs().max()) for r in refs.values())
        if err > 1e-7:
            fewer = _adam_reference(dec, pts, sdf, z0, iters - 1, lr, reg, lambda q: (q ** 2).mean()) if iters > 1 \
                else z0.double()
            more = _adam_reference(dec, pts, sdf, z0, iters + 1, lr, reg, lambda q: (q ** 2).mean())
            for r, why in ((fewer, "one step too few"), (more, "one step too many")):
                if float((z.detach().double() - r).abs().max()) < 1e-7:
                    raise CheckFailed(f"{what} is {why}: run exactly iters Adam steps (for _ in range(iters))")
            raise CheckFailed(f"{what} differs from Adam's trajectory on clamped_l1 + reg * mean(z ** 2) by up to "
                              f"{err:.2g}: use the lr and reg arguments (not fixed numbers), Adam's default betas, "
                              "and one zero_grad / backward / step per iteration")
    # no steps: the start itself, as a new tensor
    z = call_student(fn, dec, pts, sdf, z0, 0, 0.1, 0.1)
    expect_tensor(z, "the code after iters=0", shape=(3,))
    expect(torch.equal(z.detach(), z0), "with iters=0 the code should be z0 itself (no step taken)")
    expect(z.data_ptr() != z0.data_ptr(), "with iters=0 you return z0's own storage: return a copy, so that the "
                                          "caller's z0 does not change when the code does")
    return "Adam's exact trajectory (float64, 1 to 25 steps, three lr / reg pairs, C = 3), iters = 0 gives a copy"


def _register_hidden() -> None:
    from course_lib.data import samplers
    from course_lib.geometry import extract
    from course_lib.models import implicit

    check_clamped_l1.hidden(_hidden_clamped_l1, references=(implicit.clamped_l1,))
    check_near_surface_samples.hidden(_hidden_near_surface_samples, references=(samplers.sample_near_surface,))
    check_autograd_normals.hidden(_hidden_autograd_normals, references=(extract.field_normals,))
    check_optimise_latent.hidden(_hidden_optimise_latent, references=(implicit.reconstruct_latent,))


_register_hidden()
