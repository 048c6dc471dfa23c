"""Check cells: run a learner's code, never crash, say specifically what is right or wrong.

A check cell in a course notebook looks like this::

    from cfopt import kit

    @kit.check("routing keeps critical tasks on the premium tier")
    def _():
        got = route(task)
        kit.expect(got == "opus", f"expected 'opus' for a critical task, got {got!r}")

``check`` runs the function at once and turns whatever happens into one line of feedback:

- it returns normally            -> passed
- ``expect`` fails               -> failed, with the check's own message
- ``NotImplementedError``        -> not yet, with the stub's hint
- any other exception            -> failed, naming the exception and the learner's line

Nothing escapes, so an exercise notebook still runs top to bottom. The result is also shown as
a ``application/vnd.cfopt.check+json`` output that ``cfopt grade`` reads back.

>>> result = check("two plus two", points=2)(lambda: expect(2 + 2 == 4, "arithmetic broke"))
✅ PASS  two plus two (2/2 points)
>>> result.passed, result.points
(True, 2)
>>> check("a stub")(lambda: stub())        # doctest: +ELLIPSIS
⏳ NOT YET  a stub (0/1 point): write stub()
CheckResult(name='a stub', status='not-yet', ...)
"""
from __future__ import annotations

import math
import sys
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = [
    "CheckFailed", "CheckResult", "MIME_TYPE", "check", "expect", "expect_close", "expect_equal",
    "expect_type", "results", "stub",
]

MIME_TYPE = "application/vnd.cfopt.check+json"
_ICONS = {"passed": "✅ PASS", "failed": "❌ FAIL", "not-yet": "⏳ NOT YET"}
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])
_results: list["CheckResult"] = []


class CheckFailed(Exception):
    """An expectation of a check cell did not hold; its message is the feedback."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check: ``status`` is ``passed``, ``failed`` or ``not-yet``."""

    name: str
    status: str
    feedback: str
    points: float = 1

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def earned(self) -> float:
        return self.points if self.passed else 0

    def line(self) -> str:
        """Return the one line a learner reads."""
        unit = "point" if self.points == 1 else "points"
        detail = f": {self.feedback}" if self.feedback else ""
        return f"{_ICONS[self.status]}  {self.name} ({_num(self.earned)}/{_num(self.points)} {unit}){detail}"

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON form the grader reads back (adds ``passed``)."""
        return {**asdict(self), "passed": self.passed}


def _num(x: float) -> str:
    return f"{x:g}"


def expect(condition: object, message: str) -> None:
    """Fail the running check with ``message`` unless ``condition`` is true."""
    if not condition:
        raise CheckFailed(message)


def expect_equal(actual: object, expected: object, *, what: str = "the result", hint: str = "") -> None:
    """Fail unless ``actual == expected``, showing both values and an optional hint."""
    if actual != expected:
        raise CheckFailed(f"expected {what} to be {expected!r}, got {actual!r}" + _tail(hint))


def expect_type(value: object, kind: type | tuple[type, ...], *, what: str = "the result") -> None:
    """Fail unless ``value`` is an instance of ``kind`` (a forgotten ``return`` gives None)."""
    if isinstance(value, kind):
        return
    names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
    why = " (did you forget to `return` it?)" if value is None else ""
    article = "an" if names[0] in "aeiouAEIOU" else "a"
    raise CheckFailed(f"expected {what} to be {article} {names}, got {type(value).__name__} {value!r}{why}")


def expect_close(actual: object, expected: float, *, rel: float = 1e-6, abs: float = 0.0,
                 what: str = "the result", hint: str = "") -> None:
    """Fail unless ``actual`` is within ``rel`` (relative) or ``abs`` of ``expected``.

    >>> expect_close(0.0045, 0.0045000001, what="cost")
    >>> expect_close(0.009, 0.0045, what="cost in USD", hint="is output priced twice?")
    Traceback (most recent call last):
    cfopt.course.checks.CheckFailed: expected cost in USD ≈ 0.0045 (up to rounding), got 0.009 (2x too high): is output priced twice?
    """
    if isinstance(actual, bool) or not isinstance(actual, (int, float)):
        expect_type(actual, (int, float), what=what)
    if math.isclose(float(actual), expected, rel_tol=rel, abs_tol=abs):  # type: ignore[arg-type]
        return
    tol = ("up to rounding" if rel <= 1e-6 else f"within {rel * 100:g}%") if rel else f"± {abs:g}"
    ratio = ""
    if expected and actual and (actual / expected > 0):  # type: ignore[operator]
        r = actual / expected  # type: ignore[operator]
        ratio = f" ({_times(r)} too high)" if r > 1 else f" ({_times(1 / r)} too low)"
    raise CheckFailed(f"expected {what} ≈ {expected:.6g} ({tol}), got {actual:.6g}{ratio}" + _tail(hint))


def _times(r: float) -> str:
    return f"{r:,.0f}x" if r >= 10 else f"{r:.3g}x"


def _tail(hint: str) -> str:
    return f": {hint}" if hint else ""


def stub(hint: str = "") -> None:
    """Raise ``NotImplementedError`` like a generated exercise stub (for examples and tests)."""
    raise NotImplementedError(hint or "write stub()")


def check(name: str, points: float = 1) -> Callable[[Callable[[], Any]], CheckResult]:
    """Decorate a function to run it now as the check ``name``; return its ``CheckResult``."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("kit.check needs a non-empty name")
    if isinstance(points, bool) or not isinstance(points, (int, float)) or points < 0:
        raise ValueError(f"kit.check points must be a number >= 0, got {points!r}")

    def run(fn: Callable[[], Any]) -> CheckResult:
        result = _run(name, points, fn)
        _results.append(result)
        _show(result)
        return result

    return run


def results() -> list[CheckResult]:
    """Return the results of every check run in this process so far, oldest first."""
    return list(_results)


def _run(name: str, points: float, fn: Callable[[], Any]) -> CheckResult:
    try:
        fn()
    except CheckFailed as e:
        return CheckResult(name, "failed", str(e) or "an expectation did not hold", points)
    except NotImplementedError as e:
        hint = str(e) or f"finish {_where(e, fn, describe=False) or 'the exercise'} above"
        return CheckResult(name, "not-yet", hint, points)
    except AssertionError as e:
        if _raised_in(e, fn):  # a bare assert in the check itself is the check's own verdict
            return CheckResult(name, "failed", str(e) or f"assertion failed {_where(e, fn)}", points)
        return CheckResult(name, "failed", _describe(e, fn), points)
    except Exception as e:  # noqa: BLE001 - a check must never crash the notebook
        return CheckResult(name, "failed", _describe(e, fn), points)
    return CheckResult(name, "passed", "", points)


def _raised_in(e: BaseException, fn: Callable[[], Any]) -> bool:
    frames = traceback.extract_tb(e.__traceback__)
    code = getattr(fn, "__code__", None)
    return bool(frames) and code is not None and frames[-1].filename == code.co_filename \
        and frames[-1].name == code.co_name


def _describe(e: BaseException, fn: Callable[[], Any]) -> str:
    msg = f"your code raised {type(e).__name__}: {e}" if str(e) else f"your code raised {type(e).__name__}"
    where = _where(e, fn)
    return f"{msg} ({where})" if where else msg


def _where(e: BaseException, fn: Callable[[], Any], describe: bool = True) -> str:
    """Name the deepest frame outside cfopt, Python and the check itself: the learner's line."""
    code = getattr(fn, "__code__", None)
    prefixes = (_PACKAGE_DIR, sys.prefix, sys.base_prefix, sys.exec_prefix)
    for fr in reversed(traceback.extract_tb(e.__traceback__)):
        if fr.filename.startswith(prefixes) or fr.filename.startswith("<frozen"):
            continue
        if code is not None and fr.filename == code.co_filename and fr.name == code.co_name:
            return ""
        if not describe:
            return f"{fr.name}()"
        text = f": {fr.line.strip()}" if fr.line else ""
        return f"in {fr.name}(), line {fr.lineno}{text}"
    return ""


def _show(result: CheckResult) -> None:
    """Print the feedback line; in IPython also attach the machine-readable result."""
    ip = _ipython()
    if ip is None:
        print(result.line())
        return
    from IPython.display import display
    display({"text/plain": result.line(), MIME_TYPE: result.as_dict()}, raw=True)


def _ipython() -> Any:
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython
    ip = get_ipython()
    return ip if ip is not None and getattr(ip, "kernel", None) is not None else None
