"""What a running server remembers: its providers and clock, its counters, and planned faults.

``ServerStats`` counts what reached the server (connections, requests per route, statuses, cost)
so a benchmark can ask the server how many connections a client really opened, and a test can
count how often the SDK retried. Requests that got no answer are counted apart, by why: the
client went away, or was too slow to send its head or body; ``internal_errors`` counts the 500s
that are bugs (never a simulated fault). ``FaultPlan`` makes the next few calls fail in a chosen
way, which random fault rates cannot promise (a test needs "the first call fails, the retry
works"). ``Retained`` keeps batches and fal.ai jobs only as long as the real APIs do, and never
more than a cap, so a long-running server's memory stays flat.

>>> plan = FaultPlan()
>>> plan.add(["overloaded"], provider="anthropic")
>>> type(plan.take("anthropic", model="claude-haiku-5-5")).__name__
'Overloaded'
>>> plan.take("anthropic", model="claude-haiku-5-5") is None
True
>>> stats = ServerStats(); stats.count_request("messages", 200, cost_usd=0.002)
>>> stats.snapshot()["requests"], stats.snapshot()["by_route"]
(1, {'messages': 1})
>>> kept = Retained(lambda job: job["done"] + 10, max_items=2, clock=lambda: 12.0)
>>> kept["a"], kept["b"], kept["c"] = {"done": 0}, {"done": 5}, {"done": 6}
>>> list(kept)   # "a" is past its 10 s; with three, the oldest would go anyway
['b', 'c']
"""
from __future__ import annotations

import hashlib
import itertools
import threading
import time
import uuid
from datetime import datetime, timezone
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Iterable, TypeVar

from ..clock import Clock, RealClock
from ..errors import (ConfigError, Overloaded, ProviderError, ProviderTimeout, RateLimited,
                      ServerError)
from ..providers.sampling import short_id
from .config import ServerConfig

if TYPE_CHECKING:
    from ..providers import Providers

__all__ = ["ServerState", "ServerStats", "FaultPlan", "Retained", "FAULT_KINDS", "UNANSWERED",
           "ENDED_BY"]

FAULT_KINDS = ("rate_limited", "overloaded", "server_error", "timeout")
# Planned only (no random rate): a streamed answer that starts, then fails with an ``error`` event
# (Anthropic: "an error event may be sent mid-stream", e.g. overloaded_error); unstreamed, a 529.
STREAM_FAULT_KINDS = ("overloaded_mid_stream",)
# Why a request got no answer of ours: not a status, and never a 500.
UNANSWERED = ("client_disconnect", "header_timeout", "body_timeout")
ENDED_BY = "cfopt.ended_by"   # the scope key that says which, set where it is found out
V = TypeVar("V")


@dataclass
class ServerStats:
    """Counters of one server's life; ``snapshot()`` is what ``GET /_cfopt/stats`` returns."""

    connections_opened: int = 0
    nodelay_connections: int = 0      # of those, how many had TCP_NODELAY set
    requests: int = 0
    by_route: Counter = field(default_factory=Counter)
    by_status: Counter = field(default_factory=Counter)
    unanswered: Counter = field(default_factory=Counter)   # by UNANSWERED reason
    internal_errors: int = 0          # 500s that were bugs, not simulated faults
    cost_usd: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_connection(self, *, nodelay: bool = False) -> None:
        with self._lock:
            self.connections_opened += 1
            self.nodelay_connections += nodelay

    def count_request(self, route: str, status: int, *, cost_usd: float = 0.0) -> None:
        with self._lock:
            self.requests += 1
            self.by_route[route] += 1
            self.by_status[status] += 1
            self.cost_usd += cost_usd

    def count_unanswered(self, reason: str, route: str | None = None) -> None:
        """A request (or a head that never became one) that got no answer, and why."""
        with self._lock:
            self.unanswered[reason] += 1
            if route is not None:
                self.requests += 1
                self.by_route[route] += 1

    def count_internal_error(self) -> None:
        with self._lock:
            self.internal_errors += 1

    def add_cost(self, cost_usd: float) -> None:
        with self._lock:
            self.cost_usd += cost_usd

    def snapshot(self) -> dict[str, Any]:
        """The counters as plain JSON-ready data."""
        with self._lock:
            return {"connections_opened": self.connections_opened,
                    "nodelay_connections": self.nodelay_connections, "requests": self.requests,
                    "by_route": dict(self.by_route),
                    "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
                    "unanswered": {k: self.unanswered[k] for k in UNANSWERED},
                    "internal_errors": self.internal_errors,
                    "cost_usd": round(self.cost_usd, 9)}


class FaultPlan:
    """Failures to serve next, in order, per provider ("anthropic", "fal", "unsplash").

    At most ``max_pending`` failures wait at once; ``retry_after_s`` is at most an hour.
    """

    MAX_RETRY_AFTER_S = 3600.0

    def __init__(self, *, max_pending: int = 1_000) -> None:
        self._queues: dict[str, deque[tuple[str, float]]] = {}
        self._lock = threading.Lock()
        self.max_pending = max_pending

    def __repr__(self) -> str:
        return f"FaultPlan(pending={self.pending()})"

    def add(self, kinds: Iterable[str], *, provider: str = "anthropic",
            retry_after_s: float = 1.0) -> None:
        """Queue one failure per item of ``kinds`` for the next calls to ``provider``."""
        kinds = list(kinds)
        known = FAULT_KINDS + STREAM_FAULT_KINDS
        unknown = [k for k in kinds if not isinstance(k, str) or k not in known]
        if unknown:
            shown = [k if isinstance(k, str) else type(k).__name__ for k in unknown][:5]
            raise ConfigError(f"unknown fault kind(s) {shown}; known: {', '.join(known)}")
        if not 0 <= retry_after_s <= self.MAX_RETRY_AFTER_S:   # NaN fails this too
            raise ConfigError(f"retry_after_s must be 0 to {self.MAX_RETRY_AFTER_S:g} s, got {retry_after_s}")
        with self._lock:
            pending = sum(len(q) for q in self._queues.values())
            if pending + len(kinds) > self.max_pending:
                raise ConfigError(f"at most {self.max_pending:,} planned faults may wait; "
                                  f"{pending:,} do, {len(kinds):,} more asked")
            q = self._queues.setdefault(provider, deque())
            q.extend((k, float(retry_after_s)) for k in kinds)

    def pending(self) -> dict[str, list[str]]:
        with self._lock:
            return {p: [k for k, _ in q] for p, q in self._queues.items() if q}

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()

    def take(self, provider: str, *, model: str) -> ProviderError | None:
        """The next planned failure for ``provider`` as an error to raise, or None."""
        with self._lock:
            q = self._queues.get(provider)
            if not q:
                return None
            kind, retry_after = q.popleft()
        where = dict(provider=provider, model=model)
        if kind == "rate_limited":
            return RateLimited(f"{provider} {model}: rate limited (planned)",
                               retry_after=retry_after, **where)
        if kind == "overloaded":
            return Overloaded(f"{provider} {model}: overloaded (planned)", **where)
        if kind == "overloaded_mid_stream":
            e = Overloaded(f"{provider} {model}: overloaded (planned, mid-stream)", **where)
            e.mid_stream = True   # the stream starts, then fails with an error event
            return e
        if kind == "timeout":
            return ProviderTimeout(f"{provider} {model}: timed out (planned)", **where)
        return ServerError(f"{provider} {model}: internal server error (planned)", **where)


class Retained(MutableMapping[str, V], Generic[V]):
    """Items by id, dropped once ``expires(item)`` has passed on ``clock`` or past a cap.

    Oldest first: at most ``max_items`` (each item weighs ``weight(item)``, e.g. a batch its
    requests), the oldest go when a new one would pass it. An expired item reads as absent.
    """

    def __init__(self, expires: Callable[[V], float], *, max_items: int,
                 clock: Callable[[], float], weight: Callable[[V], int] = lambda item: 1) -> None:
        self.expires, self.max_items, self.clock, self.weight = expires, max_items, clock, weight
        self._items: OrderedDict[str, V] = OrderedDict()
        self._total = 0
        self.dropped = 0   # expired or pushed out so far
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Retained(items={len(self._items)}, weight={self._total}, max_items={self.max_items})"

    def _drop(self, key: str) -> None:
        self._total -= self.weight(self._items.pop(key))
        self.dropped += 1

    def sweep(self) -> None:
        """Drop the expired items at the front (the oldest)."""
        now = self.clock()
        with self._lock:
            while self._items:
                key, item = next(iter(self._items.items()))
                if self.expires(item) > now:
                    break
                self._drop(key)

    def __setitem__(self, key: str, item: V) -> None:
        self.sweep()
        with self._lock:
            if key in self._items:
                self._drop(key)
            self._items[key] = item
            self._total += self.weight(item)
            while self._total > self.max_items and len(self._items) > 1:
                self._drop(next(iter(self._items)))

    def __getitem__(self, key: str) -> V:
        with self._lock:
            item = self._items[key]
            if self.expires(item) <= self.clock():
                self._drop(key)
                raise KeyError(key)
            return item

    def __delitem__(self, key: str) -> None:
        with self._lock:
            self._drop(key)

    def __iter__(self) -> Iterator[str]:
        self.sweep()
        with self._lock:
            return iter(list(self._items))

    def __len__(self) -> int:
        self.sweep()
        return len(self._items)

    def values(self) -> list[V]:  # type: ignore[override]
        """The items kept, oldest first (a list: callers page through it newest first)."""
        self.sweep()
        with self._lock:
            return list(self._items.values())

    @property
    def total(self) -> int:
        """The weight kept right now (batch requests, jobs)."""
        return self._total


class ServerState:
    """One server's providers (on a real, possibly sped-up clock), counters, jobs and batches."""

    def __init__(self, config: ServerConfig | None = None, *, providers: "Providers | None" = None,
                 clock: Clock | None = None) -> None:
        self.config = config if config is not None else ServerConfig()
        self.clock: Clock = clock if clock is not None else RealClock(self.config.time_scale)
        if providers is None:
            from ..providers import Providers  # the bundle of simulated providers
            providers = Providers(seed=self.config.seed, clock=self.clock, profile=self.config.profile,
                                  faults=self.config.faults, rate_tier=self.config.rate_tier,
                                  speeds=self.config.speeds)
        self.providers = providers
        self.stats = ServerStats()
        cfg = self.config
        self.fault_plan = FaultPlan(max_pending=cfg.max_pending_faults)
        # As the real APIs: a batch for a while after its creation, a fal.ai result after its end.
        self.batches: Retained[Any] = Retained(
            lambda b: b.created_at + cfg.batch_retention_s, max_items=cfg.max_retained,
            clock=self.clock.now, weight=lambda b: len(b.items))
        self.fal_jobs: Retained[Any] = Retained(
            lambda j: j.done_at + cfg.fal_retention_s, max_items=cfg.max_retained, clock=self.clock.now)
        self._ids = itertools.count(1)
        self._epoch = time.time() - self.clock.now()  # wall time when the clock read zero

    def __repr__(self) -> str:
        return f"ServerState(config={self.config!r}, clock={self.clock!r})"

    def new_id(self, prefix: str, length: int = 24) -> str:
        """A fresh id such as ``msg_...``: the same seed gives the same ids in the same order."""
        return f"{prefix}{short_id(length, self.config.seed, prefix, next(self._ids))}"

    def new_uuid(self) -> str:
        """A fresh UUID-shaped id (fal.ai's request ids), seeded like ``new_id``."""
        digest = hashlib.blake2b(repr((self.config.seed, "uuid", next(self._ids))).encode(),
                                 digest_size=16).digest()
        return str(uuid.UUID(bytes=digest, version=4))

    def timestamp(self, t: float) -> str:
        """Clock time ``t`` as an RFC 3339 string (sped-up clocks run ahead of the wall)."""
        return datetime.fromtimestamp(self._epoch + t, tz=timezone.utc).isoformat().replace("+00:00", "Z")
