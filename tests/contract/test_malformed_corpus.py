"""A corpus of malformed requests on every LLM endpoint of the live app.

Whatever a client sends (bad JSON, invalid UTF-8, wrong types at every level of a valid
body, deep nesting, huge strings and numbers, NaN, duplicate keys, bad tool arguments,
wrong or missing content types, an empty body, a top level that is not an object), the
answer is a 4xx in the endpoint's own error format, never a 5xx, never a traceback or a
Python repr. Mutations that leave a valid request may succeed (2xx); nothing may break.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests import factories
from tests.fakes import FakeUpstream
from tests.fakes import openai as oa
from tests.fakes.server import Recorded, Reply, Stream

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "gpt-test"
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}}}}  # fmt: skip
# What a Python repr or a traceback looks like in a body; an error message never holds one.
LEAKS = re.compile(r"Traceback|File \"|\.py\", line|object at 0x|<class '|\{'[a-z_]+': |\[\{'|Error\(['\"]")


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    dialect: str  # openai | anthropic | gemini: the error envelope to expect
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


def _endpoints() -> list[Endpoint]:
    user = {"role": "user", "content": "hi"}
    ant = (("anthropic-version", "2023-06-01"),)
    gem_body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "object"}}]}],
                "generationConfig": {"maxOutputTokens": 16, "temperature": 0.5}}  # fmt: skip
    tool_turn = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ],
    }
    return [
        Endpoint("chat", "/v1/chat/completions", "openai",
                 {"model": MODEL, "messages": [user, tool_turn, {"role": "tool", "tool_call_id": "c1", "content": "20C"}],
                  "tools": [TOOL], "max_tokens": 16, "temperature": 0.5, "stream": False}),
        Endpoint("chat-stream", "/v1/chat/completions", "openai",
                 {"model": MODEL, "messages": [user], "stream": True, "stream_options": {"include_usage": True}}),
        Endpoint("completions", "/v1/completions", "openai", {"model": MODEL, "prompt": "hi", "max_tokens": 16}),
        Endpoint("responses", "/v1/responses", "openai",
                 {"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
                  "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
                  "max_output_tokens": 16, "store": False}),
        Endpoint("messages", "/v1/messages", "anthropic",
                 {"model": MODEL, "max_tokens": 16, "system": "be brief",
                  "messages": [user, {"role": "assistant", "content": [
                      {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}}]},
                      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "20C"}]}],
                  "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]}, ant),
        Endpoint("count_tokens", "/v1/messages/count_tokens", "anthropic",
                 {"model": MODEL, "messages": [user]}, ant),
        Endpoint("gemini-generate", f"/v1beta/models/{MODEL}:generateContent", "gemini", gem_body),
        Endpoint("gemini-stream", f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", "gemini", gem_body),
        Endpoint("gemini-count", f"/v1beta/models/{MODEL}:countTokens", "gemini",
                 {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
        Endpoint("embeddings", "/v1/embeddings", "openai", {"model": MODEL, "input": ["hi", "there"]}),
    ]  # fmt: skip


ENDPOINTS = _endpoints()
DEEP = 10_000


def raw_corpus(base: dict[str, Any]) -> Iterator[tuple[str, bytes, str | None]]:
    """(label, body, content type) that are broken as bytes or as JSON documents."""
    ok = json.dumps(base)
    first = next(iter(base))
    yield "empty", b"", "application/json"
    yield "no content type, empty", b"", None
    yield "truncated", ok[: len(ok) // 2].encode(), "application/json"
    yield "not json", b"hello there", "application/json"
    yield "form encoded", b"model=gpt-test&messages=hi", "application/x-www-form-urlencoded"
    yield "xml", b"<request><model>gpt-test</model></request>", "application/xml"
    yield "invalid utf-8", b"\xff\xfe\xfa" + ok.encode(), "application/json"
    yield "invalid utf-8 in a string", ok.replace('"hi"', '"h\udcffi"', 1).encode("utf-8", "surrogateescape"), None
    yield "lone surrogate escape", ok.replace('"hi"', '"\\ud800"', 1).encode(), "application/json"
    yield "utf-16", ok.encode("utf-16"), "application/json"
    yield "bom", b"\xef\xbb\xbf" + ok.encode(), "application/json"
    yield "nul bytes", ok.encode().replace(b"{", b"{\x00", 1), "application/json"
    for top in (b"[]", b"null", b"1", b'"text"', b"true", b"[" + ok.encode() + b"]"):
        yield f"top level {top[:10]!r}", top, "application/json"
    yield "deep arrays", b"[" * DEEP + b"]" * DEEP, "application/json"
    yield "deep objects", b'{"a":' * DEEP + b"1" + b"}" * DEEP, "application/json"
    for key in base:
        yield f"deep {key}", (ok[:-1] + f', "{key}": ' + "[" * DEEP + "]" * DEEP + "}").encode(), "application/json"
        yield f"deep object {key}", (ok[:-1] + f', "{key}": ' + '{"a":' * DEEP + "1" + "}" * DEEP + "}").encode(), None
    for num in ("NaN", "Infinity", "-Infinity", "1e999999", *VALID_NUMBERS):
        for key in base:
            yield f"{key}={num}", (ok[:-1] + f', "{key}": {num}}}').encode(), "application/json"
    yield "duplicate keys, last bad", (ok[:-1] + f', "{first}": {{"x": [1, 2]}}}}').encode(), "application/json"
    yield "trailing garbage", ok.encode() + b"}}}", "application/json"
    yield "huge model name", json.dumps({**base, "model": "m" * 1_000_000}).encode(), "application/json"
    yield "too large", b'{"model": "' + b"x" * (11 * 1024 * 1024) + b'"}', "application/json"


# Valid JSON a lenient reader may take: huge or negative-zero numbers where any value is
# read for its truth (stream, store), a BOM, a Gemini body's own "model" (the path names it).
VALID_NUMBERS = ("123456789012345678901234567890123456789", "-0.0e-99999")


def lenient(ep: Endpoint, label: str) -> bool:
    return label == "bom" or label.endswith(VALID_NUMBERS) or (ep.dialect == "gemini" and label == "huge model name")


VALUES: list[Any] = [None, True, -1, 10**40, 1.5, "", "s" * 5000, [], [None], {}, {"": None}]


def mutations(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, replacement) for every value at every level of a valid body."""
    if isinstance(value, dict):
        for k, v in value.items():
            for alt in VALUES:
                if type(alt) is not type(v) or alt != v:
                    yield (*path, k), alt
            yield from mutations(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            for alt in VALUES:
                yield (*path, i), alt
            yield from mutations(v, (*path, i))


def replaced(body: Any, path: tuple[Any, ...], alt: Any) -> Any:
    if not path:
        return alt
    head, rest = path[0], path[1:]
    if isinstance(body, dict):
        return {**body, head: replaced(body[head], rest, alt)}
    out = list(body)
    out[head] = replaced(body[head], rest, alt)
    return out


def bad_tools(ep: Endpoint) -> Iterator[tuple[str, Any]]:
    """Tool definitions and tool-call arguments that are not what the dialect allows."""
    body = ep.body
    for args in ("{not json", "[1, 2]", "null", "", '"string"', '{"city": ' + "[" * DEEP + "]" * DEEP + "}"):
        if ep.name == "chat":
            turn = json.loads(json.dumps(body["messages"][1]))
            turn["tool_calls"][0]["function"]["arguments"] = args
            yield (
                f"tool arguments {args[:12]!r}",
                {**body, "messages": [body["messages"][0], turn, body["messages"][2]]},
            )
    for tools in ([{"type": "function"}], [{"function": None}], [{"type": "function", "function": {"name": 5}}],
                  [{"name": "x", "input_schema": "not a schema"}], [{"functionDeclarations": [{"parameters": []}]}],
                  ["a string"], [[]], {"a": 1}):  # fmt: skip
        if "tools" in body:
            yield f"tools {json.dumps(tools)[:30]}", {**body, "tools": tools}


def check(ep: Endpoint, label: str, r: httpx.Response, problems: list[str]) -> None:
    text = r.text
    where = f"{ep.name} / {label}: {r.status_code}"
    if r.status_code >= 500:
        problems.append(f"{where} {text[:300]}")
        return
    if LEAKS.search(text):
        problems.append(f"{where} leaks a repr or traceback: {text[:300]}")
    if r.status_code < 400:
        return
    try:
        data = r.json()
    except ValueError:
        problems.append(f"{where} error body is not JSON: {text[:200]}")
        return
    if not _dialect_error(ep.dialect, data, r.status_code):
        problems.append(f"{where} not a {ep.dialect} error body: {text[:200]}")


def _dialect_error(dialect: str, data: Any, status: int) -> bool:
    if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
        return False
    err = data["error"]
    if not isinstance(err.get("message"), str) or not err["message"]:
        return False
    if dialect == "anthropic":
        return data.get("type") == "error" and isinstance(err.get("type"), str)
    if dialect == "gemini":
        return err.get("code") == status and isinstance(err.get("status"), str)
    return isinstance(err.get("type"), str)


def _answer(rec: Recorded) -> Reply | Stream:
    body = rec.body if isinstance(rec.body, dict) else {}
    if rec.path.endswith("/embeddings"):
        return Reply({"object": "list", "model": "gpt-up", "usage": {"prompt_tokens": 2, "total_tokens": 2},
                      "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}]})  # fmt: skip
    if rec.path.endswith("/completions") and not rec.path.endswith("/chat/completions"):
        return Reply({"id": "c1", "object": "text_completion", "created": 1, "model": "gpt-up",
                      "choices": [{"index": 0, "text": "ok", "finish_reason": "stop", "logprobs": None}],
                      "usage": oa.usage()})  # fmt: skip
    return oa.stream(["ok"]) if body.get("stream") else oa.completion("ok")


@pytest.fixture
def served(live: Any, fake: FakeUpstream) -> Iterator[tuple[str, str]]:
    factories.provider("up", fake.url + "/v1")
    _, key = factories.api_key(factories.user())
    live.reload()
    fake.default("*", _answer)
    with httpx.Client(base_url=live.url, timeout=30) as client:
        # The valid base body of every endpoint succeeds, so the mutations test the parsers, not the setup.
        for ep in ENDPOINTS:
            r = client.post(ep.path, json=ep.body, headers={"authorization": f"Bearer {key}", **dict(ep.headers)})
            assert r.status_code == 200, (ep.name, r.text)
    yield live.url, key


def _post(client: httpx.Client, ep: Endpoint, key: str, content: bytes, ctype: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}", **dict(ep.headers)}
    if ctype:
        headers["content-type"] = ctype
    return client.post(ep.path, content=content, headers=headers)


@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda e: e.name)
def test_broken_documents_get_a_4xx_in_the_dialect(served: tuple[str, str], ep: Endpoint) -> None:
    url, key = served
    problems: list[str] = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for label, content, ctype in raw_corpus(ep.body):
            r = _post(client, ep, key, content, ctype)
            check(ep, label, r, problems)
            if r.status_code < 400 and not lenient(ep, label):
                problems.append(f"{ep.name} / {label}: accepted ({r.status_code})")
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("ep", ENDPOINTS, ids=lambda e: e.name)
def test_wrong_types_at_every_level_never_break_it(served: tuple[str, str], ep: Endpoint) -> None:
    url, key = served
    problems: list[str] = []
    refused = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        cases = [
            (f"{'.'.join(map(str, p))}={json.dumps(v)[:20]}", replaced(ep.body, p, v)) for p, v in mutations(ep.body)
        ]
        for label, body in [*cases, *bad_tools(ep)]:
            r = _post(client, ep, key, json.dumps(body).encode(), "application/json")
            check(ep, label, r, problems)
            refused += r.status_code >= 400
    assert problems == [], "\n".join(problems)
    assert refused > 0  # the corpus does reach the validation


@pytest.mark.parametrize("path", ["/v1/models", "/v1beta/models"])
def test_model_lists_refuse_bad_keys_and_ignore_bodies(served: tuple[str, str], path: str) -> None:
    url, key = served
    ep = Endpoint("models", path, "gemini" if path.startswith("/v1beta") else "openai", {})
    problems: list[str] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for label, headers in [("no key", {}), ("bad key", {"authorization": "Bearer nope"}),
                               ("empty bearer", {"authorization": "Bearer  x"}), ("latin-1 key", {"x-api-key": "k\xe9y".encode("latin-1")}),
                               ("huge key", {"x-api-key": "k" * 60_000})]:  # fmt: skip
            r = client.get(path, headers=headers)
            check(ep, label, r, problems)
            if r.status_code != 401:
                problems.append(f"{label}: {r.status_code}")
        r = client.request("GET", path, headers={"authorization": f"Bearer {key}"}, content=b"\xff[[[")
        assert r.status_code == 200, r.text
    assert problems == [], "\n".join(problems)
