"""Chapter 11's evaluation layer against independent references (scipy, brute force, analytic shapes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree
from scipy.stats import kendalltau

from course_lib import metrics, train
from course_lib.data import make_shape, split_seeds, voxelize
from course_lib.experiments import evaluation as E

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ev():
    return E.eval_shapes("ci", per_category=1)  # the table's ci count (20 shapes) is for the benchmark's claims


def test_eval_shapes_are_held_out_and_independent(ev):
    assert ev.categories == ("chair", "airplane")
    assert set(ev.seed) <= set(split_seeds("test", 1))
    assert not set(ev.seed) & set(split_seeds("train", 200)) and not set(ev.seed) & set(split_seeds("val", 50))
    # target and oracle are two different samplings of the same surface: both on it, not the same points
    assert not torch.allclose(ev.target, ev.oracle)
    for i, sh in enumerate(ev.shapes):
        assert float(sh.sdf(ev.target[i]).abs().max()) < 1e-3
        assert float(sh.sdf(ev.oracle[i]).abs().max()) < 1e-3
        assert torch.equal(ev.iou_occupancy[i], sh.sdf(ev.iou_points[i]) < 0)


def test_grid_occupancy_layout_matches_voxelize():
    r = 8
    grid = torch.zeros(r, r, r)
    grid[1, 2, 5] = 1.0
    centre = -1 + (torch.tensor([1.0, 2.0, 5.0]) + 0.5) * 2 / r
    occ = E.grid_occupancy(grid)
    pts = torch.stack([centre, centre[[1, 0, 2]], centre[[2, 1, 0]], torch.tensor([1.5, 0.0, 0.0])])
    assert occ(pts).tolist() == [True, False, False, False]
    # the exact shape's own grid looked up at random points: close to the exact occupancy
    shape = make_shape("chair", split_seeds("test", 1)[0])
    g = voxelize(shape, 32).float()
    p = torch.rand(20000, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    inter = (E.grid_occupancy(g)(p) & shape.occupancy(p)).sum()
    union = (E.grid_occupancy(g)(p) | shape.occupancy(p)).sum()
    assert float(inter / union) > 0.6
    with pytest.raises(ValueError, match="cubic grid"):
        E.grid_occupancy(torch.zeros(4, 4))


def test_mesh_occupancy_of_a_box_and_an_open_box():
    box = trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    p = torch.rand(4000, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1
    want = (p.abs() < torch.tensor([0.5, 0.3, 0.2])).all(-1)
    assert torch.equal(E.mesh_occupancy(box)(p), want)
    holed = trimesh.Trimesh(box.vertices, box.faces[2:], process=False)  # one face pair missing
    agree = (E.mesh_occupancy(holed)(p) == want).float().mean()
    assert float(agree) > 0.97  # the generalised winding number is robust to a hole


def _cd_reference(x, y):
    dx, _ = cKDTree(y).query(x)
    dy, _ = cKDTree(x).query(y)
    return (dx ** 2).mean() + (dy ** 2).mean(), (dx.mean() + dy.mean()) / 2, max(dx.max(), dy.max()), dx, dy


def test_score_of_the_oracle_against_scipy(ev):
    rec = E.Reconstruction(ev.oracle[0], ev.oracle_normals[0])
    s = E.score(rec, ev, 0)
    x, y = ev.oracle[0].double().numpy(), ev.target[0].double().numpy()
    cd, cd_l1, hd, dx, dy = _cd_reference(x, y)
    assert s["cd"] == pytest.approx(1e3 * cd, rel=1e-4)
    assert s["cd_l1"] == pytest.approx(cd_l1, rel=1e-4)
    assert s["hausdorff"] == pytest.approx(hd, rel=1e-4)
    tau = ev.sizes["tau"]
    prec, rec_ = (dx < tau).mean(), (dy < tau).mean()
    assert s["fscore"] == pytest.approx(2 * prec * rec_ / (prec + rec_), abs=2e-3)
    # EMD on emd_points of each: subsample of the prediction vs a fresh target sampling, exact assignment
    m = int(s["emd_points"])
    from course_lib.data import SAMPLING_STREAMS

    ref, _ = ev.shapes[0].sample_surface(m, stream=SAMPLING_STREAMS["target"])
    sub = E._subsample(ev.oracle[0], m, seed=0).double().numpy()
    cost = np.linalg.norm(sub[:, None] - ref.double().numpy()[None], axis=-1)
    r, c = linear_sum_assignment(cost)
    assert s["emd"] == pytest.approx(1e2 * cost[r, c].mean(), rel=1e-4)
    assert 0.5 < s["nc"] <= 1.0
    assert math.isnan(s["iou"]) and math.isnan(s["watertight"])


def test_score_iou_and_watertight_of_a_mesh(ev):
    sh = ev.shapes[0]
    mesh = sh.mesh(32)
    rec = E._mesh_rec(mesh, 512, 0, closed=True)
    s = E.score(rec, ev, 0)
    assert s["watertight"] == 1.0
    occ = E.mesh_occupancy(mesh)(ev.iou_points[0])
    inter = (occ & ev.iou_occupancy[0]).sum()
    union = (occ | ev.iou_occupancy[0]).sum()
    assert s["iou"] == pytest.approx(float(inter / union))
    assert s["iou"] > 0.8
    open_mesh = trimesh.Trimesh(mesh.vertices, mesh.faces[10:], process=False)
    assert E.score(E._mesh_rec(open_mesh, 512, 0), ev, 0)["watertight"] == 0.0
    empty = E._mesh_rec(None, 512, 0)
    assert empty.empty and E.score(empty, ev, 0)["empty"] == 1.0
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        E.score(E.Reconstruction(torch.zeros(0, 3)), ev, 0)


def test_union_samples_lie_on_the_union_surface_and_are_area_uniform():
    from course_lib.models import primitives as P

    # two cuboids: a (half sizes 0.2) and b (0.4, twice the side) far apart, then overlapping
    def prims(tb):
        return P.Primitives(size=torch.tensor([[[0.2, 0.2, 0.2], [0.4, 0.4, 0.4]]]), eps=torch.ones(1, 2, 2),
                            rotation=torch.tensor([[[1.0, 0, 0, 0], [1.0, 0, 0, 0]]]),
                            translation=torch.tensor([[[-0.5, 0, 0], [tb, 0, 0]]]), prob=torch.ones(1, 2),
                            kind="cuboid")
    pts, nrm = E.union_samples(prims(0.5), 4000, seed=0)
    assert pts.shape == (4000, 3) and nrm.shape == (4000, 3)
    frac_small = float((pts[:, 0] < 0).float().mean())
    assert frac_small == pytest.approx(1 / 5, abs=0.03)  # areas 1 : 4
    pts, _ = E.union_samples(prims(-0.3), 4000, seed=0)  # a now lies inside b (sharing its face x = -0.7)
    lo, hi = torch.tensor([-0.7, -0.4, -0.4]), torch.tensor([0.1, 0.4, 0.4])
    # no sample strictly inside the union: every point is on the boundary of a or b, and not inside the other
    inside_b = (pts - torch.tensor([-0.3, 0, 0])).abs().lt(0.4 - 1e-4).all(-1)
    inside_a = (pts - torch.tensor([-0.5, 0, 0])).abs().lt(0.2 - 1e-4).all(-1)
    assert not bool((inside_a | inside_b).any())
    assert bool(((pts >= lo - 1e-4) & (pts <= hi + 1e-4)).all())


def test_kendall_against_scipy():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.normal(size=9), rng.normal(size=9)
        assert E.kendall(list(a), list(b)) == pytest.approx(kendalltau(a, b).statistic)


def test_checkpoints_only_refuses_to_train(tmp_path):
    model = torch.nn.Linear(2, 1)
    data = [(torch.randn(4, 2), torch.randn(4, 1))]

    def loss(m, batch):
        return ((m(batch[0]) - batch[1]) ** 2).mean()

    path = tmp_path / "m.pt"
    with train.checkpoints_only(), pytest.raises(train.CheckpointMissing, match="no checkpoint"):
        train.train_or_load(model, path, train_loader=data, loss_fn=loss, epochs=1, progress=False, live_plot=False)
    train.train_or_load(model, path, train_loader=data, loss_fn=loss, epochs=1, progress=False, live_plot=False)
    with train.checkpoints_only():
        train.train_or_load(model, path, train_loader=data, loss_fn=loss, epochs=1, progress=False, live_plot=False)
        with pytest.raises(train.CheckpointMissing, match="other settings"):
            train.train_or_load(model, path, train_loader=data, loss_fn=loss, epochs=2, progress=False,
                                live_plot=False)


def test_every_model_runs_in_the_ci_profile_and_ranks_sensibly(ev):
    res = E.evaluate_models(ev, [m for m in E.MODELS if m.chapter in ("05", "06")], progress=False,
                            checkpoints_only=False, memory=True)
    rows = {r["model"]: r for r in E.table_rows(res)}
    assert not E._MEASURE_MEMORY[0]
    for name in ("PointSetGen (Chamfer loss)", "AtlasNet 25 patches"):
        assert rows[name]["seconds"] > 0 and rows[name]["peak_mb"] >= 0  # timed, then measured in a second pass
    assert rows[f"oracle ({ev.sizes['n_points']} points)"]["cd"] < rows["PointSetGen (Chamfer loss)"]["cd"]
    assert rows["AtlasNet 25 patches"]["watertight"] == 0.0  # open patches
    assert rows["AtlasNet sphere"]["watertight"] == 1.0 and math.isfinite(rows["AtlasNet sphere"]["iou"])
    assert math.isnan(rows["PointSetGen (Chamfer loss)"]["iou"])  # points enclose no volume
    order = E.ranking(list(rows.values()), "cd")
    assert order[0].startswith(("oracle", "exact"))
    proto = E.protocol_sensitivity(res, ev, point_counts=(128, 512), taus=(0.02, 0.05), iou_points=(1024, 4096))
    o = proto["point_count"][f"oracle ({ev.sizes['n_points']} points)"]
    assert o["128"] > 2 * o["512"]  # the oracle's Chamfer falls with the point count
    p = proto["presets"]["AtlasNet 25 patches"]
    assert p["pointflow"] == pytest.approx(10 * p["atlasnet"], rel=1e-5)  # same formula, x1e4 against x1e3
    f = proto["fscore"]["AtlasNet 25 patches"]
    assert f["0.05"] >= f["0.02"]
    # the fifth axis: frames.  The course frame's row is the AtlasNet preset; another frame is the same
    # predictions moved with their targets: recomputed here by hand from metrics.to_frame
    fr = proto["frames"]["AtlasNet 25 patches"]
    assert fr["course"] == pytest.approx(p["atlasnet"], rel=1e-6)
    recs = res["AtlasNet 25 patches"]["recs"]
    hand = np.mean([float(metrics.chamfer(*metrics.to_frame(r.points.float(), ev.target[i], "unit-diagonal"),
                                          scale=1e3)) for i, r in enumerate(recs)])
    assert fr["unit-diagonal"] == pytest.approx(hand, rel=1e-6)
    assert set(proto["frame_kendall"]) == set(metrics.FRAMES) - {"course"}
    assert all(-1.0 <= t <= 1.0 for t in proto["frame_kendall"].values())
    assert "AtlasNet 25 patches" in proto["frame_models"] and not any(
        m.startswith("oracle") for m in proto["frame_models"])
    pf = proto["presets_paper_frame"]["AtlasNet 25 patches"]
    assert pf["occnet"] == pytest.approx(p["occnet"], rel=1e-5)  # OccNet's unit follows the frame
    assert proto["preset_frames"]["atlasnet"] == "unit-ball"
    assert proto["frame_scale"]["course"] == {"mean": 1.0, "min": 1.0, "max": 1.0}
    assert proto["presets_own_count_points"]["AtlasNet 25 patches"]["deepsdf"] == 30_000  # a mesh: resampled


# --- protocol 2: budgets from the chapters' checkpoints, claims over the table's shapes -------------

def test_recording_training_reads_the_budget_of_what_a_recipe_loads(tmp_path):
    from course_lib.experiments.common import Batches

    model = torch.nn.Linear(3, 1)
    data = {"x": torch.randn(10, 3), "y": torch.randn(10, 1)}

    def loss(m, b):
        return ((m(b["x"]) - b["y"]) ** 2).mean()

    def recipe():  # what a chapter's loader does: train_or_load by attribute, as the chapters call it
        return train.train_or_load(model, tmp_path / "m.pt", train_loader=Batches(data, 4), loss_fn=loss, epochs=3,
                                   progress=False, live_plot=False)

    original = train.train_or_load
    with E.recording_training() as calls:
        hist = recipe()
        recipe()  # loaded the second time: the same budget, from the checkpoint's history
    assert train.train_or_load is original
    assert [c["steps"] for c in calls] == [9, 9] and [c["examples"] for c in calls] == [30, 30]  # 3 x ceil(10/4)
    assert calls[0]["params"] == 4 and calls[1]["seconds"] == pytest.approx(hist.wall_time)
    b = E.training_budget(calls[:1], note="n")
    assert (b["steps"], b["examples"], b["params"], b["note"]) == (9, 30, 4, "n")
    assert E.training_budget(calls)["steps"] == 18  # two models: summed
    assert E.training_budget([])["steps"] is None and E.training_budget([])["params"] is None
    with pytest.raises(RuntimeError):
        with E.recording_training():
            raise RuntimeError("boom")
    assert train.train_or_load is original  # restored after an error too


def _fake_results(values, n_points=None):
    """``{name: per-shape CD list (None: no row for that shape)}`` as evaluate_models' results."""
    out = {}
    for name, vals in values.items():
        per = [None if v is None else {"cd": v, "fscore": 1.0 - v, "emd": v, "iou": math.nan,
                                       "n_points": float((n_points or {}).get(name, 2048))} for v in vals]
        ok = [p for p in per if p is not None]
        out[name] = {"per_shape": per, "chapter": "-" if name.startswith("oracle") else "05",
                     "mean": {"cd": float(np.mean([p["cd"] for p in ok])), "shapes": float(len(ok)),
                              "n_points": float((n_points or {}).get(name, 2048)), "iou": math.nan},
                     "budget": None if name.startswith("oracle") else {"steps": 10, "examples": 10, "seconds": 1.0,
                                                                        "params": 5}}
    return out


def test_paired_values_and_the_oracle_at_a_rows_point_count():
    res = _fake_results({"oracle (2048 points)": [1.0, 2.0, 3.0], "oracle (256 points)": [4.0, 5.0, 6.0],
                         "A": [1.5, None, float("nan")], "P": [7.0, 8.0, 9.0]},
                        n_points={"oracle (256 points)": 256, "P": 256})
    assert E.paired_values(res, "A", "oracle (2048 points)", "cd") == ([1.5], [1.0], [0])
    assert E.oracle_for(res, "A") == "oracle (2048 points)" and E.oracle_for(res, "P") == "oracle (256 points)"
    assert E.slug("3D-CODED (one model per category)") == "3d-coded-one-model-per-category"


def test_table_claims_by_hand():
    rng = np.random.default_rng(0)
    oracle = rng.uniform(1, 2, 24)
    near = oracle + rng.normal(0, 0.5, 24)  # within noise of the oracle
    good = oracle + 1.0 + rng.normal(0, 0.1, 24)
    bad = oracle + 3.0 + rng.normal(0, 0.1, 24)
    res = _fake_results({"oracle (2048 points)": list(oracle), "near": list(near), "good": list(good),
                         "bad": list(bad), "few": [0.5] * 5 + [None] * 19})
    claims, left = E.table_claims(res, oracle_columns=("cd", "fscore"), rank_columns=("cd",), retrieval="good")
    by = {c["id"]: c for c in claims}
    c = by["oracle-cd-good"]
    assert c["verdict"] == "behind" and c["n"] == 24 and c["a"] == "good" and c["b"] == "oracle (2048 points)"
    assert c["difference"] == pytest.approx(float(np.mean(good - oracle)))
    assert c["budget"]["oracle (2048 points)"]["steps"] is None and c["budget"]["good"]["steps"] == 10
    assert by["oracle-cd-near"]["verdict"] == "not separated"
    assert by["oracle-fscore-good"]["verdict"] == "behind"  # F = 1 - CD here: higher is better
    assert by["retrieval-cd-bad"]["verdict"] == "behind" and "retrieval-cd-good" not in by
    # the ranking by mean CD, each row against the next: near < good < bad
    assert [(by[k]["a"], by[k]["b"]) for k in ("rank-cd-01", "rank-cd-02")] == [("near", "good"), ("good", "bad")]
    assert "rank-cd-03" not in by  # 'few' has 5 shapes: not ranked
    assert {x["id"] for x in left} == {"oracle-cd-few", "oracle-fscore-few", "retrieval-cd-few"}
    assert all("5 paired shapes" in x["reason"] for x in left)


def test_protocol_study_respects_a_samplers_limit(ev):
    """An output resampled only up to its limit (ShapeGF's Langevin cost): above it the point-count study has no
    cell, and each paper's own count uses the table's points, which the study records."""
    asked: list[int] = []

    def resample(k: int, sd: int) -> torch.Tensor:
        asked.append(int(k))
        return ev.shapes[sd].sample_surface(int(k), stream=7)[0]

    n = int(ev.sizes["n_points"])
    oracle = [E.Reconstruction(ev.shapes[i].sample_surface(n, stream=5)[0]) for i in range(len(ev))]
    model = [E.Reconstruction(resample(n, i), resample=resample, resample_limit=n) for i in range(len(ev))]
    asked.clear()
    res = {"oracle": {"recs": oracle}, "m": {"recs": model}}
    proto = E.protocol_sensitivity(res, ev, point_counts=(n // 2, 2 * n), taus=(0.02,), iou_points=(1024,))
    assert asked and max(asked) <= n
    assert str(n // 2) in proto["point_count"]["m"] and str(2 * n) not in proto["point_count"]["m"]
    used = proto["presets_own_count_points"]["m"]
    assert used["deepsdf"] == n and used["pointflow"] == min(n, 2048)


def _cube_samples(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform samples of the surface of the cube [-0.5, 0.5]^3 with their face normals."""
    g = torch.Generator().manual_seed(seed)
    face = torch.randint(0, 6, (n,), generator=g)
    uv = torch.rand(n, 2, generator=g) - 0.5
    axis, sign = face // 2, (face % 2).float() * 2 - 1
    pts = torch.zeros(n, 3)
    nrm = torch.zeros(n, 3)
    for a in range(3):
        others = [b for b in range(3) if b != a]
        sel = axis == a
        pts[sel, a] = 0.5 * sign[sel]
        pts[sel, others[0]] = uv[sel, 0]
        pts[sel, others[1]] = uv[sel, 1]
        nrm[sel, a] = sign[sel]
    return pts, nrm


def test_crease_labels_against_scipy():
    pts, nrm = _cube_samples(3000)
    lab = E.crease_labels(pts, nrm)
    _, idx = cKDTree(pts.numpy()).query(pts.numpy(), k=E.CREASE["k"] + 1)
    cos = np.abs((nrm.numpy()[:, None] * nrm.numpy()[idx[:, 1:]]).sum(-1)).clip(max=1.0)
    worst = np.degrees(np.arccos(cos.min(-1)))
    ref = np.where(worst > E.CREASE["sharp_deg"], 1, np.where(worst < E.CREASE["flat_deg"], 0, -1))
    assert (lab.numpy() == ref).all()
    # on a cube every neighbour is on the same face or across a right-angled edge: creases sit near the edges
    edge_dist = (0.5 - pts.abs()).sort(dim=-1).values[:, 1]  # distance to the nearest edge
    assert float(edge_dist[lab == 1].max()) < 0.15 and float(edge_dist[lab == 0].min()) >= 0.0
    assert int((lab == 1).sum()) > 50 and int((lab == 0).sum()) > 1000
    with pytest.raises(ValueError, match="flat_deg"):
        E.crease_labels(pts, nrm, sharp_deg=3.0, flat_deg=5.0)


def test_sharp_edge_study_pairs_and_claims():
    pts, nrm = _cube_samples(800)
    lab = E.crease_labels(pts, nrm)
    perfect = E._crease_nc(pts, nrm, pts, nrm, lab)
    assert perfect == pytest.approx((1.0, 1.0))
    rounded = nrm.clone()
    rounded[lab == 1] = torch.nn.functional.normalize(rounded[lab == 1] + 0.8 * torch.sign(pts[lab == 1]), dim=-1)
    crease, flat = E._crease_nc(pts, rounded, pts, nrm, lab)
    assert flat == pytest.approx(1.0) and crease < 0.95  # normals smoothed at the edges only
    g = torch.Generator().manual_seed(0)
    per = [{"nc_flat": 0.95 + 0.01 * float(torch.rand(1, generator=g)), "nc_crease": 0.8} for _ in range(20)]
    study = E.sharp_edge_study({"m": {"per_shape": per}, "few": {"per_shape": per[:5]},
                                "points": {"per_shape": [{"nc_flat": math.nan, "nc_crease": math.nan}] * 20}})
    assert set(study["rows"]) == {"m", "few"} and "points" not in study["rows"]
    assert [c["id"] for c in study["claims"]] == ["crease-m"] and study["claims"][0]["verdict"].startswith("ahead")
    assert [x["id"] for x in study["left_out"]] == ["crease-few"]
    assert study["gap_claims"] == []  # no oracle row: no reference to compare the gaps with
    oracle = [{"nc_flat": 0.99, "nc_crease": 0.97 - 0.01 * float(torch.rand(1, generator=g))} for _ in range(20)]
    mean = {"n_points": 2048.0}
    res = {"oracle (2048 points)": {"per_shape": oracle, "mean": mean}, "m": {"per_shape": per, "mean": mean}}
    gap = E.sharp_edge_study(res)["gap_claims"]
    assert [c["id"] for c in gap] == ["crease-gap-m"] and gap[0]["verdict"].startswith("ahead")  # 0.15 against 0.025
    assert gap[0]["b"] == "oracle (2048 points)"


def test_timed_keeps_a_stored_fits_own_time():
    rec = E._timed(lambda: E.Reconstruction(torch.zeros(4, 3), fit_seconds=12.5))
    assert rec.seconds == 12.5
    fresh = E._timed(lambda: E.Reconstruction(torch.zeros(4, 3)))
    assert 0 <= fresh.seconds < 5
