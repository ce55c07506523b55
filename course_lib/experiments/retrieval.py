"""How held out is held out: test shapes against their nearest training shapes, and the retrieval baseline.

Introduced in ``lectures/01_data_and_representations.ipynb`` (section "How held out is the test split?")
and measured by ``benchmarks/splits.py``.

A reconstruction is only as impressive as the distance between the test shapes and the shapes the
model was trained on: if every test shape has a near-copy in the training set, a network that
*retrieves* the nearest training shape already scores well (Tatarchenko et al., "What Do
Single-view 3D Reconstruction Networks Learn?", CVPR 2019, found exactly that for single-view
reconstruction on ShapeNet).  This module measures it and gives every chapter that retrieval row:

* :func:`chamfer_matrix`: Chamfer distances between every cloud of one set and every cloud of another
  (or of the same set, symmetric), ``chunk`` pairs at a time, on the clouds' device;
* :func:`nearest_training_distances`: per test shape, its nearest training shape (distance, index);
* :func:`leave_one_out_distances`: per training shape, its nearest *other* training shape;
* :func:`oracle_distances`: per shape, the distance between two independent samplings of its surface
  (``load_split`` representations ``"target_points"`` and ``"oracle_points"``): the level of a perfect
  reconstruction scored against a finite sampling;
* :func:`retrieve`: the retrieval baseline: the nearest training shape chosen by an oracle (Chamfer to
  the test target, an upper bound no method can use) or by the encoder's latent code (L2 between codes,
  the baseline a real system could run);
* :func:`split_summary`, :func:`summarize_splits`, :func:`format_splits_table`, :func:`describe_splits`:
  per-category medians and ratios, and the sentence a lecture prints from them;
* :func:`format_chapter_rows`: the retrieval rows that ``benchmarks/retrieval.py`` measured beside a
  chapter's models (chapters 05, 07 and 10), as the table their lectures print;
* :func:`memoriser_indices`, :func:`stratified_indices`, :func:`one_nna_subset`,
  :func:`expected_one_nna`: the memorising "generator" of chapter 10 (training shapes drawn at
  random) and its 1-NNA computed from precomputed distance matrices, many draws at the cost of one.

Every distance here is in :data:`CONVENTION` unless ``squared`` / ``directions`` say otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from course_lib.metrics import describe_chamfer

__all__ = [
    "CONVENTION",
    "Nearest",
    "Retrieval",
    "chamfer_matrix",
    "nearest_from_matrix",
    "nearest_training_distances",
    "leave_one_out_distances",
    "oracle_distances",
    "retrieve",
    "split_summary",
    "summarize_splits",
    "format_splits_table",
    "describe_splits",
    "memoriser_indices",
    "stratified_indices",
    "one_nna_subset",
    "expected_one_nna",
    "format_chapter_rows",
    "show_chapter",
]

CONVENTION = (describe_chamfer("pointflow", scale=1) + " (PointFlow's and ShapeGF's formula; the 'cd' of "
              "course_lib.metrics_generation)")
"""The convention of every distance of this module (and of ``benchmarks/splits.py``) by default."""

_BY = ("oracle", "latent")


class Nearest(NamedTuple):
    """Per query: the distance to its nearest cloud of a set, and that cloud's index in the set."""

    distance: Tensor
    index: Tensor


class Retrieval(NamedTuple):
    """The retrieval baseline's answer: the training ``index``, its ``clouds`` and the ``distance`` that chose it
    (Chamfer to the test target for ``by="oracle"``, L2 between codes for ``by="latent"``)."""

    index: Tensor
    clouds: Tensor
    distance: Tensor


# ---------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------
def _cloud_set(x: Any, name: str, *, allow_single: bool = False) -> tuple[Tensor, bool]:
    """``x`` as a set of clouds ``(S, N, 3)``; ``allow_single`` accepts one cloud ``(N, 3)`` (returned as S=1)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of clouds (S, N, 3), got {type(x).__name__}")
    single = False
    if x.dim() == 2 and allow_single:
        x, single = x.unsqueeze(0), True
    if x.dim() != 3 or x.shape[-1] != 3:
        want = "(S, N, 3) or one cloud (N, 3)" if allow_single else "(S, N, 3) (a set of clouds)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} holds no cloud (shape {tuple(x.shape)})")
    if x.shape[1] == 0:
        raise ValueError(f"{name} holds empty clouds (shape {tuple(x.shape)}): a cloud needs at least one point")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf coordinates")
    return x, single


def _positive_int(v: Any, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return v


def _same_device(a: Tensor, b: Tensor, an: str, bn: str) -> None:
    if a.device != b.device:
        raise ValueError(f"{an} is on {a.device} but {bn} is on {b.device}; move them to one device")


def _pair_distances(x: Tensor, y: Tensor, squared: bool, directions: str) -> Tensor:
    from course_lib.metrics import chamfer

    return chamfer(x, y, squared=squared, directions=directions, reduction="none")


# ---------------------------------------------------------------------------
# distances
# ---------------------------------------------------------------------------
@torch.no_grad()
def chamfer_matrix(a: Tensor, b: Tensor | None = None, *, squared: bool = True, directions: str = "sum",
                   chunk: int = 256) -> Tensor:
    """Chamfer distances ``D[i, j] = CD(a_i, b_j)`` ``(A, B)`` between two sets of clouds.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  ``a`` ``(A, N, 3)``, ``b``
    ``(B, M, 3)`` (point counts may differ) on one device; the result is on that device, in ``a``'s
    dtype.  With ``b=None`` the matrix of ``a`` with itself: only the pairs ``i < j`` are computed
    (Chamfer is symmetric), the diagonal is exactly 0.  ``chunk`` pairs go through
    :func:`course_lib.metrics.chamfer` at once (memory ``O(chunk * (N + M))``).  Convention:
    :data:`CONVENTION` with the defaults; ``squared=False`` / ``directions="mean"`` give the others of
    :func:`course_lib.metrics.chamfer` (OccNet's "Chamfer-L1" is ``squared=False, directions="mean"``).
    """
    a, _ = _cloud_set(a, "a")
    chunk = _positive_int(chunk, "chunk")
    if directions not in ("sum", "mean"):
        raise ValueError(f"directions must be 'sum' or 'mean', got {directions!r}")
    symmetric = b is None
    if symmetric:
        b = a
    else:
        b, _ = _cloud_set(b, "b")
        _same_device(a, b, "a", "b")
        b = b.to(a.dtype)
    na, nb = a.shape[0], b.shape[0]
    out = torch.zeros(na, nb, dtype=a.dtype, device=a.device)
    if symmetric:
        ii, jj = torch.triu_indices(na, na, offset=1, device=a.device)
    else:
        ii, jj = torch.meshgrid(torch.arange(na, device=a.device), torch.arange(nb, device=a.device), indexing="ij")
        ii, jj = ii.reshape(-1), jj.reshape(-1)
    for k in range(0, ii.numel(), chunk):
        i, j = ii[k:k + chunk], jj[k:k + chunk]
        out[i, j] = _pair_distances(a[i], b[j], squared, directions).to(a.dtype)
    if symmetric:
        out = out + out.t()
    return out


def nearest_from_matrix(d: Tensor, *, exclude_self: bool = False) -> Nearest:
    """Row-wise nearest column of a distance matrix ``(Q, S)``: ``Nearest(distance (Q,), index (Q,))``.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  ``exclude_self`` (a square matrix of
    a set with itself) ignores the diagonal: each row's nearest *other* element (leave-one-out).  Ties
    go to the lowest index.
    """
    if not isinstance(d, Tensor) or d.dim() != 2 or 0 in d.shape:
        raise ValueError(f"d must be a non-empty (Q, S) distance matrix, got {getattr(d, 'shape', type(d).__name__)}")
    if bool(torch.isnan(d).any()):
        raise ValueError("d contains NaN")
    if exclude_self:
        if d.shape[0] != d.shape[1]:
            raise ValueError(f"exclude_self needs a square matrix (a set against itself), got {tuple(d.shape)}")
        if d.shape[0] < 2:
            raise ValueError("leave-one-out needs at least 2 elements: with one, there is no other to be nearest")
        d = d.clone()
        d.fill_diagonal_(float("inf"))
    dist, idx = d.min(dim=1)
    return Nearest(dist, idx)


def nearest_training_distances(test_targets: Tensor, train_points: Tensor, *, squared: bool = True,
                               directions: str = "sum", chunk: int = 256) -> Nearest:
    """Per test shape, the Chamfer distance to its nearest training shape and that shape's index.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  ``test_targets`` ``(Q, N, 3)`` (or
    one cloud ``(N, 3)``, then scalars are returned), ``train_points`` ``(S, M, 3)``; every pair is
    computed (:func:`chamfer_matrix`, ``chunk`` pairs at a time).  Convention: :data:`CONVENTION`.
    Returns :class:`Nearest` ``(distance (Q,), index (Q,))``.
    """
    q, single = _cloud_set(test_targets, "test_targets", allow_single=True)
    t, _ = _cloud_set(train_points, "train_points")
    _same_device(q, t, "test_targets", "train_points")
    res = nearest_from_matrix(chamfer_matrix(q, t, squared=squared, directions=directions, chunk=chunk))
    return Nearest(res.distance[0], res.index[0]) if single else res


def leave_one_out_distances(train_points: Tensor, *, squared: bool = True, directions: str = "sum",
                            chunk: int = 256) -> Nearest:
    """Per training shape, the Chamfer distance to its nearest *other* training shape, and its index.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  The spread of the training set at
    its own size: a test shape drawn from the same distribution sits, in the median, about as far from
    its nearest training shape (it searches ``S`` shapes, a training shape ``S - 1`` others).  A shape is
    never its own neighbour; a duplicated shape finds its copy at distance 0.  Needs ``S >= 2``.
    """
    t, _ = _cloud_set(train_points, "train_points")
    if t.shape[0] < 2:
        raise ValueError("leave_one_out_distances needs at least 2 training shapes (each needs another one)")
    return nearest_from_matrix(chamfer_matrix(t, squared=squared, directions=directions, chunk=chunk),
                               exclude_self=True)


@torch.no_grad()
def oracle_distances(targets: Tensor, oracle_points: Tensor, *, squared: bool = True, directions: str = "sum",
                     chunk: int = 256) -> Tensor:
    """Per shape, the Chamfer distance between two independent samplings of its surface ``(Q,)``.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  ``targets`` and ``oracle_points``
    ``(Q, N, 3)`` hold the same shapes in the same order (``load_split`` representations
    ``"target_points"`` and ``"oracle_points"``, sampling streams 1 and 2).  It is what a perfect
    reconstruction scores against a finite sampling: the yardstick of "near": a training shape within a
    small multiple of it is a near-duplicate.
    """
    x, _ = _cloud_set(targets, "targets")
    y, _ = _cloud_set(oracle_points, "oracle_points")
    _same_device(x, y, "targets", "oracle_points")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"targets and oracle_points must hold the same shapes: {x.shape[0]} and {y.shape[0]} clouds")
    chunk = _positive_int(chunk, "chunk")
    y = y.to(x.dtype)
    return torch.cat([_pair_distances(x[k:k + chunk], y[k:k + chunk], squared, directions)
                      for k in range(0, x.shape[0], chunk)])


# ---------------------------------------------------------------------------
# the retrieval baseline
# ---------------------------------------------------------------------------
def _codes(c: Any, name: str, *, allow_single: bool = False) -> tuple[Tensor, bool]:
    if not isinstance(c, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of codes (S, D), got {type(c).__name__}")
    single = False
    if c.dim() == 1 and allow_single:
        c, single = c.unsqueeze(0), True
    if c.dim() != 2 or 0 in c.shape:
        raise ValueError(f"{name} must be a non-empty (S, D) tensor of latent codes, got {tuple(c.shape)}")
    if not c.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {c.dtype}")
    if not bool(torch.isfinite(c).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return c, single


@torch.no_grad()
def retrieve(train_clouds: Tensor, query: Tensor | None = None, *, by: str = "oracle",
             train_codes: Tensor | None = None, query_codes: Tensor | None = None, squared: bool = True,
             directions: str = "sum", chunk: int = 256) -> Retrieval:
    """The retrieval baseline: for each query, the nearest training shape and its cloud.

    Introduced in ``lectures/01_data_and_representations.ipynb``; chapters add its rows to their
    reconstruction tables (Tatarchenko et al., CVPR 2019).

    * ``by="oracle"``: the training cloud with the smallest Chamfer distance to ``query`` (the test
      *targets* ``(Q, N, 3)`` or one ``(N, 3)``).  It looks at the answer, so it is an upper bound of
      what retrieval can do, not a method.
    * ``by="latent"``: the training shape whose code ``train_codes`` ``(S, D)`` is nearest (L2) to
      ``query_codes`` ``(Q, D)`` or ``(D,)``, the codes an encoder gives the training clouds and the
      test *inputs*: the baseline a real system can run.  ``query`` is not used (it may be ``None``).

    ``train_clouds`` ``(S, M, 3)`` are the clouds returned (the training targets, so that they are
    scored like a prediction).  Returns :class:`Retrieval` ``(index (Q,), clouds (Q, M, 3),
    distance (Q,))`` (without the ``Q`` axis for a single query), on ``train_clouds``' device.
    """
    if by not in _BY:
        raise ValueError(f"by must be one of {_BY}, got {by!r}")
    train, _ = _cloud_set(train_clouds, "train_clouds")
    if by == "oracle":
        if train_codes is not None or query_codes is not None:
            raise ValueError("train_codes / query_codes are used only with by='latent'; by='oracle' compares clouds")
        if query is None:
            raise ValueError("by='oracle' needs query: the test targets (Q, N, 3) to compare with the training clouds")
        q, single = _cloud_set(query, "query", allow_single=True)
        _same_device(q, train, "query", "train_clouds")
        res = nearest_from_matrix(chamfer_matrix(q, train, squared=squared, directions=directions, chunk=chunk))
    else:
        if train_codes is None or query_codes is None:
            raise ValueError("by='latent' needs train_codes (S, D) and query_codes (Q, D): the encoder's codes")
        tc, _ = _codes(train_codes, "train_codes")
        qc, single = _codes(query_codes, "query_codes", allow_single=True)
        if tc.shape[0] != train.shape[0]:
            raise ValueError(f"train_codes has {tc.shape[0]} codes but train_clouds {train.shape[0]} clouds: "
                             "one code per training shape, in the same order")
        if tc.shape[1] != qc.shape[1]:
            raise ValueError(f"code sizes differ: train_codes D={tc.shape[1]}, query_codes D={qc.shape[1]}")
        _same_device(tc, qc, "train_codes", "query_codes")
        res = nearest_from_matrix(torch.cdist(qc, tc.to(qc.dtype)))
    idx = res.index.to(train.device)
    out = Retrieval(idx, train[idx], res.distance)
    return Retrieval(out.index[0], out.clouds[0], out.distance[0]) if single else out


# ---------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------
def _vector(x: Any, name: str) -> Tensor:
    t = torch.as_tensor(x, dtype=torch.float64).detach().cpu()
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of distances, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise ValueError(f"{name} must hold finite distances >= 0")
    return t


def _median(t: Tensor) -> float:
    return float(t.quantile(0.5))  # the mean of the two middle values for an even count (numpy's median)


def split_summary(nearest: Any, oracle: Any, loo: Any, *, factor: float = 2.0) -> dict[str, float]:
    """Medians and ratios of one group of shapes (one category, or all).

    Introduced in ``lectures/01_data_and_representations.ipynb``.  ``nearest`` and ``oracle``: one value
    per test shape (paired: shape ``i``'s distance to its nearest training shape and its oracle
    distance); ``loo``: one value per training shape (:func:`leave_one_out_distances`).  Returns
    ``n_test``, ``n_train``, the medians ``nearest``, ``oracle``, ``loo``, and

    * ``ratio_oracle``: the median over test shapes of ``nearest / oracle`` (how many oracle
      distances away the nearest training shape is), ``ratio_oracle_min``: its smallest value
      (the closest pair);
    * ``ratio_loo``: ``median(nearest) / median(loo)`` (1: a test shape is as far from the training
      set as a training shape from the others);
    * ``frac_within``: the fraction of test shapes with ``nearest <= factor * oracle``
      (near-duplicates at this ``factor``), and ``factor`` itself.
    """
    nr, orc, lo = _vector(nearest, "nearest"), _vector(oracle, "oracle"), _vector(loo, "loo")
    if nr.numel() != orc.numel():
        raise ValueError(f"nearest and oracle must be paired (one value per test shape): {nr.numel()} and "
                         f"{orc.numel()} values")
    if bool((orc <= 0).any()):
        raise ValueError("oracle distances must be > 0 (two independent samplings never coincide); got a zero")
    f = float(factor)
    if not math.isfinite(f) or f <= 0:
        raise ValueError(f"factor must be a finite number > 0, got {factor!r}")
    ratio = nr / orc
    med_loo = _median(lo)
    return {"n_test": int(nr.numel()), "n_train": int(lo.numel()), "nearest": _median(nr), "oracle": _median(orc),
            "loo": med_loo, "ratio_oracle": _median(ratio), "ratio_oracle_min": float(ratio.min()),
            "ratio_loo": _median(nr) / med_loo if med_loo > 0 else math.inf,
            "frac_within": float((nr <= f * orc).double().mean()), "factor": f}


def summarize_splits(groups: Mapping[str, Mapping[str, Any]], *, factor: float = 2.0,
                     pooled: str | None = "all") -> dict[str, dict[str, float]]:
    """:func:`split_summary` of every group (category) and of all of them pooled (key ``pooled``).

    Introduced in ``lectures/01_data_and_representations.ipynb``.  ``groups[name]`` holds
    ``"nearest"``, ``"oracle"`` (per test shape) and ``"loo"`` (per training shape).  The pooled
    row concatenates the groups' values (its ``ratio_oracle`` is the median over every test shape).
    """
    if not groups:
        raise ValueError("groups is empty: no category to summarise")
    if pooled is not None and pooled in groups:
        raise ValueError(f"a group is named {pooled!r}, the name of the pooled row; pass another pooled=")
    out: dict[str, dict[str, float]] = {}
    cols: dict[str, list[Tensor]] = {"nearest": [], "oracle": [], "loo": []}
    for name, g in groups.items():
        missing = [k for k in cols if k not in g]
        if missing:
            raise KeyError(f"group {name!r} lacks {missing} (it needs 'nearest', 'oracle' and 'loo')")
        out[name] = split_summary(g["nearest"], g["oracle"], g["loo"], factor=factor)
        for k in cols:
            cols[k].append(_vector(g[k], k))
    if pooled is not None and len(groups) > 1:
        out[pooled] = split_summary(*(torch.cat(cols[k]) for k in ("nearest", "oracle", "loo")), factor=factor)
    return out


_TABLE_COLUMNS = (("n_test", "test", "{:d}"), ("n_train", "train", "{:d}"), ("oracle", "oracle", "{:.3g}"),
                  ("nearest", "nearest", "{:.3g}"), ("loo", "leave-one-out", "{:.3g}"),
                  ("ratio_oracle", "nearest/oracle", "{:.2f}"), ("ratio_oracle_min", "closest pair", "{:.2f}"),
                  ("ratio_loo", "nearest/l-o-o", "{:.2f}"), ("frac_within", "within {f:g}x oracle", "{:.0%}"))


def format_splits_table(summary: Mapping[str, Mapping[str, Any]], *, scale: float = 1e4) -> str:
    """A plain-text table of :func:`summarize_splits` (one row per category), distances times ``scale``.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  Distances are medians; the ratio
    columns are dimensionless.
    """
    if not summary:
        raise ValueError("summary is empty")
    f = float(next(iter(summary.values())).get("factor", 2.0))
    heads = ["category"] + [h.format(f=f) for _, h, _ in _TABLE_COLUMNS]
    rows = []
    for name, s in summary.items():
        row = [str(name)]
        for key, _, fmt in _TABLE_COLUMNS:
            v = s[key]
            if key in ("oracle", "nearest", "loo"):
                v = v * scale
            row.append(fmt.format(int(v)) if fmt == "{:d}" else fmt.format(float(v)))
        rows.append(row)
    widths = [max(len(r[i]) for r in [heads] + rows) for i in range(len(heads))]
    lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return f"(median Chamfer distances x {scale:g}; ratios per test shape, medians)\n" + "\n".join(lines)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def describe_splits(data: Mapping[str, Any], *, pooled: str = "all") -> str:
    """The sentences the measurement of ``benchmarks/splits.py`` supports, written from its numbers.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  ``data`` is the benchmark's stored
    data (``results.load("splits").data``): ``summary`` (:func:`summarize_splits`), ``near_duplicate_target``
    and, when measured, ``memoriser``.  Nothing here is typed: every number and every verdict (near
    duplicates or not, the memoriser's draw inside the spread of draws or not) comes from ``data``.
    """
    summary = data.get("summary")
    if not summary:
        raise ValueError("data has no 'summary': not a splits result")
    cats = {k: v for k, v in summary.items() if k != pooled}
    allrow = summary.get(pooled) or next(iter(cats.values()))
    target = float(data.get("near_duplicate_target", 0.05))
    f = float(allrow["factor"])
    lo = min(s["ratio_oracle"] for s in cats.values())
    hi = max(s["ratio_oracle"] for s in cats.values())
    lo_loo = min(s["ratio_loo"] for s in cats.values())
    hi_loo = max(s["ratio_loo"] for s in cats.values())
    n_test = int(allrow["n_test"]) if pooled in summary else sum(int(s["n_test"]) for s in cats.values())
    near = allrow["frac_within"] > target
    out = [
        f"Over {n_test} test shapes of {len(cats)} categories, the nearest training shape of a test shape sits at "
        f"{lo:.2g}-{hi:.2g}x its oracle distance at the median of each category "
        f"({allrow['ratio_oracle']:.2g}x over all, {allrow['ratio_oracle_min']:.2g}x for the closest pair), "
        f"and at {lo_loo:.2g}-{hi_loo:.2g}x the distance between a training shape and its nearest other "
        "training shape (about 1 is what two draws from one distribution give).",
        f"{_pct(allrow['frac_within'])} of the test shapes have a training shape within {f:g}x their oracle "
        f"distance (the near-duplicate test allows at most {_pct(target)}): "
        + ("the splits hold near-duplicates, so a reconstruction score partly measures retrieval."
           if near else "by this test the splits hold no near-duplicates; retrieval is still the baseline "
                        "a reconstruction table needs."),
    ]
    mem = data.get("memoriser")
    if mem:
        one = mem["one_nna"]
        noisy = one.get("noisy", {}).get("1-nna")
        copies = one.get("copies", {}).get("1-nna")
        parts = [f"Chapter 10's memoriser ({mem['n_samples']} training shapes drawn at random, against "
                 f"{mem['n_refs']} test shapes of {len(mem['categories'])} categories) scores 1-NNA "
                 + (f"{_pct(noisy)} with noise {mem['noise']:g} and " if noisy is not None else "")
                 + (f"{_pct(copies)} without noise." if copies is not None else "(no noise-free score).")]
        draws = mem.get("draws", {})
        exp = mem.get("expected_exchangeable")
        for key, label in (("replacement", "chapter 10's draw with replacement"),
                           ("stratified", "a draw of as many shapes per category as the test split, without "
                                          "replacement")):
            d = draws.get(key)
            if not d:
                continue
            parts.append(f"Over {d['k']} draws of the noise-free memoriser ({label}): mean {_pct(d['mean'])}, "
                         f"standard deviation {_pct(d['sd'])}, from {_pct(d['min'])} to {_pct(d['max'])}.")
        rep = draws.get("replacement")
        if copies is not None and rep and rep.get("sd", 0) > 0:
            z = (copies - rep["mean"]) / rep["sd"]
            parts.append(f"The chapter's noise-free score lies {abs(z):.1f} standard deviations "
                         f"{'below' if z < 0 else 'above'} the mean of the draws: "
                         + ("one draw's luck accounts for it." if abs(z) <= 2 else
                            "more than one draw's luck."))
        if exp is not None:
            parts.append(f"Two exchangeable sets of these sizes score {_pct(exp)} in expectation, not 50%.")
        out.append(" ".join(parts))
    return "\n".join(out)


# ---------------------------------------------------------------------------
# the memoriser's 1-NNA from precomputed distances
# ---------------------------------------------------------------------------
def memoriser_indices(n_train: int, n_shapes: int, seed: int = 0) -> Tensor:
    """The training shapes chapter 10's memorising baseline draws: ``(n_shapes,)`` indices into ``n_train``.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  Obtained from
    :func:`course_lib.experiments.gradient_fields.noisy_training_baseline` itself (fed the indices as
    clouds, without noise), so they are the chapter's draw (with replacement) for the same ``seed``.
    """
    from course_lib.experiments.gradient_fields import noisy_training_baseline

    n_train, n_shapes = _positive_int(n_train, "n_train"), _positive_int(n_shapes, "n_shapes")
    ids = torch.arange(n_train, dtype=torch.float64).view(n_train, 1, 1)
    return noisy_training_baseline(ids, n_shapes, noise=0.0, seed=int(seed)).view(-1).round().long()


def stratified_indices(labels: Any, per_label: int, seed: int = 0) -> Tensor:
    """``per_label`` distinct indices of each label of ``labels`` (a random subset per label, without
    replacement), in label order: a "generator" with the test split's design when ``labels`` are the
    training shapes' categories.

    Introduced in ``lectures/01_data_and_representations.ipynb``.
    """
    lab = torch.as_tensor(labels).reshape(-1)
    if lab.numel() == 0:
        raise ValueError("labels is empty")
    per_label = _positive_int(per_label, "per_label")
    g = torch.Generator().manual_seed(int(seed))
    out = []
    for v in torch.unique(lab):
        idx = torch.nonzero(lab == v).view(-1)
        if idx.numel() < per_label:
            raise ValueError(f"label {v.item()!r} has {idx.numel()} elements, fewer than per_label={per_label}")
        out.append(idx[torch.randperm(idx.numel(), generator=g)[:per_label]])
    return torch.cat(out)


def one_nna_subset(d_ref_ref: Tensor, d_ref_pool: Tensor, d_pool_pool: Tensor, index: Any) -> dict[str, float]:
    """1-NNA of the pool clouds ``index`` (a sample set, repeats allowed) against the references, from
    precomputed distances.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  ``d_ref_ref`` ``(R, R)``,
    ``d_ref_pool`` ``(R, P)``, ``d_pool_pool`` ``(P, P)`` (diagonal 0); the sample set is
    ``pool[index]``, so a repeated index is a cloud drawn twice (distance 0 to its copy, as
    :func:`course_lib.metrics_generation.generation_metrics` finds for identical clouds).  Returns
    :func:`course_lib.metrics_generation.one_nna`'s ``{"acc", "acc_t", "acc_f"}``: many draws of a
    memoriser cost one distance matrix.
    """
    from course_lib.metrics_generation import one_nna

    for name, m in (("d_ref_ref", d_ref_ref), ("d_ref_pool", d_ref_pool), ("d_pool_pool", d_pool_pool)):
        if not isinstance(m, Tensor) or m.dim() != 2:
            raise ValueError(f"{name} must be a 2-D tensor, got {getattr(m, 'shape', type(m).__name__)}")
    r, p = d_ref_pool.shape
    if d_ref_ref.shape != (r, r) or d_pool_pool.shape != (p, p):
        raise ValueError(f"shapes do not fit: d_ref_ref {tuple(d_ref_ref.shape)}, d_ref_pool {tuple(d_ref_pool.shape)}, "
                         f"d_pool_pool {tuple(d_pool_pool.shape)}")
    idx = torch.as_tensor(index).reshape(-1).long().to(d_pool_pool.device)
    if idx.numel() == 0:
        raise ValueError("index is empty: no sample")
    if int(idx.min()) < 0 or int(idx.max()) >= p:
        raise ValueError(f"index must lie in [0, {p}), got values in [{int(idx.min())}, {int(idx.max())}]")
    return one_nna(d_ref_ref, d_pool_pool[idx][:, idx], d_ref_pool[:, idx])


def expected_one_nna(n_refs: int, n_samples: int) -> float:
    """1-NNA of two exchangeable sets (i.i.d. from one distribution, no ties) in expectation.

    Introduced in ``lectures/01_data_and_representations.ipynb``.  Leaving one cloud out, its nearest
    other cloud is equally likely to be any of the others, so a reference is classified right with
    probability ``(R - 1) / (R + S - 1)``, a sample with ``(S - 1) / (R + S - 1)``:
    ``(R (R - 1) + S (S - 1)) / ((R + S) (R + S - 1))``, just below 1/2 for equal sizes
    (0.4915 for 30 and 30), never the 1/2 of the infinite-set limit.
    """
    r, s = _positive_int(n_refs, "n_refs"), _positive_int(n_samples, "n_samples")
    if r + s < 2:
        raise ValueError("1-NNA needs at least two clouds")
    return (r * (r - 1) + s * (s - 1)) / ((r + s) * (r + s - 1))


def format_chapter_rows(data: Mapping[str, Any], chapter: str) -> str:
    """The retrieval table of one chapter from ``benchmarks/retrieval.py``'s stored data.

    Introduced in ``lectures/05_point_sets.ipynb`` (and printed by lectures 07 and 10).  ``data`` is the
    ``data`` of ``retrieval-<profile>.json``; ``chapter`` is ``"05"``, ``"07"`` or ``"10"``.  One row per
    model of the chapter (its mean, from the chapter's own result file) and per retrieval row (mean ±
    standard error over the chapter's test shapes), with the number of training shapes retrieval chose
    from.  Raises ``KeyError`` naming the chapters measured when ``chapter`` is not among them.
    """
    chapters = data.get("chapters", {}) if isinstance(data, Mapping) else {}
    if chapter not in chapters:
        raise KeyError(f"no retrieval rows for chapter {chapter!r} (measured: {sorted(chapters)}); "
                       "`python benchmarks/retrieval.py --chapters ...` measures them")
    p = chapters[chapter]
    metrics = list(p["metrics"])
    header = ["row", *metrics, "kind"]
    lines = [header]
    for name, vals in p.get("models", {}).items():
        lines.append([name, *[f"{float(vals[m]):.4g}" for m in metrics], "model"])
    for r in p["rows"]:
        cells = []
        for m in metrics:
            v = [float(x) for x in r[m]]
            se = (sum((x - sum(v) / len(v)) ** 2 for x in v) / (len(v) - 1) / len(v)) ** 0.5 if len(v) > 1 else 0.0
            cells.append(f"{sum(v) / len(v):.4g} ± {se:.2g}")
        lines.append([r["name"], *cells, f"retrieval from {p['training_shapes']} training shapes"])
    widths = [max(len(str(row[k])) for row in lines) for k in range(len(header))]
    out = [f"chapter {chapter}: {len(p['shapes'])} test shapes"]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines]
    return "\n".join(out)


def show_chapter(chapter: str, profile: str = "laptop") -> str | None:
    """Print (and return) one chapter's retrieval table and each of its claims, from ``benchmarks/retrieval.py``'s
    results file; say how to measure them when the file or the chapter is missing.

    Introduced in ``lectures/05_point_sets.ipynb`` (lectures 07 and 10 call it too).
    """
    from course_lib import results

    res = results.show("retrieval", profile)
    if res is None or chapter not in res.data.get("chapters", {}):
        if res is not None:
            print(f"no retrieval rows for chapter {chapter} yet: `COURSE_PROFILE={profile} python "
                  f"benchmarks/retrieval.py --chapters {chapter}` measures them")
        return None
    table = format_chapter_rows(res.data, chapter)
    print(table)
    for rec in res.data.get("claims", []):
        if rec["id"].startswith(f"ch{chapter}-"):
            results.say("retrieval", rec["id"], profile)
    return table
