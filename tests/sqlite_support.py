"""A SQLite connection that refuses writes, as a read-only database file does.

Tests run as root, and root writes to a file whatever its mode, so a chmod cannot make the
disk layer's file read-only; patching ``sqlite3.connect`` with this class can.
"""
from __future__ import annotations

import sqlite3

REAL_CONNECT = sqlite3.connect


class ReadOnlyConnection:
    """Read queries pass through; anything that writes fails as SQLite's read-only error."""

    def __init__(self, *a, **k):
        self._db = REAL_CONNECT(*a, **k)

    def execute(self, sql, *args):
        if not sql.lstrip().upper().startswith(("SELECT", "PRAGMA")):
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return self._db.execute(sql, *args)

    def executescript(self, sql):
        return None

    def close(self):
        self._db.close()
