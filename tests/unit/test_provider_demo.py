"""The offline demo provider's script: echo, tool call, final answer, usage, streams."""

from __future__ import annotations

import json

from llmproxy import formats, providers
from llmproxy._json import dumps, loads
from llmproxy.http import UpstreamReply, UpstreamRequest
from llmproxy.model import Message, Request, TextPart, Tool, ToolCallPart, ToolChoice, ToolResultPart
from llmproxy.providers.demo import LABEL, LocalReply, answer, sample_arguments, script, stream_events
from llmproxy.sse import SSEParser

WEATHER = Tool(
    name="get_weather",
    parameters={"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                                                 "unit": {"enum": ["c", "f"]}}, "required": ["city", "unit"]},
)  # fmt: skip


def raw(reply: UpstreamReply) -> bytes:
    assert isinstance(reply, LocalReply)
    return b"".join(reply.chunks)


def ask(text: str, **kw: object) -> Request:
    return Request(model="demo", messages=[Message("user", [TextPart(text)])], **kw)  # type: ignore[arg-type]


def test_demo_echoes_the_last_user_message_with_its_label() -> None:
    resp = script(ask("hello there"))
    assert resp.text().startswith(LABEL)
    assert '"hello there"' in resp.text()
    assert resp.finish_reason == "stop"
    assert resp.usage.input_tokens > 0 and resp.usage.output_tokens > 0


def test_demo_is_deterministic() -> None:
    assert script(ask("same")).text() == script(ask("same")).text()
    assert script(ask("same")).id == script(ask("same")).id
    assert script(ask("one")).id != script(ask("two")).id


def test_demo_calls_the_offered_tool_with_schema_arguments() -> None:
    resp = script(ask("Paris", tools=[WEATHER]))
    assert resp.finish_reason == "tool_calls"
    note, call = resp.parts
    assert isinstance(call, ToolCallPart) and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris", "unit": "c"}
    # Labelled like every other reply: a client printing the text sees where it came from.
    assert isinstance(note, TextPart) and note.text.startswith(LABEL) and "get_weather" in note.text


def test_demo_calls_the_tool_choice_names_and_none_when_told() -> None:
    other = Tool(name="other", parameters={"type": "object", "properties": {}})
    named = script(ask("x", tools=[other, WEATHER], tool_choice=ToolChoice("tool", "get_weather")))
    assert [p.name for p in named.parts if isinstance(p, ToolCallPart)] == ["get_weather"]
    none = script(ask("x", tools=[WEATHER], tool_choice=ToolChoice("none")))
    assert none.finish_reason == "stop" and none.text().startswith(LABEL)


def test_demo_answers_a_tool_result_with_a_final_text() -> None:
    history = [
        Message("user", [TextPart("Paris")]),
        Message("assistant", [ToolCallPart("call_1", "get_weather", '{"city":"Paris"}')]),
        Message("tool", [ToolResultPart("call_1", [TextPart("sunny, 21 C")])]),
    ]
    resp = script(Request(model="demo", messages=history, tools=[WEATHER]))
    assert resp.finish_reason == "stop"
    assert resp.text().startswith(LABEL) and "sunny, 21 C" in resp.text()


def test_sample_arguments_fills_every_type() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "number"}, "b": {"type": "boolean"},
              "l": {"type": "array", "items": {"type": "string"}}, "o": {"type": "object",
              "properties": {"x": {"type": ["null", "integer"]}}}}}  # fmt: skip
    assert sample_arguments(schema, "t") == {"n": 1, "b": True, "l": ["t"], "o": {"x": 1}}


def test_stream_events_spell_the_same_reply() -> None:
    resp = script(ask("stream me"))
    events = stream_events(resp)
    text = "".join(getattr(e, "text", "") for e in events)
    assert text == resp.text()
    assert len(events) > 4  # word by word, not one lump


def test_the_executor_is_registered_and_speaks_openai_chat() -> None:
    ex = providers.get("demo")()
    assert ex.dialect == "openai_chat"
    body = formats.get("openai_chat").encode_request(ask("hi"))
    req = ex.build(providers.Credential("demo", "demo"), body, model="demo", stream=False)
    assert req.local is answer and not req.url.startswith("http")


def test_answer_gives_openai_chat_json_and_sse() -> None:
    body = {"model": "demo", "messages": [{"role": "user", "content": "ping"}]}
    reply = answer(UpstreamRequest("POST", "demo://offline/chat", {}, dumps(body)))
    data = loads(raw(reply))
    assert reply.status == 200 and data["choices"][0]["message"]["content"].startswith(LABEL)
    assert data["usage"]["prompt_tokens"] > 0
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    streamed_reply = answer(UpstreamRequest("POST", "demo://offline/chat", {}, dumps(streamed), True))
    assert isinstance(streamed_reply, LocalReply) and len(streamed_reply.chunks) > 3  # event by event
    sse = raw(streamed_reply)
    events = [e.data for e in SSEParser().feed(sse)]
    assert events[-1] == "[DONE]"
    chunks = [loads(d) for d in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == data["choices"][0]["message"]["content"]
    assert {c["id"] for c in chunks} == {data["id"]}  # one id, streamed or not (no doubled prefix)
    assert chunks[-1]["usage"]["completion_tokens"] == data["usage"]["completion_tokens"]


def test_answer_lists_the_demo_model_and_makes_embeddings() -> None:
    models = loads(raw(answer(UpstreamRequest("GET", "demo://offline/models", {}))))
    assert [m["id"] for m in models["data"]] == ["demo"]
    body = dumps({"model": "demo", "input": ["a", "b"], "dimensions": 4})
    emb = loads(raw(answer(UpstreamRequest("POST", "demo://offline/embeddings", {}, body))))
    vectors = [d["embedding"] for d in emb["data"]]
    assert len(vectors) == 2 and all(len(v) == 4 for v in vectors) and vectors[0] != vectors[1]
