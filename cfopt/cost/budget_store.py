"""Where budget counters live: in this process (``MemoryStore``) or in Redis (``RedisStore``).

Counters are integer nano-dollars, so sums are exact. A reservation adds to a budget's counter
only if the result stays within its limit, and it does so for every budget (day and month) at
once or for none: one lock in memory, one Lua script in Redis, which Redis runs whole, so two
processes can never both take the last dollar.

>>> store = MemoryStore()
>>> store.try_reserve(["day"], [100], 60), store.try_reserve(["day"], [100], 60)
(-1, 0)
>>> store.settle(["day"], ["spent"], held=60, actual=45); store.get("day"), store.get("spent")
(45, 45)
"""
from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

__all__ = ["BudgetStore", "MemoryStore", "RedisStore"]


class BudgetStore(Protocol):
    """Where budget counters live. Amounts are integer nano-dollars."""

    def try_reserve(self, keys: Sequence[str], limits: Sequence[int], amount: int) -> int:
        """Add ``amount`` to every key if none would pass its limit; -1 on success, else the
        index of the first key that would."""

    def settle(self, held_keys: Sequence[str], spent_keys: Sequence[str], held: int,
               actual: int) -> None:
        """Release ``held`` from ``held_keys`` and add ``actual`` to both key lists."""

    def get(self, key: str) -> int: ...

    def first_time(self, key: str) -> bool:
        """True exactly once per key (for once-per-period alerts)."""


class MemoryStore:
    """Counters in this process, behind one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = defaultdict(int)
        self._seen: set[str] = set()

    def __repr__(self) -> str:
        return f"MemoryStore(keys={len(self._values)})"

    def try_reserve(self, keys: Sequence[str], limits: Sequence[int], amount: int) -> int:
        with self._lock:
            for i, (key, limit) in enumerate(zip(keys, limits)):
                if self._values[key] + amount > limit:
                    return i
            for key in keys:
                self._values[key] += amount
            return -1

    def settle(self, held_keys: Sequence[str], spent_keys: Sequence[str], held: int, actual: int) -> None:
        with self._lock:
            for key in held_keys:
                self._values[key] += actual - held
            for key in spent_keys:
                self._values[key] += actual

    def get(self, key: str) -> int:
        with self._lock:
            return self._values.get(key, 0)

    def first_time(self, key: str) -> bool:
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            return True


_RESERVE_LUA = """
local amount = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') + amount > tonumber(ARGV[i + 2]) then return i - 1 end
end
for _, key in ipairs(KEYS) do
  redis.call('INCRBY', key, amount)
  redis.call('EXPIRE', key, tonumber(ARGV[2]))
end
return -1
"""
_SETTLE_LUA = """
local held, actual, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  if i <= n then redis.call('INCRBY', key, actual - held) else redis.call('INCRBY', key, actual) end
  redis.call('EXPIRE', key, tonumber(ARGV[4]))
end
return 0
"""


class RedisStore:
    """Counters in Redis, shared by every process that uses the same URL and prefix.

    Each reservation is one Lua script: Redis runs it whole, so two processes can never both
    take the last dollar. Keys expire after ``ttl_s`` (longer than a month).
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "cfopt:budget",
                 ttl_s: int = 40 * 86400, client=None) -> None:
        import redis  # only needed when Redis is used
        self.prefix, self.ttl_s = prefix, ttl_s
        self._r = client if client is not None else redis.Redis.from_url(url)
        self._reserve = self._r.register_script(_RESERVE_LUA)
        self._settle = self._r.register_script(_SETTLE_LUA)

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r})"  # never the URL: it may carry a password

    def _k(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def try_reserve(self, keys: Sequence[str], limits: Sequence[int], amount: int) -> int:
        return int(self._reserve(keys=[self._k(k) for k in keys], args=[amount, self.ttl_s, *limits]))

    def settle(self, held_keys: Sequence[str], spent_keys: Sequence[str], held: int, actual: int) -> None:
        self._settle(keys=[self._k(k) for k in (*held_keys, *spent_keys)],
                     args=[held, actual, len(held_keys), self.ttl_s])

    def get(self, key: str) -> int:
        return int(self._r.get(self._k(key)) or 0)

    def first_time(self, key: str) -> bool:
        return bool(self._r.set(self._k(f"seen:{key}"), 1, nx=True, ex=self.ttl_s))
