"""Hard and soft rasterisation of triangle meshes in plain PyTorch (batched, CPU and CUDA).

Introduced in ``lectures/09_differentiable_rendering.ipynb``.

* **Hard** (``sigma=None``): a pixel is covered when its centre lies inside a projected
  triangle; depth and colour come from the nearest face (z-buffer).  The coverage is built
  from ``sign`` functions, so autograd runs and returns an exactly zero gradient with
  respect to the vertices: the point the chapter starts from.
* **Soft** (SoftRas, Liu et al. 2019): face ``j`` covers pixel ``p`` with probability
  ``D_j(p) = sigmoid(delta_j(p) d_j(p)^2 / sigma)``, where ``d_j`` is the screen distance
  from the pixel centre to the triangle and ``delta_j = +1`` inside, ``-1`` outside; the
  silhouette is ``1 - prod_j (1 - D_j)`` and the colour a softmax over depth with weights
  ``D_j exp(z_j / gamma)`` and a background term ``exp(eps / gamma)``.

Screen distances are measured in normalised device units, in which the image **height**
spans 2 (one pixel of a 64-pixel image is 1/32), so that ``sigma`` means the same at every
resolution; SoftRas' default ``sigma = 1e-4`` is about a tenth of a pixel squared at 64 px.

Cost.  The default ``method="culled"`` enumerates, for every face, only the pixels of its
screen bounding box grown by the distance beyond which ``D_j < cull_eps``
(``d^2 > sigma log(1 / cull_eps - 1)``) and aggregates these (pixel, face) pairs with
``index_add``: memory and time are O(sum of the boxes' areas), not O(F H W).
``method="dense"`` evaluates every face at every pixel with the same formulas and the same
cut-off (a reference for tests and the benchmark); both give the same images up to
floating-point summation order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F_
from torch import Tensor

from .cameras import Cameras, project

__all__ = ["rasterize_silhouette", "render_mesh", "face_shading", "faces_per_pixel", "DEFAULT_SIGMA", "DEFAULT_GAMMA"]

DEFAULT_SIGMA = 1e-4
"""SoftRas' silhouette temperature (squared normalised screen units)."""
DEFAULT_GAMMA = 1e-4
"""SoftRas' depth temperature of the colour softmax."""
NEAR = 1e-3
"""Faces with a vertex closer to the camera plane than this (camera ``z``) are dropped."""


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------
def _image_size(image_size: Any) -> tuple[int, int]:
    if isinstance(image_size, bool):
        raise TypeError("image_size must be an int or (H, W)")
    if isinstance(image_size, int):
        H = W = image_size
    else:
        try:
            H, W = (int(s) for s in image_size)
        except (TypeError, ValueError):
            raise TypeError(f"image_size must be an int or (H, W), got {image_size!r}") from None
    if H < 1 or W < 1:
        raise ValueError(f"image_size must be positive, got {(H, W)}")
    return H, W


def _check(verts: Any, faces: Any, cameras: Any) -> tuple[Tensor, Tensor, Cameras]:
    if not isinstance(verts, Tensor) or not verts.is_floating_point():
        raise TypeError(f"verts must be a floating-point tensor (B, V, 3), got {type(verts).__name__}"
                        + (f" of dtype {verts.dtype}" if isinstance(verts, Tensor) else ""))
    if verts.dim() == 2:
        verts = verts[None]
    if verts.dim() != 3 or verts.shape[-1] != 3:
        raise ValueError(f"verts must have shape (B, V, 3), got {tuple(verts.shape)}")
    if verts.shape[1] == 0:
        raise ValueError("verts is empty (V = 0)")
    if not isinstance(faces, Tensor) or faces.dtype not in (torch.int64, torch.int32):
        raise TypeError("faces must be an integer tensor (F, 3) of vertex indices")
    if faces.dim() != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
        raise ValueError(f"faces must have shape (F, 3) with F > 0, got {tuple(faces.shape)}")
    if faces.device != verts.device:
        raise ValueError(f"faces are on {faces.device} but verts on {verts.device}")
    if int(faces.min()) < 0 or int(faces.max()) >= verts.shape[1]:
        raise ValueError(f"faces index vertices outside [0, {verts.shape[1] - 1}]")
    if not isinstance(cameras, Cameras):
        raise TypeError(f"cameras must be a course_lib.render.Cameras, got {type(cameras).__name__}")
    if cameras.device != verts.device:
        raise ValueError(f"cameras are on {cameras.device} but verts on {verts.device}")
    B, n = verts.shape[0], len(cameras)
    if B != n:
        if B == 1:
            verts = verts.expand(n, -1, -1)
        elif n == 1:
            cameras = Cameras(cameras.K.expand(B, 3, 3), cameras.Rt.expand(B, 3, 4))
        else:
            raise ValueError(f"{B} meshes but {n} cameras: give one camera per mesh, or one of either")
    return verts, faces.long(), cameras


# --------------------------------------------------------------------------------------------
# (pixel, face) pairs: dense or culled, with one aggregation interface
# --------------------------------------------------------------------------------------------
@dataclass
class _Pairs:
    """Which (image, face, pixel) combinations are evaluated, and how to reduce over faces."""

    n_pix: int  # B * H * W
    pix: Tensor | None  # culled: (P,) flat pixel index; dense: None
    face: Tensor  # culled: (P,) flat (b * F + f) index; dense: (B, F, 1)
    px: Tensor  # pixel centre u (column), culled (P,), dense (1, 1, HW)
    py: Tensor
    shape: tuple[int, int, int]

    def sum(self, vals: Tensor) -> Tensor:
        """Sum over faces -> (B*H*W,) (or (B*H*W, C) for (..., C) values)."""
        if self.pix is None:
            B, F, HW = vals.shape[:3]
            return vals.sum(1).reshape(B * HW, *vals.shape[3:])
        out = vals.new_zeros((self.n_pix, *vals.shape[1:]))
        return out.index_add(0, self.pix, vals)

    def amax(self, vals: Tensor, init: float) -> Tensor:
        if self.pix is None:
            return vals.amax(1).reshape(-1).clamp(min=init)
        out = vals.new_full((self.n_pix,), init)
        return out.scatter_reduce(0, self.pix, vals, reduce="amax", include_self=True)

    def amin(self, vals: Tensor, init: float) -> Tensor:
        return -self.amax(-vals, -init)

    def at_pixels(self, pixvals: Tensor) -> Tensor:
        """Per-pixel values (B*H*W,) broadcast back to the pairs."""
        if self.pix is None:
            B, H, W = self.shape
            return pixvals.reshape(B, 1, H * W)
        return pixvals[self.pix]


def _pairs_dense(B: int, F: int, H: int, W: int, device: torch.device, dtype: torch.dtype) -> _Pairs:
    v, u = torch.meshgrid(torch.arange(H, device=device, dtype=dtype) + 0.5,
                          torch.arange(W, device=device, dtype=dtype) + 0.5, indexing="ij")
    face = (torch.arange(B, device=device)[:, None] * F + torch.arange(F, device=device)[None]).reshape(B, F, 1)
    return _Pairs(B * H * W, None, face, u.reshape(1, 1, -1), v.reshape(1, 1, -1), (B, H, W))


@torch.no_grad()
def _pairs_culled(tri: Tensor, valid: Tensor, margin_px: float, H: int, W: int) -> _Pairs:
    """Every (face, pixel) with the pixel centre inside the face's box grown by ``margin_px``."""
    B, F = tri.shape[:2]
    lo = tri[..., :2].amin(2) - margin_px - 0.5  # (B, F, 2) in "pixel index" units
    hi = tri[..., :2].amax(2) + margin_px - 0.5
    x0 = torch.ceil(lo[..., 0]).clamp(0, W).long()
    x1 = torch.floor(hi[..., 0]).clamp(-1, W - 1).long()
    y0 = torch.ceil(lo[..., 1]).clamp(0, H).long()
    y1 = torch.floor(hi[..., 1]).clamp(-1, H - 1).long()
    nx = (x1 - x0 + 1).clamp(min=0)
    ny = (y1 - y0 + 1).clamp(min=0)
    counts = (nx * ny * valid).reshape(-1)
    bf = torch.repeat_interleave(torch.arange(B * F, device=tri.device), counts)
    start = torch.cumsum(counts, 0) - counts
    local = torch.arange(bf.numel(), device=tri.device) - start[bf]
    nxf = nx.reshape(-1)[bf]
    jx = x0.reshape(-1)[bf] + local % nxf.clamp(min=1)
    iy = y0.reshape(-1)[bf] + torch.div(local, nxf.clamp(min=1), rounding_mode="floor")
    b = torch.div(bf, F, rounding_mode="floor")
    pix = (b * H + iy) * W + jx
    dtype = tri.dtype
    return _Pairs(B * H * W, pix, bf, jx.to(dtype) + 0.5, iy.to(dtype) + 0.5, (B, H, W))


# --------------------------------------------------------------------------------------------
# per-pair geometry
# --------------------------------------------------------------------------------------------
def _cross(ax: Tensor, ay: Tensor, bx: Tensor, by: Tensor) -> Tensor:
    return ax * by - ay * bx


def _seg_dist2(px: Tensor, py: Tensor, ax: Tensor, ay: Tensor, bx: Tensor, by: Tensor) -> Tensor:
    ex, ey = bx - ax, by - ay
    t = ((px - ax) * ex + (py - ay) * ey) / (ex * ex + ey * ey).clamp(min=1e-12)
    t = t.clamp(0.0, 1.0)
    dx, dy = px - ax - t * ex, py - ay - t * ey
    return dx * dx + dy * dy


def _geometry(pairs: _Pairs, tri_flat: Tensor, need_dist: bool) -> dict[str, Tensor]:
    """Edge functions, barycentrics, inside flag, squared pixel distance, depth of every pair."""
    if pairs.pix is None:
        t = tri_flat.reshape(*pairs.face.shape[:2], 1, 3, 3)  # (B, F, 1, 3, 3)
    else:
        t = tri_flat[pairs.face]  # (P, 3, 3)
    ax, ay, az = t[..., 0, 0], t[..., 0, 1], t[..., 0, 2]
    bx, by, bz = t[..., 1, 0], t[..., 1, 1], t[..., 1, 2]
    cx, cy, cz = t[..., 2, 0], t[..., 2, 1], t[..., 2, 2]
    px, py = pairs.px, pairs.py
    area2 = _cross(bx - ax, by - ay, cx - ax, cy - ay)
    s = torch.sign(area2)
    e_c = _cross(bx - ax, by - ay, px - ax, py - ay) * s  # > 0 on the inner side of edge ab
    e_a = _cross(cx - bx, cy - by, px - bx, py - by) * s
    e_b = _cross(ax - cx, ay - cy, px - cx, py - cy) * s
    inside = (e_a > 0) & (e_b > 0) & (e_c > 0)
    # zero-gradient coverage: 1 iff all three signs are +1
    cover = torch.relu(torch.sign(e_a) + torch.sign(e_b) + torch.sign(e_c) - 2.0)
    out = {"inside": inside, "cover": cover}
    # perspective-correct depth with barycentrics clamped onto the triangle
    w = torch.stack([e_a, e_b, e_c], -1).clamp(min=0.0)
    w = w / w.sum(-1, keepdim=True).clamp(min=1e-12)
    inv_z = w[..., 0] / az + w[..., 1] / bz + w[..., 2] / cz
    out["z"] = 1.0 / inv_z.clamp(min=1e-12)
    if need_dist:
        d2 = torch.minimum(torch.minimum(_seg_dist2(px, py, ax, ay, bx, by), _seg_dist2(px, py, bx, by, cx, cy)),
                           _seg_dist2(px, py, cx, cy, ax, ay))
        out["d2"] = d2
    return out


def face_shading(verts: Tensor, faces: Tensor, cameras: Cameras, albedo: Tensor | None = None) -> Tensor:
    """Flat Lambertian colour of every face, ``(B, F, 3)``, lit like :func:`course_lib.data.render`.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  Light from behind the
    camera, up and to the left (``-R_z - 0.6 R_x - 0.8 R_y``); colour ``albedo (0.3 + 0.7
    max(n.l, 0))`` with the face normal turned towards the camera (two-sided faces);
    ``albedo`` ``(3,)``, ``(F, 3)`` or ``(B, F, 3)``, default grey-blue ``(0.7, 0.7, 0.75)``.
    """
    tri = verts[:, faces]  # (B, F, 3, 3)
    n = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    n = n / n.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    to_cam = cameras.centers[:, None] - tri.mean(2)
    n = torch.where((n * to_cam).sum(-1, keepdim=True) < 0, -n, n)
    R = cameras.Rt[:, :, :3].to(verts.dtype)
    ldir = -R[:, 2] - 0.6 * R[:, 0] - 0.8 * R[:, 1]
    ldir = ldir / ldir.norm(dim=-1, keepdim=True)
    lam = (n * ldir[:, None]).sum(-1).clamp(min=0.0)
    if albedo is None:
        albedo = torch.tensor([0.7, 0.7, 0.75], device=verts.device, dtype=verts.dtype)
    albedo = torch.as_tensor(albedo, device=verts.device, dtype=verts.dtype)
    return (albedo * (0.3 + 0.7 * lam[..., None])).clamp(0.0, 1.0)


def _setup(verts, faces, cameras, image_size, sigma, method, cull_eps):
    verts, faces, cameras = _check(verts, faces, cameras)
    H, W = _image_size(image_size)
    if method not in ("culled", "dense"):
        raise ValueError(f"method must be 'culled' or 'dense', got {method!r}")
    if sigma is not None and not (isinstance(sigma, (int, float)) and sigma > 0):
        raise ValueError(f"sigma must be a positive number or None (hard), got {sigma!r}")
    if not 0.0 < cull_eps < 0.5:
        raise ValueError(f"cull_eps must be in (0, 0.5), got {cull_eps}")
    B, F = verts.shape[0], faces.shape[0]
    screen = project(verts, cameras)  # (B, V, 3)
    tri = screen[:, faces]  # (B, F, 3, 3)
    area2 = _cross(tri[..., 1, 0] - tri[..., 0, 0], tri[..., 1, 1] - tri[..., 0, 1],
                   tri[..., 2, 0] - tri[..., 0, 0], tri[..., 2, 1] - tri[..., 0, 1])
    valid = (tri[..., 2].amin(-1) > NEAR) & (area2.abs() > 1e-10)
    ndc = 2.0 / H  # normalised units per pixel
    cutoff = math.log(1.0 / cull_eps - 1.0)  # d2 / sigma beyond which D < cull_eps
    margin_px = 0.0 if sigma is None else math.sqrt(sigma * cutoff) / ndc
    if method == "dense":
        pairs = _pairs_dense(B, F, H, W, verts.device, verts.dtype)
    else:
        pairs = _pairs_culled(tri.detach(), valid, margin_px, H, W)
    return verts, faces, cameras, (B, F, H, W), tri, valid, pairs, ndc, cutoff


def _face_flag(pairs: _Pairs, flag: Tensor) -> Tensor:
    flat = flag.reshape(-1)
    return flat[pairs.face] if pairs.pix is not None else flat[pairs.face.reshape(-1)].reshape(pairs.face.shape)


def rasterize_silhouette(verts: Tensor, faces: Tensor, cameras: Cameras, image_size: int | tuple[int, int],
                         sigma: float | None = None, *, method: str = "culled", cull_eps: float = 1e-8) -> Tensor:
    """Silhouettes ``(B, H, W)`` in ``[0, 1]`` of meshes ``verts (B, V, 3)``, ``faces (F, 3)`` seen by ``cameras``.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  ``sigma=None``: hard
    coverage (1 where a pixel centre lies inside a projected face, exactly zero gradient);
    ``sigma > 0``: SoftRas' ``1 - prod_j (1 - sigmoid(delta_j d_j^2 / sigma))`` with ``d_j``
    in normalised screen units (the image height spans 2).  ``method`` ``"culled"``
    (default, bounding boxes) or ``"dense"`` (every face at every pixel); contributions
    below ``cull_eps`` are dropped in both.  One mesh with several cameras, several meshes
    with one camera, or one camera per mesh.
    """
    verts, faces, cameras, (B, F, H, W), tri, valid, pairs, ndc, cutoff = _setup(
        verts, faces, cameras, image_size, sigma, method, cull_eps)
    g = _geometry(pairs, tri.reshape(B * F, 3, 3), need_dist=sigma is not None)
    ok = _face_flag(pairs, valid)
    if sigma is None:
        cover = g["cover"] * ok
        return pairs.sum(cover).clamp(max=1.0).reshape(B, H, W)
    x = g["d2"] * (ndc * ndc) / sigma  # >= 0
    keep = ok & (g["inside"] | (x <= cutoff))
    signed = torch.where(g["inside"], x, -x)
    log_miss = torch.where(keep, F_.logsigmoid(-signed), torch.zeros_like(x))  # log(1 - D)
    return (-torch.expm1(pairs.sum(log_miss))).reshape(B, H, W)


@torch.no_grad()
def faces_per_pixel(verts: Tensor, faces: Tensor, cameras: Cameras, image_size: int | tuple[int, int],
                    sigma: float, *, cull_eps: float = 1e-8) -> Tensor:
    """How many faces contribute to each pixel of :func:`rasterize_silhouette` at ``sigma``, ``(B, H, W)`` int64.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  A face counts at a pixel when the pixel is
    inside it or its coverage there is at least ``cull_eps`` (the renderer's own rule).  The course keeps every
    such face; PyTorch3D keeps only ``faces_per_pixel`` of them (the nearest in depth), so this count is the
    ``faces_per_pixel`` it would need to give the same silhouette.
    """
    if sigma is None:
        raise ValueError("faces_per_pixel needs a soft rasteriser: give sigma > 0")
    verts, faces, cameras, (B, F, H, W), tri, valid, pairs, ndc, cutoff = _setup(
        verts, faces, cameras, image_size, sigma, "culled", cull_eps)
    g = _geometry(pairs, tri.reshape(B * F, 3, 3), need_dist=True)
    ok = _face_flag(pairs, valid)
    x = g["d2"] * (ndc * ndc) / sigma
    keep = ok & (g["inside"] | (x <= cutoff))
    return pairs.sum(keep.to(verts.dtype)).round().long().reshape(B, H, W)


def render_mesh(verts: Tensor, faces: Tensor, cameras: Cameras, image_size: int | tuple[int, int],
                sigma: float | None = None, gamma: float = DEFAULT_GAMMA, *, albedo: Tensor | None = None,
                background: float = 1.0, near: float = 1.0, far: float = 100.0, eps: float = 1e-3,
                method: str = "culled", cull_eps: float = 1e-8) -> dict[str, Tensor]:
    """Silhouette ``(B, H, W)``, depth ``(B, H, W)`` and shaded ``rgb (B, 3, H, W)`` of meshes.

    Introduced in ``lectures/09_differentiable_rendering.ipynb``.  ``sigma=None``: hard
    z-buffer (nearest face per pixel; depth 0 and ``background`` colour where no face
    covers the pixel; also ``face_index (B, H, W)``, -1 on the background).  ``sigma > 0``:
    SoftRas, the silhouette of :func:`rasterize_silhouette` and colour/depth as a softmax
    over faces with weights ``D_j exp(z'_j / gamma)``, ``z'_j = (far - z_j) / (far - near)``,
    plus a background weight ``exp(eps / gamma)`` (background depth 0).  Faces are
    coloured by :func:`face_shading` (flat Lambertian, lit like :func:`course_lib.data.render`).
    """
    if not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    verts, faces, cameras, (B, F, H, W), tri, valid, pairs, ndc, cutoff = _setup(
        verts, faces, cameras, image_size, sigma, method, cull_eps)
    g = _geometry(pairs, tri.reshape(B * F, 3, 3), need_dist=sigma is not None)
    ok = _face_flag(pairs, valid)
    colors = face_shading(verts, faces, cameras, albedo).reshape(B * F, 3)
    if pairs.pix is None:
        col = colors.reshape(B, F, 1, 3)
    else:
        col = colors[pairs.face]
    if sigma is None:
        hit = g["inside"] & ok
        z = torch.where(hit, g["z"], torch.full_like(g["z"], math.inf))
        zbuf = pairs.amin(z, math.inf)
        win = hit & (z == pairs.at_pixels(zbuf))
        fid = torch.where(win, pairs.face.expand_as(win) if pairs.pix is None else pairs.face,
                          torch.full_like(win, -1, dtype=torch.long))
        best = pairs.amax(fid.to(torch.float64), -1.0).long()  # ties: the larger face index
        win = win & (fid == pairs.at_pixels(best))
        wf = win.to(verts.dtype)
        covered = best >= 0
        depth = pairs.sum(wf * g["z"])
        rgb = pairs.sum(wf[..., None] * col) + (~covered)[:, None].to(verts.dtype) * background
        sil = pairs.sum(g["cover"] * ok).clamp(max=1.0)
        face_index = torch.where(covered, best % F, best)
        return {"silhouette": sil.reshape(B, H, W), "depth": depth.reshape(B, H, W),
                "rgb": rgb.reshape(B, H, W, 3).permute(0, 3, 1, 2).contiguous(),
                "face_index": face_index.reshape(B, H, W)}
    x = g["d2"] * (ndc * ndc) / sigma
    keep = ok & (g["inside"] | (x <= cutoff))
    signed = torch.where(g["inside"], x, -x)
    zero = torch.zeros_like(x)
    log_miss = torch.where(keep, F_.logsigmoid(-signed), zero)
    sil = -torch.expm1(pairs.sum(log_miss))
    zn = (far - g["z"]) / (far - near)
    logit = torch.where(keep, F_.logsigmoid(signed) + zn / gamma, torch.full_like(x, -math.inf))
    l_bg = eps / gamma
    m = pairs.amax(logit.detach(), l_bg)
    e = torch.where(keep, torch.exp(logit - pairs.at_pixels(m)), zero)
    e_bg = torch.exp(l_bg - m)
    total = pairs.sum(e) + e_bg
    wgt = e / pairs.at_pixels(total)
    depth = pairs.sum(wgt * g["z"])
    rgb = pairs.sum(wgt[..., None] * col) + (e_bg / total)[:, None] * background
    return {"silhouette": sil.reshape(B, H, W), "depth": depth.reshape(B, H, W),
            "rgb": rgb.reshape(B, H, W, 3).permute(0, 3, 1, 2).contiguous()}
