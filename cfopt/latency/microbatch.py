"""A micro-batcher: gather single requests for a moment, handle them as one batch.

Each caller awaits ``submit(item)`` and gets back its own result or its own error, while the
handler sees a list. A batch goes when it holds ``max_batch_size`` items or when its first item
has waited ``max_wait_s`` seconds (on the clock), whichever comes first: the two knobs trade
latency (the wait) for throughput (fewer, fuller calls).

>>> clock = VirtualClock()
>>> async def double(items):
...     await clock.asleep(1.0)          # one call, whatever the batch size
...     return [2 * x for x in items]
>>> async def main():
...     mb = MicroBatcher(double, max_batch_size=3, max_wait_s=0.5, clock=clock)
...     return await asyncio.gather(*(mb.submit(i) for i in range(5))), mb.stats
>>> results, stats = clock.run(main())
>>> results, stats.batches, stats.sizes
([0, 2, 4, 6, 8], 2, [3, 2])
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Generic, Sequence, TypeVar

from ..clock import Clock, VirtualClock
from ..errors import ConfigError

__all__ = ["MicroBatcher", "MicroBatchStats"]

T = TypeVar("T")
R = TypeVar("R")

# The handler returns one entry per item, in order: a result, or an exception for that item.
Handler = Callable[[list[T]], Awaitable[Sequence["R | BaseException"]]]


@dataclass
class MicroBatchStats:
    """Batches sent, their sizes and why each went (full or timed out)."""

    items: int = 0
    batches: int = 0
    full: int = 0               # sent because max_batch_size was reached
    timed_out: int = 0          # sent because max_wait_s passed
    sizes: list[int] = field(default_factory=list)
    waits_s: list[float] = field(default_factory=list)   # each item's wait before its batch went

    @property
    def mean_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0


class MicroBatcher(Generic[T, R]):
    """Collect ``submit``-ed items into batches for ``handler``; every caller gets its own answer."""

    def __init__(self, handler: Handler, *, max_batch_size: int = 25, max_wait_s: float = 0.05,
                 clock: Clock | None = None) -> None:
        if max_batch_size < 1 or max_wait_s < 0:
            raise ConfigError("max_batch_size must be >= 1 and max_wait_s >= 0")
        self.handler = handler
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.clock: Clock = clock if clock is not None else VirtualClock()
        self.stats = MicroBatchStats()
        self._items: list[tuple[T, float, asyncio.Future]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task] = set()

    def __repr__(self) -> str:
        return (f"MicroBatcher(max_batch_size={self.max_batch_size}, "
                f"max_wait_s={self.max_wait_s}, waiting={len(self._items)})")

    async def submit(self, item: T) -> R:
        """Queue ``item`` and wait for its own result (or raise its own error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self._items.append((item, self.clock.now(), future))
        self.stats.items += 1
        if len(self._items) >= self.max_batch_size:
            self._flush(full=True)
        elif self._timer is None:
            # loop.call_later runs on the loop's time: virtual inside VirtualClock.run
            self._timer = loop.call_later(self.max_wait_s, self._flush, False)
        return await future

    async def flush(self) -> None:
        """Send whatever waits now and wait for every batch in flight."""
        if self._items:
            self._flush(full=False)
        while self._running:
            await asyncio.gather(*tuple(self._running), return_exceptions=True)

    def _flush(self, full: bool) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._items = self._items[:self.max_batch_size], self._items[self.max_batch_size:]
        if not batch:
            return
        now = self.clock.now()
        self.stats.batches += 1
        self.stats.full += full
        self.stats.timed_out += not full
        self.stats.sizes.append(len(batch))
        self.stats.waits_s.extend(now - t for _, t, _ in batch)
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        if self._items:  # leftovers start a window of their own
            self._timer = asyncio.get_running_loop().call_later(self.max_wait_s, self._flush, False)

    async def _run(self, batch: list[tuple[T, float, asyncio.Future]]) -> None:
        try:
            outcomes = list(await self.handler([item for item, _, _ in batch]))
            if len(outcomes) != len(batch):
                raise ValueError(f"handler returned {len(outcomes)} results for {len(batch)} items")
        except Exception as error:  # the whole batch failed: each caller gets the error
            outcomes = [error] * len(batch)
        for (_, _, future), outcome in zip(batch, outcomes):
            if future.done():       # its caller was cancelled meanwhile
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
