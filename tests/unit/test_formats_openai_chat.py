"""OpenAI Chat codec: requests, replies and streams both ways, validated by the SDK types."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.lib.streaming.chat._completions import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from llmproxy.errors import InvalidRequest, ProviderError, ProviderProtocolError
from llmproxy.formats import openai_chat as oc
from llmproxy.model import (
    StreamEnd,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallPart,
    ToolCallStart,
    ToolResultPart,
    Usage,
    UsageUpdate,
)
from llmproxy.sse import SSEParser
from llmproxy.stream import collect


def frames(*chunks: dict[str, Any]) -> bytes:
    return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}  # fmt: skip


def test_openai_chat_decodes_a_full_request() -> None:
    req = oc.decode_request({
        "model": "m",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "max_completion_tokens": 100, "stop": "END", "reasoning_effort": "high",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "stream": True, "stream_options": {"include_usage": True},
    })  # fmt: skip
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "tool"]
    assert req.messages[1].parts[1].data == "AAAA"  # type: ignore[union-attr]
    call = req.messages[2].parts[0]
    assert isinstance(call, ToolCallPart) and call.arguments == '{"a":1}'
    assert isinstance(req.messages[3].parts[0], ToolResultPart)
    assert req.tool_choice is not None and (req.tool_choice.mode, req.tool_choice.name) == ("tool", "f")
    assert (req.max_tokens, req.stop, req.include_usage) == (100, ["END"], True)
    assert req.reasoning is not None and req.reasoning.effort == "high"
    assert req.response_format is not None and req.response_format.type == "json_schema"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "model"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        (
            {"model": "m", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]},
            "messages[0].tool_call_id",
        ),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}, "max_completion_tokens"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, "temperature"),
    ],
)
def test_openai_chat_rejects_bad_requests_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        oc.decode_request(body)
    assert exc.value.param == param


def test_openai_chat_request_round_trips() -> None:
    body = {"model": "m", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
            {"role": "assistant", "content": "a", "tool_calls": [{"id": "c", "type": "function",
             "function": {"name": "f", "arguments": "{}"}}]}, {"role": "tool", "tool_call_id": "c", "content": "r"}],
            "temperature": 0.5}  # fmt: skip
    again = oc.encode_request(oc.decode_request(body))
    assert again["messages"] == body["messages"]
    assert again["temperature"] == 0.5


def test_openai_chat_response_encodes_valid_completion() -> None:
    resp = oc.decode_response({
        "id": "x", "object": "chat.completion", "created": 1, "model": "up",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi",
                     "reasoning_content": "think", "tool_calls": [{"id": "c", "type": "function",
                     "function": {"name": "f", "arguments": "{\"x\":1}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 4},
                  "completion_tokens_details": {"reasoning_tokens": 2}},
    })  # fmt: skip
    assert resp.finish_reason == "tool_calls"  # stop + tool calls is upgraded
    assert resp.usage == Usage(10, 5, 4, 0, 2)
    out = ChatCompletion.model_validate(oc.encode_response(resp))
    assert out.choices[0].finish_reason == "tool_calls"
    assert out.usage is not None and out.usage.prompt_tokens_details is not None
    assert out.usage.prompt_tokens_details.cached_tokens == 4


def test_openai_chat_stream_decoder_renumbers_parallel_calls_sharing_index_zero() -> None:
    data = frames(
        chunk({"role": "assistant", "content": ""}),
        chunk({"tool_calls": [{"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({"tool_calls": [{"index": 0, "id": "b", "type": "function", "function": {"name": "g", "arguments": {"y": 2}}}]}),
        chunk({}, "stop"),
    )  # fmt: skip
    d = oc.StreamDecoder()
    events = d.feed(data) + d.close()
    resp = collect(events)
    calls = [p for p in resp.parts if isinstance(p, ToolCallPart)]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == [("a", "f", {"x": 1}), ("b", "g", {"y": 2})]
    assert resp.finish_reason == "tool_calls"


def test_openai_chat_stream_decoder_holds_the_end_until_usage() -> None:
    data = frames(chunk({"content": "hi"}), chunk({}, "length"),
                  {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 1}})  # fmt: skip
    d = oc.StreamDecoder()
    events = d.feed(data)
    ends = [e for e in events if isinstance(e, StreamEnd)]
    assert len(ends) == 1 and ends[0].finish_reason == "length" and ends[0].usage == Usage(3, 1)
    assert events[-1] is ends[0]


def test_openai_chat_stream_decoder_raises_on_error_chunks_and_cut_streams() -> None:
    d = oc.StreamDecoder()
    with pytest.raises(ProviderError):
        d.feed(b'data: {"error": {"message": "overloaded"}}\n\n')
    d = oc.StreamDecoder()
    d.feed(b"data: " + json.dumps(chunk({"content": "x"})).encode() + b"\n\n")
    with pytest.raises(ProviderProtocolError):
        d.close()


def test_openai_chat_stream_encoder_output_satisfies_the_sdk() -> None:
    enc = oc.StreamEncoder(model="pub", include_usage=True, request_id="r1")
    events = [StreamStart("x", "up"), ThinkingDelta("hmm"), TextDelta("Let me check."),
              ToolCallStart(0, "call_a", "f"), ToolCallDelta(0, "{\"q\":"), ToolCallStart(1, "call_b", "g"),
              ToolCallDelta(1, "{}"), ToolCallDelta(0, "1}"), UsageUpdate(Usage(7, 3)), StreamEnd("stop", Usage(7, 3))]  # fmt: skip
    raw = b"".join(enc.encode(e) for e in events)
    parsed = SSEParser().feed(raw)
    assert parsed[-1].data == "[DONE]"
    state = ChatCompletionStreamState()
    chunks = [ChatCompletionChunk.model_validate(json.loads(p.data)) for p in parsed[:-1]]
    for c in chunks:
        state.handle_chunk(c)
    final = state.get_final_completion()
    assert final.choices[0].message.content == "Let me check."
    calls = final.choices[0].message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [("f", '{"q":1}'), ("g", "{}")]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert sum(1 for c in chunks if c.choices and c.choices[0].finish_reason) == 1
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 10
    assert all(c.model == "pub" for c in chunks)


def test_openai_chat_stream_encoder_error_ends_the_stream() -> None:
    enc = oc.StreamEncoder(model="m", include_usage=False)
    out = enc.encode(TextDelta("a")) + enc.error(ProviderError("upstream broke"))
    events = SSEParser().feed(out)
    assert json.loads(events[-2].data)["error"]["message"] == "upstream broke"
    assert events[-1].data == "[DONE]"


def test_openai_chat_shortens_long_tool_call_ids_consistently() -> None:
    long_id = "call_abc_ts_" + "A" * 200
    req = oc.decode_request({"model": "m", "messages": [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": long_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": long_id, "content": "ok"}]})  # fmt: skip
    body = oc.encode_request(req)
    sent_id = body["messages"][0]["tool_calls"][0]["id"]
    assert len(sent_id) <= 40 and body["messages"][1]["tool_call_id"] == sent_id
