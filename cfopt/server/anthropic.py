"""Claude in the Anthropic Messages format: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

A request is checked as the real API checks it: an API key and the ``anthropic-version`` header,
then the body (400 in Anthropic's shape, with ``request_id``, for a missing, wrong, out-of-range
or unknown field; 404 for a model ID the real API does not accept, such as cfopt's nickname
"haiku"). It is turned into a ``Call`` for the simulated Claude, and answered after the
simulated latency has passed on the server's real (possibly sped-up) clock. ``"stream": true``
answers with server-sent events in Anthropic's order: message_start, content_block_start, ping,
content_block_delta..., content_block_stop, message_delta (stop reason, the full cumulative
usage), message_stop. The first text arrives after the simulated time to first token; the rest
is paced at the model's output speed. A planned ``overloaded_mid_stream`` fault ends a stream
halfway with an ``error`` event, as the real API can after its 200. Every answer, a 429 too,
carries the ``anthropic-ratelimit-*`` headers (limit, remaining, reset).

A conversation of several turns is sent to the simulation as one prompt: each turn's text after
its role ("User: ...", "Assistant: ..."), so earlier turns count as input tokens, as they do on
the real API. Prompt caching follows the cache order tools, system, messages: ``cache_control``
on a tool, a system block or a message block (``ttl`` "5m" or "1h"), or at the top level
(automatic caching: the breakpoint on the last block), marks the prefix up to there; at most 4
marks. cfopt caches the longest marked prefix only (shorter breakpoints are not looked up).
Tools are counted and cached but never called; ``stop_sequences`` are simulated; fields that
change behaviour cfopt does not simulate (``thinking``, ``output_config``, a forced
``tool_choice``...) are refused with a 400 that says so.

>>> from cfopt.pricing import Usage
>>> usage_json(Usage(input_tokens=12, output_tokens=30, cache_read_input_tokens=2048))["cache_read_input_tokens"]
2048
"""
from __future__ import annotations

import json
import re
from typing import Any, AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..errors import ConfigError, NotFound, ProviderError
from ..pricing import Usage
from ..providers.base import Call, Result
from ..providers.claude import ClaudeProvider
from ..tokens import encoding
from .state import ServerState
from .wire import WireError, provider_error, read_json, request_id_of, require_anthropic

__all__ = ["parse_message", "message_json", "usage_json", "sse_events", "messages",
           "count_tokens", "TOKENS_PER_DELTA"]

TOKENS_PER_DELTA = 3  # the real API's text deltas carry a few tokens each


def _bad(message: str) -> WireError:
    return WireError(400, "invalid_request_error", message)


# The Messages API's request fields. Unknown ones are refused, as the real API refuses them.
KNOWN_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "stream", "metadata", "stop_sequences",
    "temperature", "top_p", "top_k", "tools", "tool_choice", "cache_control", "service_tier",
    "inference_geo", "thinking", "output_config", "speed", "container", "mcp_servers",
    "context_management"})
# Fields of the real API that change what the model does in ways cfopt does not simulate:
# refused with a 400 that says so, rather than accepted and silently ignored.
NOT_SIMULATED = ("output_config", "speed", "container", "mcp_servers", "context_management")
MAX_CACHE_BREAKPOINTS = 4   # "A maximum of 4 blocks with cache_control may be provided"
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


def _cache_mark(block: Any, where: str) -> str | None:
    """The TTL a block's ``cache_control`` asks for ("5m" or "1h"), or None."""
    mark = block.get("cache_control") if isinstance(block, dict) else None
    if mark is None:
        return None
    if not isinstance(mark, dict) or mark.get("type") != "ephemeral":
        raise _bad(f"{where}.cache_control.type: must be 'ephemeral'")
    ttl = mark.get("ttl", "5m")
    if ttl not in ("5m", "1h"):
        raise _bad(f"{where}.cache_control.ttl: must be '5m' or '1h'")
    return ttl


def _blocks(content: Any, where: str) -> list[tuple[str, str | None]]:
    """(text, cache TTL) of each block of a message's or system's content."""
    if isinstance(content, str):
        return [(content, None)]
    if not isinstance(content, list):
        raise _bad(f"{where}: expected a string or a list of content blocks")
    out = []
    for i, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text":
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise _bad(f"{where}.{i}: {kind!r} content blocks are not simulated by cfopt; "
                       "only text blocks are")
        if not isinstance(block.get("text"), str):
            raise _bad(f"{where}.{i}.text: Field required")
        extra = set(block) - {"type", "text", "cache_control", "citations"}
        if extra:
            raise _bad(f"{where}.{i}.{sorted(extra)[0]}: Extra inputs are not permitted")
        out.append((block["text"], _cache_mark(block, f"{where}.{i}")))
    return out


def _model_info(claude: ClaudeProvider, name: Any):
    if not isinstance(name, str) or not name:
        raise _bad("model: Field required")
    try:
        return claude.model_info(name, api=True)   # only the names the real API accepts
    except NotFound:
        raise WireError(404, "not_found_error", f"model: {name}") from None


def _sampling(body: dict[str, Any], info: Any) -> None:
    """temperature, top_p and top_k: checked as documented, and refused where the model does."""
    ranges = {"temperature": (0.0, 1.0), "top_p": (0.0, 1.0)}
    for name in ("temperature", "top_p", "top_k"):
        if name not in body or body[name] is None:
            continue
        v = body[name]
        if name == "top_k":
            if type(v) is not int or v < 0:
                raise _bad("top_k: must be a non-negative integer")
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or not ranges[name][0] <= v <= ranges[name][1]:
            lo, hi = ranges[name]
            raise _bad(f"{name}: Input should be less than or equal to {hi:g} and greater than or equal to {lo:g}")
        if not info["sampling_params"] and not (name == "temperature" and v == 1):
            raise _bad(f"{name}: not supported on {info.id}; omit it (only its default is accepted)")


def _tools(body: dict[str, Any]) -> tuple[str, str | None]:
    """The tool definitions as text (counted as input, cached first) and a cache mark on them.

    Tools are accepted so that their tokens and prompt caching are real; the simulated model never
    calls one (it answers in text, as a model may with ``tool_choice`` auto or none). Forcing a
    call (``tool_choice`` any or tool) is refused: not simulated.
    """
    tools, choice = body.get("tools"), body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in ("auto", "none", "any", "tool"):
            raise _bad("tool_choice.type: must be 'auto', 'any', 'tool' or 'none'")
        if choice["type"] in ("any", "tool"):
            raise _bad(f"tool_choice: {choice['type']!r} forces a tool call: not simulated by cfopt "
                       "(its model answers in text); use 'auto' or 'none'")
    if tools is None:
        return "", None
    if not isinstance(tools, list):
        raise _bad("tools: expected a list of tool definitions")
    ttl = None
    for i, t in enumerate(tools):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not _TOOL_NAME.match(t["name"]):
            raise _bad(f"tools.{i}.name: 1 to 128 letters, digits, '_' or '-'")
        if "type" in t and t["type"] not in (None, "custom"):
            raise _bad(f"tools.{i}.type: server and client-defined tool types are not simulated by cfopt")
        if not isinstance(t.get("input_schema"), dict):
            raise _bad(f"tools.{i}.input_schema: Field required")
        ttl = _cache_mark(t, f"tools.{i}") or ttl
    text = json.dumps([{k: v for k, v in t.items() if k != "cache_control"} for t in tools],
                      sort_keys=True, separators=(",", ":")) if tools else ""
    return text, ttl


def _conversation(messages: Any) -> tuple[str, list[tuple[int, str]]]:
    """The prompt text of ``messages`` and the cache marks in it as (end offset, ttl).

    One message is its text (blocks joined by newlines); several are "Role: text" turns, so
    earlier turns count as input. Every cache mark's prefix is a leading part of the prompt.
    """
    if not isinstance(messages, list) or not messages:
        raise _bad("messages: at least one message is required")
    many = len(messages) > 1
    prompt, marks = "", []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise _bad(f"messages.{i}: expected an object with role and content")
        if m.get("role") not in ("user", "assistant"):
            raise _bad(f"messages.{i}.role: must be 'user' or 'assistant'")
        if "content" not in m:
            raise _bad(f"messages.{i}.content: Field required")
        if i == 0 and m["role"] != "user":
            raise _bad("messages.0.role: the first message must use the 'user' role")
        blocks = _blocks(m["content"], f"messages.{i}.content")
        if not "".join(t for t, _ in blocks).strip():
            raise _bad(f"messages.{i}.content: text content must be non-empty")
        if i:
            prompt += "\n\n"
        if many:
            prompt += f"{m['role'].capitalize()}: "
        for j, (text, ttl) in enumerate(blocks):
            prompt += ("\n" if j else "") + text
            if ttl:
                marks.append((len(prompt), ttl))
    return prompt, marks


def parse_message(body: Any, claude: ClaudeProvider, *, batch: bool = False,
                  need_max_tokens: bool = True) -> tuple[Call, bool]:
    """The ``Call`` a Messages request body asks for, and whether it wants a stream."""
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        raise _bad(f"{unknown[0]}: Extra inputs are not permitted")
    info = _model_info(claude, body.get("model"))
    max_tokens = body.get("max_tokens")
    if need_max_tokens and max_tokens is None:
        raise _bad("max_tokens: Field required")
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        raise _bad("max_tokens: must be a positive integer")
    for name in NOT_SIMULATED:
        if body.get(name) is not None:
            raise _bad(f"{name}: not simulated by cfopt")
    thinking = body.get("thinking")
    if thinking is not None and (not isinstance(thinking, dict) or thinking.get("type") != "disabled"):
        raise _bad("thinking: not simulated by cfopt (send none, or {\"type\": \"disabled\"})")
    _sampling(body, info)
    if body.get("service_tier") not in (None, "auto", "standard_only"):
        raise _bad("service_tier: must be 'auto' or 'standard_only'")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list)
                              or not all(isinstance(x, str) and x for x in stops)):
        raise _bad("stop_sequences: expected a list of non-empty strings")
    if "metadata" in body and not isinstance(body["metadata"], dict):
        raise _bad("metadata: must be an object")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream: must be a boolean")

    # The request in cache order: tools, then system, then messages.
    tools_text, tools_ttl = _tools(body)
    system = body.get("system")
    sys_blocks = [] if system is None else _blocks(system, "system")
    parts, marks = [], []
    if tools_text:
        parts.append(tools_text)
        if tools_ttl:
            marks.append((len(tools_text), tools_ttl))
    for j, (text, ttl) in enumerate(sys_blocks):
        if parts:
            parts.append("\n\n" if j == 0 else "\n")
        parts.append(text)
        if ttl:
            marks.append((len("".join(parts)), ttl))
    system_text = "".join(parts)
    prompt, msg_marks = _conversation(body.get("messages"))
    head = len(system_text) + 2 if system_text else 0   # the provider joins them with "\n\n"
    marks += [(head + end, ttl) for end, ttl in msg_marks]
    auto = _cache_mark(body, "") if "cache_control" in body else None
    if auto:   # automatic caching: the breakpoint goes on the last cacheable block
        marks.append((head + len(prompt), auto))
    if len(marks) > MAX_CACHE_BREAKPOINTS:
        raise _bad(f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
                   f"Found {len(marks)}.")
    full = f"{system_text}\n\n{prompt}" if system_text else prompt
    # cfopt caches the longest marked prefix (the last breakpoint); shorter ones are not looked up.
    end, ttl = max(marks) if marks else (0, None)
    try:
        call = Call(model=info.id, prompt=prompt, max_tokens=max_tokens,
                    system=system_text or None, batch=batch,
                    cache_prefix=full[:end] if end else None, cache_ttl=ttl,
                    stop_sequences=tuple(stops or ()))
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
            "stop_reason": result.stop_reason or "end_turn",
            "stop_sequence": result.extra.get("stop_sequence"),
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


async def sse_events(result: Result, message_id: str, state: ServerState, *,
                     fail_after: float | None = None, request_id: str = "") -> AsyncIterator[bytes]:
    """The event stream of one answer, paced on the server's clock from the moment it starts.

    ``fail_after`` (a share of the deltas, 0 to 1) makes the stream stop there with an ``error``
    event (``overloaded_error``), as the real API may send mid-stream after its 200.
    """
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
    pieces = _pieces(result.content)
    stop_at = None if fail_after is None else max(1, int(len(pieces) * fail_after))
    for k, (text, due) in enumerate(pieces):
        if k == stop_at:
            body = WireError(529, "overloaded_error", "Overloaded").body(request_id)
            yield _sse("error", body)
            return
        await clock.asleep(t0 + ttft + gen * due - clock.now())
        yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                           "delta": {"type": "text_delta", "text": text}})
    await clock.asleep(t0 + result.latency_s - clock.now())
    yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    yield _sse("message_delta", {"type": "message_delta",
                                 "delta": {"stop_reason": result.stop_reason or "end_turn",
                                           "stop_sequence": result.extra.get("stop_sequence")},
                                 # cumulative usage, every field, as the real API sends it
                                 "usage": usage_json(result.usage)})
    yield _sse("message_stop", {"type": "message_stop"})


async def simulate_text(state: ServerState, call: Call, *, stream: bool = False) -> tuple[Result, bool]:
    """Ask the simulated Claude; on failure wait as long as the failure took, then raise.

    Returns the result and whether the stream must fail midway: a planned
    ``overloaded_mid_stream`` fault lets a stream start and end with an ``error`` event; an
    unstreamed request gets the 529 at once.
    """
    planned = state.fault_plan.take("anthropic", model=call.model)
    try:
        if planned is not None and not (stream and getattr(planned, "mid_stream", False)):
            raise planned
        return state.providers.claude.simulate(call), planned is not None
    except ProviderError as e:
        await state.clock.asleep(e.after_s)
        wire = provider_error(e, time_scale=state.config.time_scale)
        if e.status == 429:  # a 429 carries the rate-limit headers too
            wire.headers.update(ratelimit_headers(state, call.model))
        raise wire from None


def ratelimit_headers(state: ServerState, model: str) -> dict[str, str]:
    """Anthropic's ``anthropic-ratelimit-*`` headers: limit, remaining and reset of each limit.

    ``reset`` is when the bucket is full again (RFC 3339); ``tokens-*`` is the more restrictive
    of the input and output token limits, as the API reports it.
    """
    claude = state.providers.claude
    s = claude.rate_limit_status(model)
    now = state.clock.now()

    def reset(lim: int, remaining: int) -> str:
        return state.timestamp(now + max(0, lim - remaining) * 60.0 / lim)

    rows = {"requests": (s.requests_limit, s.requests_remaining),
            "input-tokens": (s.input_tokens_limit, s.input_tokens_remaining),
            "output-tokens": (s.output_tokens_limit, s.output_tokens_remaining)}
    rows["tokens"] = min(rows["input-tokens"], rows["output-tokens"], key=lambda r: r[1] / r[0])
    out = {}
    for name in ("requests", "tokens", "input-tokens", "output-tokens"):
        lim, rem = rows[name]
        out[f"anthropic-ratelimit-{name}-limit"] = str(lim)
        out[f"anthropic-ratelimit-{name}-remaining"] = str(rem)
        out[f"anthropic-ratelimit-{name}-reset"] = reset(lim, rem)
    return out


async def messages(request: Request) -> Response:
    """``POST /v1/messages``: one answer, whole or streamed."""
    state: ServerState = request.app.state.cfopt
    require_anthropic(request, state.config.api_key)
    body = await read_json(request, state.config.max_body_bytes)
    call, stream = parse_message(body, state.providers.claude)
    result, fail_midway = await simulate_text(state, call, stream=stream)
    state.stats.add_cost(result.cost_usd)
    message_id = result.request_id or state.new_id("msg_")
    headers = {"cfopt-cost-usd": f"{result.cost_usd:.9f}", **ratelimit_headers(state, call.model)}
    if stream:
        return StreamingResponse(sse_events(result, message_id, state,
                                            fail_after=0.5 if fail_midway else None,
                                            request_id=request_id_of(request)),
                                 headers=headers, media_type="text/event-stream")
    await state.clock.asleep(result.latency_s)
    return JSONResponse(message_json(result, message_id), headers=headers)


async def count_tokens(request: Request) -> Response:
    """``POST /v1/messages/count_tokens``: the input tokens a Messages request would use."""
    state: ServerState = request.app.state.cfopt
    require_anthropic(request, state.config.api_key)
    body = await read_json(request, state.config.max_body_bytes)
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in ("max_tokens", "stream")}
    call, _ = parse_message(body, state.providers.claude, need_max_tokens=False)
    n = state.providers.claude.count_tokens(call.model, call.prompt, system=call.system)
    return JSONResponse({"input_tokens": n})
