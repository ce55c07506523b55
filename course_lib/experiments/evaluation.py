"""Chapter 11 (evaluation): every model of the course on the same held-out shapes, under one convention.

Introduced in ``lectures/11_evaluation.ipynb``; ``benchmarks/evaluation.py`` computes the table.

Each chapter measured its models with its own papers' conventions on its own categories. Here
they all reconstruct the **same** held-out ShapeNet-lite shapes (the test split of
``ch11.categories``, the first ``ch11.per_category`` of each: shapes no model saw in training)
from the kind of input each chapter trained on: surface points of sampling stream 0 (their
count and noise as in the chapter), a voxel grid of the shape, one rendered view, SDF samples
(DeepSDF's latent optimisation) or silhouettes (chapter 09's per-shape fit). Every output is
turned into the same things and scored once, by :func:`score`:

* **points**: a mesh is sampled at ``ch11.n_points`` area-uniform points (seeded); a point-set
  model keeps its own output (its count is in the table);
* **the target**: an independent sampling of the exact surface (stream 1), never the input;
* **a volume** where the output has one (voxel grids, fields, primitives, closed meshes through
  the generalised winding number): IoU at ``ch11.n_iou`` uniform points of ``[-1, 1]^3``
  against the exact occupancy.

:data:`COLUMNS` states each column's convention. :data:`MODELS` lists the models, each with
the function that loads it from its chapter's checkpoint (:func:`course_lib.train.train_or_load`
with the chapter's own recipe) and reconstructs the shapes, plus the retrieval baseline (the
nearest training shape, :mod:`course_lib.experiments.retrieval`).

Protocol 2 (:mod:`course_lib.experiments.protocol`): the test split is fresh (no chapter chose
anything on it); :func:`evaluate_model` records each row's training budget from what its recipe
loaded (:func:`recording_training`, :func:`training_budget`) and the choices its loader made on
``val``; :func:`table_claims` turns the table's comparisons into claims paired over its shapes.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import trimesh
from torch import Tensor

from course_lib import config
from course_lib import metrics as M

__all__ = ["COLUMNS", "MODELS", "ModelSpec", "Reconstruction", "EvalShapes", "eval_shapes", "score",
           "evaluate_model", "evaluate_models", "baselines", "protocol_sensitivity", "frame_sensitivity", "grid_occupancy",
           "crease_labels", "CREASE", "sharp_edge_study",
           "mesh_occupancy", "union_samples", "table_rows", "ranking", "format_rows", "load_predictions", "HEADERS", "kendall",
           "recording_training", "training_budget", "table_claims", "paired_values", "oracle_for", "slug",
           "HIGHER_IS_BETTER", "REFERENCE_BUDGET", "RETRIEVAL_LATENT", "RETRIEVAL_ORACLE"]

COLUMNS: dict[str, str] = {
    "cd": M.describe_chamfer("atlasnet") + "; prediction points against ch11.n_points target points",
    "cd_l1": "Chamfer-L1: mean unsquared nearest-neighbour distance both ways, averaged (OccNet's formula), in the "
             "course's frame (OccNet's tables use a tenth of the longest bounding-box edge as the unit: "
             "metrics.PRESETS['occnet'])",
    "emd": "EMD x1e2: mean unsquared matched distance (exact), ch11.emd_points points of each (PointFlow's convention); "
           "a model with fewer output points is scored at its own count",
    "fscore": "F-score at tau = ch11.tau: harmonic mean of precision and recall of points within tau",
    "nc": "normal consistency: mean |cos| between each point's normal and its nearest neighbour's, both ways, halved "
          "(OccNet); only where the output is a mesh",
    "iou": "volumetric IoU at ch11.n_iou uniform points of [-1, 1]^3 against the exact occupancy; only where the "
           "output encloses a volume",
    "hausdorff": "symmetric Hausdorff distance (unsquared, max of the two directed maxima)",
    "watertight": "fraction of output meshes that are watertight (trimesh: every edge shared by two faces)",
    "seconds": "wall time per shape from the input to the output representation (encode, decode, extract; "
               "latent optimisation or fitting included; chapter 09's per-shape fits are stored like checkpoints, "
               "and a stored fit reports the time it took when it ran)",
    "peak_mb": "peak extra resident memory in MiB of producing the first shape (point_sets.peak_memory, measured in "
               "a second run after every timing; < 1 MiB is noise)",
}
"""One convention per column of the table (the lecture prints these)."""


@dataclass
class Reconstruction:
    """One model's output for one shape, in the forms :func:`score` needs.

    ``points`` ``(N, 3)`` (a mesh's samples, or a point-set model's own points), ``normals``
    ``(N, 3)`` or None, ``mesh`` or None, ``occupancy`` a function ``(Q, 3) -> (Q,) bool`` or None
    (no volume), ``seconds`` and ``peak_bytes`` of producing it, ``empty`` when the model produced
    no surface (the points are then a single point at the origin and the row counts it).
    """

    points: Tensor
    normals: Tensor | None = None
    mesh: trimesh.Trimesh | None = None
    occupancy: Callable[[Tensor], Tensor] | None = None
    seconds: float = float("nan")
    peak_bytes: float = float("nan")
    empty: bool = False
    resample: Callable[[int, int], Tensor] | None = None  # (n, seed) -> (n, 3) new surface samples, if it has a surface
    resample_limit: int | None = None  # the largest count ``resample`` is asked for (a sampler's cost); None: any
    watertight: bool | None = None  # overrides ``mesh.is_watertight`` (a union of primitives: each one closed)
    fit_seconds: float | None = None  # a stored per-shape fit read back: the seconds it took when it ran


@dataclass
class EvalShapes:
    """The held-out shapes every model reconstructs, with their exact references."""

    categories: tuple[str, ...]
    category: list[str]
    seed: list[int]
    shapes: list[Any]
    target: Tensor  # (S, n_points, 3), stream 1
    target_normals: Tensor
    oracle: Tensor  # (S, n_points, 3), stream 2: the oracle's independent sampling
    oracle_normals: Tensor
    iou_points: Tensor  # (S, n_iou, 3)
    iou_occupancy: Tensor  # (S, n_iou) bool
    profile: str
    sizes: dict[str, Any] = field(default_factory=dict)
    _creases: dict[int, Tensor] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.shapes)

    def crease(self, i: int) -> Tensor:
        """:func:`crease_labels` of shape ``i``'s target points (computed once)."""
        if i not in self._creases:
            self._creases[i] = crease_labels(self.target[i], self.target_normals[i])
        return self._creases[i]

    @property
    def per_category(self) -> int:
        """Shapes per category (every category has as many)."""
        return len(self.shapes) // len(self.categories)

    def names(self) -> list[str]:
        return [f"{c}/{s}" for c, s in zip(self.category, self.seed)]


def eval_shapes(profile: str | None = None, categories: Sequence[str] | None = None,
                per_category: int | None = None, *, dataset: str | None = None,
                root: str | None = None) -> EvalShapes:
    """The held-out shapes of the table (test split, ``ch11.*`` sizes) with target, oracle and IoU samples.

    Introduced in ``lectures/11_evaluation.ipynb``.  ``dataset`` / ``root`` (or ``COURSE_DATASET`` and
    ``COURSE_MODELNET_DIR`` / ``COURSE_SHAPENET_DIR``): the first test meshes of each category of a real dataset
    (:func:`course_lib.experiments.mesh_shape.real_shapes`, meshes whose inside cannot be decided skipped), their
    target and oracle streams sampled on the repaired mesh and the IoU labels from its winding number.
    """
    from course_lib.data import SAMPLING_STREAMS, make_shape, split_seeds
    from course_lib.data.real_split import dataset_name

    profile = profile or config.get_profile()
    s = dict(config.sizes(profile, prefix="ch11."))
    cats = tuple(categories or s["categories"])
    per = int(per_category or s["per_category"])
    shapes, cat, seeds = [], [], []
    if dataset_name(dataset) != "shapenet-lite":
        from .mesh_shape import real_shapes

        shapes = real_shapes("test", cats, per, dataset=dataset, root=root, profile=profile, inside=True)
        cat, seeds = [sh.category for sh in shapes], [sh.seed for sh in shapes]
    elif root is not None:
        raise ValueError("root= is for real datasets (dataset='modelnet' or 'shapenetcore')")
    for c in cats if not shapes else ():
        for sd in split_seeds("test", per):
            shapes.append(make_shape(c, sd))
            cat.append(c)
            seeds.append(int(sd))
    n, q = int(s["n_points"]), int(s["n_iou"])
    tp, tn, op, on, ip, io = [], [], [], [], [], []
    for i, sh in enumerate(shapes):
        p, nn_ = sh.sample_surface(n, stream=SAMPLING_STREAMS["target"])
        tp.append(p)
        tn.append(nn_)
        p, nn_ = sh.sample_surface(n, stream=SAMPLING_STREAMS["oracle"])
        op.append(p)
        on.append(nn_)
        g = torch.Generator().manual_seed(7919 + i)
        pts = torch.rand(q, 3, generator=g) * 2 - 1
        ip.append(pts)
        io.append(sh.occupancy(pts))
    return EvalShapes(cats, cat, seeds, shapes, torch.stack(tp), torch.stack(tn), torch.stack(op), torch.stack(on),
                      torch.stack(ip), torch.stack(io), profile, s)


# ---------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------
def _subsample(points: Tensor, m: int, seed: int) -> Tensor:
    if points.shape[0] <= m:
        return points
    g = torch.Generator().manual_seed(seed)
    return points[torch.randperm(points.shape[0], generator=g)[:m]]


CREASE = {"k": 8, "sharp_deg": 30.0, "flat_deg": 5.0}
"""How :func:`crease_labels` splits the target points: a point whose normal turns by more than ``sharp_deg`` to
one of its ``k`` nearest neighbours lies at a crease; one whose normal turns by less than ``flat_deg`` to all of
them lies on a flat region; the rest are neither."""


def crease_labels(points: Tensor, normals: Tensor, *, k: int = CREASE["k"], sharp_deg: float = CREASE["sharp_deg"],
                  flat_deg: float = CREASE["flat_deg"]) -> Tensor:
    """``(N,)`` int: 1 at a crease, 0 on a flat region, -1 in between, for surface samples with unit ``normals``.

    Introduced in ``lectures/11_evaluation.ipynb`` (the seed's "too smooth" question: are sharp edges
    reconstructed as well as flat faces?).  The largest angle between a point's normal and the normals of its
    ``k`` nearest other samples decides (:data:`CREASE`); orientation is ignored (``|cos|``).
    """
    from course_lib.ops import knn

    if points.dim() != 2 or points.shape != normals.shape or points.shape[-1] != 3:
        raise ValueError(f"points and normals must both be (N, 3), got {tuple(points.shape)}, {tuple(normals.shape)}")
    if not 0 < flat_deg < sharp_deg < 90:
        raise ValueError(f"need 0 < flat_deg < sharp_deg < 90, got {flat_deg}, {sharp_deg}")
    _, idx = knn(points[None].float(), points[None].float(), int(k) + 1)
    idx = idx[0, :, 1:]  # drop the point itself
    cos = (normals[:, None, :].float() * normals[idx].float()).sum(-1).abs().clamp(max=1.0)
    worst = torch.rad2deg(torch.acos(cos.min(-1).values))
    out = torch.full((points.shape[0],), -1, dtype=torch.long)
    out[worst > sharp_deg] = 1
    out[worst < flat_deg] = 0
    return out


def _crease_nc(pred: Tensor, pred_n: Tensor, gt: Tensor, gt_n: Tensor, labels: Tensor) -> tuple[float, float]:
    """Normal consistency of the target points at creases and on flat regions: ``|cos|`` between each target
    point's normal and the normal of its nearest predicted point, averaged over each group (NaN if empty)."""
    from course_lib.ops import knn

    _, idx = knn(gt[None].float(), pred[None].float(), 1)
    cos = (gt_n.float() * pred_n.float()[idx[0, :, 0]]).sum(-1).abs()
    vals = []
    for lab in (1, 0):
        sel = labels == lab
        vals.append(float(cos[sel].mean()) if bool(sel.any()) else math.nan)
    return vals[0], vals[1]


def score(rec: Reconstruction, ev: EvalShapes, i: int, *, tau: float | None = None,
          emd: bool = True) -> dict[str, float]:
    """Every column of :data:`COLUMNS` for one reconstruction of shape ``i`` (NaN where it does not apply).

    Introduced in ``lectures/11_evaluation.ipynb``.
    """
    from course_lib.data import SAMPLING_STREAMS

    tau = float(ev.sizes["tau"] if tau is None else tau)
    pred = rec.points.detach().float().cpu()
    if pred.dim() != 2 or pred.shape[-1] != 3 or pred.shape[0] == 0:
        raise ValueError(f"a reconstruction's points must be (N, 3) with N >= 1, got {tuple(pred.shape)}")
    gt, gt_n = ev.target[i], ev.target_normals[i]
    out = {"cd": float(M.chamfer(pred, gt, squared=True, directions="sum", scale=1e3)),
           "cd_l1": float(M.chamfer(pred, gt, squared=False, directions="mean")),
           "fscore": float(M.fscore(pred, gt, tau)),
           "hausdorff": float(M.hausdorff(pred, gt)),
           "n_points": float(pred.shape[0]), "empty": float(rec.empty),
           "seconds": float(rec.seconds), "peak_mb": float(rec.peak_bytes) / 2**20}
    if emd:
        m = min(int(ev.sizes["emd_points"]), pred.shape[0])
        ref, _ = ev.shapes[i].sample_surface(m, stream=SAMPLING_STREAMS["target"])
        out["emd"] = float(M.emd(_subsample(pred, m, seed=i), ref, scale=1e2))
        out["emd_points"] = float(m)
    out["nc"] = (float(M.normal_consistency(pred, rec.normals.float(), gt, gt_n))
                 if rec.normals is not None and not rec.empty else math.nan)
    if rec.normals is not None and not rec.empty:  # the seed's "too smooth": normals at creases and on flat parts
        out["nc_crease"], out["nc_flat"] = _crease_nc(pred, rec.normals, gt, gt_n, ev.crease(i))
    else:
        out["nc_crease"] = out["nc_flat"] = math.nan
    if rec.occupancy is not None:
        occ = rec.occupancy(ev.iou_points[i]).reshape(-1).bool().cpu()
        out["iou"] = float(M.volumetric_iou(occ, ev.iou_occupancy[i]))
    else:
        out["iou"] = math.nan
    if rec.watertight is not None:
        out["watertight"] = float(rec.watertight)
    else:
        out["watertight"] = float(rec.mesh.is_watertight) if rec.mesh is not None else math.nan
    return out


# ---------------------------------------------------------------------------
# output conversions
# ---------------------------------------------------------------------------
def grid_occupancy(grid: Tensor, level: float = 0.5, bound: float = 1.0) -> Callable[[Tensor], Tensor]:
    """Occupancy of points from a cell-centred grid ``(R, R, R)`` (``course_lib.data.voxelize``'s layout):
    the value of the cell holding each point, above ``level``; outside the box is empty.

    Introduced in ``lectures/11_evaluation.ipynb``.
    """
    if not isinstance(grid, Tensor) or grid.dim() != 3 or len(set(grid.shape)) != 1:
        raise ValueError(f"grid_occupancy expects one cubic grid (R, R, R), got {getattr(grid, 'shape', grid)}")
    g = grid.detach().float().cpu()
    r = g.shape[0]

    def occ(points: Tensor) -> Tensor:
        p = points.detach().float().cpu()
        idx = torch.floor((p + bound) / (2 * bound) * r).long()
        inside = ((idx >= 0) & (idx < r)).all(-1)
        idx = idx.clamp(0, r - 1)
        return (g[idx[:, 0], idx[:, 1], idx[:, 2]] > level) & inside

    return occ


def mesh_occupancy(mesh: trimesh.Trimesh) -> Callable[[Tensor], Tensor]:
    """Inside a mesh by the generalised winding number (>= 0.5), robust to small holes.

    Introduced in ``lectures/11_evaluation.ipynb``; :func:`course_lib.geometry.winding_number`.  The
    meshes scored here are the models' own (marching cubes, deformed templates), oriented by
    construction, so the faces are taken as they are (``repair=False``): no orientation repair
    changes what a model's mesh says.
    """
    from course_lib.geometry.mesh_sdf import winding_number

    def occ(points: Tensor) -> Tensor:
        return torch.as_tensor(winding_number(mesh, points.detach().float().cpu(), repair=False)) >= 0.5

    return occ


def _mesh_rec(mesh: trimesh.Trimesh | None, n: int, seed: int, occupancy: Callable | None = None,
              closed: bool = False) -> Reconstruction:
    """A reconstruction from a mesh: ``n`` area-uniform samples with face normals."""
    if mesh is None or len(mesh.faces) == 0:
        return Reconstruction(torch.zeros(1, 3), None, None, occupancy, empty=True)
    mesh = _clean(mesh)
    pts, nrm = _sample_mesh(mesh, n, seed)
    if occupancy is None and closed:
        occupancy = mesh_occupancy(mesh)
    return Reconstruction(pts, nrm, mesh, occupancy, resample=lambda k, sd: _sample_mesh(mesh, k, sd)[0])


def _clean(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """A copy with vertices closer than ~1e-4 merged and zero-area faces dropped: patch borders, seams and
    poles share positions (a superquadric's pole ring to 1e-4), not indices, and a closed surface should read
    as closed."""
    mesh = mesh.copy()
    mesh.merge_vertices(digits_vertex=4)
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    return mesh


def _sample_mesh(mesh: trimesh.Trimesh, n: int, seed: int) -> tuple[Tensor, Tensor]:
    pts, face = trimesh.sample.sample_surface(mesh, int(n), seed=int(seed))
    return (torch.as_tensor(np.asarray(pts), dtype=torch.float32),
            torch.as_tensor(np.asarray(mesh.face_normals)[face], dtype=torch.float32))


def union_samples(prims: Any, n: int, seed: int, threshold: float = 0.5) -> tuple[Tensor, Tensor]:
    """``n`` area-uniform samples (with normals) of the *surface of the union* of shape 0's existing primitives.

    Introduced in ``lectures/11_evaluation.ipynb``.  Each primitive's mesh is sampled in proportion
    to its area and the samples inside another existing primitive are dropped (they lie inside the
    union), then ``n`` are kept (drawing more first, so that about ``n`` survive).
    """
    from course_lib.models import primitives as P

    meshes = P.primitive_meshes(prims, 0, threshold=threshold)
    if not meshes:
        raise ValueError("no primitive exists above the threshold")
    exists = prims.prob[0] > threshold
    areas = np.array([m.area for m in meshes])
    pts_all, nrm_all = [], []
    draw = 2 * int(n)
    for j, m in enumerate(meshes):
        k = max(1, int(round(draw * areas[j] / areas.sum())))
        pts, nrm = _sample_mesh(m, k, seed * 131 + j)
        ins = prims.contains(pts[None].to(prims.size.dtype))[0]  # (M, k)
        others = exists.clone()
        others[int(m.metadata["index"])] = False
        keep = ~(ins & others[:, None]).any(0)
        pts_all.append(pts[keep])
        nrm_all.append(nrm[keep])
    pts, nrm = torch.cat(pts_all), torch.cat(nrm_all)
    if pts.shape[0] == 0:
        raise ValueError("every primitive sample lies inside another primitive")
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(pts.shape[0], generator=g)[:n] if pts.shape[0] >= n else \
        torch.randint(0, pts.shape[0], (n,), generator=g)
    return pts[idx], nrm[idx]


# ---------------------------------------------------------------------------
# budgets and choices of the rows (protocol 2)
# ---------------------------------------------------------------------------
_SELECTIONS: list[dict[str, Any]] = []
"""The selection records made (on ``val``) by the loader now running (:func:`evaluate_model` collects them)."""


@contextlib.contextmanager
def recording_training() -> Iterator[list[dict[str, Any]]]:
    """Inside the block, every :func:`course_lib.train.train_or_load` call is recorded: yields the list of
    ``{"checkpoint", "epochs", "steps", "examples", "seconds", "params"}`` (one per call, loaded or trained).

    Introduced in ``lectures/11_evaluation.ipynb``: chapter 11 loads each model by its chapter's own
    recipe, and reads each row's training budget from what that recipe loaded (the history stored in
    the checkpoint: epochs run and wall seconds of the training loop on the machine that trained it; the
    loader: steps per epoch and examples).  ``train.train_or_load`` is wrapped for the duration of the
    block and restored after it.
    """
    from course_lib import train as T

    calls: list[dict[str, Any]] = []

    def make(original: Any) -> Any:
        def recorded(model: Any, path: Any, **kwargs: Any) -> Any:
            hist = original(model, path, **kwargs)
            calls.append(_training_call(model, path, hist, kwargs))
            return hist

        return recorded

    with T.wrapped_train_or_load(make):
        yield calls


def _training_call(model: Any, path: Any, hist: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    from pathlib import Path

    from course_lib.train import loop_budget

    epochs = int(getattr(hist, "epochs_run", 0))
    b = loop_budget(model, epochs, kwargs)
    return {"checkpoint": Path(path).name, "epochs": epochs, "steps": b["steps"], "examples": b["examples"],
            "seconds": float(getattr(hist, "wall_time", math.nan)), "params": b["params"]}


def training_budget(calls: Sequence[dict[str, Any]], note: str = "") -> dict[str, Any]:
    """A row's :func:`~course_lib.experiments.protocol.budget` from :func:`recording_training`'s calls:
    steps, examples, seconds and parameters summed over the models its recipe loaded (one per category
    for 3D-CODED); every entry ``None`` when nothing was trained (a per-shape fit, a reference).

    Introduced in ``lectures/11_evaluation.ipynb``.
    """
    from .protocol import budget

    if not calls:
        return budget(steps=None, examples=None, seconds=None, params=None, note=note or "no training")

    def total(key: str) -> Any:
        vals = [c[key] for c in calls]
        return None if any(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in vals) else sum(vals)

    extra = {"epochs": [c["epochs"] for c in calls], "checkpoints": [c["checkpoint"] for c in calls]}
    if note:
        extra["note"] = note
    return budget(steps=total("steps"), examples=total("examples"), seconds=total("seconds"), params=total("params"),
                  **extra)


_MEASURE_MEMORY = [False]


def _timed(fn: Callable[[], Reconstruction]) -> Reconstruction:
    """Run ``fn`` and record its wall time, or (in the memory pass of :func:`evaluate_models`) its peak memory.

    The two are measured in separate runs: :func:`course_lib.experiments.point_sets.peak_memory` makes
    glibc serve every block above 128 KiB by ``mmap`` (so that freed memory is not silently reused), which
    makes iterative work such as a per-shape fit or a latent optimisation several times slower.
    """
    if _MEASURE_MEMORY[0]:
        from .point_sets import peak_memory

        rec, peak = peak_memory(fn)
        rec.peak_bytes = peak
        return rec
    t0 = time.perf_counter()
    rec = fn()
    rec.seconds = time.perf_counter() - t0
    if rec.fit_seconds is not None:  # a per-shape fit read back from the store: the time it took when it ran
        rec.seconds = rec.fit_seconds
    return rec


def _check_seeds(ev: EvalShapes, data: dict[str, Any], who: str) -> None:
    got = [f"{c}/{int(s)}" for c, s in zip(data["category"], data["seed"])]
    if got != ev.names():
        raise RuntimeError(f"{who}: the chapter's loader returned other shapes ({got[:3]}...) than the table's "
                           f"({ev.names()[:3]}...)")


# ---------------------------------------------------------------------------
# the models, each loaded by its chapter's recipe
# ---------------------------------------------------------------------------
def _voxel_models(task: str, ev: EvalShapes) -> list[Reconstruction]:
    from . import voxels as V

    p = ev.profile
    image = task == "svr"
    s = config.sizes(p, prefix="ch03.")
    tr = V.voxel_data("train", p, image=image, extra_views=s["train_views"] if image else 0)
    va = V.voxel_data("val", p, image=image)
    te = V.voxel_data("test", p, image=image, categories=ev.categories, per_category=ev.per_category)
    _check_seeds(ev, te, f"chapter 03 {task}")
    train = V.train_single_view if image else V.train_autoencoder
    model, _ = train(p, data=tr, val_data=va, progress=False)
    key = "rgb" if image else "voxels"
    from course_lib.data import no_test_reads

    from .protocol import selection_record

    with no_test_reads(f"the IoU threshold of chapter 03's {task} model"):
        sweep = V.iou_sweep(V.predict(model, va[key]), va["voxels"], profile=p)
    chosen, rec = selection_record(f"ch03 {task}: IoU threshold", {str(t): v for t, v in sweep.items()},
                                   metric="IoU (val split)", higher_is_better=True)
    _SELECTIONS.append(rec)
    level = float(chosen)
    recs = []
    for i in range(len(ev)):
        def run(i: int = i) -> Reconstruction:
            probs = V.predict(model, te[key][i:i + 1])[0]
            return _mesh_rec(V.grid_to_mesh(probs, level), ev.sizes["n_points"], i, grid_occupancy(probs, level))
        recs.append(_timed(run))
    return recs


def _octree_models(kind: str, ev: EvalShapes) -> list[Reconstruction]:
    from course_lib.models.ogn import PROP_PRED

    from . import octrees as O
    from . import voxels as V

    p = ev.profile
    data, val = O.octree_data("train", p), O.octree_data("val", p)
    te = O.octree_data("test", p, categories=ev.categories, per_category=ev.per_category)
    _check_seeds(ev, te, f"chapter 04 {kind}")
    model, _ = (O.train_ogn if kind == "ogn" else O.train_dense)(p, data=data, val_data=val)
    model.eval()
    level = 0.5  # the OGN's occupancy is already 0/1 (its predicted structure decides)
    if kind == "dense":  # chapter 04's recipe: the dense decoder is cut at a threshold chosen on val
        level, rec = O.dense_threshold(model, val["voxels"], p, id="ch04 dense: IoU threshold")
        _SELECTIONS.append(rec)
    recs = []
    for i in range(len(ev)):
        def run(i: int = i) -> Reconstruction:
            with torch.no_grad():
                v = te["voxels"][i:i + 1]
                grid = model(v, mode=PROP_PRED).occupancy()[0].float() if kind == "ogn" else torch.sigmoid(model(v))[0]
            return _mesh_rec(V.grid_to_mesh(grid, level), ev.sizes["n_points"], i, grid_occupancy(grid, level))
        recs.append(_timed(run))
    return recs


def _psg_models(kind: str, ev: EvalShapes) -> list[Reconstruction]:
    from . import point_sets as PS
    from .common import predict

    p = ev.profile
    model, _ = PS.train_autoencoder(kind, p, progress=False)
    te = PS.test_data(p, categories=ev.categories, shapes_per_category=ev.per_category)
    _check_seeds(ev, te, f"chapter 05 {kind}")
    return [_timed(lambda i=i: Reconstruction(predict(model, te["points"][i:i + 1])[0])) for i in range(len(ev))]


def _atlas_models(template: str, k: int, ev: EvalShapes) -> list[Reconstruction]:
    from . import surfaces as S

    p = ev.profile
    sz = config.sizes(p, prefix="ch06.")
    n, n_in = sz["n_points"], sz["n_input"]
    model, _ = S.train_chapter_model(f"ae-{template}{k}", p, progress=False, live_plot=False)
    te = S.surface_dataset(ev.categories, "test", ev.per_category, n, n_input=n_in, profile=p)
    _check_seeds(ev, te, "chapter 06 AtlasNet")
    res = sz["sphere_subdivisions"] if template == "sphere" else sz["mesh_resolution"]
    recs = []
    for i in range(len(ev)):
        def run(i: int = i) -> Reconstruction:
            with torch.no_grad():
                mesh = model.mesh(te["points"][i:i + 1], res)[0]
            return _mesh_rec(mesh, ev.sizes["n_points"], i, closed=template == "sphere")
        recs.append(_timed(run))
    return recs


def _coded_models(ev: EvalShapes) -> list[Reconstruction | None]:
    from . import surfaces as S

    p = ev.profile
    sz = config.sizes(p, prefix="ch06.")
    models = {}
    for cat in sorted(set(ev.category)):
        if cat not in sz["coded_categories"]:  # no model of this category in this profile: no row for its shapes
            continue
        model, _ = S.train_chapter_coded(cat, p, progress=False, live_plot=False)
        models[cat] = model
    te = S.surface_dataset(ev.categories, "test", ev.per_category, sz["n_points"],
                           n_input=sz["n_input"], profile=p)
    _check_seeds(ev, te, "chapter 06 3D-CODED")
    recs: list[Reconstruction | None] = []
    for i in range(len(ev)):
        if ev.category[i] not in models:
            recs.append(None)
            continue

        def run(i: int = i) -> Reconstruction:
            m = models[ev.category[i]]
            with torch.no_grad():
                mesh = m.deformed_mesh(m.encode(te["points"][i:i + 1, :sz["n_input"]]))[0]
            return _mesh_rec(mesh, ev.sizes["n_points"], i, closed=True)
        recs.append(_timed(run))
    return recs


def _occnet_models(ev: EvalShapes) -> list[Reconstruction]:
    from . import implicit as I

    p = ev.profile
    train = I.occnet_train_data(p)
    model, _ = I.train_occnet(train, profile=p, progress=False)
    te = I.implicit_data("test", profile=p, categories=ev.categories, per_category=ev.per_category)
    _check_seeds(ev, te, "chapter 07 OccNet")
    x = I.held_out_inputs(te, p)
    recs = []
    for i in range(len(ev)):
        def run(i: int = i) -> Reconstruction:
            return _field_rec(model, I.encode(model, x[i:i + 1])[0], ev, i)
        recs.append(_timed(run))
    return recs


def _field_rec(model: Any, z: Tensor, ev: EvalShapes, i: int) -> Reconstruction:
    """An implicit model's output for code ``z``: its hierarchical marching-cubes mesh and its field's occupancy."""
    from . import implicit as I

    mesh, _ = I.extract(model, z, profile=ev.profile)
    return _mesh_rec(mesh, ev.sizes["n_points"], i, I.field_occupancy(model, z))


def _deepsdf_models(ev: EvalShapes) -> list[Reconstruction]:
    from course_lib.models.implicit import reconstruct_latent

    from . import implicit as I

    p = ev.profile
    s = config.sizes(p, prefix="ch07.")
    cats = tuple(s["sdf_categories"])
    train = I.implicit_data("train", kind="sdf", sampling="deepsdf", categories=cats, profile=p,
                            n_target=int(s["n_eval_points"]))
    model, _ = I.train_deepsdf(train, profile=p, progress=False)
    te = I.implicit_data("test", kind="sdf", sampling="deepsdf", categories=ev.categories,
                         per_category=ev.per_category, profile=p)
    _check_seeds(ev, te, "chapter 07 DeepSDF")
    recs = []
    for i in range(len(ev)):
        def run(i: int = i) -> Reconstruction:
            z = reconstruct_latent(model.decoder, te["query"][i], te["sdf"][i], iters=int(s["recon_iters"]),
                                   n_samples=int(s["recon_samples"]), seed=i)[0].cpu()
            return _field_rec(model, z, ev, i)
        recs.append(_timed(run))
    return recs


def _primitive_models(kind: str, ev: EvalShapes) -> list[Reconstruction]:
    from course_lib.models import primitives as P

    from . import primitives as E

    p = ev.profile
    sz = config.sizes(p, prefix="ch08.")
    data = {s: E.primitive_data(s, p) for s in ("train", "val")}
    model, _ = E.train_primitives(kind, "reorder", data["train"], val=data["val"], seed=int(sz["seeds"][0]),
                                  profile=p, progress=False, live_plot=False)
    te = E.primitive_data("test", p, categories=ev.categories, shapes_per_category=ev.per_category)
    _check_seeds(ev, te, "chapter 08")
    recs = []
    for i in range(len(ev)):
        def run(i: int = i) -> Reconstruction:
            prims = E._ensure_one(E.predict_primitives(model, te["points"][i:i + 1]), 0.5)
            parts = [_clean(m) for m in P.primitive_meshes(prims, 0, threshold=0.5)]
            pts, nrm = union_samples(prims, int(ev.sizes["n_points"]), i)

            def occ(q: Tensor, prims: Any = prims) -> Tensor:
                return P.union_occupancy(prims, q[None].to(prims.size.dtype), 0.5)[0]
            # the union's surface is not one mesh: it is closed when every primitive's mesh is
            return Reconstruction(pts, nrm, trimesh.util.concatenate(parts), occ,
                                  resample=lambda k, sd, prims=prims: union_samples(prims, k, sd)[0],
                                  watertight=all(m.is_watertight for m in parts))
        recs.append(_timed(run))
    return recs


def _fit_models(ev: EvalShapes) -> list[Reconstruction | None]:
    from . import rendering as R

    p = ev.profile
    sz = config.sizes(p, prefix="ch09.")
    k = int(ev.sizes["fit_per_category"])
    per = ev.per_category
    recs: list[Reconstruction | None] = []
    views = R.view_rig(int(sz["n_views"]))
    for i, shape in enumerate(ev.shapes):
        if i % per >= k:  # a per-shape optimisation of tens of seconds: only the first k shapes of each category
            recs.append(None)
            continue

        def run(shape: Any = shape, i: int = i) -> Reconstruction:
            target, cams = R.target_views(shape, views, int(sz["image_size"]))
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # as chapter 09 measured it: its many small ops are slower with 2 threads
            try:  # stored like a checkpoint (not in the memory pass, which must run the fit to measure it)
                res = R.fit_silhouettes(target, cams, **R.fit_kwargs(p), store=not _MEASURE_MEMORY[0])
            finally:
                torch.set_num_threads(threads)
            mesh = trimesh.Trimesh(res.verts.detach().cpu().numpy(), res.faces.cpu().numpy(), process=False)
            rec = _mesh_rec(mesh, ev.sizes["n_points"], i, closed=True)
            rec.fit_seconds = float(res.seconds) if res.stored else None
            return rec
        recs.append(_timed(run))
    return recs


def _shapegf_models(ev: EvalShapes) -> list[Reconstruction]:
    from . import gradient_fields as G

    p = ev.profile
    train = G.load_data("train", profile=p)
    model, _ = G.train_shapegf(train, profile=p, progress=False, live_plot=False)
    te = G.load_data("test", profile=p, categories=ev.categories, per_category=ev.per_category)
    _check_seeds(ev, te, "chapter 10")
    n = int(ev.sizes["n_points"])
    limit = int(config.sizes(p, prefix="ch11.")["shapegf_resample_limit"])

    def rec(i: int) -> Reconstruction:
        def resample(k: int, sd: int, i: int = i) -> Tensor:  # Langevin again, at any count (seed: as the table's)
            return G.reconstruct(model, te["points"][i:i + 1], int(k), profile=p, seed=int(sd))[0]
        return Reconstruction(resample(n, i), resample=resample, resample_limit=limit)
    return [_timed(lambda i=i: rec(i)) for i in range(len(ev))]


RETRIEVAL_LATENT = "nearest training shape (by AtlasNet's latent code)"
RETRIEVAL_ORACLE = "nearest training shape (oracle)"


def _retrieval_models(by: str, ev: EvalShapes) -> list[Reconstruction]:
    """The retrieval baseline (:func:`course_lib.experiments.surfaces.retrieval_clouds`): for each shape, the
    nearest of chapter 06's training shapes of ``ch11.categories`` (their stream-1 samples at the table's point
    count), chosen by the code of chapter 06's AtlasNet 25 patches (``"latent"``) or by Chamfer to the test
    target (``"oracle"``, an upper bound)."""
    from . import surfaces as S

    p = ev.profile
    sz = config.sizes(p, prefix="ch06.")
    n, n_in = int(ev.sizes["n_points"]), int(sz["n_input"])
    train = S.surface_dataset(config.size("ch11.categories", p), "train", sz["train_per_category"], n,
                              n_input=n_in, profile=p)
    te = S.surface_dataset(ev.categories, "test", ev.per_category, n, n_input=n_in, profile=p)
    _check_seeds(ev, te, f"retrieval ({by})")
    from . import retrieval as RET

    model = train_codes = None
    if by == "latent":
        model, _ = S.train_chapter_model("ae-square25", p, progress=False, live_plot=False)
        train_codes = S.encode_all(model, train["points"][:, :n_in])  # the index, built once

    recs = []
    for i in range(len(ev)):
        def run(i: int = i) -> Reconstruction:
            if by == "oracle":
                cloud = RET.retrieve(train["target_points"], ev.target[i], by="oracle").clouds
            else:
                cloud = RET.retrieve(train["target_points"], by="latent", train_codes=train_codes,
                                     query_codes=S.encode_all(model, te["points"][i:i + 1])[0]).clouds
            return Reconstruction(cloud.float())
        recs.append(_timed(run))
    return recs


@dataclass(frozen=True)
class ModelSpec:
    """One row of the table: who, from which chapter, from what input, and how to run it."""

    name: str
    chapter: str
    representation: str
    input: str
    run: Callable[[EvalShapes], list[Reconstruction | None]]
    trained_on: str | None = None  # the config key of its training categories (None: trains nothing)
    budget_note: str = ""  # what the training budget does not say (a per-shape optimisation at test time, ...)

    def describe_input(self, profile: str | None = None) -> str:
        """``input`` with its ``chNN.key`` sizes replaced by their values in ``profile``."""
        import re

        sz = config.sizes(profile)
        return re.sub(r"ch\d\d\.\w+", lambda m: str(sz[m.group(0)]) if m.group(0) in sz else m.group(0), self.input)

    def categories(self, profile: str | None = None) -> tuple[str, ...]:
        """The categories this model was trained on in ``profile`` (every ShapeNet-lite category when the
        key's value is None in that profile; empty for a per-shape fit, which trains nothing)."""
        from course_lib.data import CATEGORIES

        if self.trained_on is None:
            return ()
        cats = config.sizes(profile)[self.trained_on]
        return tuple(CATEGORIES) if cats is None else tuple(cats)


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("3D-R2N2-style voxel auto-encoder", "03", "voxels 32^3", "the shape's 32^3 voxel grid",
              lambda ev: _voxel_models("ae", ev), "ch03.categories"),
    ModelSpec("3D-R2N2-style single view", "03", "voxels 32^3", "one rendered RGB view",
              lambda ev: _voxel_models("svr", ev), "ch03.categories"),
    ModelSpec("OGN (octree decoder)", "04", "octree 64^3", "the shape's 64^3 voxel grid",
              lambda ev: _octree_models("ogn", ev), "ch04.categories"),
    ModelSpec("dense voxel decoder", "04", "voxels 64^3", "the shape's 64^3 voxel grid",
              lambda ev: _octree_models("dense", ev), "ch04.categories"),
    ModelSpec("PointSetGen (Chamfer loss)", "05", "points", "ch05.n_points surface points",
              lambda ev: _psg_models("chamfer", ev), "ch05.categories"),
    ModelSpec("PointSetGen (EMD loss)", "05", "points", "ch05.n_points surface points",
              lambda ev: _psg_models("emd", ev), "ch05.categories"),
    ModelSpec("AtlasNet sphere", "06", "mesh (deformed sphere)", "ch06.n_input surface points",
              lambda ev: _atlas_models("sphere", 1, ev), "ch06.categories"),
    ModelSpec("AtlasNet 25 patches", "06", "mesh (25 open patches)", "ch06.n_input surface points",
              lambda ev: _atlas_models("square", 25, ev), "ch06.categories"),
    ModelSpec("3D-CODED (one model per category)", "06", "mesh (deformed template)", "ch06.n_input surface points",
              _coded_models, "ch06.coded_categories"),
    ModelSpec("Occupancy Network", "07", "occupancy field", "ch07.n_input noisy surface points",
              _occnet_models, "ch07.categories"),
    ModelSpec("DeepSDF (trained on chairs)", "07", "SDF field", "SDF samples (latent optimisation)",
              _deepsdf_models, "ch07.sdf_categories",
              "plus a latent optimisation of ch07.recon_iters steps per test shape (in 's / shape')"),
    ModelSpec("superquadrics (reordering)", "08", "primitives", "ch08.n_points surface points",
              lambda ev: _primitive_models("superquadric", ev), "ch08.categories"),
    ModelSpec("cuboids (reordering)", "08", "primitives", "ch08.n_points surface points",
              lambda ev: _primitive_models("cuboid", ev), "ch08.categories"),
    ModelSpec("silhouette fit (per shape)", "09", "mesh (deformed icosphere)", "ch09.n_views silhouettes",
              _fit_models, budget_note="no training: an optimisation per test shape (its time is 's / shape')"),
    ModelSpec("ShapeGF", "10", "points (gradient field)", "ch10.n_points surface points",
              _shapegf_models, "ch10.categories"),
    ModelSpec(RETRIEVAL_LATENT, "06", "points (a training shape)", "ch06.n_input surface points",
              lambda ev: _retrieval_models("latent", ev), "ch11.categories",
              "AtlasNet 25 patches' encoder (chapter 06) picks the shape; the training shapes are its data"),
    ModelSpec(RETRIEVAL_ORACLE, "06", "points (a training shape)", "the test target (it looks at the answer)",
              lambda ev: _retrieval_models("oracle", ev), "ch11.categories",
              "no learning: an upper bound of retrieval, not a method"),
)
"""Every model of the table, in chapter order (the lecture and the benchmark use this list)."""


def baselines(ev: EvalShapes) -> dict[str, list[Reconstruction]]:
    """Reference rows: the oracle (an independent sampling of the exact surface, at ``ch11.n_points`` and at
    each point-set model's count) and the exact shape's own cell-centre-sampled 32^3 / 64^3 voxel grids (a
    reference, not a bound: a voxel model's soft grid, or a volume-fraction grid, can score better).

    Introduced in ``lectures/11_evaluation.ipynb``.
    """
    from course_lib.data import SAMPLING_STREAMS, voxelize
    from course_lib.experiments.voxels import grid_to_mesh

    n = int(ev.sizes["n_points"])
    out: dict[str, list[Reconstruction]] = {
        f"oracle ({n} points)": [Reconstruction(ev.oracle[i], ev.oracle_normals[i]) for i in range(len(ev))]}
    n_psg = int(config.sizes(ev.profile, prefix="ch05.")["n_points"])
    if n_psg != n:
        rows = []
        for sh in ev.shapes:
            p, nn_ = sh.sample_surface(n_psg, stream=SAMPLING_STREAMS["oracle"])
            rows.append(Reconstruction(p, nn_))
        out[f"oracle ({n_psg} points, PointSetGen's count)"] = rows
    for r in sorted({int(config.sizes(ev.profile, prefix="ch03.")["resolution"]),
                     int(config.sizes(ev.profile, prefix="ch04.")["resolution"])}):
        rows = []
        for i, sh in enumerate(ev.shapes):
            grid = voxelize(sh, r).float()  # a real dataset's MeshShape too
            rows.append(_mesh_rec(grid_to_mesh(grid, 0.5), n, i, grid_occupancy(grid, 0.5)))
        out[f"exact shape's {r}^3 voxels"] = rows
    return out


def first_shape(ev: EvalShapes) -> EvalShapes:
    """The same evaluation restricted to its first shape (the memory pass of :func:`evaluate_models`)."""
    return EvalShapes((ev.category[0],), ev.category[:1], ev.seed[:1], ev.shapes[:1], ev.target[:1],
                      ev.target_normals[:1], ev.oracle[:1], ev.oracle_normals[:1], ev.iou_points[:1],
                      ev.iou_occupancy[:1], ev.profile, dict(ev.sizes))


def peak_memory_of(spec: ModelSpec, ev: EvalShapes) -> float:
    """Peak extra resident memory (bytes) of ``spec`` producing the first shape of ``ev`` (NaN if it does not
    run on it).  Call it after every timing: it switches the allocator to ``mmap`` for the rest of the process."""
    _MEASURE_MEMORY[0] = True
    try:
        recs = spec.run(first_shape(ev))
    finally:
        _MEASURE_MEMORY[0] = False
        _restore_allocator()
    return float(recs[0].peak_bytes) if recs and recs[0] is not None else math.nan


def _restore_allocator() -> None:
    """Undo peak_memory's ``M_MMAP_THRESHOLD = 128 KiB`` (glibc): back to heap blocks up to 32 MiB, the top
    of glibc's own dynamic threshold, so that later work runs at its normal speed."""
    from . import point_sets

    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 32 << 20)
        point_sets._MALLOC_TUNED = False
    except (OSError, AttributeError):
        pass


def evaluate_model(spec: ModelSpec, ev: EvalShapes, *, emd: bool = True) -> dict[str, Any]:
    """Run one model on the shapes and score it: ``{"per_shape": [row or None], "mean": {col: value},
    "recs": [Reconstruction or None], "budget": ..., "selections": [...]}`` (means over the shapes the
    model ran on, NaN-aware).  ``budget`` is the training budget of the model(s) its chapter's recipe
    loaded (:func:`training_budget`), ``selections`` the choices its loader made on ``val`` (a threshold)."""
    del _SELECTIONS[:]
    with recording_training() as calls:
        recs = spec.run(ev)
    selections = list(_SELECTIONS)
    del _SELECTIONS[:]
    per = [score(r, ev, i, emd=emd) if r is not None else None for i, r in enumerate(recs)]
    return {"per_shape": per, "mean": _means(per), "per_category": _per_category(per, ev), "recs": recs,
            "budget": training_budget(calls, note=spec.budget_note), "selections": selections}


def _per_category(per: Sequence[dict[str, float] | None], ev: EvalShapes) -> dict[str, dict[str, float]]:
    return {c: _means([r for r, cat in zip(per, ev.category) if cat == c]) for c in ev.categories}


def _means(per: Sequence[dict[str, float] | None]) -> dict[str, float]:
    rows = [r for r in per if r is not None]
    if not rows:
        return {}
    out = {}
    for k in rows[0]:
        v = np.array([r[k] for r in rows], dtype=float)
        out[k] = float(np.nanmean(v)) if np.isfinite(v).any() else math.nan
    out["shapes"] = float(len(rows))
    return out


def evaluate_models(ev: EvalShapes, specs: Sequence[ModelSpec] | None = None, *, emd: bool = True,
                    progress: bool = True, checkpoints_only: bool = True,
                    memory: bool = False) -> dict[str, dict[str, Any]]:
    """Every model of ``specs`` (default :data:`MODELS`) plus :func:`baselines`, scored by :func:`score`.

    Introduced in ``lectures/11_evaluation.ipynb``.  ``checkpoints_only``: load the chapters'
    checkpoints and never train (a missing one raises :class:`course_lib.train.CheckpointMissing`).
    ``memory``: after all timings, run each model once more on the first shape to measure its peak
    memory (the ``peak_mb`` column; NaN otherwise).  Each model's ``mean["seconds"]`` is its mean wall time
    per shape.
    """
    import contextlib

    from tqdm.auto import tqdm

    from course_lib import train

    out: dict[str, dict[str, Any]] = {}
    for name, recs in baselines(ev).items():
        per = [score(r, ev, i, emd=emd) for i, r in enumerate(recs)]
        out[name] = {"per_shape": per, "mean": _means(per), "per_category": _per_category(per, ev), "recs": recs,
                     "chapter": "-", "representation": "reference", "input": "-"}
    specs = MODELS if specs is None else specs
    guard = train.checkpoints_only() if checkpoints_only else contextlib.nullcontext()
    with guard:
        for spec in tqdm(specs, desc="models", disable=not progress):
            res = evaluate_model(spec, ev, emd=emd)
            res.update(chapter=spec.chapter, representation=spec.representation,
                       input=spec.describe_input(ev.profile))
            out[spec.name] = res
        if memory:  # a second pass, after every timing (see _timed)
            for spec in tqdm(specs, desc="peak memory", disable=not progress):
                peak = peak_memory_of(spec, ev) / 2**20
                out[spec.name]["mean"]["peak_mb"] = peak
                out[spec.name]["peak_shape"] = ev.names()[0]
    return out


def table_rows(results: dict[str, dict[str, Any]], columns: Sequence[str] = tuple(COLUMNS)) -> list[dict[str, Any]]:
    """One row per model: name, chapter, representation, input, shapes and the mean of each column."""
    rows = []
    for name, r in results.items():
        m = r["mean"]
        rows.append({"model": name, "chapter": r.get("chapter", "-"), "representation": r.get("representation", ""),
                     "input": r.get("input", ""), "shapes": int(m.get("shapes", 0)),
                     "points": int(m.get("n_points", 0)), **{c: m.get(c, math.nan) for c in columns}})
    return rows


def ranking(rows: Sequence[dict[str, Any]], column: str, higher_is_better: bool = False) -> list[str]:
    """Model names ordered best first by ``column`` (rows without a value left out)."""
    ok = [r for r in rows if isinstance(r.get(column), float) and math.isfinite(r[column])]
    return [r["model"] for r in sorted(ok, key=lambda r: -r[column] if higher_is_better else r[column])]


# ---------------------------------------------------------------------------
# claims (protocol 2): the table's comparative statements, paired over its shapes
# ---------------------------------------------------------------------------
HIGHER_IS_BETTER: dict[str, bool] = {"cd": False, "cd_l1": False, "emd": False, "fscore": True, "nc": True,
                                     "iou": True, "hausdorff": False}
"""Which way each scored column is good."""
REFERENCE_BUDGET: dict[str, Any] = {"steps": None, "examples": None, "seconds": None, "params": None,
                                    "note": "a reference: no model"}


def slug(name: str) -> str:
    """A model name as a claim-id part: lower case, runs of other characters to ``-``."""
    import re

    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-")


def paired_values(results: dict[str, dict[str, Any]], a: str, b: str, column: str) -> tuple[list[float], list[float],
                                                                                           list[int]]:
    """The values of ``column`` of rows ``a`` and ``b`` on the shapes where both have a finite one:
    ``(values_a, values_b, shape indices)``."""
    va, vb, idx = [], [], []
    for i, (ra, rb) in enumerate(zip(results[a]["per_shape"], results[b]["per_shape"])):
        if ra is None or rb is None:
            continue
        x, y = ra.get(column, math.nan), rb.get(column, math.nan)
        if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
            continue
        va.append(float(x))
        vb.append(float(y))
        idx.append(i)
    return va, vb, idx


def oracle_for(results: dict[str, dict[str, Any]], name: str) -> str:
    """The oracle row at the point count of row ``name`` (PointSetGen's own count, else the table's)."""
    oracles = [k for k in results if k.startswith("oracle")]
    if not oracles:
        raise KeyError("no oracle row in the results")
    n = results[name]["mean"].get("n_points")
    same = [k for k in oracles if results[k]["mean"].get("n_points") == n]
    return same[0] if same else oracles[0]


def _is_model(r: dict[str, Any]) -> bool:
    return r.get("chapter", "-") != "-"


def _budget(results: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    return dict(results[name].get("budget") or REFERENCE_BUDGET)


def _comparison(id: str, text: str, results: dict[str, dict[str, Any]], a: str, b: str, column: str,
                min_shapes: int, left_out: list[dict[str, Any]]) -> dict[str, Any] | None:
    from .protocol import claim

    va, vb, _ = paired_values(results, a, b, column)
    if len(va) < min_shapes:
        left_out.append({"id": id, "text": text, "n": len(va),
                         "reason": f"{len(va)} paired shapes, fewer than the {min_shapes} a claim needs"})
        return None
    return claim(id, text, a=a, b=b, metric=HEADERS.get(column, column), values_a=va, values_b=vb,
                 higher_is_better=HIGHER_IS_BETTER[column], unit="shapes",
                 budget={a: _budget(results, a), b: _budget(results, b)}, min_n=min_shapes)


def table_claims(results: dict[str, dict[str, Any]], *, oracle_columns: Sequence[str] = ("cd", "emd", "fscore"),
                 rank_columns: Sequence[str] = ("cd", "iou"), retrieval: str | None = None,
                 min_shapes: int | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The comparative statements the table supports, as claims paired over its shapes: ``(claims, left_out)``.

    Introduced in ``lectures/11_evaluation.ipynb``.  For every model row (``chapter`` not ``"-"``):

    * ``oracle-<column>-<model>``: the model against the oracle at its own point count, on each of
      ``oracle_columns`` ("which models beat the oracle on which column");
    * ``retrieval-<column>-<model>`` (with ``retrieval``, a row name): the model against that retrieval
      baseline on the first of ``rank_columns``;
    * ``rank-<column>-<k>``: the ranking by each of ``rank_columns`` (the rows' means; for ``cd`` only the
      rows at the table's point count), each row against the next one.

    Every claim pairs the shapes where both rows have a value; a comparison with fewer than
    ``min_shapes`` (default :data:`~course_lib.experiments.protocol.MIN_SHAPES`) is not made and is listed
    in ``left_out`` with its reason (a per-shape fit run on a few shapes, a model with no row for a category).
    """
    from .protocol import MIN_SHAPES

    need = int(MIN_SHAPES if min_shapes is None else max(min_shapes, MIN_SHAPES))
    claims: list[dict[str, Any]] = []
    left_out: list[dict[str, Any]] = []
    models = [k for k, r in results.items() if _is_model(r)]
    for name in models:
        ref = oracle_for(results, name)
        for col in oracle_columns:
            better = "higher" if HIGHER_IS_BETTER[col] else "lower"
            c = _comparison(f"oracle-{col}-{slug(name)}", f"{name} scores a {better} {HEADERS[col]} than the {ref}",
                            results, name, ref, col, need, left_out)
            if c is not None:
                claims.append(c)
    if retrieval is not None and retrieval in results:
        col = rank_columns[0]
        for name in models:
            if name == retrieval or name.startswith("nearest training shape"):
                continue
            better = "higher" if HIGHER_IS_BETTER[col] else "lower"
            c = _comparison(f"retrieval-{col}-{slug(name)}", f"{name} scores a {better} {HEADERS[col]} than the "
                            f"{retrieval}", results, name, retrieval, col, need, left_out)
            if c is not None:
                claims.append(c)
    n_table = max((results[k]["mean"].get("n_points", 0) for k in results), default=0)
    for col in rank_columns:
        rows = []
        for name in models:
            m = results[name]["mean"]
            v = m.get(col, math.nan)
            if v is None or not math.isfinite(v) or m.get("shapes", 0) < need:
                continue
            if col == "cd" and m.get("n_points") != n_table:
                continue  # a fixed, smaller point count scores a higher CD by sampling alone: compared with its oracle
            rows.append((name, v))
        rows.sort(key=lambda t: -t[1] if HIGHER_IS_BETTER[col] else t[1])
        for k in range(len(rows) - 1):
            a, b = rows[k][0], rows[k + 1][0]
            better = "higher" if HIGHER_IS_BETTER[col] else "lower"
            c = _comparison(f"rank-{col}-{k + 1:02d}", f"{a} (ranked {k + 1} by {HEADERS[col]}) scores a {better} "
                            f"{HEADERS[col]} than {b} (ranked {k + 2})", results, a, b, col, need, left_out)
            if c is not None:
                claims.append(c)
    return claims, left_out


# ---------------------------------------------------------------------------
# protocol sensitivity
# ---------------------------------------------------------------------------
def protocol_sensitivity(results: dict[str, dict[str, Any]], ev: EvalShapes, *,
                         point_counts: Sequence[int] = (256, 1024, 2048, 8192),
                         taus: Sequence[float] = (0.01, 0.02, 0.05),
                         iou_points: Sequence[int] = (4096, 32768)) -> dict[str, Any]:
    """The same predictions scored under each paper's convention.

    Introduced in ``lectures/11_evaluation.ipynb``.  Returns ``{"presets": {model: {preset: CD}},
    "presets_own_count": the same with each preset's own point count (``Convention.n_points``: 2,048 for
    PointFlow, 30,000 for DeepSDF, 100,000 for OccNet) for outputs that can be resampled and the target,
    "point_count": {model: {n: CD x1e3}}, "fscore": {model: {tau: F}}, "iou_points": {model: {q: IoU}},
    "kendall": {(a, b): tau}}``: Chamfer under each :data:`course_lib.metrics.PRESETS` convention;
    the AtlasNet-convention Chamfer of the oracle and of mesh outputs sampled at each point count
    (a mesh can be sampled at any count, so a protocol's count moves its number); F-score at each
    threshold; IoU with fewer uniform points; Kendall's rank correlation between the model
    rankings of the presets (1: the same order).
    """
    from course_lib.data import SAMPLING_STREAMS

    names = [n for n, r in results.items() if any(x is not None for x in r["recs"])]
    presets = {}
    for name in names:
        recs = results[name]["recs"]
        row = {}
        for pname, conv in M.PRESETS.items():
            v = [float(conv.chamfer(r.points.float(), ev.target[i])) for i, r in enumerate(recs) if r is not None]
            row[pname] = float(np.mean(v))
        presets[name] = row
    targets: dict[tuple[int, int], Tensor] = {}

    def target(i: int, n: int) -> Tensor:
        if (i, n) not in targets:
            targets[(i, n)] = ev.shapes[i].sample_surface(int(n), stream=SAMPLING_STREAMS["target"])[0]
        return targets[(i, n)]

    def can_resample(r: Reconstruction | None, n: int) -> bool:
        return (r is not None and r.resample is not None and not r.empty
                and (r.resample_limit is None or int(n) <= r.resample_limit))

    own: dict[str, dict[str, float]] = {}  # each preset at its paper's point count, where the output allows it
    own_points: dict[str, dict[str, int]] = {}  # the prediction's point count actually used in each cell
    for name in names:
        recs = results[name]["recs"]
        row, used = {}, {}
        for pname, conv in M.PRESETS.items():
            n = int(conv.n_points or ev.sizes["n_points"])
            v, counts_used = [], set()
            for i, r in enumerate(recs):
                if r is None:
                    continue
                if can_resample(r, n):
                    pts = r.resample(n, i)
                elif name == names[0]:
                    pts = ev.shapes[i].sample_surface(n, stream=SAMPLING_STREAMS["oracle"])[0]
                else:
                    pts = r.points.float()
                counts_used.add(int(pts.shape[0]))
                v.append(float(conv.chamfer(pts, target(i, n))))
            row[pname] = float(np.mean(v))
            used[pname] = max(counts_used)
        own[name] = row
        own_points[name] = used
    counts: dict[str, dict[str, float]] = {}
    for name in names:
        recs = results[name]["recs"]
        if not any(r is not None and r.resample is not None for r in recs) and name != names[0]:
            continue  # only outputs that can be sampled at any count (and the first row: the oracle)
        row = {}
        for n in point_counts:
            v = []
            for i, r in enumerate(recs):
                if r is None or r.empty:
                    continue
                if r.resample is not None and not can_resample(r, int(n)):
                    v = []
                    break  # above this output's sampling limit: no cell rather than a cell on other points
                gt = target(i, int(n))
                if r.resample is not None:
                    pts = r.resample(int(n), i)
                else:  # the oracle: a new independent sampling at this count
                    pts, _ = ev.shapes[i].sample_surface(int(n), stream=SAMPLING_STREAMS["oracle"])
                v.append(float(M.chamfer(pts, gt, squared=True, directions="sum", scale=1e3)))
            if v:
                row[str(n)] = float(np.mean(v))
        if row:
            counts[name] = row
    fs = {name: {str(t): float(np.mean([float(M.fscore(r.points.float(), ev.target[i], float(t)))
                                       for i, r in enumerate(results[name]["recs"]) if r is not None]))
                 for t in taus} for name in names}
    ious: dict[str, dict[str, float]] = {}
    for name in names:
        recs = results[name]["recs"]
        if not any(r is not None and r.occupancy is not None for r in recs):
            continue
        row = {}
        for q in iou_points:
            v = []
            for i, r in enumerate(recs):
                if r is None or r.occupancy is None:
                    continue
                pts, occ = ev.iou_points[i][:q], ev.iou_occupancy[i][:q]
                v.append(float(M.volumetric_iou(r.occupancy(pts).reshape(-1).bool(), occ)))
            row[str(q)] = float(np.mean(v))
        ious[name] = row
    models = [n for n in names if not n.startswith(("oracle", "exact"))]
    rank_tau = {}
    pn = list(M.PRESETS)
    for a in range(len(pn)):
        for b in range(a + 1, len(pn)):
            rank_tau[f"{pn[a]} vs {pn[b]}"] = kendall([presets[m][pn[a]] for m in models],
                                                      [presets[m][pn[b]] for m in models])
    rank = {p: sorted(models, key=lambda m: presets[m][p]) for p in pn}
    frames = frame_sensitivity(results, ev, names)
    return {"presets": presets, "presets_own_count": own, "presets_own_count_points": own_points,
            "preset_points": {k: int(v.n_points or ev.sizes["n_points"]) for k, v in M.PRESETS.items()},
            "point_count": counts, "fscore": fs, "iou_points": ious, "kendall": rank_tau,
            "rank": rank, "preset_sources": {k: v.source for k, v in M.PRESETS.items()}, **frames}


def frame_sensitivity(results: dict[str, dict[str, Any]], ev: EvalShapes,
                      names: Sequence[str] | None = None) -> dict[str, Any]:
    """The fifth convention axis: the same predictions measured after a normalisation into each frame.

    Introduced in ``lectures/11_evaluation.ipynb``.  Each prediction follows its target into the frame
    (:func:`course_lib.metrics.to_frame`: the similarity fixed by the target).  Returns ``"frames"``: ``{model:
    {frame: AtlasNet-convention CD}}`` for every frame of :data:`course_lib.metrics.FRAMES`;
    ``"frame_scale"``: ``{frame: {"mean", "min", "max"}}`` of the per-shape scale (a squared CD moves by its
    square); ``"frame_kendall"``: Kendall's tau between the models' ranking in the course's frame and in each
    frame, over the rows scored on every shape (1: the same order); ``"frame_swaps"``: the pairs of models whose
    order flips; ``"presets_paper_frame"``: ``{model: {preset: CD}}`` with each preset in its paper's frame
    (:attr:`course_lib.metrics.Convention.frame`); ``"preset_frames"``: each preset's frame.
    """
    if names is None:
        names = [n for n, r in results.items() if any(x is not None for x in r["recs"])]
    frames: dict[str, dict[str, float]] = {}
    paper: dict[str, dict[str, float]] = {}
    conv = M.PRESETS["atlasnet"]
    for name in names:
        recs = results[name]["recs"]
        pairs = [(r.points.float(), ev.target[i]) for i, r in enumerate(recs) if r is not None]
        frames[name] = {f: float(np.mean([float(conv.chamfer(*M.to_frame(x, y, f))) for x, y in pairs]))
                        for f in M.FRAMES}
        paper[name] = {p: float(np.mean([float(c.chamfer(x, y, in_paper_frame=True)) for x, y in pairs]))
                       for p, c in M.PRESETS.items()}
    scale = {}
    for f in M.FRAMES:
        s = np.array([float(M.frame_transform(ev.target[i], f)[1].reshape(())) for i in range(len(ev))])
        scale[f] = {"mean": float(s.mean()), "min": float(s.min()), "max": float(s.max())}
    full = [n for n in names if not n.startswith(("oracle", "exact"))
            and all(r is not None for r in results[n]["recs"])]
    base = "course"
    tau, swaps = {}, {}
    for f in M.FRAMES:
        if f == base:
            continue
        a, b = [frames[m][base] for m in full], [frames[m][f] for m in full]
        tau[f] = kendall(a, b)
        swaps[f] = [[full[i], full[j]] for i in range(len(full)) for j in range(i + 1, len(full))
                    if (a[i] - a[j]) * (b[i] - b[j]) < 0]
    return {"frames": frames, "frame_scale": scale, "frame_kendall": tau, "frame_swaps": swaps,
            "frame_models": full, "presets_paper_frame": paper,
            "preset_frames": {k: v.frame for k, v in M.PRESETS.items()},
            "frame_sources": dict(M.FRAMES)}


def _num(v: Any) -> float:
    """A stored value as a float (a results file keeps NaN as null)."""
    return math.nan if v is None else float(v)


def sharp_edge_study(results: dict[str, dict[str, Any]], *, min_shapes: int | None = None) -> dict[str, Any]:
    """The seed's "too smooth" question, per model with a mesh output: normal consistency at the target's creases
    against its flat regions (:func:`crease_labels`), paired over the shapes.

    Introduced in ``lectures/11_evaluation.ipynb``.  Returns ``{"rows": {model: {"nc_crease", "nc_flat", "shapes"}},
    "claims": [...], "gap_claims": [...], "left_out": [...], "labels": CREASE}``: one claim per model ("its normals
    match the target better on flat regions than at creases"), and one per model against the oracle at its point
    count ("it loses more at creases than the oracle does": the oracle's own samples lose there too), each made
    only with at least ``min_shapes`` shapes (default :data:`~course_lib.experiments.protocol.MIN_SHAPES`).
    """
    from .protocol import MIN_SHAPES, claim

    need = int(MIN_SHAPES if min_shapes is None else max(min_shapes, MIN_SHAPES))
    rows, claims, left = {}, [], []
    for name, r in results.items():
        per = [p for p in r.get("per_shape", []) if p is not None]
        pairs = [(_num(p.get("nc_flat")), _num(p.get("nc_crease"))) for p in per]
        pairs = [(a, b) for a, b in pairs if math.isfinite(a) and math.isfinite(b)]
        if not pairs:
            continue
        flat, crease = [a for a, _ in pairs], [b for _, b in pairs]
        rows[name] = {"nc_flat": float(np.mean(flat)), "nc_crease": float(np.mean(crease)), "shapes": len(pairs)}
        text = f"{name}'s normals match the target better on flat regions than at creases (normal consistency)"
        if len(pairs) < need:
            left.append({"id": f"crease-{slug(name)}", "text": text, "n": len(pairs),
                         "reason": f"{len(pairs)} shapes, fewer than the {need} a claim needs"})
            continue
        claims.append(claim(f"crease-{slug(name)}", text, a="flat regions", b="creases", metric="normal consistency",
                            values_a=flat, values_b=crease, higher_is_better=True, unit="shapes",
                            selected_on="none", min_n=need))
    # the oracle loses at creases too (its nearest sample may lie across the edge): a model is "too smooth" only
    # where its gap (flat - crease) exceeds the oracle's at the same point count, shape by shape
    gaps: list[dict[str, Any]] = []
    for name in rows:
        if name.startswith(("oracle", "exact")):
            continue
        try:
            ref = oracle_for(results, name)
        except KeyError:
            break
        va, vb = [], []
        for pa, pb in zip(results[name]["per_shape"], results[ref]["per_shape"]):
            if pa is None or pb is None:
                continue
            ga = _num(pa.get("nc_flat")) - _num(pa.get("nc_crease"))
            gb = _num(pb.get("nc_flat")) - _num(pb.get("nc_crease"))
            if math.isfinite(ga) and math.isfinite(gb):
                va.append(ga)
                vb.append(gb)
        text = (f"{name} loses more normal consistency at creases (flat minus crease) than the {ref}")
        if len(va) < need:
            left.append({"id": f"crease-gap-{slug(name)}", "text": text, "n": len(va),
                         "reason": f"{len(va)} shapes, fewer than the {need} a claim needs"})
            continue
        gaps.append(claim(f"crease-gap-{slug(name)}", text, a=name, b=ref, metric="flat - crease normal consistency",
                          values_a=va, values_b=vb, higher_is_better=True, unit="shapes", selected_on="none",
                          min_n=need))
    return {"rows": rows, "claims": claims, "gap_claims": gaps, "left_out": left, "labels": dict(CREASE)}


def kendall(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-a between two score lists (1: the same order, -1: reversed; a pair tied in either counts 0)."""
    n = len(a)
    s = 0
    for i in range(n):
        for j in range(i + 1, n):
            s += int(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]))
    pairs = n * (n - 1) / 2
    return float(s / pairs) if pairs else math.nan


# ---------------------------------------------------------------------------
# reading the benchmark's files (the lecture)
# ---------------------------------------------------------------------------
HEADERS = {"cd": "CD x1e3", "cd_l1": "CD-L1", "emd": "EMD x1e2", "fscore": "F-score", "nc": "NC", "iou": "IoU",
           "hausdorff": "Hausdorff", "watertight": "watertight", "seconds": "s / shape", "peak_mb": "MiB / shape"}


def format_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str] = tuple(HEADERS),
                extra: Sequence[str] = ("chapter", "shapes", "points"), digits: int = 3) -> str:
    """A Markdown table of :func:`table_rows` rows (or the benchmark's stored ones); '-' where a column does
    not apply (NaN or None)."""
    def fmt(v: Any) -> str:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "-"
        return f"{v:.{digits}g}" if isinstance(v, float) else str(v)

    head = ["model", *extra, *[HEADERS.get(c, c) for c in columns]]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join([str(r["model"]), *[fmt(r.get(k)) for k in extra], *[fmt(r.get(c)) for c in columns]])
            + " |" for r in rows]
    return "\n".join(out)


def load_predictions(profile: str = "laptop") -> dict[str, Any] | None:
    """The benchmark's stored predictions (``evaluation-<profile>-predictions.npz``; ``evaluation-wide-...`` under
    ``COURSE_VARIETY=wide``): ``{"shapes": [names], "target": (K, n, 3), "models": [names], "points": {model:
    [(n_i, 3) or None per shape]}}``, or None."""
    from course_lib.results import results_dir, variety_name

    path = results_dir() / f"{variety_name('evaluation')}-{profile}-predictions.npz"
    if not path.is_file():
        return None
    with np.load(path) as z:
        shapes = [str(s) for s in z["shapes"]]
        models = [str(m) for m in z["models"]]
        points = {m: [torch.as_tensor(z[f"pred/{j}/{k}"].astype(np.float32)) if f"pred/{j}/{k}" in z.files else None
                      for k in range(len(shapes))] for j, m in enumerate(models)}
        return {"shapes": shapes, "target": torch.as_tensor(z["target"].astype(np.float32)), "models": models,
                "points": points}
