"""cfopt: make an AI content system fast and cheap, and measure it.

The exercise's six classes, the pipeline they make up and its configuration:

>>> from cfopt import CostOptimizer, CacheManager, Pipeline, PipelineConfig
>>> Pipeline(PipelineConfig.baseline()).config.applied
()
"""
__version__ = "0.1.0"

from .batching import BatchConfig, BatchProcessor
from .cache import CacheManager, ContentDeduplication
from .clock import VirtualClock
from .cost import BudgetConfig, CostOptimizer, QualityBar
from .errors import CfoptError
from .events import Event, EventBus
from .latency import PerformanceOptimizer
from .monitoring import MonitorConfig, PerformanceMonitor
from .pipeline import Pipeline, PipelineConfig, RunResult
from .providers import Call, Providers
from .workload import Request, load

__all__ = ["CostOptimizer", "CacheManager", "ContentDeduplication", "PerformanceOptimizer",
           "BatchProcessor", "PerformanceMonitor", "Pipeline", "PipelineConfig", "RunResult",
           "QualityBar", "BudgetConfig", "BatchConfig", "MonitorConfig", "Call", "Providers",
           "Request", "load", "VirtualClock", "Event", "EventBus", "CfoptError"]
