"""The one training loop every chapter uses.

Introduced in ``lectures/00_welcome.ipynb``.

:func:`fit` trains a model with a ``tqdm.auto`` progress bar, records the loss history,
optionally validates after each epoch, keeps the best weights (by ``monitor``), saves a
checkpoint, and stops cleanly on Ctrl-C (``KeyboardInterrupt``) with the best weights
restored.  :func:`train_or_load` loads a checkpoint when one exists and trains otherwise, so
re-running a notebook costs seconds.  Checkpoints are loaded with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from . import config

LossFn = Callable[[nn.Module, Any], "torch.Tensor | Mapping[str, torch.Tensor]"]
ValFn = Callable[[nn.Module, Any], Mapping[str, float]]


@dataclass
class History:
    """What happened during :func:`fit`."""

    train_loss: list[float] = field(default_factory=list)
    """Mean training loss of each epoch."""
    train_extra: list[dict[str, float]] = field(default_factory=list)
    """Means of any other scalars ``loss_fn`` returned, per epoch."""
    val: list[dict[str, float]] = field(default_factory=list)
    """Validation metrics of each epoch (empty without validation)."""
    best_epoch: int = -1
    best_metric: float = math.nan
    monitor: str = "train_loss"
    wall_time: float = 0.0
    interrupted: bool = False
    epochs_run: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def summary(self) -> str:
        parts = [f"{self.epochs_run} epoch(s) in {self.wall_time:.1f} s"]
        if self.train_loss:
            parts.append(f"final train loss {self.train_loss[-1]:.4g}")
        if self.best_epoch >= 0:
            parts.append(f"best {self.monitor} {self.best_metric:.4g} at epoch {self.best_epoch + 1}")
        if self.interrupted:
            parts.append("interrupted (best weights kept)" if self.best_epoch >= 0 else
                         "interrupted in the first epoch (no best weights yet: the partly trained ones are kept)")
        return "; ".join(parts)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _split_loss(out: Any) -> tuple[torch.Tensor, dict[str, float]]:
    if out is Ellipsis:  # the one-line stub of a lab exercise (`x = ...`) reached the loss
        raise NotImplementedError("loss_fn returned `...`: an exercise it depends on is not done yet")
    if isinstance(out, Mapping):
        if "loss" not in out:
            raise ValueError("loss_fn returned a dict without a 'loss' key")
        loss = out["loss"]
        extra = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
                 for k, v in out.items() if k != "loss"}
    else:
        loss, extra = out, {}
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise ValueError(f"loss_fn must return a scalar tensor, got {type(loss).__name__}"
                         f"{tuple(loss.shape) if isinstance(loss, torch.Tensor) else ''}")
    return loss, extra


class _LivePlot:
    """Loss curves updated in place in a notebook; plain text lines elsewhere."""

    def __init__(self, mode: str | bool, total_epochs: int):
        self.handle = None
        self.text = False
        if mode is False or mode == "off":
            return
        in_kernel = "ipykernel" in sys.modules
        if in_kernel and mode in ("auto", True, "plot"):
            try:
                import plotly.graph_objects as go
                from IPython.display import display

                self.fig = go.Figure()
                self.fig.update_layout(height=280, margin=dict(l=40, r=10, t=30, b=30),
                                       title="training", xaxis_title="epoch", yaxis_title="loss")
                self.handle = display(self.fig, display_id=True)
            except Exception:  # noqa: BLE001 - no frontend: fall back to text
                self.handle = None
        if self.handle is None:
            self.text = True
        self.total = total_epochs

    def update(self, history: History) -> None:
        if self.handle is not None:
            import plotly.graph_objects as go

            epochs = list(range(1, len(history.train_loss) + 1))
            traces = [go.Scatter(x=epochs, y=history.train_loss, name="train loss", mode="lines+markers")]
            keys = sorted({k for v in history.val for k in v})
            for k in keys:
                traces.append(go.Scatter(x=epochs, y=[v.get(k) for v in history.val], name=k,
                                         mode="lines+markers"))
            self.fig.data = []
            self.fig.add_traces(traces)
            self.handle.update(self.fig)
        elif self.text:
            e = len(history.train_loss)
            val = history.val[-1] if history.val else {}
            vs = " ".join(f"{k}={v:.4g}" for k, v in val.items())
            print(f"epoch {e}/{self.total}: train_loss={history.train_loss[-1]:.4g} {vs}".rstrip(), flush=True)


def evaluate(model: nn.Module, loader: Iterable, fn: Callable[[nn.Module, Any], Any],
             device: torch.device | None = None) -> dict[str, float]:
    """Average ``fn(model, batch)`` (a scalar tensor, a float or a dict of them) over ``loader``.

    Each batch's values are weighted by its number of samples (the first dimension of its first
    tensor), so a small last batch counts as much per sample as the others: with per-batch means
    from ``fn`` the result is the mean over all samples.  The model is put in eval mode and no
    gradients are recorded.
    """
    device = device or next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    with torch.no_grad():
        for batch in loader:
            w = batch_size_of(batch)
            out = fn(model, _to_device(batch, device))
            if not isinstance(out, Mapping):
                out = {"loss": out}
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + w * float(v)
            count += w
    model.train(was_training)
    if count == 0:
        raise ValueError("the validation loader is empty")
    return {k: v / count for k, v in sums.items()}


def batch_size_of(batch: Any) -> int:
    """The number of samples in a batch: the first dimension of its first tensor (1 if it has none)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() > 0 else 1
    if isinstance(batch, Mapping):
        vals = [v for k, v in batch.items() if k != "index"] or list(batch.values())
    elif isinstance(batch, (list, tuple)):
        vals = list(batch)
    else:
        return 1
    for v in vals:
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            return int(v.shape[0])
    return 1


def fit(
    model: nn.Module,
    train_loader: Iterable,
    *,
    loss_fn: LossFn,
    epochs: int,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    scheduler: Any = None,
    val_loader: Iterable | None = None,
    val_fn: ValFn | None = None,
    monitor: str = "val_loss",
    mode: str = "min",
    device: torch.device | str | None = None,
    seed: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
    live_plot: str | bool = "auto",
    grad_clip: float | None = None,
    max_batches_per_epoch: int | None = None,
    resume: Mapping[str, Any] | None = None,
    signature: Mapping[str, str] | None = None,
) -> History:
    """Train ``model`` for ``epochs`` epochs; return the :class:`History`.

    ``loss_fn(model, batch)`` returns a scalar loss tensor, or a dict with a ``"loss"`` key plus
    other scalars to record.  With ``val_loader``, after each epoch ``val_fn(model, batch)``
    (default: ``loss_fn``, recorded as ``val_loss``) is averaged over the loader; the weights
    with the best ``monitor`` value (``mode`` ``"min"`` or ``"max"``) are kept and restored at
    the end.  Without validation the monitor is the training loss.  ``checkpoint`` saves the
    best weights and the history there once all ``epochs`` are done.  Ctrl-C stops after the
    current batch, restores the best weights, and returns the history with ``interrupted=True``;
    with ``checkpoint`` the run is then saved as a *partial* checkpoint (:func:`partial_path`:
    current and best weights, optimizer state, history) that :func:`train_or_load` resumes, and
    never under the finished checkpoint's name.  ``resume`` is such a partial checkpoint's
    content and ``signature`` the :func:`training_signature` stored in the files (both used by
    :func:`train_or_load`).

    In a ``torch.distributed`` process group (``torchrun``; :func:`init_distributed`) every rank builds the
    same loader and model; each global batch is cut among the ranks (:func:`shard_batch`), the gradients are
    summed with each rank's share as its weight (one all-reduce per step, what ``DistributedDataParallel``
    does, done here on the bare model because the chapters' loss functions call sub-modules such as
    ``model.encoder`` directly), batch-norm buffers follow rank 0, and only rank 0 writes checkpoints and
    shows progress.  The result equals a single process with the same global batch up to floating-point
    summation order (a loss that draws random numbers draws them per rank).
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if seed is not None:
        config.seed_everything(seed)
    device = config.get_device(device) if device is not None else next(
        (p.device for p in model.parameters()), config.get_device())
    model.to(device)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = History(monitor=monitor if val_loader is not None else "train_loss")
    better = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)
    best_state = copy.deepcopy(model.state_dict())
    first_epoch = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        best_state = copy.deepcopy(resume.get("best", resume["model"]))
        if resume.get("optimizer") is not None:
            optimizer.load_state_dict(resume["optimizer"])
        if scheduler is not None and resume.get("scheduler") is not None and hasattr(scheduler, "load_state_dict"):
            scheduler.load_state_dict(resume["scheduler"])
        history = History.from_dict(resume.get("history", {}))
        history.interrupted = False
        first_epoch = history.epochs_run
    rank, world = distributed_world()
    if world > 1:
        _broadcast_state(model)  # the same starting weights on every rank
        progress = progress and rank == 0
    plot = _LivePlot(live_plot if rank == 0 else False, epochs)
    start = time.perf_counter() - history.wall_time

    try:
        for epoch in range(first_epoch, epochs):
            model.train()
            total, extras, n = 0.0, {}, 0
            try:
                n_batches = len(train_loader)  # type: ignore[arg-type]
            except TypeError:
                n_batches = None
            if max_batches_per_epoch is not None and n_batches is not None:
                n_batches = min(n_batches, max_batches_per_epoch)
            bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=not progress)
            for i, batch in enumerate(train_loader):
                if max_batches_per_epoch is not None and i >= max_batches_per_epoch:
                    break
                batch = _to_device(batch, device)
                share = 1.0
                if world > 1:
                    batch, share = shard_batch(batch, rank, world)
                loss, extra = _split_loss(loss_fn(model, batch))
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"the loss became {loss.item()} at epoch {epoch + 1}, batch {i}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if world > 1:  # the global batch's gradient and loss, on every rank
                    keys = sorted(extra)
                    summed = _reduce_gradients(model, share, [float(loss.detach())] + [extra[k] for k in keys])
                    loss = torch.tensor(summed[0])
                    extra = dict(zip(keys, summed[1:]))
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                optimizer.step()
                if world > 1:
                    _broadcast_state(model, buffers_only=True)
                total += float(loss.detach())
                for k, v in extra.items():
                    extras[k] = extras.get(k, 0.0) + v
                n += 1
                bar.update(1)
                bar.set_postfix(loss=f"{total / n:.4g}")
            bar.close()
            if n == 0:
                raise ValueError("the training loader is empty")
            if scheduler is not None:
                scheduler.step()
            history.train_loss.append(total / n)
            history.train_extra.append({k: v / n for k, v in extras.items()})
            current = total / n
            if val_loader is not None:
                vfn = val_fn if val_fn is not None else (
                    lambda m, b: {"val_loss": _split_loss(loss_fn(m, b))[0]})
                metrics = evaluate(model, val_loader, vfn, device)
                history.val.append(metrics)
                if monitor not in metrics:
                    raise KeyError(f"monitor {monitor!r} is not among the validation metrics {sorted(metrics)}")
                current = metrics[monitor]
            history.epochs_run = epoch + 1
            if history.best_epoch < 0 or better(current, history.best_metric):
                history.best_epoch, history.best_metric = epoch, float(current)
                best_state = copy.deepcopy(model.state_dict())
            history.wall_time = time.perf_counter() - start
            plot.update(history)
    except KeyboardInterrupt:
        history.interrupted = True
        if history.best_epoch >= 0:
            print(f"\ntraining interrupted: keeping the best weights so far (epoch {history.best_epoch + 1})",
                  flush=True)
        else:
            print("\ntraining interrupted before the first epoch finished: there are no best weights yet, so the "
                  "model keeps the weights of the batches it has trained on", flush=True)

    history.wall_time = time.perf_counter() - start
    current_state = copy.deepcopy(model.state_dict()) if history.interrupted else None
    if history.best_epoch >= 0:
        model.load_state_dict(best_state)
    if checkpoint is not None and rank == 0:  # in a process group only rank 0 writes
        if history.interrupted or history.epochs_run < epochs:
            _save_partial(partial_path(checkpoint), current_state or model.state_dict(), best_state, optimizer,
                          scheduler, history, signature)
        else:
            save_checkpoint(checkpoint, model, history=history.to_dict(), signature=dict(signature or {}),
                            complete=True)
            partial = partial_path(checkpoint)
            if partial.exists():
                partial.unlink()
    return history


SCHEDULES = ("cosine", "constant")
"""Learning-rate schedules of :func:`adam`."""


def adam(model: nn.Module, lr: float, epochs: int, schedule: str = "cosine",
         weight_decay: float = 0.0) -> tuple[torch.optim.Optimizer, Any]:
    """Adam at ``lr`` and its scheduler for :func:`fit` (stepped once per epoch): ``(optimizer, scheduler)``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  ``schedule="cosine"`` decays the rate along a
    cosine to ``lr / 100`` over ``epochs``; ``"constant"`` keeps it (the scheduler is then ``None``).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay) if weight_decay else \
        torch.optim.Adam(model.parameters(), lr=lr)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, int(epochs)), eta_min=lr * 0.01)
             if schedule == "cosine" else None)
    return opt, sched


# ---------------------------------------------------------------------------
# several processes (torch.distributed): one global batch, shared among the ranks
# ---------------------------------------------------------------------------
def distributed_world() -> tuple[int, int]:
    """``(rank, world_size)`` of ``torch.distributed`` when a process group is running, else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """True in a single process and on rank 0 of a process group (the one that writes checkpoints and prints)."""
    return distributed_world()[0] == 0


def init_distributed(device: str | None = None) -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE`` > 1 in the environment); return
    ``(rank, world_size)``.

    Introduced by ``python -m course_lib.pretrain``.  Without ``torchrun`` (no ``WORLD_SIZE``, or 1) nothing
    happens and ``(0, 1)`` is returned.  The backend is NCCL when ``device`` is CUDA (each rank takes the GPU
    ``LOCAL_RANK``), gloo otherwise (CPU processes, as in the tests).
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return 0, 1
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    cuda = device is not None and str(device).startswith("cuda")
    if cuda:
        if not torch.cuda.is_available():
            raise RuntimeError("init_distributed: device cuda was asked for, but CUDA is not available here")
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()


def shard_batch(batch: Any, rank: int, world: int) -> tuple[Any, float]:
    """This rank's contiguous share of a global ``batch``, and its weight ``n_rank / n_global``.

    Every tensor (and list) whose first dimension is the batch size is cut into ``world`` nearly equal
    contiguous parts (sizes differ by at most one, like ``numpy.array_split``); anything else is kept
    whole.  Weighting each rank's mean loss gradient by its share and summing over the ranks gives the
    gradient of the mean loss over the global batch, exactly.  A batch smaller than ``world`` is not cut:
    every rank takes all of it with weight ``1 / world``.
    """
    n = batch_size_of(batch)
    if world <= 1:
        return batch, 1.0
    if n < world:
        return batch, 1.0 / world
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    stop = start + base + (1 if rank < extra else 0)

    def cut(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return v[start:stop] if v.dim() > 0 and v.shape[0] == n else v
        if isinstance(v, Mapping):
            return {k: cut(x) for k, x in v.items()}
        if isinstance(v, tuple):
            return tuple(cut(x) for x in v)
        if isinstance(v, list):  # a list with one entry per sample (names, meshes) is cut like a tensor
            return v[start:stop] if len(v) == n else [cut(x) for x in v]
        return v

    return cut(batch), (stop - start) / n


def _sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def _reduce_gradients(model: nn.Module, weight: float, scalars: list[float]) -> list[float]:
    """Gradients := sum over ranks of ``weight_rank * gradient_rank``; returns the same weighted sum of
    ``scalars`` (the loss and its extra terms), all in one flat all-reduce per step."""
    params = [p for p in model.parameters() if p.requires_grad]
    dtype = params[0].dtype if params else torch.float32
    device = params[0].device if params else torch.device("cpu")
    flat = torch.cat([*((p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params),
                      torch.tensor(scalars, dtype=dtype, device=device)]) * weight
    _sum_over_ranks(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n
    return [float(x) for x in flat[offset:]]


def _broadcast_state(model: nn.Module, buffers_only: bool = False) -> None:
    """Rank 0's parameters (unless ``buffers_only``) and buffers (batch-norm statistics) on every rank."""
    import torch.distributed as dist

    tensors = ([] if buffers_only else list(model.parameters())) + list(model.buffers())
    with torch.no_grad():
        for dtype in sorted({t.dtype for t in tensors}, key=str):  # one broadcast per dtype, same order on every rank
            group = [t for t in tensors if t.dtype == dtype]
            flat = torch.cat([t.reshape(-1) for t in group])
            dist.broadcast(flat, src=0)
            offset = 0
            for t in group:
                t.copy_(flat[offset:offset + t.numel()].view_as(t))
                offset += t.numel()


def partial_path(checkpoint: str | os.PathLike) -> Path:
    """Where the partial (interrupted, resumable) checkpoint of ``checkpoint`` is kept."""
    path = Path(checkpoint)
    return path.with_name(path.stem + ".partial" + (path.suffix or ".pt"))


def _cpu_state(state: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in state.items()}


def _atomic_save(state: Mapping[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary file of this process in ``path``'s folder, then ``os.replace``: a reader
    never sees half a file, and two processes saving the same checkpoint at once (two notebooks of a parallel
    test run training the same model) never write into one temporary file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _save_partial(path: Path, current: Mapping[str, Any], best: Mapping[str, Any], optimizer: Any, scheduler: Any,
                  history: History, signature: Mapping[str, Any] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": _cpu_state(current), "best": _cpu_state(best),
             "optimizer": optimizer.state_dict() if optimizer is not None else None,
             "scheduler": scheduler.state_dict() if hasattr(scheduler, "state_dict") else None,
             "history": history.to_dict(), "signature": dict(signature or {})}
    _atomic_save(state, path)



def save_checkpoint(path: str | os.PathLike, model: nn.Module, **extra: Any) -> Path:
    """Save ``model``'s weights and JSON-like ``extra`` data atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "extra": extra}
    _atomic_save(state, path)
    return path


def load_checkpoint(path: str | os.PathLike, model: nn.Module) -> dict[str, Any]:
    """Load weights saved by :func:`save_checkpoint` into ``model`` (``weights_only=True``).

    Returns the ``extra`` data.  Raises ``FileNotFoundError`` for a missing file and
    ``ValueError`` for a file that is not such a checkpoint or does not fit the model.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt file
        raise ValueError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path} is not a course_lib checkpoint (no 'model' entry)")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise ValueError(f"the checkpoint {path} does not fit this model: {exc}") from exc
    return dict(state.get("extra", {}))


def _simple(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str)) or (
        isinstance(v, (tuple, list)) and all(_simple(x) for x in v))


def describe_callable(fn: Any, depth: int = 0) -> str:
    """A stable text naming a loss or metric function and the settings it closes over.

    Two ``point_loss("chamfer")`` closures describe alike; ``point_loss("emd")`` differs; an
    object with ``__call__`` is described by its class and its simple attributes.
    """
    import functools

    if depth > 3:
        return "..."
    if fn is None or _simple(fn):
        return repr(fn)
    if isinstance(fn, functools.partial):
        args = ", ".join(describe_callable(a, depth + 1) for a in fn.args)
        kw = ", ".join(f"{k}={describe_callable(v, depth + 1)}" for k, v in sorted(fn.keywords.items()))
        return f"partial({describe_callable(fn.func, depth + 1)}, {args}, {kw})"
    if isinstance(fn, torch.nn.Module):
        return f"{type(fn).__name__}({sum(p.numel() for p in fn.parameters())} params)"
    name = getattr(fn, "__qualname__", None)
    if name is not None and hasattr(fn, "__code__"):
        cells = []
        for cell_name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            try:
                val = cell.cell_contents
            except ValueError:
                continue
            if _simple(val) or callable(val):
                cells.append(f"{cell_name}={describe_callable(val, depth + 1)}")
        defaults = fn.__defaults__ or ()
        return f"{fn.__module__}.{name}({', '.join(cells)}){'' if not defaults else repr(defaults)}"
    if hasattr(fn, "describe") and callable(fn.describe):
        return str(fn.describe())
    attrs = {k: v for k, v in sorted(vars(fn).items()) if _simple(v)} if hasattr(fn, "__dict__") else {}
    return f"{type(fn).__module__}.{type(fn).__qualname__}({attrs})"


def spec_hash(spec: Any) -> str:
    """A short hash (12 hex digits) of a JSON-like description (keys sorted, anything else by ``repr``)."""
    import hashlib
    import json

    text = json.dumps(spec, sort_keys=True, default=repr)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def checkpoint_path(name: str, spec: Mapping[str, Any] | None = None, profile: str | None = None) -> Path:
    """The one checkpoint naming of the course: ``<cache>/checkpoints/<name>-<profile>-<hash>.pt``.

    Introduced in ``lectures/00_welcome.ipynb``.  ``spec`` describes everything that changes the
    weights and is not visible in the model itself (data configuration, number of shapes, loss
    settings); its hash is part of the name, so a variant never loads another variant's
    weights.  A real dataset (``COURSE_DATASET`` = ``shapenetcore`` or ``modelnet``) adds its name,
    ``<name>-<dataset>-<profile>-<hash>.pt``.  :func:`train_or_load` also records and checks the model's architecture, the loss,
    the optimiser settings and the number of epochs inside the file.
    """
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"checkpoint name must be a non-empty string without '/', got {name!r}")
    from course_lib.data.real_split import dataset_name

    profile = profile or config.get_profile()
    suffix = f"-{spec_hash(spec)}" if spec else ""
    dataset = dataset_name(None)  # COURSE_DATASET: a real dataset's models never share a name with ShapeNet-lite's
    tag = "" if dataset == "shapenet-lite" else f"-{dataset}"
    return config.cache_dir() / "checkpoints" / f"{name}{tag}-{profile}{suffix}.pt"


def training_signature(model: nn.Module, spec: Mapping[str, Any] | None = None, **fit_kwargs: Any) -> dict[str, str]:
    """What determines the weights a :func:`fit` call produces, as text (stored in checkpoints).

    The model's architecture (``repr`` and parameter count), the number of epochs, the loss and
    validation functions (:func:`describe_callable`), the optimiser's class and settings, the
    learning rate, scheduler, seed, gradient clipping, batch cap, monitored metric, the training
    loader (its class, length and ``describe()`` if it has one) and ``spec``.
    """
    sig: dict[str, str] = {
        "model": f"{type(model).__name__} {sum(p.numel() for p in model.parameters())} params {spec_hash(repr(model))}",
    }
    opt = fit_kwargs.get("optimizer")
    if opt is not None:
        groups = [{k: v for k, v in g.items() if k != "params" and _simple(v)} for g in opt.param_groups]
        sig["optimizer"] = f"{type(opt).__name__} {groups}"
    for key in ("epochs", "lr", "seed", "grad_clip", "max_batches_per_epoch", "monitor", "mode"):
        if key in fit_kwargs:
            sig[key] = repr(fit_kwargs[key])
    for key in ("loss_fn", "val_fn"):
        if fit_kwargs.get(key) is not None:
            sig[key] = describe_callable(fit_kwargs[key])
    sched = fit_kwargs.get("scheduler")
    if sched is not None:
        sig["scheduler"] = type(sched).__name__
    loader = fit_kwargs.get("train_loader")
    if loader is not None:
        desc = loader.describe() if hasattr(loader, "describe") else ""
        try:
            n = len(loader)
        except TypeError:
            n = "?"
        sig["train_loader"] = f"{type(loader).__name__} len={n} {desc}".strip()
    if spec:
        sig["spec"] = spec_hash(spec)
    return sig


def _diff(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


class CheckpointMissing(RuntimeError):
    """Raised by :func:`train_or_load` inside :func:`checkpoints_only` when it would have to train."""


_CHECKPOINTS_ONLY = [0]


class checkpoints_only:  # noqa: N801 - used as a context manager, like torch.no_grad
    """Inside ``with checkpoints_only():`` :func:`train_or_load` never trains: it loads or raises.

    Introduced in ``lectures/11_evaluation.ipynb``: the evaluation table is computed from the
    chapters' existing checkpoints, and a missing or stale one is an error that names the file
    and the reason (:class:`CheckpointMissing`) instead of a silent training run of minutes.
    """

    def __enter__(self) -> checkpoints_only:
        _CHECKPOINTS_ONLY[0] += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        _CHECKPOINTS_ONLY[0] -= 1


CLASS_CHECKPOINT_ENV = "COURSE_CHECKPOINT_DIR"
"""A folder of checkpoints trained by the instructor (``python -m course_lib.pretrain``, or a copy of their
``<cache>/checkpoints``): :func:`train_or_load` loads from it first, never writes to it."""


CHECKPOINTS_ONLY_ENV = "COURSE_CHECKPOINTS_ONLY"
"""Set to ``1``: every :func:`train_or_load` in the process behaves as inside :func:`checkpoints_only` (loads or
raises :class:`CheckpointMissing`); ``python -m course_lib.pretrain --verify`` runs the lectures so, to show that
they need no training after pretraining."""


def class_checkpoint_dir() -> Path | None:
    """The class checkpoint folder (``COURSE_CHECKPOINT_DIR``), or ``None`` when unset.

    Introduced in ``lectures/00_welcome.ipynb``.  Raises ``NotADirectoryError`` when it is set to something
    that is not a folder (a typo would otherwise silently train everything locally).
    """
    raw = os.environ.get(CLASS_CHECKPOINT_ENV, "").strip()
    if not raw:
        return None
    folder = Path(raw).expanduser()
    if not folder.is_dir():
        raise NotADirectoryError(f"{CLASS_CHECKPOINT_ENV}={raw!r} is not a folder: point it to the class's "
                                 "checkpoint folder, or unset it")
    return folder


def _load_matching(path: Path, model: nn.Module, sig: Mapping[str, str]) -> tuple[History | None, str]:
    """Load ``path`` into ``model`` if it is a complete checkpoint trained with signature ``sig``; else say why not."""
    if not path.exists():
        return None, f"no checkpoint at {path}"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        extra = dict(state.get("extra", {})) if isinstance(state, dict) else {}
        old = extra.get("signature")
        if not extra.get("complete", False) or old is None:
            return None, f"{path.name} has no record of how it was trained (made by an older course_lib)"
        if dict(old) != dict(sig):
            return None, f"{path.name} was trained with other settings ({', '.join(_diff(old, sig))} differ)"
        load_checkpoint(path, model)
        return History.from_dict(extra.get("history", {})), ""
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file is never trusted
        return None, f"could not use {path.name} ({type(exc).__name__}: {exc})"


def train_or_load(model: nn.Module, path: str | os.PathLike, *, retrain: bool = False,
                  spec: Mapping[str, Any] | None = None, **fit_kwargs: Any) -> History:
    """Load ``model``'s weights from ``path`` when they were trained exactly so, else :func:`fit` and save.

    Introduced in ``lectures/00_welcome.ipynb``.  The checkpoint stores the
    :func:`training_signature` (architecture, epochs, loss, optimiser, loader, ``spec``); a file
    made with other settings, an unreadable file, or an old file without a signature is not
    used, and the model trains again.  A run interrupted earlier (Ctrl-C) left a partial
    checkpoint: it is resumed from its last epoch, never served as finished.  Prints one line
    saying what was loaded or why it trains.  Returns the saved or new :class:`History`.

    With ``COURSE_CHECKPOINT_DIR`` set (:func:`class_checkpoint_dir`), a matching file of the same name
    in that folder is loaded first; the folder is never written (a missing or different one trains
    locally, into this machine's cache, and the message says why the class folder's was not used).
    With ``COURSE_CHECKPOINTS_ONLY=1`` (:data:`CHECKPOINTS_ONLY_ENV`) it never trains: a missing or stale
    checkpoint raises :class:`CheckpointMissing`.
    """
    path = Path(path)
    sig = training_signature(model, spec, **fit_kwargs)
    partial = partial_path(path)
    reason = f"no checkpoint at {path}"
    shared = class_checkpoint_dir()
    class_note = ""
    if not retrain and shared is not None:
        hist, why = _load_matching(shared / path.name, model, sig)
        if hist is not None:
            if is_main_process():
                print(f"loaded {path.name} from the class folder {shared}: {hist.summary()}")
            return hist
        class_note = f" (class folder {shared}: {why})"
    if retrain:
        reason = "retrain=True"
    elif path.exists():
        hist, reason = _load_matching(path, model, sig)
        if hist is not None:
            if is_main_process():
                print(f"loaded {path.name}: {hist.summary()}")
            return hist
    reason += class_note
    resume = None
    if not retrain and partial.exists():
        try:
            state = torch.load(partial, map_location="cpu", weights_only=True)
            if dict(state.get("signature", {})) == sig:
                resume = state
                done = History.from_dict(state.get("history", {})).epochs_run
                reason = f"resuming the interrupted run in {partial.name} at epoch {done + 1}"
            else:
                reason += f"; the partial run {partial.name} had other settings"
        except Exception as exc:  # noqa: BLE001 - a corrupt partial file is ignored
            reason += f"; could not read {partial.name} ({type(exc).__name__})"
    if _CHECKPOINTS_ONLY[0] or os.environ.get(CHECKPOINTS_ONLY_ENV, "").strip() not in ("", "0"):
        raise CheckpointMissing(f"{reason} (checkpoints_only: not training; run the chapter's benchmark or "
                                f"notebook in profile {config.get_profile()!r} first)")
    say = print if is_main_process() else (lambda *a, **k: None)
    say(f"training: {reason}")
    history = fit(model, checkpoint=path, resume=resume, signature=sig, **fit_kwargs)
    if distributed_world()[1] > 1:
        import torch.distributed as dist

        dist.barrier()  # rank 0 has written the checkpoint before any rank goes on
    epochs = int(fit_kwargs.get("epochs", 0))
    if history.interrupted or history.epochs_run < epochs:
        say(f"{history.summary()}; kept as the partial run {partial.name} (resumed next time)")
    else:
        say(history.summary())
    return history


# ---------------------------------------------------------------------------
# watching the chapters' training calls (chapter 11's budgets, python -m course_lib.pretrain)
# ---------------------------------------------------------------------------
@contextlib.contextmanager
def wrapped_train_or_load(make: Callable[[Callable[..., History]], Callable[..., History]]) -> Iterator[None]:
    """Inside the block, :func:`train_or_load` is ``make(original)``: every chapter recipe calls it as
    ``train.train_or_load`` (or imports it at call time), so a wrapper sees each model a recipe loads or trains.
    Restored after the block, even on an error."""
    import sys as _sys

    module = _sys.modules[__name__]
    original = module.train_or_load
    module.train_or_load = make(original)
    try:
        yield
    finally:
        module.train_or_load = original


def loop_budget(model: nn.Module, epochs: int, fit_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The size of a :func:`fit` call with ``fit_kwargs`` run for ``epochs`` epochs: ``{"steps_per_epoch",
    "steps", "examples", "batch_size", "params"}`` (``None`` where the loader has no length or size).

    Examples per epoch: the loader's ``n`` when every example is seen once (no batch cap, no dropped last
    batch), else steps times the batch size.
    """
    loader = fit_kwargs.get("train_loader")
    try:
        per_epoch: int | None = len(loader)  # type: ignore[arg-type]
    except TypeError:
        per_epoch = None
    cap = fit_kwargs.get("max_batches_per_epoch")
    if per_epoch is not None and cap is not None:
        per_epoch = min(per_epoch, int(cap))
    n, bs = getattr(loader, "n", None), getattr(loader, "batch_size", None)
    examples = None
    if n is not None and cap is None and not getattr(loader, "drop_last", False):
        examples = int(n)
    elif per_epoch is not None and bs is not None:
        examples = per_epoch * int(bs)
    return {"steps_per_epoch": per_epoch, "steps": None if per_epoch is None else int(epochs) * per_epoch,
            "examples": None if examples is None else int(epochs) * examples, "batch_size": bs,
            "params": sum(p.numel() for p in model.parameters() if p.requires_grad)}



# ---------------------------------------------------------------------------
# stored results: computed once, like a checkpoint (fits, samplings)
# ---------------------------------------------------------------------------
def _spec_fingerprint(value: Any) -> Any:
    """A JSON-able stand-in for ``value``: tensors and arrays by dtype, shape and a hash of their bytes."""
    import hashlib

    import numpy as np

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().contiguous().numpy()
    if isinstance(value, np.ndarray):
        return {"array": str(value.dtype), "shape": list(value.shape),
                "sha1": hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest()}
    if isinstance(value, Mapping):
        return {str(k): _spec_fingerprint(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_spec_fingerprint(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {"dataclass": type(value).__name__,
                **{k: _spec_fingerprint(getattr(value, k)) for k in value.__dataclass_fields__}}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"stored_result: cannot fingerprint a {type(value).__name__} in the spec; pass tensors, "
                    "arrays, numbers, strings, lists, dicts or dataclasses of them")


def stored_result_path(name: str, spec: Mapping[str, Any], profile: str | None = None) -> Path:
    """``<cache>/results/<name>-<profile>-<hash of spec>.pt``: where :func:`stored_result` keeps a result."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"stored result name must be a non-empty string without '/', got {name!r}")
    profile = profile or config.get_profile()
    return config.cache_dir() / "results" / f"{name}-{profile}-{spec_hash(_spec_fingerprint(spec))}.pt"


def stored_result(name: str, spec: Mapping[str, Any], compute: Callable[[], Any]) -> tuple[Any, bool]:
    """``(result, loaded)``: ``compute()``'s result, computed once and then read back from the cache.

    Introduced in ``lectures/09_differentiable_rendering.ipynb`` and ``lectures/10_gradient_fields.ipynb``:
    a lecture's live optimisation (a mesh fitted to silhouettes, a latent GAN) is a result like a
    checkpoint's weights, so a second "Restart kernel and run all" reads it instead of computing it again
    (issue #36's 60 s goal).  ``spec`` must hold everything the result depends on (inputs as tensors, which
    are hashed by their bytes, every setting, and a version of the code); a different spec is a different
    file.  ``COURSE_RECOMPUTE=1`` ignores stored results.  An unreadable file is computed again.  The
    result must be picklable (tensors, dataclasses, dicts); only this machine's cache is read (never a class
    folder: files are unpickled).
    """
    path = stored_result_path(name, spec)
    if os.environ.get("COURSE_RECOMPUTE", "").strip() not in ("", "0") or not path.exists():
        loaded = None
    else:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=False)
        except Exception:  # noqa: BLE001 - a torn or foreign file: compute again
            loaded = None
    if isinstance(loaded, dict) and loaded.get("name") == name and "result" in loaded:
        return loaded["result"], True
    result = compute()
    if is_main_process():
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_save({"name": name, "result": result}, path)
    return result, False


def code_version(*objects: Any) -> str:
    """A short hash of the source code of ``objects`` (functions, classes, modules): put it in a
    :func:`stored_result` spec so that a change to the code that computes a result computes it again."""
    import hashlib
    import inspect

    h = hashlib.sha1()
    for obj in objects:
        h.update(inspect.getsource(obj).encode())
    return h.hexdigest()[:12]
