"""Soak: `cfopt serve` under `cfopt loadtest` for minutes, with faults, slow clients and bad input.

    .venv/bin/python benchmarks/bench_soak.py [--minutes 10] [--time-scale 50] [--concurrency 16]

Starts ``cfopt serve`` as its own process with 5% injected faults (429, 529 and hung calls
that end in 504, split evenly; no injected 500s, so that any 500 is a bug) and short
retention (batches and fal.ai results kept 60 simulated seconds), then, for ``--minutes``:

- ``cfopt loadtest --endpoint mixed`` (its own process, a minute per run): Messages, token
  counts, batches, fal.ai, photos and health in turn, ``--concurrency`` at a time;
- slow clients, one of each kind every few seconds: a head sent a byte at a time, a body
  that stops half way, a client that connects and sends nothing, a client that sends a
  request and leaves before the answer;
- the three inputs of issue 17 (a 5,000-digit integer, JSON nested 1,000 levels, a lone
  surrogate in ``model``) now and then, each expecting a 400.

It samples the server's resident memory (``VmRSS``) every 5 s and prints, per minute, what the
load test saw, then the server's own counters and a verdict: memory flat (RSS at the end
within 10% or 20 MB of the end of minute 1, whichever is larger) and no 500 to a well-formed
request (none seen by the load test, and the server's ``internal_errors`` at 0). Every figure
is measured in this run and depends on the machine's load. Not part of CI.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
KEY = "soak-key"
THE_THREE = {
    "5,000-digit integer": b'{"model": "claude-haiku-5-5", "max_tokens": ' + b"9" * 5000 + b', "messages": []}',
    "JSON nested 1,000 levels": b'{"model": "claude-haiku-5-5", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    "lone surrogate in model": b'{"model": "\\ud800", "max_tokens": 5, "messages": []}',
}


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "cfopt.cli", "serve", "--port", "0", "--time-scale",
           str(args.time_scale), "--fault-rate", "0.05", "--fault-kinds",
           "rate_limited,overloaded,timeout", "--batch-retention", "60", "--fal-retention", "60",
           "--header-timeout", "2", "--body-timeout", "2", "--api-key", KEY, "--log-level", "error"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        raise SystemExit(f"cfopt serve did not start: {line!r}")
    return proc, line.split("listening on ")[1].split()[0]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def server_stats(url: str) -> dict:
    return httpx.get(f"{url}/_cfopt/stats", headers={"x-api-key": KEY}, trust_env=False,
                     timeout=30).json()


def _status(sock: socket.socket) -> int | None:
    """The status of the answer on ``sock`` (None: closed without one)."""
    sock.settimeout(15)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        return None
    return int(data.split()[1]) if data.startswith(b"HTTP/1.1 ") else None


class Misbehaving(threading.Thread):
    """Slow, silent and leaving clients, and issue 17's bad bodies, every few seconds."""

    def __init__(self, url: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        host, port = url.split("//")[1].split(":")
        self.addr, self.stop, self.seen = (host, int(port)), stop, Counter()

    def _one(self, kind: str) -> None:
        with socket.create_connection(self.addr, timeout=15) as s:
            if kind == "slow head":
                for byte in b"POST /v1/messages HTTP/1.1\r\nHost: soak\r\nx-api-key: soak-key\r\n":
                    try:
                        s.sendall(bytes([byte]))
                    except OSError:
                        break
                    time.sleep(0.3)
                got = _status(s)
            elif kind == "slow body":
                s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: soak\r\nx-api-key: soak-key\r\n"
                          b"anthropic-version: 2023-06-01\r\n"
                          b"Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"model\":")
                got = _status(s)
            elif kind == "silent":
                got = _status(s)
            elif kind == "leaves":
                body = b'{"model": "claude-sonnet-5-5", "max_tokens": 800, "messages": [{"role": "user", "content": "Write an essay."}]}'
                s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: soak\r\nx-api-key: soak-key\r\n"
                          b"anthropic-version: 2023-06-01\r\n"
                          b"Content-Type: application/json\r\nContent-Length: "
                          + str(len(body)).encode() + b"\r\n\r\n" + body)
                time.sleep(0.05)
                got = "left"
            else:
                body = THE_THREE[kind]
                s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: soak\r\nx-api-key: soak-key\r\n"
                          b"anthropic-version: 2023-06-01\r\n"
                          b"Content-Type: application/json\r\nContent-Length: "
                          + str(len(body)).encode() + b"\r\n\r\n" + body)
                got = _status(s)
        self.seen[(kind, got)] += 1

    def run(self) -> None:
        kinds = ["slow head", "slow body", "silent", "leaves", *THE_THREE]
        i = 0
        while not self.stop.is_set():
            kind = kinds[i % len(kinds)]
            threading.Thread(target=self._guarded, args=(kind,), daemon=True).start()
            i += 1
            self.stop.wait(1.0)

    def _guarded(self, kind: str) -> None:
        try:
            self._one(kind)
        except OSError as e:
            self.seen[(kind, type(e).__name__)] += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--time-scale", type=float, default=50.0)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    proc, url = start_server(args)
    stop = threading.Event()
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.monotonic() - t0, rss_mb(proc.pid)))
            stop.wait(5.0)
    sampler = threading.Thread(target=sample, daemon=True)
    bad = Misbehaving(url, stop)
    print(f"cfopt serve at {url} (pid {proc.pid}), time scale {args.time_scale:g}, faults 5% "
          f"(429, 529, hung calls -> 504), retention 60 simulated s; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; {args.minutes:g} minutes\n")
    sampler.start()
    bad.start()
    totals: Counter = Counter()
    minute = 0
    try:
        while (left := args.minutes * 60 - (time.monotonic() - t0)) > 1:
            minute += 1
            run = subprocess.run(
                [sys.executable, "-m", "cfopt.cli", "loadtest", "--url", url, "--endpoint", "mixed",
                 "--requests", "1000000", "--concurrency", str(args.concurrency), "--duration",
                 f"{min(60.0, left):.1f}", "--timeout", "30", "--api-key", KEY, "--json"],
                cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            r = json.loads(run.stdout)
            totals.update({"sent": r["sent"], "ok": r["ok"], **r["errors"]})
            rss = samples[-1][1] if samples else float("nan")
            lat = r["latency_ms"]
            errors = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items())) or "none"
            print(f"minute {minute:>2}: sent {r['sent']:>6,} ok {r['ok']:>6,} "
                  f"{r['throughput_rps']:6.1f} req/s  p50 {lat.get('p50', 0):6.1f} p99 "
                  f"{lat.get('p99', 0):7.1f} ms  server RSS {rss:6.1f} MB  errors: {errors}",
                  flush=True)
        stats = server_stats(url)
    finally:
        stop.set()
        proc.terminate()
        proc.wait(timeout=30)
    sampler.join(timeout=10)

    print("\n== the load test, all minutes")
    print(f"  sent {totals['sent']:,}, ok {totals['ok']:,}; " + ", ".join(
        f"{k} {v:,}" for k, v in sorted(totals.items()) if k not in ("sent", "ok")))
    print("  (429, 529, 504: the injected faults; 403: Unsplash's hourly demo-key limit, simulated)")
    print("\n== misbehaving clients (kind, what came back)")
    for (kind, got), n in sorted(bad.seen.items(), key=lambda kv: str(kv[0])):
        print(f"  {kind:<26} {str(got):<14} {n:>5}")
    print("\n== the server's counters")
    print(f"  requests {stats['requests']:,}; by status {stats['by_status']}")
    print(f"  unanswered {stats['unanswered']}; internal_errors {stats['internal_errors']}")
    print(f"  kept in memory at the end {stats['retained']}; connections {stats['connections_opened']:,}")

    print("\n== server memory (VmRSS, MB), every 5 s")
    marks = [s for s in samples if s[0] >= 60] or samples
    base, end, peak = marks[0][1], samples[-1][1], max(r for _, r in samples)
    for t, r in samples[:: max(1, len(samples) // 20)]:
        print(f"  {t:7.0f} s  {r:7.1f}")
    growth = end - base
    flat = growth <= max(20.0, 0.10 * base)
    print(f"  after minute 1: {base:.1f} MB; at the end: {end:.1f} MB ({growth:+.1f} MB, "
          f"{growth / base:+.1%}); peak {peak:.1f} MB")
    http_500 = totals.get("HTTP 500", 0)
    bad_400 = sum(n for (kind, got), n in bad.seen.items() if kind in THE_THREE and got == 400)
    sent_three = sum(n for (kind, _), n in bad.seen.items() if kind in THE_THREE)
    print("\n== verdict")
    print(f"  memory flat (growth <= max(20 MB, 10%)): {'yes' if flat else 'NO'}")
    print(f"  500s to well-formed requests: {http_500} seen by the load test, "
          f"{stats['internal_errors']} internal errors counted by the server: "
          f"{'none' if http_500 == 0 and stats['internal_errors'] == 0 else 'SOME'}")
    print(f"  issue 17's three bodies answered 400: {bad_400} of {sent_three}")


if __name__ == "__main__":
    main()
