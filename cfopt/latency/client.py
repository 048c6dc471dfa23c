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

import itertools
import json
from typing import Any, AsyncIterator, Iterator

import httpx

from ..providers.base import DEFAULT_MAX_TOKENS
from ._client_base import (API_KEY_ENV, DEFAULT_LIMITS, DEFAULT_TIMEOUT, PoolStats, _Base, _check,
                           _SSE, _transport_errors, error_for)

__all__ = ["CfoptClient", "AsyncCfoptClient", "PoolStats", "DEFAULT_LIMITS", "DEFAULT_TIMEOUT",
           "API_KEY_ENV", "error_for"]


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
                 max_tokens: int = DEFAULT_MAX_TOKENS, system: str | list | None = None, **extra: Any) -> dict:
        """``POST /v1/messages``: the whole answer (a Message as a dict)."""
        body = self._message_body(model, prompt, messages, max_tokens, system, **extra)
        return self._send("POST", "/v1/messages", json=body).json()

    def stream(self, model: str, prompt: str | None = None, *, messages: list[dict] | None = None,
               max_tokens: int = DEFAULT_MAX_TOKENS, system: str | list | None = None, **extra: Any) -> Iterator[dict]:
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
                       messages: list[dict] | None = None, max_tokens: int = DEFAULT_MAX_TOKENS,
                       system: str | list | None = None, **extra: Any) -> dict:
        """``POST /v1/messages``: the whole answer (a Message as a dict)."""
        body = self._message_body(model, prompt, messages, max_tokens, system, **extra)
        return (await self._send("POST", "/v1/messages", json=body)).json()

    async def stream(self, model: str, prompt: str | None = None, *,
                     messages: list[dict] | None = None, max_tokens: int = DEFAULT_MAX_TOKENS,
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
