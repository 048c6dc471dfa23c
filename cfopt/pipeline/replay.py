"""Replays: a workload played on the virtual clock, reported to the monitor through events.

A replay is any callable ``replay(controls, *, clock, bus) -> ReplaySummary`` with a
``supports`` attribute naming the ``Controls`` fields it honours. The dashboard only knows
this seam. Both replays here build a ``cfopt.pipeline.Pipeline`` from the controls and run it:
there is one serving loop in the package.

``PipelineReplay``: the end-to-end pipeline (caches, routing by a quality bar, Message Batches
for low-priority text, coalescing, lazy media, pooling, retries); the controls set the cache's
capacity and TTL, the quality bar, batching on or off and injected errors.

``ProviderReplay``: the same pipeline with its optimizations off but pooled connections (and
routing, when a quality bar is set): every request to the providers under a concurrency limit
(the latency stage's ``max_in_flight``, so a queue forms), through the budget (each call
reserves its worst case first, alerts at 50/80/100% arrive on the bus, a call the daily budget
cannot take is refused), with the controls' models, injected faults and a provider slowdown
during a time window.

Events (see ``cfopt.monitoring.monitor`` for what they feed) are the pipeline's:
``response_time`` (with ``cache`` hit or miss), ``cost_usd`` per provider call, ``cache_lookup``
per layer, ``queue_depth``, ``error``, ``alert``, ``retry``, and ``progress`` (value: the share of
requests finished).

>>> from cfopt.clock import VirtualClock
>>> from cfopt.events import EventBus
>>> from cfopt.workload import Request
>>> reqs = [Request(t=float(i), type="text", prompt=f"A tagline for shop {i}.") for i in range(5)]
>>> summary = ProviderReplay(reqs)(Controls(text_model="haiku"), clock=VirtualClock(), bus=EventBus())
>>> summary.requests, summary.errors, summary.cost_usd > 0
(5, 0, True)
>>> summary = PipelineReplay(reqs)(Controls(cache_capacity=100), clock=VirtualClock(), bus=EventBus())
>>> summary.requests, summary.errors
(5, 0)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Protocol, Sequence

from ..cache.semantic import BoundedSemanticLayer
from ..cache.manager import CacheManager
from ..cache.policy import TTLPolicy
from ..clock import VirtualClock
from ..cost.budget import BudgetConfig
from ..cost.optimizer import CostOptimizer, QualityBar
from ..errors import ConfigError
from ..events import Event, EventBus
from ..latency.optimizer import PerformanceOptimizer
from ..pricing import DEFAULT_PROFILE
from ..providers import Faults
from ..workload import Request
from .core import Pipeline
from .types import PipelineConfig, RunResult

__all__ = ["Controls", "ReplaySummary", "Replay", "ProviderReplay", "PipelineReplay"]

MEMORY_ENTRIES = CacheManager().memory_entries   # the memory layer's default capacity
MEMORY_TTL_S = TTLPolicy().memory                 # how long it keeps a text answer


@dataclass(frozen=True, slots=True)
class Controls:
    """What a dashboard lets you change between runs; a replay honours those it ``supports``."""

    text_model: str = "sonnet"          # text and analysis requests
    image_model: str = "flux_dev"
    concurrency: int = 16               # calls in flight at once; the rest wait in a queue
    error_rate: float = 0.0             # injected failures, split evenly over 429/529/500
    slowdown: float = 1.0               # provider latency multiplier inside the window below
    slowdown_from_s: float = 0.0
    slowdown_until_s: float | None = None   # None: to the end
    daily_budget_usd: float | None = None   # None: the catalog's (50 under "exercise")
    quality_bar: float | None = None    # route by quality: share of the premium model's quality
                                        # non-critical tasks need (critical: at least 0.99);
                                        # None: no routing (ProviderReplay: text_model and
                                        # image_model; PipelineReplay: each type's premium)
    # The pipeline's (PipelineReplay). It sends each low-priority text as its own Message
    # Batches request, so there is a batching switch but no batch size to set.
    cache_capacity: int = MEMORY_ENTRIES   # entries the memory cache layer holds
    cache_ttl_s: float = MEMORY_TTL_S      # seconds the memory layer keeps a text answer
    batching: bool = True                  # low-priority text through Message Batches (half price)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {self.concurrency}")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ConfigError(f"error_rate must lie in [0, 1], got {self.error_rate}")
        if self.slowdown <= 0:
            raise ConfigError(f"slowdown must be positive, got {self.slowdown}")
        if self.daily_budget_usd is not None and not self.daily_budget_usd > 0:
            raise ConfigError(f"daily_budget_usd must be positive, got {self.daily_budget_usd}")
        if self.quality_bar is not None and not 0.0 <= self.quality_bar <= 1.0:
            raise ConfigError(f"quality_bar must lie in [0, 1], got {self.quality_bar}")
        if isinstance(self.cache_capacity, bool) or not isinstance(self.cache_capacity, int) \
                or self.cache_capacity < 1:
            raise ConfigError(f"cache_capacity must be a positive integer, got {self.cache_capacity!r}")
        if not self.cache_ttl_s > 0:
            raise ConfigError(f"cache_ttl_s must be positive seconds, got {self.cache_ttl_s}")

    @property
    def faults(self) -> Faults:
        """The injected faults: ``error_rate`` split evenly over 429, 529 and 500."""
        share = self.error_rate / 3
        return Faults(rate_limited=share, overloaded=share, server_error=share)

    def bar(self) -> QualityBar | None:
        """The routing bar: ``quality_bar`` for low and standard tasks, at least 0.99 for critical."""
        q = self.quality_bar
        return None if q is None else QualityBar(q, q, max(q, 0.99))


@dataclass(slots=True)
class ReplaySummary:
    """What a replay did, counted by the replay itself (the monitor measures the rest)."""

    requests: int
    errors: int
    cost_usd: float
    duration_s: float                  # simulated seconds from the first arrival to the last answer
    calls_by_model: dict[str, int] = field(default_factory=dict)


class Replay(Protocol):
    """The seam the dashboard drives."""

    supports: frozenset[str]

    def __call__(self, controls: Controls, *, clock: VirtualClock, bus: EventBus) -> ReplaySummary: ...


def _progress(bus: EventBus, clock: VirtualClock) -> Callable[[int, int], None]:
    def progress(done: int, total: int) -> None:
        bus.publish(Event(clock.now(), "progress", "replay", done / total,
                          {"done": done, "total": total}))
    return progress


def _summary(run: RunResult) -> ReplaySummary:
    errors = sum(1 for o in run.outcomes if o.error is not None)
    return ReplaySummary(len(run.outcomes), errors, run.cost_usd, run.duration_s,
                         dict(run.calls_by_model))


class ProviderReplay:
    """Every request straight to the providers: the pipeline with no cache and no batching.

    Under a concurrency limit (the latency stage's ``max_in_flight``: a queue forms), through
    the budget (every call reserves its worst case first), with the controls' models for text
    and images (or routed by a quality bar), injected faults and a slowdown window.
    """

    supports = frozenset({"text_model", "image_model", "concurrency", "error_rate", "slowdown",
                          "slowdown_from_s", "slowdown_until_s", "daily_budget_usd", "quality_bar"})

    def __init__(self, requests: Sequence[Request], *, seed: int = 0,
                 profile: str = DEFAULT_PROFILE) -> None:
        if not requests:
            raise ConfigError("a replay needs at least one request")
        self.requests = list(requests)
        self.seed, self.profile = seed, profile

    def __repr__(self) -> str:
        return f"ProviderReplay(requests={len(self.requests)}, seed={self.seed}, profile={self.profile!r})"

    def pipeline(self, c: Controls, *, clock: VirtualClock, bus: EventBus) -> Pipeline:
        """The pipeline these controls describe."""
        bar = c.bar()
        config = PipelineConfig.select(only=["pooling", "routing"] if bar else ["pooling"])
        models = {"text": c.text_model, "analysis": c.text_model, "image": c.image_model}
        cost = CostOptimizer(quality_bar=bar, default_models=models)
        catalog = cost.catalog
        budget = BudgetConfig(daily_usd=c.daily_budget_usd or catalog.budgets.daily_usd,
                              monthly_usd=catalog.budgets.monthly_usd)
        return Pipeline(config, cost=cost, latency=PerformanceOptimizer(
                            max_batch_size=1, max_in_flight=c.concurrency),
                        seed=self.seed, profile=self.profile,
                        faults=c.faults if c.error_rate else None, bus=bus, clock=clock,
                        budget=budget)

    def __call__(self, controls: Controls, *, clock: VirtualClock, bus: EventBus) -> ReplaySummary:
        """Replay the workload with ``controls``; blocks until the last request has finished."""
        c = controls
        schedule = []
        if c.slowdown != 1.0:   # calls that start inside the window are slower (times: the workload's)
            schedule.append((c.slowdown_from_s, lambda env: _slow(env, c.slowdown)))
            if c.slowdown_until_s is not None:
                schedule.append((c.slowdown_until_s, lambda env: _slow(env, 1.0)))
        run = self.pipeline(c, clock=clock, bus=bus).run(self.requests, _progress(bus, clock),
                                                          schedule=schedule)
        return _summary(run)


def _slow(env: Any, factor: float) -> None:
    for provider in env.providers:
        provider.faults = replace(provider.faults, slowdown=factor)


class PipelineReplay:
    """Every request of ``requests`` through the end-to-end pipeline, its knobs set by the controls.

    ``config`` gives the switches (default: every optimization on); the controls set routing
    (off when ``quality_bar`` is None: each type's premium model), batching, the memory cache's
    capacity and TTL, and injected errors.
    """

    supports = frozenset({"error_rate", "quality_bar", "cache_capacity", "cache_ttl_s", "batching"})

    def __init__(self, requests: Sequence[Request], *, seed: int = 0,
                 profile: str = DEFAULT_PROFILE, config: PipelineConfig | None = None,
                 supports: frozenset[str] | None = None) -> None:
        if not requests:
            raise ConfigError("a replay needs at least one request")
        self.requests = list(requests)
        self.seed, self.profile = seed, profile
        self.config = config if config is not None else PipelineConfig()
        if supports is not None:   # fewer controls: frozenset({"error_rate"}) replays config as is
            self.supports = type(self).supports & frozenset(supports)

    def __repr__(self) -> str:
        return (f"PipelineReplay(requests={len(self.requests)}, seed={self.seed}, "
                f"profile={self.profile!r}, config={self.config!r})")

    def pipeline(self, c: Controls, *, clock: VirtualClock, bus: EventBus) -> Pipeline:
        """The pipeline these controls describe: switches from ``config``, knobs from ``c``
        (only the controls this replay ``supports``; the others keep their defaults)."""
        if self.supports != type(self).supports:
            kept = {f: getattr(c, f) for f in self.supports if f in Controls.__dataclass_fields__}
            c = Controls(**kept)
        bar = c.bar()
        routing_off = "quality_bar" in self.supports and bar is None
        config = replace(self.config, routing=self.config.routing and not routing_off,
                         batching=self.config.batching and c.batching)
        cache = CacheManager(memory_entries=c.cache_capacity,
                             ttls=TTLPolicy().with_memory(c.cache_ttl_s),
                             semantic=BoundedSemanticLayer())
        return Pipeline(config, cost=CostOptimizer(quality_bar=bar), cache=cache, seed=self.seed,
                        profile=self.profile, faults=c.faults if c.error_rate else None,
                        bus=bus, clock=clock)

    def __call__(self, controls: Controls, *, clock: VirtualClock, bus: EventBus) -> ReplaySummary:
        """Replay the workload with ``controls``; blocks until the last request has finished."""
        run = self.pipeline(controls, clock=clock, bus=bus).run(self.requests,
                                                                 _progress(bus, clock))
        return _summary(run)
