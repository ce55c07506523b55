"""Self-checks of chapter 02 (``labs/02_encoders_lab.ipynb``): PointNet forward, FPS, ball query, EdgeConv,
the T-Net orthogonality regulariser, ResNet's residual block.

Introduced in ``lectures/02_encoders.ipynb``.  The references are a per-point loop (PointNet)
and :mod:`course_lib.ops` (FPS, ball query), itself tested against brute force and cKDTree.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._core import CheckFailed, StudentError, call_student, expect, expect_close, expect_tensor, self_check

__all__ = ["check_pointnet_encode", "check_farthest_point_sampling", "check_ball_query", "check_set_abstraction",
           "check_pointnet_training", "check_edge_features", "check_edge_conv", "check_orthogonality_loss",
           "check_residual_block"]


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


class _PerPointAffine(nn.Module):
    """A per-point layer that is not an ``nn.Linear`` (a linear map, then a fixed scale and shift):
    the layers of the lab's trained PointNet are Linear + BatchNorm blocks, so ``fn`` must call
    each layer as ``layer(x)``."""

    def __init__(self, a: int, b: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.lin = nn.Linear(a, b)
        gen = torch.Generator().manual_seed(seed + 1)
        self.register_buffer("scale", 0.5 + torch.rand(b, generator=gen))
        self.register_buffer("shift", torch.randn(b, generator=gen) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) * self.scale + self.shift


def _reference_modules(points: torch.Tensor, layers) -> tuple[torch.Tensor, torch.Tensor]:
    b, n, _ = points.shape
    rows = []
    for bi in range(b):
        feats = []
        for i in range(n):  # one point at a time
            x = points[bi, i][None]
            for li, layer in enumerate(layers):
                x = layer(x)
                if li < len(layers) - 1:
                    x = torch.relu(x)
            feats.append(x[0])
        rows.append(torch.stack(feats))
    values, idx = torch.stack(rows).double().max(dim=1)
    return values, idx


@self_check
def check_pointnet_encode(fn) -> str:
    """``fn(points (B,N,D), layers) -> (global (B,F), critical_idx (B,F))``.

    ``layers`` is a list of per-point layers acting on the last dimension (``nn.Linear``,
    or a ``Linear`` + ``BatchNorm`` block in the lab's training); ``h`` = the layers with a
    ReLU between them (none after the last), applied to every point; ``g`` = max over the
    points; ``critical_idx`` = where each max is reached.
    """
    pts = _cloud(10, b=2, n=30)
    layers = _layers(0, (3, 16, 32, 24))
    with torch.no_grad():
        out = call_student(fn, pts, layers)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("return a pair (global_feature, critical_idx)")
    glob, crit = out
    if isinstance(glob, torch.Tensor) and tuple(glob.shape) == (2, 30):
        raise CheckFailed("the global feature has shape (B, N) = (2, 30), expected (B, F) = (2, 24): you took "
                          "the max over the channels; take it over the points (dim=1)")
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
        lin, _ = _reference_encode(pts, [_Chain(layers)])
        if torch.allclose(g, lin, atol=1e-4):
            raise CheckFailed("no ReLU between the layers: without it h is one linear map; put a ReLU after "
                              "every layer but the last")
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
    # layers that are modules, not nn.Linear: call them, do not read .weight / .bias
    blocks = [_PerPointAffine(3, 8, 3), _PerPointAffine(8, 12, 5)]
    with torch.no_grad():
        try:
            out_b = fn(pts, blocks)
        except (AttributeError, TypeError) as exc:
            raise CheckFailed(f"with layers that are not nn.Linear (any module acting on the last dimension, "
                              f"e.g. Linear + BatchNorm) your code raised {type(exc).__name__}: {exc}; call each "
                              "layer as layer(x) instead of using its weight and bias") from None
        except NotImplementedError:
            raise CheckFailed("your function raised NotImplementedError on the second set of layers") from None
    expect(isinstance(out_b, (tuple, list)) and len(out_b) == 2, "return a pair (global_feature, critical_idx)")
    ref_b, ref_b_idx = _reference_modules(pts, blocks)
    gb = out_b[0]
    expect_tensor(gb, "the global feature with Linear + scale layers", shape=(2, 12))
    if not torch.allclose(gb.detach().double().cpu(), ref_b, atol=1e-4):
        raise CheckFailed("with layers that are modules (a Linear followed by a scale and shift) the global "
                          "feature is wrong: apply each layer as layer(x) (its whole forward), not just its "
                          "linear part")
    expect(torch.equal(out_b[1].long().cpu(), ref_b_idx), "critical_idx is wrong with module layers")
    return "matches a per-point loop (nn.Linear and module layers), permutation invariant, critical indices right"


class _Chain(nn.Module):
    """The composition of linear layers with no activation (one linear map)."""

    def __init__(self, layers: list[nn.Linear]) -> None:
        super().__init__()
        self.layers = layers
        self.out_features = layers[-1].out_features
        w = layers[0].weight.double()
        bias = layers[0].bias.double()
        for layer in layers[1:]:
            bias = layer.weight.double() @ bias + layer.bias.double()
            w = layer.weight.double() @ w
        self.weight, self.bias = w, bias


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


def _ball_query_data() -> tuple[torch.Tensor, torch.Tensor]:
    """60 random points per cloud plus a dense cluster of 12 points whose indices are spread
    over the whole range; centres: 4 sparse balls (2 to 5 points inside at radius 0.45) and
    2 dense ones (more than k = 6 points inside), in that order."""
    x = _cloud(30, b=2, n=60)
    gen = torch.Generator().manual_seed(31)
    members = torch.tensor([2, 7, 11, 16, 23, 29, 34, 38, 44, 49, 53, 59])
    centre = torch.tensor([[0.85, 0.85, 0.85], [-0.85, 0.85, -0.85]])
    x[:, members] = centre[:, None] + 0.12 * torch.randn(2, len(members), 3, generator=gen)
    sparse = x[:, [0, 5, 17, 33]] + 0.01
    dense = torch.stack([centre + 0.02, centre - 0.03], dim=1)
    return x, torch.cat([sparse, dense], dim=1)


def _ball_diagnosis(idx: torch.Tensor, x: torch.Tensor, centers: torch.Tensor, radius: float, k: int) -> str | None:
    """Name the rule ``idx`` follows when it is not "first k in index order, padded with the first"."""
    d2 = ((x[:, None] - centers[:, :, None]) ** 2).sum(-1)  # (B, M, N)
    for b in range(idx.shape[0]):
        for m in range(idx.shape[1]):
            inside = (d2[b, m] < radius**2).nonzero().flatten().tolist()  # index order
            got = idx[b, m].tolist()
            want = inside[:k] + [inside[0]] * (k - len(inside[:k])) if inside else None
            if want is None or got == want:
                continue
            where = f"cloud {b}, centre {m} ({len(inside)} points inside the ball, k = {k})"
            if len(inside) > k:
                if set(got) == set(inside[-k:]):
                    return f"{where}: you kept the LAST k points of the ball; keep the FIRST k in index order"
                nearest = d2[b, m].argsort()[:k].tolist()
                if set(got) == set(nearest):
                    return (f"{where}: you kept the k NEAREST points (that is kNN); ball query keeps the first "
                            "k points in index order that lie inside the ball, whatever their distance")
                if set(got) == set(inside[:k]):
                    return (f"{where}: the first k points, in another order: list them in index order, as "
                            "PointNet++ does")
                return (f"{where}: these are not the first k points of the ball in index order (got {got}, "
                        f"expected {want})")
            if set(got) == set(inside):
                if got[: len(inside)] != inside:
                    return (f"{where}: the right neighbours, in another order: list the points inside the "
                            "ball in index order, then pad with the first one")
                return f"{where}: pad the free slots with the FIRST point found (got {got}, expected {want})"
            return f"{where}: got {got}, expected {want} (the points inside the ball are {inside})"
    return None


@self_check
def check_ball_query(fn) -> str:
    """``fn(x (B,N,3), centers (B,M,3), radius, k) -> idx (B,M,k)`` with PointNet++ semantics.

    The first ``k`` points of ``x`` (in index order) within ``radius`` of each centre;
    when fewer than ``k`` are inside, the remaining slots repeat the first one found.
    Tested on balls holding 2 to 5 points and on balls holding more than ``k``.
    """
    from course_lib import ops

    x, centers = _ball_query_data()
    radius, k = 0.45, 6
    idx = call_student(fn, x, centers, radius, k)
    expect_tensor(idx, "the neighbour indices", shape=(2, 6, k))
    expect(not idx.is_floating_point(), f"indices should be integers (torch.long), got {idx.dtype}")
    idx = idx.long().cpu()
    expect(bool(((idx >= 0) & (idx < x.shape[1])).all()),
           f"some indices lie outside [0, {x.shape[1] - 1}] (did you keep the placeholder N in a slot?)")
    d2 = ((x[:, None] - centers[:, :, None]) ** 2).sum(-1)  # (B, M, N)
    picked = torch.gather(d2, 2, idx)
    outside = picked > radius**2 + 1e-6
    if outside.any():
        if bool((idx[outside] == 0).all()):
            raise CheckFailed("the free slots hold index 0, a point outside the ball: pad them with the FIRST "
                              "point found inside the ball (slot 0)")
        if (picked <= radius + 1e-6).all():
            raise CheckFailed("some neighbours lie outside the ball: compare squared distances with radius**2 "
                              "(or distances with radius), not squared distances with radius")
        raise CheckFailed("some returned points lie outside the ball (farther than radius from their centre): "
                          "keep only points within radius, whatever k is (plain kNN does not)")
    problem = _ball_diagnosis(idx, x, centers, radius, k)
    if problem:
        raise CheckFailed(problem)
    ref = ops.ball_query(x, centers, radius, k).cpu()
    expect(torch.equal(idx, ref), "the neighbours differ from course_lib.ops.ball_query")
    # a tiny radius: only the closest point (each sparse centre is 0.01 away from a point), repeated
    tiny = call_student(fn, x, centers[:, :4], 0.05, 3).long().cpu()
    expect(torch.equal(tiny, ops.ball_query(x, centers[:, :4], 0.05, 3).cpu()),
           "with a small radius (one point per ball) every slot should repeat that point")
    counts = (d2 < radius**2).sum(-1)
    return (f"agrees with course_lib.ops.ball_query (first k in index order, padded with the first) on balls "
            f"holding {int(counts.min())} to {int(counts.max())} points, k = {k}")


# ---------------------------------------------------------------------------
# one set-abstraction level of PointNet++
# ---------------------------------------------------------------------------
def _sa_mlp(seed: int = 7) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 12))


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x (B, N, C)``, ``idx (B, ...)`` -> ``(B, ..., C)``."""
    b = torch.arange(x.shape[0]).reshape(-1, *([1] * (idx.dim() - 1)))
    return x[b, idx]


def _reference_sa(x, m, radius, k, mlp, grouping: str = "ball", local: str = "minus", pool: str = "max"):
    from course_lib import ops

    with torch.no_grad():
        centres = _gather(x, ops.farthest_point_sampling(x, m, start_idx=0))
        if grouping == "ball":
            groups = ops.ball_query(x, centres, radius, k)
        else:  # the k nearest points
            groups = ((centres[:, :, None] - x[:, None]) ** 2).sum(-1).topk(k, largest=False).indices
        nb = _gather(x, groups)  # (B, M, k, 3)
        rel = {"minus": nb - centres[:, :, None], "reversed": centres[:, :, None] - nb, "absolute": nb,
               "scaled": (nb - centres[:, :, None]) / radius}[local]
        h = mlp(rel).double()
        feats = h.max(dim=2).values if pool == "max" else h.mean(dim=2)
    return centres, feats


@self_check
def check_set_abstraction(fn) -> str:
    """``fn(x (B,N,3), n_centres, radius, k, mlp) -> (centres (B,M,3), features (B,M,F))``.

    One set-abstraction level of PointNet++: ``M`` centres by farthest point sampling (start 0),
    a ball query of ``k`` neighbours around each, their coordinates relative to the centre
    (neighbour - centre), the shared ``mlp`` on every neighbour, and a max over the ``k``
    neighbours.  Tested on a cloud whose balls hold fewer and more than ``k`` points.
    """
    x, _ = _ball_query_data()
    m, radius, k = 8, 0.45, 6
    mlp = _sa_mlp()
    out = call_student(fn, x, m, radius, k, mlp)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise CheckFailed("return a pair (centres, features)")
    centres, feats = out
    expect_tensor(centres, "the centres", shape=(2, m, 3))
    if isinstance(feats, torch.Tensor) and tuple(feats.shape) == (2, k, 12):
        raise CheckFailed("the features have shape (B, k, F) = (2, 6, 12), expected (B, M, F) = (2, 8, 12): you "
                          "took the max over the centres; take it over the k neighbours of each centre")
    if isinstance(feats, torch.Tensor) and tuple(feats.shape) == (2, m, k, 12):
        raise CheckFailed("the features have shape (B, M, k, F): pool them, a max over the k neighbours (dim=2)")
    expect_tensor(feats, "the features", shape=(2, m, 12))
    ref_c, ref_f = _reference_sa(x, m, radius, k, mlp)
    if not torch.allclose(centres.detach().cpu().double(), ref_c.double(), atol=1e-6):
        raise CheckFailed("the centres should be the points of x picked by farthest point sampling (start_idx=0), "
                          "in the order FPS picks them: x[b, fps_idx[b]]")
    f = feats.detach().cpu().double()
    if not torch.allclose(f, ref_f, atol=1e-4, rtol=1e-4):
        known = {
            "absolute": "you fed the neighbours' absolute coordinates to the MLP: subtract each group's centre "
                        "(local coordinates, neighbour - centre), which is what makes the feature "
                        "translation invariant",
            "reversed": "you computed centre - neighbour: the local coordinates are neighbour - centre",
            "scaled": "you divided the local coordinates by the radius: use neighbour - centre as it is (the "
                      "paper's choice; course_lib's PointNet2 has a normalize_local option that divides)",
        }
        for local, message in known.items():
            if torch.allclose(f, _reference_sa(x, m, radius, k, mlp, local=local)[1], atol=1e-4, rtol=1e-4):
                raise CheckFailed(message)
        if torch.allclose(f, _reference_sa(x, m, radius, k, mlp, pool="mean")[1], atol=1e-4, rtol=1e-4):
            raise CheckFailed("you averaged over the neighbours: PointNet++ takes the max (as PointNet does)")
        if torch.allclose(f, _reference_sa(x, m, radius, k, mlp, grouping="knn")[1], atol=1e-4, rtol=1e-4):
            raise CheckFailed("you grouped the k NEAREST points: group with your ball query (first k points within "
                              "the radius, padded with the first)")
    expect_close(feats, ref_f, "the features of the centres", atol=1e-4, rtol=1e-4)
    # it trains: gradients reach the MLP
    mlp.zero_grad()
    _, feats2 = call_student(fn, x, m, radius, k, mlp)
    expect(isinstance(feats2, torch.Tensor) and feats2.requires_grad,
           "the features carry no gradient: do not detach them or compute them under torch.no_grad()")
    feats2.sum().backward()
    expect(all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in mlp.parameters()),
           "the MLP's parameters get no gradient through your features")
    # translating the cloud changes the centres by the same vector and leaves the features unchanged
    shift = torch.tensor([0.3, -0.2, 0.5])
    c3, f3 = call_student(fn, x + shift, m, radius, k, mlp)
    expect_close(c3, centres.detach() + shift, "the centres of the translated cloud (they should move with it)",
                 atol=1e-5)
    expect_close(f3, feats, "the features of the translated cloud (local coordinates do not change)", atol=1e-4)
    return f"{m} FPS centres, ball-query groups of {k}, local coordinates, shared MLP, max; translation invariant"


# ---------------------------------------------------------------------------
# the lab's trained PointNet against course_lib's, in the same setting
# ---------------------------------------------------------------------------
@torch.no_grad()
def _accuracy(model: nn.Module, points: torch.Tensor, labels: torch.Tensor, batch_size: int = 64) -> float:
    was = model.training
    model.eval()
    dev = next((p.device for p in model.parameters()), points.device)
    correct = 0
    for i in range(0, points.shape[0], batch_size):
        logits = call_student(model, points[i: i + batch_size].to(dev))
        expect_tensor(logits, "the model's logits", shape=(min(batch_size, points.shape[0] - i), None))
        correct += int((logits.argmax(1).cpu() == labels[i: i + batch_size].cpu()).sum())
    model.train(was)
    return correct / points.shape[0]


@self_check
def check_pointnet_training(model, reference, points, labels, *, profile: str | None = None) -> str:
    """Your trained classifier against ``reference`` (course_lib's PointNet trained in the same setting).

    Both are evaluated on the same held-out ``points (S, N, 3)`` and ``labels (S,)``.  Outside the
    ``ci`` profile your accuracy must come within a tolerance of the reference's: the larger of
    0.08 (seed-to-seed differences of short runs) and three binomial standard deviations of the
    reference accuracy on ``S`` shapes.  In
    the ``ci`` profile both models are trained for a few steps only, so the accuracies are
    printed and not compared.
    """
    from course_lib import config

    expect(isinstance(model, nn.Module), f"model should be an nn.Module, got {type(model).__name__}")
    expect_tensor(points, "points", shape=(None, None, 3))
    expect_tensor(labels, "labels", shape=(points.shape[0],))
    mine = _accuracy(model, points, labels)
    ref = _accuracy(reference, points, labels)
    profile = profile or config.get_profile()
    n = points.shape[0]
    if profile == "ci":
        return (f"ci profile: a few training steps only, so the accuracies (yours {mine:.3f}, course_lib's "
                f"{ref:.3f}) are not compared; run with COURSE_PROFILE=laptop to compare them")
    tol = max(0.08, 3 * (max(ref * (1 - ref), 1e-4) / n) ** 0.5)
    if mine < ref - tol:
        raise CheckFailed(
            f"your PointNet reaches {mine:.3f} test accuracy, course_lib's {ref:.3f} in the same setting "
            f"({n} held-out shapes; tolerance {tol:.3f}): a gap this large means a bug, e.g. a layer not "
            "called as layer(x) (its BatchNorm skipped), a ReLU missing or after the last layer, or the max "
            "taken over the wrong dimension"
        )
    return f"test accuracy {mine:.3f}, course_lib's PointNet {ref:.3f} ({n} held-out shapes, tolerance {tol:.3f})"


# ---------------------------------------------------------------------------
# EdgeConv [Wang2019]: edge features [x_j - x_i, x_i] over the kNN graph in feature space
# ---------------------------------------------------------------------------
def _reference_edges(x: torch.Tensor, k: int, *, self_point: str = "include", space: str = "features",
                     mixed: bool = False, form: str = "minus", order: str = "distance") -> torch.Tensor:
    """Edge features by a float64 loop over points: the ``k`` nearest points (Euclidean distance on all ``C``
    channels, the point itself included, increasing distance, ties to the lower index) and ``[x_j - x_i, x_i]``.

    The keyword arguments build the plausible wrong answers the check names: ``self_point="exclude"``,
    ``space="xyz"`` (distances on the first 3 channels), ``mixed`` (neighbours searched among all the clouds of
    the batch), ``form`` in ``"xj"`` (``[x_j, x_i]``), ``"swap"`` (``[x_i, x_j - x_i]``), ``"reversed"``
    (``[x_i - x_j, x_i]``), ``order="farthest"`` (the k farthest points).
    """
    xd = x.detach().cpu().double()
    b, n, c = xd.shape
    pool = xd.reshape(1, b * n, c).expand(b, b * n, c) if mixed else xd
    search = pool[..., :3] if space == "xyz" else pool
    out = torch.empty(b, n, k, 2 * c, dtype=torch.float64)
    for bi in range(b):
        for i in range(n):
            q = (xd[bi, i, :3] if space == "xyz" else xd[bi, i])
            d = ((search[bi] - q) ** 2).sum(-1)
            cand = np.argsort(d.numpy(), kind="stable").tolist()
            if order == "farthest":
                cand = np.argsort(-d.numpy(), kind="stable").tolist()
            me = bi * n + i if mixed else i
            if self_point == "exclude":
                cand = [j for j in cand if j != me]
            nb = pool[bi, cand[:k]]  # (k, C)
            xi = xd[bi, i].expand(k, c)
            first, second = {"minus": (nb - xi, xi), "xj": (nb, xi), "swap": (xi, nb - xi),
                             "reversed": (xi - nb, xi)}[form]
            out[bi, i] = torch.cat([first, second], dim=-1)
    return out


def _canonical(edges: torch.Tensor) -> torch.Tensor:
    """``edges`` ``(B, N, k, F)`` with the k rows of every point sorted by a fixed random projection: the order of
    the neighbours is free (EdgeConv takes a max over them), so the edge features are compared as sets."""
    e = edges.detach().cpu().double()
    w = torch.randn(e.shape[-1], generator=torch.Generator().manual_seed(99), dtype=torch.float64)
    order = (e @ w).argsort(dim=-1)
    return torch.gather(e, 2, order[..., None].expand_as(e))


def _edge_diagnosis(out: torch.Tensor, x: torch.Tensor, k: int) -> str | None:
    """Name the mistake when ``out`` is not the edge features of ``x``; None when it is not a known one."""
    c = x.shape[-1]
    def close(a: torch.Tensor, b: torch.Tensor) -> bool:
        return bool(torch.allclose(_canonical(a), _canonical(b), atol=1e-4, rtol=1e-4))

    ref = _reference_edges(x, k)
    if close(out, ref):
        return None
    forms = {
        "xj": "you returned [x_j, x_i]: the first half is the edge vector x_j - x_i (the neighbour relative to "
              "the point, the local shape); the second half, x_i, keeps the point's own position",
        "swap": "you returned [x_i, x_j - x_i]: concatenate in the order [x_j - x_i, x_i] (the edge vector first)",
        "reversed": "you computed x_i - x_j: the edge vector is x_j - x_i (neighbour minus point)",
    }
    for form, message in forms.items():
        if close(out, _reference_edges(x, k, form=form)):
            return message
    if close(out, _reference_edges(x, k, self_point="exclude")):
        return ("you left each point out of its own neighbours: as the paper's code and course_lib's DGCNN, count "
                "the point itself (distance 0, so it is its own first neighbour, with edge vector 0)")
    if c > 3 and close(out, _reference_edges(x, k, space="xyz")):
        return (f"you found the neighbours on the first 3 channels only: the graph is built in the space of the "
                f"input features, all C = {c} channels (that is DGCNN's 'dynamic graph')")
    if close(out, _reference_edges(x, k, mixed=True)):
        return ("some neighbours come from another cloud of the batch: search the k nearest points within each "
                "cloud (distances (B, N, N), one matrix per cloud)")
    if close(out, _reference_edges(x, k, order="farthest")):
        return "you took the k FARTHEST points (topk's default is largest=True): take the k nearest"
    return None


@self_check
def check_edge_features(fn) -> str:
    """``fn(x (B,N,C), k) -> (B,N,k,2C)``: for every point, its ``k`` nearest points in feature space (itself
    included) and the edge features ``[x_j - x_i, x_i]``, the ``k`` neighbours in any order.

    The reference is a float64 loop over the points; the data have C = 5 > 3 channels, so a search on xyz
    alone is told apart, and no ties (random points).
    """
    x = _cloud(100, b=2, n=24, d=5)
    k = 6
    out = call_student(fn, x, k)
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (2, 24, k, 5):
        raise CheckFailed("the edge features have shape (B, N, k, C): concatenate [x_j - x_i, x_i] along the last "
                          "dimension, (B, N, k, 2C)")
    expect_tensor(out, "the edge features", shape=(2, 24, k, 10))
    expect(out.dtype == x.dtype, f"for float32 input the edge features are {out.dtype}: keep the input's dtype")
    problem = _edge_diagnosis(out.detach().cpu().double(), x, k)
    if problem:
        raise CheckFailed(problem)
    expect_close(_canonical(out), _canonical(_reference_edges(x, k)), "the edge features (against a float64 loop "
                 "over the points; neighbours compared as a set)", atol=1e-5, rtol=1e-4)
    # clouds are independent
    x2 = x.clone()
    x2[1] = x2[1] * 3.0 + 1.0
    other = call_student(fn, x2, k)
    expect_close(_canonical(other)[0], _canonical(out)[0], "cloud 0's edge features after changing only cloud 1",
                 atol=1e-6)
    # 3 channels, another k; and the features carry gradients (the kNN indices need none)
    xg = _cloud(101, b=3, n=16, d=3).requires_grad_(True)
    e3 = call_student(fn, xg, 3)
    expect_tensor(e3, "the edge features of a (3, 16, 3) cloud with k = 3", shape=(3, 16, 3, 6))
    expect_close(_canonical(e3), _canonical(_reference_edges(xg, 3)), "the edge features of a (3, 16, 3) cloud, "
                 "k = 3", atol=1e-5)
    expect(e3.requires_grad, "the edge features carry no gradient: gather x (do not detach it); only the kNN "
                             "indices may be computed without autograd")
    return (f"agrees with a float64 loop over the points: k = {k} nearest in all C = 5 channels (the point itself "
            "first), [x_j - x_i, x_i], clouds independent, differentiable")


def _edge_linear(seed: int, cin: int, cout: int) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(2 * cin, cout)


def _reference_conv(x: torch.Tensor, k: int, linear: nn.Linear, pool: str = "max", **kw) -> torch.Tensor:
    e = _reference_edges(x, k, **kw)
    h = F.linear(e, linear.weight.detach().double(), linear.bias.detach().double())
    return h.max(dim=2).values if pool == "max" else h.mean(dim=2)


@self_check
def check_edge_conv(fn) -> str:
    """``fn(x (B,N,C), k, linear) -> (B,N,C')``: ``max_{j in kNN(i)} linear([x_j - x_i, x_i])``."""
    x = _cloud(110, b=2, n=24, d=5)
    k, lin = 6, _edge_linear(110, 5, 7)
    out = call_student(fn, x, k, lin)
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (2, 24, k, 7):
        raise CheckFailed("the output has shape (B, N, k, C'): take the max over the k neighbours (dim=2)")
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (2, k, 7):
        raise CheckFailed("the output has shape (B, k, C'): you took the max over the points; take it over the k "
                          "neighbours of each point (dim=2)")
    expect_tensor(out, "the EdgeConv output", shape=(2, 24, 7))
    o = out.detach().cpu().double()
    ref = _reference_conv(x, k, lin)
    if not torch.allclose(o, ref, atol=1e-4, rtol=1e-4):
        if torch.allclose(o, _reference_conv(x, k, lin, pool="mean"), atol=1e-4, rtol=1e-4):
            raise CheckFailed("you averaged over the neighbours: EdgeConv takes the max (as PointNet does)")
        for kw, message in (({"form": "xj"}, "the linear layer saw [x_j, x_i]: feed it [x_j - x_i, x_i]"),
                            ({"self_point": "exclude"}, "you left each point out of its own neighbours: count the "
                             "point itself, as in the edge features"),
                            ({"space": "xyz"}, "you found the neighbours on the first 3 channels only: use all "
                             "C channels")):
            if torch.allclose(o, _reference_conv(x, k, lin, **kw), atol=1e-4, rtol=1e-4):
                raise CheckFailed(message)
    expect_close(out, ref, "the EdgeConv output (against a float64 loop)", atol=1e-4, rtol=1e-4)
    lin.zero_grad()
    out2 = call_student(fn, x, k, lin)
    expect(isinstance(out2, torch.Tensor) and out2.requires_grad,
           "the output carries no gradient: do not detach it or compute it under torch.no_grad()")
    out2.sum().backward()
    expect(lin.weight.grad is not None and float(lin.weight.grad.abs().sum()) > 0,
           "the linear layer gets no gradient through your output")
    return f"max over the k = {k} neighbours of linear([x_j - x_i, x_i]) agrees with a float64 loop; it trains"


# ---------------------------------------------------------------------------
# the T-Net orthogonality regulariser [Qi2017]: mean_b ||I - A_b A_b^T||_F^2
# ---------------------------------------------------------------------------
def _loop_orthogonality(a: torch.Tensor, *, square: bool = True, reduce: str = "mean", sign: float = -1.0,
                        entries: str = "sum", product: str = "aat") -> float:
    """``mean_b ||I - A_b A_b^T||_F^2`` by a float64 loop over the batch and the entries; the keyword arguments
    build the wrong answers the check names."""
    ad = a.detach().cpu().double().numpy()
    per = []
    for m in ad:
        kk = m.shape[0]
        p = {"aat": m @ m.T, "aa": m @ m, "a": m}[product]
        total = 0.0
        for r in range(kk):
            for c in range(kk):
                total += ((1.0 if r == c else 0.0) + sign * p[r, c]) ** 2
        if entries == "mean":
            total /= kk * kk
        per.append(total if square else total**0.5)
    return float(np.mean(per) if reduce == "mean" else np.sum(per))


def _orth_data(seed: int, b: int, k: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.eye(k) + 0.3 * torch.randn(b, k, k, generator=gen)


@self_check
def check_orthogonality_loss(fn) -> str:
    """``fn(A (B,K,K)) -> scalar``: ``mean over the batch of ||I - A A^T||_F^2`` (course_lib's convention,
    ``models.encoders.orthogonality_regularizer``).  References: a float64 loop and analytic values."""
    a = _orth_data(120, 4, 5)
    out = call_student(fn, a)
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (4,):
        raise CheckFailed("you returned one value per matrix (B,): reduce over the batch with a mean (a scalar)")
    expect_tensor(out, "the regulariser", shape=())
    val = float(out)
    ref = _loop_orthogonality(a)
    if not np.isclose(val, ref, rtol=1e-4, atol=1e-6):
        known = (({"square": False}, "you returned the Frobenius norm: the regulariser is its SQUARE, the sum of "
                  "the squared entries of I - A A^T"),
                 ({"reduce": "sum"}, "you summed over the batch: take the mean over the B matrices (so that the "
                  "weight 0.001 does not depend on the batch size)"),
                 ({"sign": 1.0}, "you computed I + A A^T: the regulariser measures how far A A^T is from the "
                  "identity, I - A A^T"),
                 ({"entries": "mean"}, "you averaged over the K x K entries: the squared Frobenius norm SUMS them"),
                 ({"product": "aa"}, "you computed A A (no transpose): orthogonality is A A^T = I"),
                 ({"product": "a"}, "you computed ||I - A||: orthogonality is A A^T = I (a rotation is orthogonal "
                  "and far from I)"))
        for kw, message in known:
            if np.isclose(val, _loop_orthogonality(a, **kw), rtol=1e-4, atol=1e-6):
                raise CheckFailed(message)
    expect_close(val, ref, "the regulariser of 4 random 5 x 5 matrices (against a float64 loop)", atol=1e-6,
                 rtol=1e-4)
    # analytic values: an orthogonal matrix gives 0, c I gives K (1 - c^2)^2
    q = torch.linalg.qr(torch.randn(3, 6, 6, generator=torch.Generator().manual_seed(121))).Q
    expect_close(float(call_student(fn, q)), 0.0, "the regulariser of 3 orthogonal 6 x 6 matrices (A A^T = I)",
                 atol=1e-5)
    c, kk = 0.5, 4
    expect_close(float(call_student(fn, c * torch.eye(kk).expand(2, kk, kk).clone())), kk * (1 - c * c) ** 2,
                 f"the regulariser of {c} I ({kk} x {kk}): K (1 - c^2)^2", atol=1e-6)
    # it trains: the gradient reaches A
    ag = a.clone().requires_grad_(True)
    g = call_student(fn, ag)
    expect(isinstance(g, torch.Tensor) and g.requires_grad, "the regulariser carries no gradient: compute it with "
                                                             "torch operations on A, without detaching")
    g.backward()
    expect(ag.grad is not None and float(ag.grad.abs().sum()) > 0, "A gets no gradient through the regulariser")
    return "agrees with a float64 loop; 0 for orthogonal matrices, K (1 - c^2)^2 for c I; differentiable"


# ---------------------------------------------------------------------------
# ResNet's basic residual block [He2016]: relu(F(x) + skip(x)), against course_lib's BasicBlock
# ---------------------------------------------------------------------------
_BLOCK_CASES = ((6, 6, 1), (4, 8, 2), (4, 8, 1), (6, 6, 2))  # (cin, cout, stride): identity skip first


def _scrambled_block(cin: int, cout: int, stride: int, seed: int) -> nn.Module:
    """course_lib's BasicBlock with random weights and BatchNorm statistics far from (0, 1), in eval mode, so
    that a BatchNorm left out or misplaced changes the output."""
    from course_lib.models.encoders import BasicBlock

    gen = torch.Generator().manual_seed(seed)
    block = BasicBlock(cin, cout, stride)
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / m.weight[0].numel()) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_(0.5 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.3 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
    return block.eval()


def _block_variant(block: nn.Module, x: torch.Tensor, variant: str = "right") -> torch.Tensor:
    """The block's output computed from its layers; ``variant`` names a plausible wrong forward."""
    relu = torch.relu
    if variant == "bn_after_relu":
        y = block.bn1(relu(block.conv1(x)))
    elif variant == "no_inner_relu":
        y = block.bn1(block.conv1(x))
    else:
        y = relu(block.bn1(block.conv1(x)))
    y = block.conv2(y) if variant == "no_bn2" else block.bn2(block.conv2(y))
    skip = block.skip(x)
    return {"right": relu(y + skip), "bn_after_relu": relu(y + skip), "no_inner_relu": relu(y + skip),
            "no_bn2": relu(y + skip), "no_skip": relu(y), "no_final_relu": y + skip,
            "relu_before_sum": relu(y) + skip,
            "double_relu": relu(relu(y) + skip)}[variant]


_BLOCK_MISTAKES = (
    ("no_skip", "you left out the skip connection: the block returns relu(F(x) + skip(x)), not relu(F(x)); "
                "the skip is what lets a block represent the identity by driving F to zero"),
    ("no_final_relu", "there is no ReLU after the sum: this block (ResNet-18/34's) returns relu(F(x) + skip(x)); "
                      "only the later pre-activation variant leaves the sum as it is"),
    ("relu_before_sum", "you applied the last ReLU to F(x) before adding the skip: add first, then the ReLU, "
                        "relu(bn2(conv2(...)) + skip(x))"),
    ("double_relu", "you applied a ReLU to F(x) before the sum as well as after it: F ends with bn2, no ReLU, "
                    "relu(bn2(conv2(...)) + skip(x))"),
    ("bn_after_relu", "BatchNorm comes before the ReLU in F: conv1 -> bn1 -> ReLU -> conv2 -> bn2 (you "
                      "normalised after the ReLU)"),
    ("no_inner_relu", "F has a ReLU between its two convolutions: relu(bn1(conv1(x))) goes into conv2 (without "
                      "it the two convolutions are one linear map)"),
    ("no_bn2", "you left out bn2: F is conv1 -> bn1 -> ReLU -> conv2 -> bn2"),
)


def _layer_report(mine: nn.Module, ref: nn.Module) -> str | None:
    """A named message when the student's block does not hold course_lib's layers (names and shapes)."""
    got = {k: tuple(v.shape) for k, v in mine.state_dict().items()}
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    if got == want:
        return None
    projection = any(k.startswith("skip.") for k in want)
    has_skip_params = any(k.startswith("skip.") for k in got)
    cin, cout, stride = ref.conv1.in_channels, ref.conv1.out_channels, ref.conv1.stride[0]
    what = f"ResidualBlock({cin}, {cout}, stride={stride})"
    if projection and not has_skip_params:
        return (f"{what}: the output has {cout} channels at 1/{stride} of the resolution and x has {cin} channels "
                "at full resolution, so x cannot be added as it is: when stride != 1 or cin != cout the skip is "
                "a 1x1 convolution with that stride (no bias) followed by BatchNorm, "
                "self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))")
    if not projection and has_skip_params:
        return (f"{what}: the shape does not change, so the skip is the identity (nn.Identity(), no parameters); "
                "a projection there costs parameters and takes away the block's easy identity")
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    wrong = sorted(k for k in set(got) & set(want) if got[k] != want[k])
    parts = ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unexpected {', '.join(extra)}"] if extra
                                                                      else [])
    parts += [f"{k} has shape {got[k]}, expected {want[k]}" for k in wrong]
    return (f"{what} does not hold the layers of the exercise (conv1, bn1, conv2, bn2, skip; convolutions without "
            f"bias): " + "; ".join(parts))


def _student_block(cls, cin: int, cout: int, stride: int, seed: int) -> tuple[nn.Module, nn.Module]:
    """The student's block with course_lib's scrambled weights loaded into it, and that reference block."""
    ref = _scrambled_block(cin, cout, stride, seed)
    mine = call_student(cls, cin, cout, stride)
    expect(isinstance(mine, nn.Module), f"ResidualBlock({cin}, {cout}, {stride}) should be an nn.Module, "
                                        f"got {type(mine).__name__}")
    problem = _layer_report(mine, ref)
    if problem:
        raise CheckFailed(problem)
    mine.load_state_dict(ref.state_dict())
    return mine.eval(), ref


@self_check
def check_residual_block(cls) -> str:
    """``cls(cin, cout, stride)`` is ResNet's basic block: ``relu(F(x) + skip(x))`` with
    ``F = conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN`` and ``skip`` the identity, or a strided 1x1
    convolution + BN when the shape changes.  course_lib's ``models.encoders.BasicBlock`` weights (random, with
    BatchNorm statistics far from 0 and 1, eval mode) are loaded into the student's layers and the outputs
    compared; the wrong variants are computed from the same layers."""
    gen = torch.Generator().manual_seed(160)
    for i, (cin, cout, stride) in enumerate(_BLOCK_CASES):
        mine, ref = _student_block(cls, cin, cout, stride, 161 + i)
        x = torch.randn(2, cin, 8, 8, generator=gen)
        with torch.no_grad():
            want = ref(x.clone())
        what = f"ResidualBlock({cin}, {cout}, stride={stride}) on x (2, {cin}, 8, 8)"
        try:
            with torch.no_grad():
                out = call_student(mine, x.clone())
        except StudentError as exc:
            text = str(exc.exc)
            if (cin != cout or stride != 1) and any(w in text for w in ("size", "match", "shape")):
                raise CheckFailed(f"{what}: your code raised {type(exc.exc).__name__}: {text}. When the shape "
                                  "changes, add self.skip(x), not x itself: x has other channels and resolution"
                                  + (f"; {exc.where}" if exc.where else "")) from None
            raise
        expect_tensor(out, what, shape=tuple(want.shape))
        if not torch.allclose(out, want, atol=1e-5, rtol=1e-4):
            with torch.no_grad():
                for variant, message in _BLOCK_MISTAKES:
                    if torch.allclose(out, _block_variant(ref, x, variant), atol=1e-5, rtol=1e-4):
                        raise CheckFailed(f"{what}: {message}")
            expect_close(out, want, f"{what} (course_lib's BasicBlock with your layers' weights)", atol=1e-5,
                         rtol=1e-4)
    # the block trains: the gradient reaches x and every layer
    mine, _ = _student_block(cls, 4, 8, 2, 170)
    mine.train()
    x = torch.randn(3, 4, 8, 8, generator=gen, requires_grad=True)
    y = call_student(mine, x)
    expect(isinstance(y, torch.Tensor) and y.requires_grad, "the output carries no gradient: no .detach() and no "
                                                             "torch.no_grad() in forward")
    y.square().sum().backward()
    expect(x.grad is not None and float(x.grad.abs().sum()) > 0, "x gets no gradient through your block")
    dead = [n for n, prm in mine.named_parameters() if prm.grad is None or float(prm.grad.abs().sum()) == 0]
    expect(not dead, f"these parameters get no gradient: {', '.join(dead)}: is every layer used in forward?")
    return "relu(F(x) + skip(x)) with course_lib's weights, identity and projection skips, stride 1 and 2; trains"


# ---------------------------------------------------------------------------
# hidden parts (run by the grader only): other sizes, a batch of one, one point, float64, ties, points on the
# ball's boundary, batch independence, inputs unchanged; independent float64 loops as references
# ---------------------------------------------------------------------------
def _loop_fps(x: torch.Tensor, n: int, start_idx: int = 0) -> torch.Tensor:
    """Farthest point sampling by a float64 loop over clouds, samples and points (ties: the lowest index)."""
    b, npts, _ = x.shape
    xd = x.detach().cpu().double().numpy()
    out = torch.empty(b, n, dtype=torch.long)
    for bi in range(b):
        mins = np.full(npts, np.inf)
        cur = start_idx
        for i in range(n):
            out[bi, i] = cur
            mins = np.minimum(mins, ((xd[bi] - xd[bi, cur]) ** 2).sum(-1))
            cur = int(np.argmax(mins))  # the first maximum: ties go to the lowest index
    return out


def _loop_ball(x: torch.Tensor, centers: torch.Tensor, radius: float, k: int) -> torch.Tensor:
    """Ball query by a float64 loop: the first ``k`` points with squared distance ``< radius**2``, padded."""
    d2 = ((centers.detach().double()[:, :, None] - x.detach().double()[:, None]) ** 2).sum(-1)
    out = torch.empty(d2.shape[0], d2.shape[1], k, dtype=torch.long)
    for bi in range(d2.shape[0]):
        for m in range(d2.shape[1]):
            inside = [j for j in range(d2.shape[2]) if float(d2[bi, m, j]) < radius**2][:k]
            out[bi, m] = torch.tensor(inside + [inside[0]] * (k - len(inside)))
    return out


def _expect_unchanged(new: torch.Tensor, old: torch.Tensor, what: str) -> None:
    expect(torch.equal(new, old), f"your function changed {what} in place: compute on new tensors, leave the "
                                  "inputs as they came")


def _hidden_pointnet_encode(fn) -> str:
    for seed, (b, n, d), dims, dtype in ((50, (1, 1, 3), (3, 8, 5), torch.float32),
                                         (51, (4, 13, 6), (6, 10), torch.float64),
                                         (52, (3, 9, 2), (2, 7, 7, 7, 4), torch.float32)):
        pts = _cloud(seed, b=b, n=n, d=d).to(dtype)
        layers = [layer.to(dtype) for layer in _layers(seed, dims)]
        before = pts.clone()
        with torch.no_grad():
            out = call_student(fn, pts, layers)
        expect(isinstance(out, (tuple, list)) and len(out) == 2, "return a pair (global_feature, critical_idx)")
        glob, crit = out
        what = f"B={b}, N={n}, D={d}, {len(layers)} layer(s), {dtype}"
        if b == 1 and isinstance(glob, torch.Tensor) and glob.dim() == 1:
            raise CheckFailed(f"for a batch of one ({what}) the global feature has shape {tuple(glob.shape)}: a "
                              ".squeeze() drops the batch axis; return (B, F) for every B")
        expect_tensor(glob, f"the global feature ({what})", shape=(b, dims[-1]))
        expect_tensor(crit, f"critical_idx ({what})", shape=(b, dims[-1]))
        expect(glob.dtype == dtype, f"for {dtype} points and layers the global feature is {glob.dtype}: do not "
                                    "convert the points to a fixed dtype")
        _expect_unchanged(pts, before, "the points")
        ref, ref_idx = _reference_encode(pts, layers)
        expect_close(glob, ref, f"the global feature ({what}, against a per-point float64 loop)",
                     atol=1e-4 if dtype == torch.float32 else 1e-9, rtol=1e-4 if dtype == torch.float32 else 1e-9)
        if n == 1:
            expect(bool((crit == 0).all()), "with a single point every channel's critical index is 0")
        else:
            expect(torch.equal(crit.long().cpu(), ref_idx), f"critical_idx is wrong ({what})")
    # clouds are independent: changing cloud 1 leaves cloud 0's feature unchanged
    pts = _cloud(53, b=3, n=20)
    layers = _layers(53, (3, 12, 9))
    with torch.no_grad():
        a, _ = call_student(fn, pts.clone(), layers)
        pts2 = pts.clone()
        pts2[1:] *= 3.0
        c, _ = call_student(fn, pts2, layers)
    expect_close(c[0], a[0], "cloud 0's global feature after changing only clouds 1 and 2 (the max is over each "
                 "cloud's own points, dim=1)", atol=1e-6)
    return "a single point, a batch of one, D = 2 and 6, one to four layers, float64, clouds independent"


def _hidden_farthest_point_sampling(fn) -> str:
    for seed, (b, n), m, start, dtype in ((61, (1, 20), 6, 19, torch.float32), (60, (1, 1), 1, 0, torch.float32),
                                          (62, (4, 9), 9, 3, torch.float64), (63, (2, 40), 15, 0, torch.float64)):
        x = _cloud(seed, b=b, n=n).to(dtype)
        before = x.clone()
        idx = call_student(fn, x, m, start_idx=start)
        what = f"B={b}, N={n}, n={m}, start_idx={start}, {dtype}"
        if b == 1 and isinstance(idx, torch.Tensor) and idx.dim() == 1 and m > 1:
            raise CheckFailed(f"a batch of one ({what}) gives shape {tuple(idx.shape)}: a .squeeze() drops the batch "
                              "axis; return (B, n) for every B")
        expect_tensor(idx, f"the sampled indices ({what})", shape=(b, m))
        expect(idx.dtype == torch.long, f"the indices have dtype {idx.dtype}, expected torch.long")
        _expect_unchanged(x, before, "x")
        ref = _loop_fps(x, m, start)
        if m == n and not torch.equal(idx.cpu(), ref):
            expect(all(len(set(r.tolist())) == n for r in idx.cpu()), f"with n = N ({what}) every point must be "
                   "picked exactly once (a point already picked has distance 0 to the picked set)")
        expect(torch.equal(idx.cpu(), ref), f"the indices ({what}) differ from a float64 loop over the definition: "
                                            f"got {idx[0].tolist()} for cloud 0, expected {ref[0].tolist()}")
    # ties: the square's four corners are equally far from the start: take the lowest index (argmax's rule)
    x = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]]])
    idx = call_student(fn, x, 5)
    expect_tensor(idx, "the indices for five points with ties", shape=(1, 5))
    expect(idx[0].tolist() == [0, 1, 2, 3, 4], f"with equally far points the lowest index wins (argmax takes the "
                                               f"first maximum): expected [0, 1, 2, 3, 4], got {idx[0].tolist()}")
    # clouds are independent, and a second call gives the same samples
    x = _cloud(64, b=3, n=30)
    a = call_student(fn, x.clone(), 8)
    x2 = x.clone()
    x2[1:] = x2[1:].flip(1)
    c = call_student(fn, x2, 8)
    expect(torch.equal(c[0].cpu(), a[0].cpu()), "cloud 0's samples changed when only clouds 1 and 2 changed: keep "
                                                "the clouds apart (one row of mins per cloud)")
    again = call_student(fn, x.clone(), 8)
    expect(torch.equal(again.cpu(), a.cpu()), "a second call on the same cloud gives other samples: FPS with a fixed "
                                              "start is deterministic")
    return "n = 1, n = N, a batch of one, start at the last point, float64, ties, clouds independent"


def _hidden_ball_query(fn) -> str:
    g = torch.Generator().manual_seed(70)
    for b, n, m, radius, k, dtype in ((1, 1, 1, 0.3, 1, torch.float32), (1, 25, 3, 0.5, 1, torch.float32),
                                      (3, 30, 5, 0.7, 30, torch.float64), (2, 50, 7, 0.4, 5, torch.float64)):
        x = (torch.rand(b, n, 3, generator=g) * 2 - 1).to(dtype)
        centers = x[:, torch.randint(0, n, (m,), generator=g)] + 0.01
        before = (x.clone(), centers.clone())
        idx = call_student(fn, x, centers, radius, k)
        what = f"B={b}, N={n}, M={m}, radius={radius}, k={k}, {dtype}"
        if b == 1 and isinstance(idx, torch.Tensor) and idx.dim() < 3:
            raise CheckFailed(f"a batch of one ({what}) gives shape {tuple(idx.shape)}: a .squeeze() drops an axis; "
                              "return (B, M, k) for every B, M and k")
        expect_tensor(idx, f"the neighbour indices ({what})", shape=(b, m, k))
        expect(idx.dtype == torch.long, f"the indices have dtype {idx.dtype}, expected torch.long")
        _expect_unchanged(x, before[0], "x")
        _expect_unchanged(centers, before[1], "centers")
        ref = _loop_ball(x, centers, radius, k)
        expect(torch.equal(idx.cpu(), ref), f"the neighbours ({what}) differ from a float64 loop over the "
                                            "definition (first k points in index order with squared distance < "
                                            "radius**2, padded with the first)")
    # a point exactly on the sphere of radius r is outside (strictly <, as PointNet++), one just inside is in
    x = torch.tensor([[[0.0, 0, 0], [0.5, 0, 0], [0, 0.25, 0], [0, 0, -0.5], [0, 0, 0.375]]])
    centers = torch.zeros(1, 1, 3)
    idx = call_student(fn, x, centers, 0.5, 4)
    expect_tensor(idx, "the neighbours of a ball with points on its boundary", shape=(1, 1, 4))
    if idx[0, 0].tolist() == [0, 1, 2, 3]:
        raise CheckFailed("points at distance exactly radius are counted as inside: the ball is open, squared "
                          "distance < radius**2 (strictly, as PointNet++), not <=")
    expect(idx[0, 0].tolist() == [0, 2, 4, 0], f"points at distances 0, 0.5, 0.25, 0.5, 0.375 from the centre, "
                                                f"radius 0.5, k = 4: expected [0, 2, 4, 0], got {idx[0, 0].tolist()}")
    # clouds are independent
    x = torch.rand(3, 30, 3, generator=g)
    centers = x[:, :4] + 0.01
    a = call_student(fn, x.clone(), centers.clone(), 0.4, 6)
    x2 = x.clone()
    x2[1:] = x2[1:].flip(1)
    c = call_student(fn, x2, centers.clone(), 0.4, 6)
    expect(torch.equal(c[0].cpu(), a[0].cpu()), "cloud 0's neighbours changed when only clouds 1 and 2 changed")
    return "one point, k = 1, k = N, a batch of one, float64, points on the boundary, clouds independent"


def _hidden_set_abstraction(fn) -> str:
    for seed, (b, n), m, radius, k, dtype in ((80, (1, 12), 1, 0.6, 3, torch.float32),
                                              (81, (3, 20), 20, 0.5, 4, torch.float64),
                                              (82, (2, 30), 5, 0.8, 1, torch.float32)):
        x = _cloud(seed, b=b, n=n).to(dtype)
        mlp = _sa_mlp(seed).to(dtype)
        before = x.clone()
        with torch.no_grad():
            out = call_student(fn, x, m, radius, k, mlp)
        expect(isinstance(out, (tuple, list)) and len(out) == 2, "return a pair (centres, features)")
        centres, feats = out
        what = f"B={b}, N={n}, M={m}, radius={radius}, k={k}, {dtype}"
        for name, t in (("centres", centres), ("features", feats)):
            if isinstance(t, torch.Tensor) and t.dim() < 3:
                raise CheckFailed(f"the {name} ({what}) have shape {tuple(t.shape)}: a .squeeze() drops the batch "
                                  "axis or the centre axis; return (B, M, 3) and (B, M, F) for every B and M")
        expect_tensor(centres, f"the centres ({what})", shape=(b, m, 3))
        expect_tensor(feats, f"the features ({what})", shape=(b, m, 12))
        expect(feats.dtype == dtype, f"for {dtype} points and MLP the features are {feats.dtype}: keep the dtype")
        _expect_unchanged(x, before, "x")
        fps_idx = _loop_fps(x, m)
        ref_c = _gather(x.detach().double(), fps_idx)
        groups = _loop_ball(x, ref_c.to(dtype), radius, k)
        with torch.no_grad():
            local = _gather(x.detach(), groups) - ref_c.to(dtype)[:, :, None]
            ref_f = mlp(local).double().max(dim=2).values
        expect_close(centres, ref_c, f"the centres ({what}, against a float64 FPS loop)", atol=1e-6)
        expect_close(feats, ref_f, f"the features ({what}, against loops for FPS and the ball query)",
                     atol=1e-4, rtol=1e-4)
    # clouds are independent
    x = _cloud(83, b=3, n=25)
    mlp = _sa_mlp(83)
    with torch.no_grad():
        _, a = call_student(fn, x.clone(), 6, 0.5, 4, mlp)
        x2 = x.clone()
        x2[1:] = x2[1:] * 0.5
        _, c = call_student(fn, x2, 6, 0.5, 4, mlp)
    expect_close(c[0], a[0], "cloud 0's features after changing only clouds 1 and 2", atol=1e-6)
    return "one centre, every point a centre, k = 1, a batch of one, float64, clouds independent"


def _hidden_pointnet_training(model, reference, points, labels, *, profile: str | None = None) -> str:
    """The trained model in eval mode: a cloud alone gives its logits inside a batch, the order of the points does
    not matter, and the points are left unchanged."""
    was = model.training
    model.eval()
    try:
        dev = next((p.device for p in model.parameters()), points.device)
        pts = points[:4].to(dev)
        before = pts.clone()
        with torch.no_grad():
            batch = call_student(model, pts)
            expect_tensor(batch, "the logits of 4 held-out clouds", shape=(pts.shape[0], None))
            _expect_unchanged(pts, before, "the points")
            one = call_student(model, pts[:1].clone())
            if isinstance(one, torch.Tensor) and one.dim() == 1:
                raise CheckFailed(f"a batch of one cloud gives logits of shape {tuple(one.shape)}: a .squeeze() (in "
                                  "pointnet_encode or the head) drops the batch axis; keep (B, F) for every B")
            expect_tensor(one, "the logits of one cloud", shape=(1, batch.shape[1]))
            expect_close(one[0], batch[0], "the logits of cloud 0 alone vs inside a batch of 4 (eval mode: each "
                         "cloud on its own)", atol=1e-4, rtol=1e-4)
            perm = torch.randperm(pts.shape[1], generator=torch.Generator().manual_seed(90)).to(dev)
            shuffled = call_student(model, pts[:, perm].clone())
            expect_close(shuffled, batch, "the logits after shuffling the points of every cloud (a max over the "
                         "points does not see their order)", atol=1e-4, rtol=1e-4)
    finally:
        model.train(was)
    return "a cloud alone gives its logits inside a batch, shuffled points give the same logits"


def _hidden_edge_features(fn) -> str:
    for seed, (b, n, c), k, dtype in ((130, (1, 10, 3), 4, torch.float32), (131, (2, 9, 7), 1, torch.float64),
                                      (132, (3, 8, 1), 7, torch.float32), (133, (2, 12, 7), 11, torch.float64)):
        x = _cloud(seed, b=b, n=n, d=c).to(dtype)
        before = x.clone()
        with torch.no_grad():
            out = call_student(fn, x, k)
        what = f"B={b}, N={n}, C={c}, k={k}, {dtype}"
        if isinstance(out, torch.Tensor) and out.dim() < 4:
            raise CheckFailed(f"the edge features ({what}) have shape {tuple(out.shape)}: a .squeeze() drops an "
                              "axis; return (B, N, k, 2C) for every B, k and C")
        expect_tensor(out, f"the edge features ({what})", shape=(b, n, k, 2 * c))
        expect(out.dtype == dtype, f"for {dtype} input the edge features are {out.dtype}: keep the input's dtype")
        _expect_unchanged(x, before, "x")
        ref = _reference_edges(x, k)
        if k == 1 and not torch.allclose(out.detach().cpu().double(), ref, atol=1e-5):
            raise CheckFailed(f"with k = 1 ({what}) the only neighbour is the point itself (distance 0): the edge "
                              "vector is 0 and the features are [0, x_i]")
        expect_close(_canonical(out), _canonical(ref), f"the edge features ({what}, against a float64 loop over the "
                     "points)",
                     atol=1e-5 if dtype == torch.float32 else 1e-10, rtol=1e-5)
    # clouds are independent, in float64 too
    x = _cloud(134, b=3, n=15, d=4).double()
    a = call_student(fn, x.clone(), 5)
    x2 = x.clone()
    x2[1:] = x2[1:].flip(1) * 0.5
    other = call_student(fn, x2, 5)
    expect_close(_canonical(other)[0], _canonical(a)[0], "cloud 0's edge features after changing only clouds 1 "
                 "and 2", atol=1e-12)
    return "a batch of one, k = 1, k = N - 1, C = 1 and 7, float64, clouds independent, inputs unchanged"


def _hidden_edge_conv(fn) -> str:
    for seed, (b, n, c), k, cout, dtype in ((140, (1, 10, 3), 1, 4, torch.float32),
                                            (141, (2, 9, 6), 8, 3, torch.float64)):
        x = _cloud(seed, b=b, n=n, d=c).to(dtype)
        lin = _edge_linear(seed, c, cout).to(dtype)
        before = x.clone()
        with torch.no_grad():
            out = call_student(fn, x, k, lin)
        what = f"B={b}, N={n}, C={c}, k={k}, C'={cout}, {dtype}"
        if isinstance(out, torch.Tensor) and out.dim() < 3:
            raise CheckFailed(f"the output ({what}) has shape {tuple(out.shape)}: a .squeeze() drops an axis")
        expect_tensor(out, f"the EdgeConv output ({what})", shape=(b, n, cout))
        expect(out.dtype == dtype, f"for {dtype} input and layer the output is {out.dtype}: keep the dtype")
        _expect_unchanged(x, before, "x")
        expect_close(out, _reference_conv(x, k, lin), f"the EdgeConv output ({what}, against a float64 loop)",
                     atol=1e-5 if dtype == torch.float32 else 1e-10, rtol=1e-5)
    return "a batch of one, k = 1, k = N - 1, float64, inputs unchanged"


def _hidden_orthogonality_loss(fn) -> str:
    for seed, (b, k), dtype in ((150, (1, 3), torch.float32), (151, (5, 1), torch.float64),
                                (152, (2, 64), torch.float64), (153, (7, 3), torch.float32)):
        a = _orth_data(seed, b, k).to(dtype)
        before = a.clone()
        out = call_student(fn, a)
        what = f"B={b}, K={k}, {dtype}"
        expect_tensor(out, f"the regulariser ({what})", shape=())
        expect(out.dtype == dtype, f"for {dtype} matrices the regulariser is {out.dtype}: keep the dtype")
        _expect_unchanged(a, before, "A")
        expect_close(float(out), _loop_orthogonality(a), f"the regulariser ({what}, against a float64 loop)",
                     atol=1e-6, rtol=1e-5 if dtype == torch.float32 else 1e-10)
    # the exact gradient, d/dA mean_b ||I - A A^T||^2 = -4 (I - A A^T) A / B
    a = _orth_data(154, 3, 4).double().requires_grad_(True)
    call_student(fn, a).backward()
    ad = a.detach()
    want = -4 * (torch.eye(4, dtype=torch.float64) - ad @ ad.transpose(1, 2)) @ ad / 3
    expect(a.grad is not None, "A gets no gradient through the regulariser")
    expect_close(a.grad, want, "the gradient with respect to A (-4 (I - A A^T) A / B)", atol=1e-9)
    return "a batch of one, K = 1 and 64, float64, the exact gradient, inputs unchanged"


def _hidden_residual_block(cls) -> str:
    import copy

    gen = torch.Generator().manual_seed(180)
    for seed, (cin, cout, stride), (b, h, w), dtype in ((181, (3, 3, 1), (1, 5, 5), torch.float32),
                                                        (182, (2, 5, 2), (1, 7, 9), torch.float64),
                                                        (183, (5, 5, 2), (3, 6, 6), torch.float64),
                                                        (184, (4, 6, 1), (2, 3, 3), torch.float32)):
        mine, ref = _student_block(cls, cin, cout, stride, seed)
        mine, ref = mine.to(dtype), ref.to(dtype)
        x = torch.randn(b, cin, h, w, generator=gen, dtype=dtype)
        before = x.clone()
        what = f"ResidualBlock({cin}, {cout}, stride={stride}) on x {tuple(x.shape)}, {dtype}"
        with torch.no_grad():
            out = call_student(mine, x)
            want = ref(before.clone())
        _expect_unchanged(x, before, "x")
        expect_tensor(out, what, shape=tuple(want.shape))
        expect(out.dtype == dtype, f"for {dtype} input the output is {out.dtype}: keep the dtype")
        expect_close(out, want, f"{what} (eval mode)", atol=1e-5 if dtype == torch.float32 else 1e-10, rtol=1e-5)
        # training mode: batch statistics, and the running statistics move as course_lib's do
        if b > 1:
            mine_t, ref_t = copy.deepcopy(mine).train(), copy.deepcopy(ref).train()
            with torch.no_grad():
                out_t = call_student(mine_t, x.clone())
                want_t = ref_t(x.clone())
            expect_close(out_t, want_t, f"{what} (training mode: BatchNorm with the batch's statistics)",
                         atol=1e-5 if dtype == torch.float32 else 1e-10, rtol=1e-5)
            for (name, got), (_, ref_buf) in zip(mine_t.named_buffers(), ref_t.named_buffers()):
                if got.is_floating_point():
                    expect_close(got, ref_buf, f"the running statistic {name} after one training step ({what}): "
                                 "apply every BatchNorm once per forward", atol=1e-6, rtol=1e-5)
    return "a batch of one, odd sizes, float64, training mode and its running statistics, inputs unchanged"


def _register_hidden() -> None:
    from course_lib import ops
    from course_lib.models import encoders as E
    from course_lib.ops import neighbors, sampling

    fps_refs = (ops.farthest_point_sampling, sampling.farthest_point_sampling)
    ball_refs = (ops.ball_query, sampling.ball_query)
    check_pointnet_encode.hidden(_hidden_pointnet_encode, references=(E.PointNet.forward, E._max_pool))
    check_farthest_point_sampling.hidden(_hidden_farthest_point_sampling, references=fps_refs)
    check_ball_query.hidden(_hidden_ball_query, references=ball_refs)
    check_set_abstraction.hidden(_hidden_set_abstraction,
                                 references=(E.SetAbstraction.forward, *fps_refs, *ball_refs))
    check_pointnet_training.hidden(_hidden_pointnet_training, references=(E.PointNet.forward, E._max_pool))
    knn_refs = (E._knn_idx, ops.knn, neighbors.knn_search, E.EdgeConv)
    check_edge_features.hidden(_hidden_edge_features, references=knn_refs)
    check_edge_conv.hidden(_hidden_edge_conv, references=(*knn_refs, E._neighbour_max))
    check_orthogonality_loss.hidden(_hidden_orthogonality_loss, references=(E.orthogonality_regularizer,))
    check_residual_block.hidden(_hidden_residual_block, references=(E.BasicBlock.forward, E.BasicBlock.__init__))


_register_hidden()
