"""What every chapter's experiment shares: loading a split, batching, predicting, result tables.

Introduced in ``lectures/00_welcome.ipynb`` (the training setup) and used by every chapter
module of :mod:`course_lib.experiments`.

* :func:`load_split`: one ShapeNet-lite split, stacked in memory (sizes from the profile);
* :class:`Batches`: the one batching path (a fresh shuffle every epoch, an optional per-batch
  ``transform`` such as random subsets of the points);
* :func:`subsample`: a random subset of ``n`` points of every cloud of a batch;
* :func:`predict`: eval-mode, no-grad, batched predictions of any model;
* :func:`mean_sem`, :func:`summarize`, :func:`format_table`: mean ± standard error of per-shape
  metrics and their tables;
* :func:`smoke_steps`, :func:`synthetic_clouds`: what every chapter's ``smoke()`` hook (run by
  ``benchmarks/gpu_smoke.py``) needs: a few timed optimisation steps on a device;
* the measuring protocol, re-exported from :mod:`course_lib.experiments.protocol`: the selection
  helpers :func:`select_on_val` / :func:`selection_record` / :func:`selection_part` (choices on
  ``val`` only, test reads raise inside them), :func:`budget`, :func:`paired_difference`,
  :func:`verdict`, and the :func:`claim` / :func:`goal` records every benchmark writes.

Checkpoint names come from :func:`course_lib.train.checkpoint_path`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from course_lib.experiments.protocol import (
    budget,
    claim,
    goal,
    paired_difference,
    select_on_val,
    selection_part,
    selection_record,
    verdict,
)

__all__ = ["load_split", "require_exact_shapes", "real_dataset", "dataset_checkpoint_name", "tag_dataset", "use_dataset", "Batches", "subsample", "predict", "mean_sem", "summarize", "format_table", "rows_table", "smoke_steps",
           "synthetic_clouds", "select_on_val", "selection_record", "selection_part", "budget", "paired_difference",
           "verdict", "claim", "goal"]


def load_split(split: str, representations: Sequence[str] | str = ("points", "target_points"), *,
               categories: Sequence[str] | str | None = None, shapes_per_category: int | None = None,
               profile: str | None = None, progress: bool = False, dataset: str | None = None,
               root: str | None = None, **dataset_kwargs: Any) -> dict[str, Any]:
    """A ``split`` of the course's dataset stacked in memory: ShapeNet-lite by default.

    Introduced in ``lectures/00_welcome.ipynb``.  By default the encoder's input
    ``points`` and an *independent* sampling ``target_points`` of the same surfaces.  Other
    keyword arguments (``n_points``, ``n_target``, ``voxel_resolution``, ``image_size``,
    ``view``, ...) go to :class:`course_lib.data.ShapeNetLite`.  ``dataset`` (or the
    ``COURSE_DATASET`` environment variable: ``shapenet-lite``, ``shapenetcore``, ``modelnet``)
    switches to real meshes read from ``root`` (or ``COURSE_SHAPENET_DIR`` / ``COURSE_MODELNET_DIR``)
    with the same keys (:class:`course_lib.data.real_split.RealShapes`).
    """
    from course_lib.data.real_split import RealShapes, dataset_name

    name = dataset_name(dataset)
    if name != "shapenet-lite":
        ds = RealShapes(name, split, representations, categories=categories, shapes_per_category=shapes_per_category,
                        root=root, profile=profile, **dataset_kwargs)
        return ds.stacked(progress=progress)
    if root is not None:
        raise ValueError("root= is for real datasets (dataset='modelnet' or 'shapenetcore'); ShapeNet-lite is "
                         "generated, it has no root folder")
    from course_lib.data import ShapeNetLite

    ds = ShapeNetLite(split, representations, categories=categories, shapes_per_category=shapes_per_category,
                      profile=profile, **dataset_kwargs)
    return ds.stacked(progress=progress)


def require_exact_shapes(who: str, data: Mapping[str, Any] | None = None) -> None:
    """Refuse, with a clear error, to run ``who`` on a real dataset when it needs ShapeNet-lite's exact shapes.

    Some chapter functions rebuild each shape from its ``(category, seed)`` (:func:`course_lib.data.make_shape`)
    for exact signed distances, part labels or occupancy; on rows of a real dataset (``data`` holds ``path``)
    or with ``COURSE_DATASET`` naming one, that would silently score or supervise against a procedural shape
    that is not the mesh.  Raises ``NotImplementedError`` naming the function and the dataset (the rows'
    ``dataset`` entry, else ``COURSE_DATASET``'s, else "a real dataset").
    """
    from course_lib.data.real_split import dataset_name

    if data is None or "path" not in data:
        real = dataset_name(None) if data is None else "shapenet-lite"
    else:  # rows of a real dataset: its name when the rows carry it (or COURSE_DATASET names it)
        named = data.get("dataset") or dataset_name(None)
        real = str(named) if named != "shapenet-lite" else "a real dataset"
    if real != "shapenet-lite":
        raise NotImplementedError(f"{who} needs ShapeNet-lite's exact shapes (it rebuilds each shape from its "
                                  f"category and seed) and cannot run on {real} yet; unset COURSE_DATASET or use "
                                  "dataset='shapenet-lite' for this chapter")


def real_dataset(data: Mapping[str, Any] | None = None) -> str | None:
    """The real dataset ``data``'s rows come from, or None for ShapeNet-lite's rows.

    Rows of a real dataset hold ``path``; their name is their ``dataset`` entry (the chapter loaders add it),
    else ``COURSE_DATASET``'s, else ``"real"``.  Without ``data``: ``COURSE_DATASET``'s real dataset, or None.
    The chapters put it in their checkpoint names (beside :func:`course_lib.train.checkpoint_path`'s own tag).
    """
    from course_lib.data.real_split import dataset_name

    if data is None or "path" not in data:
        name = dataset_name(None) if data is None else "shapenet-lite"
    else:
        name = str(data.get("dataset") or dataset_name(None))
        name = "real" if name == "shapenet-lite" else name
    return None if name == "shapenet-lite" else name


def dataset_checkpoint_name(name: str, data: Mapping[str, Any] | None = None) -> str:
    """``name`` with the real dataset of ``data``'s rows appended (``<name>-<dataset>``) when
    :func:`course_lib.train.checkpoint_path` would not add it itself (it adds ``COURSE_DATASET``'s name).

    So rows loaded with an explicit ``dataset=`` never share a checkpoint with ShapeNet-lite's, and
    ``COURSE_DATASET`` and ``dataset=`` give the same file name.
    """
    from course_lib.data.real_split import dataset_name

    real = real_dataset(data) if data is not None else None
    return f"{name}-{real}" if real is not None and real != dataset_name(None) else name


def tag_dataset(out: dict[str, Any], dataset: str | None, categories: Sequence[str] | str | None = None,
                split: str | None = None) -> dict[str, Any]:
    """Add ``out["dataset"]`` (the real dataset's name) and ``out["split"]`` to rows a chapter loader read with
    ``dataset`` (or ``COURSE_DATASET``), and keep in ``out["categories"]`` only the ``categories`` asked for (in
    the dataset's order, as ShapeNet-lite's rows do; ``label`` still indexes the dataset's own list).  Real rows'
    seeds are file ids, not split seeds, so ``split`` is what says where they come from.  ShapeNet-lite's rows are
    returned unchanged."""
    from course_lib.data.real_split import dataset_name

    name = dataset_name(dataset)
    if name != "shapenet-lite":
        out["dataset"] = name
        if split is not None:
            out["split"] = str(split)
        if categories is not None:
            wanted = {categories} if isinstance(categories, str) else set(categories)
            out["categories"] = tuple(c for c in out["categories"] if c in wanted)
    return out


def use_dataset(dataset: str | None = None, root: str | None = None) -> str | None:
    """What a benchmark's ``--dataset`` / ``--root`` do: set ``COURSE_DATASET`` (and ``COURSE_MODELNET_DIR`` /
    ``COURSE_SHAPENET_DIR`` from ``root``) for every loader and checkpoint name of the run.

    Returns the real dataset now in use, or None for ShapeNet-lite (``dataset`` None keeps ``COURSE_DATASET``).
    """
    import os
    from pathlib import Path

    from course_lib.data.real import ENV_MODELNET, ENV_SHAPENET
    from course_lib.data.real_split import ENV_DATASET, dataset_name

    if dataset:
        os.environ[ENV_DATASET] = dataset_name(dataset)
    name = dataset_name(None)
    if root:
        if name == "shapenet-lite":
            raise ValueError("--root is for a real dataset: give --dataset modelnet or shapenetcore")
        os.environ[ENV_MODELNET if name == "modelnet" else ENV_SHAPENET] = str(Path(root).expanduser().resolve())
    return None if name == "shapenet-lite" else name


def _length(data: Mapping[str, Any], keys: Sequence[str]) -> int:
    sizes = {k: len(data[k]) for k in keys}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"Batches: the keys have different lengths {sizes}")
    return next(iter(sizes.values()))


class Batches:
    """Mini-batches of a dict of equally long tensors, reshuffled at every pass.

    Introduced in ``lectures/00_welcome.ipynb``.

    ``data`` maps names to tensors (or lists) of the same length ``S``; ``keys`` selects which
    go into a batch (default: every tensor).  Each ``iter()`` (one epoch) draws a new order from
    its own generator (``seed``), so two runs with the same seed see the same batches.  Every
    batch also carries ``"index"`` (the rows it took).  ``transform(batch, generator)`` may
    rewrite a batch (random subsets, augmentation) with the same generator.  ``rename`` maps a
    data key to its batch name (for example ``{"points": "input", "target_points": "target"}``).
    The last batch may be smaller unless ``drop_last``.
    """

    def __init__(self, data: Mapping[str, Any], batch_size: int, *, keys: Sequence[str] | None = None,
                 rename: Mapping[str, str] | None = None, shuffle: bool = True, seed: int = 0,
                 transform: Callable[[dict[str, Any], torch.Generator], dict[str, Any]] | None = None,
                 drop_last: bool = False) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if keys is None:
            keys = [k for k, v in data.items() if isinstance(v, Tensor)]
        keys = list(keys)
        missing = [k for k in keys if k not in data]
        if missing:
            raise KeyError(f"Batches: no key(s) {missing} in the data (it has {sorted(data)})")
        if not keys:
            raise ValueError("Batches: no tensor to batch")
        self.n = _length(data, keys)
        if self.n == 0:
            raise ValueError("Batches: the data is empty")
        self.data, self.keys, self.batch_size = data, keys, batch_size
        self.rename = dict(rename or {})
        self.shuffle, self.transform, self.drop_last = shuffle, transform, drop_last
        self.generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else torch.arange(self.n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            batch: dict[str, Any] = {}
            for k in self.keys:
                v = self.data[k]
                name = self.rename.get(k, k)
                if isinstance(v, Tensor):
                    batch[name] = v[idx.to(v.device)]
                else:
                    batch[name] = [v[i] for i in idx.tolist()]
            batch["index"] = idx
            if self.transform is not None:
                batch = self.transform(batch, self.generator)
            yield batch


def subsample(points: Tensor, n: int, generator: torch.Generator | None = None, *,
              others: Sequence[Tensor] = ()) -> Tensor | tuple[Tensor, ...]:
    """``n`` random points of every cloud of ``points`` ``(B, P, C)`` (without replacement; each cloud
    its own subset).  ``others``: tensors ``(B, P, ...)`` indexed the same way (normals, labels).

    Introduced in ``lectures/00_welcome.ipynb``.
    """
    if not isinstance(points, Tensor) or points.dim() != 3:
        raise ValueError(f"points must be a tensor (B, P, C), got {getattr(points, 'shape', type(points))}")
    b, p = points.shape[:2]
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= p:
        raise ValueError(f"n must be an int in [1, {p}] (the points per cloud), got {n!r}")
    order = torch.argsort(torch.rand(b, p, generator=generator), dim=1)[:, :n].to(points.device)

    def take(x: Tensor) -> Tensor:
        if x.shape[:2] != (b, p):
            raise ValueError(f"others must be (B, P, ...) = ({b}, {p}, ...), got {tuple(x.shape)}")
        idx = order.view(b, n, *([1] * (x.dim() - 2))).expand(b, n, *x.shape[2:])
        return torch.gather(x, 1, idx)

    if not others:
        return take(points)
    return (take(points), *[take(o) for o in others])


def _output_tensor(out: Any) -> Any:
    if isinstance(out, Tensor):
        return out
    if hasattr(out, "points"):
        return out.points
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return out[0]
    return out


@torch.no_grad()
def predict(model: Callable[..., Any], inputs: Tensor, batch_size: int = 64, *, device: Any = None,
            **kwargs: Any) -> Tensor:
    """Predictions of ``model`` on ``inputs`` ``(S, ...)`` in batches, in eval mode and without gradients.

    Introduced in ``lectures/00_welcome.ipynb``.  ``kwargs`` go to every call (for example
    ``n_points=`` for AtlasNet).  An output with a ``.points`` attribute (AtlasNet, PointSetGen)
    or a tuple gives its points / first tensor.  Returns the concatenation on the CPU; the
    model's training mode is restored afterwards.
    """
    if not isinstance(inputs, Tensor) or inputs.dim() < 1 or inputs.shape[0] == 0:
        raise ValueError(f"inputs must be a non-empty tensor (S, ...), got {getattr(inputs, 'shape', type(inputs))}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    is_module = isinstance(model, torch.nn.Module)
    was = model.training if is_module else False
    if device is None:
        device = next((p.device for p in model.parameters()), inputs.device) if is_module else inputs.device
    if is_module:
        model.eval()
    try:
        outs = []
        for i in range(0, inputs.shape[0], batch_size):
            out = _output_tensor(model(inputs[i:i + batch_size].to(device), **kwargs))
            if not isinstance(out, Tensor):
                raise TypeError(f"predict: the model returned {type(out).__name__}, not a tensor")
            outs.append(out.cpu())
        return torch.cat(outs)
    finally:
        if is_module:
            model.train(was)


def mean_sem(values: Any) -> tuple[float, float]:
    """Mean and standard error of the mean (unbiased standard deviation / sqrt(n)) of a 1-D sample.

    Introduced in ``lectures/05_point_sets.ipynb``.  The standard error of a single value is
    ``nan``; an empty sample is an error.
    """
    v = torch.as_tensor(values).double().reshape(-1)
    if v.numel() == 0:
        raise ValueError("mean_sem needs at least one value, got an empty sample")
    sem = float(v.std() / math.sqrt(v.numel())) if v.numel() > 1 else float("nan")
    return float(v.mean()), sem


def summarize(rows: Mapping[str, Mapping[str, Tensor]]) -> list[dict[str, Any]]:
    """Mean and standard error of each per-shape metric: ``[{"model": name, metric: (mean, sem)}, ...]``.

    Introduced in ``lectures/05_point_sets.ipynb``.
    """
    out = []
    for name, metrics in rows.items():
        row: dict[str, Any] = {"model": name}
        for k, v in metrics.items():
            row[k] = mean_sem(v)
        out.append(row)
    return out


def rows_table(rows: Sequence[dict[str, Any]], digits: int = 4) -> str:
    """A Markdown table of a list of flat dicts (any chapter's rows; ``format_table`` is for mean ± sd rows).

    Introduced in ``lectures/04_octrees.ipynb``.  Bytes columns (names ending in ``bytes``) are
    shown in KiB / MiB.
    """
    if not rows:
        return "(no rows)"
    keys = list(dict.fromkeys(k for r in rows for k in r))

    def fmt(k: str, v: Any) -> str:
        if isinstance(v, float) and k.endswith("bytes") and v == v:
            return f"{v / 2**20:.2f} MiB" if v >= 2**20 else f"{v / 1024:.1f} KiB"
        if isinstance(v, int) and not isinstance(v, bool) and k.endswith("bytes"):
            return f"{v / 2**20:.2f} MiB" if v >= 2**20 else f"{v / 1024:.1f} KiB"
        if isinstance(v, float):
            return f"{v:.{digits}g}"
        return str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(k, r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def format_table(table: Sequence[Mapping[str, Any]], digits: int = 3) -> str:
    """A Markdown table of :func:`summarize` rows (mean ± standard error)."""
    if not table:
        raise ValueError("format_table: the table is empty")
    keys = [k for k in table[0] if k != "model"]
    lines = ["| model | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for row in table:
        cells = []
        for k in keys:
            m, s = row[k]
            cells.append(f"{m:.{digits}g} ± {s:.2g}" if s == s else f"{m:.{digits}g}")
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- GPU smoke hooks ----------------------------------------------------------------

def synthetic_clouds(batch: int, n: int, *, seed: int = 0, device: Any = "cpu") -> Tensor:
    """``batch`` clouds of ``n`` points ``(B, n, 3)`` near the unit sphere, each squashed differently
    (a cheap stand-in for ShapeNet-lite in the ``smoke()`` hooks: no shape generation, no cache)."""
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn(batch, n, 3, generator=g)
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    scale = 0.5 + 0.5 * torch.rand(batch, 1, 3, generator=g)
    return (x * scale).to(device)


def smoke_steps(model: torch.nn.Module, batch: Any, loss_fn: Callable[[torch.nn.Module, Any], Any], *,
                steps: int = 1, device: Any = "cpu", lr: float = 1e-3) -> dict[str, float]:
    """Run ``steps`` Adam steps of ``loss_fn(model, batch)`` on ``device``; return timings and size.

    Introduced for the ``smoke()`` hooks of :mod:`course_lib.experiments` (``benchmarks/gpu_smoke.py``).
    Returns ``{"seconds" (all steps, synchronised), "loss" (last), "params", "peak_mem_mb"
    (CUDA only)}``.  Writes nothing to disk.
    """
    from course_lib.train import _to_device

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    dev = torch.device(device)
    model = model.to(dev).train()
    batch = _to_device(batch, dev)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    loss_value = float("nan")
    for _ in range(steps):
        out = loss_fn(model, batch)
        loss = out["loss"] if isinstance(out, Mapping) else out
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
    if cuda:
        torch.cuda.synchronize(dev)
    res = {"seconds": time.perf_counter() - t0, "loss": loss_value,
           "params": float(sum(p.numel() for p in model.parameters()))}
    if cuda:
        res["peak_mem_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    if not math.isfinite(loss_value):
        raise FloatingPointError(f"smoke: the loss is {loss_value} after {steps} step(s)")
    return res
