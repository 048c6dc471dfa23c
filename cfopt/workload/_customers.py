"""ContentFlow's customers: who they are, what they favour, and how they type.

A customer is a small business in one domain with three favourite tasks and a writing style.
The style changes only what cannot change meaning: case, a leading politeness phrase, the
final punctuation, and now and then a stray space. A customer sending from ContentFlow's UI
(``app``) sends the canonical prompt as is.

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

from ._vocabulary import DOMAINS, TASKS, Task

__all__ = ["Customer", "make_customers", "restyle", "APP_SHARE", "LOWER_SHARE", "NOISE_SHARE"]

APP_SHARE = 0.4      # customers who send the canonical prompt from the UI
LOWER_SHARE = 0.25   # of the others: who type in lower case
NOISE_SHARE = 0.08   # of requests typed by hand: a stray double or trailing space
_PREFIXES = (("", 0.55), ("Please ", 0.2), ("Could you ", 0.1), ("Can you please ", 0.09),
             ("Kindly ", 0.06))
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
        customers.append(Customer(
            id=f"u{i + 1:04d}", domain=rng.choice(sorted(DOMAINS)), favourites=tuple(favourites),
            bulk_task=bulk[0], app=app,
            prefix="" if app else rng.choices(*zip(*_PREFIXES))[0],
            lower=not app and rng.random() < LOWER_SHARE,
            ending="keep" if app else rng.choices(*zip(*_ENDINGS))[0]))
    return customers


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
        head = customer.prefix + head[0].lower() + head[1:]
    if customer.lower:
        head = head.lower()
    if not quotes:
        body = head.rstrip(".")
        if customer.ending == "drop":
            head = body
        elif customer.ending in ("!", ".."):
            head = body + customer.ending
        if polite and customer.prefix.startswith(("Could", "Can")):
            head = head.rstrip(".!") + "?"
    text = head + sep + quoted
    if rng.random() < NOISE_SHARE:
        words = text.split(" ")
        i = rng.randrange(len(words))
        text = " ".join(words[:i]) + "  " + " ".join(words[i:]) if i else text + " "
    return text
