"""OpenAI Chat Completions (``/v1/chat/completions``) <-> the canonical model.

Also the dialect of every OpenAI-compatible upstream (OpenRouter, Together, Fireworks,
vLLM, llama.cpp). Reasoning text has no official field: ``reasoning_content`` and
``reasoning`` are both read; ``reasoning_content`` is written.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from .._json import dumps_str
from ..errors import InvalidRequest, ProviderProtocolError
from ..model import (
    ImagePart,
    Message,
    Part,
    Reasoning,
    Request,
    Response,
    ResponseFormat,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from ._common import (
    Traits,
    effort_from_budget,
    field_type,
    image_from_url,
    optional_list,
    require_list,
    require_str,
)
from ._openai_chat_stream import StreamDecoder, StreamEncoder
from ._openai_wire import (
    FINISH_IN,
    decode_usage,
    encode_usage,
    error_body,
    finish_out,
    image_to_url,
    models_body,
    short_id,
)

__all__ = [
    "NAME",
    "TRAITS",
    "StreamDecoder",
    "StreamEncoder",
    "decode_request",
    "decode_response",
    "decode_usage",
    "encode_request",
    "encode_response",
    "encode_usage",
    "error_body",
    "models_body",
]  # fmt: skip

NAME = "openai_chat"
#: Embeddings go to OpenAI-compatible upstreams as they came.
TRAITS = Traits(embeddings="passthrough")

_EFFORTS = {"none", "minimal", "low", "medium", "high", "xhigh", "max"}
_KNOWN = {
    "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "max_tokens",
    "max_completion_tokens", "temperature", "top_p", "stop", "stream", "stream_options",
    "reasoning_effort", "response_format", "seed", "user", "metadata", "top_k",
}  # fmt: skip


# --- requests ------------------------------------------------------------------------


def decode_request(body: dict[str, Any]) -> Request:
    model = require_str(body, "model")
    messages = [_decode_message(m, i) for i, m in enumerate(require_list(body, "messages"))]
    if not messages:
        raise InvalidRequest("'messages' must not be empty", param="messages")
    _check_tool_answers(messages)
    req = Request(model=model, messages=messages)
    req.tools = [_decode_tool(t, i) for i, t in enumerate(optional_list(body.get("tools"), "tools"))]
    req.tool_choice = _decode_tool_choice(body.get("tool_choice"))
    req.parallel_tool_calls = body.get("parallel_tool_calls")
    mt = body.get("max_completion_tokens", body.get("max_tokens"))
    if mt is not None:
        req.max_tokens = field_type(mt, int, "max_completion_tokens")
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            setattr(req, name, float(field_type(body[name], (int, float), name)))
    if body.get("top_k") is not None:
        req.top_k = int(field_type(body["top_k"], (int, float), "top_k"))
    stop = body.get("stop")
    if stop is not None:
        req.stop = [stop] if isinstance(stop, str) else list(field_type(stop, list, "stop"))
    req.stream = bool(body.get("stream", False))
    opts = body.get("stream_options") or {}
    req.include_usage = bool(isinstance(opts, dict) and opts.get("include_usage"))
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in _EFFORTS:
            raise InvalidRequest(f"invalid reasoning_effort {effort!r}", param="reasoning_effort")
        req.reasoning = Reasoning(effort=effort)
    req.response_format = _decode_response_format(body.get("response_format"))
    if body.get("seed") is not None:
        req.seed = field_type(body["seed"], int, "seed")
    if body.get("user") is not None:
        req.user = str(body["user"])
    if isinstance(body.get("metadata"), dict):
        req.metadata = body["metadata"]
    req.extra = {k: v for k, v in body.items() if k not in _KNOWN}
    return req


def _decode_message(m: Any, i: int) -> Message:
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    role = m.get("role")
    content = m.get("content")
    if role in ("system", "developer"):
        return Message("system", _decode_content(content, where), name=m.get("name"))
    if role == "user":
        return Message("user", _decode_content(content, where), name=m.get("name"))
    if role == "assistant":
        parts: list[Part] = []
        reasoning = m.get("reasoning_content") or m.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            parts.append(ThinkingPart(reasoning))
        if content is not None:
            parts.extend(p for p in _decode_content(content, where) if not isinstance(p, TextPart) or p.text)
        for j, call in enumerate(optional_list(m.get("tool_calls"), f"{where}.tool_calls")):
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise InvalidRequest(f"{where}.tool_calls[{j}] needs function.name", param=where)
            args = fn.get("arguments")
            parts.append(
                ToolCallPart(
                    id=str(call.get("id") or f"call_{i}_{j}"),
                    name=fn["name"],
                    arguments=args if isinstance(args, str) else dumps_str(args or {}),
                )
            )
        return Message("assistant", parts, name=m.get("name"))
    if role == "tool":
        call_id = m.get("tool_call_id")
        if not isinstance(call_id, str):
            raise InvalidRequest(f"{where}.tool_call_id is required", param=f"{where}.tool_call_id")
        parts_in = _decode_content(content, where)
        result = [p for p in parts_in if isinstance(p, (TextPart, ImagePart))]
        return Message("tool", [ToolResultPart(call_id, result)])
    if role == "function":
        return Message("tool", [ToolResultPart(str(m.get("name")), _text_list(content), name=m.get("name"))])
    raise InvalidRequest(
        f"{where}.role {role!r} is not one of system, developer, user, assistant, tool", param=f"{where}.role"
    )


def _text_list(content: Any) -> list[TextPart | ImagePart]:
    return [TextPart(content if isinstance(content, str) else dumps_str(content))]


def _decode_content(content: Any, where: str) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list of parts", param=f"{where}.content")
    parts: list[Part] = []
    for k, p in enumerate(content):
        kind = p.get("type") if isinstance(p, dict) else None
        # OpenRouter's ``cache_control`` on a part: Anthropic's, kept for an Anthropic upstream.
        cc = p.get("cache_control") if isinstance(p, dict) else None
        meta = {"anthropic": {"cache_control": cc}} if isinstance(cc, dict) else None
        if kind == "text":
            parts.append(TextPart(str(p.get("text", "")), meta))
        elif kind == "image_url":
            iu = p.get("image_url")
            url = iu.get("url") if isinstance(iu, dict) else iu
            if not isinstance(url, str):
                raise InvalidRequest(f"{where}.content[{k}].image_url.url is required", param=where)
            image = image_from_url(url, iu.get("detail") if isinstance(iu, dict) else None)
            parts.append(dataclasses.replace(image, provider_metadata=meta) if meta else image)
        elif kind == "refusal":
            parts.append(TextPart(str(p.get("refusal", ""))))
        else:
            raise InvalidRequest(f"{where}.content[{k}] has unsupported type {kind!r}", param=f"{where}.content")
    return parts


def _check_tool_answers(messages: list[Message]) -> None:
    known: set[str] = set()
    for i, m in enumerate(messages):
        for p in m.parts:
            if isinstance(p, ToolCallPart):
                known.add(p.id)
            elif isinstance(p, ToolResultPart) and p.name is None and p.tool_call_id not in known:
                raise InvalidRequest(
                    f"messages[{i}]: tool message answers tool_call_id {p.tool_call_id!r}, "
                    "which no preceding assistant message called",
                    param=f"messages[{i}].tool_call_id",
                )


def _decode_tool(t: Any, i: int) -> Tool:
    fn = t.get("function") if isinstance(t, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise InvalidRequest(f"tools[{i}].function.name is required", param=f"tools[{i}]")
    params = fn.get("parameters")
    return Tool(
        name=fn["name"],
        description=fn.get("description"),
        parameters=params if isinstance(params, dict) else {"type": "object", "properties": {}},
        strict=fn.get("strict"),
    )


def _decode_tool_choice(tc: Any) -> ToolChoice | None:
    if tc is None:
        return None
    if tc in ("auto", "none", "required"):
        return ToolChoice(tc)
    if isinstance(tc, dict):
        name = (tc.get("function") or {}).get("name") if isinstance(tc.get("function"), dict) else tc.get("name")
        if isinstance(name, str):
            return ToolChoice("tool", name)
    raise InvalidRequest(f"invalid tool_choice {tc!r}", param="tool_choice")


def _decode_response_format(rf: Any) -> ResponseFormat | None:
    if rf is None:
        return None
    if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema"):
        raise InvalidRequest("response_format.type must be text, json_object or json_schema", param="response_format")
    if rf["type"] == "json_schema":
        js = rf.get("json_schema") or {}
        return ResponseFormat("json_schema", js.get("name"), js.get("schema"), js.get("strict"))
    return ResponseFormat(rf["type"])


def encode_request(req: Request, *, cache_control: bool = False) -> dict[str, Any]:
    """``cache_control``: the upstream takes Anthropic's ``cache_control`` on content parts
    (OpenRouter and Copilot for Claude models); without it the breakpoints are dropped."""
    body: dict[str, Any] = {"model": req.model, "messages": _encode_messages(req.messages, cache_control)}
    if req.tools:
        body["tools"] = [_encode_tool(t) for t in req.tools]
    if req.tool_choice is not None:
        tc = req.tool_choice
        body["tool_choice"] = {"type": "function", "function": {"name": tc.name}} if tc.mode == "tool" else tc.mode
    if req.parallel_tool_calls is not None and req.tools:
        body["parallel_tool_calls"] = req.parallel_tool_calls
    if req.max_tokens is not None:
        body["max_completion_tokens"] = req.max_tokens
    for name in ("temperature", "top_p", "seed", "user"):
        if getattr(req, name) is not None:
            body[name] = getattr(req, name)
    if req.stop:
        body["stop"] = req.stop[:4]
    if req.reasoning is not None:
        effort = req.reasoning.effort or effort_from_budget(req.reasoning.budget_tokens)
        if effort:
            body["reasoning_effort"] = effort
    rf = req.response_format
    if rf is not None and rf.type != "text":
        if rf.type == "json_schema":
            js: dict[str, Any] = {"name": rf.name or "response", "schema": rf.schema or {}}
            if rf.strict is not None:
                js["strict"] = rf.strict
            body["response_format"] = {"type": "json_schema", "json_schema": js}
        else:
            body["response_format"] = {"type": "json_object"}
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    body.update(req.extra)
    return body


def _encode_messages(messages: list[Message], cache_control: bool = False) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            for p in m.parts:
                if isinstance(p, ToolResultPart):
                    content = _encode_result(p, cache_control)
                    out.append({"role": "tool", "tool_call_id": short_id(p.tool_call_id), "content": content})
            continue
        if m.role == "assistant":
            msg: dict[str, Any] = {"role": "assistant"}
            text = "".join(p.text for p in m.parts if isinstance(p, TextPart))
            calls = [p for p in m.parts if isinstance(p, ToolCallPart)]
            thinking = "".join(p.text for p in m.parts if isinstance(p, ThinkingPart) and not p.redacted)
            msg["content"] = text if text or not calls else None
            if thinking:
                msg["reasoning_content"] = thinking
            if calls:
                msg["tool_calls"] = [
                    {
                        "id": short_id(c.id),
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments or "{}"},
                    }
                    for c in calls
                ]
            out.append(msg)
            continue
        content = _encode_content(m.parts, cache_control)
        msg = {"role": m.role, "content": content}
        if m.name:
            msg["name"] = m.name
        out.append(msg)
    return out


def _cache_control(meta: dict[str, Any] | None) -> dict[str, Any]:
    """Anthropic's ``cache_control`` of a part, as an OpenAI Chat content part carries it."""
    cc = ((meta or {}).get("anthropic") or {}).get("cache_control")
    return {"cache_control": cc} if isinstance(cc, dict) else {}


def _encode_content(parts: list[Part], cache_control: bool = False) -> str | list[dict[str, Any]]:
    marked = cache_control and any(_cache_control(p.provider_metadata) for p in parts)
    if all(isinstance(p, TextPart) for p in parts) and not marked:
        return "".join(p.text for p in parts if isinstance(p, TextPart))
    out: list[dict[str, Any]] = []
    for p in parts:
        cc = _cache_control(p.provider_metadata) if cache_control else {}
        if isinstance(p, TextPart):
            if p.text or cc:
                out.append({"type": "text", "text": p.text, **cc})
        elif isinstance(p, ImagePart):
            iu: dict[str, Any] = {"url": image_to_url(p)}
            if p.detail:
                iu["detail"] = p.detail
            out.append({"type": "image_url", "image_url": iu, **cc})
    return out


def _encode_result(p: ToolResultPart, cache_control: bool = False) -> str | list[dict[str, Any]]:
    """A tool result's content; its own ``cache_control`` goes on its last part."""
    content: list[Part] = list(p.content)
    cc = _cache_control(p.provider_metadata) if cache_control else {}
    if cc:
        last = content[-1] if content else TextPart("")
        content = [*content[:-1], dataclasses.replace(last, provider_metadata={"anthropic": cc})]
    if all(isinstance(c, TextPart) for c in content) and not (cache_control and cc):
        return "".join(c.text for c in content if isinstance(c, TextPart))
    return _encode_content(content, cache_control)


def _encode_tool(t: Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name, "parameters": t.parameters}
    if t.description:
        fn["description"] = t.description
    if t.strict is not None:
        fn["strict"] = t.strict
    return {"type": "function", "function": fn}


# --- responses -----------------------------------------------------------------------


def decode_response(body: dict[str, Any]) -> Response:
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ProviderProtocolError("upstream reply has no choices")
    choice = choices[0]
    msg = choice.get("message") or {}
    parts: list[Part] = []
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        parts.append(ThinkingPart(reasoning))
    if isinstance(msg.get("content"), str) and msg["content"]:
        parts.append(TextPart(msg["content"]))
    elif isinstance(msg.get("refusal"), str) and msg["refusal"]:
        parts.append(TextPart(msg["refusal"]))
    for j, call in enumerate(msg.get("tool_calls") or []):
        fn = call.get("function") or {}
        args = fn.get("arguments")
        parts.append(
            ToolCallPart(
                id=str(call.get("id") or f"call_{j}"),
                name=str(fn.get("name", "")),
                arguments=args if isinstance(args, str) else dumps_str(args or {}),
            )
        )
    finish = FINISH_IN.get(str(choice.get("finish_reason")), "stop")
    if finish == "stop" and any(isinstance(p, ToolCallPart) for p in parts):
        finish = "tool_calls"
    return Response(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        parts=parts,
        finish_reason=finish,
        usage=decode_usage(body.get("usage")),
        created=int(body.get("created") or 0),
    )


def encode_response(resp: Response) -> dict[str, Any]:
    text = "".join(p.text for p in resp.parts if isinstance(p, TextPart))
    calls = [p for p in resp.parts if isinstance(p, ToolCallPart)]
    thinking = "".join(p.text for p in resp.parts if isinstance(p, ThinkingPart) and not p.redacted)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None, "refusal": None}
    if thinking:
        message["reasoning_content"] = thinking
    if calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments or "{}"}}
            for c in calls
        ]
    finish = "tool_calls" if calls and resp.finish_reason == "stop" else resp.finish_reason
    return {
        "id": resp.id if resp.id.startswith("chatcmpl") else f"chatcmpl-{resp.id}",
        "object": "chat.completion",
        "created": resp.created or int(time.time()),
        "model": resp.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_out(finish), "logprobs": None}],
        "usage": encode_usage(resp.usage),
    }
