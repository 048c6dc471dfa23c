"""Bonus 5: load-test ``cfopt serve`` on this machine, with bounded concurrency, count and time.

``run_loadtest(LoadTestConfig(url=...))`` sends ``requests`` requests through one pooled
``httpx.AsyncClient``, at most ``concurrency`` at a time, and stops issuing at ``duration_s``;
requests still in flight then get ``timeout_s`` more before they are cancelled and counted as
errors. A dead server makes requests fail fast (connection refused) or time out; after
``give_up_after`` such failures in a row the run stops (``stopped_by="errors"``), and in any case
it ends within about ``duration_s + timeout_s``.

Only this machine may be targeted. ``check_target`` accepts an IP literal in 127.0.0.0/8 or
``::1``, or the name ``localhost`` (``localhost.`` too) when every address it resolves to is
loopback (resolved from the hosts file: no DNS query leaves the machine), and returns the
address to use. The name is resolved once, here, and the client connects to that address (the
``Host`` header keeps the name): what was checked is what is connected to, whatever a second
resolution would say. Any other name is refused *without* being resolved, so nothing external
is ever looked up. The client ignores proxy variables (``trust_env=False``) and never follows
redirects: traffic can only go where it was checked.

A run is bounded: ``duration_s`` at most ``MAX_DURATION_S`` (an hour) and ``timeout_s`` at most
``MAX_TIMEOUT_S``, both finite.

>>> check_target("http://127.0.0.1:8000")
('127.0.0.1', 8000)
>>> check_target("http://example.com")
Traceback (most recent call last):
cfopt.errors.ConfigError: refusing to load-test 'example.com': only loopback targets (127.0.0.0/8, ::1, localhost) are allowed
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import math
import socket
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import numpy as np

from ..errors import ConfigError

__all__ = ["LoadTestConfig", "LoadTestResult", "ENDPOINTS", "check_target", "run_loadtest",
           "loadtest_command", "MAX_DURATION_S", "MAX_TIMEOUT_S"]

# "mixed" goes round the others: Messages, token counts, batches, fal.ai, photos, health.
ENDPOINTS = ("messages", "count_tokens", "photos", "health", "batches", "fal", "mixed")
MAX_DURATION_S = 3600.0   # a load test of this machine needs no more than an hour
MAX_TIMEOUT_S = 300.0     # a request silent for five minutes has failed
_TOPICS = ("latte art", "linen shirts", "trail running", "sourdough", "home office", "tea")


def _refuse(host: str) -> ConfigError:
    return ConfigError(f"refusing to load-test {host!r}: only loopback targets "
                       "(127.0.0.0/8, ::1, localhost) are allowed")


def check_target(url: str) -> tuple[str, int]:
    """Return the address to connect to and the port, if ``url`` is on this machine; else raise
    ``ConfigError``. A name is resolved here, once: connect to the address returned."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as e:
        raise ConfigError(f"not a URL: {url!r} ({e})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"need an http:// URL with a host, got {url!r}")
    host = parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host, port
        raise _refuse(host)
    except ValueError:  # not an IP literal: a name
        pass
    if host.lower().rstrip(".") != "localhost":
        raise _refuse(host)  # never resolved: a DNS query would itself leave the machine
    try:  # "localhost", without a trailing dot: the hosts file's name, not a DNS query
        infos = socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ConfigError(f"cannot resolve localhost: {e}") from None
    addresses = [info[4][0].split("%")[0] for info in infos]
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        raise ConfigError(f"refusing to load-test localhost: it resolves to {sorted(set(addresses))}, "
                          "not only loopback addresses")
    return addresses[0], port


@dataclass(frozen=True, slots=True)
class LoadTestConfig:
    """What to drive, how hard, and for how long at most."""

    url: str
    requests: int = 200
    concurrency: int = 20
    duration_s: float = 30.0       # stop issuing after this long
    timeout_s: float = 10.0        # per request: connect, read, write, pool
    give_up_after: int = 50        # consecutive transport errors (no HTTP answer): server gone
    endpoint: str = "messages"
    model: str = "claude-haiku-5-5"
    max_tokens: int = 64
    api_key: str = field(default="cfopt-loadtest", repr=False)

    def __post_init__(self) -> None:
        if self.requests < 1 or self.concurrency < 1 or self.give_up_after < 1:
            raise ConfigError(f"requests and concurrency must be at least 1: {self!r}")
        for name, cap in (("duration_s", MAX_DURATION_S), ("timeout_s", MAX_TIMEOUT_S)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= cap):
                raise ConfigError(f"{name} must be a number of seconds in (0, {cap:g}], got {value!r}")
        if self.endpoint not in ENDPOINTS:
            raise ConfigError(f"unknown endpoint {self.endpoint!r}; known: {', '.join(ENDPOINTS)}")
        check_target(self.url)


@dataclass
class LoadTestResult:
    """What a run did: counts, throughput, latency percentiles (successes), errors by kind."""

    url: str
    endpoint: str
    concurrency: int
    sent: int
    ok: int
    errors: dict[str, int]
    elapsed_s: float
    stopped_by: str                 # "count", "duration" or "errors" (the server stopped answering)
    throughput_rps: float           # successful responses per second
    latency_ms: dict[str, float]    # mean, p50, p95, p99, max of successful requests

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        """Return a readable summary."""
        lat = self.latency_ms
        lines = [f"load test {self.url} endpoint={self.endpoint} concurrency={self.concurrency}",
                 f"  sent {self.sent}, ok {self.ok}, errors {self.error_count} in "
                 f"{self.elapsed_s:.2f} s (stopped by {self.stopped_by})",
                 f"  throughput {self.throughput_rps:.1f} req/s"]
        if lat:
            lines.append("  latency ms: " + "  ".join(f"{k} {v:.1f}" for k, v in lat.items()))
        for kind, n in sorted(self.errors.items()):
            lines.append(f"  error {kind}: {n}")
        return "\n".join(lines)


_ROUND = ("messages", "count_tokens", "batches", "fal", "photos", "health")


def _request(cfg: LoadTestConfig, i: int) -> tuple[str, str, dict | None]:
    """Return method, path and JSON body of request ``i`` (prompts vary, deterministically)."""
    topic = _TOPICS[i % len(_TOPICS)]
    endpoint = _ROUND[i % len(_ROUND)] if cfg.endpoint == "mixed" else cfg.endpoint
    if endpoint == "health":
        return "GET", "/_cfopt/health", None
    if endpoint == "photos":
        return "GET", f"/unsplash/search/photos?query={topic.replace(' ', '+')}&per_page=10", None
    if endpoint == "fal":
        return "POST", "/fal/fal-ai/flux/schnell", {"prompt": f"a photo of {topic} (#{i})"}
    body: dict[str, Any] = {"model": cfg.model,
                            "messages": [{"role": "user",
                                          "content": f"Write a caption about {topic} (#{i})"}]}
    if endpoint == "count_tokens":
        return "POST", "/v1/messages/count_tokens", body
    if endpoint == "batches":
        return "POST", "/v1/messages/batches", {"requests": [
            {"custom_id": f"lt-{i}-{k}", "params": {**body, "max_tokens": cfg.max_tokens}}
            for k in range(2)]}
    return "POST", "/v1/messages", {**body, "max_tokens": cfg.max_tokens}


async def _drive(cfg: LoadTestConfig) -> LoadTestResult:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    sent = 0
    failing = 0  # transport errors in a row
    start = time.perf_counter()
    deadline = start + cfg.duration_s
    # Connect to the address check_target resolved, never to a name resolved again.
    address, port = check_target(cfg.url)
    parsed = httpx.URL(cfg.url)
    base = str(parsed.copy_with(host=address, port=port)).rstrip("/")
    headers = {"x-api-key": cfg.api_key, "anthropic-version": "2023-06-01",
               "host": f"{parsed.host}:{port}" if parsed.port else parsed.host}
    limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits,
                                 timeout=httpx.Timeout(cfg.timeout_s), trust_env=False,
                                 follow_redirects=False) as client:

        async def worker() -> None:
            nonlocal sent, failing
            while (sent < cfg.requests and time.perf_counter() < deadline
                   and failing < cfg.give_up_after):
                i = sent
                sent += 1  # claimed before awaiting: workers share one event loop, no race
                method, path, body = _request(cfg, i)
                t0 = time.perf_counter()
                try:
                    response = await client.request(method, path, json=body)
                except httpx.HTTPError as e:
                    errors[type(e).__name__] += 1
                    failing += 1
                    continue
                failing = 0  # any HTTP answer, even an error status, shows the server is there
                if response.is_success:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors[f"HTTP {response.status_code}"] += 1

        tasks = [asyncio.ensure_future(worker()) for _ in range(min(cfg.concurrency, cfg.requests))]
        # Past the deadline, in-flight requests get one timeout more, then are cancelled.
        done, pending = await asyncio.wait(tasks, timeout=cfg.duration_s + cfg.timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            errors["cancelled at the duration cap"] += len(pending)
        for task in done:
            if task.exception() is not None:  # a bug of ours, not the server's: count it, name it
                errors[f"client {type(task.exception()).__name__}"] += 1
    elapsed = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    lat = ({"mean": float(ms.mean()), **{f"p{q}": float(np.percentile(ms, q)) for q in (50, 95, 99)},
            "max": float(ms.max())} if len(ms) else {})
    return LoadTestResult(cfg.url, cfg.endpoint, cfg.concurrency, sent, len(latencies),
                          dict(errors), elapsed,
                          "errors" if failing >= cfg.give_up_after else
                          "count" if sent >= cfg.requests else "duration",
                          len(latencies) / elapsed if elapsed > 0 else 0.0, lat)


def run_loadtest(config: LoadTestConfig) -> LoadTestResult:
    """Run the load test in ``config`` (on a fresh event loop) and return what it measured."""
    return asyncio.run(_drive(config))   # _drive checks the target again and connects to it


def loadtest_command(args: argparse.Namespace) -> int:
    """``cfopt loadtest``: 0 when some requests succeeded, 1 when none did."""
    cfg = LoadTestConfig(url=args.url, requests=args.requests, concurrency=args.concurrency,
                         duration_s=args.duration, timeout_s=args.timeout, endpoint=args.endpoint,
                         api_key=getattr(args, "api_key", "cfopt-loadtest"))
    result = run_loadtest(cfg)
    print(json.dumps(result.as_dict(), indent=2) if args.json else result.format())
    return 0 if result.ok else 1
