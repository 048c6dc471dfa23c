"""Simulated providers: Claude (Anthropic Messages), fal.ai media, Unsplash photo search."""
from .base import Call, Faults, Provider, Result

__all__ = ["Call", "Faults", "Provider", "Result"]
