"""How long the simulated Claude's answers are, in tokens.

A free-form answer's length follows the output-token distribution of real LLM
traffic: the Azure LLM inference trace of 2023-11-16, conversation service, 19,366 requests
(Patel et al., "Splitwise: Efficient generative LLM inference using phase splitting", ISCA 2024;
Azure/AzurePublicDataset, CC-BY 4.0). Its generated tokens, computed by us from the trace:
min 7, p1 16, p5 41, p10 54, p25 85, median 129, p60 177, p65 217, p70 384, p75 395, p90 424,
p95 451, p99 601, max 1000. The distribution is two-humped (short replies and ~400-token
answers), so cfopt interpolates these quantiles (log-linearly) instead of fitting one curve.
A model's ``length_scale`` from the catalog stretches it (bigger models write a little longer).

A length asked for in the prompt wins: "in 500 words" (~1.33 tokens per English word),
"3 sentences" (~22 tokens each), "2 paragraphs" (~90), "5 tips"/"3 bullet points" (~18 per
item), "under 280 characters" (~4 characters per token), "a tweet", "one line", "a tagline",
"a headline" (~12); "short"/"brief"/"concise" shrink a free answer, "detailed"/"in-depth" grow
it. Real models follow such requests loosely, so each gets a +-15% spread.

Some requests fix the answer's length without naming it: "5 email subject lines" (~12 each),
"10 SEO keywords" (~7 each: a short phrase on its own line), "in one word" and a label picked
by a classification ("Classify ... as positive or negative", "Route this ticket to billing or
shipping": ~2 tokens, "Negative."), and a translation ("Translate into French: <text>"), as
long as the text after the colon at ~2 tokens per source word (1.33 for the English plus ~50%:
cl100k spends more tokens on other languages; measured 8 vs 12-16 on a UI string); a
translation is checked first, so a number inside the text to translate is not a length request.
These are cfopt assumptions in the spirit of the rules above.

Everything is fixed by a hash of (seed, model, system, prompt), never by call order: the same
request always gets the same answer.

>>> n = output_length(0, "claude-sonnet-5-5", None, "Describe a lighthouse in 12 words.")
>>> 9 <= n <= 19
True
>>> requested_length("Summarize the news in 3 sentences.")
('tokens', 66)
>>> requested_length("Classify this review as positive or negative: Great mug!")
('tokens', 2.0)
"""
from __future__ import annotations

import bisect
import math
import re
from functools import lru_cache

from .sampling import unit_interval

__all__ = ["TRACE_OUTPUT_QUANTILES", "TOKENS_PER_WORD", "natural_length", "requested_length",
           "output_length"]

# (cumulative share, generated tokens) from the Azure conv trace (see the module docstring).
TRACE_OUTPUT_QUANTILES: tuple[tuple[float, int], ...] = (
    (0.0, 7), (0.01, 16), (0.05, 41), (0.10, 54), (0.25, 85), (0.50, 129), (0.60, 177),
    (0.65, 217), (0.70, 384), (0.75, 395), (0.90, 424), (0.95, 451), (0.99, 601), (1.0, 1000))
_Q_SHARES = [q for q, _ in TRACE_OUTPUT_QUANTILES]
TOKENS_PER_WORD = 1.33          # English prose in cl100k; OpenAI's rule of thumb (~0.75 word/token)
_TOKENS_PER = {"sentence": 22, "paragraph": 90, "item": 18, "line": 12, "tweet": 45,
               "keyword": 7, "label": 2}
_TRANSLATION_PER_WORD = 2.0     # tokens per source word of a translation (see the docstring)
_SHORT_SCALE, _LONG_SCALE = 0.45, 2.0  # free-length stretch: "short"/"brief", "detailed"/"long"


def natural_length(u: float) -> int:
    """The trace's output length at quantile ``u`` in [0, 1)."""
    i = min(max(bisect.bisect_right(_Q_SHARES, u), 1), len(_Q_SHARES) - 1)
    (q0, n0), (q1, n1) = TRACE_OUTPUT_QUANTILES[i - 1], TRACE_OUTPUT_QUANTILES[i]
    f = (u - q0) / (q1 - q0)
    return max(1, round(math.exp(math.log(n0) + f * (math.log(n1) - math.log(n0)))))


_NUMBERS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split())}
_NUMBERS.update({"a": 1, "an": 1, "single": 1, "a single": 1, "a couple": 2, "couple": 2,
                 "a few": 3, "several": 4, "thirty": 30, "forty": 40, "fifty": 50,
                 "hundred": 100, "a hundred": 100})
_ADJECTIVES = {"short", "long", "brief", "quick", "key", "catchy", "creative", "practical",
               "simple", "more", "than", "under", "about", "around", "exactly", "max", "most",
               "bullet", "fun", "new", "great", "good", "best", "sentence", "paragraph",
               "email", "seo"}
# A counted unit, and how many tokens one of it takes. Small counts of some units are no length
# request ("a character named Bob", "a way to", "one step further"): _MIN_COUNT says so.
_UNITS = {"word": TOKENS_PER_WORD, "sentence": _TOKENS_PER["sentence"],
          "paragraph": _TOKENS_PER["paragraph"], "character": 0.25, "char": 0.25}
_UNITS.update(dict.fromkeys(("headline", "title", "tagline", "slogan", "hashtag", "name", "line",
                             "subject"), _TOKENS_PER["line"]))
_UNITS.update(dict.fromkeys(("keyword", "keyphrase"), _TOKENS_PER["keyword"]))
_UNITS.update(dict.fromkeys(("bullet", "tip", "point", "idea", "item", "reason", "way", "step",
                             "example", "question", "option", "benefit", "fact"), _TOKENS_PER["item"]))
_UNITS.update({u + "s": v for u, v in _UNITS.items()})
_MIN_COUNT = {TOKENS_PER_WORD: 3, 0.25: 20, _TOKENS_PER["item"]: 2}
# Words are matched on a lower-cased word list: set look-ups, much faster than big regexes.
_WORDS_RE = re.compile(r"[a-z0-9]+")
_ONE_LINER = ({"liner", "tagline", "slogan", "headline", "title"}, {"subject line"})
_TWEET = ({"tweet", "caption"}, {"alt text"})
_LONG = ({"detailed", "comprehensive", "thorough", "indepth"},
         {"in depth", "long form", "complete guide", "step by"})
_SHORT = ({"short", "brief", "briefly", "concise", "concisely", "quick", "summarize",
           "summarise", "tldr"}, {"tl dr"})
# A label or a single word: classifying, routing, "answer in one word".
_LABEL = ({"classify", "categorize", "categorise"},
          {"one word", "single word", "route this", "label this"})
_TRANSLATE = {"translate"}


def _count_before(words: list[str], i: int) -> int | None:
    """The number written just before ``words[i]`` ("500", "three", "a few"), past adjectives."""
    j = i - 1
    while j >= 0 and words[j] in _ADJECTIVES and i - j < 5:
        j -= 1
    if j < 0:
        return None
    last = words[j]
    if last.isdigit():
        return int(last) if len(last) <= 5 else None
    if j > 0:
        pair = _NUMBERS.get(words[j - 1] + " " + last)
        if pair is not None:
            return pair
    return _NUMBERS.get(last)


def _mentions(found: set[str], bigrams: list[str], lists: tuple[set[str], set[str]]) -> bool:
    singles, pairs = lists
    return not singles.isdisjoint(found) or any(b in pairs for b in bigrams)


@lru_cache(maxsize=8192)
def requested_length(text: str) -> tuple[str, float]:
    """What ``text`` asks for: ("tokens", n), ("scale", factor) or ("free", 1.0)."""
    head, colon, quoted = text.lower().partition(":")
    if colon and not _TRANSLATE.isdisjoint(_WORDS_RE.findall(head)):
        n = len(_WORDS_RE.findall(quoted))
        if n:  # a translation is as long as what it translates
            return "tokens", n * _TRANSLATION_PER_WORD
    words = _WORDS_RE.findall(text.lower())
    for i, w in enumerate(words):
        per = _UNITS.get(w)
        if per is not None:
            n = _count_before(words, i)
            if n and n >= _MIN_COUNT.get(per, 1):
                return "tokens", n * per
    found = set(words)
    bigrams = [a + " " + b for a, b in zip(words, words[1:])]
    if _mentions(found, bigrams, _LABEL):
        return "tokens", float(_TOKENS_PER["label"])
    if _mentions(found, bigrams, _ONE_LINER):
        return "tokens", float(_TOKENS_PER["line"])
    if _mentions(found, bigrams, _TWEET):
        return "tokens", float(_TOKENS_PER["tweet"])
    if _mentions(found, bigrams, _LONG):
        return "scale", _LONG_SCALE
    if _mentions(found, bigrams, _SHORT):
        return "scale", _SHORT_SCALE
    return "free", 1.0


def output_length(seed: int, model: str, system: str | None, prompt: str,
                  length_scale: float = 1.0) -> int:
    """The answer's length in tokens, before any ``max_tokens`` cap; fixed by the request."""
    u = unit_interval(seed, model, system, prompt)
    kind, value = requested_length(prompt)
    if kind == "free" and system:
        kind, value = requested_length(system)
    if kind == "tokens":
        return max(1, round(value * (0.85 + 0.30 * u)))
    return max(1, round(natural_length(u) * value * length_scale))
