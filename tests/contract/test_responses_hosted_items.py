"""OpenAI-hosted Responses input items through the live gateway, with the official ``openai`` SDK.

Codex follow-up turns and stored conversations replay the items an OpenAI turn made with
hosted tools (``web_search_call``, ``custom_tool_call``, ``local_shell_call``, MCP, ...).
A Responses upstream gets them as sent; a Chat, Anthropic or Gemini upstream gets each one
translated (client-run calls as a tool call and result) or as a note, in order, and never
an encrypted reasoning payload it did not issue. A malformed one is a 400 in OpenAI's shape.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.contract.conftest import SYSTEM, Pair
from tests.fakes import responses as fake_responses
from tests.fakes.matrix import UPSTREAMS, Turn

EVERY = pytest.mark.parametrize("pair", [f"responses->{u}" for u in UPSTREAMS], indirect=True)
ENCRYPTED = "gAAAA-opaque-openai-reasoning"
HISTORY: list[dict[str, Any]] = [
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Find the news and patch it."}]},
    {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": ENCRYPTED},
    {
        "type": "web_search_call",
        "id": "ws_1",
        "status": "completed",
        "action": {"type": "search", "query": "llmproxy news"},
    },
    {
        "type": "message",
        "role": "assistant",
        "id": "msg_1",
        "content": [{"type": "output_text", "text": "Found it.", "annotations": []}],
    },
    {
        "type": "custom_tool_call",
        "id": "ctc_1",
        "call_id": "call_patch",
        "name": "apply_patch",
        "input": "*** Begin Patch\n*** End Patch",
    },
    {"type": "custom_tool_call_output", "call_id": "call_patch", "output": "patched ok"},
    {
        "type": "local_shell_call",
        "id": "lsc_1",
        "call_id": "call_sh",
        "status": "completed",
        "action": {"type": "exec", "command": ["ls", "-la"], "env": {}},
    },
    {"type": "local_shell_call_output", "id": "call_sh", "output": "README.md"},
    {
        "type": "mcp_list_tools",
        "id": "mcpl_1",
        "server_label": "docs",
        "tools": [{"name": "lookup", "input_schema": {}}],
    },
    {
        "type": "mcp_call",
        "id": "mcp_1",
        "server_label": "docs",
        "name": "lookup",
        "arguments": "{}",
        "output": "doc text",
    },
    {"type": "code_interpreter_call", "id": "ci_1", "code": "print(42)", "container_id": "c1", "status": "completed"},
    {"type": "image_generation_call", "id": "ig_1", "status": "completed", "result": "aGVsbG8="},
    {"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": ["manual"]},
    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Summarise."}]},
]


def sdk(pair: Pair) -> openai.OpenAI:
    return openai.OpenAI(base_url=pair.live.url + "/v1", api_key=pair.client.key, max_retries=0,
                         _strict_response_validation=True)  # fmt: skip


def in_order(text: str, *parts: str) -> bool:
    at = [text.find(p) for p in parts]
    return all(a >= 0 for a in at) and at == sorted(at)


@EVERY
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_hosted_items_go_to_every_upstream(pair: Pair, stream: bool) -> None:
    pair.script(pair.upstream.reply(Turn(["All done."]), stream))
    args: dict[str, Any] = {"model": pair.model, "instructions": SYSTEM, "input": HISTORY, "store": False}
    if stream:
        with sdk(pair).responses.stream(**args) as s:
            answer = s.get_final_response()
    else:
        answer = sdk(pair).responses.create(**args)
    assert answer.output_text == "All done."
    body = pair.fake.requests[-1].body
    sent = json.dumps(body)
    if pair.upstream.name == "responses":  # passthrough: every item exactly as the client sent it
        assert body["input"] == HISTORY
        return
    assert ENCRYPTED not in sent  # never another API's reasoning payload
    assert in_order(sent, "Find the news", "llmproxy news", "Found it.", "apply_patch", "Begin Patch",
                    "patched ok", "local_shell", "-la", "README.md", "lookup", "doc text", "print(42)",
                    "generated an image", "manual", "Summarise.")  # fmt: skip
    assert "aGVsbG8=" not in sent  # a generated image stays with OpenAI


@EVERY
@pytest.mark.parametrize(
    ("item", "param"),
    [
        ({"type": "custom_tool_call", "call_id": "c", "name": "apply_patch"}, "input[1].input"),
        ({"type": "local_shell_call", "call_id": "c", "action": "ls"}, "input[1].action"),
        ({"type": "computer_call_output", "call_id": "c", "output": 3}, "input[1].output"),
        ({"type": "teleport_call", "id": "t"}, "input[1].type"),
    ],
    ids=["no-input", "action-not-object", "output-not-object", "unknown"],
)
def test_malformed_hosted_items_are_a_400_in_openai_shape(pair: Pair, item: dict[str, Any], param: str) -> None:
    calls = len(pair.fake.requests)
    with pytest.raises(openai.BadRequestError) as err:
        sdk(pair).responses.create(model=pair.model, input=[HISTORY[0], item])
    assert err.value.status_code == 400
    assert isinstance(err.value.body, dict) and err.value.body.get("param") == param
    assert len(pair.fake.requests) == calls  # refused before any upstream call


@pytest.mark.parametrize("pair", ["responses->responses"], indirect=True)
def test_a_stored_turn_with_hosted_items_continues_with_previous_response_id(pair: Pair) -> None:
    searched = {"type": "web_search_call", "id": "ws_up", "status": "completed",
                "action": {"type": "search", "query": "gateway news"}}  # fmt: skip
    message = {"type": "message", "id": "msg_up", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": "News found.", "annotations": [], "logprobs": []}]}  # fmt: skip
    pair.script(fake_responses.Reply(fake_responses.response_obj([searched, message], usage_=fake_responses.usage())))
    first = sdk(pair).responses.create(model=pair.model, input="Search the news.")
    assert first.output_text == "News found."
    pair.script(pair.upstream.reply(Turn(["Summary."]), False))
    second = sdk(pair).responses.create(model=pair.model, input="Summarise.", previous_response_id=first.id)
    assert second.output_text == "Summary."
    sent = pair.fake.requests[-1].body["input"]
    kinds = [i.get("type") for i in sent]
    assert "web_search_call" in kinds and kinds.index("web_search_call") < len(kinds) - 1  # replayed, in order
    assert json.dumps(sent).find("gateway news") < json.dumps(sent).find("Summarise.")
