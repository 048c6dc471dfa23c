"""ContentFlow end to end: one ``Pipeline`` made of the course's stages, replaying a workload.

The stages are the exercise's classes, each an object you may replace with your own
(``Pipeline(cost=MyCostOptimizer())``); today's behaviour is the default of each:

=========  ======  ======================  ====================================================
stage      part    default                 what it does for a request
=========  ======  ======================  ====================================================
cost       1       ``CostOptimizer``       routes to the cheapest adequate model; compresses
                                           the prompt safely
cache      2       ``CacheManager``        memory, then disk (then Redis): exact keys, then a
                                           near-duplicate within a false-hit bound
                                           (``BoundedSemanticLayer`` on ``ContentDeduplication``)
latency    3       ``PerformanceOptimizer`` lazy loading (a handle for slow media), coalescing of
                                           identical calls in flight, micro-batching, pooled
                                           connections, payload compression
batching   4       ``BatchProcessor``      deferred work by aged priority: low-priority text
                                           through Message Batches at half price, media in
                                           parallel; retries, fallbacks and breakers for every call
monitor    5       none                    a ``PerformanceMonitor`` that listens on the bus
=========  ======  ======================  ====================================================

``PipelineConfig`` switches optimizations on and off (the baseline has all off: premium models,
no cache, a new connection per call, everything sent at once); the stages hold the knobs, which
``set_params(stage__knob=value)`` changes, also while a run goes on (the auto-tuner does).

One request: the cost stage chooses the call; the cache answers it if it can; otherwise deferred
work (low-priority text with batching, slow media with lazy loading) gets a handle at once and
goes to the batching stage's queue, and interactive work goes out through the latency stage.
Every provider call travels on the latency stage's transport and the batching stage's retries,
and is counted once (``RunResult.provider_calls``). Requests are stripped of ``intent`` before
they enter: no stage can read it (only ``cfopt.pipeline.score`` does, to score).

Response time is the time to the first useful content: the first token of streamed text, the
whole answer of analysis, photo searches and small images, the handle of deferred work (whose
completion is recorded apart). A request that shares an identical call in flight
(coalescing) shares its stream: its first useful content is the leader's first token, or what
has already arrived when it comes later.

Hooks for tools that watch or steer a run (the bonus replays use them, so there is one serving
loop in the package): ``run(every_s=, on_tick=)`` calls back every window of virtual time,
``run(on_arrival=)`` as each request arrives and ``run(on_outcome=)`` as it is answered,
``run(schedule=[(t, fn)])`` calls ``fn(env)`` at
given times (the run's ``RunEnv``: its providers, its clock);
``set_shadows`` keeps extra caches that see the same requests and serve nobody;
``set_split`` serves half of the requests through another latency stage; ``prefetch`` serves a
request nobody asked for yet (cache warming).

Each run gets fresh cache layers (a temporary disk file, a Redis namespace of its own, removed
afterwards) unless the cache stage was given layers of its own, or ``disk_path`` /
``redis_namespace`` name stores to share: then runs, say one per tenant, meet the same entries.
Spend is always tracked (``UsageTracker``: alerts only); with ``budget=BudgetConfig(...)``
every provider call reserves its worst case first and is refused or downgraded at the cap.

>>> from cfopt.workload import Request
>>> reqs = [Request(t=float(i), type="photo", prompt="red bicycle", quality="low") for i in range(3)]
>>> run = Pipeline(PipelineConfig()).run(reqs)
>>> [o.source for o in run.outcomes], run.provider_calls
(['provider', 'memory', 'memory'], 1)
"""
from __future__ import annotations

import asyncio
import functools
import math
import os
import time
import zlib
from dataclasses import replace
from typing import Any, Callable, Iterable, Sequence

from ..batching.processor import BatchProcessor
from ..batching.types import BatchConfig, Task
from ..cache.semantic import BoundedSemanticLayer
from ..cache.keys import cache_key
from ..cache.layers.base import check_namespace
from ..cache.manager import CacheManager
from ..clock import VirtualClock
from ..cost.budget import BudgetConfig, BudgetStore, UsageTracker
from ..cost.optimizer import CostOptimizer
from ..errors import CfoptError, ConfigError
from ..events import Event, EventBus
from ..latency.optimizer import PerformanceOptimizer
from ..pricing import DEFAULT_PROFILE, load_catalog
from ..providers import Call, Faults, Providers, Result
from ..workload import TEXT_TYPES, Request, strip_intent
from .env import STAGES, RunEnv
from .network import LOOKUP_S, NETWORK_RTT_S, SEMANTIC_LOOKUP_S, CountingSender
from ..scratch import scratch_dir
from .types import OPTIMIZATIONS, STREAMED_TYPES, Outcome, PipelineConfig, RunResult

__all__ = ["OPTIMIZATIONS", "PipelineConfig", "Outcome", "RunResult", "Pipeline", "run_both"]

OnTick = Callable[[int], None]
OnOutcome = Callable[[Request, Outcome], None]


def _view_key(r: Request) -> tuple:
    """What routing may read of ``r``, as a key (the memos' key: no Request is made for it)."""
    return (r.type, r.prompt, r.task, r.quality, r.priority, r.max_tokens)


def _routing_view(r: Request) -> Request:
    """The request as routing sees it: what it may read, and hashable for the memo."""
    return Request(t=0.0, type=r.type, prompt=r.prompt, task=r.task, quality=r.quality,
                   priority=r.priority, max_tokens=r.max_tokens)


class Pipeline:
    """Serve requests through the course's stages, with the optimizations ``config`` switches on.

    Shared state, all off by default: ``disk_path`` (a SQLite file) and ``redis_namespace`` (a
    key prefix on ``redis_url``) are cache stores that outlive the run and that other runs may
    share. ``budget`` makes provider calls reserve against its caps in ``budget_store``
    (default: this run's memory; a ``RedisStore`` to share). ``clock`` is the pipeline's for
    its whole life (a fresh ``VirtualClock`` by default): a second ``run`` starts where the
    first ended, its arrivals shifted by that time.
    """

    def __init__(self, config: PipelineConfig | None = None, *, cost: CostOptimizer | None = None,
                 cache: CacheManager | None = None, latency: PerformanceOptimizer | None = None,
                 batching: BatchProcessor | None = None, monitor: Any = None, seed: int = 0,
                 profile: str = DEFAULT_PROFILE, faults: Faults | None = None,
                 redis_url: str | None = None, bus: EventBus | None = None,
                 cache_dir: str | None = None, clock: VirtualClock | None = None,
                 disk_path: str | os.PathLike | None = None, redis_namespace: str | None = None,
                 budget: BudgetConfig | None = None, budget_store: BudgetStore | None = None,
                 speeds: str | None = None) -> None:
        self.config = config if config is not None else PipelineConfig()
        if not isinstance(self.config, PipelineConfig):
            raise ConfigError(f"config must be a PipelineConfig, got {type(self.config).__name__}")
        self.cost = cost if cost is not None else CostOptimizer()
        # Near-duplicates within a stated false-hit bound (1%), verified by a paid judge; the
        # static threshold (``CacheManager(dedup=ContentDeduplication())``) is the baseline.
        self.cache = cache if cache is not None else CacheManager(semantic=BoundedSemanticLayer())
        # Micro-batching off by default: merging interactive text saves requests, not money,
        # and every merged answer waits for the whole reply (notebook 04 measures it).
        self.latency = latency if latency is not None else PerformanceOptimizer(max_batch_size=1)
        # Deferred media as many at once as fal runs for an account (the catalog's figure): the
        # rest waits in the batching stage's priority queue, not in fal's first-come queue.
        # Message Batches work waits up to 30 s before its job (of minutes) starts: an urgent
        # request for the same work meanwhile takes it over (one call instead of two).
        self.batching = batching if batching is not None else BatchProcessor(
            config=BatchConfig(concurrency=int(load_catalog(profile).provider_figures.get(
                "fal", {}).get("max_concurrency", BatchConfig().concurrency)),
                batch_api_wait_s=30.0))
        self.monitor = monitor
        self.seed, self.profile, self.faults, self.redis_url = seed, profile, faults, redis_url
        self.speeds = speeds   # the catalog's model speeds: optimistic, median or pessimistic
        self.bus = bus if bus is not None else EventBus()
        self.cache_dir = cache_dir
        self.clock = clock if clock is not None else VirtualClock()
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
        self.shadows: dict[str, CacheManager] = {}
        self.split: PerformanceOptimizer | None = None
        self._live: _Run | None = None

    def __repr__(self) -> str:
        stages = ", ".join(f"{n}={type(s).__name__}" for n, s in self.stages.items())
        return f"Pipeline({self.config!r}, {stages}, seed={self.seed}, profile={self.profile!r})"

    # -- the stages and their knobs -------------------------------------------------------------
    @property
    def stages(self) -> dict[str, Any]:
        """The stage objects by name (the monitor only when one was given)."""
        out = {name: getattr(self, name) for name in STAGES}
        return {n: s for n, s in out.items() if s is not None}

    def get_params(self) -> dict[str, Any]:
        """Every stage and its public knobs, as ``set_params`` names them (``stage__knob``)."""
        out: dict[str, Any] = dict(self.stages)
        for name, stage in self.stages.items():
            for knob in getattr(stage, "KNOBS", ()):
                out[f"{name}__{knob}"] = getattr(stage, knob)
        return out

    def set_params(self, **params: Any) -> "Pipeline":
        """Set stages (``cache=...``) or their knobs (``cache__memory_entries=500``).

        Knobs reach the running parts at once: a tuner may call this between two windows.
        """
        for key, value in params.items():
            name, _, knob = key.partition("__")
            if name not in STAGES:
                raise ConfigError(f"unknown stage {name!r} in {key!r}; stages: {', '.join(STAGES)}")
            if not knob:
                if self._live is not None:
                    raise ConfigError(f"cannot replace the {name} stage while a run goes on")
                setattr(self, name, value)
                continue
            stage = getattr(self, name)
            if stage is None or knob not in getattr(stage, "KNOBS", ()):
                known = ", ".join(getattr(stage, "KNOBS", ())) or "none"
                raise ConfigError(f"{key!r}: {type(stage).__name__} has no knob {knob!r}; "
                                  f"knobs: {known}")
            setattr(stage, knob, value)
        return self

    # -- hooks -------------------------------------------------------------------------------------
    def set_shadows(self, shadows: dict[str, CacheManager]) -> None:
        """Keep these caches beside the real one: each is looked up with every request and filled
        with what the real one fetched, and serves nobody. Each publishes ``shadow_hit.<name>``
        (1/0), ``shadow_age_s.<name>`` and ``shadow_miss_cost_usd.<name>``: what that cache would
        have done on the same requests (ghost caches, as in miniature-simulation cache tuning).
        """
        for name, cache in shadows.items():
            if not isinstance(cache, CacheManager):
                raise ConfigError(f"shadow {name!r} must be a CacheManager, got {type(cache).__name__}")
        self.shadows = dict(shadows)

    def set_split(self, latency: PerformanceOptimizer | None) -> None:
        """Serve half of the interactive requests (by a stable hash of the prompt: identical
        calls share a flight, so they share an arm) through ``latency``; None: all through the
        pipeline's. Each arm's response times go out as ``split_response_time.a`` and ``.b``."""
        self.split = latency
        if latency is not None and self._live is not None:
            latency.bind(self._live.env)

    def prefetch(self, request: Request) -> None:
        """During a run, serve ``request`` in the background as if it were asked now, and cache
        the answer (cache warming). Its calls are paid and counted (``RunResult.warm``)."""
        if self._live is None:
            raise ConfigError("prefetch works during a run (from on_outcome or on_tick)")
        self._live.prefetch(request)

    # -- running ------------------------------------------------------------------------------------
    def run(self, requests: Sequence[Request], progress: Callable[[int, int], None] | None = None,
            *, every_s: float | None = None, on_tick: OnTick | None = None,
            on_arrival: Callable[[Request], None] | None = None,
            on_outcome: OnOutcome | None = None,
            schedule: Iterable[tuple[float, Callable[[RunEnv], None]]] = ()) -> RunResult:
        """Replay ``requests`` (their ``intent`` removed first) and return every outcome.

        ``progress(done, total)`` after each request; ``on_tick(k)`` every ``every_s`` seconds
        of virtual time (the last time at the end of the window in which the last request
        finished); ``on_arrival(request)`` as each request arrives, before it is served;
        ``on_outcome(request, outcome)`` as each request finishes; each ``(t, fn)`` of
        ``schedule`` calls ``fn(env)`` ``t`` seconds after the run starts.
        """
        if every_s is not None and not every_s > 0:
            raise ConfigError(f"every_s must be positive seconds, got {every_s!r}")
        if self._live is not None:
            raise ConfigError("this pipeline is running already")
        # The disk layer lives for one replay only: in RAM when the system offers it.
        where = self.cache_dir or ("/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
        with scratch_dir("cfopt-replay-", dir=where) as tmp:   # gone on every exit, signals too
            run = _Run(self, strip_intent(requests), tmp, progress, requests)
            self._live = run
            try:
                run.on_arrival = on_arrival
                return run.result(every_s, on_tick, on_outcome, list(schedule))
            finally:
                self._live = None


class _Run:
    """The state of one replay: its environment, the requests' outcomes, the hooks' tallies."""

    def __init__(self, p: Pipeline, requests: list[Request], tmp: str,
                 progress: Callable[[int, int], None] | None,
                 labelled: Sequence[Request] = ()) -> None:
        c = self.config = p.config
        self.p, self.requests, self.progress = p, requests, progress
        self.clock, self.bus = p.clock, p.bus
        self.t0 = self.clock.now()
        providers = Providers(seed=p.seed, clock=self.clock, profile=p.profile, faults=p.faults,
                              speeds=p.speeds)
        self.events_by_stage: dict[str, int] = {}
        self.bus.subscribe(self._count_stage)
        self.counter = CountingSender(providers, on_result=self._paid)
        self.env = env = RunEnv(
            self.clock, self.bus, providers, c, p.seed, tmp, self.counter, disk_path=p.disk_path,
            redis_url=p.redis_url, redis_namespace=p.redis_namespace)
        self.catalog = env.catalog
        # What the simulated world knows, for a judge the cache may pay (``cfopt.cache.judge``):
        # whether two prompts, as the cache sees them, ask for the same thing. Read from
        # ``intent`` here, by the simulation; no stage reads it.
        env.extra["judge_truth"] = _truth(labelled, lambda prompt: self._compressed(prompt).text)
        # Order matters only for the sender chain: the transport (latency) under the retries
        # (batching); every stage reads env.sender when it sends.
        p.cost.bind(env)
        p.latency.bind(env)
        p.batching.bind(env)
        # What the cache spends verifying near-duplicates (a judge's calls, audits' fresh calls)
        # is counted apart, and reserved against the budget like every other call.
        self.verify = CountingSender(_Verifier(self))
        env.extra["verify_sender"] = self.verify
        if p.split is not None:
            p.split.bind(env)
        self.cache = p.cache if c.cache else None
        if self.cache is not None:
            self.cache.bind(env)
        for shadow in p.shadows.values():
            shadow.bind(env)
        if p.monitor is not None:
            p.monitor.bind(env)
        self.tracker = UsageTracker(self.catalog, clock=self.clock, bus=self.bus,
                                    config=p.budget, store=p.budget_store)
        self.enforce = p.budget is not None
        self.alerts: list[str] = []
        self.bus.subscribe(lambda e: self.alerts.append(e.name)   # not breaker_open: budgets only
                           if e.kind == "alert" and "budget" in e.data else None)
        self.origins: dict[str, int] = {}
        self.warmed: dict[str, float] = {}   # request id of a warm-up not read yet -> its cost
        self.warm = {"prefetched": 0, "calls": 0, "cost_usd": 0.0, "used": 0}
        self._warm_tasks: set[asyncio.Task] = set()
        self._ids = 0
        self._queued: dict[str, str] = {}   # share key -> id of its task waiting in the batching queue
        self.done = 0
        self.on_outcome: OnOutcome | None = None
        self.on_arrival: Callable[[Request], None] | None = None
        # A pure function of the prompt and the rules: repeats (most of the traffic) reuse it.
        self._compressed = functools.lru_cache(maxsize=65536)(p.cost.optimize_prompt)
        self._routes: dict[tuple, str] = {}
        self._estimates: dict[tuple, float] = {}

    def _count_stage(self, e: Event) -> None:
        stage = e.data.get("stage") if e.data else None
        if stage is not None:
            self.events_by_stage[stage] = self.events_by_stage.get(stage, 0) + 1

    def _paid(self, result: Result) -> None:
        self.bus.publish(Event(self.clock.now(), "metric", "cost_usd", result.cost_usd,
                               {"model": result.model, "kind": result.kind}))

    # -- the replay ------------------------------------------------------------------------------
    def result(self, every_s: float | None, on_tick: OnTick | None,
               on_outcome: OnOutcome | None, schedule: list[tuple[float, Callable[[RunEnv], None]]]
               ) -> RunResult:
        """Replay every request on the clock; release what the run built afterwards."""
        self.on_outcome = on_outcome
        start = time.perf_counter()
        layers: dict[str, dict[str, int]] = {}
        try:
            outcomes = self.clock.run(self._main(every_s, on_tick, schedule))
            for layer in self.cache.layers if self.cache is not None else ():
                st = layer.stats
                # an outage or a damaged file must show in the report
                layers[layer.name] = {"hits": st.hits, "misses": st.misses, "sets": st.sets,
                                      "failures": st.failures, "corruptions": st.corruptions}
        finally:
            if self.cache is not None:
                self.cache.release()
        end = max((o.t + o.completed_s for o in outcomes), default=self.t0)
        first = min((o.t for o in outcomes), default=self.t0)
        p = self.p
        heard = dict(p.monitor.heard) if p.monitor is not None and hasattr(p.monitor, "heard") else None
        return RunResult(
            self.config, outcomes, self.counter.calls, self.counter.failed,
            round(self.counter.cost_usd, 9), dict(sorted(self.counter.by_model.items())),
            p.latency.pool.stats if p.latency.pool is not None else None,
            p.batching.resilience.stats if p.batching.resilience is not None else None,
            end - first, time.perf_counter() - start, self.origins, layers, self.alerts,
            self.tracker.spend_by("user"), self.tracker.stats, batches=p.batching.stats,
            transport=p.latency.transport.stats if p.latency.transport is not None else None,
            events_by_stage=dict(sorted(self.events_by_stage.items())), heard_by_monitor=heard,
            verification={"calls": self.verify.calls, "failed": self.verify.failed,
                          "cost_usd": round(self.verify.cost_usd, 9)},
            warm={**self.warm, "cost_usd": round(self.warm["cost_usd"], 9),
                  "wasted": len(self.warmed),   # warmed, never read before it went or the end
                  "wasted_cost_usd": round(sum(self.warmed.values()), 9)})

    async def _main(self, every_s: float | None, on_tick: OnTick | None,
                    schedule: list[tuple[float, Callable[[RunEnv], None]]]) -> list[Outcome]:
        side = [asyncio.ensure_future(self._at(t, fn)) for t, fn in schedule]
        if every_s is not None and on_tick is not None:
            side.append(asyncio.ensure_future(self._ticks(every_s, on_tick)))
        tasks = []
        for i, r in enumerate(self.requests):
            due = self.t0 + r.t
            if due > self.clock.now():
                await self.clock.asleep(due - self.clock.now())
            if self.on_arrival is not None:
                self.on_arrival(r)
            tasks.append(asyncio.ensure_future(self._serve(i, r)))
        outcomes = list(await asyncio.gather(*tasks))
        while self._warm_tasks:   # warm-ups still on their way are paid for: let them land
            await asyncio.gather(*tuple(self._warm_tasks), return_exceptions=True)
        if self.cache is not None:   # so are the cache's verifications (a judge's calls)
            await self.cache.settle()
        if every_s is not None and on_tick is not None:  # let the last window end and be told
            end = self.t0 + math.ceil((self.clock.now() - self.t0) / every_s) * every_s
            await self.clock.asleep(max(0.0, end - self.clock.now()) + 1e-6)
        for task in side:
            task.cancel()
        return outcomes

    async def _at(self, t: float, fn: Callable[[RunEnv], None]) -> None:
        await self.clock.asleep(max(0.0, self.t0 + t - self.clock.now()))
        fn(self.env)

    async def _ticks(self, every_s: float, on_tick: OnTick) -> None:
        k = 1
        while True:
            await self.clock.asleep(max(0.0, self.t0 + k * every_s - self.clock.now()))
            on_tick(k)
            k += 1

    # -- one request -----------------------------------------------------------------------------
    def _route(self, r: Request) -> str:
        """The cost stage's model for ``r`` (each type's default model when routing is off)."""
        cost = self.p.cost
        if not self.config.routing:
            return cost.default_model(r.type)
        key = (_view_key(r), cost.quality_bar)   # the bar is a knob: a new one routes anew
        model = self._routes.get(key)
        if model is None:
            model = self._routes[key] = cost.select_optimal_model(_routing_view(r)).model
        return model

    def _uncached_cost(self, r: Request, model: str) -> float:
        """What ``r`` would cost on ``model`` with no cache (output at its cap): repeats reuse it."""
        key = (_view_key(r), model)
        cost = self._estimates.get(key)
        if cost is None:
            cost = self._estimates[key] = self.p.cost.estimate_cost(r, model)
        return cost

    def _call(self, r: Request) -> tuple[Call, int]:
        """The call the cost stage makes of ``r``, and the prompt tokens compression saved."""
        model = self._route(r)
        prompt, saved = r.prompt, 0
        if self.config.compression and r.type in TEXT_TYPES:
            squeezed = self._compressed(prompt)
            prompt, saved = squeezed.text, squeezed.tokens_before - squeezed.tokens_after
        text = r.type in TEXT_TYPES
        return Call(model, prompt, max_tokens=r.max_tokens if text else None), saved

    async def _serve(self, i: int, r: Request) -> Outcome:
        c, env, arrive = self.config, self.env, self.clock.now()
        call, saved = self._call(r)
        uncached = self._uncached_cost(r, call.model)
        env.publish("cost", "uncached_cost_usd", uncached, model=call.model, type=r.type)
        if saved:
            env.publish("cost", "tokens_saved", float(saved))
        scope = dict(tenant=c.tenant, type=r.type, task=r.task, quality=r.quality)
        ghosts = [(name, shadow, shadow.lookup(call, **scope))
                  for name, shadow in sorted(self.p.shadows.items())]
        arm = "b" if self.p.split is not None and zlib.crc32(r.prompt.encode()) & 1 else "a"
        lookup_s = 0.0
        if self.cache is not None:
            served = self.cache.lookup(call, **scope)
            lookup_s = self._lookup_cost(served.source if served else None)
            await self.clock.asleep(lookup_s)
            self._publish_lookup(served.source if served else None)
            if served is not None:
                self.tracker.record(served.result, user=r.user, cache_hit=True)
                env.publish("cache", "cache_age_s", self.clock.now() - served.result.finished_at)
                env.publish("cache", "miss_cost_usd", 0.0)
                origin = served.result.request_id
                if self.warmed.pop(origin, None) is not None:   # a warm-up's first reader
                    self.warm["used"] += 1
                outcome = Outcome(i, r.t, r.type, r.priority, served.source, served.result.model,
                                  "interactive", lookup_s, lookup_s, origin=origin)
                self._shadows_done(ghosts, call, scope, uncached, None)
                return self._finish(r, outcome, arm)
        if self.cache is not None:
            env.publish("cache", "miss_cost_usd", uncached)
        path = ("batch" if c.batching and r.priority == "low" and r.type in TEXT_TYPES else
                "lazy" if c.lazy and self.p.latency.is_deferred(call) else "interactive")
        handle_s = lookup_s + NETWORK_RTT_S + (0.0 if c.pooling else self.p.latency.pool.handshake_s)
        try:
            result, shared = await self._flight(call, path, r, arm)
        except CfoptError as e:
            waited = self.clock.now() - arrive
            self.bus.publish(Event(self.clock.now(), "error", type(e).__name__,
                                   getattr(e, "after_s", 0.0),
                                   {"type": r.type, "error": type(e).__name__, "model": call.model,
                                    "status": getattr(e, "status", None)}))
            self._shadows_done(ghosts, call, scope, uncached, None)
            return self._finish(r, Outcome(i, r.t, r.type, r.priority, "error", None, path,
                                           waited, waited, error=type(e).__name__), arm)
        whole = self.clock.now() - arrive
        if path != "interactive":
            first = handle_s
        elif r.type in STREAMED_TYPES:
            # The first token reached the leader (latency_s - first_content_s) before its end; a
            # request sharing the call in flight gets the stream from there (what has arrived at
            # once, the rest as it comes), so it waits for that first token or for nothing.
            first = max(lookup_s, whole - (result.latency_s - result.first_content_s))
        else:
            first = whole
        if shared:
            env.publish("latency", "coalesced", 1.0)
            if self.warmed.pop(result.request_id, None) is not None:   # joined a warm-up in flight
                self.warm["used"] += 1
        else:
            self.origins[result.request_id] = i
            if not self.enforce:   # else its reservation was settled already
                self.tracker.record(result, user=r.user)
            if self.cache is not None:
                self.cache.store(call, result, **scope)
        self._shadows_done(ghosts, call, scope, uncached, result)
        return self._finish(r, Outcome(i, r.t, r.type, r.priority, "coalesced" if shared else "provider",
                                       result.model, path, first, whole,
                                       0.0 if shared else result.cost_usd, result.request_id,
                                       result.stop_reason == "max_tokens", 0 if shared else saved), arm)

    async def _flight(self, call: Call, path: str, r: Request,
                      arm: str = "a") -> tuple[Result, bool]:
        """Send ``call`` its path's way, or share an identical call in flight (``coalescing``)."""
        latency = self.p.split if arm == "b" and self.p.split is not None else self.p.latency

        async def send() -> Result | _Shared:
            if not self.enforce:
                return await self._send(call, path, r, latency, key)
            # Hold the worst case over all retries; a failure frees it. At the cap, a call may
            # be downgraded to the model the cost stage would route it to.
            cheapest = self.p.cost.select_optimal_model(_routing_view(r)).model
            held = self.tracker.reserve(call, user=r.user, fallbacks=(cheapest,))
            try:
                result = await self._send(held.call, path, r, latency, key)
            except BaseException:
                self.tracker.settle(held, None)
                raise
            if isinstance(result, _Shared):   # taken over: another call answered, this one was never made
                self.tracker.release(held)
            else:
                self.tracker.settle(held, result)
            return result
        if not self.config.coalescing:
            key = None
            return _unwrap(await send(), False)
        lane = path if path == "interactive" else "deferred"
        own = cache_key(call, tenant=self.config.tenant, catalog=self.catalog)
        # With a near-duplicate stage, a near-duplicate's call in flight is shared too
        # (``CacheManager.coalesce_key``); if that call fails, this request makes its own.
        key = (self.cache.coalesce_key(call, tenant=self.config.tenant, type=r.type, task=r.task,
                                       quality=r.quality) if self.cache is not None else own)
        queued = self._queued.get(key) if lane == "interactive" else None
        if queued is not None:
            # The same work waits in the batching stage's queue: this call answers it too, if
            # it has not left the queue yet (``BatchProcessor.take_over``).
            flight = asyncio.ensure_future(self.p.latency.share(key, lane, send))
            answer = _first(flight)
            if not self.p.batching.take_over(queued, answer):
                answer.close()   # the task had left the queue: it makes its own call
            return _unwrap(*await flight)
        if key == own:
            return _unwrap(*await self.p.latency.share(key, lane, send))
        try:
            return _unwrap(*await self.p.latency.share(key, lane, send))
        except CfoptError:
            return _unwrap(await send(), False)

    async def _send(self, call: Call, path: str, r: Request, latency: PerformanceOptimizer,
                    key: str | None = None) -> Result | _Shared:
        if path == "interactive":
            return await latency.send(call)
        if not self.config.batching:   # lazy media without a queue: sent at once
            return await self.env.sender.asend(call)   # type: ignore[union-attr]
        self._ids += 1
        task = Task(f"r{self._ids}", r.type, call.prompt, r.priority, max_tokens=call.max_tokens,
                    call=call)
        if key is not None:   # while it waits in the queue, an urgent call may take it over
            self._queued[key] = task.id
        try:
            done = await self.p.batching.submit(task)
        finally:
            if key is not None and self._queued.get(key) == task.id:
                del self._queued[key]
        if done.error is not None:
            raise done.error
        assert done.result is not None
        return _Shared(done.result) if done.path == "taken_over" else done.result

    # -- cache warming -----------------------------------------------------------------------------
    def prefetch(self, r: Request) -> None:
        task = asyncio.ensure_future(self._warm_one(r))
        self._warm_tasks.add(task)
        task.add_done_callback(self._warm_tasks.discard)

    async def _warm_one(self, r: Request) -> None:
        if self.cache is None:
            return
        call, _saved = self._call(r)
        scope = dict(tenant=self.config.tenant, type=r.type, task=r.task, quality=r.quality)
        if self.cache.lookup(call, **scope) is not None:
            return
        self.warm["prefetched"] += 1
        try:
            result, shared = await self._flight(call, "interactive", r)
        except CfoptError:
            return   # a failed warm-up costs a miss later, nothing more
        if not shared:
            self.warm["calls"] += 1
            self.warm["cost_usd"] += result.cost_usd
            self.warmed[result.request_id] = result.cost_usd
            self.cache.store(call, result, **scope)

    # -- helpers -----------------------------------------------------------------------------------
    def _shadows_done(self, ghosts: list, call: Call, scope: dict, uncached: float,
                      result: Result | None) -> None:
        now = self.clock.now()
        for name, shadow, ghost in ghosts:
            self.bus.publish(Event(now, "metric", f"shadow_hit.{name}", 1.0 if ghost else 0.0))
            self.bus.publish(Event(now, "metric", f"shadow_miss_cost_usd.{name}",
                                   0.0 if ghost else uncached))
            if ghost is not None:
                self.bus.publish(Event(now, "metric", f"shadow_age_s.{name}",
                                       now - ghost.result.finished_at))
            elif result is not None:   # a shadow stores what it would have had to fetch
                shadow.store(call, result, **scope)

    def _lookup_cost(self, source: str | None) -> float:
        """The time the look-up took: every layer asked, plus the semantic index if used."""
        assert self.cache is not None
        names = [layer.name for layer in self.cache.layers]
        exact = sum(LOOKUP_S.get(n, 0.001) for n in names)
        if source is not None and not source.startswith("semantic:"):
            return sum(LOOKUP_S.get(n, 0.001) for n in names[:names.index(source) + 1])
        near = self.cache.dedup is not None or self.cache.semantic is not None
        cost = exact + (SEMANTIC_LOOKUP_S if near and self.cache.use_dedup else 0.0)
        if source is not None:  # then the matched entry is read from its layer
            cost += LOOKUP_S.get(source.split(":", 1)[1], 0.001)
        return cost

    def _publish_lookup(self, source: str | None) -> None:
        layer = source.split(":", 1)[-1] if source else None
        for name in (l.name for l in self.cache.layers):  # type: ignore[union-attr]
            self.env.publish("cache", "cache_lookup", 1.0 if name == layer else 0.0, layer=name)
            if name == layer:
                break

    def _finish(self, r: Request, o: Outcome, arm: str = "a") -> Outcome:
        now = self.clock.now()
        if o.error is None:
            self.bus.publish(Event(now, "metric", "response_time", o.response_s,
                                   {"cache": "hit" if o.from_cache else "miss", "type": o.type,
                                    "id": r.id, "model": o.model}))
            if self.p.split is not None and o.path == "interactive":
                self.bus.publish(Event(now, "metric", f"split_response_time.{arm}", o.response_s))
        if o.path != "interactive" and o.error is None:
            self.env.publish("latency" if o.path == "lazy" else "batching",
                             "deferred_completion_s", o.completed_s)
        self.done += 1
        if self.on_outcome is not None:
            self.on_outcome(r, o)
        if self.progress is not None:
            self.progress(self.done, len(self.requests))
        return o


class _Shared:
    """A deferred task's answer that another call (an urgent one for the same work) made."""

    __slots__ = ("result",)

    def __init__(self, result: Result) -> None:
        self.result = result


def _unwrap(value: Result | _Shared, shared: bool) -> tuple[Result, bool]:
    return (value.result, True) if isinstance(value, _Shared) else (value, shared)


async def _first(flight: "asyncio.Future[tuple[Result | _Shared, bool]]") -> Result:
    """The answer of a shared flight, for a task it takes over (cancelling the task's wait
    leaves the flight running)."""
    value, _shared = await asyncio.shield(flight)
    return _unwrap(value, False)[0]


class _Verifier:
    """The sender a cache's verifications go through: the run's, inside the budget (no user)."""

    def __init__(self, run: "_Run") -> None:
        self.run = run

    async def asend(self, call: Call) -> Result:
        run = self.run
        sender = run.env.sender
        assert sender is not None
        if run.enforce:
            return await run.tracker.asend(sender, call)
        result = await sender.asend(call)
        run.tracker.record(result)
        return result


def _truth(requests: Sequence[Request], compress: Callable[[str], str]
           ) -> Callable[[str, str], bool] | None:
    """Whether two prompts (raw or compressed) belong to one intent; None without labels.
    Built on the first question, with the run's own compression memo."""
    if not any(r.intent is not None for r in requests):
        return None
    intent_of: dict[str, str] = {}

    def same(a: str, b: str) -> bool:
        if not intent_of:
            for r in requests:
                if r.intent is not None:
                    intent_of.setdefault(r.prompt, r.intent)
                    if r.type in TEXT_TYPES:
                        intent_of.setdefault(compress(r.prompt), r.intent)
        return intent_of.get(a) is not None and intent_of.get(a) == intent_of.get(b)
    return same


def run_both(requests: Sequence[Request], config: PipelineConfig | None = None, *, seed: int = 0,
             profile: str = DEFAULT_PROFILE, faults: Faults | None = None,
             redis_url: str | None = None, bus: EventBus | None = None, monitor: Any = None,
             stages: dict[str, Any] | None = None,
             progress: Callable[[str, int, int], None] | None = None,
             speeds: str | None = None) -> tuple[RunResult, RunResult]:
    """Replay ``requests`` through the baseline, then through ``config`` (default: all on).

    ``stages`` (``{"cost": MyCostOptimizer(), ...}``) replace the optimized pipeline's defaults;
    ``monitor`` listens to the optimized run.
    """
    runs = []
    for name, cfg, b, extra in (("baseline", PipelineConfig.baseline(), None, {}),
                                ("optimized", config or PipelineConfig(), bus,
                                 {**(stages or {}), "monitor": monitor})):
        tick = (lambda done, total, name=name: progress(name, done, total)) if progress else None
        runs.append(Pipeline(cfg, seed=seed, profile=profile, faults=faults, redis_url=redis_url,
                             bus=b, speeds=speeds, **extra).run(requests, tick))
    return runs[0], runs[1]
