"""OpenAI-hosted Responses input items (``web_search_call``, ``custom_tool_call``, ...).

A Responses client (Codex, a stored conversation) replays the items an OpenAI turn
produced, hosted tools' included. A Responses upstream gets the client's body as sent
(passthrough), so these decoders only matter on translated routes: each item becomes
what another dialect can carry, in conversation order (docs/providers.md has the table).

* Client-run calls (``custom_tool_call``, ``local_shell_call``, ``computer_call``) and
  their outputs become a canonical tool call and tool result.
* Calls OpenAI ran itself (web and file search, MCP, image generation, code
  interpreter) become a short assistant note; an ``mcp_approval_response`` a user note.
* Every part keeps the original item in ``provider_metadata["openai_responses"]["item"]``,
  so the Responses encoder sends it back unchanged and no other encoder ever sends it.
"""

from __future__ import annotations

from typing import Any

from .._json import dumps_str
from ..errors import InvalidRequest
from ..model import ImagePart, Part, TextPart, ToolCallPart, ToolResultPart
from ._common import field_type, image_from_url
from ._responses_wire import NAME

# Calls the client ran: name of the canonical tool, field holding its input.
_CLIENT_CALLS = {"custom_tool_call": None, "local_shell_call": "local_shell", "computer_call": "computer"}
_CLIENT_OUTPUTS = ("custom_tool_call_output", "local_shell_call_output", "computer_call_output")
# Calls OpenAI ran on its side: only a note of them can go elsewhere.
_SERVER_CALLS = (
    "web_search_call", "file_search_call", "mcp_call", "mcp_list_tools", "mcp_approval_request",
    "image_generation_call", "code_interpreter_call", "tool_search_call", "tool_search_output",
)  # fmt: skip
USER_SIDE = {"mcp_approval_response", *_CLIENT_OUTPUTS}
KINDS = frozenset({*_CLIENT_CALLS, *_CLIENT_OUTPUTS, *_SERVER_CALLS, "mcp_approval_response"})


def _meta(item: dict[str, Any]) -> dict[str, Any]:
    return {NAME: {"item": item}}


def original(part: Any) -> dict[str, Any] | None:
    """The hosted item a part was decoded from, for a Responses encoder to send back."""
    md = part.provider_metadata
    value = md.get(NAME) if md else None
    item = value.get("item") if isinstance(value, dict) else None
    return item if isinstance(item, dict) else None


def decode(item: dict[str, Any], kind: str, where: str) -> Part:
    """One hosted item as a canonical part; an item missing what it needs is a 400."""
    if kind in _CLIENT_CALLS:
        return _client_call(item, kind, where)
    if kind in _CLIENT_OUTPUTS:
        return _client_output(item, kind, where)
    if kind == "mcp_approval_response":
        verdict = "approved" if item.get("approve") is True else "denied"
        return TextPart(f"[mcp approval {verdict} for request {item.get('approval_request_id')}]\n", _meta(item))
    return TextPart(_note(item, kind) + "\n", _meta(item))


def _call_id(item: dict[str, Any], where: str, fallback: bool = False) -> str:
    value = item.get("call_id")
    if value is None and fallback:
        value = item.get("id")  # local_shell_call_output names its call by ``id``
    return str(field_type(value, str, f"{where}.call_id"))


def _client_call(item: dict[str, Any], kind: str, where: str) -> ToolCallPart:
    call_id = _call_id(item, where)
    if kind == "custom_tool_call":
        name = field_type(item.get("name"), str, f"{where}.name")
        args = dumps_str({"input": field_type(item.get("input"), str, f"{where}.input")})
    else:
        name = _CLIENT_CALLS[kind] or kind
        args = dumps_str(field_type(item.get("action"), dict, f"{where}.action"))
    return ToolCallPart(call_id, name, args, _meta(item))


def _client_output(item: dict[str, Any], kind: str, where: str) -> ToolResultPart:
    call_id = _call_id(item, where, fallback=kind == "local_shell_call_output")
    output = item.get("output")
    content: list[TextPart | ImagePart]
    if kind == "computer_call_output":
        shot = field_type(output, dict, f"{where}.output")
        url = shot.get("image_url")
        content = [image_from_url(url, None)] if isinstance(url, str) and url else [TextPart(dumps_str(shot))]
    elif isinstance(output, str):
        content = [TextPart(output)]
    elif isinstance(output, list):
        content = [TextPart(p["text"]) for p in output if isinstance(p, dict) and isinstance(p.get("text"), str)]
    else:
        raise InvalidRequest(f"{where}.output must be a string or an array of parts", param=f"{where}.output")
    return ToolResultPart(call_id, content, provider_metadata=_meta(item))


def _note(item: dict[str, Any], kind: str) -> str:
    """A one-line note of a call OpenAI ran, for a model on another API to read."""
    if kind == "web_search_call":
        action = item.get("action")
        query = action.get("query") if isinstance(action, dict) else None
        return f"[web search{f': {query}' if query else ''}]"
    if kind == "file_search_call":
        queries = item.get("queries")
        return f"[file search: {', '.join(map(str, queries)) if isinstance(queries, list) else ''}]"
    if kind in ("mcp_call", "mcp_approval_request"):
        label = f"{item.get('server_label')}.{item.get('name')}({item.get('arguments') or ''})"
        if kind == "mcp_approval_request":
            return f"[mcp approval requested (id {item.get('id')}): {label}]"
        result = item.get("error") or item.get("output")
        return f"[mcp call {label}{f' -> {result}' if result else ''}]"
    if kind == "mcp_list_tools":
        names = [t.get("name") for t in item.get("tools") or [] if isinstance(t, dict)]
        return f"[mcp server {item.get('server_label')} tools: {', '.join(map(str, names))}]"
    if kind == "code_interpreter_call":
        return f"[code interpreter ran:\n{item.get('code') or ''}]"
    if kind == "image_generation_call":
        return "[generated an image]"  # the image itself stays with OpenAI
    return f"[{kind}]"
