"""Near-duplicate requests: the exercise's detector, and a precise indexed one.

Serving a cached answer to a request that means something else is a wrong answer, worse than a
miss (a miss costs money; a false hit costs trust). So the detector here is built for precision:

- ``ExerciseDeduplication``: the exercise's reference, bag-of-words cosine >= 0.85, a linear scan.
- ``ContentDeduplication``: weighted word coverage in both directions (every important word of
  each prompt must appear in the other), vetoed by guards for what a similarity score blurs:
  a different number, a negation, an opposite ("on"/"off"), a name, month or weekday swapped
  for another ("May" / "September"), a word of the topic swapped ("about running in winter" /
  "about winter pruning"), any content word changed or repeated in a short request, template
  slots filled differently ("orange tones" / "green tones"), and for a request that carries a
  text after a colon (a review to classify, an article to summarize) any change in that text:
  the instruction may be reworded, the text it works on may not (``cfopt.cache.text``).
  Look-up goes through an inverted index with prefix filtering: it never scans every entry.

>>> dedup = ContentDeduplication()
>>> dedup.add("Write a blog post about how to groom long-haired cats", key="k1")
>>> dedup.find("write a blog post about how to groom long haired cats").key
'k1'
>>> dedup.find("Write a blog post about how to groom long-haired dogs") is None   # topic
True
>>> dedup.similarity("turn on dark mode in the app", "turn off dark mode in the app")
0.0
>>> dedup.similarity("Summarize this review: Great value. It broke after a week.",
...                  "Please summarize the review: Great value. It broke after a month.")
0.0
"""
from __future__ import annotations

import fnmatch
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Hashable, Iterable

from ..errors import ConfigError
from .exercise_dedup import ExerciseDeduplication
from .records import Match
from .text import PREFIX, Features, features, names_or_dates_changed, opposites, topic_changed

__all__ = ["ContentDeduplication", "ExerciseDeduplication", "Match", "DEFAULT_THRESHOLD"]

# Chosen on MRPC train (highest recall at precision >= 0.95), see cfopt.cache.evaluate.
DEFAULT_THRESHOLD = 0.76
SHORT_TERMS = 6  # below this many content words, a request must keep all of them
_EMPTY: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class _Entry:
    key: str
    prompt: str
    scope: Hashable
    features: Features            # what the detector read from the prompt
    prefix: tuple[str, ...]       # the heaviest terms: the only ones indexed


def _bag(sequence: Iterable[str]) -> tuple[str, ...]:
    """Return the terms of a content sequence with their repeats, in a canonical order."""
    return tuple(sorted(t[:PREFIX] for t in sequence))


def _guarded(a: Features, b: Features) -> bool:
    """Say whether a name, a date or a topic word was swapped, or an opposite put in.

    Each changes what is asked while leaving most words shared, so the score cannot see it.
    """
    return names_or_dates_changed(a, b) or topic_changed(a, b) or opposites(a.tokens, b.tokens)


class ContentDeduplication:
    """Find a cached prompt that means the same, within one scope, through an inverted index."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, *,
                 short_terms: int = SHORT_TERMS) -> None:
        if isinstance(threshold, bool) or not 0.0 < threshold <= 1.0:
            raise ConfigError(f"threshold must lie in (0, 1], got {threshold!r}")
        if isinstance(short_terms, bool) or not isinstance(short_terms, int) or short_terms < 0:
            raise ConfigError(f"short_terms must be a non-negative integer, got {short_terms!r}")
        self.threshold, self.short_terms = float(threshold), short_terms
        self._entries: dict[int, _Entry] = {}
        self._by_key: dict[str, set[int]] = defaultdict(set)
        # Postings per scope and per signature (numbers, negation parity, quoted body):
        # entries whose signature differs from the query's are vetoed anyway, so they are
        # never candidates.
        self._postings: dict[tuple, set[int]] = defaultdict(set)
        self._df: Counter[str] = Counter()
        self._docs = 0
        self._next = 0
        self.lookups = self.candidates_scored = 0

    def __repr__(self) -> str:
        return (f"ContentDeduplication(threshold={self.threshold}, short_terms={self.short_terms}, "
                f"entries={len(self._entries)})")

    def __len__(self) -> int:
        return len(self._entries)

    # -- weights ---------------------------------------------------------------------------------
    def fit(self, texts: Iterable[str]) -> "ContentDeduplication":
        """Count term frequencies in ``texts`` (no labels), so rare words weigh more."""
        for text in texts:
            self._df.update(features(text).terms)
            self._docs += 1
        return self

    def _weight(self, term: str) -> float:
        return math.log((self._docs + 1) / (self._df.get(term, 0) + 1)) + 1.0

    # -- the pairwise score ----------------------------------------------------------------------
    def _vetoed(self, a: Features, b: Features) -> bool:
        """Say whether a guard forbids matching, whatever the score (cheap guards)."""
        if a.signature != b.signature:   # numbers, negation or quoted body differ
            return True
        if min(len(a.terms), len(b.terms)) < self.short_terms and (
                _bag(a.sequence) != _bag(b.sequence)):
            # In a short request every content word is the request, and so is how often it
            # comes: "coffee beans close-up close-up" may be a slip or an emphasis; no guess.
            return True
        return _guarded(a, b)

    @staticmethod
    def _slots_swapped(sa: list[str] | tuple, sb: list[str] | tuple) -> bool:
        """Say whether the texts are one template with its slots filled differently.

        The same content words in the same order, except words substituted in place, with
        nothing inserted, dropped or moved ("... in orange tones" / "... in green tones"):
        a look-alike. Paraphrases reword, add and move words, which this leaves alone.
        """
        shared = set(sa) & set(sb)
        if not shared or set(sa) == set(sb):
            return False
        # Walk both sequences from one shared word to the next: the shared words must come in
        # the same order, and between two of them either both sides hold other words (a slot)
        # or neither does (nothing inserted or dropped).
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

    def _coverage(self, a: frozenset[str], b: frozenset[str]) -> float:
        total = sum(self._weight(t) for t in a)
        return sum(self._weight(t) for t in a & b) / total if total else 1.0

    @staticmethod
    def _features(text: str) -> Features:
        return features(text)

    def _score(self, fa: Features, fb: Features) -> float:
        if self._vetoed(fa, fb):
            return 0.0
        score = min(self._coverage(fa.terms, fb.terms), self._coverage(fb.terms, fa.terms))
        if score > 0 and self._slots_swapped(fa.sequence, fb.sequence):
            return 0.0
        return score

    def similarity(self, a: str, b: str) -> float:
        """Return how surely ``a`` and ``b`` ask the same thing: 0 (vetoed) to 1."""
        return round(self._score(self._features(a), self._features(b)), 12)

    def is_duplicate(self, a: str, b: str) -> bool:
        """Say whether ``a`` and ``b`` may share one answer."""
        return self.similarity(a, b) >= self.threshold

    # -- the index -------------------------------------------------------------------------------
    def add(self, prompt: str, key: str, scope: Hashable = ()) -> None:
        """Remember that ``prompt``'s answer is cached under ``key``, within ``scope``."""
        if not isinstance(prompt, str) or not isinstance(key, str):
            raise ConfigError("add needs a prompt string and a cache key string")
        f = features(prompt)
        self._df.update(f.terms)
        self._docs += 1
        prefix = tuple(self._prefix(f.terms, {t: self._weight(t) for t in f.terms}))
        entry = _Entry(key, prompt, scope, f, prefix)
        eid, self._next = self._next, self._next + 1
        self._entries[eid] = entry
        self._by_key[key].add(eid)
        for term in prefix:
            self._postings[(scope, f.signature, term)].add(eid)

    def _prefix(self, terms: Iterable[str], weights: dict[str, float]) -> list[str]:
        """Return the heaviest terms that together weigh more than (1 - threshold) of all.

        Two texts that cover each other at the threshold share a term of both their prefixes
        (ordered the same way: heaviest first, ties by spelling), so only prefixes are indexed
        and probed. Weights drift a little as the index grows; a drifted pair can be missed,
        never wrongly matched: every candidate is verified.
        """
        ranked = sorted(terms, key=lambda t: (-weights[t], t))
        budget, prefix = (1.0 - self.threshold) * sum(weights.values()), []
        for term in ranked:
            prefix.append(term)
            budget -= weights[term]
            if budget < 0:
                break
        return prefix

    def find(self, prompt: str, scope: Hashable = ()) -> Match | None:
        """Return the best cached match for ``prompt`` in ``scope`` at or above the threshold."""
        self.lookups += 1
        fq = features(prompt)
        terms = fq.terms
        if not terms:
            return None
        memo: dict[str, float] = {}  # weights do not change during one look-up

        def weight(term: str) -> float:
            w = memo.get(term)
            if w is None:
                w = memo[term] = self._weight(term)
            return w

        for term in terms:
            weight(term)
        total = sum(memo.values())
        candidates: set[int] = set()
        for term in self._prefix(terms, memo):
            candidates |= self._postings.get((scope, fq.signature, term), _EMPTY)
        need = self.threshold * total
        short = len(terms) < self.short_terms
        # Count filter: sharing fewer terms than this cannot reach the threshold's weight.
        heaviest, min_shared, acc = sorted(memo.values(), reverse=True), 0, 0.0
        while acc < need and min_shared < len(heaviest):
            acc += heaviest[min_shared]
            min_shared += 1
        entries, scored, bag = self._entries, [], None
        for eid in candidates:
            e = entries[eid].features
            if short or len(e.terms) < self.short_terms:   # the short-request guard, as above
                bag = bag or _bag(fq.sequence)
                if e.terms != terms or _bag(e.sequence) != bag:
                    continue
            shared = terms & e.terms
            if len(shared) < min_shared:
                continue
            covered = sum(memo[t] for t in shared)
            if covered < need:
                continue
            score = min(covered / total, covered / (covered + sum(weight(t) for t in e.terms - shared)))
            if score >= self.threshold:
                scored.append((-score, eid))
        # The best-scoring candidate that passes the word guards wins; most stop at one.
        for neg_score, eid in sorted(scored):
            self.candidates_scored += 1
            e = entries[eid]
            if _guarded(fq, e.features) or self._slots_swapped(fq.sequence, e.features.sequence):
                continue
            return Match(e.key, e.prompt, round(-neg_score, 12))
        return None

    def discard(self, key: str) -> int:
        """Forget every prompt cached under ``key``; return how many."""
        ids = self._by_key.pop(key, set())
        for eid in ids:
            e = self._entries.pop(eid)
            for term in e.prefix:
                where = (e.scope, e.features.signature, term)
                posting = self._postings.get(where)
                if posting is not None:
                    posting.discard(eid)
                    if not posting:
                        del self._postings[where]
        return len(ids)

    def discard_matching(self, pattern: str) -> int:
        """Forget the prompts whose cache key matches the glob ``pattern``; return how many."""
        return sum(self.discard(k) for k in [k for k in self._by_key if fnmatch.fnmatchcase(k, pattern)])
