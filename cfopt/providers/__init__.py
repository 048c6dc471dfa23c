"""Simulated providers: Claude (Anthropic Messages), fal.ai media, Unsplash photo search.

``Providers`` bundles the three on one clock and one price catalog; each provider is also
usable alone. See ``base`` for the seam (``Call`` in, ``Result`` or a ``ProviderError`` out).
"""
from .base import DEFAULT_MAX_TOKENS, Call, Faults, Provider, Result, Sender
from .bundle import Providers
from .claude import ClaudeProvider
from .fal import FalProvider
from .ratelimit import LimitStatus, RateLimiter, TokenBucket
from .unsplash import UnsplashProvider

__all__ = ["Call", "Faults", "Provider", "Result", "Providers", "ClaudeProvider", "FalProvider",
           "UnsplashProvider", "DEFAULT_MAX_TOKENS", "Sender", "RateLimiter", "TokenBucket", "LimitStatus"]
