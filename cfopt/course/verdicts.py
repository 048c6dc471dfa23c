"""Verdicts: the grade of one check, from the learner's observations and the reference's.

A probe (``cfopt.course.probe``) runs twice on the same seeded cases: in the learner's sandbox
and in the solution's. Each run gives a list of cases, plain JSON::

    {"case": "my_effective_rank('low', 45.0, 20.0)", "value": -0.25}
    {"case": "percentile([], 50)", "error": "ValueError", "message": "no values"}

``judge`` runs outside every sandbox: it insists both lists describe the same cases, then asks
the probe's verdict for a ``Verdict``: the share of the check's points earned and the feedback.
Verdicts are plain functions registered by name, so a new kind of exercise adds its own::

    @verdict("within_budget")
    def within_budget(got, want, *, slack=0.05):
        ...
        return Verdict(1.0, "") if ok else Verdict(0.0, "spent $12.40, over the budget of $12.00")

>>> want = [{"case": "f(2)", "value": 4.0}, {"case": "f(3)", "value": 9.0}]
>>> judge([{"case": "f(2)", "value": 4}, {"case": "f(3)", "value": 9.000000001}], want).passed
True
>>> judge([{"case": "f(2)", "value": 4}, {"case": "f(3)", "value": 6}], want).message
'case 2 of 2: f(3) gave 6; expected 9.0'
>>> judge([{"case": "f(2)", "value": 4}, {"case": "f(3)", "value": 6}], want, "share").fraction
0.5
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..errors import ConfigError

__all__ = ["Verdict", "VERDICTS", "verdict", "judge", "same", "close", "share", "outcome"]

Case = Mapping[str, Any]
_MAX_DEPTH = 40


@dataclass(frozen=True, slots=True)
class Verdict:
    """The share of a check's points earned (0 to 1) and what to tell the learner."""

    fraction: float
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.fraction >= 1.0


VERDICTS: dict[str, Callable[..., Verdict]] = {}


def verdict(name: str) -> Callable[[Callable[..., Verdict]], Callable[..., Verdict]]:
    """Register a verdict function ``(got, want, **params) -> Verdict`` under ``name``."""
    def register(fn: Callable[..., Verdict]) -> Callable[..., Verdict]:
        VERDICTS[name] = fn
        return fn
    return register


def judge(got: Sequence[Case], want: Sequence[Case], kind: str = "close",
          params: Mapping[str, Any] | None = None) -> Verdict:
    """Compare two probe runs of one check: same cases first, then the named verdict."""
    if kind not in VERDICTS:
        raise ConfigError(f"unknown verdict {kind!r}; known: {', '.join(sorted(VERDICTS))}")
    if not want:
        raise ConfigError("the reference observed no cases")
    labels_got = [c.get("case") for c in got]
    for i, w in enumerate(want):
        if i >= len(got):
            return Verdict(0.0, f"the probe stopped after {len(got)} of {len(want)} cases")
        if labels_got[i] != w.get("case"):
            return Verdict(0.0, f"case {i + 1} of {len(want)} is {show(labels_got[i])} here but "
                                f"{show(w.get('case'))} for the reference: did a cell change the "
                                f"notebook's data, or the probe's inputs?")
    if len(got) != len(want):
        return Verdict(0.0, f"{len(got)} cases observed, the reference has {len(want)}")
    try:
        return VERDICTS[kind](list(got), list(want), **dict(params or {}))
    except RecursionError:
        return Verdict(0.0, "an observation is nested too deeply to compare")


def show(value: Any, limit: int = 160) -> str:
    """A short readable form of a JSON value (strings without quotes at the top level)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "..."


def same(a: Any, b: Any, *, rel: float = 1e-9, abs: float = 1e-12, _depth: int = 0) -> bool:
    """JSON equality, with numbers equal within ``rel`` or ``abs`` (bools are not numbers)."""
    if _depth > _MAX_DEPTH:
        return False
    number = (int, float)
    if isinstance(a, number) and isinstance(b, number) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=abs)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, rel=rel, abs=abs, _depth=_depth + 1) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], rel=rel, abs=abs, _depth=_depth + 1) for k in a)
    return type(a) is type(b) and a == b


def _case_right(g: Case, w: Case, rel: float, abs: float) -> bool:
    if "error" in w:
        return g.get("error") == w["error"]
    return "error" not in g and "value" in g and same(g["value"], w.get("value"), rel=rel, abs=abs)


def _explain(i: int, n: int, g: Case, w: Case) -> str:
    where = f"case {i + 1} of {n}: {show(g.get('case'))}"
    if g.get("error") == "NotImplementedError":
        return f"not yet: {g.get('message') or 'the exercise is still a stub'} ({where})"
    if "error" in g and "error" not in w:
        return f"{where} raised {g['error']}: {show(g.get('message', ''))}; expected {show(w.get('value'))}"
    if "error" in w:
        got = f"raised {g['error']}" if "error" in g else f"gave {show(g.get('value'))}"
        return f"{where} {got}; expected it to raise {w['error']}"
    return f"{where} gave {show(g.get('value'))}; expected {show(w.get('value'))}"


@verdict("close")
def close(got: Sequence[Case], want: Sequence[Case], *, rel: float = 1e-9, abs: float = 1e-12) -> Verdict:
    """All or nothing: every case must match the reference (numbers within ``rel``/``abs``)."""
    for i, (g, w) in enumerate(zip(got, want)):
        if not _case_right(g, w, rel, abs):
            return Verdict(0.0, _explain(i, len(want), g, w))
    return Verdict(1.0)


@verdict("share")
def share(got: Sequence[Case], want: Sequence[Case], *, rel: float = 1e-9, abs: float = 1e-12) -> Verdict:
    """Partial credit: the share of cases that match the reference."""
    right = [_case_right(g, w, rel, abs) for g, w in zip(got, want)]
    wrong = [i for i, ok in enumerate(right) if not ok]
    if not wrong:
        return Verdict(1.0)
    i = wrong[0]
    return Verdict(sum(right) / len(want), f"{len(wrong)} of {len(want)} cases wrong; first: "
                                           + _explain(i, len(want), got[i], want[i]))


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@verdict("outcome")
def outcome(got: Sequence[Case], want: Sequence[Case], *, better: str = "lower", within: float = 0.0,
            zero_at: float = 0.5) -> Verdict:
    """A scoring rule for outcomes (a cost, a latency, a hit rate) measured against the reference.

    Each case's value is a number. A case earns full credit when it is no worse than the
    reference's by more than ``within`` (relative), nothing once it is worse by ``zero_at``,
    and a linear share in between; the check earns the mean over cases.
    """
    if better not in ("lower", "higher"):
        raise ConfigError(f"outcome verdict: better must be 'lower' or 'higher', got {better!r}")
    credits, worst = [], None
    for i, (g, w) in enumerate(zip(got, want)):
        value, target = g.get("value"), w.get("value")
        if not _number(target):
            # the reference reached no outcome here (its choice broke the constraint on this
            # case): no answer can do worse, so any answer that ran earns the case
            credits.append(0.0 if "error" in g else 1.0)
            continue
        if "error" in g or not _number(value):
            credits.append(0.0)
            worst = worst or _explain(i, len(want), g, w)
            continue
        scale = max(abs(float(target)), 1e-12)
        gap = (value - target if better == "lower" else target - value) / scale
        credit = 1.0 if gap <= within else max(0.0, 1 - (gap - within) / max(zero_at - within, 1e-12))
        credits.append(credit)
        if credit < 1 and worst is None:
            worst = (f"case {i + 1} of {len(want)}: {show(g.get('case'))} reached {value:.6g}; the "
                     f"reference reached {target:.6g} ({gap:+.1%}, {better} is better)")
    fraction = sum(credits) / len(credits)
    return Verdict(fraction, "" if fraction >= 1 else worst or "")
