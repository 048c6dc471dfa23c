"""Keys: what must share an entry, what must never, and normalization that keeps meaning."""
from __future__ import annotations

import pytest

from cfopt.cache.keys import cache_key, make_key
from cfopt.cache.normalize import normalize_prompt
from cfopt.errors import ConfigError
from cfopt.providers.base import Call


@pytest.mark.parametrize("variant", [
    "write a blog post about cats", "Write a blog post about cats.", "  WRITE   a blog\tpost about cats!!",
    "Please write a blog post about cats", "Could you please write a blog post about cats?",
    "hey, write a blog post about cats", "Kindly write a blog post about cats…",
])
def test_meaning_preserving_variants_share_a_key(variant):
    base = cache_key(Call("haiku", "write a blog post about cats"), tenant="acme")
    assert cache_key(Call("haiku", variant), tenant="acme") == base


@pytest.mark.parametrize("other", [
    "write a blog post about dogs", "write a 500 word blog post about cats",
    "don't write a blog post about cats", "write a blog post about cats please explain",
    "write a blog post about cats and dogs", "write a blog post, about cats",
    "write a blog post about cats?!? no: a tweet",
])
def test_any_change_of_meaning_changes_the_key(other):
    base = cache_key(Call("haiku", "write a blog post about cats"), tenant="acme")
    assert cache_key(Call("haiku", other), tenant="acme") != base


def test_every_output_changing_parameter_is_in_the_key():
    text = Call("haiku", "hello", max_tokens=100, system="be brief")
    variants = [Call("haiku", "hello", max_tokens=200, system="be brief"),
                Call("haiku", "hello", max_tokens=100, system="be verbose"),
                Call("haiku", "hello", max_tokens=100, system=None),
                Call("sonnet", "hello", max_tokens=100, system="be brief")]
    keys = {cache_key(c, tenant="t") for c in [text, *variants]}
    assert len(keys) == 5
    image = Call("flux_dev", "a red fox", width=1024, height=1024, steps=28, seed=1)
    image_variants = [Call("flux_dev", "a red fox", width=512, height=1024, steps=28, seed=1),
                      Call("flux_dev", "a red fox", width=1024, height=768, steps=28, seed=1),
                      Call("flux_dev", "a red fox", width=1024, height=1024, steps=4, seed=1),
                      Call("flux_dev", "a red fox", width=1024, height=1024, steps=28, seed=2),
                      Call("flux_schnell", "a red fox", width=1024, height=1024, steps=28, seed=1)]
    assert len({cache_key(c, tenant="t") for c in [image, *image_variants]}) == 6
    photos = {cache_key(Call("unsplash-search", "red fox", per_page=n), tenant="t") for n in (10, 30)}
    assert len(photos) == 2


def test_delivery_options_and_aliases_do_not_split_entries():
    a = cache_key(Call("haiku", "hello", max_tokens=1024), tenant="t")
    assert a == cache_key(Call("claude-haiku-5-5", "hello"), tenant="t")  # alias, default cap
    assert a == cache_key(Call("haiku", "hello", batch=True, cache_system="5m"), tenant="t")


def test_the_system_prompt_is_kept_verbatim():
    a = cache_key(Call("haiku", "hi", system="Answer in French."), tenant="t")
    assert a != cache_key(Call("haiku", "hi", system="answer in french"), tenant="t")


def test_tenants_get_distinct_prefixed_keys():
    a = cache_key(Call("haiku", "hello"), tenant="acme")
    b = cache_key(Call("haiku", "hello"), tenant="globex")
    assert a != b and a.startswith("acme:anthropic:claude-haiku-5-5:")
    assert a.split(":")[-1] != b.split(":")[-1]  # the digest itself differs too


@pytest.mark.parametrize("tenant", ["", "a:b", "a*", "ac?me", "x" * 65, None, "a b"])
def test_unsafe_tenants_are_refused(tenant):
    with pytest.raises(ConfigError, match="tenant"):
        cache_key(Call("haiku", "hello"), tenant=tenant)


def test_bad_parts_are_refused_with_the_reason():
    with pytest.raises(ConfigError, match="unknown model"):
        cache_key(Call("gpt-9", "hello"), tenant="t")
    with pytest.raises(ConfigError, match="JSON"):
        make_key("p", "m", "x", {"seed": object()}, tenant="t")
    with pytest.raises(ConfigError, match="provider"):
        make_key("a:b", "m", "x", {}, tenant="t")


def test_normalization_never_empties_a_prompt():
    assert normalize_prompt("Please!") == "please"
    assert normalize_prompt("   ?  ") == "?"
    with pytest.raises(TypeError):
        normalize_prompt(None)
