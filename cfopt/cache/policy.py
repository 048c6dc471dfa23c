"""How long each layer keeps each kind of answer, and which layer is asked first.

Faster layers keep entries for less time: memory is small and per process, Redis is shared,
the CDN holds generated media that never goes stale. Text may go stale (facts, prices), so it
is kept for less time than media; photo search results drift as Unsplash's library changes and
are kept at most ``photo_max_s``.

>>> TTLPolicy().ttl("memory", "text"), TTLPolicy().ttl("cdn", "image")
(300.0, 2073600.0)
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import ConfigError

__all__ = ["TTLPolicy", "STRATEGIES", "layer_order"]

STRATEGIES: dict[str, tuple[str, ...]] = {
    "memory-first": ("memory", "disk", "redis", "cdn"),
    "redis-first": ("redis", "memory", "disk", "cdn"),   # a fleet shares one view first
    "cdn-first": ("cdn", "memory", "disk", "redis"),     # media is served from the edge
}


@dataclass(frozen=True, slots=True)
class TTLPolicy:
    """Seconds each layer keeps a text answer; media lasts ``media_factor`` times longer."""

    memory: float = 300.0
    disk: float = 3_600.0
    redis: float = 3_600.0
    cdn: float = 86_400.0
    media_factor: float = 24.0
    photo_max_s: float = 3_600.0

    def __post_init__(self) -> None:
        values = (self.memory, self.disk, self.redis, self.cdn, self.media_factor, self.photo_max_s)
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 for v in values):
            raise ConfigError(f"every TTL and factor must be a positive number: {self!r}")
        if not (self.memory <= self.redis <= self.cdn and self.memory <= self.disk):
            raise ConfigError("TTLs must grow away from the caller: memory <= disk, "
                              f"memory <= redis <= cdn; got {self!r}")

    def with_memory(self, seconds: float) -> "TTLPolicy":
        """This policy with memory keeping text ``seconds``; a slower layer whose TTL is shorter
        is raised to match, since TTLs grow away from the caller.

        >>> TTLPolicy().with_memory(7200).disk
        7200
        """
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ConfigError(f"the memory TTL must be positive seconds, got {seconds!r}")
        return replace(self, memory=seconds, disk=max(self.disk, seconds),
                       redis=max(self.redis, seconds), cdn=max(self.cdn, seconds))

    def ttl(self, layer: str, kind: str) -> float:
        """Return the seconds ``layer`` keeps a result of ``kind``."""
        try:
            base = float(getattr(self, layer)) if layer in STRATEGIES["memory-first"] else None
        except AttributeError:
            base = None
        if base is None:
            raise ConfigError(f"unknown layer {layer!r}; known: memory, disk, redis, cdn")
        if kind == "photo":
            return min(base, self.photo_max_s)
        if kind in ("image", "video", "audio"):
            return base * self.media_factor
        return base


def layer_order(strategy: str, names: list[str]) -> list[str]:
    """Return ``names`` in the order ``strategy`` asks them (unknown layers last)."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    rank = {name: i for i, name in enumerate(STRATEGIES[strategy])}
    return sorted(names, key=lambda n: rank.get(n, len(rank)))
