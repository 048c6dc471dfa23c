"""A dead ``--redis`` is visible in ``cfopt report``: a warning line, and exit 1 with ``--strict``.

Issue 17: with an unreachable Redis the text report said nothing and exited 0; only ``--json``
showed the layer's 218 failures.
"""
from __future__ import annotations

import json

import pytest
from redis_support import free_port

from cfopt.cache.health import tier_warnings
from cfopt.cli import main
from cfopt.workload import load, write_jsonl


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "w.jsonl"
    write_jsonl(load("datasets/tiny.jsonl")[:60], path)
    return str(path)


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_dead_redis_is_a_warning_and_strict_exits_1(workload, capsys, as_json):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    args = ["report", "--workload", workload, "--redis", dead, "--no-progress"] + (["--json"] if as_json else [])
    assert main(args) == 0
    out, err = capsys.readouterr()
    text = err if as_json else out
    assert "warning: cache tier 'redis' never worked" in text and "operations failed" in text
    if as_json:
        report = json.loads(out)   # stdout stays one JSON document
        assert report["details"]["cache_layers"]["redis"]["failures"] > 0
    assert main(args + ["--strict"]) == 1
    print(f"\ndead --redis ({'json' if as_json else 'text'}): " + text.strip().splitlines()[-1])


@pytest.mark.redis
def test_a_healthy_redis_gives_no_warning_and_strict_passes(workload, capsys, redis_url):
    assert main(["report", "--workload", workload, "--redis", redis_url, "--no-progress",
                 "--strict"]) == 0
    assert "warning" not in capsys.readouterr().out


def test_warnings_tell_a_dead_tier_from_a_flaky_one():
    lines = tier_warnings({"memory": {"hits": 5, "misses": 1, "sets": 1, "failures": 0},
                           "disk": {"hits": 3, "misses": 9, "sets": 4, "failures": 2},
                           "redis": {"hits": 0, "misses": 9, "sets": 0, "failures": 18}})
    assert len(lines) == 2
    assert lines[0].startswith("warning: cache tier 'disk' failed part of the time: 2 operations")
    assert lines[1].startswith("warning: cache tier 'redis' never worked: 18 operations")
