"""Turn a provider ``Result`` into bytes for a cache layer, and back.

JSON, not pickle: a cache shared through Redis or a file must never run code when read, and a
human can inspect an entry with ``redis-cli GET``.

>>> from cfopt.pricing import Usage
>>> r = Result("anthropic", "claude-haiku-5-5", "text", "Hello", Usage(input_tokens=3,
...            output_tokens=1), 0.000001, 0.4, 0.2, 12.0, stop_reason="end_turn")
>>> decode_result(encode_result(r)) == r
True
"""
from __future__ import annotations

import dataclasses
import json

from ..errors import ConfigError
from ..pricing import Usage
from ..providers.base import Result

__all__ = ["encode_result", "decode_result"]

_FIELDS = tuple(f.name for f in dataclasses.fields(Result))


def encode_result(result: Result) -> bytes:
    """Return ``result`` as compact UTF-8 JSON."""
    if not isinstance(result, Result):
        raise ConfigError(f"only provider Results are cached, got {type(result).__name__}")
    body = {name: getattr(result, name) for name in _FIELDS}
    body["usage"] = dataclasses.asdict(result.usage)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def decode_result(data: bytes) -> Result:
    """Return the ``Result`` that ``encode_result`` turned into ``data``."""
    body = json.loads(data)
    body["usage"] = Usage(**body["usage"])
    return Result(**body)
