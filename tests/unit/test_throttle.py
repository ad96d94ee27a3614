"""Failed client-key attempts throttled per address; the client address behind trusted proxies."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from llmproxy import Gateway
from llmproxy.config import ConfigError, loads
from llmproxy.gateway import Call, Reply
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.routing import Router
from llmproxy.runtime import ApiKeyInfo, Route, Runtime
from llmproxy.state import MemoryStateStore, StoreError
from llmproxy.throttle import AuthThrottle, ClientSettings, client_address
from llmproxy.usage import UsageEvent
from tests.fakes import FakeUpstream
from tests.fakes import openai as up

BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake(upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream.reset()
    yield upstream


def gateway(fake: FakeUpstream, clock: Clock, clients: ClientSettings, events: list[UsageEvent]) -> Gateway:
    p = ProviderConfig(name="p", type="openai-compatible", base_url=f"{fake.url}/v1")
    route = Route("m", "up", p, (Credential("k", "p", api_key="sk-upstream"),))
    keys = [ApiKeyInfo(hashlib.sha256(b"good-key").hexdigest(), "good", id=1, user_id=7)]
    rt = Runtime.build(routes=[route], keys=keys, clients=clients)
    return Gateway(rt, router=Router(MemoryStateStore(clock), clock=clock), usage_sink=events.append)


async def call(gw: Gateway, key: str | None, client: str, ingress: str = "openai_chat") -> Reply:
    reply = await gw.handle(Call(ingress, BODY, api_key=key, client=client))
    assert isinstance(reply, Reply)
    return reply


async def test_an_address_over_its_failure_budget_gets_429_with_retry_after(fake: FakeUpstream) -> None:
    clock, events = Clock(), []
    gw = gateway(fake, clock, ClientSettings(max_key_failures=3, key_failure_window=60), events)
    for _ in range(3):
        assert (await call(gw, "wrong", "203.0.113.9")).status == 401
    throttled = await call(gw, "wrong", "203.0.113.9")
    assert throttled.status == 429
    assert throttled.headers["retry-after"] == "20"  # one failure back per 60/3 s
    err = json.loads(throttled.body)["error"]
    assert err["code"] == "too_many_key_failures" and "failed API key attempts" in err["message"]
    assert (await call(gw, None, "203.0.113.9")).status == 429  # a missing key is a failed attempt too
    assert (await call(gw, "wrong", "198.51.100.1")).status == 401  # another address has its own budget
    assert [e.status_code for e in events][-3:] == [429, 429, 401]  # each refusal is recorded once
    clock.now += 20
    assert (await call(gw, "wrong", "203.0.113.9")).status == 401  # the window forgave one failure
    assert (await call(gw, "wrong", "203.0.113.9")).status == 429
    await gw.http.close()


async def test_a_valid_key_is_served_while_its_address_is_throttled(fake: FakeUpstream) -> None:
    clock, events = Clock(), []
    gw = gateway(fake, clock, ClientSettings(max_key_failures=1, key_failure_window=60), events)
    assert (await call(gw, "wrong", "203.0.113.9")).status == 401
    assert (await call(gw, "wrong", "203.0.113.9")).status == 429
    fake.queue("/v1/chat/completions", up.completion("hello"))
    assert (await call(gw, "good-key", "203.0.113.9")).status == 200
    await gw.http.close()


async def test_throttled_answers_speak_each_dialect(fake: FakeUpstream) -> None:
    clock, events = Clock(), []
    gw = gateway(fake, clock, ClientSettings(max_key_failures=1, key_failure_window=10), events)
    await call(gw, "wrong", "203.0.113.9")
    ant = await call(gw, "wrong", "203.0.113.9", "anthropic")
    assert ant.status == 429 and json.loads(ant.body)["type"] == "error"
    gem = await gw.handle(Call("gemini", b"{}", api_key="wrong", model="m", client="203.0.113.9"))
    assert isinstance(gem, Reply) and gem.status == 429
    assert json.loads(gem.body)["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert gem.headers["retry-after"] == "10"
    await gw.http.close()


async def test_zero_turns_throttling_off_and_no_address_is_never_throttled(fake: FakeUpstream) -> None:
    clock, events = Clock(), []
    gw = gateway(fake, clock, ClientSettings(max_key_failures=0), events)
    assert {(await call(gw, "wrong", "203.0.113.9")).status for _ in range(30)} == {401}
    gw = gateway(fake, clock, ClientSettings(max_key_failures=1), events)
    assert {(await call(gw, "wrong", "")).status for _ in range(5)} == {401}
    await gw.http.close()


async def test_a_store_that_cannot_answer_leaves_plain_401s() -> None:
    class Down(MemoryStateStore):
        async def take(self, *args: Any, **kwargs: Any) -> float:
            raise StoreError("down")

    throttle = AuthThrottle(Down())
    assert await throttle.failed("203.0.113.9", ClientSettings(max_key_failures=1)) == 0.0


async def test_valid_keys_never_touch_the_store(fake: FakeUpstream) -> None:
    clock, events = Clock(), []
    gw = gateway(fake, clock, ClientSettings(max_key_failures=1), events)
    taken: list[Any] = []
    original = gw.router.store.take

    async def spy(costs: Any, now: float) -> float:
        taken.extend(b.key for b, _ in costs)
        return await original(costs, now)

    gw.router.store.take = spy  # type: ignore[method-assign]
    fake.queue("/v1/chat/completions", up.completion("hello"))
    assert (await call(gw, "good-key", "203.0.113.9")).status == 200
    assert not [k for k in taken if k.startswith("authfail:")]
    await call(gw, "wrong", "203.0.113.9")
    assert "authfail:203.0.113.9" in taken
    await gw.http.close()


def test_x_forwarded_for_counts_only_from_a_trusted_proxy() -> None:
    none = ClientSettings()
    assert client_address("203.0.113.9", "10.0.0.1", none) == "203.0.113.9"
    assert client_address("127.0.0.1", "10.0.0.1", none) == "127.0.0.1"  # not even loopback is trusted by default
    trusted = ClientSettings(trusted_proxies=("10.0.0.0/8", "::1"))
    assert client_address("10.1.2.3", "198.51.100.7", trusted) == "198.51.100.7"
    # The right-most hop that is not a trusted proxy: what the client wrote itself is further left.
    assert client_address("10.1.2.3", "6.6.6.6, 198.51.100.7, 10.9.9.9", trusted) == "198.51.100.7"
    assert client_address("::1", "2001:db8::5", trusted) == "2001:db8::5"
    assert client_address("::ffff:10.0.0.2", "198.51.100.7", trusted) == "198.51.100.7"
    assert client_address("10.1.2.3", "not-an-ip", trusted) == "10.1.2.3"
    assert client_address("10.1.2.3", "10.0.0.5", trusted) == "10.1.2.3"  # only proxies: the peer
    assert client_address("203.0.113.9", "198.51.100.7", trusted) == "203.0.113.9"  # peer not trusted


def test_the_clients_section_parses_and_checks() -> None:
    conf = loads("clients: {max_key_failures: 5, key_failure_window: 5m, trusted_proxies: [10.0.0.0/8, '::1']}")
    assert conf.clients == ClientSettings(5, 300.0, ("10.0.0.0/8", "::1"))
    assert loads("").clients == ClientSettings(10, 60.0, ())
    env = loads("", env={"LLMPROXY_CLIENTS_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16",
                         "LLMPROXY_CLIENTS_MAX_KEY_FAILURES": "0"})  # fmt: skip
    assert env.clients == dataclasses.replace(ClientSettings(), max_key_failures=0,
                                              trusted_proxies=("10.0.0.1", "192.168.0.0/16"))  # fmt: skip
    with pytest.raises(ConfigError) as exc:
        loads("clients: {trusted_proxies: [proxy.local], max_key_failures: -1, bogus: 1}")
    text = str(exc.value)
    assert "clients.trusted_proxies[0]" in text and "clients.max_key_failures" in text and "bogus" in text
