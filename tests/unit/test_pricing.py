"""The shipped price catalog and the cost estimate a budget reservation holds."""

from __future__ import annotations

import json
from importlib import resources

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
