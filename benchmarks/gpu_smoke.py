"""GPU smoke run: every chapter's models for a few training steps on one device, plus the ops benchmark.

Run from the repository root whenever a GPU is lent (see ``benchmarks/README.md``):

    python benchmarks/gpu_smoke.py --device cuda                 # gpu profile, 5 steps per model
    python benchmarks/gpu_smoke.py --device cuda --steps 20 --profile gpu --ops full
    python benchmarks/gpu_smoke.py --device cpu --steps 1 --profile ci   # what the test suite runs

Every module of :mod:`course_lib.experiments` that defines ``smoke(device, steps, profile)`` is
discovered and run (a new chapter plugs in by defining the hook): its models with the profile's
sizes, ``steps`` optimisation steps each on a small synthetic or real batch, timed and with the
peak CUDA memory.  A module that fails is reported and the others still run.  Then
``benchmarks/ops.py`` runs on the same device: ``--ops quick`` (its ``--quick`` sizes, every
case; the default on CUDA), ``full`` (the real sizes; minutes), ``check`` (one case, no interleaved
pass; the default on the CPU) or ``skip``.

On CUDA each module runs in its own process with a time limit (``--module-timeout``, 150 s),
so that one slow or hanging chapter cannot eat the budget of the others.

Writes ``benchmarks/results/gpu_smoke-<profile>-<machine>.md`` and ``gpu_smoke-<profile>.json``
(``COURSE_RESULTS_DIR`` redirects both).  Exit status 1 when a module or ops.py failed.
Budget: well under 8 minutes on one GPU with the defaults (the modules take seconds each; ops.py
``--quick`` about a minute, mostly process start-ups).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

OPS_MODES = ("auto", "quick", "full", "check", "skip")


SELECTION_PARTS: tuple[str, ...] = ()
"""Protocol 2 (course_lib.experiments.protocol): this benchmark runs a few steps of every model on a device; it chooses nothing."""


def discover() -> list[str]:
    """Names of the :mod:`course_lib.experiments` modules that define a ``smoke`` hook."""
    import course_lib.experiments as pkg

    names = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "common":
            continue
        try:
            mod = importlib.import_module(f"course_lib.experiments.{info.name}")
        except Exception:  # noqa: BLE001 - an unimportable module is a failure, reported by run_module
            names.append(info.name)
            continue
        if callable(getattr(mod, "smoke", None)):
            names.append(info.name)
    return names


def run_module(name: str, device: str, steps: int, profile: str) -> dict[str, Any]:
    """Run one module's ``smoke`` hook; never raises (a failure is recorded with its last traceback line)."""
    import torch

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        mod = importlib.import_module(f"course_lib.experiments.{name}")
        torch.manual_seed(0)
        out = mod.smoke(device=device, steps=steps, profile=profile)
        if cuda:
            torch.cuda.synchronize()
        res: dict[str, Any] = {"status": "ok", **{k: float(v) for k, v in dict(out).items()}}
    except Exception as exc:  # noqa: BLE001 - report and go on with the other chapters
        tb = traceback.format_exc().strip().splitlines()
        res = {"status": f"failed: {type(exc).__name__}: {exc}"[:300], "traceback": tb[-6:]}
    res["wall_s"] = time.perf_counter() - t0
    if cuda:
        res["peak_mem_mb_module"] = torch.cuda.max_memory_allocated() / 2**20
    return res


def run_isolated(name: str, device: str, steps: int, profile: str, timeout: int) -> dict[str, Any]:
    """:func:`run_module` in a fresh process with a time limit (a hang in one chapter cannot eat the budget)."""
    cmd = [sys.executable, __file__, "--worker", name, "--device", device, "--steps", str(steps),
           "--profile", profile]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env={**os.environ, "COURSE_PROFILE": profile})
    except subprocess.TimeoutExpired:
        return {"status": f"failed: timed out after {timeout} s", "wall_s": time.perf_counter() - t0}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
        return {"status": f"failed: worker exited with {proc.returncode}", "traceback": tail,
                "wall_s": time.perf_counter() - t0}
    res = json.loads(lines[-1])
    res["process_wall_s"] = time.perf_counter() - t0
    return res


def run_ops(mode: str, device: str, profile: str, timeout: int) -> dict[str, Any]:
    """``benchmarks/ops.py`` on ``device`` in a subprocess (``mode``: quick, full, check, skip)."""
    if mode == "skip":
        return {"status": "skipped"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ops.md"
        cmd = [sys.executable, str(ROOT / "benchmarks" / "ops.py"), "--device", device, "--out", str(out)]
        if mode == "quick":
            cmd += ["--quick", "--repeats", "5"]
        elif mode == "check":
            cmd += ["--quick", "--only", "cd_small:ours", "--no-interleave", "--repeats", "1"]
        env = {**os.environ, "COURSE_PROFILE": profile}
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
        except subprocess.TimeoutExpired:
            return {"status": f"timed out after {timeout} s", "mode": mode, "command": " ".join(cmd[1:])}
        res: dict[str, Any] = {"mode": mode, "command": "python " + " ".join(cmd[1:]),
                               "wall_s": time.perf_counter() - t0}
        jpath = out.with_suffix(".json")
        if proc.returncode != 0 or not jpath.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {**res, "status": f"failed (rc={proc.returncode})", "tail": tail}
        results = json.loads(jpath.read_text())["results"]
        # a peer that is not installed is not a failure of the course's code
        bad = [k for k, v in results.items() if v.get("status") != "ok"
               and not str(v.get("status", "")).startswith("not installed")]
        res.update(status="ok" if not bad else f"{len(bad)} case(s) not ok: {', '.join(bad)}", report=out.read_text(),
                   cases={k: {kk: v.get(kk) for kk in ("status", "median_ms", "peak_extra_mb", "gpu_peak_extra_mb")
                              if kk in v} for k, v in results.items()})
        return res


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:1, cpu, ...")
    ap.add_argument("--steps", type=int, default=5, help="optimisation steps per model (default 5)")
    ap.add_argument("--profile", default="gpu", help="the sizes of this profile (default gpu)")
    ap.add_argument("--ops", choices=OPS_MODES, default="auto",
                    help="ops.py: quick on CUDA, check (one case) on the CPU by default")
    ap.add_argument("--ops-timeout", type=int, default=300)
    ap.add_argument("--only", nargs="*", default=None, help="run only these experiment modules")
    ap.add_argument("--isolate", choices=("auto", "yes", "no"), default="auto",
                    help="each module in its own process with --module-timeout (auto: yes on CUDA)")
    ap.add_argument("--module-timeout", type=int, default=150, help="seconds per module when isolated")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one module, print its JSON
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error("--steps must be >= 1")
    os.environ["COURSE_PROFILE"] = args.profile  # anything read from the profile uses the requested one
    import torch
    from _common import md_table, write_result

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"--device {args.device} but torch.cuda.is_available() is False (torch {torch.__version__})")
        return 2
    if args.worker:
        print(json.dumps(run_module(args.worker, args.device, args.steps, args.profile)))
        return 0
    isolate = args.isolate == "yes" or (args.isolate == "auto" and args.device.startswith("cuda"))
    t_all = time.perf_counter()
    names = discover() if args.only is None else list(args.only)
    print(f"smoke hooks: {', '.join(names)} on {args.device}, {args.steps} step(s), profile {args.profile}", flush=True)
    modules: dict[str, dict[str, Any]] = {}
    for name in names:
        modules[name] = (run_isolated(name, args.device, args.steps, args.profile, args.module_timeout) if isolate
                         else run_module(name, args.device, args.steps, args.profile))
        r = modules[name]
        print(f"{name:>16}: {r['status']} in {r['wall_s']:.1f} s", flush=True)
    ops_mode = args.ops if args.ops != "auto" else ("quick" if args.device.startswith("cuda") else "check")
    ops = run_ops(ops_mode, args.device, args.profile, args.ops_timeout)
    print(f"{'ops.py':>16}: {ops['status']} ({ops_mode})", flush=True)
    total = time.perf_counter() - t_all

    rows = []
    for name, r in modules.items():
        extras = ", ".join(f"{k}={_fmt(v)}" for k, v in r.items()
                           if k not in ("status", "wall_s", "traceback", "seconds") and not k.endswith("_params"))
        rows.append([name, r["status"], f"{r['wall_s']:.1f}", _fmt(r.get("seconds", "")),
                     _fmt(r.get("peak_mem_mb_module", "")), extras[:400]])
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "none"
    body = [f"Device {args.device} ({gpu}), profile `{args.profile}`, {args.steps} optimisation step(s) per model, "
            f"total {total:.0f} s.", "",
            "## Chapter smoke hooks (`course_lib.experiments.<module>.smoke`)", "",
            md_table(["module", "status", "wall s", "steps s", "peak CUDA MiB", "details"], rows), "",
            f"## benchmarks/ops.py ({ops_mode})", "", f"status: {ops['status']}", ""]
    if ops.get("report"):
        body += [ops["report"].split("\n", 1)[1] if ops["report"].startswith("# ") else ops["report"]]
    data = {"device": args.device, "gpu": gpu, "profile": args.profile, "steps": args.steps, "seconds": total,
            "modules": modules, "ops": {k: v for k, v in ops.items() if k != "report"}}
    path = write_result("gpu_smoke", args.profile, "\n".join(body), data=data)
    print("wrote", path)
    failed = [n for n, r in modules.items() if r["status"] != "ok"]
    if failed or ops["status"] not in ("ok", "skipped"):
        print("FAILED:", ", ".join(failed + ([] if ops["status"] in ("ok", "skipped") else ["ops.py"])))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
