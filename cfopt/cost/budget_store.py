"""Where budget counters live: in this process (``MemoryStore``) or in Redis (``RedisStore``).

Counters are integer nano-dollars, so sums are exact. A reservation adds to a budget's counter
only if the result stays within its limit, and it does so for every budget (day and month) at
once or for none: one lock in memory, one Lua script in Redis, which Redis runs whole, so two
processes can never both take the last dollar.

Every hold has a *lease*: if its call is never settled (the process died, the settle could not
reach the store), the next reservation after ``lease_s`` sweeps it and the money is free again.
A settle that arrives after its lease ran out still counts the actual cost.

>>> store = MemoryStore()
>>> ok, lease = store.try_reserve(["day"], [100], 60, lease_s=600)
>>> ok, store.try_reserve(["day"], [100], 60, lease_s=600)[0]
(-1, 0)
>>> store.settle(lease, ["day"], ["spent"], actual=45); store.get("day"), store.get("spent")
(45, 45)

``RedisStore`` (``budget_redis``) keeps the same counters in Redis, shared by processes.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Protocol

__all__ = ["BudgetStore", "MemoryStore", "Lease", "DEFAULT_LEASE_S"]

DEFAULT_LEASE_S = 600.0   # Anthropic refuses non-streaming calls expected to run past 10 minutes


@dataclass(frozen=True, slots=True)
class Lease:
    """A hold in the store: its amount, budget keys, and the store time it runs out."""

    id: str
    amount: int
    keys: tuple[str, ...]
    expires_at: float


class BudgetStore(Protocol):
    """Where budget counters live. Amounts are integer nano-dollars."""

    def try_reserve(self, keys: Sequence[str], limits: Sequence[int], amount: int, *,
                    lease_s: float = DEFAULT_LEASE_S) -> tuple[int, str]:
        """Add ``amount`` to every key if none would pass its limit: ``(-1, lease id)``; else
        ``(index of the first key that would, "")``. Sweeps holds whose lease ran out first."""

    def settle(self, lease: str | None, held_keys: Sequence[str], spent_keys: Sequence[str],
               actual: int) -> None:
        """Release ``lease``'s hold from ``held_keys`` and add ``actual`` to both key lists
        (``lease=None``: money spent without a hold). Settling a lease twice counts it once."""

    def get(self, key: str) -> int: ...

    def first_time(self, key: str) -> bool:
        """True exactly once per key (for once-per-period alerts)."""

    def leases(self) -> list[Lease]:
        """The holds alive right now."""


class MemoryStore:
    """Counters in this process, behind one lock; leases on ``clock`` (monotonic seconds)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, int] = defaultdict(int)
        self._seen: set[str] = set()
        self._leases: dict[str, Lease] = {}
        self._due: list[tuple[float, str]] = []  # (expiry, lease id): a heap
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"MemoryStore(keys={len(self._values)}, leases={len(self._leases)})"

    def _sweep(self, now: float) -> None:
        while self._due and self._due[0][0] <= now:
            _, lease_id = heapq.heappop(self._due)
            lease = self._leases.pop(lease_id, None)
            if lease is not None:
                for key in lease.keys:
                    self._values[key] -= lease.amount

    def try_reserve(self, keys: Sequence[str], limits: Sequence[int], amount: int, *,
                    lease_s: float = DEFAULT_LEASE_S) -> tuple[int, str]:
        with self._lock:
            now = self.clock()
            self._sweep(now)
            for i, (key, limit) in enumerate(zip(keys, limits)):
                if self._values[key] + amount > limit:
                    return i, ""
            for key in keys:
                self._values[key] += amount
            lease = Lease(f"m{next(self._ids)}", amount, tuple(keys), now + lease_s)
            self._leases[lease.id] = lease
            heapq.heappush(self._due, (lease.expires_at, lease.id))
            return -1, lease.id

    def settle(self, lease: str | None, held_keys: Sequence[str], spent_keys: Sequence[str],
               actual: int) -> None:
        with self._lock:
            hold = self._leases.pop(lease, None) if lease else None
            held = hold.amount if hold is not None else 0  # swept already: the hold is gone
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

    def leases(self) -> list[Lease]:
        with self._lock:
            return sorted(self._leases.values(), key=lambda lease: lease.expires_at)
