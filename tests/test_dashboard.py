"""The provider replay, the live dashboard, run comparison and the static HTML report."""
from __future__ import annotations

import base64
import re
from collections import Counter

import numpy as np
import pytest

from cfopt.cli import main
from cfopt.clock import VirtualClock
from cfopt.dashboard import PIPELINE_NOTE, Dashboard
from cfopt.events import Event, EventBus
from cfopt.htmlreport import html_report, write_replay_report
from cfopt.monitor import MonitorConfig
from cfopt.replay import Controls, ProviderReplay
from cfopt.runs import monitored_run
from cfopt.workload import Request, load
from cfopt.kit import repo_path

TINY = repo_path("datasets/tiny.jsonl")


@pytest.fixture(scope="module")
def tiny():
    return load(TINY)


def _events(replay, controls):
    clock, bus = VirtualClock(), EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    summary = replay(controls, clock=clock, bus=bus)
    return summary, seen


# -- the replay ---------------------------------------------------------------------------
def test_replay_is_deterministic_and_accounts_for_every_request(tiny):
    replay = ProviderReplay(tiny, seed=3)
    s1, e1 = _events(replay, Controls(error_rate=0.1))
    s2, e2 = _events(replay, Controls(error_rate=0.1))
    assert [(e.t, e.kind, e.name, e.value) for e in e1] == [(e.t, e.kind, e.name, e.value) for e in e2]
    kinds = Counter((e.kind, e.name if e.kind == "metric" else "") for e in e1)
    answered, failed = kinds[("metric", "response_time")], sum(1 for e in e1 if e.kind == "error")
    assert answered + failed == len(tiny) == s1.requests                 # none lost, none twice
    assert failed == s1.errors and 5 <= failed <= 40                      # ~10% of 200 injected
    assert sum(e.value for e in e1 if e.name == "cost_usd") == pytest.approx(s1.cost_usd)
    assert [e.value for e in e1 if e.kind == "progress"][-1] == 1.0
    assert all(a.t <= b.t for a, b in zip(e1, e1[1:]))                   # clock order


def test_concurrency_limit_makes_a_queue_and_its_wait_counts(tiny):
    _, wide = _events(ProviderReplay(tiny), Controls(concurrency=64))
    _, narrow = _events(ProviderReplay(tiny), Controls(concurrency=1))
    depth = lambda es: max(e.value for e in es if e.name == "queue_depth")
    p95 = lambda es: np.percentile([e.value for e in es if e.name == "response_time"], 95)
    assert depth(wide) == 0 and depth(narrow) > 10
    assert p95(narrow) > 3 * p95(wide)


def test_slowdown_applies_only_inside_its_window(tiny):
    base = ProviderReplay(tiny)
    _, normal = _events(base, Controls(concurrency=64))
    _, slowed = _events(base, Controls(concurrency=64, slowdown=4.0, slowdown_from_s=300.0))
    ids_after = {r.id for r in tiny if r.t >= 300}

    def median(es, after):
        return np.median([e.value for e in es if e.name == "response_time"
                          and (e.data["id"] in ids_after) == after])
    assert median(slowed, False) == pytest.approx(median(normal, False))
    assert 2.5 < median(slowed, True) / median(normal, True) < 5.5


def test_controls_refuse_impossible_values():
    with pytest.raises(ValueError):
        Controls(concurrency=0)
    with pytest.raises(ValueError):
        Controls(error_rate=1.5)


# -- monitored runs, anomalies -------------------------------------------------------------
def _first_20_min():
    return [r for r in load(repo_path("datasets/contentflow_1h.jsonl")) if r.t < 1200]


def test_a_slowdown_fires_an_anomaly_within_two_minutes_and_a_calm_run_none():
    replay = ProviderReplay(_first_20_min())
    calm, _ = monitored_run(replay, Controls(), config=MonitorConfig(retention_s=None))
    assert calm.anomalies == []
    slow, _ = monitored_run(replay, Controls(slowdown=3.0, slowdown_from_s=600.0),
                            config=MonitorConfig(retention_s=None))
    first = slow.anomalies[0]
    assert first.data["metric"] == "response_time" and 600 < first.t <= 720
    assert first.data["ratio"] > 2.0


# -- the dashboard -------------------------------------------------------------------------
def test_dashboard_updates_live_and_compares_runs(tiny):
    dash = Dashboard(ProviderReplay(tiny), redraw_every_s=240)
    progress_seen = []
    dash.progress.observe(lambda ch: progress_seen.append(ch["new"]), "value")
    first = dash.run()
    assert dash.draws >= 3                           # redraws at 4 and 8 minutes, one at the end
    assert 0 < min(v for v in progress_seen if v) < 1000 and dash.progress.value == 1000
    assert dash.chart.value[:4] == b"\x89PNG"
    assert "change a control" in dash.compare_box.value
    second = dash.run(Controls(text_model="haiku", image_model="flux_schnell"))
    assert second.cost_usd < first.cost_usd
    table = dash.compare_box.value
    assert "run 1" in table and "run 2" in table and re.search(r"cost \(USD\).*?-\d+%", table)
    assert dash.inputs["text_model"].value == "claude-haiku-4-5"     # inputs follow the run
    assert dash.recs_box.value.count("<li") == len(dash.monitor.generate_report().recommendations)


def test_unsupported_controls_are_disabled_with_the_reason(tiny):
    dash = Dashboard(ProviderReplay(tiny))
    for name in ("cache_capacity", "cache_ttl_s", "batch_size"):
        assert dash.inputs[name].disabled
    for name in ProviderReplay.supports & dash.inputs.keys():
        assert not dash.inputs[name].disabled
    notes = [c.children[1].value for c in dash.widget.children[1].children[0].children
             if hasattr(c, "children") and len(c.children) == 2]
    assert sum(PIPELINE_NOTE in n for n in notes) == 3
    dash.inputs["concurrency"].value = 3
    dash.inputs["cache_capacity"].value = 5000     # disabled: must not leak into the run
    c = dash.controls_from_inputs()
    assert c.concurrency == 3 and c.cache_capacity is None


def test_run_button_runs_the_replay_with_the_inputs(tiny):
    dash = Dashboard(ProviderReplay(tiny[:40]), redraw_every_s=600)
    dash.inputs["concurrency"].value = 2
    dash.button.click()
    assert len(dash.runs) == 1 and dash.runs[0].controls["concurrency"] == 2


def test_budget_alerts_show_while_the_replay_runs(tiny):
    inner = ProviderReplay(tiny)
    seen = []   # (clock time, shown in the alerts box at that moment) for every alert

    def spied(controls, *, clock, bus):
        bus.subscribe(lambda e: e.kind == "alert" and seen.append((e.t, e.name in dash.alerts_box.value)))
        return inner(controls, clock=clock, bus=bus)
    spied.supports = inner.supports
    dash = Dashboard(spied, redraw_every_s=600)
    run = dash.run(Controls(daily_budget_usd=2.0))
    assert {n.name for n in dash.monitor.alerts} == {"daily budget 50%", "daily budget 80%", "daily budget 100%"}
    assert [shown for _, shown in seen] == [True, True, True]
    assert max(t for t, _ in seen) < run.duration_s                   # during the run, not after
    assert run.errors > 0 and dash.monitor.spent_usd() <= 2.0 + 1e-9  # refused past the cap


def test_routing_by_quality_bar_lowers_the_cost(tiny):
    replay = ProviderReplay(tiny)
    premium, _ = monitored_run(replay, Controls(text_model="opus"))
    routed, summary = monitored_run(replay, Controls(text_model="opus", quality_bar=0.9))
    assert routed.spent_usd() < premium.spent_usd()
    assert "claude-haiku-4-5" in summary.calls_by_model


def test_a_broken_replay_listener_is_not_hidden(tiny):
    def bad(controls, *, clock, bus):
        bus.publish(Event(0.0, "progress", "replay", 0.5, {}))
        return ProviderReplay(tiny[:5])(controls, clock=clock, bus=bus)
    bad.supports = frozenset()
    dash = Dashboard(bad)
    dash._draw = lambda m: 1 / 0      # a charting bug surfaces as an error, not a silent freeze
    with pytest.raises(ZeroDivisionError):
        dash.run()


# -- the static report -------------------------------------------------------------------------
def test_html_report_embeds_the_charts_and_the_figures(tmp_path, tiny):
    m, _ = monitored_run(ProviderReplay(tiny), Controls(), config=MonitorConfig(daily_budget_usd=50.0))
    page = html_report(m, title="t")
    png = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)'", page).group(1))
    assert png[:4] == b"\x89PNG" and len(png) > 10_000
    p95 = m.get_stats("response_time").p95
    assert f"{p95:,.4g}" in page                     # the stats table shows the measured figure
    for r in m.generate_report().recommendations:
        assert r.message.split(":")[0] in page


def test_replay_report_and_cli_write_a_comparison(tmp_path):
    out = tmp_path / "r.html"
    assert main(["dashboard-report", "--html", str(out), "--workload", str(TINY),
                 "--slowdown", "3", "--slowdown-from", "300", "--compare"]) == 0
    page = out.read_text()
    assert "Last two runs" in page and "baseline" in page and "this run" in page
    assert page.count("<img") == 1
