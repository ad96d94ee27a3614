"""The legacy completions codec: prompt in, text_completion out, checked with the SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from llmproxy.errors import InvalidRequest, ProviderTimeout
from llmproxy.formats import openai_completions as C
from llmproxy.model import (
    Message,
    Response,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ToolCallPart,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from llmproxy.sse import SSEParser
from tests.fakes.server import FakeUpstream, Reply, Stream


def test_decode_request_prompt_becomes_one_user_message() -> None:
    req = C.decode_request(
        {
            "model": "gpt-3.5-turbo-instruct",
            "prompt": "Say this is a test",
            "max_tokens": 7,
            "temperature": 0,
            "top_p": 1,
            "stop": "\n",
            "stream": True,
            "stream_options": {"include_usage": True},
            "seed": 3,
            "user": "u1",
            "presence_penalty": 0.5,
            "echo": False,
            "suffix": None,
            "logprobs": None,
            "n": 1,
        }
    )
    assert req.messages == [Message("user", [TextPart("Say this is a test")])]
    assert (req.model, req.max_tokens, req.temperature, req.top_p) == ("gpt-3.5-turbo-instruct", 7, 0.0, 1.0)
    assert req.stop == ["\n"]
    assert req.stream is True and req.include_usage is True
    assert (req.seed, req.user) == (3, "u1")
    assert req.extra == {"presence_penalty": 0.5}


def test_decode_request_single_prompt_list_and_stop_list() -> None:
    req = C.decode_request({"model": "m", "prompt": ["only one"], "stop": ["a", "b"]})
    assert req.messages[0].text() == "only one"
    assert req.stop == ["a", "b"]
    assert req.stream is False and req.include_usage is False


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "x"}, "model"),
        ({"model": "m"}, "prompt"),
        ({"model": "m", "prompt": 5}, "prompt"),
        ({"model": "m", "prompt": []}, "prompt"),
        ({"model": "m", "prompt": ["a", "b"]}, "prompt"),
        ({"model": "m", "prompt": [1, 2, 3]}, "prompt"),
        ({"model": "m", "prompt": "x", "echo": True}, "echo"),
        ({"model": "m", "prompt": "x", "suffix": "tail"}, "suffix"),
        ({"model": "m", "prompt": "x", "logprobs": 2}, "logprobs"),
        ({"model": "m", "prompt": "x", "n": 2}, "n"),
        ({"model": "m", "prompt": "x", "best_of": 3}, "best_of"),
        ({"model": "m", "prompt": "x", "max_tokens": "7"}, "max_tokens"),
        ({"model": "m", "prompt": "x", "temperature": "warm"}, "temperature"),
        ({"model": "m", "prompt": "x", "stop": 3}, "stop"),
        ({"model": "m", "prompt": "x", "stream": "true"}, "stream"),
    ],
)
def test_decode_request_rejections_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        C.decode_request(body)
    assert exc.value.param == param
    assert exc.value.status == 400


def test_decode_request_several_prompts_says_why() -> None:
    with pytest.raises(InvalidRequest, match="one prompt per request"):
        C.decode_request({"model": "m", "prompt": ["a", "b"]})


@pytest.mark.parametrize(
    ("finish", "wire"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("content_filter", "content_filter"),
        ("tool_calls", "stop"),
        ("error", "stop"),
    ],
)
def test_encode_response_is_a_valid_completion(finish: Any, wire: str) -> None:
    resp = Response(
        "abc",
        "pub",
        [TextPart("Hello"), ToolCallPart("c", "f"), TextPart(" world")],
        finish,
        Usage(5, 2, cached_tokens=1),
    )
    body = C.encode_response(resp)
    parsed = openai.types.Completion.model_validate(body)
    assert parsed.id == "cmpl-abc" and parsed.object == "text_completion" and parsed.created > 0
    assert parsed.choices[0].text == "Hello world"
    assert parsed.choices[0].finish_reason == wire
    assert parsed.usage is not None and (
        parsed.usage.prompt_tokens,
        parsed.usage.completion_tokens,
        parsed.usage.total_tokens,
    ) == (5, 2, 7)


def chunks(data: bytes) -> list[str]:
    p = SSEParser()
    return [e.data for e in p.feed(data) + p.close()]


def validate_chunk(chunk: dict[str, Any]) -> None:
    """The SDK type makes ``finish_reason`` required, but OpenAI streams send null until
    the last chunk; validate everything else strictly."""
    copy = json.loads(json.dumps(chunk))
    for choice in copy["choices"]:
        if choice["finish_reason"] is None:
            choice["finish_reason"] = "stop"
    openai.types.Completion.model_validate(copy)


EVENTS: list[StreamEvent] = [
    StreamStart("up", "up-model", 1730000000),
    ThinkingDelta("hidden"),
    TextDelta("This "),
    ToolCallStart(0, "c", "f"),
    TextDelta("is a test"),
    UsageUpdate(Usage(5, 4)),
    StreamEnd("length", Usage(5, 7)),
]


def encode_all(events: list[StreamEvent], include_usage: bool) -> bytes:
    enc = C.StreamEncoder(model="pub", include_usage=include_usage, request_id="r1")
    return b"".join(enc.encode(e) for e in events)


def test_stream_encoder_with_usage() -> None:
    datas = chunks(encode_all(EVENTS, include_usage=True))
    assert datas[-1] == "[DONE]"
    bodies = [json.loads(d) for d in datas[:-1]]
    for b in bodies:
        validate_chunk(b)
        assert (b["id"], b["object"], b["model"], b["created"]) == ("cmpl-r1", "text_completion", "pub", 1730000000)
    assert "".join(c["text"] for b in bodies for c in b["choices"]) == "This is a test"
    finishes = [c["finish_reason"] for b in bodies for c in b["choices"]]
    assert finishes == [None, None, "length"]
    assert [b["usage"] for b in bodies[:-1]] == [None, None, None]
    assert bodies[-1]["choices"] == []
    assert bodies[-1]["usage"]["prompt_tokens"] == 5 and bodies[-1]["usage"]["completion_tokens"] == 7


def test_stream_encoder_without_usage() -> None:
    datas = chunks(encode_all(EVENTS, include_usage=False))
    bodies = [json.loads(d) for d in datas[:-1]]
    assert datas[-1] == "[DONE]"
    assert all("usage" not in b for b in bodies)
    assert bodies[-1]["choices"][0]["finish_reason"] == "length"


def test_stream_encoder_error_then_done_and_nothing_after() -> None:
    enc = C.StreamEncoder(model="pub", include_usage=False)
    enc.encode(TextDelta("par"))
    datas = chunks(enc.error(ProviderTimeout("upstream too slow")))
    assert datas[-1] == "[DONE]"
    err = json.loads(datas[0])["error"]
    openai.types.ErrorObject.model_validate(err)
    assert err["message"] == "upstream too slow" and err["code"] == "upstream_timeout"
    assert enc.encode(TextDelta("late")) == b""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


def test_sdk_reads_the_stream(upstream: FakeUpstream) -> None:
    # Not strict: the SDK's Completion type rejects the null finish_reason OpenAI itself streams.
    client = openai.OpenAI(base_url=f"{upstream.url}/v1", api_key="t", max_retries=0)
    upstream.queue("/v1/completions", Stream([encode_all(EVENTS, include_usage=True)]))
    got = list(client.completions.create(model="pub", prompt="x", stream=True, stream_options={"include_usage": True}))
    assert "".join(c.text for g in got for c in g.choices) == "This is a test"
    assert got[-1].usage is not None and got[-1].usage.total_tokens == 12


def test_sdk_reads_the_response_strictly(upstream: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=f"{upstream.url}/v1", api_key="t", max_retries=0, _strict_response_validation=True)
    upstream.queue(
        "/v1/completions", Reply(C.encode_response(Response("x", "pub", [TextPart("ok")], "stop", Usage(1, 1))))
    )
    got = client.completions.create(model="pub", prompt="x")
    assert got.choices[0].text == "ok" and got.choices[0].finish_reason == "stop"
