"""One run of a ``Pipeline``: the serving loop.

``Pipeline.run`` makes a ``_Run`` for each replay: it binds the stages to a fresh ``RunEnv``
(clock, providers, bus, tracker), plays the requests on the virtual clock, answers each one
through the stages (``_Run._serve``: cost, cache, then the batching or latency stage) and
collects the outcomes into a ``RunResult``. The module docstring of ``cfopt.pipeline.core``
describes what a request goes through; this module is how.
"""
from __future__ import annotations

import asyncio
import functools
import math
import time
import zlib
from typing import TYPE_CHECKING, Callable, Sequence

from ..batching.types import Task
from ..cache.keys import cache_key
from ..cost.budget import UsageTracker
from ..errors import CfoptError
from ..events import Event
from ..latency.optimizer import PerformanceOptimizer
from ..providers import Call, Providers, Result
from ..workload import TEXT_TYPES, Request
from .env import RunEnv
from .network import LOOKUP_S, NETWORK_RTT_S, SEMANTIC_LOOKUP_S, CountingSender
from .types import STREAMED_TYPES, Outcome, RunResult

if TYPE_CHECKING:
    from .core import Pipeline

OnTick = Callable[[int], None]
OnOutcome = Callable[[Request, Outcome], None]


def _view_key(r: Request) -> tuple:
    """What routing may read of ``r``, as a key (the memos' key: no Request is made for it)."""
    return (r.type, r.prompt, r.task, r.quality, r.priority, r.max_tokens)


def _routing_view(r: Request) -> Request:
    """The request as routing sees it: what it may read, and hashable for the memo."""
    return Request(t=0.0, type=r.type, prompt=r.prompt, task=r.task, quality=r.quality,
                   priority=r.priority, max_tokens=r.max_tokens)


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
            ties=getattr(getattr(p.latency, "tie", None), "stats", None),
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
            tie = getattr(latency, "tie", None)   # tied copies are held too
            copies = tie.copies if path == "interactive" and tie is not None and tie.ties(call) else 1
            held = self.tracker.reserve(call, user=r.user, fallbacks=(cheapest,), copies=copies)
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
