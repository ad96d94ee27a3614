"""Responses API state in the engine: stored responses, previous_response_id, item_reference, retention."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmproxy import Gateway
from llmproxy._responses_redis import RedisResponseStore
from llmproxy.conversations import page
from llmproxy.errors import InvalidRequest
from llmproxy.formats import openai_responses as codec
from llmproxy.gateway import Call, Reply, StreamReply
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.responses_store import MemoryResponseStore, ResponseStore, StoredResponse
from llmproxy.runtime import ApiKeyInfo, ResponsesSettings, Route, Runtime
from tests.fakes import FakeUpstream
from tests.fakes import openai as up

CHAT = "/v1/chat/completions"
KEYS = {"a": "key-a", "b": "key-b"}


@pytest.fixture
def fake(upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream.reset()
    yield upstream


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def runtime(fake: FakeUpstream, retention_days: float = 30.0) -> Runtime:
    p = ProviderConfig(name="p", type="openai-compatible", base_url=f"{fake.url}/v1")
    keys = [ApiKeyInfo(hashlib.sha256(k.encode()).hexdigest(), k[:6], id=i) for i, k in enumerate(KEYS.values())]
    return Runtime.build(routes=[Route("m", "up", p, (Credential("k", "p", api_key="sk"),))], keys=keys,
                         responses=ResponsesSettings(retention_days))  # fmt: skip


async def create(gw: Gateway, body: dict[str, Any], key: str = "a") -> tuple[int, dict[str, Any]]:
    reply = await gw.handle(Call("openai_responses", json.dumps({"model": "m", **body}).encode(), api_key=KEYS[key]))
    if isinstance(reply, StreamReply):
        raw = b"".join([c async for c in reply.chunks])
        done = [json.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]
        return reply.status, done[-1]["response"]
    return reply.status, json.loads(reply.body)


async def stored(gw: Gateway, action: str, rid: str, key: str = "a", **query: str) -> tuple[int, Any]:
    reply = await gw.stored_response(Call("openai_responses", b"", api_key=KEYS[key]), action, rid,
                                     {k: [v] for k, v in query.items()})  # fmt: skip
    assert isinstance(reply, Reply)
    return reply.status, json.loads(reply.body)


def sent_messages(fake: FakeUpstream, n: int = -1) -> list[tuple[str, str]]:
    msgs = fake.requests[n].body["messages"]
    return [(m["role"], m.get("content") if isinstance(m.get("content"), str) else json.dumps(m.get("tool_calls")))
            for m in msgs]  # fmt: skip


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_previous_response_id_sends_the_whole_conversation_to_a_chat_upstream(
    fake: FakeUpstream, stream: bool
) -> None:
    fake.queue(CHAT, up.stream(["Hi", " Ann"]) if stream else up.completion("Hi Ann"), up.completion("Ann"))
    gw = Gateway(runtime(fake))
    status, first = await create(gw, {"input": "I am Ann.", "stream": stream})
    assert status == 200 and first["id"].startswith("resp_") and first["store"] is True
    assert (await stored(gw, "get", first["id"]))[1]["store"] is True
    status, second = await create(gw, {"input": "Who am I?", "previous_response_id": first["id"]})
    assert status == 200 and second["previous_response_id"] == first["id"]
    assert sent_messages(fake) == [("user", "I am Ann."), ("assistant", "Hi Ann"), ("user", "Who am I?")]
    await gw.http.close()


async def test_item_reference_resolves_an_earlier_output_item(fake: FakeUpstream) -> None:
    fake.queue(CHAT, up.completion(None, tool_calls=[{"id": "call_1", "name": "get_weather",
                                                      "arguments": {"city": "Paris"}}]), up.completion("20C"))  # fmt: skip
    gw = Gateway(runtime(fake))
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    _, first = await create(gw, {"input": "Weather?", "tools": tools})
    call = next(i for i in first["output"] if i["type"] == "function_call")
    status, _ = await create(gw, {"tools": tools, "input": [
        {"role": "user", "content": "Weather?"}, {"type": "item_reference", "id": call["id"]},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "20C"}]})  # fmt: skip
    assert status == 200
    sent = fake.requests[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_1" and sent[2] == {"role": "tool", "tool_call_id": "call_1",
                                                                       "content": "20C"}  # fmt: skip
    await gw.http.close()


async def test_unknown_references_and_store_false_answer_400(fake: FakeUpstream) -> None:
    fake.queue(CHAT, up.completion("ok"))
    gw = Gateway(runtime(fake))
    _, unstored = await create(gw, {"input": "hi", "store": False})
    assert unstored["store"] is False
    status, err = await create(gw, {"input": "again", "previous_response_id": unstored["id"]})
    assert status == 400 and err["error"]["param"] == "previous_response_id"
    assert err["error"]["code"] == "previous_response_not_found"
    status, err = await create(gw, {"input": [{"type": "item_reference", "id": "msg_nope"}]})
    assert status == 400 and err["error"]["param"] == "input[0].id"
    assert (await stored(gw, "get", unstored["id"]))[0] == 404
    assert len(fake.requests) == 1  # the refused calls never reached the upstream
    await gw.http.close()


async def test_get_input_items_and_delete_belong_to_the_key_that_made_it(fake: FakeUpstream) -> None:
    fake.queue(CHAT, up.completion("Hello"))
    gw = Gateway(runtime(fake))
    _, made = await create(gw, {"input": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]})
    await gw.conversations.drain()
    status, got = await stored(gw, "get", made["id"])
    assert status == 200 and got["id"] == made["id"] and got["output"][0]["content"][0]["text"] == "Hello"
    status, items = await stored(gw, "input_items", made["id"])
    assert status == 200 and [i["content"][0]["text"] for i in items["data"]] == ["two", "one"]  # desc by default
    assert items["first_id"] == items["data"][0]["id"] and items["has_more"] is False
    for action in ("get", "input_items", "delete"):
        status, err = await stored(gw, action, made["id"], key="b")
        assert status == 404 and err["error"]["type"] == "invalid_request_error"
    status, gone = await stored(gw, "delete", made["id"])
    assert (status, gone) == (200, {"id": made["id"], "object": "response", "deleted": True})
    assert (await stored(gw, "get", made["id"]))[0] == 404
    await gw.http.close()


def test_input_items_pages_after_before_limit_and_order() -> None:
    items = [{"id": f"i{n}"} for n in range(5)]
    q = lambda **kw: {k: [str(v)] for k, v in kw.items()}  # noqa: E731
    assert [i["id"] for i in page(items, q(order="asc", limit=2))["data"]] == ["i0", "i1"]
    assert page(items, q(order="asc", limit=2))["has_more"] is True
    assert [i["id"] for i in page(items, q(order="asc", after="i1", limit=2))["data"]] == ["i2", "i3"]
    assert [i["id"] for i in page(items, q(after="i3"))["data"]] == ["i2", "i1", "i0"]
    assert [i["id"] for i in page(items, q(order="asc", before="i3", limit=2))["data"]] == ["i1", "i2"]
    for bad in (q(limit=0), q(limit=101), q(order="up"), q(after="nope")):
        with pytest.raises(InvalidRequest):
            page(items, bad)


async def test_retention_expires_stored_responses(fake: FakeUpstream) -> None:
    clock = Clock()
    fake.queue(CHAT, up.completion("Hello"))
    gw = Gateway(runtime(fake, retention_days=1), responses=MemoryResponseStore(clock=clock))
    gw.conversations.clock = clock
    _, made = await create(gw, {"input": "hi"})
    await gw.conversations.drain()
    clock.now += 86_400 - 1
    assert (await stored(gw, "get", made["id"]))[0] == 200
    clock.now += 2
    assert (await stored(gw, "get", made["id"]))[0] == 404
    status, err = await create(gw, {"input": "again", "previous_response_id": made["id"]})
    assert status == 400 and err["error"]["code"] == "previous_response_not_found"
    await gw.http.close()


async def test_the_file_store_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "responses.jsonl"
    store = MemoryResponseStore(path)
    item = {"type": "message", "id": "msg_1", "role": "assistant", "content": []}
    record = StoredResponse("resp_1", "o", {"id": "resp_1", "output": [item]}, [], None, 1.0, 4e9)
    await store.save(record)
    await store.save(StoredResponse("resp_2", "o", {"id": "resp_2", "output": []}, [], None, 1.0, 4e9))
    assert await store.delete("o", "resp_2")
    store.close()
    again = MemoryResponseStore(path)
    assert (await again.get("o", "resp_1")) == record
    assert await again.item("o", "msg_1") == item
    assert await again.get("o", "resp_2") is None and await again.get("other", "resp_1") is None
    again.close()


def test_additional_tools_items_join_the_requests_tools() -> None:
    req = codec.decode_request({"model": "m", "input": [
        {"type": "additional_tools", "role": "developer", "tools": [
            {"type": "function", "name": "shell", "parameters": {"type": "object"}},
            {"type": "namespace", "name": "ns", "tools": []}]},
        {"role": "user", "content": "hi"}]})  # fmt: skip
    assert [t.name for t in req.tools] == ["shell"]
    assert req.extra["tools"] == [{"type": "namespace", "name": "ns", "tools": []}]
    assert [m.role for m in req.messages] == ["user"]


async def test_the_library_gateway_continues_a_stored_response(fake: FakeUpstream) -> None:
    fake.queue(CHAT, up.completion("Hi Ann"), up.completion("Ann"))
    gw = Gateway(runtime(fake))
    first = await gw.respond({"model": "m", "input": "I am Ann."}, api_key=KEYS["a"])
    second = await gw.respond({"model": "m", "input": "Who?", "previous_response_id": first["id"]}, api_key=KEYS["a"])
    assert second["output"][0]["content"][0]["text"] == "Ann"
    assert sent_messages(fake) == [("user", "I am Ann."), ("assistant", "Hi Ann"), ("user", "Who?")]
    await gw.http.close()


STORE_KINDS = ["memory", "file"] + (["redis"] if os.environ.get("REDIS_URL") else [])


@pytest.fixture(params=STORE_KINDS)
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[ResponseStore, Clock]]:
    clock = Clock()
    clock.now = time.time()
    store: ResponseStore
    if request.param == "memory":
        store = MemoryResponseStore(clock=clock)
    elif request.param == "file":
        store = MemoryResponseStore(tmp_path / "r.jsonl", clock=clock)
    else:
        store = RedisResponseStore(os.environ["REDIS_URL"], prefix=f"test:{uuid.uuid4().hex}:", clock=clock)
    yield store, clock
    await store.aclose()


async def test_every_store_keeps_finds_forgets_and_expires(any_store: tuple[ResponseStore, Clock]) -> None:
    store, clock = any_store
    item = {"type": "function_call", "id": "fc_1", "call_id": "c", "name": "f", "arguments": "{}"}
    given = {"type": "message", "id": "msg_in", "role": "user", "content": "hi"}
    rec = StoredResponse("resp_1", "o", {"id": "resp_1", "output": [item]}, [given], None, clock(), clock() + 60)
    await store.save(rec)
    assert await store.get("o", "resp_1") == rec
    assert (await store.item("o", "fc_1"), await store.item("o", "msg_in")) == (item, given)
    assert await store.get("p", "resp_1") is None and await store.item("p", "fc_1") is None  # another owner
    assert await store.delete("o", "resp_1") and not await store.delete("o", "resp_1")
    assert await store.get("o", "resp_1") is None and await store.item("o", "fc_1") is None
    await store.save(dataclasses.replace(rec, id="resp_2"))
    if isinstance(store, RedisResponseStore):  # Redis forgets by itself: the retention is the keys' TTL
        ttl = await store._redis().pttl(store._rkey("o", "resp_2"))
        assert 55_000 < ttl <= 60_000
    clock.now += 61  # past the retention: gone, whatever the store's own clean-up has done yet
    assert await store.get("o", "resp_2") is None
    if not isinstance(store, RedisResponseStore):
        assert await store.item("o", "fc_1") is None


async def test_input_tokens_counts_the_conversation_a_reference_names(fake: FakeUpstream) -> None:
    from llmproxy import side_calls

    fake.queue(CHAT, up.completion("A long answer about the weather in Paris today. " * 20))
    gw = Gateway(runtime(fake))
    _, made = await create(gw, {"input": "hi"})

    async def count(body: dict[str, Any]) -> int:
        call = Call("openai_responses", json.dumps({"model": "m", **body}).encode(), api_key=KEYS["a"])
        reply = await side_calls.count_tokens(gw, call)
        assert reply.status == 200, reply.body
        return int(json.loads(reply.body)["input_tokens"])

    alone = await count({"input": "and now?"})
    assert await count({"input": "and now?", "previous_response_id": made["id"]}) > alone + 100
    reply = await side_calls.count_tokens(gw, Call("openai_responses", json.dumps(
        {"model": "m", "input": [{"type": "item_reference", "id": "msg_nope"}]}).encode(), api_key=KEYS["a"]))  # fmt: skip
    assert reply.status == 400
    await gw.http.close()


class SlowStore(MemoryResponseStore):
    """Saves wait for ``release``; with ``shared``, lookups miss until the save is done (another process)."""

    def __init__(self, shared: bool = False) -> None:
        super().__init__()
        self.shared = shared
        self.release = asyncio.Event()

    async def save(self, record: StoredResponse) -> None:
        await self.release.wait()
        await super().save(record)


async def test_a_follow_up_finds_a_response_whose_write_is_still_on_its_way(fake: FakeUpstream) -> None:
    fake.queue(CHAT, up.completion("Hi Ann"), up.completion("Ann"))
    store = SlowStore()
    gw = Gateway(runtime(fake), responses=store)
    _, first = await create(gw, {"input": "I am Ann."})
    assert await store.get(owner_of_a(), first["id"]) is None  # not written yet...
    status, _ = await create(gw, {"input": "Who?", "previous_response_id": first["id"]})
    assert status == 200  # ...but this process holds it until it is
    assert sent_messages(fake)[1] == ("assistant", "Hi Ann")
    store.release.set()
    await gw.conversations.drain()
    assert await store.get(owner_of_a(), first["id"]) is not None
    await gw.http.close()


async def test_another_process_waits_briefly_for_a_write_to_a_shared_store(fake: FakeUpstream) -> None:
    fake.queue(CHAT, up.completion("Hi Ann"), up.completion("Ann"))
    store = SlowStore(shared=True)
    writer, reader = Gateway(runtime(fake), responses=store), Gateway(runtime(fake), responses=store)
    _, first = await create(writer, {"input": "I am Ann."})
    asyncio.get_running_loop().call_later(0.1, store.release.set)  # the write lands while the reader looks
    status, _ = await create(reader, {"input": "Who?", "previous_response_id": first["id"]})
    assert status == 200 and sent_messages(fake)[1] == ("assistant", "Hi Ann")
    await writer.http.close()
    await reader.http.close()


async def test_a_gateway_on_the_file_store_continues_a_conversation_after_a_restart(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    fake.queue(CHAT, up.completion("Hi Ann"), up.completion("Ann"))
    gw = Gateway(runtime(fake), responses=MemoryResponseStore(tmp_path / "responses.jsonl"))
    _, first = await create(gw, {"input": "I am Ann."})
    await gw.conversations.drain()
    await gw.conversations.store.aclose()
    await gw.http.close()
    again = Gateway(runtime(fake), responses=MemoryResponseStore(tmp_path / "responses.jsonl"))
    status, _ = await create(again, {"input": "Who?", "previous_response_id": first["id"]})
    assert status == 200 and sent_messages(fake) == [("user", "I am Ann."), ("assistant", "Hi Ann"), ("user", "Who?")]
    await again.http.close()


def owner_of_a() -> str:
    return hashlib.sha256(KEYS["a"].encode()).hexdigest()[:32]


async def test_the_file_store_drops_dead_lines_from_its_file(tmp_path: Path) -> None:
    clock = Clock()
    store = MemoryResponseStore(tmp_path / "r.jsonl", clock=clock)
    for n in range(1536):  # each expires before the next is saved
        await store.save(StoredResponse(f"resp_{n}", "o", {"id": f"resp_{n}", "output": []}, [], None,
                                        clock(), clock() + 1))  # fmt: skip
        clock.now += 2
    await store.save(StoredResponse("resp_live", "o", {"id": "resp_live"}, [], None, clock(), clock() + 60))
    store.close()
    assert len((tmp_path / "r.jsonl").read_bytes().splitlines()) < 1024  # rewritten on the way
    again = MemoryResponseStore(tmp_path / "r.jsonl", clock=clock)
    assert (await again.get("o", "resp_live")) is not None and await again.get("o", "resp_1535") is None
    again.close()
