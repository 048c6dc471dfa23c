"""Protected spans: the parts of a prompt that no rewrite may touch, found by one scanner.

Fenced code (even left open), indented code lines, inline code, URLs, e-mail addresses, quoted
strings (straight, curly, guillemets; not apostrophes), XML-style tags, numbers with their unit,
paths, identifiers (``snake_case``, ``camelCase``, ``a.py``, ``call()``) and balanced ``{...}``
or ``[...]`` blocks (JSON, template placeholders). ``cfopt.cost.compress`` copies them byte for byte.
"""
from __future__ import annotations

import re

__all__ = ["protected_spans"]

_PROTECTED = re.compile(
    r"""
      (?P<fence>(?P<f>`{3,}|~{3,})[^\n]*\n.*?(?P=f)     # fenced code (even mid-line)
               |(?:`{3,}|~{3,}).*\Z)                  # ...left open to the end
    | (?P<indented>^(?:\ {4}|\t)[^\n]*$)                 # an indented code line
    | (?P<inline>(?P<ticks>`+)[^`\n][^\n]*?(?P=ticks))   # `inline code`
    | (?P<url>\b(?:[a-zA-Z][a-zA-Z0-9+.-]*://|www\.)[^\s<>"'`]*[^\s<>"'`.,;:!?)\]])
    | (?P<email>\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b)
    | (?P<dquote>"[^"\n]*")                              # "double quoted"
    | (?P<curly>“[^”\n]*”|‘[^’\n]*’|«[^»\n]*»)           # typographic quotes
    | (?P<squote>(?<![\w'’])'[^'\n]+'(?![\w'’]))         # 'single quoted', but not don't
    | (?P<tag></?[A-Za-z][\w:-]*(?:\s[^<>\n]*)?/?>)      # <document> tags
    | (?P<number>[$€£¥#]?[+-]?\d[\d,._:/x-]*\d?     # 5 MB, 3.5GHz, 40%, but not "5 in"
                 (?:\ ?(?:%|(?!(?:in|on|at|to|of|and|or|for|the|a|an|is|are|with|by|from|as|per)\b)
                          [A-Za-zµ°]{1,12}\b))?)
    | (?P<path>(?<![\w/])(?:~|\.{1,2})?/[\w.-]+(?:/[\w.-]+)+)          # /usr/bin/python
    | (?P<ident>\b\w+(?:(?:\.|::|->|/|\\)\w+)+(?:\(\))?                # utils.py, a::b
               |\b[A-Za-z0-9]*_\w*(?:\(\))?                            # snake_case
               |\b[a-z]+[A-Z]\w*(?:\(\))?                              # camelCase
               |\b\w+\(\))                                             # call()
    """,
    re.VERBOSE | re.MULTILINE | re.DOTALL,
)


def _balanced_end(text: str, start: int) -> int:
    """End (exclusive) of the bracket block opening at ``start``, or -1 when it never closes."""
    close = {"{": "}", "[": "]"}[text[start]]
    depth, quote, i = 0, False, start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quote = False
        elif ch == '"':
            quote = True
        elif ch == text[start]:
            depth += 1
        elif ch == close:
            depth -= 1
            if depth == 0:
                return i + 1
        elif ch == "\n" and text[start] == "[" and text[i - 1:i] == "\n":
            return -1  # a blank line ends a stray "[": it was prose, not a list
        i += 1
    return -1


def protected_spans(text: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` spans of ``text`` that compression must copy byte for byte.

    >>> t = 'Use `x  = 1` and see "A  B" at https://a.io/b, {name}, 5 MB.'
    >>> [t[a:b] for a, b in protected_spans(t)]
    ['`x  = 1`', '"A  B"', 'https://a.io/b', '{name}', '5 MB']
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    while pos < len(text):
        m = _PROTECTED.search(text, pos)
        limit = m.start() if m else len(text)
        # A balanced {...} or [...] block (JSON, a template placeholder) that opens first wins.
        block = None
        for i in range(pos, limit):
            if text[i] in "{[" and (end := _balanced_end(text, i)) != -1:
                block = (i, end)
                break
        if block is not None:
            spans.append(block)
            pos = block[1]
        elif m is None:
            break
        else:
            if m.end() > m.start():
                spans.append((m.start(), m.end()))
            pos = max(m.end(), m.start() + 1)
    return spans
