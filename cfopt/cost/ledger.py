"""The usage ledger: an append-only file of every budget hold and settlement, kept outside Redis.

Redis keeps the budget counters because it is fast and shared; the ledger keeps the record
from which those counters can be rebuilt when Redis loses them (a restart without
persistence, a failover to a stale replica, an eviction). Each line is one JSON object:

    {"op": "hold",   "prefix": P, "lease": ID, "amount": NANO, "keys": [...], "expires": WALL}
    {"op": "settle", "prefix": P, "lease": ID | null, "actual": NANO,
     "held_keys": [...], "spent_keys": [...]}

A hold line is written once Redis has granted the hold; a settle line is written *before*
Redis is told, so the money a call really cost is on disk even when the settle never reaches
Redis. Several processes may append to one file: each line is one ``write`` on a file opened
with ``O_APPEND``, which the kernel never interleaves for a local file. ``rebuild`` turns the
lines back into counters and the holds still within their lease; ``cfopt budget reconcile``
writes them to Redis.

>>> import os, tempfile
>>> ledger = UsageLedger(os.path.join(tempfile.mkdtemp(), "usage.jsonl"))
>>> ledger.append(op="hold", prefix="b", lease="l1", amount=900, keys=["b:held:daily:2026-11-01"],
...               expires=4e9)
>>> ledger.append(op="settle", prefix="b", lease="l1", actual=300,
...               held_keys=["b:held:daily:2026-11-01"], spent_keys=["b:spent:daily:2026-11-01"])
>>> rebuild(read_ledgers([ledger.path], prefix="b"), now=0.0).counters
{'b:held:daily:2026-11-01': 300, 'b:spent:daily:2026-11-01': 300}
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import ConfigError

__all__ = ["UsageLedger", "Rebuilt", "read_ledgers", "rebuild"]


class UsageLedger:
    """Append budget events to ``path`` (created if missing), one JSON line per event."""

    def __init__(self, path: str | os.PathLike, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync  # True: every line reaches the disk before the call goes on (slower)
        self._fd: int | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"UsageLedger({str(self.path)!r})"

    def append(self, **event: Any) -> None:
        """Write one event as a line; raise ``OSError`` when the file cannot take it."""
        line = json.dumps({"at": round(time.time(), 3), **event}, separators=(",", ":")) + "\n"
        data = line.encode("utf-8")
        with self._lock:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            written = os.write(self._fd, data)
            if written != len(data):  # a full disk: the line is torn, say so
                raise OSError(f"{self.path}: short write ({written} of {len(data)} bytes)")
            if self.fsync:
                os.fsync(self._fd)

    def has_recent(self, prefix: str, since: float) -> bool:
        """Whether any line of ``prefix`` was written after wall time ``since``."""
        if not self.path.exists():
            return False
        return any(e.get("at", 0) >= since for e in read_ledgers([self.path], prefix=prefix))

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def read_ledgers(paths: Iterable[str | os.PathLike], *, prefix: str) -> Iterator[dict[str, Any]]:
    """Yield the events of ``prefix`` from each file in turn.

    A last line without its newline was cut short by a crash and is skipped; any other line
    that is not an event raises ``ConfigError`` naming file and line.
    """
    for path in paths:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                if not raw.endswith(b"\n"):
                    break  # the last line, cut short by a crash: its event never happened
                if not raw.strip():
                    continue
                event = _event(raw, path, number)
                if event.get("prefix") == prefix:
                    yield event


def _event(raw: bytes, path: Any, number: int) -> dict[str, Any]:
    try:
        event = json.loads(raw)
        ok = isinstance(event, dict) and event.get("op") in ("hold", "settle")
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"{path}:{number}: not a usage ledger event")
    return event


@dataclass
class Rebuilt:
    """Counters and live holds rebuilt from a ledger."""

    counters: dict[str, int] = field(default_factory=dict)     # full Redis key -> nano-dollars
    leases: dict[str, tuple[int, list[str], float]] = field(default_factory=dict)  # live holds
    settled: int = 0           # settlements counted
    expired: int = 0           # holds never settled whose lease has run out (not counted)


def rebuild(events: Iterable[dict[str, Any]], *, now: float) -> Rebuilt:
    """Counters as the ledger has them: settled money, plus holds still within their lease."""
    holds: dict[str, dict[str, Any]] = {}
    settled_leases: set[str] = set()
    out = Rebuilt()
    add = lambda key, n: out.counters.__setitem__(key, out.counters.get(key, 0) + n)  # noqa: E731
    for e in events:
        if e["op"] == "hold":
            holds[e["lease"]] = e
            continue
        if e.get("lease"):
            if e["lease"] in settled_leases:
                continue  # sent again after a lost reply: the store counted it once, so do we
            settled_leases.add(e["lease"])
        out.settled += 1
        for key in (*e["held_keys"], *e["spent_keys"]):
            add(key, int(e["actual"]))
    for lease, e in holds.items():
        if lease in settled_leases:
            continue
        if float(e["expires"]) <= now:
            out.expired += 1
            continue
        out.leases[lease] = (int(e["amount"]), list(e["keys"]), float(e["expires"]))
        for key in e["keys"]:
            add(key, int(e["amount"]))
    out.counters = dict(sorted(out.counters.items()))
    return out
