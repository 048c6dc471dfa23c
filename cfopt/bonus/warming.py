"""Score a predictor on a time split and replay a cache with and without warming from it.

``evaluate_warming(requests)`` learns from the first ``train_fraction`` of the requests, then
walks through the rest in time order. For each test request it scores the predictions made for
that user before it, serves it through two exact-match caches (``CacheManager`` with one
``MemoryLayer``: its TTLs and capacity are what warming works against), lets the predictor learn
it, and, in the warmed arm only, hands the user's next ``k`` predictions to ``warm_cache``.

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

Provider calls use ``simulate``: the answer is decided and cached when the request arrives, and
the clock moves only with arrivals, so a burst of warm-ups does not delay the traffic. Only this
scoring code reads ``intent`` (never: it scores keys); the predictor sees requests without it.

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

from ..cache import CacheManager, MemoryLayer, Prediction, TTLPolicy
from ..clock import VirtualClock
from ..cost.optimizer import CostOptimizer
from ..errors import ConfigError, ProviderError
from ..providers import Call, Providers, Result
from ..workload import Request, strip_intent
from .predict import PredictorConfig, RequestPredictor, request_key

__all__ = ["WarmingConfig", "ArmStats", "WarmingReport", "evaluate_warming", "routed_call"]

TENANT = "contentflow"  # one namespace for the whole app, as in the pipeline: users share answers


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


def routed_call(r: Request, optimizer: CostOptimizer) -> Call:
    """Return the provider call the cost router makes for ``r``."""
    return Call(optimizer.select_optimal_model(r).model, r.prompt, max_tokens=r.max_tokens)


class _Now:
    """Answer at once: the clock moves with arrivals only (see the module docstring)."""

    def __init__(self, providers: Providers) -> None:
        self.providers = providers

    def send(self, call: Call) -> Result:
        return self.providers.for_model(call.model).simulate(call)


class _Arm:
    """A cache in front of the simulated providers, with the bookkeeping of warmed entries."""

    def __init__(self, cfg: WarmingConfig, clock: VirtualClock) -> None:
        providers = Providers(seed=cfg.seed, clock=clock)
        self.cache = CacheManager([MemoryLayer(max_entries=cfg.max_entries, clock=clock)],
                                  ttls=cfg.ttls, provider=_Now(providers), clock=clock,
                                  catalog=providers.catalog, warm_threshold=cfg.threshold)
        self.stats = ArmStats()
        self._pending: dict[str, float] = {}   # warmed key -> its cost, not read yet

    def serve(self, call: Call, scoring: bool) -> None:
        try:
            served = self.cache.fetch(call, tenant=TENANT)
        except ProviderError:
            self.stats.errors += scoring
            return
        cost = self._pending.pop(served.key, None)
        if served.from_cache and cost is not None:
            self.stats.warm_used += 1
        elif cost is not None:  # the warmed entry expired or was evicted before anyone read it
            self._waste(cost)
        if scoring:
            self.stats.requests += 1
            self.stats.hits += served.from_cache
            if not served.from_cache:
                self.stats.served_cost_usd += served.result.cost_usd
                self.stats.wait_s += served.result.latency_s

    def warm(self, calls: list[tuple[Call, float]]) -> None:
        for call, p in calls:  # one at a time: the report names no keys, so learn each one's
            report = self.cache.warm_cache([Prediction(call, p, tenant=TENANT)])
            if report.warmed:
                self.stats.warmed += 1
                self.stats.warm_cost_usd += report.cost_usd
                key = self.cache.key_for(call, TENANT)[0]
                if key in self._pending:  # warmed again after its entry vanished unread
                    self._waste(self._pending[key])
                self._pending[key] = report.cost_usd

    def _waste(self, cost: float) -> None:
        self.stats.wasted += 1
        self.stats.wasted_cost_usd += cost

    def close(self) -> ArmStats:
        for cost in self._pending.values():
            self._waste(cost)
        self._pending.clear()
        return self.stats


def evaluate_warming(requests: Sequence[Request], config: WarmingConfig | None = None, *,
                     predictor: RequestPredictor | None = None,
                     to_call: Callable[[Request], Call] | None = None, **overrides) -> WarmingReport:
    """Score ``predictor`` on a time split of ``requests`` and replay warm and cold caches."""
    cfg = config if config is not None else WarmingConfig(**overrides)
    if config is not None and overrides:
        raise ConfigError("give a WarmingConfig or keyword overrides, not both")
    if len(requests) < 2:
        raise ConfigError("need at least two requests to split in time")
    predictor = predictor if predictor is not None else RequestPredictor(PredictorConfig())
    if to_call is None:
        optimizer = CostOptimizer()
        to_call = lambda r: routed_call(r, optimizer)  # noqa: E731
    blind = strip_intent(requests)                     # all the predictor and caches ever see
    split = max(1, int(len(blind) * cfg.train_fraction))
    clock = VirtualClock()
    cold, warm = _Arm(cfg, clock), _Arm(cfg, clock)
    last: dict[str, list] = {}                          # user -> keys predicted for their next
    made: list[tuple[str, float, list]] = []            # (user, time, keys) of every prediction
    next_hits = 0
    for i, r in enumerate(blind):
        clock.advance_to(r.t)
        scoring, user = i >= split, r.user or "anonymous"
        if scoring:
            next_hits += request_key(r) in last.get(user, ())
        call = to_call(r)
        cold.serve(call, scoring)
        warm.serve(call, scoring)
        predictor.observe(r)
        if i >= split - 1:  # from the last training request on: its predictions meet the test
            preds = predictor.predict(user, cfg.k)
            last[user] = [request_key(p) for p, _ in preds]
            made.append((user, r.t, last[user]))
            warm.warm([(to_call(p), prob) for p, prob in preds])
    test = blind[split:]
    return WarmingReport(cfg, len(test), sum(len(keys) for _, _, keys in made),
                         next_hits / len(test), _precision(test, made, cfg.horizon_s),
                         cold.close(), warm.close())


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
