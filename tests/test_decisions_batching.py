"""Part 4's decision (cfopt.course.decisions.batching): deadline days, plan replays, the search.

Notebook 04 grades a learner's plan (which kinds of work go through the Message Batches API) by
its cost on deadline days and gives 0 to a plan that misses a deadline. These tests hold what the
grading relies on: the days are seeded and clear (a sound rule never passes or fails by luck), the
live path meets every deadline, and the best known plan is what a rule on the deadline finds.
"""
from __future__ import annotations

import pytest

from cfopt.batching import BatchConfig, BatchProcessor, Task
from cfopt.clock import VirtualClock
from cfopt.course.decisions.batching import (HOURS, MINUTES, SECONDS, WorkKind, _miss_chance, _SAFE,
                                             _SHORT, _UNSAFE, batch_turnarounds, best_plan,
                                             deadline_day, human_duration, plan_cost, replay_plan)
from cfopt.errors import ConfigError
from cfopt.pricing import load_catalog
from cfopt.providers import Providers
from cfopt.workload import TEXT_TYPES

SEEDS = (2, 11, 16, 37)    # the notebook's day (2), its check's second day (11), and two more


@pytest.fixture(scope="module")
def days():
    return {seed: deadline_day(seed) for seed in SEEDS}


def test_a_day_is_seeded_text_only_and_its_deadlines_come_from_the_menus(days):
    day = days[2]
    again = deadline_day(2)
    assert again.requests == day.requests and again.deadlines == day.deadlines
    assert deadline_day(3).deadlines != day.deadlines
    for d in days.values():
        assert all(r.type in TEXT_TYPES for r in d.requests)
        assert sum(k.jobs for k in d.kinds) == len(d.requests)
        for kind in d.kinds:
            menus = SECONDS + MINUTES + HOURS if kind.name in _SHORT else MINUTES + HOURS
            assert kind.deadline_s in menus, kind
        assert [k.deadline_s for k in d.kinds] == sorted(k.deadline_s for k in d.kinds)


def test_every_deadline_is_clear_for_the_batch_path(days):
    """A deadline the batch path would pass or fail by luck is never drawn."""
    catalog = load_catalog()
    for day in days.values():
        for kind in day.kinds:
            chance = _miss_chance(kind.deadline_s, kind.jobs * day.replays, catalog)
            assert chance < _SAFE or chance > _UNSAFE, (day.seed, kind, chance)


def test_the_miss_chance_follows_the_catalogs_turnaround_model():
    figures = load_catalog().provider_figures["anthropic"]
    assert _miss_chance(figures["batch_median_s"], 1) == pytest.approx(0.5)
    assert _miss_chance(figures["batch_max_s"], 10_000) == 0.0
    assert _miss_chance(3600, 40) > _miss_chance(3600, 1) > _miss_chance(6 * 3600, 1)


def test_everything_live_meets_every_deadline(days):
    for day in days.values():
        outcome = replay_plan(day, set())
        assert outcome.met and outcome.batched == () and outcome.replays == day.replays, (day.seed, outcome)
        assert all(outcome.latest_s[k.name] <= k.deadline_s for k in day.kinds)


def test_the_best_plan_batches_exactly_what_can_wait_hours(days):
    """The search's answer equals a rule on the deadline (the notebook's solution is such a rule),
    so a learner's sound rule reaches the best known cost on every day."""
    for day in days.values():
        best = best_plan(day)
        rule = {k.name for k in day.kinds if k.deadline_s >= HOURS[0]}
        assert best.met and set(best.batched) == rule, (day.seed, best.batched, rule)
        assert best.cost_usd < replay_plan(day, set()).cost_usd
        assert plan_cost(day, rule) == pytest.approx(best.cost_usd)


def test_the_best_plan_does_not_count_on_luck():
    """On this day the 20-minute newsletter intros (4 jobs) all came back in time on both replays
    through the batch path, though the turnaround model gives them a 97% chance of a late answer:
    a plan that batches them meets every deadline by luck, and the best known plan leaves them live."""
    day = deadline_day(881268)
    lucky = next(k for k in day.kinds if k.name == "newsletter_intro")
    assert lucky.deadline_s == 1200.0 and _miss_chance(lucky.deadline_s, lucky.jobs * day.replays) > _UNSAFE
    best = best_plan(day)
    gamble = replay_plan(day, set(best.batched) | {lucky.name})
    assert gamble.met and gamble.cost_usd < best.cost_usd
    assert lucky.name not in best.batched and best.met


def test_a_kind_batched_against_a_deadline_of_minutes_comes_late(days):
    day = days[2]
    hour = [k for k in day.kinds if k.deadline_s == 3600.0]
    assert hour, "the notebook's day has a kind due within the hour"
    outcome = replay_plan(day, {hour[0].name})
    assert not outcome.met and set(outcome.missed_by_kind) == {hour[0].name}
    assert outcome.latest_s[hour[0].name] > 3600.0
    assert plan_cost(day, {hour[0].name}) is None


def test_batched_work_costs_half(days):
    day = days[2]
    live, best = replay_plan(day, set()), best_plan(day)
    # per replay the same answers are billed; a batched kind's share of the bill halves
    assert best.cost_usd < live.cost_usd
    everything = replay_plan(day, {k.name for k in day.kinds})
    assert everything.cost_usd == pytest.approx(live.cost_usd / 2, rel=1e-6)


def test_a_plan_must_name_kinds_of_the_day(days):
    day = days[2]
    with pytest.raises(ConfigError, match="not a kind of work"):
        replay_plan(day, {"weekly_digest"})
    with pytest.raises(ConfigError, match="set of kind names"):
        replay_plan(day, "blog_post")
    with pytest.raises(ConfigError, match="by its name"):
        replay_plan(day, [day.kinds[0]])
    assert isinstance(day.kinds[0], WorkKind)


def test_turnarounds_follow_the_catalog():
    figures = load_catalog().provider_figures["anthropic"]
    sample = sorted(batch_turnarounds(1000, seed=1))
    assert len(sample) == 1000 and sample[-1] <= figures["batch_max_s"]
    assert sample[500] == pytest.approx(figures["batch_median_s"], rel=0.15)
    assert batch_turnarounds(5, seed=1) == batch_turnarounds(5, seed=1)


def test_human_duration():
    assert [human_duration(s) for s in (30, 60, 2700, 3600, 6 * 3600)] == ["30 s", "1 min", "45 min", "1 h", "6 h"]


def test_message_batches_jobs_do_not_wait_for_each_other():
    """process_all sends each batch as it leaves the queue: four batches of low-priority text all
    leave at once, though each Message Batches job takes many minutes to come back."""
    clock = VirtualClock()
    bp = BatchProcessor(Providers(seed=4, clock=clock), config=BatchConfig(group_text=False))
    for i in range(100):
        bp.add_task(Task(f"low-{i}", "text", f"Write a tagline for shop {i}.", "low"))
    results = clock.run(bp.process_all())
    assert bp.stats.batches == 4 and all(r.path == "batch_api" for r in results)
    assert max(r.started_at for r in results) < 1.0
    assert min(r.finished_at for r in results) > 60.0

