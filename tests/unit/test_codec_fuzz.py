"""Hypothesis over every codec's request and stream decoders: only the codec's own errors.

Bodies are JSON built from the dialects' own field names, so the fuzzer reaches deep into
the decoders (messages, parts, tools, arguments) instead of stopping at the first
missing key; streams are SSE frames of such JSON, cut anywhere, mixed with junk bytes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmproxy import formats
from llmproxy.errors import LLMProxyError

FIELDS = ["model", "messages", "role", "content", "type", "text", "tools", "tool_calls", "function", "name",
          "arguments", "input", "contents", "parts", "system", "max_tokens", "stream", "image_url", "url",
          "tool_choice", "id", "tool_call_id", "tool_use_id", "functionCall", "functionResponse", "args",
          "inlineData", "data", "mimeType", "source", "media_type", "thinking", "generationConfig", "delta",
          "choices", "index", "candidates", "usage", "output", "response", "item", "prompt", "n", "stop",
          "temperature", "response_format", "json_schema", "schema", "parameters", "input_schema", "user",
          "instructions", "reasoning", "metadata", "cache_control", "signature", "error", "message"]  # fmt: skip
WORDS = ["user", "assistant", "system", "tool", "developer", "model", "function", "text", "image", "image_url",
         "tool_use", "tool_result", "input_text", "input_image", "message", "function_call", "auto", "none",
         "required", "json_schema", "json_object", "thinking", "base64", "url", "data:image/png;base64,AAAA",
         "http://127.0.0.1/x.png", "{", '{"a": 1}', "", "\x00", "\ud800x"]  # fmt: skip
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64), st.floats(allow_nan=True),
                    st.sampled_from(WORDS), st.text(max_size=20))  # fmt: skip
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), inner, max_size=6)
    ),
    max_leaves=30,
)
BODY = st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=8)
FUZZ = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


@pytest.mark.parametrize("dialect", sorted(formats.CODECS))
def test_decode_request_raises_only_the_codecs_own_errors(dialect: str) -> None:
    codec = formats.get(dialect)

    @FUZZ
    @given(body=BODY)
    def run(body: dict[str, Any]) -> None:
        try:
            codec.decode_request(body)
        except LLMProxyError as err:
            assert 400 <= err.status < 500, err

    run()


def _frame(value: Any) -> bytes:
    return b"data: " + json.dumps(value).encode() + b"\n\n"


FRAMES = st.lists(
    st.one_of(JSON.map(_frame), BODY.map(_frame), st.binary(max_size=30),
              st.sampled_from([b"data: [DONE]\n\n", b"event: error\n", b": ping\n\n", b"\r\n", b"data: {"])),
    max_size=8,
)  # fmt: skip


@pytest.mark.parametrize("dialect", sorted(d for d in formats.CODECS if hasattr(formats.get(d), "StreamDecoder")))
def test_stream_decoders_raise_only_provider_errors(dialect: str) -> None:
    codec = formats.get(dialect)

    @FUZZ
    @given(frames=FRAMES, cut=st.integers(1, 7))
    def run(frames: list[bytes], cut: int) -> None:
        data = b"".join(frames)
        decoder = codec.StreamDecoder()
        try:
            for i in range(0, len(data), cut):
                decoder.feed(data[i : i + cut])
            decoder.close()
        except LLMProxyError:
            pass  # the codec's own error: the relay turns it into an error event

    run()
