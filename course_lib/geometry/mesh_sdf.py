"""Signed distance to a triangle mesh, signed by the generalised winding number; samplers for real meshes.

Introduced in ``lectures/07_implicit_fields.ipynb``.

Real meshes (ShapeNet, scans) are rarely watertight, so "inside" cannot be decided by ray
parity.  The *generalised winding number* (Jacobson et al., SIGGRAPH 2013)

.. math:: w(p) = \\frac{1}{4\\pi} \\sum_f \\Omega_f(p)

(the solid angles of the faces seen from ``p``) is 1 inside a closed, outward-oriented mesh,
0 outside, and degrades gracefully (a value between) near holes; a point is inside when
``w >= 0.5``.  The distance is the exact distance to the nearest triangle.

Two back ends give the same answer:

* ``"igl"`` (default when ``libigl`` is installed): libigl's AABB tree for the exact
  distance (``point_mesh_squared_distance``) and its fast winding number (Barnes-Hut
  dipole expansion, Barill et al., SIGGRAPH 2018) for the sign.  CPU only (float64).
* ``"torch"``: brute force, in chunks: the exact point-triangle distance and the exact
  winding number (solid angles by Van Oosterom and Strackee's formula) for every
  (point, face) pair.  ``O(N F)``, but the same code on CPU and CUDA, and independent of
  libigl (the tests compare the two).

A second inside/outside, for comparison: :func:`visibility_inside` (a point is outside when some rendered depth
map sees through it, the idea behind OccNet's pre-processing).  It ignores the faces' orientation, but it is
limited by its pixels near the surface and sees into every hole; measured against the exact occupancy of
ShapeNet-lite shapes with flipped and doubled faces, holes and internal parts, the repaired winding number agrees
more often on every defect (``benchmarks/results/mesh_sign-laptop-cpu2.md``, part ``methods``), so the sign
stays the winding number's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import trimesh
from torch import Tensor

__all__ = [
    "mesh_sdf", "winding_number", "point_triangle_distance", "sample_mesh_sdf", "sample_mesh_occupancy",
    "mesh_box", "has_igl", "repair_orientation", "corrupt_faces", "fibonacci_views", "visibility_inside",
]

_METHODS = ("auto", "igl", "torch")


def has_igl() -> bool:
    """Whether the ``libigl`` wheel (``import igl``) is installed.

    Introduced in ``lectures/07_implicit_fields.ipynb``.
    """
    try:
        import igl  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------
def _mesh_arrays(mesh: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(mesh, trimesh.Trimesh):
        v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    elif isinstance(mesh, (tuple, list)) and len(mesh) == 2:
        v, f = (np.asarray(t.detach().cpu() if isinstance(t, Tensor) else t) for t in mesh)
    else:
        raise TypeError(f"mesh must be a trimesh.Trimesh or a (vertices, faces) pair, got {type(mesh).__name__}")
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"mesh vertices must have shape (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"mesh faces must be triangles of shape (F, 3), got {f.shape}")
    if f.shape[0] == 0:
        raise ValueError("mesh has no faces")
    if not np.issubdtype(f.dtype, np.integer):
        raise TypeError(f"mesh faces must be integer indices, got dtype {f.dtype}")
    if f.min() < 0 or f.max() >= v.shape[0]:
        raise ValueError(f"mesh faces index vertices out of range [0, {v.shape[0]})")
    if not np.all(np.isfinite(v)):
        raise ValueError("mesh vertices contain NaN or infinite values")
    return np.ascontiguousarray(v, dtype=np.float64), np.ascontiguousarray(f, dtype=np.int64)


def _query(points: Any) -> Tensor:
    if isinstance(points, np.ndarray):
        points = torch.from_numpy(np.ascontiguousarray(points))
    if not isinstance(points, Tensor):
        raise TypeError(f"points must be a torch.Tensor or numpy array (N, 3), got {type(points).__name__}")
    if points.dim() != 2 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {tuple(points.shape)}")
    if points.shape[0] == 0:
        raise ValueError("points is empty (N = 0)")
    if not points.is_floating_point():
        raise TypeError(f"points must be floating point, got dtype {points.dtype}")
    if not bool(torch.isfinite(points).all()):
        raise ValueError("points contain NaN or infinite values")
    return points


# ---------------------------------------------------------------------------
# orientation repair: the winding number needs consistently, outward oriented faces
# ---------------------------------------------------------------------------
def repair_orientation(mesh: Any) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Faces of ``mesh`` made fit for the winding number: welded, deduplicated, consistently and outward wound.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  Real meshes (ShapeNet's among them) have faces
    stored twice (once per orientation, so that they render from both sides), faces whose winding is
    flipped against their neighbours', and vertices repeated per face.  The generalised winding number
    adds every face's signed solid angle, so a doubled face cancels itself and a flipped face subtracts
    what it should add: inside/outside goes wrong.  This function

    1. welds vertices at the same position (``trimesh``'s ``merge_vertices``), so that neighbouring faces
       share their edges;
    2. keeps one face of each set of faces on the same three vertices (whatever their orientation) and
       drops degenerate faces (a repeated vertex);
    3. makes the winding consistent across shared edges (``trimesh.repair.fix_winding``, a traversal of
       the face adjacency graph);
    4. orients each connected component outward: a closed component so that its enclosed (signed)
       volume is positive; an open one (a fragment, a surface with holes, a sheet) keeps the
       orientation that most of its faces had as given, since a sheet has no inside to test against.

    Returns ``(vertices (V', 3) float64, faces (F', 3) int64, report)``, ``report`` counting
    ``duplicate_faces``, ``degenerate_faces``, ``rewound_faces`` (faces whose orientation changed) and
    ``components``.  The surface (and so every distance to it) is unchanged; only the orientation of
    faces and their multiplicity are.
    """
    v, f = _mesh_arrays(mesh)
    m = trimesh.Trimesh(v, f, process=False)
    m.merge_vertices()
    faces = np.asarray(m.faces, dtype=np.int64)
    ok = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    n_degenerate = int((~ok).sum())
    faces = faces[ok]
    if faces.shape[0] == 0:
        raise ValueError("mesh has no faces left after dropping degenerate ones (every face repeats a vertex)")
    _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
    first.sort()
    n_dup = int(faces.shape[0] - first.shape[0])
    faces = faces[first]
    verts = np.asarray(m.vertices, dtype=np.float64)
    wound = trimesh.Trimesh(verts, faces, process=False)
    trimesh.repair.fix_winding(wound)
    out = np.asarray(wound.faces, dtype=np.int64).copy()
    groups = trimesh.graph.connected_components(wound.face_adjacency, nodes=np.arange(out.shape[0]))
    kept = _same_orientation(out, faces)  # per face: the traversal kept the orientation it was given
    for g in groups:
        g = np.asarray(g, dtype=np.int64)
        if _is_closed(out[g]):
            tri = verts[out[g]]
            c = tri.reshape(-1, 3).mean(0)
            vol = np.einsum("ij,ij->i", tri[:, 0] - c, np.cross(tri[:, 1] - c, tri[:, 2] - c)).sum() / 6.0
            flip = vol < 0
        else:
            flip = int(kept[g].sum()) * 2 < g.shape[0]
        if flip:
            out[g] = out[g][:, ::-1]
    rewound = int((out != faces).any(1).sum())
    return verts, np.ascontiguousarray(out), {"duplicate_faces": n_dup, "degenerate_faces": n_degenerate,
                                             "rewound_faces": rewound, "components": len(groups)}


def _same_orientation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, whether faces ``a`` and ``b`` (the same vertices) have the same cyclic order."""
    def canon(f: np.ndarray) -> np.ndarray:
        k = np.argmin(f, axis=1)
        idx = (k[:, None] + np.arange(3)[None, :]) % 3
        return np.take_along_axis(f, idx, axis=1)

    return (canon(a) == canon(b)).all(1)


def _is_closed(faces: np.ndarray) -> bool:
    """Every edge of ``faces`` is shared by exactly two of them."""
    e = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    return bool((counts == 2).all())


def corrupt_faces(mesh: Any, *, flip_fraction: float = 0.0, double: bool = False, drop_fraction: float = 0.0,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``mesh`` with the defects of real meshes, to test a sign against: flipped, doubled and missing faces.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  ``flip_fraction`` of the faces (chosen at random)
    get their winding reversed; ``double`` appends every face again with the opposite orientation (as
    meshes made to render from both sides store them); ``drop_fraction`` removes a connected patch of
    about that share of the faces (the faces nearest to a random face's centre), which opens a hole.
    Returns ``(vertices, faces)``; the vertices are unchanged.
    """
    v, f = _mesh_arrays(mesh)
    for name, x in (("flip_fraction", flip_fraction), ("drop_fraction", drop_fraction)):
        if not 0.0 <= float(x) < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {x}")
    rng = np.random.default_rng(seed)
    f = f.copy()
    if drop_fraction > 0:
        centres = v[f].mean(1)
        d = np.linalg.norm(centres - centres[rng.integers(f.shape[0])], axis=1)
        f = f[np.argsort(d)[int(round(drop_fraction * f.shape[0])):]]
    if flip_fraction > 0:
        pick = rng.random(f.shape[0]) < flip_fraction
        f[pick] = f[pick][:, ::-1]
    if double:
        f = np.concatenate([f, f[:, ::-1]])
    return v, np.ascontiguousarray(f)


# ---------------------------------------------------------------------------
# a second inside/outside: visibility from rendered depth maps (OccNet's pre-processing idea)
# ---------------------------------------------------------------------------
def fibonacci_views(n: int) -> np.ndarray:
    """``n`` view directions spread evenly on the unit sphere (a Fibonacci sphere): ``(azimuth, elevation)`` degrees.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  Point ``i`` has height ``y = 1 - (2 i + 1) / n`` and
    turns by the golden angle from one point to the next; the elevation is clamped to [-89, 89] degrees
    (the course's cameras keep ``y`` up).  Returns ``(n, 2)`` float64.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"views must be a positive int, got {n!r}")
    i = np.arange(int(n), dtype=np.float64)
    y = 1.0 - (2.0 * i + 1.0) / n
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    r = np.sqrt(np.clip(1.0 - y * y, 0.0, None))
    az = np.degrees(np.arctan2(r * np.sin(phi), r * np.cos(phi))) % 360.0
    el = np.clip(np.degrees(np.arcsin(y)), -89.0, 89.0)
    return np.stack([az, el], 1)


_VIS_DISTANCE = 2.5
"""Camera distance for :func:`visibility_inside`, in units of the mesh's bounding-sphere radius."""


@torch.no_grad()
def visibility_inside(mesh: Any, points: Tensor | np.ndarray, *, views: int = 32, size: int = 128,
                      eps: float | None = None, min_views: int = 1, dilate: int = 1,
                      device: torch.device | str | None = None) -> Tensor:
    """Inside/outside of ``points (N, 3)`` by visibility: outside when some rendered view sees through the point.

    Introduced in ``lectures/07_implicit_fields.ipynb``.  The idea behind OccNet's pre-processing (Mescheder
    et al. 2019, following Stutz & Geiger's TSDF fusion of rendered depth maps): render depth maps of the mesh
    from many cameras around it; a point that some camera sees (its pixel is background, or the point lies in
    front of the first surface along that pixel's ray) cannot be inside a closed object.  Here ``views``
    cameras sit on a Fibonacci sphere (:func:`fibonacci_views`) at 2.5 bounding-sphere radii from the centre of
    the mesh's bounding box, with a field of view that holds the whole bounding sphere; each renders a
    ``size`` x ``size`` depth map by exact ray casting (:func:`course_lib.data.views.render_mesh`).  A point is
    **outside** when, in at least ``min_views`` views, its pixel is background or its depth is smaller than the
    rendered depth by more than ``eps`` (mesh units; default: one pixel's footprint at the centre); it is
    **inside** otherwise.  Points outside the bounding sphere are outside.

    What it does not care about: the orientation of faces (flipped, doubled) and hidden internal parts
    (surfaces no camera sees) change nothing, since only the first hit along each ray counts.
    Known failure modes:

    * concavities that no view sees into (the inside of a closed-off cavity, the bottom of a deep narrow
      hole, a mug's inside seen from too few directions) are *filled*: called inside;
    * parts thinner than about a pixel's footprint may slip between the pixel centres and *vanish*
      (called outside where a ray passes by them);
    * points within about ``eps`` (and a pixel's footprint) of the surface are uncertain: the depth at the
      pixel centre is not the depth at the point, and near a silhouette the pixel may be background;
    * a hole in the surface lets the cameras that look through it see the inside: every point on those rays
      becomes outside (a hole is *not* closed, unlike OccNet's TSDF fusion which fills small holes).

    Cost: ``views`` renders of ``size**2`` rays (about ``F + size**2 x depth complexity`` ray/triangle tests
    each), then ``O(N views)`` look-ups; on a laptop CPU about a second or two per 10k-face mesh with the
    defaults (``benchmarks/results/mesh_sign-laptop-cpu2.md``).  Returns a bool tensor ``(N,)`` on the points'
    device.
    """
    from ..data.views import render_mesh

    v, f = _mesh_arrays(mesh)
    pts = _query(points)
    if isinstance(views, bool) or not isinstance(views, (int, np.integer)) or views < 1:
        raise ValueError(f"views must be a positive int, got {views!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
        raise ValueError(f"size must be an int >= 2, got {size!r}")
    if isinstance(dilate, bool) or not isinstance(dilate, (int, np.integer)) or dilate < 0:
        raise ValueError(f"dilate must be an int >= 0, got {dilate!r}")
    if isinstance(min_views, bool) or not isinstance(min_views, (int, np.integer)) or not 1 <= min_views <= views:
        raise ValueError(f"min_views must be an int in [1, views={views}], got {min_views!r}")
    lo, hi = v.min(0), v.max(0)
    centre = (lo + hi) / 2.0
    radius = float(np.linalg.norm(v - centre, axis=1).max())
    if not radius > 0:
        raise ValueError("mesh is degenerate: all its vertices are at one point")
    D = _VIS_DISTANCE
    fov = 2.0 * math.degrees(math.asin(1.0 / D)) + 2.0
    pixel = 2.0 * D * math.tan(math.radians(fov) / 2.0) / size  # footprint of a pixel at the centre, normalised
    if eps is None:
        eps_n = pixel
    else:
        eps = float(eps)
        if not math.isfinite(eps) or eps < 0:
            raise ValueError(f"eps must be a finite number >= 0, got {eps}")
        eps_n = eps / radius
    dev = pts.device if device is None else torch.device(device)
    vn = (v - centre) / radius
    q = ((pts.detach().to(dev, torch.float64)) - torch.as_tensor(centre, device=dev)) / radius
    seen = (q.norm(dim=1) > 1.0).to(torch.int64) * int(min_views)
    for az, el in fibonacci_views(int(views)):
        out = render_mesh((vn, f), azimuth=float(az), elevation=float(el), distance=D, fov=fov, size=int(size),
                          device=dev)
        depth = out["depth"].to(dev, torch.float64)
        depth = torch.where(depth > 0, depth, torch.full_like(depth, math.inf))  # background: infinitely far
        if dilate:  # the nearest surface within ``dilate`` pixels: a conservative (grown) depth map
            k = 2 * int(dilate) + 1
            grown = -torch.nn.functional.max_pool2d(-depth[None, None], k, stride=1, padding=int(dilate))[0, 0]
            depth = torch.where(torch.isinf(depth), grown, depth)
        K, Rt = out["K"].to(dev, torch.float64), out["Rt"].to(dev, torch.float64)
        pc = q @ Rt[:, :3].T + Rt[:, 3]
        z = pc[:, 2]
        zs = z.clamp_min(1e-9)
        col = torch.floor(K[0, 0] * pc[:, 0] / zs + K[0, 2]).long()
        row = torch.floor(K[1, 1] * pc[:, 1] / zs + K[1, 2]).long()
        inimg = (z > 0) & (col >= 0) & (col < size) & (row >= 0) & (row < size)
        d = torch.full_like(z, math.inf)
        d[inimg] = depth[row[inimg], col[inimg]]
        through = ~inimg | (z < d - eps_n)
        seen += through.to(torch.int64)
    return (seen < int(min_views)).to(pts.device)


# ---------------------------------------------------------------------------
# the torch back end (exact, brute force, chunked)
# ---------------------------------------------------------------------------
def point_triangle_distance(points: Tensor, tris: Tensor) -> Tensor:
    """Exact Euclidean distance of every point to every triangle: ``(N, 3), (F, 3, 3) -> (N, F)``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.

    The nearest point of a triangle is either the projection on its plane (when it falls
    inside, tested with the three edge half-planes) or the nearest point of one of its three
    edges (clamped projection on the segment); the distance is the smallest of these four
    candidates.  Degenerate (zero-area) triangles reduce to their edges.
    """
    p = points[:, None, :]                                   # (N, 1, 3)
    a, b, c = tris[None, :, 0], tris[None, :, 1], tris[None, :, 2]   # (1, F, 3)
    best = None
    for s, e in ((a, b), (b, c), (c, a)):
        d = e - s
        t = (((p - s) * d).sum(-1) / (d * d).sum(-1).clamp_min(1e-300)).clamp(0.0, 1.0)
        q = s + t[..., None] * d
        dist2 = ((p - q) ** 2).sum(-1)
        best = dist2 if best is None else torch.minimum(best, dist2)
    n = torch.cross(b - a, c - a, dim=-1)                     # (1, F, 3)
    nn2 = (n * n).sum(-1)
    inside = torch.ones_like(best, dtype=torch.bool)
    for s, e in ((a, b), (b, c), (c, a)):
        inside &= (torch.cross(e - s, p - s, dim=-1) * n).sum(-1) >= 0
    plane2 = ((p - a) * n).sum(-1) ** 2 / nn2.clamp_min(1e-300)
    best = torch.where(inside & (nn2 > 0), torch.minimum(best, plane2), best)
    return best.sqrt()


def _solid_angles(points: Tensor, tris: Tensor) -> Tensor:
    """Signed solid angle of every triangle seen from every point, ``(N, F)`` (Van Oosterom & Strackee 1983)."""
    a = tris[None, :, 0] - points[:, None]
    b = tris[None, :, 1] - points[:, None]
    c = tris[None, :, 2] - points[:, None]
    la, lb, lc = a.norm(dim=-1), b.norm(dim=-1), c.norm(dim=-1)
    det = (a * torch.cross(b, c, dim=-1)).sum(-1)
    den = la * lb * lc + (a * b).sum(-1) * lc + (a * c).sum(-1) * lb + (b * c).sum(-1) * la
    return 2.0 * torch.atan2(det, den)


def _chunk_rows(n_faces: int, budget: int) -> int:
    return max(1, budget // max(1, n_faces))


def winding_number(mesh: Any, points: Tensor | np.ndarray, *, method: str = "auto",
                   budget: int = 250_000, repair: bool = True) -> Tensor:
    """Generalised winding number of ``mesh`` at ``points (N, 3)``: 1 inside, 0 outside, between near holes.

    Introduced in ``lectures/07_implicit_fields.ipynb``.

    ``method="torch"`` sums exact solid angles over all faces (chunks of ``budget``
    point-face pairs, on the points' device); ``"igl"`` uses libigl's fast winding number
    (an approximation whose error is far below the 0.5 threshold away from the surface);
    ``"auto"`` picks ``"igl"`` for CPU points when libigl is installed.  Returned on the
    points' device with their dtype.  ``repair`` (default) first makes the faces consistently and
    outward oriented and drops doubled ones (:func:`repair_orientation`); ``repair=False`` takes the
    faces as they are.
    """
    v, f = _mesh_arrays(mesh)
    if repair:
        v, f, _ = repair_orientation((v, f))
    pts = _query(points)
    method = _pick(method, pts)
    if method == "igl":
        import igl

        w = igl.fast_winding_number(v, f, pts.detach().cpu().double().numpy())
        return torch.as_tensor(w, device=pts.device, dtype=pts.dtype)
    tris = torch.as_tensor(v[f], device=pts.device, dtype=torch.float64)
    q = pts.detach().double()
    step = _chunk_rows(f.shape[0], budget)
    out = [_solid_angles(q[s:s + step], tris).sum(-1) for s in range(0, q.shape[0], step)]
    return (torch.cat(out) / (4.0 * math.pi)).to(pts.dtype)


def _pick(method: str, pts: Tensor) -> str:
    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(_METHODS)}")
    if method == "auto":
        return "igl" if (pts.device.type == "cpu" and has_igl()) else "torch"
    if method == "igl" and not has_igl():
        raise ImportError("method='igl' needs the libigl wheel: pip install libigl (or use method='torch')")
    return method


@torch.no_grad()
def mesh_sdf(mesh: Any, points: Tensor | np.ndarray, *, method: str = "auto", budget: int = 250_000,
             return_winding: bool = False, repair: bool = True) -> Tensor | tuple[Tensor, Tensor]:
    """Signed distance from ``points (N, 3)`` to a triangle mesh: negative inside, exact magnitude.

    Introduced in ``lectures/07_implicit_fields.ipynb``.

    ``mesh`` is a ``trimesh.Trimesh`` or a ``(vertices (V, 3), faces (F, 3))`` pair; it need
    not be watertight nor consistently closed: the sign comes from the generalised winding
    number (inside where ``w >= 0.5``), which is robust to holes, self-intersections and
    several components.  The magnitude is the exact distance to the nearest triangle
    (computed in float64).

    ``method``: ``"igl"`` (libigl's AABB tree + fast winding number, CPU), ``"torch"`` (exact
    brute force in chunks of ``budget`` point-face pairs, on the points' device, CPU or
    CUDA) or ``"auto"`` (``"igl"`` for CPU points when libigl is installed, else
    ``"torch"``).  The result has the points' device and float dtype; with
    ``return_winding=True`` the winding numbers are returned too.  ``repair`` (default) first welds
    vertices, drops doubled faces and orients the faces consistently and outward
    (:func:`repair_orientation`): the winding number is only right for such faces, and real meshes
    often have faces stored twice or flipped; the distances do not change.

    >>> import trimesh, torch
    >>> box = trimesh.creation.box((2, 2, 2))
    >>> mesh_sdf(box, torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])).tolist()
    [-1.0, 1.0]
    """
    v, f = _mesh_arrays(mesh)
    if repair:
        v, f, _ = repair_orientation((v, f))
    pts = _query(points)
    method = _pick(method, pts)
    if method == "igl":
        import igl

        q = np.ascontiguousarray(pts.detach().cpu().double().numpy())
        d2 = igl.point_mesh_squared_distance(q, v, f)[0]
        w = igl.fast_winding_number(v, f, q)
        dist = torch.as_tensor(np.sqrt(np.maximum(d2, 0.0)), device=pts.device)
        wt = torch.as_tensor(w, device=pts.device)
    else:
        tris = torch.as_tensor(v[f], device=pts.device, dtype=torch.float64)
        q = pts.detach().double()
        step = _chunk_rows(f.shape[0], budget)
        ds, ws = [], []
        for s in range(0, q.shape[0], step):
            ds.append(point_triangle_distance(q[s:s + step], tris).amin(-1))
            ws.append(_solid_angles(q[s:s + step], tris).sum(-1) / (4.0 * math.pi))
        dist, wt = torch.cat(ds), torch.cat(ws)
    sdf = torch.where(wt >= 0.5, -dist, dist).to(pts.dtype)
    if return_winding:
        return sdf, wt.to(pts.dtype)
    return sdf


# ---------------------------------------------------------------------------
# samplers for real meshes
# ---------------------------------------------------------------------------
def mesh_box(mesh: Any, padding: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The mesh's axis-aligned bounding box grown by ``padding`` times its largest side: ``(lo, hi)``.

    Introduced in ``lectures/07_implicit_fields.ipynb`` (OccNet samples in the box padded by 0.1).
    """
    v, _ = _mesh_arrays(mesh)
    padding = float(padding)
    if not np.isfinite(padding) or padding < 0:
        raise ValueError(f"padding must be a non-negative number, got {padding}")
    lo, hi = v.min(0), v.max(0)
    pad = padding * float((hi - lo).max()) / 2.0
    return lo - pad, hi + pad


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return int(n)


def _mesh_points(mesh: Any, n: int, near_surface_fraction: float, sigmas: Sequence[float],
                 padding: float, seed: int) -> Tensor:
    v, f = _mesh_arrays(mesh)
    n = _check_n(n)
    frac = float(near_surface_fraction)
    if not 0.0 <= frac <= 1.0:
        raise ValueError(f"near_surface_fraction must be in [0, 1], got {frac}")
    sig = tuple(float(s) for s in sigmas)
    if not sig or any(not np.isfinite(s) or s <= 0 for s in sig):
        raise ValueError(f"sigmas must be positive numbers, got {sigmas!r}")
    rng = np.random.default_rng(seed)
    n_near = int(round(frac * n))
    lo, hi = mesh_box((v, f), padding)
    parts = []
    if n_near:
        tm = trimesh.Trimesh(v, f, process=False)
        surf, _ = trimesh.sample.sample_surface(tm, n_near, seed=int(rng.integers(2**31 - 1)))
        scale = np.asarray(sig)[np.arange(n_near) % len(sig)]
        parts.append(np.asarray(surf) + rng.standard_normal((n_near, 3)) * scale[:, None])
    if n - n_near:
        parts.append(rng.uniform(lo, hi, size=(n - n_near, 3)))
    pts = np.concatenate(parts)[rng.permutation(n)]
    return torch.as_tensor(pts, dtype=torch.float32)


def sample_mesh_sdf(mesh: Any, n: int, near_surface_fraction: float = 0.94,
                    sigmas: Sequence[float] = (0.0707, 0.0224), padding: float = 0.1, seed: int = 0, *,
                    method: str = "auto", device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """DeepSDF-style SDF samples of a (real, possibly open) mesh: ``(points (n, 3), sdf (n,))`` float32.

    Introduced in ``lectures/07_implicit_fields.ipynb``.

    A fraction ``near_surface_fraction`` (DeepSDF: 47/50) are area-weighted surface samples
    moved by isotropic Gaussian noise, the scales ``sigmas`` in equal shares (DeepSDF:
    variances 0.005 and 0.0005, i.e. sigma 0.0707 and 0.0224, for meshes in the unit sphere);
    the rest are uniform in the bounding box padded by ``padding`` (:func:`mesh_box`).
    The SDF is :func:`mesh_sdf` (winding-number sign).  Reproducible for a given ``seed``.
    """
    pts = _mesh_points(mesh, n, near_surface_fraction, sigmas, padding, seed)
    if device is not None:
        pts = pts.to(device)
    return pts, mesh_sdf(mesh, pts, method=method)


def sample_mesh_occupancy(mesh: Any, n: int, near_surface_fraction: float = 0.0,
                          sigmas: Sequence[float] = (0.01,), padding: float = 0.1, seed: int = 0, *,
                          method: str = "auto", device: torch.device | str | None = None
                          ) -> tuple[Tensor, Tensor]:
    """OccNet-style occupancy samples of a mesh: ``(points (n, 3) float32, inside (n,) bool)``.

    Introduced in ``lectures/07_implicit_fields.ipynb``.

    Default as OccNet's ``sample_mesh.py``: all points uniform in the bounding box padded by
    0.1 (``points_uniform_ratio=1``); ``near_surface_fraction > 0`` moves that share to the
    surface plus noise ``sigmas`` (OccNet's optional ``points_sigma=0.01``).  Inside means
    winding number ``>= 0.5``, so open meshes need no watertight pre-processing.
    """
    pts = _mesh_points(mesh, n, near_surface_fraction, sigmas, padding, seed)
    if device is not None:
        pts = pts.to(device)
    return pts, mesh_sdf(mesh, pts, method=method) < 0
