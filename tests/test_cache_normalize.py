"""Normalization for exact keys: it merges only what cannot change meaning.

Three kinds of evidence: pairs that must merge and pairs that must not (the four the outside
check found among them), properties over generated prompts (hypothesis), and a corpus check:
every pair of distinct prompts, in the shipped workloads and the shared public prompt sets,
that normalizes to one key must be a true equivalence.
"""
from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cfopt.cache import normalize as norm
from cfopt.cache.normalize import GREETINGS, POLITENESS, normalize_prompt
from cfopt.workload import load

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT.parent / "shared" / "data" / "prompts"

MERGE = [
    ("Write a blog post about cats.", "write a blog post about cats"),
    ("  Please   write a blog post about cats!!  ", "Write a blog post about cats"),
    ("Could you please write a haiku about Lisbon?", "Write a haiku about Lisbon."),
    ("Hi, could you summarize this report? Thanks!", "Summarize this report"),
    ("Kindly draft a tweet about our sale, please.", "draft a tweet about our sale"),
    ("I'd like you to write a poem about rain. Thank you.", "Write a poem about rain"),
    ("Hello! Write a haiku about tea…", "write a haiku about tea"),
    ("WRITE a LinkedIn caption about our May sale", "Write a LinkedIn caption about our May sale."),
    ("A 3D render of a cafe, 16:9.", "A 3D render of a cafe, 16:9"),
    ("Summarize this article in 3 bullet points:\n\nCosts vary a lot.",
     "summarize this article in 3 bullet points: Costs vary a lot."),
    ("Translate into French: Save 10% today.", "Translate into French:  Save 10% today"),
]
KEEP_APART = [
    # the four merges the outside check found
    ("Explain this code: int x = 1;", "Explain this code: int x = 1"),
    ("Hi-fi speakers", "Fi speakers"),
    ("Please Please Me:", "Me:"),
    ("Define Polish", "Define polish"),
    # and more of the same families
    ("Hello, world!", "world"),
    ("Write a poem about thanks", "Write a poem about"),
    ("Please help", "help"),
    ("Is the dog barking?", "Is the dog barking"),
    ("Write about US history", "Write about us history"),
    ("Compare `Int` and `int` in Kotlin", "Compare `int` and `int` in Kotlin"),
    ('Translate "Hello." into French', 'Translate "Hello" into French'),
    ('Fix the typo in "teh  cat"', 'Fix the typo in "teh cat"'),
    ("Print x = 1.", "Print x = 1"),
    ("```python\nprint('a')\n```", "```python\nprint( 'a')\n```"),
    ("Write about the X-ray", "Write about the x-ray"),
    ("Write 500 words about cats", "Write 800 words about cats"),
    ("Turn on dark mode", "Turn off dark mode"),
    ("Summarize https://example.com/A", "Summarize https://example.com/a"),
    ("Kindly Write a poem", "Write a poem"),   # a capital after the courtesy: a title?
]


@pytest.mark.parametrize("a, b", MERGE)
def test_meaning_preserving_variants_merge(a, b):
    assert normalize_prompt(a) == normalize_prompt(b)


@pytest.mark.parametrize("a, b", KEEP_APART)
def test_anything_that_may_mean_something_else_stays_apart(a, b):
    assert normalize_prompt(a) != normalize_prompt(b), normalize_prompt(a)


def test_courtesy_alone_keeps_its_words_and_bad_input_is_refused():
    assert normalize_prompt("Please!") == "please"
    assert normalize_prompt("   ?  ") == "?"
    with pytest.raises(TypeError):
        normalize_prompt(None)  # type: ignore[arg-type]


# -- properties --------------------------------------------------------------------------------
_LOWER_WORD = st.text("abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=9).filter(
    lambda w: w not in {p for phrase in POLITENESS + GREETINGS for p in phrase.split()}
    and w not in {"thanks", "thank", "thx", "you", "please"})
_BODY = st.lists(_LOWER_WORD, min_size=2, max_size=8).map(" ".join)
_NAME = st.sampled_from(["Lisbon", "LinkedIn", "Polish", "May", "iPhone", "NASA", "Acme"])


@settings(max_examples=200, deadline=None)
@given(body=_BODY, prefix=st.sampled_from(["", "Please ", "Kindly ", "Could you ", "Hi, could you ",
                                           "I'd like you to ", "Can you please "]),
       end=st.sampled_from(["", ".", "!", "!!", "...", "…"]), spaces=st.integers(1, 3),
       suffix=st.sampled_from(["", ", please", ". Thanks!", " Thank you."]))
def test_courtesy_case_spacing_and_final_punctuation_never_split_a_request(body, prefix, end,
                                                                         spaces, suffix):
    plain = normalize_prompt(body)
    if suffix.startswith(" "):   # "... Thank you." is a sentence of its own: one ends before it
        end = end or "."
    typed = prefix + body.replace(" ", " " * spaces) + end + suffix
    if prefix.startswith(("Could", "Can", "Hi")) and not suffix.startswith((".", " ")):
        typed = typed.rstrip(".!…") + "?"
    assert normalize_prompt(typed) == plain
    assert normalize_prompt(body[0].upper() + body[1:]) == plain   # a sentence's first capital


@settings(max_examples=200, deadline=None)
@given(body=_BODY, name=_NAME, where=st.integers(1, 5))
def test_a_name_inside_a_sentence_keeps_its_case(body, name, where):
    words = body.split()
    at = min(where, len(words))
    with_name = " ".join(words[:at] + [name] + words[at:])
    lowered = " ".join(words[:at] + [name.lower()] + words[at:])
    assert normalize_prompt(with_name) != normalize_prompt(lowered)


@settings(max_examples=150, deadline=None)
@given(body=_BODY, code=st.sampled_from(["x = 1;", "int X = 1", "f(a,  b)", "a->b", "{ 'k': 1 }"]),
       quote=st.sampled_from(['"Hello  World."', "'it is'", "“Done.”"]))
def test_code_and_quoted_text_are_copied_as_typed(body, code, quote):
    for piece in (f"`{code}`", quote):
        text = f"{body}: {piece}"
        assert piece in normalize_prompt(text) or piece.strip("`") in normalize_prompt(text)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=80))
def test_normalization_is_idempotent_and_never_empty_for_nonblank_input(text):
    once = normalize_prompt(text)
    assert normalize_prompt(once) == once
    if text.strip():
        assert once


# -- the corpus check --------------------------------------------------------------------------
def _shared_prompts() -> list[str]:
    out: list[str] = []
    parti = PROMPTS / "PartiPrompts.tsv"
    chat = PROMPTS / "awesome_chatgpt_prompts_2025-06-09.csv"
    if not parti.exists() or not chat.exists():
        return out
    with open(parti, encoding="utf-8") as f:
        out += [r["Prompt"] for r in csv.DictReader(f, delimiter="\t")]
    with open(chat, encoding="utf-8") as f:
        out += [r["prompt"] for r in csv.DictReader(f)]
    return out


# Collisions among the shared prompt sets, each read by a person and found to be one request.
REVIEWED_EQUIVALENCES = [
    {"a blue cow is standing next to a tree with red leaves and yellow fruit. the cow is standing "
     "in a field with white flowers. impressionistic painting",
     "a blue cow is standing next to a tree with red leaves and yellow fruit. the cow is standing "
     "in a field with white flowers. impressionistic painting."},
]


def test_every_collision_in_the_shipped_workloads_is_one_intent():
    for name in ("contentflow_1h.jsonl", "tiny.jsonl"):
        keys = defaultdict(set)
        for r in load(ROOT / "datasets" / name):
            keys[(r.type, r.task, r.max_tokens, normalize_prompt(r.prompt))].add(r.intent)
        merged = [k for k, intents in keys.items() if len(intents) > 1]
        assert not merged, f"{name}: prompts of different intents share a key: {merged[:3]}"


def test_every_collision_in_the_public_prompt_sets_is_a_reviewed_equivalence():
    prompts = _shared_prompts()
    if not prompts:
        pytest.skip("the shared prompt sets are not available here")
    groups = defaultdict(set)
    for p in prompts:
        groups[normalize_prompt(p)].add(p)
    collisions = [g for g in groups.values() if len(g) > 1]
    unreviewed = [g for g in collisions if g not in REVIEWED_EQUIVALENCES]
    assert not unreviewed, f"new merges to review by hand: {unreviewed}"
    assert len(prompts) > 1800 and len(collisions) == len(REVIEWED_EQUIVALENCES)


def test_the_quick_path_agrees_with_the_full_scan(monkeypatch):
    """Prose with no special character skips ``protected_spans``: the result must not change."""
    prompts = list(dict.fromkeys([r.prompt for r in load(ROOT / "datasets" / "contentflow_1h.jsonl")]
                                 + _shared_prompts()))
    quick = [norm.normalize_prompt.__wrapped__(p) for p in prompts]
    monkeypatch.setattr(norm, "_PLAIN", re.compile(r"(?s)."))   # every prompt takes the scan
    full = [norm.normalize_prompt.__wrapped__(p) for p in prompts]
    assert [(p, q) for p, q, f in zip(prompts, quick, full) if q != f] == []
