"""The ``cfopt report`` command: replay a workload through both pipelines and print the report.

The monitor listens to the optimized replay on an ``EventBus`` (it only listens); its
recommendations join the report's, and ``--html FILE`` writes its HTML report
(``cfopt.monitoring.htmlreport``). A progress bar goes to stderr when stderr is a terminal.
"""
from __future__ import annotations

import json
import sys
from typing import Any, Sequence

from ..cache.health import warn_failing_tiers
from ..errors import ConfigError
from ..events import EventBus
from ..monitoring.monitor import MonitorConfig, PerformanceMonitor
from .core import Pipeline, PipelineConfig, run_both
from .score import limits
from ..providers import Faults
from .report import build_report, format_table
from ..workload import load

__all__ = ["run_report", "contributions", "report_command"]

_KEPT = ("optimized_cost_usd", "optimized_calls", "hit_rate", "p95_ms", "avg_ms", "error_rate")


def contributions(requests: Sequence[Any], config: PipelineConfig, baseline: Any, lim: Any, *,
                  seed: int = 0, profile: str = "exercise", faults: Faults | None = None,
                  redis_url: str | None = None) -> dict[str, dict[str, float]]:
    """Replay once without each optimization of ``config``: what each one contributes."""
    out = {}
    for name in config.applied:
        on = [n for n in config.applied if n != name]
        run = Pipeline(PipelineConfig.select(only=on) if on else PipelineConfig.baseline(),
                       seed=seed, profile=profile, faults=faults, redis_url=redis_url).run(requests)
        d = build_report(requests, baseline, run, lim)["details"]
        out[f"without {name}"] = {k: d[k] for k in _KEPT}
    return out


def run_report(workload: str, *, seed: int = 0, profile: str = "exercise",
               redis_url: str | None = None, only: Sequence[str] = (), without: Sequence[str] = (),
               fault_rate: float = 0.0, progress: Any = None,
               with_contributions: bool = False) -> tuple[dict[str, Any], Any]:
    """Replay ``workload`` through both pipelines; return the report and the monitor.

    ``with_contributions`` adds ``contributions``: the figures without each optimization.
    """
    requests = load(workload)
    if not requests:
        raise ConfigError(f"{workload}: no requests to replay")
    config = PipelineConfig.select(only, without)
    third = fault_rate / 3  # injected failures split evenly: 429, 529, 500
    faults = Faults(rate_limited=third, overloaded=third, server_error=third) if fault_rate else None
    bus = EventBus()
    heard = [0]
    bus.subscribe(lambda e: heard.__setitem__(0, heard[0] + 1))
    monitor = PerformanceMonitor(bus=bus, config=MonitorConfig(retention_s=None))
    baseline, optimized = run_both(requests, config, seed=seed, profile=profile, faults=faults,
                                   redis_url=redis_url, bus=bus, progress=progress)
    recs = [r.message for r in monitor.generate_report().recommendations]
    lim = limits(requests, seed=seed, profile=profile)
    report = build_report(requests, baseline, optimized, lim, monitor_events=heard[0],
                          monitor_recs=recs)
    if with_contributions:
        report["contributions"] = {"all on": {k: report["details"][k] for k in _KEPT},
                                   **contributions(requests, config, baseline, lim, seed=seed,
                                                   profile=profile, faults=faults,
                                                   redis_url=redis_url)}
    return report, monitor


def _progress_bar(name: str, done: int, total: int) -> None:
    if done != total and done % max(1, total // 40):
        return
    filled = 30 * done // max(1, total)
    sys.stderr.write(f"\r{name:<10}[{'#' * filled}{'.' * (30 - filled)}] {done:,}/{total:,}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def report_command(args: Any) -> int:
    """Run the ``cfopt report`` command: print the JSON or the table (and write the HTML)."""
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else []  # noqa: E731
    report, monitor = run_report(
        args.workload, seed=args.seed, profile=args.prices, redis_url=args.redis,
        only=split(args.only), without=split(args.without), fault_rate=args.fault_rate,
        progress=_progress_bar if (sys.stderr.isatty() and not args.no_progress) else None,
        with_contributions=args.contributions)
    if args.html:
        from ..monitoring.htmlreport import write_html_report
        write_html_report(args.html, monitor, title=f"cfopt report: {args.workload} (optimized)")
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_table(report))
    # A failing cache tier is a warning line (stderr with --json); --strict makes it exit 1.
    return warn_failing_tiers(report["details"]["cache_layers"], strict=getattr(args, "strict", False),
                              stream=sys.stderr if args.json else sys.stdout)
