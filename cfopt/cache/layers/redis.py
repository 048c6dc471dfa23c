"""The Redis layer: a cache shared by every process that talks to one Redis server.

Keys live under ``namespace:``; Redis itself expires them (``SET ... PX``). Bulk operations use
pipelines, pattern invalidation uses ``SCAN`` (never ``KEYS``, which blocks the server), and
``clear`` removes only this namespace (never ``FLUSHDB``). Redis bounds its own memory
(``maxmemory`` with an eviction policy); the layer refuses single values over
``max_value_bytes``.

When the server does not answer, no exception reaches the caller: the operation counts as a
failure and answers "miss"; for ``retry_after_s`` the layer does not even try (each try would
cost a timeout), then the client reconnects by itself.
"""
from __future__ import annotations

import re
import time
from typing import Callable, Iterable, Mapping, TypeVar

import redis as redis_py
from redis.backoff import NoBackoff
from redis.retry import Retry

from ...errors import ConfigError
from .base import CacheLayer, LayerStats

__all__ = ["RedisLayer", "redact_url"]

T = TypeVar("T")


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


class RedisLayer(CacheLayer):
    """A cache layer on a Redis server at ``url``."""

    name = "redis"

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, namespace: str = "cfopt",
                 max_value_bytes: int = 8 << 20, timeout_s: float = 0.25,
                 retry_after_s: float = 1.0, scan_count: int = 1000) -> None:
        super().__init__(namespace=namespace, max_value_bytes=max_value_bytes)
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"url must be a redis://, rediss:// or unix:// URL, got {redact_url(str(url))!r}")
        if not timeout_s > 0 or retry_after_s < 0:
            raise ConfigError("timeout_s must be positive and retry_after_s not negative")
        self.url, self.retry_after_s, self.scan_count = url, retry_after_s, scan_count
        # No retries inside redis-py: during an outage one quick failure beats several slow ones.
        self.client = redis_py.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0), health_check_interval=30)
        self._prefix = namespace + ":"
        self._down_until = 0.0
        self._evicted_at_start = self._server_evictions()

    def __repr__(self) -> str:
        return f"RedisLayer({redact_url(self.url)!r}, namespace={self.namespace!r})"

    @property
    def available(self) -> bool:
        """Whether the layer will try the server now (False just after a failure)."""
        return time.monotonic() >= self._down_until

    def _run(self, op: Callable[[], T], default: T) -> T:
        if not self.available:
            self.failures += 1
            return default
        try:
            return op()
        except (redis_py.RedisError, OSError):
            self.failures += 1
            self._down_until = time.monotonic() + self.retry_after_s
            return default

    def _k(self, key: str) -> str:
        return self._prefix + self._check_key(key)

    def get(self, key: str) -> bytes | None:
        value = self._run(lambda: self.client.get(self._k(key)), None)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def set(self, key: str, value: bytes, ttl: float) -> bool:
        if not self._check_set(key, value, ttl):
            return False
        ms = max(1, int(ttl * 1000))
        stored = bool(self._run(lambda: self.client.set(self._k(key), bytes(value), px=ms), False))
        self.sets += stored
        return stored

    def delete(self, key: str) -> bool:
        return bool(self._run(lambda: self.client.delete(self._k(key)), 0))

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        keys = list(keys)
        if not keys:
            return {}
        values = self._run(lambda: self.client.mget([self._k(k) for k in keys]), [None] * len(keys))
        found = {k: v for k, v in zip(keys, values) if v is not None}
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def set_many(self, items: Mapping[str, bytes], ttl: float) -> int:
        keep = {k: v for k, v in items.items() if self._check_set(k, v, ttl)}
        ms = max(1, int(ttl * 1000))

        def op() -> int:
            pipe = self.client.pipeline(transaction=False)  # one round trip for all of them
            for k, v in keep.items():
                pipe.set(self._k(k), bytes(v), px=ms)
            return sum(bool(r) for r in pipe.execute())

        stored = self._run(op, 0)
        self.sets += stored
        return stored

    def _scan(self, pattern: str) -> Iterable[bytes]:
        return self.client.scan_iter(match=self._prefix + pattern, count=self.scan_count)

    def delete_matching(self, pattern: str) -> int:
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"pattern must be a non-empty glob, got {pattern!r}")

        def op() -> int:
            removed, batch = 0, []
            for key in self._scan(pattern):
                batch.append(key)
                if len(batch) >= 500:
                    removed += self.client.unlink(*batch)
                    batch.clear()
            if batch:
                removed += self.client.unlink(*batch)
            return removed

        return self._run(op, 0)

    def clear(self) -> int:
        return self.delete_matching("*")

    def _server_evictions(self) -> int:
        return int(self._run(lambda: self.client.info("stats").get("evicted_keys", 0), 0))

    @property
    def stats(self) -> LayerStats:
        """Return counters; entries and bytes come from a SCAN of the namespace (O(entries))."""
        def op() -> tuple[int, int]:
            n = b = 0
            batch: list[bytes] = []

            def flush() -> int:
                pipe = self.client.pipeline(transaction=False)
                for key in batch:
                    pipe.strlen(key)
                sizes = pipe.execute()
                return sum(s + len(k) - len(self._prefix) for k, s in zip(batch, sizes) if s)
            for key in self._scan("*"):
                batch.append(key)
                n += 1
                if len(batch) >= 1000:
                    b += flush()
                    batch = []
            if batch:
                b += flush()
            return n, b

        n, b = self._run(op, (0, 0))
        # Redis evicts under maxmemory for the whole server; this is that count since start.
        self.evictions = max(0, self._server_evictions() - self._evicted_at_start)
        return self._stats(n, b, None)

    def close(self) -> None:
        self.client.close()
