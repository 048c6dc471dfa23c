"""Part 2's decision: a memory layer's capacity and a TTL per content type, for a memory budget.

The memory layer is the fastest cache and the scarcest: a process gets a budget of bytes, and the
layer is configured in entries (``CacheManager.memory_entries``), while an answer's size depends on
its kind: a photo search result is a page of photo records, many times a text answer; an image,
video or audio answer is a URL and its metadata. The decision asked here is a ``MemoryPlan``: how
many entries the layer holds (least recently used beyond that) and how long each content type
stays (its TTL; 0 keeps the type out of memory, for the next layer to answer). A TTL is also a
way to let go: an entry leaves when its TTL runs out, as Redis and cachetools' ``TLRUCache``
expire them (``MemoryLayer`` drops an expired entry lazily), so a short TTL hands its bytes back
to the other types sooner. The budget holds for the peak: the most bytes held at any moment.

- ``MemoryReplay.of(requests)`` asks the simulated providers once for each distinct request of
  a workload (the keys ``cfopt.cache.keys.cache_key`` makes, the entry sizes ``MemoryLayer``
  counts: the encoded answer and its key);
- ``replay.outcome(plan)``: the hit rate a plan reaches and the most bytes it held at once;
  ``replay.hit_rate_if_fits(plan)`` is the grader's outcome (None over the budget);
- ``replay.best_plan()``: the best known plan, a search over capacities and TTLs;
- ``replay.ceiling()``: what no plan beats, even with unlimited memory (every distinct request
  misses once); ``replay.belady(capacity)``: Belady's optimum at a capacity in entries
  (``cfopt.cache.belady``), for a policy that knows the future;
- ``memory_variant(seed)``: another hour of the same kind of traffic (``cfopt.workload.generate``).

>>> from cfopt.workload import Request
>>> hour = [Request(t=float(i), type="text", task="summary", max_tokens=128,
...                 prompt=f"Summarize note {i % 3}.") for i in range(9)]
>>> replay = MemoryReplay.of(hour, budget_bytes=100_000)
>>> got = replay.outcome({"capacity": 3, "ttl_s": dict.fromkeys(TYPES, 3600)})
>>> got.hits, got.fits, round(got.hit_rate, 4) == round(replay.ceiling(), 4)
(6, True, True)
>>> replay.outcome({"capacity": 3, "ttl_s": {**dict.fromkeys(TYPES, 3600), "text": 2}}).hits
0
"""
from __future__ import annotations

import heapq
import statistics
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...cache.belady import belady_hit_rate
from ...cache.codec import encode_result
from ...cache.keys import cache_key
from ...errors import ConfigError
from ...pipeline.evaluate import CACHE_MODELS
from ...providers import Call, Providers
from ...workload import TYPES, Request, generate

__all__ = ["TYPES", "MEMORY_BUDGET_BYTES", "CAPACITIES", "TTLS", "MemoryPlan", "PlanOutcome",
           "MemoryReplay", "memory_variant", "plan_of"]

MEMORY_BUDGET_BYTES = 1_000_000    # the exercise's budget: 1 MB for the memory layer
CAPACITIES = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 800, 1000, 1200, 1500, 2000, 3000)
TTLS = (0, 30, 60, 120, 300, 600, 900, 1800, 3600)   # the search's grid; any TTL may be chosen
MAX_TTL_S = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """A memory layer's configuration: ``capacity`` entries (least recently used beyond), and
    per content type the seconds an answer stays (0: the type is not kept in memory)."""

    capacity: int
    ttl_s: Mapping[str, float]

    def describe(self) -> str:
        return (f"{self.capacity} entries; TTL " +
                ", ".join(f"{t} {self.ttl_s[t]:g} s" for t in TYPES))


def plan_of(plan: Any) -> MemoryPlan:
    """``plan`` checked: a ``MemoryPlan``, or ``{"capacity": entries, "ttl_s": {type: seconds}}``
    naming every content type; anything else raises ``ConfigError`` saying what is wrong."""
    if isinstance(plan, MemoryPlan):
        capacity, ttls = plan.capacity, plan.ttl_s
    elif isinstance(plan, Mapping):
        extra = sorted(set(plan) - {"capacity", "ttl_s"})
        if extra or "capacity" not in plan or "ttl_s" not in plan:
            raise ConfigError(f"a plan is a dict with two keys, 'capacity' and 'ttl_s'; got the keys "
                              f"{sorted(plan)!r}")
        capacity, ttls = plan["capacity"], plan["ttl_s"]
    else:
        raise ConfigError(f"a plan is a dict {{'capacity': entries, 'ttl_s': {{type: seconds}}}}, "
                          f"got {type(plan).__name__} {plan!r}")
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ConfigError(f"the capacity is a whole number of entries, at least 1; got {capacity!r}")
    if not isinstance(ttls, Mapping):
        raise ConfigError(f"ttl_s maps each content type to seconds, got {type(ttls).__name__}")
    unknown = sorted(set(ttls) - set(TYPES))
    if unknown:
        raise ConfigError(f"ttl_s names {unknown!r}; the content types are {', '.join(TYPES)}")
    missing = [t for t in TYPES if t not in ttls]
    if missing:
        raise ConfigError(f"ttl_s gives no TTL for {', '.join(missing)}: name every content type "
                          f"({', '.join(TYPES)}); 0 keeps a type out of memory")
    for t in TYPES:
        v = ttls[t]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= MAX_TTL_S:
            raise ConfigError(f"the TTL of {t} must be seconds from 0 to {MAX_TTL_S:g}, got {v!r}")
    return MemoryPlan(capacity, {t: float(ttls[t]) for t in TYPES})


@dataclass(frozen=True, slots=True)
class PlanOutcome:
    """What a plan reached on a replay: hits, and the most bytes the layer held at once."""

    plan: MemoryPlan
    requests: int
    hits: int
    peak_bytes: int
    budget_bytes: int
    hits_by_type: Mapping[str, int] = field(default_factory=dict)
    peak_by_type: Mapping[str, int] = field(default_factory=dict)   # each type's bytes at the peak

    @property
    def hit_rate(self) -> float:
        return self.hits / self.requests if self.requests else 0.0

    @property
    def fits(self) -> bool:
        """Did the layer stay within the budget the whole time?"""
        return self.peak_bytes <= self.budget_bytes


@dataclass(frozen=True, slots=True)
class MemoryReplay:
    """A workload as the memory layer sees it: each request's arrival, type, key and entry size."""

    times: tuple[float, ...]
    types: tuple[str, ...]
    keys: tuple[str, ...]
    sizes: tuple[int, ...]             # bytes the entry of each request's answer takes
    budget_bytes: int = MEMORY_BUDGET_BYTES
    _searched: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    @classmethod
    def of(cls, requests: Sequence[Any], *, seed: int = 0,
           budget_bytes: int = MEMORY_BUDGET_BYTES) -> "MemoryReplay":
        """Ask the simulated providers (``seed``, no faults) once per distinct request, on the
        cache lessons' models (``CACHE_MODELS``), for the size of each answer's entry."""
        if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int) or budget_bytes < 1:
            raise ConfigError(f"budget_bytes must be a positive integer, got {budget_bytes!r}")
        providers = Providers(seed=seed)
        size_of: dict[str, int] = {}
        times, types, keys, sizes = [], [], [], []
        for r in requests:
            call = Call(CACHE_MODELS[r.type], r.prompt, max_tokens=r.max_tokens)
            key = cache_key(call, tenant="contentflow")
            if key not in size_of:   # what MemoryLayer counts: the encoded answer and its key
                size_of[key] = len(encode_result(providers.send(call))) + len(key)
            times.append(float(r.t))
            types.append(r.type)
            keys.append(key)
            sizes.append(size_of[key])
        return cls(tuple(times), tuple(types), tuple(keys), tuple(sizes), budget_bytes)

    @property
    def requests(self) -> int:
        return len(self.keys)

    def outcome(self, plan: Any) -> PlanOutcome:
        """Replay the workload through a memory layer configured by ``plan``.

        A request is a hit when its key is held and not expired (a read does not extend the
        TTL, as in ``MemoryLayer`` and Redis). A miss stores the answer when its type's TTL is
        above 0: expired entries leave first, then the least recently used until the entry fits
        the capacity. ``peak_bytes`` is the most the layer held at once.
        """
        plan = plan_of(plan)
        ttl, capacity = plan.ttl_s, plan.capacity
        held: OrderedDict[str, tuple[float, str, int]] = OrderedDict()   # key -> expiry, type, bytes
        expiries: list[tuple[float, str]] = []     # a heap; stale items are skipped
        live = dict.fromkeys(TYPES, 0)
        hits = dict.fromkeys(TYPES, 0)
        total = peak = 0
        at_peak = dict(live)
        for t, kind, key, size in zip(self.times, self.types, self.keys, self.sizes):
            entry = held.get(key)
            if entry is not None and t < entry[0]:
                held.move_to_end(key)
                hits[kind] += 1
                continue
            if ttl[kind] <= 0:
                continue
            while expiries and expiries[0][0] <= t:
                when, old = heapq.heappop(expiries)
                gone = held.get(old)
                if gone is not None and gone[0] == when:
                    del held[old]
                    live[gone[1]] -= gone[2]
                    total -= gone[2]
            while len(held) >= capacity:
                _, gone = held.popitem(last=False)
                live[gone[1]] -= gone[2]
                total -= gone[2]
            when = t + ttl[kind]
            held[key] = (when, kind, size)
            heapq.heappush(expiries, (when, key))
            live[kind] += size
            total += size
            if total > peak:
                peak, at_peak = total, dict(live)
        return PlanOutcome(plan, self.requests, sum(hits.values()), peak, self.budget_bytes,
                           hits, at_peak)

    def hit_rate_if_fits(self, plan: Any) -> float | None:
        """The plan's hit rate, or None when it held more than the budget (the grader's outcome)."""
        got = self.outcome(plan)
        return round(got.hit_rate, 9) if got.fits else None

    def ceiling(self) -> float:
        """The hit rate no plan beats: every distinct request misses once."""
        return 1 - len(set(self.keys)) / self.requests if self.requests else 0.0

    def belady(self, capacity: int) -> float:
        """Belady's optimum at ``capacity`` entries (no TTL, sizes ignored): no eviction policy
        holding that many entries does better."""
        return belady_hit_rate(list(self.keys), capacity)

    def type_table(self) -> list[dict[str, Any]]:
        """Per content type: requests, distinct answers, the size of an entry, and how soon a
        request comes back (median seconds between two requests for the same answer)."""
        rows = []
        for kind in TYPES:
            idx = [i for i, k in enumerate(self.types) if k == kind]
            if not idx:
                continue
            last: dict[str, float] = {}
            gaps = []
            for i in idx:
                if self.keys[i] in last:
                    gaps.append(self.times[i] - last[self.keys[i]])
                last[self.keys[i]] = self.times[i]
            distinct = {self.keys[i]: self.sizes[i] for i in idx}
            rows.append({"type": kind, "requests": len(idx), "distinct answers": len(distinct),
                         "repeats": len(idx) - len(distinct),
                         "entry bytes (mean)": round(statistics.fmean(distinct.values())),
                         "all its answers, KB": round(sum(distinct.values()) / 1000, 1),
                         "median s to a repeat": round(statistics.median(gaps)) if gaps else None})
        return rows

    def best_plan(self) -> PlanOutcome:
        """The best known plan: a search over TTLs (``TTLS``, per type) and capacities.

        Coordinate ascent on the TTLs from two starts (every type kept an hour; the same without
        photos), each set of TTLs with the largest capacity of ``CAPACITIES`` that fits the
        budget; then the capacity of the best is raised one entry at a time, by bisection, as
        far as it fits. A plan off the grid can do a little better: it is the best *known*.
        The search runs once per replay.
        """
        if "best" not in self._searched:
            self._searched["best"] = _best_plan(self)
        return self._searched["best"]

    def _fitted(self, ttls: tuple[float, ...], seen: dict) -> PlanOutcome | None:
        """The best outcome with these TTLs on the capacity grid (None: nothing fits)."""
        if ttls not in seen:
            best, lo, hi = None, 0, len(CAPACITIES) - 1
            while lo <= hi:                   # bisection: more entries hold more bytes
                mid = (lo + hi) // 2
                got = self.outcome(MemoryPlan(CAPACITIES[mid], dict(zip(TYPES, ttls))))
                if got.fits:
                    best, lo = (got if best is None or got.hits > best.hits else best), mid + 1
                else:
                    hi = mid - 1
            seen[ttls] = best
        return seen[ttls]


def _best_plan(replay: MemoryReplay) -> PlanOutcome:
    seen: dict = {}
    top = max(TTLS)
    best: PlanOutcome | None = None
    for start in (dict.fromkeys(TYPES, top), {**dict.fromkeys(TYPES, top), "photo": 0}):
        ttls = tuple(start[t] for t in TYPES)
        current = replay._fitted(ttls, seen)
        improved = True
        while improved:
            improved = False
            for i in range(len(TYPES)):
                for value in TTLS:
                    trial = ttls[:i] + (value,) + ttls[i + 1:]
                    got = replay._fitted(trial, seen)
                    if got is not None and (current is None or got.hits > current.hits):
                        ttls, current, improved = trial, got, True
        if current is not None and (best is None or current.hits > best.hits):
            best = current
    if best is None:
        raise ConfigError(f"no plan of the search's grid fits {replay.budget_bytes} bytes")
    lo, hi = best.plan.capacity + 1, 2 * best.plan.capacity   # then one entry at a time
    while lo <= hi:
        mid = (lo + hi) // 2
        got = replay.outcome(MemoryPlan(mid, dict(best.plan.ttl_s)))
        if got.fits:
            best = got if got.hits >= best.hits else best
            lo = mid + 1
        else:
            hi = mid - 1
    return best


def memory_variant(seed: int, *, n: int = 5000, duration_s: float = 3600.0) -> list[Request]:
    """Another hour of ContentFlow traffic: ``n`` requests generated on ``seed``."""
    return generate(n, seed=seed, duration_s=duration_s)
