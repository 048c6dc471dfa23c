"""The monitor's charts as one matplotlib figure, shared by the live dashboard and the HTML report.

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas, never ``pyplot``: they
can be drawn from the replay's helper thread while a notebook cell runs, and no global figure
state leaks between runs.

>>> from cfopt.clock import VirtualClock
>>> from cfopt.monitoring.monitor import PerformanceMonitor
>>> clock = VirtualClock(); m = PerformanceMonitor(clock=clock)
>>> for i in range(300):
...     clock.advance(1.0); m.track("response_time", 0.5)
>>> png = figure_png(dashboard_figure(m, daily_budget_usd=50.0))
>>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""
from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .monitor import PerformanceMonitor

__all__ = ["bucket_percentiles", "bucket_means", "dashboard_figure", "figure_png"]


def _edges(t: np.ndarray, width_s: float, start: float, end: float) -> np.ndarray:
    # Buckets are (lo, hi]; the first edge sits a hair before ``start`` so a point at start counts.
    n = max(1, int(np.ceil((end - start) / width_s)))
    edges = start + width_s * np.arange(n + 1)
    edges[0] -= 1e-9
    return edges


def bucket_percentiles(t: np.ndarray, v: np.ndarray, width_s: float, start: float, end: float,
                       qs: tuple[float, ...] = (50, 95, 99)) -> tuple[np.ndarray, np.ndarray]:
    """Bucket ends and an array (buckets x len(qs)) of percentiles; NaN for an empty bucket."""
    edges = _edges(t, width_s, start, end)
    cuts = np.searchsorted(t, edges, side="right")
    out = np.full((edges.size - 1, len(qs)), np.nan)
    for i in range(edges.size - 1):
        chunk = v[cuts[i]:cuts[i + 1]]
        if chunk.size:
            out[i] = np.percentile(chunk, qs)
    return edges[1:], out


def bucket_means(t: np.ndarray, v: np.ndarray, width_s: float, start: float,
                 end: float) -> tuple[np.ndarray, np.ndarray]:
    """Bucket ends and the mean of each bucket (NaN when empty)."""
    edges = _edges(t, width_s, start, end)
    cuts = np.searchsorted(t, edges, side="right")
    counts = np.diff(cuts)
    csum = np.concatenate([[0.0], np.cumsum(v, dtype=np.float64)])
    sums = csum[cuts[1:]] - csum[cuts[:-1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return edges[1:], means


def _minutes(x: np.ndarray) -> np.ndarray:
    return np.asarray(x) / 60.0


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4",
            wrap=True)
    ax.set_xticks([]); ax.set_yticks([])


def dashboard_figure(m: PerformanceMonitor, *, daily_budget_usd: float | None = None,
                     width_s: float = 60.0, start: float = 0.0, end: float | None = None,
                     title: str = "") -> Figure:
    """Six panels: response time percentiles, throughput, errors, spend, hit rate, queue depth."""
    end = m.clock.now() if end is None else end
    end = max(end, start + width_s)
    # Fixed margins, not constrained layout: the layout engine re-measures every label and
    # made each live redraw several times slower.
    fig = Figure(figsize=(12, 6.4), dpi=72)
    fig.subplots_adjust(left=0.05, right=0.95, bottom=0.08, top=0.9 if title else 0.94,
                        wspace=0.3, hspace=0.38)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3)
    if title:
        fig.suptitle(title)

    ax = axes[0, 0]
    t, v = m.series("response_time")
    if t.size:
        ends, p = bucket_percentiles(t, v, width_s, start, end)
        for i, (q, style) in enumerate(zip((50, 95, 99), ("-", "--", ":"))):
            ax.plot(_minutes(ends), p[:, i], style, label=f"p{q}")
        for kind, color in (("miss", "tab:red"), ("hit", "tab:green")):
            th, vh = m.series(f"response_time.{kind}")
            if th.size:
                e2, p2 = bucket_percentiles(th, vh, width_s, start, end, qs=(95,))
                ax.plot(_minutes(e2), p2[:, 0], color=color, alpha=0.5, label=f"p95 {kind}es")
        for a in m.anomalies:
            ax.axvline(a.t / 60.0, color="tab:orange", lw=1.5, alpha=0.8)
        ax.axhline(2.0, color="0.6", lw=0.8)
        # Scaled to the run's overall p99: one 5-minute video in a quiet minute must not
        # flatten every other line.
        ax.set_ylim(0, max(2.5, 1.1 * float(np.percentile(v, 99))))
        ax.legend(fontsize=7, loc="upper left")
    else:
        _empty(ax, "no responses yet")
    ax.set_title("response time (s) per minute", fontsize=10)

    ax = axes[0, 1]
    t, v = m.series("error_rate")   # one 0/1 point per finished request
    if t.size:
        edges = _edges(t, width_s, start, end)
        counts = np.diff(np.searchsorted(t, edges, side="right")) * (60.0 / width_s)
        ax.bar(_minutes(edges[1:]), counts, width=width_s / 60.0 * 0.9, align="edge",
               color="tab:blue")
        ends, rate = bucket_means(t, v, width_s, start, end)
        ax2 = ax.twinx()
        ax2.plot(_minutes(ends), 100 * rate, color="tab:red", lw=1.2)
        ax2.set_ylabel("errors %", color="tab:red", fontsize=8)
        ax2.set_ylim(bottom=0)
    else:
        _empty(ax, "no requests yet")
    ax.set_title("throughput (req/min) and error rate", fontsize=10)

    ax = axes[0, 2]
    t, v = m.series("cost_usd")
    if t.size:
        ax.plot(_minutes(t), np.cumsum(v), color="tab:purple", label="spend")
    if daily_budget_usd:
        xs = np.array([start, end])
        ax.plot(_minutes(xs), daily_budget_usd * xs / 86400.0, "--", color="0.5",
                label=f"${daily_budget_usd:g}/day pace")
    for a in m.alerts:
        ax.axvline(a.t / 60.0, color="tab:red", lw=1, alpha=0.7)
    if t.size or daily_budget_usd:
        ax.legend(fontsize=7, loc="upper left")
    else:
        _empty(ax, "no spend yet")
    ax.set_title("spend (USD) against the budget", fontsize=10)

    ax = axes[1, 0]
    layers = [n for n in m.metrics() if n == "hit_rate" or n.startswith("hit_rate.")]
    for name in layers:
        th, vh = m.series(name)
        ends, mean = bucket_means(th, vh, width_s, start, end)
        ax.plot(_minutes(ends), mean, label=name.replace("hit_rate", "all") if name == "hit_rate"
                else name.split(".", 1)[1])
    if layers:
        ax.set_ylim(0, 1.02)
        ax.axhline(0.5, color="0.6", lw=0.8)
        ax.legend(fontsize=7)
    else:
        _empty(ax, "no cache in this replay\n(PipelineReplay has one)")
    ax.set_title("cache hit rate per layer", fontsize=10)

    ax = axes[1, 1]
    t, v = m.series("queue_depth")
    if t.size:
        ax.step(_minutes(t), v, where="post", color="tab:brown")
    else:
        _empty(ax, "this replay has no queue")
    ax.set_title("queue depth", fontsize=10)

    ax = axes[1, 2]
    t, v = m.series("response_time")
    if t.size:
        cap = float(np.percentile(v, 99))
        ax.hist(v[v <= cap], bins=40, color="tab:cyan")
        ax.set_xlabel(f"up to p99 ({cap:.1f} s); {int((v > cap).sum())} slower not shown", fontsize=8)
    else:
        _empty(ax, "no responses yet")
    ax.set_title("response time distribution (s)", fontsize=10)

    for a in (axes[0, 0], axes[0, 1], axes[0, 2], axes[1, 0], axes[1, 1]):
        a.set_xlabel("minutes", fontsize=8)
        a.tick_params(labelsize=8)
    axes[1, 2].tick_params(labelsize=8)
    return fig


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (light compression: a live redraw should not wait on zlib)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", pil_kwargs={"compress_level": 1})
    return buf.getvalue()
