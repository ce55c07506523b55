"""The self-check machinery that labs call after each exercise.

Introduced in ``lectures/00_welcome.ipynb``.

A check is a function decorated with :func:`self_check`.  Its body runs the
student's function on small seeded inputs and compares with the library's
reference through the ``expect_*`` helpers below.  Whatever happens, the student
sees one short verdict, never a raw traceback for a wrong answer:

* ``✅ <check>: passed`` (with a detail line when useful),
* ``⏳ <check>: not implemented yet`` when the stub still raises ``NotImplementedError``
  (or returns ``...``),
* ``❌ <check>: <what is wrong>`` for a wrong shape, dtype, value, symmetry or gradient,
* ``❌ <check>: your code raised <Error>: <message> (line N of your cell)`` when the
  student's code crashes.

The decorated check returns a :class:`CheckResult` whose ``passed`` attribute tests use.

**Hidden parts (grading).** A check may register a hidden part (``@check_x.hidden(references=(...))``):
more cases, other sizes and edge cases that the lab does not show.  It runs only when
``COURSE_HIDDEN_CHECKS=1`` (:data:`HIDDEN_ENV`; ``python -m course_lib.grade`` sets it), after the public
part passed, and is logged as its own verdict ``<check>:hidden``.  While it runs, a call from the
student's code straight into one of the ``references`` (the library's own implementation of the
exercise) is recorded, and the hidden part fails with "delegated to ...": the grade report flags a
submission that wraps the library instead of writing the exercise.

**Strict mode.** With the environment variable ``COURSE_STRICT_CHECKS=1`` a check that does
not pass (failed, errored or not implemented) raises :class:`SelfCheckError` after printing
its verdict.  The repository's ``conftest.py`` sets it for the kernels that run
``solutions/*.ipynb``, so that a solution failing its own self-check fails the test run;
labs and lectures run without it (a lab's stubs are "not implemented yet", and lecture 00
shows wrong answers on purpose).
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "CheckFailed",
    "CheckResult",
    "NotImplementedYet",
    "SelfCheckError",
    "STRICT_ENV",
    "strict_mode",
    "self_check",
    "expect",
    "expect_tensor",
    "expect_close",
    "call_student",
    "RESULTS",
    "CheckStop",
    "stop_on_failure",
    "HIDDEN_ENV",
    "HIDDEN_SUFFIX",
    "hidden_mode",
]


class CheckFailed(AssertionError):
    """Raised inside a check body when the student's answer is wrong."""


class SelfCheckError(AssertionError):
    """Raised by a self-check in strict mode (``COURSE_STRICT_CHECKS=1``) when it does not pass."""


STRICT_ENV = "COURSE_STRICT_CHECKS"
HIDDEN_ENV = "COURSE_HIDDEN_CHECKS"
"""Set to ``1`` (by the grader): every check with a hidden part runs it after the public part."""
HIDDEN_SUFFIX = ":hidden"
"""The verdict name of a check's hidden part (``check_chamfer:hidden``)."""


def hidden_mode() -> bool:
    """True when the hidden parts of the checks run (``COURSE_HIDDEN_CHECKS`` set to anything but ``0``)."""
    return os.environ.get(HIDDEN_ENV, "").strip() not in ("", "0")


_WATCH: list[Any] = [None]
"""While a hidden part runs: ``(code objects of the references, set of their names called by the student)``."""


def strict_mode() -> bool:
    """Whether a self-check that does not pass raises (environment variable ``COURSE_STRICT_CHECKS``)."""
    return os.environ.get(STRICT_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


class CheckStop(Exception):
    """Raised after a failed self-check when :func:`stop_on_failure` is on: "Run all" stops at the cause.

    It renders in a notebook as one line (no traceback): the check's verdict was printed just before.
    """

    def __init__(self, name: str) -> None:
        super().__init__(f"stopped at {name}: fix the exercise above and run again (the cells below use it); "
                         "checks.stop_on_failure(False) lets a run go on past a failed check")
        self.name = name

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a traceback
        return [f"⛔ {self}"]


_STOP_ON_FAILURE = [False]


def stop_on_failure(on: bool = True) -> None:
    """Make a self-check that fails (a wrong answer or a crash, not a stub still "not implemented") raise
    :class:`CheckStop`, so that "Run all" stops at the exercise instead of crashing cells later.

    Introduced in ``lectures/00_welcome.ipynb``; every lab turns it on in its first cell.  A stub does not
    stop the run (a lab runs clean up to its stubs), and the grading command goes on past a stop.
    """
    _STOP_ON_FAILURE[0] = bool(on)


class NotImplementedYet(Exception):
    """Raised inside a check body when the student's code is still a stub."""


class StudentError(Exception):
    """Wraps an exception raised by the student's own code."""

    def __init__(self, exc: BaseException, where: str):
        super().__init__(str(exc))
        self.exc = exc
        self.where = where


@dataclass
class CheckResult:
    """The outcome of one self-check."""

    name: str
    status: str  # "passed" | "failed" | "not_implemented" | "error"
    message: str = ""
    details: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __bool__(self) -> bool:
        return self.passed

    def verdict(self) -> str:
        icon = {"passed": "✅", "failed": "❌", "not_implemented": "⏳", "error": "❌"}[self.status]
        head = f"{icon} {self.name}: {self.message}"
        return "\n".join([head, *("   " + d for d in self.details)])

    def __str__(self) -> str:
        return self.verdict()

    def _ipython_display_(self) -> None:  # the verdict is printed already
        return None


RESULTS: dict[str, CheckResult] = {}
"""The last result of every check run in this kernel, by name."""


def _student_location(tb) -> str:
    """Where in the student's code (a notebook cell or their file) the error happened."""
    frames = traceback.extract_tb(tb)
    lib_root = __file__.rsplit("course_lib", 1)[0] + "course_lib"
    for fr in reversed(frames):
        if not fr.filename.startswith(lib_root) and "site-packages/torch" not in fr.filename:
            fname = fr.filename
            if fname.startswith("<ipython-input") or "ipykernel" in fname or fname.startswith("/tmp/"):
                return f"line {fr.lineno} of your cell: `{(fr.line or '').strip()}`"
            return f"{fname}, line {fr.lineno}: `{(fr.line or '').strip()}`"
    return ""


def call_student(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the student's function; turn its failures into check outcomes.

    ``NotImplementedError`` (the stub) becomes "not implemented yet"; any other
    exception is reported with its type, message and the line of the student's
    code, without a traceback.  A returned ``...`` (the one-line stub form) also
    counts as not implemented.
    """
    if not callable(fn):
        raise CheckFailed(f"expected a function, got {type(fn).__name__}")
    watch = _WATCH[0]
    lib_root = __file__.rsplit("course_lib", 1)[0] + "course_lib"
    previous = sys.getprofile()
    if watch is not None:
        codes, seen = watch

        def profile(frame: Any, event: str, arg: Any) -> None:
            if event == "call" and frame.f_code in codes:
                caller = frame.f_back
                while caller is not None and _is_decorator_frame(caller):  # torch.no_grad() and the like
                    caller = caller.f_back
                if caller is not None and not caller.f_code.co_filename.startswith(lib_root):
                    seen.add(codes[frame.f_code])

        sys.setprofile(profile)
    try:
        out = fn(*args, **kwargs)
    except NotImplementedError:
        raise NotImplementedYet() from None
    except Exception as exc:  # noqa: BLE001 - we report every student error
        raise StudentError(exc, _student_location(sys.exc_info()[2])) from None
    finally:
        if watch is not None:
            sys.setprofile(previous)
    if out is Ellipsis:
        raise NotImplementedYet()
    return out


def expect(condition: bool, message: str) -> None:
    """Fail the check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


def _fmt_shape(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"


def expect_tensor(
    value: Any,
    what: str,
    shape: Sequence[int | None] | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    finite: bool = True,
) -> torch.Tensor:
    """Check that ``value`` is a tensor of the given shape (``None`` = any size), dtype and device."""
    if isinstance(value, np.ndarray):
        raise CheckFailed(f"{what} should be a torch.Tensor, got a numpy array (use torch.as_tensor)")
    if not isinstance(value, torch.Tensor):
        raise CheckFailed(f"{what} should be a torch.Tensor, got {type(value).__name__}")
    if shape is not None:
        ok = value.dim() == len(shape) and all(
            s is None or s == v for s, v in zip(shape, value.shape)
        )
        if not ok:
            raise CheckFailed(
                f"{what} has shape {tuple(value.shape)}, expected {_fmt_shape(shape)}"
            )
    if dtype is not None and value.dtype != dtype:
        raise CheckFailed(f"{what} has dtype {value.dtype}, expected {dtype}")
    if device is not None and value.device.type != torch.device(device).type:
        raise CheckFailed(f"{what} is on {value.device}, expected {torch.device(device)}")
    if finite and value.is_floating_point() and not torch.isfinite(value).all():
        raise CheckFailed(f"{what} contains NaN or inf")
    return value


def _as_float64(x: Any) -> torch.Tensor:
    """``x`` as a float64 CPU tensor; Python numbers and lists go straight to float64 (through float32, the
    default dtype, they would lose digits: 1e-8 relative)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64)
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.asarray(x, dtype=np.float64))
    return torch.as_tensor(x, dtype=torch.float64)


def expect_close(
    actual: Any,
    expected: Any,
    what: str,
    atol: float = 1e-5,
    rtol: float = 1e-4,
) -> None:
    """Compare values (tensors, arrays or numbers); on failure say where and by how much.

    NaN and inf are never close to anything: a non-finite value fails with a message
    that says so (even where the expected value is also non-finite).
    """
    try:
        a = _as_float64(actual)
    except (TypeError, ValueError, RuntimeError):
        raise CheckFailed(f"{what} should be a tensor or a number, got {type(actual).__name__}") from None
    e = _as_float64(expected)
    if a.shape != e.shape:
        raise CheckFailed(f"{what} has shape {tuple(a.shape)}, expected {tuple(e.shape)}")
    if a.numel() == 0:
        return
    finite = torch.isfinite(a)
    if not finite.all():
        n_nan, n_inf = int(torch.isnan(a).sum()), int(torch.isinf(a).sum())
        kinds = " and ".join(k for k, c in (("NaN", n_nan), ("inf", n_inf)) if c)
        idx = tuple(int(i) for i in np.unravel_index(int((~finite).reshape(-1).nonzero()[0]), tuple(a.shape)))
        where = f", first at index {idx}" if idx else ""
        raise CheckFailed(
            f"{what} contains {kinds} ({int((~finite).sum())} of {a.numel()} values{where}): "
            "look for a division by zero, a sqrt or log of a negative number, or an overflow"
        )
    err = (a - e).abs()
    tol = atol + rtol * e.abs()
    bad = err > tol
    if bad.any():
        idx = tuple(int(i) for i in np.unravel_index(int(torch.argmax(err - tol)), tuple(a.shape))) if a.dim() else ()
        where = f" at index {idx}" if idx else ""
        first = tuple(int(i) for i in np.unravel_index(int(bad.reshape(-1).nonzero()[0]), tuple(a.shape))) \
            if a.dim() else ()
        first_txt = (f"; the first wrong value is at index {first}: got {a[first].item():.6g}, expected "
                     f"{e[first].item():.6g}") if first and first != idx else ""
        cause = likeliest_cause(a, e, atol, rtol)
        raise CheckFailed(
            f"{what}: {int(bad.sum())} of {a.numel()} values are wrong"
            f" (largest error {err.max().item():.3g}{where}: got {a[idx].item():.6g},"
            f" expected {e[idx].item():.6g}{first_txt})" + (f". Likeliest cause: {cause}" if cause else "")
        )


def likeliest_cause(actual: Any, expected: Any, atol: float = 1e-5, rtol: float = 1e-4) -> str:
    """The pattern that relates a wrong answer to the right one, in words ("" when none is recognised).

    Tried in order: the sign flipped; a constant factor (a mean for a sum, a missing 1/2 or a count); a
    constant offset; the square or the square root of the answer (squared distances where distances are
    asked, or the reverse); swapped last two axes; the values right but in another order; only some
    elements of the batch (the first axis) wrong.  Used by :func:`expect_close` for every generic
    "values differ" message.
    """
    a, e = _as_float64(actual), _as_float64(expected)
    if a.shape != e.shape or a.numel() == 0 or not (torch.isfinite(a).all() and torch.isfinite(e).all()):
        return ""

    def close(x: torch.Tensor, y: torch.Tensor) -> bool:
        return bool(torch.allclose(x, y, atol=atol, rtol=max(rtol, 1e-6)))

    if close(a, -e) and e.abs().max() > atol:
        return "the sign is flipped (a minus sign too many or too few, or a difference taken the other way round)"
    big = e.abs() > max(atol * 10, 1e-12)
    if big.sum() >= 1:
        ratio = a[big] / e[big]
        k = float(ratio.median())
        if abs(k - 1) > 1e-3 and k != 0 and close(a, k * e):
            known = {2.0: "a missing 1/2", 0.5: "a factor 1/2 too many"}
            name = next((v for r, v in known.items() if abs(k - r) < 1e-6), None)
            n = e.numel()
            hint = name or (f"a sum where a mean is asked (or the reverse) over about {round(k)} values"
                            if k > 1 and abs(k - round(k)) < 1e-6 else
                            f"a mean where a sum is asked (or a division by a count) of about {round(1 / k)}"
                            if k < 1 and abs(1 / k - round(1 / k)) < 1e-6 else "a missing or extra scale")
            return f"every value is {k:.4g} times the expected one ({hint}; {n} values compared)"
    off = float((a - e).reshape(-1).median())
    if abs(off) > atol and close(a, e + off):
        return f"every value is off by the same {off:+.4g} (a constant added or left out)"
    if (e >= 0).all() and close(a, e * e) and not close(e, e * e):
        return "the answer is the square of the expected one (squared distances where distances are asked?)"
    if (e >= 0).all() and (a >= 0).all() and close(a * a, e) and not close(e, e * e):
        return "the answer is the square root of the expected one (distances where squared distances are asked?)"
    if a.dim() >= 2 and a.shape[-1] == a.shape[-2] and close(a, e.transpose(-1, -2)):
        return "the last two axes are swapped (a transpose, or the pair's roles exchanged)"
    if close(a.reshape(-1).sort().values, e.reshape(-1).sort().values):
        return "the right values in the wrong order (an index, a gather or a permutation)"
    if a.dim() >= 2 and a.shape[0] > 1:
        wrong = [int(i) for i in range(a.shape[0]) if not close(a[i], e[i])]
        if 0 < len(wrong) < a.shape[0]:
            shown = ", ".join(map(str, wrong[:5])) + (", ..." if len(wrong) > 5 else "")
            return (f"only batch element(s) {shown} of {a.shape[0]} are wrong (something shared across the batch, "
                    "or a loop that stops early)")
    return ""


GRADE_LOG_ENV = "COURSE_GRADE_LOG"
"""Set by ``python -m course_lib.grade``: every self-check appends its verdict to this file (JSON lines)."""


def _log_for_grader(res: CheckResult, args: Sequence[Any]) -> None:
    """Append the verdict (and the module of the checked function) to the grader's log, if one is set."""
    path = os.environ.get(GRADE_LOG_ENV)
    if not path:
        return
    target = getattr(args[0], "__module__", "") if args else ""
    try:
        import json

        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"name": res.name, "status": res.status, "message": res.message,
                                 "target": str(target or "")}) + "\n")
    except OSError:  # the grader reports a missing verdict as "not run"; a check never crashes on its log
        pass


def _reference_codes(references: Sequence[Any]) -> dict[Any, str]:
    """``{code object: "module.qualname"}`` of the references a hidden part watches: a function (or a bound
    method, or a ``functools.wraps`` wrapper's ``__wrapped__``) by its code; a class by the ``__init__`` and
    ``forward`` it defines itself (calling the class runs them)."""
    out: dict[Any, str] = {}
    for r in references:
        label = f"{getattr(r, '__module__', '?')}.{getattr(r, '__qualname__', type(r).__name__)}"
        if isinstance(r, type):
            for attr in ("__init__", "forward"):
                fn = r.__dict__.get(attr)
                if fn is not None and hasattr(fn, "__code__"):
                    out[fn.__code__] = label
            continue
        import inspect

        for f in (r, getattr(r, "__func__", None)):
            if f is None:
                continue
            try:
                f = inspect.unwrap(f)  # through functools.wraps decorators (torch.no_grad() among them)
            except ValueError:
                pass
            code = getattr(f, "__code__", None)
            # only the library's own code: a decorator's wrapper code is shared by every function it decorates
            if code is not None and not _is_decorator_code(code):
                out[code] = label
    return out


_DECORATOR_FILES = ("_contextlib.py", "functools.py")


def _is_decorator_code(code: Any) -> bool:
    """Whether ``code`` belongs to a decorator's wrapper (torch's no_grad / enable_grad, functools)."""
    return code.co_filename.endswith(_DECORATOR_FILES)


def _is_decorator_frame(frame: Any) -> bool:
    return _is_decorator_code(frame.f_code)


def self_check(fn: Callable[..., str | None]) -> Callable[..., CheckResult]:
    """Turn a check body into a self-check that prints a verdict and returns a :class:`CheckResult`.

    The body may return a string: a detail shown under "passed".  Pass
    ``quiet=True`` to suppress the printout (tests do).
    """
    name = fn.__name__
    hidden: dict[str, Any] = {"body": None, "references": ()}

    @functools.wraps(fn)
    def wrapper(*args: Any, quiet: bool = False, **kwargs: Any) -> CheckResult:
        res = _run_body(fn, name, args, kwargs)
        RESULTS[name] = res
        _log_for_grader(res, args)
        if not quiet:
            print(res.verdict())
        if hidden["body"] is not None and hidden_mode():
            hname = name + HIDDEN_SUFFIX
            if res.passed:
                codes = _reference_codes(hidden["references"])
                seen: set[str] = set()
                target = args[0] if args else None
                direct = _reference_codes((target,)) if target is not None else {}
                for code in direct:  # the library's own function or class passed as the answer
                    if code in codes:
                        seen.add(codes[code])
                _WATCH[0] = (codes, seen)
                try:
                    hres = _run_body(hidden["body"], hname, args, kwargs)
                finally:
                    _WATCH[0] = None
                if seen and hres.status in ("passed", "failed", "error"):
                    hres = CheckResult(hname, "failed", f"delegated to {', '.join(sorted(seen))}: the exercise asks "
                                       "for your own implementation, not a call to the library's")
            else:
                hres = CheckResult(hname, "failed", "not run: the public part of the check did not pass")
            RESULTS[hname] = hres
            _log_for_grader(hres, args)
            if not quiet:
                print(hres.verdict())
        if not res.passed and strict_mode():
            raise SelfCheckError(f"{STRICT_ENV} is set and the self-check did not pass: {res.verdict()}")
        if res.status in ("failed", "error") and _STOP_ON_FAILURE[0] and not quiet:
            raise CheckStop(name)
        return res

    def register_hidden(body: Callable[..., str | None] | None = None, *,
                        references: Sequence[Callable[..., Any]] = ()) -> Any:
        """Register the hidden part of this check (a decorator; ``references``: the library functions that the
        exercise re-implements, whose direct use from the student's code is flagged)."""
        def attach(b: Callable[..., str | None]) -> Callable[..., str | None]:
            hidden["body"], hidden["references"] = b, tuple(references)
            return b

        return attach(body) if body is not None else attach

    wrapper.is_self_check = True  # type: ignore[attr-defined]
    wrapper.hidden = register_hidden  # type: ignore[attr-defined]
    wrapper.has_hidden = lambda: hidden["body"] is not None  # type: ignore[attr-defined]
    return wrapper


def _run_body(fn: Callable[..., str | None], name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> CheckResult:
    """Run a check body and turn what happened into a :class:`CheckResult` (never raises)."""
    try:
        detail = fn(*args, **kwargs)
        return CheckResult(name, "passed", "passed", [detail] if detail else [])
    except NotImplementedYet:
        return CheckResult(name, "not_implemented", "not implemented yet: replace the stub "
                           "(`raise NotImplementedError()` or `...`) with your code")
    except CheckFailed as exc:
        return CheckResult(name, "failed", str(exc))
    except StudentError as exc:
        e = exc.exc
        return CheckResult(name, "error", f"your code raised {type(e).__name__}: {e}", [exc.where] if exc.where else [])
    except Exception as exc:  # noqa: BLE001 - an answer of an unexpected kind: a verdict, not a traceback
        return CheckResult(name, "error", f"could not check your answer ({type(exc).__name__}: {exc}): is it of "
                           "the type and shape the exercise asks for?")
