"""Text features for de-duplication: words, light stems, numbers, negations, opposites, names,
dates, topics and quoted bodies, and the guards that compare two prompts' features.

Kept deliberately small and readable: no model, no download, the same answer everywhere.

>>> words("Write 3,000 words -- don't use emojis!")
['write', '3000', 'words', 'do', 'not', 'use', 'emojis']
>>> sorted(content_stems(words("Writing two blog posts about cats")))
['2', 'blog', 'cat', 'post', 'writ']
>>> numbers(words("Save 10% on 2 orders over $3.50"))
('10', '2', '3.50')
>>> split_payload("Classify this review: It broke after a week, and nobody answered.")
('Classify this review', 'it broke after a week and nobody answered')
>>> sorted(dates(words("our May newsletter, sent on a Monday in september")))
['may', 'monday', 'september']
>>> topic_words("Write a blog post about running in winter, for beginners.")
['running', 'in', 'winter']
>>> sorted(names("Write a LinkedIn caption for Acme's staff. Then thank the U.S. team."))
['acme', 'linke', 'u.s']
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable, NamedTuple

__all__ = ["words", "stem", "content_stems", "content_sequence", "numbers", "polarity", "opposites",
           "split_payload", "dates", "names", "name_key", "topic_words", "Features", "features",
           "names_or_dates_changed", "topic_changed", "STOPWORDS", "OPPOSITES", "DATE_WORDS",
           "PAYLOAD_WORDS", "TOPIC_WORDS", "PREFIX"]

_WORD = re.compile(r"[a-z0-9]+(?:[.,'][a-z0-9]+)*")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
_GROUPED = re.compile(r"\d{1,3}(,\d{3})+(\.\d+)?")
# A colon followed by white space ("...: text", "...:\n\ntext"), not "16:9" or "10:30".
_COLON = re.compile(r":\s+")
_ANY_CASE_WORD = re.compile(r"[A-Za-z0-9]+(?:[.,'][A-Za-z0-9]+)*")
_ABOUT = re.compile(r"\babout\b([^.,;:!?\n]*)", re.IGNORECASE)  # "about X" up to the clause's end
_SENTENCE_END = re.compile(r"[.!?:\n\"“]\s*$")  # what may come before a sentence's first word
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

# Months and weekdays: "our May newsletter" and "our September newsletter" share every other
# word. "may" is a modal verb too; harmless here, since a date vetoes a match only when both
# sides name a date the other lacks (see ``ContentDeduplication``).
DATE_WORDS = frozenset("""
may january february march april june july august september october november december
monday tuesday wednesday thursday friday saturday sunday
""".split())
# A topic is a noun phrase: "about running in winter", not the rest of a long sentence.
TOPIC_WORDS = 4
PREFIX = 5  # stems sharing their first 5 letters match ("organise"/"organising")
# A body after a colon this long (in words) is text the request carries, not instruction.
PAYLOAD_WORDS = 3


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


def split_payload(text: str) -> tuple[str, str]:
    """Split ``text`` into its instruction and the body it quotes after a colon ("" if none).

    The body is returned as its words joined by single spaces, so case, spacing and
    punctuation do not count; a body shorter than ``PAYLOAD_WORDS`` words stays in the
    instruction.
    """
    parts = _COLON.split(text, maxsplit=1)
    if len(parts) == 2:
        body = words(parts[1])
        if len(body) >= PAYLOAD_WORDS:
            return parts[0], " ".join(body)
    return text, ""


def dates(tokens: list[str]) -> frozenset[str]:
    """Return the month and weekday names (and today, tomorrow...) in ``tokens``."""
    return frozenset(w for w in tokens if w in DATE_WORDS)


def names(text: str) -> frozenset[str]:
    """Return the capitalized words inside sentences of ``text`` as ``name_key``: likely names.

    A sentence's first word is capitalized anyway, so it is left out; so is "I".
    """
    found = set()
    for m in _ANY_CASE_WORD.finditer(text):
        w = m.group()
        if w[0].isupper() and w != "I" and m.start() and not _SENTENCE_END.search(text, 0, m.start()):
            found.update(name_key(t) for t in words(w))
    return frozenset(found)


def name_key(token: str) -> str:
    """Return the form a word of ``words`` takes to be compared with names: no possessive,
    stemmed, cut to 5 letters ("Iraq's" and "Iraq" are one name)."""
    return stem(token.removesuffix("'s"))[:5]


def topic_words(text: str) -> list[str]:
    """Return the first ``TOPIC_WORDS`` words after "about", within its clause: the subject."""
    return [w for m in _ABOUT.finditer(text) for w in words(m.group(1))[:TOPIC_WORDS]]


# -- what de-duplication reads from a prompt, and the guards that compare two ---------------------
class Features(NamedTuple):
    """What the detector reads from one prompt."""

    tokens: list[str]             # the instruction's words (a quoted body left out)
    terms: frozenset[str]         # its content stems, cut to ``PREFIX`` letters
    sequence: tuple[str, ...]     # its content stems in order, repeats kept
    signature: tuple              # what must be equal for a match, whatever the score
    names: frozenset[str]         # capitalized words inside sentences: likely names
    dates: frozenset[str]         # months and weekdays
    forms: frozenset[str]         # every word as ``name_key``: where the other's names are sought
    topic: frozenset[str]         # the terms after "about": what the request is about


def _prefix_terms(tokens: Iterable[str]) -> frozenset[str]:
    return frozenset(t[:PREFIX] for t in content_sequence(list(tokens)))


def features(text: str) -> Features:
    """Return what de-duplication compares in ``text``."""
    # A request that quotes a text after a colon ("Classify this review: ...") is scored on
    # its instruction alone and matches only the very same text: two reviews built from the
    # same stock sentences share most words, yet each needs its own answer.
    instruction, body = split_payload(text)
    tokens = words(instruction)
    # The signature's parts must be equal on both sides. Numbers: "500 words" is not "800
    # words". Negation parity: "do not mention" flips a request. Body: see above.
    signature = (tuple(sorted(numbers(tokens))), polarity(tokens), body)
    return Features(tokens, _prefix_terms(tokens), tuple(content_sequence(tokens)), signature,
                    names(instruction), dates(tokens), frozenset(map(name_key, tokens)),
                    _prefix_terms(topic_words(instruction)))


def _swapped(a: frozenset[str], b: frozenset[str], a_words: frozenset[str],
             b_words: frozenset[str]) -> bool:
    """Say whether each side has one of these words that the other side lacks: a swap."""
    return not a <= b_words and not b <= a_words


def names_or_dates_changed(a: Features, b: Features) -> bool:
    """Say whether a name or a date was swapped for another ("LinkedIn" / "Facebook").

    A name (a capitalized word inside a sentence: a person, a company, a place, a month) or a
    date is the subject itself; no rewording swaps one for another, while a paraphrase may
    drop one ("said Tuesday"), which the score weighs. Names are looked for among the other
    side's words in any case, so a prompt typed in lower case keeps matching.
    """
    return (_swapped(a.names, b.names, a.forms, b.forms)
            or _swapped(a.dates, b.dates, frozenset(a.tokens), frozenset(b.tokens)))


def topic_changed(a: Features, b: Features) -> bool:
    """Say whether a word of what a request is "about" was swapped for another.

    The topic is the request's subject ("about running in winter" / "about winter pruning"):
    it holds few of the words, so a score over all of them forgives a changed topic word.
    """
    return _swapped(a.topic, b.topic, a.terms, b.terms)
