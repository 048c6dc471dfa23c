"""Part 2, caching: safe keys, cache layers, the CacheManager, single-flight, de-duplication.

- ``keys``: ``cache_key(call, tenant=...)``, ``normalize_prompt``
- ``layers``: ``MemoryLayer``, ``DiskLayer``, ``RedisLayer``, ``CDNLayer`` (one interface)
- ``manager``: ``CacheManager`` (strategies, promotion, TTLs, warming, invalidation, stats)
- ``singleflight``: ``SingleFlight``
- ``dedup``: ``ContentDeduplication`` (``text``: its features; ``exercise_dedup``: the reference;
  ``evaluate``: precision/recall on MRPC and on workload intents)
- ``belady``: the optimal hit rate no eviction policy can beat (a workload replays through a
  manager in ``cfopt.pipeline.replay_cache``)
"""
from .belady import belady_hit_rate, lru_hit_rate, replay_hit_rate
from .dedup import ContentDeduplication
from .exercise_dedup import ExerciseDeduplication
from .keys import cache_key, make_key
from .layers import CacheLayer, CDNLayer, DiskLayer, LayerStats, MemoryLayer, RedisLayer
from .manager import CacheManager, CacheStats, Lookup, Prediction, Served, WarmReport
from .records import Match
from .normalize import normalize_prompt
from .policy import STRATEGIES, TTLPolicy
from .singleflight import SingleFlight

__all__ = ["cache_key", "make_key", "normalize_prompt", "CacheLayer", "LayerStats",
           "MemoryLayer", "DiskLayer", "RedisLayer", "CDNLayer", "CacheManager", "CacheStats",
           "Lookup", "Served", "Prediction", "WarmReport", "TTLPolicy", "STRATEGIES",
           "SingleFlight", "ContentDeduplication", "ExerciseDeduplication", "Match",
           "belady_hit_rate", "lru_hit_rate", "replay_hit_rate"]
