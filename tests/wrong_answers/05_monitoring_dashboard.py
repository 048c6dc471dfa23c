"""Plausible wrong answers to notebook 05's exercises, each with what its check must say.

Run by tests/test_exercises_wrong_answers.py: each ``source`` replaces the learner's cell, the
check must fail saying every ``feedback`` string, and the probe must give less than full credit.
"""

P = "percentile agrees with numpy's linear percentile"
T = "trend_per_min is the least-squares slope per minute"
A = "anomaly_rule catches every incident and pages for nothing"
L = "long_tail fires on a long tail with the ratio as its figure"

WRONG = [
    # -- percentile ----------------------------------------------------------------------------
    dict(check=P, why="counts the place over the n values instead of the n - 1 steps between them",
         source='''
def percentile(values, q):
    s = sorted(values)
    if not s:
        return math.nan
    rank = min(q / 100 * len(s), len(s) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (rank - lo)
''', feedback=["percentile([1.0, 2.0, 3.0, 4.0], 50) gave 3.0, numpy gives 2.5", "n - 1 steps"]),
    dict(check=P, why="takes the value just below the place, without interpolating",
         source='''
def percentile(values, q):
    s = sorted(values)
    if not s:
        return math.nan
    return s[math.floor(q / 100 * (len(s) - 1))]
''', feedback=["gave 2.0, numpy gives 2.5", "interpolate"]),
    dict(check=P, why="forgets to sort: reads the values in the order they came",
         source='''
def percentile(values, q):
    if not values:
        return math.nan
    rank = q / 100 * (len(values) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (rank - lo)
''', feedback=["percentile([5.0, 1.0, 4.0, 2.0, 3.0], 0) gave 5.0, numpy gives 1.0",
               "these values came unsorted"]),
    dict(check=P, why="sorts the caller's list in place",
         source='''
def percentile(values, q):
    if not values:
        return math.nan
    values.sort()
    rank = q / 100 * (len(values) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (rank - lo)
''', feedback=["changed the list it was given", "must stay as it was"]),
    dict(check=P, why="reads the next value past the end (q = 100, a single value)",
         source='''
def percentile(values, q):
    s = sorted(values)
    if not s:
        return math.nan
    rank = q / 100 * (len(s) - 1)
    lo = math.floor(rank)
    return s[lo] + (s[lo + 1] - s[lo]) * (rank - lo)
''', feedback=["percentile([3.0], 0) raised IndexError", "one value is every percentile of itself"]),
    dict(check=P, why="no values: raises instead of returning NaN",
         source='''
def percentile(values, q):
    s = sorted(values)
    rank = q / 100 * (len(s) - 1)
    lo = math.floor(rank)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (rank - lo)
''', feedback=["percentile([], 50) raised IndexError", "NaN"]),

    # -- trend_per_min -------------------------------------------------------------------------
    dict(check=T, why="reports the slope per second",
         source='''
def trend_per_min(times, values):
    n = len(times)
    if n < 2:
        return 0.0
    t_mean, v_mean = sum(times) / n, sum(values) / n
    dts = [t - t_mean for t in times]
    denom = sum(d * d for d in dts)
    if denom == 0:
        return 0.0
    return sum(d * (v - v_mean) for d, v in zip(dts, values)) / denom
''', feedback=["the trend of +1 every minute", "60"]),
    dict(check=T, why="divides by zero when there is no spread in time",
         source='''
def trend_per_min(times, values):
    n = len(times)
    t_mean, v_mean = sum(times) / n, sum(values) / n
    dts = [t - t_mean for t in times]
    return 60.0 * sum(d * (v - v_mean) for d, v in zip(dts, values)) / sum(d * d for d in dts)
''', feedback=["trend_per_min([], []), no points, raised ZeroDivisionError", "0.0"]),
    dict(check=T, why="the slope from the first and the last point only",
         source='''
def trend_per_min(times, values):
    if len(times) < 2 or times[-1] == times[0]:
        return 0.0
    return 60.0 * (values[-1] - values[0]) / (times[-1] - times[0])
''', feedback=["noisy points", "every point"]),
    dict(check=T, why="the textbook sums without centering: precision lost on large timestamps",
         source='''
def trend_per_min(times, values):
    n = len(times)
    if n < 2:
        return 0.0
    st, sv = sum(times), sum(values)
    stt = sum(t * t for t in times)
    stv = sum(t * v for t, v in zip(times, values))
    denom = n * stt - st * st
    if denom == 0:
        return 0.0
    return 60.0 * (n * stv - st * sv) / denom
''', feedback=["wall-clock time (1.7e9 s since 1970)", "lose precision"]),

    # -- anomaly_rule --------------------------------------------------------------------------
    dict(check=A, why="keeps the monitor's default rule",
         source='''
def anomaly_rule():
    return AnomalyConfig()
''', feedback=["day 2", "went unnoticed", "still reporting an earlier shift"]),
    dict(check=A, why="raises only the z threshold: sure shifts, but incidents missed",
         source='''
def anomaly_rule():
    return AnomalyConfig(z_threshold=8.0)
''', feedback=["day 2", "went unnoticed", "z of 8"]),
    dict(check=A, why="a size threshold so high that smaller slowdowns never count",
         source='''
def anomaly_rule():
    return AnomalyConfig(recent_s=30.0, baseline_s=300.0, z_threshold=3.0, min_change=3.0)
''', feedback=["day 12", "went unnoticed", "a change of 3 (x4.00)"]),
    dict(check=A, why="safe but slow: long windows notice every incident minutes late",
         source='''
def anomaly_rule():
    return AnomalyConfig(recent_s=180.0, baseline_s=600.0, z_threshold=4.0, min_change=1.0)
''', feedback=["catches every incident and pages for nothing", "more than the best known",
               "Could it see them sooner?"]),
    dict(check=A, why="returns the knobs as a dict",
         source='''
def anomaly_rule():
    return {"recent_s": 30.0, "baseline_s": 300.0, "z_threshold": 3.0, "min_change": 1.5}
''', feedback=["the monitor needs an AnomalyConfig"]),

    # -- long_tail -----------------------------------------------------------------------------
    dict(check=L, why="fires at exactly 5x (>= instead of >)",
         source='''
def long_tail(monitor, period=None):
    s = monitor.get_stats("response_time", period)
    if s.count == 0:
        return None
    ratio = s.p99 / s.median
    if ratio < 5.0:
        return None
    return Recommendation("long_tail", "medium", "response_time.p99/median", ratio, 5.0,
                          f"p99 response time {s.p99:.2f} s is {ratio:.1f}x the median {s.median:.2f} s.")
''', feedback=["exactly 5x the median", "not more than 5x"]),
    dict(check=L, why="ignores the period: judges every retained point",
         source='''
def long_tail(monitor, period=None):
    s = monitor.get_stats("response_time")
    if s.count == 0:
        return None
    ratio = s.p99 / s.median
    if ratio <= 5.0:
        return None
    return Recommendation("long_tail", "medium", "response_time.p99/median", ratio, 5.0,
                          f"p99 response time {s.p99:.2f} s is {ratio:.1f}x the median {s.median:.2f} s.")
''', feedback=["period=60", "the period asked for"]),
    dict(check=L, why="compares the p99 with the mean, not the median",
         source='''
def long_tail(monitor, period=None):
    s = monitor.get_stats("response_time", period)
    if s.count == 0:
        return None
    ratio = s.p99 / s.avg
    if ratio <= 5.0:
        return None
    return Recommendation("long_tail", "medium", "response_time.p99/median", ratio, 5.0,
                          f"p99 response time {s.p99:.2f} s is {ratio:.1f}x the mean {s.avg:.2f} s.")
''', feedback=["the recommendation's figure", "p99 / median"]),
    dict(check=L, why="no data: divides NaN by NaN and recommends anyway",
         source='''
def long_tail(monitor, period=None):
    s = monitor.get_stats("response_time", period)
    ratio = s.p99 / s.median
    if ratio <= 5.0:
        return None
    return Recommendation("long_tail", "medium", "response_time.p99/median", ratio, 5.0,
                          f"p99 response time {s.p99:.2f} s is {ratio:.1f}x the median {s.median:.2f} s.")
''', feedback=["no response times", "NaN figure"]),
]
