"""Self-checks of chapter 00 (``labs/00_welcome_lab.ipynb``): the warm-up exercises.

Introduced in ``lectures/00_welcome.ipynb``.  The references are independent of the
student's route: ``torch.cdist`` (float64) for distances and a brute-force loop for nearest
neighbours.  The usual mistakes are recognised *before* the generic value comparison, so
that the message names them: the square forgotten, the arguments swapped, the min taken over
the wrong axis, one direction of the Chamfer distance only, the max of the two directions,
the batch summed instead of averaged, and a result cut off from the autograd graph.
"""

from __future__ import annotations

import torch

from ._core import CheckFailed, call_student, expect, expect_close, expect_tensor, self_check

__all__ = ["check_pairwise_sq_dists", "check_nearest_neighbour_dist", "check_chamfer"]


def _clouds(seed: int, b: int = 3, n: int = 7, m: int = 5, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, 3, generator=gen, dtype=dtype)
    y = torch.randn(b, m, 3, generator=gen, dtype=dtype)
    return x, y


def _close(out: torch.Tensor, ref: torch.Tensor, atol: float = 1e-4) -> bool:
    out = out.detach().cpu().double()
    return out.shape == ref.shape and bool(torch.isfinite(out).all()) and torch.allclose(
        out, ref.double(), atol=atol, rtol=1e-4)


def _diagnose(out: torch.Tensor, ref: torch.Tensor, wrong: dict[str, torch.Tensor]) -> None:
    """Raise the message of the first known mistake that ``out`` matches (and ``ref`` does not)."""
    if _close(out, ref):
        return
    for message, value in wrong.items():
        if _close(out, value):
            raise CheckFailed(message)


@self_check
def check_pairwise_sq_dists(fn) -> str:
    """``fn(x (B,N,3), y (B,M,3)) -> (B,N,M)`` squared Euclidean distances."""
    x, y = _clouds(0)
    out = call_student(fn, x, y)
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (3, 5, 7):
        raise CheckFailed("the result has shape (B, M, N) = (3, 5, 7), expected (B, N, M) = (3, 7, 5): "
                          "entry [b, i, j] is the distance from x[b, i] to y[b, j]")
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (3, 7, 5, 3):
        raise CheckFailed("the result has shape (B, N, M, 3): sum the squared differences over the "
                          "coordinates (the last dimension)")
    expect_tensor(out, "the result", shape=(3, 7, 5), dtype=torch.float32)
    ref = torch.cdist(x.double(), y.double()) ** 2
    _diagnose(out, ref, {
        "you returned distances, not SQUARED distances (you forgot the square, or took a sqrt / "
        "used torch.cdist): D[b, i, j] = ||x_i - y_j||^2": ref.sqrt(),
        "you summed absolute differences (the L1 distance): square the differences instead":
            (x.double()[:, :, None] - y.double()[:, None]).abs().sum(-1),
        "you took the mean over the coordinates instead of the sum": ref / 3,
    })
    expect((out >= -1e-5).all(), "squared distances cannot be negative")
    expect_close(out, ref, "the squared distances", atol=1e-4, rtol=1e-4)
    # correct for a single pair of known points
    a = torch.tensor([[[0.0, 0.0, 0.0]]])
    b = torch.tensor([[[3.0, 4.0, 0.0]]])
    one = call_student(fn, a, b)
    expect_tensor(one, "fn for one point against one point", shape=(1, 1, 1))
    expect_close(one.reshape(()), torch.tensor(25.0), "the distance between (0,0,0) and (3,4,0)",
                 atol=1e-5)
    # swapping the clouds transposes the matrix
    swapped = call_student(fn, y, x)
    expect_tensor(swapped, "fn(y, x)", shape=(3, 5, 7))
    expect_close(swapped, out.transpose(1, 2), "fn(y, x) (it should be fn(x, y) transposed)", atol=1e-4)
    return "matches torch.cdist(x, y)**2 on a batch of 3 clouds"


@self_check
def check_nearest_neighbour_dist(fn) -> str:
    """``fn(x (B,N,3), y (B,M,3)) -> (B,N)``: for each point of x, the squared distance to its nearest point of y."""
    x, y = _clouds(1, b=2, n=6, m=9)
    out = call_student(fn, x, y)
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (2, 9):
        raise CheckFailed("the result has shape (B, M) = (2, 9), expected (B, N) = (2, 6): you took the min "
                          "over the points of x; take it over the points of y (the last dimension of the "
                          "distance matrix)")
    if isinstance(out, (tuple, list)) or (isinstance(out, torch.Tensor) and not out.is_floating_point()):
        raise CheckFailed("return the distances (a float tensor), not the indices or a (values, indices) "
                          "pair: use .min(dim=-1).values")
    expect_tensor(out, "the result", shape=(2, 6))
    ref = torch.empty(2, 6, dtype=torch.float64)
    far = torch.empty(2, 6, dtype=torch.float64)
    for bi in range(2):
        for i in range(6):
            d = [float(((x[bi, i] - y[bi, j]) ** 2).sum()) for j in range(9)]
            ref[bi, i], far[bi, i] = min(d), max(d)
    _diagnose(out, ref, {
        "you returned plain distances: the exercise asks for SQUARED distances (no sqrt)": ref.sqrt(),
        "you took the max: the nearest neighbour is the min over the points of y": far,
    })
    expect_close(out, ref, "the nearest-neighbour squared distances", atol=1e-4)
    # a point of y placed exactly on a point of x gives distance 0
    y2 = y.clone()
    y2[:, 0] = x[:, 2]
    out2 = call_student(fn, x, y2)
    expect_tensor(out2, "the result", shape=(2, 6))
    expect(float(out2[:, 2].abs().max()) < 1e-5, "a point with an exact copy in y should be at distance 0")
    return "matches a brute-force loop"


def _ref_chamfer_parts(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cloud mean nearest squared distances, x->y and y->x (float64, with gradient to x)."""
    d = torch.cdist(x.double(), y.double()) ** 2
    return d.min(2).values.mean(1), d.min(1).values.mean(1)


@self_check
def check_chamfer(fn) -> str:
    """``fn(x (B,N,3), y (B,M,3)) -> ()``: the symmetric Chamfer distance (squared, mean + mean), batch-averaged.

    The result must be differentiable: it is a training loss.
    """
    x, y = _clouds(2, b=2, n=8, m=5)
    # cloud 0: y is the tight one (x->y is the larger term); cloud 1: x is (y->x is larger), so that
    # one direction, the other one and the max of the two all differ from each other
    x = x * torch.tensor([1.0, 0.3])[:, None, None]
    y = y * torch.tensor([0.3, 1.0])[:, None, None]
    xg = x.clone().requires_grad_(True)
    out = call_student(fn, xg, y)
    with torch.no_grad():
        xy, yx = _ref_chamfer_parts(x, y)
        plain_xy, plain_yx = (torch.cdist(x.double(), y.double()).min(2).values.mean(1),
                              torch.cdist(x.double(), y.double()).min(1).values.mean(1))
    ref = (xy + yx).mean()
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (2,):
        raise CheckFailed("the result has shape (B,) = (2,): return one number, the mean over the batch "
                          "(a loss is a scalar)")
    expect_tensor(out, "the result", shape=())
    _diagnose(out, ref, {
        "you computed only one direction (x to y): add the y-to-x term": xy.mean(),
        "you computed only one direction (y to x): add the x-to-y term": yx.mean(),
        "you took the max of the two directions: the Chamfer distance adds them": torch.maximum(xy, yx).mean(),
        "you summed over the batch: average over it instead": (xy + yx).sum(),
        "you used plain distances: the course's Chamfer distance averages SQUARED distances":
            (plain_xy + plain_yx).mean(),
        "you averaged the two directions: the Chamfer distance adds them (mean + mean)": (xy + yx).mean() / 2,
    })
    expect_close(out, ref, "the batch-averaged Chamfer distance", atol=1e-4)
    # it is a loss: gradients must reach the points
    if not out.requires_grad:
        raise CheckFailed("the result carries no gradient (requires_grad is False): it cannot train anything; "
                          "avoid .detach(), .item(), .numpy() and torch.tensor(...) on intermediate values")
    (grad,) = torch.autograd.grad(out, xg)
    xr = x.clone().double().requires_grad_(True)
    (ref_grad,) = torch.autograd.grad(sum(_ref_chamfer_parts(xr, y)).mean(), xr)
    expect_close(grad, ref_grad, "the gradient of your Chamfer distance with respect to x", atol=1e-4, rtol=1e-3)
    again = call_student(fn, y, x)
    expect_tensor(again, "fn(y, x)", shape=())
    expect_close(again, out, "fn(y, x) (the Chamfer distance is symmetric)", atol=1e-4)
    same = call_student(fn, x, x)
    expect_tensor(same, "fn(x, x)", shape=())
    expect(float(same.abs()) < 1e-5, "the distance of a cloud to itself should be 0")
    return "matches a brute-force reference with its gradient, symmetric, zero on identical clouds"


# ---------------------------------------------------------------------------
# hidden parts (run by the grader only: other sizes, a batch of one, float64, far-apart clouds)
# ---------------------------------------------------------------------------
def _library_nearest() -> tuple:
    from course_lib import metrics, ops
    from course_lib.ops import neighbors

    return (ops.knn, neighbors.knn_search, ops.chamfer_distance, metrics.chamfer, metrics.chamfer_l2)


def _hidden_pairwise_sq_dists(fn) -> str:
    for seed, (b, n, m), dtype, shift in ((10, (1, 1, 40), torch.float32, 0.0), (11, (2, 33, 3), torch.float64, 0.0),
                                          (12, (4, 5, 5), torch.float32, 10.0)):
        x, y = _clouds(seed, b=b, n=n, m=m, dtype=dtype)
        x = x + shift
        out = call_student(fn, x, y)
        expect_tensor(out, f"the result for B={b}, N={n}, M={m}", shape=(b, n, m))
        expect(out.dtype == dtype, f"for {dtype} inputs the result should stay {dtype}, got {out.dtype}")
        ref = torch.cdist(x.double(), y.double()) ** 2
        expect_close(out, ref, f"the squared distances for B={b}, N={n}, M={m} ({dtype}, x shifted by {shift})",
                     atol=1e-3, rtol=1e-4)
    return "other sizes, a batch of one, float64 and far-apart clouds"


def _hidden_nearest_neighbour_dist(fn) -> str:
    for seed, (b, n, m) in ((20, (1, 50, 1)), (21, (3, 1, 64)), (22, (2, 17, 31))):
        x, y = _clouds(seed, b=b, n=n, m=m)
        out = call_student(fn, x, y)
        expect_tensor(out, f"the result for B={b}, N={n}, M={m}", shape=(b, n))
        ref = (torch.cdist(x.double(), y.double()) ** 2).min(-1).values
        expect_close(out, ref, f"the nearest-neighbour squared distances for B={b}, N={n}, M={m}", atol=1e-4)
    return "other sizes, one point in y, one point in x"


def _hidden_chamfer(fn) -> str:
    for seed, (b, n, m) in ((30, (1, 40, 3)), (31, (5, 2, 50)), (32, (3, 64, 64))):
        x, y = _clouds(seed, b=b, n=n, m=m)
        out = call_student(fn, x, y)
        expect_tensor(out, f"the result for B={b}, N={n}, M={m}", shape=())
        xy, yx = _ref_chamfer_parts(x, y)
        expect_close(out, (xy + yx).mean(), f"the Chamfer distance for B={b}, N={n}, M={m}", atol=1e-4)
    return "other sizes and a batch of one"


def _register_references() -> None:
    # the library's own implementations: a submission calling them directly is flagged by the grader
    for chk in (check_pairwise_sq_dists, check_nearest_neighbour_dist, check_chamfer):
        body = {check_pairwise_sq_dists: _hidden_pairwise_sq_dists, check_nearest_neighbour_dist:
                _hidden_nearest_neighbour_dist, check_chamfer: _hidden_chamfer}[chk]
        chk.hidden(body, references=_library_nearest())


_register_references()
