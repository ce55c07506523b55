"""The experiments of chapter 10 (gradient fields, ShapeGF), shared by the lecture, the lab and the benchmark.

Introduced in ``lectures/10_gradient_fields.ipynb``.

* :func:`toy_cloud_2d`: a 2D "surface" (a curve) for the lecture's sigma widget;
* :func:`fit_single_shape`: an unconditional :class:`~course_lib.models.shapegf.ScoreNet` on one
  cloud (the field and its samples, before any auto-encoder);
* :func:`load_data`: ShapeNet-lite input / target / oracle samplings (three independent
  samplings of each surface, :data:`course_lib.data.SAMPLING_STREAMS`);
* :func:`train_shapegf`, :func:`reconstruct`: the ShapeGF auto-encoder and its samples;
* :func:`train_baselines`: PointSetGen (chapter 05) and AtlasNet sphere / patches (chapter 06),
  trained on the same data with the same encoder;
* :func:`ae_metrics`, :func:`autoencoding_table`: CD and EMD per shape in :data:`CONVENTION`;
* :func:`analytic_oracle`: annealed Langevin with the *analytic* field of the held-out input
  cloud (what a perfect network would do);
* :func:`upsampling_table`, :func:`paired_steps`: error against the number of training and runtime
  points, and the paired change between neighbouring runtime sizes;
* :data:`SEED_UPSAMPLING_CD`, :func:`relative_steps`, :func:`seed_falling_range`,
  :func:`upsampling_in_seed_shape`: the seed's upsampling table, a row's change per step, and
  whether a measured table has the seed's shape;
* :func:`train_generator`, :func:`generate`, :func:`generation_table`: the latent GAN and
  MMD / COV / 1-NNA against a trivial baseline (training shapes plus noise);
  :func:`generation_per_reference`, :func:`nna_gap_values`: the same metrics one value per
  held-out shape, for paired claims (Chamfer or exact EMD); :func:`sample_codes`,
  :func:`decode_codes`: other latent distributions than the GAN (a Gaussian fitted to the training
  codes, training codes plus noise); :func:`nearest_category`: which category a generated shape
  resembles;
* :func:`code_drift`: how far the encoder's code moves when the input gets sparser (the
  upsampling table's sparse end);
* :func:`training_budget`: a trained row's budget (steps, examples, seconds, parameters);
* :func:`interpolate`, :func:`sparse_and_partial`: latent interpolation; robustness to sparse
  and occluded inputs;
* :func:`score_error_per_level`, :func:`shapegf_dsm_per_level` (:func:`dsm_per_level`): the
  learned field level by level, against the analytic score (2D toy) and as a per-level
  denoising loss (3D model);
* :func:`ncsn_overlap`, :func:`ncsn_ratio`, :func:`noise_schedule_rule`: NCSN's noise-schedule
  design rules (Song & Ermon 2020) checked on the course's schedule;
* :func:`add_input_noise`, :func:`noise_robustness`, :func:`rotation_robustness`,
  :func:`seconds_per_shape`: reconstruction from noisy and from rotated inputs, inference time per shape;
* :func:`smoke`: the GPU smoke hook.

Splits are those of :class:`course_lib.data.ShapeNetLite`: "test" shapes are never seen in
training.  Every number is in :data:`CONVENTION`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from course_lib import config
from course_lib.experiments.common import mean_sem
from course_lib.metrics import describe_chamfer, describe_emd

__all__ = [
    "CONVENTION",
    "OFFICIAL",
    "toy_cloud_2d",
    "toy_score_2d",
    "fit_single_shape",
    "load_data",
    "build_shapegf",
    "shapegf_loss_fn",
    "train_shapegf",
    "reconstruct",
    "train_baselines",
    "predict_baseline",
    "training_budget",
    "ae_metrics",
    "autoencoding_table",
    "analytic_oracle",
    "upsampling_table",
    "paired_steps",
    "SEED_UPSAMPLING_CD",
    "relative_steps",
    "seed_falling_range",
    "upsampling_in_seed_shape",
    "train_generator",
    "generate",
    "noisy_training_baseline",
    "LATENT_SOURCES",
    "sample_codes",
    "decode_codes",
    "nearest_category",
    "generation_table",
    "generation_per_reference",
    "code_drift",
    "nna_gap_values",
    "interpolate",
    "sparse_and_partial",
    "score_error_per_level",
    "dsm_per_level",
    "shapegf_dsm_per_level",
    "ncsn_overlap",
    "ncsn_ratio",
    "noise_schedule_rule",
    "add_input_noise",
    "noise_robustness",
    "rotation_robustness",
    "seconds_per_shape",
    "smoke",
]

CONVENTION = (describe_chamfer("shapegf") + "; " + describe_emd("shapegf") + "; predictions scored against an "
              "independent sampling of the true surface (stream 1), never against the encoder's input (stream 0); "
              "PointFlow's and ShapeGF's own numbers are in ShapeNet's coordinates (their 'unit-diagonal' frame in "
              "course_lib.metrics.FRAMES), so their scale differs")
"""The one convention of every auto-encoding number of chapter 10."""


OFFICIAL = {"sigma_input": "sigma", "output": "displacement", "weighting": "shapegf"}
"""The official code's parametrisation of the field and weight of the loss (``ch10.*`` holds the course's)."""


def _sizes(profile: str | None = None) -> dict[str, Any]:
    return dict(config.sizes(profile, prefix="ch10."))


# ---------------------------------------------------------------------------
# the 2D toy of the lecture
# ---------------------------------------------------------------------------
def toy_cloud_2d(n: int = 400, seed: int = 0, noise: float = 0.0) -> Tensor:
    """``n`` points ``(n, 2)`` on a 2D curve (a rounded 'heart' made of two arcs and a cusp).

    Introduced in ``lectures/10_gradient_fields.ipynb`` (the 2D toy of the sigma widget).
    """
    g = torch.Generator().manual_seed(seed)
    t = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    x = 16 * torch.sin(t) ** 3
    y = 13 * torch.cos(t) - 5 * torch.cos(2 * t) - 2 * torch.cos(3 * t) - torch.cos(4 * t)
    pts = torch.stack([x, y], -1) / 18.0
    if noise:
        pts = pts + noise * torch.randn(pts.shape, generator=g, dtype=pts.dtype)
    return pts.float()


def toy_score_2d(x: Tensor, points: Tensor, sigma: float) -> Tensor:
    """The analytic score of a 2D cloud blurred by ``N(0, sigma^2 I)`` (the lecture's toy).

    Introduced in ``lectures/10_gradient_fields.ipynb``: the 3D formula of
    :func:`course_lib.models.shapegf.analytic_score` with a zero third coordinate.
    """
    from course_lib.models.shapegf import analytic_score

    pad = lambda a: torch.cat([a, torch.zeros_like(a[..., :1])], -1)  # noqa: E731
    return analytic_score(pad(x), pad(points), sigma)[..., :2]


# ---------------------------------------------------------------------------
# one shape
# ---------------------------------------------------------------------------
def fit_single_shape(points: Tensor, *, steps: int, hidden: int = 64, n_blocks: int = 3, batch: int = 8,
                     lr: float = 1e-3, seed: int = 0, progress: bool = True, official: bool = False,
                     profile: str | None = None) -> tuple[Any, list[float]]:
    """Fit an unconditional score network to one cloud ``(N, 3)`` by DSM over the default schedule.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  Each step perturbs ``batch`` copies of
    the cloud, one sigma per copy.  The parametrisation and loss weight are the course's
    (``ch10.sigma_input``, ``ch10.output``, ``ch10.weighting``) or, with ``official=True``,
    :data:`OFFICIAL`.  Returns ``(net, losses)``; ``net`` in eval mode.  (No checkpoint: it
    is a few hundred small steps.)
    """
    from tqdm.auto import tqdm

    from course_lib.models.shapegf import ScoreNet, dsm_loss, sigma_schedule

    if not isinstance(points, Tensor) or points.dim() != 2 or points.shape[-1] != 3:
        raise ValueError(f"points must be one cloud (N, 3), got {getattr(points, 'shape', type(points))}")
    sz = _sizes(profile)
    param = dict(OFFICIAL) if official else {k: sz[k] for k in OFFICIAL}
    weighting = param.pop("weighting")
    torch.manual_seed(seed)
    net = ScoreNet(latent_dim=0, hidden=hidden, n_blocks=n_blocks, **param).to(points.device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1), eta_min=lr * 0.05)
    sigmas = sigma_schedule(device=points.device)
    g = torch.Generator(device=points.device).manual_seed(seed)
    data = points[None].expand(batch, -1, -1)
    losses = []
    net.train()
    for _ in tqdm(range(steps), desc="single-shape field", disable=not progress):
        loss = dsm_loss(lambda x, s: net(x, None, s), data, sigmas, generator=g, weighting=weighting)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    net.eval()
    return net, losses


# ---------------------------------------------------------------------------
# data and the auto-encoder
# ---------------------------------------------------------------------------
def load_data(split: str, *, n_points: int | None = None, n_target: int | None = None,
              categories: Sequence[str] | None = None, per_category: int | None = None,
              profile: str | None = None) -> dict[str, Any]:
    """The chapter's split: ``points`` (encoder input, stream 0), ``target_points`` (stream 1) and
    ``oracle_points`` (stream 2), each ``(S, n, 3)``, plus ``label`` / ``seed`` / ``category``.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  Sizes default to ``ch10.*``.
    """
    from .common import load_split

    s = _sizes(profile)
    per = per_category or s["train_per_category" if split == "train" else "test_per_category"]
    return load_split(split, ("points", "target_points", "oracle_points"), categories=categories or s["categories"],
                      shapes_per_category=int(per), profile=profile, n_points=int(n_points or s["n_points"]),
                      n_target=int(n_target or s["n_target"]))


def build_shapegf(profile: str | None = None, **overrides: Any) -> Any:
    """A :class:`~course_lib.models.shapegf.ShapeGF` with the ``ch10`` sizes of ``profile``.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  The encoder is the PointNet
    (64-128-256, then a linear map to the code) that chapter 06's baselines use, so that the
    comparison is decoder against decoder.  The field's parametrisation comes from
    ``ch10.sigma_input`` and ``ch10.output`` (the course uses ``log sigma`` in and a
    sigma-scaled output; ``OFFICIAL`` gives the official code's).
    """
    from course_lib.models.shapegf import ShapeGF

    s = _sizes(profile)
    kw = {"latent_dim": int(s["latent_dim"]), "hidden": int(s["hidden"]), "n_blocks": int(s["n_blocks"]),
          "encoder_hidden": (64, 128), "encoder_feat_dim": 256, "sigma_input": s["sigma_input"],
          "output": s["output"], "norm": s["norm"]}
    kw.update(overrides)
    return ShapeGF(**kw)


def shapegf_loss_fn(n_dsm: int | None, weighting: str = "shapegf", levels: str = "uniform") -> Any:
    """``loss_fn(model, batch)``: DSM of the field decoded from ``batch["input"]`` on ``n_dsm``
    random points of ``batch["target"]`` per step (``levels``: how the shapes' noise levels are
    drawn, :func:`~course_lib.models.shapegf.draw_levels`)."""

    def loss_fn(model: Any, batch: dict[str, Tensor]) -> Tensor:
        return model.loss(batch["input"], batch["target"], n_target=n_dsm, weighting=weighting, levels=levels)

    return loss_fn


def train_shapegf(data: dict[str, Any], *, epochs: int | None = None, n_train_points: int | None = None,
                  profile: str | None = None, seed: int | None = None, retrain: bool = False, progress: bool = True,
                  live_plot: Any = "auto", official: bool = False, name: str = "ch10_shapegf",
                  schedule: str | None = None, levels: str | None = None, hidden: int | None = None,
                  n_blocks: int | None = None) -> tuple[Any, Any]:
    """Train (or load) the ShapeGF auto-encoder on ``data`` (:func:`load_data`).

    Introduced in ``lectures/10_gradient_fields.ipynb``.  ``n_train_points`` keeps only that
    many points of each training cloud (input and target alike; the upsampling table's rows).
    ``official=True`` uses the official parametrisation (:data:`OFFICIAL`: raw sigma in,
    displacement out, weight ``1/(2 sigma)``) instead of ``ch10.sigma_input`` / ``ch10.output``
    / ``ch10.weighting``.  ``schedule`` (default ``ch10.lr_schedule``): ``"cosine"`` decays Adam's rate
    to a hundredth over the epochs, ``"constant"`` keeps it (the official code
    keeps 1e-3 for half of its 2,000 epochs, then decays it linearly to 1/100 by 95% of the run).
    ``levels`` (default ``ch10.level_sampling``): how each batch's noise levels are drawn,
    ``"uniform"`` (official) or ``"stratified"`` (:func:`~course_lib.models.shapegf.draw_levels`).
    ``hidden`` / ``n_blocks`` (default ``ch10.hidden`` / ``ch10.n_blocks``) size the score network;
    a size other than the profile's enters the checkpoint's spec (the default keeps its old name).
    Returns ``(model, history)``.
    """
    from course_lib import train

    from .common import Batches

    s = _sizes(profile)
    seed = int(s["seed"] if seed is None else seed)
    epochs = int(s["epochs"] if epochs is None else epochs)
    schedule = str(s["lr_schedule"] if schedule is None else schedule)
    levels = str(s["level_sampling"] if levels is None else levels)
    from course_lib.models.shapegf import LEVEL_SAMPLING

    if levels not in LEVEL_SAMPLING:
        raise ValueError(f"levels must be one of {LEVEL_SAMPLING}, got {levels!r}")
    d = dict(data)
    if n_train_points is not None:
        d["points"] = d["points"][:, :n_train_points]
        d["target_points"] = d["target_points"][:, :n_train_points]
    param = dict(OFFICIAL) if official else {k: s[k] for k in OFFICIAL}
    weighting = param.pop("weighting")
    width = {k: int(v) for k, v in (("hidden", hidden), ("n_blocks", n_blocks))
             if v is not None and int(v) != int(s[k])}
    if any(v < 1 for v in width.values()):
        raise ValueError(f"hidden and n_blocks must be positive, got {width}")
    config.seed_everything(seed)
    model = build_shapegf(profile, **param, **width)
    loader = Batches(d, int(s["batch_size"]), keys=["points", "target_points"],
                     rename={"points": "input", "target_points": "target"}, seed=seed)
    spec = {"categories": list(data.get("categories", ())), "shapes": int(len(d["points"])),
            "n_points": int(d["points"].shape[1]), "n_target": int(d["target_points"].shape[1]),
            "n_dsm": int(s["n_dsm"]), "weighting": weighting, "seeds": [int(v) for v in data["seed"][:3]], **param,
            "schedule": schedule}
    if levels != "uniform":  # the uniform spec hashes as before the option; the loss signature inside still differs
        spec["levels"] = levels
    spec.update(width)  # only a width other than the profile's: the default checkpoint keeps its name
    path = train.checkpoint_path(name, spec=spec, profile=profile)
    opt, sched = train.adam(model, float(s["lr"]), epochs, schedule)
    hist = train.train_or_load(model, path, spec=spec, retrain=retrain, train_loader=loader,
                               loss_fn=shapegf_loss_fn(int(s["n_dsm"]), weighting, levels), epochs=epochs,
                               seed=seed, progress=progress, live_plot=live_plot, lr=float(s["lr"]),
                               optimizer=opt, scheduler=sched)
    model.eval()
    return model, hist


@torch.no_grad()
def reconstruct(model: Any, inputs: Tensor, n_points: int, *, steps_per_level: int | None = None,
                sigmas: Sequence[float] | Tensor | None = None, batch_size: int = 16, seed: int = 0,
                profile: str | None = None, store: bool = False) -> Tensor:
    """Encode ``inputs`` ``(S, N, 3)`` and sample ``n_points`` points of each decoded shape.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  Annealed Langevin from the uniform
    prior over the model's schedule (or ``sigmas``), ``steps_per_level`` per level.  ``store=True``: computed
    once, then read back from the cache (:func:`course_lib.train.stored_result`, keyed by the model's weights,
    the inputs, every setting and the code).
    """
    s = _sizes(profile)
    k = int(steps_per_level or s["steps_per_level"])
    if store:
        from course_lib import train as T
        from course_lib.models import shapegf

        spec = {"weights": model.state_dict(), "inputs": inputs, "n_points": int(n_points), "k": k,
                "sigmas": None if sigmas is None else torch.as_tensor(sigmas, dtype=torch.float64),
                "batch_size": batch_size, "seed": seed, "code": T.code_version(reconstruct, shapegf)}
        out, _ = T.stored_result("ch10_reconstruct", spec, lambda: reconstruct(
            model, inputs, n_points, steps_per_level=k, sigmas=sigmas, batch_size=batch_size, seed=seed))
        return out
    dev = next(model.parameters()).device
    g = torch.Generator(device=dev).manual_seed(seed)
    model.eval()
    outs = []
    for i in range(0, len(inputs), batch_size):
        z = model.encode(inputs[i:i + batch_size].to(dev))
        outs.append(model.sample(z, int(n_points), sigmas=sigmas, steps_per_level=k, generator=g).cpu())
    return torch.cat(outs)


# ---------------------------------------------------------------------------
# baselines (chapters 05 and 06)
# ---------------------------------------------------------------------------
def train_baselines(data: dict[str, Any], *, which: Sequence[str] = ("PointSetGen", "AtlasNet sphere",
                                                                      "AtlasNet patches"),
                    epochs: int | None = None, profile: str | None = None, retrain: bool = False,
                    progress: bool = True, live_plot: Any = False,
                    histories: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train (or load) the baselines on the same input -> target data, Chamfer loss.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  PointSetGen (chapter 05,
    :func:`course_lib.experiments.surfaces.build_psg`) outputs exactly ``n_target`` points;
    AtlasNet (chapter 06) with one sphere template or ``ch10.atlas_patches`` square patches.  The
    recipe of chapters 05 and 06 (Adam at 1e-3, not tuned here), decayed with ``ch10.lr_schedule``.
    All use the PointNet encoder 64-128-256 and the code size of ``ch10.latent_dim``.  Each trains
    ``epochs`` (default ``ch10.baseline_epochs``, equal to ``ch10.epochs``) of ``ch10.batch_size``
    shapes, so with the same data each gets as many optimiser steps as ShapeGF
    (:func:`training_budget`).  ``histories``, when given, receives each baseline's training
    :class:`~course_lib.train.History` by name.
    """
    from course_lib import train

    from .common import Batches
    from .surfaces import atlas_loss_fn, build_atlasnet, build_psg

    s = _sizes(profile)
    n_target = int(data["target_points"].shape[1])
    latent = int(s["latent_dim"])
    builders = {
        "PointSetGen": lambda: build_psg(n_target, latent_dim=latent),
        "AtlasNet sphere": lambda: build_atlasnet("sphere", 1, latent, n_points=n_target),
        "AtlasNet patches": lambda: build_atlasnet("square", int(s["atlas_patches"]), latent, n_points=n_target),
    }
    out = {}
    for name in which:
        if name not in builders:
            raise ValueError(f"unknown baseline {name!r}; known: {', '.join(builders)}")
        config.seed_everything(int(s["seed"]))
        model = builders[name]()
        loader = Batches(data, int(s["batch_size"]), keys=["points", "target_points"],
                         rename={"points": "input", "target_points": "target"}, seed=int(s["seed"]))
        n_ep = int(epochs or s["baseline_epochs"])
        spec = {"baseline": name, "categories": list(data.get("categories", ())), "shapes": int(len(data["points"])),
                "n_points": int(data["points"].shape[1]), "n_target": n_target, "schedule": str(s["lr_schedule"])}
        path = train.checkpoint_path("ch10_baseline_" + name.replace(" ", "_").lower(), spec=spec, profile=profile)
        opt, sched = train.adam(model, 1e-3, n_ep, str(s["lr_schedule"]))
        hist = train.train_or_load(model, path, spec=spec, retrain=retrain, train_loader=loader,
                                   loss_fn=atlas_loss_fn(n_target), epochs=n_ep, seed=int(s["seed"]),
                                   progress=progress, live_plot=live_plot, lr=1e-3, optimizer=opt, scheduler=sched)
        model.eval()
        out[name] = model
        if histories is not None:
            histories[name] = hist
    return out


def training_budget(model: Any, history: Any, n_shapes: int, batch_size: int, **extra: Any) -> dict[str, Any]:
    """One trained row's :func:`~course_lib.experiments.protocol.budget` from its training history.

    Introduced in ``lectures/10_gradient_fields.ipynb`` (every row of the chapter's tables carries
    one).  ``steps`` = epochs run x batches per epoch (``ceil(n_shapes / batch_size)``, the last batch
    may be smaller), ``examples`` = epochs run x ``n_shapes`` (shapes seen), ``seconds`` = the
    history's wall time (the run that trained the checkpoint), ``params`` = trainable parameters
    of ``model``.  ``extra`` adds notes (``epochs`` is added).
    """
    from .protocol import budget

    if isinstance(n_shapes, bool) or int(n_shapes) < 1 or isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"n_shapes and batch_size must be positive ints, got {n_shapes!r} and {batch_size!r}")
    epochs = int(history.epochs_run)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return budget(steps=epochs * math.ceil(int(n_shapes) / int(batch_size)), examples=epochs * int(n_shapes),
                  seconds=float(history.wall_time), params=params, epochs=epochs, **extra)


def predict_baseline(model: Any, inputs: Tensor, n_points: int) -> Tensor:
    """A baseline's ``n_points`` points per shape (eval mode, batched)."""
    from .common import predict
    from .surfaces import output_size

    return predict(model, inputs, batch_size=32, **output_size(model, n_points))


# ---------------------------------------------------------------------------
# metrics and tables
# ---------------------------------------------------------------------------
def ae_metrics(pred: Tensor, target: Tensor, *, emd: bool = True, emd_method: str = "exact") -> dict[str, Tensor]:
    """Per-shape ``{"CD x1e4", "EMD x1e2"}`` ``(S,)`` of ``pred`` against ``target`` in :data:`CONVENTION`.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  EMD needs equal point counts.
    """
    from course_lib import metrics

    conv = metrics.PRESETS["shapegf"]
    out = {"CD x1e4": conv.chamfer(pred, target.to(pred.dtype), reduction="none")}
    if emd:
        out["EMD x1e2"] = conv.emd(pred, target.to(pred.dtype), reduction="none", method=emd_method)
    return out


def autoencoding_table(preds: dict[str, Tensor], target: Tensor, oracle: Tensor, *, emd: bool = True,
                       emd_method: str = "exact") -> tuple[list[dict[str, Any]], dict[str, dict[str, Tensor]]]:
    """The auto-encoding table: one row per model plus the oracle (an independent sampling).

    Introduced in ``lectures/10_gradient_fields.ipynb``.  Returns ``(rows, per_shape)`` where
    ``rows`` are :func:`course_lib.experiments.common.summarize` rows (mean, sem).
    """
    from .common import summarize

    per = {name: ae_metrics(p, target, emd=emd, emd_method=emd_method) for name, p in preds.items()}
    per["Oracle"] = ae_metrics(oracle, target, emd=emd, emd_method=emd_method)
    return summarize(per), per


@torch.no_grad()
def analytic_oracle(inputs: Tensor, n_points: int, *, steps_per_level: int = 10, seed: int = 0,
                    batch_size: int = 8) -> Tensor:
    """Annealed Langevin with the exact field of each input cloud: a perfect network's samples.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  The field is the analytic score of the
    (held-out) input cloud; the samples are then compared with an independent target sampling,
    as the network's are.
    """
    from course_lib.models.shapegf import analytic_score_fn, annealed_langevin, sigma_schedule, uniform_prior

    g = torch.Generator(device=inputs.device).manual_seed(seed)
    outs = []
    for i in range(0, len(inputs), batch_size):
        cloud = inputs[i:i + batch_size]
        x0 = uniform_prior(len(cloud), int(n_points), device=cloud.device, generator=g)
        outs.append(annealed_langevin(analytic_score_fn(cloud), x0, sigma_schedule(device=cloud.device),
                                      steps_per_level, 1.0, generator=g).cpu())
    return torch.cat(outs)


def upsampling_table(models: dict[int, Any], inputs: Tensor, target: Tensor, runtime: Sequence[int], *,
                     n_out: int | None = None, steps_per_level: int | None = None, emd: bool = True,
                     profile: str | None = None) -> dict[str, Any]:
    """CD and EMD of the samples when the encoder sees ``runtime`` points, for each training size.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  ``models`` maps the number of training
    points per shape to a trained model; each is given the first ``r`` points of each input
    cloud (a random subset: the sampling is i.i.d.) for every ``r`` in ``runtime`` and samples
    ``n_out`` points (default: the target's).  Returns ``{"cd": {train_n: {r: mean}}, "emd": ...,
    "cd_per_shape": {train_n: {r: [one CD per shape]}}, "seconds": ...}`` (``r`` larger than the
    model's training size is skipped, as in the paper's table).  Every cell starts Langevin from
    the same prior draws, so the per-shape values of two cells are paired (see
    :func:`paired_steps`).
    """
    n_out = int(n_out or target.shape[1])
    res: dict[str, Any] = {"cd": {}, "emd": {}, "cd_per_shape": {}, "seconds": {}}
    for n_train, model in models.items():
        res["cd"][n_train], res["emd"][n_train], res["cd_per_shape"][n_train] = {}, {}, {}
        for r in runtime:
            if r > n_train or r > inputs.shape[1]:
                continue
            t0 = time.perf_counter()
            pred = reconstruct(model, inputs[:, :r], n_out, steps_per_level=steps_per_level, profile=profile)
            res["seconds"][f"{n_train}/{r}"] = time.perf_counter() - t0
            m = ae_metrics(pred, target, emd=emd and n_out == target.shape[1])
            res["cd"][n_train][r] = float(m["CD x1e4"].mean())
            res["cd_per_shape"][n_train][r] = [float(v) for v in m["CD x1e4"]]
            if "EMD x1e2" in m:
                res["emd"][n_train][r] = float(m["EMD x1e2"].mean())
    return res


def paired_steps(per_shape: dict[int, Sequence[float]], *, z: float = 2.0) -> list[dict[str, Any]]:
    """How the error changes between neighbouring runtime sizes, shape by shape.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  ``per_shape`` maps a runtime size to
    one error per test shape (the same shapes, in the same order, for every size: a row of
    :func:`upsampling_table`'s ``"cd_per_shape"``).  For each pair of neighbouring sizes
    ``fewer < more`` it returns the mean over shapes of ``error(fewer) - error(more)`` (positive:
    the denser input helps), its standard error, and a verdict: ``"falls"`` when the mean exceeds
    ``z`` standard errors, ``"rises"`` when it is below ``-z`` of them, else ``"flat"`` (a
    change the test shapes cannot tell from zero).
    """
    if len(per_shape) < 2:
        raise ValueError(f"paired_steps needs at least two runtime sizes, got {sorted(per_shape)}")
    sizes = sorted(per_shape, key=int)
    lens = {len(per_shape[r]) for r in sizes}
    if len(lens) != 1 or min(lens) < 2:
        raise ValueError(f"paired_steps needs the same number (>= 2) of shapes for every size, got "
                         f"{ {r: len(per_shape[r]) for r in sizes} }")
    out = []
    for fewer, more in zip(sizes, sizes[1:]):
        d = torch.tensor(per_shape[fewer], dtype=torch.float64) - torch.tensor(per_shape[more], dtype=torch.float64)
        mean, se = mean_sem(d)
        verdict = "falls" if mean > z * se else ("rises" if mean < -z * se else "flat")
        out.append({"fewer": int(fewer), "more": int(more), "mean": mean, "se": se, "verdict": verdict})
    return out


#: The seed's upsampling table (``../shared/seeds/001_*.txt``, "Point Cloud Upsampling", from
#: Cai et al., ECCV 2020): CD as printed there, by training points per shape (rows) and runtime
#: input points (columns; the paper trains its 1K row only up to 512).  Its scale is not ours
#: (other data, other normalisation); only its shape is compared.
SEED_UPSAMPLING_CD: dict[str, dict[int, float]] = {
    "10K": {2048: 0.993, 1024: 1.057, 512: 0.999, 256: 1.136, 128: 1.688},
    "3K": {2048: 1.080, 1024: 1.059, 512: 1.003, 256: 1.142, 128: 1.753},
    "1K": {512: 1.021, 256: 1.149, 128: 1.691},
}


def relative_steps(row: dict[Any, float], sizes: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """The relative change ``CD(fewer) / CD(more) - 1`` between neighbouring runtime sizes of one table row.

    Introduced in ``lectures/10_gradient_fields.ipynb``, to put a measured row (keys may be the
    strings of a JSON file) beside the seed's in the same terms.  ``sizes`` (default: the seed's
    runtime sizes) fixes the steps; a step whose sizes are not both in ``row`` has ``change`` None.
    """
    vals = {int(k): float(v) for k, v in row.items()}
    sizes = sorted({r for r_ in SEED_UPSAMPLING_CD.values() for r in r_} if sizes is None else {int(r) for r in sizes})
    if len(sizes) < 2:
        raise ValueError(f"relative_steps needs at least two runtime sizes, got {sizes}")
    return [{"fewer": a, "more": b, "change": vals[a] / vals[b] - 1 if a in vals and b in vals else None}
            for a, b in zip(sizes, sizes[1:])]


def seed_falling_range(table: dict[str, dict[int, float]] | None = None) -> int:
    """The largest runtime size up to which *every* row of the table falls at *every* step.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  For the seed's table
    (:data:`SEED_UPSAMPLING_CD`, the default) the error falls in all three rows from 128 to 256 to
    512 runtime points; above 512 the rows go up or down by a few percent (the 3K row is higher at
    2,048 than at 512), so the seed's table itself is a fall followed by a plateau.  Returns the
    smallest size when no step falls in every row.
    """
    table = SEED_UPSAMPLING_CD if table is None else table
    if not table or any(len(row) < 2 for row in table.values()):
        raise ValueError("seed_falling_range needs rows of at least two runtime sizes")
    sizes = sorted({r for row in table.values() for r in row})
    limit = sizes[0]
    for fewer, more in zip(sizes, sizes[1:]):
        rows = [row for row in table.values() if fewer in row and more in row]
        if not rows or not all(row[fewer] > row[more] for row in rows):
            break
        limit = more
    return limit


def upsampling_in_seed_shape(steps: Sequence[dict[str, Any]], *, falls_up_to: int | None = None) -> dict[str, Any]:
    """Whether a measured upsampling row has the seed's shape: a fall, then at most a plateau.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  ``steps`` are :func:`paired_steps` of one
    training row.  The shape holds when every step whose denser size is at most ``falls_up_to``
    (default :func:`seed_falling_range` of the seed's table: 512) has the verdict ``"falls"``, and
    no step at all ``"rises"``.  A plateau above ``falls_up_to`` is allowed, because the seed's
    own table has one.  Returns ``{"met", "falls_up_to", "sparse_steps_fall", "no_step_rises",
    "failing": [the steps that break it]}``.
    """
    if not steps:
        raise ValueError("upsampling_in_seed_shape needs at least one paired step")
    limit = int(seed_falling_range() if falls_up_to is None else falls_up_to)
    sparse = [s for s in steps if int(s["more"]) <= limit]
    if not sparse:
        raise ValueError(f"no measured step ends at or below {limit} runtime points: the sparse end the seed's "
                         f"table falls on is not in {[(s['fewer'], s['more']) for s in steps]}")
    not_falling = [s for s in sparse if s["verdict"] != "falls"]
    rising = [s for s in steps if s["verdict"] == "rises"]
    return {"met": not (not_falling or rising), "falls_up_to": limit, "sparse_steps_fall": not not_falling,
            "no_step_rises": not rising, "failing": not_falling + [s for s in rising if s not in not_falling]}


# ---------------------------------------------------------------------------
# generation
# ---------------------------------------------------------------------------
@torch.no_grad()
def _codes(model: Any, inputs: Tensor, batch_size: int = 32) -> Tensor:
    dev = next(model.parameters()).device
    model.eval()
    return torch.cat([model.encode(inputs[i:i + batch_size].to(dev)).cpu() for i in range(0, len(inputs), batch_size)])


def train_generator(model: Any, train_inputs: Tensor, *, epochs: int | None = None, profile: str | None = None,
                    progress: bool = True, store: bool = False) -> tuple[Any, Any, Any]:
    """The latent GAN on the frozen codes of the training shapes (official recipe, smaller nets).

    Introduced in ``lectures/10_gradient_fields.ipynb``.  Returns ``(generator, discriminator,
    history)`` of :func:`course_lib.models.shapegf.train_latent_gan`.  ``store=True``: trained once, then read
    back from the cache (:func:`course_lib.train.stored_result`, keyed by the codes, the settings and the code).
    """
    from course_lib.models import shapegf
    from course_lib.models.shapegf import train_latent_gan

    s = _sizes(profile)
    ep, bs, seed = int(epochs or s["gan_epochs"]), int(s["gan_batch"]), int(s["seed"])
    if store:
        from course_lib import train as T

        spec = {"weights": model.state_dict(), "inputs": train_inputs, "epochs": ep, "batch_size": bs,
                "seed": seed, "code": T.code_version(train_generator, _codes, shapegf)}
        out, _ = T.stored_result("ch10_latent_gan", spec, lambda: train_generator(
            model, train_inputs, epochs=ep, profile=profile, progress=progress))
        return out
    return train_latent_gan(_codes(model, train_inputs), epochs=ep, batch_size=bs, seed=seed, progress=progress)


@torch.no_grad()
def generate(model: Any, generator: Any, n_shapes: int, n_points: int, *, profile: str | None = None,
             seed: int = 0, steps_per_level: int | None = None) -> Tensor:
    """``n_shapes`` new shapes ``(n_shapes, n_points, 3)``: GAN codes decoded by annealed Langevin.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  Sampling uses ``ch10.gen_sigma_num``
    geometric levels from 1 to 0.01 (the official generation configs use 5).
    """
    dev = next(model.parameters()).device
    z = generator.sample(int(n_shapes), generator=torch.Generator(device=dev).manual_seed(seed)).to(dev)
    return decode_codes(model, z, n_points, profile=profile, seed=seed, steps_per_level=steps_per_level)


@torch.no_grad()
def decode_codes(model: Any, z: Tensor, n_points: int, *, profile: str | None = None, seed: int = 0,
                 steps_per_level: int | None = None) -> Tensor:
    """Decode codes ``(S, L)`` into ``(S, n_points, 3)`` clouds with the generation sampler of :func:`generate`.

    Introduced in ``lectures/10_gradient_fields.ipynb``: ``ch10.gen_sigma_num`` levels, ``ch10.steps_per_level``
    steps each, Langevin noise from ``seed + 1`` (so :func:`generate` with ``seed`` decodes its codes the same way).
    """
    from course_lib.models.shapegf import sigma_schedule

    if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[0] == 0:
        raise ValueError(f"z must be a non-empty (S, L) tensor of codes, got {getattr(z, 'shape', type(z).__name__)}")
    s = _sizes(profile)
    dev = next(model.parameters()).device
    z = z.to(dev)
    sig = sigma_schedule(n=int(s["gen_sigma_num"]), device=dev)
    g = torch.Generator(device=dev).manual_seed(seed + 1)
    k = int(steps_per_level or s["steps_per_level"])
    return torch.cat([model.sample(z[i:i + 16], int(n_points), sigmas=sig, steps_per_level=k, generator=g).cpu()
                      for i in range(0, len(z), 16)])


LATENT_SOURCES = ("gan", "gaussian", "codes+noise")
"""Where :func:`sample_codes` draws codes from: a trained latent GAN, a Gaussian with the training codes'
mean and covariance, or a random training code plus Gaussian noise."""


def sample_codes(source: str, codes: Tensor, n: int, *, seed: int = 0, gan: Any = None,
                 noise: float = 0.25) -> Tensor:
    """``n`` codes ``(n, L)`` from one of :data:`LATENT_SOURCES`, fitted to the training ``codes`` ``(S, L)``.

    Introduced in ``lectures/10_gradient_fields.ipynb`` (why generation is behind: is the GAN the
    weak part?).  ``"gan"``: ``gan.sample`` (a :class:`~course_lib.models.shapegf.LatentGenerator`);
    ``"gaussian"``: ``mean + A^T w / sqrt(S - 1)`` with ``A`` the centred codes and ``w ~ N(0, I_S)``,
    which is exactly the Gaussian with the codes' mean and (empirical, possibly singular) covariance,
    without factorising it; ``"codes+noise"``: a training code drawn at random plus
    ``noise`` x the codes' per-dimension standard deviation times ``N(0, 1)`` (``noise=0``: the
    training codes themselves, a memoriser in code space).  Deterministic given ``seed``.
    """
    if source not in LATENT_SOURCES:
        raise ValueError(f"source must be one of {LATENT_SOURCES}, got {source!r}")
    if not isinstance(codes, Tensor) or codes.dim() != 2 or codes.shape[0] < 2:
        raise ValueError(f"codes must be a (S, L) tensor with S >= 2, got {getattr(codes, 'shape', type(codes).__name__)}")
    if int(n) < 1:
        raise ValueError(f"n must be positive, got {n}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    g = torch.Generator().manual_seed(int(seed))
    c = codes.detach().cpu().double()
    if source == "gan":
        if gan is None:
            raise ValueError("source 'gan' needs gan= (a trained LatentGenerator)")
        dev = next(gan.parameters()).device
        return gan.sample(int(n), generator=torch.Generator(device=dev).manual_seed(int(seed))).cpu()
    if source == "gaussian":
        mean = c.mean(0)
        w = torch.randn(int(n), c.shape[0], generator=g, dtype=torch.float64)
        return (mean + w @ (c - mean) / math.sqrt(c.shape[0] - 1)).to(codes.dtype)
    idx = torch.randint(0, c.shape[0], (int(n),), generator=g)
    std = c.std(0)
    return (c[idx] + float(noise) * std * torch.randn(int(n), c.shape[1], generator=g, dtype=torch.float64)
            ).to(codes.dtype)


def nearest_category(clouds: Tensor, train_points: Tensor, train_categories: Sequence[str]) -> list[str]:
    """The category of each cloud's nearest training cloud under Chamfer (which category a generated shape resembles).

    Introduced in ``lectures/10_gradient_fields.ipynb``: how a generator spreads its samples over the
    categories (a GAN that drops a category gives it no sample).
    """
    from course_lib.metrics_generation import pairwise_distances

    if len(train_categories) != len(train_points):
        raise ValueError(f"{len(train_categories)} categories for {len(train_points)} training clouds")
    n = min(int(clouds.shape[1]), int(train_points.shape[1]))
    d = pairwise_distances(clouds[:, :n], train_points[:, :n], "cd", batch_size=16)
    return [str(train_categories[int(i)]) for i in d.argmin(dim=1)]


def noisy_training_baseline(train_points: Tensor, n_shapes: int, noise: float = 0.02, seed: int = 0) -> Tensor:
    """The trivial "generator": ``n_shapes`` random training clouds plus Gaussian noise of std ``noise``.

    Introduced in ``lectures/10_gradient_fields.ipynb`` so that 1-NNA has a reference point:
    a model that only memorises scores about what this does.
    """
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(train_points), (int(n_shapes),), generator=g)
    x = train_points[idx]
    return x + noise * torch.randn(x.shape, generator=g, dtype=x.dtype)


_GEN_NAMES = {"cd": ("MMD-CD x1e3", "COV-CD %", "1-NNA-CD %"), "emd": ("MMD-EMD x1e2", "COV-EMD %", "1-NNA-EMD %")}


def _gen_inputs(samples: Tensor, refs: Tensor, metric: str, n_points: int | None) -> tuple[Tensor, Tensor]:
    if metric not in _GEN_NAMES:
        raise ValueError(f"metric must be one of {tuple(_GEN_NAMES)}, got {metric!r}")
    if not isinstance(samples, Tensor) or not isinstance(refs, Tensor) or samples.dim() != 3 or refs.dim() != 3:
        raise ValueError("samples and refs must be (S, N, 3) tensors")
    if n_points is not None:
        if int(n_points) < 1:
            raise ValueError(f"n_points must be positive, got {n_points}")
        samples, refs = samples[:, :int(n_points)], refs[:, :int(n_points)]
    if metric == "emd" and samples.shape[1] != refs.shape[1]:
        raise ValueError(f"EMD needs samples and references of equal size, got {samples.shape[1]} and "
                         f"{refs.shape[1]} points (pass n_points=)")
    return samples, refs


def generation_table(samples: dict[str, Tensor], refs: Tensor, metrics: Sequence[str] = ("cd",), *,
                     n_points: dict[str, int] | None = None) -> dict[str, dict[str, float]]:
    """MMD, COV and 1-NNA of each set of samples against ``refs`` (PointFlow), for each of ``metrics``.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  ``metrics``: ``"cd"`` (MMD-CD x1e3, COV-CD %,
    1-NNA-CD %) and ``"emd"`` (exact EMD: MMD-EMD x1e2, COV-EMD %, 1-NNA-EMD %).  ``n_points`` maps a
    metric to the number of points of each cloud it uses (the first ones: the samplings are i.i.d.),
    e.g. ``{"emd": 512}``, since the exact matching costs ``O(N^3)`` per pair.
    """
    from course_lib.metrics_generation import SCALES, generation_metrics

    out: dict[str, dict[str, float]] = {}
    for name, smp in samples.items():
        out[name] = {}
        for metric in metrics:
            a, r = _gen_inputs(smp, refs, metric, (n_points or {}).get(metric))
            m = generation_metrics(a, r, metric)
            mmd, cov, nna = _GEN_NAMES[metric]
            out[name].update({mmd: m["mmd"] * SCALES[f"mmd-{metric}"], cov: m["cov"] * SCALES["cov"],
                              nna: m["1-nna"] * SCALES["1-nna"]})
    return out


def _per_index_from_matrices(m_rr: Tensor, m_ss: Tensor, m_rs: Tensor) -> dict[str, Tensor]:
    """The per-index parts of MMD, COV and 1-NNA (raw values) from PointFlow's three distance matrices."""
    r, n = m_rs.shape
    if m_rr.shape != (r, r) or m_ss.shape != (n, n) or r != n or r < 2:
        raise ValueError(f"per-index generation metrics need as many samples as references (>= 2), and square "
                         f"m_rr / m_ss; got m_rr {tuple(m_rr.shape)}, m_ss {tuple(m_ss.shape)}, m_rs {tuple(m_rs.shape)}")
    mmd = m_rs.double().min(dim=1).values
    covered = torch.zeros(r, dtype=torch.float64)
    covered[torch.unique(m_rs.argmin(dim=0))] = 1.0
    full = torch.cat([torch.cat([m_rr, m_rs], 1), torch.cat([m_rs.t(), m_ss], 1)], 0).double().clone()
    full.fill_diagonal_(float("inf"))
    label = torch.cat([torch.ones(r), torch.zeros(n)]).double()
    correct = (label[full.argmin(dim=1)] == label).double()
    return {"mmd": mmd, "cov": covered, "1-nna": 0.5 * (correct[:r] + correct[r:])}


def generation_per_reference(samples: Tensor, refs: Tensor, metric: str = "cd", *, n_points: int | None = None,
                             m_rr: Tensor | None = None, batch_size: int = 16) -> dict[str, list[float]]:
    """MMD, COV and 1-NNA under ``metric`` (``"cd"`` or exact ``"emd"``) split into one value per reference shape.

    Introduced in ``lectures/10_gradient_fields.ipynb``, so that two generators can be compared
    over the same held-out shapes (a paired claim): the mean of each list is the number of
    :func:`generation_table`.  With ``M_rs = d(ref_r, sample_s)``: ``MMD`` holds, for each
    reference ``r``, ``min_s M_rs``; ``COV`` holds 100 when some sample has ``r`` as its nearest
    reference, else 0; ``1-NNA`` holds, for index ``i``, the mean of the leave-one-out 1-NN
    verdicts (100 correct, 0 wrong) of reference ``i`` and of sample ``i`` (so it needs as many
    samples as references; the samples' order is arbitrary, which only loosens the pairing).
    Keys: ``"MMD-CD x1e3"``, ``"COV-CD %"``, ``"1-NNA-CD %"`` (or the ``EMD`` names, MMD x1e2).
    ``n_points``: use the first ``n_points`` of every cloud; ``m_rr``: the references' own distance
    matrix under the same metric and points, when already computed (it does not depend on the samples).
    ``batch_size``: cloud pairs per distance call (16 kept the ``(16, N, N)`` Chamfer blocks in cache on a
    2-core CPU, about twice as fast as 64 at 1,024 points; the values do not depend on it).
    """
    from course_lib.metrics_generation import SCALES, pairwise_distances

    samples, refs = _gen_inputs(samples, refs, metric, n_points)
    if len(samples) != len(refs):
        raise ValueError(f"generation_per_reference needs as many samples as references, got {len(samples)} "
                         f"and {len(refs)}")
    if m_rr is None:
        m_rr = pairwise_distances(refs, refs, metric, batch_size=batch_size)
    parts = _per_index_from_matrices(m_rr, pairwise_distances(samples, samples, metric, batch_size=batch_size),
                                     pairwise_distances(refs, samples, metric, batch_size=batch_size))
    mmd, cov, nna = _GEN_NAMES[metric]
    return {mmd: (parts["mmd"] * SCALES[f"mmd-{metric}"]).tolist(), cov: (parts["cov"] * SCALES["cov"]).tolist(),
            nna: (parts["1-nna"] * SCALES["1-nna"]).tolist()}


def nna_gap_values(values: Sequence[float], ideal: float = 50.0) -> list[float]:
    """Per-index parts of ``|1-NNA - ideal|`` (the distance from the ideal 50%) for a paired claim.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  1-NNA is best at 50% (the sets cannot be
    told apart), not at 0: a set below 50% (copies of training shapes near the references) is as
    far from ideal as one the same distance above.  ``values`` are :func:`generation_per_reference`'s
    ``"1-NNA-CD %"``; each becomes ``sign(mean - ideal) * (v - ideal)`` (sign +1 at the ideal), so
    the mean of the result is ``|mean(values) - ideal|`` and two such lists can be paired.
    """
    v = [float(x) for x in values]
    if not v:
        raise ValueError("nna_gap_values needs at least one value")
    sign = 1.0 if sum(v) / len(v) >= ideal else -1.0
    return [sign * (x - ideal) for x in v]


@torch.no_grad()
def code_drift(model: Any, inputs: Tensor, sizes: Sequence[int], *, reference: int | None = None,
               batch_size: int = 32) -> dict[str, Any]:
    """How far the encoder's code moves when it sees only the first ``k`` points of each input, per shape.

    Introduced in ``lectures/10_gradient_fields.ipynb`` (the upsampling table's sparse end).  For each
    ``k`` in ``sizes``: ``||z(x[:k]) - z(x[:reference])|| / D`` per shape, with ``D`` the median distance
    between the codes of two different shapes at ``reference`` points (default: the largest of ``sizes``),
    so that models whose codes have different scales are compared in units of "how far apart two shapes
    are".  Returns ``{"reference": reference, "spacing": D, "drift": {k: [one value per shape]}}``.
    """
    sizes = sorted({int(k) for k in sizes})
    if not sizes or sizes[0] < 1 or sizes[-1] > inputs.shape[1]:
        raise ValueError(f"sizes must be in 1..{inputs.shape[1]}, got {sizes}")
    if len(inputs) < 2:
        raise ValueError("code_drift needs at least two shapes (the spacing is between shapes)")
    ref = int(sizes[-1] if reference is None else reference)
    z_ref = _codes(model, inputs[:, :ref], batch_size).double()
    pair = torch.cdist(z_ref, z_ref)
    iu = torch.triu_indices(len(z_ref), len(z_ref), 1)
    spacing = float(pair[iu[0], iu[1]].median())
    if not spacing > 0:
        raise ValueError("every shape has the same code: the spacing between shapes is zero")
    drift = {k: ((_codes(model, inputs[:, :k], batch_size).double() - z_ref).norm(dim=1) / spacing).tolist()
             for k in sizes}
    return {"reference": ref, "spacing": spacing, "drift": drift}


# ---------------------------------------------------------------------------
# interpolation, sparse and partial inputs
# ---------------------------------------------------------------------------
@torch.no_grad()
def interpolate(model: Any, a: Tensor, b: Tensor, steps: int, n_points: int, *, seed: int = 0,
                profile: str | None = None) -> Tensor:
    """Decode ``steps`` codes on the segment between the codes of clouds ``a`` and ``b`` ``(N, 3)``.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  Returns ``(steps, n_points, 3)``.
    """
    s = _sizes(profile)
    dev = next(model.parameters()).device
    za, zb = model.encode(torch.stack([a, b]).to(dev))
    t = torch.linspace(0, 1, steps, device=dev)[:, None]
    z = (1 - t) * za + t * zb
    return model.sample(z, int(n_points), steps_per_level=int(s["steps_per_level"]),
                        generator=torch.Generator(device=dev).manual_seed(seed)).cpu()


def _occlude(points: Tensor, keep: float) -> Tensor:
    """Keep the ``keep`` fraction of each cloud nearest to a random-direction half space (an occlusion)."""
    g = torch.Generator().manual_seed(0)
    d = torch.randn(points.shape[0], 1, 3, generator=g)
    d = d / d.norm(dim=-1, keepdim=True)
    h = (points * d).sum(-1)
    k = max(1, int(keep * points.shape[1]))
    idx = h.argsort(dim=1)[:, :k]
    return torch.gather(points, 1, idx[..., None].expand(-1, -1, 3))


def sparse_and_partial(model: Any, inputs: Tensor, target: Tensor, *, sparse: Sequence[int] = (64, 32),
                       keep: float = 0.5, profile: str | None = None) -> dict[str, dict[str, float]]:
    """CD x1e4 of the reconstruction from dense, sparse (``sparse`` points) and half-occluded inputs.

    Introduced in ``lectures/10_gradient_fields.ipynb`` (the seed's "densify sparse data" and
    "object completion"); the output always has the target's number of points.
    """
    n_out = target.shape[1]
    cases = {f"dense ({inputs.shape[1]} pts)": inputs}
    for n in sparse:
        cases[f"sparse ({n} pts)"] = inputs[:, :n]
    cases[f"occluded (keep {keep:.0%})"] = _occlude(inputs, keep)
    out = {}
    for name, x in cases.items():
        pred = reconstruct(model, x, n_out, profile=profile)
        out[name] = {"CD x1e4": float(ae_metrics(pred, target, emd=False)["CD x1e4"].mean())}
    return out


# ---------------------------------------------------------------------------
# the field level by level; the noise schedule; speed and noise robustness
# ---------------------------------------------------------------------------
def score_error_per_level(score_fn: Any, points: Tensor, sigmas: Sequence[float] | Tensor, *,
                          n_eval: int = 1024, noise_dims: int = 3, seed: int = 0) -> list[dict[str, float]]:
    r"""The learned score against the analytic one, one row per noise level.

    Introduced in ``lectures/10_gradient_fields.ipynb`` (the learned score beside the analytic
    one).  For each ``sigma`` in ``sigmas`` draw ``n_eval`` points of the blurred cloud,
    :math:`\tilde x = p + \sigma\epsilon` (``p`` a random point of ``points`` ``(N, 3)``; the noise
    only in the first ``noise_dims`` coordinates, so ``noise_dims=2`` keeps a planar toy in its
    plane), and compare ``score_fn(x (1, M, 3), sigma (1,))`` with the analytic score
    :math:`\nabla\log Q_\sigma` of the cloud (:func:`~course_lib.models.shapegf.analytic_score`):

    * ``"error"``: :math:`E\|s_\theta(\tilde x,\sigma) - \nabla\log Q_\sigma(\tilde x)\|^2`;
    * ``"norm"``: :math:`E\|\nabla\log Q_\sigma(\tilde x)\|^2`;
    * ``"relative"``: their ratio (0 for the analytic field itself, 1 for a zero field);
    * ``"cosine"``: the mean cosine between the two vectors.

    The expectation is over the blurred cloud itself, the weighting of the denoising loss
    (Vincent 2011).  Returns ``[{"sigma", "error", "norm", "relative", "cosine"}, ...]``.
    """
    from course_lib.models.shapegf import analytic_score

    if not isinstance(points, Tensor) or points.dim() != 2 or points.shape[-1] != 3 or len(points) == 0:
        raise ValueError(f"points must be one non-empty cloud (N, 3), got {getattr(points, 'shape', type(points))}")
    if noise_dims not in (1, 2, 3):
        raise ValueError(f"noise_dims must be 1, 2 or 3, got {noise_dims!r}")
    if int(n_eval) < 1:
        raise ValueError(f"n_eval must be positive, got {n_eval!r}")
    g = torch.Generator().manual_seed(int(seed))
    rows = []
    for s in [float(v) for v in torch.as_tensor(sigmas).reshape(-1).tolist()]:
        if not s > 0:
            raise ValueError(f"noise levels must be positive, got {s}")
        idx = torch.randint(0, len(points), (int(n_eval),), generator=g)
        eps = torch.randn(int(n_eval), 3, generator=g)
        eps[:, noise_dims:] = 0.0
        x = (points[idx.to(points.device)] + s * eps.to(points.device, points.dtype))[None]
        ref = analytic_score(x, points[None], s)
        with torch.no_grad():
            est = score_fn(x, torch.full((1,), s, dtype=x.dtype, device=x.device))
        if not isinstance(est, Tensor) or est.shape != x.shape:
            raise ValueError(f"score_fn must return a tensor of shape {tuple(x.shape)}, got "
                             f"{getattr(est, 'shape', type(est).__name__)}")
        err = float((est - ref).square().sum(-1).mean())
        nrm = float(ref.square().sum(-1).mean())
        cos = float(torch.nn.functional.cosine_similarity(est, ref, dim=-1).mean())
        rows.append({"sigma": s, "error": err, "norm": nrm, "relative": err / max(nrm, 1e-30), "cosine": cos})
    return rows


def dsm_per_level(predict: Any, points: Tensor, sigmas: Sequence[float] | Tensor, *, weighting: str = "ncsn",
                  seed: int = 0) -> list[float]:
    r"""The denoising loss of :func:`~course_lib.models.shapegf.dsm_loss` at each level separately.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  Every shape of ``points`` ``(B, N, 3)``
    is perturbed at the same level ``sigma``; ``predict(x~, sigma (B,))`` returns the
    displacement (``sigma^2`` times the score).  The noise of level ``i`` is drawn from a
    generator seeded with ``seed + i``, so two predictors called with the same ``seed`` are
    scored on the same perturbations (paired).  With ``weighting="ncsn"`` a zero predictor
    scores :math:`E\|\epsilon\|^2/2 = 3/2` at every level (in expectation).
    """
    from course_lib.models.shapegf import dsm_loss

    out = []
    for i, s in enumerate(float(v) for v in torch.as_tensor(sigmas).reshape(-1).tolist()):
        g = torch.Generator(device=points.device).manual_seed(int(seed) + i)
        loss = dsm_loss(predict, points, torch.tensor([s], dtype=points.dtype, device=points.device),
                        weighting=weighting, generator=g)
        out.append(float(loss))
    return out


@torch.no_grad()
def shapegf_dsm_per_level(model: Any, inputs: Tensor, targets: Tensor, *, sigmas: Sequence[float] | Tensor | None = None,
                          weighting: str | None = None, n_target: int | None = None, seed: int = 0,
                          profile: str | None = None) -> dict[str, list[float]]:
    """The per-level denoising loss of a trained ShapeGF auto-encoder on held-out shapes, with two references.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  The field is decoded from ``inputs``
    (stream 0) and scored on the first ``n_target`` points of ``targets`` (stream 1), every shape
    at each level of ``sigmas`` (default: the model's schedule) in turn, with the loss weight
    ``weighting`` (default ``ch10.weighting``).  Rows, each one value per level, on the same
    perturbations (:func:`dsm_per_level`):

    * ``"ShapeGF"``: the network;
    * ``"analytic field of the target points"``: the exact score of the very points being
      perturbed, the minimiser of this (empirical) loss: what no model can beat on these points;
    * ``"zero field"``: a predictor that returns 0 (``3/2`` in expectation with the NCSN weight).

    Returns ``{"sigma": [...], row: [...], ...}``.
    """
    from course_lib.models.shapegf import analytic_score

    weighting = str(_sizes(profile)["weighting"] if weighting is None else weighting)
    sig = model.sigmas if sigmas is None else torch.as_tensor(sigmas)
    tgt = targets if n_target is None else targets[:, :int(n_target)]
    was = model.training
    model.eval()
    try:
        z = model.encode(inputs)
        rows = {"sigma": [float(v) for v in torch.as_tensor(sig).reshape(-1).tolist()],
                "ShapeGF": dsm_per_level(lambda x, s: model.decoder(x, z, s), tgt, sig, weighting=weighting, seed=seed),
                "analytic field of the target points": dsm_per_level(
                    lambda x, s: s[:, None, None] ** 2 * analytic_score(x, tgt, s), tgt, sig, weighting=weighting,
                    seed=seed),
                "zero field": dsm_per_level(lambda x, s: torch.zeros_like(x), tgt, sig, weighting=weighting, seed=seed)}
    finally:
        model.train(was)
    return rows


def ncsn_overlap(gamma: float, dim: int, *, exact: bool = False) -> float:
    r"""NCSN's overlap of neighbouring noise levels for the ratio ``gamma = sigma_{i-1} / sigma_i > 1``.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  Song & Ermon (2020, "Improved
    techniques", technique 2) ask that a sample of level :math:`\sigma_i` in dimension ``D``
    land in the typical shell of level :math:`\sigma_{i-1}`, radius
    :math:`\sigma_{i-1}(\sqrt D \pm 3/\sqrt 2)`, with probability about one half.  Approximating the
    radius :math:`\|x\|/\sigma_i` by :math:`N(\sqrt D, 1/2)` gives their formula
    :math:`\Phi(\sqrt{2D}(\gamma-1)+3\gamma) - \Phi(\sqrt{2D}(\gamma-1)-3\gamma)` (the default).
    ``exact=True`` uses the radius's true law instead (:math:`\sigma_i\chi_D`), which matters
    in low dimension such as ``D = 3``.
    """
    from scipy import stats

    if isinstance(dim, bool) or int(dim) != dim or dim < 1:
        raise ValueError(f"dim must be a positive int, got {dim!r}")
    if not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma!r}")
    d = int(dim)
    if exact:
        lo, hi = max(gamma * (math.sqrt(d) - 3 / math.sqrt(2)), 0.0), gamma * (math.sqrt(d) + 3 / math.sqrt(2))
        return float(stats.chi.cdf(hi, d) - stats.chi.cdf(lo, d))
    a = math.sqrt(2 * d) * (gamma - 1)
    return float(stats.norm.cdf(a + 3 * gamma) - stats.norm.cdf(a - 3 * gamma))


def ncsn_ratio(dim: int, target: float = 0.5, *, exact: bool = False, max_gamma: float = 100.0) -> float | None:
    """The ratio ``gamma > 1`` at which :func:`ncsn_overlap` equals ``target`` (NCSN's rule), or ``None``.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  ``None`` when the overlap stays above
    ``target`` for every ratio up to ``max_gamma`` (low dimensions: with the Gaussian formula this
    happens whenever ``sqrt(2 D) <= 3``), so that the rule puts no bound on the spacing.
    """
    from scipy import optimize

    f = lambda g: ncsn_overlap(g, dim, exact=exact) - target  # noqa: E731
    grid = [1.0 + 1e-9] + [1.0 + 0.01 * k for k in range(1, 100)] + [2.0 + (max_gamma - 2.0) * k / 200
                                                                      for k in range(1, 201)]
    for a, b in zip(grid, grid[1:]):
        if f(a) > 0 >= f(b):
            return float(optimize.brentq(f, a, b, xtol=1e-10))
    return None


def noise_schedule_rule(clouds: Tensor, sigmas: Sequence[float] | Tensor, *, dim: int = 3) -> dict[str, Any]:
    """The course's noise schedule checked against NCSN's design rules (Song & Ermon 2020).

    Introduced in ``lectures/10_gradient_fields.ipynb``.  ``clouds`` ``(S, N, 3)`` are the training
    clouds (each shape's points are the samples of its own distribution, so the largest pairwise
    distance is taken within each shape), ``sigmas`` the schedule from large to small.  Returns

    * ``"max_pairwise"``: the largest distance between two points of one cloud, over the clouds,
      and ``"sigma_1 / max_pairwise"`` (technique 1 asks for about 1);
    * ``"ratios"``: :math:`\\sigma_{i-1}/\\sigma_i` for each neighbouring pair, ``"geometric"``: whether
      they agree to 1e-4 (technique 2 asks for a geometric progression);
    * ``"overlap"`` / ``"overlap_exact"``: :func:`ncsn_overlap` at the mean ratio in dimension
      ``dim`` (technique 2 asks for about 0.5), and ``"rule_ratio"``: :func:`ncsn_ratio` (``None``:
      no bound in that dimension).
    """
    if not isinstance(clouds, Tensor) or clouds.dim() != 3 or clouds.shape[-1] != 3 or clouds.shape[1] < 2:
        raise ValueError(f"clouds must be (S, N >= 2, 3), got {getattr(clouds, 'shape', type(clouds))}")
    sig = [float(v) for v in torch.as_tensor(sigmas).reshape(-1).tolist()]
    if len(sig) < 2 or any(a <= b for a, b in zip(sig, sig[1:])) or sig[-1] <= 0:
        raise ValueError(f"sigmas must be at least two positive levels from large to small, got {sig}")
    dmax = max(float(torch.cdist(c[None].double(), c[None].double()).max()) for c in clouds)
    ratios = [a / b for a, b in zip(sig, sig[1:])]
    gamma = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    return {"max_pairwise": dmax, "sigma_1": sig[0], "sigma_1 / max_pairwise": sig[0] / dmax, "ratios": ratios,
            "gamma": gamma, "geometric": max(abs(r / gamma - 1) for r in ratios) < 1e-4, "dim": int(dim),
            "overlap": ncsn_overlap(gamma, dim), "overlap_exact": ncsn_overlap(gamma, dim, exact=True),
            "rule_ratio": ncsn_ratio(dim)}


def add_input_noise(inputs: Tensor, noise: float, *, seed: int = 0) -> Tensor:
    """``inputs + noise * N(0, I)`` (a noisy scan of each cloud), reproducible through ``seed``.

    Introduced in ``lectures/10_gradient_fields.ipynb`` (robustness to noisy inputs).
    """
    if not noise >= 0:
        raise ValueError(f"noise must be non-negative, got {noise!r}")
    g = torch.Generator().manual_seed(int(seed))
    return inputs + float(noise) * torch.randn(inputs.shape, generator=g, dtype=inputs.dtype).to(inputs.device)


def noise_robustness(models: dict[str, Any], inputs: Tensor, target: Tensor, noises: Sequence[float], *,
                     seed: int = 0, profile: str | None = None,
                     per_shape: dict[str, dict[float, list[float]]] | None = None) -> dict[str, dict[float, float]]:
    """Mean CD x1e4 of each model's reconstruction from inputs with Gaussian noise of each std in ``noises``.

    Introduced in ``lectures/10_gradient_fields.ipynb`` (the seed's critique: "noise").  ``models``
    maps a name to a ShapeGF auto-encoder (sampled by :func:`reconstruct`) or to a baseline
    (:func:`predict_baseline`); every model gets the same noisy inputs.  The output always has
    the target's number of points.  Returns ``{name: {noise: CD x1e4}}``; a dict passed as
    ``per_shape`` is filled with ``{name: {noise: [CD x1e4 of each shape]}}`` (for paired claims).
    """
    n_out = target.shape[1]
    out: dict[str, dict[float, float]] = {name: {} for name in models}
    for k, noise in enumerate(noises):
        x = add_input_noise(inputs, float(noise), seed=int(seed) + k)
        for name, m in models.items():
            pred = _reconstruct_any(m, x, n_out, profile)
            cd = ae_metrics(pred, target, emd=False)["CD x1e4"]
            out[name][float(noise)] = float(cd.mean())
            if per_shape is not None:
                per_shape.setdefault(name, {})[float(noise)] = [float(v) for v in cd.reshape(-1).tolist()]
    return out


def _reconstruct_any(model: Any, inputs: Tensor, n_out: int, profile: str | None) -> Tensor:
    if hasattr(model, "decoder") and hasattr(model, "sample"):
        return reconstruct(model, inputs, n_out, profile=profile)
    return predict_baseline(model, inputs, n_out)


def rotation_robustness(models: dict[str, Any], inputs: Tensor, target: Tensor, angles_deg: Sequence[float], *,
                        profile: str | None = None,
                        per_shape: dict[str, dict[float, list[float]]] | None = None) -> dict[str, dict[float, float]]:
    """Mean CD x1e4 of each model's reconstruction of shapes turned about the up axis ``y``.

    Introduced in ``lectures/10_gradient_fields.ipynb`` (the seed's critique: "rotation").  For each
    angle (degrees) the inputs and the targets are turned by the same rotation
    (:func:`course_lib.experiments.encoders.rotate_up`), so a model that followed the rotation would
    score as at 0 degrees.  The training shapes were all upright and aligned.  Returns
    ``{name: {angle: CD x1e4}}``; a dict passed as ``per_shape`` is filled with
    ``{name: {angle: [CD x1e4 of each shape]}}``.
    """
    from .encoders import rotate_up

    n_out = target.shape[1]
    out: dict[str, dict[float, float]] = {name: {} for name in models}
    for angle in angles_deg:
        a = torch.full((len(inputs),), math.radians(float(angle)), dtype=inputs.dtype)
        x, t = rotate_up(inputs, a), rotate_up(target, a.to(target.dtype))
        for name, m in models.items():
            pred = _reconstruct_any(m, x, n_out, profile)
            cd = ae_metrics(pred, t, emd=False)["CD x1e4"]
            out[name][float(angle)] = float(cd.mean())
            if per_shape is not None:
                per_shape.setdefault(name, {})[float(angle)] = [float(v) for v in cd.reshape(-1).tolist()]
    return out


def robustness_claims(per_shape: dict[str, dict[float, list[float]]], *, study: str, unit_label: str,
                      reference: str = "ShapeGF", budget: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Claim records of one robustness study: the rise of CD from the clean input to the harshest
    setting, ``reference`` against every other model, paired over the shapes.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  ``per_shape`` is the dict filled by
    :func:`noise_robustness` or :func:`rotation_robustness` (it must hold the setting ``0`` and at
    least one other); ``study`` names the claims (``"noise"``, ``"rotation"``), ``unit_label`` the
    setting's unit in the sentence (``"input noise std"``, ``"degrees about y"``).  The model whose
    CD rises less is ahead (lower is better).  Needs at least 20 shapes (the protocol's minimum).
    """
    from .protocol import claim

    if reference not in per_shape:
        raise ValueError(f"reference {reference!r} is not among the models {sorted(per_shape)}")
    settings = sorted(per_shape[reference])
    if 0.0 not in settings or len(settings) < 2:
        raise ValueError(f"the {study} study needs the clean setting 0 and at least one other, got {settings}")
    worst = max(settings, key=abs)

    def rise(name: str) -> list[float]:
        row = per_shape[name]
        if 0.0 not in row or worst not in row:
            raise ValueError(f"model {name!r} lacks setting 0 or {worst:g} in the {study} study")
        return [b - a for a, b in zip(row[0.0], row[worst])]

    out = []
    for name in per_shape:
        if name == reference:
            continue
        slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        out.append(claim(f"{study}_rise_vs_{slug}",
                         f"{reference}'s CD rises less than {name}'s from clean inputs to {worst:g} {unit_label}",
                         a=reference, b=name, metric=f"CD x1e4 at {worst:g} {unit_label} minus CD x1e4 at 0",
                         values_a=rise(reference), values_b=rise(name), higher_is_better=False, unit="shapes",
                         budget=budget, selected_on="val"))
    return out


def seconds_per_shape(fn: Any, inputs: Tensor, *, repeat: int = 1) -> float:
    """Wall-clock seconds per shape of ``fn(inputs)`` (the best of ``repeat`` runs, after one warm-up shape).

    Introduced in ``lectures/10_gradient_fields.ipynb`` (inference time against the baselines).
    """
    if len(inputs) == 0:
        raise ValueError("inputs is empty: no shape to time")
    fn(inputs[:1])
    best = float("inf")
    for _ in range(max(1, int(repeat))):
        t0 = time.perf_counter()
        fn(inputs)
        best = min(best, time.perf_counter() - t0)
    return best / len(inputs)


# ---------------------------------------------------------------------------
# GPU smoke hook
# ---------------------------------------------------------------------------
def smoke(device: str = "cpu", steps: int = 1, profile: str = "gpu") -> dict[str, float]:
    """A few DSM steps of the ShapeGF auto-encoder and the latent GAN on ``device`` (``profile`` sizes).

    Introduced for ``benchmarks/gpu_smoke.py``: synthetic clouds, no checkpoint, no data generation.
    """
    from course_lib.models.shapegf import LatentDiscriminator, zero_centered_penalty

    from .common import smoke_steps, synthetic_clouds

    s = _sizes(profile)
    b = int(s["batch_size"])
    x = synthetic_clouds(b, int(s["n_points"]), device="cpu")
    torch.manual_seed(0)
    out: dict[str, float] = {}
    r = smoke_steps(build_shapegf(profile), {"input": x, "target": x},
                    shapegf_loss_fn(int(s["n_dsm"]), s["weighting"]), steps=steps, device=device, lr=float(s["lr"]))
    out.update({f"ae_{k}": v for k, v in r.items()})
    codes = torch.randn(max(b, 2), int(s["latent_dim"]))

    def gan_loss(d: Any, batch: dict[str, Tensor]) -> Tensor:
        return -d(batch["z"]).mean() + zero_centered_penalty(d, batch["z"])

    r = smoke_steps(LatentDiscriminator(int(s["latent_dim"])), {"z": codes}, gan_loss, steps=steps, device=device)
    out.update({f"disc_{k}": v for k, v in r.items()})
    return out
