"""The bonus decision: which predicted requests are worth pre-generating (cache warming).

``cfopt.bonus.predict.RequestPredictor`` ranks each user's likely next requests, each with a
confidence; ``Pipeline.prefetch`` serves one ahead of time and caches the answer. A warm-up is a
bet: its call is paid now; if someone asks for it while the entry is still cached, that request
is a hit and the call it would have made is saved, so the warm-up cost nothing extra; if nobody
does, the call was money thrown away.

To weigh hits against dollars, a hit is given a value, ``HIT_VALUE_USD``: an assumption (what an
answer in milliseconds instead of seconds is worth to ContentFlow), not a measurement. A *rule*
``should_warm(request, probability) -> bool`` is asked about each of the ``PREDICTIONS``
predictions made as each request of the test half arrives. ``WarmingReplay.score`` replays the
workload through the pipeline of ``cfopt.bonus.warming`` (routed calls, one exact-match memory
cache) once with the rule's warm-ups and once without, and reports the hits gained, the extra
spend, and the net value ``hits gained x HIT_VALUE_USD - extra spend``.

``best_warming`` is the best known answer: a search over two families of rules, expected-value
rules (warm when the chance of a read times the hit's value beats the chance of a waste times a
share of the price, the chance at least a floor) and price limits. Its settings stay private:
a check says how far a rule is from it, never what it is.

``WarmingReplay.by_type`` and ``by_confidence`` are what a learner reasons from: how often a
warm-up would make a call, how often such a call is read in time, and what it costs.

>>> replay = WarmingReplay(warming_workload(3, requests=300, duration_s=600))
>>> replay.score(lambda request, probability: False).net_usd
0.0
>>> replay.score(lambda request, probability: True).said_yes == replay.asked
True
"""
from __future__ import annotations

import bisect
import functools
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ...bonus.predict import RequestPredictor, request_key
from ...bonus.warming import WarmingConfig, warming_pipeline
from ...cost.optimizer import CostOptimizer
from ...errors import ConfigError
from ...pipeline import RunResult
from ...workload import Request, generate, strip_intent

__all__ = ["HIT_VALUE_USD", "PREDICTIONS", "WORKLOAD_REQUESTS", "WORKLOAD_S", "VISIBLE_SEED",
           "CONFIDENCE_BANDS", "Rule", "WarmingOutcome", "WarmingReplay", "BestWarming",
           "warming_workload", "warming_replay", "warm_up_price", "best_warming"]

HIT_VALUE_USD = 0.005        # what one more cache hit is worth: an assumption, not a measurement
PREDICTIONS = 5              # predictions per arrival the rule is asked about
WORKLOAD_REQUESTS, WORKLOAD_S = 1200, 1200.0   # 20 generated minutes: the first half to learn
VISIBLE_SEED = 13            # the workload a notebook shows; graders draw others
CONFIDENCE_BANDS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)   # lower edges of the bands of by_confidence

Rule = Callable[[Request, float], Any]


@functools.lru_cache(maxsize=8192)
def _price(type_: str, prompt: str, task: str | None, quality: str, max_tokens: int | None) -> float:
    r = Request(t=0.0, type=type_, prompt=prompt, task=task, quality=quality, max_tokens=max_tokens)
    opt = CostOptimizer()
    return opt.estimate_cost(r, opt.select_optimal_model(r).model)


def warm_up_price(request: Request) -> float:
    """The most a warm-up of ``request`` can cost (USD): its routed model, the output at its cap.

    A text answer is usually much shorter than its cap, so the call itself costs less
    (``WarmingReplay.by_type`` measures how much less)."""
    return _price(request.type, request.prompt, request.task, request.quality, request.max_tokens)


@functools.lru_cache(maxsize=16)
def warming_workload(seed: int = VISIBLE_SEED, *, requests: int = WORKLOAD_REQUESTS,
                     duration_s: float = WORKLOAD_S) -> tuple[Request, ...]:
    """The generated workload of ``seed``: 1,200 requests over 20 minutes by default."""
    return tuple(generate(requests, seed=seed, duration_s=duration_s))


@dataclass(frozen=True)
class WarmingOutcome:
    """What a rule did on the test half of a workload, beside the same replay without warming."""

    hits_gained: int           # hits with warming minus hits without (test half)
    extra_usd: float           # spend with warming, warm-ups included, minus spend without
    hit_value_usd: float
    asked: int                 # predictions the rule was asked about
    said_yes: int              # predictions it chose to warm
    warm_calls: int            # warm-ups that made a call (the others found the entry cached)
    warm_read: int             # warm-ups whose entry someone read
    yes_over_hit_value: int    # said yes to predictions whose warm_up_price exceeds a hit's value
    no_under_tenth: int        # said no to predictions priced under a tenth of a hit's value

    @property
    def net_usd(self) -> float:
        """Hits gained at ``hit_value_usd`` each, minus the extra spend."""
        return round(self.hits_gained * self.hit_value_usd - self.extra_usd, 9)

    def format(self) -> str:
        return (f"{self.said_yes:,} of {self.asked:,} predictions warmed ({self.warm_calls} calls made, "
                f"{self.warm_read} of them read): {self.hits_gained:+d} hits, "
                f"${self.extra_usd:.4f} extra spend, net ${self.net_usd:+.4f}")


class WarmingReplay:
    """A workload split in time, its predictions made once, and its replay without warming.

    The predictor learns every request as it arrives (as ``evaluate_warming`` does); from the
    last request of the first half on, each arrival asks for its user's next ``PREDICTIONS``
    requests. Predictions do not depend on what gets warmed, so every rule is asked about the
    same ones, and two rules that say yes to the same predictions share one replay.
    """

    def __init__(self, requests: Sequence[Request], *, hit_value_usd: float = HIT_VALUE_USD,
                 seed: int = 0) -> None:
        if len(requests) < 2:
            raise ConfigError("need at least two requests to split in time")
        if not hit_value_usd > 0:
            raise ConfigError(f"hit_value_usd must be positive, got {hit_value_usd!r}")
        self.requests = strip_intent(requests)
        self._index = {r.id: i for i, r in enumerate(self.requests)}
        if len(self._index) != len(self.requests):
            raise ConfigError("request ids must be unique: predictions are matched to arrivals by id")
        self.config = WarmingConfig(seed=seed, k=PREDICTIONS)
        self.split = max(1, int(len(self.requests) * self.config.train_fraction))
        self.hit_value_usd = hit_value_usd
        predictor = RequestPredictor()
        # (arrival index, predicted request, confidence), in arrival then rank order
        self.predictions: list[tuple[int, Request, float]] = []
        for i, r in enumerate(self.requests):
            predictor.observe(r)
            if i >= self.split - 1:
                self.predictions += [(i, q, p) for q, p in predictor.predict(r.user or "anonymous",
                                                                            PREDICTIONS)]
        self._prices = [warm_up_price(q) for _, q, _ in self.predictions]
        self._best: BestWarming | None = None
        cold = self._run(frozenset())
        self._runs: dict[frozenset[int], tuple[int, float, dict]] = {frozenset(): self._summary(cold)}
        self.cold_hits, self.cold_usd, _ = self._runs[frozenset()]
        self._cold_calls = self._call_costs(cold)

    @property
    def asked(self) -> int:
        """How many predictions a rule is asked about."""
        return len(self.predictions)

    def _run(self, yes: frozenset[int]) -> RunResult:
        """Replay the workload, warming the predictions numbered in ``yes`` as their request arrives."""
        pipeline = warming_pipeline(self.config)
        by_arrival: dict[int, list[Request]] = defaultdict(list)
        for n in sorted(yes):
            i, q, _ = self.predictions[n]
            by_arrival[i].append(q)

        def arrive(r: Request) -> None:
            for q in by_arrival.get(self._index[r.id], ()):
                pipeline.prefetch(q)
        return pipeline.run(self.requests, on_arrival=arrive if yes else None)

    def _summary(self, run: RunResult) -> tuple[int, float, dict]:
        """Hits and spend (warm-ups included) of the test half, and the warm-up counts."""
        test = [o for o in run.outcomes if o.index >= self.split]
        spend = sum(o.cost_usd for o in test) + run.warm.get("cost_usd", 0.0)
        return sum(o.from_cache for o in test), round(spend, 9), dict(run.warm)

    def _replay(self, yes: frozenset[int]) -> tuple[int, float, dict]:
        if yes not in self._runs:
            self._runs[yes] = self._summary(self._run(yes))
        return self._runs[yes]

    def decide(self, rule: Rule) -> frozenset[int]:
        """The numbers of the predictions ``rule`` says to warm (asked before anything replays)."""
        if not callable(rule):
            raise ConfigError(f"a rule is a function (request, probability) -> bool, got {rule!r}")
        return frozenset(n for n, (_, q, p) in enumerate(self.predictions) if rule(q, p))

    def score(self, rule: Rule) -> WarmingOutcome:
        """Replay with ``rule`` choosing which predictions to warm; compare with no warming."""
        yes = self.decide(rule)
        hits, spend, warm = self._replay(yes)
        value, prices = self.hit_value_usd, self._prices
        return WarmingOutcome(
            hits_gained=hits - self.cold_hits, extra_usd=round(spend - self.cold_usd, 9),
            hit_value_usd=value, asked=self.asked, said_yes=len(yes),
            warm_calls=int(warm.get("calls", 0)), warm_read=int(warm.get("used", 0)),
            yes_over_hit_value=sum(prices[n] > value for n in yes),
            no_under_tenth=sum(price < value / 10 for n, price in enumerate(prices) if n not in yes))

    # -- what a learner reasons from ---------------------------------------------------------------
    def _call_costs(self, cold: RunResult) -> dict[str, tuple[float, float]]:
        """Per type: (USD the provider calls of the test half cost without warming, the sum of
        their ``warm_up_price``)."""
        sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for o in cold.outcomes:
            if o.index >= self.split and o.source == "provider":
                r = self.requests[o.index]
                sums[r.type][0] += o.cost_usd
                sums[r.type][1] += warm_up_price(r)
        return {t: (a, b) for t, (a, b) in sums.items()}

    @functools.cached_property
    def _fates(self) -> list[tuple[bool, bool]]:
        """For each prediction: would its warm-up make a call (nobody asked for the key within its
        TTL before), and would the answer be read (somebody asks for it within the TTL after)?
        Read from the request times alone, an approximation of what the cache does."""
        times: dict[tuple, list[float]] = defaultdict(list)
        for r in self.requests:
            times[request_key(r)].append(r.t)
        fates = []
        for i, q, _ in self.predictions:
            now, ttl = self.requests[i].t, self.config.ttls.ttl("memory", q.type)
            ts = times[request_key(q)]
            j = bisect.bisect_right(ts, now)
            call = not (j > 0 and ts[j - 1] > now - ttl)
            fates.append((call, call and j < len(ts) and ts[j] <= now + ttl))
        return fates

    def by_type(self) -> list[dict[str, Any]]:
        """Per type of the predicted request: how many predictions, the share whose warm-up would
        make a call, the share of those read in time, the median ``warm_up_price``, and what a
        call of that type cost in the replay without warming as a share of ``warm_up_price``."""
        groups: dict[str, list[int]] = defaultdict(list)
        for n, (_, q, _) in enumerate(self.predictions):
            groups[q.type].append(n)
        return [self._row("type", t, ns) for t, ns in sorted(groups.items(), key=lambda g: -len(g[1]))]

    def by_confidence(self) -> list[dict[str, Any]]:
        """Per band of confidence (``CONFIDENCE_BANDS``): the same figures as ``by_type``."""
        groups: dict[int, list[int]] = defaultdict(list)
        for n, (_, _, p) in enumerate(self.predictions):
            groups[bisect.bisect_right(CONFIDENCE_BANDS, p) - 1].append(n)
        edges = (*CONFIDENCE_BANDS, None)
        return [self._row("confidence", f"{edges[b]:.0%} to {edges[b + 1]:.0%}" if edges[b + 1] is not None
                          else f"{edges[b]:.0%} or more", groups[b]) for b in sorted(groups)]

    def _row(self, what: str, label: str, numbers: list[int]) -> dict[str, Any]:
        fates = self._fates
        calls = [n for n in numbers if fates[n][0]]
        prices = [self._prices[n] for n in numbers]
        row = {what: label, "predictions": len(numbers),
               "would call": len(calls) / len(numbers) if numbers else 0.0,
               "read in time": sum(fates[n][1] for n in calls) / len(calls) if calls else None,
               "median warm_up_price": statistics.median(prices) if prices else 0.0}
        if what == "type":
            paid, cap = self._cold_calls.get(label, (0.0, 0.0))
            row["a call costs, of its price"] = paid / cap if cap > 0 else None
        return row


@functools.lru_cache(maxsize=8)
def warming_replay(seed: int = VISIBLE_SEED) -> WarmingReplay:
    """The replay of ``warming_workload(seed)``, built once per process."""
    return WarmingReplay(warming_workload(seed))


@dataclass(frozen=True)
class BestWarming:
    """The best known rule's outcome on a workload (which rule it was is not kept)."""

    outcome: WarmingOutcome
    tried: int               # rules the search replayed


COST_SHARES = (0.5, 0.25, 0.125)    # the share of warm_up_price an expected-value rule weighs
CHANCE_FLOORS = (0.0, 0.2)          # the least chance of a read it assumes
PRICE_LIMITS = (0.002, 0.004)       # USD: a price-limit rule warms what costs at most this


def _expected_value(value: float, share: float, floor: float) -> Rule:
    def rule(q: Request, p: float) -> bool:
        chance = max(p, floor)
        return chance * value >= (1 - chance) * share * warm_up_price(q)
    return rule


def _price_limit(limit: float) -> Rule:
    return lambda q, p: warm_up_price(q) <= limit


def best_warming(replay: WarmingReplay) -> BestWarming:
    """The best net value found on ``replay`` (computed once per replay) by a search over
    expected-value rules (``COST_SHARES`` x ``CHANCE_FLOORS``) and price limits (``PRICE_LIMITS``)."""
    if replay._best is None:
        rules = [_expected_value(replay.hit_value_usd, s, f) for s in COST_SHARES for f in CHANCE_FLOORS]
        rules += [_price_limit(limit) for limit in PRICE_LIMITS]
        outcomes = [replay.score(rule) for rule in rules]
        replay._best = BestWarming(max(outcomes, key=lambda o: o.net_usd), len(rules))
    return replay._best
