"""What the account-gateway tests share: a gateway with fast retries, a chat call, the reply's text.

The account tests (Copilot, Claude, Gemini, Kiro) differ in their fakes and credentials,
not in how they call the gateway or read what it answered; one copy keeps them reading alike.
"""

from __future__ import annotations

import json
from typing import Any

from llmproxy.auth import TokenKeeper
from llmproxy.gateway import Call, Gateway, Reply, StreamReply
from llmproxy.http import HTTPClient
from llmproxy.runtime import Route, RoutingSettings, Runtime
from llmproxy.state import MemoryStateStore

FAST = RoutingSettings(backoff_base=0.001, backoff_max=0.002, strategy="fill-first")


def account_gateway(routes: list[Route], http: HTTPClient, *, tokens: TokenKeeper | None = None,
                    **keeper: Any) -> Gateway:  # fmt: skip
    """A gateway over ``routes`` with its own state store; ``keeper`` goes to its ``TokenKeeper``."""
    rt = Runtime.build(routes=routes, require_keys=False, routing=FAST)
    store = MemoryStateStore()
    return Gateway(rt, http=http, store=store, tokens=tokens or TokenKeeper(store, http, **keeper))


def chat(model: str = "claude", *, stream: bool = False, messages: list[dict[str, Any]] | None = None) -> Call:
    body = {"model": model, "stream": stream, "messages": messages or [{"role": "user", "content": "hi"}]}
    return Call("openai_chat", json.dumps(body).encode())


async def text_of(result: Reply | StreamReply) -> str:
    """The assistant's text of a 200 reply, streamed or not; fails on any error event."""
    if isinstance(result, Reply):
        assert result.status == 200, result.body
        return str(json.loads(result.body)["choices"][0]["message"]["content"])
    assert result.status == 200
    out = ""
    async for chunk in result.chunks:
        for line in chunk.decode().splitlines():
            if line.startswith("data: {"):
                data = json.loads(line[6:])
                assert "error" not in data, data
                out += "".join(c["delta"].get("content") or "" for c in data.get("choices", []))
    return out
