"""A conversation moved between two credentials of one provider type, and back: no upstream
gets a signature another account issued (docs/routing.md, "Switching provider").

Two providers of each type stand for two accounts (``m-<dialect>-a`` and ``m-<dialect>-b``,
each with its own key). Anthropic signs with Anthropic's key, good on any account, so its
thinking goes to both; Gemini thought signatures and OpenAI Responses reasoning items are
the issuing account's, so they never reach the other one, and once a conversation's
signatures are mixed no account gets them. Each conversation goes on without an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from llmproxy.formats.gemini import SKIP_SIGNATURE
from proxy.models import Provider
from tests import factories
from tests.contract.conftest import Pair
from tests.contract.test_provider_switch import ANTHROPIC_SIGNATURE, TOOLS, _anthropic_turn, _replay, _result
from tests.fakes import FakeUpstream
from tests.fakes.matrix import SIGNATURE, UPSTREAMS, Turn

DIALECTS = ("anthropic", "gemini", "responses")


@pytest.fixture(scope="module")
def accounts(
    matrix_key: str, live_server_session: Any, django_db_blocker: Any, upstream: FakeUpstream
) -> Iterator[str]:
    with django_db_blocker.unblock():
        for name in DIALECTS:
            up = UPSTREAMS[name]
            for acct in ("a", "b"):
                p = factories.provider(f"acct-{acct}-{name}", upstream.url + up.suffix, type=up.type,
                                       api_key=f"sk-account-{acct}",
                                       models=[{"name": f"m-{name}-{acct}", "upstream": up.model}])  # fmt: skip
                Provider.objects.filter(pk=p.pk).update(options=up.options)
        live_server_session.reload()
        yield matrix_key
        Provider.objects.filter(name__startswith="acct-").delete()
        live_server_session.reload()


def _bodies(pair: Pair) -> list[str]:
    return [json.dumps(r.body) for r in pair.fake.requests]


@pytest.mark.parametrize("pair", ["anthropic->anthropic"], indirect=True)
def test_anthropic_thinking_moves_with_the_conversation_between_accounts(pair: Pair, accounts: str) -> None:
    claude = UPSTREAMS["anthropic"]
    think = Turn(["Checking."], thinking=["Let me look."], calls=[("get_weather", {"city": "Paris"})])
    pair.script(claude.reply(think, False), claude.reply(think, False), claude.reply(Turn(["Done."]), False))
    history: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris, twice?"}]
    for model, answer in (("m-anthropic-a", "20C"), ("m-anthropic-b", "21C")):
        msg = _anthropic_turn(pair, model, history)
        history += [_replay(msg), _result(msg, answer)]
    last = _anthropic_turn(pair, "m-anthropic-a", history)
    assert "".join(b.text for b in last.content if b.type == "text") == "Done."
    keys = [r.headers["x-api-key"] for r in pair.fake.requests]
    assert keys == ["sk-account-a", "sk-account-b", "sk-account-a"]
    to_b, back = _bodies(pair)[1:]
    assert to_b.count(ANTHROPIC_SIGNATURE) == 1 and back.count(ANTHROPIC_SIGNATURE) == 2  # kept: Anthropic's own


@pytest.mark.parametrize("pair", ["gemini->gemini"], indirect=True)
def test_a_gemini_signature_never_reaches_another_account(pair: Pair, accounts: str) -> None:
    from google.genai import types

    gemini = UPSTREAMS["gemini"]
    think = Turn(["Checking."], thinking=["Let me look."], calls=[("get_weather", {"city": "Paris"})])
    pair.script(gemini.reply(think, False), gemini.reply(think, False), gemini.reply(think, False),
                gemini.reply(Turn(["Done."]), False))  # fmt: skip
    sdk = pair.client.sdk  # type: ignore[attr-defined]
    cfg = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(
            name="get_weather", parameters_json_schema=TOOLS[0]["input_schema"])])],
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=1024),
    )  # fmt: skip
    history: list[types.Content] = [types.Content(role="user", parts=[types.Part.from_text(text="Weather, often?")])]
    for model, answer in (("m-gemini-a", "20C"), ("m-gemini-a", "21C"), ("m-gemini-b", "22C")):
        got = sdk.models.generate_content(model=model, contents=history, config=cfg)
        content = got.candidates[0].content
        assert any(p.function_call for p in content.parts), content
        history += [content, types.Content(role="user", parts=[
            types.Part.from_function_response(name="get_weather", response={"result": answer})])]  # fmt: skip
    last = sdk.models.generate_content(model="m-gemini-a", contents=history, config=cfg)
    assert last.text == "Done."
    keys = [r.headers["x-goog-api-key"] for r in pair.fake.requests]
    assert keys == ["sk-account-a", "sk-account-a", "sk-account-b", "sk-account-a"]
    same, to_b, back = _bodies(pair)[1:]
    assert same.count(SIGNATURE) == 1  # account A gets back the signature it issued
    assert SIGNATURE not in to_b and SKIP_SIGNATURE in to_b  # never account B
    assert SIGNATURE not in back and SKIP_SIGNATURE in back  # mixed now: no account gets them


REASONING = {"type": "reasoning", "id": "rs_a1", "summary": [], "encrypted_content": "gAAAAB-account-a-only"}


@pytest.mark.parametrize("pair", ["responses->responses"], indirect=True)
def test_a_responses_reasoning_item_never_reaches_another_account(pair: Pair, accounts: str) -> None:
    responses = UPSTREAMS["responses"]
    pair.script(*[responses.reply(Turn(["Fine."]), False) for _ in range(4)])
    sdk = pair.client.sdk  # type: ignore[attr-defined]
    start: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    later = [*start, REASONING,
             {"type": "function_call", "id": "fc_a1", "call_id": "call_1", "name": "get_weather",
              "arguments": '{"city": "Paris"}'},
             {"type": "function_call_output", "call_id": "call_1", "output": "20C"}]  # fmt: skip
    tools = [{"type": "function", "name": "get_weather", "parameters": TOOLS[0]["input_schema"]}]
    for model, items in (("m-responses-a", start), ("m-responses-a", later), ("m-responses-b", later),
                         ("m-responses-a", later)):  # fmt: skip
        got = sdk.responses.create(model=model, input=items, tools=tools, store=False,
                                   include=["reasoning.encrypted_content"])  # fmt: skip
        assert got.output_text == "Fine."
    keys = [r.headers["authorization"] for r in pair.fake.requests]
    assert keys == ["Bearer sk-account-a", "Bearer sk-account-a", "Bearer sk-account-b", "Bearer sk-account-a"]
    same, to_b, back = [r.body["input"] for r in pair.fake.requests[1:]]
    assert REASONING in same and any(i.get("id") == "fc_a1" for i in same)  # its own account: as sent
    for sent in (to_b, back):
        assert all(i.get("type") != "reasoning" for i in sent) and "gAAAAB" not in json.dumps(sent)
        assert [i.get("type") for i in sent if i.get("type")] == ["function_call", "function_call_output"]
        assert all("id" not in i for i in sent if i.get("type") == "function_call")
