"""The workload format: one request a JSON object a line, validated as it is read.

A line needs ``t`` (seconds since the start, non-decreasing), ``type`` and ``prompt``; every
other field is optional. Unknown fields are kept in ``Request.extra`` and written back.

>>> r = loads('{"t": 1.5, "type": "text", "prompt": "Write a haiku about tea", "shop": 7}')
>>> r
Request(t=1.5, type='text', prompt='Write a haiku about tea', extra={'shop': 7})
>>> dumps(r)
'{"t":1.5,"type":"text","quality":"standard","priority":"medium","prompt":"Write a haiku about tea","shop":7}'
>>> loads('{"t": 0, "type": "text", "prompt": "x", "max_tokens": true}')
Traceback (most recent call last):
  ...
cfopt.errors.WorkloadError: max_tokens must be an integer, got true (field 'max_tokens')

Rules the loader enforces (each failure is a ``WorkloadError`` naming file and line, and the
field at fault wherever the line parses far enough to tell):

- the file is UTF-8 (a byte-order mark before the first line is allowed); each line is one JSON
  object; blank or whitespace-only lines are skipped, and line numbers count them;
- ``t`` is a number (not ``true``), at least 0, at most ``MAX_T_S`` (a year: the longest span
  a workload may cover) and never smaller than the line before; ``NaN`` and ``Infinity`` are
  refused in any field;
- ``type``, ``quality`` and ``priority`` take one of their listed values;
- ``prompt`` is a string with a non-blank character and at most ``MAX_PROMPT_CHARS`` characters;
- ``max_tokens`` is a positive integer (``true`` is not an integer here);
- ``id``, ``user``, ``task`` and ``intent`` are strings; ``null`` means "not given";
- ids are unique within a file; a line is at most ``MAX_LINE_BYTES`` bytes and nests at most
  ``MAX_DEPTH`` levels (checked before parsing: deeper JSON would crash Python's parser);
- no string, key or nested value holds a lone surrogate (``"\\ud800"`` is valid JSON that no
  UTF-8 encoder can write back).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import WorkloadError
from ..jsonlimits import MAX_DEPTH, lone_surrogate, too_deep

__all__ = [
    "Request", "TYPES", "TEXT_TYPES", "QUALITIES", "PRIORITIES", "MAX_PROMPT_CHARS", "MAX_LINE_BYTES",
    "MAX_T_S", "MAX_DEPTH",
    "iter_requests", "load", "write_jsonl", "dumps", "loads", "strip_intent",
]

TYPES = ("text", "analysis", "image", "video", "audio", "photo")
TEXT_TYPES = ("text", "analysis")   # the request types a text model answers
QUALITIES = ("low", "standard", "critical")
PRIORITIES = ("high", "medium", "low")
MAX_PROMPT_CHARS = 100_000      # ~25k tokens: far above any ContentFlow prompt, far below abuse
MAX_LINE_BYTES = 16 * 1024 * 1024  # read no further: a longer line is refused unparsed
MAX_T_S = 366 * 86400.0         # a year of traffic: budgets, TTLs and charts work in days, not aeons

_KNOWN = ("id", "t", "user", "type", "task", "quality", "priority", "max_tokens", "prompt",
          "intent")  # also the order fields are written in
_OPTIONAL_STR = ("id", "user", "task", "intent")


def _fail(message: str, field_name: str) -> WorkloadError:
    return WorkloadError(message, field=field_name)


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if _jsonable(value) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class Request:
    """One ContentFlow request; ``intent`` is ground truth for scoring, never for optimizers."""

    t: float                        # seconds since the workload's start
    type: str                       # text | analysis | image | video | audio | photo
    prompt: str                     # what the customer sent
    id: str | None = None           # unique within a file
    user: str | None = None         # the customer
    task: str | None = None         # blog_post, hero_image, stock_photo, ...
    quality: str = "standard"       # low | standard | critical
    priority: str = "medium"        # high | medium | low
    max_tokens: int | None = None   # the output cap a text call should use
    intent: str | None = None       # equal intent: the same answer serves; scoring only
    extra: dict[str, Any] = field(default_factory=dict, hash=False)  # unknown fields, kept

    def __post_init__(self) -> None:
        t = self.t
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            raise _fail(f"t must be a number of seconds, got {_show(t)}", "t")
        if not math.isfinite(t) or t < 0:
            raise _fail(f"t must be a finite number of seconds >= 0, got {t!r}", "t")
        if t > MAX_T_S:
            raise _fail(f"t is {t:g} s, past the longest span a workload may cover "
                        f"(MAX_T_S = {MAX_T_S:,.0f} s, a year)", "t")
        object.__setattr__(self, "t", float(t))
        for name, allowed in (("type", TYPES), ("quality", QUALITIES), ("priority", PRIORITIES)):
            value = getattr(self, name)
            if value not in allowed or not isinstance(value, str):
                raise _fail(f"{name} must be one of {', '.join(allowed)}; got {_show(value)}", name)
        p = self.prompt
        if not isinstance(p, str):
            raise _fail(f"prompt must be a string, got {_show(p)}", "prompt")
        if not p.strip():
            raise _fail("prompt is empty or blank", "prompt")
        if len(p) > MAX_PROMPT_CHARS:
            raise _fail(f"prompt is {len(p):,} characters; the limit is {MAX_PROMPT_CHARS:,}",
                        "prompt")
        for name in _OPTIONAL_STR:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise _fail(f"{name} must be a string, got {_show(value)}", name)
        m = self.max_tokens
        if m is not None:
            if isinstance(m, bool) or not isinstance(m, int):
                raise _fail(f"max_tokens must be an integer, got {_show(m)}", "max_tokens")
            if m < 1:
                raise _fail(f"max_tokens must be positive, got {m}", "max_tokens")
        if not isinstance(self.extra, dict):
            raise _fail(f"extra must be a dict, got {_show(self.extra)}", "extra")
        clash = sorted(set(self.extra) & set(_KNOWN))
        if clash:
            raise _fail(f"extra repeats a known field: {', '.join(clash)}", clash[0])
        for name in ("prompt", *_OPTIONAL_STR):
            if lone_surrogate(getattr(self, name)) is not None:
                raise _fail(f"{name} holds a lone surrogate (half of a UTF-16 pair), which UTF-8 "
                            "cannot encode", name)
        where = lone_surrogate(self.extra)
        if where is not None:
            raise _fail(f"{where} holds a lone surrogate (half of a UTF-16 pair), which UTF-8 "
                        "cannot encode", where.split(".")[0])

    def __repr__(self) -> str:
        parts = [f"t={self.t!r}", f"type={self.type!r}", f"prompt={_short(self.prompt)!r}"]
        for name in ("id", "user", "task", "max_tokens", "intent"):
            if getattr(self, name) is not None:
                parts.append(f"{name}={getattr(self, name)!r}")
        if self.quality != "standard":
            parts.append(f"quality={self.quality!r}")
        if self.priority != "medium":
            parts.append(f"priority={self.priority!r}")
        if self.extra:
            parts.append(f"extra={self.extra!r}")
        return f"Request({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object of this request: known fields in a fixed order, then extras."""
        out: dict[str, Any] = {}
        for name in _KNOWN:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        for key in sorted(self.extra):
            out[key] = self.extra[key]
        return out

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> "Request":
        """Build a request from a JSON object; unknown keys go to ``extra``."""
        if not isinstance(obj, dict):
            raise WorkloadError(f"a request must be a JSON object, got {_show(obj)}")
        for name in ("t", "type", "prompt"):
            if name not in obj:
                raise _fail(f"missing required field {name!r}", name)
        known = {k: v for k, v in obj.items() if k in _KNOWN and v is not None}
        for name in ("t", "type", "prompt"):
            known.setdefault(name, None)  # an explicit null: let __post_init__ name it
        extra = {k: v for k, v in obj.items() if k not in _KNOWN}
        return cls(**known, extra=extra)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _NonFinite(str):
    """Python's json reads NaN and Infinity; JSON has neither. Mark them to name the field."""


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, _NonFinite) or isinstance(value, float) and not math.isfinite(value):
        return True
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    return isinstance(value, list) and any(_has_non_finite(v) for v in value)


def _field_with_bad_bytes(raw: bytes) -> str | None:
    """Name the top-level field whose value holds the undecodable bytes, when the rest parses."""
    try:
        obj = json.loads(raw.decode("utf-8", "surrogateescape"))
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    for key, value in obj.items():
        if any("\udc80" <= ch <= "\udcff" for ch in json.dumps(value, ensure_ascii=False)
               + key):
            return key
    return None


def _parse_line(raw: bytes) -> Request:
    deep = too_deep(raw, MAX_DEPTH)
    if deep is not None:  # refused unparsed: Python's parser recurses once per level
        raise WorkloadError(f"JSON nested deeper than {MAX_DEPTH} levels (at byte {deep} of the line)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise WorkloadError(f"invalid UTF-8 at byte {e.start} of the line",
                            field=_field_with_bad_bytes(raw)) from None
    try:
        obj = json.loads(text, parse_constant=_NonFinite)
    except ValueError as e:  # JSONDecodeError is a ValueError
        raise WorkloadError(f"bad JSON: {e}") from None
    if isinstance(obj, dict):
        for key, value in obj.items():
            if _has_non_finite(value):
                raise _fail("NaN and Infinity are not JSON numbers (nor are numbers that "
                            "overflow to infinity)", key)
    return Request.from_dict(obj)


def loads(line: str) -> Request:
    """Parse one JSON line into a validated ``Request``."""
    return _parse_line(line.encode("utf-8"))


def dumps(request: Request) -> str:
    """Return the canonical one-line JSON of ``request`` (no newline)."""
    return json.dumps(request.to_dict(), ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False)


def iter_requests(path: str | Path) -> Iterator[Request]:
    """Yield the requests of a JSONL file one by one, validating each line as it is read."""
    name = str(path)
    previous_t = 0.0
    seen_ids: dict[str, int] = {}
    with open(path, "rb") as f:
        number = 0
        while True:
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            number += 1
            if len(raw) > MAX_LINE_BYTES:
                raise WorkloadError(f"line is longer than {MAX_LINE_BYTES:,} bytes",
                                    path=name, line=number)
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            try:
                request = _parse_line(raw)
                if request.t < previous_t:
                    raise _fail(f"t went backwards: {request.t!r} after {previous_t!r}", "t")
                if request.id is not None:
                    if request.id in seen_ids:
                        raise _fail(f"duplicate id {request.id!r} (first on line "
                                    f"{seen_ids[request.id]})", "id")
                    seen_ids[request.id] = number
            except WorkloadError as e:
                raise WorkloadError(_bare(e), path=name, line=number, field=e.field) from None
            previous_t = request.t
            yield request


def _bare(e: WorkloadError) -> str:
    """The message of ``e`` without the location and field it already carries."""
    text = str(e)
    suffix = f" (field {e.field!r})" if e.field else ""
    return text[: len(text) - len(suffix)] if suffix and text.endswith(suffix) else text


def load(path: str | Path) -> list[Request]:
    """Read and validate a whole JSONL workload; any bad line raises, nothing partial returns."""
    return list(iter_requests(path))


def write_jsonl(requests: Iterable[Request], path: str | Path) -> None:
    """Write ``requests`` as canonical JSONL: fixed key order, compact, UTF-8, ``\\n`` endings.

    The file appears whole or not at all: it is written beside ``path`` and renamed. Requests
    the loader would refuse (``t`` going backwards, a repeated id) are refused here too.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    previous_t, seen_ids = 0.0, set()
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for number, request in enumerate(requests, 1):
                if request.t < previous_t:
                    raise WorkloadError(f"t went backwards: {request.t!r} after {previous_t!r}",
                                        line=number, field="t")
                if request.id is not None:
                    if request.id in seen_ids:
                        raise WorkloadError(f"duplicate id {request.id!r}", line=number,
                                            field="id")
                    seen_ids.add(request.id)
                previous_t = request.t
                f.write(dumps(request))
                f.write("\n")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def strip_intent(requests: Iterable[Request]) -> list[Request]:
    """Return copies without ``intent``: what an optimizer may see."""
    from dataclasses import replace
    return [replace(r, intent=None) if r.intent is not None else r for r in requests]
