"""Per-request overrides (INTERFACE.md section 12) on the engine: parsing, rights, and effect.

A library caller passes ``overrides=`` to ``Gateway.chat``/``messages``/``stream`` (or
``Call.overrides``); a wire call carries ``x-llmproxy-*`` headers or query parameters.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator

import pytest

from llmproxy import Gateway, LLMProxyError
from llmproxy.gateway import Call, Reply
from llmproxy.http import HTTPClient, Timeouts
from llmproxy.overrides import Overrides, parse, requested
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.runtime import ApiKeyInfo, Price, Route, Runtime
from llmproxy.usage import UsageEvent
from tests.fakes import FakeUpstream
from tests.fakes import Reply as FakeReply
from tests.fakes import openai as up

ASK = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def fake(upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream.reset()
    yield upstream


def _key(raw: str, **kw: object) -> ApiKeyInfo:
    return ApiKeyInfo(hashlib.sha256(raw.encode()).hexdigest(), raw[:8], id=len(raw), user_id=1, **kw)  # type: ignore[arg-type]


def runtime(fake: FakeUpstream, *, keys: bool = False, tiers: int = 2) -> Runtime:
    routes = []
    for i in range(tiers):
        p = ProviderConfig(name=f"p{i}", type="openai-compatible", base_url=f"{fake.url}/t{i}/v1", priority=-i)
        routes.append(Route("m", f"up-{i}", p, (Credential("k", p.name, api_key=f"sk-{i}"),), Price(1.0, 2.0)))
    key_list = [_key("plain-key"), _key("allowed-key", allow_overrides=True), _key("admin-key", is_admin=True)]
    return Runtime.build(routes=routes, keys=key_list if keys else [], require_keys=keys)


def _body(reply: Reply) -> dict[str, object]:
    return dict(json.loads(reply.body))


def test_parse_reads_wire_strings_and_typed_values() -> None:
    raw = requested({"x-llmproxy-timeout": "2.5", "x-llmproxy-provider": "p1"}, {"retries": "0", "provider": "px"})
    assert raw == {"provider": "p1", "timeout": "2.5", "retries": "0"}  # a header wins over the query
    assert parse(raw, max_timeout=300, max_attempts=3) == Overrides(provider="p1", timeout=2.5, retries=0)
    assert parse({"retries": 2, "timeout": 1}, max_timeout=300, max_attempts=3).record() == {
        "timeout": 1.0,
        "retries": 2,
    }
    assert not parse({}, max_timeout=300, max_attempts=3)


@pytest.mark.parametrize(
    ("raw", "param"),
    [({"timeout": "soon"}, "timeout"), ({"timeout": "0"}, "timeout"), ({"timeout": "-1"}, "timeout"),
     ({"timeout": "nan"}, "timeout"), ({"timeout": "301"}, "timeout"), ({"retries": "-1"}, "retries"),
     ({"retries": "1.5"}, "retries"), ({"retries": "3"}, "retries"), ({"retries": True}, "retries"),
     ({"provider": " "}, "provider"), ({"color": "red"}, "color")],
)  # fmt: skip
def test_parse_refuses_bad_values_naming_the_parameter(raw: dict[str, object], param: str) -> None:
    with pytest.raises(LLMProxyError) as exc:
        parse(raw, max_timeout=300, max_attempts=3)
    assert exc.value.status == 400 and exc.value.param == param


async def test_provider_override_serves_from_that_provider_only(fake: FakeUpstream) -> None:
    events: list[UsageEvent] = []
    fake.queue("/t1/v1/chat/completions", up.completion("from p1"))
    gw = Gateway(runtime(fake), usage_sink=events.append)
    reply = await gw.chat(ASK, overrides={"provider": "p1"})
    assert reply["choices"][0]["message"]["content"] == "from p1"
    assert [r.path for r in fake.requests] == ["/t1/v1/chat/completions"]  # p0 (tried first normally) untouched
    assert events[0].provider == "p1" and events[0].overrides == {"provider": "p1"}
    await gw.http.close()


async def test_provider_override_for_a_provider_without_the_model_is_404(fake: FakeUpstream) -> None:
    events: list[UsageEvent] = []
    gw = Gateway(runtime(fake), usage_sink=events.append)
    with pytest.raises(LLMProxyError) as exc:
        await gw.chat(ASK, overrides={"provider": "nowhere"})
    assert exc.value.status == 404 and "nowhere" in exc.value.message
    assert fake.requests == [] and events[0].status_code == 404
    await gw.http.close()


async def test_retries_zero_means_no_failover(fake: FakeUpstream) -> None:
    events: list[UsageEvent] = []
    fake.queue("/t0/v1/chat/completions", up.error(503))
    fake.queue("/t1/v1/chat/completions", up.completion("from p1"))
    gw = Gateway(runtime(fake), usage_sink=events.append)
    with pytest.raises(LLMProxyError) as exc:
        await gw.chat(ASK, overrides={"retries": 0})
    assert exc.value.status in (502, 503)
    assert [r.path for r in fake.requests] == ["/t0/v1/chat/completions"]
    assert events[0].attempts == 1 and events[0].overrides == {"retries": 0}
    gw.router.clear()
    fake.reset()
    fake.queue("/t0/v1/chat/completions", up.error(503))
    fake.queue("/t1/v1/chat/completions", up.completion("from p1"))
    assert (await gw.chat(ASK))["choices"][0]["message"]["content"] == "from p1"  # without it: failover
    await gw.http.close()


async def test_timeout_override_cuts_a_slow_upstream_without_cooling_it(fake: FakeUpstream) -> None:
    events: list[UsageEvent] = []
    fake.queue("/t0/v1/chat/completions", FakeReply(up.completion("late").body, delay=3.0))
    gw = Gateway(runtime(fake, tiers=1), usage_sink=events.append)
    start = time.monotonic()
    with pytest.raises(LLMProxyError) as exc:
        await gw.chat(ASK, overrides={"timeout": 0.3})
    assert exc.value.status == 504 and time.monotonic() - start < 2.5
    assert events[0].overrides == {"timeout": 0.3} and events[0].error_type == "upstream_timeout"
    fake.queue("/t0/v1/chat/completions", up.completion("next"))
    assert (await gw.chat(ASK))["choices"][0]["message"]["content"] == "next"  # not in cooldown for others
    await gw.http.close()


async def test_timeout_override_may_not_exceed_the_configured_timeout(fake: FakeUpstream) -> None:
    gw = Gateway(runtime(fake), http=HTTPClient(timeouts=Timeouts(first_byte=20, read=20)))
    with pytest.raises(LLMProxyError) as exc:
        await gw.chat(ASK, overrides={"timeout": 21})
    assert exc.value.status == 400 and "timeout" in exc.value.message and "20 seconds" in exc.value.message
    await gw.http.close()


@pytest.mark.parametrize("where", ["header", "query"])
async def test_a_key_without_the_right_gets_403_in_its_dialect(fake: FakeUpstream, where: str) -> None:
    events: list[UsageEvent] = []
    gw = Gateway(runtime(fake, keys=True), usage_sink=events.append)
    headers = {"x-llmproxy-provider": "p1"} if where == "header" else {}
    query = {"provider": "p1"} if where == "query" else {}
    body = json.dumps({**ASK, "max_tokens": 5}).encode()
    reply = await gw.handle(Call("anthropic", body, headers=headers, query=query, api_key="plain-key"))
    assert isinstance(reply, Reply) and reply.status == 403
    assert _body(reply)["type"] == "error" and "overrides" in str(_body(reply)["error"])  # Anthropic's envelope
    assert fake.requests == [] and events[0].status_code == 403
    await gw.http.close()


@pytest.mark.parametrize("key", ["allowed-key", "admin-key"])
async def test_keys_with_allow_overrides_or_the_management_scope_may(fake: FakeUpstream, key: str) -> None:
    fake.queue("/t1/v1/chat/completions", up.completion("from p1"))
    gw = Gateway(runtime(fake, keys=True))
    reply = await gw.handle(Call("openai_chat", json.dumps(ASK).encode(), headers={"x-llmproxy-provider": "p1"},
                                 api_key=key))  # fmt: skip
    assert isinstance(reply, Reply) and reply.status == 200, reply.body
    assert reply.headers["x-llmproxy-provider"] == "p1"
    await gw.http.close()


async def test_a_plain_key_without_overrides_is_served(fake: FakeUpstream) -> None:
    fake.queue("/t0/v1/chat/completions", up.completion("hello"))
    gw = Gateway(runtime(fake, keys=True))
    reply = await gw.handle(Call("openai_chat", json.dumps(ASK).encode(), api_key="plain-key"))
    assert isinstance(reply, Reply) and reply.status == 200
    await gw.http.close()
