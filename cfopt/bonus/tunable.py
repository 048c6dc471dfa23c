"""A replay whose knobs can change while it runs: what ``cfopt.bonus.autotune`` steers.

``TunableReplay`` is a ``cfopt.pipeline.Pipeline`` with the four knobs of the auto-tuner in its
stages, and the pipeline's hooks doing the rest (one serving loop in the package):

1. routing       the cost stage (``CostOptimizer``): the cheapest model that meets the need;
2. memory cache  the cache stage (``CacheManager`` with one ``MemoryLayer``): **capacity**
                 (``memory_entries``) and the text **TTL** (``memory_ttl_s``; media 24x, photos
                 at most 1 h, as ``TTLPolicy`` says). Memory only: with the pipeline's disk layer
                 behind it (1 h TTL), whatever memory drops is found one layer down and the two
                 knobs would change neither spend nor calls;
3. coalescing    the latency stage: identical calls in flight share one answer;
4. merging       the latency stage's micro-batching of text (**batch size** ``max_batch_size`` and
                 **max-wait** ``max_wait_s``): one grouped call per batch, one call per prompt
                 when the reply does not split; media calls go straight on;

on pooled connections, no compression, no batching, no lazy loading.

``set_knobs`` changes all four between two requests of a running replay
(``Pipeline.set_params``). What carries over is everything: the cache's entries (each keeps the
TTL it was stored with; a smaller capacity evicts at the next store), calls in flight, the open
batch windows (a window already open keeps its deadline), the providers' rate-limit buckets and
random streams, the clock.

Events, on the bus, are the pipeline's: ``metric response_time`` (data ``cache`` hit or miss),
``metric cost_usd`` (every call paid, grouped calls that did not split included), ``error``, and
for the tuner ``cache_age_s`` (the age of an answer served from the cache: the staleness a longer
TTL buys), ``uncached_cost_usd`` (what the request would cost with no cache:
``CostOptimizer.estimate_cost`` on its routed model, output at its cap) and ``miss_cost_usd``
(the same, 0 on a cache hit).

**Shadow caches** (``Pipeline.set_shadows``). ``set_shadows({name: knobs})`` keeps more memory
caches with other knobs' capacity and TTL, looked up with every request and filled with the
answers the real one got: what the cache would have done on the *same* requests (ghost caches,
as in "miniature simulation" cache tuning; these store values too, production ones would keep
keys only). Each publishes ``shadow_hit.<name>`` (1/0), ``shadow_age_s.<name>`` and
``shadow_miss_cost_usd.<name>``. Two cache settings compared on the same requests differ by far
less noise than two windows of traffic do (``cfopt.bonus.autotune``).

**A split** (``Pipeline.set_split``). Batch size and max-wait change response times, which no
shadow can replay: ``set_split(knobs)`` serves half of the requests (by a stable hash of the
prompt: identical calls share a flight, so they share an arm) through a second latency stage
with other batch knobs, and the pipeline publishes each arm's response times as
``split_response_time.a`` and ``.b``: an A/B test inside the window.

>>> from cfopt.workload import Request
>>> reqs = [Request(t=float(i), type="photo", prompt="red bicycle", quality="low") for i in range(3)]
>>> run = TunableReplay(reqs).run()
>>> run.requests, run.hits, run.provider_calls
(3, 2, 1)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..cache import CacheManager, MemoryLayer, TTLPolicy
from ..cache.manager import MEMORY_ENTRIES
from ..clock import VirtualClock
from ..errors import ConfigError
from ..events import EventBus
from ..latency.optimizer import PerformanceOptimizer
from ..pipeline import Outcome, Pipeline, PipelineConfig
from ..pricing import DEFAULT_PROFILE
from ..workload import Request, strip_intent
from ..pricing import DEFAULT_PROFILE

__all__ = ["Knobs", "TunableReplay", "ReplayTotals"]

MEMORY_TTL_S = TTLPolicy().memory
# Routing, a memory cache, coalescing, micro-batching (always: a batch size of 1 sends at once),
# on pooled connections; nothing else, so the four knobs are what changes spend and speed.
CONFIG = PipelineConfig.select(only=["routing", "cache", "coalescing", "pooling"])


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


def _memory_cache(knobs: Knobs, clock: VirtualClock) -> CacheManager:
    return CacheManager([MemoryLayer(max_entries=knobs.memory_entries, clock=clock)],
                        ttls=TTLPolicy().with_memory(knobs.memory_ttl_s), clock=clock)


def _retune(cache: CacheManager, knobs: Knobs) -> None:
    cache.memory_entries = knobs.memory_entries   # a smaller capacity evicts at the next store
    cache.memory_ttl_s = knobs.memory_ttl_s       # stored entries keep the TTL they were given


def _latency(knobs: Knobs) -> PerformanceOptimizer:
    return PerformanceOptimizer(max_batch_size=knobs.max_batch_size, max_wait_s=knobs.max_wait_s)


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
        self.pipeline = Pipeline(CONFIG, cache=_memory_cache(self.knobs, self.clock),
                                 latency=_latency(self.knobs), seed=seed, profile=profile,
                                 bus=self.bus, clock=self.clock)
        self.split: Knobs | None = None
        self.totals = ReplayTotals(knobs=[(self.clock.now(), self.knobs)])
        self._started = False

    def __repr__(self) -> str:
        return f"TunableReplay(requests={len(self.requests)}, {self.knobs!r}, seed={self.seed})"

    def set_knobs(self, knobs: Knobs) -> None:
        """Use ``knobs`` from now on (before or during ``run``)."""
        self.knobs = knobs
        self.pipeline.set_params(cache__memory_entries=knobs.memory_entries,
                                 cache__memory_ttl_s=knobs.memory_ttl_s,
                                 latency__max_batch_size=knobs.max_batch_size,
                                 latency__max_wait_s=knobs.max_wait_s)
        if self._started:
            self.totals.knobs.append((self.clock.now(), knobs))
        else:
            self.totals.knobs = [(self.clock.now(), knobs)]

    def live_knobs(self) -> dict[str, object]:
        """The knobs as the running components hold them (batchers: one value per model)."""
        p = self.pipeline
        batchers = p.latency.queries._batchers if p.latency.queries is not None else {}
        return {"memory_entries": p.cache.memory_entries, "memory_ttl_s": p.cache.memory_ttl_s,
                "max_batch_size": {m: b.max_batch_size for m, b in sorted(batchers.items())},
                "max_wait_s": {m: b.max_wait_s for m, b in sorted(batchers.items())}}

    def set_split(self, knobs: Knobs | None) -> None:
        """Serve half of the requests (arm "b", by a stable hash of the prompt) with ``knobs``'
        batch size and max-wait from now on; None: every request with ``self.knobs``."""
        self.split = knobs
        current = self.pipeline.split
        if knobs is None:
            self.pipeline.set_split(None)
        elif current is not None:   # the arm keeps its open windows and takes the new knobs
            current.max_batch_size, current.max_wait_s = knobs.max_batch_size, knobs.max_wait_s
        else:
            self.pipeline.set_split(_latency(knobs))

    def set_shadows(self, shadows: dict[str, Knobs]) -> None:
        """Keep one shadow cache per name with those knobs' capacity and TTL from now on.

        A name already shadowed keeps its entries and takes the new knobs; a name left out stops.
        """
        kept = {}
        for name, knobs in shadows.items():
            cache = self.pipeline.shadows.get(name)
            if cache is None:
                cache = _memory_cache(knobs, self.clock)
            else:
                _retune(cache, knobs)
            kept[name] = cache
        self.pipeline.set_shadows(kept)

    def run(self, every_s: float | None = None,
            on_tick: Callable[[int], None] | None = None) -> ReplayTotals:
        """Replay every request; call ``on_tick(k)`` every ``every_s`` virtual seconds, the last
        time at the end of the window in which the last request finished."""
        if self._started:
            raise ConfigError("a TunableReplay runs once: make a new one")
        if every_s is not None and not every_s > 0:
            raise ConfigError(f"every_s must be positive seconds, got {every_s!r}")
        self._started = True
        t = self.totals

        def count(_r: Request, o: Outcome) -> None:   # live: a tick may read them mid-run
            t.requests += 1
            t.hits += o.from_cache
            t.errors += o.error is not None
        run = self.pipeline.run(self.requests, every_s=every_s, on_tick=on_tick, on_outcome=count)
        t.provider_calls, t.cost_usd, t.duration_s = run.provider_calls, run.cost_usd, run.duration_s
        return t
