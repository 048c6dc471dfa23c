"""The bonus decision (cfopt.course.decisions.bonus): which predictions to warm, scored on a replay
through the warming pipeline, the search for the best known rule, and what a learner reasons from."""
from __future__ import annotations

import pytest

from cfopt.bonus.warming import evaluate_warming
from cfopt.cost import CostOptimizer
from cfopt.course.decisions.bonus import (HIT_VALUE_USD, PREDICTIONS, VISIBLE_SEED, WarmingReplay,
                                          best_warming, warm_up_price, warming_replay, warming_workload)
from cfopt.errors import ConfigError

ALWAYS = lambda request, probability: True      # noqa: E731
NEVER = lambda request, probability: False      # noqa: E731


@pytest.fixture(scope="module")
def small():
    return WarmingReplay(warming_workload(3, requests=300, duration_s=600))


def test_warming_nothing_changes_nothing(small):
    got = small.score(NEVER)
    assert (got.hits_gained, got.extra_usd, got.net_usd, got.said_yes, got.warm_calls) == (0, 0.0, 0.0, 0, 0)
    assert got.asked == small.asked == len(small.predictions) > 0


def test_warming_everything_is_what_evaluate_warming_measures(small):
    """The replay is cfopt.bonus.warming's: warming every prediction is evaluate_warming at
    threshold 0 with the same number of predictions per arrival."""
    got = small.score(ALWAYS)
    ref = evaluate_warming(list(warming_workload(3, requests=300, duration_s=600)), k=PREDICTIONS,
                           threshold=0.0)
    assert got.hits_gained == ref.warm.hits - ref.cold.hits
    assert got.extra_usd == pytest.approx(ref.warm.total_cost_usd - ref.cold.total_cost_usd, abs=1e-9)
    assert (got.warm_calls, got.warm_read) == (ref.warm.warmed, ref.warm.warm_used)
    assert got.net_usd == pytest.approx(got.hits_gained * HIT_VALUE_USD - got.extra_usd, abs=1e-9)


def test_a_rule_is_asked_once_per_prediction_and_equal_choices_share_a_replay(small):
    seen = []

    def rule(request, probability):
        seen.append((request.id, probability))
        return probability >= 0.3
    first = small.score(rule)
    assert len(seen) == small.asked
    assert seen == [(q.id, p) for _, q, p in small.predictions]
    runs = len(small._runs)
    again = small.score(lambda request, probability: probability >= 0.3)
    assert again == first and len(small._runs) == runs


def test_a_rule_that_raises_stops_the_score_before_any_replay(small):
    def stub(request, probability):
        raise NotImplementedError("write it")
    runs = len(small._runs)
    with pytest.raises(NotImplementedError):
        small.score(stub)
    assert len(small._runs) == runs
    with pytest.raises(ConfigError):
        small.score("yes")


def test_the_outcome_describes_what_the_rule_chose(small):
    dear = small.score(lambda request, probability: warm_up_price(request) > HIT_VALUE_USD)
    prices = [warm_up_price(q) for _, q, _ in small.predictions]
    assert dear.said_yes == dear.yes_over_hit_value == sum(p > HIT_VALUE_USD for p in prices)
    assert dear.no_under_tenth == sum(p < HIT_VALUE_USD / 10 for p in prices)
    assert "predictions warmed" in dear.format() and f"{dear.net_usd:+.4f}" in dear.format()


def test_the_best_known_rule_beats_the_simple_ones_and_is_searched_once(small):
    best = best_warming(small)
    assert best is best_warming(small) and best.tried == 8
    for rule in (ALWAYS, NEVER, lambda request, probability: probability >= 0.2):
        assert best.outcome.net_usd >= small.score(rule).net_usd


def test_warm_up_price_is_the_routed_model_at_the_output_cap(small):
    opt = CostOptimizer()
    for _, q, _ in small.predictions[:40]:
        assert warm_up_price(q) == pytest.approx(opt.estimate_cost(q, opt.select_optimal_model(q).model))


def test_the_tables_count_every_prediction_once(small):
    for rows in (small.by_type(), small.by_confidence()):
        assert sum(r["predictions"] for r in rows) == small.asked
        for r in rows:
            assert 0.0 <= r["would call"] <= 1.0
            assert r["read in time"] is None or 0.0 <= r["read in time"] <= 1.0
    text = next(r for r in small.by_type() if r["type"] == "text")
    assert 0.0 < text["a call costs, of its price"] < 1.0    # answers are shorter than their caps


def test_impossible_inputs_are_refused():
    reqs = warming_workload(3, requests=300, duration_s=600)
    with pytest.raises(ConfigError):
        WarmingReplay(reqs[:1])
    with pytest.raises(ConfigError):
        WarmingReplay(reqs, hit_value_usd=0)
    with pytest.raises(ConfigError):
        WarmingReplay([reqs[0], reqs[1], reqs[1]])


def test_the_notebook_solution_is_near_the_best_known_rule_on_the_visible_workload():
    """Notebook 06's solution (an expected-value rule: chance at least 1 in 5, half the cap price)
    must pass its own check, which asks for 80% of the best known net value."""
    replay = warming_replay(VISIBLE_SEED)

    def solution(request, probability):
        chance = max(probability, 0.2)
        return chance * HIT_VALUE_USD >= (1 - chance) * 0.5 * warm_up_price(request)
    got, best = replay.score(solution), best_warming(replay).outcome
    assert got.net_usd > 0.8 * best.net_usd > 0
    assert replay.score(ALWAYS).net_usd < 0.8 * best.net_usd     # the check tells them apart
