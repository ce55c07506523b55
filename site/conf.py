"""Sphinx configuration of the course website (built by ``python tools/build_site.py``).

The sources are staged by ``tools/build_site.py`` into ``.cache/site/src`` (executed notebooks with static
outputs, the landing page, the results); this folder holds the configuration, the templates and the static
files.  Everything a page loads is served from the site itself (MathJax 3 from the ``sphinx-mathjax-offline``
wheel, plotly.js from the ``plotly`` package): the site works without network access.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import plotly

HERE = Path(__file__).resolve().parent

project = "Deep learning for 3D surface generation"
author = "the course authors"
copyright = "the course authors, MIT licence"  # noqa: A001 - Sphinx's name

extensions = ["myst_nb", "sphinx-mathjax-offline"]  # the wheel's module name has hyphens
exclude_patterns = ["_build", "**.ipynb_checkpoints", "manifest.json"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

# --- notebooks: executed beforehand by tools/build_site.py (or taken from --executed DIR), never here
nb_execution_mode = "off"
nb_ipywidgets_js = {}  # widgets become static figures at staging: no widget manager from a CDN
nb_merge_streams = True
nb_output_stderr = "show"
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "misc.highlighting_failure"]

# --- math: MathJax 3 from the site's own files (sphinx-mathjax-offline copies them to _static/mathjax)
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
html_show_sourcelink = False


def _plotly_only_where_needed(app, pagename, templatename, context, doctree):
    """Load plotly.js (4.7 MB) on the pages that draw a plotly figure, and only there."""
    body = context.get("body") or ""
    if "course-plotly" in body:
        app.add_js_file("plotly.min.js", priority=400)
        app.add_js_file("course.js", priority=410)


def _trim_mathjax(app, exc):
    """sphinx-mathjax-offline copies every MathJax build; the pages load ``tex-chtml.js`` and its fonts and
    extensions only: drop the other builds (about 20 MB) from the site."""
    if exc is not None:
        return
    mj = Path(app.outdir) / "_static" / "mathjax"
    if not mj.is_dir():
        return
    for f in mj.glob("*.js"):
        if f.name != "tex-chtml.js":
            f.unlink()
    for d in ("sre", "output/svg"):
        shutil.rmtree(mj / d, ignore_errors=True)


def setup(app):
    app.connect("html-page-context", _plotly_only_where_needed)
    app.connect("build-finished", _trim_mathjax, priority=900)
    return {"parallel_read_safe": True}


if os.environ.get("COURSE_SITE_NITPICKY"):
    nitpicky = True
