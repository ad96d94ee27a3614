"""CodeWhisperer (Kiro) wire helpers: the modelId table, exceptions, frames as JSON, usage."""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from typing import Any

from .._json import loads
from ..errors import LLMProxyError, ProviderError, ProviderHTTPError
from ..eventstream import Message

#: Context window Kiro's ``contextUsagePercentage`` is a share of, by modelId.
CONTEXT_WINDOW = 200_000
_MILLION_CONTEXT = ("claude-sonnet-4.6", "claude-opus-4.6")

#: Requested name (pattern, after prefixes/suffixes are stripped) -> Kiro modelId, first match wins.
MODEL_IDS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"sonnet.*4[-.]6"), "claude-sonnet-4.6"),
    (re.compile(r"sonnet.*4[-.]5"), "claude-sonnet-4.5"),
    (re.compile(r"3[-.]7.*sonnet"), "claude-3-7-sonnet-20250219"),
    (re.compile(r"sonnet.*4"), "claude-sonnet-4"),
    (re.compile(r"opus.*4[-.]6"), "claude-opus-4.6"),
    (re.compile(r"opus.*4[-.]5"), "claude-opus-4.5"),
    (re.compile(r"haiku"), "claude-haiku-4.5"),
]
_PREFIXES = ("kiro-", "amazonq-")
_SUFFIXES = ("-agentic", "-thinking")

#: ``:exception-type`` -> the HTTP status it stands for.
EXCEPTION_STATUS = {
    "ThrottlingException": 429,
    "ServiceQuotaExceededException": 429,
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ConflictException": 409,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}


def model_id(name: str) -> str:
    """A requested model name -> Kiro's modelId (dots, not dashes); unknown names pass through."""
    base = name.strip().lower()
    for prefix in _PREFIXES:
        base = base.removeprefix(prefix)
    for suffix in _SUFFIXES:
        base = base.removesuffix(suffix)
    if base == "auto":
        return "auto"
    for pattern, target in MODEL_IDS:
        if pattern.search(base):
            return target
    return base


#: Kiro refuses tool names longer than this; longer ones are shortened and mapped back.
MAX_TOOL_NAME = 63
#: Shortened name -> the client's name, for the replies of this process (bounded; the
#: shortened name carries a hash of the long one, so one entry serves every request).
_LONG_NAMES: OrderedDict[str, str] = OrderedDict()
_LONG_NAMES_CAP = 4096


def tool_name(name: str) -> str:
    """The name Kiro is sent: the client's, or for a long one its head plus a hash of it."""
    if len(name) <= MAX_TOOL_NAME:
        return name
    short = f"{name[: MAX_TOOL_NAME - 9]}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    _LONG_NAMES[short] = name
    _LONG_NAMES.move_to_end(short)
    while len(_LONG_NAMES) > _LONG_NAMES_CAP:
        _LONG_NAMES.popitem(last=False)
    return short


def client_tool_name(name: str) -> str:
    """A tool name from Kiro's reply -> the name the client declared."""
    return _LONG_NAMES.get(name, name)


def context_window(model: str) -> int:
    return 1_000_000 if model_id(model) in _MILLION_CONTEXT else CONTEXT_WINDOW


def frame_json(msg: Message) -> dict[str, Any]:
    """A decoded frame as JSON (string headers and the parsed payload): a reply body's entries."""
    headers = {k: v for k, v in msg.headers.items() if isinstance(v, str)}
    try:
        payload: Any = loads(msg.payload) if msg.payload.strip() else {}
    except ValueError:
        payload = msg.payload.decode("utf-8", "replace")
    return {"headers": headers, "payload": payload}


def exception(kind: str, payload: Any, headers: dict[str, str]) -> ProviderError:
    """A mid-stream ``exception`` or ``error`` frame -> the error to raise."""
    if kind == "error":
        code = headers.get(":error-code") or "error"
        message = headers.get(":error-message") or _message(payload) or "upstream error"
        return ProviderError(f"{code}: {message}", code="upstream_stream_error")
    name = headers.get(":exception-type") or "Exception"
    message = _message(payload) or name
    status = EXCEPTION_STATUS.get(name)
    if status is None:
        return ProviderError(f"{name}: {message}", code="upstream_stream_error")
    return ProviderHTTPError(f"{name}: {message}", upstream_status=status, code="upstream_stream_error")


def _message(payload: Any) -> str:
    if isinstance(payload, dict):
        for key in ("message", "Message", "errorMessage"):
            if isinstance(payload.get(key), str):
                return str(payload[key])
    return payload if isinstance(payload, str) else ""


def error_body(err: LLMProxyError) -> tuple[int, dict[str, Any]]:
    """An error as CodeWhisperer answers before the stream: ``{"message", "reason"}``."""
    reasons = {400: "INVALID_REQUEST", 402: "MONTHLY_REQUEST_COUNT", 429: "THROTTLING"}
    body: dict[str, Any] = {"message": err.message}
    if err.status in reasons:
        body["reason"] = reasons[err.status]
    return err.status, body


def models_body(models: list[str]) -> dict[str, Any]:
    """``ListAvailableModels`` as CodeWhisperer answers it."""
    return {"models": [{"modelId": m, "modelName": m, "tokenLimits": {"maxInputTokens": context_window(m)}}
                       for m in models]}  # fmt: skip
