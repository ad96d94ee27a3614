"""Builders for Anthropic Messages wire replies, as api.anthropic.com sends them.

Streams use ``event: <type>`` lines (the SDK skips events without one): message_start,
then per block content_block_start -> deltas -> content_block_stop, a ``ping`` after the
first block start, then message_delta (cumulative usage) and message_stop.
"""

from __future__ import annotations

import json
from typing import Any

from .server import Reply, Stream


def usage(
    input: int = 10, output: int = 5, cache_read: int = 0, cache_creation: int = 0, thinking: int | None = None
) -> dict[str, Any]:
    u: dict[str, Any] = {"input_tokens": input, "output_tokens": output, "cache_creation_input_tokens": cache_creation,
                         "cache_read_input_tokens": cache_read}  # fmt: skip
    if thinking is not None:
        u["output_tokens_details"] = {"thinking_tokens": thinking}
    return u


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def tool_use(name: str, input: dict[str, Any] | None = None, id: str = "toolu_01A") -> dict[str, Any]:
    return {"type": "tool_use", "id": id, "name": name, "input": input or {}}


def thinking(t: str, signature: str = "EqQBCgIYAhIMsig==") -> dict[str, Any]:
    return {"type": "thinking", "thinking": t, "signature": signature}


def redacted(data: str = "EmwKAhgBEgy3va3pzix/LafPsn4a") -> dict[str, Any]:
    return {"type": "redacted_thinking", "data": data}


def body(
    content: list[dict[str, Any]] | str = "Hello!",
    *,
    model: str = "claude-up",
    stop_reason: str | None = None,
    stop_sequence: str | None = None,
    usage_: dict[str, Any] | None = None,
    id: str = "msg_up1",
) -> dict[str, Any]:
    """A whole Messages reply; ``stop_reason`` defaults from the blocks (tool_use or end_turn)."""
    blocks = [text(content)] if isinstance(content, str) else content
    if stop_reason is None:
        stop_reason = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    return {"id": id, "type": "message", "role": "assistant", "model": model, "content": blocks,
            "stop_reason": stop_reason, "stop_sequence": stop_sequence, "usage": usage_ or usage()}  # fmt: skip


def response(content: list[dict[str, Any]] | str = "Hello!", **kw: Any) -> Reply:
    return Reply(body(content, **kw))


def event(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def _pieces(value: str, n: int = 2) -> list[str]:
    size = max(1, -(-len(value) // n))
    return [value[i : i + size] for i in range(0, len(value), size)]


def _block_events(index: int, block: dict[str, Any]) -> list[bytes]:
    kind = block["type"]
    start: dict[str, Any]
    deltas: list[dict[str, Any]] = []
    if kind == "text":
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"])]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    elif kind == "tool_use":
        start = {**block, "input": {}}
        args = json.dumps(block["input"]) if block["input"] else ""
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *_pieces(args)]]
    else:
        start = block  # redacted_thinking and server blocks come whole
    out = [event({"type": "content_block_start", "index": index, "content_block": start})]
    out += [event({"type": "content_block_delta", "index": index, "delta": d}) for d in deltas]
    return [*out, event({"type": "content_block_stop", "index": index})]


def frames(
    content: list[dict[str, Any]] | str = "Hello!",
    *,
    model: str = "claude-up",
    stop_reason: str | None = None,
    stop_sequence: str | None = None,
    usage_: dict[str, Any] | None = None,
    ping: bool = True,
    end: bool = True,
) -> list[bytes]:
    """The SSE frames of a streamed reply with the same shape as :func:`body`."""
    whole = body(content, model=model, stop_reason=stop_reason, stop_sequence=stop_sequence, usage_=usage_)
    final = whole["usage"]
    start_usage = {**final, "output_tokens": 1}
    start_usage.pop("output_tokens_details", None)
    message = {**whole, "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}
    out = [event({"type": "message_start", "message": message})]
    for i, block in enumerate(whole["content"]):
        out += _block_events(i, block)
        if i == 0 and ping:
            out.append(event({"type": "ping"}))
    if not end:
        return out
    out.append(event({"type": "message_delta", "delta": {"stop_reason": whole["stop_reason"],
                                                          "stop_sequence": whole["stop_sequence"]},
                      "usage": {k: v for k, v in final.items() if k != "input_tokens"}}))  # fmt: skip
    return [*out, event({"type": "message_stop"})]


def stream(content: list[dict[str, Any]] | str = "Hello!", **kw: Any) -> Stream:
    stream_kw = {k: kw.pop(k) for k in ("delay", "cut_after", "stall_after") if k in kw}
    return Stream(frames(content, **kw), **stream_kw)


def error_event(kind: str = "overloaded_error", message: str = "Overloaded") -> bytes:
    return event({"type": "error", "error": {"type": kind, "message": message}})


def error(
    status: int, kind: str = "api_error", message: str = "upstream says no", headers: dict[str, str] | None = None
) -> Reply:
    return Reply({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011"},
                 status=status, headers=headers or {})  # fmt: skip
