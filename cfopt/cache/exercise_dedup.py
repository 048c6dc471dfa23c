"""The exercise's de-duplication, kept as the reference: word-count cosine, a linear scan.

It compares a new prompt with every cached one (cost grows with the cache) and calls two
prompts duplicates when the cosine of their word counts reaches 0.85, which matches
look-alikes such as "... in orange tones" / "... in green tones". ``ContentDeduplication`` is
measured against it.

>>> ref = ExerciseDeduplication()
>>> round(ref.similarity("a bold thumbnail in orange tones", "a bold thumbnail in green tones"), 3)
0.833
"""
from __future__ import annotations

import fnmatch
import math
from collections import Counter
from typing import Hashable

from ..errors import ConfigError
from .records import Match

__all__ = ["ExerciseDeduplication"]


class ExerciseDeduplication:
    """The exercise's reference: cosine of word counts >= 0.85, compared with every entry."""

    def __init__(self, threshold: float = 0.85) -> None:
        if isinstance(threshold, bool) or not 0.0 < threshold <= 1.0:
            raise ConfigError(f"threshold must lie in (0, 1], got {threshold!r}")
        self.threshold = float(threshold)
        self._entries: list[tuple[Counter[str], float, str, str, Hashable]] = []

    def __repr__(self) -> str:
        return f"ExerciseDeduplication(threshold={self.threshold}, entries={len(self._entries)})"

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _vector(text: str) -> tuple[Counter[str], float]:
        counts = Counter(text.lower().split())
        return counts, math.sqrt(sum(v * v for v in counts.values()))

    def similarity(self, a: str, b: str) -> float:
        """Return the cosine of the two prompts' word counts."""
        (ca, na), (cb, nb) = self._vector(a), self._vector(b)
        return sum(n * cb[w] for w, n in ca.items()) / (na * nb) if na and nb else 0.0

    def is_duplicate(self, a: str, b: str) -> bool:
        return self.similarity(a, b) >= self.threshold

    def add(self, prompt: str, key: str, scope: Hashable = ()) -> None:
        counts, norm = self._vector(prompt)
        self._entries.append((counts, norm, prompt, key, scope))

    def find(self, prompt: str, scope: Hashable = ()) -> Match | None:
        """Return the most similar entry at or above the threshold, comparing with every one."""
        cq, nq = self._vector(prompt)
        best: Match | None = None
        for counts, norm, text, key, s in self._entries:
            if s != scope or not (nq and norm):
                continue
            score = sum(n * counts[w] for w, n in cq.items()) / (nq * norm)
            if score >= self.threshold and (best is None or score > best.score):
                best = Match(key, text, score)
        return best

    def discard(self, key: str) -> int:
        before = len(self._entries)
        self._entries = [e for e in self._entries if e[3] != key]
        return before - len(self._entries)

    def discard_matching(self, pattern: str) -> int:
        before = len(self._entries)
        self._entries = [e for e in self._entries if not fnmatch.fnmatchcase(e[3], pattern)]
        return before - len(self._entries)
