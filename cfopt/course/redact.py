"""Keep the grader's own secrets out of everything it prints or writes.

Graded kernels never see the grader's environment (``cfopt.course.sandbox.kernel_env`` builds
theirs from nothing), so a learner's code has no key to print. This is the second line: every
string of a report passes through ``Redactor`` before it reaches the CSV, the JSON or stderr.
It removes the value of each secret-looking variable of the grader's environment, and any run of
12 or more of its characters, so a key cut in half is caught too.

>>> r = Redactor({"ANTHROPIC_API_KEY": "sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "HOME": "/root"})
>>> r("raised KeyError: 'sk-ant-api03-abcdefghijklmnopqrstuvwxyz' in /root")
"raised KeyError: '[redacted]' in /root"
>>> r("the middle: ...defghijklmnopq...")
'the middle: ...[redacted]...'
"""
from __future__ import annotations

import os
import re
from typing import Any, Mapping

__all__ = ["Redactor", "SECRET_NAMES", "WINDOW"]

SECRET_NAMES = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE", re.I)
ALWAYS = ("ANTHROPIC_API_KEY", "FAL_KEY", "UNSPLASH_ACCESS_KEY", "CFOPT_API_KEY")
WINDOW = 12          # this many characters of a secret in a row count as the secret
_MIN_LENGTH = 8      # shorter values ("1", "true") are not secrets worth hiding


class Redactor:
    """Replace the secrets of ``env`` (default: this process's environment) in text and data."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        values = {v for k, v in env.items()
                  if (k in ALWAYS or SECRET_NAMES.search(k)) and len(v) >= _MIN_LENGTH}
        pieces = set()
        for v in values:
            pieces.update(v[i:i + WINDOW] for i in range(max(1, len(v) - WINDOW + 1)))
        self._values = sorted(values, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(p) for p in sorted(pieces, key=len, reverse=True))) \
            if pieces else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        spans: list[list[int]] = []
        for m in self._pattern.finditer(text):
            start, end = self._widen(text, m.start(), m.end())
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        for start, end in reversed(spans):
            text = text[:start] + "[redacted]" + text[end:]
        return text

    def _widen(self, text: str, start: int, end: int) -> tuple[int, int]:
        """Grow a matched window to the whole run of the secret around it."""
        piece = text[start:end]
        for v in self._values:
            at = v.find(piece)
            if at < 0:
                continue
            left, right = start, end
            while left > 0 and at - (start - left) > 0 and text[left - 1] == v[at - (start - left) - 1]:
                left -= 1
            while right < len(text) and at + (right - start) < len(v) and text[right] == v[at + (right - start)]:
                right += 1
            return left, right
        return start, end

    def data(self, value: Any) -> Any:
        """Redact every string inside lists and dicts."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, list):
            return [self.data(v) for v in value]
        if isinstance(value, dict):
            return {self(k) if isinstance(k, str) else k: self.data(v) for k, v in value.items()}
        return value
