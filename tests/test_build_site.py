"""The pure-python parts of the website build (``tools/build_site.py``): the page list, the cache keys, the
profile/commit banner, the output conversion (plotly, widgets, progress bars, CDN scripts), the chapter map and
the results index.  Sphinx is not needed; the configuration test is skipped without it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_site as bs  # noqa: E402

sys.path.remove(str(ROOT / "tools"))


def test_every_lecture_lab_and_solution_is_a_page():
    pages = bs.page_list(ROOT)
    for folder, kind in (("lectures", "lecture"), ("labs", "lab"), ("solutions", "solution")):
        names = sorted(p.name for p in (ROOT / folder).glob("*.ipynb"))
        assert names, folder
        assert sorted(p.name for p in pages if p.kind == kind) == names
    assert all(p.executed == (p.kind != "lab") for p in pages)  # labs are shown, never executed
    assert {p.docname.split("/")[0] for p in pages} == {"lectures", "labs", "solutions"}
    only = bs.page_list(ROOT, ["03", "05"])
    assert {p.chapter for p in only} == {"03", "05"} and len(only) == 6


def test_cache_key_follows_content_and_profile(tmp_path):
    nb = tmp_path / "07_x.ipynb"
    nb.write_text('{"cells": []}')
    ci, laptop = bs.cache_key(nb, "ci"), bs.cache_key(nb, "laptop")
    assert ci.startswith("07_x-ci-") and laptop.startswith("07_x-laptop-") and ci != laptop
    assert bs.cache_key(nb, "ci") == ci  # stable
    nb.write_text('{"cells": [1]}')
    assert bs.cache_key(nb, "ci") != ci  # an edit executes again
    with pytest.raises(ValueError, match="unknown profile"):
        bs.cache_key(nb, "fast")


def test_banner_names_profile_and_commit():
    lec = bs.Page("lecture", "lectures/03_voxels.ipynb")
    text = bs.banner(lec, {"profile": "laptop", "commit": "abc1234", "date": "2026-12-06 17:00 UTC",
                           "seconds": 42.0})
    assert "COURSE_PROFILE=laptop" in text and "abc1234" in text and "2026-12-06" in text and "42 s" in text
    assert "not results" not in text  # only the ci profile carries the warning
    ci = bs.banner(lec, {"profile": "ci", "commit": "abc1234", "date": "d", "note": "Profile fallback: x."})
    assert "not results" in ci and "Profile fallback: x." in ci
    sol = bs.banner(bs.Page("solution", "solutions/03_voxels_lab.ipynb"), {"profile": "ci", "commit": "c"})
    assert "For instructors" in sol
    lab = bs.banner(bs.Page("lab", "labs/03_voxels_lab.ipynb"))
    assert "not executed" in lab and "without their solutions" in lab and "COURSE_PROFILE" not in lab


def _nb(outputs, widgets=None):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=outputs)])
    if widgets:
        nb.metadata["widgets"] = {bs.WIDGET_STATE_MIME: {"state": widgets}}
    return nb


def _out(data):
    return nbformat.v4.new_output("display_data", data=data)


FIG = {"data": [{"type": "scatter3d", "x": [0, 1], "y": [0, 1], "z": [0, float("nan")]}],
       "layout": {"height": 300, "title": {"text": "</script> test"}}}


def test_plotly_output_becomes_local_interactive_html():
    nb = _nb([_out({bs.PLOTLY_MIME: FIG, "text/html": '<script src="https://cdn.plot.ly/plotly.js"></script>',
                    "text/plain": "fig"})])
    counts = bs.convert_outputs(nb, prefix="p")
    data = nb.cells[0].outputs[0]["data"]
    assert counts["plotly"] == 1 and set(data) == {"text/html", "text/plain"}
    html = data["text/html"]
    assert 'id="p-1"' in html and "course-plotly" in html and "height:300px" in html
    assert "cdn" not in html and "https://" not in html
    payload = html.split('id="p-1-json">', 1)[1].split("</script>", 1)[0]
    fig = json.loads(payload.replace("<\\/", "</"))
    assert fig["data"][0]["z"] == [0, None]  # NaN written as null: JSON.parse must read it
    assert fig["layout"]["title"]["text"] == "</script> test"


def test_widget_keeps_its_static_figure_with_a_note():
    widget = {"model_id": "w1", "version_major": 2, "version_minor": 0}
    nb = _nb([_out({bs.WIDGET_MIME: widget, bs.PLOTLY_MIME: FIG, "text/html": "<div></div>", "text/plain": "Box"}),
              _out({bs.WIDGET_MIME: widget, bs.PLOTLY_MIME: FIG, "text/plain": "<k3d.plot.Plot object>"}),
              _out({bs.WIDGET_MIME: widget, "text/plain": "VBox()"})], widgets={"w1": {}})
    counts = bs.convert_outputs(nb)
    outs = nb.cells[0].outputs
    assert counts["widgets"] == 2 and counts["k3d"] == 1 and counts["plotly"] == 2
    assert all(bs.WIDGET_MIME not in o["data"] for o in outs)
    assert "live controls" in outs[0]["data"]["text/html"]
    assert "k3d scene" in outs[1]["data"]["text/html"]
    assert "run the notebook in Jupyter" in outs[2]["data"]["text/html"]
    assert "widgets" not in nb.metadata  # no widget manager is loaded (it would come from a CDN)


def test_k3d_snapshot_becomes_an_iframe():
    widget = {"model_id": "w1", "version_major": 2, "version_minor": 0}
    snap = "<!doctype html><html><body>k3d</body></html>"
    nb = _nb([_out({bs.WIDGET_MIME: widget, bs.PLOTLY_MIME: FIG, bs.K3D_MIME: snap,
                    "text/plain": "<k3d.plot.Plot object>"})])
    assets: dict[str, str] = {}
    counts = bs.convert_outputs(nb, assets=assets, asset_url="../_k3d/")
    (name, text), = assets.items()
    html = nb.cells[0].outputs[0]["data"]["text/html"]
    assert text == snap and f'src="../_k3d/{name}"' in html and "<iframe" in html
    assert counts["k3d"] == 1 and counts["plotly"] == 0
    nb = _nb([_out({bs.WIDGET_MIME: widget, bs.PLOTLY_MIME: FIG, bs.K3D_MIME: snap, "text/plain": "k3d"})])
    assert bs.convert_outputs(nb)["plotly"] == 1  # nowhere to put the snapshot: the plotly fallback
    assert "SETUP_CELL" not in bs.SETUP_CELL and bs.K3D_MIME in bs.SETUP_CELL


def test_progress_bar_shows_its_final_state():
    states = {
        "box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_a", "IPY_MODEL_b", "IPY_MODEL_c"]}},
        "a": {"model_name": "HTMLModel", "state": {"value": "epoch 3/3: 100%"}},
        "b": {"model_name": "FloatProgressModel", "state": {"value": 8, "max": 8}},
        "c": {"model_name": "HTMLModel", "state": {"value": " 8/8 [00:01&lt;00:00, 6.1it/s, loss=0.02]"}},
    }
    nb = _nb([_out({bs.WIDGET_MIME: {"model_id": "box"}, "text/plain": "epoch 3/3:   0%|          | 0/8"})],
             widgets=states)
    counts = bs.convert_outputs(nb)
    text = nb.cells[0].outputs[0]["data"]["text/plain"]
    assert counts["progress"] == 1
    assert text.startswith("epoch 3/3: 100% [8/8]") and "loss=0.02" in text and "<00:00" in text


def test_progress_bar_without_state_is_dropped():
    nb = _nb([_out({bs.WIDGET_MIME: {"model_id": "gone"}, "text/plain": "epoch 1/3:   0%|          | 0/8"})])
    assert bs.convert_outputs(nb)["dropped"] == 1 and nb.cells[0].outputs == []


def test_staged_pages(tmp_path):
    """A lab is staged from labs/ with no output (its solution is not on the page); an executed page gets its
    banner right under its title."""
    lab = bs.Page("lab", "labs/00_welcome_lab.ipynb")
    bs.stage_notebook(lab, None, tmp_path)
    staged = nbformat.read(tmp_path / "labs" / "00_welcome_lab.ipynb", as_version=4)
    source = nbformat.read(ROOT / lab.source, as_version=4)
    code = [c.source for c in staged.cells if c.cell_type == "code"]
    assert code == [c.source for c in source.cells if c.cell_type == "code"]
    assert all(not c.outputs for c in staged.cells if c.cell_type == "code")
    assert staged.cells[0].source.startswith("# ") and "not executed" in staged.cells[1].source

    executed = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 03 · Voxels\n\nIntro text."),
        nbformat.v4.new_code_cell("1", outputs=[_out({bs.PLOTLY_MIME: FIG, "text/plain": "f"})])])
    path = tmp_path / "in" / "03_voxels.ipynb"
    path.parent.mkdir()
    nbformat.write(executed, path)
    page = bs.Page("lecture", "lectures/03_voxels.ipynb")
    info = bs.stage_notebook(page, bs.Executed(page, path, {"profile": "ci", "commit": "abc"}), tmp_path)
    staged = nbformat.read(tmp_path / "lectures" / "03_voxels.ipynb", as_version=4)
    assert [c.source.split("\n")[0] for c in staged.cells[:3]] == ["# 03 · Voxels", "```{note}", "Intro text."]
    assert "COURSE_PROFILE=ci" in staged.cells[1].source and "abc" in staged.cells[1].source
    assert info["plotly"] == 1 and info["profile"] == "ci" and info["kind"] == "lecture"


def test_scripts_from_the_network_are_dropped():
    nb = _nb([_out({"text/html": '<script src="https://cdn.example/x.js"></script>', "text/plain": "t"}),
              _out({"application/javascript": "require(['x'])"}),
              nbformat.v4.new_output("stream", name="stdout", text="hello\n")])
    counts = bs.convert_outputs(nb)
    outs = nb.cells[0].outputs
    assert counts["dropped"] == 2
    assert outs[0]["data"] == {"text/plain": "t"} and outs[1]["output_type"] == "stream"


def test_has_math():
    md = nbformat.v4.new_markdown_cell
    assert bs.has_math(nbformat.v4.new_notebook(cells=[md("the loss $L = x^2$")]))
    assert bs.has_math(nbformat.v4.new_notebook(cells=[md("$$\na\n$$ and \\begin{align}x\\end{align}")]))
    assert not bs.has_math(nbformat.v4.new_notebook(cells=[md("costs 5 $ and 6 dollars")]))


def test_chapter_map_from_readme():
    rows = bs.chapter_map((ROOT / "README.md").read_text())
    assert [r["chapter"] for r in rows] == [f"{i:02d}" for i in range(12)]
    assert all(r["mark"] and r["title"] and r["measures"] for r in rows)
    pages = bs.page_list(ROOT)
    index = bs.index_markdown(rows, pages)
    assert "(<lectures/03_voxels.ipynb>)" in index and "(<labs/03_voxels_lab.ipynb>)" in index
    assert "solutions/index" in index.split("For instructors", 1)[1]  # solutions only in their own section
    assert "solutions/03" not in index


def test_results_index_from_json_and_markdown(tmp_path):
    (tmp_path / "voxels-laptop.json").write_text(json.dumps({
        "provenance": {"date": "2026-12-06 09:06 UTC", "commit": "745e0b8", "machine": "cpu2", "protocol": 2},
        "data": {"goals": [{"id": "ae_iou", "met": True}, {"id": "svr_iou", "met": False}]}}))
    (tmp_path / "voxels-laptop-cpu2.md").write_text("# voxels (laptop profile)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    (tmp_path / "ops-laptop-cpu.md").write_text("no heading\n")
    (tmp_path / "broken-laptop.json").write_text("{")
    rows = bs.results_rows(tmp_path)
    vox = next(r for r in rows if r["name"] == "voxels")
    assert vox["profile"] == "laptop" and vox["met"] == 1 and vox["goals"] == 2 and vox["missed"] == ["svr_iou"]
    assert vox["pages"] == ["voxels-laptop-cpu2.md"]
    assert any(r["pages"] == ["ops-laptop-cpu.md"] for r in rows)  # a table without its JSON still gets a page
    text = bs.results_markdown(rows)
    assert "| voxels | laptop | 2 | 2026-12-06 09:06 UTC | `745e0b8` | 1 / 2 | svr_iou |" in text
    assert "(<voxels-laptop-cpu2.md>)" in text
    assert bs.results_page("no heading\n").startswith("# ")
    real = bs.results_rows(ROOT / "benchmarks" / "results")
    assert {Path(m).name for r in real for m in r["pages"]} == {p.name for p in (ROOT / "benchmarks" / "results")
                                                                 .glob("*.md")}


def test_profiles_from_checkpoints(tmp_path):
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    (ck / "ch03_voxnet-laptop-0123456789ab.pt").write_bytes(b"")
    (ck / "ch05_psg-ci-0123456789ab.pt").write_bytes(b"")
    lec = lambda nn: bs.Page("lecture", f"lectures/{nn}_x.ipynb")  # noqa: E731
    assert bs.profiles_to_try(lec("03"), "auto", ck) == ["laptop", "ci"]
    assert bs.profiles_to_try(lec("05"), "auto", ck) == ["ci"]  # only ci checkpoints
    assert bs.profiles_to_try(lec("11"), "auto", ck) == ["laptop", "ci"]  # chapter 11 reads every chapter's
    assert bs.profiles_to_try(lec("05"), "laptop", ck) == ["laptop"]
    assert bs.profiles_to_try(lec("03"), "auto", tmp_path / "none") == ["ci"]


def test_external_assets_are_found(tmp_path):
    (tmp_path / "a.html").write_text('<script src="https://cdn.x/y.js"></script><link href="_static/s.css">'
                                     '<a href="https://example.org">ok: a link, not an asset</a>')
    assert bs.external_assets(tmp_path) == ["a.html: https://cdn.x/y.js"]


def test_sphinx_configuration_loads():
    if importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("myst_nb") is None:
        pytest.skip("sphinx/myst-nb not installed: pip install -e '.[dev,site]' -c constraints.txt")
    ns: dict = {"__file__": str(ROOT / "site" / "conf.py")}
    exec(compile((ROOT / "site" / "conf.py").read_text(), "conf.py", "exec"), ns)  # noqa: S102
    assert ns["nb_execution_mode"] == "off" and ns["mathjax_path"].startswith("mathjax/")
    assert Path(ns["html_static_path"][1]).name == "plotly.min.js" and Path(ns["html_static_path"][1]).exists()


def test_a_failed_laptop_run_falls_back_to_ci(tmp_path, monkeypatch):
    """--profile auto: laptop (checkpoints only) first; when it fails, ci, and the page says why; the failure is
    remembered so that the next build does not try laptop again for the same notebook content."""
    calls = []

    def fake_execute(path, profile, timeout, threads):
        calls.append(profile)
        if profile == "laptop":
            raise RuntimeError("a model is missing: ch03_voxnet (COURSE_CHECKPOINTS_ONLY=1)")
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t")]), 1.5

    monkeypatch.setattr(bs, "EXECUTED", tmp_path / "executed")
    monkeypatch.setattr(bs, "execute", fake_execute)
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    (ck / "ch00_x-laptop-0123456789ab.pt").write_bytes(b"")
    page = bs.Page("lecture", "lectures/00_welcome.ipynb")
    ex = bs.execute_page(page, "auto", ck, 60, 1, False, "abc1234")
    assert calls == ["laptop", "ci"] and ex.error is None
    assert ex.meta["profile"] == "ci" and ex.meta["commit"] == "abc1234"
    assert "laptop" in ex.meta["note"] and "a model is missing" in ex.meta["note"]
    assert ex.path.name == bs.cache_key(bs.ROOT / page.source, "ci") + ".ipynb"
    again = bs.execute_page(page, "auto", ck, 60, 1, False, "abc1234")
    assert calls == ["laptop", "ci"] and again.meta.get("cached")  # nothing executed the second time
