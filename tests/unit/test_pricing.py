"""The shipped price catalog and the cost estimate a budget reservation holds."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import pytest

from llmproxy.estimate import estimate
from llmproxy.model import Message, Request, TextPart
from llmproxy.pricing import Price, entries, lookup
from llmproxy.providers.base import ProviderConfig
from llmproxy.runtime import Route, Runtime


def test_catalog_names_a_dated_source_for_every_model() -> None:
    data = json.loads(resources.files("llmproxy").joinpath("prices.json").read_text())
    assert data["models"], "the catalog is empty"
    for name, m in data["models"].items():
        src = data["sources"][m["source"]]
        assert src["page"].startswith("https://") and len(src["taken"]) == 10, name
        assert m["input"] >= 0 and m["output"] >= 0, name
    for alias, target in data["aliases"].items():
        assert target in data["models"], alias
    assert {e.source for e in entries().values()} == {"openai", "anthropic", "gemini"}


@pytest.mark.parametrize("name", ["gpt-4o", "gpt-4o-2024-08-06", "openai/gpt-4o", "GPT-4o"])
def test_lookup_finds_snapshots_and_vendor_prefixed_names(name: str) -> None:
    entry = lookup(name)
    assert entry is not None and entry.model == "gpt-4o" and entry.price.output == 10.0


def test_lookup_follows_aliases_and_refuses_unknown_models() -> None:
    sonnet = lookup("anthropic/claude-sonnet-4-5")
    assert sonnet is not None and sonnet.model == "claude-sonnet-4-5-20250929" and sonnet.max_output == 64000
    gemini = lookup("models/gemini-2.5-flash")
    assert gemini is not None and gemini.source == "gemini"
    assert lookup("my-own-finetune") is None and lookup("gpt-4o-extra") is None


def _routes(*specs: tuple[str, Price | None]) -> list[Route]:
    p = ProviderConfig(name="p", type="openai")
    return [Route(f"m{i}", upstream, p, (), price) for i, (upstream, price) in enumerate(specs)]


def test_runtime_prices_routes_from_the_catalog_only_when_they_have_no_price() -> None:
    own = Price(1.0, 2.0)
    rt = Runtime.build(routes=_routes(("gpt-4o", None), ("gpt-4o", own), ("in-house", None)))
    catalog, configured, unpriced = (rt.routes[m][0] for m in ("m0", "m1", "m2"))
    assert catalog.priced_by == "catalog" and catalog.price == Price(2.5, 10.0, 1.25)
    assert configured.priced_by == "route" and configured.price == own and configured.max_output == 16384
    assert unpriced.priced_by == "" and unpriced.price is None and unpriced.max_output is None


def _req(max_tokens: int | None) -> Request:
    return Request(model="m", messages=[Message(role="user", parts=[TextPart("hello there")])], max_tokens=max_tokens)


def test_estimate_uses_max_tokens_then_the_cap_then_the_default() -> None:
    routes = Runtime.build(routes=_routes(("gpt-4o", None))).routes["m0"]
    capped = estimate(_req(None), routes, default_output=100)
    assert capped.output_tokens == 16384 and capped.prompt_tokens > 3
    assert capped.cost_usd == pytest.approx((capped.prompt_tokens * 2.5 + 16384 * 10.0) / 1e6)
    assert estimate(_req(50), routes, default_output=100).output_tokens == 50
    assert estimate(_req(10**6), routes, default_output=100).output_tokens == 16384
    unknown = _routes(("in-house", Price(1.0, 1.0)))
    assert estimate(_req(None), unknown, default_output=100).output_tokens == 100


def test_estimate_takes_the_dearest_route() -> None:
    routes = _routes(("a", Price(1.0, 1.0)), ("b", Price(1.0, 3.0)), ("c", None))
    est = estimate(_req(1000), routes, default_output=100)
    assert est.cost_usd == pytest.approx((est.prompt_tokens + 3000) / 1e6)
    assert estimate(_req(1000), _routes(("c", None)), default_output=100).cost_usd == 0.0


def test_every_catalog_row_parses_with_its_rates() -> None:
    data = json.loads(resources.files("llmproxy").joinpath("prices.json").read_text())
    known = entries()
    assert set(known) == set(data["models"])
    for name, e in known.items():
        m = data["models"][name]
        assert e.price.input == m["input"] and e.price.output == m["output"], name
        assert e.price.cache_write == m.get("cache_write") and e.price.cached_input == m.get("cached_input"), name
        assert e.price.cache_write_1h == m.get("cache_write_1h"), name
        assert e.status in ("active", "legacy", "deprecated", "retired", "unverified"), name
        if "long" in m:
            assert e.price.long is not None and e.price.long_above == m["long"]["above"] > 0, name


@pytest.mark.parametrize(
    ("model", "input_", "write", "write_1h", "read", "output", "cap"),
    [
        ("claude-fable-5-1", 10.0, 12.5, 20.0, 0.25, 50.0, 128000),
        ("claude-opus-5-5", 4.0, 5.0, 8.0, 0.2, 20.0, 128000),
        ("claude-opus-5", 5.0, 6.25, 10.0, 0.5, 25.0, 128000),
        ("claude-sonnet-5-5", 2.0, 2.5, 4.0, 0.2, 10.0, 128000),
        ("claude-sonnet-4-6", 3.0, 3.75, 6.0, 0.3, 15.0, 128000),
        ("claude-opus-4-5", 5.0, 6.25, 10.0, 0.5, 25.0, 64000),
        ("claude-haiku-4-5", 1.0, 1.25, 2.0, 0.1, 5.0, 64000),
    ],
)
def test_known_anthropic_figures(
    model: str, input_: float, write: float, write_1h: float, read: float, output: float, cap: int
) -> None:
    e = lookup(model)
    assert e is not None and e.source == "anthropic"
    assert e.taken == ("2026-12-02" if model == "claude-sonnet-4-6" else "2026-12-01")
    got = (e.price.input, e.price.cache_write, e.price.cache_write_1h, e.price.cached_input, e.price.output)
    assert got == (input_, write, write_1h, read, output)
    assert e.max_output == cap


def test_retired_models_stay_listed_and_marked() -> None:
    opus41 = lookup("claude-opus-4-1")
    assert opus41 is not None and opus41.status == "retired" and opus41.price.output == 75.0
    fable = lookup("claude-fable-5-1")
    assert fable is not None and fable.status == "active"


def test_cache_writes_are_charged_at_the_write_rate() -> None:
    p = Price(input=5.0, output=25.0, cached_input=0.5, cache_write=6.25)
    # 10k prompt: 2k read from the cache, 3k written to it, 5k fresh; 1k out
    assert p.cost(10_000, 1_000, 2_000, 3_000) == pytest.approx(
        (5_000 * 5.0 + 2_000 * 0.5 + 3_000 * 6.25 + 1_000 * 25.0) / 1e6
    )
    assert p.cost(10_000, 0, 0, 0) == pytest.approx(0.05)
    # no write price: writes cost the input rate; writes never exceed the prompt
    assert Price(1.0, 1.0).cost(100, 0, 0, 40) == pytest.approx(100 / 1e6)
    assert p.cost(100, 0, 60, 500) == pytest.approx((60 * 0.5 + 40 * 6.25) / 1e6)


def test_a_prompt_length_tier_prices_the_whole_request_at_the_higher_rates() -> None:
    haiku = lookup("claude-haiku-5-5")
    assert haiku is not None and haiku.price.long_above == 100_000 and haiku.price.long is not None
    short = haiku.price.cost(100_000, 1_000, 0, 0)
    assert short == pytest.approx((100_000 * 0.1 + 1_000 * 0.5) / 1e6)
    long = haiku.price.cost(100_001, 1_000, 0, 10_000)
    assert long == pytest.approx((90_001 * 0.5 + 10_000 * 0.625 + 1_000 * 2.5) / 1e6)


def test_a_usage_records_cache_writes_cost_the_catalog_write_rate() -> None:
    from llmproxy.model import Usage

    p = lookup("claude-opus-5-5")
    assert p is not None
    u = Usage(input_tokens=1_000, output_tokens=10, cached_tokens=0, cache_write_tokens=1_000)
    assert p.price.cost(u.input_tokens, u.output_tokens, u.cached_tokens, u.cache_write_tokens) == pytest.approx(
        (1_000 * 5.0 + 10 * 20.0) / 1e6
    )


def _row(name: str) -> dict[str, Any]:
    row: dict[str, Any] = json.loads(resources.files("llmproxy").joinpath("prices.json").read_text())["models"][name]
    return row


@pytest.mark.parametrize("name", ["claude-opus-5-5", "claude-sonnet-4-6", "claude-fable-5-1"])
def test_one_hour_cache_writes_cost_the_rows_one_hour_rate(name: str) -> None:
    row, e = _row(name), lookup(name)
    assert e is not None and row["cache_write_1h"] > row["cache_write"]
    # 10k prompt: 1k read, 4k written (3k of them to the 1-hour cache), 5k fresh; 100 out
    want = (5_000 * row["input"] + 1_000 * row["cached_input"] + 1_000 * row["cache_write"]
            + 3_000 * row["cache_write_1h"] + 100 * row["output"]) / 1e6  # fmt: skip
    assert e.price.cost(10_000, 100, 1_000, 4_000, 3_000) == pytest.approx(want)
    # without the split every write pays the 5-minute rate, as before
    flat = (5_000 * row["input"] + 1_000 * row["cached_input"] + 4_000 * row["cache_write"] + 100 * row["output"]) / 1e6
    assert e.price.cost(10_000, 100, 1_000, 4_000) == pytest.approx(flat) and flat < want


def test_one_hour_writes_never_exceed_the_writes_and_fall_back_to_the_5m_rate() -> None:
    p = Price(input=1.0, output=0.0, cache_write=2.0)
    assert p.cost(100, 0, 0, 10, 50) == pytest.approx((90 * 1.0 + 10 * 2.0) / 1e6)
    both = Price(input=1.0, output=0.0, cache_write=2.0, cache_write_1h=5.0)
    assert both.cost(100, 0, 0, 10, 50) == pytest.approx((90 * 1.0 + 10 * 5.0) / 1e6)


def test_the_long_tier_has_its_own_one_hour_rate() -> None:
    row, e = _row("claude-haiku-5-5"), lookup("claude-haiku-5-5")
    assert e is not None and e.price.long is not None
    long = row["long"]
    want = (100_001 - 20_000) * long["input"] + 20_000 * long["cache_write_1h"] + 10 * long["output"]
    assert e.price.cost(100_001, 10, 0, 20_000, 20_000) == pytest.approx(want / 1e6)
    short = 50_000 * row["input"] + 20_000 * row["cache_write_1h"]
    assert e.price.cost(70_000, 0, 0, 20_000, 20_000) == pytest.approx(short / 1e6)


def test_an_anthropic_usage_split_prices_one_hour_writes_end_to_end() -> None:
    from llmproxy.formats._anthropic_wire import decode_usage

    wire = {"input_tokens": 50, "output_tokens": 20, "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 400,
            "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 300}}  # fmt: skip
    u = decode_usage(wire)
    assert (u.input_tokens, u.cached_tokens, u.cache_write_tokens, u.cache_write_1h_tokens) == (550, 100, 400, 300)
    row, e = _row("claude-opus-5-5"), lookup("claude-opus-5-5")
    assert e is not None
    want = (50 * row["input"] + 100 * row["cached_input"] + 100 * row["cache_write"] + 300 * row["cache_write_1h"]
            + 20 * row["output"]) / 1e6  # fmt: skip
    got = e.price.cost(u.input_tokens, u.output_tokens, u.cached_tokens, u.cache_write_tokens, u.cache_write_1h_tokens)
    assert got == pytest.approx(want)


def test_every_row_names_a_page_and_a_date() -> None:
    data = json.loads(resources.files("llmproxy").joinpath("prices.json").read_text())
    for name, m in data["models"].items():
        src = data["sources"][m["source"]]
        page = m.get("page", src["page"])
        assert page.startswith("https://"), name
        taken = m.get("taken", src["taken"])
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", taken) and "2025-01-01" <= taken <= "2026-12-02", name
        entry = lookup(name)
        assert entry is not None and entry.taken == taken, name


@pytest.mark.parametrize(
    ("model", "input_", "read", "write", "output"),
    [("gpt-6.2-sol", 2.0, 0.1, 2.5, 10.0), ("gpt-6-sol", 2.0, 0.2, 2.5, 10.0), ("gpt-6-luna", 0.1, 0.01, 0.125, 0.5)],
)
def test_openai_rows_read_from_their_model_pages(
    model: str, input_: float, read: float, write: float, output: float
) -> None:
    e, row = lookup(f"openai/{model}-2026-09-22"), _row(model)
    assert e is not None and e.model == model and e.taken == "2026-12-02" and row["page"].startswith("https://")
    assert (e.price.input, e.price.cached_input, e.price.cache_write, e.price.output) == (input_, read, write, output)
    assert e.max_output == 128000 and e.price.long is not None and e.price.long_above == 272_000
    # above 272K input tokens the whole request pays 2x input and cache rates and 1.5x output
    long = e.price.long
    assert long.cached_input is not None and long.cache_write is not None
    assert (long.input, long.cached_input, long.cache_write, long.output) == pytest.approx(
        (2 * input_, 2 * read, 2 * write, 1.5 * output)
    )
    assert e.price.cost(272_001, 1_000, 0, 0) == pytest.approx((272_001 * 2 * input_ + 1_000 * 1.5 * output) / 1e6)
    assert e.price.cost(272_000, 1_000, 0, 0) == pytest.approx((272_000 * input_ + 1_000 * output) / 1e6)
