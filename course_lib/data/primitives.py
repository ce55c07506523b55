"""Analytic primitives and CSG nodes with signed distance functions in torch.

Introduced in ``lectures/01_data_and_representations.ipynb``.

Conventions
-----------
* Every SDF is negative inside, positive outside, zero on the surface.
* A primitive is defined in its *local* frame (centred at the origin, axis of
  revolution along local ``y``) and placed in the world by a rotation ``R``
  (columns = local axes expressed in world coordinates) and a centre ``t``:
  ``p_world = R @ p_local + t``.  Rigid motions keep an SDF exact.
* Exact SDFs: :class:`Sphere`, :class:`Box`, :class:`RoundBox`, :class:`Cylinder`,
  :class:`Capsule`, :class:`Torus`, :class:`CappedCone`.  :class:`Ellipsoid` returns a *bound*:
  ``(|p / r| - 1) * min(r)`` has the right sign and never exceeds the true
  distance in absolute value (the scaled-sphere argument), so sphere tracing
  stays safe and the zero level set is the exact ellipsoid.
* CSG: :class:`Union` (min), :class:`Intersection` (max) and
  :class:`Difference` (``max(a, -b)``).  Min of exact SDFs is exact outside the
  union and a bound inside; max and difference give bounds with the right sign.

Each node also knows its *support function* ``h(d) = max_{x in node} <d, x>``
(used for the exact bounding box) and an upper bound on ``max |x|`` over the
node (used for the unit-sphere normalisation); both are computed in float64
NumPy from the parameters, without sampling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Node", "Primitive", "Sphere", "Box", "RoundBox", "Cylinder", "Capsule",
    "Ellipsoid", "TightEllipsoid", "Torus", "CappedCone", "Union", "Intersection", "Difference", "rotation",
]


def rotation(axis: str | Sequence[float], angle: float) -> np.ndarray:
    """A 3x3 rotation matrix about ``axis`` ("x", "y", "z" or a 3-vector) by ``angle`` radians."""
    if isinstance(axis, str):
        a = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}[axis]
    else:
        a = axis
    u = np.asarray(a, dtype=np.float64)
    u = u / np.linalg.norm(u)
    c, s = math.cos(angle), math.sin(angle)
    ux = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    return c * np.eye(3) + s * ux + (1 - c) * np.outer(u, u)


def _tensor(x: np.ndarray | float, like: Tensor) -> Tensor:
    return torch.as_tensor(np.asarray(x), dtype=like.dtype, device=like.device)


_TINY = 1e-20


def _sqrt(x: Tensor) -> Tensor:
    """``sqrt`` with a finite gradient at 0 (adds 1e-20: value changes by <= 1e-10)."""
    return torch.sqrt(x + _TINY)


def _length(x: Tensor) -> Tensor:
    return _sqrt((x * x).sum(dim=-1))


class Node:
    """Base class of SDF nodes (primitives and CSG operations)."""

    exact: bool = False

    def sdf(self, p: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def support(self, d: np.ndarray) -> float:  # pragma: no cover - abstract
        """``max_{x in node} <d, x>`` for a world direction ``d`` (float64, may be a bound)."""
        raise NotImplementedError

    def max_radius(self) -> float:  # pragma: no cover - abstract
        """An upper bound (exact for most primitives) on ``max |x|`` over the node."""
        raise NotImplementedError

    def transformed(self, scale: float, shift: np.ndarray) -> Node:  # pragma: no cover
        """The node mapped by ``x -> scale * (x - shift)``."""
        raise NotImplementedError


class Primitive(Node):
    """A convex primitive placed by rotation ``R`` and centre ``t``."""

    def __init__(self, center: Sequence[float] = (0.0, 0.0, 0.0), rot: np.ndarray | None = None) -> None:
        self.t = np.asarray(center, dtype=np.float64).reshape(3)
        self.R = np.eye(3) if rot is None else np.asarray(rot, dtype=np.float64).reshape(3, 3)

    # --- local <-> world ---------------------------------------------------
    def _local(self, p: Tensor) -> Tensor:
        # p_local = R^T (p - t); with row vectors: (p - t) @ R (skipped when R is the identity)
        q = p - _tensor(self.t, p)
        if np.array_equal(self.R, np.eye(3)):
            return q
        return q @ _tensor(self.R, p)

    def sdf(self, p: Tensor) -> Tensor:
        return self.local_sdf(self._local(p))

    def local_sdf(self, q: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def support(self, d: np.ndarray) -> float:
        d = np.asarray(d, dtype=np.float64)
        return float(d @ self.t) + self.local_support(self.R.T @ d)

    def local_support(self, d: np.ndarray) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _scaled_params(self, scale: float) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def transformed(self, scale: float, shift: np.ndarray) -> Primitive:
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.t = scale * (self.t - np.asarray(shift, dtype=np.float64))
        new.R = self.R.copy()
        for k, v in self._scaled_params(scale).items():
            setattr(new, k, v)
        return new


class Sphere(Primitive):
    """Sphere of radius ``r`` (exact SDF)."""

    exact = True

    def __init__(self, r: float, center: Sequence[float] = (0, 0, 0)) -> None:
        super().__init__(center)
        self.r = float(r)

    def local_sdf(self, q: Tensor) -> Tensor:
        return _length(q) - self.r

    def local_support(self, d: np.ndarray) -> float:
        return self.r * float(np.linalg.norm(d))

    def max_radius(self) -> float:
        return float(np.linalg.norm(self.t)) + self.r

    def _scaled_params(self, scale: float) -> dict:
        return {"r": self.r * scale}


class Box(Primitive):
    """Box with half extents ``b`` (exact SDF)."""

    exact = True

    def __init__(self, b: Sequence[float], center: Sequence[float] = (0, 0, 0),
                 rot: np.ndarray | None = None) -> None:
        super().__init__(center, rot)
        self.b = np.asarray(b, dtype=np.float64).reshape(3)

    def local_sdf(self, q: Tensor) -> Tensor:
        d = q.abs() - _tensor(self.b, q)
        outside = _length(d.clamp(min=0.0))
        inside = d.max(dim=-1).values.clamp(max=0.0)
        return outside + inside

    def local_support(self, d: np.ndarray) -> float:
        return float(np.abs(d) @ self.b)

    def _corners(self, b: np.ndarray) -> np.ndarray:
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
        return (signs * b) @ self.R.T + self.t

    def max_radius(self) -> float:
        return float(np.linalg.norm(self._corners(self.b), axis=1).max())

    def _scaled_params(self, scale: float) -> dict:
        return {"b": self.b * scale}


class RoundBox(Box):
    """Box with half extents ``b`` whose edges are rounded with radius ``r`` (exact SDF).

    ``b`` are the *outer* half extents; ``r`` must not exceed ``min(b)``.
    """

    def __init__(self, b: Sequence[float], r: float, center: Sequence[float] = (0, 0, 0),
                 rot: np.ndarray | None = None) -> None:
        super().__init__(b, center, rot)
        self.r = float(min(r, float(self.b.min())))

    def local_sdf(self, q: Tensor) -> Tensor:
        d = q.abs() - _tensor(self.b - self.r, q)
        outside = _length(d.clamp(min=0.0))
        inside = d.max(dim=-1).values.clamp(max=0.0)
        return outside + inside - self.r

    def local_support(self, d: np.ndarray) -> float:
        return float(np.abs(d) @ (self.b - self.r)) + self.r * float(np.linalg.norm(d))

    def max_radius(self) -> float:
        return float(np.linalg.norm(self._corners(self.b - self.r), axis=1).max()) + self.r

    def _scaled_params(self, scale: float) -> dict:
        return {"b": self.b * scale, "r": self.r * scale}


class Cylinder(Primitive):
    """Capped cylinder of radius ``r`` and half height ``h`` along local ``y`` (exact SDF)."""

    exact = True

    def __init__(self, r: float, h: float, center: Sequence[float] = (0, 0, 0),
                 rot: np.ndarray | None = None) -> None:
        super().__init__(center, rot)
        self.r, self.h = float(r), float(h)

    def local_sdf(self, q: Tensor) -> Tensor:
        radial = _sqrt(q[..., 0] ** 2 + q[..., 2] ** 2) - self.r
        axial = q[..., 1].abs() - self.h
        outside = _sqrt(radial.clamp(min=0) ** 2 + axial.clamp(min=0) ** 2)
        inside = torch.maximum(radial, axial).clamp(max=0.0)
        return outside + inside

    def local_support(self, d: np.ndarray) -> float:
        return self.r * float(math.hypot(d[0], d[2])) + self.h * abs(float(d[1]))

    def max_radius(self) -> float:
        n = self.R[:, 1]
        best = 0.0
        for s in (-1.0, 1.0):
            c = self.t + s * self.h * n
            perp = float(np.linalg.norm(c - (c @ n) * n))
            best = max(best, math.sqrt(float(c @ c) + self.r ** 2 + 2 * self.r * perp))
        return best

    def _scaled_params(self, scale: float) -> dict:
        return {"r": self.r * scale, "h": self.h * scale}


class Capsule(Primitive):
    """Capsule: points within distance ``r`` of the segment ``a``-``b`` (exact SDF)."""

    exact = True

    def __init__(self, a: Sequence[float], b: Sequence[float], r: float) -> None:
        super().__init__((0, 0, 0))
        self.a = np.asarray(a, dtype=np.float64).reshape(3)
        self.b = np.asarray(b, dtype=np.float64).reshape(3)
        self.r = float(r)

    def sdf(self, p: Tensor) -> Tensor:
        a, b = _tensor(self.a, p), _tensor(self.b, p)
        ab = b - a
        ap = p - a
        denom = float(max((self.b - self.a) @ (self.b - self.a), 1e-24))
        h = ((ap @ ab) / denom).clamp(0.0, 1.0)
        return _length(ap - h[..., None] * ab) - self.r

    def support(self, d: np.ndarray) -> float:
        d = np.asarray(d, dtype=np.float64)
        return max(float(d @ self.a), float(d @ self.b)) + self.r * float(np.linalg.norm(d))

    def max_radius(self) -> float:
        return max(float(np.linalg.norm(self.a)), float(np.linalg.norm(self.b))) + self.r

    def transformed(self, scale: float, shift: np.ndarray) -> Capsule:
        shift = np.asarray(shift, dtype=np.float64)
        return Capsule(scale * (self.a - shift), scale * (self.b - shift), scale * self.r)


class Ellipsoid(Primitive):
    """Axis-aligned (in its local frame) ellipsoid with radii ``radii``.

    Its SDF is the *bound* ``(|q / r| - 1) * min(r)``: right sign, exact zero set,
    ``|bound| <= true distance`` everywhere, gradient normal to the surface on it.
    """

    exact = False

    def __init__(self, radii: Sequence[float], center: Sequence[float] = (0, 0, 0),
                 rot: np.ndarray | None = None) -> None:
        super().__init__(center, rot)
        self.radii = np.asarray(radii, dtype=np.float64).reshape(3)

    def local_sdf(self, q: Tensor) -> Tensor:
        k = _length(q / _tensor(self.radii, q))
        return (k - 1.0) * float(self.radii.min())

    def local_support(self, d: np.ndarray) -> float:
        return float(np.linalg.norm(self.radii * d))

    def max_radius(self) -> float:
        return float(np.linalg.norm(self.t)) + float(self.radii.max())

    def _scaled_params(self, scale: float) -> dict:
        return {"radii": self.radii * scale}


def fibonacci_sphere(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors (the Fibonacci lattice), float64 ``(n, 3)``."""
    i = np.arange(n, dtype=np.float64) + 0.5
    y = 1.0 - 2.0 * i / n
    rho = np.sqrt(np.clip(1.0 - y * y, 0.0, None))
    phi = np.pi * (3.0 - math.sqrt(5.0)) * i
    return np.stack([rho * np.cos(phi), y, rho * np.sin(phi)], axis=1)


_FIB_N = 16384
_FIB_COVER = 4.0 / math.sqrt(_FIB_N)
"""Every unit vector lies within this distance of one of the ``_FIB_N`` Fibonacci directions (tested)."""


class TightEllipsoid(Ellipsoid):
    """An :class:`Ellipsoid` (the same SDF bound) whose :meth:`max_radius` is nearly tight.

    ``Ellipsoid.max_radius`` is ``|centre| + max radius``, which can shrink a normalised shape by 20 %.
    Here: the largest ``|t + R diag(r) u|`` over 16,384 Fibonacci directions ``u``, plus ``max(r)`` times
    their covering radius (``x(u)`` is ``max(r)``-Lipschitz in ``u``), so still an upper bound.
    """

    def max_radius(self) -> float:
        x = (fibonacci_sphere(_FIB_N) * self.radii) @ self.R.T + self.t
        sampled = float(np.linalg.norm(x, axis=1).max()) + float(self.radii.max()) * _FIB_COVER
        return min(sampled, super().max_radius())


class Torus(Primitive):
    """Torus in the local ``xz`` plane (axis local ``y``): major radius ``R0``, tube radius ``r`` (exact)."""

    exact = True

    def __init__(self, R0: float, r: float, center: Sequence[float] = (0, 0, 0),
                 rot: np.ndarray | None = None) -> None:
        super().__init__(center, rot)
        self.R0, self.r = float(R0), float(r)

    def local_sdf(self, q: Tensor) -> Tensor:
        radial = _sqrt(q[..., 0] ** 2 + q[..., 2] ** 2) - self.R0
        return _sqrt(radial ** 2 + q[..., 1] ** 2) - self.r

    def local_support(self, d: np.ndarray) -> float:
        return self.R0 * float(math.hypot(d[0], d[2])) + self.r * float(np.linalg.norm(d))

    def max_radius(self) -> float:
        n = self.R[:, 1]
        perp = float(np.linalg.norm(self.t - (self.t @ n) * n))
        return math.sqrt(float(self.t @ self.t) + self.R0 ** 2 + 2 * self.R0 * perp) + self.r

    def _scaled_params(self, scale: float) -> dict:
        return {"R0": self.R0 * scale, "r": self.r * scale}


class CappedCone(Primitive):
    """Capped (truncated) cone along local ``y``: radius ``r1`` at ``y = -h``, ``r2`` at ``y = +h`` (exact SDF).

    Inigo Quilez's closed form: the distance in the half-plane ``(sqrt(x^2 + z^2), y)`` to the
    trapezoid ``[0, r1] x {-h}``, ``[0, r2] x {+h}`` and the slanted side, signed by the inside test.
    ``r1`` or ``r2`` may be 0 (a pointed cone); both must be >= 0 and ``h > 0``.
    """

    exact = True

    def __init__(self, r1: float, r2: float, h: float, center: Sequence[float] = (0, 0, 0),
                 rot: np.ndarray | None = None) -> None:
        super().__init__(center, rot)
        self.r1, self.r2, self.h = float(r1), float(r2), float(h)
        if self.r1 < 0 or self.r2 < 0 or self.h <= 0 or self.r1 + self.r2 <= 0:
            raise ValueError(f"CappedCone needs r1, r2 >= 0 (not both 0) and h > 0, got {r1}, {r2}, {h}")

    def local_sdf(self, q: Tensor) -> Tensor:
        x = _sqrt(q[..., 0] ** 2 + q[..., 2] ** 2)
        y = q[..., 1]
        r1, r2, h = self.r1, self.r2, self.h
        k2x, k2y = r2 - r1, 2.0 * h
        cap_r = torch.where(y < 0, torch.full_like(x, r1), torch.full_like(x, r2))
        cax = x - torch.minimum(x, cap_r)
        cay = y.abs() - h
        t = (((r2 - x) * k2x + (h - y) * k2y) / (k2x * k2x + k2y * k2y)).clamp(0.0, 1.0)
        cbx = x - r2 + k2x * t
        cby = y - h + k2y * t
        s = torch.where((cbx < 0) & (cay < 0), -torch.ones_like(x), torch.ones_like(x))
        return s * _sqrt(torch.minimum(cax * cax + cay * cay, cbx * cbx + cby * cby))

    def local_support(self, d: np.ndarray) -> float:
        rho = float(math.hypot(d[0], d[2]))
        return max(self.r1 * rho - self.h * float(d[1]), self.r2 * rho + self.h * float(d[1]))

    def max_radius(self) -> float:
        n = self.R[:, 1]
        best = 0.0
        for s, r in ((-1.0, self.r1), (1.0, self.r2)):
            c = self.t + s * self.h * n
            perp = float(np.linalg.norm(c - (c @ n) * n))
            best = max(best, math.sqrt(float(c @ c) + r ** 2 + 2 * r * perp))
        return best

    def _scaled_params(self, scale: float) -> dict:
        return {"r1": self.r1 * scale, "r2": self.r2 * scale, "h": self.h * scale}


class Union(Node):
    """``min`` of the children: exact outside when the children are exact, a bound inside."""

    def __init__(self, *children: Node) -> None:
        if not children:
            raise ValueError("Union needs at least one child")
        self.children = tuple(children)

    def sdf(self, p: Tensor) -> Tensor:
        out = self.children[0].sdf(p)
        for c in self.children[1:]:
            out = torch.minimum(out, c.sdf(p))
        return out

    def support(self, d: np.ndarray) -> float:
        return max(c.support(d) for c in self.children)

    def max_radius(self) -> float:
        return max(c.max_radius() for c in self.children)

    def transformed(self, scale: float, shift: np.ndarray) -> Union:
        return Union(*(c.transformed(scale, shift) for c in self.children))


class Intersection(Node):
    """``max`` of the children (a bound with the right sign)."""

    def __init__(self, *children: Node) -> None:
        if not children:
            raise ValueError("Intersection needs at least one child")
        self.children = tuple(children)

    def sdf(self, p: Tensor) -> Tensor:
        out = self.children[0].sdf(p)
        for c in self.children[1:]:
            out = torch.maximum(out, c.sdf(p))
        return out

    def support(self, d: np.ndarray) -> float:  # an upper bound
        return min(c.support(d) for c in self.children)

    def max_radius(self) -> float:
        return min(c.max_radius() for c in self.children)

    def transformed(self, scale: float, shift: np.ndarray) -> Intersection:
        return Intersection(*(c.transformed(scale, shift) for c in self.children))


class Difference(Node):
    """``a`` minus ``b``: ``max(sdf_a, -sdf_b)`` (a bound with the right sign).

    The support and radius are those of ``a`` (an upper bound); the shapes of
    ShapeNet-lite only carve cavities that leave the extremes of ``a`` intact.
    """

    def __init__(self, a: Node, b: Node) -> None:
        self.a, self.b = a, b

    def sdf(self, p: Tensor) -> Tensor:
        return torch.maximum(self.a.sdf(p), -self.b.sdf(p))

    def support(self, d: np.ndarray) -> float:
        return self.a.support(d)

    def max_radius(self) -> float:
        return self.a.max_radius()

    def transformed(self, scale: float, shift: np.ndarray) -> Difference:
        return Difference(self.a.transformed(scale, shift), self.b.transformed(scale, shift))
