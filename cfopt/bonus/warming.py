"""Score a predictor on a time split and replay a cache with and without warming from it.

``evaluate_warming(requests)`` learns from the first ``train_fraction`` of the requests, then
walks through the rest in time order. Both arms are ``cfopt.pipeline.Pipeline`` replays of the
whole workload (routed calls, one exact-match memory cache: its TTLs and capacity are what
warming works against). In the warmed arm, as each request arrives, the predictor is scored on
it (for test requests), learns it, and the user's next ``k`` predictions that reach
``threshold`` are served ahead of time (``Pipeline.prefetch``): paid, cached, counted.

Figures, all from the test part:

- ``next_hit_at_k``: share of requests that were among the ``k`` predicted just before them;
- ``precision_at_k``: share of all predictions that the user asked within ``horizon_s``;
- hit rates with and without warming, their difference (``lift``), the provider time waited,
  and what warming cost: every pre-generation, and the ``wasted`` ones whose entry was never
  read before it expired, was evicted, or the replay ended.

Warming buys time, not money: a pre-generation costs what the call would, and saves that only
if the entry is read before it goes *and* the cache would otherwise have missed. At on-demand
prices its net saving is never positive; it pays in money only where pre-generation is cheaper
(a batch discount) and the chance of use exceeds the price ratio.

A warm-up takes as long as the call it makes: a request that arrives while its warm-up is still
in flight shares that call (it waits less, but it is not a hit). Nothing here reads ``intent``:
it scores keys, and the predictor sees requests without it.

>>> from cfopt.workload import generate
>>> report = evaluate_warming(generate(400, seed=3, duration_s=1200), k=3)
>>> 0 <= report.precision_at_k <= 1 and report.warm.requests == report.cold.requests
True
"""
from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..cache import CacheManager, MemoryLayer, TTLPolicy
from ..clock import VirtualClock
from ..errors import ConfigError
from ..pipeline import Pipeline, PipelineConfig
from ..workload import Request, strip_intent
from .predict import PredictorConfig, RequestPredictor, request_key

__all__ = ["WarmingConfig", "ArmStats", "WarmingReport", "evaluate_warming", "warming_pipeline"]

# Routed calls, one exact-match memory cache, identical calls in flight shared, pooled
# connections: the cache is what warming works against, the rest keeps the arms realistic.
CONFIG = PipelineConfig.select(only=["routing", "cache", "coalescing", "pooling"])


@dataclass(frozen=True, slots=True)
class WarmingConfig:
    """The cache warming works against, and how much it may pre-generate."""

    train_fraction: float = 0.5
    k: int = 3                       # predictions per request
    threshold: float = 0.2           # warm only predictions at least this likely
    max_entries: int = 10_000        # memory layer capacity
    ttls: TTLPolicy = field(default_factory=TTLPolicy)
    horizon_s: float = 300.0         # a prediction counts as right if asked within this
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.train_fraction < 1.0:
            raise ConfigError(f"train_fraction must lie in (0, 1), got {self.train_fraction}")
        if self.k < 1 or not 0.0 <= self.threshold <= 1.0 or self.horizon_s <= 0:
            raise ConfigError(f"need k >= 1, threshold in [0, 1], horizon_s > 0: {self!r}")


@dataclass
class ArmStats:
    """One cache replay over the test part."""

    requests: int = 0
    hits: int = 0
    errors: int = 0
    served_cost_usd: float = 0.0     # provider calls made for misses
    wait_s: float = 0.0              # provider latency waited for misses (a hit waits ~0)
    warmed: int = 0
    warm_used: int = 0               # warmed entries read at least once
    warm_cost_usd: float = 0.0
    wasted: int = 0                  # warmed entries never read
    wasted_cost_usd: float = 0.0

    @property
    def hit_rate(self) -> float:
        return self.hits / self.requests if self.requests else 0.0

    @property
    def mean_wait_s(self) -> float:
        return self.wait_s / self.requests if self.requests else 0.0

    @property
    def total_cost_usd(self) -> float:
        return self.served_cost_usd + self.warm_cost_usd


@dataclass
class WarmingReport:
    """Prediction quality and what warming did to the cache, on the test part."""

    config: WarmingConfig
    test_requests: int
    predictions: int
    next_hit_at_k: float
    precision_at_k: float
    cold: ArmStats
    warm: ArmStats

    @property
    def lift(self) -> float:
        """Hit-rate points gained by warming."""
        return self.warm.hit_rate - self.cold.hit_rate

    @property
    def net_saving_usd(self) -> float:
        """What warming saved, after paying for every pre-generation (negative: it cost more)."""
        return self.cold.total_cost_usd - self.warm.total_cost_usd


def _arm(blind: Sequence[Request], cfg: WarmingConfig, split: int,
         on_arrival: Callable[[Request], None] | None, pipeline: Pipeline) -> ArmStats:
    """Replay ``blind`` through ``pipeline``; the stats of its test part."""
    run = pipeline.run(blind, on_arrival=on_arrival)
    test = [o for o in run.outcomes if o.index >= split]
    w = run.warm
    return ArmStats(requests=len(test), hits=sum(o.from_cache for o in test),
                    errors=sum(o.error is not None for o in test),
                    served_cost_usd=round(sum(o.cost_usd for o in test), 9),
                    wait_s=sum(o.response_s for o in test if not o.from_cache and o.error is None),
                    warmed=int(w["calls"]), warm_used=int(w["used"]), warm_cost_usd=w["cost_usd"],
                    wasted=int(w["wasted"]), wasted_cost_usd=w["wasted_cost_usd"])


def warming_pipeline(cfg: WarmingConfig | None = None) -> Pipeline:
    """An exact-match memory cache in front of routed calls: what warming works against."""
    cfg = cfg if cfg is not None else WarmingConfig()
    clock = VirtualClock()
    cache = CacheManager([MemoryLayer(max_entries=cfg.max_entries, clock=clock)], ttls=cfg.ttls,
                         clock=clock)
    return Pipeline(CONFIG, cache=cache, seed=cfg.seed, clock=clock)


def evaluate_warming(requests: Sequence[Request], config: WarmingConfig | None = None, *,
                     predictor: RequestPredictor | None = None, **overrides) -> WarmingReport:
    """Score ``predictor`` on a time split of ``requests`` and replay warm and cold caches."""
    cfg = config if config is not None else WarmingConfig(**overrides)
    if config is not None and overrides:
        raise ConfigError("give a WarmingConfig or keyword overrides, not both")
    if len(requests) < 2:
        raise ConfigError("need at least two requests to split in time")
    predictor = predictor if predictor is not None else RequestPredictor(PredictorConfig())
    blind = strip_intent(requests)                     # all the predictor and caches ever see
    split = max(1, int(len(blind) * cfg.train_fraction))
    warm = warming_pipeline(cfg)
    last: dict[str, list] = {}                          # user -> keys predicted for their next
    made: list[tuple[str, float, list]] = []            # (user, time, keys) of every prediction
    seen = [0, 0]                                       # requests arrived, next-request hits

    def arrive(r: Request) -> None:
        i, user = seen[0], r.user or "anonymous"
        seen[0] += 1
        if i >= split:
            seen[1] += request_key(r) in last.get(user, ())
        predictor.observe(r)
        if i >= split - 1:  # from the last training request on: its predictions meet the test
            preds = predictor.predict(user, cfg.k)
            last[user] = [request_key(p) for p, _ in preds]
            made.append((user, r.t, last[user]))
            for p, prob in preds:
                if prob >= cfg.threshold:
                    warm.prefetch(p)

    warm_stats = _arm(blind, cfg, split, arrive, warm)
    cold_stats = _arm(blind, cfg, split, None, warming_pipeline(cfg))
    test = blind[split:]
    return WarmingReport(cfg, len(test), sum(len(keys) for _, _, keys in made),
                         seen[1] / len(test), _precision(test, made, cfg.horizon_s),
                         cold_stats, warm_stats)


def _precision(test: Sequence[Request], made: list[tuple[str, float, list]],
               horizon_s: float) -> float:
    """Share of predicted keys that their user asked within ``horizon_s`` after the prediction."""
    asked: dict[tuple[str, tuple], list[float]] = defaultdict(list)
    for r in test:
        asked[(r.user or "anonymous", request_key(r))].append(r.t)
    right = total = 0
    for user, t, keys in made:
        for key in keys:
            times = asked.get((user, key), [])
            j = bisect.bisect_right(times, t)
            right += j < len(times) and times[j] <= t + horizon_s
            total += 1
    return right / total if total else 0.0
