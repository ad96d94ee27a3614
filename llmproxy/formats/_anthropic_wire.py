"""Anthropic wire facts shared by the request, response and stream halves of the codec.

Usage: Anthropic's ``input_tokens`` excludes cache reads and writes, the canonical
``input_tokens`` includes both. Signatures: thinking that did not come from Anthropic
gets a gateway signature (``llmproxy:`` + a digest of the text) so Anthropic clients
accept it; ``thinking_source`` recognises it when the client sends the block back.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .._json import dumps_str, parse_arguments
from ..errors import InvalidRequest, LLMProxyError, ProviderHTTPError
from ..model import (
    FinishReason,
    ImagePart,
    Part,
    ResponseFormat,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    Usage,
)
from ._common import image_from_url

NAME = "anthropic"
SIGNATURE_PREFIX = "llmproxy:"
#: ``ThinkingPart.source`` of a block whose signature the gateway minted.
GATEWAY_SOURCE = "llmproxy"

_FINISH_IN: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_FINISH_OUT = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
               "content_filter": "refusal", "error": "end_turn"}  # fmt: skip

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
#: An ``event: error`` type -> the HTTP status Anthropic would have answered with.
_ERROR_STATUS = {v: k for k, v in _ERROR_TYPES.items() if k != 503} | {"api_error": 500, "timeout_error": 504}


def finish_in(stop_reason: Any) -> FinishReason:
    return _FINISH_IN.get(str(stop_reason), "stop")


def stop_reason_out(finish: FinishReason, *, tool_calls: bool, stop_sequence: str | None) -> str:
    if finish == "stop" and tool_calls:
        return "tool_use"
    if finish == "stop" and stop_sequence:
        return "stop_sequence"
    return _FINISH_OUT[finish]


def _count(u: dict[str, Any], name: str) -> int:
    value = u.get(name)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def decode_usage(u: Any) -> Usage:
    if not isinstance(u, dict):
        return Usage()
    read, write = _count(u, "cache_read_input_tokens"), _count(u, "cache_creation_input_tokens")
    details, split = u.get("output_tokens_details"), u.get("cache_creation")
    # The 5-minute/1-hour split of the writes (``cache_creation``), when reported: 1-hour writes cost more.
    write_1h = min(write, _count(split, "ephemeral_1h_input_tokens")) if isinstance(split, dict) else 0
    return Usage(
        input_tokens=_count(u, "input_tokens") + read + write,
        output_tokens=_count(u, "output_tokens"),
        cached_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=_count(details, "thinking_tokens") if isinstance(details, dict) else 0,
        cache_write_1h_tokens=write_1h,
    )


def encode_usage(u: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "input_tokens": max(0, u.input_tokens - u.cached_tokens - u.cache_write_tokens),
        "output_tokens": u.output_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cached_tokens,
    }
    if u.cache_write_1h_tokens:
        one_hour = min(u.cache_write_1h_tokens, u.cache_write_tokens)
        out["cache_creation"] = {
            "ephemeral_5m_input_tokens": u.cache_write_tokens - one_hour,
            "ephemeral_1h_input_tokens": one_hour,
        }
    if u.reasoning_tokens:
        out["output_tokens_details"] = {"thinking_tokens": u.reasoning_tokens}
    return out


def gateway_signature(text: str) -> str:
    """A stand-in signature for thinking Anthropic did not sign: stable for the same text."""
    return SIGNATURE_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:32]


def thinking_source(signature: str | None) -> str:
    if signature is not None and signature.startswith(SIGNATURE_PREFIX):
        return GATEWAY_SOURCE
    return NAME


def models_body(models: list[str]) -> dict[str, Any]:
    """``GET /v1/models`` as Anthropic lists models."""
    data = [
        {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z", "lifecycle": "active"}
        for m in models
    ]
    return {"data": data, "has_more": False, "first_id": models[0] if models else None,
            "last_id": models[-1] if models else None}  # fmt: skip


def error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "api_error")


def error_body(err: LLMProxyError) -> tuple[int, dict[str, Any]]:
    return err.status, {"type": "error", "error": {"type": error_type(err.status), "message": err.message}}


def stream_error(data: Any) -> ProviderHTTPError:
    """An ``event: error`` from upstream, as the HTTP error it stands for (overloaded is retryable)."""
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        err = {}
    kind = str(err.get("type") or "api_error")
    message = str(err.get("message") or "upstream stream error")
    return ProviderHTTPError(f"{kind}: {message}", upstream_status=_ERROR_STATUS.get(kind, 500),
                             code="upstream_stream_error")  # fmt: skip


MIN_BUDGET = 1024


FALLBACK_MAX_TOKENS = 8192


MAX_TOKENS_BY_MODEL = (
    (re.compile(r"claude-3-(?:opus|sonnet|haiku)"), 4096),
    (re.compile(r"claude-3-5"), 8192),
    (re.compile(r"opus-4(?:-[01])?(?:-\d{8})?$"), 32000),
    (re.compile(r"claude|opus|sonnet|haiku"), 64000),
)


ADAPTIVE = re.compile(r"(?:opus|sonnet|haiku)-(?:4-[6-9]|[5-9](?!\d))|claude-[5-9](?!\d)")


def default_max_tokens(model: str) -> int:
    """Anthropic requires ``max_tokens``; this is the model's output limit, conservatively."""
    name = model.lower()
    return next((n for pattern, n in MAX_TOKENS_BY_MODEL if pattern.search(name)), FALLBACK_MAX_TOKENS)


def uses_adaptive_thinking(model: str) -> bool:
    return bool(ADAPTIVE.search(model.lower()))


def anthropic_meta(metadata: dict[str, Any] | None) -> dict[str, Any]:
    value = (metadata or {}).get(NAME)
    return value if isinstance(value, dict) else {}


def text_block(p: TextPart) -> dict[str, Any] | None:
    md = anthropic_meta(p.provider_metadata)
    if isinstance(md.get("block"), dict) and not p.text:
        return dict(md["block"])
    if not p.text.strip():  # "text content blocks must contain non-whitespace text"
        return None
    return {"type": "text", "text": p.text, **{k: v for k, v in md.items() if k != "block"}}


def image_block(p: ImagePart) -> dict[str, Any] | None:
    img = image_from_url(p.url) if p.data is None and p.url and p.url.startswith("data:") else p
    if img.data is not None:
        source = {"type": "base64", "media_type": img.media_type or "image/png", "data": img.data}
    elif img.url:
        source = {"type": "url", "url": img.url}
    else:
        return None
    block = {"type": "image", "source": source}
    return block | {k: v for k, v in anthropic_meta(p.provider_metadata).items() if k not in block}


def reply_part(b: dict[str, Any]) -> Part | None:
    kind = b.get("type")
    if kind == "text":
        return TextPart(str(b.get("text") or "")) if b.get("text") else None
    if kind == "thinking":
        sig = b.get("signature") if isinstance(b.get("signature"), str) and b.get("signature") else None
        return ThinkingPart(str(b.get("thinking") or ""), sig, thinking_source(sig))
    if kind == "redacted_thinking":
        return ThinkingPart("", str(b.get("data") or ""), NAME, redacted=True)
    if kind == "tool_use":
        args = b.get("input")
        return ToolCallPart(str(b.get("id") or ""), str(b.get("name") or ""),
                            dumps_str(args if isinstance(args, dict) else {}))  # fmt: skip
    return None  # server-tool blocks: Anthropic ran them, no client acts on them


def reply_block(p: Part) -> dict[str, Any] | None:
    if isinstance(p, TextPart):
        return {"type": "text", "text": p.text} if p.text else None
    if isinstance(p, ToolCallPart):
        args = parse_arguments(p.arguments)
        return {"type": "tool_use", "id": p.id, "name": p.name, "input": args if isinstance(args, dict) else {}}
    if not isinstance(p, ThinkingPart):
        return None  # images: an Anthropic message has no image output block
    if p.redacted:
        return {"type": "redacted_thinking", "data": p.signature} if p.source == NAME and p.signature else None
    if p.source == NAME and p.signature:
        return {"type": "thinking", "thinking": p.text, "signature": p.signature}
    return {"type": "thinking", "thinking": p.text, "signature": gateway_signature(p.text)} if p.text else None


def check_tool_pairs(turns: list[tuple[int, str, list[dict[str, Any]]]]) -> None:
    """Every ``tool_use`` answered in the next (merged) user turn, and nothing else answered there."""
    groups: list[tuple[int, str, list[dict[str, Any]]]] = []
    for i, role, blocks in turns:
        if groups and groups[-1][1] == role:
            groups[-1][2].extend(blocks)
        else:
            groups.append((i, role, list(blocks)))
    called: list[str] = []
    for i, role, blocks in groups:
        if role == "assistant":
            called = [b["id"] for b in blocks if b["type"] == "tool_use"]
            continue
        answered = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"]
        missing = [c for c in called if c not in answered]
        if missing:
            raise InvalidRequest(
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block "
                "in the next message.",
                param=f"messages.{i}",
            )
        unexpected = [a for a in answered if a not in called]
        if unexpected:
            raise InvalidRequest(
                f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(unexpected)}. Each `tool_result` block must have a corresponding `tool_use` block "
                "in the previous message.",
                param=f"messages.{i}.content",
            )
        called = []


def decode_format(fmt: Any) -> ResponseFormat | None:
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise InvalidRequest("output_config.format: expected {type: json_schema, schema: {...}}",
                             param="output_config.format")  # fmt: skip
    return ResponseFormat("json_schema", schema=fmt["schema"])


def encode_tool(t: Tool) -> dict[str, Any]:
    schema = t.parameters if t.parameters.get("type") else {"type": "object", **t.parameters}
    out: dict[str, Any] = {"name": t.name}
    if t.description:
        out["description"] = t.description
    out["input_schema"] = schema
    if t.strict:
        out["strict"] = True
    return out | {k: v for k, v in anthropic_meta(t.provider_metadata).items() if k not in out}


def strip_gateway_thinking(body: dict[str, Any]) -> dict[str, Any]:
    """A passthrough body without the thinking blocks this gateway signed.

    Thinking an Anthropic client got from another provider's upstream carries a gateway
    signature (``gateway_signature``); sent back to Anthropic it would be refused as an
    invalid signature, so it is dropped (an assistant turn left empty goes too). Blocks
    Anthropic signed stay. The body is copied only when something is dropped."""
    messages = body.get("messages")
    if not isinstance(messages, list) or SIGNATURE_PREFIX not in _signatures(messages):
        return body
    out: list[Any] = []
    for m in messages:
        content = m.get("content") if isinstance(m, dict) and m.get("role") == "assistant" else None
        if isinstance(content, list):
            kept = [b for b in content if not _gateway_signed(b)]
            if len(kept) != len(content):
                if not kept:
                    continue
                m = {**m, "content": kept}
        out.append(m)
    return {**body, "messages": out}


def _signatures(messages: list[Any]) -> str:
    """The signatures of the assistant thinking blocks, joined (a quick test for our prefix)."""
    return " ".join(
        str(b.get("signature"))
        for m in messages if isinstance(m, dict) and m.get("role") == "assistant" and isinstance(m.get("content"), list)
        for b in m["content"] if isinstance(b, dict) and b.get("type") == "thinking"
    )  # fmt: skip


def _gateway_signed(block: Any) -> bool:
    return (isinstance(block, dict) and block.get("type") == "thinking"
            and str(block.get("signature") or "").startswith(SIGNATURE_PREFIX))  # fmt: skip
