"""Claude in the Anthropic Messages format: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

A request is checked as the real API checks it (400 for a missing or wrong field, 404 for an
unknown model), turned into a ``Call`` for the simulated Claude, and answered after the
simulated latency has passed on the server's real (possibly sped-up) clock. ``"stream": true``
answers with server-sent events in Anthropic's order: message_start, content_block_start, ping,
content_block_delta..., content_block_stop, message_delta (stop reason, output usage),
message_stop. The first text arrives after the simulated time to first token; the rest is paced
at the model's output speed.

A conversation of several turns is sent to the simulation as one prompt: each turn's text after
its role ("User: ...", "Assistant: ..."), so earlier turns count as input tokens, as they do on
the real API. ``cache_control`` on a system block asks for prompt caching of the system prompt
(``ttl`` "5m" or "1h"); cache marks on message blocks are accepted and not simulated.

>>> from cfopt.pricing import Usage
>>> usage_json(Usage(input_tokens=12, output_tokens=30, cache_read_input_tokens=2048))["cache_read_input_tokens"]
2048
"""
from __future__ import annotations

import json
from typing import Any, AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..errors import ConfigError, NotFound, ProviderError
from ..pricing import Usage
from ..providers.base import Call, Result
from ..providers.claude import ClaudeProvider
from ..tokens import encoding
from .state import ServerState
from .wire import WireError, provider_error, read_json, require_key

__all__ = ["parse_message", "message_json", "usage_json", "sse_events", "messages",
           "count_tokens", "TOKENS_PER_DELTA"]

TOKENS_PER_DELTA = 3  # the real API's text deltas carry a few tokens each


def _bad(message: str) -> WireError:
    return WireError(400, "invalid_request_error", message)


def _text_of(content: Any, where: str) -> str:
    """The text of a message's or system's content: a string or a list of text blocks."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(f"{where}: expected a string or a list of content blocks")
    parts = []
    for i, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _bad(f"{where}.{i}: only text content blocks are simulated")
        if not isinstance(block.get("text"), str):
            raise _bad(f"{where}.{i}.text: Field required")
        parts.append(block["text"])
    return "\n".join(parts)


def _cache_ttl(system: Any) -> str | None:
    """The prompt-cache TTL the system blocks ask for ("5m", "1h"), or None."""
    if not isinstance(system, list):
        return None
    ttl = None
    for i, block in enumerate(system):
        mark = block.get("cache_control") if isinstance(block, dict) else None
        if mark is None:
            continue
        if not isinstance(mark, dict) or mark.get("type") != "ephemeral":
            raise _bad(f"system.{i}.cache_control: type must be 'ephemeral'")
        t = mark.get("ttl", "5m")
        if t not in ("5m", "1h"):
            raise _bad(f"system.{i}.cache_control.ttl: must be '5m' or '1h'")
        ttl = "1h" if "1h" in (t, ttl) else t
    return ttl


def _model_id(claude: ClaudeProvider, name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise _bad("model: Field required")
    try:
        return claude.model_info(name).id
    except NotFound:
        raise WireError(404, "not_found_error", f"model: {name}") from None


def _prompt(messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise _bad("messages: at least one message is required")
    turns = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise _bad(f"messages.{i}: expected an object with role and content")
        if m.get("role") not in ("user", "assistant"):
            raise _bad(f"messages.{i}.role: must be 'user' or 'assistant'")
        if "content" not in m:
            raise _bad(f"messages.{i}.content: Field required")
        text = _text_of(m["content"], f"messages.{i}.content")
        if not text.strip():
            raise _bad(f"messages.{i}.content: text content must be non-empty")
        turns.append((m["role"], text))
    if turns[0][0] != "user":
        raise _bad("messages.0.role: the first message must use the 'user' role")
    if len(turns) == 1:
        return turns[0][1]
    return "\n\n".join(f"{role.capitalize()}: {text}" for role, text in turns)


def parse_message(body: Any, claude: ClaudeProvider, *, batch: bool = False,
                  need_max_tokens: bool = True) -> tuple[Call, bool]:
    """The ``Call`` a Messages request body asks for, and whether it wants a stream."""
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    model = _model_id(claude, body.get("model"))
    max_tokens = body.get("max_tokens")
    if need_max_tokens and max_tokens is None:
        raise _bad("max_tokens: Field required")
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        raise _bad("max_tokens: must be a positive integer")
    prompt = _prompt(body.get("messages"))
    system = body.get("system")
    system_text = None if system is None else _text_of(system, "system")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream: must be a boolean")
    if "metadata" in body and not isinstance(body["metadata"], dict):
        raise _bad("metadata: must be an object")
    try:
        call = Call(model=model, prompt=prompt, max_tokens=max_tokens,
                    system=system_text or None, cache_system=_cache_ttl(system), batch=batch)
    except ConfigError as e:
        raise _bad(str(e)) from None
    return call, stream


def usage_json(u: Usage) -> dict[str, Any]:
    """Anthropic's usage object for ``u`` (cache writes summed, and broken down by TTL)."""
    return {
        "input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens + u.cache_creation_1h_input_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": u.cache_creation_input_tokens,
                           "ephemeral_1h_input_tokens": u.cache_creation_1h_input_tokens},
        "service_tier": u.service_tier if u.service_tier in ("standard", "batch") else "standard",
    }


def message_json(result: Result, message_id: str) -> dict[str, Any]:
    """The Messages API's response body for a simulated result."""
    return {"id": message_id, "type": "message", "role": "assistant", "model": result.model,
            "content": [{"type": "text", "text": result.content}],
            "stop_reason": result.stop_reason or "end_turn", "stop_sequence": None,
            "usage": usage_json(result.usage)}


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _pieces(text: str) -> list[tuple[str, float]]:
    """``text`` cut into deltas of a few tokens, each with when it is due, as a share of the
    generation time after the first token (0.0 for the delta holding the first token)."""
    tokens = encoding().encode(text, disallowed_special=())
    decoded, offsets = encoding().decode_with_offsets(tokens)
    if decoded != text or not tokens:  # never happens with prose; keep the text whole if it does
        return [(text, 0.0)] if text else []
    n = len(tokens)
    cuts = [0, *range(1, n, TOKENS_PER_DELTA), n]  # the first token alone: it is due at TTFT
    starts = [offsets[c] if c < n else len(text) for c in cuts]
    # A delta is due when its last token is out: token k (from 1) at TTFT + gen * (k-1)/(n-1).
    return [(text[a:b], (cuts[i + 1] - 1) / max(1, n - 1))
            for i, (a, b) in enumerate(zip(starts, starts[1:])) if b > a]


async def sse_events(result: Result, message_id: str, state: ServerState) -> AsyncIterator[bytes]:
    """The event stream of one answer, paced on the server's clock from the moment it starts."""
    clock = state.clock
    t0 = clock.now()
    start = message_json(result, message_id)
    start.update(content=[], stop_reason=None)
    start["usage"] = dict(start["usage"], output_tokens=1)  # the real API reports 1 at the start
    yield _sse("message_start", {"type": "message_start", "message": start})
    yield _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}})
    yield _sse("ping", {"type": "ping"})
    ttft, gen = result.first_content_s, max(0.0, result.latency_s - result.first_content_s)
    for text, due in _pieces(result.content):
        await clock.asleep(t0 + ttft + gen * due - clock.now())
        yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                           "delta": {"type": "text_delta", "text": text}})
    await clock.asleep(t0 + result.latency_s - clock.now())
    yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    yield _sse("message_delta", {"type": "message_delta",
                                 "delta": {"stop_reason": result.stop_reason or "end_turn",
                                           "stop_sequence": None},
                                 "usage": {"output_tokens": result.usage.output_tokens}})
    yield _sse("message_stop", {"type": "message_stop"})


async def simulate_text(state: ServerState, call: Call) -> Result:
    """Ask the simulated Claude; on failure wait as long as the failure took, then raise."""
    planned = state.fault_plan.take("anthropic", model=call.model)
    try:
        if planned is not None:
            raise planned
        return state.providers.claude.simulate(call)
    except ProviderError as e:
        await state.clock.asleep(e.after_s)
        raise provider_error(e, time_scale=state.config.time_scale) from None


def _ratelimit_headers(state: ServerState, model: str) -> dict[str, str]:
    """Anthropic's ``anthropic-ratelimit-*`` headers: what is left of the per-minute limits."""
    s = state.providers.claude.rate_limit_status(model)
    return {"anthropic-ratelimit-requests-limit": str(s.requests_limit),
            "anthropic-ratelimit-requests-remaining": str(s.requests_remaining),
            "anthropic-ratelimit-input-tokens-limit": str(s.input_tokens_limit),
            "anthropic-ratelimit-input-tokens-remaining": str(s.input_tokens_remaining),
            "anthropic-ratelimit-output-tokens-limit": str(s.output_tokens_limit),
            "anthropic-ratelimit-output-tokens-remaining": str(s.output_tokens_remaining)}


async def messages(request: Request) -> Response:
    """``POST /v1/messages``: one answer, whole or streamed."""
    state: ServerState = request.app.state.cfopt
    require_key(request, state.config.api_key)
    body = await read_json(request, state.config.max_body_bytes)
    call, stream = parse_message(body, state.providers.claude)
    result = await simulate_text(state, call)
    state.stats.add_cost(result.cost_usd)
    message_id = result.request_id or state.new_id("msg_")
    headers = {"cfopt-cost-usd": f"{result.cost_usd:.9f}", **_ratelimit_headers(state, call.model)}
    if stream:
        return StreamingResponse(sse_events(result, message_id, state), headers=headers,
                                 media_type="text/event-stream")
    await state.clock.asleep(result.latency_s)
    return JSONResponse(message_json(result, message_id), headers=headers)


async def count_tokens(request: Request) -> Response:
    """``POST /v1/messages/count_tokens``: the input tokens a Messages request would use."""
    state: ServerState = request.app.state.cfopt
    require_key(request, state.config.api_key)
    body = await read_json(request, state.config.max_body_bytes)
    call, _ = parse_message(body, state.providers.claude, need_max_tokens=False)
    n = state.providers.claude.count_tokens(call.model, call.prompt, system=call.system)
    return JSONResponse({"input_tokens": n})
