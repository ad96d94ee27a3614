"""The client side of the contract matrix: each official SDK driven the way an application would.

A driver takes a dialect-neutral ``Ask`` (prompt, tools, image, limits...), makes the call
with its SDK under strict response validation (non-streaming, or through the SDK's own
stream accumulator), and hands back a dialect-neutral ``Result``. The ``pair`` fixture sets
up one (client, upstream) pair: a provider row of the upstream's type pointed at the fake.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
import pytest
from django.conf import settings
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from accounts.actions import create_api_key
from accounts.models import User
from proxy.models import Provider, UsageRecord
from tests import factories
from tests.fakes import FakeUpstream
from tests.fakes.matrix import UPSTREAMS, Sent, Upstream
from tests.fakes.matrix_accounts import ACCOUNT_UPSTREAMS
from tests.fakes.server import Script

SYSTEM = "Be brief."
# A 1x1 PNG, the smallest image every dialect accepts inline.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
PARAMS = {
    "get_weather": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "get_time": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
}
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
          "additionalProperties": False}  # fmt: skip
# The earlier turn of a tool-result conversation: two calls, then their results in order.
CALLS = [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})]
RESULTS = ["20C", "10:00"]


class StreamFailed(Exception):
    """The stream carried the dialect's error event where the SDK itself does not raise."""


@dataclass
class Ask:
    prompt: str = "Say hello."
    stream: bool = False
    tools: bool = False
    image: bool = False
    max_tokens: int | None = None
    schema: bool = False
    reasoning: bool = False
    history: bool = False  # a second turn: CALLS were made, RESULTS are sent back
    reverse: bool = False  # ...with the results in the opposite order of the calls

    def results(self, ids: tuple[str, str]) -> list[tuple[str, str, str]]:
        """(call id, tool name, result) in the order the client sends them."""
        out = [(i, n, r) for i, (n, _), r in zip(ids, CALLS, RESULTS, strict=True)]
        return out[::-1] if self.reverse else out


@dataclass
class Result:
    text: str = ""
    thinking: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    call_ids: list[str] = field(default_factory=list)
    finish: str = ""  # stop | length | tool_calls, from the dialect's own field
    usage: tuple[int, int] = (0, 0)
    model: str = ""


# SDK clients are cached: building one (its SSL context) costs more than a test's request.
@functools.cache
def _openai(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, _strict_response_validation=True)


@functools.cache
def _anthropic(url: str, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, _strict_response_validation=True)


@functools.cache
def _genai(url: str, key: str) -> genai.Client:
    options = types.HttpOptions(base_url=url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1))
    return genai.Client(api_key=key, http_options=options)


class Client:
    name = ""
    #: Exception classes the SDK raises for the proxy's 429 / 5xx answers and a mid-stream error.
    rate_limited: type[Exception] = Exception
    server_error: type[Exception] = Exception
    stream_error: type[Exception] = Exception
    ids: tuple[str, str] = ("call_w1", "call_t2")
    # OpenAI limits call ids to 64 characters (its error says 40 for some models).
    id_pattern = r"[A-Za-z0-9_-]{1,64}"

    def __init__(self, url: str, key: str, model: str, request_id: str) -> None:
        self.url, self.key, self.model = url, key, model
        self.headers = {"x-request-id": request_id}

    def ask(self, ask: Ask) -> Result:
        raise NotImplementedError

    def check_ids(self, ids: list[str]) -> None:
        """Tool-call ids a client of this dialect can send back: present, distinct, well-formed."""
        assert len(set(ids)) == len(ids) and all(re.fullmatch(self.id_pattern, i) for i in ids), ids

    def status(self, exc: Exception) -> int:
        return int(exc.status_code)  # type: ignore[attr-defined]

    def retry_after(self, exc: Exception) -> str | None:
        return exc.response.headers.get("retry-after")  # type: ignore[attr-defined, no-any-return]


class ChatClient(Client):
    name = "chat"
    rate_limited, server_error, stream_error = openai.RateLimitError, openai.InternalServerError, openai.APIError

    def __init__(self, *args: str) -> None:
        super().__init__(*args)
        self.sdk = _openai(self.url, self.key)

    def messages(self, ask: Ask) -> list[dict[str, Any]]:
        user: Any = ask.prompt
        if ask.image:
            user = [{"type": "text", "text": ask.prompt},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]  # fmt: skip
        out: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
        if ask.history:
            out.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                for i, (n, a) in zip(self.ids, CALLS, strict=True)]})  # fmt: skip
            out += [{"role": "tool", "tool_call_id": i, "content": r} for i, _, r in ask.results(self.ids)]
        return out

    def kwargs(self, ask: Ask) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if ask.tools or ask.history:
            kw["tools"] = [{"type": "function", "function": {"name": n, "parameters": p}} for n, p in PARAMS.items()]
        if ask.max_tokens:
            kw["max_completion_tokens"] = ask.max_tokens
        if ask.schema:
            kw["response_format"] = {"type": "json_schema",
                                     "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}  # fmt: skip
        if ask.reasoning:
            kw["reasoning_effort"] = "low"
        return kw

    def ask(self, ask: Ask) -> Result:
        args: dict[str, Any] = {"model": self.model, "messages": self.messages(ask), "extra_headers": self.headers,
                                **self.kwargs(ask)}  # fmt: skip
        if ask.stream:
            with self.sdk.chat.completions.stream(**args, stream_options={"include_usage": True}) as s:
                try:
                    done: Any = s.get_final_completion()
                except openai.LengthFinishReasonError as exc:  # the helper refuses to parse a cut answer
                    done = exc.completion
        else:
            done = self.sdk.chat.completions.create(**args)
        msg = done.choices[0].message
        calls = msg.tool_calls or []
        return Result(
            text=msg.content or "", thinking=getattr(msg, "reasoning_content", None) or "",
            calls=[(c.function.name, json.loads(c.function.arguments)) for c in calls], call_ids=[c.id for c in calls],
            finish=done.choices[0].finish_reason,
            usage=(done.usage.prompt_tokens, done.usage.completion_tokens) if done.usage else (0, 0), model=done.model,
        )  # fmt: skip


class ResponsesClient(Client):
    name = "responses"
    rate_limited, server_error, stream_error = openai.RateLimitError, openai.InternalServerError, StreamFailed

    def __init__(self, *args: str) -> None:
        super().__init__(*args)
        self.sdk = _openai(self.url, self.key)

    def input(self, ask: Ask) -> Any:
        if not ask.image and not ask.history:
            return ask.prompt
        content: list[dict[str, Any]] = [{"type": "input_text", "text": ask.prompt}]
        if ask.image:
            content.append({"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"})
        items: list[dict[str, Any]] = [{"type": "message", "role": "user", "content": content}]
        if ask.history:
            items += [{"type": "function_call", "call_id": i, "name": n, "arguments": json.dumps(a)}
                      for i, (n, a) in zip(self.ids, CALLS, strict=True)]  # fmt: skip
            items += [{"type": "function_call_output", "call_id": i, "output": r} for i, _, r in ask.results(self.ids)]
        return items

    def kwargs(self, ask: Ask) -> dict[str, Any]:
        kw: dict[str, Any] = {"instructions": SYSTEM}
        if ask.tools or ask.history:
            kw["tools"] = [{"type": "function", "name": n, "parameters": p, "strict": False} for n, p in PARAMS.items()]
        if ask.max_tokens:
            kw["max_output_tokens"] = ask.max_tokens
        if ask.schema:
            kw["text"] = {"format": {"type": "json_schema", "name": "answer", "schema": SCHEMA, "strict": True}}
        if ask.reasoning:
            kw["reasoning"] = {"effort": "low", "summary": "auto"}
        return kw

    def ask(self, ask: Ask) -> Result:
        args: dict[str, Any] = {"model": self.model, "input": self.input(ask), "extra_headers": self.headers,
                                **self.kwargs(ask)}  # fmt: skip
        if not ask.stream:
            return self.result(self.sdk.responses.create(**args))
        final: Any = None
        with self.sdk.responses.stream(**args) as s:
            for ev in s:
                if ev.type == "error":
                    raise StreamFailed(ev.message)
                if ev.type in ("response.completed", "response.incomplete", "response.failed"):
                    final = ev.response
            if final is not None and final.status == "completed":
                final = s.get_final_response()
        if final is None or final.status == "failed":
            raise StreamFailed(str(final.error if final is not None else "no terminal event"))
        return self.result(final)

    def result(self, r: Any) -> Result:
        calls = [i for i in r.output if i.type == "function_call"]
        reason = r.incomplete_details.reason if r.status == "incomplete" and r.incomplete_details else None
        finish = "length" if reason == "max_output_tokens" else reason or ("tool_calls" if calls else "stop")
        return Result(
            text=r.output_text, thinking="".join(s.text for i in r.output if i.type == "reasoning" for s in i.summary),
            calls=[(c.name, json.loads(c.arguments)) for c in calls], call_ids=[c.call_id for c in calls],
            finish=finish if r.status in ("completed", "incomplete") else r.status,
            usage=(r.usage.input_tokens, r.usage.output_tokens) if r.usage else (0, 0), model=r.model,
        )  # fmt: skip


class AnthropicClient(Client):
    name = "anthropic"
    rate_limited, server_error = anthropic.RateLimitError, anthropic.InternalServerError
    stream_error = anthropic.APIStatusError  # an ``event: error`` raises with the stream's own status
    ids = ("toolu_w1", "toolu_t2")
    id_pattern = r"[A-Za-z0-9_-]{1,128}"

    def __init__(self, *args: str) -> None:
        super().__init__(*args)
        self.sdk = _anthropic(self.url, self.key)

    def messages(self, ask: Ask) -> list[dict[str, Any]]:
        user: Any = ask.prompt
        if ask.image:
            user = [{"type": "text", "text": ask.prompt},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]  # fmt: skip
        out: list[dict[str, Any]] = [{"role": "user", "content": user}]
        if ask.history:
            out.append({"role": "assistant", "content": [{"type": "tool_use", "id": i, "name": n, "input": a}
                                                         for i, (n, a) in zip(self.ids, CALLS, strict=True)]})  # fmt: skip
            out.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": i, "content": r}
                                                    for i, _, r in ask.results(self.ids)]})  # fmt: skip
        return out

    def kwargs(self, ask: Ask) -> dict[str, Any]:
        kw: dict[str, Any] = {"system": SYSTEM, "max_tokens": ask.max_tokens or 1024}
        if ask.tools or ask.history:
            kw["tools"] = [{"name": n, "input_schema": p} for n, p in PARAMS.items()]
        if ask.schema:
            kw["output_config"] = {"format": {"type": "json_schema", "schema": SCHEMA}}
        if ask.reasoning:
            kw["thinking"], kw["max_tokens"] = {"type": "enabled", "budget_tokens": 1024}, 2048
        return kw

    def ask(self, ask: Ask) -> Result:
        args: dict[str, Any] = {"model": self.model, "messages": self.messages(ask), "extra_headers": self.headers,
                                **self.kwargs(ask)}  # fmt: skip
        if ask.stream:
            with self.sdk.messages.stream(**args) as s:
                m: Any = s.get_final_message()
        else:
            m = self.sdk.messages.create(**args)
        calls = [b for b in m.content if b.type == "tool_use"]
        finish = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls"}.get(
            m.stop_reason, m.stop_reason
        )
        u = m.usage
        return Result(
            text="".join(b.text for b in m.content if b.type == "text"),
            thinking="".join(b.thinking for b in m.content if b.type == "thinking"),
            calls=[(b.name, b.input) for b in calls], call_ids=[b.id for b in calls], finish=finish,
            usage=(u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0),
                   u.output_tokens), model=m.model,
        )  # fmt: skip


class GeminiClient(Client):
    name = "gemini"
    rate_limited, server_error, stream_error = genai_errors.ClientError, genai_errors.ServerError, genai_errors.APIError
    ids = ("", "")

    def __init__(self, *args: str) -> None:
        super().__init__(*args)
        self.sdk = _genai(self.url, self.key)

    def check_ids(self, ids: list[str]) -> None:
        super().check_ids([i for i in ids if i])  # Gemini's calls may have no id

    def status(self, exc: Exception) -> int:
        return int(exc.code)  # type: ignore[attr-defined]

    def retry_after(self, exc: Exception) -> str | None:
        details = exc.details if isinstance(exc, genai_errors.APIError) else None  # type: ignore[attr-defined]
        for d in ((details or {}).get("error") or {}).get("details") or []:
            if str(d.get("@type", "")).endswith("RetryInfo"):
                return str(d["retryDelay"]).removesuffix("s")
        return None

    def config(self, ask: Ask) -> types.GenerateContentConfig:
        cfg = types.GenerateContentConfig(
            system_instruction=SYSTEM, http_options=types.HttpOptions(headers=self.headers)
        )
        if ask.tools or ask.history:
            cfg.tools = [types.Tool(function_declarations=[
                types.FunctionDeclaration(name=n, parameters_json_schema=p) for n, p in PARAMS.items()])]  # fmt: skip
        if ask.max_tokens:
            cfg.max_output_tokens = ask.max_tokens
        if ask.schema:
            cfg.response_mime_type, cfg.response_json_schema = "application/json", SCHEMA
        if ask.reasoning:
            cfg.thinking_config = types.ThinkingConfig(include_thoughts=True, thinking_budget=1024)
        return cfg

    def ask(self, ask: Ask) -> Result:
        parts = [types.Part.from_text(text=ask.prompt)]
        if ask.image:
            parts.append(types.Part.from_bytes(data=base64.b64decode(PNG), mime_type="image/png"))
        user = types.Content(role="user", parts=parts)
        cfg = self.config(ask)
        if ask.history:
            model_turn = types.Content(role="model", parts=[
                types.Part(function_call=types.FunctionCall(name=n, args=a)) for n, a in CALLS])  # fmt: skip
            chat = self.sdk.chats.create(model=self.model, config=cfg, history=[user, model_turn])
            answers = [types.Part.from_function_response(name=n, response={"result": r})
                       for _, n, r in ask.results(self.ids)]  # fmt: skip
            chunks = list(chat.send_message_stream(answers)) if ask.stream else [chat.send_message(answers)]
        elif ask.stream:
            chunks = list(self.sdk.models.generate_content_stream(model=self.model, contents=[user], config=cfg))
        else:
            chunks = [self.sdk.models.generate_content(model=self.model, contents=[user], config=cfg)]
        return self.result(chunks)

    def result(self, chunks: list[types.GenerateContentResponse]) -> Result:
        out = Result()
        finish: Any = None
        for c in chunks:
            cand = (c.candidates or [None])[0]
            for p in (cand.content.parts or []) if cand and cand.content else []:
                if p.function_call:
                    out.calls.append((p.function_call.name or "", dict(p.function_call.args or {})))
                    out.call_ids.append(p.function_call.id or "")
                elif p.thought and p.text:
                    out.thinking += p.text
                elif p.text:
                    out.text += p.text
            finish = cand.finish_reason if cand and cand.finish_reason else finish
        last = chunks[-1]
        u = last.usage_metadata
        if u is not None:
            out.usage = (u.prompt_token_count or 0, (u.candidates_token_count or 0) + (u.thoughts_token_count or 0))
        names = {"MAX_TOKENS": "length", "STOP": "tool_calls" if out.calls else "stop"}
        out.finish = names.get(str(getattr(finish, "value", finish)), str(finish))
        out.model = last.model_version or ""
        return out


CLIENTS: dict[str, type[Client]] = {c.name: c for c in (ChatClient, ResponsesClient, AnthropicClient, GeminiClient)}
PAIRS = [f"{c}->{u}" for c in CLIENTS for u in UPSTREAMS]
#: Account providers (Copilot, Claude OAuth, Code Assist) x every client, for the core of the matrix.
ACCOUNT_PAIRS = [f"{c}->{u}" for c in CLIENTS for u in ACCOUNT_UPSTREAMS]
EVERY_UPSTREAM = {**UPSTREAMS, **ACCOUNT_UPSTREAMS}


@dataclass
class Pair:
    client: Client
    upstream: Upstream
    fake: FakeUpstream
    live: Any
    request_id: str

    @property
    def model(self) -> str:
        return self.client.model

    def script(self, *scripts: Script) -> None:
        self.fake.queue("*", *scripts)

    def sent(self) -> Sent:
        assert len(self.fake.requests) == 1, [r.path for r in self.fake.requests]
        return self.upstream.sent(self.fake.requests[0])

    def record(self) -> UsageRecord:
        """This test's usage row (the clients send ``x-request-id``), once written. A stream's
        usage is recorded when the server's side of it ends, which may be after the SDK has
        read what it needs and returned: under load, wait for it a little."""
        for _ in range(40):
            self.live.flush_usage()
            row = UsageRecord.objects.filter(request_id=self.request_id).first()
            if row is not None:
                return row
        raise AssertionError(f"no usage row for request {self.request_id}")


#: The default database's name as configured, read when this conftest is imported (collection,
#: before any fixture has set up a test database).
_CONFIGURED_DB_NAME = settings.DATABASES["default"]["NAME"]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """pytest-django creates only the test databases its marked tests use. The matrix's tests
    share module-scoped rows instead of being marked (a flush per test costs more than the
    test), so when only they run, create the default test database here; never let the live
    server fall through to the developer's database."""
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    # Compared with the name configured before any test database existed: on PostgreSQL
    # ``_get_test_db_name()`` is "test_" + the *current* name, so once the root fixture had
    # switched to test_X it said test_test_X, and a second database was set up under a live
    # server already connected to the first (every key created after that was a 401).
    if connection.settings_dict["NAME"] != _CONFIGURED_DB_NAME:
        yield
        return
    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0)


@pytest.fixture(scope="module")
def matrix_key(live_server_session: Any, django_db_blocker: Any, upstream: FakeUpstream) -> Iterator[str]:
    """One provider per upstream dialect (model ``m-<dialect>``) and a key, made once per module:
    rows and a reload per test would cost more than the test. Removed again afterwards, since
    other modules expect an empty database."""
    # Unblocked throughout: the live server's own threads use the database while tests run.
    with django_db_blocker.unblock():
        for up in EVERY_UPSTREAM.values():
            p = factories.provider(f"up-{up.name}", upstream.url + up.suffix, type=up.type, models=[
                {"name": f"m-{up.name}", "upstream": up.model, "input_price": "1", "output_price": "2"}])  # fmt: skip
            Provider.objects.filter(pk=p.pk).update(options=up.options, auth_type=up.auth_type)
            if up.credential:
                for cred in p.credentials.all():
                    cred.api_key = ""
                    for k, v in up.credential.items():
                        setattr(cred, k, v)
                    cred.save()
        user = User.objects.create(username="matrix")  # no password: hashing one costs ~1 s
        _, key = create_api_key(user)
        live_server_session.reload()
        yield key
        live_server_session.flush_usage()
        Provider.objects.filter(name__startswith="up-").delete()
        user.delete()
        UsageRecord.objects.all().delete()
        live_server_session.reload()


@pytest.fixture
def pair(
    request: pytest.FixtureRequest, matrix_key: str, live_server_session: Any, django_db_blocker: Any,
    fake: FakeUpstream,
) -> Iterator[Pair]:  # fmt: skip
    """``request.param`` is "client->upstream"; routing state (cooldowns) starts clean."""
    client_name, upstream_name = request.param.split("->")
    live_server_session.engine.gateway.router.clear()
    rid = uuid.uuid4().hex
    client = CLIENTS[client_name](live_server_session.url, matrix_key, f"m-{upstream_name}", rid)
    with django_db_blocker.unblock():
        yield Pair(client, EVERY_UPSTREAM[upstream_name], fake, live_server_session, rid)
