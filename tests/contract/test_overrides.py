"""Per-request overrides through the live gateway, sent by each vendor's official SDK
(``extra_headers`` / ``extra_query``, Gemini's ``http_options.headers``), INTERFACE.md section 12.

Two providers serve ``ov-m``: ``ov-a`` (tried first) and ``ov-b``. For every LLM endpoint:
a key with ``allow_overrides`` is served by the provider it names, a plain key gets 403
in its own dialect, a provider that does not serve the model is 404, a short ``timeout``
cuts a slow upstream, ``retries=0`` stops after the first failure, and the usage record
shows the overrides used.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from accounts.actions import create_api_key
from accounts.models import User
from proxy.models import Provider, UsageRecord
from tests import factories
from tests.fakes import FakeUpstream, Reply
from tests.fakes import openai as up

MODEL = "ov-m"
EMBEDDING = {"object": "list", "model": "emb-up", "usage": {"prompt_tokens": 2, "total_tokens": 2},
             "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}]}  # fmt: skip


@pytest.fixture(scope="module")
def keys(live_server_session: Any, django_db_blocker: Any, upstream: FakeUpstream) -> Iterator[dict[str, str]]:
    """Both providers and three keys, made once for the module (removed afterwards)."""
    with django_db_blocker.unblock():
        factories.provider("ov-a", upstream.url + "/ova/v1", priority=10, models=[{"name": MODEL, "upstream": "up-a"}])
        factories.provider("ov-b", upstream.url + "/ovb/v1", models=[{"name": MODEL, "upstream": "up-b"}])
        user = User.objects.create(username="overrides")
        made = {
            "allowed": create_api_key(user, allow_overrides=True)[1],
            "admin": create_api_key(user, admin=True)[1],
            "plain": create_api_key(user)[1],
        }
        live_server_session.reload()
        yield made
        live_server_session.flush_usage()
        Provider.objects.filter(name__startswith="ov-").delete()
        UsageRecord.objects.filter(user=user).delete()
        user.delete()


Send = Callable[[str, dict[str, str], dict[str, str]], Any]


def _sender(url: str, key: str, endpoint: str, rid: str) -> Send:
    """A call of ``endpoint`` with the SDK, carrying ``headers``/``query`` as overrides."""
    base = {"x-request-id": rid}
    oa = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    an = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
    msgs: Any = [{"role": "user", "content": "hi"}]

    def send(endpoint: str, headers: dict[str, str], query: dict[str, str]) -> Any:
        h = {**base, **headers}
        if endpoint == "chat":
            return oa.chat.completions.create(model=MODEL, messages=msgs, extra_headers=h, extra_query=query)
        if endpoint == "chat-stream":
            out = oa.chat.completions.create(model=MODEL, messages=msgs, stream=True, extra_headers=h,
                                             extra_query=query)  # fmt: skip
            return "".join(c.choices[0].delta.content or "" for c in out if c.choices)
        if endpoint == "completions":
            return oa.completions.create(model=MODEL, prompt="hi", extra_headers=h, extra_query=query)
        if endpoint == "responses":
            return oa.responses.create(model=MODEL, input="hi", store=False, extra_headers=h, extra_query=query)
        if endpoint == "embeddings":
            return oa.embeddings.create(model=MODEL, input="hi", encoding_format="float", extra_headers=h,
                                        extra_query=query)  # fmt: skip
        if endpoint == "messages":
            return an.messages.create(model=MODEL, max_tokens=10, messages=msgs, extra_headers=h, extra_query=query)
        if endpoint == "messages-stream":
            with an.messages.stream(model=MODEL, max_tokens=10, messages=msgs, extra_headers=h,
                                    extra_query=query) as s:  # fmt: skip
                return s.get_final_message()
        if endpoint == "count_tokens":
            return an.messages.count_tokens(model=MODEL, messages=msgs, extra_headers=h, extra_query=query)
        # Gemini's SDK takes extra headers (no extra query parameters) per call.
        ge = genai.Client(api_key=key, http_options=types.HttpOptions(
            base_url=url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)))  # fmt: skip
        gh = {**h, **{f"x-llmproxy-{k}": v for k, v in query.items()}}
        cfg = types.GenerateContentConfig(http_options=types.HttpOptions(headers=gh))
        if endpoint == "gemini":
            return ge.models.generate_content(model=MODEL, contents="hi", config=cfg)
        if endpoint == "gemini-stream":
            return "".join(c.text or "" for c in ge.models.generate_content_stream(model=MODEL, contents="hi",
                                                                                    config=cfg))  # fmt: skip
        raise AssertionError(endpoint)

    return send


ENDPOINTS = ["chat", "chat-stream", "completions", "responses", "embeddings", "messages", "messages-stream",
             "count_tokens", "gemini", "gemini-stream"]  # fmt: skip
#: Endpoints that go upstream (the offline count answers count_tokens for an OpenAI upstream).
UPSTREAM = [e for e in ENDPOINTS if e != "count_tokens"]


def _reply(endpoint: str, text: str = "Hi", delay: float = 0.0) -> Reply:
    if endpoint == "embeddings":
        return Reply(EMBEDDING, delay=delay)
    if endpoint.endswith("-stream"):
        s = up.stream([text])
        s.delay = delay
        return s  # type: ignore[return-value]
    r = up.completion(text)
    r.delay = delay
    return r


def _path(provider: str, endpoint: str) -> str:
    return f"/{provider}/v1/" + ("embeddings" if endpoint == "embeddings" else "chat/completions")


def _status(exc: BaseException) -> int:
    if isinstance(exc, genai_errors.APIError):
        return int(exc.code)
    return int(getattr(exc, "status_code", 0))


@pytest.fixture
def call(keys: dict[str, str], live_server_session: Any, fake: FakeUpstream, django_db_blocker: Any) -> Any:
    live_server_session.engine.gateway.router.clear()

    def make(endpoint: str, key: str = "allowed") -> tuple[Send, str]:
        rid = uuid.uuid4().hex
        return _sender(live_server_session.url, keys[key], endpoint, rid), rid

    with django_db_blocker.unblock():
        yield make


def _record(live: Any, rid: str) -> UsageRecord:
    live.flush_usage()
    return UsageRecord.objects.get(request_id=rid)


@pytest.mark.parametrize("endpoint", UPSTREAM)
@pytest.mark.parametrize("how", ["header", "query"])
def test_an_allowed_key_is_served_by_the_provider_it_names(
    call: Any, fake: FakeUpstream, live_server_session: Any, endpoint: str, how: str
) -> None:
    send, rid = call(endpoint)
    fake.queue(_path("ovb", endpoint), _reply(endpoint, "from b"))
    headers, query = ({"x-llmproxy-provider": "ov-b"}, {}) if how == "header" else ({}, {"provider": "ov-b"})
    out = send(endpoint, headers, query)
    assert out is not None
    assert [r.path for r in fake.requests] == [_path("ovb", endpoint)]  # ov-a, tried first normally, untouched
    rec = _record(live_server_session, rid)
    assert rec.provider == "ov-b" and rec.overrides == {"provider": "ov-b"}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_key_without_the_right_gets_403_in_its_dialect(call: Any, fake: FakeUpstream, endpoint: str) -> None:
    send, _ = call(endpoint, "plain")
    with pytest.raises(
        (openai.PermissionDeniedError, anthropic.PermissionDeniedError, genai_errors.ClientError)
    ) as exc:
        send(endpoint, {"x-llmproxy-retries": "0"}, {})
    assert _status(exc.value) == 403 and "overrides" in str(exc.value)
    assert fake.requests == []


@pytest.mark.parametrize("endpoint", ["chat", "messages", "gemini"])
def test_a_key_with_the_management_scope_may_override(call: Any, fake: FakeUpstream, endpoint: str) -> None:
    send, _ = call(endpoint, "admin")
    fake.queue(_path("ovb", endpoint), _reply(endpoint))
    send(endpoint, {"x-llmproxy-provider": "ov-b"}, {})
    assert [r.path for r in fake.requests] == [_path("ovb", endpoint)]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_provider_that_does_not_serve_the_model_is_404(call: Any, fake: FakeUpstream, endpoint: str) -> None:
    send, _ = call(endpoint)
    with pytest.raises((openai.NotFoundError, anthropic.NotFoundError, genai_errors.ClientError)) as exc:
        send(endpoint, {}, {"provider": "ov-nowhere"})
    assert _status(exc.value) == 404 and "ov-nowhere" in str(exc.value)
    assert fake.requests == []


@pytest.mark.parametrize("endpoint", ["chat", "responses", "messages", "gemini"])
def test_a_bad_override_value_is_400(call: Any, fake: FakeUpstream, endpoint: str) -> None:
    send, _ = call(endpoint)
    with pytest.raises((openai.BadRequestError, anthropic.BadRequestError, genai_errors.ClientError)) as exc:
        send(endpoint, {"x-llmproxy-timeout": "soon"}, {})
    assert _status(exc.value) == 400 and "timeout" in str(exc.value)
    with pytest.raises((openai.BadRequestError, anthropic.BadRequestError, genai_errors.ClientError)) as exc:
        send(endpoint, {}, {"timeout": "100000"})  # more than the configured timeout
    assert _status(exc.value) == 400
    assert fake.requests == []


@pytest.mark.parametrize("endpoint", UPSTREAM)
def test_a_short_timeout_cuts_a_slow_upstream(
    call: Any, fake: FakeUpstream, live_server_session: Any, endpoint: str
) -> None:
    send, rid = call(endpoint)
    fake.queue(_path("ova", endpoint), _reply(endpoint, delay=4.0))
    fake.queue(_path("ovb", endpoint), _reply(endpoint, delay=4.0))
    start = time.monotonic()
    with pytest.raises(Exception) as exc:
        send(endpoint, {"x-llmproxy-timeout": "0.5"}, {})
    assert time.monotonic() - start < 3.5, "the override did not cut the wait"
    rec = _record(live_server_session, rid)
    assert rec.overrides == {"timeout": 0.5} and rec.error_type == "upstream_timeout"
    if not endpoint.endswith("-stream"):
        assert _status(exc.value) == 504
    assert len(fake.requests) == 1  # the client's own deadline: no second provider tried


@pytest.mark.parametrize("endpoint", UPSTREAM)
def test_retries_zero_means_no_failover(call: Any, fake: FakeUpstream, live_server_session: Any, endpoint: str) -> None:
    send, rid = call(endpoint)
    fake.queue(_path("ova", endpoint), up.error(503))
    fake.queue(_path("ovb", endpoint), _reply(endpoint, "from b"))
    with pytest.raises(Exception) as exc:
        send(endpoint, {}, {"retries": "0"})
    assert _status(exc.value) in (502, 503)
    assert [r.path for r in fake.requests] == [_path("ova", endpoint)]
    rec = _record(live_server_session, rid)
    assert rec.attempts == 1 and rec.overrides == {"retries": 0}
    # Without the override the same failure fails over to ov-b.
    live_server_session.engine.gateway.router.clear()
    fake.reset()
    fake.queue(_path("ova", endpoint), up.error(503))
    fake.queue(_path("ovb", endpoint), _reply(endpoint, "from b"))
    send(endpoint, {}, {})
    assert [r.path for r in fake.requests] == [_path("ova", endpoint), _path("ovb", endpoint)]
