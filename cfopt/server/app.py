"""The ASGI app: every route of the simulated providers, their errors, counters and access log.

Routes (the wire formats of the real APIs; see each module):

    POST /v1/messages                         Claude Messages, whole or streamed (anthropic.py)
    POST /v1/messages/count_tokens            input tokens of a Messages request
    POST /v1/messages/batches                 Message Batches: create, list, retrieve, cancel,
    GET  /v1/messages/batches[/{id}[/results]]  results as JSON lines (batches.py)
    POST /v1/messages/batches/{id}/cancel
    DELETE /v1/messages/batches/{id}
    GET  /v1/models[/{model_id}]              the Models API: exactly the models accepted (models.py)
    POST /fal/{endpoint}                      fal.ai queue: submit, status, result, cancel (fal.py)
    GET  /fal/{endpoint}/requests/{id}[/status]
    PUT  /fal/{endpoint}/requests/{id}/cancel
    GET  /unsplash/search/photos              Unsplash photo search (unsplash.py)
    GET  /_cfopt/stats                        what reached the server: connections, requests, cost
    POST /_cfopt/faults                       make the next calls fail: {"fail_next": [...]}
    GET  /_cfopt/health                       {"ok": true}
    GET  /metrics                             Prometheus text format (metrics.py)

``/_cfopt/*`` needs an API key like every other route (the server's own, when it has one);
at most ``ServerConfig.max_pending_faults`` planned faults wait at once.

Every answer, errors included, leaves through ``Guard``: it adds the request id, counts the
request, and turns an exception nobody expected into a 500 in the API's shape that closes the
connection (``Connection: close``), never a reset. A request whose client went away, or that
the connection layer timed out (``run.py``), is counted as such, not as a status. The access
log (logger ``cfopt.server``) writes method, path without its query string, status and time:
never a header, never a body, so API keys cannot reach it.

>>> from starlette.testclient import TestClient
>>> app = create_app(ServerConfig(time_scale=1000))
>>> with TestClient(app) as client:
...     r = client.post("/v1/messages", json={"model": "haiku", "max_tokens": 10})
>>> r.status_code, r.json()["error"]["type"]
(401, 'authentication_error')
"""
from __future__ import annotations

import logging
import time
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import CfoptError
from . import anthropic, batches, fal, metrics, models, unsplash
from .config import ServerConfig
from .state import ENDED_BY, ServerState
from .wire import WireError, error_response, read_json, require_key

__all__ = ["create_app", "LOGGER_NAME"]

LOGGER_NAME = "cfopt.server"
MAX_FAULTS_PER_CALL = 100
log = logging.getLogger(LOGGER_NAME)


def _style(path: str) -> str:
    return "fal" if path.startswith("/fal/") else "unsplash" if path.startswith("/unsplash/") else "anthropic"


async def _wire_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WireError)
    metrics.count_error(request, exc.error_type)
    return error_response(exc, request)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    message = "not found" if exc.status_code == 404 else str(exc.detail).lower()
    metrics.count_error(request, kind)
    return error_response(WireError(exc.status_code, kind, f"{message}: {request.url.path}",
                                    style=_style(request.url.path)), request)


async def stats(request: Request) -> Response:
    """``GET /_cfopt/stats``: the server's counters, and what it keeps in memory."""
    state: ServerState = request.app.state.cfopt
    require_key(request, state.config.api_key)
    return JSONResponse(dict(state.stats.snapshot(), pending_faults=state.fault_plan.pending(),
                             retained={"batches": len(state.batches),
                                       "batch_requests": state.batches.total,
                                       "fal_jobs": len(state.fal_jobs)},
                             clock_s=round(state.clock.now(), 6),
                             time_scale=state.config.time_scale))


async def faults(request: Request) -> Response:
    """``POST /_cfopt/faults``: ``{"provider": "anthropic", "fail_next": ["overloaded"],
    "retry_after_s": 1.0}`` queues failures; ``{"clear": true}`` drops them."""
    state: ServerState = request.app.state.cfopt
    require_key(request, state.config.api_key)
    body = await read_json(request, state.config.max_body_bytes)
    if not isinstance(body, dict):
        raise WireError(400, "invalid_request_error", "request body must be a JSON object")
    kinds = body.get("fail_next", [])
    provider = body.get("provider", "anthropic")
    retry_after = body.get("retry_after_s", 1.0)
    if not isinstance(kinds, list) or not isinstance(provider, str) \
            or provider not in ("anthropic", "fal", "unsplash"):
        raise WireError(400, "invalid_request_error",
                        "fail_next: a list of fault kinds; provider: anthropic, fal or unsplash")
    if len(kinds) > MAX_FAULTS_PER_CALL:
        raise WireError(400, "invalid_request_error",
                        f"fail_next: at most {MAX_FAULTS_PER_CALL} faults per call, got {len(kinds):,}")
    if isinstance(retry_after, bool) or not isinstance(retry_after, (int, float)):
        raise WireError(400, "invalid_request_error", "retry_after_s: a number of seconds")
    if body.get("clear"):
        state.fault_plan.clear()
    try:
        state.fault_plan.add(kinds, provider=provider, retry_after_s=float(retry_after))
    except CfoptError as e:
        raise WireError(400, "invalid_request_error", str(e)) from None
    return JSONResponse({"pending_faults": state.fault_plan.pending()})


async def health(request: Request) -> Response:
    require_key(request, request.app.state.cfopt.config.api_key)
    return JSONResponse({"ok": True})


class Guard:
    """ASGI middleware around every route: request id, counters, the access log, and the last
    word on errors (a 500 nobody expected closes the connection cleanly)."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0, status, started = time.perf_counter(), 0, False
        request_id = self.state.new_id("req_")
        scope.setdefault("state", {})["request_id"] = request_id  # error bodies carry it too

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except ClientDisconnect:
            scope.setdefault(ENDED_BY, "client_disconnect")
        except Exception as exc:
            # The message stays generic (an exception's text could quote a request body), and
            # the answer says the connection ends: the client must not reuse it.
            log.error("unexpected %s on %s %s", type(exc).__name__, scope["method"], scope["path"])
            self.state.stats.count_internal_error()
            metrics.count_error(Request(scope), "api_error")
            if not started:
                path = scope["path"]
                style = "fal" if path.startswith("/fal/") else \
                    "unsplash" if path.startswith("/unsplash/") else "anthropic"
                answer = error_response(WireError(500, "api_error", "internal server error",
                                                  style=style, close=True), Request(scope))
                await answer(scope, receive, send_wrapper)
            # else a stream broke off mid-way: uvicorn closes the connection, nothing to add
        finally:
            route = getattr(scope.get("endpoint"), "__name__", "unrouted")
            ended_by = scope.get(ENDED_BY)
            if ended_by is not None:
                self.state.stats.count_unanswered(ended_by, route)
                log.info('%s "%s %s" %s %.1f ms', request_id, scope["method"], scope["path"],
                         ended_by, (time.perf_counter() - t0) * 1000)
            else:
                self.state.stats.count_request(route, status or 500)
                log.info('%s "%s %s" %d %.1f ms', request_id, scope["method"], scope["path"],
                         status or 500, (time.perf_counter() - t0) * 1000)


def _routes() -> list[Route]:
    return [
        Route("/v1/messages", anthropic.messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", anthropic.count_tokens, methods=["POST"]),
        Route("/v1/messages/batches", batches.create_batch, methods=["POST"]),
        Route("/v1/messages/batches", batches.list_batches, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", batches.retrieve_batch, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}/cancel", batches.cancel_batch, methods=["POST"]),
        Route("/v1/messages/batches/{batch_id}/results", batches.batch_results, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", batches.delete_batch, methods=["DELETE"]),
        *models.routes(),
        *fal.routes(),
        *unsplash.routes(),
        Route("/_cfopt/stats", stats, methods=["GET"]),
        Route("/_cfopt/faults", faults, methods=["POST"]),
        Route("/_cfopt/health", health, methods=["GET"]),
    ]


def create_app(config: ServerConfig | None = None, *, state: ServerState | None = None) -> Starlette:
    """A Starlette app serving the simulated providers (pass ``state`` to share or inspect it)."""
    if state is None:
        state = ServerState(config)
    elif config is not None and config != state.config:
        raise ValueError("pass either config or a state built from it, not two different ones")
    handlers: dict[Any, Any] = {WireError: _wire_error, HTTPException: _http_error}
    app = Starlette(routes=_routes(), exception_handlers=handlers)
    app.state.cfopt = state
    app.add_middleware(Guard, state=state)   # inside HttpMetrics: it counts Guard's answers
    metrics.install(app, state)   # GET /metrics and its HTTP counters
    return app
