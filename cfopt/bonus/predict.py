"""Bonus 1: predict each user's next requests from what they and everyone asked so far.

``RequestPredictor`` blends three estimates of a user's next request, each one the prior of the
one above it (Dirichlet smoothing, as in n-gram language models):

1. the user's first-order Markov chain: what followed their previous request before;
2. the user's own request frequencies;
3. global popularity with recency decay (a half-life): what everyone asks lately.

``P(x) = (C_u(prev -> x) + markov_prior * Q_u(x)) / (N_u(prev) + markov_prior)`` where ``Q_u``
is the user's frequencies smoothed the same way by global popularity. A request's identity is
``request_key``: type, task, quality, output cap and the normalized prompt. ``intent`` is never
read: ``observe`` drops it before storing anything.

>>> from cfopt.workload import Request
>>> p = RequestPredictor()
>>> for t, prompt in enumerate(["red bicycle", "blue car", "red bicycle", "blue car", "red bicycle"]):
...     p.observe(Request(t=float(t), type="photo", prompt=prompt, user="u1"))
>>> [(r.prompt, round(pr, 2)) for r, pr in p.predict("u1", 2)]
[('blue car', 0.7), ('red bicycle', 0.3)]
"""
from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Hashable, Iterable

from ..cache.normalize import normalize_prompt
from ..errors import ConfigError
from ..workload import Request

__all__ = ["PredictorConfig", "RequestPredictor", "request_key", "RequestKey"]

RequestKey = tuple[Hashable, ...]


def request_key(r: Request) -> RequestKey:
    """Return what makes two requests the same request to a cache (never their intent)."""
    return (r.type, r.task, r.quality, r.max_tokens, normalize_prompt(r.prompt))


@dataclass(frozen=True, slots=True)
class PredictorConfig:
    """How much each level of the blend is trusted, and how fast popularity fades."""

    markov_prior: float = 2.0      # pseudo-counts of the user's frequencies behind the chain
    user_prior: float = 4.0        # pseudo-counts of global popularity behind the user's counts
    half_life_s: float = 600.0     # global popularity halves every this many seconds
    candidates: int = 50           # globally popular keys considered besides the user's own

    def __post_init__(self) -> None:
        if not (self.markov_prior > 0 and self.user_prior > 0 and self.half_life_s > 0):
            raise ConfigError(f"priors and half-life must be positive: {self!r}")
        if self.candidates < 1:
            raise ConfigError(f"candidates must be at least 1, got {self.candidates}")


class RequestPredictor:
    """Learn request sequences online (``observe``) and rank each user's likely next requests."""

    def __init__(self, config: PredictorConfig | None = None) -> None:
        self.config = config if config is not None else PredictorConfig()
        self._exemplar: dict[RequestKey, Request] = {}   # the latest request seen per key
        self._prev: dict[str, RequestKey] = {}           # each user's previous request
        self._chain: dict[str, dict[RequestKey, dict[RequestKey, int]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(int)))
        self._user: dict[str, dict[RequestKey, int]] = defaultdict(lambda: defaultdict(int))
        # Forward decay (Cormode et al. 2009): weights grow as 2^(t/half_life) instead of old
        # ones shrinking, so the ranking never needs a pass over all keys; ``_landmark`` is
        # moved forward now and then to keep the numbers finite.
        self._global: dict[RequestKey, float] = {}
        self._total = 0.0
        self._landmark = 0.0
        self._now = 0.0
        self._top: list[RequestKey] | None = None        # cached global ranking

    def __repr__(self) -> str:
        return (f"RequestPredictor({self.config!r}, users={len(self._user)}, "
                f"keys={len(self._exemplar)})")

    def observe(self, request: Request) -> None:
        """Learn from ``request``, which arrived at ``request.t`` (non-decreasing)."""
        r = replace(request, intent=None) if request.intent is not None else request
        key, user = request_key(r), r.user or "anonymous"
        self._now = max(self._now, r.t)
        self._exemplar[key] = r
        prev = self._prev.get(user)
        if prev is not None:
            self._chain[user][prev][key] += 1
        self._prev[user] = key
        self._user[user][key] += 1
        exponent = (self._now - self._landmark) / self.config.half_life_s
        if exponent > 500:  # 2^500 nears the float range: rescale everything to a new landmark
            scale = 2.0 ** -exponent
            self._global = {k: v * scale for k, v in self._global.items()}
            self._total *= scale
            self._landmark, exponent = self._now, 0.0
        weight = 2.0 ** exponent
        self._global[key] = self._global.get(key, 0.0) + weight
        self._total += weight
        self._top = None

    def observe_all(self, requests: Iterable[Request]) -> None:
        """Learn from each request in turn."""
        for r in requests:
            self.observe(r)

    def probability(self, user: str, key: RequestKey) -> float:
        """Return the blended probability that ``user``'s next request has ``key``."""
        return self._scorer(user)(key)

    def _scorer(self, user: str):
        c, total = self.config, self._total
        counts = self._user.get(user, {})
        n_user = sum(counts.values())
        prev = self._prev.get(user)
        row = self._chain.get(user, {}).get(prev, {}) if prev is not None else {}
        n_row = sum(row.values())

        def score(key: RequestKey) -> float:
            g = self._global.get(key, 0.0) / total if total else 0.0
            q = (counts.get(key, 0) + c.user_prior * g) / (n_user + c.user_prior)
            return (row.get(key, 0) + c.markov_prior * q) / (n_row + c.markov_prior)
        return score

    def predict(self, user: str, k: int = 3) -> list[tuple[Request, float]]:
        """Return up to ``k`` likely next requests of ``user``, most likely first."""
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        if self._top is None:
            self._top = heapq.nlargest(self.config.candidates, self._global, key=self._global.get)
        score = self._scorer(user)
        candidates = set(self._top) | set(self._user.get(user, ()))
        scored = [(score(key), key) for key in candidates]
        # Ties break on the key itself so equal seeds give equal predictions on any machine.
        best = heapq.nlargest(k, scored, key=lambda s: (s[0], repr(s[1])))
        return [(self._exemplar[key], p) for p, key in best if p > 0]
