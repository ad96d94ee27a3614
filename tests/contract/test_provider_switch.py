"""A conversation moved between providers mid-way, and back, goes on without an error, and no
upstream is ever sent a signature it did not issue (docs/routing.md, "Switching provider").

Each test plays one client's conversation over three turns with tool calls and visible
reasoning: turn 1 on one route, turn 2 on a route of another dialect, turn 3 back on the
first. The client sends back everything it got, as SDK users do; the fakes issue their own
signatures (Anthropic thinking signatures, Gemini thought signatures).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.contract.conftest import Pair
from tests.fakes.matrix import SIGNATURE, UPSTREAMS, Turn

ANTHROPIC_SIGNATURE = "EqQBCgIYAhIMsig=="  # what the fake Anthropic upstream signs thinking with
TOOLS = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


def _body(i: int, pair: Pair) -> Any:
    return pair.fake.requests[i].body


def _anthropic_turn(pair: Pair, model: str, messages: list[dict[str, Any]]) -> Any:
    sdk = pair.client.sdk  # type: ignore[attr-defined]
    return sdk.messages.create(model=model, max_tokens=2048, messages=messages, tools=TOOLS,
                               thinking={"type": "enabled", "budget_tokens": 1024})  # fmt: skip


def _replay(msg: Any) -> dict[str, Any]:
    """The assistant turn as an SDK user sends it back: every block, signatures included."""
    return {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]}


def _result(msg: Any, text: str) -> dict[str, Any]:
    call = next(b for b in msg.content if b.type == "tool_use")
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": text}]}


@pytest.mark.parametrize("pair", ["anthropic->anthropic"], indirect=True)
@pytest.mark.parametrize("middle", ["gemini", "chat", "responses"])
def test_an_anthropic_client_moves_from_claude_to_another_route_and_back(pair: Pair, middle: str) -> None:
    claude, other = UPSTREAMS["anthropic"], UPSTREAMS[middle]
    think = Turn(["Checking."], thinking=["Let me look."], calls=[("get_weather", {"city": "Paris"})])
    pair.script(claude.reply(think, False), other.reply(think, False), claude.reply(Turn(["Done."]), False))
    history: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris, twice?"}]

    first = _anthropic_turn(pair, "m-anthropic", history)
    assert [b.type for b in first.content] == ["thinking", "text", "tool_use"]
    history += [_replay(first), _result(first, "20C")]
    second = _anthropic_turn(pair, f"m-{middle}", history)
    assert "tool_use" in [b.type for b in second.content]
    history += [_replay(second), _result(second, "21C")]
    third = _anthropic_turn(pair, "m-anthropic", history)
    assert "".join(b.text for b in third.content if b.type == "text") == "Done."

    to_other = json.dumps(_body(1, pair))
    assert ANTHROPIC_SIGNATURE not in to_other  # Claude's signature never leaves Claude
    back = _body(2, pair)
    assert SIGNATURE not in json.dumps(back)  # nor does Gemini's reach Claude
    signatures = [b.get("signature") for m in back["messages"] if isinstance(m["content"], list)
                  for b in m["content"] if b["type"] in ("thinking", "redacted_thinking")]  # fmt: skip
    assert signatures == [ANTHROPIC_SIGNATURE]  # only the block Claude itself signed goes back to Claude
    assert [h[0] for h in claude.sent(pair.fake.requests[2]).history] == ["call", "result", "call", "result"]


@pytest.mark.parametrize("pair", ["gemini->gemini"], indirect=True)
def test_a_gemini_client_moves_from_gemini_to_claude_and_back(pair: Pair) -> None:
    from google.genai import types

    gemini, claude = UPSTREAMS["gemini"], UPSTREAMS["anthropic"]
    think = Turn(["Checking."], thinking=["Let me look."], calls=[("get_weather", {"city": "Paris"})])
    pair.script(gemini.reply(think, False), claude.reply(think, False), gemini.reply(Turn(["Done."]), False))
    sdk = pair.client.sdk  # type: ignore[attr-defined]
    cfg = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(
            name="get_weather", parameters_json_schema=TOOLS[0]["input_schema"])])],
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=1024),
    )  # fmt: skip
    history: list[types.Content] = [types.Content(role="user", parts=[types.Part.from_text(text="Weather twice?")])]

    for model, answer in (("m-gemini", "20C"), ("m-anthropic", "21C")):
        got = sdk.models.generate_content(model=model, contents=history, config=cfg)
        content = got.candidates[0].content
        assert any(p.function_call for p in content.parts), content
        history += [content, types.Content(role="user", parts=[
            types.Part.from_function_response(name="get_weather", response={"result": answer})])]  # fmt: skip
    last = sdk.models.generate_content(model="m-gemini", contents=history, config=cfg)
    assert last.text == "Done."

    to_claude = _body(1, pair)
    assert SIGNATURE not in json.dumps(to_claude)  # Gemini's signature never reaches Claude
    assert [h[0] for h in claude.sent(pair.fake.requests[1]).history] == ["call", "result"]
    back = json.dumps(_body(2, pair))
    assert ANTHROPIC_SIGNATURE not in back  # nor Claude's Gemini
    assert back.count(SIGNATURE) == 1  # Gemini gets back the one signature it issued
