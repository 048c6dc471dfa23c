"""Part 5's decision: incident days, the alarm sorting, the search for the best rule.

One replayed day costs about two seconds of CPU; the days are cached per process, so the tests
share a few of them.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from cfopt.clock import VirtualClock
from cfopt.course.decisions import monitoring as dm
from cfopt.course.decisions.monitoring import (FALSE_ALARM_S, GRACE_S, GRID, MISSED_S, Incident,
                                               IncidentDay, alarms, best_rule, incident_day,
                                               peak_shift, rule_outcome, score_rule)
from cfopt.errors import ConfigError
from cfopt.monitoring import AnomalyConfig, MonitorConfig, PerformanceMonitor

# The notebook's answer: kept here to hold it to the best known on days it has not seen.
SOLUTION = AnomalyConfig(recent_s=30.0, baseline_s=600.0, z_threshold=3.0, min_change=1.25)


def synthetic_day(incidents, spikes=(), seed=0):
    """One point a second for an hour, log-normal around 1 s; incidents multiply, spikes add a minute."""
    rng = np.random.default_rng(seed)
    t = np.arange(1.0, 3601.0)
    v = rng.lognormal(0.0, 0.2, t.size)
    for inc in incidents:
        v[(t >= inc.start_s) & (t < inc.end_s)] *= inc.slowdown
    for at, factor in spikes:
        v[(t >= at) & (t < at + 60)] *= factor
    return IncidentDay(seed, t, v, tuple(incidents), 3600.0, int(t.size))


def test_a_day_is_seeded_and_its_incidents_follow_the_rules():
    day = incident_day(3)
    assert incident_day(3) is day                      # cached: one replay per process
    assert day.requests == 3000 and day.times.size == day.values.size > 2500
    assert np.all(np.diff(day.times) >= 0) and np.all(day.values > 0)
    starts = [i.start_s for i in day.incidents]
    assert len(day.incidents) == 3 and starts == sorted(starts)
    assert starts[0] >= 660.0 and day.incidents[-1].end_s <= day.duration_s - 120.0
    for a, b in zip(day.incidents, day.incidents[1:]):
        assert b.start_s - a.end_s >= 720.0 - 0.2     # 12 calm minutes between two (rounded to 0.1 s)
    for inc in day.incidents:
        assert dm.SLOWDOWNS[0] <= inc.slowdown <= dm.SLOWDOWNS[1]
        assert dm.LENGTHS_S[0] - 0.2 <= inc.end_s - inc.start_s <= dm.LENGTHS_S[1] + 0.2
    assert day.incidents != incident_day(4).incidents


def test_a_slowdown_shows_in_the_response_times():
    day = incident_day(3)
    ends, medians = day.minute_medians()
    inside = [m for e, m in zip(ends, medians) if any(i.start_s + 60 < e <= i.end_s for i in day.incidents)]
    calm = [m for e, m in zip(ends, medians)
            if not any(i.start_s < e <= i.end_s + GRACE_S for i in day.incidents)]
    assert np.median(inside) > 2.5 * np.median(calm)


def test_alarms_are_what_the_monitor_raises_checking_every_minute():
    day = incident_day(3)
    rule = AnomalyConfig()
    clock = VirtualClock()
    monitor = PerformanceMonitor(clock=clock, config=MonitorConfig(anomaly=rule, watch=("response_time",),
                                                                    retention_s=None))
    i = 0
    for now in day.check_times():
        while i < day.times.size and day.times[i] <= now:
            monitor.track("response_time", float(day.values[i]), t=float(day.times[i]))
            i += 1
        clock.advance(now - clock.now())
        monitor.check_anomaly()
    assert [a.t for a in alarms(rule, day)] == [e.t for e in monitor.anomalies]
    assert [round(a.ratio, 9) for a in alarms(rule, day)] == [round(e.data["ratio"], 9) for e in monitor.anomalies]


def test_alarms_are_sorted_into_catches_late_noise_and_false_alarms():
    inc = Incident(1200.0, 1500.0, 5.0)
    day = synthetic_day([inc], spikes=[(600.0, 4.0)])
    s = score_rule(AnomalyConfig(recent_s=60.0, baseline_s=300.0, z_threshold=4.0, min_change=1.0), day)
    assert s.caught == 1 and s.missed == 0
    assert 0 < s.delays_s[0] <= 120.0
    assert [round(a.t) for a in s.false_alarms] == [660]           # the spike, with no incident on
    assert not s.ok
    assert s.lost_min == pytest.approx((s.delays_s[0] + FALSE_ALARM_S) / 60)
    assert "caught 1 of 1 incidents" in s.summary() and "1 false alarm" in s.summary()

    blind = score_rule(AnomalyConfig(min_change=10.0), day)         # asks for x11: sees nothing
    assert blind.delays_s == (None,) and not blind.alarms
    assert blind.lost_min == pytest.approx(MISSED_S / 60)
    peak = peak_shift(AnomalyConfig(min_change=10.0), day, inc)
    assert peak is not None and 3.0 < peak.ratio < 6.0 and inc.start_s < peak.t <= inc.end_s


def test_a_fall_after_an_incident_is_about_the_incident():
    inc = Incident(1200.0, 1500.0, 5.0)
    day = synthetic_day([inc])
    # A short baseline gets used to the slowdown (the rule re-arms), then sees the recovery as a fall.
    rule = AnomalyConfig(recent_s=60.0, baseline_s=120.0, z_threshold=4.0, min_change=0.5)
    s = score_rule(rule, day)
    falls = [a for a in s.alarms if a.ratio < 1]
    assert falls and all(inc.end_s < a.t <= inc.end_s + GRACE_S for a in falls)
    assert s.ok


def test_the_search_replays_the_detector_exactly():
    day = incident_day(3)
    rng = random.Random(0)
    for _ in range(40):
        rule = AnomalyConfig(**{k: rng.choice(v) for k, v in GRID.items()})
        fast = dm._sort(rule, day, dm._replay_state(dm._shifts(day, rule), rule.z_threshold, rule.min_change))
        assert fast == score_rule(rule, day), rule


def test_the_best_rule_is_the_grid_minimum():
    days = [incident_day(s) for s in dm.VISIBLE_SEEDS]
    best = best_rule(days)
    assert best.tried == np.prod([len(v) for v in GRID.values()])
    assert best.lost_min == pytest.approx(rule_outcome(best.rule, days))
    rng = random.Random(1)
    for _ in range(60):
        rule = AnomalyConfig(**{k: rng.choice(v) for k, v in GRID.items()})
        assert rule_outcome(rule, days) >= best.lost_min - 1e-9
    assert all(s.ok for s in best.scores)
    assert rule_outcome(AnomalyConfig(), days) > 3 * best.lost_min   # the default pages and misses
    small = best_rule(days[0], grid={"recent_s": (60.0,), "min_change": (0.5, 1.0)})
    assert small.tried == 2 and small.rule.recent_s == 60.0


def test_the_notebooks_answer_is_near_the_best_known_on_days_it_has_not_seen():
    # Seeds the notebook does not show. The best rule for these days is tuned to them, a floor
    # for any fixed rule: one false alarm more costs a fixed rule 10 minutes on such a small
    # sample. (Over 44 other days the answer lost 4.2 min a day, the least of the grid's rules
    # as fixed rules; the default rule lost 11.5 a day over 40 of them.)
    days = [incident_day(s) for s in (101, 202, 303, 404)]
    best = best_rule(days)
    mine = rule_outcome(SOLUTION, days)
    assert mine <= 2.0 * best.lost_min          # the probe's zero point: full credit stays reachable
    assert mine < 0.5 * rule_outcome(AnomalyConfig(), days)
    visible = [incident_day(s) for s in dm.VISIBLE_SEEDS]
    assert all(score_rule(SOLUTION, d).ok for d in visible)
    assert rule_outcome(SOLUTION, visible) <= 1.5 * best_rule(visible).lost_min   # the check's bar


def test_bad_arguments_are_refused():
    with pytest.raises(ConfigError):
        incident_day("3")
    with pytest.raises(ConfigError):
        score_rule({"recent_s": 30.0}, incident_day(3))
    with pytest.raises(ConfigError):
        best_rule([])
    with pytest.raises(ConfigError):
        incident_day(5, incidents=9)
