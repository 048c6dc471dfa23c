"""What ``CfoptClient`` and ``AsyncCfoptClient`` share: request bodies, key handling, pool stats, errors.

``_Base`` builds the requests both clients send, reads the API key (``api_key=`` or
``ANTHROPIC_API_KEY``) and counts requests and TCP connections (``PoolStats``). ``error_for``
maps an error response to its ``cfopt.errors`` type by status; ``_transport_errors`` does the
same for httpx's network errors, and ``_SSE`` turns server-sent event lines into dicts. The
public names are re-exported from ``cfopt.latency.client``; import them from there.

>>> PoolStats(requests=3, connections_opened=1)
PoolStats(requests=3, connections_opened=1, reused=2)
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass
from typing import Any, Iterator

import httpx

from .pool import KEEPALIVE_S, MAX_KEEPALIVE, PoolStats

from ..errors import (AuthenticationError, InvalidRequest, NotFound, Overloaded, ProviderError,
                     ProviderTimeout, RateLimited, ServerError)

# Many connections for calls that wait seconds, few idle ones: httpcore checks every pooled
# connection whenever it assigns a request, so a large idle pool costs CPU per call
# (benchmarks/bench_pool.py measures it).
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=MAX_KEEPALIVE,
                              keepalive_expiry=KEEPALIVE_S)
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)   # long answers stream for minutes
API_KEY_ENV = "ANTHROPIC_API_KEY"   # read when no api_key is passed, as Anthropic's SDK does
ANTHROPIC_VERSION = "2023-06-01"
_ERRORS: dict[int, type[ProviderError]] = {
    400: InvalidRequest, 401: AuthenticationError, 404: NotFound, 413: InvalidRequest,
    422: InvalidRequest, 500: ServerError, 504: ProviderTimeout, 529: Overloaded}


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
        body: dict[str, Any] = {"model": api_model_id(model),
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


def api_model_id(name: str) -> str:
    """The model ID the real API accepts for ``name``: cfopt's nicknames ("haiku") resolved.

    The API refuses nicknames, so the client sends IDs; a name the catalog does not know is
    sent as it is (the server answers 404 for it).
    """
    from ..pricing import load_catalog
    try:
        return load_catalog().model(name).id
    except Exception:   # ConfigError: not a catalog name; let the server judge it
        return name
