"""Prices: what a route charges, and the shipped catalog of well-known models' list prices.

A route priced in config (``input_price``/``output_price``) keeps its own price; a route
without one takes the catalog's when its upstream model is listed there (the data file
``prices.json`` names each provider's price page and the date it was read). A route in
neither records ``cost_usd = null``. The output cap bounds a request's cost estimate
when the client sets no ``max_tokens``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")  # OpenAI snapshots: gpt-4o-2024-08-06


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens.

    ``input_tokens`` counts the whole prompt: fresh tokens, cache reads (``cached_tokens``,
    at ``cached_input``) and cache writes (``cache_write_tokens``, at ``cache_write``: Anthropic's
    5-minute write, OpenAI's 30-minute one). Of the writes, ``cache_write_1h_tokens`` went to Anthropic's 1-hour cache
    and pay ``cache_write_1h`` (left ``None``: the 5-minute rate). Another rate left ``None``
    is the input rate. ``long`` holds the rates of a
    prompt-length tier: a prompt of more than ``long_above`` tokens pays ``long``'s rates on
    every token of the request, output included.
    """

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    long_above: int | None = None
    long: Price | None = None
    cache_write_1h: float | None = None

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int,
        cache_write_tokens: int = 0,
        cache_write_1h_tokens: int = 0,
    ) -> float:
        if self.long is not None and self.long_above is not None and input_tokens > self.long_above:
            return self.long.cost(input_tokens, output_tokens, cached_tokens, cache_write_tokens, cache_write_1h_tokens)
        cached = min(cached_tokens, input_tokens)
        written = min(cache_write_tokens, input_tokens - cached)
        written_1h = min(cache_write_1h_tokens, written)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        write_rate = self.input if self.cache_write is None else self.cache_write
        write_1h_rate = write_rate if self.cache_write_1h is None else self.cache_write_1h
        fresh = input_tokens - cached - written
        writes = (written - written_1h) * write_rate + written_1h * write_1h_rate
        return (fresh * self.input + cached * cached_rate + writes + output_tokens * self.output) / 1e6


@dataclass(frozen=True, slots=True)
class Entry:
    model: str
    price: Price
    max_output: int | None
    source: str
    taken: str
    status: str = "active"  # "active", "legacy", "deprecated" or "retired" (still listed: some clouds serve it)


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("prices.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def entries() -> dict[str, Entry]:
    """Every listed model by its canonical name."""
    data = _data()
    out: dict[str, Entry] = {}
    for name, m in data["models"].items():
        src = data["sources"][m["source"]]
        taken = m.get("taken", src["taken"])  # a row re-read on another day says so itself
        out[name] = Entry(name, _price(m), m.get("max_output"), m["source"], taken, m.get("status", "active"))
    return out


def _rate(m: dict[str, Any], key: str) -> float | None:
    v = m.get(key)
    return None if v is None else float(v)


def _price(m: dict[str, Any]) -> Price:
    """A catalog row's price; ``long`` (``{"above": N, "input": ..., ...}``) is its prompt-length tier."""
    tier = m.get("long")
    long = _price(tier) if isinstance(tier, dict) else None
    return Price(float(m["input"]), float(m["output"]), _rate(m, "cached_input"), _rate(m, "cache_write"),
                 int(tier["above"]) if long is not None and tier is not None else None, long,
                 _rate(m, "cache_write_1h"))  # fmt: skip


@lru_cache(maxsize=1024)
def lookup(upstream_model: str) -> Entry | None:
    """The entry for an upstream model name: exact, an alias, without a vendor prefix
    (``openai/gpt-4o``, ``models/gemini-2.5-pro``) or without an OpenAI date suffix."""
    known, aliases = entries(), _data()["aliases"]
    name = upstream_model.strip().lower()
    for candidate in (name, name.rsplit("/", 1)[-1]):
        for n in (candidate, _DATED.sub("", candidate)):
            n = aliases.get(n, n)
            if n in known:
                return known[n]
    return None
