"""The CodeWhisperer (Kiro) codec: conversationState out, event-stream frames in."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmproxy import formats
from llmproxy.errors import ProviderError, ProviderHTTPError, ProviderProtocolError
from llmproxy.formats import codewhisperer as cw
from llmproxy.model import (
    ImagePart,
    Message,
    Request,
    StreamEnd,
    TextDelta,
    TextPart,
    ThinkingDelta,
    Tool,
    ToolCallDelta,
    ToolCallPart,
    ToolCallStart,
    ToolResultPart,
)
from llmproxy.tokens import count_text
from tests.fakes import codewhisperer as fake

WEATHER = Tool("get_weather", "Get weather", {"type": "object", "properties": {"city": {"type": "string"}},
                                              "required": ["city"], "additionalProperties": False})  # fmt: skip


def state(req: Request) -> dict:
    body = cw.encode_request(req)
    assert fake.problem(body) is None, fake.problem(body)
    return body["conversationState"]


@pytest.mark.parametrize(("name", "want"), [
    ("claude-sonnet-4-5", "claude-sonnet-4.5"), ("claude-sonnet-4.5", "claude-sonnet-4.5"),
    ("kiro-claude-sonnet-4-5-agentic", "claude-sonnet-4.5"), ("claude-sonnet-4-20250514", "claude-sonnet-4"),
    ("claude-sonnet-4-6", "claude-sonnet-4.6"), ("claude-opus-4-5-20251101", "claude-opus-4.5"),
    ("amazonq-claude-opus-4-6-thinking", "claude-opus-4.6"), ("claude-haiku-4-5", "claude-haiku-4.5"),
    ("claude-3-7-sonnet-latest", "claude-3-7-sonnet-20250219"), ("auto", "auto"), ("Kiro-Auto", "auto"),
])  # fmt: skip
def test_model_names_map_to_kiros_dotted_model_ids(name: str, want: str) -> None:
    assert cw.model_id(name) == want


def test_a_plain_request_is_one_current_user_message_with_the_system_prompt_leading() -> None:
    s = state(Request("claude-sonnet-4-5", [Message("system", [TextPart("Be brief.")]),
                                            Message("user", [TextPart("Hi")])]))  # fmt: skip
    assert s["chatTriggerType"] == "MANUAL" and s["history"] == []
    user = s["currentMessage"]["userInputMessage"]
    assert user == {"content": "--- SYSTEM PROMPT ---\nBe brief.\n--- END SYSTEM PROMPT ---\n\nHi",
                    "modelId": "claude-sonnet-4.5", "origin": "AI_EDITOR"}  # fmt: skip


def test_a_tool_round_trip_puts_uses_in_history_and_results_in_the_current_message() -> None:
    call = ToolCallPart("call_1", "get_weather", '{"city":"SF"}')
    s = state(Request("claude-sonnet-4-5", [
        Message("user", [TextPart("Weather?")]), Message("assistant", [TextPart("Checking."), call]),
        Message("tool", [ToolResultPart("call_1", [TextPart("18C")])]),
    ], tools=[WEATHER]))  # fmt: skip
    assert s["history"][1] == {"assistantResponseMessage": {"content": "Checking.", "toolUses": [
        {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "SF"}}]}}  # fmt: skip
    user = s["currentMessage"]["userInputMessage"]
    assert user["content"] == "Tool results provided."
    ctx = user["userInputMessageContext"]
    assert ctx["toolResults"] == [{"toolUseId": "call_1", "content": [{"text": "18C"}], "status": "success"}]
    spec = ctx["tools"][0]["toolSpecification"]
    assert spec["name"] == "get_weather" and "additionalProperties" not in spec["inputSchema"]["json"]


def test_orphans_are_dropped_history_tools_declared_and_turns_alternate() -> None:
    s = state(Request("claude-haiku-4-5", [
        Message("assistant", [TextPart("Hello, how can I help?")]),
        Message("user", [TextPart("a")]), Message("user", [TextPart("b")]),
        Message("assistant", [ToolCallPart("lost", "get_time", "{}"), ToolCallPart("kept", "Lookup", "{}")]),
        Message("tool", [ToolResultPart("kept", [TextPart("ok")], is_error=True),
                         ToolResultPart("stray", [TextPart("?")])]),
        Message("assistant", [TextPart("Done.")]),
    ]))  # fmt: skip
    kinds = [next(iter(t)) for t in s["history"]]
    assert kinds == ["userInputMessage", "assistantResponseMessage"] * 3
    assert s["history"][2]["userInputMessage"]["content"] == "a\n\nb"
    assert [u["toolUseId"] for u in s["history"][3]["assistantResponseMessage"]["toolUses"]] == ["kept"]
    results = s["history"][4]["userInputMessage"]["userInputMessageContext"]["toolResults"]
    assert results == [{"toolUseId": "kept", "content": [{"text": "ok"}], "status": "error", "isError": True}]
    current = s["currentMessage"]["userInputMessage"]
    assert current["content"] == "Continue"  # a trailing assistant turn gets a user turn after it
    assert [t["toolSpecification"]["name"] for t in current["userInputMessageContext"]["tools"]] == ["Lookup"]


def test_images_go_as_bytes_with_the_subtype_as_format() -> None:
    s = state(Request("claude-sonnet-4-5", [Message("user", [TextPart("What?"),
                                                             ImagePart(data="iVBORw0KGgo=", media_type="image/jpg")])]))  # fmt: skip
    assert s["currentMessage"]["userInputMessage"]["images"] == [
        {"format": "jpeg", "source": {"bytes": "iVBORw0KGgo="}}
    ]


def test_the_codec_is_registered_with_its_traits() -> None:
    assert formats.get("codewhisperer") is cw
    t = formats.traits(cw)
    assert t.inline_images and t.stream_usage_always and not t.model_in_path


def feed_all(chunks: list[bytes], step: int = 5) -> list:
    d = cw.StreamDecoder()
    data = b"".join(chunks)
    out = []
    for i in range(0, len(data), step):
        out += d.feed(data[i : i + step])
    return out + d.close()


def test_text_and_incremental_tool_input_become_canonical_events_with_estimated_usage() -> None:
    events = feed_all(fake.frames(["Hel", "lo"], calls=[("get_weather", {"city": "SF"})], percent=10.0))
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    args = "".join(e.arguments for e in events if isinstance(e, ToolCallDelta))
    end = events[-1]
    assert texts == ["Hel", "lo"] and [(s.id, s.name) for s in starts] == [("tooluse_up0", "get_weather")]
    assert json.loads(args) == {"city": "SF"}
    assert isinstance(end, StreamEnd) and end.finish_reason == "tool_calls"
    assert end.usage is not None and end.usage.input_tokens == 20_000
    assert end.usage.output_tokens == count_text('Hello{"city": "SF"}')


def test_a_tool_use_with_no_input_gets_empty_arguments_and_an_object_input_is_taken_whole() -> None:
    frames = [fake.event("toolUseEvent", {"name": "now", "toolUseId": "a", "stop": True}),
              fake.event("toolUseEvent", {"name": "f", "toolUseId": "b", "input": {"x": 1}}),
              fake.event("toolUseEvent", {"name": "f", "toolUseId": "b", "stop": True})]  # fmt: skip
    args = [(e.index, e.arguments) for e in feed_all(frames) if isinstance(e, ToolCallDelta)]
    assert args == [(0, "{}"), (1, '{"x":1}')]


def test_a_million_token_model_scales_the_context_percentage() -> None:
    events = feed_all(fake.frames(["x"], percent=1.0, model="claude-sonnet-4.6"))
    assert events[-1].usage.input_tokens == 10_000


def test_reasoning_events_are_thinking_and_wrapped_payloads_are_read() -> None:
    frames = [fake.event("reasoningContentEvent", {"text": "hmm"}),
              fake.event("assistantResponseEvent", {"assistantResponseEvent": {"content": "ok"}})]  # fmt: skip
    events = feed_all(frames)
    assert [e.text for e in events if isinstance(e, ThinkingDelta)] == ["hmm"]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["ok"]


@pytest.mark.parametrize(("kind", "status"), [("ThrottlingException", 429), ("ValidationException", 400),
                                              ("InternalServerException", 500)])  # fmt: skip
def test_a_mid_stream_exception_raises_the_upstreams_error(kind: str, status: int) -> None:
    d = cw.StreamDecoder()
    assert d.feed(fake.event("assistantResponseEvent", {"content": "Hel"}))
    with pytest.raises(ProviderHTTPError, match=f"{kind}: boom") as exc:
        d.feed(fake.exception(kind, "boom"))
    assert exc.value.upstream_status == status and exc.value.code == "upstream_stream_error"


def test_an_error_frame_names_its_code_and_message() -> None:
    from llmproxy.eventstream import encode

    frame = encode({":message-type": "error", ":error-code": "InternalFailure", ":error-message": "kaput"})
    with pytest.raises(ProviderError, match="InternalFailure: kaput"):
        cw.StreamDecoder().feed(frame)


def test_content_length_exceeded_ends_the_reply_with_length() -> None:
    events = feed_all([fake.event("assistantResponseEvent", {"content": "Once"}),
                       fake.exception("ContentLengthExceededException", "too long")])  # fmt: skip
    assert events[-1].finish_reason == "length"


def test_a_corrupt_or_truncated_frame_and_an_empty_stream_are_protocol_errors() -> None:
    good = fake.event("assistantResponseEvent", {"content": "Hi"})
    with pytest.raises(ProviderProtocolError, match="message CRC32"):
        feed_all([good, fake.corrupt(good)])
    with pytest.raises(ProviderProtocolError, match="ended inside a frame"):
        feed_all([good, fake.truncated(good)])
    with pytest.raises(ProviderProtocolError, match="before any event"):
        feed_all([])


def test_decode_response_collects_the_frames_and_encode_response_round_trips() -> None:
    from llmproxy.providers.kiro import KiroExecutor

    raw = b"".join(fake.frames(["Hel", "lo"], calls=[("get_weather", {"city": "SF"})]))
    body = json.loads(KiroExecutor().unwrap_body(raw))
    resp = cw.decode_response(body)
    assert [type(p).__name__ for p in resp.parts] == ["TextPart", "ToolCallPart"]
    assert resp.parts[0].text == "Hello" and resp.finish_reason == "tool_calls"
    again = cw.decode_response(cw.encode_response(resp))
    assert again.parts == resp.parts and again.finish_reason == "tool_calls"


def test_decode_request_reads_what_encode_request_wrote() -> None:
    call = ToolCallPart("c1", "get_weather", '{"city":"SF"}')
    body = cw.encode_request(Request("claude-sonnet-4-5", [Message("user", [TextPart("Weather?")]),
                                                           Message("assistant", [TextPart("On it."), call]),
                                                           Message("tool", [ToolResultPart("c1", [TextPart("18C")])])],
                                     tools=[WEATHER]))  # fmt: skip
    req = cw.decode_request(body)
    assert req.model == "claude-sonnet-4.5" and [t.name for t in req.tools] == ["get_weather"]
    assert [m.role for m in req.messages] == ["user", "assistant", "tool", "user"]
    assert req.messages[1].parts[1] == ToolCallPart("c1", "get_weather", '{"city":"SF"}')


def test_a_long_tool_name_is_shortened_for_kiro_and_given_back_whole() -> None:
    long = "mcp__a_very_long_server_name__" + "x" * 60
    call = ToolCallPart("c1", long, "{}")
    s = state(Request("claude-sonnet-4-5", [Message("user", [TextPart("go")]), Message("assistant", [call]),
                                            Message("tool", [ToolResultPart("c1", [TextPart("ok")])])],
                      tools=[Tool(long, "d")]))  # fmt: skip
    sent = s["currentMessage"]["userInputMessage"]["userInputMessageContext"]["tools"][0]["toolSpecification"]["name"]
    assert len(sent) == 63 and sent.startswith("mcp__a_very_long") and sent != long[:63]
    assert s["history"][1]["assistantResponseMessage"]["toolUses"][0]["name"] == sent
    frames = [fake.event("toolUseEvent", {"name": sent, "toolUseId": "t", "input": "{}"}),
              fake.event("toolUseEvent", {"name": sent, "toolUseId": "t", "stop": True})]  # fmt: skip
    (start,) = [e for e in feed_all(frames) if isinstance(e, ToolCallStart)]
    assert start.name == long


_texts = st.one_of(
    st.sampled_from(["", " ", "\n"]), st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)
)
_parts = st.one_of(
    st.builds(TextPart, _texts),
    st.builds(ImagePart, data=st.just("iVBORw0KGgo="), media_type=st.sampled_from(["image/png", "image/webp"])),
)
_ids = st.sampled_from(["a", "b", "c"])
_message = st.one_of(
    st.builds(lambda r, ps: Message(r, ps), st.sampled_from(["user", "system"]), st.lists(_parts, max_size=3)),
    st.builds(lambda t, calls: Message("assistant", [TextPart(t), *calls]), _texts,
              st.lists(st.builds(lambda i, n: ToolCallPart(i, n, '{"k": 1}'), _ids, st.sampled_from(["f", "G"])),
                       max_size=2)),
    st.builds(lambda rs: Message("tool", rs), st.lists(st.builds(lambda i, t, e: ToolResultPart(i, [TextPart(t)], e),
                                                                 _ids, _texts, st.booleans()), min_size=1, max_size=2)),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_message, max_size=8), st.booleans())
def test_any_conversation_encodes_to_a_state_kiro_accepts(messages: list[Message], with_tools: bool) -> None:
    tools = [Tool("f", "the f tool")] if with_tools else []
    body = cw.encode_request(Request("claude-sonnet-4-5", messages, tools=tools))
    assert fake.problem(body) is None, (fake.problem(body), messages)
