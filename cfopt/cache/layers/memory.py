"""The memory layer: a cachetools cache bounded by entries and by bytes, with per-entry TTLs.

The default policy is cachetools' ``TLRUCache`` (least recently used, with a time-to-use per
entry). Any other ``cachetools.Cache`` subclass can be passed as ``cache_class``, including
one whose ``popitem()`` implements a policy of your own; expiry then happens when an entry is
read. Time comes from ``clock`` (a ``VirtualClock``, or any callable that returns seconds), so TTL tests need no sleeping.

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
        layer = self

        # Count evictions where they happen: in popitem, the one method every policy overrides.
        base = cache_class or cachetools.TLRUCache

        class _Counting(base):  # type: ignore[misc, valid-type]
            def popitem(self):
                item = super().popitem()
                layer.evictions += 1
                return item

        _Counting.__name__ = f"Counting{base.__name__}"
        if cache_class is None:
            self._cache = _Counting(max_bytes, ttu=lambda _k, e, _now: e.expires_at,
                                    timer=clock, getsizeof=_size)
        else:
            self._cache = _Counting(max_bytes, getsizeof=_size)

    def __repr__(self) -> str:
        return (f"MemoryLayer(max_entries={self.max_entries}, max_bytes={self.max_bytes}, "
                f"policy={type(self._cache).__mro__[1].__name__}, namespace={self.namespace!r})")

    def get(self, key: str) -> bytes | None:
        self._check_key(key)
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and self.clock() >= entry.expires_at:
                del self._cache[key]  # a policy without TTL support expires on read
                entry = None
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        return entry.data

    def set(self, key: str, value: bytes, ttl: float) -> bool:
        if not self._check_set(key, value, ttl):
            return False
        data = bytes(value)
        entry = _Entry(data, self.clock() + ttl, len(data) + len(key))
        with self._lock:
            cache = self._cache
            if key not in cache:
                while len(cache) >= self.max_entries:
                    cache.popitem()
            cache[key] = entry  # cachetools evicts through popitem until the bytes fit
        self.sets += 1
        return True

    def delete(self, key: str) -> bool:
        self._check_key(key)
        with self._lock:
            return self._cache.pop(key, None) is not None

    def delete_matching(self, pattern: str) -> int:
        with self._lock:
            doomed = [k for k in list(self._cache.keys()) if fnmatch.fnmatchcase(k, pattern)]
            for k in doomed:
                self._cache.pop(k, None)
        return len(doomed)

    def clear(self) -> int:
        with self._lock:
            n = len(self._cache)
            self._cache.clear()
        return n

    @property
    def stats(self) -> LayerStats:
        with self._lock:
            expire = getattr(self._cache, "expire", None)
            if expire is not None:
                expire()
            return self._stats(len(self._cache), self._cache.currsize, self.max_bytes)
