"""The kiro executor: endpoint, honest headers, profileArn, error classes; the kiro translator."""

from __future__ import annotations

import asyncio
import json

from llmproxy import providers, translator
from llmproxy._version import USER_AGENT
from llmproxy.errors import ProviderHTTPError
from llmproxy.providers.base import Credential, ProviderConfig
from llmproxy.providers.kiro import QUOTA_COOLDOWN, KiroExecutor
from tests.fakes import codewhisperer as fake

ARN = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
CRED = Credential("me", "kiro", access_token="aoaTOKEN", extra={"profile_arn": ARN, "region": "eu-central-1"})


def body() -> dict:
    return translator.get("kiro").translate_request({"model": "claude-sonnet-4-5",
                                                     "messages": [{"role": "user", "content": "Hi"}]})  # fmt: skip


def test_the_request_goes_to_the_regions_q_endpoint_with_llmproxys_own_user_agent() -> None:
    ex = providers.get("kiro")()
    req = ex.build(CRED, body(), model="claude-sonnet-4-5", stream=True)
    assert req.url == "https://q.eu-central-1.amazonaws.com/generateAssistantResponse"
    h = req.headers
    assert h["authorization"] == "Bearer aoaTOKEN" and h["content-type"] == "application/json"
    assert h["user-agent"] == h["x-amz-user-agent"] == USER_AGENT
    assert "kiro" not in json.dumps(h).lower().replace("x-amzn-kiro-agent-mode", "")
    assert "x-amz-target" not in h and h["amz-sdk-invocation-id"]
    sent = json.loads(req.body)
    assert sent["profileArn"] == ARN and "model" not in sent
    assert fake.problem(sent, profile_arn=ARN) is None


def test_base_url_wins_and_a_legacy_codewhisperer_host_gets_its_target() -> None:
    ex = KiroExecutor(ProviderConfig("k", "kiro", base_url="https://codewhisperer.us-east-1.amazonaws.com/"))
    req = ex.build(Credential("me", "kiro", access_token="t"), body(), model="auto", stream=False)
    assert req.url == "https://codewhisperer.us-east-1.amazonaws.com/generateAssistantResponse"
    assert req.headers["content-type"] == "application/x-amz-json-1.0"
    assert req.headers["x-amz-target"] == fake.TARGET
    assert "profileArn" not in json.loads(req.body)  # a Builder ID token without one


def test_a_kiro_api_key_says_so() -> None:
    req = KiroExecutor().build(Credential("k", "kiro", api_key="ksk_abc"), body(), model="auto", stream=True)
    assert req.headers["authorization"] == "Bearer ksk_abc" and req.headers["tokentype"] == "API_KEY"


def test_the_health_probe_is_get_usage_limits_with_the_profile() -> None:
    req = KiroExecutor().health_request(CRED)
    assert req is not None and req.method == "GET" and req.body is None
    assert req.url.startswith("https://q.eu-central-1.amazonaws.com/getUsageLimits?origin=AI_EDITOR")
    assert "profileArn=arn%3Aaws" in req.url


def classify(status: int, body: dict) -> ProviderHTTPError:
    err = KiroExecutor().classify(status, {}, json.dumps(body).encode())
    assert isinstance(err, ProviderHTTPError)
    return err


def test_an_invalid_bearer_token_is_a_refused_token_other_403s_are_not() -> None:
    ex = KiroExecutor()
    assert ex.token_refused(classify(403, {"message": fake.INVALID_TOKEN}))
    assert ex.token_refused(classify(401, {"message": "no"}))
    assert not ex.token_refused(classify(403, {"message": "User is not authorized for this profile"}))


def test_a_spent_monthly_quota_cools_the_credential_and_fails_over() -> None:
    err = classify(402, {"message": "You have reached the limit.", "reason": "MONTHLY_REQUEST_COUNT"})
    assert err.retryable and err.retry_after == QUOTA_COOLDOWN and "MONTHLY_REQUEST_COUNT" in err.message


def test_a_too_long_input_is_the_clients_400_and_not_retried() -> None:
    err = classify(400, {"message": "Input is too long.", "reason": "CONTENT_LENGTH_EXCEEDS_THRESHOLD"})
    assert (err.status, err.code, err.retryable) == (400, "context_length_exceeded", False)


def test_throttling_is_retryable() -> None:
    err = classify(429, {"message": "Too many requests", "reason": "THROTTLING"})
    assert err.retryable and err.status == 429


def test_the_kiro_translator_reports_catalog_facts_and_composes_with_the_stream() -> None:
    t = translator.get("kiro")
    assert t.dialect == "codewhisperer" and t.supports_streaming and t.supports_functions and t.max_tokens > 0
    assert "kiro" in translator.names()
    raw = b"".join(fake.frames(["Hel", "lo"]))

    async def chunks():  # type: ignore[no-untyped-def]
        for i in range(0, len(raw), 9):
            yield raw[i : i + 9]

    async def run() -> list[dict]:
        return [c async for c in t.translate_stream(chunks(), model="m")]

    out = asyncio.run(run())
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in out if c["choices"])
    assert text == "Hello" and out[-1]["usage"]["prompt_tokens"] == 3000
    reply = t.translate_response(json.loads(KiroExecutor().unwrap_body(raw)))
    assert reply["choices"][0]["message"]["content"] == "Hello"


def test_the_executor_serves_claude_family_names() -> None:
    ex = KiroExecutor()
    assert ex.supports_model("claude-sonnet-4.5") and ex.supports_model("auto") and not ex.supports_model("gpt-4o")
