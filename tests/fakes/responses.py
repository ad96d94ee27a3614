"""Builders for OpenAI Responses wire replies and streams, as OpenAI sends them.

Streams use ``event: <type>`` lines, every data object carries ``type`` and a
``sequence_number`` counting from 0, items open with ``output_item.added`` and close
with ``output_item.done``, and ``response.completed`` holds every output item. OpenAI
sends no ``[DONE]`` after the terminal event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .server import Reply, Stream

MODEL = "gpt-up"
RESPONSE_ID = "resp_up1"
CREATED = 1730000000


@dataclass
class Call:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    call_id: str = ""


@dataclass
class Thought:
    """A reasoning item: summary parts and optional encrypted content."""

    summary: list[str] = field(default_factory=list)
    encrypted: str | None = None


def usage(
    input_tokens: int = 10, output_tokens: int = 5, cached: int = 0, reasoning: int = 0, cache_write: int = 0
) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": cache_write},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens,
    }


def response_obj(
    output: list[dict[str, Any]], *, status: str = "completed", model: str = MODEL, usage_: dict[str, Any] | None = None,
    incomplete_reason: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "id": RESPONSE_ID, "object": "response", "created_at": CREATED, "status": status, "background": False,
        "error": None, "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": None, "max_output_tokens": None, "max_tool_calls": None, "model": model, "output": output,
        "parallel_tool_calls": True, "previous_response_id": None, "prompt_cache_key": None,
        "reasoning": {"effort": None, "summary": None}, "safety_identifier": None, "service_tier": "default",
        "store": True, "temperature": 1.0, "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto", "tools": [], "top_logprobs": 0, "top_p": 1.0, "truncation": "disabled",
        "usage": usage_, "user": None, "metadata": {},
    }  # fmt: skip


def _message(text: str, status: str = "completed", item_id: str = "msg_up1") -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]}  # fmt: skip


def _call(c: Call, i: int, status: str = "completed") -> dict[str, Any]:
    args = json.dumps(c.arguments) if status == "completed" else ""
    return {"id": f"fc_up{i}", "type": "function_call", "status": status, "arguments": args,
            "call_id": c.call_id or f"call_up{i}", "name": c.name}  # fmt: skip


def _reasoning(t: Thought, done: bool = True) -> dict[str, Any]:
    item: dict[str, Any] = {"id": "rs_up1", "type": "reasoning",
                            "summary": [{"type": "summary_text", "text": s} for s in t.summary] if done else []}  # fmt: skip
    if t.encrypted is not None:
        item["encrypted_content"] = t.encrypted
    return item


def output_items(text: str | None, calls: list[Call], thought: Thought | None, status: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if thought is not None:
        items.append(_reasoning(thought))
    if text is not None:
        items.append(_message(text, "incomplete" if status == "incomplete" else "completed"))
    items += [_call(c, i) for i, c in enumerate(calls)]
    return items


def response(
    text: str | None = "Hello!", *, calls: list[Call] | None = None, thought: Thought | None = None,
    incomplete_reason: str | None = None, usage_: dict[str, Any] | None = None, model: str = MODEL,
) -> Reply:  # fmt: skip
    status = "incomplete" if incomplete_reason else "completed"
    output = output_items(text, calls or [], thought, status)
    return Reply(response_obj(output, status=status, model=model, usage_=usage_ or usage(),
                              incomplete_reason=incomplete_reason))  # fmt: skip


class _Frames:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def add(self, kind: str, **fields: Any) -> None:
        data = {"type": kind, "sequence_number": len(self.frames), **fields}
        self.frames.append(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())


def stream_frames(
    texts: list[str], *, calls: list[Call] | None = None, thought: Thought | None = None,
    incomplete_reason: str | None = None, usage_: dict[str, Any] | None = None, model: str = MODEL,
    args_done_only: bool = False,
) -> list[bytes]:  # fmt: skip
    """A full Responses stream. ``args_done_only`` sends each call's arguments only in
    ``function_call_arguments.done`` and ``output_item.done``, with no deltas."""
    calls = calls or []
    f = _Frames()
    status = "incomplete" if incomplete_reason else "completed"
    f.add("response.created", response=response_obj([], status="in_progress", model=model))
    f.add("response.in_progress", response=response_obj([], status="in_progress", model=model))
    final: list[dict[str, Any]] = []
    if thought is not None:
        _stream_reasoning(f, thought, len(final))
        final.append(_reasoning(thought))
    if texts:
        _stream_text(f, texts, len(final), status)
        final.append(_message("".join(texts), "incomplete" if status == "incomplete" else "completed"))
    for i, c in enumerate(calls):
        _stream_call(f, c, i, len(final), args_done_only)
        final.append(_call(c, i))
    f.add(f"response.{status}", response=response_obj(final, status=status, model=model, usage_=usage_ or usage(),
                                                      incomplete_reason=incomplete_reason))  # fmt: skip
    return f.frames


def _stream_reasoning(f: _Frames, t: Thought, idx: int) -> None:
    where = {"item_id": "rs_up1", "output_index": idx}
    f.add("response.output_item.added", output_index=idx, item=_reasoning(t, done=False))
    for k, text in enumerate(t.summary):
        f.add(
            "response.reasoning_summary_part.added", **where, summary_index=k, part={"type": "summary_text", "text": ""}
        )
        half = len(text) // 2
        for piece in (text[:half], text[half:]):
            f.add("response.reasoning_summary_text.delta", **where, summary_index=k, delta=piece)
        f.add("response.reasoning_summary_text.done", **where, summary_index=k, text=text)
        f.add(
            "response.reasoning_summary_part.done",
            **where,
            summary_index=k,
            part={"type": "summary_text", "text": text},
        )
    f.add("response.output_item.done", output_index=idx, item=_reasoning(t))


def _stream_text(f: _Frames, texts: list[str], idx: int, status: str) -> None:
    where = {"item_id": "msg_up1", "output_index": idx, "content_index": 0}
    item = {"id": "msg_up1", "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
    f.add("response.output_item.added", output_index=idx, item=item)
    f.add(
        "response.content_part.added",
        **where,
        part={"type": "output_text", "annotations": [], "logprobs": [], "text": ""},
    )
    for t in texts:
        f.add("response.output_text.delta", **where, delta=t, logprobs=[])
    full = "".join(texts)
    f.add("response.output_text.done", **where, text=full, logprobs=[])
    f.add(
        "response.content_part.done",
        **where,
        part={"type": "output_text", "annotations": [], "logprobs": [], "text": full},
    )
    f.add(
        "response.output_item.done",
        output_index=idx,
        item=_message(full, "incomplete" if status == "incomplete" else "completed"),
    )


def _stream_call(f: _Frames, c: Call, i: int, idx: int, args_done_only: bool) -> None:
    item_id = f"fc_up{i}"
    args = json.dumps(c.arguments)
    f.add("response.output_item.added", output_index=idx, item=_call(c, i, status="in_progress"))
    if not args_done_only:
        half = len(args) // 2
        for piece in (args[:half], args[half:]):
            f.add("response.function_call_arguments.delta", item_id=item_id, output_index=idx, delta=piece)
    f.add("response.function_call_arguments.done", item_id=item_id, output_index=idx, arguments=args)
    f.add("response.output_item.done", output_index=idx, item=_call(c, i))


def stream(texts: list[str], **kw: Any) -> Stream:
    """``stream_frames`` as a scripted reply; Stream options (delay, cut_after...) pass through."""
    opts = {k: kw.pop(k) for k in ("delay", "cut_after", "stall_after", "status", "headers") if k in kw}
    return Stream(stream_frames(texts, **kw), **opts)


def failed_stream(message: str = "The server had an error", *, texts: list[str] | None = None) -> Stream:
    """Some output, then ``response.failed`` with an error, as OpenAI ends a failed stream."""
    f = _Frames()
    f.add("response.created", response=response_obj([], status="in_progress"))
    if texts:
        _stream_text(f, texts, 0, "completed")
    failed = response_obj([], status="failed")
    failed["error"] = {"code": "server_error", "message": message}
    f.add("response.failed", response=failed)
    return Stream(f.frames)


def error_event_stream(message: str = "Rate limit reached", code: str = "rate_limit_exceeded") -> Stream:
    f = _Frames()
    f.add("response.created", response=response_obj([], status="in_progress"))
    f.add("error", code=code, message=message, param=None)
    return Stream(f.frames)


def error(status: int, message: str = "upstream says no", headers: dict[str, str] | None = None) -> Reply:
    return Reply({"error": {"message": message, "type": "server_error", "param": None, "code": None}}, status=status,
                 headers=headers or {})  # fmt: skip
