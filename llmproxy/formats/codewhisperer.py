"""CodeWhisperer's ``generateAssistantResponse`` (Kiro) <-> the canonical model.

The request is a ``conversationState``: ``history`` (user and assistant turns that
strictly alternate, starting with the user) and ``currentMessage`` (a user turn with
non-empty ``content``, the ``modelId``, and in ``userInputMessageContext`` the tools as
``toolSpecification`` and the results answering the previous turn's tool uses). There
is no system field: the system prompt leads the first user turn, between
``--- SYSTEM PROMPT ---`` markers. Images travel as bytes (``format`` is the subtype).
A tool use without a result (or a result without a use) is dropped, as the service
refuses both, a tool named in the history is declared if the request lost it, and a
tool name longer than Kiro takes (63) is shortened, and mapped back in the reply.

The reply is always an AWS event stream (``_codewhisperer_stream``); a non-streaming
reply body is that stream's frames as JSON (``{"frames": [{"headers", "payload"}]}``,
what the executor's ``unwrap_body`` makes of the bytes), collected here.
"""

from __future__ import annotations

import uuid
from typing import Any

from .._json import dumps_str, loads
from ..errors import InvalidRequest, ProviderProtocolError
from ..model import (
    ImagePart,
    Message,
    Part,
    Request,
    Response,
    StreamEvent,
    TextPart,
    Tool,
    ToolCallPart,
    ToolResultPart,
)
from ..stream import collect
from ._codewhisperer_stream import NAME, StreamDecoder, StreamEncoder
from ._codewhisperer_wire import error_body, model_id, models_body, tool_name
from ._common import Traits

__all__ = [
    "NAME",
    "TRAITS",
    "StreamDecoder",
    "StreamEncoder",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "error_body",
    "model_id",
    "models_body",
]

#: Images go as bytes (no URLs); the stream's usage is always there (estimated).
TRAITS = Traits(inline_images=True, stream_usage_always=True)

ORIGIN = "AI_EDITOR"
MAX_DESCRIPTION = 10_237
_SYSTEM_OPEN, _SYSTEM_CLOSE = "--- SYSTEM PROMPT ---\n", "\n--- END SYSTEM PROMPT ---\n\n"
_RESULTS_ONLY = "Tool results provided."
_CONTINUE = "Continue"
_TOOL_TURN = "(tool use)"


# --- requests -------------------------------------------------------------------------


def encode_request(req: Request) -> dict[str, Any]:
    """A canonical request -> ``{"conversationState": ...}`` (the executor adds ``profileArn``)."""
    model = model_id(req.model)
    system = "\n\n".join(m.text() for m in req.messages if m.role == "system" and m.text())
    turns = _turns([m for m in req.messages if m.role != "system"])
    _pair_tools(turns)
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, _user_turn())
    if turns[-1]["role"] != "user":
        turns.append(_user_turn())
    if system:
        turns[0]["text"] = f"{_SYSTEM_OPEN}{system}{_SYSTEM_CLOSE}{turns[0]['text']}"
    tools = [_tool_spec(t) for t in req.tools]
    declared = {t.name.lower() for t in req.tools}
    for turn in turns:
        for call in turn.get("calls", []):
            if call.name.lower() not in declared:
                declared.add(call.name.lower())
                tools.append(_tool_spec(Tool(call.name, f"Tool {call.name}")))
    history = [_encode_turn(t, model, None) for t in turns[:-1]]
    current = _encode_turn(turns[-1], model, tools)
    state: dict[str, Any] = {
        "chatTriggerType": "MANUAL",
        "conversationId": str(uuid.uuid4()),
        "currentMessage": current,
        "history": history,
    }
    return {"conversationState": state}


def _user_turn(text: str = "") -> dict[str, Any]:
    return {"role": "user", "text": text, "images": [], "results": []}


def _turns(messages: list[Message]) -> list[dict[str, Any]]:
    """Canonical messages -> alternating user/assistant turns (adjacent same-role ones merged)."""
    turns: list[dict[str, Any]] = []
    for m in messages:
        role = "assistant" if m.role == "assistant" else "user"
        if not turns or turns[-1]["role"] != role:
            turns.append(_user_turn() if role == "user" else {"role": "assistant", "text": "", "calls": []})
        turn = turns[-1]
        for p in m.parts:
            if isinstance(p, TextPart) and p.text:
                turn["text"] = f"{turn['text']}\n\n{p.text}" if turn["text"] else p.text
            elif isinstance(p, ImagePart) and role == "user":
                turn["images"].append(p)
            elif isinstance(p, ToolCallPart) and role == "assistant":
                turn["calls"].append(p)
            elif isinstance(p, ToolResultPart) and role == "user":
                turn["results"].append(p)
                turn["images"].extend(c for c in p.content if isinstance(c, ImagePart))
    return turns


def _pair_tools(turns: list[dict[str, Any]]) -> None:
    """Keep only the tool uses answered in the next user turn, and the results that answer one."""
    seen: set[str] = set()
    for i, turn in enumerate(turns):
        if turn["role"] == "assistant":
            answered = {r.tool_call_id for r in turns[i + 1]["results"]} if i + 1 < len(turns) else set()
            kept = []
            for c in turn["calls"]:
                if c.id in answered and c.id not in seen:
                    seen.add(c.id)
                    kept.append(c)
            turn["calls"] = kept
        else:
            asked = {c.id for c in turns[i - 1]["calls"]} if i and turns[i - 1]["role"] == "assistant" else set()
            unique: dict[str, ToolResultPart] = {}
            for r in turn["results"]:
                if r.tool_call_id in asked:
                    unique.setdefault(r.tool_call_id, r)
            turn["results"] = list(unique.values())


def _encode_turn(turn: dict[str, Any], model: str, tools: list[dict[str, Any]] | None) -> dict[str, Any]:
    if turn["role"] == "assistant":
        msg: dict[str, Any] = {
            "content": turn["text"] if turn["text"].strip() else _TOOL_TURN if turn["calls"] else "..."
        }
        if turn["calls"]:
            msg["toolUses"] = [{"toolUseId": c.id, "name": tool_name(c.name), "input": _arguments(c)}
                               for c in turn["calls"]]  # fmt: skip
        return {"assistantResponseMessage": msg}
    text = turn["text"] if turn["text"].strip() else _RESULTS_ONLY if turn["results"] else _CONTINUE
    user: dict[str, Any] = {"content": text, "modelId": model, "origin": ORIGIN}
    images = [_image(p) for p in turn["images"]]
    if images:
        user["images"] = images
    context: dict[str, Any] = {}
    if tools:
        context["tools"] = tools
    if turn["results"]:
        context["toolResults"] = [_result(r) for r in turn["results"]]
    if context:
        user["userInputMessageContext"] = context
    return {"userInputMessage": user}


def _arguments(call: ToolCallPart) -> dict[str, Any]:
    try:
        value = loads(call.arguments or "{}")
    except ValueError:
        return {"input": call.arguments}
    return value if isinstance(value, dict) else {"input": value}


def _result(r: ToolResultPart) -> dict[str, Any]:
    texts = [{"text": c.text} for c in r.content if isinstance(c, TextPart)] or [{"text": ""}]
    out: dict[str, Any] = {
        "toolUseId": r.tool_call_id,
        "content": texts,
        "status": "error" if r.is_error else "success",
    }
    if r.is_error:
        out["isError"] = True
    return out


def _image(p: ImagePart) -> dict[str, Any]:
    if not p.data:
        raise InvalidRequest("Kiro takes images as inline data only, not URLs", param="messages")
    subtype = (p.media_type or "image/png").split("/")[-1].lower()
    return {"format": "jpeg" if subtype == "jpg" else subtype, "source": {"bytes": p.data}}


def _tool_spec(t: Tool) -> dict[str, Any]:
    description = (t.description or t.name).encode("utf-8")[:MAX_DESCRIPTION].decode("utf-8", "ignore")
    schema = {k: v for k, v in (t.parameters or {}).items() if k not in ("$schema", "additionalProperties")}
    if schema.get("required") == []:
        del schema["required"]
    schema.setdefault("type", "object")
    return {"toolSpecification": {"name": tool_name(t.name), "description": description,
                                  "inputSchema": {"json": schema}}}  # fmt: skip


def decode_request(body: dict[str, Any]) -> Request:
    """A ``conversationState`` body -> a canonical request (for tests and fakes)."""
    state = body.get("conversationState")
    if not isinstance(state, dict):
        raise InvalidRequest("'conversationState' is required and must be an object", param="conversationState")
    current = state.get("currentMessage")
    user = current.get("userInputMessage") if isinstance(current, dict) else None
    if not isinstance(user, dict):
        raise InvalidRequest("'conversationState.currentMessage.userInputMessage' is required",
                             param="conversationState.currentMessage")  # fmt: skip
    history = state.get("history") or []
    if not isinstance(history, list):
        raise InvalidRequest("'conversationState.history' must be an array", param="conversationState.history")
    messages: list[Message] = []
    tools: list[Tool] = []
    for entry in [*history, current]:
        if not isinstance(entry, dict):
            raise InvalidRequest("a history entry must be an object", param="conversationState.history")
        if isinstance(entry.get("assistantResponseMessage"), dict):
            a = entry["assistantResponseMessage"]
            parts: list[Part] = [TextPart(str(a.get("content") or ""))]
            parts += [ToolCallPart(str(u.get("toolUseId")), str(u.get("name")), dumps_str(u.get("input") or {}))
                      for u in a.get("toolUses") or [] if isinstance(u, dict)]  # fmt: skip
            messages.append(Message("assistant", parts))
            continue
        u = entry.get("userInputMessage")
        if not isinstance(u, dict):
            raise InvalidRequest("a turn must be a userInputMessage or an assistantResponseMessage",
                                 param="conversationState.history")  # fmt: skip
        raw_ctx = u.get("userInputMessageContext")
        ctx: dict[str, Any] = raw_ctx if isinstance(raw_ctx, dict) else {}
        results = [ToolResultPart(str(r.get("toolUseId")),
                                  [TextPart(str(c.get("text") or "")) for c in r.get("content") or [] if isinstance(c, dict)],
                                  r.get("status") == "error")
                   for r in ctx.get("toolResults") or [] if isinstance(r, dict)]  # fmt: skip
        if results:
            messages.append(Message("tool", list(results)))
        user_parts: list[Part] = [TextPart(str(u.get("content") or ""))]
        user_parts += [ImagePart(data=str((i.get("source") or {}).get("bytes") or ""), media_type=f"image/{i.get('format')}")
                       for i in u.get("images") or [] if isinstance(i, dict)]  # fmt: skip
        messages.append(Message("user", user_parts))
        for spec in ctx.get("tools") or []:
            s = spec.get("toolSpecification") if isinstance(spec, dict) else None
            if isinstance(s, dict):
                schema = (s.get("inputSchema") or {}).get("json") or {"type": "object", "properties": {}}
                tools.append(Tool(str(s.get("name")), s.get("description"), schema))
    return Request(model=str(user.get("modelId") or ""), messages=messages, tools=tools)


# --- replies --------------------------------------------------------------------------


def decode_response(body: dict[str, Any]) -> Response:
    """A collected stream (``{"frames": [...]}``) -> a canonical response."""
    frames = body.get("frames")
    if not isinstance(frames, list):
        raise ProviderProtocolError("upstream reply has no event-stream frames")
    decoder = StreamDecoder(model=str(body.get("model") or ""))
    events: list[StreamEvent] = []
    for frame in frames:
        if not isinstance(frame, dict):
            raise ProviderProtocolError("upstream reply has a frame that is not an object")
        decoder.frame(frame, events)
    events += decoder.close()
    return collect(events)


def encode_response(resp: Response) -> dict[str, Any]:
    """A canonical response -> the JSON form of its frames (what ``decode_response`` reads)."""
    frames: list[dict[str, Any]] = []

    def event(name: str, payload: dict[str, Any]) -> None:
        frames.append({"headers": {":event-type": name, ":content-type": "application/json",
                                   ":message-type": "event"}, "payload": payload})  # fmt: skip

    for p in resp.parts:
        if isinstance(p, TextPart) and p.text:
            event("assistantResponseEvent", {"content": p.text})
        elif isinstance(p, ToolCallPart):
            event("toolUseEvent", {"toolUseId": p.id, "name": p.name, "input": p.arguments})
            event("toolUseEvent", {"toolUseId": p.id, "name": p.name, "stop": True})
    return {"frames": frames, "model": resp.model}
