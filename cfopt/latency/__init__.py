"""Part 3, response time: lazy loading, micro-batching, coalescing, connection pooling and payload
compression, behind the exercise's ``PerformanceOptimizer``; and how response time is measured.
"""
from .client import API_KEY_ENV, DEFAULT_LIMITS, DEFAULT_TIMEOUT, AsyncCfoptClient, CfoptClient
from .coalesce import QueryOptimizer, QueryStats
from .lazy import DEFERRED_KINDS, LARGE_IMAGE_MP, Handle, LazyContent, LazyLoader, is_deferred
from .microbatch import MicroBatcher, MicroBatchStats
from .optimizer import (COMPRESS_THRESHOLD, Compressed, LatencySummary, PerformanceOptimizer,
                        Percentiles, compress, decompress, latency_summary, percentile,
                        response_time)

__all__ = ["PerformanceOptimizer", "Percentiles", "LatencySummary", "latency_summary",
           "percentile", "response_time", "Compressed", "compress", "decompress",
           "COMPRESS_THRESHOLD", "LazyLoader", "LazyContent", "Handle", "is_deferred",
           "DEFERRED_KINDS", "LARGE_IMAGE_MP", "MicroBatcher", "MicroBatchStats",
           "QueryOptimizer", "QueryStats", "CfoptClient", "AsyncCfoptClient", "DEFAULT_LIMITS",
           "DEFAULT_TIMEOUT", "API_KEY_ENV"]
