"""The CDN layer: a content-addressed media store on disk, served as URLs.

Generated media (images, video, audio) is stored once per distinct content, under its SHA-256,
and handed out as a URL (``file://`` by default, or ``base_url`` + digest when a server serves
the folder). A read costs ``edge_latency_s`` on the clock, like a trip to an edge node. ``purge``
removes entries by pattern and deletes blobs no entry refers to any more.

Stock photos are never stored here: Unsplash's terms require hot-linking its images, so only
the photo search JSON is cached, in the other layers (``kinds`` leaves out "photo").

>>> import tempfile
>>> from cfopt.clock import VirtualClock
>>> clock = VirtualClock()
>>> cdn = CDNLayer(tempfile.mkdtemp(), clock=clock, edge_latency_s=0.02)
>>> cdn.set("img-1", b"PNG...", ttl=3600); cdn.url("img-1").startswith("file://")
True
True
>>> cdn.get("img-1"), clock.now()
(b'PNG...', 0.02)
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

from ...clock import Clock, VirtualClock
from ...errors import ConfigError
from .base import MEDIA_KINDS
from .disk import DiskLayer

__all__ = ["CDNLayer"]


class CDNLayer(DiskLayer):
    """Media blobs under ``root/blobs``, an index of key to digest in ``root/index.sqlite``."""

    name = "cdn"
    kinds = MEDIA_KINDS

    def __init__(self, root: str | os.PathLike = ".cfopt-cache/cdn", *,
                 clock: Clock | None = None, edge_latency_s: float = 0.02,
                 base_url: str | None = None, max_entries: int = 100_000,
                 max_bytes: int = 4 << 30, namespace: str = "cfopt",
                 max_value_bytes: int = 256 << 20) -> None:
        if edge_latency_s < 0:
            raise ConfigError(f"edge_latency_s must not be negative, got {edge_latency_s}")
        self.root = Path(root)
        self.clock: Clock = clock if clock is not None else VirtualClock()
        self.edge_latency_s, self.base_url = edge_latency_s, base_url
        super().__init__(self.root / "index.sqlite", max_entries=max_entries, max_bytes=max_bytes,
                         clock=self.clock, namespace=namespace,
                         max_value_bytes=min(max_value_bytes, max_bytes))

    def __repr__(self) -> str:
        return (f"CDNLayer({str(self.root)!r}, edge_latency_s={self.edge_latency_s}, "
                f"max_bytes={self.max_bytes}, namespace={self.namespace!r})")

    def _blob(self, digest: str) -> Path:
        return self.root / "blobs" / digest[:2] / digest

    def _digest(self, key: str) -> str | None:
        hits, misses = self.hits, self.misses
        raw = DiskLayer.get(self, key)
        self.hits, self.misses = hits, misses  # the index look-up is not a layer hit or miss
        return raw.decode("ascii") if raw is not None else None

    def url(self, key: str) -> str | None:
        """Return the URL that serves ``key``'s media, or None when not stored."""
        digest = self._digest(key)
        if digest is None:
            return None
        if self.base_url:
            return f"{self.base_url.rstrip('/')}/{digest}"
        return self._blob(digest).resolve().as_uri()

    def get(self, key: str) -> bytes | None:
        digest = self._digest(key)
        data = None
        if digest is not None:
            try:
                data = self._blob(digest).read_bytes()
            except OSError:  # the blob vanished underneath us: forget the entry
                DiskLayer.delete(self, key)
        if data is None:
            self.misses += 1
            return None
        self.clock.sleep(self.edge_latency_s)
        self.hits += 1
        return data

    def set(self, key: str, value: bytes, ttl: float) -> bool:
        if not self._check_set(key, value, ttl):
            return False
        data = bytes(value)
        digest = hashlib.sha256(data).hexdigest()
        path = self._blob(digest)
        try:
            if not path.exists():  # same content, same file: stored once
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_bytes(data)
                os.replace(tmp, path)  # atomic: a reader never sees half a file
        except OSError:
            self.failures += 1
            return False
        evictions = self.evictions
        stored = self._put(key, digest.encode("ascii"), ttl, len(data))  # counts the set
        if self.evictions != evictions:
            self._collect()
        return stored

    def delete(self, key: str) -> bool:
        removed = DiskLayer.delete(self, key)
        self._collect()
        return removed

    def delete_matching(self, pattern: str) -> int:
        removed = DiskLayer.delete_matching(self, pattern)
        self._collect()
        return removed

    purge = delete_matching

    def clear(self) -> int:
        removed = DiskLayer.clear(self)
        self._collect()
        return removed

    def _collect(self) -> int:
        """Delete blobs that no entry of any namespace refers to; return how many."""
        def op(db: sqlite3.Connection) -> set[str]:
            return {row[0].decode("ascii") for row in db.execute("SELECT DISTINCT value FROM entries")}
        live = self._run(op, None)
        if live is None:
            return 0
        removed = 0
        for path in (self.root / "blobs").glob("??/*"):
            if path.name not in live and ".tmp" not in path.name:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
