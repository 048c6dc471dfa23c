"""Benchmark bonus 5: load-test a real `cfopt serve` process on 127.0.0.1.

    .venv/bin/python benchmarks/bench_loadtest.py [--requests 1000] [--time-scale 100]

Starts ``cfopt serve --port 0`` as a subprocess (its own process, as in production), then runs
``cfopt.bonus.loadtest`` against it: each endpoint at concurrency 20, and the Messages endpoint
at concurrency 1, 10, 50 and 100. Prints throughput, latency percentiles and errors per run,
and the server's own count of connections (one pooled client opens at most ``concurrency``).
Simulated time runs ``--time-scale`` times faster: at 100 a 1 s answer takes 10 ms, so the
figures measure the HTTP path and the server more than the simulated model latency. Ends with
a run whose server is killed mid-way, to show the errors it reports. Every figure is measured
in this run; they vary with the machine's load.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cfopt.bonus.loadtest import LoadTestConfig, run_loadtest  # noqa: E402


def start_server(time_scale: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "cfopt.cli", "serve", "--port", "0",
                             "--time-scale", str(time_scale), "--log-level", "warning"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        raise SystemExit(f"cfopt serve did not start: {line!r}")
    return proc, line.split("listening on ")[1].split()[0]


def connections(url: str) -> int:
    return httpx.get(f"{url}/_cfopt/stats", headers={"x-api-key": "bench"}, trust_env=False).json()["connections_opened"]


def row(label: str, r, conns: int | None = None) -> str:
    lat = r.latency_ms or dict.fromkeys(("p50", "p95", "p99"), float("nan"))
    errs = ", ".join(f"{k} {v}" for k, v in sorted(r.errors.items())) or "none"
    extra = f"  conns {conns}" if conns is not None else ""
    return (f"  {label:<24} sent {r.sent:>5} ok {r.ok:>5} in {r.elapsed_s:6.2f} s  "
            f"{r.throughput_rps:7.1f} req/s  p50 {lat['p50']:7.1f}  p95 {lat['p95']:7.1f}  "
            f"p99 {lat['p99']:7.1f} ms{extra}  errors: {errs}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--time-scale", type=float, default=100.0)
    args = ap.parse_args()
    proc, url = start_server(args.time_scale)
    try:
        print(f"cfopt serve at {url}, time scale {args.time_scale:g}, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}\n")
        print("== each endpoint, concurrency 20")
        for endpoint in ("health", "count_tokens", "photos", "messages"):
            before = connections(url)
            r = run_loadtest(LoadTestConfig(url=url, requests=args.requests, concurrency=20,
                                            endpoint=endpoint, duration_s=120))
            print(row(endpoint, r, connections(url) - before - 1))  # -1: the stats call itself
        print("\n== messages, by concurrency")
        for c in (1, 10, 50, 100):
            before = connections(url)
            r = run_loadtest(LoadTestConfig(url=url, requests=args.requests, concurrency=c,
                                            duration_s=120))
            print(row(f"concurrency {c}", r, connections(url) - before - 1))
        print("\n== duration cap: 10^6 requests asked, 3 s allowed, concurrency 20")
        r = run_loadtest(LoadTestConfig(url=url, requests=10**6, concurrency=20, duration_s=3))
        print(row(f"stopped by {r.stopped_by}", r))
    finally:
        proc.kill()
        proc.wait()

    print("\n== server killed (SIGKILL) 1 s into a run of 20000 requests, concurrency 20")
    proc, url = start_server(args.time_scale)
    box: dict = {}
    t0 = time.perf_counter()
    runner = threading.Thread(target=lambda: box.update(r=run_loadtest(LoadTestConfig(
        url=url, requests=20_000, concurrency=20, duration_s=60, timeout_s=3))))
    runner.start()
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    runner.join()
    print(row("killed at 1 s", box["r"]))
    print(f"  the run ended {time.perf_counter() - t0:.2f} s after it started")


if __name__ == "__main__":
    main()
