"""The Translator facade of INTERFACE.md section 7."""

from __future__ import annotations

import pytest

from llmproxy import translator


def test_translator_openai_round_trip_is_identity_on_text() -> None:
    t = translator.get("openai")
    body = t.translate_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, model="up")
    assert body["model"] == "up" and body["messages"] == [{"role": "user", "content": "hi"}]
    reply = t.translate_response({"id": "x", "object": "chat.completion", "created": 1, "model": "up",
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant", "content": "yo"}}]})  # fmt: skip
    assert reply["choices"][0]["message"]["content"] == "yo"
    assert t.supports_streaming and t.supports_functions and t.max_tokens > 0


async def test_translator_streams_openai_chunks() -> None:
    t = translator.get("openai-compatible")

    async def source():  # type: ignore[no-untyped-def]
        yield b'data: {"id":"a","object":"chat.completion.chunk","created":1,"model":"u","choices":[{"index":0,"delta":{"content":"he"}}]}\n\n'
        yield b'data: {"id":"a","object":"chat.completion.chunk","created":1,"model":"u","choices":[{"index":0,"delta":{"content":"y"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'

    chunks = [c async for c in t.translate_stream(source(), model="pub")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "hey"
    assert chunks[-1]["choices"] == [] and "usage" in chunks[-1]


def test_translator_registry_rejects_unknown_and_accepts_custom() -> None:
    with pytest.raises(KeyError):
        translator.get("nope")
    translator.register("my-openai", "openai_chat")
    assert translator.get("my-openai").dialect == "openai_chat"
    assert "my-openai" in translator.names()
