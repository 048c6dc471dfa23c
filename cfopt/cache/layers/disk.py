"""The disk layer: a persistent cache in one SQLite file, the default second layer.

It needs no server, survives restarts, and several processes can share one file. Entries carry
an absolute expiry time from ``clock`` (wall time by default, since the file outlives the
process). Totals per namespace are kept exact by triggers, so the byte and entry bounds hold
across processes; the least recently used entries go first.

A broken file (deleted, made read-only, disk full) never raises to the caller: the operation
is counted in ``failures`` and answers "miss"; a deleted file is re-created on the next call.

>>> import tempfile, os
>>> from cfopt.clock import VirtualClock
>>> clock = VirtualClock()
>>> layer = DiskLayer(os.path.join(tempfile.mkdtemp(), "cache.sqlite"), clock=clock)
>>> layer.set("k", b"value", ttl=60); layer.get("k")
True
b'value'
>>> clock.advance(61); layer.get("k") is None
True
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable

from ...errors import ConfigError
from .base import CacheLayer, LayerStats

__all__ = ["DiskLayer"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (ns TEXT, key TEXT, value BLOB, expires_at REAL,
    size INTEGER, used REAL, PRIMARY KEY (ns, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_used ON entries (ns, used);
CREATE TABLE IF NOT EXISTS totals (ns TEXT PRIMARY KEY, n INTEGER, b INTEGER);
CREATE TRIGGER IF NOT EXISTS entries_ins AFTER INSERT ON entries BEGIN
    INSERT INTO totals (ns, n, b) VALUES (new.ns, 1, new.size)
    ON CONFLICT (ns) DO UPDATE SET n = n + 1, b = b + new.size; END;
CREATE TRIGGER IF NOT EXISTS entries_upd AFTER UPDATE OF size ON entries BEGIN
    UPDATE totals SET b = b - old.size + new.size WHERE ns = new.ns; END;
CREATE TRIGGER IF NOT EXISTS entries_del AFTER DELETE ON entries BEGIN
    UPDATE totals SET n = n - 1, b = b - old.size WHERE ns = old.ns; END;
"""


class DiskLayer(CacheLayer):
    """A cache layer in a SQLite file, bounded by ``max_entries`` and ``max_bytes``."""

    name = "disk"

    def __init__(self, path: str | os.PathLike = ".cfopt-cache/cache.sqlite", *,
                 max_entries: int = 100_000, max_bytes: int = 512 << 20,
                 clock: Callable[[], float] = time.time, namespace: str = "cfopt",
                 max_value_bytes: int | None = None) -> None:
        for arg, value in (("max_entries", max_entries), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{arg} must be a positive integer, got {value!r}")
        super().__init__(namespace=namespace, max_value_bytes=min(max_value_bytes or max_bytes, max_bytes))
        self.path = Path(path)
        self.max_entries, self.max_bytes, self.clock = max_entries, max_bytes, clock
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._inode: int | None = None
        self._run(lambda db: None)  # open now, so a bad path shows up early as a failure count

    def __repr__(self) -> str:
        return (f"DiskLayer({str(self.path)!r}, max_entries={self.max_entries}, "
                f"max_bytes={self.max_bytes}, namespace={self.namespace!r})")

    # -- connection handling -------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        self._inode = os.stat(self.path).st_ino
        return db

    def _connection(self) -> sqlite3.Connection:
        try:
            gone = os.stat(self.path).st_ino != self._inode
        except OSError:
            gone = True
        if self._db is None or gone:  # a deleted or replaced file is opened afresh
            self.close()
            self._db = self._open()
        return self._db

    def _run(self, op: Callable[[sqlite3.Connection], object], default: object = None) -> object:
        with self._lock:
            try:
                return op(self._connection())
            except (sqlite3.Error, OSError):
                self.failures += 1
                self.close()  # start from a fresh connection next time
                return default

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                try:
                    self._db.close()
                except sqlite3.Error:
                    pass
                self._db = None

    # -- the interface ---------------------------------------------------------------------------
    def get(self, key: str) -> bytes | None:
        self._check_key(key)
        now = self.clock()

        def op(db: sqlite3.Connection) -> bytes | None:
            row = db.execute("SELECT value, expires_at FROM entries WHERE ns=? AND key=?",
                             (self.namespace, key)).fetchone()
            if row is None:
                return None
            if row[1] <= now:
                db.execute("DELETE FROM entries WHERE ns=? AND key=?", (self.namespace, key))
                return None
            db.execute("UPDATE entries SET used=? WHERE ns=? AND key=?", (now, self.namespace, key))
            return bytes(row[0])

        value = self._run(op)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value  # type: ignore[return-value]

    def set(self, key: str, value: bytes, ttl: float) -> bool:
        if not self._check_set(key, value, ttl):
            return False
        data = bytes(value)
        return self._put(key, data, ttl, len(data) + len(key))

    def _put(self, key: str, data: bytes, ttl: float, size: int) -> bool:
        """Store one row whose bounds count ``size`` bytes."""
        now = self.clock()

        def op(db: sqlite3.Connection) -> bool:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ns, key) "
                           "DO UPDATE SET value=excluded.value, expires_at=excluded.expires_at, "
                           "size=excluded.size, used=excluded.used",
                           (self.namespace, key, data, now + ttl, size, now))
                self._evict(db, now)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return True

        stored = bool(self._run(op, False))
        self.sets += stored
        return stored

    def _evict(self, db: sqlite3.Connection, now: float) -> None:
        n, b = self._totals(db)
        if n <= self.max_entries and b <= self.max_bytes:
            return
        db.execute("DELETE FROM entries WHERE ns=? AND expires_at<=?", (self.namespace, now))
        n, b = self._totals(db)
        while n > self.max_entries or b > self.max_bytes:
            # Remove the least recently used entries, a small batch at a time.
            excess = max(1, n - self.max_entries)
            rows = db.execute("SELECT key, size FROM entries WHERE ns=? ORDER BY used LIMIT ?",
                              (self.namespace, excess if n > self.max_entries else 16)).fetchall()
            if not rows:  # totals out of step with the rows (a foreign write): stop, not spin
                break
            for key, size in rows:
                if n <= self.max_entries and b <= self.max_bytes:
                    break
                db.execute("DELETE FROM entries WHERE ns=? AND key=?", (self.namespace, key))
                n, b = n - 1, b - size
                self.evictions += 1

    def _totals(self, db: sqlite3.Connection) -> tuple[int, int]:
        row = db.execute("SELECT n, b FROM totals WHERE ns=?", (self.namespace,)).fetchone()
        return (row[0], row[1]) if row else (0, 0)

    def delete(self, key: str) -> bool:
        self._check_key(key)
        return bool(self._run(lambda db: db.execute(
            "DELETE FROM entries WHERE ns=? AND key=?", (self.namespace, key)).rowcount, 0))

    def delete_matching(self, pattern: str) -> int:
        # SQLite's GLOB has the same * ? [...] syntax as Redis and fnmatch, case-sensitive.
        return int(self._run(lambda db: db.execute(  # type: ignore[arg-type]
            "DELETE FROM entries WHERE ns=? AND key GLOB ?", (self.namespace, pattern)).rowcount, 0))

    def clear(self) -> int:
        return int(self._run(lambda db: db.execute(  # type: ignore[arg-type]
            "DELETE FROM entries WHERE ns=?", (self.namespace,)).rowcount, 0))

    @property
    def stats(self) -> LayerStats:
        def op(db: sqlite3.Connection) -> tuple[int, int]:
            db.execute("DELETE FROM entries WHERE ns=? AND expires_at<=?",
                       (self.namespace, self.clock()))
            return self._totals(db)
        n, b = self._run(op, (0, 0))  # type: ignore[misc]
        return self._stats(n, b, self.max_bytes)
