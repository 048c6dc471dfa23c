"""A catalog with a tight rate tier for tests that exercise the limiter with few calls.

The real named tiers start at 1,000 requests per minute; a test that fills a bucket with a
handful of calls uses this made-up tier instead (50 RPM; ITPM 50k haiku, 30k sonnet and opus;
OTPM 10k haiku, 8k sonnet and opus: the figures of Anthropic's old Tier 1). Test-only.
"""
from __future__ import annotations

import tomllib
from importlib import resources

from cfopt.pricing import DEFAULT_PROFILE, PriceCatalog

TIGHT = "test-tight"


def tight_catalog(profile: str = DEFAULT_PROFILE) -> PriceCatalog:
    data = tomllib.loads(resources.files("cfopt").joinpath("data/catalog.toml").read_text("utf-8"))
    small = {"rpm": 50, "itpm": 30_000, "otpm": 8_000}
    tier = {cls: dict(small) for cls in data["rate_tiers"]["start"] if cls != "source"}
    for cls in ("haiku-5-5", "haiku-4-5"):
        tier[cls] = {"rpm": 50, "itpm": 50_000, "otpm": 10_000}
    data["rate_tiers"][TIGHT] = tier
    return PriceCatalog(data, profile, rate_tier=TIGHT)


def demo_unsplash_catalog(profile: str = "list-2026") -> PriceCatalog:
    """The catalog of an Unsplash *demo* app: 50 searches an hour (``demo_per_hour``), then 403.

    ContentFlow runs with production access (5,000 an hour); the refusal path is the same at
    any limit, and 50 searches make it testable in a few calls.
    """
    data = tomllib.loads(resources.files("cfopt").joinpath("data/catalog.toml").read_text("utf-8"))
    photo = data["profiles"][profile]["photo"]
    photo["free_per_hour"] = photo["hard_limit_per_hour"] = photo["demo_per_hour"]
    return PriceCatalog(data, profile)
