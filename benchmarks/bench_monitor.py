"""PerformanceMonitor against a naive list-of-dicts monitor: tracking speed, stats latency, memory.

    .venv/bin/python benchmarks/bench_monitor.py [--points 1000000] [--repeat 5]

Both monitors get the same points (one an hour's worth of response times, timestamps spread
evenly) and are asked the same questions: stats over every point, and over the last five
minutes. The answers are compared before any time is printed, so the fast one cannot be fast
by being wrong. Times are medians of ``--repeat`` runs on this machine; memory is the peak
that ``tracemalloc`` sees while the points are tracked.
"""
from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cfopt.clock import VirtualClock  # noqa: E402
from cfopt.monitoring.monitor import MonitorConfig, PerformanceMonitor  # noqa: E402


class NaiveMonitor:
    """What the exercise's monitor does: a list of dicts per metric, stats in pure Python."""

    def __init__(self, clock: VirtualClock, retention_s: float = 3600.0) -> None:
        self.clock, self.retention_s = clock, retention_s
        self.metrics: dict[str, list[dict]] = {}

    def track(self, metric: str, value: float, t: float | None = None) -> None:
        self.metrics.setdefault(metric, []).append(
            {"t": self.clock.now() if t is None else t, "value": value})

    def get_stats(self, metric: str, period: float | None = None) -> dict:
        now = self.clock.now()
        lo = now - (self.retention_s if period is None else period)
        pts = [p for p in self.metrics.get(metric, []) if (p["t"] >= lo if period is None else p["t"] > lo)
               and p["t"] <= now]
        values = sorted(p["value"] for p in pts)
        n = len(values)

        def pct(q: float) -> float:
            rank = q / 100 * (n - 1)
            i = math.floor(rank)
            j = min(i + 1, n - 1)
            return values[i] + (values[j] - values[i]) * (rank - i)
        ts = [p["t"] for p in pts]
        vs = [p["value"] for p in pts]
        tm, vm = sum(ts) / n, sum(vs) / n
        den = sum((t - tm) ** 2 for t in ts)
        slope = sum((t - tm) * (v - vm) for t, v in zip(ts, vs)) / den if den else 0.0
        return {"min": values[0], "max": values[-1], "avg": statistics.fmean(values),
                "median": pct(50), "p95": pct(95), "p99": pct(99), "trend_per_min": slope * 60,
                "count": n}


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _track_all(monitor, times: list[float], values: list[float]) -> None:
    track = monitor.track
    for t, v in zip(times, values):
        track("response_time", v, t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    n = args.points
    rng = np.random.default_rng(0)
    times = np.linspace(0.0, 3599.0, n).tolist()
    values = rng.lognormal(0.0, 0.5, n).tolist()
    clock = VirtualClock(3599.0)

    def fresh_fast() -> PerformanceMonitor:
        return PerformanceMonitor(clock=clock, config=MonitorConfig(retention_s=3600.0))

    # Tracking: a fresh monitor per repetition, every point through track().
    fast_track = _median_time(lambda: _track_all(fresh_fast(), times, values), args.repeat)
    naive_track = _median_time(lambda: _track_all(NaiveMonitor(clock), times, values), args.repeat)

    fast, naive = fresh_fast(), NaiveMonitor(clock)
    _track_all(fast, times, values)
    _track_all(naive, times, values)
    rows = []
    for label, period in (("stats over all points", None), ("stats over the last 5 min", 300.0)):
        got, want = fast.get_stats("response_time", period), naive.get_stats("response_time", period)
        for k, w in want.items():   # the same answers first, or no timing is worth printing
            g = getattr(got, k)
            assert math.isclose(g, w, rel_tol=1e-6, abs_tol=1e-9), f"{label}: {k} {g} != {w}"
        rows.append((f"{label} ({want['count']:,})",
                     _median_time(lambda: fast.get_stats("response_time", period), args.repeat),
                     _median_time(lambda: naive.get_stats("response_time", period), args.repeat)))

    def peak(make) -> float:
        gc.collect()
        tracemalloc.start()
        m = make()
        _track_all(m, times, values)
        m.get_stats("response_time")
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top / 2**20
    mem_fast, mem_naive = peak(fresh_fast), peak(lambda: NaiveMonitor(clock))

    print(f"{n:,} points of one metric over an hour; median of {args.repeat} runs; Python "
          f"{sys.version.split()[0]}, numpy {np.__version__}")
    print(f"{'':34} {'cfopt (numpy arrays)':>22} {'naive (list of dicts)':>22} {'ratio':>8}")
    print(f"{'track(): points per second':34} {n / fast_track:>22,.0f} {n / naive_track:>22,.0f} "
          f"{naive_track / fast_track:>7.1f}x")
    for label, f, s in rows:
        print(f"{label:34} {f * 1e3:>19.2f} ms {s * 1e3:>19.1f} ms {s / f:>7.0f}x")
    print(f"{'peak memory while tracking':34} {mem_fast:>19.1f} MB {mem_naive:>19.1f} MB "
          f"{mem_naive / mem_fast:>7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
