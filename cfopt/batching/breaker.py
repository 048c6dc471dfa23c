"""A circuit breaker on a clock: stop calling a provider that keeps failing, then probe it.

Closed, calls go through. When the failures of the last ``window_s`` seconds reach
``failure_ratio`` of the calls sent, it opens: calls are turned away at once for ``open_s``
seconds, sparing the provider and the callers' time. Then it is half-open: ``probes`` calls may
go; if they answer it closes, if one fails it opens again. ``cfopt.batching.resilience`` keeps one
breaker per provider.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ..clock import Clock, VirtualClock
from ..errors import ConfigError

__all__ = ["BreakerConfig", "CircuitBreaker"]


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """When a provider's breaker opens, and for how long."""

    window_s: float = 10.0      # failures are weighed against the calls sent in this window
    min_calls: int = 20         # no verdict on fewer calls sent than this
    failure_ratio: float = 0.5  # opens when failures reach this share of the calls sent
    open_s: float = 30.0        # stays open this long, then lets probes through (half-open)
    probes: int = 1             # successful probes in a row that close it again

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.min_calls < 1 or not 0 < self.failure_ratio <= 1:
            raise ConfigError("need window_s > 0, min_calls >= 1 and 0 < failure_ratio <= 1")
        if self.open_s <= 0 or self.probes < 1:
            raise ConfigError("open_s must be positive and probes at least 1")


class CircuitBreaker:
    """A breaker on a clock: closed; open for ``open_s``; then half-open until a probe answers.

    It opens when the failures of the last ``window_s`` seconds reach ``failure_ratio`` of the
    calls *sent* in that time. Counting against calls sent, not calls answered, matters under a
    burst: errors come back faster than answers, so the first 20 outcomes of 2,000 calls in
    flight can all be failures on a provider that fails only 15% of them.

    Only server-side failures count (5xx, 529, timeouts). A 429 is a quota, handled by its
    retry-after; a 4xx is the caller's own fault and says nothing about the provider's health.

    >>> clock = VirtualClock()
    >>> b = CircuitBreaker("fal", BreakerConfig(min_calls=4, open_s=10), clock)
    >>> [b.allow() and b.record(False) for _ in range(4)]     # the fourth call sent opens it
    [False, False, False, True]
    >>> b.state, b.allow(), b.retry_in()
    ('open', False, 10.0)
    >>> clock.advance(10); b.state, b.allow()    # one probe may go through
    ('half-open', True)
    >>> b.record(True), b.state
    (False, 'closed')
    """

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

    def __init__(self, name: str, config: BreakerConfig | None = None,
                 clock: Clock | None = None) -> None:
        self.name = name
        self.config = config if config is not None else BreakerConfig()
        self.clock: Clock = clock if clock is not None else VirtualClock()
        self.opens = 0
        self._sent: deque[float] = deque()     # when each admitted call was sent
        self._failed: deque[float] = deque()   # when each failure came back
        self._opened_at: float | None = None
        self._probing = 0       # probes let through and not yet back
        self._probe_wins = 0

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state!r}, opens={self.opens})"

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return self.CLOSED
        return self.OPEN if self.retry_in() > 0 else self.HALF_OPEN

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.config.open_s - self.clock.now())

    def allow(self) -> bool:
        """Ask to send a call now; half-open admits only ``probes`` calls at a time."""
        state = self.state
        if state == self.CLOSED:
            self._sent.append(self.clock.now())
            return True
        if state == self.HALF_OPEN and self._probing < self.config.probes:
            self._probing += 1
            return True
        return False

    def release(self) -> None:
        """Give back a probe slot whose call ended without news (cancelled, refused locally)."""
        self._probing = max(0, self._probing - 1)

    def record(self, ok: bool) -> bool:
        """Record one outcome; return True when it opened the breaker."""
        state = self.state
        if state == self.HALF_OPEN:
            self._probing = max(0, self._probing - 1)
            if not ok:
                return self._open()
            self._probe_wins += 1
            if self._probe_wins >= self.config.probes:
                self._opened_at, self._probe_wins = None, 0
            return False
        if state == self.OPEN or ok:  # a straggler sent before it opened is no news
            return False
        now = self.clock.now()
        self._failed.append(now)
        for times in (self._sent, self._failed):
            while times and times[0] < now - self.config.window_s:
                times.popleft()
        sent = len(self._sent)
        if sent >= self.config.min_calls and len(self._failed) >= self.config.failure_ratio * sent:
            return self._open()
        return False

    def _open(self) -> bool:
        self._opened_at = self.clock.now()
        self._probing = self._probe_wins = 0
        self._sent.clear()
        self._failed.clear()
        self.opens += 1
        return True
