"""The bounded semantic layer: near-duplicate hits with a stated error bound, vCache-style.

A static threshold serves every candidate above it and hopes. This layer serves a candidate only
when the evidence says that candidates like it are true matches with probability at least
``1 - delta``, at confidence ``confidence`` (one-sided), so that the share of its hits that are
false stays under ``delta`` (the user's maximum false-hit rate, default 1%). The evidence:

1. A pair model (``cfopt.cache.pairmodel``) scores a candidate from what differs between the two
   prompts; hard guards (another number, name, negation...) rule a candidate out at once.
2. Per band of that score, a posterior over the share of true matches: a prior counted on
   labelled pairs (``SemanticState``, learned offline), then *judge verdicts* (``cfopt.cache.judge``)
   gathered online, each right only with the judge's accuracy, so the posterior moves as much as
   noisy evidence allows and no more.
3. Per cached entry, its own verdicts (vCache's per-entry thresholds): an entry whose candidates
   the judge rejected is trusted less than its band, until verdicts say otherwise.

``decide(prompt, scope)`` returns a ``Decision``: ``hit`` (serve the entry's answer), ``explore``
(a miss: call the provider, then pay the judge to compare the fresh answer with the cached
one, and learn from the verdict), or ``miss``. The layer serves every band from the lowest one
whose candidates, together with all above, are true matches with probability at least
``1 - delta`` at the set confidence: the share of false hits among all it serves stays under
``delta``. An ``audit`` share of hits is served *and* verified in the background (a fresh call
and a judge call, paid, not waited for), so evidence keeps flowing where the layer serves. Based on Schroeder et al., "vCache: Verified Semantic Prompt
Caching" (arXiv:2502.03771, ICLR 2026), with two changes said plainly: the per-entry sigmoid is
replaced by banded posteriors shared by all entries (one hour of traffic gives an entry a handful
of verdicts, vCache's fit needs six before it serves anything), and verdicts are treated as noisy.

>>> from cfopt.cache.pairmodel import SemanticState
>>> layer = BoundedSemanticLayer(delta=0.01)        # the shipped state, no judge: no exploring
>>> layer.add("Write a blog post about how to groom long-haired cats", key="k1")
>>> layer.decide("Please compose a blog post about how to groom long-haired cats").action
'hit'
>>> layer.decide("Write a blog post about how to groom long-haired dogs").action
'miss'
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Hashable

from ..errors import ConfigError
from .dedup import DEFAULT_THRESHOLD, Candidate, ContentDeduplication
from .judge import JUDGE_ACCURACY, Judge, SimulatedJudge
from .pairmodel import BAND_EDGES, Band, SemanticState, band_of, pair_features
from .records import Match, SemanticStats
from .text import features

__all__ = ["BoundedSemanticLayer", "Decision", "SemanticStats", "SemanticConfig", "DEFAULT_DELTA",
           "DEFAULT_AUDIT", "DEFAULT_CONFIDENCE", "DEFAULT_FLOOR"]

DEFAULT_DELTA = 0.01        # the user's maximum false-hit rate: 1 semantic hit in 100 may be wrong
DEFAULT_AUDIT = 0.02        # share of would-be hits still verified, so the evidence keeps coming
DEFAULT_CONFIDENCE = 0.95   # how sure the bound must be: a one-sided 95% credible bound
# The lowest coverage a candidate may have to be looked up at all: the static gate's threshold,
# so the layer starts from the gate's candidates and its index costs no more. On generated
# traffic no candidate the layer serves covers less than 0.875.
DEFAULT_FLOOR = DEFAULT_THRESHOLD
_ENTRY_VERDICTS = 8         # per entry, the verdicts kept
_SCORED = 1 << 15           # pairs whose score is remembered


@dataclass(frozen=True, slots=True)
class SemanticConfig:
    """The bounded layer's settings, as a value object the pipeline can carry."""

    delta: float = DEFAULT_DELTA
    audit: float = DEFAULT_AUDIT
    confidence: float = DEFAULT_CONFIDENCE
    floor: float = DEFAULT_FLOOR
    judge_accuracy: float = JUDGE_ACCURACY

    def __post_init__(self) -> None:
        if isinstance(self.delta, bool) or not 0.0 < self.delta < 1.0:
            raise ConfigError(f"delta (the maximum false-hit rate) must lie in (0, 1), got {self.delta!r}")
        if not 0.0 <= self.audit <= 1.0:
            raise ConfigError(f"audit must lie in [0, 1], got {self.audit!r}")
        if not 0.5 <= self.confidence < 1.0:
            raise ConfigError(f"confidence must lie in [0.5, 1), got {self.confidence!r}")
        if not 0.0 < self.floor <= 1.0:
            raise ConfigError(f"floor must lie in (0, 1], got {self.floor!r}")
        if not 0.5 < self.judge_accuracy <= 1.0:
            raise ConfigError(f"judge_accuracy must lie in (0.5, 1], got {self.judge_accuracy!r}")


@dataclass(frozen=True, slots=True)
class Decision:
    """What the layer decided for one request, and on what evidence."""

    action: str                        # "hit" | "explore" | "miss"
    candidate: Candidate | None = None
    probability: float = 0.0           # the pair model's score
    band: int = -1
    bound: float = 0.0                 # the lower credible bound on a true match, entry included
    audit: bool = False                # a hit verified in the background all the same


class _RunSender:
    """The run's sender, read when a call is sent (the batching stage sets it after binding)."""

    def __init__(self, env: Any) -> None:
        self.env = env

    async def asend(self, call: Any) -> Any:
        # The pipeline lends a sender that counts verification apart and keeps the budget.
        sender = self.env.extra.get("verify_sender") or self.env.sender or self.env.counter
        return await sender.asend(call)


@dataclass
class _Entry:
    """An entry's own verdicts: (band, the judge said it served the request)."""

    verdicts: list[tuple[int, bool]] = field(default_factory=list)


class BoundedSemanticLayer:
    """Serve a near-duplicate's answer only within a false-hit bound ``delta``."""

    def __init__(self, delta: float = DEFAULT_DELTA, *, judge: Judge | None = None,
                 state: SemanticState | None = None, index: ContentDeduplication | None = None,
                 audit: float = DEFAULT_AUDIT, confidence: float = DEFAULT_CONFIDENCE,
                 floor: float = DEFAULT_FLOOR, judge_accuracy: float | None = None,
                 seed: int = 0) -> None:
        accuracy = judge_accuracy if judge_accuracy is not None else getattr(judge, "accuracy", JUDGE_ACCURACY)
        self.config = SemanticConfig(delta, audit, confidence, floor, accuracy)
        self.judge = judge
        self.state = state if state is not None else SemanticState.load()
        self.index = index if index is not None else ContentDeduplication(floor=floor)
        if self.index.floor > floor:
            raise ConfigError(f"the index finds candidates down to {self.index.floor}, the layer "
                              f"asks for {floor}: build it with ContentDeduplication(floor={floor})")
        self.bands = [Band(c, w) for c, w in self.state.bands]
        self._entries: dict[int, _Entry] = {}
        self._scored: dict[tuple[str, str], tuple[float, int]] = {}
        self._rng = random.Random(f"cfopt-semantic:{seed}")
        self._spent = 0.0    # expected false hits so far: per hit, one minus its band's mean
        self._unions: dict = {}   # band -> Band.union of it and above; ("bound", band) -> bound
        self._counts = dict.fromkeys(("lookups", "hits", "explored", "audits", "vetoed",
                                      "below_bound", "verdicts_same", "verdicts_different"), 0)

    @classmethod
    def from_config(cls, config: SemanticConfig, *, judge: Judge | None = None,
                    state: SemanticState | None = None, seed: int = 0) -> "BoundedSemanticLayer":
        return cls(config.delta, judge=judge, state=state, audit=config.audit,
                   confidence=config.confidence, floor=config.floor,
                   judge_accuracy=config.judge_accuracy, seed=seed)

    def __repr__(self) -> str:
        c = self.config
        return (f"BoundedSemanticLayer(delta={c.delta}, confidence={c.confidence}, audit={c.audit}, "
                f"judge={type(self.judge).__name__ if self.judge else None}, entries={len(self.index)})")

    def __len__(self) -> int:
        return len(self.index)

    # -- as part of a pipeline's cache stage ---------------------------------------------------
    def reset(self) -> None:
        """Forget every entry and every verdict: back to the state it was built with."""
        self.index = ContentDeduplication(self.index.threshold, short_terms=self.index.short_terms,
                                          floor=self.index.floor)
        self.bands = [Band(c, w) for c, w in self.state.bands]
        self._entries.clear()
        self._unions.clear()
        self._spent = 0.0
        self._counts = dict.fromkeys(self._counts, 0)

    def bind(self, env: Any) -> None:
        """Start a pipeline run afresh (``reset``). Without a judge of its own, the layer pays
        the run's simulated one when the run lends its knowledge (``env.extra["judge_truth"]``):
        a haiku call through the run's sender, counted and priced like every other call."""
        self.reset()
        truth = getattr(env, "extra", {}).get("judge_truth")
        if truth is not None and (self.judge is None or getattr(self.judge, "_lent", False)):
            self.judge = SimulatedJudge(_RunSender(env), truth, accuracy=self.config.judge_accuracy,
                                        seed=env.seed, asynchronous=True)
            self.judge._lent = True   # type: ignore[attr-defined]  # the next run lends its own

    @property
    def delta(self) -> float:
        return self.config.delta

    @property
    def stats(self) -> SemanticStats:
        j = self.judge
        return SemanticStats(**self._counts, expected_false_hits=round(self._spent, 6),
                             judge_calls=getattr(j, "calls", 0),
                             judge_cost_usd=round(getattr(j, "cost_usd", 0.0), 9),
                             judge_s=round(getattr(j, "seconds", 0.0), 6))

    # -- deciding --------------------------------------------------------------------------------
    def _entry_trust(self, eid: int, band: int) -> float:
        """The probability that ``eid`` is not an entry whose candidates are wrong, given its verdicts.

        A "different" verdict at this band or above, or a "same" one at this band or below, bears
        on a candidate of this band (a match is likelier the higher the score). Each verdict is
        right with the judge's accuracy, so one "different" lowers the trust, one "same" restores it.
        """
        entry = self._entries.get(eid)
        if entry is None:
            return 1.0
        p = self.config.judge_accuracy
        prior = max(1e-6, 1.0 - self.bands[band].mean())
        odds = prior / (1.0 - prior)
        for b, same in entry.verdicts:
            if same and b <= band:
                odds *= (1 - p) / p
            elif not same and b >= band:
                odds *= p / (1 - p)
        return 1.0 / (1.0 + odds)

    def evaluate(self, prompt: str, candidate: Candidate, *, own: bool = True) -> tuple[float, int, float]:
        """Return (model probability, band, lower bound) for serving ``candidate`` to ``prompt``;
        (0, -1, 0) when a hard guard vetoes the pair. ``own``: the candidate is one of this
        layer's entries, whose verdicts count."""
        pair = (prompt, candidate.prompt)
        scored = self._scored.get(pair)
        if scored is None:   # a pair's features never change: score it once
            x = pair_features(features(prompt), features(candidate.prompt))
            probability = 0.0 if x is None else self.state.model.probability(x)
            scored = self._scored[pair] = (probability, -1 if x is None else band_of(probability))
            if len(self._scored) > _SCORED:
                del self._scored[next(iter(self._scored))]
        probability, band = scored
        if band < 0:
            return 0.0, -1, 0.0
        bound = self._bound(band)
        if own:
            bound *= self._entry_trust(candidate.entry, band)
        return probability, band, bound

    def would_serve(self, prompt: str, cached_prompt: str) -> bool:
        """Say whether the answer to ``cached_prompt`` would be served to ``prompt`` (the pair
        alone: no entry's verdicts, no index), like ``ContentDeduplication.is_duplicate``."""
        _, band, bound = self.evaluate(prompt, Candidate("", cached_prompt, 0.0, -1), own=False)
        return band >= 0 and bound >= 1.0 - self.config.delta

    def decide(self, prompt: str, scope: Hashable = (), *,
               among: ContentDeduplication | None = None) -> Decision:
        """Decide for ``prompt`` in ``scope``.

        ``among``: look in another index instead (the calls in flight), deciding only "hit" or
        "miss", and not counting it in ``stats``.
        """
        index = among if among is not None else self.index
        best: Decision | None = None
        for candidate in index.search(prompt, scope, floor=self.config.floor, limit=3):
            probability, band, bound = self.evaluate(prompt, candidate, own=among is None)
            if band < 0:
                continue
            if best is None or bound > best.bound:
                best = Decision("miss", candidate, probability, band, bound)
        delta = self.config.delta
        if among is not None:   # a call in flight: shared only when certified on its own
            if best is None or best.bound < 1.0 - delta:
                return Decision("miss")
            return Decision("hit", best.candidate, best.probability, best.band, best.bound)
        self._counts["lookups"] += 1
        if best is None:
            self._counts["vetoed"] += 1
            return Decision("miss")
        if best.bound >= 1.0 - delta:
            self._spent += 1.0 - self.bands[best.band].mean()
            self._counts["hits"] += 1
            audit = self.judge is not None and self._rng.random() < self.config.audit
            self._counts["audits"] += audit
            return Decision("hit", best.candidate, best.probability, best.band, best.bound, audit)
        if self.judge is not None and self._from(best.band).upper(self.config.confidence) >= 1.0 - delta:
            self._counts["explored"] += 1
            return Decision("explore", best.candidate, best.probability, best.band, best.bound)
        self._counts["below_bound"] += 1
        return best

    def _from(self, band: int) -> Band:
        """The posterior of serving ``band`` and every band above it together."""
        union = self._unions.get(band)
        if union is None:
            union = self._unions[band] = Band.union(self.bands[band:])
        return union

    def _bound(self, band: int) -> float:
        """The best lower bound a candidate of ``band`` can stand under: serving from some band at
        or below it to the top (a thin top band alone proves little; with the bands under it,
        more)."""
        key = ("bound", band)
        if key not in self._unions:
            c = self.config.confidence
            self._unions[key] = max(self._from(b).lower(c) for b in range(band + 1))  # type: ignore[index]
        return self._unions[key]  # type: ignore[index]

    # -- learning ----------------------------------------------------------------------------------
    def observe(self, decision: Decision, same: bool) -> None:
        """Learn from one verdict on an explored or audited decision."""
        if decision.candidate is None or decision.band < 0:
            return
        self.bands[decision.band].observe(same, accuracy=self.config.judge_accuracy)
        self._unions.clear()
        entry = self._entries.setdefault(decision.candidate.entry, _Entry())
        entry.verdicts.append((decision.band, same))
        del entry.verdicts[:-_ENTRY_VERDICTS]
        self._counts["verdicts_same" if same else "verdicts_different"] += 1

    # -- the index ---------------------------------------------------------------------------------
    def add(self, prompt: str, key: str, scope: Hashable = ()) -> None:
        """Remember that ``prompt``'s answer is cached under ``key``, within ``scope``."""
        self.index.add(prompt, key, scope)

    def discard(self, key: str) -> int:
        return self.index.discard(key)

    def discard_matching(self, pattern: str) -> int:
        return self.index.discard_matching(pattern)

    def find(self, prompt: str, scope: Hashable = ()) -> Match | None:
        """Return the candidate ``decide`` would serve, as a ``Match``, or None (the ``dedup`` face)."""
        d = self.decide(prompt, scope)
        if d.action != "hit" or d.candidate is None:
            return None
        return Match(d.candidate.key, d.candidate.prompt, round(d.probability, 12))

    def bands_table(self) -> list[dict]:
        """Each band's edges, prior counts, verdicts and bounds: what the layer believes now."""
        c = self.config.confidence
        return [{"band": f"{BAND_EDGES[i]:.3f}-{BAND_EDGES[i + 1]:.3f}", "correct": b.correct,
                 "wrong": b.wrong, "said_same": b.said_same, "said_different": b.said_different,
                 "lower": round(b.lower(c), 4), "upper": round(b.upper(c), 4)}
                for i, b in enumerate(self.bands)]

