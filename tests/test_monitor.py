"""PerformanceMonitor: stats against numpy, windows and pruning, events, anomalies, the report."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cfopt.monitoring.anomaly import AnomalyConfig, ShiftDetector
from cfopt.clock import VirtualClock
from cfopt.errors import ConfigError
from cfopt.events import Event, EventBus
from cfopt.monitoring.monitor import MonitorConfig, PerformanceMonitor
from cfopt.monitoring.recommendations import Recommendation
from cfopt.monitoring.series import TimeSeries, compute_stats, percentile, trend_per_min

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


# -- the statistics, against numpy ---------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.lists(finite, min_size=1, max_size=200), st.floats(min_value=0, max_value=100))
def test_percentile_matches_numpy(values, q):
    assert percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-9, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e5), finite), min_size=2, max_size=200))
def test_trend_matches_polyfit(points):
    t = np.array(sorted(p[0] for p in points))
    v = np.array([p[1] for p in points])
    if np.ptp(t) < 1e-3:   # (almost) one instant: polyfit is ill-conditioned there
        return
    slope = np.polyfit(t, v, 1)[0] * 60
    assert trend_per_min(t, v) == pytest.approx(slope, rel=1e-6, abs=1e-6 * (1 + np.abs(v).max()))


def test_trend_of_a_single_instant_is_zero():
    assert trend_per_min([5.0, 5.0, 5.0], [1.0, 2.0, 3.0]) == 0.0
    assert trend_per_min([1.0], [3.0]) == 0.0


def test_trend_keeps_precision_at_late_timestamps():
    t = 1e6 + np.arange(100.0)          # eleven days of seconds in
    assert trend_per_min(t, 3.0 * t) == pytest.approx(180.0, rel=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_compute_stats_matches_numpy_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5000))
    t = np.sort(rng.uniform(0, 3600, n))
    v = rng.lognormal(0, 1, n)
    s = compute_stats(t, v)
    assert s.count == n
    assert (s.min, s.max) == (v.min(), v.max())
    assert s.avg == pytest.approx(v.mean())
    for got, q in ((s.median, 50), (s.p95, 95), (s.p99, 99)):
        assert got == pytest.approx(np.percentile(v, q), rel=1e-12)
    if n > 1:
        assert s.trend_per_min == pytest.approx(np.polyfit(t, v, 1)[0] * 60, rel=1e-6, abs=1e-9)


def test_empty_stats_say_so():
    s = compute_stats(np.empty(0), np.empty(0))
    assert s.count == 0 and math.isnan(s.p95)


def test_percentile_rejects_impossible_q():
    with pytest.raises(ConfigError, match="percentile q"):
        percentile([1.0], 101)


# -- windows and pruning -------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_windowed_stats_match_numpy_over_many_flushes(seed):
    """20k points cross the list-to-array flush, growth and compaction several times."""
    rng = np.random.default_rng(seed)
    n = 20_000
    t = np.cumsum(rng.exponential(0.2, n))
    v = rng.normal(1.0, 0.3, n)
    s = TimeSeries(retention_s=600.0, capacity=16)
    for ti, vi in zip(t.tolist(), v.tolist()):
        s.append(ti, vi)
    now = float(t[-1])
    for period in (None, 30.0, 300.0, 599.0):
        lo = now - (600.0 if period is None else period)
        mask = (t > lo) & (t <= now) if period is not None else (t >= lo) & (t <= now)
        got = s.stats(now, period)
        assert got.count == mask.sum()
        assert got.p99 == pytest.approx(np.percentile(v[mask], 99), rel=1e-12)
        assert got.avg == pytest.approx(v[mask].mean(), rel=1e-9)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 30), finite), min_size=1, max_size=300),
       st.one_of(st.none(), st.floats(0.5, 500)), st.floats(1, 200))
def test_any_window_matches_a_numpy_mask(steps, period, retention):
    """Random gaps (zero included), values, windows and retention: the same points as a mask."""
    t = np.cumsum([dt for dt, _ in steps])
    v = np.array([x for _, x in steps])
    s = TimeSeries(retention_s=retention, capacity=4)
    for ti, vi in zip(t.tolist(), v.tolist()):
        s.append(ti, vi)
    now = float(t[-1])
    kept = t >= now - retention
    mask = kept & ((t > now - period) if period is not None else True)
    got = s.stats(now, period)
    assert got.count == int(mask.sum())
    if got.count:
        assert got.p95 == pytest.approx(np.percentile(v[mask], 95), rel=1e-9, abs=1e-9)
        assert got.median == pytest.approx(np.median(v[mask]), rel=1e-9, abs=1e-9)
        assert (got.min, got.max) == (v[mask].min(), v[mask].max())


def test_pruning_bounds_memory():
    s = TimeSeries(retention_s=10.0, capacity=16)
    for i in range(100_000):
        s.append(i * 0.01, 1.0)
    s.prune(999.99)
    assert len(s) == 1001 and s.total == 100_000
    assert s._t.size < 8 * 8192   # compacted, not grown to 100k


def test_extend_and_append_agree():
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 100, 3000)); v = rng.normal(size=3000)
    a, b = TimeSeries(None), TimeSeries(None)
    a.extend(t, v)
    for x, y in zip(t, v):
        b.append(float(x), float(y))
    assert a.stats(100.0) == b.stats(100.0)


# -- the monitor -----------------------------------------------------------------------------
def _monitor(**cfg):
    clock, bus = VirtualClock(), EventBus()
    return clock, bus, PerformanceMonitor(clock=clock, bus=bus, config=MonitorConfig(**cfg))


def test_track_uses_the_injected_clock_and_get_stats_the_period():
    clock, _, m = _monitor()
    for i in range(120):
        clock.advance(1.0)
        m.track("latency", float(i))
    s = m.get_stats("latency", period=10)
    assert (s.count, s.min, s.max) == (10, 110.0, 119.0)
    t, _ = m.series("latency")
    assert t[0] == 1.0 and t[-1] == 120.0
    with pytest.raises(ConfigError):
        m.get_stats("latency", period=0)
    with pytest.raises(ConfigError):
        m.track("throughput", 1.0)
    assert m.get_stats("never-tracked").count == 0


def test_events_feed_hits_misses_errors_layers_cost_and_budget():
    clock, bus, m = _monitor(daily_budget_usd=10.0)
    for i in range(10):
        cache = "hit" if i < 3 else "miss"
        bus.publish(Event(i, "metric", "response_time", 0.01 if cache == "hit" else 1.0, {"cache": cache}))
        bus.publish(Event(i, "metric", "cache_lookup", 1.0 if i < 3 else 0.0, {"layer": "memory"}))
        bus.publish(Event(i, "metric", "cost_usd", 0.0 if cache == "hit" else 0.5))
    bus.publish(Event(10, "error", "Overloaded", 0.4))
    bus.publish(Event(10, "metric", "queue_depth", 7))
    clock.advance_to(10)
    assert m.get_stats("response_time.hit").count == 3
    assert m.get_stats("response_time.miss").avg == 1.0
    assert m.get_stats("hit_rate").avg == pytest.approx(0.3)
    assert m.get_stats("hit_rate.memory").avg == pytest.approx(0.3)
    assert m.get_stats("error_rate").avg == pytest.approx(1 / 11)
    assert m.spent_usd() == pytest.approx(3.5)
    assert m.get_stats("budget_burn").max == pytest.approx(0.35)
    assert m.get_stats("queue_depth").max == 7


def test_throughput_and_cost_per_minute_count_whole_minutes_with_quiet_ones_as_zero():
    clock, bus, m = _monitor()
    # 30 requests in minute one, none in minute two, 60 in minute three.
    for t in np.concatenate([np.linspace(1, 59, 30), np.linspace(121, 179, 60)]):
        bus.publish(Event(float(t), "metric", "response_time", 0.5))
        bus.publish(Event(float(t), "metric", "cost_usd", 0.01))
    clock.advance_to(180.0)
    thr = m.get_stats("throughput", period=180)
    assert thr.count == 3 and (thr.min, thr.max) == (0.0, 60.0) and thr.avg == 30.0
    assert m.get_stats("cost_per_min", period=180).max == pytest.approx(0.6)


def test_alerts_arrive_in_real_time():
    clock, bus, m = _monitor()
    seen = []
    m.on_notice(lambda e: seen.append((clock.now(), e.name)))
    clock.advance(42.0)
    bus.publish(Event(42.0, "alert", "daily budget 80%", 40.0))
    assert seen == [(42.0, "daily budget 80%")] and m.alerts[0].value == 40.0


# -- anomalies ------------------------------------------------------------------------------
def _feed(m, clock, values, dt=1.0):
    for v in values:
        clock.advance(dt)
        m.track("response_time", float(v))


def test_slowdown_fires_one_anomaly_then_rearms():
    clock, bus, m = _monitor()
    rng = np.random.default_rng(7)
    _feed(m, clock, rng.lognormal(0, 0.3, 600))
    assert m.check_anomaly() == []
    _feed(m, clock, 3 * rng.lognormal(0, 0.3, 60))      # a 3x slowdown for a minute
    fired = m.check_anomaly()
    assert len(fired) == 1 and fired[0].kind == "anomaly"
    assert fired[0].data["metric"] == "response_time" and 2.5 < fired[0].data["ratio"] < 3.5
    assert m.anomalies == fired                         # recorded through the bus
    assert m.check_anomaly() == []                      # reported once
    _feed(m, clock, rng.lognormal(0, 0.3, 900))         # long back to normal: re-armed
    m.check_anomaly()
    _feed(m, clock, 4 * rng.lognormal(0, 0.3, 60))
    assert len(m.check_anomaly()) == 1


@pytest.mark.parametrize("seed", range(20))
def test_stationary_noise_raises_no_anomaly(seed):
    clock, _, m = _monitor()
    rng = np.random.default_rng(seed)
    fired = []
    for _ in range(30):                                 # checked every minute for half an hour
        _feed(m, clock, rng.lognormal(0, 0.5, 60))
        fired += m.check_anomaly()
    assert fired == []


def test_too_few_points_are_not_judged():
    d = ShiftDetector(AnomalyConfig(min_points=8))
    assert d.check("x", np.arange(10.0), np.r_[np.ones(5), 9 * np.ones(5)], now=9.0) is None


# -- the report ------------------------------------------------------------------------------
def test_report_recommends_with_the_triggering_figures():
    clock, bus, m = _monitor(daily_budget_usd=5.0)
    for i in range(600):
        t = float(i)
        bus.publish(Event(t, "metric", "response_time", 2.5, {"cache": "miss"}))
        bus.publish(Event(t, "metric", "cost_usd", 0.0001 * i))   # spend rising every minute
        if i % 10 == 0:
            bus.publish(Event(t, "error", "ServerError"))
    clock.advance_to(600.0)
    report = m.generate_report(period=600)
    by_rule = {r.rule: r for r in report.recommendations}
    assert by_rule["slow_responses"].figure == pytest.approx(2.5)
    assert by_rule["low_hit_rate"].figure == 0.0
    # the window (0, 600] leaves out t=0: 599 answers and 59 errors
    assert by_rule["high_error_rate"].figure == pytest.approx(59 / 658)
    assert by_rule["rising_cost"].figure > 0
    assert "budget_pace" in by_rule                          # $3.6/min pace vs $5/day
    assert [r.severity for r in report.recommendations] == sorted(
        (r.severity for r in report.recommendations), key=["high", "medium", "low"].index)
    assert report.as_dict()["recommendations"][0]["figure"] == report.recommendations[0].figure


def test_healthy_traffic_gets_no_recommendation_and_rules_are_pluggable():
    clock, bus, m = _monitor(daily_budget_usd=1000.0)
    for i in range(600):
        bus.publish(Event(float(i), "metric", "response_time", 0.2, {"cache": "hit" if i % 4 else "miss"}))
        bus.publish(Event(float(i), "metric", "cost_usd", 0.001))
    clock.advance_to(600.0)
    assert m.generate_report().recommendations == []

    def many_misses(mon, period):
        s = mon.get_stats("response_time.miss", period)
        return Recommendation("many_misses", "low", "misses", s.count, 100, "x") if s.count > 100 else None
    m.rules.append(many_misses)
    assert [r.figure for r in m.generate_report().recommendations] == [150]


def test_points_out_of_time_order_are_refused():
    s = TimeSeries(None)
    s.append(2.0, 1.0)
    with pytest.raises(ConfigError, match="earlier"):
        s.append(1.0, 1.0)
    with pytest.raises(ConfigError, match="non-decreasing"):
        s.extend([3.0, 2.5], [1.0, 1.0])
    with pytest.raises(ConfigError, match="not a number"):
        s.append(float("nan"), 1.0)


def test_error_rate_shift_is_judged_as_proportions():
    clock, _, m = _monitor()
    rng = np.random.default_rng(1)
    for _ in range(600):                               # ten clean minutes
        clock.advance(1.0); m.track("error_rate", 0.0)
    for i in range(60):                                # one error in the next minute: not news
        clock.advance(1.0); m.track("error_rate", 1.0 if i == 30 else 0.0)
    assert m.check_anomaly(["error_rate"]) == []
    for _ in range(60):                                # then 30% fail
        clock.advance(1.0); m.track("error_rate", float(rng.random() < 0.3))
    (e,) = m.check_anomaly(["error_rate"])
    assert "from 0.2% to" in e.name and e.data["recent_mean"] > 0.15 and math.isfinite(e.data["z"])


def test_a_slow_tail_names_the_model_whose_misses_set_it():
    clock, bus = VirtualClock(), EventBus()
    m = PerformanceMonitor(clock=clock, bus=bus)

    def answer(value, cache, model=None):
        clock.advance(0.5)
        bus.publish(Event(clock.now(), "metric", "response_time", value,
                          {"cache": cache, **({"model": model} if model else {})}))
    for i in range(200):
        answer(0.8, "miss", "claude-haiku-5-5")      # many misses, all under 2 s
        answer(0.001, "hit")
    for i in range(30):
        answer(2.6, "miss", "claude-sonnet-5-5")     # fewer, over 2 s: they make the tail
        if i < 3:
            answer(3.5, "miss", "claude-opus-5-5")
    assert "response_time.miss.claude-haiku-5-5" in m.metrics()
    tail = next(r for r in m.generate_report().recommendations if r.rule == "slow_tail")
    assert tail.figure > 2.0 and "misses on claude-sonnet-5-5 weigh most" in tail.message
    assert "30 of its 30 over 2 s" in tail.message and "faster model" in tail.message
    # Counted over the target, not in all: many fast misses with a few slow ones weigh less
    # than fewer misses that are all slow.
    for i in range(20):
        answer(2.1, "miss", "claude-haiku-5-5")
    tail = next(r for r in m.generate_report().recommendations if r.rule == "slow_tail")
    assert "misses on claude-sonnet-5-5 weigh most" in tail.message
    # Without models on the events, the rule still fires, with the general advice.
    plain = PerformanceMonitor(clock=clock, bus=EventBus())
    for _ in range(40):
        clock.advance(0.5)
        plain.track("response_time", 2.5)
    tail = next(r for r in plain.generate_report().recommendations if r.rule == "slow_tail")
    assert "weigh most" not in tail.message and "handle" in tail.message
