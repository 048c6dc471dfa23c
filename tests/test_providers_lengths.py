"""Length hints the simulated Claude honours: the ones added for ContentFlow's own phrasings.

The older hints (words, sentences, tips, taglines, short/detailed) are tested in
test_providers_claude.py; these are the phrasings a content app uses that name no unit a
reader counts in tokens: subject lines, SEO keywords, a label, one word, a translation.
"""
from __future__ import annotations

import pytest

from cfopt.providers import Call, Providers
from cfopt.providers.lengths import output_length, requested_length


@pytest.mark.parametrize("prompt, tokens", [
    ("Suggest 5 email subject lines for our spring sale.", 60),
    ("Suggest 3 subject lines for a webinar invitation.", 36),
    ("Write a subject line for our price increase notice.", 12),
    ("Extract 10 SEO keywords from this text: Beginners often overlook the basics.", 70),
    ("Extract 5 keywords from this text: Three ways to brew.", 35),
    ("Classify the sentiment of this customer review as positive, negative or mixed: "
     "I bought a mug. The 3 handles broke in 2 days.", 2),
    ("Classify this review as positive or negative: Great value for the price.", 2),
    ("Categorise this expense: a train ticket.", 2),
    ("Route this support ticket to billing, shipping, account or product: "
     "I was charged twice for a foam roller. Order 12345.", 2),
    ("Describe our coffee in one word.", 2),
    ("Answer with a single word: is this spam?", 2),
    ("Translate into Spanish: Free shipping on orders over $50.", 12),   # 6 words x 2
    ("Could you translate into Italian: Only 3 left. Please hurry!", 10),
])
def test_content_app_phrasings_get_their_length(prompt, tokens):
    kind, value = requested_length(prompt)
    assert kind == "tokens" and value == pytest.approx(tokens)
    for seed in range(5):  # the usual +-15% spread, whatever the model
        for model in ("claude-haiku-5-5", "claude-opus-5-5"):
            n = output_length(seed, model, None, prompt, length_scale=1.1)
            assert round(tokens * 0.85) <= n <= round(tokens * 1.15) + 1, (prompt, n)


@pytest.mark.parametrize("prompt, expected", [
    ("Write a tagline for a vegan bakery.", ("tokens", 12)),           # older rules unchanged
    ("Describe the ocean in 50 words.", ("tokens", 50 * 1.33)),
    ("Write a short intro paragraph for our May newsletter.", ("scale", 0.45)),
    ("Tell me about translation memory tools.", ("free", 1.0)),         # no colon, no verb
    ("Write a blog post about translation: tips for beginners.", ("free", 1.0)),
    ("Translate the sentence 'Are you open?' into French.", ("free", 1.0)),  # nothing quoted
    ("Explain the subject of thermodynamics.", ("free", 1.0)),          # "subject" uncounted
])
def test_other_prompts_keep_their_length(prompt, expected):
    kind, value = requested_length(prompt)
    assert (kind, value) == pytest.approx(expected)


def test_a_label_fits_a_small_cap_through_the_provider():
    p = Providers(seed=0)
    r = p.send(Call("opus", "Classify the sentiment of this customer review as positive, "
                            "negative or mixed: It stopped working after a week.", max_tokens=16))
    assert r.stop_reason == "end_turn" and r.usage.output_tokens <= 3
