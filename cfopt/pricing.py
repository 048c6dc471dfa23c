"""Prices, models and rate limits, loaded from ``cfopt/data/catalog.toml``.

Two price profiles ship: ``exercise`` (the default, the exercise's own table) and ``list-2026``
(list prices with input and output priced apart). Every figure in the file carries its source.
A call's cost is computed here, once, from the provider's usage figures:

>>> catalog = load_catalog("exercise")
>>> catalog.cost("claude-sonnet-4-5", Usage(input_tokens=1_000, output_tokens=500))
0.0045
>>> load_catalog("list-2026").cost("sonnet", Usage(input_tokens=1_000, output_tokens=500))
0.0105
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = [
    "Usage", "ModelInfo", "TextPrice", "MediaPrice", "PhotoPrice", "Budgets", "RateLimit",
    "PriceCatalog", "load_catalog", "PROFILES", "DEFAULT_PROFILE", "megapixels",
]

PROFILES = ("exercise", "list-2026")
DEFAULT_PROFILE = "exercise"


@dataclass(frozen=True, slots=True)
class Usage:
    """What a call consumed, in the provider's own billing units (Anthropic's names for text)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0      # prompt-cache writes with the 5-minute TTL
    cache_creation_1h_input_tokens: int = 0   # prompt-cache writes with the 1-hour TTL
    cache_read_input_tokens: int = 0
    service_tier: str = "standard"            # "batch" for the Message Batches API
    images: int = 0
    megapixels: int = 0                       # billed megapixels, each image rounded up
    videos: int = 0
    video_seconds: float = 0.0
    audio_minutes: float = 0.0
    requests: int = 0                         # photo searches
    billable_requests: int = 0                # photo searches past the free allowance

    def __add__(self, other: "Usage") -> "Usage":
        if not isinstance(other, Usage):
            return NotImplemented
        tier = self.service_tier if self.service_tier == other.service_tier else "mixed"
        values = {f: getattr(self, f) + getattr(other, f) for f in _NUMERIC_USAGE_FIELDS}
        return Usage(service_tier=tier, **values)


_NUMERIC_USAGE_FIELDS = tuple(f for f in Usage.__dataclass_fields__ if f != "service_tier")


def megapixels(width: int, height: int) -> int:
    """Billed megapixels of one image: its pixel count in millions, rounded up (at least 1)."""
    if width <= 0 or height <= 0:
        raise ConfigError(f"image size must be positive, got {width}x{height}")
    return max(1, math.ceil(width * height / 1_000_000))


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model: its id, provider, kind (text, image, video, audio, photo) and figures."""

    id: str
    provider: str
    kind: str
    tier: str | None
    aliases: tuple[str, ...]
    figures: dict[str, Any] = field(repr=False, compare=False)
    source: str = field(default="", repr=False)

    def __getitem__(self, key: str) -> Any:
        return self.figures[key]


@dataclass(frozen=True, slots=True)
class TextPrice:
    input_per_mtok: float
    output_per_mtok: float
    source: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class MediaPrice:
    unit: str   # image | megapixel | video | second | minute
    price: float
    source: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class PhotoPrice:
    free_per_hour: int
    hard_limit_per_hour: int    # 0: no hard limit, requests past the free allowance are charged
    price_after_free: float
    source: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class Budgets:
    daily_usd: float
    monthly_usd: float
    source: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Anthropic-style per-minute limits: requests, input tokens, output tokens."""

    rpm: int
    itpm: int
    otpm: int


_MEDIA_UNITS = {"image": "images", "megapixel": "megapixels", "video": "videos",
                "second": "video_seconds", "minute": "audio_minutes"}


class PriceCatalog:
    """One price profile of the catalog, with the models and rate tiers it prices."""

    def __init__(self, data: dict[str, Any], profile: str = DEFAULT_PROFILE,
                 rate_tier: str | None = None) -> None:
        profiles = data.get("profiles", {})
        if profile not in profiles:
            raise ConfigError(f"unknown price profile {profile!r}; known: {', '.join(profiles)}")
        p = profiles[profile]
        self.profile = profile
        self.as_of: str = p["as_of"]
        self.description: str = p.get("description", "")
        self.source: str = p.get("source", "")
        self.models: dict[str, ModelInfo] = {}
        self._names: dict[str, str] = {}
        for mid, m in data["models"].items():
            info = ModelInfo(mid, m["provider"], m["kind"], m.get("tier"),
                             tuple(m.get("aliases", ())), m, m.get("source", ""))
            self.models[mid] = info
            for name in (mid, *info.aliases):
                self._names[name] = mid
        self.text = {k: TextPrice(v["input_per_mtok"], v["output_per_mtok"], v["source"])
                     for k, v in p.get("text", {}).items()}
        self.media = {k: MediaPrice(v["unit"], v["price"], v["source"])
                      for k, v in p.get("media", {}).items()}
        ph = p["photo"]
        self.photo = PhotoPrice(ph["free_per_hour"], ph["hard_limit_per_hour"],
                                ph["price_after_free"], ph["source"])
        b = p["budgets"]
        self.budgets = Budgets(b["daily_usd"], b["monthly_usd"], b["source"])
        d = p.get("discounts", {})
        self.batch_input_discount = float(d.get("batch_input", 0.0))
        self.batch_output_discount = float(d.get("batch_output", 0.0))
        pc = p.get("prompt_cache", {})
        self.cache_write_5m = float(pc.get("write_5m", 1.0))
        self.cache_write_1h = float(pc.get("write_1h", 1.0))
        self.cache_read = float(pc.get("read", 1.0))
        for unit in {m.unit for m in self.media.values()} - _MEDIA_UNITS.keys():
            raise ConfigError(f"profile {profile!r}: unknown media unit {unit!r}")
        # Simulation figures of a provider as a whole (framing tokens, batch timing...).
        self.provider_figures: dict[str, dict[str, Any]] = data.get("provider_figures", {})
        self.rate_tier = rate_tier or data["meta"]["default_rate_tier"]
        tiers = data.get("rate_tiers", {})
        if self.rate_tier not in tiers:
            raise ConfigError(f"unknown rate tier {self.rate_tier!r}; known: {', '.join(tiers)}")
        self.rate_limits = {k: RateLimit(**v) for k, v in tiers[self.rate_tier].items()
                            if isinstance(v, dict)}

    def __repr__(self) -> str:
        return f"PriceCatalog(profile={self.profile!r}, as_of={self.as_of!r}, rate_tier={self.rate_tier!r})"

    def model(self, name: str) -> ModelInfo:
        """The model called ``name`` (its id or an alias such as ``"haiku"``)."""
        try:
            return self.models[self._names[name]]
        except KeyError:
            raise ConfigError(f"unknown model {name!r}; known: {', '.join(sorted(self.models))}") from None

    def text_models(self) -> list[ModelInfo]:
        """The priced text models, cheapest first."""
        return sorted((self.models[m] for m in self.text), key=lambda m: self.text[m.id].output_per_mtok)

    def rate_limit(self, model: str) -> RateLimit:
        return self.rate_limits[self.model(model).tier]

    def cost(self, model: str, usage: Usage) -> float:
        """The cost in USD of ``usage`` on ``model``, under this profile."""
        info = self.model(model)
        if info.kind == "text":
            return self._text_cost(info.id, usage)
        if info.kind == "photo":
            return usage.billable_requests * self.photo.price_after_free
        price = self.media.get(info.id)
        if price is None:
            raise ConfigError(f"profile {self.profile!r} has no price for {info.id!r}")
        return getattr(usage, _MEDIA_UNITS[price.unit]) * price.price

    def _text_cost(self, model_id: str, u: Usage) -> float:
        price = self.text.get(model_id)
        if price is None:
            raise ConfigError(f"profile {self.profile!r} has no price for {model_id!r}")
        per_in, per_out = price.input_per_mtok / 1e6, price.output_per_mtok / 1e6
        input_cost = per_in * (u.input_tokens
                               + u.cache_creation_input_tokens * self.cache_write_5m
                               + u.cache_creation_1h_input_tokens * self.cache_write_1h
                               + u.cache_read_input_tokens * self.cache_read)
        output_cost = per_out * u.output_tokens
        if u.service_tier == "batch":
            input_cost *= 1 - self.batch_input_discount
            output_cost *= 1 - self.batch_output_discount
        return round(input_cost + output_cost, 12)

    def rows(self) -> list[dict[str, Any]]:
        """The price table as plain rows (for a DataFrame in a notebook), each with its source."""
        out: list[dict[str, Any]] = []
        for mid, t in self.text.items():
            out.append({"model": mid, "provider": "anthropic", "unit": "1M input tokens",
                        "price_usd": t.input_per_mtok, "source": t.source})
            out.append({"model": mid, "provider": "anthropic", "unit": "1M output tokens",
                        "price_usd": t.output_per_mtok, "source": t.source})
        for mid, m in self.media.items():
            out.append({"model": mid, "provider": "fal", "unit": m.unit, "price_usd": m.price,
                        "source": m.source})
        out.append({"model": "unsplash-search", "provider": "unsplash",
                    "unit": f"request past {self.photo.free_per_hour}/hour",
                    "price_usd": self.photo.price_after_free, "source": self.photo.source})
        return out


def _catalog_text(path: str | Path | None) -> str:
    if path is not None:
        return Path(path).read_text(encoding="utf-8")
    return resources.files("cfopt").joinpath("data/catalog.toml").read_text(encoding="utf-8")


@lru_cache(maxsize=16)
def _load(path: str | None, profile: str, rate_tier: str | None) -> PriceCatalog:
    text = _catalog_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path or 'catalog.toml'}: {e}") from None
    return PriceCatalog(data, profile, rate_tier)


def load_catalog(profile: str = DEFAULT_PROFILE, *, rate_tier: str | None = None,
                 path: str | Path | None = None) -> PriceCatalog:
    """The catalog for ``profile`` (``exercise`` or ``list-2026``), read once and kept."""
    return _load(str(path) if path is not None else None, profile, rate_tier)
