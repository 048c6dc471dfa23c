"""PerformanceMonitor: metrics over time windows, anomalies, alerts and recommendations.

The monitor only listens. Stages publish events on an ``EventBus``; the monitor turns them into
time series (timestamps from the event, or from the injected clock for ``track``):

==========================================================  ===================================
event                                                       series it feeds
==========================================================  ===================================
``metric "response_time"`` value s, data ``cache`` hit/miss  ``response_time``, ``.hit``/``.miss``,
and ``model``                                               ``.miss.<model>``, ``hit_rate`` (1/0),
                                                            ``error_rate`` (0)
``error`` (any name; a finished request that failed)        ``error_rate`` (1)
``metric "cost_usd"`` value USD                              ``cost_usd``, ``budget_burn``
``metric "cache_lookup"`` 1/0, data ``layer``               ``hit_rate.<layer>``
``metric "queue_depth"`` value n                             ``queue_depth``
any other ``metric``                                        a series of that name
``alert`` (budget 50/80/100%...), ``anomaly``               ``monitor.alerts``, ``.anomalies``
==========================================================  ===================================

Two series are derived per minute: ``throughput`` (finished requests per minute) and
``cost_per_min`` (USD per minute). ``error_rate`` and ``hit_rate`` hold 0/1 points, so their
average is the rate.

>>> from cfopt.clock import VirtualClock
>>> from cfopt.events import EventBus, Event
>>> clock, bus = VirtualClock(), EventBus()
>>> m = PerformanceMonitor(clock=clock, bus=bus)
>>> for i in range(100):
...     clock.advance(0.6)
...     bus.publish(Event(clock.now(), "metric", "response_time", 0.5 + i / 100, {"cache": "miss"}))
>>> s = m.get_stats("response_time", period=60)
>>> s.count, round(s.p95, 2), round(s.trend_per_min, 2)
(100, 1.44, 1.0)
>>> m.get_stats("throughput", period=60).avg   # finished requests in the last minute
100.0
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from .anomaly import AnomalyConfig, ShiftDetector
from ..clock import Clock, VirtualClock
from ..errors import ConfigError
from ..events import Event, EventBus
from .recommendations import DEFAULT_RULES, Recommendation, Rule
from .series import Stats, TimeSeries, compute_stats

__all__ = ["PerformanceMonitor", "MonitorConfig", "Report", "Stats", "REPORT_METRICS"]

DERIVED = {"throughput": ("error_rate", "count"), "cost_per_min": ("cost_usd", "sum")}
REPORT_METRICS = ("response_time", "response_time.hit", "response_time.miss", "throughput",
                  "error_rate", "cost_usd", "cost_per_min", "hit_rate", "queue_depth", "budget_burn")


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """How long points are kept, the budget burn is measured against, and anomalies are found."""

    retention_s: float | None = 3600.0
    daily_budget_usd: float | None = None          # None: no budget_burn series
    anomaly: AnomalyConfig = field(default_factory=AnomalyConfig)
    # check_anomaly()'s default metrics. Not cost per call: one video costs 100x a photo
    # search, so its per-call mean jumps with the request mix; budgets and rising_cost cover it.
    watch: tuple[str, ...] = ("response_time", "error_rate")


@dataclass(slots=True)
class Report:
    """What ``generate_report`` found: stats per metric, events, recommendations."""

    generated_at: float
    period: float | None
    stats: dict[str, Stats]
    spent_usd: float
    alerts: list[Event]
    anomalies: list[Event]
    recommendations: list[Recommendation]

    def as_dict(self) -> dict:
        """Plain data for JSON: stats as dicts, events as (t, name, value)."""
        def clean(x: float) -> float | None:
            return None if isinstance(x, float) and math.isnan(x) else x
        return {
            "generated_at": self.generated_at, "period": self.period, "spent_usd": self.spent_usd,
            "stats": {k: {f: clean(getattr(s, f)) for f in s.__dataclass_fields__}
                      for k, s in self.stats.items()},
            "alerts": [{"t": e.t, "name": e.name, "value": e.value} for e in self.alerts],
            "anomalies": [{"t": e.t, "name": e.name, "value": e.value} for e in self.anomalies],
            "recommendations": [{f: getattr(r, f) for f in r.__dataclass_fields__}
                                for r in self.recommendations],
        }


class PerformanceMonitor:
    """Track metrics against the clock; stats, anomalies and recommendations over windows."""

    def __init__(self, *, clock: Clock | None = None, bus: EventBus | None = None,
                 config: MonitorConfig | None = None, rules: Iterable[Rule] | None = None) -> None:
        self.clock: Clock = clock if clock is not None else VirtualClock()
        self.config = config if config is not None else MonitorConfig()
        self.rules: list[Rule] = list(DEFAULT_RULES if rules is None else rules)
        self.bus = bus
        self.alerts: list[Event] = []
        self.anomalies: list[Event] = []
        self._series: dict[str, TimeSeries] = {}
        self._spent = 0.0
        self._detector = ShiftDetector(self.config.anomaly)
        self._notice_listeners: list[Callable[[Event], None]] = []
        self._unsubscribe = bus.subscribe(self.handle) if bus is not None else None
        self.heard: dict[str, int] = {}   # events heard per pipeline stage (``data["stage"]``)

    def __repr__(self) -> str:
        return f"PerformanceMonitor(metrics={len(self._series)}, clock={self.clock!r})"

    @property
    def daily_budget_usd(self) -> float | None:
        return self.config.daily_budget_usd

    # -- recording ------------------------------------------------------------------------
    def track(self, metric: str, value: float, t: float | None = None) -> None:
        """Record ``value`` for ``metric`` at clock time ``t`` (default: now)."""
        if not isinstance(metric, str):
            raise ConfigError(f"metric names are strings, got {metric!r}")
        try:
            s = self._series[metric]
        except KeyError:
            if not metric or metric in DERIVED:
                raise ConfigError(f"cannot track {metric!r}: empty or a derived metric") from None
            s = self._series[metric] = TimeSeries(self.config.retention_s)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            # one NaN would turn every statistic of the metric into nan, long after the cause
            raise ConfigError(f"cannot track {value!r} for {metric!r}: values must be finite numbers")
        s.append(self.clock.now() if t is None else t, value)

    def bind(self, env: Any) -> None:
        """As the pipeline's monitor: listen to the run's bus on the run's clock."""
        self.close()
        self.clock, self.bus = env.clock, env.bus
        self._unsubscribe = env.bus.subscribe(self.handle)

    def handle(self, e: Event) -> None:
        """Turn one event into series points (the bus calls this)."""
        kind, name = e.kind, e.name
        stage = e.data.get("stage") if e.data else None
        if stage is not None:
            self.heard[stage] = self.heard.get(stage, 0) + 1
        if kind == "metric":
            if e.value is None:
                return
            if name == "response_time":
                self.track("response_time", e.value, e.t)
                cache = e.data.get("cache")
                if cache in ("hit", "miss"):
                    self.track(f"response_time.{cache}", e.value, e.t)
                    self.track("hit_rate", 1.0 if cache == "hit" else 0.0, e.t)
                    if cache == "miss" and e.data.get("model"):  # which model sets the tail
                        self.track(f"response_time.miss.{e.data['model']}", e.value, e.t)
                self.track("error_rate", 0.0, e.t)
            elif name == "cost_usd":
                self._spent += e.value
                self.track("cost_usd", e.value, e.t)
                if self.config.daily_budget_usd:
                    self.track("budget_burn", self._spent / self.config.daily_budget_usd, e.t)
            elif name == "cache_lookup":
                self.track(f"hit_rate.{e.data.get('layer', 'cache')}", e.value, e.t)
            else:
                self.track(name, e.value, e.t)
        elif kind == "error":  # a request that ended without an answer
            self.track("error_rate", 1.0, e.t)
        elif kind == "retry":  # one failed attempt of a request that may still succeed
            self.track("retries", 1.0, e.t)
        elif kind in ("alert", "anomaly"):
            (self.alerts if kind == "alert" else self.anomalies).append(e)
            for listener in tuple(self._notice_listeners):
                listener(e)

    def on_notice(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` with every alert and anomaly as it arrives."""
        self._notice_listeners.append(listener)

    def close(self) -> None:
        """Stop listening to the bus."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # -- reading --------------------------------------------------------------------------
    def metrics(self) -> list[str]:
        """Names of the tracked series, sorted."""
        return sorted(self._series)

    def spent_usd(self) -> float:
        """Total cost seen since the monitor started (never pruned)."""
        return self._spent

    def series(self, metric: str, period: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(times, values) of ``metric`` over the last ``period`` seconds (copies)."""
        if metric in DERIVED:
            return self._per_minute(metric, period)
        s = self._series.get(metric)
        if s is None:
            return np.empty(0), np.empty(0)
        t, v = s.window(self.clock.now(), period)
        return t.copy(), v.copy()

    def get_stats(self, metric: str, period: float | None = None) -> Stats:
        """min, max, avg, median, p95, p99, trend per minute and count over the last ``period`` s."""
        if period is not None and period <= 0:
            raise ConfigError(f"period must be positive seconds or None, got {period}")
        if metric in DERIVED:
            return compute_stats(*self._per_minute(metric, period))
        s = self._series.get(metric)
        return s.stats(self.clock.now(), period) if s is not None else Stats.empty()

    def _per_minute(self, metric: str, period: float | None) -> tuple[np.ndarray, np.ndarray]:
        # Whole minutes ending now, empty minutes included (a quiet minute is a 0, not a gap).
        source, how = DERIVED[metric]
        now = self.clock.now()
        s = self._series.get(source)
        if s is None:
            return np.empty(0), np.empty(0)
        t, v = s.window(now, period)
        span = period if period is not None else (now - float(t[0]) if t.size else 0.0)
        n = int(span // 60)
        if n == 0:
            return np.empty(0), np.empty(0)
        age = now - t
        keep = age < n * 60
        idx = (n - 1 - (age[keep] // 60)).astype(np.int64)
        out = np.bincount(idx, weights=v[keep] if how == "sum" else None, minlength=n)
        ends = now - 60.0 * np.arange(n - 1, -1, -1)
        return ends, out.astype(np.float64)

    # -- judging --------------------------------------------------------------------------
    def check_anomaly(self, metrics: Iterable[str] | None = None) -> list[Event]:
        """Check ``metrics`` (default ``config.watch``) for a sudden shift; new anomalies out.

        Each new anomaly is published on the bus when there is one (so every listener sees it)
        and recorded in ``self.anomalies``.
        """
        now, found = self.clock.now(), []
        a = self.config.anomaly
        for name in (self.config.watch if metrics is None else metrics):
            t, v = self.series(name, a.recent_s + a.baseline_s)
            event = self._detector.check(name, t, v, now)
            if event is not None:
                found.append(event)
                if self.bus is not None and self._unsubscribe is not None:
                    self.bus.publish(event)   # comes back to self.handle, which records it
                else:
                    self.handle(event)
        return found

    def generate_report(self, period: float | None = None) -> Report:
        """Stats of the main metrics and every rule's recommendation, most severe first."""
        stats = {m: self.get_stats(m, period) for m in REPORT_METRICS}
        for name in self.metrics():
            if name.startswith("hit_rate."):
                stats[name] = self.get_stats(name, period)
        recs = [r for r in (rule(self, period) for rule in self.rules) if r is not None]
        order = {"high": 0, "medium": 1, "low": 2}
        recs.sort(key=lambda r: order.get(r.severity, 3))
        return Report(self.clock.now(), period, stats, self._spent, list(self.alerts),
                      list(self.anomalies), recs)
