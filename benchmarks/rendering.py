"""Chapter 09 (differentiable rendering): renderer agreement, zero gradient, silhouette fitting, sigma, speed.

Run from the repository root (each part can run in its own process; ``--report`` then
assembles the result file from the parts' JSON fragments; no part argument = all parts):

    COURSE_PROFILE=laptop python benchmarks/rendering.py --part agreement   # ~1 min
    COURSE_PROFILE=laptop python benchmarks/rendering.py --part zero_grad   # seconds
    COURSE_PROFILE=laptop python benchmarks/rendering.py --part single      # ~2 min (2 fits)
    COURSE_PROFILE=laptop python benchmarks/rendering.py --part multi       # ~1-2 min per fit, 5 fits
    COURSE_PROFILE=laptop python benchmarks/rendering.py --part sigma       # ~4 min (4 fits of ch09.sigma_steps)
    COURSE_PROFILE=laptop python benchmarks/rendering.py --part speed       # ~2 min (one dense run, several GB)
    COURSE_PROFILE=laptop python benchmarks/rendering.py --report

Smoke test of the whole pipeline in seconds: ``COURSE_PROFILE=ci python benchmarks/rendering.py``.
On a GPU machine ``--device cuda`` runs the fits and the speed part there.  The costs above are
estimates for a 2-core laptop extrapolated from short runs on a loaded machine, not measurements;
all parts together come to roughly 15-20 minutes, so run them as separate commands if needed.

Writes ``benchmarks/results/rendering-<profile>-<machine>.md`` and ``rendering-<profile>.json``
(read by ``lectures/09_differentiable_rendering.ipynb`` through ``course_lib.results``).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import md_table, write_result  # noqa: E402

from course_lib import config, data  # noqa: E402
from course_lib.experiments import rendering as R  # noqa: E402
from course_lib.render import rasterize_silhouette, silhouette_iou  # noqa: E402

PARTS = ("agreement", "zero_grad", "single", "multi", "sigma", "speed")


def _frag(profile: str, part: str) -> Path:
    return config.cache_dir() / "ch09" / f"bench-{profile}-{part}.json"


def _shapes(sz) -> list:
    seeds = data.split_seeds("test", int(sz["shapes_per_category"]))
    return [data.make_shape(c, s) for c in sz["categories"] for s in seeds]


def part_agreement(sz, device) -> dict:
    """Hard silhouettes of the shapes' marching-cubes meshes vs trimesh ray casting and vs data.render."""
    from course_lib.data.views import camera_rays

    size = int(sz["image_size"])
    views = R.heldout_rig(int(sz["n_heldout_views"]), int(sz["n_views"]))
    rows = []
    res = int(sz["agreement_mesh_resolution"])
    for shape in _shapes(sz):
        mesh = shape.mesh(res)
        v = torch.tensor(np.asarray(mesh.vertices), dtype=torch.float32, device=device)
        f = torch.tensor(np.asarray(mesh.faces), dtype=torch.long, device=device)
        target, cams = R.target_views(shape, views, size, device=device)
        sil = rasterize_silhouette(v[None], f, cams, size)
        ray = []
        for k in range(len(cams)):
            o, d = camera_rays(cams.K[k].cpu(), cams.Rt[k].cpu(), (size, size))
            hit = mesh.ray.intersects_any(o.reshape(-1, 3).numpy(), d.reshape(-1, 3).numpy())
            ray.append(torch.tensor(hit.reshape(size, size), dtype=torch.float32))
        ray_t = torch.stack(ray).to(device)
        row = {"shape": f"{shape.category}/{shape.seed}", "faces": int(f.shape[0]),
               "iou_vs_ray_casting": float(silhouette_iou(sil, ray_t).min()),
               "iou_vs_data_render": float(silhouette_iou(sil, target).mean()),
               "iou_vs_data_render_min": float(silhouette_iou(sil, target).min()), "soft": {}}
        for sigma in (1e-4, 1e-5, 1e-6, 1e-7):
            soft = rasterize_silhouette(v[None], f, cams, size, sigma=sigma)
            row["soft"][f"{sigma:g}"] = {"mean_abs_diff_to_hard": float((soft - sil).abs().mean()),
                                         "iou_thresholded": float(silhouette_iou((soft > 0.5).float(), sil).min())}
        rows.append(row)
        print(row, flush=True)
    return {"size": size, "mesh_resolution": res, "rows": rows}


def part_zero_grad(sz, device) -> dict:
    return R.zero_gradient_demo(level=int(sz["template_level"]), size=int(sz["image_size"]), device=device)


def _heldout_eval(res, shape, sz):
    views = R.heldout_rig(int(sz["n_heldout_views"]), int(sz["n_views"]))
    return R.evaluate_fit(res.verts, res.faces, shape, views, int(sz["image_size"]), int(sz["n_eval_points"]))


def part_single(sz, device) -> dict:
    """One view, with and without the regularisers (the seed's point)."""
    from course_lib.geometry import flatten_loss, laplacian_loss

    shape = _shapes(sz)[0]
    size = int(sz["image_size"])
    target, cams = R.target_views(shape, [(30.0, 30.0)], size, device=device)
    rows = []
    for name, lap, flat in (("IoU + Laplacian + flatten", float(sz["lambda_lap"]), float(sz["lambda_flat"])),
                            ("IoU only", 0.0, 0.0)):
        res = R.fit_silhouettes(target, cams, **R.fit_kwargs(None, steps=int(sz["single_view_steps"]),
                                                            lambda_lap=lap, lambda_flat=flat))
        ev = _heldout_eval(res, shape, sz)
        rows.append({"name": name, "fit_view_iou": res.history["iou"][-1], "heldout_iou": ev["iou"],
                     "chamfer": ev["chamfer"], "laplacian": float(laplacian_loss(res.verts, res.faces)),
                     "flatten": float(flatten_loss(res.verts, res.faces)), "seconds": res.seconds})
        print(rows[-1], flush=True)
    return {"shape": f"{shape.category}/{shape.seed}", "rows": rows}


def part_multi(sz, device) -> dict:
    size = int(sz["image_size"])
    views = R.view_rig(int(sz["n_views"]))
    rows = []
    shapes = _shapes(sz)
    for shape in shapes:
        target, cams = R.target_views(shape, views, size, device=device)
        res = R.fit_silhouettes(target, cams, **R.fit_kwargs(None))
        ev = _heldout_eval(res, shape, sz)
        rows.append({"shape": f"{shape.category}/{shape.seed}", "fit_view_iou": res.history["iou"][-1],
                     "heldout_iou": ev["iou"], "heldout_iou_per_view": ev["iou_per_view"], "chamfer": ev["chamfer"],
                     "seconds": res.seconds, "regularised": True})
        print(rows[-1], flush=True)
    # the first shape once more without regularisers
    shape = shapes[0]
    target, cams = R.target_views(shape, views, size, device=device)
    res = R.fit_silhouettes(target, cams, **R.fit_kwargs(None, lambda_lap=0.0, lambda_flat=0.0))
    ev = _heldout_eval(res, shape, sz)
    unreg = {"shape": f"{shape.category}/{shape.seed}", "fit_view_iou": res.history["iou"][-1],
             "heldout_iou": ev["iou"], "chamfer": ev["chamfer"], "seconds": res.seconds, "regularised": False}
    print(unreg, flush=True)
    reg = rows
    return {"views": views, "heldout_views": R.heldout_rig(int(sz["n_heldout_views"]), int(sz["n_views"])),
            "rows": rows, "unregularised": unreg,
            "mean_heldout_iou": float(np.mean([r["heldout_iou"] for r in reg])),
            "mean_chamfer": float(np.mean([r["chamfer"] for r in reg])),
            "max_seconds": float(max(r["seconds"] for r in reg))}


def part_sigma(sz, device) -> dict:
    """For each sigma (held fixed during the fit): sharpness, gradient support, fit quality."""
    from course_lib.geometry import icosphere

    size = int(sz["image_size"])
    level = int(sz["template_level"])
    v, f = icosphere(level, device=device)
    cams = R._cameras([(30.0, 20.0)], size, device)
    hard = rasterize_silhouette(v * 0.6, f, cams, size)
    shape = _shapes(sz)[0]
    views = R.view_rig(int(sz["n_views"]))
    target, tcams = R.target_views(shape, views, size, device=device)
    rows = []
    for sigma in sz["sigmas"]:
        soft = rasterize_silhouette(v * 0.6, f, cams, size, sigma=float(sigma))
        grad = R.vertex_gradient_image(v * 0.6, f, cams, size, float(sigma), vertex=0)
        res = R.fit_silhouettes(target, tcams, **R.fit_kwargs(None, sigma=float(sigma), sigma_start=None,
                                                             steps=int(sz["sigma_steps"])))
        ev = _heldout_eval(res, shape, sz)
        rows.append({"sigma": float(sigma), "mean_abs_diff_to_hard": float((soft - hard).abs().mean()),
                     "gradient_pixels_one_vertex": int((grad.abs() > 1e-6).sum()),
                     "fit_view_iou": res.history["iou"][-1], "heldout_iou": ev["iou"], "chamfer": ev["chamfer"],
                     "seconds": res.seconds})
        print(rows[-1], flush=True)
    res = R.fit_silhouettes(target, tcams, **R.fit_kwargs(None, steps=int(sz["sigma_steps"])))
    ev = _heldout_eval(res, shape, sz)
    anneal = {"sigma_start": float(sz["sigma_start"]), "sigma": float(sz["sigma"]),
              "fit_view_iou": res.history["iou"][-1], "heldout_iou": ev["iou"], "chamfer": ev["chamfer"],
              "seconds": res.seconds}
    print(anneal, flush=True)
    return {"shape": f"{shape.category}/{shape.seed}", "rows": rows, "annealed": anneal}


def part_speed(sz, device) -> dict:
    out = {}
    devices = [torch.device("cpu")] + ([torch.device(device)] if torch.device(device).type == "cuda" else [])
    for dev in devices:
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        r = R.raster_speed(level=int(sz["speed_level"]), size=int(sz["speed_size"]), batch=int(sz["speed_batch"]),
                           sigma=float(sz["sigma"]), device=dev, repeat=3, dense_repeat=1)
        r["max_rss_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
        out[dev.type] = r
        print(r, flush=True)
    return out


def report(profile: str, sz, note: str = "") -> Path:
    parts = {p: json.loads(_frag(profile, p).read_text()) for p in PARTS if _frag(profile, p).exists()}
    body = [f"Sizes: {sz['image_size']} px images, icosphere level {sz['template_level']} template, "
            f"{sz['n_views']} fitting views (elevations alternately 30 and -10), {sz['n_heldout_views']} held-out "
            f"views (elevation 15, azimuths between the fitting ones), camera distance {R.CAMERA['distance']}, "
            f"fov {R.CAMERA['fov']}; Adam lr {sz['lr']}, {sz['fit_steps']} steps, sigma annealed "
            f"{sz['sigma_start']} -> {sz['sigma']}, lambda_lap {sz['lambda_lap']}, lambda_flat {sz['lambda_flat']}. "
            f"Targets are data.render silhouettes (sphere tracing the exact SDF) of ShapeNet-lite test-split shapes.",
            "", f"Convention: {R.CD_CONVENTION}.", ""]
    if "agreement" in parts:
        a = parts["agreement"]
        body += [f"## Hard silhouette vs independent references ({a['size']} px, marching-cubes mesh at "
                 f"{a['mesh_resolution']}^3)", "",
                 "IoU vs ray casting: trimesh ray casting of the same mesh (min over views); vs data.render: "
                 "the SDF sphere-traced by the data module (mean / min over views).", ""]
        rows = [[r["shape"], r["faces"], r["iou_vs_ray_casting"], r["iou_vs_data_render"],
                 r["iou_vs_data_render_min"], *[r["soft"][s]["mean_abs_diff_to_hard"] for s in r["soft"]]]
                for r in a["rows"]]
        sig = list(a["rows"][0]["soft"]) if a["rows"] else []
        body += [md_table(["shape", "faces", "IoU vs ray casting", "IoU vs data.render", "min",
                           *[f"mean abs soft-hard, sigma={s}" for s in sig]], rows), ""]
    if "zero_grad" in parts:
        z = parts["zero_grad"]
        body += ["## The hard rasteriser's gradient", ""]
        rows = [["autograd, hard", z["hard_grad_norm"], z["hard_grad_nonzero"]],
                [f"autograd, soft (sigma={z['sigma']})", z["soft_grad_norm"], z["soft_grad_nonzero_vertices"]]]
        body += [md_table(["gradient of 1 - IoU wrt the vertices", "norm", "non-zero entries / vertices"], rows), ""]
        rows = [[h, d["vertices_that_change_a_pixel"], d["pixels_changed"], d["max_abs_slope"]]
                for h, d in z["finite_differences"].items()]
        body += [f"Finite differences, each of the {z['vertices']} vertices moved along its normal:", "",
                 md_table(["step", "vertices that change a pixel", "pixels changed", "max |slope|"], rows), ""]
    if "single" in parts:
        s = parts["single"]
        body += [f"## Fitting one silhouette ({s['shape']})", ""]
        rows = [[r["name"], r["fit_view_iou"], r["heldout_iou"], r["chamfer"], r["laplacian"], r["flatten"],
                 r["seconds"]] for r in s["rows"]]
        body += [md_table(["loss", "IoU fitted view", "IoU held-out views", "CD x1e3", "Laplacian", "flatten", "s"],
                          rows), ""]
    if "multi" in parts:
        m = parts["multi"]
        body += ["## Multi-view fitting of the icosphere, held-out shapes and views", ""]
        rows = [[r["shape"], r["fit_view_iou"], r["heldout_iou"], r["chamfer"], r["seconds"]] for r in m["rows"]]
        u = m["unregularised"]
        rows.append([u["shape"] + " (no regularisers)", u["fit_view_iou"], u["heldout_iou"], u["chamfer"],
                     u["seconds"]])
        body += [md_table(["shape", "IoU fitting views", "IoU held-out views", "CD x1e3", "s per shape"], rows), "",
                 f"Mean held-out IoU (regularised): {m['mean_heldout_iou']:.3f}; mean CD x1e3 "
                 f"{m['mean_chamfer']:.2f}; slowest fit {m['max_seconds']:.1f} s.", ""]
    if "sigma" in parts:
        s = parts["sigma"]
        body += [f"## The effect of sigma (fixed during the fit, {sz['sigma_steps']} steps; {s['shape']})", "",
                 "blur: mean |soft - hard| of a sphere's silhouette; gradient pixels: pixels whose value "
                 "changes to first order when one vertex moves along its normal.", ""]
        rows = [[r["sigma"], r["mean_abs_diff_to_hard"], r["gradient_pixels_one_vertex"], r["fit_view_iou"],
                 r["heldout_iou"], r["chamfer"], r["seconds"]] for r in s["rows"]]
        an = s["annealed"]
        rows.append([f"{an['sigma_start']} -> {an['sigma']} (annealed)", "", "", an["fit_view_iou"],
                     an["heldout_iou"], an["chamfer"], an["seconds"]])
        body += [md_table(["sigma", "blur", "gradient pixels", "IoU fitting views", "IoU held-out", "CD x1e3", "s"],
                          rows), ""]
    if "speed" in parts:
        body += ["## Soft rasterisation speed, forward + backward", ""]
        rows = []
        for dev, r in parts["speed"].items():
            rows.append([dev, r["faces"], f"{r['size']}x{r['size']}", r["batch"], r["seconds"]["culled"],
                         r["seconds"]["dense"], r["speedup"], r["max_abs_diff"],
                         r.get("peak_mem_mb", {}).get("culled", ""), r.get("peak_mem_mb", {}).get("dense", ""),
                         r["max_rss_growth_mb"]])
        body += [md_table(["device", "faces", "image", "batch", "culled s", "dense s", "dense / culled",
                           "max |culled - dense|", "CUDA MB culled", "CUDA MB dense", "CPU max RSS growth MB"],
                          rows), "",
                 "Median of 3 runs after one warm-up run for the culled method; one run for the dense one, "
                 "which renders and back-propagates one image at a time (the same work; all images at once would "
                 "multiply its peak memory by the batch size).", ""]
    notes = ("torch ran with the thread count given by --threads. Timings on a machine shared with other jobs "
             "are inflated and noisy.")
    if note:
        notes += "\n\n" + note
    return write_result("rendering", profile, "\n".join(body), notes=notes, data=parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=PARTS)
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--note", default="", help="a free-text note added to the result file (with --report)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    profile = config.get_profile()
    sz = config.sizes(prefix="ch09.")
    fns = {"agreement": part_agreement, "zero_grad": part_zero_grad, "single": part_single, "multi": part_multi,
           "sigma": part_sigma, "speed": part_speed}
    todo = [args.part] if args.part else ([] if args.report else list(PARTS))
    for part in todo:
        config.seed_everything(0)
        t0 = time.perf_counter()
        out = fns[part](sz, torch.device(args.device))
        print(f"[{part}] {time.perf_counter() - t0:.1f} s", flush=True)
        _frag(profile, part).parent.mkdir(parents=True, exist_ok=True)
        _frag(profile, part).write_text(json.dumps(out, indent=1))
    if args.report or not args.part:
        print(report(profile, sz, args.note))


if __name__ == "__main__":
    main()
