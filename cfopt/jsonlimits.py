"""Checks a JSON text needs beyond ``json.loads``: nesting depth before parsing, lone surrogates after.

Python's ``json`` parser recurses once per ``[`` or ``{``: a line nested a few thousand levels
deep raises ``RecursionError`` (not a ``ValueError``), so depth is measured on the raw bytes
first, without parsing. JSON's ``\\ud800`` escapes can name half of a surrogate pair, which
``json.loads`` accepts and UTF-8 cannot encode; ``lone_surrogate`` finds such strings (keys
included) after parsing, so the caller can refuse them naming the field.

Both the workload loader and the local server use these, each raising its own error.

>>> too_deep(b'{"a": [[["x"]]]}', 3)
8
>>> too_deep(b'{"a": "[[[[[[[["}', 3) is None      # brackets inside strings do not count
True
>>> import json
>>> lone_surrogate(json.loads('{"model": "haiku", "messages": [{"content": "\\\\ud800"}]}'))
'messages.0.content'
>>> lone_surrogate(json.loads('"\\\\ud83d\\\\ude00"')) is None   # a pair is one character
True
"""
from __future__ import annotations

import re
from typing import Any

__all__ = ["too_deep", "lone_surrogate", "MAX_DEPTH"]

MAX_DEPTH = 64   # far above any request's real nesting, far below Python's recursion limit

# A whole string (atomic: never backtracks into itself), or one bracket.
_TOKENS = re.compile(rb'"(?>[^"\\]++|\\.)*+"|[\[\]{}]')
_SURROGATE = re.compile("[\ud800-\udfff]")


def too_deep(raw: bytes, limit: int = MAX_DEPTH) -> int | None:
    """The byte offset where nesting first passes ``limit`` levels, or None if it never does."""
    if raw.count(b"[") + raw.count(b"{") <= limit:  # cannot pass the limit: skip the scan
        return None
    depth = 0
    for m in _TOKENS.finditer(raw):
        c = raw[m.start()]
        if c in b"[{":
            depth += 1
            if depth > limit:
                return m.start()
        elif c in b"]}":
            depth -= 1
    return None


def lone_surrogate(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (or key) holding a lone surrogate, else None.

    A key that holds one appears in the path escaped (``\\ud800``), so the path can be printed.

    The path of a top-level string is ``""``; call on already-parsed JSON whose depth is
    bounded (``too_deep``), since this walks it recursively.
    """
    if isinstance(value, str):
        return path if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            shown = str(key).encode("utf-8", "backslashreplace").decode("utf-8")  # printable
            here = f"{path}.{shown}" if path else shown
            if isinstance(key, str) and _SURROGATE.search(key):
                return here
            found = lone_surrogate(item, here)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = lone_surrogate(item, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None
