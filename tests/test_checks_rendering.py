"""The chapter-09 self-checks pass the reference, reject named wrong answers, and flag stubs."""

from __future__ import annotations

import pytest
import torch
from check_helpers import hidden_results

from course_lib import checks

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- reference solutions (written independently of course_lib.render) --------------------------
def _seg_d2(p, a, b):
    e = b - a
    t = (((p - a) * e).sum(-1) / (e * e).sum()).clamp(0, 1)
    return ((p - a - t[:, None] * e) ** 2).sum(-1)


def _edge_d2(p, tri):
    return torch.minimum(torch.minimum(_seg_d2(p, tri[0], tri[1]), _seg_d2(p, tri[1], tri[2])),
                         _seg_d2(p, tri[2], tri[0]))


def _cross(o, a, p):
    return (a[0] - o[0]) * (p[:, 1] - o[1]) - (a[1] - o[1]) * (p[:, 0] - o[0])


def _inside(p, tri, both=True):
    c = torch.stack([_cross(tri[i], tri[(i + 1) % 3], p) for i in range(3)])
    pos = (c > 0).all(0)
    return pos | (c < 0).all(0) if both else pos


def soft_coverage(points, tri, sigma):
    d2 = _edge_d2(points, tri)
    sign = torch.where(_inside(points, tri), 1.0, -1.0).to(points.dtype)
    return torch.sigmoid(sign * d2 / sigma)


def iou_loss(pred, target):
    inter = (pred * target).sum((1, 2))
    union = (pred + target - pred * target).sum((1, 2))
    return (1 - inter / union).mean()


def _neighbours(faces, n):
    nb = [set() for _ in range(n)]
    for a, b, c in faces.tolist():
        for i, j in ((a, b), (b, c), (c, a)):
            nb[i].add(j)
            nb[j].add(i)
    return [sorted(s) for s in nb]


def laplacian_loss(verts, faces):
    nb = _neighbours(faces, verts.shape[0])
    lap = torch.stack([verts[i] - verts[nb[i]].mean(0) for i in range(verts.shape[0])])
    return lap.square().sum()


def stub(*args, **kwargs):
    raise NotImplementedError()


def _fails(res, *words):
    assert not res.passed, res.verdict()
    msg = res.message.lower()
    assert all(w.lower() in msg for w in words), res.verdict()


# --- references and library ----------------------------------------------------------------------
def test_references_pass():
    assert checks.check_soft_coverage(soft_coverage, quiet=True).passed
    assert checks.check_iou_loss(iou_loss, quiet=True).passed
    assert checks.check_laplacian_loss(laplacian_loss, quiet=True).passed


def test_library_functions_pass():
    from course_lib.geometry import laplacian_loss as lib_lap
    from course_lib.render import silhouette_iou_loss

    assert checks.check_iou_loss(lambda p, t: silhouette_iou_loss(p, t, eps=0.0), quiet=True).passed
    assert checks.check_laplacian_loss(lib_lap, quiet=True).passed


def test_stubs_are_not_implemented():
    for chk in (checks.check_soft_coverage, checks.check_iou_loss, checks.check_laplacian_loss):
        assert chk(stub, quiet=True).status == "not_implemented"
        assert chk(lambda *a: ..., quiet=True).status == "not_implemented"


# --- soft coverage mutations ---------------------------------------------------------------------
def test_coverage_reversed_sign():
    def wrong(p, tri, s):
        return 1 - soft_coverage(p, tri, s)
    _fails(checks.check_soft_coverage(wrong, quiet=True), "sign is reversed")


def test_coverage_no_sign():
    _fails(checks.check_soft_coverage(lambda p, tri, s: torch.sigmoid(-_edge_d2(p, tri) / s), quiet=True),
           "no sign")


def test_coverage_unsquared():
    def wrong(p, tri, s):
        sign = torch.where(_inside(p, tri), 1.0, -1.0).to(p.dtype)
        return torch.sigmoid(sign * _edge_d2(p, tri).sqrt() / s)
    _fails(checks.check_soft_coverage(wrong, quiet=True), "squared distance")


def test_coverage_sigma_multiplied():
    def wrong(p, tri, s):
        sign = torch.where(_inside(p, tri), 1.0, -1.0).to(p.dtype)
        return torch.sigmoid(sign * _edge_d2(p, tri) * s)
    _fails(checks.check_soft_coverage(wrong, quiet=True), "divide")


def test_coverage_distance_to_corners():
    def wrong(p, tri, s):
        sign = torch.where(_inside(p, tri), 1.0, -1.0).to(p.dtype)
        return torch.sigmoid(sign * ((p[:, None] - tri[None]) ** 2).sum(-1).amin(1) / s)
    _fails(checks.check_soft_coverage(wrong, quiet=True), "corner")


def test_coverage_one_orientation_only():
    def wrong(p, tri, s):
        sign = torch.where(_inside(p, tri, both=False), 1.0, -1.0).to(p.dtype)
        return torch.sigmoid(sign * _edge_d2(p, tri) / s)
    _fails(checks.check_soft_coverage(wrong, quiet=True), "order of the corners")


def test_coverage_detached():
    def wrong(p, tri, s):
        return soft_coverage(p, tri.detach(), s)
    _fails(checks.check_soft_coverage(wrong, quiet=True), "gradient")


def test_coverage_nan():
    def wrong(p, tri, s):
        out = soft_coverage(p, tri, s).clone()
        out[0] = float("nan")
        return out
    _fails(checks.check_soft_coverage(wrong, quiet=True), "nan")


# --- IoU loss mutations ----------------------------------------------------------------------------
def test_iou_returns_iou():
    _fails(checks.check_iou_loss(lambda p, t: 1 - iou_loss(p, t), quiet=True), "1 - iou")


def test_iou_union_without_intersection():
    def wrong(p, t):
        return (1 - (p * t).sum((1, 2)) / (p + t).sum((1, 2))).mean()
    _fails(checks.check_iou_loss(wrong, quiet=True), "intersection term")


def test_iou_dice():
    def wrong(p, t):
        return (1 - 2 * (p * t).sum((1, 2)) / (p + t).sum((1, 2))).mean()
    _fails(checks.check_iou_loss(wrong, quiet=True), "dice")


def test_iou_no_mean():
    def wrong(p, t):
        return 1 - (p * t).sum((1, 2)) / (p + t - p * t).sum((1, 2))
    _fails(checks.check_iou_loss(wrong, quiet=True), "mean")


def test_iou_pooled_batch():
    def wrong(p, t):
        return 1 - (p * t).sum() / (p + t - p * t).sum()
    _fails(checks.check_iou_loss(wrong, quiet=True), "pooled")


def test_iou_detached():
    def wrong(p, t):
        return iou_loss(p.detach(), t)
    _fails(checks.check_iou_loss(wrong, quiet=True), "gradient")


# --- Laplacian mutations ------------------------------------------------------------------------------
def test_laplacian_mean_over_vertices():
    def wrong(v, f):
        return laplacian_loss(v, f) / v.shape[0]
    _fails(checks.check_laplacian_loss(wrong, quiet=True), "sum over vertices")


def test_laplacian_unsquared():
    def wrong(v, f):
        nb = _neighbours(f, v.shape[0])
        return torch.stack([(v[i] - v[nb[i]].mean(0)).norm() for i in range(v.shape[0])]).sum()
    _fails(checks.check_laplacian_loss(wrong, quiet=True), "square")


def test_laplacian_duplicate_edges():
    def wrong(v, f):
        nb = [[] for _ in range(v.shape[0])]
        for a, b, c in f.tolist():
            for i, j in ((a, b), (b, c), (c, a)):
                nb[i].append(j)
                nb[j].append(i)
        return torch.stack([v[i] - v[nb[i]].mean(0) for i in range(v.shape[0])]).square().sum()
    _fails(checks.check_laplacian_loss(wrong, quiet=True), "counts once")


def test_laplacian_self_included():
    def wrong(v, f):
        nb = _neighbours(f, v.shape[0])
        return torch.stack([v[i] - v[nb[i] + [i]].mean(0) for i in range(v.shape[0])]).square().sum()
    _fails(checks.check_laplacian_loss(wrong, quiet=True), "itself")


def test_laplacian_not_normalised():
    def wrong(v, f):
        nb = _neighbours(f, v.shape[0])
        return torch.stack([len(nb[i]) * v[i] - v[nb[i]].sum(0) for i in range(v.shape[0])]).square().sum()
    _fails(checks.check_laplacian_loss(wrong, quiet=True), "degree")


def test_laplacian_detached():
    def wrong(v, f):
        return laplacian_loss(v.detach(), f)
    _fails(checks.check_laplacian_loss(wrong, quiet=True), "gradient")


def test_laplacian_absolute_positions():
    def wrong(v, f):  # penalises distance to the origin instead of to the neighbours' mean
        return v.square().sum() * 0 + laplacian_loss(v, f) + 1e-3 * v.sum()
    _fails(checks.check_laplacian_loss(wrong, quiet=True))


# --- hidden parts (the grader's COURSE_HIDDEN_CHECKS=1) ------------------------------------------------
_hidden = hidden_results  # (public result, hidden result)


def test_hidden_parts_pass_the_references(monkeypatch):
    from course_lib.checks import _core

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    for check, fn in ((checks.check_soft_coverage, soft_coverage), (checks.check_iou_loss, iou_loss),
                      (checks.check_laplacian_loss, laplacian_loss)):
        public, hid = _hidden(check, fn)
        assert public.passed, public.verdict()
        assert hid.passed, hid.verdict()


def test_hidden_parts_catch_what_the_public_parts_miss(monkeypatch):
    from course_lib.checks import _core

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")

    def hand_sigmoid(p, tri, s):  # exp(x) / (1 + exp(x)): right for moderate x, inf / inf = NaN for a small sigma
        x = torch.where(_inside(p, tri), 1.0, -1.0).to(p.dtype) * _edge_d2(p, tri) / s
        return torch.exp(x) / (1 + torch.exp(x))

    def coverage_float32(p, tri, s):
        return soft_coverage(p, tri, s).float()

    for fn, words in ((hand_sigmoid, ("overflow", "torch.sigmoid")), (coverage_float32, ("should stay float64",))):
        public, hid = _hidden(checks.check_soft_coverage, fn)
        assert public.passed, public.verdict()
        _fails(hid, *words)

    def iou_union_detached(pred, target):  # right value, but the denominator gets no gradient
        inter = (pred * target).sum((1, 2))
        union = (pred + target - pred * target).sum((1, 2)).detach()
        return (1 - inter / union).mean()

    public, hid = _hidden(checks.check_iou_loss, iou_union_detached)
    assert public.passed, public.verdict()
    _fails(hid, "gradient ignores the union", "detach")

    def lap_mean_detached(verts, faces):  # right value, but the neighbours' mean is a constant for autograd
        nb = _neighbours(faces, verts.shape[0])
        means = torch.stack([verts[nb[i]].mean(0) for i in range(verts.shape[0])]).detach()
        return (verts - means).square().sum()

    def lap_centred_in_place(verts, faces):  # "for stability" centres the caller's vertices: same value
        if not verts.requires_grad:  # (autograd refuses it on a leaf that requires grad)
            verts -= verts.mean(0)
        return laplacian_loss(verts, faces)

    public, hid = _hidden(checks.check_laplacian_loss, lap_mean_detached)
    assert public.passed, public.verdict()
    _fails(hid, "neighbours' mean as a constant")
    public, hid = _hidden(checks.check_laplacian_loss, lap_centred_in_place)
    assert public.passed, public.verdict()
    _fails(hid, "in place")


def test_hidden_parts_flag_a_wrapper_around_the_library(monkeypatch):
    from course_lib.checks import _core
    from course_lib.geometry import laplacian_loss as lib_lap
    from course_lib.render import silhouette_iou_loss

    monkeypatch.setenv(_core.HIDDEN_ENV, "1")
    _, hid = _hidden(checks.check_iou_loss, lambda p, t: silhouette_iou_loss(p, t, eps=0.0))
    _fails(hid, "delegated to course_lib.render.losses.silhouette_iou_loss")
    _, hid = _hidden(checks.check_laplacian_loss, lambda v, f: lib_lap(v, f))
    _fails(hid, "delegated to course_lib.geometry.mesh_reg.laplacian_loss")


# --- issue #34: the fuzzy-set IoU (probe ch09_ch10/t1.py) and other soft-mask mistakes, named on a soft target ----
def _iou_with(inter_fn, union_fn):
    def fn(pred, target):
        return (1 - inter_fn(pred, target).sum((1, 2)) / union_fn(pred, target).sum((1, 2))).mean()

    return fn


def test_iou_fuzzy_min_max():
    _fails(checks.check_iou_loss(_iou_with(torch.minimum, torch.maximum), quiet=True),
           "two soft silhouettes", "fuzzy-set IoU")


def test_iou_max_union():
    _fails(checks.check_iou_loss(_iou_with(lambda p, t: p * t, torch.maximum), quiet=True),
           "two soft silhouettes", "not sum(max(p, t))")


def test_iou_min_intersection():
    _fails(checks.check_iou_loss(_iou_with(torch.minimum, lambda p, t: p + t - p * t), quiet=True),
           "two soft silhouettes", "not sum(min(p, t))")


def test_iou_thresholded():
    def hard(pred, target):
        return iou_loss((pred > 0.5).to(pred.dtype), (target > 0.5).to(pred.dtype))

    _fails(checks.check_iou_loss(hard, quiet=True), "thresholded")


# --- issue #34: the aggregation 1 - prod_f (1 - D_f) over the valid faces (lab 09, exercise 2) --------------------
def aggregate(coverage, valid):
    miss = torch.where(valid[:, :, None, None], 1.0 - coverage, torch.ones_like(coverage))
    return 1.0 - miss.prod(dim=1)


def aggregate_log(coverage, valid):  # log space, as the library's rasteriser
    log_miss = torch.where(valid[:, :, None, None], torch.log1p(-coverage), torch.zeros_like(coverage))
    return -torch.expm1(log_miss.sum(1))


def aggregate_loop(coverage, valid):  # a loop over the faces, multiplying by the mask
    miss = torch.ones_like(coverage[:, 0])
    for f in range(coverage.shape[1]):
        miss = miss * (1.0 - coverage[:, f] * valid[:, f, None, None])
    return 1.0 - miss


def test_aggregate_references_pass():
    for fn in (aggregate, aggregate_loop):
        assert checks.check_aggregate_silhouette(fn, quiet=True).passed


def test_aggregate_stub():
    assert checks.check_aggregate_silhouette(stub, quiet=True).status == "not_implemented"


def _masked(d, v):
    return d * v[:, :, None, None]


@pytest.mark.parametrize("fn, words", [
    (lambda d, v: _masked(d, v).sum(1).clamp(max=1.0), ("sum of the coverages clamped to 1",)),
    (lambda d, v: _masked(d, v).sum(1), ("sum of the coverages",)),
    (lambda d, v: _masked(d, v).amax(1), ("largest coverage (max over faces)",)),
    (lambda d, v: _masked(d, v).mean(1), ("mean coverage",)),
    (lambda d, v: torch.where(v[:, :, None, None], d, torch.ones_like(d)).prod(1), ("product of the coverages",)),
    (lambda d, v: _masked(d, v).prod(1), ("masked coverages were multiplied",)),
    (lambda d, v: torch.where(v[:, :, None, None], 1 - d, torch.ones_like(d)).prod(1), ("the 1 - is missing",)),
    (lambda d, v: 1 - (1 - d).prod(1), ("valid mask is ignored",)),
    (lambda d, v: aggregate(d, ~v), ("mask is inverted",)),
    (lambda d, v: 1 - ((1 - d) * v[:, :, None, None]).prod(1), ("factor 1 in the product, not 0",)),
    (lambda d, v: 1 - (1 - _masked(d, v)).prod(0), ("over the batch (dim 0)",)),
    (lambda d, v: 1 - (1 - _masked(d, v)).prod(-1), ("over the image columns",)),
    (lambda d, v: 1 - (1 - _masked(d, v)).prod(2), ("over the image rows",)),
    (lambda d, v: 1 - (1 - _masked(d, v)).prod(1, keepdim=True), ("without keepdim",)),
    (lambda d, v: aggregate(d, v).detach(), ("no gradient",)),
    (lambda d, v: aggregate(d, v).double(), ("should stay float32",)),
])
def test_aggregate_wrong_answers_are_named(fn, words):
    _fails(checks.check_aggregate_silhouette(fn, quiet=True), *words)


def test_aggregate_log_space_at_full_coverage():
    def naive_log(d, v):  # log(1 - D) is -inf at D = 1, and multiplying by the mask gives 0 * -inf = NaN
        return 1 - torch.exp((torch.log(1 - d) * v[:, :, None, None]).sum(1))

    _fails(checks.check_aggregate_silhouette(naive_log, quiet=True), "coverage is exactly 1")
    assert checks.check_aggregate_silhouette(aggregate_log, quiet=True).passed


def test_aggregate_in_place():
    def in_place(d, v):
        d.mul_(-1).add_(1)  # 1 - D written back into the caller's tensor
        return 1 - torch.where(v[:, :, None, None], d, torch.ones_like(d)).prod(1)

    _fails(checks.check_aggregate_silhouette(in_place, quiet=True), "in place")


def test_aggregate_matches_the_library_rasteriser():
    """The check's answer is SoftRas' aggregation: the library's dense silhouette of a two-triangle mesh equals the
    aggregation of the per-face coverages of the same mesh."""
    from course_lib.render import rasterize_silhouette
    from course_lib.render.cameras import look_at_cameras

    verts = torch.tensor([[[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [-0.5, 0.5, 0.0]]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    cams = look_at_cameras(30.0, 20.0, size=16)
    both = rasterize_silhouette(verts, faces, cams, 16, sigma=1e-3, method="dense", cull_eps=1e-12)
    per_face = torch.stack([rasterize_silhouette(verts, faces[i:i + 1], cams, 16, sigma=1e-3, method="dense",
                                                 cull_eps=1e-12)[0] for i in range(2)])[None]
    assert torch.allclose(aggregate(per_face, torch.ones(1, 2, dtype=torch.bool)), both, atol=1e-5)


# --- issue #34: more plausible mistakes of exercises 1, 3 and 4, each named ----------------------------------------
def _line_d2(p, a, b):
    e = b - a
    t = ((p - a) * e).sum(-1) / (e * e).sum()
    return ((p - a - t[:, None] * e) ** 2).sum(-1)


def _coverage_with(d2_fn, scale=lambda s: s):
    def fn(points, tri, sigma):
        sign = torch.where(_inside(points, tri), 1.0, -1.0).to(points.dtype)
        return torch.sigmoid(sign * d2_fn(points, tri) / scale(sigma))

    return fn


@pytest.mark.parametrize("fn, words", [
    (_coverage_with(lambda p, t: torch.stack([_line_d2(p, t[i], t[(i + 1) % 3]) for i in range(3)]).amin(0)),
     ("infinite lines",)),
    (_coverage_with(lambda p, t: torch.stack([_seg_d2(p, t[i], t[(i + 1) % 3]) for i in range(3)]).amax(0)),
     ("not the farthest",)),
    (_coverage_with(_edge_d2, lambda s: s * s), ("not by sigma^2",)),
    (_coverage_with(_edge_d2, lambda s: s ** 0.5), ("not by sqrt(sigma)",)),
    (lambda p, t, s: _inside(p, t).to(p.dtype) + 0 * t.sum(), ("hard mask",)),
])
def test_coverage_more_mistakes(fn, words):
    _fails(checks.check_soft_coverage(fn, quiet=True), *words)


def _iou_parts(inter, union, post=lambda r: 1 - r, dims=(1, 2)):
    def fn(pred, target):
        return post(inter(pred, target).sum(dims) / union(pred, target).sum(dims)).mean()

    return fn


def _prod(p, t):
    return p * t


def _prob_union(p, t):
    return p + t - p * t


@pytest.mark.parametrize("fn, words", [
    (_iou_parts(_prod, _prob_union, post=lambda r: (1 - r) ** 2), ("not (1 - IoU)^2",)),
    (_iou_parts(_prod, _prob_union, post=lambda r: -torch.log(r)), ("not -log(IoU)",)),
    (_iou_parts(_prod, lambda p, t: p), ("not sum(p)",)),
    (_iou_parts(_prod, lambda p, t: t), ("not sum(t)",)),
    (_iou_parts(_prod, _prob_union, dims=-1), ("last axis only",)),
])
def test_iou_more_mistakes(fn, words):
    _fails(checks.check_iou_loss(fn, quiet=True), *words)


def test_laplacian_directed_edges_and_mean_over_xyz():
    def directed(verts, faces):
        nb = [set() for _ in range(verts.shape[0])]
        for a, b, c in faces.tolist():
            for i, j in ((a, b), (b, c), (c, a)):
                nb[i].add(j)
        lap = torch.stack([verts[i] - verts[sorted(nb[i])].mean(0) if nb[i] else 0 * verts[i]
                           for i in range(verts.shape[0])])
        return lap.square().sum()

    _fails(checks.check_laplacian_loss(directed, quiet=True), "directed edges")
    _fails(checks.check_laplacian_loss(lambda v, f: laplacian_loss(v, f) / 3, quiet=True), "averaged over the 3")


def test_aggregate_hidden_part(monkeypatch):
    from check_helpers import hidden_results_on

    public, hid = hidden_results_on(monkeypatch, checks.check_aggregate_silhouette, aggregate)
    assert public.passed and hid.passed, hid.verdict()
    public, hid = hidden_results_on(monkeypatch, checks.check_aggregate_silhouette, aggregate_log)
    assert public.passed and hid.passed, hid.verdict()

    def with_view(d, v):  # .view needs a contiguous tensor: right on the public inputs
        b, f, h, w = d.shape
        miss = torch.where(v[:, :, None], 1.0 - d.view(b, f, h * w), torch.ones(1, dtype=d.dtype))
        return (1.0 - miss.prod(1)).view(b, h, w)

    public, hid = hidden_results_on(monkeypatch, checks.check_aggregate_silhouette, with_view)
    assert public.passed, public.verdict()
    _fails(hid, "view size is not compatible", "reshape")
