"""Plausible wrong answers to notebook 02's exercises, each with what its check must say.

Run by tests/test_exercises_wrong_answers.py: each ``source`` replaces the learner's cell, the
check must fail saying every ``feedback`` string, and the grader's probe must give less than
full credit.
"""

KEY = "my_cache_key shares paraphrases and splits everything else"
LFU = "LeastFrequentlyUsed evicts the least read entry, the oldest of a tie"
PLAN = "my_memory_plan fits the budget and catches the most hits"

# The class as the exercise gives it, with a popitem of the learner's.
_LFU_HEAD = '''
class LeastFrequentlyUsed(cachetools.Cache):
    def __init__(self, maxsize, getsizeof=None):
        super().__init__(maxsize, getsizeof)
        self.uses = {}

    def __getitem__(self, key):
        value = super().__getitem__(key)
        self.uses[key] = self.uses.get(key, 0) + 1
        return value

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self.uses.setdefault(key, 0)

    def __delitem__(self, key):
        super().__delitem__(key)
        self.uses.pop(key, None)
'''

WRONG = [
    # -- Exercise 1: the cache key ------------------------------------------------------------
    dict(check=KEY, why="hashes the prompt as typed: paraphrases get keys of their own",
         source='''
def my_cache_key(provider, model, prompt, params, tenant):
    body = {"tenant": tenant, "provider": provider, "model": model, "prompt": prompt, "params": params}
    return f"{tenant}:" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
''',
         feedback=["means the same as", "normalize the prompt"]),
    dict(check=KEY, why="writes the parameters with str(): the same parameters in another order get another key",
         source='''
def my_cache_key(provider, model, prompt, params, tenant):
    text = "|".join([tenant, provider, model, normalize_prompt(prompt), str(params)])
    return f"{tenant}:" + hashlib.sha256(text.encode()).hexdigest()
''',
         feedback=["in another order"]),
    dict(check=KEY, why="lower-cases the whole prompt instead of normalize_prompt: names lose their capitals",
         source='''
def my_cache_key(provider, model, prompt, params, tenant):
    text = " ".join(prompt.lower().replace("please", "").split()).strip(" .!?")
    body = {"provider": provider, "model": model, "prompt": text, "params": params, "tenant": tenant}
    return f"{tenant}:" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
''',
         feedback=["'Define Polish'", "normalize_prompt"]),
    dict(check=KEY, why="leaves the output parameters out of the key",
         source='''
def my_cache_key(provider, model, prompt, params, tenant):
    body = {"provider": provider, "model": model, "prompt": normalize_prompt(prompt), "tenant": tenant}
    return f"{tenant}:" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
''',
         feedback=["changing params", "wrong answer"]),
    dict(check=KEY, why="no tenant prefix: one tenant's entries cannot be selected together",
         source='''
def my_cache_key(provider, model, prompt, params, tenant):
    body = {"provider": provider, "model": model, "prompt": normalize_prompt(prompt),
            "params": params, "tenant": tenant}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
''',
         feedback=["starting with 'acme:'"]),

    # -- Exercise 2: least frequently used ---------------------------------------------------------
    dict(check=LFU, why="the scan accepts an equal count (<= for <): ties evict the newest",
         source=_LFU_HEAD + '''
    def popitem(self):
        victim = None
        for key in self:
            if victim is None or self.uses[key] <= self.uses[victim]:
                victim = key
        if victim is None:
            raise KeyError("the cache is empty")
        return victim, self.pop(victim)
''',
         feedback=["x is the oldest", "the oldest goes"]),
    dict(check=LFU, why="looks at the keys newest first: ties evict the newest",
         source=_LFU_HEAD + '''
    def popitem(self):
        if not self:
            raise KeyError("the cache is empty")
        key = min(reversed(list(self)), key=lambda k: self.uses[k])
        return key, self.pop(key)
''',
         feedback=["should evict x"]),
    dict(check=LFU, why="min() of an empty cache raises ValueError, not KeyError",
         source=_LFU_HEAD + '''
    def popitem(self):
        key = min(self, key=lambda k: self.uses[k])
        return key, self.pop(key)
''',
         feedback=["empty cache", "ValueError", "KeyError"]),
    dict(check=LFU, why="returns the key alone, not the (key, value) pair",
         source=_LFU_HEAD + '''
    def popitem(self):
        if not self:
            raise KeyError("the cache is empty")
        key = min(self, key=lambda k: self.uses[k])
        del self[key]
        return key
''',
         feedback=["('x', 42)"]),
    dict(check=LFU, why="evicts the most read entry (max for min)",
         source=_LFU_HEAD + '''
    def popitem(self):
        if not self:
            raise KeyError("the cache is empty")
        key = max(self, key=lambda k: self.uses[k])
        return key, self.pop(key)
''',
         feedback=["should evict 'b'"]),

    dict(check=LFU, why="finds the least read entry but forgets to remove it",
         source=_LFU_HEAD + '''
    def popitem(self):
        if not self:
            raise KeyError("the cache is empty")
        key = min(self, key=lambda k: self.uses[k])
        return key, self[key]
''',
         feedback=["must remove the entry it returns"]),

    # -- Exercise 3: the memory plan (a decision) ------------------------------------------------
    dict(check=PLAN, why="keeps every type for an hour in 1,000 entries: the photos alone overflow",
         source='''
def my_memory_plan():
    return {"capacity": 1000, "ttl_s": dict.fromkeys(TYPES, 3600)}
''',
         feedback=["over the 1,000 KB budget", "photo"]),
    dict(check=PLAN, why="bounds memory by a TTL alone (five minutes everywhere): a busy stretch overflows",
         source='''
def my_memory_plan():
    return {"capacity": 5000, "ttl_s": dict.fromkeys(TYPES, 300)}
''',
         feedback=["over the 1,000 KB budget", "not their bytes"]),
    dict(check=PLAN, why="the example plan as it is: every type an hour in 300 entries, most bytes on photos",
         source='''
def my_memory_plan():
    return {"capacity": 300, "ttl_s": dict.fromkeys(TYPES, 3600)}
''',
         feedback=["below the best known", "photo 291 of 404"]),
    dict(check=PLAN, why="a timid plan: every answer kept one minute",
         source='''
def my_memory_plan():
    return {"capacity": 600, "ttl_s": dict.fromkeys(TYPES, 60)}
''',
         feedback=["below the best known"]),
    dict(check=PLAN, why="0 taken for 'never expires': the types meant to stay are kept out of memory",
         source='''
def my_memory_plan():
    return {"capacity": 600, "ttl_s": {**dict.fromkeys(TYPES, 0), "photo": 60}}
''',
         feedback=["below the best known", "text 0 of 1977"]),
    dict(check=PLAN, why="names only the types it thought of",
         source='''
def my_memory_plan():
    return {"capacity": 600, "ttl_s": {"text": 3600, "photo": 60}}
''',
         feedback=["gives no TTL for analysis"]),
]

