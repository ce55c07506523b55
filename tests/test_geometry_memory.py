"""course_lib.geometry.memory: byte counts against numpy, surface voxels against scipy's erosion, the table's
growth against the analytic exponents."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from scipy import ndimage

from course_lib import data, geometry
from course_lib.geometry import memory


def test_nbytes_matches_numpy_for_every_kind():
    t = torch.zeros(7, 3, dtype=torch.float64)
    assert memory.nbytes(t) == t.numpy().nbytes == 168
    b = torch.zeros(4, 4, 4, dtype=torch.bool)
    assert memory.nbytes(b) == b.numpy().nbytes == 64
    m = trimesh.creation.box()
    assert memory.nbytes(m) == m.vertices.nbytes + m.faces.nbytes
    lin = torch.nn.Linear(3, 5)
    assert memory.nbytes(lin) == (15 + 5) * 4
    assert memory.nbytes({"a": t, "b": [b, (lin,)]}) == 168 + 64 + 80
    assert memory.nbytes(np.zeros(10, dtype=np.int16)) == 20
    with pytest.raises(TypeError, match="str"):
        memory.nbytes("not an array")


def test_surface_voxels_match_scipy_erosion():
    gen = torch.Generator().manual_seed(0)
    for r in (1, 5, 12):
        vox = torch.rand(r, r, r, generator=gen) > 0.3
        ref = vox.numpy() & ~ndimage.binary_erosion(vox.numpy(), structure=ndimage.generate_binary_structure(3, 1),
                                                    border_value=0)
        assert np.array_equal(memory.surface_voxels(vox).numpy(), ref)
    full = torch.ones(4, 4, 4, dtype=torch.bool)
    assert int(memory.surface_voxels(full).sum()) == 64 - 8  # a 4^3 block: only its 2^3 core is interior
    with pytest.raises(ValueError, match="bool"):
        memory.surface_voxels(full.float())


def test_mlp_sdf_sizes():
    assert memory.nbytes(memory.mlp_sdf((3, 128, 128, 1))) == 4 * (3 * 128 + 128 + 128 * 128 + 128 + 128 + 1)
    net = memory.mlp_sdf((259, *[512] * 8, 1))
    assert sum(isinstance(m, torch.nn.Linear) for m in net) == 9
    assert not isinstance(net[-1], torch.nn.ReLU)
    with pytest.raises(ValueError):
        memory.mlp_sdf((3,))


@pytest.mark.usefixtures("base_family")
def test_memory_table_grows_as_the_analytic_exponents():
    shape = data.make_shape("car", data.reserved_seed("demo"))
    res = (8, 16, 32)
    t = geometry.memory_table(shape, res)
    rows = t["rows"]
    assert list(rows) == list(memory.MEMORY_ROWS)
    assert rows["voxels (bool)"] == [r**3 for r in res]  # one byte per cell
    assert rows["SDF grid (float32)"] == [4 * r**3 for r in res]
    assert rows["points (one per surface voxel)"] == [12 * n for n in t["surface_voxels"]]
    assert len(set(rows["MLP SDF, small"])) == 1
    k = geometry.fitted_exponents(res, rows)
    assert abs(k["voxels (bool)"] - 3) < 1e-9 and "MLP SDF, small" not in k
    assert 1.5 < k["points (one per surface voxel)"] < 2.5 and 1.5 < k["mesh (marching cubes)"] < 2.5
    assert t["surface_share"][0] > t["surface_share"][-1]  # the surface's share shrinks as R grows
    # a student's count and voxelize give the same table when they are right
    same = geometry.memory_table(shape, res, count=lambda o: memory.nbytes(o),
                                 voxelize=lambda s, r: data.voxelize(s, r))
    assert same["rows"] == rows
