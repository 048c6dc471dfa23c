"""What the bounded layer knows about a candidate pair: its features, a calibrated probability that
it is a true match, and per probability band a posterior that judge verdicts keep updating.

- ``pair_features(a, b)``: what differs between two prompts, as numbers, or None when a *hard*
  guard vetoes the pair (a number, a negation, a quoted text, a repeated word, a name, an
  opposite, a pronoun, a question, a moved negation, swapped roles, and in a request of up to
  ``SWAP_TERMS`` content words a template slot filled differently: meaning changes no amount of
  evidence makes safe). The *soft* guards (a short request that changed a word, a topic word, a
  word swapped, a slot in a longer text) become features the model weighs.
- ``PairModel``: logistic regression over those features, fitted on labelled pairs (numpy,
  Newton steps with a small ridge).
- ``Band``: the probability that a candidate in one band of the model's score (or in several
  bands together: ``Band.union``) is a true match, as a posterior on a grid: a Beta prior from
  labelled calibration pairs, then judge verdicts, each right with probability ``accuracy`` (so
  a verdict is weak evidence, and the posterior says so). ``lower``/``upper`` are its one-sided
  credible bounds.
- ``SemanticState``: a model and its bands, saved as JSON (``cfopt/data/semantic_state.json``
  is learned on generated traffic by ``cfopt.cache.calibrate``).

>>> band = Band(correct=400, wrong=0)
>>> round(band.lower(0.95), 3) > 0.99
True
>>> band.observe(False, accuracy=0.85); band.observe(False, accuracy=0.85)
>>> round(band.lower(0.95), 3) < round(Band(correct=400, wrong=0).lower(0.95), 3)
True
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .guards import SHORT_TERMS, SWAP_TERMS, aligned, bag, slots_swapped, topic_changed, veto
from .text import Features, term

__all__ = ["FEATURES", "HARD_GUARDS", "SOFT_GUARDS", "pair_features", "PairModel", "Band", "SemanticState",
           "BAND_EDGES", "DEFAULT_STATE_PATH"]

# Guards whose veto no evidence overrides: each marks a change of meaning, not a rewording.
HARD_GUARDS = frozenset({"numbers", "negation", "quoted", "repeat", "names", "opposite",
                         "function", "question", "scope", "roles"})
FEATURES = ("bias", "score", "best_cover", "unmatched", "swapped", "typos", "reworded",
            "same_words", "same_order", "short", "topic", "slots", "swap", "length", "bigrams",
            "length_gap", "names_shared", "names_differ")
# Bands of the model's probability, finer near 1 where the decisions are. A decision reads a
# band together with all above it (``Band.union``), so thin bands do not starve the bound.
BAND_EDGES = (0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.96, 0.98, 0.99, 1.0)
DEFAULT_STATE_PATH = Path(__file__).resolve().parents[1] / "data" / "semantic_state.json"
_GRID = np.linspace(0.0, 1.0, 4001)[1:-1]   # q in (0, 1): where a band's posterior lives


SOFT_GUARDS = frozenset({"short", "topic", "slots", "swap"})
LONG_TERMS = 15   # above this many content words a text is long: soft guards are evidence


def pair_features(a: Features, b: Features) -> list[float] | None:
    """Return the feature vector of a pair (``FEATURES``), or None when a hard guard vetoes it."""
    fa, fb, typos = aligned(a, b)
    na, nb = len(fa.terms), len(fb.terms)
    shared = len(fa.terms & fb.terms)
    if not shared:
        return None
    # In a request (up to LONG_TERMS content words) every guard is hard, as in the static gate:
    # a changed slot, topic or word is another request. In a longer text, wordings vary and
    # the soft guards become evidence the model weighs.
    if veto(fa, fb, skip=SOFT_GUARDS if max(na, nb) > LONG_TERMS else frozenset()) is not None:
        return None
    slots = slots_swapped(fa.sequence, fb.sequence)
    only_a, only_b = na - shared, nb - shared
    score = min(shared / na, shared / nb)
    reworded = len({w for w in set(fa.tokens) ^ set(fb.tokens)
                    if term(w) is not None and term(w) in fa.terms & fb.terms})
    sa, sb = fa.sequence, fb.sequence
    pairs_a, pairs_b = set(zip(sa, sa[1:])), set(zip(sb, sb[1:]))
    la, lb = len(fa.tokens), len(fb.tokens)
    names = fa.names | fb.names
    return [1.0, score, max(shared / na, shared / nb), math.log1p(only_a + only_b),
            math.log1p(min(only_a, only_b)), float(typos), float(reworded),
            float(fa.tokens == fb.tokens), float(sa == sb),
            float(min(na, nb) < SHORT_TERMS and bag(sa) != bag(sb)),
            float(topic_changed(fa, fb)), float(slots),
            float(bool(only_a and only_b)), math.log(na + nb),
            len(pairs_a & pairs_b) / max(1, min(len(pairs_a), len(pairs_b))),   # phrases kept
            abs(la - lb) / max(la, lb, 1),
            len(fa.names & fb.names) / max(1, len(names)), float(bool(fa.names ^ fb.names))]


@dataclass
class PairModel:
    """Logistic regression over ``FEATURES``: the probability that a pair is a true match."""

    weights: list[float]

    def __post_init__(self) -> None:
        if len(self.weights) != len(FEATURES):
            raise ValueError(f"a PairModel needs {len(FEATURES)} weights, got {len(self.weights)}")
        self._w = np.asarray(self.weights, dtype=float)

    def probability(self, x: Sequence[float] | None) -> float:
        """Return the model's probability for one feature vector (0.0 when vetoed)."""
        if x is None:
            return 0.0
        z = float(self._w @ np.asarray(x, dtype=float))
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    @classmethod
    def fit(cls, xs: Sequence[Sequence[float] | None], labels: Sequence[bool], *,
            ridge: float = 1.0, steps: int = 60) -> "PairModel":
        """Fit on labelled pairs (vetoed ones, ``None``, are left out: they are never served)."""
        rows = [(x, y) for x, y in zip(xs, labels) if x is not None]
        if not rows or len({y for _, y in rows}) < 2:
            raise ValueError("fitting needs unvetoed pairs of both labels")
        a = np.array([x for x, _ in rows], dtype=float)
        t = np.array([float(y) for _, y in rows])
        w = np.zeros(a.shape[1])
        penalty = ridge * np.eye(len(w))
        penalty[0, 0] = 0.0   # the bias is not pulled to zero
        for _ in range(steps):
            p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -50, 50)))
            step = np.linalg.solve(a.T @ (a * (p * (1 - p))[:, None]) + penalty,
                                   a.T @ (p - t) + penalty @ w)
            w -= step
            if float(np.abs(step).max()) < 1e-9:
                break
        return cls([round(float(v), 6) for v in w])


def band_of(probability: float) -> int:
    """Return the band (index into ``BAND_EDGES``) that ``probability`` falls in."""
    for i in range(len(BAND_EDGES) - 2, -1, -1):
        if probability >= BAND_EDGES[i]:
            return i
    return 0


@dataclass
class Band:
    """The chance that a candidate of one score band is a true match: prior counts, verdicts."""

    correct: float = 0.0     # labelled calibration pairs in the band that matched ...
    wrong: float = 0.0       # ... and that did not
    said_same: int = 0       # judge verdicts since: "the cached answer serves this request"
    said_different: int = 0
    accuracy: float = field(default=0.85, repr=False)   # the judge's, set by ``observe``
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def observe(self, same: bool, *, accuracy: float) -> None:
        """Count one judge verdict, right with probability ``accuracy``."""
        if same:
            self.said_same += 1
        else:
            self.said_different += 1
        self.accuracy = accuracy
        self._cache.clear()

    def _cdf(self) -> np.ndarray:
        cdf = self._cache.get("cdf")
        if cdf is None:
            q, p = _GRID, self.accuracy
            log = (self.correct * np.log(q) + self.wrong * np.log1p(-q)
                   + self.said_same * np.log(p * q + (1 - p) * (1 - q))
                   + self.said_different * np.log((1 - p) * q + p * (1 - q)))
            dens = np.exp(log - log.max())
            cdf = self._cache["cdf"] = np.cumsum(dens) / dens.sum()
        return cdf

    def lower(self, confidence: float) -> float:
        """The probability of a true match that the evidence exceeds with ``confidence``."""
        key = ("lower", confidence)
        if key not in self._cache:
            i = int(np.searchsorted(self._cdf(), 1.0 - confidence))
            self._cache[key] = float(_GRID[min(i, len(_GRID) - 1)])
        return self._cache[key]

    def upper(self, confidence: float) -> float:
        """The probability of a true match that the evidence stays under with ``confidence``."""
        key = ("upper", confidence)
        if key not in self._cache:
            i = int(np.searchsorted(self._cdf(), confidence))
            self._cache[key] = float(_GRID[min(i, len(_GRID) - 1)])
        return self._cache[key]

    @classmethod
    def union(cls, bands: Sequence["Band"]) -> "Band":
        """The posterior for candidates of all ``bands`` together: their counts added up."""
        out = cls(sum(b.correct for b in bands), sum(b.wrong for b in bands),
                  sum(b.said_same for b in bands), sum(b.said_different for b in bands))
        out.accuracy = bands[0].accuracy if bands else out.accuracy
        return out

    def mean(self) -> float:
        """The posterior mean: the expected share of true matches in the band."""
        cdf = self._cdf()
        dens = np.diff(np.concatenate(([0.0], cdf)))
        return float(dens @ _GRID)


@dataclass
class SemanticState:
    """What the bounded layer starts from: a pair model and, per band, labelled counts."""

    model: PairModel
    bands: list[tuple[float, float]]     # (correct, wrong) per band of BAND_EDGES
    source: str = ""                     # what it was learned on

    def __post_init__(self) -> None:
        if len(self.bands) != len(BAND_EDGES) - 1:
            raise ValueError(f"a SemanticState needs {len(BAND_EDGES) - 1} bands, got {len(self.bands)}")

    @classmethod
    def learn(cls, xs: Sequence[Sequence[float] | None], labels: Sequence[bool], *,
              source: str = "") -> "SemanticState":
        """Fit the model on all pairs; count the bands on out-of-fold scores (two folds: each
        half scored by a model fitted on the other half), so no pair grades its own fit."""
        xs, labels = list(xs), list(labels)
        counts = [[0, 0] for _ in range(len(BAND_EDGES) - 1)]
        for fold in (0, 1):
            fit = PairModel.fit(xs[1 - fold::2], labels[1 - fold::2])
            for x, y in zip(xs[fold::2], labels[fold::2]):
                if x is not None:
                    counts[band_of(fit.probability(x))][0 if y else 1] += 1
        return cls(PairModel.fit(xs, labels), [(c, w) for c, w in counts], source)

    def save(self, path: str | Path) -> None:
        data = {"source": self.source, "features": list(FEATURES), "band_edges": list(BAND_EDGES),
                "weights": self.model.weights, "bands": [list(b) for b in self.bands]}
        Path(path).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path = DEFAULT_STATE_PATH) -> "SemanticState":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("features") != list(FEATURES) or data.get("band_edges") != list(BAND_EDGES):
            raise ValueError(f"{path}: learned for other features or bands; re-learn it "
                             "(python -m cfopt.cache.calibrate)")
        return cls(PairModel(data["weights"]), [tuple(b) for b in data["bands"]], data.get("source", ""))
