"""AtlasNet: a shape as a union of deformed unit squares, or one deformed sphere.

Introduced in ``lectures/06_surfaces.ipynb``.

AtlasNet [Groueix2018] learns *maps* ``phi_k(u; z): template -> R^3``.  Each map is an
MLP that takes the concatenation of a template point ``u`` (a point of the unit square
``[0, 1]^2``, or of the unit sphere ``S^2``) and the shape's latent code ``z`` and returns
a 3D point (the last layer is a ``tanh``: our shapes live in the unit ball).  This is the
"space-mapping trick" of the tutorial: instead of predicting a fixed list of points the
decoder predicts a *function*, so

* while training, the template is sampled at random (a fresh set of points every step,
  so the whole square is covered over time);
* at test time any number of points can be asked for (a low-discrepancy lattice here),
  and a **mesh** comes for free: decode the vertices of a triangulated template (a
  regular ``n x n`` grid on each square, an icosphere for the sphere) and keep the
  template's faces.

With ``K`` patches the points are split evenly between the patches; the loss is the
Chamfer distance between the union of the decoded points and the target cloud.

The encoder is any module whose output has ``.global_feature`` (a
:class:`course_lib.models.encoders.EncoderOutput`): :class:`~course_lib.models.encoders.PointNet`
for auto-encoding point clouds, :class:`~course_lib.models.encoders.ResNetEncoder` for
single-view reconstruction from rendered images.  Our sizes are small (a few hundred
hidden units instead of the paper's 1024-512-256-128, 25 patches of ~40-100 points) so
that a model trains in minutes on a laptop CPU.

[Groueix2018] T. Groueix, M. Fisher, V. G. Kim, B. C. Russell, M. Aubry.  AtlasNet: A
Papier-Mache Approach to Learning 3D Surface Generation.  CVPR 2018.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import trimesh
from torch import Tensor, nn

from course_lib import ops as _ops

from .encoders import _check_latent

__all__ = [
    "TEMPLATES",
    "split_evenly",
    "square_grid",
    "grid_faces",
    "sphere_mesh",
    "sample_square",
    "sample_sphere",
    "lattice_square",
    "lattice_sphere",
    "PatchDecoder",
    "AtlasOutput",
    "AtlasNet",
    "atlasnet_loss",
    "patch_colors",
    "mesh_quality",
    "triangle_intersections",
]

TEMPLATES: tuple[str, ...] = ("square", "sphere")
"""The template surfaces AtlasNet can deform."""

_GOLDEN = (1.0 + 5.0**0.5) / 2.0


# ---------------------------------------------------------------------------
# Templates: samples, lattices and triangulations
# ---------------------------------------------------------------------------
def _check_count(n: Any, what: str, minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or int(n) < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {n!r}")
    return int(n)


def split_evenly(n: int, k: int) -> list[int]:
    """Split ``n`` points between ``k`` patches as evenly as possible (the first get one more).

    Introduced in ``lectures/06_surfaces.ipynb``.

    >>> split_evenly(10, 3)
    [4, 3, 3]
    """
    n = _check_count(n, "n", 0)
    k = _check_count(k, "k")
    q, r = divmod(n, k)
    return [q + 1 if i < r else q for i in range(k)]


def grid_faces(n: int, device: torch.device | str | None = None) -> Tensor:
    """Triangles of a regular ``n x n`` grid of vertices (row-major, index ``i * n + j``).

    Introduced in ``lectures/06_surfaces.ipynb``.  Each of the ``(n - 1)^2`` cells is cut
    into two triangles along the same diagonal, so there are ``2 (n - 1)^2`` faces, all
    with the same orientation (counter-clockwise in the ``(u, v)`` plane, normal ``+w``).
    Returns a LongTensor ``(2 (n - 1)^2, 3)``.
    """
    n = _check_count(n, "grid size n", 2)
    idx = torch.arange(n * n, device=device).reshape(n, n)
    a = idx[:-1, :-1].reshape(-1)  # (i, j)
    b = idx[1:, :-1].reshape(-1)  # (i + 1, j)
    c = idx[:-1, 1:].reshape(-1)  # (i, j + 1)
    d = idx[1:, 1:].reshape(-1)  # (i + 1, j + 1)
    lower = torch.stack([a, b, d], dim=-1)
    upper = torch.stack([a, d, c], dim=-1)
    return torch.cat([lower, upper], dim=0)


def square_grid(n: int, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """A regular ``n x n`` grid on the unit square and its triangles.

    Introduced in ``lectures/06_surfaces.ipynb``.  Returns ``(uv (n^2, 2), faces
    (2 (n - 1)^2, 3))``; vertex ``i * n + j`` is ``(i / (n - 1), j / (n - 1))``.
    """
    n = _check_count(n, "grid size n", 2)
    t = torch.linspace(0.0, 1.0, n, device=device, dtype=dtype)
    u, v = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1)], dim=-1), grid_faces(n, device)


def sphere_mesh(subdivisions: int, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """The vertices and faces of trimesh's icosphere (unit radius, outward faces).

    Introduced in ``lectures/06_surfaces.ipynb``.  ``subdivisions`` 0..6: 12, 42, 162,
    642, 2562, 10242, 40962 vertices (``10 * 4^s + 2``).
    """
    s = _check_count(subdivisions, "subdivisions", 0)
    if s > 6:
        raise ValueError(f"subdivisions must be <= 6 (40962 vertices), got {s}")
    ico = trimesh.creation.icosphere(subdivisions=s, radius=1.0)
    verts = torch.as_tensor(np.asarray(ico.vertices), dtype=dtype, device=device)
    faces = torch.as_tensor(np.asarray(ico.faces), dtype=torch.long, device=device)
    return verts, faces


def sample_square(n: int, generator: torch.Generator | None = None,
                  device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """``n`` uniform random points of the unit square, ``(n, 2)``.

    Introduced in ``lectures/06_surfaces.ipynb``.  With a ``generator`` the draw is made on
    the generator's device and moved to ``device``.
    """
    n = _check_count(n, "n", 0)
    gdev = generator.device if generator is not None else device
    return torch.rand(n, 2, generator=generator, device=gdev, dtype=dtype).to(device)


def sample_sphere(n: int, generator: torch.Generator | None = None,
                  device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """``n`` uniform random points of the unit sphere (normalised Gaussians), ``(n, 3)``.

    Introduced in ``lectures/06_surfaces.ipynb``.
    """
    n = _check_count(n, "n", 0)
    gdev = generator.device if generator is not None else device
    x = torch.randn(n, 3, generator=generator, device=gdev, dtype=dtype).to(device)
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)


def lattice_square(n: int, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> Tensor:
    """``n`` evenly spread, deterministic points of the unit square (a Fibonacci lattice), ``(n, 2)``.

    Introduced in ``lectures/06_surfaces.ipynb``.  Any ``n`` works (a regular grid needs a
    square number), which is what "ask for any number of points at test time" needs.
    """
    n = _check_count(n, "n", 0)
    i = torch.arange(n, device=device, dtype=torch.float64)
    u = (i + 0.5) / max(n, 1)
    v = torch.remainder(i / _GOLDEN + 0.5, 1.0)
    return torch.stack([u, v], dim=-1).to(dtype)


def lattice_sphere(n: int, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> Tensor:
    """``n`` evenly spread, deterministic points of the unit sphere (the Fibonacci sphere), ``(n, 3)``.

    Introduced in ``lectures/06_surfaces.ipynb``.  It is the area-preserving map of
    :func:`lattice_square` onto the sphere (``z`` uniform in ``[-1, 1]``).
    """
    uv = lattice_square(n, device=device, dtype=torch.float64)
    z = 1.0 - 2.0 * uv[:, 0]
    r = (1.0 - z * z).clamp_min(0.0).sqrt()
    phi = 2.0 * math.pi * uv[:, 1]
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=-1).to(dtype)


# ---------------------------------------------------------------------------
# The decoder
# ---------------------------------------------------------------------------
class _BatchNormLast(nn.BatchNorm1d):
    """BatchNorm over the last dimension of a tensor of any rank (statistics over all points)."""

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).reshape(shape)


class PatchDecoder(nn.Module):
    """One AtlasNet map: ``(template point u, latent z) -> 3D point``.

    Introduced in ``lectures/06_surfaces.ipynb``.

    An MLP on the concatenation ``[u, z]`` with ReLU hidden layers (BatchNorm optional,
    as in the paper) and a ``tanh`` output.  The first layer is computed as
    ``W_u u + W_z z + b`` (identical to a linear layer on the concatenation) so that
    ``W_z z`` is computed once per shape rather than once per point.

    Parameters
    ----------
    latent_dim: size of ``z``.
    template_dim: 2 for the unit square, 3 for the sphere (3-D-CODED uses 3 too).
    hidden: widths of the hidden layers.
    batch_norm: BatchNorm after each hidden linear layer.
    out_activation: ``"tanh"`` (AtlasNet) or ``"none"``.
    """

    def __init__(self, latent_dim: int, template_dim: int = 2, hidden: Sequence[int] = (256, 128, 64),
                 batch_norm: bool = True, out_activation: str = "tanh") -> None:
        super().__init__()
        latent_dim = _check_count(latent_dim, "latent_dim")
        template_dim = _check_count(template_dim, "template_dim")
        hidden = tuple(int(h) for h in hidden)
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must be a non-empty sequence of positive widths, got {hidden}")
        if out_activation not in ("tanh", "none"):
            raise ValueError(f"out_activation must be 'tanh' or 'none', got {out_activation!r}")
        self.latent_dim, self.template_dim, self.hidden = latent_dim, template_dim, hidden
        self.first_u = nn.Linear(template_dim, hidden[0])
        self.first_z = nn.Linear(latent_dim, hidden[0], bias=False)
        self.first_norm = _BatchNormLast(hidden[0]) if batch_norm else nn.Identity()
        layers: list[nn.Module] = []
        for a, b in zip(hidden[:-1], hidden[1:]):
            layers += [nn.Linear(a, b), _BatchNormLast(b) if batch_norm else nn.Identity(), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.last = nn.Linear(hidden[-1], 3)
        self.out = nn.Tanh() if out_activation == "tanh" else nn.Identity()

    def forward(self, template_points: Tensor, latent: Tensor) -> Tensor:
        """Map template points ``(M, d)`` (shared) or ``(B, M, d)`` with latents ``(B, L)`` to ``(B, M, 3)``."""
        latent = _check_latent(latent, self.latent_dim, "PatchDecoder")
        u = template_points
        if not isinstance(u, Tensor) or not u.is_floating_point():
            raise TypeError("PatchDecoder expects floating-point template points (M, d) or (B, M, d)")
        if u.dim() == 2:
            u = u[None]
        if u.dim() != 3 or u.shape[-1] != self.template_dim or u.shape[0] not in (1, latent.shape[0]):
            raise ValueError(f"PatchDecoder expects template points (M, {self.template_dim}) or "
                             f"(B={latent.shape[0]}, M, {self.template_dim}), got {tuple(template_points.shape)}")
        h = self.first_u(u) + self.first_z(latent)[:, None, :]  # (B, M, H)
        h = torch.relu(self.first_norm(h))
        return self.out(self.last(self.body(h)))


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------
@dataclass
class AtlasOutput:
    """What :meth:`AtlasNet.decode` returns.

    points: ``(B, N, 3)`` decoded points, patch by patch.
    patch: ``(N,)`` LongTensor, the patch of each point (0 for the sphere).
    template: ``(N, d)`` the template point each output point comes from (shared by the batch).
    latent: ``(B, L)`` the latent codes.
    """

    points: Tensor
    patch: Tensor
    template: Tensor
    latent: Tensor


class AtlasNet(nn.Module):
    """AtlasNet [Groueix2018]: an encoder and ``K`` patch decoders (or one sphere decoder).

    Introduced in ``lectures/06_surfaces.ipynb``.

    Parameters
    ----------
    encoder:
        A module mapping the input (points ``(B, N, 3)`` or images ``(B, C, H, W)``) to an
        output with ``.global_feature`` ``(B, latent_dim)``; ``None`` for a decoder only
        (then call :meth:`decode` with latents).
    latent_dim: size of the latent code.
    n_patches: number of unit squares ``K`` (must be 1 for the sphere).
    template: ``"square"`` or ``"sphere"``.
    hidden, batch_norm: the layout of each :class:`PatchDecoder`.
    n_points: default number of output points.

    ``decode`` samples the template at random in training mode and uses a deterministic
    lattice in eval mode (override with ``mode="random"`` / ``"lattice"``).
    """

    def __init__(self, encoder: nn.Module | None, latent_dim: int, n_patches: int = 25,
                 template: str = "square", hidden: Sequence[int] = (256, 128, 64),
                 batch_norm: bool = True, n_points: int = 1024) -> None:
        super().__init__()
        if template not in TEMPLATES:
            raise ValueError(f"template must be one of {TEMPLATES}, got {template!r}")
        n_patches = _check_count(n_patches, "n_patches")
        if template == "sphere" and n_patches != 1:
            raise ValueError(f"the sphere template is one closed surface: n_patches must be 1, got {n_patches}")
        self.encoder = encoder
        self.latent_dim = _check_count(latent_dim, "latent_dim")
        self.n_patches = n_patches
        self.template_kind = template
        self.template_dim = 2 if template == "square" else 3
        self.n_points = _check_count(n_points, "n_points")
        self.decoders = nn.ModuleList(
            PatchDecoder(self.latent_dim, self.template_dim, hidden, batch_norm) for _ in range(n_patches)
        )

    # -- templates ----------------------------------------------------------
    def template_points(self, n_points: int, mode: str = "random", generator: torch.Generator | None = None,
                        device: torch.device | str | None = None) -> tuple[list[Tensor], Tensor]:
        """Template points for ``n_points`` outputs: a list of ``(n_k, d)`` per patch, and the patch ids ``(N,)``.

        ``mode``: ``"random"`` (uniform samples) or ``"lattice"`` (deterministic, evenly spread).
        """
        n_points = _check_count(n_points, "n_points")
        if n_points < self.n_patches:
            raise ValueError(f"need at least one point per patch: n_points={n_points} < n_patches={self.n_patches}")
        if mode not in ("random", "lattice"):
            raise ValueError(f"mode must be 'random' or 'lattice', got {mode!r}")
        counts = split_evenly(n_points, self.n_patches)
        pts: list[Tensor] = []
        for c in counts:
            if self.template_kind == "square":
                p = sample_square(c, generator, device) if mode == "random" else lattice_square(c, device)
            else:
                p = sample_sphere(c, generator, device) if mode == "random" else lattice_sphere(c, device)
            pts.append(p)
        patch = torch.repeat_interleave(torch.arange(self.n_patches, device=device),
                                        torch.as_tensor(counts, device=device))
        return pts, patch

    def template_mesh(self, resolution: int, device: torch.device | str | None = None
                      ) -> tuple[list[Tensor], list[Tensor]]:
        """The triangulated template: per patch, vertices ``(V_k, d)`` and faces ``(F_k, 3)`` (local indices).

        Square: a ``resolution x resolution`` grid per patch; sphere: an icosphere with
        ``resolution`` subdivisions.
        """
        if self.template_kind == "square":
            uv, f = square_grid(resolution, device)
            return [uv] * self.n_patches, [f] * self.n_patches
        v, f = sphere_mesh(resolution, device)
        return [v], [f]

    # -- forward ------------------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        """The latent codes ``(B, latent_dim)`` of an input batch (through the encoder)."""
        if self.encoder is None:
            raise ValueError("this AtlasNet has no encoder: call decode(latent) with latent codes")
        z = self.encoder(x)
        z = z.global_feature if hasattr(z, "global_feature") else z
        return _check_latent(z, self.latent_dim, "AtlasNet (encoder output)")

    def decode_template(self, latent: Tensor, template: Sequence[Tensor]) -> Tensor:
        """Decode given template points (one ``(n_k, d)`` tensor per patch) -> ``(B, sum n_k, 3)``."""
        latent = _check_latent(latent, self.latent_dim, "AtlasNet.decode")
        if len(template) != self.n_patches:
            raise ValueError(f"expected template points for {self.n_patches} patches, got {len(template)}")
        outs = [dec(t.to(latent.device, latent.dtype), latent) for dec, t in zip(self.decoders, template)
                if t.shape[-2] > 0]
        return torch.cat(outs, dim=1)

    def decode(self, latent: Tensor, n_points: int | None = None, mode: str | None = None,
               generator: torch.Generator | None = None) -> AtlasOutput:
        """Decode latents ``(B, L)`` into ``n_points`` points (default ``self.n_points``).

        ``mode`` defaults to ``"random"`` in training mode and ``"lattice"`` in eval mode.
        """
        latent = _check_latent(latent, self.latent_dim, "AtlasNet.decode")
        mode = mode or ("random" if self.training else "lattice")
        tmpl, patch = self.template_points(n_points or self.n_points, mode, generator, latent.device)
        pts = self.decode_template(latent, tmpl)
        return AtlasOutput(points=pts, patch=patch, template=torch.cat(tmpl, dim=0), latent=latent)

    def forward(self, x: Tensor, n_points: int | None = None, mode: str | None = None,
                generator: torch.Generator | None = None) -> AtlasOutput:
        """Encode ``x`` and decode ``n_points`` points."""
        return self.decode(self.encode(x), n_points, mode, generator)

    @torch.no_grad()
    def decode_mesh(self, latent: Tensor, resolution: int | None = None) -> list[trimesh.Trimesh]:
        """One ``trimesh.Trimesh`` per latent: the template's triangulation, decoded.

        ``resolution`` is the grid size per square (default 10) or the icosphere's
        subdivisions (default 3).  Vertices of different patches are not merged (each
        patch is its own sheet).  ``mesh.metadata["face_patch"]`` (F,) and
        ``mesh.metadata["vertex_patch"]`` (V,) hold the patch of each face and vertex.
        The model is evaluated in its current mode (call ``.eval()`` first).
        """
        latent = _check_latent(latent, self.latent_dim, "AtlasNet.decode_mesh")
        if resolution is None:
            resolution = 10 if self.template_kind == "square" else 3
        verts, faces = self.template_mesh(resolution, latent.device)
        pts = self.decode_template(latent, verts).detach().cpu().numpy().astype(np.float64)
        offsets = np.cumsum([0] + [len(v) for v in verts])
        all_faces = np.concatenate([f.cpu().numpy() + o for f, o in zip(faces, offsets[:-1])], axis=0)
        face_patch = np.concatenate([np.full(len(f), k) for k, f in enumerate(faces)])
        vertex_patch = np.concatenate([np.full(len(v), k) for k, v in enumerate(verts)])
        meshes = []
        for b in range(pts.shape[0]):
            m = trimesh.Trimesh(vertices=pts[b], faces=all_faces, process=False)
            m.metadata["face_patch"] = face_patch
            m.metadata["vertex_patch"] = vertex_patch
            meshes.append(m)
        return meshes

    def mesh(self, x: Tensor, resolution: int | None = None) -> list[trimesh.Trimesh]:
        """Encode ``x`` and return one mesh per input (see :meth:`decode_mesh`)."""
        with torch.no_grad():
            return self.decode_mesh(self.encode(x), resolution)


def atlasnet_loss(model: AtlasNet, inputs: Tensor, targets: Tensor, n_points: int | None = None,
                  generator: torch.Generator | None = None) -> Tensor:
    """The training loss of [Groueix2018]: Chamfer distance (squared, mean of both directions' means).

    Introduced in ``lectures/06_surfaces.ipynb``.  ``inputs`` go through the encoder,
    ``targets`` ``(B, M, 3)`` are the ground-truth surface points.
    """
    out = model(inputs, n_points=n_points, generator=generator)
    return _ops.chamfer_distance(out.points, targets)


# ---------------------------------------------------------------------------
# Looking at the meshes
# ---------------------------------------------------------------------------
def patch_colors(n_patches: int) -> np.ndarray:
    """``(K, 3)`` distinct RGB colours in ``[0, 255]`` (golden-angle hues), one per patch.

    Introduced in ``lectures/06_surfaces.ipynb``.
    """
    import colorsys

    k = _check_count(n_patches, "n_patches")
    return np.array([[int(255 * c) for c in colorsys.hsv_to_rgb((i / _GOLDEN) % 1.0, 0.65, 0.95)]
                     for i in range(k)], dtype=np.int64)


def _segment_triangle_hits(seg_a: np.ndarray, seg_b: np.ndarray, tris: np.ndarray, eps: float) -> np.ndarray:
    """For segment i and triangle i (vectorised), does the open segment cross the triangle's interior?"""
    d = seg_b - seg_a
    e1 = tris[:, 1] - tris[:, 0]
    e2 = tris[:, 2] - tris[:, 0]
    p = np.cross(d, e2)
    det = np.einsum("ij,ij->i", e1, p)
    ok = np.abs(det) > eps
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = seg_a - tris[:, 0]
    u = np.einsum("ij,ij->i", s, p) * inv
    q = np.cross(s, e1)
    v = np.einsum("ij,ij->i", d, q) * inv
    t = np.einsum("ij,ij->i", e2, q) * inv
    return ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0) & (t < 1)


def triangle_intersections(mesh: trimesh.Trimesh, max_pairs: int = 5_000_000) -> np.ndarray:
    """Pairs of faces ``(P, 2)`` (``i < j``) that cross each other and share no vertex.

    Introduced in ``lectures/06_surfaces.ipynb``.  Two non-coplanar triangles intersect
    exactly when an edge of one crosses the other, so every edge is tested against
    every face whose bounding box overlaps its own (an R-tree broad phase), with the
    Moller-Trumbore segment-triangle test.  Faces sharing a vertex are skipped (they
    always touch); coplanar touching is not counted.
    """
    tris = np.asarray(mesh.triangles, dtype=np.float64)
    faces = np.asarray(mesh.faces)
    if len(faces) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    scale = float(np.ptp(tris.reshape(-1, 3), axis=0).max()) or 1.0
    lo, hi = tris.min(axis=1), tris.max(axis=1)
    pad = 1e-9 * scale
    tree = trimesh.util.bounds_tree(np.concatenate([lo - pad, hi + pad], axis=1))
    pairs_f, pairs_g = [], []
    for f in range(len(faces)):
        cand = np.fromiter(tree.intersection(np.concatenate([lo[f], hi[f]])), dtype=np.int64)
        cand = cand[cand != f]
        if len(cand):
            pairs_f.append(np.full(len(cand), f))
            pairs_g.append(cand)
    if not pairs_f:
        return np.zeros((0, 2), dtype=np.int64)
    fi, gi = np.concatenate(pairs_f), np.concatenate(pairs_g)
    if len(fi) > max_pairs:
        raise ValueError(f"{len(fi)} candidate face pairs exceed max_pairs={max_pairs}")
    share = (faces[fi][:, :, None] == faces[gi][:, None, :]).any(axis=(1, 2))
    fi, gi = fi[~share], gi[~share]
    hit = np.zeros(len(fi), dtype=bool)
    for a, b in ((0, 1), (1, 2), (2, 0)):  # edges of face fi against face gi
        hit |= _segment_triangle_hits(tris[fi, a], tris[fi, b], tris[gi], 1e-14 * scale**2)
    pairs = np.stack([fi[hit], gi[hit]], axis=1)
    pairs.sort(axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else np.zeros((0, 2), dtype=np.int64)


def mesh_quality(mesh: trimesh.Trimesh, face_patch: np.ndarray | None = None,
                 sliver_degrees: float = 5.0, degenerate_area: float = 1e-10,
                 overlap_radius: float = 0.02, intersections: bool = True) -> dict[str, float]:
    """Numbers that say how good a generated mesh is as a surface.

    Introduced in ``lectures/06_surfaces.ipynb``.

    * ``degenerate_frac``: faces with area below ``degenerate_area`` (collapsed triangles);
    * ``sliver_frac``: faces whose smallest angle is below ``sliver_degrees``;
    * ``intersecting_frac``: faces crossing another face that shares no vertex with it
      (:func:`triangle_intersections`); with ``face_patch`` also split into
      ``intersecting_pairs_within`` (same patch: the sheet folds through itself) and
      ``intersecting_pairs_between`` (different patches overlap);
    * ``overlap_frac`` (with ``face_patch``): fraction of face centres lying within
      ``overlap_radius`` of a face centre of *another* patch; patches that merely meet
      along a seam give a small value, patches stacked on each other a large one;
    * ``watertight``, ``euler`` (V - E + F, 2 for a sphere), ``area``.
    """
    faces = np.asarray(mesh.faces)
    tris = np.asarray(mesh.triangles, dtype=np.float64)
    area = np.asarray(mesh.area_faces, dtype=np.float64)
    out: dict[str, float] = {"faces": float(len(faces)), "area": float(area.sum())}
    out["degenerate_frac"] = float((area < degenerate_area).mean()) if len(faces) else 0.0
    e = [tris[:, (i + 1) % 3] - tris[:, i] for i in range(3)]
    angles = []
    for i in range(3):
        a, b = e[i], -e[(i + 2) % 3]
        na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
        cos = np.einsum("ij,ij->i", a, b) / np.maximum(na * nb, 1e-300)
        angles.append(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
    min_angle = np.min(np.stack(angles, axis=1), axis=1) if len(faces) else np.zeros(0)
    out["sliver_frac"] = float((min_angle < sliver_degrees).mean()) if len(faces) else 0.0
    out["watertight"] = float(bool(mesh.is_watertight))
    out["euler"] = float(mesh.euler_number)
    if intersections:
        pairs = triangle_intersections(mesh)
        bad = np.zeros(len(faces), dtype=bool)
        bad[pairs.reshape(-1)] = True
        out["intersecting_frac"] = float(bad.mean()) if len(faces) else 0.0
        out["intersecting_pairs"] = float(len(pairs))
        if face_patch is not None and len(pairs):
            same = face_patch[pairs[:, 0]] == face_patch[pairs[:, 1]]
            out["intersecting_pairs_within"] = float(same.sum())
            out["intersecting_pairs_between"] = float((~same).sum())
        elif face_patch is not None:
            out["intersecting_pairs_within"] = out["intersecting_pairs_between"] = 0.0
    if face_patch is not None:
        face_patch = np.asarray(face_patch)
        if face_patch.shape != (len(faces),):
            raise ValueError(f"face_patch must have one entry per face ({len(faces)}), got {face_patch.shape}")
        if len(np.unique(face_patch)) > 1:
            from scipy.spatial import cKDTree

            c = tris.mean(axis=1)
            tree = cKDTree(c)
            near = tree.query_ball_point(c, r=overlap_radius)
            other = np.array([bool(np.any(face_patch[np.asarray(nb, dtype=np.int64)] != face_patch[i]))
                              for i, nb in enumerate(near)])
            out["overlap_frac"] = float(other.mean())
        else:
            out["overlap_frac"] = 0.0
    return out
