"""The safe compressor: protected spans survive byte for byte, edits keep meaning, real tokens."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cfopt.cost.compress import (DEFAULT_RULES, CompressionRules, compress_prompt, naive_compress,
                            protected_spans)
from cfopt.errors import ConfigError
from cfopt.tokens import count_tokens

sys.path.insert(0, str(Path(__file__).parent / "data"))
from compress_prompts import PROMPTS  # noqa: E402


def test_the_prompt_set_is_big_and_covers_every_kind_of_span():
    assert len(PROMPTS) >= 40
    kept = [k for p in PROMPTS for k in p["keep"]]
    assert sum("```" in k or "~~~" in k for k in kept) >= 5          # fenced code
    assert sum(k.startswith("`") and "```" not in k for k in kept) >= 5   # inline code
    assert sum("://" in k or k.startswith("www.") for k in kept) >= 3     # URLs
    assert sum(re.fullmatch(r"\S+@\S+", k) is not None for k in kept) >= 3  # e-mail
    assert sum(k[:1] in "\"'“«" for k in kept) >= 8                   # quotes
    assert sum(k.startswith("{") and '"' in k for k in kept) >= 1     # JSON
    assert sum(bool(re.search(r"\d", k)) for k in kept) >= 15         # numbers and units


@pytest.mark.parametrize("case", PROMPTS, ids=[f"p{i:02d}" for i in range(len(PROMPTS))])
def test_every_protected_span_survives_byte_for_byte(case):
    out = compress_prompt(case["prompt"]).text
    for span in case["keep"]:
        assert span in case["prompt"], "bad test data: the span is not in the prompt"
        assert out.count(span) >= case["prompt"].count(span), f"lost {span!r} in {out!r}"
    if "expect" in case:
        assert out == case["expect"]


@pytest.mark.parametrize("case", PROMPTS, ids=[f"p{i:02d}" for i in range(len(PROMPTS))])
def test_spans_the_compressor_itself_protects_come_out_in_order(case):
    prompt = case["prompt"]
    out = compress_prompt(prompt).text
    pos = 0
    for a, b in protected_spans(prompt):
        found = out.find(prompt[a:b], pos)
        assert found >= 0, f"span {prompt[a:b]!r} missing or out of order in {out!r}"
        pos = found + (b - a)


def test_savings_are_real_tokens_and_never_negative():
    results = [compress_prompt(p["prompt"]) for p in PROMPTS]
    for r in results:
        assert r.tokens_before == count_tokens(r.original)
        assert r.tokens_after == count_tokens(r.text)
        assert r.tokens_after <= r.tokens_before, r
    assert sum(r.saved_tokens for r in results) >= 60
    assert sum(r.saved_tokens > 0 for r in results) >= len(results) // 2


@pytest.mark.parametrize("long, short", DEFAULT_RULES.phrases)
def test_every_default_phrase_rule_saves_a_token(long, short):
    before = f"We plan this {long} win the day."
    after = compress_prompt(before).text
    assert after == f"We plan this {short} win the day."
    assert count_tokens(after) < count_tokens(before)


@pytest.mark.parametrize("text, expected", [
    ("Please recreate the inorder to-do list.", "Recreate the inorder to-do list."),
    ("Use reorder to sort it.", "Use reorder to sort it."),
    ("The hyper-in order to chain stays.", "The hyper-in order to chain stays."),
    ("Call in_order_to now.", "Call in_order_to now."),
    ("Keep prior-to dates.", "Keep prior-to dates."),
    ("Sort it in order to1 day.", "Sort it in order to1 day."),
])
def test_rules_never_fire_inside_a_word(text, expected):
    assert compress_prompt(text).text == expected


def test_politeness_only_where_a_request_starts():
    assert compress_prompt("Write a poem, please.").text == "Write a poem, please."
    assert compress_prompt("Thanks. Please write a poem.").text == "Thanks. Write a poem."
    assert compress_prompt("She said please write.").text == "She said please write."
    assert compress_prompt("Could you help? Can you list 3 cats?").text == "Help. List 3 cats."
    # after a colon comes the customer's text: its "?" and "please" are content, not manners
    assert compress_prompt("Could you translate into Spanish: Are you open?").text == \
        "Translate into Spanish: Are you open?"
    assert compress_prompt("Could you translate into Italian: Only 3 left. Please hurry!").text == \
        "Translate into Italian: Only 3 left. Please hurry!"
    assert compress_prompt("Translate: `x`\nPlease write it.").text == "Translate: `x`\nWrite it."
    # a greeting goes only as a sentence of its own or before a politeness phrase
    assert compress_prompt("Hello, world! Write a program that prints it.").text == \
        "Hello, world! Write a program that prints it."
    assert compress_prompt("Hi, could you write a poem?").text == "Write a poem."
    assert compress_prompt("Hello! Write a poem.").text == "Write a poem."
    # a capital after a courtesy word is a name or a title, not the request's verb
    assert compress_prompt("Please Please Me: write its liner notes.").text == \
        "Please Please Me: write its liner notes."
    assert compress_prompt("Kindly Reply Ltd: write a tagline.").text == \
        "Kindly Reply Ltd: write a tagline."


def test_case_is_kept():
    assert compress_prompt("In order to win").text == "To win"
    assert compress_prompt("IN ORDER TO WIN").text == "TO WIN"
    assert compress_prompt("Go in order to win").text == "Go to win"


def test_whitespace_collapses_outside_code_only():
    prompt = "Fix   this:\n\n\n\n```py\nx  =  1\n\n\n\ny = 2\n```\nand   `a  b`   too.   "
    out = compress_prompt(prompt).text
    assert out == "Fix this:\n\n```py\nx  =  1\n\n\n\ny = 2\n```\nand `a  b` too."


def test_stable_prefix_is_left_alone():
    system = "You are   ContentFlow's writer. Please   follow the brand guide in order to stay on tone.\n\n"
    prompt = system + "Please write   a caption in order to sell mugs."
    r = compress_prompt(prompt, keep_prefix=system)
    assert r.text.startswith(system)
    assert r.text == system + "Write a caption to sell mugs."
    assert compress_prompt(prompt, keep_prefix=len(system)).text == r.text


@pytest.mark.parametrize("bad", ["not a prefix", -1, 10_000, True, 1.5])
def test_bad_keep_prefix_is_named(bad):
    with pytest.raises(ConfigError, match="keep_prefix"):
        compress_prompt("Write a poem.", keep_prefix=bad)


def test_bad_input_is_named():
    with pytest.raises(ConfigError, match="prompt must be a string"):
        compress_prompt(None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="phrase rule"):
        CompressionRules(phrases=(("only one",),))  # type: ignore[arg-type]


def test_custom_rules_and_switching_edits_off():
    rules = CompressionRules(phrases=(("as a matter of fact", "in fact"),), politeness=(),
                             drop_greetings=False, collapse_whitespace=False)
    assert compress_prompt("Please  note: as a matter of fact it works.", rules=rules).text == \
        "Please  note: in fact it works."


def test_naive_version_corrupts_what_the_safe_one_keeps():
    prompt = ('Please recreate `generate_report()` for https://ex.com/create and the "Create Info" '
              'page.\n```py\nx  = 1\n```')
    naive = naive_compress(prompt)
    assert "remake" in naive                      # inside a word
    assert "make_report()" in naive               # inside code
    assert "https://ex.com/make" in naive         # inside a URL
    assert '"make info"' in naive                 # inside a quote, case lost
    assert "\n" not in naive                      # code layout gone
    safe = compress_prompt(prompt).text
    for span in ("Recreate `generate_report()`", "https://ex.com/create", '"Create Info"',
                 "```py\nx  = 1\n```"):
        assert span in safe
    broken = sum(any(naive_compress(p["prompt"]).count(k) < p["prompt"].count(k) for k in p["keep"])
                 for p in PROMPTS)
    assert broken >= len(PROMPTS) // 2


# --- property: random prose with random protected fragments -----------------------------------
_WORDS = st.sampled_from(["please", "write", "in order to", "could you", "the majority of",
                          "Hello,", "due to the fact that", "create", "cats", "report", "now.",
                          "Kindly", "with regard to", "prior to", "IN ORDER TO", "x", "and"])
_FRAGMENTS = st.one_of(
    st.from_regex(r"`[a-z_(). ]{1,12}`", fullmatch=True),
    st.from_regex(r"https://[a-z]{2,8}\.(com|io)/[a-z_/-]{0,12}", fullmatch=True),
    st.from_regex(r"[a-z]{1,6}\.[a-z]{1,6}@[a-z]{2,6}\.(com|org)", fullmatch=True),
    st.from_regex(r'"[A-Za-z ,.?]{0,20}"', fullmatch=True),
    st.from_regex(r"[1-9][0-9]{0,3}(\.[0-9])? (MB|GB|px|ms|kg)", fullmatch=True),
    st.from_regex(r"\{[a-z_]{1,10}\}", fullmatch=True),
    st.builds(lambda body: f"\n```\n{body}\n```\n",
              st.text(alphabet="abc xyz=\n\t(){}please", max_size=30).filter(lambda b: "```" not in b)),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_WORDS, _FRAGMENTS), min_size=1, max_size=12))
def test_property_random_fragments_survive(parts):
    prompt = " ".join(parts)
    out = compress_prompt(prompt).text
    fragments = [p.strip("\n") for p in parts if p not in _WORD_SET]
    pos = 0
    for frag in fragments:
        found = out.find(frag, pos)
        assert found >= 0, f"fragment {frag!r} lost: {prompt!r} -> {out!r}"
        pos = found + len(frag)
    assert count_tokens(out) <= count_tokens(prompt) + 1


_WORD_SET = {"please", "write", "in order to", "could you", "the majority of", "Hello,",
             "due to the fact that", "create", "cats", "report", "now.", "Kindly",
             "with regard to", "prior to", "IN ORDER TO", "x", "and"}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_compresses_without_error_and_keeps_its_spans(text):
    out = compress_prompt(text).text
    pos = 0
    for a, b in protected_spans(text):
        found = out.find(text[a:b], pos)
        assert found >= 0, f"{text[a:b]!r} lost: {text!r} -> {out!r}"
        pos = found + (b - a)
