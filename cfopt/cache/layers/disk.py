"""The disk layer: a persistent cache in one SQLite file, the default second layer.

It needs no server, survives restarts, and several processes can share one file. Entries carry
an absolute expiry time from ``clock`` (wall time by default, since the file outlives the
process). Totals per namespace are kept exact by triggers, so the byte and entry bounds hold
across processes; the least recently used entries go first.

A broken file (deleted, made read-only, disk full) never raises to the caller: the operation
is counted in ``failures`` and answers "miss"; a deleted file is re-created on the next call.

A damaged file is never served from. At open the file must be a cfopt cache (SQLite's
``application_id`` and ``user_version``) that passes ``PRAGMA quick_check``; a truncated file, a
garbage header, another program's database, or one SQLite finds corrupt later, is moved aside
(``cache.sqlite.corrupt-<time>-<pid>``, the last ``KEEP_QUARANTINED`` kept) and a fresh file
is built in its place. Each entry carries a checksum of its namespace, key and value, checked on
every read: an entry whose bytes changed is deleted and answers "miss". Both count in
``stats.corruptions``.

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

import hashlib
import logging
import os
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

from ...errors import ConfigError
from .base import CacheLayer, LayerStats

__all__ = ["DiskLayer", "APPLICATION_ID", "SCHEMA_VERSION", "KEEP_QUARANTINED"]

log = logging.getLogger(__name__)

APPLICATION_ID = 0x63666F70   # "cfop" in SQLite's header: this file is a cfopt cache
SCHEMA_VERSION = 2            # 2: entries carry a checksum
KEEP_QUARANTINED = 3          # damaged files kept for a look, newest first; older ones deleted
_CORRUPT = (11, 26)           # SQLITE_CORRUPT, SQLITE_NOTADB (primary result codes)
_SIDE_FILES = ("", "-wal", "-shm", "-journal")

_SCHEMA = (  # one statement each: they run inside the transaction that builds the file
    """CREATE TABLE IF NOT EXISTS entries (ns TEXT, key TEXT, value BLOB, expires_at REAL,
       size INTEGER, used REAL, crc BLOB, PRIMARY KEY (ns, key)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS entries_used ON entries (ns, used)",
    "CREATE TABLE IF NOT EXISTS totals (ns TEXT PRIMARY KEY, n INTEGER, b INTEGER)",
    """CREATE TRIGGER IF NOT EXISTS entries_ins AFTER INSERT ON entries BEGIN
       INSERT INTO totals (ns, n, b) VALUES (new.ns, 1, new.size)
       ON CONFLICT (ns) DO UPDATE SET n = n + 1, b = b + new.size; END""",
    """CREATE TRIGGER IF NOT EXISTS entries_upd AFTER UPDATE OF size ON entries BEGIN
       UPDATE totals SET b = b - old.size + new.size WHERE ns = new.ns; END""",
    """CREATE TRIGGER IF NOT EXISTS entries_del AFTER DELETE ON entries BEGIN
       UPDATE totals SET n = n - 1, b = b - old.size WHERE ns = old.ns; END""",
)


class _Corrupt(Exception):
    """The file is not a sound cfopt cache; the message says why."""


def _corrupt(e: sqlite3.Error) -> bool:
    return (getattr(e, "sqlite_errorcode", 0) & 0xFF) in _CORRUPT


def _checksum(namespace: str, key: str, value: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=8, person=b"cfopt-disk")
    for part in (namespace.encode(), key.encode("utf-8", "surrogatepass")):
        h.update(len(part).to_bytes(4, "big") + part)   # lengths: no two splits hash alike
    h.update(value)
    return h.digest()


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
        try:
            db = self._checked()
        except _Corrupt as why:
            self._quarantine(str(why))
            db = self._checked()   # a fresh file; if even that fails, the caller counts a failure
        self._inode = os.stat(self.path).st_ino
        return db

    def _checked(self) -> sqlite3.Connection:
        """Connect, check the file is a sound cfopt cache (or new), and set it up."""
        db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        try:
            app_id = self._check(db)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            if app_id == 0:
                db.execute("BEGIN IMMEDIATE")   # one process builds the file; the others wait
                try:
                    if self._check(db) == 0:
                        # New, or a cache from before checksums: nothing to verify, start over.
                        for statement in ("DROP TABLE IF EXISTS entries",
                                          "DROP TABLE IF EXISTS totals", *_SCHEMA):
                            db.execute(statement)
                        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            return db
        except BaseException as e:
            db.close()
            if isinstance(e, sqlite3.DatabaseError) and _corrupt(e):
                raise _Corrupt(str(e)) from None
            raise

    @staticmethod
    def _check(db: sqlite3.Connection) -> int:
        """The file's application id: 0 for a new (or pre-checksum) cache, else ours; raise
        ``_Corrupt`` for anything else, and for a cache that fails SQLite's quick check."""
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if app_id == 0 and tables <= {"entries", "totals"}:
            return 0
        if app_id != APPLICATION_ID:
            raise _Corrupt(f"not a cfopt cache (application_id {app_id:#x}, tables {sorted(tables)})")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise _Corrupt(f"cfopt cache schema {version}, expected {SCHEMA_VERSION}")
        problems = [r[0] for r in db.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise _Corrupt("quick_check: " + "; ".join(problems))
        return app_id

    def _quarantine(self, why: str) -> None:
        """Move the damaged file (and its -wal, -shm) aside; keep the newest few."""
        self.close()
        self.corruptions += 1
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S%f")   # sorts by time; unique per process
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        log.warning("disk cache %s is damaged (%s): moved to %s, starting a fresh one",
                    self.path, why, aside.name)
        for suffix in _SIDE_FILES:
            try:
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
            except FileNotFoundError:
                pass
        aside_files = [p for p in self.path.parent.glob(f"{self.path.name}.corrupt-*")
                       if not p.name.endswith(_SIDE_FILES[1:])]
        aside_files.sort(key=lambda p: p.name, reverse=True)   # the time stamp sorts them
        for stale in aside_files[KEEP_QUARANTINED:]:
            for suffix in _SIDE_FILES:
                Path(f"{stale}{suffix}").unlink(missing_ok=True)

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
            except sqlite3.DatabaseError as e:
                if _corrupt(e):   # damaged while open: set it aside, the next call starts afresh
                    self._quarantine(str(e))
                else:
                    self.close()  # start from a fresh connection next time
                self.failures += 1
                return default
            except OSError:
                self.failures += 1
                self.close()
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
            row = db.execute("SELECT value, expires_at, crc FROM entries WHERE ns=? AND key=?",
                             (self.namespace, key)).fetchone()
            if row is None:
                return None
            value = bytes(row[0]) if isinstance(row[0], (bytes, memoryview)) else None
            if value is None or row[2] != _checksum(self.namespace, key, value):
                self.corruptions += 1   # bytes changed on disk: never served
                db.execute("DELETE FROM entries WHERE ns=? AND key=?", (self.namespace, key))
                return None
            if not isinstance(row[1], float) or row[1] <= now:
                db.execute("DELETE FROM entries WHERE ns=? AND key=?", (self.namespace, key))
                return None
            db.execute("UPDATE entries SET used=? WHERE ns=? AND key=?", (now, self.namespace, key))
            return value

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
                db.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ns, key) "
                           "DO UPDATE SET value=excluded.value, expires_at=excluded.expires_at, "
                           "size=excluded.size, used=excluded.used, crc=excluded.crc",
                           (self.namespace, key, data, float(now + ttl), size, now,
                            _checksum(self.namespace, key, data)))
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
