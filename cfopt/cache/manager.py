"""CacheManager: several cache layers in front of a provider, asked in a strategy's order.

``get`` asks the layers in order and copies a hit into the faster layers it passed (promotion);
``set`` writes every layer that holds that kind, each with its own TTL. ``fetch`` / ``afetch``
wrap a provider: exact hit, then (optionally) a near-duplicate's answer, then one provider
call per distinct key, shared by concurrent identical misses (single-flight). Errors and
truncated answers are never cached. Keys carry the tenant, so tenants never share entries.

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

import json
from typing import Any, Iterable, Protocol

from ..clock import Clock, VirtualClock
from ..errors import ConfigError
from ..events import Event, EventBus
from ..pricing import PriceCatalog, load_catalog
from ..providers.base import Call, Result
from .codec import decode_result, encode_result
from .keys import check_tenant, make_key, output_params
from .layers.base import CacheLayer
from .layers.disk import DiskLayer
from .layers.memory import MemoryLayer
from .policy import TTLPolicy, layer_order
from .records import CacheStats, Lookup, Prediction, Served, WarmReport
from .singleflight import SingleFlight

__all__ = ["CacheManager", "Lookup", "Served", "Prediction", "WarmReport", "CacheStats"]

QUALITIES = ("low", "standard", "critical")


class _Provider(Protocol):
    def send(self, call: Call) -> Result: ...


class CacheManager:
    """Layers asked in ``strategy`` order, with TTLs per layer and kind, in front of ``provider``."""

    def __init__(self, layers: Iterable[CacheLayer] | None = None, *,
                 strategy: str = "memory-first", ttls: TTLPolicy | None = None,
                 provider: _Provider | None = None, dedup: Any = None,
                 catalog: PriceCatalog | None = None, clock: Clock | None = None,
                 warm_threshold: float = 0.5, bus: EventBus | None = None) -> None:
        self.clock: Clock = clock if clock is not None else VirtualClock()
        if layers is None:  # no server needed: memory, then a file under .cfopt-cache/
            layers = [MemoryLayer(clock=self.clock), DiskLayer()]
        layers = list(layers)
        names = [layer.name for layer in layers]
        if not layers or len(set(names)) != len(names):
            raise ConfigError(f"give one or more layers with distinct names, got {names}")
        if not all(isinstance(layer, CacheLayer) for layer in layers):
            raise ConfigError("every layer must be a cfopt.cache.layers.CacheLayer")
        if not 0.0 <= warm_threshold <= 1.0:
            raise ConfigError(f"warm_threshold must lie in [0, 1], got {warm_threshold}")
        by_name = {layer.name: layer for layer in layers}
        self.strategy = strategy
        self.layers = [by_name[n] for n in layer_order(strategy, names)]
        self.ttls = ttls if ttls is not None else TTLPolicy()
        self.provider, self.dedup, self.warm_threshold = provider, dedup, warm_threshold
        self.bus = bus
        self.catalog = catalog if catalog is not None else load_catalog()
        self._flight: SingleFlight[Result] = SingleFlight()
        self._counts = dict.fromkeys(("requests", "exact_hits", "semantic_hits", "coalesced",
                                      "provider_calls", "not_cached", "errors"), 0)

    def __repr__(self) -> str:
        return (f"CacheManager(strategy={self.strategy!r}, layers={[l.name for l in self.layers]}, "
                f"ttls={self.ttls!r}, dedup={type(self.dedup).__name__ if self.dedup else None})")

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
        if self.dedup is not None:
            self.dedup.discard_matching(pattern)
        return sum(layer.delete_matching(pattern) for layer in self.layers)

    @property
    def stats(self) -> CacheStats:
        """Return the manager's counters and each layer's stats."""
        return CacheStats(**self._counts, layers={l.name: l.stats for l in self.layers})

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
        if self.dedup is None or quality == "critical":
            return None
        match = self.dedup.find(call.prompt, scope=(*scope, type, task, quality))
        if match is None:
            return None
        value, layer = self.get(match.key, kind)
        if value is None:
            self.dedup.discard(match.key)  # the answer expired: forget the prompt too
            return None
        return Served(value, f"semantic:{layer}", match.key, match.prompt, match.score)

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

        For callers that make provider calls their own way (``cfopt.pipeline.core`` runs its own
        single-flight lanes). The near-duplicate index learns the prompt too, in the scope
        ``lookup`` searches. Returns whether it was stored (a truncated answer is not).
        """
        return self._put(call, result, dict(tenant=tenant, type=type, task=task, quality=quality))[1]

    def _put(self, call: Call, result: Result, scope: dict) -> tuple[str, bool]:
        key, _kind, dscope = self.key_for(call, check_tenant(scope.get("tenant", "public")))
        stored = self.set(key, result)
        if stored and self.dedup is not None:
            self.dedup.add(call.prompt, key, scope=(*dscope, scope.get("type"), scope.get("task"),
                                                    scope.get("quality", "standard")))
        return key, stored

    def _store(self, call: Call, result: Result, scope: dict, *, store: bool) -> Served:
        key = (self._put(call, result, scope)[0] if store else
               self.key_for(call, check_tenant(scope.get("tenant", "public")))[0])
        return Served(result, "provider", key)
