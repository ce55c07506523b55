"""The course as a student sees it: every lecture and solution run in JupyterLab in headless Chromium.

For each notebook (``COURSE_PROFILE=ci``): open it in JupyterLab, "run all", wait until the kernel
is idle, then assert that every code cell executed, that no cell has an error output, that no widget
shows "Error displaying widget" (or is still "Loading widget..."), that at least the expected figures
and widgets rendered (counted from the notebook's source: one widget per ``interact(`` cell, a plotly
figure per widget and at least one if the notebook draws any), that progress bars are widgets (no
text bar or "IProgress not found" on stderr), and that the page stays under its weight budget
(:data:`WEBGL_BUDGET` live WebGL canvases).  A screenshot and the measurements of each notebook go to
``.cache/browser/`` (``COURSE_BROWSER_ARTIFACTS``), with ``report.json``.

``test_a_broken_widget_fails_the_check`` proves the check can fail: a widget whose frontend module
does not exist must be reported.  ``test_static_fallback_without_a_frontend`` runs a notebook under
``nbclient`` (a kernel and no widget frontend, as in VS Code or Colab without widget support, or
nbviewer) and checks that every widget cell still carries a static figure.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbformat
import pytest
from browser_report import add_entry

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("COURSE_BROWSER_ARTIFACTS", ROOT / ".cache" / "browser"))

NOTEBOOKS = sorted(str(p.relative_to(ROOT)) for d in ("lectures", "solutions") for p in (ROOT / d).glob("*.ipynb"))
FIXTURES = ROOT / ".cache" / "browser-fixtures"
WEBGL_BUDGET = 16
"""Live WebGL canvases allowed per page: Chromium keeps at most 16 contexts alive per page and drops
the oldest one (a figure goes blank, "WARNING: Too many active WebGL contexts") beyond it."""
NOTEBOOK_TIMEOUT = 600
WIDGET_ERRORS = ("Error displaying widget", "Failed to load model class", "Failed to load view class",
                 "Loading widget...", "Could not render content", "Click to show javascript error")

_READY = """
const app = window.jupyterapp;
if (!app) return 'no-app';
const w = app.shell.currentWidget;
if (!w || !w.content || !w.content.model || !w.sessionContext) return 'no-notebook';
if (!w.context.isReady) return 'loading';
const s = w.sessionContext.session;
if (!s || !s.kernel) return 'no-kernel';
return s.kernel.status;
"""

_STATE = """
const w = window.jupyterapp.shell.currentWidget;
const cells = w.content.model.cells;
let code = 0, executed = 0, running = 0;
for (let i = 0; i < cells.length; i++) {
  const c = cells.get(i);
  if (c.type !== 'code') continue;
  code++;
  if (c.executionCount !== null && c.executionCount !== undefined) executed++;
  if (c.executionState === 'running') running++;
}
const s = w.sessionContext.session;
return {code: code, executed: executed, running: running, kernel: s && s.kernel ? s.kernel.status : 'none'};
"""

_REPORT = """
const w = window.jupyterapp.shell.currentWidget;
const cells = w.content.model.cells;
const errors = [], textBars = [];
for (let i = 0; i < cells.length; i++) {
  const c = cells.get(i);
  if (c.type !== 'code') continue;
  for (const o of c.outputs.toJSON()) {
    if (o.output_type === 'error') errors.push(`cell ${i}: ${o.ename}: ${o.evalue}`.slice(0, 300));
    if (o.output_type === 'stream' && o.name === 'stderr') {
      const t = Array.isArray(o.text) ? o.text.join('') : String(o.text);
      if (/IProgress not found/.test(t) || /\\d+%\\|/.test(t)) textBars.push(`cell ${i}: ${t.slice(0, 120)}`);
    }
  }
}
const root = w.content.node;
const text = root.innerText;
const widgetErrors = [];
for (const needle of arguments[0]) {
  const n = text.split(needle).length - 1;
  if (n) widgetErrors.push(`${needle} x${n}`);
}
let canvases = 0, webgl = 0, lost = 0;
for (const cv of document.querySelectorAll('canvas')) {
  canvases++;
  let ctx2d = null;
  try { ctx2d = cv.getContext('2d'); } catch (e) { ctx2d = null; }
  if (ctx2d !== null) continue;  // a 2D canvas (or a fresh one, now 2D)
  let gl = null;
  for (const kind of ['webgl2', 'webgl', 'experimental-webgl']) {
    try { gl = cv.getContext(kind); } catch (e) { gl = null; }
    if (gl) break;
  }
  if (gl && gl.isContextLost()) lost++; else webgl++;
}
return {errors: errors, text_progress: textBars, widget_errors: widgetErrors,
        plotly: root.querySelectorAll('.js-plotly-plot').length,
        widgets: root.querySelectorAll('.jupyter-widgets').length,
        progress_widgets: root.querySelectorAll('.widget-progress, .widget-hprogress').length,
        canvases: canvases, webgl: webgl, webgl_lost: lost};
"""

_IDLE = """
const done = arguments[arguments.length - 1];
const t0 = performance.now();
requestAnimationFrame(() => requestIdleCallback(() => done(performance.now() - t0), {timeout: 110000}));
"""


def expected(path: Path) -> dict[str, int]:
    """What a notebook must show, from its source: widgets (``interact(`` cells) and figures."""
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    widgets = sum("interact(" in s for s in code)
    draws = any(re.search(r"viz\.(plot_\w+|subplots|interact)\(", s) for s in code)
    return {"widgets": widgets, "plotly": max(widgets, 1 if draws else 0)}


def run_in_browser(driver, url: str, rel: str, timeout: float = NOTEBOOK_TIMEOUT) -> dict:
    """Open ``rel`` in JupyterLab, run all cells, wait for the kernel, and measure the page."""
    from selenium.common.exceptions import JavascriptException

    try:
        driver.get_log("browser")  # drop the previous notebook's console messages
    except Exception:  # noqa: BLE001
        pass
    driver.get(f"{url}/lab/tree/{rel}?reset")
    t0 = time.time()
    status = None
    while time.time() - t0 < 120:
        try:
            status = driver.execute_script(_READY)
        except JavascriptException:
            status = "error"
        if status == "idle":
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"{rel}: the notebook did not open with an idle kernel (last state: {status})")
    t_open = time.time() - t0
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells'); return true;")
    t1 = time.time()
    last, last_change, state = None, time.time(), {}
    while time.time() - t1 < timeout:
        time.sleep(1.0)
        state = driver.execute_script(_STATE)
        key = (state["executed"], state["running"], state["kernel"])
        if key != last:
            last, last_change = key, time.time()
        finished = state["executed"] == state["code"] and state["running"] == 0 and state["kernel"] == "idle"
        stuck = state["running"] == 0 and state["kernel"] == "idle" and time.time() - last_change > 10
        if finished or stuck:
            break
    t_run = time.time() - t1
    idle_ms = driver.execute_async_script(_IDLE)
    time.sleep(2.0)  # let the widget views that were just created draw
    report = driver.execute_script(_REPORT, list(WIDGET_ERRORS))
    try:
        console = [e.get("message", "") for e in driver.get_log("browser")]
    except Exception:  # noqa: BLE001 - logs are a diagnostic, not every driver has them
        console = []
    report["console_webgl"] = [m[:200] for m in console if "WebGL" in m][:5]
    report["console_errors"] = len(console)
    report.update(state, notebook=rel, open_s=round(t_open, 1), run_s=round(t_run, 1),
                  idle_after_run_ms=round(idle_ms, 1), expected=expected(ROOT / rel))
    name = rel.replace("/", "__").removesuffix(".ipynb")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    try:  # free the kernel, and mark the notebook saved so that leaving the page asks nothing
        driver.execute_script("const w = window.jupyterapp.shell.currentWidget; w.context.model.dirty = false; "
                              "w.sessionContext.shutdown(); return true;")
    except JavascriptException:
        pass
    return report


def problems(report: dict) -> list[str]:
    """Everything a student would see as broken in ``report`` (empty: the notebook is fine)."""
    out = []
    if report["executed"] != report["code"]:
        out.append(f"{report['code'] - report['executed']} of {report['code']} code cells did not run")
    out += [f"error output: {e}" for e in report["errors"]]
    out += [f"widget not rendered: {e}" for e in report["widget_errors"]]
    out += [f"text progress bar: {e}" for e in report["text_progress"]]
    exp = report["expected"]
    if report["widgets"] < exp["widgets"]:
        out.append(f"{report['widgets']} widget views rendered, expected at least {exp['widgets']}")
    if report["plotly"] < exp["plotly"]:
        out.append(f"{report['plotly']} plotly figures rendered, expected at least {exp['plotly']}")
    if report["webgl_lost"]:
        out.append(f"{report['webgl_lost']} figures lost their WebGL context (blank): too many 3D figures in one page")
    if report["webgl"] > WEBGL_BUDGET:
        out.append(f"{report['webgl']} live WebGL canvases, over the page budget of {WEBGL_BUDGET}")
    return out


def _save(report: dict) -> None:
    add_entry(ARTIFACTS / "report.json", report["notebook"], report)


@pytest.mark.parametrize("rel", NOTEBOOKS)
def test_notebook_in_browser(driver, lab_server, rel):
    report = run_in_browser(driver, lab_server, rel)
    _save(report)
    print(f"{rel}: run {report['run_s']} s, idle after {report['idle_after_run_ms']:.0f} ms, "
          f"{report['plotly']} plotly, {report['widgets']} widget views, {report['webgl']} WebGL canvases "
          f"({report['webgl_lost']} lost)")
    bad = problems(report)
    assert not bad, f"{rel}: " + "; ".join(bad)


def _fixture(name: str, cells: list[str]) -> str:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = FIXTURES / f"{name}.ipynb"
    nbformat.write(nb, path)
    return str(path.relative_to(ROOT))


GOOD = ["from course_lib import viz\nimport plotly.graph_objects as go",
        "viz.interact(lambda n=3: go.Figure(go.Scatter(y=list(range(n)))), n=(1, 10))",
        "from tqdm.auto import tqdm\nfor _ in tqdm(range(3)):\n    pass"]
BROKEN = ["import ipywidgets as w\nfrom traitlets import Unicode\n"
          "class Broken(w.DOMWidget):\n"
          "    _model_name = Unicode('BrokenModel').tag(sync=True)\n"
          "    _model_module = Unicode('course-no-such-module').tag(sync=True)\n"
          "    _model_module_version = Unicode('0.0.1').tag(sync=True)\n"
          "    _view_name = Unicode('BrokenView').tag(sync=True)\n"
          "    _view_module = Unicode('course-no-such-module').tag(sync=True)\n"
          "    _view_module_version = Unicode('0.0.1').tag(sync=True)\n"
          "Broken()"]


def test_a_broken_widget_fails_the_check(driver, lab_server):
    good = run_in_browser(driver, lab_server, _fixture("good_widget", GOOD), timeout=120)
    assert problems(good) == [], problems(good)
    assert good["progress_widgets"] >= 1  # tqdm.auto drew a widget, not text
    broken = run_in_browser(driver, lab_server, _fixture("broken_widget", BROKEN), timeout=120)
    assert any("widget not rendered" in p for p in problems(broken)), broken


def test_static_fallback_without_a_frontend():
    """nbclient: a kernel and no widget frontend; each widget cell must also carry a static figure."""
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "lectures" / "00_welcome.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(GOOD[0] + "\n" + GOOD[1]))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    widget_cells = [c for c in nb.cells if c.cell_type == "code" and "interact(" in c.source]
    assert widget_cells
    for c in widget_cells:
        bundles = [o.get("data", {}) for o in c.outputs if o.output_type in ("display_data", "execute_result")]
        assert any("application/vnd.jupyter.widget-view+json" in b for b in bundles), c.source[:80]
        assert any("application/vnd.plotly.v1+json" in b or "image/png" in b or "text/html" in b for b in bundles), \
            f"no static figure beside the widget in: {c.source[:80]}"
