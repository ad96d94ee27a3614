"""The gateway against scripted fake upstreams: failover, cooldowns, clean errors, limits."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import UTC
from typing import Any

import pytest

from llmproxy.gateway import Call, Gateway, Reply, StreamReply
from llmproxy.http import HTTPClient, Timeouts
from llmproxy.periods import bounds
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.routing import Router
from llmproxy.runtime import ApiKeyInfo, Price, Route, Runtime
from llmproxy.runtime import RoutingSettings as Routing
from llmproxy.state import MemoryStateStore
from llmproxy.usage import UsageEvent
from tests.fakes import FakeUpstream, Recorded, Stream
from tests.fakes import Reply as FakeReply
from tests.fakes import openai as up
from tests.unit.stores import Clock

FAST = Routing(backoff_base=0.001, backoff_max=0.002, strategy="fill-first")
Script = FakeReply | Stream


class ByKey:
    """Answers by upstream credential (its bearer token): queued scripts first, then a default."""

    def __init__(self) -> None:
        self.queues: dict[str, deque[Script]] = {}
        self.defaults: dict[str, Script] = {}
        self.seen: list[str] = []

    def queue(self, cred: str, *scripts: Script) -> None:
        self.queues.setdefault(cred, deque()).extend(scripts)

    def __call__(self, rec: Recorded) -> Script:
        cred = rec.headers.get("authorization", "").removeprefix("Bearer sk-")
        self.seen.append(cred)
        q = self.queues.get(cred)
        if q:
            return q.popleft()
        return self.defaults.get(cred, up.completion("ok"))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def runtime(fake: FakeUpstream, *providers: tuple[str, int, list[str]], routing: Routing = FAST,
            base_url: Callable[[str], str] | None = None, keys: list[ApiKeyInfo] | None = None,
            price: Price | None = None) -> Runtime:  # fmt: skip
    routes = []
    for name, prio, names in providers:
        url = base_url(name) if base_url else f"{fake.url}/{name}/v1"
        p = ProviderConfig(name=name, type="openai-compatible", base_url=url, priority=prio, cooldown=60)
        routes.append(
            Route("gpt-test", "gpt-up", p, tuple(Credential(c, name, api_key=f"sk-{c}") for c in names), price)
        )
    return Runtime.build(routes=routes, keys=keys, require_keys=keys is not None, routing=routing)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def script(fake: FakeUpstream) -> ByKey:
    s = ByKey()
    fake.default("*", s)
    return s


@pytest.fixture
async def gw(clock: Clock) -> AsyncIterator[Gateway]:
    http = HTTPClient(timeouts=Timeouts(connect=1.0, first_byte=0.5, read=0.5))
    events: list[UsageEvent] = []
    g = Gateway(http=http, router=Router(MemoryStateStore(clock), clock=clock), usage_sink=events.append)
    g.events = events  # type: ignore[attr-defined]
    yield g
    await http.close()


async def ask(gw: Gateway, *, stream: bool = False, key: str | None = None) -> Reply | StreamReply:
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return await gw.handle(Call("openai_chat", json.dumps(body).encode(), api_key=key))


async def body_of(reply: Reply | StreamReply) -> bytes:
    if isinstance(reply, Reply):
        return reply.body
    return b"".join([chunk async for chunk in reply.chunks])


def events(gw: Gateway) -> list[UsageEvent]:
    return gw.events  # type: ignore[attr-defined,no-any-return]


async def test_gateway_fails_over_a_429_and_comes_back_after_retry_after(
    gw: Gateway, fake: FakeUpstream, script: ByKey, clock: Clock
) -> None:
    gw.swap(runtime(fake, ("claude", 0, ["A", "B"])))
    script.queue("A", up.error(429, "slow down", {"retry-after": "5"}))
    r = await ask(gw)
    assert r.status == 200 and r.headers["x-llmproxy-attempts"] == "2" and r.headers["x-llmproxy-provider"] == "claude"
    ev = events(gw)[-1]
    assert (ev.credential, ev.attempts, ev.status_code) == ("B", 2, 200)
    assert (await ask(gw)).status == 200
    assert script.seen == ["A", "B", "B"]  # A is skipped while it cools
    clock.advance(5.5)
    for _ in range(2):
        assert (await ask(gw)).status == 200
    assert script.seen[-2:] == ["A", "A"]  # back by itself, no restart
    assert gw.router.store.list_cooldowns() == {}


async def test_gateway_cools_a_429_without_retry_after_for_the_provider_cooldown(
    gw: Gateway, fake: FakeUpstream, script: ByKey, clock: Clock
) -> None:
    gw.swap(runtime(fake, ("claude", 0, ["A", "B"])))
    script.queue("A", up.error(429))
    assert (await ask(gw)).status == 200
    cd = gw.router.store.list_cooldowns()["claude/A/gpt-up"]
    assert cd.rate_limited and cd.until - clock() == pytest.approx(60)


async def test_gateway_reads_provider_reset_headers_on_a_429(
    gw: Gateway, fake: FakeUpstream, script: ByKey, clock: Clock
) -> None:
    gw.swap(runtime(fake, ("claude", 0, ["A", "B"])))
    script.queue(
        "A", up.error(429, headers={"x-ratelimit-reset-requests": "42s", "x-ratelimit-remaining-requests": "0"})
    )
    assert (await ask(gw)).status == 200
    assert gw.router.store.list_cooldowns()["claude/A/gpt-up"].until - clock() == pytest.approx(42, abs=1)


@pytest.mark.parametrize(
    "failure",
    [
        up.error(500),
        up.error(503),
        Stream([b'{"id": "x"'], headers={"content-type": "application/json"}, cut_after=0),  # reset
        FakeReply({}, delay=2.0),  # past the first-byte timeout
    ],
    ids=["500", "503", "reset", "timeout"],
)
async def test_gateway_fails_over_transient_failures(
    gw: Gateway, fake: FakeUpstream, script: ByKey, clock: Clock, failure: Script
) -> None:
    gw.swap(runtime(fake, ("claude", 0, ["A", "B"])))
    script.queue("A", failure)
    r = await ask(gw)
    assert r.status == 200 and json.loads(await body_of(r))["choices"][0]["message"]["content"] == "ok"
    cd = gw.router.store.list_cooldowns()["claude/A/gpt-up"]
    assert cd.reason == "error" and cd.until - clock() == pytest.approx(5)


async def test_gateway_fails_over_a_stream_that_breaks_before_its_first_byte(
    gw: Gateway, fake: FakeUpstream, script: ByKey
) -> None:
    gw.swap(runtime(fake, ("claude", 0, ["A", "B"])))
    script.queue("A", up.stream(["never"], cut_after=0))
    script.defaults["B"] = up.stream(["Hel", "lo"])
    r = await ask(gw, stream=True)
    text = (await body_of(r)).decode()
    assert r.status == 200 and "Hel" in text and "[DONE]" in text and '"error"' not in text
    assert script.seen == ["A", "B"]


async def test_gateway_turns_a_stream_cut_mid_way_into_an_error_event(
    gw: Gateway, fake: FakeUpstream, script: ByKey
) -> None:
    gw.swap(runtime(fake, ("claude", 0, ["A", "B"])))
    script.queue("A", up.stream(["Hel", "lo", "there"], cut_after=3, delay=0.05))
    script.defaults["B"] = up.stream(["unused"])
    r = await ask(gw, stream=True)
    assert r.status == 200
    frames = [f for f in (await body_of(r)).decode().split("\n\n") if f.startswith("data: ")]
    assert "Hel" in frames[1]
    assert json.loads(frames[-2].removeprefix("data: "))["error"]["code"] == "upstream_unreachable"
    assert frames[-1] == "data: [DONE]"
    await asyncio.sleep(0.05)  # the cooldown is written in the background
    assert gw.router.store.list_cooldowns()["claude/A/gpt-up"].reason == "error"
    assert script.seen == ["A"]


async def test_gateway_fails_over_a_dead_tier_without_client_errors(
    gw: Gateway, fake: FakeUpstream, script: ByKey
) -> None:
    dead = closed_port()
    urls = {"main": f"http://127.0.0.1:{dead}/v1", "backup": f"{fake.url}/backup/v1"}
    gw.swap(runtime(fake, ("main", 10, ["M1", "M2"]), ("backup", 0, ["B1"]), base_url=urls.__getitem__))
    replies = [await ask(gw) for _ in range(20)]
    assert [r.status for r in replies] == [200] * 20
    assert [e.attempts for e in events(gw)] == [3] + [1] * 19
    assert all(e.provider == "backup" for e in events(gw))
    assert set(gw.router.store.list_cooldowns()) == {"main/M1/gpt-up", "main/M2/gpt-up"}


async def test_gateway_answers_an_exhausted_pool_with_429_and_the_soonest_retry_after(
    gw: Gateway, fake: FakeUpstream, script: ByKey
) -> None:
    gw.swap(runtime(fake, ("claude", 0, ["A", "B"])))
    script.queue("A", up.error(429, headers={"retry-after": "30"}))
    script.queue("B", up.error(429, headers={"retry-after": "8"}))
    r = await ask(gw)
    assert r.status == 429 and r.headers["retry-after"] == "8"
    err = json.loads(await body_of(r))["error"]
    assert (err["type"], err["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    again = await ask(gw)
    assert again.status == 429 and again.headers["retry-after"] == "8"
    assert script.seen == ["A", "B"]  # the second answer came without troubling the upstreams


async def test_gateway_answers_a_failing_pool_with_503(gw: Gateway, fake: FakeUpstream, script: ByKey) -> None:
    gw.swap(runtime(fake, ("claude", 0, ["A"])))
    script.queue("A", up.error(500))
    r = await ask(gw)
    assert r.status == 503 and r.headers["retry-after"] == "5"
    assert json.loads(await body_of(r))["error"]["code"] == "no_route_available"


async def test_gateway_does_not_retry_the_clients_fault(gw: Gateway, fake: FakeUpstream, script: ByKey) -> None:
    gw.swap(runtime(fake, ("claude", 0, ["A", "B"])))
    script.queue("A", up.error(400, "bad tool schema"))
    r = await ask(gw)
    assert r.status == 400 and "bad tool schema" in json.loads(await body_of(r))["error"]["message"]
    assert script.seen == ["A"] and gw.router.store.list_cooldowns() == {}


async def test_gateway_stops_after_max_attempts(gw: Gateway, fake: FakeUpstream, script: ByKey) -> None:
    gw.swap(runtime(fake, ("claude", 0, ["A", "B", "C", "D"]), routing=Routing(max_attempts=2, backoff_base=0.001)))
    for c in "ABCD":
        script.defaults[c] = up.error(502)
    r = await ask(gw)
    assert r.status == 502 and r.headers["x-llmproxy-attempts"] == "2" and len(script.seen) == 2


async def test_gateway_survives_a_storm_and_recovers_every_credential(
    gw: Gateway, fake: FakeUpstream, script: ByKey, clock: Clock
) -> None:
    gw.swap(runtime(fake, ("claude", 5, ["A", "B"]), ("gemini", 0, ["C"]), routing=Routing(backoff_base=0.001)))
    rng = random.Random(4)
    storm = [up.error(429, headers={"retry-after": "3"}), up.error(429), up.error(500), up.error(503),
             Stream([b"{"], headers={"content-type": "application/json"}, cut_after=0)] + [up.completion("ok")] * 5  # fmt: skip
    for c in "ABC":
        script.queue(c, *[rng.choice(storm) for _ in range(30)])
    statuses, rescued = [], 0
    for _ in range(40):
        r = await ask(gw)
        statuses.append(r.status)
        rescued += r.status == 200 and r.headers["x-llmproxy-attempts"] != "1"
        body = json.loads(await body_of(r))
        if r.status == 200:
            assert body["choices"][0]["message"]["content"] == "ok"
        else:  # a clean, dialect-correct refusal with a time to come back
            assert r.status in (429, 503) and int(r.headers["retry-after"]) >= 1
            assert body["error"]["type"] in ("rate_limit_error", "server_error") and body["error"]["message"]
        clock.advance(rng.uniform(0, 10))
    assert statuses.count(200) >= 10 and rescued and {429, 503} <= set(statuses)  # a real storm
    script.queues.clear()  # the upstreams recover
    clock.advance(901)
    replies = [await ask(gw) for _ in range(12)]
    assert all(r.status == 200 for r in replies)
    assert set(script.seen[-12:]) == {"A", "B"}  # the top tier is whole again
    assert not any(cd.blocks(clock()) for cd in gw.router.store.list_cooldowns().values())


def key_info(**kw: Any) -> ApiKeyInfo:
    return ApiKeyInfo(key_hash=hashlib.sha256(b"sk-llmp-test").hexdigest(), prefix="sk-llmp-test", id=7, **kw)


async def test_gateway_enforces_key_rpm_in_the_clients_dialect(gw: Gateway, fake: FakeUpstream, script: ByKey) -> None:
    gw.swap(runtime(fake, ("claude", 0, ["A"]), keys=[key_info(rpm=2)]))
    assert [(await ask(gw, key="sk-llmp-test")).status for _ in range(2)] == [200, 200]
    r = await ask(gw, key="sk-llmp-test")
    assert r.status == 429 and r.headers["retry-after"] == "30"
    assert json.loads(await body_of(r))["error"]["code"] == "rate_limit_exceeded"
    assert script.seen == ["A", "A"]


async def test_gateway_enforces_a_budget(gw: Gateway, fake: FakeUpstream, script: ByKey, clock: Clock) -> None:
    key = key_info(budget_usd=0.001, budget_period="daily")
    gw.swap(runtime(fake, ("claude", 0, ["A"]), keys=[key], price=Price(input=100.0, output=100.0)))
    assert (await ask(gw, key="sk-llmp-test")).status == 200  # 15 tokens at $100/M: $0.0015
    await asyncio.sleep(0.05)  # spend is settled in the background
    r = await ask(gw, key="sk-llmp-test")
    assert r.status == 429 and json.loads(await body_of(r))["error"]["code"] == "budget_exceeded"
    midnight = bounds("daily", clock(), UTC)[1]
    assert midnight is not None and int(r.headers["retry-after"]) == pytest.approx(midnight - clock(), abs=2)
    clock.advance(midnight - clock())
    assert (await ask(gw, key="sk-llmp-test")).status == 200  # a new period, a new counter


async def test_gateway_keeps_a_session_on_its_credential(gw: Gateway, fake: FakeUpstream, script: ByKey) -> None:
    gw.swap(runtime(fake, ("claude", 0, ["A", "B", "C"]), routing=Routing(session_affinity_ttl=60)))
    for _ in range(4):
        body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
        await gw.handle(Call("openai_chat", json.dumps(body).encode(), headers={"x-session-id": "conv-9"}))
    assert len(set(script.seen)) == 1
    for _ in range(3):
        await ask(gw)  # no session: the rotation goes on
    assert set(script.seen) == {"A", "B", "C"}


class Probed:
    """GET /models per credential; POST (the one-token fallback) always answers."""

    def __init__(self, models: dict[str, int]) -> None:
        self.models = models
        self.calls: list[tuple[str, str]] = []

    def __call__(self, rec: Recorded) -> Script:
        cred = rec.headers.get("authorization", "").removeprefix("Bearer sk-")
        self.calls.append((rec.method, cred))
        if rec.method == "GET":
            status = self.models.get(cred, 200)
            return FakeReply({"object": "list", "data": []}) if status == 200 else up.error(status)
        return up.completion("pong")


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (429, True), (401, False), (403, False), (500, False)])
async def test_probe_judges_a_credential_by_the_models_list(fake: FakeUpstream, status: int, healthy: bool) -> None:
    from llmproxy.health import probe
    from llmproxy.providers import create

    fake.default("*", Probed({"A": status}))
    p = ProviderConfig(name="up", type="openai-compatible", base_url=f"{fake.url}/v1")
    http = HTTPClient()
    try:
        result = await probe(create(p), Credential("A", "up", api_key="sk-A"), http, model="gpt-up")
    finally:
        await http.close()
    assert result.healthy is healthy and result.http_status == status
    assert fake.requests[-1].method == "GET" and fake.requests[-1].path == "/v1/models"
    assert fake.requests[-1].body is None


async def test_probe_falls_back_to_a_one_token_completion(fake: FakeUpstream) -> None:
    from llmproxy.health import probe
    from llmproxy.providers import create

    probed = Probed({"A": 404})
    fake.default("*", probed)
    http = HTTPClient()
    p = ProviderConfig(name="up", type="openai-compatible", base_url=f"{fake.url}/v1")
    try:
        result = await probe(create(p), Credential("A", "up", api_key="sk-A"), http, model="gpt-up")
    finally:
        await http.close()
    assert result.healthy and probed.calls == [("GET", "A"), ("POST", "A")]
    sent = fake.requests[-1].body
    assert sent["model"] == "gpt-up" and sent.get("max_completion_tokens", sent.get("max_tokens")) == 1


async def test_probe_reports_an_unreachable_upstream() -> None:
    from llmproxy.health import probe
    from llmproxy.providers import create

    p = ProviderConfig(name="up", type="openai-compatible", base_url=f"http://127.0.0.1:{closed_port()}/v1")
    http = HTTPClient()
    try:
        result = await probe(create(p), Credential("A", "up", api_key="sk-A"), http, timeout=1.0)
    finally:
        await http.close()
    assert not result.healthy and "reach" in result.error


DIALECT_BODIES: dict[str, dict[str, Any]] = {
    "openai_chat": {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20},
    "anthropic": {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20},
    "gemini": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 20}},
}


def _refusal(ingress: str, body: dict[str, Any]) -> tuple[str, str | None]:
    """The message and the dialect's own kind of a 429 body (OpenAI code, Anthropic type, Gemini status)."""
    err = body["error"]
    if ingress == "openai_chat":
        return err["message"], err["code"]
    if ingress == "anthropic":
        assert body["type"] == "error"
        return err["message"], err["type"]
    assert err["code"] == 429
    return err["message"], err["status"]


@pytest.mark.parametrize(("ingress", "kind"), [("openai_chat", "budget_exceeded"), ("anthropic", "rate_limit_error"),
                                               ("gemini", "RESOURCE_EXHAUSTED")])  # fmt: skip
@pytest.mark.parametrize("limit", ["user budget", "key rpm"])
async def test_gateway_refuses_over_a_limit_in_the_clients_dialect(
    gw: Gateway, fake: FakeUpstream, script: ByKey, clock: Clock, ingress: str, kind: str, limit: str
) -> None:
    """Section 10: 429 in the caller's own error shape, Retry-After in whole seconds, a message naming
    which holder (key or user) and which limit."""
    from llmproxy.runtime import UserLimits

    user = UserLimits(id=70, budget_usd=0.001, budget_period="monthly") if limit == "user budget" else None
    k = key_info(user=user, user_id=70) if user else key_info(rpm=1)
    gw.swap(runtime(fake, ("claude", 0, ["A"]), keys=[k], price=Price(input=100.0, output=100.0)))
    call = Call(ingress, json.dumps(DIALECT_BODIES[ingress]).encode(), api_key="sk-llmp-test",
                model="gpt-test" if ingress == "gemini" else None, stream=False if ingress == "gemini" else None)  # fmt: skip
    assert (await gw.handle(call)).status == 200  # $0.0015: over the $0.001 budget, by this one request
    await gw.books.idle()
    r = await gw.handle(call)
    assert r.status == 429
    message, got = _refusal(ingress, json.loads(await body_of(r)))
    retry = int(r.headers["retry-after"])
    if limit == "user budget":
        assert message == "user budget of 0.001 USD per month reached"
        end = bounds("monthly", clock(), UTC)[1]
        assert end is not None and retry == pytest.approx(end - clock(), abs=2)
        assert got == (kind if ingress != "openai_chat" else "budget_exceeded")
    else:
        assert message == "key rate limit of 1 requests per minute reached" and retry == 60
        assert got == (kind if ingress != "openai_chat" else "rate_limit_exceeded")
    assert script.seen == ["A"]  # the refused request never went upstream
