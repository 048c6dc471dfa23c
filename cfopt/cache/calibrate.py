"""Learn the bounded layer's starting state from labelled pairs: generated traffic or MRPC.

The state (``SemanticState``) is a pair model and, per score band, how many labelled pairs
matched. It is learned offline, never on the traffic it will serve:

- ``workload_pairs(requests)`` replays labelled traffic through an index the way the layer
  sees it (exact repeats skipped, up to three candidates per request, each labelled by whether
  it shares the request's ``intent``): training pairs, read only here, offline;
- ``learn_workload_state()`` does so on generated workloads of seeds ``TRAIN_SEEDS``, which no
  shipped dataset or test workload uses; the result ships as ``cfopt/data/semantic_state.json``:

      python -m cfopt.cache.calibrate            # rewrites cfopt/data/semantic_state.json

- ``pairs_state(pairs)`` learns from labelled sentence pairs (MRPC's train split, say).
"""
from __future__ import annotations

import argparse
from typing import Any, Iterable, Sequence

from .dedup import ContentDeduplication
from .keys import make_key
from .pairmodel import DEFAULT_STATE_PATH, SemanticState, pair_features
from .semantic import DEFAULT_FLOOR
from .text import features

__all__ = ["TRAIN_SEEDS", "TRAIN_REQUESTS", "workload_pairs", "learn_workload_state", "pairs_state"]

TRAIN_SEEDS = (101, 102, 103, 104)   # never a shipped or a test workload's seed
TRAIN_REQUESTS = 5000


def workload_pairs(requests: Iterable[Any], *, floor: float = DEFAULT_FLOOR,
                   tenant: str = "train") -> tuple[list[list[float] | None], list[bool]]:
    """Return the candidate pairs the layer would weigh on ``requests``, labelled by ``intent``."""
    index = ContentDeduplication(floor=floor)
    intent_of: dict[str, str] = {}
    seen: set[str] = set()
    xs: list[list[float] | None] = []
    labels: list[bool] = []
    for r in requests:
        if r.quality == "critical":
            continue
        scope = (r.type, r.task, r.quality, r.max_tokens)
        key = make_key("any", r.type, r.prompt, {"max_tokens": r.max_tokens}, tenant=tenant)
        if key in seen:
            continue
        seen.add(key)
        fq = features(r.prompt)
        matched = False
        for c in index.search(r.prompt, scope, floor=floor, limit=3):
            x = pair_features(fq, features(c.prompt))
            same = intent_of[c.key] == r.intent
            xs.append(x)
            labels.append(same)
            matched |= same
        if not matched:   # as the layer does: a request no entry answers becomes an entry
            index.add(r.prompt, key, scope)
            intent_of[key] = r.intent
    return xs, labels


def learn_workload_state(seeds: Sequence[int] = TRAIN_SEEDS, n: int = TRAIN_REQUESTS) -> SemanticState:
    """Learn a state on generated traffic of ``seeds`` (``n`` requests an hour each)."""
    from ..workload import generate
    xs: list[list[float] | None] = []
    labels: list[bool] = []
    for seed in seeds:
        x, y = workload_pairs(generate(n, seed=seed))
        xs += x
        labels += y
    return SemanticState.learn(xs, labels, source=f"generated traffic, seeds {list(seeds)}, "
                                                  f"{n} requests each: {len(labels)} candidate pairs")


def pairs_state(pairs: Iterable[Any], *, source: str = "labelled pairs") -> SemanticState:
    """Learn a state from labelled sentence pairs (anything with ``a``, ``b``, ``paraphrase``)."""
    xs, labels = [], []
    for p in pairs:
        xs.append(pair_features(features(p.a), features(p.b)))
        labels.append(bool(p.paraphrase))
    return SemanticState.learn(xs, labels, source=f"{source}: {len(labels)} pairs")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Learn the bounded layer's state on generated traffic.")
    ap.add_argument("--out", default=str(DEFAULT_STATE_PATH))
    args = ap.parse_args(argv)
    state = learn_workload_state()
    state.save(args.out)
    print(f"wrote {args.out}: {state.source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
