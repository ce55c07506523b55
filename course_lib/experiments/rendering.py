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
  the true surface (:data:`CD_CONVENTION`); :func:`score_fit`: the same on the fitting views and the
  held-out views, beside the soft IoU the fit minimised (the two are not comparable);
* :func:`soft_iou_bias_demo`: the soft IoU of an *exact* sphere against its own silhouette is below 1,
  and a hidden inner layer raises it: the training loss rewards layers and folds;
* :func:`paired_shapes` (ShapeNet-lite, or a real dataset's meshes with ``dataset=``), :func:`sigma_candidates`,
  :func:`sigma_claims`, :func:`regulariser_claims`, :func:`goal_records`, :data:`GOALS`: the measuring protocol of the benchmark (sigma chosen on
  validation shapes, claims paired over at least 20 shapes, goals as records);
* :func:`raster_speed`: soft rasterisation forward + backward, culled vs dense;
* :func:`smoke`: a few fitting steps on a device (``benchmarks/gpu_smoke.py``).

Nothing is trained: each fit starts from the same sphere.  Choices (the temperature sigma and
whether to anneal it) are made on **validation** shapes (``split_seeds("val", n)``); the test shapes
are fitted only to report (protocol 2, :mod:`course_lib.experiments.protocol`).  The held-out views
use azimuths and an elevation that no fitting view uses.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from course_lib import config
from course_lib.experiments.mesh_shape import MeshShape
from course_lib.geometry.mesh_reg import (
    edge_face_pairs,
    flatten_loss,
    icosphere,
    laplacian_loss,
    uniform_laplacian,
)
from course_lib.metrics import describe_chamfer
from course_lib.render import (
    Cameras,
    look_at_cameras,
    rasterize_silhouette,
    render_mesh,
    silhouette_iou,
    silhouette_iou_loss,
)

__all__ = [
    "shaded_views",
    "fit_shaded",
    "seam_levels",
    "local_minima",
    "camera_pose_study",
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
    "score_fit",
    "soft_iou_bias_demo",
    "paired_shapes",
    "fit_budget",
    "sigma_candidates",
    "sigma_claims",
    "regulariser_claims",
    "GOALS",
    "goal_records",
    "raster_speed",
    "smoke",
]

CD_CONVENTION = (describe_chamfer("atlasnet") + "; between area-weighted samples of the fitted mesh and of the "
                 "true surface")
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


def _check_shape(shape: Any) -> None:
    from course_lib import data

    if not isinstance(shape, (data.Shape, MeshShape)):
        raise TypeError(f"shape must be a course_lib.data.Shape or a MeshShape (a real dataset's mesh), got "
                        f"{type(shape).__name__}")


def _render(shape: Any, **kw: Any) -> dict[str, Any]:
    """:func:`course_lib.data.render` (sphere tracing the exact SDF) for a ShapeNet-lite shape, exact ray casting of
    the mesh (:func:`course_lib.data.views.render_mesh`, the same cameras) for a real dataset's mesh."""
    from course_lib import data

    return shape.render(**kw) if isinstance(shape, MeshShape) else data.render(shape, **kw)


def target_views(shape: Any, views: Sequence[tuple[float, float]], size: int,
                 device: torch.device | str | None = None, cache: bool = True) -> tuple[Tensor, Cameras]:
    """Silhouettes ``(N, H, W)`` of ``shape`` seen from ``views`` by :func:`course_lib.data.render`, and the cameras.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  Cached on disk under
    ``config.cache_dir()/ch09`` (the render is deterministic).  ``shape`` may be a real dataset's mesh
    (:class:`~course_lib.experiments.mesh_shape.MeshShape`, :func:`paired_shapes` with ``dataset=``): its
    silhouettes come from exact ray casting of the repaired mesh, not from the renderer being tested either.
    """

    _check_shape(shape)
    key = f"{shape.key()}-{size}-{CAMERA}-{list(views)}"
    path = config.cache_dir() / "ch09" / f"views-{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"
    sil = None
    if cache and path.exists():
        try:
            sil = torch.load(path, weights_only=True)
        except Exception:  # noqa: BLE001 - a broken cache file is re-rendered
            sil = None
    if sil is None:
        sil = torch.stack([_render(shape, azimuth=a, elevation=e, size=size, **CAMERA)["silhouette"]
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
    stored: bool = False
    """True when the fit was read back from the cache (:func:`course_lib.train.stored_result`), not run now;
    ``seconds`` is then the time the fit took when it ran."""


def look_at_torch(azimuth: Tensor, elevation: Tensor, distance: float = 2.6, fov: float = 50.0,
                  size: int = 64) -> Cameras:
    """:func:`course_lib.data.look_at` written in torch, so that the cameras are differentiable in the angles.

    Introduced in ``lectures/09_differentiable_rendering.ipynb`` (camera-pose fitting).  ``azimuth`` and
    ``elevation`` are degrees, tensors of shape ``(B,)``; the defaults are :func:`look_at_cameras`'.
    """
    az, el = torch.as_tensor(azimuth), torch.as_tensor(elevation)
    if az.dim() != 1 or az.shape != el.shape:
        raise ValueError(f"azimuth and elevation must be (B,) tensors of one shape, got {tuple(az.shape)} and "
                         f"{tuple(el.shape)}")
    a, e = torch.deg2rad(az), torch.deg2rad(el)
    c = distance * torch.stack([torch.cos(e) * torch.sin(a), torch.sin(e), torch.cos(e) * torch.cos(a)], -1)
    z = -c / c.norm(dim=-1, keepdim=True)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=c.dtype, device=c.device).expand_as(z)
    x = torch.linalg.cross(z, up, dim=-1)
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.linalg.cross(z, x, dim=-1)
    rot = torch.stack([x, y, z], -2)
    t = -(rot @ c[..., None])[..., 0]
    f = 0.5 * size / math.tan(math.radians(fov) / 2)
    K = torch.tensor([[f, 0.0, size / 2], [0.0, f, size / 2], [0.0, 0.0, 1.0]], dtype=c.dtype, device=c.device)
    return Cameras(K.expand(len(az), 3, 3), torch.cat([rot, t[..., None]], -1))


def wrap_degrees(x: float) -> float:
    """An angle in degrees brought into [-180, 180) (lecture 09's camera-pose fits)."""
    return (x + 180.0) % 360.0 - 180.0


def pose_landscape(verts: Tensor, faces: Tensor, target: Tensor, azimuths: Sequence[float], elevation: float,
                   *, size: int, sigma: float | None = None) -> Tensor:
    """``1 - IoU`` between ``target (H, W)`` and the mesh seen from each azimuth at one elevation, ``(A,)``.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``: the loss a camera-pose fit descends, along
    one angle (hard silhouettes when ``sigma`` is None).
    """
    with torch.no_grad():
        cams = look_at_torch(torch.as_tensor(list(azimuths), dtype=torch.float32),
                             torch.full((len(azimuths),), float(elevation)), size=size)
        sil = rasterize_silhouette(verts[None].expand(len(azimuths), -1, -1), faces, cams, size, sigma=sigma)
        return torch.stack([silhouette_iou_loss(s[None], target[None]) for s in sil])


def fit_camera_pose(verts: Tensor, faces: Tensor, target: Tensor, start: tuple[float, float], *, size: int,
                    steps: int, lr: float = 3.0, sigma: float = 1e-4) -> dict[str, Any]:
    """Find the camera (azimuth, elevation; distance and field of view known) that shows ``target (H, W)``.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``, PyTorch3D's camera-position tutorial problem
    in the course's renderer: Adam (``lr`` in degrees) on ``1 - soft IoU`` from ``start`` (degrees), the
    elevation kept within (-80, 80).  Returns the start, the end (azimuth wrapped to [-180, 180)), the final
    loss and the history of both angles and the loss.
    """
    az = torch.tensor([float(start[0])], requires_grad=True)
    el = torch.tensor([float(start[1])], requires_grad=True)
    opt = torch.optim.Adam([az, el], lr=lr)
    hist: dict[str, list[float]] = {"azimuth": [], "elevation": [], "loss": []}
    for _ in range(int(steps)):
        sil = rasterize_silhouette(verts[None], faces, look_at_torch(az, el, size=size), size, sigma=sigma)
        loss = silhouette_iou_loss(sil, target[None])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            el.clamp_(-80.0, 80.0)
        hist["azimuth"].append(float(az.detach()))
        hist["elevation"].append(float(el.detach()))
        hist["loss"].append(float(loss.detach()))
    with torch.no_grad():
        final = float(silhouette_iou_loss(rasterize_silhouette(verts[None], faces, look_at_torch(az, el, size=size),
                                                               size), target[None]))
    return {"start": (float(start[0]), float(start[1])), "azimuth": wrap_degrees(float(az.detach())),
            "elevation": float(el.detach()), "hard_loss": final, "history": hist}


def local_minima(values: Sequence[float] | Tensor, *, circular: bool = False) -> list[int]:
    """Indices of the strict local minima of a sampled curve (a point below both neighbours; with ``circular`` the
    ends are neighbours, as for an angle sampled all the way round)."""
    v = [float(x) for x in values]
    n = len(v)
    out = []
    for i in range(n):
        if not circular and (i == 0 or i == n - 1):
            continue
        if v[i] < v[(i - 1) % n] and v[i] < v[(i + 1) % n]:
            out.append(i)
    return out


def camera_pose_study(verts: Tensor, faces: Tensor, true_pose: tuple[float, float], *, size: int, steps: int,
                      n_starts: int, start_elevation: float = 5.0, grid_step: float = 5.0,
                      tolerance: float = 10.0, sigma: float = 1e-4) -> dict[str, Any]:
    """The camera-pose problem of lecture 09, Section 10, in one call.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  The target is the mesh's hard silhouette from
    ``true_pose`` (azimuth, elevation, degrees); :func:`pose_landscape` samples the loss along the azimuth every
    ``grid_step`` degrees at the true elevation; :func:`fit_camera_pose` runs from ``n_starts`` azimuths spread
    evenly around the object at ``start_elevation``.  Returns ``"target"``, ``"azimuths"`` and ``"landscape"``,
    ``"runs"`` (each fit's result), ``"found"`` (the runs that ended within ``tolerance`` degrees of the true
    pose in both angles), ``"minima"`` (the azimuths of the landscape's local minima, the grid read as a circle).
    """
    if n_starts < 1 or steps < 0:
        raise ValueError(f"n_starts must be >= 1 and steps >= 0, got {n_starts} and {steps}")
    az0, el0 = float(true_pose[0]), float(true_pose[1])
    target = rasterize_silhouette(verts[None], faces, look_at_torch(torch.tensor([az0]), torch.tensor([el0]),
                                                                    size=size), size)[0]
    grid = [float(a) for a in torch.arange(-180.0, 180.0, float(grid_step)).tolist()]
    land = pose_landscape(verts, faces, target, grid, el0, size=size)
    starts = [(wrap_degrees(az0 - 180.0 + 360.0 * (k + 0.5) / n_starts), float(start_elevation))
              for k in range(int(n_starts))]
    runs = [fit_camera_pose(verts, faces, target, st, size=size, steps=int(steps), sigma=sigma) for st in starts]
    found = [r for r in runs if abs(wrap_degrees(r["azimuth"] - az0)) <= tolerance
             and abs(r["elevation"] - el0) <= tolerance]
    return {"target": target, "azimuths": grid, "landscape": land, "runs": runs, "found": found,
            "minima": [grid[i] for i in local_minima(land, circular=True)], "true_pose": (az0, el0),
            "tolerance": float(tolerance)}


def to_pytorch3d_view(cameras: Cameras) -> tuple[Tensor, Tensor]:
    """The course's cameras (OpenCV axes: x right, y down, z forward) as PyTorch3D's ``(R, T)``.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  PyTorch3D's view axes are +X left, +Y up,
    +Z into the scene, and it multiplies row vectors, ``X_view = X_world @ R + T``; so ``R`` is the course's
    rotation with its first two rows negated, transposed, and ``T`` the course's translation with its first
    two entries negated.  Returns ``R (B, 3, 3)`` and ``T (B, 3)``.  (Intrinsics differ too: PyTorch3D's NDC
    puts +1 at the top-left corner, the course counts pixels from the top-left; not converted here.)
    """
    flip = torch.tensor([-1.0, -1.0, 1.0], dtype=cameras.Rt.dtype, device=cameras.Rt.device)
    R_cv, t_cv = cameras.Rt[:, :, :3], cameras.Rt[:, :, 3]
    return (flip[:, None] * R_cv).transpose(1, 2), flip * t_cv


def renderer_settings(sigma: float, cull_eps: float, image_size: int) -> dict[str, float]:
    """The course's soft-rasteriser settings in SoftRas' and PyTorch3D's terms (square images).

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  All three measure the distance ``d`` from a
    pixel centre to a face's edges in normalised screen units (the image side spans 2: PyTorch3D's NDC for a
    square image, SoftRas' screen space) and blend with ``sigmoid(+-d^2 / sigma)``, so ``sigma`` is the same
    number in the three.  A face is dropped where its coverage is below a threshold: the course's
    ``cull_eps``, SoftRas' ``dist_eps``; PyTorch3D instead takes ``blur_radius``, a cut-off on ``d^2`` itself,
    which its silhouette tutorial sets to ``sigma * ln(1 / eps - 1)`` with ``eps = 1e-4``: the same rule.
    Returns those numbers and the band's half-width in pixels, ``sqrt(blur_radius) * image_size / 2``.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if not 0.0 < cull_eps < 0.5:
        raise ValueError(f"cull_eps must be in (0, 0.5), got {cull_eps}")
    import math

    blur = float(sigma) * math.log(1.0 / cull_eps - 1.0)
    return {"sigma": float(sigma), "softras_sigma_val": float(sigma), "softras_dist_eps": float(cull_eps),
            "pytorch3d_sigma": float(sigma), "pytorch3d_blur_radius": blur,
            "band_half_width_px": math.sqrt(blur) * image_size / 2.0}


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
                    seed: int = 0, sigma_start: float | None = None, cull_eps: float = 1e-4,
                    store: bool = False) -> FitResult:
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
    Runs on the target's device.  ``store=True``: the result is computed once and then read back from the
    cache (:func:`course_lib.train.stored_result`, keyed by the targets, the cameras, every argument and the
    code of the fit), with ``stored`` set on the result.
    """
    if not isinstance(target, Tensor) or target.dim() != 3:
        raise ValueError(f"target must be silhouettes (N, H, W), got {getattr(target, 'shape', target)}")
    if len(cameras) != target.shape[0]:
        raise ValueError(f"{target.shape[0]} target views but {len(cameras)} cameras")
    if target.shape[1] != target.shape[2]:
        raise ValueError(f"square images expected, got {tuple(target.shape[1:])}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if store:
        from course_lib import train as T
        from course_lib.geometry import mesh_reg as _mesh_reg
        from course_lib.render import cameras as _cameras
        from course_lib.render import losses as _losses
        from course_lib.render import raster as _raster

        kw = {"level": level, "steps": steps, "lr": lr, "sigma": sigma, "lambda_lap": lambda_lap,
              "lambda_flat": lambda_flat, "radius": radius, "snapshot_every": snapshot_every, "seed": seed,
              "sigma_start": sigma_start, "cull_eps": cull_eps}
        spec = {"target": target, "cameras": cameras, **kw,
                "code": T.code_version(fit_silhouettes, _raster, _losses, _cameras, _mesh_reg)}
        res, loaded = T.stored_result("ch09_fit", spec, lambda: fit_silhouettes(target, cameras, progress=progress,
                                                                                **kw))
        res.stored = loaded
        return res
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


def shaded_views(shape: Any, views: Sequence[tuple[float, float]], size: int) -> tuple[Tensor, Tensor, Cameras]:
    """RGB images ``(N, 3, H, W)`` of ``shape`` in one colour (:func:`course_lib.data.render`, ``color="uniform"``,
    lit as :func:`course_lib.render.face_shading` lights a mesh), its silhouettes ``(N, H, W)`` and the cameras."""
    _check_shape(shape)
    rgb, sil = [], []
    for az, el in views:
        r = _render(shape, azimuth=float(az), elevation=float(el), distance=CAMERA["distance"], fov=CAMERA["fov"],
                        size=int(size), color="uniform")
        rgb.append(r["rgb"])
        sil.append(r["silhouette"])
    return torch.stack(rgb), torch.stack(sil), _cameras(views, size)


def fit_shaded(target_rgb: Tensor, target_sil: Tensor, cameras: Cameras, *, lambda_rgb: float = 1.0,
               level: int = 3, steps: int = 200, lr: float = 0.01, sigma: float = 1e-4, gamma: float = 1e-4,
               lambda_lap: float = 0.03, lambda_flat: float = 3e-4, radius: float = 0.5, seed: int = 0,
               cull_eps: float = 1e-4, store: bool = False) -> FitResult:
    """:func:`fit_silhouettes` with a colour term: the soft z-buffer at work.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  The loss adds ``lambda_rgb`` times the mean
    squared difference between ``target_rgb (N, 3, H, W)`` and the SoftRas colour image of the mesh
    (:func:`course_lib.render.render_mesh` at ``sigma`` and depth temperature ``gamma``: a softmax over the faces
    near each pixel weighted towards the nearest, so that shading, which depends on the normals, pulls on the
    vertices too).  ``lambda_rgb=0`` is the silhouette-only fit with the same loop.  History: ``loss``, ``iou``
    (soft), ``rgb``, ``laplacian``, ``flatten``.  ``store=True``: computed once, then read back from the cache
    (:func:`course_lib.train.stored_result`, keyed by the targets, the cameras, every argument and the code).
    """
    kw = {"lambda_rgb": lambda_rgb, "level": level, "steps": steps, "lr": lr, "sigma": sigma, "gamma": gamma,
          "lambda_lap": lambda_lap, "lambda_flat": lambda_flat, "radius": radius, "seed": seed, "cull_eps": cull_eps}
    if store:
        from course_lib import train as T
        from course_lib.render import raster as _raster

        spec = {"rgb": target_rgb, "sil": target_sil, "cameras": cameras, **kw,
                "code": T.code_version(fit_shaded, _raster)}
        res, loaded = T.stored_result("ch09_fit_shaded", spec, lambda: fit_shaded(target_rgb, target_sil, cameras,
                                                                                   **kw))
        res.stored = loaded
        return res
    if target_rgb.dim() != 4 or target_rgb.shape[1] != 3 or target_rgb.shape[0] != target_sil.shape[0]:
        raise ValueError(f"target_rgb must be (N, 3, H, W) with N = {target_sil.shape[0]} silhouettes, "
                         f"got {tuple(target_rgb.shape)}")
    if len(cameras) != target_sil.shape[0]:
        raise ValueError(f"{target_sil.shape[0]} target views but {len(cameras)} cameras")
    size = int(target_sil.shape[1])
    torch.manual_seed(seed)
    v0, faces = icosphere(level, radius=radius, device=target_sil.device)
    L = uniform_laplacian(faces, v0.shape[0])
    pairs = edge_face_pairs(faces)
    disp = torch.zeros_like(v0, requires_grad=True)
    opt = torch.optim.Adam([disp], lr=lr, betas=(0.5, 0.99))
    hist: dict[str, list[float]] = {"loss": [], "iou": [], "rgb": [], "laplacian": [], "flatten": []}
    t0 = time.perf_counter()
    for _ in range(int(steps)):
        verts = v0 + disp
        if lambda_rgb:
            out = render_mesh(verts[None].expand(len(cameras), -1, -1), faces, cameras, size, sigma=sigma, gamma=gamma,
                              cull_eps=cull_eps)
            sil, l_rgb = out["silhouette"], (out["rgb"] - target_rgb).square().mean()
        else:
            sil = rasterize_silhouette(verts[None], faces, cameras, size, sigma=sigma, cull_eps=cull_eps)
            l_rgb = verts.new_zeros(())
        l_iou = silhouette_iou_loss(sil, target_sil)
        l_lap = laplacian_loss(verts, faces, L)
        l_flat = flatten_loss(verts, faces, pairs)
        loss = l_iou + lambda_rgb * l_rgb + lambda_lap * l_lap + lambda_flat * l_flat
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for k, v in (("loss", loss), ("iou", 1.0 - l_iou), ("rgb", l_rgb), ("laplacian", l_lap), ("flatten", l_flat)):
            hist[k].append(float(v.detach()))
    return FitResult((v0 + disp).detach(), faces, hist, seconds=time.perf_counter() - t0)


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


def _hard_iou(verts: Tensor, faces: Tensor, shape: Any, views: Sequence[tuple[float, float]], size: int) -> Tensor:
    target, cams = target_views(shape, views, size, device=verts.device)
    with torch.no_grad():
        sil = rasterize_silhouette(verts[None], faces, cams, size)
    return silhouette_iou(sil, target)


def score_fit(res: FitResult, shape: Any, fit_views: Sequence[tuple[float, float]],
              heldout_views: Sequence[tuple[float, float]], size: int, n_points: int = 2000) -> dict[str, Any]:
    """Everything the chapter reports about one fit, each IoU named by what it measures.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  ``soft_iou_fit_views``: the
    *soft* IoU the optimiser maximised (last step, at the last step's sigma; it rewards layers and
    folds, :func:`soft_iou_bias_demo`, so it is not comparable with a hard IoU);
    ``hard_iou_fit_views``: the hard silhouette of the fitted mesh against :func:`course_lib.data.render`
    on the fitting views; ``heldout_iou`` (hard, held-out views), ``heldout_iou_per_view`` and
    ``chamfer`` from :func:`evaluate_fit`; ``seconds`` of the fit.
    """
    if not res.history.get("iou"):
        raise ValueError("score_fit needs a fit that ran at least one step")
    ev = evaluate_fit(res.verts, res.faces, shape, heldout_views, size, n_points)
    fit_iou = _hard_iou(res.verts, res.faces, shape, fit_views, size)
    return {"soft_iou_fit_views": float(res.history["iou"][-1]), "hard_iou_fit_views": float(fit_iou.mean()),
            "heldout_iou": ev["iou"], "heldout_iou_per_view": ev["iou_per_view"], "chamfer": ev["chamfer"],
            "seconds": float(res.seconds)}


def seam_levels(verts: Tensor, faces: Tensor, camera: Cameras, size: int, sigma: float, *, margin: int = 2,
                cull_eps: float = 1e-8) -> dict[str, float]:
    """How dark the seams between faces get inside a soft silhouette, for a closed mesh and for its front faces.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  ``verts (V, 3)``, ``faces (F, 3)`` (outward
    normals), one ``camera``.  Returns the smallest soft-silhouette value over the pixels at least ``margin``
    pixels inside the closed mesh's hard silhouette: ``"closed"`` with every face, ``"front_only"`` with only
    the faces turned towards the camera (an open sheet, where two faces meeting at an edge give a pixel
    centre on it ``1 - 1/2 * 1/2 = 3/4``); also ``"interior_pixels"``, ``"front_faces"`` and ``"sigma"``.
    Back faces lie behind every seam of a closed mesh and lift it.
    """
    if verts.dim() != 2 or verts.shape[-1] != 3:
        raise ValueError(f"verts must be (V, 3), got {tuple(verts.shape)}")
    if len(camera) != 1:
        raise ValueError(f"one camera expected, got {len(camera)}")
    rot, t = camera.Rt[0, :, :3].to(verts.dtype), camera.Rt[0, :, 3].to(verts.dtype)
    eye = -rot.T @ t  # the camera centre in world coordinates
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    normal = torch.cross(b - a, c - a, dim=-1)
    front = faces[((normal * (eye - (a + b + c) / 3)).sum(-1) > 0)]
    with torch.no_grad():
        hard = rasterize_silhouette(verts, faces, camera, size)[0]
        inside = 1.0 - torch.nn.functional.max_pool2d((1.0 - hard)[None, None], 2 * margin + 1, stride=1,
                                                      padding=margin)[0, 0]
        mask = inside > 0.5
        if not bool(mask.any()):
            raise ValueError(f"no pixel lies {margin} pixels inside the silhouette: a larger mesh or image is needed")
        closed = rasterize_silhouette(verts, faces, camera, size, sigma=sigma, cull_eps=cull_eps)[0]
        sheet = rasterize_silhouette(verts, front, camera, size, sigma=sigma, cull_eps=cull_eps)[0]
    return {"closed": float(closed[mask].min()), "front_only": float(sheet[mask].min()),
            "interior_pixels": int(mask.sum()), "front_faces": int(front.shape[0]), "sigma": float(sigma)}


def soft_iou_bias_demo(level: int = 3, size: int = 64, n_views: int = 8, sigma: float = 1e-4,
                       cull_eps: float = 1e-4, radius: float = 0.6, inner: float = 0.9,
                       device: Any = None) -> dict[str, float]:
    """What the fitting loss rewards: soft IoUs of meshes whose *hard* silhouettes are exact.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  An icosphere of ``level`` and
    ``radius`` is seen from ``view_rig(n_views)``; its own hard silhouettes are the targets.
    Returns (``soft_iou_*`` = ``1 - silhouette_iou_loss`` of the soft silhouette at ``sigma`` and
    ``cull_eps``, as in :func:`fit_silhouettes`):

    * ``soft_iou_exact``: the exact sphere against its own silhouette.  Below 1: the soft edge
      spills outside and the seams between faces inside stay below 1;
    * ``soft_iou_layered`` / ``hard_iou_layered``: the same sphere plus a hidden copy scaled by
      ``inner`` (entirely inside, so the hard silhouette, and ``hard_iou_layered``, do not change),
      which fills the seams: a mesh with extra layers scores a higher soft IoU;
    * ``soft_iou_coarser``: an icosphere one level coarser against *its* own silhouette (fewer,
      larger faces, fewer seams).
    """
    if level < 1:
        raise ValueError(f"level must be >= 1 (the coarser sphere is level - 1), got {level}")
    if not 0 < inner < 1:
        raise ValueError(f"inner must be in (0, 1) so that the copy is hidden inside, got {inner}")
    cams = _cameras(view_rig(n_views), size, device)

    def soft_iou(v: Tensor, f: Tensor, target: Tensor) -> float:
        soft = rasterize_silhouette(v, f, cams, size, sigma=sigma, cull_eps=cull_eps)
        return 1.0 - float(silhouette_iou_loss(soft, target))

    with torch.no_grad():
        v, f = icosphere(level, radius=radius, device=device)
        hard = rasterize_silhouette(v, f, cams, size)
        v2, f2 = torch.cat([v, v * inner]), torch.cat([f, f + v.shape[0]])
        hard2 = rasterize_silhouette(v2, f2, cams, size)
        vc, fc = icosphere(level - 1, radius=radius, device=device)
        hard_c = rasterize_silhouette(vc, fc, cams, size)
        return {"soft_iou_exact": soft_iou(v, f, hard), "soft_iou_layered": soft_iou(v2, f2, hard),
                "hard_iou_layered": float(silhouette_iou(hard2, hard).min()),
                "soft_iou_coarser": soft_iou(vc, fc, hard_c), "faces": int(f.shape[0]),
                "faces_coarser": int(fc.shape[0]), "sigma": float(sigma), "size": int(size), "views": int(n_views)}


# ---------------------------------------------------------------------------
# The measuring protocol of the benchmark (course_lib.experiments.protocol)
# ---------------------------------------------------------------------------
GOALS: dict[str, float] = {"ray_casting_iou": 0.999, "culled_vs_dense": 1e-5, "multi_view_heldout_iou": 0.9}
"""The chapter's goals (laptop profile): the hard rasteriser agrees with trimesh ray casting (IoU, min over
shapes and views), the culled soft rasteriser equals the dense reference (max |difference|), and the multi-view
fit reaches a mean *hard* IoU on the held-out views of the test shapes."""


def paired_shapes(split: str, categories: Sequence[str], n: int, *, dataset: str | None = None,
                  root: str | None = None, profile: str | None = None) -> list[Any]:
    """At least ``n`` shapes of ``split``, dealt evenly over ``categories`` (the same ``ceil(n / len(categories))``
    seeds in every category), in a fixed order.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``: the shapes over which the benchmark pairs
    two settings (every setting fits the same shapes).  Inside :func:`course_lib.data.no_test_reads`
    asking for ``"test"`` raises.  ``dataset`` / ``root`` (or ``COURSE_DATASET`` and ``COURSE_MODELNET_DIR`` /
    ``COURSE_SHAPENET_DIR``): the first meshes of each category of a real dataset's split instead
    (:func:`course_lib.experiments.mesh_shape.real_shapes`, :class:`~course_lib.experiments.mesh_shape.MeshShape`:
    the fits, :func:`target_views`, :func:`evaluate_fit` and :func:`score_fit` take them as they take a ``Shape``).
    """
    from course_lib import data

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not categories:
        raise ValueError("categories must not be empty")
    from course_lib.data.real_split import dataset_name

    per = -(-n // len(categories))
    if dataset_name(dataset) != "shapenet-lite":
        from .mesh_shape import real_shapes

        return real_shapes(split, categories, per, dataset=dataset, root=root, profile=profile)  # type: ignore[return-value]
    if root is not None:
        raise ValueError("root= is for real datasets (dataset='modelnet' or 'shapenetcore'); ShapeNet-lite is "
                         "generated, it has no root folder")
    seeds = data.split_seeds(split, per)
    return [data.make_shape(c, s) for c in categories for s in seeds]


def fit_budget(steps: int, n_views: int, seconds: Sequence[float], level: int, **extra: Any) -> dict[str, Any]:
    """One fitting setting's budget (:func:`course_lib.experiments.protocol.budget`): ``steps`` of Adam,
    ``steps * n_views`` silhouettes rendered, the mean ``seconds`` per fit, the template's ``3 V`` unknowns."""
    from course_lib.experiments.protocol import budget

    n_verts = 10 * 4 ** int(level) + 2
    secs = [float(x) for x in seconds]
    return budget(steps=int(steps), examples=int(steps) * int(n_views),
                  seconds=sum(secs) / len(secs) if secs else None, params=3 * n_verts, views=int(n_views), **extra)


def sigma_candidates(sigmas: Sequence[float], sigma: float, sigma_start: float | None) -> dict[str, dict[str, Any]]:
    """The settings the sigma sweep fits: each fixed ``sigmas`` (and the default ``sigma``, added if missing),
    and ``sigma_start -> sigma`` annealed (when ``sigma_start`` is given), named ``"fixed 0.0001"``,
    ``"annealed 0.001 -> 0.0001"``; values are keyword arguments of :func:`fit_silhouettes`.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.
    """
    vals = sorted({float(x) for x in sigmas} | {float(sigma)}, reverse=True)
    if any(v <= 0 for v in vals):
        raise ValueError(f"every sigma must be > 0, got {vals}")
    out: dict[str, dict[str, Any]] = {f"fixed {v:g}": {"sigma": v, "sigma_start": None} for v in vals}
    if sigma_start is not None:
        out[f"annealed {float(sigma_start):g} -> {float(sigma):g}"] = {"sigma": float(sigma),
                                                                     "sigma_start": float(sigma_start)}
    return out


def _pair(id: str, text: str, a: str, b: str, rows: dict[str, Sequence[dict[str, Any]]], key: str, metric: str,
          higher_is_better: bool, budgets: dict[str, dict[str, Any]], selected_on: str) -> dict[str, Any]:
    from course_lib.experiments.protocol import claim

    ra, rb = rows[a], rows[b]
    if [r.get("shape") for r in ra] != [r.get("shape") for r in rb]:
        raise ValueError(f"claim {id!r}: {a!r} and {b!r} were not fitted to the same shapes in the same order")
    return claim(id, text, a=a, b=b, metric=metric, values_a=[r[key] for r in ra], values_b=[r[key] for r in rb],
                 higher_is_better=higher_is_better, unit="shapes", budget={a: budgets[a], b: budgets[b]},
                 selected_on=selected_on)


def sigma_claims(rows: dict[str, Sequence[dict[str, Any]]], candidates: dict[str, dict[str, Any]], sigma: float,
                 budgets: dict[str, dict[str, Any]], split: str = "val") -> list[dict[str, Any]]:
    """The claims of the sigma sweep, paired over the shapes every candidate fitted (at least 20).

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  ``rows[name]`` holds one
    :func:`score_fit` dict (with ``"shape"``) per shape for each of ``candidates``; ``sigma`` is the
    default (fixed) temperature.  Stable ids, each on the hard held-out IoU and on the Chamfer distance:
    ``sigma_small_*`` (the default against the smallest fixed sigma), ``sigma_large_*`` (against the
    largest), ``annealed_*`` (annealing against the fixed default); a comparison whose rows are
    missing is left out.  Each row is one fixed setting, so ``selected_on="none"``; ``split`` goes
    into the sentence.
    """
    default = f"fixed {float(sigma):g}"
    if default not in rows:
        raise ValueError(f"the default setting {default!r} was not fitted (rows: {sorted(rows)})")
    fixed = sorted((c["sigma"], n) for n, c in candidates.items() if c.get("sigma_start") is None and n in rows)
    annealed = [n for n, c in candidates.items() if c.get("sigma_start") is not None and n in rows]
    where = f"{split} shapes"
    out = []
    pairs = []
    if fixed and fixed[0][1] != default:
        pairs.append(("sigma_small", default, fixed[0][1],
                      f"a smaller sigma ({fixed[0][0]:g}), whose gradient reaches fewer pixels"))
    if fixed and fixed[-1][1] != default:
        pairs.append(("sigma_large", default, fixed[-1][1], f"a larger sigma ({fixed[-1][0]:g}), whose silhouette is blurred"))
    for name in annealed:
        pairs.append(("annealed", name, default, f"a fixed sigma of {float(sigma):g}"))
    for cid, a, b, what in pairs:
        c = candidates[a]
        lead = (f"Annealing sigma from {c['sigma_start']:g} to {c['sigma']:g}" if cid == "annealed"
                else f"A fixed sigma of {c['sigma']:g}")
        out.append(_pair(f"{cid}_heldout_iou", f"{lead} matches the held-out views better than {what} "
                         f"(hard IoU, {where})", a, b, rows, "heldout_iou", "hard IoU, held-out views", True,
                         budgets, "none"))
        out.append(_pair(f"{cid}_chamfer", f"{lead} ends closer to the true surface than {what} (Chamfer, {where})",
                         a, b, rows, "chamfer", "CD x1e3", False, budgets, "none"))
        if cid == "annealed":
            break  # one annealed schedule is the chapter's comparison
    return out


def regulariser_claims(rows: dict[str, Sequence[dict[str, Any]]], budgets: dict[str, dict[str, Any]],
                       regularised: str = "IoU + Laplacian + flatten", plain: str = "IoU only",
                       split: str = "test") -> list[dict[str, Any]]:
    """The claims of the one-view experiment, paired over shapes: the regularised fit against the IoU-only fit
    on the flatten energy (folds), the hard held-out IoU and the Chamfer distance.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  ``rows[name]`` holds one dict per shape
    with ``"shape"``, ``"flatten"``, ``"heldout_iou"``, ``"chamfer"``.
    """
    where = f"{split} shapes, one view"
    return [
        _pair("regularised_flatten", f"The regularisers leave fewer folds than the IoU loss alone (flatten energy, "
              f"{where})", regularised, plain, rows, "flatten", "flatten energy", False, budgets, "none"),
        _pair("regularised_heldout_iou", f"The regularised fit matches the held-out views better than the IoU loss "
              f"alone (hard IoU, {where})", regularised, plain, rows, "heldout_iou", "hard IoU, held-out views", True,
              budgets, "none"),
        _pair("regularised_chamfer", f"The regularised fit lies closer to the true surface than the IoU loss alone "
              f"(Chamfer, {where})", regularised, plain, rows, "chamfer", "CD x1e3", False, budgets, "none"),
    ]


def goal_records(parts: dict[str, Any], goals: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """The goal records (:func:`course_lib.experiments.protocol.goal`) of the parts that ran.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  ``parts`` is the benchmark's data:
    ``agreement`` (``rows[*].iou_vs_ray_casting``), ``speed`` (``{device: {"max_abs_diff"}}``) and
    ``multi`` (``rows[*].heldout_iou``, hard, test shapes); a part that did not run gives no record.
    """
    from course_lib.experiments.protocol import goal

    g = dict(GOALS if goals is None else goals)
    out = []
    a = parts.get("agreement")
    if a and a.get("rows"):
        v = min(float(r["iou_vs_ray_casting"]) for r in a["rows"])
        out.append(goal("ray_casting_iou", f"the hard rasteriser agrees with trimesh ray casting of the same meshes "
                        f"(IoU, min over {len(a['rows'])} shapes and their views)", v, g["ray_casting_iou"],
                        comparison=">="))
    sp = parts.get("speed")
    if sp:
        v = max(float(r["max_abs_diff"]) for r in sp.values())
        out.append(goal("culled_vs_dense", "the culled soft rasteriser equals the dense reference (max |difference| "
                        "of the silhouettes)", v, g["culled_vs_dense"], comparison="<="))
    m = parts.get("multi")
    if m and m.get("rows"):
        vals = [float(r["heldout_iou"]) for r in m["rows"]]
        out.append(goal("multi_view_heldout_iou", f"multi-view fit: mean hard IoU on the held-out views of "
                        f"{len(vals)} test shapes", sum(vals) / len(vals), g["multi_view_heldout_iou"],
                        comparison=">="))
    return out


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

