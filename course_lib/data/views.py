"""Rendered views of ShapeNet-lite shapes: silhouette, depth and shaded RGB by sphere tracing the SDF.

Introduced in ``lectures/01_data_and_representations.ipynb`` (used for single-view
reconstruction in ``lectures/06_surfaces.ipynb``).

Camera conventions (OpenCV style)
---------------------------------
* World frame: ``y`` up.  A camera at azimuth ``a``, elevation ``e`` (degrees) and
  distance ``r`` sits at ``r * (cos e sin a, sin e, cos e cos a)`` and looks at the origin.
* Camera frame: ``x`` right, ``y`` down, ``z`` forward (into the scene).
* ``Rt`` (3, 4) maps world to camera: ``x_cam = R @ x_world + t``.
* ``K`` (3, 3) maps camera to pixels: ``(u, v, 1) ~ K @ x_cam``, where ``u`` is the
  column and ``v`` the row, both in pixel units with the centre of pixel ``(row i,
  col j)`` at ``(j + 0.5, i + 0.5)``.
* ``depth`` is the camera-space ``z`` of the first hit, **0 where the ray misses**.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import config
from .shapes import Shape

__all__ = ["look_at", "camera_rays", "render", "depth_to_points", "PART_PALETTE"]

PART_PALETTE = np.array([
    [0.33, 0.53, 0.80], [0.89, 0.47, 0.20], [0.35, 0.70, 0.40], [0.84, 0.33, 0.35],
    [0.58, 0.45, 0.75], [0.60, 0.45, 0.35], [0.90, 0.55, 0.75], [0.55, 0.55, 0.55],
], dtype=np.float32)
"""Colours of parts 0, 1, 2, ... (cycled) when rendering with ``color="parts"``."""


def look_at(azimuth: float, elevation: float, distance: float, fov: float, size: int | tuple[int, int],
            device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Pinhole camera looking at the origin: returns ``(K (3, 3), Rt (3, 4))`` float32.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  ``fov`` is the
    vertical field of view in degrees; ``size`` is ``H`` or ``(H, W)``.
    """
    H, W = (size, size) if isinstance(size, (int, np.integer)) else size
    if H < 1 or W < 1:
        raise ValueError(f"image size must be positive, got {(H, W)}")
    if not 0.0 < fov < 180.0:
        raise ValueError(f"fov must be in (0, 180) degrees, got {fov}")
    if not abs(elevation) < 89.9:
        raise ValueError(f"elevation must be in (-89.9, 89.9) degrees (the up vector is y), got {elevation}")
    if not distance > 0:
        raise ValueError(f"distance must be positive, got {distance}")
    a, e = math.radians(azimuth), math.radians(elevation)
    c = distance * np.array([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])
    z = -c / np.linalg.norm(c)
    x = np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    t = -R @ c
    f = 0.5 * H / math.tan(math.radians(fov) / 2)
    K = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]])
    Rt = np.concatenate([R, t[:, None]], axis=1)
    return (torch.tensor(K, dtype=torch.float32, device=device),
            torch.tensor(Rt, dtype=torch.float32, device=device))


def camera_rays(K: Tensor, Rt: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """World-space ray origins and unit directions ``(H, W, 3)`` through the pixel centres."""
    H, W = size
    dev = K.device
    v, u = torch.meshgrid(torch.arange(H, device=dev, dtype=torch.float32) + 0.5,
                          torch.arange(W, device=dev, dtype=torch.float32) + 0.5, indexing="ij")
    d_cam = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
    R, t = Rt[:, :3], Rt[:, 3]
    d = d_cam @ R  # R^T d_cam, row-vector form
    d = d / d.norm(dim=-1, keepdim=True)
    origin = -(R.T @ t)
    return origin.expand(H, W, 3), d


@torch.no_grad()
def render(shape: Shape, azimuth: float = 30.0, elevation: float = 20.0, distance: float = 2.6,
           fov: float = 50.0, size: int | tuple[int, int] | None = None, *, color: str = "parts",
           light: tuple[float, float, float] | None = None, background: float = 1.0,
           max_steps: int = 128, device: torch.device | str | None = None) -> dict[str, Any]:
    """Render a shape by sphere tracing its SDF (batched over pixels, any device).

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    Returns a dict: ``silhouette`` (H, W) float32 in {0, 1}; ``depth`` (H, W) float32
    camera-space z (0 where the ray misses); ``rgb`` (3, H, W) float32 in [0, 1]
    (Lambertian shading with the SDF normal, one ambient term; ``background`` where
    the ray misses); ``normals`` (3, H, W) world-space unit normals (0 on background);
    ``part`` (H, W) long part index (-1 on background); ``K`` (3, 3); ``Rt`` (3, 4);
    ``camera`` dict(azimuth, elevation, distance, fov).  ``size`` defaults to the
    config size ``data.image_size``; ``color`` is ``"parts"`` (one colour per part)
    or ``"uniform"``; ``light`` is a world-space direction *towards* the light
    (default: from above, behind the camera's left shoulder).

    The shape lies in the unit sphere, so rays start where they enter it; a ray
    stops when ``sdf < 1e-4 * distance`` (hit) or leaves the sphere (miss).  With a
    bound instead of an exact SDF the steps are only shorter, never unsafe.
    """
    if not isinstance(shape, Shape):
        raise TypeError(f"expected a course_lib.data.Shape, got {type(shape).__name__}")
    if color not in ("parts", "uniform"):
        raise ValueError(f"color must be 'parts' or 'uniform', got {color!r}")
    if size is None:
        size = int(config.size("data.image_size"))
    H, W = (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    K, Rt = look_at(azimuth, elevation, distance, fov, (H, W), device=device)
    o, d = camera_rays(K, Rt, (H, W))
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    n_rays = o.shape[0]
    # ray / unit sphere: |o + t d|^2 = 1
    b = (o * d).sum(-1)
    disc = b * b - ((o * o).sum(-1) - 1.0)
    enters = disc > 0
    sq = disc.clamp(min=0).sqrt()
    t = (-b - sq).clamp(min=0)
    t_far = -b + sq
    eps = 1e-4 * distance
    hit = torch.zeros(n_rays, dtype=torch.bool, device=o.device)
    active = enters.clone()
    for _ in range(int(max_steps)):
        idx = torch.nonzero(active).squeeze(1)
        if idx.numel() == 0:
            break
        p = o[idx] + t[idx, None] * d[idx]
        s = shape.sdf(p)
        done = s < eps
        hit[idx[done]] = True
        t[idx] = t[idx] + torch.where(done, torch.zeros_like(s), s)
        gone = t[idx] > t_far[idx]
        active[idx[done | gone]] = False
    # rays still marching after max_steps (grazing) count as hits only if close enough
    if active.any():
        idx = torch.nonzero(active).squeeze(1)
        s = shape.sdf(o[idx] + t[idx, None] * d[idx])
        hit[idx[s < 10 * eps]] = True
    pts = o + t[:, None] * d
    normals = torch.zeros(n_rays, 3, device=o.device)
    part = torch.full((n_rays,), -1, dtype=torch.long, device=o.device)
    rgb = torch.full((n_rays, 3), float(background), device=o.device)
    hidx = torch.nonzero(hit).squeeze(1)
    if hidx.numel():
        _, g = shape.gradient(pts[hidx])
        nrm = g / g.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        normals[hidx] = nrm
        part[hidx] = shape.part_labels(pts[hidx])
        if light is None:
            # behind the camera, up and to the left (world y is up)
            Rm = Rt[:, :3]
            ldir = -Rm[2] - 0.6 * Rm[0] - 0.8 * Rm[1]
        else:
            ldir = torch.as_tensor(light, dtype=torch.float32, device=o.device)
        ldir = ldir / ldir.norm()
        lam = (nrm @ ldir).clamp(min=0.0)
        if color == "parts":
            pal = torch.as_tensor(PART_PALETTE, device=o.device)
            albedo = pal[part[hidx] % len(pal)]
        else:
            albedo = torch.tensor([0.7, 0.7, 0.75], device=o.device).expand(hidx.numel(), 3)
        rgb[hidx] = (albedo * (0.3 + 0.7 * lam[:, None])).clamp(0, 1)
    R, tr = Rt[:, :3], Rt[:, 3]
    z_cam = pts @ R[2] + tr[2]
    depth = torch.where(hit, z_cam, torch.zeros_like(z_cam))
    return {
        "silhouette": hit.float().reshape(H, W),
        "depth": depth.reshape(H, W),
        "rgb": rgb.T.reshape(3, H, W).contiguous(),
        "normals": normals.T.reshape(3, H, W).contiguous(),
        "part": part.reshape(H, W),
        "K": K,
        "Rt": Rt,
        "camera": {"azimuth": float(azimuth), "elevation": float(elevation),
                   "distance": float(distance), "fov": float(fov)},
    }


def depth_to_points(depth: Tensor, K: Tensor, Rt: Tensor) -> Tensor:
    """Back-project a depth map to world-space points: one point per pixel with ``depth > 0``.

    Introduced in ``lectures/02_encoders.ipynb`` (single-view partial clouds).  ``depth``
    ``(H, W)`` is camera-space ``z`` (0 where the ray missed), as :func:`render` returns it;
    ``K`` ``(3, 3)`` and ``Rt`` ``(3, 4)`` the camera.  Pixel ``(row i, col j)`` is its centre
    ``(u, v) = (j + 0.5, i + 0.5)``, so ``x_cam = z K^{-1} (u, v, 1)`` and
    ``x_world = R^T (x_cam - t)``.  Returns ``(P, 3)`` in row-major pixel order.
    """
    if not isinstance(depth, Tensor) or depth.dim() != 2:
        raise ValueError(f"depth must be an (H, W) tensor, got {getattr(depth, 'shape', type(depth))}")
    if tuple(K.shape) != (3, 3) or tuple(Rt.shape) != (3, 4):
        raise ValueError(f"K must be (3, 3) and Rt (3, 4), got {tuple(K.shape)} and {tuple(Rt.shape)}")
    H, W = depth.shape
    dev, dt = depth.device, depth.dtype
    K, Rt = K.to(dev, dt), Rt.to(dev, dt)
    v, u = torch.meshgrid(torch.arange(H, device=dev, dtype=dt) + 0.5,
                          torch.arange(W, device=dev, dtype=dt) + 0.5, indexing="ij")
    hit = depth > 0
    z = depth[hit]
    x_cam = torch.stack([(u[hit] - K[0, 2]) / K[0, 0] * z, (v[hit] - K[1, 2]) / K[1, 1] * z, z], -1)
    R, t = Rt[:, :3], Rt[:, 3]
    return (x_cam - t) @ R  # R^T (x_cam - t), row-vector form
