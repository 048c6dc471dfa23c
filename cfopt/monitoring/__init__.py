"""Part 5, monitoring: ``PerformanceMonitor`` listens on the event bus and keeps time series, spots
anomalies and recommends; the dashboard, charts and HTML report show what it heard.

The monitor only listens. The dashboard, the charts and the HTML report load on first use (they
need ipywidgets and matplotlib, and they drive replays of ``cfopt.pipeline``).
"""
from importlib import import_module
from typing import Any

from .anomaly import AnomalyConfig, Shift, ShiftDetector
from .monitor import REPORT_METRICS, MonitorConfig, PerformanceMonitor, Report
from .recommendations import DEFAULT_RULES, Recommendation, Rule
from .series import Stats, TimeSeries, compute_stats, percentile

_LAZY = {"Dashboard": "dashboard", "html_report": "htmlreport", "write_html_report": "htmlreport",
         "write_replay_report": "htmlreport", "dashboard_figure": "charts",
         "bucket_percentiles": "charts"}

__all__ = ["PerformanceMonitor", "MonitorConfig", "Report", "REPORT_METRICS", "Stats",
           "TimeSeries", "compute_stats", "percentile", "AnomalyConfig", "Shift", "ShiftDetector",
           "Recommendation", "Rule", "DEFAULT_RULES", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
