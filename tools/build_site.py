#!/usr/bin/env python3
"""Build the course as a static website: ``python tools/build_site.py``.

The site is a Sphinx project (``site/conf.py``, MyST-NB renders the notebooks, sphinx-book-theme lays them out,
Sphinx's own search, MathJax 3 and plotly.js served from the site's files: it works offline).  This script

1. executes every lecture and lab solution with nbclient, one kernel per notebook (``--jobs`` at once), under a
   profile chosen per notebook: ``--profile auto`` (the default) runs a chapter under ``laptop`` with
   ``COURSE_CHECKPOINTS_ONLY=1`` when the checkpoint cache holds laptop checkpoints of that chapter (chapter 11:
   of any chapter), and falls back to ``ci`` when that run fails (a model still to train); every other notebook
   runs under ``ci``.  ``--profile ci`` (``laptop``, ``gpu``) forces one profile.  An executed notebook is cached
   under ``.cache/site/executed/`` by its content hash and profile, so a rebuild executes only what changed
   (``--force`` executes again: after a library change, or a change of this script's setup cell).  ``--executed DIR`` executes nothing: it takes the executed notebooks from
   ``DIR`` (same file names; a copy of the ``lectures/`` and ``solutions/`` layout, or all in one folder);
2. turns outputs into what a static page can show: plotly figures stay interactive (plotly.js from the site),
   a widget becomes the static figure of its initial state (the bundle that ``course_lib.viz.interact`` ships
   beside it) with a note that the notebook makes it live, a k3d scene its k3d snapshot in an iframe (recorded
   by a setup cell that this script's executions add, and remove, at the top of each notebook; notebooks
   executed elsewhere, ``--executed``, keep the plotly fallback that ``course_lib.viz.k3d_points`` ships), a
   progress bar the text of its final state; nothing loads from a CDN;
3. writes the Sphinx sources under ``.cache/site/src/``: a landing page with the chapter map (from README's
   chapter table), one page per lecture (with a banner naming the profile and commit that produced it), the
   labs as students get them (not executed: exercises without their solutions), the solutions (executed) in a
   separate "For instructors" section, and ``benchmarks/results/`` (an index of every result with its goals,
   and each results file as a page);
4. runs ``sphinx-build`` into ``site/_build/html`` (``--out``) and checks that no page refers to an asset on the
   network.

Open ``site/_build/html/index.html`` in a browser, or serve it: ``python -m http.server -d site/_build/html``.

Options: ``--only 03 05`` builds the pages of these chapters only (the landing page and results always);
``--jobs N`` notebooks executed at once (default: half the cores, at least 1; also Sphinx's processes);
``--timeout S`` per cell; ``--no-build`` stops after staging; ``--strict`` fails on a Sphinx warning.  Needs the ``site`` extra: ``pip install -e ".[dev,site]" -c constraints.txt``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as _dt
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "site"
CACHE = ROOT / ".cache" / "site"
EXECUTED = CACHE / "executed"
STAGE = CACHE / "src"
OUT = SITE / "_build" / "html"
PROFILES = ("ci", "laptop", "gpu")

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
PLOTLY_MIME = "application/vnd.plotly.v1+json"

K3D_MIME = "application/vnd.course-site.k3d-snapshot+html"
"""An extra output type that the build's own executions add to every displayed k3d plot: k3d's standalone
snapshot (an HTML page with k3d's JavaScript inside, no network), shown on the site in an iframe."""

SETUP_CELL = f"""\
def _course_site_setup():  # added by tools/build_site.py for the run, removed from the page
    from IPython import get_ipython
    from IPython.core.formatters import BaseFormatter
    from traitlets import ObjectName, Unicode

    class K3DSnapshot(BaseFormatter):
        format_type = Unicode("{K3D_MIME}")
        print_method = ObjectName("_repr_k3d_snapshot_")

    fmt = get_ipython().display_formatter
    snap = K3DSnapshot(parent=fmt)
    snap.for_type_by_name("k3d.plot", "Plot", lambda plot: plot.get_snapshot(compression_level=6))
    fmt.formatters[snap.format_type] = snap


_course_site_setup()
del _course_site_setup
"""

KINDS = {
    "lecture": ("lectures", "Lectures"),
    "lab": ("labs", "Labs"),
    "solution": ("solutions", "For instructors: lab solutions"),
}


# --------------------------------------------------------------------------------------------------
# pages


@dataclass(frozen=True)
class Page:
    """One notebook page: ``kind`` is ``lecture``, ``lab`` (shown unexecuted) or ``solution`` (executed)."""

    kind: str
    source: str  # path relative to the repository, e.g. "lectures/00_welcome.ipynb"

    @property
    def name(self) -> str:
        return Path(self.source).name

    @property
    def chapter(self) -> str:
        return self.name[:2]

    @property
    def docname(self) -> str:
        """The page's path in the site, without suffix (``lectures/00_welcome``)."""
        return f"{KINDS[self.kind][0]}/{Path(self.source).stem}"

    @property
    def executed(self) -> bool:
        return self.kind != "lab"


def page_list(root: Path = ROOT, only: list[str] | None = None) -> list[Page]:
    """Every notebook page of the site: lectures, labs and solutions, in chapter order (``only``: chapters)."""
    pages = []
    for kind, (folder, _) in KINDS.items():
        for p in sorted((root / folder).glob("*.ipynb")):
            page = Page(kind, f"{folder}/{p.name}")
            if not only or page.chapter in only:
                pages.append(page)
    return pages


def notebook_hash(path: Path) -> str:
    """The sha256 of a notebook's bytes (committed notebooks carry no outputs, so this is their content)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_key(path: Path, profile: str) -> str:
    """The executed-notebook cache's file stem: ``<notebook stem>-<profile>-<first 16 hex of its hash>``."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    return f"{path.stem}-{profile}-{notebook_hash(path)[:16]}"


def git_commit(root: Path = ROOT, paths: list[str] | None = None) -> str:
    """The short commit of ``root``'s HEAD, with ``+dirty`` when ``paths`` (default: the notebooks and the
    library) differ from it; ``unknown`` outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *(paths or ["course_lib", "lectures",
                                                                                 "solutions", "labs"])],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


# --------------------------------------------------------------------------------------------------
# banners


def banner(page: Page, meta: dict[str, Any] | None = None) -> str:
    """The markdown note at the top of a page: for an executed page, the profile, commit and date that
    produced its outputs; for a lab, that it is shown without its solutions and not executed."""
    if page.kind == "lab":
        return (f"```{{note}}\nThis is the lab as students get it (`{page.source}`): the exercises without their "
                "solutions, **not executed** here. Run it in Jupyter (`jupyter lab`), fill in each exercise and "
                "run its self-check. Worked solutions are in the separate *For instructors* section.\n```\n")
    meta = meta or {}
    profile = meta.get("profile", "?")
    commit = meta.get("commit", "unknown")
    when = meta.get("date", "?")
    secs = meta.get("seconds")
    took = f" in {secs:.0f} s" if isinstance(secs, (int, float)) else ""
    source = meta.get("source", "executed by `python tools/build_site.py`")
    lines = [f"Outputs produced with **`COURSE_PROFILE={profile}`** at commit **`{commit}`** on {when}{took} "
             f"({source}), from `{page.source}`."]
    if profile == "ci":
        lines.append("The `ci` profile makes every size tiny so the notebook runs in seconds: its numbers and "
                     "figures show the code working, not results. Measured results are in *Results*.")
    if meta.get("note"):
        lines.append(meta["note"])
    lines.append("Interactive widgets appear here as the static figure of their initial state; run the "
                 "notebook in Jupyter to make them live.")
    kind = "important" if page.kind == "solution" else "note"
    head = "For instructors: worked solution. " if page.kind == "solution" else ""
    return f"```{{{kind}}}\n{head}" + "\n\n".join(lines) + "\n```\n"


# --------------------------------------------------------------------------------------------------
# outputs: what a static page can show


_PROGRESS = re.compile(r"\d+%\|")


def _widget_states(nb: Any) -> dict[str, Any]:
    w = (nb.get("metadata") or {}).get("widgets") or {}
    return (w.get(WIDGET_STATE_MIME) or {}).get("state") or {}


def _progress_text(states: dict[str, Any], model_id: str) -> str | None:
    """The final text of a tqdm widget (an HBox of HTML, progress, HTML) from the saved widget state."""
    box = (states.get(model_id) or {}).get("state") or {}
    children = box.get("children") or []
    parts = []
    for ref in children:
        mid = ref.removeprefix("IPY_MODEL_") if isinstance(ref, str) else ""
        st = (states.get(mid) or {}).get("state") or {}
        model = (states.get(mid) or {}).get("model_name", "")
        if model == "HTMLModel":
            parts.append(html.unescape(re.sub(r"<[^>]+>", "", str(st.get("value", "")))).strip())
        elif "Progress" in model:
            value, top = st.get("value", 0), st.get("max", 0)
            parts.append(f"[{value:g}/{top:g}]" if isinstance(value, (int, float)) and isinstance(top, (int, float))
                         else "")
    text = " ".join(p for p in parts if p)
    return text or None


def plotly_html(fig: dict[str, Any], div_id: str) -> str:
    """A plotly figure as an HTML fragment for the page's own plotly.js (no CDN): an empty ``div`` of the
    figure's height and the figure's JSON beside it; ``site/_static/course.js`` draws it when it comes near the
    viewport (and frees a 3D figure's WebGL context when it is far from it: Chromium keeps 16 at most)."""
    layout = fig.get("layout") or {}
    height = layout.get("height") if isinstance(layout.get("height"), (int, float)) else 450
    import plotly.io as pio

    # plotly's encoder writes NaN and infinities as null, which JSON.parse accepts
    payload = pio.to_json({"data": fig.get("data") or [], "layout": layout}, validate=False,
                          pretty=False).replace("</", "<\\/")
    return (f'<div id="{div_id}" class="plotly-graph-div course-plotly" style="height:{height:.0f}px; '
            f'width:100%;"></div>\n<script type="application/json" id="{div_id}-json">{payload}</script>\n')


def _note(text: str) -> str:
    return f'<p class="course-widget-note"><em>{html.escape(text)}</em></p>'


def k3d_iframe(src: str) -> str:
    return (f'<iframe class="course-k3d" src="{src}" title="k3d scene" '
            'style="width:100%; height:480px; border:0;"></iframe>')


def convert_outputs(nb: Any, prefix: str = "fig", assets: dict[str, str] | None = None,
                    asset_url: str = "_k3d/") -> dict[str, int]:
    """Rewrite ``nb``'s outputs (in place) into bundles a static page shows without a kernel or a CDN.

    * a plotly bundle becomes HTML drawn by the page's plotly.js (interactive: zoom, rotate, hover);
    * a widget (``course_lib.viz.interact``) keeps the static figure of its initial state that it ships beside
      the widget, with a note that the notebook makes it live;
    * a k3d scene becomes its k3d snapshot in an iframe (``assets`` receives ``name -> html``, the iframe points
      to ``asset_url + name``) when the build's own execution recorded one (:data:`K3D_MIME`), else it keeps
      the plotly fallback that ``course_lib.viz.k3d_points`` ships beside it;
    * a progress-bar widget becomes the text of its final state; a widget with nothing static, a note;
    * JavaScript outputs and HTML that loads scripts from the network are dropped.

    Returns counts: ``plotly``, ``widgets``, ``k3d``, ``progress``, ``dropped``.
    """
    states = _widget_states(nb)
    counts = {"plotly": 0, "widgets": 0, "k3d": 0, "progress": 0, "dropped": 0}
    n = 0
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            if out.get("output_type") not in ("display_data", "execute_result"):
                outputs.append(out)
                continue
            data = dict(out.get("data") or {})
            widget = data.pop(WIDGET_MIME, None)
            data.pop("application/javascript", None)
            plain = str(data.get("text/plain", ""))
            snapshot = data.pop(K3D_MIME, None)
            if snapshot is not None and assets is not None:
                name = hashlib.sha256(str(snapshot).encode()).hexdigest()[:16] + ".html"
                assets[name] = str(snapshot)
                counts["k3d"] += 1
                data = {"text/html": k3d_iframe(asset_url + name) + _note(
                    "A k3d scene (drag to rotate, scroll to zoom): the notebook's live view, saved as a static "
                    "snapshot."), "text/plain": plain}
            elif PLOTLY_MIME in data:
                n += 1
                fig = data[PLOTLY_MIME]
                new = {"text/html": plotly_html(fig, f"{prefix}-{n}"), "text/plain": plain or "<plotly figure>"}
                counts["plotly"] += 1
                if widget is not None:
                    if "k3d" in plain:
                        counts["k3d"] += 1
                        new["text/html"] += _note("In the notebook this is a k3d scene (WebGL, every point); "
                                                  "here, its plotly fallback.")
                    else:
                        counts["widgets"] += 1
                        new["text/html"] += _note("In the notebook this figure has live controls (a widget); "
                                                  "here, the figure of their initial values.")
                data = new
            elif widget is not None:
                progress = bool(_PROGRESS.search(plain) or "%|" in plain)
                text = _progress_text(states, widget.get("model_id", "")) if progress else None
                if text is not None:
                    counts["progress"] += 1
                    data = {"text/plain": text}
                elif progress:  # no saved widget state (nbval does not keep it): its text is the start, 0%
                    counts["dropped"] += 1
                    continue
                elif any(k.startswith("image/") for k in data) or (
                        "text/html" in data and "<script" not in str(data["text/html"])):
                    counts["widgets"] += 1
                    data = {k: v for k, v in data.items() if k != "text/plain"} | {"text/plain": plain}
                else:
                    counts["widgets"] += 1
                    data = {"text/html": _note("A widget: run the notebook in Jupyter to use it."),
                            "text/plain": plain}
            elif "text/html" in data and re.search(r"<script[^>]+src=[\"']?(https?:)?//", str(data["text/html"])):
                counts["dropped"] += 1
                data.pop("text/html")
                if not data:
                    continue
            if not data:
                counts["dropped"] += 1
                continue
            out["data"] = data
            outputs.append(out)
        cell["outputs"] = outputs
    meta = nb.get("metadata") or {}
    meta.pop("widgets", None)
    return counts


def has_math(nb: Any) -> bool:
    """Whether a notebook's markdown has TeX math (``$...$``, ``$$...$$`` or an environment)."""
    for c in nb.get("cells", []):
        if c.get("cell_type") == "markdown" and re.search(r"\$[^$\n]+\$|\\begin\{", c.get("source", "")):
            return True
    return False


# --------------------------------------------------------------------------------------------------
# landing page and results


def chapter_map(readme: str) -> list[dict[str, str]]:
    """The chapter table of README: one ``{mark, chapter, title, measures}`` per chapter row."""
    rows = []
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not re.match(r"^\d\d ", cells[1]):
            continue
        mark, text = cells[0], cells[1]
        chapter = text[:2]
        rest = text[3:]
        title, _, measures = rest.partition(":")
        rows.append({"mark": mark, "chapter": chapter, "title": title.strip(), "measures": measures.strip()})
    return rows


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def index_markdown(rows: list[dict[str, str]], pages: list[Page]) -> str:
    """The landing page: what the course is, the chapter map with links, and the site's sections."""
    by = {(p.kind, p.chapter): p for p in pages}
    out = ["# Deep learning for 3D surface generation", "",
           "A hands-on course on how deep networks **generate 3D surfaces**: from images, depth maps and point "
           "clouds to voxels, octrees, point sets, deformed surfaces, implicit fields, primitives and gradient "
           "fields. Every chapter has a lecture and a lab; every method is implemented in the library "
           "`course_lib` and every measured claim follows one protocol (lecture 00 explains it).", "",
           "This site shows the notebooks with their outputs. Each executed page says which profile and commit "
           "produced it; the interactive widgets of the notebooks appear as the figure of their initial state "
           "(run the notebooks in Jupyter to use them).", "",
           "## Chapter map", "",
           "Mark: ✅ measured under protocol 2, every goal met · 🟡 some goals missed · 🔶 not yet measured "
           "under protocol 2 (see *Results*).", "",
           "| | chapter | what it measures | lecture | lab |", "|---|---|---|---|---|"]
    for r in rows:
        lec, lab = by.get(("lecture", r["chapter"])), by.get(("lab", r["chapter"]))
        link = (lambda p, t: f"[{t}](<{p.docname}.ipynb>)" if p else "")  # noqa: E731
        out.append(f"| {r['mark']} | {r['chapter']} {_md_cell(r['title'])} | {_md_cell(r['measures'])} | "
                   f"{link(lec, 'lecture')} | {link(lab, 'lab')} |")
    out += ["", "```{toctree}", ":maxdepth: 1", ":caption: Course", "", "lectures/index", "labs/index",
            "results/index", "```", "", "```{toctree}", ":maxdepth: 1", ":caption: For instructors", "",
            "solutions/index", "```", ""]
    return "\n".join(out)


def section_markdown(kind: str, pages: list[Page]) -> str:
    folder, heading = KINDS[kind]
    intro = {
        "lecture": "One page per lecture, executed, with its figures, math, code and outputs.",
        "lab": "The labs as students get them: exercises and self-checks, without the solutions and not "
               "executed. Open them in Jupyter to work on them.",
        "solution": "**For instructors.** The labs with their exercises solved, executed. Students work from the "
                    "labs; these pages give the answers away.",
    }[kind]
    mine = [p for p in pages if p.kind == kind]
    out = [f"# {heading}", "", intro, "", "```{toctree}", ":maxdepth: 1", ""]
    out += [Path(p.docname).name for p in mine]
    out += ["```", ""]
    return "\n".join(out)


def results_rows(results_dir: Path) -> list[dict[str, Any]]:
    """One row per ``benchmarks/results/<name>-<profile>.json``: provenance, goals met, the markdown pages."""
    rows = []
    mds = sorted(p.name for p in results_dir.glob("*.md"))
    for path in sorted(results_dir.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        prov = doc.get("provenance") or {}
        data = doc.get("data") or {}
        goals = data.get("goals") if isinstance(data.get("goals"), list) else []
        stem = path.stem
        name, _, profile = stem.rpartition("-")
        pages = [m for m in mds if m == f"{stem}.md" or m.startswith(f"{stem}-")]
        rows.append({"name": name or stem, "profile": profile, "date": prov.get("date", ""),
                     "commit": prov.get("commit", ""), "machine": prov.get("machine", ""),
                     "protocol": prov.get("protocol", ""), "goals": len(goals),
                     "met": sum(1 for g in goals if g.get("met")),
                     "missed": [str(g.get("id")) for g in goals if not g.get("met")], "pages": pages})
    covered = {m for r in rows for m in r["pages"]}
    for m in mds:
        if m not in covered:
            rows.append({"name": Path(m).stem, "profile": "", "date": "", "commit": "", "machine": "",
                         "protocol": "", "goals": 0, "met": 0, "missed": [], "pages": [m]})
    return rows


def results_markdown(rows: list[dict[str, Any]]) -> str:
    """The results index: every benchmark result with its provenance and goals, linking to its tables."""
    out = ["# Results", "",
           "Every measured result of the course, as written by `benchmarks/*.py` into `benchmarks/results/` "
           "(the tables, with the command, commit, date and machine that produced them). Goals: met / recorded; "
           "the missed goals are named.", "",
           "| result | profile | protocol | date | commit | goals met | missed | tables |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        goals = f"{r['met']} / {r['goals']}" if r["goals"] else "–"
        tables = ", ".join(f"[{Path(m).stem}](<{Path(m).stem}.md>)" for m in r["pages"]) or "–"
        out.append(f"| {_md_cell(r['name'])} | {r['profile']} | {r['protocol']} | {r['date']} | "
                   f"`{r['commit']}` | {goals} | {_md_cell(', '.join(r['missed'])) or '–'} | {tables} |"
                   if r["commit"] else
                   f"| {_md_cell(r['name'])} | {r['profile']} | {r['protocol']} | {r['date']} | – | {goals} | "
                   f"{_md_cell(', '.join(r['missed'])) or '–'} | {tables} |")
    pages = sorted({m for r in rows for m in r["pages"]})
    out += ["", "```{toctree}", ":hidden:", ""] + [Path(m).stem for m in pages] + ["```", ""]
    return "\n".join(out)


def results_page(text: str) -> str:
    """A results markdown file as a site page: MyST-safe (no raw HTML, headings start at level one)."""
    if not text.lstrip().startswith("# "):
        text = "# Results\n\n" + text
    return text


# --------------------------------------------------------------------------------------------------
# execution


def laptop_checkpoints(chapter: str, checkpoint_dir: Path) -> bool:
    """Whether ``checkpoint_dir`` holds laptop checkpoints for ``chapter`` (chapter 11: for any chapter)."""
    if not checkpoint_dir.is_dir():
        return False
    pattern = "ch*-laptop-*.pt" if chapter == "11" else f"ch{chapter}_*-laptop-*.pt"
    return any(checkpoint_dir.glob(pattern))


def checkpoint_dir() -> Path:
    try:
        from course_lib import config

        return Path(config.cache_dir()) / "checkpoints"
    except Exception:  # noqa: BLE001 - without the library, no checkpoints
        return Path(os.environ.get("COURSE_DATA_DIR", Path.home() / ".cache" / "course_lib")) / "checkpoints"


def profiles_to_try(page: Page, profile: str, ckpt: Path) -> list[str]:
    """The profiles to execute ``page`` under, in order (the first that runs through wins)."""
    if profile != "auto":
        return [profile]
    return ["laptop", "ci"] if laptop_checkpoints(page.chapter, ckpt) else ["ci"]


def execute(path: Path, profile: str, timeout: int, threads: int) -> tuple[Any, float]:
    """Execute the notebook at ``path`` in its folder under ``profile`` (nbclient, one kernel); raise on error."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, COURSE_PROFILE=profile, MPLBACKEND="Agg", PYTHONHASHSEED="0",
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if profile == "laptop":
        env["COURSE_CHECKPOINTS_ONLY"] = "1"
    nb.cells.insert(0, nbformat.v4.new_code_cell(SETUP_CELL))
    t0 = time.perf_counter()
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute(env=env)
    finally:
        secs = time.perf_counter() - t0
        nb.cells.pop(0)
        for c in nb.cells:
            if c.cell_type == "code" and isinstance(c.get("execution_count"), int):
                c.execution_count -= 1
                for o in c.outputs:
                    if isinstance(o.get("execution_count"), int):
                        o.execution_count -= 1
    return nb, secs


@dataclass
class Executed:
    page: Page
    path: Path | None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def execute_page(page: Page, profile: str, ckpt: Path, timeout: int, threads: int, force: bool,
                 commit: str) -> Executed:
    """The executed notebook of ``page`` from the cache, or executed now (and cached)."""
    import nbformat

    src = ROOT / page.source
    EXECUTED.mkdir(parents=True, exist_ok=True)
    notes = []
    for prof in profiles_to_try(page, profile, ckpt):
        key = cache_key(src, prof)
        cached, failed = EXECUTED / f"{key}.ipynb", EXECUTED / f"{key}.failed"
        if not force and cached.exists():
            meta = nbformat.read(cached, as_version=4).metadata.get("course_site", {})
            return Executed(page, cached, dict(meta, cached=True))
        if not force and failed.exists() and prof != "ci":
            notes.append(f"`{prof}` failed before: {failed.read_text()[:200]}")
            continue
        try:
            nb, secs = execute(src, prof, timeout, threads)
        except Exception as e:  # noqa: BLE001 - a failed profile falls back to the next one
            why = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"[:300]
            if prof != "ci":
                failed.write_text(why)
            notes.append(f"`{prof}` failed: {why}")
            continue
        failed.unlink(missing_ok=True)
        meta = {"profile": prof, "commit": commit, "date": _dt.datetime.now(_dt.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"), "seconds": round(secs, 1), "key": key,
            "source": "executed by `python tools/build_site.py`"}
        if notes:
            meta["note"] = "Profile fallback: " + "; ".join(notes) + "."
        nb.metadata["course_site"] = meta
        tmp = cached.with_suffix(".tmp")
        nbformat.write(nb, tmp)
        os.replace(tmp, cached)
        return Executed(page, cached, meta)
    return Executed(page, None, {}, error="; ".join(notes))


def from_executed_dir(page: Page, folder: Path, commit: str, profile: str) -> Executed:
    """``page``'s executed notebook from ``folder`` (as ``folder/<kind dir>/<name>`` or ``folder/<name>``)."""
    for cand in (folder / page.source, folder / page.name):
        if cand.exists():
            import nbformat

            nb = nbformat.read(cand, as_version=4)
            meta = dict(nb.metadata.get("course_site") or {})
            meta.setdefault("profile", profile)
            meta.setdefault("commit", commit)
            meta.setdefault("date", _dt.datetime.fromtimestamp(cand.stat().st_mtime, _dt.timezone.utc)
                            .strftime("%Y-%m-%d %H:%M UTC"))
            meta.setdefault("source", f"executed before the build, taken from `{folder.name}/`")
            return Executed(page, cand, meta)
    return Executed(page, None, {}, error=f"no executed notebook for {page.source} in {folder}")


# --------------------------------------------------------------------------------------------------
# staging and building


def stage_notebook(page: Page, ex: Executed | None, stage: Path) -> dict[str, Any]:
    """Write ``page``'s notebook into the Sphinx source tree with its banner and static outputs."""
    import nbformat

    if page.kind == "lab":
        nb = nbformat.read(ROOT / page.source, as_version=4)
        for c in nb.cells:
            if c.cell_type == "code":
                c.outputs, c.execution_count = [], None
        meta: dict[str, Any] = {}
    else:
        assert ex is not None and ex.path is not None
        nb = nbformat.read(ex.path, as_version=4)
        meta = ex.meta
    assets: dict[str, str] = {}
    up = "../" * page.docname.count("/")
    counts = convert_outputs(nb, prefix=f"fig-{Path(page.source).stem}", assets=assets, asset_url=f"{up}_k3d/")
    for name, text in assets.items():
        (stage / "_k3d").mkdir(parents=True, exist_ok=True)
        (stage / "_k3d" / name).write_text(text)
    # the banner goes after the title cell, so that the page keeps the notebook's title
    first = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                  and re.search(r"^# ", c.source, re.M)), None)
    cell = nbformat.v4.new_markdown_cell(banner(page, meta))
    if first is None:
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"# {Path(page.source).stem}"))
        first = 0
    title_cell = nb.cells[first]
    lines = title_cell.source.split("\n")
    head = next(i for i, line in enumerate(lines) if line.startswith("# "))
    if head + 1 < len(lines) and any(x.strip() for x in lines[head + 1:]):
        title_cell.source = "\n".join(lines[:head + 1])
        nb.cells.insert(first + 1, nbformat.v4.new_markdown_cell("\n".join(lines[head + 1:]).strip()))
    if first > 0:  # a note above the title (a lab's "generated" line): keep it, below the title
        above = nb.cells[:first]
        nb.cells = [title_cell, *above, *nb.cells[first + 1:]]
        first = 0
    nb.cells.insert(first + 1, cell)
    nb.metadata["course_site"] = dict(meta, kind=page.kind, counts=counts, math=has_math(nb))
    nb.metadata.pop("widgets", None)
    dest = stage / f"{page.docname}.ipynb"
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    return {"page": page.docname, "source": page.source, "kind": page.kind, **counts, "math": has_math(nb),
            "profile": meta.get("profile"), "commit": meta.get("commit")}


def write_stage(pages: list[Page], executed: dict[str, Executed], stage: Path) -> list[dict[str, Any]]:
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    manifest = []
    for page in pages:
        manifest.append(stage_notebook(page, executed.get(page.source), stage))
    for kind in KINDS:
        (stage / KINDS[kind][0]).mkdir(parents=True, exist_ok=True)
        (stage / KINDS[kind][0] / "index.md").write_text(section_markdown(kind, pages))
    (stage / "index.md").write_text(index_markdown(chapter_map((ROOT / "README.md").read_text()), pages))
    res = ROOT / "benchmarks" / "results"
    (stage / "results").mkdir(parents=True, exist_ok=True)
    rows = results_rows(res)
    (stage / "results" / "index.md").write_text(results_markdown(rows))
    for m in sorted({m for r in rows for m in r["pages"]}):
        (stage / "results" / m).write_text(results_page((res / m).read_text()))
    (stage / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def run_sphinx(stage: Path, out: Path, jobs: int = 1, quiet: bool = True, strict: bool = False) -> int:
    """``sphinx-build -b html`` of the staged sources with ``site/`` as the configuration folder."""
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(SITE), str(stage), str(out),
           "-d", str(CACHE / "doctrees"), "-j", str(max(1, jobs))]
    if strict:
        cmd += ["-W", "--keep-going"]
    if quiet:
        cmd.append("-q")
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


_EXTERNAL = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=[\"']((?:https?:)?//[^\"']+)", re.I)


def external_assets(out: Path) -> list[str]:
    """Every ``<script>``, ``<link>``, ``<img>`` or ``<iframe>`` of the built pages that loads from the network."""
    bad = []
    for page in sorted(out.rglob("*.html")):
        for m in _EXTERNAL.finditer(page.read_text(errors="replace")):
            bad.append(f"{page.relative_to(out)}: {m.group(1)[:120]}")
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--profile", default="auto", choices=("auto", *PROFILES),
                    help="auto: laptop from checkpoints where they exist, else ci (default)")
    ap.add_argument("--only", nargs="+", metavar="NN", help="chapters to build (e.g. --only 03 05)")
    ap.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                    help="notebooks executed at once")
    ap.add_argument("--executed", type=Path, metavar="DIR",
                    help="take executed notebooks from DIR (same file names); execute nothing. Their pages "
                         "name the profile given by --profile (auto: ci) and this checkout's commit, unless a "
                         "notebook carries its own (metadata course_site, as the cache's notebooks do)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    ap.add_argument("--force", action="store_true", help="execute again even when cached")
    ap.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT.relative_to(ROOT)})")
    ap.add_argument("--no-build", action="store_true", help="stage the Sphinx sources, do not run Sphinx")
    ap.add_argument("--strict", action="store_true", help="a Sphinx warning fails the build (for CI)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    only = [c.zfill(2) for c in args.only] if args.only else None
    pages = page_list(ROOT, only)
    if not pages:
        print(f"no notebooks for chapters {only}")
        return 2
    commit = git_commit(ROOT)
    runs = [p for p in pages if p.executed]
    executed: dict[str, Executed] = {}
    if args.executed:
        prof = args.profile if args.profile != "auto" else "ci"
        for p in runs:
            executed[p.source] = from_executed_dir(p, args.executed.resolve(), commit, prof)
    else:
        ckpt = checkpoint_dir()
        jobs = max(1, args.jobs)
        threads = max(1, (os.cpu_count() or 1) // jobs)
        print(f"executing {len(runs)} notebooks, {jobs} at a time, profile {args.profile} "
              f"(checkpoints: {ckpt})", flush=True)
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            futs = {pool.submit(execute_page, p, args.profile, ckpt, args.timeout, threads, args.force, commit): p
                    for p in runs}
            for f in concurrent.futures.as_completed(futs):
                ex = f.result()
                executed[ex.page.source] = ex
                m = ex.meta
                took = "(cached)" if m.get("cached") else f"{m.get('seconds')} s"
                state = f"FAILED: {ex.error}" if ex.error else f"{m.get('profile')} {took}"
                print(f"  {ex.page.source}: {state}", flush=True)
    failed = [e for e in executed.values() if e.error]
    for e in failed:
        print(f"ERROR {e.page.source}: {e.error}")
    if failed:
        return 1
    t_exec = time.perf_counter() - t0
    manifest = write_stage(pages, executed, STAGE)
    print(f"staged {len(manifest)} notebook pages into {STAGE.relative_to(ROOT)}", flush=True)
    if args.no_build:
        return 0
    out = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    t1 = time.perf_counter()
    rc = run_sphinx(STAGE, out, jobs=args.jobs, strict=args.strict)
    t_sphinx = time.perf_counter() - t1
    if rc:
        return rc
    shutil.copy2(STAGE / "manifest.json", out / "_manifest.json")
    bad = external_assets(out)
    for b in bad:
        print(f"NETWORK ASSET: {b}")
    total = time.perf_counter() - t0
    print(f"site: {out}/index.html ({len(pages)} notebook pages; {total:.0f} s in all: "
          f"{'reading' if args.executed else 'execution'} {t_exec:.0f} s, sphinx {t_sphinx:.0f} s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
