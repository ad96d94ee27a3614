"""OpenAI Responses (``/v1/responses``) <-> the canonical model.

Responses is item-based: one assistant turn is a run of ``reasoning``, ``message`` and
``function_call`` items, and each tool result is its own ``function_call_output`` item.
The decoder folds a run of assistant-side items into one canonical assistant message;
the encoder splits it back. Item ids, message ``phase`` and reasoning ids are kept in
``provider_metadata["openai_responses"]`` so a same-dialect round trip loses nothing.
Hosted tools (``web_search`` and friends) have no canonical home: they ride in
``Request.extra`` and only a Responses upstream ever sees them.
"""

from __future__ import annotations

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
    Role,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from . import _responses_hosted as hosted
from ._common import effort_from_budget, field_type, image_from_url, require_str
from ._openai_wire import error_body, image_to_url
from ._responses_stream import StreamDecoder, StreamEncoder
from ._responses_wire import (
    NAME,
    decode_reasoning_item,
    decode_usage,
    encode_usage,
    failure,
    finish_in,
    finish_status,
    item_meta,
    message_item,
    output_item,
    output_text,
    response_object,
    summary_texts,
    with_meta,
)

__all__ = [
    "NAME",
    "StreamDecoder",
    "StreamEncoder",
    "decode_request",
    "decode_response",
    "decode_usage",
    "encode_request",
    "encode_response",
    "encode_usage",
    "error_body",
]

_EFFORTS = {"none", "minimal", "low", "medium", "high", "xhigh", "max"}
_ROLES: dict[str, Role] = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_KNOWN = {
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens",
    "temperature", "top_p", "text", "reasoning", "stream", "metadata", "user",
}  # fmt: skip
# Fields whose presence means earlier turns live on OpenAI's side, not in ``input``.
_STATEFUL = ("previous_response_id", "conversation", "prompt")


def _flag(value: Any, name: str) -> bool:
    """A JSON boolean (``field_type`` refuses bools, being made for numbers)."""
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be a boolean", param=name)
    return value


# --- requests ------------------------------------------------------------------------


def decode_request(body: dict[str, Any]) -> Request:
    model = require_str(body, "model")
    messages: list[Message] = []
    instructions = body.get("instructions")
    if instructions is not None:
        messages.append(Message("system", [TextPart(field_type(instructions, str, "instructions"))]))
    raw_input = body.get("input")
    more_tools: list[Any] = []  # Codex's "additional_tools" input items
    if isinstance(raw_input, str):
        messages.append(Message("user", [TextPart(raw_input)]))
    elif isinstance(raw_input, list):
        messages.extend(_decode_input(raw_input, more_tools))
    elif raw_input is not None:
        raise InvalidRequest("'input' must be a string or an array of items", param="input")
    stateful = any(body.get(k) is not None for k in _STATEFUL)
    if not messages and not stateful:
        raise InvalidRequest("'input' is required", param="input")
    if not stateful:
        _check_call_outputs(messages)
    req = Request(model=model, messages=messages, include_usage=True)
    extra = {k: v for k, v in body.items() if k not in _KNOWN}
    req.tools, hosted = _decode_tools(body.get("tools"))
    if more_tools:
        tools, more_hosted = _decode_tools(more_tools, "input[].tools")
        req.tools += tools
        hosted += more_hosted
    if hosted:
        extra["tools"] = hosted
    req.tool_choice = _decode_tool_choice(body.get("tool_choice"), extra)
    if body.get("parallel_tool_calls") is not None:
        req.parallel_tool_calls = _flag(body["parallel_tool_calls"], "parallel_tool_calls")
    if body.get("max_output_tokens") is not None:
        req.max_tokens = field_type(body["max_output_tokens"], int, "max_output_tokens")
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            setattr(req, name, float(field_type(body[name], (int, float), name)))
    req.response_format = _decode_text(body.get("text"), extra)
    req.reasoning = _decode_reasoning_config(body.get("reasoning"))
    if body.get("stream") is not None:
        req.stream = _flag(body["stream"], "stream")
    if body.get("metadata") is not None:
        req.metadata = field_type(body["metadata"], dict, "metadata")
    if body.get("user") is not None:
        req.user = field_type(body["user"], str, "user")
    req.extra = extra
    return req


def _assistant_turn(messages: list[Message]) -> Message:
    """The assistant message a reasoning/message/function_call item joins."""
    if messages and messages[-1].role == "assistant":
        return messages[-1]
    messages.append(Message("assistant"))
    return messages[-1]


def _decode_input(items: list[Any], more_tools: list[Any]) -> list[Message]:
    messages: list[Message] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            raw_role = item.get("role")
            role = _ROLES.get(raw_role) if isinstance(raw_role, str) else None
            if role is None:
                raise InvalidRequest(
                    f"{where}.role {item.get('role')!r} is not one of user, assistant, system, developer",
                    param=f"{where}.role",
                )
            parts = _decode_content(item.get("content"), where)
            if role == "assistant":
                _assistant_turn(messages).parts.extend(_assistant_text(parts, item))
            else:
                messages.append(Message(role, parts))
        elif kind == "function_call":
            _assistant_turn(messages).parts.append(_decode_function_call(item, where))
        elif kind == "function_call_output":
            messages.append(Message("tool", [_decode_call_output(item, where)]))
        elif kind == "reasoning":
            _assistant_turn(messages).parts.append(decode_reasoning_item(item))
        elif kind == "additional_tools":
            # Tools offered from this point of the conversation on; other dialects have
            # tools per request only, so they join the request's tools.
            more_tools.extend(field_type(item.get("tools"), list, f"{where}.tools"))
        elif kind in hosted.KINDS:
            part = hosted.decode(item, kind, where)
            if isinstance(part, ToolResultPart):
                messages.append(Message("tool", [part]))
            elif kind in hosted.USER_SIDE:
                messages.append(Message("user", [part]))
            else:
                _assistant_turn(messages).parts.append(part)
        else:
            raise InvalidRequest(
                f"{where}.type {kind!r} is not supported; use message, function_call, "
                "function_call_output, reasoning, additional_tools, an OpenAI-hosted tool's item "
                "or (on /v1/responses) item_reference",
                param=f"{where}.type",
            )
    return messages


def _assistant_text(parts: list[Part], item: dict[str, Any]) -> list[Part]:
    """Assistant text parts; the first carries the item's id and phase for the way back."""
    kept = [p for p in parts if not isinstance(p, TextPart) or p.text]
    meta = with_meta(id=item.get("id"), phase=item.get("phase"))
    if meta is not None:
        first = kept[0] if kept else None
        if not isinstance(first, TextPart):
            first = TextPart("")
            kept.insert(0, first)
        first.provider_metadata = meta
    return kept


def _decode_content(content: Any, where: str) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or an array of parts", param=f"{where}.content")
    return [_decode_content_part(p, f"{where}.content[{k}]") for k, p in enumerate(content)]


def _decode_content_part(p: Any, where: str) -> TextPart | ImagePart:
    kind = p.get("type") if isinstance(p, dict) else None
    if kind in ("input_text", "output_text", "text", "refusal"):
        key = "refusal" if kind == "refusal" else "text"
        return TextPart(field_type(p.get(key), str, f"{where}.{key}"))
    if kind == "input_image":
        url = p.get("image_url")
        if not isinstance(url, str) or not url:
            raise InvalidRequest(
                f"{where}.image_url is required (a data: or https: URL; file_id images are not supported)",
                param=f"{where}.image_url",
            )
        detail = p.get("detail")
        return image_from_url(url, detail if isinstance(detail, str) else None)
    if kind == "input_file":
        raise InvalidRequest(f"{where}: input_file parts are not supported", param=where)
    raise InvalidRequest(f"{where} has unsupported type {kind!r}", param=f"{where}.type")


def _decode_function_call(item: dict[str, Any], where: str) -> ToolCallPart:
    call_id = field_type(item.get("call_id"), str, f"{where}.call_id")
    name = field_type(item.get("name"), str, f"{where}.name")
    args = item.get("arguments")
    if args is None:
        args = "{}"
    elif not isinstance(args, str):
        args = dumps_str(field_type(args, dict, f"{where}.arguments"))
    return ToolCallPart(call_id, name, args, with_meta(id=item.get("id")))


def _decode_call_output(item: dict[str, Any], where: str) -> ToolResultPart:
    call_id = field_type(item.get("call_id"), str, f"{where}.call_id")
    output = item.get("output")
    if isinstance(output, str):
        return ToolResultPart(call_id, [TextPart(output)])
    if not isinstance(output, list):
        raise InvalidRequest(f"{where}.output must be a string or an array of parts", param=f"{where}.output")
    return ToolResultPart(call_id, [_decode_content_part(p, f"{where}.output[{k}]") for k, p in enumerate(output)])


def _check_call_outputs(messages: list[Message]) -> None:
    seen: set[str] = set()
    for m in messages:
        for p in m.parts:
            if isinstance(p, ToolCallPart):
                seen.add(p.id)
            elif isinstance(p, ToolResultPart) and p.tool_call_id not in seen:
                raise InvalidRequest(
                    f"function_call_output answers call_id {p.tool_call_id!r}, "
                    "which no preceding function_call in 'input' made",
                    param="input",
                )


def _decode_tools(tools: Any, where: str = "tools") -> tuple[list[Tool], list[Any]]:
    if tools is None:
        return [], []
    out: list[Tool] = []
    hosted: list[Any] = []
    for i, t in enumerate(field_type(tools, list, where)):
        if not isinstance(t, dict):
            raise InvalidRequest(f"{where}[{i}] must be an object", param=f"{where}[{i}]")
        if t.get("type") != "function":
            hosted.append(t)
            continue
        params = t.get("parameters")
        strict = t.get("strict")
        out.append(
            Tool(
                name=field_type(t.get("name"), str, f"{where}[{i}].name"),
                description=t.get("description"),
                parameters=params if isinstance(params, dict) else {"type": "object", "properties": {}},
                strict=_flag(strict, f"{where}[{i}].strict") if strict is not None else None,
            )
        )
    return out, hosted


def _decode_tool_choice(tc: Any, extra: dict[str, Any]) -> ToolChoice | None:
    if tc is None:
        return None
    if tc in ("auto", "none", "required"):
        return ToolChoice(tc)
    if isinstance(tc, dict) and isinstance(tc.get("type"), str):
        if tc["type"] == "function":
            return ToolChoice("tool", field_type(tc.get("name"), str, "tool_choice.name"))
        extra["tool_choice"] = tc  # a hosted tool or allowed_tools: Responses-only
        return None
    raise InvalidRequest(f"invalid tool_choice {tc!r}", param="tool_choice")


def _decode_text(text: Any, extra: dict[str, Any]) -> ResponseFormat | None:
    if text is None:
        return None
    rest = dict(field_type(text, dict, "text"))
    fmt = rest.pop("format", None)
    if rest:
        extra["text"] = rest  # e.g. verbosity
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        raise InvalidRequest("text.format.type must be text, json_object or json_schema", param="text.format.type")
    if kind == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequest("text.format.schema must be an object", param="text.format.schema")
        return ResponseFormat("json_schema", fmt.get("name"), schema, fmt.get("strict"))
    return ResponseFormat(kind)


def _decode_reasoning_config(r: Any) -> Reasoning | None:
    if r is None:
        return None
    field_type(r, dict, "reasoning")
    effort = r.get("effort")
    if effort is not None and effort not in _EFFORTS:
        raise InvalidRequest(f"invalid reasoning.effort {effort!r}", param="reasoning.effort")
    summary = r.get("summary") or r.get("generate_summary")
    if summary is not None:
        field_type(summary, str, "reasoning.summary")
    if effort is None and summary is None:
        return None
    return Reasoning(effort=effort, summary=summary, include_thoughts=True if summary else None)


def encode_request(req: Request) -> dict[str, Any]:
    body: dict[str, Any] = {"model": req.model}
    messages = req.messages
    first = messages[0] if messages else None
    if (
        first is not None
        and first.role == "system"
        and first.parts
        and all(isinstance(p, TextPart) for p in first.parts)
    ):
        body["instructions"] = first.text()
        messages = messages[1:]
    body["input"] = [item for m in messages for item in _encode_message(m)]
    extra = dict(req.extra)
    tools = [_encode_tool(t) for t in req.tools] + list(extra.pop("tools", None) or [])
    if tools:
        body["tools"] = tools
    if req.tool_choice is not None:
        tc = req.tool_choice
        body["tool_choice"] = {"type": "function", "name": tc.name} if tc.mode == "tool" else tc.mode
    if req.parallel_tool_calls is not None and tools:
        body["parallel_tool_calls"] = req.parallel_tool_calls
    if req.max_tokens is not None:
        body["max_output_tokens"] = req.max_tokens
    for name in ("temperature", "top_p", "user"):
        if getattr(req, name) is not None:
            body[name] = getattr(req, name)
    text = dict(extra.pop("text", None) or {})
    if req.response_format is not None:
        text["format"] = _encode_format(req.response_format)
    if text:
        body["text"] = text
    reasoning = _encode_reasoning_config(req.reasoning)
    if reasoning:
        body["reasoning"] = reasoning
    if req.metadata:
        body["metadata"] = req.metadata
    if req.stream:
        body["stream"] = True
    # Responses has no stop, seed or top_k: they are dropped, never sent.
    body.update(extra)
    return body


def _encode_message(m: Message) -> list[dict[str, Any]]:
    if m.role == "tool":
        return [_encode_call_output(p) for p in m.parts if isinstance(p, ToolResultPart)]
    if m.role == "assistant":
        return _encode_assistant(m.parts)
    if m.parts and (kept := hosted.original(m.parts[0])) is not None:
        return [kept]
    content = [_encode_input_part(p) for p in m.parts if isinstance(p, (TextPart, ImagePart))]
    return [{"type": "message", "role": m.role, "content": content}]


def _encode_input_part(p: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(p, TextPart):
        return {"type": "input_text", "text": p.text}
    return {"type": "input_image", "image_url": image_to_url(p), "detail": p.detail or "auto"}


def _encode_assistant(parts: list[Part]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    message: dict[str, Any] | None = None
    for p in parts:
        if (kept := hosted.original(p)) is not None:
            message = None
            items.append(kept)  # an OpenAI-hosted tool's item, back as it came
            continue
        if isinstance(p, TextPart):
            meta = item_meta(p)
            if message is None or meta:
                message = {"type": "message", "role": "assistant", "content": []}
                message.update({k: meta[k] for k in ("id", "phase") if k in meta})
                items.append(message)
            if p.text or not meta:
                message["content"].append({"type": "output_text", "text": p.text, "annotations": []})
            continue
        message = None
        if isinstance(p, ToolCallPart):
            call: dict[str, Any] = {"type": "function_call", "call_id": p.id, "name": p.name,
                                    "arguments": p.arguments or "{}"}  # fmt: skip
            if "id" in item_meta(p):
                call["id"] = item_meta(p)["id"]
            items.append(call)
        elif isinstance(p, ThinkingPart):
            reasoning = _encode_reasoning_input(p)
            if reasoning is not None:
                items.append(reasoning)
    return items


def _encode_reasoning_input(p: ThinkingPart) -> dict[str, Any] | None:
    """Only reasoning OpenAI produced can go back; other dialects' thinking is dropped."""
    meta = item_meta(p)
    if p.source != NAME or p.redacted or not (p.signature or meta.get("id")):
        return None
    item: dict[str, Any] = {"type": "reasoning"}
    if meta.get("id"):
        item["id"] = meta["id"]
    item["summary"] = [{"type": "summary_text", "text": t} for t in summary_texts(p.text, meta)]
    if p.signature:
        item["encrypted_content"] = p.signature
    return item


def _encode_call_output(p: ToolResultPart) -> dict[str, Any]:
    if (kept := hosted.original(p)) is not None:
        return kept
    output: str | list[dict[str, Any]]
    if all(isinstance(c, TextPart) for c in p.content):
        output = "".join(c.text for c in p.content if isinstance(c, TextPart))
    else:
        output = [_encode_input_part(c) for c in p.content]
    return {"type": "function_call_output", "call_id": p.tool_call_id, "output": output}


def _encode_tool(t: Tool) -> dict[str, Any]:
    # Responses makes tools strict when ``strict`` is omitted; canonical None means
    # "not asked for", which every other dialect treats as non-strict.
    out: dict[str, Any] = {"type": "function", "name": t.name}
    if t.description:
        out["description"] = t.description
    out["parameters"] = t.parameters
    out["strict"] = bool(t.strict)
    return out


def _encode_format(rf: ResponseFormat) -> dict[str, Any]:
    if rf.type != "json_schema":
        return {"type": rf.type}
    fmt: dict[str, Any] = {"type": "json_schema", "name": rf.name or "response", "schema": rf.schema or {}}
    if rf.strict is not None:
        fmt["strict"] = rf.strict
    return fmt


def _encode_reasoning_config(r: Reasoning | None) -> dict[str, Any]:
    if r is None:
        return {}
    out: dict[str, Any] = {}
    effort = r.effort or effort_from_budget(r.budget_tokens)
    if effort:
        out["effort"] = effort
    summary = r.summary or ("auto" if r.include_thoughts else None)
    if summary:
        out["summary"] = summary
    return out


# --- responses -----------------------------------------------------------------------


def _item_parts(item: dict[str, Any]) -> list[Part]:
    """Canonical parts for one output item (hosted-tool items have none)."""
    kind = item.get("type")
    if kind == "message":
        texts: list[TextPart] = []
        for c in item.get("content") or []:
            text = c.get("refusal") if c.get("type") == "refusal" else c.get("text")
            if isinstance(text, str) and text:
                texts.append(TextPart(text))
        if texts:
            texts[0].provider_metadata = with_meta(id=item.get("id"), phase=item.get("phase"))
        return [*texts]
    if kind == "function_call":
        args = item.get("arguments")
        return [
            ToolCallPart(
                id=str(item.get("call_id") or item.get("id") or ""),
                name=str(item.get("name") or ""),
                arguments=args if isinstance(args, str) and args else "{}",
                provider_metadata=with_meta(id=item.get("id")),
            )
        ]
    if kind == "reasoning":
        return [decode_reasoning_item(item)]
    return []


def decode_response(body: dict[str, Any]) -> Response:
    if body.get("status") == "failed" or (body.get("error") and not body.get("output")):
        raise failure(body)
    output = body.get("output")
    if not isinstance(output, list):
        raise ProviderProtocolError("upstream reply has no output")
    parts = [p for item in output if isinstance(item, dict) for p in _item_parts(item)]
    saw_tools = any(isinstance(p, ToolCallPart) for p in parts)
    return Response(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        parts=parts,
        finish_reason=finish_in(body.get("status"), body.get("incomplete_details"), saw_tools),
        usage=decode_usage(body.get("usage")),
        created=int(body.get("created_at") or 0),
    )


def encode_response(resp: Response) -> dict[str, Any]:
    rid = resp.id if resp.id.startswith("resp_") else f"resp_{resp.id or 'llmproxy'}"
    base = rid.removeprefix("resp_")
    obj = response_object(rid, resp.model, resp.created or int(time.time()), "completed", [], resp.usage)
    finish_status(obj, resp.finish_reason)
    text_status = "incomplete" if obj["status"] == "incomplete" else "completed"
    output: list[dict[str, Any]] = obj["output"]
    message: dict[str, Any] | None = None
    for part in resp.parts:
        if isinstance(part, TextPart):
            meta = item_meta(part)
            if message is None or meta:
                message = message_item(
                    meta.get("id") or f"msg_{base}_{len(output)}", [], text_status, meta.get("phase")
                )
                output.append(message)
            message["content"].append(output_text(part.text))
            continue
        message = None
        prefix = "fc" if isinstance(part, ToolCallPart) else "rs"
        item = output_item(part, f"{prefix}_{base}_{len(output)}")
        if item is not None:
            output.append(item)
    return obj
