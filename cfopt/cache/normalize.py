"""Prompt normalization: only the changes that cannot change what a prompt means.

Two prompts that differ only in letter case, spacing, a leading politeness phrase or the
punctuation at the very end ask for the same thing, so they share one cache key. Nothing else is
touched: a different word, number or negation is a different request.

>>> normalize_prompt("  Please   write a blog post about CATS!!  ")
'write a blog post about cats'
>>> normalize_prompt("Could you kindly summarize this report?")
'summarize this report'
>>> normalize_prompt("Write 500 words about cats") == normalize_prompt("Write 800 words about cats")
False
"""
from __future__ import annotations

import re

__all__ = ["normalize_prompt", "POLITENESS"]

# Leading phrases that only add courtesy; longest first so "could you please" wins over "could you".
POLITENESS = (
    "could you please", "can you please", "would you please", "will you please",
    "could you kindly", "would you kindly", "could you", "can you", "would you", "will you",
    "i would like you to", "i'd like you to", "please", "kindly", "hi", "hello", "hey",
)
_LEADING = re.compile(r"^(?:(?:%s)\b[\s,:;!.-]*)+" % "|".join(re.escape(p) for p in POLITENESS))
_TRAILING = re.compile(r"[\s.!?;,:…]+$")
_SPACES = re.compile(r"\s+")


def normalize_prompt(prompt: str) -> str:
    """Return ``prompt`` in the canonical form used for exact cache keys."""
    if not isinstance(prompt, str):
        raise TypeError(f"a prompt must be a string, got {type(prompt).__name__}")
    text = _SPACES.sub(" ", prompt.casefold()).strip()
    stripped = _LEADING.sub("", text)
    stripped = _TRAILING.sub("", stripped)
    # A prompt made only of courtesy ("Please!") keeps its words rather than becoming empty.
    return stripped or _TRAILING.sub("", text) or text
