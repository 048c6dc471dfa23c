"""Plausible wrong answers to notebook 06's exercises, each with what its check must say.

Run by tests/test_exercises_wrong_answers.py: each ``source`` replaces the learner's cell, the
check must fail saying every ``feedback`` string, and the probe must give less than full credit.
"""

PRECISION = "precision_at_k counts the first k distinct predictions that came true"
WARM = "should_warm pre-generates the predictions worth their price"
CLIMB = "climb_step moves to the strictly better neighbour within bounds"
THRESH = "thresholds_reached agrees with the tracker's alerts"
ARM = "arm_of splits users exactly as cfopt.bonus.abtest.assign does"
LOOP = "is_loopback_ip accepts what cfopt loadtest accepts and never resolves names"

WRONG = [
    # -- precision_at_k -------------------------------------------------------------------------
    dict(check=PRECISION, why="cuts the ranking at k first and drops repeats after: fewer than k bets remain",
         source='''
def precision_at_k(predicted, asked, k):
    top = list(dict.fromkeys(predicted[:k]))
    if not top:
        return 0.0
    return sum(key in asked for key in top) / len(top)
''', feedback=["precision@2 of a, a, b when a was asked", "drop repeated keys before stopping at k"]),
    dict(check=PRECISION, why="divides by k, so a ranking shorter than k is punished for bets it never placed",
         source='''
def precision_at_k(predicted, asked, k):
    top = list(dict.fromkeys(predicted))[:k]
    return sum(key in asked for key in top) / k
''', feedback=["precision@3 of a single right prediction", "not by k"]),
    dict(check=PRECISION, why="de-duplicates through a sorted set: the ranking's order is lost",
         source='''
def precision_at_k(predicted, asked, k):
    top = sorted(set(predicted))[:k]
    if not top:
        return 0.0
    return sum(key in asked for key in top) / len(top)
''', feedback=["precision@1 of the ranking 3, 1, 2", "keep the ranking's order"]),
    dict(check=PRECISION, why="never drops repeated keys: a key predicted twice counts twice",
         source='''
def precision_at_k(predicted, asked, k):
    top = predicted[:k]
    if not top:
        return 0.0
    return sum(key in asked for key in top) / len(top)
''', feedback=["precision@2 of a, a, b when a was asked", "got 1 (2x too high)"]),

    # -- should_warm (the decision) -------------------------------------------------------------
    dict(check=WARM, why="warms every prediction: pays for long shots on expensive requests",
         source='''
def should_warm(request, probability):
    return True
''', feedback=["3,005 of 3,005 predictions warmed", "it needs 80%", "above the value of a hit"]),
    dict(check=WARM, why="one confidence threshold for everything: ignores that prices differ a thousandfold",
         source='''
def should_warm(request, probability):
    return probability >= 0.2
''', feedback=["it needs 80%", "unwarmed"]),
    dict(check=WARM, why="the textbook expected value with the confidence as the chance and the cap price as the cost",
         source='''
def should_warm(request, probability):
    return probability * HIT_VALUE_USD >= (1 - probability) * warm_up_price(request)
''', feedback=["it needs 80%", "unwarmed"]),
    dict(check=WARM, why="never warms: no waste, but no hit gained either",
         source='''
def should_warm(request, probability):
    return False
''', feedback=["warmed none of the 3,005 predictions"]),

    # -- climb_step ------------------------------------------------------------------------------
    dict(check=CLIMB, why="moves on ties (>=): wanders along a flat objective",
         source='''
def climb_step(objective, x, step, lo, hi):
    best, best_score = x, objective(x)
    for n in (x - step, x + step):
        if lo <= n <= hi and objective(n) >= best_score:
            best, best_score = n, objective(n)
    return best
''', feedback=["the step on a flat objective to be 50, got 55", "strictly better"]),
    dict(check=CLIMB, why="takes the first neighbour that improves instead of the better of the two",
         source='''
def climb_step(objective, x, step, lo, hi):
    for n in (x - step, x + step):
        if lo <= n <= hi and objective(n) > objective(x):
            return n
    return x
''', feedback=["(x - 49) ** 2", "to be 55, got 45", "take the better one"]),
    dict(check=CLIMB, why="treats the bounds as exclusive: a neighbour on hi is left out",
         source='''
def climb_step(objective, x, step, lo, hi):
    best, best_score = x, objective(x)
    for n in (x - step, x + step):
        if lo < n < hi and objective(n) > best_score:
            best, best_score = n, objective(n)
    return best
''', feedback=["with hi = 100 to be 100, got 95", "exactly on the bound"]),
    dict(check=CLIMB, why="clips a neighbour onto the bound instead of leaving it out",
         source='''
def climb_step(objective, x, step, lo, hi):
    best, best_score = x, objective(x)
    for n in (x - step, x + step):
        n = min(max(n, lo), hi)
        if objective(n) > best_score:
            best, best_score = n, objective(n)
    return best
''', feedback=["a step that would leave [0, 100] to be 98, got 100", "do not move them onto the bound"]),

    # -- thresholds_reached ----------------------------------------------------------------------
    dict(check=THRESH, why="strictly greater: landing exactly on a threshold does not count",
         source='''
def thresholds_reached(committed_usd, budget_usd, thresholds=(0.5, 0.8, 1.0)):
    return [t for t in thresholds if committed_usd > t * budget_usd]
''', feedback=["exactly half of $2.00 to be [0.5], got []", "landing exactly on it"]),
    dict(check=THRESH, why="ignores the thresholds argument and checks the default three",
         source='''
def thresholds_reached(committed_usd, budget_usd, thresholds=(0.5, 0.8, 1.0)):
    return [t for t in (0.5, 0.8, 1.0) if committed_usd >= t * budget_usd]
''', feedback=["custom thresholds (0.25, 0.9) to be [0.25, 0.9]", "use the thresholds argument"]),
    dict(check=THRESH, why="sorts the thresholds: the caller's order is lost",
         source='''
def thresholds_reached(committed_usd, budget_usd, thresholds=(0.5, 0.8, 1.0)):
    return [t for t in sorted(thresholds) if committed_usd >= t * budget_usd]
''', feedback=["thresholds given as (1.0, 0.5) to be [1.0, 0.5], got [0.5, 1.0]", "keep the order given"]),
    dict(check=THRESH, why="returns only the highest threshold reached, not the list",
         source='''
def thresholds_reached(committed_usd, budget_usd, thresholds=(0.5, 0.8, 1.0)):
    reached = [t for t in thresholds if committed_usd >= t * budget_usd]
    return reached[-1] if reached else None
''', feedback=["thresholds reached by $1.20 of $2.00 to be [0.5], got 0.5"]),

    # -- arm_of ----------------------------------------------------------------------------------
    dict(check=ARM, why="reads the digest little-endian",
         source='''
import hashlib


def arm_of(user, salt, share_b=0.5):
    digest = hashlib.blake2b(f"{salt}\\x1f{user}".encode("utf-8"), digest_size=8).digest()
    return "B" if int.from_bytes(digest, "little") / 2 ** 64 < share_b else "A"
''', feedback=["salt 'course-06', share_b 0.5: expected arm", "the separator character"]),
    dict(check=ARM, why="leaves the separator out of the hashed text",
         source='''
import hashlib


def arm_of(user, salt, share_b=0.5):
    digest = hashlib.blake2b(f"{salt}{user}".encode("utf-8"), digest_size=8).digest()
    return "B" if int.from_bytes(digest, "big") / 2 ** 64 < share_b else "A"
''', feedback=["salt 'course-06', share_b 0.5: expected arm", "the separator character"]),
    dict(check=ARM, why="writes the separator in a raw string: a backslash and three letters",
         source='''
import hashlib


def arm_of(user, salt, share_b=0.5):
    text = salt + r"\\x1f" + user
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return "B" if int.from_bytes(digest, "big") / 2 ** 64 < share_b else "A"
''', feedback=["salt 'course-06', share_b 0.5: expected arm"]),
    dict(check=ARM, why="uses Python's hash(), which changes with every process",
         source='''
def arm_of(user, salt, share_b=0.5):
    return "B" if (hash((salt, user)) % 10_000) / 10_000 < share_b else "A"
''', feedback=["salt 'course-06', share_b 0.5: expected arm"]),

    # -- is_loopback_ip --------------------------------------------------------------------------
    dict(check=LOOP, why="judges the text by its start: a name beginning with 127. passes",
         source='''
def is_loopback_ip(host):
    return host.startswith("127.") or host == "::1"
''', feedback=["is_loopback_ip('127.0.0.1.nip.io') gave True", "only 127.0.0.0/8 and ::1 are this machine"]),
    dict(check=LOOP, why="checks the IPv4 loopback network only: refuses ::1",
         source='''
import ipaddress


def is_loopback_ip(host):
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return False
''', feedback=["is_loopback_ip('::1') gave False", "::1 is the IPv6 loopback"]),
    dict(check=LOOP, why="parses without catching the error a name raises",
         source='''
import ipaddress


def is_loopback_ip(host):
    return ipaddress.ip_address(host).is_loopback
''', feedback=["ValueError"]),
    dict(check=LOOP, why="lets the name localhost through",
         source='''
import ipaddress


def is_loopback_ip(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
''', feedback=["is_loopback_ip('localhost') gave True", "refuses every name"]),
]
