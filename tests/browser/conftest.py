"""Fixtures of the browser test: a JupyterLab server and a headless Chromium driven by selenium.

The browser test runs only when ``COURSE_BROWSER_TEST=1`` (``tools/test.py`` sets it for its browser
step, after the unit tests and nbval); in the plain ``pytest`` run its tests are skipped with that
reason.  Without Debian's ``chromium`` and ``chromium-driver`` (or selenium) the tests are skipped
with the command that installs them, except under ``CI=true``, where a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("COURSE_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver && pip install -e '.[dev]'"
ARTIFACTS = Path(os.environ.get("COURSE_BROWSER_ARTIFACTS", ROOT / ".cache" / "browser"))


def enabled() -> bool:
    return os.environ.get("COURSE_BROWSER_TEST") == "1"


def pytest_collection_modifyitems(config, items):
    if enabled():
        return
    skip = pytest.mark.skip(reason="browser test: run by `python tools/test.py` (COURSE_BROWSER_TEST=1)")
    for item in items:
        if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(path)):
            return f"{path} is missing"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory):
    """``http://127.0.0.1:<port>``: JupyterLab with no token, windowing off, the app exposed to scripts."""
    missing = _missing()
    if missing:
        msg = f"browser test: {missing}; install with `{INSTALL}`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " (CI=true: the browser test must run)")
        pytest.skip(msg)
    tmp = tmp_path_factory.mktemp("jupyterlab")
    settings = tmp / "settings"
    # JupyterLab's windowed notebook rendering detaches cells out of view: render them all
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port = _free_port()
    env = dict(os.environ, COURSE_PROFILE="ci", JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"), PYTHONHASHSEED="0")
    log = open(tmp / "jupyterlab.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         "--IdentityProvider.token=", "--ServerApp.password=", "--allow-root", "--ServerApp.disable_check_xsrf=True",
         "--LabApp.expose_app_in_browser=True", "--ContentsManager.allow_hidden=True", f"--ServerApp.root_dir={ROOT}",
         "--LabApp.news_url=", "--ServerApp.allow_remote_access=False"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/api/status", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                log.close()
                pytest.fail(f"jupyter lab did not start: {(tmp / 'jupyterlab.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def driver(lab_server, tmp_path_factory):
    """A headless Chromium (software WebGL) driven through Debian's chromedriver; nothing downloaded."""
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must never try to fetch a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--use-angle=swiftshader",
                 "--enable-unsafe-swiftshader", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        opts.add_argument(flag)
    opts.set_capability("unhandledPromptBehavior", "accept")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    drv.set_script_timeout(120)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield drv
    drv.quit()
