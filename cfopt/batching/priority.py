"""A priority queue with aging: high before medium before low, yet low is never starved.

Strict priority starves: under a steady flood of high-priority work a low-priority task waits
forever. Aging fixes it by letting a task climb one level for every ``aging_s`` seconds it has
waited. Its *effective rank* is::

    rank(priority) - waited_s / aging_s        (high 0, medium 1, low 2; lower goes first)

Every waiting task ages at the same rate, so the order between two tasks never changes while
they wait, and the heap can sort on a key fixed at entry: ``rank * aging_s + enqueued_at``.
A low task that entered at ``t`` goes before every high task that entered after
``t + 2 * aging_s``: its wait is bounded by the work queued before that moment.

>>> clock = VirtualClock()
>>> q = AgingQueue(aging_s=10.0, clock=clock)
>>> q.push("old report", "low"); clock.advance(25); q.push("urgent post", "high")
>>> q.pop_many(2)        # the low task has waited 25 s: 2 - 25/10 = -0.5 beats high's 0
['old report', 'urgent post']
>>> effective_rank("low", waited_s=25, aging_s=10)
-0.5
"""
from __future__ import annotations

import heapq
import itertools
from typing import Callable, Generic, Iterator, TypeVar

from ..clock import Clock, VirtualClock
from ..errors import ConfigError

__all__ = ["PRIORITY_RANK", "effective_rank", "aging_key", "AgingQueue"]

PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}

T = TypeVar("T")


def _rank(priority: str) -> int:
    try:
        return PRIORITY_RANK[priority]
    except KeyError:
        raise ConfigError(f"priority must be one of {', '.join(PRIORITY_RANK)}, "
                          f"got {priority!r}") from None


def effective_rank(priority: str, waited_s: float, aging_s: float | None) -> float:
    """Return the rank of a task that has waited ``waited_s``; lower goes first."""
    if aging_s is None:
        return float(_rank(priority))
    return _rank(priority) - waited_s / aging_s


def aging_key(priority: str, enqueued_at: float, aging_s: float | None) -> tuple[float, float]:
    """Return a sort key fixed at entry that orders tasks as ``effective_rank`` does at any time."""
    if aging_s is None:  # strict priority: rank first, then first come first served
        return (float(_rank(priority)), enqueued_at)
    return (_rank(priority) * aging_s + enqueued_at, 0.0)


class AgingQueue(Generic[T]):
    """Items by aged priority; ``aging_s=None`` gives strict priority (to show starvation)."""

    def __init__(self, aging_s: float | None = 30.0, clock: Clock | None = None) -> None:
        if aging_s is not None and not aging_s > 0:
            raise ConfigError(f"aging_s must be positive or None, got {aging_s}")
        self.aging_s = aging_s
        self.clock: Clock = clock if clock is not None else VirtualClock()
        self._heap: list[tuple[tuple[float, float], int, float, str, T]] = []
        self._seq = itertools.count()  # ties: first in, first out

    def __repr__(self) -> str:
        return f"AgingQueue(aging_s={self.aging_s}, pending={len(self)})"

    def __len__(self) -> int:
        return len(self._heap)

    def __iter__(self) -> Iterator[T]:
        """The items in the order they would come out."""
        return (entry[-1] for entry in sorted(self._heap))

    def push(self, item: T, priority: str = "medium", *, at: float | None = None) -> None:
        """Queue ``item``; ``at`` is when it arrived (default: now)."""
        t = self.clock.now() if at is None else at
        heapq.heappush(self._heap, (aging_key(priority, t, self.aging_s), next(self._seq), t,
                                    priority, item))

    def pop(self) -> T:
        """Take the item that goes first; IndexError when empty."""
        return heapq.heappop(self._heap)[-1]

    def pop_many(self, n: int) -> list[T]:
        """Take up to ``n`` items, first ones first."""
        return [self.pop() for _ in range(min(n, len(self._heap)))]

    def remove(self, match: Callable[[T], bool]) -> T | None:
        """Take out an item that ``match`` accepts (the first found); None if none does."""
        for i, entry in enumerate(self._heap):
            if match(entry[-1]):
                self._heap[i] = self._heap[-1]
                self._heap.pop()
                heapq.heapify(self._heap)
                return entry[-1]
        return None

    def oldest_wait(self) -> float:
        """How long the longest-waiting item has waited (0 when empty)."""
        if not self._heap:
            return 0.0
        return self.clock.now() - min(entry[2] for entry in self._heap)
