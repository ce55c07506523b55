"""The experiments of chapter 05 (point sets), shared by the lecture, the lab and the benchmark.

Introduced in ``lectures/05_point_sets.ipynb``.

* Data: :func:`point_clouds` (ShapeNet-lite surface samples as one tensor),
  :class:`PointBatches` (auto-encoder batches: the input and the target are two disjoint
  random subsets of a shape's samples, redrawn every epoch), :func:`held_out` (the test
  ground truth and an independent *oracle* sampling of the same surfaces);
* Training: :func:`build_autoencoder`, :func:`point_loss`, :func:`train_autoencoder`
  (``"chamfer"`` or ``"emd"`` loss, through :func:`course_lib.train.train_or_load`);
* Evaluation in one stated convention (:data:`CONVENTION`): :func:`evaluate_sets`,
  :func:`results_table`, and the uniformity statistic :func:`nn_uniformity`;
* The mean-shape experiment of Fan et al. (2017): :func:`sample_rings`,
  :func:`mean_shape`, :func:`radial_profile`;
* Complexity: :func:`peak_memory`, :func:`time_distances`.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from course_lib import config
from course_lib import ops as _ops

__all__ = [
    "CONVENTION",
    "point_clouds",
    "PointBatches",
    "held_out",
    "build_autoencoder",
    "view_point_pairs",
    "ViewBatches",
    "train_single_view",
    "point_loss",
    "train_autoencoder",
    "checkpoint_path",
    "predict",
    "nn_distances",
    "nn_uniformity",
    "fscore",
    "evaluate_sets",
    "results_table",
    "format_table",
    "sample_radii",
    "sample_rings",
    "mean_shape",
    "radial_profile",
    "peak_memory",
    "time_distances",
]

CONVENTION = (
    "every set has N points (the model's output size); ground truth = N surface samples, the oracle = "
    "N other, independent samples of the same surface. CD: squared Euclidean nearest-neighbour "
    "distances, mean over each set, the two directions summed, x1000. EMD: exact optimal one-to-one "
    "matching (Hungarian), mean unsquared matched distance, x100. F-score at tau = 0.05 (Euclidean), "
    "in %. NN-CV: coefficient of variation (std / mean) of each point's distance to its nearest other "
    "point of the same set (lower = more uniform). All averaged over the held-out shapes."
)
"""The one convention every table of chapter 05 uses."""

CD_SCALE = 1e3
EMD_SCALE = 1e2
TAU = 0.05


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------
def point_clouds(split: str, profile: str | None = None, categories: Sequence[str] | None = None,
                 shapes_per_category: int | None = None) -> dict[str, Any]:
    """ShapeNet-lite surface samples of ``split`` stacked: ``{"points": (S, P, 3), "label": (S,), ...}``.

    Introduced in ``lectures/05_point_sets.ipynb``. ``P`` is ``data.n_surface_points`` of the
    profile; items are cached on disk by :class:`course_lib.data.ShapeNetLite`.
    """
    from course_lib.data import ShapeNetLite

    ds = ShapeNetLite(split, ("points",), profile=profile, categories=categories,
                      shapes_per_category=shapes_per_category)
    items = [ds[i] for i in range(len(ds))]
    return {
        "points": torch.stack([it["points"] for it in items]),
        "label": torch.tensor([it["label"] for it in items]),
        "category": [it["category"] for it in items],
        "seed": [it["seed"] for it in items],
    }


class PointBatches:
    """Auto-encoder batches over a ``(S, P, 3)`` tensor of surface samples.

    Introduced in ``lectures/05_point_sets.ipynb``.

    Each epoch shuffles the shapes and, for every shape, draws two *disjoint* random subsets
    of ``n`` of its ``P`` samples: ``batch["input"]`` (what the encoder sees) and
    ``batch["target"]`` (what the loss compares with), both ``(B, n, 3)``. The target is thus an
    independent sampling of the same surface, as at test time. Needs ``P >= 2 n``.
    """

    def __init__(self, points: Tensor, n: int, batch_size: int, seed: int = 0, shuffle: bool = True) -> None:
        if not isinstance(points, Tensor) or points.dim() != 3 or points.shape[-1] != 3:
            raise ValueError(f"points must be a tensor (S, P, 3), got {getattr(points, 'shape', type(points))}")
        if n < 1 or 2 * n > points.shape[1]:
            raise ValueError(f"need 1 <= n and 2 n <= P = {points.shape[1]} samples per shape, got n = {n}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.points, self.n, self.batch_size, self.shuffle = points, int(n), int(batch_size), shuffle
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(self.points.shape[0] / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        s, p = self.points.shape[:2]
        order = torch.randperm(s, generator=self.gen) if self.shuffle else torch.arange(s)
        for i in range(0, s, self.batch_size):
            idx = order[i:i + self.batch_size]
            perm = torch.argsort(torch.rand(len(idx), p, generator=self.gen), dim=1)
            take = perm[:, : 2 * self.n].to(self.points.device)
            sub = torch.gather(self.points[idx.to(self.points.device)], 1, take[..., None].expand(-1, -1, 3))
            yield {"input": sub[:, : self.n], "target": sub[:, self.n:]}


def held_out(points: Tensor, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``(ground_truth, oracle)``: two disjoint random subsets of ``n`` samples of each shape.

    Introduced in ``lectures/05_point_sets.ipynb``. The samples of a shape are i.i.d.
    area-weighted draws from its surface, so the two subsets are independent samplings of
    the same surface: the oracle is what a perfect ``n``-point sampler of the true surface
    scores (the floor a model is judged against).
    """
    if 2 * n > points.shape[1]:
        raise ValueError(f"need 2 n <= P = {points.shape[1]}, got n = {n}")
    gen = torch.Generator().manual_seed(seed)
    perm = torch.argsort(torch.rand(points.shape[0], points.shape[1], generator=gen), dim=1).to(points.device)
    sub = torch.gather(points, 1, perm[:, : 2 * n, None].expand(-1, -1, 3))
    return sub[:, :n].contiguous(), sub[:, n:].contiguous()


# ---------------------------------------------------------------------------
# models and training
# ---------------------------------------------------------------------------
def build_autoencoder(profile: str | None = None) -> torch.nn.Module:
    """The chapter's PointSetGen auto-encoder with the sizes of ``profile`` (``ch05.*`` config keys).

    Introduced in ``lectures/05_point_sets.ipynb``.
    """
    from course_lib.models import psg_autoencoder

    s = config.sizes(profile, prefix="ch05.")
    return psg_autoencoder(latent_dim=s["latent_dim"], n_fc=s["n_fc"], map_size=s["map_size"],
                           n_upsample=s["n_upsample"], map_channels=s["map_channels"],
                           fc_hidden=s["fc_hidden"], encoder_feat_dim=s["encoder_feat_dim"])


def point_loss(kind: str, emd_method: str = "exact", **emd_kwargs: Any) -> Callable[[Any, dict], dict]:
    """A ``loss_fn(model, batch)`` for :func:`course_lib.train.fit`: Chamfer or EMD to ``batch["target"]``.

    Introduced in ``lectures/05_point_sets.ipynb``. ``kind="chamfer"``:
    :func:`course_lib.ops.chamfer_distance` (squared, mean + mean). ``kind="emd"``:
    :func:`course_lib.ops.emd` with ``emd_method`` (unsquared; the gradient holds the matching
    fixed). The returned dict also reports the batch Chamfer distance under ``"cd"``.
    """
    if kind not in ("chamfer", "emd"):
        raise ValueError(f"kind must be 'chamfer' or 'emd', got {kind!r}")

    def loss_fn(model: Any, batch: dict) -> dict:
        pred = model(batch["input"])
        target = batch["target"]
        if kind == "chamfer":
            loss = _ops.chamfer_distance(pred, target)
            return {"loss": loss}
        loss = _ops.emd(pred, target, method=emd_method, **emd_kwargs).cost
        with torch.no_grad():
            cd = _ops.chamfer_distance(pred, target)
        return {"loss": loss, "cd": cd}

    return loss_fn


def checkpoint_path(kind: str, profile: str | None = None, task: str = "ae") -> Path:
    """Where the trained chapter-05 model of ``kind`` (``"chamfer"``/``"emd"``) is kept (git-ignored cache)."""
    profile = profile or config.get_profile()
    return config.cache_dir() / "checkpoints" / f"ch05_psg_{task}_{kind}_{profile}.pt"


def train_autoencoder(kind: str, profile: str | None = None, *, train_points: Tensor | None = None,
                      retrain: bool = False, progress: bool = True, path: str | os.PathLike | None = None,
                      **fit_kwargs: Any) -> tuple[torch.nn.Module, Any]:
    """Train (or load) the auto-encoder with the ``"chamfer"`` or ``"emd"`` loss; return ``(model, history)``.

    Introduced in ``lectures/05_point_sets.ipynb``. Sizes: ``ch05.*`` of ``profile``; the EMD
    solver is ``ch05.emd_method``. Same seed, data and schedule for both losses.
    """
    from course_lib.train import train_or_load

    profile = profile or config.get_profile()
    s = config.sizes(profile, prefix="ch05.")
    config.seed_everything(s["seed"])
    model = build_autoencoder(profile)
    if train_points is None:
        train_points = point_clouds("train", profile, s["categories"], s["train_per_category"])["points"]
    batches = PointBatches(train_points, s["n_points"], s["batch_size"], seed=s["seed"])
    kw: dict[str, Any] = dict(loss_fn=point_loss(kind, s["emd_method"]), epochs=s["epochs"], lr=s["lr"],
                              seed=s["seed"], progress=progress)
    kw.update(fit_kwargs)
    history = train_or_load(model, path or checkpoint_path(kind, profile), retrain=retrain,
                            train_loader=batches, **kw)
    model.eval()
    return model, history


def view_point_pairs(split: str, profile: str | None = None) -> dict[str, Any]:
    """Rendered RGB views and surface samples of the ``ch05.svr_*`` shapes of ``split``.

    Introduced in ``lectures/05_point_sets.ipynb``. Returns ``{"rgb": (S, 3, H, W), "points": (S, P, 3),
    "category": [...]}``; views are ShapeNet-lite's seeded random views (cached on disk).
    """
    from course_lib.data import ShapeNetLite

    s = config.sizes(profile, prefix="ch05.")
    per = s["svr_train_per_category"] if split == "train" else s["test_per_category"]
    ds = ShapeNetLite(split, ("points", "image"), profile=profile, categories=s["svr_categories"],
                      shapes_per_category=per)
    items = [ds[i] for i in range(len(ds))]
    return {"rgb": torch.stack([it["rgb"] for it in items]), "points": torch.stack([it["points"] for it in items]),
            "category": [it["category"] for it in items]}


class ViewBatches:
    """Single-view batches: ``{"input": rgb (B, 3, H, W), "target": n random surface samples (B, n, 3)}``.

    Introduced in ``lectures/05_point_sets.ipynb``.
    """

    def __init__(self, rgb: Tensor, points: Tensor, n: int, batch_size: int, seed: int = 0) -> None:
        if rgb.shape[0] != points.shape[0]:
            raise ValueError(f"{rgb.shape[0]} images but {points.shape[0]} point clouds")
        if n > points.shape[1]:
            raise ValueError(f"n = {n} exceeds the {points.shape[1]} samples per shape")
        self.rgb, self.points, self.n, self.batch_size = rgb, points, int(n), int(batch_size)
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return math.ceil(self.rgb.shape[0] / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        s, p = self.points.shape[:2]
        order = torch.randperm(s, generator=self.gen)
        for i in range(0, s, self.batch_size):
            idx = order[i:i + self.batch_size]
            take = torch.argsort(torch.rand(len(idx), p, generator=self.gen), dim=1)[:, : self.n]
            pts = torch.gather(self.points[idx], 1, take[..., None].expand(-1, -1, 3))
            yield {"input": self.rgb[idx], "target": pts}


def train_single_view(profile: str | None = None, *, data: dict[str, Any] | None = None, retrain: bool = False,
                      progress: bool = True, **fit_kwargs: Any) -> tuple[torch.nn.Module, Any]:
    """Train (or load) PointSetGen for single-view reconstruction (ResNet on RGB views, Chamfer loss).

    Introduced in ``lectures/05_point_sets.ipynb``. Sizes: ``ch05.*`` (``svr_*`` keys).
    """
    from course_lib.models import psg_single_view
    from course_lib.train import train_or_load

    profile = profile or config.get_profile()
    s = config.sizes(profile, prefix="ch05.")
    config.seed_everything(s["seed"])
    model = psg_single_view(latent_dim=s["latent_dim"], n_fc=s["n_fc"], map_size=s["map_size"],
                            n_upsample=s["n_upsample"], map_channels=s["map_channels"], fc_hidden=s["fc_hidden"],
                            width=s["svr_width"])
    data = data or view_point_pairs("train", profile)
    batches = ViewBatches(data["rgb"], data["points"], s["n_points"], s["batch_size"], seed=s["seed"])
    kw: dict[str, Any] = dict(loss_fn=point_loss("chamfer"), epochs=s["svr_epochs"], lr=s["lr"], seed=s["seed"],
                              progress=progress)
    kw.update(fit_kwargs)
    history = train_or_load(model, checkpoint_path("chamfer", profile, task="svr"), retrain=retrain,
                            train_loader=batches, **kw)
    model.eval()
    return model, history


@torch.no_grad()
def predict(model: torch.nn.Module, inputs: Tensor, batch_size: int = 64) -> Tensor:
    """Run ``model`` in eval mode on ``inputs`` in batches; returns the stacked predictions."""
    was = model.training
    model.eval()
    dev = next((p.device for p in model.parameters()), inputs.device)
    out = torch.cat([model(inputs[i:i + batch_size].to(dev)).cpu() for i in range(0, inputs.shape[0], batch_size)])
    model.train(was)
    return out


# ---------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------
def nn_distances(points: Tensor) -> Tensor:
    """Distance from each point to its nearest *other* point of the same set: ``(B, N, 3) -> (B, N)``.

    Introduced in ``lectures/05_point_sets.ipynb``. Duplicated points are at distance 0.
    """
    if not isinstance(points, Tensor) or points.dim() not in (2, 3) or points.shape[-1] != 3:
        raise ValueError(f"points must be (N, 3) or (B, N, 3), got {getattr(points, 'shape', type(points))}")
    unb = points.dim() == 2
    p = points[None] if unb else points
    if p.shape[1] < 2:
        raise ValueError("a set needs at least 2 points to have nearest neighbours")
    d2, idx = _ops.knn(p, p, 2)
    ar = torch.arange(p.shape[1], device=p.device)[None, :]
    # the first neighbour is the point itself unless a duplicate came first: take the one that is not self
    other = torch.where(idx[..., 0] == ar, d2[..., 1], d2[..., 0])
    out = other.clamp_min(0).sqrt()
    return out[0] if unb else out


def nn_uniformity(points: Tensor) -> Tensor:
    """Coefficient of variation (std / mean) of the nearest-neighbour distances of each set.

    Introduced in ``lectures/05_point_sets.ipynb``. ``(B, N, 3) -> (B,)`` (or a scalar for one set).
    0 for a perfectly regular set (every point equally far from its nearest neighbour); about
    0.5 for i.i.d. uniform samples of a surface; large when points clump (some pairs nearly
    coincide while others are far apart). Scale invariant.
    """
    d = nn_distances(points)
    mean = d.mean(-1)
    return d.std(-1) / mean.clamp_min(1e-12)


def fscore(pred: Tensor, gt: Tensor, tau: float = TAU) -> Tensor:
    """F-score at threshold ``tau`` per set ``(B,)``: uses :func:`course_lib.metrics.fscore` when it exists.

    Introduced in ``lectures/05_point_sets.ipynb``. Precision: fraction of predicted points
    within ``tau`` of the ground truth; recall: the converse; F = 2PR / (P + R).
    """
    try:
        from course_lib.metrics import fscore as _fscore

        return _fscore(pred, gt, tau, reduction="none")
    except ImportError:  # the metrics module is not there yet: the same definition with ops.knn
        d_pg = _ops.knn(pred, gt, 1)[0][..., 0]
        d_gp = _ops.knn(gt, pred, 1)[0][..., 0]
        p = (d_pg <= tau**2).float().mean(-1)
        r = (d_gp <= tau**2).float().mean(-1)
        return torch.where(p + r > 0, 2 * p * r / (p + r).clamp_min(1e-12), torch.zeros_like(p))


@torch.no_grad()
def evaluate_sets(pred: Tensor, gt: Tensor, tau: float = TAU) -> dict[str, Tensor]:
    """Per-shape metrics of predicted sets against ground-truth sets, in :data:`CONVENTION`.

    Introduced in ``lectures/05_point_sets.ipynb``. ``pred`` and ``gt``: ``(S, N, 3)``. Returns
    ``{"CD x1e3", "EMD x1e2", "F@0.05 %", "NN-CV"}``, each ``(S,)``.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt must have the same shape (S, N, 3), got {tuple(pred.shape)} "
                         f"and {tuple(gt.shape)}")
    pred, gt = pred.float(), gt.float()
    cd = _ops.chamfer_distance(pred, gt, reduction="none") * CD_SCALE
    emd = _ops.emd(pred, gt, method="exact", reduction="none").cost * EMD_SCALE
    f = fscore(pred, gt, tau) * 100
    return {"CD x1e3": cd, "EMD x1e2": emd, f"F@{tau:g} %": f, "NN-CV": nn_uniformity(pred)}


def results_table(rows: dict[str, dict[str, Tensor]]) -> list[dict[str, Any]]:
    """Mean (and standard error) of each metric per row name: ``[{"model": name, metric: (mean, sem)}, ...]``."""
    out = []
    for name, metrics in rows.items():
        row: dict[str, Any] = {"model": name}
        for k, v in metrics.items():
            v = v.double()
            sem = float(v.std() / math.sqrt(v.numel())) if v.numel() > 1 else float("nan")
            row[k] = (float(v.mean()), sem)
        out.append(row)
    return out


def format_table(table: list[dict[str, Any]], digits: int = 3) -> str:
    """A markdown table of :func:`results_table` rows (mean ± standard error)."""
    keys = [k for k in table[0] if k != "model"]
    lines = ["| model | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for row in table:
        cells = [f"{row[k][0]:.{digits}g} ± {row[k][1]:.2g}" for k in keys]
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# the mean-shape experiment
# ---------------------------------------------------------------------------
RADIUS_DISTRIBUTIONS = ("uniform", "two", "normal")


def sample_radii(kind: str, n: int, generator: torch.Generator | None = None, *, low: float = 0.3,
                 high: float = 1.0, sigma: float = 0.15, mean: float = 0.65) -> Tensor:
    """``n`` radii from a named distribution (float64).

    Introduced in ``lectures/05_point_sets.ipynb``. ``"uniform"``: U(low, high);
    ``"two"``: low or high with probability 1/2 each; ``"normal"``: N(mean, sigma) clipped at 0.02.
    """
    if kind not in RADIUS_DISTRIBUTIONS:
        raise ValueError(f"unknown radius distribution {kind!r}; use one of {RADIUS_DISTRIBUTIONS}")
    if not 0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got low={low}, high={high}")
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    if kind == "uniform":
        return low + (high - low) * u
    if kind == "two":
        return torch.where(u < 0.5, torch.full_like(u, low), torch.full_like(u, high))
    return (mean + sigma * torch.randn(n, generator=generator, dtype=torch.float64)).clamp_min(0.02)


def sample_rings(radii: Tensor, n: int, kind: str = "circle", generator: torch.Generator | None = None) -> Tensor:
    """One point set per radius: ``n`` i.i.d. uniform points on a circle (in the z = 0 plane) or a sphere.

    Introduced in ``lectures/05_point_sets.ipynb``. Returns ``(len(radii), n, 3)`` float32.
    """
    if kind not in ("circle", "sphere"):
        raise ValueError(f"kind must be 'circle' or 'sphere', got {kind!r}")
    b = radii.shape[0]
    if kind == "circle":
        t = 2 * math.pi * torch.rand(b, n, generator=generator, dtype=torch.float64)
        u = torch.stack([t.cos(), t.sin(), torch.zeros_like(t)], -1)
    else:
        g = torch.randn(b, n, 3, generator=generator, dtype=torch.float64)
        u = g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (radii.to(torch.float64)[:, None, None] * u).float()


def mean_shape(distance: str, n_points: int = 128, *, kind: str = "circle", radius: str = "uniform",
               radius_kwargs: dict[str, float] | None = None, steps: int = 300, batch: int = 16,
               lr: float = 0.01, seed: int = 0, emd_method: str = "exact") -> dict[str, Any]:
    """Optimise one point set ``x`` for ``E_s[d(x, s)]`` over rings ``s`` of random radius.

    Introduced in ``lectures/05_point_sets.ipynb``. This is the experiment of Fan et al. (2017,
    Fig. "mean shape"): ``x* = argmin_x E_{s ~ S} d(x, s)``, estimated by Adam with a fresh
    batch of ``batch`` rings (each ``n_points`` i.i.d. points, radius drawn from ``radius``)
    at every step. ``distance``: ``"chamfer"`` (:func:`course_lib.ops.chamfer_distance`,
    squared) or ``"emd"`` (:func:`course_lib.ops.emd`, ``emd_method``, squared distances: the
    same ground cost as the Chamfer loss). Returns ``{"points": (n, 3), "loss": [per step],
    "seconds": float}``. The start is the same for both distances: a small random blob.
    """
    if distance not in ("chamfer", "emd"):
        raise ValueError(f"distance must be 'chamfer' or 'emd', got {distance!r}")
    if n_points < 2 or steps < 1 or batch < 1:
        raise ValueError("need n_points >= 2, steps >= 1 and batch >= 1")
    gen = torch.Generator().manual_seed(seed)
    x0 = 0.05 * torch.randn(n_points, 3, generator=gen)
    if kind == "circle":
        x0[:, 2] = 0
    x = torch.nn.Parameter(x0)
    opt = torch.optim.Adam([x], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.05)
    rk = radius_kwargs or {}
    losses = []
    t0 = time.perf_counter()
    for _ in range(steps):
        r = sample_radii(radius, batch, gen, **rk)
        s = sample_rings(r, n_points, kind, gen)
        xb = x[None].expand(batch, -1, -1)
        if distance == "chamfer":
            loss = _ops.chamfer_distance(xb, s)
        else:
            loss = _ops.emd(xb, s, method=emd_method, squared=True).cost
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return {"points": x.detach().clone(), "loss": losses, "seconds": time.perf_counter() - t0}


def radial_profile(points: Tensor, kind: str = "circle", bins: Sequence[float] | int = 20,
                   r_max: float = 1.2) -> dict[str, Any]:
    """Radii of a point set (in the z = 0 plane for circles, 3D for spheres) and their summary.

    Introduced in ``lectures/05_point_sets.ipynb``. Returns ``{"radii", "mean", "std", "q10",
    "q50", "q90", "hist", "edges", "off_plane"}`` (``off_plane``: mean |z|, circles only).
    """
    p = points.detach().double()
    r = p[..., :2].norm(dim=-1) if kind == "circle" else p.norm(dim=-1)
    hist, edges = np.histogram(r.numpy().ravel(), bins=bins, range=(0.0, r_max))
    q = torch.quantile(r.ravel(), torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    return {"radii": r, "mean": float(r.mean()), "std": float(r.std()), "q10": float(q[0]),
            "q50": float(q[1]), "q90": float(q[2]), "hist": hist, "edges": edges,
            "off_plane": float(p[..., 2].abs().mean()) if kind == "circle" else 0.0}


# ---------------------------------------------------------------------------
# complexity
# ---------------------------------------------------------------------------
def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


_MALLOC_TUNED = False


def _return_freed_memory() -> None:
    """glibc only: serve large blocks by mmap (returned to the OS when freed) and trim the heap.

    Without this, memory freed by an earlier call stays in the process and a later call that
    reuses it does not raise the resident size: its peak would read as 0.
    """
    global _MALLOC_TUNED
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        if not _MALLOC_TUNED:
            libc.mallopt(-3, 1 << 17)  # M_MMAP_THRESHOLD = 128 KiB, fixed (no dynamic raise)
            _MALLOC_TUNED = True
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_memory(fn: Callable[[], Any], device: torch.device | str | None = None) -> tuple[Any, float]:
    """Run ``fn()``; return ``(its result, the peak extra memory it needed in bytes)``.

    Introduced in ``lectures/05_point_sets.ipynb``. On CUDA: ``torch.cuda.max_memory_allocated``
    above the memory in use before the call. On Linux CPUs: the peak resident set size
    (``VmHWM``, reset through ``/proc/self/clear_refs``) above the resident size before the
    call; this counts every allocation (torch, NumPy, SciPy) but also the allocator's
    granularity, so values below ~1 MB are noise. With glibc, large blocks are then served by
    ``mmap`` and the heap is trimmed first, so memory freed by earlier calls is not silently
    reused. Elsewhere: ``nan``.
    """
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda":
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        out = fn()
        torch.cuda.synchronize(dev)
        return out, float(torch.cuda.max_memory_allocated(dev) - base)
    if sys.platform.startswith("linux") and _status_bytes("VmHWM") is not None:
        _return_freed_memory()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            out = fn()
            return out, float("nan")
        base = _status_bytes("VmRSS") or 0
        out = fn()
        peak = _status_bytes("VmHWM") or 0
        return out, float(max(peak - base, 0))
    return fn(), float("nan")


def _distance_call(method: str, x: Tensor, y: Tensor, kwargs: dict[str, Any]) -> Callable[[], float]:
    if method == "chamfer":
        return lambda: float(_ops.chamfer_distance(x, y, **kwargs))
    return lambda: float(_ops.emd(x, y, method=method, **kwargs).cost)


def time_distances(ns: Sequence[int], methods: Sequence[str] = ("chamfer", "exact", "sinkhorn", "auction"),
                   *, repeat: int = 1, seed: int = 0, device: torch.device | str | None = None,
                   time_limit: float = 30.0, solver_kwargs: dict[str, dict[str, Any]] | None = None
                   ) -> list[dict[str, Any]]:
    """Time, peak memory and value of Chamfer and the EMD solvers of :mod:`course_lib.ops` as N grows.

    Introduced in ``lectures/05_point_sets.ipynb``. For each N, two independent samplings of N
    points of the unit sphere (a realistic, nearly matched pair) are compared by every method;
    ``rel_err`` is ``value / exact EMD - 1`` for the EMD approximations (``nan`` for Chamfer,
    which is a different quantity). A method whose previous N took longer than ``time_limit``
    seconds is skipped for larger N (its row has ``seconds = nan``). Each row:
    ``{"N", "method", "seconds", "memory_MB", "value", "rel_err"}``. Each method first runs
    once, untimed, on 16 points, so that one-time costs (loading a compiled kernel, imports)
    are not charged to the smallest N.
    """
    dev = config.get_device(device) if device is not None else torch.device("cpu")
    kw = solver_kwargs or {}
    rows: list[dict[str, Any]] = []
    slow: set[str] = set()
    gen = torch.Generator().manual_seed(seed)
    tiny = sample_rings(torch.ones(2, dtype=torch.float64), 16, "sphere", gen).to(dev)
    for m in methods:  # warm-up
        _distance_call(m, tiny[0], tiny[1], kw.get(m, {}))()
    for n in ns:
        gen = torch.Generator().manual_seed(seed + int(n))
        x = sample_rings(torch.ones(1, dtype=torch.float64), int(n), "sphere", gen)[0].to(dev)
        y = sample_rings(torch.ones(1, dtype=torch.float64), int(n), "sphere", gen)[0].to(dev)
        exact_value = None
        for m in methods:
            if m in slow:
                rows.append({"N": int(n), "method": m, "seconds": float("nan"), "memory_MB": float("nan"),
                             "value": float("nan"), "rel_err": float("nan")})
                continue
            fn = _distance_call(m, x, y, kw.get(m, {}))
            times = []
            mem = float("nan")
            value = float("nan")
            for i in range(max(1, repeat)):
                t0 = time.perf_counter()
                if i == 0:
                    value, mem = peak_memory(fn, dev)
                else:
                    fn()
                times.append(time.perf_counter() - t0)
            sec = float(np.median(times))
            if m == "exact":
                exact_value = value
            rows.append({"N": int(n), "method": m, "seconds": sec, "memory_MB": mem / 2**20, "value": value,
                         "rel_err": float("nan")})
            if sec > time_limit:
                slow.add(m)
        if exact_value is not None:
            for row in rows:
                if row["N"] == int(n) and row["method"] in ("sinkhorn", "auction") and math.isfinite(row["value"]):
                    row["rel_err"] = row["value"] / exact_value - 1.0
    return rows
