"""chamfer_distance against scipy's cKDTree, brute force and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

import course_lib.ops.neighbors as neighbors
from course_lib.ops import chamfer_distance


def _ref(x: np.ndarray, y: np.ndarray, squared: bool = True, how: str = "mean") -> float:
    dxy, _ = cKDTree(y).query(x)
    dyx, _ = cKDTree(x).query(y)
    if squared:
        dxy, dyx = dxy**2, dyx**2
    f = np.mean if how == "mean" else np.sum
    return float(f(dxy) + f(dyx))


@pytest.mark.parametrize("backend", ["auto", "brute", "kdtree"])
@pytest.mark.parametrize("squared", [True, False])
def test_chamfer_matches_ckdtree(backend: str, squared: bool) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 500, 3, generator=g, dtype=torch.float64)
    y = torch.rand(3, 300, 3, generator=g, dtype=torch.float64) * 1.5
    per = chamfer_distance(x, y, squared=squared, reduction="none", backend=backend)
    ref = [_ref(x[b].numpy(), y[b].numpy(), squared) for b in range(3)]
    np.testing.assert_allclose(per.numpy(), ref, rtol=1e-10)
    mean = chamfer_distance(x, y, squared=squared, backend=backend)
    np.testing.assert_allclose(float(mean), np.mean(ref), rtol=1e-10)
    total = chamfer_distance(x, y, squared=squared, reduction="sum", backend=backend)
    np.testing.assert_allclose(float(total), np.sum(ref), rtol=1e-10)


def test_chamfer_float32_point_sum_unbatched_and_indices() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(400, 3, generator=g)
    y = torch.rand(350, 3, generator=g)
    cd = chamfer_distance(x, y, point_reduction="sum")
    assert cd.dim() == 0
    np.testing.assert_allclose(float(cd), _ref(x.double().numpy(), y.double().numpy(), how="sum"), rtol=1e-5)
    _, (ixy, iyx) = chamfer_distance(x, y, return_indices=True)
    assert ixy.shape == (400,) and iyx.shape == (350,)
    np.testing.assert_array_equal(ixy.numpy(), cKDTree(y.double().numpy()).query(x.double().numpy())[1])
    np.testing.assert_array_equal(iyx.numpy(), cKDTree(x.double().numpy()).query(y.double().numpy())[1])


def test_chamfer_naive_formula_and_zero() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 64, 3, generator=g, dtype=torch.float64)
    y = torch.randn(2, 80, 3, generator=g, dtype=torch.float64)
    d = torch.cdist(x, y) ** 2
    naive = (d.min(2).values.mean(1) + d.min(1).values.mean(1)).mean()
    assert torch.allclose(chamfer_distance(x, y), naive, rtol=1e-10)
    assert float(chamfer_distance(x, x)) == 0.0
    assert float(chamfer_distance(x, x, squared=False)) == 0.0


@pytest.mark.parametrize("backend", ["brute", "kdtree"])
def test_chamfer_ragged(backend: str) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 50, 3, generator=g, dtype=torch.float64)
    y = torch.rand(2, 40, 3, generator=g, dtype=torch.float64)
    xl, yl = [50, 20], [33, 40]
    per, (ixy, iyx) = chamfer_distance(
        x, y, x_lengths=xl, y_lengths=yl, reduction="none", return_indices=True, backend=backend
    )
    for b in range(2):
        ref = _ref(x[b, : xl[b]].numpy(), y[b, : yl[b]].numpy())
        np.testing.assert_allclose(float(per[b]), ref, rtol=1e-10)
    assert bool((ixy[1, 20:] == 0).all()) and bool((ixy[0] < 33).all())
    # padding values do not matter
    x2 = x.clone()
    x2[1, 20:] = 100.0
    assert torch.allclose(chamfer_distance(x2, y, x_lengths=xl, y_lengths=yl, reduction="none"), per)


@pytest.mark.parametrize("backend", ["brute", "kdtree"])
@pytest.mark.parametrize("squared", [True, False])
def test_chamfer_gradcheck(backend: str, squared: bool) -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.rand(2, 7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, 9, 3, generator=g, dtype=torch.float64, requires_grad=True)
    fn = lambda a, b: chamfer_distance(a, b, squared=squared, reduction="none", backend=backend)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, y))


def test_chamfer_gradient_at_coincident_points_is_finite() -> None:
    x = torch.rand(10, 3, dtype=torch.float64, requires_grad=True)
    chamfer_distance(x, x.detach().clone(), squared=False).backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


def test_brute_path_never_builds_the_full_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    block = 5000
    monkeypatch.setattr(neighbors, "block_elements", lambda device=None: block)
    seen: list[int] = []
    real = torch.baddbmm

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = real(*args, **kwargs)
        seen.append(out.numel())
        return out

    monkeypatch.setattr(neighbors.torch, "baddbmm", spy)
    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 900, 3, generator=g, dtype=torch.float64)
    y = torch.rand(2, 700, 3, generator=g, dtype=torch.float64)
    cd = chamfer_distance(x, y, backend="brute", reduction="none")
    assert max(seen) <= block < 2 * 900 * 700
    ref = [_ref(x[b].numpy(), y[b].numpy()) for b in range(2)]
    np.testing.assert_allclose(cd.numpy(), ref, rtol=1e-10)


def test_chamfer_errors() -> None:
    x = torch.rand(5, 3)
    with pytest.raises(ValueError, match="3D points"):
        chamfer_distance(torch.rand(5, 2), torch.rand(5, 2))
    with pytest.raises(ValueError, match="rank"):
        chamfer_distance(torch.rand(3), x)
    with pytest.raises(ValueError, match="empty"):
        chamfer_distance(torch.rand(0, 3), x)
    with pytest.raises(ValueError, match="NaN or inf"):
        chamfer_distance(x, torch.tensor([[0.0, float("inf"), 0.0]]))
    with pytest.raises(ValueError, match="batch sizes differ"):
        chamfer_distance(torch.rand(2, 5, 3), torch.rand(4, 5, 3))
    with pytest.raises(ValueError, match="reduction"):
        chamfer_distance(x, x, reduction="max")
    with pytest.raises(ValueError, match="point_reduction"):
        chamfer_distance(x, x, point_reduction="max")
    with pytest.raises(ValueError, match="x_lengths"):
        chamfer_distance(torch.rand(2, 5, 3), torch.rand(2, 5, 3), x_lengths=[0, 5])
