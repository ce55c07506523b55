"""Sphinx configuration of the course website (built by ``python tools/build_site.py``).

The sources are staged by ``tools/build_site.py`` into ``.cache/site/src`` (executed notebooks with static
outputs, the landing page, the results); this folder holds the configuration, the templates and the static
files.  Everything a page loads is served from the site itself (MathJax 3.2.2 from the files of the
``sphinx-mathjax-offline`` wheel, plotly.js from the ``plotly`` package): the site works without network access.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import plotly

HERE = Path(__file__).resolve().parent

project = "Deep learning for 3D surface generation"
author = "the course authors"
copyright = "the course authors, MIT licence"  # noqa: A001 - Sphinx's name

extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "manifest.json", "_k3d"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

# --- notebooks: executed beforehand by tools/build_site.py (or taken from --executed DIR), never here
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # widgets become static figures at staging: no widget manager from a CDN
nb_merge_streams = True
nb_output_stderr = "show"
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "misc.highlighting_failure"]

# --- math: MathJax 3 from the site's own files (copied from the sphinx-mathjax-offline wheel, see below)
mathjax_path = "mathjax/tex-chtml.js"

# --- look
html_theme = "sphinx_book_theme"
html_title = "3D surface generation: a course"
html_static_path = ["_static", str(Path(plotly.__file__).parent / "package_data" / "plotly.min.js")]
html_css_files = ["course.css"]
html_favicon = "_static/favicon.svg"
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navigation_with_keys": False,
    "home_page_in_toc": True,
}
html_context = {"default_mode": "light"}  # an explicit mode: the theme logs an error on an empty one
html_last_updated_fmt = None
html_copy_source = False
html_use_index = False  # no API here: the general index would be an empty page
html_show_sourcelink = False


def _plotly_only_where_needed(app, pagename, templatename, context, doctree):
    """Load plotly.js (4.7 MB) on the pages that draw a plotly figure, and only there."""
    body = context.get("body") or ""
    if "course-plotly" in body:
        app.add_js_file("plotly.min.js", priority=400)
        app.add_js_file("course.js", priority=410)


def _mathjax_files() -> Path:
    """MathJax 3's browser files, as shipped by the ``sphinx-mathjax-offline`` wheel (its package name has
    hyphens, so it is found, not imported; used as a file source only, not as a Sphinx extension: it does not
    declare itself safe for parallel builds)."""
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("MathJax files not found: pip install -e '.[dev,site]' -c constraints.txt")
    return Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax"


def _copy_mathjax(app, exc):
    """Copy what the pages load into ``_static/mathjax``: ``tex-chtml.js`` and the folders it loads on demand
    (TeX extensions, fonts, the menu, accessibility); not the other builds nor the speech rules (20 MB)."""
    if exc is not None:
        return
    src, dest = _mathjax_files(), Path(app.outdir) / "_static" / "mathjax"
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "tex-chtml.js", dest / "tex-chtml.js")
    for sub in ("input", "output/chtml", "ui", "a11y", "adaptors"):
        if (src / sub).is_dir():
            shutil.copytree(src / sub, dest / sub, dirs_exist_ok=True)


def _copy_k3d(app, exc):
    """k3d snapshots (standalone pages that the notebook pages show in iframes) staged in ``_k3d/``."""
    src = Path(app.srcdir) / "_k3d"
    if exc is None and src.is_dir():
        shutil.copytree(src, Path(app.outdir) / "_k3d", dirs_exist_ok=True)


def setup(app):
    app.connect("html-page-context", _plotly_only_where_needed)
    _mathjax_files()  # fail early, with the install command, when the wheel is missing
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _copy_k3d)
    return {"parallel_read_safe": True}


if os.environ.get("COURSE_SITE_NITPICKY"):
    nitpicky = True
