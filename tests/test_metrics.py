"""Prometheus metrics: `cfopt serve`'s /metrics against a `cfopt loadtest` run, the monitor's
export against a replay's own figures, and the Grafana dashboard against the metric names."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cfopt.events import EventBus
from cfopt.monitoring.prometheus import PrometheusExporter
from cfopt.pipeline import Pipeline, PipelineConfig
from cfopt.providers import Faults
from cfopt.workload import load

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "datasets" / "tiny.jsonl"
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a scrape, parsed by prometheus-client's parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(parsed: dict, name: str, **match: str) -> float:
    return sum(v for (n, labels), v in parsed.items()
               if n == name and all(dict(labels).get(k) == want for k, want in match.items()))


@pytest.fixture(scope="module")
def served():
    """`cfopt serve` as a learner starts it (the CLI, a real process), with injected faults."""
    proc = subprocess.Popen([sys.executable, "-m", "cfopt", "serve", "--port", "0", "--time-scale", "1000",
                             "--fault-rate", "0.15", "--seed", "3", "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"listening on (http://\S+)", line)
        assert url, f"cfopt serve did not start: {line!r}"
        yield url.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_metrics_after_a_loadtest_equal_the_loadtests_own_figures(served):
    run = subprocess.run([sys.executable, "-m", "cfopt", "loadtest", "--url", served, "--requests", "300",
                          "--concurrency", "10", "--json"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lt = json.loads(run.stdout)
    assert lt["sent"] == 300 and lt["stopped_by"] == "count"
    assert lt["errors"] and all(k.startswith("HTTP ") for k in lt["errors"]), lt["errors"]

    scrape = httpx.get(f"{served}/metrics", timeout=10)
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    m = samples(scrape.text)
    # HTTP: every request the load test sent, by status, and timed.
    assert total(m, "cfopt_http_requests_total", route="messages") == lt["sent"]
    assert total(m, "cfopt_http_requests_total", route="messages", status="200") == lt["ok"]
    for kind, n in lt["errors"].items():
        assert total(m, "cfopt_http_requests_total", route="messages", status=kind.split()[1]) == n, kind
    assert total(m, "cfopt_http_request_duration_seconds_count", route="messages") == lt["sent"]
    # The simulated providers: answers, errors by type, spend and tokens.
    assert total(m, "cfopt_requests_total", outcome="ok") == lt["ok"]
    assert total(m, "cfopt_response_time_seconds_count") == lt["ok"]
    assert total(m, "cfopt_errors_total") == sum(lt["errors"].values())
    by_status = {"429": "rate_limit_error", "529": "overloaded_error", "500": "api_error"}
    for kind, n in lt["errors"].items():
        assert total(m, "cfopt_errors_total", type=by_status[kind.split()[1]]) == n, kind
    stats = httpx.get(f"{served}/_cfopt/stats", headers={"x-api-key": "k"}, timeout=10).json()
    assert total(m, "cfopt_cost_usd_total") == pytest.approx(stats["cost_usd"], rel=1e-6)
    assert total(m, "cfopt_tokens_total", kind="output") > 0
    # Latency buckets are cumulative and end with +Inf holding every observation.
    assert total(m, "cfopt_response_time_seconds_bucket", le="+Inf") == lt["ok"]
    assert total(m, "cfopt_response_time_seconds_bucket", le="2.0") <= lt["ok"]


def test_the_monitor_export_equals_the_replays_own_figures(tmp_path):
    requests = load(TINY)
    bus = EventBus()
    exporter = PrometheusExporter(bus)
    third = 0.1 / 3
    run = Pipeline(PipelineConfig(), seed=0, bus=bus,
                   faults=Faults(rate_limited=third, overloaded=third, server_error=third)).run(requests)
    m = samples(exporter.text())
    ok = [o for o in run.outcomes if o.error is None]
    assert total(m, "cfopt_requests_total", outcome="ok") == len(ok)
    assert total(m, "cfopt_requests_total", outcome="error") == len(run.outcomes) - len(ok)
    assert total(m, "cfopt_response_time_seconds_count", cache="hit") == sum(o.from_cache for o in ok)
    assert total(m, "cfopt_response_time_seconds_sum") == pytest.approx(sum(o.response_s for o in ok))
    assert total(m, "cfopt_cost_usd_total") == pytest.approx(run.cost_usd, rel=1e-9)
    assert total(m, "cfopt_cache_lookups_total", result="hit") > 0
    assert total(m, "cfopt_retries_total") > 0            # 10% injected faults: some were retried
    # The same figures as a node_exporter textfile.
    written = exporter.write(tmp_path / "cfopt.prom").read_text()
    assert samples(written) == m
    exporter.close()


def test_grafana_dashboard_queries_only_metrics_that_exist():
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 6
    bus = EventBus()
    exporter = PrometheusExporter(bus)
    Pipeline(PipelineConfig(), seed=0, bus=bus).run(load(TINY)[:40])
    from starlette.testclient import TestClient
    from cfopt.server.app import create_app
    from cfopt.server.config import ServerConfig
    with TestClient(create_app(ServerConfig(time_scale=1000))) as client:
        client.get("/_cfopt/health", headers={"x-api-key": "k"})
        known = {f.name for f in text_string_to_metric_families(client.get("/metrics").text)}
    known |= {f.name for f in text_string_to_metric_families(exporter.text())}
    names = {s.name for f in text_string_to_metric_families(exporter.text()) for s in f.samples}
    names |= {f"{n}_total" for n in known} | {f"{n}_{s}" for n in known for s in ("bucket", "sum", "count")}
    used = {n for e in exprs for n in re.findall(r"\bcfopt_[a-z_]+", e)}
    assert used and used <= names, f"queried but never exported: {sorted(used - names)}"
