"""End to end in a real Jupyter kernel (no browser): what a frontend receives from viz.interact."""

from __future__ import annotations

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

WIDGET = "application/vnd.jupyter.widget-view+json"
PLOTLY = "application/vnd.plotly.v1+json"

SOURCE = [
    "from course_lib import viz\nimport torch\nprint(viz.widgets_available())",
    "def render(scale, kind):\n"
    "    return viz.plot_points(torch.ones(4, 3) * scale, title=f'{kind} {scale}')\n"
    "app = viz.interact(render, scale=(1, 3), kind=['a', 'b'])\napp",
    "app.update(kind='b', scale=2).layout.title.text",
]


def test_interact_in_a_kernel_sends_widget_view_and_static_fallback():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in SOURCE])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    assert nb.cells[0].outputs[0]["text"].strip() == "True"  # a kernel: widgets are available
    (out,) = [o for o in nb.cells[1].outputs if o["output_type"] == "execute_result"]
    data = out["data"]
    # the widget view for frontends with the widget manager ...
    assert WIDGET in data and data[WIDGET]["model_id"]
    # ... and the figure of the initial values for all the others
    assert data[PLOTLY]["layout"]["title"]["text"] == "a 1"
    assert "text/html" in data and "plotly" in data["text/html"].lower()
    # the controls drive the figure
    (res,) = [o for o in nb.cells[2].outputs if o["output_type"] == "execute_result"]
    assert res["data"]["text/plain"] == "'b 2'"
