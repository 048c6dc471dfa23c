"""Near-duplicate requests: ``ContentDeduplication``, a static threshold behind guards, indexed.

Serving a cached answer to a request that means something else is a wrong answer, worse than a
miss (a miss costs money; a false hit costs trust). So this detector is built for precision:

- the score is word coverage in both directions: the share of each prompt's content terms
  (``cfopt.cache.text``: synonyms grouped, light stems, slips read as the word they stand for)
  found in the other, the smaller of the two;
- the guards (``cfopt.cache.guards``) veto what a score over words blurs: another number, a
  negation, another name, date or topic, an opposite, a swapped pronoun, a question against a
  statement, a negation moved, roles swapped, template slots filled differently, another quoted
  text. ``compare`` says which guard vetoed, and why.

``ExerciseDeduplication`` (the exercise's reference, a bag-of-words cosine) is the baseline.
The bounded layer (``cfopt.cache.semantic``) starts from this detector's candidates and learns
which of them are safe to serve.

>>> dedup = ContentDeduplication()
>>> dedup.add("Write a blog post about how to groom long-haired cats", key="k1")
>>> dedup.find("please compose a blog post about how to groom long-haired cats").key
'k1'
>>> dedup.find("Write a blog post about how to groom long-haired dogs") is None   # topic
True
>>> dedup.compare("Write step-by-step instructions to turn on two-factor authentication in our app",
...               "Write step-by-step instructions to turn off two-factor authentication in our app").veto
'opposite'
>>> dedup.similarity("Summarize this review: Great value. It broke after a week.",
...                  "Please summarize the review: Great value. It broke after a month.")
0.0
"""
from __future__ import annotations

import fnmatch
import math
from array import array
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Hashable, Iterable

from ..errors import ConfigError
from .exercise_dedup import ExerciseDeduplication
from .guards import SHORT_TERMS, aligned, bag, veto
from .records import Match
from .text import (TYPO_MIN, Features, Shape, features, is_word, shape, slip_targets, term,
                   within_one_slip)

_NEW = -(1 << 40)      # ranks of terms first seen since the last re-ranking: rarer than all
_UNSEEN = -(1 << 50)   # a query's terms the index has never seen: first of all

__all__ = ["ContentDeduplication", "ExerciseDeduplication", "Match", "Comparison", "Candidate",
           "DEFAULT_THRESHOLD"]

# Chosen on MRPC's train split and the train half of the project's own labelled pairs
# (tests/data/pairs.tsv): the highest recall whose precision's lower 95% bound reaches 0.95
# (``cfopt.cache.evaluate.choose_threshold``; tests/test_cache_dedup.py re-derives it).
DEFAULT_THRESHOLD = 0.8125


@dataclass(frozen=True, slots=True)
class Comparison:
    """How two prompts compare: the score, the guard that vetoed (if any), and what differs."""

    score: float            # the smaller of the two coverages, before the guards
    veto: str | None        # the guard that forbids a match (``cfopt.cache.guards.GUARDS``)
    shared: int             # content terms on both sides
    only_a: int             # content terms of ``a`` only
    only_b: int
    typos: int = 0          # words read as a slip of the other side's word
    reworded: int = 0       # words that differ but count as the same term (synonyms, inflections)
    same_words: bool = False  # the same words, in the same order (case, courtesy, punctuation aside)
    same_order: bool = False  # the same content terms in the same order

    @property
    def similarity(self) -> float:
        """The score, or 0.0 when a guard vetoed."""
        return 0.0 if self.veto else self.score


@dataclass(frozen=True, slots=True)
class Candidate:
    """An indexed prompt that shares enough terms with a query, before any guard."""

    key: str
    prompt: str
    score: float
    entry: int              # the entry's number in the index (stable while it lives)


def _push(table: dict, key: Any, value: Any) -> None:
    """Add ``value`` under ``key``: alone at first, in a list from the second on."""
    found = table.get(key)
    if found is None:
        table[key] = value
    elif type(found) is list:
        found.append(value)
    else:
        table[key] = [found, value]


def _items(found: Any) -> Iterable:
    return () if found is None else found if type(found) is list else (found,)


@lru_cache(maxsize=1 << 15)
def _variants(word: str) -> tuple[str, ...]:
    """``word`` and each form of it with one letter dropped: two words one slip apart share one."""
    return tuple({word, *(word[:j] + word[j + 1:] for j in range(len(word)))})


def compare_features(a: Features, b: Features, *, short_terms: int = SHORT_TERMS) -> Comparison:
    """Compare two prompts' features (see ``ContentDeduplication.compare``)."""
    a, b, typos = aligned(a, b)
    if not a.terms or not b.terms:
        same = a.tokens == b.tokens and a.signature == b.signature
        return Comparison(1.0 if same else 0.0, None if same else "short", 0, len(a.terms),
                          len(b.terms), typos, 0, same, same)
    shared = len(a.terms & b.terms)
    score = min(shared / len(a.terms), shared / len(b.terms))
    reason = veto(a, b, short_terms=short_terms) if score > 0 else "short"
    only_tokens = set(a.tokens) ^ set(b.tokens)
    reworded = sum(1 for w in only_tokens if term(w) is not None and term(w) in a.terms & b.terms)
    return Comparison(round(score, 12), reason, shared, len(a.terms) - shared,
                      len(b.terms) - shared, typos, reworded, a.tokens == b.tokens,
                      a.sequence == b.sequence)


class ContentDeduplication:
    """Find a cached prompt that means the same, within one scope, through an inverted index.

    The index keeps, per prompt, its key, its scope, its signature (numbers, negation, quoted
    text: prompts whose signatures differ are never candidates) and its content terms as small
    integers; only a prefix of each prompt's terms is posted (prefix filtering: two prompts that
    cover each other at the threshold share a term of both prefixes). Features for the guards
    are recomputed from the prompt text of the few candidates a look-up verifies.
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, *,
                 short_terms: int = SHORT_TERMS, floor: float | None = None) -> None:
        for name, value in (("threshold", threshold), ("floor", threshold if floor is None else floor)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
                raise ConfigError(f"{name} must lie in (0, 1], got {value!r}")
        # The lowest score ``search`` may be asked for: the bounded layer looks below the
        # threshold, so each prompt posts more of its terms.
        self.floor = float(min(threshold, floor if floor is not None else threshold))
        if isinstance(short_terms, bool) or not isinstance(short_terms, int) or short_terms < 0:
            raise ConfigError(f"short_terms must be a non-negative integer, got {short_terms!r}")
        self.threshold, self.short_terms = float(threshold), short_terms
        self._ids: dict[str, int] = {}          # term -> id, in the order terms were first seen
        self._scopes: dict[Hashable, int] = {}  # scope -> small id
        # One slot per entry, None once discarded: key, prompt, scope id, signature, terms (as
        # ids, newest first). Small integers in arrays, one entry's id alone where a dict would
        # hold a one-item list: the index stays near 1 KB an entry (benchmarks/bench_cache.py).
        self._key: list[str | None] = []
        self._prompt: list[str | None] = []
        self._scope = array("l")
        self._sig = array("q")
        self._terms: list[tuple[int, ...]] = []
        self._quotes: list[bool] = []
        self._by_key: dict[str, int | list[int]] = {}
        # hash(scope, signature, term) -> entries; for a prompt that quotes a text, hash(scope,
        # signature): only prompts quoting the very same text can match it.
        self._postings: dict[int, int | list[int]] = {}
        self._dels: dict[str, str | list[str]] = {}  # word minus one letter -> words (slips)
        self._odd: dict[str, str | list[str]] = {}   # the same, for words no dictionary knows
        self._near: dict[str, list[str]] = {}       # a word -> indexed slips of it
        self._rank: dict[int, int] = {}             # term id -> rank by frequency (rarest 0)
        self._ranked_at = 1000                      # re-rank when the index doubles from here
        self._words: set[str] = set()
        self._live = self._dead = 0
        self.lookups = self.candidates_scored = 0

    def __repr__(self) -> str:
        return (f"ContentDeduplication(threshold={self.threshold}, short_terms={self.short_terms}, "
                f"entries={self._live})")

    def __len__(self) -> int:
        return self._live

    # -- the pairwise face --------------------------------------------------------------------
    def compare(self, a: str, b: str) -> Comparison:
        """Compare two prompts: the coverage score, the guard that vetoed, and what differs."""
        return compare_features(features(a), features(b), short_terms=self.short_terms)

    def similarity(self, a: str, b: str) -> float:
        """Return how surely ``a`` and ``b`` ask the same thing: 0 (vetoed) to 1."""
        return self.compare(a, b).similarity

    def is_duplicate(self, a: str, b: str) -> bool:
        """Say whether ``a`` and ``b`` may share one answer."""
        return self.similarity(a, b) >= self.threshold

    # -- the index ----------------------------------------------------------------------------
    def _ordered(self, ids: Iterable[int]) -> list[int]:
        """``ids`` in the index's one fixed order: rarest first.

        A term's rank comes from how many prompts held it when the index last re-ranked (it
        re-ranks and re-posts everything each time it doubles); a term first seen since then
        counts as rarer than all ranked ones (newest first), and a query's unseen term (negative)
        comes first of all. Prompt and query use the same order, so two prompts that share
        enough terms share a term of their prefixes, however the index grows.
        """
        rank = self._rank
        return sorted(ids, key=lambda i: rank.get(i, _NEW - i) if i >= 0 else _UNSEEN + i)

    @staticmethod
    def _prefix(ordered: list[int], floor: float) -> list[int]:
        """The first terms, as many as one prompt may fail to share at ``floor``, plus one."""
        return ordered[:len(ordered) - math.ceil(floor * len(ordered) - 1e-9) + 1]

    def _post(self, eid: int) -> None:
        sid, sig, ids = self._scope[eid], self._sig[eid], self._terms[eid]
        if self._quotes[eid]:   # a quoted text: only prompts quoting the very same text match
            _push(self._postings, hash((sid, sig)), eid)
            return
        for i in self._prefix(self._ordered(ids), self.floor):
            _push(self._postings, hash((sid, sig, i)), eid)

    def _rerank(self) -> None:
        """Rank terms by how many live prompts hold them, and post every prompt again."""
        df: dict[int, int] = {}
        for ids, key in zip(self._terms, self._key):
            if key is not None:
                for i in ids:
                    df[i] = df.get(i, 0) + 1
        self._rank = {i: r for r, i in enumerate(sorted(df, key=lambda i: (df[i], -i)))}
        self._postings = {}
        for eid, key in enumerate(self._key):
            if key is not None:
                self._post(eid)
        self._ranked_at = self._live
        self._dead = 0

    def add(self, prompt: str, key: str, scope: Hashable = ()) -> None:
        """Remember that ``prompt``'s answer is cached under ``key``, within ``scope``."""
        if not isinstance(prompt, str) or not isinstance(key, str):
            raise ConfigError("add needs a prompt string and a cache key string")
        f = shape(prompt)
        ids = self._ids
        terms = []
        for t in sorted(f.terms):   # ids in a fixed order: the same index in every process
            i = ids.get(t)
            if i is None:
                i = ids[t] = len(ids)
            terms.append(i)
        sid = self._scopes.get(scope)
        if sid is None:
            sid = self._scopes[scope] = len(self._scopes)
        eid = len(self._key)
        self._key.append(key)
        self._prompt.append(prompt)
        self._scope.append(sid)
        self._sig.append(hash(f.signature))
        self._quotes.append(bool(f.signature[2]))
        self._terms.append(tuple(terms))
        _push(self._by_key, key, eid)
        self._live += 1
        self._post(eid)
        new = set(f.tokens) - self._words
        if new:
            for w in new:
                if len(w) >= TYPO_MIN and w.isalpha():
                    self._learn_word(w)
        if self._live >= 2 * self._ranked_at:
            self._rerank()

    def _learn_word(self, w: str) -> None:
        """Learn a word of the index, and which of its words it is one slip from.

        Two words one slip apart meet under one of the forms with one letter dropped (for a
        dictionary word, of its ``slip_targets`` too). A word no dictionary knows, one slip from
        a word that it knows, is recorded as that word's slip (``_near``), so a query pays a
        dictionary look-up per word, not a search.
        """
        self._words.add(w)
        known = is_word(w)
        forms = {d for f in (slip_targets(w) if known else (w,)) for d in _variants(f)}
        for d in forms:
            _push(self._dels, d, w)
            for v in _items(self._odd.get(d) if known else self._dels.get(d)):
                if v == w or (is_word(v) == known):
                    continue
                odd, word = (v, w) if known else (w, v)
                if any(within_one_slip(odd, t) for t in slip_targets(word)):
                    near = self._near.setdefault(word, [])
                    if odd not in near:
                        near.append(odd)
            if not known:
                _push(self._odd, d, w)

    def _slips(self, f: Shape) -> dict[str, str]:
        """Words of the query and of indexed prompts that stand for each other, one slip away."""
        out: dict[str, str] = {}
        for w in f.tokens:
            odd = self._near.get(w)
            if odd:                 # indexed prompts slipped on this word
                for v in odd:
                    out[v] = w
                continue
            if w in self._words or len(w) < TYPO_MIN or not w.isalpha():
                continue            # a word someone typed into the index is a word ("cafe")
            known = is_word(w)
            table = self._odd if known else self._dels
            near = {v for d in _variants(w) for v in _items(table.get(d))
                    if v != w and any(within_one_slip(w, t) for t in slip_targets(v))}
            if not known:           # the query slipped: read it as the indexed word
                near -= set(f.tokens)
                if len(near) == 1:
                    out[w] = near.pop()
            else:                   # indexed prompts slipped on this new word
                for v in near:
                    out[v] = w
        return out

    def search(self, prompt: str, scope: Hashable = (), floor: float | None = None,
               limit: int = 8) -> list[Candidate]:
        """Return up to ``limit`` indexed prompts of ``scope`` covering ``prompt`` at ``floor``
        or more both ways (default: the threshold), best first; no guard applied yet."""
        self.lookups += 1
        floor = self.threshold if floor is None else floor
        sid = self._scopes.get(scope)
        f = shape(prompt)
        if sid is None or not f.terms:
            return []
        if floor < self.floor:
            raise ConfigError(f"this index finds matches down to {self.floor}, not {floor}: "
                              "give floor= when you build it")
        sig = hash(f.signature)
        tmap: dict[str, int] = {}
        for t in sorted(f.terms):   # an unseen term matches nothing, yet counts in the size
            tmap[t] = self._ids.get(t, -1 - len(tmap))
        alias: dict[int, int] = {}   # an indexed term id -> the query term id it stands for
        for u, w in self._slips(f).items():
            tu, tw = term(u), term(w)
            if tu is None or tw is None:
                continue
            if u in f.tokens:              # we slipped: our term tu is their tw
                if tu in tmap and tw in self._ids and tw not in tmap:
                    tmap[tu] = self._ids[tw]
            elif tw in tmap and tu in self._ids:   # indexed prompts slipped: their tu is our tw
                if tmap[tw] < 0:    # our word is new to the index: we take their term's place
                    tmap[tw] = self._ids[tu]
                else:
                    alias[self._ids[tu]] = tmap[tw]
        ids = list(tmap.values())
        n = len(ids)
        qset = frozenset(ids) | alias.keys() if alias else frozenset(ids)
        candidates: set[int] = set()
        postings = self._postings
        if f.signature[2]:
            probes = [hash((sid, sig))]
        else:   # a slipped term sits elsewhere in the order: probe it too
            probes = [hash((sid, sig, i)) for i in (*self._prefix(self._ordered(ids), floor), *alias)]
        for where in probes:
            found = postings.get(where)
            if found is None:
                continue
            if type(found) is int:
                candidates.add(found)
            else:
                candidates.update(found)
        low, high = floor * n - 1e-9, n / floor + 1e-9
        scored = []
        keys, terms, scopes, sigs = self._key, self._terms, self._scope, self._sig
        for eid in candidates:
            et = terms[eid]
            m = len(et)
            if m < low or m > high or keys[eid] is None or scopes[eid] != sid or sigs[eid] != sig:
                continue
            shared = len(qset.intersection(et))
            score = min(shared / n, shared / m)
            if score >= floor:
                scored.append((-score, eid))
        scored.sort()
        return [Candidate(keys[eid], self._prompt[eid], round(-s, 12), eid)  # type: ignore[arg-type]
                for s, eid in scored[:limit]]

    def find(self, prompt: str, scope: Hashable = ()) -> Match | None:
        """Return the best cached match for ``prompt`` in ``scope`` that no guard vetoes."""
        fq = None
        for c in self.search(prompt, scope):
            self.candidates_scored += 1
            fq = fq or features(prompt)
            comparison = compare_features(fq, features(c.prompt), short_terms=self.short_terms)
            if comparison.veto is None and comparison.score >= self.threshold:
                return Match(c.key, c.prompt, comparison.score)
        return None

    def discard(self, key: str) -> int:
        """Forget every prompt cached under ``key``; return how many."""
        found = self._by_key.pop(key, None)
        ids = [] if found is None else [found] if type(found) is int else found
        for eid in ids:
            self._key[eid] = self._prompt[eid] = None
            self._terms[eid] = ()
        self._live -= len(ids)
        self._dead += len(ids)
        if self._dead > max(1000, self._live):  # mostly tombstones: rebuild the postings
            self._rerank()
        return len(ids)

    def discard_matching(self, pattern: str) -> int:
        """Forget the prompts whose cache key matches the glob ``pattern``; return how many."""
        return sum(self.discard(k) for k in [k for k in self._by_key if fnmatch.fnmatchcase(k, pattern)])

    def entries(self) -> Iterable[tuple[int, str, str]]:
        """Yield (entry number, key, prompt) of every live entry."""
        for eid, (k, p) in enumerate(zip(self._key, self._prompt)):
            if k is not None:
                yield eid, k, p  # type: ignore[misc]
