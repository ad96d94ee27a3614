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
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int) -> float:
        cached = min(cached_tokens, input_tokens)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return ((input_tokens - cached) * self.input + cached * cached_rate + output_tokens * self.output) / 1e6


@dataclass(frozen=True, slots=True)
class Entry:
    model: str
    price: Price
    max_output: int | None
    source: str
    taken: str


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
        price = Price(float(m["input"]), float(m["output"]), m.get("cached_input"))
        out[name] = Entry(name, price, m.get("max_output"), m["source"], src["taken"])
    return out


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
