"""OpenAI-hosted Responses input items: decoded in order, encoded back unchanged for Responses."""

from __future__ import annotations

from typing import Any

import pytest

from llmproxy.errors import InvalidRequest
from llmproxy.formats import openai_responses as responses
from llmproxy.model import TextPart, ToolCallPart, ToolResultPart

ITEMS: list[dict[str, Any]] = [
    {"type": "message", "role": "user", "content": "go"},
    {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": "patch"},
    {"type": "custom_tool_call_output", "call_id": "c1", "output": "ok"},
    {"type": "computer_call", "call_id": "c2", "action": {"type": "click", "x": 1, "y": 2}},
    {"type": "computer_call_output", "call_id": "c2",
     "output": {"type": "computer_screenshot", "image_url": "https://example.com/s.png"}},
    {"type": "web_search_call", "id": "ws", "status": "completed", "action": {"query": "q"}},
    {"type": "mcp_approval_request", "id": "mr", "server_label": "s", "name": "t", "arguments": "{}"},
    {"type": "mcp_approval_response", "approval_request_id": "mr", "approve": True},
]  # fmt: skip


def test_hosted_items_decode_to_calls_results_and_notes_in_order() -> None:
    req = responses.decode_request({"model": "m", "input": ITEMS})
    roles = [m.role for m in req.messages]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant", "user"]
    call = req.messages[1].parts[0]
    assert isinstance(call, ToolCallPart) and (call.name, call.arguments) == ("apply_patch", '{"input":"patch"}')
    result = req.messages[2].parts[0]
    assert isinstance(result, ToolResultPart) and result.content == [TextPart("ok")]
    notes = req.messages[5].text()
    assert "[web search: q]" in notes and "approval requested" in notes
    assert "approved" in req.messages[6].text()


def test_hosted_items_encode_back_for_a_responses_upstream_as_they_came() -> None:
    req = responses.decode_request({"model": "m", "input": ITEMS})
    assert responses.encode_request(req)["input"][1:] == ITEMS[1:]


@pytest.mark.parametrize(
    "item",
    [
        {"type": "custom_tool_call_output", "call_id": "nobody", "output": "x"},
        {"type": "mcp_call", "id": "m"} | {"type": "custom_tool_call", "call_id": 3, "name": "n", "input": ""},
    ],
)
def test_malformed_or_unanswered_hosted_items_are_refused(item: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        responses.decode_request({"model": "m", "input": [item]})
