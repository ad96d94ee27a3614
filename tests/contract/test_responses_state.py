"""Responses API state through the live gateway, with the official ``openai`` SDK, to every upstream dialect.

``store`` true (the default) keeps a response and its items per key; ``previous_response_id``
and ``item_reference`` input items resolve from them whatever the upstream (the upstream
gets the whole conversation in its own dialect, never the id); ``retrieve``,
``input_items.list`` and ``delete`` work for the key that made it and answer 404 to
another; ``store`` false keeps nothing and such references answer 400.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from accounts.actions import create_api_key
from accounts.models import User
from tests.contract.conftest import SYSTEM, Pair
from tests.fakes.matrix import UPSTREAMS, Turn

EVERY = pytest.mark.parametrize("pair", [f"responses->{u}" for u in UPSTREAMS], indirect=True)
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
TOOLS = [{"type": "function", "name": "get_weather", "strict": False,
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]  # fmt: skip


@pytest.fixture(scope="module")
def other_key(matrix_key: str, live_server_session: Any, django_db_blocker: Any) -> Iterator[str]:
    """A second client key (another user) for the "another key gets 404" checks."""
    with django_db_blocker.unblock():
        user = User.objects.create(username="matrix-other")
        _, key = create_api_key(user)
        live_server_session.reload()
        yield key
        user.delete()


def sdk(pair: Pair, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=pair.live.url + "/v1", api_key=key or pair.client.key, max_retries=0,
                         _strict_response_validation=True)  # fmt: skip


def make(pair: Pair, stream: bool, key: str | None = None, **kw: Any) -> Any:
    """One ``responses.create`` (streamed through the SDK's accumulator, or not): the final response."""
    client = sdk(pair, key)
    args = {"model": pair.model, "instructions": SYSTEM, **kw}
    if not stream:
        return client.responses.create(**args)
    with client.responses.stream(**args) as s:
        return s.get_final_response()


def upstream_body(pair: Pair, n: int = -1) -> str:
    return json.dumps(pair.fake.requests[n].body)


def in_order(text: str, *parts: str) -> bool:
    at = [text.find(p) for p in parts]
    return all(a >= 0 for a in at) and at == sorted(at)


@EVERY
@STREAM
def test_previous_response_id_continues_the_conversation_on_every_upstream(pair: Pair, stream: bool) -> None:
    pair.script(
        pair.upstream.reply(Turn(["Hello", " Ann."]), stream), pair.upstream.reply(Turn(["You are Ann."]), stream)
    )
    first = make(pair, stream, input="I am Ann.")
    assert first.output_text == "Hello Ann." and first.id.startswith("resp_")
    second = make(pair, stream, input="Who am I?", previous_response_id=first.id)
    assert second.output_text == "You are Ann." and second.id != first.id
    assert (second.store, second.previous_response_id) == (True, first.id)
    # input_items lists the call's own input, not the earlier turns
    assert [i.content[0].text for i in sdk(pair).responses.input_items.list(second.id).data] == ["Who am I?"]  # type: ignore[union-attr]
    sent = upstream_body(pair)
    assert in_order(sent, "I am Ann.", "Hello Ann.", "Who am I?")
    assert "previous_response_id" not in pair.fake.requests[-1].body  # resolved here, never forwarded
    # ...and a third turn walks the whole chain.
    pair.script(pair.upstream.reply(Turn(["Still Ann."]), stream))
    make(pair, stream, input="Sure?", previous_response_id=second.id)
    assert in_order(upstream_body(pair), "I am Ann.", "Hello Ann.", "Who am I?", "You are Ann.", "Sure?")


@EVERY
@STREAM
def test_item_reference_tool_steps_work_on_every_upstream(pair: Pair, stream: bool) -> None:
    """The Vercel AI SDK's tool step: the earlier call sent back as an item_reference."""
    pair.script(pair.upstream.reply(Turn([], calls=[("get_weather", {"city": "Paris"})]), stream),
                pair.upstream.reply(Turn(["It is 20C."]), stream))  # fmt: skip
    first = make(pair, stream, input="Weather in Paris?", tools=TOOLS)
    call = next(i for i in first.output if i.type == "function_call")
    assert call.id
    second = make(pair, stream, tools=TOOLS, input=[
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "item_reference", "id": call.id},
        {"type": "function_call_output", "call_id": call.call_id, "output": "20C"}])  # fmt: skip
    assert second.output_text == "It is 20C."
    history = pair.upstream.sent(pair.fake.requests[-1]).history
    assert [(h[0], h[2] if h[0] == "call" else None) for h in history] == [("call", "get_weather"), ("result", None)]
    assert "item_reference" not in upstream_body(pair)


@EVERY
def test_retrieve_list_and_delete_belong_to_the_key_that_made_it(pair: Pair, other_key: str) -> None:
    pair.script(pair.upstream.reply(Turn(["Hi."]), False))
    made = make(pair, False, input=[{"role": "user", "content": "one"}, {"role": "user", "content": "two"}])
    client = sdk(pair)
    got = client.responses.retrieve(made.id)
    assert (got.id, got.output_text, got.store) == (made.id, "Hi.", True)
    items = list(client.responses.input_items.list(made.id, limit=1, order="asc"))  # one page per item
    assert [i.content[0].text for i in items] == ["one", "two"]  # type: ignore[union-attr]
    newest = client.responses.input_items.list(made.id)
    assert [i.content[0].text for i in newest.data] == ["two", "one"]  # type: ignore[union-attr]
    stranger = sdk(pair, other_key)
    for call in (lambda: stranger.responses.retrieve(made.id), lambda: stranger.responses.input_items.list(made.id),
                 lambda: stranger.responses.delete(made.id)):  # fmt: skip
        with pytest.raises(openai.NotFoundError) as exc:
            call()
        assert exc.value.status_code == 404 and exc.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError):  # another key's response cannot be continued either
        stranger.responses.create(model=pair.model, input="x", previous_response_id=made.id)
    client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)
    assert len(pair.fake.requests) == 1


@EVERY
@STREAM
def test_store_false_keeps_nothing_and_its_references_answer_400(pair: Pair, stream: bool, other_key: str) -> None:
    # The other key stores nothing in this module: the fake Responses upstream's item ids are
    # constant, and the matrix key has stored them in the tests above.
    pair.script(pair.upstream.reply(Turn([], calls=[("get_weather", {"city": "Paris"})]), stream))
    made = make(pair, stream, other_key, input="Weather?", tools=TOOLS, store=False)
    call = next(i for i in made.output if i.type == "function_call")
    client = sdk(pair, other_key)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model=pair.model, input="Again?", previous_response_id=made.id)
    assert exc.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert call.id
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(model=pair.model, input=[{"type": "item_reference", "id": call.id}])
    assert exc.value.body["param"] == "input[0].id"  # type: ignore[index]
    assert len(pair.fake.requests) == 1  # the refused calls never reached the upstream


@EVERY
@STREAM
def test_codex_additional_tools_items_reach_every_upstream(pair: Pair, stream: bool) -> None:
    """Codex's "responses lite" models send their tools as an ``additional_tools`` input item."""
    pair.script(pair.upstream.reply(Turn([], calls=[("get_weather", {"city": "Paris"})]), stream))
    got = make(pair, stream, store=False, input=[
        {"type": "additional_tools", "role": "developer", "tools": TOOLS},
        {"role": "user", "content": "Weather in Paris?"}])  # fmt: skip
    assert [(i.name, json.loads(i.arguments)) for i in got.output if i.type == "function_call"] == [
        ("get_weather", {"city": "Paris"})
    ]
    sent = pair.sent()
    if pair.upstream.name == "responses":  # passthrough: the item as sent
        assert sent.body["input"][0] == {"type": "additional_tools", "role": "developer", "tools": TOOLS}
    else:  # translated: the request's tools
        assert sent.tools == ["get_weather"]
