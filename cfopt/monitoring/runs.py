"""One run's headline figures, read off its monitor, and the comparison of two runs.

>>> a = RunSummary("before", requests=100, errors=2, p50_s=0.5, p95_s=2.0, p99_s=3.0, avg_s=0.8,
...                throughput_per_min=50.0, cost_usd=1.0, anomalies=0, alerts=0, duration_s=120.0)
>>> b = RunSummary("after", requests=100, errors=1, p50_s=0.4, p95_s=1.0, p99_s=1.5, avg_s=0.5,
...                throughput_per_min=50.0, cost_usd=0.25, anomalies=0, alerts=0, duration_s=120.0)
>>> [row for row in compare(a, b) if row[0] == "cost (USD)"]
[('cost (USD)', 1.0, 0.25, '-75%')]
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from ..clock import VirtualClock
from ..events import Event, EventBus
from .monitor import MonitorConfig, PerformanceMonitor
from ..pipeline.replay import Controls, Replay, ReplaySummary

__all__ = ["RunSummary", "summarize", "compare", "monitored_run", "FIELDS"]

# (label, attribute) in the order a comparison table shows them
FIELDS = (
    ("requests", "requests"), ("errors", "errors"), ("error rate", "error_rate"),
    ("p50 response (s)", "p50_s"), ("p95 response (s)", "p95_s"), ("p99 response (s)", "p99_s"),
    ("avg response (s)", "avg_s"), ("throughput (req/min)", "throughput_per_min"),
    ("cost (USD)", "cost_usd"), ("anomalies", "anomalies"), ("alerts", "alerts"),
    ("simulated duration (s)", "duration_s"),
)


@dataclass(slots=True)
class RunSummary:
    """Headline figures of one replay."""

    label: str
    requests: int
    errors: int
    p50_s: float
    p95_s: float
    p99_s: float
    avg_s: float
    throughput_per_min: float
    cost_usd: float
    anomalies: int
    alerts: int
    duration_s: float
    controls: dict[str, Any] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else math.nan


def summarize(label: str, m: PerformanceMonitor, *, requests: int, errors: int,
              duration_s: float, controls: dict[str, Any] | None = None) -> RunSummary:
    """The headline figures of a finished run from its monitor (every retained point)."""
    rt = m.get_stats("response_time")
    minutes = duration_s / 60.0
    return RunSummary(label, requests, errors, rt.median, rt.p95, rt.p99, rt.avg,
                      (requests / minutes) if minutes > 0 else math.nan, m.spent_usd(),
                      len(m.anomalies), len(m.alerts), duration_s, dict(controls or {}))


def _change(old: float, new: float) -> str:
    if any(isinstance(x, float) and math.isnan(x) for x in (old, new)):
        return ""
    if old == new:
        return "="
    if old == 0:
        return "new"
    return f"{(new - old) / abs(old):+.0%}"


def compare(before: RunSummary, after: RunSummary) -> list[tuple[str, float, float, str]]:
    """Rows (label, before, after, relative change) over ``FIELDS``."""
    return [(label, getattr(before, a), getattr(after, a), _change(getattr(before, a), getattr(after, a)))
            for label, a in FIELDS]


def monitored_run(replay: Replay, controls: Controls, *, config: MonitorConfig | None = None,
                  check_every_s: float = 60.0,
                  on_event: Callable[[Event, PerformanceMonitor], None] | None = None,
                  ) -> tuple[PerformanceMonitor, ReplaySummary]:
    """Run ``replay`` on a fresh virtual clock with a monitor listening; anomalies checked as it goes.

    ``check_anomaly`` runs every ``check_every_s`` simulated seconds (and once at the end);
    ``on_event(event, monitor)`` is called after the monitor has seen each event.
    """
    clock, bus = VirtualClock(), EventBus()
    m = PerformanceMonitor(clock=clock, bus=bus, config=config)
    mark = [check_every_s]
    failures: list[BaseException] = []

    def follow(e: Event) -> None:
        try:
            if e.t >= mark[0]:
                mark[0] = (e.t // check_every_s + 1) * check_every_s  # first: checks publish too
                m.check_anomaly()
            if on_event is not None:
                on_event(e, m)
        except Exception as exc:  # the bus would swallow it; keep it to raise after the run
            failures.append(exc)
            raise
    bus.subscribe(follow)
    summary = replay(controls, clock=clock, bus=bus)
    m.check_anomaly()
    if failures:
        raise failures[0]
    if bus.errors:
        raise RuntimeError(f"{bus.errors} event listener error(s) during the replay")
    return m, summary
