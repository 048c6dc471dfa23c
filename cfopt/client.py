"""cfopt's own HTTP client for provider endpoints: one pooled httpx client, typed errors, pool stats.

``CfoptClient`` (sync) and ``AsyncCfoptClient`` (asyncio) speak the wire formats that
``cfopt serve`` serves and the real APIs use: Anthropic Messages (whole, streamed, token counts,
Message Batches), fal.ai's queue and Unsplash search. Each keeps one ``httpx`` client with a
connection pool (``limits``), so calls reuse warm connections instead of opening one per call.
``pool_stats()`` counts requests and TCP connections really opened (from httpcore's trace
events), so "pooled vs not" is a measured figure, not a belief.

Answers are the APIs' JSON as dicts; failures raise ``cfopt.errors`` types by status (429 ->
``RateLimited`` with ``retry_after`` in seconds, 529 -> ``Overloaded``, ...), so the same retry
code works against the simulation and the real thing. The API key comes from ``api_key=`` or,
as with Anthropic's own SDK, from the ``ANTHROPIC_API_KEY`` environment variable; it goes in a
header and nowhere else: not in the repr, not in errors, not in logs.

>>> client = CfoptClient("http://127.0.0.1:8000", api_key="sk-planted")
>>> client
CfoptClient(base_url='http://127.0.0.1:8000', api_key='***', limits=Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0))
>>> client.pool_stats()
PoolStats(requests=0, connections_opened=0, reused=0)
>>> client.close()
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterator

import httpx

from .errors import (AuthenticationError, InvalidRequest, NotFound, Overloaded, ProviderError,
                     ProviderTimeout, RateLimited, ServerError)

__all__ = ["CfoptClient", "AsyncCfoptClient", "PoolStats", "DEFAULT_LIMITS", "DEFAULT_TIMEOUT",
           "API_KEY_ENV", "error_for"]

# Many connections for calls that wait seconds, few idle ones: httpcore checks every pooled
# connection whenever it assigns a request, so a large idle pool costs CPU per call
# (benchmarks/bench_pool.py measures it).
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0)
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)   # long answers stream for minutes
API_KEY_ENV = "ANTHROPIC_API_KEY"   # read when no api_key is passed, as Anthropic's SDK does
ANTHROPIC_VERSION = "2023-06-01"
_ERRORS: dict[int, type[ProviderError]] = {
    400: InvalidRequest, 401: AuthenticationError, 404: NotFound, 413: InvalidRequest,
    422: InvalidRequest, 500: ServerError, 504: ProviderTimeout, 529: Overloaded}


@dataclass(frozen=True, slots=True)
class PoolStats:
    """Requests sent and TCP connections opened for them; the rest reused a pooled connection."""

    requests: int
    connections_opened: int

    @property
    def reused(self) -> int:
        return self.requests - self.connections_opened

    def __repr__(self) -> str:
        return (f"PoolStats(requests={self.requests}, connections_opened={self.connections_opened}, "
                f"reused={self.reused})")


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        if isinstance(body.get("error"), dict):
            return str(body["error"].get("message", ""))
        if "detail" in body:
            return str(body["detail"])
        if isinstance(body.get("errors"), list) and body["errors"]:
            return str(body["errors"][0])
    return response.reason_phrase


def _retry_after(headers: httpx.Headers, default: float) -> float:
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            return float(headers[name]) / scale
        except (KeyError, ValueError):
            continue
    return default


def error_for(response: httpx.Response) -> ProviderError:
    """The ``cfopt.errors`` exception for an error ``response`` (429 and Unsplash's 403: rate limits)."""
    status, message = response.status_code, _message(response)
    provider = "fal" if "/fal/" in response.url.path else \
        "unsplash" if "/unsplash/" in response.url.path else "anthropic"
    text = f"{status} from {provider}: {message}"
    if status == 429 or (status == 403 and provider == "unsplash"):
        # Unsplash sends no retry-after: its demo limit rolls over with the hour.
        return RateLimited(text, retry_after=_retry_after(response.headers, 3600.0 if status == 403 else 1.0),
                           provider=provider)
    cls = _ERRORS.get(status, ServerError if status >= 500 else InvalidRequest)
    return cls(text, provider=provider)


def _check(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        raise error_for(response)
    return response


@contextlib.contextmanager
def _transport_errors(base_url: str) -> Iterator[None]:
    """Turn httpx's network errors into cfopt's (a timeout, or a server that cannot be reached)."""
    try:
        yield
    except httpx.TimeoutException as e:
        raise ProviderTimeout(f"no answer from {base_url}: {type(e).__name__}") from None
    except httpx.TransportError as e:
        raise ServerError(f"cannot reach {base_url}: {type(e).__name__}") from None


class _SSE:
    """Server-sent events to dicts, one line at a time."""

    def __init__(self) -> None:
        self.data: list[str] = []

    def feed(self, line: str) -> dict[str, Any] | None:
        if line.startswith("data:"):
            self.data.append(line[5:].lstrip())
        elif not line and self.data:
            event, self.data = json.loads("\n".join(self.data)), []
            if event.get("type") == "error":
                err = event.get("error", {})
                raise (Overloaded if err.get("type") == "overloaded_error" else ServerError)(
                    f"stream error: {err.get('message', '')}", provider="anthropic")
            return event
        return None


class _Base:
    """What both clients share: the requests each method sends."""

    def __init__(self, base_url: str, api_key: str | None, limits: httpx.Limits) -> None:
        if api_key is None:
            api_key = os.environ.get(API_KEY_ENV)
            if api_key is None:
                raise ValueError(f"no API key: pass api_key=... or set {API_KEY_ENV}")
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("api_key must be a non-empty string")
        self.base_url = base_url.rstrip("/")
        self.limits = limits
        self._requests = self._opened = 0
        self._lock = threading.Lock()
        self._headers = {"x-api-key": api_key, "anthropic-version": ANTHROPIC_VERSION}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key='***', limits={self.limits!r})"

    def pool_stats(self) -> PoolStats:
        """Requests sent so far and TCP connections opened for them."""
        with self._lock:
            return PoolStats(self._requests, self._opened)

    def _count(self, event: str) -> None:
        if event == "connection.connect_tcp.complete":
            with self._lock:
                self._opened += 1

    def _count_request(self) -> None:
        with self._lock:
            self._requests += 1

    @staticmethod
    def _message_body(model: str, prompt: str | None, messages: list[dict] | None,
                      max_tokens: int | None, system: str | list | None, **extra: Any) -> dict:
        if (prompt is None) == (messages is None):
            raise ValueError("pass either prompt or messages")
        body: dict[str, Any] = {"model": model,
                                "messages": messages or [{"role": "user", "content": prompt}]}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if system is not None:
            body["system"] = system
        body.update({k: v for k, v in extra.items() if v is not None})
        return body

    @staticmethod
    def _photos(r: httpx.Response) -> dict:
        return dict(r.json(), ratelimit={"limit": r.headers.get("x-ratelimit-limit"),
                                         "remaining": r.headers.get("x-ratelimit-remaining")})


class CfoptClient(_Base):
    """A synchronous client on one pooled ``httpx.Client``."""

    def __init__(self, base_url: str, *, api_key: str | None = None,
                 limits: httpx.Limits = DEFAULT_LIMITS, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, api_key, limits)
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers, limits=limits,
                                  timeout=timeout, transport=transport,
                                  event_hooks={"request": [self._on_request]})

    def _on_request(self, request: httpx.Request) -> None:
        self._count_request()
        request.extensions["trace"] = lambda event, info: self._count(event)

    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        with _transport_errors(self.base_url):
            return _check(self._http.request(method, path, **kw))

    def messages(self, model: str, prompt: str | None = None, *, messages: list[dict] | None = None,
                 max_tokens: int = 1024, system: str | list | None = None, **extra: Any) -> dict:
        """``POST /v1/messages``: the whole answer (a Message as a dict)."""
        body = self._message_body(model, prompt, messages, max_tokens, system, **extra)
        return self._send("POST", "/v1/messages", json=body).json()

    def stream(self, model: str, prompt: str | None = None, *, messages: list[dict] | None = None,
               max_tokens: int = 1024, system: str | list | None = None, **extra: Any) -> Iterator[dict]:
        """``POST /v1/messages`` with ``stream: true``: yield each server-sent event as a dict."""
        body = self._message_body(model, prompt, messages, max_tokens, system, stream=True, **extra)
        with _transport_errors(self.base_url), self._http.stream("POST", "/v1/messages", json=body) as response:
            if response.is_error:
                response.read()
                raise error_for(response)
            sse = _SSE()
            for line in response.iter_lines():
                if (event := sse.feed(line)) is not None:
                    yield event

    def count_tokens(self, model: str, prompt: str | None = None, *,
                     messages: list[dict] | None = None, system: str | list | None = None) -> int:
        """``POST /v1/messages/count_tokens``: input tokens of a request."""
        body = self._message_body(model, prompt, messages, None, system)
        return self._send("POST", "/v1/messages/count_tokens", json=body).json()["input_tokens"]

    def create_batch(self, requests: list[dict]) -> dict:
        """``POST /v1/messages/batches`` with ``[{"custom_id", "params"}, ...]``."""
        return self._send("POST", "/v1/messages/batches", json={"requests": requests}).json()

    def batch(self, batch_id: str) -> dict:
        return self._send("GET", f"/v1/messages/batches/{batch_id}").json()

    def batch_results(self, batch_id: str) -> list[dict]:
        """The results of an ended batch, one dict per request."""
        text = self._send("GET", f"/v1/messages/batches/{batch_id}/results").text
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def fal_submit(self, endpoint: str, **arguments: Any) -> dict:
        """``POST /fal/{endpoint}``: queue a generation; returns request_id and URLs."""
        return self._send("POST", f"/fal/{endpoint}", json=arguments).json()

    def fal_status(self, endpoint: str, request_id: str) -> dict:
        return self._send("GET", f"/fal/{endpoint}/requests/{request_id}/status").json()

    def fal_result(self, endpoint: str, request_id: str) -> dict:
        return self._send("GET", f"/fal/{endpoint}/requests/{request_id}").json()

    def search_photos(self, query: str, *, per_page: int = 10, page: int = 1) -> dict:
        """``GET /unsplash/search/photos``; the rate-limit headers are under ``"ratelimit"``."""
        return self._photos(self._send("GET", "/unsplash/search/photos",
                                       params={"query": query, "per_page": per_page, "page": page}))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "CfoptClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncCfoptClient(_Base):
    """An asyncio client on pooled ``httpx.AsyncClient``s: share it between tasks.

    ``shards`` splits the pool (and ``limits``) over that many ``httpx.AsyncClient``s, used in
    turn. httpcore compares every waiting request with every pooled connection whenever it hands
    out a connection, so one pool of 50 connections with 50 calls in flight costs ~10 ms of CPU
    per call here; ten pools of 5 cost ~3 ms (benchmarks/bench_pool.py).
    """

    def __init__(self, base_url: str, *, api_key: str | None = None,
                 limits: httpx.Limits = DEFAULT_LIMITS, timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None, shards: int = 1) -> None:
        super().__init__(base_url, api_key, limits)
        if not isinstance(shards, int) or shards < 1:
            raise ValueError(f"shards must be a positive integer, got {shards!r}")
        share = httpx.Limits(
            max_connections=None if limits.max_connections is None else -(-limits.max_connections // shards),
            max_keepalive_connections=None if limits.max_keepalive_connections is None
            else -(-limits.max_keepalive_connections // shards),
            keepalive_expiry=limits.keepalive_expiry)
        self._pools = [httpx.AsyncClient(base_url=self.base_url, headers=self._headers,
                                         limits=share if shards > 1 else limits, timeout=timeout,
                                         transport=transport, event_hooks={"request": [self._on_request]})
                       for _ in range(shards)]
        self._turn = itertools.cycle(self._pools)

    @property
    def _http(self) -> httpx.AsyncClient:
        return next(self._turn)  # the pools in turn (one pool: always the same)

    async def _on_request(self, request: httpx.Request) -> None:
        self._count_request()

        async def trace(event: str, info: dict) -> None:  # httpcore awaits async traces
            self._count(event)
        request.extensions["trace"] = trace

    async def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        with _transport_errors(self.base_url):
            return _check(await self._http.request(method, path, **kw))

    async def messages(self, model: str, prompt: str | None = None, *,
                       messages: list[dict] | None = None, max_tokens: int = 1024,
                       system: str | list | None = None, **extra: Any) -> dict:
        """``POST /v1/messages``: the whole answer (a Message as a dict)."""
        body = self._message_body(model, prompt, messages, max_tokens, system, **extra)
        return (await self._send("POST", "/v1/messages", json=body)).json()

    async def stream(self, model: str, prompt: str | None = None, *,
                     messages: list[dict] | None = None, max_tokens: int = 1024,
                     system: str | list | None = None, **extra: Any) -> AsyncIterator[dict]:
        """``POST /v1/messages`` with ``stream: true``: yield each server-sent event as a dict."""
        body = self._message_body(model, prompt, messages, max_tokens, system, stream=True, **extra)
        with _transport_errors(self.base_url):
            async for event in self._events(body):
                yield event

    async def _events(self, body: dict) -> AsyncIterator[dict]:
        async with self._http.stream("POST", "/v1/messages", json=body) as response:
            if response.is_error:
                await response.aread()
                raise error_for(response)
            sse = _SSE()
            async for line in response.aiter_lines():
                if (event := sse.feed(line)) is not None:
                    yield event

    async def count_tokens(self, model: str, prompt: str | None = None, *,
                           messages: list[dict] | None = None, system: str | list | None = None) -> int:
        body = self._message_body(model, prompt, messages, None, system)
        return (await self._send("POST", "/v1/messages/count_tokens", json=body)).json()["input_tokens"]

    async def create_batch(self, requests: list[dict]) -> dict:
        return (await self._send("POST", "/v1/messages/batches", json={"requests": requests})).json()

    async def batch(self, batch_id: str) -> dict:
        return (await self._send("GET", f"/v1/messages/batches/{batch_id}")).json()

    async def batch_results(self, batch_id: str) -> list[dict]:
        text = (await self._send("GET", f"/v1/messages/batches/{batch_id}/results")).text
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    async def fal_submit(self, endpoint: str, **arguments: Any) -> dict:
        return (await self._send("POST", f"/fal/{endpoint}", json=arguments)).json()

    async def fal_status(self, endpoint: str, request_id: str) -> dict:
        return (await self._send("GET", f"/fal/{endpoint}/requests/{request_id}/status")).json()

    async def fal_result(self, endpoint: str, request_id: str) -> dict:
        return (await self._send("GET", f"/fal/{endpoint}/requests/{request_id}")).json()

    async def search_photos(self, query: str, *, per_page: int = 10, page: int = 1) -> dict:
        return self._photos(await self._send("GET", "/unsplash/search/photos",
                                             params={"query": query, "per_page": per_page, "page": page}))

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()

    async def __aenter__(self) -> "AsyncCfoptClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
