"""Recommendations: rules that read a monitor's figures and say what to do, with the figure why.

A rule is a plain function ``rule(monitor, period) -> Recommendation | None``. It asks the
monitor for stats (``monitor.get_stats(metric, period)``) and returns a recommendation that
carries the figure that triggered it and the threshold it crossed, or None. The defaults
cover the exercise's three (response time over 2 s, hit rate under 0.5, a rising cost trend)
and more; add your own to ``PerformanceMonitor(rules=...)``.

>>> from cfopt.clock import VirtualClock
>>> from cfopt.monitoring.monitor import PerformanceMonitor
>>> clock = VirtualClock(); m = PerformanceMonitor(clock=clock)
>>> for _ in range(10):
...     clock.advance(1.0); m.track("response_time", 2.5)
>>> slow_responses(m, None).message
'Average response time 2.50 s is over 2 s: cache repeated requests, stream text, route light tasks to faster models.'
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from .series import Stats

__all__ = [
    "Recommendation", "Rule", "StatsSource", "DEFAULT_RULES", "slow_responses", "slow_tail",
    "low_hit_rate", "weak_cache_layer", "rising_cost", "high_error_rate", "budget_pace",
    "deep_queue", "shifts_seen",
]

SEVERITIES = ("high", "medium", "low")


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One thing to do, why (``figure`` against ``threshold`` on ``metric``) and how urgent."""

    rule: str
    severity: str   # "high" | "medium" | "low"
    metric: str
    figure: float
    threshold: float
    message: str


class StatsSource(Protocol):
    """What a rule may ask a monitor."""

    def get_stats(self, metric: str, period: float | None = None) -> Stats: ...
    def series(self, metric: str, period: float | None = None) -> tuple[Any, Any]: ...
    def metrics(self) -> list[str]: ...
    @property
    def anomalies(self) -> list: ...
    @property
    def daily_budget_usd(self) -> float | None: ...
    def spent_usd(self) -> float: ...


Rule = Callable[[StatsSource, "float | None"], "Recommendation | None"]
RESPONSE_TARGET_S = 2.0   # the exercise's "response time under 2 s"


def slow_responses(m: StatsSource, period: float | None) -> Recommendation | None:
    """The exercise's rule: average response time over 2 s."""
    s = m.get_stats("response_time", period)
    if s.count and s.avg > 2.0:
        return Recommendation("slow_responses", "high", "response_time", s.avg, 2.0,
                              f"Average response time {s.avg:.2f} s is over 2 s: cache repeated "
                              "requests, stream text, route light tasks to faster models.")
    return None


def slow_tail(m: StatsSource, period: float | None) -> Recommendation | None:
    """p95 response time over the exercise's 2 s, even when the average looks fine."""
    s = m.get_stats("response_time", period)
    if s.count and s.p95 > RESPONSE_TARGET_S:
        miss = m.get_stats("response_time.miss", period)
        where = f" (misses alone: p95 {miss.p95:.2f} s)" if miss.count else ""
        # The model whose misses weigh most in the tail: the most of them over the target.
        over: list[tuple[int, str, int]] = []
        for name in m.metrics():
            if name.startswith("response_time.miss."):
                _, values = m.series(name, period)
                n = int((values > RESPONSE_TARGET_S).sum())
                if n:
                    over.append((n, name.removeprefix("response_time.miss."), len(values)))
        if over:
            n, model, total = max(over)
            where += (f"; misses on {model} weigh most ({n:,} of its {total:,} over "
                      f"{RESPONSE_TARGET_S:g} s)")
            advice = ("where quality allows, a faster model; stream text, answer media with a "
                      "handle, defer work nobody waits on")
        else:
            advice = "defer slow media behind a handle, add a timeout with fallback"
        return Recommendation("slow_tail", "medium", "response_time.p95", s.p95, RESPONSE_TARGET_S,
                              f"p95 response time {s.p95:.2f} s is over the {RESPONSE_TARGET_S:g} s "
                              f"target{where}: {advice}.")
    return None


def low_hit_rate(m: StatsSource, period: float | None) -> Recommendation | None:
    """The exercise's rule: cache hit rate under 0.5."""
    s = m.get_stats("hit_rate", period)
    if s.count and s.avg < 0.5:
        return Recommendation("low_hit_rate", "high", "hit_rate", s.avg, 0.5,
                              f"Cache hit rate {s.avg:.0%} is under 50%: normalise cache keys, "
                              "add a semantic layer, raise capacity or TTL.")
    return None


def weak_cache_layer(m: StatsSource, period: float | None) -> Recommendation | None:
    """The cache layer with the lowest hit rate, when it answers under 10% of its lookups."""
    worst: tuple[float, str] | None = None
    for name in m.metrics():
        if name.startswith("hit_rate."):
            s = m.get_stats(name, period)
            if s.count >= 20 and (worst is None or s.avg < worst[0]):
                worst = (s.avg, name)
    if worst is not None and worst[0] < 0.10:
        layer = worst[1].split(".", 1)[1]
        return Recommendation("weak_cache_layer", "low", worst[1], worst[0], 0.10,
                              f"The {layer} layer answers only {worst[0]:.0%} of its lookups: "
                              "it costs a lookup on every miss; resize it or remove it.")
    return None


def rising_cost(m: StatsSource, period: float | None) -> Recommendation | None:
    """The exercise's rule: spend per minute rising by 20% or more across the window."""
    s = m.get_stats("cost_per_min", period)
    if s.count < 3 or not s.avg > 0:
        return None
    minutes = s.count  # one point per minute
    rise = s.trend_per_min * minutes / s.avg
    if rise > 0.20:
        return Recommendation("rising_cost", "medium", "cost_per_min.trend", s.trend_per_min, 0.0,
                              f"Spend per minute is rising by ${s.trend_per_min:.4f}/min each "
                              f"minute ({rise:.0%} over {minutes} min, average ${s.avg:.4f}/min): "
                              "check routing and the cache before the budget does.")
    return None


def high_error_rate(m: StatsSource, period: float | None) -> Recommendation | None:
    """More than 2% of requests failed."""
    s = m.get_stats("error_rate", period)
    if s.count and s.avg > 0.02:
        return Recommendation("high_error_rate", "high", "error_rate", s.avg, 0.02,
                              f"{s.avg:.1%} of requests failed (over 2%): retry 429/529/500 with "
                              "backoff and jitter, add a circuit breaker and a fallback model.")
    return None


def budget_pace(m: StatsSource, period: float | None) -> Recommendation | None:
    """At the current spend rate the daily budget would run out within the day."""
    budget = m.daily_budget_usd
    s = m.get_stats("cost_per_min", period)
    if budget is None or s.count == 0 or not s.avg > 0:
        return None
    per_day = s.avg * 1440
    if per_day > budget:
        left = max(budget - m.spent_usd(), 0.0)
        hours = left / (s.avg * 60)
        return Recommendation("budget_pace", "high", "cost_per_day", per_day, budget,
                              f"At ${s.avg * 60:.2f}/h the day would cost ${per_day:.2f}, over the "
                              f"${budget:.2f} daily budget: it runs out in {hours:.1f} h.")
    return None


def deep_queue(m: StatsSource, period: float | None) -> Recommendation | None:
    """The queue's p95 depth over 50 waiting requests."""
    s = m.get_stats("queue_depth", period)
    if s.count and s.p95 > 50:
        return Recommendation("deep_queue", "medium", "queue_depth.p95", s.p95, 50.0,
                              f"Queue depth p95 is {s.p95:.0f}: raise concurrency or batch size, "
                              "or shed low-priority work.")
    return None


def shifts_seen(m: StatsSource, period: float | None) -> Recommendation | None:
    """Anomalies (sudden shifts) were detected."""
    found = m.anomalies
    if not found:
        return None
    last = found[-1]
    ratio = float(last.data.get("ratio", math.nan))
    return Recommendation("shifts_seen", "high", str(last.data.get("metric", "")), ratio, 1.0,
                          f"{len(found)} sudden shift(s); latest at t={last.t:.0f} s: {last.name}. "
                          "Look at the provider's status and fail over if it persists.")


DEFAULT_RULES: tuple[Rule, ...] = (
    slow_responses, slow_tail, low_hit_rate, weak_cache_layer, rising_cost, high_error_rate,
    budget_pace, deep_queue, shifts_seen,
)
