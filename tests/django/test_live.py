"""The admin's live feed over a WebSocket: staff only, events pushed as JSON frames."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from accounts.models import User
from llmproxy.model import Usage
from llmproxy.state import MemoryStateStore
from llmproxy.usage import UsageEvent
from llmproxy_site.asgi import application
from proxy.serving import live_feed as feed
from tests import factories
from tests.fakes import FakeUpstream
from tests.fakes import openai as up

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://127.0.0.1")


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def fresh_feed(monkeypatch: pytest.MonkeyPatch) -> Iterator[feed.Feed]:
    """A feed of its own, so no other test's watchers or buffer leak in."""
    f = feed.Feed()
    monkeypatch.setattr(feed, "FEED", f)
    monkeypatch.setattr(feed, "FLUSH_INTERVAL", 0.01)
    yield f


def cookie_of(user: User) -> tuple[bytes, bytes]:
    c = Client()
    c.force_login(user)
    return (b"cookie", f"{settings.SESSION_COOKIE_NAME}={c.cookies[settings.SESSION_COOKIE_NAME].value}".encode())


async def open_feed(*headers: tuple[bytes, bytes], path: str = feed.PATH) -> tuple[WebsocketCommunicator, bool, Any]:
    comm = WebsocketCommunicator(application, path, headers=list(headers))
    connected, code = await comm.connect(timeout=5)
    return comm, connected, code


def event(**fields: Any) -> UsageEvent:
    base: dict[str, Any] = {"request_id": "req-1", "created_at": 1_700_000_000.25, "ingress": "openai_chat",
                            "model": "gpt-test", "provider": "up", "credential": "key-1", "key_prefix": "llm_abc",
                            "usage": Usage(input_tokens=10, output_tokens=5), "cost_usd": 0.000105,
                            "latency_ms": 87, "attempts": 1}  # fmt: skip
    return UsageEvent(**{**base, **fields})


async def test_it_pushes_a_published_event_to_staff_as_json(fresh_feed: feed.Feed) -> None:
    staff = await sync_to_async(factories.user)("sam", staff=True)
    alice = await sync_to_async(factories.user)("alice")
    comm, connected, _ = await open_feed(ORIGIN, await sync_to_async(cookie_of)(staff))
    assert connected and fresh_feed.local == 1
    feed.publish(event(user_id=alice.pk))
    feed.publish(event(request_id="req-2", status_code=502, error_type="upstream_error", cost_usd=None))
    frame = await comm.receive_json_from(timeout=5)
    assert frame["dropped"] == 0
    first, second = frame["events"]
    assert first == {
        "request_id": "req-1", "time": "2023-11-14T22:13:20.250+00:00", "user_id": alice.pk, "user": "alice",
        "key_prefix": "llm_abc", "ingress": "openai_chat", "model": "gpt-test", "provider": "up",
        "credential": "key-1", "stream": False, "status": 200, "error_type": "", "prompt_tokens": 10,
        "completion_tokens": 5, "cached_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.000105, "latency_ms": 87, "ttfb_ms": None,
        "attempts": 1,
    }  # fmt: skip
    assert (second["request_id"], second["status"], second["cost_usd"], second["user"]) == ("req-2", 502, None, "")
    await comm.disconnect()
    assert fresh_feed.local == 0


async def test_it_rejects_anonymous_and_non_staff_connections(fresh_feed: feed.Feed) -> None:
    alice = await sync_to_async(factories.user)("alice")
    staff = await sync_to_async(factories.user)("sam", staff=True)
    anonymous = await open_feed(ORIGIN)
    non_staff = await open_feed(ORIGIN, await sync_to_async(cookie_of)(alice))
    assert (anonymous[1], anonymous[2]) == (False, 4403)
    assert (non_staff[1], non_staff[2]) == (False, 4403)
    foreign = await open_feed((b"origin", b"https://evil.example"), await sync_to_async(cookie_of)(staff))
    elsewhere = await open_feed(ORIGIN, await sync_to_async(cookie_of)(staff), path="/admin/other/")
    assert not foreign[1] and not elsewhere[1]
    assert fresh_feed.local == 0
    feed.publish(event())
    assert fresh_feed.pending == []  # nobody watches: nothing is even buffered


async def test_it_stops_buffering_once_the_last_admin_leaves(fresh_feed: feed.Feed, settings: Any) -> None:
    settings.REDIS_URL = None  # only this process's watchers count
    staff = await sync_to_async(factories.user)("sam", staff=True)
    comm, connected, _ = await open_feed(ORIGIN, await sync_to_async(cookie_of)(staff))
    assert connected
    await comm.disconnect()
    for i in range(3):
        feed.publish(event(request_id=f"req-{i}"))
    await asyncio.sleep(0.05)
    assert fresh_feed.pending == [] and fresh_feed.local == 0


async def test_it_marks_the_shared_store_while_an_admin_watches(fresh_feed: feed.Feed, settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # never dialled: the memory store below stands in for Redis
    shared = fresh_feed._store = MemoryStateStore()
    staff = await sync_to_async(factories.user)("sam", staff=True)
    comm, connected, _ = await open_feed(ORIGIN, await sync_to_async(cookie_of)(staff))
    assert connected
    await asyncio.sleep(0.05)
    assert await shared.get(feed.WATCH_KEY) == "1"
    await comm.disconnect()


async def test_it_sends_when_a_feed_in_another_process_watches(fresh_feed: feed.Feed, settings: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    monkeypatch.setattr(feed, "CHECK_INTERVAL", 0.0)
    shared = fresh_feed._store = MemoryStateStore()
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(feed.GROUP, channel)  # stands for the other process's consumer
    try:
        feed.publish(event(request_id="unwatched"))
        await asyncio.sleep(0.05)
        assert fresh_feed.remote is False and fresh_feed.pending == []
        await shared.put(feed.WATCH_KEY, "1", 30)
        feed.publish(event(request_id="noticed"))  # starts the look at the mark; not itself sent
        await asyncio.sleep(0.05)
        feed.publish(event(request_id="sent"))
        message = await asyncio.wait_for(layer.receive(channel), 5)
        assert [e["request_id"] for e in message["events"]] == ["sent"]
    finally:
        await layer.group_discard(feed.GROUP, channel)


def test_it_caps_a_burst_and_counts_what_it_left_out(fresh_feed: feed.Feed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "MAX_PENDING", 2)
    fresh_feed.local = 1  # as if an admin watched

    async def burst() -> None:
        for i in range(5):
            feed.publish(event(request_id=f"req-{i}"))
        assert [e["request_id"] for e in fresh_feed.pending] == ["req-0", "req-1"]
        assert fresh_feed.dropped == 3
        await asyncio.sleep(0.05)  # the flush empties the buffer even with nobody in the group

    asyncio.run(burst())
    assert fresh_feed.pending == [] and fresh_feed.dropped == 0


def test_it_flushes_what_arrives_while_a_batch_is_sent(fresh_feed: feed.Feed,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    sent: list[list[str]] = []

    class SlowLayer:
        async def group_send(self, group: str, message: dict[str, Any]) -> None:
            sent.append([e["request_id"] for e in message["events"]])
            await asyncio.sleep(0.05)

    monkeypatch.setattr(feed, "get_channel_layer", SlowLayer)
    fresh_feed.local = 1

    async def traffic() -> None:
        feed.publish(event(request_id="a"))
        await asyncio.sleep(0.03)  # the first batch is on its way
        feed.publish(event(request_id="b"))
        await asyncio.sleep(0.2)

    asyncio.run(traffic())
    assert sent == [["a"], ["b"]] and fresh_feed.pending == []


def test_it_streams_each_request_the_live_server_finishes(live: Any, fake: FakeUpstream) -> None:
    factories.provider("up", fake.url + "/v1")
    key, raw = factories.api_key(factories.user("alice"))
    staff = factories.user("sam", staff=True)
    fake.default("*", lambda rec: up.completion("hi", prompt=10, completion_tokens=5))
    live.reload()
    comm, connected, _ = live.call(open_feed(ORIGIN, cookie_of(staff)))
    assert connected
    try:
        started = time.time()
        resp = httpx.post(live.url + "/v1/chat/completions", headers={"authorization": f"Bearer {raw}"},
                          json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert resp.status_code == 200
        frame = live.call(comm.receive_json_from(timeout=5))
    finally:
        live.call(comm.disconnect())
    [ev] = frame["events"]
    assert ev["request_id"] == resp.headers["x-request-id"]
    assert (ev["user"], ev["key_prefix"], ev["model"], ev["provider"], ev["status"]) == (
        "alice", key.prefix, "gpt-test", "up", 200)  # fmt: skip
    assert (ev["prompt_tokens"], ev["completion_tokens"]) == (10, 5)
    assert ev["cost_usd"] == pytest.approx(10 * 3 / 1e6 + 5 * 15 / 1e6)
    assert ev["latency_ms"] >= 0 and ev["time"] >= time.strftime("%Y-%m-%dT", time.gmtime(started))
