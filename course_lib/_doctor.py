"""``course_lib.doctor()``: what this environment can do for the course.

Introduced in ``lectures/00_welcome.ipynb``.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from dataclasses import dataclass

import torch

from . import config


@dataclass
class Item:
    """One line of the report."""

    name: str
    ok: bool
    value: str
    advice: str = ""


def _version(module: str) -> tuple[bool, str]:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - report anything that breaks an import
        return False, f"not importable ({type(exc).__name__}: {exc})"
    return True, str(getattr(mod, "__version__", "installed"))


def _widget_frontend() -> tuple[bool, str]:
    """Whether widgets can show: ipywidgets imports and we run inside a Jupyter kernel.

    A kernel cannot see whether the browser side has the widget manager; JupyterLab 4 and
    Notebook 7 ship it with ipywidgets 8, VS Code and Colab support it too.  Without it, the
    course's widgets show a static figure instead.
    """
    ok, ver = _version("ipywidgets")
    if not ok:
        return False, ver
    in_kernel = "ipykernel" in sys.modules and _get_ipython_kernel()
    where = "in a Jupyter kernel" if in_kernel else "not in a Jupyter kernel (figures will be static)"
    return True, f"ipywidgets {ver}, {where}"


def _get_ipython_kernel() -> bool:
    try:
        from IPython import get_ipython

        ip = get_ipython()
        return ip is not None and "IPKernelApp" in ip.config
    except Exception:  # noqa: BLE001
        return False


def report() -> list[Item]:
    """Collect the report items without printing them."""
    items: list[Item] = []
    items.append(Item("python", sys.version_info >= (3, 10), platform.python_version(),
                      "the course needs Python >= 3.10"))
    items.append(Item("torch", True, torch.__version__))
    dev = config.get_device()
    if dev.type == "cuda":
        dev_desc = f"{dev} ({torch.cuda.get_device_name(dev)})"
    else:
        dev_desc = f"{dev} ({os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads)"
    items.append(Item("device", True, dev_desc,
                      "" if dev.type == "cuda" else "no GPU: the 'laptop' profile keeps every notebook CPU-sized"))
    try:
        prof = config.get_profile()
        items.append(Item("profile", True, f"{prof} (set COURSE_PROFILE to one of {', '.join(config.PROFILES)})"))
    except config.ProfileError as exc:
        items.append(Item("profile", False, str(exc), "fix COURSE_PROFILE"))
    for mod in ("numpy", "scipy", "skimage", "trimesh", "plotly", "tqdm"):
        ok, ver = _version(mod)
        items.append(Item(mod, ok, ver, f"reinstall with the README's set-up command ({mod} missing)"))
    for mod, what in (("pykdtree", "nearest neighbours fall back to scipy (about 3x slower)"),
                      ("numba", "the auction EMD and FPS fall back to NumPy (slower, same results)")):
        ok, ver = _version(mod)
        items.append(Item(mod, ok, ver, what))
    ok, desc = _widget_frontend()
    items.append(Item("widgets", ok, desc, "widgets fall back to static figures"))
    ok, ver = _version("k3d")
    items.append(Item("k3d", ok, ver, "k3d views fall back to plotly"))
    cache = config.cache_dir()
    writable = _writable(cache)
    items.append(Item("data cache", writable, f"{cache} ({'writable' if writable else 'NOT writable'})",
                      f"set {config.ENV_CACHE} to a writable folder"))
    return items


def _writable(path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".doctor_probe"
        probe.write_text("ok")
        probe.unlink()
        return True
    except OSError:
        return False


def doctor(print_report: bool = True) -> list[Item]:
    """Print (and return) a short report: versions, device, profile, widgets, k3d, data cache."""
    items = report()
    if print_report:
        width = max(len(i.name) for i in items)
        for i in items:
            mark = "✅" if i.ok else "⚠️ "
            line = f"{mark} {i.name:<{width}}  {i.value}"
            if not i.ok and i.advice:
                line += f"  → {i.advice}"
            print(line)
    return items
