"""What the simulated Claude writes: an answer of an exact number of tokens, on topic.

Sentences from a few templates, filled with the prompt's own content words, so the
answer is on topic. The text is assembled from pieces that cl100k never merges across (a word
with its leading space, a punctuation mark), so its token count is the sum of the pieces'
counts, each counted once and remembered: ``count_tokens(text) == n`` exactly, with no
re-tokenizing of the whole answer. Closing lines of one-token words pad it to the exact length.
How long an answer is, is decided in ``cfopt.providers.lengths``.

>>> from cfopt.tokens import count_tokens
>>> text = compose(40, "Write about sustainable coffee farming", key=1)
>>> count_tokens(text)
40
>>> compose(14, "Write a tagline for a vegan bakery", key=3)
'Here is what matters most about bakery. Thanks for reading this far.'
"""
from __future__ import annotations

import random
import re
from functools import lru_cache

from ..tokens import count_tokens

__all__ = ["compose", "content_words"]

_TEMPLATES = [
    "{T} is worth a closer look for anyone who cares about {n}",
    "The key point about {t} is simple, and it starts with a clear {n}",
    "Many teams find that {t} works best when the {n} is kept simple",
    "Start with {t}, then build on what your {n} already does well",
    "A good approach to {t} balances cost, speed and {n}",
    "Think of {t} as a way to improve every {n} you ship",
    "Here is what matters most about {t}",
    "In practice, {t} depends on the {n} and on the people behind it",
    "The best results come from testing {t} early and often",
    "When it comes to {t}, small changes can make a big difference",
    "Most readers want to know how {t} affects their {n}",
    "One simple rule helps: keep {t} focused on the {n}",
    "It also helps to measure {t} against a clear {n}",
    "Over time, {t} becomes part of a strong {n}",
    "This is why {t} deserves a place in your next {n}",
    "A common mistake is to treat {t} as a minor detail",
    "Instead, plan for {t} from the very first {n}",
    "The result is a better {n} with less effort and lower cost",
    "You can see the same pattern with {t} across many projects",
    "For example, a clear {n} makes {t} much easier to explain",
    "Above all, {t} should serve the people who use it",
    "That is the real value of {t}",
    "With the right {n}, {t} can grow quickly",
    "Keep the {n} short, specific and easy to follow",
    "Each step should bring {t} closer to the goal",
    "Finally, review {t} regularly and adjust the {n} as needed",
]
_NOUNS = ("plan", "team", "process", "message", "audience", "budget", "story", "goal", "design",
          "strategy", "brand", "product", "workflow", "approach", "result", "project")
# Closing lines of 1 to 9 one-token words: what pads an answer to its exact length.
_CLOSINGS = {len(c.split()): c.split() for c in (
    "Enjoy", "Good luck", "Hope this helps", "I hope this helps", "Thanks for reading this far",
    "Let me know what you think", "Let me know if you need more",
    "I hope this gives you a good start", "Let me know if you would like more detail")}
_PAD = " today"  # one token: lengthens a finished answer by exactly one
_STOP = set("""a an the and or but if then so of in on at to for from by with about into over
under is are was were be been being do does did have has had it its this that these those
i me my we our you your he she they them their what which who whom how why when where please
write create generate make give produce draft compose describe explain tell list summarize
summarise provide using use can could would should will shall may might must some any each
every more most very just also than as not no yes all one two three four five six seven eight
nine ten words word sentences sentence paragraph paragraphs short brief long detailed blog
post article tweet caption email tagline headline slogan title line lines points tips ideas
following based new need needs want like get help""".split())
_WORD_RE = re.compile(r"[A-Za-z]{3,}")


@lru_cache(maxsize=8192)
def content_words(prompt: str) -> tuple[str, ...]:
    """The prompt's topic words, in order, without instructions and stop words."""
    out: list[str] = []
    for i, m in enumerate(_WORD_RE.finditer(prompt)):
        w = m.group()
        if w.lower() in _STOP:
            continue
        # Keep a capital inside the prompt (a name); lower a sentence's first word.
        w = w if (i > 0 and w[0].isupper() or w.isupper()) else w.lower()
        if w not in out:
            out.append(w)
    return tuple(out) or ("content", "quality")


_cost: dict[str, int] = {}


def _c(piece: str) -> int:
    n = _cost.get(piece)
    if n is None:
        n = _cost[piece] = count_tokens(piece)
    return n


@lru_cache(maxsize=65536)
def _forms(word: str) -> dict[str, tuple[str, int]]:
    """A word's pieces: mid-sentence, sentence start after a space, paragraph start."""
    cap = word[0].upper() + word[1:]
    return {k: (p, _c(p)) for k, p in (("mid", " " + word), ("cap", " " + cap), ("start", cap))}


@lru_cache(maxsize=None)
def _compiled(template: str, at_start: bool) -> tuple[int, tuple[str, ...], tuple[tuple[str, str], ...]]:
    """``template`` as (tokens of its fixed text, fixed texts, slots between them).

    A slot is (pool, form): pool "t" (a topic word) or "n" (a noun), form "mid", "cap" or
    "start" (see ``_forms``). The sentence is texts[0] + slot + texts[1] + slot + ...
    """
    texts, slots, fixed = [""], [], 0
    for j, w in enumerate(template.split()):
        punct = w[-1] if w[-1] in ",:" else ""
        core = w[:-1] if punct else w
        form = ("start" if at_start else "cap") if j == 0 else "mid"
        if core in ("{t}", "{T}", "{n}"):
            slots.append((core[1].lower(), form))
            texts.append("")
        else:
            p, c = _forms(core)[form]
            texts[-1] += p
            fixed += c
        if punct:
            texts[-1] += punct
            fixed += _c(punct)
    return fixed, tuple(texts), tuple(slots)


@lru_cache(maxsize=1)
def _noun_forms() -> list[dict[str, tuple[str, int]]]:
    return [_forms(w) for w in _NOUNS]  # lazily: importing cfopt must not load the tokenizer


@lru_cache(maxsize=None)
def _min_cost(template: str, at_start: bool) -> int:
    """The fewest tokens ``template`` can take (each slot at least one)."""
    fixed, _, slots = _compiled(template, at_start)
    return fixed + len(slots)


def _sentence(template: str, topics: list[dict[str, tuple[str, int]]], rng: random.Random,
              at_start: bool) -> tuple[list[str], int]:
    """One sentence (without its full stop) and its token count."""
    cost, texts, slots = _compiled(template, at_start)
    out = [texts[0]]
    for (pool_name, form), text in zip(slots, texts[1:]):
        pool = topics if pool_name == "t" else _noun_forms()
        piece, c = pool[int(rng.random() * len(pool))][form]
        out.append(piece)
        out.append(text)
        cost += c
    return out, cost


def compose(n: int, prompt: str, *, key: int, complete: bool = True) -> str:
    """An answer on ``prompt``'s topic of exactly ``n`` cl100k tokens, fixed by ``key``.

    ``complete=False`` gives an answer cut off mid-flow (as when ``max_tokens`` stops it).
    """
    if n < 1:
        raise ValueError(f"an answer has at least one token, got {n}")
    if not complete:  # write one token more, then drop the final full stop (one token)
        return compose(n + 1, prompt, key=key)[:-1] if n > 1 else _CLOSINGS[1][0]
    _check_padding()
    rng = random.Random(key)
    topics = [_forms(w) for w in content_words(prompt)]
    pieces: list[str] = []
    used, start = 0, True
    while True:
        s, cost = _sentence(_TEMPLATES[int(rng.random() * len(_TEMPLATES))], topics, rng, start)
        if used + cost + 1 > n:  # near the end: a few tries at a shorter sentence, then pad
            short = [t for t in _TEMPLATES if _min_cost(t, start) < n - used]
            for template in rng.sample(short, min(len(short), 6)):
                s, cost = _sentence(template, topics, rng, start)
                if used + cost + 1 <= n:
                    break
            else:
                break
        # Paragraphs of about four sentences; ".\n\n" is one token, like ".".
        end = ".\n\n" if rng.random() < 0.25 else "."
        pieces += s
        pieces.append(end)
        used += cost + 1
        start = end != "."
    left = n - used
    while left >= 2:  # pad with a closing line of one-token words
        tail = _CLOSINGS[min(left - 1, len(_CLOSINGS))]
        pieces += [tail[0] if start else " " + tail[0], *(" " + w for w in tail[1:]), "."]
        left -= len(tail) + 1
        start = False
    if left == 1:
        if pieces:
            pieces.insert(len(pieces) - 1, _PAD)
        else:
            pieces.append(_CLOSINGS[1][0])
    if pieces[-1] == ".\n\n":
        pieces[-1] = "."  # both one token; an answer ends on a plain full stop
    return "".join(pieces)


@lru_cache(maxsize=1)
def _check_padding() -> None:
    # Padding is counted as one token per word without asking the tokenizer: make sure it is.
    forms = [_PAD, ".", ".\n\n"]
    for words in _CLOSINGS.values():
        forms += [words[0], *(" " + w for w in words)]
    bad = [f for f in forms if count_tokens(f) != 1]
    if bad:
        raise RuntimeError(f"padding pieces are not single cl100k tokens: {bad}")
