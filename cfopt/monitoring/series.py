"""Time series for the monitor: a growable numpy buffer, percentiles, trends and ``Stats``.

A ``TimeSeries`` keeps ``(t, value)`` points in two numpy arrays. New points go to a short
Python list first (appending to a list is cheaper than writing one numpy element) and are
moved into the arrays in blocks; points older than the retention window are dropped by moving
a start index, and the arrays are compacted only when they would otherwise grow. So tracking a
million points costs about a list append each, and stats over them are numpy operations.

>>> s = TimeSeries(retention_s=60)
>>> for t in range(120):
...     s.append(float(t), 2.0 * t)
>>> st = s.stats(now=119.0, period=None)
>>> st.count, st.min, st.max           # the first 59 s fell out of the 60 s window
(61, 118.0, 238.0)
>>> round(st.trend_per_min, 6)         # 2 per second is 120 per minute
120.0
>>> percentile([1.0, 2.0, 3.0, 4.0], 50)
2.5
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ConfigError

__all__ = ["Stats", "TimeSeries", "percentile", "trend_per_min", "compute_stats"]

_FLUSH_AT = 8192  # pending points moved into the arrays in blocks of this size


@dataclass(slots=True)
class Stats:
    """Summary of one metric over a window; ``count == 0`` means no data (figures are NaN)."""

    min: float
    max: float
    avg: float
    median: float
    p95: float
    p99: float
    trend_per_min: float  # least-squares slope of value against time, per minute
    count: int

    @classmethod
    def empty(cls) -> "Stats":
        """Stats of a window with no points."""
        nan = math.nan
        return cls(nan, nan, nan, nan, nan, nan, nan, 0)


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks, as numpy's default.

    The rank of ``q`` among n sorted values is ``q/100 * (n - 1)``; between two ranks the value
    is interpolated. Only the two neighbours are needed, so ``np.partition`` (linear time)
    replaces a full sort.
    """
    if not 0 <= q <= 100:
        raise ConfigError(f"percentile q must lie in [0, 100], got {q}")
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return math.nan
    return _at_rank(a, q / 100.0 * (a.size - 1))


def _at_rank(a: np.ndarray, rank: float) -> float:
    return _at_ranks(a.copy(), [rank])[0]


def _at_ranks(buf: np.ndarray, ranks: Sequence[float]) -> list[float]:
    # Partitions ``buf`` in place, ranks in ascending order: each partition puts the floor rank
    # in place (linear time) and leaves bigger values to its right, so the next rank only
    # needs the part to the right. The next rank up is the smallest value right of the floor.
    out, start = [], 0
    for rank in ranks:
        lo = int(math.floor(rank))
        buf[start:].partition(lo - start)
        below = float(buf[lo])
        above = float(buf[lo + 1:].min()) if lo + 1 < buf.size else below
        out.append(below + (above - below) * (rank - lo))
        start = lo
    return out


# Temporaries of this many float64s (64 kB) come from the heap and are reused; bigger ones are
# fresh pages from the OS each time, which measured 20x slower than the arithmetic on them.
_CHUNK = 8192


def trend_per_min(times: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray) -> float:
    """The least-squares slope of ``values`` over ``times`` (seconds), per minute; 0 when flat.

    Centering both series first keeps the sums small, so late timestamps (hours of seconds)
    lose no precision.
    """
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if t.size < 2:
        return 0.0
    t_mean, v_mean = t.mean(), v.mean()
    stt = stv = 0.0
    for i in range(0, t.size, _CHUNK):
        dt = t[i:i + _CHUNK] - t_mean
        # einsum, not np.dot: dot goes through a threaded BLAS, slow for one sum of products
        stt += float(np.einsum("i,i->", dt, dt))
        stv += float(np.einsum("i,i->", dt, v[i:i + _CHUNK] - v_mean))
    if stt == 0.0:  # every point at the same instant: no slope can be measured
        return 0.0
    return stv / stt * 60.0


def compute_stats(times: np.ndarray, values: np.ndarray, scratch: np.ndarray | None = None) -> Stats:
    """``Stats`` of the points ``(times[i], values[i])``; ``scratch``: reusable room for n floats."""
    n = int(values.size)
    if n == 0:
        return Stats.empty()
    if scratch is not None and scratch.size >= n:
        buf = scratch[:n]
        buf[:] = values          # reused memory: no fresh pages to fault in
    else:
        buf = np.array(values, dtype=np.float64)
    median, p95, p99 = _at_ranks(buf, [q / 100.0 * (n - 1) for q in (50, 95, 99)])
    return Stats(min=float(values.min()), max=float(values.max()), avg=float(values.mean()),
                 median=median, p95=p95, p99=p99,
                 trend_per_min=trend_per_min(times, values), count=n)


class TimeSeries:
    """Points ``(t, value)`` in time order, kept for ``retention_s`` seconds (None: forever)."""

    __slots__ = ("retention_s", "_t", "_v", "_start", "_end", "_pend_t", "_pend_v", "_flushed",
                 "_last", "_scratch")

    def __init__(self, retention_s: float | None = 3600.0, capacity: int = 1024) -> None:
        if retention_s is not None and retention_s <= 0:
            raise ConfigError(f"retention_s must be positive or None, got {retention_s}")
        self.retention_s = retention_s
        self._t = np.empty(capacity, dtype=np.float64)
        self._v = np.empty(capacity, dtype=np.float64)
        self._start = 0   # first live point
        self._end = 0     # one past the last stored point
        self._pend_t: list[float] = []
        self._pend_v: list[float] = []
        self._flushed = 0  # points moved into the arrays so far, pruned ones included
        self._last = -math.inf
        self._scratch = np.empty(0)  # where stats partitions a copy of the window, reused

    @property
    def total(self) -> int:
        """Points ever appended, pruned ones included."""
        return self._flushed + len(self._pend_t)

    def __len__(self) -> int:
        return self._end - self._start + len(self._pend_t)

    def __repr__(self) -> str:
        return f"TimeSeries(points={len(self)}, retention_s={self.retention_s})"

    def append(self, t: float, value: float) -> None:
        """Add one point; ``t`` must not be earlier than the last point's."""
        # This runs once per tracked point: keep it to a comparison and two list appends.
        if not t >= self._last:  # binary search needs time order (and a NaN t fails here too)
            raise ConfigError(f"point at t={t} is earlier than the last one at t={self._last} "
                              "or not a number")
        self._last = t
        pend_t = self._pend_t
        pend_t.append(t)
        self._pend_v.append(value)
        if len(pend_t) >= _FLUSH_AT:
            self._flush()

    def extend(self, times: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray) -> None:
        """Add many points at once (times non-decreasing)."""
        self._flush()
        t = np.asarray(times, dtype=np.float64)
        v = np.asarray(values, dtype=np.float64)
        if t.shape != v.shape or t.ndim != 1:
            raise ConfigError(f"times and values must be 1-d and of one length, got {t.shape} and {v.shape}")
        if t.size == 0:
            return
        if not t[0] >= self._last or not np.all(np.diff(t) >= 0):
            raise ConfigError("times must be non-decreasing and not earlier than the last point")
        self._last = float(t[-1])
        self._write(t, v)

    def _flush(self) -> None:
        if self._pend_t:
            t = np.fromiter(self._pend_t, np.float64, len(self._pend_t))
            v = np.fromiter(self._pend_v, np.float64, len(self._pend_v))
            self._pend_t.clear()
            self._pend_v.clear()
            self._write(t, v)

    def _write(self, t: np.ndarray, v: np.ndarray) -> None:
        k = t.size
        self._flushed += k
        if self._end + k > self._t.size:
            if t.size and self.retention_s is not None:
                self._prune_before(float(t[-1]) - self.retention_s)
            live = self._end - self._start
            cap = self._t.size
            # Compact in place when half the buffer is dead; grow (doubling) only when full.
            if live + k > cap // 2:
                cap = max(cap * 2, live + k)
            new_t = np.empty(cap, dtype=np.float64) if cap != self._t.size else self._t
            new_v = np.empty(cap, dtype=np.float64) if cap != self._v.size else self._v
            new_t[:live] = self._t[self._start:self._end]
            new_v[:live] = self._v[self._start:self._end]
            self._t, self._v, self._start, self._end = new_t, new_v, 0, live
        self._t[self._end:self._end + k] = t
        self._v[self._end:self._end + k] = v
        self._end += k

    def _prune_before(self, cutoff: float) -> None:
        live_t = self._t[self._start:self._end]
        self._start += int(np.searchsorted(live_t, cutoff, side="left"))

    def prune(self, now: float) -> None:
        """Drop the points older than ``now - retention_s``."""
        self._flush()
        if self.retention_s is not None:
            self._prune_before(now - self.retention_s)

    def window(self, now: float, period: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The (times, values) arrays of the points in ``(now - period, now]`` (views, do not modify)."""
        self.prune(now)
        t = self._t[self._start:self._end]
        v = self._v[self._start:self._end]
        hi = int(np.searchsorted(t, now, side="right"))
        lo = 0 if period is None else int(np.searchsorted(t, now - period, side="right"))
        return t[lo:hi], v[lo:hi]

    def stats(self, now: float, period: float | None = None) -> Stats:
        """``Stats`` of the points in ``(now - period, now]``; every retained point when None."""
        if period is not None and period <= 0:
            raise ConfigError(f"period must be positive seconds or None, got {period}")
        t, v = self.window(now, period)
        if self._scratch.size < v.size:
            self._scratch = np.empty(self._t.size)
        return compute_stats(t, v, self._scratch)
