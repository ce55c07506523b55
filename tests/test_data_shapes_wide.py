"""ShapeNet-lite's opt-in "wide" variety (issue #32, item 6) and the base family it must leave untouched.

References are independent of course_lib's meshing where they can be: trimesh's inside test, a KD-tree over
a dense surface sampling, analytic formulas for the capped cone.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from course_lib.data import CATEGORIES, make_shape, shapes
from course_lib.data import primitives as P

# Fingerprints of base shapes, recorded BEFORE the wide variety was added (commit 5c5bf76): over 512 fixed
# points, the sum and the sum of |sdf|, the first four values, and the number of part nodes.
BASE_FINGERPRINTS = {
    ('chair', 0): [217.8057, 219.2135, 0.258271, 0.01584, 0.095194, 0.755381, 6],
    ('chair', 1): [215.9714, 216.6925, 0.232997, -0.043604, 0.062829, 0.73249, 6],
    ('chair', 7): [239.7876, 240.2943, 0.373656, 0.018819, 0.040845, 0.884596, 6],
    ('table', 0): [190.3353, 193.2663, 0.444347, 0.164654, 0.122395, 0.94238, 3],
    ('table', 1): [196.2413, 197.5042, 0.228145, 0.009113, 0.429398, 0.630259, 6],
    ('table', 7): [192.9871, 195.3954, 0.419941, 0.212731, 0.070637, 0.91616, 3],
    ('airplane', 0): [261.2061, 262.4715, 0.311042, -0.093848, 0.355945, 0.634194, 8],
    ('airplane', 1): [258.1823, 258.9829, 0.35326, 0.028525, 0.379426, 0.615286, 10],
    ('airplane', 7): [268.7197, 269.8619, 0.337712, 0.205535, 0.347977, 0.834468, 9],
    ('car', 0): [233.2998, 237.3391, 0.256177, 0.063532, 0.502644, 0.645632, 6],
    ('car', 1): [228.661, 232.9725, 0.24862, 0.041729, 0.453735, 0.654511, 6],
    ('car', 7): [213.0354, 219.4756, 0.218243, 0.003732, 0.447553, 0.608067, 6],
    ('lamp', 0): [256.7801, 257.6851, 0.567665, 0.449457, 0.042095, 0.99915, 4],
    ('lamp', 1): [281.0229, 281.3325, 0.345952, 0.517341, 0.277989, 1.205926, 5],
    ('lamp', 7): [224.8832, 226.4067, 0.533504, 0.404894, 0.036328, 0.987, 4],
    ('mug', 0): [182.7623, 186.33, 0.198751, 0.143924, 0.058116, 0.981986, 2],
    ('mug', 1): [188.1903, 190.8908, 0.223061, 0.172165, 0.050392, 1.009981, 2],
    ('mug', 7): [181.005, 183.9384, 0.177969, 0.121005, 0.082018, 0.959199, 2],
    ('sofa', 0): [219.9592, 225.9885, 0.128785, -0.128419, 0.430102, 0.951947, 9],
    ('sofa', 1): [235.6081, 240.6255, 0.318398, 0.023534, 0.330078, 0.690732, 6],
    ('sofa', 7): [211.2793, 217.573, 0.284242, -0.004495, 0.284594, 0.66805, 8],
    ('bench', 0): [255.9624, 257.0875, 0.41966, 0.28848, 0.536258, 0.803184, 8],
    ('bench', 1): [242.0777, 243.6341, 0.352766, 0.151991, 0.449221, 0.759591, 3],
    ('bench', 7): [253.2685, 254.078, 0.460398, 0.282121, 0.457194, 0.838234, 11],
    ('bottle', 0): [247.7862, 253.7947, 0.478857, 0.125721, 0.028559, 0.952962, 4],
    ('bottle', 1): [170.3385, 180.4035, 0.350972, 0.011873, -0.085289, 0.658471, 4],
    ('bottle', 7): [239.2655, 246.8019, 0.447497, 0.094362, -0.0028, 0.94553, 4],
    ('bookshelf', 0): [199.2377, 201.0425, 0.374274, 0.086371, 0.098503, 0.814892, 7],
    ('bookshelf', 1): [219.6736, 220.6007, 0.420117, 0.119088, 0.132857, 0.882155, 6],
    ('bookshelf', 7): [221.2277, 221.9576, 0.419907, 0.117396, 0.12965, 0.88365, 5],
}


def _fixed_points() -> torch.Tensor:
    g = np.random.default_rng(12345)
    return torch.as_tensor(g.uniform(-1.1, 1.1, size=(512, 3)).astype(np.float32))


def test_base_shapes_unchanged(monkeypatch):
    monkeypatch.setenv("COURSE_VARIETY", "base")
    pts = _fixed_points()
    for (category, seed), expect in BASE_FINGERPRINTS.items():
        for shape in (make_shape(category, seed), make_shape(category, seed, variety="base")):
            v = shape.sdf(pts).double().numpy()
            np.testing.assert_allclose([v.sum(), np.abs(v).sum()], expect[:2], atol=2e-3, err_msg=str((category, seed)))
            np.testing.assert_allclose(v[:4], expect[2:6], atol=2e-6, err_msg=str((category, seed)))
            assert shape.n_primitives == expect[6]
            assert shape.variety == "base" and "variety" not in repr(shape)


@pytest.mark.parametrize("variety", ["nope", "", "Wide", 1])
def test_unknown_variety_names_valid_ones(variety):  # (None is the active family: tests/test_variety_switch.py)
    with pytest.raises(ValueError) as err:
        make_shape("chair", 0, variety=variety)
    msg = str(err.value)
    assert repr(variety) in msg and "base" in msg and "wide" in msg


def test_varieties():
    assert shapes.VARIETIES == ("base", "wide")
    a, b = make_shape("chair", 3, variety="base"), make_shape("chair", 3, variety="wide")
    assert a is not b and b.variety == "wide" and "wide" in repr(b)
    assert make_shape("chair", 3, variety="wide") is b  # cached per variety
    p = torch.rand(500, 3) * 2 - 1
    assert not torch.equal(a.sdf(p), b.sdf(p))
    shapes._make_shape_cached.cache_clear()
    c = make_shape("chair", 3, variety="wide")  # deterministic from scratch
    assert c is not b and torch.equal(b.sdf(p), c.sdf(p))


@pytest.mark.parametrize("category", CATEGORIES)
def test_wide_builds_in_unit_ball(category):
    u = torch.randn(3000, 3, dtype=torch.float64)
    u = 1.001 * u / u.norm(dim=-1, keepdim=True)
    structures = set()
    for seed in range(50):
        s = make_shape(category, seed, variety="wide")
        assert s.label == CATEGORIES.index(category)
        assert max(node.max_radius() for _, node in s._nodes) <= 1.0 + 1e-9, (category, seed)
        np.testing.assert_allclose(s.bounds().mean(0), 0.0, atol=1e-9)
        assert (s.sdf(u) > 0).all(), (category, seed)
        assert (s.sdf(torch.zeros(1, 3, dtype=torch.float64)).abs() < 1.0).all()
        structures.add((s.parts, s.n_primitives))
    assert len(structures) >= 5, structures  # part types and counts vary within the category


@pytest.mark.parametrize("category", CATEGORIES)
def test_wide_sdf_sign_agrees_with_mesh_and_is_a_bound(category):
    for seed in (0, 1):
        shape = make_shape(category, seed, variety="wide")
        mesh = shape.mesh(64)
        assert mesh.is_watertight
        assert 0.8 < np.linalg.norm(mesh.vertices, axis=1).max() <= 1.0 + 1e-6
        rng = np.random.default_rng(100 + 10 * shape.label + seed)
        p = rng.uniform(-1, 1, (1500, 3))
        inside = mesh.contains(p)
        d = shape.sdf(torch.tensor(p)).numpy()
        assert inside.sum() > 10
        assert ((d < 0) == inside).mean() >= 0.99, (category, seed)
        # |sdf| never exceeds the distance to the surface (exact or a bound): against a dense surface sampling
        surf, _ = shape.sample_surface(20000)
        dist = cKDTree(surf.double().numpy()).query(p)[0]
        assert np.all(np.abs(d) <= dist + 2e-3), (category, seed, float((np.abs(d) - dist).max()))


@pytest.mark.parametrize("category", CATEGORIES)
def test_wide_meshes_are_watertight_but_may_have_several_pieces(category):
    # the base family's meshes are one piece (tests/test_data_shapes.py); the wide family's parts need not touch
    import trimesh

    for seed in range(2, 8):
        mesh = make_shape(category, seed, variety="wide").mesh(40)
        assert mesh.is_watertight and mesh.volume > 0, (category, seed)
        pieces = trimesh.graph.connected_components(mesh.face_adjacency, nodes=np.arange(len(mesh.faces)))
        assert 1 <= len(pieces) <= 12, (category, seed, len(pieces))


@pytest.mark.parametrize("category", CATEGORIES)
def test_wide_surface_normals_are_unit_and_outward(category):
    # float32 surface samples land exactly on flat faces (a capped cone's cap), where autograd's gradient of
    # sqrt(0) is 0: every normal must still be a unit vector that agrees with trimesh's face normal there
    import trimesh

    for seed in (1, 3):
        shape = make_shape(category, seed, variety="wide")
        pts, nrm = shape.sample_surface(2048)
        np.testing.assert_allclose(nrm.norm(dim=-1).numpy(), 1.0, atol=1e-5, err_msg=str((category, seed)))
        mesh = shape.mesh(80)
        _, _, tri = trimesh.proximity.closest_point(mesh, pts[:400].double().numpy())
        dots = (mesh.face_normals[tri] * nrm[:400].double().numpy()).sum(1)
        assert np.median(dots) > 0.99 and np.mean(dots > 0.8) > 0.9, (category, seed)


@pytest.mark.parametrize("r1,r2", [(0.4, 0.15), (0.1, 0.35), (0.3, 0.0), (0.25, 0.25)])
def test_capped_cone_against_dense_sampling(r1, r2):
    h = 0.3
    R = P.rotation((1.0, 2.0, 0.5), 0.7)
    t = np.array([0.1, -0.2, 0.15])
    cone = P.CappedCone(r1, r2, h, t, R)
    u = np.linspace(0, 2 * np.pi, 700, endpoint=False)
    rings = []
    for f in np.linspace(0, 1, 300):  # the slanted side
        r = r1 + (r2 - r1) * f
        rings.append(np.stack([r * np.cos(u), np.full_like(u, -h + 2 * h * f), r * np.sin(u)], -1))
    for y, rr in ((-h, r1), (h, r2)):  # the caps
        for a in np.linspace(0, rr, 120):
            rings.append(np.stack([a * np.cos(u), np.full_like(u, y), a * np.sin(u)], -1))
    surf = np.concatenate(rings) @ R.T + t
    p = np.random.default_rng(0).uniform(-0.8, 0.8, (1500, 3))
    q = (p - t) @ R
    rad = np.hypot(q[:, 0], q[:, 2])
    inside = (np.abs(q[:, 1]) < h) & (rad < r1 + (r2 - r1) * (q[:, 1] + h) / (2 * h))
    expect = np.where(inside, -1, 1) * cKDTree(surf).query(p)[0]
    got = cone.sdf(torch.tensor(p)).numpy()
    assert inside.sum() > 10
    np.testing.assert_allclose(got, expect, atol=2e-3)
    # support function and radius bound against the sampled surface
    for d in np.random.default_rng(1).normal(size=(20, 3)):
        assert cone.support(d) == pytest.approx((surf @ d).max(), abs=2e-3)
    assert cone.max_radius() == pytest.approx(np.linalg.norm(surf, axis=1).max(), abs=2e-3)
    moved = cone.transformed(2.0, np.array([0.1, 0.0, 0.0]))
    pm = 2.0 * (torch.tensor(p) - torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64))
    np.testing.assert_allclose(moved.sdf(pm).numpy(), 2.0 * got, atol=1e-9)


def test_capped_cone_rejects_bad_sizes():
    with pytest.raises(ValueError, match="CappedCone"):
        P.CappedCone(0.0, 0.0, 0.3)
    with pytest.raises(ValueError, match="CappedCone"):
        P.CappedCone(0.2, 0.1, 0.0)


def test_tight_ellipsoid_radius_is_a_tight_upper_bound():
    from course_lib.data.primitives import _FIB_COVER, _FIB_N, fibonacci_sphere

    u = np.random.default_rng(0).normal(size=(100000, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    assert cKDTree(fibonacci_sphere(_FIB_N)).query(u)[0].max() < _FIB_COVER  # the covering radius holds
    rng = np.random.default_rng(3)
    for _ in range(20):
        radii, t = rng.uniform(0.1, 0.8, 3), rng.uniform(-0.5, 0.5, 3)
        R = P.rotation(rng.normal(size=3), rng.uniform(0, 3))
        e = P.TightEllipsoid(radii, t, R)
        true = np.linalg.norm((u * radii) @ R.T + t, axis=1).max()
        assert true - 1e-9 <= e.max_radius() <= true + 0.035 * radii.max()
        assert e.max_radius() <= P.Ellipsoid(radii, t, R).max_radius() + 1e-12
        p = torch.tensor(rng.uniform(-1, 1, (200, 3)))
        assert torch.equal(e.sdf(p), P.Ellipsoid(radii, t, R).sdf(p))  # the same SDF bound


def test_splits_benchmark_loads_wide_shapes():
    # benchmarks/splits.py --variety wide: the same split seeds, sampled from the wide shapes, never a base cache
    import importlib.util
    import sys
    from pathlib import Path

    from course_lib.data.splits import split_seeds

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    sys.path.insert(0, str(bench))
    try:
        spec = importlib.util.spec_from_file_location("_splits_bench", bench / "splits.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(bench))
    out = mod.load_points("train", ("target_points", "oracle_points"), ["mug", "lamp"], 2, "ci", 64, "wide")
    assert out["target_points"].shape == (4, 64, 3) and out["oracle_points"].shape == (4, 64, 3)
    assert out["seed"].tolist() == split_seeds("train", 2) * 2
    assert out["label"].tolist() == [CATEGORIES.index("mug")] * 2 + [CATEGORIES.index("lamp")] * 2
    wide = make_shape("mug", int(out["seed"][0]), variety="wide")
    base = make_shape("mug", int(out["seed"][0]), variety="base")
    assert wide.sdf(out["target_points"][0]).abs().max() < 1e-3
    assert base.sdf(out["target_points"][0]).abs().max() > 1e-2
    assert not torch.equal(out["target_points"][0], out["oracle_points"][0])
