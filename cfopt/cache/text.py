"""Text features for de-duplication: words, their canonical terms, and what a pair's guards read.

A word becomes a *term* in three steps, all offline and the same everywhere: a synonym becomes
its group's first word (``SYNONYMS``: "compose" and "draft" are "write"), a light stemmer takes
common suffixes off, and the stem is cut to ``PREFIX`` letters ("organise" / "organising").
Typos are resolved per pair (``typo_aliases``): a word no English dictionary knows, one slip
away from a word on the other side, stands for that word ("gooming" / "grooming"). The
dictionary is pyspellchecker's English word list, loaded on first need.

>>> words("Write 3,000 words -- don't use emojis!")
['write', '3000', 'words', 'do', 'not', 'use', 'emojis']
>>> sorted(content_stems(words("Composing two blog posts about cats")))
['2', 'blog', 'cat', 'post', 'write']
>>> numbers(words("Save 10% on 2 orders over $3.50"))
('10', '2', '3.50')
>>> split_payload("Classify this review: It broke after a week, and nobody answered.")
('Classify this review', 'it broke after a week and nobody answered')
>>> sorted(names("Write a LinkedIn caption for Acme's staff. Then thank the U.S. team."))
['acme', 'linke', 'u.s']
>>> typo_aliases(features("a blog post about gooming cats"), features("a blog post about grooming cats"))
{'gooming': 'grooming'}
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterable, NamedTuple


__all__ = ["words", "stem", "term", "content_stems", "content_sequence", "numbers", "polarity",
           "split_payload", "dates", "names", "name_key", "topic_words", "Features", "features",
           "is_word", "within_one_slip", "slip_targets", "typo_aliases", "Shape", "shape", "STOPWORDS", "NEGATIONS", "OPPOSITES",
           "DATE_WORDS", "SYNONYMS", "PHRASE_SYNONYMS", "FUNCTION_CLASSES", "QUESTION_WORDS", "PAYLOAD_WORDS", "ANCHORS",
           "TOPIC_WORDS", "PREFIX", "TYPO_MIN"]

_WORD = re.compile(r"[a-z0-9]+(?:[.,'][a-z0-9]+)*")
_ALNUM = re.compile(r"[a-z0-9]+")
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
               ("show", "hide"), ("male", "female"), ("old", "new"), ("short", "long"),
               ("man", "woman"), ("men", "women"), ("boy", "girl")]:
    OPPOSITES[_a], OPPOSITES[_b] = _b, _a
# Months, weekdays and days: "our May newsletter" and "our September newsletter" share every
# other word. ("may" is a modal verb too; harmless, since a date vetoes a match only when both
# sides name one the other lacks.)
DATE_WORDS = frozenset("""
may january february march april june july august september october november december
monday tuesday wednesday thursday friday saturday sunday today tomorrow yesterday tonight
""".split())
# Words that say the same thing in a request; each group maps to its first word. Only general
# English: the words a request is phrased with, not the things it is about.
SYNONYMS: dict[str, str] = {w: group[0] for group in (
    ("write", "create", "compose", "draft", "craft", "produce", "generate", "prepare"),
    ("suggest", "propose", "recommend", "brainstorm"),
    ("short", "brief", "concise"),
    ("instructions", "directions"), ("instruction", "direction"),
    ("summarize", "summarise", "recap", "condense"),
    ("classify", "categorize", "categorise"),
    ("extract", "identify"),
    ("route", "assign"),
    ("image", "picture", "photo", "photograph", "pic"),
    ("images", "pictures", "photos", "photographs", "pics"),
    ("customer", "client"), ("customers", "clients"),
    ("big", "large"), ("buy", "purchase"), ("help", "assist"), ("use", "utilize", "utilise"),
    ("quick", "fast", "rapid"), ("answer", "reply", "respond"), ("error", "mistake"),
    ("kid", "child"), ("kids", "children"), ("begin", "commence"), ("end", "finish"),
) for w in group}
# Phrases that say what one word says ("sum up this article" is "summarize this article").
PHRASE_SYNONYMS = {"sum up": "summarize", "sums up": "summarizes", "summing up": "summarizing",
                   "come up with": "suggest", "came up with": "suggested", "pull out": "extract",
                   "find out": "discover", "figure out": "determine"}
_PHRASES = re.compile(r"\b(%s)\b" % "|".join(re.escape(p) for p in PHRASE_SYNONYMS), re.IGNORECASE)
# Function words that carry meaning, by class; a pair that swaps one group of a class for
# another ("he" / "she", "all" / "some", "on" / "under") asks something else.
FUNCTION_CLASSES: tuple[tuple[frozenset[str], ...], ...] = tuple(
    tuple(frozenset(g.split()) for g in groups) for groups in (
        ("i me my mine myself", "we us our ours ourselves", "you your yours yourself",
         "he him his himself", "she her hers herself", "they them their theirs themselves"),
        ("all every each", "some several", "few", "many much most", "both"),
        ("on onto", "under beneath underneath", "above over", "below", "inside into",
         "out outside", "behind", "near beside next", "between", "around"),
        ("until till", "from since", "before", "after", "during"),
        ("can could", "will would", "should", "must", "may might"),
    ))
PRONOUNS = 0    # the class of FUNCTION_CLASSES whose order marks roles ("they want us" / "we want them")
# Words that tie two content words in a relation ("miles to kilometres"): kept in the sequence
# that the roles guard reads, so a swap across them shows.
ANCHORS = frozenset("to from into than by with".split())
QUESTION_WORDS = frozenset("what which who whom whose when where why how".split())
TOPIC_WORDS = 4     # a topic is a noun phrase: "about running in winter", not the sentence after
PREFIX = 5          # stems sharing their first 5 letters match ("organise"/"organising")
PAYLOAD_WORDS = 3   # a body after a colon this long (in words) is text the request carries
TYPO_MIN = 4        # words shorter than this are never read as a slip of another


def words(text: str) -> list[str]:
    """Return the lower-case words of ``text``, "n't" spelled "not", numbers without commas."""
    return _lower_words(text.casefold())


def _lower_words(text: str) -> list[str]:
    if "'" in text or "’" in text:
        text = text.replace("’", "'").replace("n't", " not")
    out = _WORD.findall(text)   # each match ends with a letter or digit
    if "," in text:   # "3,000" is one number; "cats,dogs" two words
        out = [w.replace(",", "") if "," in w and _GROUPED.fullmatch(w) else w for w in out]
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


def _synonym(word: str) -> str:
    """Return the first word of ``word``'s synonym group (inflections too), else ``word``."""
    found = SYNONYMS.get(word)
    if found is not None:
        return found
    if word.endswith("ing"):
        bases = (word[:-3], word[:-3] + "e")
    elif word.endswith("ed"):
        bases = (word[:-2], word[:-1])
    elif word.endswith("s"):
        bases = (word[:-1], word[:-2])
    else:
        return word
    return next((SYNONYMS[b] for b in bases if b in SYNONYMS), word)


@lru_cache(maxsize=1 << 17)
def term(word: str) -> str | None:
    """Return the term ``word`` counts as, or None for a stopword or a negation."""
    if word in STOPWORDS or word in NEGATIONS:
        return None
    word = _NUMBER_WORDS.get(word, word)
    return word if word[0].isdigit() else stem(_synonym(word))[:PREFIX]


def content_sequence(tokens: Iterable[str]) -> list[str]:
    """Return the terms of the content words in ``tokens``, in order."""
    return [t for t in map(term, tokens) if t is not None]


def content_stems(tokens: Iterable[str]) -> set[str]:
    """Return the terms of the words that carry content (stopwords and negations left out)."""
    return set(content_sequence(tokens))


def numbers(tokens: Iterable[str]) -> tuple[str, ...]:
    """Return the numbers in ``tokens`` (digits, or number words as digits), in order."""
    return tuple(n for n in (_NUMBER_WORDS.get(w, w) for w in tokens
                             if w[0].isdigit() or w in _NUMBER_WORDS) if _NUMBER.match(n))


def polarity(tokens: Iterable[str]) -> int:
    """Return the parity of negation words: 1 when ``tokens`` negate an odd number of times."""
    return len([w for w in tokens if w in NEGATIONS]) % 2


def split_payload(text: str) -> tuple[str, str]:
    """Split ``text`` into its instruction and the body it quotes after a colon ("" if none).

    The body is returned as its runs of letters and digits joined by single spaces, so case,
    spacing and punctuation do not count; a body shorter than ``PAYLOAD_WORDS`` words stays in
    the instruction.
    """
    parts = _COLON.split(text, maxsplit=1) if ":" in text else (text,)
    if len(parts) == 2:
        body = _ALNUM.findall(parts[1].casefold())
        if len(body) >= PAYLOAD_WORDS:
            return parts[0], " ".join(body)
    return text, ""


def dates(tokens: Iterable[str]) -> frozenset[str]:
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
    """Return the form a word takes to be compared with names: no possessive, stemmed, cut to
    5 letters ("Iraq's" and "Iraq" are one name)."""
    return stem(token.removesuffix("'s"))[:5]


def topic_words(text: str) -> list[str]:
    """Return the first ``TOPIC_WORDS`` words after "about", within its clause: the subject."""
    return [w for m in _ABOUT.finditer(text) for w in words(m.group(1))[:TOPIC_WORDS]]


# -- dictionary and slips ----------------------------------------------------------------------
@lru_cache(maxsize=1)
def _dictionary() -> frozenset[str] | dict:
    try:
        from spellchecker import SpellChecker
    except ImportError:  # without the word list, no word is read as a slip
        return {}
    return SpellChecker(distance=1).word_frequency.dictionary


@lru_cache(maxsize=1 << 16)
def is_word(word: str) -> bool:
    """Say whether ``word`` is English as a dictionary knows it (or too short to be a slip)."""
    if len(word) < TYPO_MIN or not word.isalpha() or word in STOPWORDS or word in SYNONYMS:
        return True
    dictionary = _dictionary()
    return not dictionary or word in dictionary


def within_one_slip(a: str, b: str) -> bool:
    """Say whether ``a`` and ``b`` differ by one letter inserted, dropped, changed or two swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    if len(a) < len(b):
        return a[i:] == b[i + 1:]
    return a[i + 1:] == b[i + 1:] or (i + 1 < len(a) and a[i] == b[i + 1] and a[i + 1] == b[i]
                                      and a[i + 2:] == b[i + 2:])


# -- what de-duplication reads from one prompt ---------------------------------------------------
class Features(NamedTuple):
    """What the detector reads from one prompt."""

    tokens: tuple[str, ...]       # the instruction's words (a quoted body left out)
    terms: frozenset[str]         # its content terms
    sequence: tuple[str, ...]     # its content terms in order, repeats kept
    signature: tuple              # what must be equal for a match: numbers, negation parity, body
    names: frozenset[str]         # capitalized words inside sentences: likely names
    dates: frozenset[str]         # months, weekdays, today...
    forms: frozenset[str]         # every word as ``name_key``: where the other's names are sought
    topic: frozenset[str]         # the terms after "about": what the request is about
    question: bool                # asks a question (rather than stating or requesting)
    negated: frozenset[str]       # the terms a negation governs ("not X", "without X")
    function: tuple[frozenset[int], ...]   # per FUNCTION_CLASSES: the groups present
    unknown: frozenset[str]       # words no dictionary knows: possible slips


def _negated(tokens: tuple[str, ...]) -> frozenset[str]:
    out = set()
    for i, w in enumerate(tokens):
        if w in NEGATIONS:
            nxt = next((t for t in map(term, tokens[i + 1:i + 4]) if t is not None), None)
            if nxt is not None:
                out.add(nxt)
    return frozenset(out)


# Courtesy anywhere in a request ("For our May newsletter, could you write ...?"); the exact key
# drops it only where it opens the request, matching may drop it everywhere.
_COURTESY = re.compile(r"\b(?:(?:could|can|would|will) you(?: please| kindly)?|i(?:'d| would) like "
                       r"you to|i want you to|please|kindly)\b,?", re.IGNORECASE)


def _question(instruction: str, tokens: tuple[str, ...], request: bool) -> bool:
    """Say whether ``instruction`` asks a question; "could you write ...?" is a request."""
    if request:
        return False
    # A final "?" asks; so does a leading "how", "what"... ("How to groom a cat"). A leading
    # "do" or "is" without one is an instruction ("Do not mention prices").
    return instruction.rstrip().endswith("?") or bool(tokens and tokens[0] in QUESTION_WORDS)


class Shape(NamedTuple):
    """The little an index needs of a prompt: its words, terms and signature."""

    instruction: str              # the request, without the quoted body and without courtesy
    tokens: tuple[str, ...]       # its words, lower case
    terms: frozenset[str]         # its content terms
    signature: tuple              # numbers, negation parity, quoted body: equal for any match
    request: bool                 # phrased as "could you ...?": a request, not a question


@lru_cache(maxsize=1 << 12)   # recent prompts: a look-up, then the same prompt stored
def shape(text: str) -> Shape:
    """Return the words, terms and signature of ``text`` (cheap: what an index posts)."""
    # A request that quotes a text after a colon ("Classify this review: ...") is scored on its
    # instruction alone and matches only the very same text: two reviews built from the same
    # stock sentences share most words, yet each needs its own answer. Courtesy anywhere goes
    # ("For our May newsletter, could you write ...?"); the words of the exact key's
    # normalization that remain (greetings, "thanks") are stopwords.
    instruction, body = split_payload(text)
    low = instruction.casefold()
    request = False
    if "you" in low or "please" in low or "kindly" in low:   # most prompts: no regex at all
        stripped = _COURTESY.sub(" ", instruction)
        request = stripped != instruction and bool(_REQUEST.search(instruction))
        instruction = stripped
        low = instruction.casefold()
    if " up" in low or " out" in low:
        instruction = _PHRASES.sub(_phrase, instruction)
        low = instruction.casefold()
    tokens = tuple(_lower_words(low))
    terms, nums, negations = [], [], 0
    get = _WORDS.get
    for w in tokens:   # one pass, each word read once per process (``_word``)
        t, n, g = get(w) or _word(w)
        if t is not None:
            terms.append(t)
        if n is not None:
            nums.append(n)
        negations += g
    signature = (tuple(sorted(nums)) if nums else (), negations % 2, body)
    return Shape(instruction, tokens, frozenset(terms), signature, request)


_WORDS: dict[str, tuple[str | None, str | None, int]] = {}


def _word(w: str) -> tuple[str | None, str | None, int]:
    """What ``shape`` reads of one word: its term, the number it is, whether it negates."""
    n = _NUMBER_WORDS.get(w, w)
    info = (term(w), n if (w[0].isdigit() or w in _NUMBER_WORDS) and _NUMBER.match(n) else None,
            int(w in NEGATIONS))
    if len(_WORDS) < 1 << 18:
        _WORDS[w] = info
    return info


def _phrase(m: re.Match[str]) -> str:
    return PHRASE_SYNONYMS[m.group().lower()]


_REQUEST = re.compile(r"\b(?:could|can|would|will) you\b", re.IGNORECASE)


@lru_cache(maxsize=1 << 12)
def features(text: str) -> Features:
    """Return what de-duplication compares in ``text`` (the guards read all of it)."""
    s = shape(text)
    tokens = s.tokens
    present = frozenset(tokens)
    function = tuple(frozenset(i for i, g in enumerate(groups) if g & present)
                     for groups in FUNCTION_CLASSES)
    return Features(tokens, s.terms, tuple(content_sequence(tokens)), s.signature,
                    names(s.instruction), dates(tokens), frozenset(map(name_key, tokens)),
                    frozenset(content_sequence(topic_words(s.instruction))),
                    _question(s.instruction, tokens, s.request), _negated(tokens), function,
                    frozenset(w for w in tokens if not is_word(w)))


_GROUPS: dict[str, tuple[str, ...]] = {}
for _w, _head in SYNONYMS.items():
    _GROUPS.setdefault(_head, ())
    _GROUPS[_head] += (_w,)


@lru_cache(maxsize=1 << 16)
def slip_targets(word: str) -> tuple[str, ...]:
    """The forms a slip of ``word`` may have been aiming at: the word, its "-s", "-ing" and
    "-ed" forms, and its synonyms ("directipns" is a slip of "directions", which means
    "instructions")."""
    stemmed = word[:-1] if word.endswith("e") else word
    forms = {word, word + "s", stemmed + "ing", stemmed + "ed"}
    if word.endswith("ing"):
        forms.add(word[:-3])
    forms.update(_GROUPS.get(SYNONYMS.get(word, ""), ()))
    return tuple(f for f in forms if len(f) >= TYPO_MIN)


def typo_aliases(a: Features, b: Features) -> dict[str, str]:
    """Return the words of either side that stand for a word of the other, one slip away.

    A word is read as a slip only when no dictionary knows it and exactly one word of the
    other side, absent from its own side, lies one slip away from it or from one of its
    ``slip_targets`` (known to the dictionary or not: "emoijs" is a slip of "emojis").
    """
    out: dict[str, str] = {}
    for x, y in ((a, b), (b, a)):
        if not x.unknown:
            continue
        own, other = set(x.tokens), [w for w in set(y.tokens) - set(x.tokens) if len(w) >= TYPO_MIN]
        for w in sorted(x.unknown):
            if w in out.values():   # already the word another slip stands for
                continue
            near = [v for v in other if v not in own and v not in out
                    and any(within_one_slip(w, f) for f in slip_targets(v))]
            if len(near) == 1:
                out[w] = near[0]
    return out
