"""course_lib.metrics against scipy / numpy references written from the definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist, directed_hausdorff

from course_lib import metrics


def _clouds(seed: int, n: int = 300, m: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=g, dtype=torch.float64), torch.rand(m, 3, generator=g, dtype=torch.float64)


def _nn(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d, i = cKDTree(b).query(a)
    return d, i


def test_chamfer_conventions() -> None:
    x, y = _clouds(0)
    dxy, _ = _nn(x.numpy(), y.numpy())
    dyx, _ = _nn(y.numpy(), x.numpy())
    sq_sum = (dxy**2).mean() + (dyx**2).mean()
    l1 = 0.5 * (dxy.mean() + dyx.mean())
    assert float(metrics.chamfer_l2(x, y)) == pytest.approx(sq_sum, rel=1e-10)
    assert float(metrics.chamfer_l1(x, y)) == pytest.approx(l1, rel=1e-10)
    assert float(metrics.chamfer(x, y, squared=False, directions="sum")) == pytest.approx(2 * l1, rel=1e-10)
    assert float(metrics.chamfer(x, y, directions="mean", scale=10)) == pytest.approx(5 * sq_sum, rel=1e-10)
    # presets
    assert float(metrics.PRESETS["atlasnet"].chamfer(x, y)) == pytest.approx(1e3 * sq_sum, rel=1e-10)
    assert float(metrics.PRESETS["pointflow"].chamfer(x, y)) == pytest.approx(1e4 * sq_sum, rel=1e-10)
    assert float(metrics.PRESETS["shapegf"].chamfer(x, y)) == pytest.approx(1e4 * sq_sum, rel=1e-10)
    assert float(metrics.PRESETS["deepsdf"].chamfer(x, y)) == pytest.approx(1e3 * sq_sum, rel=1e-10)
    # OccNet: unit = a tenth of the longest edge of the target's bounding box (authors, occupancy_networks #61)
    edge = float((y.numpy().max(0) - y.numpy().min(0)).max())
    assert float(metrics.PRESETS["occnet"].chamfer(x, y)) == pytest.approx(l1 * 10 / edge, rel=1e-10)


def test_occnet_unit_by_hand_and_per_shape() -> None:
    """Two points against one: by hand.  Target y spans a 0.5 x 2 x 0 box: unit = 2 / 10 = 0.2."""
    x = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([[0.0, 0.0, 0.0], [0.5, 2.0, 0.0]], dtype=torch.float64)
    # x->y: 0 and 1 (x's (0,1,0) is nearest to y's origin); y->x: 0 and sqrt(0.25 + 1); (mean + mean) / 2
    raw = (0.5 * 1.0 + 0.5 * 1.25 ** 0.5) / 2
    occ = metrics.PRESETS["occnet"]
    assert float(metrics.chamfer_l1(x, y)) == pytest.approx(raw, rel=1e-12)
    assert float(occ.chamfer(x, y)) == pytest.approx(raw / 0.2, rel=1e-12)
    # batched: each shape in its own unit; a uniformly scaled pair gives the same value (the unit follows it)
    xb, yb = torch.stack([x, 3 * x]), torch.stack([y, 3 * y])
    per = occ.chamfer(xb, yb, reduction="none")
    assert per.shape == (2,) and torch.allclose(per, torch.full((2,), raw / 0.2, dtype=torch.float64))
    assert float(occ.chamfer(xb, yb)) == pytest.approx(raw / 0.2, rel=1e-12)
    assert float(metrics.PRESETS["atlasnet"].unit_factor(y)) == 1.0
    with pytest.raises(ValueError, match="single point"):
        occ.chamfer(x, torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="reduction"):
        occ.chamfer(xb, yb, reduction="sum")


def test_batched_reduction() -> None:
    x = torch.stack([_clouds(1)[0], _clouds(2)[0]])
    y = torch.stack([_clouds(3)[1][:200], _clouds(4)[1][:200]])
    per = metrics.chamfer_l1(x, y, reduction="none")
    assert per.shape == (2,)
    for b in range(2):
        assert float(per[b]) == pytest.approx(float(metrics.chamfer_l1(x[b], y[b])), rel=1e-12)
    assert float(metrics.chamfer_l1(x, y)) == pytest.approx(float(per.mean()), rel=1e-12)


def test_emd_pointflow_convention() -> None:
    x, y = _clouds(5, 60, 60)
    c = cdist(x.numpy(), y.numpy())
    r, cols = linear_sum_assignment(c)
    ref = c[r, cols].mean()
    assert float(metrics.emd(x, y)) == pytest.approx(ref, rel=1e-10)
    assert float(metrics.PRESETS["pointflow"].emd(x, y)) == pytest.approx(100 * ref, rel=1e-10)
    c2 = c**2
    r2, cols2 = linear_sum_assignment(c2)
    assert float(metrics.emd(x, y, squared=True)) == pytest.approx(c2[r2, cols2].mean(), rel=1e-10)
    with pytest.raises(ValueError, match="reports no EMD"):
        metrics.PRESETS["atlasnet"].emd(x, y)


def test_fscore() -> None:
    x, y = _clouds(6)
    dxy, _ = _nn(x.numpy(), y.numpy())
    dyx, _ = _nn(y.numpy(), x.numpy())
    for tau in (0.02, 0.05, 0.1):
        p, r = (dxy <= tau).mean(), (dyx <= tau).mean()
        f = 2 * p * r / (p + r) if p + r > 0 else 0.0
        got_f, got_p, got_r = metrics.fscore(x, y, tau, return_precision_recall=True)
        assert float(got_f) == pytest.approx(f, rel=1e-12)
        assert float(got_p) == pytest.approx(p) and float(got_r) == pytest.approx(r)
    assert float(metrics.fscore(x, x, 1e-6)) == 1.0
    assert float(metrics.fscore(x, y + 10, 0.1)) == 0.0
    with pytest.raises(ValueError, match="tau"):
        metrics.fscore(x, y, 0.0)


def test_hausdorff() -> None:
    x, y = _clouds(7)
    ref = max(directed_hausdorff(x.numpy(), y.numpy())[0], directed_hausdorff(y.numpy(), x.numpy())[0])
    assert float(metrics.hausdorff(x, y)) == pytest.approx(ref, rel=1e-12)
    assert float(metrics.hausdorff(x, y, squared=True)) == pytest.approx(ref**2, rel=1e-12)


def test_normal_consistency() -> None:
    x, y = _clouds(8)
    g = torch.Generator().manual_seed(9)
    nx = torch.randn(300, 3, generator=g, dtype=torch.float64)
    ny = torch.randn(250, 3, generator=g, dtype=torch.float64)
    ux = nx.numpy() / np.linalg.norm(nx.numpy(), axis=1, keepdims=True)
    uy = ny.numpy() / np.linalg.norm(ny.numpy(), axis=1, keepdims=True)
    _, ixy = _nn(x.numpy(), y.numpy())
    _, iyx = _nn(y.numpy(), x.numpy())
    cxy = (ux * uy[ixy]).sum(1)
    cyx = (uy * ux[iyx]).sum(1)
    ref_abs = 0.5 * (np.abs(cxy).mean() + np.abs(cyx).mean())
    ref_signed = 0.5 * (cxy.mean() + cyx.mean())
    assert float(metrics.normal_consistency(x, nx, y, ny)) == pytest.approx(ref_abs, rel=1e-10)
    assert float(metrics.normal_consistency(x, nx, y, ny, absolute=False)) == pytest.approx(ref_signed, rel=1e-10)
    assert float(metrics.normal_consistency(x, nx, x, -nx * 3)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="normals must have the shape"):
        metrics.normal_consistency(x, nx[:10], y, ny)


def test_volumetric_iou() -> None:
    g = torch.Generator().manual_seed(10)
    a = torch.rand(2, 8, 8, 8, generator=g) > 0.5
    b = torch.rand(2, 8, 8, 8, generator=g) > 0.4
    per = metrics.volumetric_iou(a, b, batched=True, reduction="none")
    for i in range(2):
        an, bn = a[i].numpy(), b[i].numpy()
        assert float(per[i]) == pytest.approx((an & bn).sum() / (an | bn).sum())
    assert float(metrics.volumetric_iou(a[0], a[0])) == 1.0
    assert float(metrics.volumetric_iou(a[0].float(), b[0].float())) == pytest.approx(float(per[0]))
    empty = torch.zeros(4, 4, 4, dtype=torch.bool)
    assert float(metrics.volumetric_iou(empty, empty)) == 1.0
    assert float(metrics.volumetric_iou(empty, ~empty)) == 0.0
    with pytest.raises(ValueError, match="shape"):
        metrics.volumetric_iou(a, b[0])


def test_evaluate_and_oracle_on_a_mesh() -> None:
    mesh = trimesh.creation.icosphere(subdivisions=3)
    res = metrics.oracle(mesh, 512, "pointflow")
    assert set(res) == {"cd", "emd", "normal_consistency", "fscore", "hausdorff"}
    # the same numbers from the two samplings done by hand
    p0, f0 = trimesh.sample.sample_surface(mesh, 512, seed=0)
    p1, f1 = trimesh.sample.sample_surface(mesh, 512, seed=1)
    x = torch.tensor(p0, dtype=torch.float32)
    y = torch.tensor(p1, dtype=torch.float32)
    ref = metrics.evaluate(x, y, "pointflow", pred_normals=torch.tensor(mesh.face_normals[f0]),
                           gt_normals=torch.tensor(mesh.face_normals[f1]))
    for k in res:
        assert res[k] == pytest.approx(ref[k], rel=1e-6)
    assert res["cd"] > 0 and 0.9 < res["normal_consistency"] <= 1.0
    # the oracle shrinks with more points
    assert metrics.oracle(mesh, 2048, metrics.chamfer_l2) < metrics.oracle(mesh, 256, metrics.chamfer_l2)


def test_oracle_accepts_any_sampler() -> None:
    class Sphere:
        def sample_surface(self, n: int, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
            g = torch.Generator().manual_seed(seed or 0)
            p = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
            return p, p.clone()

    res = metrics.oracle(Sphere(), 300, "occnet")
    assert "emd" not in res and res["normal_consistency"] > 0.9
    with pytest.raises(TypeError, match="sample_surface"):
        metrics.oracle(object(), 10)
    with pytest.raises(ValueError, match="preset"):
        metrics.oracle(Sphere(), 10, "pytorch3d")


def test_metric_errors() -> None:
    x, y = _clouds(11)
    with pytest.raises(ValueError, match="3D points"):
        metrics.chamfer_l2(x[:, :2], y[:, :2])
    with pytest.raises(ValueError, match="directions"):
        metrics.chamfer(x, y, directions="max")
    with pytest.raises(ValueError, match="reduction"):
        metrics.hausdorff(x, y, reduction="sum")
    with pytest.raises(ValueError, match="NaN"):
        metrics.fscore(x * float("nan"), y, 0.1)
    with pytest.raises(ValueError, match="empty"):
        metrics.chamfer_l1(x[:0], y)


def test_oracle_of_a_course_shape_is_the_datasets_oracle_against_its_target() -> None:
    from course_lib.data import ShapeNetLite

    ds = ShapeNetLite("test", ("target_points", "oracle_points"), categories=("mug",), shapes_per_category=1,
                      n_points=64, cache=False)
    item = ds[0]
    ref = float(metrics.chamfer_l2(item["oracle_points"][None], item["target_points"][None]))
    assert metrics.oracle(ds.shape(0), 64, metrics.chamfer_l2) == pytest.approx(ref, rel=1e-6)


def _frame_by_hand(y: np.ndarray, frame: str) -> tuple[np.ndarray, float]:
    """(centre, scale) written from the definitions with numpy."""
    lo, hi = y.min(0), y.max(0)
    if frame == "course":
        return np.zeros(3), 1.0
    if frame == "unit-ball":
        c = y.mean(0)
        return c, 1.0 / np.sqrt(((y - c) ** 2).sum(1)).max()
    c = (lo + hi) / 2
    if frame == "unit-cube":
        return c, 1.0 / (hi - lo).max()
    return c, 1.0 / np.sqrt(((hi - lo) ** 2).sum())


@pytest.mark.parametrize("frame", list(metrics.FRAMES))
def test_frames_against_numpy(frame: str) -> None:
    x, y = _clouds(5)
    y = 0.3 * y + torch.tensor([0.2, -0.5, 0.1], dtype=torch.float64)  # off-centre, not unit size
    c, s = _frame_by_hand(y.numpy(), frame)
    xf, yf = metrics.to_frame(x, y, frame)
    np.testing.assert_allclose(yf.numpy(), (y.numpy() - c) * s, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xf.numpy(), (x.numpy() - c) * s, rtol=1e-12, atol=1e-12)
    e = yf.numpy().max(0) - yf.numpy().min(0)
    if frame == "unit-cube":
        assert e.max() == pytest.approx(1.0)
    if frame == "unit-diagonal":
        assert np.linalg.norm(e) == pytest.approx(1.0)
    if frame == "unit-ball":
        assert np.linalg.norm(yf.numpy(), axis=1).max() == pytest.approx(1.0)
        np.testing.assert_allclose(yf.numpy().mean(0), 0.0, atol=1e-12)
    # a squared Chamfer moves by scale^2, an unsquared one and the EMD by scale
    dxy, _ = _nn(x.numpy(), y.numpy())
    dyx, _ = _nn(y.numpy(), x.numpy())
    sq_sum = (dxy**2).mean() + (dyx**2).mean()
    conv = metrics.Convention("t", cd_squared=True, cd_directions="sum", cd_scale=1e3, frame=frame)
    assert float(conv.chamfer(x, y, in_paper_frame=True)) == pytest.approx(1e3 * sq_sum * s**2, rel=1e-9)
    assert float(conv.chamfer(x, y)) == pytest.approx(1e3 * sq_sum, rel=1e-9)  # default: the course's frame
    # batched: each pair in its own target's frame
    xb, yb = torch.stack([x, x]), torch.stack([y, 2 * y])
    per = conv.chamfer(xb, yb, reduction="none", in_paper_frame=True)
    assert float(per[0]) == pytest.approx(1e3 * sq_sum * s**2, rel=1e-9)
    x2, y2 = metrics.to_frame(x, 2 * y, frame)
    assert float(per[1]) == pytest.approx(float(metrics.chamfer(x2, y2, scale=1e3)), rel=1e-9)


def test_frames_presets_and_errors() -> None:
    assert {p.frame for p in metrics.PRESETS.values()} <= set(metrics.FRAMES)
    assert metrics.PRESETS["atlasnet"].frame == "unit-ball" and metrics.PRESETS["occnet"].frame == "unit-cube"
    # OccNet's unit (a tenth of the longest edge) makes its number the same in every frame
    x, y = _clouds(6)
    occ = metrics.PRESETS["occnet"]
    assert float(occ.chamfer(x, 3 * y, in_paper_frame=True)) == pytest.approx(float(occ.chamfer(x, 3 * y)), rel=1e-9)
    n = 64
    a, b = x[:n], y[:n]
    emd_frame = float(metrics.PRESETS["pointflow"].emd(a, 2 * b, in_paper_frame=True))
    fa, fb = metrics.to_frame(a, 2 * b, "unit-diagonal")
    assert emd_frame == pytest.approx(float(metrics.emd(fa, fb, squared=False, scale=1e2)), rel=1e-9)
    with pytest.raises(ValueError, match="unknown frame"):
        metrics.frame_transform(y, "unit-sphere-ish")
    with pytest.raises(ValueError, match="empty"):
        metrics.frame_transform(torch.zeros(0, 3), "unit-cube")
    with pytest.raises(ValueError, match="no extent"):
        metrics.frame_transform(torch.ones(4, 3), "unit-diagonal")
    with pytest.raises(ValueError, match="cloud"):
        metrics.frame_transform(torch.ones(4, 2), "unit-cube")


def test_describe_chamfer_is_the_one_convention_text():
    a = metrics.describe_chamfer("atlasnet")
    assert "squared Euclidean" in a and "summed" in a and "x 1000" in a and "'atlasnet'" in a
    o = metrics.describe_chamfer("occnet")
    assert "unsquared" in o and "averaged" in o and "tenth" in o and "no scale" in o
    assert "no scale" in metrics.describe_chamfer("pointflow", scale=1)
    assert "x 100" in metrics.describe_emd("pointflow") and "unsquared" in metrics.describe_emd("pointflow")
    with pytest.raises(ValueError, match="no EMD"):
        metrics.describe_emd("atlasnet")
    with pytest.raises(ValueError, match="unknown preset"):
        metrics.describe_chamfer("chamferish")
    # every chapter's convention text states its Chamfer with this one sentence
    from course_lib.experiments import implicit, point_sets, primitives, rendering, retrieval, surfaces

    for text in (point_sets.CONVENTION, surfaces.CD_CONVENTION, rendering.CD_CONVENTION, primitives.CD_CONVENTION):
        assert a in text
    assert metrics.describe_chamfer("pointflow", scale=1) in retrieval.CONVENTION
    assert metrics.describe_chamfer("deepsdf") in implicit.CONVENTIONS["cd_deepsdf"]
    from course_lib.experiments import evaluation, gradient_fields

    assert metrics.describe_chamfer("shapegf") in gradient_fields.CONVENTION
    assert metrics.describe_emd("shapegf") in gradient_fields.CONVENTION
    assert a in evaluation.COLUMNS["cd"]


def test_the_chapters_oracles_are_metrics_oracle():
    """Chapter 06's and 07's oracle rows are the course's one oracle (metrics.oracle), on the same shapes."""
    from course_lib.data import SAMPLING_STREAMS, make_shape, split_seeds
    from course_lib.experiments import implicit, surfaces

    seeds = split_seeds("test", 2)
    shapes = [make_shape("chair", int(s)) for s in seeds]
    n = 256
    data = {"category": ["chair", "chair"], "seed": torch.tensor([int(s) for s in seeds]),
            "target_points": torch.stack([s.sample_surface(n, stream=SAMPLING_STREAMS["target"])[0] for s in shapes]),
            "oracle_points": torch.stack([s.sample_surface(n, stream=SAMPLING_STREAMS["oracle"])[0] for s in shapes])}
    ref = [metrics.oracle(s, n, lambda x, y: metrics.chamfer(x, y, scale=1e3)) for s in shapes]
    assert surfaces.oracle_chamfer(data) == pytest.approx(float(np.mean(ref)), rel=1e-5)
    deep = implicit.oracle_chamfer(data, "deepsdf")
    assert deep.tolist() == pytest.approx(ref, rel=1e-5)  # DeepSDF's formula is AtlasNet's (x 1e3)
