"""The one training loop every chapter uses.

Introduced in ``lectures/00_welcome.ipynb``.

:func:`fit` trains a model with a ``tqdm.auto`` progress bar, records the loss history,
optionally validates after each epoch, keeps the best weights (by ``monitor``), saves a
checkpoint, and stops cleanly on Ctrl-C (``KeyboardInterrupt``) with the best weights
restored.  :func:`train_or_load` loads a checkpoint when one exists and trains otherwise, so
re-running a notebook costs seconds.  Checkpoints are loaded with ``weights_only=True``.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
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
            parts.append("interrupted (best weights kept)")
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

    The model is put in eval mode and no gradients are recorded.
    """
    device = device or next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    with torch.no_grad():
        for batch in loader:
            out = fn(model, _to_device(batch, device))
            if not isinstance(out, Mapping):
                out = {"loss": out}
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
    model.train(was_training)
    if count == 0:
        raise ValueError("the validation loader is empty")
    return {k: v / count for k, v in sums.items()}


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
) -> History:
    """Train ``model`` for ``epochs`` epochs; return the :class:`History`.

    ``loss_fn(model, batch)`` returns a scalar loss tensor, or a dict with a ``"loss"`` key plus
    other scalars to record.  With ``val_loader``, after each epoch ``val_fn(model, batch)``
    (default: ``loss_fn``, recorded as ``val_loss``) is averaged over the loader; the weights
    with the best ``monitor`` value (``mode`` ``"min"`` or ``"max"``) are kept and restored at
    the end.  Without validation the monitor is the training loss.  ``checkpoint`` saves the
    best weights and the history there.  Ctrl-C stops after the current batch, restores the
    best weights, and returns the history with ``interrupted=True``.
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
    plot = _LivePlot(live_plot, epochs)
    start = time.perf_counter()

    try:
        for epoch in range(epochs):
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
                loss, extra = _split_loss(loss_fn(model, batch))
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"the loss became {loss.item()} at epoch {epoch + 1}, batch {i}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                optimizer.step()
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
        print("\ntraining interrupted: keeping the best weights so far", flush=True)

    history.wall_time = time.perf_counter() - start
    if history.best_epoch >= 0:
        model.load_state_dict(best_state)
    if checkpoint is not None:
        save_checkpoint(checkpoint, model, history=history.to_dict())
    return history


def save_checkpoint(path: str | os.PathLike, model: nn.Module, **extra: Any) -> Path:
    """Save ``model``'s weights and JSON-like ``extra`` data atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "extra": extra}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
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


def train_or_load(model: nn.Module, path: str | os.PathLike, *, retrain: bool = False,
                  **fit_kwargs: Any) -> History:
    """Load ``model``'s weights from ``path`` if present (and ``retrain`` is false), else :func:`fit` and save.

    Returns the saved or new :class:`History`.  A checkpoint that cannot be read or does not
    fit the model is reported and the model is trained again.
    """
    path = Path(path)
    if path.exists() and not retrain:
        try:
            extra = load_checkpoint(path, model)
            hist = History.from_dict(extra.get("history", {}))
            print(f"loaded {path} ({hist.summary()})")
            return hist
        except ValueError as exc:
            print(f"could not use {path}: {exc}; training again")
    history = fit(model, checkpoint=path, **fit_kwargs)
    print(history.summary())
    return history
