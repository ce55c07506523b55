"""Benchmark of course_lib.ops against naive torch, scipy and the optional peers, in one run.

Run by hand (it takes a few minutes on 2 CPU cores):

    python benchmarks/ops.py                 # writes benchmarks/results/ops-<profile>-<machine>.md
    python benchmarks/ops.py --quick         # small sizes, a smoke test (nothing written unless --out)
    python benchmarks/ops.py --device cuda   # the same cases on a GPU (peers stay on the CPU)
    python benchmarks/ops.py --quick --only cd_small:ours --no-interleave --out /tmp/x.md   # seconds

Each case runs in a fresh subprocess, so that its peak memory (resident set on the CPU,
``torch.cuda.max_memory_allocated`` on a GPU) is measured alone; times are medians of
several repeats after one warm-up. Peers are optional imports: point-cloud-utils, pykdtree,
POT, open3d, fpsample; a missing one is reported as such.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


SELECTION_PARTS: tuple[str, ...] = ()
"""Protocol 2 (course_lib.experiments.protocol): this benchmark times the ops against their references; it chooses nothing."""


def _surface_points(b: int, n: int, seed: int) -> Any:
    """Points on a smooth closed surface (a bumpy ellipsoid) in the unit sphere, float32 (B, N, 3)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    v = torch.nn.functional.normalize(torch.randn(b, n, 3, generator=g), dim=-1)
    r = 1.0 + 0.15 * torch.sin(3 * v[..., :1]) * torch.cos(2 * v[..., 1:2])
    p = v * r * torch.tensor([0.9, 0.6, 0.75])
    return (p / p.norm(dim=-1).amax()).contiguous()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------
# cases: name -> (setup(args) -> callable, description)
# every case function returns (fn, extra_info) where fn() runs one repeat
# ---------------------------------------------------------------------------


def _case(name: str, args: argparse.Namespace) -> tuple[Callable[[], Any], dict[str, Any]]:  # noqa: C901
    import numpy as np
    import torch

    dev = torch.device(args.device)
    kind, _, what = name.partition(":")
    info: dict[str, Any] = {}

    if kind in ("cd_small", "cd_large"):
        if kind == "cd_small":
            b, n = (2, 512) if args.quick else (8, 2048)
        else:
            b, n = (1, 5000) if args.quick else (1, 100_000)
        x = _surface_points(b, n, 0)
        y = _surface_points(b, n, 1)
        grad = kind == "cd_small"
        xn, yn = x.numpy(), y.numpy()
        if what in ("ours", "ours_brute", "naive_cdist"):
            xd, yd = x.to(dev), y.to(dev)
            if what == "naive_cdist":
                def fn() -> Any:
                    xx = xd.clone().requires_grad_(grad)
                    d = torch.cdist(xx, yd) ** 2
                    loss = (d.min(2).values.mean(1) + d.min(1).values.mean(1)).mean()
                    if grad:
                        loss.backward()
                    return float(loss)
            else:
                from course_lib.ops import chamfer_distance

                backend = "brute" if what == "ours_brute" else "auto"

                def fn() -> Any:
                    xx = xd.clone().requires_grad_(grad)
                    loss = chamfer_distance(xx, yd, backend=backend)
                    if grad:
                        loss.backward()
                    return float(loss)
            return fn, info
        if what == "ckdtree":
            from scipy.spatial import cKDTree

            def fn() -> Any:
                tot = 0.0
                for i in range(b):
                    d1, _ = cKDTree(yn[i]).query(xn[i], k=1, workers=-1)
                    d2, _ = cKDTree(xn[i]).query(yn[i], k=1, workers=-1)
                    tot += float((d1**2).mean() + (d2**2).mean())
                return tot / b
            return fn, info
        if what == "pykdtree":
            from pykdtree.kdtree import KDTree

            info["version"] = _version("pykdtree")

            def fn() -> Any:
                tot = 0.0
                for i in range(b):
                    d1, _ = KDTree(yn[i]).query(xn[i], k=1)
                    d2, _ = KDTree(xn[i]).query(yn[i], k=1)
                    tot += float((d1.astype(np.float64) ** 2).mean() + (d2.astype(np.float64) ** 2).mean())
                return tot / b
            return fn, info
        if what == "pcu":
            import point_cloud_utils as pcu

            info["version"] = _version("point-cloud-utils")

            def fn() -> Any:
                # pcu's chamfer_distance: mean NN distance both ways (unsquared) - timing only
                return sum(float(pcu.chamfer_distance(xn[i], yn[i])) for i in range(b)) / b
            return fn, info
        if what == "open3d":
            import open3d as o3d

            info["version"] = _version("open3d")
            clouds = [
                (o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xn[i].astype(np.float64))),
                 o3d.geometry.PointCloud(o3d.utility.Vector3dVector(yn[i].astype(np.float64))))
                for i in range(b)
            ]

            def fn() -> Any:
                tot = 0.0
                for px, py in clouds:
                    d1 = np.asarray(px.compute_point_cloud_distance(py))
                    d2 = np.asarray(py.compute_point_cloud_distance(px))
                    tot += float((d1**2).mean() + (d2**2).mean())
                return tot / b
            return fn, info

    if kind.startswith("emd"):
        n = int(kind[3:])
        if args.quick:
            n = n // 8
        b = args.emd_batch
        x = _surface_points(b, n, 2)
        y = _surface_points(b, n, 3) * torch.tensor([1.0, 0.95, 1.05])
        if what in ("exact", "auction", "sinkhorn"):
            from course_lib.ops import emd

            xd, yd = x.to(dev), y.to(dev)

            def fn() -> Any:
                res = emd(xd, yd, what, reduction="none")
                out = {"cost": res.cost.detach().cpu().tolist()}
                if what == "sinkhorn":
                    out["lower"] = res.info["lower"].cpu().tolist()
                    out["marginal_error"] = res.info["marginal_error"].tolist()
                    out["iterations"] = res.info["iterations"]
                if what == "auction":
                    for key in ("rounds", "bids", "phases", "compiled"):
                        if key in res.info:
                            out[key] = res.info[key]
                return out
            return fn, info
        if what == "pot_emd":
            import ot

            info["version"] = _version("pot")

            def fn() -> Any:
                out = []
                for i in range(b):
                    m = ot.dist(x[i].double().numpy(), y[i].double().numpy(), metric="euclidean")
                    w = np.full(n, 1.0 / n)
                    out.append(float(ot.emd2(w, w, m, numItermax=10_000_000)))
                return {"cost": out}
            return fn, info

    if kind == "fps":
        n_pts, n_s = (2048, 128) if args.quick else (16384, 1024)
        x = _surface_points(1, n_pts, 4)[0]
        xn = x.numpy()
        if what == "ours":
            from course_lib.ops import farthest_point_sampling

            xd = x.to(dev)

            def fn() -> Any:
                return farthest_point_sampling(xd, n_s).cpu().numpy()
            return fn, info
        if what == "naive_torch":
            xd = x.to(dev)

            def fn() -> Any:
                idx = torch.empty(n_s, dtype=torch.long)
                mins = torch.full((n_pts,), float("inf"), device=dev)
                far = 0
                for i in range(n_s):
                    idx[i] = far
                    mins = torch.minimum(mins, ((xd - xd[far]) ** 2).sum(-1))
                    far = int(mins.argmax())
                return idx.numpy()
            return fn, info
        if what == "open3d":
            import open3d as o3d

            info["version"] = _version("open3d")
            pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xn.astype(np.float64)))

            def fn() -> Any:
                return np.asarray(pc.farthest_point_down_sample(n_s).points)
            return fn, info
        if what == "fpsample_exact":
            import fpsample

            info["version"] = _version("fpsample")

            def fn() -> Any:
                return fpsample.fps_sampling(xn, n_s, start_idx=0).astype(np.int64)
            return fn, info
        if what == "fpsample_quickfps":
            import fpsample

            info["version"] = _version("fpsample")

            def fn() -> Any:
                return fpsample.bucket_fps_kdline_sampling(xn, n_s, h=7, start_idx=0).astype(np.int64)
            return fn, info
    raise KeyError(f"unknown case {name!r}")


def _version(dist: str) -> str:
    from importlib.metadata import version

    try:
        return version(dist)
    except Exception:
        return "?"


def run_case(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one case in this process: warm-up, repeats, peak memory above the baseline."""
    import torch

    torch.set_num_threads(args.threads)
    try:
        fn, info = _case(name, args)
    except ImportError as exc:
        return {"name": name, "status": f"not installed ({exc.name})"}
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_gpu = torch.cuda.memory_allocated()
    base = _rss_mb()
    times = []
    out = None
    repeats = 1 if name in args.single_repeat else args.repeats
    try:
        for r in range(repeats + (0 if name in args.single_repeat else 1)):
            t0 = time.perf_counter()
            out = fn()
            if cuda:
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            if r > 0 or name in args.single_repeat:
                times.append(dt)
    except (RuntimeError, MemoryError) as exc:
        return {"name": name, "status": f"failed: {type(exc).__name__}: {str(exc)[:120]}"}
    res: dict[str, Any] = {
        "name": name,
        "status": "ok",
        "median_ms": 1e3 * sorted(times)[len(times) // 2],
        "times_ms": [round(1e3 * t, 2) for t in times],
        "peak_extra_mb": round(_rss_mb() - base, 1),
        **info,
    }
    if cuda:
        res["gpu_peak_extra_mb"] = round((torch.cuda.max_memory_allocated() - base_gpu) / 2**20, 1)
    if isinstance(out, dict):
        res["result"] = out
    elif isinstance(out, float):
        res["result"] = out
    else:
        import numpy as np

        res["result_indices_head"] = np.asarray(out).ravel()[:8].tolist() if out is not None else None
        if name.startswith("fps"):
            arr = np.asarray(out)
            if arr.ndim == 2:  # open3d returns the points: map them back to indices (untimed)
                from scipy.spatial import cKDTree

                n_pts = 2048 if args.quick else 16384
                src = _surface_points(1, n_pts, 4)[0].numpy().astype(np.float64)
                arr = cKDTree(src).query(arr, k=1)[1]
            res["indices"] = arr.astype(np.int64).tolist()
    return res


def run_group_interleaved(group: str, args: argparse.Namespace) -> dict[str, Any]:
    """Time every fast case of a group in one process, round-robin, so that all see the same load.

    On a shared machine the load changes from minute to minute; timing the methods one after
    the other would compare different machines. Here each round runs every method once.
    """
    import torch

    torch.set_num_threads(args.threads)
    fns: dict[str, Callable[[], Any]] = {}
    out: dict[str, Any] = {}
    for what in CASES[group]:
        name = f"{group}:{what}"
        if name in args.single_repeat:
            continue
        try:
            fn, _ = _case(name, args)
            fn()  # warm-up
            fns[name] = fn
        except ImportError:
            continue
        except (RuntimeError, MemoryError) as exc:
            out[name] = {"status": f"failed: {exc}"[:150]}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(args.repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    for name, ts in times.items():
        out[name] = {"median_ms": 1e3 * sorted(ts)[len(ts) // 2], "times_ms": [round(1e3 * t, 2) for t in ts]}
    return out


# ---------------------------------------------------------------------------
# orchestration and report
# ---------------------------------------------------------------------------
CASES = {
    "cd_small": ["ours", "ours_brute", "naive_cdist", "ckdtree", "pykdtree", "pcu", "open3d"],
    "cd_large": ["ours", "ours_brute", "ckdtree", "pykdtree", "pcu", "open3d"],
    "emd1024": ["exact", "auction", "sinkhorn", "pot_emd"],
    "emd2048": ["exact", "auction", "sinkhorn", "pot_emd"],
    "fps": ["ours", "naive_torch", "open3d", "fpsample_exact", "fpsample_quickfps"],
}


def _subprocess(name: str, args: argparse.Namespace, flag: str = "--case", repeats: int | None = None) -> dict[str, Any]:
    reps = args.repeats if repeats is None else repeats
    cmd = [sys.executable, __file__, flag, name, "--device", args.device, "--repeats", str(reps),
           "--threads", str(args.threads), "--emd-batch", str(args.emd_batch)]
    if args.quick:
        cmd.append("--quick")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.case_timeout, env=os.environ.copy())
    except subprocess.TimeoutExpired:
        return {"name": name, "status": f"timed out after {args.case_timeout} s"}
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"name": name, "status": f"crashed (rc={proc.returncode}): {tail[0][:150]}"}
    res = json.loads(lines[-1])
    res["subprocess_wall_s"] = round(wall, 1)
    return res


def _machine() -> dict[str, str]:
    import numpy as np
    import scipy
    import torch

    cpu = platform.processor() or "?"
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "cpu": f"{cpu} ({os.cpu_count()} logical cores visible)",
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "os": platform.platform(),
    }


def _fmt_ms(r: dict[str, Any]) -> str:
    if r.get("status") != "ok":
        return "-"
    return f"{r['median_ms']:.1f}" + ("" if r.get("timing") == "interleaved" else " (1 run)")


def _report(results: dict[str, dict[str, Any]], args: argparse.Namespace, meta: dict[str, Any]) -> str:
    lines = [
        "# course_lib.ops benchmark",
        "",
        f"- date (UTC): {meta['date']}",
        f"- command: `{meta['command']}`",
        f"- device: {args.device}; torch threads per case: {args.threads}; repeats: {args.repeats} "
        "(median, after one warm-up)",
        *[f"- {k}: {v}" for k, v in meta["machine"].items()],
        f"- load average at start / end: {meta['load_start']} / {meta['load_end']}",
        "- timing: every case first runs alone in its own process (one warm-up, one timed run) for its peak "
        "memory; then the fast cases of each table are timed again together in one process, round-robin "
        f"({args.repeats} rounds, median), so that the methods compared share the same machine load. "
        "Slow cases (marked 1 run) keep their single timed run.",
        "- peak memory: extra resident memory of the case's own process above its baseline after setup "
        "(ru_maxrss; a coarse high-water mark), or GPU max_memory_allocated on CUDA.",
        "",
    ]
    if meta.get("note"):
        lines += [f"> {meta['note']}", ""]

    def table(key: str, title: str, cols: list[str], extra: Callable[[dict[str, Any]], list[str]]) -> None:
        lines.extend([f"## {title}", "", "| method | " + " | ".join(cols) + " |",
                      "|---|" + "---|" * len(cols)])
        for what in CASES[key]:
            r = results.get(f"{key}:{what}", {"status": "not run"})
            if r.get("status") != "ok":
                lines.append(f"| {what} | {r.get('status')} |" + " |" * (len(cols) - 1))
                continue
            ver = f" ({r['version']})" if "version" in r else ""
            lines.append(f"| {what}{ver} | " + " | ".join(extra(r)) + " |")
        lines.append("")

    def mem(r: dict[str, Any]) -> str:
        return str(r.get("gpu_peak_extra_mb", r.get("peak_extra_mb", "-")))

    table("cd_small", "Chamfer, B=8, N=M=2,048 (ours and naive: forward + backward; peers: forward only)",
          ["median ms", "peak extra MB", "value"],
          lambda r: [_fmt_ms(r), mem(r), f"{r.get('result', float('nan')):.6g}"])
    table("cd_large", "Chamfer forward, B=1, N=M=100,000",
          ["median ms", "peak extra MB", "value"],
          lambda r: [_fmt_ms(r), mem(r), f"{r.get('result', float('nan')):.6g}"])
    lines += ["naive `torch.cdist` at 100,000 x 100,000 is not run: its distance matrix alone is "
              "4e10 bytes (40 GB) in float32.", ""]
    for key in ("emd1024", "emd2048"):
        ex = results.get(f"{key}:exact", {})
        exact = ex.get("result", {}).get("cost") if ex.get("status") == "ok" else None

        def emd_cols(r: dict[str, Any], exact: list[float] | None = exact) -> list[str]:
            cost = r.get("result", {}).get("cost")
            err = "-"
            if exact and cost:
                err = f"{max((c - e) / e for c, e in zip(cost, exact)) * 100:+.3f}%"
            extra = ""
            res = r.get("result", {})
            if "lower" in res and exact:
                lo = max((lo_ - e) / e for lo_, e in zip(res["lower"], exact)) * 100
                extra = (f"lower bound {lo:+.3f}%, marginal err {max(res['marginal_error']):.1e}, "
                         f"{res['iterations']} it")
            if "bids" in res:
                kind = "compiled Gauss-Seidel" if res.get("compiled") else "NumPy"
                extra = f"{res['bids']} bids, {res.get('phases', '?')} eps phases ({kind})"
            elif "rounds" in res:
                extra = f"{res['rounds']} bidding rounds"
            return [_fmt_ms(r), mem(r), err, extra]

        n = key[3:]
        table(key, f"EMD, B={args.emd_batch}, N=M={n} (unsquared, mean matched distance)",
              ["median ms", "peak extra MB", "error vs exact (worst cloud)", "notes"], emd_cols)
    ours = results.get("fps:ours", {})
    ref_idx = ours.get("indices")

    def fps_cols(r: dict[str, Any]) -> list[str]:
        same = "-"
        if ref_idx is not None and "indices" in r:
            same = "yes" if r["indices"] == ref_idx else "no"
        return [_fmt_ms(r), same]

    table("fps", "Farthest-point sampling, 1,024 of 16,384 points, start index 0",
          ["median ms", "same indices as ours"], fps_cols)
    if meta.get("notes_md"):
        lines += ["## Notes", "", meta["notes_md"], ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", help="run one case in this process and print JSON (internal)")
    p.add_argument("--group", help="time one group's fast cases interleaved and print JSON (internal)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    p.add_argument("--emd-batch", type=int, default=1)
    p.add_argument("--case-timeout", type=int, default=600)
    p.add_argument("--only", default="", help="comma-separated case groups (cd_small,cd_large,emd1024,...) "
                   "or single cases (group:case, e.g. cd_small:ours)")
    p.add_argument("--no-interleave", action="store_true",
                   help="skip the interleaved timing pass (times then come from the one-run memory pass)")
    p.add_argument("--out", default=None, help="results file (default benchmarks/results/ops-<profile>-<machine>.md)")
    p.add_argument("--note", default="", help="a line added to the report (e.g. that the machine was shared)")
    p.add_argument("--notes-file", default=None, help="markdown appended to the report as 'Notes'")
    args = p.parse_args(argv)
    # slow cases get one repeat
    args.single_repeat = {"cd_large:ours_brute", "emd1024:sinkhorn", "emd2048:sinkhorn"}
    if args.case:
        print(json.dumps(run_case(args.case, args)))
        return 0
    if args.group:
        print(json.dumps(run_group_interleaved(args.group, args)))
        return 0

    from course_lib import config

    only = [x for x in args.only.split(",") if x]
    picked: dict[str, list[str]] = {}
    for x in only:
        g, _, what = x.partition(":")
        if g not in CASES or (what and what not in CASES[g]):
            raise SystemExit(f"unknown case group or case {x!r}; groups: {', '.join(CASES)}")
        picked.setdefault(g, [])
        if what:
            picked[g].append(what)
    groups = [g for g in CASES if not only or g in picked]
    meta: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "command": "python " + " ".join([os.path.relpath(__file__, ROOT)] + (argv if argv is not None else sys.argv[1:])),
        "machine": _machine(),
        "load_start": " ".join(f"{v:.1f}" for v in os.getloadavg()),
        "note": args.note,
    }
    results: dict[str, dict[str, Any]] = {}
    for g in groups:
        # pass 1, one process per case: peak memory (and the time of the slow single-run cases)
        for what in CASES[g]:
            if picked.get(g) and what not in picked[g]:
                continue
            name = f"{g}:{what}"
            r = _subprocess(name, args, repeats=1)
            results[name] = r
            msg = f"{r['median_ms']:.1f} ms" if r.get("status") == "ok" else r.get("status")
            print(f"{name:28s} {msg}  (memory pass)", flush=True)
        # pass 2, one process per group: times of the fast cases, interleaved round-robin
        if args.no_interleave:
            continue
        timing = _subprocess(g, args, flag="--group")
        for name, t in timing.items():
            if name in results and isinstance(t, dict) and "median_ms" in t:
                results[name]["median_ms"] = t["median_ms"]
                results[name]["times_ms"] = t["times_ms"]
                results[name]["timing"] = "interleaved"
                print(f"{name:28s} {t['median_ms']:.1f} ms  (interleaved)", flush=True)
    meta["load_end"] = " ".join(f"{v:.1f}" for v in os.getloadavg())
    if args.notes_file:
        meta["notes_md"] = Path(args.notes_file).read_text()
    report = _report(results, args, meta)
    machine = "cuda" if args.device.startswith("cuda") else "cpu"
    out = args.out
    if out is None and not args.quick:
        out = str(ROOT / "benchmarks" / "results" / f"ops-{config.get_profile()}-{machine}.md")
    clean = {k: {kk: vv for kk, vv in v.items() if kk != "indices"} for k, v in results.items()}
    if out is not None and args.out is None:  # the default place: the course's results files (+ JSON twin)
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from _common import write_result

        name = "ops" if machine == "cpu" else "ops_cuda"
        body = report.split("\n", 1)[1] if report.startswith("# ") else report
        path = write_result(name, config.get_profile(), body, data={"meta": meta, "results": clean})
        print(f"wrote {path}")
    elif out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(report)
        Path(out).with_suffix(".json").write_text(json.dumps({"meta": meta, "results": clean}, indent=1))
        print(f"wrote {out}")
    else:
        print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
