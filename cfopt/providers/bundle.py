"""All three simulated providers on one clock and one catalog: ``Providers``.

Each provider gets its own seed derived from the bundle's (so adding calls to one never shifts
another's random stream) and its own ``Faults``: one for all, or a mapping by provider name
("anthropic", "fal", "unsplash") or attribute name ("claude", "fal", "unsplash").

>>> from cfopt.providers import Providers, Call
>>> p = Providers(seed=0)
>>> p.for_model("sonnet") is p.claude, p.for_model("flux_schnell") is p.fal
(True, True)
>>> r = p.send(Call("unsplash-search", "coffee"))
>>> r.provider, p.clock.now() == r.latency_s
('unsplash', True)
"""
from __future__ import annotations

from typing import Mapping

from ..clock import Clock, VirtualClock
from ..errors import ConfigError, NotFound
from ..pricing import DEFAULT_PROFILE, PriceCatalog, load_catalog
from .base import Call, Faults, Provider, Result
from .claude import ClaudeProvider
from .fal import FalProvider
from .sampling import derive_seed
from .unsplash import UnsplashProvider

__all__ = ["Providers"]

_ALIASES = {"claude": "anthropic", "anthropic": "anthropic", "fal": "fal", "unsplash": "unsplash"}


class Providers:
    """Claude, fal.ai and Unsplash, simulated, sharing a clock and a price catalog."""

    def __init__(self, seed: int = 0, clock: Clock | None = None, profile: str = DEFAULT_PROFILE,
                 faults: Faults | Mapping[str, Faults] | None = None,
                 rate_tier: str | None = None, speeds: str | None = None,
                 catalog: PriceCatalog | None = None) -> None:
        self.seed = seed
        self.clock: Clock = clock if clock is not None else VirtualClock()
        # ``catalog`` (a PriceCatalog built by hand) replaces profile, rate_tier and speeds.
        self.catalog = catalog if catalog is not None else load_catalog(profile, rate_tier=rate_tier,
                                                                        speeds=speeds)
        per = self._faults_by_provider(faults)
        common = dict(clock=self.clock, catalog=self.catalog)
        self.claude = ClaudeProvider(seed=derive_seed(seed, "anthropic"), faults=per["anthropic"],
                                     **common)
        self.fal = FalProvider(seed=derive_seed(seed, "fal"), faults=per["fal"], **common)
        self.unsplash = UnsplashProvider(seed=derive_seed(seed, "unsplash"), faults=per["unsplash"],
                                         **common)
        self._by_name: dict[str, Provider] = {"anthropic": self.claude, "fal": self.fal,
                                              "unsplash": self.unsplash}

    @staticmethod
    def _faults_by_provider(faults: Faults | Mapping[str, Faults] | None) -> dict[str, Faults | None]:
        if faults is None or isinstance(faults, Faults):
            return dict.fromkeys(("anthropic", "fal", "unsplash"), faults)
        out: dict[str, Faults | None] = dict.fromkeys(("anthropic", "fal", "unsplash"))
        for key, value in faults.items():
            if key not in _ALIASES:
                raise ConfigError(f"faults for unknown provider {key!r}; "
                                  "known: claude (anthropic), fal, unsplash")
            if not isinstance(value, Faults):
                raise ConfigError(f"faults[{key!r}] must be a Faults, got {type(value).__name__}")
            out[_ALIASES[key]] = value
        return out

    def __repr__(self) -> str:
        return (f"Providers(seed={self.seed}, clock={self.clock!r}, profile={self.catalog.profile!r}, "
                f"rate_tier={self.catalog.rate_tier!r}, speeds={self.catalog.speeds!r})")

    def __iter__(self):
        return iter(self._by_name.values())

    def for_model(self, name: str) -> Provider:
        """The provider that serves the model called ``name`` (an id or an alias)."""
        info = self.catalog.models.get(name) or next(
            (m for m in self.catalog.models.values() if name in m.aliases), None)
        if info is None or info.provider not in self._by_name:
            raise NotFound(f"model {name!r} not found; known: {', '.join(sorted(self.catalog.models))}",
                           model=str(name))
        return self._by_name[info.provider]

    def send(self, call: Call) -> Result:
        """Send ``call`` to the provider of its model and wait (on the clock) for the answer."""
        return self.for_model(call.model).send(call)

    async def asend(self, call: Call) -> Result:
        """The asyncio form of ``send``; concurrent calls overlap on the clock."""
        return await self.for_model(call.model).asend(call)
