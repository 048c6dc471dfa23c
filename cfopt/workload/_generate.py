"""Generate realistic ContentFlow traffic, deterministically from a seed.

>>> reqs = generate(50, seed=1, duration_s=300)
>>> len(reqs), reqs[0].id, all(a.t < b.t for a, b in zip(reqs, reqs[1:]))
(50, 'r000001', True)
>>> generate(50, seed=1, duration_s=300) == reqs
True

The model, in order:

1. Arrivals (``_arrivals``), calibrated on the Azure LLM inference trace (Patel et al.,
   "Splitwise: Efficient generative LLM inference using phase splitting", ISCA 2024;
   Azure/AzurePublicDataset, CC-BY 4.0; figures in ``_calibration``): a Poisson process whose
   rate wanders from minute to minute like the conv service's (rate CV 0.213, lag-1
   autocorrelation 0.81), plus ``BULK_SHARE`` (15%, assumed) of requests in bursts shaped like
   the code service's (size median 5, p90 18.8; 0.059 s apart).
2. Customers (``_customers``): about one per ``REQUESTS_PER_USER`` requests (``MIN_USERS`` to
   ``MAX_USERS``), each a small business in one domain, with a Zipf-like activity (a few heavy
   users), three favourite tasks, a writing style, and sessions: ``SESSION_SHARE`` of requests
   come from someone who just sent one.
3. Intents: each request is
   - a one-off long-tail request (``TAIL_SHARE``): fresh slot values, a document never seen;
   - a popular intent (``POPULAR_SHARE``): rank drawn with Zipf exponent ``ZIPF_S`` from one
     catalog of ``POPULAR_PER_REQUEST`` x n intents (at least ``MIN_POPULAR``), each of a task
     drawn by the tasks' weights;
   - else a habit: a Chinese-restaurant draw from the customer's own past intents (a new one
     with probability ``HABIT_NEW / (HABIT_NEW + past requests)``, from a favourite task and the
     customer's own domain), so a customer repeats what it asked before; ``LOOKALIKE_SHARE``
     of those repeats change one slot instead ("the same, about dogs", "5 lines, not 3"): a
     topic- or number-swapped look-alike, another intent.
   A bulk burst is one job: one customer, one task, the other slots fixed, one item slot (the
   product, the review, the snippet...) varying: a run of look-alikes.
4. Surface form: an intent has one canonical prompt; a customer's style (``_customers``,
   ``_paraphrase``) may put its parts in another order, use other words for the template's
   ("Compose" for "Write"), slip on a key, lower its case, wrap it in courtesy ("Hi, could
   you ...? Thanks!"), change or drop the final punctuation, and now and then double a space;
   text the prompt quotes (a review to classify, a snippet to translate) keeps its case,
   punctuation and spelling. Those paraphrases keep the intent; any other difference (topic,
   number, on/off, with/without) is another intent.
5. Per intent, ``quality`` and ``max_tokens`` are fixed (a cache may key on them); ``priority``
   varies per request. ``max_tokens`` is a cap with headroom, as an app sets it, not the
   answer's expected length: a "300-word" task gets 300 x 1.34 tokens per word x
   ``CAP_HEADROOM`` (1.5), rounded up to the next hundred (700); other tasks a fixed cap per
   task (``_vocabulary``: 16 for a label, 128 for a caption, 1024 for free-length copy). The
   answers themselves are the simulator's business (``cfopt.providers.lengths``: lengths asked
   for in the prompt, else the Azure conv trace's output lengths); with these caps fewer than
   1% of them are cut short, even on opus, the longest writer (``tests/test_workload_caps.py``).

The shares in 2 and 3 are assumptions, not measurements, tuned so that the hit-rate ceiling
(1 - distinct intents / requests) lands near 0.75 at 5,000 requests an hour: measured
0.730-0.735 for seeds 1-3, 0.70-0.78 from 4,000 to 8,000 requests (``datasets/README.md``).
"""
from __future__ import annotations

import hashlib
import math
import random
import re
from collections import deque
from dataclasses import dataclass
from itertools import accumulate

from ..errors import ConfigError
from . import _arrivals as arrivals
from ._customers import Customer, make_customers, phrase, restyle
from ._format import PRIORITIES, QUALITIES, Request
from ._vocabulary import DOC_SLOTS, DOMAINS, POOLS, SNIPPETS, TASKS, Task, document

__all__ = ["generate", "REQUESTS_PER_USER", "MIN_USERS", "MAX_USERS", "TAIL_SHARE",
           "POPULAR_SHARE", "ZIPF_S", "POPULAR_PER_REQUEST", "MIN_POPULAR", "HABIT_NEW",
           "SESSION_SHARE", "FAVOURITE_SHARE", "DOC_POOL", "CAP_HEADROOM", "LOOKALIKE_SHARE"]

# All assumed (no trace measures them); tuned for a hit-rate ceiling near 0.75 at 5,000 requests.
REQUESTS_PER_USER = 14     # one customer per 14 requests ...
MIN_USERS = 25             # ... but at least 25 customers (small files stay varied) ...
MAX_USERS = 400            # ... and at most 400 ("a few hundred")
TAIL_SHARE = 0.10          # one-off long-tail requests
POPULAR_SHARE = 0.45       # requests for a popular intent
ZIPF_S = 1.0               # popularity of rank r is proportional to 1 / r ** ZIPF_S
POPULAR_PER_REQUEST = 0.06  # popular catalog size per request generated ...
MIN_POPULAR = 30           # ... and at least this many
HABIT_NEW = 1.2            # Chinese-restaurant concentration: higher, fewer repeats of habits
SESSION_SHARE = 0.4        # requests from a customer among the last six active
FAVOURITE_SHARE = 0.8      # new habits from one of the customer's three favourite tasks
DOC_POOL = 25              # documents per domain and kind that customers share and repeat
LOOKALIKE_SHARE = 0.06     # repeats of a habit that change one slot: a look-alike, not a repeat
# Also assumed: an app asking for N words sets max_tokens to N x tokens per word x this, so that
# a long answer is not cut short (a 500-word post gets 1,100 tokens, not 670).
CAP_HEADROOM = 1.5
_ITEM_SLOTS = ("product", "review", "ticket", "article", "snippet", "topic", "photo")
# What a look-alike changes, first found first: the subject, else a number or a switch.
_SWAP_SLOTS = ("topic", "product", "scene", "campaign", "health", "news", "count", "kcount",
               "bullets", "seconds", "pwords", "emoji", "switch", "people", "color", "month",
               "language", "platform", "backdrop")
_PHOTO_MODS = ("", " at night", " close-up", " aerial view", " black and white")


@dataclass(frozen=True, slots=True)
class _Intent:
    label: str
    task: Task
    prompt: str
    quality: str
    max_tokens: int | None
    slots: dict = None  # type: ignore[assignment]  # slot name -> (text, label part)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class _Generator:
    """The state of one generation run: users, the popular catalog, intents made so far."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self.rng = random.Random(f"cfopt-workload:{seed}:content")
        self.intents: dict[str, _Intent] = {}
        self.tail_counter = 0
        count = max(MIN_USERS, min(MAX_USERS, round(n / REQUESTS_PER_USER)))
        self.users = make_customers(seed, count)
        self.activity = list(accumulate(round(1.0 / (rank + 1) ** 0.8, 12)
                                        for rank in range(len(self.users))))
        self.recent: deque[Customer] = deque(maxlen=6)
        self.catalog_size = max(MIN_POPULAR, round(n * POPULAR_PER_REQUEST))
        self.zipf = list(accumulate(round(1 / (rank + 1) ** ZIPF_S, 12)
                                    for rank in range(self.catalog_size)))

    # -- intents ---------------------------------------------------------------------------
    def _slot(self, name: str, domain: str, rng: random.Random, tail: bool) -> tuple[str, str]:
        """Return (text, label part) for one slot."""
        topics, products, scenes, photos = DOMAINS[domain]
        if name in DOC_SLOTS:
            if tail:
                self.tail_counter += 1
                k = 1000 + self.tail_counter
            else:
                k = int(DOC_POOL * rng.random() ** 2)  # low k: the documents everyone sends
            if name == "snippet":  # short UI strings: one shared list, not per domain
                k %= len(SNIPPETS)
                return SNIPPETS[k], f"snippet-{k}"
            text = document(name, domain, k)  # labelled by content: equal text, equal intent
            return text, f"{name}-{domain}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
        value = {"topic": topics, "product": products, "scene": scenes}.get(name)
        if value is not None:
            text = rng.choice(value)
        elif name == "photo":
            text = rng.choice(photos) + rng.choice(_PHOTO_MODS)
        else:
            text = rng.choice(POOLS[name])
        return text, _slug(text)

    def _intent(self, task: Task, slots: dict[str, tuple[str, str]]) -> _Intent:
        label = task.name + ":" + ":".join(slots[s][1] for s in task.slots)
        found = self.intents.get(label)
        if found is not None:
            return found
        prompt = task.template.format(**{k: v[0] for k, v in slots.items()})
        prop = random.Random(f"cfopt-intent:{label}")  # fixed per intent, whatever the seed
        quality = prop.choices(QUALITIES, weights=task.quality)[0]
        max_tokens = task.max_tokens
        if task.per_word:  # room for the words asked for and then some, in whole hundreds
            words = int(slots.get("words", slots.get("pwords"))[0])
            max_tokens = math.ceil(round(words * task.per_word * CAP_HEADROOM, 6) / 100) * 100
        intent = _Intent(label, task, prompt, quality, max_tokens, dict(slots))
        self.intents[label] = intent
        return intent

    def _fresh(self, task: Task, domain: str, rng: random.Random, tail: bool = False,
               fixed: dict | None = None) -> _Intent:
        slots = dict(fixed or {})
        for name in task.slots:
            if name not in slots:
                slots[name] = self._slot(name, domain, rng, tail)
        return self._intent(task, slots)

    def _popular(self) -> _Intent:
        rank = self.rng.choices(range(self.catalog_size), cum_weights=self.zipf)[0]
        rng = random.Random(f"cfopt-workload:{self.seed}:popular:{rank}")
        task = rng.choices(TASKS, weights=[t.weight for t in TASKS])[0]
        return self._fresh(task, rng.choice(sorted(DOMAINS)), rng)

    def _habit(self, user: Customer) -> _Intent:
        past = user.habits
        total = sum(c for _, c in past)
        if past and self.rng.random() >= HABIT_NEW / (HABIT_NEW + total):
            entry = self.rng.choices(past, weights=[c for _, c in past])[0]
            if self.rng.random() < LOOKALIKE_SHARE:
                alike = self._lookalike(entry[0], user)
                if alike is not None:
                    past.append([alike, 1])
                    return alike
            entry[1] += 1
            return entry[0]
        intent = self._fresh(self._task(user), user.domain, self.rng)
        past.append([intent, 1])
        return intent

    def _lookalike(self, intent: _Intent, user: Customer) -> _Intent | None:
        """Return ``intent`` with one slot changed (its subject, a number, a switch), or None."""
        name = next((s for s in _SWAP_SLOTS if s in intent.task.slots), None)
        if name is None:
            return None
        for _ in range(5):  # a draw may give the same value back
            text, part = self._slot(name, user.domain, self.rng, False)
            if part != intent.slots[name][1]:
                return self._intent(intent.task, {**intent.slots, name: (text, part)})
        return None

    def _task(self, user: Customer) -> Task:
        if self.rng.random() < FAVOURITE_SHARE:
            return self.rng.choices(user.favourites, weights=(0.5, 0.3, 0.2))[0]
        return self.rng.choices(TASKS, weights=[t.weight for t in TASKS])[0]

    # -- requests --------------------------------------------------------------------------
    def pick_user(self) -> Customer:
        if self.recent and self.rng.random() < SESSION_SHARE:
            user = self.rng.choice(list(self.recent))
        else:
            user = self.rng.choices(self.users, cum_weights=self.activity)[0]
        if user not in self.recent:
            self.recent.append(user)
        return user

    def interactive(self) -> tuple[Customer, _Intent]:
        user = self.pick_user()
        r = self.rng.random()
        if r < TAIL_SHARE:
            domain = user.domain if self.rng.random() < 0.7 else self.rng.choice(sorted(DOMAINS))
            return user, self._fresh(self._task(user), domain, self.rng, tail=True)
        if r < TAIL_SHARE + POPULAR_SHARE:
            return user, self._popular()
        return user, self._habit(user)

    def bulk_job(self) -> tuple[Customer, Task, dict]:
        user = self.rng.choices(self.users, cum_weights=self.activity)[0]
        task = user.bulk_task
        item = next(s for s in _ITEM_SLOTS if s in task.slots)
        fixed = {s: self._slot(s, user.domain, self.rng, False) for s in task.slots if s != item}
        return user, task, fixed

    def bulk_item(self, user: Customer, task: Task, fixed: dict) -> _Intent:
        return self._fresh(task, user.domain, self.rng, tail=self.rng.random() < 0.3, fixed=fixed)

    def render(self, user: Customer, intent: _Intent) -> str:
        """Return the prompt of ``intent`` as ``user`` types it."""
        task = intent.task
        quotes = any(s in DOC_SLOTS for s in task.slots)
        prompt = intent.prompt if user.app else phrase(
            task, {k: v[0] for k, v in intent.slots.items()}, user, self.rng,
            form=intent.quality == "critical")
        return restyle(prompt, user, self.rng, quotes=quotes,
                       polite=task.type in ("text", "analysis"))


def _milliseconds(times: list[float], duration_s: float) -> list[int]:
    """Return sorted ``times`` as strictly increasing whole milliseconds below ``duration_s``."""
    ms, last = [], -1
    for t in times:
        last = max(round(t * 1000), last + 1)
        ms.append(last)
    limit = math.ceil(duration_s * 1000) - 1
    for i in range(len(ms) - 1, -1, -1):  # a crowded end moves back; n <= limit + 1 fits
        limit = min(ms[i], limit)
        ms[i] = limit
        limit -= 1
    return ms


def generate(n: int, *, seed: int, duration_s: float = 3600.0) -> list[Request]:
    """Return ``n`` ContentFlow requests over ``duration_s`` seconds, the same for the same seed."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s >= 1):
        raise ConfigError(f"duration_s must be at least 1 second, got {duration_s!r}")
    if n > duration_s * 1000:
        raise ConfigError(f"{n} requests do not fit in {duration_s} s at one per millisecond")
    arng = random.Random(f"cfopt-workload:{seed}:arrivals")
    rates = arrivals.minute_rates(arng, math.ceil(duration_s / 60))
    sizes = arrivals.burst_sizes(arng, round(n * arrivals.BULK_SHARE))
    alone = arrivals.interactive_times(arng, n - sum(sizes), rates, duration_s)
    events = [(t, -1, 0) for t in alone]
    for b, times in enumerate(arrivals.burst_times(arng, sizes, rates, duration_s)):
        events += [(t, b, i) for i, t in enumerate(times)]
    events.sort()

    gen = _Generator(n, seed)
    jobs: dict[int, tuple] = {}
    out: list[Request] = []
    stamps = _milliseconds([t for t, _, _ in events], duration_s)
    for number, ((_, burst, _), ms) in enumerate(zip(events, stamps), 1):
        if burst < 0:
            user, intent = gen.interactive()
            priority = gen.rng.choices(PRIORITIES, weights=intent.task.priority)[0]
        else:
            if burst not in jobs:
                jobs[burst] = gen.bulk_job()
            user, task, fixed = jobs[burst]
            intent = gen.bulk_item(user, task, fixed)
            priority = "low" if gen.rng.random() < 0.8 else "medium"
        out.append(Request(
            t=ms / 1000, type=intent.task.type, prompt=gen.render(user, intent),
            id=f"r{number:06d}", user=user.id, task=intent.task.name, quality=intent.quality,
            priority=priority, max_tokens=intent.max_tokens, intent=intent.label))
    return out
