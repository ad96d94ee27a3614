"""OpenAI's wire vocabulary shared by the OpenAI-family codecs (Chat, Completions, Responses):
usage blocks, finish reasons, error bodies and image URLs."""

from __future__ import annotations

import hashlib
from typing import Any

from ..errors import LLMProxyError
from ..model import FinishReason, ImagePart, Usage

FINISH_IN: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def models_body(models: list[str]) -> dict[str, Any]:
    """``GET /v1/models`` as OpenAI lists models (every OpenAI-family dialect)."""
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "llmproxy"} for m in models],
    }


def image_to_url(img: ImagePart) -> str:
    if img.data is not None:
        return f"data:{img.media_type or 'image/png'};base64,{img.data}"
    return img.url or ""


def short_id(call_id: str) -> str:
    """OpenAI rejects tool-call ids over 40 characters; ids from other dialects (Gemini's
    carry a thought signature) are shortened deterministically, calls and results alike."""
    if len(call_id) <= 40:
        return call_id
    return "call_" + hashlib.sha256(call_id.encode()).hexdigest()[:32]


def decode_usage(u: Any) -> Usage:
    if not isinstance(u, dict):
        return Usage()
    pd = u.get("prompt_tokens_details") or {}
    cd = u.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(u.get("prompt_tokens") or 0),
        output_tokens=int(u.get("completion_tokens") or 0),
        cached_tokens=int(pd.get("cached_tokens") or 0),
        cache_write_tokens=int(pd.get("cache_write_tokens") or 0),
        reasoning_tokens=int(cd.get("reasoning_tokens") or 0),
    )


def encode_usage(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def finish_out(reason: FinishReason) -> str:
    return "stop" if reason == "error" else reason


_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "upstream_error",
    503: "server_error",
    504: "timeout",
}


def error_body(err: LLMProxyError) -> tuple[int, dict[str, Any]]:
    return err.status, {
        "error": {
            "message": err.message,
            "type": _TYPES.get(err.status, "server_error"),
            "param": err.param,
            "code": err.code,
        }
    }
