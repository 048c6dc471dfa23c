"""The catalog's Claude list prices against the ``genai-prices`` package they were copied from.

Every text model the default profile prices is billed by ``PriceCatalog.cost`` and by
``genai_prices.calc_price`` for the same usage, at realistic sizes (a short call, a call with
prompt-cache writes and reads, a long prompt past a long-context tier, and the batch price):
any disagreement fails, naming the model and the usage. The package is read offline (its
bundled snapshot: no price is fetched over the network at run time).
"""
from __future__ import annotations

from decimal import Decimal

import pytest

genai_prices = pytest.importorskip("genai_prices")
from genai_prices import data_snapshot  # noqa: E402

from cfopt.pricing import DEFAULT_PROFILE, Usage, load_catalog  # noqa: E402

CATALOG = load_catalog(DEFAULT_PROFILE)
CLAUDE = sorted(m for m in CATALOG.text if CATALOG.models[m].provider == "anthropic")

# (name, uncached input, 5-minute writes, 1-hour writes, reads, output)
SIZES = [
    ("short call", 1_200, 0, 0, 0, 400),
    ("cached document", 2_000, 6_000, 0, 0, 800),
    ("cache read", 2_000, 0, 0, 6_000, 800),
    ("1-hour write and read", 500, 0, 4_000, 3_000, 300),
    ("long prompt", 120_000, 0, 0, 30_000, 2_000),   # 150k prompt: past Haiku 5.5's 100k tier
]


def genai(model: str, u: Usage) -> Decimal:
    writes = u.cache_creation_input_tokens + u.cache_creation_1h_input_tokens
    usage = genai_prices.Usage(input_tokens=u.prompt_tokens, output_tokens=u.output_tokens,
                               cache_write_tokens=writes,
                               cache_write_1h_tokens=u.cache_creation_1h_input_tokens,
                               cache_read_tokens=u.cache_read_input_tokens)
    context = {"processing": "batch"} if u.service_tier == "batch" else None
    return genai_prices.calc_price(usage, model, provider_id="anthropic",
                                   price_context=context).total_price


def test_the_package_is_the_pinned_version_the_catalog_records_and_reads_offline():
    assert genai_prices.__version__ == CATALOG.meta["genai_prices_version"]
    snapshot = data_snapshot.get_snapshot()
    assert snapshot.from_auto_update is False   # the bundled data, never a download


@pytest.mark.parametrize("model", CLAUDE)
@pytest.mark.parametrize("tier", ["standard", "batch"])
@pytest.mark.parametrize("size", SIZES, ids=[s[0] for s in SIZES])
def test_every_catalog_claude_price_matches_genai_prices(model, tier, size):
    _, uncached, w5, w1h, reads, out = size
    if uncached + w5 + w1h + reads > CATALOG.models[model]["context_window"]:
        pytest.skip("over this model's context window")
    u = Usage(input_tokens=uncached, output_tokens=out, cache_creation_input_tokens=w5,
              cache_creation_1h_input_tokens=w1h, cache_read_input_tokens=reads, service_tier=tier)
    ours, theirs = CATALOG.cost(model, u), float(genai(model, u))
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12), (
        f"{model} {tier} {size[0]}: catalog ${ours:.9f}, genai-prices {genai_prices.__version__} "
        f"${theirs:.9f}: re-copy the price from the package")


def test_each_model_id_and_api_alias_is_one_genai_prices_knows():
    provider = next(p for p in data_snapshot.get_snapshot().providers if p.id == "anthropic")
    for model in CLAUDE:
        for name in CATALOG.models[model].api_names:
            assert provider.find_model(name) is not None, f"genai-prices does not know {name!r}"


def test_the_long_context_tier_changes_every_tokens_price():
    # Haiku 5.5: a prompt of 100,001 tokens moves the whole request to the 5x prices.
    short = CATALOG.cost("claude-haiku-5-5", Usage(input_tokens=100_000, output_tokens=1_000))
    long = CATALOG.cost("claude-haiku-5-5", Usage(input_tokens=100_001, output_tokens=1_000))
    assert long / short == pytest.approx(5.0, rel=1e-4)
