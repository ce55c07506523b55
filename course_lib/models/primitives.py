r"""Volumetric primitives: cuboids and superquadrics, their losses, and the expected loss two ways.

Introduced in ``lectures/08_primitives.ipynb``.

A shape is abstracted by :math:`M` primitives [Tulsiani2017, Paschalidou2019]. Primitive
:math:`m` has a half-size :math:`a_m\in\mathbb R^3_{>0}`, shape exponents
:math:`(\varepsilon_1, \varepsilon_2)` (superquadrics only), a rotation given by a unit
quaternion :math:`q_m = (w, x, y, z)` and a translation :math:`t_m`:
``p_world = R(q) @ p_local + t``.  Whether it exists is a Bernoulli variable
:math:`z_m \sim \mathrm{Bern}(\theta_m)`.

Conventions of this module
--------------------------
* Batches: primitives are ``(B, M, ...)`` tensors, target points ``(B, N, 3)``.
* The **inside-outside function** :math:`F` of a superquadric in its local frame is
  :math:`F = \big((x/a_1)^{2/\varepsilon_2} + (y/a_2)^{2/\varepsilon_2}\big)^{\varepsilon_2/\varepsilon_1}
  + (z/a_3)^{2/\varepsilon_1}` (``F <= 1`` inside, ``= 1`` on the surface); for a cuboid we
  use its limit as both exponents go to 0 after the power :math:`\varepsilon`:
  :math:`F = \max_k (x_k / a_k)^2`.  Both are computed in log space, so small exponents
  do not overflow.
* :math:`\Delta_i^m` is the **squared** distance from target point :math:`x_i` to the nearest
  surface sample of primitive :math:`m` (0 when :math:`x_i` is inside :math:`m`: an inside
  point is covered).
* The all-absent configuration (no primitive exists) has no nearest primitive; its coverage
  is the constant ``empty`` (default 0, the convention of Paschalidou's code).  Training uses
  ``empty = 4``, the largest squared distance inside the unit ball, so that switching every
  primitive off is never free.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "KINDS",
    "Primitives",
    "PrimitiveNet",
    "PrimitiveTerms",
    "MovingAverageBaseline",
    "quaternion_to_matrix",
    "random_quaternions",
    "fexp",
    "superquadric_inside_outside",
    "cuboid_inside_outside",
    "cuboid_squared_distance",
    "COVERAGES",
    "CONSISTENCIES",
    "ellipsoid_area",
    "superquadric_angle_points",
    "sample_superquadric_surface",
    "sample_cuboid_surface",
    "expected_min_distance",
    "expected_min_distance_enumerate",
    "enumerate_configurations",
    "bernoulli_log_prob",
    "reinforce_gradient",
    "primitive_terms",
    "configuration_loss",
    "expected_loss",
    "reinforce_loss",
    "expected_count",
    "primitive_meshes",
    "union_occupancy",
    "union_surface_points",
]

KINDS = ("superquadric", "cuboid")
"""The primitive families."""
COVERAGES = ("samples", "analytic")
"""How :func:`primitive_terms` measures a target point's distance to a primitive: to its nearest surface sample
(any primitive), or exactly (cuboids: :func:`cuboid_squared_distance`)."""

CONSISTENCIES = ("surface", "volume", "paschalidou")
"""What a primitive's surface sample costs in the consistency term (:func:`primitive_terms`, :func:`_consistency`).

* ``"surface"`` (the course's variant, the default): its squared distance to the nearest *target surface point*,
  samples inside another existing primitive discarded, ``sum_m z_m mean_s``;
* ``"volume"`` (Tulsiani et al. 2017, their consistency loss): its squared distance to the target *solid*, 0 when the
  sample lies inside the target (``clamp(sdf, 0)^2``), nothing discarded, ``sum_m z_m mean_s``;
* ``"paschalidou"`` (Paschalidou et al. 2019, their primitive-to-point-cloud term): its squared distance to the
  nearest target point, nothing discarded, each primitive weighted by its existence and its share of the
  (ellipsoid-approximated) surface area, ``sum_m z_m (A_m / sum_m' A_m') mean_s``, as the official
  ``prim_to_pcl_loss`` weights it.  One difference: unless its option ``use_chamfer`` is set, the official code
  looks for the nearest target point only among the target points *inside* the primitive (and a primitive that
  contains none costs 0); here, as in the paper's equation, among all of them.
"""

_LOG_MAX = 60.0  # F is clamped at exp(60) ~ 1e26: far points stay finite in float32 (and in its square)


# ---------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------
def _tensor(x: object, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def _last(x: Tensor, name: str, k: int) -> None:
    if x.dim() < 1 or x.shape[-1] != k:
        raise ValueError(f"{name} must have shape (..., {k}), got {tuple(x.shape)}")


def _same_device(*named: tuple[str, Tensor]) -> None:
    devs = {t.device for _, t in named}
    if len(devs) > 1:
        raise ValueError("tensors on different devices: " + ", ".join(f"{n} on {t.device}" for n, t in named))


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return kind


# ---------------------------------------------------------------------------
# rotations
# ---------------------------------------------------------------------------
def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Rotation matrices ``(..., 3, 3)`` of quaternions ``(..., 4)`` in ``(w, x, y, z)`` order.

    Introduced in ``lectures/08_primitives.ipynb``.  The quaternion is normalised first, so
    any non-zero 4-vector is a valid input (a network outputs it unconstrained).
    """
    q = _tensor(q, "q")
    _last(q, "q", 4)
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True).clamp_min(1e-8)
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def random_quaternions(shape: tuple[int, ...], generator: torch.Generator | None = None,
                       device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Uniformly random unit quaternions ``(*shape, 4)`` (normalised Gaussian 4-vectors)."""
    q = torch.randn(*shape, 4, generator=generator, dtype=dtype)
    return (q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)).to(device)


# ---------------------------------------------------------------------------
# inside-outside functions
# ---------------------------------------------------------------------------
def fexp(x: Tensor, p: Tensor | float) -> Tensor:
    """The signed power ``sign(x) |x|^p`` of the superquadric parametrisation."""
    return torch.sign(x) * x.abs().clamp_min(1e-12) ** p


def _log_ratio(points: Tensor, size: Tensor) -> Tensor:
    """``log |p_k / a_k|`` with a floor, ``(..., 3)``."""
    return torch.log((points / size).abs().clamp_min(1e-12))


def superquadric_inside_outside(points: Tensor, size: Tensor, eps: Tensor) -> Tensor:
    r"""The inside-outside function :math:`F` of superquadrics at local points.

    Introduced in ``lectures/08_primitives.ipynb``.

    Args:
        points: ``(..., 3)`` points in each superquadric's local frame.
        size: ``(..., 3)`` half-sizes :math:`a` (broadcast against ``points``), positive.
        eps: ``(..., 2)`` shape exponents :math:`(\varepsilon_1, \varepsilon_2)`, positive
            (:math:`\varepsilon_1` shapes the :math:`z` profile, :math:`\varepsilon_2` the
            cross-section in :math:`x, y`).

    Returns:
        :math:`F` ``(...)``: ``< 1`` inside, ``1`` on the surface, ``> 1`` outside, computed in
        log space (``log F = logaddexp(...)``) and clamped at ``exp(60)``.  With
        :math:`\varepsilon_1=\varepsilon_2=1` it is the ellipsoid's
        :math:`\sum_k (x_k/a_k)^2`.  :math:`F` is homogeneous of degree
        :math:`2/\varepsilon_1`: :math:`F(\lambda p) = \lambda^{2/\varepsilon_1} F(p)`.
    """
    points, size, eps = _tensor(points, "points"), _tensor(size, "size"), _tensor(eps, "eps")
    _last(points, "points", 3)
    _last(size, "size", 3)
    _last(eps, "eps", 2)
    _same_device(("points", points), ("size", size), ("eps", eps))
    if bool((size <= 0).any()) or bool((eps <= 0).any()):
        raise ValueError("size and eps must be positive")
    lr = _log_ratio(points, size)
    e1, e2 = eps[..., 0], eps[..., 1]
    xy = torch.logaddexp(2.0 / e2 * lr[..., 0], 2.0 / e2 * lr[..., 1]) * (e2 / e1)
    log_f = torch.logaddexp(xy, 2.0 / e1 * lr[..., 2])
    return torch.exp(log_f.clamp(max=_LOG_MAX))


def cuboid_inside_outside(points: Tensor, size: Tensor) -> Tensor:
    """The cuboid's inside-outside function ``max_k (p_k / a_k)^2`` ``(...)`` (``<= 1`` inside).

    Introduced in ``lectures/08_primitives.ipynb``.  It is the limit of
    ``superquadric_inside_outside(points, size, (e, e)) ** e`` as ``e -> 0``.
    """
    points, size = _tensor(points, "points"), _tensor(size, "size")
    _last(points, "points", 3)
    _last(size, "size", 3)
    if bool((size <= 0).any()):
        raise ValueError("size must be positive")
    return ((points / size) ** 2).amax(dim=-1)


def cuboid_squared_distance(points: Tensor, size: Tensor) -> Tensor:
    """Exact squared distance from local ``points`` ``(..., 3)`` to the *solid* cuboid of half-sizes ``size``:
    ``sum_k max(|p_k| - a_k, 0)^2`` (0 inside), ``(...)``.

    Introduced in ``lectures/08_primitives.ipynb``.  Differentiable in both (almost everywhere); the coverage
    term of :func:`primitive_terms` with ``coverage="analytic"``.  A superquadric has no such closed form.
    """
    points, size = _tensor(points, "points"), _tensor(size, "size")
    _last(points, "points", 3)
    _last(size, "size", 3)
    if bool((size <= 0).any()):
        raise ValueError("size must be positive")
    q = (points.abs() - size).clamp_min(0.0)
    return (q * q).sum(-1)


# ---------------------------------------------------------------------------
# surface samples
# ---------------------------------------------------------------------------
def superquadric_angle_points(eta: Tensor, omega: Tensor, size: Tensor, eps: Tensor) -> Tensor:
    r"""The angle parametrisation of a superquadric surface (local frame).

    Introduced in ``lectures/08_primitives.ipynb``.
    :math:`x = a_1 c(\eta)^{\varepsilon_1} c(\omega)^{\varepsilon_2}`,
    :math:`y = a_2 c(\eta)^{\varepsilon_1} s(\omega)^{\varepsilon_2}`,
    :math:`z = a_3 s(\eta)^{\varepsilon_1}` with signed powers, for
    :math:`\eta\in[-\pi/2,\pi/2]`, :math:`\omega\in[-\pi,\pi]`.  ``eta``, ``omega`` broadcast
    against ``size[..., 0]`` and ``eps[..., 0]``; returns ``(..., 3)``.  Uniform angles do **not**
    give uniform points on the surface (they crowd at the edges when the exponents are small):
    see :func:`sample_superquadric_surface`.
    """
    e1, e2 = eps[..., 0], eps[..., 1]
    ce, se = fexp(torch.cos(eta), e1), fexp(torch.sin(eta), e1)
    cw, sw = fexp(torch.cos(omega), e2), fexp(torch.sin(omega), e2)
    return torch.stack([size[..., 0] * ce * cw, size[..., 1] * ce * sw, size[..., 2] * se], dim=-1)


def _log_f_and_grad_norm(u: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
    """``log F`` of the unit-size superquadric at ``u`` and ``|grad F| / F`` (both ``(...)``)."""
    e1, e2 = eps[..., 0, None], eps[..., 1, None]
    lr = torch.log(u.abs().clamp_min(1e-12))
    a = 2.0 / e2[..., 0] * lr[..., 0]
    b = 2.0 / e2[..., 0] * lr[..., 1]
    s_xy = torch.logaddexp(a, b)                    # log(x^{2/e2} + y^{2/e2})
    xy = s_xy * (e2[..., 0] / e1[..., 0])           # log of the first term of F
    zz = 2.0 / e1[..., 0] * lr[..., 2]              # log of the second term
    log_f = torch.logaddexp(xy, zz)
    # dF/dx = (2/e1) T^{e2/e1 - 1} x^{2/e2 - 1} with T = x^{2/e2} + y^{2/e2}; divide everything by F.
    k1 = 2.0 / e1[..., 0]
    gx = k1 * torch.exp(xy - s_xy + a - lr[..., 0] - log_f)
    gy = k1 * torch.exp(xy - s_xy + b - lr[..., 1] - log_f)
    gz = k1 * torch.exp(zz - lr[..., 2] - log_f)
    return log_f, torch.sqrt(gx * gx + gy * gy + gz * gz)


def sample_superquadric_surface(size: Tensor, eps: Tensor, n: int, *, oversample: int = 8,
                                generator: torch.Generator | None = None) -> Tensor:
    r"""``n`` points close to uniform over the surface of each superquadric (local frame).

    Introduced in ``lectures/08_primitives.ipynb``.

    Method (area-weighted resampling of a radial projection):

    1. draw ``oversample * n`` directions :math:`u` uniformly on the unit sphere;
    2. project them radially onto the *unit-size* superquadric:
       :math:`p = u\,F(u)^{-\varepsilon_1/2}` (exact, because :math:`F` is homogeneous of
       degree :math:`k = 2/\varepsilon_1`);
    3. the surface area that a solid angle :math:`d\Omega` maps to is
       :math:`dA = r^2 d\Omega/\cos\alpha = r^3 |\nabla F(p)|\, d\Omega / k` (Euler:
       :math:`\nabla F\cdot p = kF = k`), and scaling by :math:`a` multiplies it by
       :math:`a_1a_2a_3 |a^{-1}\odot n|`: these are the importance weights;
    4. resample ``n`` of the candidates with probability proportional to the weights
       (systematic resampling), then scale by :math:`a`.

    The selection is discrete (no gradient); the selected points are differentiable
    functions of ``size`` and ``eps``.  Args: ``size`` ``(..., 3)``, ``eps`` ``(..., 2)``.
    Returns ``(..., n, 3)``.
    """
    size, eps = _tensor(size, "size"), _tensor(eps, "eps")
    _last(size, "size", 3)
    _last(eps, "eps", 2)
    if size.shape[:-1] != eps.shape[:-1]:
        raise ValueError(f"size {tuple(size.shape)} and eps {tuple(eps.shape)} disagree on the leading dims")
    n, over = _positive_int(n, "n"), _positive_int(oversample, "oversample")
    lead = size.shape[:-1]
    c = n * over
    u = torch.randn(*lead, c, 3, generator=generator, dtype=size.dtype).to(size.device)
    u = u / torch.linalg.vector_norm(u, dim=-1, keepdim=True).clamp_min(1e-12)
    e = eps[..., None, :]
    with torch.no_grad():
        log_f, gnorm_over_f = _log_f_and_grad_norm(u, e.detach())
        e1 = e[..., 0].detach()
        r = torch.exp(-0.5 * e1 * log_f)                      # |p| (|u| = 1)
        # |grad F(p)| = |grad F(u)| * r^{k-1} and F(u) = r^{-k}: |grad F(p)| = gnorm_over_f / r
        area = r ** 3 * (gnorm_over_f / r) * e1 / 2.0
        nrm = _unit_normals(u, e.detach())
        area = area * torch.linalg.vector_norm(nrm / size.detach()[..., None, :], dim=-1)
        idx = _systematic_resample(area.clamp_min(0).nan_to_num(0.0), n, generator)
    u_sel = torch.gather(u, -2, idx[..., None].expand(*idx.shape, 3))
    p = _radial_project(u_sel, eps[..., None, :])
    return p * size[..., None, :]


def _unit_normals(u: Tensor, eps: Tensor) -> Tensor:
    """Unit normals (gradient directions of F) of the unit-size superquadric at the ray ``u``."""
    e1, e2 = eps[..., 0], eps[..., 1]
    au = u.abs().clamp_min(1e-12)
    lr = torch.log(au)
    s_xy = torch.logaddexp(2 / e2 * lr[..., 0], 2 / e2 * lr[..., 1])
    lx = (e2 / e1 - 1) * s_xy + (2 / e2 - 1) * lr[..., 0]
    ly = (e2 / e1 - 1) * s_xy + (2 / e2 - 1) * lr[..., 1]
    lz = (2 / e1 - 1) * lr[..., 2]
    m = torch.maximum(torch.maximum(lx, ly), lz)
    g = torch.stack([torch.exp(lx - m), torch.exp(ly - m), torch.exp(lz - m)], -1) * torch.sign(u)
    return g / torch.linalg.vector_norm(g, dim=-1, keepdim=True).clamp_min(1e-30)


def _radial_project(u: Tensor, eps: Tensor) -> Tensor:
    """``u * F(u)^{-e1/2}`` on the unit-size superquadric (differentiable in ``eps``)."""
    ones = torch.ones_like(u)
    log_f = torch.log(superquadric_inside_outside(u, ones, eps.expand(*u.shape[:-1], 2)))
    return u * torch.exp(-0.5 * eps[..., 0] * log_f)[..., None]


def _systematic_resample(weights: Tensor, n: int, generator: torch.Generator | None) -> Tensor:
    """Indices ``(..., n)`` drawn proportionally to ``weights (..., C)`` by systematic resampling."""
    w = weights + 1e-30
    cdf = torch.cumsum(w, dim=-1)
    cdf = cdf / cdf[..., -1:]
    lead = w.shape[:-1]
    off = torch.rand(*lead, 1, generator=generator, dtype=w.dtype).to(w.device)
    pos = (torch.arange(n, device=w.device, dtype=w.dtype) + off) / n
    idx = torch.searchsorted(cdf.contiguous(), pos.contiguous())
    return idx.clamp_max(w.shape[-1] - 1)


def sample_cuboid_surface(size: Tensor, n: int, *, generator: torch.Generator | None = None) -> Tensor:
    """``n`` points uniform over the surface of each cuboid ``[-a, a]`` (local frame), ``(..., n, 3)``.

    Introduced in ``lectures/08_primitives.ipynb``.  A face is drawn with probability
    proportional to its area (stratified: each face gets its expected share), then a uniform
    point on it; the points are differentiable in ``size``.
    """
    size = _tensor(size, "size")
    _last(size, "size", 3)
    n = _positive_int(n, "n")
    lead = size.shape[:-1]
    with torch.no_grad():
        a = size.detach()
        face_area = torch.stack([a[..., 1] * a[..., 2], a[..., 0] * a[..., 2], a[..., 0] * a[..., 1]], -1)
        axis = _systematic_resample(face_area, n, generator)  # (..., n): the axis normal to the face
    sign = torch.randint(0, 2, (*lead, n), generator=generator).to(size.device) * 2 - 1
    uv = torch.rand(*lead, n, 3, generator=generator, dtype=size.dtype).to(size.device) * 2 - 1
    onehot = torch.nn.functional.one_hot(axis, 3).to(size.dtype)
    unit = uv * (1 - onehot) + onehot * sign[..., None].to(size.dtype)
    return unit * size[..., None, :]


def _positive_int(v: object, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(v)


# ---------------------------------------------------------------------------
# a batch of primitives
# ---------------------------------------------------------------------------
@dataclass
class Primitives:
    """``B`` shapes of ``M`` primitives each (all tensors ``(B, M, ...)``).

    Introduced in ``lectures/08_primitives.ipynb``.

    Attributes: ``size`` ``(B, M, 3)`` half-sizes, ``eps`` ``(B, M, 2)`` exponents (ignored by
    cuboids), ``rotation`` ``(B, M, 4)`` quaternions ``(w, x, y, z)``, ``translation``
    ``(B, M, 3)``, ``prob`` ``(B, M)`` existence probabilities, ``kind`` one of :data:`KINDS`.
    """

    size: Tensor
    eps: Tensor
    rotation: Tensor
    translation: Tensor
    prob: Tensor
    kind: str = "superquadric"
    _rot: Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        for name in ("size", "eps", "rotation", "translation", "prob"):
            _tensor(getattr(self, name), name)
        b_m = self.prob.shape
        if self.prob.dim() != 2:
            raise ValueError(f"prob must be (B, M), got {tuple(b_m)}")
        for name, k in (("size", 3), ("eps", 2), ("rotation", 4), ("translation", 3)):
            t = getattr(self, name)
            if t.shape != (*b_m, k):
                raise ValueError(f"{name} must be (B, M, {k}) = {(*b_m, k)}, got {tuple(t.shape)}")

    @property
    def n_primitives(self) -> int:
        return int(self.prob.shape[1])

    @property
    def matrix(self) -> Tensor:
        """Rotation matrices ``(B, M, 3, 3)`` (columns: local axes in world coordinates)."""
        if self._rot is None:
            self._rot = quaternion_to_matrix(self.rotation)
        return self._rot

    def to_local(self, points: Tensor) -> Tensor:
        """World points ``(B, N, 3)`` in every primitive's frame: ``(B, M, N, 3)`` = ``R^T (p - t)``."""
        points = _tensor(points, "points")
        if points.dim() != 3 or points.shape[-1] != 3 or points.shape[0] != self.prob.shape[0]:
            raise ValueError(f"points must be (B={self.prob.shape[0]}, N, 3), got {tuple(points.shape)}")
        d = points[:, None, :, :] - self.translation[:, :, None, :]
        return d @ self.matrix  # row vector times R == (R^T d^T)^T

    def to_world(self, local: Tensor) -> Tensor:
        """Local points ``(B, M, S, 3)`` of each primitive to world coordinates ``(B, M, S, 3)``."""
        return local @ self.matrix.transpose(-1, -2) + self.translation[:, :, None, :]

    def inside_outside(self, points: Tensor) -> Tensor:
        """``F`` of every primitive at world points ``(B, N, 3)``: ``(B, M, N)``."""
        local = self.to_local(points)
        if self.kind == "cuboid":
            return cuboid_inside_outside(local, self.size[:, :, None, :])
        return superquadric_inside_outside(local, self.size[:, :, None, :], self.eps[:, :, None, :])

    def contains(self, points: Tensor) -> Tensor:
        """``(B, M, N)`` bool: the point is inside primitive ``m`` (``F < 1``), whether or not it exists."""
        return self.inside_outside(points) < 1.0

    def sample_surface(self, n: int, generator: torch.Generator | None = None, local: bool = False) -> Tensor:
        """``n`` surface samples per primitive, close to uniform over the area: ``(B, M, n, 3)`` (world)."""
        if self.kind == "cuboid":
            pts = sample_cuboid_surface(self.size, n, generator=generator)
        else:
            pts = sample_superquadric_surface(self.size, self.eps, n, generator=generator)
        return pts if local else self.to_world(pts)

    def detach(self) -> Primitives:
        return Primitives(self.size.detach(), self.eps.detach(), self.rotation.detach(),
                          self.translation.detach(), self.prob.detach(), self.kind)

    def __getitem__(self, i: int | slice) -> Primitives:
        s = slice(i, i + 1) if isinstance(i, int) else i
        return Primitives(self.size[s], self.eps[s], self.rotation[s], self.translation[s], self.prob[s], self.kind)


# ---------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------
class PrimitiveNet(nn.Module):
    """A point-cloud encoder (chapter 02) followed by heads predicting ``M`` primitives.

    Introduced in ``lectures/08_primitives.ipynb``.  ``encoder(points)`` must return an object
    with ``global_feature`` ``(B, latent_dim)`` (e.g. :class:`course_lib.models.PointNet` with
    ``out_dim=latent_dim``), then one hidden layer and one linear head per parameter:

    * translation ``max_translation * tanh``;
    * size ``min_size + (max_size - min_size) * sigmoid``, bias so that half-sizes start near
      ``init_size`` (Tulsiani biases them small);
    * exponents ``0.4 + 1.1 * sigmoid`` (Paschalidou's range ``[0.4, 1.5]``), start at 1;
    * rotation: a quaternion, normalised, bias ``(1, 0, 0, 0)`` (identity);
    * existence ``sigmoid`` with bias ``init_logit`` (2.5: about 0.92, Tulsiani's bias).
    """

    def __init__(self, encoder: nn.Module, latent_dim: int, n_primitives: int, kind: str = "superquadric", *,
                 hidden: int = 128, max_translation: float = 0.8, min_size: float = 0.02, max_size: float = 0.7,
                 init_size: float = 0.15, init_logit: float = 2.5, eps_range: tuple[float, float] = (0.4, 1.5)):
        super().__init__()
        self.kind = _check_kind(kind)
        self.encoder = encoder
        self.n_primitives = _positive_int(n_primitives, "n_primitives")
        self.latent_dim = _positive_int(latent_dim, "latent_dim")
        self.max_translation, self.min_size, self.max_size = float(max_translation), float(min_size), float(max_size)
        self.eps_range = (float(eps_range[0]), float(eps_range[1]))
        m = self.n_primitives
        self.trunk = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU())
        self.translation = nn.Linear(hidden, 3 * m)
        self.size = nn.Linear(hidden, 3 * m)
        self.eps = nn.Linear(hidden, 2 * m)
        self.rotation = nn.Linear(hidden, 4 * m)
        self.logit = nn.Linear(hidden, m)
        with torch.no_grad():
            frac = (init_size - min_size) / (max_size - min_size)
            self.size.bias.fill_(math.log(frac / (1 - frac)))
            self.size.weight.mul_(0.1)
            lo, hi = self.eps_range
            f1 = (1.0 - lo) / (hi - lo)
            self.eps.bias.fill_(math.log(f1 / (1 - f1)))
            self.eps.weight.mul_(0.1)
            self.rotation.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(m))
            self.rotation.weight.mul_(0.1)
            self.logit.bias.fill_(float(init_logit))
            self.logit.weight.mul_(0.1)

    def forward(self, points: Tensor) -> Primitives:
        """``points (B, N, 3)`` -> :class:`Primitives` of ``M`` primitives per shape."""
        h = self.trunk(self.encoder(points).global_feature)
        b, m = h.shape[0], self.n_primitives
        lo, hi = self.eps_range
        return Primitives(
            size=self.min_size + (self.max_size - self.min_size) * torch.sigmoid(self.size(h)).view(b, m, 3),
            eps=lo + (hi - lo) * torch.sigmoid(self.eps(h)).view(b, m, 2),
            rotation=self.rotation(h).view(b, m, 4),
            translation=self.max_translation * torch.tanh(self.translation(h)).view(b, m, 3),
            prob=torch.sigmoid(self.logit(h)),
            kind=self.kind,
        )


# ---------------------------------------------------------------------------
# the expectation over existence: reordering trick and enumeration
# ---------------------------------------------------------------------------
def _check_dist_prob(dist: Tensor, prob: Tensor) -> tuple[Tensor, Tensor]:
    dist, prob = _tensor(dist, "dist"), _tensor(prob, "prob")
    if dist.dim() < 1 or dist.shape[-1] < 1:
        raise ValueError(f"dist must be (..., M) with M >= 1, got {tuple(dist.shape)}")
    if prob.shape[-1] != dist.shape[-1]:
        raise ValueError(f"dist {tuple(dist.shape)} and prob {tuple(prob.shape)} disagree on M (last dim)")
    _same_device(("dist", dist), ("prob", prob))
    if prob.numel() and bool(((prob < 0) | (prob > 1) | torch.isnan(prob)).any()):
        raise ValueError("prob must hold probabilities in [0, 1] (apply a sigmoid to logits first)")
    try:
        torch.broadcast_shapes(dist.shape, prob.shape)
    except RuntimeError:
        raise ValueError(f"dist {tuple(dist.shape)} and prob {tuple(prob.shape)} do not broadcast") from None
    return dist, prob


def expected_min_distance(dist: Tensor, prob: Tensor, empty: float | Tensor = 0.0) -> Tensor:
    r""":math:`\mathbb E_{z_m\sim\mathrm{Bern}(\theta_m)}[\min_{m: z_m = 1}\Delta^m]` exactly, by the reordering trick.

    Introduced in ``lectures/08_primitives.ipynb`` [Paschalidou2019].

    Sort the distances :math:`\Delta^{(1)}\le\dots\le\Delta^{(M)}`; the minimum over the
    existing primitives is :math:`\Delta^{(k)}` exactly when the :math:`k`-th closest exists and
    all closer ones do not, which has probability
    :math:`\theta_{(k)}\prod_{j<k}(1-\theta_{(j)})` (an exclusive cumulative product). When no
    primitive exists the value is ``empty``:

    .. math:: \mathbb E = \sum_k \Delta^{(k)}\theta_{(k)}\prod_{j<k}(1-\theta_{(j)})
              + \texttt{empty}\prod_k (1-\theta_k).

    ``O(M log M)`` instead of the ``2^M`` configurations of
    :func:`expected_min_distance_enumerate`, exact, and differentiable in both ``dist`` and
    ``prob`` (ties give the same value and gradient whatever their order).

    Args:
        dist: ``(..., M)`` distances (any values; squared distances in the losses).
        prob: ``(..., M)`` existence probabilities in ``[0, 1]``, broadcast against ``dist``.
        empty: the value of the all-absent configuration (float or tensor broadcast to ``(...)``).

    Returns:
        ``(...)``.
    """
    dist, prob = _check_dist_prob(dist, prob)
    shape = torch.broadcast_shapes(dist.shape, prob.shape)
    dist, prob = dist.expand(shape), prob.expand(shape)
    d_sorted, order = torch.sort(dist, dim=-1)
    p_sorted = torch.gather(prob, -1, order)
    keep = torch.cumprod(1 - p_sorted, dim=-1)               # prod_{j <= k} (1 - p_(j))
    before = torch.cat([torch.ones_like(keep[..., :1]), keep[..., :-1]], dim=-1)
    out = (d_sorted * p_sorted * before).sum(-1)
    if isinstance(empty, Tensor) or empty != 0:
        out = out + empty * keep[..., -1]
    return out


def enumerate_configurations(m: int, device: torch.device | str | None = None,
                             dtype: torch.dtype = torch.float64) -> Tensor:
    """All ``2^m`` existence configurations ``(2^m, m)`` of 0/1 (row ``c`` = the bits of ``c``)."""
    m = _positive_int(m, "m")
    if m > 20:
        raise ValueError(f"2^{m} configurations is too many to enumerate (m <= 20)")
    c = torch.arange(2 ** m, device=device)
    return ((c[:, None] >> torch.arange(m, device=device)) & 1).to(dtype)


def expected_min_distance_enumerate(dist: Tensor, prob: Tensor, empty: float | Tensor = 0.0) -> Tensor:
    """The same expectation as :func:`expected_min_distance` by brute force over all ``2^M`` configurations.

    Introduced in ``lectures/08_primitives.ipynb`` as the reference (and to measure its cost):
    ``sum_z p(z) min_{m: z_m=1} dist_m``, with ``empty`` for the all-absent ``z``.
    Memory ``O(2^M M)`` per entry; ``M <= 20``.
    """
    dist, prob = _check_dist_prob(dist, prob)
    shape = torch.broadcast_shapes(dist.shape, prob.shape)
    dist, prob = dist.expand(shape), prob.expand(shape)
    z = enumerate_configurations(shape[-1], dist.device, dist.dtype)             # (C, M)
    pz = torch.prod(z * prob[..., None, :] + (1 - z) * (1 - prob[..., None, :]), dim=-1)  # (..., C)
    masked = torch.where(z.bool(), dist[..., None, :], torch.full_like(z, math.inf))
    mins = masked.amin(dim=-1)                                                  # (..., C)
    empty_t = torch.as_tensor(empty, dtype=dist.dtype, device=dist.device)
    mins = torch.where(torch.isinf(mins), empty_t if empty_t.dim() == 0 else empty_t[..., None], mins)
    return (pz * mins).sum(-1)


def bernoulli_log_prob(z: Tensor, prob: Tensor) -> Tensor:
    """``log p(z) = sum_m z_m log theta_m + (1 - z_m) log(1 - theta_m)`` over the last dim.

    Introduced in ``lectures/08_primitives.ipynb``.  Exact 0/1 probabilities are handled
    (``0 log 0 = 0``), so a certain configuration has log-probability 0.
    """
    z = z.to(prob.dtype)
    tiny = torch.finfo(prob.dtype).tiny
    lp = torch.where(z > 0.5, torch.log(prob.clamp_min(tiny)), torch.log((1 - prob).clamp_min(tiny)))
    return lp.sum(-1)


# ---------------------------------------------------------------------------
# REINFORCE
# ---------------------------------------------------------------------------
class MovingAverageBaseline:
    """The moving-average baseline of REINFORCE: ``b <- momentum b + (1 - momentum) mean(loss)``.

    Introduced in ``lectures/08_primitives.ipynb`` (Tulsiani's code uses momentum 0.9).
    Before the first update ``value`` is 0.  The baseline used for a batch must come from
    *earlier* batches (call :meth:`update` after using it), so that it does not depend on the
    current samples and the estimator stays unbiased.
    """

    def __init__(self, momentum: float = 0.9) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.value = 0.0
        self.steps = 0

    def update(self, losses: Tensor | float) -> float:
        m = float(torch.as_tensor(losses).detach().float().mean())
        self.value = m if self.steps == 0 else self.momentum * self.value + (1 - self.momentum) * m
        self.steps += 1
        return self.value

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value, "steps": self.steps, "momentum": self.momentum}


def reinforce_gradient(f: Callable[[Tensor], Tensor], prob: Tensor, n_samples: int, *, baseline: float = 0.0,
                       generator: torch.Generator | None = None) -> Tensor:
    r"""The REINFORCE (score-function) estimate of :math:`\nabla_\theta\mathbb E_{z\sim\mathrm{Bern}(\theta)}[f(z)]`.

    Introduced in ``lectures/08_primitives.ipynb`` [Williams1992].

    .. math:: \hat g = \frac1K\sum_{k=1}^K \big(f(z_k) - b\big)\,\nabla_\theta\log p_\theta(z_k),
       \qquad \frac{\partial \log p_\theta(z)}{\partial\theta_m} = \frac{z_m}{\theta_m}
       - \frac{1-z_m}{1-\theta_m}.

    Unbiased for any baseline ``b`` that does not depend on the samples
    (:math:`\mathbb E[\nabla\log p] = 0`).  Args: ``f`` maps configurations ``(K, M)`` (0/1,
    ``prob``'s dtype) to losses ``(K,)``; ``prob`` ``(M,)`` in ``(0, 1)``; ``n_samples`` ``K``.
    Returns ``(M,)``.
    """
    prob = _tensor(prob, "prob")
    if prob.dim() != 1:
        raise ValueError(f"prob must be (M,), got {tuple(prob.shape)}")
    k = _positive_int(n_samples, "n_samples")
    u = torch.rand(k, prob.shape[0], generator=generator, dtype=prob.dtype).to(prob.device)
    z = (u < prob.detach()).to(prob.dtype)
    with torch.no_grad():
        losses = f(z)
    if losses.shape != (k,):
        raise ValueError(f"f must return (K,) = ({k},) losses, got {tuple(losses.shape)}")
    p = prob.detach()
    score = z / p - (1 - z) / (1 - p)
    return ((losses - baseline)[:, None] * score).mean(0)


# ---------------------------------------------------------------------------
# the losses
# ---------------------------------------------------------------------------
@dataclass
class PrimitiveTerms:
    """Everything the loss of a batch needs, for any existence configuration.

    Introduced in ``lectures/08_primitives.ipynb``.  ``coverage_dist`` ``(B, N, M)``:
    :math:`\\Delta_i^m` (squared, 0 inside primitive ``m``); ``sample_dist`` ``(B, M, S)``: squared
    distance from each surface sample of each primitive to the target; ``sample_inside``
    ``(B, M, S, M)`` bool: sample ``s`` of ``m`` lies inside primitive ``m'`` (``m' != m``);
    ``prob`` ``(B, M)``.  ``consistency`` (one of :data:`CONSISTENCIES`) says what ``sample_dist`` measures and
    how :func:`_consistency` combines it; ``area_share`` ``(B, M)`` (``"paschalidou"`` only): each primitive's share
    of the summed approximate surface area (:func:`ellipsoid_area`).
    """

    coverage_dist: Tensor
    sample_dist: Tensor
    sample_inside: Tensor
    prob: Tensor
    consistency: str = "surface"
    area_share: Tensor | None = None


def primitive_terms(prims: Primitives, target: Tensor, n_samples: int, *,
                    generator: torch.Generator | None = None, inside_is_covered: bool = True,
                    coverage: str = "samples", consistency: str = "surface",
                    target_sdf: Callable[[Tensor], Tensor] | None = None) -> PrimitiveTerms:
    """Distances between a batch of primitives and target surface points, both directions.

    Introduced in ``lectures/08_primitives.ipynb``.  ``target`` ``(B, N, 3)``; ``n_samples``
    surface samples per primitive (:meth:`Primitives.sample_surface`).  Nearest neighbours come
    from :func:`course_lib.ops.knn` (exact gradients to both clouds).  ``coverage="samples"``
    (default, both kinds): a target point's squared distance to the nearest surface sample of the
    primitive, 0 inside it (``inside_is_covered``); ``"analytic"`` (cuboids only): the exact squared
    distance to the solid cuboid (:func:`cuboid_squared_distance`), which has no sampling error: a
    target point just outside a face costs its true (tiny) distance, not the distance to the nearest
    of a few hundred samples.

    ``consistency`` (:data:`CONSISTENCIES`) chooses the other direction, what a primitive's surface sample costs:
    ``"surface"`` (default, the course's variant) and ``"paschalidou"`` its squared distance to the nearest target
    point; ``"volume"`` (Tulsiani's) its squared distance to the target solid, ``clamp(target_sdf(sample), 0)^2``,
    0 inside the target.  ``target_sdf`` (``"volume"`` only) maps sample points ``(B, P, 3)`` to the target's signed
    distances ``(B, P)`` (negative inside; exact or a lower bound outside), differentiable in the points
    (:func:`course_lib.experiments.primitives.shapes_sdf` builds it for ShapeNet-lite shapes).
    """
    from course_lib.ops import knn

    if coverage not in COVERAGES:
        raise ValueError(f"coverage must be one of {COVERAGES}, got {coverage!r}")
    if consistency not in CONSISTENCIES:
        raise ValueError(f"consistency must be one of {CONSISTENCIES}, got {consistency!r}")
    if (consistency == "volume") != (target_sdf is not None):
        raise ValueError("consistency='volume' needs target_sdf (the target's signed distance), and only it takes one"
                         if consistency == "volume" else
                         f"target_sdf is used only by consistency='volume' (got consistency={consistency!r})")
    if coverage == "analytic" and prims.kind != "cuboid":
        raise ValueError("coverage='analytic' needs cuboids: a superquadric's distance has no closed form "
                         "(use coverage='samples')")
    target = _tensor(target, "target")
    b, m = prims.prob.shape
    if target.dim() != 3 or target.shape[0] != b or target.shape[-1] != 3:
        raise ValueError(f"target must be (B={b}, N, 3), got {tuple(target.shape)}")
    _same_device(("target", target), ("prims", prims.prob))
    n = target.shape[1]
    samples = prims.sample_surface(n_samples, generator)                        # (B, M, S, 3)
    s = samples.shape[2]
    if coverage == "analytic":
        cov = cuboid_squared_distance(prims.to_local(target), prims.size[:, :, None, :]).transpose(1, 2)
    else:
        q = target[:, None].expand(b, m, n, 3).reshape(b * m, n, 3)
        cov, _ = knn(q, samples.reshape(b * m, s, 3), 1)                          # (B*M, N, 1)
        cov = cov.reshape(b, m, n).transpose(1, 2)                               # (B, N, M)
        if inside_is_covered:
            with torch.no_grad():
                inside = prims.contains(target).transpose(1, 2)                  # (B, N, M)
            cov = cov.masked_fill(inside, 0.0)
    return _sample_terms(cov, prims, samples, target, knn, consistency, target_sdf)


def ellipsoid_area(size: Tensor) -> Tensor:
    """The approximate surface area of the ellipsoid with half-sizes ``size`` ``(..., 3)`` -> ``(...)``.

    Introduced in ``lectures/08_primitives.ipynb`` (Paschalidou's consistency weighting).  Thomsen's formula ``4 pi ((ab^p + ac^p + bc^p) / 3)^(1/p)`` with ``p = 1.6`` (relative error under about
    1.1%; exact for a sphere), which Paschalidou's ``prim_to_pcl_loss`` uses for every primitive (superquadrics and
    cuboids alike) to weight the primitives by their areas.
    """
    a, b, c = size.unbind(-1)
    p = 1.6
    return 4 * math.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)


def _sample_terms(cov: Tensor, prims: Primitives, samples: Tensor, target: Tensor, knn: Callable, consistency: str,
                  target_sdf: Callable[[Tensor], Tensor] | None) -> PrimitiveTerms:
    """The consistency side: each sample's squared distance to the target, and which samples lie inside others."""
    b, m, s, _ = samples.shape
    flat = samples.reshape(b, m * s, 3)
    area_share = None
    if consistency == "volume":
        sdf = target_sdf(flat)                                                   # type: ignore[misc]
        if not isinstance(sdf, Tensor) or sdf.shape != (b, m * s):
            raise ValueError(f"target_sdf must map (B, P, 3) points to (B, P) = ({b}, {m * s}) signed distances, "
                             f"got {tuple(sdf.shape) if isinstance(sdf, Tensor) else type(sdf).__name__}")
        cons = sdf.to(samples.dtype).clamp_min(0.0).square().reshape(b, m, s)
        ins = torch.zeros(b, m, s, m, dtype=torch.bool, device=samples.device)   # nothing is discarded
    else:
        cons, _ = knn(flat, target, 1)
        cons = cons.reshape(b, m, s)
        if consistency == "surface":
            with torch.no_grad():
                ins = prims.detach().contains(samples.detach().reshape(b, m * s, 3))    # (B, M', M*S)
                ins = ins.reshape(b, m, m, s).permute(0, 2, 3, 1)                        # (B, M, S, M')
                ins = ins & ~torch.eye(m, dtype=torch.bool, device=ins.device)[None, :, None, :]
        else:  # paschalidou: nothing discarded, primitives weighted by their share of the area
            ins = torch.zeros(b, m, s, m, dtype=torch.bool, device=samples.device)
            area = ellipsoid_area(prims.size)
            area_share = area / area.sum(-1, keepdim=True)
    return PrimitiveTerms(cov, cons, ins, prims.prob, consistency, area_share)


def _consistency(terms: PrimitiveTerms, z: Tensor) -> Tensor:
    """The consistency term of existence configurations ``z (..., B, M)`` -> ``(..., B)``, by ``terms.consistency``.

    * ``"surface"`` (the course's variant): ``sum_m z_m mean_s d_ms prod_{m' != m} (1 - z_m' [s inside m'])``;
    * ``"volume"`` (Tulsiani 2017's equation; ``d`` is the distance to the target solid):
      ``sum_m z_m mean_s d_ms``.  Their code weights every sample by its primitive's area and divides by the
      summed area of the existing primitives (an area-weighted mean over the union's samples), which is not
      multilinear in ``z``; with REINFORCE they need no closed-form expectation, the reordering trick does;
    * ``"paschalidou"`` (Paschalidou 2019's ``prim_to_pcl_loss``): ``sum_m z_m (A_m / sum A) mean_s d_ms``
      (the official code divides by ``M`` after normalising the areas to mean 1: the same value).

    All three are multilinear in ``z``: with ``z = prob`` each is the exact expectation over independent
    existences (every factor involves a different primitive).
    """
    if terms.consistency == "surface":
        ins = terms.sample_inside.to(z.dtype)                                     # (B, M, S, M')
        visible = torch.prod(1 - ins * z[..., :, None, None, :], dim=-1)          # (..., B, M, S)
        return (z * (terms.sample_dist * visible).mean(-1)).sum(-1)
    per_primitive = terms.sample_dist.mean(-1)                                     # (B, M)
    if terms.consistency == "volume":
        return (z * per_primitive).sum(-1)
    if terms.consistency == "paschalidou":
        return (z * terms.area_share * per_primitive).sum(-1)
    raise ValueError(f"consistency must be one of {CONSISTENCIES}, got {terms.consistency!r}")


def configuration_loss(terms: PrimitiveTerms, z: Tensor, *, empty: float = 4.0,
                       parsimony: float = 0.0) -> dict[str, Tensor]:
    """The loss of hard existence configurations ``z`` ``(K, B, M)`` (0/1): each term ``(K, B)``.

    Introduced in ``lectures/08_primitives.ipynb``.  Coverage: mean over target points of the
    distance to the nearest *existing* primitive (``empty`` when none exists); consistency:
    for each existing primitive the mean distance of its samples to the target, samples inside
    another existing primitive discarded (they lie inside the union, not on its surface);
    parsimony: ``parsimony * sum_m z_m``.  Differentiable in the geometry, not in ``z``.
    """
    z = z.to(terms.coverage_dist.dtype)
    if z.dim() != 3 or z.shape[1:] != terms.prob.shape:
        raise ValueError(f"z must be (K, B, M) with (B, M) = {tuple(terms.prob.shape)}, got {tuple(z.shape)}")
    d = terms.coverage_dist[None].expand(z.shape[0], *terms.coverage_dist.shape)
    masked = torch.where(z[:, :, None, :] > 0.5, d, torch.full_like(d, math.inf))
    mins = masked.amin(-1)
    mins = torch.where(torch.isinf(mins), torch.full_like(mins, float(empty)), mins)
    coverage = mins.mean(-1)
    consistency = _consistency(terms, z)
    count = z.sum(-1)
    return {"loss": coverage + consistency + parsimony * count, "coverage": coverage,
            "consistency": consistency, "count": count}


def expected_count(prob: Tensor) -> Tensor:
    """The expected number of existing primitives ``sum_m theta_m`` ``(B,)`` (the parsimony term)."""
    return prob.sum(-1)


def expected_loss(terms: PrimitiveTerms, *, empty: float = 4.0, parsimony: float = 0.0) -> dict[str, Tensor]:
    """The exact expectation over existence of :func:`configuration_loss`, each term ``(B,)``.

    Introduced in ``lectures/08_primitives.ipynb``.  Coverage by the reordering trick
    (:func:`expected_min_distance` per target point), consistency exactly (it is multilinear in
    ``z``), parsimony ``parsimony * E[count] = parsimony * sum_m theta_m``.
    """
    p = terms.prob
    coverage = expected_min_distance(terms.coverage_dist, p[:, None, :], empty=empty).mean(-1)
    consistency = _consistency(terms, p)
    count = expected_count(p)
    return {"loss": coverage + consistency + parsimony * count, "coverage": coverage,
            "consistency": consistency, "count": count}


def reinforce_loss(terms: PrimitiveTerms, n_samples: int, baseline: MovingAverageBaseline, *,
                   empty: float = 4.0, parsimony: float = 0.0,
                   generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """A surrogate loss whose gradient is the REINFORCE estimate of the expected loss's gradient.

    Introduced in ``lectures/08_primitives.ipynb`` [Tulsiani2017, Williams1992].  Draws
    ``n_samples`` configurations ``z ~ Bern(prob)`` per shape; the geometry gets the pathwise
    gradient of the mean sampled loss, the probabilities the score-function gradient
    ``(L(z) - b) grad log p(z)`` with ``b`` the moving average *before* this batch (updated
    here afterwards).  ``loss`` is the surrogate to back-propagate; ``value`` the mean sampled
    loss (what is reported), plus the mean terms.
    """
    k = _positive_int(n_samples, "n_samples")
    p = terms.prob
    u = torch.rand(k, *p.shape, generator=generator, dtype=p.dtype).to(p.device)
    z = (u < p.detach()).to(p.dtype)
    out = configuration_loss(terms, z, empty=empty, parsimony=parsimony)
    value = out["loss"]                                                             # (K, B)
    logp = bernoulli_log_prob(z, p[None])                                           # (K, B)
    b = baseline.value
    surrogate = value.mean() + ((value.detach() - b) * logp).mean()
    baseline.update(value.detach())
    return {"loss": surrogate, "value": value.mean().detach(), "coverage": out["coverage"].mean().detach(),
            "consistency": out["consistency"].mean().detach(), "count": out["count"].mean().detach(),
            "baseline": torch.tensor(b)}


# ---------------------------------------------------------------------------
# evaluation helpers: occupancy, surface of the union, meshes
# ---------------------------------------------------------------------------
def union_occupancy(prims: Primitives, points: Tensor, threshold: float = 0.5) -> Tensor:
    """``(B, N)`` bool: inside at least one primitive with ``prob > threshold``.

    Introduced in ``lectures/08_primitives.ipynb`` (the IoU against the true occupancy).
    """
    inside = prims.contains(points)                                               # (B, M, N)
    exists = prims.prob > threshold
    return (inside & exists[:, :, None]).any(1)


@torch.no_grad()
def union_surface_points(prims: Primitives, n_per_primitive: int, threshold: float = 0.5,
                         generator: torch.Generator | None = None) -> list[Tensor]:
    """Surface samples of the union of existing primitives, one ``(n_b, 3)`` tensor per shape.

    Introduced in ``lectures/08_primitives.ipynb``.  Samples of primitives with
    ``prob > threshold``, minus those inside another existing primitive (area-uniform on the
    union's surface when every primitive is sampled proportionally to its area).
    """
    samples = prims.sample_surface(n_per_primitive, generator)                     # (B, M, S, 3)
    b, m, s, _ = samples.shape
    ins = prims.contains(samples.reshape(b, m * s, 3)).reshape(b, m, m, s).permute(0, 2, 3, 1)
    ins = ins & ~torch.eye(m, dtype=torch.bool, device=ins.device)[None, :, None, :]
    exists = prims.prob > threshold
    covered = (ins & exists[:, None, None, :]).any(-1)                             # (B, M, S)
    keep = exists[:, :, None] & ~covered
    return [samples[i][keep[i]] for i in range(b)]


def primitive_meshes(prims: Primitives, index: int = 0, resolution: int = 24, threshold: float = 0.0) -> list:
    """``trimesh`` meshes (world frame) of the primitives of shape ``index`` with ``prob > threshold``.

    Introduced in ``lectures/08_primitives.ipynb`` (figures).  Superquadrics from an
    ``resolution x 2 resolution`` angle grid (:func:`superquadric_angle_points`), cuboids as boxes.
    Each mesh's ``metadata`` holds ``{"index": m, "prob": theta_m}``.
    """
    import trimesh

    p = prims.detach()
    out = []
    for m in range(p.n_primitives):
        prob = float(p.prob[index, m])
        if prob <= threshold:
            continue
        if p.kind == "cuboid":
            box = trimesh.creation.box(extents=(2 * p.size[index, m]).cpu().numpy())
            v, f = torch.as_tensor(box.vertices, dtype=p.size.dtype), box.faces
        else:
            n_eta, n_om = resolution, 2 * resolution
            eta = torch.linspace(-math.pi / 2, math.pi / 2, n_eta, dtype=p.size.dtype)
            om = torch.linspace(-math.pi, math.pi, n_om, dtype=p.size.dtype)
            ee, oo = torch.meshgrid(eta, om, indexing="ij")
            v = superquadric_angle_points(ee.reshape(-1), oo.reshape(-1), p.size[index, m].cpu(),
                                          p.eps[index, m].cpu()).reshape(n_eta, n_om, 3)
            # close the grid exactly: cos(pi / 2) is not 0 in floating point, and |.|^eps of it is far from 0
            # (~1e-3 for eps = 0.4), so the pole rows and the seam column would leave pinholes
            v = v.clone()
            v[:, -1] = v[:, 0]
            v[0] = v[0].mean(0)
            v[-1] = v[-1].mean(0)
            v = v.reshape(-1, 3)
            idx = np.arange(n_eta * n_om).reshape(n_eta, n_om)
            a, b = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel()
            c, d = idx[:-1, 1:].ravel(), idx[1:, 1:].ravel()
            f = np.concatenate([np.stack([a, c, d], 1), np.stack([a, d, b], 1)])
        r = p.matrix[index, m].cpu()
        world = v @ r.T + p.translation[index, m].cpu()
        mesh = trimesh.Trimesh(world.numpy(), f, process=False)
        mesh.metadata.update({"index": m, "prob": prob})
        out.append(mesh)
    return out


def _all_configurations_loss(terms: PrimitiveTerms, *, empty: float = 4.0, parsimony: float = 0.0) -> Tensor:
    """Brute-force expectation of :func:`configuration_loss` over all ``2^M`` configurations ``(B,)`` (tests)."""
    b, m = terms.prob.shape
    z = enumerate_configurations(m, terms.prob.device, terms.prob.dtype)            # (C, M)
    zz = z[:, None, :].expand(len(z), b, m)
    loss = configuration_loss(terms, zz, empty=empty, parsimony=parsimony)["loss"]  # (C, B)
    w = torch.exp(bernoulli_log_prob(zz, terms.prob[None]))
    return (w * loss).sum(0)

