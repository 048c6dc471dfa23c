"""Part 4, batch processing: priority queues that age, grouped prompts, the Message Batches path,
and retries with backoff, fallbacks and circuit breakers, behind the exercise's ``BatchProcessor``.
"""
from .breaker import BreakerConfig, CircuitBreaker
from .grouping import GROUP_SYSTEM, group_prompt, split_answers
from .priority import PRIORITY_RANK, AgingQueue, aging_key, effective_rank
from .processor import BatchProcessor
from .resilience import (DEFAULT_FALLBACKS, CircuitOpen, Resilience, ResilienceStats, RetryPolicy,
                         backoff_delay, retry_delay)
from .types import DEFAULT_MODELS, BatchConfig, BatchStats, Task, TaskResult

__all__ = ["BatchProcessor", "BatchConfig", "BatchStats", "Task", "TaskResult", "DEFAULT_MODELS",
           "AgingQueue", "PRIORITY_RANK", "effective_rank", "aging_key",
           "GROUP_SYSTEM", "group_prompt", "split_answers",
           "Resilience", "RetryPolicy", "ResilienceStats", "CircuitBreaker", "BreakerConfig",
           "CircuitOpen", "backoff_delay", "retry_delay", "DEFAULT_FALLBACKS"]
