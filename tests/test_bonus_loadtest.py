"""The load tester: loopback only (nothing external resolved), bounded, honest under failure."""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from cfopt.bonus.loadtest import (MAX_DURATION_S, MAX_TIMEOUT_S, LoadTestConfig, check_target,
                                  run_loadtest)
from cfopt.cli import main
from cfopt.errors import ConfigError
from cfopt.server import ServerConfig, serve_in_thread

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_dns(monkeypatch):
    """Fail on any name resolution except the local name ``localhost``; record what was asked."""
    asked = []
    real = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        asked.append(host)
        if host != "localhost":
            raise AssertionError(f"resolved {host!r}: the load tester must not look names up")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    return asked


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://192.168.1.1", "http://8.8.8.8:53",
                                 "http://example.com", "https://example.com:443/v1",
                                 "http://127.0.0.1.nip.io:8000", "http://[2001:4860::8888]:80",
                                 "http://0.0.0.0:8000", "http://localhost.example.com",
                                 "http://127.0.0.1@example.com/", "http://2130706433:80"])
def test_refuses_targets_outside_loopback_without_resolving_them(url, no_dns):
    with pytest.raises(ConfigError, match="only loopback targets"):
        check_target(url)
    with pytest.raises(ConfigError, match="only loopback targets"):
        LoadTestConfig(url=url)
    assert no_dns == []


@pytest.mark.parametrize("url,host", [("http://127.0.0.1:8000", "127.0.0.1"),
                                      ("http://127.8.9.10:1", "127.8.9.10"),
                                      ("http://[::1]:8000", "::1"),
                                      ("http://localhost:8000", "loopback"),
                                      ("http://localhost.:8000", "loopback")])
def test_accepts_loopback_targets(url, host, no_dns):
    address = check_target(url)[0]
    assert address == host or host == "loopback" and ipaddress.ip_address(address).is_loopback
    assert set(no_dns) <= {"localhost"}   # "localhost." is looked up as the hosts file's name


def test_localhost_resolving_elsewhere_is_refused(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80))])
    with pytest.raises(ConfigError, match="not only loopback"):
        check_target("http://localhost:80")


def test_cli_refuses_a_remote_target(capsys, no_dns):
    assert main(["loadtest", "--url", "http://8.8.8.8:80", "--requests", "5"]) == 2
    assert "refusing to load-test '8.8.8.8'" in capsys.readouterr().err


def test_impossible_arguments_fail_early():
    for bad in (dict(requests=0), dict(concurrency=0), dict(duration_s=0), dict(endpoint="nope"),
                dict(duration_s=float("inf")), dict(timeout_s=float("inf")),
                dict(duration_s=float("nan")), dict(timeout_s=float("nan")),
                dict(duration_s=MAX_DURATION_S + 1), dict(timeout_s=MAX_TIMEOUT_S + 1),
                dict(timeout_s=-1.0), dict(duration_s="30")):
        with pytest.raises(ConfigError):
            LoadTestConfig(url="http://127.0.0.1:1", **bad)


@pytest.mark.parametrize("flag", [["--duration", "inf"], ["--timeout", "inf"],
                                  ["--duration", "1e9"], ["--timeout", "nan"]])
def test_cli_refuses_an_endless_run(flag, capsys):
    assert main(["loadtest", "--url", "http://127.0.0.1:1", *flag]) == 2
    assert "must be a number of seconds in (0, " in capsys.readouterr().err


def test_a_silent_server_cannot_hold_a_run_past_its_caps():
    """Accepts connections, never answers: the run ends after duration + timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        t0 = time.monotonic()
        result = run_loadtest(LoadTestConfig(url=f"http://127.0.0.1:{listener.getsockname()[1]}",
                                             requests=50, concurrency=5, duration_s=1.0, timeout_s=1.0))
        took = time.monotonic() - t0
    finally:
        listener.close()
    assert result.ok == 0 and result.error_count == result.sent > 0 and took < 4


def test_the_name_checked_is_the_address_connected_to(monkeypatch):
    """"localhost." is checked as "localhost" and the client connects to the address checked.

    Here "localhost" resolves to 127.0.0.1 and any other name (as "localhost." might, through
    DNS) to a public address: were the client to resolve the URL's name itself, it would go
    there instead of where the check said."""
    real = socket.getaddrinfo
    asked = []

    def resolver(host, port, *args, **kwargs):
        asked.append(host)
        if host == "localhost":
            return real("127.0.0.1", port, *args, **kwargs)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return real("192.0.2.1", port, *args, **kwargs)   # TEST-NET: somewhere else
        return real(host, port, *args, **kwargs)

    with serve_in_thread(ServerConfig(time_scale=1000)) as url:
        port = url.rsplit(":", 1)[1]
        monkeypatch.setattr(socket, "getaddrinfo", resolver)
        result = run_loadtest(LoadTestConfig(url=f"http://localhost.:{port}", requests=10,
                                             concurrency=2, timeout_s=5.0, endpoint="health"))
        monkeypatch.undo()
        assert result.ok == 10, result.errors
        assert {h for h in asked if not h[0].isdigit()} == {"localhost"}
        assert _stats(url)["by_route"]["health"] == 10


@pytest.fixture(scope="module")
def server():
    with serve_in_thread(ServerConfig(time_scale=200)) as url:
        yield url


def _stats(url: str) -> dict:
    return httpx.get(f"{url}/_cfopt/stats", headers={"x-api-key": "k"}, trust_env=False).json()


def test_small_run_counts_every_request(server):
    before = _stats(server)
    result = run_loadtest(LoadTestConfig(url=server, requests=200, concurrency=20))
    after = _stats(server)
    assert (result.sent, result.ok, result.errors, result.stopped_by) == (200, 200, {}, "count")
    assert after["by_route"].get("messages", 0) - before["by_route"].get("messages", 0) == 200
    # One pooled client: never more connections than the concurrency (+1: the stats call's own).
    assert after["connections_opened"] - before["connections_opened"] <= 20 + 1
    lat = result.latency_ms
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert result.throughput_rps == pytest.approx(200 / result.elapsed_s)


@pytest.mark.parametrize("endpoint,route", [("count_tokens", "count_tokens"),
                                            ("photos", "search_photos"), ("health", "health"),
                                            ("batches", "create_batch"), ("fal", "submit")])
def test_other_endpoints(server, endpoint, route):
    before = _stats(server)["by_route"].get(route, 0)
    result = run_loadtest(LoadTestConfig(url=server, requests=40, concurrency=8, endpoint=endpoint))
    assert result.ok == 40 and not result.errors
    assert _stats(server)["by_route"][route] - before == 40


def test_mixed_goes_round_every_endpoint(server):
    before = _stats(server)["by_route"]
    result = run_loadtest(LoadTestConfig(url=server, requests=60, concurrency=6, endpoint="mixed"))
    assert result.ok == 60 and not result.errors
    after = _stats(server)["by_route"]
    for route in ("messages", "count_tokens", "create_batch", "submit", "search_photos", "health"):
        assert after.get(route, 0) - before.get(route, 0) == 10, route


def test_server_errors_are_reported_by_status(server):
    result = run_loadtest(LoadTestConfig(url=server, requests=30, concurrency=5,
                                         endpoint="messages", model="no-such-model"))
    assert result.ok == 0 and sum(result.errors.values()) == 30
    assert set(result.errors) <= {"HTTP 400", "HTTP 404"}


def test_proxy_variables_are_ignored(server, monkeypatch):
    # A proxy would carry the traffic off the machine; the client must connect directly.
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://192.0.2.1:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    result = run_loadtest(LoadTestConfig(url=server, requests=10, concurrency=2, timeout_s=3,
                                         endpoint="health"))
    assert result.ok == 10 and not result.errors


def test_duration_cap_stops_a_long_run(server):
    t0 = time.monotonic()
    result = run_loadtest(LoadTestConfig(url=server, requests=10**6, concurrency=10,
                                         duration_s=1.0, timeout_s=5.0))
    assert result.stopped_by == "duration" and 0 < result.sent < 10**6
    assert time.monotonic() - t0 < 1.0 + 5.0 + 2.0


def test_cli_json_output(server, capsys):
    assert main(["loadtest", "--url", server, "--requests", "20", "--concurrency", "4",
                 "--endpoint", "count_tokens", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] == 20 and data["endpoint"] == "count_tokens" and data["latency_ms"]["p99"] > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nothing_listening_ends_at_once_with_errors():
    t0 = time.monotonic()
    result = run_loadtest(LoadTestConfig(url=f"http://127.0.0.1:{_free_port()}", requests=10_000,
                                         concurrency=5, timeout_s=2.0, give_up_after=30))
    # It gives up after 30 failures in a row (plus the few already in flight), not 10,000.
    assert result.ok == 0 and result.stopped_by == "errors"
    assert set(result.errors) == {"ConnectError"} and 30 <= result.errors["ConnectError"] < 40
    assert time.monotonic() - t0 < 5.0
    assert main(["loadtest", "--url", f"http://127.0.0.1:{_free_port()}", "--requests", "3"]) == 1


def test_killing_the_server_mid_run_ends_the_run_with_errors():
    """A real `cfopt serve` process, killed (SIGKILL) while the load test runs."""
    proc = subprocess.Popen([sys.executable, "-m", "cfopt.cli", "serve", "--port", "0",
                             "--time-scale", "20", "--log-level", "warning"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = proc.stdout.readline()  # "cfopt serve: listening on http://127.0.0.1:PORT (...)"
        url = line.split("listening on ")[1].split()[0]
        box = {}
        runner = threading.Thread(target=lambda: box.update(result=run_loadtest(LoadTestConfig(
            url=url, requests=5000, concurrency=10, duration_s=60.0, timeout_s=3.0))))
        started = time.monotonic()
        runner.start()
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        runner.join(timeout=30)
        assert not runner.is_alive(), "the load test hung on a dead server"
        result = box["result"]
        assert result.ok > 0                       # it worked before the kill...
        assert result.error_count > 0              # ...and the kill shows as errors
        assert result.ok + result.error_count == result.sent
        assert result.stopped_by == "errors" and result.sent < 5000
        assert time.monotonic() - started < 30
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
