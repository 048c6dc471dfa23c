"""Simulated fal.ai (images, video, audio) and Unsplash photo search."""
from __future__ import annotations

import json
import statistics

import pytest
from catalog_support import demo_unsplash_catalog

from cfopt.clock import VirtualClock
from cfopt.errors import InvalidRequest, RateLimited
from cfopt.pricing import load_catalog
from cfopt.providers import Call, FalProvider, Faults, UnsplashProvider
from cfopt.providers.unsplash import MAX_PER_PAGE

CATALOG = load_catalog()


def fal(seed=0, **kw):
    return FalProvider(seed=seed, clock=VirtualClock(), **kw)


def mean_latency(p, calls):
    return statistics.mean(p.simulate(c).latency_s for c in calls)


# --- fal: images --------------------------------------------------------------------------
def test_image_time_is_queue_plus_generation_by_megapixels_and_steps():
    p = fal(seed=1)
    info = CATALOG.model("flux_dev")
    lat = mean_latency(p, [Call("flux_dev", f"a fox {i}", width=1024, height=1024) for i in range(2000)])
    mp = 1024 * 1024 / 1e6
    expected_median = info["queue_s"] + info["gen_s_per_mp"] * mp
    assert lat == pytest.approx(expected_median, rel=0.15)  # log-normal mean is a little above the median
    bigger = mean_latency(p, [Call("flux_dev", f"a fox {i}", width=2048, height=2048) for i in range(500)])
    fewer_steps = mean_latency(p, [Call("flux_dev", f"a fox {i}", steps=14) for i in range(500)])
    assert bigger > 3 * lat and fewer_steps < 0.65 * lat


def test_schnell_is_much_faster_than_dev():
    p = fal(seed=2)
    calls = [f"a lighthouse {i}" for i in range(300)]
    assert mean_latency(p, [Call("flux_schnell", c) for c in calls]) * 3 < \
        mean_latency(p, [Call("flux_dev", c) for c in calls])


def test_image_url_and_size_are_fixed_by_the_request():
    p = fal(seed=3)
    a = p.simulate(Call("flux_dev", "a red kite", width=1280, height=720))
    b = p.simulate(Call("flux_dev", "a red kite", width=1280, height=720))
    assert a.media_url == b.media_url == a.content and a.size_bytes == b.size_bytes
    assert a.media_url.startswith("https://fal.media/files/") and a.media_url.endswith(".jpg")
    others = {p.simulate(Call("flux_dev", "a red kite", width=1280, height=720, seed=s)).media_url for s in (1, 2)}
    others |= {p.simulate(Call("flux_dev", "a blue kite", width=1280, height=720)).media_url,
               p.simulate(Call("flux_schnell", "a red kite", width=1280, height=720)).media_url,
               fal(seed=4).simulate(Call("flux_dev", "a red kite", width=1280, height=720)).media_url}
    assert len(others | {a.media_url}) == 6
    typical = CATALOG.model("flux_dev")["bytes_per_mp"] * 1280 * 720 / 1e6
    assert 0.85 * typical <= a.size_bytes <= 1.15 * typical
    assert a.extra["steps"] == CATALOG.model("flux_dev")["default_steps"]


@pytest.mark.parametrize("kw, problem", [
    (dict(width=16, height=512), "width and height"), (dict(width=512, height=10_000), "width and height"),
    (dict(steps=0), "steps"), (dict(steps=13), "steps"),
])
def test_bad_image_parameters_are_invalid_requests(kw, problem):
    with pytest.raises(InvalidRequest, match=problem):
        fal().simulate(Call("flux_schnell", "a cat", **kw))


# --- fal: video and audio -----------------------------------------------------------------
def test_video_takes_about_the_catalog_time_and_is_an_mp4():
    p = fal(seed=5)
    info = CATALOG.model("video_5s")
    rs = [p.simulate(Call("video_5s", f"waves {i}")) for i in range(500)]
    assert statistics.median(r.latency_s for r in rs) == pytest.approx(info["queue_s"] + info["gen_s"], rel=0.1)
    r = rs[0]
    assert r.media_url.endswith(".mp4") and r.first_content_s == r.latency_s
    seconds = info["default_duration"]
    assert (r.usage.videos, r.usage.video_seconds) == (1, float(seconds))
    assert r.usage.video_clips == ((seconds, info["default_resolution"]),)
    assert 0.85 <= r.size_bytes / (info["bytes_per_s"] * seconds) <= 1.15


def test_audio_scales_with_minutes():
    p = fal(seed=6)
    one = statistics.median(p.simulate(Call("audio_minute", f"jazz {i}", minutes=1)).latency_s for i in range(400))
    four = statistics.median(p.simulate(Call("audio_minute", f"jazz {i}", minutes=4)).latency_s for i in range(400))
    assert four > 3 * one
    r = p.simulate(Call("audio_minute", "jazz", minutes=2))
    assert r.media_url.endswith(".mp3") and r.usage.audio_minutes == 2.0
    assert 0.85 <= r.size_bytes / (2 * CATALOG.model("audio_minute")["bytes_per_minute"]) <= 1.15


@pytest.mark.parametrize("minutes", [0, -1, 11])
def test_bad_audio_length_is_an_invalid_request(minutes):
    with pytest.raises(InvalidRequest, match="minutes"):
        fal().simulate(Call("audio_minute", "jazz", minutes=minutes))


# --- unsplash -----------------------------------------------------------------------------
def test_search_json_is_shaped_like_unsplash():
    r = UnsplashProvider(seed=1, clock=VirtualClock()).send(Call("unsplash-search", "Coffee Beans", per_page=12))
    page = json.loads(r.content)
    assert set(page) == {"total", "total_pages", "results"}
    assert page["total_pages"] == -(-page["total"] // 12)
    assert len(page["results"]) == min(12, page["total"])
    for photo in page["results"]:
        assert len(photo["id"]) == 11
        assert "coffee beans" in photo["alt_description"]
        assert set(photo["urls"]) >= {"raw", "full", "regular", "small", "thumb"}
        assert all(u.startswith("https://images.unsplash.com/photo-") for u in photo["urls"].values())
        assert set(photo["user"]) >= {"name", "username"}
        assert photo["links"]["html"] == f"https://unsplash.com/photos/{photo['id']}"
        assert photo["links"]["download_location"].startswith(f"https://api.unsplash.com/photos/{photo['id']}/download")
    assert len({p["id"] for p in page["results"]}) == len(page["results"])


def test_search_is_fast_and_deterministic_per_query():
    a, b = UnsplashProvider(seed=2, clock=VirtualClock()), UnsplashProvider(seed=2, clock=VirtualClock())
    call = Call("unsplash-search", "mountain lake")
    assert a.simulate(call).content == b.simulate(call).content
    assert a.simulate(call).content != a.simulate(Call("unsplash-search", "desert road")).content
    assert a.simulate(call).content != UnsplashProvider(seed=3).simulate(call).content
    lat = statistics.median(a.simulate(Call("unsplash-search", f"q{i}")).latency_s for i in range(40))
    assert lat == pytest.approx(CATALOG.model("unsplash-search")["latency_s"], rel=0.25)


@pytest.mark.parametrize("per_page", [0, MAX_PER_PAGE + 1])
def test_bad_page_size_is_an_invalid_request(per_page):
    with pytest.raises(InvalidRequest, match="per_page"):
        UnsplashProvider().simulate(Call("unsplash-search", "cats", per_page=per_page))


def test_exercise_profile_bills_past_50_an_hour_and_counts_down():
    clock = VirtualClock(start=7200.0 + 1000)   # mid-hour: the window is the clock hour
    p = UnsplashProvider(clock=clock, catalog=load_catalog("exercise"))
    assert p.rate_limit_headers() == {"X-Ratelimit-Limit": "50", "X-Ratelimit-Remaining": "50"}
    billed = [p.send(Call("unsplash-search", f"q{i}")).usage.billable_requests for i in range(55)]
    assert billed == [0] * 50 + [1] * 5
    assert p.remaining() == 0
    clock.advance_to(3 * 3600.0)   # the hour rolls: the free allowance is back
    assert p.remaining() == 50
    assert p.send(Call("unsplash-search", "next hour")).usage.billable_requests == 0
    assert p.rate_limit_headers()["X-Ratelimit-Remaining"] == "49"


def test_list_profile_refuses_the_search_past_the_hourly_limit_until_the_hour_rolls():
    clock = VirtualClock(start=600.0)
    p = UnsplashProvider(clock=clock, catalog=demo_unsplash_catalog())   # a demo app: 50 an hour
    for i in range(50):
        p.simulate(Call("unsplash-search", f"q{i}"))
    assert p.remaining() == 0
    clock.advance(100.0)
    with pytest.raises(RateLimited, match="Rate Limit Exceeded") as e:
        p.simulate(Call("unsplash-search", "one more"))
    assert e.value.retry_after == pytest.approx(3600.0 - 700.0)
    clock.advance(e.value.retry_after)
    assert p.simulate(Call("unsplash-search", "one more")).usage.requests == 1
    assert p.remaining() == 49


def test_a_refused_search_does_not_use_the_allowance():
    clock = VirtualClock()
    p = UnsplashProvider(clock=clock, catalog=demo_unsplash_catalog())
    for i in range(50):
        p.simulate(Call("unsplash-search", f"q{i}"))
    for _ in range(5):
        with pytest.raises(RateLimited):
            p.simulate(Call("unsplash-search", "again"))
    clock.advance_to(3600.0)
    assert p.remaining() == 50


def test_unsplash_faults_are_injected_too():
    from cfopt.errors import ServerError
    with pytest.raises(ServerError):
        UnsplashProvider(faults=Faults(server_error=1.0)).simulate(Call("unsplash-search", "cats"))
