"""The experiments of chapter 08 (primitives), shared by the lecture, the lab and the benchmark.

Introduced in ``lectures/08_primitives.ipynb``.

* :func:`primitive_data`: ShapeNet-lite input and target points of the chapter's categories;
* :func:`build_model`, :class:`PrimitiveLoss`, :func:`train_primitives`: a PointNet (chapter 02)
  predicting ``M`` cuboids or superquadrics, trained with the exact expected loss (reordering
  trick) or with REINFORCE, through :func:`course_lib.train.train_or_load`;
* :func:`evaluate_primitives`: Chamfer distance of the union's surface to the target, IoU of the
  union against the true occupancy, number of primitives used, on held-out shapes;
* :func:`exact_score_variance`, :func:`exact_gradient_variance`: the **exact** variance of
  REINFORCE's gradient of the existence probabilities, by enumerating the ``2^M`` configurations
  (one sample, then ``1/K`` analytically for ``K`` i.i.d. samples), without a baseline, with a
  fixed one and with the moving average;
* :func:`gradient_variance`: the same variance *sampled* (repeated estimates), with a bias test;
* :func:`relaxed_loss`, :func:`existence_estimators`: relaxing existence -- the straight-through and binary
  Concrete estimators beside REINFORCE, their bias and variance against the exact gradient;
* :func:`run_budget`: one training run's budget (steps, examples, seconds, parameters);
* :func:`enumeration_cost`: brute force over ``2^M`` configurations against the reordering trick;
* :func:`smoke`: the GPU smoke hook (``benchmarks/gpu_smoke.py``).

Every size comes from the ``ch08.*`` block of :mod:`course_lib.config`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from course_lib import config
from course_lib.experiments.common import require_exact_shapes
from course_lib.metrics import describe_chamfer
from course_lib.models import primitives as P

__all__ = [
    "CD_CONVENTION",
    "METHODS",
    "VARIANTS",
    "SCHEDULES",
    "STAGE1_FRACTION",
    "shapes_sdf",
    "primitive_data",
    "build_model",
    "PrimitiveLoss",
    "train_primitives",
    "predict_primitives",
    "evaluate_primitives",
    "MIN_EVENTS",
    "EXACT_MAX_M",
    "exact_score_variance",
    "exact_gradient_variance",
    "gradient_variance",
    "relaxed_loss",
    "existence_estimators",
    "part_coherence",
    "run_budget",
    "enumeration_cost",
    "sampling_uniformity",
    "exact_size_drift",
    "smoke",
]

CD_CONVENTION = (describe_chamfer("atlasnet") + "; between surface samples of the union of existing primitives "
                 "(prob > 0.5; samples inside another existing primitive removed) and the target points")
"""The convention of every Chamfer number of chapter 08."""

METHODS = ("reorder", "reinforce")
"""How the expectation over existence is handled: exactly (reordering trick) or by REINFORCE."""
VARIANTS = (("superquadric", "reorder"), ("superquadric", "reinforce"), ("cuboid", "reorder"))
"""The chapter's trained variants ``(kind, method)``: the lecture, the benchmarks and the pretraining train these."""

SCHEDULES = ("joint", "two_stage")
"""How the existence probabilities train: with everything from the first step (``"joint"``, the course's default),
or Tulsiani's two stages (``"two_stage"``): first the existence head gets no gradient and the parsimony term is off
(their stage-1 script scales the probability head's learning rate by 1e-4 and sets the parsimony reward
``nullReward`` to 0), then everything learns with the parsimony term (their stage 2: probability learning rate x0.2,
``nullReward`` 8e-5, the shape head's learning rate x0.5; those learning-rate factors are not reproduced here)."""

STAGE1_FRACTION = 0.4
"""The share of the training steps spent in stage 1 of ``"two_stage"``: Tulsiani's chair scripts train 20,000
iterations in stage 1 and 30,000 in stage 2."""

MIN_EVENTS = 30.0
""":func:`gradient_variance` tests a component for bias only when its rarer outcome (present or
absent) is expected at least this many times over all the draws; with 10 the sample standard
error was measured to be too small (heavy tails), see the comment in :func:`gradient_variance`."""

EXACT_MAX_M = 16
"""The most primitives :func:`exact_gradient_variance` enumerates (``2^16`` configurations); the
``gpu`` profile's ``ch08.n_primitives`` is above it, and there only the sampled variance is measured."""


def _sz(profile: str | None) -> Mapping[str, Any]:
    return config.sizes(profile=profile, prefix="ch08.")


def primitive_data(split: str, profile: str | None = None, categories: Sequence[str] | None = None,
                   shapes_per_category: int | None = None, *, dataset: str | None = None,
                   root: str | None = None) -> dict[str, Any]:
    """Input (``points``) and independent target (``target_points``) samples of one split.

    Introduced in ``lectures/08_primitives.ipynb``.  Sizes from ``ch08.*``
    (``train_per_category``, ``val_per_category`` or ``test_per_category``).  ``dataset`` / ``root`` (or
    ``COURSE_DATASET`` and ``COURSE_MODELNET_DIR`` / ``COURSE_SHAPENET_DIR``) read a real dataset's meshes
    instead (:class:`course_lib.data.real_split.RealShapes`); its rows also carry ``path``, ``manifest`` and
    ``dataset``, which :func:`train_primitives` puts in the checkpoint's name.  Training needs only the points;
    :func:`evaluate_primitives`' IoU needs ShapeNet-lite's exact occupancy and refuses real rows.
    """
    from course_lib.experiments.common import load_split, tag_dataset

    sz = _sz(profile)
    n = shapes_per_category or sz[{"train": "train_per_category", "val": "val_per_category"}.get(split,
                                                                                                "test_per_category")]
    cats = tuple(categories or sz["categories"])
    out = load_split(split, ("points", "target_points"), categories=cats, shapes_per_category=n, profile=profile,
                     n_points=sz["n_points"], n_target=sz["n_points"], dataset=dataset, root=root)
    return tag_dataset(out, dataset, cats, split)


def build_model(kind: str = "superquadric", profile: str | None = None, n_primitives: int | None = None) -> P.PrimitiveNet:
    """A :class:`course_lib.models.primitives.PrimitiveNet` with a PointNet encoder sized by ``ch08.*``.

    Introduced in ``lectures/08_primitives.ipynb``.
    """
    from course_lib.models import PointNet

    sz = _sz(profile)
    enc = sz["encoder"]
    latent = sz["latent_dim"]
    encoder = PointNet(in_dim=3, feat_dim=enc["feat_dim"], hidden=enc["hidden"], out_dim=latent)
    for mod in encoder.modules():  # short CPU runs: let the eval-mode BatchNorm statistics follow faster
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.momentum = 0.3
    return P.PrimitiveNet(encoder, latent, n_primitives or sz["n_primitives"], kind, hidden=max(64, latent))


def shapes_sdf(categories: Sequence[str], seeds: Sequence[int] | Tensor) -> Any:
    """The ``target_sdf`` of :func:`course_lib.models.primitives.primitive_terms` for ShapeNet-lite shapes.

    Introduced in ``lectures/08_primitives.ipynb`` (Tulsiani's consistency, ``consistency="volume"``).  Returns a
    function mapping points ``(B, P, 3)`` to the signed distances ``(B, P)`` of shape ``b`` =
    :func:`course_lib.data.make_shape` ``(categories[b], seeds[b])`` at its points (exact outside unions of exact
    parts, a lower bound near ellipsoids: see :mod:`course_lib.data.shapes`), differentiable in the points.
    """
    from course_lib.data import make_shape

    seeds = [int(x) for x in (seeds.tolist() if isinstance(seeds, Tensor) else seeds)]
    if len(seeds) != len(categories):
        raise ValueError(f"{len(categories)} categories but {len(seeds)} seeds")
    shapes = [make_shape(c, x) for c, x in zip(categories, seeds)]

    def sdf(points: Tensor) -> Tensor:
        if points.dim() != 3 or points.shape[0] != len(shapes):
            raise ValueError(f"points must be (B={len(shapes)}, P, 3), got {tuple(points.shape)}")
        return torch.stack([sh.sdf(p).to(points.dtype) for sh, p in zip(shapes, points)])

    return sdf


def _target_sdf(consistency: str, batch: Mapping[str, Any]) -> Any:
    if consistency != "volume":
        return None
    if "category" not in batch or "seed" not in batch:
        raise KeyError("consistency='volume' needs the batch's 'category' and 'seed' (ShapeNet-lite rows) to rebuild "
                       "each target's signed distance")
    return shapes_sdf(batch["category"], batch["seed"])


class PrimitiveLoss:
    """``loss_fn(model, batch)`` for :func:`course_lib.train.fit`: the expected loss or its REINFORCE surrogate.

    Introduced in ``lectures/08_primitives.ipynb``.  Both methods compute the same terms
    (:func:`course_lib.models.primitives.primitive_terms`) and report the same quantity,
    ``expected`` (the exact expected loss, detached), so that their curves compare.
    ``method="reorder"`` back-propagates the exact expectation;  ``"reinforce"`` the surrogate
    of :func:`course_lib.models.primitives.reinforce_loss` with a moving-average baseline
    (kept in this object across steps).  ``consistency`` (:data:`course_lib.models.primitives.CONSISTENCIES`): what
    a primitive's surface sample costs (``"volume"`` needs the batch's ``category`` and ``seed``).
    ``stage1_steps``: Tulsiani's stage 1 (:data:`SCHEDULES`) for the first ``stage1_steps`` calls in training mode:
    the existence probabilities enter the loss detached (the existence head gets no gradient) and the parsimony
    weight is 0; this object counts its training calls (``steps``).
    """

    def __init__(self, method: str = "reorder", *, n_samples: int = 48, empty: float = 4.0, parsimony: float = 1e-3,
                 reinforce_samples: int = 1, momentum: float = 0.9, seed: int = 0, consistency: str = "surface",
                 stage1_steps: int = 0) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if consistency not in P.CONSISTENCIES:
            raise ValueError(f"consistency must be one of {P.CONSISTENCIES}, got {consistency!r}")
        if int(stage1_steps) < 0:
            raise ValueError(f"stage1_steps must be >= 0, got {stage1_steps}")
        self.method, self.n_samples, self.empty, self.parsimony = method, int(n_samples), float(empty), float(parsimony)
        self.reinforce_samples, self.momentum, self.seed = int(reinforce_samples), float(momentum), int(seed)
        self.consistency, self.stage1_steps, self.steps = consistency, int(stage1_steps), 0
        self.baseline = P.MovingAverageBaseline(momentum)
        self.generator = torch.Generator().manual_seed(self.seed)

    def describe(self) -> str:
        extra = ""  # the defaults describe themselves as before, so that existing checkpoints keep their signature
        if self.consistency != "surface":
            extra += f", consistency={self.consistency}"
        if self.stage1_steps:
            extra += f", stage1_steps={self.stage1_steps}"
        return (f"PrimitiveLoss(method={self.method}, n_samples={self.n_samples}, empty={self.empty}, "
                f"parsimony={self.parsimony}, reinforce_samples={self.reinforce_samples}, momentum={self.momentum}, "
                f"seed={self.seed}{extra})")

    @property
    def in_stage1(self) -> bool:
        """Whether the next training step is in Tulsiani's stage 1 (existence frozen, no parsimony)."""
        return self.steps < self.stage1_steps

    def terms(self, model: Any, batch: Mapping[str, Tensor], *, freeze_existence: bool = False) -> P.PrimitiveTerms:
        prims = model(batch["input"])
        if freeze_existence:
            prims = P.Primitives(prims.size, prims.eps, prims.rotation, prims.translation, prims.prob.detach(),
                                 prims.kind)
        return P.primitive_terms(prims, batch["target"], self.n_samples, generator=self.generator,
                                 consistency=self.consistency, target_sdf=_target_sdf(self.consistency, batch))

    def __call__(self, model: Any, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        training = bool(getattr(model, "training", True))
        stage1 = training and self.in_stage1
        if training:
            self.steps += 1
        parsimony = 0.0 if stage1 else self.parsimony
        terms = self.terms(model, batch, freeze_existence=stage1)
        exact = P.expected_loss(terms, empty=self.empty, parsimony=parsimony)
        out = {"expected": exact["loss"].mean().detach(), "coverage": exact["coverage"].mean().detach(),
               "consistency": exact["consistency"].mean().detach(), "count": exact["count"].mean().detach()}
        if self.method == "reorder":
            out["loss"] = exact["loss"].mean()
        else:
            rl = P.reinforce_loss(terms, self.reinforce_samples, self.baseline, empty=self.empty,
                                  parsimony=parsimony, generator=self.generator)
            out["loss"] = rl["loss"]  # in stage 1 prob is detached: only the pathwise gradient reaches the model
            out["sampled"] = rl["value"]
        return out


def _spec(kind: str, method: str, sz: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    from course_lib.experiments.common import real_dataset

    spec = {"kind": kind, "method": method, "categories": list(data.get("categories", ())),
            "shapes": int(len(data["points"])), "n_points": int(data["points"].shape[1]),
            "n_primitives": sz["n_primitives"], "n_samples": sz["n_samples"]}
    real = real_dataset(data)
    if real is not None:  # a real dataset's models never share a file with ShapeNet-lite's
        spec["dataset"] = real
    return spec


def train_primitives(kind: str, method: str, data: Mapping[str, Any], *, val: Mapping[str, Any] | None = None,
                     seed: int = 0, profile: str | None = None, epochs: int | None = None, retrain: bool = False,
                     progress: bool = True, live_plot: Any = "auto", consistency: str = "surface",
                     existence_schedule: str = "joint", tag: str | None = None) -> tuple[P.PrimitiveNet, Any]:
    """Train (or load) a primitive network: ``kind`` (cuboid / superquadric), ``method`` (reorder / reinforce).

    Introduced in ``lectures/08_primitives.ipynb``.  Adam, ``ch08.lr``, ``ch08.epochs`` epochs of
    :class:`course_lib.experiments.common.Batches` over ``data`` (:func:`primitive_data`); the
    checkpoint name records kind, method, seed and the data.  With ``val`` (another split of
    :func:`primitive_data`) the exact expected loss on it is measured after every epoch and the
    best epoch's weights are kept, for both methods alike (without it, the last epoch's weights:
    REINFORCE's training "loss" is a surrogate whose value means nothing).  Returns
    ``(model, history)``; ``history.train_extra[e]["expected"]`` is the exact expected loss of
    epoch ``e`` for both methods.  Rows of a real dataset (:func:`primitive_data` with ``dataset=``, or
    ``COURSE_DATASET``) are trained under a checkpoint named after it (``ch08_<kind>_<method>_s<seed>-<dataset>-...``).

    ``consistency`` (:data:`course_lib.models.primitives.CONSISTENCIES`): ``"surface"`` (the course's, default),
    ``"volume"`` (Tulsiani's: ShapeNet-lite rows only, it rebuilds each target's signed distance) or
    ``"paschalidou"``; the validation loss uses the same variant.  ``existence_schedule`` (:data:`SCHEDULES`):
    ``"joint"`` (default) or ``"two_stage"``: the first :data:`STAGE1_FRACTION` of the steps with the existence
    head frozen and no parsimony, then everything; the best epoch is then chosen among the stage-2 epochs only
    (the stage-1 epochs score ``inf`` on val: their probabilities never learned).  The defaults keep the
    checkpoint names and signatures of the course's models; other settings add ``_c<consistency>`` /
    ``_two_stage`` to the name.  ``tag`` (a benchmark's name) adds ``_<tag>`` to the name and the spec, so that a run
    with another budget never overwrites the chapter's checkpoint of the same settings.
    """
    from course_lib import train
    from course_lib.experiments.common import Batches, dataset_checkpoint_name

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if consistency not in P.CONSISTENCIES:
        raise ValueError(f"consistency must be one of {P.CONSISTENCIES}, got {consistency!r}")
    if existence_schedule not in SCHEDULES:
        raise ValueError(f"existence_schedule must be one of {SCHEDULES}, got {existence_schedule!r}")
    if consistency == "volume":
        require_exact_shapes("train_primitives(consistency='volume') (chapter 08: the target's signed distance)",
                             data)
    sz = _sz(profile)
    config.seed_everything(seed)
    model = build_model(kind, profile)
    keys = ["points", "target_points"] + (["category", "seed"] if consistency == "volume" else [])
    loader = Batches(data, sz["batch_size"], keys=keys,
                     rename={"points": "input", "target_points": "target"}, seed=seed)
    n_epochs = epochs if epochs is not None else sz["epochs"]
    stage1_steps = 0
    if existence_schedule == "two_stage":
        stage1_epochs = max(1, int(round(STAGE1_FRACTION * n_epochs)))
        if stage1_epochs >= n_epochs:
            raise ValueError(f"two_stage needs at least 2 epochs (stage 1 takes {stage1_epochs} of {n_epochs})")
        stage1_steps = stage1_epochs * len(loader)
    loss = PrimitiveLoss(method, n_samples=sz["n_samples"], empty=sz["empty"], parsimony=sz["parsimony"],
                         reinforce_samples=sz["reinforce_samples"], seed=seed, consistency=consistency,
                         stage1_steps=stage1_steps)
    spec = _spec(kind, method, sz, data)
    name = f"ch08_{kind}_{method}_s{seed}"
    if consistency != "surface":
        spec["consistency"] = consistency
        name += f"_c{consistency}"
    if existence_schedule != "joint":
        spec["existence_schedule"], spec["stage1_steps"] = existence_schedule, stage1_steps
        name += f"_{existence_schedule}"
    if tag:
        spec["tag"] = str(tag)
        name += f"_{tag}"
    extra: dict[str, Any] = {}
    if val is not None:
        spec["val_shapes"] = int(len(val["points"]))
        extra = {"val_loader": Batches(val, sz["batch_size"], keys=keys,
                                       rename={"points": "input", "target_points": "target"}, shuffle=False),
                 "val_fn": ValExpected(sz["n_samples"], sz["empty"], sz["parsimony"], consistency=consistency,
                                       stage_of=loss if stage1_steps else None),
                 "monitor": "val_expected" if not stage1_steps else "val_expected_stage2"}
    path = train.checkpoint_path(dataset_checkpoint_name(name, data), spec=spec, profile=profile)
    hist = train.train_or_load(model, path, spec=spec, retrain=retrain, train_loader=loader, loss_fn=loss,
                               epochs=n_epochs, lr=sz["lr"], seed=seed, progress=progress, live_plot=live_plot,
                               **extra)
    return model.eval(), hist


class ValExpected:
    """``val_fn`` of :func:`train_primitives`: the exact expected loss (``val_expected``) and its terms.

    ``consistency``: the variant of the training loss.  ``stage_of``: the :class:`PrimitiveLoss` of a two-stage
    run; then ``val_expected_stage2`` is ``val_expected`` once stage 1 is over, ``inf`` before (the monitor that
    picks the best epoch among the stage-2 epochs).
    """

    def __init__(self, n_samples: int, empty: float, parsimony: float, *, consistency: str = "surface",
                 stage_of: PrimitiveLoss | None = None) -> None:
        self.n_samples, self.empty, self.parsimony = int(n_samples), float(empty), float(parsimony)
        self.consistency, self.stage_of = consistency, stage_of

    def describe(self) -> str:
        extra = "" if self.consistency == "surface" else f", consistency={self.consistency}"
        if self.stage_of is not None:
            extra += ", best epoch among stage 2's"
        return f"ValExpected(n_samples={self.n_samples}, empty={self.empty}, parsimony={self.parsimony}{extra})"

    def __call__(self, model: Any, batch: Mapping[str, Tensor]) -> dict[str, float]:
        g = torch.Generator().manual_seed(0)
        terms = P.primitive_terms(model(batch["input"]), batch["target"], self.n_samples, generator=g,
                                  consistency=self.consistency, target_sdf=_target_sdf(self.consistency, batch))
        out = P.expected_loss(terms, empty=self.empty, parsimony=self.parsimony)
        res = {"val_expected": float(out["loss"].mean()), "val_coverage": float(out["coverage"].mean()),
               "val_consistency": float(out["consistency"].mean()), "val_count": float(out["count"].mean())}
        if self.stage_of is not None:
            # an epoch counts as stage 2 once at least one of its steps was (the last stage-1 epoch does not)
            in_stage2 = self.stage_of.steps > self.stage_of.stage1_steps
            res["val_expected_stage2"] = res["val_expected"] if in_stage2 else math.inf
        return res


@torch.no_grad()
def predict_primitives(model: P.PrimitiveNet, inputs: Tensor, batch_size: int = 32) -> P.Primitives:
    """Eval-mode primitives for ``inputs`` ``(S, N, 3)``, concatenated (on the CPU)."""
    model.eval()
    dev = next(model.parameters()).device
    parts = [model(inputs[i:i + batch_size].to(dev)) for i in range(0, len(inputs), batch_size)]
    cat = {k: torch.cat([getattr(p, k) for p in parts]).cpu() for k in ("size", "eps", "rotation", "translation",
                                                                        "prob")}
    return P.Primitives(**cat, kind=model.kind)


def _ensure_one(prims: P.Primitives, threshold: float) -> P.Primitives:
    """Primitives whose most probable member counts as existing when none passes ``threshold``."""
    prob = prims.prob.clone()
    none = (prob <= threshold).all(-1)
    if bool(none.any()):
        top = prob.argmax(-1)
        prob[none, top[none]] = 1.0
    return P.Primitives(prims.size, prims.eps, prims.rotation, prims.translation, prob, prims.kind)


@torch.no_grad()
def evaluate_primitives(model: P.PrimitiveNet, data: Mapping[str, Any], *, profile: str | None = None,
                        threshold: float = 0.5, seed: int = 0, iou: bool = True) -> dict[str, Tensor]:
    """Per-shape metrics on ``data`` (:func:`primitive_data`): ``chamfer``, ``iou``, ``used``, ``expected``.

    Introduced in ``lectures/08_primitives.ipynb``.  ``chamfer``: :data:`CD_CONVENTION`;
    ``iou``: :func:`course_lib.metrics.volumetric_iou` of the union of existing primitives
    against the true occupancy at ``ch08.iou_points`` uniform points of ``[-1, 1]^3``; ``used``:
    primitives with ``prob > threshold`` (at least the most probable one is kept);
    ``expected``: the exact expected training loss.  The IoU needs ShapeNet-lite's exact occupancy: on rows of a
    real dataset it refuses (``NotImplementedError``) unless ``iou=False``, which leaves ``iou`` out (the other
    metrics need only the target points).
    """
    if iou:
        require_exact_shapes('evaluate_primitives (chapter 08: exact occupancy)', data)
    from course_lib.data import make_shape
    from course_lib.metrics import volumetric_iou
    from course_lib.ops import chamfer_distance

    sz = _sz(profile)
    prims = predict_primitives(model, data["points"])
    target = data["target_points"]
    g = torch.Generator().manual_seed(seed)
    kept = _ensure_one(prims, threshold)
    surf = P.union_surface_points(kept, max(64, 4 * sz["n_samples"]), threshold, generator=g)
    terms = P.primitive_terms(prims, target, sz["n_samples"], generator=g)
    expected = P.expected_loss(terms, empty=sz["empty"], parsimony=sz["parsimony"])["loss"]
    n_iou = sz["iou_points"]
    cds, ious = [], []
    for i in range(len(target)):
        s = surf[i] if len(surf[i]) else kept.translation[i]
        cds.append(1000.0 * chamfer_distance(s.to(target.dtype), target[i]))
        pts = 2 * torch.rand(1, n_iou, 3, generator=g) - 1  # drawn either way: the same Chamfer samples follow
        if iou:
            shape = make_shape(data["category"][i], int(data["seed"][i]))
            occ_true = shape.occupancy(pts[0])
            occ_pred = P.union_occupancy(kept[i], pts, threshold)[0]
            ious.append(volumetric_iou(occ_pred, occ_true))
    out = {"chamfer": torch.stack(cds), "used": (kept.prob > threshold).sum(-1).float(), "expected": expected}
    if iou:
        out["iou"] = torch.stack(ious).float()
    return out


# ---------------------------------------------------------------------------
# the variance of REINFORCE, the cost of enumeration
# ---------------------------------------------------------------------------
def _fixed_terms(terms: P.PrimitiveTerms) -> P.PrimitiveTerms:
    """Detached float64 copies of ``terms`` (its consistency variant and area shares kept)."""
    share = terms.area_share.detach().double() if terms.area_share is not None else None
    return P.PrimitiveTerms(terms.coverage_dist.detach().double(), terms.sample_dist.detach().double(),
                            terms.sample_inside, terms.prob.detach().double(), terms.consistency, share)


def exact_score_variance(losses: Tensor, prob: Tensor) -> dict[str, Any]:
    """Exact moments of the single-sample REINFORCE estimate ``(L(z) - b) d log p(z) / d theta``.

    Introduced in ``lectures/08_primitives.ipynb``.  ``losses`` ``(2^M,)``: the loss ``L(z)`` of
    every configuration in the order of :func:`course_lib.models.primitives.enumerate_configurations`;
    ``prob`` ``(M,)``: the existence probabilities ``theta`` (``z_m ~ Bern(theta_m)``, independent).
    With the score ``s_m(z) = z_m / theta_m - (1 - z_m) / (1 - theta_m)`` and a constant baseline
    ``b``, the estimate is unbiased (``E[s] = 0``) and its total variance (the trace of its
    covariance) is the quadratic

        ``V_1(b) = E[L^2 |s|^2] - 2 b E[L |s|^2] + b^2 E[|s|^2] - |g|^2``,  ``g = E[L s]``,

    computed here by summing over the configurations of non-zero probability (those the
    estimator can draw).  Returns ``gradient`` (``g``, ``(M,)``), ``expected_loss`` (``E[L]``),
    ``loss_variance`` (``Var L``), the coefficients ``a = E[L^2|s|^2]``, ``b1 = E[L|s|^2]``,
    ``c = E[|s|^2]`` (``= sum_m 1 / (theta_m (1 - theta_m))`` when every ``theta`` is in
    ``(0, 1)``), ``variance_1`` (a function ``b -> V_1(b)``) and ``optimal_baseline`` ``b1 / c``
    (the constant that minimises ``V_1``).  Float64.
    """
    p = torch.as_tensor(prob).detach().to(torch.float64).reshape(-1)
    m = int(p.numel())
    loss = torch.as_tensor(losses).detach().to(torch.float64).reshape(-1)
    if m == 0:
        raise ValueError("prob is empty")
    if loss.numel() != 2 ** m:
        raise ValueError(f"losses must hold one value per configuration (2^{m} = {2 ** m}), got {loss.numel()}")
    if not bool(((p >= 0) & (p <= 1)).all()):
        raise ValueError("prob must lie in [0, 1]")
    if not bool(torch.isfinite(loss).all()):
        raise ValueError("losses hold nan or inf")
    z = P.enumerate_configurations(m, dtype=torch.float64)                          # (C, M)
    w = torch.where(z > 0.5, p, 1 - p).prod(-1)                                     # p(z)
    reach = w > 0
    z, w, loss = z[reach], w[reach], loss[reach]
    score = torch.where(z > 0.5, 1 / p, -1 / (1 - p))                               # finite where reachable
    s2 = (score ** 2).sum(-1)
    g = (w[:, None] * loss[:, None] * score).sum(0)
    mean = float((w * loss).sum())
    a, b1, c = float((w * loss ** 2 * s2).sum()), float((w * loss * s2).sum()), float((w * s2).sum())
    g2 = float((g ** 2).sum())

    def variance_1(b: float = 0.0) -> float:
        return max(a - 2 * float(b) * b1 + float(b) ** 2 * c - g2, 0.0)

    return {"gradient": g, "expected_loss": mean, "loss_variance": float((w * (loss - mean) ** 2).sum()),
            "a": a, "b1": b1, "c": c, "gradient_norm2": g2, "variance_1": variance_1,
            "optimal_baseline": b1 / c if c > 0 else 0.0}


def exact_gradient_variance(terms: P.PrimitiveTerms, ks: Sequence[int], *, empty: float = 4.0,
                            parsimony: float = 1e-3, momentum: float = 0.9, max_m: int | None = None) -> dict[str, Any]:
    """The exact variance of REINFORCE's gradient of the existence probabilities, by enumeration.

    Introduced in ``lectures/08_primitives.ipynb``.  ``terms`` of one shape (``B = 1``) are held
    fixed (as in :func:`gradient_variance`); the loss of each of the ``2^M`` configurations gives
    the single-sample estimator's exact total variance ``V_1(b)`` (:func:`exact_score_variance`).
    For ``K`` i.i.d. configurations and a baseline independent of them, the estimate is the mean of
    ``K`` i.i.d. single-sample estimates, so its variance is ``V_1 / K`` **analytically**:

    * ``none``: ``b = 0``, ``V_1(0) / K``;
    * ``fixed``: the constant ``b = E[L]``, ``V_1(E[L]) / K``;
    * ``moving_average``: Tulsiani's ``b <- momentum b + (1 - momentum) mean(L)`` in its stationary
      regime: ``b`` is independent of the current draws with mean ``E[L]`` and variance
      ``s_b^2 = (1 - momentum) / (1 + momentum) Var(L) / K``, so the variance is
      ``(V_1(E[L]) + s_b^2 E[|s|^2]) / K``.

    Also ``optimal``: ``V_1(b*) / K`` for the best constant ``b* = E[L|s|^2] / E[|s|^2]``.  Returns
    ``rows`` (one per ``K``: ``k``, ``none``, ``fixed``, ``moving_average``, ``optimal``),
    ``variance_1`` (the four single-sample variances), ``exact`` (the gradient from autograd of the
    reordering-trick expectation), ``max_abs_gradient_diff`` (its largest disagreement with the
    enumerated ``E[L s]``), ``expected_loss``, ``loss_variance``, ``optimal_baseline``,
    ``exact_norm2``, ``prob``.  ``M > max_m`` (default :data:`EXACT_MAX_M`) raises (``2^M``
    configurations).
    """
    if terms.prob.shape[0] != 1:
        raise ValueError(f"exact_gradient_variance needs the terms of one shape (B = 1), got B = "
                         f"{terms.prob.shape[0]}")
    m = int(terms.prob.shape[1])
    max_m = EXACT_MAX_M if max_m is None else int(max_m)
    if m > max_m:
        raise ValueError(f"M = {m} primitives: 2^{m} configurations exceed max_m = {max_m}; use the sampled "
                         "gradient_variance instead")
    if not 0.0 <= float(momentum) < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive sample counts, got {ks}")
    fixed = _fixed_terms(terms)
    theta = fixed.prob[0].clone().requires_grad_()
    exact_loss = P.expected_loss(dataclasses.replace(fixed, prob=theta[None]), empty=empty,
                                 parsimony=parsimony)["loss"].sum()
    (exact,) = torch.autograd.grad(exact_loss, theta)
    z = P.enumerate_configurations(m, dtype=torch.float64)
    losses = P.configuration_loss(fixed, z[:, None, :], empty=empty, parsimony=parsimony)["loss"][:, 0]
    mom = exact_score_variance(losses, fixed.prob[0])
    mean, var_l, c = mom["expected_loss"], mom["loss_variance"], mom["c"]
    v1 = {"none": mom["variance_1"](0.0), "fixed": mom["variance_1"](mean),
          "optimal": mom["variance_1"](mom["optimal_baseline"])}
    beta = float(momentum)
    rows = []
    for k in ks:
        s_b2 = (1 - beta) / (1 + beta) * var_l / k
        rows.append({"k": k, "none": v1["none"] / k, "fixed": v1["fixed"] / k,
                     "moving_average": (v1["fixed"] + s_b2 * c) / k, "optimal": v1["optimal"] / k})
    v1["moving_average"] = v1["fixed"] + (1 - beta) / (1 + beta) * var_l * c    # K = 1
    return {"ks": ks, "rows": rows, "variance_1": v1, "exact": exact.tolist(),
            "exact_norm2": float((exact ** 2).sum()),
            "max_abs_gradient_diff": float((mom["gradient"] - exact).abs().max()),
            "expected_loss": mean, "loss_variance": var_l, "optimal_baseline": mom["optimal_baseline"],
            "score_norm2": c, "momentum": beta, "configurations": 2 ** m, "prob": fixed.prob[0].tolist()}


def _batched_terms(fixed: P.PrimitiveTerms, n: int) -> P.PrimitiveTerms:
    """``fixed`` (``B = 1``) repeated ``n`` times along the batch (views, no copies)."""
    def rep(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.expand(n, *t.shape[1:])
    return P.PrimitiveTerms(rep(fixed.coverage_dist), rep(fixed.sample_dist), rep(fixed.sample_inside),
                            rep(fixed.prob), fixed.consistency, rep(fixed.area_share))


def relaxed_loss(terms: P.PrimitiveTerms, z: Tensor, *, empty: float = 4.0, parsimony: float = 0.0) -> Tensor:
    """The loss at *fractional* existences ``z`` ``(B, M)`` in ``[0, 1]``: the multilinear extension, ``(B,)``.

    Introduced in ``lectures/08_primitives.ipynb`` (relaxing existence).  A primitive that "half exists" has
    no loss of its own: the coverage of a target point is the distance to the nearest *existing* primitive, a
    minimum over a set, and a set has no half members.  A relaxation must choose a value for fractional ``z``;
    the one chosen here is the only one that is multilinear in ``z`` and agrees with
    :func:`course_lib.models.primitives.configuration_loss` on every 0/1 configuration: the reordering trick's
    formula with ``z`` in place of the probabilities (:func:`course_lib.models.primitives.expected_loss` of
    ``terms`` with ``prob = z``).  That choice is what makes the straight-through estimator unbiased
    (:func:`existence_estimators`), and it is already the exact expectation.
    """
    z = torch.as_tensor(z, dtype=terms.coverage_dist.dtype)
    if z.shape != terms.prob.shape:
        raise ValueError(f"z must have the shape of terms.prob {tuple(terms.prob.shape)}, got {tuple(z.shape)}")
    return P.expected_loss(dataclasses.replace(terms, prob=z), empty=empty, parsimony=parsimony)["loss"]


def _concrete(theta: Tensor, u: Tensor, tau: float) -> Tensor:
    """A relaxed Bernoulli (binary Concrete / Gumbel-sigmoid) sample ``sigmoid((logit theta + logit u) / tau)``."""
    return torch.sigmoid((torch.logit(theta) + torch.logit(u)) / tau)


def existence_estimators(terms: P.PrimitiveTerms, *, taus: Sequence[float] = (0.1, 0.5, 1.0),
                         mc_samples: int = 4000, empty: float = 4.0, parsimony: float = 1e-3, seed: int = 0,
                         clamp: float = 1e-4, max_m: int | None = None, chunk: int = 256) -> dict[str, Any]:
    """Bias and variance of five single-sample estimators of ``d E[L] / d theta`` for one shape's existences.

    Introduced in ``lectures/08_primitives.ipynb`` (the seed's question: can existence be reparameterised?).
    ``terms`` of one shape (``B = 1``) are held fixed; ``theta`` (``terms.prob``, clamped to
    ``[clamp, 1 - clamp]`` so that every estimator is defined) are the existence probabilities and
    ``g = d E[L] / d theta`` the exact gradient (autograd of the reordering trick).  Estimators of one
    sample each:

    * ``reinforce`` / ``reinforce_baseline``: the score-function estimate without a baseline and with the
      constant ``b = E[L]``; bias 0, variance exact (:func:`exact_score_variance`);
    * ``straight_through``: draw ``z ~ Bern(theta)``, use ``dL~/dz`` at ``z`` as the gradient of ``theta``
      (``dz/dtheta`` taken as 1), with ``L~`` the multilinear :func:`relaxed_loss`; mean and variance exact by
      enumerating the ``2^M`` configurations (for a multilinear ``L~`` the mean is ``g``: unbiased);
    * ``concrete`` (one row per ``tau``): ``z~ = sigmoid((logit theta + logit u) / tau)``, ``u ~ U(0, 1)``, the
      gradient of ``L~(z~)`` through ``z~``; biased (it is the gradient of ``E[L~(z~)]``, not of ``E[L(z)]``),
      measured by Monte Carlo with ``mc_samples`` draws;
    * ``concrete_hard`` (one row per ``tau``): the straight-through Gumbel estimator: the forward pass at the
      hard ``z = [z~ > 1/2]`` (a true ``Bern(theta)`` draw), the backward pass through ``z~``; Monte Carlo.

    Returns ``{"exact": g (list), "exact_norm2", "prob": theta (list), "configurations": 2^M, "rows": [...]}``,
    one row per estimator (and ``tau``): ``estimator``, ``tau`` (or None), ``method`` ("enumeration" or
    "monte carlo"), ``mean`` (``E[g^]``, or the sample mean with its standard errors ``se``), ``bias_norm2`` (``|E[g^] - g|^2``; for Monte Carlo rows the squared norm of the sample mean's
    difference less its expected noise ``tr(Cov) / S``, floored at 0), ``variance`` (``tr Cov[g^]``),
    ``max_z`` (Monte Carlo rows: the largest ``|mean - g| / s.e.`` over the components, a bias of the order of
    the noise reads 1-3), ``mse_1`` (``bias_norm2 + variance``: the mean squared error of one sample).
    ``M > max_m`` (default :data:`EXACT_MAX_M`) raises.  The Monte Carlo draws run ``chunk`` at a time.
    """
    if terms.prob.shape[0] != 1:
        raise ValueError(f"existence_estimators needs the terms of one shape (B = 1), got B = {terms.prob.shape[0]}")
    m = int(terms.prob.shape[1])
    max_m = EXACT_MAX_M if max_m is None else int(max_m)
    if m > max_m:
        raise ValueError(f"M = {m} primitives: 2^{m} configurations exceed max_m = {max_m}")
    if int(mc_samples) < 2:
        raise ValueError(f"mc_samples must be >= 2, got {mc_samples}")
    if not taus or min(float(t) for t in taus) <= 0:
        raise ValueError(f"taus must be positive temperatures, got {taus}")
    if not 0.0 < float(clamp) < 0.5:
        raise ValueError(f"clamp must be in (0, 0.5), got {clamp}")
    fixed = _fixed_terms(terms)
    fixed = dataclasses.replace(fixed, prob=fixed.prob.clamp(float(clamp), 1 - float(clamp)))
    theta0 = fixed.prob[0]
    theta = theta0.clone().requires_grad_()
    (g,) = torch.autograd.grad(relaxed_loss(dataclasses.replace(fixed, prob=theta[None]), theta[None], empty=empty,
                                            parsimony=parsimony).sum(), theta)
    rows: list[dict[str, Any]] = []

    # REINFORCE, exact
    z = P.enumerate_configurations(m, dtype=torch.float64)                               # (C, M)
    losses = P.configuration_loss(fixed, z[:, None, :], empty=empty, parsimony=parsimony)["loss"][:, 0]
    mom = exact_score_variance(losses, theta0)
    for name, b in (("reinforce", 0.0), ("reinforce_baseline", mom["expected_loss"])):
        v = mom["variance_1"](b)
        rows.append({"estimator": name, "tau": None, "method": "enumeration", "bias_norm2": 0.0, "variance": v,
                     "max_z": 0.0, "mse_1": v, "mean": mom["gradient"].tolist()})

    # straight-through with the multilinear relaxation, exact by enumeration
    zc = z.clone().requires_grad_()
    (grads,) = torch.autograd.grad(relaxed_loss(_batched_terms(fixed, z.shape[0]), zc, empty=empty,
                                                parsimony=parsimony).sum(), zc)               # (C, M)
    w = torch.where(z > 0.5, theta0, 1 - theta0).prod(-1)                                   # p(z)
    mean = (w[:, None] * grads).sum(0)
    var = float((w * ((grads - mean) ** 2).sum(-1)).sum())
    bias2 = float(((mean - g) ** 2).sum())
    rows.append({"estimator": "straight_through", "tau": None, "method": "enumeration", "bias_norm2": bias2,
                 "variance": var, "max_z": 0.0, "mse_1": bias2 + var, "mean": mean.tolist()})

    # the binary Concrete, soft and hard forward, by Monte Carlo
    gen = torch.Generator().manual_seed(int(seed))
    n = int(mc_samples)
    u = torch.rand(n, m, generator=gen, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    chunk = max(1, int(chunk))
    for tau in (float(t) for t in taus):
        for name in ("concrete", "concrete_hard"):
            parts = []
            for j in range(0, n, chunk):  # chunks bound the (draws, N, M) coverage tensor's memory
                uj = u[j:j + chunk]
                th = theta0.detach().expand(uj.shape[0], m).clone().requires_grad_()
                soft = _concrete(th, uj, tau)
                zz = soft if name == "concrete" else (soft > 0.5).to(soft.dtype) + soft - soft.detach()
                loss = relaxed_loss(_batched_terms(fixed, uj.shape[0]), zz, empty=empty, parsimony=parsimony)
                parts.append(torch.autograd.grad(loss.sum(), th)[0])
            est = torch.cat(parts)
            mu, cov_tr = est.mean(0), float(est.var(0).sum())
            se = est.std(0) / math.sqrt(n)
            raw = float(((mu - g) ** 2).sum())
            b2 = max(raw - cov_tr / n, 0.0)
            rows.append({"estimator": name, "tau": tau, "method": "monte carlo", "bias_norm2": b2,
                         "variance": cov_tr, "max_z": float(((mu - g).abs() / se.clamp_min(1e-300)).max()),
                         "mse_1": b2 + cov_tr, "samples": n, "mean": mu.tolist(), "se": se.tolist()})
    return {"exact": g.tolist(), "exact_norm2": float((g ** 2).sum()), "prob": theta0.tolist(),
            "configurations": 2 ** m, "rows": rows}


def part_coherence(model: P.PrimitiveNet, data: Mapping[str, Any], *, profile: str | None = None,
                   threshold: float = 0.5, min_points: int = 10, permutations: int = 50,
                   seed: int = 0) -> dict[str, Any]:
    """Does primitive ``m`` cover the same part of every shape of a category?  Measured against chance.

    Introduced in ``lectures/08_primitives.ipynb`` (inter-object coherence, [Tulsiani2017]'s figure of
    consistent parses).  For each shape of ``data`` (:func:`primitive_data` rows, ShapeNet-lite: the part
    labels are its parts), every target point goes to its nearest existing primitive (``prob > threshold``;
    the coverage distance of :func:`~course_lib.models.primitives.primitive_terms`, 0 inside, ties broken at
    random), and each primitive with at least ``min_points`` points takes the part most of them lie on
    (:meth:`Shape.part_labels`).  A primitive is *coherent on shape i* when that part is the one it takes
    most often on the *other* shapes of the category (leave-one-out, so a shape never agrees with itself).
    Per shape: ``agreement`` = the share of its primitives that are coherent; ``chance`` = the same share when
    the shape's primitive indices are shuffled (mean over ``permutations`` shuffles: what an incoherent
    network would score given the same parts and counts).  Returns ``{"agreement": (S,), "chance": (S,),
    "purity": (S,) mean share of a primitive's points on its part, "shapes": [...], "table": per category
    and primitive the modal part and the share of shapes that give it}``.
    """
    from collections import Counter

    from course_lib.data import make_shape

    require_exact_shapes("part_coherence (chapter 08: part labels)", data)
    sz = _sz(profile)
    gen = torch.Generator().manual_seed(int(seed))
    n = len(data["points"])
    majors: list[dict[int, str]] = []
    purity: list[float] = []
    with torch.no_grad():
        for i in range(n):
            prims = model(data["points"][i:i + 1])
            target = data["target_points"][i:i + 1]
            terms = P.primitive_terms(prims, target, int(sz["n_samples"]), generator=gen)
            d = terms.coverage_dist[0].double()                                    # (N, M)
            exists = prims.prob[0] > threshold
            d = torch.where(exists[None, :], d, torch.full_like(d, math.inf))
            d = d + 1e-12 * torch.rand(d.shape, generator=gen, dtype=d.dtype)       # random tie-breaking
            owner = d.argmin(-1)
            shape = make_shape(data["category"][i], int(data["seed"][i]))
            labels = shape.part_labels(target[0])
            names = [shape.parts[int(k)] for k in labels]
            got: dict[int, str] = {}
            shares = []
            for m in owner.unique().tolist():
                if not bool(exists[m]):
                    continue
                idx = (owner == m).nonzero().flatten().tolist()
                if len(idx) < min_points:
                    continue
                name, count = Counter(names[j] for j in idx).most_common(1)[0]
                got[int(m)] = name
                shares.append(count / len(idx))
            majors.append(got)
            purity.append(float(sum(shares) / len(shares)) if shares else float("nan"))
    cats = [str(c) for c in data["category"]]

    def agree(i: int, own: dict[int, str]) -> float:
        others = [majors[j] for j in range(n) if j != i and cats[j] == cats[i]]
        if not own or not others:
            return float("nan")
        hits = 0
        for m, name in own.items():
            seen = Counter(o[m] for o in others if m in o)
            hits += bool(seen) and seen.most_common(1)[0][0] == name
        return hits / len(own)

    m_total = int(model.n_primitives)
    agreement, chance = [], []
    for i in range(n):
        agreement.append(agree(i, majors[i]))
        vals = []
        for _ in range(int(permutations)):
            perm = torch.randperm(m_total, generator=gen).tolist()
            vals.append(agree(i, {perm[m]: name for m, name in majors[i].items()}))
        chance.append(float(sum(vals) / len(vals)))
    table = []
    for c in dict.fromkeys(cats):
        rows = [majors[i] for i in range(n) if cats[i] == c]
        for m in range(m_total):
            seen = Counter(r[m] for r in rows if m in r)
            if seen:
                name, k = seen.most_common(1)[0]
                table.append({"category": c, "primitive": m, "shapes": sum(seen.values()), "part": name,
                              "share": k / sum(seen.values())})
    return {"agreement": torch.tensor(agreement, dtype=torch.float64), "chance": torch.tensor(chance, dtype=torch.float64),
            "purity": torch.tensor(purity, dtype=torch.float64), "shapes": [[c, int(s_)] for c, s_ in
                                                                             zip(cats, data["seed"].tolist())],
            "table": table}


def run_budget(model: torch.nn.Module, hist: Any, n_train: int, profile: str | None = None,
               **extra: Any) -> dict[str, Any]:
    """One training run's :func:`course_lib.experiments.protocol.budget`.

    Introduced in ``lectures/08_primitives.ipynb``.  ``steps``: epochs run times the batches of
    ``n_train`` shapes at ``ch08.batch_size``; ``examples``: epochs times ``n_train`` (every
    shape once per epoch); ``seconds``: the run's training wall time (``hist.wall_time``, kept in
    the checkpoint); ``params``: trainable parameters; ``extra`` is stored beside (notes).
    """
    from course_lib.experiments.protocol import budget

    sz = _sz(profile)
    n = int(n_train)
    if n < 1:
        raise ValueError(f"n_train must be >= 1, got {n_train}")
    epochs = int(hist.epochs_run)
    steps = epochs * math.ceil(n / int(sz["batch_size"]))
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return budget(steps=steps, examples=epochs * n, seconds=float(hist.wall_time), params=params, epochs=epochs,
                  **extra)


def gradient_variance(terms: P.PrimitiveTerms, ks: Sequence[int], reps: int, *, empty: float = 4.0,
                      parsimony: float = 1e-3, momentum: float = 0.9, warmup: int = 20,
                      seed: int = 0, min_events: float = MIN_EVENTS) -> dict[str, Any]:
    """REINFORCE's estimate of ``d E[L] / d theta`` for one shape against the exact gradient, *sampled*.

    Introduced in ``lectures/08_primitives.ipynb``.  A Monte Carlo measurement of what
    :func:`exact_gradient_variance` computes exactly: with probabilities near 0 or 1 the estimates
    are heavy-tailed and a few thousand of them give a noisy variance (read it beside the exact
    one).  ``terms`` of one shape (``B = 1``) are held
    fixed; the exact gradient comes from autograd of the reordering-trick expectation.  For each
    ``K`` in ``ks``, ``reps`` independent estimates with ``K`` configurations each, without a
    baseline and with the moving-average baseline (updated after each estimate from that
    estimate's losses, warmed up for ``warmup`` estimates first).  Returns per ``K`` and per
    variant: ``variance`` (sum over the M components), ``mse`` to the exact gradient, ``max_z``
    (the largest ``|mean - exact| / standard error``: unbiased estimates keep it of order 1-3)
    over the components whose rarer outcome (present or absent) is expected at least ``min_events``
    times in all the draws, ``untested`` (the others: probabilities so close to 0 or 1 that the estimate is
    heavy-tailed), plus ``exact`` and ``exact_norm2``.
    """
    if terms.prob.shape[0] != 1:
        raise ValueError(f"gradient_variance needs the terms of one shape (B = 1), got B = {terms.prob.shape[0]}")
    fixed = _fixed_terms(terms)
    theta = fixed.prob[0].clone().requires_grad_()
    exact_loss = P.expected_loss(dataclasses.replace(fixed, prob=theta[None]), empty=empty,
                                 parsimony=parsimony)["loss"].sum()
    (exact,) = torch.autograd.grad(exact_loss, theta)

    def f(z: Tensor) -> Tensor:
        return P.configuration_loss(fixed, z[:, None, :], empty=empty, parsimony=parsimony)["loss"][:, 0]

    g = torch.Generator().manual_seed(seed)
    out: dict[str, Any] = {"ks": list(ks), "exact": exact.tolist(), "exact_norm2": float((exact ** 2).sum()),
                           "reps": int(reps), "min_events": float(min_events), "none": [], "baseline": []}
    for k in ks:
        for variant in ("none", "baseline"):
            base = P.MovingAverageBaseline(momentum)
            ests = []
            for r in range(int(reps) + (warmup if variant == "baseline" else 0)):
                b = base.value if variant == "baseline" else 0.0
                u = torch.rand(int(k), theta.shape[0], generator=g, dtype=theta.dtype).to(theta.device)
                z = (u < fixed.prob[0]).to(theta.dtype)
                losses = f(z)
                score = z / fixed.prob[0] - (1 - z) / (1 - fixed.prob[0])
                est = ((losses - b)[:, None] * score).mean(0)
                base.update(losses)
                if variant == "none" or r >= warmup:
                    ests.append(est)
            e = torch.stack(ests)
            se = e.std(0) / math.sqrt(len(e))
            zsc = ((e.mean(0) - exact).abs() / se.clamp_min(1e-300))
            # a component whose rarer outcome is drawn only a few times in all the draws has no usable
            # standard error (its estimate is a heavy-tailed sum of a handful of 1/p terms): it is counted,
            # not tested.  With 10 expected events the sample standard error was measured to be too small
            # (z = 6.6 at K = 8 for a probability of 0.007; 2.4 with ten times the draws)
            p0 = fixed.prob[0]
            testable = (torch.minimum(p0, 1 - p0) * int(k) * len(e) >= min_events) & (se > 0)
            out[variant].append({"k": int(k), "variance": float(e.var(0).sum()),
                                 "mse": float(((e - exact) ** 2).sum(-1).mean()),
                                 "max_z": float(zsc[testable].max()) if bool(testable.any()) else 0.0,
                                 "untested": int((~testable).sum())})
    return out


def enumeration_cost(ms: Sequence[int], n_points: int, *, repeat: int = 3, seed: int = 0) -> list[dict[str, float]]:
    """Time of the exact expectation for ``n_points`` target points: enumeration (``2^M``) vs reordering trick.

    Introduced in ``lectures/08_primitives.ipynb``.  Float64 on the CPU, median of ``repeat``
    runs each; ``max_abs_diff`` is the largest disagreement between the two.
    """
    g = torch.Generator().manual_seed(seed)
    rows = []
    for m in ms:
        d = torch.rand(n_points, int(m), generator=g, dtype=torch.float64)
        p = torch.rand(n_points, int(m), generator=g, dtype=torch.float64)
        times = {}
        vals = {}
        for name, fn in (("enumerate", P.expected_min_distance_enumerate), ("reorder", P.expected_min_distance)):
            ts = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                vals[name] = fn(d, p, empty=1.0)
                ts.append(time.perf_counter() - t0)
            times[name] = sorted(ts)[len(ts) // 2]
        rows.append({"m": int(m), "configurations": 2 ** int(m), "enumerate_s": times["enumerate"],
                     "reorder_s": times["reorder"],
                     "max_abs_diff": float((vals["enumerate"] - vals["reorder"]).abs().max())})
    return rows


def _regions(x: Tensor, size: Tensor) -> Tensor:
    """24 surface regions: the octant of the point times the axis of its largest normalised coordinate."""
    u = x / size
    octant = ((u > 0).long() * torch.tensor([1, 2, 4])).sum(-1)
    return octant * 3 + u.abs().argmax(-1)


def sampling_uniformity(size: Sequence[float], eps: Sequence[float], n: int = 20000, *, reference: int = 200000,
                        resolution: int = 64, seed: int = 0) -> dict[str, float]:
    """How far surface samples of one superquadric are from uniform over its area.

    Introduced in ``lectures/08_primitives.ipynb``.  The surface is cut into 24 regions (octant x
    dominant axis); the reference share of each region comes from ``reference`` area-weighted
    samples (trimesh) of a marching-cubes mesh of ``log F = 0`` at ``resolution^3``.  Returns the
    total-variation distance (``0.5 sum |share - reference share|``, 0 = same distribution) of
    ``n`` samples drawn (a) by :func:`course_lib.models.primitives.sample_superquadric_surface`
    (``"area"``), (b) uniformly over the angles ``eta, omega`` (``"angles"``).
    """
    import numpy as np
    import trimesh
    from skimage.measure import marching_cubes

    a = torch.tensor(list(size), dtype=torch.float64)
    e = torch.tensor(list(eps), dtype=torch.float64)
    t = torch.linspace(-1.1, 1.1, int(resolution), dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(t * a[0], t * a[1], t * a[2], indexing="ij"), -1)
    log_f = torch.log(P.superquadric_inside_outside(grid, a, e)).numpy()
    spacing = tuple(float(2.2 * ai / (resolution - 1)) for ai in a)
    verts, faces, _, _ = marching_cubes(log_f, 0.0, spacing=spacing)
    mesh = trimesh.Trimesh(verts - 1.1 * a.numpy(), faces, process=False)
    ref_pts, _ = trimesh.sample.sample_surface(mesh, int(reference), seed=seed)
    ref = torch.bincount(_regions(torch.as_tensor(np.asarray(ref_pts)), a), minlength=24).double() / reference
    g = torch.Generator().manual_seed(seed)
    area = P.sample_superquadric_surface(a[None], e[None], int(n), generator=g)[0]
    eta = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * math.pi
    om = (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) * math.pi
    angles = P.superquadric_angle_points(eta, om, a, e)
    out = {}
    for name, pts in (("area", area), ("angles", angles)):
        share = torch.bincount(_regions(pts, a), minlength=24).double() / n
        out[name] = float(0.5 * (share - ref).abs().sum())
    return out


def exact_size_drift(kind: str = "cuboid", coverage: str = "samples", *, n_samples: int | None = None,
                     n_target: int | None = None, steps: int = 300, lr: float | None = None, seed: int = 0,
                     size: Sequence[float] = (0.5, 0.3, 0.2), eps: Sequence[float] = (0.5, 0.8),
                     profile: str | None = None) -> dict[str, Any]:
    """One primitive started **exactly** on a target of its own kind; how far does fitting move it?

    Introduced in ``lectures/08_primitives.ipynb``.  The target is ``n_target`` (default ``ch08.n_points``)
    area-uniform points on a cuboid (or superquadric with exponents ``eps``) of half-sizes ``size``; the
    primitive (half-sizes through their logarithm, rotation, translation and, for a superquadric, exponents
    trainable; existence fixed at 1) starts at that very shape and minimises the chapter's loss (coverage +
    consistency, :func:`course_lib.models.primitives.configuration_loss`) with Adam at ``ch08.lr`` for
    ``steps`` steps, fresh surface samples (``n_samples``, default ``ch08.n_samples``) at every step.
    A loss whose minimum is the target keeps the volume; a biased one moves it.  Returns ``{"volume_change":
    relative change of the volume (final / initial - 1), "size": final half-sizes, "loss": first and last}``.
    The volume of a superquadric is that of its mesh-free formula through the Beta function.
    """
    sz = _sz(profile)
    P._check_kind(kind)
    n_samples = int(n_samples or sz["n_samples"])
    n_target = int(n_target or sz["n_points"])
    lr = float(lr if lr is not None else sz["lr"])
    g = torch.Generator().manual_seed(int(seed))
    a0 = torch.tensor([list(size)], dtype=torch.float32)[None]               # (1, 1, 3)
    e0 = torch.tensor([list(eps)], dtype=torch.float32)[None]                # (1, 1, 2)
    if kind == "cuboid":
        target = P.sample_cuboid_surface(a0, n_target, generator=g)[:, 0]   # (1, N, 3)
    else:
        target = P.sample_superquadric_surface(a0, e0, n_target, generator=g)[:, 0]
    log_a = a0.log().clone().requires_grad_(True)
    log_e = e0.log().clone().requires_grad_(True)
    quat = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]]).requires_grad_(True)
    trans = torch.zeros(1, 1, 3, requires_grad=True)
    params = [log_a, quat, trans] + ([log_e] if kind == "superquadric" else [])
    opt = torch.optim.Adam(params, lr=lr)
    prob = torch.ones(1, 1)
    z = torch.ones(1, 1, 1)
    losses = []
    for _ in range(int(steps)):
        q = quat / quat.norm(dim=-1, keepdim=True)
        prims = P.Primitives(log_a.exp(), log_e.exp(), q, trans, prob, kind)
        terms = P.primitive_terms(prims, target, n_samples, generator=g, coverage=coverage)
        loss = P.configuration_loss(terms, z, empty=float(sz["empty"]))["loss"].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))

    def volume(a: Tensor, e: Tensor) -> float:
        a = a.detach().double().reshape(3)
        if kind == "cuboid":
            return float(8 * a.prod())
        e1, e2 = (float(x) for x in e.detach().double().reshape(2))
        beta = lambda x, y: math.exp(math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y))  # noqa: E731
        return float(2 * a.prod()) * e1 * e2 * beta(e1 / 2 + 1, e1) * beta(e2 / 2, e2 / 2)

    v0, v1 = volume(a0, e0), volume(log_a.exp(), log_e.exp())
    return {"kind": kind, "coverage": coverage, "n_samples": n_samples, "n_target": n_target, "steps": int(steps),
            "seed": int(seed), "volume_change": v1 / v0 - 1.0, "size": [float(x) for x in log_a.detach().exp().reshape(3)],
            "loss": [losses[0], losses[-1]]}


def smoke(device: str = "cpu", steps: int = 1, profile: str = "gpu") -> dict[str, float]:
    """The GPU smoke hook: a few steps of the superquadric model with the exact loss on synthetic clouds."""
    from course_lib.experiments.common import smoke_steps, synthetic_clouds

    sz = _sz(profile)
    torch.manual_seed(0)
    model = build_model("superquadric", profile)
    x = synthetic_clouds(min(4, sz["batch_size"]), sz["n_points"], device=device)
    loss = PrimitiveLoss("reorder", n_samples=sz["n_samples"], empty=sz["empty"], parsimony=sz["parsimony"])
    return smoke_steps(model, {"input": x, "target": x}, loss, steps=steps, device=device)
