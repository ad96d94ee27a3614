"""The official openai SDK (strict validation) against the live app and a fake upstream."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from proxy.models import UsageRecord
from tests import factories
from tests.fakes import FakeUpstream
from tests.fakes import openai as up

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def key(live: Any, fake: FakeUpstream) -> str:
    factories.provider("up", fake.url + "/v1")
    _, raw = factories.api_key(factories.user())
    live.reload()
    return raw


def client(live: Any, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0, _strict_response_validation=True)


def test_it_answers_a_chat_completion_and_records_usage(live: Any, fake: FakeUpstream, key: str) -> None:
    fake.queue("/v1/chat/completions", up.completion("Hi there", prompt=1000, completion_tokens=200))
    resp = client(live, key).chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hello"}])
    assert resp.choices[0].message.content == "Hi there"
    assert resp.model == "gpt-test"
    sent = fake.last()
    assert sent.body["model"] == "gpt-up"
    assert sent.headers["authorization"] == "Bearer sk-upstream-secret"
    live.flush_usage()
    rec = UsageRecord.objects.get()
    assert (rec.model, rec.upstream_model, rec.provider, rec.status_code) == ("gpt-test", "gpt-up", "up", 200)
    assert (rec.prompt_tokens, rec.completion_tokens) == (1000, 200)
    assert float(rec.cost_usd) == pytest.approx((1000 * 3 + 200 * 15) / 1e6)
    assert rec.key_prefix.startswith("sk-llmp-")


def test_it_streams_with_usage(live: Any, fake: FakeUpstream, key: str) -> None:
    fake.queue("/v1/chat/completions", up.stream(["Hel", "lo", "!"], prompt=12, completion_tokens=3))
    stream = client(live, key).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello!"
    assert all(c.model == "gpt-test" for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 12
    live.flush_usage()
    rec = UsageRecord.objects.get()
    assert rec.stream and rec.completion_tokens == 3 and rec.ttfb_ms is not None


def test_it_streams_tool_calls_through_the_sdk_helper(live: Any, fake: FakeUpstream, key: str) -> None:
    fake.queue(
        "/v1/chat/completions",
        up.stream(
            [],
            tool_calls=[
                {"name": "get_weather", "arguments": {"city": "Paris"}},
                {"name": "get_time", "arguments": {"tz": "CET"}},
            ],
        ),
    )
    tools: Any = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
                  for n in ("get_weather", "get_time")]  # fmt: skip
    with client(live, key).chat.completions.stream(
        model="gpt-test", messages=[{"role": "user", "content": "weather?"}], tools=tools
    ) as s:
        final = s.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})]  # fmt: skip
    assert final.choices[0].finish_reason == "tool_calls"


def test_it_lists_only_models_the_key_may_use(live: Any, fake: FakeUpstream) -> None:
    factories.provider("up", fake.url + "/v1", models=[{"name": "a"}, {"name": "b"}])
    _, raw = factories.api_key(factories.user(), models=["b"])
    live.reload()
    assert [m.id for m in client(live, raw).models.list()] == ["b"]


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "invalid_api_key"),
        ({"authorization": "Bearer sk-llmp-wrong"}, 401, "invalid_api_key"),
    ],
)
def test_it_rejects_bad_keys_in_openai_format(
    live: Any, key: str, headers: dict[str, str], status: int, code: str
) -> None:
    r = httpx.post(live.url + "/v1/chat/completions", json={"model": "gpt-test", "messages": []}, headers=headers)
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    assert r.headers["x-request-id"]


def test_it_rejects_revoked_keys_after_a_snapshot_swap(live: Any, fake: FakeUpstream) -> None:
    from accounts.actions import revoke_api_key

    factories.provider("up", fake.url + "/v1")
    k, raw = factories.api_key(factories.user())
    live.reload()
    fake.default("/v1/chat/completions", up.completion("ok"))
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]}
    assert httpx.post(live.url + "/v1/chat/completions", json=body, headers={"x-api-key": raw}).status_code == 200
    revoke_api_key(k)
    live.reload()
    r = httpx.post(live.url + "/v1/chat/completions", json=body, headers={"x-api-key": raw})
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def test_it_answers_errors_for_bad_input(live: Any, fake: FakeUpstream, key: str) -> None:
    h = {"authorization": f"Bearer {key}"}
    post = lambda body, **kw: httpx.post(live.url + "/v1/chat/completions", content=body, headers=h, **kw)  # noqa: E731
    r = post(b"{not json")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = post(json.dumps({"model": "gpt-test", "messages": "nope"}).encode())
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    r = post(json.dumps({"model": "nope", "messages": [{"role": "user", "content": "x"}]}).encode())
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = post(b"{" + b" " * (11 * 1024 * 1024) + b"}")
    assert r.status_code == 413


def test_it_forbids_models_outside_the_keys_list(live: Any, fake: FakeUpstream) -> None:
    factories.provider("up", fake.url + "/v1", models=[{"name": "a"}, {"name": "b"}])
    _, raw = factories.api_key(factories.user(), models=["b"])
    live.reload()
    with pytest.raises(openai.PermissionDeniedError):
        client(live, raw).chat.completions.create(model="a", messages=[{"role": "user", "content": "x"}])


def test_it_maps_upstream_failures_without_leaking_secrets(live: Any, fake: FakeUpstream, key: str) -> None:
    fake.default("/v1/chat/completions", up.error(500, "database exploded"))
    with pytest.raises(openai.APIStatusError) as exc:
        client(live, key).chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])
    assert exc.value.status_code in (502, 503)
    assert "sk-upstream-secret" not in exc.value.response.text
    live.flush_usage()
    assert UsageRecord.objects.filter(status_code__gte=500).exists()
