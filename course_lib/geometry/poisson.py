"""Poisson surface reconstruction from oriented points, with an FFT solver in torch.

Introduced in ``lectures/01_data_and_representations.ipynb`` (points to mesh); used again in
``lectures/06_surfaces.ipynb`` as the classical contrast to learned surfaces.

Method (after Kazhdan, Bolitho and Hoppe, "Poisson Surface Reconstruction", SGP 2006):
the indicator function ``chi`` of the solid (1 inside, 0 outside) has a gradient
that is zero everywhere except on the surface, where it equals the *inward*
normal times a surface delta.  The oriented samples give a discrete version ``V``
of that vector field (normals splatted on a grid), so ``grad chi = -V`` in the
least-squares sense, i.e. the Poisson equation ``laplacian chi = -div V``.

This implementation solves it on a regular periodic grid with the FFT:
``chi_hat(k) = i k . V_hat(k) / |k|^2`` (``k`` the angular wave vector), after
smoothing ``V`` with a Gaussian of ``smoothing`` cells.  The surface is the level
set of ``chi`` at its mean value over the input points, extracted with marching
cubes.

Limits (say so when you use it)
-------------------------------
* A dense grid: memory ``O(R^3)``, detail limited by the cell size ``2 L / R``
  (no octree as in the paper, so no adaptivity).
* Periodic boundary: the data are padded by ``padding`` of their extent on each
  side; too little padding lets opposite sides interact.
* All samples get the same weight: a strongly non-uniform density biases the
  surface (the paper weights samples by a density estimate).
* Normals must be consistently oriented (outward) and the surface closed; holes
  are filled smoothly, thin parts narrower than ~2 cells can vanish.
* No screening term (as in screened Poisson, 2013): the surface may drift from the
  points by a fraction of a cell, more where the curvature is high.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import trimesh
from torch import Tensor

from .mc import marching_cubes

__all__ = ["poisson_reconstruct", "poisson_indicator"]


def _as_tensor(x: Any, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array (N, 3), got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {tuple(x.shape)}")
    return x


def _trilinear_weights(g: Tensor, R: int) -> tuple[Tensor, Tensor]:
    """Periodic trilinear stencil of grid coordinates ``g (N, 3)``: flat indices (N, 8), weights (N, 8)."""
    base = torch.floor(g)
    frac = g - base
    base = base.long()
    idx, w = [], []
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                off = torch.tensor([dx, dy, dz], device=g.device)
                c = (base + off) % R
                idx.append((c[:, 0] * R + c[:, 1]) * R + c[:, 2])
                wx = frac[:, 0] if dx else 1 - frac[:, 0]
                wy = frac[:, 1] if dy else 1 - frac[:, 1]
                wz = frac[:, 2] if dz else 1 - frac[:, 2]
                w.append(wx * wy * wz)
    return torch.stack(idx, 1), torch.stack(w, 1)


def poisson_indicator(points: Any, normals: Any, resolution: int = 64, *, padding: float = 0.25,
                      smoothing: float = 1.0) -> tuple[Tensor, Tensor, float, float]:
    """Solve for the indicator grid; returns ``(chi (R, R, R), origin (3,), spacing, iso_level)``.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  Node ``[i, j, k]`` is at
    ``origin + spacing * (i, j, k)``; ``chi`` is larger inside.  Runs on the device of
    ``points``, in float64 on CPU and float32 elsewhere.
    """
    p = _as_tensor(points, "points")
    n = _as_tensor(normals, "normals")
    if p.shape[0] != n.shape[0]:
        raise ValueError(f"points and normals differ in length: {p.shape[0]} vs {n.shape[0]}")
    if p.shape[0] < 4:
        raise ValueError(f"need at least 4 oriented points, got {p.shape[0]}")
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 8:
        raise ValueError(f"resolution must be an int >= 8, got {resolution!r}")
    if not padding > 0:
        raise ValueError(f"padding must be positive, got {padding}")
    R = int(resolution)
    dtype = torch.float64 if p.device.type == "cpu" else torch.float32
    p = p.to(dtype)
    n = n.to(device=p.device, dtype=dtype)
    if not (torch.isfinite(p).all() and torch.isfinite(n).all()):
        raise ValueError("points and normals must be finite")
    n = n / n.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    lo, hi = p.min(0).values, p.max(0).values
    center = 0.5 * (lo + hi)
    half = float((hi - lo).max()) / 2
    if half <= 0:
        raise ValueError("points are all identical")
    L = half * (1 + 2 * padding)
    h = 2 * L / R
    origin = center - L
    g = (p - origin) / h
    idx, w = _trilinear_weights(g, R)
    V = torch.zeros(3, R * R * R, dtype=dtype, device=p.device)
    for a in range(3):
        V[a].index_add_(0, idx.reshape(-1), (w * n[:, a:a + 1]).reshape(-1))
    V = V.reshape(3, R, R, R)
    Vh = torch.fft.fftn(V, dim=(1, 2, 3))
    f = torch.fft.fftfreq(R, d=h, device=p.device, dtype=dtype) * (2 * math.pi)
    kx, ky, kz = torch.meshgrid(f, f, f, indexing="ij")
    k2 = kx**2 + ky**2 + kz**2
    gauss = torch.exp(-0.5 * k2 * (smoothing * h) ** 2)
    div = 1j * (kx * Vh[0] + ky * Vh[1] + kz * Vh[2])
    k2[0, 0, 0] = 1.0
    chi_h = div * gauss / k2
    chi_h[0, 0, 0] = 0.0
    chi = torch.fft.ifftn(chi_h).real
    # iso level: mean of chi at the samples (trilinear interpolation)
    vals = (chi.reshape(-1)[idx] * w).sum(1)
    iso = float(vals.mean())
    return chi, origin, h, iso


def poisson_reconstruct(points: Any, normals: Any, resolution: int = 64, *, padding: float = 0.25,
                        smoothing: float = 1.0, largest_component: bool = True) -> trimesh.Trimesh:
    """Watertight mesh from oriented points by (unscreened) Poisson reconstruction on an FFT grid.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  See the module docstring for the
    method and its limits.  ``resolution`` is the number of grid nodes per axis over
    the padded bounding cube; ``largest_component`` drops small spurious pieces.
    """
    chi, origin, h, iso = poisson_indicator(points, normals, resolution, padding=padding, smoothing=smoothing)
    R = chi.shape[0]
    mesh = marching_cubes(-chi, -iso, bound=1.0)
    # marching_cubes maps node index i to -1 + i * 2 / (R - 1); map to the periodic grid instead
    idx = (np.asarray(mesh.vertices) + 1.0) * (R - 1) / 2.0
    mesh.vertices = idx * h + origin.detach().cpu().numpy()
    if largest_component:
        parts = mesh.split(only_watertight=False)
        if len(parts) > 1:
            mesh = max(parts, key=lambda m: len(m.faces))
    return mesh
