"""The offline demo provider through the live app, with each official SDK, streamed and not."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from proxy.configsync.demo import add_demo_provider
from proxy.models import UsageRecord
from tests import factories

LABEL = "[llmproxy demo provider]"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def key(live: Any) -> str:
    assert add_demo_provider() is not None
    _, raw = factories.api_key(factories.user())
    live.reload()
    return raw


def oai(live: Any, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0, _strict_response_validation=True)


def claude(live: Any, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=live.url, api_key=key, max_retries=0, _strict_response_validation=True)


def gemini(live: Any, key: str) -> genai.Client:
    options = types.HttpOptions(
        base_url=live.url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)
    )
    return genai.Client(api_key=key, http_options=options)


@pytest.mark.parametrize("stream", [False, True])
def test_it_echoes_in_openai_chat_and_records_zero_cost(live: Any, key: str, stream: bool) -> None:
    msgs: Any = [{"role": "user", "content": "hello demo"}]
    if stream:
        with oai(live, key).chat.completions.stream(model="demo", messages=msgs,
                                                    stream_options={"include_usage": True}) as s:  # fmt: skip
            done: Any = s.get_final_completion()
    else:
        done = oai(live, key).chat.completions.create(model="demo", messages=msgs)
    text = done.choices[0].message.content
    assert text.startswith(LABEL) and '"hello demo"' in text
    assert done.model == "demo" and done.usage.prompt_tokens > 0 and done.usage.completion_tokens > 0
    live.flush_usage()
    rec = UsageRecord.objects.get()
    assert (rec.provider, rec.model, rec.status_code, rec.stream) == ("demo", "demo", 200, stream)
    assert rec.cost_usd == 0 and rec.completion_tokens == done.usage.completion_tokens


@pytest.mark.parametrize("stream", [False, True])
def test_it_calls_a_tool_then_answers_in_openai_chat(live: Any, key: str, stream: bool) -> None:
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}]
    msgs: list[Any] = [{"role": "user", "content": "Paris"}]
    sdk = oai(live, key)

    def ask() -> Any:
        if not stream:
            return sdk.chat.completions.create(model="demo", messages=msgs, tools=tools)
        with sdk.chat.completions.stream(model="demo", messages=msgs, tools=tools) as s:
            return s.get_final_completion()

    first = ask()
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.content.startswith(LABEL)  # a tool call is labelled too
    (call,) = first.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    msgs += [{"role": "assistant", "tool_calls": [{"id": call.id, "type": "function", "function": {
        "name": "get_weather", "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]  # fmt: skip
    final = ask()
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content.startswith(LABEL) and "sunny" in final.choices[0].message.content


@pytest.mark.parametrize("stream", [False, True])
def test_it_answers_the_responses_api(live: Any, key: str, stream: bool) -> None:
    sdk = oai(live, key)
    if stream:
        with sdk.responses.stream(model="demo", input="hi responses") as s:
            resp: Any = s.get_final_response()
    else:
        resp = sdk.responses.create(model="demo", input="hi responses")
    assert resp.output_text.startswith(LABEL) and "hi responses" in resp.output_text
    assert resp.usage.input_tokens > 0


@pytest.mark.parametrize("stream", [False, True])
def test_it_answers_anthropic_messages_with_a_tool_call(live: Any, key: str, stream: bool) -> None:
    sdk = claude(live, key)
    tools: Any = [{"name": "get_weather", "input_schema": WEATHER}]
    msgs: Any = [{"role": "user", "content": "Oslo"}]
    if stream:
        with sdk.messages.stream(model="demo", max_tokens=100, messages=msgs, tools=tools) as s:
            msg: Any = s.get_final_message()
    else:
        msg = sdk.messages.create(model="demo", max_tokens=100, messages=msgs, tools=tools)
    assert msg.stop_reason == "tool_use"
    (use,) = [b for b in msg.content if b.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Oslo"}
    assert msg.content[0].type == "text" and msg.content[0].text.startswith(LABEL)
    plain = sdk.messages.create(model="demo", max_tokens=100, messages=msgs)
    assert plain.content[0].text.startswith(LABEL) and plain.usage.output_tokens > 0


@pytest.mark.parametrize("stream", [False, True])
def test_it_answers_gemini(live: Any, key: str, stream: bool) -> None:
    sdk = gemini(live, key)
    if stream:
        text = "".join(c.text or "" for c in sdk.models.generate_content_stream(model="demo", contents="hi gemini"))
    else:
        reply = sdk.models.generate_content(model="demo", contents="hi gemini")
        text = reply.text or ""
        assert reply.usage_metadata is not None and (reply.usage_metadata.prompt_token_count or 0) > 0
    assert text.startswith(LABEL) and "hi gemini" in text


def test_it_answers_legacy_completions_and_lists_the_model(live: Any, key: str) -> None:
    sdk = oai(live, key)
    done = sdk.completions.create(model="demo", prompt="old school")
    assert done.choices[0].text.startswith(LABEL) and "old school" in done.choices[0].text
    assert [m.id for m in sdk.models.list()] == ["demo"]


def test_it_answers_gemini_as_the_readme_shows_it_on_the_sdks_default_version(live: Any, key: str) -> None:
    # README: genai.Client(http_options={"base_url": ...}), no api_version: google-genai 3.x calls /v1/.
    sdk = genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=live.url, retry_options=types.HttpRetryOptions(attempts=1)))  # fmt: skip
    assert (sdk.models.generate_content(model="demo", contents="hi v1").text or "").startswith(LABEL)
    streamed = "".join(c.text or "" for c in sdk.models.generate_content_stream(model="demo", contents="hi v1"))
    assert streamed.startswith(LABEL) and "hi v1" in streamed
    assert (sdk.models.count_tokens(model="demo", contents="hi v1").total_tokens or 0) > 0
    assert [m.name for m in sdk.models.list()] == ["models/demo"]


@pytest.mark.parametrize("stream", [False, True])
def test_it_calls_a_tool_in_the_responses_api_and_gemini(live: Any, key: str, stream: bool) -> None:
    sdk = oai(live, key)
    tools: Any = [{"type": "function", "name": "get_weather", "parameters": WEATHER}]
    if stream:
        with sdk.responses.stream(model="demo", input="Rome", tools=tools) as s:
            resp: Any = s.get_final_response()
    else:
        resp = sdk.responses.create(model="demo", input="Rome", tools=tools)
    (call,) = [o for o in resp.output if o.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Rome"}
    assert resp.output_text.startswith(LABEL)
    decl = types.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER)
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[decl])],
                                         automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))  # fmt: skip
    g = gemini(live, key)  # held: a client nobody references is closed before its call
    if stream:
        chunks = list(g.models.generate_content_stream(model="demo", contents="Rome", config=config))
        calls = [c for chunk in chunks for c in (chunk.function_calls or [])]
        text = "".join(chunk.text or "" for chunk in chunks)
    else:
        reply = g.models.generate_content(model="demo", contents="Rome", config=config)
        calls, text = list(reply.function_calls or []), reply.text or ""
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Rome"})]
    assert text.startswith(LABEL)
