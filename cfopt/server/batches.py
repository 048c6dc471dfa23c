"""Message Batches: many Messages requests answered later at the batch discount.

``POST /v1/messages/batches`` takes ``{"requests": [{"custom_id", "params"}, ...]}``; each
request is decided by the simulated Claude at once (as a batch call, so priced at the batch
discount) and becomes visible when its processing time has passed on the server's clock. The
batch reads ``in_progress`` until its last request is done, then ``ended`` with its
``results_url``; ``GET .../results`` streams JSON lines ``{"custom_id", "result": {...}}``.
As on the real API, request counts show everything as ``processing`` until the batch ends, a
request whose params are wrong does not fail the batch (its result is ``errored``), a cancel
moves the batch to ``canceling`` and then ``ended`` with unfinished requests ``canceled``, and
anything unfinished 24 hours after creation ``expired``. ``GET /v1/messages/batches`` pages
newest first with ``limit``, ``after_id`` and ``before_id`` (the SDK's auto-paging follows
``last_id``); ``DELETE /v1/messages/batches/{id}`` removes an ended batch and its results (a
batch still in progress must be canceled first: 400).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import ProviderError
from ..providers.base import Result
from .anthropic import message_json, parse_message
from .state import ServerState
from .wire import WireError, page, page_params, read_json, require_anthropic

__all__ = ["Batch", "BatchItem", "create_batch", "retrieve_batch", "list_batches",
           "cancel_batch", "delete_batch", "batch_results", "EXPIRY_S", "CANCEL_S"]

EXPIRY_S = 24 * 3600.0   # the real API expires what is unfinished after 24 hours
CANCEL_S = 1.0           # how long ``canceling`` lasts before the batch ends
MAX_REQUESTS = 100_000   # the real API's cap per batch
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass
class BatchItem:
    """One request of a batch: when it is done, and its answer or its error."""

    custom_id: str
    done_at: float
    result: Result | None = None
    error: dict[str, Any] | None = None   # Anthropic's error object {type, message}
    message_id: str = ""


@dataclass
class Batch:
    """A batch's requests and its timeline on the server clock."""

    id: str
    created_at: float
    items: list[BatchItem] = field(repr=False)
    ends_at: float = 0.0
    cancel_at: float | None = None

    def outcome(self, item: BatchItem) -> str:
        """succeeded, errored, canceled or expired (meaningful once the batch has ended)."""
        if self.cancel_at is not None and item.done_at > self.cancel_at:
            return "canceled"
        if item.done_at > self.created_at + EXPIRY_S:
            return "expired"
        return "errored" if item.error is not None else "succeeded"

    def status(self, now: float) -> str:
        if now >= self.ends_at:
            return "ended"
        return "canceling" if self.cancel_at is not None else "in_progress"

    def to_json(self, state: ServerState, base_url: str) -> dict[str, Any]:
        """The batch object in the Message Batches API's shape."""
        now = state.clock.now()
        status = self.status(now)
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if status == "ended":
            for item in self.items:
                counts[self.outcome(item)] += 1
        else:
            counts["processing"] = len(self.items)
        ts = state.timestamp
        return {
            "id": self.id, "type": "message_batch", "processing_status": status,
            "request_counts": counts, "created_at": ts(self.created_at),
            "expires_at": ts(self.created_at + EXPIRY_S),
            "ended_at": ts(self.ends_at) if status == "ended" else None,
            "archived_at": None,
            "cancel_initiated_at": ts(self.cancel_at) if self.cancel_at is not None else None,
            "results_url": f"{base_url}v1/messages/batches/{self.id}/results" if status == "ended" else None,
        }


def _item(state: ServerState, now: float, req: Any, i: int, seen: set[str]) -> BatchItem:
    if not isinstance(req, dict):
        raise WireError(400, "invalid_request_error", f"requests.{i}: expected an object")
    cid = req.get("custom_id")
    if not isinstance(cid, str) or not _CUSTOM_ID.match(cid):
        raise WireError(400, "invalid_request_error",
                        f"requests.{i}.custom_id: 1 to 64 letters, digits, '_' or '-'")
    if cid in seen:
        raise WireError(400, "invalid_request_error", f"requests.{i}.custom_id: {cid!r} is not unique")
    seen.add(cid)
    params = req.get("params")
    try:
        if isinstance(params, dict) and params.get("stream"):
            raise WireError(400, "invalid_request_error", "stream: not supported in a batch")
        call, _ = parse_message(params, state.providers.claude, batch=True)
        result = state.providers.claude.simulate(call)
    except WireError as e:
        return BatchItem(cid, now, error={"type": e.error_type, "message": e.message})
    except ProviderError as e:
        return BatchItem(cid, now + e.after_s, error={"type": e.error_type, "message": str(e)})
    return BatchItem(cid, now + result.latency_s, result=result,
                     message_id=result.request_id or state.new_id("msg_"))


def _find(state: ServerState, batch_id: str) -> Batch:
    batch = state.batches.get(batch_id)
    if batch is None:
        raise WireError(404, "not_found_error", f"message batch {batch_id!r} not found")
    return batch


def _base(request: Request) -> str:
    return str(request.base_url)


async def create_batch(request: Request) -> Response:
    """``POST /v1/messages/batches``."""
    state: ServerState = request.app.state.cfopt
    require_anthropic(request, state.config.api_key)
    body = await read_json(request, state.config.max_body_bytes)
    reqs = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(reqs, list) or not reqs:
        raise WireError(400, "invalid_request_error", "requests: at least one request is required")
    if len(reqs) > MAX_REQUESTS:
        raise WireError(400, "invalid_request_error", f"requests: at most {MAX_REQUESTS:,} per batch")
    now, seen = state.clock.now(), set()
    items = [_item(state, now, r, i, seen) for i, r in enumerate(reqs)]
    batch = Batch(state.new_id("msgbatch_"), now, items,
                  ends_at=min(now + EXPIRY_S, max(it.done_at for it in items)))
    state.batches[batch.id] = batch
    state.stats.add_cost(sum(it.result.cost_usd for it in items if it.result is not None
                             and batch.outcome(it) == "succeeded"))
    return JSONResponse(batch.to_json(state, _base(request)))


async def retrieve_batch(request: Request) -> Response:
    """``GET /v1/messages/batches/{batch_id}``."""
    state: ServerState = request.app.state.cfopt
    require_anthropic(request, state.config.api_key)
    batch = _find(state, request.path_params["batch_id"])
    return JSONResponse(batch.to_json(state, _base(request)))


async def list_batches(request: Request) -> Response:
    """``GET /v1/messages/batches?limit=N&after_id=...&before_id=...``: newest first."""
    state: ServerState = request.app.state.cfopt
    require_anthropic(request, state.config.api_key)
    limit, after, before = page_params(request)
    newest = list(reversed(state.batches.values()))
    listed = page(newest, [b.id for b in newest], limit, after, before)
    listed["data"] = [b.to_json(state, _base(request)) for b in listed["data"]]
    return JSONResponse(listed)


async def delete_batch(request: Request) -> Response:
    """``DELETE /v1/messages/batches/{batch_id}``: an ended batch and its results are removed."""
    state: ServerState = request.app.state.cfopt
    require_anthropic(request, state.config.api_key)
    batch = _find(state, request.path_params["batch_id"])
    status = batch.status(state.clock.now())
    if status != "ended":
        raise WireError(400, "invalid_request_error",
                        f"message batch {batch.id!r} is {status}; cancel it before deleting it")
    del state.batches[batch.id]
    return JSONResponse({"id": batch.id, "type": "message_batch_deleted"})


async def cancel_batch(request: Request) -> Response:
    """``POST /v1/messages/batches/{batch_id}/cancel``."""
    state: ServerState = request.app.state.cfopt
    require_anthropic(request, state.config.api_key)
    batch = _find(state, request.path_params["batch_id"])
    now = state.clock.now()
    if batch.status(now) == "in_progress":
        unbilled = sum(it.result.cost_usd for it in batch.items
                       if it.result is not None and it.done_at > now)
        batch.cancel_at, batch.ends_at = now, min(batch.ends_at, now + CANCEL_S)
        state.stats.add_cost(-unbilled)  # canceled requests are not billed
    return JSONResponse(batch.to_json(state, _base(request)))


def _line(batch: Batch, item: BatchItem) -> str:
    kind = batch.outcome(item)
    if kind == "succeeded":
        result: dict[str, Any] = {"type": "succeeded", "message": message_json(item.result, item.message_id)}
    elif kind == "errored":
        result = {"type": "errored", "error": {"type": "error", "error": item.error}}
    else:
        result = {"type": kind}
    return json.dumps({"custom_id": item.custom_id, "result": result}, separators=(",", ":"))


async def batch_results(request: Request) -> Response:
    """``GET /v1/messages/batches/{batch_id}/results``: JSON lines, once the batch has ended."""
    state: ServerState = request.app.state.cfopt
    require_anthropic(request, state.config.api_key)
    batch = _find(state, request.path_params["batch_id"])
    status = batch.status(state.clock.now())
    if status != "ended":
        raise WireError(400, "invalid_request_error",
                        f"message batch {batch.id!r} is {status}; results are ready once it has ended")
    body = "".join(_line(batch, it) + "\n" for it in batch.items)
    return Response(body, media_type="application/x-jsonl")
