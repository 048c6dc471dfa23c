"""Safe prompt compression: fewer tokens, same meaning.

A prompt is cut into *protected spans* that are copied byte for byte (fenced and inline code,
indented code lines, URLs, e-mail addresses, quoted strings, numbers with their units, template
placeholders in braces or brackets, XML-style tags, identifiers and paths) and the prose between
them, where three safe edits happen:

1. a politeness phrase is dropped where it *starts* a request ("Could you please write" ->
   "Write"); a "please" in the middle of a sentence is meaning and stays;
2. wordy phrases become short ones, matching whole words only ("in order to" -> "to"), keeping
   the case of the first letter;
3. runs of spaces collapse to one, trailing spaces go, three or more newlines become two.

Savings are counted in real tokens (``cfopt.tokens.count_tokens``), because a shorter word is
not always fewer tokens: "information" -> "info" saves none, "for example" -> "e.g." costs one.
Every default rule saves at least one token (a test checks it).

A stable prefix (a system prompt or shared preamble) is left alone, so provider prompt caching
still matches it: pass ``keep_prefix``.

>>> r = compress_prompt("Could you please summarize this in order to   share it? See https://ex.com/create-app")
>>> r.text
'Summarize this to share it. See https://ex.com/create-app'
>>> r.tokens_before - r.tokens_after
4
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import ConfigError
from .spans import protected_spans
from ..tokens import count_tokens

__all__ = [
    "CompressionRules", "CompressionResult", "DEFAULT_RULES", "compress_prompt",
    "protected_spans", "naive_compress",
]

# Wordy phrase -> short phrase. Each keeps the meaning in every context we could think of and
# saves at least one cl100k token. Left out on purpose: "with respect to" (calculus: "derivative
# with respect to x"), "is going to" ("is going to the park"), "the fact that", "in terms of".
DEFAULT_PHRASES: tuple[tuple[str, str], ...] = (
    ("in spite of the fact that", "although"),
    ("in light of the fact that", "because"),
    ("due to the fact that", "because"),
    ("it is important to note that", "note that"),
    ("at this point in time", "now"),
    ("at the present time", "now"),
    ("for the purpose of", "for"),
    ("in the event that", "if"),
    ("a large number of", "many"),
    ("in close proximity to", "near"),
    ("has the ability to", "can"),
    ("have the ability to", "can"),
    ("until such time as", "until"),
    ("on a daily basis", "daily"),
    ("in the near future", "soon"),
    ("with the exception of", "except"),
    ("as soon as possible", "ASAP"),
    ("give consideration to", "consider"),
    ("take into account", "consider"),
    ("the majority of", "most"),
    ("with regard to", "regarding"),
    ("make sure that", "ensure"),
    ("in addition to", "besides"),
    ("each and every", "every"),
    ("whether or not", "whether"),
    ("is able to", "can"),
    ("are able to", "can"),
    ("at all times", "always"),
    ("by means of", "by"),
    ("in order to", "to"),
    ("so as to", "to"),
    ("prior to", "before"),
)

# Phrases that open a request politely; removed only at the start of the text or a sentence.
# Longest first, so "could you please" wins over "could you".
DEFAULT_POLITENESS: tuple[str, ...] = (
    "i would like you to", "i'd like you to", "would you kindly", "would you please",
    "could you please", "can you please", "could you", "can you", "would you", "please", "kindly",
)
# Greetings that open a message. Dropped when they are a sentence of their own ("Hello!") or
# lead into a politeness phrase ("Hi, could you"), never before anything else: "Hello, world!"
# may be exactly what the program should print.
_GREETING = r"(?:hi|hello|hey)(?:[ \t]+there)?"


@dataclass(frozen=True, slots=True)
class CompressionRules:
    """What the compressor may do: phrases to shorten, politeness to drop, whitespace."""

    phrases: tuple[tuple[str, str], ...] = DEFAULT_PHRASES
    politeness: tuple[str, ...] = DEFAULT_POLITENESS
    drop_greetings: bool = True
    collapse_whitespace: bool = True

    def __post_init__(self) -> None:
        for pair in self.phrases:
            if (not isinstance(pair, tuple) or len(pair) != 2 or not all(isinstance(p, str) for p in pair)
                    or not pair[0].strip()):
                raise ConfigError(f"a phrase rule must be a pair (long, short) of strings, got {pair!r}")


DEFAULT_RULES = CompressionRules()


@dataclass(frozen=True, slots=True)
class CompressionResult:
    """One prompt before and after, with its real token counts and what changed."""

    original: str
    text: str
    tokens_before: int
    tokens_after: int
    changes: tuple[str, ...] = field(default=(), repr=False)

    @property
    def saved_tokens(self) -> int:
        return self.tokens_before - self.tokens_after

    @property
    def saved_ratio(self) -> float:
        """The share of tokens saved (0.0 for an empty prompt)."""
        return self.saved_tokens / self.tokens_before if self.tokens_before else 0.0


# --- the edits, applied to prose only ----------------------------------------------------------
def _case_like(model: str, word: str) -> str:
    """``word`` with the capitalisation of ``model`` (first letter or all caps)."""
    if len(model) > 1 and model.replace(" ", "").isupper():
        return word.upper()
    if model[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    words = r"[ \t]+".join(re.escape(w) for w in phrase.split())
    # Whole words only: no letter, digit, underscore, hyphen or apostrophe on either side.
    guard = ""
    if phrase.endswith(" of") and _QUANTIFIER.match(phrase):
        # "the majority of users" -> "most users", but "the majority of our users" would
        # become "most our users": a quantifier cannot stand before a determiner.
        guard = r"(?![ \t]+(?:" + "|".join(_DETERMINERS) + r")\b)"
    return re.compile(r"(?<![\w'’-])" + words + r"(?![\w'’-])" + guard, re.IGNORECASE)


_WORDISH = re.compile(r"[\w'’-]")
_QUANTIFIER = re.compile(r"(the|a) (majority|large number|number) of$", re.IGNORECASE)
_DETERMINERS = ("the", "a", "an", "our", "your", "their", "his", "her", "its", "my", "these",
                "those", "this", "that", "them", "us", "you", "which", "whom")


def _politeness_pattern(phrases: tuple[str, ...], greetings: bool) -> re.Pattern[str]:
    alts = "|".join(r"[ \t]+".join(re.escape(w) for w in p.split()) for p in phrases)
    lead_in = f"[ \\t]*,[ \\t]*(?=(?:{alts})(?![\\w'’-]))" if alts else "(?!)"
    greet = f"(?P<g>{_GREETING}(?:[ \\t]*[!.][ \\t]*|{lead_in}))?" if greetings else ""
    # At the start of a line or of a sentence (after . ! or ? and a space).
    return re.compile(r"(?:^|(?<=[.!?][ \t]))[ \t]*" + greet + r"(?:(?P<p>" + alts
                      + r")(?![\w'’-])[ \t,]*(?:\n[ \t]*)*)?", re.IGNORECASE | re.MULTILINE)


class _Compressor:
    def __init__(self, rules: CompressionRules) -> None:
        self.rules = rules
        self.phrases = [(_phrase_pattern(a), a, b) for a, b in rules.phrases]
        self.polite = (_politeness_pattern(rules.politeness, rules.drop_greetings)
                       if rules.politeness or rules.drop_greetings else None)

    def prose(self, seg: str, at_start: bool, changes: list[str], state: dict,
              before: str = "", after: str = "") -> str:
        """Edit one stretch of prose; ``before``/``after`` are the characters around it."""
        if state.get("question"):  # a dropped "could you" whose sentence began before code
            end = re.search(r"[.!?:\n]", seg)
            if end is not None:
                state["question"] = False
                if end.group() == "?":
                    seg = seg[:end.start()] + "." + seg[end.end():]
        if self.polite is not None:
            seg = self._drop_politeness(seg, at_start, changes, state)
        line = seg.rsplit("\n", 1)  # is the current line past a colon (the customer's data)?
        state["data"] = ":" in line[-1] or (len(line) == 1 and bool(state.get("data")))
        for pattern, long, short in self.phrases:
            def repl(m: re.Match[str], short: str = short, long: str = long) -> str:
                # Whole words across span edges too: "to" in "in order to1 day" is not a word.
                if (m.start() == 0 and _WORDISH.match(before)) or \
                        (m.end() == len(seg) and _WORDISH.match(after)):
                    return m.group(0)
                changes.append(f"{long!r} -> {short!r}")
                return _case_like(m.group(0), short)
            seg = pattern.sub(repl, seg)
        if self.rules.collapse_whitespace:
            seg = re.sub(r"[ \t]{2,}", " ", seg)
            seg = re.sub(r"[ \t]+\n", "\n", seg)
            seg = re.sub(r"\n{3,}", "\n\n", seg)
        return seg

    def _drop_politeness(self, seg: str, at_start: bool, changes: list[str], state: dict) -> str:
        out, pos = [], 0
        for m in self.polite.finditer(seg):
            if m.start() < pos or (m.start() == 0 and not at_start):
                continue  # a segment that follows code or a quote is mid-sentence
            line_start = seg.rfind("\n", 0, m.start()) + 1
            after_colon = ":" in seg[line_start:m.start()] or (line_start == 0 and state.get("data"))
            if m.start() > line_start and after_colon:
                continue  # after "Translate into French:" comes the customer's text, not a request
            removed = m.group(0).strip(" \t,")
            rest = seg[m.end():]
            if not removed or not _carries_request(removed, rest):
                continue  # nothing to drop, or no plain word follows to carry the request
            lead = m.group(0)[: len(m.group(0)) - len(m.group(0).lstrip(" \t"))]
            changes.append(f"dropped {removed!r}")
            word = re.match(r"[a-z]+(?![\w'’-])", rest)
            if word:  # the request now starts here: capitalise a plain lower-case word
                rest = rest[0].upper() + rest[1:]
            end_of_sentence = re.search(r"[.!?](?=[ \t])|[.!?]$|\n", rest)
            if m.group("p") and m.group("p").split()[0].lower() in ("could", "can", "would"):
                # "Could you explain X?" asked for an instruction: "Explain X."
                # (not past a colon: "Could you translate: Are you open?" keeps its "?")
                rest = re.sub(r"^([^.!?:\n]*)\?", r"\1.", rest, count=1)
                state["question"] = end_of_sentence is None  # its "?" comes after a span
            stop = len(rest) if end_of_sentence is None else end_of_sentence.end()
            out.append(seg[pos:m.start()] + lead + rest[:stop])
            pos = m.end() + stop
        out.append(seg[pos:])
        return "".join(out)


def _carries_request(removed: str, rest: str) -> bool:
    """Whether the word after a courtesy phrase can start the request once the phrase goes.

    A lower-case word can ("Please write"); a capital only after a sentence ended ("Hello!
    Write") or in text that shouts ("PLEASE WRITE"): otherwise it is a name or a title
    ("Please Please Me", "Kindly Reply Ltd"), as in cache normalization.
    """
    word = re.match(r"[A-Za-z]+", rest)
    if word is None:
        return False
    return (word.group().islower() or removed[-1] in ".!?"
            or (removed.isupper() and word.group().isupper()))


_COMPRESSORS: dict[CompressionRules, _Compressor] = {}


def compress_prompt(prompt: str, *, rules: CompressionRules = DEFAULT_RULES,
                    keep_prefix: str | int = 0) -> CompressionResult:
    """Compress ``prompt`` safely; ``keep_prefix`` (a prefix string or a length) stays as is."""
    if not isinstance(prompt, str):
        raise ConfigError(f"prompt must be a string, got {type(prompt).__name__}")
    if isinstance(keep_prefix, str):
        if not prompt.startswith(keep_prefix):
            raise ConfigError("keep_prefix is not a prefix of the prompt")
        keep_prefix = len(keep_prefix)
    if isinstance(keep_prefix, bool) or not isinstance(keep_prefix, int) \
            or not 0 <= keep_prefix <= len(prompt):
        raise ConfigError(f"keep_prefix must be a prefix or a length in [0, {len(prompt)}], "
                          f"got {keep_prefix!r}")
    comp = _COMPRESSORS.get(rules) or _COMPRESSORS.setdefault(rules, _Compressor(rules))
    head, body = prompt[:keep_prefix], prompt[keep_prefix:]
    changes: list[str] = []
    pieces: list[list] = []  # [text, is_prose]
    pos, state = 0, {}
    for a, b in protected_spans(body):
        pieces.append([comp.prose(body[pos:a], pos == 0, changes, state,
                                  body[pos - 1:pos], body[a:a + 1]), True])
        pieces.append([body[a:b], False])
        if "\n" in body[a:b]:
            state["data"] = False
        pos = b
    pieces.append([comp.prose(body[pos:], pos == 0, changes, state, body[pos - 1:pos]), True])
    if comp.rules.collapse_whitespace:  # trim the ends, never inside a protected span
        if not head and pieces[0][1]:
            pieces[0][0] = pieces[0][0].lstrip(" \t\n")
        if pieces[-1][1]:
            pieces[-1][0] = pieces[-1][0].rstrip(" \t\n")
    text = head + "".join(p[0] for p in pieces)
    return CompressionResult(prompt, text, count_tokens(prompt), count_tokens(text), tuple(changes))


# --- the exercise's way, kept to show what goes wrong ------------------------------------
NAIVE_REPLACEMENTS: dict[str, str] = {
    "please ": "", "could you ": "", "i would like you to ": "", "kindly ": "",
    "create": "make", "generate": "make", "information": "info", "application": "app",
    "approximately": "~", "for example": "e.g.", "in order to": "to",
}


def naive_compress(prompt: str) -> str:
    """The exercise-style compressor, for comparison only: lower-case, ``str.replace``, split.

    It edits inside words, URLs, code and quotes, loses case and newlines:

    >>> naive_compress('Please recreate `generate_report()` from "Create Info".')
    'remake `make_report()` from "make info".'
    """
    text = prompt.lower()
    for old, new in NAIVE_REPLACEMENTS.items():
        text = text.replace(old, new)
    return " ".join(text.split())
