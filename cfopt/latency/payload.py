"""Payload compression: gzip what is worth it, and what the bytes cost on the wire.

Responses over ``COMPRESS_THRESHOLD`` characters travel gzipped (``Accept-Encoding: gzip``,
which httpx sends by default); below it gzip's ~20-byte header eats the gain. Sizes here are
real bytes from the real ``gzip`` module. ``transfer_s`` turns bytes into seconds on a link of
``LINK_BPS`` bits per second (an assumption: 50 Mbit/s between ContentFlow's servers and a
provider's edge), which shows why compression matters for large media payloads and hardly at
all for a few kilobytes of text.

>>> c = compress("ContentFlow " * 200)
>>> c.encoding, c.original_size, c.size < 100, decompress(c) == "ContentFlow " * 200
('gzip', 2400, True, True)
>>> round(transfer_s(c.original_size) * 1000, 3), round(transfer_s(c.size) * 1000, 3)
(0.384, 0.008)
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass

__all__ = ["Compressed", "compress", "decompress", "transfer_s", "COMPRESS_THRESHOLD", "LINK_BPS"]

COMPRESS_THRESHOLD = 1_000     # characters; below it gzip's ~20-byte header eats the gain
LINK_BPS = 50_000_000          # assumption: 50 Mbit/s to a provider's edge


@dataclass(frozen=True, slots=True)
class Compressed:
    """A payload as sent: its bytes, their encoding and the real sizes before and after."""

    data: bytes
    encoding: str                 # "gzip" or "identity"
    original_size: int            # bytes of the UTF-8 payload
    size: int

    @property
    def ratio(self) -> float:
        return self.size / self.original_size if self.original_size else 1.0


def compress(data: str | bytes, threshold: int = COMPRESS_THRESHOLD) -> Compressed:
    """Gzip ``data`` when it is longer than ``threshold`` characters and gzip makes it smaller."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(data) > threshold:
        # mtime=0: the same payload gives the same bytes (stable ETags, stable tests)
        packed = gzip.compress(raw, compresslevel=6, mtime=0)
        if len(packed) < len(raw):
            return Compressed(packed, "gzip", len(raw), len(packed))
    return Compressed(raw, "identity", len(raw), len(raw))


def decompress(payload: Compressed) -> str:
    """Return the text a ``Compressed`` payload carries."""
    raw = gzip.decompress(payload.data) if payload.encoding == "gzip" else payload.data
    return raw.decode("utf-8")


def transfer_s(size: int, link_bps: float = LINK_BPS) -> float:
    """Seconds ``size`` bytes take on a link of ``link_bps`` bits per second."""
    return size * 8 / link_bps
