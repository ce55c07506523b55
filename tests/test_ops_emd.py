"""emd: exact against linear_sum_assignment and brute force; auction and Sinkhorn against exact."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from course_lib.ops import _jit, emd


def _clouds(b: int, n: int, seed: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, 3, generator=g, dtype=dtype)
    y = torch.randn(b, n, 3, generator=g, dtype=dtype) * torch.tensor([1.0, 0.5, 0.8], dtype=dtype) + 0.3
    return x, y


def _ref(x: np.ndarray, y: np.ndarray, squared: bool) -> float:
    c = cdist(x, y, "sqeuclidean" if squared else "euclidean")
    r, cols = linear_sum_assignment(c)
    return float(c[r, cols].mean())


def test_exact_matches_brute_force_permutations() -> None:
    x, y = _clouds(1, 6, 0)
    c = cdist(x[0].numpy(), y[0].numpy())
    best = min(np.mean([c[i, p[i]] for i in range(6)]) for p in itertools.permutations(range(6)))
    res = emd(x[0], y[0])
    assert abs(float(res.cost) - best) < 1e-12
    assert sorted(res.assignment.tolist()) == list(range(6))


@pytest.mark.parametrize("squared", [False, True])
def test_exact_matches_scipy(squared: bool) -> None:
    x, y = _clouds(3, 40, 1)
    res = emd(x, y, "exact", squared=squared, reduction="none")
    ref = [_ref(x[b].numpy(), y[b].numpy(), squared) for b in range(3)]
    np.testing.assert_allclose(res.cost.numpy(), ref, rtol=1e-12)
    cost, assign = res  # unpacks as (cost, assignment)
    assert cost is res.cost
    assert assign.shape == (3, 40) and assign.dtype == torch.long
    np.testing.assert_allclose(float(emd(x, y, squared=squared).cost), np.mean(ref), rtol=1e-12)
    np.testing.assert_allclose(float(emd(x, y, squared=squared, reduction="sum").cost), np.sum(ref), rtol=1e-12)


@pytest.mark.parametrize("squared", [False, True])
def test_auction_is_a_permutation_within_tolerance(squared: bool, jit_impl: str) -> None:
    x, y = _clouds(2, 64, 2)
    ex = emd(x, y, "exact", squared=squared, reduction="none").cost
    for rel_tol in (1e-2, 1e-4):
        res = emd(x, y, "auction", squared=squared, reduction="none", rel_tol=rel_tol)
        assert res.info.get("compiled", False) == (jit_impl == "compiled")
        for b in range(2):
            assert sorted(res.assignment[b].tolist()) == list(range(64))
        assert bool((res.cost >= ex - 1e-12).all())
        assert bool((res.cost <= ex * (1 + rel_tol) + 1e-12).all())
        assert bool((res.info["lower"] <= ex + 1e-12).all())


def test_auction_single_point_and_duplicates(jit_impl: str) -> None:
    x = torch.zeros(1, 3)
    assert float(emd(x, x + 1.0, "auction").cost) == pytest.approx(3**0.5)
    x = torch.zeros(5, 3, dtype=torch.float64)  # all points coincide: ties everywhere
    res = emd(x, x.clone(), "auction")
    assert sorted(res.assignment.tolist()) == list(range(5)) and float(res.cost) == 0.0


@pytest.mark.parametrize("squared", [False, True])
def test_sinkhorn_bounds_and_accuracy(squared: bool) -> None:
    x, y = _clouds(2, 80, 3)
    ex = emd(x, y, "exact", squared=squared, reduction="none").cost
    res = emd(x, y, "sinkhorn", squared=squared, reduction="none")
    plan = res.assignment
    assert plan.shape == (2, 80, 80)
    # rounded plan: exactly feasible, so its cost is an upper bound; the dual gives a lower bound
    np.testing.assert_allclose(plan.sum(2).numpy(), 1 / 80, atol=1e-12)
    np.testing.assert_allclose(plan.sum(1).numpy(), 1 / 80, atol=1e-12)
    assert bool((res.cost >= ex - 1e-9).all())
    assert bool((res.info["lower"] <= ex + 1e-9).all())
    assert bool((res.cost <= ex * 1.02).all())
    assert bool((res.info["marginal_error"] < 1e-2).all())


def test_sinkhorn_unequal_sizes_against_linear_program() -> None:
    from scipy.optimize import linprog

    g = torch.Generator().manual_seed(4)
    x = torch.rand(12, 3, generator=g, dtype=torch.float64)
    y = torch.rand(8, 3, generator=g, dtype=torch.float64)
    c = cdist(x.numpy(), y.numpy())
    n, m = c.shape
    a_eq = np.zeros((n + m, n * m))
    for i in range(n):
        a_eq[i, i * m:(i + 1) * m] = 1
    for j in range(m):
        a_eq[n + j, j::m] = 1
    b_eq = np.concatenate([np.full(n, 1 / n), np.full(m, 1 / m)])
    lp = linprog(c.ravel(), A_eq=a_eq, b_eq=b_eq, bounds=(0, None))
    res = emd(x, y, "sinkhorn", eps=1e-3, tol=1e-6)
    assert float(res.info["lower"]) <= lp.fun + 1e-9 <= float(res.cost) + 2e-9
    assert float(res.cost) == pytest.approx(lp.fun, rel=1e-2)


@pytest.mark.parametrize("method", ["exact", "auction", "sinkhorn"])
def test_emd_gradient_is_the_fixed_matching_gradient(method: str) -> None:
    x, y = _clouds(1, 10, 5)
    x.requires_grad_(True)
    y.requires_grad_(True)
    res = emd(x, y, method, rel_tol=1e-6, eps=1e-4, tol=1e-8)
    res.cost.backward()
    assert x.grad is not None and y.grad is not None
    assert bool(torch.isfinite(x.grad).all())
    # envelope theorem: equals the gradient of the cost of the exact matching, held fixed
    assign = emd(x.detach(), y.detach(), "exact").assignment
    xx = x.detach().clone().requires_grad_(True)
    ((xx - y.detach()[:, assign[0]]).norm(dim=-1).mean()).backward()
    assert xx.grad is not None
    torch.testing.assert_close(x.grad, xx.grad, atol=1e-3, rtol=1e-3)


def test_emd_gradcheck_exact() -> None:
    x, y = _clouds(1, 5, 6)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: emd(a, y, "exact", squared=True).cost, (x,))


def test_emd_errors() -> None:
    x = torch.rand(5, 3)
    with pytest.raises(ValueError, match="equal size"):
        emd(x, torch.rand(6, 3), "exact")
    with pytest.raises(ValueError, match="equal size"):
        emd(x, torch.rand(6, 3), "auction")
    with pytest.raises(ValueError, match="method"):
        emd(x, x, "hungarian")
    with pytest.raises(ValueError, match="3D points"):
        emd(torch.rand(5, 2), torch.rand(5, 2))
    with pytest.raises(ValueError, match="empty"):
        emd(torch.rand(0, 3), torch.rand(0, 3))
    with pytest.raises(ValueError, match="NaN"):
        emd(torch.full((5, 3), float("nan")), x)
    with pytest.raises(ValueError, match="batch sizes"):
        emd(torch.rand(2, 5, 3), torch.rand(3, 5, 3))


def test_torch_auction_path_matches_exact() -> None:
    # the GPU path (vectorised torch Jacobi auction) run on the CPU
    from course_lib.ops.emd import _auction, _fast_cost, _nn_lower_bound

    x, y = _clouds(3, 50, 7)
    cost = _fast_cost(x, y, False, torch.float64)
    lb = _nn_lower_bound(cost)
    assign, info = _auction(cost, 1e-3 * lb, 5.0, 100_000, lb)
    ex = emd(x, y, "exact", reduction="none").cost
    for b in range(3):
        assert sorted(assign[b].tolist()) == list(range(50))
        got = float(cost[b, torch.arange(50), assign[b]].mean())
        assert ex[b] - 1e-12 <= got <= float(ex[b]) * (1 + 1e-3) + 1e-12


def test_compiled_auction_reports_the_bid_cap() -> None:
    if not _jit.AVAILABLE:
        pytest.skip("numba is not installed")
    x, y = _clouds(1, 30, 8)
    with pytest.raises(RuntimeError, match="did not converge"):
        emd(x, y, "auction", rel_tol=1e-6, max_rounds=1)
    obj, bids, _, ok = _jit.auction_gauss_seidel(-np.eye(3), 1e-3, 1e-3, 8.0, 100)
    assert ok and sorted(obj.tolist()) == [0, 1, 2] and bids >= 3
