"""Seeded randomness for the simulated providers: stable hashes, jitter and injected faults.

Two kinds of randomness, on purpose:

- *per request*: what a request gets back (its answer, its length, its image URL) comes from a
  stable hash of the seed and the request itself, so the same request always gets the same
  answer whatever came before it. Caches and deduplication depend on that.
- *per call*: what happens to one call (its latency jitter, whether it fails) comes from the
  provider's own ``random.Random(seed)`` stream, like weather: the same seed and the same
  sequence of calls give the same outcomes.

>>> stable_hash("a", 1) == stable_hash("a", 1) != stable_hash("a", 2)
True
>>> 0.0 <= unit_interval(7, "claude", "hello") < 1.0
True
>>> round(jitter(random.Random(0), 0.0), 3)   # no spread: the median itself
1.0
"""
from __future__ import annotations

import hashlib
import math
import random

from ..errors import Overloaded, ProviderError, ProviderTimeout, RateLimited, ServerError
from .base import Faults

__all__ = ["stable_hash", "unit_interval", "derive_seed", "jitter", "draw_fault", "short_id",
           "base62"]

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B62_TABLE = bytes(ord(_B62[i % 62]) for i in range(256))  # byte -> character (a slight bias is fine)


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of ``parts`` that is the same in every process (unlike ``hash()``)."""
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        h.update(repr(p).encode("utf-8"))
        h.update(b"\x1f")  # a separator, so ("ab", "c") and ("a", "bc") differ
    return int.from_bytes(h.digest(), "big")


def unit_interval(*parts: object) -> float:
    """A number in [0, 1) fixed by ``parts``."""
    return stable_hash(*parts) / 2.0**64


def derive_seed(seed: int, name: str) -> int:
    """A seed of its own for the part called ``name``, derived from ``seed``."""
    return stable_hash(seed, name) & 0x7FFF_FFFF


def short_id(length: int, *parts: object) -> str:
    """A base-62 id of ``length`` (at most 64) characters fixed by ``parts`` (request ids, photo ids)."""
    if not 0 < length <= 64:
        raise ValueError(f"short_id length must be 1 to 64, got {length}")
    return base62(hashlib.blake2b(repr(parts).encode("utf-8")).digest()[:length])


def base62(data: bytes) -> str:
    """``data`` as base-62 characters, one per byte (random bytes in, an id out)."""
    return data.translate(_B62_TABLE).decode("ascii")


def jitter(rng: random.Random, sigma: float) -> float:
    """A log-normal factor with median 1 and log-spread ``sigma`` (catalog figures are medians)."""
    return math.exp(sigma * rng.gauss(0.0, 1.0)) if sigma > 0 else 1.0


# How long a failing call runs before the error arrives: (median s, log-spread). A 429 is
# refused at the door; a 529 usually comes fast from the load balancer; a 500 often comes
# after some processing. Medians chosen from experience of the real APIs, not measured.
_FAILURE_AFTER = {"rate_limited": (0.08, 0.4), "overloaded": (0.4, 0.6), "server_error": (1.2, 0.7)}


def draw_fault(rng: random.Random, faults: Faults, *, provider: str, model: str) -> ProviderError | None:
    """The injected error for one call, or None; draws from ``rng`` exactly twice either way.

    A fixed number of draws per call keeps the stream aligned: the same seed fails the same
    call numbers whatever the fault rates are.
    """
    u, v = rng.random(), rng.gauss(0.0, 1.0)
    edge = 0.0
    for kind in ("rate_limited", "overloaded", "server_error", "timeout"):
        edge += getattr(faults, kind)
        if u < edge:
            break
    else:
        return None
    where = dict(provider=provider, model=model)
    if kind == "timeout":
        return ProviderTimeout(f"{provider} {model}: no answer within {faults.timeout_s:g} s",
                               after_s=faults.timeout_s, **where)
    median, sigma = _FAILURE_AFTER[kind]
    after = median * math.exp(sigma * v) * faults.slowdown
    if kind == "rate_limited":
        return RateLimited(f"{provider} {model}: rate limited (injected); retry after "
                           f"{faults.retry_after_s:g} s", retry_after=faults.retry_after_s,
                           after_s=after, **where)
    if kind == "overloaded":
        return Overloaded(f"{provider} {model}: overloaded (injected)", after_s=after, **where)
    return ServerError(f"{provider} {model}: internal server error (injected)", after_s=after, **where)
