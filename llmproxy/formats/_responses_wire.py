"""Shared Responses wire pieces: usage, the ``response`` object and its output items.

Both the non-streaming codec and the stream codec build the same objects, so they live
here once. ``provider_metadata["openai_responses"]`` holds item ids, message ``phase``
and multi-part reasoning summaries: what a same-dialect round trip must give back.
"""

from __future__ import annotations

from typing import Any

from ..errors import ProviderError
from ..model import FinishReason, Part, ThinkingPart, ToolCallPart, Usage

NAME = "openai_responses"


def item_meta(part: Any) -> dict[str, Any]:
    md = part.provider_metadata
    value = md.get(NAME) if md else None
    return value if isinstance(value, dict) else {}


def with_meta(**values: Any) -> dict[str, Any] | None:
    kept = {k: v for k, v in values.items() if v is not None}
    return {NAME: kept} if kept else None


def decode_reasoning_item(item: dict[str, Any]) -> ThinkingPart:
    texts = [s.get("text", "") for s in item.get("summary") or [] if isinstance(s, dict)]
    if not texts:
        texts = [c.get("text", "") for c in item.get("content") or [] if isinstance(c, dict)]
        summary = None
    else:
        summary = texts if len(texts) > 1 else None
    enc = item.get("encrypted_content")
    return ThinkingPart(
        text="\n\n".join(str(t) for t in texts),
        signature=enc if isinstance(enc, str) else None,
        source=NAME,
        provider_metadata=with_meta(id=item.get("id"), summary=summary),
    )


def summary_texts(text: str, meta: dict[str, Any]) -> list[str]:
    kept = meta.get("summary")
    if isinstance(kept, list) and "\n\n".join(kept) == text:
        return kept
    return [text] if text else []


def decode_usage(u: Any) -> Usage:
    if not isinstance(u, dict):
        return Usage()
    ind = u.get("input_tokens_details") or {}
    outd = u.get("output_tokens_details") or {}
    return Usage(
        input_tokens=int(u.get("input_tokens") or 0),
        output_tokens=int(u.get("output_tokens") or 0),
        cached_tokens=int(ind.get("cached_tokens") or 0),
        cache_write_tokens=int(ind.get("cache_write_tokens") or 0),
        reasoning_tokens=int(outd.get("reasoning_tokens") or 0),
    )


def encode_usage(u: Usage) -> dict[str, Any]:
    return {
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens, "cache_write_tokens": u.cache_write_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.input_tokens + u.output_tokens,
    }


def finish_in(status: Any, incomplete: Any, saw_tools: bool) -> FinishReason:
    if status == "incomplete":
        reason = incomplete.get("reason") if isinstance(incomplete, dict) else None
        return "content_filter" if reason == "content_filter" else "length"
    return "tool_calls" if saw_tools else "stop"


def failure(body: dict[str, Any]) -> ProviderError:
    err: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
    message = str(err.get("message") or "upstream response failed")
    return ProviderError(message, code="upstream_stream_error")


def response_object(
    rid: str, model: str, created: int, status: str, output: list[dict[str, Any]], usage: Usage | None = None
) -> dict[str, Any]:
    """A full Responses ``response`` object: every field the SDK type requires."""
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "usage": encode_usage(usage) if usage is not None else None,
        "metadata": {},
    }


def finish_status(obj: dict[str, Any], finish: FinishReason) -> None:
    """Set ``status`` (and its details) on a response object from a finish reason."""
    if finish in ("length", "content_filter"):
        obj["status"] = "incomplete"
        obj["incomplete_details"] = {"reason": "content_filter" if finish == "content_filter" else "max_output_tokens"}
    elif finish == "error":
        obj["status"] = "failed"
        obj["error"] = {"code": "server_error", "message": "the model stopped with an error"}
    else:
        obj["status"] = "completed"


def output_item(part: Part, item_id: str) -> dict[str, Any] | None:
    """One finished output item for a thinking or tool-call part (text goes via ``message_item``)."""
    if isinstance(part, ToolCallPart):
        return {"type": "function_call", "id": item_meta(part).get("id") or item_id, "call_id": part.id,
                "name": part.name, "arguments": part.arguments or "{}", "status": "completed"}  # fmt: skip
    if isinstance(part, ThinkingPart):
        sig = part.signature if part.source == NAME and not part.redacted else None
        if part.redacted or (not part.text and not sig):
            return None
        meta = item_meta(part) if part.source == NAME else {}
        item: dict[str, Any] = {"type": "reasoning", "id": meta.get("id") or item_id,
                                "summary": [{"type": "summary_text", "text": t} for t in summary_texts(part.text, meta)]}  # fmt: skip
        if sig:
            item["encrypted_content"] = sig
        return item
    return None


def message_item(item_id: str, texts: list[str], status: str = "completed", phase: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "message", "id": item_id, "role": "assistant", "status": status,
                            "content": [output_text(t) for t in texts]}  # fmt: skip
    if phase:
        item["phase"] = phase
    return item


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
