"""Run the app under uvicorn: loopback by default, TCP_NODELAY, a deep listen backlog.

Two socket settings decide how a small local server feels under load (measured on these
machines, see ENVIRONMENT.md): without TCP_NODELAY a keep-alive request waits ~40 ms for Nagle's
algorithm and delayed ACKs (3 ms with it); with a listen backlog of 5, fifty clients connecting
at once see connection errors. So the listening socket is made here, with ``backlog`` (1024 by
default), and every accepted connection gets TCP_NODELAY and is counted (``connections_opened``
in ``GET /_cfopt/stats``): a benchmark can check how many connections a client really opened.

``serve(...)`` blocks (the ``cfopt serve`` command); ``serve_in_thread(...)`` runs a server in a
background thread for tests and notebooks and yields its base URL:

    with serve_in_thread(ServerConfig(time_scale=100)) as url:
        httpx.post(f"{url}/v1/messages", headers={"x-api-key": "k"}, json={...})
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sys
import threading
import time
from typing import Callable, Iterator

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .app import create_app
from ..errors import ConfigError
from ..providers.base import Faults
from .config import DEFAULT_BACKLOG, DEFAULT_HOST, ServerConfig, check_host
from .state import FAULT_KINDS, ServerState, ServerStats

__all__ = ["bind_socket", "make_server", "serve", "serve_in_thread", "base_url", "serve_command",
           "faults_from_rate"]

KEEP_ALIVE_S = 30  # uvicorn's default (5 s) would drop a pooled connection between bursts


def bind_socket(host: str = DEFAULT_HOST, port: int = 0, *, backlog: int = DEFAULT_BACKLOG) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0 picks a free port) with a queue of ``backlog``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets on Linux
        sock.bind((host.strip("[]"), port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def base_url(sock: socket.socket) -> str:
    """The ``http://host:port`` a client uses to reach ``sock``."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _counting_protocol(stats: ServerStats, handshake_s: float) -> type[H11Protocol]:
    class CountingH11Protocol(H11Protocol):
        """uvicorn's HTTP/1.1 protocol, counting connections and setting TCP_NODELAY on each."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            sock = transport.get_extra_info("socket")
            nodelay = False
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                nodelay = bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            stats.count_connection(nodelay=nodelay)
            super().connection_made(transport)
            if handshake_s > 0:  # a remote API's TCP + TLS set-up, which loopback does not have
                transport.pause_reading()
                self.loop.call_later(handshake_s, self._end_handshake)

        def _end_handshake(self) -> None:
            if not self.transport.is_closing():
                self.transport.resume_reading()

    return CountingH11Protocol


def make_server(state: ServerState, *, backlog: int = DEFAULT_BACKLOG, log_level: str = "warning",
                handshake_s: float = 0.0) -> uvicorn.Server:
    """A uvicorn server for ``state``'s app; start it with ``server.run(sockets=[sock])``.

    ``handshake_s`` (wall seconds, not scaled) holds back the first request of every new
    connection, as the TCP and TLS handshakes with a remote API would: over the internet a new
    connection costs about two round trips before the request leaves, on loopback almost nothing.
    """
    if handshake_s < 0:
        raise ConfigError(f"handshake_s must not be negative, got {handshake_s}")
    config = uvicorn.Config(
        create_app(state=state), http=_counting_protocol(state.stats, handshake_s), backlog=backlog,
        lifespan="off", access_log=False,  # uvicorn's access log prints query strings; ours does not
        log_config=None, log_level=log_level, timeout_keep_alive=KEEP_ALIVE_S)
    return uvicorn.Server(config)


def serve(config: ServerConfig | None = None, *, host: str = DEFAULT_HOST, port: int = 0,
          allow_remote: bool = False, backlog: int = DEFAULT_BACKLOG, log_level: str = "warning",
          handshake_s: float = 0.0, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the simulated providers until interrupted; ``on_ready(url)`` runs once listening."""
    check_host(host, allow_remote=allow_remote)
    state = ServerState(config)
    sock = bind_socket(host, port, backlog=backlog)
    server = make_server(state, backlog=backlog, log_level=log_level, handshake_s=handshake_s)
    if on_ready is not None:
        on_ready(base_url(sock))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


@contextlib.contextmanager
def serve_in_thread(config: ServerConfig | None = None, *, state: ServerState | None = None,
                    host: str = DEFAULT_HOST, port: int = 0, backlog: int = DEFAULT_BACKLOG,
                    allow_remote: bool = False, handshake_s: float = 0.0,
                    start_timeout_s: float = 10.0) -> Iterator[str]:
    """Run a server in a background thread on a free port; yield its base URL, stop it on exit."""
    check_host(host, allow_remote=allow_remote)
    if state is None:
        state = ServerState(config)
    sock = bind_socket(host, port, backlog=backlog)
    server = make_server(state, backlog=backlog, handshake_s=handshake_s)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"cfopt-serve-{sock.getsockname()[1]}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the cfopt server thread did not start")
            time.sleep(0.005)
        yield base_url(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def faults_from_rate(rate: float, kinds: str = "rate_limited,overloaded,server_error",
                     retry_after_s: float = 2.0) -> Faults:
    """``Faults`` failing ``rate`` of calls, split evenly between ``kinds`` (comma-separated).

    >>> faults_from_rate(0.3, "overloaded,server_error")
    Faults(rate_limited=0.0, overloaded=0.15, server_error=0.15, timeout=0.0, retry_after_s=2.0, timeout_s=60.0, slowdown=1.0)
    """
    names = [k.strip() for k in kinds.split(",") if k.strip()]
    unknown = sorted(set(names) - set(FAULT_KINDS))
    if unknown or not names:
        raise ConfigError(f"unknown fault kind(s) {unknown or kinds!r}; known: {', '.join(FAULT_KINDS)}")
    return Faults(retry_after_s=retry_after_s, **{k: rate / len(names) for k in names})


def serve_command(args: argparse.Namespace) -> int:
    """``cfopt serve``: build the config from the command line and serve until interrupted."""
    config = ServerConfig(seed=args.seed, profile=args.profile, time_scale=args.time_scale,
                          faults=faults_from_rate(args.fault_rate, args.fault_kinds, args.retry_after),
                          max_body_bytes=args.max_body_bytes,
                          rate_tier=getattr(args, "rate_tier", None),
                          speeds=getattr(args, "speeds", None))
    check_host(args.host, allow_remote=args.allow_remote)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def ready(url: str) -> None:
        # One line on stdout that scripts (and benchmarks/bench_pool.py) read to find the port.
        print(f"cfopt serve: listening on {url} ({config!r})", flush=True)

    serve(config, host=args.host, port=args.port, allow_remote=args.allow_remote,
          backlog=args.backlog, log_level=args.log_level,
          handshake_s=getattr(args, "handshake_ms", 0.0) / 1000, on_ready=ready)
    return 0
