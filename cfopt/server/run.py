"""Run the app under uvicorn: loopback by default, TCP_NODELAY, a deep listen backlog.

Two socket settings decide how a small local server feels under load (measured on these
machines, see ENVIRONMENT.md): without TCP_NODELAY a keep-alive request waits ~40 ms for Nagle's
algorithm and delayed ACKs (3 ms with it); with a listen backlog of 5, fifty clients connecting
at once see connection errors. So the listening socket is made here, with ``backlog`` (1024 by
default), and every accepted connection gets TCP_NODELAY and is counted (``connections_opened``
in ``GET /_cfopt/stats``): a benchmark can check how many connections a client really opened.

The protocol also bounds slow clients, which uvicorn leaves alone: a request's head must
arrive within ``ServerConfig.header_timeout_s`` of its first byte (or of the connection's
start), its body within ``body_timeout_s`` of the head. Past either, the client gets a 408 in
Anthropic's error shape with ``Connection: close``; so does a request h11 cannot parse (400).
The server then stops sending, reads and drops what the client still sends for a moment
(``LINGER_S``), and closes: closing on unread bytes would send a reset that can destroy the
answer before the client reads it. A client that goes away before its answer is counted as a
client disconnect (``GET /_cfopt/stats``: ``unanswered``), never as a 500.

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

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .app import create_app
from ..errors import ConfigError
from ..providers.base import Faults
from .config import DEFAULT_BACKLOG, DEFAULT_HOST, ServerConfig, check_host
from .state import ENDED_BY, FAULT_KINDS, ServerState
from .wire import WireError, error_bytes

__all__ = ["bind_socket", "make_server", "serve", "serve_in_thread", "base_url", "serve_command",
           "faults_from_rate"]

KEEP_ALIVE_S = 30  # uvicorn's default (5 s) would drop a pooled connection between bursts
LINGER_S = 2.0     # after a closing error: read and drop the client's bytes this long, then close


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


def _counting_protocol(state: ServerState, handshake_s: float) -> type[H11Protocol]:
    stats, config = state.stats, state.config

    class CountingH11Protocol(H11Protocol):
        """uvicorn's HTTP/1.1 protocol, counting connections, setting TCP_NODELAY on each, and
        bounding how long a client may take to send a request's head and body."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            sock = transport.get_extra_info("socket")
            nodelay = False
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                nodelay = bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            stats.count_connection(nodelay=nodelay)
            self._head_timer: asyncio.TimerHandle | None = None
            self._body_timer: asyncio.TimerHandle | None = None
            self._lingering = False
            super().connection_made(transport)
            self._head_timer = self.loop.call_later(config.header_timeout_s, self._too_slow, "header")
            if handshake_s > 0:  # a remote API's TCP + TLS set-up, which loopback does not have
                transport.pause_reading()
                self.loop.call_later(handshake_s, self._end_handshake)

        def _end_handshake(self) -> None:
            if not self.transport.is_closing():
                self.transport.resume_reading()

        def data_received(self, data: bytes) -> None:
            if self._lingering:
                return  # the answer is sent and the connection is ending: drop what comes
            super().data_received(data)
            if self.transport.is_closing():
                return
            # Between requests (h11 IDLE) bytes are the start of a head: it must be complete
            # within header_timeout_s of them. A head in, a body expected: body_timeout_s.
            waiting = self.conn.their_state
            if waiting is h11.IDLE and (self.cycle is None or self.cycle.response_complete):
                if self._head_timer is None:
                    self._head_timer = self.loop.call_later(config.header_timeout_s,
                                                            self._too_slow, "header")
            else:
                self._cancel("_head_timer")
            if waiting is h11.SEND_BODY:
                if self._body_timer is None:
                    self._body_timer = self.loop.call_later(config.body_timeout_s,
                                                            self._too_slow, "body")
            else:
                self._cancel("_body_timer")

        def _cancel(self, name: str) -> None:
            timer = getattr(self, name, None)
            if timer is not None:
                timer.cancel()
                setattr(self, name, None)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._cancel("_body_timer")   # answered (a 413 before the body ended): uvicorn drops the rest

        def _too_slow(self, part: str) -> None:
            setattr(self, f"_{'head' if part == 'header' else part}_timer", None)
            if self.transport.is_closing() or self._lingering:
                return
            cycle = self.cycle
            if part == "body" and (cycle is None or cycle.response_started):
                self._end(None)   # answered already: only the body's tail is late; just close
                return
            request_id = ""
            if part == "body":   # the app counts it with its route when its read ends
                cycle.scope[ENDED_BY] = "body_timeout"  # type: ignore[index]
                request_id = cycle.scope.get("state", {}).get("request_id", "")
            else:                # no request yet: nothing else will count it
                stats.count_unanswered("header_timeout")
            limit = config.header_timeout_s if part == "header" else config.body_timeout_s
            self._end(WireError(408, "timeout_error",
                                f"request {part} not received within {limit:g} s"), request_id)

        def send_400_response(self, msg: str) -> None:  # h11 could not parse the request
            self._end(WireError(400, "invalid_request_error", "malformed HTTP request"))

        def _end(self, error: WireError | None, request_id: str = "") -> None:
            """Answer ``error`` (if any) with Connection: close, drop the client's bytes for
            LINGER_S, then close: closing on unread bytes would reset the answer away."""
            self._cancel("_head_timer")
            self._cancel("_body_timer")
            self._unset_keepalive_if_required()
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.disconnected = True   # the app's answer, if any, goes nowhere
                self.cycle.message_event.set()
            if error is not None:
                self.transport.write(error_bytes(error, request_id or state.new_id("req_")))
            self._lingering = True
            self.transport.resume_reading()   # read (and drop) even if flow control paused it
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel("_head_timer")
            self._cancel("_body_timer")
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete and not self._lingering:
                cycle.scope.setdefault(ENDED_BY, "client_disconnect")  # type: ignore[union-attr]
            super().connection_lost(exc)

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
        create_app(state=state), http=_counting_protocol(state, handshake_s), backlog=backlog,
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
    retention = {name: value for name, value in (("batch_retention_s", args.batch_retention),
                                                 ("fal_retention_s", args.fal_retention))
                 if value is not None}
    config = ServerConfig(seed=args.seed, profile=args.profile, time_scale=args.time_scale,
                          faults=faults_from_rate(args.fault_rate, args.fault_kinds, args.retry_after),
                          max_body_bytes=args.max_body_bytes,
                          rate_tier=getattr(args, "rate_tier", None),
                          speeds=getattr(args, "speeds", None), api_key=args.api_key,
                          header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout,
                          max_retained=args.max_retained, **retention)
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
