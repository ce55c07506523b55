"""The chapter-07 self-checks pass the reference, fail plausible wrong answers by name, and flag stubs."""

from __future__ import annotations

import pytest
import torch
from check_helpers import failed, hidden_results, stub

from course_lib import checks
from course_lib.geometry import field_normals
from course_lib.models import implicit as im

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- references, written independently of course_lib.models.implicit ---------------------
def clamped_l1(pred, sdf, delta=0.1):
    return (torch.clamp(pred, -delta, delta) - torch.clamp(sdf, -delta, delta)).abs().mean()


def near_surface_samples(sdf_fn, surface_points, n, sigmas, kind, generator):
    idx = torch.randint(0, surface_points.shape[0], (n,), generator=generator)
    std = torch.as_tensor(sigmas, dtype=surface_points.dtype)[torch.arange(n) % len(sigmas)]
    pts = surface_points[idx] + torch.randn(n, 3, generator=generator, dtype=surface_points.dtype) * std[:, None]
    d = sdf_fn(pts)
    return pts, (d < 0 if kind == "occupancy" else d)


def autograd_normals(field, points):
    p = points.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(field(p).sum(), p)
    return g / g.norm(dim=-1, keepdim=True)


def optimise_latent(decoder, points, sdf, z0, iters, lr, reg):
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(iters):
        loss = clamped_l1(decoder(points[None], z[None])[0], sdf) + reg * (z ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return z.detach()




def _failed(res, *words):
    failed(res, *words, ignore_case=True)


def test_references_pass():
    assert checks.check_clamped_l1(clamped_l1, quiet=True).passed
    assert checks.check_near_surface_samples(near_surface_samples, quiet=True).passed
    assert checks.check_autograd_normals(autograd_normals, quiet=True).passed
    assert checks.check_optimise_latent(optimise_latent, quiet=True).passed


def test_library_functions_pass():
    assert checks.check_clamped_l1(im.clamped_l1, quiet=True).passed
    assert checks.check_autograd_normals(lambda f, p: field_normals(f, p), quiet=True).passed

    def lib_optimise(decoder, points, sdf, z0, iters, lr, reg):
        # the library's loop draws its own start; start it at z0 through init_std=0 + the code
        class Shifted(torch.nn.Module):
            c_dim = decoder.c_dim

            def __init__(self):
                super().__init__()
                self.inner = decoder

            def forward(self, p, z):
                return decoder(p, z + z0)

        z, _ = im.reconstruct_latent(Shifted(), points, sdf, iters=iters, lr=lr, reg=0.0, init_std=0.0,
                                     n_samples=None)
        return z + z0

    # the library divides the rate at half time and shifts the prior: only the fit part is comparable
    res = checks.check_optimise_latent(lib_optimise, quiet=True)
    assert res.status == "failed" and "penalty" in res.message  # reg=0: the unused entry does not decay


def test_stubs_are_not_implemented():
    for check in (checks.check_clamped_l1, checks.check_near_surface_samples, checks.check_autograd_normals,
                  checks.check_optimise_latent):
        res = check(stub, quiet=True)
        assert res.status == "not_implemented", res.verdict()
    assert checks.check_clamped_l1(lambda *a, **k: ..., quiet=True).status == "not_implemented"


# --- clamped L1 ------------------------------------------------------------------------------
@pytest.mark.parametrize("wrong, words", [
    (lambda p, s, delta=0.1: (p - s).abs().mean(), ["no clamping"]),
    (lambda p, s, delta=0.1: (p - s.clamp(-delta, delta)).abs().mean(), ["PREDICTION"]),
    (lambda p, s, delta=0.1: (p.clamp(-delta, delta) - s).abs().mean(), ["TARGET"]),
    (lambda p, s, delta=0.1: ((p.clamp(-delta, delta) - s.clamp(-delta, delta)) ** 2).mean(), ["SQUARED"]),
    (lambda p, s, delta=0.1: (p.clamp(-delta, delta) - s.clamp(-delta, delta)).abs().sum(), ["SUM"]),
    (lambda p, s, delta=0.1: (p.clamp(-0.1, 0.1) - s.clamp(-0.1, 0.1)).abs().mean(), ["delta argument"]),
    (lambda p, s, delta=0.1: torch.tensor(float(clamped_l1(p, s, delta))), ["autograd"]),
    (lambda p, s, delta=0.1: clamped_l1(p, s, delta) * float("nan"), ["NaN"]),
    # the review's (probes/ch07_ch08/wrong07.py): a per-row mean, (B,) for (B, N) inputs
    (lambda p, s, delta=0.1: (p.clamp(-delta, delta) - s.clamp(-delta, delta)).abs().mean(-1), [".mean(-1)"]),
])
def test_clamped_l1_wrong_answers(wrong, words):
    _failed(checks.check_clamped_l1(wrong, quiet=True), *words)


# --- near-surface samples --------------------------------------------------------------------
def _variant(**change):
    def fn(sdf_fn, surface_points, n, sigmas, kind, generator):
        idx = torch.randint(0, surface_points.shape[0], (n,), generator=generator)
        if change.get("cycled"):
            idx = torch.arange(n) % surface_points.shape[0]
        if change.get("one_base"):
            idx = torch.zeros_like(idx)
        sig = list(sigmas)
        if change.get("swap"):
            sig = sig[::-1]
        std = torch.tensor(sig)[torch.arange(n) % len(sig)]
        if change.get("variance"):
            std = std ** 2
        if change.get("one_scale"):
            std = torch.full((n,), sig[0])
        noise = torch.randn(n, 3, generator=generator)
        if change.get("scalar_noise"):
            noise = noise[:, :1].expand(n, 3)
        if change.get("z_only"):
            noise = noise * torch.tensor([0.0, 0.0, 1.0])
        pts = surface_points[idx] + noise * std[:, None]
        if change.get("uniform"):
            pts = torch.rand(n, 3, generator=generator) * 4 - 2
        at = surface_points[idx] if change.get("label_at_surface") else pts
        d = sdf_fn(at)
        if kind == "occupancy":
            return pts, (d > 0 if change.get("inverted") else (d < 0).float() if change.get("float_occ") else d < 0)
        return pts, d
    return fn


@pytest.mark.parametrize("change, words", [
    ({"variance": True}, ["sigma**2"]),
    ({"one_scale": True}, ["same spread"]),
    ({"swap": True}, ["swapped"]),
    ({"scalar_noise": True}, ["same number"]),
    ({"z_only": True}, ["every coordinate"]),
    ({"one_base": True}, ["random surface point"]),
    ({"cycled": True}, ["cycle"]),
    ({"uniform": True}, ["not near the surface"]),
    ({"label_at_surface": True}, ["NOISY points"]),
    ({"inverted": True}, ["inverted"]),
    ({"float_occ": True}, ["bool"]),
])
def test_near_surface_samples_wrong_answers(change, words):
    _failed(checks.check_near_surface_samples(_variant(**change), quiet=True), *words)


def test_near_surface_samples_unseeded_randomness_fails():
    def fn(sdf_fn, surface_points, n, sigmas, kind, generator):
        return near_surface_samples(sdf_fn, surface_points, n, sigmas, kind, torch.Generator().manual_seed(
            int(torch.randint(0, 10**6, (1,)))))
    _failed(checks.check_near_surface_samples(fn, quiet=True), "generator")


# --- autograd normals ------------------------------------------------------------------------
def _grad(field, points):
    p = points.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(field(p).sum(), p)
    return g


def _finite_diff(field, points, h=1e-2):
    e = torch.eye(3, dtype=points.dtype)
    g = torch.stack([(field(points + h * e[i]) - field(points - h * e[i])) / (2 * h) for i in range(3)], -1)
    return g / g.norm(dim=-1, keepdim=True)


def _in_place(field, points):
    points.requires_grad_(True)
    (g,) = torch.autograd.grad(field(points).sum(), points)
    return g / g.norm(dim=-1, keepdim=True)


def _keeps_graph(field, points):
    p = points.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(field(p).sum(), p, create_graph=True)
    return g / g.norm(dim=-1, keepdim=True)


@pytest.mark.parametrize("wrong, words", [
    (lambda f, p: -autograd_normals(f, p), ["INWARD"]),
    (_grad, ["unit vectors"]),
    (lambda f, p: _grad(f, p) / _grad(f, p).norm(), ["unit length"]),
    (_finite_diff, ["finite differences"]),
    # the review's: central differences in float64 with h = 1e-5 are accurate to ~1e-10, but not autograd
    (lambda f, p: _finite_diff(f, p.double(), h=1e-5).to(p.dtype), ["finite differences", "requires_grad"]),
    (_in_place, ["modified"]),
    (_keeps_graph, ["graph"]),
    (lambda f, p: autograd_normals(f, p)[:, :2], ["shape"]),
])
def test_autograd_normals_wrong_answers(wrong, words):
    _failed(checks.check_autograd_normals(wrong, quiet=True), *words)


# --- latent optimisation ---------------------------------------------------------------------
def _opt_variant(**change):
    def fn(decoder, points, sdf, z0, iters, lr, reg):
        z = z0 if change.get("in_place") else z0.clone()
        z.requires_grad_(True)
        params = [z] + (list(decoder.parameters()) if change.get("decoder_too") else [])
        opt = torch.optim.Adam(params, lr=lr)
        for _ in range(0 if change.get("no_steps") else iters):
            r = 0.0 if change.get("no_reg") else reg
            pred = decoder(points[None], z[None])[0]
            data = ((pred - sdf).abs().mean() if change.get("no_clamp") else
                    ((pred - sdf) ** 2).mean() if change.get("mse") else clamped_l1(pred, sdf))
            pen = (z ** 2).sum() if change.get("sum_penalty") else (z ** 2).mean()
            loss = data + r * pen
            if change.get("ascent"):
                loss = -loss
            if not change.get("no_zero_grad"):
                opt.zero_grad()
            loss.backward()
            opt.step()
        return z if change.get("attached") else z.detach()
    return fn


@pytest.mark.parametrize("change, words", [
    ({"decoder_too": True}, ["decoder's weights"]),
    ({"no_reg": True}, ["penalty"]),
    ({"no_steps": True}, ["did not move"]),
    ({"ascent": True}, ["sign of the loss"]),
    ({"attached": True}, ["detached"]),
    # the review's (probes/ch07_ch08/wrong07.py)
    ({"no_clamp": True}, ["far from the surface", "clamp"]),
    ({"mse": True}, ["far from the surface", "squared"]),
    ({"no_zero_grad": True}, ["zero_grad"]),
])
def test_optimise_latent_wrong_answers(change, words):
    _failed(checks.check_optimise_latent(_opt_variant(**change), quiet=True), *words)


def test_optimise_latent_accepts_the_papers_sum_penalty():
    """DeepSDF's paper writes the penalty as a sum over the code's entries; with the check's small reg it lands on
    the same code, so the paper's form is not rejected (the review found it rejected with a misleading message)."""
    assert checks.check_optimise_latent(_opt_variant(sum_penalty=True), quiet=True).passed


def test_optimise_latent_in_place_is_named():
    def fn(decoder, points, sdf, z0, iters, lr, reg):
        z0.requires_grad_(False)
        z0.add_(0.3)  # modifies the caller's tensor
        return optimise_latent(decoder, points, sdf, z0, iters, lr, reg)

    _failed(checks.check_optimise_latent(fn, quiet=True), "in place")


# --- hidden parts (the grader's COURSE_HIDDEN_CHECKS=1) -----------------------------------------
_hidden = hidden_results  # (public result, hidden result)


def test_hidden_parts_pass_the_references(monkeypatch):
    from course_lib.checks import _core

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    for check, fn in ((checks.check_clamped_l1, clamped_l1), (checks.check_near_surface_samples, near_surface_samples),
                      (checks.check_autograd_normals, autograd_normals),
                      (checks.check_optimise_latent, optimise_latent),
                      (checks.check_optimise_latent, _opt_variant(sum_penalty=True))):
        res, hid = _hidden(check, fn)
        assert res.passed and hid.passed, hid.verdict()


def _clamp_sdf_in_place(pred, sdf, delta=0.1):
    return (pred.clamp(-delta, delta) - sdf.clamp_(-delta, delta)).abs().mean()


def _occupancy_non_strict(sdf_fn, surface_points, n, sigmas, kind, generator):
    pts, d = near_surface_samples(sdf_fn, surface_points, n, sigmas, "sdf", generator)
    return pts, (d <= 0 if kind == "occupancy" else d)


def _global_seed(sdf_fn, surface_points, n, sigmas, kind, generator):
    torch.manual_seed(0)  # reproducible, but every generator gives the same samples
    idx = torch.randint(0, surface_points.shape[0], (n,))
    std = torch.tensor(list(sigmas), dtype=surface_points.dtype)[torch.arange(n) % len(sigmas)]
    pts = surface_points[idx] + torch.randn(n, 3, dtype=surface_points.dtype) * std[:, None]
    d = sdf_fn(pts)
    return pts, (d < 0 if kind == "occupancy" else d)


def _normals_by_backward(field, points):
    p = points.detach().clone().requires_grad_(True)
    field(p).sum().backward()  # also fills .grad of every parameter of the field
    return p.grad / p.grad.norm(dim=-1, keepdim=True)


def _fixed_lr(decoder, points, sdf, z0, iters, lr, reg):
    return optimise_latent(decoder, points, sdf, z0, iters, 0.05, reg)


def _one_more_step(decoder, points, sdf, z0, iters, lr, reg):
    return optimise_latent(decoder, points, sdf, z0, iters + 1, lr, reg)


@pytest.mark.parametrize("check, wrong, words", [
    (checks.check_clamped_l1, _clamp_sdf_in_place, ["changed the caller's sdf", "in-place"]),
    (checks.check_clamped_l1, lambda p, s, delta=0.1: clamped_l1(p.double(), s.double(), delta), ["keep the inputs' dtype"]),
    (checks.check_near_surface_samples, _occupancy_non_strict, ["exactly on the surface", "<= 0"]),
    (checks.check_near_surface_samples, _global_seed, ["global random generator"]),
    (checks.check_autograd_normals, _normals_by_backward, ["field's parameters", "torch.autograd.grad"]),
    (checks.check_autograd_normals, lambda f, p: autograd_normals(f, p.float()), ["keep the points' dtype"]),
    (checks.check_optimise_latent, _fixed_lr, ["lr and reg arguments"]),
    (checks.check_optimise_latent, _one_more_step, ["one step too many"]),
])
def test_hidden_parts_catch_what_the_public_part_lets_through(monkeypatch, check, wrong, words):
    from course_lib.checks import _core

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    res, hid = _hidden(check, wrong)
    assert res.passed, res.verdict()  # the public part lets it through...
    failed(hid, *words)               # ...the hidden part names it


def test_hidden_parts_flag_a_wrapper_of_the_library(monkeypatch):
    from course_lib.checks import _core

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    res, hid = _hidden(checks.check_clamped_l1, lambda p, s, delta=0.1: im.clamped_l1(p, s, delta))
    assert res.passed
    failed(hid, "delegated to course_lib.models.implicit.clamped_l1")
    res, hid = _hidden(checks.check_autograd_normals, lambda f, p: field_normals(f, p))
    assert res.passed
    failed(hid, "delegated to course_lib.geometry.extract.field_normals")
