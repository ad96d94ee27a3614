"""The Gateway as a library: a hand-built Runtime, a fake upstream, no Django."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from llmproxy import Gateway, LLMProxyError
from llmproxy.gateway import Call, Reply, StreamReply
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.runtime import ApiKeyInfo, Price, Route, Runtime
from llmproxy.usage import UsageEvent
from tests.fakes import FakeUpstream
from tests.fakes import openai as up


@pytest.fixture
def fake(upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream.reset()
    yield upstream


def runtime(fake: FakeUpstream, *, keys: bool = False, tiers: int = 1) -> Runtime:
    routes = []
    for i in range(tiers):
        p = ProviderConfig(name=f"p{i}", type="openai-compatible", base_url=f"{fake.url}/t{i}/v1", priority=-i)
        routes.append(Route("m", f"up-{i}", p, (Credential("k", p.name, api_key=f"sk-{i}"),), Price(1.0, 2.0)))
    import hashlib

    key_list = [ApiKeyInfo(hashlib.sha256(b"good").hexdigest(), "good", id=1, user_id=7)] if keys else []
    return Runtime.build(routes=routes, keys=key_list, require_keys=keys)


async def test_gateway_chat_runs_the_pipeline_as_a_library(fake: FakeUpstream) -> None:
    events: list[UsageEvent] = []
    fake.queue("/t0/v1/chat/completions", up.completion("hello", prompt=100, completion_tokens=10))
    gw = Gateway(runtime(fake), usage_sink=events.append)
    reply = await gw.chat({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert reply["choices"][0]["message"]["content"] == "hello"
    assert reply["model"] == "m"
    assert fake.last().body["model"] == "up-0"
    assert len(events) == 1 and events[0].usage.input_tokens == 100
    assert events[0].cost_usd == pytest.approx((100 * 1.0 + 10 * 2.0) / 1e6)
    await gw.http.close()


async def test_gateway_stream_yields_chunks(fake: FakeUpstream) -> None:
    fake.queue("/t0/v1/chat/completions", up.stream(["a", "b"]))
    gw = Gateway(runtime(fake))
    chunks = [c async for c in gw.stream({"model": "m", "messages": [{"role": "user", "content": "hi"}]})]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "ab"
    assert chunks[-1]["usage"]["total_tokens"] == 15
    await gw.http.close()


async def test_gateway_fails_over_to_the_next_tier(fake: FakeUpstream) -> None:
    events: list[UsageEvent] = []
    fake.queue("/t0/v1/chat/completions", up.error(503))
    fake.queue("/t1/v1/chat/completions", up.completion("from tier 2"))
    gw = Gateway(runtime(fake, tiers=2), usage_sink=events.append)
    reply = await gw.chat({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert reply["choices"][0]["message"]["content"] == "from tier 2"
    assert events[0].attempts == 2 and events[0].provider == "p1"
    await gw.http.close()


async def test_gateway_does_not_retry_client_errors(fake: FakeUpstream) -> None:
    fake.queue("/t0/v1/chat/completions", up.error(400, "bad field"))
    gw = Gateway(runtime(fake, tiers=2))
    with pytest.raises(LLMProxyError) as exc:
        await gw.chat({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert exc.value.status == 400 and "bad field" in exc.value.message
    assert [r.path for r in fake.requests] == ["/t0/v1/chat/completions"]
    await gw.http.close()


async def test_gateway_answers_errors_in_the_ingress_dialect(fake: FakeUpstream) -> None:
    events: list[UsageEvent] = []
    gw = Gateway(runtime(fake, keys=True), usage_sink=events.append)
    result = await gw.handle(Call("openai_chat", b'{"model":"m","messages":[]}', api_key="bad"))
    assert isinstance(result, Reply) and result.status == 401
    assert json.loads(result.body)["error"]["code"] == "invalid_api_key"
    assert events[-1].status_code == 401
    await gw.http.close()


async def test_gateway_stream_cut_midway_ends_with_an_error_event(fake: FakeUpstream) -> None:
    events: list[UsageEvent] = []
    fake.queue("/t0/v1/chat/completions", up.stream(["a", "b", "c", "d"], cut_after=3, delay=0.05))
    gw = Gateway(runtime(fake, keys=True), usage_sink=events.append)
    body = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}).encode()
    result = await gw.handle(Call("openai_chat", body, api_key="good"))
    assert isinstance(result, StreamReply)
    out = b"".join([c async for c in result.chunks])
    assert b'"error"' in out and out.endswith(b"data: [DONE]\n\n")
    assert events[-1].status_code == 502 and events[-1].user_id == 7
    await gw.http.close()
