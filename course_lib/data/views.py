"""Rendered views: silhouette, depth and shaded RGB of ShapeNet-lite shapes (sphere tracing the SDF,
:func:`render`) and of triangle meshes (exact ray casting, :func:`render_mesh`), with the same cameras.

Introduced in ``lectures/01_data_and_representations.ipynb`` (used for single-view
reconstruction in ``lectures/06_surfaces.ipynb``).  :func:`render_mesh` renders the real meshes of
:class:`course_lib.data.real_split.RealShapes` (ModelNet, ShapeNetCore) so that they have ShapeNet-lite's
``image`` representation; its shading is :func:`render`'s, so a shape and its mesh look alike.

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
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import config
from .shapes import Shape

__all__ = ["look_at", "camera_rays", "render", "render_mesh", "ray_mesh_hits", "depth_to_points", "PART_PALETTE"]

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


# --- triangle meshes: exact ray casting ----------------------------------------------------

_BARY_EPS = 1e-9
"""Barycentric slack of the ray/triangle test: a ray through an edge shared by two triangles hits (at least)
one of them whatever the rounding, so a closed mesh has no cracks; the surface grows by 1e-9 of a triangle."""


_MARGIN_PX = 0.01
"""Slack, in pixels, around a triangle's projected bounding box when pairing it with pixels: covers the rounding
of the float32 rays of :func:`camera_rays` (about 1e-5 pixel) many times over."""


def _mesh_arrays(mesh: Any, device: torch.device | str | None, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``(vertices (V, 3) dtype, faces (F, 3) int64)`` of a ``trimesh.Trimesh`` or a pair ``(vertices, faces)``,
    checked: at least one face, finite vertices, face indices in range."""
    if hasattr(mesh, "vertices") and hasattr(mesh, "faces"):
        v, f = mesh.vertices, mesh.faces
    elif isinstance(mesh, (tuple, list)) and len(mesh) == 2:
        v, f = mesh
    else:
        raise TypeError("render_mesh expects a trimesh.Trimesh or a pair (vertices (V, 3), faces (F, 3)), "
                        f"got {type(mesh).__name__}")
    v = v.detach().cpu() if isinstance(v, Tensor) else torch.as_tensor(np.ascontiguousarray(v))
    f = f.detach().cpu() if isinstance(f, Tensor) else torch.as_tensor(np.ascontiguousarray(f))
    if v.dim() != 2 or v.shape[1] != 3 or v.is_complex() or v.dtype == torch.bool:
        raise ValueError(f"mesh vertices must be a real (V, 3) array, got shape {tuple(v.shape)}, dtype {v.dtype}")
    if f.dim() != 2 or f.shape[1] != 3:
        raise ValueError(f"mesh faces must be an (F, 3) array of vertex indices, got shape {tuple(f.shape)}")
    if f.shape[0] == 0 or v.shape[0] == 0:
        raise ValueError(f"cannot render an empty mesh ({v.shape[0]} vertices, {f.shape[0]} faces)")
    if f.is_floating_point() or f.dtype == torch.bool:
        raise ValueError(f"mesh faces must be integer vertex indices, got dtype {f.dtype}")
    f = f.long()
    if int(f.min()) < 0 or int(f.max()) >= v.shape[0]:
        raise ValueError(f"mesh face indices must be in [0, {v.shape[0]}), got [{int(f.min())}, {int(f.max())}]")
    v = v.to(torch.float64)
    if not torch.isfinite(v).all():
        raise ValueError(f"mesh vertices must be finite: {int((~torch.isfinite(v).all(1)).sum())} are NaN or inf")
    return v.to(device=device, dtype=dtype), f.to(device=device)


def _first_hits(origin: Tensor, dirs: Tensor, tri: Tensor, blocks: Tensor,
                pairs: Iterable[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """First hits of rays from one ``origin`` (3,) along ``dirs`` (N, 3) against triangles ``tri`` (F, 3, 3).

    ``pairs`` yields chunks ``(pair_block, pair_tri)`` of candidate pairs: every ray of
    ``blocks[pair_block[k]]`` (a row of ray indices; ``N`` pads) against triangle ``pair_tri[k]``.
    Möller–Trumbore with the origin-only terms hoisted out per triangle (``s = o - v0``:
    ``det = -d.(e1 x e2)``, ``u = d.(e2 x s)``, ``v = d.(s x e1)``, ``t = e2.(s x e1)``, the last three
    divided by ``det``).  Returns ``t`` (N,) (``inf`` on a miss) and ``face`` (N,) int64 (-1 on a miss): the
    smallest ``(t, face)`` over the hits, so the result does not depend on the chunks or on the candidate
    lists, as long as these contain every hit.
    """
    n = dirs.shape[0]
    dev, dt = dirs.device, dirs.dtype
    v0, e1, e2 = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    s = origin - v0
    nrm = torch.linalg.cross(e1, e2)
    a = torch.linalg.cross(e2, s)
    q = torch.linalg.cross(s, e1)
    tnum = e2[:, 0] * q[:, 0] + e2[:, 1] * q[:, 1] + e2[:, 2] * q[:, 2]
    det_min = 1e-12 * nrm.norm(dim=-1)  # edge-on or degenerate triangles are never hit
    dpad = torch.cat([dirs, torch.zeros(1, 3, device=dev, dtype=dt)])  # padding rays (index n) hit nothing
    best_t = torch.full((n + 1,), float("inf"), device=dev, dtype=dt)
    big = torch.iinfo(torch.int64).max
    best_f = torch.full((n + 1,), big, device=dev, dtype=torch.long)
    for pb, pt in pairs:
        rays = blocks[pb]  # (P, S)
        d = dpad[rays]  # (P, S, 3)

        def dot(w: Tensor, d: Tensor = d) -> Tensor:
            return d[..., 0] * w[:, None, 0] + d[..., 1] * w[:, None, 1] + d[..., 2] * w[:, None, 2]

        det = -dot(nrm[pt])
        ok = det.abs() > det_min[pt, None]
        inv = 1.0 / torch.where(ok, det, torch.ones_like(det))
        u = dot(a[pt]) * inv
        v = dot(q[pt]) * inv
        t = tnum[pt, None] * inv
        ok &= (u >= -_BARY_EPS) & (v >= -_BARY_EPS) & (u + v <= 1.0 + _BARY_EPS) & (t > 0)
        if not bool(ok.any()):
            continue
        r, f = rays[ok], pt[:, None].expand_as(rays)[ok]
        tt = t[ok]
        m = torch.full((n + 1,), float("inf"), device=dev, dtype=dt).scatter_reduce(0, r, tt, "amin")
        sel = tt == m[r]
        fm = torch.full((n + 1,), big, device=dev, dtype=torch.long).scatter_reduce(0, r[sel], f[sel], "amin")
        better = (m < best_t) | ((m == best_t) & (fm < best_f))
        best_t = torch.where(better, m, best_t)
        best_f = torch.where(better, fm, best_f)
    best_t, best_f = best_t[:n], best_f[:n]
    return best_t, torch.where(torch.isfinite(best_t), best_f, torch.full_like(best_f, -1))


def _tile_pairs(tri: Tensor, K: Tensor, Rt: Tensor, H: int, W: int, tile: int | None,
                chunk: int) -> tuple[Tensor, Iterator[tuple[Tensor, Tensor]]]:
    """``(blocks (B, S), chunks of (pair_block, pair_tri))`` for :func:`_first_hits`: the image cut into
    ``tile`` x ``tile`` pixel tiles, each triangle paired with the tiles that hold a pixel centre of its
    projected bounding box (plus :data:`_MARGIN_PX`), at most about ``chunk`` ray/triangle tests per chunk.

    Conservative, hence exact: a ray through a pixel centre hits a triangle in front of the camera only if the
    centre lies in the triangle's projection.  A triangle with a vertex at or behind the camera plane goes with
    every tile.  ``tile=None``: one block of all rays against every triangle (brute force).
    """
    dev = tri.device
    n_rays, n_tri = H * W, tri.shape[0]
    if tile is None:
        per = max(1, chunk // n_rays)
        blocks = torch.arange(n_rays, device=dev)[None]
        return blocks, ((torch.zeros(min(per, n_tri - k), dtype=torch.long, device=dev),
                         torch.arange(k, min(k + per, n_tri), device=dev)) for k in range(0, n_tri, per))
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile < 1:
        raise ValueError(f"tile must be a positive int or None, got {tile!r}")
    T = int(tile)
    by, bx = -(-H // T), -(-W // T)
    rr = torch.arange(by * T, device=dev)[:, None]
    cc = torch.arange(bx * T, device=dev)[None, :]
    idx = torch.where((rr < H) & (cc < W), rr * W + cc, torch.full_like(rr * cc, n_rays))
    blocks = idx.reshape(by, T, bx, T).permute(0, 2, 1, 3).reshape(by * bx, T * T)
    R, tr = Rt[:, :3].to(tri.dtype), Rt[:, 3].to(tri.dtype)
    xc = tri @ R.T + tr  # (F, 3, 3) camera space
    z = xc[..., 2]
    front = (z > 1e-9).all(-1)
    zs = torch.where(front[:, None], z, torch.ones_like(z))
    u = float(K[0, 0]) * xc[..., 0] / zs + float(K[0, 2])
    v = float(K[1, 1]) * xc[..., 1] / zs + float(K[1, 2])

    def span(lo: Tensor, hi: Tensor, n: int) -> tuple[Tensor, Tensor]:
        """First and last pixel index whose centre (index + 0.5) is in [lo - margin, hi + margin]."""
        first = torch.ceil((lo - 0.5 - _MARGIN_PX).clamp(-1.0, n + 1.0)).long()
        last = torch.floor((hi - 0.5 + _MARGIN_PX).clamp(-1.0, n + 1.0)).long()
        return (torch.where(front, first, torch.zeros_like(first)),
                torch.where(front, last, torch.full_like(last, n - 1)))

    j0, j1 = span(u.amin(-1), u.amax(-1), W)
    i0, i1 = span(v.amin(-1), v.amax(-1), H)
    keep = (j0 <= j1) & (i0 <= i1) & (j1 >= 0) & (j0 <= W - 1) & (i1 >= 0) & (i0 <= H - 1)
    ids = torch.nonzero(keep).squeeze(1)
    tx0, tx1 = j0[ids].clamp(0, W - 1) // T, j1[ids].clamp(0, W - 1) // T
    ty0, ty1 = i0[ids].clamp(0, H - 1) // T, i1[ids].clamp(0, H - 1) // T
    nx = tx1 - tx0 + 1
    cnt = nx * (ty1 - ty0 + 1)
    csum = torch.cumsum(cnt, 0).cpu()
    per = max(1, chunk // (T * T))

    def chunks() -> Iterator[tuple[Tensor, Tensor]]:
        start, done = 0, 0
        while start < ids.numel():  # triangles start:end hold at most `per` pairs (or one triangle)
            end = max(start + 1, int(torch.searchsorted(csum, done + per, right=True)))
            c = cnt[start:end]
            sub = torch.arange(start, end, device=dev).repeat_interleave(c)
            first = torch.cumsum(c, 0) - c
            local = torch.arange(int(c.sum()), device=dev) - first.repeat_interleave(c)
            w = nx[sub]
            yield (ty0[sub] + local // w) * bx + tx0[sub] + local % w, ids[sub]
            done, start = int(csum[end - 1]), end

    return blocks, chunks()


@torch.no_grad()
def ray_mesh_hits(origin: Tensor, directions: Tensor, mesh: Any, *, chunk: int = 1 << 20) -> tuple[Tensor, Tensor]:
    """First hits of rays from one point against a triangle mesh, by brute force: ``(t (N,), face (N,))``.

    ``origin`` (3,), ``directions`` (N, 3) (any length; ``t`` is in their units), ``mesh`` a
    ``trimesh.Trimesh`` or ``(vertices, faces)``.  ``t`` is ``inf`` and ``face`` -1 where a ray misses;
    ties go to the lowest face index.  Every ray is tested against every triangle (``chunk`` tests at a
    time, float64 except on MPS): :func:`render_mesh` runs the same test on the pairs its tiles keep.
    """
    directions = torch.as_tensor(directions)
    if directions.dim() != 2 or directions.shape[1] != 3:
        raise ValueError(f"directions must be (N, 3), got {tuple(directions.shape)}")
    dev = directions.device
    dt = torch.float32 if dev.type == "mps" else torch.float64
    V, F = _mesh_arrays(mesh, dev, dt)
    origin = torch.as_tensor(origin, device=dev).to(dt).reshape(3)
    n, nf = directions.shape[0], F.shape[0]
    per = max(1, int(chunk) // max(n, 1))
    chunks = ((torch.zeros(min(per, nf - k), dtype=torch.long, device=dev), torch.arange(k, min(k + per, nf), device=dev))
              for k in range(0, nf, per))
    return _first_hits(origin, directions.to(dt), V[F], torch.arange(n, device=dev)[None], chunks)


@torch.no_grad()
def render_mesh(mesh: Any, azimuth: float = 30.0, elevation: float = 20.0, distance: float = 2.6,
                fov: float = 50.0, size: int | tuple[int, int] | None = None, *, color: str = "uniform",
                light: tuple[float, float, float] | None = None, background: float = 1.0,
                device: torch.device | str | None = None, tile: int | None = 1,
                chunk: int = 1 << 20) -> dict[str, Any]:
    """Render a triangle mesh by exact ray casting, with :func:`render`'s cameras, shading and outputs.

    Introduced in ``lectures/01_data_and_representations.ipynb`` (the ``image`` views of real meshes,
    :class:`course_lib.data.real_split.RealShapes`).  ``mesh`` is a ``trimesh.Trimesh`` or a pair
    ``(vertices (V, 3), faces (F, 3))``; the camera (:func:`look_at`), the rays (:func:`camera_rays`),
    ``size`` (default ``data.image_size``), ``light``, ``background``, the ambient term and the albedos are
    those of :func:`render`, so a ShapeNet-lite shape and its mesh look alike.

    Returns :func:`render`'s dict: ``silhouette``, ``depth`` (camera-space ``z`` of the first hit, 0 on a
    miss), ``rgb``, ``normals`` (the hit triangle's world-space unit normal, turned towards the camera, so
    that the winding of the faces does not matter), ``part`` (0 on the mesh, -1 on background: a mesh has
    one part), ``K``, ``Rt``, ``camera``; plus ``face`` (H, W) int64, the index of the hit triangle (-1 on
    background).  ``color``: ``"uniform"`` (default) or ``"parts"`` (part 0's colour).

    How (exact ray casting in torch, no acceleration library): Möller–Trumbore ray/triangle tests in float64
    (float32 on MPS), vectorised on any device, exact up to rounding (a 1e-9 barycentric slack closes the
    cracks along shared edges); the first hit is the smallest ``t`` (ties: the lowest face index).  Instead
    of every ray against every triangle (``H * W * F`` tests: ``tile=None``, seconds to minutes), each
    triangle is tested only against the rays of the ``tile`` x ``tile`` pixel tiles that hold a pixel centre
    of its projected bounding box: with the default ``tile=1`` (one ray per tile, as a rasteriser) that is
    about ``F`` + (the image area times the depth complexity) tests, a few tens of milliseconds on a CPU for
    a 10k-face mesh at 64 x 64 (``benchmarks/results/real_views-laptop-cpu2.md``).  ``chunk`` bounds the
    tests per step (about 150 bytes each), so memory stays bounded.  Every ``tile`` and ``chunk`` gives the
    same image (the tests are elementwise and the minimum is taken over the same set of hits).  trimesh's
    ray intersector was not used: without Embree it is a CPU-only numpy loop over an R-tree (and needs
    ``rtree``), with Embree it is float32 and Embree is not a dependency of the course.
    """
    if color not in ("parts", "uniform"):
        raise ValueError(f"color must be 'parts' or 'uniform', got {color!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    if size is None:
        size = int(config.size("data.image_size"))
    H, W = (int(size), int(size)) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    K, Rt = look_at(azimuth, elevation, distance, fov, (H, W), device=device)
    dev = K.device
    dt = torch.float32 if dev.type == "mps" else torch.float64
    V, F = _mesh_arrays(mesh, dev, dt)
    o, d = camera_rays(K, Rt, (H, W))
    origin, dirs = o[0, 0].to(dt), d.reshape(-1, 3).to(dt)
    tri = V[F]
    blocks, pairs = _tile_pairs(tri, K, Rt, H, W, tile, int(chunk))
    t, face = _first_hits(origin, dirs, tri, blocks, pairs)
    n_rays = H * W
    hit = face >= 0
    normals = torch.zeros(n_rays, 3, device=dev)
    part = torch.full((n_rays,), -1, dtype=torch.long, device=dev)
    rgb = torch.full((n_rays, 3), float(background), device=dev)
    depth = torch.zeros(n_rays, device=dev)
    hidx = torch.nonzero(hit).squeeze(1)
    if hidx.numel():
        fh = face[hidx]
        tr = tri[fh]
        nrm = torch.linalg.cross(tr[:, 1] - tr[:, 0], tr[:, 2] - tr[:, 0])
        nrm = nrm / nrm.norm(dim=-1, keepdim=True)
        dh = dirs[hidx]
        nrm = torch.where(((nrm * dh).sum(-1) > 0)[:, None], -nrm, nrm).float()
        normals[hidx] = nrm
        part[hidx] = 0
        pts = origin + t[hidx, None] * dh
        R64, t64 = Rt[:, :3].to(dt), Rt[:, 3].to(dt)
        depth[hidx] = (pts @ R64[2] + t64[2]).float()
        if light is None:  # as render: behind the camera, up and to the left (world y is up)
            Rm = Rt[:, :3]
            ldir = -Rm[2] - 0.6 * Rm[0] - 0.8 * Rm[1]
        else:
            ldir = torch.as_tensor(light, dtype=torch.float32, device=dev)
        ldir = ldir / ldir.norm()
        lam = (nrm @ ldir).clamp(min=0.0)
        if color == "parts":
            albedo = torch.as_tensor(PART_PALETTE[0], device=dev).expand(hidx.numel(), 3)
        else:
            albedo = torch.tensor([0.7, 0.7, 0.75], device=dev).expand(hidx.numel(), 3)
        rgb[hidx] = (albedo * (0.3 + 0.7 * lam[:, None])).clamp(0, 1)
    return {
        "silhouette": hit.float().reshape(H, W),
        "depth": depth.reshape(H, W),
        "rgb": rgb.T.reshape(3, H, W).contiguous(),
        "normals": normals.T.reshape(3, H, W).contiguous(),
        "part": part.reshape(H, W),
        "face": face.reshape(H, W),
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
