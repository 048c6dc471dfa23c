"""Replays: a workload played on the virtual clock, reported to the monitor through events.

A replay is any callable ``replay(controls, *, clock, bus) -> ReplaySummary`` with a
``supports`` attribute naming the ``Controls`` fields it honours. The dashboard only knows
this seam. Two replays plug into it:

``PipelineReplay`` sends every request through the end-to-end pipeline (``cfopt.pipeline.core``):
caches (memory, then disk), routing by a quality bar, Message Batches for low-priority text,
coalescing, lazy media, pooling and retries. It honours the cache capacity and TTL, the
quality bar, batching on or off and injected errors. It has no concurrency limit and no
slowdown window, so those controls stay with ``ProviderReplay``: every request to the simulated
providers, under a concurrency limit (so a queue forms), through the budget tracker (``cfopt.cost.budget``:
each call reserves its worst case first, alerts at 50/80/100% arrive on the bus, a call the
daily budget cannot take is refused), optionally routed by a quality bar (``cfopt.cost.optimizer``),
with optional injected faults and a provider slowdown during a time window.

Events published (see ``cfopt.monitoring.monitor`` for what they feed): ``metric response_time`` (queue
wait plus the provider's time to first useful content), ``metric cost_usd``, ``metric
queue_depth``, ``error`` (one per failed request, named after the error, ``BudgetExceeded``
included), ``alert`` (from the budget tracker), and ``progress`` (value: the share of requests
finished). ``PipelineReplay`` publishes the pipeline's events instead (``response_time`` with
``cache`` hit or miss, ``cost_usd``, ``cache_lookup`` per layer, ``error``, ``alert``, ``retry``;
no queue), and ``progress`` the same way.

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

import asyncio
from dataclasses import dataclass, field, replace
from typing import Protocol, Sequence

from ..cost.budget import BudgetConfig, UsageTracker
from ..clock import VirtualClock
from ..cost.optimizer import CostOptimizer, QualityBar
from ..errors import BudgetExceeded, ConfigError, ProviderError
from ..events import Event, EventBus
from ..pipeline.core import Pipeline
from ..pipeline.types import MEMORY_ENTRIES, MEMORY_TTL_S, PipelineConfig
from ..providers import Call, Faults, Providers
from ..workload import Request
from ..pricing import DEFAULT_PROFILE

__all__ = ["Controls", "ReplaySummary", "Replay", "ProviderReplay", "PipelineReplay", "MEDIA_MODELS"]

# What each request type is sent to, besides text (which ``Controls`` chooses).
MEDIA_MODELS = {"video": "video_5s", "audio": "audio_minute", "photo": "unsplash-search"}


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


class ProviderReplay:
    """Every request of ``requests`` straight to the simulated providers (no cache, no batching)."""

    supports = frozenset({"text_model", "image_model", "concurrency", "error_rate", "slowdown",
                          "slowdown_from_s", "slowdown_until_s", "daily_budget_usd", "quality_bar"})

    def __init__(self, requests: Sequence[Request], *, seed: int = 0, profile: str = DEFAULT_PROFILE) -> None:
        if not requests:
            raise ConfigError("a replay needs at least one request")
        self.requests = list(requests)
        self.seed, self.profile = seed, profile

    def __repr__(self) -> str:
        return f"ProviderReplay(requests={len(self.requests)}, seed={self.seed}, profile={self.profile!r})"

    def _call(self, r: Request, c: Controls, router: CostOptimizer | None) -> Call:
        if router is not None:
            model = router.select_optimal_model(r).model
            return Call(model=model, prompt=r.prompt,
                        max_tokens=r.max_tokens if r.type in ("text", "analysis") else None)
        if r.type in ("text", "analysis"):
            return Call(model=c.text_model, prompt=r.prompt, max_tokens=r.max_tokens)
        if r.type == "image":
            return Call(model=c.image_model, prompt=r.prompt)
        return Call(model=MEDIA_MODELS[r.type], prompt=r.prompt)

    def __call__(self, controls: Controls, *, clock: VirtualClock, bus: EventBus) -> ReplaySummary:
        """Replay the workload with ``controls``; blocks until the last request has finished."""
        return clock.run(self._run(controls, clock, bus))

    async def _run(self, c: Controls, clock: VirtualClock, bus: EventBus) -> ReplaySummary:
        faults = c.faults
        normal = Providers(seed=self.seed, clock=clock, profile=self.profile, faults=faults)
        # A slowdown window is a second, slower fleet on the same clock: requests that arrive
        # inside the window go there. Only public API is used, so any Providers works.
        slowed = (Providers(seed=self.seed + 1, clock=clock, profile=self.profile,
                            faults=replace(faults, slowdown=c.slowdown))
                  if c.slowdown != 1.0 else normal)
        until = c.slowdown_until_s if c.slowdown_until_s is not None else float("inf")
        catalog = normal.catalog
        budget = BudgetConfig(daily_usd=c.daily_budget_usd or catalog.budgets.daily_usd,
                              monthly_usd=catalog.budgets.monthly_usd)
        tracker = UsageTracker(catalog, clock=clock, config=budget, bus=bus)
        router = CostOptimizer(catalog, quality_bar=c.bar()) if c.quality_bar is not None else None
        gate = asyncio.Semaphore(c.concurrency)
        t0 = self.requests[0].t
        total, state = len(self.requests), {"waiting": 0, "done": 0, "errors": 0, "cost": 0.0}
        by_model: dict[str, int] = {}

        def finished() -> None:
            state["done"] += 1
            bus.publish(Event(clock.now(), "progress", "replay", state["done"] / total,
                              {"done": state["done"], "total": total}))

        async def one(r: Request) -> None:
            await clock.asleep(r.t - clock.now())
            arrived = clock.now()
            if gate.locked():   # every slot busy: this request joins the queue
                state["waiting"] += 1
                bus.publish(Event(arrived, "metric", "queue_depth", float(state["waiting"])))
                await gate.acquire()
                state["waiting"] -= 1
                bus.publish(Event(clock.now(), "metric", "queue_depth", float(state["waiting"])))
            else:             # a free slot: no queue (a 0 keeps the depth chart honest)
                bus.publish(Event(arrived, "metric", "queue_depth", float(state["waiting"])))
                await gate.acquire()
            started = clock.now()
            try:
                fleet = slowed if c.slowdown_from_s <= arrived < until else normal
                call = self._call(r, c, router)
                try:
                    result = await tracker.asend(fleet.for_model(call.model), call, user=r.user)
                except (ProviderError, BudgetExceeded) as e:
                    state["errors"] += 1
                    bus.publish(Event(clock.now(), "error", type(e).__name__,
                                      getattr(e, "after_s", 0.0),
                                      {"status": getattr(e, "status", None), "model": call.model,
                                       "type": r.type}))
                    finished()
                    return
            finally:
                gate.release()
            by_model[result.model] = by_model.get(result.model, 0) + 1
            state["cost"] += result.cost_usd
            now = clock.now()
            bus.publish(Event(now, "metric", "response_time",
                              (started - arrived) + result.first_content_s,
                              {"model": result.model, "type": r.type, "id": r.id}))
            bus.publish(Event(now, "metric", "cost_usd", result.cost_usd, {"model": result.model}))
            finished()

        await asyncio.gather(*(one(r) for r in self.requests))
        return ReplaySummary(total, state["errors"], state["cost"], clock.now() - t0, by_model)


class PipelineReplay:
    """Every request of ``requests`` through the end-to-end pipeline, its knobs set by the controls.

    ``config`` gives the switches (default: every optimization on); the controls set routing
    (off when ``quality_bar`` is None: each type's premium model), batching, the memory cache's
    capacity and TTL, and injected errors.
    """

    supports = frozenset({"error_rate", "quality_bar", "cache_capacity", "cache_ttl_s", "batching"})

    def __init__(self, requests: Sequence[Request], *, seed: int = 0, profile: str = DEFAULT_PROFILE,
                 config: PipelineConfig | None = None) -> None:
        if not requests:
            raise ConfigError("a replay needs at least one request")
        self.requests = list(requests)
        self.seed, self.profile = seed, profile
        self.config = config if config is not None else PipelineConfig()

    def __repr__(self) -> str:
        return (f"PipelineReplay(requests={len(self.requests)}, seed={self.seed}, "
                f"profile={self.profile!r}, config={self.config!r})")

    def config_for(self, c: Controls) -> PipelineConfig:
        """The pipeline's config under ``c``."""
        bar = c.bar()
        return replace(self.config, routing=bar is not None, batching=c.batching,
                       memory_entries=c.cache_capacity, memory_ttl_s=c.cache_ttl_s,
                       quality_bar=bar if bar is not None else self.config.quality_bar)

    def __call__(self, controls: Controls, *, clock: VirtualClock, bus: EventBus) -> ReplaySummary:
        """Replay the workload with ``controls``; blocks until the last request has finished."""
        faults = controls.faults if controls.error_rate else None
        pipeline = Pipeline(self.config_for(controls), seed=self.seed, profile=self.profile,
                            faults=faults, bus=bus, clock=clock)

        def progress(done: int, total: int) -> None:
            bus.publish(Event(clock.now(), "progress", "replay", done / total,
                              {"done": done, "total": total}))
        run = pipeline.run(self.requests, progress)
        errors = sum(1 for o in run.outcomes if o.error is not None)
        return ReplaySummary(len(run.outcomes), errors, run.cost_usd, run.duration_s,
                             dict(run.calls_by_model))
