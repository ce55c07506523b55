"""Self-checks of chapter 02 (``labs/02_encoders_lab.ipynb``): PointNet forward, FPS, ball query.

Introduced in ``lectures/02_encoders.ipynb``.  The references are a per-point loop (PointNet)
and :mod:`course_lib.ops` (FPS, ball query), itself tested against brute force and cKDTree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._core import CheckFailed, call_student, expect, expect_close, expect_tensor, self_check

__all__ = ["check_pointnet_encode", "check_farthest_point_sampling", "check_ball_query"]


def _cloud(seed: int, b: int = 2, n: int = 40, d: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, n, d, generator=gen) * 2 - 1


def _layers(seed: int, dims: tuple[int, ...]) -> list[nn.Linear]:
    torch.manual_seed(seed)
    return [nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])]


def _reference_encode(points: torch.Tensor, layers: list[nn.Linear]) -> tuple[torch.Tensor, torch.Tensor]:
    b, n, _ = points.shape
    feats = torch.empty(b, n, layers[-1].out_features, dtype=torch.float64)
    for bi in range(b):
        for i in range(n):  # one point at a time: h sees a single point
            x = points[bi, i].double()
            for li, layer in enumerate(layers):
                x = F.linear(x, layer.weight.double(), layer.bias.double())
                if li < len(layers) - 1:
                    x = torch.relu(x)
            feats[bi, i] = x
    values, idx = feats.max(dim=1)
    return values, idx


def _reference_mean(points: torch.Tensor, layers: list[nn.Linear]) -> torch.Tensor:
    x = points.double()
    for li, layer in enumerate(layers):
        x = F.linear(x, layer.weight.double(), layer.bias.double())
        if li < len(layers) - 1:
            x = torch.relu(x)
    return x.mean(dim=1)


@self_check
def check_pointnet_encode(fn) -> str:
    """``fn(points (B,N,D), layers: list[nn.Linear]) -> (global (B,F), critical_idx (B,F))``.

    ``h`` = the layers with a ReLU between them (none after the last), applied to every
    point; ``g`` = max over the points; ``critical_idx`` = where each max is reached.
    """
    pts = _cloud(10, b=2, n=30)
    layers = _layers(0, (3, 16, 32, 24))
    with torch.no_grad():
        out = call_student(fn, pts, layers)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("return a pair (global_feature, critical_idx)")
    glob, crit = out
    expect_tensor(glob, "the global feature", shape=(2, 24))
    expect_tensor(crit, "critical_idx", shape=(2, 24))
    expect(not crit.is_floating_point(), f"critical_idx should hold integer indices, got {crit.dtype}")
    ref, ref_idx = _reference_encode(pts, layers)
    g = glob.detach().double().cpu()
    if not torch.allclose(g, ref, atol=1e-4):
        if torch.allclose(g, torch.relu(ref), atol=1e-4):
            raise CheckFailed("it looks like you applied a ReLU after the LAST layer too: h ends with a plain "
                              "linear layer")
        if torch.allclose(g, _reference_mean(pts, layers), atol=1e-4):
            raise CheckFailed("you averaged over the points: g should be the max (also symmetric, but it keeps "
                              "the strongest response per channel)")
    expect_close(glob, ref, "the global feature", atol=1e-4, rtol=1e-4)
    expect(torch.equal(crit.long().cpu(), ref_idx),
           "critical_idx is wrong: it should be the index of the point that wins the max, per channel "
           "(the second output of .max(dim=1))")
    # permutation invariance and a different number of points
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        glob_p, _ = call_student(fn, pts[:, perm], layers)
        glob_small, _ = call_student(fn, pts[:, :7], layers)
    expect_close(glob_p, glob, "the global feature of the permuted cloud (it must not depend on the order)",
                 atol=1e-5)
    expect_tensor(glob_small, "the global feature of a 7-point cloud", shape=(2, 24))
    return "matches a per-point loop, permutation invariant, critical indices right"


@self_check
def check_farthest_point_sampling(fn) -> str:
    """``fn(x (B,N,3), n, start_idx=0) -> idx (B,n)`` long, farthest point sampling."""
    from course_lib import ops

    x = _cloud(20, b=3, n=50)
    idx = call_student(fn, x, 12)
    expect_tensor(idx, "the sampled indices", shape=(3, 12))
    expect(not idx.is_floating_point(), f"indices should be integers (torch.long), got {idx.dtype}")
    idx = idx.long().cpu()
    expect(bool((idx[:, 0] == 0).all()), "the first sample should be start_idx (0 by default)")
    for b in range(3):
        expect(len(set(idx[b].tolist())) == 12, f"cloud {b}: a point was picked twice")
    # every step picks the point farthest from those already picked
    for b in range(3):
        for i in range(1, 12):
            d = torch.cdist(x[b].double(), x[b, idx[b, :i]].double()).min(dim=1).values
            if int(d.argmax()) != int(idx[b, i]):
                raise CheckFailed(
                    f"cloud {b}, sample {i}: you picked point {int(idx[b, i])}, but point {int(d.argmax())} is "
                    "farther from the points picked so far (keep, for every point, its distance to the "
                    "NEAREST picked point, and take the argmax of that)"
                )
    ref = ops.farthest_point_sampling(x, 12, start_idx=0)
    expect(torch.equal(idx, ref.cpu()), "the indices differ from course_lib.ops.farthest_point_sampling")
    other = call_student(fn, x, 5, start_idx=7)
    expect(torch.equal(other.long().cpu(), ops.farthest_point_sampling(x, 5, start_idx=7).cpu()),
           "with start_idx=7 the result differs from course_lib.ops.farthest_point_sampling")
    return "agrees with course_lib.ops.farthest_point_sampling (and with the definition, step by step)"


@self_check
def check_ball_query(fn) -> str:
    """``fn(x (B,N,3), centers (B,M,3), radius, k) -> idx (B,M,k)`` with PointNet++ semantics.

    The first ``k`` points of ``x`` (in index order) within ``radius`` of each centre;
    when fewer than ``k`` are inside, the remaining slots repeat the first one found.
    """
    from course_lib import ops

    x = _cloud(30, b=2, n=60)
    centers = x[:, [0, 5, 17, 33]] + 0.01
    radius, k = 0.45, 6
    idx = call_student(fn, x, centers, radius, k)
    expect_tensor(idx, "the neighbour indices", shape=(2, 4, k))
    expect(not idx.is_floating_point(), f"indices should be integers (torch.long), got {idx.dtype}")
    idx = idx.long().cpu()
    ref = ops.ball_query(x, centers, radius, k).cpu()
    d2 = ((x[:, None] - centers[:, :, None]) ** 2).sum(-1)  # (B, M, N)
    picked = torch.gather(d2, 2, idx)
    if (picked > radius**2 + 1e-6).any():
        if (picked <= radius + 1e-6).all():
            raise CheckFailed("some neighbours lie outside the ball: compare squared distances with radius**2 "
                              "(or distances with radius), not squared distances with radius")
        raise CheckFailed("some returned points lie farther than radius from their centre")
    if not torch.equal(idx, ref):
        same_sets = all(set(idx[b, m].tolist()) == set(ref[b, m].tolist()) for b in range(2) for m in range(4))
        if same_sets:
            raise CheckFailed("the right neighbours, in another order: keep the first k points in index order "
                              "(and pad with the first one found), as PointNet++ does")
        raise CheckFailed("the neighbours differ from course_lib.ops.ball_query: take the FIRST k points (in "
                          "index order) inside the ball, and when there are fewer, repeat the first one")
    # a tiny radius: only the closest point (each centre is 0.01 away from a point), repeated k times
    tiny = call_student(fn, x, centers, 0.05, 3).long().cpu()
    expect(torch.equal(tiny, ops.ball_query(x, centers, 0.05, 3).cpu()),
           "with a small radius (one point per ball) every slot should repeat that point")
    return "agrees with course_lib.ops.ball_query (first k in index order, padded with the first)"
