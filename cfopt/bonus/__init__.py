"""Bonus challenges: request prediction for cache warming, A/B testing, load testing.

- ``predict``: ``RequestPredictor`` (per-user Markov chain, user frequencies, decayed popularity)
- ``warming``: ``evaluate_warming`` (precision@k and the hit-rate lift of warming on a time split)
- ``abtest``: ``split_users``, ``run_abtest`` and the default strategies
- ``abstats``: the statistics of an A/B test (bootstrap CI, permutation p-value, power)
- ``loadtest``: ``run_loadtest`` against ``cfopt serve`` (loopback targets only)

Each module is imported on use: the load tester needs httpx, the others do not.
"""
__all__ = ["predict", "warming", "abtest", "abstats", "loadtest"]
