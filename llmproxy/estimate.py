"""What a request may cost, before it is sent: the amount a budget reservation holds.

Prompt tokens come from the offline tokenizer (``tokens``); output tokens are the
request's ``max_tokens``, else the model's output cap from the catalog, else
``limits.default_output_tokens``. The cost is the dearest route's price for those
tokens (failover may land on any route of the model), so the estimate is an upper bound
whenever the output cap holds and the tokenizer does not undercount the prompt; then a
budget is never exceeded by the requests it admitted together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .model import Request
from .runtime import Route
from .tokens import count_request


@dataclass(frozen=True, slots=True)
class Estimate:
    prompt_tokens: int
    output_tokens: int
    cost_usd: float


def output_allowance(req: Request, routes: Sequence[Route], default: int) -> int:
    caps = [r.max_output for r in routes if r.max_output]
    cap = max(caps) if caps else None
    if req.max_tokens is not None and req.max_tokens > 0:
        return min(req.max_tokens, cap) if cap else req.max_tokens
    return cap or default


def estimate(req: Request, routes: Sequence[Route], *, default_output: int) -> Estimate:
    prompt = count_request(req)
    out = output_allowance(req, routes, default_output)
    costs = [r.price.cost(prompt, out, 0) for r in routes if r.price is not None]
    return Estimate(prompt, out, max(costs) if costs else 0.0)
