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


async def test_a_route_without_any_price_records_no_cost(fake: FakeUpstream) -> None:
    events: list[UsageEvent] = []
    p = ProviderConfig(name="p", type="openai-compatible", base_url=f"{fake.url}/t0/v1")
    rt = Runtime.build(
        routes=[Route("m", "in-house-model", p, (Credential("k", "p", api_key="sk"),))], require_keys=False
    )
    assert rt.routes["m"][0].priced_by == "" and rt.routes["m"][0].price is None
    fake.queue("/t0/v1/chat/completions", up.completion("hi", prompt=100, completion_tokens=10))
    gw = Gateway(rt, usage_sink=events.append)
    await gw.chat({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert len(events) == 1 and events[0].usage.input_tokens == 100 and events[0].cost_usd is None
    await gw.http.close()


async def test_a_catalog_priced_anthropic_route_charges_one_hour_cache_writes_their_rate(fake: FakeUpstream) -> None:
    from llmproxy.pricing import lookup
    from tests.fakes import anthropic as fa

    events: list[UsageEvent] = []
    p = ProviderConfig(name="a", type="anthropic", base_url=f"{fake.url}/a")
    rt = Runtime.build(
        routes=[Route("m", "claude-opus-5-5", p, (Credential("k", "a", api_key="sk-ant"),))], require_keys=False
    )
    entry = lookup("claude-opus-5-5")
    assert entry is not None and rt.routes["m"][0].priced_by == "catalog"
    split = {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 800}
    usage = {**fa.usage(100, 10, cache_read=50, cache_creation=1000), "cache_creation": split}
    fake.queue("/a/v1/messages", fa.response("hi", usage_=usage))
    gw = Gateway(rt, usage_sink=events.append)
    await gw.chat({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    pr = entry.price
    assert pr.cache_write is not None and pr.cache_write_1h is not None and pr.cached_input is not None
    want = (
        100 * pr.input + 50 * pr.cached_input + 200 * pr.cache_write + 800 * pr.cache_write_1h + 10 * pr.output
    ) / 1e6
    assert events[0].usage.cache_write_1h_tokens == 800 and events[0].cost_usd == pytest.approx(want)
    await gw.http.close()
