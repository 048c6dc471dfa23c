"""How ``cfopt.bonus.autotune`` scores a window: ``WindowMetrics`` read from the monitor, and
the ``Objective`` that prices them.

**Objective**, USD per request (every weight is an assumption to change, not a measurement)::

    cost       mix-adjusted spend: spend / uncached_cost * reference_usd
    + memory   rent_usd_per_entry * memory_entries
    + stale    stale_usd_per_hour * mean age (h) of the answers served from cache * hit rate
    + slow     late_usd_per_s * max(0, p95 response time - p95_target_s)
    + misses   miss_usd * max(0, min_hit_rate - hit rate)
    + errors   error_usd * error rate

A window's spend depends more on its mix (one video costs a hundred photo searches) than on the
knobs, so it is divided by what the window's requests would cost with no cache and multiplied by
one fixed reference (by default the workload's mean uncached cost per request, ``reference_usd``).

>>> m = WindowMetrics(requests=100, hit_rate=0.5, p95_s=7.0, cost_per_request_usd=0.03,
...                   spend_share=0.5, error_rate=0.0, mean_age_s=0.0)
>>> terms = Objective(reference_usd=0.02).terms(m, {"memory_entries": 1000})
>>> {k: round(v, 6) for k, v in terms.items()}
{'cost': 0.01, 'memory': 0.0002, 'stale': 0.0, 'slow': 0.002, 'misses': 0.0, 'errors': 0.0}
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Mapping, Sequence

from ..cost.optimizer import CostOptimizer
from ..errors import ConfigError
from ..monitoring.monitor import PerformanceMonitor
from ..workload import Request

__all__ = ["WindowMetrics", "Objective", "reference_usd"]


@dataclass(frozen=True, slots=True)
class WindowMetrics:
    """What the monitor measured over one window."""

    requests: int                 # finished in the window (answered or failed)
    hit_rate: float
    p95_s: float                  # response time, answered requests
    cost_per_request_usd: float   # spend in the window / requests
    spend_share: float            # spend / what the window's finished requests would cost uncached
    error_rate: float
    mean_age_s: float             # age of the answers served from cache (0: no hits)

    @classmethod
    def shadow_from_monitor(cls, m: PerformanceMonitor, period: float,
                            name: str) -> "WindowMetrics | None":
        """The same window as shadow cache ``name`` saw it (None: it did not run in it).

        Hits, ages and the cost of misses are the shadow's; the cost measured is moved by the
        difference between the shadow's misses and the real cache's, priced alike (uncached);
        response time and errors stay the real ones.
        """
        hits = m.get_stats(f"shadow_hit.{name}", period)
        if not hits.count:
            return None
        real = cls.from_monitor(m, period)
        uncached = float(m.series("uncached_cost_usd", period)[1].sum())
        delta = (float(m.series(f"shadow_miss_cost_usd.{name}", period)[1].sum())
                 - float(m.series("miss_cost_usd", period)[1].sum()))
        ages = m.series(f"shadow_age_s.{name}", period)[1]
        return replace(real, hit_rate=hits.avg,
                       cost_per_request_usd=real.cost_per_request_usd + delta / max(real.requests, 1),
                       spend_share=real.spend_share + (delta / uncached if uncached > 0 else 0.0),
                       mean_age_s=float(ages.mean()) if ages.size else 0.0)

    @classmethod
    def from_monitor(cls, m: PerformanceMonitor, period: float) -> "WindowMetrics":
        """Read the last ``period`` seconds of ``m``."""
        done = m.get_stats("error_rate", period)
        rt, hits = m.get_stats("response_time", period), m.get_stats("hit_rate", period)
        spend = float(m.series("cost_usd", period)[1].sum())
        uncached = float(m.series("uncached_cost_usd", period)[1].sum())
        ages = m.series("cache_age_s", period)[1]
        n = done.count
        return cls(n, hits.avg if hits.count else 0.0, rt.p95 if rt.count else 0.0,
                   spend / n if n else 0.0, spend / uncached if uncached > 0 else 0.0,
                   done.avg if n else 0.0, float(ages.mean()) if ages.size else 0.0)


@dataclass(frozen=True, slots=True)
class Objective:
    """The score of a window in USD per request; lower is better. Weights are assumptions."""

    reference_usd: float | None = None   # None: the workload's mean uncached cost per request
    rent_usd_per_entry: float = 2e-7     # memory: 10,000 entries cost $0.002 a request
    stale_usd_per_hour: float = 0.004    # an answer an hour old, served: worth $0.004 less
    p95_target_s: float = 5.0
    late_usd_per_s: float = 0.001        # each second of p95 over the target, per request
    min_hit_rate: float = 0.3
    miss_usd: float = 0.01               # per request, per unit of hit rate under min_hit_rate
    error_usd: float = 0.01              # per request, per unit of error rate

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None and f.name == "reference_usd":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or v != v:
                raise ConfigError(f"Objective.{f.name} must be a number >= 0, got {v!r}")
        if self.min_hit_rate > 1:
            raise ConfigError(f"Objective.min_hit_rate must lie in [0, 1], got {self.min_hit_rate!r}")

    def terms(self, m: WindowMetrics, knobs: Mapping[str, float]) -> dict[str, float]:
        """Each part of the score, in USD per request."""
        cost = (m.spend_share * self.reference_usd if self.reference_usd is not None
                else m.cost_per_request_usd)
        return {"cost": cost,
                "memory": self.rent_usd_per_entry * knobs.get("memory_entries", 0),
                "stale": self.stale_usd_per_hour * m.mean_age_s / 3600 * m.hit_rate,
                "slow": self.slow(m.p95_s),
                "misses": self.miss_usd * max(0.0, self.min_hit_rate - m.hit_rate),
                "errors": self.error_usd * m.error_rate}

    def slow(self, p95_s: float) -> float:
        """The latency term of a p95 response time."""
        return self.late_usd_per_s * max(0.0, p95_s - self.p95_target_s)

    def score(self, m: WindowMetrics, knobs: Mapping[str, float]) -> float:
        return sum(self.terms(m, knobs).values())


def reference_usd(requests: Sequence[Request]) -> float:
    """The mean cost per request with no cache (routed model, output at its cap)."""
    opt = CostOptimizer()
    return sum(opt.estimate_cost(r, opt.select_optimal_model(r).model) for r in requests) / len(requests)
