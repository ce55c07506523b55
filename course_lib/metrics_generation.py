"""Metrics of generated point-cloud *sets*: MMD, COV and 1-NNA with PointFlow's conventions.

Introduced in ``lectures/10_gradient_fields.ipynb`` (chapter 11 folds them into
:mod:`course_lib.metrics`).

A generative model is judged by comparing a set of ``S`` generated clouds with a set of
``R`` reference (held-out) clouds through a distance between clouds ``d`` (Chamfer or EMD).
With ``M_rs[r, s] = d(ref_r, sample_s)`` (PointFlow, ``metrics/evaluation_metrics.py``,
``compute_all_metrics``; Achlioptas et al. 2018 for MMD and COV; Lopez-Paz and Oquab 2017
for 1-NNA):

* **MMD** (minimum matching distance): for each *reference*, the distance to its closest
  sample, averaged over references (fidelity: are the references well matched?).
  ``mmd_smp`` is the other direction, also returned by PointFlow's code.
* **COV** (coverage): for each *sample*, its closest reference; the fraction of references
  chosen at least once (diversity: are all references used?).
* **1-NNA** (1-nearest-neighbour accuracy): put both sets together, classify every cloud by
  the set of its nearest *other* cloud (leave-one-out); the accuracy is 50% when the two
  sets are indistinguishable and 100% when they are separable.  ``acc_t`` / ``acc_f`` are
  the accuracies on the references / the samples.

Conventions (PointFlow): Chamfer is the sum of the two mean *squared* nearest-neighbour
distances (``course_lib.ops.chamfer_distance`` defaults), EMD the mean *unsquared* matched
distance; papers print MMD-CD x1e3, MMD-EMD x1e2, COV and 1-NNA in %.  The functions here
return raw values; :data:`SCALES` names the printed scales.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["SCALES", "pairwise_distances", "mmd_cov", "one_nna", "generation_metrics", "occupancy_histogram",
           "jsd_voxels"]

SCALES = {"mmd-cd": 1e3, "mmd-emd": 1e2, "cov": 100.0, "1-nna": 100.0, "jsd": 1e2}
"""The scales PointFlow's tables print the metrics with (MMD-CD x1e3, MMD-EMD x1e2, COV and 1-NNA in %,
JSD x1e2)."""

_METRICS = ("cd", "emd")


def _check_set(x: Any, name: str) -> Tensor | list[Tensor]:
    """A batched set ``(S, N, 3)``, or a ragged one (a list of ``(N_i, 3)`` clouds; stacked when the sizes agree)."""
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError(f"{name} is an empty list of clouds")
        for i, c in enumerate(x):
            if not isinstance(c, Tensor) or c.dim() != 2 or c.shape[-1] != 3 or c.shape[0] == 0:
                raise ValueError(f"{name}[{i}] must be a non-empty (N, 3) tensor, got "
                                 f"{tuple(getattr(c, 'shape', ())) or type(c).__name__}")
            if not c.is_floating_point():
                raise TypeError(f"{name}[{i}] must be floating point, got {c.dtype}")
            if c.device != x[0].device:
                raise ValueError(f"{name}[{i}] is on {c.device}, {name}[0] on {x[0].device}")
        if len({c.shape[0] for c in x}) == 1:
            return torch.stack(list(x))
        return list(x)
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3 or x.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (S, N, 3) (a set of clouds), got {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {x.dtype}")
    return x


def _cloud_distance(metric: str | Callable[[Tensor, Tensor], Tensor], emd_method: str) -> Callable[[Tensor, Tensor], Tensor]:
    if callable(metric):
        return metric
    if metric == "cd":
        from .ops import chamfer_distance

        return lambda a, b: chamfer_distance(a, b, reduction="none")
    if metric == "emd":
        from .ops import emd

        return lambda a, b: emd(a, b, method=emd_method, reduction="none").cost
    raise ValueError(f"metric must be one of {_METRICS} or a callable, got {metric!r}")


@torch.no_grad()
def pairwise_distances(a: Tensor, b: Tensor, metric: str | Callable[[Tensor, Tensor], Tensor] = "cd", *,
                       batch_size: int = 64, emd_method: str = "exact", progress: bool = False) -> Tensor:
    """``D[i, j] = d(a_i, b_j)`` ``(A, B)`` for two sets of clouds ``(A, N, 3)`` and ``(B, M, 3)``.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  ``metric``: ``"cd"`` (PointFlow's
    Chamfer, squared, the two means summed, no scale), ``"emd"`` (mean unsquared matched
    distance; needs ``N == M``) or a callable ``d(x (K, N, 3), y (K, M, 3)) -> (K,)``.
    Pairs are evaluated ``batch_size`` at a time.  Either set may be *ragged*: a list of
    ``(N_i, 3)`` clouds of different sizes (then each pair is evaluated on its own).
    When ``b is a`` (one set against itself) and ``metric`` is built in, only the pairs ``i < j`` are
    evaluated (both distances are symmetric and zero between a cloud and itself).
    """
    from tqdm.auto import tqdm

    same = a is b
    a = _check_set(a, "a")
    b = a if same else _check_set(b, "b")
    if isinstance(a, list) or isinstance(b, list):
        return _pairwise_ragged(list(a), list(b), metric, emd_method, progress)
    if a.device != b.device:
        raise ValueError(f"a and b are on different devices: {a.device} and {b.device}")
    if metric == "emd" and a.shape[1] != b.shape[1]:
        raise ValueError(f"EMD needs clouds of equal size, got {a.shape[1]} and {b.shape[1]} points")
    dist = _cloud_distance(metric, emd_method)
    na, nb = a.shape[0], b.shape[0]
    if same and not callable(metric):
        # one set against itself: the built-in distances are symmetric and zero on the diagonal,
        # so only the pairs i < j are evaluated (half the cost of the exact EMD's matchings)
        ii, jj = torch.triu_indices(na, na, 1, device=a.device)
    else:
        ii, jj = torch.meshgrid(torch.arange(na, device=a.device), torch.arange(nb, device=a.device), indexing="ij")
        ii, jj = ii.reshape(-1), jj.reshape(-1)
    vals = torch.empty(len(ii), dtype=a.dtype, device=a.device)
    for k in tqdm(range(0, len(ii), batch_size), desc=f"pairwise {metric}", disable=not progress):
        i, j = ii[k:k + batch_size], jj[k:k + batch_size]
        vals[k:k + batch_size] = dist(a[i], b[j].to(a.dtype))
    out = torch.zeros(na, nb, dtype=a.dtype, device=a.device)
    out[ii, jj] = vals
    if same and not callable(metric):
        out[jj, ii] = vals
    return out


def _pairwise_ragged(a: list[Tensor], b: list[Tensor], metric: Any, emd_method: str, progress: bool) -> Tensor:
    from tqdm.auto import tqdm

    if a[0].device != b[0].device:
        raise ValueError(f"a and b are on different devices: {a[0].device} and {b[0].device}")
    dist = _cloud_distance(metric, emd_method)
    out = torch.empty(len(a), len(b), dtype=a[0].dtype, device=a[0].device)
    for i in tqdm(range(len(a)), desc=f"pairwise {metric} (ragged)", disable=not progress):
        for j in range(len(b)):
            if metric == "emd" and a[i].shape[0] != b[j].shape[0]:
                raise ValueError(f"EMD needs clouds of equal size: a[{i}] has {a[i].shape[0]} points, "
                                 f"b[{j}] {b[j].shape[0]}")
            out[i, j] = dist(a[i][None], b[j][None].to(a[i].dtype))[0]
    return out


def _check_matrix(m: Any, name: str) -> Tensor:
    if not isinstance(m, Tensor) or m.dim() != 2 or 0 in m.shape:
        raise ValueError(f"{name} must be a non-empty 2D tensor, got {getattr(m, 'shape', type(m).__name__)}")
    if bool(torch.isnan(m).any()):
        raise ValueError(f"{name} contains NaN")
    return m


def mmd_cov(m_rs: Tensor) -> dict[str, float]:
    """MMD, its sample-side twin and COV from ``M_rs[r, s] = d(ref_r, sample_s)`` ``(R, S)``.

    Introduced in ``lectures/10_gradient_fields.ipynb``.  PointFlow's ``lgan_mmd_cov``
    (which receives ``M_rs.t()``): ``mmd = mean_r min_s M_rs``, ``mmd_smp = mean_s min_r M_rs``,
    ``cov = |{argmin_r M_rs[:, s] : s}| / R``.
    """
    m = _check_matrix(m_rs, "m_rs")
    n_ref = m.shape[0]
    mmd = m.min(dim=1).values.mean()
    mmd_smp = m.min(dim=0).values.mean()
    matched = m.argmin(dim=0)
    cov = torch.unique(matched).numel() / n_ref
    return {"mmd": float(mmd), "mmd_smp": float(mmd_smp), "cov": float(cov)}


def one_nna(m_rr: Tensor, m_ss: Tensor, m_rs: Tensor) -> dict[str, float]:
    """1-NN two-sample accuracy from the three distance matrices (refs ``R``, samples ``S``).

    Introduced in ``lectures/10_gradient_fields.ipynb``.  PointFlow's ``knn(..., k=1)``:
    the ``(R + S)^2`` matrix ``[[M_rr, M_rs], [M_rs^T, M_ss]]`` with ``+inf`` on the
    diagonal, labels 1 for references and 0 for samples, each cloud predicted with the label
    of its nearest other cloud.  Returns ``{"acc", "acc_t", "acc_f"}`` (overall, on the
    references, on the samples); 0.5 is ideal, 1.0 the worst.
    """
    m_rr = _check_matrix(m_rr, "m_rr")
    m_ss = _check_matrix(m_ss, "m_ss")
    m_rs = _check_matrix(m_rs, "m_rs")
    r, s = m_rs.shape
    if m_rr.shape != (r, r) or m_ss.shape != (s, s):
        raise ValueError(f"shapes do not fit: m_rr {tuple(m_rr.shape)}, m_ss {tuple(m_ss.shape)}, "
                         f"m_rs {tuple(m_rs.shape)} (expected ({r}, {r}), ({s}, {s}), ({r}, {s}))")
    if r + s < 2:
        raise ValueError("1-NNA needs at least two clouds in all")
    full = torch.cat([torch.cat([m_rr, m_rs], 1), torch.cat([m_rs.t(), m_ss], 1)], 0).double().clone()
    full.fill_diagonal_(float("inf"))
    label = torch.cat([torch.ones(r), torch.zeros(s)]).to(full.device)
    pred = label[full.argmin(dim=1)]
    correct = (pred == label).double()
    return {"acc": float(correct.mean()), "acc_t": float(correct[:r].mean()), "acc_f": float(correct[r:].mean())}


def generation_metrics(samples: Tensor, refs: Tensor, metric: str = "cd", *, batch_size: int = 64,
                       emd_method: str = "exact", progress: bool = False) -> dict[str, float]:
    """MMD, COV and 1-NNA of ``samples`` ``(S, N, 3)`` against ``refs`` ``(R, N, 3)`` under ``metric``
    (either may be a ragged list of ``(N_i, 3)`` clouds).

    Introduced in ``lectures/10_gradient_fields.ipynb``.  Keys ``"mmd"``, ``"mmd_smp"``,
    ``"cov"``, ``"1-nna"``, ``"1-nna_t"``, ``"1-nna_f"`` (raw values: multiply by
    :data:`SCALES` to print as the papers do).  Cost: ``(R + S)^2`` cloud distances.
    """
    samples = _check_set(samples, "samples")
    refs = _check_set(refs, "refs")
    kw: dict[str, Any] = {"batch_size": batch_size, "emd_method": emd_method, "progress": progress}
    m_rs = pairwise_distances(refs, samples, metric, **kw)
    m_rr = pairwise_distances(refs, refs, metric, **kw)
    m_ss = pairwise_distances(samples, samples, metric, **kw)
    out = mmd_cov(m_rs)
    nna = one_nna(m_rr, m_ss, m_rs)
    out.update({"1-nna": nna["acc"], "1-nna_t": nna["acc_t"], "1-nna_f": nna["acc_f"]})
    return out


def occupancy_histogram(clouds: Tensor, resolution: int = 28, bound: float = 1.0) -> Tensor:
    """How many points of a set of clouds fall nearest to each node of a ``resolution^3`` grid.

    Introduced with :func:`jsd_voxels`.  The grid's nodes are evenly spaced on
    ``[-bound, bound]^3`` (PointFlow's ``unit_cube_grid_point_cloud`` on its own scale); each point
    counts for its nearest node (points outside the box count for the nearest boundary node, as
    a nearest-neighbour search does).  ``clouds`` ``(S, N, 3)``; returns ``(resolution^3,)`` float64
    counts, nodes in ``x``-major order.
    """
    clouds = _check_set(clouds, "clouds")
    if isinstance(clouds, list):
        clouds = torch.cat(clouds)[None]
    if int(resolution) < 2:
        raise ValueError(f"resolution must be at least 2, got {resolution}")
    if not bound > 0:
        raise ValueError(f"bound must be positive, got {bound}")
    r = int(resolution)
    step = 2.0 * float(bound) / (r - 1)
    idx = torch.round((clouds.reshape(-1, 3).double() + float(bound)) / step).clamp(0, r - 1).long()
    flat = (idx[:, 0] * r + idx[:, 1]) * r + idx[:, 2]
    return torch.bincount(flat.cpu(), minlength=r ** 3).double()


def jsd_voxels(samples: Tensor, refs: Tensor, resolution: int = 28, bound: float = 1.0) -> float:
    """Jensen-Shannon divergence between the point occupancy of two sets of clouds (PointFlow's JSD).

    Introduced with :func:`generation_metrics`.  ``P`` and ``Q`` are :func:`occupancy_histogram`
    of the samples and of the references, normalised to sum 1;
    ``JSD = H((P + Q) / 2) - (H(P) + H(Q)) / 2`` with natural logarithms (PointFlow's
    ``jsd_between_point_cloud_sets``, resolution 28).  It compares the *marginal* distribution of
    points in space, so it ignores which points belong to which shape: a set of perfect shapes in
    the wrong proportions scores badly, a set of blobs with the right mean occupancy scores well.
    Returns a float in ``[0, log 2]``.
    """
    p = occupancy_histogram(samples, resolution, bound)
    q = occupancy_histogram(refs, resolution, bound)
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def entropy(x: Tensor) -> Tensor:
        nz = x > 0
        return -(x[nz] * torch.log(x[nz])).sum()

    return float(entropy(m) - 0.5 * (entropy(p) + entropy(q)))
