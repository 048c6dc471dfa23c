"""The provider seam: one call in, one result (or one typed error) out.

A ``Call`` says what to ask for; a provider answers with a ``Result`` that carries the content,
the usage figures, the cost computed from them by the catalog, and how long it took. Every
simulated provider has three entry points:

- ``simulate(call)``  decides the outcome at the clock's current time, without waiting;
- ``send(call)``      does the same and lets the clock run for the call's latency;
- ``asend(call)``     the asyncio form of ``send``: concurrent calls overlap in time.

Errors are ``cfopt.errors.ProviderError`` subclasses whose ``after_s`` says how long the call
ran before failing.
"""
from __future__ import annotations

import abc
import contextvars
from dataclasses import dataclass, field
from typing import Callable, Protocol

from ..clock import Clock, VirtualClock
from ..errors import ConfigError, ProviderError
from ..pricing import DEFAULT_PROFILE, PriceCatalog, Usage, load_catalog

__all__ = ["Call", "Result", "Faults", "Provider", "Sender", "DEFAULT_MAX_TOKENS", "ON_UNDER_WAY"]

# What a text call without ``max_tokens`` is capped at, everywhere (keys, budgets, grouping):
# Anthropic requires a cap; 1024 is the one its documentation's examples use.
DEFAULT_MAX_TOKENS = 1024

# Told of a call as soon as a simulated provider has it under way (its timings are decided then),
# and told None if that call is cut off before it ends: a caller that sent copies of one call
# learns when each copy's first token comes (``cfopt.latency.tie``). Set in the sending task's
# context; None: nobody is listening.
ON_UNDER_WAY: contextvars.ContextVar[Callable[["Result"], None] | None] = \
    contextvars.ContextVar("cfopt_on_under_way", default=None)


class Sender(Protocol):
    """The one seam every stage sends through: a provider, ``Providers``, or a wrapper of one."""

    async def asend(self, call: Call) -> "Result": ...


@dataclass(frozen=True, slots=True)
class Call:
    """One provider request. Fields that a kind does not use are ignored by its provider."""

    model: str                       # a catalog model id or alias: "haiku", "flux_dev", ...
    prompt: str
    max_tokens: int | None = None    # text: the output cap (Anthropic requires one; DEFAULT_MAX_TOKENS)
    system: str | None = None        # text: the stable prefix (system prompt)
    cache_system: str | None = None  # text: None, "5m" or "1h": prompt-cache the system prompt
    cache_prefix: str | None = None  # text: prompt-cache this leading part of system + "\n\n" + prompt
    cache_ttl: str | None = None     # text: the TTL of ``cache_prefix`` ("5m" or "1h")
    stop_sequences: tuple[str, ...] = ()  # text: stop where one of these first appears
    batch: bool = False              # text: through the Message Batches API (half price, slow)
    width: int = 1024                # image
    height: int = 1024               # image
    steps: int | None = None         # image: inference steps (model default when None)
    seed: int | None = None          # image: generation seed
    duration_s: int | None = None    # video: clip length in seconds (the model's default when None)
    resolution: str | None = None    # video: "540p", "720p", "1080p" (the model's default when None)
    minutes: float = 1.0             # audio: length of audio to generate
    per_page: int = 10               # photo: results per search page

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ConfigError("Call.prompt must be a non-empty string")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            raise ConfigError(f"Call.max_tokens must be a positive integer, got {self.max_tokens!r}")
        for name in ("cache_system", "cache_ttl"):
            if getattr(self, name) not in (None, "5m", "1h"):
                raise ConfigError(f"Call.{name} must be None, '5m' or '1h', got {getattr(self, name)!r}")
        if self.cache_prefix is not None and (self.cache_ttl is None or not self.cache_prefix.strip()):
            raise ConfigError("Call.cache_prefix needs a non-empty text and a cache_ttl")
        if self.cache_prefix is not None and self.cache_system is not None:
            raise ConfigError("Call.cache_system and Call.cache_prefix are two ways of marking one "
                              "cached prefix: pass one")


@dataclass(frozen=True, slots=True)
class Result:
    """A provider's answer to one call."""

    provider: str                 # "anthropic" | "fal" | "unsplash"
    model: str                    # the catalog model id that answered
    kind: str                     # "text" | "image" | "video" | "audio" | "photo"
    content: str                  # text; the media URL; the photo search JSON
    usage: Usage
    cost_usd: float
    latency_s: float              # from sending to the complete answer
    first_content_s: float        # from sending to the first useful content (TTFT for text)
    started_at: float             # clock time when the call was sent
    request_id: str = ""
    stop_reason: str | None = None    # text: "end_turn" or "max_tokens"
    media_url: str | None = None
    size_bytes: int | None = None
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def finished_at(self) -> float:
        return self.started_at + self.latency_s


@dataclass(frozen=True, slots=True)
class Faults:
    """Error injection: the share of calls that fail each way, and how slow things are.

    Rates are probabilities per call, drawn from the provider's seeded random stream, so the
    same seed fails the same calls.
    """

    rate_limited: float = 0.0     # 429 with retry-after
    overloaded: float = 0.0       # 529
    server_error: float = 0.0     # 500
    timeout: float = 0.0          # no answer within timeout_s
    retry_after_s: float = 2.0    # the retry-after an injected 429 carries
    timeout_s: float = 60.0       # how long a timed-out call hangs before failing
    slowdown: float = 1.0         # multiplies every latency (for slowdown and anomaly demos)

    def __post_init__(self) -> None:
        rates = (self.rate_limited, self.overloaded, self.server_error, self.timeout)
        if any(not 0.0 <= r <= 1.0 for r in rates) or sum(rates) > 1.0:
            raise ConfigError(f"fault rates must lie in [0, 1] and sum to at most 1, got {rates}")
        if self.slowdown <= 0 or self.retry_after_s < 0 or self.timeout_s <= 0:
            raise ConfigError("slowdown and timeout_s must be positive, retry_after_s not negative")

    @property
    def total(self) -> float:
        return self.rate_limited + self.overloaded + self.server_error + self.timeout


class Provider(abc.ABC):
    """A simulated provider on an injected clock, seeded, priced by a catalog."""

    name: str = ""
    kinds: tuple[str, ...] = ()

    def __init__(self, *, seed: int = 0, clock: Clock | None = None,
                 catalog: PriceCatalog | None = None, faults: Faults | None = None) -> None:
        self.seed = seed
        self.clock: Clock = clock if clock is not None else VirtualClock()
        self.catalog = catalog if catalog is not None else load_catalog(DEFAULT_PROFILE)
        self.faults = faults if faults is not None else Faults()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(seed={self.seed}, clock={self.clock!r}, "
                f"profile={self.catalog.profile!r}, faults={self.faults!r})")

    @abc.abstractmethod
    def simulate(self, call: Call) -> Result:
        """Decide the outcome of ``call`` sent now; raise a ``ProviderError`` for a failure."""

    def send(self, call: Call) -> Result:
        """Send ``call`` and wait (on the clock) for its answer."""
        try:
            result = self.simulate(call)
        except ProviderError as e:
            self.clock.sleep(e.after_s)
            raise
        self.clock.sleep(result.latency_s)
        return result

    async def asend(self, call: Call) -> Result:
        """Send ``call`` and await its answer; concurrent calls overlap on the clock."""
        try:
            result = self.simulate(call)
        except ProviderError as e:
            await self.clock.asleep(e.after_s)
            raise
        listener = ON_UNDER_WAY.get()
        if listener is not None:
            listener(result)
        try:
            await self.clock.asleep(result.latency_s)
        except BaseException:
            if listener is not None:
                listener(None)   # cut off under way (a timeout, or its caller closed it)
            raise
        return result
