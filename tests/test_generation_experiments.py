"""Chapter 10's generation experiments: EMD-based MMD / COV / 1-NNA against scipy's assignment and loops,
hand-built sets whose scores are known, the latent distributions, the nearest category and the code drift."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

from course_lib import metrics_generation as mg
from course_lib.experiments import gradient_fields as ex

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _emd_np(a, b):
    c = cdist(np.asarray(a, np.float64), np.asarray(b, np.float64))
    r, k = linear_sum_assignment(c)
    return c[r, k].mean()


def _brute_emd_metrics(refs, samples):
    """MMD, COV and 1-NNA by loops over scipy's exact EMD (PointFlow's definitions, written out)."""
    r, s = len(refs), len(samples)
    m_rs = np.array([[_emd_np(refs[i], samples[j]) for j in range(s)] for i in range(r)])
    m_rr = np.array([[_emd_np(refs[i], refs[j]) for j in range(r)] for i in range(r)])
    m_ss = np.array([[_emd_np(samples[i], samples[j]) for j in range(s)] for i in range(s)])
    mmd = [min(m_rs[i]) for i in range(r)]
    chosen = {int(np.argmin(m_rs[:, j])) for j in range(s)}
    cov = [100.0 if i in chosen else 0.0 for i in range(r)]
    clouds = [("r", i) for i in range(r)] + [("s", j) for j in range(s)]

    def d(a, b):
        if a[0] == b[0] == "r":
            return m_rr[a[1], b[1]]
        if a[0] == b[0] == "s":
            return m_ss[a[1], b[1]]
        return m_rs[a[1], b[1]] if a[0] == "r" else m_rs[b[1], a[1]]

    correct = [100.0 * (min((b for b in clouds if b != a), key=lambda b: d(a, b))[0] == a[0]) for a in clouds]
    nna = [(correct[i] + correct[r + i]) / 2 for i in range(r)]
    return {"MMD-EMD x1e2": [100 * v for v in mmd], "COV-EMD %": cov, "1-NNA-EMD %": nna}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_emd_generation_metrics_match_scipy_assignment(seed):
    g = torch.Generator().manual_seed(seed)
    refs = torch.rand(5, 9, 3, generator=g, dtype=torch.float64)
    samples = torch.rand(5, 9, 3, generator=g, dtype=torch.float64) * 1.2
    ref = _brute_emd_metrics(refs.numpy(), samples.numpy())
    got = ex.generation_per_reference(samples, refs, "emd")
    for k, v in ref.items():
        np.testing.assert_allclose(got[k], v, rtol=1e-9, atol=1e-9, err_msg=k)
    tab = ex.generation_table({"x": samples}, refs, ("cd", "emd"))["x"]
    for k in ("MMD-EMD x1e2", "COV-EMD %", "1-NNA-EMD %"):
        assert tab[k] == pytest.approx(np.mean(ref[k]), rel=1e-9)
    assert {"MMD-CD x1e3", "COV-CD %", "1-NNA-CD %"} <= set(tab)


def _translated(n_clouds, step, n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, generator=g, dtype=torch.float64)
    return torch.stack([base + torch.tensor([step * i, 0.0, 0.0], dtype=torch.float64) for i in range(n_clouds)])


def test_hand_built_sets_with_known_scores():
    # translated copies of one cloud: the exact EMD between two of them is the translation's length
    # (the identity matching costs |t| per point, and no matching costs less, by the triangle inequality)
    refs = _translated(4, 10.0)
    assert float(mg.pairwise_distances(refs[:1], refs[2:3], "emd")) == pytest.approx(20.0)
    # the samples are the references: MMD 0, every reference covered, every cloud's nearest is its copy
    same = ex.generation_per_reference(refs.clone(), refs, "emd")
    assert same["MMD-EMD x1e2"] == pytest.approx([0.0] * 4, abs=1e-9)
    assert same["COV-EMD %"] == [100.0] * 4
    assert same["1-NNA-EMD %"] == [0.0] * 4
    # every sample a copy of reference 0 shifted by -1 along x: only it is covered; MMD of ref i = 10 i + 1
    samples = refs[:1].repeat(4, 1, 1) + torch.tensor([-1.0, 0.0, 0.0], dtype=torch.float64)
    out = ex.generation_per_reference(samples, refs, "emd")
    assert out["COV-EMD %"] == [100.0, 0.0, 0.0, 0.0]
    assert out["MMD-EMD x1e2"] == pytest.approx([100.0, 1100.0, 2100.0, 3100.0])
    # far apart sets are told apart perfectly: 1-NNA 100%
    far = ex.generation_per_reference(refs + 1000.0, refs, "emd")
    assert far["1-NNA-EMD %"] == [100.0] * 4


def test_emd_needs_equal_sizes_or_n_points():
    refs, smp = torch.rand(3, 10, 3), torch.rand(3, 8, 3)
    with pytest.raises(ValueError, match="n_points"):
        ex.generation_per_reference(smp, refs, "emd")
    out = ex.generation_per_reference(smp, refs, "emd", n_points=8)
    ref = _brute_emd_metrics(refs[:, :8].numpy(), smp.numpy())
    np.testing.assert_allclose(out["MMD-EMD x1e2"], ref["MMD-EMD x1e2"], rtol=1e-5)
    with pytest.raises(ValueError, match="metric"):
        ex.generation_table({"x": smp}, refs, ("jsd",))


def test_reusing_the_references_matrix_changes_nothing():
    g = torch.Generator().manual_seed(3)
    refs, smp = torch.rand(4, 7, 3, generator=g), torch.rand(4, 7, 3, generator=g)
    m_rr = mg.pairwise_distances(refs, refs, "emd")
    assert ex.generation_per_reference(smp, refs, "emd", m_rr=m_rr) == ex.generation_per_reference(smp, refs, "emd")


@pytest.mark.parametrize("metric", ["cd", "emd"])
def test_a_set_against_itself_is_the_full_matrix(metric):
    g = torch.Generator().manual_seed(4)
    a = torch.rand(5, 9, 3, generator=g, dtype=torch.float64)
    half = mg.pairwise_distances(a, a, metric, batch_size=3)  # the same object: pairs i < j only
    full = mg.pairwise_distances(a, a.clone(), metric, batch_size=3)
    torch.testing.assert_close(half, full, atol=1e-12, rtol=1e-12)
    assert torch.equal(half, half.t())


def test_sample_codes_gaussian_has_the_codes_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(6, 3, generator=g, dtype=torch.float64) @ torch.tensor(
        [[1.0, 0.5, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.3]], dtype=torch.float64) + 4.0
    z = ex.sample_codes("gaussian", codes, 200_000, seed=1)
    assert z.shape == (200_000, 3)
    np.testing.assert_allclose(z.mean(0).numpy(), codes.mean(0).numpy(), atol=0.02)
    np.testing.assert_allclose(np.cov(z.numpy().T), np.cov(codes.numpy().T), rtol=0.03, atol=0.01)
    torch.testing.assert_close(ex.sample_codes("gaussian", codes, 7, seed=2), ex.sample_codes("gaussian", codes, 7,
                                                                                               seed=2))


def test_sample_codes_noise_and_copies():
    codes = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    copies = ex.sample_codes("codes+noise", codes, 50, noise=0.0, seed=0)
    assert all(any(torch.equal(c, r) for r in codes) for c in copies)  # noise 0: training codes themselves
    noisy = ex.sample_codes("codes+noise", codes, 4000, noise=0.5, seed=0)
    nearest = torch.cdist(noisy, codes).argmin(1)
    resid = noisy - codes[nearest]
    np.testing.assert_allclose(resid.std(0).numpy(), 0.5 * codes.std(0).numpy(), rtol=0.1)
    with pytest.raises(ValueError, match="source"):
        ex.sample_codes("vae", codes, 3)
    with pytest.raises(ValueError, match="gan="):
        ex.sample_codes("gan", codes, 3)
    with pytest.raises(ValueError, match=r"\(S, L\)"):
        ex.sample_codes("gaussian", codes[:1], 3)


def test_nearest_category():
    train = _translated(4, 10.0).float()
    cats = ["a", "a", "b", "c"]
    clouds = train[[3, 0, 2]] + 0.5
    assert ex.nearest_category(clouds, train, cats) == ["c", "a", "b"]
    with pytest.raises(ValueError, match="categories"):
        ex.nearest_category(clouds, train, cats[:2])


class _MeanEncoder(torch.nn.Module):
    """A code = the mean of the cloud's points (and a dummy parameter, as ``_codes`` needs one)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def encode(self, x):
        return x.mean(1) * self.w


def test_code_drift_by_hand():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 8, 3, generator=g, dtype=torch.float64)
    x = x + torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0]], dtype=torch.float64)[:, None]
    res = ex.code_drift(_MeanEncoder().double(), x, [2, 4, 8])
    z8 = x.mean(1)
    spacing = float(torch.pdist(z8).median())
    assert res["reference"] == 8 and res["spacing"] == pytest.approx(spacing)
    for k in (2, 4):
        want = ((x[:, :k].mean(1) - z8).norm(dim=1) / spacing).tolist()
        assert res["drift"][k] == pytest.approx(want)
    assert res["drift"][8] == pytest.approx([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="sizes"):
        ex.code_drift(_MeanEncoder().double(), x, [16])


def _bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "generation.py"
    spec = importlib.util.spec_from_file_location("bench_generation", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_seed_mean_keeps_one_value_per_reference():
    mod = _bench()
    per_seed = [{"MMD-CD x1e3": [1.0, 2.0, 3.0]}, {"MMD-CD x1e3": [3.0, 4.0, 5.0]}]
    assert mod._seed_mean(per_seed) == {"MMD-CD x1e3": [2.0, 3.0, 4.0]}
    assert mod.SELECTION_PARTS == ("select_latent",) and mod.select_latent.__selection_part__


def test_benchmark_gan_cache_counts_steps_and_both_nets():
    mod = _bench()
    codes = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    cache: dict = {}
    gen, secs, steps, params = mod._gan(codes, 3, 0, {"gan_batch": 4}, cache)
    assert steps == 3 * (10 // 4) and secs >= 0
    from course_lib.models.shapegf import LatentDiscriminator

    n_disc = sum(p.numel() for p in LatentDiscriminator(4).parameters())
    assert params == sum(p.numel() for p in gen.parameters()) + n_disc
    assert mod._gan(codes, 3, 0, {"gan_batch": 4}, cache)[0] is gen  # trained once per run
