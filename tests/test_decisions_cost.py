"""Part 1's decision (cfopt.course.decisions.cost): routing rules scored on a replay, the search
for the best rules, the floor, and the variants the grader replays."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from cfopt.cost import COMPLEXITIES, CostOptimizer
from cfopt.course.decisions.cost import RoutingReplay, routing_variant
from cfopt.errors import ConfigError
from cfopt.pipeline.score import QUALITY_BAR
from cfopt.providers import Call, Providers
from cfopt.workload import TEXT_TYPES, load

TINY = load(Path(__file__).resolve().parents[1] / "datasets" / "tiny.jsonl")
ALL = lambda model: dict.fromkeys(COMPLEXITIES, model)   # noqa: E731 - one model for everything


@pytest.fixture(scope="module")
def replay():
    return RoutingReplay.of(TINY)


def _every_table(replay):
    for picks in itertools.product(replay.models, repeat=len(COMPLEXITIES)):
        yield dict(zip(COMPLEXITIES, picks))


def test_an_outcome_is_what_the_simulated_providers_bill_and_what_the_optimizer_scores(replay):
    rules = {"low": "sonnet", "medium": "haiku", "high": "claude-opus-5-5"}
    got = replay.outcome(rules)
    opt = CostOptimizer()
    text = [r for r in TINY if r.type in TEXT_TYPES]
    models = [got.rules[opt.analyze_task(r).complexity] for r in text]
    providers = Providers(seed=0)
    billed = sum(providers.claude.simulate(Call(m, r.prompt, max_tokens=r.max_tokens)).cost_usd
                 for r, m in zip(text, models))
    assert got.cost_usd == pytest.approx(billed, rel=1e-9)
    assert got.quality_kept == pytest.approx(opt.quality_kept(text, models), rel=1e-12)
    assert sum(c.requests for c in got.cells) == replay.requests == len(text)
    assert sum(c.cost_usd for c in got.cells) == pytest.approx(got.cost_usd)
    assert got.bar == QUALITY_BAR and "medium: " in got.describe()


def test_the_best_rules_are_the_cheapest_table_that_keeps_the_bar(replay):
    best = replay.best_rules()
    kept = [replay.outcome(t) for t in _every_table(replay)]
    cheapest = min((o for o in kept if o.meets_bar), key=lambda o: o.cost_usd)
    assert best.meets_bar and best.cost_usd == pytest.approx(cheapest.cost_usd, rel=1e-12)
    assert replay.floor_usd() <= best.cost_usd + 1e-12
    # a model per request, fractionally, can only do better than one per complexity
    assert replay.floor_usd() > 0


def test_on_the_tiny_workload_thinking_pays(replay):
    """The exercise's design: the naive answers fail or pay far more than the best rules."""
    best = replay.best_rules().cost_usd
    assert not replay.outcome(ALL("haiku")).meets_bar                     # too cheap: under the bar
    intuitive = {"low": "haiku", "medium": "sonnet", "high": "opus"}
    assert not replay.outcome(intuitive).meets_bar                        # the obvious ladder too
    assert replay.premium_usd() >= 2.5 * best                             # all-premium: far off
    assert replay.cost_if_kept({"low": "sonnet", "medium": "sonnet", "high": "opus"}) >= 1.5 * best


def test_cost_if_kept_is_none_under_the_bar_and_a_table_exactly_at_the_bar_keeps_it(replay):
    assert replay.cost_if_kept(ALL("haiku")) is None
    assert replay.cost_if_kept(ALL("opus")) == pytest.approx(replay.premium_usd())
    rules = {"low": "haiku", "medium": "sonnet", "high": "opus"}
    exact = RoutingReplay(replay.models, replay.complexities, replay.costs, replay.quality,
                          replay.premium, replay.outcome(rules).quality_kept, replay.catalog)
    assert exact.outcome(rules).meets_bar and exact.cost_if_kept(rules) is not None


@pytest.mark.parametrize("rules, message", [
    (["haiku", "sonnet", "opus"], "must be a dict"),
    ({"low": "haiku", "medium": "haiku"}, "no model for high"),
    ({"low": "haiku", "medium": "haiku", "high": "opus", "critical": "opus"}, "'critical'"),
    ({"low": "haiku", "medium": "gpt-5", "high": "opus"}, "'gpt-5', not a Claude model"),
    ({"low": "flux_dev", "medium": "haiku", "high": "opus"}, "'flux_dev', not a Claude model"),
    ({"low": None, "medium": "haiku", "high": "opus"}, "None, not a Claude model"),
])
def test_rules_that_are_not_a_model_per_complexity_say_what_is_wrong(replay, rules, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        replay.outcome(rules)


def test_aliases_and_ids_name_the_same_model(replay):
    a = replay.outcome({"low": "haiku", "medium": "sonnet", "high": "opus"})
    b = replay.outcome({"low": "claude-haiku-5-5", "medium": "claude-sonnet-5-5", "high": "claude-opus-5-5"})
    assert a == b


def test_a_variant_keeps_the_mix_and_changes_the_requests(replay):
    one, again, other = routing_variant(TINY, 7), routing_variant(TINY, 7), routing_variant(TINY, 8)
    assert one == again and one != other
    v = RoutingReplay.of(one, seed=7)
    assert v.counts() == replay.counts()
    assert v.costs != replay.costs
    rules = {"low": "opus", "medium": "haiku", "high": "sonnet"}
    assert v.outcome(rules).quality_kept == pytest.approx(replay.outcome(rules).quality_kept, rel=1e-12)
    assert {r.prompt for r in one} - {r.prompt for r in TINY}, "a variant draws unseen requests too"


def test_the_best_rules_on_the_tiny_workload_stay_near_the_best_on_variants(replay):
    """The grader compares a learner's rules with the solution's on variants: the solution's
    (the best rules on the tiny workload) must stay the best, or close, on them."""
    rules = replay.best_rules().rules
    gaps = []
    for seed in range(1, 9):
        v = RoutingReplay.of(routing_variant(TINY, seed), seed=seed)
        gaps.append(v.cost_if_kept(rules) / v.best_rules().cost_usd - 1)
    assert max(gaps) < 0.15 and sorted(gaps)[len(gaps) // 2] < 1e-9, gaps
