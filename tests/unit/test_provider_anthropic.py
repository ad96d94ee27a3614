"""The Anthropic executor (URLs, API-key and OAuth headers, error classes), over real loopback HTTP."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llmproxy.errors import ProviderHTTPError
from llmproxy.formats import anthropic as A
from llmproxy.http import HTTPClient
from llmproxy.model import Message, Request, StreamEnd, TextPart, ToolCallPart
from llmproxy.outcome import classify
from llmproxy.providers import create
from llmproxy.providers.anthropic import OAUTH_BETA, AnthropicExecutor, ratelimit_reset
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.runtime import RoutingSettings
from llmproxy.stream import collect
from tests.fakes import anthropic as fa
from tests.fakes.server import FakeUpstream

KEY = Credential("k1", "claude", api_key="sk-ant-api03-test")
OAUTH = Credential("o1", "claude", access_token="sk-ant-oat01-test", refresh_token="sk-ant-ort01-test")


def executor(base_url: str = "", headers: dict[str, str] | None = None) -> AnthropicExecutor:
    return AnthropicExecutor(ProviderConfig(name="claude", type="claude", base_url=base_url, headers=headers or {}))


def rfc3339(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


# --- building requests ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "endpoint", "stream", "url"),
    [
        ("", "chat", False, "https://api.anthropic.com/v1/messages"),
        ("", "chat", True, "https://api.anthropic.com/v1/messages"),
        ("", "count_tokens", True, "https://api.anthropic.com/v1/messages/count_tokens"),
        ("https://proxy.test/anthropic/", "chat", False, "https://proxy.test/anthropic/v1/messages"),
        ("https://proxy.test/a/v1", "count_tokens", False, "https://proxy.test/a/v1/messages/count_tokens"),
    ],
)  # fmt: skip
def test_anthropic_executor_endpoints(base: str, endpoint: str, stream: bool, url: str) -> None:
    req = executor(base).build(KEY, {"model": "x", "max_tokens": 5, "stream": True, "messages": []},
                               model="claude-haiku-4-5", stream=stream, endpoint=endpoint)  # fmt: skip
    streaming = stream and endpoint == "chat"
    assert (req.method, req.url, req.stream) == ("POST", url, streaming)
    sent = json.loads(req.body or b"")
    assert sent["model"] == "claude-haiku-4-5" and sent.get("stream") == (True if streaming else None)
    assert req.headers["accept"] == ("text/event-stream" if streaming else "application/json")
    with pytest.raises(ValueError, match="embeddings"):
        executor().url("embeddings")


def test_anthropic_executor_is_registered_for_both_type_names() -> None:
    for kind in ("claude", "anthropic"):
        ex = create(ProviderConfig(name="c", type=kind))
        assert isinstance(ex, AnthropicExecutor) and ex.dialect == A.NAME == "anthropic"


def test_anthropic_executor_api_key_headers() -> None:
    req = executor().build(KEY, {}, model="m", stream=False, client_headers={"authorization": "Bearer client"})
    assert req.headers["x-api-key"] == "sk-ant-api03-test"
    assert req.headers["anthropic-version"] == "2023-06-01" and req.headers["content-type"] == "application/json"
    assert "authorization" not in req.headers and "anthropic-beta" not in req.headers


def test_anthropic_executor_forwards_the_clients_version_and_betas() -> None:
    client = {"anthropic-version": "2026-10-21", "anthropic-beta": "context-1m-2025-08-07,oauth-2025-04-20",
              "x-api-key": "client"}  # fmt: skip
    req = executor(headers={"anthropic-beta": "fine-grained-tool-streaming-2025-05-14"}).build(
        KEY, {}, model="m", stream=True, client_headers=client
    )
    assert req.headers["anthropic-version"] == "2026-10-21"
    assert req.headers["anthropic-beta"] == "fine-grained-tool-streaming-2025-05-14,context-1m-2025-08-07"
    assert req.headers["x-api-key"] == "sk-ant-api03-test"  # the gateway's key, never the client's


@pytest.mark.parametrize("credential", [OAUTH, Credential("legacy", "claude", api_key="sk-ant-oat01-pasted")])
def test_anthropic_executor_oauth_uses_bearer_and_the_oauth_beta(credential: Credential) -> None:
    client = {"anthropic-beta": "interleaved-thinking-2025-05-14, oauth-2025-04-20"}
    req = executor().build(credential, {}, model="m", stream=True, client_headers=client)
    assert req.headers["authorization"] == f"Bearer {credential.secret}"
    assert "x-api-key" not in req.headers
    assert req.headers["anthropic-beta"].split(",") == ["interleaved-thinking-2025-05-14", OAUTH_BETA]
    bare = executor().build(credential, {}, model="m", stream=False)
    assert bare.headers["anthropic-beta"] == OAUTH_BETA and bare.headers["anthropic-version"] == "2023-06-01"


# --- classifying errors ----------------------------------------------------------------


def error_bytes(kind: str, message: str = "upstream says no") -> bytes:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


def test_anthropic_classify_429_honours_retry_after() -> None:
    err = executor().classify(429, {"retry-after": "17"}, error_bytes("rate_limit_error", "Number of requests"))
    assert isinstance(err, ProviderHTTPError)
    assert (err.upstream_status, err.status, err.retryable, err.retry_after) == (429, 429, True, 17.0)
    assert err.message == "claude: rate_limit_error: Number of requests"


def test_anthropic_classify_429_reads_the_ratelimit_reset_headers() -> None:
    headers = {
        "anthropic-ratelimit-requests-reset": rfc3339(5),
        "anthropic-ratelimit-requests-remaining": "12",
        "anthropic-ratelimit-tokens-reset": rfc3339(40),
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-output-tokens-reset": "garbage",
    }
    err = executor().classify(429, headers, error_bytes("rate_limit_error"))
    assert err.retry_after is not None and 38 <= err.retry_after <= 40  # the exhausted limit decides
    del headers["anthropic-ratelimit-tokens-remaining"]
    soonest = ratelimit_reset(headers, time.time())
    assert soonest is not None and 3 <= soonest <= 5
    assert ratelimit_reset({"anthropic-ratelimit-tokens-reset": "2020-01-01T00:00:00Z"}, time.time()) == 0.0
    assert ratelimit_reset({}, time.time()) is None


@pytest.mark.parametrize(
    ("status", "kind", "retryable", "client_status", "reason"),
    [
        (529, "overloaded_error", True, 503, "error"),
        (500, "api_error", True, 502, "error"),
        (401, "authentication_error", False, 502, "auth"),
        (403, "permission_error", False, 502, "auth"),
        (404, "not_found_error", False, 404, "not_found"),
        (400, "invalid_request_error", False, 400, "client"),
        (413, "request_too_large", False, 413, "client"),
    ],
)
def test_anthropic_classify_statuses(status: int, kind: str, retryable: bool, client_status: int, reason: str) -> None:
    err = executor().classify(status, {}, error_bytes(kind))
    assert isinstance(err, ProviderHTTPError)
    assert (err.retryable, err.status, err.upstream_status) == (retryable, client_status, status)
    assert f"{kind}: upstream says no" in err.message
    assert classify(err, executor().provider, RoutingSettings()).reason == reason


def test_anthropic_classify_low_credit_as_the_accounts_fault() -> None:
    body = error_bytes("invalid_request_error", "Your credit balance is too low to access the Anthropic API.")
    err = executor().classify(400, {}, body)
    assert isinstance(err, ProviderHTTPError) and err.upstream_status == 402
    assert classify(err, executor().provider, RoutingSettings()).reason == "auth"
    assert executor().classify(502, {}, b"<html>bad gateway</html>").message.endswith("<html>bad gateway</html>")


# --- talking to a fake Anthropic -------------------------------------------------------


async def test_anthropic_executor_streams_from_a_fake(http: HTTPClient, fake: FakeUpstream) -> None:
    fake.queue("/v1/messages", fa.stream([fa.text("Hello"), fa.tool_use("f", {"a": 1})], usage_=fa.usage(9, 4)))
    body = A.encode_request(Request("claude-client", [Message("user", [TextPart("hi")])], stream=True))
    ex = executor(fake.url)
    reply = await http.send(ex.build(OAUTH, body, model="claude-haiku-4-5", stream=True))
    assert reply.status == 200
    decoder = A.StreamDecoder()
    events: list[Any] = []
    async for chunk in reply.iter_chunks():
        events += decoder.feed(chunk)
    events += decoder.close()
    sent = fake.last()
    assert sent.headers["authorization"] == "Bearer sk-ant-oat01-test" and OAUTH_BETA in sent.headers["anthropic-beta"]
    assert sent.body == {"model": "claude-haiku-4-5", "max_tokens": 64000, "stream": True,
                         "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}  # fmt: skip
    resp = collect(events)
    assert resp.text() == "Hello" and resp.parts[-1] == ToolCallPart("toolu_01A", "f", '{"a": 1}')
    assert isinstance(events[-1], StreamEnd) and events[-1].finish_reason == "tool_calls"


async def test_anthropic_executor_classifies_a_real_429(http: HTTPClient, fake: FakeUpstream) -> None:
    fake.queue("/v1/messages", fa.error(429, "rate_limit_error", "slow down", headers={"retry-after": "7"}))
    ex = executor(fake.url)
    reply = await http.send(ex.build(KEY, {"messages": []}, model="m", stream=False))
    err = ex.classify(reply.status, reply.headers, await reply.read())
    assert err.retryable and err.retry_after == 7.0 and "slow down" in err.message


async def test_anthropic_execute_round_trip(fake: FakeUpstream) -> None:
    fake.queue("/v1/messages", fa.response("Hi!"))
    out = await executor(fake.url).execute(KEY, {"model": "claude-haiku-4-5", "max_tokens": 10,
                                                 "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
    assert A.decode_response(out).text() == "Hi!"
    sent = fake.last()
    assert sent.path == "/v1/messages" and sent.headers["x-api-key"] == "sk-ant-api03-test"
    assert "stream" not in sent.body
