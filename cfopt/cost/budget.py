"""What was spent, on what, by whom; budgets that concurrent calls cannot overrun; cost alerts.

A call *reserves* its worst-case cost before it is sent (its input tokens plus ``max_tokens`` at
the output price) and *settles* the actual cost from the provider's usage afterwards. A
reservation that would take the daily or monthly budget past its cap is refused, so however
many calls run at once, settled spend never exceeds the cap. The counters live in a
``BudgetStore``: ``MemoryStore`` for one process, ``RedisStore`` (one Lua script per reservation,
atomic across processes) for several.

Alerts go out as ``Event(kind="alert")`` on the tracker's bus when committed money (spent plus
still reserved) reaches 50%, 80% and 100% of a budget, or at 100% when the budget cannot take
the next call; each once per period
(a day or a calendar month of the injected clock, counted from ``BudgetConfig.start_date``).
At 100% the policy refuses (``BudgetExceeded`` naming the budget) or downgrades the call to the
cheapest model that still meets its quality need (the ``fallbacks`` the caller passes).

>>> from cfopt.providers.base import Call
>>> tracker = UsageTracker(config=BudgetConfig(daily_usd=0.015, monthly_usd=1.0))
>>> r = tracker.reserve(Call("opus", "Write a haiku about rain.", max_tokens=500))
>>> round(r.amount_usd, 6)       # 7 prompt + 16 overhead tokens at $4/M, 500 output at $20/M
0.010092
>>> tracker.reserve(Call("opus", "And another one.", max_tokens=500))
Traceback (most recent call last):
...
cfopt.errors.BudgetExceeded: daily budget of $0.01 exceeded: $0.0101 spent or reserved, this call needs up to $0.0101

Budgets fail closed: when the store cannot take a reservation (Redis unreachable, its pool
saturated, its counters reset) ``reserve`` raises ``BudgetStoreError`` and no call is sent.
A settlement the store cannot take is kept (``UsageStats.unsettled``) and sent again before the
next reservation; the hold stays meanwhile, and its lease (``BudgetConfig.lease_s``) bounds how
long it can outlive a process that died.
"""
from __future__ import annotations

import datetime as dt
import itertools
import math
import threading
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .budget_redis import RedisStore
from .budget_store import DEFAULT_LEASE_S, BudgetStore, MemoryStore
from ..clock import Clock, VirtualClock
from ..errors import BudgetExceeded, BudgetStoreError, ConfigError
from ..events import Event, EventBus
from ..pricing import PriceCatalog, Usage, clip_usage, load_catalog, megapixels
from ..providers.base import DEFAULT_MAX_TOKENS, Call, Provider, Result
from ..tokens import count_tokens

__all__ = ["BudgetConfig", "UsageStats", "Reservation", "BudgetStore", "MemoryStore",
           "RedisStore", "UsageTracker"]

NANO = 1_000_000_000  # counters hold integer nano-dollars: exact sums, no float drift
_POLICIES = ("refuse", "downgrade")


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """Budget caps in USD, alert thresholds, the policy at 100%, and the calendar."""

    daily_usd: float = 50.0
    monthly_usd: float = 1000.0
    thresholds: tuple[float, ...] = (0.5, 0.8, 1.0)
    on_exhausted: str = "refuse"           # or "downgrade"
    start_date: str = "2026-11-01"         # the calendar day at clock time 0
    input_overhead_tokens: int = 16        # role markers a provider bills on top of the text
    lease_s: float = DEFAULT_LEASE_S       # a hold never settled is freed after this long
    batch_lease_s: float = 25 * 3600.0     # batch calls may take 24 h to end (real API)

    def __post_init__(self) -> None:
        if not self.daily_usd > 0 or not self.monthly_usd > 0:
            raise ConfigError(f"budgets must be positive, got daily {self.daily_usd}, monthly {self.monthly_usd}")
        if not self.thresholds or any(not 0 < t <= 1 for t in self.thresholds):
            raise ConfigError(f"alert thresholds must lie in (0, 1], got {self.thresholds}")
        if self.on_exhausted not in _POLICIES:
            raise ConfigError(f"on_exhausted must be one of {_POLICIES}, got {self.on_exhausted!r}")
        try:
            dt.date.fromisoformat(self.start_date)
        except (TypeError, ValueError):
            raise ConfigError(f"start_date must be an ISO date, got {self.start_date!r}") from None
        for name in ("lease_s", "batch_lease_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")

    @classmethod
    def from_catalog(cls, catalog: PriceCatalog, **overrides) -> "BudgetConfig":
        """The catalog's budgets (daily 50, monthly 1,000 by default)."""
        return cls(catalog.budgets.daily_usd, catalog.budgets.monthly_usd, **overrides)

    def periods(self, now: float) -> dict[str, str]:
        """The period each budget is in at clock time ``now``: {"daily": day, "monthly": month}."""
        day = dt.date.fromisoformat(self.start_date) + dt.timedelta(days=int(now // 86400))
        return {"daily": day.isoformat(), "monthly": day.isoformat()[:7]}

    def limit(self, budget: str) -> float:
        return self.daily_usd if budget == "daily" else self.monthly_usd


@dataclass
class UsageStats:
    """Counts and money so far, for dashboards and checks."""

    calls: int = 0            # settled calls with a result (cache hits included)
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0         # reservations released because the call failed
    refused: int = 0          # BudgetExceeded raised
    downgraded: int = 0       # calls moved to a cheaper adequate model at 100%
    overruns: int = 0         # settled above the reservation: the worst case was wrong
    store_errors: int = 0     # reservations refused because the store failed (fail closed)
    settle_errors: int = 0    # settlements the store could not take at first (sent again later)
    unsettled: int = 0        # settlements still waiting for the store right now
    spend_usd: float = 0.0
    reserved_usd: float = 0.0  # held right now by calls in flight


@dataclass(frozen=True, slots=True)
class Reservation:
    """Money held for one call in flight; ``call.model`` is the model to send it to."""

    id: int
    call: Call
    amount_usd: float
    periods: dict[str, str] = field(repr=False)
    user: str | None = None
    downgraded_from: str | None = None
    lease: str = field(default="", repr=False)   # the store's id of this hold


def _nano(usd: float, *, up: bool = False) -> int:
    x = usd * NANO
    return int(-(-x // 1)) if up else int(round(x))


class UsageTracker:
    """Spend by provider, model, user and day; budget reservations; alerts on the bus."""

    def __init__(self, catalog: PriceCatalog | None = None, *, clock: Clock | None = None,
                 config: BudgetConfig | None = None, bus: EventBus | None = None,
                 store: BudgetStore | None = None) -> None:
        self.catalog = catalog if catalog is not None else load_catalog()
        self.clock = clock if clock is not None else VirtualClock()
        self.config = config if config is not None else BudgetConfig.from_catalog(self.catalog)
        self.bus = bus if bus is not None else EventBus()
        self.store = store if store is not None else MemoryStore()
        self.stats = UsageStats()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._owed: deque[tuple[str | None, list[str], list[str], int]] = deque()
        self._by: dict[str, dict[str, float]] = {d: defaultdict(float) for d in
                                                 ("provider", "model", "user", "day")}

    def __repr__(self) -> str:
        return f"UsageTracker(config={self.config!r}, store={self.store!r})"

    # -- money before a call ------------------------------------------------------------------
    def worst_case_usd(self, call: Call, *, copies: int = 1) -> float:
        """The most ``call`` can cost: every input token and ``max_tokens`` of output.

        ``copies``: the call goes as that many tied copies (``cfopt.latency.tie``); each copy
        but one may be closed early and is billed its input.
        """
        info = self.catalog.model(call.model)
        if info.kind == "text":
            system = count_tokens(call.system) if call.system else 0
            cached = {"5m": "cache_creation_input_tokens", "1h": "cache_creation_1h_input_tokens"}
            total = count_tokens(call.prompt) + self.config.input_overhead_tokens + system
            # The worst case writes the whole cached prefix (a write costs more than a read).
            ttl = call.cache_system or call.cache_ttl
            prefix = (system if call.cache_system else
                      min(total, count_tokens(call.cache_prefix)) if call.cache_prefix else 0)
            usage = Usage(input_tokens=total - prefix,
                          output_tokens=call.max_tokens or DEFAULT_MAX_TOKENS,
                          service_tier="batch" if call.batch else "standard",
                          **({cached[ttl]: prefix} if ttl else {}))
        elif info.kind == "image":
            usage = Usage(images=1, megapixels=megapixels(call.width, call.height))
        elif info.kind == "video":
            usage = clip_usage(info, call.duration_s, call.resolution)
        elif info.kind == "audio":
            usage = Usage(audio_minutes=call.minutes)
        else:
            usage = Usage(requests=1, billable_requests=1)
        extra = (copies - 1) * self.catalog.cost(info.id, replace(usage, output_tokens=0)) \
            if info.kind == "text" and copies > 1 else 0.0
        return self.catalog.cost(info.id, usage) + extra

    def reserve(self, call: Call, *, user: str | None = None,
                fallbacks: Sequence[str] = (), copies: int = 1) -> Reservation:
        """Hold the worst-case cost of ``call``; refuse or downgrade when a budget cannot.

        ``copies``: how many tied copies the call goes as (held for each fallback too).

        Raises ``BudgetExceeded`` at the cap and ``BudgetStoreError`` when the store cannot
        answer: either way nothing is held and the call must not be sent.
        """
        periods = self.config.periods(self.clock.now())
        amount = self.worst_case_usd(call, copies=copies)
        lease_s = self.config.batch_lease_s if call.batch else self.config.lease_s
        self._guarded(self.flush, strict=True)  # settlements owed go first: they free money
        failed, lease = self._try(periods, amount, lease_s)
        if failed is None:
            reservation = self._held(call, amount, periods, user, lease)
            self._check_alerts(periods)
            return reservation
        if self.config.on_exhausted == "downgrade":
            for model in fallbacks:
                cheaper = replace(call, model=model)
                cost = self.worst_case_usd(cheaper, copies=copies)
                if cost >= amount:
                    continue
                failed_too, lease = self._try(periods, cost, lease_s)
                if failed_too is None:
                    with self._lock:
                        self.stats.downgraded += 1
                    self._exhausted(failed, periods, amount)
                    return self._held(cheaper, cost, periods, user, lease, downgraded_from=call.model)
        with self._lock:
            self.stats.refused += 1
        held = self._guarded(lambda: self.store.get(f"held:{failed}:{periods[failed]}"), strict=False)
        spent = held / NANO if held is not None else self.config.limit(failed)
        self._exhausted(failed, periods, amount)
        raise BudgetExceeded(failed, self.config.limit(failed), spent, amount)

    def _try(self, periods: dict[str, str], amount: float, lease_s: float) -> tuple[str | None, str]:
        keys = [f"held:{b}:{p}" for b, p in periods.items()]
        limits = [_nano(self.config.limit(b)) for b in periods]
        i, lease = self._guarded(lambda: self.store.try_reserve(
            keys, limits, _nano(amount, up=True), lease_s=lease_s), strict=True)
        return (None, lease) if i < 0 else (list(periods)[i], "")

    def _guarded(self, op, *, strict: bool):
        """Run a store operation; count a failure, re-raise it when ``strict``, else None."""
        try:
            return op()
        except BudgetStoreError:
            if strict:
                with self._lock:
                    self.stats.store_errors += 1
                raise
            return None

    def _held(self, call: Call, amount: float, periods: dict[str, str], user: str | None,
              lease: str, downgraded_from: str | None = None) -> Reservation:
        with self._lock:
            self.stats.reserved_usd += amount
        return Reservation(next(self._ids), call, amount, periods, user, downgraded_from, lease)

    # -- money after a call -------------------------------------------------------------------
    def settle(self, reservation: Reservation, result: Result | None = None, *,
               retry: bool = False) -> float:
        """Replace the hold with the actual cost of ``result`` (None: the call failed, free).

        Never raises for the store: a settlement it cannot take now is sent again later.
        """
        return self._settle(reservation, result, retry=retry, failed=result is None)

    def release(self, reservation: Reservation) -> None:
        """Free the hold of a call that was never made (another call answered for it): nothing
        spent, and no failure counted."""
        self._settle(reservation, None, retry=False, failed=False)

    def _settle(self, reservation: Reservation, result: Result | None, *, retry: bool,
                failed: bool) -> float:
        p = reservation.periods
        held = _nano(reservation.amount_usd, up=True)
        cost = 0.0 if result is None else self.catalog.cost(result.model, result.usage)
        actual = _nano(cost)
        self._send((reservation.lease or None, [f"held:{b}:{p[b]}" for b in p],
                    [f"spent:{b}:{p[b]}" for b in p], actual))
        with self._lock:
            self.stats.reserved_usd -= reservation.amount_usd
            self.stats.overruns += actual > held
            self.stats.failures += failed
        if result is not None:
            self._account(result, cost, reservation.user, p["daily"], retry=retry)
        self._check_alerts(p)
        return cost

    def record(self, result: Result, *, user: str | None = None, cache_hit: bool = False,
               retry: bool = False) -> float:
        """Count a result that needed no reservation (a cache hit costs 0); return its cost."""
        cost = 0.0 if cache_hit else self.catalog.cost(result.model, result.usage)
        p = self.config.periods(self.clock.now())
        if cost:
            self._send((None, [f"held:{b}:{p[b]}" for b in p], [f"spent:{b}:{p[b]}" for b in p],
                        _nano(cost)))
        self._account(result, cost, user, p["daily"], cache_hit=cache_hit, retry=retry)
        self._check_alerts(p)
        return cost

    def _send(self, settlement: tuple[str | None, list[str], list[str], int]) -> None:
        """Settle in the store now, or keep the settlement for ``flush`` if the store fails."""
        self._guarded(self.flush, strict=False)
        try:
            self.store.settle(*settlement)
        except BudgetStoreError:
            with self._lock:
                self._owed.append(settlement)
                self.stats.settle_errors += 1
                self.stats.unsettled = len(self._owed)

    def flush(self) -> int:
        """Send the settlements the store could not take before; return how many are left.

        Raises ``BudgetStoreError`` (keeping the rest) when the store still cannot take them.
        Settling twice counts once, so a settlement whose reply was lost is safe to resend.
        """
        while True:
            with self._lock:
                if not self._owed:
                    self.stats.unsettled = 0
                    return 0
                settlement = self._owed.popleft()   # one sender at a time per settlement
            try:
                self.store.settle(*settlement)
            except BudgetStoreError:
                with self._lock:
                    self._owed.appendleft(settlement)
                    self.stats.unsettled = len(self._owed)
                raise

    def _account(self, result: Result, cost: float, user: str | None, day: str, *,
                 cache_hit: bool = False, retry: bool = False) -> None:
        with self._lock:
            s = self.stats
            s.calls += 1
            s.cache_hits += cache_hit
            s.retries += retry
            s.spend_usd += cost
            for dim, key in (("provider", result.provider), ("model", result.model),
                             ("user", user or "(none)"), ("day", day)):
                self._by[dim][key] += cost

    # -- sending through the budget ---------------------------------------------------------------
    def send(self, provider: Provider, call: Call, *, user: str | None = None,
             fallbacks: Sequence[str] = (), retry: bool = False) -> Result:
        """Reserve, send on ``provider``, settle; a failed call releases its hold and re-raises."""
        res = self.reserve(call, user=user, fallbacks=fallbacks)
        try:
            result = provider.send(res.call)
        except BaseException:
            self.settle(res, None, retry=retry)
            raise
        self.settle(res, result, retry=retry)
        return result

    async def asend(self, provider: Provider, call: Call, *, user: str | None = None,
                    fallbacks: Sequence[str] = (), retry: bool = False) -> Result:
        """The asyncio form of ``send``; reserving never awaits, so it is atomic per task."""
        res = self.reserve(call, user=user, fallbacks=fallbacks)
        try:
            result = await provider.asend(res.call)
        except BaseException:
            self.settle(res, None, retry=retry)
            raise
        self.settle(res, result, retry=retry)
        return result

    # -- reading ----------------------------------------------------------------------------
    def spent(self, budget: str = "daily") -> float:
        """Settled spend in the current period of ``budget`` ("daily" or "monthly")."""
        if budget not in ("daily", "monthly"):
            raise ConfigError(f"budget must be 'daily' or 'monthly', got {budget!r}")
        period = self.config.periods(self.clock.now())[budget]
        return self._guarded(lambda: self.store.get(f"spent:{budget}:{period}"), strict=True) / NANO

    def spend_by(self, dimension: str) -> dict[str, float]:
        """Spend so far by "provider", "model", "user" or "day" (this tracker's calls)."""
        if dimension not in self._by:
            raise ConfigError(f"dimension must be one of {', '.join(self._by)}, got {dimension!r}")
        with self._lock:
            return dict(sorted(self._by[dimension].items()))

    # -- alerts -----------------------------------------------------------------------------
    def _check_alerts(self, periods: dict[str, str]) -> None:
        # Committed money (settled plus still held) crosses thresholds before settled spend
        # does, so the alert comes while there is still time to act, and in order: with many
        # calls in flight, settled spend can lag so far that the budget refuses a call first.
        # Alerts are advice: a store that cannot answer now skips them, never fails the call.
        for budget, period in periods.items():
            held = self._guarded(lambda: self.store.get(f"held:{budget}:{period}"), strict=False)
            if held is None:
                return
            committed = held / NANO
            limit = self.config.limit(budget)
            for t in self.config.thresholds:
                if committed >= t * limit - 1e-12:
                    self._alert(budget, period, t, committed, "spent or reserved reached the threshold")

    def _exhausted(self, budget: str, periods: dict[str, str], amount: float) -> None:
        held = self._guarded(lambda: self.store.get(f"held:{budget}:{periods[budget]}"), strict=False)
        if held is None:
            return
        committed = held / NANO
        how = "downgrading" if self.config.on_exhausted == "downgrade" else "refusing"
        self._alert(budget, periods[budget], 1.0, committed,
                    f"the budget cannot take a call of ${amount:.4f}: {how}")

    def _alert(self, budget: str, period: str, threshold: float, committed: float, why: str) -> None:
        if threshold not in self.config.thresholds:
            return
        if self._guarded(lambda: self.store.first_time(f"alert:{budget}:{period}:{threshold}"),
                         strict=False):
            limit = self.config.limit(budget)
            self.bus.publish(Event(self.clock.now(), "alert", f"{budget} budget {threshold:.0%}",
                                   committed, {"budget": budget, "period": period, "threshold": threshold,
                                           "limit_usd": limit, "committed_usd": committed, "why": why,
                                           "policy": self.config.on_exhausted}))
