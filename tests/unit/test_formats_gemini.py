"""The Gemini codec: golden fixtures both ways, the wire-format traps, streams checked by google-genai."""

from __future__ import annotations

import base64
import json
import re
import warnings
from pathlib import Path
from typing import Any

import pydantic
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from hypothesis import given, settings
from hypothesis import strategies as st

from llmproxy._json import loads
from llmproxy.errors import (
    InvalidRequest,
    LimitExceeded,
    LLMProxyError,
    ModelNotFound,
    ProviderError,
    ProviderHTTPError,
    ProviderProtocolError,
    ProviderTimeout,
    RequestTooLarge,
)
from llmproxy.formats import gemini as G
from llmproxy.formats import gemini_schema, openai_chat
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
from tests.fakes import gemini as fg
from tests.fakes.server import FakeUpstream, Reply, Stream
from tests.golden import plain, unplain

FIXTURES = Path(__file__).parent.parent / "fixtures" / "gemini"
RANDOM_ID = re.compile(r"call_[0-9a-f]{12}")
ID_RULE = re.compile(r"^[a-zA-Z0-9_-]+$")
SIG = "CiQBVKhc7w+/AbA="  # standard base64 with + and /, as Gemini sends it
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def names(prefix: str) -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob(f"{prefix}_*.json"))


def fixed_ids(value: Any) -> Any:
    """Random call-id hex replaced by zeros, as the fixtures store it."""
    return json.loads(RANDOM_ID.sub("call_000000000000", json.dumps(value)))


def sdk_validate(body: dict[str, Any]) -> types.GenerateContentResponse:
    """google-genai's own type (extra='forbid'); an unknown enum value warns, so warnings fail."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return types.GenerateContentResponse.model_validate(body)


def walk(node: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(node, dict):
        out.append(node)
        for v in node.values():
            out += walk(v)
    elif isinstance(node, list):
        for v in node:
            out += walk(v)
    return out


# --- golden fixtures -------------------------------------------------------------------


@pytest.mark.parametrize("name", names("response"))
def test_gemini_decodes_golden_responses(name: str) -> None:
    case = fixture(name)
    assert fixed_ids(plain(G.decode_response(case["wire"]))) == case["canonical"]


@pytest.mark.parametrize("name", names("response"))
def test_gemini_encodes_golden_responses_that_the_sdk_accepts(name: str) -> None:
    case = fixture(name)
    encoded = G.encode_response(unplain(case["canonical"]))
    assert encoded == case["encoded"]
    sdk_validate(encoded)
    assert sdk_validate(case["wire"]).response_id == encoded["responseId"]


def test_gemini_golden_response_fixtures_cover_every_finish_class() -> None:
    finishes = {fixture(n)["canonical"].get("finish_reason", "stop") for n in names("response")}
    assert finishes == {"stop", "tool_calls", "length", "content_filter"}


@pytest.mark.parametrize("name", names("request_sdk"))
def test_gemini_decodes_golden_sdk_requests(name: str) -> None:
    case = fixture(name)
    req = G.decode_request(case["wire"], model=case["model"])
    assert plain(req) == case["canonical"]
    assert G.encode_request(req) == case["encoded"]


@pytest.mark.parametrize("name", names("request_history"))
def test_gemini_encodes_golden_histories(name: str) -> None:
    case = fixture(name)
    assert G.encode_request(unplain(case["canonical"])) == case["wire"]


def test_gemini_stream_fixture_decodes_and_reencodes() -> None:
    case = fixture("stream_thoughts_text_calls")
    decoder = G.StreamDecoder()
    events = [e for c in case["chunks"] for e in decoder.feed(f"data: {json.dumps(c)}\r\n\r\n".encode())]
    events += decoder.close()
    assert fixed_ids(plain(events)) == case["events"]
    encoder = G.StreamEncoder(model="gemini-3-flash", request_id="r1")
    out = b"".join(encoder.encode(e) for e in unplain(case["events"]))
    chunks = [json.loads(ev.data) for ev in SSEParser().feed(out)]
    assert chunks == case["encoded"]
    for c in chunks:
        sdk_validate(c)


# --- requests --------------------------------------------------------------------------


def test_gemini_decode_request_takes_the_model_from_the_path() -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert G.decode_request(body, model="gemini-2.5-flash").model == "gemini-2.5-flash"
    assert G.decode_request({**body, "model": "models/gemini-x"}).model == "gemini-x"
    with pytest.raises(InvalidRequest) as exc:
        G.decode_request(body)
    assert exc.value.param == "model"
    assert "model" not in G.encode_request(G.decode_request(body, model="gemini-x"))


def test_gemini_decode_request_rejects_unknown_parts_by_name() -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}, {"executableCode": {"code": "1"}}]}]}
    with pytest.raises(InvalidRequest) as exc:
        G.decode_request(body, model="m")
    assert "contents[0].parts[1]" in exc.value.message and "executableCode" in exc.value.message
    status, err = G.error_body(exc.value)
    assert (status, err["error"]["status"], err["error"]["code"]) == (400, "INVALID_ARGUMENT", 400)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"contents": []}, "contents"),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents[0].role"),
        ({"contents": [{"role": "user", "parts": "hi"}]}, "contents[0].parts"),
        ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"topK": 2.5}}, "generationConfig.topK"),
        ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"temperature": "hot"}},
         "generationConfig.temperature"),
    ],
)  # fmt: skip
def test_gemini_decode_request_names_the_bad_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        G.decode_request(body, model="m")
    assert exc.value.param == param


def test_gemini_function_responses_pair_with_calls_by_name_and_order() -> None:
    body = {"contents": [
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [
            {"functionCall": {"name": "f", "args": {"n": 1}}},
            {"functionCall": {"name": "g", "args": {}}},
            {"functionCall": {"name": "f", "args": {"n": 2}}},
        ]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "f", "response": {"v": 1}}},
            {"functionResponse": {"name": "f", "response": {"v": 2}}},
            {"functionResponse": {"name": "g", "response": {"result": "ok"}}},
        ]},
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"n": 3}, "id": "native-7"}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}, {"text": "and now?"}]},
    ]}  # fmt: skip
    req = G.decode_request(body, model="gemini-2.5-flash")
    calls = [p for m in req.messages for p in m.parts if isinstance(p, ToolCallPart)]
    results = [p for m in req.messages for p in m.parts if isinstance(p, ToolResultPart)]
    by_id = {c.id: loads(c.arguments) for c in calls}
    assert [by_id[r.tool_call_id] for r in results] == [{"n": 1}, {"n": 2}, {}, {"n": 3}]
    assert len({c.id for c in calls}) == 4 and all(ID_RULE.match(c.id) for c in calls)
    assert results[2].content == [TextPart("ok")] and results[3].tool_call_id == "native-7"
    assert [m.role for m in req.messages] == ["user", "assistant", "tool", "assistant", "tool", "user"]
    again = G.decode_request(body, model="gemini-2.5-flash")
    assert [c.id for c in calls] == [p.id for m in again.messages for p in m.parts if isinstance(p, ToolCallPart)]
    # The native id goes back upstream on both sides of the pair.
    wire = G.encode_request(req)
    assert wire["contents"][3]["parts"][0]["functionCall"]["id"] == "native-7"
    assert wire["contents"][4]["parts"][0]["functionResponse"]["id"] == "native-7"


def test_gemini_tool_results_go_back_in_call_order_in_one_user_turn() -> None:
    req = Request("gemini-2.5-flash", [
        Message("user", [TextPart("hi")]),
        Message("assistant", [ToolCallPart("a", "first", "{}"), ToolCallPart("b", "second", "{}")]),
        Message("tool", [ToolResultPart("b", [TextPart("[1, 2]")])]),
        Message("tool", [ToolResultPart("a", [TextPart('{"ok": true}')])]),
    ])  # fmt: skip
    turn = G.encode_request(req)["contents"][-1]
    assert turn["role"] == "user"
    assert [p["functionResponse"] for p in turn["parts"]] == [
        {"name": "first", "response": {"ok": True}},
        {"name": "second", "response": {"result": "[1, 2]"}},
    ]


def test_gemini_tool_result_for_an_unknown_call_is_a_400() -> None:
    req = Request("gemini-x", [Message("user", [TextPart("hi")]), Message("tool", [ToolResultPart("nope")])])
    with pytest.raises(InvalidRequest, match="nope"):
        G.encode_request(req)


def test_gemini_images_in_tool_results_are_kept() -> None:
    """litellm PR #23759: images inside tool results were silently dropped on the way to Gemini."""
    msgs = [
        Message("user", [TextPart("screenshot please")]),
        Message("assistant", [ToolCallPart("c1", "screenshot", "{}")]),
        Message("tool", [ToolResultPart("c1", [ImagePart(data=PNG, media_type="image/png")])]),
    ]
    g3 = G.encode_request(Request("gemini-3-pro-preview", msgs))["contents"][-1]["parts"]
    assert g3 == [{"functionResponse": {"name": "screenshot", "response": {},
                                         "parts": [{"inlineData": {"mimeType": "image/png", "data": PNG}}]}}]  # fmt: skip
    g25 = G.encode_request(Request("gemini-2.5-flash", msgs))["contents"][-1]["parts"]
    assert g25[1] == {"inlineData": {"mimeType": "image/png", "data": PNG}}
    back = G.decode_request(G.encode_request(Request("gemini-3-pro-preview", msgs)), model="m").messages[-1].parts[0]
    assert isinstance(back, ToolResultPart) and back.content == [ImagePart(data=PNG, media_type="image/png")]


def test_gemini_decodes_multimodal_function_responses() -> None:
    body = {"contents": [
        {"role": "model", "parts": [{"functionCall": {"name": "shot", "args": {}}}]},
        {"role": "user", "parts": [{"function_response": {"name": "shot", "response": {"output": "done"},
                                     "parts": [{"inline_data": {"mime_type": "image/png", "data": PNG}}]}}]},
    ]}  # fmt: skip
    result = G.decode_request(body, model="m").messages[-1].parts[0]
    assert isinstance(result, ToolResultPart)
    assert result.content == [TextPart("done"), ImagePart(data=PNG, media_type="image/png")]


def test_gemini_tool_schemas_are_stripped_of_what_gemini_rejects() -> None:
    """litellm#14330/#6459: additionalProperties, default, title, $defs -> 'Unknown name'."""

    class Unit(pydantic.BaseModel):
        name: str = pydantic.Field(default="c", title="Name", examples=["c"])

    class Args(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        city: str
        unit: Unit | None = None
        days: list[int] = []
        mode: int | str = 1

    schema = {**Args.model_json_schema(), "$schema": "https://json-schema.org/draft/2020-12/schema", "strict": True}
    req = Request("gemini-2.5-flash", [Message("user", [TextPart("x")])], tools=[Tool("f", "d", schema, strict=True)])
    params = G.encode_request(req)["tools"][0]["functionDeclarations"][0]["parameters"]
    banned = {"additionalProperties", "$schema", "default", "title", "examples", "strict", "$defs", "$ref"}
    for node in walk(params):
        keys = set(node) - ({"properties"} if "properties" in node else set())
        assert not keys & banned, node
    props = params["properties"]
    assert props["unit"]["nullable"] is True and props["unit"]["properties"]["name"] == {"type": "STRING"}
    assert props["days"] == {"type": "ARRAY", "items": {"type": "INTEGER"}}
    assert props["mode"] == {"anyOf": [{"type": "INTEGER"}, {"type": "STRING"}]}
    assert params["required"] == ["city"]


@pytest.mark.parametrize(
    ("schema", "cleaned"),
    [
        ({"type": "integer", "enum": [1, 2]}, {"type": "INTEGER"}),
        ({"enum": ["a", None]}, {"enum": ["a"], "type": "STRING", "nullable": True}),
        ({"const": "x"}, {"enum": ["x"], "type": "STRING"}),
        ({"type": ["string", "null"], "format": "email"}, {"type": "STRING", "nullable": True}),
        ({"type": "string", "format": "date-time"}, {"type": "STRING", "format": "date-time"}),
        ({"type": "array"}, {"type": "ARRAY", "items": {"type": "STRING"}}),
        ({"properties": {"a": {"type": "string"}}, "required": ["a", "zz"]},
         {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}, "required": ["a"]}),
        ({"allOf": [{"properties": {"a": {"type": "string"}}}, {"properties": {"b": {"type": "number"}},
                                                                  "required": ["b"]}]},
         {"type": "OBJECT", "properties": {"a": {"type": "STRING"}, "b": {"type": "NUMBER"}}, "required": ["b"]}),
        ({"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}}, "$ref": "#/$defs/N"},
         {"type": "OBJECT", "properties": {"next": {"type": "OBJECT"}}}),
        ({"oneOf": [{"type": "string"}, {"type": "null"}], "description": "d"},
         {"type": "STRING", "description": "d", "nullable": True}),
    ],
)  # fmt: skip
def test_gemini_schema_clean(schema: dict[str, Any], cleaned: dict[str, Any]) -> None:
    assert gemini_schema.clean(schema) == cleaned
    assert gemini_schema.clean(gemini_schema.to_json_schema(cleaned)) == cleaned


def test_gemini_parameterless_tools_send_no_parameters() -> None:
    req = Request("gemini-x", [Message("user", [TextPart("x")])], tools=[Tool("now")])
    assert G.encode_request(req)["tools"] == [{"functionDeclarations": [{"name": "now"}]}]


def test_gemini_openapi_parameters_decode_to_json_schema() -> None:
    body = {"contents": [{"parts": [{"text": "x"}]}], "tools": [{"function_declarations": [
        {"name": "f", "parameters": {"type": "OBJECT", "properties": {"a": {"type": "STRING", "nullable": True}},
                                     "propertyOrdering": ["a"]}}]}, {"googleSearch": {}}]}  # fmt: skip
    req = G.decode_request(body, model="gemini-2.5-flash")
    assert req.tools[0].parameters == {"type": "object", "properties": {"a": {"type": ["string", "null"]}}}
    assert req.extra["tools"] == [{"googleSearch": {}}]
    assert G.encode_request(req)["tools"][1] == {"googleSearch": {}}


def test_gemini_does_not_send_another_dialects_leftovers() -> None:
    req = Request("gemini-x", [Message("user", [TextPart("x")])],
                  extra={"store": False, "truncation": "auto", "tools": [{"type": "web_search"}],
                         "safety_settings": [{"category": "c", "threshold": "t"}]})  # fmt: skip
    body = G.encode_request(req)
    assert set(body) == {"contents", "safetySettings"}


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        (ToolChoice("auto"), {"mode": "AUTO"}),
        (ToolChoice("none"), {"mode": "NONE"}),
        (ToolChoice("required"), {"mode": "ANY"}),
        (ToolChoice("tool", "f"), {"mode": "ANY", "allowedFunctionNames": ["f"]}),
    ],
)
def test_gemini_tool_choice_both_ways(choice: ToolChoice, wire: dict[str, Any]) -> None:
    req = Request("gemini-x", [Message("user", [TextPart("x")])], tools=[Tool("f")], tool_choice=choice)
    body = G.encode_request(req)
    assert body["toolConfig"] == {"functionCallingConfig": wire}
    assert G.decode_request(body, model="gemini-x").tool_choice == choice


@pytest.mark.parametrize(
    ("model", "reasoning", "config"),
    [
        ("gemini-3-flash-preview", Reasoning(effort="minimal"), {"thinkingLevel": "MINIMAL", "includeThoughts": True}),
        ("gemini-3-pro-preview", Reasoning(effort="none"), {"thinkingLevel": "LOW", "includeThoughts": False}),
        ("gemini-3-pro-preview", Reasoning(effort="xhigh"), {"thinkingLevel": "HIGH", "includeThoughts": True}),
        ("gemini-3-flash", Reasoning(budget_tokens=2048), {"thinkingLevel": "MEDIUM", "includeThoughts": True}),
        ("gemini-2.5-flash", Reasoning(effort="low"), {"thinkingBudget": 1024, "includeThoughts": True}),
        ("gemini-2.5-flash", Reasoning(effort="none"), {"thinkingBudget": 0, "includeThoughts": False}),
        ("gemini-2.5-pro", Reasoning(effort="none"), {"thinkingBudget": 128, "includeThoughts": False}),
        ("gemini-2.5-flash", Reasoning(effort="max", include_thoughts=False),
         {"thinkingBudget": 16384, "includeThoughts": False}),
        ("gemini-2.5-flash", Reasoning(), {"thinkingBudget": -1, "includeThoughts": True}),
        ("my-alias", Reasoning(budget_tokens=500), {"thinkingBudget": 500, "includeThoughts": True}),
    ],
)  # fmt: skip
def test_gemini_reasoning_maps_to_level_or_budget_never_both(
    model: str, reasoning: Reasoning, config: dict[str, Any]
) -> None:
    req = Request(model, [Message("user", [TextPart("x")])], reasoning=reasoning)
    assert G.encode_request(req)["generationConfig"]["thinkingConfig"] == config


def test_gemini_decodes_thinking_config_in_either_spelling() -> None:
    body = {"contents": [{"parts": [{"text": "x"}]}],
            "generation_config": {"thinking_config": {"thinking_budget": -1, "include_thoughts": True}}}  # fmt: skip
    assert G.decode_request(body, model="m").reasoning == Reasoning(include_thoughts=True)
    body["generation_config"] = {"thinkingConfig": {"thinkingLevel": "HIGH"}}
    assert G.decode_request(body, model="m").reasoning == Reasoning(effort="high")


def test_gemini_response_formats() -> None:
    base: dict[str, Any] = {"contents": [{"parts": [{"text": "x"}]}]}
    js = G.decode_request({**base, "generationConfig": {"responseMimeType": "application/json"}}, "m")
    assert js.response_format == ResponseFormat("json_object")
    schema = {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}}
    old = G.decode_request({**base, "generationConfig": {"response_mime_type": "application/json",
                                                         "response_schema": schema}}, "m")  # fmt: skip
    assert old.response_format == ResponseFormat(
        "json_schema", schema={"type": "object", "properties": {"a": {"type": "string"}}}
    )
    enum = G.decode_request(
        {**base, "generationConfig": {"responseMimeType": "text/x.enum", "responseSchema": schema}}, "m"
    )
    assert enum.response_format is None
    assert G.encode_request(enum)["generationConfig"] == {"responseMimeType": "text/x.enum", "responseSchema": schema}


def test_gemini_caps_stop_sequences_at_five() -> None:
    req = Request("gemini-x", [Message("user", [TextPart("x")])], stop=list("abcdefg"))
    assert G.encode_request(req)["generationConfig"]["stopSequences"] == list("abcde")


def test_gemini_thoughts_from_history_go_back_only_with_a_gemini_signature() -> None:
    req = Request("gemini-2.5-flash", [
        Message("user", [TextPart("x")]),
        Message("assistant", [
            ThinkingPart("mine", signature=SIG, source="gemini"),
            ThinkingPart("claude's", signature="EqQBCgIYAhIM", source="anthropic"),
            ThinkingPart("unsigned"),
            ThinkingPart("", signature="opaque", source="anthropic", redacted=True),
            TextPart("answer"),
        ]),
    ])  # fmt: skip
    assert G.encode_request(req)["contents"][1]["parts"] == [
        {"text": "mine", "thought": True, "thoughtSignature": SIG},
        {"text": "answer"},
    ]


def test_gemini_count_tokens_body() -> None:
    req = Request("gemini-x", [Message("user", [TextPart("hi")])])
    assert G.count_tokens_body(req) == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    req.messages.insert(0, Message("system", [TextPart("be brief")]))
    body = G.count_tokens_body(req)["generateContentRequest"]
    assert body["model"] == "models/gemini-x" and body["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert G.decode_request({"generateContentRequest": body}).messages == req.messages


# --- thought signatures ----------------------------------------------------------------


def test_gemini_thought_signature_survives_a_client_that_only_echoes_ids() -> None:
    """litellm#16893/#25322: Gemini 3 answers 400 when a replayed call lost its signature."""
    reply = fg.body(None, calls=[fg.call_part("get_weather", {"city": "Paris"}, signature=SIG),
                                 fg.call_part("get_weather", {"city": "Rome"})])  # fmt: skip
    resp = G.decode_response(reply)
    calls = [p for p in resp.parts if isinstance(p, ToolCallPart)]
    assert all(ID_RULE.match(c.id) for c in calls)
    assert calls[0].provider_metadata == {"gemini": {"thought_signature": SIG}}
    # An OpenAI client sees only ids and echoes them in the next turn.
    oa = openai_chat.encode_response(resp)
    echoed = openai_chat.decode_request({"model": "m", "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": oa["choices"][0]["message"]["tool_calls"]},
        *({"role": "tool", "tool_call_id": c["id"], "content": "20C"} for c in oa["choices"][0]["message"]["tool_calls"]),
    ]})  # fmt: skip
    echoed.model = "gemini-3-pro-preview"
    parts = G.encode_request(echoed)["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == SIG
    assert "thoughtSignature" not in parts[1]  # only the first call of a step is signed
    assert base64.b64decode(parts[0]["thoughtSignature"]) == base64.b64decode(SIG)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=300))
def test_gemini_signature_ids_keep_any_bytes_within_the_id_charset(raw: bytes) -> None:
    sig = base64.b64encode(raw).decode()
    cid = G.call_id_with_signature(sig)
    assert ID_RULE.match(cid)
    assert G.signature_from_id(cid) == sig


def test_gemini_history_without_signatures_uses_the_documented_sentinel() -> None:
    msgs = [
        Message("user", [TextPart("x")]),
        Message("assistant", [ToolCallPart("toolu_1", "f", "{}"), ToolCallPart("toolu_2", "f", "{}")]),
    ]
    g3 = G.encode_request(Request("gemini-3-pro-preview", msgs))["contents"][1]["parts"]
    assert [p.get("thoughtSignature") for p in g3] == [G.SKIP_SIGNATURE, None]
    g2 = G.encode_request(Request("gemini-2.5-flash", msgs))["contents"][1]["parts"]
    assert [p.get("thoughtSignature") for p in g2] == [None, None]


def test_gemini_keeps_a_signature_on_a_part_with_nothing_else() -> None:
    body = {"contents": [{"role": "model", "parts": [{"text": "Done."}, {"thoughtSignature": SIG}]}]}
    req = G.decode_request(body, model="gemini-3-flash")
    assert req.messages[0].parts[1] == TextPart("", {"gemini": {"thought_signature": SIG}})
    assert G.encode_request(req)["contents"][0]["parts"][1] == {"text": "", "thoughtSignature": SIG}
    resp = G.decode_response(fg.body(None, calls=[{"thoughtSignature": SIG}]))
    assert resp.parts == [TextPart("", {"gemini": {"thought_signature": SIG}})]


def test_gemini_reply_drops_signatures_the_sdk_would_reject() -> None:
    resp = Response("r", "m", [
        ThinkingPart("t", signature="EqQBCgIYAhIM+anthropic/sig==", source="anthropic"),
        TextPart("x", {"gemini": {"thought_signature": "not base64!"}}),
        ToolCallPart("toolu_01", "f", "{}", {"gemini": {"thought_signature": "%%%"}}),
    ])  # fmt: skip
    body = G.encode_response(resp)
    sdk_validate(body)
    assert not any("thoughtSignature" in p for p in body["candidates"][0]["content"]["parts"])


# --- responses -------------------------------------------------------------------------

FINISH_CLASSES = {
    "STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter",
    "LANGUAGE": "content_filter", "BLOCKLIST": "content_filter", "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter", "IMAGE_SAFETY": "content_filter", "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter", "IMAGE_OTHER": "content_filter", "MODEL_ARMOR": "content_filter",
}  # fmt: skip


@pytest.mark.parametrize("reason", [r.value for r in types.FinishReason])
def test_gemini_maps_every_sdk_finish_reason(reason: str) -> None:
    resp = G.decode_response(fg.body("x", finish=reason))
    assert resp.finish_reason == FINISH_CLASSES.get(reason, "stop")


@pytest.mark.parametrize("finish", ["stop", "tool_calls", "length", "content_filter", "error"])
def test_gemini_encoded_finish_reasons_are_sdk_values(finish: Any) -> None:
    body = G.encode_response(Response("r", "m", [TextPart("x")], finish))
    assert sdk_validate(body).candidates[0].finish_reason.value in {"STOP", "MAX_TOKENS", "SAFETY", "OTHER"}


def test_gemini_usage_follows_litellms_thoughts_check() -> None:
    separate = G.decode_usage(
        {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 20, "totalTokenCount": 35}
    )
    included = G.decode_usage(
        {"promptTokenCount": 10, "candidatesTokenCount": 25, "thoughtsTokenCount": 20, "totalTokenCount": 35}
    )
    assert (separate.output_tokens, included.output_tokens) == (25, 25)
    assert G.encode_usage(Usage(10, 25, reasoning_tokens=20)) == {
        "promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 35, "thoughtsTokenCount": 20}  # fmt: skip


def test_gemini_decode_response_errors() -> None:
    with pytest.raises(ProviderProtocolError):
        G.decode_response({"candidates": []})
    with pytest.raises(ProviderHTTPError) as exc:
        G.decode_response(fg.error_body(429, "slow down"))
    assert exc.value.upstream_status == 429 and exc.value.retryable


def test_gemini_encode_response_uses_camel_and_snake_free_keys_only() -> None:
    body = G.encode_response(Response("r1", "gemini-x", [TextPart("hi")], usage=Usage(3, 4, cached_tokens=1)))
    assert body["usageMetadata"] == {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7,
                                     "cachedContentTokenCount": 1}  # fmt: skip
    assert sdk_validate(body).text == "hi"


# --- streams ---------------------------------------------------------------------------


def decode_all(data: bytes, step: int = 0) -> list[StreamEvent]:
    d = G.StreamDecoder()
    events: list[StreamEvent] = []
    if step:
        for i in range(0, len(data), step):
            events += d.feed(data[i : i + step])
    else:
        events += d.feed(data)
    return events + d.close()


def sse_bytes(chunks: list[dict[str, Any]], crlf: bool = False) -> bytes:
    return b"".join(fg.sse_frames(chunks, crlf=crlf))


STREAM = fg.chunks(["Let me", " check."], calls=[fg.call_part("get_weather", {"city": "Paris"}, signature=SIG),
                                                 fg.call_part("get_time", {"tz": "CET"})],
                   thoughts=["Two tools."], prompt=41, candidates=20, thoughts_tokens=35)  # fmt: skip


@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("step", [0, 1, 7])
def test_gemini_stream_decoder_reads_sse_with_either_line_end(crlf: bool, step: int) -> None:
    events = decode_all(sse_bytes(STREAM, crlf), step)
    assert isinstance(events[0], StreamStart) and events[0].id == "resp-up1"
    resp = collect(events)
    assert resp.text() == "Let me check."
    assert [p.text for p in resp.parts if isinstance(p, ThinkingPart)] == ["Two tools."]
    calls = [p for p in resp.parts if isinstance(p, ToolCallPart)]
    assert [(c.name, loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"tz": "CET"}),
    ]
    assert G.signature_from_id(calls[0].id) == SIG and calls[0].provider_metadata == {
        "gemini": {"thought_signature": SIG}
    }
    assert resp.finish_reason == "tool_calls"
    assert resp.usage == Usage(41, 55, reasoning_tokens=35)
    # One ToolCallStart and exactly one delta holding the whole arguments (litellm#25836).
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [s.index for s in starts] == [0, 1] and [d.index for d in deltas] == [0, 1]
    assert isinstance(events[-1], StreamEnd)


@pytest.mark.parametrize("step", [0, 1, 5])
def test_gemini_stream_decoder_reads_the_json_array_form(step: int) -> None:
    events = decode_all(b"".join(fg.array_frames(STREAM)), step)
    assert collect(events).text() == "Let me check." and isinstance(events[-1], StreamEnd)
    tricky = [fg.body('braces } ] and "quotes" \\ [{', finish="STOP")]
    assert collect(decode_all(b"".join(fg.array_frames(tricky)), 3)).text() == 'braces } ] and "quotes" \\ [{'


def test_gemini_stream_decoder_needs_a_finish_reason_before_eof() -> None:
    cut = sse_bytes(STREAM[:-1])
    d = G.StreamDecoder()
    d.feed(cut)
    with pytest.raises(ProviderProtocolError, match="ended before it finished"):
        d.close()
    with pytest.raises(ProviderProtocolError):
        decode_all(b"".join(fg.array_frames(STREAM))[:-40])


def test_gemini_stream_decoder_raises_on_an_error_chunk() -> None:
    data = sse_bytes([STREAM[0], fg.error_body(503, "The model is overloaded.")])
    with pytest.raises(ProviderError, match="overloaded") as exc:
        decode_all(data)
    assert isinstance(exc.value, ProviderHTTPError) and exc.value.retryable


def test_gemini_stream_decoder_blocked_prompt_ends_with_content_filter() -> None:
    events = decode_all(sse_bytes([fg.blocked()]))
    assert isinstance(events[-1], StreamEnd) and events[-1].finish_reason == "content_filter"


def test_gemini_stream_decoder_max_tokens() -> None:
    events = decode_all(sse_bytes(fg.chunks(["a", "b"], finish="MAX_TOKENS")))
    assert isinstance(events[-1], StreamEnd) and events[-1].finish_reason == "length"


EVENTS: list[StreamEvent] = [
    StreamStart("up-1", "gpt-up"),
    ThinkingDelta("Considering", source="anthropic"),
    ThinkingDelta(signature="EqQBCgIYAhIM", source="anthropic"),
    TextDelta("Let me "),
    TextDelta("check."),
    ToolCallStart(0, "call_abc", "get_weather"),
    ToolCallDelta(0, '{"city":'),
    ToolCallStart(1, G.call_id_with_signature(SIG), "get_time"),
    ToolCallDelta(0, '"Paris"}'),
    ToolCallDelta(1, "{}"),
    UsageUpdate(Usage(52, 18, cached_tokens=10, reasoning_tokens=8)),
    StreamEnd("tool_calls", Usage(52, 18, cached_tokens=10, reasoning_tokens=8)),
]


def encoded_chunks(events: list[StreamEvent], **kw: Any) -> list[dict[str, Any]]:
    enc = G.StreamEncoder(model="gemini-public", request_id="req-1", **kw)
    out = b"".join(enc.encode(e) for e in events)
    if kw.get("sse", True):
        frames = SSEParser().feed(out)
        assert all(f.event is None for f in frames)
        return [json.loads(f.data) for f in frames]
    value = json.loads(out)
    assert isinstance(value, list)
    return value


@pytest.mark.parametrize("sse", [True, False])
def test_gemini_stream_encoder_chunks_validate_and_end_right(sse: bool) -> None:
    chunks = encoded_chunks(EVENTS, sse=sse)
    parsed = [sdk_validate(c) for c in chunks]
    assert all(c["modelVersion"] == "gemini-public" and c["responseId"] == "req-1" for c in chunks)
    assert [bool(p.candidates[0].finish_reason) for p in parsed] == [False] * (len(chunks) - 1) + [True]
    assert all(p.candidates[0].content.parts for p in parsed)
    assert "".join(p.text or "" for p in parsed) == "Let me check."
    thoughts = [part for p in parsed for part in p.candidates[0].content.parts if part.thought]
    assert [t.text for t in thoughts] == ["Considering"] and thoughts[0].thought_signature is None
    last = parsed[-1]
    assert [(fc.id, fc.name, fc.args) for fc in last.function_calls or []] == [
        ("call_abc", "get_weather", {"city": "Paris"}), (EVENTS[7].id, "get_time", {})]  # fmt: skip
    assert last.candidates[0].content.parts[-1].thought_signature == base64.b64decode(SIG)
    u = last.usage_metadata
    assert u is not None and (u.prompt_token_count, u.candidates_token_count, u.thoughts_token_count) == (52, 10, 8)
    assert u.total_token_count == 52 + 10 + 8 and u.cached_content_token_count == 10
    assert last.candidates[0].finish_reason == types.FinishReason.STOP


def test_gemini_stream_encoder_holds_the_last_part_for_the_final_chunk() -> None:
    chunks = encoded_chunks([StreamStart("x", "m"), TextDelta("a"), TextDelta("b"), StreamEnd("length", Usage(1, 2))])
    assert [c["candidates"][0]["content"]["parts"] for c in chunks] == [[{"text": "a"}], [{"text": "b"}]]
    assert chunks[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"
    empty = encoded_chunks([StreamStart("x", "m"), StreamEnd("content_filter")])
    assert empty == [{"candidates": [{"content": {"role": "model"}, "index": 0, "finishReason": "SAFETY"}],
                      "usageMetadata": {"promptTokenCount": 0, "candidatesTokenCount": 0, "totalTokenCount": 0},
                      "modelVersion": "gemini-public", "responseId": "req-1"}]  # fmt: skip


@pytest.mark.parametrize("sse", [True, False])
def test_gemini_stream_encoder_error_ends_the_stream(sse: bool) -> None:
    enc = G.StreamEncoder(model="m", request_id="r", sse=sse)
    out = enc.encode(StreamStart("x", "m")) + enc.encode(TextDelta("partial"))
    out += enc.error(ProviderTimeout("upstream stream stalled"))
    assert enc.encode(TextDelta("late")) == b""
    items = [json.loads(f.data) for f in SSEParser().feed(out)] if sse else json.loads(out)
    assert items[0]["candidates"][0]["content"]["parts"] == [{"text": "partial"}]
    assert items[-1] == {"error": {"code": 504, "message": "upstream stream stalled", "status": "DEADLINE_EXCEEDED"}}
    if sse:
        assert out.endswith(b"\n\n") and b"[DONE]" not in out


def test_gemini_stream_round_trip_through_the_encoder() -> None:
    events = decode_all(b"".join(fg.sse_frames(encoded_chunks(EVENTS))))
    resp = collect(events)
    assert resp.text() == "Let me check." and resp.finish_reason == "tool_calls"
    calls = [p for p in resp.parts if isinstance(p, ToolCallPart)]
    assert [loads(c.arguments) for c in calls] == [{"city": "Paris"}, {}]
    assert G.signature_from_id(calls[1].id) == SIG


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("err", "status", "grpc"),
    [
        (InvalidRequest("bad"), 400, "INVALID_ARGUMENT"),
        (RequestTooLarge("big"), 400, "INVALID_ARGUMENT"),
        (LimitExceeded("slow", retry_after=11.2), 429, "RESOURCE_EXHAUSTED"),
        (ModelNotFound("no"), 404, "NOT_FOUND"),
        (LLMProxyError("bad key", status=401), 401, "UNAUTHENTICATED"),
        (LLMProxyError("nope", status=403), 403, "PERMISSION_DENIED"),
        (ProviderError("down"), 502, "UNAVAILABLE"),
        (LLMProxyError("busy", status=503), 503, "UNAVAILABLE"),
        (ProviderTimeout("slow"), 504, "DEADLINE_EXCEEDED"),
        (LLMProxyError("bug"), 500, "INTERNAL"),
    ],
)
def test_gemini_error_body(err: LLMProxyError, status: int, grpc: str) -> None:
    got, body = G.error_body(err)
    assert got == status and body["error"]["code"] == status and body["error"]["status"] == grpc
    if err.retry_after:
        assert body["error"]["details"] == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]


# --- google-genai against the fake server --------------------------------------------


def client(fake: FakeUpstream) -> genai.Client:
    return genai.Client(api_key="t", http_options=types.HttpOptions(
        base_url=fake.url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)))  # fmt: skip


def test_gemini_decodes_what_google_genai_sends(fake: FakeUpstream) -> None:
    fake.default("*", Reply(fg.body("ok")))

    class Args(pydantic.BaseModel):
        city: str
        unit: str | None = None

    config = types.GenerateContentConfig(
        system_instruction="be brief", temperature=0.5, top_k=40, max_output_tokens=100, seed=3,
        thinking_config=types.ThinkingConfig(thinking_budget=1024, include_thoughts=True),
        tools=[types.Tool(function_declarations=[
            types.FunctionDeclaration(name="get_weather", parameters_json_schema=Args.model_json_schema())])],
        response_mime_type="application/json", response_json_schema=Args.model_json_schema(),
        safety_settings=[types.SafetySetting(category="HARM_CATEGORY_HATE_SPEECH", threshold="BLOCK_NONE")],
    )  # fmt: skip
    contents = [
        types.Content(role="user", parts=[types.Part.from_text(text="look"),
                                          types.Part.from_bytes(data=b"\x89PNG", mime_type="image/png")]),
        types.Content(role="model", parts=[types.Part(
            function_call=types.FunctionCall(name="get_weather", args={"city": "Paris"}), thought_signature=b"\x01sig")]),
        types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather", response={"t": 20})]),
    ]  # fmt: skip
    gc = client(fake)  # keep a reference: the SDK closes its HTTP client when the object goes
    gc.models.generate_content(model="gemini-2.5-flash", contents=contents, config=config)
    sent = fake.last()
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert "mime_type" in json.dumps(sent.body) and sent.body["generationConfig"]["topK"] == 40.0  # the mix is real
    req = G.decode_request(sent.body, model="gemini-2.5-flash")
    assert req.messages[0] == Message("system", [TextPart("be brief")])
    assert req.messages[1].parts[1] == ImagePart(data=base64.b64encode(b"\x89PNG").decode(), media_type="image/png")
    call = req.messages[2].parts[0]
    assert isinstance(call, ToolCallPart) and call.provider_metadata == {"gemini": {"thought_signature": "AXNpZw=="}}
    assert req.messages[3].parts == [ToolResultPart(call.id, [TextPart('{"t":20}')], name="get_weather")]
    assert (req.top_k, req.temperature, req.max_tokens, req.seed) == (40, 0.5, 100, 3)
    assert req.reasoning == Reasoning(budget_tokens=1024, include_thoughts=True)
    assert req.tools[0].parameters == Args.model_json_schema()
    assert req.response_format == ResponseFormat("json_schema", schema=Args.model_json_schema())
    assert req.extra == {"safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}]}


def test_gemini_sdk_reads_our_stream_and_replays_the_signature(fake: FakeUpstream) -> None:
    events = [StreamStart("u", "m"), TextDelta("Checking."),
              ToolCallStart(0, G.call_id_with_signature(SIG), "get_weather"), ToolCallDelta(0, '{"city":"Paris"}'),
              StreamEnd("tool_calls", Usage(10, 4))]  # fmt: skip
    enc = G.StreamEncoder(model="gemini-public", request_id="r1")
    fake.queue("/v1beta/models/gemini-public:streamGenerateContent", Stream([enc.encode(e) for e in events]))
    fake.queue("/v1beta/models/gemini-public:streamGenerateContent", Stream(fg.sse_frames(fg.chunks(["20C."]))))
    gc = client(fake)
    chat = gc.chats.create(model="gemini-public")
    chunks = list(chat.send_message_stream("weather in Paris?"))
    calls = [fc for c in chunks for fc in c.function_calls or []]
    assert [(fc.name, fc.args) for fc in calls] == [("get_weather", {"city": "Paris"})]
    assert chunks[-1].usage_metadata is not None and chunks[-1].usage_metadata.total_token_count == 14
    reply = types.Part.from_function_response(name="get_weather", response={"result": "20C"})
    list(chat.send_message_stream(reply))
    history = fake.last().body["contents"]
    replayed = [p for c in history for p in c["parts"] if "functionCall" in p]
    # The SDK kept our turn in its history and re-encodes the bytes url-safe: same signature.
    assert len(replayed) == 1 and replayed[0]["thoughtSignature"] == "CiQBVKhc7w-_AbA="
    back = G.decode_request(fake.last().body, model="gemini-3-pro-preview")
    sent = G.encode_request(back)["contents"][1]["parts"][-1]["thoughtSignature"]
    assert G.signature_bytes(sent) == base64.b64decode(SIG)


def test_gemini_sdk_reads_our_reply_and_error(fake: FakeUpstream) -> None:
    resp = Response("r9", "gemini-public", [ThinkingPart("hmm", signature=SIG, source="gemini"), TextPart("Hi!")],
                    usage=Usage(5, 7, reasoning_tokens=3))  # fmt: skip
    fake.queue("/v1beta/models/gemini-public:generateContent", Reply(G.encode_response(resp)))
    gc = client(fake)
    out = gc.models.generate_content(model="gemini-public", contents="hi")
    assert out.text == "Hi!" and out.usage_metadata is not None and out.usage_metadata.thoughts_token_count == 3
    status, body = G.error_body(LimitExceeded("slow down", retry_after=3))
    fake.queue("/v1beta/models/gemini-public:generateContent", Reply(body, status=status))
    with pytest.raises(genai_errors.ClientError) as exc:
        gc.models.generate_content(model="gemini-public", contents="hi")
    assert exc.value.code == 429 and exc.value.status == "RESOURCE_EXHAUSTED"


# --- property: request round trip ------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
_sig = st.binary(min_size=1, max_size=24).map(lambda b: base64.b64encode(b).decode())
_args = st.dictionaries(st.sampled_from(["a", "b", "city"]), st.one_of(st.integers(), _text, st.booleans()), max_size=3)


_reasoning = st.one_of(
    st.none(),
    st.builds(Reasoning, st.sampled_from(["none", "low", "high", None]), st.one_of(st.none(), st.integers(0, 9000))),
)
_formats = st.sampled_from(
    [None, ResponseFormat("json_object"), ResponseFormat("json_schema", schema={"type": "object"})]
)


@st.composite
def _requests(draw: st.DrawFn) -> Request:
    model = draw(st.sampled_from(["gemini-2.5-flash", "gemini-3-pro-preview", "gemini-3-flash", "custom"]))
    msgs: list[Message] = []
    if draw(st.booleans()):
        msgs.append(Message("system", [TextPart(draw(_text))]))
    n = 0
    for _ in range(draw(st.integers(1, 3))):
        user: list[Any] = [TextPart(draw(_text))]
        if draw(st.booleans()):
            user.append(ImagePart(data=PNG, media_type="image/png"))
        msgs.append(Message("user", user))
        assistant: list[Any] = []
        if draw(st.booleans()):
            assistant.append(ThinkingPart(draw(_text), signature=draw(_sig), source="gemini"))
        if draw(st.booleans()):
            assistant.append(TextPart(draw(_text)))
        calls = []
        for _ in range(draw(st.integers(0, 3))):
            sig = draw(st.one_of(st.none(), _sig))
            call = ToolCallPart(f"id{n}", draw(st.sampled_from(["f", "g"])), json.dumps(draw(_args)),
                                {"gemini": {"thought_signature": sig}} if sig else None)  # fmt: skip
            n += 1
            calls.append(call)
        if assistant or calls:
            msgs.append(Message("assistant", assistant + calls))
        for call in draw(st.permutations(calls)):
            content: list[Any] = [TextPart(draw(st.one_of(_text, _args.map(json.dumps))))]
            msgs.append(Message("tool", [ToolResultPart(call.id, content, draw(st.booleans()))]))
    return Request(
        model,
        msgs,
        tools=[Tool("f", "F", {"type": "object", "properties": {"a": {"type": "integer"}}}), Tool("g")],
        tool_choice=draw(st.one_of(st.none(), st.sampled_from([ToolChoice("auto"), ToolChoice("tool", "g")]))),
        temperature=draw(st.one_of(st.none(), st.floats(0, 2))),
        top_k=draw(st.one_of(st.none(), st.integers(1, 100))),
        max_tokens=draw(st.one_of(st.none(), st.integers(1, 10000))),
        stop=draw(st.lists(_text, max_size=6)),
        reasoning=draw(_reasoning),
        response_format=draw(_formats),
    )


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _shape(req: Request) -> list[tuple[str, list[Any]]]:
    """Messages with ids numbered by first appearance and runs of tool messages merged."""
    ids: dict[str, int] = {}
    out: list[tuple[str, list[Any]]] = []
    for m in req.messages:
        parts: list[Any] = []
        for p in m.parts:
            if isinstance(p, ToolCallPart):
                parts.append(("call", ids.setdefault(p.id, len(ids)), p.name, loads(p.arguments)))
            elif isinstance(p, ToolResultPart):
                content = [_json_or_text(c.text) if isinstance(c, TextPart) else c for c in p.content]
                parts.append(("result", ids.setdefault(p.tool_call_id, len(ids)), p.is_error, content))
            elif isinstance(p, ThinkingPart):
                parts.append(("thinking", p.text, p.signature))
            else:
                parts.append(p)
        if m.role == "tool" and out and out[-1][0] == "tool":
            out[-1][1].extend(parts)
        else:
            out.append((m.role, parts))
    for role, parts in out:
        if role == "tool":
            parts.sort(key=lambda r: r[1])
    return out


@settings(max_examples=120, deadline=None)
@given(_requests())
def test_gemini_request_round_trip(req: Request) -> None:
    wire = G.encode_request(req)
    back = G.decode_request(json.loads(json.dumps(wire)), model=req.model)
    assert G.encode_request(back) == wire
    assert _shape(back) == _shape(req)
