"""knn and gather_points against scipy's cKDTree and brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from course_lib.ops import gather_points, knn
from course_lib.ops import neighbors as knn_module

BACKENDS = ["brute", "kdtree"]


def _ref(x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    d, i = cKDTree(y).query(x, k=k)
    return np.asarray(d).reshape(len(x), k) ** 2, np.asarray(i).reshape(len(x), k)


@pytest.fixture(params=["pykdtree", "scipy"])
def tree_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with pykdtree (the default when installed) and with the scipy fallback."""
    if request.param == "scipy":
        monkeypatch.setattr(knn_module, "_PyKDTree", None)
    elif knn_module._PyKDTree is None:
        pytest.skip("pykdtree is not installed")
    return str(request.param)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [1, 5])
def test_knn_matches_ckdtree(backend: str, k: int, tree_impl: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 300, 3, generator=g, dtype=torch.float64)
    y = torch.rand(3, 400, 3, generator=g, dtype=torch.float64)
    d2, idx = knn(x, y, k, backend=backend)
    assert d2.shape == (3, 300, k) and idx.shape == (3, 300, k) and idx.dtype == torch.long
    for b in range(3):
        rd, ri = _ref(x[b].numpy(), y[b].numpy(), k)
        np.testing.assert_allclose(d2[b].numpy(), rd, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(idx[b].numpy(), ri)
    assert bool((d2[..., 1:] >= d2[..., :-1]).all())


def test_knn_float32_high_dim_brute_matches_reference() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 200, 16, generator=g)
    y = torch.randn(2, 250, 16, generator=g)
    d2, idx = knn(x, y, 4)
    for b in range(2):
        rd, _ = _ref(x[b].double().numpy(), y[b].double().numpy(), 4)
        np.testing.assert_allclose(d2[b].numpy(), rd, rtol=1e-4)


def test_knn_blocked_search_small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # force tiny blocks so that both the row and the column loops (and the top-k merge) run
    monkeypatch.setattr(knn_module, "block_elements", lambda device=None: 64)
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 50, 3, generator=g, dtype=torch.float64)
    y = torch.rand(2, 70, 3, generator=g, dtype=torch.float64)
    d2, idx = knn(x, y, 3, backend="brute")
    for b in range(2):
        rd, ri = _ref(x[b].numpy(), y[b].numpy(), 3)
        np.testing.assert_allclose(d2[b].numpy(), rd, rtol=1e-10)
        np.testing.assert_array_equal(idx[b].numpy(), ri)


def test_knn_unbatched_and_feature_dim_one() -> None:
    x = torch.tensor([[0.0], [10.0]])
    y = torch.tensor([[1.0], [9.5], [-3.0]])
    d2, idx = knn(x, y, 2)
    assert d2.shape == (2, 2)
    assert idx.tolist() == [[0, 2], [1, 0]]
    assert torch.allclose(d2, torch.tensor([[1.0, 9.0], [0.25, 81.0]]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_ragged_lengths(backend: str) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 40, 3, generator=g, dtype=torch.float64)
    y = torch.rand(2, 60, 3, generator=g, dtype=torch.float64)
    xl, yl = torch.tensor([40, 25]), torch.tensor([30, 60])
    d2, idx = knn(x, y, 2, x_lengths=xl, y_lengths=yl, backend=backend)
    for b in range(2):
        nx, ny = int(xl[b]), int(yl[b])
        rd, ri = _ref(x[b, :nx].numpy(), y[b, :ny].numpy(), 2)
        np.testing.assert_allclose(d2[b, :nx].numpy(), rd, rtol=1e-10)
        np.testing.assert_array_equal(idx[b, :nx].numpy(), ri)
        assert bool((idx[b] < ny).all())
        assert bool((d2[b, nx:] == 0).all()) and bool((idx[b, nx:] == 0).all())


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_gradcheck(backend: str) -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.rand(2, 6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, 8, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: knn(a, b, 3, backend=backend)[0], (x, y))


def test_knn_errors() -> None:
    x = torch.rand(5, 3)
    with pytest.raises(ValueError, match="rank"):
        knn(torch.rand(5), x, 1)
    with pytest.raises(ValueError, match="empty"):
        knn(torch.rand(0, 3), x, 1)
    with pytest.raises(ValueError, match="NaN or inf"):
        knn(torch.tensor([[float("nan"), 0.0, 0.0]]), x, 1)
    with pytest.raises(ValueError, match="k must satisfy"):
        knn(x, x, 6)
    with pytest.raises(ValueError, match="k must satisfy"):
        knn(x, x, 0)
    with pytest.raises(ValueError, match="batch sizes differ"):
        knn(torch.rand(2, 5, 3), torch.rand(3, 5, 3), 1)
    with pytest.raises(ValueError, match="feature dimensions differ"):
        knn(torch.rand(5, 3), torch.rand(5, 4), 1)
    with pytest.raises(ValueError, match="both be batched"):
        knn(torch.rand(1, 5, 3), x, 1)
    with pytest.raises(TypeError, match="floating"):
        knn(torch.ones(5, 3, dtype=torch.long), x, 1)
    with pytest.raises(TypeError):
        knn(np.zeros((5, 3)), x, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="y_lengths"):
        knn(torch.rand(2, 5, 3), torch.rand(2, 5, 3), 1, y_lengths=[5, 6])
    with pytest.raises(ValueError, match="k must satisfy"):
        knn(torch.rand(2, 5, 3), torch.rand(2, 5, 3), 3, y_lengths=[5, 2])
    with pytest.raises(ValueError, match="backend"):
        knn(x, x, 1, backend="faiss")


def test_gather_points() -> None:
    x = torch.arange(2 * 5 * 2, dtype=torch.float32).reshape(2, 5, 2)
    idx = torch.tensor([[[0, 4], [1, 1], [3, 2]], [[4, 4], [0, 1], [2, 3]]])
    out = gather_points(x, idx)
    assert out.shape == (2, 3, 2, 2)
    for b in range(2):
        for i in range(3):
            for j in range(2):
                assert torch.equal(out[b, i, j], x[b, idx[b, i, j]])
    assert torch.equal(gather_points(x[0], torch.tensor([3, 0])), x[0, [3, 0]])
    with pytest.raises(ValueError, match="idx values"):
        gather_points(x, torch.tensor([[5], [0]]))
    with pytest.raises(ValueError, match="batch dimension"):
        gather_points(x, torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        gather_points(x, torch.zeros(2, 1))


def test_cpu_numpy_distance_function_matches_torch_expression(jit_impl: str) -> None:
    # the GPU path is the plain torch expression; the CPU path a NumPy autograd function
    g = torch.Generator().manual_seed(6)
    x = torch.rand(2, 30, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, 20, 4, generator=g, dtype=torch.float64, requires_grad=True)
    idx = torch.randint(0, 20, (2, 30, 3), generator=g)
    w = torch.rand(2, 30, 3, generator=g, dtype=torch.float64)
    a = knn_module._sq_dist(x, y, idx)
    (ga_x, ga_y) = torch.autograd.grad((a * w).sum(), (x, y))
    b = ((x.unsqueeze(2) - gather_points(y, idx)) ** 2).sum(-1)
    (gb_x, gb_y) = torch.autograd.grad((b * w).sum(), (x, y))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ga_x, gb_x)
    torch.testing.assert_close(ga_y, gb_y)
    assert torch.autograd.gradcheck(lambda p, q: knn_module._sq_dist(p, q, idx), (x, y))
