"""Prices, models, speeds and rate limits, loaded from ``cfopt/data/catalog.toml``.

Two price profiles ship: ``list-2026`` (``DEFAULT_PROFILE``: the real list prices of December
2026, Claude's copied from the ``genai-prices`` package) and ``exercise`` (the ContentFlow
exercise's 2024-era table, one price per token in and out). Every figure in the file carries its
source. A call's cost is computed here, once, from the provider's usage figures:

>>> catalog = load_catalog()
>>> catalog.profile, catalog.cost("sonnet", Usage(input_tokens=1_000, output_tokens=500))
('list-2026', 0.007)
>>> load_catalog("exercise").cost("claude-sonnet-5-5", Usage(input_tokens=1_000, output_tokens=500))
0.0045

Long prompts can change the price of every token of a request (``TextPrice.long``), and a video
clip is priced by its duration and resolution:

>>> catalog.cost("haiku", Usage(input_tokens=150_000, output_tokens=1_000))   # over 100k: 5x
0.0775
>>> catalog.cost("video_5s", Usage(videos=1, video_seconds=9.0, video_clips=((9, "1080p"),)))
4.0

Speeds come at three levels (``SPEEDS``) for sensitivity analysis:

>>> [load_catalog(speeds=s).model("haiku")["ttft_s"] for s in SPEEDS]
[0.6, 0.9, 1.7]
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
    "PriceCatalog", "load_catalog", "PROFILES", "DEFAULT_PROFILE", "SPEEDS", "DEFAULT_SPEEDS",
    "megapixels", "clip_usage",
]

PROFILES = ("list-2026", "exercise")
DEFAULT_PROFILE = "list-2026"      # the one default price profile, everywhere
SPEEDS = ("optimistic", "median", "pessimistic")
DEFAULT_SPEEDS = "median"


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
    video_clips: tuple[tuple[int, str], ...] = ()   # (seconds, resolution) of each clip
    audio_minutes: float = 0.0
    requests: int = 0                         # photo searches
    billable_requests: int = 0                # photo searches past the free allowance

    def __post_init__(self) -> None:
        # JSON round trips (cache codecs) give lists back: keep one form, hashable and comparable.
        object.__setattr__(self, "video_clips", tuple((int(s), str(r)) for s, r in self.video_clips))

    def __add__(self, other: "Usage") -> "Usage":
        if not isinstance(other, Usage):
            return NotImplemented
        tier = self.service_tier if self.service_tier == other.service_tier else "mixed"
        values = {f: getattr(self, f) + getattr(other, f) for f in _NUMERIC_USAGE_FIELDS}
        return Usage(service_tier=tier, **values)

    def split(self, n: int) -> tuple["Usage", ...]:
        """``n`` shares that add up to this usage exactly: one per answer of a call that
        answered ``n`` requests (a grouped or merged call). Counts go evenly, the remainder to
        the first shares; media clips to the first share.

        >>> [u.output_tokens for u in Usage(input_tokens=10, output_tokens=7).split(3)]
        [3, 2, 2]
        >>> sum(Usage(input_tokens=10, output_tokens=7).split(3), Usage()) == Usage(10, 7)
        True
        """
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"a usage splits into 1 or more shares, got {n!r}")
        shares: list[dict[str, Any]] = [{} for _ in range(n)]
        for f in _NUMERIC_USAGE_FIELDS:
            v = getattr(self, f)
            if f == "video_clips":
                for k in range(n):
                    shares[k][f] = v if k == 0 else ()
            elif isinstance(v, int):
                q, r = divmod(v, n)
                for k in range(n):
                    shares[k][f] = q + (k < r)
            else:
                for k in range(n):
                    shares[k][f] = v / n
        return tuple(Usage(service_tier=self.service_tier, **share) for share in shares)

    @property
    def prompt_tokens(self) -> int:
        """Every input token of the request: uncached, cache writes and cache reads."""
        return (self.input_tokens + self.cache_creation_input_tokens
                + self.cache_creation_1h_input_tokens + self.cache_read_input_tokens)


_NUMERIC_USAGE_FIELDS = tuple(f for f in Usage.__dataclass_fields__ if f != "service_tier")


def megapixels(width: int, height: int) -> int:
    """Billed megapixels of one image: its pixel count in millions, rounded up (at least 1)."""
    if width <= 0 or height <= 0:
        raise ConfigError(f"image size must be positive, got {width}x{height}")
    return max(1, math.ceil(width * height / 1_000_000))


def clip_usage(info: "ModelInfo", seconds: int | None = None, resolution: str | None = None) -> Usage:
    """The usage of one video clip of ``info`` (its default duration and resolution if not given)."""
    sec = info["default_duration"] if seconds is None else seconds
    res = info["default_resolution"] if resolution is None else resolution
    return Usage(videos=1, video_seconds=float(sec), video_clips=((sec, res),))


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model: its id, provider, kind (text, image, video, audio, photo), status and figures.

    ``aliases`` are every name cfopt resolves (its ``nicknames`` such as "haiku" and the API's
    aliases); ``api_names`` only the id and the aliases the real API accepts.
    """

    id: str
    provider: str
    kind: str
    tier: str | None
    aliases: tuple[str, ...]
    figures: dict[str, Any] = field(repr=False, compare=False)
    source: str = field(default="", repr=False)
    status: str = "active"          # active | legacy | deprecated
    api_aliases: tuple[str, ...] = field(default=(), repr=False)

    def __getitem__(self, key: str) -> Any:
        return self.figures[key]

    @property
    def api_names(self) -> tuple[str, ...]:
        """The names the real API accepts for this model: its id, then its API aliases."""
        return (self.id, *self.api_aliases)


_PRICE_KEYS = ("input_per_mtok", "output_per_mtok", "cache_write_5m_per_mtok",
               "cache_write_1h_per_mtok", "cache_read_per_mtok")


@dataclass(frozen=True, slots=True)
class TextPrice:
    """A text model's prices per million tokens; ``long`` replaces them all past ``above_tokens``."""

    input_per_mtok: float
    output_per_mtok: float
    cache_write_5m_per_mtok: float = 0.0
    cache_write_1h_per_mtok: float = 0.0
    cache_read_per_mtok: float = 0.0
    batch: float = 1.0                      # Message Batches multiplier on every price
    long: "TextPrice | None" = field(default=None, repr=False)
    above_tokens: int | None = None          # prompt size past which ``long`` applies
    source: str = field(default="", repr=False)

    @classmethod
    def from_toml(cls, v: dict[str, Any], where: str) -> "TextPrice":
        missing = [k for k in _PRICE_KEYS if k not in v]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)}")
        long = v.get("long")
        if long is not None and "above_tokens" not in long:
            raise ConfigError(f"{where}.long: missing above_tokens")
        return cls(*(float(v[k]) for k in _PRICE_KEYS), batch=float(v.get("batch", 1.0)),
                   long=cls.from_toml(long, f"{where}.long") if long is not None else None,
                   above_tokens=int(long["above_tokens"]) if long is not None else None,
                   source=v.get("source", ""))

    def for_prompt(self, prompt_tokens: int) -> "TextPrice":
        """The prices that apply to a request whose prompt counts ``prompt_tokens``."""
        if self.long is not None and self.above_tokens is not None and prompt_tokens > self.above_tokens:
            return self.long
        return self


@dataclass(frozen=True, slots=True)
class MediaPrice:
    """A media model's price: per ``unit``; a ``clip`` is scaled by duration and resolution."""

    unit: str   # image | megapixel | video | clip | second | minute
    price: float
    source: str = field(default="", repr=False)
    duration_factor: dict[int, float] = field(default_factory=dict, repr=False)
    resolution_factor: dict[str, float] = field(default_factory=dict, repr=False)

    def clip(self, seconds: int, resolution: str) -> float:
        """The price of one clip of ``seconds`` at ``resolution``."""
        try:
            return self.price * self.duration_factor[int(seconds)] * self.resolution_factor[resolution]
        except KeyError:
            raise ConfigError(f"no price for a {seconds} s clip at {resolution}; priced: "
                              f"{sorted(self.duration_factor)} s at {', '.join(self.resolution_factor)}") from None


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
                "clip": "video_clips", "second": "video_seconds", "minute": "audio_minutes"}


def _speed(value: Any, speeds: str) -> Any:
    """A figure given per speed level ({optimistic, median, pessimistic}) at ``speeds``."""
    if isinstance(value, dict) and set(value) == set(SPEEDS):
        return float(value[speeds])
    return value


class PriceCatalog:
    """One price profile of the catalog, with the models and rate tiers it prices."""

    def __init__(self, data: dict[str, Any], profile: str = DEFAULT_PROFILE,
                 rate_tier: str | None = None, speeds: str | None = None) -> None:
        profiles = data.get("profiles", {})
        if profile not in profiles:
            raise ConfigError(f"unknown price profile {profile!r}; known: {', '.join(profiles)}")
        self.speeds = speeds or data["meta"].get("default_speeds", DEFAULT_SPEEDS)
        if self.speeds not in SPEEDS:
            raise ConfigError(f"unknown speeds {self.speeds!r}; known: {', '.join(SPEEDS)}")
        p = profiles[profile]
        self.profile = profile
        self.as_of: str = str(p["as_of"])
        self.description: str = p.get("description", "")
        self.source: str = p.get("source", "")
        self.meta: dict[str, Any] = dict(data["meta"])
        self.models: dict[str, ModelInfo] = {}
        self._names: dict[str, str] = {}
        for mid, m in data["models"].items():
            figures = {k: _speed(v, self.speeds) for k, v in m.items()}
            api = tuple(m.get("api_aliases", ()))
            info = ModelInfo(mid, m["provider"], m["kind"], m.get("tier"),
                             (*m.get("nicknames", ()), *api), figures, m.get("source", ""),
                             m.get("status", "active"), api)
            self.models[mid] = info
            for name in (mid, *info.aliases):
                if self._names.setdefault(name, mid) != mid:
                    raise ConfigError(f"model name {name!r} is used by {self._names[name]!r} and {mid!r}")
        self.text = {k: TextPrice.from_toml(v, f"profiles.{profile}.text.{k}")
                     for k, v in p.get("text", {}).items()}
        self.media = {k: MediaPrice(v["unit"], float(v["price"]), v["source"],
                                    {int(d): float(f) for d, f in v.get("duration_factor", {}).items()},
                                    {r: float(f) for r, f in v.get("resolution_factor", {}).items()})
                      for k, v in p.get("media", {}).items()}
        ph = p["photo"]
        self.photo = PhotoPrice(ph["free_per_hour"], ph["hard_limit_per_hour"],
                                ph["price_after_free"], ph["source"])
        b = p["budgets"]
        self.budgets = Budgets(b["daily_usd"], b["monthly_usd"], b["source"])
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
        return (f"PriceCatalog(profile={self.profile!r}, as_of={self.as_of!r}, "
                f"rate_tier={self.rate_tier!r}, speeds={self.speeds!r})")

    def model(self, name: str) -> ModelInfo:
        """The model called ``name`` (its id or an alias such as ``"haiku"``)."""
        try:
            return self.models[self._names[name]]
        except KeyError:
            raise ConfigError(f"unknown model {name!r}; known: {', '.join(sorted(self.models))}") from None

    def text_models(self, *, include_inactive: bool = False) -> list[ModelInfo]:
        """The priced text models, cheapest first: the active ones (the default choice), or all."""
        return sorted((self.models[m] for m in self.text
                       if include_inactive or self.models[m].status == "active"),
                      key=lambda m: self.text[m.id].output_per_mtok)

    def premium(self, kind: str) -> str | None:
        """The most expensive active model of ``kind`` priced here (text: per output token)."""
        if kind == "text":
            models = self.text_models()
            return models[-1].id if models else None
        priced = [m for m in self.models.values() if m.kind == kind and m.status == "active"
                  and (m.id in self.media or kind == "photo")]
        if not priced:
            return None
        return max(priced, key=lambda m: self.media[m.id].price if m.id in self.media else 0.0).id

    def rate_class(self, model: str) -> str:
        """The bucket of per-minute limits ``model`` draws from (models of a class share it)."""
        info = self.model(model)
        return info.figures.get("rate_class") or info.tier or info.id

    def rate_limit(self, model: str) -> RateLimit:
        cls = self.rate_class(model)
        if cls not in self.rate_limits:
            raise ConfigError(f"rate tier {self.rate_tier!r} has no limits for {cls!r}")
        return self.rate_limits[cls]

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
        if price.unit == "clip":
            return round(sum(price.clip(sec, res) for sec, res in usage.video_clips), 12)
        return round(getattr(usage, _MEDIA_UNITS[price.unit]) * price.price, 12)

    def _text_cost(self, model_id: str, u: Usage) -> float:
        base = self.text.get(model_id)
        if base is None:
            raise ConfigError(f"profile {self.profile!r} has no price for {model_id!r}")
        # A long prompt moves every token of the request to the long-context prices.
        p = base.for_prompt(u.prompt_tokens)
        cost = (u.input_tokens * p.input_per_mtok + u.output_tokens * p.output_per_mtok
                + u.cache_creation_input_tokens * p.cache_write_5m_per_mtok
                + u.cache_creation_1h_input_tokens * p.cache_write_1h_per_mtok
                + u.cache_read_input_tokens * p.cache_read_per_mtok) / 1e6
        if u.service_tier == "batch":
            cost *= base.batch
        return round(cost, 12)

    def rows(self) -> list[dict[str, Any]]:
        """The price table as plain rows (for a DataFrame in a notebook), each with its source."""
        out: list[dict[str, Any]] = []
        names = {"input_per_mtok": "1M input tokens", "output_per_mtok": "1M output tokens",
                 "cache_write_5m_per_mtok": "1M cache-write tokens (5 min)",
                 "cache_write_1h_per_mtok": "1M cache-write tokens (1 h)",
                 "cache_read_per_mtok": "1M cache-read tokens"}
        for mid, t in self.text.items():
            for key, unit in names.items():
                out.append({"model": mid, "provider": "anthropic", "unit": unit,
                            "price_usd": getattr(t, key), "source": t.source})
                if t.long is not None:
                    out.append({"model": mid, "provider": "anthropic",
                                "unit": f"{unit}, prompt over {t.above_tokens:,}",
                                "price_usd": getattr(t.long, key), "source": t.source})
        for mid, m in self.media.items():
            unit = m.unit
            if m.unit == "clip":
                sec = min(m.duration_factor)
                res = min(m.resolution_factor, key=m.resolution_factor.__getitem__)
                unit = f"{sec} s clip at {res}"
            out.append({"model": mid, "provider": "fal", "unit": unit, "price_usd": m.price,
                        "source": m.source})
        out.append({"model": "unsplash-search", "provider": "unsplash",
                    "unit": f"request past {self.photo.free_per_hour}/hour",
                    "price_usd": self.photo.price_after_free, "source": self.photo.source})
        return out


def _catalog_text(path: str | Path | None) -> str:
    if path is not None:
        return Path(path).read_text(encoding="utf-8")
    return resources.files("cfopt").joinpath("data/catalog.toml").read_text(encoding="utf-8")


@lru_cache(maxsize=32)
def _load(path: str | None, profile: str, rate_tier: str | None, speeds: str | None) -> PriceCatalog:
    text = _catalog_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path or 'catalog.toml'}: {e}") from None
    return PriceCatalog(data, profile, rate_tier, speeds)


def load_catalog(profile: str = DEFAULT_PROFILE, *, rate_tier: str | None = None,
                 speeds: str | None = None, path: str | Path | None = None) -> PriceCatalog:
    """The catalog for ``profile`` (``list-2026`` or ``exercise``) at ``speeds``, read once and kept."""
    return _load(str(path) if path is not None else None, profile, rate_tier, speeds)
