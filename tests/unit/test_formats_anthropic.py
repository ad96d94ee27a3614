"""The Anthropic codec: golden fixtures both ways, the API's rules, streams checked by the anthropic SDK."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any, get_args

import anthropic
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message as SDKMessage
from anthropic.types import RawMessageStreamEvent, StopReason
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from llmproxy import model as M
from llmproxy._json import dumps_str
from llmproxy.errors import (
    InvalidRequest,
    LimitExceeded,
    LLMProxyError,
    NoRouteAvailable,
    ProviderHTTPError,
    ProviderProtocolError,
    ProviderTimeout,
    RequestTooLarge,
)
from llmproxy.formats import anthropic as A
from llmproxy.formats import gemini as G
from llmproxy.formats import openai_chat as O
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
from tests.fakes import anthropic as fa
from tests.fakes import gemini as fg
from tests.fakes import openai as fo
from tests.fakes.server import FakeUpstream, Reply, Stream
from tests.golden import plain, unplain

FIXTURES = Path(__file__).parent.parent / "fixtures" / "anthropic"
ID_RULE = re.compile(r"^[a-zA-Z0-9_-]+$")
EVENTS = TypeAdapter(RawMessageStreamEvent)
SIG = "EqQBCgIYAhIMr5yJbd0AyxkkhhuYGgwhuPaK3RZRH0Ma4dUiMKTAJBvU8rYf8ymBUsyy2yjgOn0Ts/Ek+Ol1ww+ECf5fhDCUI2L5iNbwBg=="
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def names(prefix: str) -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob(f"{prefix}_*.json"))


def check_anthropic_rules(body: dict[str, Any]) -> None:
    """What the Messages API rejects with a 400, checked on an encoded request body."""
    turns = body["messages"]
    assert turns and turns[0]["role"] == "user"
    assert all(a["role"] != b["role"] for a, b in itertools.pairwise(turns)), "roles must alternate"
    for i, turn in enumerate(turns):
        assert turn["content"], "empty turn"
        for block in turn["content"]:
            if block["type"] == "text":
                assert block["text"].strip(), "text content blocks must be non-empty"
            if block["type"] == "tool_use":
                assert ID_RULE.match(block["id"]) and isinstance(block["input"], dict)
            if block["type"] == "thinking":
                assert block["signature"] and not block["signature"].startswith(A.SIGNATURE_PREFIX)
        calls = [b["id"] for b in turn["content"] if b["type"] == "tool_use"]
        if calls and i + 1 < len(turns):
            opening = [b["tool_use_id"] for b in turns[i + 1]["content"][: len(calls)] if b["type"] == "tool_result"]
            assert sorted(opening) == sorted(calls), "tool_use ids without tool_result blocks immediately after"
    for block in body.get("system", []):
        assert block["type"] == "text" and block["text"].strip()
    assert not ("temperature" in body and "top_p" in body)
    thinking = body.get("thinking", {})
    if thinking.get("type") in ("enabled", "adaptive"):
        assert not {"temperature", "top_p", "top_k"} & body.keys()
    if thinking.get("type") == "enabled":
        assert 1024 <= thinking["budget_tokens"] < body["max_tokens"]
    assert isinstance(body["max_tokens"], int) and body["max_tokens"] > 0


def sdk_stream(raw: bytes) -> tuple[list[dict[str, Any]], Any]:
    """Validate an encoded stream event by event and assert the sequence rules the types do not check.

    Returns the events (as dicts) and the message the SDK's own accumulator builds.
    """
    frames = SSEParser().feed(raw)
    assert frames and all(f.event for f in frames), "every Anthropic event needs an event: line"
    events = [json.loads(f.data) for f in frames]
    assert [f.event for f in frames] == [e["type"] for e in events]
    assert events[0]["type"] == "message_start"
    snapshot: Any = None
    bufs: dict[int, bytes] = {}
    open_index: int | None = None
    next_index = 0
    open_kind = ""
    signed = False
    for e in events:
        if e["type"] == "ping":
            continue
        if e["type"] == "error":
            anthropic.types.ErrorResponse.model_validate(e)
            continue
        event = EVENTS.validate_python(e)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=bufs)
        if e["type"] == "content_block_start":
            assert open_index is None and e["index"] == next_index, "blocks must not interleave"
            open_index, open_kind, signed = e["index"], e["content_block"]["type"], False
        elif e["type"] == "content_block_delta":
            assert e["index"] == open_index
            kind = e["delta"]["type"]
            expected = {"text_delta": "text", "input_json_delta": "tool_use", "thinking_delta": "thinking",
                        "signature_delta": "thinking"}[kind]  # fmt: skip
            assert expected == open_kind
            signed = signed or kind == "signature_delta"
        elif e["type"] == "content_block_stop":
            assert e["index"] == open_index
            if open_kind == "thinking":
                assert signed, "signature_delta must come before a thinking block stops"
            open_index, next_index = None, next_index + 1
    kinds = [e["type"] for e in events if e["type"] != "ping"]
    if kinds[-1] == "error":
        return events, snapshot
    assert kinds[-2:] == ["message_delta", "message_stop"] and kinds.count("message_delta") == 1
    for block in snapshot.content:
        if block.type == "tool_use":
            assert json.loads(bufs.get(snapshot.content.index(block), b"{}") or b"{}") == block.input
    return events, snapshot


def encode_events(events: list[StreamEvent], **kw: Any) -> bytes:
    encoder = A.StreamEncoder(model=kw.pop("model", "claude-client"), include_usage=True, **kw)
    return b"".join(encoder.encode(e) for e in events)


def decode_frames(frames: list[bytes]) -> list[StreamEvent]:
    decoder = A.StreamDecoder()
    return [e for f in frames for e in decoder.feed(f)] + decoder.close()


# --- golden fixtures -------------------------------------------------------------------


@pytest.mark.parametrize("name", names("response"))
def test_anthropic_decodes_golden_responses(name: str) -> None:
    case = fixture(name)
    SDKMessage.model_validate(case["wire"])
    assert plain(A.decode_response(case["wire"])) == case["canonical"]


@pytest.mark.parametrize("name", names("response"))
def test_anthropic_encodes_golden_responses_that_the_sdk_accepts(name: str) -> None:
    case = fixture(name)
    encoded = A.encode_response(unplain(case["canonical"]))
    assert encoded == case["encoded"]
    assert SDKMessage.model_validate(encoded).to_dict() == encoded


def test_anthropic_golden_responses_cover_every_stop_reason() -> None:
    reasons = {fixture(n)["wire"]["stop_reason"] for n in names("response")}
    assert reasons == set(get_args(StopReason))


@pytest.mark.parametrize("name", ["request_claude_code", "request_images_sampling", "request_adaptive_json"])
def test_anthropic_decodes_and_reencodes_golden_requests(name: str) -> None:
    case = fixture(name)
    req = A.decode_request(case["wire"])
    assert plain(req) == case["canonical"]
    assert A.encode_request(req) == case["encoded"]
    check_anthropic_rules(case["encoded"])
    assert A.encode_request(A.decode_request(case["encoded"])) == case["encoded"]  # a fixed point


@pytest.mark.parametrize("name", names("request_history"))
def test_anthropic_encodes_golden_openai_histories(name: str) -> None:
    case = fixture(name)
    req = O.decode_request(case["openai"])
    assert plain(req) == case["canonical"]
    assert A.encode_request(unplain(case["canonical"])) == case["encoded"]
    check_anthropic_rules(case["encoded"])


# --- decoding requests -----------------------------------------------------------------


def body(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": list(messages), **extra}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


@pytest.mark.parametrize(
    ("wire", "param", "message"),
    [
        ({"model": "m", "messages": [user("hi")]}, "max_tokens", "max_tokens: Field required"),
        ({"max_tokens": 5, "messages": [user("hi")]}, "model", "model"),
        (body(user("hi"), max_tokens="many"), "max_tokens", "type int"),
        (body(), "messages", "at least one message"),
        (body({"role": "tool", "content": "x"}), "messages.0.role", "'user', 'assistant' or 'system'"),
        (body(user("x"), {"role": "system", "content": ""}), "messages.1.content", "non-empty content"),
        (body(user("x"), {"role": "system", "content": [{"type": "image", "source": {}}]}), "messages.1.content.0",
         "text blocks only"),
        (body(user([{"type": "text", "text": ""}])), "messages.0.content.0", "text content blocks must be non-empty"),
        (body(user(""), assistant("x"), user("y")), "messages.0.content", "non-empty content"),
        (body(user([{"text": "no type"}])), "messages.0.content.0", "'type'"),
        (body(user("x"), system=[{"type": "text", "text": ""}]), "system.0", "must be non-empty"),
        (body(user("x"), system=[{"type": "image"}]), "system.0", "text blocks"),
        (body(user([{"type": "tool_result", "tool_use_id": "t"}])), "messages.0.content", "unexpected `tool_use_id`"),
        (body(assistant([{"type": "tool_result", "tool_use_id": "t"}])), "messages.0.content.0", "not allowed"),
        (body(user([{"type": "tool_use", "id": "t", "name": "f", "input": {}}])), "messages.0.content.0",
         "not allowed in user"),
        (body(user("x"), assistant([{"type": "tool_use", "id": "t", "name": "f", "input": []}]), user("y")),
         "messages.1.content.0.input", "object"),
        (body(user("x"), tools=[{"name": "f"}]), "tools.0.input_schema", "Field required"),
        (body(user("x"), tool_choice={"type": "required"}), "tool_choice", "'auto', 'any'"),
        (body(user("x"), tool_choice={"type": "tool"}), "tool_choice.name", "Field required"),
        (body(user("x"), thinking={"type": "on"}), "thinking", "'enabled', 'adaptive'"),
        (body(user("x"), thinking={"type": "enabled"}), "thinking.budget_tokens", "type int"),
        (body(user("x"), output_config={"effort": "extreme"}), "output_config.effort", "low"),
        (body(user("x"), output_config={"format": {"type": "json_object"}}), "output_config.format", "json_schema"),
        (body(user([{"type": "image", "source": {"type": "base64"}}])), "messages.0.content.0.source.data", ""),
    ],
)  # fmt: skip
def test_anthropic_decode_request_gives_the_apis_400(wire: dict[str, Any], param: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        A.decode_request(wire)
    assert exc.value.param == param
    assert message in exc.value.message
    status, err = A.error_body(exc.value)
    assert (status, err["error"]["type"]) == (400, "invalid_request_error")


def test_anthropic_tool_use_must_be_answered_in_the_next_user_turn() -> None:
    calls = assistant([{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
                       {"type": "tool_use", "id": "toolu_2", "name": "f", "input": {}}])  # fmt: skip
    answer = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}
    with pytest.raises(InvalidRequest) as exc:
        A.decode_request(body(user("go"), calls, user([answer, {"type": "text", "text": "next"}])))
    assert exc.value.message.startswith(
        "messages.2: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_2."
    )
    with pytest.raises(InvalidRequest, match="toolu_1, toolu_2"):
        A.decode_request(body(user("go"), calls, user("forgot")))
    # Consecutive user turns are one turn to Anthropic; a final unanswered call is a prefill.
    both = [answer, {"type": "tool_result", "tool_use_id": "toolu_2", "content": "ok"}]
    req = A.decode_request(body(user("go"), calls, user(both[:1]), user(both[1:])))
    assert [m.role for m in req.messages] == ["user", "assistant", "tool", "tool"]
    assert A.decode_request(body(user("go"), calls)).messages[-1].role == "assistant"


def test_anthropic_user_turn_with_tool_results_becomes_a_tool_message_then_a_user_message() -> None:
    calls = assistant([{"type": "tool_use", "id": "toolu_1", "name": "shot", "input": {"w": 1}}])
    answer = user([
        {"type": "text", "text": "here you go"},
        {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
         "content": [{"type": "text", "text": ""}, {"type": "text", "text": "timeout"},
                     {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}]},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
    ])  # fmt: skip
    req = A.decode_request(body(user("go"), calls, answer))
    tool, after = req.messages[2], req.messages[3]
    result = ToolResultPart("toolu_1", [TextPart("timeout"), ImagePart(url="https://x.test/a.png")], is_error=True)
    assert tool == Message("tool", [result])
    assert after == Message("user", [TextPart("here you go"), ImagePart(data="/9j/", media_type="image/jpeg")])
    wire = A.encode_request(req)["messages"][-1]["content"]
    assert [b["type"] for b in wire] == ["tool_result", "text", "image"]  # results open the turn
    assert wire[0]["is_error"] is True and wire[0]["content"][1]["source"] == {
        "type": "url",
        "url": "https://x.test/a.png",
    }


def test_anthropic_keeps_a_mid_conversation_system_message_in_place() -> None:
    """Claude Code's ``{"role": "system"}`` entries (beta mid-conversation-system-2026-04-07)."""
    req = A.decode_request(body(user("hi"), assistant("ok"), {"role": "system", "content": "cwd is /srv"},
                                user("go"), system="Be terse."))  # fmt: skip
    assert [(m.role, m.text()) for m in req.messages] == [
        ("system", "Be terse."), ("user", "hi"), ("assistant", "ok"), ("system", "cwd is /srv"), ("user", "go")]  # fmt: skip


def test_anthropic_decodes_system_thinking_and_sampling_fields() -> None:
    req = A.decode_request(body(
        user("hi"), system="Be terse.", stop_sequences=["END"], temperature=1, top_k=5, stream=True,
        thinking={"type": "disabled"}, metadata={"user_id": "sess-1"}, service_tier="auto",
    ))  # fmt: skip
    assert req.messages[0] == Message("system", [TextPart("Be terse.")])
    assert (req.stop, req.temperature, req.top_k, req.stream, req.user) == (["END"], 1.0, 5, True, "sess-1")
    assert req.metadata == {"user_id": "sess-1"} and req.extra == {"service_tier": "auto"}
    assert req.reasoning == Reasoning(effort="none")
    adaptive = A.decode_request(body(user("x"), thinking={"type": "adaptive"})).reasoning
    assert adaptive == Reasoning(effort="medium", include_thoughts=True)
    assert A.decode_request(body(user("x"), output_config={"effort": "low"})).reasoning == Reasoning(effort="low")
    assert A.decode_request(body(user("x"), tool_choice={"type": "any"})).tool_choice == ToolChoice("required")
    assert A.decode_request(body(user("x"), tool_choice={"type": "none"})).tool_choice == ToolChoice("none")


def test_anthropic_signatures_the_gateway_minted_are_recognised_and_never_sent_upstream() -> None:
    minted = A.gateway_signature("thought from gemini")
    assert minted.startswith(A.SIGNATURE_PREFIX) and minted == A.gateway_signature("thought from gemini")
    history = body(user("q"), assistant([
        {"type": "thinking", "thinking": "thought from gemini", "signature": minted},
        {"type": "thinking", "thinking": "claude's own", "signature": SIG},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "a"},
    ]), user("more"))  # fmt: skip
    parts = A.decode_request(history).messages[1].parts
    assert parts[:3] == [ThinkingPart("thought from gemini", minted, A.GATEWAY_SOURCE),
                         ThinkingPart("claude's own", SIG, "anthropic"),
                         ThinkingPart("", "opaque", "anthropic", redacted=True)]  # fmt: skip
    sent = A.encode_request(A.decode_request(history))["messages"][1]["content"]
    assert sent == [{"type": "thinking", "thinking": "claude's own", "signature": SIG},
                    {"type": "redacted_thinking", "data": "opaque"}, {"type": "text", "text": "a"}]  # fmt: skip


def test_anthropic_unrepresentable_blocks_travel_whole_to_anthropic_and_nowhere_else() -> None:
    doc = {
        "type": "document",
        "source": {"type": "file", "file_id": "file_011"},
        "cache_control": {"type": "ephemeral"},
    }
    img = {"type": "image", "source": {"type": "file", "file_id": "file_012"}}
    req = A.decode_request(body(user([doc, img, {"type": "text", "text": "summarise"}])))
    assert A.encode_request(req)["messages"][0]["content"] == [doc, img, {"type": "text", "text": "summarise"}]
    assert O.encode_request(req)["messages"][0]["content"] == "summarise"


# --- encoding requests -----------------------------------------------------------------


def simple(model: str = "claude-sonnet-4-5", **kw: Any) -> Request:
    return Request(model, [Message("user", [TextPart("hi")])], **kw)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-3-haiku-20240307", 4096),
        ("claude-3-5-sonnet-20241022", 8192),
        ("claude-3-7-sonnet-20250219", 64000),
        ("claude-opus-4-20250514", 32000),
        ("claude-opus-4-1-20250805", 32000),
        ("claude-opus-4-5", 64000),
        ("claude-sonnet-4-5-20250929", 64000),
        ("claude-haiku-4-5", 64000),
        ("deepseek-chat", A.FALLBACK_MAX_TOKENS),
    ],
)
def test_anthropic_default_max_tokens_per_model(model: str, expected: int) -> None:
    assert A.default_max_tokens(model) == expected == A.encode_request(simple(model))["max_tokens"]
    assert A.encode_request(simple(model, max_tokens=77))["max_tokens"] == 77


@pytest.mark.parametrize(
    ("model", "reasoning", "max_tokens", "wire"),
    [
        ("claude-sonnet-4-5", Reasoning(effort="low"), 8000,
         {"max_tokens": 8000, "thinking": {"type": "enabled", "budget_tokens": 1024}}),
        ("claude-sonnet-4-5", Reasoning(effort="minimal"), 8000,
         {"max_tokens": 8000, "thinking": {"type": "enabled", "budget_tokens": 1024}}),
        ("claude-opus-4-1", Reasoning(effort="max"), 8000,
         {"max_tokens": 24384, "thinking": {"type": "enabled", "budget_tokens": 16384}}),
        ("claude-sonnet-4-5", Reasoning(budget_tokens=500), 600,
         {"max_tokens": 1624, "thinking": {"type": "enabled", "budget_tokens": 1024}}),
        ("claude-3-7-sonnet-latest", Reasoning(effort="medium", include_thoughts=False), None,
         {"max_tokens": 64000, "thinking": {"type": "enabled", "budget_tokens": 2048, "display": "omitted"}}),
        ("claude-opus-4-7", Reasoning(effort="high"), 8000,
         {"max_tokens": 8000, "thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}}),
        ("claude-sonnet-4-6", Reasoning(effort="minimal"), 8000,
         {"max_tokens": 8000, "thinking": {"type": "adaptive"}, "output_config": {"effort": "low"}}),
        ("claude-opus-5", Reasoning(budget_tokens=3000), 8000,
         {"max_tokens": 8000, "thinking": {"type": "adaptive"}, "output_config": {"effort": "medium"}}),
        ("claude-5-haiku", Reasoning(effort="xhigh"), 8000,
         {"max_tokens": 8000, "thinking": {"type": "adaptive"}, "output_config": {"effort": "xhigh"}}),
        ("claude-sonnet-4-5", Reasoning(effort="none"), 8000, {"max_tokens": 8000, "thinking": {"type": "disabled"}}),
        ("claude-opus-4-7", Reasoning(budget_tokens=0), 8000, {"max_tokens": 8000, "thinking": {"type": "disabled"}}),
        ("claude-sonnet-4-5", Reasoning(include_thoughts=True), 8000, {"max_tokens": 8000}),
    ],
)  # fmt: skip
def test_anthropic_reasoning_becomes_a_budget_or_adaptive_effort(
    model: str, reasoning: Reasoning, max_tokens: int | None, wire: dict[str, Any]
) -> None:
    out = A.encode_request(simple(model, reasoning=reasoning, max_tokens=max_tokens, temperature=0.5, top_k=3))
    assert {k: out[k] for k in ("max_tokens", "thinking", "output_config") if k in out} == wire
    thinking_on = wire.get("thinking", {}).get("type") in ("enabled", "adaptive")
    assert (
        ("temperature" not in out and "top_k" not in out)
        if thinking_on
        else (out["temperature"], out["top_k"]) == (0.5, 3)
    )
    check_anthropic_rules(out)


def test_anthropic_sampling_never_sends_temperature_and_top_p_together() -> None:
    assert {k: v for k, v in A.encode_request(simple(temperature=1.6, top_p=0.5)).items()
            if k in ("temperature", "top_p")} == {"temperature": 1.0}  # fmt: skip
    assert (
        "temperature" not in A.encode_request(simple(top_p=0.5)) and A.encode_request(simple(top_p=0.5))["top_p"] == 0.5
    )


def test_anthropic_thinking_is_off_when_a_tool_is_forced_or_the_tool_loop_has_no_signed_thinking() -> None:
    tools = [Tool("f")]
    forced = A.encode_request(
        simple(reasoning=Reasoning(effort="high"), tools=tools, tool_choice=ToolChoice("required"))
    )
    assert "thinking" not in forced and forced["tool_choice"] == {"type": "any"}
    loop = [Message("user", [TextPart("go")]), Message("assistant", [ToolCallPart("c1", "f", "{}")]),
            Message("tool", [ToolResultPart("c1", [TextPart("done")])])]  # fmt: skip
    foreign = A.encode_request(Request("claude-sonnet-4-5", loop, tools=tools, reasoning=Reasoning(effort="high")))
    assert "thinking" not in foreign
    check_anthropic_rules(foreign)
    loop[1].parts.insert(0, ThinkingPart("plan", SIG, "anthropic"))
    signed = A.encode_request(Request("claude-sonnet-4-5", loop, tools=tools, reasoning=Reasoning(effort="high")))
    assert signed["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert signed["messages"][1]["content"][0] == {"type": "thinking", "thinking": "plan", "signature": SIG}


@pytest.mark.parametrize(
    ("choice", "parallel", "wire"),
    [
        (ToolChoice("auto"), None, {"type": "auto"}),
        (ToolChoice("required"), False, {"type": "any", "disable_parallel_tool_use": True}),
        (ToolChoice("none"), False, {"type": "none"}),
        (ToolChoice("tool", "f"), None, {"type": "tool", "name": "f"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, True, None),
    ],
)
def test_anthropic_tool_choice_mapping(choice: ToolChoice | None, parallel: bool | None, wire: Any) -> None:
    out = A.encode_request(simple(tools=[Tool("f")], tool_choice=choice, parallel_tool_calls=parallel))
    assert out.get("tool_choice") == wire
    assert "tool_choice" not in A.encode_request(simple(tool_choice=ToolChoice("auto")))  # no tools, no choice


def test_anthropic_tool_ids_are_sanitized_the_same_way_for_calls_and_results() -> None:
    ids = ["call.1:a", "call_1_a", "fc+/=", "", "call_000000000000_ts_CiQBVKhc7w-_AbA"]
    msgs = [Message("user", [TextPart("go")]),
            Message("assistant", [ToolCallPart(i, "f", "{}") for i in ids]),
            Message("tool", [ToolResultPart(i, [TextPart(f"r{n}")]) for n, i in enumerate(reversed(ids))])]  # fmt: skip
    out = A.encode_request(Request("claude-sonnet-4-5", msgs))
    sent = [b["id"] for b in out["messages"][1]["content"]]
    assert all(ID_RULE.match(s) for s in sent) and len(set(sent)) == len(ids)
    assert sent[0] == "call_1_a" and sent[4] == ids[4]  # a valid id (here a Gemini signature id) is untouched
    answers = {b["tool_use_id"]: b["content"] for b in out["messages"][2]["content"]}
    assert [answers[s] for s in sent] == [f"r{len(ids) - 1 - n}" for n in range(len(ids))]
    check_anthropic_rules(out)


def test_anthropic_repairs_histories_anthropic_would_reject() -> None:
    msgs = [
        Message("assistant", [TextPart("Hello! How can I help?")]),
        Message("user", [TextPart("")]),
        Message("user", [TextPart("first"), ImagePart(url="data:image/webp;base64,UklGR")]),
        Message("system", [TextPart("late system prompt")]),
        Message("user", [TextPart("second")]),
        Message("assistant", [ThinkingPart("unsigned"), ThinkingPart("gemini's", "c2ln", "gemini"),
                              TextPart("prefill with trailing space ")]),
    ]  # fmt: skip
    out = A.encode_request(Request("claude-sonnet-4-5", msgs, response_format=ResponseFormat("json_object")))
    assert out["system"] == [{"type": "text", "text": "late system prompt"}, {"type": "text", "text": A.JSON_HINT}]
    assert [(t["role"], [b.get("text") or b["type"] for b in t["content"]]) for t in out["messages"]] == [
        ("user", [A.PLACEHOLDER]),
        ("assistant", ["Hello! How can I help?"]),
        ("user", ["first", "image", "second"]),
        ("assistant", ["prefill with trailing space"]),
    ]
    assert out["messages"][2]["content"][1]["source"] == {"type": "base64", "media_type": "image/webp", "data": "UklGR"}
    check_anthropic_rules(out)


def test_anthropic_encode_request_formats_metadata_and_extra() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    req = simple(response_format=ResponseFormat("json_schema", "x", schema, True), user="u1", stream=True,
                 stop=["a", "b", "c", "d", "e"], extra={"service_tier": "standard_only"},
                 tools=[Tool("f", parameters={"properties": {}}, strict=True)])  # fmt: skip
    out = A.encode_request(req)
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert (out["metadata"], out["stream"], out["stop_sequences"]) == (
        {"user_id": "u1"},
        True,
        ["a", "b", "c", "d", "e"],
    )
    assert out["service_tier"] == "standard_only"
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}, "strict": True}]
    assert A.encode_request(simple(metadata={"user_id": "sess"}))["metadata"] == {"user_id": "sess"}
    assert "metadata" not in A.encode_request(simple(metadata={"team": "x"}))


def _histories() -> st.SearchStrategy[Request]:
    """Alternating histories in the canonical shape Anthropic decodes into."""
    text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12).filter(
        lambda s: s.strip() == s and s.strip() != ""
    )
    tool_id = st.from_regex(r"toolu_[A-Za-z0-9]{1,8}", fullmatch=True)
    args = st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True), st.integers(-5, 5) | text, max_size=3)
    image = st.builds(
        ImagePart, data=st.just(PNG), media_type=st.sampled_from(["image/png", "image/jpeg"])
    ) | st.builds(ImagePart, url=st.just("https://example.com/a.png"))

    @st.composite
    def history(draw: st.DrawFn) -> Request:
        messages: list[Message] = []
        if draw(st.booleans()):
            messages.append(Message("system", [TextPart(t) for t in draw(st.lists(text, min_size=1, max_size=2))]))
        for _ in range(draw(st.integers(1, 3))):
            messages.append(Message("user", draw(st.lists(text.map(TextPart) | image, min_size=1, max_size=3))))
            parts: list[M.Part] = []
            if draw(st.booleans()):
                parts.append(ThinkingPart(draw(text), "sig" + draw(text).encode().hex(), "anthropic"))
            parts += [TextPart(t) for t in draw(st.lists(text, max_size=1))]
            ids = draw(st.lists(tool_id, max_size=2, unique=True))
            parts += [ToolCallPart(i, "f", dumps_str(draw(args))) for i in ids]
            if not parts:
                parts = [TextPart("ok")]
            messages.append(Message("assistant", parts))
            if ids:
                results: list[M.Part] = [
                    ToolResultPart(i, [TextPart(draw(text))], is_error=draw(st.booleans())) for i in ids
                ]
                messages.append(Message("tool", results))
        messages.append(Message("user", [TextPart(draw(text))]))
        return Request(
            model="claude-sonnet-4-5",
            messages=messages,
            tools=[Tool("f", "d", {"type": "object", "properties": {}})],
            tool_choice=draw(st.sampled_from([None, ToolChoice("auto"), ToolChoice("none"), ToolChoice("tool", "f")])),
            max_tokens=draw(st.integers(2048, 64000)),
            temperature=draw(st.sampled_from([None, 0.0, 0.5, 1.0])),
            stop=draw(st.lists(text, max_size=2)),
            include_usage=True,
        )

    return history()


@settings(max_examples=60, deadline=None)
@given(_histories())
def test_anthropic_request_round_trip(req: Request) -> None:
    wire = A.encode_request(req)
    check_anthropic_rules(wire)
    assert A.decode_request(json.loads(json.dumps(wire))) == req


# --- responses -------------------------------------------------------------------------


def test_anthropic_response_from_another_upstream_gets_gateway_signatures() -> None:
    parts: list[M.Part] = [ThinkingPart("pondering"), ThinkingPart("", "enc", "openai_responses", True),
                           ThinkingPart("", "c2ln", "gemini"), TextPart(""), TextPart("hi"), ImagePart(data=PNG),
                           ToolCallPart("call_1", "f", "not json")]  # fmt: skip
    resp = Response("chatcmpl-9", "gpt-x", parts, "stop", Usage(100, 20, cached_tokens=60, reasoning_tokens=5))
    out = A.encode_response(resp)
    SDKMessage.model_validate(out)
    assert out["id"] == "msg_chatcmpl-9" and out["stop_reason"] == "tool_use"
    assert out["content"] == [
        {"type": "thinking", "thinking": "pondering", "signature": A.gateway_signature("pondering")},
        {"type": "text", "text": "hi"},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {}},
    ]
    assert out["usage"] == {"input_tokens": 40, "output_tokens": 20, "cache_creation_input_tokens": 0,
                            "cache_read_input_tokens": 60, "output_tokens_details": {"thinking_tokens": 5}}  # fmt: skip
    # The client sends the thinking back: recognised as the gateway's and not forwarded to Anthropic.
    again = A.decode_request(body(user("q"), {"role": "assistant", "content": out["content"]},
                                  user([{"type": "tool_result", "tool_use_id": "call_1"}])))  # fmt: skip
    thinking = again.messages[1].parts[0]
    assert isinstance(thinking, ThinkingPart) and thinking.source == A.GATEWAY_SOURCE
    assert [b["type"] for b in A.encode_request(again)["messages"][1]["content"]] == ["text", "tool_use"]


def test_anthropic_decode_response_rejects_a_reply_without_content() -> None:
    with pytest.raises(ProviderProtocolError):
        A.decode_response({"type": "message", "id": "m"})


# --- stream decoding -------------------------------------------------------------------


@pytest.mark.parametrize("step", [0, 1, 7])
def test_anthropic_stream_decoder_reads_a_full_stream_split_anywhere(step: int) -> None:
    frames = fa.frames([fa.thinking("Weather twice."), fa.redacted("opaque"), fa.text("Checking."),
                        fa.tool_use("get_weather", {"city": "Paris"}),
                        fa.tool_use("get_weather", {"city": "Tokyo"}, id="toolu_02")],
                       usage_=fa.usage(472, 89, cache_read=100, cache_creation=20, thinking=30))  # fmt: skip
    raw = b"".join(frames)
    chunks = [raw] if not step else [raw[i : i + step] for i in range(0, len(raw), step)]
    events = decode_frames(chunks)
    start = events[0]
    assert start == StreamStart("msg_up1", "claude-up", usage=Usage(592, 1, cached_tokens=100, cache_write_tokens=20))
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    assert starts == [ToolCallStart(0, "toolu_01A", "get_weather"), ToolCallStart(1, "toolu_02", "get_weather")]
    final = Usage(592, 89, cached_tokens=100, cache_write_tokens=20, reasoning_tokens=30)
    assert events[-2:] == [UsageUpdate(final), StreamEnd("tool_calls", final)]
    resp = collect(events)
    assert resp.parts == [
        ThinkingPart("Weather twice.", "EqQBCgIYAhIMsig==", "anthropic"),
        ThinkingPart("", "opaque", "anthropic", redacted=True),
        TextPart("Checking."),
        ToolCallPart("toolu_01A", "get_weather", '{"city": "Paris"}'),
        ToolCallPart("toolu_02", "get_weather", '{"city": "Tokyo"}'),
    ]


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [("end_turn", "stop"), ("max_tokens", "length"), ("refusal", "content_filter"), ("pause_turn", "stop"),
     ("model_context_window_exceeded", "length")],
)  # fmt: skip
def test_anthropic_stream_decoder_stop_reasons(stop_reason: str, finish: str) -> None:
    end = decode_frames(fa.frames("x", stop_reason=stop_reason))[-1]
    assert isinstance(end, StreamEnd) and end.finish_reason == finish
    seq = decode_frames(fa.frames("x", stop_reason="stop_sequence", stop_sequence="END"))[-1]
    assert seq == StreamEnd("stop", Usage(10, 5), "END")


def test_anthropic_stream_decoder_message_delta_usage_is_cumulative_and_may_update_input() -> None:
    frames = fa.frames("hi", usage_=fa.usage(10, 5))[:-2]
    frames.append(fa.event({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                            "usage": {"output_tokens": 3}}))  # fmt: skip
    frames.append(fa.event({"type": "message_delta", "delta": {}, "usage": {"output_tokens": 7, "input_tokens": 12,
                                                                           "cache_read_input_tokens": 4}}))  # fmt: skip
    frames.append(fa.event({"type": "message_stop"}))
    events = decode_frames(frames)
    assert [e.usage.output_tokens for e in events if isinstance(e, UsageUpdate)] == [3, 7]
    assert events[-1] == StreamEnd("stop", Usage(16, 7, cached_tokens=4))


def test_anthropic_stream_decoder_takes_tool_input_sent_whole_at_block_start() -> None:
    whole = [fa.event({"type": "message_start", "message": fa.body([], usage_=fa.usage(1, 1))}),
             fa.event({"type": "content_block_start", "index": 0, "content_block": fa.tool_use("f", {"a": 1})}),
             fa.event({"type": "content_block_stop", "index": 0}),
             fa.event({"type": "content_block_start", "index": 1, "content_block": fa.tool_use("g", {"b": 2}, "t2")}),
             fa.event({"type": "content_block_delta", "index": 1,
                       "delta": {"type": "input_json_delta", "partial_json": '{"b": 3}'}}),
             fa.event({"type": "content_block_stop", "index": 1}),
             fa.event({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 2}}),
             fa.event({"type": "message_stop"})]  # fmt: skip
    calls = [p for p in collect(decode_frames(whole)).parts if isinstance(p, ToolCallPart)]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("f", {"a": 1}), ("g", {"b": 3})]


@pytest.mark.parametrize(
    ("kind", "status", "retryable"),
    [("overloaded_error", 503, True), ("rate_limit_error", 429, True), ("api_error", 502, True),
     ("invalid_request_error", 400, False)],
)  # fmt: skip
def test_anthropic_stream_decoder_raises_on_an_error_event(kind: str, status: int, retryable: bool) -> None:
    decoder = A.StreamDecoder()
    frames = fa.frames("partial", end=False)
    decoder.feed(b"".join(frames))
    with pytest.raises(ProviderHTTPError) as exc:
        decoder.feed(fa.error_event(kind, "Overloaded"))
    assert (exc.value.status, exc.value.retryable) == (status, retryable)
    assert "Overloaded" in exc.value.message


def test_anthropic_stream_decoder_needs_message_stop() -> None:
    decoder = A.StreamDecoder()
    decoder.feed(b"".join(fa.frames("cut short", end=False)))
    with pytest.raises(ProviderProtocolError, match="message_stop"):
        decoder.close()
    with pytest.raises(ProviderProtocolError, match="not JSON"):
        A.StreamDecoder().feed(b"event: message_start\ndata: {oops\n\n")


def test_anthropic_stream_decoder_ignores_pings_and_crlf() -> None:
    raw = b"".join(fa.frames("hi")).replace(b"\n", b"\r\n")
    events = decode_frames([b'event: ping\r\ndata: {"type": "ping"}\r\n\r\n', raw])
    assert [type(e).__name__ for e in events] == ["StreamStart", "TextDelta", "TextDelta", "UsageUpdate", "StreamEnd"]


# --- stream encoding -------------------------------------------------------------------


def test_anthropic_stream_fixture_round_trips_through_decoder_and_encoder() -> None:
    blocks = [
        fa.thinking("Plan: call the tool."),
        fa.text("Let me check."),
        fa.tool_use("get_weather", {"city": "Paris"}),
        fa.tool_use("get_time", {"tz": "CET"}, "toolu_02"),
    ]
    upstream = decode_frames(fa.frames(blocks, usage_=fa.usage(472, 89, cache_read=100)))
    events, snapshot = sdk_stream(encode_events(upstream, request_id="r1"))
    assert snapshot.id == "msg_r1" and snapshot.model == "claude-client"
    got = snapshot.to_dict()
    assert got["content"] == blocks and got["stop_reason"] == "tool_use"
    expected = fa.usage(472, 89, cache_read=100)
    assert {k: got["usage"][k] for k in expected} == expected
    start = events[0]["message"]["usage"]
    assert (start["input_tokens"], start["cache_read_input_tokens"]) == (472, 100)


def test_anthropic_stream_encoder_matches_the_whole_reply_encoding() -> None:
    events: list[StreamEvent] = [
        StreamStart("up", "m", usage=Usage(50)),
        ThinkingDelta("a foreign "), ThinkingDelta("thought"), TextDelta(""), TextDelta("Hi "), TextDelta("there."),
        ToolCallStart(0, "call_1", "f"), ToolCallDelta(0, '{"x":'), ToolCallDelta(0, " 1}"),
        UsageUpdate(Usage(50, 9)), StreamEnd("stop", Usage(50, 12, cached_tokens=20)),
    ]  # fmt: skip
    _, snapshot = sdk_stream(encode_events(events, model="m"))
    whole = A.encode_response(collect(events))
    got = snapshot.to_dict()
    assert got["content"] == whole["content"]
    assert whole["content"][0]["signature"] == A.gateway_signature("a foreign thought")
    assert (got["stop_reason"], whole["stop_reason"]) == ("tool_use", "tool_use")
    assert {k: got["usage"][k] for k in whole["usage"]} == whole["usage"]
    assert whole["usage"] == {"input_tokens": 30, "output_tokens": 12, "cache_creation_input_tokens": 0,
                              "cache_read_input_tokens": 20}  # fmt: skip


def test_anthropic_stream_encoder_keeps_anthropic_signatures_and_thinking_block_boundaries() -> None:
    events: list[StreamEvent] = [
        StreamStart("msg_1", "m"),
        ThinkingDelta("first", source="anthropic"), ThinkingDelta(signature="SIG1", source="anthropic"),
        ThinkingDelta("second", source="anthropic"), ThinkingDelta(signature="SIG2", source="anthropic"),
        ThinkingDelta(signature="redacted-data", source="anthropic", redacted=True),
        ThinkingDelta(signature="gemini-sig", source="gemini"),
        ThinkingDelta(signature="enc", source="openai_responses", redacted=True),
        ThinkingDelta(signature="only-a-signature", source="anthropic"),
        StreamEnd(),
    ]  # fmt: skip
    _, snapshot = sdk_stream(encode_events(events))
    assert snapshot.to_dict()["content"] == [
        {"type": "thinking", "thinking": "first", "signature": "SIG1"},
        {"type": "thinking", "thinking": "second", "signature": "SIG2"},
        {"type": "redacted_thinking", "data": "redacted-data"},
        {"type": "thinking", "thinking": "", "signature": "only-a-signature"},
    ]
    assert snapshot.stop_reason == "end_turn"


def test_anthropic_stream_encoder_message_start_without_stream_start_and_stop_sequence() -> None:
    raw = encode_events([TextDelta("1, 2"), StreamEnd("stop", None, "END")], request_id="")
    events, snapshot = sdk_stream(raw)
    assert events[0]["message"]["id"] == "msg_llmproxy" and events[0]["message"]["usage"]["input_tokens"] == 0
    assert (snapshot.stop_reason, snapshot.stop_sequence, snapshot.content[0].text) == ("stop_sequence", "END", "1, 2")
    length = sdk_stream(encode_events([StreamStart("x", "m"), TextDelta("a"), StreamEnd("length")]))[1]
    assert length.stop_reason == "max_tokens"
    refusal = sdk_stream(encode_events([StreamStart("x", "m"), StreamEnd("content_filter")]))[1]
    assert (refusal.stop_reason, refusal.content) == ("refusal", [])


def test_anthropic_stream_encoder_error_event_is_the_anthropic_error_body() -> None:
    encoder = A.StreamEncoder(model="m", include_usage=True)
    head = encoder.encode(StreamStart("x", "m")) + encoder.encode(TextDelta("par"))
    raw = head + encoder.error(ProviderHTTPError("overloaded_error: Overloaded", upstream_status=529))
    events, _ = sdk_stream(raw)
    assert events[-1] == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "overloaded_error: Overloaded"},
    }
    anthropic.types.ErrorResponse.model_validate(events[-1])
    assert encoder.encode(TextDelta("after")) == b"" and encoder.encode(StreamEnd()) == b""


# --- other upstreams -> Anthropic stream: the traps of wire-formats section 3 ----------


def openai_events(*chunks: dict[str, Any], usage: bool = True) -> list[StreamEvent]:
    raw = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks)
    if usage:
        tail = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
                "usage": fo.usage(30, 12)}  # fmt: skip
        raw += f"data: {json.dumps(tail)}\n\n".encode()
    decoder = O.StreamDecoder()
    return decoder.feed(raw + b"data: [DONE]\n\n") + decoder.close()


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip


def call(index: int, id: str | None = None, name: str | None = None, args: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if id:
        out |= {"id": id, "type": "function"}
        out["function"]["name"] = name
    return out


def tool_inputs(snapshot: Any) -> list[tuple[str, str, dict[str, Any]]]:
    return [(b.id, b.name, b.input) for b in snapshot.content if b.type == "tool_use"]


def test_gemini_whole_function_calls_reach_anthropic_clients_with_their_arguments() -> None:
    """litellm#25836/#25561: content_block_start had input {} and no input_json_delta followed."""
    chunks = fg.chunks(["Let me check."], calls=[fg.call_part("get_weather", {"city": "Paris"}),
                                                 fg.call_part("get_time", {"tz": "CET"}, id="native-1")])  # fmt: skip
    decoder = G.StreamDecoder()
    events = [e for c in fg.sse_frames(chunks) for e in decoder.feed(c)] + decoder.close()
    raw_events, snapshot = sdk_stream(encode_events(events))
    inputs = tool_inputs(snapshot)
    assert [(n, i) for _, n, i in inputs] == [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})]
    deltas = [e for e in raw_events if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"]
    assert len(deltas) == 2  # one whole delta per call
    assert snapshot.stop_reason == "tool_use" and snapshot.content[0].text == "Let me check."


def test_openai_parallel_tool_calls_become_sequential_tool_use_blocks() -> None:
    events = openai_events(chunk({"role": "assistant", "content": ""}), chunk({"content": "Both."}),
                           chunk({"tool_calls": [call(0, "call_a", "f")]}),
                           chunk({"tool_calls": [call(0, args='{"n": ')]}), chunk({"tool_calls": [call(0, args="1}")]}),
                           chunk({"tool_calls": [call(1, "call_b", "g")]}),
                           chunk({"tool_calls": [call(1, args='{"m": 2}')]}), chunk({}, "tool_calls"))  # fmt: skip
    raw_events, snapshot = sdk_stream(encode_events(events))
    assert tool_inputs(snapshot) == [("call_a", "f", {"n": 1}), ("call_b", "g", {"m": 2})]
    final = raw_events[-2]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert (final["usage"]["input_tokens"], final["usage"]["output_tokens"]) == (30, 12)


def test_interleaved_parallel_tool_call_fragments_lose_nothing() -> None:
    events = openai_events(chunk({"tool_calls": [call(0, "call_a", "f"), call(1, "call_b", "g")]}),
                           chunk({"tool_calls": [call(1, args='{"m"')]}), chunk({"tool_calls": [call(0, args='{"n"')]}),
                           chunk({"tool_calls": [call(0, args=": 1}"), call(1, args=": 2}")]}),
                           chunk({"tool_calls": [call(2, "call_c", "h", '{"o": 3}')]}),
                           chunk({}, "tool_calls"))  # fmt: skip
    _, snapshot = sdk_stream(encode_events(events))
    assert tool_inputs(snapshot) == [("call_a", "f", {"n": 1}), ("call_b", "g", {"m": 2}), ("call_c", "h", {"o": 3})]


def test_parallel_calls_that_all_say_index_0_are_split() -> None:
    """litellm#33678: every call at index 0 merged the arguments into '{...}{...}' and said 'stop'."""
    events = openai_events(chunk({"tool_calls": [call(0, "call_a", "f", '{"n": 1}')]}),
                           chunk({"tool_calls": [call(0, "call_b", "f", '{"n": 2}')]}), chunk({}, "stop"))  # fmt: skip
    _, snapshot = sdk_stream(encode_events(events))
    assert tool_inputs(snapshot) == [("call_a", "f", {"n": 1}), ("call_b", "f", {"n": 2})]
    assert snapshot.stop_reason == "tool_use"


def test_empty_deltas_open_no_blocks_and_text_after_a_tool_closes_it() -> None:
    events = openai_events(chunk({"role": "assistant", "content": ""}), chunk({"content": ""}),
                           chunk({"reasoning_content": "think"}), chunk({"content": "a"}),
                           chunk({"tool_calls": [call(0, "call_a", "f")]}), chunk({"content": "b"}),
                           chunk({}, "stop"))  # fmt: skip
    raw_events, snapshot = sdk_stream(encode_events(events))
    assert [b["content_block"]["type"] for b in raw_events if b["type"] == "content_block_start"] == [
        "thinking", "text", "tool_use", "text"]  # fmt: skip
    assert snapshot.content[0].signature == A.gateway_signature("think")
    assert snapshot.content[2].input == {} and snapshot.content[3].text == "b"


def test_stream_without_usage_still_ends_with_a_valid_message_delta() -> None:
    events = openai_events(chunk({"content": "hi"}), chunk({}, "length"), usage=False)
    raw_events, snapshot = sdk_stream(encode_events(events))
    assert raw_events[-2]["usage"]["output_tokens"] == 0 and snapshot.stop_reason == "max_tokens"


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "status", "kind"),
    [
        (InvalidRequest("bad"), 400, "invalid_request_error"),
        (LLMProxyError("no key", status=401), 401, "authentication_error"),
        (LLMProxyError("forbidden", status=403), 403, "permission_error"),
        (LLMProxyError("no such model", status=404), 404, "not_found_error"),
        (RequestTooLarge("too big"), 413, "request_too_large"),
        (LimitExceeded("slow down", retry_after=3), 429, "rate_limit_error"),
        (LLMProxyError("boom"), 500, "api_error"),
        (ProviderHTTPError("upstream down", upstream_status=500), 502, "api_error"),
        (NoRouteAvailable("all cooling down"), 503, "overloaded_error"),
        (ProviderHTTPError("overloaded", upstream_status=529), 503, "overloaded_error"),
        (ProviderTimeout("slow"), 504, "timeout_error"),
    ],
)
def test_anthropic_error_body(err: LLMProxyError, status: int, kind: str) -> None:
    got_status, body_ = A.error_body(err)
    assert (got_status, body_) == (status, {"type": "error", "error": {"type": kind, "message": err.message}})
    if kind != "request_too_large":  # Anthropic's own 413 type is missing from the SDK's union
        anthropic.types.ErrorResponse.model_validate(body_)


# --- the anthropic SDK against the codec, over loopback HTTP ---------------------------


def client(fake: FakeUpstream) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.url, api_key="t", max_retries=0, _strict_response_validation=True)


def test_anthropic_decodes_what_the_sdk_sends(fake: FakeUpstream) -> None:
    fake.queue("/v1/messages", fa.response("ok"))
    client(fake).messages.create(
        model="claude-haiku-4-5", max_tokens=2048,
        system=[{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[{"name": "f", "input_schema": {"type": "object", "properties": {}}}],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                      "data": PNG}}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": SIG},
                                              {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"}]},
        ],
        metadata={"user_id": "u"},
    )  # fmt: skip
    sent = fake.last().body
    req = A.decode_request(sent)
    assert req.reasoning == Reasoning(budget_tokens=1024, include_thoughts=True) and req.parallel_tool_calls is False
    system = req.messages[0].parts[0]
    assert isinstance(system, TextPart) and system.provider_metadata == {
        "anthropic": {"cache_control": {"type": "ephemeral"}}
    }
    assert [m.role for m in req.messages] == ["system", "user", "assistant", "tool"]
    assert A.encode_request(req) == sent


def test_anthropic_sdk_reads_our_stream_reply_and_error(fake: FakeUpstream) -> None:
    events = openai_events(chunk({"reasoning_content": "hmm"}), chunk({"content": "Calling."}),
                           chunk({"tool_calls": [call(0, "call_a", "f", '{"n": 1}')]}),
                           chunk({}, "tool_calls"))  # fmt: skip
    fake.queue("/v1/messages", Stream([encode_events(events, model="claude-haiku-4-5")]))
    with client(fake).messages.stream(model="claude-haiku-4-5", max_tokens=100,
                                      messages=[{"role": "user", "content": "go"}]) as s:  # fmt: skip
        final = s.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use"]
    assert final.content[2].input == {"n": 1} and final.usage.input_tokens == 30  # type: ignore[union-attr]
    fake.queue("/v1/messages", Reply(A.encode_response(collect(events))))
    whole = client(fake).messages.create(model="m", max_tokens=100, messages=[{"role": "user", "content": "go"}])
    assert whole.model_dump(exclude_none=True)["content"] == final.model_dump(exclude_none=True)["content"]
    status, err = A.error_body(ProviderHTTPError("overloaded", upstream_status=529))
    fake.queue("/v1/messages", Reply(err, status=529))
    with pytest.raises(anthropic.InternalServerError) as exc:
        client(fake).messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "go"}])
    assert exc.value.status_code == 529 and "overloaded" in str(exc.value)
    head = A.StreamEncoder(model="m")
    raw = head.encode(StreamStart("x", "m")) + head.encode(TextDelta("a")) + head.error(ProviderTimeout("slow"))
    fake.queue("/v1/messages", Stream([raw]))
    with (
        pytest.raises(anthropic.APIStatusError, match="slow"),
        client(fake).messages.stream(model="m", max_tokens=1, messages=[{"role": "user", "content": "go"}]) as s,
    ):
        s.get_final_message()
    assert status == 503


def test_anthropic_passthrough_drops_only_thinking_the_gateway_signed() -> None:
    """Sent back to Anthropic, a gateway signature would be refused as invalid."""
    ours = {"type": "thinking", "thinking": "t", "signature": A.gateway_signature("t")}
    theirs = {"type": "thinking", "thinking": "u", "signature": "EqQBCgIYAhIMsig=="}
    call = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
    wire = body(user("x"), assistant([theirs, call]), user("y"), assistant([ours]), user("z"),
                assistant([ours, {"type": "text", "text": "ok"}]), user("w"))  # fmt: skip
    out = A.passthrough_body(wire)
    assert [m["content"] for m in out["messages"] if m["role"] == "assistant"] == [
        [theirs, call], [{"type": "text", "text": "ok"}]]  # fmt: skip
    assert len(out["messages"]) == 6  # the thinking-only turn is gone
    plain = body(user("x"), assistant([theirs, call]), user("y"))
    assert A.passthrough_body(plain) is plain  # nothing of ours: not even copied


# --- prompt-cache write split ------------------------------------------------------------

_SPLIT = {"ephemeral_5m_input_tokens": 30, "ephemeral_1h_input_tokens": 70}


def test_the_one_hour_cache_write_split_is_decoded_from_replies_and_streams() -> None:
    wire = fa.body(usage_={**fa.usage(10, 5, cache_read=40, cache_creation=100), "cache_creation": _SPLIT})
    SDKMessage.model_validate(wire)
    u = A.decode_response(wire).usage
    assert (u.input_tokens, u.cached_tokens, u.cache_write_tokens, u.cache_write_1h_tokens) == (150, 40, 100, 70)
    events = decode_frames(fa.frames(usage_={**fa.usage(10, 5, cache_creation=100), "cache_creation": _SPLIT}))
    end = events[-1]
    assert isinstance(end, M.StreamEnd) and end.usage is not None and end.usage.cache_write_1h_tokens == 70
    # No split reported: every write is a 5-minute one (0 one-hour tokens); a split above the total is capped.
    assert A.decode_response(fa.body(usage_=fa.usage(cache_creation=100))).usage.cache_write_1h_tokens == 0
    over = fa.usage(cache_creation=10) | {"cache_creation": {"ephemeral_1h_input_tokens": 99}}
    assert A.decode_response(fa.body(usage_=over)).usage.cache_write_1h_tokens == 10


def test_the_one_hour_cache_write_split_is_encoded_for_anthropic_clients() -> None:
    resp = M.Response("r1", "m", [M.TextPart("hi")], "stop", M.Usage(200, 5, cached_tokens=40, cache_write_tokens=100,
                                                                       cache_write_1h_tokens=70))  # fmt: skip
    out = A.encode_response(resp)
    SDKMessage.model_validate(out)
    assert out["usage"]["cache_creation_input_tokens"] == 100 and out["usage"]["input_tokens"] == 60
    assert out["usage"]["cache_creation"] == _SPLIT
    plain_writes = A.encode_response(M.Response("r2", "m", [M.TextPart("hi")], usage=M.Usage(200, 5, 0, 100)))
    assert "cache_creation" not in plain_writes["usage"]
