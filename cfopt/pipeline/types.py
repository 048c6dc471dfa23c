"""The pipeline's vocabulary: which optimizations exist, the switches, and what a replay returns.

>>> PipelineConfig.select(without=["routing", "batching", "lazy"])  # doctest: +ELLIPSIS
PipelineConfig(on=['compression', 'cache', 'dedup', 'coalescing', 'pooling', 'resilience'], off=[...])
>>> PipelineConfig.baseline().applied
()
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ..cost.budget import UsageStats
from ..errors import ConfigError
from ..cost.optimizer import PREMIUM
from ..latency.pool import PoolStats
from ..workload import TEXT_TYPES
from ..cost.quality import QualityBar
from ..batching.resilience import ResilienceStats

__all__ = ["OPTIMIZATIONS", "PREMIUM", "TEXT_TYPES", "STREAMED_TYPES", "MEMORY_ENTRIES",
           "MEMORY_TTL_S", "PipelineConfig", "Outcome", "RunResult"]

OPTIMIZATIONS = ("routing", "compression", "cache", "dedup", "coalescing", "batching", "lazy",
                 "pooling", "resilience")
STREAMED_TYPES = ("text",)   # the first token is useful; analysis is read whole
MEMORY_ENTRIES = 10_000      # MemoryLayer's own default bound
MEMORY_TTL_S = 300.0         # TTLPolicy's memory TTL for text


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """Which optimizations run; every one on by default, ``baseline()`` turns all off."""

    routing: bool = True
    compression: bool = True
    cache: bool = True
    dedup: bool = True
    coalescing: bool = True
    batching: bool = True
    lazy: bool = True
    pooling: bool = True
    resilience: bool = True
    tenant: str = "contentflow"   # one cache namespace for the whole app (see the report docs)
    # The knobs of the stages above (the dashboard's controls); defaults change nothing.
    memory_entries: int = MEMORY_ENTRIES   # the memory cache layer's capacity, in entries
    # Seconds the memory layer keeps a text answer (media 24x, photo searches at most 1 h, as
    # TTLPolicy says). Disk and Redis keep their own TTLs (1 h for text): a memory entry that
    # expires is found again one layer down. A memory TTL above theirs raises them to match,
    # since TTLs grow away from the caller.
    memory_ttl_s: float = MEMORY_TTL_S
    quality_bar: QualityBar = field(default_factory=QualityBar)   # what ``routing`` must meet

    def __post_init__(self) -> None:
        if isinstance(self.memory_entries, bool) or not isinstance(self.memory_entries, int) \
                or self.memory_entries < 1:
            raise ConfigError(f"memory_entries must be a positive integer, got {self.memory_entries!r}")
        if not self.memory_ttl_s > 0:
            raise ConfigError(f"memory_ttl_s must be positive seconds, got {self.memory_ttl_s!r}")

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
        """The optimizations that take effect (dedup and coalescing only with what they need)."""
        return tuple(n for n in OPTIMIZATIONS if getattr(self, n) and (n != "dedup" or self.cache))

    def __repr__(self) -> str:
        off = [n for n in OPTIMIZATIONS if not getattr(self, n)]
        knobs = "".join(f", {k}={getattr(self, k)!r}" for k in ("memory_entries", "memory_ttl_s",
                                                                "quality_bar")
                        if getattr(self, k) != getattr(_DEFAULT_KNOBS, k))
        return f"PipelineConfig(on={list(self.applied)}, off={off}{knobs})"


_DEFAULT_KNOBS = PipelineConfig()


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
        """Whether it was answered without a provider call of its own."""
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
    pool: PoolStats
    resilience: ResilienceStats | None
    duration_s: float                # virtual: first arrival to the last answer
    wall_s: float                    # real seconds the replay took
    origins: dict[str, int] = field(repr=False, default_factory=dict)  # request id -> index
    cache_layers: dict[str, dict[str, int]] = field(default_factory=dict)  # hits, misses, sets
    budget_alerts: list[str] = field(default_factory=list)    # alert names, in order
    spend_by_user: dict[str, float] = field(repr=False, default_factory=dict)
    # The tracker's counters: calls, refused and downgraded (with ``Pipeline(budget=...)``), ...
    usage: UsageStats = field(repr=False, default_factory=UsageStats)
