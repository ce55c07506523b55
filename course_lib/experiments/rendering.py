"""The experiments of chapter 09 (differentiable rendering), shared by the lecture, the lab and the benchmark.

Introduced in ``lectures/09_differentiable_rendering.ipynb``.

* :func:`view_rig`, :func:`target_views`: cameras around a ShapeNet-lite shape and its
  silhouettes rendered by :func:`course_lib.data.render` (sphere tracing the exact SDF, so
  the targets do not come from the renderer being tested), cached on disk;
* :func:`zero_gradient_demo`: the hard rasteriser's gradient with respect to the vertices,
  by autograd and by finite differences, next to the soft one's;
* :func:`vertex_gradient_image`: the per-pixel derivative of a soft silhouette with respect
  to one vertex moving along its normal (forward-mode autograd);
* :func:`fit_silhouettes`: deform an icosphere so that its soft silhouettes match target
  silhouettes (Adam on per-vertex offsets; IoU loss + Laplacian + flatten);
* :func:`evaluate_fit`: hard-silhouette IoU on held-out views and the 3D Chamfer distance to
  the true surface (:data:`CD_CONVENTION`);
* :func:`raster_speed`: soft rasterisation forward + backward, culled vs dense;
* :func:`smoke`: a few fitting steps on a device (``benchmarks/gpu_smoke.py``).

Shapes are the **test** split of ShapeNet-lite (:func:`course_lib.data.split_seeds`); nothing
is trained, each fit starts from the same sphere, so every shape is held out by construction.
The held-out views use azimuths and an elevation that no fitting view uses.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from course_lib import config
from course_lib.geometry.mesh_reg import (
    edge_face_pairs,
    flatten_loss,
    icosphere,
    laplacian_loss,
    uniform_laplacian,
)
from course_lib.render import (
    Cameras,
    look_at_cameras,
    rasterize_silhouette,
    silhouette_iou,
    silhouette_iou_loss,
)

__all__ = [
    "CD_CONVENTION",
    "CAMERA",
    "view_rig",
    "heldout_rig",
    "target_views",
    "zero_gradient_demo",
    "vertex_gradient_image",
    "FitResult",
    "fit_silhouettes",
    "evaluate_fit",
    "raster_speed",
    "smoke",
]

CD_CONVENTION = ("Chamfer distance: squared Euclidean nearest-neighbour distances, mean over each cloud's points, "
                 "the two directions summed, x 1000 (course_lib.metrics preset 'atlasnet'), between area-weighted "
                 "samples of the fitted mesh and of the true surface")
"""The one convention of every Chamfer number of chapter 09."""

CAMERA = {"distance": 2.6, "fov": 50.0}
"""Distance and vertical field of view of every chapter-09 camera (those of :func:`course_lib.data.render`)."""


def view_rig(n_views: int, elevation: float | Sequence[float] = (30.0, -10.0),
             offset: float = 0.0) -> list[tuple[float, float]]:
    """``n_views`` (azimuth, elevation) pairs evenly spaced in azimuth from ``offset`` degrees.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  ``elevation`` is one
    angle or a sequence cycled over the views (default: alternately 30 above and 10 below
    the equator, so that both the top and the underside are seen).
    """
    if isinstance(n_views, bool) or not isinstance(n_views, int) or n_views < 1:
        raise ValueError(f"n_views must be a positive int, got {n_views!r}")
    els = [float(elevation)] if isinstance(elevation, (int, float)) else [float(e) for e in elevation]
    if not els:
        raise ValueError("elevation must not be empty")
    return [(offset + 360.0 * k / n_views, els[k % len(els)]) for k in range(n_views)]


def heldout_rig(n_views: int, n_fit: int) -> list[tuple[float, float]]:
    """Held-out views: azimuths between those of an ``n_fit``-view rig, elevation 15 (used by no fitting view)."""
    return view_rig(n_views, elevation=15.0, offset=180.0 / max(n_fit, 1) + 7.0)


def _cameras(views: Sequence[tuple[float, float]], size: int, device: Any = None) -> Cameras:
    az = [a for a, _ in views]
    el = [e for _, e in views]
    return look_at_cameras(az, el, CAMERA["distance"], CAMERA["fov"], size, device=device)


def target_views(shape: Any, views: Sequence[tuple[float, float]], size: int,
                 device: torch.device | str | None = None, cache: bool = True) -> tuple[Tensor, Cameras]:
    """Silhouettes ``(N, H, W)`` of ``shape`` seen from ``views`` by :func:`course_lib.data.render`, and the cameras.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  Cached on disk under
    ``config.cache_dir()/ch09`` (the render is deterministic).
    """
    from course_lib import data

    if not isinstance(shape, data.Shape):
        raise TypeError(f"shape must be a course_lib.data.Shape, got {type(shape).__name__}")
    key = f"{shape.category}-{shape.seed}-{data.GENERATOR_VERSION}-{size}-{CAMERA}-{list(views)}"
    path = config.cache_dir() / "ch09" / f"views-{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"
    sil = None
    if cache and path.exists():
        try:
            sil = torch.load(path, weights_only=True)
        except Exception:  # noqa: BLE001 - a broken cache file is re-rendered
            sil = None
    if sil is None:
        sil = torch.stack([data.render(shape, azimuth=a, elevation=e, size=size, **CAMERA)["silhouette"]
                           for a, e in views])
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(sil, path)
    return sil.to(device), _cameras(views, size, device)


def zero_gradient_demo(level: int = 2, size: int = 32, sigma: float = 1e-4, fd_steps: Sequence[float] = (1e-4, 1e-3),
                       device: Any = None) -> dict[str, Any]:
    """The hard rasteriser's gradient with respect to the vertices is zero; the soft one's is not.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  A sphere of radius 0.6
    is rendered against the silhouette of a radius-0.7 sphere (so the IoU loss does want
    the vertices to move).  Returns the autograd gradient norms (hard and soft), the number
    of pixels that change when each vertex in turn moves by each finite-difference step
    along its normal (hard), and the finite-difference slope of the hard loss.
    """
    v, f = icosphere(level, device=device)
    cams = _cameras([(30.0, 20.0)], size, device)
    target = rasterize_silhouette(v * 0.7, f, cams, size)
    x = (v * 0.6).clone().requires_grad_(True)
    hard = rasterize_silhouette(x, f, cams, size)
    loss_h = silhouette_iou_loss(hard, target)
    (g_h,) = torch.autograd.grad(loss_h, x)
    soft = rasterize_silhouette(x, f, cams, size, sigma=sigma)
    loss_s = silhouette_iou_loss(soft, target)
    (g_s,) = torch.autograd.grad(loss_s, x)
    fd = {}
    with torch.no_grad():
        base = rasterize_silhouette(v * 0.6, f, cams, size)
        n = v.shape[0]
        for h in fd_steps:
            changed, slopes = [], []
            for lo in range(0, n, 64):  # all single-vertex moves of a chunk as one batch of meshes
                idx = torch.arange(lo, min(lo + 64, n), device=v.device)
                w = (v * 0.6)[None].repeat(len(idx), 1, 1)
                w[torch.arange(len(idx)), idx] += h * v[idx]
                imgs = rasterize_silhouette(w, f, cams, size)
                changed += (imgs != base).sum((1, 2)).tolist()
                inter = (imgs * target).sum((1, 2))
                union = (imgs + target - imgs * target).sum((1, 2))
                slopes += ((1.0 - (inter + 1e-6) / (union + 1e-6) - float(loss_h)) / h).tolist()
            fd[h] = {"vertices_that_change_a_pixel": sum(c > 0 for c in changed), "pixels_changed": sum(changed),
                     "max_abs_slope": max(abs(s) for s in slopes)}
    return {"vertices": int(v.shape[0]), "loss": float(loss_h.detach()), "hard_grad_norm": float(g_h.norm()),
            "hard_grad_nonzero": int(torch.count_nonzero(g_h)), "soft_loss": float(loss_s.detach()),
            "soft_grad_norm": float(g_s.norm()), "soft_grad_nonzero_vertices": int((g_s.norm(dim=1) > 0).sum()),
            "finite_differences": fd, "sigma": sigma, "size": size}


def vertex_gradient_image(verts: Tensor, faces: Tensor, cameras: Cameras, size: int, sigma: float,
                          vertex: int, direction: Tensor | None = None) -> Tensor:
    """``d silhouette / d t`` per pixel, ``(H, W)``, when ``vertex`` moves to ``v + t * direction`` (default: outward).

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  A Jacobian-vector product
    through :func:`course_lib.render.rasterize_silhouette` with one camera (the double-backward
    trick); positive where pushing the vertex would cover more of the pixel.
    """
    if verts.dim() != 2:
        raise ValueError(f"verts must be (V, 3) (one mesh), got {tuple(verts.shape)}")
    if not 0 <= vertex < verts.shape[0]:
        raise ValueError(f"vertex must be in [0, {verts.shape[0] - 1}], got {vertex}")
    verts = verts.detach()
    if direction is None:
        direction = verts[vertex] / verts[vertex].norm().clamp(min=1e-12)
    e = torch.zeros_like(verts)
    e[vertex] = direction
    with torch.enable_grad():
        t = torch.zeros((), device=verts.device, dtype=verts.dtype, requires_grad=True)
        img = rasterize_silhouette(verts + t * e, faces, cameras[0], size, sigma=sigma)
        # a Jacobian-vector product by double backward: g(w) = w . dimg/dt is linear in w, dg/dw = dimg/dt
        w = torch.zeros_like(img, requires_grad=True)
        (g,) = torch.autograd.grad(img, t, grad_outputs=w, create_graph=True)
        if not g.requires_grad:
            return torch.zeros(img.shape[1:], device=verts.device, dtype=verts.dtype)
        (jvp,) = torch.autograd.grad(g, w)
    return jvp[0].detach()


@dataclass
class FitResult:
    """The outcome of :func:`fit_silhouettes`."""

    verts: Tensor
    faces: Tensor
    history: dict[str, list[float]]
    snapshots: list[Tensor] = field(default_factory=list)
    snapshot_steps: list[int] = field(default_factory=list)
    seconds: float = 0.0


def fit_kwargs(profile: str | None = None, **over: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`fit_silhouettes` for the ``ch09.*`` sizes of ``profile`` (``over`` wins).

    Introduced in ``lectures/09_differentiable_rendering.ipynb``: the multi-view fit of the benchmark and of
    chapter 11's table.
    """
    sz = config.sizes(profile, prefix="ch09.")
    kw = {"level": int(sz["template_level"]), "steps": int(sz["fit_steps"]), "lr": float(sz["lr"]),
          "sigma": float(sz["sigma"]), "sigma_start": float(sz["sigma_start"]),
          "lambda_lap": float(sz["lambda_lap"]), "lambda_flat": float(sz["lambda_flat"])}
    kw.update(over)
    return kw


def fit_silhouettes(target: Tensor, cameras: Cameras, *, level: int = 3, steps: int = 200, lr: float = 0.01,
                    sigma: float = 1e-4, lambda_lap: float = 0.03, lambda_flat: float = 3e-4,
                    radius: float = 0.5, snapshot_every: int = 0, progress: bool = False,
                    seed: int = 0, sigma_start: float | None = None, cull_eps: float = 1e-4) -> FitResult:
    """Deform an icosphere so that its soft silhouettes match ``target (N, H, W)`` seen by ``cameras`` (N).

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  The unknowns are one
    offset per vertex of an icosphere of the given ``level`` and ``radius``; the loss is
    ``1 - IoU`` (mean over views) ``+ lambda_lap * laplacian_loss + lambda_flat *
    flatten_loss``, minimised with Adam (``lr``, betas ``(0.5, 0.99)`` as in SoftRas'
    deformation demo).  ``snapshot_every > 0`` keeps the vertices every that many
    steps (for a slider).  ``sigma_start``: anneal the temperature geometrically from
    ``sigma_start`` to ``sigma`` over the steps (wide gradients first, sharp edges last);
    default: ``sigma`` throughout.  ``cull_eps``: face contributions below it are dropped
    (:func:`course_lib.render.rasterize_silhouette`; coarser than the renderer's default,
    which changes a pixel by at most ``cull_eps`` per nearby face and halves the work).
    Runs on the target's device.
    """
    if not isinstance(target, Tensor) or target.dim() != 3:
        raise ValueError(f"target must be silhouettes (N, H, W), got {getattr(target, 'shape', target)}")
    if len(cameras) != target.shape[0]:
        raise ValueError(f"{target.shape[0]} target views but {len(cameras)} cameras")
    if target.shape[1] != target.shape[2]:
        raise ValueError(f"square images expected, got {tuple(target.shape[1:])}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    dev = target.device
    size = int(target.shape[1])
    torch.manual_seed(seed)
    v0, faces = icosphere(level, radius=radius, device=dev)
    L = uniform_laplacian(faces, v0.shape[0])
    pairs = edge_face_pairs(faces)
    disp = torch.zeros_like(v0, requires_grad=True)
    opt = torch.optim.Adam([disp], lr=lr, betas=(0.5, 0.99))
    hist: dict[str, list[float]] = {"loss": [], "iou": [], "laplacian": [], "flatten": []}
    snaps, snap_steps = [], []
    it = range(steps)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="fit", leave=False)
    t0 = time.perf_counter()
    for step in it:
        verts = v0 + disp
        if snapshot_every and step % snapshot_every == 0:
            snaps.append(verts.detach().cpu().clone())
            snap_steps.append(step)
        if sigma_start is None or steps < 2:
            sg = sigma
        else:
            sg = sigma_start * (sigma / sigma_start) ** (step / (steps - 1))
        sil = rasterize_silhouette(verts[None], faces, cameras, size, sigma=sg, cull_eps=cull_eps)
        l_iou = silhouette_iou_loss(sil, target)
        l_lap = laplacian_loss(verts, faces, L) if lambda_lap else verts.new_zeros(())
        l_flat = flatten_loss(verts, faces, pairs) if lambda_flat else verts.new_zeros(())
        loss = l_iou + lambda_lap * l_lap + lambda_flat * l_flat
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        hist["loss"].append(float(loss.detach()))
        hist["iou"].append(1.0 - float(l_iou.detach()))
        hist["laplacian"].append(float(l_lap.detach()))
        hist["flatten"].append(float(l_flat.detach()))
    verts = (v0 + disp).detach()
    if snapshot_every:
        snaps.append(verts.cpu().clone())
        snap_steps.append(steps)
    return FitResult(verts, faces, hist, snaps, snap_steps, time.perf_counter() - t0)


def evaluate_fit(verts: Tensor, faces: Tensor, shape: Any, views: Sequence[tuple[float, float]], size: int,
                 n_points: int = 2000) -> dict[str, Any]:
    """Hard-silhouette IoU of a fitted mesh on ``views`` (vs :func:`course_lib.data.render`) and its 3D Chamfer.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  Returns ``iou`` (mean over
    the views), ``iou_per_view`` and ``chamfer`` (:data:`CD_CONVENTION`, ``n_points`` samples
    of the mesh and of the true surface, target stream).
    """
    from course_lib import metrics
    from course_lib.geometry import sample_mesh_surface

    target, cams = target_views(shape, views, size, device=verts.device)
    with torch.no_grad():
        sil = rasterize_silhouette(verts[None], faces, cams, size)
    iou = silhouette_iou(sil, target)
    import trimesh

    mesh = trimesh.Trimesh(verts.cpu().numpy(), faces.cpu().numpy(), process=False)
    pts, _ = sample_mesh_surface(mesh, n_points, seed=0)
    ref, _ = shape.sample_surface(n_points, stream=1)
    cd = float(metrics.chamfer(pts, ref, squared=True, directions="sum", scale=1000.0))
    return {"iou": float(iou.mean()), "iou_per_view": [float(x) for x in iou], "chamfer": cd}


def raster_speed(level: int = 3, size: int = 64, batch: int = 8, sigma: float = 1e-4,
                 methods: Sequence[str] = ("culled", "dense"), repeat: int = 3, device: Any = None,
                 dense_repeat: int = 1, warmup: bool = True, dense_chunk: int | None = 1) -> dict[str, Any]:
    """Median seconds of one soft-silhouette forward + backward, per method, and the largest difference.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  An icosphere of ``level``
    (1280 faces at level 3) seen by ``batch`` cameras around it at ``size`` pixels; on CUDA
    also the peak memory of each method.  ``warmup``: one untimed run of the culled method
    first (the dense one, seconds to minutes per run, is timed from its first run).
    ``dense_chunk``: the dense method renders (and back-propagates) that many images at a
    time, ``None`` = the whole batch at once; the work is the same, only the peak memory
    (on the CPU, about two GB of resident memory per 64 x 64 image of 1,280 faces) changes.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    v, f = icosphere(level, device=dev)
    cams = _cameras(view_rig(batch, 30.0), size, dev)
    out: dict[str, Any] = {"faces": int(f.shape[0]), "size": size, "batch": batch, "sigma": sigma,
                           "dense_chunk": dense_chunk,
                           "device": str(dev), "seconds": {}, "peak_mem_mb": {}}
    images = {}

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for m in methods:
        x = (v * 0.7).clone().requires_grad_(True)
        times = []
        n_rep = dense_repeat if m == "dense" else repeat
        first = 1 if warmup and m != "dense" else 0
        for r in range(n_rep + first):
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            sync()
            t0 = time.perf_counter()
            chunk = batch if (m != "dense" or not dense_chunk) else int(dense_chunk)
            parts = []
            for lo in range(0, batch, chunk):
                img = rasterize_silhouette(x, f, cams[lo:lo + chunk], size, sigma=sigma, method=m)
                img.sum().backward()
                parts.append(img.detach())
            img = torch.cat(parts)
            sync()
            if r >= first:
                times.append(time.perf_counter() - t0)
            x.grad = None
        images[m] = img.detach()
        out["seconds"][m] = sorted(times)[len(times) // 2]
        if dev.type == "cuda":
            out["peak_mem_mb"][m] = torch.cuda.max_memory_allocated(dev) / 2 ** 20
    if "culled" in images and "dense" in images:
        out["max_abs_diff"] = float((images["culled"] - images["dense"]).abs().max())
        out["speedup"] = out["seconds"]["dense"] / out["seconds"]["culled"]
    return out


def smoke(device: str = "cpu", steps: int = 1, profile: str = "gpu") -> dict[str, float]:
    """``steps`` silhouette-fitting steps of the ``profile``'s icosphere on ``device`` (a synthetic target).

    Introduced for ``benchmarks/gpu_smoke.py``: the target is the hard silhouette of a
    squashed sphere from ``ch09.n_views`` views; no data generation, no file written.
    """
    s = config.sizes(profile, prefix="ch09.")
    dev = torch.device(device)
    size, level = int(s["image_size"]), int(s["template_level"])
    cams = _cameras(view_rig(int(s["n_views"])), size, dev)
    v, f = icosphere(level, device=dev)
    target = rasterize_silhouette(v * torch.tensor([0.8, 0.5, 0.6], device=dev), f, cams, size)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    res = fit_silhouettes(target, cams, level=level, steps=int(steps), sigma=float(s["sigma"]), lr=float(s["lr"]))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    out = {"seconds": time.perf_counter() - t0, "loss": res.history["loss"][-1],
           "params": float(v.numel())}
    if dev.type == "cuda":
        out["peak_mem_mb"] = torch.cuda.max_memory_allocated(dev) / 2 ** 20
    return out

