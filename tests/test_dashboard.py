"""The provider and pipeline replays, the live dashboard, run comparison and the static HTML report."""
from __future__ import annotations

import base64
import re
from collections import Counter

import numpy as np
import pytest

from cfopt.cli import main
from cfopt.clock import VirtualClock
from cfopt.monitoring.dashboard import PIPELINE_NOTE, Dashboard
from cfopt.events import Event, EventBus
from cfopt.monitoring.htmlreport import html_report, write_replay_report
from cfopt.monitoring.monitor import MonitorConfig
from cfopt.pipeline.replay import Controls, PipelineReplay, ProviderReplay
from cfopt.monitoring.runs import monitored_run
from cfopt.workload import Request, load
from cfopt.course.kit import repo_path

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
    # Enough call slots that the workload's own bursts queue nothing (at 16, the burst near
    # minute 4 queues for real and the detector rightly sees it): only the slowdown changes.
    # The exercise profile: at list prices Unsplash refuses the 51st search of the hour (403),
    # an error-rate rise the detector rightly reports at minute 7.
    replay = ProviderReplay(_first_20_min(), profile="exercise")
    calm, _ = monitored_run(replay, Controls(concurrency=64), config=MonitorConfig(retention_s=None))
    assert calm.anomalies == []
    slow, _ = monitored_run(replay, Controls(concurrency=64, slowdown=3.0, slowdown_from_s=600.0),
                            config=MonitorConfig(retention_s=None))
    first = next(a for a in slow.anomalies if a.t > 600)
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
    assert dash.inputs["text_model"].value == "claude-haiku-5-5"     # inputs follow the run
    assert dash.recs_box.value.count("<li") == len(dash.monitor.generate_report().recommendations)


def _notes(dash):
    return [c.children[1].value for c in dash.widget.children[1].children[0].children
            if hasattr(c, "children") and len(c.children) == 2]


def test_unsupported_controls_are_disabled_with_the_reason(tiny):
    dash = Dashboard(ProviderReplay(tiny))
    for name in ("cache_capacity", "cache_ttl_s", "batching"):
        assert dash.inputs[name].disabled
    for name in ProviderReplay.supports & dash.inputs.keys():
        assert not dash.inputs[name].disabled
    assert sum(PIPELINE_NOTE in n for n in _notes(dash)) == 3
    dash.inputs["concurrency"].value = 3
    dash.inputs["cache_capacity"].value = 50       # disabled: must not leak into the run
    c = dash.controls_from_inputs()
    assert c.concurrency == 3 and c.cache_capacity == Controls().cache_capacity


@pytest.mark.parametrize("replay", [ProviderReplay, PipelineReplay])
def test_a_control_is_enabled_exactly_when_the_replay_supports_it(tiny, replay):
    dash = Dashboard(replay(tiny))
    enabled = {n for n, wd in dash.inputs.items() if not wd.disabled}
    assert enabled == replay.supports & dash.inputs.keys()
    assert len(_notes(dash)) == len(dash.inputs) - len(enabled)   # each disabled one says why


# -- the pipeline replay: each control it claims changes the run ------------------------------
def _pipeline_run(tiny, **controls):
    m, summary = monitored_run(PipelineReplay(tiny), Controls(**controls),
                               config=MonitorConfig(retention_s=None))
    return m, summary


def _rate(m, metric):
    return m.get_stats(metric).avg


@pytest.fixture(scope="module")
def pipeline_default(tiny):
    return _pipeline_run(tiny)


def test_pipeline_replay_feeds_the_monitor_hit_rates_per_layer_and_progress(tiny, pipeline_default):
    m, summary = pipeline_default
    assert summary.requests == len(tiny) and summary.errors == 0
    for layer in ("memory", "disk"):
        assert m.get_stats(f"hit_rate.{layer}").count > 0
    assert 0 < _rate(m, "hit_rate") < 1
    assert m.get_stats("response_time.hit").count + m.get_stats("response_time.miss").count == len(tiny)
    assert m.spent_usd() == pytest.approx(summary.cost_usd)
    _, again = _events(PipelineReplay(tiny), Controls())
    progress = [e.value for e in again if e.kind == "progress"]
    assert len(progress) == len(tiny) and progress[-1] == 1.0
    assert all(a.t <= b.t for a, b in zip(again, again[1:]))   # on the seam's clock


def test_pipeline_replay_is_deterministic(tiny):
    _, e1 = _events(PipelineReplay(tiny[:60], seed=2), Controls(cache_capacity=5))
    _, e2 = _events(PipelineReplay(tiny[:60], seed=2), Controls(cache_capacity=5))
    assert [(e.t, e.kind, e.name, e.value) for e in e1] == [(e.t, e.kind, e.name, e.value) for e in e2]


def test_smaller_memory_cache_hits_less_in_memory(tiny, pipeline_default):
    big, _ = pipeline_default
    small, _ = _pipeline_run(tiny, cache_capacity=5)
    assert _rate(small, "hit_rate.memory") < _rate(big, "hit_rate.memory")
    assert _rate(small, "hit_rate") <= _rate(big, "hit_rate")     # disk catches what memory lost


def test_tiny_memory_ttl_hits_less_in_memory(tiny, pipeline_default):
    default, _ = pipeline_default
    short, _ = _pipeline_run(tiny, cache_ttl_s=1.0)
    assert _rate(short, "hit_rate.memory") < _rate(default, "hit_rate.memory")
    assert _rate(short, "hit_rate.disk") > _rate(default, "hit_rate.disk")


def test_higher_quality_bar_costs_more_and_no_routing_most(tiny, pipeline_default):
    premium, _ = pipeline_default                            # quality_bar None: no routing
    low, _ = _pipeline_run(tiny, quality_bar=0.8)
    high, _ = _pipeline_run(tiny, quality_bar=0.99)
    # no model but the premium ones keeps 99% of their quality (cfopt.cost.quality), so a 0.99 bar
    # routes nothing: it costs what no routing costs
    assert low.spent_usd() < high.spent_usd() <= premium.spent_usd()


def test_batching_off_costs_more_and_ends_sooner(tiny, pipeline_default):
    on, s_on = pipeline_default
    off, s_off = _pipeline_run(tiny, batching=False)
    assert off.spent_usd() > on.spent_usd()                  # no half-price Message Batches
    assert s_off.duration_s < s_on.duration_s                # no batch job to wait for
    assert off.get_stats("deferred_completion_s").count < on.get_stats("deferred_completion_s").count


def test_injected_errors_reach_the_pipeline(tiny, pipeline_default):
    calm, _ = pipeline_default
    faulty, _ = _pipeline_run(tiny, error_rate=0.2)
    assert calm.get_stats("retries").count == 0 < faulty.get_stats("retries").count


def test_dashboard_with_the_pipeline_compares_runs_and_shows_layers(tiny):
    dash = Dashboard(PipelineReplay(tiny), redraw_every_s=1200)
    dash.run()
    dash.inputs["cache_capacity"].value = 5
    dash.inputs["quality_bar"].value = 0.9
    dash.button.click()
    first, second = dash.runs
    assert second.controls["cache_capacity"] == 5 and second.controls["quality_bar"] == 0.9
    assert second.cost_usd < first.cost_usd and "run 1" in dash.compare_box.value
    assert {"hit_rate.memory", "hit_rate.disk"} <= set(dash.monitor.metrics())


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
    assert "claude-haiku-5-5" in summary.calls_by_model


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
    assert main(["dashboard-report", "--html", str(out), "--workload", str(TINY), "--providers",
                 "--slowdown", "3", "--slowdown-from", "300", "--compare"]) == 0
    page = out.read_text()
    assert "Last two runs" in page and "baseline" in page and "this run" in page
    assert page.count("<img") == 1


def _targets(page):
    table = re.search(r"<table class='cfopt-targets'>(.*?)</table>", page).group(1)
    return [re.sub(r"<[^>]+>", "|", row).strip("|").split("||") for row in table.split("</tr>")[1:-1]]


def test_dashboard_report_shows_the_optimized_pipeline_by_default_with_the_exercise_targets(tmp_path, capsys):
    from cfopt.pipeline import Pipeline, PipelineConfig, Targets
    out = tmp_path / "r.html"
    assert main(["dashboard-report", "--html", str(out), "--workload", str(TINY)]) == 0
    page = out.read_text()
    assert "through the optimized pipeline" in page and "no cache in this replay" not in page
    run = Pipeline(PipelineConfig(), seed=0).run(load(TINY))      # what `cfopt report` replays
    hits = sum(o.from_cache for o in run.outcomes) / len(run.outcomes)
    rows = {row[0]: row[1:] for row in _targets(page)}
    t = Targets()
    assert rows[f"cache hit rate above {t.hit_rate:.1%}"][0] == f"{hits:.1%}"
    p95 = float(np.percentile([o.response_s for o in run.outcomes], 95))
    assert rows[f"response time (p95) under {t.response_s:g} s"] == [
        f"{p95:.2f} s", "met" if p95 < t.response_s else "not met"]
    assert "needs the baseline" in rows[f"API cost cut by at least {t.cost_reduction:.1%}"][0]
    assert "over the 1 s" not in page                             # the course's target is 2 s


def test_dashboard_report_both_pipelines_side_by_side_and_bad_flags(tmp_path, capsys):
    from cfopt.pipeline import Pipeline, PipelineConfig
    out = tmp_path / "r.html"
    assert main(["dashboard-report", "--html", str(out), "--workload", str(TINY), "--pipeline", "both"]) == 0
    page = out.read_text()
    assert "Last two runs" in page and "<th>baseline</th><th>optimized</th>" in page
    base = Pipeline(PipelineConfig.baseline(), seed=0).run(load(TINY)).cost_usd
    opt = Pipeline(PipelineConfig(), seed=0).run(load(TINY)).cost_usd
    cut_row = [r for r in _targets(page) if r[0].startswith("API cost cut")][0]
    assert cut_row[1].startswith(f"{1 - opt / base:.1%} (${base:,.2f} to ${opt:,.2f})")
    assert main(["dashboard-report", "--html", str(out), "--slowdown", "3"]) == 2
    assert "--slowdown needs --providers" in capsys.readouterr().err


def test_the_monitor_and_the_report_share_the_exercise_response_target():
    from cfopt.monitoring.recommendations import RESPONSE_TARGET_S
    from cfopt.pipeline import Targets
    assert RESPONSE_TARGET_S == Targets().response_s
