"""The course website in a real browser: every page of the built site opened in headless Chromium.

The site is built by ``python tools/build_site.py`` into ``site/_build/html`` (or ``COURSE_SITE_DIR``); without a
built site these tests are skipped, and so they are without Chromium, its driver or selenium.  The site is served
by a local ``http.server`` that records every request (path, status, bytes), the browser cache is off, and for
each page the test asserts:

* no console message of level SEVERE (a JavaScript error, a resource that failed to load);
* no request of the page answered 404, and every local link of the page (``<a href>``) resolves to a file;
* a notebook page whose notebook drew a plotly figure shows at least one rendered plotly figure (an SVG drawn
  by plotly.js), and a page with TeX math shows MathJax output (``mjx-container``);
* the page weighs at most :data:`PAGE_BUDGET_BYTES`: its HTML and every local asset it loads;
* nothing is requested from the network (the site works offline: every request goes to the local server).

A screenshot of every page goes to ``.cache/site/screenshots/`` (``COURSE_SITE_SCREENSHOTS``) with
``report.json`` (per page: weight, requests, figures, math, console messages).

Like everything under ``tests/browser``, it runs when ``COURSE_BROWSER_TEST=1`` (``tools/test.py``'s browser step
sets it): ``COURSE_BROWSER_TEST=1 python -m pytest tests/browser/test_site.py -q``.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from browser_report import add_entry

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("COURSE_SITE_DIR", ROOT / "site" / "_build" / "html")).resolve()
SHOTS = Path(os.environ.get("COURSE_SITE_SCREENSHOTS", ROOT / ".cache" / "site" / "screenshots"))
CHROMIUM = os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("COURSE_CHROMEDRIVER", "/usr/bin/chromedriver")

PAGE_BUDGET_BYTES = 16 * 2**20
"""The weight budget of one page: 16 MiB for its HTML and every asset it loads (uncached). A notebook page with
figures carries plotly.js (4.6 MiB), MathJax (1.1 MiB and its fonts), the theme (about 1.5 MiB) and its figures'
data inline in the HTML; the largest page of a ``ci`` build weighs about 10 MiB (see report.json)."""

PAGE_TIMEOUT = 60


def _pages() -> list[str]:
    if not (SITE / "index.html").exists():
        return []
    return sorted(str(p.relative_to(SITE)) for p in SITE.rglob("*.html")
                  if not any(part.startswith("_") for part in p.relative_to(SITE).parts))


def _manifest() -> dict[str, dict]:
    path = SITE / "_manifest.json"
    if not path.exists():
        return {}
    return {f"{m['page']}.html": m for m in json.loads(path.read_text())}


class _Log:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[tuple[str, int, int]] = []

    def add(self, path: str, status: int, size: int) -> None:
        with self.lock:
            self.entries.append((path, status, size))

    def take(self) -> list[tuple[str, int, int]]:
        with self.lock:
            out, self.entries = self.entries, []
        return out


class _Handler(http.server.SimpleHTTPRequestHandler):
    log_sink: _Log

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def send_response(self, code, message=None):
        self._status = code
        super().send_response(code, message)

    def end_headers(self):
        super().end_headers()

    def do_GET(self):
        self._status = 0
        path = urllib.parse.urlsplit(self.path).path
        local = Path(self.translate_path(self.path))
        super().do_GET()
        size = local.stat().st_size if local.is_file() else 0
        self.log_sink.add(path, self._status, size)


@pytest.fixture(scope="module")
def site_server():
    if not (SITE / "index.html").exists():
        pytest.skip(f"no built site at {SITE}: build it with `python tools/build_site.py` (or set COURSE_SITE_DIR)")
    log = _Log()
    handler = functools.partial(type("H", (_Handler,), {"log_sink": log}), directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", log
    server.shutdown()
    server.server_close()


def _start_chromium(profile_dir: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--use-angle=swiftshader",
                 "--enable-unsafe-swiftshader", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                 f"--user-data-dir={profile_dir}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(PAGE_TIMEOUT)
    drv.set_script_timeout(PAGE_TIMEOUT)
    drv.execute_cdp_cmd("Network.enable", {})
    drv.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    return drv


class _Chromium:
    """One headless Chromium for the module, started again if it died (a renderer that crashed under load
    would otherwise fail every later page with the same "invalid session" error)."""

    def __init__(self, profile_dir: Path) -> None:
        self.profile_dir = profile_dir
        self.restarts = 0
        self._drv = _start_chromium(profile_dir)

    @property
    def driver(self):
        try:
            self._drv.execute_script("return 1")
        except Exception:  # noqa: BLE001 - any failure here means the session is gone
            try:
                self._drv.quit()
            except Exception:  # noqa: BLE001
                pass
            self.restarts += 1
            self._drv = _start_chromium(self.profile_dir)
        return self._drv

    def quit(self) -> None:
        self._drv.quit()


@pytest.fixture(scope="module")
def browser(site_server, tmp_path_factory):
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed: pip install -e '.[dev]'")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(path)):
            pytest.skip(f"{path} is missing: apt-get install -y chromium chromium-driver")
    os.environ.setdefault("SE_OFFLINE", "true")
    SHOTS.mkdir(parents=True, exist_ok=True)
    chromium = _Chromium(tmp_path_factory.mktemp("chromium-site"))
    yield chromium
    chromium.quit()


_SETTLE = """
const done = arguments[arguments.length - 1];
const mj = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
Promise.resolve(mj).catch(() => null).then(() => {
  requestAnimationFrame(() => setTimeout(() => done(true), 300));
});
"""

_FIRST_FIGURE = """
const d = document.querySelector('.plotly-graph-div');
if (d) d.scrollIntoView();
return !!d;
"""

_DRAWN = "const d = document.querySelector('.plotly-graph-div'); return !!(d && d.querySelector('.main-svg'));"

_MEASURE = """
const links = [];
for (const a of document.querySelectorAll('a[href]')) links.push(a.getAttribute('href'));
const external = performance.getEntriesByType('resource').map(e => e.name)
  .filter(u => !u.startsWith(location.origin) && !u.startsWith('data:') && !u.startsWith('blob:'));
return {
  links: links,
  external: external,
  plotly: [...document.querySelectorAll('.plotly-graph-div')].filter(d => d.querySelector('.main-svg')).length,
  plotly_failed: [...document.querySelectorAll('.plotly-graph-div')].filter(d => d.dataset.rendered === '1'
                                                                         && !d.querySelector('.main-svg')).length,
  plotly_divs: document.querySelectorAll('.plotly-graph-div').length,
  mathjax: document.querySelectorAll('mjx-container').length,
  mathjax_errors: document.querySelectorAll('mjx-merror').length,
  title: document.title,
};
"""


def _local_target(page: str, href: str) -> Path | None:
    """The file that a local link of ``page`` points to, or None for a link off the site or in the page."""
    parts = urllib.parse.urlsplit(href)
    if parts.scheme or parts.netloc or href.startswith("#") or not parts.path:
        return None
    target = (SITE / page).parent / urllib.parse.unquote(parts.path)
    if href.endswith("/") or target.is_dir():
        target = target / "index.html"
    return target


def _save(report: dict) -> None:
    add_entry(SHOTS / "report.json", report["page"], report)


@pytest.mark.parametrize("page", _pages() or ["(no site built)"])
def test_site_page(browser, site_server, page):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    browser = browser.driver
    url, log = site_server
    try:
        browser.get_log("browser")
    except Exception:  # noqa: BLE001
        pass
    log.take()
    t0 = time.time()
    browser.get(f"{url}/{page}")
    browser.execute_async_script(_SETTLE)
    load_s = time.time() - t0
    first = browser.execute_script(_FIRST_FIGURE)
    if first:  # figures draw when they come near the viewport (site/_static/course.js): bring the first one
        try:
            WebDriverWait(browser, PAGE_TIMEOUT).until(lambda d: d.execute_script(_DRAWN))
        except TimeoutException:
            pass
    m = browser.execute_script(_MEASURE)
    time.sleep(0.2)  # requests the page made while it settled (fonts of MathJax) are logged by now
    requests = log.take()
    try:
        console = [e for e in browser.get_log("browser")]
    except Exception:  # noqa: BLE001
        console = []
    severe = [e.get("message", "")[:300] for e in console if e.get("level") == "SEVERE"]
    missing = sorted({p for p, status, _ in requests if status == 404})
    broken = sorted({h for h in m["links"] if (t := _local_target(page, h)) is not None and not t.exists()})
    weight = sum(size for _, status, size in requests if status == 200)
    expect = _manifest().get(page, {})
    name = page.removesuffix(".html").replace("/", "__")
    browser.save_screenshot(str(SHOTS / f"{name}.png"))
    report = {"page": page, "weight_bytes": weight, "requests": len(requests), "load_s": round(load_s, 2),
              "plotly_rendered": m["plotly"], "plotly_divs": m["plotly_divs"], "mathjax": m["mathjax"],
              "console_severe": severe, "missing": missing, "broken_links": broken, "external": m["external"],
              "expected_plotly": expect.get("plotly", 0), "expected_math": expect.get("math", False)}
    _save(report)
    problems = [f"console error: {s}" for s in severe]
    problems += [f"404: {p}" for p in missing]
    problems += [f"broken link: {h}" for h in broken]
    problems += [f"loaded from the network: {u}" for u in m["external"]]
    if expect.get("plotly", 0) and m["plotly"] < 1:
        problems.append(f"the notebook drew {expect['plotly']} plotly figures, none rendered")
    if m["plotly_failed"]:
        problems.append(f"{m['plotly_failed']} plotly figures started drawing and show nothing")
    if expect.get("math") and m["mathjax"] < 1:
        problems.append("the page has math but MathJax rendered none")
    if m["mathjax_errors"]:
        problems.append(f"{m['mathjax_errors']} MathJax errors")
    if weight > PAGE_BUDGET_BYTES:
        problems.append(f"page weight {weight / 2**20:.1f} MiB over the budget of {PAGE_BUDGET_BYTES / 2**20:.0f} MiB")
    print(f"{page}: {weight / 2**20:.2f} MiB in {len(requests)} requests, {m['plotly']} plotly, "
          f"{m['mathjax']} math, {load_s:.1f} s")
    assert not problems, f"{page}: " + "; ".join(problems)


def test_every_notebook_has_a_page(site_server):
    """Every lecture, lab and solution the site was built from has its page, and the sections link them."""
    manifest = _manifest()
    assert manifest, f"{SITE}/_manifest.json is missing: build with tools/build_site.py"
    for page in manifest:
        assert (SITE / page).exists(), page
    kinds = {m["kind"] for m in manifest.values()}
    assert kinds == {"lecture", "lab", "solution"}, kinds
    for m in manifest.values():
        if m["kind"] == "lab":  # a lab page shows no solution: no executed output
            assert m["profile"] is None, m


def test_search_finds_a_term(browser, site_server):
    """Sphinx's search works offline: searching a word of the course lists pages."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, log = site_server
    browser = browser.driver
    browser.get(f"{url}/search.html?q=Chamfer")
    WebDriverWait(browser, PAGE_TIMEOUT).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results li, ul.search li"))
    hits = browser.find_elements(By.CSS_SELECTOR, "#search-results li, ul.search li")
    log.take()
    assert hits, "search for 'Chamfer' found nothing"
