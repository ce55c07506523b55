"""Generation metrics (MMD, COV, 1-NNA) against brute-force loops written from PointFlow's definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from course_lib import metrics_generation as mg

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cd_np(a, b):
    d = cdist(np.asarray(a, np.float64), np.asarray(b, np.float64), "sqeuclidean")
    return d.min(1).mean() + d.min(0).mean()


def _sets(seed, r=5, s=6, n=20):
    g = torch.Generator().manual_seed(seed)
    refs = torch.rand(r, n, 3, generator=g)
    samples = torch.rand(s, n, 3, generator=g) * 1.1
    return refs, samples


def _brute(refs, samples):
    r, s = len(refs), len(samples)
    m_rs = np.array([[_cd_np(refs[i], samples[j]) for j in range(s)] for i in range(r)])
    m_rr = np.array([[_cd_np(refs[i], refs[j]) for j in range(r)] for i in range(r)])
    m_ss = np.array([[_cd_np(samples[i], samples[j]) for j in range(s)] for i in range(s)])
    mmd = np.mean([min(m_rs[i, j] for j in range(s)) for i in range(r)])
    mmd_smp = np.mean([min(m_rs[i, j] for i in range(r)) for j in range(s)])
    covered = set()
    for j in range(s):
        covered.add(min(range(r), key=lambda i: m_rs[i, j]))
    cov = len(covered) / r
    # 1-NNA by a loop over every cloud, leave-one-out
    clouds = [("ref", i) for i in range(r)] + [("smp", j) for j in range(s)]

    def dist(a, b):
        (ka, ia), (kb, ib) = a, b
        if ka == "ref" and kb == "ref":
            return m_rr[ia, ib]
        if ka == "smp" and kb == "smp":
            return m_ss[ia, ib]
        return m_rs[ia, ib] if ka == "ref" else m_rs[ib, ia]

    correct = []
    for a in clouds:
        nearest = min((b for b in clouds if b != a), key=lambda b: dist(a, b))
        correct.append(nearest[0] == a[0])
    return m_rs, m_rr, m_ss, {"mmd": mmd, "mmd_smp": mmd_smp, "cov": cov, "1-nna": np.mean(correct),
                              "1-nna_t": np.mean(correct[:r]), "1-nna_f": np.mean(correct[r:])}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generation_metrics_match_brute_force(seed):
    refs, samples = _sets(seed)
    m_rs, m_rr, m_ss, ref = _brute(refs.numpy(), samples.numpy())
    np.testing.assert_allclose(mg.pairwise_distances(refs, samples, batch_size=7).numpy(), m_rs, rtol=1e-5)
    np.testing.assert_allclose(mg.pairwise_distances(refs, refs).numpy(), m_rr, rtol=1e-5, atol=1e-9)
    out = mg.generation_metrics(samples, refs, batch_size=5)
    for k, v in ref.items():
        assert out[k] == pytest.approx(v, rel=1e-5), k


def test_identical_sets_give_zero_mmd_full_coverage_and_zero_nna():
    refs, _ = _sets(3)
    out = mg.generation_metrics(refs.clone(), refs)
    assert out["mmd"] == pytest.approx(0.0, abs=1e-12)
    assert out["cov"] == 1.0
    # every cloud's nearest other cloud is its copy in the other set: all misclassified (PointFlow's knn)
    assert out["1-nna"] == 0.0


def test_separable_sets_give_full_nna_and_direction_of_mmd():
    refs, _ = _sets(4)
    far = refs + 10.0
    nna = mg.generation_metrics(far, refs)["1-nna"]
    assert nna == 1.0
    # one sample that copies one reference: COV = 1/R, MMD is over references
    samples = refs[:1].expand(4, -1, -1).clone()
    out = mg.generation_metrics(samples, refs)
    assert out["cov"] == pytest.approx(1 / len(refs))
    assert out["mmd_smp"] == pytest.approx(0.0, abs=1e-12)
    assert out["mmd"] > 0


def test_mmd_cov_orientation_on_a_matrix():
    m_rs = torch.tensor([[0.0, 5.0, 5.0], [4.0, 3.0, 9.0]])  # 2 refs x 3 samples
    out = mg.mmd_cov(m_rs)
    assert out["mmd"] == pytest.approx((0.0 + 3.0) / 2)
    assert out["mmd_smp"] == pytest.approx((0.0 + 3.0 + 5.0) / 3)
    assert out["cov"] == 1.0


def test_emd_pairwise_and_errors():
    refs, samples = _sets(5, r=2, s=2, n=8)
    from scipy.optimize import linear_sum_assignment

    d = mg.pairwise_distances(refs, samples, "emd")
    for i in range(2):
        for j in range(2):
            c = cdist(refs[i].double().numpy(), samples[j].double().numpy())
            ri, ci = linear_sum_assignment(c)
            assert float(d[i, j]) == pytest.approx(c[ri, ci].mean(), rel=1e-5)
    with pytest.raises(ValueError, match="equal size"):
        mg.pairwise_distances(refs, samples[:, :5], "emd")
    with pytest.raises(ValueError, match=r"\(S, N, 3\)"):
        mg.generation_metrics(torch.zeros(4, 3), refs)
    with pytest.raises(ValueError, match="metric"):
        mg.pairwise_distances(refs, samples, "jsd")
    with pytest.raises(ValueError, match="shapes do not fit"):
        mg.one_nna(torch.zeros(2, 2), torch.zeros(3, 3), torch.zeros(2, 2))


# --- JSD on a voxel grid (PointFlow) -------------------------------------------------------------
def _scipy_jsd(samples, refs, resolution, bound):
    import numpy as np
    from scipy.spatial import cKDTree
    from scipy.spatial.distance import jensenshannon

    ticks = np.linspace(-bound, bound, resolution)
    grid = np.stack(np.meshgrid(ticks, ticks, ticks, indexing="ij"), -1).reshape(-1, 3)
    tree = cKDTree(grid)

    def hist(x):
        _, nn = tree.query(x.reshape(-1, 3).numpy().astype(np.float64))
        return np.bincount(nn, minlength=len(grid)).astype(np.float64)

    return jensenshannon(hist(samples), hist(refs)) ** 2  # scipy returns the square root (natural log)


def test_jsd_matches_a_kdtree_and_scipy_reference():
    from course_lib.metrics_generation import jsd_voxels, occupancy_histogram

    g = torch.Generator().manual_seed(0)
    a = torch.rand(4, 300, 3, generator=g) * 1.6 - 0.8
    b = torch.randn(5, 300, 3, generator=g) * 0.4
    got = jsd_voxels(a, b, resolution=12, bound=1.0)
    assert got == pytest.approx(_scipy_jsd(a, b, 12, 1.0), rel=1e-9, abs=1e-12)
    assert occupancy_histogram(a, 12).sum() == a.shape[0] * a.shape[1]


def test_jsd_limits():
    from course_lib.metrics_generation import jsd_voxels

    g = torch.Generator().manual_seed(1)
    a = torch.rand(3, 200, 3, generator=g) - 0.5
    assert jsd_voxels(a, a.clone()) == pytest.approx(0.0, abs=1e-12)
    far = a * 0.1 + 0.9  # disjoint occupied nodes
    near = a * 0.1 - 0.9
    assert jsd_voxels(far, near) == pytest.approx(math.log(2), rel=1e-9)
    with pytest.raises(ValueError, match="resolution"):
        jsd_voxels(a, a, resolution=1)
    with pytest.raises(ValueError, match="shape"):
        jsd_voxels(a[0], a)


def test_ragged_sets_match_per_pair_brute_force():
    g = torch.Generator().manual_seed(3)
    a = [torch.rand(n, 3, generator=g, dtype=torch.float64) for n in (20, 35, 12)]
    b = [torch.rand(n, 3, generator=g, dtype=torch.float64) for n in (17, 40)]
    m = mg.pairwise_distances(a, b, "cd")
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            d = cdist(x.numpy(), y.numpy(), "sqeuclidean")
            assert float(m[i, j]) == pytest.approx(d.min(1).mean() + d.min(0).mean(), rel=1e-9)
    same = [torch.rand(16, 3, generator=g) for _ in range(3)]
    assert torch.equal(mg.pairwise_distances(same, same), mg.pairwise_distances(torch.stack(same), torch.stack(same)))
    out = mg.generation_metrics(a, b)
    assert 0.0 <= out["1-nna"] <= 1.0 and out["cov"] in (1 / 2, 1.0)
    with pytest.raises(ValueError, match="equal size"):
        mg.pairwise_distances(a, b, "emd")
    with pytest.raises(ValueError, match=r"a\[1\] must be a non-empty \(N, 3\)"):
        mg.pairwise_distances([a[0], torch.zeros(0, 3, dtype=torch.float64)], b)
    with pytest.raises(ValueError, match="empty list"):
        mg.generation_metrics([], b)
    hist = mg.occupancy_histogram(a, 4)
    assert float(hist.sum()) == sum(x.shape[0] for x in a)
