"""A server that answers every input: 4xx in the API's shape, clean closes, slow clients cut off,
memory that stays flat, ``/_cfopt/*`` behind the key.

Issue 17 found: a 5,000-digit integer, JSON nested about 1,000 levels and a lone surrogate in
``model`` answered 500, then the keep-alive connection closed without ``Connection: close``
(ECONNRESET on the client's next request); client disconnects counted as 500s; slow clients
never disconnected; batch and fal results kept forever; ``/_cfopt/faults`` open and uncapped.
Every test here talks to a real uvicorn server on 127.0.0.1.
"""
from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import sys
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cfopt.server import ServerConfig, serve_in_thread
from cfopt.server import anthropic as anthropic_routes

KEY = {"x-api-key": "sk-test-key", "anthropic-version": "2023-06-01"}
HAIKU = {"model": "claude-haiku-5-5", "max_tokens": 20,
         "messages": [{"role": "user", "content": "Write a tagline for a bakery."}]}
THE_THREE = {   # issue 17's inputs, as raw bodies
    "5,000-digit integer": b'{"model": "claude-haiku-5-5", "max_tokens": ' + b"9" * 5000 + b', "messages": []}',
    "JSON nested 1,000 levels": b'{"model": "claude-haiku-5-5", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    "lone surrogate in model": b'{"model": "\\ud800", "max_tokens": 5, "messages": []}',
}


@pytest.fixture
def serve():
    with contextlib.ExitStack() as stack:
        yield lambda config=None, **kw: stack.enter_context(serve_in_thread(config, **kw))


def stats(url, key=KEY):
    return httpx.get(f"{url}/_cfopt/stats", headers=key).json()


def _hostport(url):
    host, port = url.split("//")[1].split(":")
    return host, int(port)


# -- bad input: 4xx in Anthropic's shape, and the connection goes on -----------------------------
def test_the_three_inputs_get_400_and_the_next_request_on_the_same_connection_is_served(serve):
    url = serve(ServerConfig(time_scale=1000))
    conn = http.client.HTTPConnection(*_hostport(url), timeout=10)
    headers = {**KEY, "content-type": "application/json"}
    conn.request("POST", "/v1/messages", body=json.dumps(HAIKU), headers=headers)
    assert conn.getresponse().read() and conn.sock is not None
    sock = conn.sock
    for name, body in THE_THREE.items():
        conn.request("POST", "/v1/messages", body=body, headers=headers)
        r = conn.getresponse()
        payload = json.loads(r.read())
        assert r.status == 400, name
        assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error", name
        assert r.getheader("connection") != "close" and conn.sock is sock, name
        conn.request("POST", "/v1/messages", body=json.dumps(HAIKU), headers=headers)
        ok = conn.getresponse()
        assert ok.status == 200 and json.loads(ok.read())["type"] == "message", name
        assert conn.sock is sock, f"{name}: the client had to reconnect"
    s = stats(url)
    assert s["connections_opened"] == 2   # this one, and the stats request's own
    assert s["by_status"] == {"200": 4, "400": 3} and s["internal_errors"] == 0
    conn.close()


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | st.text(max_size=20), lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)
_raw = st.one_of(
    st.binary(max_size=200),
    _json.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"model": st.sampled_from(["claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5", "haiku", "\ud800", "x" * 300])
                           | st.text(max_size=10), "max_tokens": st.integers(-10, 10**30) | _json,
                           "messages": st.just(HAIKU["messages"]) | _json}, optional={
        "stream": st.booleans() | _json, "system": _json, "metadata": _json,
        "temperature": st.floats(allow_nan=False) | _json}).map(lambda v: json.dumps(v).encode()),
    st.integers(1, 3000).map(lambda n: b'{"a": ' + b"[" * n + b"]" * n + b"}"),
    st.integers(1, 6000).map(lambda n: b'{"max_tokens": ' + b"7" * n + b"}"),
    st.sampled_from([b'{"model": NaN}', b'{"model": "claude-haiku-5-5", "max_tokens": Infinity}',
                     b'\xff\xfe{"model": 1}', b'{"model": "\\udc00\\ud800"}', b'"\\ud83d"']),
)
_ROUTES = ["/v1/messages", "/v1/messages/count_tokens", "/v1/messages/batches", "/fal/flux_dev",
           "/_cfopt/faults"]
_URL: dict[str, str] = {}


@pytest.fixture(scope="module")
def fuzz_server():
    with serve_in_thread(ServerConfig(time_scale=1000)) as url:
        with httpx.Client(timeout=30) as client:   # one keep-alive connection for every example
            yield url, client


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(_ROUTES), body=_raw,
       content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_every_body_on_every_route_gets_a_4xx_in_the_apis_shape_or_an_answer(fuzz_server, route,
                                                                            body, content_type):
    url, client = fuzz_server
    r = client.post(f"{url}{route}", content=body,
                    headers={**KEY, **({"content-type": content_type} if content_type else {})})
    assert r.status_code < 500, (route, body[:80], r.text[:200])
    if r.status_code >= 400:
        shape = r.json()
        if route.startswith("/fal/"):
            assert isinstance(shape["detail"], str)
        else:
            assert shape["type"] == "error" and shape["error"]["type"] and shape["error"]["message"]
    assert r.headers.get("connection") != "close"


def test_after_the_fuzzing_one_connection_served_it_all_and_no_internal_error(fuzz_server):
    url, client = fuzz_server
    s = client.get(f"{url}/_cfopt/stats", headers=KEY).json()
    assert s["internal_errors"] == 0 and s["requests"] >= 200
    assert s["connections_opened"] == 1   # no answer closed the connection


def test_an_unexpected_error_is_a_500_that_says_connection_close(serve, monkeypatch):
    url = serve(ServerConfig(time_scale=1000))

    def broken(*a, **kw):
        raise RuntimeError("a bug that quotes the body: sk-secret")
    monkeypatch.setattr(anthropic_routes, "parse_message", broken)
    with httpx.Client(timeout=10) as client:
        r = client.post(f"{url}/v1/messages", headers=KEY, json=HAIKU)
        assert r.status_code == 500 and r.headers["connection"] == "close"
        assert r.json() == {"type": "error", "error": {"type": "api_error",
                                                       "message": "internal server error"},
                            "request_id": r.headers["request-id"]}
        monkeypatch.undo()
        # The client knew not to reuse the connection: the next request simply works.
        assert client.post(f"{url}/v1/messages", headers=KEY, json=HAIKU).status_code == 200
    s = stats(url)
    assert s["internal_errors"] == 1 and s["connections_opened"] == 3


def test_malformed_http_gets_400_in_anthropic_shape_and_connection_close(serve):
    url = serve(ServerConfig(time_scale=1000))
    with socket.create_connection(_hostport(url), timeout=10) as sock:
        sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        reply = _read_all(sock)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"connection: close" in head.lower()
    assert json.loads(body)["error"]["type"] == "invalid_request_error"


def _read_all(sock, limit_s=10.0):
    sock.settimeout(limit_s)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


# -- slow clients and clients that leave ----------------------------------------------------------
@pytest.mark.parametrize("part", ["header", "body", "slowloris"])
def test_slow_clients_get_408_with_connection_close(serve, part):
    url = serve(ServerConfig(time_scale=1000, header_timeout_s=0.5, body_timeout_s=0.5))
    t0 = time.perf_counter()
    with socket.create_connection(_hostport(url), timeout=10) as sock:
        if part == "header":
            sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n")    # and nothing more
        elif part == "body":
            sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: k\r\n"
                         b"anthropic-version: 2023-06-01\r\n"
                         b"Content-Length: 100\r\n\r\n{\"model\":")
        else:   # one byte of the head every 0.1 s: every byte is in time, the head is not
            for byte in b"POST /v1/messages HTTP/1.1\r\nHost: slow\r\n":
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                time.sleep(0.1)
        reply = _read_all(sock)
    took = time.perf_counter() - t0
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408") and b"connection: close" in head.lower(), reply[:200]
    assert json.loads(body)["error"]["type"] == "timeout_error"
    assert 0.45 < took < 5
    s = stats(url)
    which = "body_timeout" if part == "body" else "header_timeout"
    assert s["unanswered"][which] == 1 and "500" not in s["by_status"]


def test_a_client_that_leaves_is_counted_as_a_disconnect_not_a_500(serve):
    url = serve(ServerConfig(time_scale=1))        # a real-time answer: seconds away
    body = json.dumps(dict(HAIKU, max_tokens=300)).encode()
    for _ in range(3):
        with socket.create_connection(_hostport(url), timeout=10) as sock:
            sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: k\r\n"
                         b"anthropic-version: 2023-06-01\r\n"
                         b"Content-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            time.sleep(0.1)                         # the server is working on it; the client goes
    with httpx.Client(timeout=30) as client:        # a stream abandoned half way
        with client.stream("POST", f"{url}/v1/messages", headers=KEY,
                           json=dict(HAIKU, max_tokens=300, stream=True)) as r:
            next(r.iter_bytes())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        s = stats(url)
        if s["unanswered"]["client_disconnect"] == 4:
            break
        time.sleep(0.2)
    assert s["unanswered"]["client_disconnect"] == 4
    assert s["by_status"].get("500") is None and s["internal_errors"] == 0
    page = httpx.get(f"{url}/metrics").text   # Prometheus counts them by the same reason
    assert 'route="messages",status="client_disconnect"} 4.0' in page and 'status="500"' not in page


# -- memory: batches and fal results expire -------------------------------------------------------
def _batch(n, tag):
    return {"requests": [{"custom_id": f"{tag}-{i}", "params": HAIKU} for i in range(n)]}


def test_batches_and_fal_results_expire_after_their_retention(serve):
    url = serve(ServerConfig(time_scale=100, batch_retention_s=60.0, fal_retention_s=60.0))
    clock = lambda: stats(url)["clock_s"]   # noqa: E731  (simulated seconds)
    with httpx.Client(timeout=30, headers=KEY) as c:
        t0 = clock()
        batch = c.post(f"{url}/v1/messages/batches", json=_batch(2, "a")).json()
        job = c.post(f"{url}/fal/flux_dev", json={"prompt": "a red bicycle"}).json()
        assert c.get(f"{url}/v1/messages/batches/{batch['id']}").status_code == 200
        assert clock() - t0 < 60, "the machine is too slow for this test's 0.6 s"
        gone = {}
        deadline = time.monotonic() + 20
        while len(gone) < 2 and time.monotonic() < deadline:   # 60 simulated s: 0.6 s of wall
            time.sleep(0.1)
            for name, path in (("batch", f"/v1/messages/batches/{batch['id']}"),
                               ("fal", job["response_url"].split(url)[1])):
                if name not in gone and c.get(f"{url}{path}").status_code == 404:
                    gone[name] = clock() - t0
        assert set(gone) == {"batch", "fal"} and gone["batch"] >= 60
        assert c.get(f"{url}/v1/messages/batches").json()["data"] == []
        assert stats(url)["retained"] == {"batches": 0, "batch_requests": 0, "fal_jobs": 0}


def test_retained_work_is_capped_however_much_comes_in(serve):
    url = serve(ServerConfig(time_scale=1000, max_retained=50))
    with httpx.Client(timeout=30, headers=KEY) as c:
        ids = [c.post(f"{url}/v1/messages/batches", json=_batch(3, f"b{i}")).json()["id"]
               for i in range(60)]
        for i in range(80):
            c.post(f"{url}/fal/flux_dev", json={"prompt": f"bicycle {i}"})
        kept = stats(url)["retained"]
        assert kept["batch_requests"] <= 50 and kept["batches"] == 16 and kept["fal_jobs"] == 50
        assert c.get(f"{url}/v1/messages/batches/{ids[0]}").status_code == 404   # oldest went
        assert c.get(f"{url}/v1/messages/batches/{ids[-1]}").status_code == 200


# -- /_cfopt/* behind the key, capped ----------------------------------------------------------------
def test_cfopt_routes_need_the_key_and_the_fault_plan_is_capped(serve):
    url = serve(ServerConfig(time_scale=1000, api_key="sk-right", max_pending_faults=150))
    right, wrong = {"x-api-key": "sk-right"}, {"x-api-key": "sk-wrong"}
    for method, path in (("GET", "/_cfopt/stats"), ("GET", "/_cfopt/health"),
                         ("POST", "/_cfopt/faults")):
        for headers in ({}, wrong):
            r = httpx.request(method, f"{url}{path}", headers=headers, json={"fail_next": []})
            assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    fault = lambda **body: httpx.post(f"{url}/_cfopt/faults", headers=right, json=body)  # noqa: E731
    assert fault(fail_next=["overloaded"] * 101).status_code == 400          # 100 per call
    assert fault(fail_next=["overloaded"] * 100).status_code == 200
    r = fault(fail_next=["overloaded"] * 51)                                  # 150 waiting at most
    assert r.status_code == 400 and "at most 150" in r.json()["error"]["message"]
    for bad in (-1, 1e9, "soon", True, None):
        assert fault(fail_next=["overloaded"], retry_after_s=bad).status_code == 400, bad
    assert httpx.post(f"{url}/_cfopt/faults", headers={**right, "content-type": "application/json"},
                      content=b'{"fail_next": ["overloaded"], "retry_after_s": NaN}').status_code == 400
    assert fault(fail_next=[{"kind": 1}]).status_code == 400
    assert sum(map(len, stats(url, right)["pending_faults"].values())) == 100


def test_cli_serve_requires_the_api_key_it_was_given():
    proc = subprocess.Popen([sys.executable, "-m", "cfopt.cli", "serve", "--port", "0",
                             "--time-scale", "1000", "--api-key", "sk-cli-only", "--log-level",
                             "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "sk-cli-only" not in line and "api_key='***'" in line
        url = line.split()[4]
        assert httpx.post(f"{url}/v1/messages", headers=KEY, json=HAIKU).status_code == 401
        assert httpx.post(f"{url}/v1/messages", headers={"x-api-key": "sk-cli-only",
                                                          "anthropic-version": "2023-06-01"},
                          json=HAIKU).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
