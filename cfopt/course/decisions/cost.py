"""Part 1's decision: which Claude model serves the text tasks of each complexity.

The report calls quality "unchanged" when the answers keep ``QUALITY_BAR`` (95%) of the quality
the premium model would give, **on average** over the requests (``cfopt.pipeline.score``). The
router of notebook 01 promises more: each task its own need. Under the average alone, quality
can be bought where it is cheap and given up where it is dear, which is the decision asked here:
routing rules ``{complexity: model}`` that keep the bar at the lowest cost.

- ``RoutingReplay.of(requests, seed=...)`` simulates every text and analysis request once on
  every Claude model (seeded answers, the default list prices): what any rules would pay.
- ``replay.outcome(rules)``: what the rules cost and keep, complexity by complexity.
- ``replay.best_rules()``: the search over every table of rules; the cheapest that keeps the bar
  is the best known answer.
- ``replay.floor_usd()``: a floor no routing that keeps the bar can beat, even one choosing a
  model per request: the linear-programming relaxation of that choice (a multiple-choice
  knapsack), solved by the report's own cost floor (``cfopt.pipeline.score``).
- ``routing_variant(requests, seed)``: another day with the same mix of work: as many text
  requests of each complexity as ``requests`` has, drawn from them and from a generated
  workload, answered on another seed. The same rules keep the same quality on every variant;
  what they cost moves with the requests drawn.

>>> from cfopt.workload import Request
>>> day = [Request(t=0.0, type="analysis", task="sentiment_analysis", max_tokens=16,
...                prompt="Classify the sentiment of this review: the mug leaks."),
...        Request(t=1.0, type="text", task="legal_notice", max_tokens=400,
...                prompt="Write the legal notice for our newsletter sign-up form.")]
>>> replay = RoutingReplay.of(day)
>>> replay.counts()
{'low': 1, 'medium': 0, 'high': 1}
>>> rules = {"low": "haiku", "medium": "haiku", "high": "opus"}
>>> got = replay.outcome(rules)
>>> round(got.quality_kept, 4), got.meets_bar, replay.cost_if_kept(rules) == got.cost_usd
(0.957, True, True)
>>> replay.best_rules().cost_usd <= got.cost_usd, replay.floor_usd() <= replay.best_rules().cost_usd
(True, True)
"""
from __future__ import annotations

import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ...cost.optimizer import CostOptimizer
from ...cost.quality import COMPLEXITIES, QualityTable
from ...errors import ConfigError
from ...pipeline.score import QUALITY_BAR, cheapest_at_quality
from ...pricing import PriceCatalog, load_catalog
from ...providers import Call, Providers
from ...workload import TEXT_TYPES, Request, generate

__all__ = ["Cell", "RoutingOutcome", "RoutingReplay", "routing_variant", "QUALITY_BAR"]

_TOLERANCE = 1e-9   # quality sums of floats: a table exactly at the bar keeps it


@dataclass(frozen=True, slots=True)
class Cell:
    """The requests of one complexity under a set of rules: where they went, what they paid."""

    complexity: str
    requests: int
    model: str
    cost_usd: float
    quality: float    # the model's share of the premium model's quality at this complexity


@dataclass(frozen=True, slots=True)
class RoutingOutcome:
    """What routing rules achieved on a replay: cost, quality kept, and per complexity."""

    rules: Mapping[str, str]          # complexity -> model id
    cost_usd: float
    quality_kept: float               # share of the premium model's quality, over the requests
    bar: float
    cells: tuple[Cell, ...] = field(repr=False)

    @property
    def meets_bar(self) -> bool:
        """Do the rules keep at least the bar's share of premium quality?"""
        return self.quality_kept >= self.bar - _TOLERANCE

    def describe(self) -> str:
        """One line per complexity that has requests: how many, where, what each keeps and pays."""
        return "; ".join(f"{c.complexity}: {c.requests} requests on {c.model} keep {c.quality:.1%} "
                         f"each, ${c.cost_usd:.4f}" for c in self.cells if c.requests)


@dataclass(frozen=True, slots=True)
class RoutingReplay:
    """Every text request of a workload priced on every Claude model, ready to score rules."""

    models: tuple[str, ...]                      # the Claude models, cheapest first
    complexities: tuple[str, ...]                # each request's complexity
    costs: tuple[tuple[float, ...], ...]         # each request's cost on each of ``models``
    quality: QualityTable = field(repr=False)
    premium: str = ""
    bar: float = QUALITY_BAR
    catalog: PriceCatalog | None = field(default=None, repr=False)

    @classmethod
    def of(cls, requests: Sequence[Any], *, seed: int = 0, catalog: PriceCatalog | None = None,
           bar: float = QUALITY_BAR) -> "RoutingReplay":
        """Simulate each text and analysis request of ``requests`` on every Claude model.

        Answers come from the simulated Claude on ``seed`` (no faults), priced by ``catalog``
        (default: the list prices); complexities from ``CostOptimizer.analyze_task``.
        """
        catalog = catalog if catalog is not None else load_catalog()
        optimizer = CostOptimizer(catalog)
        models = tuple(optimizer.candidates("text"))
        claude = Providers(seed=seed, catalog=catalog).claude   # the notebooks' replays' answers
        levels, costs = [], []
        for r in requests:
            if r.type not in TEXT_TYPES:
                continue
            levels.append(optimizer.analyze_task(r).complexity)
            costs.append(tuple(claude.simulate(Call(m, r.prompt, max_tokens=r.max_tokens)).cost_usd
                               for m in models))
        return cls(models, tuple(levels), tuple(costs), optimizer.quality,
                   optimizer.premium_for("text") or models[-1], bar, catalog)

    @property
    def requests(self) -> int:
        """How many text and analysis requests the replay holds."""
        return len(self.complexities)

    def counts(self) -> dict[str, int]:
        """Requests per complexity, every complexity named (0 when absent)."""
        return {c: self.complexities.count(c) for c in COMPLEXITIES}

    def rules_of(self, rules: Any) -> dict[str, str]:
        """``rules`` checked and resolved to model ids: one Claude model per complexity.

        Aliases (``"haiku"``) are accepted; a missing or unknown complexity, a model that is not
        a Claude model, or anything but a mapping raises ``ConfigError`` saying which.
        """
        if not isinstance(rules, Mapping):
            raise ConfigError(f"routing rules must be a dict {{complexity: model}}, got "
                              f"{type(rules).__name__} {rules!r}")
        unknown = [k for k in rules if k not in COMPLEXITIES]
        if unknown:
            raise ConfigError(f"routing rules name {unknown!r}; the complexities are "
                              f"{', '.join(COMPLEXITIES)}")
        missing = [c for c in COMPLEXITIES if c not in rules]
        if missing:
            raise ConfigError(f"routing rules give no model for {', '.join(missing)} complexity; "
                              f"name one for each of {', '.join(COMPLEXITIES)}")
        catalog = self.catalog or load_catalog()
        out = {}
        for level in COMPLEXITIES:
            name = rules[level]
            try:
                model = catalog.model(name).id if isinstance(name, str) else None
            except ConfigError:
                model = None
            if model not in self.models:
                raise ConfigError(f"routing rules send {level} complexity to {name!r}, not a Claude "
                                  f"model; choose one of {', '.join(self.models)} (or an alias)")
            out[level] = model
        return out

    def outcome(self, rules: Any) -> RoutingOutcome:
        """What ``rules`` (``{complexity: model}``) cost on this replay and what they keep."""
        chosen = self.rules_of(rules)
        return self._outcome({c: self.models.index(m) for c, m in chosen.items()})

    def cost_if_kept(self, rules: Any) -> float | None:
        """The rules' cost in USD, or None when they do not keep the bar (a grader's outcome)."""
        got = self.outcome(rules)
        return round(got.cost_usd, 9) if got.meets_bar else None

    def premium_usd(self) -> float:
        """What sending every request to the premium model costs."""
        return self.outcome({c: self.premium for c in COMPLEXITIES}).cost_usd

    def best_rules(self) -> RoutingOutcome:
        """The cheapest rules that keep the bar: a search over every table of rules.

        Complexities without requests go to the premium model (they cost nothing here).
        """
        table = self._table()
        present = [c for c in COMPLEXITIES if table[c][0]]
        top = self.models.index(self.premium)
        best: tuple[float, dict[str, int]] | None = None
        for picks in itertools.product(range(len(self.models)), repeat=len(present)):
            choice = {**{c: top for c in COMPLEXITIES}, **dict(zip(present, picks))}
            cost, kept = self._score(table, choice)
            if kept >= self.bar - _TOLERANCE and (best is None or cost < best[0] - 1e-15):
                best = (cost, choice)
        assert best is not None, "the premium model keeps every request's quality"
        return self._outcome(best[1])

    def floor_usd(self) -> float:
        """The least any routing that keeps the bar can pay, even choosing per request.

        Each request may take any model, fractionally: the relaxation the report's cost floor
        solves (``cfopt.pipeline.score``), so no table of rules costs less.
        """
        items = [[(cost, self.quality.score(m, level)) for m, cost in zip(self.models, costs)]
                 for level, costs in zip(self.complexities, self.costs)]
        need = self.bar * sum(self.quality.score(self.premium, level) for level in self.complexities)
        return cheapest_at_quality(items, need)

    # -- internals ------------------------------------------------------------------------------
    def _table(self) -> dict[str, tuple[int, list[float]]]:
        """Per complexity: how many requests, and their total cost on each model."""
        table = {c: (0, [0.0] * len(self.models)) for c in COMPLEXITIES}
        for level, costs in zip(self.complexities, self.costs):
            n, totals = table[level]
            table[level] = (n + 1, [t + c for t, c in zip(totals, costs)])
        return table

    def _score(self, table: Mapping[str, tuple[int, list[float]]],
               choice: Mapping[str, int]) -> tuple[float, float]:
        cost = got = best = 0.0
        for level, (n, totals) in table.items():
            cost += totals[choice[level]]
            got += n * self.quality.score(self.models[choice[level]], level)
            best += n * self.quality.score(self.premium, level)
        return cost, (got / best if best else 1.0)

    def _outcome(self, choice: Mapping[str, int]) -> RoutingOutcome:
        table = self._table()
        cost, kept = self._score(table, choice)
        cells = tuple(Cell(c, table[c][0], self.models[choice[c]], table[c][1][choice[c]],
                           self.quality.score(self.models[choice[c]], c)) for c in COMPLEXITIES)
        return RoutingOutcome({c: self.models[choice[c]] for c in COMPLEXITIES}, cost, kept,
                              self.bar, cells)


def routing_variant(requests: Sequence[Any], seed: int, *, pool: int = 400) -> list[Request]:
    """Another day with the mix of ``requests``: per complexity as many text and analysis
    requests, drawn (seeded, with replacement) from ``requests`` and a workload of ``pool``
    requests generated on ``seed``. Replay it on the same ``seed`` for other answers too.
    """
    optimizer = CostOptimizer()
    text = [r for r in requests if r.type in TEXT_TYPES]
    fresh = [r for r in generate(pool, seed=seed, duration_s=3600.0) if r.type in TEXT_TYPES]
    by_level: dict[str, list[Any]] = {c: [] for c in COMPLEXITIES}
    want = dict.fromkeys(COMPLEXITIES, 0)
    for r in text:
        level = optimizer.analyze_task(r).complexity
        by_level[level].append(r)
        want[level] += 1
    for r in fresh:
        by_level[optimizer.analyze_task(r).complexity].append(r)
    rng = random.Random(f"routing variant {seed}")
    drawn = [rng.choice(by_level[c]) for c in COMPLEXITIES for _ in range(want[c])]
    rng.shuffle(drawn)
    return [replace(r, t=float(i), id=f"v{seed}-{i:04d}") for i, r in enumerate(drawn)]
