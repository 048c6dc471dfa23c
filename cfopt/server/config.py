"""How a local provider server is set up: one small value object, checked early.

>>> ServerConfig(seed=3, time_scale=100)
ServerConfig(seed=3, profile='list-2026', time_scale=100)
>>> ServerConfig(api_key="sk-planted", faults=Faults(overloaded=0.1), speeds="pessimistic")
ServerConfig(seed=0, profile='list-2026', time_scale=1, faults=Faults(overloaded=0.1), speeds='pessimistic', api_key='***')
>>> check_host("127.0.0.1"), check_host("localhost")
('127.0.0.1', 'localhost')
>>> check_host("0.0.0.0")
Traceback (most recent call last):
cfopt.errors.ConfigError: refusing to listen on '0.0.0.0': not a loopback address; pass allow_remote=True (--allow-remote) to expose the simulated providers to other machines
"""
from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..pricing import DEFAULT_PROFILE, PROFILES, SPEEDS
from ..providers.base import Faults

__all__ = [
    "ServerConfig", "check_host", "is_loopback", "DEFAULT_HOST", "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_BACKLOG", "BATCH_RETENTION_S", "FAL_RETENTION_S",
]

DEFAULT_HOST = "127.0.0.1"
# The Messages API's request size limit: "32 MB" (Anthropic docs, API overview, request size
# limits; the Batches API allows 256 MB, not modelled). Larger bodies get 413 request_too_large.
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_BACKLOG = 1024  # stdlib servers default to 5; 50 concurrent clients then see ReadError
# As the real APIs keep them (checked 2026-12): Message Batches results for 29 days after the
# batch's creation (platform.claude.com/docs/en/build-with-claude/batch-processing); a fal.ai
# queue result for 1 hour after the request completes (fal.ai/docs/inference-api/queue/result).
BATCH_RETENTION_S = 29 * 86400.0
FAL_RETENTION_S = 3600.0


@dataclass(frozen=True, slots=True, repr=False)
class ServerConfig:
    """What the simulated providers behind the server do: seed, prices, speed, faults, limits.

    ``time_scale`` speeds the real clock up: at 100, a 1.2 s time to first token takes 12 ms.
    ``api_key``, when set, is the only key accepted; otherwise any non-empty key is. It never
    appears in the repr. It guards ``/_cfopt/*`` too.

    Slow clients: a request's head must arrive within ``header_timeout_s`` and its body within
    ``body_timeout_s`` (wall seconds), or the server answers 408 and closes the connection.
    Memory: batches are kept ``batch_retention_s`` after creation and fal.ai results
    ``fal_retention_s`` after completion (server-clock seconds, as the real APIs keep them), and
    never more than ``max_retained`` batch requests, nor fal.ai jobs (the oldest go first).
    ``max_pending_faults`` caps the failures ``POST /_cfopt/faults`` may queue.
    """

    seed: int = 0
    profile: str = DEFAULT_PROFILE
    time_scale: float = 1.0
    faults: Faults = field(default_factory=Faults)
    max_body_bytes: int | None = DEFAULT_MAX_BODY_BYTES   # None: the default
    api_key: str | None = field(default=None, repr=False)
    rate_tier: str | None = None  # Anthropic usage tier for the rate limits; None: the catalog's default
    speeds: str | None = None     # model speeds (optimistic, median, pessimistic); None: the catalog's
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    batch_retention_s: float = BATCH_RETENTION_S
    fal_retention_s: float = FAL_RETENTION_S
    max_retained: int = 20_000
    max_pending_faults: int = 1_000

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(f"unknown price profile {self.profile!r}; known: {', '.join(PROFILES)}")
        if not self.time_scale > 0:
            raise ConfigError(f"time_scale must be positive, got {self.time_scale}")
        object.__setattr__(self, "time_scale", float(self.time_scale))
        if self.max_body_bytes is None:
            object.__setattr__(self, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)
        if self.speeds is not None and self.speeds not in SPEEDS:
            raise ConfigError(f"unknown speeds {self.speeds!r}; known: {', '.join(SPEEDS)}")
        if self.max_body_bytes < 1024:
            raise ConfigError(f"max_body_bytes must be at least 1024, got {self.max_body_bytes}")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key.strip()):
            raise ConfigError("api_key, when given, must be a non-empty string")
        for name in ("header_timeout_s", "body_timeout_s", "batch_retention_s", "fal_retention_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a positive, finite number of seconds, got {value!r}")
        for name in ("max_retained", "max_pending_faults"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")

    def __repr__(self) -> str:
        # Only what differs from the defaults, so a notebook shows what matters; never the key.
        parts = [f"seed={self.seed}", f"profile={self.profile!r}", f"time_scale={self.time_scale:g}"]
        if self.faults != Faults():
            changed = ", ".join(f"{f}={getattr(self.faults, f)!r}" for f in Faults.__dataclass_fields__
                                if getattr(self.faults, f) != getattr(Faults(), f))
            parts.append(f"faults=Faults({changed})")
        if self.max_body_bytes != DEFAULT_MAX_BODY_BYTES:
            parts.append(f"max_body_bytes={self.max_body_bytes}")
        if self.rate_tier is not None:
            parts.append(f"rate_tier={self.rate_tier!r}")
        if self.speeds is not None:
            parts.append(f"speeds={self.speeds!r}")
        for name in ("header_timeout_s", "body_timeout_s", "batch_retention_s", "fal_retention_s",
                     "max_retained", "max_pending_faults"):
            if getattr(self, name) != ServerConfig.__dataclass_fields__[name].default:
                parts.append(f"{name}={getattr(self, name)!r}")
        if self.api_key is not None:
            parts.append("api_key='***'")
        return f"ServerConfig({', '.join(parts)})"

    @property
    def api_key_set(self) -> bool:
        return self.api_key is not None


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1 or localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, *, allow_remote: bool = False) -> str:
    """Return ``host`` if the server may listen there; refuse non-loopback hosts unless allowed."""
    if not is_loopback(host) and not allow_remote:
        raise ConfigError(
            f"refusing to listen on {host!r}: not a loopback address; pass allow_remote=True "
            "(--allow-remote) to expose the simulated providers to other machines")
    return host
