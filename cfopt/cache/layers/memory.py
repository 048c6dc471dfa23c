"""The memory layer: an in-process cache bounded by entries and by bytes, with per-entry TTLs.

The default policy is least recently used, kept in an ``OrderedDict`` (a hit moves its entry to
the end, eviction pops from the front, both in C): each entry carries its own expiry time, and
an expired entry is dropped when it is read or reaches the front. That is what cachetools'
``TLRUCache`` does, with less bookkeeping per call: this layer does more than a bare
``cachetools.TTLCache`` (a TTL per entry, a byte bound, stats, a lock) and must not cost much
more (``benchmarks/bench_cache.py`` measures both on mixed get/set).

Any ``cachetools.Cache`` subclass can be passed as ``cache_class`` instead, including one whose
``popitem()`` implements a policy of your own; expiry then happens when an entry is read. Time
comes from ``clock`` (a ``VirtualClock``, or any callable that returns seconds), so TTL tests
need no sleeping.

>>> from cfopt.clock import VirtualClock
>>> clock = VirtualClock()
>>> layer = MemoryLayer(max_entries=2, max_bytes=1_000, clock=clock)
>>> layer.set("a", b"alpha", ttl=10); layer.set("b", b"beta", ttl=10); layer.set("c", b"c", ttl=10)
True
True
True
>>> layer.get("a") is None, layer.stats.evictions      # "a" was least recently used
(True, 1)
>>> clock.advance(11); layer.get("b") is None
True
"""
from __future__ import annotations

import fnmatch
import threading
import time
from collections import OrderedDict
from typing import Callable, NamedTuple

import cachetools

from ...errors import ConfigError
from .base import CacheLayer, LayerStats

__all__ = ["MemoryLayer"]


class _Entry(NamedTuple):
    data: bytes
    expires_at: float
    size: int  # bytes of value and key: what the byte bound counts


def _size(entry: _Entry) -> int:
    return entry.size


class MemoryLayer(CacheLayer):
    """An in-process cache layer bounded by ``max_entries`` and ``max_bytes``."""

    name = "memory"

    def __init__(self, *, max_entries: int = 10_000, max_bytes: int = 64 << 20,
                 clock: Callable[[], float] = time.monotonic,
                 cache_class: type[cachetools.Cache] | None = None, namespace: str = "cfopt",
                 max_value_bytes: int | None = None) -> None:
        for arg, value in (("max_entries", max_entries), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{arg} must be a positive integer, got {value!r}")
        if cache_class is not None and not (isinstance(cache_class, type)
                                            and issubclass(cache_class, cachetools.Cache)):
            raise ConfigError(f"cache_class must be a cachetools.Cache subclass, got {cache_class!r}")
        super().__init__(namespace=namespace, max_value_bytes=min(max_value_bytes or max_bytes, max_bytes))
        self.max_entries, self.max_bytes, self.clock = max_entries, max_bytes, clock
        self._lock = threading.Lock()
        self._lru: OrderedDict[str, _Entry] | None = None
        self._bytes = 0
        self._cache: cachetools.Cache | None = None
        if cache_class is None:
            self._lru = OrderedDict()
            return
        layer = self

        # Count evictions where they happen: in popitem, the one method every policy overrides.
        class _Counting(cache_class):  # type: ignore[misc, valid-type]
            def popitem(self):
                item = super().popitem()
                layer.evictions += 1
                return item

        _Counting.__name__ = f"Counting{cache_class.__name__}"
        self._cache = _Counting(max_bytes, getsizeof=_size)

    def __repr__(self) -> str:
        policy = "LRU" if self._cache is None else type(self._cache).__mro__[1].__name__
        return (f"MemoryLayer(max_entries={self.max_entries}, max_bytes={self.max_bytes}, "
                f"policy={policy}, namespace={self.namespace!r})")

    def get(self, key: str) -> bytes | None:
        if type(key) is not str or not key:
            self._check_key(key)
        with self._lock:
            lru = self._lru
            if lru is not None:
                entry = lru.get(key)
                if entry is not None:
                    if self.clock() < entry.expires_at:
                        lru.move_to_end(key)
                        self.hits += 1
                        return entry.data
                    del lru[key]
                    self._bytes -= entry.size
            else:
                entry = self._cache.get(key)  # type: ignore[union-attr]
                if entry is not None:
                    if self.clock() < entry.expires_at:
                        self.hits += 1
                        return entry.data
                    del self._cache[key]  # type: ignore[union-attr]  # expires on read
        self.misses += 1
        return None

    def set(self, key: str, value: bytes, ttl: float) -> bool:
        if not self._check_set(key, value, ttl):
            return False
        data = value if type(value) is bytes else bytes(value)
        entry = _Entry(data, self.clock() + ttl, len(data) + len(key))
        with self._lock:
            lru = self._lru
            if lru is not None:
                old = lru.pop(key, None)
                if old is not None:
                    self._bytes -= old.size
                lru[key] = entry
                self._bytes += entry.size
                self._shrink(lru)
            else:
                cache = self._cache
                if key not in cache:  # type: ignore[operator]
                    while len(cache) >= self.max_entries:  # type: ignore[arg-type]
                        cache.popitem()  # type: ignore[union-attr]
                cache[key] = entry  # type: ignore[index]  # cachetools evicts until the bytes fit
        self.sets += 1
        return True

    def _shrink(self, lru: OrderedDict[str, _Entry]) -> None:
        """Pop least recently used entries until both bounds hold (expired ones are no eviction)."""
        now = None
        while len(lru) > self.max_entries or self._bytes > self.max_bytes:
            _, entry = lru.popitem(last=False)
            self._bytes -= entry.size
            now = self.clock() if now is None else now
            if now < entry.expires_at:
                self.evictions += 1

    def delete(self, key: str) -> bool:
        self._check_key(key)
        with self._lock:
            if self._lru is not None:
                entry = self._lru.pop(key, None)
                if entry is not None:
                    self._bytes -= entry.size
                return entry is not None
            return self._cache.pop(key, None) is not None  # type: ignore[union-attr]

    def delete_matching(self, pattern: str) -> int:
        with self._lock:
            store = self._lru if self._lru is not None else self._cache
            doomed = [k for k in list(store.keys()) if fnmatch.fnmatchcase(k, pattern)]  # type: ignore[union-attr]
            for k in doomed:
                entry = store.pop(k, None)  # type: ignore[union-attr]
                if entry is not None and self._lru is not None:
                    self._bytes -= entry.size
        return len(doomed)

    def clear(self) -> int:
        with self._lock:
            store = self._lru if self._lru is not None else self._cache
            n = len(store)  # type: ignore[arg-type]
            store.clear()  # type: ignore[union-attr]
            self._bytes = 0
        return n

    @property
    def stats(self) -> LayerStats:
        with self._lock:
            if self._lru is not None:   # expired entries leave before they are counted
                now = self.clock()
                for k in [k for k, e in self._lru.items() if now >= e.expires_at]:
                    self._bytes -= self._lru.pop(k).size
                return self._stats(len(self._lru), self._bytes, self.max_bytes)
            return self._stats(len(self._cache), self._cache.currsize, self.max_bytes)  # type: ignore[arg-type, union-attr]
