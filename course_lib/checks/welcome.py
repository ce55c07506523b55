"""Self-checks of chapter 00 (``labs/00_welcome_lab.ipynb``): the warm-up exercises.

The references are independent of the student's route: ``torch.cdist`` for distances
and a brute-force loop for nearest neighbours.
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


@self_check
def check_pairwise_sq_dists(fn) -> str:
    """``fn(x (B,N,3), y (B,M,3)) -> (B,N,M)`` squared Euclidean distances."""
    x, y = _clouds(0)
    out = call_student(fn, x, y)
    expect_tensor(out, "the result", shape=(3, 7, 5), dtype=torch.float32)
    expect((out >= -1e-6).all(), "squared distances cannot be negative")
    ref = torch.cdist(x.double(), y.double()) ** 2
    expect_close(out, ref, "the squared distances", atol=1e-4, rtol=1e-4)
    # not sqrt'ed, and correct for a single pair of known points
    a = torch.tensor([[[0.0, 0.0, 0.0]]])
    b = torch.tensor([[[3.0, 4.0, 0.0]]])
    one = call_student(fn, a, b)
    expect_close(one.reshape(()), torch.tensor(25.0), "the distance between (0,0,0) and (3,4,0)",
                 atol=1e-5)
    # swapping the clouds transposes the matrix
    swapped = call_student(fn, y, x)
    expect_close(swapped, out.transpose(1, 2), "fn(y, x) (it should be fn(x, y) transposed)", atol=1e-4)
    return "matches torch.cdist(x, y)**2 on a batch of 3 clouds"


@self_check
def check_nearest_neighbour_dist(fn) -> str:
    """``fn(x (B,N,3), y (B,M,3)) -> (B,N)``: for each point of x, the squared distance to its nearest point of y."""
    x, y = _clouds(1, b=2, n=6, m=9)
    out = call_student(fn, x, y)
    expect_tensor(out, "the result", shape=(2, 6))
    ref = torch.empty(2, 6, dtype=torch.float64)
    for bi in range(2):
        for i in range(6):
            ref[bi, i] = min(float(((x[bi, i] - y[bi, j]) ** 2).sum()) for j in range(9))
    expect_close(out, ref, "the nearest-neighbour squared distances", atol=1e-4)
    # a point of y placed exactly on a point of x gives distance 0
    y2 = y.clone()
    y2[:, 0] = x[:, 2]
    out2 = call_student(fn, x, y2)
    expect(float(out2[:, 2].abs().max()) < 1e-5, "a point with an exact copy in y should be at distance 0")
    return "matches a brute-force loop"


@self_check
def check_chamfer(fn) -> str:
    """``fn(x (B,N,3), y (B,M,3)) -> ()``: the symmetric Chamfer distance (squared, mean + mean), batch-averaged."""
    x, y = _clouds(2, b=2, n=8, m=5)
    out = call_student(fn, x, y)
    expect_tensor(out, "the result", shape=())
    ref = torch.empty(2, dtype=torch.float64)
    for bi in range(2):
        d = torch.cdist(x[bi].double(), y[bi].double()) ** 2
        ref[bi] = d.min(1).values.mean() + d.min(0).values.mean()
    half = torch.stack([(torch.cdist(x[bi].double(), y[bi].double()) ** 2).min(1).values.mean() for bi in range(2)])
    if torch.allclose(out.double(), half.mean(), atol=1e-5):
        raise CheckFailed("you computed only one direction (x to y): add the y-to-x term")
    if out.dim() == 0 and torch.allclose(out.double(), ref.sum(), atol=1e-5):
        raise CheckFailed("you summed over the batch: average over it instead")
    expect_close(out, ref.mean(), "the batch-averaged Chamfer distance", atol=1e-4)
    expect_close(call_student(fn, y, x), out, "fn(y, x) (the Chamfer distance is symmetric)", atol=1e-4)
    expect(float(call_student(fn, x, x).abs().max()) < 1e-5, "the distance of a cloud to itself should be 0")
    return "matches a brute-force reference, symmetric, zero on identical clouds"
