"""Replies without token counts still cost something: the gateway counts what the upstream did not.

Kiro (CodeWhisperer) reports the prompt only as a ``contextUsageEvent`` percentage, and an
OpenAI stream on passthrough carries no usage unless the client asked for it. Without a
count the record would say 0 tokens, so the call would be free and invisible to TPM; the
gateway records its own tokenizer's count instead and marks the usage ``estimated``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from llmproxy.gateway import Call, Gateway, Reply, StreamReply
from llmproxy.http import HTTPClient
from llmproxy.pricing import Price
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.runtime import Route, RoutingSettings, Runtime
from llmproxy.state import MemoryStateStore
from llmproxy.usage import UsageEvent
from tests.fakes import FakeUpstream
from tests.fakes import Reply as FakeReply
from tests.fakes import codewhisperer as cw
from tests.fakes import openai as up

ARN = "arn:aws:codewhisperer:us-east-1:699475941385:profile/TEST"
PRICE = Price(input=3.0, output=15.0)
PROMPT = "Count the tokens of this prompt, please: " + "lorem ipsum dolor sit amet " * 20


@pytest.fixture(scope="module")
def kiro() -> Iterator[cw.FakeCodeWhisperer]:
    fake = cw.FakeCodeWhisperer(profile_arn=ARN).start()
    yield fake  # type: ignore[misc]
    fake.stop()


@pytest.fixture
async def http() -> AsyncIterator[HTTPClient]:
    client = HTTPClient()
    yield client
    await client.close()


def gateway(route: Route, http: HTTPClient) -> tuple[Gateway, list[UsageEvent]]:
    events: list[UsageEvent] = []
    rt = Runtime.build(routes=[route], require_keys=False, routing=RoutingSettings(strategy="fill-first"))
    return Gateway(rt, http=http, store=MemoryStateStore(), usage_sink=events.append), events


def kiro_route(kiro: cw.FakeCodeWhisperer) -> Route:
    provider = ProviderConfig(name="kiro", type="kiro", base_url=kiro.url, options={"auth_type": "device_flow"})
    cred = Credential("me", "kiro", access_token=kiro.add_token("aoaUSAGE"), refresh_token="aorX", expires_at=None,
                      extra={"auth_method": "social", "profile_arn": ARN})  # fmt: skip
    return Route("claude", "claude-sonnet-4-5", provider, (cred,), price=PRICE)


def chat(stream: bool, **extra: Any) -> Call:
    body = {"model": "claude", "stream": stream, "messages": [{"role": "user", "content": PROMPT}], **extra}
    return Call("openai_chat", json.dumps(body).encode())


async def client_usage(result: Reply | StreamReply) -> dict[str, Any] | None:
    """The usage the client was shown (the non-streaming body's, or the stream's usage chunk)."""
    if isinstance(result, Reply):
        assert result.status == 200, result.body
        return json.loads(result.body).get("usage")  # type: ignore[no-any-return]
    shown = None
    async for chunk in result.chunks:
        for line in chunk.decode().splitlines():
            if line.startswith("data: {") and json.loads(line[6:]).get("usage"):
                shown = json.loads(line[6:])["usage"]
    return shown


@pytest.mark.parametrize("stream", [False, True])
async def test_a_kiro_reply_without_context_usage_records_the_gateways_prompt_count(
    kiro: cw.FakeCodeWhisperer, http: HTTPClient, stream: bool
) -> None:
    kiro.reset_replies()
    kiro.then(cw.PATH, cw.stream(cw.frames(["Hello", " there"], percent=None)))
    gw, events = gateway(kiro_route(kiro), http)
    shown = await client_usage(await gw.handle(chat(stream, stream_options={"include_usage": True})))
    (ev,) = events
    assert ev.status_code == 200 and ev.usage.estimated
    assert ev.usage.input_tokens > len(PROMPT) // 8  # the tokenizer's count, not 0
    assert ev.usage.output_tokens > 0 and ev.cost_usd is not None and ev.cost_usd > 0
    assert shown is not None and shown["prompt_tokens"] == ev.usage.input_tokens  # the client reads the same


async def test_a_kiro_context_percentage_is_still_the_prompt_count(
    kiro: cw.FakeCodeWhisperer, http: HTTPClient
) -> None:
    kiro.reset_replies()
    kiro.then(cw.PATH, cw.stream(cw.frames(["Hello"], percent=10.0)))
    gw, events = gateway(kiro_route(kiro), http)
    await client_usage(await gw.handle(chat(False)))
    (ev,) = events
    assert ev.usage.input_tokens == 20_000  # 10 % of the 200K window: the upstream's own figure stands
    assert ev.usage.estimated  # the output is the tokenizer's count all the same


async def test_an_openai_stream_without_usage_on_passthrough_records_estimated_counts(
    fake: FakeUpstream, http: HTTPClient
) -> None:
    provider = ProviderConfig(name="oa", type="openai-compatible", base_url=f"{fake.url}/v1")
    route = Route("claude", "gpt-up", provider, (Credential("k", "oa", api_key="sk-test-usage"),), price=PRICE)
    fake.default("/v1/chat/completions", up.stream(["Hel", "lo ", "world"], with_usage=False))
    gw, events = gateway(route, http)
    assert await client_usage(await gw.handle(chat(True))) is None  # the client did not ask for usage
    (ev,) = events
    assert ev.status_code == 200 and ev.usage.estimated
    assert ev.usage.input_tokens > len(PROMPT) // 8 and ev.usage.output_tokens >= 2
    assert ev.cost_usd is not None and ev.cost_usd > 0


async def test_a_reported_usage_is_not_marked_estimated(fake: FakeUpstream, http: HTTPClient) -> None:
    provider = ProviderConfig(name="oa", type="openai-compatible", base_url=f"{fake.url}/v1")
    route = Route("claude", "gpt-up", provider, (Credential("k", "oa", api_key="sk-test-usage"),), price=PRICE)
    fake.default("/v1/chat/completions", up.stream(["Hi"], with_usage=True))
    gw, events = gateway(route, http)
    await client_usage(await gw.handle(chat(True, stream_options={"include_usage": True})))
    (ev,) = events
    assert not ev.usage.estimated and ev.usage.input_tokens == 10  # the upstream's count stands


async def test_a_whole_reply_without_usage_records_estimated_counts(fake: FakeUpstream, http: HTTPClient) -> None:
    provider = ProviderConfig(name="oa", type="openai-compatible", base_url=f"{fake.url}/v1")
    route = Route("claude", "gpt-up", provider, (Credential("k", "oa", api_key="sk-test-usage"),), price=PRICE)
    body = up.completion("Hello there, this is the whole reply.").body
    assert isinstance(body, dict)
    body.pop("usage")  # an OpenAI-compatible server that reports none
    fake.default("/v1/chat/completions", FakeReply(body))
    gw, events = gateway(route, http)
    shown = await client_usage(await gw.handle(chat(False)))
    (ev,) = events
    assert ev.usage.estimated and ev.usage.input_tokens > len(PROMPT) // 8 and ev.usage.output_tokens >= 5
    assert shown is None  # passthrough: the body is the upstream's, untouched
