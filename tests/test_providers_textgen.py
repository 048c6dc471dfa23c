"""The answer-length model, the text generator and the seeded helpers behind the providers."""
from __future__ import annotations

import random

import pytest

from cfopt.providers import lengths, sampling, textgen
from cfopt.providers.base import Faults
from cfopt.tokens import count_tokens


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 12, 13, 50, 129, 451, 1000, 4000])
def test_compose_gives_exactly_n_tokens(n):
    for key in range(5):
        for complete in (True, False):
            text = textgen.compose(n, "Write about sustainable coffee farming in Kenya", key=key, complete=complete)
            assert count_tokens(text) == n, (n, key, complete, text)


def test_compose_is_exact_with_awkward_topic_words():
    prompts = ["antidisestablishmentarianism and pneumonoultramicroscopic silicovolcanoconiosis",
               "naïve café résumé über straße", "ÅÄÖ 東京 数据 😀 emoji", "x", "??? !!! ...",
               "Kubernetes, PostgreSQL, GraphQL and WebAssembly", "it's the user's team's CEO's plan"]
    for prompt in prompts:
        for n in range(1, 60):
            assert count_tokens(textgen.compose(n, prompt, key=n)) == n, (prompt, n)


def test_compose_ends_properly():
    done = textgen.compose(80, "electric bikes", key=1)
    cut = textgen.compose(80, "electric bikes", key=1, complete=False)
    assert done.endswith(".") and not cut.endswith(".")
    assert done[0].isupper() and "\n\n\n" not in done


def test_compose_refuses_an_empty_answer():
    with pytest.raises(ValueError):
        textgen.compose(0, "x", key=0)


def test_content_words_drop_instructions_and_keep_names():
    assert textgen.content_words("Write a blog post about sustainable coffee farming in Kenya") == \
        ("sustainable", "coffee", "farming", "Kenya")
    assert textgen.content_words("Please write it") == ("content", "quality")  # nothing topical left


def test_padding_words_are_single_tokens():
    for words in textgen._CLOSINGS.values():
        for piece in [words[0], *(" " + w for w in words)]:
            assert count_tokens(piece) == 1, piece
    assert count_tokens(textgen._PAD) == count_tokens(".\n\n") == 1
    assert sorted(textgen._CLOSINGS) == list(range(1, len(textgen._CLOSINGS) + 1))


def test_template_words_are_single_tokens_so_generation_stays_cheap():
    words = {w.strip(",:") for t in textgen._TEMPLATES for w in t.split() if "{" not in w}
    assert [w for w in words if count_tokens(" " + w) != 1] == []
    assert [w for w in textgen._NOUNS if count_tokens(" " + w) != 1] == []


def test_natural_length_interpolates_the_trace_quantiles():
    for q, n in lengths.TRACE_OUTPUT_QUANTILES[:-1]:
        assert lengths.natural_length(q) == n
    assert lengths.natural_length(0.5) == 129
    assert lengths.natural_length(0.999999) <= 1000
    values = [lengths.natural_length(i / 1000) for i in range(1000)]
    assert values == sorted(values)


def test_length_scale_stretches_free_answers_only():
    prompts = [f"Tell me about gadget {i}" for i in range(300)]
    for p in prompts:
        base = lengths.output_length(0, "m", None, p, 1.0)
        assert lengths.output_length(0, "m", None, p, 1.1) >= base
    asked = "Describe a gadget in 100 words"
    assert lengths.output_length(0, "m", None, asked, 1.1) == lengths.output_length(0, "m", None, asked, 1.0)


@pytest.mark.parametrize("prompt, kind, value", [
    ("Write a 500-word essay on bees", "tokens", 500 * 1.33),
    ("in one sentence, explain DNS", "tokens", 22),
    ("Write two paragraphs about rain", "tokens", 180),
    ("Give me a few catchy taglines", "tokens", 36),
    ("under 280 characters please", "tokens", 70),
    ("Write a slogan for a gym", "tokens", 12),
    ("Draft a tweet about our sale", "tokens", 45),
    ("Give a brief overview of Rust", "scale", 0.45),
    ("Write a comprehensive guide to Redis", "scale", 2.0),
    ("Explain a way to cut costs", "free", 1.0),          # "a way" is no count
    ("A story about a character named Bob", "free", 1.0),  # nor is "a character"
    ("Write a blog post about AI", "free", 1.0),
])
def test_requested_length(prompt, kind, value):
    got_kind, got = lengths.requested_length(prompt)
    assert got_kind == kind and got == pytest.approx(value)


def test_the_system_prompt_can_ask_for_a_length_too():
    n = lengths.output_length(0, "m", "Always answer in one sentence.", "What is DNS?")
    assert 18 <= n <= 26


# --- sampling -----------------------------------------------------------------------------
def test_stable_hash_is_stable_and_separates_parts():
    assert sampling.stable_hash("ab", "c") != sampling.stable_hash("a", "bc")
    assert sampling.stable_hash(1, None) == sampling.stable_hash(1, None)
    assert sampling.derive_seed(0, "fal") != sampling.derive_seed(0, "unsplash")


def test_short_id_is_base62_of_the_asked_length():
    sid = sampling.short_id(24, "x", 1)
    assert len(sid) == 24 and sid.isalnum() and sid == sampling.short_id(24, "x", 1)
    with pytest.raises(ValueError):
        sampling.short_id(65, "x")


def test_jitter_has_median_one():
    rng = random.Random(0)
    draws = sorted(sampling.jitter(rng, 0.3) for _ in range(4001))
    assert draws[2000] == pytest.approx(1.0, abs=0.03)


def test_draw_fault_uses_two_draws_whatever_happens():
    a, b = random.Random(5), random.Random(5)
    sampling.draw_fault(a, Faults(), provider="p", model="m")
    sampling.draw_fault(b, Faults(server_error=1.0), provider="p", model="m")
    assert a.random() == b.random()
