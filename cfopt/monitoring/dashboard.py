"""A live ipywidgets dashboard: watch a replay while it runs, change controls, compare runs.

``Dashboard(replay)`` shows controls, a progress bar, the monitor's charts (redrawn every
``redraw_every_s`` simulated seconds while the replay runs), alerts and anomalies as they
arrive, the recommendations of the finished run and its comparison with the previous one.
``dashboard.run()`` drives one replay to the end, so a notebook needs no clicking, and shows a
progress bar in the cell that called it (``cfopt.progress``: the dashboard itself may be far up
the page); the Run button does the same with the controls' values. A control is enabled exactly
when the replay ``supports`` it; the others are shown disabled with the reason, never faked
(``ProviderReplay`` has no cache or batching, ``PipelineReplay`` no concurrency limit or slowdown
window).

>>> from cfopt.pipeline.replay import Controls, ReplaySummary
>>> from cfopt.events import Event
>>> def replay(controls, *, clock, bus):          # any callable with this shape plugs in
...     for i in range(120):
...         clock.advance(1.0)
...         bus.publish(Event(clock.now(), "metric", "response_time", 0.4))
...     return ReplaySummary(requests=120, errors=0, cost_usd=0.0, duration_s=120.0)
>>> replay.supports = frozenset({"text_model"})
>>> dash = Dashboard(replay, redraw_every_s=60)
>>> run = dash.run()
>>> run.requests, round(run.p95_s, 2), dash.draws   # two live redraws and the final one
(120, 0.4, 3)
"""
from __future__ import annotations

import html
from dataclasses import asdict, fields, replace
from typing import Any

import ipywidgets as w

from .charts import dashboard_figure, figure_png
from ..events import Event
from .htmlreport import comparison_table, events_list, recommendations_list
from .monitor import MonitorConfig, PerformanceMonitor
from ..pricing import load_catalog
from ..pipeline.replay import Controls, Replay
from ..progress import in_notebook, progress_bar
from .runs import RunSummary, monitored_run, summarize

__all__ = ["Dashboard", "PIPELINE_NOTE"]

PIPELINE_NOTE = "needs the pipeline: use PipelineReplay"
_NOTES = {"cache_capacity": PIPELINE_NOTE, "cache_ttl_s": PIPELINE_NOTE, "batching": PIPELINE_NOTE}
_LEVELS = (0.80, 0.90, 0.95, 0.99)


def _control_widgets(c: Controls, supports: frozenset[str]) -> dict[str, w.Widget]:
    catalog = load_catalog()
    text = [m.id for m in catalog.text_models()]
    style = {"description_width": "150px"}
    layout = w.Layout(width="380px")
    kw = {"style": style, "layout": layout, "continuous_update": False}
    # Without routing a replay sends what it sends anyway: the chosen models, or each type's
    # premium model when it has no model choice of its own.
    off = ("off: the models above for everything" if "text_model" in supports
           else "off: each type's premium model")
    bars = [(off, None)] + [(f"{q:.2f} of premium quality", q) for q in _LEVELS]
    return {
        "text_model": w.Dropdown(options=text, value=catalog.model(c.text_model).id,
                                 description="text model", style=style, layout=layout),
        "image_model": w.Dropdown(options=["flux_schnell", "flux_dev"], value=c.image_model,
                                  description="image model", style=style, layout=layout),
        "concurrency": w.IntSlider(c.concurrency, 1, 64, description="concurrency", **kw),
        "error_rate": w.FloatSlider(c.error_rate, min=0.0, max=0.3, step=0.01,
                                    description="injected errors", **kw),
        "slowdown": w.FloatSlider(c.slowdown, min=1.0, max=6.0, step=0.5,
                                  description="provider slowdown ×", **kw),
        "slowdown_from_s": w.FloatText(c.slowdown_from_s, description="slowdown from (s)",
                                       style=style, layout=layout),
        "daily_budget_usd": w.FloatSlider(c.daily_budget_usd or catalog.budgets.daily_usd,
                                          min=1.0, max=100.0, step=1.0,
                                          description="daily budget (USD)", **kw),
        "quality_bar": w.Dropdown(options=bars, value=c.quality_bar,
                                  description="route by quality", style=style, layout=layout),
        "cache_capacity": w.IntSlider(c.cache_capacity, 1, max(10_000, c.cache_capacity),
                                      description="memory cache entries", **kw),
        "cache_ttl_s": w.FloatSlider(c.cache_ttl_s, min=1.0, max=max(7200.0, c.cache_ttl_s), step=1.0,
                                     description="memory cache TTL (s)", **kw),
        "batching": w.Checkbox(c.batching, description="low-priority text via Message Batches",
                               style=style, layout=layout),
    }


class Dashboard:
    """Controls, live charts, alerts, recommendations and run comparison around one replay."""

    def __init__(self, replay: Replay, *, controls: Controls | None = None,
                 redraw_every_s: float = 300.0, check_every_s: float = 60.0,
                 daily_budget_usd: float | None = None, monitor_config: MonitorConfig | None = None,
                 title: str = "ContentFlow live") -> None:
        self.replay = replay
        self.controls = controls if controls is not None else Controls()
        self.redraw_every_s, self.check_every_s = redraw_every_s, check_every_s
        budget = daily_budget_usd if daily_budget_usd is not None else load_catalog().budgets.daily_usd
        self.monitor_config = monitor_config or MonitorConfig(retention_s=None, daily_budget_usd=budget)
        self.title = title
        self.runs: list[RunSummary] = []
        self.monitor: PerformanceMonitor | None = None
        self.draws = 0     # chart redraws so far (the live updates a test can count)
        self._build()

    def __repr__(self) -> str:
        return f"Dashboard(replay={self.replay!r}, runs={len(self.runs)})"

    # -- widgets --------------------------------------------------------------------------
    def _build(self) -> None:
        supports = getattr(self.replay, "supports", frozenset())
        self.inputs = _control_widgets(self.controls, supports)
        rows = []
        for name, widget in self.inputs.items():
            if name in supports:
                rows.append(widget)
            else:
                widget.disabled = True
                note = _NOTES.get(name, "this replay does not use it")
                rows.append(w.HBox([widget, w.HTML(f"<i class='cfopt-muted'>{html.escape(note)}</i>")]))
        self.button = w.Button(description="Run replay", button_style="primary", icon="play")
        self.button.on_click(lambda _: self.run(self.controls_from_inputs(), cell_progress=False))
        self.progress = w.IntProgress(value=0, min=0, max=1000, description="replay",
                                      layout=w.Layout(width="600px"))
        self.status = w.HTML("<i>not run yet</i>")
        self.chart = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.alerts_box = w.HTML(events_list([], "No alert or anomaly yet."))
        self.recs_box = w.HTML("")
        self.compare_box = w.HTML("")
        self.widget = w.VBox([
            w.HTML(f"<h3>{html.escape(self.title)}</h3>"),
            w.Accordion([w.VBox(rows)], titles=("controls",)),
            w.HBox([self.button, self.progress]), self.status, self.chart,
            w.HTML("<b>Alerts and anomalies</b>"), self.alerts_box,
            w.HTML("<b>Recommendations</b>"), self.recs_box,
            w.HTML("<b>This run against the previous one</b>"), self.compare_box,
        ])

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)

    def controls_from_inputs(self) -> Controls:
        """A ``Controls`` from the enabled inputs; disabled ones keep the current values."""
        values = asdict(self.controls)
        for name, widget in self.inputs.items():
            if not widget.disabled:
                values[name] = widget.value
        return Controls(**values)

    def _show_inputs(self, c: Controls) -> None:
        for f in fields(c):
            widget = self.inputs.get(f.name)
            value = getattr(c, f.name)
            if widget is None or widget.disabled or value is None and f.name != "quality_bar":
                continue
            widget.value = load_catalog().model(value).id if f.name == "text_model" else value

    # -- running --------------------------------------------------------------------------
    def run(self, controls: Controls | None = None, *, label: str | None = None,
            cell_progress: bool = True) -> RunSummary:
        """Replay with ``controls`` (default: the current ones) while the charts follow along.

        In a notebook, ``cell_progress`` also shows a progress bar in the calling cell's output.
        """
        c = controls if controls is not None else self.controls
        label = label or f"run {len(self.runs) + 1}"
        bar: list[Any] = []
        show_bar = cell_progress and in_notebook()
        self.controls = c
        self._show_inputs(c)
        notices: list[Event] = []
        self._show_notices(notices)
        next_draw = [self.redraw_every_s]
        self.progress.value, self.progress.bar_style = 0, "info"
        self.button.disabled = True

        def follow(e: Event, m: PerformanceMonitor) -> None:
            if self.monitor is not m:   # first event: show alerts and anomalies as they arrive
                self.monitor = m
                notices.extend(sorted(m.alerts + m.anomalies, key=lambda n: n.t))
                m.on_notice(lambda n: (notices.append(n), self._show_notices(notices)))
            # Whole percents only: every widget update is a message to the browser.
            if e.kind == "progress" and show_bar:
                if not bar:
                    bar.append(progress_bar(e.data.get("total"), label, unit="requests"))
                bar[0].update(e.data.get("done", 0) - bar[0].n)
            if e.kind == "progress" and int(e.value * 100) * 10 != self.progress.value:
                self.progress.value = int(e.value * 100) * 10
                self.status.value = (f"t = {e.t / 60:5.1f} min · {e.data.get('done', '?')}/"
                                     f"{e.data.get('total', '?')} requests · spend ${m.spent_usd():.4f}")
            if e.t >= next_draw[0]:
                next_draw[0] = (e.t // self.redraw_every_s + 1) * self.redraw_every_s
                self._draw(m)
        config = self.monitor_config
        if c.daily_budget_usd is not None:   # the burn chart and rules judge the run's own budget
            config = replace(config, daily_budget_usd=c.daily_budget_usd)
        try:
            m, summary = monitored_run(self.replay, c, config=config,
                                       check_every_s=self.check_every_s, on_event=follow)
        finally:
            self.button.disabled = False
            for b in bar:
                b.close()
        self.monitor = m
        self._draw(m)
        self.progress.value, self.progress.bar_style = 1000, "success"
        run = summarize(label, m, requests=summary.requests, errors=summary.errors,
                        duration_s=summary.duration_s, controls=asdict(c))
        self.runs.append(run)
        self.status.value = (f"{html.escape(label)} done: {run.requests} requests, {run.errors} errors, "
                             f"p95 {run.p95_s:.2f} s, ${run.cost_usd:.4f}")
        self.recs_box.value = recommendations_list(m.generate_report().recommendations)
        self.compare_box.value = (comparison_table(self.runs[-2], run) if len(self.runs) > 1
                                  else "<i class='cfopt-muted'>change a control and run again to compare</i>")
        return run

    def _draw(self, m: PerformanceMonitor) -> None:
        fig = dashboard_figure(m, daily_budget_usd=m.daily_budget_usd)
        self.chart.value = figure_png(fig)
        self.draws += 1

    def _show_notices(self, notices: list[Event]) -> None:
        self.alerts_box.value = events_list(notices, "No alert or anomaly yet.", limit=12)
