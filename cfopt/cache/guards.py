"""The guards: differences between two prompts that change what is asked, whatever the overlap.

A similarity score over words forgives a changed word when many others are shared. The guards
do not: each names one way two requests that share most words still ask different things, and
any one of them vetoes a match. ``veto(a, b)`` returns the first that applies, or None:

==========  ===================================================================================
numbers     another number ("500 words" / "800 words")
negation    a negation on one side only ("do not mention the budget")
quoted      another quoted text after a colon (a review, a snippet to translate)
repeat      the same words, one of them repeated ("close-up close-up")
short       in a request of fewer than ``short_terms`` content words, any word changed
names       a name or a date swapped for another ("LinkedIn" / "Facebook", "May" / "September")
topic       a word of what the request is "about" swapped ("about running" / "about pruning")
opposite    a word on one side whose opposite is on the other ("on" / "off", "man" / "woman")
function    a pronoun, quantifier, preposition of place or modal swapped ("he" / "she")
question    a question against a statement or an instruction with the same words
scope       a negation that governs another word ("do not tell him to sign" / "tell him not to sign")
roles       the same words with their roles swapped ("a man bites a dog" / "a dog bites a man")
slots       one template with its slots filled differently ("in orange tones" / "in green tones")
swap        in a request of up to ``swap_terms`` content words, a word on each side the other lacks
==========  ===================================================================================

>>> from cfopt.cache.text import features
>>> veto(features("Is the dog barking?"), features("The dog is barking."))
'question'
>>> veto(features("Do not tell him to sign the lease"), features("Tell him not to sign the lease"))
'scope'
>>> veto(features("write blog posts about grooming cats"), features("Write a blog post about grooming the cat")) is None
True
"""
from __future__ import annotations

from difflib import SequenceMatcher

from .text import (ANCHORS, FUNCTION_CLASSES, OPPOSITES, PRONOUNS, Features, content_sequence,
                   name_key, term, typo_aliases, _negated)

__all__ = ["veto", "aligned", "bag", "slots_swapped", "roles_swapped", "topic_changed", "GUARDS",
           "SHORT_TERMS",
           "SWAP_TERMS"]

SHORT_TERMS = 6  # below this many content words, a request must keep all of them
# Up to this many content words, a word on each side that the other lacks is a swap: the
# template's slot filled differently, or a synonym no list knows; either way, not served.
SWAP_TERMS = 12
GUARDS = ("numbers", "negation", "quoted", "repeat", "short", "names", "topic", "opposite", "function",
          "question", "scope", "roles", "slots", "swap")


def bag(sequence: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Return the terms of a content sequence with their repeats, in a canonical order."""
    return tuple(sorted(sequence))


def _retarget(f: Features, alias: dict[str, str]) -> Features:
    tokens = tuple(alias.get(w, w) for w in f.tokens)
    sequence = tuple(content_sequence(tokens))
    topic = frozenset(t if t not in alias else (term(alias[t]) or t) for t in f.topic)
    return f._replace(tokens=tokens, terms=frozenset(sequence), sequence=sequence, topic=topic,
                      forms=frozenset(map(name_key, tokens)), negated=_negated(tokens),
                      unknown=f.unknown - alias.keys())


def aligned(a: Features, b: Features) -> tuple[Features, Features, int]:
    """Return ``a`` and ``b`` with each slip read as the word it stands for, and how many."""
    alias = typo_aliases(a, b)
    if not alias:
        return a, b, 0
    # A slipped word may sit in the topic as its term: map terms of slipped words too.
    terms = {term(k) or k: term(v) or v for k, v in alias.items()}
    return (_retarget(a._replace(topic=frozenset(terms.get(t, t) for t in a.topic)), alias),
            _retarget(b._replace(topic=frozenset(terms.get(t, t) for t in b.topic)), alias),
            len(alias))


def _swapped(a: frozenset, b: frozenset, a_words: frozenset, b_words: frozenset) -> bool:
    """Say whether each side has one of these that the other side lacks: a swap, not a drop."""
    return not a <= b_words and not b <= a_words


def slots_swapped(sa: tuple[str, ...], sb: tuple[str, ...]) -> bool:
    """Say whether the texts are one template with its slots filled differently.

    The same content words in the same order, except words substituted in place, with nothing
    inserted, dropped or moved ("... in orange tones" / "... in green tones"): a look-alike.
    Paraphrases reword, add and move words, which this leaves alone.
    """
    shared = set(sa) & set(sb)
    if not shared or set(sa) == set(sb):
        return False
    ia = [i for i, w in enumerate(sa) if w in shared]
    ib = [i for i, w in enumerate(sb) if w in shared]
    if [sa[i] for i in ia] != [sb[i] for i in ib]:
        # A repeated or moved word: let difflib align the two (slower, rarely needed).
        ops = [op[0] for op in SequenceMatcher(None, sa, sb, autojunk=False).get_opcodes()
               if op[0] != "equal"]
        return bool(ops) and all(op == "replace" for op in ops)
    for (a0, a1), (b0, b1) in zip(zip([-1, *ia], [*ia, len(sa)]), zip([-1, *ib], [*ib, len(sb)])):
        if (a1 - a0 > 1) != (b1 - b0 > 1):
            return False
    return True


def _one_move_apart(sa: tuple[str, ...], sb: tuple[str, ...]) -> bool:
    n = len(sa)
    for i in range(n):             # take the block sa[i:j] out and put it back elsewhere
        for j in range(i + 1, n + 1):
            rest = sa[:i] + sa[j:]
            block = sa[i:j]
            for k in range(len(rest) + 1):
                if rest[:k] + block + rest[k:] == sb:
                    return True
    return False


def _anchored(f: Features) -> tuple[str, ...]:
    """The content terms in order, with the words that tie them ("to", "than") and pronouns."""
    groups = FUNCTION_CLASSES[PRONOUNS]
    out = []
    for w in f.tokens:
        t = term(w)
        if t is not None:
            out.append(t)
        elif w in ANCHORS:
            out.append(w)
        else:
            g = next((i for i, grp in enumerate(groups) if w in grp), None)
            if g is not None:
                out.append(f"\x00{g}")
    return tuple(out)


def roles_swapped(a: Features, b: Features) -> bool:
    """Say whether the same words stand in an order that one moved block cannot explain.

    "For our May newsletter, write an intro" moves one block of "write an intro for our May
    newsletter": a paraphrase. "A dog bites a man", "miles to kilometres" / "kilometres to
    miles" and "they want us" / "we want them" need two things to trade places: a role swap.
    """
    sa, sb = _anchored(a), _anchored(b)
    if sa == sb or bag(sa) != bag(sb) or len(sa) < 3:
        return False
    return not _one_move_apart(sa, sb)


def topic_changed(a: Features, b: Features) -> bool:
    """Say whether a word of what the request is "about" was swapped for another."""
    return _swapped(a.topic, b.topic, a.terms, b.terms)


def _function_swapped(a: Features, b: Features) -> bool:
    return any(ga - gb and gb - ga for ga, gb in zip(a.function, b.function))


def veto(a: Features, b: Features, *, short_terms: int = SHORT_TERMS,
         swap_terms: int = SWAP_TERMS, skip: frozenset[str] = frozenset()) -> str | None:
    """Return the first guard that forbids matching ``a`` with ``b`` (``GUARDS``), or None.

    Give features already ``aligned`` for slips; the cheap guards come first. Guards named in
    ``skip`` are not asked.
    """
    sa, sb = a.signature, b.signature
    if sa != sb:
        return "numbers" if sa[0] != sb[0] else "negation" if sa[1] != sb[1] else "quoted"
    if a.terms == b.terms and bag(a.sequence) != bag(b.sequence):
        # The same words, one repeated: "coffee beans close-up close-up" may be a slip or an
        # emphasis; no guess.
        return "repeat"
    short = min(len(a.terms), len(b.terms)) < short_terms
    if short and "short" not in skip and bag(a.sequence) != bag(b.sequence):
        # In a short request every content word is the request.
        return "short"
    if (_swapped(a.names, b.names, a.forms, b.forms)
            or _swapped(a.dates, b.dates, frozenset(a.tokens), frozenset(b.tokens))):
        return "names"
    if "topic" not in skip and topic_changed(a, b):
        return "topic"
    only_a, only_b = set(a.tokens) - set(b.tokens), set(b.tokens) - set(a.tokens)
    if any(OPPOSITES.get(w) in only_b for w in only_a):
        return "opposite"
    if _function_swapped(a, b):
        return "function"
    if a.question != b.question:
        return "question"
    if a.negated != b.negated:
        return "scope"
    if short and roles_swapped(a, b):
        return "roles"
    if "slots" not in skip and slots_swapped(a.sequence, b.sequence):
        return "slots"
    if ("swap" not in skip and max(len(a.terms), len(b.terms)) <= swap_terms
            and a.terms - b.terms and b.terms - a.terms):
        return "swap"
    return None
