"""The pipeline's vocabulary: which optimizations exist, the switches, and what a replay returns.

>>> PipelineConfig.select(without=["routing", "batching", "lazy"])  # doctest: +ELLIPSIS
PipelineConfig(on=['compression', 'cache', 'dedup', 'coalescing', 'pooling', 'tying', 'resilience'], off=[...])
>>> PipelineConfig.baseline().applied
()
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ..batching.resilience import ResilienceStats
from ..batching.types import BatchStats
from ..cost.budget import UsageStats
from ..errors import ConfigError
from ..latency.pool import PoolStats, TransportStats
from ..latency.tie import TieStats

__all__ = ["OPTIMIZATIONS", "STREAMED_TYPES", "PipelineConfig", "Outcome", "RunResult"]

OPTIMIZATIONS = ("routing", "compression", "cache", "dedup", "coalescing", "batching", "lazy",
                 "pooling", "tying", "resilience")
STREAMED_TYPES = ("text",)   # the first token is useful; analysis is read whole


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """Which optimizations run; every one on by default, ``baseline()`` turns all off.

    The switches only: the knobs (cache capacity and TTLs, the quality bar, batch sizes) belong
    to the stages that use them (``Pipeline.set_params``).
    """

    routing: bool = True
    compression: bool = True
    cache: bool = True
    dedup: bool = True
    coalescing: bool = True
    batching: bool = True
    lazy: bool = True
    pooling: bool = True
    tying: bool = True        # slow models' interactive text as two tied copies (cfopt.latency.tie)
    resilience: bool = True
    tenant: str = "contentflow"   # one cache namespace for the whole app (see the report docs)

    @classmethod
    def baseline(cls) -> "PipelineConfig":
        """Premium models, no cache, no batching, a new connection per call."""
        return cls(**dict.fromkeys(OPTIMIZATIONS, False))

    @classmethod
    def select(cls, only: Iterable[str] | None = None,
               without: Iterable[str] | None = None) -> "PipelineConfig":
        """The optimized config with ``only`` these switched on, or all but ``without``."""
        only, without = list(only or ()), list(without or ())
        unknown = sorted(set(only + without) - set(OPTIMIZATIONS))
        if unknown:
            raise ConfigError(f"unknown optimization {', '.join(unknown)}; "
                              f"known: {', '.join(OPTIMIZATIONS)}")
        on = set(only) if only else set(OPTIMIZATIONS)
        return cls(**{name: name in on and name not in without for name in OPTIMIZATIONS})

    @property
    def applied(self) -> tuple[str, ...]:
        """The optimizations that take effect (dedup only with the cache it searches)."""
        return tuple(n for n in OPTIMIZATIONS if getattr(self, n) and (n != "dedup" or self.cache))

    def __repr__(self) -> str:
        off = [n for n in OPTIMIZATIONS if not getattr(self, n)]
        tenant = f", tenant={self.tenant!r}" if self.tenant != "contentflow" else ""
        return f"PipelineConfig(on={list(self.applied)}, off={off}{tenant})"


@dataclass(slots=True)
class Outcome:
    """How one request was answered."""

    index: int
    t: float
    type: str
    priority: str
    source: str          # provider | memory | disk | redis | semantic:<layer> | coalesced | error
    model: str | None    # the model whose answer was served
    path: str            # interactive (answered now, hits too) | batch | lazy (a handle)
    response_s: float    # arrival to first useful content (or to the error)
    completed_s: float   # arrival to the whole answer
    cost_usd: float = 0.0
    origin: str = ""     # the request id of the provider call whose answer was served
    truncated: bool = False
    tokens_saved: int = 0    # prompt tokens compression took off the call this request made
    error: str | None = None

    @property
    def from_cache(self) -> bool:
        """Whether a cache layer answered it (exactly or as a near-duplicate)."""
        return self.source not in ("provider", "error", "coalesced")

    @property
    def shared(self) -> bool:
        """Whether it shared an identical call already in flight (no cache was involved)."""
        return self.source == "coalesced"

    @property
    def without_call(self) -> bool:
        """Whether it was answered without a provider call of its own (cache or shared call)."""
        return self.source not in ("provider", "error")


@dataclass
class RunResult:
    """One replay: every request's outcome and what the providers saw."""

    config: PipelineConfig
    outcomes: list[Outcome]
    provider_calls: int
    failed_calls: int
    cost_usd: float
    calls_by_model: dict[str, int]
    pool: PoolStats | None
    resilience: ResilienceStats | None
    duration_s: float                # virtual: first arrival to the last answer
    wall_s: float                    # real seconds the replay took
    origins: dict[str, int] = field(repr=False, default_factory=dict)  # request id -> index
    cache_layers: dict[str, dict[str, int]] = field(default_factory=dict)  # hits, misses, sets
    budget_alerts: list[str] = field(default_factory=list)    # alert names, in order
    spend_by_user: dict[str, float] = field(repr=False, default_factory=dict)
    # The tracker's counters: calls, refused and downgraded (with ``Pipeline(budget=...)``), ...
    usage: UsageStats = field(repr=False, default_factory=UsageStats)
    batches: BatchStats | None = field(repr=False, default=None)      # the batching stage's
    transport: TransportStats | None = field(repr=False, default=None)  # the latency stage's
    ties: TieStats | None = field(repr=False, default=None)            # its tied requests
    events_by_stage: dict[str, int] = field(default_factory=dict)    # events each stage published
    heard_by_monitor: dict[str, int] | None = None                   # what the monitor heard of each
    warm: dict[str, float] = field(repr=False, default_factory=dict)  # prefetch: calls, cost, used
    # what the cache paid to verify near-duplicates (included in the calls and cost above)
    verification: dict[str, float] = field(repr=False, default_factory=dict)
