"""De-duplication: look-alikes never match, paraphrases do, scopes hold, the index agrees with
a full comparison, and the measured precision on MRPC and on the workload meets the bar."""
from __future__ import annotations

import random

import pytest

from cfopt.cache import CacheManager, MemoryLayer
from cfopt.cache.dedup import ContentDeduplication, ExerciseDeduplication
from cfopt.cache.evaluate import (choose_threshold, evaluate_workload, load_mrpc, mrpc_dir,
                                  precision_recall)
from cfopt.clock import VirtualClock
from cfopt.errors import ConfigError
from cfopt.providers.base import Call
from cfopt.workload import generate, load

from test_cache_manager import CountingProvider

LOOK_ALIKES = [
    ("Write a blog post about cats", "Write a blog post about dogs"),
    ("Write a 500 words article about remote work for startups",
     "Write a 800 words article about remote work for startups"),
    ("Write step-by-step instructions to turn on two-factor authentication in our mobile app",
     "Write step-by-step instructions to turn off two-factor authentication in our mobile app"),
    ("Write an Instagram caption about caring for wool, with emojis",
     "Write an Instagram caption about caring for wool, without emojis"),
    ("A bold video thumbnail about travelling with kids in orange tones",
     "A bold video thumbnail about travelling with kids in green tones"),
    ("woman applying cream", "woman applying cream close-up"),
    ("Summarize the report and do not mention the budget figures for the second quarter",
     "Summarize the report and mention the budget figures for the second quarter"),
    ("A 3D render hero image of a barista pouring latte art, golden-hour light, with people",
     "A 3D render hero image of a barista pouring latte art, soft daylight, with people"),
    # a changed month, in either case
    ("Write a short intro paragraph for our May newsletter about cold brew at home.",
     "Write a short intro paragraph for our September newsletter about cold brew at home."),
    ("write a short intro paragraph for our may newsletter about cold brew at home",
     "write a short intro paragraph for our july newsletter about cold brew at home"),
    # a changed name
    ("Write a press release announcing a new office in Berlin for our coffee roastery in Lisbon",
     "Write a press release announcing a new office in Madrid for our coffee roastery in Lisbon"),
    # a changed topic word in a longer request
    ("Write an SEO meta description of at most 155 characters for a page about running in winter.",
     "Write an SEO meta description of at most 155 characters for a page about winter pruning."),
    # the same instruction on another text: two reviews built from the same sentences
    ("Classify the sentiment of this customer review as positive, negative or mixed: I bought a "
     "ceramic pour-over dripper for my partner. Great value for the price. It looks even better "
     "than in the photos.",
     "Classify the sentiment of this customer review as positive, negative or mixed: I bought a "
     "compost bin for my partner. It looks even better than in the photos. Great value for the price."),
    ("Summarize this article in 3 bullet points:\n\nCosts vary a lot, so compare at least three "
     "options before you buy. Rest days comes up in almost every question our readers send us. The "
     "results surprised us: small changes added up quickly.",
     "Summarize this article in 3 bullet points:\n\nHome Wi-Fi security comes up in almost every "
     "question our readers send us. Costs vary a lot, so compare at least three options before you "
     "buy. The results surprised us: small changes added up quickly."),
    # a repeated word in a short request
    ("coffee beans close-up", "coffee beans close-up close-up"),
]
PARAPHRASES = [
    ("Write blog posts about grooming cats", "write a blog post about grooming the cat"),
    ("The central bank raised interest rates by a quarter point on Tuesday, citing inflation "
     "pressures across the euro zone economy",
     "Citing inflation pressures across the euro zone economy, the central bank on Tuesday "
     "raised interest rates by a quarter point"),
    # the instruction reworded, the text it works on the same (case and spacing aside)
    ("Classify the sentiment of this customer review as positive or negative: The box arrived "
     "damaged. Nobody answered my emails.",
     "please classify the sentiment of the following customer review as positive or negative:  "
     "the box arrived damaged.  Nobody answered my emails"),
    ("Write a short intro paragraph for our May newsletter about cold brew at home.",
     "For our May newsletter, write a short intro paragraph about cold brew at home"),
]


@pytest.mark.parametrize("a, b", LOOK_ALIKES)
def test_look_alikes_never_match(a, b):
    d = ContentDeduplication()
    assert d.similarity(a, b) < d.threshold
    d.add(a, "k")
    assert d.find(b) is None


@pytest.mark.parametrize("a, b", PARAPHRASES)
def test_paraphrases_match(a, b):
    d = ContentDeduplication()
    d.add(a, "k")
    match = d.find(b)
    assert match is not None and match.key == "k" and match.prompt == a
    assert d.is_duplicate(a, b)


def test_the_exercise_detector_matches_look_alikes_the_precise_one_refuses():
    ex = ExerciseDeduplication()
    a, b = LOOK_ALIKES[4]
    assert ex.similarity(a, b) >= 0.85   # why the reference is not good enough
    ex.add(a, "k")
    assert ex.find(b).key == "k"


def test_hits_stay_inside_their_scope():
    d = ContentDeduplication()
    d.add("write blog posts about grooming cats", "k", scope=("acme", "text", "blog_post"))
    assert d.find("write a blog post about grooming the cat", scope=("globex", "text", "blog_post")) is None
    assert d.find("write a blog post about grooming the cat", scope=("acme", "text", "blog_post")).key == "k"


def test_discard_forgets_prompts():
    d = ContentDeduplication()
    d.add("write blog posts about grooming cats", "acme:a:m:1")
    d.add("write blog posts about walking dogs", "globex:a:m:2")
    assert d.discard_matching("acme:*") == 1 and len(d) == 1
    assert d.find("write a blog post about grooming the cat") is None
    assert d.discard("globex:a:m:2") == 1 and d.discard("globex:a:m:2") == 0


@pytest.mark.parametrize("threshold", [0, -0.1, 1.5, True, "0.8"])
def test_impossible_thresholds_are_refused(threshold):
    with pytest.raises((ConfigError, TypeError)):
        ContentDeduplication(threshold)
    with pytest.raises((ConfigError, TypeError)):
        ExerciseDeduplication(threshold)


def test_the_index_finds_what_a_full_comparison_finds():
    prompts = list(dict.fromkeys(r.prompt for r in load("datasets/contentflow_1h.jsonl")))
    rng = random.Random(3)
    rng.shuffle(prompts)
    stored, queries = prompts[:600], prompts[600:800]
    queries += [s.upper() + "!" for s in stored[:60]] + [s.replace(" a ", " the ") for s in stored[60:160]]
    d = ContentDeduplication(threshold=0.6)  # a low threshold: many candidates to agree on
    d.fit(stored)
    for i, p in enumerate(stored):
        d.add(p, f"k{i}")
    features = [(d._features(s), s) for s in stored]
    agree = missed = 0
    for q in queries:
        fq = d._features(q)
        brute = max(d._score(fq, fs) for fs, _ in features)   # compare with every entry
        found = d.find(q)
        if found is not None:  # never a match the full comparison rejects
            assert found.score == pytest.approx(d.similarity(q, found.prompt))
            assert found.score >= d.threshold and found.score == pytest.approx(brute)
        if brute >= d.threshold:
            agree += found is not None
            missed += found is None
    assert agree > 100 and missed <= 0.02 * agree, (agree, missed)


def test_critical_and_other_tenants_get_no_semantic_hits():
    clock = VirtualClock()
    m = CacheManager([MemoryLayer(clock=clock)], provider=CountingProvider(),
                     dedup=ContentDeduplication())
    scope = dict(type="text", task="blog_post")
    m.fetch(Call("haiku", "write blog posts about grooming cats"), tenant="acme", **scope)
    near = Call("haiku", "write a blog post about grooming the cat")
    served = m.fetch(near, tenant="acme", **scope)
    assert served.source == "semantic:memory" and served.matched_prompt.endswith("cats")
    assert m.fetch(near, tenant="acme", quality="critical", **scope).source == "provider"
    assert m.fetch(near, tenant="globex", **scope).source == "provider"
    other_task = Call("haiku", "write one blog post about grooming cats")
    assert m.fetch(other_task, tenant="acme", type="text", task="seo_meta").source == "provider"
    assert m.stats.semantic_hits == 1
    assert m.invalidate("acme:*") >= 1
    assert m.fetch(near, tenant="acme", **scope).source == "provider"


# The shipped files and freshly generated workloads of other seeds and sizes, so a detector
# tuned to one file fails here (the detector before its name, date, topic and quoted-text guards
# had 0.84% and 0.65% false hits on the two generated ones).
WORKLOADS = {"contentflow_1h": lambda: load("datasets/contentflow_1h.jsonl"),
             "tiny": lambda: load("datasets/tiny.jsonl"),
             "generated_seed99_5000": lambda: generate(5000, seed=99),
             "generated_seed5_2000": lambda: generate(2000, seed=5)}


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_workload_false_hits_stay_under_half_a_percent(name):
    requests = WORKLOADS[name]()
    precise = evaluate_workload(requests, ContentDeduplication())
    assert precise.false_hit_rate < 0.005, precise
    exercise = evaluate_workload(requests, ExerciseDeduplication())
    assert exercise.false_semantic_hits >= precise.false_semantic_hits


@pytest.fixture(scope="module")
def mrpc():
    try:
        return load_mrpc("train"), load_mrpc("test")
    except FileNotFoundError:
        pytest.skip(f"MRPC is not available here ({mrpc_dir()})")


def _measure(detector, train, test):
    st = [detector.similarity(p.a, p.b) for p in train]
    threshold = choose_threshold(st, [p.paraphrase for p in train])  # chosen on train only
    se = [detector.similarity(p.a, p.b) for p in test]
    return precision_recall(se, [p.paraphrase for p in test], threshold)


def test_mrpc_precise_detector_beats_the_reference_bar(mrpc):
    train, test = mrpc
    ex = _measure(ExerciseDeduplication(), train, test)
    assert ex.precision == pytest.approx(0.92, abs=0.01) and ex.recall == pytest.approx(0.16, abs=0.01)
    fixed = precision_recall([ExerciseDeduplication().similarity(p.a, p.b) for p in test],
                             [p.paraphrase for p in test], 0.85)
    assert fixed.precision == pytest.approx(0.96, abs=0.01) and fixed.recall == pytest.approx(0.08, abs=0.01)
    precise = ContentDeduplication().fit(s for p in train for s in (p.a, p.b))
    ours = _measure(precise, train, test)
    # the bar: TF-IDF char 3-5 grams with a number guard measured 0.93 / 0.20
    assert ours.precision > 0.93 and ours.recall > 0.20, ours
