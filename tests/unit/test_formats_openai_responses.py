"""The OpenAI Responses codec: golden fixtures both ways, streams checked with the SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.responses import Response as SDKResponse
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from llmproxy.errors import InvalidRequest, LimitExceeded, ProviderError, ProviderProtocolError, ProviderTimeout
from llmproxy.formats import openai_responses as R
from llmproxy.model import (
    ImagePart,
    Message,
    Reasoning,
    Request,
    Response,
    ResponseFormat,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    Tool,
    ToolCallDelta,
    ToolCallPart,
    ToolCallStart,
    ToolChoice,
    ToolResultPart,
    Usage,
    UsageUpdate,
)
from llmproxy.sse import SSEParser
from llmproxy.stream import collect
from tests.fakes import responses as fr
from tests.fakes.server import FakeUpstream, Stream

FIXTURES = Path(__file__).parent.parent / "fixtures" / "openai_responses"
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
NAME = "openai_responses"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def md(**values: Any) -> dict[str, Any]:
    return {NAME: values}


# --- golden cases --------------------------------------------------------------------

REQUESTS: dict[str, Request] = {
    "request_text": Request(
        model="gpt-5",
        messages=[Message("system", [TextPart("You are terse.")]), Message("user", [TextPart("Hi there")])],
        max_tokens=256,
        temperature=0.5,
        top_p=0.9,
        include_usage=True,
        stream=True,
        response_format=ResponseFormat("json_schema", "answer", {"type": "object", "properties": {}}, True),
        reasoning=Reasoning(effort="low", summary="auto", include_thoughts=True),
        metadata={"trace": "t1"},
        user="alice",
        extra={"store": False, "include": ["reasoning.encrypted_content"], "text": {"verbosity": "low"}},
    ),
    "request_tools": Request(
        model="gpt-5",
        messages=[
            Message(
                "user", [TextPart("Weather in Paris and Rome?"), ImagePart(url="https://x.test/a.png", detail="low")]
            ),
            Message(
                "assistant",
                [
                    TextPart("Checking both.", md(id="msg_1", phase="commentary")),
                    ToolCallPart("call_a", "get_weather", '{"city":"Paris"}', md(id="fc_a")),
                    ToolCallPart("call_b", "get_weather", '{"city":"Rome"}'),
                ],
            ),
            Message("tool", [ToolResultPart("call_a", [TextPart("18C")])]),
            Message(
                "tool",
                [
                    ToolResultPart(
                        "call_b",
                        [TextPart("map:"), ImagePart(data="iVBORw0KGgo=", media_type="image/png", detail="auto")],
                    )
                ],
            ),
            Message("system", [TextPart("Answer in one line.")]),
        ],
        tools=[
            Tool("get_weather", "Current weather", WEATHER, True),
            Tool("noop", None, {"type": "object", "properties": {}}, False),
        ],
        tool_choice=ToolChoice("tool", "get_weather"),
        parallel_tool_calls=False,
        include_usage=True,
        extra={"tools": [{"type": "web_search"}], "truncation": "auto"},
    ),
    "request_reasoning": Request(
        model="o4-mini",
        messages=[
            Message("system", [TextPart("Be careful.")]),
            Message("user", [TextPart("What is 2+2? Use the tool.")]),
            Message(
                "assistant",
                [
                    ThinkingPart(
                        "First part.\n\nSecond part.",
                        "gAAAAenc==",
                        NAME,
                        provider_metadata=md(id="rs_1", summary=["First part.", "Second part."]),
                    ),
                    ToolCallPart("call_1", "add", '{"a":2,"b":2}', md(id="fc_1")),
                ],
            ),
            Message("tool", [ToolResultPart("call_1", [TextPart("4")])]),
            Message("assistant", [ThinkingPart("", "gAAAAmore==", NAME), TextPart("It is 4.")]),
            Message("user", [TextPart("Thanks")]),
        ],
        reasoning=Reasoning(effort="high"),
        include_usage=True,
        extra={"store": False, "include": ["reasoning.encrypted_content"]},
    ),
}

RESPONSES: dict[str, Response] = {
    "response_text": Response(
        "resp_1", "gpt-5", [TextPart("Hello!", md(id="msg_1"))], "stop", Usage(12, 3), created=1730000000
    ),
    "response_tool_calls": Response(
        "resp_2",
        "gpt-5",
        [
            TextPart("Let me check.", md(id="msg_2")),
            ToolCallPart("call_abc", "get_weather", '{"city":"Paris"}', md(id="fc_1")),
        ],
        "tool_calls",
        Usage(52, 18),
        created=1730000000,
    ),
    "response_parallel_tool_calls": Response(
        "resp_3",
        "gpt-5",
        [
            ToolCallPart("call_p", "get_weather", '{"city":"Paris"}', md(id="fc_p")),
            ToolCallPart("call_r", "get_weather", '{"city":"Rome"}', md(id="fc_r")),
        ],
        "tool_calls",
        Usage(60, 30),
        created=1730000000,
    ),
    "response_reasoning": Response(
        "resp_4",
        "o4-mini",
        [
            ThinkingPart("Adding numbers.", "gAAAAenc==", NAME, provider_metadata=md(id="rs_4")),
            TextPart("4", md(id="msg_4")),
        ],
        "stop",
        Usage(40, 120, reasoning_tokens=100),
        created=1730000000,
    ),
    "response_incomplete": Response(
        "resp_5", "gpt-5", [TextPart("The story begins", md(id="msg_5"))], "length", Usage(10, 16), created=1730000000
    ),
    "response_cached_usage": Response(
        "resp_6",
        "gpt-5",
        [TextPart("Cached!", md(id="msg_6"))],
        "stop",
        Usage(2000, 5, cached_tokens=1536, cache_write_tokens=128, reasoning_tokens=0),
        created=1730000000,
    ),
}


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_decode_request_golden(name: str) -> None:
    assert R.decode_request(fixture(name)) == REQUESTS[name]


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_encode_request_golden(name: str) -> None:
    assert R.encode_request(REQUESTS[name]) == fixture(name)


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_decode_response_golden(name: str) -> None:
    assert R.decode_response(fixture(name)) == RESPONSES[name]


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_encode_response_golden_and_valid_for_the_sdk(name: str) -> None:
    body = R.encode_response(RESPONSES[name])
    assert body == fixture(name)
    parsed = SDKResponse.model_validate(body)
    assert parsed.output_text == RESPONSES[name].text()


# --- request decoding ----------------------------------------------------------------


def test_decode_request_easy_forms() -> None:
    req = R.decode_request(
        {
            "model": "m",
            "instructions": "sys",
            "input": [
                {"role": "developer", "content": "dev note"},
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "hi!"},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": {"x": 1}},
                {"type": "function_call_output", "call_id": "c1", "output": "done"},
                {
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "data:image/jpeg;base64,/9j/", "detail": "high"}],
                },
            ],
        }
    )
    assert req.messages == [
        Message("system", [TextPart("sys")]),
        Message("system", [TextPart("dev note")]),
        Message("user", [TextPart("hello")]),
        Message("assistant", [TextPart("hi!"), ToolCallPart("c1", "f", '{"x":1}')]),
        Message("tool", [ToolResultPart("c1", [TextPart("done")])]),
        Message("user", [ImagePart(data="/9j/", media_type="image/jpeg", detail="high")]),
    ]
    assert req.include_usage is True


def test_decode_request_string_input_is_one_user_message() -> None:
    req = R.decode_request({"model": "m", "input": "Tell me a joke"})
    assert req.messages == [Message("user", [TextPart("Tell me a joke")])]
    assert req.extra == {}


def test_decode_request_merges_reasoning_message_and_calls_into_one_assistant_turn() -> None:
    req = R.decode_request(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "go"},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "enc"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
                {"type": "function_call", "call_id": "c1", "name": "a", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "b", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "1"},
                {"type": "function_call_output", "call_id": "c2", "output": "2"},
            ],
        }
    )
    assert [m.role for m in req.messages] == ["user", "assistant", "tool", "tool"]
    assistant = req.messages[1].parts
    assert [type(p).__name__ for p in assistant] == ["ThinkingPart", "TextPart", "ToolCallPart", "ToolCallPart"]
    assert assistant[0] == ThinkingPart("", "enc", NAME, provider_metadata=md(id="rs_1"))


def test_decode_request_keeps_hosted_tools_and_state_in_extra() -> None:
    body = {
        "model": "m",
        "input": "hi",
        "tools": [{"type": "web_search"}, {"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "web_search"},
        "store": False,
        "truncation": "auto",
        "previous_response_id": "resp_0",
    }
    req = R.decode_request(body)
    assert [t.name for t in req.tools] == ["f"]
    assert req.tool_choice is None
    assert req.extra == {
        "tools": [{"type": "web_search"}],
        "tool_choice": {"type": "web_search"},
        "store": False,
        "truncation": "auto",
        "previous_response_id": "resp_0",
    }
    out = R.encode_request(req)
    assert out["tools"] == [
        {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False},
        {"type": "web_search"},
    ]
    assert out["tool_choice"] == {"type": "web_search"}
    assert out["previous_response_id"] == "resp_0"


def test_decode_request_call_output_without_call_is_400_naming_it() -> None:
    body = {"model": "m", "input": [{"type": "function_call_output", "call_id": "call_zz", "output": "x"}]}
    with pytest.raises(InvalidRequest) as exc:
        R.decode_request(body)
    assert "call_zz" in exc.value.message
    assert exc.value.status == 400


def test_decode_request_call_output_may_answer_a_stored_response() -> None:
    body = {
        "model": "m",
        "previous_response_id": "resp_prev",
        "input": [{"type": "function_call_output", "call_id": "call_zz", "output": "x"}],
    }
    req = R.decode_request(body)
    assert req.messages == [Message("tool", [ToolResultPart("call_zz", [TextPart("x")])])]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 3}, "input"),
        ({"model": "m", "input": "x", "instructions": 5}, "instructions"),
        ({"model": "m", "input": "x", "max_output_tokens": "10"}, "max_output_tokens"),
        ({"model": "m", "input": "x", "temperature": "hot"}, "temperature"),
        ({"model": "m", "input": "x", "top_p": True}, "top_p"),
        ({"model": "m", "input": "x", "stream": "yes"}, "stream"),
        ({"model": "m", "input": "x", "parallel_tool_calls": "no"}, "parallel_tool_calls"),
        ({"model": "m", "input": "x", "tools": {"type": "function"}}, "tools"),
        ({"model": "m", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": "m", "input": "x", "tool_choice": {"type": "function"}}, "tool_choice.name"),
        ({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "a"}}}, "text.format.schema"),
        ({"model": "m", "input": "x", "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"model": "m", "input": "x", "reasoning": "high"}, "reasoning"),
        ({"model": "m", "input": "x", "metadata": ["a"]}, "metadata"),
        ({"model": "m", "input": [1]}, "input[0]"),
        ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": "m", "input": [{"role": "user", "content": 7}]}, "input[0].content"),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": 1}]}]},
            "input[0].content[0].text",
        ),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input[0].content[0].type"),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].image_url",
        ),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0]",
        ),
        ({"model": "m", "input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id"),
        ({"model": "m", "input": [{"type": "function_call", "call_id": "c"}]}, "input[0].name"),
        ({"model": "m", "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        ({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ],
)
def test_decode_request_wrong_types_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        R.decode_request(body)
    assert exc.value.param == param


# --- request encoding ----------------------------------------------------------------


def test_encode_request_drops_what_responses_lacks() -> None:
    req = Request(
        model="m",
        messages=[Message("user", [TextPart("hi")])],
        stop=["END"],
        seed=7,
        top_k=40,
        tools=[Tool("f")],
        reasoning=Reasoning(budget_tokens=2048),
    )
    body = R.encode_request(req)
    assert "stop" not in body and "seed" not in body and "top_k" not in body
    assert body["tools"] == [
        {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}, "strict": False}
    ]
    assert body["reasoning"] == {"effort": "medium"}
    assert "instructions" not in body


def test_encode_request_sends_only_openai_reasoning_back() -> None:
    req = Request(
        model="m",
        messages=[
            Message("user", [TextPart("q")]),
            Message(
                "assistant",
                [
                    ThinkingPart("claude thought", "sig-anthropic", "anthropic"),
                    ThinkingPart("", "opaque", "anthropic", redacted=True),
                    ThinkingPart("no id, no content", None, NAME),
                    TextPart("a"),
                ],
            ),
        ],
    )
    assert R.encode_request(req)["input"] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a", "annotations": []}]},
    ]


def test_encode_request_keeps_image_system_prompt_as_an_input_item() -> None:
    req = Request(
        model="m",
        messages=[Message("system", [ImagePart(url="https://x.test/i.png")]), Message("user", [TextPart("q")])],
    )
    body = R.encode_request(req)
    assert "instructions" not in body
    assert body["input"][0] == {
        "type": "message",
        "role": "system",
        "content": [{"type": "input_image", "image_url": "https://x.test/i.png", "detail": "auto"}],
    }


# --- request round trip (property) ----------------------------------------------------

_text = st.text(min_size=1, max_size=12)
_ids = st.from_regex(r"[a-z]{1,6}", fullmatch=True)


@st.composite
def _conversations(draw: st.DrawFn) -> list[Message]:
    messages: list[Message] = []
    if draw(st.booleans()):
        messages.append(Message("system", [TextPart(draw(st.text(max_size=12)))]))
    for turn in range(draw(st.integers(1, 4))):
        messages.append(Message("user", draw(st.lists(_user_part(), min_size=1, max_size=3))))
        parts: list[Any] = []
        if draw(st.booleans()):
            rid = draw(st.none() | _ids.map(lambda s: f"rs_{s}"))
            parts.append(
                ThinkingPart(
                    draw(st.text(max_size=8)), draw(_text), NAME, provider_metadata=md(id=rid) if rid else None
                )
            )
        if draw(st.booleans()):
            mid = draw(st.none() | _ids.map(lambda s: f"msg_{s}"))
            parts.append(TextPart(draw(_text), md(id=mid) if mid else None))
        new_calls = [f"call_{turn}_{k}" for k in range(draw(st.integers(0, 2)))]
        parts += [ToolCallPart(c, draw(_ids), draw(st.sampled_from(["{}", '{"a":1}']))) for c in new_calls]
        if parts:
            messages.append(Message("assistant", parts))
        for c in new_calls:
            result = draw(
                st.lists(_user_part(), min_size=1, max_size=2).filter(
                    lambda ps: any(isinstance(p, ImagePart) for p in ps)
                )
                | _text.map(lambda t: [TextPart(t)])
            )
            messages.append(Message("tool", [ToolResultPart(c, list(result))]))
        if draw(st.booleans()) and turn:
            messages.append(Message("system", [TextPart(draw(_text))]))
    return messages


def _user_part() -> st.SearchStrategy[Any]:
    detail = st.sampled_from(["auto", "low", "high"])
    return st.one_of(
        _text.map(TextPart),
        st.builds(lambda d, det: ImagePart(data=d, media_type="image/png", detail=det), _ids, detail),
        st.builds(lambda u, det: ImagePart(url=f"https://x.test/{u}.png", detail=det), _ids, detail),
    )


@st.composite
def _requests(draw: st.DrawFn) -> Request:
    tools = [
        Tool(n, draw(st.none() | _text), {"type": "object", "properties": {}}, draw(st.booleans()))
        for n in draw(st.lists(_ids, max_size=2, unique=True))
    ]
    tool_choice = draw(
        st.none()
        | st.sampled_from([ToolChoice("auto"), ToolChoice("none"), ToolChoice("required")])
        | _ids.map(lambda n: ToolChoice("tool", n))
    )
    effort: Any = draw(st.none() | st.sampled_from(["minimal", "low", "medium", "high"]))
    summary = draw(st.none() | st.sampled_from(["auto", "detailed"]))
    reasoning = (
        Reasoning(effort=effort, summary=summary, include_thoughts=True if summary else None)
        if effort or summary
        else None
    )
    rf = draw(
        st.none()
        | st.just(ResponseFormat("json_object"))
        | st.just(ResponseFormat("json_schema", "s", {"type": "object"}, True))
    )
    return Request(
        model=draw(_ids),
        messages=draw(_conversations()),
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=draw(st.none() | st.booleans()) if tools else None,
        max_tokens=draw(st.none() | st.integers(1, 10_000)),
        temperature=draw(st.none() | st.floats(0, 2)),
        top_p=draw(st.none() | st.floats(0, 1)),
        stream=draw(st.booleans()),
        include_usage=True,
        reasoning=reasoning,
        response_format=rf,
        user=draw(st.none() | _ids),
        metadata=draw(st.dictionaries(_ids, _ids, max_size=2)),
        extra=draw(st.fixed_dictionaries({}, optional={"store": st.booleans(), "truncation": st.just("auto")})),
    )


@settings(max_examples=150, deadline=None)
@given(_requests())
def test_request_round_trip_property(req: Request) -> None:
    body = R.encode_request(req)
    assert "stop" not in body
    assert R.decode_request(json.loads(json.dumps(body))) == req


# --- responses -----------------------------------------------------------------------


def test_decode_response_from_an_openai_reply() -> None:
    body = fr.response(
        "Here.",
        calls=[fr.Call("f", {"x": 1})],
        thought=fr.Thought(["why"], "enc"),
        usage_=fr.usage(9, 4, cached=2, reasoning=1),
    ).body
    resp = R.decode_response(body)
    assert resp.parts == [
        ThinkingPart("why", "enc", NAME, provider_metadata=md(id="rs_up1")),
        TextPart("Here.", md(id="msg_up1")),
        ToolCallPart("call_up0", "f", '{"x": 1}', md(id="fc_up0")),
    ]
    assert resp.finish_reason == "tool_calls"
    assert resp.usage == Usage(9, 4, cached_tokens=2, reasoning_tokens=1)
    assert (resp.id, resp.model, resp.created) == ("resp_up1", "gpt-up", 1730000000)


def test_decode_response_content_filter_and_failed() -> None:
    assert (
        R.decode_response(fr.response("x", incomplete_reason="content_filter").body).finish_reason == "content_filter"
    )
    failed = fr.response_obj([], status="failed")
    failed["error"] = {"code": "server_error", "message": "boom"}
    with pytest.raises(ProviderError, match="boom"):
        R.decode_response(failed)
    with pytest.raises(ProviderProtocolError):
        R.decode_response({"id": "resp_x", "status": "completed"})


def test_encode_response_from_another_dialect() -> None:
    resp = Response(
        "abc",
        "pub-model",
        [
            ThinkingPart("pondering", "anthropic-sig", "anthropic"),
            ThinkingPart("", "opaque", "anthropic", redacted=True),
            TextPart("Calling."),
            ToolCallPart("toolu_1", "f", ""),
            ToolCallPart("toolu_2", "g", '{"a":1}'),
        ],
        "tool_calls",
        Usage(5, 6),
    )
    body = R.encode_response(resp)
    parsed = SDKResponse.model_validate(body)
    assert parsed.id == "resp_abc" and parsed.status == "completed" and parsed.output_text == "Calling."
    assert [(i["type"], i["id"]) for i in body["output"]] == [
        ("reasoning", "rs_abc_0"),
        ("message", "msg_abc_1"),
        ("function_call", "fc_abc_2"),
        ("function_call", "fc_abc_3"),
    ]
    assert "encrypted_content" not in body["output"][0]
    assert body["output"][2]["call_id"] == "toolu_1" and body["output"][2]["arguments"] == "{}"
    assert body["created_at"] > 0
    assert body["usage"]["total_tokens"] == 11


@pytest.mark.parametrize(
    ("finish", "status", "reason"),
    [
        ("length", "incomplete", "max_output_tokens"),
        ("content_filter", "incomplete", "content_filter"),
        ("stop", "completed", None),
    ],
)
def test_encode_response_status(finish: Any, status: str, reason: str | None) -> None:
    body = R.encode_response(Response("r", "m", [TextPart("t")], finish))
    assert body["status"] == status
    assert (body["incomplete_details"] or {}).get("reason") == reason
    SDKResponse.model_validate(body)


def test_error_body_is_the_openai_envelope() -> None:
    status, body = R.error_body(InvalidRequest("bad input", param="input"))
    assert status == 400
    openai.types.ErrorObject.model_validate(body["error"])
    assert body["error"]["param"] == "input"


# --- stream decoding -----------------------------------------------------------------


def decode_all(frames: list[bytes], *, split: bool = False) -> list[StreamEvent]:
    dec = R.StreamDecoder()
    out: list[StreamEvent] = []
    data = b"".join(frames)
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)] if split else frames
    for chunk in chunks:
        out += dec.feed(chunk)
    return out + dec.close()


@pytest.mark.parametrize("split", [False, True])
def test_stream_decoder_full_stream(split: bool) -> None:
    frames = fr.stream_frames(
        ["Let me ", "check."],
        calls=[fr.Call("get_weather", {"city": "Paris"}, "call_abc")],
        thought=fr.Thought(["one", "two"], "gAAAAenc"),
        usage_=fr.usage(52, 18, cached=8, reasoning=6),
    )
    events = decode_all(frames, split=split)
    assert events[0] == StreamStart("resp_up1", "gpt-up", 1730000000)
    resp = collect(events)
    assert resp.parts == [
        ThinkingPart("one\n\ntwo", "gAAAAenc", NAME),
        TextPart("Let me check."),
        ToolCallPart("call_abc", "get_weather", '{"city": "Paris"}', md(id="fc_up0")),
    ]
    assert events[-1] == StreamEnd("tool_calls", Usage(52, 18, cached_tokens=8, reasoning_tokens=6))
    assert sum(isinstance(e, StreamEnd) for e in events) == 1


def test_stream_decoder_arguments_done_without_deltas() -> None:
    """litellm#27144: an upstream that only sends .done must not lose the arguments."""
    frames = fr.stream_frames([], calls=[fr.Call("a", {"x": 1}), fr.Call("b", {"y": [2]})], args_done_only=True)
    events = decode_all(frames)
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas == [ToolCallDelta(0, '{"x": 1}'), ToolCallDelta(1, '{"y": [2]}')]
    assert [p.arguments for p in collect(events).parts if isinstance(p, ToolCallPart)] == ['{"x": 1}', '{"y": [2]}']


def test_stream_decoder_items_only_in_the_terminal_response() -> None:
    final = fr.response_obj(fr.output_items("whole", [fr.Call("f", {"k": "v"})], None, "completed"), usage_=fr.usage())
    frames = [
        b'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":'
        + json.dumps(fr.response_obj([], status="in_progress")).encode()
        + b"}\n\n",
        b"event: response.completed\ndata: "
        + json.dumps({"type": "response.completed", "sequence_number": 1, "response": final}).encode()
        + b"\n\n",
    ]
    resp = collect(decode_all(frames))
    assert resp.text() == "whole"
    assert [(p.name, p.arguments) for p in resp.parts if isinstance(p, ToolCallPart)] == [("f", '{"k": "v"}')]
    assert resp.finish_reason == "tool_calls"


def test_stream_decoder_incomplete_is_length() -> None:
    events = decode_all(fr.stream_frames(["cut"], incomplete_reason="max_output_tokens"))
    assert isinstance(events[-1], StreamEnd) and events[-1].finish_reason == "length"
    assert collect(events).text() == "cut"


def test_stream_decoder_failed_and_error_events_raise() -> None:
    with pytest.raises(ProviderError, match="The server had an error"):
        decode_all(fr.failed_stream(texts=["par"]).frames)
    with pytest.raises(ProviderError, match="Rate limit reached"):
        decode_all(fr.error_event_stream().frames)


def test_stream_decoder_cut_before_terminal_is_protocol_error() -> None:
    frames = fr.stream_frames(["a", "b"])[:-1]
    dec = R.StreamDecoder()
    for f in frames:
        dec.feed(f)
    with pytest.raises(ProviderProtocolError):
        dec.close()


def test_stream_decoder_accepts_a_done_terminator() -> None:
    events = decode_all([*fr.stream_frames(["x"]), b"data: [DONE]\n\n"])
    assert collect(events).text() == "x"


# --- stream encoding -----------------------------------------------------------------


def encode_all(events: list[StreamEvent], *, error: Exception | None = None) -> bytes:
    enc = R.StreamEncoder(model="pub", include_usage=True, request_id="req1")
    out = b"".join(enc.encode(e) for e in events)
    if error is not None:
        out += enc.error(error)  # type: ignore[arg-type]
    return out


def parse(data: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    p = SSEParser()
    frames = p.feed(data) + p.close()
    return [(f.event, json.loads(f.data)) for f in frames]


def check_invariants(data: bytes) -> list[dict[str, Any]]:
    """What the SDK types cannot check (wire-formats section 4, Responses)."""
    events = parse(data)
    bodies = [b for _, b in events]
    for event, body in events:
        EVENTS.validate_python(body)
        assert event == body["type"]
    assert [b["sequence_number"] for b in bodies] == list(range(len(bodies)))
    assert bodies[0]["type"] == "response.created" and bodies[1]["type"] == "response.in_progress"
    terminal = bodies[-1]
    assert terminal["type"] in ("response.completed", "response.incomplete", "response.failed")
    assert b"[DONE]" not in data
    ids = {b["response"]["id"] for b in bodies if "response" in b}
    assert len(ids) == 1
    for b in bodies[:-1]:
        assert "response" not in b or b["response"]["usage"] is None
    added = [b for b in bodies if b["type"] == "response.output_item.added"]
    done = [b for b in bodies if b["type"] == "response.output_item.done"]
    assert [a["output_index"] for a in added] == [d["output_index"] for d in done] == list(range(len(done)))
    for a, d in zip(added, done, strict=True):
        assert (a["item"]["id"], a["item"]["type"]) == (d["item"]["id"], d["item"]["type"])
    for kind in ("content_part", "reasoning_summary_part"):
        assert sum(b["type"] == f"response.{kind}.added" for b in bodies) == sum(
            b["type"] == f"response.{kind}.done" for b in bodies
        )
    for d in done:
        item, idx = d["item"], d["output_index"]
        mine = [b for b in bodies if b.get("output_index") == idx]
        if item["type"] == "message":
            deltas = "".join(b["delta"] for b in mine if b["type"] == "response.output_text.delta")
            (text_done,) = [b for b in mine if b["type"] == "response.output_text.done"]
            assert text_done["text"] == deltas == item["content"][0]["text"]
        elif item["type"] == "function_call":
            deltas = "".join(b["delta"] for b in mine if b["type"] == "response.function_call_arguments.delta")
            (args_done,) = [b for b in mine if b["type"] == "response.function_call_arguments.done"]
            assert args_done["arguments"] == deltas == item["arguments"]
            json.loads(item["arguments"])
        elif item["type"] == "reasoning" and item["summary"]:
            deltas = "".join(b["delta"] for b in mine if b["type"] == "response.reasoning_summary_text.delta")
            assert deltas == item["summary"][0]["text"]
        # Nothing for an item after its done.
        assert mine[-1] is d
    assert terminal["response"]["output"] == [d["item"] for d in done]
    if terminal["type"] != "response.failed":
        assert terminal["response"]["usage"] is not None
    return bodies


THINK_TEXT_TOOLS: list[StreamEvent] = [
    StreamStart("up", "up-model", 1730000000),
    ThinkingDelta("Need ", source=NAME),
    ThinkingDelta("weather.", source=NAME),
    ThinkingDelta("", signature="gAAAAenc", source=NAME),
    TextDelta("Let me "),
    TextDelta("check."),
    ToolCallStart(0, "call_abc", "get_weather"),
    ToolCallDelta(0, '{"city":'),
    ToolCallDelta(0, '"Paris"}'),
    UsageUpdate(Usage(52, 18)),
    StreamEnd("tool_calls", Usage(52, 18, cached_tokens=4, reasoning_tokens=7)),
]


def test_stream_encoder_full_sequence() -> None:
    bodies = check_invariants(encode_all(THINK_TEXT_TOOLS))
    types = [b["type"] for b in bodies]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = bodies[-1]["response"]
    assert final["model"] == "pub" and final["id"] == "resp_req1" and final["created_at"] == 1730000000
    assert final["output"][0]["encrypted_content"] == "gAAAAenc"
    assert final["output"][2]["call_id"] == "call_abc"
    assert final["usage"]["input_tokens_details"] == {"cached_tokens": 4, "cache_write_tokens": 0}
    assert final["usage"]["output_tokens_details"] == {"reasoning_tokens": 7}


def test_stream_encoder_interleaved_parallel_calls_stay_separate() -> None:
    events: list[StreamEvent] = [
        StreamStart("up", "m"),
        ToolCallStart(0, "call_a", "f"),
        ToolCallStart(1, "call_b", "g"),
        ToolCallDelta(0, '{"x":'),
        ToolCallDelta(1, '{"y":'),
        ToolCallDelta(0, "1}"),
        ToolCallDelta(1, "2}"),
        ToolCallStart(2, "call_c", "h"),
        StreamEnd("tool_calls"),
    ]
    bodies = check_invariants(encode_all(events))
    output = bodies[-1]["response"]["output"]
    assert [(o["call_id"], o["name"], o["arguments"]) for o in output] == [
        ("call_a", "f", '{"x":1}'),
        ("call_b", "g", '{"y":2}'),
        ("call_c", "h", "{}"),
    ]


def test_stream_encoder_sequential_calls_stream_live() -> None:
    events: list[StreamEvent] = [
        StreamStart("up", "m"),
        ToolCallStart(0, "call_a", "f"),
        ToolCallDelta(0, '{"x":1}'),
        ToolCallStart(1, "call_b", "g"),
        ToolCallDelta(1, '{"y":'),
        ToolCallDelta(1, "2}"),
        StreamEnd("tool_calls"),
    ]
    bodies = check_invariants(encode_all(events))
    second = [
        b["delta"] for b in bodies if b["type"] == "response.function_call_arguments.delta" and b["output_index"] == 1
    ]
    assert second == ['{"y":', "2}"]


def test_stream_encoder_length_is_incomplete() -> None:
    bodies = check_invariants(
        encode_all([StreamStart("u", "m"), TextDelta("trunc"), StreamEnd("length", Usage(3, 16))])
    )
    final = bodies[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_stream_encoder_empty_stream_still_completes() -> None:
    bodies = check_invariants(encode_all([StreamStart("u", "m"), StreamEnd("stop")]))
    assert [b["type"] for b in bodies] == ["response.created", "response.in_progress", "response.completed"]
    assert bodies[-1]["response"]["usage"]["total_tokens"] == 0


def test_stream_encoder_ignores_foreign_signatures_and_redacted_thinking() -> None:
    events: list[StreamEvent] = [
        StreamStart("u", "m"),
        ThinkingDelta("hmm", source="anthropic"),
        ThinkingDelta("", signature="anthropic-sig", source="anthropic"),
        ThinkingDelta("", signature="opaque", source="anthropic", redacted=True),
        TextDelta("ok"),
        StreamEnd("stop"),
    ]
    bodies = check_invariants(encode_all(events))
    reasoning = bodies[-1]["response"]["output"][0]
    assert reasoning["type"] == "reasoning" and "encrypted_content" not in reasoning
    assert reasoning["summary"] == [{"type": "summary_text", "text": "hmm"}]


@pytest.mark.parametrize(
    ("err", "code"),
    [(ProviderTimeout("too slow"), "server_error"), (LimitExceeded("slow down"), "rate_limit_exceeded")],
)
def test_stream_encoder_error_is_response_failed(err: Exception, code: str) -> None:
    data = encode_all([StreamStart("u", "m"), TextDelta("partial")], error=err)
    bodies = check_invariants(data)
    failed = bodies[-1]
    assert failed["type"] == "response.failed"
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"] == {"code": code, "message": str(err)}


def test_stream_encoder_error_before_start_still_opens_the_response() -> None:
    enc = R.StreamEncoder(model="m", include_usage=False, request_id="r")
    bodies = [b for _, b in parse(enc.error(ProviderTimeout("t")))]
    assert [b["type"] for b in bodies] == ["response.created", "response.in_progress", "response.failed"]
    assert enc.encode(TextDelta("late")) == b""


def test_stream_round_trip_through_both_codecs() -> None:
    frames = fr.stream_frames(["Hi ", "there"], calls=[fr.Call("f", {"a": [1, 2]})], thought=fr.Thought(["s"], "enc"))
    data = encode_all(decode_all(frames))
    check_invariants(data)
    resp = collect(decode_all([data]))
    assert resp.text() == "Hi there"
    assert [(p.name, json.loads(p.arguments)) for p in resp.parts if isinstance(p, ToolCallPart)] == [
        ("f", {"a": [1, 2]})
    ]
    assert [p.signature for p in resp.parts if isinstance(p, ThinkingPart)] == ["enc"]


# --- the real SDK against the encoder's bytes ------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


def client(server: FakeUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="t", max_retries=0, _strict_response_validation=True)


def test_sdk_stream_helper_final_response(upstream: FakeUpstream) -> None:
    data = encode_all(THINK_TEXT_TOOLS)
    upstream.queue("/v1/responses", Stream([data]))
    tools: Any = [{"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": False}]
    with client(upstream).responses.stream(model="pub", input="hi", tools=tools) as stream:
        final = stream.get_final_response()
    assert final.output_text == "Let me check."
    calls = [o for o in final.output if o.type == "function_call"]
    assert [(c.call_id, c.arguments) for c in calls] == [("call_abc", '{"city":"Paris"}')]
    assert final.usage is not None and final.usage.input_tokens == 52


def test_sdk_create_stream_validates_every_event(upstream: FakeUpstream) -> None:
    events: list[StreamEvent] = [StreamStart("u", "m"), ToolCallStart(0, "c1", "f"), ToolCallStart(1, "c2", "g"),
                                 ToolCallDelta(1, "{}"), ToolCallDelta(0, '{"a":1}'), StreamEnd("tool_calls")]  # fmt: skip
    upstream.queue("/v1/responses", Stream([encode_all(events)]))
    got = list(client(upstream).responses.create(model="pub", input="hi", stream=True))
    assert got[-1].type == "response.completed"
    assert [o.arguments for o in got[-1].response.output if o.type == "function_call"] == ['{"a":1}', "{}"]


def test_sdk_non_stream_response(upstream: FakeUpstream) -> None:
    from tests.fakes.server import Reply

    upstream.queue("/v1/responses", Reply(R.encode_response(RESPONSES["response_reasoning"])))
    resp = client(upstream).responses.create(model="pub", input="2+2")
    assert resp.output_text == "4"
    assert resp.usage is not None and resp.usage.output_tokens_details.reasoning_tokens == 100
