"""Issue 8, key hygiene: a planted API key never shows in logs, reprs, exceptions or reports.

The server side (access log, error bodies) is covered by
tests/test_server.py::test_planted_key_never_reaches_logs_or_bodies; this file covers the
clients, the load tester, the configs, a ``cfopt report`` run and the stored notebooks.
"""
from __future__ import annotations

import contextlib
import glob
import io
import json
import logging
import os
import re
import traceback

import pytest

from cfopt.bonus.loadtest import LoadTestConfig, run_loadtest
from cfopt.cache.layers.redis import RedisLayer
from cfopt.latency.client import AsyncCfoptClient, CfoptClient
from cfopt.errors import CfoptError
from cfopt.server.config import ServerConfig

PLANTED = "sk-ant-PLANTED-5c0ffee-reliability"
ROOT = os.path.join(os.path.dirname(__file__), "..")
CLOSED = "http://127.0.0.1:1"    # nothing listens on port 1: every call fails fast


def _all_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


def _logged(caplog) -> str:
    return "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records)


def test_clients_never_show_the_key_in_reprs_exceptions_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    seen = []
    with CfoptClient(CLOSED, api_key=PLANTED, timeout=1.0) as client:
        seen.append(repr(client))
        for call in (lambda: client.messages(model="claude-haiku-5-5", prompt="hi", max_tokens=8),
                     lambda: client.count_tokens(model="claude-haiku-5-5", prompt="hi")):
            with pytest.raises(Exception) as info:
                call()
            seen.append(_all_text(info.value))
    seen.append(repr(AsyncCfoptClient(CLOSED, api_key=PLANTED)))
    assert len(seen) == 4 and "***" in seen[0]
    assert not [s for s in seen if PLANTED in s]
    assert PLANTED not in _logged(caplog)


def test_load_tester_never_shows_the_key(caplog):
    caplog.set_level(logging.DEBUG)
    cfg = LoadTestConfig(url=CLOSED, requests=5, concurrency=2, duration_s=5, timeout_s=1,
                         api_key=PLANTED)
    result = run_loadtest(cfg)
    assert result.error_count == 5
    texts = [repr(cfg), json.dumps(result.as_dict()), result.format()]
    for bad in (dict(requests=0), dict(timeout_s=0), dict(endpoint="nope")):
        with pytest.raises(CfoptError) as info:
            LoadTestConfig(url=CLOSED, api_key=PLANTED, **bad)
        texts.append(_all_text(info.value))
    assert not [t for t in texts if PLANTED in t]
    assert PLANTED not in _logged(caplog)


def test_configs_and_urls_hide_the_key():
    assert PLANTED not in repr(ServerConfig(api_key=PLANTED))
    layer = RedisLayer(f"redis://default:{PLANTED}@127.0.0.1:1/0", timeout_s=0.05)
    try:
        assert PLANTED not in repr(layer)
        assert layer.get("k") is None           # the outage is counted, nothing raised
    finally:
        layer.close()
    with pytest.raises(CfoptError) as info:
        RedisLayer(f"http://default:{PLANTED}@127.0.0.1:1/0")
    assert PLANTED not in _all_text(info.value)


def test_a_report_run_never_shows_the_key(tmp_path, monkeypatch, caplog):
    """``cfopt report --json --html`` with the key in the environment, as a user would have it."""
    from cfopt.cli import main
    caplog.set_level(logging.DEBUG)
    for name in ("ANTHROPIC_API_KEY", "FAL_KEY", "UNSPLASH_ACCESS_KEY", "CFOPT_API_KEY"):
        monkeypatch.setenv(name, PLANTED)
    with open(os.path.join(ROOT, "datasets", "tiny.jsonl")) as f:
        (tmp_path / "w.jsonl").write_text("".join(f.readlines()[:40]))
    html = tmp_path / "report.html"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["report", "--workload", str(tmp_path / "w.jsonl"), "--json",
                     "--html", str(html), "--fault-rate", "0.2"])
    assert code == 0
    report = json.loads(out.getvalue())
    assert report and html.stat().st_size > 0
    for text in (out.getvalue(), err.getvalue(), html.read_text(), _logged(caplog)):
        assert PLANTED not in text


KEY_SHAPE = re.compile(r"\b(sk-[A-Za-z0-9_-]{6,}|fal-[A-Za-z0-9_-]{16,}|Bearer\s+[A-Za-z0-9._-]{16,})")
PLACEHOLDERS = {"sk-demo"}   # the notebooks' documented stand-in key


@pytest.mark.parametrize("folder", ["solutions", "notebooks"])
def test_stored_notebooks_have_no_outputs_and_no_real_looking_keys(folder):
    paths = sorted(glob.glob(os.path.join(ROOT, folder, "*.ipynb")))
    assert paths, f"no notebooks in {folder}/"
    for path in paths:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        nb = json.loads(text)
        outputs = [c for c in nb["cells"] if c["cell_type"] == "code" and c.get("outputs")]
        assert not outputs, f"{path}: {len(outputs)} code cells stored with outputs"
        keys = set(KEY_SHAPE.findall(text)) - PLACEHOLDERS
        assert not keys, f"{path}: key-shaped strings {sorted(keys)}"
        assert PLANTED not in text
