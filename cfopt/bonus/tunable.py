"""A replay whose knobs can change while it runs: what ``cfopt.bonus.autotune`` steers.

``TunableReplay`` serves a workload on one virtual clock through the stages that own the four
knobs of the auto-tuner, built from the library's own parts:

1. routing       ``CostOptimizer``: the cheapest model that meets the task's quality need;
2. memory cache  ``CacheManager`` with one ``MemoryLayer``: **capacity** (``memory_entries``)
                 and the text **TTL** (``memory_ttl_s``; media 24x, photos at most 1 h, as
                 ``TTLPolicy`` says), the pipeline's two cache knobs;
3. coalescing    ``SingleFlight``: identical calls in flight share one answer;
4. merging       text calls go through one ``MicroBatcher`` per model (**batch size**
                 ``max_batch_size`` and **max-wait** ``max_wait_s``), whose handler is
                 ``QueryOptimizer.send_grouped``: one grouped call per batch, one call per
                 prompt when the reply does not split; media calls go straight on;
5. ``CountingSender`` in front of the simulated ``Providers``: every call paid is counted.

``set_knobs`` changes all four between two requests of a running replay. What carries over is
everything: the cache's entries (each keeps the TTL it was stored with; a smaller capacity
evicts at the next store), calls in flight, the open batch windows (a window already open keeps
its deadline), the providers' rate-limit buckets and random streams, the clock.

Why not ``cfopt.pipeline.core`` itself: its replay builds its cache inside ``run`` and offers no
handle to change it while it runs; its memory layer has a disk layer behind it (1 h TTL) that
answers whatever memory dropped, so on the one-hour workload memory capacity and TTL change
neither its spend nor its provider calls; and it has no batch size or max-wait (each
low-priority text is its own Message Batches request).

Events, on the bus, as the pipeline publishes them: ``metric response_time`` (data ``cache``
hit or miss), ``metric cost_usd`` (every call paid, grouped calls that did not split included),
``error`` (a request without an answer); and for the tuner, when each request finishes:
``cache_age_s`` (the age of an answer served from the cache: the staleness a longer TTL buys),
``uncached_cost_usd`` (what the request would cost with no cache: ``CostOptimizer.estimate_cost``
on its routed model, output at its cap) and ``miss_cost_usd`` (the same, 0 on a cache hit).

**Shadow caches.** ``set_shadows({name: knobs})`` keeps more memory caches with other knobs'
capacity and TTL, looked up with every request and filled with the answers the real one got:
what the cache would have done on the *same* requests (ghost caches, as in "miniature
simulation" cache tuning; these store values too, production ones would keep keys only). They
call no provider and serve nobody; each publishes ``shadow_hit.<name>`` (1/0),
``shadow_age_s.<name>`` and ``shadow_miss_cost_usd.<name>``. Two cache settings compared on the
same requests differ by far less noise than two windows of traffic do (``cfopt.bonus.autotune``).

**A split.** Batch size and max-wait change response times, which no shadow can replay:
``set_split(knobs)`` serves half of the requests (by a stable hash of the prompt: identical
calls share a flight, so they share an arm) with other batch knobs, and publishes each arm's
response times as ``split_response_time.a`` and ``.b``: an A/B test inside the window.

>>> from cfopt.workload import Request
>>> reqs = [Request(t=float(i), type="photo", prompt="red bicycle", quality="low") for i in range(3)]
>>> run = TunableReplay(reqs).run()
>>> run.requests, run.hits, run.provider_calls
(3, 2, 1)
"""
from __future__ import annotations

import asyncio
import math
import zlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..cache import CacheManager, MemoryLayer, SingleFlight, TTLPolicy
from ..clock import VirtualClock
from ..latency.coalesce import QueryOptimizer
from ..cost.optimizer import CostOptimizer
from ..errors import CfoptError, ConfigError
from ..events import Event, EventBus
from ..latency.microbatch import MicroBatcher
from ..pipeline.network import LOOKUP_S, CountingSender
from ..pipeline.types import MEMORY_ENTRIES, MEMORY_TTL_S, STREAMED_TYPES, TEXT_TYPES
from ..providers import Call, Providers, Result
from ..workload import Request, strip_intent
from ..pricing import DEFAULT_PROFILE

__all__ = ["Knobs", "TunableReplay", "ReplayTotals"]

TENANT = "contentflow"   # one cache namespace for the whole app, as in the pipeline


@dataclass(frozen=True, slots=True)
class Knobs:
    """The four knobs, named as their components name them."""

    memory_entries: int = MEMORY_ENTRIES   # the memory layer's capacity
    memory_ttl_s: float = MEMORY_TTL_S     # seconds the memory layer keeps a text answer
    max_batch_size: int = 1                # text calls merged into one grouped call (1: none)
    max_wait_s: float = 0.05            # seconds a batch waits for more calls

    def __post_init__(self) -> None:
        for name in ("memory_entries", "max_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not self.memory_ttl_s > 0:
            raise ConfigError(f"memory_ttl_s must be positive seconds, got {self.memory_ttl_s!r}")
        if not self.max_wait_s >= 0:
            raise ConfigError(f"max_wait_s must be >= 0 seconds, got {self.max_wait_s!r}")

    def __repr__(self) -> str:
        return (f"Knobs(memory_entries={self.memory_entries}, memory_ttl_s={self.memory_ttl_s:g}, "
                f"max_batch_size={self.max_batch_size}, max_wait_s={self.max_wait_s:g})")


@dataclass
class ReplayTotals:
    """What one replay did, counted by the replay (the monitor measures the windows)."""

    requests: int = 0
    hits: int = 0
    errors: int = 0
    provider_calls: int = 0
    cost_usd: float = 0.0
    duration_s: float = 0.0
    knobs: list[tuple[float, Knobs]] = field(default_factory=list)   # (time set, knobs)


def _retune(layer: MemoryLayer, cache: CacheManager, knobs: Knobs) -> None:
    layer.max_entries = knobs.memory_entries   # a smaller capacity evicts at the next store
    cache.ttls = _ttls(knobs.memory_ttl_s)     # stored entries keep the TTL they were given


def _ttls(ttl: float) -> TTLPolicy:
    slower = TTLPolicy()   # the pipeline's rule: slower layers keep theirs unless memory's is longer
    return TTLPolicy(memory=ttl, disk=max(slower.disk, ttl), redis=max(slower.redis, ttl),
                     cdn=max(slower.cdn, ttl))


class TunableReplay:
    """Replay ``requests`` once, with knobs that ``set_knobs`` may change while it runs."""

    def __init__(self, requests: Sequence[Request], knobs: Knobs | None = None, *, seed: int = 0,
                 profile: str = DEFAULT_PROFILE, bus: EventBus | None = None,
                 clock: VirtualClock | None = None) -> None:
        if not requests:
            raise ConfigError("requests: a replay needs at least one request")
        self.requests = strip_intent(requests)
        self.knobs = knobs if knobs is not None else Knobs()
        self.seed, self.profile = seed, profile
        self.bus = bus if bus is not None else EventBus()
        self.clock = clock if clock is not None else VirtualClock()
        self._providers = Providers(seed=seed, clock=self.clock, profile=profile)
        self._shadows: dict[str, tuple[MemoryLayer, CacheManager]] = {}
        self.split: Knobs | None = None
        self._started = False

    def __repr__(self) -> str:
        return f"TunableReplay(requests={len(self.requests)}, {self.knobs!r}, seed={self.seed})"

    def set_knobs(self, knobs: Knobs) -> None:
        """Use ``knobs`` from now on (before or during ``run``)."""
        self.knobs = knobs
        if self._started:
            _retune(self._memory, self._cache, knobs)
            for b in self._batchers["a"].values():
                b.max_batch_size, b.max_wait_s = knobs.max_batch_size, knobs.max_wait_s
            self.totals.knobs.append((self.clock.now(), knobs))

    def live_knobs(self) -> dict[str, object]:
        """The knobs as the running components hold them (batchers: one value per model)."""
        batchers = self._batchers["a"] if self._started else {}
        return {"memory_entries": self._memory.max_entries if self._started else None,
                "memory_ttl_s": self._cache.ttls.memory if self._started else None,
                "max_batch_size": {m: b.max_batch_size for m, b in sorted(batchers.items())},
                "max_wait_s": {m: b.max_wait_s for m, b in sorted(batchers.items())}}

    def set_split(self, knobs: Knobs | None) -> None:
        """Serve half of the requests (arm "b", by a stable hash of the prompt) with ``knobs``'
        batch size and max-wait from now on; None: every request with ``self.knobs``."""
        self.split = knobs
        for b in self._batchers["b"].values() if self._started and knobs is not None else ():
            b.max_batch_size, b.max_wait_s = knobs.max_batch_size, knobs.max_wait_s

    def set_shadows(self, shadows: dict[str, Knobs]) -> None:
        """Keep one shadow cache per name with those knobs' capacity and TTL from now on.

        A name already shadowed keeps its entries and takes the new knobs; a name left out stops.
        """
        for name in set(self._shadows) - set(shadows):
            del self._shadows[name]
        for name, knobs in shadows.items():
            if name in self._shadows:
                _retune(*self._shadows[name], knobs)
            else:
                layer = MemoryLayer(max_entries=knobs.memory_entries, clock=self.clock)
                self._shadows[name] = (layer, CacheManager(
                    [layer], ttls=_ttls(knobs.memory_ttl_s), catalog=self._providers.catalog,
                    clock=self.clock))

    def run(self, every_s: float | None = None,
            on_tick: Callable[[int], None] | None = None) -> ReplayTotals:
        """Replay every request; call ``on_tick(k)`` every ``every_s`` virtual seconds, the last
        time at the end of the window in which the last request finished."""
        if self._started:
            raise ConfigError("a TunableReplay runs once: make a new one")
        if every_s is not None and not every_s > 0:
            raise ConfigError(f"every_s must be positive seconds, got {every_s!r}")
        self._started = True
        clock, k = self.clock, self.knobs
        self.totals = ReplayTotals(knobs=[(clock.now(), k)])
        catalog = self._providers.catalog
        self._counter = CountingSender(_Paid(self._providers, self.bus, clock))
        self._router = CostOptimizer(catalog)
        self._memory = MemoryLayer(max_entries=k.memory_entries, clock=clock)
        self._cache = CacheManager([self._memory], ttls=_ttls(k.memory_ttl_s), catalog=catalog,
                                   clock=clock)
        self._merger = QueryOptimizer(self._counter, merge=True, clock=clock, catalog=catalog)
        self._batchers: dict[str, dict[str, MicroBatcher]] = {"a": {}, "b": {}}
        self._flight: SingleFlight[Result] = SingleFlight()
        clock.run(self._main(every_s, on_tick))
        t = self.totals
        t.provider_calls, t.cost_usd = self._counter.calls, round(self._counter.cost_usd, 9)
        return t

    async def _main(self, every_s: float | None, on_tick: Callable[[int], None] | None) -> None:
        t0 = self.clock.now()
        ticker = (asyncio.ensure_future(self._ticks(t0, every_s, on_tick))
                  if every_s is not None and on_tick is not None else None)
        tasks = []
        for r in self.requests:
            if r.t > self.clock.now():
                await self.clock.asleep(r.t - self.clock.now())
            tasks.append(asyncio.ensure_future(self._serve(r)))
        await asyncio.gather(*tasks)
        for b in [*self._batchers["a"].values(), *self._batchers["b"].values()]:
            await b.flush()
        self.totals.duration_s = self.clock.now() - t0
        if ticker is not None:   # let the last window end, so it is counted like the others
            assert every_s is not None
            end = t0 + math.ceil((self.clock.now() - t0) / every_s) * every_s
            await self.clock.asleep(max(0.0, end - self.clock.now()) + 1e-6)
            ticker.cancel()

    async def _ticks(self, t0: float, every_s: float, on_tick: Callable[[int], None]) -> None:
        k = 1
        while True:
            await self.clock.asleep(max(0.0, t0 + k * every_s - self.clock.now()))
            on_tick(k)
            k += 1

    async def _serve(self, r: Request) -> None:
        clock, bus, arrive = self.clock, self.bus, self.clock.now()
        model = self._router.select_optimal_model(r).model
        call = Call(model, r.prompt, max_tokens=r.max_tokens if r.type in TEXT_TYPES else None)
        scope = dict(tenant=TENANT, type=r.type, task=r.task, quality=r.quality)
        # Identical calls share a flight, so they share an arm: split by the prompt.
        arm = "b" if self.split is not None and zlib.crc32(r.prompt.encode()) & 1 else "a"
        self.totals.requests += 1
        # What this request would cost with no cache; published when it finishes, as its cost is.
        uncached = self._router.estimate_cost(r, model)
        ghosts = [(name, cache, cache.lookup(call, **scope))
                  for name, (_, cache) in sorted(self._shadows.items())]
        served = self._cache.lookup(call, **scope)
        result: Result | None = served.result if served is not None else None
        if served is None:
            try:
                result, shared = await self._flight.run(call, lambda: self._send(call, arm))
            except CfoptError as e:
                self.totals.errors += 1
                bus.publish(Event(clock.now(), "error", "request_failed",
                                  data={"type": r.type, "error": type(e).__name__}))
            else:
                if not shared:
                    self._cache.set(self._cache.key_for(call, TENANT)[0], result)
                whole = clock.now() - arrive
                first = (whole - (result.latency_s - result.first_content_s)
                         if r.type in STREAMED_TYPES and not shared else whole)
                bus.publish(Event(clock.now(), "metric", "response_time", first,
                                  {"cache": "miss", "type": r.type}))
                if self.split is not None:
                    bus.publish(Event(clock.now(), "metric", f"split_response_time.{arm}", first))
        else:
            self.totals.hits += 1
            bus.publish(Event(clock.now(), "metric", "cache_age_s",
                              clock.now() - served.result.finished_at))
            bus.publish(Event(clock.now(), "metric", "response_time", LOOKUP_S["memory"],
                              {"cache": "hit", "type": r.type}))
            if self.split is not None:
                bus.publish(Event(clock.now(), "metric", f"split_response_time.{arm}",
                                  LOOKUP_S["memory"]))
        now = clock.now()
        bus.publish(Event(now, "metric", "uncached_cost_usd", uncached))
        bus.publish(Event(now, "metric", "miss_cost_usd", 0.0 if served is not None else uncached))
        for name, cache, ghost in ghosts:
            bus.publish(Event(now, "metric", f"shadow_miss_cost_usd.{name}", 0.0 if ghost else uncached))
            bus.publish(Event(now, "metric", f"shadow_hit.{name}", 1.0 if ghost else 0.0))
            if ghost is not None:
                bus.publish(Event(now, "metric", f"shadow_age_s.{name}", now - ghost.result.finished_at))
            elif result is not None:   # a shadow stores what it would have had to fetch
                cache.set(cache.key_for(call, TENANT)[0], result)

    async def _send(self, call: Call, arm: str) -> Result:
        kind = self._providers.catalog.model(call.model).kind
        if kind != "text":
            return await self._counter.asend(call)
        knobs = self.split if arm == "b" and self.split is not None else self.knobs
        batchers = self._batchers[arm]
        b = batchers.get(call.model)
        if b is None:
            b = batchers[call.model] = MicroBatcher(
                self._merger.send_grouped, max_batch_size=knobs.max_batch_size,
                max_wait_s=knobs.max_wait_s, clock=self.clock)
        return await b.submit(call)


class _Paid:
    """The providers, publishing the cost of every call they answer (grouped calls too)."""

    def __init__(self, providers: Providers, bus: EventBus, clock: VirtualClock) -> None:
        self.providers, self.bus, self.clock = providers, bus, clock
        self.catalog = providers.catalog

    async def asend(self, call: Call) -> Result:
        result = await self.providers.for_model(call.model).asend(call)
        self.bus.publish(Event(self.clock.now(), "metric", "cost_usd", result.cost_usd,
                               {"model": result.model}))
        return result
