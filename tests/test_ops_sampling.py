"""farthest_point_sampling and ball_query against brute-force loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib.ops import _jit, ball_query, farthest_point_sampling, gather_points


def _fps_ref(x: np.ndarray, n: int, start: int = 0) -> list[int]:
    """The textbook definition, written as plainly as possible."""
    chosen = [start]
    for _ in range(n - 1):
        best, best_d = -1, -1.0
        for i in range(len(x)):
            d = min(float(((x[i] - x[j]) ** 2).sum()) for j in chosen)
            if d > best_d:
                best, best_d = i, d
        chosen.append(best)
    return chosen


def _ball_ref(x: np.ndarray, c: np.ndarray, r: float, k: int) -> list[list[int]]:
    out = []
    for cc in c:
        found = [i for i in range(len(x)) if float(((x[i] - cc) ** 2).sum()) < r * r][:k]
        if not found:
            out.append([0] * k)
        else:
            out.append(found + [found[0]] * (k - len(found)))
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fps_matches_brute_force(dtype: torch.dtype, jit_impl: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 120, 3, generator=g, dtype=dtype)
    idx = farthest_point_sampling(x, 12)
    assert idx.shape == (2, 12) and idx.dtype == torch.long
    for b in range(2):
        assert idx[b].tolist() == _fps_ref(x[b].double().numpy(), 12)
    # unbatched and another start
    assert farthest_point_sampling(x[0], 12, start_idx=7).tolist() == _fps_ref(x[0].double().numpy(), 12, 7)


@pytest.mark.parametrize("dim", [1, 3, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fps_compiled_buckets_match_the_numpy_loop(dim: int, dtype: type) -> None:
    # the bucketed kernel must pick exactly the same indices as the plain loop, ties included
    if not _jit.AVAILABLE:
        pytest.skip("numba is not installed")
    from course_lib.ops.sampling import _fps_numpy

    rng = np.random.default_rng(dim)
    x = rng.random((3000, dim)).astype(dtype)
    x[::7] = x[3]  # many exact duplicates: ties everywhere
    x[:, 0] *= 20.0  # elongated, so most grid buckets are skipped
    for start in (0, 2999):
        np.testing.assert_array_equal(_jit.fps_bucketed(x, 400, start), _fps_numpy(x, 400, start))
    flat = np.zeros((50, dim), dtype)  # points 10 and 30 tie for the third pick: the lower index wins
    flat[10], flat[20], flat[30] = 1.0, 2.0, 1.0
    assert _jit.fps_bucketed(flat, 3, 0).tolist() == _fps_numpy(flat, 3, 0).tolist() == [0, 20, 10]


def test_fps_torch_loop_matches_numpy_loop() -> None:
    # the GPU path (torch loop) must agree with the CPU path; run it on the CPU here
    from course_lib.ops.sampling import _fps_torch

    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 200, 5, generator=g)
    start = torch.tensor([0, 5, 9])
    got = _fps_torch(x, 20, start, None)
    for b in range(3):
        assert got[b].tolist() == _fps_ref(x[b].double().numpy(), 20, int(start[b]))
    lengths = torch.tensor([200, 50, 120])
    got = _fps_torch(x, 20, start, lengths)
    for b in range(3):
        assert got[b].tolist() == _fps_ref(x[b, : int(lengths[b])].double().numpy(), 20, int(start[b]))


def test_fps_lengths_random_start_and_spread() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 100, 3, generator=g)
    idx = farthest_point_sampling(x, 10, lengths=[100, 30], start_idx="random",
                                  generator=torch.Generator().manual_seed(5))
    assert bool((idx[1] < 30).all())
    assert len(set(idx[0].tolist())) == 10 and len(set(idx[1].tolist())) == 10
    again = farthest_point_sampling(x, 10, lengths=[100, 30], start_idx="random",
                                    generator=torch.Generator().manual_seed(5))
    assert torch.equal(idx, again)
    # FPS covers better than the first points: its covering radius is smaller
    pts = x[0]
    fps_pts = gather_points(x, idx)[0]
    cover_fps = torch.cdist(pts, fps_pts).min(1).values.max()
    cover_first = torch.cdist(pts, pts[:10]).min(1).values.max()
    assert cover_fps < cover_first


def test_fps_farthest_start_is_order_independent(jit_impl: str) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 500, 3, generator=g)
    perm = torch.randperm(500, generator=g)
    a = farthest_point_sampling(x, 40, start_idx="farthest")
    b = farthest_point_sampling(x[:, perm], 40, start_idx="farthest")
    for i in range(2):
        far = int(((x[i].double() - x[i].double().mean(0)) ** 2).sum(-1).argmax())
        assert a[i].tolist() == _fps_ref(x[i].double().numpy(), 40, far)
        assert perm[b[i]].tolist() == a[i].tolist()
    ragged = farthest_point_sampling(x, 5, start_idx="farthest", lengths=[500, 50])
    assert int(ragged[1, 0]) == int(((x[1, :50] - x[1, :50].mean(0)) ** 2).sum(-1).argmax())


def test_fps_errors() -> None:
    x = torch.rand(10, 3)
    with pytest.raises(ValueError, match="n must satisfy"):
        farthest_point_sampling(x, 11)
    with pytest.raises(ValueError, match="n must satisfy"):
        farthest_point_sampling(x, 0)
    with pytest.raises(ValueError, match="start_idx"):
        farthest_point_sampling(x, 2, start_idx=10)
    with pytest.raises(ValueError, match="start_idx"):
        farthest_point_sampling(x, 2, start_idx="middle")
    with pytest.raises(ValueError, match="rank"):
        farthest_point_sampling(torch.rand(1, 1, 10, 3), 2)
    with pytest.raises(ValueError, match="empty"):
        farthest_point_sampling(torch.rand(0, 3), 1)
    with pytest.raises(ValueError, match="NaN"):
        farthest_point_sampling(torch.full((4, 3), float("inf")), 1)


def test_ball_query_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 150, 3, generator=g)
    centers = torch.cat([x[:, :20], torch.full((2, 2, 3), 5.0)], dim=1)  # two empty balls
    idx, cnt = ball_query(x, centers, 0.2, 8, return_counts=True)
    assert idx.shape == (2, 22, 8) and idx.dtype == torch.long
    for b in range(2):
        ref = _ball_ref(x[b].double().numpy(), centers[b].double().numpy(), 0.2, 8)
        assert idx[b].tolist() == ref
        d2 = ((centers[b][:, None] - x[b][None]) ** 2).sum(-1)
        assert cnt[b].tolist() == (d2 < 0.04).sum(-1).clamp(max=8).tolist()
    assert bool((cnt[:, 20:] == 0).all())
    # unbatched
    assert ball_query(x[0], centers[0], 0.2, 8).tolist() == idx[0].tolist()


def test_ball_query_small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    import course_lib.ops.sampling as sampling

    monkeypatch.setattr(sampling, "block_elements", lambda device=None: 100)
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 60, 3, generator=g)
    idx = ball_query(x, x[:, :10], 0.3, 5)
    assert idx[0].tolist() == _ball_ref(x[0].double().numpy(), x[0, :10].double().numpy(), 0.3, 5)


def test_ball_query_errors() -> None:
    x = torch.rand(10, 3)
    with pytest.raises(ValueError, match="k must satisfy"):
        ball_query(x, x, 0.1, 11)
    with pytest.raises(ValueError, match="radius"):
        ball_query(x, x, -1.0, 2)
    with pytest.raises(ValueError, match="batch sizes differ"):
        ball_query(torch.rand(2, 10, 3), torch.rand(1, 4, 3), 0.1, 2)
    with pytest.raises(ValueError, match="feature dimensions"):
        ball_query(x, torch.rand(4, 2), 0.1, 2)


def test_ball_query_priority_and_coordinate_hash() -> None:
    from course_lib.ops import coordinate_hash

    g = torch.Generator().manual_seed(8)
    x = torch.rand(2, 300, 3, generator=g)
    centers = x[:, :10]
    pr = coordinate_hash(x)
    assert pr.shape == (2, 300) and bool((pr >= 0).all() and (pr < 1).all())
    idx = ball_query(x, centers, 0.3, 6, priority=pr)
    # brute force: inside the ball, the 6 smallest priorities
    for b in range(2):
        for c in range(10):
            d2 = ((x[b] - centers[b, c]) ** 2).sum(-1)
            inside = torch.nonzero(d2 < 0.09).flatten()
            best = inside[torch.argsort(pr[b, inside])][:6]
            assert set(idx[b, c].tolist()) == set(best.tolist())
    # permuting the input permutes the indices and keeps the same points
    perm = torch.randperm(300, generator=g)
    idx_p = ball_query(x[:, perm], centers, 0.3, 6, priority=coordinate_hash(x[:, perm]))
    assert torch.equal(perm[idx_p].sort(-1).values, idx.sort(-1).values)
    with pytest.raises(ValueError, match="priority"):
        ball_query(x, centers, 0.3, 6, priority=pr[:, :10])
