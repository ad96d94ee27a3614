"""The matrix's diagonal: a client and an upstream of the same dialect see each other's bytes.

Nothing is translated on these pairs, so the upstream must receive the client's body
as sent (fields the proxy has no model for included) with only the model renamed, the
reply must come back byte for byte with only the public model name put back, and an
Anthropic upstream must get the client's protocol headers.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.contract.conftest import PNG, Pair
from tests.fakes.matrix import Turn

SAME = ["chat->chat", "responses->responses", "anthropic->anthropic", "gemini->gemini"]
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])


def client_request(pair: Pair, stream: bool) -> tuple[str, dict[str, Any], dict[str, str]]:
    """A body with fields the canonical model has no place for, as a real client sends them."""
    key, model = pair.client.key, pair.model
    user = {"role": "user", "content": "Say hello."}
    if pair.client.name == "chat":
        body = {"model": model, "messages": [{"role": "developer", "content": "Be brief."}, user], "seed": 7,
                "logit_bias": {"50256": -100}, "service_tier": "auto", "prompt_cache_key": "k1", "store": False,
                "stream": stream, **({"stream_options": {"include_usage": True}} if stream else {})}  # fmt: skip
        return "/v1/chat/completions", body, {"authorization": f"Bearer {key}"}
    if pair.client.name == "responses":
        body = {"model": model, "input": [{"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "low"}]}],
                "store": False, "include": ["reasoning.encrypted_content"], "truncation": "auto",
                "text": {"verbosity": "low"}, "stream": stream}  # fmt: skip
        return "/v1/responses", body, {"authorization": f"Bearer {key}"}
    if pair.client.name == "anthropic":
        body = {"model": model, "max_tokens": 100, "messages": [user], "metadata": {"user_id": "u-1"},
                "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
                "stop_sequences": ["END"], "service_tier": "auto", **({"stream": True} if stream else {})}  # fmt: skip
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01",
                   "anthropic-beta": "interleaved-thinking-2025-05-14,context-1m-2025-08-07"}  # fmt: skip
        return "/v1/messages", body, headers
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "Say hello."}]}], "cachedContent": "cachedContents/c1",
            "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
            "generationConfig": {"temperature": 0.2, "topK": 40.0, "thinkingConfig": {"thinking_budget": 0}}}  # fmt: skip
    return f"/v1beta/models/{model}:{action}", body, {"x-goog-api-key": key}


def renamed(data: bytes, upstream: str, public: str) -> bytes:
    for key in (b'"model": "', b'"modelVersion": "'):
        data = data.replace(key + upstream.encode() + b'"', key + public.encode() + b'"')
    return data


@pytest.mark.parametrize("pair", SAME, indirect=True)
@STREAM
def test_it_relays_the_clients_body_and_the_upstreams_reply_untouched(pair: Pair, stream: bool) -> None:
    reply = pair.upstream.build(Turn(["Hel", "lo"]), stream)
    pair.script(reply)
    path, body, headers = client_request(pair, stream)
    r = httpx.post(pair.live.url + path, json=body, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    got = pair.fake.requests[0]
    if pair.upstream.name == "gemini":
        assert got.body == body
        assert got.path.endswith(f"/models/{pair.upstream.model}:{path.rpartition(':')[2].partition('?')[0]}")
    else:
        assert got.body == {**body, "model": pair.upstream.model}
    expected = b"".join(reply.frames) if stream else json.dumps(reply.body).encode()  # type: ignore[union-attr]
    expected = renamed(expected, pair.upstream.model, pair.model)
    if stream:
        assert r.content == expected
    else:
        assert r.json() == json.loads(expected)


@pytest.mark.parametrize("pair", ["anthropic->anthropic"], indirect=True)
def test_it_forwards_the_anthropic_protocol_headers_of_a_raw_client(pair: Pair) -> None:
    pair.script(pair.upstream.reply(Turn(), False))
    path, body, headers = client_request(pair, False)
    assert httpx.post(pair.live.url + path, json=body, headers=headers, timeout=10).status_code == 200
    sent = pair.fake.requests[0].headers
    assert sent["anthropic-version"] == "2023-06-01"
    assert sent["anthropic-beta"] == "interleaved-thinking-2025-05-14,context-1m-2025-08-07"
    assert sent["x-api-key"] == "sk-upstream-secret" and "authorization" not in sent


@pytest.mark.parametrize("pair", ["anthropic->anthropic"], indirect=True)
def test_it_forwards_the_anthropic_protocol_headers_of_the_sdk(pair: Pair) -> None:
    """The SDK authenticates with a bearer token and sends its own, newer, API version."""
    pair.script(pair.upstream.reply(Turn(), False))
    sdk = pair.client.sdk  # type: ignore[attr-defined]
    sdk.messages.create(model=pair.model, max_tokens=10, messages=[{"role": "user", "content": "hi"}],
                        extra_headers={"anthropic-beta": "context-1m-2025-08-07"})  # fmt: skip
    sent = pair.fake.requests[0].headers
    version = sdk.default_headers["anthropic-version"]
    assert (sent["anthropic-version"], sent["anthropic-beta"]) == (version, "context-1m-2025-08-07")
    assert sent["x-api-key"] == "sk-upstream-secret" and pair.client.key not in json.dumps(sent)
