"""One clock for everything that waits or expires.

Caches, rate limits, simulated latency and batch windows all read time from a clock they are
given, never from ``time`` directly. Two clocks share one small interface:

- ``VirtualClock``: time moves only when something sleeps. An hour of simulated traffic replays
  in seconds, and the same seed gives the same numbers on any machine.
- ``RealClock``: wall time, optionally sped up (``time_scale=60`` runs a minute per second),
  for the live server and real providers.

Asyncio code runs on virtual time through ``VirtualClock.run(coro)``: its event loop reads the
virtual clock, and when every task is waiting it jumps straight to the next timer instead of
blocking, so ``asyncio.sleep``, ``asyncio.wait_for`` and timeouts all run on virtual time. The
jump is one step however far the timer is: idle time costs no work per simulated second (or
per simulated day, asyncio's own cap on one wait).

>>> clock = VirtualClock()
>>> clock.sleep(1.5); clock.now()
1.5
>>> async def two_waits():
...     await asyncio.gather(clock.asleep(10), clock.asleep(20))
...     return clock.now()
>>> clock.run(two_waits())   # concurrent waits overlap: 1.5 + 20
21.5
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import math
import selectors
import time
from typing import Any, Coroutine, Protocol, TypeVar, runtime_checkable

from .errors import ConfigError

__all__ = ["Clock", "VirtualClock", "RealClock", "VirtualEventLoop"]

T = TypeVar("T")


@runtime_checkable
class Clock(Protocol):
    """What cfopt needs from a clock: the time, and a way to wait."""

    def now(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...
    async def asleep(self, seconds: float) -> None: ...


class VirtualClock:
    """Simulated time in seconds, starting at ``start``; it moves only when told to."""

    __slots__ = ("_now", "_loop")

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._loop: VirtualEventLoop | None = None

    def __repr__(self) -> str:
        return f"VirtualClock(now={self._now:.3f})"

    def now(self) -> float:
        return self._now

    __call__ = now  # so the clock itself can be a cachetools ``timer``

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        if seconds < 0:
            raise ConfigError(f"cannot move a clock backwards by {seconds} s")
        self._now += seconds

    def advance_to(self, t: float) -> None:
        """Move time forward to ``t``; a time already past is left alone."""
        if t > self._now:
            self._now = float(t)

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        """Wait ``seconds`` of virtual time.

        On this clock's own loop (inside ``run``) other tasks go on meanwhile; on any other
        event loop the wait is sequential: time jumps and control yields once.
        """
        if asyncio.get_running_loop() is self._loop:
            await asyncio.sleep(max(0.0, seconds))
        else:
            self.sleep(seconds)
            await asyncio.sleep(0)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion on an event loop that lives on this clock's time.

        Works in a notebook too: when this thread already runs an event loop, the virtual one
        runs in a helper thread and this call waits for it.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._run_here(coro)
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="cfopt-virtual") as ex:
            return ex.submit(self._run_here, coro).result()

    def _run_here(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is not None:
            raise ConfigError("this VirtualClock is already running a loop; one run at a time")
        loop = VirtualEventLoop(self)
        self._loop = loop
        try:
            return loop.run_until_complete(coro)
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                self._loop = None
                loop.close()


class RealClock:
    """Wall-clock time in seconds since creation, sped up by ``time_scale``."""

    __slots__ = ("time_scale", "_t0")

    def __init__(self, time_scale: float = 1.0) -> None:
        if not time_scale > 0:
            raise ConfigError(f"time_scale must be positive, got {time_scale}")
        self.time_scale = float(time_scale)
        self._t0 = time.monotonic()

    def __repr__(self) -> str:
        return f"RealClock(time_scale={self.time_scale:g})"

    def now(self) -> float:
        return (time.monotonic() - self._t0) * self.time_scale

    __call__ = now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.time_scale)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.time_scale)


class _VirtualSelector(selectors.DefaultSelector):
    """A selector that, instead of blocking until the next timer, moves the clock there."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock
        self.loop: VirtualEventLoop | None = None

    def select(self, timeout: float | None = None):
        ready = super().select(0)
        if ready or timeout is not None and timeout <= 0:
            return ready
        if timeout is None:  # no timer pending: only real I/O (another thread) can wake us
            return super().select(None)
        # asyncio caps one wait at a day (MAXIMUM_SELECT_TIMEOUT): go to the timer itself, so a
        # timer a year (or 1e300 s) away costs one step, not one per simulated day.
        scheduled = self.loop._scheduled if self.loop is not None else None  # asyncio's timer heap
        target = scheduled[0].when() if scheduled else self._clock.now() + timeout
        self._clock.advance_to(max(target, self._clock.now() + timeout))
        return []


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose time is a ``VirtualClock``: idle waits cost no real time.

    Meant for simulations. Real network I/O on this loop would see time jump while it waits.
    """

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        selector = _VirtualSelector(clock)
        super().__init__(selector=selector)
        selector.loop = self

    def time(self) -> float:
        return self.clock.now()

    # asyncio runs the timers due before ``time() + _clock_resolution``. Far from zero a
    # nanosecond is below a float's step (past ~1e7 s), and a timer due exactly now would never
    # be run: the loop would spin. So the resolution follows the clock's magnitude.
    @property
    def _clock_resolution(self) -> float:
        return max(1e-9, 2 * math.ulp(self.clock.now()))

    @_clock_resolution.setter
    def _clock_resolution(self, value: float) -> None:  # asyncio's __init__ sets the wall clock's
        pass
