"""Quality scores: how much of the premium model's quality each model keeps, per complexity.

The figures are published benchmark scores, cited in ``[quality]`` of ``cfopt/data/catalog.toml``;
a model's score at a complexity level is its benchmark score as a share of its benchmark's premium
model's, computed here, never typed in. Accuracy benchmarks (``scale = "ratio"``, the default)
divide; arena ratings (``scale = "elo"``) use twice the expected win rate, see ``elo_share``.
Text models are scored against ``premium`` (Claude Opus), image models against ``flux_dev``.
``[quality.proxies]`` scores a model without published figures as another (a labelled assumption).
``QualityBar`` says how much of that quality a task of each quality label needs.

>>> q = load_quality()
>>> q.premium, q.score("claude-opus-5-5", "high"), q.score("claude-haiku-5-5", "medium")
('claude-opus-5-5', 1.0, 0.9061)
>>> q.score("claude-haiku-5-5", "low"), q.premium_of("flux_schnell"), q.score("flux_schnell", "low")
(0.9141, 'flux_dev', 0.8692)
>>> QualityBar().need("critical")
0.99
"""
from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..errors import ConfigError

__all__ = ["COMPLEXITIES", "QUALITIES", "QualityBar", "QualityTable", "elo_share", "load_quality"]

COMPLEXITIES = ("low", "medium", "high")
QUALITIES = ("low", "standard", "critical")
SCALES = ("ratio", "elo")
_NOT_MODELS = frozenset({"complexity", "source", "premium", "scale"})   # a benchmark's other keys


@dataclass(frozen=True, slots=True)
class QualityBar:
    """The share of the premium model's quality each task quality level needs (0 to 1)."""

    low: float = 0.90
    standard: float = 0.95
    critical: float = 0.99

    def __post_init__(self) -> None:
        for name in QUALITIES:
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ConfigError(f"QualityBar.{name} must lie in [0, 1], got {v!r}")
        if not self.low <= self.standard <= self.critical:
            raise ConfigError(f"QualityBar must satisfy low <= standard <= critical, got {self}")

    def need(self, quality: str) -> float:
        """The bar for a task of ``quality`` (low, standard or critical)."""
        return getattr(self, quality)


@dataclass(frozen=True, slots=True)
class QualityTable:
    """Each model's quality relative to its premium model, per complexity level."""

    premium: str                     # the text premium model: the default for unlisted models
    scores: Mapping[str, Mapping[str, float]] = field(repr=False, hash=False)
    sources: tuple[str, ...] = field(default=(), repr=False)
    premiums: Mapping[str, str] = field(default_factory=dict, repr=False, hash=False)

    def score(self, model: str, complexity: str) -> float:
        """The share of its premium model's quality ``model`` keeps at ``complexity``."""
        try:
            return self.scores[model][complexity]
        except KeyError:
            raise ConfigError(f"no quality score for {model!r} at {complexity!r} complexity; "
                              f"scored models: {', '.join(self.scores)}") from None

    def premium_of(self, model: str) -> str:
        """The model ``model`` is scored against: ``premium`` unless its benchmark names another."""
        return self.premiums.get(model, self.premium)


def elo_share(rating: float, premium_rating: float) -> float:
    """Twice the expected win rate of ``rating`` against ``premium_rating``, capped at 1.

    An Elo rating has an arbitrary zero, so a ratio of two ratings means nothing; the expected
    win rate depends only on their difference. A model as good as the premium one keeps 1.0.

    >>> elo_share(1000, 1000), elo_share(1400, 1000), round(elo_share(1000, 1400), 4)
    (1.0, 1.0, 0.1818)
    """
    return min(1.0, 2.0 / (1.0 + 10.0 ** ((premium_rating - rating) / 400.0)))


def load_quality(path: str | Path | None = None) -> QualityTable:
    """Read ``[quality]`` from the catalog and turn benchmark figures into relative scores."""
    return _load_quality(None if path is None else str(path))


@lru_cache(maxsize=8)
def _load_quality(path: str | None) -> QualityTable:
    text = (Path(path).read_text(encoding="utf-8") if path is not None else
            resources.files("cfopt").joinpath("data/catalog.toml").read_text(encoding="utf-8"))
    q = tomllib.loads(text).get("quality")
    if not q:
        raise ConfigError(f"{path or 'catalog.toml'} has no [quality] section")
    premium = q["premium"]
    scores: dict[str, dict[str, float]] = {}
    premiums: dict[str, str] = {}
    sources = []
    for name, bench in q.get("benchmarks", {}).items():
        complexity, scale = bench.get("complexity"), bench.get("scale", "ratio")
        top_model = bench.get("premium", premium)
        levels = COMPLEXITIES if complexity == "all" else (complexity,)
        if complexity != "all" and complexity not in COMPLEXITIES:
            raise ConfigError(f"quality benchmark {name!r}: bad complexity {complexity!r} "
                              f"(one of {', '.join(COMPLEXITIES)} or all)")
        if scale not in SCALES:
            raise ConfigError(f"quality benchmark {name!r}: scale must be one of "
                              f"{', '.join(SCALES)}, got {scale!r}")
        top = bench.get(top_model)
        if not top:
            raise ConfigError(f"quality benchmark {name!r}: no score for its premium {top_model!r}")
        for model, value in bench.items():
            if model in _NOT_MODELS:
                continue
            if premiums.setdefault(model, top_model) != top_model:
                raise ConfigError(f"quality benchmark {name!r}: {model!r} is scored against "
                                  f"{premiums[model]!r} elsewhere, not {top_model!r}")
            share = value / top if scale == "ratio" else elo_share(value, top)
            for level in levels:
                scores.setdefault(model, {})[level] = round(share, 4)
        sources.append(f"{name} ({complexity}): {bench.get('source', '')}")
    # A model without published figures may be scored as another one: an assumption the catalog
    # labels in [quality.proxies] (e.g. a new generation scored as its tier's predecessor).
    proxies = dict(q.get("proxies", {}))
    if proxies:
        sources.append(f"proxies: {proxies.pop('source', '')}")
    for model, like in proxies.items():
        if like not in scores:
            raise ConfigError(f"quality proxy {model!r} -> {like!r}: {like!r} has no score")
        scores[model] = dict(scores[like])
        premiums[model] = premium
    for model, have in scores.items():
        if set(have) != set(COMPLEXITIES):
            raise ConfigError(f"quality for {model!r} misses {set(COMPLEXITIES) - set(have)}")
    return QualityTable(premium, scores, tuple(sources),
                        {m: p for m, p in premiums.items() if p != premium})
