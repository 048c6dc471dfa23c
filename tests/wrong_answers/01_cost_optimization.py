"""Plausible wrong answers to notebook 01's exercises, each with what its check must say.

Run by tests/test_exercises_wrong_answers.py: each ``source`` replaces the learner's cell, the
check must fail saying every ``feedback`` string, and the probe must give less than full credit.
"""

ROUTE = "route picks the cheapest adequate model"
RULES = "routing_rules keep the bar at the lowest cost"
ABBR = "abbreviate replaces whole words outside code"

WRONG = [
    # -- route --------------------------------------------------------------------------------
    dict(check=ROUTE, why="a model whose score equals the need is refused (> for >=)",
         source='''
def route(analysis):
    for model in CHEAPEST_FIRST:
        if QUALITY.score(model, analysis.complexity) > analysis.need:
            return model
    return QUALITY.premium
''', feedback=["keeps exactly", "meets the need"]),
    dict(check=ROUTE, why="walks the models from the dearest: returns the best adequate model, not the cheapest",
         source='''
def route(analysis):
    for model in reversed(CHEAPEST_FIRST):
        if QUALITY.score(model, analysis.complexity) >= analysis.need:
            return model
    return QUALITY.premium
''', feedback=["dearer model than needed", "cheapest model first"]),
    dict(check=ROUTE, why="walks the quality table, which lists an older generation first",
         source='''
def route(analysis):
    for model in QUALITY.scores:
        if QUALITY.score(model, analysis.complexity) >= analysis.need:
            return model
    return QUALITY.premium
''', feedback=["route returned 'claude-", "expected one of"]),
    dict(check=ROUTE, why="returns None when no model meets the need",
         source='''
def route(analysis):
    for model in CHEAPEST_FIRST:
        if QUALITY.score(model, analysis.complexity) >= analysis.need:
            return model
''', feedback=["more than any model keeps", "went to None", "premium model"]),
    dict(check=ROUTE, why="reads every model's score at medium complexity, whatever the task's",
         source='''
def route(analysis):
    for model in CHEAPEST_FIRST:
        if QUALITY.score(model, "medium") >= analysis.need:
            return model
    return QUALITY.premium
''', feedback=["high-complexity task that needs", "at high complexity"]),

    # -- routing_rules (the decision) ---------------------------------------------------------
    dict(check=RULES, why="everything on the cheapest model: the bar breaks",
         source='''
def routing_rules():
    return {"low": "haiku", "medium": "haiku", "high": "haiku"}
''', feedback=["the bar is 95%", "high: 15 requests on claude-haiku-5-5"]),
    dict(check=RULES, why="the natural ladder (cheap for easy, middle for medium, best for hard) misses the bar",
         source='''
def routing_rules():
    return {"low": "haiku", "medium": "sonnet", "high": "opus"}
''', feedback=["94.19%", "the bar is 95%", "low: 58 requests on claude-haiku-5-5"]),
    dict(check=RULES, why="everything on the premium model: keeps the bar at more than three times the best cost",
         source='''
def routing_rules():
    return {"low": "opus", "medium": "opus", "high": "opus"}
''', feedback=["more than the best rules", "Where does a dollar buy the most quality?"]),
    dict(check=RULES, why="the router's shape, a model per complexity for a per-task need: keeps the bar, twice the cost",
         source='''
def routing_rules():
    return {"low": "sonnet", "medium": "sonnet", "high": "opus"}
''', feedback=["more than the best rules", "medium: 60 requests on claude-sonnet-5-5"]),
    dict(check=RULES, why="forgets a complexity",
         source='''
def routing_rules():
    return {"low": "opus", "medium": "haiku"}
''', feedback=["no model for high complexity"]),
    dict(check=RULES, why="names models the replay does not route to (an image model)",
         source='''
def routing_rules():
    return {"low": "flux_dev", "medium": "haiku", "high": "opus"}
''', feedback=["'flux_dev', not a Claude model"]),

    # -- abbreviate ---------------------------------------------------------------------------
    dict(check=ABBR, why="plain str.replace: parts of words and code change too",
         source='''
def abbreviate(text, long, short):
    return text.replace(long, short)
''', feedback=["'recreate' is not the word 'create'"]),
    dict(check=ABBR, why="whole words, but code is edited too",
         source='''
import re

def abbreviate(text, long, short):
    return re.sub(r"\\b" + re.escape(long) + r"\\b", short, text)
''', feedback=["fenced code must stay as it is"]),
    dict(check=ABBR, why="greedy code patterns: the prose between two code spans is taken for code",
         source='''
import re

def abbreviate(text, long, short):
    pieces = re.split(r"(```.*```|`.+`)", text, flags=re.DOTALL)
    word = re.compile(r"\\b" + re.escape(long) + r"\\b")
    return "".join(p if i % 2 else word.sub(short, p) for i, p in enumerate(pieces))
''', feedback=["two inline code spans on one line", "the prose between them is not code"]),
    dict(check=ABBR, why="the long phrase goes into the pattern unescaped: '.' is a wildcard",
         source='''
import re

def abbreviate(text, long, short):
    pieces = re.split(r"(```.*?```|`[^`\\n]*`)", text, flags=re.DOTALL)
    word = re.compile(r"\\b" + long + r"\\b")
    return "".join(p if i % 2 else word.sub(short, p) for i, p in enumerate(pieces))
''', feedback=["not a wildcard", "'125' stays"]),
    dict(check=ABBR, why="matches regardless of case",
         source='''
import re

def abbreviate(text, long, short):
    pieces = re.split(r"(```.*?```|`[^`\\n]*`)", text, flags=re.DOTALL)
    word = re.compile(r"\\b" + re.escape(long) + r"\\b", flags=re.IGNORECASE)
    return "".join(p if i % 2 else word.sub(short, p) for i, p in enumerate(pieces))
''', feedback=["case-sensitive", "'Create' stays"]),
    dict(check=ABBR, why="inline code protected, fenced blocks not (only the inline pattern)",
         source='''
import re

def abbreviate(text, long, short):
    pieces = re.split(r"(`[^`\\n]*`)", text)
    word = re.compile(r"\\b" + re.escape(long) + r"\\b")
    return "".join(p if i % 2 else word.sub(short, p) for i, p in enumerate(pieces))
''', feedback=["fenced code must stay as it is"]),
]
