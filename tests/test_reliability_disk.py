"""A damaged disk cache is found, moved aside, rebuilt, counted, and never served from.

Issue 17: truncated, garbage-header or foreign SQLite files disabled the disk layer for good
(every later operation failed, the file was never rebuilt), and bytes edited inside an entry
were served as they were.
"""
from __future__ import annotations

import os
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from cfopt.cache import DiskLayer
from cfopt.cache.layers.disk import KEEP_QUARANTINED
from cfopt.clock import VirtualClock
from cfopt.pipeline import Pipeline, PipelineConfig
from cfopt.workload import load


def _filled(path, n=40):
    layer = DiskLayer(path, clock=VirtualClock())
    values = {f"key-{i}": f"VALUE-{i:04d}-".encode() * 20 for i in range(n)}
    for key, value in values.items():
        assert layer.set(key, value, ttl=3600)
    layer.close()   # the last connection checkpoints the WAL into the file
    return values


def _aside(path):
    return sorted(p for p in os.listdir(path.parent) if ".corrupt-" in p and not p.endswith(("-wal", "-shm")))


def _truncate(path):
    os.truncate(path, os.path.getsize(path) // 2)


def _garbage_header(path):
    with open(path, "r+b") as f:
        f.write(b"this is not an SQLite header at all" * 3)


def _foreign(path):
    os.remove(path)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (name TEXT, password TEXT)")
    db.execute("INSERT INTO users VALUES ('ann', 'secret')")
    db.commit()
    db.close()


@pytest.mark.parametrize("damage", [_truncate, _garbage_header, _foreign],
                         ids=["truncated", "garbage header", "foreign SQLite"])
def test_a_damaged_file_is_moved_aside_rebuilt_and_counted(tmp_path, damage):
    path = tmp_path / "cache.sqlite"
    values = _filled(path)
    damage(path)
    layer = DiskLayer(path, clock=VirtualClock())
    st = layer.stats
    assert st.corruptions == 1 and st.failures == 0 and st.entries == 0
    assert len(_aside(path)) == 1                        # kept for a look, never deleted at once
    assert all(layer.get(k) is None for k in values)     # nothing of the old file is served
    assert layer.set("new", b"fresh", ttl=60) and layer.get("new") == b"fresh"
    if damage is _foreign:   # another program's database is moved, not destroyed
        moved = sqlite3.connect(tmp_path / _aside(path)[0])
        assert moved.execute("SELECT name FROM users").fetchall() == [("ann",)]
        moved.close()


def test_an_empty_file_and_a_pre_checksum_cache_are_rebuilt_without_counting_corruption(tmp_path):
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    old = tmp_path / "old.sqlite"
    db = sqlite3.connect(old)   # the schema before checksums (application_id 0)
    db.execute("CREATE TABLE entries (ns TEXT, key TEXT, value BLOB, expires_at REAL, size INTEGER, "
               "used REAL, PRIMARY KEY (ns, key)) WITHOUT ROWID")
    db.execute("CREATE TABLE totals (ns TEXT PRIMARY KEY, n INTEGER, b INTEGER)")
    db.execute("INSERT INTO entries VALUES ('cfopt', 'k', x'00', 1e12, 1, 0)")
    db.commit()
    db.close()
    for path in (empty, old):
        layer = DiskLayer(path, clock=VirtualClock())
        assert layer.get("k") is None and layer.stats.corruptions == 0 and _aside(path) == []
        assert layer.set("k", b"v", ttl=60) and layer.get("k") == b"v"


def test_bytes_edited_inside_an_entry_are_never_served(tmp_path):
    path = tmp_path / "cache.sqlite"
    values = _filled(path)
    data = bytearray(path.read_bytes())
    at = data.index(b"VALUE-0007-")
    data[at + 6] ^= 0x01                                  # "0007" -> "1007": a plausible answer
    path.write_bytes(bytes(data))
    layer = DiskLayer(path, clock=VirtualClock())
    assert layer.get("key-7") is None
    assert layer.stats.corruptions == 1 and layer.stats.entries == len(values) - 1
    assert all(layer.get(k) == v for k, v in values.items() if k != "key-7")


@pytest.mark.parametrize("damage", [_truncate, _garbage_header], ids=["truncated", "garbage header"])
def test_a_file_damaged_while_open_never_serves_a_wrong_answer_and_is_set_aside(tmp_path, damage):
    path = tmp_path / "cache.sqlite"
    layer = DiskLayer(path, clock=VirtualClock())
    values = {f"k{i}": os.urandom(300) for i in range(200)}
    for key, value in values.items():
        layer.set(key, value, ttl=600)
    layer._run(lambda db: db.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
    damage(path)   # under the open connection (which may still hold pages in its cache)
    for i in range(3):
        for key, value in values.items():
            assert layer.get(key) in (None, value)       # never raises, never a wrong answer
        layer.set(f"more-{i}", b"x", ttl=60)
    layer.close()
    again = DiskLayer(path, clock=VirtualClock())      # the next open finds the damage
    assert again.stats.corruptions + layer.stats.corruptions >= 1 and _aside(path)
    assert again.set("after", b"ok", ttl=60) and again.get("after") == b"ok"


def test_only_the_newest_damaged_files_are_kept(tmp_path):
    path = tmp_path / "cache.sqlite"
    for _ in range(KEEP_QUARANTINED + 2):
        _filled(path, n=2)
        _garbage_header(path)
        DiskLayer(path, clock=VirtualClock()).close()
    assert len(_aside(path)) == KEEP_QUARANTINED


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                      min_size=1, max_size=12),
       cut=st.none() | st.floats(0.05, 1.0))
def test_any_damage_to_the_file_never_serves_a_wrong_answer(tmp_path_factory, edits, cut):
    path = tmp_path_factory.mktemp("fuzz") / "cache.sqlite"
    values = _filled(path, n=30)
    data = bytearray(path.read_bytes())
    for where, byte in edits:
        data[int(where * len(data))] = byte
    if cut is not None:
        data = data[: int(cut * len(data))]
    path.write_bytes(bytes(data))
    layer = DiskLayer(path, clock=VirtualClock())
    for key, value in values.items():
        got = layer.get(key)
        assert got is None or got == value, key
    assert layer.set("after", b"ok", ttl=60) and layer.get("after") == b"ok"
    layer.close()


def test_a_replay_on_a_truncated_cache_answers_exactly_as_a_clean_run(tmp_path):
    requests = load("datasets/tiny.jsonl")
    path = tmp_path / "shared.sqlite"
    Pipeline(PipelineConfig(), seed=3, disk_path=str(path)).run(requests)   # fills the file
    _truncate(path)
    damaged = Pipeline(PipelineConfig(), seed=3, disk_path=str(path)).run(requests)
    clean = Pipeline(PipelineConfig(), seed=3, disk_path=str(tmp_path / "fresh.sqlite")).run(requests)
    fields = lambda run: [(o.source, o.model, o.path, o.response_s, o.completed_s, o.cost_usd,  # noqa: E731
                           o.error) for o in run.outcomes]
    assert fields(damaged) == fields(clean)
    assert damaged.cost_usd == clean.cost_usd and damaged.provider_calls == clean.provider_calls
    assert damaged.cache_layers["disk"]["failures"] == 0 and len(_aside(path)) == 1
    print(f"\ntruncated cache: moved aside, rebuilt; replay of {len(requests)} requests identical to "
          f"a clean run ({clean.provider_calls} provider calls, "
          f"{clean.cache_layers['disk']['hits']} disk hits)")
