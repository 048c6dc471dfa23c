"""Cache layers: memory, disk, Redis and CDN, behind one small interface."""
from .base import ALL_KINDS, MEDIA_KINDS, CacheLayer, LayerStats
from .cdn import CDNLayer
from .disk import DiskLayer
from .memory import MemoryLayer
from .redis import RedisLayer

__all__ = ["CacheLayer", "LayerStats", "MemoryLayer", "DiskLayer", "RedisLayer", "CDNLayer",
           "MEDIA_KINDS", "ALL_KINDS"]
