"""Issue 8, bad input: hypothesis fuzzing of the public entry points not fuzzed elsewhere.

Each entry point either accepts an input or raises a documented error (``CfoptError`` or
``ValueError``) whose message names what was wrong; anything else (TypeError, KeyError, ...)
fails the test. The number of inputs per entry point is ``max_examples`` below;
docs/RELIABILITY.md quotes them. (The workload loader and the server's parsers are fuzzed in
tests/test_workload_format.py and tests/test_server.py.)
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cfopt.batching import BatchProcessor, Task
from cfopt.cache import CacheManager, MemoryLayer
from cfopt.clock import VirtualClock
from cfopt.cost import CostOptimizer
from cfopt.errors import CfoptError, WorkloadError
from cfopt.monitoring.monitor import PerformanceMonitor
from cfopt.pricing import Usage
from cfopt.providers import Providers, Result
from cfopt.workload import dumps, load, loads

EXAMPLES = {"cost": 300, "cache_get": 300, "cache_set": 200, "batch": 300, "monitor": 300,
            "cli": 150, "workload_line": 300, "workload_file": 100}
TINY = os.path.join(os.path.dirname(__file__), "..", "datasets", "tiny.jsonl")
FAST = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                 HealthCheck.function_scoped_fixture])

# Values of every JSON-ish type, and some that are not JSON at all.
ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30)
    | st.binary(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=6)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=6)
FIELDS = ("type", "prompt", "quality", "priority", "max_tokens", "task")
GOOD = {"type": st.sampled_from(["text", "analysis", "image", "video", "audio", "photo"]),
        "prompt": st.text(min_size=1, max_size=200),
        "quality": st.sampled_from(["low", "standard", "critical"]),
        "priority": st.sampled_from(["low", "medium", "high"]),
        "max_tokens": st.integers(1, 20_000),
        "task": st.sampled_from(["translation", "blog_post", "classification", None])}


@st.composite
def odd_tasks(draw):
    """A task dict whose fields are each a plausible value, an odd value, or missing."""
    task = {}
    for name in FIELDS:
        how = draw(st.sampled_from(["good", "good", "odd", "missing"]))
        if how == "good":
            task[name] = draw(GOOD[name])
        elif how == "odd":
            task[name] = draw(ANY)
    if draw(st.booleans()):
        task[draw(st.text(max_size=8))] = draw(ANY)
    return task


def _documented(e: BaseException) -> None:
    """Fail unless ``e`` is a documented error with a message that says something."""
    assert isinstance(e, (CfoptError, ValueError)), f"undocumented {type(e).__name__}: {e}"
    assert str(e).strip(), f"{type(e).__name__} with an empty message"


OPTIMIZER = CostOptimizer()


@settings(max_examples=EXAMPLES["cost"], **FAST)
@given(odd_tasks())
def test_cost_optimizer_accepts_or_names_the_bad_field(task):
    try:
        choice = OPTIMIZER.select_optimal_model(task)
    except Exception as e:  # noqa: BLE001 - the point is to see which ones
        _documented(e)
        # The message names a field of the task (or the value that was wrong).
        assert any(f in str(e) for f in ("type", "prompt", "quality", "priority", "max_tokens",
                                         "name")), str(e)
        with pytest.raises(type(e)):
            OPTIMIZER.analyze_task(task)
        return
    assert choice.model and OPTIMIZER.analyze_task(task).type == task["type"]


def _result(content: str) -> Result:
    return Result("anthropic", "claude-haiku-5-5", "text", content, Usage(), 0.0, 0.1, 0.05, 0.0,
                  stop_reason="end_turn")


CACHE = CacheManager([MemoryLayer(clock=VirtualClock())])


@settings(max_examples=EXAMPLES["cache_get"], **FAST)
@given(key=ANY, kind=st.sampled_from(["text", "image", "photo"]) | st.text(max_size=10))
def test_cache_manager_get_accepts_or_names_the_key(key, kind):
    try:
        found = CACHE.get(key, kind)
    except Exception as e:  # noqa: BLE001
        _documented(e)
        assert "key" in str(e), str(e)
        return
    assert found.value is None or found.layer == "memory"


@settings(max_examples=EXAMPLES["cache_set"], **FAST)
@given(key=st.text(max_size=50) | ANY, prompt=st.text(max_size=300))
def test_cache_manager_set_then_get_round_trips_any_prompt(key, prompt):
    try:
        stored = CACHE.set(key, _result(prompt))
    except Exception as e:  # noqa: BLE001
        _documented(e)
        assert "key" in str(e), str(e)
        return
    assert stored and CACHE.get(key).value.content == prompt


@settings(max_examples=50, **FAST)
@given(value=ANY)
def test_cache_manager_set_refuses_what_is_not_a_result(value):
    with pytest.raises(CfoptError, match="Result"):
        CACHE.set("k", value)


@settings(max_examples=EXAMPLES["batch"], **FAST)
@given(id=st.text(max_size=12), type=st.text(max_size=10) | GOOD["type"],
       prompt=st.text(max_size=100), priority=st.text(max_size=8) | GOOD["priority"],
       model=st.none() | st.text(max_size=10), max_tokens=st.none() | st.integers())
def test_batch_processor_add_task_accepts_or_names_the_field(id, type, prompt, priority, model,
                                                             max_tokens):
    processor = BatchProcessor(Providers(seed=0))
    try:
        task = Task(id, type, prompt, priority, model, max_tokens)
        processor.add_task(task)
    except Exception as e:  # noqa: BLE001
        _documented(e)
        assert any(f in str(e) for f in ("type", "priority", "max_tokens")), str(e)
        return
    assert processor.pending() == 1
    with pytest.raises(CfoptError, match="already submitted"):
        processor.add_task(task)   # every id gets exactly one result


def test_batch_processor_add_task_names_an_unhashable_id():
    processor = BatchProcessor(Providers(seed=0))
    with pytest.raises(CfoptError, match="id"):
        processor.add_task(Task(["not", "a", "string"], "text", "hello"))  # type: ignore[arg-type]


@settings(max_examples=EXAMPLES["monitor"], **FAST)
@given(metric=st.text(max_size=20),
       values=st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=20),
       t=st.none() | st.floats(0, 1e6), period=st.none() | st.floats(-10, 1e5))
def test_performance_monitor_track_and_get_stats(metric, values, t, period):
    monitor = PerformanceMonitor()
    try:
        for v in values:
            monitor.track(metric, v, t)
    except Exception as e:  # noqa: BLE001
        _documented(e)
        assert repr(metric) in str(e), str(e)
        return
    try:
        stats = monitor.get_stats(metric, period)
    except Exception as e:  # noqa: BLE001
        _documented(e)
        assert "period" in str(e), str(e)
        return
    if values and period is None and metric and stats.count:
        assert stats.count == len(values)
        assert min(values) - 1e-6 <= stats.avg <= max(values) + 1e-6 or math.isnan(stats.avg)


def test_performance_monitor_refuses_a_nan_value():
    monitor = PerformanceMonitor()
    with pytest.raises(CfoptError, match="latency"):
        monitor.track("latency", float("nan"))


# -- the workload loader ------------------------------------------------------------------------
LINE_FIELDS = ("id", "t", "user", "type", "task", "quality", "priority", "max_tokens", "prompt",
               "intent")


@st.composite
def odd_lines(draw):
    """A JSON object of workload fields, each good, odd or missing; sometimes not JSON at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=40))
    obj = {}
    for name in LINE_FIELDS:
        how = draw(st.sampled_from(["good", "good", "odd", "missing"]))
        if how == "good":
            obj[name] = draw(GOOD[name]) if name in GOOD else (
                draw(st.floats(0, 1e4)) if name == "t" else draw(st.text(max_size=8)))
        elif how == "odd":
            obj[name] = draw(JSONISH)
    return json.dumps(obj)


@settings(max_examples=EXAMPLES["workload_line"], **FAST)
@given(odd_lines())
def test_workload_line_accepted_or_refused_naming_the_field(line):
    try:
        request = loads(line)
    except Exception as e:  # noqa: BLE001
        _documented(e)
        assert isinstance(e, WorkloadError), f"{type(e).__name__}: {e}"
        return
    assert loads(dumps(request)) == request


@settings(max_examples=EXAMPLES["workload_file"], **FAST)
@given(st.lists(odd_lines() | st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
                max_size=5))
def test_workload_file_loads_or_names_file_and_line(tmp_path, lines):
    path = tmp_path / "w.jsonl"
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    path.write_bytes(data)
    physical = data.count(b"\n") + 1     # a drawn "line" may itself hold a newline
    try:
        load(path)
    except WorkloadError as e:
        assert str(path) in str(e) and e.line is not None and 1 <= e.line <= physical


# -- the CLI ------------------------------------------------------------------------------------
# Random argv over the commands that neither serve forever (serve), rewrite the kit's
# notebooks (kit build) nor write large files (workload generate). The fuzz runs in a temporary
# directory with no "/" in any token, so anything written lands there.
SAFE_PREFIXES = [[], ["workload"], ["workload", "stats"], ["report"], ["report", "--workload"],
                 ["loadtest", "--url"], ["loadtest", "--url", "http://127.0.0.1:1"], ["grade"]]
TOKENS = st.text(alphabet=st.characters(blacklist_characters="/\\\x00",
                                        blacklist_categories=("Cs",)), max_size=12)
FLAGS = st.sampled_from(["--json", "--seed", "--prices", "--redis", "--only", "--without",
                         "--fault-rate", "--requests", "--concurrency", "--duration", "--timeout",
                         "--endpoint", "--csv", "--jobs", "-h", "--help", "--bogus", "-x",
                         "bad.jsonl", "empty.jsonl", "ok.jsonl", "missing.jsonl", "1", "-1", "0.5", "nan",
                         "2", "health", "messages", "redis:", "exercise"])


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    (tmp_path / "bad.jsonl").write_text('{"t": 0, "type": "text"\n{nope}\n')
    (tmp_path / "empty.jsonl").write_text("")
    with open(TINY) as f:   # five good requests: a report on them takes well under a second
        (tmp_path / "ok.jsonl").write_text("".join(f.readlines()[:5]))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@settings(max_examples=EXAMPLES["cli"], **FAST)
@given(prefix=st.sampled_from(SAFE_PREFIXES),
       rest=st.lists(FLAGS | TOKENS, max_size=6))
def test_cli_random_argv_exits_with_a_status_never_a_traceback(in_tmp, prefix, rest):
    from cfopt.cli import main
    argv = prefix + rest
    if "serve" in argv or "kit" in argv or "generate" in argv:
        return
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:   # argparse: usage errors exit 2, --help exits 0
            code = e.code
    assert code in (0, 1, 2), f"{argv}: exit {code!r}"
    assert "Traceback" not in err.getvalue(), f"{argv}: {err.getvalue()}"
    if code == 2:
        assert err.getvalue().strip(), f"{argv}: exit 2 with nothing said"
