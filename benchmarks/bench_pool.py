"""Pooled vs unpooled HTTP clients: 1,000 calls against ``cfopt serve``, side by side.

Starts ``cfopt serve`` in its own process (so client and server do not share a GIL), then sends
the same N Messages calls (default 1,000, 50 in flight) three ways:

- ``pooled``:         one ``AsyncCfoptClient`` (one ``httpx.AsyncClient``) for every call,
                      keeping as many connections alive as calls in flight;
- ``pooled, shards``: the same connections split over pools of 5 (``shards=``): httpcore's
                      bookkeeping grows with connections x waiting requests per pool;
- ``new connection``: one client with keep-alive off, so every call opens a TCP connection;
- ``new client``:     a new client per call (the common mistake: ``async with httpx.AsyncClient()``
                      inside the request handler), which also rebuilds TLS settings each time.

Connections are counted twice, independently: by the client (httpcore's trace events) and by
the server (``connections_opened`` in ``GET /_cfopt/stats``). CPU seconds are measured for the
client (this process) and the server (``/proc/PID/stat``): on a shared machine they are steadier
than wall time. Every answer is checked and failures are listed by type. Before the timed runs
one untimed pass makes the server compute each answer once, so no variant profits from another's
warm caches. Each concurrency level is its own table (default: 1 and 50 calls in flight). The
variants take turns in rounds (``--rounds``, default 5, each a slice of the calls, the order
rotating), so load that comes and goes on a shared machine falls on all of them alike.

On loopback a new connection costs a fraction of a millisecond; to a remote API it costs the TCP
and TLS handshakes, about two round trips. ``--handshake-ms`` (default ``0,30``) runs everything
twice: as loopback is, and with the server holding each new connection's first request 30 ms,
the set-up cost of an API ~15 ms away.

    .venv/bin/python benchmarks/bench_pool.py [--calls 1000] [--concurrency 1,50]
                                              [--handshake-ms 0,30] [--time-scale 1000]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import httpx

from cfopt.latency.client import AsyncCfoptClient
from cfopt.errors import ProviderError

KEY = "sk-bench-not-a-real-key"


@dataclass
class Run:
    variant: str
    handshake_ms: float
    concurrency: int
    calls: int
    ok: int
    client_connections: int
    server_connections: int
    wall_s: float
    p50_ms: float
    p95_ms: float
    client_cpu_s: float
    server_cpu_s: float | None
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def per_s(self) -> float:
        return self.calls / self.wall_s


def start_server(time_scale: float, seed: int, handshake_ms: float = 0.0) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cfopt.cli", "serve", "--port", "0", "--time-scale", str(time_scale),
         "--seed", str(seed), "--log-level", "warning", "--handshake-ms", str(handshake_ms)],
        stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("cfopt serve: listening on "):
        proc.kill()
        raise SystemExit(f"cfopt serve did not start: {line!r}")
    return proc, line.split()[4]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux), or None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_connections(url: str) -> int:
    return httpx.get(f"{url}/_cfopt/stats", headers={"x-api-key": "bench"}).json()["connections_opened"]


def prompts(n: int) -> list[str]:
    return [f"Write a tagline for shop number {i}." for i in range(n)]


async def _call(client: AsyncCfoptClient, prompt: str, latencies: list[float],
                errors: Counter) -> bool:
    t0 = time.perf_counter()
    try:
        msg = await client.messages("haiku", prompt, max_tokens=100)
    except ProviderError as e:
        errors[f"{type(e).__name__}: {str(e)[:60]}"] += 1
        return False
    latencies.append(time.perf_counter() - t0)
    return msg["type"] == "message" and bool(msg["content"][0]["text"])


def shared_client(variant: str, url: str, concurrency: int) -> AsyncCfoptClient | None:
    """The one client a variant uses for all its calls (None: a new client per call)."""
    keep = {"pooled": concurrency, "pooled, shards": concurrency, "new connection": 0}.get(variant)
    if keep is None:
        return None
    # Idle connections live 120 s on the client: while other variants take their turn, the pool
    # waits, as an app's would between bursts (the server drops them after 30 s idle).
    return AsyncCfoptClient(url, api_key=KEY, shards=-(-concurrency // 5) if "shards" in variant else 1,
                            limits=httpx.Limits(max_connections=concurrency,
                                                max_keepalive_connections=keep, keepalive_expiry=120.0))


async def run_variant(variant: str, url: str, work: list[str], concurrency: int,
                      server_pid: int, handshake_ms: float = 0.0,
                      shared: AsyncCfoptClient | None = None) -> Run:
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors: Counter = Counter()
    opened = 0
    opened_before = shared.pool_stats().connections_opened if shared is not None else 0

    async def one(prompt: str) -> bool:
        nonlocal opened
        async with sem:
            if shared is not None:
                return await _call(shared, prompt, latencies, errors)
            async with AsyncCfoptClient(url, api_key=KEY) as own:
                ok = await _call(own, prompt, latencies, errors)
                opened += own.pool_stats().connections_opened
                return ok

    before = server_connections(url)
    cpu0, server_cpu0 = time.process_time(), cpu_seconds(server_pid)
    t0 = time.perf_counter()
    results = await asyncio.gather(*(one(p) for p in work))
    wall = time.perf_counter() - t0
    cpu, server_cpu = time.process_time() - cpu0, cpu_seconds(server_pid)
    if shared is not None:
        opened = shared.pool_stats().connections_opened - opened_before
    after = server_connections(url) - 1   # minus the stats request's own connection
    ms = sorted(x * 1000 for x in latencies) or [float("nan")]
    return Run(variant, handshake_ms, concurrency, len(work), sum(results), opened, after - before, wall,
               statistics.median(ms), ms[min(len(ms) - 1, int(0.95 * len(ms)))], cpu,
               None if server_cpu is None or server_cpu0 is None else server_cpu - server_cpu0,
               dict(errors), ms)


def table(runs: list[Run]) -> str:
    base = runs[0]
    head = (f"{'variant':<16}{'ok':>6}{'conns client':>13}{'conns server':>13}{'wall s':>8}"
            f"{'calls/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'cpu client':>11}{'cpu server':>11}"
            f"{'wall/pooled':>12}")
    rows = [head, "-" * len(head)]
    for r in runs:
        server_cpu = "n/a" if r.server_cpu_s is None else f"{r.server_cpu_s:.2f}"
        rows.append(f"{r.variant:<16}{r.ok:>6}{r.client_connections:>13}{r.server_connections:>13}"
                    f"{r.wall_s:>8.2f}{r.per_s:>8.0f}{r.p50_ms:>8.1f}{r.p95_ms:>8.1f}"
                    f"{r.client_cpu_s:>11.2f}{server_cpu:>11}{r.wall_s / base.wall_s:>11.2f}x")
        rows += [f"    {n} x {err}" for err, n in r.errors.items()]
    return "\n".join(rows)


async def main_async(args: argparse.Namespace, url: str, server_pid: int, handshake_ms: float) -> list[Run]:
    work = prompts(args.calls)
    levels = [int(c) for c in args.concurrency.split(",")]
    async with AsyncCfoptClient(url, api_key=KEY) as warm:           # untimed warm-up
        await run_variant("pooled", url, work, max(levels), server_pid, shared=warm)
    runs = []
    for c in levels:
        variants = ["pooled", "pooled, shards", "new connection", "new client"]
        if c <= 5:
            variants.remove("pooled, shards")   # one shard: the same as pooled
        parts: dict[str, list[Run]] = {v: [] for v in variants}
        clients = {v: shared_client(v, url, c) for v in variants}  # kept for all rounds
        for r in range(args.rounds):
            chunk = work[r::args.rounds]
            for v in variants[r % len(variants):] + variants[:r % len(variants)]:  # rotate the order
                parts[v].append(await run_variant(v, url, chunk, c, server_pid, handshake_ms,
                                                  shared=clients[v]))
        for client in clients.values():
            if client is not None:
                await client.aclose()
        runs += [merge(parts[v]) for v in variants]
    return runs


def merge(parts: list[Run]) -> Run:
    """One run from the rounds of a variant: counts and times add up, percentiles pooled."""
    ms = sorted(x for p in parts for x in p.latencies_ms)
    errors: Counter = Counter()
    for p in parts:
        errors.update(p.errors)
    cpu_server = [p.server_cpu_s for p in parts]
    return Run(parts[0].variant, parts[0].handshake_ms, parts[0].concurrency,
               sum(p.calls for p in parts), sum(p.ok for p in parts),
               sum(p.client_connections for p in parts), sum(p.server_connections for p in parts),
               sum(p.wall_s for p in parts), statistics.median(ms) if ms else float("nan"),
               ms[min(len(ms) - 1, int(0.95 * len(ms)))] if ms else float("nan"),
               sum(p.client_cpu_s for p in parts),
               None if None in cpu_server else sum(cpu_server), dict(errors))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--concurrency", default="1,50", help="calls in flight; a comma list runs each")
    parser.add_argument("--time-scale", type=float, default=1000.0,
                        help="server speed-up; at 1000 a haiku call's ~1.5 s is ~1.5 ms")
    parser.add_argument("--handshake-ms", default="0,30",
                        help="per new connection; a comma list runs each (0: loopback as is)")
    parser.add_argument("--rounds", type=int, default=5, help="turns each variant takes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    runs: list[Run] = []
    for handshake_ms in (float(h) for h in args.handshake_ms.split(",")):
        proc, url = start_server(args.time_scale, args.seed, handshake_ms)
        try:
            runs += asyncio.run(main_async(args, url, proc.pid, handshake_ms))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"{args.calls} Messages calls (haiku, max_tokens 100) to cfopt serve, time scale "
          f"{args.time_scale:g}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    for key in dict.fromkeys((r.handshake_ms, r.concurrency) for r in runs):
        setup = "loopback" if key[0] == 0 else f"{key[0]:g} ms per new connection"
        print(f"\n{setup}, {key[1]} in flight")
        print(table([r for r in runs if (r.handshake_ms, r.concurrency) == key]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump([{k: v for k, v in dict(asdict(r), calls_per_s=r.per_s).items()
                        if k != "latencies_ms"} for r in runs], f, indent=2)
    return 0 if all(r.ok == r.calls for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
