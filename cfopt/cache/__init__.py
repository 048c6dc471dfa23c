"""Part 2, caching: safe keys, cache layers, the CacheManager, single-flight, de-duplication.

- ``keys``: ``cache_key(call, tenant=...)``, ``normalize_prompt``
- ``layers``: ``MemoryLayer``, ``DiskLayer``, ``RedisLayer``, ``CDNLayer`` (one interface)
- ``manager``: ``CacheManager`` (strategies, promotion, TTLs, warming, invalidation, stats)
- ``singleflight``: ``SingleFlight``
- ``dedup``: ``ContentDeduplication``, a static threshold behind guards, over a lean index
  (``text``: words and terms; ``guards``: meaning changes; ``exercise_dedup``: the reference;
  ``evaluate``: precision/recall on labelled pairs and on workload intents)
- ``semantic``: ``BoundedSemanticLayer``, near-duplicates within a stated false-hit bound
  (``pairmodel``: its evidence; ``judge``: ``SimulatedJudge``, the verification it pays for;
  ``calibrate``: its starting state, learned offline)
- ``belady``: the optimal hit rate no eviction policy can beat (a workload replays through a
  manager in ``cfopt.pipeline.replay_cache``)
"""
from .belady import belady_hit_rate, lru_hit_rate, replay_hit_rate
from .dedup import ContentDeduplication
from .exercise_dedup import ExerciseDeduplication
from .keys import cache_key, make_key
from .layers import CacheLayer, CDNLayer, DiskLayer, LayerStats, MemoryLayer, RedisLayer
from .manager import CacheManager, CacheStats, Lookup, Prediction, Served, WarmReport
from .judge import SimulatedJudge, Verdict
from .records import Match, SemanticStats
from .semantic import BoundedSemanticLayer, Decision, SemanticConfig
from .normalize import normalize_prompt
from .policy import STRATEGIES, TTLPolicy
from .singleflight import SingleFlight

__all__ = ["cache_key", "make_key", "normalize_prompt", "CacheLayer", "LayerStats",
           "MemoryLayer", "DiskLayer", "RedisLayer", "CDNLayer", "CacheManager", "CacheStats",
           "Lookup", "Served", "Prediction", "WarmReport", "TTLPolicy", "STRATEGIES",
           "SingleFlight", "ContentDeduplication", "ExerciseDeduplication", "Match",
           "BoundedSemanticLayer", "SemanticConfig", "SemanticStats", "Decision", "SimulatedJudge",
           "Verdict",
           "belady_hit_rate", "lru_hit_rate", "replay_hit_rate"]
