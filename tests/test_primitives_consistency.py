"""Chapter 08: the three consistency variants and Tulsiani's two-stage existence schedule.

* ``"surface"``: the course's variant (nearest target surface point, samples inside another existing primitive
  discarded);
* ``"volume"``: Tulsiani et al. 2017's consistency (distance to the target *solid*, 0 inside it);
* ``"paschalidou"``: Paschalidou et al. 2019's ``prim_to_pcl_loss`` (nearest target point, weighted by existence
  and by each primitive's share of the approximate surface area).

References are independent of the module: analytic targets (a sphere, ``max(|p| - r, 0)``; an axis-aligned cube,
``|max(|p| - h, 0)|``), numpy brute-force nearest neighbours and loops over primitives and samples, the
enumeration of the ``2^M`` existence configurations, and the closed-form area of a sphere.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from course_lib.experiments import primitives as E
from course_lib.models import primitives as P

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _prims(b=2, m=3, kind="superquadric", seed=0, dtype=torch.float64, spread=0.5):
    g = gen(seed)
    return P.Primitives(size=0.1 + 0.4 * torch.rand(b, m, 3, generator=g, dtype=dtype),
                        eps=0.3 + torch.rand(b, m, 2, generator=g, dtype=dtype),
                        rotation=P.random_quaternions((b, m), g, dtype=dtype),
                        translation=spread * torch.randn(b, m, 3, generator=g, dtype=dtype),
                        prob=torch.rand(b, m, generator=g, dtype=dtype), kind=kind)


def _target(b=2, n=50, seed=3):
    return torch.randn(b, n, 3, generator=gen(seed), dtype=torch.float64) * 0.6


def _sphere_sdf(r):
    return lambda pts: pts.norm(dim=-1) - r


S = 16


# --- the distances ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", P.KINDS)
def test_volume_distance_is_the_analytic_distance_to_a_solid_sphere(kind):
    prims, target, r = _prims(kind=kind), _target(), 0.55
    terms = P.primitive_terms(prims, target, S, generator=gen(7), consistency="volume", target_sdf=_sphere_sdf(r))
    samples = prims.sample_surface(S, gen(7)).numpy()                             # the same draws
    ref = np.maximum(np.linalg.norm(samples, axis=-1) - r, 0.0) ** 2               # 0 inside the sphere
    assert np.allclose(terms.sample_dist.numpy(), ref, atol=1e-12)
    assert (ref == 0).any() and (ref > 0).any()                                    # both cases occur
    assert not terms.sample_inside.any()                                           # Tulsiani discards nothing


def test_volume_distance_to_a_solid_cube():
    prims, target, h = _prims(kind="cuboid", seed=4), _target(), 0.4

    def box_sdf(p):  # exact outside an axis-aligned cube of half-side h (negative inside)
        q = p.abs() - h
        return q.clamp_min(0).norm(dim=-1) + q.amax(-1).clamp_max(0)

    terms = P.primitive_terms(prims, target, S, generator=gen(2), consistency="volume", target_sdf=box_sdf)
    samples = prims.sample_surface(S, gen(2)).numpy()
    ref = np.zeros(samples.shape[:-1])
    for idx in np.ndindex(*samples.shape[:-1]):  # the nearest point of the solid cube is the clamp
        p = samples[idx]
        ref[idx] = np.sum((p - np.clip(p, -h, h)) ** 2)
    assert np.allclose(terms.sample_dist.numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("consistency", ["surface", "paschalidou"])
def test_point_variants_use_the_brute_force_nearest_target_point(consistency):
    prims, target = _prims(), _target()
    terms = P.primitive_terms(prims, target, S, generator=gen(5), consistency=consistency)
    samples = prims.sample_surface(S, gen(5)).numpy()
    t = target.numpy()
    ref = np.array([[[min(np.sum((samples[b, m, s] - x) ** 2) for x in t[b]) for s in range(S)]
                     for m in range(samples.shape[1])] for b in range(samples.shape[0])])
    assert np.allclose(terms.sample_dist.numpy(), ref, atol=1e-10)
    if consistency == "paschalidou":
        assert not terms.sample_inside.any()
        assert torch.allclose(terms.area_share.sum(-1), torch.ones(2, dtype=torch.float64))
    else:
        assert terms.area_share is None


def test_ellipsoid_area_is_exact_for_a_sphere_and_close_for_an_ellipsoid():
    assert float(P.ellipsoid_area(torch.tensor([0.7, 0.7, 0.7], dtype=torch.float64))) == pytest.approx(4 * math.pi * 0.49, rel=1e-12)
    # an ellipsoid's area by numerical integration of the parametric surface (independent of Thomsen's formula)
    a, b, c = 1.0, 0.6, 0.3
    th, ph = np.meshgrid(np.linspace(0, np.pi, 801), np.linspace(0, 2 * np.pi, 1601), indexing="ij")
    st, ct, sp, cp = np.sin(th), np.cos(th), np.sin(ph), np.cos(ph)
    dth = np.stack([a * ct * cp, b * ct * sp, -c * st], -1)
    dph = np.stack([-a * st * sp, b * st * cp, np.zeros_like(st)], -1)
    area = np.trapezoid(np.trapezoid(np.linalg.norm(np.cross(dth, dph), axis=-1), ph[0], axis=1), th[:, 0])
    assert float(P.ellipsoid_area(torch.tensor([a, b, c], dtype=torch.float64))) == pytest.approx(area, rel=0.012)


# --- the consistency term ----------------------------------------------------------------------------
def _reference_consistency(terms, z, sizes):
    """Loops over shapes, primitives and samples: the three definitions written out."""
    d = terms.sample_dist.numpy()
    ins = terms.sample_inside.numpy()
    b_, m_, s_ = d.shape
    out = np.zeros(b_)
    for b in range(b_):
        area = None
        if terms.consistency == "paschalidou":
            area = np.array([4 * np.pi * (((x * y) ** 1.6 + (x * w) ** 1.6 + (y * w) ** 1.6) / 3) ** (1 / 1.6)
                             for x, y, w in sizes[b]])
        for m in range(m_):
            if not z[b, m]:
                continue
            kept = []
            for s in range(s_):
                if terms.consistency == "surface" and any(z[b, k] and ins[b, m, s, k] for k in range(m_) if k != m):
                    kept.append(0.0)  # discarded: lies inside another existing primitive
                else:
                    kept.append(d[b, m, s])
            w = area[m] / area.sum() if area is not None else 1.0
            out[b] += w * sum(kept) / s_
    return out


@pytest.mark.parametrize("consistency", P.CONSISTENCIES)
def test_consistency_of_every_configuration_matches_the_loops(consistency):
    prims = _prims(m=4, seed=11, spread=0.2)  # close primitives: samples inside others occur
    kw = {"target_sdf": _sphere_sdf(0.5)} if consistency == "volume" else {}
    terms = P.primitive_terms(prims, _target(), S, generator=gen(1), consistency=consistency, **kw)
    if consistency == "surface":
        assert terms.sample_inside.any()
    for bits in itertools.product((0, 1), repeat=4):
        z = torch.tensor([bits, bits[::-1]], dtype=torch.float64)
        got = P.configuration_loss(terms, z[None])["consistency"][0]
        assert np.allclose(got.numpy(), _reference_consistency(terms, z.numpy(), prims.size.numpy()), atol=1e-12)


@pytest.mark.parametrize("consistency", P.CONSISTENCIES)
def test_expected_loss_is_the_enumerated_expectation_for_every_variant(consistency):
    prims = _prims(m=4, seed=12, spread=0.2)
    kw = {"target_sdf": _sphere_sdf(0.5)} if consistency == "volume" else {}
    terms = P.primitive_terms(prims, _target(), S, generator=gen(1), consistency=consistency, **kw)
    exact = P.expected_loss(terms, empty=4.0, parsimony=0.01)["loss"]
    brute = P._all_configurations_loss(terms, empty=4.0, parsimony=0.01)
    assert torch.allclose(exact, brute, atol=1e-12)


def test_volume_is_free_inside_the_target_and_surface_is_not():
    # a small primitive deep inside a large target sphere: every sample is inside the solid (Tulsiani: cost 0),
    # but far from the target's surface points (the course's variant: cost > 0)
    prims = P.Primitives(size=torch.full((1, 1, 3), 0.1, dtype=torch.float64), eps=torch.ones(1, 1, 2, dtype=torch.float64),
                         rotation=torch.tensor([[[1.0, 0, 0, 0]]], dtype=torch.float64),
                         translation=torch.zeros(1, 1, 3, dtype=torch.float64), prob=torch.ones(1, 1, dtype=torch.float64))
    sphere = torch.nn.functional.normalize(torch.randn(1, 200, 3, generator=gen(0), dtype=torch.float64), dim=-1) * 0.8
    vol = P.primitive_terms(prims, sphere, S, generator=gen(0), consistency="volume", target_sdf=_sphere_sdf(0.8))
    surf = P.primitive_terms(prims, sphere, S, generator=gen(0), consistency="surface")
    assert float(vol.sample_dist.abs().max()) == 0.0
    assert float(surf.sample_dist.min()) > 0.5 ** 2


def test_volume_gradient_pulls_an_outside_primitive_towards_the_target():
    t = torch.tensor([[[1.5, 0.0, 0.0]]], dtype=torch.float64, requires_grad=True)
    prims = P.Primitives(size=torch.full((1, 1, 3), 0.2, dtype=torch.float64), eps=torch.ones(1, 1, 2, dtype=torch.float64),
                         rotation=torch.tensor([[[1.0, 0, 0, 0]]], dtype=torch.float64), translation=t,
                         prob=torch.ones(1, 1, dtype=torch.float64))
    terms = P.primitive_terms(prims, _target(b=1), S, generator=gen(0), consistency="volume",
                              target_sdf=_sphere_sdf(0.5))
    P.expected_loss(terms)["consistency"].sum().backward()
    assert float(t.grad[0, 0, 0]) > 0 and abs(float(t.grad[0, 0, 1])) < float(t.grad[0, 0, 0])


def test_primitive_terms_rejects_inconsistent_arguments():
    prims, target = _prims(), _target()
    with pytest.raises(ValueError, match="consistency must be one of"):
        P.primitive_terms(prims, target, S, consistency="tulsiani")
    with pytest.raises(ValueError, match="needs target_sdf"):
        P.primitive_terms(prims, target, S, consistency="volume")
    with pytest.raises(ValueError, match="only by consistency='volume'"):
        P.primitive_terms(prims, target, S, target_sdf=_sphere_sdf(0.5))
    with pytest.raises(ValueError, match=r"\(B, P\)"):
        P.primitive_terms(prims, target, S, consistency="volume", target_sdf=lambda p: p.norm(dim=-1)[0])


# --- the ShapeNet-lite signed distance --------------------------------------------------------------
def test_shapes_sdf_matches_each_shape():
    from course_lib.data import make_shape

    f = E.shapes_sdf(["chair", "lamp"], torch.tensor([1, 2]))
    pts = torch.randn(2, 30, 3, generator=gen(0))
    got = f(pts)
    assert got.shape == (2, 30)
    assert torch.allclose(got[0], make_shape("chair", 1).sdf(pts[0]))
    assert torch.allclose(got[1], make_shape("lamp", 2).sdf(pts[1]))
    with pytest.raises(ValueError, match="seeds"):
        E.shapes_sdf(["chair"], [1, 2])


# --- the two-stage schedule -------------------------------------------------------------------------
def _tiny_batch():
    g = gen(0)
    x = torch.randn(2, 64, 3, generator=g) * 0.5
    return {"input": x, "target": x.clone(), "category": ["chair", "table"], "seed": torch.tensor([3, 4])}


@pytest.mark.parametrize("method", E.METHODS)
def test_two_stage_freezes_the_existence_head_in_stage_1_only(method):
    torch.manual_seed(0)
    model = E.build_model("cuboid", "ci")
    loss = E.PrimitiveLoss(method, n_samples=8, stage1_steps=3, parsimony=0.1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = _tiny_batch()
    head0 = [p.detach().clone() for p in model.logit.parameters()]
    size0 = model.size.weight.detach().clone()
    model.train()
    for _ in range(3):
        assert loss.in_stage1
        out = loss(model, batch)
        opt.zero_grad()
        out["loss"].backward()
        assert all(p.grad is None or float(p.grad.abs().max()) == 0.0 for p in model.logit.parameters())
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(head0, model.logit.parameters()))   # no update in stage 1
    assert not torch.equal(size0, model.size.weight)                                # the geometry learned
    assert not loss.in_stage1
    out = loss(model, batch)
    opt.zero_grad()
    out["loss"].backward()
    opt.step()
    assert not all(torch.equal(a, b) for a, b in zip(head0, model.logit.parameters()))  # stage 2 learns them


def test_two_stage_has_no_parsimony_in_stage_1():
    torch.manual_seed(0)
    model = E.build_model("cuboid", "ci").train()
    batch = _tiny_batch()
    with_p = E.PrimitiveLoss("reorder", n_samples=8, stage1_steps=1, parsimony=5.0, seed=1)
    without = E.PrimitiveLoss("reorder", n_samples=8, parsimony=0.0, seed=1)
    assert float(with_p(model, batch)["loss"].detach()) == pytest.approx(float(without(model, batch)["loss"]), rel=1e-6)
    # stage 2: the parsimony term is back (E[count] * 5 added)
    a, b = with_p(model, batch), without(model, batch)
    assert float(a["loss"] - b["loss"]) == pytest.approx(5.0 * float(a["count"]), rel=1e-4)


def test_defaults_keep_the_course_signature():
    loss = E.PrimitiveLoss("reorder")
    assert "consistency" not in loss.describe() and "stage1" not in loss.describe()
    assert "consistency=volume" in E.PrimitiveLoss("reorder", consistency="volume").describe()
    with pytest.raises(ValueError, match="consistency"):
        E.PrimitiveLoss("reorder", consistency="nope")


def test_train_primitives_variants_run_and_two_stage_picks_a_stage_2_epoch():
    tr, va = E.primitive_data("train", "ci"), E.primitive_data("val", "ci")
    for c in ("volume", "paschalidou"):
        model, hist = E.train_primitives("cuboid", "reorder", tr, val=va, profile="ci", epochs=1, retrain=True,
                                         progress=False, live_plot=False, consistency=c)
        assert math.isfinite(hist.val[0]["val_expected"])
    model, hist = E.train_primitives("cuboid", "reorder", tr, val=va, profile="ci", epochs=3, retrain=True,
                                     progress=False, live_plot=False, existence_schedule="two_stage")
    stage2 = [v["val_expected_stage2"] for v in hist.val]
    assert stage2[0] == math.inf and all(math.isfinite(x) for x in stage2[1:])
    assert hist.best_epoch >= 1
    with pytest.raises(ValueError, match="existence_schedule"):
        E.train_primitives("cuboid", "reorder", tr, profile="ci", existence_schedule="three_stage")


# --- the benchmark's records --------------------------------------------------------------------------
def test_benchmark_claims_and_report_from_fake_runs():
    import importlib.util
    from pathlib import Path

    from course_lib.experiments.protocol import budget, validate_records

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "primitives_consistency.py"
    spec = importlib.util.spec_from_file_location("bench_primitives_consistency", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    bud = budget(steps=10, examples=160, seconds=1.0, params=100)
    runs = []
    for i, (cons, sched) in enumerate(mod.ROWS):
        for seed in (0, 1, 2):
            runs.append({"consistency": cons, "schedule": sched, "seed": seed, "train_s": 1.0, "epochs": 2,
                         "best_epoch": 1, "budget": bud, "chamfer": 10.0 + i + 0.1 * seed, "iou": 0.5 - 0.01 * i,
                         "used": 4.0})
    summary = [{"consistency": c, "schedule": s, "label": mod.LABELS[c, s], "seeds": 3, "budget": bud,
                "chamfer": 10.0, "chamfer_sd": 0.1, "iou": 0.5, "iou_sd": 0.0, "used": 4.0, "used_sd": 0.0,
                "train_s": 1.0, "train_s_sd": 0.0} for c, s in mod.ROWS]
    training = {"runs": runs, "summary": summary}
    claims = mod._claims(training)
    assert [c["id"] for c in claims] == [c[0] for c in mod.CLAIMS]
    by = {c["id"]: c for c in claims}
    assert by["volume_vs_surface_cd"]["verdict"] == "behind"       # +1 on Chamfer in every seed (lower is better)
    assert by["paschalidou_vs_surface_iou"]["verdict"] == "behind"  # -0.02 IoU in every seed
    validate_records({"claims": claims})
    data = {"training": training, "claims": claims, "steps": 10, "goals": []}
    text = mod.report(data, {"iou_points": 10, "seeds": (0, 1, 2), "n_primitives": 8, "categories": ("chair",)})
    assert "two-stage schedule" in text and "volume" in text
