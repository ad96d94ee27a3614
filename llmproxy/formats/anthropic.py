"""Anthropic Messages (``/v1/messages``) <-> the canonical model.

Anthropic has one top-level ``system``, alternating turns, tool results as
``tool_result`` blocks that must open the next user turn, tool input as objects and
signed thinking blocks. Decoding checks what the API checks (so a client gets the 400
Anthropic would give) and keeps block extras such as ``cache_control`` in
``provider_metadata["anthropic"]``. Encoding repairs what other dialects allow and
Anthropic rejects: mid-history system prompts, consecutive same-role turns, empty text,
tool ids with other characters, sampling parameters next to thinking, a missing
``max_tokens``.

Blocks the canonical model cannot express (documents, server-tool results, files) ride
as an empty ``TextPart`` whose metadata holds the block, so an Anthropic upstream still
gets them.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from typing import Any

from .._json import dumps_str, parse_arguments
from ..errors import InvalidRequest, ProviderProtocolError
from ..model import (
    ImagePart,
    Message,
    Part,
    Reasoning,
    Request,
    Response,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from ._anthropic_stream import StreamDecoder, StreamEncoder
from ._anthropic_wire import (
    FALLBACK_MAX_TOKENS,
    GATEWAY_SOURCE,
    MIN_BUDGET,
    NAME,
    SIGNATURE_PREFIX,
    anthropic_meta,
    check_tool_pairs,
    decode_format,
    decode_usage,
    default_max_tokens,
    encode_tool,
    encode_usage,
    error_body,
    finish_in,
    gateway_signature,
    image_block,
    models_body,
    reply_block,
    reply_part,
    stop_reason_out,
    strip_gateway_thinking,
    text_block,
    thinking_source,
    uses_adaptive_thinking,
)
from ._common import Traits, effort_from_budget, field_type, require_list, require_str

__all__ = [
    "FALLBACK_MAX_TOKENS",
    "GATEWAY_SOURCE",
    "NAME",
    "SIGNATURE_PREFIX",
    "StreamDecoder",
    "StreamEncoder",
    "decode_request",
    "decode_response",
    "default_max_tokens",
    "encode_request",
    "encode_response",
    "error_body",
    "gateway_signature",
    "models_body",
    "uses_adaptive_thinking",
]

#: max_tokens is required; the upstream counts tokens itself.
TRAITS = Traits(requires_max_tokens=True, count_field="input_tokens")
#: What a count request leaves out of an encoded request.
_NOT_COUNTED = ("max_tokens", "stream", "temperature", "top_p", "top_k", "stop_sequences", "metadata")

_KNOWN = {
    "model", "max_tokens", "system", "messages", "tools", "tool_choice", "stop_sequences", "temperature",
    "top_p", "top_k", "thinking", "output_config", "metadata", "stream",
}  # fmt: skip
_EFFORTS = ("low", "medium", "high", "xhigh", "max")
_CHOICE_IN = {"auto": "auto", "any": "required", "none": "none", "tool": "tool"}
_CHOICE_OUT = {"auto": "auto", "required": "any", "none": "none"}
#: reasoning_effort -> budget_tokens for models that take ``thinking.type: enabled``.
_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096, "xhigh": 8192, "max": 16384}
# Opus 4.7 and Claude 5 reject ``enabled`` thinking; the 4.6 family deprecates it.
_ID_BAD = re.compile(r"[^a-zA-Z0-9_-]")
JSON_HINT = "Respond with a single valid JSON object and nothing else."
#: The user turn put first when a history would otherwise open with the assistant.
PLACEHOLDER = "."


# --- decoding requests -----------------------------------------------------------------


def decode_request(body: dict[str, Any]) -> Request:
    model = require_str(body, "model")
    if body.get("max_tokens") is None:
        raise InvalidRequest("max_tokens: Field required", param="max_tokens")
    req = Request(model=model, max_tokens=field_type(body["max_tokens"], int, "max_tokens"))
    req.messages = _decode_system(body.get("system")) + _decode_messages(require_list(body, "messages"))
    req.tools = _decode_tools(body.get("tools"))
    _decode_tool_choice(body.get("tool_choice"), req)
    if body.get("stop_sequences") is not None:
        req.stop = [str(s) for s in field_type(body["stop_sequences"], list, "stop_sequences")]
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            setattr(req, name, float(field_type(body[name], (int, float), name)))
    if body.get("top_k") is not None:
        req.top_k = field_type(body["top_k"], int, "top_k")
    req.stream = bool(body.get("stream", False))
    req.include_usage = True  # Anthropic streams always report usage
    output_config = body.get("output_config")
    if output_config is not None:
        field_type(output_config, dict, "output_config")
    req.reasoning = _decode_reasoning(body.get("thinking"), output_config or {})
    req.response_format = decode_format((output_config or {}).get("format"))
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        req.metadata = dict(metadata)
        if isinstance(metadata.get("user_id"), str):
            req.user = metadata["user_id"]
    req.extra = {k: v for k, v in body.items() if k not in _KNOWN}
    return req


def _meta(block: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any] | None:
    """A block's extras (``cache_control``, ``citations``...) for ``provider_metadata``."""
    rest = {k: v for k, v in block.items() if k not in known and v is not None}
    return {NAME: rest} if rest else None


def _opaque(block: dict[str, Any]) -> TextPart:
    return TextPart("", {NAME: {"block": block}})


def _decode_system(system: Any) -> list[Message]:
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [Message("system", [TextPart(system)])]
    if not isinstance(system, list):
        raise InvalidRequest("system: Input should be a valid string or a list of text blocks", param="system")
    parts: list[Part] = []
    for k, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise InvalidRequest(f"system.{k}: system blocks must be text blocks", param=f"system.{k}")
        parts.append(_decode_text(block, f"system.{k}"))
    return [Message("system", parts)] if parts else []


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content: Input should be a string or a list of blocks", param=f"{where}.content")
    for k, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise InvalidRequest(f"{where}.content.{k}: a content block needs a 'type'", param=f"{where}.content.{k}")
    return content


def _decode_messages(raw: list[Any]) -> list[Message]:
    if not raw:
        raise InvalidRequest("messages: at least one message is required", param="messages")
    out: list[Message] = []
    turns: list[tuple[int, str, list[dict[str, Any]]]] = []
    for i, m in enumerate(raw):
        where = f"messages.{i}"
        if not isinstance(m, dict):
            raise InvalidRequest(f"{where}: Input should be an object", param=where)
        role = m.get("role")
        if role == "system":  # mid-conversation system (Claude Code; beta mid-conversation-system-2026-04-07)
            out += _decode_mid_system(m.get("content"), where)
            continue
        if role not in ("user", "assistant"):
            raise InvalidRequest(
                f"{where}.role: Input should be 'user', 'assistant' or 'system'", param=f"{where}.role"
            )
        blocks = _blocks(m.get("content"), where)
        if not blocks and not (role == "assistant" and i == len(raw) - 1):
            raise InvalidRequest(
                f"{where}: all messages must have non-empty content except for the optional final assistant message",
                param=f"{where}.content",
            )
        out += _decode_turn(role, blocks, where)
        turns.append((i, role, blocks))
    check_tool_pairs(turns)
    return out


def _decode_mid_system(content: Any, where: str) -> list[Message]:
    """A ``{"role": "system"}`` entry of ``messages``: text only, kept at its place in the
    history. An Anthropic upstream gets it as sent (passthrough); encoders for other dialects
    put it where their dialect keeps system text (see docs/providers.md)."""
    blocks = _blocks(content, where)
    if not blocks:
        raise InvalidRequest(f"{where}: system messages must have non-empty content", param=f"{where}.content")
    parts: list[Part] = []
    for k, block in enumerate(blocks):
        if block["type"] != "text":
            raise InvalidRequest(
                f"{where}.content.{k}: system messages take text blocks only", param=f"{where}.content.{k}"
            )
        parts.append(_decode_text(block, f"{where}.content.{k}"))
    return [Message("system", parts)]


def _decode_turn(role: str, blocks: list[dict[str, Any]], where: str) -> list[Message]:
    if role == "assistant":
        parts = [_decode_block(b, f"{where}.content.{k}", role) for k, b in enumerate(blocks)]
        return [Message("assistant", parts)] if parts else []
    results: list[Part] = []
    rest: list[Part] = []
    for k, block in enumerate(blocks):
        if block["type"] == "tool_result":
            results.append(_decode_tool_result(block, f"{where}.content.{k}"))
        else:
            rest.append(_decode_block(block, f"{where}.content.{k}", role))
    out = [Message("tool", results)] if results else []
    return out + ([Message("user", rest)] if rest else [])


def _decode_block(block: dict[str, Any], where: str, role: str) -> Part:
    kind = block["type"]
    if kind == "text":
        return _decode_text(block, where)
    if kind == "image":
        return _decode_image(block, where)
    if role == "assistant" and kind == "tool_use":
        call_id, name = _string(block, "id", where), _string(block, "name", where)
        args = block.get("input", {})
        if not isinstance(args, dict):
            raise InvalidRequest(f"{where}.input: Input should be an object", param=f"{where}.input")
        return ToolCallPart(call_id, name, dumps_str(args), _meta(block, ("type", "id", "name", "input")))
    if role == "assistant" and kind == "thinking":
        signature = block.get("signature")
        signature = signature if isinstance(signature, str) and signature else None
        return ThinkingPart(_string(block, "thinking", where, empty=True), signature, thinking_source(signature))
    if role == "assistant" and kind == "redacted_thinking":
        return ThinkingPart("", _string(block, "data", where), NAME, redacted=True)
    if kind in ("tool_use", "tool_result", "thinking", "redacted_thinking"):
        raise InvalidRequest(f"{where}: `{kind}` blocks are not allowed in {role} messages", param=where)
    return _opaque(block)


def _string(block: dict[str, Any], name: str, where: str, *, empty: bool = False) -> str:
    value = block.get(name)
    if not isinstance(value, str) or (not value and not empty):
        raise InvalidRequest(f"{where}.{name}: Field required", param=f"{where}.{name}")
    return value


def _decode_text(block: dict[str, Any], where: str) -> TextPart:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{where}.text: Field required", param=f"{where}.text")
    if not text:
        raise InvalidRequest(f"{where}: text content blocks must be non-empty", param=where)
    return TextPart(text, _meta(block, ("type", "text")))


def _decode_image(block: dict[str, Any], where: str) -> TextPart | ImagePart:
    src = block.get("source")
    if not isinstance(src, dict):
        raise InvalidRequest(f"{where}.source: Field required", param=f"{where}.source")
    meta = _meta(block, ("type", "source"))  # cache_control
    if src.get("type") == "base64":
        data = _string(src, "data", f"{where}.source")
        return ImagePart(data=data, media_type=src.get("media_type") or None, provider_metadata=meta)
    if src.get("type") == "url":
        return ImagePart(url=_string(src, "url", f"{where}.source"), provider_metadata=meta)
    return _opaque(block)  # a Files API id has no canonical form


def _decode_tool_result(block: dict[str, Any], where: str) -> ToolResultPart:
    call_id = _string(block, "tool_use_id", where)
    content = block.get("content")
    parts: list[TextPart | ImagePart] = []
    if isinstance(content, str):
        parts = [TextPart(content)] if content else []
    elif isinstance(content, list):
        for k, b in enumerate(_blocks(content, where)):
            w = f"{where}.content.{k}"
            if b["type"] == "text" and b.get("text") == "":
                continue  # harmless inside a result; not worth failing a passthrough request over
            parts.append(_decode_text(b, w) if b["type"] == "text" else _decode_image(b, w) if b["type"] == "image"
                         else _opaque(b))  # fmt: skip
    elif content is not None:
        raise InvalidRequest(f"{where}.content: Input should be a string or a list of blocks", param=f"{where}.content")
    meta = _meta(block, ("type", "tool_use_id", "content", "is_error"))  # cache_control
    return ToolResultPart(call_id, parts, is_error=bool(block.get("is_error")), provider_metadata=meta)


def _decode_tools(raw: Any) -> list[Tool]:
    if raw is None:
        return []
    out: list[Tool] = []
    for i, tool in enumerate(field_type(raw, list, "tools")):
        where = f"tools.{i}"
        if not isinstance(tool, dict):
            raise InvalidRequest(f"{where}: Input should be an object", param=where)
        if tool.get("type") not in (None, "custom"):
            continue  # a server tool (web_search, bash...) only Anthropic runs; passthrough keeps it
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise InvalidRequest(f"{where}.input_schema: Field required", param=f"{where}.input_schema")
        meta = _meta(tool, ("type", "name", "description", "input_schema", "strict"))  # cache_control, defer_loading...
        out.append(Tool(_string(tool, "name", where), tool.get("description"), schema, tool.get("strict"), meta))
    return out


def _decode_tool_choice(tc: Any, req: Request) -> None:
    if tc is None:
        return
    kind = tc.get("type") if isinstance(tc, dict) else None
    if kind not in _CHOICE_IN:
        raise InvalidRequest("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'", param="tool_choice")
    name = _string(tc, "name", "tool_choice") if kind == "tool" else None
    req.tool_choice = ToolChoice(_CHOICE_IN[kind], name)  # type: ignore[arg-type]
    if tc.get("disable_parallel_tool_use"):
        req.parallel_tool_calls = False


def _decode_reasoning(thinking: Any, output_config: dict[str, Any]) -> Reasoning | None:
    effort = output_config.get("effort")
    if effort is not None and effort not in _EFFORTS:
        raise InvalidRequest(f"output_config.effort: Input should be one of {', '.join(_EFFORTS)}",
                             param="output_config.effort")  # fmt: skip
    if thinking is None:
        return Reasoning(effort=effort) if effort else None
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return Reasoning(effort="none")
    if kind == "enabled":
        budget = field_type(thinking.get("budget_tokens"), int, "thinking.budget_tokens")
        reasoning = Reasoning(effort=effort, budget_tokens=budget)
    elif kind == "adaptive":
        reasoning = Reasoning(effort=effort or "medium")
    else:
        raise InvalidRequest("thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'", param="thinking")
    # Anthropic shows thinking unless told to omit it: say so, so that an upstream where
    # showing is opt-in (Responses' reasoning.summary) shows it too.
    reasoning.include_thoughts = thinking.get("display") != "omitted"
    return reasoning


# --- encoding requests -----------------------------------------------------------------


class _ToolIds:
    """Tool ids made safe for ``^[a-zA-Z0-9_-]+$``, the same for a call and its result."""

    def __init__(self) -> None:
        self._map: dict[str, str] = {}
        self._used: set[str] = set()

    def __call__(self, raw: str) -> str:
        if raw in self._map:
            return self._map[raw]
        safe = _ID_BAD.sub("_", raw) or "toolu"
        candidate, n = safe, 1
        while candidate in self._used:
            candidate, n = f"{safe}_{n}", n + 1
        self._map[raw] = candidate
        self._used.add(candidate)
        return candidate


def passthrough_body(body: dict[str, Any]) -> dict[str, Any]:
    """The client's body as an Anthropic upstream gets it on passthrough: untouched but for
    thinking this gateway signed (never sent to Anthropic: docs/routing.md)."""
    return strip_gateway_thinking(body)


def count_tokens_body(req: Request, passthrough: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body for ``/v1/messages/count_tokens``: the client's own body when it is Anthropic's
    (``passthrough``), else the encoded request, less what a count does not take."""
    if passthrough is not None:
        return {k: v for k, v in passthrough_body(passthrough).items() if k not in ("max_tokens", "stream")}
    out = encode_request(dataclasses.replace(req, stream=False))
    for k in _NOT_COUNTED:
        out.pop(k, None)
    return out


def encode_request(req: Request) -> dict[str, Any]:
    body: dict[str, Any] = {"model": req.model, "max_tokens": req.max_tokens or default_max_tokens(req.model)}
    system = _encode_system(req)
    if system:
        body["system"] = system
    body["messages"] = _encode_messages(req.messages)
    if req.tools:
        body["tools"] = [encode_tool(t) for t in req.tools]
        choice = _encode_tool_choice(req)
        if choice is not None:
            body["tool_choice"] = choice
    if req.stop:
        body["stop_sequences"] = list(req.stop)
    thinking = _encode_thinking(req, body)
    if not thinking:  # Anthropic rejects sampling parameters next to thinking
        if req.temperature is not None:
            body["temperature"] = min(1.0, max(0.0, req.temperature))
        elif req.top_p is not None:  # "temperature and top_p cannot both be specified"
            body["top_p"] = req.top_p
        if req.top_k is not None:
            body["top_k"] = req.top_k
    rf = req.response_format
    if rf is not None and rf.type == "json_schema":
        body.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": rf.schema or {}}
    user = req.user or req.metadata.get("user_id")
    if isinstance(user, str) and user:
        body["metadata"] = {"user_id": user}
    if req.stream:
        body["stream"] = True
    body.update(req.extra)
    return body


def _encode_system(req: Request) -> list[dict[str, Any]]:
    """Every system message, wherever it was in the history, as top-level system blocks."""
    blocks = [b for m in req.messages if m.role == "system" for p in m.parts
              if isinstance(p, TextPart) and (b := text_block(p)) is not None]  # fmt: skip
    if req.response_format is not None and req.response_format.type == "json_object":
        blocks.append({"type": "text", "text": JSON_HINT})
    return blocks


def _encode_messages(messages: list[Message]) -> list[dict[str, Any]]:
    ids = _ToolIds()
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        role = "assistant" if m.role == "assistant" else "user"
        blocks = [b for p in m.parts if (b := _encode_part(p, role, ids)) is not None]
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":  # tool results must open the turn that answers the calls
            turn["content"].sort(key=lambda b: b["type"] != "tool_result")
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"type": "text", "text": PLACEHOLDER}]})
    last = turns[-1]["content"][-1]
    if turns[-1]["role"] == "assistant" and last["type"] == "text":
        last["text"] = last["text"].rstrip()  # "final assistant content cannot end with trailing whitespace"
    return turns


def _encode_part(p: Part, role: str, ids: _ToolIds) -> dict[str, Any] | None:
    if isinstance(p, TextPart):
        return text_block(p)
    if isinstance(p, ImagePart):
        return image_block(p) if role == "user" else None
    if isinstance(p, ToolResultPart):
        return _tool_result_block(p, ids) if role == "user" else None
    if role != "assistant":
        return None
    if isinstance(p, ToolCallPart):
        args = parse_arguments(p.arguments)
        block = {"type": "tool_use", "id": ids(p.id), "name": p.name, "input": args if isinstance(args, dict) else {}}
        return block | {k: v for k, v in anthropic_meta(p.provider_metadata).items() if k not in block}
    # Only Anthropic's own signatures are valid here; other thinking cannot be sent back.
    if p.source != NAME or not p.signature:
        return None
    if p.redacted:
        return {"type": "redacted_thinking", "data": p.signature}
    return {"type": "thinking", "thinking": p.text, "signature": p.signature}


def _tool_result_block(p: ToolResultPart, ids: _ToolIds) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": ids(p.tool_call_id)}
    content = [b for c in p.content
               if (b := text_block(c) if isinstance(c, TextPart) else image_block(c)) is not None]  # fmt: skip
    if len(content) == 1 and content[0].keys() == {"type", "text"}:
        block["content"] = content[0]["text"]
    elif content:
        block["content"] = content
    if p.is_error:
        block["is_error"] = True
    return block | {k: v for k, v in anthropic_meta(p.provider_metadata).items() if k not in block}


def _encode_tool_choice(req: Request) -> dict[str, Any] | None:
    tc = req.tool_choice
    out: dict[str, Any] | None = None
    if tc is not None:
        out = {"type": "tool", "name": tc.name} if tc.mode == "tool" else {"type": _CHOICE_OUT[tc.mode]}
    if req.parallel_tool_calls is False and (out is None or out["type"] != "none"):
        out = (out or {"type": "auto"}) | {"disable_parallel_tool_use": True}
    return out


def _encode_thinking(req: Request, body: dict[str, Any]) -> bool:
    """Set ``thinking`` (and ``output_config.effort``); True when thinking is on."""
    r = req.reasoning
    if r is None or (r.effort is None and r.budget_tokens is None):
        return False
    if r.effort == "none" or (r.effort is None and r.budget_tokens is not None and r.budget_tokens <= 0):
        body["thinking"] = {"type": "disabled"}
        return False
    if body.get("tool_choice", {}).get("type") in ("any", "tool") or not _history_allows_thinking(body["messages"]):
        return False  # "Thinking may not be enabled when tool_choice forces tool use", and see below
    display = {"display": "omitted"} if r.include_thoughts is False else {}
    if uses_adaptive_thinking(req.model):
        effort = r.effort or effort_from_budget(r.budget_tokens)
        body["thinking"] = {"type": "adaptive", **display}
        body.setdefault("output_config", {})["effort"] = effort if effort in _EFFORTS else "low"
        return True
    budget = max(MIN_BUDGET, r.budget_tokens if r.budget_tokens is not None else _BUDGETS[r.effort or "medium"])
    if budget >= body["max_tokens"]:  # budget_tokens must stay below max_tokens: keep the client's allowance
        body["max_tokens"] += budget
    body["thinking"] = {"type": "enabled", "budget_tokens": budget, **display}
    return True


def _history_allows_thinking(turns: list[dict[str, Any]]) -> bool:
    """With thinking on, the assistant turn a trailing tool result answers must open with thinking.

    A tool loop started on another upstream (or with thinking off) has no such block, and
    Anthropic would answer 400; that turn then runs without thinking.
    """
    if len(turns) < 2 or turns[-1]["role"] != "user" or turns[-1]["content"][0]["type"] != "tool_result":
        return True
    return turns[-2]["role"] == "assistant" and turns[-2]["content"][0]["type"] in ("thinking", "redacted_thinking")


# --- responses -------------------------------------------------------------------------


def decode_response(body: dict[str, Any]) -> Response:
    content = body.get("content")
    if not isinstance(content, list):
        raise ProviderProtocolError("upstream reply has no content")
    parts = [p for b in content if isinstance(b, dict) and (p := reply_part(b)) is not None]
    finish = finish_in(body.get("stop_reason"))
    if finish == "stop" and any(isinstance(p, ToolCallPart) for p in parts):
        finish = "tool_calls"
    stop_sequence = body.get("stop_sequence")
    return Response(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        parts=parts,
        finish_reason=finish,
        usage=decode_usage(body.get("usage")),
        stop_sequence=stop_sequence if isinstance(stop_sequence, str) else None,
    )


def encode_response(resp: Response) -> dict[str, Any]:
    content = [b for p in resp.parts if (b := reply_block(p)) is not None]
    reason = stop_reason_out(resp.finish_reason, tool_calls=any(b["type"] == "tool_use" for b in content),
                             stop_sequence=resp.stop_sequence)  # fmt: skip
    return {
        "id": resp.id if resp.id.startswith("msg") else f"msg_{resp.id or uuid.uuid4().hex}",
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": resp.stop_sequence if reason == "stop_sequence" else None,
        "usage": encode_usage(resp.usage),
    }
