"""Relaxing existence (chapter 08): relaxed_loss and existence_estimators against enumeration and quadrature."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate

from course_lib.experiments import primitives as E
from course_lib.models import primitives as P

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _terms(m: int = 5, n: int = 60, s: int = 8, consistency: str = "surface", seed: int = 0) -> P.PrimitiveTerms:
    g = torch.Generator().manual_seed(seed)
    ins = torch.rand(1, m, s, m, generator=g) < 0.25
    ins &= ~torch.eye(m, dtype=torch.bool)[None, :, None, :]   # a sample is never inside its own primitive
    share = torch.softmax(torch.randn(1, m, generator=g, dtype=torch.float64), -1) if consistency == "paschalidou" \
        else None
    return P.PrimitiveTerms(torch.rand(1, n, m, generator=g, dtype=torch.float64) * 0.3,
                            torch.rand(1, m, s, generator=g, dtype=torch.float64) * 0.1, ins,
                            torch.rand(1, m, generator=g, dtype=torch.float64) * 0.8 + 0.1, consistency, share)


@pytest.mark.parametrize("consistency", P.CONSISTENCIES)
def test_relaxed_loss_agrees_with_the_configuration_loss_on_every_hard_configuration(consistency):
    t = _terms(consistency=consistency)
    z = P.enumerate_configurations(5, dtype=torch.float64)
    hard = P.configuration_loss(t, z[:, None, :], empty=4.0, parsimony=1e-3)["loss"][:, 0]
    batch = P.PrimitiveTerms(*(x.expand(len(z), *x.shape[1:]) if isinstance(x, torch.Tensor) else x
                               for x in (t.coverage_dist, t.sample_dist, t.sample_inside, t.prob)),
                             t.consistency, None if t.area_share is None else t.area_share.expand(len(z), -1))
    relaxed = E.relaxed_loss(batch, z, empty=4.0, parsimony=1e-3)
    torch.testing.assert_close(relaxed, hard, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="shape of terms.prob"):
        E.relaxed_loss(t, torch.zeros(1, 4))


def test_straight_through_is_unbiased_and_reinforce_matches_its_exact_moments():
    t = _terms()
    out = E.existence_estimators(t, taus=(0.5,), mc_samples=50, parsimony=1e-3)
    rows = {r["estimator"]: r for r in out["rows"] if r["tau"] is None}
    g = torch.tensor(out["exact"])
    # straight-through on the multilinear relaxation: exact mean = exact gradient (to rounding), variance > 0
    st = rows["straight_through"]
    torch.testing.assert_close(torch.tensor(st["mean"]), g, rtol=1e-10, atol=1e-12)
    assert st["bias_norm2"] < 1e-20 * max(out["exact_norm2"], 1.0) and st["variance"] > 0
    # REINFORCE: the enumerated E[L s] is the exact gradient; its variances are exact_score_variance's
    z = P.enumerate_configurations(5, dtype=torch.float64)
    losses = P.configuration_loss(t, z[:, None, :], empty=4.0, parsimony=1e-3)["loss"][:, 0]
    mom = E.exact_score_variance(losses, t.prob[0])
    torch.testing.assert_close(torch.tensor(rows["reinforce"]["mean"]), g, rtol=1e-9, atol=1e-12)
    assert rows["reinforce"]["variance"] == pytest.approx(mom["variance_1"](0.0))
    assert rows["reinforce_baseline"]["variance"] == pytest.approx(mom["variance_1"](mom["expected_loss"]))
    assert rows["reinforce_baseline"]["variance"] < rows["reinforce"]["variance"]


def test_concrete_mean_matches_quadrature_for_one_primitive():
    # M = 1: the relaxed loss is linear, L(z) = A + B z, so the Concrete estimate is B dz~/dtheta and its mean is
    # B * integral over u of d/dtheta sigmoid((logit theta + logit u) / tau); the hard forward has the same
    # gradient (the loss's slope does not depend on z)
    t = _terms(m=1, n=40, s=4)
    theta, tau, n = float(t.prob[0, 0]), 0.5, 20000
    out = E.existence_estimators(t, taus=(tau,), mc_samples=n, parsimony=1e-3)
    slope = out["exact"][0]  # the exact gradient of a linear expected loss is its slope B

    def dz(u: float) -> float:
        x = (math.log(theta / (1 - theta)) + math.log(u / (1 - u))) / tau
        sig = 1 / (1 + math.exp(-x))
        return sig * (1 - sig) / tau / (theta * (1 - theta))

    expected = slope * integrate.quad(dz, 0, 1, limit=200)[0]
    for name in ("concrete", "concrete_hard"):
        r = next(r for r in out["rows"] if r["estimator"] == name)
        assert abs(r["mean"][0] - expected) < 4 * r["se"][0] + 1e-12, (name, r["mean"][0], expected)
    # and that mean is not the exact gradient: the relaxation is biased even for a linear loss
    assert abs(expected - slope) > 0.01 * abs(slope)


def test_existence_estimators_rejects_bad_input():
    t = _terms()
    two = P.PrimitiveTerms(t.coverage_dist.expand(2, -1, -1), t.sample_dist.expand(2, -1, -1),
                           t.sample_inside.expand(2, -1, -1, -1), t.prob.expand(2, -1))
    with pytest.raises(ValueError, match="B = 1"):
        E.existence_estimators(two)
    with pytest.raises(ValueError, match="max_m"):
        E.existence_estimators(t, max_m=3)
    with pytest.raises(ValueError, match="mc_samples"):
        E.existence_estimators(t, mc_samples=1)
    with pytest.raises(ValueError, match="taus"):
        E.existence_estimators(t, taus=(0.0,))


class _PartBoxes:
    """A stand-in network: primitive m is the bounding box of the m-th part (in ``order``) of each shape's target
    points; ``flip`` reverses that order on the shapes whose index is listed (an incoherent network there)."""

    def __init__(self, data: dict, order: list[str], flip: set[int] = frozenset()):
        from course_lib.data import make_shape

        self.n_primitives = len(order)
        self.boxes = {}
        for i in range(len(data["points"])):
            shape = make_shape(data["category"][i], int(data["seed"][i]))
            lab = shape.part_labels(data["target_points"][i])
            names = [shape.parts[int(k)] for k in lab]
            seq = order[::-1] if i in flip else order
            lo, hi = [], []
            for part in seq:
                pts = data["target_points"][i][[n == part for n in names]]
                lo.append(pts.min(0).values - 0.01)
                hi.append(pts.max(0).values + 0.01)
            self.boxes[float(data["points"][i].sum())] = (torch.stack(lo), torch.stack(hi))

    def __call__(self, points: torch.Tensor) -> P.Primitives:
        lo, hi = self.boxes[float(points[0].sum())]
        m = lo.shape[0]
        rot = torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(1, m, 4)
        return P.Primitives(size=((hi - lo) / 2)[None], eps=torch.ones(1, m, 2), rotation=rot,
                            translation=((hi + lo) / 2)[None], prob=torch.ones(1, m), kind="cuboid")


@pytest.mark.usefixtures("base_family")
def test_part_coherence_scores_a_coherent_network_above_chance_and_an_incoherent_one_lower():
    from course_lib.data import make_shape

    seeds = list(range(700, 706))
    data = {"category": ["mug"] * len(seeds), "seed": torch.tensor(seeds)}
    data["points"] = torch.stack([make_shape("mug", s).sample_surface(256, stream=0)[0] for s in seeds])
    data["target_points"] = torch.stack([make_shape("mug", s).sample_surface(600, stream=1)[0] for s in seeds])
    parts = sorted(set(make_shape("mug", seeds[0]).parts))
    assert len(parts) >= 2 and all(sorted(set(make_shape("mug", s).parts)) == parts for s in seeds)
    coherent = E.part_coherence(_PartBoxes(data, parts), data, profile="ci", min_points=5, permutations=20)
    assert float(coherent["agreement"].min()) == 1.0                 # every primitive on its own part everywhere
    assert float(coherent["chance"].mean()) < 0.8
    assert float(coherent["purity"].mean()) > 0.8
    flipped = E.part_coherence(_PartBoxes(data, parts, flip={0, 1, 2}), data, profile="ci", min_points=5,
                               permutations=20)
    assert float(flipped["agreement"].mean()) < float(coherent["agreement"].mean())
    assert {r["part"] for r in coherent["table"]} == set(parts)
