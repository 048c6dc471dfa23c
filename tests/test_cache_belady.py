"""Belady's optimum is optimal (checked against exhaustive search) and bounds LRU and FIFO."""
from __future__ import annotations

import random
from functools import lru_cache

import cachetools
import pytest

from cfopt.cache.belady import belady_hit_rate, lru_hit_rate, replay_hit_rate
from cfopt.cache.keys import make_key
from cfopt.errors import ConfigError
from cfopt.workload import load


def exhaustive_best(keys: tuple, capacity: int) -> int:
    """The most hits any policy can get: try every choice of what to keep."""
    @lru_cache(maxsize=None)
    def best(i: int, held: frozenset) -> int:
        if i == len(keys):
            return 0
        k = keys[i]
        if k in held:
            return 1 + best(i + 1, held)
        options = [best(i + 1, held)]                       # do not store
        if len(held) < capacity:
            options.append(best(i + 1, held | {k}))
        else:
            options += [best(i + 1, (held - {v}) | {k}) for v in held]
        return max(options)
    return best(0, frozenset())


@pytest.mark.parametrize("seed", range(40))
def test_belady_equals_the_exhaustive_optimum(seed):
    rng = random.Random(seed)
    keys = tuple(rng.choice("abcde") for _ in range(rng.randint(1, 11)))
    capacity = rng.randint(1, 3)
    assert belady_hit_rate(keys, capacity) * len(keys) == pytest.approx(exhaustive_best(keys, capacity))


@pytest.mark.parametrize("capacity", [10, 50, 200, 1000])
def test_no_policy_beats_belady_on_the_workload(capacity):
    keys = [make_key("p", r.type, r.prompt, {"max_tokens": r.max_tokens}, tenant="t")
            for r in load("datasets/contentflow_1h.jsonl")]
    opt = belady_hit_rate(keys, capacity)
    assert lru_hit_rate(keys, capacity) <= opt
    assert replay_hit_rate(keys, cachetools.FIFOCache(capacity)) <= opt
    assert replay_hit_rate(keys, cachetools.LFUCache(capacity)) <= opt
    assert opt <= 1 - len(set(keys)) / len(keys) + 1e-12   # and nothing beats the ceiling


def test_capacity_must_be_positive():
    with pytest.raises(ConfigError):
        belady_hit_rate("abc", 0)
