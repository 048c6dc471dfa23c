"""Plausible wrong answers to notebook 04's exercises, each with what its check must say.

Run by tests/test_exercises_wrong_answers.py: each ``source`` replaces the learner's cell, the
check must fail saying every ``feedback`` string, and the probe must give less than full credit.
"""

RANK = "my_effective_rank ages tasks one level per aging_s"
PLAN = "my_batch_plan meets every deadline at the lowest cost"
BACKOFF = "my_backoff draws full jitter under a capped doubling ceiling"

WRONG = [
    # -- my_effective_rank ----------------------------------------------------------------------
    dict(check=RANK, why="climbs whole levels only (floor division): 1.5 periods count as 1",
         source='''
RANK = {"high": 0, "medium": 1, "low": 2}


def my_effective_rank(priority, waited_s, aging_s):
    if aging_s is None:
        return float(RANK[priority])
    return RANK[priority] - waited_s // aging_s
''', feedback=["a low task that waited 45 s with aging_s=30.0: expected rank 0.5", "1.5 periods", "got 1.0"]),
    dict(check=RANK, why="stops the rank at 0, high's rank: an old low task can never pass a fresh high one",
         source='''
RANK = {"high": 0, "medium": 1, "low": 2}


def my_effective_rank(priority, waited_s, aging_s):
    if aging_s is None:
        return float(RANK[priority])
    return max(0.0, RANK[priority] - waited_s / aging_s)
''', feedback=["a low task that waited 90 s with aging_s=30.0: expected rank -1", "got 0.0"]),
    dict(check=RANK, why="multiplies by a rounded reciprocal: exact ties come out a hair apart and the order flips",
         source='''
RANK = {"high": 0, "medium": 1, "low": 2}


def my_effective_rank(priority, waited_s, aging_s):
    if aging_s is None:
        return float(RANK[priority])
    per_second = 1 / aging_s
    return RANK[priority] - waited_s * per_second
''', feedback=["go in arrival order (low, medium, high)", "send them high", "exactly k levels"]),
    dict(check=RANK, why="ages the wrong way: waiting makes a task less urgent",
         source='''
RANK = {"high": 0, "medium": 1, "low": 2}


def my_effective_rank(priority, waited_s, aging_s):
    if aging_s is None:
        return float(RANK[priority])
    return RANK[priority] + waited_s / aging_s
''', feedback=["a medium task that waited 30 s with aging_s=30.0: expected rank 0", "got 2.0"]),

    # -- my_batch_plan (the decision) -----------------------------------------------------------
    dict(check=PLAN, why="trusts the median: batches whatever can wait twice the median turnaround",
         source='''
def my_batch_plan(kinds):
    return {k.name for k in kinds if k.deadline_s >= 30 * 60}
''', feedback=["on deadline_day(2) your plan answered", "product_description (batch, due in 45 min)",
               "scores 0"]),
    dict(check=PLAN, why="trusts 'most batches finish within an hour', boundary included",
         source='''
def my_batch_plan(kinds):
    return {k.name for k in kinds if k.deadline_s >= 3600}
''', feedback=["email_subject (batch, due in 1 h)", "late", "scores 0"]),
    dict(check=PLAN, why="batches only what the API promises (24 h): safe, but pays full price for work due in hours",
         source='''
def my_batch_plan(kinds):
    return {k.name for k in kinds if k.deadline_s >= 24 * 3600}
''', feedback=["meets every deadline but costs", "more than the cheapest plan found",
               "some work that could wait still goes live"]),
    dict(check=PLAN, why="keeps everything live: never late, never cheap",
         source='''
def my_batch_plan(kinds):
    return set()
''', feedback=["on deadline_day(2) your plan meets every deadline but costs", "more than the cheapest plan found"]),
    dict(check=PLAN, why="batches everything: half price, and late everywhere a deadline is short",
         source='''
def my_batch_plan(kinds):
    return {k.name for k in kinds}
''', feedback=["keyword_extraction (batch, due in 30 s)", "scores 0"]),
    dict(check=PLAN, why="hard-codes the kinds that pass on the notebook's day",
         source='''
def my_batch_plan(kinds):
    return {"blog_post", "help_article", "summary", "ticket_routing", "translation"}
''', feedback=["on deadline_day(11) your plan answered", "ticket_routing (batch, due in 30 s)"]),
    dict(check=PLAN, why="returns the WorkKind objects instead of their names",
         source='''
def my_batch_plan(kinds):
    return {k for k in kinds if k.deadline_s >= 6 * 3600}
''', feedback=["return the names (strings) of the kinds to batch"]),

    # -- my_backoff -----------------------------------------------------------------------------
    dict(check=BACKOFF, why="counts retries from one: the first retry already waits up to twice base_s",
         source='''
def my_backoff(retry, base_s, cap_s, rng):
    return rng.uniform(0.0, min(cap_s, base_s * 2 ** (retry + 1)))
''', feedback=["my_backoff(0, 0.5, 4, rng): the ceiling is 0.5 s", "must lie in [0, 0.5] s"]),
    dict(check=BACKOFF, why="caps the drawn delay instead of the ceiling: delays pile up at cap_s",
         source='''
def my_backoff(retry, base_s, cap_s, rng):
    return min(cap_s, rng.uniform(0.0, base_s * 2 ** retry))
''', feedback=["my_backoff(4, 0.5, 4, rng)", "average about 2 s", "exactly at 4 s"]),
    dict(check=BACKOFF, why="draws from the random module instead of the rng it is given",
         source='''
import random


def my_backoff(retry, base_s, cap_s, rng):
    return random.uniform(0.0, min(cap_s, base_s * 2 ** retry))
''', feedback=["differ from cfopt's", "draw each delay once from the rng you are given"]),
    dict(check=BACKOFF, why="equal jitter (half fixed, half random) instead of full jitter",
         source='''
def my_backoff(retry, base_s, cap_s, rng):
    ceiling = min(cap_s, base_s * 2 ** retry)
    return ceiling / 2 + rng.uniform(0.0, ceiling / 2)
''', feedback=["full jitter covers all of [0, 0.5] s"]),
]
