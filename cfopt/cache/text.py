"""Text features for de-duplication: words, light stems, numbers, negations and opposites.

Kept deliberately small and readable: no model, no download, the same answer everywhere.

>>> words("Write 3,000 words -- don't use emojis!")
['write', '3000', 'words', 'do', 'not', 'use', 'emojis']
>>> sorted(content_stems(words("Writing two blog posts about cats")))
['2', 'blog', 'cat', 'post', 'writ']
>>> numbers(words("Save 10% on 2 orders over $3.50"))
('10', '2', '3.50')
"""
from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["words", "stem", "content_stems", "content_sequence", "numbers", "polarity", "opposites", "STOPWORDS",
           "OPPOSITES"]

_WORD = re.compile(r"[a-z0-9]+(?:[.,'][a-z0-9]+)*")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_GROUPED = re.compile(r"\d{1,3}(,\d{3})+(\.\d+)?")
_NUMBER_WORDS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                 "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
                 "twelve": "12", "twenty": "20", "hundred": "100", "thousand": "1000"}

STOPWORDS = frozenset("""
a an the and or but if of to in on at by for with from as into onto over under about than then
that this these those it its it's is are was were be been being am do does did doing have has
had having i me my we our us you your he him his she her they them their what which who whom
whose when where why how all any both each few more most other some such only own same so too
very can will just should would could may might must shall also there here up out s t ll re ve
d m o y said says say according while after before during since until through per via
please kindly hi hello hey thanks thank
""".split())

# Words whose presence on one side only flips the meaning.
NEGATIONS = frozenset({"not", "no", "never", "none", "nor", "nothing", "neither", "without",
                       "cannot", "nobody", "nowhere"})
OPPOSITES: dict[str, str] = {}
for _a, _b in [("on", "off"), ("with", "without"), ("enable", "disable"), ("enabled", "disabled"),
               ("open", "close"), ("start", "stop"), ("increase", "decrease"), ("more", "less"),
               ("up", "down"), ("in", "out"), ("before", "after"), ("add", "remove"),
               ("include", "exclude"), ("buy", "sell"), ("rise", "fall"), ("rose", "fell"),
               ("win", "lose"), ("won", "lost"), ("accept", "reject"), ("positive", "negative"),
               ("true", "false"), ("yes", "no"), ("max", "min"), ("maximum", "minimum"),
               ("higher", "lower"), ("above", "below"), ("first", "last"), ("light", "dark"),
               ("lock", "unlock"), ("subscribe", "unsubscribe"), ("allow", "block"),
               ("import", "export"), ("upload", "download"), ("login", "logout"),
               ("show", "hide"), ("male", "female"), ("old", "new"), ("short", "long")]:
    OPPOSITES[_a], OPPOSITES[_b] = _b, _a


def words(text: str) -> list[str]:
    """Return the lower-case words of ``text``, "n't" spelled "not", numbers without commas."""
    text = text.casefold().replace("n't", " not").replace("’", "'")
    out = []
    for w in _WORD.findall(text):
        w = w.rstrip(".,'")
        if "," in w and _GROUPED.fullmatch(w):
            w = w.replace(",", "")
        out.append(w)
    return out


@lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """Return a light stem of ``word``: common English suffixes removed, short words kept."""
    if len(word) <= 3 or word[0].isdigit():
        return word
    for suffix in ("ations", "ation", "ings", "ing", "edly", "ies", "ied", "ed", "es", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            return base + "y" if suffix in ("ies", "ied") else base
    return word


def content_stems(tokens: list[str]) -> set[str]:
    """Return the stems of the words that carry content (stopwords and negations left out)."""
    return set(content_sequence(tokens))


def content_sequence(tokens: list[str]) -> list[str]:
    """Return the stems of the content words in ``tokens``, in order."""
    return [stem(_NUMBER_WORDS.get(w, w)) for w in tokens
            if w not in STOPWORDS and w not in NEGATIONS]


def numbers(tokens: list[str]) -> tuple[str, ...]:
    """Return the numbers in ``tokens`` (digits, or number words as digits), in order."""
    return tuple(_NUMBER_WORDS.get(w, w) for w in tokens
                 if _NUMBER.match(_NUMBER_WORDS.get(w, w)))


def polarity(tokens: list[str]) -> int:
    """Return the parity of negation words: 1 when ``tokens`` negate an odd number of times."""
    return sum(w in NEGATIONS for w in tokens) % 2


def opposites(a: list[str], b: list[str]) -> bool:
    """Say whether a word on one side only has its opposite on the other side only."""
    only_a, only_b = set(a) - set(b), set(b) - set(a)
    return any(OPPOSITES.get(w) in only_b for w in only_a)
