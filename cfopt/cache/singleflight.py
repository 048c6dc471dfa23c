"""Single-flight: concurrent identical misses make one provider call; the others wait for it.

When fifty requests for the same uncached prompt arrive together, the first one calls the
provider and the other forty-nine await its answer instead of paying for forty-nine more calls.
An error reaches every waiter and is not remembered: the next request tries again.

>>> import asyncio
>>> calls = []
>>> async def fetch():
...     calls.append(1); await asyncio.sleep(0.01); return "answer"
>>> async def main():
...     flight = SingleFlight()
...     return await asyncio.gather(*(flight.run("k", fetch) for _ in range(5)))
>>> [shared for _, shared in asyncio.run(main())], len(calls)
([False, True, True, True, True], 1)
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

__all__ = ["SingleFlight"]

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Deduplicate concurrent calls by key within one event loop."""

    __slots__ = ("_inflight", "calls", "coalesced")

    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Future[T]] = {}
        self.calls = 0       # calls that ran
        self.coalesced = 0   # calls that waited for another one instead

    def __repr__(self) -> str:
        return f"SingleFlight(in_flight={len(self._inflight)}, calls={self.calls}, coalesced={self.coalesced})"

    def in_flight(self, key: Hashable) -> bool:
        """Say whether a call for ``key`` is running now."""
        return key in self._inflight

    async def run(self, key: Hashable, fn: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Return ``fn()``'s value and whether it was shared from a call already in flight."""
        future = self._inflight.get(key)
        if future is not None:
            self.coalesced += 1
            # shield: one impatient waiter being cancelled must not cancel the shared call
            return await asyncio.shield(future), True
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        self.calls += 1
        try:
            value = await fn()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # mark it retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(value)
            return value, False
        finally:
            del self._inflight[key]
