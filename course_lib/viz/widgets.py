"""Widgets that degrade gracefully: ipywidgets controls driving a plotly figure.

Introduced in ``lectures/01_data_and_representations.ipynb``.

:func:`interact` builds one control per keyword argument and re-renders a figure when
they change.  The object it returns displays as *both* the live widget and a static
copy of the figure for the initial values, in one MIME bundle:

* a frontend with the Jupyter widget manager (JupyterLab, Notebook 7, VS Code and
  Colab with widgets enabled) shows the live widget;
* a frontend without it (nbviewer, GitHub, a notebook reopened without its kernel,
  a headless ``nbval`` run) shows the static figure instead of a blank cell or the
  text "Error displaying widget".

Outside a kernel, or when ipywidgets cannot be imported, :func:`interact` returns the
static :class:`plotly.graph_objects.Figure` directly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import plotly.graph_objects as go

__all__ = ["widgets_available", "interact", "Interactive", "static_bundle"]

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PLOTLY_MIME = "application/vnd.plotly.v1+json"


def _import_ipywidgets() -> Any:
    """``ipywidgets`` or None (import errors are swallowed: widgets are optional)."""
    try:
        import ipywidgets
    except Exception:  # noqa: BLE001 - any failure means "no widgets"
        return None
    return ipywidgets


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except Exception:  # noqa: BLE001
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def widgets_available() -> bool:
    """True when ipywidgets imports and we run inside a Jupyter kernel.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    (Whether the *frontend* can draw widgets cannot be known from the kernel; that is
    why :func:`interact` always ships a static fallback with the widget.)
    """
    return _import_ipywidgets() is not None and _in_kernel()


def static_bundle(fig: go.Figure) -> dict[str, Any]:
    """A MIME bundle that shows ``fig`` without widgets: plotly JSON, HTML and plain text.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    The HTML loads plotly.js from its CDN when viewed (nbviewer); JupyterLab and VS Code
    render the ``application/vnd.plotly.v1+json`` entry with their bundled plotly.
    """
    title = fig.layout.title.text or "figure"
    return {
        PLOTLY_MIME: json.loads(fig.to_json()),
        "text/html": fig.to_html(full_html=False, include_plotlyjs="cdn"),
        "text/plain": f"<plotly figure: {title}>",
    }


def _numbers(seq: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seq)


def _initial_value(spec: Any) -> tuple[bool, Any]:
    """(is_a_control, initial value) of one control specification, without ipywidgets."""
    if hasattr(spec, "value") and hasattr(spec, "observe"):  # an ipywidgets widget
        return True, spec.value
    if isinstance(spec, range):
        if len(spec) == 0:
            raise ValueError(f"empty range {spec!r} for a slider")
        return True, spec.start
    if isinstance(spec, bool):
        return True, spec
    if isinstance(spec, tuple) and len(spec) in (2, 3, 4) and _numbers(spec):
        if spec[1] < spec[0]:
            raise ValueError(f"slider (min, max[, step[, value]]) has max < min: {spec!r}")
        if len(spec) == 4 and not spec[0] <= spec[3] <= spec[1]:
            raise ValueError(f"slider initial value {spec[3]} is outside [{spec[0]}, {spec[1]}]")
        return True, spec[3] if len(spec) == 4 else spec[0]
    if isinstance(spec, (list, tuple)):
        if len(spec) == 0:
            raise ValueError("empty list of options for a dropdown")
        first = spec[0]
        return True, first[1] if isinstance(first, tuple) and len(first) == 2 else first
    return False, spec  # a fixed value, passed through unchanged


def _make_control(name: str, spec: Any, widgets: Any, continuous_update: bool) -> Any:
    """One ipywidgets control from a specification (see :func:`interact`)."""
    desc = name.replace("_", " ")
    style = {"description_width": "initial"}
    if isinstance(spec, widgets.Widget):
        return spec
    if isinstance(spec, range):
        return widgets.IntSlider(value=spec.start, min=spec.start, max=spec[-1], step=spec.step,
                                 description=desc, continuous_update=continuous_update, style=style)
    if isinstance(spec, bool):
        return widgets.Checkbox(value=spec, description=desc, style=style)
    if isinstance(spec, tuple) and len(spec) in (2, 3, 4) and _numbers(spec):
        lo, hi = spec[0], spec[1]
        value = spec[3] if len(spec) == 4 else lo
        if all(isinstance(v, int) for v in spec):
            step = spec[2] if len(spec) >= 3 else 1
            return widgets.IntSlider(value=value, min=lo, max=hi, step=step, description=desc,
                                     continuous_update=continuous_update, style=style)
        step = spec[2] if len(spec) >= 3 else (hi - lo) / 100
        return widgets.FloatSlider(value=value, min=lo, max=hi, step=step, description=desc,
                                   continuous_update=continuous_update, style=style)
    if isinstance(spec, (list, tuple)):
        return widgets.Dropdown(options=list(spec), description=desc, style=style)
    raise TypeError(f"cannot make a control for {name}={spec!r}")


class Interactive:
    """Controls + figure, returned by :func:`interact` when widgets are available.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    Attributes:
        controls: name -> ipywidgets control.
        fixed: name -> value passed unchanged to the render function.
        figure: the figure currently shown.
        widget: the ``VBox`` of controls, status line and output.
        initial_figure: the figure of the initial values (the static fallback).
    """

    def __init__(self, render_fn: Callable[..., go.Figure], controls: dict[str, Any],
                 fixed: dict[str, Any], widgets: Any, title: str | None = None) -> None:
        self.render_fn = render_fn
        self.controls = controls
        self.fixed = fixed
        self._widgets = widgets
        self.output = widgets.Output()
        self.status = widgets.HTML(value="")
        self.figure = self._render(self.values)
        self.initial_figure = self.figure
        header = [widgets.HTML(value=f"<b>{title}</b>")] if title else []
        self.widget = widgets.VBox(header + [widgets.HBox(list(controls.values())), self.status, self.output])
        self._show(self.figure)
        for ctl in controls.values():
            ctl.observe(self._on_change, names="value")

    @property
    def values(self) -> dict[str, Any]:
        """The current value of every argument of the render function."""
        return {**self.fixed, **{k: c.value for k, c in self.controls.items()}}

    def _render(self, values: dict[str, Any]) -> go.Figure:
        fig = self.render_fn(**values)
        if not isinstance(fig, go.Figure):
            raise TypeError(f"the render function should return a plotly Figure, got {type(fig).__name__}")
        return fig

    def _show(self, fig: go.Figure) -> None:
        if _in_kernel():
            from IPython.display import clear_output, display

            with self.output:
                clear_output(wait=True)
                display(fig)
        else:  # no kernel (tests): store the static bundle as the output's content
            self.output.outputs = ({"output_type": "display_data", "data": static_bundle(fig), "metadata": {}},)

    def update(self, **values: Any) -> go.Figure:
        """Set some controls (as a user would) and return the re-rendered figure."""
        unknown = set(values) - set(self.controls)
        if unknown:
            raise ValueError(f"no control named {sorted(unknown)}; controls: {sorted(self.controls)}")
        for k, v in values.items():
            self.controls[k].value = v  # triggers _on_change
        return self.figure

    def _on_change(self, _change: Any = None) -> None:
        t0 = time.perf_counter()
        self.status.value = "<i>rendering…</i>"
        try:
            fig = self._render(self.values)
        except Exception as exc:  # noqa: BLE001 - show the error, keep the widget alive
            self.status.value = f"<span style='color:#b00'>error: {type(exc).__name__}: {exc}</span>"
            return
        self.figure = fig
        self._show(fig)
        self.status.value = f"<small>rendered in {time.perf_counter() - t0:.2f} s</small>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = static_bundle(self.initial_figure)
        got = self.widget._repr_mimebundle_()
        bundle.update((got[0] if isinstance(got, tuple) else got) or {})
        args = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        bundle["text/plain"] = f"<interactive figure ({args})>"
        return bundle

    def __repr__(self) -> str:
        return f"Interactive(controls={sorted(self.controls)})"


def interact(
    render_fn: Callable[..., go.Figure],
    *,
    title: str | None = None,
    continuous_update: bool = False,
    **controls: Any,
) -> Interactive | go.Figure:
    """Controls driving a plotly figure, with a static fallback.

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    Each keyword names an argument of ``render_fn`` and says how to control it:

    * ``range(a, b[, s])`` -> integer slider starting at ``a``;
    * ``(lo, hi)``, ``(lo, hi, step)`` or ``(lo, hi, step, value)`` of numbers -> slider (integer
      if all are ints) starting at ``value`` (default ``lo``);
    * a list (or tuple of non-numbers) of options -> dropdown starting at the first;
    * ``True``/``False`` -> checkbox;
    * an ipywidgets widget -> used as is;
    * anything else -> a fixed value passed unchanged.

    Returns an :class:`Interactive` when :func:`widgets_available`, else the figure of the
    initial values.  Sliders update on release by default (``continuous_update=False``):
    renders are not interrupted by every pixel of a drag.
    """
    if not callable(render_fn):
        raise TypeError(f"render_fn should be callable, got {type(render_fn).__name__}")
    initial: dict[str, Any] = {}
    for name, spec in controls.items():
        initial[name] = _initial_value(spec)[1]
    widgets = _import_ipywidgets()
    if widgets is None or not widgets_available():
        fig = render_fn(**initial)
        if not isinstance(fig, go.Figure):
            raise TypeError(f"the render function should return a plotly Figure, got {type(fig).__name__}")
        return fig
    ctl: dict[str, Any] = {}
    fixed: dict[str, Any] = {}
    for name, spec in controls.items():
        if _initial_value(spec)[0]:
            ctl[name] = _make_control(name, spec, widgets, continuous_update)
        else:
            fixed[name] = spec
    return Interactive(render_fn, ctl, fixed, widgets, title=title)
