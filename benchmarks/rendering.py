"""Chapter 09 (differentiable rendering): renderer agreement, zero gradient, sigma chosen on val, fits, speed.

Protocol 2 (``course_lib.experiments.protocol``): the temperature sigma (fixed values and the annealed
schedule) is chosen on **validation** shapes by the ``sigma`` part (``@selection_part``: reading the test
split there raises); the one-view and multi-view fits then use that choice on **test** shapes, read only
to report.  Comparative statements are claim records paired over at least 20 shapes (the sigma sweep on
validation shapes, the regularisers on test shapes); every IoU is named: the *soft* IoU the fit maximised
on its own views, the *hard* IoU on the fitting views and on held-out views.  Goals are records
(:data:`course_lib.experiments.rendering.GOALS`).

Run from the repository root (each part can run in its own process; ``--report`` then
assembles the result file from the parts' JSON fragments; no part argument = all parts, in this order;
``single`` and ``multi`` use the sigma that the ``sigma`` part chose, so run ``sigma`` first):

    COURSE_PROFILE=laptop python benchmarks/rendering.py --part agreement   # ~1 min
    COURSE_PROFILE=laptop python benchmarks/rendering.py --part zero_grad   # seconds
    COURSE_PROFILE=laptop python benchmarks/rendering.py --part sigma       # ~25-30 min (20 val shapes x 4 settings)
    COURSE_PROFILE=laptop python benchmarks/rendering.py --part single      # ~7-10 min (20 test shapes x 2 fits)
    COURSE_PROFILE=laptop python benchmarks/rendering.py --part multi       # ~4-5 min (4 test shapes + 1 unregularised)
    COURSE_PROFILE=laptop python benchmarks/rendering.py --part speed       # ~2 min (one dense run, several GB)
    COURSE_PROFILE=laptop python benchmarks/rendering.py --report

Smoke test of the whole pipeline (about a minute): ``COURSE_PROFILE=ci python benchmarks/rendering.py``.
On a GPU machine ``--device cuda`` runs the fits and the speed part there.  The costs above are estimates
for a 2-core laptop from the per-fit times of the last protocol-1 run (sigma 1e-3: ~40 s per 150-step fit,
1e-4: ~10 s, 1e-5: ~4 s, annealed: ~18 s); all parts together come to roughly 45-50 minutes.

Writes ``benchmarks/results/rendering-<profile>-<machine>.md`` and ``rendering-<profile>.json``
(read by ``lectures/09_differentiable_rendering.ipynb`` through ``course_lib.results``).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import add_dataset_args, md_table, use_dataset_args, write_result  # noqa: E402

from course_lib import config, data  # noqa: E402
from course_lib.experiments import rendering as R  # noqa: E402
from course_lib.experiments.protocol import (  # noqa: E402
    MIN_SHAPES,
    claim_sentence,
    goal_sentence,
    selection_part,
    selection_record,
)
from course_lib.render import rasterize_silhouette, silhouette_iou  # noqa: E402

PARTS = ("agreement", "zero_grad", "sigma", "single", "multi", "speed")
SELECTION_PARTS = ("part_sigma",)
"""Protocol 2: ``part_sigma`` chooses the temperature (fixed or annealed) on validation shapes."""
FRAGMENT_PROTOCOL = 2
"""Fragments written before protocol 2 (no ``"protocol"`` key) are ignored by the report."""


def _frag(profile: str, part: str) -> Path:
    from course_lib.data.real_split import dataset_name

    ds = dataset_name(None)  # a real dataset's fragments never mix with ShapeNet-lite's
    return config.cache_dir() / "ch09" / (f"bench-{profile}-{part}.json" if ds == "shapenet-lite"
                                          else f"bench-{ds}-{profile}-{part}.json")


def _read_frag(profile: str, part: str) -> dict | None:
    path = _frag(profile, part)
    if not path.exists():
        return None
    out = json.loads(path.read_text())
    if out.get("protocol") != FRAGMENT_PROTOCOL:
        print(f"ignoring {path}: written before protocol {FRAGMENT_PROTOCOL}; re-run --part {part}", flush=True)
        return None
    return out


def _shapes(sz) -> list:
    """One test shape per category (``ch09.shapes_per_category``): the agreement and multi-view parts report on them."""
    seeds = data.split_seeds("test", int(sz["shapes_per_category"]))
    return [data.make_shape(c, s) for c in sz["categories"] for s in seeds]


def _name(shape) -> str:
    return f"{shape.category}/{shape.seed}"


def _mean_se(vals) -> tuple[float, float]:
    v = [float(x) for x in vals]
    m = sum(v) / len(v)
    se = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1) / len(v)) if len(v) > 1 else float("nan")
    return m, se


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
        row = {"shape": _name(shape), "faces": int(f.shape[0]),
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
    """Autograd of the hard rasteriser (zero by definition of sign's derivative) and finite differences with
    steps too small to flip a pixel (1e-4, 1e-3) and one large enough to (3e-2)."""
    out = R.zero_gradient_demo(level=int(sz["template_level"]), size=int(sz["image_size"]),
                               fd_steps=(1e-4, 1e-3, 3e-2), device=device)
    out["bias"] = R.soft_iou_bias_demo(level=int(sz["template_level"]), size=int(sz["image_size"]),
                                       n_views=int(sz["n_views"]), sigma=float(sz["sigma"]), device=device)
    return out


@selection_part
def part_sigma(sz, device) -> dict:
    """Choose the temperature on validation shapes: every candidate (each fixed sigma of ``ch09.sigmas``, the
    default ``ch09.sigma``, and ``ch09.sigma_start -> ch09.sigma`` annealed) fits the same shapes for
    ``ch09.sigma_steps`` steps; the best mean hard IoU on their held-out views wins.  The claims of the sweep
    are paired over those shapes.  Also, per fixed sigma, the blur and reach on a sphere's silhouette."""
    from course_lib.geometry import icosphere

    size, level = int(sz["image_size"]), int(sz["template_level"])
    cands = R.sigma_candidates(sz["sigmas"], float(sz["sigma"]), float(sz["sigma_start"]))
    v, f = icosphere(level, device=device)
    cams = R._cameras([(30.0, 20.0)], size, device)
    hard = rasterize_silhouette(v * 0.6, f, cams, size)
    blur = {}
    for name, c in cands.items():
        if c["sigma_start"] is None:
            soft = rasterize_silhouette(v * 0.6, f, cams, size, sigma=c["sigma"])
            grad = R.vertex_gradient_image(v * 0.6, f, cams, size, c["sigma"], vertex=0)
            blur[name] = {"mean_abs_diff_to_hard": float((soft - hard).abs().mean()),
                          "gradient_pixels_one_vertex": int((grad.abs() > 1e-6).sum())}
    shapes = R.paired_shapes("val", list(sz["categories"]), int(sz["paired_shapes"]))
    views = R.view_rig(int(sz["n_views"]))
    held = R.heldout_rig(int(sz["n_heldout_views"]), int(sz["n_views"]))
    steps = int(sz["sigma_steps"])
    rows: dict[str, list] = {name: [] for name in cands}
    for shape in shapes:
        target, tcams = R.target_views(shape, views, size, device=device)
        for name, c in cands.items():
            res = R.fit_silhouettes(target, tcams, **R.fit_kwargs(None, steps=steps, **c))
            rows[name].append({"shape": _name(shape), **R.score_fit(res, shape, views, held, size,
                                                                   int(sz["n_eval_points"]))})
        print({n: round(r[-1]["heldout_iou"], 4) for n, r in rows.items()}, _name(shape), flush=True)
    budgets = {n: R.fit_budget(steps, len(views), [r["seconds"] for r in rows[n]], level, **cands[n]) for n in cands}
    summary = {}
    for n, rs in rows.items():
        summary[n] = {k: _mean_se([r[k] for r in rs]) for k in ("heldout_iou", "hard_iou_fit_views",
                                                              "soft_iou_fit_views", "chamfer", "seconds")}
    chosen, rec = selection_record("ch09.sigma", {n: summary[n]["heldout_iou"][0] for n in cands},
                                   metric=f"mean hard IoU on the held-out views of {len(shapes)} validation shapes "
                                          f"({steps} steps per fit)", higher_is_better=True)
    claims = []
    if len(shapes) >= MIN_SHAPES:
        claims = R.sigma_claims(rows, cands, float(sz["sigma"]), budgets, split="val")
    else:
        print(f"only {len(shapes)} validation shapes (< {MIN_SHAPES}): no claim recorded", flush=True)
    print(f"chosen on val: {chosen}", flush=True)
    return {"split": "val", "shapes": [_name(s) for s in shapes], "steps": steps, "candidates": cands,
            "blur": blur, "rows": rows, "summary": summary, "budgets": budgets, "selection": rec,
            "chosen": {"name": chosen, **cands[chosen]}, "claims": claims}


def _chosen_sigma(profile: str, sz) -> tuple[dict, str, bool]:
    """The fit's sigma settings: the ``sigma`` part's choice on val, else ``ch09.*`` (said so)."""
    frag = _read_frag(profile, "sigma")
    cands = R.sigma_candidates(sz["sigmas"], float(sz["sigma"]), float(sz["sigma_start"]))
    if frag is not None and frag.get("candidates") == json.loads(json.dumps(cands)):
        ch = frag["chosen"]
        return {"sigma": ch["sigma"], "sigma_start": ch["sigma_start"]}, ch["name"], True
    if frag is not None:
        print("the sigma fragment was written for other ch09.sigmas: using ch09.sigma / ch09.sigma_start", flush=True)
    name = f"annealed {float(sz['sigma_start']):g} -> {float(sz['sigma']):g}"
    return {"sigma": float(sz["sigma"]), "sigma_start": float(sz["sigma_start"])}, name, False


def part_single(sz, device) -> dict:
    """One view, with and without the regularisers, on ``ch09.paired_shapes`` test shapes (the seed's point,
    paired over shapes)."""
    from course_lib.geometry import flatten_loss, laplacian_loss

    profile = config.get_profile()
    kw, sigma_name, selected = _chosen_sigma(profile, sz)
    size = int(sz["image_size"])
    steps = int(sz["single_view_steps"])
    view = [(30.0, 30.0)]
    held = R.heldout_rig(int(sz["n_heldout_views"]), int(sz["n_views"]))
    settings = (("IoU + Laplacian + flatten", float(sz["lambda_lap"]), float(sz["lambda_flat"])), ("IoU only", 0.0, 0.0))
    rows: dict[str, list] = {name: [] for name, _, _ in settings}
    shapes = R.paired_shapes("test", list(sz["categories"]), int(sz["paired_shapes"]))
    for shape in shapes:
        target, cams = R.target_views(shape, view, size, device=device)
        for name, lap, flat in settings:
            res = R.fit_silhouettes(target, cams, **R.fit_kwargs(None, steps=steps, lambda_lap=lap, lambda_flat=flat,
                                                                **kw))
            rows[name].append({"shape": _name(shape), **R.score_fit(res, shape, view, held, size,
                                                                   int(sz["n_eval_points"])),
                               "laplacian": float(laplacian_loss(res.verts, res.faces)),
                               "flatten": float(flatten_loss(res.verts, res.faces))})
        print({n: {k: round(r[-1][k], 4) for k in ("heldout_iou", "chamfer", "flatten")} for n, r in rows.items()},
              _name(shape), flush=True)
    budgets = {n: R.fit_budget(steps, 1, [r["seconds"] for r in rows[n]], int(sz["template_level"]),
                               lambda_lap=lap, lambda_flat=flat) for n, lap, flat in settings}
    claims = R.regulariser_claims(rows, budgets, split="test") if len(shapes) >= MIN_SHAPES else []
    summary = {n: {k: _mean_se([r[k] for r in rs]) for k in ("heldout_iou", "hard_iou_fit_views",
                                                           "soft_iou_fit_views", "chamfer", "laplacian", "flatten")}
               for n, rs in rows.items()}
    return {"split": "test", "shapes": [_name(s) for s in shapes], "sigma": {"name": sigma_name, **kw,
            "selected_on_val": selected}, "rows": rows, "summary": summary, "budgets": budgets, "claims": claims}


def part_multi(sz, device) -> dict:
    """Report only: multi-view fits of the report shapes with the sigma the val part picked; the first shape once more without
    regularisers (an illustration, one shape: no claim)."""
    profile = config.get_profile()
    kw, sigma_name, selected = _chosen_sigma(profile, sz)
    size = int(sz["image_size"])
    views = R.view_rig(int(sz["n_views"]))
    held = R.heldout_rig(int(sz["n_heldout_views"]), int(sz["n_views"]))
    rows = []
    shapes = _shapes(sz)
    for shape in shapes:
        target, cams = R.target_views(shape, views, size, device=device)
        res = R.fit_silhouettes(target, cams, **R.fit_kwargs(None, **kw))
        rows.append({"shape": _name(shape), **R.score_fit(res, shape, views, held, size, int(sz["n_eval_points"])),
                     "regularised": True})
        print(rows[-1], flush=True)
    shape = shapes[0]
    target, cams = R.target_views(shape, views, size, device=device)
    res = R.fit_silhouettes(target, cams, **R.fit_kwargs(None, lambda_lap=0.0, lambda_flat=0.0, **kw))
    unreg = {"shape": _name(shape), **R.score_fit(res, shape, views, held, size, int(sz["n_eval_points"])),
             "regularised": False}
    print(unreg, flush=True)
    return {"views": views, "heldout_views": held, "sigma": {"name": sigma_name, **kw, "selected_on_val": selected},
            "rows": rows, "unregularised": unreg,
            "mean_heldout_iou": float(np.mean([r["heldout_iou"] for r in rows])),
            "mean_hard_iou_fit_views": float(np.mean([r["hard_iou_fit_views"] for r in rows])),
            "mean_chamfer": float(np.mean([r["chamfer"] for r in rows])),
            "max_seconds": float(max(r["seconds"] for r in rows)),
            "budget": R.fit_budget(int(sz["fit_steps"]), len(views), [r["seconds"] for r in rows],
                                   int(sz["template_level"]))}


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


def _f(x, nd: int = 4) -> str:
    return f"{x:.{nd}g}" if isinstance(x, (int, float)) else str(x)


def _ms(pair) -> str:
    m, se = pair
    return f"{m:.4g} ± {se:.2g}" if se == se else f"{m:.4g}"


def report(profile: str, sz, note: str = "") -> Path:
    parts = {p: f for p in PARTS if (f := _read_frag(profile, p)) is not None}
    for f in parts.values():
        f.pop("protocol", None)
    body = [f"Sizes: {sz['image_size']} px images, icosphere level {sz['template_level']} template, "
            f"{sz['n_views']} fitting views (elevations alternately 30 and -10), {sz['n_heldout_views']} held-out "
            f"views (elevation 15, azimuths between the fitting ones), camera distance {R.CAMERA['distance']}, "
            f"fov {R.CAMERA['fov']}; Adam lr {sz['lr']}, {sz['fit_steps']} steps (one view: "
            f"{sz['single_view_steps']}), lambda_lap {sz['lambda_lap']}, lambda_flat {sz['lambda_flat']}. Targets are "
            "data.render silhouettes (sphere tracing the exact SDF) of ShapeNet-lite shapes. Protocol 2: sigma is "
            "chosen on validation shapes (the sigma section); the fits of test shapes use that choice. "
            "IoUs: *soft* = the training loss's IoU on the fitting views at the last step (it rewards layers and "
            "folds, see the zero-gradient section; not comparable with a hard IoU), *hard* = the fitted mesh's "
            "hard silhouette against data.render, on the fitting views and on the held-out views.",
            "", f"Convention: {R.CD_CONVENTION}.", ""]
    claims, selections = [], []
    if "agreement" in parts:
        a = parts["agreement"]
        body += [f"## Hard silhouette vs independent references ({a['size']} px, marching-cubes mesh at "
                 f"{a['mesh_resolution']}^3, test shapes)", "",
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
        body += ["## The hard rasteriser's gradient", "",
                 "Autograd's zero is a definition (the derivative of `torch.sign` is set to 0), not evidence; the "
                 "finite differences are the evidence, and only a step large enough to flip pixels measures "
                 "anything (a jump divided by the step).", ""]
        rows = [["autograd, hard", z["hard_grad_norm"], z["hard_grad_nonzero"]],
                [f"autograd, soft (sigma={z['sigma']})", z["soft_grad_norm"], z["soft_grad_nonzero_vertices"]]]
        body += [md_table(["gradient of 1 - IoU wrt the vertices", "norm", "non-zero entries / vertices"], rows), ""]
        rows = [[h, d["vertices_that_change_a_pixel"], d["pixels_changed"], d["max_abs_slope"]]
                for h, d in z["finite_differences"].items()]
        body += [f"Finite differences, each of the {z['vertices']} vertices moved along its normal:", "",
                 md_table(["step", "vertices that change a pixel", "pixels changed", "max |slope|"], rows), ""]
        if "bias" in z:
            b = z["bias"]
            body += [f"What the soft IoU rewards (a level-{sz['template_level']} sphere, its own hard silhouettes "
                     f"as targets, {b['views']} views, sigma {b['sigma']}):", "",
                     md_table(["mesh", "soft IoU", "hard IoU"],
                              [["the exact sphere", b["soft_iou_exact"], 1.0],
                               ["plus a hidden inner copy", b["soft_iou_layered"], b["hard_iou_layered"]],
                               [f"one level coarser ({b['faces_coarser']} faces), against its own silhouette",
                                b["soft_iou_coarser"], 1.0]]), ""]
    if "sigma" in parts:
        s = parts["sigma"]
        selections.append(s["selection"])
        claims += s["claims"]
        body += [f"## Sigma, chosen on {len(s['shapes'])} validation shapes ({s['steps']} steps per fit)", "",
                 "blur: mean |soft - hard| of a sphere's silhouette; gradient pixels: pixels whose value changes to "
                 "first order when one vertex moves along its normal. Means ± standard errors over the shapes.", ""]
        rows = []
        for n, sm in s["summary"].items():
            bl = s["blur"].get(n, {})
            rows.append([n, _f(bl.get("mean_abs_diff_to_hard", "")), bl.get("gradient_pixels_one_vertex", ""),
                         _ms(sm["soft_iou_fit_views"]), _ms(sm["hard_iou_fit_views"]), _ms(sm["heldout_iou"]),
                         _ms(sm["chamfer"]), _ms(sm["seconds"])])
        body += [md_table(["setting", "blur", "gradient pixels", "soft IoU fitting views", "hard IoU fitting views",
                           "hard IoU held-out", "CD x1e3", "s per fit"], rows), "",
                 f"Chosen on val: **{s['chosen']['name']}** (best {s['selection']['metric']}).", ""]
    if "single" in parts:
        s = parts["single"]
        claims += s["claims"]
        body += [f"## Fitting one silhouette ({len(s['shapes'])} test shapes, sigma {s['sigma']['name']})", "",
                 "Means ± standard errors over the shapes.", ""]
        rows = [[n, _ms(sm["soft_iou_fit_views"]), _ms(sm["hard_iou_fit_views"]), _ms(sm["heldout_iou"]),
                 _ms(sm["chamfer"]), _ms(sm["laplacian"]), _ms(sm["flatten"])] for n, sm in s["summary"].items()]
        body += [md_table(["loss", "soft IoU fitted view", "hard IoU fitted view", "hard IoU held-out views",
                           "CD x1e3", "Laplacian", "flatten"], rows), ""]
    if "multi" in parts:
        m = parts["multi"]
        body += [f"## Multi-view fitting of the icosphere, test shapes and held-out views (sigma {m['sigma']['name']})",
                 ""]
        cols = ("soft_iou_fit_views", "hard_iou_fit_views", "heldout_iou", "chamfer", "seconds")
        rows = [[r["shape"], *[r[k] for k in cols]] for r in m["rows"]]
        u = m["unregularised"]
        rows.append([u["shape"] + " (no regularisers; one shape, an illustration)", *[u[k] for k in cols]])
        body += [md_table(["shape", "soft IoU fitting views", "hard IoU fitting views", "hard IoU held-out views",
                           "CD x1e3", "s per shape"], rows), "",
                 f"Mean hard IoU: held-out views {m['mean_heldout_iou']:.3f}, fitting views "
                 f"{m['mean_hard_iou_fit_views']:.3f}; mean CD x1e3 {m['mean_chamfer']:.2f}; slowest fit "
                 f"{m['max_seconds']:.1f} s.", ""]
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
    goals = R.goal_records(parts)
    if claims:
        body += ["## Claims", "", *[f"- {claim_sentence(c)}" for c in claims], ""]
    if goals:
        body += ["## Goals", "", *[f"- {goal_sentence(g)}" for g in goals], ""]
    notes = ("torch ran with the thread count given by --threads. Timings on a machine shared with other jobs "
             "are inflated and noisy.")
    if note:
        notes += "\n\n" + note
    from course_lib.data.real_split import dataset_name

    ds = dataset_name(None)
    return write_result("rendering" if ds == "shapenet-lite" else f"rendering-{ds}", profile, "\n".join(body), notes=notes,
                        data={**parts, "claims": claims, "goals": goals, "selections": selections})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=PARTS)
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--note", default="", help="a free-text note added to the result file (with --report)")
    add_dataset_args(ap)
    args = ap.parse_args()
    use_dataset_args(args)
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
        out["protocol"] = FRAGMENT_PROTOCOL
        print(f"[{part}] {time.perf_counter() - t0:.1f} s", flush=True)
        _frag(profile, part).parent.mkdir(parents=True, exist_ok=True)
        _frag(profile, part).write_text(json.dumps(out, indent=1))
    if args.report or not args.part:
        print(report(profile, sz, args.note))


if __name__ == "__main__":
    main()
