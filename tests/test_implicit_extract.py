"""Dense and hierarchical extraction of implicit fields, autograd normals."""

import numpy as np
import pytest
import torch
import trimesh
from skimage import measure

import course_lib.geometry.extract as ex
from course_lib.data import make_shape
from course_lib.geometry.mc import grid_points, sdf_grid


def sphere_sdf(p):
    return p.norm(dim=-1) - 0.6


class Counter:
    def __init__(self, fn):
        self.fn, self.n = fn, 0

    def __call__(self, p):
        self.n += p.shape[0]
        return self.fn(p)


def test_extract_mesh_matches_skimage_on_sphere(one_torch_thread):
    m = ex.extract_mesh(sphere_sdf, 33, bound=1.0)
    g = sphere_sdf(grid_points(33).reshape(-1, 3)).reshape(33, 33, 33).numpy()
    v, f, _, _ = measure.marching_cubes(g, 0.0, spacing=(2 / 32,) * 3)
    assert len(m.vertices) == len(v)
    assert np.allclose(np.sort(m.vertices, 0), np.sort(v - 1.0, 0), atol=1e-6)
    assert m.is_watertight and m.volume > 0
    assert abs(m.volume - 4 / 3 * np.pi * 0.6**3) / (4 / 3 * np.pi * 0.6**3) < 0.03


def test_occupancy_convention_gives_the_same_mesh(one_torch_thread):
    m_sdf = ex.extract_mesh(sphere_sdf, 25)
    # occupancy logits, a positive multiple of -sdf: linear interpolation finds the same crossings
    m_occ = ex.extract_mesh(lambda p: -10 * sphere_sdf(p), 25, level=0.0, inside="above")
    assert len(m_sdf.vertices) == len(m_occ.vertices)
    assert np.allclose(np.sort(m_sdf.vertices, 0), np.sort(m_occ.vertices, 0), atol=1e-5)
    assert m_occ.volume > 0


def test_extract_mesh_rejects_empty_field_and_bad_inside():
    with pytest.raises(ValueError, match="not crossed"):
        ex.extract_mesh(lambda p: p.norm(dim=-1) + 1, 9)
    with pytest.raises(ValueError, match="inside"):
        ex.extract_mesh(sphere_sdf, 9, inside="in")
    with pytest.raises(TypeError, match="callable"):
        ex.extract_mesh(3.0, 9)


@pytest.mark.parametrize("category, seed", [("chair", 1), ("lamp", 2)])
def test_hierarchical_equals_dense_with_fewer_evaluations(category, seed, one_torch_thread):
    shape = make_shape(category, seed)
    f = Counter(shape.sdf)
    grid, info = ex.hierarchical_grid(f, 65, 17, bound=1.05)
    assert f.n == info.evaluations and info.levels == [17, 33, 65]
    dense = sdf_grid(shape, 65, 1.05)
    # exact wherever marching cubes looks: same mesh
    assert torch.equal((grid < 0), (dense < 0))
    m_h = ex.marching_cubes(grid, 0.0, 1.05)
    m_d = ex.marching_cubes(dense, 0.0, 1.05)
    assert np.array_equal(np.sort(m_h.vertices, 0), np.sort(m_d.vertices, 0))
    assert info.fraction < 0.35


def test_hierarchical_occupancy_and_single_level(one_torch_thread):
    occ = lambda p: torch.sigmoid(-20 * sphere_sdf(p))  # noqa: E731
    m, info = ex.hierarchical_extract(occ, 33, 9, level=0.5, inside="above")
    m_d = ex.extract_mesh(occ, 33, level=0.5, inside="above")
    assert np.allclose(np.sort(m.vertices, 0), np.sort(m_d.vertices, 0))
    g, info1 = ex.hierarchical_grid(sphere_sdf, 9, 9)
    assert info1.evaluations == 9**3 and info1.levels == [9]


def test_hierarchical_misses_nothing_without_dilation_on_a_sphere(one_torch_thread):
    g, info = ex.hierarchical_grid(sphere_sdf, 65, 9, dilate=0)
    assert torch.equal(g < 0, sdf_grid(sphere_sdf, 65) < 0)


def test_hierarchical_bad_resolutions():
    with pytest.raises(ValueError, match="power of two"):
        ex.hierarchical_grid(sphere_sdf, 100, 33)
    with pytest.raises(ValueError, match="power of two"):
        ex.hierarchical_grid(sphere_sdf, 17, 33)
    with pytest.raises(ValueError, match="dilate"):
        ex.hierarchical_grid(sphere_sdf, 17, 9, dilate=-1)


def test_field_normals_of_sphere_are_radial(one_torch_thread):
    p = torch.randn(50, 3)
    n = ex.field_normals(sphere_sdf, p)
    assert torch.allclose(n, p / p.norm(dim=-1, keepdim=True), atol=1e-6)
    n_occ = ex.field_normals(lambda q: -sphere_sdf(q), p, inside="above")
    assert torch.allclose(n_occ, n, atol=1e-6)
    assert not n.requires_grad
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        ex.field_normals(sphere_sdf, torch.zeros(3))


def test_normal_consistency_against_face_normals(one_torch_thread):
    m = ex.extract_mesh(sphere_sdf, 33)
    # reference: the analytic sphere normals at the face centres, against trimesh's face normals
    c = np.asarray(m.triangles_center)
    ref = (np.sum(c / np.linalg.norm(c, axis=1, keepdims=True) * m.face_normals, 1) * m.area_faces).sum()
    ref /= m.area_faces.sum()
    nc = ex.mesh_field_normal_consistency(m, sphere_sdf)
    assert abs(nc - ref) < 1e-5 and nc > 0.99
    # an inverted field flips the sign; absolute ignores it
    assert ex.mesh_field_normal_consistency(m, lambda p: -sphere_sdf(p)) == pytest.approx(-nc, abs=1e-6)
    assert ex.mesh_field_normal_consistency(m, lambda p: -sphere_sdf(p), absolute=True) == pytest.approx(nc, abs=1e-6)
    with pytest.raises(ValueError, match="non-empty"):
        ex.mesh_field_normal_consistency(trimesh.Trimesh(), sphere_sdf)


def test_field_on_module_device(one_torch_thread):
    lin = torch.nn.Linear(3, 1)

    def f(p):
        return lin(p).squeeze(-1)

    g = ex.field_grid(lin, 5)  # a module: its device
    assert g.shape == (5, 5, 5)
    assert ex.field_grid(f, 5).shape == (5, 5, 5)
