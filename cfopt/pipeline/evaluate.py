"""Replay a workload through the baseline and the optimized pipeline, and report on both.

``run_report`` is what ``cfopt report`` prints: a ``PerformanceMonitor`` is the optimized
pipeline's monitor stage (it only listens), its recommendations join the report's. ``stages``
puts your own classes in the optimized pipeline (``{"cost": MyCostOptimizer()}``), so the report
judges your code. ``contributions`` replays once without each optimization. ``replay_cache`` replays through a
pipeline whose only optimization is a given cache (the caching lessons' replay).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from ..errors import ConfigError
from ..cost.optimizer import CostOptimizer
from ..monitoring.monitor import MonitorConfig, PerformanceMonitor
from ..pricing import DEFAULT_PROFILE
from ..providers import Faults
from ..workload import load
from .core import Pipeline, run_both
from .report import build_report
from .score import false_hits, limits
from .types import PipelineConfig

__all__ = ["run_report", "contributions", "replay_cache", "CacheReplay", "CACHE_MODELS"]

# The cache lessons' models: each type's cheapest, so a replay's dollars are a call's floor.
CACHE_MODELS = {"text": "claude-haiku-5-5", "analysis": "claude-haiku-5-5",
                "image": "flux_schnell", "video": "video_5s", "audio": "audio_minute",
                "photo": "unsplash-search"}


@dataclass(frozen=True, slots=True)
class CacheReplay:
    """Where each request's answer came from, what was paid, and what was wrong."""

    requests: int
    by_source: dict[str, int] = field(default_factory=dict)
    provider_calls: int = 0
    errors: int = 0
    false_hits: int | None = 0      # None without intent labels
    cost_usd: float = 0.0
    saved_usd: float = 0.0          # what the cached answers cost when they were first made

    @property
    def hit_rate(self) -> float:
        """Share of requests a cache layer answered."""
        served = sum(n for s, n in self.by_source.items() if s not in ("provider", "error", "coalesced"))
        return served / self.requests if self.requests else 0.0

    @property
    def false_hit_rate(self) -> float:
        return (self.false_hits or 0) / self.requests if self.requests else 0.0


def replay_cache(requests: Sequence[Any], cache: Any, *, models: dict[str, str] | None = None,
                 seed: int = 0, tenant: str = "contentflow") -> CacheReplay:
    """Replay ``requests`` through a pipeline whose only optimization is ``cache`` (its
    near-duplicate search too, when it has one), each type on ``models`` (default
    ``CACHE_MODELS``), on the cache's clock. ``intent`` is read only to count false hits."""
    config = replace(PipelineConfig.select(only=["cache", "dedup"]), tenant=tenant)
    cost = CostOptimizer(default_models=models or CACHE_MODELS)
    run = Pipeline(config, cost=cost, cache=cache, seed=seed, clock=cache.clock).run(requests)
    sources: dict[str, int] = {}
    for o in run.outcomes:
        sources[o.source] = sources.get(o.source, 0) + 1
    cost_of = {o.origin: o.cost_usd for o in run.outcomes if o.source == "provider"}
    saved = sum(cost_of.get(o.origin, 0.0) for o in run.outcomes if o.from_cache)
    return CacheReplay(len(run.outcomes), sources, run.provider_calls, sources.get("error", 0),
                       false_hits(requests, run), round(run.cost_usd, 9), round(saved, 9))

_KEPT = ("optimized_cost_usd", "optimized_calls", "hit_rate", "p95_ms", "avg_ms", "error_rate")


def contributions(requests: Sequence[Any], config: PipelineConfig, baseline: Any, lim: Any, *,
                  seed: int = 0, profile: str = DEFAULT_PROFILE, faults: Faults | None = None,
                  redis_url: str | None = None, stages: dict[str, Any] | None = None,
                  speeds: str | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> dict[str, dict[str, float]]:
    """Replay once without each optimization of ``config``: what each one contributes."""
    out = {}
    for name in config.applied:
        on = [n for n in config.applied if n != name]
        tick = (lambda done, total, label=f"without {name}": progress(label, done, total)) \
            if progress is not None else None
        run = Pipeline(PipelineConfig.select(only=on) if on else PipelineConfig.baseline(),
                       seed=seed, profile=profile, faults=faults, redis_url=redis_url,
                       speeds=speeds, **_fresh(stages)).run(requests, tick)
        d = build_report(requests, baseline, run, lim)["details"]
        out[f"without {name}"] = {k: d[k] for k in _KEPT}
    return out


def _fresh(stages: dict[str, Any] | None) -> dict[str, Any]:
    """The stages for one more run: each is bound anew when the run starts."""
    return dict(stages or {})


def run_report(workload: str | Sequence[Any], *, seed: int = 0, profile: str = DEFAULT_PROFILE,
               redis_url: str | None = None, only: Sequence[str] = (), without: Sequence[str] = (),
               fault_rate: float = 0.0, progress: Any = None, with_contributions: bool = False,
               stages: dict[str, Any] | None = None,
               speeds: str | None = None) -> tuple[dict[str, Any], PerformanceMonitor]:
    """Replay ``workload`` (a JSONL path, or requests) through both pipelines; return the report
    and the monitor that listened to the optimized one.

    ``stages`` replaces stages of the optimized pipeline (``{"cost": MyCostOptimizer()}``);
    ``with_contributions`` adds ``contributions``: the figures without each optimization.
    """
    requests = load(workload) if isinstance(workload, (str, bytes)) or hasattr(workload, "__fspath__") \
        else list(workload)
    if not requests:
        raise ConfigError(f"{workload}: no requests to replay")
    config = PipelineConfig.select(only, without)
    third = fault_rate / 3  # injected failures split evenly: 429, 529, 500
    faults = Faults(rate_limited=third, overloaded=third, server_error=third) if fault_rate else None
    monitor = PerformanceMonitor(config=MonitorConfig(retention_s=None))
    baseline, optimized = run_both(requests, config, seed=seed, profile=profile, faults=faults,
                                   redis_url=redis_url, monitor=monitor, stages=_fresh(stages),
                                   progress=progress, speeds=speeds)
    recs = [r.message for r in monitor.generate_report().recommendations]
    lim = limits(requests, seed=seed, profile=profile, speeds=speeds)
    report = build_report(requests, baseline, optimized, lim, monitor_recs=recs)
    if with_contributions:
        report["contributions"] = {"all on": {k: report["details"][k] for k in _KEPT},
                                   **contributions(requests, config, baseline, lim, seed=seed,
                                                   profile=profile, faults=faults,
                                                   redis_url=redis_url, stages=stages,
                                                   speeds=speeds, progress=progress)}
    return report, monitor
