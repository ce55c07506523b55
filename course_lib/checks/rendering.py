"""Self-checks of chapter 09 (``labs/09_differentiable_rendering_lab.ipynb``): soft coverage, aggregation, IoU, Laplacian.

Introduced in ``lectures/09_differentiable_rendering.ipynb``.  The references are written here
independently of :mod:`course_lib.render` (NumPy point-to-segment distances, set IoU, explicit
neighbour lists), and each wrong answer students often write is recognised and named.
"""

from __future__ import annotations

import numpy as np
import torch

from ._core import CheckFailed, call_student, expect, expect_close, expect_tensor, self_check

__all__ = ["check_soft_coverage", "check_aggregate_silhouette", "check_iou_loss", "check_laplacian_loss"]


# --------------------------------------------------------------------------------------------
# 1. soft coverage of one triangle
# --------------------------------------------------------------------------------------------
def _seg_d2(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    e = b - a
    t = np.clip(((p - a) @ e) / max(float(e @ e), 1e-300), 0.0, 1.0)
    q = a + t[:, None] * e
    return ((p - q) ** 2).sum(1)


def _line_d2(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distance to the infinite line through ``a`` and ``b`` (a wrong answer the check names)."""
    e = b - a
    t = ((p - a) @ e) / max(float(e @ e), 1e-300)
    return ((p - a - t[:, None] * e) ** 2).sum(1)


def _inside(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    def cross(o, a, b):
        return (a[0] - o[0]) * (b[:, 1] - o[1]) - (a[1] - o[1]) * (b[:, 0] - o[0])

    c = [cross(tri[i], tri[(i + 1) % 3], p) for i in range(3)]
    return ((c[0] > 0) & (c[1] > 0) & (c[2] > 0)) | ((c[0] < 0) & (c[1] < 0) & (c[2] < 0))


def _coverage_variants(p: np.ndarray, tri: np.ndarray, sigma: float) -> dict[str, np.ndarray]:
    d2 = np.minimum(np.minimum(_seg_d2(p, tri[0], tri[1]), _seg_d2(p, tri[1], tri[2])), _seg_d2(p, tri[2], tri[0]))
    ins = _inside(p, tri)
    sgn = np.where(ins, 1.0, -1.0)

    def sig(x):
        with np.errstate(over="ignore"):  # exp(-x) of a large x is inf: the sigmoid is then 0
            return 1.0 / (1.0 + np.exp(-x))

    dv = np.min(((p[:, None] - tri[None]) ** 2).sum(-1), axis=1)
    edges = [(tri[i], tri[(i + 1) % 3]) for i in range(3)]
    lines = np.min([_line_d2(p, a, b) for a, b in edges], axis=0)
    far = np.max([_seg_d2(p, a, b) for a, b in edges], axis=0)
    return {
        "ok": sig(sgn * d2 / sigma),
        "the sign is reversed: inside the triangle the coverage must be above 1/2 (delta = +1 inside, -1 outside)":
            sig(-sgn * d2 / sigma),
        "there is no sign: sigmoid(-d^2 / sigma) everywhere leaves the inside at or below 1/2; use +d^2 inside":
            sig(-d2 / sigma),
        "use the squared distance d^2, not the distance d": sig(sgn * np.sqrt(d2) / sigma),
        "divide d^2 by sigma (sigma is a temperature), do not multiply": sig(sgn * d2 * sigma),
        "d must be the distance to the nearest point of the triangle's edges (a segment), not to the nearest "
        "corner": sig(sgn * dv / sigma),
        "d must be the distance to the edge *segments*: you measured it to the infinite lines through the edges "
        "(clamp t to [0, 1] so that the nearest point stays on the edge)": sig(sgn * lines / sigma),
        "d is the distance to the *nearest* edge (min over the three edges), not the farthest":
            sig(sgn * far / sigma),
        "divide d^2 by sigma, not by sigma^2 (sigma is already in squared units)": sig(sgn * d2 / sigma ** 2),
        "divide d^2 by sigma, not by sqrt(sigma) (sigma is already in squared units)": sig(sgn * d2 / np.sqrt(sigma)),
        "that is a hard mask (1 inside, 0 outside): the soft coverage is sigmoid(delta d^2 / sigma), smooth across "
        "the edges (a hard mask has no gradient)": ins.astype(float),
    }


_ORIENTATION = ("the inside test depends on the order of the corners: the counter-clockwise triangle passes but "
                "the clockwise one counts as outside everywhere; accept both orientations (or use |area|)")


@self_check
def check_soft_coverage(fn) -> str:
    """``fn(points (P, 2), triangle (3, 2), sigma) -> (P,)``: SoftRas' ``sigmoid(delta d^2 / sigma)``.

    ``d`` is the distance from each point to the triangle (its nearest edge point), ``delta = +1``
    for points strictly inside, ``-1`` outside; points and triangle in the same 2D units.
    """
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(300, 2, generator=g, dtype=torch.float64) * 3.0 - 1.0
    ccw = torch.tensor([[0.0, 0.0], [1.4, 0.2], [0.3, 1.1]], dtype=torch.float64)
    cw = ccw[[0, 2, 1]]
    for tri, what in ((ccw, "a counter-clockwise triangle"), (cw, "the same triangle listed clockwise")):
        for sigma in (0.05, 0.3):
            out = call_student(fn, pts, tri, sigma)
            expect_tensor(out, f"soft_coverage(points (300, 2), {what}, sigma={sigma})", shape=(300,))
            variants = _coverage_variants(pts.numpy(), tri.numpy(), sigma)
            ref = variants.pop("ok")
            o = out.detach().double().numpy()
            if np.allclose(o, ref, atol=1e-5):
                continue
            if tri is cw:  # the counter-clockwise case passed already
                wrong = variants["there is no sign: sigmoid(-d^2 / sigma) everywhere leaves the inside at or "
                                 "below 1/2; use +d^2 inside"]
                if np.allclose(o, wrong, atol=1e-5):
                    raise CheckFailed(_ORIENTATION)
            for name, val in variants.items():
                if np.allclose(o, val, atol=1e-5):
                    raise CheckFailed(f"{what}, sigma={sigma}: {name}")
            expect_close(out, torch.as_tensor(ref), f"soft coverage of {what} (sigma={sigma})", atol=1e-5)
    # float32 input, a gradient that reaches the triangle
    tri = ccw.float().clone().requires_grad_(True)
    out = call_student(fn, pts.float(), tri, 0.1)
    expect_tensor(out, "soft_coverage in float32", shape=(300,))
    expect(out.requires_grad, "the coverage carries no gradient: do not detach, use .item() or NumPy on the triangle")
    out.sum().backward()
    expect(tri.grad is not None and bool(torch.isfinite(tri.grad).all()) and float(tri.grad.abs().sum()) > 0,
           "no (or a non-finite) gradient reaches the triangle's corners")
    return "sigmoid(delta d^2 / sigma), both orientations, gradient reaches the corners"


# --------------------------------------------------------------------------------------------
# 1b. aggregation of the faces' coverages into a silhouette
# --------------------------------------------------------------------------------------------
def _aggregate_variants(d: np.ndarray, v: np.ndarray) -> dict[str, np.ndarray]:
    m = v[:, :, None, None]
    dv = np.where(m, d, 0.0)
    n = np.maximum(m.sum(1), 1)
    return {
        "ok": 1.0 - np.where(m, 1.0 - d, 1.0).prod(1),
        "the valid mask is ignored: faces that are not drawn (valid False) must not cover any pixel":
            1.0 - (1.0 - d).prod(1),
        "the mask is inverted: only the faces with valid True are drawn": 1.0 - np.where(m, 1.0, 1.0 - d).prod(1),
        "every pixel is 1: a face that is not drawn must be a factor 1 in the product, not 0 (multiplying (1 - D) by "
        "the mask makes it 0, so one hidden face covers the whole image)": 1.0 - np.where(m, 1.0 - d, 0.0).prod(1),
        "that is the sum of the coverages clamped to 1: aggregate as a logical or of independent coverages, "
        "1 - prod_f (1 - D_f) (a sum counts overlaps twice and has no gradient where it is clamped)":
            np.minimum(dv.sum(1), 1.0),
        "that is the sum of the coverages (above 1 where faces overlap): aggregate with 1 - prod_f (1 - D_f)":
            dv.sum(1),
        "that is the largest coverage (max over faces): 1 - prod_f (1 - D_f) combines every face's coverage (and "
        "sends the gradient to all of them, not only to the largest)": dv.max(1),
        "that is the mean coverage over the valid faces: aggregate with 1 - prod_f (1 - D_f)": dv.sum(1) / n,
        "that is the mean coverage over faces: aggregate with 1 - prod_f (1 - D_f)": dv.mean(1),
        "that is the product of the coverages prod_f D_f (a pixel covered by all faces at once, a logical and); "
        "the silhouette is 1 - prod_f (1 - D_f) (covered by at least one face)": np.where(m, d, 1.0).prod(1),
        "the masked coverages were multiplied (prod_f of D_f times valid): the silhouette is 1 - prod_f (1 - D_f)":
            dv.prod(1),
        "the 1 - is missing: prod_f (1 - D_f) is the probability that no face covers the pixel; the silhouette is "
        "1 minus it": np.where(m, 1.0 - d, 1.0).prod(1),
    }


@self_check
def check_aggregate_silhouette(fn) -> str:
    """``fn(coverage (B, F, H, W), valid (B, F) bool) -> (B, H, W)``: ``1 - prod_f (1 - D_f)`` over the valid faces."""
    g = torch.Generator().manual_seed(3)
    b, f, h, w = 2, 5, 4, 6  # all different, so that a reduction over the wrong axis shows in the shape
    cov = torch.rand(b, f, h, w, generator=g, dtype=torch.float64) * 0.98 + 0.01
    valid = torch.tensor([[True, False, True, True, False], [False, True, True, True, True]])
    c_in, v_in = cov.clone(), valid.clone()
    out = call_student(fn, c_in, v_in)
    if isinstance(out, torch.Tensor):
        wrong_axis = {(f, h, w): "over the batch (dim 0)", (b, f, w): "over the image rows (dim 2)",
                      (b, f, h): "over the image columns (dim 3)"}
        if tuple(out.shape) in wrong_axis and tuple(out.shape) != (b, h, w):
            raise CheckFailed(f"you aggregated {wrong_axis[tuple(out.shape)]}: the faces are dim 1 of coverage "
                              f"(B, F, H, W); reduce over dim=1 to get (B, H, W)")
        if tuple(out.shape) == (b, 1, h, w):
            raise CheckFailed("the result has shape (B, 1, H, W): reduce over the faces without keepdim, (B, H, W)")
    expect_tensor(out, f"aggregate_silhouette(coverage ({b}, {f}, {h}, {w}), valid ({b}, {f}))", shape=(b, h, w))
    expect(torch.equal(c_in, cov) and torch.equal(v_in, valid),
           "coverage or valid was modified in place (coverage *= ..., 1 - coverage written back): the caller's tensors "
           "must stay as they were")
    variants = _aggregate_variants(cov.numpy(), valid.numpy())
    ref = variants.pop("ok")
    o = out.detach().double().numpy()
    if not np.allclose(o, ref, atol=1e-6):
        for name, val in variants.items():
            if np.allclose(o, val, atol=1e-6):
                raise CheckFailed(name)
        expect_close(out, torch.as_tensor(ref), "the silhouette 1 - prod_f (1 - D_f) over the valid faces", atol=1e-6)
    # edge cases: one face (the silhouette is its coverage), no valid face (0), full coverage (1), no coverage (0)
    one = call_student(fn, cov[:, :1].clone(), torch.ones(b, 1, dtype=torch.bool))
    expect_close(one, cov[:, 0], "the silhouette of a single face (it must equal that face's coverage)", atol=1e-9)
    none = call_student(fn, cov.clone(), torch.zeros(b, f, dtype=torch.bool))
    expect_close(none, torch.zeros(b, h, w, dtype=torch.float64), "the silhouette when no face is valid (nothing is "
                 "drawn: 0 everywhere)", atol=1e-9)
    sat = cov.clone()
    sat[:, 2] = 1.0  # face 2 (valid in both images) covers every pixel fully: the sigmoid saturates inside a face
    sat[0, 1] = sat[1, 0] = 1.0  # and so does a face that is not valid (log(1 - D) * mask is then -inf * 0 = NaN)
    full = call_student(fn, sat, valid.clone())
    expect_tensor(full, "the silhouette with a face of coverage exactly 1", shape=(b, h, w), finite=False)
    if not bool(torch.isfinite(full).all()):
        raise CheckFailed("NaN or inf where a face's coverage is exactly 1: log(1 - D) is -inf there; use the product "
                          "of (1 - D), or torch.log1p(-D) with exp of the sum (exp(-inf) = 0 is fine), never 0 * inf")
    expect_close(full, torch.ones(b, h, w, dtype=torch.float64), "the silhouette where a valid face covers every "
                 "pixel fully (coverage 1: the silhouette is 1)", atol=1e-9)
    # float32, a gradient that reaches every valid face's coverage (and none of the others)
    x = cov.float().clone().requires_grad_(True)
    out = call_student(fn, x, valid.clone())
    expect(isinstance(out, torch.Tensor) and out.requires_grad,
           "the silhouette carries no gradient to the coverages: do not detach or convert to NumPy")
    expect(out.dtype == torch.float32, f"for float32 coverages the silhouette should stay float32, got {out.dtype}")
    (grad,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    expect(grad is not None and bool(torch.isfinite(grad).all()), "the gradient with respect to the coverages is "
           "missing or not finite")
    m = valid[:, :, None, None].expand_as(grad)
    expect(bool((grad[m] > 0).all()), "every valid face's coverage should get a positive gradient (a larger D_f "
           "covers more): with max over faces only the largest one does")
    expect(bool((grad[~m] == 0).all()), "faces that are not valid got a gradient: leave them out of the product")
    return "1 - prod_f (1 - D_f) over the valid faces, along dim 1; one face, none, full coverage; gradient to every face"


# --------------------------------------------------------------------------------------------
# 2. silhouette IoU loss
# --------------------------------------------------------------------------------------------
def _hard_iou_loss(p: np.ndarray, t: np.ndarray) -> float:
    ph, th = (p > 0.5).astype(float), (t > 0.5).astype(float)
    inter, union = (ph * th).sum((1, 2)), np.maximum(ph, th).sum((1, 2))
    return float(np.mean(1.0 - inter / np.maximum(union, 1e-12)))


def _iou_variants(p: np.ndarray, t: np.ndarray) -> dict[str, float]:
    inter = (p * t).sum((1, 2))
    union = (p + t - p * t).sum((1, 2))
    ok = float(np.mean(1.0 - inter / union))
    return {
        "ok": ok,
        "you return the IoU; the loss is 1 - IoU (it must decrease as the silhouettes agree)":
            float(np.mean(inter / union)),
        "the union is sum(p + t - p t): you left out the intersection term (sum(p + t) counts it twice)":
            float(np.mean(1.0 - inter / (p + t).sum((1, 2)))),
        "that is the Dice loss 1 - 2|p t| / (|p| + |t|), not 1 - IoU":
            float(np.mean(1.0 - 2 * inter / (p + t).sum((1, 2)))),
        "the union of soft masks is sum(p + t - p t), not sum(max(p, t))":
            float(np.mean(1.0 - inter / np.maximum(p, t).sum((1, 2)))),
        "that is the fuzzy-set IoU sum(min(p, t)) / sum(max(p, t)); for soft silhouettes the loss is 1 - "
        "sum(p t) / sum(p + t - p t) (product intersection, probabilistic union)":
            float(np.mean(1.0 - np.minimum(p, t).sum((1, 2)) / np.maximum(p, t).sum((1, 2)))),
        "the intersection of soft masks is sum(p t), not sum(min(p, t))":
            float(np.mean(1.0 - np.minimum(p, t).sum((1, 2)) / union)),
        "you thresholded the silhouettes (p > 1/2): the loss must use the soft values (a threshold has no gradient)":
            _hard_iou_loss(p, t),
        "compute one IoU per image and average the losses; you pooled the whole batch into one ratio":
            float(1.0 - inter.sum() / union.sum()),
        "the loss is 1 - IoU, not (1 - IoU)^2": float(np.mean((1.0 - inter / union) ** 2)),
        "the loss is 1 - IoU, not -log(IoU)": float(np.mean(-np.log(inter / union))),
        "the union is sum(p + t - p t), not sum(p) (the prediction alone)": float(np.mean(1.0 - inter / p.sum((1, 2)))),
        "the union is sum(p + t - p t), not sum(t) (the target alone)": float(np.mean(1.0 - inter / t.sum((1, 2)))),
        "sum over both image axes, (1, 2): you summed over the last axis only, one IoU per image row":
            float(np.mean(1.0 - (p * t).sum(-1) / (p + t - p * t).sum(-1))),
        "sum(p t) per image is the intersection: you multiplied the sums sum(p) sum(t) instead":
            float(np.mean(1.0 - p.sum((1, 2)) * t.sum((1, 2)) / union)),
    }


@self_check
def check_iou_loss(fn) -> str:
    """``fn(pred (B, H, W), target (B, H, W)) -> scalar``: ``mean_b (1 - sum(p t) / sum(p + t - p t))``."""
    g = torch.Generator().manual_seed(1)
    pred = torch.rand(3, 9, 11, generator=g, dtype=torch.float64)
    target = (torch.rand(3, 9, 11, generator=g, dtype=torch.float64) > 0.5).double()
    target[1, :4] = 1.0  # images of different sizes of union, so the pooled ratio differs
    out = call_student(fn, pred, target)
    if isinstance(out, torch.Tensor) and out.dim() == 1 and out.numel() == 3:
        raise CheckFailed("the loss should be one number (a 0-d tensor): average the per-image losses with .mean()")
    expect_tensor(out, "iou_loss(pred (3, 9, 11), target)", shape=())
    # a binary target (the fit's), then a soft one (two soft silhouettes): with a binary target min(p, t) = p t and
    # max(p, t) = p + t - p t, so only the soft target tells the fuzzy-set IoU from the soft IoU
    soft_target = torch.rand(3, 9, 11, generator=g, dtype=torch.float64)
    for tgt, what in ((target, "a soft prediction and a binary target"), (soft_target, "two soft silhouettes")):
        if tgt is soft_target:
            out = call_student(fn, pred, tgt)
            expect_tensor(out, "iou_loss(pred (3, 9, 11), a soft target (3, 9, 11))", shape=())
        variants = _iou_variants(pred.numpy(), tgt.numpy())
        ref = variants.pop("ok")
        val = float(out)
        if abs(val - ref) > 1e-6:
            for name, v in variants.items():
                if abs(val - v) < 1e-6:
                    raise CheckFailed(f"{what}: {name}")
            expect_close(out, torch.tensor(ref), f"iou_loss of {what}", atol=1e-6)
    same = call_student(fn, target, target)
    expect_close(same, torch.tensor(0.0), "iou_loss(t, t) (identical silhouettes)", atol=1e-5)
    p = pred.float().clone().requires_grad_(True)
    out = call_student(fn, p, target.float())
    expect(isinstance(out, torch.Tensor) and out.requires_grad,
           "the loss carries no gradient to pred: do not detach or convert to NumPy")
    out.backward()
    expect(p.grad is not None and bool(torch.isfinite(p.grad).all()), "the gradient with respect to pred is not finite")
    return "1 - IoU per image, averaged; 0 for identical silhouettes; differentiable"


# --------------------------------------------------------------------------------------------
# 3. uniform Laplacian regulariser
# --------------------------------------------------------------------------------------------
def _open_mesh() -> tuple[torch.Tensor, torch.Tensor]:
    """A 4 x 4 grid with random heights: boundary vertices, valences 2 to 6."""
    n = 4
    g = torch.Generator().manual_seed(2)
    t = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    y, x = torch.meshgrid(t, t, indexing="ij")
    v = torch.stack([x.reshape(-1), y.reshape(-1), 0.3 * torch.rand(n * n, generator=g, dtype=torch.float64)], -1)
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            faces += [[a, b, d], [a, d, c]]
    return v, torch.tensor(faces)


def _laplacian_variants(v: np.ndarray, f: np.ndarray) -> dict[str, float]:
    nb: list[set[int]] = [set() for _ in range(len(v))]
    mult: list[list[int]] = [[] for _ in range(len(v))]
    for a, b, c in f.tolist():
        for i, j in ((a, b), (b, c), (c, a)):
            nb[i].add(j)
            nb[j].add(i)
            mult[i].append(j)
            mult[j].append(i)
    directed: list[set[int]] = [set() for _ in range(len(v))]
    for a, b, c in f.tolist():
        for i, j in ((a, b), (b, c), (c, a)):
            directed[i].add(j)
    lap = np.stack([v[i] - v[sorted(nb[i])].mean(0) for i in range(len(v))])
    one_way = np.stack([v[i] - v[sorted(directed[i])].mean(0) if directed[i] else 0 * v[i] for i in range(len(v))])
    dup = np.stack([v[i] - v[mult[i]].mean(0) for i in range(len(v))])
    self_in = np.stack([v[i] - v[sorted(nb[i] | {i})].mean(0) for i in range(len(v))])
    unnorm = np.stack([len(nb[i]) * v[i] - v[sorted(nb[i])].sum(0) for i in range(len(v))])
    return {
        "ok": float((lap ** 2).sum()),
        "you return the mean over vertices; the loss is the sum over vertices of ||L x_i||^2":
            float((lap ** 2).sum(1).mean()),
        "square the Laplacian: sum_i ||x_i - mean of its neighbours||^2, not the norm": float(np.linalg.norm(lap, axis=1).sum()),
        "a neighbour shared by two faces counts once: build unique edges first (your mean weights "
        "inner edges twice)": float((dup ** 2).sum()),
        "the mean is over the neighbours only; you included the vertex itself": float((self_in ** 2).sum()),
        "divide by the degree: the uniform Laplacian is x_i - (1/deg_i) sum_j x_j, not deg_i x_i - sum_j x_j":
            float((unnorm ** 2).sum()),
        "each edge joins its two vertices both ways: you kept only the directed edges a->b, b->c, c->a of each face, "
        "so a vertex misses the neighbours of its boundary edges (add both directions)": float((one_way ** 2).sum()),
        "sum the squared norm over x, y, z (you averaged over the 3 coordinates)": float((lap ** 2).sum() / 3),
    }


@self_check
def check_laplacian_loss(fn) -> str:
    """``fn(verts (V, 3), faces (F, 3)) -> scalar``: ``sum_i ||x_i - mean of x over i's neighbours||^2``."""
    v, f = _open_mesh()
    out = call_student(fn, v, f)
    expect_tensor(out, "laplacian_loss(verts (16, 3), faces (18, 3))", shape=())
    variants = _laplacian_variants(v.numpy(), f.numpy())
    ref = variants.pop("ok")
    val = float(out)
    if abs(val - ref) > 1e-8 * max(1.0, ref):
        for name, x in variants.items():
            if abs(val - x) < 1e-8 * max(1.0, abs(x)):
                raise CheckFailed(name)
        expect_close(out, torch.tensor(ref), "laplacian_loss of a bumpy 4 x 4 grid", atol=1e-8, rtol=1e-6)
    flat = v.clone()
    flat[:, 2] = 0.0
    flat_ref = _laplacian_variants(flat.numpy(), f.numpy())["ok"]
    out_flat = call_student(fn, flat, f)
    expect_close(out_flat, torch.tensor(flat_ref), "laplacian_loss of the flat grid (only the border vertices "
                                                   "are off their neighbours' mean)", atol=1e-8)
    shifted = call_student(fn, v + torch.tensor([3.0, -1.0, 2.0], dtype=v.dtype), f)
    expect_close(shifted, torch.tensor(ref), "laplacian_loss of the translated mesh (must not change)", atol=1e-8)
    x = v.float().clone().requires_grad_(True)
    out = call_student(fn, x, f)
    expect(isinstance(out, torch.Tensor) and out.requires_grad, "the loss carries no gradient to the vertices")
    out.backward()
    expect(x.grad is not None and bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().sum()) > 0,
           "no (or a non-finite) gradient reaches the vertices")
    return "sum of squared uniform Laplacians; translation invariant; differentiable"


# --------------------------------------------------------------------------------------------
# hidden parts (run by the grader only): other sizes and units, float64 kept, edge cases, inputs left alone,
# gradients compared with independent ones (finite differences, closed forms)
# --------------------------------------------------------------------------------------------
def _ref_coverage(p: np.ndarray, tri: np.ndarray, sigma: float) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) of a large x is inf: the sigmoid is then 0, as it should be
        return _coverage_variants(p, tri, sigma)["ok"]


def _hidden_soft_coverage(fn) -> str:
    g = torch.Generator().manual_seed(90)
    tri = torch.tensor([[0.0, 0.0], [1.4, 0.2], [0.3, 1.1]], dtype=torch.float64)
    cases = (  # (points, triangle, sigma, what)
        (torch.tensor([[0.5, 0.4]], dtype=torch.float64), tri, 0.1, "one point inside"),
        (tri.clone(), tri, 0.1, "the three corners (d = 0: coverage 1/2)"),
        (torch.rand(200, 2, generator=g, dtype=torch.float64) * 3 - 1, tri, 1e-5,
         "a tiny sigma (coverage close to a hard 0/1 mask)"),
        (torch.rand(200, 2, generator=g, dtype=torch.float64) * 48,
         torch.tensor([[8.0, 40.0], [40.0, 30.0], [18.0, 6.0]], dtype=torch.float64), 10.0,
         "pixel units (a 48 x 48 image, sigma = 10 px^2)"),
        (torch.rand(100, 2, generator=g, dtype=torch.float64) * 3 - 1,
         torch.tensor([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]], dtype=torch.float64), 0.1,
         "a flat triangle (three corners on a line: nothing is inside)"),
    )
    for pts, tr, sigma, what in cases:
        p_in, t_in = pts.clone(), tr.clone()
        out = call_student(fn, p_in, t_in, sigma)
        expect_tensor(out, f"soft_coverage for {what}", shape=(pts.shape[0],), finite=False)
        expect(out.dtype == torch.float64, f"for float64 points and triangle the coverage should stay float64, got "
                                           f"{out.dtype} (no .float() or float32 constants)")
        expect(torch.equal(p_in, pts) and torch.equal(t_in, tr),
               "points or tri was modified in place (points -= ...): the caller's tensors must stay as they were")
        if not bool(torch.isfinite(out).all()):
            raise CheckFailed(f"NaN or inf for {what}: exp(x) / (1 + exp(x)) overflows for large |delta d^2 / sigma|; "
                              "use torch.sigmoid")
        ref = _ref_coverage(pts.numpy(), tr.numpy(), sigma)
        expect_close(out, torch.as_tensor(ref), f"the coverage for {what}", atol=1e-9, rtol=1e-7)
    # float32 in pixel units with a small sigma: a hand-made sigmoid overflows there
    pix = (torch.rand(200, 2, generator=g) * 48).float()
    tpx = torch.tensor([[8.0, 40.0], [40.0, 30.0], [18.0, 6.0]])
    out = call_student(fn, pix, tpx, 1.0)
    expect_tensor(out, "soft_coverage in float32 pixel units", shape=(200,), finite=False)
    if not bool(torch.isfinite(out).all()):
        raise CheckFailed("NaN or inf in float32 pixel units with sigma = 1 px^2: exp(x) overflows beyond x = 88; "
                          "use torch.sigmoid (it never overflows)")
    ref = _ref_coverage(pix.double().numpy(), tpx.double().numpy(), 1.0)
    expect_close(out, torch.as_tensor(ref), "the coverage in float32 pixel units (sigma = 1 px^2)", atol=1e-4)
    # the gradient with respect to the corners, against central differences of the reference
    pts = torch.rand(60, 2, generator=g, dtype=torch.float64) * 3 - 1
    t = tri.clone().requires_grad_(True)
    out = call_student(fn, pts, t, 0.3)
    expect(isinstance(out, torch.Tensor) and out.requires_grad, "the coverage carries no gradient to the triangle")
    (grad,) = torch.autograd.grad(out.sum(), t)
    fd = np.zeros((3, 2))
    h = 1e-6
    for i in range(3):
        for j in range(2):
            tp, tm = tri.numpy().copy(), tri.numpy().copy()
            tp[i, j] += h
            tm[i, j] -= h
            fd[i, j] = (_ref_coverage(pts.numpy(), tp, 0.3).sum() - _ref_coverage(pts.numpy(), tm, 0.3).sum()) / (2 * h)
    expect_close(grad, torch.as_tensor(fd), "the gradient of sum(coverage) with respect to the corners (vs central "
                 "differences): part of the computation is detached or not differentiable", atol=1e-5, rtol=1e-4)
    return "one point, corners, tiny sigma, pixel units in float32 and float64, a flat triangle, gradient, inputs kept"


def _hidden_iou_loss(fn) -> str:
    g = torch.Generator().manual_seed(91)
    for b, h, w in ((1, 5, 7), (4, 1, 1), (2, 16, 3)):
        pred = torch.rand(b, h, w, generator=g, dtype=torch.float64) * 0.9 + 0.05
        target = (torch.rand(b, h, w, generator=g, dtype=torch.float64) > 0.5).double()
        target[:, 0, 0] = 1.0  # no image without a target pixel
        p_in, t_in = pred.clone(), target.clone()
        out = call_student(fn, p_in, t_in)
        expect_tensor(out, f"iou_loss for B={b}, H={h}, W={w}", shape=())
        expect(out.dtype == torch.float64, f"for float64 silhouettes the loss should stay float64, got {out.dtype}")
        expect(torch.equal(p_in, pred) and torch.equal(t_in, target),
               "pred or target was modified in place: the caller's tensors must stay as they were")
        ref = float(np.mean([1.0 - float((pred[i] * target[i]).sum()) / float((pred[i] + target[i] - pred[i] * target[i]).sum())
                             for i in range(b)]))
        expect_close(out, torch.tensor(ref, dtype=torch.float64), f"iou_loss for B={b}, H={h}, W={w} (per-image loop in float64)",
                     atol=1e-10, rtol=1e-9)
    # disjoint silhouettes: the loss is 1
    p = torch.zeros(2, 4, 4, dtype=torch.float64)
    t = torch.zeros(2, 4, 4, dtype=torch.float64)
    p[:, :2], t[:, 2:] = 1.0, 1.0
    expect_close(call_student(fn, p, t), torch.tensor(1.0, dtype=torch.float64), "iou_loss of disjoint silhouettes", atol=1e-9)
    # the gradient with respect to pred, against the closed form d/dp (1 - I / U) = -(t U - I (1 - t)) / U^2 / B
    pred = torch.rand(3, 6, 5, generator=g, dtype=torch.float64)
    target = (torch.rand(3, 6, 5, generator=g, dtype=torch.float64) > 0.4).double()
    pr = pred.clone().requires_grad_(True)
    out = call_student(fn, pr, target)
    expect(isinstance(out, torch.Tensor) and out.requires_grad, "the loss carries no gradient to pred")
    (grad,) = torch.autograd.grad(out, pr)
    inter = (pred * target).sum((1, 2), keepdim=True)
    union = (pred + target - pred * target).sum((1, 2), keepdim=True)
    ref_grad = -(target * union - inter * (1 - target)) / union ** 2 / pred.shape[0]
    if _close_np(grad, -target / union / pred.shape[0]):
        raise CheckFailed("the gradient ignores the union: the denominator sum(p + t - p t) depends on pred too "
                          "(do not detach it)")
    expect_close(grad, ref_grad, "the gradient of the loss with respect to pred (vs the closed form)",
                 atol=1e-10, rtol=1e-7)
    return "a batch of one, 1 x 1 images, non-square images, disjoint silhouettes, float64, gradient, inputs kept"


def _close_np(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), atol=1e-9, rtol=1e-6))


def _lap_matrix(n_verts: int, faces: np.ndarray) -> np.ndarray:
    """The dense uniform Laplacian I - D^-1 A from explicit neighbour sets (float64)."""
    nb: list[set[int]] = [set() for _ in range(n_verts)]
    for a, b, c in faces.tolist():
        for i, j in ((a, b), (b, c), (c, a)):
            nb[i].add(j)
            nb[j].add(i)
    L = np.eye(n_verts)
    for i, s in enumerate(nb):
        for j in s:
            L[i, j] -= 1.0 / len(s)
    return L


def _hidden_laplacian_loss(fn) -> str:
    from course_lib.geometry import icosphere

    g = torch.Generator().manual_seed(92)
    tet_f = torch.tensor([[0, 1, 2], [0, 3, 1], [1, 3, 2], [2, 3, 0]])
    ico_v, ico_f = icosphere(1, radius=0.5)
    mixed = ico_f.clone()
    mixed[::2] = mixed[::2].flip(1)  # inconsistent orientations: the neighbours are the same
    cases = (
        (torch.rand(3, 3, generator=g, dtype=torch.float64), torch.tensor([[0, 1, 2]]), "a single triangle"),
        (torch.rand(4, 3, generator=g, dtype=torch.float64), tet_f, "a tetrahedron (closed, no boundary)"),
        (ico_v.double() + 0.05 * torch.rand(ico_v.shape, generator=g, dtype=torch.float64), ico_f,
         "a bumpy icosphere (42 vertices, valences 5 and 6)"),
        (ico_v.double(), mixed, "an icosphere whose faces are listed with mixed orientations"),
        (torch.rand(4, 3, generator=g, dtype=torch.float64), torch.cat([tet_f, tet_f[:2]]),
         "a tetrahedron with two faces listed twice"),
    )
    for v, f, what in cases:
        v_in, f_in = v.clone(), f.clone()
        out = call_student(fn, v_in, f_in)
        expect_tensor(out, f"laplacian_loss for {what}", shape=())
        expect(out.dtype == torch.float64, f"for float64 vertices the loss should stay float64, got {out.dtype}")
        expect(torch.equal(v_in, v) and torch.equal(f_in, f),
               "verts or faces was modified in place (verts -= ..., a centring in place): the caller's tensors must "
               "stay as they were")
        L = _lap_matrix(v.shape[0], f.numpy())
        ref = float(((L @ v.numpy()) ** 2).sum())
        expect_close(out, torch.tensor(ref, dtype=torch.float64), f"laplacian_loss for {what} (a dense I - D^-1 A in float64)",
                     atol=1e-10, rtol=1e-8)
    # the gradient: d/dx sum ||L x||^2 = 2 L^T L x
    v = ico_v.double() + 0.05 * torch.rand(ico_v.shape, generator=g, dtype=torch.float64)
    x = v.clone().requires_grad_(True)
    out = call_student(fn, x, ico_f)
    expect(isinstance(out, torch.Tensor) and out.requires_grad, "the loss carries no gradient to the vertices")
    (grad,) = torch.autograd.grad(out, x)
    L = _lap_matrix(v.shape[0], ico_f.numpy())
    ref_grad = torch.as_tensor(2 * L.T @ L @ v.numpy())
    if _close_np(grad, torch.as_tensor(2 * L @ v.numpy())):
        raise CheckFailed("the gradient treats the neighbours' mean as a constant (2 L x instead of 2 L^T L x): "
                          "the mean of the neighbours must not be detached, every vertex moves its neighbours' terms")
    expect_close(grad, ref_grad, "the gradient with respect to the vertices (vs 2 L^T L x)", atol=1e-9, rtol=1e-7)
    return "a single triangle, a closed tetrahedron, an icosphere, mixed orientations, repeated faces, gradient"


def _hidden_aggregate_silhouette(fn) -> str:
    g = torch.Generator().manual_seed(93)
    # (B, F, H, W, dtype, what): a batch of one, one pixel, many faces, float32 coverages close to 1
    for b, f, h, w, dtype, what in ((1, 3, 4, 4, torch.float64, "a batch of one"),
                                    (2, 4, 1, 1, torch.float64, "one pixel per image"),
                                    (3, 60, 5, 7, torch.float64, "60 faces"),
                                    (2, 6, 3, 5, torch.float32, "float32 coverages")):
        cov = torch.rand(b, f, h, w, generator=g, dtype=dtype)
        valid = torch.rand(b, f, generator=g) > 0.3
        c_in, v_in = cov.clone(), valid.clone()
        out = call_student(fn, c_in, v_in)
        expect_tensor(out, f"the silhouette for {what} (B={b}, F={f}, H={h}, W={w})", shape=(b, h, w))
        expect(out.dtype == dtype, f"for {dtype} coverages the silhouette should stay {dtype}, got {out.dtype}")
        expect(torch.equal(c_in, cov) and torch.equal(v_in, valid),
               "coverage or valid was modified in place: the caller's tensors must stay as they were")
        ref = 1.0 - np.where(valid.numpy()[:, :, None, None], 1.0 - cov.double().numpy(), 1.0).prod(1)
        tol = 1e-6 if dtype == torch.float32 else 1e-12
        expect_close(out, torch.as_tensor(ref, dtype=dtype), f"the silhouette for {what} (a float64 product)",
                     atol=tol, rtol=tol)
    # a non-contiguous coverage (a permuted view) and a mask given as a float 0/1 tensor's bool
    base = torch.rand(2, 4, 3, 5, generator=g, dtype=torch.float64)
    view = base.transpose(2, 3)  # (2, 4, 5, 3), not contiguous
    valid = torch.tensor([[True, True, False, True], [False, True, True, True]])
    out = call_student(fn, view, valid)
    expect_tensor(out, "the silhouette of a non-contiguous coverage (a transposed view)", shape=(2, 5, 3))
    ref = 1.0 - np.where(valid.numpy()[:, :, None, None], 1.0 - view.numpy(), 1.0).prod(1)
    expect_close(out, torch.as_tensor(ref), "the silhouette of a non-contiguous coverage (use reshape, not view)",
                 atol=1e-12)
    # the gradient: dS / dD_f = prod over the other valid faces of (1 - D_g), 0 for the faces not drawn
    cov = torch.rand(2, 5, 3, 4, generator=g, dtype=torch.float64) * 0.9 + 0.05
    valid = torch.tensor([[True, False, True, True, True], [True, True, False, False, True]])
    x = cov.clone().requires_grad_(True)
    out = call_student(fn, x, valid)
    expect(isinstance(out, torch.Tensor) and out.requires_grad, "the silhouette carries no gradient to the coverages")
    (grad,) = torch.autograd.grad(out.sum(), x)
    miss = torch.where(valid[:, :, None, None], 1.0 - cov, torch.ones_like(cov))
    ref_grad = torch.where(valid[:, :, None, None], miss.prod(1, keepdim=True) / miss, torch.zeros_like(cov))
    expect_close(grad, ref_grad, "the gradient with respect to the coverages (vs prod over the other drawn faces of "
                 "(1 - D_g))", atol=1e-10, rtol=1e-8)
    return "a batch of one, one pixel, 60 faces, float32 and float64, a non-contiguous view, gradient, inputs kept"


def _register_hidden() -> None:
    from course_lib import geometry, render
    from course_lib.geometry import mesh_reg
    from course_lib.render import losses, raster

    check_soft_coverage.hidden(_hidden_soft_coverage, references=(raster.rasterize_silhouette, render.render_mesh))
    check_aggregate_silhouette.hidden(_hidden_aggregate_silhouette, references=(raster.rasterize_silhouette,))
    check_iou_loss.hidden(_hidden_iou_loss, references=(losses.silhouette_iou, losses.silhouette_iou_loss))
    check_laplacian_loss.hidden(_hidden_laplacian_loss, references=(
        mesh_reg.laplacian_loss, mesh_reg.uniform_laplacian, mesh_reg.mesh_edges, geometry.laplacian_loss))


_register_hidden()
