"""Plausible wrong answers to notebook 00's exercises, each with what its check must say.

Run by tests/test_exercises_wrong_answers.py: each ``source`` replaces the learner's cell, the
check must fail saying every ``feedback`` string, and the probe must give less than full credit.
"""

A = "cost_of_call prices a call from the catalog"
B = "cost_of_call bills long prompts at the long-context prices"
C = "worst_case_text_cost bounds the text bill"

WRONG = [
    # -- cost_of_call: the prices ------------------------------------------------------------
    dict(check=A, why="prices per thousand tokens instead of per million",
         source='''
def cost_of_call(model, input_tokens, output_tokens, catalog=CATALOG):
    price = catalog.text[catalog.model(model).id]
    if price.long is not None and input_tokens > price.above_tokens:
        price = price.long
    return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1_000
''', feedback=["1,000x too high", "per million tokens"]),
    dict(check=A, why="bills the output tokens at the input rate (right only in the exercise profile)",
         source='''
def cost_of_call(model, input_tokens, output_tokens, catalog=CATALOG):
    price = catalog.text[catalog.model(model).id]
    if price.long is not None and input_tokens > price.above_tokens:
        price = price.long
    return (input_tokens + output_tokens) * price.input_per_mtok / 1e6
''', feedback=["output tokens at the input rate", "per million tokens"]),
    dict(check=A, why="prices the prompt only: the answer's tokens are forgotten",
         source='''
def cost_of_call(model, input_tokens, output_tokens, catalog=CATALOG):
    price = catalog.text[catalog.model(model).id]
    if price.long is not None and input_tokens > price.above_tokens:
        price = price.long
    return input_tokens * price.input_per_mtok / 1e6
''', feedback=["input tokens only"]),
    dict(check=A, why="looks the prices up by the name given: an alias such as 'haiku' is no key",
         source='''
def cost_of_call(model, input_tokens, output_tokens, catalog=CATALOG):
    price = catalog.text[model]
    if price.long is not None and input_tokens > price.above_tokens:
        price = price.long
    return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6
''', feedback=["KeyError", "full model id", "'haiku'"]),
    dict(check=A, why="prices with the global catalog, whatever catalog is passed",
         source='''
def cost_of_call(model, input_tokens, output_tokens, catalog=CATALOG):
    price = CATALOG.text[CATALOG.model(model).id]
    if price.long is not None and input_tokens > price.above_tokens:
        price = price.long
    return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6
''', feedback=["default catalog's price", "catalog=EXERCISE"]),

    # -- cost_of_call: long prompts ----------------------------------------------------------
    dict(check=B, why="ignores the long-context prices",
         source='''
def cost_of_call(model, input_tokens, output_tokens, catalog=CATALOG):
    price = catalog.text[catalog.model(model).id]
    return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6
''', feedback=["the normal price", "over haiku's threshold", "long-context prices"]),
    dict(check=B, why="moves a prompt of exactly above_tokens to the long prices (>= for >)",
         source='''
def cost_of_call(model, input_tokens, output_tokens, catalog=CATALOG):
    price = catalog.text[catalog.model(model).id]
    if price.long is not None and input_tokens >= price.above_tokens:
        price = price.long
    return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6
''', feedback=["exactly 100000 tokens", "normal prices"]),
    dict(check=B, why="bills only the tokens past the threshold at the long rate, like tax brackets",
         source='''
def cost_of_call(model, input_tokens, output_tokens, catalog=CATALOG):
    price = catalog.text[catalog.model(model).id]
    cost = (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6
    if price.long is not None and input_tokens > price.above_tokens:
        extra = input_tokens - price.above_tokens
        cost += extra * (price.long.input_per_mtok - price.input_per_mtok) / 1e6
    return cost
''', feedback=["only part of the request moved", "every token"]),
    dict(check=B, why="moves the input tokens to the long rate but keeps the output at the normal one",
         source='''
def cost_of_call(model, input_tokens, output_tokens, catalog=CATALOG):
    price = catalog.text[catalog.model(model).id]
    rate_in = price.input_per_mtok
    if price.long is not None and input_tokens > price.above_tokens:
        rate_in = price.long.input_per_mtok
    return (input_tokens * rate_in + output_tokens * price.output_per_mtok) / 1e6
''', feedback=["output tokens kept the normal rate", "output included"]),
    dict(check=B, why="hard-codes the list prices' threshold and factor instead of reading the catalog",
         source='''
def cost_of_call(model, input_tokens, output_tokens, catalog=CATALOG):
    price = catalog.text[catalog.model(model).id]
    cost = (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6
    return cost * 5 if input_tokens > 100_000 else cost
''', feedback=["catalog=EXERCISE", "read the threshold from the catalog"]),

    # -- worst_case_text_cost ----------------------------------------------------------------
    dict(check=C, why="counts every request, images and videos included",
         source='''
def worst_case_text_cost(requests, model, catalog=CATALOG):
    return sum(cost_of_call(model, count_tokens(r.prompt), r.max_tokens or DEFAULT_MAX_TOKENS, catalog)
               for r in requests)
''', feedback=["counts every request", "only text and analysis"]),
    dict(check=C, why="forgets analysis requests",
         source='''
def worst_case_text_cost(requests, model, catalog=CATALOG):
    return sum(cost_of_call(model, count_tokens(r.prompt), r.max_tokens or DEFAULT_MAX_TOKENS, catalog)
               for r in requests if r.type == "text")
''', feedback=["analysis requests are Claude calls too"]),
    dict(check=C, why="a request without max_tokens costs no output",
         source='''
def worst_case_text_cost(requests, model, catalog=CATALOG):
    return sum(cost_of_call(model, count_tokens(r.prompt), r.max_tokens or 0, catalog)
               for r in requests if r.type in TEXT_TYPES)
''', feedback=["without max_tokens", "DEFAULT_MAX_TOKENS"]),
    dict(check=C, why="counts the prompt's words as its tokens",
         source='''
def worst_case_text_cost(requests, model, catalog=CATALOG):
    return sum(cost_of_call(model, len(r.prompt.split()), r.max_tokens or DEFAULT_MAX_TOKENS, catalog)
               for r in requests if r.type in TEXT_TYPES)
''', feedback=["counted in words", "count_tokens"]),
    dict(check=C, why="does not pass the catalog on: always the default prices",
         source='''
def worst_case_text_cost(requests, model, catalog=CATALOG):
    return sum(cost_of_call(model, count_tokens(r.prompt), r.max_tokens or DEFAULT_MAX_TOKENS)
               for r in requests if r.type in TEXT_TYPES)
''', feedback=["default catalog's bill", "pass the catalog argument on"]),
]
