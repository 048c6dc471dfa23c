"""What every route shares on the wire: reading bodies, API keys, and errors in each API's shape.

A route raises ``WireError`` (or lets a ``ProviderError`` escape) and the app turns it into the
answer the real API would give, through one helper, ``error_response``: Anthropic's
``{"type": "error", "error": {"type", "message"}, "request_id": "req_..."}``, fal.ai's
``{"detail": ...}`` or Unsplash's ``{"errors": [...]}``, with the same status and the
``request-id`` header.

Keys are read from ``x-api-key`` or ``Authorization: Bearer|Key|Client-ID``; no error message,
log line or repr ever contains one.

Every error answer goes through ``error_response`` (``error_bytes`` renders the same answer for
the connection layer, which has no request to answer through starlette). An error that ends
the connection (``close=True``: a request too slow or malformed, a server fault) says so with
``Connection: close``, so a client never reuses a connection the server is about to drop.

Bodies are checked before they are parsed (size, then nesting depth) and after (numbers that
are not JSON numbers, lone surrogates): every body gets a 4xx in the API's own shape.

>>> e = WireError(404, "not_found_error", "model: claude-nope")
>>> e.body("req_011")
{'type': 'error', 'error': {'type': 'not_found_error', 'message': 'model: claude-nope'}, 'request_id': 'req_011'}
>>> WireError(404, "not_found_error", "unknown model", style="fal").body()
{'detail': 'unknown model'}
>>> retry_headers(RateLimited("slow down", retry_after=30.0), time_scale=60)
{'retry-after': '1', 'retry-after-ms': '500'}
"""
from __future__ import annotations

import hmac
import json
import math
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..errors import ProviderError, RateLimited
from ..jsonlimits import MAX_DEPTH, lone_surrogate, too_deep

__all__ = ["WireError", "read_json", "api_key", "require_key", "require_anthropic", "page_params",
           "retry_headers", "error_response", "error_bytes", "provider_error", "request_id_of", "page",
           "STYLES"]

STYLES = ("anthropic", "fal", "unsplash")
_AUTH_SCHEMES = ("bearer", "key", "client-id")  # Anthropic SDK, fal.ai, Unsplash


class WireError(Exception):
    """An HTTP error answer: status, Anthropic's error type, a message, extra headers."""

    def __init__(self, status: int, error_type: str, message: str, *,
                 headers: dict[str, str] | None = None, style: str = "anthropic",
                 close: bool = False) -> None:
        if style not in STYLES:
            raise ValueError(f"unknown error style {style!r}; known: {', '.join(STYLES)}")
        self.status, self.error_type, self.message = status, error_type, message
        self.headers, self.style, self.close = dict(headers or {}), style, close
        super().__init__(f"{status} {error_type}: {message}")

    def body(self, request_id: str = "") -> dict[str, Any]:
        """The JSON body the real API sends for this error (Anthropic's carries the request id)."""
        if self.style == "fal":
            return {"detail": self.message}
        if self.style == "unsplash":
            return {"errors": [self.message]}
        body: dict[str, Any] = {"type": "error",
                                "error": {"type": self.error_type, "message": self.message}}
        if request_id:
            body["request_id"] = request_id
        return body


def request_id_of(request: Request | None) -> str:
    """The id the app gave this request (``scope["state"]["request_id"]``), or ""."""
    if request is None:
        return ""
    return str(request.scope.get("state", {}).get("request_id", ""))


def error_response(e: WireError, request: Request | str | None = None) -> Response:
    """The one way an error is answered: body in the API's shape, status, headers, request id.

    ``request`` is the request being answered (its id is read from it) or the id itself.
    Unsplash's rate-limit answer is plain text, as the real one is.
    """
    request_id = request if isinstance(request, str) else request_id_of(request)
    headers = dict(e.headers)
    if request_id and isinstance(request, str):   # in the app, the middleware sets the header
        headers["request-id"] = request_id
    if e.close:
        headers["connection"] = "close"
    if e.style == "unsplash" and e.status == 403:
        return PlainTextResponse(e.message, status_code=403, headers=headers)
    return JSONResponse(e.body(request_id), status_code=e.status, headers=headers)


def error_bytes(e: WireError, request_id: str = "") -> bytes:
    """``error_response(e, request_id)`` as raw HTTP/1.1 bytes, ending the connection.

    >>> error_bytes(WireError(408, "timeout_error", "slow"), "req_1").split(b"\\r\\n")[0]
    b'HTTP/1.1 408 Request Timeout'
    """
    response = error_response(WireError(e.status, e.error_type, e.message, headers=e.headers,
                                        style=e.style, close=True), request_id)
    head = [f"HTTP/1.1 {e.status} {HTTPStatus(e.status).phrase}".encode()]
    head += [name + b": " + value for name, value in response.raw_headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + bytes(response.body)


def retry_headers(e: ProviderError, *, time_scale: float) -> dict[str, str]:
    """``retry-after`` headers in wall-clock time: a simulated wait shrinks with the time scale."""
    if not isinstance(e, RateLimited) or not math.isfinite(e.retry_after):
        return {}
    real_s = max(0.0, e.retry_after) / time_scale
    # retry-after must be whole seconds; the SDK prefers the precise retry-after-ms when present.
    return {"retry-after": str(max(1, math.ceil(real_s))), "retry-after-ms": str(round(real_s * 1000))}


def provider_error(e: ProviderError, *, time_scale: float, style: str = "anthropic") -> WireError:
    """The wire error for a simulated provider failure (status and type come from the error)."""
    message = str(e) or e.error_type
    return WireError(e.status, e.error_type, message, style=style,
                     headers=retry_headers(e, time_scale=time_scale))


class _NotJSON(ValueError):
    """A constant Python's parser accepts and JSON has not (NaN, Infinity)."""


def _no_constant(name: str) -> Any:
    raise _NotJSON(f"{name} is not a JSON number")


async def read_json(request: Request, limit: int, *, style: str = "anthropic") -> Any:
    """The request's JSON body; 413 past ``limit`` bytes (read no further), 400 if not JSON.

    Checked in order, each failure a 4xx in the API's shape: the declared size, the size read,
    the nesting depth (before parsing: Python's parser recurses per level), the JSON itself
    (NaN, Infinity and integers past Python's 4,300 digits included), lone surrogates.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise WireError(413, "request_too_large",
                        f"request body of {int(declared):,} bytes exceeds the {limit:,}-byte limit",
                        style=style)   # uvicorn discards the rest; the connection stays usable
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # a chunked body has no content-length: stop reading here
            raise WireError(413, "request_too_large",
                            f"request body exceeds the {limit:,}-byte limit", style=style)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise WireError(400, "invalid_request_error", "request body is empty; expected JSON",
                        style=style)
    deep = too_deep(raw, MAX_DEPTH)
    if deep is not None:
        raise WireError(400, "invalid_request_error", f"request body nests deeper than {MAX_DEPTH} "
                        f"levels (at byte {deep})", style=style)
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        # The decoder's message names a position, never the body: the body may hold secrets.
        raise WireError(400, "invalid_request_error",
                        f"request body is not valid JSON: {err.__class__.__name__} at byte "
                        f"{getattr(err, 'pos', getattr(err, 'start', 0))}", style=style) from None
    except ValueError as err:  # NaN / Infinity, or an integer past Python's digit limit
        why = str(err) if isinstance(err, _NotJSON) else "a number too long to read"
        raise WireError(400, "invalid_request_error", f"request body is not valid JSON: {why}",
                        style=style) from None
    where = lone_surrogate(body)
    if where is not None:
        raise WireError(400, "invalid_request_error",
                        f"{where or 'body'}: a lone surrogate (half of a UTF-16 pair) is not text",
                        style=style)
    return body


def api_key(request: Request) -> str | None:
    """The API key the client sent, from ``x-api-key`` or ``Authorization``; None if none."""
    key = request.headers.get("x-api-key", "").strip()
    if key:
        return key
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() in _AUTH_SCHEMES and value.strip():
        return value.strip()
    if request.url.path.startswith("/unsplash/"):
        return request.query_params.get("client_id") or None  # Unsplash also takes ?client_id=
    return None


def require_key(request: Request, expected: str | None, *, style: str = "anthropic") -> None:
    """Refuse a request without a key (or with the wrong one, when ``expected`` is set): 401."""
    key = api_key(request)
    if key is None:
        raise WireError(401, "authentication_error",
                        "no API key: send x-api-key or Authorization: Bearer", style=style)
    if expected is not None and not hmac.compare_digest(key.encode(), expected.encode()):
        raise WireError(401, "authentication_error", "invalid x-api-key", style=style)


def require_anthropic(request: Request, expected: str | None) -> None:
    """What every Anthropic route checks first: an API key, then the ``anthropic-version`` header.

    The real API refuses a request without ``anthropic-version`` with 400 (the SDK always sends
    ``2023-06-01``).
    """
    require_key(request, expected)
    if not request.headers.get("anthropic-version", "").strip():
        raise WireError(400, "invalid_request_error", "anthropic-version: header is required")


def page_params(request: Request) -> tuple[int, str | None, str | None]:
    """``limit`` (1 to 1000, default 20), ``after_id`` and ``before_id`` of a list request."""
    raw = request.query_params.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise WireError(400, "invalid_request_error", "limit: an integer from 1 to 1000")
    after, before = request.query_params.get("after_id"), request.query_params.get("before_id")
    if after and before:
        raise WireError(400, "invalid_request_error", "pass after_id or before_id, not both")
    return int(raw), after or None, before or None


def page(items: list[Any], ids: list[str], limit: int, after: str | None,
         before: str | None) -> dict[str, Any]:
    """One page of ``items`` (in list order) in the Anthropic list shape, cursor-paged by id.

    >>> page(["a", "b", "c"], ["1", "2", "3"], 2, None, None)
    {'data': ['a', 'b'], 'has_more': True, 'first_id': '1', 'last_id': '2'}
    >>> page(["a", "b", "c"], ["1", "2", "3"], 2, "2", None)["data"]
    ['c']
    >>> page(["a", "b", "c"], ["1", "2", "3"], 1, None, "3")["data"]
    ['b']
    """
    for cursor in (after, before):
        if cursor is not None and cursor not in ids:
            raise WireError(400, "invalid_request_error", f"unknown cursor id {cursor!r}")
    if after is not None:
        lo = ids.index(after) + 1
        chosen = list(range(lo, min(len(ids), lo + limit)))
        more = lo + limit < len(ids)
    elif before is not None:
        hi = ids.index(before)
        chosen = list(range(max(0, hi - limit), hi))
        more = hi - limit > 0
    else:
        chosen = list(range(min(limit, len(ids))))
        more = limit < len(ids)
    return {"data": [items[i] for i in chosen], "has_more": more,
            "first_id": ids[chosen[0]] if chosen else None,
            "last_id": ids[chosen[-1]] if chosen else None}
