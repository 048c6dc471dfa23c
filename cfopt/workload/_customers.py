"""ContentFlow's customers: who they are, what they favour, and how they type.

A customer is a small business in one domain with three favourite tasks and a writing style.
The style never changes what is asked: a customer sending from ContentFlow's UI (``app``) sends
the canonical prompt as is; one who types by hand may put courtesy around it (``PREFIXES``,
``SUFFIXES`` in ``_paraphrase``), type in lower case, change the final punctuation, leave a
stray space, use another order of the same parts (``reorder``), their own words for the
template's (``words``), and, if careless, slip on a key now and then (``TYPO_RATE``). Text a
prompt quotes (a review, a snippet to translate) is pasted: it keeps its case, punctuation and
spelling.

>>> import random
>>> c = Customer("u0001", "coffee", (), None, prefix="Could you ", lower=True, app=False)
>>> restyle("Write a haiku about cold brew.", c, random.Random(1))
'could you write a haiku about cold brew?'
>>> restyle("Translate into French: Save 10%.", c, random.Random(1), quotes=True)
'could you translate into french: Save 10%.'
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from ._paraphrase import PREFIXES, REORDERINGS, SUFFIXES, reword, synonym_choices, typo
from ._vocabulary import DOMAINS, TASKS, Task

__all__ = ["Customer", "make_customers", "restyle", "phrase", "APP_SHARE", "LOWER_SHARE",
           "NOISE_SHARE", "REORDER_SHARE", "REWORD_SHARE", "CARELESS_SHARE", "TYPO_RATE"]

# All assumed (no public trace records how customers word their requests).
APP_SHARE = 0.4       # customers who send the canonical prompt from the UI
LOWER_SHARE = 0.25    # of the others: who type in lower case
NOISE_SHARE = 0.08    # of requests typed by hand: a stray double or trailing space
REORDER_SHARE = 0.25  # of the others: who put the parts of a request in another order
REWORD_SHARE = 0.25   # of the others: who use their own words for the template's
CARELESS_SHARE = 0.25  # of the others: who make typos ...
TYPO_RATE = 0.12      # ... in this share of their requests (one slip each)
_ENDINGS = (("keep", 0.6), ("drop", 0.3), ("!", 0.05), ("..", 0.05))


@dataclass(slots=True)
class Customer:
    """One customer: domain, favourite tasks, bulk job, writing style, and history."""

    id: str
    domain: str
    favourites: tuple[Task, ...]
    bulk_task: Task | None
    prefix: str = ""           # a leading politeness phrase, or ""
    lower: bool = False        # types in lower case
    ending: str = "keep"       # keep | drop | "!" | "..": what happens to the final period
    app: bool = True           # sends canonical prompts from the UI
    suffix: str = ""           # courtesy after the request: ", please", " Thanks!" ...
    reorder: int | None = None  # which of a task's ``REORDERINGS`` this customer uses, if any
    words: dict[str, str] | None = field(default=None, repr=False)  # own words, if any
    careless: bool = False     # makes typos (in ``TYPO_RATE`` of requests)
    habits: list[list] = field(default_factory=list, repr=False)  # [[intent, times asked]]


def make_customers(seed: int, count: int) -> list[Customer]:
    """Return ``count`` customers drawn from their own seeded stream."""
    rng = random.Random(f"cfopt-workload:{seed}:users")
    weights = [t.weight for t in TASKS]
    customers = []
    for i in range(count):
        favourites: list[Task] = []
        while len(favourites) < 3:
            task = rng.choices(TASKS, weights=weights)[0]
            if task not in favourites:
                favourites.append(task)
        bulk = [t for t in favourites if t.bulk] or [rng.choice([t for t in TASKS if t.bulk])]
        app = rng.random() < APP_SHARE
        customer = Customer(
            id=f"u{i + 1:04d}", domain=rng.choice(sorted(DOMAINS)), favourites=tuple(favourites),
            bulk_task=bulk[0], app=app,
            prefix="" if app else rng.choices(*zip(*PREFIXES))[0],
            lower=not app and rng.random() < LOWER_SHARE,
            ending="keep" if app else rng.choices(*zip(*_ENDINGS))[0])
        if not app:
            customer.suffix = rng.choices(*zip(*SUFFIXES))[0]
            customer.reorder = rng.randrange(2) if rng.random() < REORDER_SHARE else None
            customer.words = synonym_choices(rng) if rng.random() < REWORD_SHARE else None
            customer.careless = rng.random() < CARELESS_SHARE
        customers.append(customer)
    return customers


def phrase(task: Task, slots: dict[str, str], customer: Customer, rng: random.Random, *,
           form: bool = False) -> str:
    """Return the request for ``task`` with these slot texts as ``customer`` words it.

    The order and words of the template are the customer's; slot texts are kept, except for a
    typo (never in a quoted text, which comes after the colon). ``form``: the request comes
    from one of ContentFlow's forms (critical copy: legal notices, patient information, press
    releases), so its words are the template's; only courtesy, case and punctuation vary.
    """
    template = task.template
    if form:
        return template.format(**slots)
    if customer.reorder is not None and task.name in REORDERINGS:
        variants = REORDERINGS[task.name]
        template = variants[customer.reorder % len(variants)]
    if customer.words:
        template = reword(template, customer.words)
    # Quoted text (after the colon) is pasted, never mistyped: hold it out while slipping.
    after = template.rsplit(":", 1)[-1] if ":" in template else ""
    quoted = [k for k in slots if "{" + k + "}" in after]
    held = {k: "\x00%d\x00" % i for i, k in enumerate(quoted)}
    text = template.format(**{k: held.get(k, v) for k, v in slots.items()})
    if customer.careless and rng.random() < TYPO_RATE:
        text = typo(text, rng)
    for k, mark in held.items():
        text = text.replace(mark, slots[k])
    return text


def restyle(prompt: str, customer: Customer, rng: random.Random, *, quotes: bool = False,
            polite: bool = True) -> str:
    """Return ``prompt`` as ``customer`` types it: the same meaning, their own surface form.

    With ``quotes`` the prompt ends with quoted text after a colon (a review, a snippet to
    translate): only the instruction before it changes. ``polite=False`` (media prompts, which
    are noun phrases) takes no politeness phrase.
    """
    if customer.app:
        return prompt
    head, sep, quoted = re.split(r"(:\s+)", prompt, maxsplit=1) if quotes else (prompt, "", "")
    if polite and customer.prefix:
        # "For our May newsletter, could you write ...": courtesy goes before the verb.
        front = re.match(r"(?:For|In|From) [^,:]+, ", head)
        cut = front.end() if front else 0
        prefix = customer.prefix if not cut else customer.prefix[0].lower() + customer.prefix[1:]
        head = head[:cut] + prefix + head[cut].lower() + head[cut + 1:]
    if customer.lower:
        head = head.lower()
    if not quotes:
        body = head.rstrip(".")
        if customer.ending == "drop":
            head = body
        elif customer.ending in ("!", ".."):
            head = body + customer.ending
        question = polite and customer.prefix.startswith(("Could", "Can", "Would", "Hi, could"))
        if question:
            head = head.rstrip(".!") + "?"
        if polite and customer.suffix and not (customer.suffix == ", please" and re.search(
                r"please|kindly", customer.prefix, re.IGNORECASE)):
            if customer.suffix.startswith(","):
                head = head.rstrip(".!?") + customer.suffix + ("?" if question else ".")
            else:
                head = (head if head.endswith(("?", "!", ".")) else head + ".") + customer.suffix
    text = head + sep + quoted
    if rng.random() < NOISE_SHARE:
        words = text.split(" ")
        i = rng.randrange(len(words))
        text = " ".join(words[:i]) + "  " + " ".join(words[i:]) if i else text + " "
    return text
