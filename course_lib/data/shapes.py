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

The opt-in ``"wide"`` variety (``make_shape(category, seed, variety="wide")``, issue #32 item 6) draws
each category from a wider family, from its own random stream: chairs on four (square, round, tapered or
splayed) legs, swivel bases, sleds or cantilevers, stools, backs as panels, slats, rails or frames with an
opening, bar or solid arms; tables with rectangular, square, round, oval or polygonal tops on legs, one or two
pedestals, trestles, side panels or a drawer block; airplanes with straight, swept or delta wings, conventional,
T or twin tails, engines under the wings, at the tail or as propellers; cars of twelve kinds (pickups with an
open bed, trucks, convertibles, racers with wings); desk, arc and floor lamps with drum, cone, dome, globe or
closed shades; cylindrical, tapered, flared, barrel, faceted, bell and waisted mugs and cups with ring, square,
D, ear or two handles, lids, rims, ribs and saucers; sofas with L or U sections, chaises, wing or rounded arms,
camel backs, legs or a skirt; benches with slatted seats on panels, legs, A-frames, park-bench frames or
trestles; bottles, flasks and jugs; cases, stepped, grid, etagere and ladder bookshelves with doors.  Its
parts keep the same thickness rule and its SDF the same guarantees (exact primitives, bounds from CSG and
ellipsoids), and its meshes are watertight, but its parts do not always overlap: a car's wheels, a mug's lid or a
chair's back may stand just apart, so a wide shape is not always in one piece.  The base family is bit-identical
to the one before the variety existed.

Every part is at least ~0.1 thick after normalisation (>= 2 cells of a 48^3 grid on
[-1, 1]^3) and, in the base family, parts overlap, so meshes are watertight and in one piece (tested for
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
    CappedCone,
    Capsule,
    Cylinder,
    Difference,
    Ellipsoid,
    Intersection,
    Node,
    RoundBox,
    Sphere,
    TightEllipsoid,
    Torus,
    Union,
    rotation,
)
from .splits import check_test_read, split_of

__all__ = ["CATEGORIES", "FAMILY_REVISIONS", "GENERATOR_VERSION", "MAX_SEED", "VARIETIES", "Shape", "make_shape", "check_category",
           "check_seed", "check_variety", "family_tag"]

GENERATOR_VERSION = 1
"""Bumped whenever anything changes the generated data (a category's generator, the
normalisation, the samplers); part of every cache key, so old cache files are ignored."""

FAMILY_REVISIONS = {"base": 1, "wide": 2}
"""Revision of each family's generated data, bumped when a change touches one family only (the base family stays
bit-identical, so its caches stay valid).  Wide revision 2: surface-sample normals that autograd left at zero on
flat faces (about 5% of a table's or a bottle's samples) are recomputed in float64.  Part of every cache key of a
family other than the base one (:func:`family_tag`)."""


def family_tag(variety: str) -> str:
    """What a family adds to a cache key: ``""`` for the base family, ``"-wide-r2"`` for wide revision 2."""
    variety = check_variety(variety)
    return "" if variety == "base" else f"-{variety}-r{FAMILY_REVISIONS[variety]}"

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

# ---------------------------------------------------------------------------
# The "wide" variety (opt-in: make_shape(category, seed, variety="wide")).
# More parameters, more part types and topology changes per category; same
# primitives and the same >= ~0.14 raw thickness rule.  Issue #32, item 6.
# ---------------------------------------------------------------------------

def _pick(rng: Rng, options: Sequence[str], p: Sequence[float] | None = None) -> str:
    return str(rng.choice(list(options), p=None if p is None else np.asarray(p) / np.sum(p)))


def _bar(a: Sequence[float], b: Sequence[float], r: float) -> Node:
    return Capsule(np.asarray(a, float), np.asarray(b, float), r)


def _half_space(point: Sequence[float], normal: Sequence[float], big: float = 4.0) -> Node:
    """The half-space ``<x - point, normal> <= 0`` within a box of half size ``big`` (an exact box SDF)."""
    n = np.asarray(normal, float)
    n = n / np.linalg.norm(n)
    a = np.cross([0.0, 1.0, 0.0] if abs(n[1]) < 0.9 else [1.0, 0.0, 0.0], n)
    a /= np.linalg.norm(a)
    R = np.stack([n, a, np.cross(n, a)], axis=1)  # local x = normal
    return Box((big, big, big), np.asarray(point, float) - big * n, R)


def _hollow_cone(r1: float, r2: float, h: float, wall: float, c: np.ndarray) -> Node:
    """A conical lamp shade: a capped cone (``r1`` at the bottom) open at the bottom, closed at the top."""
    inner = CappedCone(max(r1 - wall, 0.02), max(r2 - wall, 0.02), h, c - np.array([0.0, wall, 0.0]))
    return Difference(CappedCone(r1, r2, h, c), inner)


def _legs_w(rng: Rng, W: float, D: float, top: float, lh: float) -> list[tuple[str, Node]]:
    """Four legs of a random style (square, round, tapered, splayed) from the floor to ``top``."""
    style = _pick(rng, ["square", "round", "taper", "splay"])
    inset = lh + _u(rng, 0.0, 0.15)
    dx, dz = W / 2 - inset, D / 2 - inset
    out: list[tuple[str, Node]] = []
    splay = _u(rng, 0.08, 0.25)
    for sx in (-1, 1):
        for sz in (-1, 1):
            x, z = sx * dx, sz * dz
            if style == "square":
                out.append(("leg", Box((lh, top / 2, lh), (x, top / 2, z))))
            elif style == "round":
                out.append(("leg", Cylinder(lh, top / 2, (x, top / 2, z))))
            elif style == "taper":
                out.append(("leg", CappedCone(max(0.07, lh * 0.6), lh * 1.25, top / 2, (x, top / 2, z))))
            else:
                out.append(("leg", _bar((x + sx * splay, lh, z + sz * splay), (x, top, z), lh)))
    if rng.random() < 0.35:  # stretchers
        ys = _u(rng, 0.15, 0.45) * top
        t = max(0.07, lh * 0.8)
        for sx in (-1, 1):
            out.append(("leg", Box((t, t, dz), (sx * dx, ys, 0.0))))
        if rng.random() < 0.5:
            out.append(("leg", Box((dx, t, t), (0.0, ys, 0.0))))
        else:
            for sz in (-1, 1):
                out.append(("leg", Box((dx, t, t), (0.0, ys, sz * dz))))
    return out


def _star_base(rng: Rng, top: float, reach: float) -> list[tuple[str, Node]]:
    """A swivel column with 3-5 spokes (and caster balls) or a disc foot."""
    rc = _u(rng, 0.07, 0.12)
    out: list[tuple[str, Node]] = [("base", Cylinder(rc, top / 2, (0, top / 2, 0)))]
    if rng.random() < 0.7:
        n = int(rng.integers(3, 6))
        a0 = _u(rng, 0, 2 * math.pi)
        ys = _u(rng, 0.1, 0.2)
        rs = 0.075
        for i in range(n):
            a = a0 + 2 * math.pi * i / n
            tip = np.array([reach * math.cos(a), ys * 0.5 + rs, reach * math.sin(a)])
            out.append(("base", _bar((0, ys + rs, 0), tip, rs)))
            if rng.random() < 0.8:
                out.append(("base", Sphere(rs * 1.2, tip - np.array([0, rs * 0.3, 0]))))
    else:
        out.append(("base", Cylinder(reach, _u(rng, 0.07, 0.1), (0, 0.08, 0))))
    return out


def _ellipsoid(radii: Sequence[float], center: Sequence[float]) -> Node:
    """An ellipsoid with a nearly tight radius bound (:class:`TightEllipsoid`: the wide shapes fill the ball)."""
    return TightEllipsoid(radii, center)


def _chair_wide(rng: Rng) -> list[tuple[str, Node]]:
    kind = _pick(rng, ["legs", "legs", "swivel", "sled", "cantilever", "stool"])
    W, D = _u(rng, 0.7, 1.4), _u(rng, 0.65, 1.3)
    ts, H = _u(rng, 0.14, 0.3), _u(rng, 0.55, 1.0) if kind != "stool" else _u(rng, 0.6, 1.5)
    round_seat = kind == "stool" and rng.random() < 0.6
    if round_seat:
        W = D = _u(rng, 0.6, 1.0)
        parts: list[tuple[str, Node]] = [("seat", Cylinder(W / 2, ts / 2, (0, H - ts / 2, 0)))]
    else:
        parts = [("seat", RoundBox((W / 2, ts / 2, D / 2), _u(rng, 0.02, 0.07), (0, H - ts / 2, 0)))]
    lh = _u(rng, 0.07, 0.12)
    top = H - ts / 2
    if kind in ("legs", "stool"):
        if round_seat:
            n = int(rng.integers(3, 5))
            rr = W / 2 - lh
            spread = _u(rng, 0.0, 0.3)
            for i in range(n):
                a = 2 * math.pi * i / n + math.pi / 4
                c, s = math.cos(a), math.sin(a)
                parts.append(("leg", _bar(((rr + spread) * c, lh, (rr + spread) * s), (rr * c, top, rr * s), lh)))
            if rng.random() < 0.6:  # foot ring
                parts.append(("leg", Torus(rr + spread * 0.6, 0.07, (0, _u(rng, 0.25, 0.45) * top, 0))))
        else:
            parts += _legs_w(rng, W, D, top, lh)
    elif kind == "swivel":
        parts += _star_base(rng, top, _u(rng, 0.4, 0.7))
    elif kind == "sled":
        r = _u(rng, 0.07, 0.09)
        dx = W / 2 - r - _u(rng, 0.0, 0.1)
        fz, bz = D / 2 - _u(rng, 0.0, 0.1), -D / 2 + _u(rng, 0.0, 0.1)
        for sx in (-1, 1):
            x = sx * dx
            parts.append(("leg", _bar((x, r, fz + 0.1), (x, r, bz - 0.1), r)))
            parts.append(("leg", _bar((x, r, fz), (x, top, fz - _u(rng, 0.0, 0.2)), r)))
            parts.append(("leg", _bar((x, r, bz), (x, top, bz + _u(rng, 0.0, 0.2)), r)))
    else:  # cantilever: a tube from the seat front down to the floor and back
        r = _u(rng, 0.07, 0.09)
        dx = W / 2 - r
        fz, bz = D / 2 - _u(rng, 0.0, 0.15), -D / 2 + _u(rng, 0.0, 0.2)
        for sx in (-1, 1):
            x = sx * dx
            parts.append(("leg", _bar((x, top, fz - 0.25), (x, top, fz), r)))
            parts.append(("leg", _bar((x, top, fz), (x, r, fz + _u(rng, -0.1, 0.15)), r)))
            parts.append(("leg", _bar((x, r, fz), (x, r, bz), r)))
        parts.append(("leg", _bar((-dx, r, bz), (dx, r, bz), r)))
    # back
    back = "none" if kind == "stool" and rng.random() < 0.7 else _pick(
        rng, ["panel", "slats", "rails", "frame", "round"])
    if back != "none":
        Hb, tb = _u(rng, 0.4, 1.2), _u(rng, 0.14, 0.22)
        Wb = W * _u(rng, 0.6, 1.0)
        tilt = _u(rng, -0.05, 0.4)
        Rb = rotation("x", -tilt)
        up = Rb[:, 1]
        zb = -D / 2 + tb / 2 if not round_seat else -W / 2 + tb
        base = np.array([0.0, H - ts / 2, zb])
        mid = base + (Hb / 2 + ts / 4) * up
        hh = Hb / 2 + ts / 4
        if back == "panel":
            parts.append(("back", RoundBox((Wb / 2, hh, tb / 2), _u(rng, 0.02, 0.07), mid, Rb)))
        elif back == "round":  # a rounded top: a capsule across a shorter panel
            rcap = _u(rng, 0.1, 0.2)
            parts.append(("back", Box((Wb / 2, hh - rcap / 2, tb / 2), mid - rcap / 2 * up, Rb)))
            topc = base + (ts / 2 + Hb - rcap) * up
            parts.append(("back", Capsule(topc - Rb[:, 0] * (Wb / 2 - rcap), topc + Rb[:, 0] * (Wb / 2 - rcap),
                                          rcap)))
        elif back == "frame":  # a panel with a through-opening
            bw = _u(rng, 0.14, 0.2)
            outer = Box((Wb / 2, hh, tb / 2), mid, Rb)
            hole = Box((Wb / 2 - bw, hh - bw - _u(rng, 0.0, 0.15), tb), mid + _u(rng, 0, 0.1) * up, Rb)
            parts.append(("back", Difference(outer, hole)))
        else:
            rail = _u(rng, 0.14, 0.22)
            parts.append(("back", Box((Wb / 2, rail / 2, tb / 2), base + (ts / 2 + Hb - rail / 2) * up, Rb)))
            if back == "slats":
                n = int(rng.integers(2, 6))
                sw = _u(rng, 0.14, 0.2)
                for x in np.linspace(-Wb / 2 + sw / 2, Wb / 2 - sw / 2, n):
                    parts.append(("back", Box((sw / 2, hh, tb / 2), mid + x * Rb[:, 0], Rb)))
            else:  # horizontal rails on two posts
                sw = _u(rng, 0.14, 0.18)
                for sx in (-1, 1):
                    parts.append(("back", Box((sw / 2, hh, tb / 2), mid + sx * (Wb / 2 - sw / 2) * Rb[:, 0], Rb)))
                for f in np.linspace(0.25, 0.75, int(rng.integers(1, 4))):
                    parts.append(("back", Box((Wb / 2, rail / 2, tb / 2), base + (ts / 2 + Hb * f) * up, Rb)))
    arms = "none" if round_seat or back == "none" else _pick(rng, ["none", "bars", "solid"], [0.5, 0.3, 0.2])
    if arms != "none":
        ha, wa = _u(rng, 0.2, 0.45), _u(rng, 0.14, 0.2)
        for sx in (-1, 1):
            x = sx * (W / 2 - wa / 2)
            if arms == "bars":
                za = D / 2 - _u(rng, 0.1, 0.25)
                parts.append(("arm", Box((wa / 2, ha / 2 + ts / 4, wa / 2), (x, H + ha / 2 - ts / 4, za))))
                parts.append(("arm", RoundBox((wa / 2, wa / 2, D / 2 - 0.05), 0.03, (x, H + ha, 0.0))))
            else:  # solid sides to the floor (an armchair)
                hs = H + ha
                parts.append(("arm", RoundBox((wa / 2, hs / 2, D / 2), 0.04, (x, hs / 2, 0.0))))
    return parts


def _table_wide(rng: Rng) -> list[tuple[str, Node]]:
    H = _u(rng, 0.5, 1.6)
    tt = _u(rng, 0.14, max(0.15, min(0.35, 0.25 * H))) if rng.random() < 0.7 else 0.14  # some thin, glass-like tops
    top_kind = _pick(rng, ["rect", "rect", "round", "oval", "square", "polygon"])
    if top_kind == "round":
        rt = _u(rng, 0.5, 1.1)
        W = D = 2 * rt / math.sqrt(2)
        parts: list[tuple[str, Node]] = [("top", Cylinder(rt, tt / 2, (0, H - tt / 2, 0)))]
    elif top_kind == "polygon":  # a hexagonal or octagonal top: the intersection of rotated slabs
        rt, k = _u(rng, 0.5, 1.1), int(rng.choice([3, 4]))
        slabs = [Box((rt, tt / 2, rt * 2), (0, H - tt / 2, 0), rotation("y", math.pi * i / k)) for i in range(k)]
        # the circumscribed cylinder changes nothing inside but makes the support and radius bounds tight
        circle = Cylinder(rt / math.cos(math.pi / (2 * k)) + 1e-9, tt / 2, (0, H - tt / 2, 0))
        parts = [("top", Intersection(circle, *slabs))]
        W = D = 2 * rt / math.sqrt(2)
        top_kind = "round"
    elif top_kind == "oval":
        W, D = _u(rng, 1.4, 2.6), _u(rng, 0.7, 1.3)
        parts = [("top", Box(((W - D) / 2, tt / 2, D / 2), (0, H - tt / 2, 0)))]
        for sx in (-1, 1):
            parts.append(("top", Cylinder(D / 2, tt / 2, (sx * (W - D) / 2, H - tt / 2, 0))))
        W = W - 0.3 * D
    else:
        W = _u(rng, 1.0, 2.8) if top_kind == "rect" else _u(rng, 0.8, 1.4)
        D = _u(rng, 0.6, 1.4) if top_kind == "rect" else W * _u(rng, 0.9, 1.1)
        parts = [("top", RoundBox((W / 2, tt / 2, D / 2), _u(rng, 0.02, 0.07), (0, H - tt / 2, 0)))]
    y0 = H - tt
    sup = _pick(rng, ["legs", "legs", "pedestal", "trestle", "panels", "desk"])
    if top_kind == "round" and sup in ("trestle", "desk"):
        sup = "legs"
    if rng.random() < 0.4 and sup in ("legs", "desk"):  # apron
        ha = _u(rng, 0.14, 0.25)
        parts.append(("top", Box((W / 2 - 0.1, ha / 2, D / 2 - 0.1), (0, y0 - ha / 2 + 0.02, 0))))
    if sup == "legs":
        parts += _legs_w(rng, W, D, y0 + 0.02, _u(rng, 0.07, 0.18))
        if rng.random() < 0.3:
            parts.append(("shelf", Box((W / 2 - 0.15, 0.07, D / 2 - 0.15), (0, _u(rng, 0.15, 0.4) * y0, 0))))
    elif sup == "pedestal":
        n_ped = 2 if top_kind in ("rect", "oval") and W > 1.6 and rng.random() < 0.5 else 1
        for xp in ([0.0] if n_ped == 1 else [-W / 4, W / 4]):
            rc = _u(rng, 0.08, 0.2)
            column = _pick(rng, ["cylinder", "cone", "posts"])
            if column == "cylinder":
                parts.append(("leg", Cylinder(rc, y0 / 2 + 0.01, (xp, y0 / 2, 0))))
            elif column == "posts":  # three or four thin posts around the axis, twisting or straight
                n, rp, twist = int(rng.integers(3, 5)), _u(rng, 0.15, 0.35), _u(rng, -0.8, 0.8)
                for i in range(n):
                    a = 2 * math.pi * i / n
                    parts.append(("leg", _bar((xp + rp * math.cos(a), 0.1, rp * math.sin(a)),
                                              (xp + rp * math.cos(a + twist), y0, rp * math.sin(a + twist)), 0.07)))
            else:
                parts.append(("leg", CappedCone(rc * _u(rng, 1.2, 2.5), rc, y0 / 2 + 0.01, (xp, y0 / 2, 0))))
            if rng.random() < 0.3:  # a bulge on the column
                parts.append(("leg", _ellipsoid((rc * 2, _u(rng, 0.1, 0.3) * y0, rc * 2), (xp, _u(rng, 0.3, 0.7) * y0, 0))))
            if n_ped == 1 and rng.random() < 0.3:  # a lower round shelf
                parts.append(("shelf", Cylinder(_u(rng, 0.4, 0.9) * min(W, D), 0.07, (0, _u(rng, 0.25, 0.5) * y0, 0))))
            foot = _pick(rng, ["disc", "cross", "cone"])
            rb = _u(rng, 0.3, min(0.8, 0.5 * max(W, D)))
            if foot == "disc":
                parts.append(("base", Cylinder(rb, _u(rng, 0.07, 0.1), (xp, 0.08, 0))))
            elif foot == "cone":
                parts.append(("base", CappedCone(rb, rc, _u(rng, 0.1, 0.25), (xp, 0.12, 0))))
            else:
                n = int(rng.integers(3, 5))
                a0 = _u(rng, 0, math.pi)
                for i in range(n):
                    a = a0 + 2 * math.pi * i / n
                    parts.append(("base", _bar((xp, 0.08, 0), (xp + rb * math.cos(a), 0.08, rb * math.sin(a)), 0.08)))
    elif sup == "trestle":
        t = _u(rng, 0.14, 0.22)
        xe = W / 2 - _u(rng, 0.15, 0.4)
        for sx in (-1, 1):
            x = sx * xe
            if rng.random() < 0.5:
                parts.append(("leg", Box((t / 2, y0 / 2, t / 2 + 0.05), (x, y0 / 2, 0))))
            else:  # X-shaped ends
                for sz in (-1, 1):
                    parts.append(("leg", _bar((x, 0.08, sz * (D / 2 - 0.12)), (x, y0, -sz * (D / 2 - 0.12)), t / 2)))
            parts.append(("base", Box((t / 2, 0.07, D / 2 - 0.05), (x, 0.07, 0))))
        parts.append(("leg", Box((xe, t / 2, t / 2), (0, _u(rng, 0.25, 0.6) * y0, 0))))
    elif sup == "panels":
        t = _u(rng, 0.14, 0.22)
        for sx in (-1, 1):
            xi = W / 2 - t / 2 - _u(rng, 0.0, 0.2)
            parts.append(("leg", Box((t / 2, y0 / 2 + 0.01, D / 2 - _u(rng, 0.0, 0.15)), (sx * xi, y0 / 2, 0))))
        if rng.random() < 0.5:  # modesty panel
            parts.append(("leg", Box((W / 2 - 0.1, _u(rng, 0.15, 0.3) * y0, 0.07), (0, 0.7 * y0, -D / 2 + 0.2))))
    else:  # desk: a drawer block on one side (drawer fronts as grooves), legs on the other
        t = _u(rng, 0.14, 0.2)
        wb = _u(rng, 0.35, 0.5) * W
        sx = 1 if rng.random() < 0.5 else -1
        xc = sx * (W / 2 - wb / 2 - 0.03)
        block = Box((wb / 2, y0 / 2 + 0.01, D / 2 - 0.05), (xc, y0 / 2, 0))
        n = int(rng.integers(1, 4))
        grooves = [Box((wb / 2 - 0.08, 0.04, 0.1), (xc, y0 * (i + 1) / (n + 1), D / 2 - 0.05)) for i in range(n)]
        parts.append(("drawers", Difference(block, Union(*grooves))))
        parts.append(("leg", Box((t / 2, y0 / 2 + 0.01, D / 2 - 0.05), (-sx * (W / 2 - t / 2 - 0.03), y0 / 2, 0))))
    return parts


def _wing_w(x_le: float, y: float, root: float, tip: float, span: float, sweep: float, t: float,
            side: int, dihedral: float) -> Node:
    """A tapered, swept wing panel on one side (``side`` = +-1 along z), as the intersection of a slab
    and two half-spaces (leading and trailing edges), tilted by ``dihedral`` about the x axis."""
    x_tip_le = x_le - span * math.tan(sweep)
    xmin, xmax = min(x_le - root, x_tip_le - tip) - 0.05, x_le + 0.05
    Rd = rotation("x", side * dihedral)
    off = np.array([0.0, y, 0.0])
    c = np.array([0.5 * (xmin + xmax), 0.0, side * span / 2])
    slab = Box((0.5 * (xmax - xmin), t / 2, span / 2), Rd @ c + off, Rd)
    le = _half_space(Rd @ np.array([x_le, 0.0, 0.0]) + off, Rd @ np.array([1.0, 0.0, side * math.tan(sweep)]))
    te_dir = np.array([(x_tip_le - tip) - (x_le - root), 0.0, side * span])
    n_te = np.cross(te_dir, [0.0, 1.0, 0.0])
    n_te = -n_te if n_te[0] > 0 else n_te
    te = _half_space(Rd @ np.array([x_le - root, 0.0, 0.0]) + off, Rd @ n_te)
    return Intersection(slab, le, te)


def _airplane_wide(rng: Rng) -> list[tuple[str, Node]]:
    L, rf = _u(rng, 1.3, 2.4), _u(rng, 0.09, 0.22)
    parts: list[tuple[str, Node]] = [("body", Capsule((-L / 2 + rf, 0, 0), (L / 2 - rf, 0, 0), rf))]
    nose = _pick(rng, ["round", "ellipsoid", "cone"])
    if nose == "ellipsoid":
        parts.append(("body", _ellipsoid((_u(rng, 0.2, 0.4) * L, rf * _u(rng, 1.0, 1.3), rf * _u(rng, 1.0, 1.3)),
                                        (L / 4, 0, 0))))
    elif nose == "cone":
        ln = _u(rng, 0.15, 0.35)
        parts.append(("body", CappedCone(rf, 0.07, ln / 2, (L / 2 - rf + ln / 2, 0, 0), rotation("z", -math.pi / 2))))
    if rng.random() < 0.5:  # tail cone rising to the fin
        lt = _u(rng, 0.2, 0.4) * L
        parts.append(("body", _bar((-L / 2 + rf + lt, 0, 0), (-L / 2, rf * 0.6, 0), rf * _u(rng, 0.6, 0.9))))
    wing = _pick(rng, ["straight", "swept", "delta"], [0.3, 0.45, 0.25])
    tw = _u(rng, 0.14, 0.18)
    span = _u(rng, 0.6, 1.2)
    if wing == "delta":
        root, tip, sweep = _u(rng, 0.6, 1.0) * L, _u(rng, 0.14, 0.25), 0.0
        sweep = math.atan((root - tip) / span * _u(rng, 0.8, 1.0))
        x_le = _u(rng, 0.1, 0.3) * L
    else:
        root = _u(rng, 0.25, 0.55)
        tip = root * _u(rng, 0.35, 1.0)
        sweep = _u(rng, 0.0, 0.15) if wing == "straight" else _u(rng, 0.3, 0.75)
        x_le = _u(rng, -0.05, 0.3) * L + root / 2
    yw = _pick(rng, ["low", "mid", "high"])
    yw_ = {"low": -0.6 * rf, "mid": 0.0, "high": 0.7 * rf}[yw]
    dihedral = _u(rng, -0.05, 0.15)
    for sz in (-1, 1):
        parts.append(("wing", _wing_w(x_le, yw_, root, tip, span + rf, sweep, tw, sz, dihedral)))
    # tail
    tail = _pick(rng, ["conventional", "T", "twin"] if wing != "delta" else ["fin", "conventional", "twin"])
    ct, st, hf = _u(rng, 0.2, 0.4), _u(rng, 0.25, 0.5), _u(rng, 0.25, 0.55)
    xt = -L / 2 + ct * 0.8
    fin_sweep = _u(rng, 0.2, 0.7)
    fins = [0.0] if tail != "twin" else [-st, st]
    for zf in fins:
        fin = Box((ct * 0.6 + 0.05, hf / 2 + rf / 2, tw / 2), (xt, hf / 2, zf))
        parts.append(("tail", Intersection(fin, _half_space((xt + ct * 0.6, 0, 0), (1.0, math.tan(fin_sweep), 0.0)))))
    if tail != "fin":
        ys = hf + rf * 0.2 if tail == "T" else 0.0
        for sz in (-1, 1):
            parts.append(("tail", _wing_w(xt + ct / 2, ys, ct, ct * _u(rng, 0.5, 1.0), st + (0 if tail != "twin" else 0.1),
                                          _u(rng, 0.0, 0.5), tw, sz, 0.0)))
    engines = _pick(rng, ["none", "wing2", "wing4", "tail", "prop", "wingprops"], [0.15, 0.3, 0.15, 0.15, 0.1, 0.15])
    re, le = _u(rng, 0.07, 0.13), _u(rng, 0.2, 0.45)
    Rx = rotation("z", math.pi / 2)
    if engines in ("wing2", "wing4", "wingprops"):
        fs = [0.4] if engines != "wing4" else [0.3, 0.65]
        for f in fs:
            for sz in (-1, 1):
                z = sz * (rf + f * span)
                x = x_le - z * sz * math.tan(sweep) - 0.1
                y = yw_ - tw / 2 - re * 0.6 + abs(z) * math.tan(dihedral)
                if engines == "wingprops":
                    y = yw_ + abs(z) * math.tan(dihedral)
                    parts.append(("engine", Capsule((x - le * 0.6, y, z), (x + 0.05, y, z), re)))
                    parts.append(("engine", Box((0.07, _u(rng, 0.25, 0.35), 0.07), (x + 0.05 + re, y, z))))
                else:
                    parts.append(("engine", Cylinder(re, le / 2, (x, y, z), Rx)))
    elif engines == "tail":
        for sz in (-1, 1):
            parts.append(("engine", Cylinder(re, le / 2, (-L / 2 + ct + le / 2 + 0.05, rf * 0.5, sz * (rf + re)), Rx)))
    elif engines == "prop":
        xp = L / 2 + 0.02
        blade = _u(rng, 0.25, 0.45)
        parts.append(("engine", Box((0.07, blade, 0.07), (xp, 0, 0))))
        parts.append(("engine", Box((0.07, 0.07, blade), (xp, 0, 0))))
    if rng.random() < 0.2 and wing != "delta":  # canards
        for sz in (-1, 1):
            parts.append(("wing", _wing_w(L / 2 - 0.3, 0.0, 0.2, 0.14, 0.25, 0.3, tw, sz, 0.0)))
    return parts


def _car_wide(rng: Rng) -> list[tuple[str, Node]]:
    kind = _pick(rng, ["sedan", "hatch", "wagon", "van", "pickup", "coupe", "suv", "bus", "truck", "convertible",
                       "jeep", "racer"])
    L = _u(rng, 1.4, 2.7) if kind not in ("bus", "truck") else _u(rng, 2.4, 3.2)
    Wd = _u(rng, 0.55, 1.3)
    rw, hw = _u(rng, 0.12, 0.34), _u(rng, 0.07, 0.16)
    clr = _u(rng, 0.0, 0.25) if kind in ("suv", "pickup", "van", "bus", "truck", "jeep") else _u(rng, -0.08, 0.05)
    hb = _u(rng, 0.18, 0.7) if kind != "racer" else _u(rng, 0.15, 0.25)
    yb = rw * _u(rng, 0.6, 1.0) + clr + hb / 2
    rr = _u(rng, 0.03, 0.15)
    body: Node = RoundBox((L / 2, hb / 2, Wd / 2), rr, (0, yb, 0))
    if rng.random() < 0.5:  # a sloped bonnet or a wedge nose
        a = _u(rng, 0.15, 0.6)
        body = Intersection(body, _half_space((L / 2 - _u(rng, 0.1, 0.5), yb + hb / 2, 0), (math.sin(a), math.cos(a), 0)))
    parts: list[tuple[str, Node]] = [("body", body)]
    hc = {"coupe": _u(rng, 0.15, 0.28), "van": _u(rng, 0.4, 0.7), "bus": _u(rng, 0.5, 0.9),
          "suv": _u(rng, 0.3, 0.5), "truck": _u(rng, 0.4, 0.7), "jeep": _u(rng, 0.3, 0.5),
          "racer": _u(rng, 0.14, 0.2)}.get(kind, _u(rng, 0.2, 0.42))
    yc = yb + hb / 2 + hc / 2 - 0.05
    if kind in ("sedan", "coupe", "convertible"):
        lc, xc = _u(rng, 0.3, 0.6) * L, _u(rng, -0.2, 0.1) * L
    elif kind in ("hatch", "wagon", "suv", "jeep"):
        lc = _u(rng, 0.4, 0.75) * L
        xc = -L / 2 + lc / 2 + _u(rng, 0.0, 0.15)
    elif kind in ("van", "bus"):
        lc = _u(rng, 0.7, 0.97) * L
        xc = -L / 2 + lc / 2 + 0.03
    elif kind == "racer":
        lc, xc = _u(rng, 0.15, 0.3) * L, _u(rng, -0.2, 0.1) * L
    else:  # pickup, truck: a cab at the front
        lc = _u(rng, 0.2, 0.4) * L
        xc = L / 2 - lc / 2 - _u(rng, 0.0, 0.3) * L
    wc = Wd / 2 * (_u(rng, 0.7, 1.0) if kind != "racer" else _u(rng, 0.2, 0.35))
    cab: Node = RoundBox((lc / 2, hc / 2, wc), _u(rng, 0.03, 0.12), (xc, yc, 0))
    if rng.random() < 0.6:  # raked windscreen
        rake = _u(rng, 0.3, 1.1)
        cab = Intersection(cab, _half_space((xc + lc / 2 - hc * 0.3, yc, 0), (math.cos(rake), math.sin(rake), 0)))
    if kind == "convertible":  # an open cockpit: the roof cut away
        cab = Difference(cab, Box((lc / 2 - 0.1, hc, wc - 0.08), (xc - 0.05, yc + hc / 2 + 0.02, 0)))
    parts.append(("cabin", cab))
    if kind in ("pickup", "truck"):  # open bed or a cargo box behind the cab
        xb0, xb1 = -L / 2, xc - lc / 2 - (0 if kind == "pickup" else _u(rng, 0.0, 0.1))
        if kind == "pickup":
            hbed = _u(rng, 0.14, 0.35)
            bed = Box(((xb1 - xb0) / 2, hbed / 2, Wd / 2), ((xb0 + xb1) / 2, yb + hb / 2 + hbed / 2 - 0.03, 0))
            hole = Box(((xb1 - xb0) / 2 - 0.08, hbed, Wd / 2 - 0.08), ((xb0 + xb1) / 2, yb + hb / 2 + hbed, 0))
            parts.append(("body", Difference(bed, hole)))
        else:
            hx = _u(rng, 0.4, 1.0)
            parts.append(("cargo", Box(((xb1 - xb0) / 2, hx / 2, Wd / 2 * _u(rng, 0.95, 1.1)),
                                       ((xb0 + xb1) / 2, yb + hb / 2 + hx / 2 - 0.03, 0))))
    if kind == "jeep" and rng.random() < 0.7:  # a spare wheel on the back
        parts.append(("wheel", Cylinder(rw * 0.9, hw * 0.8, (-L / 2 - hw * 0.7, yb + hb * 0.3, 0),
                                        rotation("z", math.pi / 2))))
    if (rng.random() < 0.35 and kind in ("sedan", "coupe", "hatch")) or kind == "racer":  # spoiler
        xs = -L / 2 + 0.12
        ys = yb + hb / 2 + _u(rng, 0.1, 0.3)
        for sz in (-1, 1):
            parts.append(("spoiler", Box((0.07, (ys - yb - hb / 2) / 2 + 0.05, 0.07), (xs, (ys + yb + hb / 2) / 2,
                                                                                      sz * Wd * 0.3))))
        parts.append(("spoiler", Box((_u(rng, 0.1, 0.2), 0.07, Wd / 2 * _u(rng, 0.8, 1.1)), (xs, ys, 0))))
    if kind == "racer":  # a front wing
        parts.append(("spoiler", Box((0.12, 0.07, Wd / 2 * _u(rng, 0.9, 1.2)), (L / 2 - 0.1, yb - hb / 2 + 0.07, 0))))
    if rng.random() < 0.25 and kind in ("wagon", "suv", "van", "jeep"):  # roof rack
        yr = yc + hc / 2 + 0.05
        for sz in (-1, 1):
            parts.append(("cabin", Box((lc / 2 * 0.8, 0.07, 0.07), (xc, yr, sz * wc * 0.8))))
    wb = L / 2 - _u(rng, 0.15, 0.45)
    axles = [-wb, wb] if kind not in ("bus", "truck") or rng.random() < 0.5 else [-wb, -wb + 2 * rw + 0.1, wb]
    out = _u(rng, -0.5, 0.5) if kind != "racer" else _u(rng, 0.6, 1.2)
    for x in axles:
        for sz in (-1, 1):
            c = (x, rw, sz * (Wd / 2 + hw * out))
            parts.append(("wheel", Cylinder(rw, hw, c, rotation("x", math.pi / 2))))
    return parts


def _lamp_wide(rng: Rng) -> list[tuple[str, Node]]:
    floor = rng.random() < 0.35
    base = _pick(rng, ["disc", "square", "cone", "tripod"])
    rb, hb = _u(rng, 0.25, 0.55), _u(rng, 0.14, 0.25)
    parts: list[tuple[str, Node]] = []
    rs = _u(rng, 0.07, 0.1)
    if base == "disc":
        parts.append(("base", Cylinder(rb, hb / 2, (0, hb / 2, 0))))
    elif base == "square":
        parts.append(("base", RoundBox((rb, hb / 2, rb * _u(rng, 0.7, 1.0)), 0.03, (0, hb / 2, 0))))
    elif base == "cone":
        parts.append(("base", CappedCone(rb, rs * 1.5, hb * 1.5, (0, hb * 1.5, 0))))
        hb = hb * 3
    else:
        for i in range(3):
            a = 2 * math.pi * i / 3
            parts.append(("base", _bar((rb * 1.3 * math.cos(a), rs, rb * 1.3 * math.sin(a)), (0, hb * 3, 0), rs)))
        hb = hb * 3
    arm = _pick(rng, ["straight", "two", "three", "arc"])
    Hs = _u(rng, 1.8, 3.0) if floor else _u(rng, 0.9, 1.6)
    if arm == "straight":
        top = np.array([0.0, Hs, 0.0])
        parts.append(("stem", Cylinder(rs, Hs / 2, (0, Hs / 2, 0))))
        down = rng.random() < 0.3
    else:
        pts = [np.array([0.0, hb / 2, 0.0])]
        n = {"two": 2, "three": 3, "arc": 4}[arm]
        reach = _u(rng, 0.4, 1.2)
        for i in range(n):
            if arm == "arc":  # a bow rising and leaning over
                step = np.array([reach / n * (i + 1) / n * 2, Hs / n * (1 - i / n), 0.0])
            else:  # jointed desk arm: the first segment rises, the others may bend down a little
                a = _u(rng, 0.8, 1.45) if i == 0 else _u(rng, -0.4, 1.1)
                ell = Hs / n * _u(rng, 0.8, 1.3)
                step = np.array([ell * math.cos(a), ell * math.sin(a), 0.0])
            pts.append(pts[-1] + step)
        for a, b in zip(pts[:-1], pts[1:]):
            parts.append(("stem", Capsule(a, b, rs)))
        top = pts[-1]
        down = arm == "arc" or rng.random() < 0.5
    shade = _pick(rng, ["drum", "cone", "globe", "dome", "cylinder"])
    rsh, hsh = _u(rng, 0.2, 0.55), _u(rng, 0.2, 0.55)
    down = down and top[1] - hsh > hb + 0.3  # a hanging shade clears the base
    wall = _u(rng, 0.14, 0.17)
    c = top - np.array([0.0, hsh / 2 - wall if not down else hsh / 2 + 0.05, 0.0])
    if shade == "drum":
        outer = Cylinder(rsh, hsh / 2, c)
        parts.append(("shade", Difference(outer, Cylinder(rsh - wall, hsh / 2, c - np.array([0.0, wall, 0.0])))))
    elif shade == "cone":
        r2 = rsh * _u(rng, 0.2, 0.7)
        parts.append(("shade", _hollow_cone(rsh, max(r2, wall + 0.07), hsh / 2, wall, c)))
    elif shade == "globe":
        parts.append(("shade", _ellipsoid((rsh, hsh * 0.8, rsh), top + np.array([0.0, hsh * 0.5, 0.0]))))
    elif shade == "dome":
        cd = top + np.array([0.0, -rsh * 0.3, 0.0])
        dome = Difference(Sphere(rsh, cd), Sphere(rsh - wall, cd))
        parts.append(("shade", Intersection(dome, _half_space(cd - np.array([0.0, rsh * 0.2, 0.0]), (0, -1, 0)))))
    else:  # a closed cylinder (a floor uplighter's or a bulb housing)
        parts.append(("shade", Cylinder(rsh * 0.7, hsh / 2, top + np.array([0.0, hsh / 2 - 0.05, 0.0]))))
    parts.append(("stem", Sphere(rs * 1.6, top)))
    return parts


def _mug_wide(rng: Rng) -> list[tuple[str, Node]]:
    r = _u(rng, 0.25, 0.85)
    h = _u(rng, 0.18, min(1.1, 2.2 * r))  # at most 2.2 times as tall as wide: a mug or a tall cup, not a pipe
    wall, bottom = _u(rng, 0.14, 0.3), _u(rng, 0.14, max(0.15, min(0.6, 0.8 * h)))
    wall = min(wall, 0.5 * r)
    body = _pick(rng, ["cylinder", "taper", "flare", "barrel", "polygon", "bell", "waist"])
    r_top = r
    if body in ("bell", "waist"):  # two sections: a cone under a cylinder (bell) or two cones (waist)
        ym = _u(rng, 0.3, 0.7) * 2 * h
        f = max(_u(rng, 0.55, 0.85), (wall + 0.12) / r)
        if body == "bell":
            lower: Node = CappedCone(r * f, r, ym / 2, (0, ym / 2, 0))
            upper: Node = Cylinder(r, h - ym / 2, (0, ym + (2 * h - ym) / 2, 0))
        else:
            lower = CappedCone(r, r * f, ym / 2, (0, ym / 2, 0))
            upper = CappedCone(r * f, r, h - ym / 2, (0, ym + (2 * h - ym) / 2, 0))
        outer = Union(lower, upper)
        cavity = Cylinder(r * f - wall, h, (0, h + bottom, 0))
        r = r * f
    elif body == "cylinder":
        outer: Node = Cylinder(r, h, (0, h, 0))
        cavity: Node = Cylinder(r - wall, h, (0, h + bottom, 0))
    elif body == "polygon":  # a faceted body: 6 or 8 flat sides (intersection of slabs), a round cavity
        k = int(rng.choice([3, 4]))
        slabs = [Box((r, h, r * 2), (0, h, 0), rotation("y", math.pi * i / k)) for i in range(k)]
        outer = Intersection(Cylinder(r / math.cos(math.pi / (2 * k)) + 1e-9, h, (0, h, 0)), *slabs)
        cavity = Cylinder(r - wall, h, (0, h + bottom, 0))
    elif body == "barrel":  # a bulging body, cut flat at the top and the bottom
        bulge = _u(rng, 1.1, 1.35)
        e = Ellipsoid((r * bulge, h * 1.3, r * bulge), (0, h, 0))
        outer = Intersection(e, Cylinder(r * bulge, h, (0, h, 0)))
        cavity = Intersection(Ellipsoid((r * bulge - wall, h * 1.3 - wall, r * bulge - wall), (0, h + bottom, 0)),
                              Cylinder(r * bulge, h, (0, h + bottom, 0)))
        r = r_top = r * bulge * math.sqrt(1 - (1 / 1.3) ** 2)
    else:
        f = max(_u(rng, 0.5, 0.85), (wall + 0.1) / r)
        r1, r2 = (r * f, r) if body == "flare" else (r, r * f)
        outer = CappedCone(r1, r2, h, (0, h, 0))
        cavity = CappedCone(max(r1 - wall, 0.05), r2 - wall, h, (0, h + bottom, 0))
        r_top = r2
        r = min(r1, r2)
    if body in ("taper", "flare"):
        def r_at(y: float) -> float:
            return r1 + (r2 - r1) * y / (2 * h)
    else:
        def r_at(y: float) -> float:
            return r
    parts: list[tuple[str, Node]] = [("body", Difference(outer, cavity))]
    if rng.random() < 0.3:  # a rolled rim
        parts.append(("body", Torus(r_top - 0.03, 0.07, (0, 2 * h - 0.05, 0))))
    if body == "cylinder" and rng.random() < 0.4:  # ribs around the body
        for y in np.linspace(0.2, 1.8, int(rng.integers(2, 5))) * h:
            parts.append(("body", Torus(r - 0.02, 0.07, (0, float(y), 0))))
    if body in ("cylinder", "polygon") and rng.random() < 0.25:  # a stein's lid, hinged at the handle side
        lid_r = r_top + _u(rng, 0.0, 0.08)
        parts.append(("lid", Cylinder(lid_r, 0.08, (0, 2 * h + 0.06, 0))))
        if rng.random() < 0.6:
            parts.append(("lid", Sphere(_u(rng, 0.1, 0.2), (_u(rng, -0.5, 0.5) * r, 2 * h + 0.12, 0))))
    handle = _pick(rng, ["ring", "ring", "square", "none", "two", "ear", "d"])
    rr = r
    clip = Cylinder(rr - wall / 2, 2 * h, (0, h, 0))
    yh = h + _u(rng, -0.3, 0.3) * h
    if handle in ("ring", "two", "ear"):
        R0, rt = _u(rng, 0.3, 1.0) * h, _u(rng, 0.07, 0.14)
        R0 = min(R0, min(yh, 2 * h - yh) - rt - 0.02)
        if handle == "ear":
            R0 = min(R0, 0.25)
        if R0 < rt + 0.05:  # a small mug: the handle in the middle
            yh, R0 = h, max(h - rt - 0.02, rt + 0.05)
        sides = (1,) if handle != "two" else (1, -1)
        for sx in sides:
            torus = Torus(R0, rt, (sx * rr, yh, 0), rotation("x", math.pi / 2))
            parts.append(("handle", Difference(torus, clip)))
    elif handle == "square":
        reach, hh, t = _u(rng, 0.25, 0.7), _u(rng, 0.5, 1.2) * h, _u(rng, 0.07, 0.12)
        hh = max(hh, 2 * t + 0.16)
        frame = Difference(Box((reach / 2 + t, hh / 2 + t, t), (rr + reach / 2 - t, yh, 0)),
                           Box((reach / 2, hh / 2 - t, 2 * t), (rr + reach / 2 - t, yh, 0)))
        parts.append(("handle", Difference(frame, clip)))
    elif handle == "d":  # a D-shaped handle of three bars
        reach, hh, t = _u(rng, 0.25, 0.7), _u(rng, 0.4, 1.2) * h, _u(rng, 0.07, 0.12)
        a = np.array([r_at(yh + hh / 2) - wall / 2, yh + hh / 2, 0])
        b = np.array([r_at(yh - hh / 2) - wall / 2, yh - hh / 2, 0])
        c1, c2 = a + np.array([reach, -hh * 0.1, 0]), b + np.array([reach * _u(rng, 0.5, 1.2), 0, 0])
        for u, v in ((a, c1), (c1, c2), (c2, b)):
            parts.append(("handle", Capsule(u, v, t)))
    if rng.random() < 0.25:  # a saucer
        parts.append(("saucer", Cylinder(r * _u(rng, 1.3, 2.0), 0.07, (0, 0.07, 0))))
    elif rng.random() < 0.3:  # a foot ring
        parts.append(("body", Cylinder(r * _u(rng, 0.5, 0.9), _u(rng, 0.07, 0.15), (0, 0.0, 0))))
    return parts


def _sofa_wide(rng: Rng) -> list[tuple[str, Node]]:
    L, D = _u(rng, 1.1, 2.6), _u(rng, 0.7, 1.5)
    support = _pick(rng, ["skirt", "legs", "legs"])
    hl = 0.0 if support == "skirt" else _u(rng, 0.1, 0.35)
    hs = _u(rng, 0.25, 0.5)
    rr = _u(rng, 0.03, 0.12)
    parts: list[tuple[str, Node]] = [("seat", RoundBox((L / 2, hs / 2, D / 2), rr, (0, hl + hs / 2, 0)))]
    tb, hbk = _u(rng, 0.15, 0.4), _u(rng, 0.2, 1.15)
    tilt = _u(rng, 0.0, 0.3)
    Rb = rotation("x", -tilt)
    back_c = np.array([0, hl + (hs + hbk) / 2, -D / 2 + tb / 2 - (hs + hbk) / 2 * math.sin(tilt) * 0.5])
    parts.append(("back", RoundBox((L / 2, (hs + hbk) / 2, tb / 2), rr, back_c, Rb)))
    arms = _pick(rng, ["box", "box", "round", "none", "low", "wing"])
    ta = _u(rng, 0.15, 0.35)
    if arms != "none":
        ha = _u(rng, 0.1, 0.45) if arms != "low" else _u(rng, -0.05, 0.05)
        for sx in (-1, 1):
            x = sx * (L / 2 - ta / 2)
            parts.append(("arm", RoundBox((ta / 2, (hs + ha) / 2, D / 2), rr, (x, hl + (hs + ha) / 2, 0))))
            if arms == "wing" and hbk > ha + 0.2:  # a wing: the arm rises into a tall panel at the back
                parts.append(("arm", RoundBox((ta / 2, (hbk - ha) / 2 + 0.05, D / 4), rr,
                                              (x, hl + hs + ha + (hbk - ha) / 2 - 0.05, -D / 4))))
            if arms == "round":
                parts.append(("arm", Capsule((x, hl + hs + ha, -D / 2 + ta / 2), (x, hl + hs + ha, D / 2 - ta / 2),
                                             ta / 2 + 0.04)))
    else:
        ta = 0.0
    if rng.random() < 0.8:
        n = int(rng.integers(1, 5))
        wc = (L - 2 * ta) / n
        hc = _u(rng, 0.14, 0.22)
        for i in range(n):
            x = -L / 2 + ta + wc * (i + 0.5)
            parts.append(("cushion", RoundBox((wc / 2 + 0.03, hc / 2, (D - tb) / 2 + 0.03), 0.06,
                                              (x, hl + hs + hc / 2 - 0.04, tb / 2 - 0.03))))
            if rng.random() < 0.7:  # back cushion
                parts.append(("cushion", RoundBox((wc / 2 + 0.03, hbk * 0.4, 0.1), 0.06,
                                                  (x, hl + hs + hbk * 0.45, -D / 2 + tb + 0.05))))
    if rng.random() < 0.3:  # a rounded (camel) top on the back
        rc = tb / 2 + _u(rng, 0.02, 0.12)
        top_c = back_c + Rb @ np.array([0.0, (hs + hbk) / 2 - rc / 2, 0.0])
        parts.append(("back", Capsule(top_c - np.array([L / 2 - tb, 0, 0]), top_c + np.array([L / 2 - tb, 0, 0]), rc)))
    shape = _pick(rng, ["straight", "straight", "L", "chaise", "U"])
    if shape == "L":  # a second seat section along the left or right, with its own back
        sx = 1 if rng.random() < 0.5 else -1
        de = _u(rng, 0.8, 1.6)
        we = D
        x = sx * (L / 2 + we / 2 - 0.05)
        parts.append(("seat", RoundBox((we / 2, hs / 2, (D + de) / 2), rr, (x, hl + hs / 2, de / 2))))
        parts.append(("back", RoundBox((tb / 2, (hs + hbk) / 2, (D + de) / 2), rr,
                                       (x + sx * (we / 2 - tb / 2), hl + (hs + hbk) / 2, de / 2))))
    elif shape == "U":  # a sectional: a seat section with its own back at both ends
        de = _u(rng, 0.6, 1.3)
        we = D
        for sx in (-1, 1):
            x = sx * (L / 2 + we / 2 - 0.05)
            parts.append(("seat", RoundBox((we / 2, hs / 2, (D + de) / 2), rr, (x, hl + hs / 2, de / 2))))
            parts.append(("back", RoundBox((tb / 2, (hs + hbk) / 2, (D + de) / 2), rr,
                                           (x + sx * (we / 2 - tb / 2), hl + (hs + hbk) / 2, de / 2))))
    elif shape == "chaise":
        sx = 1 if rng.random() < 0.5 else -1
        we, de = _u(rng, 0.5, 0.9), _u(rng, 0.4, 1.0)
        parts.append(("seat", RoundBox((we / 2, hs / 2, de / 2 + 0.1), rr,
                                       (sx * (L / 2 - ta - we / 2), hl + hs / 2, D / 2 + de / 2 - 0.1))))
    if hl > 0:
        hl_ = hl + 0.05
        lr = _u(rng, 0.07, 0.1)
        xs = [L / 2 - 0.12, -(L / 2 - 0.12)] + ([0.0] if L > 2.0 and rng.random() < 0.5 else [])
        for x in xs:
            for sz in (-1, 1):
                if rng.random() < 0.5 or True:
                    parts.append(("leg", CappedCone(lr * 0.7, lr, hl_ / 2, (x, hl_ / 2, sz * (D / 2 - 0.12)))))
    return parts


def _bench_wide(rng: Rng) -> list[tuple[str, Node]]:
    L, D = _u(rng, 1.0, 3.0), _u(rng, 0.35, 1.0)
    ts, H = _u(rng, 0.14, 0.3), _u(rng, 0.4, 1.05)
    seat = _pick(rng, ["solid", "slats"])
    parts: list[tuple[str, Node]] = []
    if seat == "solid":
        parts.append(("seat", RoundBox((L / 2, ts / 2, D / 2), _u(rng, 0.02, 0.07), (0, H - ts / 2, 0))))
    else:
        n = int(rng.integers(2, 5))
        sw = (D - 0.12 * (n - 1)) / n
        if sw < 0.14:
            n, sw = 2, (D - 0.12) / 2
        for i in range(n):
            z = -D / 2 + sw / 2 + i * (sw + 0.12)
            parts.append(("seat", Box((L / 2, ts / 2, sw / 2), (0, H - ts / 2, z))))
        parts.append(("seat", Box((L / 2 - 0.2, 0.07, D / 2), (0, H - ts - 0.06, 0))))
    t = _u(rng, 0.14, 0.22)
    top = H - ts / 2
    legs = _pick(rng, ["panels", "four", "aframe", "park", "trestle"])
    xe = L / 2 - _u(rng, 0.08, 0.4)
    if legs == "panels":
        for sx in (-1, 1):
            panel = Box((t / 2, top / 2, D / 2 - 0.03), (sx * xe, top / 2, 0))
            if rng.random() < 0.5:  # an arch cut out of the panel
                panel = Difference(panel, Cylinder(min(D / 2 - 0.2, top * 0.5), t, (sx * xe, 0.0, 0),
                                                   rotation("z", math.pi / 2)))
            parts.append(("leg", panel))
    elif legs == "four":
        parts += [(n, node) for n, node in _legs_w(rng, 2 * xe + t, D, top + 0.02, t / 2)]
    elif legs == "aframe":
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(("leg", _bar((sx * xe, t / 2, sz * (D / 2 + _u(rng, 0.0, 0.2))), (sx * xe, top, 0.0),
                                          t / 2)))
            parts.append(("leg", Box((t / 2, t / 2, D / 3), (sx * xe, top * 0.35, 0))))
    elif legs == "park":  # side frames: a leg front and back, a foot bar, rising into an arm at the back
        for sx in (-1, 1):
            x = sx * xe
            parts.append(("leg", _bar((x, t / 2, D / 2), (x, top, D / 2 - 0.1), t / 2)))
            parts.append(("leg", _bar((x, t / 2, -D / 2 - 0.1), (x, top, -D / 2 + 0.05), t / 2)))
            parts.append(("leg", Box((t / 2, t / 2, D / 2 + 0.1), (x, t / 2, -0.05))))
    else:  # trestle: two end posts on feet and a long stretcher
        for sx in (-1, 1):
            parts.append(("leg", Box((t / 2, top / 2, t / 2), (sx * xe, top / 2, 0))))
            parts.append(("leg", Box((t / 2, 0.08, D / 2), (sx * xe, 0.08, 0))))
        parts.append(("leg", Box((xe, t / 2, t / 2), (0, _u(rng, 0.3, 0.6) * top, 0))))
    back = _pick(rng, ["none", "rail", "slats", "panel"], [0.35, 0.25, 0.25, 0.15])
    if back != "none":
        hp, tb = _u(rng, 0.3, 0.8), _u(rng, 0.14, 0.2)
        tilt = _u(rng, 0.0, 0.3)
        Rb = rotation("x", -tilt)
        up = Rb[:, 1]
        base = np.array([0.0, H - ts, -D / 2 + tb / 2])
        if back == "panel":
            parts.append(("back", Box((L / 2, hp / 2 + ts / 2, tb / 2), base + (hp / 2 + ts / 2) * up, Rb)))
        else:
            for sx in (-1, 1):
                parts.append(("back", Box((t / 2, hp / 2 + ts / 2, tb / 2),
                                          base + (hp / 2 + ts / 2) * up + sx * xe * Rb[:, 0], Rb)))
            n = 1 if back == "rail" else int(rng.integers(2, 4))
            hr = _u(rng, 0.14, 0.3) if back == "rail" else 0.14
            for i in range(n):
                f = 1.0 - i * 0.3
                parts.append(("back", RoundBox((L / 2, hr / 2, tb / 2), 0.03,
                                               base + (ts + hp * f - hr / 2) * up, Rb)))
    if rng.random() < 0.3 and back != "none":  # arms
        ha = _u(rng, 0.2, 0.35)
        for sx in (-1, 1):
            x = sx * (L / 2 - 0.1)
            parts.append(("arm", Box((0.07, ha / 2, 0.07), (x, H + ha / 2 - 0.03, D / 2 - 0.1))))
            parts.append(("arm", RoundBox((0.08, 0.08, D / 2), 0.03, (x, H + ha, 0.0))))
    return parts


def _bottle_wide(rng: Rng) -> list[tuple[str, Node]]:
    r, h = _u(rng, 0.15, 0.7), _u(rng, 0.25, 1.5)
    body = _pick(rng, ["cylinder", "taper", "square", "flask", "round", "waist", "stacked"])
    parts: list[tuple[str, Node]] = []
    if body == "cylinder":
        parts.append(("body", Cylinder(r, h / 2, (0, h / 2, 0))))
    elif body == "taper":
        f = _u(rng, 0.6, 1.4)
        parts.append(("body", CappedCone(r, r * f, h / 2, (0, h / 2, 0))))
        r = r * f  # the radius at the top, where the shoulder sits
    elif body == "waist":  # narrower in the middle (two cones meeting)
        w = _u(rng, 0.6, 0.85)
        ym = _u(rng, 0.35, 0.65) * h
        parts.append(("body", CappedCone(r, r * w, ym / 2, (0, ym / 2, 0))))
        parts.append(("body", CappedCone(r * w, r, (h - ym) / 2, (0, ym + (h - ym) / 2, 0))))
    elif body == "stacked":  # a wide lower part and a narrower upper part
        ym = _u(rng, 0.3, 0.7) * h
        parts.append(("body", Cylinder(r, ym / 2, (0, ym / 2, 0))))
        parts.append(("body", Cylinder(r * _u(rng, 0.6, 0.85), (h - ym) / 2 + 0.03, (0, ym + (h - ym) / 2 - 0.03, 0))))
        r = r * 0.7
    elif body == "square":
        parts.append(("body", RoundBox((r, h / 2, r * _u(rng, 0.5, 1.0)), _u(rng, 0.05, 0.15), (0, h / 2, 0))))
    elif body == "flask":
        parts.append(("body", _ellipsoid((r, h / 2, r * _u(rng, 0.4, 1.0)), (0, h / 2, 0))))
    else:
        parts.append(("body", _ellipsoid((r, h / 2, r), (0, h / 2, 0))))
        parts.append(("body", Cylinder(r * 0.6, 0.07, (0, 0.07, 0))))
    if body in ("cylinder", "stacked") and rng.random() < 0.3:  # a raised band (label or grip)
        parts.append(("body", Torus(r - 0.02 if body == "cylinder" else r / 0.7 - 0.02, 0.07,
                                    (0, _u(rng, 0.15, 0.3) * h, 0))))
    shoulder = _pick(rng, ["ellipsoid", "cone", "none"]) if body in ("cylinder", "taper", "square", "waist",
                                                                    "stacked") else "none"
    rn, hn = _u(rng, 0.07, min(0.22, 0.8 * r)), _u(rng, 0.05, 0.9)
    hs = _u(rng, 0.1, 0.5)
    y_neck = h
    if shoulder == "ellipsoid":
        parts.append(("shoulder", _ellipsoid((r, hs, r), (0, h, 0))))
        y_neck = h + hs - 0.05
    elif shoulder == "cone":
        parts.append(("shoulder", CappedCone(r, rn, hs / 2, (0, h + hs / 2, 0))))
        y_neck = h + hs
    elif body in ("flask", "round"):
        y_neck = h - 0.08
    else:
        y_neck = h
    parts.append(("neck", Cylinder(rn, hn / 2 + 0.05, (0, y_neck + hn / 2 - 0.05, 0))))
    cap = _pick(rng, ["cap", "lip", "none"])
    yt = y_neck + hn
    if cap == "cap":
        hc = _u(rng, 0.14, 0.3)
        parts.append(("cap", Cylinder(rn + _u(rng, 0.02, 0.06), hc / 2, (0, yt + hc / 2 - 0.03, 0))))
    elif cap == "lip":
        parts.append(("cap", Torus(rn, 0.07, (0, yt - 0.03, 0))))
    if rng.random() < 0.25:  # a jug handle from the neck to the body
        rt = 0.07
        ya, yb = y_neck + hn * 0.5, h * _u(rng, 0.4, 0.7)
        xo = r + _u(rng, 0.1, 0.25)
        parts.append(("handle", _bar((rn * 0.5, ya, 0), (xo, ya, 0), rt)))
        parts.append(("handle", _bar((xo, ya, 0), (xo, yb, 0), rt)))
        parts.append(("handle", _bar((xo, yb, 0), (r * 0.5, yb, 0), rt)))
    return parts


def _bookshelf_wide(rng: Rng) -> list[tuple[str, Node]]:
    kind = _pick(rng, ["case", "case", "stair", "grid", "etagere", "ladder"])
    W, H, D = _u(rng, 0.6, 2.4), _u(rng, 0.6, 2.4), _u(rng, 0.25, 0.9)
    t = _u(rng, 0.14, 0.28)
    parts: list[tuple[str, Node]] = []
    if kind == "etagere":  # shelves on four corner posts, open on every side
        rp = _u(rng, 0.07, 0.1)
        for sx in (-1, 1):
            for sz in (-1, 1):
                post = (sx * (W / 2 - rp), H / 2, sz * (D / 2 - rp))
                parts.append(("side", Cylinder(rp, H / 2, post) if rng.random() < 0.5 else Box((rp, H / 2, rp), post)))
        n = int(rng.integers(2, 6))
        for y in np.linspace(_u(rng, 0.1, 0.3) * H, H - 0.07, n):
            parts.append(("shelf", Box((W / 2, 0.07, D / 2), (0, float(y), 0))))
        return parts
    if kind == "ladder":  # a leaning ladder shelf: two rails, shelves growing deeper downwards
        lean = _u(rng, 0.15, 0.4)
        for sx in (-1, 1):
            x = sx * (W / 2 - t / 2)
            parts.append(("side", _bar((x, 0.08, D), (x, H, D - H * math.tan(lean)), 0.08)))
            parts.append(("side", _bar((x, 0.08, 0.0), (x, H * 0.9, D - H * 0.9 * math.tan(lean)), 0.08)))
        n = int(rng.integers(2, 6))
        for f in np.linspace(0.1, 0.85, n):
            y = f * H
            zf = D - y * math.tan(lean)
            depth = max(0.2, zf - 0.0 - (1 - f) * 0.0) * (1 - 0.6 * f) + 0.16
            parts.append(("shelf", Box((W / 2 - 0.05, 0.07, depth / 2), (0, y, zf - depth / 2 + 0.05))))
        return parts
    plinth = _pick(rng, ["none", "plinth", "legs"])
    y0 = 0.0 if plinth == "none" else _u(rng, 0.1, 0.3)
    if kind == "grid":  # a grid of equal open cubes
        nc, nr = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        cell = _u(rng, 0.35, 0.6)
        W, H = nc * cell + t, nr * cell + t + y0
    n_cols = 1 + (int(rng.integers(0, 4)) if W > 1.0 else 0) if kind != "grid" else nc
    xs = np.linspace(-W / 2 + t / 2, W / 2 - t / 2, n_cols + 1)
    if kind == "stair":  # columns stepping down from one side
        n_cols = max(n_cols, 2)
        xs = np.linspace(-W / 2 + t / 2, W / 2 - t / 2, n_cols + 1)
        heights = list(np.linspace(H, H * _u(rng, 0.25, 0.6), n_cols))
    else:
        heights = [H] * n_cols
    for k, x in enumerate(xs):  # uprights: each as tall as the taller column beside it
        hk = max(heights[max(k - 1, 0)], heights[min(k, n_cols - 1)])
        parts.append(("side", Box((t / 2, (hk - y0) / 2, D / 2), (float(x), y0 + (hk - y0) / 2, 0))))
    over = _u(rng, 0.0, 0.12) if kind == "case" else 0.0
    same = rng.random() < 0.5  # the same shelves in every column, or each column its own
    n = int(rng.integers(1, 6)) if kind != "grid" else nr - 1
    cuts = np.linspace(0, 1, n + 2)[1:-1]
    for k in range(n_cols):
        x0, x1, hk = float(xs[k]), float(xs[k + 1]), heights[k]
        cx, hx = (x0 + x1) / 2, (x1 - x0) / 2 + t / 2
        parts.append(("shelf", Box((hx, t / 2, D / 2), (cx, y0 + t / 2, 0))))
        parts.append(("shelf", Box((hx + (over if k in (0, n_cols - 1) else 0), t / 2, D / 2 + over / 2),
                                   (cx, hk - t / 2, over / 2))))
        if not same and kind != "grid":
            n = int(rng.integers(1, 5))
            cuts = np.sort(rng.uniform(0.1, 0.9, n))
        ys: list[float] = [y0 + t / 2]  # shelves at least t + 0.16 apart (no slit thinner than two cells)
        for f in cuts:
            y = y0 + t + f * (hk - y0 - 2 * t)
            if y - ys[-1] >= t + 0.16 and hk - t / 2 - y >= t + 0.16:
                ys.append(float(y))
                parts.append(("shelf", Box((hx, t / 2, D / 2 - 0.02), (cx, float(y), 0.01))))
        if rng.random() < 0.25 and kind != "grid" and hx > 0.3:  # two doors on the lower part (a cabinet)
            hd = _u(rng, 0.25, 0.6) * (hk - y0)  # a 0.16 gap between the leaves: no closed void inside
            for sx in (-1, 1):
                parts.append(("door", Box((hx / 2 - 0.08, hd / 2, 0.07), (cx + sx * (hx / 2 + 0.04), y0 + hd / 2,
                                                                          D / 2 + 0.03))))
    if plinth == "plinth":
        parts.append(("side", Box((W / 2 - 0.05, y0 / 2 + 0.02, D / 2 - 0.05), (0, y0 / 2, -0.03))))
    elif plinth == "legs":
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(("side", Box((0.08, y0 / 2 + 0.02, 0.08), (sx * (W / 2 - 0.1), y0 / 2, sz * (D / 2 - 0.1)))))
    if rng.random() < 0.6:
        hb = min(heights)
        parts.append(("back", Box((W / 2 - 0.02, (hb - y0) / 2 - 0.02, 0.07), (0, y0 + (hb - y0) / 2, -D / 2 + 0.07))))
    return parts


_WIDE_BUILDERS: dict[str, Builder] = {
    "chair": _chair_wide,
    "table": _table_wide,
    "airplane": _airplane_wide,
    "car": _car_wide,
    "lamp": _lamp_wide,
    "mug": _mug_wide,
    "sofa": _sofa_wide,
    "bench": _bench_wide,
    "bottle": _bottle_wide,
    "bookshelf": _bookshelf_wide,
}


CATEGORIES: tuple[str, ...] = tuple(_BUILDERS)
"""The category names of ShapeNet-lite; the index of a name is its class label."""

_VARIETY_BUILDERS: dict[str, dict[str, Builder]] = {"base": _BUILDERS, "wide": _WIDE_BUILDERS}
VARIETIES: tuple[str, ...] = tuple(_VARIETY_BUILDERS)
"""The families of ShapeNet-lite: ``"base"`` (the course's shapes, the default of :func:`make_shape`) and
``"wide"`` (opt-in: more parameters, part types and topology changes per category, issue #32 item 6)."""


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


def check_variety(variety: Any) -> str:
    """Return ``variety`` if it is one of :data:`VARIETIES`, else raise a ``ValueError`` listing them."""
    if not isinstance(variety, str) or variety not in VARIETIES:
        raise ValueError(f"Unknown ShapeNet-lite variety {variety!r}. Valid varieties are: {', '.join(VARIETIES)}")
    return variety


def _category_rng(category: str, seed: int, variety: str = "base") -> Rng:
    salt = zlib.crc32(category.encode("utf-8"))
    if variety == "base":  # the course's shapes: this stream must never change
        return np.random.default_rng(np.random.SeedSequence([salt, seed]))
    return np.random.default_rng(np.random.SeedSequence([salt, seed, zlib.crc32(variety.encode("utf-8"))]))


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

    def __init__(self, category: str, seed: int, raw_parts: Sequence[tuple[str, Node]],
                 variety: str = "base") -> None:
        self.category = category
        self.seed = seed
        self.variety = variety
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
        v = "" if self.variety == "base" else f", variety={self.variety!r}"
        return f"Shape(category={self.category!r}, seed={self.seed}{v}, parts={self.parts})"

    def key(self) -> str:
        """What identifies the shape in a cache key: category, seed, generator version and (other than the base
        one) its family, as :meth:`course_lib.experiments.mesh_shape.MeshShape.key` identifies a real mesh."""
        return f"{self.category}-{self.seed}-{GENERATOR_VERSION}" + family_tag(self.variety)

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
        # A point that lands exactly on a face (in float32 it often does) can sit where the SDF's
        # distance term is sqrt(0) and autograd gives a zero gradient there (a capped cone's flat cap).
        # Re-evaluate those points in float64, where the face is not hit exactly; other normals are unchanged.
        flat = torch.linalg.vector_norm(g, dim=-1) < 0.5
        if bool(flat.any()) and p.dtype != torch.float64:
            _, g64 = self.gradient(p[flat].double())
            g = g.clone()
            g[flat] = g64.to(g.dtype)
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


def make_shape(category: str, seed: int, variety: str | None = None) -> Shape:
    """The shape number ``seed`` of ``category`` (deterministic on every machine).

    Introduced in ``lectures/01_data_and_representations.ipynb``.

    >>> s = make_shape("chair", 0)
    >>> s.label == CATEGORIES.index("chair")
    True

    Raises ``ValueError`` listing the valid categories for an unknown category, and
    ``TypeError``/``ValueError`` for a seed that is not an integer in ``[0, MAX_SEED]``.
    The 64 most recently made shapes are cached: the same call returns the same object.

    ``variety`` picks the family (:data:`VARIETIES`; default: ``COURSE_VARIETY``, :func:`course_lib.config.variety`,
    itself ``"base"`` when unset): ``"base"`` gives the course's shapes, unchanged; ``"wide"`` an opt-in family with
    more parameters, part types and topology changes per category (chairs on swivel bases, sleds or cantilevers, stools, armchairs; tables on trestles or
    drawer blocks; delta wings, twin tails, propellers; ...), drawn from its own random stream, so that
    ``make_shape(c, s, variety="wide")`` is unrelated to ``make_shape(c, s)``.  An unknown variety raises
    ``ValueError`` listing the valid ones.  Datasets and caches (:class:`course_lib.data.ShapeNetLite`) make the
    ``COURSE_VARIETY`` family and keep a family other than the base one in its own cache folder.
    """
    seed = check_seed(seed)
    if variety is None:
        from course_lib.config import variety as active_variety

        variety = active_variety()
    variety = check_variety(variety)
    if split_of(seed) == "test":
        check_test_read(f"test shape {category!r} seed {seed}")
    return _make_shape_cached(check_category(category), seed, variety)


@functools.lru_cache(maxsize=64)
def _make_shape_cached(category: str, seed: int, variety: str = "base") -> Shape:
    # recently used shapes are kept (with their cached meshes): notebooks ask for the same ones often
    parts = _VARIETY_BUILDERS[variety][category](_category_rng(category, seed, variety))
    return Shape(category, seed, parts, variety)
