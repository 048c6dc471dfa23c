"""A static HTML report of a monitored run: the dashboard's charts (embedded PNG) and tables.

For people without Jupyter: one self-contained file, no scripts, no network.

>>> from cfopt.clock import VirtualClock
>>> from cfopt.monitoring.monitor import PerformanceMonitor
>>> clock = VirtualClock(); m = PerformanceMonitor(clock=clock)
>>> for _ in range(120):
...     clock.advance(1.0); m.track("response_time", 2.5)
>>> page = html_report(m, title="demo")
>>> "data:image/png;base64," in page and "over 2 s" in page
True
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Callable, Sequence

from .charts import dashboard_figure, figure_png
from ..events import Event
from .monitor import PerformanceMonitor, Report
from .recommendations import Recommendation
from ..errors import ConfigError
from ..pipeline.replay import Controls, PipelineReplay, ProviderReplay, Replay
from .runs import RunSummary, compare, monitored_run, summarize
from ..workload import load
from ..pricing import DEFAULT_PROFILE

__all__ = ["html_report", "write_html_report", "write_replay_report", "stats_table",
           "recommendations_list", "events_list", "comparison_table", "targets_table", "PIPELINES"]

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.high{color:#b00020}.medium{color:#a05a00}.low{color:#555}img{max-width:100%}
.cfopt-muted{color:#777}"""


def _fmt(x: float | int | None) -> str:
    if x is None or isinstance(x, float) and math.isnan(x):
        return "–"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:,.4g}"


def stats_table(report: Report) -> str:
    """The report's stats, one row per metric with data."""
    cols = ("count", "min", "avg", "median", "p95", "p99", "max", "trend_per_min")
    rows = [f"<tr><th>metric</th>{''.join(f'<th>{c}</th>' for c in cols)}</tr>"]
    for name, s in report.stats.items():
        if s.count:
            cells = "".join(f"<td>{_fmt(getattr(s, c))}</td>" for c in cols)
            rows.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
    return f"<table class='cfopt-stats'>{''.join(rows)}</table>"


def recommendations_list(recs: Sequence[Recommendation]) -> str:
    """Recommendations, most severe first, each with its figure and threshold."""
    if not recs:
        return "<p class='cfopt-muted'>No recommendation: every rule is satisfied.</p>"
    items = "".join(
        f"<li class='{html.escape(r.severity)}'><b>{html.escape(r.severity)}</b> "
        f"{html.escape(r.message)} <span class='cfopt-muted'>({html.escape(r.metric)} = "
        f"{_fmt(r.figure)}, threshold {_fmt(r.threshold)})</span></li>" for r in recs)
    return f"<ul class='cfopt-recs'>{items}</ul>"


def events_list(events: Sequence[Event], empty: str, limit: int = 50) -> str:
    """Alerts or anomalies with their clock time, newest last."""
    if not events:
        return f"<p class='cfopt-muted'>{html.escape(empty)}</p>"
    shown = list(events)[-limit:]
    items = "".join(f"<li><code>{int(e.t // 60):02d}:{e.t % 60:04.1f}</code> "
                    f"[{html.escape(e.kind)}] {html.escape(e.name)}</li>" for e in shown)
    more = f"<p class='cfopt-muted'>{len(events) - limit} earlier not shown</p>" if len(events) > limit else ""
    return f"{more}<ul class='cfopt-events'>{items}</ul>"


def comparison_table(before: RunSummary, after: RunSummary) -> str:
    """Two runs side by side with the relative change of each figure."""
    head = (f"<tr><th>figure</th><th>{html.escape(before.label)}</th>"
            f"<th>{html.escape(after.label)}</th><th>change</th></tr>")
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td>{_fmt(a)}</td><td>{_fmt(b)}</td>"
                   f"<td>{html.escape(change)}</td></tr>" for label, a, b, change in compare(before, after))
    return f"<table class='cfopt-compare'>{head}{rows}</table>"


def html_report(m: PerformanceMonitor, *, title: str = "ContentFlow monitoring report",
                runs: Sequence[RunSummary] = (), daily_budget_usd: float | None = None,
                period: float | None = None, targets: str = "") -> str:
    """The whole report as one HTML page (``targets``: a ``targets_table`` to show first)."""
    report = m.generate_report(period)
    budget = daily_budget_usd if daily_budget_usd is not None else m.daily_budget_usd
    png = figure_png(dashboard_figure(m, daily_budget_usd=budget, title=title))
    img = base64.b64encode(png).decode("ascii")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>Clock time {report.generated_at:,.0f} s; spend ${report.spent_usd:,.4f}"
             + (f" against a ${budget:,.2f} daily budget" if budget else "") + ".</p>",
             *(["<h2>The exercise's targets</h2>", targets] if targets else []),
             f"<img alt='dashboard charts' src='data:image/png;base64,{img}'>",
             "<h2>Recommendations</h2>", recommendations_list(report.recommendations),
             "<h2>Alerts</h2>", events_list(report.alerts, "No alert."),
             "<h2>Anomalies</h2>", events_list(report.anomalies, "No anomaly."),
             "<h2>Metrics</h2>", stats_table(report)]
    if len(runs) >= 2:
        parts += ["<h2>Last two runs</h2>", comparison_table(runs[-2], runs[-1])]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html_report(path: str | Path, m: PerformanceMonitor, **kw) -> Path:
    """Write ``html_report(m, **kw)`` to ``path``; returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(html_report(m, **kw), encoding="utf-8")
    return p


PIPELINES = ("optimized", "baseline", "both")


def targets_table(run: RunSummary, m: PerformanceMonitor, baseline: RunSummary | None = None) -> str:
    """The exercise's targets against ``run``: p95 response time, cache hit rate, cost cut."""
    from ..pipeline.report import Targets, pct   # the one definition of the targets
    t = Targets()
    hits = m.get_stats("hit_rate")
    rows = [("response time (p95) under "f"{t.response_s:g} s", f"{run.p95_s:.2f} s",
             run.p95_s < t.response_s),
            (f"cache hit rate above {pct(t.hit_rate)}",
             pct(hits.avg) if hits.count else "no cache in this replay",
             hits.count > 0 and hits.avg > t.hit_rate)]
    if baseline is not None and baseline.cost_usd > 0:
        cut = 1 - run.cost_usd / baseline.cost_usd
        rows.append((f"API cost cut by at least {pct(t.cost_reduction)}",
                     f"{pct(cut)} (${baseline.cost_usd:,.2f} to ${run.cost_usd:,.2f})",
                     cut >= t.cost_reduction))
    else:
        rows.append((f"API cost cut by at least {pct(t.cost_reduction)}",
                     "needs the baseline: --pipeline both", None))
    body = "".join(f"<tr><td>{html.escape(name)}</td><td>{html.escape(figure)}</td>"
                   f"<td>{'–' if ok is None else 'met' if ok else 'not met'}</td></tr>"
                   for name, figure, ok in rows)
    return (f"<table class='cfopt-targets'><tr><th>target</th><th>{html.escape(run.label)}</th>"
            f"<th>verdict</th></tr>{body}</table>")


def write_replay_report(path: str | Path, workload: str | Path, *, pipeline: str = "optimized",
                        seed: int = 0, profile: str = DEFAULT_PROFILE, controls: Controls | None = None,
                        providers: bool = False, baseline: Controls | None = None,
                        daily_budget_usd: float | None = None,
                        on_event: Callable[[Event, PerformanceMonitor], None] | None = None,
                        progress: Callable[[str, int, int], None] | None = None) -> Path:
    """Replay ``workload`` with a monitor listening and write the HTML report with the targets.

    ``pipeline``: "optimized" (default: every optimization on, ``PipelineReplay``), "baseline",
    or "both" (the baseline first, then the optimized, compared side by side). ``providers``:
    straight to the simulated providers instead (``ProviderReplay``: a text model, a slowdown
    window), with the ``baseline`` controls run first for comparison when given.
    ``on_event(event, monitor)`` sees every event (``cfopt.monitoring.prometheus`` exports them);
    ``progress(label, done, total)`` follows each replay (``cfopt.progress.ReplayProgress``).
    """
    from .monitor import MonitorConfig
    from ..pipeline.types import PipelineConfig
    from ..pricing import load_catalog
    if pipeline not in PIPELINES:
        raise ConfigError(f"pipeline must be one of {', '.join(PIPELINES)}, got {pipeline!r}")
    requests = load(workload)
    budget = daily_budget_usd if daily_budget_usd is not None else load_catalog(profile).budgets.daily_usd
    config = MonitorConfig(retention_s=None, daily_budget_usd=budget)
    c = controls or Controls()
    plan: list[tuple[str, Replay, Controls]]
    if providers:
        replay = ProviderReplay(requests, seed=seed, profile=profile)
        plan = ([("baseline", replay, baseline)] if baseline is not None else []) + [("this run", replay, c)]
    else:
        def through(cfg: PipelineConfig) -> PipelineReplay:
            # exactly as configured: the controls may only inject errors
            return PipelineReplay(requests, seed=seed, profile=profile, config=cfg,
                                  supports=frozenset({"error_rate"}))
        plan = [(name, through(PipelineConfig() if name == "optimized" else PipelineConfig.baseline()), c)
                for name in (("baseline", "optimized") if pipeline == "both" else (pipeline,))]
    runs: list[RunSummary] = []
    m = None
    for label, replay_, controls_ in plan:
        def follow(e: Event, monitor: PerformanceMonitor, label: str = label) -> None:
            if progress is not None and e.kind == "progress":
                progress(label, int(e.data.get("done", 0)), int(e.data.get("total", 0)))
            if on_event is not None:
                on_event(e, monitor)
        m, s = monitored_run(replay_, controls_, config=config, on_event=follow)
        runs.append(summarize(label, m, requests=s.requests, errors=s.errors,
                              duration_s=s.duration_s))
    assert m is not None
    what = "the simulated providers" if providers else f"the {runs[-1].label} pipeline"
    first = runs[0] if len(runs) > 1 else None
    return write_html_report(path, m, title=f"ContentFlow replay of {Path(workload).name} through {what}",
                             runs=runs, targets=targets_table(runs[-1], m, first))
