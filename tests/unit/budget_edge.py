"""Many requests at a budget's edge, through gateways that share one state store.

Used in-process by ``test_budget_edge`` (two gateways, one store) and as a child process
(``python -m tests.unit.budget_edge URL REDIS_URL PREFIX N [START]``: one gateway on Redis
firing N concurrent requests at the Unix time START, printing one JSON line of statuses
and recorded costs), so two processes hit the same key at once, however long each took
to start.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from typing import Any

from llmproxy.gateway import Call, Gateway, Reply, StreamReply
from llmproxy.http import HTTPClient
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.routing import Router
from llmproxy.runtime import ApiKeyInfo, Price, Route, Runtime, UserLimits
from llmproxy.state import StateStore
from llmproxy.stores import create_store
from llmproxy.usage import UsageEvent

KEY = "sk-llmp-edge-test"
BUDGET = 0.01
PRICE = Price(input=100.0, output=100.0)  # the fake answers 10 + 5 tokens: 0.0015 USD a request
COST = 0.0015


def runtime(base_url: str, *, user_budget: float | None = None) -> Runtime:
    p = ProviderConfig(name="edge", type="openai-compatible", base_url=base_url)
    route = Route("gpt-test", "gpt-up", p, (Credential("c", "edge", api_key="sk-c"),), PRICE)
    user = UserLimits(id=901, budget_usd=user_budget, budget_period="monthly") if user_budget else None
    key = ApiKeyInfo(key_hash=hashlib.sha256(KEY.encode()).hexdigest(), prefix=KEY[:12], id=900, user_id=901,
                     budget_usd=None if user_budget else BUDGET, budget_period="monthly", user=user)  # fmt: skip
    return Runtime.build(routes=[route], keys=[key])


def body(stream: bool = False) -> bytes:
    return json.dumps({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20,
                       "stream": stream, "stream_options": {"include_usage": True}}).encode()  # fmt: skip


async def drain(reply: Reply | StreamReply) -> int:
    if isinstance(reply, StreamReply):
        async for _ in reply.chunks:
            pass
    return reply.status


async def fire(gateways: list[Gateway], n: int, *, stream: bool = False) -> list[int]:
    calls = [gateways[i % len(gateways)].handle(Call("openai_chat", body(stream), api_key=KEY)) for i in range(n)]
    replies = await asyncio.gather(*calls)
    statuses = await asyncio.gather(*(drain(r) for r in replies))
    for gw in gateways:  # settling runs in the background: let it finish
        await gw.books.idle()
    return list(statuses)


def gateway(store: StateStore, rt: Runtime, events: list[UsageEvent], http: HTTPClient) -> Gateway:
    return Gateway(rt, http=http, router=Router(store), usage_sink=events.append)


async def _child(base_url: str, redis_url: str, prefix: str, n: int, start: float = 0.0) -> dict[str, Any]:
    store = create_store(redis_url, prefix=prefix)
    events: list[UsageEvent] = []
    http = HTTPClient()
    try:
        gw = gateway(store, runtime(base_url), events, http)
        await asyncio.sleep(max(0.0, start - time.time()))
        statuses = await fire([gw], n)
    finally:
        await http.close()
        await store.aclose()
    return {"statuses": statuses, "costs": [e.cost_usd for e in events if e.cost_usd]}


if __name__ == "__main__":
    url, redis_url, prefix, count = sys.argv[1:5]
    start = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    print(json.dumps(asyncio.run(_child(url, redis_url, prefix, int(count), start))))
