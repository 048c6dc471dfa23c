"""CacheManager: several cache layers in front of a provider, asked in a strategy's order.

``get`` asks the layers in order and copies a hit into the faster layers it passed (promotion);
``set`` writes every layer that holds that kind, each with its own TTL. ``fetch`` / ``afetch``
wrap a provider: exact hit, then (optionally) a near-duplicate's answer, then one provider
call per distinct key, shared by concurrent identical misses (single-flight). Errors and
truncated answers are never cached. Keys carry the tenant, so tenants never share entries.

Near-duplicates come from one of two stages: ``dedup=`` a static-threshold detector
(``ContentDeduplication``), or ``semantic=`` the bounded layer (``BoundedSemanticLayer``), which
serves a near-duplicate only within its false-hit bound and, on a share of candidates, pays a
judge to compare the fresh answer with the cached one (``settle()`` waits for verifications
still running on an event loop). ``coalesce_key`` lets a caller that runs its own single-flight
(the pipeline) share a call already in flight for a near-duplicate too.

>>> from cfopt.cache.layers import MemoryLayer
>>> from cfopt.providers.base import Call
>>> from cfopt.pricing import Usage
>>> class Echo:                              # a provider that answers anything
...     def send(self, call):
...         return Result("anthropic", "claude-haiku-5-5", "text", call.prompt.upper(),
...                       Usage(), 0.0, 0.1, 0.05, 0.0, stop_reason="end_turn")
>>> cache = CacheManager([MemoryLayer()], provider=Echo())
>>> cache.fetch(Call("haiku", "hello"), tenant="acme").source
'provider'
>>> served = cache.fetch(Call("haiku", "Hello!"), tenant="acme")
>>> served.source, served.result.content
('memory', 'HELLO')
"""
from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Iterable, Protocol

from ..clock import Clock, VirtualClock
from ..errors import ConfigError
from ..events import Event, EventBus
from ..pricing import PriceCatalog, load_catalog
from ..providers.base import Call, Result
from .codec import decode_result, encode_result
from .dedup import ContentDeduplication
from .keys import check_tenant, make_key, output_params
from .layers.base import CacheLayer
from .layers.disk import DiskLayer
from .layers.memory import MemoryLayer
from .layers.redis import RedisLayer
from .policy import TTLPolicy, layer_order
from .records import CacheStats, Lookup, Prediction, Served, WarmReport
from .semantic import BoundedSemanticLayer, Decision
from .singleflight import SingleFlight

__all__ = ["CacheManager", "Lookup", "Served", "Prediction", "WarmReport", "CacheStats"]

QUALITIES = ("low", "standard", "critical")
MEMORY_ENTRIES = 10_000    # the memory layer's default capacity


class _Provider(Protocol):
    def send(self, call: Call) -> Result: ...


class CacheManager:
    """Layers asked in ``strategy`` order, with TTLs per layer and kind, in front of ``provider``."""

    KNOBS = ("memory_entries", "memory_ttl_s", "ttls", "strategy")

    def __init__(self, layers: Iterable[CacheLayer] | None = None, *,
                 strategy: str = "memory-first", ttls: TTLPolicy | None = None,
                 provider: _Provider | None = None, dedup: Any = None,
                 semantic: BoundedSemanticLayer | None = None,
                 catalog: PriceCatalog | None = None, clock: Clock | None = None,
                 warm_threshold: float = 0.5, bus: EventBus | None = None,
                 memory_entries: int = MEMORY_ENTRIES) -> None:
        self.clock: Clock = clock if clock is not None else VirtualClock()
        if not 0.0 <= warm_threshold <= 1.0:
            raise ConfigError(f"warm_threshold must lie in [0, 1], got {warm_threshold}")
        if isinstance(memory_entries, bool) or not isinstance(memory_entries, int) or memory_entries < 1:
            raise ConfigError(f"memory_entries must be a positive integer, got {memory_entries!r}")
        layer_order(strategy, [])   # an unknown strategy fails here, not at the first look-up
        if dedup is not None and semantic is not None:
            raise ConfigError("give dedup= (a static threshold) or semantic= (the bounded layer), "
                              "not both: the bounded layer has its own index")
        if semantic is not None and not isinstance(semantic, BoundedSemanticLayer):
            raise ConfigError(f"semantic must be a BoundedSemanticLayer, got {type(semantic).__name__}")
        self.strategy = strategy
        self._memory_entries = memory_entries
        # Layers you pass are yours: kept as they are, also from one pipeline run to the next.
        # Without them the manager makes its own: memory, then a file under .cfopt-cache/ (made
        # on first use); in a pipeline, ``bind`` makes fresh ones for every run.
        self._given = layers is not None
        self._layers: list[CacheLayer] | None = self._check(list(layers)) if layers is not None else None
        self._cleanup: list[Any] = []
        self.ttls = ttls if ttls is not None else TTLPolicy()
        self.provider, self.dedup, self.warm_threshold = provider, dedup, warm_threshold
        self.semantic = semantic
        self.use_dedup = True   # a pipeline run with its ``dedup`` switch off sets it False
        self.bus = bus
        # Prompts whose provider call is in flight, for ``coalesce_key``; explored requests
        # waiting for their answer to be verified; verifications running on an event loop.
        near = semantic.index if semantic is not None else dedup
        self._inflight = (type(near)(near.threshold, floor=near.floor)
                          if isinstance(near, ContentDeduplication) else None)
        self._explored: dict[str, tuple[Decision, tuple]] = {}
        self._verifying: set[asyncio.Task] = set()
        self.catalog = catalog if catalog is not None else load_catalog()
        self._flight: SingleFlight[Result] = SingleFlight()
        self._counts = dict.fromkeys(("requests", "exact_hits", "semantic_hits", "coalesced",
                                      "provider_calls", "not_cached", "errors"), 0)

    def __repr__(self) -> str:
        names = [l.name for l in self._layers] if self._layers is not None else "default"
        near = self.semantic or self.dedup
        return (f"CacheManager(strategy={self.strategy!r}, layers={names}, "
                f"ttls={self.ttls!r}, near_duplicates={type(near).__name__ if near else None})")

    def _check(self, layers: list[CacheLayer]) -> list[CacheLayer]:
        names = [layer.name for layer in layers]
        if not layers or len(set(names)) != len(names):
            raise ConfigError(f"give one or more layers with distinct names, got {names}")
        if not all(isinstance(layer, CacheLayer) for layer in layers):
            raise ConfigError("every layer must be a cfopt.cache.layers.CacheLayer")
        by_name = {layer.name: layer for layer in layers}
        return [by_name[n] for n in layer_order(self.strategy, names)]

    @property
    def layers(self) -> list[CacheLayer]:
        """The layers, in the order they are asked."""
        if self._layers is None:
            self._layers = self._check([MemoryLayer(max_entries=self._memory_entries,
                                                    clock=self.clock), DiskLayer()])
        return self._layers

    # -- knobs -------------------------------------------------------------------------------------
    @property
    def memory_entries(self) -> int:
        """The memory layer's capacity in entries (a smaller one evicts at the next store)."""
        memory = self._memory()
        return memory.max_entries if memory is not None else self._memory_entries

    @memory_entries.setter
    def memory_entries(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"memory_entries must be a positive integer, got {value!r}")
        self._memory_entries = value
        memory = self._memory()
        if memory is not None:
            memory.max_entries = value

    @property
    def memory_ttl_s(self) -> float:
        """Seconds the memory layer keeps a text answer (stored entries keep the TTL they got)."""
        return self.ttls.memory

    @memory_ttl_s.setter
    def memory_ttl_s(self, value: float) -> None:
        self.ttls = self.ttls.with_memory(value)

    def _memory(self) -> MemoryLayer | None:
        layers = self._layers or ()
        return next((l for l in layers if isinstance(l, MemoryLayer)), None)

    # -- as the pipeline's stage ---------------------------------------------------------------
    def bind(self, env: Any) -> None:
        """Use the run's clock, bus and catalog; without layers of its own, make the run's:
        memory, disk (``env.disk_path``, else a file in the run's folder), and Redis when the
        run has a URL (``env.redis_namespace``, else a namespace of the run's own)."""
        self.clock, self.bus, self.catalog = env.clock, env.bus, env.catalog
        self.use_dedup = bool(env.config.dedup)
        if self.semantic is not None:   # a run starts with no entries, no verdicts
            self.semantic.bind(env)
        self._explored.clear()
        if self._inflight is not None:
            self._inflight = type(self._inflight)(self._inflight.threshold, floor=self._inflight.floor)
        if self._given:
            return
        self.release()
        disk = env.disk_path if env.disk_path is not None else os.path.join(env.tmp, "cache.sqlite")
        layers: list[CacheLayer] = [MemoryLayer(max_entries=self._memory_entries, clock=env.clock),
                                    DiskLayer(disk, clock=env.clock)]
        if env.redis_url:
            own = env.redis_namespace is None
            redis = RedisLayer(env.redis_url, namespace=env.redis_namespace
                               or f"cfopt-replay-{os.getpid()}-{id(env)}")
            layers.append(redis)
            if own:   # a namespace of the run's own, so no earlier run's entries are seen
                self._cleanup.append(lambda: redis.delete_matching("*"))
        self._layers = self._check(layers)
        if self.dedup is not None:   # the entries it pointed to went with the old layers
            self.dedup.discard_matching("*")

    def release(self) -> None:
        """Close the layers this manager made itself (and remove a run's own Redis keys)."""
        if self._given or self._layers is None:
            return
        for step in self._cleanup:
            try:
                step()
            except Exception:   # a Redis gone away must not hide the run's own outcome
                pass
        self._cleanup.clear()
        for layer in self._layers:
            getattr(layer, "close", lambda: None)()
        self._layers = None

    # -- the key-value face ------------------------------------------------------------------------
    def get(self, key: str, kind: str = "text") -> Lookup:
        """Return the cached value of ``key`` and the layer it came from; promote it on a hit."""
        passed: list[CacheLayer] = []
        for layer in self.layers:
            if not layer.accepts(kind):
                continue
            data = layer.get(key)
            if data is None:
                passed.append(layer)
                continue
            try:
                value = decode_result(data)
            except (ValueError, TypeError, KeyError):  # a corrupt entry is a miss, and goes
                layer.delete(key)
                passed.append(layer)
                continue
            for faster in passed:
                faster.set(key, data, self.ttls.ttl(faster.name, kind))
            return Lookup(value, layer.name)
        return Lookup(None, None)

    def set(self, key: str, value: Result) -> bool:
        """Store ``value`` in every layer that holds its kind; return whether any layer kept it.

        A truncated text answer (``stop_reason == "max_tokens"``) is refused: it is not the
        answer to the request, only the part that fit.
        """
        if not isinstance(value, Result):
            raise ConfigError(f"only provider Results are cached, got {type(value).__name__}")
        if value.stop_reason == "max_tokens":
            self._counts["not_cached"] += 1
            return False
        data = encode_result(value)
        stored = False
        for layer in self.layers:
            if layer.accepts(value.kind):
                stored |= layer.set(key, data, self.ttls.ttl(layer.name, value.kind))
        return stored

    def invalidate(self, pattern: str) -> int:
        """Remove entries whose key matches the glob ``pattern`` from every layer; return the count."""
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"pattern must be a non-empty glob such as 'acme:*', got {pattern!r}")
        for near in (self.dedup, self.semantic, self._inflight):
            if near is not None:
                near.discard_matching(pattern)
        return sum(layer.delete_matching(pattern) for layer in self.layers)

    @property
    def stats(self) -> CacheStats:
        """Return the manager's counters and each layer's stats."""
        return CacheStats(**self._counts, layers={l.name: l.stats for l in self.layers},
                          semantic=self.semantic.stats if self.semantic is not None else None)

    # -- the provider face -------------------------------------------------------------------------
    def key_for(self, call: Call, tenant: str) -> tuple[str, str, tuple]:
        """Return the key of ``call`` for ``tenant``, its kind and its de-duplication scope."""
        info = self.catalog.model(call.model)
        params = output_params(call, info.kind)
        key = make_key(info.provider, info.id, call.prompt, params, tenant=tenant)
        return key, info.kind, (tenant, info.id, json.dumps(params, sort_keys=True))

    def lookup(self, call: Call, *, tenant: str = "public", type: str | None = None,
               task: str | None = None, quality: str = "standard") -> Served | None:
        """Return a cached answer for ``call`` (exact, else near-duplicate), or None."""
        check_tenant(tenant)
        if quality not in QUALITIES:
            raise ConfigError(f"quality must be one of {QUALITIES}, got {quality!r}")
        key, kind, scope = self.key_for(call, tenant)
        value, layer = self.get(key, kind)
        if value is not None:
            return Served(value, layer or "", key)
        # Near-duplicates answer only within one tenant, model, parameters, type, task and
        # quality; a critical request accepts nothing but its exact answer.
        near = (*scope, type, task, quality)
        if not self.use_dedup or quality == "critical":
            return None
        if self.semantic is not None:
            decision = self.semantic.decide(call.prompt, scope=near)
            if decision.action == "explore":   # a miss; its answer will be compared (``store``)
                self._explored[key] = (decision, near)
            if decision.action != "hit" or decision.candidate is None:
                return None
            match_key, match_prompt, score = (decision.candidate.key, decision.candidate.prompt,
                                              round(decision.probability, 12))
        elif self.dedup is not None:
            match = self.dedup.find(call.prompt, scope=near)
            if match is None:
                return None
            match_key, match_prompt, score = match.key, match.prompt, match.score
        else:
            return None
        value, layer = self.get(match_key, kind)
        if value is None:   # the answer expired: forget the prompt too
            (self.semantic or self.dedup).discard(match_key)
            return None
        if self.semantic is not None and decision.audit:
            self._audit(call, value, decision)
        return Served(value, f"semantic:{layer}", match_key, match_prompt, score)

    def coalesce_key(self, call: Call, *, tenant: str = "public", type: str | None = None,
                     task: str | None = None, quality: str = "standard") -> str:
        """Return the key to share a provider call under: ``call``'s own cache key, or the key of
        a near-duplicate whose call is in flight (as the near-duplicate stage would match it).

        For callers that run their own single-flight (the pipeline): a request that missed asks
        this before calling; its call counts as in flight until ``store`` caches its answer.
        """
        key, _kind, scope = self.key_for(call, check_tenant(tenant))
        near = (*scope, type, task, quality)
        if self._inflight is None:
            return key
        if quality != "critical":
            if self.semantic is not None:
                found = self.semantic.decide(call.prompt, near, among=self._inflight).candidate
            else:
                found = self._inflight.find(call.prompt, near)
            if found is not None and found.key != key:
                return found.key
        self._inflight.add(call.prompt, key, near)
        return key

    async def settle(self) -> None:
        """Wait for the verifications still running (their judge calls are paid in full)."""
        while self._verifying:
            await asyncio.gather(*list(self._verifying), return_exceptions=True)

    def fetch(self, call: Call, *, tenant: str = "public", type: str | None = None,
              task: str | None = None, quality: str = "standard", no_cache: bool = False,
              force_refresh: bool = False) -> Served:
        """Answer ``call`` from the cache or the provider.

        ``no_cache`` neither reads nor writes the cache; ``force_refresh`` skips reading and
        stores the fresh answer.
        """
        self._counts["requests"] += 1
        scope = dict(tenant=tenant, type=type, task=task, quality=quality)
        if not (no_cache or force_refresh):
            served = self.lookup(call, **scope)
            if served is not None:
                self._count_hit(served)
                return served
        result = self._call(call, lambda: self._need_provider().send(call))
        return self._publish(self._store(call, result, scope, store=not no_cache))

    async def afetch(self, call: Call, *, tenant: str = "public", type: str | None = None,
                     task: str | None = None, quality: str = "standard", no_cache: bool = False,
                     force_refresh: bool = False) -> Served:
        """The asyncio form of ``fetch``: concurrent identical misses share one provider call."""
        self._counts["requests"] += 1
        scope = dict(tenant=tenant, type=type, task=task, quality=quality)
        if not (no_cache or force_refresh):
            served = self.lookup(call, **scope)
            if served is not None:
                self._count_hit(served)
                return served
        provider = self._need_provider()
        key = self.key_for(call, check_tenant(tenant))[0]

        async def one_call() -> Result:
            send = getattr(provider, "asend", None)
            if send is not None:
                return await self._await_counted(send(call))
            return self._call(call, lambda: provider.send(call))

        if no_cache:
            return self._publish(Served(await one_call(), "provider", key))
        result, shared = await self._flight.run((key, force_refresh), one_call)
        if shared:
            self._counts["coalesced"] += 1
            return self._publish(Served(result, "coalesced", key))
        return self._publish(self._store(call, result, scope, store=True))

    def warm_cache(self, predictions: Iterable[Prediction | tuple[Call, float]]) -> WarmReport:
        """Pre-generate and cache the predicted requests whose probability reaches the threshold."""
        provider = self._need_provider()
        counts = dict(warmed=0, below_threshold=0, already_cached=0, failed=0)
        cost = 0.0
        for p in predictions:
            if not isinstance(p, Prediction):
                p = Prediction(*p)
            if not 0.0 <= p.probability <= 1.0:
                raise ConfigError(f"a probability must lie in [0, 1], got {p.probability}")
            if p.probability < self.warm_threshold:
                counts["below_threshold"] += 1
                continue
            key, kind, _ = self.key_for(p.call, check_tenant(p.tenant))
            if self.get(key, kind).value is not None:
                counts["already_cached"] += 1
                continue
            try:
                result = provider.send(p.call)
            except Exception:  # a failed pre-generation costs a miss later, nothing more
                counts["failed"] += 1
                continue
            cost += result.cost_usd
            self._put(p.call, result, dict(tenant=p.tenant))
            counts["warmed"] += 1
        return WarmReport(**counts, cost_usd=round(cost, 12))

    # -- helpers -----------------------------------------------------------------------------------
    def _need_provider(self) -> _Provider:
        if self.provider is None:
            raise ConfigError("this CacheManager has no provider: pass provider=... to fetch")
        return self.provider

    def _count_hit(self, served: Served) -> None:
        self._counts["semantic_hits" if served.source.startswith("semantic") else "exact_hits"] += 1
        self._publish(served)

    def _publish(self, served: Served) -> Served:
        """Tell the monitor how a request was answered: value 1 for a cache answer, 0 for a call."""
        if self.bus is not None:
            self.bus.publish(Event(self.clock.now(), "metric", "cache_hit",
                                   1.0 if served.from_cache else 0.0,
                                   {"source": served.source, "key": served.key}))
        return served

    def _call(self, call: Call, send) -> Result:
        try:
            result = send()
        except Exception:
            self._counts["errors"] += 1
            raise
        self._counts["provider_calls"] += 1
        return result

    async def _await_counted(self, pending) -> Result:
        try:
            result = await pending
        except Exception:
            self._counts["errors"] += 1
            raise
        self._counts["provider_calls"] += 1
        return result

    def store(self, call: Call, result: Result, *, tenant: str = "public", type: str | None = None,
              task: str | None = None, quality: str = "standard") -> bool:
        """Cache ``result`` as the answer to ``call``, as ``fetch`` does after a provider call.

        For callers that make provider calls their own way (``cfopt.pipeline.serving`` runs its own
        single-flight lanes). The near-duplicate index learns the prompt too, in the scope
        ``lookup`` searches. Returns whether it was stored (a truncated answer is not).
        """
        return self._put(call, result, dict(tenant=tenant, type=type, task=task, quality=quality))[1]

    def _put(self, call: Call, result: Result, scope: dict) -> tuple[str, bool]:
        key, kind, dscope = self.key_for(call, check_tenant(scope.get("tenant", "public")))
        stored = self.set(key, result)
        near = (*dscope, scope.get("type"), scope.get("task"), scope.get("quality", "standard"))
        if self._inflight is not None:
            self._inflight.discard(key)
        explored = self._explored.pop(key, None)
        if not self.use_dedup:
            pass
        elif stored and self.semantic is not None:
            if explored is not None:
                self._verify(call, result, key, kind, *explored)
            else:
                self.semantic.add(call.prompt, key, near)
        elif stored and self.dedup is not None:
            self.dedup.add(call.prompt, key, scope=near)
        return key, stored

    # -- verification (the bounded layer) ---------------------------------------------------------
    def _verify(self, call: Call, result: Result, key: str, kind: str, decision: Decision,
                near: tuple) -> None:
        """Compare the fresh answer with the explored candidate's, through the judge."""
        assert self.semantic is not None and decision.candidate is not None
        judge = self.semantic.judge
        cached = self.get(decision.candidate.key, kind).value
        if judge is None or cached is None:   # nothing to compare with: a plain new entry
            self.semantic.add(call.prompt, key, near)
            return
        args = (call.prompt, decision.candidate.prompt, cached.content)
        if not getattr(judge, "asynchronous", False):
            try:
                verdict = judge.judge(*args)
            except Exception:  # a failed verification teaches nothing; the answer stays cached
                self.semantic.add(call.prompt, key, near)
                return
            self._learn(decision, verdict.same, call.prompt, key, near)
            return

        async def verify() -> None:
            try:
                verdict = await judge.ajudge(*args)
            except Exception:
                self.semantic.add(call.prompt, key, near)  # type: ignore[union-attr]
                return
            self._learn(decision, verdict.same, call.prompt, key, near)

        task = asyncio.get_running_loop().create_task(verify())
        self._verifying.add(task)
        task.add_done_callback(self._verifying.discard)

    def _audit(self, call: Call, cached: Result, decision: Decision) -> None:
        """Audit a hit just served: a fresh answer and a judge call, paid, not waited for."""
        assert self.semantic is not None and decision.candidate is not None
        judge = self.semantic.judge
        if judge is None:
            return
        args = (call, decision.candidate.prompt, cached.content)
        observe = self.semantic.observe
        if not getattr(judge, "asynchronous", False):
            try:
                observe(decision, judge.audit(*args).same)
            except Exception:  # an audit that fails teaches nothing
                pass
            return

        async def audit() -> None:
            try:
                observe(decision, (await judge.aaudit(*args)).same)
            except Exception:
                pass

        task = asyncio.get_running_loop().create_task(audit())
        self._verifying.add(task)
        task.add_done_callback(self._verifying.discard)

    def _learn(self, decision: Decision, same: bool, prompt: str, key: str, near: tuple) -> None:
        assert self.semantic is not None
        self.semantic.observe(decision, same)
        if not same:   # as vCache does: a request the candidate does not serve becomes an entry
            self.semantic.add(prompt, key, near)

    def _store(self, call: Call, result: Result, scope: dict, *, store: bool) -> Served:
        key = (self._put(call, result, scope)[0] if store else
               self.key_for(call, check_tenant(scope.get("tenant", "public")))[0])
        return Served(result, "provider", key)
