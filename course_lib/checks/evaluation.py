"""Self-checks of chapter 11 (``labs/11_evaluation_lab.ipynb``): MMD, COV, 1-NNA and Chamfer conventions.

Introduced in ``lectures/11_evaluation.ipynb``.  The references are the library's
:func:`course_lib.metrics_generation.mmd_cov` and :func:`~course_lib.metrics_generation.one_nna`
(PointFlow's conventions, tested against brute-force loops) and
:func:`course_lib.metrics.chamfer` (the convention as arguments).  The inputs are small float64
matrices and clouds, non-square (``R != S``, ``N != M``) so that the usual mistakes (the wrong
axis, the wrong denominator, a transposed block, the labels of the wrong set) give answers
that differ from the right one and from each other: each is named in the verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ._core import CheckFailed, StudentError, call_student, expect, expect_tensor, self_check

__all__ = ["check_mmd", "check_coverage", "check_one_nna", "check_chamfer_convention"]


# ---------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------
def _scalar(out, what: str) -> float:
    """The student's answer as a float: a Python number, a 0-dim (or one-element) tensor or array."""
    if out is None:
        raise CheckFailed(f"{what}: your function returned None (is a `return` missing?)")
    if isinstance(out, dict):
        raise CheckFailed(f"{what} should be one number (a float or a 0-dim tensor), not a dict")
    if isinstance(out, torch.Tensor):
        if out.numel() != 1:
            raise CheckFailed(f"{what} should be one number (a float or a 0-dim tensor), got a tensor of shape "
                              f"{tuple(out.shape)}")
        value = float(out.detach().reshape(()))
    elif isinstance(out, np.ndarray):
        if out.size != 1:
            raise CheckFailed(f"{what} should be one number, got an array of shape {out.shape}")
        value = float(out.reshape(()))
    elif isinstance(out, (int, float, np.integer, np.floating)):
        value = float(out)
    else:
        raise CheckFailed(f"{what} should be a number (a float or a 0-dim tensor), got {type(out).__name__}")
    if not np.isfinite(value):
        raise CheckFailed(f"{what} is {value}: look for an empty mean, a division by zero or an unmasked inf")
    return value


def _same(a: float, b: float, rtol: float = 1e-5, atol: float = 1e-9) -> bool:
    return abs(a - b) <= atol + rtol * abs(b)


def _call_on_copies(fn: Callable, names: Sequence[str], *inputs: torch.Tensor):
    """Call the student on copies of ``inputs``; fail if the function changed them in place."""
    copies = [t.clone() for t in inputs]
    out = call_student(fn, *copies)
    for name, before, after in zip(names, inputs, copies):
        if after.shape != before.shape or not torch.equal(after, before):
            raise CheckFailed(f"your function changed its input {name} in place (fill_diagonal_, an indexed "
                              "assignment or an in-place operation): work on a copy (`.clone()`, or build a new "
                              "tensor with torch.cat) so that the caller's matrix keeps its values")
    return out


def _name_mistake(got: float, wrong: dict[str, float], where: str, ref: float | None = None) -> list[str]:
    """Raise the one named mistake whose value ``got`` matches; return the names when several match (two mistakes
    that give the same number on this input: the caller tries the next input before saying which)."""
    hits = [msg for msg, val in wrong.items() if _same(got, val) and (ref is None or not _same(val, ref))]
    if len(hits) == 1:
        raise CheckFailed(f"{hits[0]} ({where})")
    return hits


def _ambiguous(hits: list[str], where: str) -> CheckFailed:
    return CheckFailed(f"wrong on {where}, where two mistakes give the same number; either "
                       + "; or ".join(hits))


# ---------------------------------------------------------------------------
# exercise 1: MMD
# ---------------------------------------------------------------------------
def _mmd_matrices() -> list[tuple[str, torch.Tensor]]:
    crafted = torch.tensor([[0.9, 0.2, 0.7, 1.5, 0.6],
                            [0.4, 1.1, 0.3, 0.8, 1.6],
                            [1.2, 0.5, 1.3, 0.1, 0.9]], dtype=torch.float64)  # R = 3 references, S = 5 samples
    g = torch.Generator().manual_seed(11)
    return [("a 3 x 5 matrix", crafted),
            ("a random 6 x 9 matrix", torch.rand(6, 9, generator=g, dtype=torch.float64)),
            ("a random 7 x 4 matrix (fewer samples than references)", torch.rand(7, 4, generator=g, dtype=torch.float64))]


@self_check
def check_mmd(fn) -> str:
    """``fn(m_rs (R, S)) -> number``: ``mean over references r of min over samples s of M_rs[r, s]``.

    ``M_rs[r, s] = d(ref_r, sample_s)``; the answer is a float or a 0-dim tensor.
    """
    from course_lib.metrics_generation import mmd_cov

    pending: tuple[list[str], str] | None = None
    for where, m in _mmd_matrices():
        r, s = m.shape
        out = _call_on_copies(fn, ["m_rs"], m)
        ref = mmd_cov(m)["mmd"]
        if isinstance(out, torch.Tensor) and out.numel() > 1:
            v = out.detach().double().reshape(-1)
            if v.numel() == r and torch.allclose(v, m.min(1).values):
                raise CheckFailed(f"you returned each reference's distance to its closest sample, shape ({r},): "
                                  "average them over the references (MMD is one number)")
            if v.numel() == s and torch.allclose(v, m.min(0).values):
                raise CheckFailed(f"you returned one value per sample, shape ({s},), and over the wrong axis: MMD "
                                  "takes for each *reference* (row) its closest sample, then averages over references")
        got = _scalar(out, "MMD")
        if _same(got, ref):
            continue
        wrong = {
            "wrong axis: that is the mean over *samples* of the distance to their closest reference (mmd_smp, "
            "PointFlow's other direction); MMD takes, for each reference (row r of M_rs), its closest sample "
            "(min over s, dim=1), then averages over the references": float(m.min(0).values.mean()),
            "you took each reference's farthest sample (max): MMD matches each reference with its *closest* "
            "sample (min over s)": float(m.max(1).values.mean()),
            "you took the max, and over the wrong axis: MMD is the mean over references (rows) of the *min* "
            "over samples (dim=1)": float(m.max(0).values.mean()),
            "you summed over the references: MMD is the *mean* over references of the closest-sample "
            "distance (divide by R)": float(m.min(1).values.sum()),
            "you summed, and over the wrong axis: MMD is the *mean* over references (rows) of the min over "
            "samples (dim=1)": float(m.min(0).values.sum()),
            "you averaged the whole matrix: MMD first takes, for each reference, its *closest* sample (min over "
            "s), then averages those R values": float(m.mean()),
            "that is the smallest entry of the matrix: take the closest sample of *each* reference (min over "
            "dim=1), then average over the references": float(m.min()),
            "you took the median over the references: MMD is their *mean*": float(m.min(1).values.median()),
            "you averaged the indices of the closest samples (argmin): average their *distances* (min(...).values)":
                float(m.argmin(1).double().mean()),
            "you took the smallest of the row means (mean, then min): MMD is the mean over references of the min "
            "over samples (min first, along dim=1)": float(m.mean(1).min()),
            "you took a square root: M_rs already holds the distances (Chamfer or EMD); MMD averages them as they are":
                float(m.min(1).values.sqrt().mean()),
        }
        hits = _name_mistake(got, wrong, f"on {where}", ref)
        if hits:
            pending = pending or (hits, where)
            continue
        raise CheckFailed(f"MMD on {where} is {got:.6g}; expected {ref:.6g} (mean over the references of the "
                          "distance to the closest sample)")
    if pending:
        raise _ambiguous(*pending)
    return "mean over references of the closest-sample distance, on square-free matrices (R != S)"


# ---------------------------------------------------------------------------
# exercise 2: COV
# ---------------------------------------------------------------------------
def _cov_matrices() -> list[tuple[str, torch.Tensor]]:
    # R = 5 references (rows), S = 7 samples (columns).  The nearest reference of each sample
    # (column argmin) is 0, 0, 1, 2, 2, 2, 0: 3 distinct references, COV = 3/5.  The nearest
    # sample of each reference (row argmin) is 0, 3, 4, 5, 0: 4 distinct samples.
    crafted = torch.tensor([[0.10, 0.20, 0.90, 0.80, 0.90, 0.95, 0.30],
                            [0.70, 0.80, 0.40, 0.30, 0.85, 0.90, 0.75],
                            [0.80, 0.90, 0.75, 0.20, 0.15, 0.30, 0.70],
                            [0.90, 0.95, 0.85, 0.70, 0.60, 0.50, 0.80],
                            [0.60, 0.70, 0.95, 0.90, 0.80, 0.85, 0.65]], dtype=torch.float64)
    g = torch.Generator().manual_seed(12)
    return [("a 5 x 7 matrix", crafted),
            ("a random 6 x 4 matrix (fewer samples than references)", torch.rand(6, 4, generator=g, dtype=torch.float64)),
            ("a random 4 x 9 matrix", torch.rand(4, 9, generator=g, dtype=torch.float64)),
            # every named mistake gives its own number on this one (COV 4/7)
            ("a random 7 x 5 matrix", torch.rand(7, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64))]


@self_check
def check_coverage(fn) -> str:
    """``fn(m_rs (R, S)) -> number``: the fraction of references that are the nearest reference of some sample.

    For each sample ``s``, its nearest reference ``argmin_r M_rs[r, s]``; COV is the number of
    *distinct* references so chosen, divided by ``R``.
    """
    from course_lib.metrics_generation import mmd_cov

    pending: tuple[list[str], str] | None = None
    for where, m in _cov_matrices():
        r, s = m.shape
        out = _call_on_copies(fn, ["m_rs"], m)
        got = _scalar(out, "COV")
        ref = mmd_cov(m)["cov"]
        if _same(got, ref):
            continue
        nearest_ref = m.argmin(0)  # (S,)
        nearest_smp = m.argmin(1)  # (R,)
        wrong = {
            "you divided by the number of samples S: COV is the fraction of *references* that are covered "
            "(divide the number of distinct matched references by R)": nearest_ref.unique().numel() / s,
            "you counted samples, not distinct references: several samples can share their nearest reference, "
            "and it counts once (torch.unique)": nearest_ref.numel() / r,
            "argmin over the wrong axis: for each *sample* (column) find its nearest reference (argmin over "
            "dim=0), then count the distinct references": nearest_smp.unique().numel() / r,
            "argmin over the wrong axis, and divided by S: for each *sample* (column) find its nearest reference "
            "(argmin over dim=0), count the distinct references, divide by R": nearest_smp.unique().numel() / s,
            "return a fraction in [0, 1], not a percentage": 100.0 * ref,
            "you returned the number of covered references: divide it by R (COV is a fraction)":
                float(nearest_ref.unique().numel()),
            "you took each sample's *farthest* reference (argmax): COV counts the nearest ones (argmin over dim=0)":
                m.argmax(0).unique().numel() / r,
            "you divided by R + S: COV is the fraction of the R *references* that are covered (divide by R)":
                nearest_ref.unique().numel() / (r + s),
            "integer division (//) rounds the fraction down to 0: divide with / (true division)":
                float(nearest_ref.unique().numel() // r),
        }
        hits = _name_mistake(got, wrong, f"on {where}", ref)
        if hits:
            pending = pending or (hits, where)
            continue
        raise CheckFailed(f"COV on {where} is {got:.6g}; expected {ref:.6g} (distinct nearest references of the "
                          f"samples, divided by R = {r})")
    if pending:
        raise _ambiguous(*pending)
    # a mode-collapsed set: every sample is the same cloud, so it covers one reference only
    collapsed = torch.rand(6, 1, generator=torch.Generator().manual_seed(13), dtype=torch.float64).expand(6, 5)
    got = _scalar(_call_on_copies(fn, ["m_rs"], collapsed.contiguous()), "COV")
    if not _same(got, 1 / 6):
        raise CheckFailed(f"with 5 identical samples (a mode-collapsed generator) and 6 references COV should be "
                          f"1/6 (one reference covered); got {got:.6g}")
    return "distinct nearest references over R, on non-square matrices; a collapsed set covers 1/R"


# ---------------------------------------------------------------------------
# exercise 3: 1-NNA
# ---------------------------------------------------------------------------
def embedded_sets(r: int, s: int, seed: int, shift: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distance matrices ``(M_rr, M_ss, M_rs)`` of ``r`` + ``s`` "clouds" stood for by points of the plane.

    References ~ N(0, I), samples ~ N(shift, I) in 2D, Euclidean distances: symmetric blocks with
    zero diagonals, as real Chamfer matrices are.  Used by :func:`check_one_nna` and its tests.
    """
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(r, 2, generator=g, dtype=torch.float64)
    q = torch.randn(s, 2, generator=g, dtype=torch.float64) + shift

    def dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a[:, None] - b[None]).square().sum(-1).sqrt()

    return dist(p, p), dist(q, q), dist(p, q)


def nna_variants(m_rr: torch.Tensor, m_ss: torch.Tensor, m_rs: torch.Tensor) -> dict[str, float]:
    """The right 1-NNA (key ``"ok"``) and the wrong answers :func:`check_one_nna` names, on these matrices."""
    r, s = m_rs.shape

    def full(top_right: torch.Tensor, bottom_left: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.cat([m_rr, top_right], 1), torch.cat([bottom_left, m_ss], 1)], 0).clone()

    def accuracy(d: torch.Tensor, label: torch.Tensor, diag: bool = True, farthest: bool = False) -> torch.Tensor:
        d = d.clone()
        if diag:
            d.fill_diagonal_(float("-inf") if farthest else float("inf"))
        pred = label[d.argmax(1) if farthest else d.argmin(1)]
        return (pred == label).double()

    label = torch.cat([torch.ones(r), torch.zeros(s)]).double()
    d = full(m_rs, m_rs.t())
    correct = accuracy(d, label)
    acc = float(correct.mean())
    def one_block(rows: slice) -> float:
        dd = d.clone()
        idx = torch.arange(r + s)[rows]
        dd[idx, idx] = float("inf")
        return float((label[dd.argmin(1)] == label).double().mean())

    out = {"ok": acc,
           "no_diag": float(accuracy(d, label, diag=False).mean()),
           "diag_refs": one_block(slice(0, r)),
           "diag_samples": one_block(slice(r, r + s)),
           "one_minus": 1.0 - acc,
           "acc_t": float(correct[:r].mean()),
           "acc_f": float(correct[r:].mean()),
           "balanced": 0.5 * float(correct[:r].mean() + correct[r:].mean()),
           "farthest": float(accuracy(d, label, farthest=True).mean()),
           "labels": float(accuracy(d, torch.cat([torch.ones(s), torch.zeros(r)]).double()).mean()),
           "percent": 100.0 * acc}
    if r == s:
        out["transposed"] = float(accuracy(full(m_rs.t(), m_rs), label).mean())
    return out


_NNA_MESSAGES = {
    "no_diag": "each cloud's own distance (0, on the diagonal) is not excluded, so every cloud is its own nearest "
               "neighbour and the accuracy is 1.0: set the diagonal of the (R+S) x (R+S) matrix to +inf "
               "(leave-one-out)",
    "diag_refs": "the diagonal is set to +inf in the references' block only: the samples still find themselves "
                 "(distance 0) as their nearest cloud; exclude every cloud's own distance, the whole diagonal of the "
                 "(R+S) x (R+S) matrix (both M_rr's and M_ss's)",
    "diag_samples": "the diagonal is set to +inf in the samples' block only: the references still find themselves "
                    "(distance 0) as their nearest cloud; exclude every cloud's own distance, the whole diagonal of "
                    "the (R+S) x (R+S) matrix (both M_rr's and M_ss's)",
    "transposed": "M_rs is transposed in the block matrix: the top-right block (rows = references, columns = "
                  "samples) is M_rs itself, the bottom-left block is M_rs^T: [[M_rr, M_rs], [M_rs^T, M_ss]]",
    "one_minus": "that is 1 - accuracy (the error rate): return the fraction of clouds whose nearest other cloud "
                 "comes from the *same* set",
    "acc_t": "that is the accuracy on the references only (PointFlow's acc_t): return the accuracy over all "
             "R + S clouds",
    "acc_f": "that is the accuracy on the samples only (PointFlow's acc_f): return the accuracy over all "
             "R + S clouds",
    "balanced": "that is the mean of the two per-set accuracies; 1-NNA is the accuracy over all R + S clouds "
                "together (they differ when R != S)",
    "farthest": "you took each cloud's farthest cloud (argmax): classify by the *nearest* other cloud (argmin)",
    "labels": "the labels do not follow the blocks: the first R clouds (rows and columns) are the references, "
              "the last S the samples; your labels have the two sizes swapped (S of one kind first)",
    "percent": "return a fraction in [0, 1], not a percentage",
}


@self_check
def check_one_nna(fn) -> str:
    """``fn(m_rr (R, R), m_ss (S, S), m_rs (R, S)) -> number``: the leave-one-out 1-NN accuracy.

    Over the union of the ``R`` references and the ``S`` samples, each cloud gets the label of its
    nearest *other* cloud; the answer is the fraction labelled right (0.5 ideal, 1.0 separable).
    """
    from course_lib.metrics_generation import one_nna

    cases = [("5 references and 5 samples", embedded_sets(5, 5, seed=18, shift=1.0)),
             ("3 references and 7 samples", embedded_sets(3, 7, seed=0, shift=0.5)),
             ("8 references and 5 samples", embedded_sets(8, 5, seed=4, shift=0.5))]
    names = ["m_rr", "m_ss", "m_rs"]
    square_ok = False
    pending: tuple[list[str], str] | None = None
    for where, (m_rr, m_ss, m_rs) in cases:
        r, s = m_rs.shape
        try:
            out = _call_on_copies(fn, names, m_rr, m_ss, m_rs)
        except StudentError as exc:
            text = str(exc.exc)
            if square_ok and r != s and isinstance(exc.exc, (RuntimeError, IndexError, ValueError)) and any(
                    w in text for w in ("size", "Size", "dimension", "shape", "match")):
                raise CheckFailed(f"your code raised {type(exc.exc).__name__}: {text} with {where} (it ran when "
                                  f"R == S): M_rs has shape (R, S), so it is the top-right block of "
                                  f"[[M_rr, M_rs], [M_rs^T, M_ss]] and its transpose (S, R) the bottom-left one"
                                  + (f"; {exc.where}" if exc.where else "")) from None
            raise
        got = _scalar(out, "1-NNA")
        ref = one_nna(m_rr, m_ss, m_rs)["acc"]
        if _same(got, ref):
            square_ok = square_ok or r == s
            continue
        wrong = nna_variants(m_rr, m_ss, m_rs)
        hits = _name_mistake(got, {msg: wrong[key] for key, msg in _NNA_MESSAGES.items() if key in wrong},
                             f"on {where}", ref)
        if hits:
            pending = pending or (hits, where)
            continue
        raise CheckFailed(f"1-NNA on {where} is {got:.6g}; expected {ref:.6g} (the fraction of the R + S clouds "
                          "whose nearest *other* cloud belongs to the same set)")
    if pending:
        raise _ambiguous(*pending)
    # the two limits: separable sets, and samples that copy the references
    m_rr, m_ss, m_rs = embedded_sets(5, 6, seed=6, shift=50.0)
    got = _scalar(_call_on_copies(fn, names, m_rr, m_ss, m_rs), "1-NNA")
    if not _same(got, 1.0):
        raise CheckFailed(f"two far-apart sets (separable) should give 1-NNA = 1.0, got {got:.6g}")
    m_rr, _, _ = embedded_sets(5, 1, seed=7)
    got = _scalar(_call_on_copies(fn, names, m_rr, m_rr.clone(), m_rr.clone()), "1-NNA")
    if not _same(got, 0.0):
        raise CheckFailed("samples that copy the references exactly should give 1-NNA = 0.0 (each cloud's nearest "
                          f"other cloud is its copy, in the other set), got {got:.6g}. If you took "
                          "argsort(...)[:, 1] to skip the cloud itself: at a tie (its copy is at distance 0 too) "
                          "the cloud itself can come second; set the diagonal to +inf instead")
    return "leave-one-out over [[M_rr, M_rs], [M_rs^T, M_ss]], square and non-square; 1.0 separable, 0.0 copies"


# ---------------------------------------------------------------------------
# exercise 4: Chamfer under a named convention
# ---------------------------------------------------------------------------
def _directional(x: torch.Tensor, y: torch.Tensor, squared: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean nearest-neighbour distance x->y and y->x, (B,) each (float64, exact)."""
    d = (x[:, :, None] - y[:, None]).square().sum(-1)
    if not squared:
        d = d.sqrt()
    return d.min(2).values.mean(1), d.min(1).values.mean(1)


def _directional_max(x: torch.Tensor, y: torch.Tensor, squared: bool) -> torch.Tensor:
    """max_x min_y dist + max_y min_x dist, (B,) (a wrong answer the check names)."""
    d = (x[:, :, None] - y[:, None]).square().sum(-1)
    if not squared:
        d = d.sqrt()
    return d.min(2).values.amax(1) + d.min(1).values.amax(1)


@self_check
def check_chamfer_convention(fn) -> str:
    """``fn(x (B, N, 3), y (B, M, 3), squared, directions, scale) -> (B,)``: Chamfer under a named convention.

    ``d(X->Y) = mean_x min_y dist``, ``dist = ||x - y||^2`` (``squared``) or ``||x - y||``;
    ``scale * (d(X->Y) + d(Y->X))`` for ``directions="sum"``, half of it for ``"mean"``.
    Must equal ``course_lib.metrics.chamfer(x, y, squared=..., directions=..., scale=..., reduction="none")``.
    """
    from course_lib.metrics import chamfer

    g = torch.Generator().manual_seed(14)
    b, n, m = 3, 40, 27
    x = torch.rand(b, n, 3, generator=g, dtype=torch.float64) - 0.5
    y = (torch.rand(b, m, 3, generator=g, dtype=torch.float64) - 0.5) * torch.tensor([0.6, 1.0, 1.4],
                                                                                     dtype=torch.float64)[:, None, None]
    y = y + 0.1
    cases = [(True, "sum", 1e4), (False, "mean", 1.0), (True, "mean", 1e3), (False, "sum", 100.0)]
    for squared, directions, scale in cases:
        where = f"squared={squared}, directions={directions!r}, scale={scale:g}"
        out = _call_on_copies(lambda a, c, sq=squared, dr=directions, sc=scale: fn(a, c, sq, dr, sc), ["x", "y"], x, y)
        ref = chamfer(x, y, squared=squared, directions=directions, scale=scale, reduction="none")
        half = 0.5 if directions == "mean" else 1.0
        if isinstance(out, torch.Tensor):
            flat = out.detach().double().reshape(-1)
            if out.dim() != 1 or out.shape[0] != b:
                if flat.numel() == 1 and _same(float(flat[0]), float(ref.mean())):
                    raise CheckFailed(f"you averaged over the batch: return one value per cloud, shape ({b},) "
                                      f"({where})")
                if flat.numel() == 1 and _same(float(flat[0]), float(ref.sum())):
                    raise CheckFailed(f"you summed over the batch: return one value per cloud, shape ({b},) "
                                      f"({where})")
            elif bool(torch.allclose(flat, ref.mean().expand(b))):
                raise CheckFailed(f"every cloud got the batch mean: return one value per cloud ({where})")
        expect_tensor(out, f"the Chamfer distance ({where})", shape=(b,))
        got = out.detach().double()
        if torch.allclose(got, ref, rtol=1e-5, atol=1e-9):
            continue
        dxy, dyx = _directional(x, y, squared)
        pxy, pyx = _directional(x, y, not squared)
        other = "mean" if directions == "sum" else "sum"
        wrong = {
            ("with squared=True use the *squared* nearest-neighbour distances ||x - y||^2 (you used plain "
             "distances ||x - y||)" if squared else
             "with squared=False use plain distances ||x - y|| (you squared them)"):
                scale * half * (pxy + pyx),
            (f"directions={directions!r}: " + ("add the two directional means (you averaged them: that is "
                                               "directions='mean')" if directions == "sum" else
                                               "average the two directional means, (d(X->Y) + d(Y->X)) / 2 (you "
                                               "added them: that is directions='sum')")):
                chamfer(x, y, squared=squared, directions=other, scale=scale, reduction="none"),
            "scale is ignored: multiply the result by scale (papers print CD x1e3 or x1e4)": half * (dxy + dyx),
            "multiply by scale, do not divide by it": half * (dxy + dyx) / scale,
            "only one direction (x to y): add the y-to-x term": scale * dxy,
            "only one direction (x to y), halved: add the y-to-x term": scale * half * dxy,
            "only one direction (y to x): add the x-to-y term": scale * dyx,
            "only one direction (y to x), halved: add the x-to-y term": scale * half * dyx,
            "average the nearest-neighbour distances over the points of each cloud (you summed them)":
                scale * half * (dxy * n + dyx * m),
            "each cloud's nearest-neighbour distances are averaged over that cloud's points, then the two "
            "directional means combined; you averaged over the N + M points together (the directions weigh N and M)":
                scale * (dxy * n + dyx * m) / (n + m) * (1.0 if directions == "mean" else 2.0),
            "that is the largest nearest-neighbour distance (a Hausdorff-like max): Chamfer *averages* them over "
            "the points": scale * half * _directional_max(x, y, squared),
            "the same direction twice: one term is min over y for each x (dim=2), the other min over x for each y "
            "(dim=1)": scale * half * 2 * dxy,
            "the same direction twice (both y to x): one term is min over y for each x (dim=2), the other min over x "
            "for each y (dim=1)": scale * half * 2 * dyx,
            "multiply by scale once (you applied it twice)": scale * scale * half * (dxy + dyx),
        }
        if not squared:
            sxy, syx = _directional(x, y, True)
            wrong["with squared=False take the square root of each distance, then average (you took the root of the "
                  "mean squared distance)"] = scale * half * (sxy.sqrt() + syx.sqrt())
        for msg, val in wrong.items():
            if torch.allclose(got, val, rtol=1e-5, atol=1e-9):
                raise CheckFailed(f"{msg} ({where})")
        err = int((got - ref).abs().argmax())
        raise CheckFailed(f"wrong values with {where}: cloud {err} got {float(got[err]):.6g}, expected "
                          f"{float(ref[err]):.6g}")
    return "squared and plain, sum and mean of the directions, scaled, per cloud (N != M)"


# ---------------------------------------------------------------------------
# hidden parts (run by the grader only): one reference or one sample, float32, non-contiguous matrices,
# distances on another scale, single points, float32 clouds far from the origin, clouds independent
# ---------------------------------------------------------------------------
def _loop_mmd(m: torch.Tensor) -> float:
    a = m.double().tolist()
    return sum(min(row) for row in a) / len(a)


def _loop_cov(m: torch.Tensor) -> float:
    a = m.double().tolist()
    r, s = len(a), len(a[0])
    chosen = {min(range(r), key=lambda i: a[i][j]) for j in range(s)}
    return len(chosen) / r


def _loop_nna(m_rr: torch.Tensor, m_ss: torch.Tensor, m_rs: torch.Tensor) -> float:
    r, s = m_rs.shape
    rr, ss, rs = m_rr.double().tolist(), m_ss.double().tolist(), m_rs.double().tolist()

    def dist(i: int, j: int) -> float:
        if i < r and j < r:
            return rr[i][j]
        if i >= r and j >= r:
            return ss[i - r][j - r]
        return rs[i][j - r] if i < r else rs[j][i - r]

    right = 0
    for i in range(r + s):
        j = min((k for k in range(r + s) if k != i), key=lambda k: dist(i, k))
        right += (i < r) == (j < r)
    return right / (r + s)


def _matrix_cases(seed: int) -> list[tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    wide = torch.rand(9, 5, generator=g, dtype=torch.float64)
    return [("a 1 x 1 matrix", torch.rand(1, 1, generator=g, dtype=torch.float64)),
            ("one reference and 6 samples (1 x 6)", torch.rand(1, 6, generator=g, dtype=torch.float64)),
            ("6 references and one sample (6 x 1)", torch.rand(6, 1, generator=g, dtype=torch.float64)),
            ("a float32 4 x 7 matrix", torch.rand(4, 7, generator=g)),
            ("a non-contiguous 5 x 9 matrix (a transposed view)", wide.t()),
            ("a 5 x 8 matrix of Chamfer x1e4-sized values", 1e4 * torch.rand(5, 8, generator=g, dtype=torch.float64))]


def _hidden_mmd(fn) -> str:
    for where, m in _matrix_cases(110):
        got = _scalar(_call_on_copies(fn, ["m_rs"], m), f"MMD on {where}")
        ref = _loop_mmd(m)
        if not _same(got, ref, rtol=1e-5 if m.dtype == torch.float32 else 1e-9):
            raise CheckFailed(f"MMD on {where} is {got:.6g}; expected {ref:.6g} (mean over the R references of "
                              "the distance to the closest sample)")
    return "1 x 1, one reference, one sample, float32, a non-contiguous view, large values"


def _hidden_coverage(fn) -> str:
    for where, m in _matrix_cases(111):
        got = _scalar(_call_on_copies(fn, ["m_rs"], m), f"COV on {where}")
        ref = _loop_cov(m)
        if not _same(got, ref):
            raise CheckFailed(f"COV on {where} is {got:.6g}; expected {ref:.6g} (distinct nearest references of "
                              f"the samples, divided by R = {m.shape[0]})")
    # S much larger than R: every reference ends up covered
    m = torch.rand(3, 200, generator=torch.Generator().manual_seed(112), dtype=torch.float64)
    got = _scalar(_call_on_copies(fn, ["m_rs"], m), "COV")
    expect_close_value(got, _loop_cov(m), "COV with 3 references and 200 samples")
    return "1 x 1, one reference, one sample, float32, a non-contiguous view, S >> R"


def expect_close_value(got: float, ref: float, what: str) -> None:
    if not _same(got, ref):
        raise CheckFailed(f"{what} is {got:.6g}; expected {ref:.6g}")


def _hidden_one_nna(fn) -> str:
    names = ["m_rr", "m_ss", "m_rs"]
    cases = [("one reference and one sample", embedded_sets(1, 1, seed=120, shift=0.3)),
             ("one reference and 4 samples", embedded_sets(1, 4, seed=121, shift=0.3)),
             ("6 references and 2 samples", embedded_sets(6, 2, seed=122, shift=1.0)),
             ("float32 matrices of 4 references and 6 samples",
              tuple(t.float() for t in embedded_sets(4, 6, seed=123, shift=0.8)))]
    big = embedded_sets(5, 6, seed=124, shift=0.5)
    cases.append(("distances of order 1e5 (Chamfer x1e4 of unnormalised shapes)", tuple(2e5 * t for t in big)))
    for where, (m_rr, m_ss, m_rs) in cases:
        got = _scalar(_call_on_copies(fn, names, m_rr, m_ss, m_rs), f"1-NNA on {where}")
        ref = _loop_nna(m_rr, m_ss, m_rs)
        if _same(got, ref):
            continue
        if _same(got, 1.0) and not _same(ref, 1.0):
            raise CheckFailed(f"1-NNA on {where} is 1.0, as if every cloud were its own nearest neighbour; expected "
                              f"{ref:.6g}: set the diagonal to +inf (float('inf')), not to a large finite number "
                              "(distances can be larger than any constant you pick)")
        raise CheckFailed(f"1-NNA on {where} is {got:.6g}; expected {ref:.6g} (a leave-one-out loop over the "
                          "R + S clouds)")
    return "one reference and one sample, R = 1, float32, distances of order 1e5"


def _hidden_chamfer_convention(fn) -> str:
    g = torch.Generator().manual_seed(130)

    def ref_loop(x: torch.Tensor, y: torch.Tensor, squared: bool, directions: str, scale: float) -> list[float]:
        out = []
        for xb, yb in zip(x.double(), y.double()):
            d = ((xb[:, None] - yb[None]) ** 2).sum(-1)
            d = d if squared else d.sqrt()
            v = float(d.min(1).values.mean() + d.min(0).values.mean())
            out.append(scale * (v / 2 if directions == "mean" else v))
        return out

    cases = [
        ("one cloud of one point each (B=1, N=M=1)", torch.rand(1, 1, 3, generator=g, dtype=torch.float64),
         torch.rand(1, 1, 3, generator=g, dtype=torch.float64), 1e-9),
        ("B=2, N=1, M=30", torch.rand(2, 1, 3, generator=g, dtype=torch.float64),
         torch.rand(2, 30, 3, generator=g, dtype=torch.float64), 1e-9),
        ("float32 clouds 0.01 apart, centred at (10, 10, 10) (B=2, N=M=64)",
         10 + 0.01 * torch.rand(2, 64, 3, generator=g), 10 + 0.01 * torch.rand(2, 64, 3, generator=g), 2e-3),
    ]
    for where, x, y, rtol in cases:
        for squared, directions, scale in ((True, "sum", 1e4), (False, "mean", 1.0)):
            conv = f"squared={squared}, directions={directions!r}, scale={scale:g}"
            out = _call_on_copies(lambda a, c, sq=squared, dr=directions, sc=scale: fn(a, c, sq, dr, sc),
                                  ["x", "y"], x, y)
            expect_tensor(out, f"the Chamfer distance for {where} ({conv})", shape=(x.shape[0],))
            expect(out.dtype == x.dtype, f"for {x.dtype} clouds the result should stay {x.dtype}, got {out.dtype}")
            ref = torch.tensor(ref_loop(x, y, squared, directions, scale), dtype=torch.float64)
            got = out.detach().double()
            if not bool(torch.isfinite(got).all()) or not bool(((got - ref).abs() <= 1e-12 + rtol * ref.abs()).all()):
                hint = (": torch.cdist's default mode computes |x|^2 + |y|^2 - 2 x.y, which loses the digits of "
                        "near points far from the origin in float32; use compute_mode="
                        "\"donot_use_mm_for_euclid_dist\" or the differences x[:, :, None] - y[:, None]"
                        if x.dtype == torch.float32 else "")
                i = int((got - ref).abs().argmax())
                raise CheckFailed(f"wrong values for {where} ({conv}): cloud {i} got {float(got[i]):.6g}, expected "
                                  f"{float(ref[i]):.6g}{hint}")
    # clouds are independent: moving cloud 1 leaves cloud 0's value unchanged
    x = torch.rand(2, 20, 3, generator=g, dtype=torch.float64)
    y = torch.rand(2, 25, 3, generator=g, dtype=torch.float64)
    a = call_student(fn, x.clone(), y.clone(), True, "sum", 1.0)
    y2 = y.clone()
    y2[1] += 5.0
    b = call_student(fn, x.clone(), y2, True, "sum", 1.0)
    expect(torch.is_tensor(a) and torch.is_tensor(b) and _same(float(b[0]), float(a[0]), rtol=1e-12),
           "cloud 0's value changed when only cloud 1 moved: each cloud's nearest neighbours must be searched in its "
           "own partner cloud (a batched (B, N, M) distance)")
    return "single points, one point against 30, float32 near points far from the origin, clouds independent"


def _register_hidden() -> None:
    from course_lib import metrics
    from course_lib import metrics_generation as mg

    gen = (mg.mmd_cov, mg.one_nna, mg.generation_metrics)
    check_mmd.hidden(_hidden_mmd, references=gen)
    check_coverage.hidden(_hidden_coverage, references=gen)
    check_one_nna.hidden(_hidden_one_nna, references=gen)
    check_chamfer_convention.hidden(_hidden_chamfer_convention, references=(
        metrics.chamfer, metrics.chamfer_l2, metrics.chamfer_l1))


_register_hidden()
