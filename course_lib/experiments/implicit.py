"""The experiments of chapter 07 (implicit fields), shared by the lecture, the lab and the benchmark.

Introduced in ``lectures/07_implicit_fields.ipynb``.

* :func:`implicit_data`: ShapeNet-lite input clouds, target surface samples and a pool of
  occupancy or SDF samples per shape, drawn ``"uniform"`` (in ``[-1, 1]^3``), ``"near"`` (the
  surface plus Gaussian noise at two scales) or ``"mix"`` (half and half).  Labels are exact
  (the shapes' analytic SDF): no watertight pre-processing, no rendering;
* :func:`build_occnet`, :func:`train_occnet`: point cloud -> surface with an Occupancy Network
  (PointNet encoder, conditional-BN decoder) or the IM-NET decoder, trained with
  :func:`course_lib.train.train_or_load`;
* :func:`build_deepsdf`, :func:`train_deepsdf`, :func:`reconstruct_unseen`: the DeepSDF
  auto-decoder and the test-time latent optimisation of unseen shapes;
* :func:`evaluate_fields`: IoU, Chamfer-L1 (OccNet's convention), normal consistency, F-score and
  the thin-part completeness of extracted meshes on held-out shapes;
* :func:`occnet_setting`, :func:`occnet_epochs`, :func:`train_occnet_setting`, :func:`occnet_budget`,
  :func:`held_out_iou`: one OccNet training configuration (shapes per category, epochs, queries per
  step, sampling, schedule), its budget and the validation score ``benchmarks/implicit.py`` chooses
  each of them with (protocol 2: choices on ``val``, ``test`` read once, to report); the sampling
  study (uniform, mixed and near-surface samples, compared on thin parts: chair legs, lamp stems,
  mug handles) is that benchmark's sampling selection read on test;
* :func:`mise_experiment`: hierarchical against dense extraction (evaluations, Chamfer).

Splits are those of :class:`course_lib.data.ShapeNetLite`: "val" shapes (``ch07.val_per_category``)
choose, "test" shapes report; neither is seen in training.  Conventions of every number are in
:data:`CONVENTIONS`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import trimesh
from torch import Tensor, nn

from course_lib import config
from course_lib import metrics as _metrics
from course_lib import train as _train
from course_lib.data import SAMPLING_STREAMS, make_shape
from course_lib.experiments.common import dataset_checkpoint_name, real_dataset
from course_lib.experiments.mesh_shape import MeshShape, row_shape
from course_lib.experiments.protocol import budget as _budget
from course_lib.geometry.extract import field_grid, hierarchical_extract, hierarchical_grid
from course_lib.geometry.mc import marching_cubes
from course_lib.models.encoders import PointNet
from course_lib.models.implicit import (
    AutoDecoder,
    DeepSDFDecoder,
    IMNetDecoder,
    OccNetDecoder,
    OccupancyNetwork,
    deepsdf_loss,
    field_of,
    reconstruct_latent,
)

__all__ = [
    "CONVENTIONS", "THIN_PARTS", "SAMPLINGS", "BOUND", "OCCNET_GOAL", "occnet_goal_met", "implicit_data",
    "occnet_train_data", "QuerySampler", "build_occnet", "OCCNET_SAMPLINGS", "PAPER_N_QUERY", "occnet_epochs",
    "occnet_setting", "setting_key", "train_occnet_setting", "occnet_budget", "held_out_iou",
    "occnet_loss_fn", "train_occnet", "build_deepsdf", "sdf_loss_fn", "train_deepsdf", "encode",
    "extract", "field_iou", "thin_part_ids", "thin_part_sdf", "evaluate_fields", "reconstruct_unseen", "oracle_chamfer",
    "held_out_inputs", "mise_experiment", "smoke", "retrieved_iou",
]

OCCNET_THRESHOLD = 0.2
"""OccNet's evaluation threshold on the occupancy probability (``test.threshold`` of its configs)."""

OCCNET_GOAL: dict[str, float] = {"iou": 0.85, "train_seconds": 300.0}
"""The chapter's goal for OccNet, point cloud -> surface on held-out shapes (laptop profile): IoU at
p > 0.5 and the most seconds of training (issue 15); the benchmark's report and the lecture check it."""


def occnet_goal_met(run: dict[str, Any]) -> bool:
    """Whether a benchmark run (``metrics.iou`` as [mean, s.e.] and ``train_seconds``) meets :data:`OCCNET_GOAL`."""
    return float(run["metrics"]["iou"][0]) >= OCCNET_GOAL["iou"] and \
        float(run["train_seconds"]) <= OCCNET_GOAL["train_seconds"]

BOUND = 1.05
"""Half side of the extraction box (the shapes lie in the unit sphere)."""

SAMPLINGS: dict[str, float] = {"uniform": 0.0, "mix": 0.5, "near": 1.0, "deepsdf": 47 / 50}
"""Sampling strategies and their share of near-surface samples (DeepSDF: 47/50 near the surface)."""

OCCNET_SAMPLINGS: tuple[str, ...] = ("near", "mix", "uniform")
"""The samplings OccNet's training is chosen among (on val) and the sampling study compares (on test)."""

PAPER_N_QUERY = 2048
"""OccNet's occupancy samples per shape and step (``training.points_subsample`` of its configs)."""

THIN_PARTS: dict[str, tuple[str, ...]] = {
    "chair": ("leg",), "table": ("leg",), "lamp": ("stem",), "mug": ("handle",), "bench": ("leg",),
    "sofa": ("leg",), "bottle": ("neck",),
}
"""The thin parts of each category (ShapeNet-lite part names) the sampling experiment looks at."""

CONVENTIONS = {
    "iou": "volumetric IoU of the predicted occupancy (network at its level) and the exact one at uniform "
           "points in [-1, 1]^3",
    "iou_t02": "the same IoU with OccNet's evaluation threshold: probability 0.2 (test.threshold), a logit of "
               "log(0.2 / 0.8); occupancy (logit) decoders only",
    "cd_l1": "Chamfer-L1 as OccNet's formula: (accuracy + completeness) / 2 with unsquared nearest-neighbour "
             "distances, in the course's frame (shapes in the unit sphere); OccNet's tables use a tenth of each "
             "object's longest bounding-box edge as the unit (x10 on their unit-cube meshes), about 5x our values",
    "nc": "normal consistency as OccNet: mean |cos| of the nearest neighbours' normals, both directions / 2",
    "fscore": "F-score at tau = ch07.fscore_tau (unit-sphere shapes)",
    "thin_cd": "completeness on thin parts: mean unsquared distance from ground-truth surface samples of the "
               "thin parts to the predicted surface",
    "thin_recall": "share of the thin parts' ground-truth surface samples within tau of the predicted surface",
    "cd_deepsdf": "Chamfer as DeepSDF: " + _metrics.describe_chamfer("deepsdf"),
}
"""What each reported metric means (the lecture and the benchmark print these)."""


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
def _sizes(profile: str | None) -> dict[str, Any]:
    return dict(config.sizes(profile, prefix="ch07."))


_SPLIT_SIZE = {"train": "train_per_category", "val": "val_per_category", "test": "test_per_category"}


def implicit_data(split: str, *, kind: str = "occupancy", sampling: str = "mix",
                  categories: Sequence[str] | None = None, per_category: int | None = None,
                  n_pool: int | None = None, n_target: int | None = None, sigmas: Sequence[float] = (0.01, 0.05),
                  profile: str | None = None, seed: int = 0, dataset: str | None = None,
                  root: str | None = None) -> dict[str, Any]:
    """One split of ShapeNet-lite for implicit models, stacked in memory.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  ``split`` is ``"train"``, ``"val"`` or
    ``"test"``, with ``ch07.train_per_category``, ``ch07.val_per_category`` or
    ``ch07.test_per_category`` shapes per category unless ``per_category`` says otherwise.

    Keys: ``points``, ``normals`` (S, P, 3) surface samples (stream 0: the encoder's input pool);
    ``target_points``, ``target_normals`` (S, n_target, 3) (stream 1: what meshes are scored
    against); ``query`` (S, n_pool, 3) and ``occupancy`` (bool) or ``sdf`` (float) (S, n_pool):
    the training samples drawn by ``sampling`` (:data:`SAMPLINGS`; near-surface points are
    input-pool points plus Gaussian noise, the ``sigmas`` in equal shares); ``label``, ``seed``,
    ``category``, ``categories``.  SDF labels are the shapes' (exact outside, a bound inside).

    ``dataset`` / ``root`` (or ``COURSE_DATASET`` and ``COURSE_MODELNET_DIR`` / ``COURSE_SHAPENET_DIR``) read a
    real dataset's meshes instead: ``query`` and its labels are then
    :func:`~course_lib.experiments.common.load_split`'s ``occupancy`` / ``sdf`` samples of the repaired mesh
    (:class:`course_lib.data.real_split.RealShapes`: the winding-number sign, ``n_pool`` samples, meshes whose
    inside cannot be decided skipped and listed in ``manifest``), whose share near the surface is fixed: half
    for occupancy (``sampling="mix"``, the only one accepted) and 80 % for SDF (``sampling="deepsdf"``, the only
    one accepted, recorded as ``"real-near80"``); any other sampling raises ``NotImplementedError``.  The rows
    also carry ``path`` and ``dataset``.
    """
    from course_lib.data.real_split import dataset_name
    from course_lib.experiments.common import load_split

    if kind not in ("occupancy", "sdf"):
        raise ValueError(f"kind must be 'occupancy' or 'sdf', got {kind!r}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {tuple(SAMPLINGS)}, got {sampling!r}")
    s = _sizes(profile)
    cats = tuple(categories) if categories is not None else tuple(s["categories"])
    if split not in _SPLIT_SIZE:
        raise ValueError(f"split must be one of {tuple(_SPLIT_SIZE)}, got {split!r}")
    per = int(per_category if per_category is not None else s[_SPLIT_SIZE[split]])
    n_pool = int(n_pool if n_pool is not None else s["n_pool"])
    if n_target is None:  # scoring needs dense target samples; training shapes only need their input pool
        n_target = int(s["n_eval_points"]) if split != "train" else None
    name = dataset_name(dataset)
    if name != "shapenet-lite":
        return _real_implicit_data(name, root, split, kind, sampling, cats, per, n_pool, n_target, profile)
    if root is not None:
        raise ValueError("root= is for real datasets (dataset='modelnet' or 'shapenetcore')")
    data = load_split(split, ("points", "target_points"), categories=cats, shapes_per_category=per,
                      profile=profile, n_target=n_target)
    g = torch.Generator().manual_seed(int(seed) * 1000 + list(SAMPLINGS).index(sampling) + 17 * (split == 'train'))
    frac = SAMPLINGS[sampling]
    sig = torch.tensor([float(x) for x in sigmas])
    queries, labels = [], []
    for i, (cat, sd) in enumerate(zip(data["category"], data["seed"].tolist())):
        shape = make_shape(cat, int(sd))
        n_near = int(round(frac * n_pool))
        base = data["points"][i]
        pick = torch.randint(0, base.shape[0], (n_near,), generator=g)
        scale = sig[torch.arange(n_near) % len(sig)]
        near = base[pick] + torch.randn(n_near, 3, generator=g) * scale[:, None]
        uni = torch.rand(n_pool - n_near, 3, generator=g) * 2 - 1
        q = torch.cat([near, uni])[torch.randperm(n_pool, generator=g)].clamp(-1, 1)
        with torch.no_grad():
            d = shape.sdf(q).float()
        queries.append(q)
        labels.append(d < 0 if kind == "occupancy" else d)
    data["query"] = torch.stack(queries)
    data["occupancy" if kind == "occupancy" else "sdf"] = torch.stack(labels)
    data["sampling"] = sampling
    return data


_REAL_SAMPLING = {"occupancy": ("mix", "mix"), "sdf": ("deepsdf", "real-near80")}
"""On a real dataset: the one sampling each kind accepts, and the name its rows record."""


def _real_implicit_data(name: str, root: str | None, split: str, kind: str, sampling: str, cats: tuple[str, ...],
                        per: int, n_pool: int, n_target: int | None, profile: str | None) -> dict[str, Any]:
    from course_lib.experiments.common import load_split, tag_dataset

    accepted, recorded = _REAL_SAMPLING[kind]
    if sampling != accepted:
        raise NotImplementedError(
            f"implicit_data(sampling={sampling!r}, kind={kind!r}) needs ShapeNet-lite's exact shapes (it labels its own "
            f"queries from each shape's category and seed) and cannot run on {name}: there the {kind} samples are "
            f"load_split's ({'half' if kind == 'occupancy' else '80 %'} near the surface); use sampling={accepted!r} "
            "or dataset='shapenet-lite'")
    data = load_split(split, ("points", "target_points", kind), categories=cats, shapes_per_category=per,
                      profile=profile, n_target=n_target, n_sdf=n_pool, dataset=name, root=root)
    if kind == "occupancy":
        data["query"], data["occupancy"] = data.pop("occ_points").float(), data["occupancy"].bool()
    else:
        data["query"], data["sdf"] = data.pop("sdf_points").float(), data["sdf"].float()
    data["sampling"] = recorded
    return tag_dataset(data, name, cats, split)


def occnet_train_data(profile: str | None = None, *, per_category: int | None = None,
                      sampling: str | None = None, dataset: str | None = None,
                      root: str | None = None) -> dict[str, Any]:
    """The Occupancy Network's training split: :func:`implicit_data` with ``ch07.occnet_train_per_category``
    shapes per category and ``ch07.occnet_sampling`` samples (both overridable).

    Introduced in ``lectures/07_implicit_fields.ipynb``.  ShapeNet-lite's shapes cost nothing to make, so
    the laptop profile trains OccNet on more shapes for fewer epochs than DeepSDF and the sampling study
    (``ch07.train_per_category``); ``benchmarks/implicit.py`` measures it against the smaller set at the
    same number of steps.  The samples are near the surface by default (OccNet's own ablation preferred
    uniform ones; the sampling study of this chapter measures all three).  ``dataset`` / ``root`` (or
    ``COURSE_DATASET``): a real dataset's meshes with its occupancy samples (``"mix"``, :func:`implicit_data`).
    """
    s = _sizes(profile)
    per = int(per_category if per_category is not None else s["occnet_train_per_category"])
    if per < 1:
        raise ValueError(f"per_category must be a positive number of shapes, got {per}")
    from course_lib.data.real_split import dataset_name

    if sampling is None and dataset_name(dataset) != "shapenet-lite":
        sampling = _REAL_SAMPLING["occupancy"][0]  # a real dataset's occupancy samples (half near the surface)
    return implicit_data("train", sampling=str(sampling if sampling is not None else s["occnet_sampling"]),
                         per_category=per, profile=profile, dataset=dataset, root=root)


class QuerySampler:
    """``Batches`` transform: ``n_query`` random samples per shape and a noisy ``n_input``-point input cloud.

    Introduced in ``lectures/07_implicit_fields.ipynb`` (OccNet: 2048 samples per shape per step,
    300 input points with noise std 0.005).
    """

    def __init__(self, n_query: int, n_input: int | None = None, noise: float = 0.0) -> None:
        self.n_query, self.n_input, self.noise = int(n_query), None if n_input is None else int(n_input), float(noise)

    def __call__(self, batch: dict[str, Any], generator: torch.Generator) -> dict[str, Any]:  # noqa: D102
        from course_lib.experiments.common import subsample

        key = "occupancy" if "occupancy" in batch else "sdf"
        q, v = subsample(batch["query"], self.n_query, generator, others=(batch[key][..., None],))
        out = dict(batch)
        out["query"], out[key] = q, v[..., 0]
        if self.n_input is not None and "points" in batch:
            x = subsample(batch["points"], self.n_input, generator)
            if self.noise:
                x = x + self.noise * torch.randn(x.shape, generator=generator).to(x.device)
            out["input"] = x
        return out


# ---------------------------------------------------------------------------
# models and training
# ---------------------------------------------------------------------------
def build_occnet(decoder: str = "occnet", profile: str | None = None) -> OccupancyNetwork:
    """The chapter's encoder-decoder: PointNet (chapter 02) -> ``c`` -> OccNet or IM-NET decoder.

    Introduced in ``lectures/07_implicit_fields.ipynb``.
    """
    s = _sizes(profile)
    c, h = int(s["c_dim"]), int(s["hidden"])
    enc = PointNet(feat_dim=2 * h, hidden=(h // 2, h), out_dim=c)
    if decoder == "occnet":
        dec = OccNetDecoder(c, h, int(s["n_blocks"]))
    elif decoder == "imnet":
        dec = IMNetDecoder(c, (2 * h, 2 * h, h, h // 2))
    else:
        raise ValueError(f"decoder must be 'occnet' or 'imnet', got {decoder!r}")
    return OccupancyNetwork(enc, dec)


def occnet_loss_fn(model: OccupancyNetwork, batch: dict[str, Tensor]) -> Tensor:
    """The decoder's loss (BCE for OccNet's logits, MSE for IM-NET) on a :class:`QuerySampler` batch.

    Introduced in ``lectures/07_implicit_fields.ipynb``.
    """
    return model.loss(model(batch["input"], batch["query"]), batch["occupancy"])


def _batches(data: dict[str, Any], batch_size: int, keys: Sequence[str], sampler: QuerySampler, seed: int) -> Any:
    from course_lib.experiments.common import Batches

    return Batches(data, batch_size, keys=list(keys), transform=sampler, seed=seed)


def train_occnet(data: dict[str, Any], *, decoder: str = "occnet", epochs: int | None = None,
                 profile: str | None = None, retrain: bool = False, progress: bool = True, seed: int = 0,
                 name: str = "ch07_occnet", schedule: str | None = None,
                 n_query: int | None = None) -> tuple[OccupancyNetwork, _train.History]:
    """Train (or load) :func:`build_occnet` on ``data`` from :func:`implicit_data` (kind occupancy).

    Introduced in ``lectures/07_implicit_fields.ipynb``.  Adam at ``ch07.lr``; ``schedule``
    (default ``ch07.lr_schedule``) ``"cosine"`` decays it to a hundredth over the epochs, ``"constant"``
    keeps it (OccNet keeps a constant 1e-4 for days of GPU training; a run of a few hundred steps ends on
    a noisy iterate without the decay, which ``benchmarks/implicit.py`` measures).  ``n_query``
    (default ``ch07.n_query``) is the number of occupancy samples per shape and step: OccNet uses
    2,048; the laptop profile uses 256 and more steps in the same time, also measured there.  The
    checkpoint is keyed by the data (categories, shapes, sampling), the schedule, the queries and the sizes.
    """
    s = _sizes(profile)
    epochs = int(epochs if epochs is not None else s["epochs"])
    schedule = str(schedule if schedule is not None else s["lr_schedule"])
    if schedule not in _train.SCHEDULES:
        raise ValueError(f"schedule must be one of {_train.SCHEDULES}, got {schedule!r}")
    config.seed_everything(seed)  # the initial weights too: the same call gives the same model wherever it runs
    n_query = int(n_query if n_query is not None else s["n_query"])
    if n_query < 1:
        raise ValueError(f"n_query must be a positive number of samples per shape, got {n_query}")
    model = build_occnet(decoder, profile)
    sampler = QuerySampler(n_query, int(s["n_input"]), float(s["input_noise"]))
    loader = _batches(data, int(s["batch_size"]), ("points", "query", "occupancy"), sampler, seed)
    spec = {"categories": list(data["categories"]), "shapes": int(data["query"].shape[0]),
            "sampling": data.get("sampling"), "n_pool": int(data["query"].shape[1]), "decoder": decoder,
            "schedule": schedule, "n_query": n_query}
    real = real_dataset(data)
    if real is not None:
        spec["dataset"] = real
    path = _train.checkpoint_path(dataset_checkpoint_name(f"{name}_{decoder}_{data.get('sampling')}", data),
                                  spec=spec, profile=profile)
    lr = float(s["lr"])
    opt, sched = _train.adam(model, lr, epochs, schedule)
    hist = _train.train_or_load(model, path, spec=spec, retrain=retrain, train_loader=loader,
                                loss_fn=occnet_loss_fn, epochs=epochs, optimizer=opt, scheduler=sched, lr=lr,
                                seed=seed, progress=progress, live_plot=False)
    return model.eval(), hist


# ---------------------------------------------------------------------------
# one OccNet training configuration: its epochs, budget and validation score
# ---------------------------------------------------------------------------
SETTING_KEYS = ("per_category", "epochs", "n_query", "sampling", "schedule")
"""What an OccNet training configuration (:func:`occnet_setting`) fixes."""


def occnet_epochs(per_category: int, n_query: int, profile: str | None = None) -> int:
    """Epochs of an OccNet run on ``per_category`` shapes per category with ``n_query`` queries per shape and step.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  ``ch07.query_epochs`` gives each candidate
    number of queries its epochs at ``ch07.occnet_train_per_category`` shapes per category (about the
    same training time for every entry on the laptop); another set size keeps the number of steps,
    ``round(epochs * occnet_train_per_category / per_category)`` (at least 1): more shapes, fewer epochs.

    >>> occnet_epochs(40, 256, "laptop"), occnet_epochs(320, 256, "laptop"), occnet_epochs(160, 2048, "laptop")
    (360, 45, 17)
    """
    s = _sizes(profile)
    per, q = int(per_category), int(n_query)
    if per < 1:
        raise ValueError(f"per_category must be a positive number of shapes, got {per_category!r}")
    table = {int(k): int(v) for k, v in s["query_epochs"]}
    if q not in table:
        raise ValueError(f"no epochs for {q} queries per shape and step: ch07.query_epochs has {sorted(table)}")
    return max(1, round(table[q] * int(s["occnet_train_per_category"]) / per))


def occnet_setting(profile: str | None = None, **overrides: Any) -> dict[str, Any]:
    """One OccNet training configuration: ``per_category``, ``epochs``, ``n_query``, ``sampling``, ``schedule``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  The defaults are the config's
    (``ch07.occnet_train_per_category``, ``ch07.n_query``, ``ch07.occnet_sampling``,
    ``ch07.lr_schedule``): the values ``benchmarks/implicit.py``'s selection on ``val`` starts from.  With a real
    dataset in ``COURSE_DATASET`` the default sampling is ``"mix"``, the one its samples have.
    ``epochs`` defaults to :func:`occnet_epochs` of the set size and the queries.
    """
    bad = sorted(set(overrides) - set(SETTING_KEYS))
    if bad:
        raise ValueError(f"unknown setting(s) {bad}; an OccNet setting has {SETTING_KEYS}")
    from course_lib.data.real_split import dataset_name

    s = _sizes(profile)
    # a real dataset (COURSE_DATASET) has one occupancy sampling, load_split's (:func:`implicit_data`)
    smp = str(s["occnet_sampling"]) if dataset_name(None) == "shapenet-lite" else _REAL_SAMPLING["occupancy"][0]
    out: dict[str, Any] = {"per_category": int(s["occnet_train_per_category"]), "n_query": int(s["n_query"]),
                           "sampling": smp, "schedule": str(s["lr_schedule"])}
    out.update({k: v for k, v in overrides.items() if k != "epochs" and v is not None})
    out["per_category"], out["n_query"] = int(out["per_category"]), int(out["n_query"])
    if out["n_query"] < 1:
        raise ValueError(f"n_query must be a positive number of samples per shape, got {out['n_query']}")
    if out["sampling"] not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {tuple(SAMPLINGS)}, got {out['sampling']!r}")
    if out["schedule"] not in _train.SCHEDULES:
        raise ValueError(f"schedule must be one of {_train.SCHEDULES}, got {out['schedule']!r}")
    epochs = overrides.get("epochs")
    out["epochs"] = int(epochs) if epochs is not None else occnet_epochs(out["per_category"], out["n_query"], profile)
    if out["epochs"] < 1:
        raise ValueError(f"epochs must be positive, got {out['epochs']}")
    return {k: out[k] for k in SETTING_KEYS}


def setting_key(setting: dict[str, Any]) -> str:
    """A readable, unique name of a setting: ``"160 shapes x 90 epochs, 256 queries, near, cosine"``.

    Introduced in ``lectures/07_implicit_fields.ipynb`` (the rows of the benchmark's tables).
    """
    return (f"{setting['per_category']} shapes x {setting['epochs']} epochs, {setting['n_query']} queries, "
            f"{setting['sampling']}, {setting['schedule']}")


def train_occnet_setting(setting: dict[str, Any], profile: str | None = None, *, decoder: str = "occnet",
                         progress: bool = True, retrain: bool = False,
                         seed: int = 0) -> tuple[OccupancyNetwork, _train.History]:
    """Train (or load) OccNet in one :func:`occnet_setting` on :func:`occnet_train_data`.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  The checkpoint is :func:`train_occnet`'s, so the
    config's default setting loads the same model as ``train_occnet(occnet_train_data())``.
    """
    st = occnet_setting(profile, **{k: setting[k] for k in SETTING_KEYS if k in setting})
    train = occnet_train_data(profile, per_category=st["per_category"], sampling=st["sampling"])
    return train_occnet(train, decoder=decoder, epochs=st["epochs"], profile=profile, retrain=retrain,
                        progress=progress, seed=seed, schedule=st["schedule"], n_query=st["n_query"])


def occnet_budget(model: nn.Module, hist: _train.History, setting: dict[str, Any],
                  profile: str | None = None) -> dict[str, Any]:
    """The budget (:func:`course_lib.experiments.protocol.budget`) of one OccNet run in ``setting``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  ``steps`` = epochs run x batches per epoch
    (``ceil(shapes / ch07.batch_size)``), ``examples`` = shapes seen (epochs x shapes), ``seconds`` =
    the run's own training time, ``params`` = trainable parameters; ``queries`` = occupancy samples seen
    (examples x queries per shape and step), ``epochs``, ``shapes``, ``queries_per_step``.
    """
    s = _sizes(profile)
    shapes = int(setting["per_category"]) * len(s["categories"])
    epochs = int(hist.epochs_run)
    steps = epochs * math.ceil(shapes / int(s["batch_size"]))
    return _budget(steps=steps, examples=epochs * shapes, seconds=float(hist.wall_time),
                   params=sum(p.numel() for p in model.parameters() if p.requires_grad), epochs=epochs,
                   shapes=shapes, queries_per_step=int(setting["n_query"]),
                   queries=epochs * shapes * int(setting["n_query"]))


def held_out_iou(model: Any, data: dict[str, Any], profile: str | None = None, *,
                 level: float | None = None) -> Tensor:
    """Per-shape IoU ``(S,)`` of the field the model encodes from each shape's held-out input cloud.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  :func:`evaluate_fields`' ``iou`` without the
    meshes (the same inputs :func:`held_out_inputs`, ``ch07.n_iou`` points, the same seeds): the score
    ``benchmarks/implicit.py`` makes every choice with, on the ``val`` split.
    """
    s = _sizes(profile)
    codes = encode(model, held_out_inputs(data, profile))
    vals = [field_iou(model, codes[i], row_shape(data, i), int(s["n_iou"]), seed=i, level=level)
            for i in range(codes.shape[0])]
    return torch.tensor(vals, dtype=torch.float64)


def build_deepsdf(n_shapes: int, profile: str | None = None) -> AutoDecoder:
    """The DeepSDF auto-decoder with the ``ch07.sdf_*`` sizes (latent re-injected at the middle layer).

    Introduced in ``lectures/07_implicit_fields.ipynb``.
    """
    s = _sizes(profile)
    n_layers = int(s["sdf_layers"])
    dec = DeepSDFDecoder(int(s["sdf_c_dim"]), int(s["sdf_hidden"]), n_layers, latent_in=(n_layers // 2,))
    return AutoDecoder(int(n_shapes), dec)


def sdf_loss_fn(model: AutoDecoder, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """DeepSDF's loss (clamped L1, delta 0.1, + 1e-4 mean code norm) on a :class:`QuerySampler` batch.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  The batch's ``index`` is the shape's row,
    i.e. its code's index.
    """
    return deepsdf_loss(model, {"index": batch["index"], "sdf_points": batch["query"], "sdf": batch["sdf"]})


def train_deepsdf(data: dict[str, Any], *, epochs: int | None = None, profile: str | None = None,
                  retrain: bool = False, progress: bool = True, seed: int = 0,
                  n_query: int | None = None) -> tuple[AutoDecoder, _train.History]:
    """Train (or load) :func:`build_deepsdf` on ``data`` from :func:`implicit_data` (kind sdf).

    Introduced in ``lectures/07_implicit_fields.ipynb``.  One Adam for the decoder and the codes
    (DeepSDF uses 5e-4 and 1e-3; we use ``ch07.lr`` for both).  ``n_query`` (default
    ``ch07.sdf_n_query``, its own size: OccNet's ``ch07.n_query`` is tuned for OccNet) is the number of
    SDF samples per shape and step.
    """
    s = _sizes(profile)
    epochs = int(epochs if epochs is not None else s["sdf_epochs"])
    n_query = int(n_query if n_query is not None else s["sdf_n_query"])
    if n_query < 1:
        raise ValueError(f"n_query must be a positive number of samples per shape, got {n_query}")
    config.seed_everything(seed)  # the initial weights and codes too, whatever ran before
    model = build_deepsdf(int(data["query"].shape[0]), profile)
    sampler = QuerySampler(n_query)
    loader = _batches(data, int(s["sdf_batch_size"]), ("query", "sdf"), sampler, seed)
    spec = {"categories": list(data["categories"]), "shapes": int(data["query"].shape[0]),
            "sampling": data.get("sampling"), "n_pool": int(data["query"].shape[1]), "n_query": n_query}
    real = real_dataset(data)
    if real is not None:
        spec["dataset"] = real
    path = _train.checkpoint_path(dataset_checkpoint_name(f"ch07_deepsdf_{data.get('sampling')}", data), spec=spec,
                                  profile=profile)
    hist = _train.train_or_load(model, path, spec=spec, retrain=retrain, train_loader=loader, loss_fn=sdf_loss_fn,
                                epochs=epochs, lr=float(s["lr"]), seed=seed, progress=progress, live_plot=False)
    return model.eval(), hist


# ---------------------------------------------------------------------------
# extraction and evaluation
# ---------------------------------------------------------------------------
@torch.no_grad()
def encode(model: OccupancyNetwork, inputs: Tensor, batch_size: int = 32) -> Tensor:
    """Codes ``(S, C)`` of input clouds ``(S, N, 3)`` (eval mode, no gradient, on the CPU).

    Introduced in ``lectures/07_implicit_fields.ipynb``.
    """
    from course_lib.experiments.common import predict

    return predict(model.encode, inputs, batch_size, device=next(model.parameters()).device)


def extract(model: Any, z: Tensor, *, resolution: int | None = None, coarse: int | None = None,
            profile: str | None = None) -> tuple[trimesh.Trimesh | None, int]:
    """The mesh of one code by hierarchical marching cubes: ``(mesh or None if empty, evaluations)``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.
    """
    s = _sizes(profile)
    r = int(resolution if resolution is not None else s["eval_resolution"])
    c = int(coarse if coarse is not None else s["mise_coarse"])
    model.eval()
    try:
        mesh, info = hierarchical_extract(field_of(model, z), r, c, BOUND, model.level, inside=model.inside)
    except ValueError:  # the level is not crossed: empty or full prediction
        return None, 0
    return mesh, info.evaluations


def field_occupancy(model: Any, z: Tensor, level: float | None = None) -> Any:
    """``occ(points (Q, 3)) -> (Q,)`` bool: inside the model's field for code ``z`` (the side of its level that
    ``model.inside`` names), evaluated in chunks on the model's device, returned on the CPU.

    Introduced in ``lectures/07_implicit_fields.ipynb``; chapter 11 scores every field with it.  ``level``
    replaces the model's own (for example OccNet's evaluation threshold, :data:`OCCNET_THRESHOLD` as a logit).
    """
    level = model.level if level is None else float(level)
    dev = next(model.parameters()).device
    f = field_of(model, z)

    @torch.no_grad()
    def occ(points: Tensor) -> Tensor:
        model.eval()
        v = torch.cat([f(points[i:i + 65536].to(dev)).cpu() for i in range(0, points.shape[0], 65536)])
        return v > level if model.inside == "above" else v < level

    return occ


def field_iou(model: Any, z: Tensor, shape: Any, n: int, seed: int = 0, level: float | None = None) -> float:
    """IoU of the model's occupancy (:func:`field_occupancy`) and the shape's, at ``n`` uniform points.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  ``level`` replaces the model's own (for
    example OccNet's evaluation threshold, :data:`OCCNET_THRESHOLD` as a logit).
    """
    g = torch.Generator().manual_seed(int(seed))
    p = torch.rand(int(n), 3, generator=g) * 2 - 1
    return float(_metrics.volumetric_iou(field_occupancy(model, z, level)(p), shape.occupancy(p)))


def thin_part_ids(shape: Any) -> list[int]:
    """Indices (into ``shape.parts``) of the shape's thin parts (:data:`THIN_PARTS`).

    Introduced in ``lectures/07_implicit_fields.ipynb``.
    """
    names = THIN_PARTS.get(shape.category, ())
    return [i for i, p in enumerate(shape.parts) if p in names]


def thin_part_sdf(shape: Any, points: Tensor) -> Tensor:
    """The SDF of the union of the shape's thin parts at ``points (N, 3)`` (+inf if it has none).

    Introduced in ``lectures/07_implicit_fields.ipynb`` (how many samples land near the thin parts).
    """
    ids = set(thin_part_ids(shape))
    nodes = [node for (name, node) in shape._nodes if shape.parts.index(name) in ids]
    if not nodes:
        return torch.full(points.shape[:-1], float("inf"))
    return torch.stack([n.sdf(points) for n in nodes]).amin(0)


def _mesh_samples(mesh: trimesh.Trimesh | None, n: int, seed: int) -> tuple[Tensor, Tensor]:
    if mesh is None or len(mesh.faces) == 0:
        return torch.zeros(1, 3), torch.tensor([[0.0, 0.0, 1.0]])
    pts, face = trimesh.sample.sample_surface(mesh, int(n), seed=int(seed))
    return (torch.as_tensor(np.asarray(pts), dtype=torch.float32),
            torch.as_tensor(np.asarray(mesh.face_normals)[face], dtype=torch.float32))


def evaluate_fields(model: Any, codes: Tensor, data: dict[str, Any], *, profile: str | None = None,
                    keep_meshes: int = 0, deepsdf: bool = False) -> dict[str, Any]:
    """Per-shape metrics (:data:`CONVENTIONS`) of the meshes extracted from ``codes`` against ``data``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  Returns ``{"metrics": {name: (S,) tensor},
    "meshes": the first keep_meshes meshes, "evaluations": mean field evaluations per mesh,
    "empty": number of empty predictions, "thin_index": the shapes (indices into data) that the
    thin-part metrics cover, in their order}``: ``thin_cd`` and ``thin_recall`` have one value per
    shape with thin parts (:data:`THIN_PARTS`), the other metrics one per shape.  ``deepsdf=True``
    adds ``cd_deepsdf``.  On a real dataset's rows (they hold ``path``) each shape is its repaired mesh
    (:class:`course_lib.experiments.mesh_shape.MeshShape`): IoU against its winding-number inside, no thin
    parts (real meshes have no part labels, so ``thin_*`` are absent).
    """
    s = _sizes(profile)
    tau = float(s["fscore_tau"])
    out: dict[str, list[float]] = {k: [] for k in ("iou", "iou_t02", "cd_l1", "nc", "fscore", "thin_cd",
                                                   "thin_recall")}
    if deepsdf:
        out["cd_deepsdf"] = []
    meshes, evals, empty, thin_index = [], [], 0, []
    for i in range(codes.shape[0]):
        shape = row_shape(data, i)  # a real dataset's rows: the repaired mesh (winding-number inside, no parts)
        mesh, n_ev = extract(model, codes[i], profile=profile)
        empty += mesh is None
        evals.append(n_ev)
        if i < keep_meshes:
            meshes.append(mesh)
        gt, gt_n = data["target_points"][i], data["target_normals"][i]
        pred, pred_n = _mesh_samples(mesh, gt.shape[0], seed=i)
        out["iou"].append(field_iou(model, codes[i], shape, int(s["n_iou"]), seed=i))
        if getattr(model, "kind", None) == "logit":
            out["iou_t02"].append(field_iou(model, codes[i], shape, int(s["n_iou"]), seed=i,
                                            level=math.log(OCCNET_THRESHOLD / (1 - OCCNET_THRESHOLD))))
        out["cd_l1"].append(float(_metrics.chamfer_l1(pred, gt)))  # OccNet's formula, in the course's frame
        out["nc"].append(float(_metrics.normal_consistency(pred, pred_n, gt, gt_n)))
        out["fscore"].append(float(_metrics.fscore(pred, gt, tau)))
        if deepsdf:
            out["cd_deepsdf"].append(float(_metrics.PRESETS["deepsdf"].chamfer(pred, gt)))
        ids = thin_part_ids(shape)
        if ids:
            lab = shape.part_labels(gt)
            thin = gt[torch.isin(lab, torch.tensor(ids))]
        else:
            thin = gt[:0]
        if thin.shape[0]:
            d = torch.cat([torch.cdist(thin[j:j + 1024], pred).amin(1) for j in range(0, thin.shape[0], 1024)])
            out["thin_cd"].append(float(d.mean()))
            out["thin_recall"].append(float((d <= tau).float().mean()))
            thin_index.append(i)
    metrics = {k: torch.tensor(v, dtype=torch.float64) for k, v in out.items() if v}
    return {"metrics": metrics, "meshes": meshes, "evaluations": float(np.mean(evals)) if evals else 0.0,
            "empty": int(empty), "thin_index": thin_index}


def reconstruct_unseen(model: AutoDecoder, data: dict[str, Any], *, iters: int | None = None,
                       n_samples: int | None = None, profile: str | None = None, progress: bool = False,
                       seed: int = 0) -> Tensor:
    """DeepSDF codes ``(S, C)`` of unseen shapes by latent optimisation on their SDF samples (``data["sdf"]``).

    Introduced in ``lectures/07_implicit_fields.ipynb``.
    """
    s = _sizes(profile)
    iters = int(iters if iters is not None else s["recon_iters"])
    n_samples = int(n_samples if n_samples is not None else s["recon_samples"])
    it = range(data["query"].shape[0])
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="reconstructing unseen shapes")
    codes = [reconstruct_latent(model.decoder, data["query"][i], data["sdf"][i], iters=iters, n_samples=n_samples,
                                seed=seed + i)[0].cpu() for i in it]
    return torch.stack(codes)


def oracle_chamfer(data: dict[str, Any], preset: str = "deepsdf") -> Tensor:
    """Per-shape Chamfer of two independent samplings of the true surface (streams 1 and 2), with ``preset``'s
    formula, in the course's frame (chapter 07 reports every distance there; OccNet's own unit is applied
    only in chapter 11's convention comparison).

    Introduced in ``lectures/07_implicit_fields.ipynb``: the reference a reconstruction is compared to.
    """
    import dataclasses

    conv = dataclasses.replace(_metrics.PRESETS[preset], cd_unit="frame")  # the preset's formula, the course's frame
    n = int(data["target_points"].shape[1])
    # the course's one oracle (metrics.oracle): the shape's oracle stream against its target stream, which is
    # data["target_points"] itself
    vals = []
    for i in range(len(data["category"])):
        shape = row_shape(data, i)
        if isinstance(shape, MeshShape):  # a real mesh: its oracle stream against its target stream, as a Shape's
            vals.append(float(conv.chamfer(shape.sample_surface(n, stream=SAMPLING_STREAMS["oracle"])[0],
                                           shape.sample_surface(n, stream=SAMPLING_STREAMS["target"])[0])))
        else:
            vals.append(_metrics.oracle(shape, n, conv.chamfer))
    return torch.tensor(vals, dtype=torch.float64)


def held_out_inputs(data: dict[str, Any], profile: str | None, seed: int = 123) -> Tensor:
    """The encoder's inputs for held-out shapes: ``ch07.n_input`` fixed random points of each input pool
    (stream 0), plus Gaussian noise of std ``ch07.input_noise`` (OccNet: 300 points, 0.005).

    Introduced in ``lectures/07_implicit_fields.ipynb``.
    """
    from course_lib.experiments.common import subsample

    s = _sizes(profile)
    g = torch.Generator().manual_seed(seed)
    x = subsample(data["points"], int(s["n_input"]), g)
    return x + float(s["input_noise"]) * torch.randn(x.shape, generator=g)


def mise_experiment(fn: Any, resolution: int = 129, coarse: int = 33, bound: float = BOUND, level: float = 0.0,
                    inside: str = "below", n_points: int = 20000) -> dict[str, float]:
    """Hierarchical against dense extraction of one field: evaluations, time and Chamfer between the meshes.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  Chamfer is the symmetric mean squared
    nearest-neighbour distance between the two vertex sets (0 when the meshes are the same).
    """
    t0 = time.perf_counter()
    grid_h, info = hierarchical_grid(fn, resolution, coarse, bound, level, inside=inside)
    t_h = time.perf_counter() - t0
    t0 = time.perf_counter()
    grid_d = field_grid(fn, resolution, bound)
    t_d = time.perf_counter() - t0
    sgn = 1.0 if inside == "below" else -1.0
    m_h = marching_cubes(sgn * grid_h, sgn * level, bound)
    m_d = marching_cubes(sgn * grid_d, sgn * level, bound)
    vh = torch.as_tensor(np.asarray(m_h.vertices), dtype=torch.float64)
    vd = torch.as_tensor(np.asarray(m_d.vertices), dtype=torch.float64)
    cd = float(_metrics.chamfer(vh, vd, squared=True, directions="mean"))
    return {"evaluations": float(info.evaluations), "dense_evaluations": float(info.dense_evaluations),
            "fraction": info.fraction, "chamfer": cd, "seconds_hierarchical": t_h, "seconds_dense": t_d,
            "vertices_hierarchical": float(len(m_h.vertices)), "vertices_dense": float(len(m_d.vertices))}


def smoke(device: str = "cpu", steps: int = 1, profile: str = "gpu") -> dict[str, float]:
    """A few training steps of the chapter's models on ``device`` with the ``profile``'s ``ch07.*`` sizes.

    Introduced for ``benchmarks/gpu_smoke.py``: OccNet and IM-NET decoders (PointNet encoder) and the
    DeepSDF auto-decoder on one synthetic batch (spheres' occupancy / SDF); no data generation, no
    checkpoint.
    """
    from course_lib.experiments.common import smoke_steps, synthetic_clouds

    s = _sizes(profile)
    b, t = int(s["batch_size"]), int(s["n_query"])
    g = torch.Generator().manual_seed(0)
    q = torch.rand(b, t, 3, generator=g) * 2 - 1
    batch = {"input": synthetic_clouds(b, int(s["n_input"]), seed=0), "query": q,
             "occupancy": q.norm(dim=-1) < 0.5}
    out: dict[str, float] = {}
    torch.manual_seed(0)
    for name in ("occnet", "imnet"):
        r = smoke_steps(build_occnet(name, profile), batch, occnet_loss_fn, steps=steps, device=device)
        out.update({f"{name}_{k}": v for k, v in r.items()})
    bs = int(s["sdf_batch_size"])
    sdf_batch = {"index": torch.arange(bs), "query": q[:bs] if bs <= b else torch.rand(bs, t, 3, generator=g),
                 "sdf": None}
    sdf_batch["sdf"] = sdf_batch["query"].norm(dim=-1) - 0.5
    r = smoke_steps(build_deepsdf(bs, profile), sdf_batch, sdf_loss_fn, steps=steps, device=device)
    out.update({f"deepsdf_{k}": v for k, v in r.items()})
    out["seconds"] = sum(v for k, v in out.items() if k.endswith("_seconds"))
    return out


def retrieved_iou(test: dict[str, Any], train: dict[str, Any], index: Tensor | Sequence[int], *,
                  n: int | None = None, profile: str | None = None) -> Tensor:
    """Per test shape ``i``, the volumetric IoU of training shape ``index[i]`` taken as its reconstruction.

    Introduced in ``lectures/07_implicit_fields.ipynb`` (the retrieval rows, measured by
    ``benchmarks/retrieval.py``).  The retrieved shape's exact occupancy is scored against the test
    shape's at the same ``n`` uniform points of ``[-1, 1]^3`` (default ``ch07.n_iou``, seed ``i``) at
    which :func:`field_iou` scores a model, so the retrieval row and the model's row are paired point
    for point.  ``test`` / ``train`` need ``category`` and ``seed`` (as :func:`implicit_data` returns).
    Returns ``(Q,)`` float64.
    """
    idx = [int(j) for j in (index.tolist() if isinstance(index, Tensor) else index)]
    q = len(test["category"])
    if len(idx) != q:
        raise ValueError(f"index has {len(idx)} entries but test holds {q} shapes: one retrieved shape per test shape")
    s_train = len(train["category"])
    bad = [j for j in idx if not 0 <= j < s_train]
    if bad:
        raise IndexError(f"index {bad[:3]} out of range for {s_train} training shapes")
    n = int(n if n is not None else _sizes(profile)["n_iou"])
    if n < 1:
        raise ValueError(f"n must be a positive number of IoU points, got {n}")
    out = []
    for i, j in enumerate(idx):
        g = torch.Generator().manual_seed(int(i))  # the points of field_iou(..., seed=i)
        p = torch.rand(n, 3, generator=g) * 2 - 1
        truth = row_shape(test, i).occupancy(p)
        got = row_shape(train, j).occupancy(p)
        out.append(float(_metrics.volumetric_iou(got, truth)))
    return torch.tensor(out, dtype=torch.float64)
