"""The chapter-02 self-checks pass the reference, fail wrong answers, and flag stubs."""

from __future__ import annotations

import torch

from course_lib import checks, ops


# --- reference solutions (independent of course_lib where it matters) ------
def pointnet_encode(points, layers):
    x = points
    for i, layer in enumerate(layers):
        x = layer(x)
        if i < len(layers) - 1:
            x = torch.relu(x)
    return x.max(dim=1)


def fps(x, n, start_idx=0):
    B, N, _ = x.shape
    out = torch.zeros(B, n, dtype=torch.long)
    mins = torch.full((B, N), float("inf"))
    far = torch.full((B,), start_idx, dtype=torch.long)
    for i in range(n):
        out[:, i] = far
        d = ((x - x[torch.arange(B), far][:, None]) ** 2).sum(-1)
        mins = torch.minimum(mins, d)
        far = mins.argmax(-1)
    return out


def ball_query(x, centers, radius, k):
    B, M, N = x.shape[0], centers.shape[1], x.shape[1]
    out = torch.zeros(B, M, k, dtype=torch.long)
    for b in range(B):
        for m in range(M):
            inside = [j for j in range(N) if ((x[b, j] - centers[b, m]) ** 2).sum() <= radius**2][:k]
            out[b, m] = torch.tensor(inside + [inside[0]] * (k - len(inside)))
    return out


def stub(*args, **kwargs):
    raise NotImplementedError()


def test_references_pass():
    assert checks.check_pointnet_encode(pointnet_encode, quiet=True).passed
    assert checks.check_farthest_point_sampling(fps, quiet=True).passed
    assert checks.check_ball_query(ball_query, quiet=True).passed
    # and the library functions themselves
    assert checks.check_farthest_point_sampling(ops.farthest_point_sampling, quiet=True).passed
    assert checks.check_ball_query(ops.ball_query, quiet=True).passed


def test_stubs_are_not_implemented():
    for check in (checks.check_pointnet_encode, checks.check_farthest_point_sampling, checks.check_ball_query):
        res = check(stub, quiet=True)
        assert res.status == "not_implemented" and "not implemented yet" in res.verdict()


def test_pointnet_encode_wrong_answers():
    def mean_pool(points, layers):
        g, i = pointnet_encode(points, layers)
        x = points
        for j, layer in enumerate(layers):
            x = layer(x)
            if j < len(layers) - 1:
                x = torch.relu(x)
        return x.mean(dim=1), i

    res = checks.check_pointnet_encode(mean_pool, quiet=True)
    assert res.status == "failed" and "max" in res.message

    def relu_last(points, layers):
        x = points
        for layer in layers:
            x = torch.relu(layer(x))
        return x.max(dim=1)

    res = checks.check_pointnet_encode(relu_last, quiet=True)
    assert res.status == "failed" and "ReLU after the LAST" in res.message

    def no_idx(points, layers):
        return pointnet_encode(points, layers).values, torch.zeros(points.shape[0], 24, dtype=torch.long)

    res = checks.check_pointnet_encode(no_idx, quiet=True)
    assert res.status == "failed" and "critical_idx" in res.message

    def single_value(points, layers):
        return pointnet_encode(points, layers).values

    assert checks.check_pointnet_encode(single_value, quiet=True).status == "failed"

    def crash(points, layers):
        return points @ torch.zeros(5, 5)

    res = checks.check_pointnet_encode(crash, quiet=True)
    assert res.status == "error" and "RuntimeError" in res.message


def test_fps_wrong_answers():
    def nearest_not_min(x, n, start_idx=0):  # distance to the LAST pick only
        B, N, _ = x.shape
        out = torch.zeros(B, n, dtype=torch.long)
        far = torch.full((B,), start_idx, dtype=torch.long)
        for i in range(n):
            out[:, i] = far
            d = ((x - x[torch.arange(B), far][:, None]) ** 2).sum(-1)
            d[torch.arange(B)[:, None], out[:, : i + 1]] = -1
            far = d.argmax(-1)
        return out

    res = checks.check_farthest_point_sampling(nearest_not_min, quiet=True)
    assert res.status == "failed" and "farther" in res.message

    def random_pick(x, n, start_idx=0):
        return torch.stack([torch.randperm(x.shape[1])[:n] for _ in range(x.shape[0])])

    assert checks.check_farthest_point_sampling(random_pick, quiet=True).status == "failed"

    def float_idx(x, n, start_idx=0):
        return fps(x, n, start_idx).float()

    res = checks.check_farthest_point_sampling(float_idx, quiet=True)
    assert res.status == "failed" and "integer" in res.message

    def ignores_start(x, n, start_idx=0):
        return fps(x, n, 0)

    res = checks.check_farthest_point_sampling(ignores_start, quiet=True)
    assert res.status == "failed" and "start_idx=7" in res.message


def test_ball_query_wrong_answers():
    def nearest_k(x, centers, radius, k):  # kNN instead of ball query
        d = ((centers[:, :, None] - x[:, None]) ** 2).sum(-1)
        return d.topk(k, largest=False).indices

    assert checks.check_ball_query(nearest_k, quiet=True).status == "failed"

    def reversed_order(x, centers, radius, k):
        out = ball_query(x, centers, radius, k)
        return out.flip(-1)

    res = checks.check_ball_query(reversed_order, quiet=True)
    assert res.status == "failed" and "order" in res.message

    def radius_not_squared(x, centers, radius, k):
        return ball_query(x, centers, radius**0.5, k)

    res = checks.check_ball_query(radius_not_squared, quiet=True)
    assert res.status == "failed" and "radius" in res.message

    def pad_zero(x, centers, radius, k):
        out = ball_query(x, centers, radius, k)
        first = out[..., :1]
        return torch.where(out == first, torch.where(torch.arange(k) == 0, out, 0), out)

    assert checks.check_ball_query(pad_zero, quiet=True).status == "failed"
