"""The measuring protocol of the course (protocol 2): choices on ``val``, claims and goals from results.

Introduced in ``lectures/00_welcome.ipynb`` ("How the course measures") and used by every
benchmark in ``benchmarks/``.  Four rules, one helper each:

1. **Choices on validation only.**  :func:`select_on_val` scores candidates (a learning rate, a
   set size, epochs, a threshold, σ ...) on ``val`` inside :func:`course_lib.data.no_test_reads`, so a
   scorer that touches the test split raises; it returns the choice and a :func:`selection
   record <selection_record>` of what was chosen from which candidates.  :func:`selection_part`
   marks a whole benchmark part (a sweep) the same way.
2. **Equal budgets.**  :func:`budget` is one row's budget (optimiser steps, training examples seen,
   wall seconds on one machine, trainable parameters); every claim carries one per rival.
3. **Seeds and uncertainty.**  :func:`paired_difference` and :func:`verdict`: a difference is
   ``"ahead"`` or ``"behind"`` only beyond two standard errors, else ``"not separated"``.  A claim
   needs at least :data:`MIN_SEEDS` training seeds or :data:`MIN_SHAPES` paired shapes.
4. **Claims and goals written from results.**  :func:`claim` and :func:`goal` build the records a
   benchmark stores in its JSON (``data["claims"]``, ``data["goals"]``); lectures print them with
   :func:`claim_sentence` / :func:`course_lib.results.say`, README's chapter marks come from the goals.

Everything here is plain Python on numbers: it runs the same for CPU and CUDA results.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from course_lib.data.splits import no_test_reads

__all__ = ["PROTOCOL_VERSION", "MIN_SEEDS", "MIN_SHAPES", "VERDICTS", "CLAIM_KEYS", "GOAL_KEYS",
           "paired_difference", "verdict", "budget", "claim", "goal", "claim_sentence", "goal_sentence",
           "selection_record", "select_on_val", "selection_part", "validate_claim", "validate_goal",
           "validate_records", "budget_ratio", "seed_budget", "TooFewForClaim"]

PROTOCOL_VERSION = 2
"""Recorded in every results file's provenance.  1: choices could read the (now retired) test range;
2: choices on ``val`` only, the fresh test range, claims and goals as records (issue #32)."""

MIN_SEEDS = 3
"""Fewest training seeds behind a comparative claim between trained models."""
MIN_SHAPES = 20
"""Fewest paired shapes behind a comparative claim between fixed models (or methods)."""
VERDICTS = ("ahead", "behind", "not separated")
"""What a claim can conclude: ``a`` ahead of ``b``, behind it, or within two standard errors."""

CLAIM_KEYS = ("id", "text", "a", "b", "metric", "higher_is_better", "difference", "se", "n", "unit",
              "verdict", "budget", "selected_on")
GOAL_KEYS = ("id", "text", "value", "target", "comparison", "met")
_UNITS = {"seeds": MIN_SEEDS, "shapes": MIN_SHAPES}


class TooFewForClaim(ValueError):
    """A comparative claim asked for with fewer seeds or shapes than the protocol needs (a ``ValueError``).

    Typically a benchmark run on a small real dataset (a few test shapes per category): every measurement is
    there, only the comparison cannot be made.  ``benchmarks/_common.py`` turns it into a one-line message."""
_BUDGET_KEYS = ("steps", "examples", "seconds", "params")

T = TypeVar("T")


def _numbers(values: Any, name: str) -> list[float]:
    try:
        out = [float(v) for v in (values.reshape(-1).tolist() if hasattr(values, "reshape") else values)]
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}") from exc
    if not out:
        raise ValueError(f"{name} is empty")
    bad = [v for v in out if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{name} holds {len(bad)} non-finite value(s) (nan or inf): a diverged run must be "
                         "reported as such, not averaged")
    return out


def paired_difference(a: Any, b: Any) -> tuple[float, float, int]:
    """Mean and standard error of the paired differences ``a[i] - b[i]``, and their number ``n``.

    ``a`` and ``b`` hold one value per seed (the same seeds) or per shape (the same shapes), in the
    same order.  The standard error is the unbiased standard deviation of the differences over
    ``sqrt(n)``; ``n >= 2`` is required.
    """
    xa, xb = _numbers(a, "a"), _numbers(b, "b")
    if len(xa) != len(xb):
        raise ValueError(f"paired values must have the same length, got {len(xa)} and {len(xb)}")
    n = len(xa)
    if n < 2:
        raise ValueError(f"a paired difference needs at least 2 pairs for a standard error, got {n}")
    d = [x - y for x, y in zip(xa, xb)]
    mean = sum(d) / n
    var = sum((v - mean) ** 2 for v in d) / (n - 1)
    return mean, math.sqrt(var / n), n


def verdict(difference: float, se: float, *, higher_is_better: bool) -> str:
    """``"ahead"`` / ``"behind"`` when ``|difference| > 2 se`` (``difference = a - b``), else ``"not separated"``.

    ``higher_is_better`` says which sign is good for ``a`` (IoU, accuracy: True; Chamfer, EMD: False).
    """
    if not isinstance(higher_is_better, bool):
        raise TypeError("higher_is_better must be True or False")
    d, s = float(difference), float(se)
    if not math.isfinite(d) or not math.isfinite(s) or s < 0:
        raise ValueError(f"verdict needs a finite difference and a finite se >= 0, got {d} ± {s}")
    if abs(d) <= 2.0 * s:
        return "not separated"
    better = d > 0 if higher_is_better else d < 0
    return "ahead" if better else "behind"


def budget(*, steps: int | None, examples: int | None, seconds: float | None, params: int | None,
           **extra: Any) -> dict[str, Any]:
    """One row's training budget: optimiser ``steps``, training ``examples`` seen (steps × batch),
    wall ``seconds`` on the measuring machine, trainable ``params``; ``extra`` adds notes (``epochs``,
    ``"paper"`` for where the paper's budget differs).  ``None`` means "not applicable" (a method that
    does not train has no steps), never "unknown"."""
    out: dict[str, Any] = {}
    for k, v in (("steps", steps), ("examples", examples), ("seconds", seconds), ("params", params)):
        if v is None:
            out[k] = None
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)) or v < 0:
            raise ValueError(f"budget {k} must be a finite number >= 0 or None, got {v!r}")
        out[k] = int(v) if k != "seconds" else round(float(v), 3)
    out.update(extra)
    return out


def seed_budget(budgets: Sequence[Mapping[str, Any]], *, seconds: Sequence[float] | None = None,
                count_key: str = "seeds") -> dict[str, Any]:
    """One table row's budget from the budgets of its seeds' runs (:func:`budget` records).

    Steps, examples, parameters and notes are one run's (every run must have trained the same number of steps:
    a row whose seeds differ raises); ``seconds`` is the mean wall time of one run, taken from the budgets or
    from ``seconds`` where the runs keep their times outside them; ``count_key`` records how many runs.

    >>> seed_budget([budget(steps=10, examples=80, seconds=2.0, params=5), budget(steps=10, examples=80,
    ...              seconds=4.0, params=5)])["seconds"]
    3.0
    """
    if not budgets:
        raise ValueError("seed_budget needs the budget of at least one run")
    steps = {b.get("steps") for b in budgets}
    if len(steps) != 1:
        raise ValueError(f"the seeds of one row trained different numbers of steps: {sorted(map(str, steps))}")
    secs = [float(b["seconds"]) for b in budgets] if seconds is None else [float(x) for x in seconds]
    if len(secs) != len(budgets):
        raise ValueError(f"{len(secs)} wall times for {len(budgets)} runs")
    one = budgets[0]
    extra = {k: v for k, v in one.items() if k not in ("steps", "examples", "seconds", "params", "seconds_are",
                                                        count_key)}
    return budget(steps=one.get("steps"), examples=one.get("examples"), seconds=sum(secs) / len(secs),
                  params=one.get("params"), **extra, seconds_are="mean wall seconds of one training run",
                  **{count_key: len(budgets)})


def budget_ratio(budgets: Mapping[str, Mapping[str, Any]], key: str = "steps") -> float | None:
    """Largest over smallest ``key`` among the rows that have one (1.0: equal budgets); ``None`` if < 2 rows do."""
    vals = [float(b[key]) for b in budgets.values() if b.get(key) is not None]
    if len(vals) < 2:
        return None
    lo = min(vals)
    return math.inf if lo == 0 else max(vals) / lo


def claim(id: str, text: str, *, a: str, b: str, metric: str, values_a: Any, values_b: Any,
          higher_is_better: bool, unit: str, budget: Mapping[str, Mapping[str, Any]] | None = None,
          selected_on: str = "val", min_n: int | None = None) -> dict[str, Any]:
    """A comparison record: ``a`` against ``b`` on ``metric``, paired over seeds or shapes.

    ``values_a`` / ``values_b`` hold one value per seed (``unit="seeds"``, at least :data:`MIN_SEEDS`)
    or per shape (``unit="shapes"``, at least :data:`MIN_SHAPES`), paired.  ``text`` is the sentence
    being tested ("ShapeGF reconstructs closer than PointSetGen"); the record says whether the data
    carry it (``verdict``).  ``budget`` maps ``a`` and ``b`` (and any other row) to :func:`budget`
    dicts; ``selected_on`` is ``"val"`` (every choice behind the rows made on validation) or
    ``"none"`` (no choice was made).  ``min_n`` may only raise the minimum.
    """
    if unit not in _UNITS:
        raise ValueError(f"unit must be one of {sorted(_UNITS)}, got {unit!r}")
    need = _UNITS[unit] if min_n is None else max(int(min_n), _UNITS[unit])
    diff, se, n = paired_difference(values_a, values_b)
    if n < need:
        raise TooFewForClaim(f"claim {id!r}: {n} {unit} are too few for a comparative claim (at least {need}); "
                             "measure more seeds or shapes, or state no comparison")
    rec = {"id": id, "text": text, "a": a, "b": b, "metric": metric, "higher_is_better": higher_is_better,
           "difference": diff, "se": se, "n": n, "unit": unit,
           "verdict": verdict(diff, se, higher_is_better=higher_is_better),
           "mean_a": sum(_numbers(values_a, "a")) / n, "mean_b": sum(_numbers(values_b, "b")) / n,
           "budget": {k: dict(v) for k, v in (budget or {}).items()}, "selected_on": selected_on}
    validate_claim(rec)
    return rec


def goal(id: str, text: str, value: Any, target: Any, *, comparison: str) -> dict[str, Any]:
    """A goal record: ``value`` against ``target`` with ``comparison`` ``">="``, ``"<="`` or ``"=="``
    (for a yes/no goal: ``goal(..., value=flag, target=True, comparison="==")``); ``met`` is computed."""
    if comparison not in (">=", "<=", "=="):
        raise ValueError(f"comparison must be '>=', '<=' or '==', got {comparison!r}")
    if comparison == "==":
        met = value == target
    else:
        v, t = float(value), float(target)
        if not math.isfinite(v):
            met = False
        else:
            met = v >= t if comparison == ">=" else v <= t
    rec = {"id": id, "text": text, "value": value, "target": target, "comparison": comparison, "met": bool(met)}
    validate_goal(rec)
    return rec


def validate_claim(rec: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming what is wrong with a claim record (missing keys, a verdict that its
    numbers do not give, too few seeds or shapes, a choice made on test, a rival without a budget)."""
    missing = [k for k in CLAIM_KEYS if k not in rec]
    if missing:
        raise ValueError(f"claim {rec.get('id')!r} lacks {missing}")
    if rec["unit"] not in _UNITS:
        raise ValueError(f"claim {rec['id']!r}: unit {rec['unit']!r} is not one of {sorted(_UNITS)}")
    if int(rec["n"]) < _UNITS[rec["unit"]]:
        raise ValueError(f"claim {rec['id']!r}: n = {rec['n']} {rec['unit']} < {_UNITS[rec['unit']]}")
    expected = verdict(rec["difference"], rec["se"], higher_is_better=rec["higher_is_better"])
    if rec["verdict"] != expected:
        raise ValueError(f"claim {rec['id']!r}: verdict {rec['verdict']!r} but its numbers give {expected!r}")
    if rec["selected_on"] not in ("val", "none"):
        raise ValueError(f"claim {rec['id']!r}: selected_on must be 'val' or 'none' (never 'test'), "
                         f"got {rec['selected_on']!r}")
    bud = rec["budget"]
    if bud:
        lacking = [r for r in (rec["a"], rec["b"]) if r not in bud]
        if lacking:
            raise ValueError(f"claim {rec['id']!r}: no budget for {lacking}")
        for row, b in bud.items():
            miss = [k for k in _BUDGET_KEYS if k not in b]
            if miss:
                raise ValueError(f"claim {rec['id']!r}: the budget of {row!r} lacks {miss}")


def validate_goal(rec: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` when a goal record lacks a key or its ``met`` disagrees with its numbers."""
    missing = [k for k in GOAL_KEYS if k not in rec]
    if missing:
        raise ValueError(f"goal {rec.get('id')!r} lacks {missing}")
    cmp, v, t = rec["comparison"], rec["value"], rec["target"]
    if cmp == "==":
        ok = v == t
    elif cmp in (">=", "<="):
        fv = float(v) if v is not None else math.nan
        ok = math.isfinite(fv) and (fv >= float(t) if cmp == ">=" else fv <= float(t))
    else:
        raise ValueError(f"goal {rec['id']!r}: comparison {cmp!r}")
    if bool(rec["met"]) != bool(ok):
        raise ValueError(f"goal {rec['id']!r}: met = {rec['met']} but {v!r} {cmp} {t!r} is {ok}")


def validate_records(data: Mapping[str, Any]) -> None:
    """Check the ``claims`` and ``goals`` lists of a benchmark's data (ids unique, every record valid)."""
    for key, check in (("claims", validate_claim), ("goals", validate_goal)):
        recs = data.get(key)
        if recs is None:
            continue
        if not isinstance(recs, list):
            raise ValueError(f"data[{key!r}] must be a list of records, got {type(recs).__name__}")
        ids = [r.get("id") for r in recs]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"data[{key!r}]: duplicate ids {dup}")
        for r in recs:
            check(r)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def claim_sentence(rec: Mapping[str, Any]) -> str:
    """The sentence a lecture prints for a claim record, with its numbers and its verdict.

    >>> r = claim("x", "A reconstructs closer than B", a="A", b="B", metric="CD", values_a=[1.0, 1.5, 0.5],
    ...           values_b=[2.0, 2.0, 2.0], higher_is_better=False, unit="seeds")
    >>> claim_sentence(r)
    'A reconstructs closer than B: yes (A ahead of B). CD: A − B = -1 ± 0.289 over 3 seeds (mean 1 against 2).'
    """
    v = rec["verdict"]
    head = {"ahead": f"yes ({rec['a']} ahead of {rec['b']})",
            "behind": f"no, the opposite ({rec['a']} behind {rec['b']})",
            "not separated": f"not shown ({rec['a']} and {rec['b']} not separated: within 2 standard errors)"}[v]
    means = ""
    if "mean_a" in rec and "mean_b" in rec:
        means = f" (mean {_fmt(rec['mean_a'])} against {_fmt(rec['mean_b'])})"
    s = (f"{rec['text']}: {head}. {rec['metric']}: {rec['a']} − {rec['b']} = {_fmt(rec['difference'])} ± "
         f"{_fmt(rec['se'])} over {rec['n']} {rec['unit']}{means}.")
    ratio = budget_ratio(rec.get("budget") or {})
    if ratio is not None and ratio > 1.0 + 1e-9:
        s += f" Budgets differ: {ratio:.3g}× as many steps for one row."
    return s


def goal_sentence(rec: Mapping[str, Any]) -> str:
    """One line for a goal record: ``✅``/``🟡``, its text, the measured value and the target."""
    v = rec["value"]
    vs = _fmt(float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)
    return f"{'✅' if rec['met'] else '🟡'} {rec['text']}: measured {vs} (target {rec['comparison']} {rec['target']})"


def selection_record(id: str, scores: Mapping[str, float], *, metric: str, higher_is_better: bool,
                     split: str = "val") -> tuple[str, dict[str, Any]]:
    """The best of already-computed validation ``scores`` and the record of the choice.

    Use it where the scores come out of a training loop (the best epoch on ``val``); ``split`` must
    be ``"val"`` (or ``"train"`` for a choice made on training data).  Ties go to the first candidate.
    """
    if split not in ("val", "train"):
        raise ValueError(f"a choice is made on 'val' (or 'train'), never on {split!r}")
    if not scores:
        raise ValueError(f"selection {id!r}: no candidate")
    clean = {str(k): float(v) for k, v in scores.items()}
    finite = {k: v for k, v in clean.items() if math.isfinite(v)}
    if not finite:
        raise ValueError(f"selection {id!r}: every candidate scored nan or inf")
    pick = max if higher_is_better else min
    best = pick(finite.values())
    chosen = next(k for k, v in finite.items() if v == best)
    return chosen, {"id": id, "metric": metric, "higher_is_better": higher_is_better, "selected_on": split,
                    "candidates": clean, "chosen": chosen}


def select_on_val(id: str, candidates: Mapping[str, T], score: Callable[[T], float], *, metric: str,
                  higher_is_better: bool) -> tuple[str, T, dict[str, Any]]:
    """Score every candidate on validation data and keep the best: ``(name, candidate, record)``.

    ``score(candidate)`` trains and evaluates on ``train``/``val``; it runs inside
    :func:`course_lib.data.no_test_reads`, so a scorer that reads the test split raises
    :class:`course_lib.data.TestSplitReadError`.  The record (:func:`selection_record`) goes into the
    benchmark's JSON (``data["selections"]``).
    """
    if not candidates:
        raise ValueError(f"selection {id!r}: no candidate")
    scores = {}
    with no_test_reads(f"selection {id}"):
        for name, cand in candidates.items():
            scores[str(name)] = float(score(cand))
    chosen, rec = selection_record(id, scores, metric=metric, higher_is_better=higher_is_better)
    by_name = {str(k): v for k, v in candidates.items()}
    return chosen, by_name[chosen], rec


def selection_part(fn: Callable[..., T]) -> Callable[..., T]:
    """Mark a benchmark part that makes choices (a sweep, trials): it runs inside
    :func:`course_lib.data.no_test_reads`, so reading the test split there raises.

    ``tests/test_protocol.py`` checks that every part a benchmark lists in ``SELECTION_PARTS`` is marked.
    """
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with no_test_reads(f"benchmark part {fn.__name__}"):
            return fn(*args, **kwargs)

    wrapper.__selection_part__ = True  # type: ignore[attr-defined]
    return wrapper
