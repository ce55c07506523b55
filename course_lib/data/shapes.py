"""ShapeNet-lite: procedural shape categories with exact (or bounded) signed distance functions.

Introduced in ``lectures/01_data_and_representations.ipynb``.

Every shape is a union of named *parts*, each part a CSG tree of analytic
primitives (:mod:`course_lib.data.primitives`) whose sizes and structure are drawn
from a seeded random generator: the same ``(category, seed)`` gives the same shape
on every machine.

Categories (index = class label) and their variations
------------------------------------------------------
* ``chair``: seat, four legs (square or round), back (solid panel or rail with 2-4 slats,
  tilted), arms on 40 % of the chairs.
* ``table``: rectangular or round top; four legs (with a lower shelf on some) or a pedestal
  (column and round base; every round top stands on a pedestal).
* ``airplane``: fuselage (capsule, some with a rounder nose), swept wings, tail (stabiliser
  and fin), 0, 2 or 4 engines under the wings.
* ``car``: body and cabin (sedan, hatchback, van or pickup proportions), four wheels.
* ``lamp``: base, straight stem or two-segment desk arm, hollow drum shade or globe.
* ``mug``: hollow cylinder with a closed bottom, a torus handle clipped at the wall.
* ``sofa``: seat, back, two arms; cushions, a chaise extension and short legs on some.
* ``bench``: long seat on two panel legs or four legs with an H stretcher; backrest on half.
* ``bottle``: body, shoulder (ellipsoid), neck, cap.
* ``bookshelf``: two sides, top, bottom, 1-4 shelves, a back panel on 60 %.

Every part is at least ~0.1 thick after normalisation (>= 2 cells of a 48^3 grid on
[-1, 1]^3) and parts overlap, so meshes are watertight and in one piece (tested for
20 seeds per category at resolution 40; checked for 100 seeds at 40 and 48).

Frame and normalisation
-----------------------
``y`` is up, the front of chairs/sofas/cars/planes faces ``+z``/``+x`` as in
ShapeNet.  After building, every shape is moved so that the centre of its
axis-aligned bounding box is the origin and scaled so that the farthest surface
point is at distance 1 from the origin (computed analytically from the primitives'
support functions and farthest points; for ellipsoids the farthest point is an
upper bound, so the shape is then slightly *inside* the unit sphere).

SDF
---
``Shape.sdf`` is the ``min`` over parts; each part is exact or a bound with the
right sign (see :mod:`course_lib.data.primitives`).  The union is exact outside
the shape (where all primitives are exact) and a bound inside; ``|sdf|`` never
exceeds the true distance, which is what sphere tracing and Newton projection need.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import trimesh
from torch import Tensor

from .primitives import (
    Box,
    Capsule,
    Cylinder,
    Difference,
    Ellipsoid,
    Node,
    RoundBox,
    Sphere,
    Torus,
    rotation,
)
from .splits import check_test_read, split_of

__all__ = ["CATEGORIES", "GENERATOR_VERSION", "MAX_SEED", "Shape", "make_shape", "check_category",
           "check_seed"]

GENERATOR_VERSION = 1
"""Bumped whenever anything changes the generated data (a category's generator, the
normalisation, the samplers); part of every cache key, so old cache files are ignored."""

MAX_SEED = 2**31 - 1
"""Largest accepted seed."""

MESH_PAD = 4.0
"""Meshes are extracted on ``[-b, b]^3`` with ``b = 1 + MESH_PAD / resolution`` (about two cells of margin)."""

SAMPLE_RESOLUTION = 48
"""Marching-cubes resolution of the mesh used to seed surface samples (then projected onto the exact surface)."""

Rng = np.random.Generator
Builder = Callable[[Rng], "list[tuple[str, Node]]"]


# ---------------------------------------------------------------------------
# Category builders (raw frame, y up, floor at y = 0; normalised afterwards).
# Minimum thickness of any part is kept >= ~0.14 raw units (>= ~0.1 after
# normalisation, i.e. >= 2 cells of a 48^3 grid on [-1, 1]^3).
# ---------------------------------------------------------------------------

def _u(rng: Rng, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _leg(rng_round: bool, half: float, x: float, z: float, y0: float, y1: float) -> Node:
    h = 0.5 * (y1 - y0)
    c = (x, 0.5 * (y0 + y1), z)
    if rng_round:
        return Cylinder(half, h, c)
    return Box((half, h, half), c)


def _four_legs(round_legs: bool, half: float, dx: float, dz: float, top: float) -> list[tuple[str, Node]]:
    """Four legs from the floor (y = 0) to ``top``, at (+-dx, +-dz)."""
    return [("leg", _leg(round_legs, half, sx * dx, sz * dz, 0.0, top)) for sx in (-1, 1) for sz in (-1, 1)]


def _chair(rng: Rng) -> list[tuple[str, Node]]:
    W, D = _u(rng, 0.9, 1.2), _u(rng, 0.85, 1.1)
    ts, H = _u(rng, 0.14, 0.2), _u(rng, 0.75, 1.0)
    parts: list[tuple[str, Node]] = [
        ("seat", RoundBox((W / 2, ts / 2, D / 2), 0.04, (0, H - ts / 2, 0)))
    ]
    round_legs = bool(rng.random() < 0.5)
    lh = _u(rng, 0.075, 0.1)
    inset = lh + _u(rng, 0.0, 0.08)
    parts += _four_legs(round_legs, lh, W / 2 - inset, D / 2 - inset, H - ts / 2)
    # back: a panel or a frame with vertical slats, tilted backwards
    Hb, tb = _u(rng, 0.7, 1.1), _u(rng, 0.14, 0.18)
    tilt = _u(rng, 0.0, 0.25)
    Rb = rotation("x", -tilt)
    up = Rb[:, 1]
    base = np.array([0.0, H - ts / 2, -D / 2 + tb / 2])
    if rng.random() < 0.6:
        parts.append(("back", Box((W / 2, Hb / 2 + ts / 4, tb / 2), base + (Hb / 2 + ts / 4) * up, Rb)))
    else:
        rail = _u(rng, 0.16, 0.24)
        parts.append(("back", Box((W / 2, rail / 2, tb / 2), base + (ts / 2 + Hb - rail / 2) * up, Rb)))
        n_slats = int(rng.integers(2, 5))
        sw = _u(rng, 0.14, 0.18)
        xs = np.linspace(-W / 2 + sw / 2, W / 2 - sw / 2, n_slats)
        for x in xs:
            parts.append(("back", Box((sw / 2, Hb / 2 + ts / 4, tb / 2),
                                      base + (Hb / 2 + ts / 4) * up + np.array([x, 0, 0]), Rb)))
    if rng.random() < 0.4:  # arms
        ha, wa = _u(rng, 0.25, 0.4), _u(rng, 0.14, 0.18)
        for sx in (-1, 1):
            x = sx * (W / 2 - wa / 2)
            parts.append(("arm", Box((wa / 2, ha / 2 + ts / 4, wa / 2), (x, H + ha / 2 - ts / 4, D / 2 - 0.15))))
            parts.append(("arm", RoundBox((wa / 2, wa / 2, D / 2 - 0.05), 0.03, (x, H + ha, 0.0))))
    return parts


def _table(rng: Rng) -> list[tuple[str, Node]]:
    H, tt = _u(rng, 0.9, 1.2), _u(rng, 0.14, 0.2)
    parts: list[tuple[str, Node]] = []
    round_top = bool(rng.random() < 0.35)
    if round_top:
        rt = _u(rng, 0.65, 0.95)
        parts.append(("top", Cylinder(rt, tt / 2, (0, H - tt / 2, 0))))
        W = D = 2 * rt / math.sqrt(2)
    else:
        W, D = _u(rng, 1.3, 2.0), _u(rng, 0.8, 1.2)
        parts.append(("top", RoundBox((W / 2, tt / 2, D / 2), 0.04, (0, H - tt / 2, 0))))
    if round_top or rng.random() < 0.3:  # pedestal
        rc = _u(rng, 0.08, 0.14)
        parts.append(("leg", Cylinder(rc, (H - tt / 2) / 2, (0, (H - tt / 2) / 2, 0))))
        rb, hb = _u(rng, 0.35, min(0.6, 0.45 * max(W, D))), _u(rng, 0.14, 0.18)
        parts.append(("base", Cylinder(rb, hb / 2, (0, hb / 2, 0))))
    else:
        round_legs = bool(rng.random() < 0.5)
        lh = _u(rng, 0.07, 0.1)
        inset = lh + _u(rng, 0.02, 0.12)
        parts += _four_legs(round_legs, lh, W / 2 - inset, D / 2 - inset, H - tt / 2)
        if rng.random() < 0.35:  # lower shelf joining the legs
            hs = _u(rng, 0.14, 0.18)
            ys = _u(rng, 0.2, 0.4)
            parts.append(("shelf", Box((W / 2 - inset, hs / 2, D / 2 - inset), (0, ys, 0))))
    return parts


def _airplane(rng: Rng) -> list[tuple[str, Node]]:
    L, rf = _u(rng, 1.6, 2.1), _u(rng, 0.11, 0.17)
    parts: list[tuple[str, Node]] = [("body", Capsule((-L / 2, 0, 0), (L / 2, 0, 0), rf))]
    if rng.random() < 0.5:  # a rounder nose
        parts.append(("body", Ellipsoid((0.35 * L, rf * 1.15, rf * 1.15), (L / 4, 0, 0))))
    span, chord = _u(rng, 0.7, 1.0), _u(rng, 0.3, 0.5)
    tw = _u(rng, 0.14, 0.17)
    sweep = _u(rng, 0.0, 0.5)
    xw, yw = _u(rng, -0.05, 0.2) * L, _u(rng, -0.5, 0.3) * rf
    for sz in (-1, 1):
        R = rotation("y", sz * sweep)
        d = R @ np.array([0.0, 0.0, sz * 1.0])
        c = np.array([xw, yw, 0.0]) + d * span / 2
        parts.append(("wing", RoundBox((chord / 2, tw / 2, span / 2 + rf / 2), 0.04, c, R)))
    # tail: horizontal stabiliser and vertical fin
    st, ct = _u(rng, 0.3, 0.45), _u(rng, 0.2, 0.3)
    xt = -L / 2 + ct / 2
    for sz in (-1, 1):
        parts.append(("tail", RoundBox((ct / 2, tw / 2, st / 2 + rf / 2), 0.04, (xt, 0.0, sz * st / 2))))
    hf = _u(rng, 0.3, 0.5)
    parts.append(("tail", RoundBox((ct / 2 + 0.03, hf / 2 + rf / 2, tw / 2), 0.04, (xt - 0.02, hf / 2, 0.0))))
    n_eng = int(rng.choice([0, 2, 4], p=[0.3, 0.5, 0.2]))
    if n_eng:
        re, le = _u(rng, 0.08, 0.11), _u(rng, 0.25, 0.4)
        offsets = [0.45] if n_eng == 2 else [0.3, 0.7]
        for f in offsets:
            for sz in (-1, 1):
                R = rotation("y", sz * sweep)
                along = np.array([xw, yw, 0.0]) + (R @ np.array([0.0, 0.0, sz * 1.0])) * span * f
                c = along + np.array([chord * 0.1, -(tw / 2 + re * 0.7), 0.0])
                parts.append(("engine", Cylinder(re, le / 2, c, rotation("z", math.pi / 2))))
    return parts


def _car(rng: Rng) -> list[tuple[str, Node]]:
    L, Wd = _u(rng, 1.7, 2.1), _u(rng, 0.8, 0.95)
    rw, hw = _u(rng, 0.17, 0.24), _u(rng, 0.08, 0.1)
    hb = _u(rng, 0.3, 0.45)
    yb = rw * 0.9 + hb / 2
    parts: list[tuple[str, Node]] = [("body", RoundBox((L / 2, hb / 2, Wd / 2), 0.08, (0, yb, 0)))]
    kind = rng.choice(["sedan", "hatch", "van", "pickup"])
    hc = _u(rng, 0.28, 0.42)
    yc = yb + hb / 2 + hc / 2 - 0.05
    if kind == "sedan":
        lc, xc = _u(rng, 0.45, 0.6) * L, _u(rng, -0.1, 0.05) * L
    elif kind == "hatch":
        lc = _u(rng, 0.5, 0.65) * L
        xc = -L / 2 + lc / 2 + 0.05
    elif kind == "van":
        lc = _u(rng, 0.75, 0.9) * L
        xc = -L / 2 + lc / 2 + 0.03
    else:
        lc = _u(rng, 0.3, 0.4) * L
        xc = L / 2 - lc / 2 - _u(rng, 0.15, 0.3) * L
    parts.append(("cabin", RoundBox((lc / 2, hc / 2, Wd / 2 * 0.88), 0.1, (xc, yc, 0))))
    xa = L / 2 - _u(rng, 0.25, 0.35)
    for sx in (-1, 1):
        for sz in (-1, 1):
            c = (sx * xa, rw, sz * (Wd / 2 - hw * 0.6))
            parts.append(("wheel", Cylinder(rw, hw, c, rotation("x", math.pi / 2))))
    return parts


def _lamp(rng: Rng) -> list[tuple[str, Node]]:
    rb, hb = _u(rng, 0.3, 0.45), _u(rng, 0.14, 0.18)
    parts: list[tuple[str, Node]] = [("base", Cylinder(rb, hb / 2, (0, hb / 2, 0)))]
    rs = _u(rng, 0.07, 0.09)
    if rng.random() < 0.55:  # straight stem
        Hs = _u(rng, 1.0, 1.6)
        top = np.array([0.0, Hs, 0.0])
        parts.append(("stem", Cylinder(rs, Hs / 2, (0, Hs / 2, 0))))
    else:  # desk lamp: two arm segments
        a1 = np.array([0.0, hb / 2, 0.0])
        e1 = np.array([_u(rng, 0.2, 0.5), _u(rng, 0.7, 1.0), 0.0])
        top = e1 + np.array([_u(rng, 0.3, 0.6), _u(rng, 0.1, 0.4), 0.0])
        parts.append(("stem", Capsule(a1, e1, rs)))
        parts.append(("stem", Capsule(e1, top, rs)))
    rsh, hsh = _u(rng, 0.3, 0.5), _u(rng, 0.25, 0.45)
    if rng.random() < 0.6:  # drum shade open at the bottom, closed top cap
        wall = _u(rng, 0.14, 0.17)
        c = top + np.array([0.0, -hsh / 2 + wall, 0.0])
        outer = Cylinder(rsh, hsh / 2, c)
        inner = Cylinder(rsh - wall, hsh / 2, c - np.array([0.0, wall, 0.0]))
        parts.append(("shade", Difference(outer, inner)))
        parts.append(("stem", Sphere(rs * 1.6, top)))
    else:  # globe
        parts.append(("shade", Ellipsoid((rsh, hsh * 0.8, rsh), top)))
    return parts


def _mug(rng: Rng) -> list[tuple[str, Node]]:
    r, h = _u(rng, 0.4, 0.6), _u(rng, 0.45, 0.75)
    wall, bottom = _u(rng, 0.14, 0.17), _u(rng, 0.14, 0.2)
    outer = Cylinder(r, h, (0, h, 0))
    cavity = Cylinder(r - wall, h, (0, h + bottom, 0))
    parts: list[tuple[str, Node]] = [("body", Difference(outer, cavity))]
    R0, rt = _u(rng, 0.45, 0.65) * h, _u(rng, 0.07, 0.09)
    R0 = min(R0, 0.9 * h - rt)
    torus = Torus(R0, rt, (r, h + _u(rng, -0.1, 0.15) * h, 0), rotation("x", math.pi / 2))
    clip = Cylinder(r - wall / 2, 2 * h, (0, h, 0))
    parts.append(("handle", Difference(torus, clip)))
    return parts


def _sofa(rng: Rng) -> list[tuple[str, Node]]:
    L, D = _u(rng, 1.6, 2.2), _u(rng, 0.8, 1.0)
    hl = _u(rng, 0.0, 0.14)
    hs = _u(rng, 0.3, 0.45)
    parts: list[tuple[str, Node]] = [("seat", RoundBox((L / 2, hs / 2, D / 2), 0.05, (0, hl + hs / 2, 0)))]
    tb, hbk = _u(rng, 0.2, 0.3), _u(rng, 0.45, 0.7)
    parts.append(("back", RoundBox((L / 2, (hs + hbk) / 2, tb / 2), 0.06,
                                   (0, hl + (hs + hbk) / 2, -D / 2 + tb / 2))))
    ta, ha = _u(rng, 0.18, 0.28), _u(rng, 0.15, 0.3)
    for sx in (-1, 1):
        parts.append(("arm", RoundBox((ta / 2, (hs + ha) / 2, D / 2), 0.06,
                                      (sx * (L / 2 - ta / 2), hl + (hs + ha) / 2, 0))))
    if rng.random() < 0.5:
        n = int(rng.integers(2, 4))
        wc = (L - 2 * ta) / n
        hc = _u(rng, 0.14, 0.18)
        for i in range(n):
            x = -L / 2 + ta + wc * (i + 0.5)
            # cushions overlap each other, the arms and the back: no slits thinner than a voxel
            parts.append(("cushion", RoundBox((wc / 2 + 0.03, hc / 2, (D - tb) / 2 + 0.03), 0.06,
                                              (x, hl + hs + hc / 2 - 0.04, tb / 2 - 0.03))))
    if rng.random() < 0.25:  # chaise: an extension towards the front on one side
        sx = 1 if rng.random() < 0.5 else -1
        we, de = _u(rng, 0.55, 0.75), _u(rng, 0.5, 0.8)
        parts.append(("seat", RoundBox((we / 2, hs / 2, de / 2 + 0.1), 0.05,
                                       (sx * (L / 2 - ta - we / 2), hl + hs / 2, D / 2 + de / 2 - 0.1))))
    if hl > 0.03:
        hl_ = hl + 0.05
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(("leg", Cylinder(0.075, hl_ / 2, (sx * (L / 2 - 0.12), hl_ / 2, sz * (D / 2 - 0.12)))))
    return parts


def _bench(rng: Rng) -> list[tuple[str, Node]]:
    L, D = _u(rng, 1.6, 2.2), _u(rng, 0.45, 0.65)
    ts, H = _u(rng, 0.16, 0.2), _u(rng, 0.65, 0.9)
    parts: list[tuple[str, Node]] = [("seat", RoundBox((L / 2, ts / 2, D / 2), 0.04, (0, H - ts / 2, 0)))]
    t = _u(rng, 0.16, 0.2)
    if rng.random() < 0.5:  # two panel legs
        for sx in (-1, 1):
            x = sx * (L / 2 - _u(rng, 0.1, 0.3))
            parts.append(("leg", Box((t / 2, (H - ts / 2) / 2, D / 2 - 0.03), (x, (H - ts / 2) / 2, 0))))
    else:  # four legs and a stretcher
        round_legs = bool(rng.random() < 0.5)
        inset = t / 2 + _u(rng, 0.03, 0.2)
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(("leg", _leg(round_legs, t / 2, sx * (L / 2 - inset), sz * (D / 2 - t / 2 - 0.03),
                                          0.0, H - ts / 2)))
        ys = _u(rng, 0.2, 0.35)  # H-shaped stretcher: one bar per side, one across
        zl = D / 2 - t / 2 - 0.03
        for sx in (-1, 1):
            parts.append(("leg", Box((t / 2, t / 2, zl), (sx * (L / 2 - inset), ys, 0))))
        parts.append(("leg", Box((L / 2 - inset, t / 2, t / 2), (0, ys, 0))))
    if rng.random() < 0.5:  # backrest on two posts
        hb, hp = _u(rng, 0.2, 0.35), _u(rng, 0.25, 0.45)
        zb = -D / 2 + t / 2
        for sx in (-1, 1):
            parts.append(("back", Box((t / 2, (hp + ts) / 2, t / 2), (sx * L * 0.35, H - ts + (hp + ts) / 2, zb))))
        parts.append(("back", RoundBox((L / 2, hb / 2, t / 2), 0.04, (0, H + hp + hb / 2 - 0.05, zb))))
    return parts


def _bottle(rng: Rng) -> list[tuple[str, Node]]:
    r, h = _u(rng, 0.3, 0.45), _u(rng, 0.5, 0.85)
    parts: list[tuple[str, Node]] = [("body", Cylinder(r, h / 2, (0, h / 2, 0)))]
    hs = _u(rng, 0.15, 0.4)
    parts.append(("shoulder", Ellipsoid((r, hs, r), (0, h, 0))))
    rn, hn = _u(rng, 0.1, 0.15), _u(rng, 0.2, 0.45)
    parts.append(("neck", Cylinder(rn, (hn + hs) / 2, (0, h + (hn + hs) / 2 - 0.05, 0))))
    hc = _u(rng, 0.14, 0.2)
    parts.append(("cap", Cylinder(rn + _u(rng, 0.02, 0.05), hc / 2, (0, h + hs + hn - 0.05 + hc / 2 - 0.02, 0))))
    return parts


def _bookshelf(rng: Rng) -> list[tuple[str, Node]]:
    W, H, D = _u(rng, 0.9, 1.5), _u(rng, 1.5, 2.2), _u(rng, 0.4, 0.65)
    t = _u(rng, 0.14, 0.17)
    parts: list[tuple[str, Node]] = []
    for sx in (-1, 1):
        parts.append(("side", Box((t / 2, H / 2, D / 2), (sx * (W / 2 - t / 2), H / 2, 0))))
    inner = W / 2 - t + 0.02
    parts.append(("shelf", Box((inner, t / 2, D / 2), (0, t / 2, 0))))
    parts.append(("shelf", Box((inner, t / 2, D / 2), (0, H - t / 2, 0))))
    n = int(rng.integers(1, 5))
    for y in np.linspace(0, H, n + 2)[1:-1]:
        parts.append(("shelf", Box((inner, t / 2, D / 2 - 0.02), (0, float(y), 0.01))))
    if rng.random() < 0.6:
        parts.append(("back", Box((W / 2 - 0.02, H / 2 - 0.02, t / 2), (0, H / 2, -D / 2 + t / 2))))
    return parts


_BUILDERS: dict[str, Builder] = {
    "chair": _chair,
    "table": _table,
    "airplane": _airplane,
    "car": _car,
    "lamp": _lamp,
    "mug": _mug,
    "sofa": _sofa,
    "bench": _bench,
    "bottle": _bottle,
    "bookshelf": _bookshelf,
}

CATEGORIES: tuple[str, ...] = tuple(_BUILDERS)
"""The category names of ShapeNet-lite; the index of a name is its class label."""


def check_category(category: Any) -> str:
    """Return ``category`` if it is a known category name, else raise a ``ValueError`` listing them."""
    if not isinstance(category, str) or category not in _BUILDERS:
        raise ValueError(
            f"Unknown ShapeNet-lite category {category!r}. Valid categories are: {', '.join(CATEGORIES)}"
        )
    return category


def check_seed(seed: Any) -> int:
    """Return ``seed`` as an int if it is an integer in ``[0, MAX_SEED]``, else raise."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} ({seed!r})")
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed must be in [0, {MAX_SEED}], got {seed}")
    return int(seed)


def _category_rng(category: str, seed: int) -> Rng:
    salt = zlib.crc32(category.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence([salt, seed]))


def _as_points(points: Any) -> Tensor:
    if not isinstance(points, Tensor):
        if isinstance(points, np.ndarray) or isinstance(points, (list, tuple)):
            points = torch.as_tensor(np.asarray(points, dtype=np.float32))
        else:
            raise TypeError(f"points must be a torch.Tensor (..., 3), got {type(points).__name__}")
    if points.ndim == 0 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (..., 3), got {tuple(points.shape)}")
    if not points.is_floating_point():
        points = points.float()
    return points


class Shape:
    """One ShapeNet-lite shape: a union of named parts with an SDF, meshes and samples.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  Build it with
    :func:`make_shape`.  Attributes: ``category``, ``seed``, ``label`` (index in
    :data:`CATEGORIES`), ``parts`` (the distinct part names), ``center`` and
    ``scale`` (raw frame -> normalised frame: ``x_norm = scale * (x_raw - center)``).
    """

    def __init__(self, category: str, seed: int, raw_parts: Sequence[tuple[str, Node]]) -> None:
        self.category = category
        self.seed = seed
        self.label = CATEGORIES.index(category)
        lo = np.array([-max(n.support(-e) for _, n in raw_parts) for e in np.eye(3)])
        hi = np.array([max(n.support(e) for _, n in raw_parts) for e in np.eye(3)])
        center = 0.5 * (lo + hi)
        radius = max(n.transformed(1.0, center).max_radius() for _, n in raw_parts)
        self.center = center
        self.scale = 1.0 / radius
        self._nodes: tuple[tuple[str, Node], ...] = tuple(
            (name, node.transformed(self.scale, center)) for name, node in raw_parts
        )
        names: list[str] = []
        for name, _ in self._nodes:
            if name not in names:
                names.append(name)
        self.parts: tuple[str, ...] = tuple(names)
        self._part_index = np.array([names.index(name) for name, _ in self._nodes])
        self._meshes: dict[int, trimesh.Trimesh] = {}

    def __repr__(self) -> str:
        return f"Shape(category={self.category!r}, seed={self.seed}, parts={self.parts})"

    @property
    def n_primitives(self) -> int:
        """The number of part nodes (a part name may have several nodes, e.g. four legs)."""
        return len(self._nodes)

    def bounds(self) -> np.ndarray:
        """The analytic axis-aligned bounding box ``[[xmin, ymin, zmin], [xmax, ymax, zmax]]`` (normalised frame)."""
        lo = [-max(n.support(-e) for _, n in self._nodes) for e in np.eye(3)]
        hi = [max(n.support(e) for _, n in self._nodes) for e in np.eye(3)]
        return np.array([lo, hi])

    # --- fields ---------------------------------------------------------------
    def _node_sdfs(self, p: Tensor) -> Tensor:
        return torch.stack([node.sdf(p) for _, node in self._nodes], dim=-1)

    def sdf(self, points: Tensor) -> Tensor:
        """Signed distance (negative inside) at ``points (..., 3)``; same device and float dtype.

        Exact outside the shape, a bound with the right sign inside (and near
        ellipsoids); see the module docstring.  Differentiable w.r.t. ``points``.
        """
        p = _as_points(points)
        out = self._nodes[0][1].sdf(p)
        for _, node in self._nodes[1:]:
            out = torch.minimum(out, node.sdf(p))
        return out

    def occupancy(self, points: Tensor) -> Tensor:
        """``True`` where the point is inside the shape (``sdf < 0``); shape ``(...)``."""
        return self.sdf(points) < 0

    def part_labels(self, points: Tensor) -> Tensor:
        """For each point the index (into :attr:`parts`) of the part with the smallest SDF; LongTensor ``(...)``."""
        p = _as_points(points)
        idx = self._node_sdfs(p).argmin(dim=-1)
        lut = torch.as_tensor(self._part_index, dtype=torch.long, device=p.device)
        return lut[idx]

    def gradient(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """``(sdf, grad sdf)`` at ``points (..., 3)`` by autograd (no graph is kept)."""
        p = _as_points(points).detach().clone().requires_grad_(True)
        with torch.enable_grad():
            d = self.sdf(p)
            (g,) = torch.autograd.grad(d.sum(), p)
        return d.detach(), g.detach()

    def project(self, points: Tensor, steps: int = 3) -> tuple[Tensor, Tensor]:
        """Move points onto the zero level set by Newton steps ``p -= f grad f / |grad f|^2``.

        Returns ``(projected points, unit normals = normalised SDF gradient)``.
        """
        p = _as_points(points).detach()
        for _ in range(steps):
            d, g = self.gradient(p)
            g2 = (g * g).sum(-1, keepdim=True).clamp(min=1e-12)
            p = p - d[..., None] * g / g2
        _, g = self.gradient(p)
        n = g / torch.linalg.vector_norm(g, dim=-1, keepdim=True).clamp(min=1e-12)
        return p, n

    # --- meshes and samples ---------------------------------------------------
    def mesh(self, resolution: int = 64) -> trimesh.Trimesh:
        """A watertight, outward-oriented mesh: marching cubes of the SDF on a ``resolution^3`` grid.

        The grid covers ``[-b, b]^3`` with ``b = 1 + MESH_PAD / resolution`` so the
        surface (inside the unit sphere) never touches the border.  Cached per
        resolution; a copy is returned.  The SDF is evaluated exactly near the surface
        only (:func:`course_lib.geometry.sdf_grid_narrow_band`, valid because the SDF is
        a distance bound), which gives the same mesh as the full grid.
        """
        from ..geometry.mc import _check_resolution, marching_cubes, sdf_grid_narrow_band

        resolution = _check_resolution(resolution, minimum=8)
        if resolution not in self._meshes:
            bound = 1.0 + MESH_PAD / resolution
            grid = sdf_grid_narrow_band(self, resolution, bound)
            self._meshes[resolution] = marching_cubes(grid, 0.0, bound)
        return self._meshes[resolution].copy()

    def sample_surface(self, n: int, seed: int | None = None, *, stream: int = 0,
                       device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """``n`` area-weighted points on the exact surface with unit outward normals.

        Points are drawn area-weighted from :meth:`mesh` at :data:`SAMPLE_RESOLUTION`,
        then projected onto the zero level set of :meth:`sdf` (Newton steps along the
        autograd gradient); the normals are the normalised SDF gradient there.
        ``seed=None`` uses the shape's own seed, so the result is reproducible.  ``stream``
        (default 0) picks one of several independent samplings of the same surface
        (:data:`course_lib.data.splits.SAMPLING_STREAMS`: 0 input, 1 target, 2 oracle).
        Returns float32 tensors ``(n, 3)`` on ``device`` (default CPU).
        """
        from ..geometry.sampling import sample_mesh_surface

        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        s = self.seed if seed is None else check_seed(seed)
        if isinstance(stream, bool) or not isinstance(stream, (int, np.integer)) or stream < 0:
            raise ValueError(f"stream must be a non-negative int, got {stream!r}")
        entropy = [s, 7, self.label] if stream == 0 else [s, 7, self.label, int(stream)]
        pts, _ = sample_mesh_surface(self.mesh(SAMPLE_RESOLUTION), int(n), seed=entropy)
        if device is not None:
            pts = pts.to(device)
        p, nrm = self.project(pts, steps=2)
        return p.float().contiguous(), nrm.float().contiguous()


def make_shape(category: str, seed: int) -> Shape:
    """The shape number ``seed`` of ``category`` (deterministic on every machine).

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    >>> s = make_shape("chair", 0)
    >>> s.label == CATEGORIES.index("chair")
    True

    Raises ``ValueError`` listing the valid categories for an unknown category, and
    ``TypeError``/``ValueError`` for a seed that is not an integer in ``[0, MAX_SEED]``.
    The 64 most recently made shapes are cached: the same call returns the same object.
    """
    seed = check_seed(seed)
    if split_of(seed) == "test":
        check_test_read(f"test shape {category!r} seed {seed}")
    return _make_shape_cached(check_category(category), seed)


@functools.lru_cache(maxsize=64)
def _make_shape_cached(category: str, seed: int) -> Shape:
    # recently used shapes are kept (with their cached meshes): notebooks ask for the same ones often
    parts = _BUILDERS[category](_category_rng(category, seed))
    return Shape(category, seed, parts)
