"""Cost arithmetic: the catalog against the exercise's table and the 2026 list prices, and the
providers' own usage figures priced through it.

Expected figures are written out from the exercise text and the providers' price pages (the
spec), not read back from the catalog, so a wrong catalog entry fails here.
"""
from __future__ import annotations

import pytest
from catalog_support import demo_unsplash_catalog

from cfopt.clock import VirtualClock
from cfopt.errors import ConfigError, RateLimited
from cfopt.pricing import PROFILES, Usage, load_catalog, megapixels
from cfopt.providers import Call, ClaudeProvider, FalProvider, UnsplashProvider

M = 1_000_000
EX, LIST = load_catalog("exercise"), load_catalog("list-2026")


# --- text ---------------------------------------------------------------------------------
@pytest.mark.parametrize("model, per_mtok", [("haiku", 0.25), ("sonnet", 3.00), ("opus", 15.00)])
def test_exercise_text_is_one_price_for_input_and_output(model, per_mtok):
    u = Usage(input_tokens=1_200, output_tokens=800)
    assert EX.cost(model, u) == pytest.approx(2_000 * per_mtok / M)


@pytest.mark.parametrize("model", ["haiku", "sonnet", "opus"])
def test_list_text_prices_input_and_output_apart(model):
    # The figures themselves are checked against genai-prices in test_pricing_genai.py.
    price = LIST.text[LIST.model(model).id]
    assert price.output_per_mtok == 5 * price.input_per_mtok   # output costs five times input
    u = Usage(input_tokens=1_200, output_tokens=800)
    assert LIST.cost(model, u) == pytest.approx((1_200 * price.input_per_mtok + 800 * price.output_per_mtok) / M)


@pytest.mark.parametrize("catalog", [EX, LIST], ids=PROFILES)
def test_batch_is_half_price(catalog):
    u = Usage(input_tokens=10_000, output_tokens=3_000)
    batch = Usage(input_tokens=10_000, output_tokens=3_000, service_tier="batch")
    assert catalog.cost("sonnet", batch) == pytest.approx(catalog.cost("sonnet", u) / 2)


def test_prompt_cache_prices_list_prices():
    base = LIST.text["claude-sonnet-5-5"].input_per_mtok / M
    # Sonnet 5.5: writes 1.25x and 2x input as usual, reads 0.05x (not the usual 0.1x).
    assert LIST.cost("sonnet", Usage(cache_creation_input_tokens=10_000)) == pytest.approx(10_000 * base * 1.25)
    assert LIST.cost("sonnet", Usage(cache_creation_1h_input_tokens=10_000)) == pytest.approx(10_000 * base * 2.0)
    assert LIST.cost("sonnet", Usage(cache_read_input_tokens=10_000)) == pytest.approx(10_000 * base * 0.05)


def test_prompt_cache_multipliers_on_the_exercise_price():
    base = 0.25 / M  # haiku, exercise
    u = Usage(input_tokens=100, cache_creation_input_tokens=5_000, cache_read_input_tokens=20_000)
    assert EX.cost("haiku", u) == pytest.approx((100 + 5_000 * 1.25 + 20_000 * 0.1) * base)


def test_claude_results_are_priced_from_their_own_usage():
    clock = VirtualClock()
    system = "You are ContentFlow's senior editor. Follow the house style guide closely. " * 120
    for catalog in (EX, LIST):
        claude = ClaudeProvider(seed=3, clock=clock, catalog=catalog)
        first = claude.send(Call("sonnet", "Write a tagline for a bakery.", system=system, cache_system="1h"))
        second = claude.send(Call("sonnet", "Write a tagline for a bakery.", system=system, cache_system="1h"))
        batch = claude.send(Call("sonnet", "Write a tagline for a bakery.", batch=True))
        price = catalog.text["claude-sonnet-5-5"]
        u = first.usage
        assert u.cache_creation_1h_input_tokens > 0 and second.usage.cache_read_input_tokens > 0
        want = (u.input_tokens * price.input_per_mtok + u.cache_creation_1h_input_tokens * price.cache_write_1h_per_mtok
                + u.output_tokens * price.output_per_mtok) / M
        assert first.cost_usd == pytest.approx(want)
        u2 = second.usage
        want2 = (u2.input_tokens * price.input_per_mtok + u2.cache_read_input_tokens * price.cache_read_per_mtok
                 + u2.output_tokens * price.output_per_mtok) / M
        assert second.cost_usd == pytest.approx(want2)
        ub = batch.usage
        assert ub.service_tier == "batch"
        assert batch.cost_usd == pytest.approx(
            (ub.input_tokens * price.input_per_mtok + ub.output_tokens * price.output_per_mtok) / M / 2)


# --- media --------------------------------------------------------------------------------
@pytest.mark.parametrize("w, h, mp", [(1000, 1000, 1), (1024, 1024, 2), (512, 512, 1), (1920, 1080, 3),
                                      (2048, 2048, 5), (64, 64, 1), (1000, 1001, 2)])
def test_megapixels_round_up_per_image(w, h, mp):
    assert megapixels(w, h) == mp


def test_megapixels_rejects_an_empty_image():
    with pytest.raises(ConfigError):
        megapixels(0, 100)


@pytest.mark.parametrize("model, per_image, per_mp", [("flux_schnell", 0.003, 0.003), ("flux_dev", 0.025, 0.025)])
def test_images_per_image_vs_per_megapixel(model, per_image, per_mp):
    for catalog in (EX, LIST):
        fal = FalProvider(seed=0, catalog=catalog)
        r = fal.simulate(Call(model, "a lighthouse at dusk", width=1920, height=1080))
        assert (r.usage.images, r.usage.megapixels) == (1, 3)
        want = per_image if catalog is EX else 3 * per_mp
        assert r.cost_usd == pytest.approx(want)


def test_video_per_video_vs_per_second():
    ex = FalProvider(catalog=EX).simulate(Call("video_5s", "waves on a beach"))
    ls = FalProvider(catalog=LIST).simulate(Call("video_5s", "waves on a beach"))
    assert (ex.usage.videos, ex.usage.video_seconds) == (1, 5.0)
    assert ex.cost_usd == pytest.approx(0.50)
    assert ls.cost_usd == pytest.approx(5 * 0.10)


@pytest.mark.parametrize("minutes", [0.5, 1.0, 2.5])
def test_audio_by_the_minute(minutes):
    for catalog in (EX, LIST):
        r = FalProvider(catalog=catalog).simulate(Call("audio_minute", "calm piano", minutes=minutes))
        assert r.usage.audio_minutes == minutes
        assert r.cost_usd == pytest.approx(0.10 * minutes)


# --- photos -------------------------------------------------------------------------------
def test_exercise_photo_searches_are_free_for_50_an_hour_then_charged():
    clock = VirtualClock()
    unsplash = UnsplashProvider(clock=clock, catalog=EX)
    costs = [unsplash.send(Call("unsplash-search", f"query {i}")).cost_usd for i in range(60)]
    assert costs[:50] == [0.0] * 50
    assert costs[50:] == pytest.approx([0.001] * 10)
    clock.advance_to(3600.0)  # the next clock hour: free again
    assert unsplash.send(Call("unsplash-search", "fresh hour")).cost_usd == 0.0


def test_list_photo_searches_are_free_and_capped_an_hour():
    # Production access (5,000 an hour) at list prices; a demo app's 50 shows the cap quickly.
    assert LIST.photo.hard_limit_per_hour == 5000 and LIST.photo.price_after_free == 0.0
    unsplash = UnsplashProvider(clock=VirtualClock(), catalog=demo_unsplash_catalog())
    assert sum(unsplash.send(Call("unsplash-search", f"q{i}")).cost_usd for i in range(50)) == 0.0
    with pytest.raises(RateLimited):
        unsplash.send(Call("unsplash-search", "one too many"))


def test_usage_adds_up_and_keeps_a_common_tier():
    a = Usage(input_tokens=1, output_tokens=2, service_tier="batch")
    b = Usage(input_tokens=10, output_tokens=20, service_tier="batch")
    assert a + b == Usage(input_tokens=11, output_tokens=22, service_tier="batch")
    assert (a + Usage()).service_tier == "mixed"
