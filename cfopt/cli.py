"""The ``cfopt`` command line.

    cfopt workload generate --requests N --seed S --out FILE
    cfopt workload stats FILE [--json]
    cfopt kit build [--check]
    cfopt kit release DIR
    cfopt grade NOTEBOOK|FOLDER [--json] [--csv FILE] [--seed S] [--jobs N] [--timeout S]
                                [--cell-timeout S] [--solutions DIR] [--no-sandbox] [--memory-mb M]
                                [--cpu-s S] [--processes N] [--file-mb M] [--quiet]
    cfopt report --workload FILE [--seed S] [--prices P] [--redis URL] [--json] [--html FILE]
                 [--only X,Y] [--without X,Y] [--fault-rate R] [--contributions] [--strict]
    cfopt serve [--host H] [--port P] [--time-scale X] [--seed S] [--profile P] [--fault-rate R]
                [--api-key KEY] [--header-timeout S] [--body-timeout S] [--batch-retention S]
                [--fal-retention S] [--max-retained N]
    cfopt dashboard-report --html FILE [--workload FILE] [--pipeline optimized|baseline|both]
                           [--error-rate R] [--prometheus FILE] [--providers [--text-model M]
                           [--slowdown X] [--slowdown-from S] [--compare]]
    cfopt loadtest --url http://127.0.0.1:PORT [--requests N] [--concurrency C] [--duration S]
                   [--timeout S] [--endpoint messages|count_tokens|photos|health|batches|fal|mixed]
                   [--api-key KEY] [--json]
    cfopt budget reconcile --redis URL --prefix P --ledger FILE [--ledger FILE ...]
                           [--from-zero] [--force] [--dry-run]
    cfopt doctor [--json]

``python -m cfopt ...`` runs the same command line through the current interpreter (a notebook
cell: ``!{sys.executable} -m cfopt ...``).

Each command is a thin layer over the library; errors print one line naming the problem and
exit with status 2 (bad input) or 1 (a check that did not pass).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import CfoptError, ConfigError
from .pricing import DEFAULT_PROFILE, PROFILES, SPEEDS

__all__ = ["main", "build_parser"]


def _workload_generate(args: argparse.Namespace) -> int:
    from .workload import generate, write_jsonl
    requests = generate(args.requests, seed=args.seed, duration_s=args.duration)
    write_jsonl(requests, args.out)
    print(f"wrote {len(requests)} requests to {args.out}")
    return 0


def _workload_stats(args: argparse.Namespace) -> int:
    from .workload import load, workload_stats
    stats = workload_stats(load(args.file))
    print(json.dumps(stats.as_dict(), indent=2) if args.json else stats.format())
    return 0


def _kit_build(args: argparse.Namespace) -> int:
    from .course.runner import skip_slow_optional_imports
    skip_slow_optional_imports()
    from .course.kit import build_all
    stale = build_all(Path(args.solutions), Path(args.notebooks), check=args.check)
    if args.check and stale:
        print("out of date with solutions/: " + ", ".join(str(p) for p in stale))
        print("run: cfopt kit build")
        return 1
    if not args.check:
        print(f"built {len(stale)} exercise notebook(s) in {args.notebooks}")
    return 0


def _kit_release(args: argparse.Namespace) -> int:
    from .course.command import release_command
    return release_command(args)


def _grade(args: argparse.Namespace) -> int:
    from .course.runner import skip_slow_optional_imports
    skip_slow_optional_imports()
    from .course.command import grade_command
    return grade_command(args)


def _serve(args: argparse.Namespace) -> int:
    from .server.run import serve_command  # starlette and uvicorn load only for this command
    return serve_command(args)


def _near_duplicates(kind: str) -> dict:
    """The optimized pipeline's cache stage for ``--near-duplicates``: bounded is the default."""
    if kind == "bounded":
        return {}
    from .cache import CacheManager, ContentDeduplication
    return {"cache": CacheManager(dedup=ContentDeduplication())}


def _report(args: argparse.Namespace) -> int:
    """Print the report as JSON or a table (and write the monitor's HTML report)."""
    from .pipeline import format_table, run_report  # the replays load only for this command
    from .progress import ReplayProgress  # a bar per replay on a terminal, a line per replay elsewhere
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else []  # noqa: E731
    progress = ReplayProgress(prefix="replay ", mode="off" if args.no_progress else None)
    try:
        report, monitor = run_report(
            args.workload, seed=args.seed, profile=args.prices, redis_url=args.redis,
            only=split(args.only), without=split(args.without), fault_rate=args.fault_rate,
            progress=progress, with_contributions=args.contributions, speeds=args.speeds,
            stages=_near_duplicates(args.near_duplicates))
    finally:
        progress.close()
    if args.html:
        from .monitoring.htmlreport import write_html_report
        write_html_report(args.html, monitor, title=f"cfopt report: {args.workload} (optimized)")
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_table(report))
    # A failing cache tier is a warning line (stderr with --json); --strict makes it exit 1.
    from .cache.health import warn_failing_tiers
    return warn_failing_tiers(report["details"]["cache_layers"], strict=args.strict,
                              stream=sys.stderr if args.json else sys.stdout)


def _dashboard_report(args: argparse.Namespace) -> int:
    from .monitoring.htmlreport import write_replay_report
    from .pipeline.replay import Controls
    provider_only = {"--text-model": args.text_model != "sonnet", "--slowdown": args.slowdown != 1.0,
                     "--slowdown-from": args.slowdown_from != 0.0, "--compare": args.compare}
    used = [flag for flag, given in provider_only.items() if given]
    if used and not args.providers:
        raise ConfigError(f"{', '.join(used)} {'needs' if len(used) == 1 else 'need'} --providers: "
                          "the pipeline chooses its own models and has no slowdown window "
                          "(use --pipeline both to compare)")
    if args.providers and args.pipeline != "optimized":
        raise ConfigError("--pipeline needs the pipeline: leave out --providers")
    controls = Controls(text_model=args.text_model, slowdown=args.slowdown,
                        slowdown_from_s=args.slowdown_from, error_rate=args.error_rate)
    exporter = None
    if args.prometheus:
        from .monitoring.prometheus import PrometheusExporter
        exporter = PrometheusExporter()
    from .progress import ReplayProgress
    progress = ReplayProgress(prefix="replay ")
    try:
        path = write_replay_report(
            args.html, args.workload, pipeline=args.pipeline, seed=args.seed, controls=controls,
            providers=args.providers,
            baseline=Controls(text_model=args.text_model) if args.compare else None,
            on_event=(lambda e, m: exporter.handle(e)) if exporter is not None else None,
            progress=progress)
    finally:
        progress.close()
    print(f"wrote {path}")
    if exporter is not None:
        print(f"wrote {exporter.write(args.prometheus)}")
    return 0


def _loadtest(args: argparse.Namespace) -> int:
    from .bonus.loadtest import loadtest_command  # httpx loads only for this command
    return loadtest_command(args)


def _budget_reconcile(args: argparse.Namespace) -> int:
    from .cost.budget_redis import RedisStore, reconcile
    store = RedisStore(args.redis, prefix=args.prefix)
    try:
        done = reconcile(store, args.ledger, from_zero=args.from_zero, force=args.force,
                         dry_run=args.dry_run)
    finally:
        store.close()
    print(done.format())
    print("dry run: nothing written" if args.dry_run else "reconciled: reservations are allowed again")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor_command
    return doctor_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cfopt", description="ContentFlow optimization course kit")
    sub = parser.add_subparsers(dest="command", required=True)

    wl = sub.add_parser("workload", help="generate or describe a workload file")
    wl_sub = wl.add_subparsers(dest="workload_command", required=True)
    gen = wl_sub.add_parser("generate", help="write realistic ContentFlow traffic as JSONL")
    gen.add_argument("--requests", type=int, required=True, help="number of requests")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--duration", type=float, default=3600.0, help="seconds of traffic")
    gen.add_argument("--out", required=True, help="output .jsonl file")
    gen.set_defaults(func=_workload_generate)
    st = wl_sub.add_parser("stats", help="counts, distinct prompts and intents, hit-rate ceilings")
    st.add_argument("file")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_workload_stats)

    kit = sub.add_parser("kit", help="course-kit machinery")
    kit_sub = kit.add_subparsers(dest="kit_command", required=True)
    build = kit_sub.add_parser("build", help="write exercise notebooks from solutions/")
    build.add_argument("--solutions", default="solutions")
    build.add_argument("--notebooks", default="notebooks")
    build.add_argument("--check", action="store_true", help="only report stale notebooks")
    build.set_defaults(func=_kit_build)
    rel = kit_sub.add_parser("release", help="write the learners' copy: exercises, library, data; "
                                             "no solutions, no hidden checks")
    rel.add_argument("target", help="a new (or empty) folder")
    rel.add_argument("--kit", default=None, help="the kit to release (default: this one)")
    rel.set_defaults(func=_kit_release)

    from .course.command import add_grade_arguments
    gr = sub.add_parser("grade", help="grade a notebook or a folder of submissions, each in a sandbox")
    add_grade_arguments(gr)
    gr.set_defaults(func=_grade)

    sv = sub.add_parser("serve", help="run the simulated providers behind a local HTTP server")
    sv.add_argument("--host", default="127.0.0.1", help="loopback only unless --allow-remote")
    sv.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    sv.add_argument("--time-scale", type=float, default=1.0, help="run simulated time this much faster")
    sv.add_argument("--seed", type=int, default=0)
    sv.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE,
                    help="price profile: list-2026 (list prices, default) or exercise (the exercise's 2024 table)")
    sv.add_argument("--rate-tier", default=None, help="Anthropic usage tier for rate limits (start, build, scale)")
    sv.add_argument("--speeds", choices=SPEEDS, default=None,
                    help="model speeds from published measurements: optimistic, median (default), pessimistic")
    sv.add_argument("--fault-rate", type=float, default=0.0, help="share of calls that fail")
    sv.add_argument("--fault-kinds", default="rate_limited,overloaded,server_error",
                    help="comma-separated: rate_limited, overloaded, server_error, timeout")
    sv.add_argument("--retry-after", type=float, default=2.0, help="simulated s an injected 429 asks for")
    sv.add_argument("--max-body-bytes", type=int, default=None,
                    help="largest request body accepted (default: 32 MiB, the Messages API's limit)")
    sv.add_argument("--backlog", type=int, default=1024, help="listen queue length")
    sv.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    sv.add_argument("--handshake-ms", type=float, default=0.0,
                    help="hold each new connection's first request this long (a remote API's TCP+TLS set-up)")
    sv.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    sv.add_argument("--api-key", default=None,
                    help="accept only this API key, on every route (default: any non-empty key)")
    sv.add_argument("--header-timeout", type=float, default=10.0,
                    help="wall seconds a client may take to send a request's head (then 408)")
    sv.add_argument("--body-timeout", type=float, default=30.0,
                    help="wall seconds a client may take to send a request's body (then 408)")
    sv.add_argument("--batch-retention", type=float, default=None,
                    help="simulated seconds a batch is kept after creation (default: 29 days)")
    sv.add_argument("--fal-retention", type=float, default=None,
                    help="simulated seconds a fal.ai result is kept after completion (default: 1 h)")
    sv.add_argument("--max-retained", type=int, default=20_000,
                    help="batch requests, and fal.ai jobs, kept at most (oldest go first)")
    sv.set_defaults(func=_serve)

    rp = sub.add_parser("report", help="replay a workload through the baseline and the optimized pipeline")
    rp.add_argument("--workload", required=True, help="a workload .jsonl file")
    rp.add_argument("--seed", type=int, default=0)
    rp.add_argument("--prices", choices=PROFILES, default=DEFAULT_PROFILE,
                    help="list-2026: list prices of 2026-12 (default); exercise: the exercise's 2024-era table")
    rp.add_argument("--speeds", choices=SPEEDS, default=None,
                    help="model speeds: optimistic, median (default) or pessimistic published measurements")
    rp.add_argument("--redis", default=None, help="add a Redis cache layer at this URL")
    rp.add_argument("--near-duplicates", choices=("bounded", "static"), default="bounded",
                    help="near-duplicate answers within a 1%% false-hit bound (a paid judge "
                         "verifies), or above the static threshold")
    rp.add_argument("--json", action="store_true", help="print the report as JSON")
    rp.add_argument("--html", default=None, help="also write the monitor's HTML report here")
    rp.add_argument("--only", default="", help="comma-separated optimizations to switch on alone")
    rp.add_argument("--without", default="", help="comma-separated optimizations to switch off")
    rp.add_argument("--fault-rate", type=float, default=0.0, help="share of provider calls that fail")
    rp.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    rp.add_argument("--contributions", action="store_true",
                    help="also replay without each optimization in turn (one replay each)")
    rp.add_argument("--strict", action="store_true",
                    help="exit 1 when a cache tier failed (e.g. an unreachable --redis)")
    rp.set_defaults(func=_report)

    dr = sub.add_parser("dashboard-report",
                        help="replay a workload with the monitor listening and write its HTML report")
    dr.add_argument("--html", required=True, help="output .html file")
    dr.add_argument("--workload", default="datasets/tiny.jsonl")
    dr.add_argument("--seed", type=int, default=0)
    dr.add_argument("--pipeline", choices=["optimized", "baseline", "both"], default="optimized",
                    help="which pipeline to replay; both: the baseline, then the optimized, side by side")
    dr.add_argument("--error-rate", type=float, default=0.0, help="injected provider failures")
    dr.add_argument("--prometheus", default=None,
                    help="also write the last replay's metrics in Prometheus's text format here")
    dr.add_argument("--providers", action="store_true",
                    help="replay straight to the simulated providers (no pipeline), for the options below")
    dr.add_argument("--text-model", default="sonnet", help="with --providers: the model for text")
    dr.add_argument("--slowdown", type=float, default=1.0,
                    help="with --providers: provider latency multiplier")
    dr.add_argument("--slowdown-from", type=float, default=0.0,
                    help="with --providers: seconds into the replay")
    dr.add_argument("--compare", action="store_true",
                    help="with --providers: also run without faults first and compare")
    dr.set_defaults(func=_dashboard_report)

    lt = sub.add_parser("loadtest", help="drive a local `cfopt serve` (loopback targets only)")
    lt.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8000")
    lt.add_argument("--requests", type=int, default=200, help="requests to send at most")
    lt.add_argument("--concurrency", type=int, default=20, help="requests in flight at most")
    lt.add_argument("--duration", type=float, default=30.0,
                    help="stop issuing after S seconds (at most 3600)")
    lt.add_argument("--timeout", type=float, default=10.0, help="seconds per request (at most 300)")
    lt.add_argument("--endpoint", choices=["messages", "count_tokens", "photos", "health",
                                           "batches", "fal", "mixed"], default="messages",
                    help="mixed: in turn Messages, token counts, batches, fal.ai, photos, health")
    lt.add_argument("--api-key", default="cfopt-loadtest", help="the key the server expects")
    lt.add_argument("--json", action="store_true")
    lt.set_defaults(func=_loadtest)

    bu = sub.add_parser("budget", help="operate budgets kept in Redis")
    bu_sub = bu.add_subparsers(dest="budget_command", required=True)
    rc = bu_sub.add_parser("reconcile", help="rebuild lost budget counters from the usage ledger "
                           "and let reservations through again")
    rc.add_argument("--redis", required=True, help="the budget's Redis URL")
    rc.add_argument("--prefix", default="cfopt:budget", help="the budget's key prefix")
    rc.add_argument("--ledger", action="append", default=[],
                    help="a usage ledger file (repeat for one file per process)")
    rc.add_argument("--from-zero", action="store_true",
                    help="no ledger: restart from empty counters (the spend so far is forgotten)")
    rc.add_argument("--force", action="store_true",
                    help="rebuild even though the budget is not marked reset (stop its traffic first)")
    rc.add_argument("--dry-run", action="store_true", help="show what would be written")
    rc.set_defaults(func=_budget_reconcile)

    dc = sub.add_parser("doctor", help="check Python, the venv, the kernel, Redis, Chromium and "
                                       "the grading sandbox; print the fix for each")
    dc.add_argument("--json", action="store_true")
    dc.set_defaults(func=_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `cfopt ... | head` closed the pipe: not an error of ours
        sys.stderr.close()
        return 0
    except CfoptError as e:
        print(f"cfopt: error: {e}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError) as e:
        print(f"cfopt: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
