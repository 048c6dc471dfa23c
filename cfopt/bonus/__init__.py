"""Bonus challenges: request prediction for cache warming, auto-tuning, A/B testing, load testing.

- ``predict``: ``RequestPredictor`` (per-user Markov chain, user frequencies, decayed popularity)
- ``warming``: ``evaluate_warming`` (precision@k and the hit-rate lift of warming on a time split)
- ``autotune``: ``autotune`` (cache TTL and capacity, batch size and max-wait, tuned online from
  the monitor's windows), ``grid_search`` and ``fixed_run`` to compare with fixed knobs
- ``objective``: ``Objective`` and ``WindowMetrics``, how autotune scores a window (USD per request)
- ``climb``: ``HillClimber`` and ``tune``, the coordinate hill climber autotune uses
- ``tunable``: ``TunableReplay``, a replay whose knobs change while it runs (shadow caches, splits)
- ``abtest``: ``split_users``, ``run_abtest`` and the default strategies
- ``abstats``: the statistics of an A/B test (bootstrap CI, permutation p-value, power)
- ``loadtest``: ``run_loadtest`` against ``cfopt serve`` (loopback targets only)

Each module is imported on use: the load tester needs httpx, the others do not.
"""
__all__ = ["predict", "warming", "autotune", "objective", "climb", "tunable", "abtest", "abstats",
           "loadtest"]
