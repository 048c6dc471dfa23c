"""Belady's optimum: the best hit rate any eviction policy can reach on a known sequence.

Knowing the future, evict the entry needed again furthest ahead (and do not even store a
new entry needed later than everything already held). No real policy knows the future, so
this is the ceiling to hold LRU or your own ``popitem`` against, at the same capacity.

>>> keys = list("abcabdabcabd")
>>> replay_hit_rate(keys, cachetools.LRUCache(maxsize=2)), belady_hit_rate(keys, capacity=2)
(0.0, 0.5)
"""
from __future__ import annotations

import heapq
from typing import Hashable, MutableMapping, Sequence

import cachetools

from ..errors import ConfigError

__all__ = ["belady_hit_rate", "replay_hit_rate", "lru_hit_rate"]

_NEVER = float("inf")


def belady_hit_rate(keys: Sequence[Hashable], capacity: int) -> float:
    """Return the hit rate of the clairvoyant policy holding ``capacity`` entries."""
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ConfigError(f"capacity must be a positive integer, got {capacity!r}")
    n = len(keys)
    next_use: list[float] = [_NEVER] * n
    last: dict[Hashable, int] = {}
    for i in range(n - 1, -1, -1):
        next_use[i] = last.get(keys[i], _NEVER)
        last[keys[i]] = i
    held: dict[Hashable, float] = {}          # key -> its next use
    heap: list[tuple[float, int, Hashable]] = []  # (-next use, tiebreak, key), stale ones skipped
    hits = 0
    for i, key in enumerate(keys):
        nxt = next_use[i]
        if key in held:
            hits += 1
        elif len(held) >= capacity:
            while -heap[0][0] != held.get(heap[0][2]):  # drop stale heap entries
                heapq.heappop(heap)
            if -heap[0][0] <= nxt:        # everything held is needed sooner: do not store
                continue
            _, _, victim = heapq.heappop(heap)
            del held[victim]
        if nxt == _NEVER and key not in held:
            continue                      # never needed again: storing it cannot help
        held[key] = nxt
        heapq.heappush(heap, (-nxt, i, key))
    return hits / n if n else 0.0


def replay_hit_rate(keys: Sequence[Hashable], cache: MutableMapping) -> float:
    """Return the hit rate of ``cache`` (any cachetools cache) replaying ``keys``."""
    hits = 0
    for key in keys:
        if key in cache:
            hits += 1
            cache[key]  # a read: lets LRU-like policies see the use
        else:
            cache[key] = True
    return hits / len(keys) if keys else 0.0


def lru_hit_rate(keys: Sequence[Hashable], capacity: int) -> float:
    """Return the hit rate of least-recently-used eviction holding ``capacity`` entries."""
    return replay_hit_rate(keys, cachetools.LRUCache(maxsize=capacity))
