"""Quality scores: how much of the premium model's quality each model keeps, per complexity.

The figures are published benchmark scores, cited in ``[quality]`` of ``cfopt/data/catalog.toml``;
a model's score at a complexity level is its benchmark score over the premium model's, computed
here, never typed in. ``QualityBar`` says how much of that quality a task of each quality label
needs.

>>> q = load_quality()
>>> q.premium, q.score("claude-opus-4-5", "high"), q.score("claude-haiku-4-5", "medium")
('claude-opus-4-5', 1.0, 0.9061)
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

from .errors import ConfigError

__all__ = ["COMPLEXITIES", "QUALITIES", "QualityBar", "QualityTable", "load_quality"]

COMPLEXITIES = ("low", "medium", "high")
QUALITIES = ("low", "standard", "critical")


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
    """Each text model's quality relative to ``premium``, per complexity level."""

    premium: str
    scores: Mapping[str, Mapping[str, float]] = field(repr=False, hash=False)
    sources: tuple[str, ...] = field(default=(), repr=False)

    def score(self, model: str, complexity: str) -> float:
        """The share of the premium model's quality ``model`` keeps at ``complexity``."""
        try:
            return self.scores[model][complexity]
        except KeyError:
            raise ConfigError(f"no quality score for {model!r} at {complexity!r} complexity; "
                              f"scored models: {', '.join(self.scores)}") from None


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
    sources = []
    for name, bench in q.get("benchmarks", {}).items():
        level, top = bench["complexity"], bench.get(premium)
        if level not in COMPLEXITIES or not top:
            raise ConfigError(f"quality benchmark {name!r}: bad complexity or no {premium} score")
        for model, value in bench.items():
            if model not in ("complexity", "source"):
                scores.setdefault(model, {})[level] = round(value / top, 4)
        sources.append(f"{name} ({level}): {bench.get('source', '')}")
    for level, rule in q.get("derived", {}).items():
        for levels in scores.values():  # keep gap_factor of the gap measured at rule["from"]
            levels[level] = round(1 - rule["gap_factor"] * (1 - levels[rule["from"]]), 4)
        sources.append(f"{level}: {rule.get('source', '')}")
    for model, levels in scores.items():
        if set(levels) != set(COMPLEXITIES):
            raise ConfigError(f"quality for {model!r} misses {set(COMPLEXITIES) - set(levels)}")
    return QualityTable(premium, scores, tuple(sources))
