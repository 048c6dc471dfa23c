"""Prompt normalization: only the changes that cannot change what a prompt means.

Two prompts share one exact cache key when they differ only in

- courtesy around the request: a greeting ("Hi,"), a leading "please", "kindly", "could / can /
  would / will you (please)", "I'd like you to", "I want you to", and a closing ", please",
  "Thanks!" or "Thank you.";
- the case of a sentence's first word ("Write" / "write"), where capitals are spelling, not meaning;
- spacing and the punctuation at the very end (".", "!", "...", and the "?" that a dropped
  "could you" asked with).

Everything else is kept as typed, because it may be the meaning: code (fenced, inline, or a
line that reads like code), quoted text, URLs, numbers with their units, hyphenated words, and
capitals inside a sentence, which mark names ("Define Polish" is not "Define polish"). A
courtesy word is dropped only where it opens or closes the request, only when a lower-case word
follows it ("Please Please Me" is a title) and only when two words or more remain.

>>> normalize_prompt("  Please   write a blog post about cats!!  ")
'write a blog post about cats'
>>> normalize_prompt("Could you kindly summarize this report? Thanks!")
'summarize this report'
>>> normalize_prompt("Define Polish") == normalize_prompt("Define polish")
False
>>> normalize_prompt("Hi-fi speakers"), normalize_prompt("Please Please Me:")
('hi-fi speakers', 'please Please Me:')
>>> normalize_prompt("Explain: int x = 1;") == normalize_prompt("Explain: int x = 1")
False
"""
from __future__ import annotations

import re
from functools import lru_cache

from ..cost.spans import protected_spans

__all__ = ["normalize_prompt", "POLITENESS", "GREETINGS", "THANKS", "QUESTION_WRAPPERS"]

# Phrases that open a request and only add courtesy; longest first ("could you please" before
# "could you"). The question forms are in QUESTION_WRAPPERS: their "?" goes with them.
POLITENESS = (
    "could you please", "can you please", "would you please", "will you please",
    "could you kindly", "would you kindly", "would you mind", "could you", "can you", "would you",
    "will you", "i would like you to", "i'd like you to", "i want you to", "please", "kindly",
)
QUESTION_WRAPPERS = frozenset(p for p in POLITENESS if p.split()[0] in ("could", "can", "would", "will"))
GREETINGS = ("hi there", "hello there", "hey there", "hi", "hello", "hey")
THANKS = ("thanks in advance", "thank you", "many thanks", "thanks", "thx", "please")

_WS = re.compile(r"\s+")
_WRAP = re.compile(r"(%s)\b,?[ ]+(?=(?-i:[a-z]))" % "|".join(re.escape(p) for p in POLITENESS),
                   re.IGNORECASE)
_GREET = re.compile(r"(?:%s)[,!.]+[ ]+" % "|".join(re.escape(g) for g in GREETINGS), re.IGNORECASE)
_THANKS = re.compile(r"(?<=[,.!?;…])[ ]*(?:%s)[.!]*$" % "|".join(re.escape(t) for t in THANKS),
                     re.IGNORECASE)
_FINAL = re.compile(r"[ ]*(?:[.!…]+|\.\.\.)$")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’]*")
# A line reads like code when it holds one of these outside prose: statement ends, braces,
# assignments and comparisons, calls, tags, pipes, backticks.
_CODE = re.compile(r"[;{}`|<>]|[^\s]\([^)]*\)|(?:^|\s)(?:=|==|!=|<=|>=|=>|->|\+=|-=|:=)(?:\s|$)")


def _protected(text: str) -> list[tuple[int, int]]:
    """The spans no normalization may touch: ``protected_spans`` plus lines that read like code."""
    spans = []
    for a, b in protected_spans(text):
        # A number's span may swallow the sentence's end ("16:9.", "508. Focus"): give it back.
        if text[a].isdigit() or text[a] in "$€£¥#":
            cut = text.find(". ", a, b)
            b = cut if cut != -1 else b
            while b > a + 1 and text[b - 1] == ".":
                b -= 1
        spans.append((a, b))
    start = 0
    for line in text.split("\n"):
        m = _CODE.search(line)
        if m:
            # "Explain this code: int x = 1;" -- the instruction before the colon stays prose.
            colon = line.rfind(": ", 0, m.start())
            spans.append((start + (colon + 2 if colon >= 0 else 0), start + len(line)))
        start += len(line) + 1
    spans.sort()
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def _fold(word: str) -> str:
    """A sentence's first word in lower case, unless its inner capitals spell a name (LinkedIn)."""
    return word.lower() if word[1:].islower() or word.isupper() or len(word) == 1 else word


_ENDS = re.compile(r"(?:[.!?:]|\n)\s*$")   # what ends a sentence before the next word
# Prose with none of these holds no span ``protected_spans`` would find but numbers, which no
# rule here changes: it skips the scan (most prompts do).
_PLAIN = re.compile(r"[^A-Za-z0-9 ,.!?:%$&'’\-\n]|://|www\.|\n[ ]{4}|(?<![\w’'])'|\b[a-z]+[A-Z]"
                    r"|[A-Za-z]\.[A-Za-z]")


def _prose(text: str, sentence_start: bool) -> tuple[str, bool]:
    """Collapse spaces and lower the first word of each sentence in one stretch of prose."""
    out, pos = [], 0
    for m in _WORD.finditer(text):
        before = text[pos:m.start()]
        out.append(before)
        if before.strip():
            sentence_start = _ENDS.search(before) is not None
        elif pos == 0 and "\n" in before:
            sentence_start = True
        word = m.group()
        out.append(_fold(word) if sentence_start else word)
        sentence_start = False
        pos = m.end()
    tail = text[pos:]
    out.append(tail)
    if tail.strip():
        sentence_start = _ENDS.search(tail) is not None
    return _WS.sub(" ", "".join(out)), sentence_start


def _pieces(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, is_prose), prose collapsed and case-folded where safe."""
    if _PLAIN.search(text) is None and not _CODE.search(text):
        return [(_prose(text, True)[0], True)] if text else []
    pieces, pos, start = [], 0, True
    for a, b in _protected(text):
        if a > pos:
            prose, start = _prose(text[pos:a], start)
            pieces.append((prose, True))
        pieces.append((text[a:b], False))
        start = False
        pos = b
    if pos < len(text):
        pieces.append((_prose(text[pos:], start)[0], True))
    return pieces


def _strip_head(head: str, more: int) -> tuple[str, bool]:
    """Drop a greeting and a courtesy phrase that open the request; say if it was a question.

    ``more``: how many words follow ``head`` in the rest of the prompt.
    """
    rest, question = head, False
    m = _GREET.match(rest)
    if m and len(rest[m.end():].split()) + more >= 2:
        rest = rest[m.end():]
    best = rest
    while True:  # "please kindly write ..." : one phrase after another, while two words remain
        m = _WRAP.match(best)
        if not m or len(best[m.end():].split()) + more < 2:
            break
        question |= m.group(1).lower() in QUESTION_WRAPPERS
        best = best[m.end():]
    return best, question


@lru_cache(maxsize=1 << 15)
def normalize_prompt(prompt: str) -> str:
    """Return ``prompt`` in the canonical form used for exact cache keys."""
    if not isinstance(prompt, str):
        raise TypeError(f"a prompt must be a string, got {type(prompt).__name__}")
    text = prompt.strip()
    pieces = _pieces(text)
    if not pieces:
        return text
    question = False
    if pieces[0][1]:
        more = sum(len(p.split()) for p, _ in pieces[1:])
        head, question = _strip_head(pieces[0][0].lstrip(), more)
        if head is not pieces[0][0]:
            head = _prose(head, True)[0]  # the request's first word now opens the sentence
        pieces[0] = (head, True)
    if pieces[-1][1]:
        tail = pieces[-1][0].rstrip()
        while True:  # "... please. Thanks!" : punctuation and courtesy, in turns
            stripped = _FINAL.sub("", tail)
            if question:
                stripped = re.sub(r"[ ]*\?+$", "", stripped)
            thanked = _THANKS.sub("", stripped)
            if thanked != stripped and (len(pieces) > 1 or len(thanked.split()) >= 2):
                stripped = thanked.rstrip(" ,;")
            if stripped == tail:
                break
            tail = stripped
        pieces[-1] = (tail, True)
    out = "".join(p for p, _ in pieces).strip()
    if out:
        return out
    # Nothing but courtesy ("Please!"): keep its words rather than an empty key.
    return _FINAL.sub("", "".join(p for p, _ in _pieces(text)).strip()) or text
