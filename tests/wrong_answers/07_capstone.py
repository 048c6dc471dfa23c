"""Plausible wrong answers to notebook 07's exercises, each with what its check must say.

Run by tests/test_exercises_wrong_answers.py: each ``source`` replaces the learner's cell, the
check must fail saying every ``feedback`` string, and the probe must give less than full credit.
"""

CUT = "headline computes cost reduction and calls saved from details"
SPEED = "headline computes the speed improvement as a ratio of means"
SHIP = "my_pipeline meets the held criteria at the lowest cost"

WRONG = [
    # -- headline: cost reduction and calls saved ------------------------------------------------
    dict(check=CUT, why="returns the share of the baseline still spent, not the share saved",
         source='''
def headline(details):
    base = details["baseline_cost_usd"]
    return {"cost_reduction": details["optimized_cost_usd"] / base if base else 0.0,
            "api_calls_saved": details["baseline_calls"] - details["optimized_calls"],
            "speed_improvement": details["baseline_avg_ms"] / details["avg_ms"] if details["avg_ms"] else 0.0}
''', feedback=["still spends", "the report cuts"]),
    dict(check=CUT, why="returns a percentage (75.3) where a fraction (0.753) is asked",
         source='''
def headline(details):
    base = details["baseline_cost_usd"]
    saved = base - details["optimized_cost_usd"]
    return {"cost_reduction": round(100 * saved / base, 1) if base else 0.0,
            "api_calls_saved": details["baseline_calls"] - details["optimized_calls"],
            "speed_improvement": details["baseline_avg_ms"] / details["avg_ms"] if details["avg_ms"] else 0.0}
''', feedback=["a percentage", "as a fraction"]),
    dict(check=CUT, why="clips the reduction at zero when the pipeline spent more than the baseline",
         source='''
def headline(details):
    base = details["baseline_cost_usd"]
    cut = (base - details["optimized_cost_usd"]) / base if base else 0.0
    return {"cost_reduction": max(0.0, cut),
            "api_calls_saved": details["baseline_calls"] - details["optimized_calls"],
            "speed_improvement": details["baseline_avg_ms"] / details["avg_ms"] if details["avg_ms"] else 0.0}
''', feedback=["spent $12.00 against a $10.00 baseline", "keep the sign"]),
    dict(check=CUT, why="divides by the baseline's cost without looking at a zero baseline",
         source='''
def headline(details):
    base = details["baseline_cost_usd"]
    return {"cost_reduction": 1 - details["optimized_cost_usd"] / base,
            "api_calls_saved": details["baseline_calls"] - details["optimized_calls"],
            "speed_improvement": details["baseline_avg_ms"] / details["avg_ms"] if details["avg_ms"] else 0.0}
''', feedback=["ZeroDivisionError", "baseline spent $0.00"]),
    dict(check=CUT, why="subtracts the calls the wrong way round",
         source='''
def headline(details):
    base = details["baseline_cost_usd"]
    return {"cost_reduction": (base - details["optimized_cost_usd"]) / base if base else 0.0,
            "api_calls_saved": details["optimized_calls"] - details["baseline_calls"],
            "speed_improvement": details["baseline_avg_ms"] / details["avg_ms"] if details["avg_ms"] else 0.0}
''', feedback=["api_calls_saved", "provider calls"]),
    # -- headline: speed improvement -------------------------------------------------------------
    dict(check=SPEED, why="divides the optimized mean by the baseline's (the inverse)",
         source='''
def headline(details):
    base = details["baseline_cost_usd"]
    return {"cost_reduction": (base - details["optimized_cost_usd"]) / base if base else 0.0,
            "api_calls_saved": details["baseline_calls"] - details["optimized_calls"],
            "speed_improvement": details["avg_ms"] / details["baseline_avg_ms"] if details["baseline_avg_ms"] else 0.0}
''', feedback=["the optimized mean over the baseline's", "how many times faster"]),
    dict(check=SPEED, why="compares the p95s instead of the means",
         source='''
def headline(details):
    base = details["baseline_cost_usd"]
    return {"cost_reduction": (base - details["optimized_cost_usd"]) / base if base else 0.0,
            "api_calls_saved": details["baseline_calls"] - details["optimized_calls"],
            "speed_improvement": details["baseline_p95_ms"] / details["p95_ms"] if details["p95_ms"] else 0.0}
''', feedback=["ratio of the two p95s", "compares the means"]),
    dict(check=SPEED, why="divides by the optimized mean without looking at a zero mean",
         source='''
def headline(details):
    base = details["baseline_cost_usd"]
    return {"cost_reduction": (base - details["optimized_cost_usd"]) / base if base else 0.0,
            "api_calls_saved": details["baseline_calls"] - details["optimized_calls"],
            "speed_improvement": details["baseline_avg_ms"] / details["avg_ms"]}
''', feedback=["ZeroDivisionError", "optimized mean of 0 ms"]),
    # -- the configuration to ship ----------------------------------------------------------------
    dict(check=SHIP, why="ships the library's configuration without a monitor: no live dashboard",
         source='''
def my_pipeline():
    return Pipeline(PipelineConfig()).set_params(cost__quality_bar=QualityBar(low=0.85, standard=0.95, critical=0.95))
''', feedback=["misses a held criterion", "no monitor listened"]),
    dict(check=SHIP, why="chases the 2 s p95 by sending standard-quality text to the fastest model",
         source='''
def my_pipeline():
    return Pipeline(monitor=PerformanceMonitor()).set_params(cost__quality_bar=QualityBar(low=0.90, standard=0.90, critical=0.99))
''', feedback=["misses a held criterion", "of the premium quality", ">= 40.0% at unchanged quality"]),
    dict(check=SHIP, why="switches batching off to make deferred text answer sooner",
         source='''
def my_pipeline():
    return Pipeline(PipelineConfig.select(without=["batching"]), monitor=PerformanceMonitor())
''', feedback=["misses a held criterion", "no non-urgent work went through batches"]),
    dict(check=SHIP, why="ships the library's configuration unchanged: meets the criteria, leaves money on the table",
         source='''
def my_pipeline():
    return Pipeline(monitor=PerformanceMonitor())
''', feedback=["more than the best known configuration", "still unspent"]),
    dict(check=SHIP, why="turns the near-duplicate stage off to save the judge's calls",
         source='''
def my_pipeline():
    bar = QualityBar(low=0.85, standard=0.95, critical=0.95)
    return Pipeline(PipelineConfig.select(without=["dedup"]), monitor=PerformanceMonitor()).set_params(cost__quality_bar=bar)
''', feedback=["more than the best known configuration"]),
]
