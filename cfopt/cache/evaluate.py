"""Measure de-duplication: precision and recall on labelled pairs and on a workload's intents.

Labelled pairs come from two places. MRPC (the Microsoft Research Paraphrase Corpus) is read
where it lies (``CFOPT_MRPC_DIR`` or ``../shared/data/mrpc`` next to the repository), for
evaluation only; where it is absent, ``load_mrpc`` raises ``FileNotFoundError`` and callers
skip. The project's own pairs (``load_pairs``: captions, headlines, forum questions, requests
and news, near misses on purpose, ``tests/data/pairs.tsv``) are split in two fixed halves
(``halves``). Thresholds and states are chosen on train splits and halves and reported on the
others, never tuned on what they are reported on.

``mrpc_curves(train, test)`` measures what notebook 02 plots on MRPC; the last measurement is
saved in ``cfopt/data/mrpc_curves.json`` (``saved_mrpc_curves()``), so a clone without MRPC still
shows the measured curve. ``python -m cfopt.cache.evaluate`` measures again and rewrites it.

>>> pr = precision_recall([0.9, 0.8, 0.3, 0.95], [True, False, True, True], threshold=0.85)
>>> round(pr.precision, 2), round(pr.recall, 2)
(1.0, 0.67)
>>> choose_threshold([0.9, 0.8, 0.3, 0.95], [True, False, True, True], min_precision=0.9)
0.9
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .keys import make_key
from .normalize import normalize_prompt

__all__ = ["Pair", "PR", "WorkloadDedup", "mrpc_dir", "load_mrpc", "load_pairs", "halves",
           "precision_recall", "precision_lower_bound", "choose_threshold", "recall_at_precision",
           "pr_curve", "evaluate_workload", "MIN_PRECISION", "MRPC_CURVES_PATH", "mrpc_curves",
           "saved_mrpc_curves"]

MIN_PRECISION = 0.95  # the operating point: at most 1 wrong answer in 20 semantic hits on train
MRPC_CURVES_PATH = Path(__file__).resolve().parents[1] / "data" / "mrpc_curves.json"


@dataclass(frozen=True, slots=True)
class Pair:
    a: str
    b: str
    paraphrase: bool
    kind: str = ""


@dataclass(frozen=True, slots=True)
class PR:
    """Precision and recall at one threshold, with the counts behind them."""

    threshold: float
    precision: float
    recall: float
    true_pos: int
    false_pos: int
    positives: int


def mrpc_dir() -> Path:
    """Return where MRPC is looked for."""
    env = os.environ.get("CFOPT_MRPC_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data" / "mrpc"


def load_mrpc(split: str, root: str | os.PathLike | None = None) -> list[Pair]:
    """Return the ``split`` ("train" or "test") pairs of MRPC; FileNotFoundError when absent."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = Path(root or mrpc_dir()) / f"msr_paraphrase_{split}.txt"
    pairs = []
    with open(path, encoding="utf-8-sig") as f:   # the file starts with a byte-order mark
        next(f)
        for line in f:
            quality, _id1, _id2, a, b = line.rstrip("\n").split("\t")  # tabs only: raw quotes
            pairs.append(Pair(a, b, quality == "1"))
    return pairs


def load_pairs(path: str | os.PathLike) -> list[Pair]:
    """Read labelled pairs: ``label<TAB>kind<TAB>a<TAB>b`` a line (label 1 or 0), ``#`` comments.

    A malformed line raises ``ValueError`` naming ``file:line``; nothing partial is returned.
    """
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4 or parts[0] not in ("0", "1") or not parts[2] or not parts[3]:
                raise ValueError(f"{path}:{number}: expected label (0 or 1), kind, a, b "
                                 f"separated by tabs, got {line.rstrip()!r}")
            pairs.append(Pair(parts[2], parts[3], parts[0] == "1", parts[1]))
    return pairs


def halves(pairs: Sequence[Pair]) -> tuple[list[Pair], list[Pair]]:
    """Split pairs in two fixed halves by a hash of their text: (train, held out)."""
    out: tuple[list[Pair], list[Pair]] = ([], [])
    for p in pairs:
        out[int(hashlib.sha1(f"{p.a}\t{p.b}".encode()).hexdigest(), 16) % 2].append(p)
    return out


def precision_lower_bound(true_pos: int, false_pos: int, confidence: float = 0.95) -> float:
    """The precision that ``true_pos`` right and ``false_pos`` wrong hits exceed with
    ``confidence`` (one-sided, Beta posterior from a uniform prior)."""
    import numpy as np
    q = np.linspace(0.0, 1.0, 20001)[1:-1]
    log = true_pos * np.log(q) + false_pos * np.log1p(-q)
    cdf = np.cumsum(np.exp(log - log.max()))
    cdf /= cdf[-1]
    return float(q[min(int(np.searchsorted(cdf, 1.0 - confidence)), len(q) - 1)])


def precision_recall(scores: Sequence[float], labels: Sequence[bool], threshold: float) -> PR:
    """Return precision and recall of "score >= threshold" against ``labels``."""
    tp = sum(1 for s, l in zip(scores, labels) if s >= threshold and l)
    fp = sum(1 for s, l in zip(scores, labels) if s >= threshold and not l)
    positives = sum(1 for l in labels if l)
    return PR(threshold, tp / (tp + fp) if tp + fp else 1.0, tp / positives if positives else 0.0,
              tp, fp, positives)


def pr_curve(scores: Sequence[float], labels: Sequence[bool],
             thresholds: Iterable[float]) -> list[PR]:
    """Return precision and recall at each threshold."""
    return [precision_recall(scores, labels, t) for t in thresholds]


def _sweep(scores: Sequence[float], labels: Sequence[bool]) -> Iterable[tuple[float, int, int]]:
    """Yield (threshold, true positives, false positives) from the highest score down."""
    ranked = sorted(zip(scores, labels), key=lambda x: -x[0])
    tp = fp = i = 0
    while i < len(ranked):
        t = ranked[i][0]
        while i < len(ranked) and ranked[i][0] == t:  # ties pass or fail together
            tp += ranked[i][1]
            fp += not ranked[i][1]
            i += 1
        yield t, tp, fp


def choose_threshold(scores: Sequence[float], labels: Sequence[bool], *,
                     min_precision: float = MIN_PRECISION, confidence: float | None = None) -> float:
    """Return the threshold with the highest recall whose precision reaches ``min_precision``.

    With ``confidence``, the precision's lower bound (``precision_lower_bound``) must reach it:
    a threshold that is right on train by luck does not pass.
    """
    positives = sum(1 for l in labels if l)
    best_t, best_recall = 1.0 + 1e-9, -1.0
    for t, tp, fp in _sweep(scores, labels):
        precision = (tp / (tp + fp) if confidence is None
                     else precision_lower_bound(tp, fp, confidence))
        recall = tp / positives if positives else 0.0
        if precision >= min_precision and recall > best_recall:
            best_t, best_recall = t, recall
    return best_t


def recall_at_precision(scores: Sequence[float], labels: Sequence[bool], precision: float) -> float:
    """Return the highest recall any threshold reaches with precision at least ``precision``."""
    positives = sum(1 for l in labels if l)
    return max((tp / positives for _, tp, fp in _sweep(scores, labels)
                if positives and tp + fp and tp / (tp + fp) >= precision - 1e-12), default=0.0)


@dataclass(frozen=True, slots=True)
class WorkloadDedup:
    """A replay of a workload through a detector: hits, and hits that served another intent."""

    requests: int
    exact_hits: int
    semantic_hits: int
    false_semantic_hits: int
    missed_paraphrases: int   # seen intent, new wording, not found
    # each near-duplicate served: (the request's prompt, the cached prompt served, same intent)
    served: tuple[tuple[str, str, bool], ...] = field(default=(), repr=False)

    @property
    def false_hit_rate(self) -> float:
        return self.false_semantic_hits / self.requests if self.requests else 0.0

    @property
    def semantic_precision(self) -> float:
        hits = self.semantic_hits
        return (hits - self.false_semantic_hits) / hits if hits else 1.0


def evaluate_workload(requests: Iterable[Any], detector: Any, *, tenant: str = "contentflow",
                      scoped: bool = True) -> WorkloadDedup:
    """Replay ``requests`` through exact keys then ``detector``, scoring hits by ``intent``.

    Only the scoring reads ``intent``; the detector sees prompts and scopes.
    Scope: type, task, quality and max_tokens (``scoped=False`` puts everything in one scope);
    critical requests get exact hits only.
    """
    exact: dict[str, str] = {}
    seen_intents: set[str] = set()
    n = ex = sem = false = missed = 0
    served: list[tuple[str, str, bool]] = []
    for r in requests:
        n += 1
        scope = (r.type, r.task, r.quality, r.max_tokens) if scoped else ()
        key = make_key("any", r.type, r.prompt, {"max_tokens": r.max_tokens}, tenant=tenant)
        if key in exact:
            ex += 1
            continue
        match = detector.find(r.prompt, scope=scope) if r.quality != "critical" else None
        if match is not None:
            sem += 1
            false += exact[match.key] != r.intent
            served.append((r.prompt, match.prompt, exact[match.key] == r.intent))
            continue
        missed += r.intent in seen_intents
        exact[key] = r.intent
        seen_intents.add(r.intent)
        detector.add(r.prompt, key, scope=scope)
    return WorkloadDedup(n, ex, sem, false, missed, tuple(served))


def mrpc_curves(train: Sequence[Pair], test: Sequence[Pair]) -> dict[str, Any]:
    """Measure what notebook 02 plots on MRPC, as plain JSON values.

    - ``detectors``: the exercise's cosine and ``ContentDeduplication``, each with the threshold
      chosen on ``train`` (``choose_threshold``, precision's 95% lower bound at ``MIN_PRECISION``),
      its precision and recall on ``test`` there, and the test curve over thresholds 0.50-1.00;
    - ``tradeoff``: on ``test``, the static detector at thresholds 0.70-0.90 beside the bounded
      layer at deltas 3%-15%, its state learned on ``train`` (``pairs_state``).
    """
    from .calibrate import pairs_state
    from .dedup import ContentDeduplication
    from .exercise_dedup import ExerciseDeduplication
    from .semantic import BoundedSemanticLayer

    def point(pr: PR) -> dict[str, float]:
        return {"threshold": round(pr.threshold, 6), "precision": round(pr.precision, 6),
                "recall": round(pr.recall, 6)}

    labels_train = [p.paraphrase for p in train]
    labels = [p.paraphrase for p in test]
    thresholds = [t / 100 for t in range(50, 101, 2)]
    detectors = []
    static_scores: list[float] = []
    for name, det in (("exercise: bag-of-words cosine", ExerciseDeduplication()),
                      ("precise: coverage + guards", ContentDeduplication())):
        chosen = choose_threshold([det.similarity(p.a, p.b) for p in train], labels_train,
                                  confidence=0.95)
        scores = [det.similarity(p.a, p.b) for p in test]
        static_scores = scores
        detectors.append({"name": name, "threshold": round(chosen, 6),
                          "at_threshold": point(precision_recall(scores, labels, chosen)),
                          "curve": [point(pr) for pr in pr_curve(scores, labels, thresholds)]})
    state = pairs_state(train, source="MRPC train")
    bounded = []
    for delta in (0.03, 0.05, 0.08, 0.1, 0.15):
        layer = BoundedSemanticLayer(delta=delta, state=state)
        served = [float(layer.would_serve(p.a, p.b)) for p in test]
        at = precision_recall(served, labels, 0.5)
        bounded.append({"delta": delta, "precision": round(at.precision, 6),
                        "recall": round(at.recall, 6)})
    static = [point(pr) for pr in pr_curve(static_scores, labels, [0.7, 0.75, 0.8, 0.85, 0.9])]
    return {"source": f"MRPC, train {len(train)} pairs, test {len(test)} pairs",
            "detectors": detectors, "tradeoff": {"static": static, "bounded": bounded}}


def saved_mrpc_curves(path: str | os.PathLike = MRPC_CURVES_PATH) -> dict[str, Any]:
    """The last ``mrpc_curves`` measurement saved with the package (and when it was made)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main(argv: Sequence[str] | None = None) -> int:
    """Measure ``mrpc_curves`` on MRPC again and save it (``python -m cfopt.cache.evaluate``)."""
    out = Path(argv[0]) if argv else MRPC_CURVES_PATH
    try:
        train, test = load_mrpc("train"), load_mrpc("test")
    except FileNotFoundError:
        print(f"MRPC is not available at {mrpc_dir()}: nothing measured", file=sys.stderr)
        return 1
    curves = {"measured": datetime.date.today().isoformat(), **mrpc_curves(train, test)}
    out.write_text(json.dumps(curves, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}: {curves['source']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
