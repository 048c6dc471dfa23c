"""The cache layer seam: a small get/set/delete interface every layer implements.

A layer stores ``bytes`` under string keys for a time-to-live in seconds, inside a namespace
(a prefix of its own on a shared backing store). Layers never raise for a backend failure: a
failed operation is counted and answers "miss" (or "not stored"), so a cache outage makes the
system slower, never broken. Impossible arguments raise ``ConfigError`` at once.

Every layer passes the contract suite in ``tests/test_cache_layers.py``.
"""
from __future__ import annotations

import abc
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from ...errors import ConfigError

__all__ = ["CacheLayer", "LayerStats", "check_namespace", "MEDIA_KINDS", "ALL_KINDS"]

MEDIA_KINDS = frozenset({"image", "video", "audio"})
ALL_KINDS = frozenset({"text", "image", "video", "audio", "photo"})
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def check_namespace(namespace: str) -> str:
    """Return ``namespace`` if it is a safe key prefix, else raise ``ConfigError``."""
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        raise ConfigError(f"namespace must be 1-100 of A-Z a-z 0-9 _ . : -, got {namespace!r}")
    return namespace


@dataclass(frozen=True, slots=True)
class LayerStats:
    """What one layer did so far: a plain record that dashboards and checks read directly."""

    layer: str
    hits: int = 0
    misses: int = 0
    sets: int = 0
    evictions: int = 0       # entries removed to make room (not expiries)
    failures: int = 0        # operations the backend could not do (outage, I/O error)
    entries: int = 0
    bytes: int = 0
    max_bytes: int | None = None
    corruptions: int = 0     # damaged entries or files found, dropped and never served

    @property
    def hit_rate(self) -> float:
        looked = self.hits + self.misses
        return self.hits / looked if looked else 0.0


class CacheLayer(abc.ABC):
    """A cache layer: bytes under string keys, each with a time-to-live, in a namespace."""

    name: str = "layer"
    kinds: frozenset[str] = ALL_KINDS   # the kinds of result this layer is meant to hold

    def __init__(self, *, namespace: str = "cfopt", max_value_bytes: int = 8 << 20) -> None:
        if not isinstance(max_value_bytes, int) or max_value_bytes < 1:
            raise ConfigError(f"max_value_bytes must be a positive integer, got {max_value_bytes!r}")
        self.namespace = check_namespace(namespace)
        self.max_value_bytes = max_value_bytes
        self.hits = self.misses = self.sets = self.evictions = self.failures = 0
        self.corruptions = 0

    def accepts(self, kind: str) -> bool:
        """Say whether results of ``kind`` belong in this layer."""
        return kind in self.kinds

    @abc.abstractmethod
    def get(self, key: str) -> bytes | None:
        """Return the value stored under ``key``, or None when absent or expired."""

    @abc.abstractmethod
    def set(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` under ``key`` for ``ttl`` seconds; return whether it was stored."""

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was there."""

    @abc.abstractmethod
    def delete_matching(self, pattern: str) -> int:
        """Remove every key matching the glob ``pattern``; return how many were removed."""

    @abc.abstractmethod
    def clear(self) -> int:
        """Remove every entry of this namespace; return how many were removed."""

    @property
    @abc.abstractmethod
    def stats(self) -> LayerStats:
        """Return this layer's counters and current size."""

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Return the values found for ``keys`` (absent keys are left out)."""
        found = {}
        for key in keys:
            value = self.get(key)
            if value is not None:
                found[key] = value
        return found

    def set_many(self, items: Mapping[str, bytes], ttl: float) -> int:
        """Store every item for ``ttl`` seconds; return how many were stored."""
        return sum(self.set(k, v, ttl) for k, v in items.items())

    def close(self) -> None:
        """Release the backend's resources (files, connections)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(namespace={self.namespace!r})"

    # -- helpers for implementations ------------------------------------------------------------
    def _check_key(self, key: str) -> str:
        if not isinstance(key, str) or not key:
            raise ConfigError(f"a cache key must be a non-empty string, got {key!r}")
        return key

    def _check_set(self, key: str, value: bytes, ttl: float) -> bool:
        """Validate a set; return False for a value too large to keep."""
        self._check_key(key)
        if not isinstance(value, (bytes, bytearray, memoryview)):
            # Errors and live objects never reach a cache: only encoded answers do.
            raise ConfigError(f"a cache value must be bytes, got {type(value).__name__}")
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
            raise ConfigError(f"ttl must be a positive number of seconds, got {ttl!r}")
        return len(value) <= self.max_value_bytes

    def _stats(self, entries: int, nbytes: int, max_bytes: int | None) -> LayerStats:
        return LayerStats(self.name, self.hits, self.misses, self.sets, self.evictions,
                          self.failures, entries, nbytes, max_bytes, self.corruptions)
