"""The plain records the cache manager hands back: what was found, served, warmed, counted."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from ..providers.base import Call, Result
from .layers.base import LayerStats

__all__ = ["Lookup", "Served", "Prediction", "WarmReport", "CacheStats", "Match", "SemanticStats"]


class Lookup(NamedTuple):
    """A cache look-up: the value (None on a miss) and the layer that had it."""

    value: Result | None
    layer: str | None


@dataclass(frozen=True, slots=True)
class Served:
    """How one request was answered.

    ``source`` is a layer name, ``"provider"`` (a call was made), ``"coalesced"`` (it waited for
    an identical call already in flight) or ``"semantic:<layer>"`` (a near-duplicate's answer).
    """

    result: Result
    source: str
    key: str                            # the entry that answered (for a semantic hit: the match's)
    matched_prompt: str | None = None   # for a semantic hit: the cached prompt that matched
    score: float | None = None

    @property
    def from_cache(self) -> bool:
        """Whether no provider call was made for this request."""
        return self.source != "provider"


@dataclass(frozen=True, slots=True)
class Prediction:
    """A request expected soon, with the probability that it comes."""

    call: Call
    probability: float
    tenant: str = "public"


@dataclass(frozen=True, slots=True)
class WarmReport:
    """What ``warm_cache`` did: calls made, and predictions skipped and why."""

    warmed: int = 0
    below_threshold: int = 0
    already_cached: int = 0
    failed: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class SemanticStats:
    """What the layer did so far (false hits are for the scorer to count: it knows the truth)."""

    lookups: int = 0
    hits: int = 0
    explored: int = 0            # candidates verified instead of served
    audits: int = 0              # hits served and verified in the background
    expected_false_hits: float = 0.0   # what the hits spent of the bound: sum of 1 - bound
    vetoed: int = 0              # candidates a hard guard ruled out
    below_bound: int = 0         # candidates neither served nor worth verifying
    verdicts_same: int = 0
    verdicts_different: int = 0
    judge_calls: int = 0
    judge_cost_usd: float = 0.0
    judge_s: float = 0.0         # seconds the judge calls took, added up


@dataclass(frozen=True, slots=True)
class CacheStats:
    """The manager's counters and every layer's ``LayerStats``."""

    requests: int = 0
    exact_hits: int = 0
    semantic_hits: int = 0
    coalesced: int = 0
    provider_calls: int = 0
    not_cached: int = 0          # answers refused: truncated (stop_reason "max_tokens")
    errors: int = 0              # provider errors passed on to the caller (never cached)
    layers: dict[str, LayerStats] = field(default_factory=dict)
    semantic: SemanticStats | None = None   # the bounded layer's, when there is one

    @property
    def hit_rate(self) -> float:
        """Share of requests answered without a provider call."""
        served = self.exact_hits + self.semantic_hits + self.coalesced
        return served / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class Match:
    """A cached prompt close enough to the one asked: its cache key, text and score."""

    key: str
    prompt: str
    score: float
