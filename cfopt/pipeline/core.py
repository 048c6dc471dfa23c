"""ContentFlow end to end: replay a workload through the baseline or the optimized pipeline.

Each request arrives at its ``t`` on a virtual clock and goes through the stages that its
``PipelineConfig`` switches on, in this order:

1. ``compression``  safe prompt compression of text and analysis prompts (Part 1);
2. ``routing``      the cheapest model that meets the task's quality need (Part 1), else the
                    premium model of its type (opus, flux_dev, video_5s, audio_minute, Unsplash);
3. ``cache``        exact look-up in memory, then disk (then Redis when a URL is given) (Part 2);
4. ``dedup``        a near-duplicate's cached answer, same type, task, quality, model (Part 2);
5. ``coalescing``   identical requests in flight share one provider call (Part 3);
6. ``batching``     low-priority text goes through the Message Batches API at half price and
                    answers with a job handle (Part 4);
7. ``lazy``         what ``cfopt.latency.lazy.is_deferred`` defers (video, audio, images of 1 MP or more)
                    answers with a handle; the media follows (Part 3);
8. ``pooling``      warm connections instead of a TCP + TLS handshake per call (Part 3);
9. ``resilience``   retries with backoff, fallbacks, circuit breakers (Parts 3-4).

The baseline is the same machine with every switch off. Requests are stripped of ``intent``
before they enter: no stage can read it (only ``cfopt.pipeline.score`` does, to score).
Response time is the time to the first useful content: the first token of streamed text, the
whole answer of analysis, photo searches and small images, the handle of deferred work (whose
completion is recorded apart). Every stage publishes what it did on an ``EventBus``; a
``PerformanceMonitor`` may listen.

Each replay gets a fresh cache (a temporary disk file, a Redis namespace of its own, both removed
afterwards) unless ``disk_path`` / ``redis_namespace`` name ones to share: then runs, say one per
tenant, meet the same entries, and the entries stay. Spend is always tracked (``UsageTracker``,
the catalog's budgets, alerts only); with ``budget=BudgetConfig(...)`` every provider call also
reserves its worst-case cost first and is refused or downgraded at the cap.

>>> from cfopt.workload import Request
>>> reqs = [Request(t=float(i), type="photo", prompt="red bicycle", quality="low") for i in range(3)]
>>> run = Pipeline(PipelineConfig()).run(reqs)
>>> [o.source for o in run.outcomes], run.provider_calls
(['provider', 'memory', 'memory'], 1)
"""
from __future__ import annotations

import asyncio
import functools
import os
import tempfile
import time
from dataclasses import replace
from typing import Callable, Sequence

from ..cost.budget import BudgetConfig, BudgetStore, UsageTracker
from ..cache import CacheManager, DiskLayer, MemoryLayer, RedisLayer, SingleFlight, cache_key
from ..cache.dedup import ContentDeduplication
from ..cache.layers.base import check_namespace
from ..cache.policy import TTLPolicy
from ..clock import VirtualClock
from ..scratch import scratch_dir
from ..cost.compress import compress_prompt
from ..cost.optimizer import CostOptimizer
from ..errors import CfoptError, ConfigError
from ..events import Event, EventBus
from ..latency.lazy import is_deferred
from .network import (LOOKUP_S, NETWORK_RTT_S, SEMANTIC_LOOKUP_S, ConnectedSender,
                              ConnectionPool, CountingSender)
from .types import (OPTIMIZATIONS, PREMIUM, STREAMED_TYPES, TEXT_TYPES,
                             Outcome, PipelineConfig, RunResult)
from ..providers import Call, Faults, Providers, Result
from ..batching.resilience import Resilience, RetryPolicy
from ..workload import Request, strip_intent

__all__ = ["OPTIMIZATIONS", "PREMIUM", "TEXT_TYPES", "PipelineConfig", "Outcome", "RunResult",
           "Pipeline", "run_both"]


def _routing_view(r: Request) -> Request:
    """The request as routing sees it: what it may read, and hashable for the memo."""
    return Request(t=0.0, type=r.type, prompt=r.prompt, task=r.task, quality=r.quality,
                   priority=r.priority, max_tokens=r.max_tokens)


class Pipeline:
    """Serve requests through the stages ``config`` switches on, on one virtual clock.

    Shared state, all off by default: ``disk_path`` (a SQLite file) and ``redis_namespace`` (a
    key prefix on ``redis_url``) are cache stores that outlive the run and that other runs may
    share; the memory layer and the semantic index always belong to one run. ``budget`` makes
    provider calls reserve against its caps (``on_exhausted`` refuses or downgrades to the
    routed model) in ``budget_store`` (default: this run's memory; a ``RedisStore`` to share).
    """

    def __init__(self, config: PipelineConfig | None = None, *, seed: int = 0,
                 profile: str = "exercise", faults: Faults | None = None,
                 redis_url: str | None = None, bus: EventBus | None = None,
                 cache_dir: str | None = None, clock: VirtualClock | None = None,
                 disk_path: str | os.PathLike | None = None, redis_namespace: str | None = None,
                 budget: BudgetConfig | None = None, budget_store: BudgetStore | None = None) -> None:
        self.config = config if config is not None else PipelineConfig()
        self.seed, self.profile, self.faults, self.redis_url = seed, profile, faults, redis_url
        self.bus = bus if bus is not None else EventBus()
        self.cache_dir = cache_dir
        self.clock = clock   # None: a fresh virtual clock for every run
        if disk_path is not None and not isinstance(disk_path, (str, os.PathLike)):
            raise ConfigError(f"disk_path must be a file path, got {disk_path!r}")
        if redis_namespace is not None:
            check_namespace(redis_namespace)
            if redis_url is None:
                raise ConfigError("redis_namespace needs a redis_url to live on")
        if budget is not None and not isinstance(budget, BudgetConfig):
            raise ConfigError(f"budget must be a BudgetConfig, got {type(budget).__name__}")
        self.disk_path, self.redis_namespace = disk_path, redis_namespace
        self.budget, self.budget_store = budget, budget_store

    def __repr__(self) -> str:
        return f"Pipeline({self.config!r}, seed={self.seed}, profile={self.profile!r})"

    def run(self, requests: Sequence[Request],
            progress: Callable[[int, int], None] | None = None) -> RunResult:
        """Replay ``requests`` (their ``intent`` removed first) and return every outcome."""
        # The disk layer lives for one replay only: in RAM when the system offers it.
        where = self.cache_dir or ("/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
        with scratch_dir("cfopt-replay-", dir=where) as tmp:   # removed on signals too
            return _Run(self, strip_intent(requests), tmp, progress).result()


class _Run:
    """The state of one replay: clock, providers, stages, and the requests' outcomes."""

    def __init__(self, p: Pipeline, requests: list[Request], tmp: str,
                 progress: Callable[[int, int], None] | None) -> None:
        c = self.config = p.config
        self.requests, self.bus, self.progress = requests, p.bus, progress
        self.clock = p.clock if p.clock is not None else VirtualClock()
        self.providers = Providers(seed=p.seed, clock=self.clock, profile=p.profile, faults=p.faults)
        self.catalog = self.providers.catalog
        self.pool = ConnectionPool(self.clock, pooled=c.pooling)
        self.counter = CountingSender(ConnectedSender(self.providers, self.pool))
        # No per-attempt timeout: batch jobs and videos legitimately take minutes (the providers'
        # own timeouts still fail a hung call). The deadline bounds waiting between attempts: a
        # photo search is not worth waiting an hour for the allowance to reset.
        self.resilience = (Resilience(self.counter, policy=RetryPolicy(timeout_s=None),
                                      clock=self.clock, catalog=self.catalog, seed=p.seed, bus=p.bus)
                           if c.resilience else None)
        self.sender = self.resilience or self.counter
        self.optimizer = CostOptimizer(self.catalog, quality_bar=c.quality_bar)
        # Spend by user and model against the daily and monthly budgets; alerts go on the bus.
        # Only with ``budget`` do calls reserve first (and meet a refusal or a downgrade).
        self.tracker = UsageTracker(self.catalog, clock=self.clock, bus=self.bus,
                                    config=p.budget, store=p.budget_store)
        self.enforce = p.budget is not None
        self.keep_redis = p.redis_namespace is not None
        self.alerts: list[str] = []
        self.bus.subscribe(lambda e: self.alerts.append(e.name)   # not breaker_open: budgets only
                           if e.kind == "alert" and "budget" in e.data else None)
        self.cache = self._cache(p, tmp) if c.cache else None
        self.interactive: SingleFlight[Result] = SingleFlight()
        self.deferred: SingleFlight[Result] = SingleFlight()
        self.origins: dict[str, int] = {}
        self.done = 0
        # Both are pure functions of the request: repeats (most of the traffic) reuse the answer.
        self._compressed = functools.lru_cache(maxsize=65536)(compress_prompt)
        self._route = functools.lru_cache(maxsize=65536)(
            lambda r: self.optimizer.select_optimal_model(r).model)

    def _cache(self, p: Pipeline, tmp: str) -> CacheManager:
        c = self.config
        disk = p.disk_path if p.disk_path is not None else os.path.join(tmp, "cache.sqlite")
        layers = [MemoryLayer(max_entries=c.memory_entries, clock=self.clock),
                  DiskLayer(disk, clock=self.clock)]
        if p.redis_url:  # a namespace of its own, so no earlier run's entries are seen
            layers.append(RedisLayer(p.redis_url, namespace=p.redis_namespace
                                     or f"cfopt-replay-{os.getpid()}-{id(self)}"))
        dedup = ContentDeduplication() if self.config.dedup else None
        slower = TTLPolicy()   # disk and Redis keep their TTLs unless memory's is longer
        ttls = TTLPolicy(memory=c.memory_ttl_s, disk=max(slower.disk, c.memory_ttl_s),
                         redis=max(slower.redis, c.memory_ttl_s), cdn=max(slower.cdn, c.memory_ttl_s))
        return CacheManager(layers, dedup=dedup, ttls=ttls, catalog=self.catalog, clock=self.clock)

    def result(self) -> RunResult:
        """Replay every request on the virtual clock; clean the cache layers up afterwards."""
        start = time.perf_counter()
        layers: dict[str, dict[str, int]] = {}
        try:
            outcomes = self.clock.run(self._main())
            for layer in self.cache.layers if self.cache is not None else ():
                st = layer.stats
                layers[layer.name] = {"hits": st.hits, "misses": st.misses, "sets": st.sets,
                                      "failures": st.failures}  # an outage must show in the report
        finally:
            if self.cache is not None:
                for layer in self.cache.layers:
                    if isinstance(layer, RedisLayer) and not self.keep_redis:
                        layer.delete_matching("*")
                    getattr(layer, "close", lambda: None)()
        end = max((o.t + o.completed_s for o in outcomes), default=0.0)
        first = min((o.t for o in outcomes), default=0.0)
        return RunResult(self.config, outcomes, self.counter.calls, self.counter.failed,
                         round(self.counter.cost_usd, 9), dict(sorted(self.counter.by_model.items())),
                         self.pool.stats, self.resilience.stats if self.resilience else None,
                         end - first, time.perf_counter() - start, self.origins, layers,
                         self.alerts, self.tracker.spend_by("user"), self.tracker.stats)

    async def _main(self) -> list[Outcome]:
        tasks = []
        for i, r in enumerate(self.requests):
            if r.t > self.clock.now():
                await self.clock.asleep(r.t - self.clock.now())
            tasks.append(asyncio.ensure_future(self._serve(i, r)))
        return list(await asyncio.gather(*tasks))

    # -- one request ---------------------------------------------------------------------------
    async def _serve(self, i: int, r: Request) -> Outcome:
        c, arrive = self.config, self.clock.now()
        prompt, saved = r.prompt, 0
        if c.compression and r.type in TEXT_TYPES:
            squeezed = self._compressed(prompt)
            prompt, saved = squeezed.text, squeezed.tokens_before - squeezed.tokens_after
        model = self._route(_routing_view(r)) if c.routing else PREMIUM[r.type]
        call = Call(model, prompt, max_tokens=r.max_tokens)
        path = ("batch" if c.batching and r.priority == "low" and r.type in TEXT_TYPES else
                "lazy" if c.lazy and is_deferred(call, self.catalog) else "interactive")
        scope = dict(tenant=c.tenant, type=r.type, task=r.task, quality=r.quality)
        lookup_s = 0.0
        if self.cache is not None:
            served = self.cache.lookup(call, **scope)
            lookup_s = self._lookup_cost(served.source if served else None)
            await self.clock.asleep(lookup_s)
            if served is not None:
                self._publish_lookup(served.source)
                self.tracker.record(served.result, user=r.user, cache_hit=True)
                return self._finish(Outcome(i, r.t, r.type, r.priority, served.source,
                                            served.result.model, "interactive", lookup_s, lookup_s,
                                            origin=served.result.request_id))
            self._publish_lookup(None)
        if path == "batch":
            call = replace(call, batch=True)
        handle_s = lookup_s + NETWORK_RTT_S + (0.0 if c.pooling else self.pool.handshake_s)
        try:
            cheapest = (self._route(_routing_view(r)),) if self.enforce else ()
            result, shared = await self._flight(call, path, r.user, cheapest)
        except CfoptError as e:
            waited = self.clock.now() - arrive
            self.bus.publish(Event(self.clock.now(), "error", "request_failed",
                                   data={"type": r.type, "error": type(e).__name__}))
            return self._finish(Outcome(i, r.t, r.type, r.priority, "error", None, path,
                                        waited, waited, error=type(e).__name__))
        whole = self.clock.now() - arrive
        if path != "interactive":
            first = handle_s
        elif r.type in STREAMED_TYPES and not shared:  # a shared answer arrives whole
            first = whole - (result.latency_s - result.first_content_s)
        else:
            first = whole
        if not shared:
            self.origins[result.request_id] = i
            if not self.enforce:   # else its reservation was settled already
                self.tracker.record(result, user=r.user)
            self.bus.publish(Event(self.clock.now(), "metric", "cost_usd", result.cost_usd,
                                   {"model": result.model, "type": r.type}))
            if self.cache is not None:
                self.cache.store(call, result, **scope)
        return self._finish(Outcome(i, r.t, r.type, r.priority, "coalesced" if shared else "provider",
                                    result.model, path, first, whole,
                                    0.0 if shared else result.cost_usd, result.request_id,
                                    result.stop_reason == "max_tokens", 0 if shared else saved))

    async def _flight(self, call: Call, path: str, user: str | None = None,
                      fallbacks: tuple[str, ...] = ()) -> tuple[Result, bool]:
        """Send ``call``, or share an identical call in flight (``coalescing``)."""
        async def send() -> Result:
            if self.enforce:  # hold the worst case over all retries; a failure frees it
                return await self.tracker.asend(self.sender, call, user=user,  # type: ignore[arg-type]
                                                fallbacks=fallbacks)
            return await self.sender.asend(call)
        if not self.config.coalescing:
            return await send(), False
        key = cache_key(call, tenant=self.config.tenant, catalog=self.catalog)
        # Deferred work may wait for an interactive answer; an interactive request must not
        # wait for a batch job that may take an hour.
        if path != "interactive" and self.interactive.in_flight(key):
            return await self.interactive.run(key, send)
        return await (self.interactive if path == "interactive" else self.deferred).run(key, send)


    def _lookup_cost(self, source: str | None) -> float:
        """The time the look-up took: every layer asked, plus the semantic index if used."""
        assert self.cache is not None
        names = [layer.name for layer in self.cache.layers]
        exact = sum(LOOKUP_S.get(n, 0.001) for n in names)
        if source is not None and not source.startswith("semantic:"):
            return sum(LOOKUP_S.get(n, 0.001) for n in names[:names.index(source) + 1])
        cost = exact + (SEMANTIC_LOOKUP_S if self.cache.dedup is not None else 0.0)
        if source is not None:  # then the matched entry is read from its layer
            cost += LOOKUP_S.get(source.split(":", 1)[1], 0.001)
        return cost

    def _publish_lookup(self, source: str | None) -> None:
        layer = source.split(":", 1)[-1] if source else None
        for name in (l.name for l in self.cache.layers):  # type: ignore[union-attr]
            self.bus.publish(Event(self.clock.now(), "metric", "cache_lookup",
                                   1.0 if name == layer else 0.0, {"layer": name}))
            if name == layer:
                break

    def _finish(self, o: Outcome) -> Outcome:
        now = self.clock.now()
        if o.error is None:
            self.bus.publish(Event(now, "metric", "response_time", o.response_s,
                                   {"cache": "hit" if o.from_cache else "miss", "type": o.type}))
        if o.path != "interactive" and o.error is None:
            self.bus.publish(Event(now, "metric", "deferred_completion_s", o.completed_s))
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, len(self.requests))
        return o


def run_both(requests: Sequence[Request], config: PipelineConfig | None = None, *, seed: int = 0,
             profile: str = "exercise", faults: Faults | None = None,
             redis_url: str | None = None, bus: EventBus | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> tuple[RunResult, RunResult]:
    """Replay ``requests`` through the baseline, then through ``config`` (default: all on)."""
    runs = []
    for name, cfg, b in (("baseline", PipelineConfig.baseline(), None),
                         ("optimized", config or PipelineConfig(), bus)):
        tick = (lambda done, total, name=name: progress(name, done, total)) if progress else None
        runs.append(Pipeline(cfg, seed=seed, profile=profile, faults=faults, redis_url=redis_url,
                             bus=b).run(requests, tick))
    return runs[0], runs[1]
