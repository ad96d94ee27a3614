"""Builders for Gemini wire replies, as generativelanguage.googleapis.com sends them.

Streams come as ``alt=sse`` frames (LF or CRLF, no terminator: EOF ends the stream) or
as the JSON-array form a request without ``alt=sse`` gets.
"""

from __future__ import annotations

import json
from typing import Any

from .server import Reply, Stream


def usage(
    prompt: int = 10, candidates: int = 5, thoughts: int = 0, cached: int = 0, tool_use: int = 0
) -> dict[str, Any]:
    u: dict[str, Any] = {"promptTokenCount": prompt, "candidatesTokenCount": candidates,
                         "totalTokenCount": prompt + candidates + thoughts + tool_use}  # fmt: skip
    if thoughts:
        u["thoughtsTokenCount"] = thoughts
    if cached:
        u["cachedContentTokenCount"] = cached
    if tool_use:
        u["toolUsePromptTokenCount"] = tool_use
    return u


def call_part(name: str, args: dict[str, Any] | None = None, *, signature: str | None = None,
              id: str | None = None) -> dict[str, Any]:  # fmt: skip
    fc: dict[str, Any] = {"name": name, "args": args or {}}
    if id:
        fc["id"] = id
    part: dict[str, Any] = {"functionCall": fc}
    if signature:
        part["thoughtSignature"] = signature
    return part


def body(text: str | None = "Hello!", *, model: str = "gemini-up", calls: list[dict[str, Any]] | None = None,
         thoughts: list[str] | None = None, finish: str | None = "STOP", usage_: dict[str, Any] | None = None,
         response_id: str = "resp-up1") -> dict[str, Any]:  # fmt: skip
    """A whole generateContent reply; ``calls`` are parts made by :func:`call_part`."""
    parts: list[dict[str, Any]] = [{"text": t, "thought": True} for t in thoughts or []]
    if text is not None:
        parts.append({"text": text})
    parts += calls or []
    cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return {"candidates": [cand], "usageMetadata": usage_ or usage(), "modelVersion": model, "responseId": response_id}


def blocked(reason: str = "SAFETY", prompt: int = 8) -> dict[str, Any]:
    return {"promptFeedback": {"blockReason": reason},
            "usageMetadata": {"promptTokenCount": prompt, "totalTokenCount": prompt}, "modelVersion": "gemini-up"}  # fmt: skip


def response(text: str | None = "Hello!", **kw: Any) -> Reply:
    return Reply(body(text, **kw))


def chunks(texts: list[str], *, model: str = "gemini-up", calls: list[dict[str, Any]] | None = None,
           thoughts: list[str] | None = None, finish: str = "STOP", prompt: int = 10, candidates: int = 5,
           thoughts_tokens: int = 0) -> list[dict[str, Any]]:  # fmt: skip
    """Stream chunks: thoughts, then text pieces; calls and finishReason ride on the last one."""
    out: list[dict[str, Any]] = []
    pieces: list[dict[str, Any]] = [{"text": t, "thought": True} for t in thoughts or []]
    pieces += [{"text": t} for t in texts]
    if not pieces:
        pieces = [{"text": ""}]
    for i, part in enumerate(pieces):
        last = i == len(pieces) - 1
        parts = [part, *(calls or [])] if last else [part]
        cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if last:
            cand["finishReason"] = finish
        so_far = candidates if last else min(candidates, i + 1)
        out.append({"candidates": [cand], "usageMetadata": usage(prompt, so_far, thoughts_tokens if last else 0),
                    "modelVersion": model, "responseId": "resp-up1"})  # fmt: skip
    return out


def sse_frames(items: list[dict[str, Any]], *, crlf: bool = False) -> list[bytes]:
    nl = "\r\n" if crlf else "\n"
    return [f"data: {json.dumps(c)}{nl}{nl}".encode() for c in items]


def array_frames(items: list[dict[str, Any]]) -> list[bytes]:
    """The JSON-array stream: ``[`` first, chunks joined by ``,``, ``]`` last."""
    frames = [("[" if i == 0 else ",\r\n") + json.dumps(c) for i, c in enumerate(items)]
    return [f.encode() for f in frames] + [b"]"]


def stream(texts: list[str], *, crlf: bool = False, form: str = "sse", **kw: Any) -> Stream:
    items = chunks(texts, **kw)
    if form == "json":
        return Stream(array_frames(items), headers={"content-type": "application/json"})
    return Stream(sse_frames(items, crlf=crlf))


def error_body(code: int, message: str = "upstream says no", status: str | None = None,
               retry_delay: str | None = None, reason: str | None = None) -> dict[str, Any]:  # fmt: skip
    statuses = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}  # fmt: skip
    err: dict[str, Any] = {"code": code, "message": message, "status": status or statuses.get(code, "UNKNOWN")}
    details: list[dict[str, Any]] = []
    if reason:
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                        "domain": "googleapis.com"})  # fmt: skip
    if retry_delay:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    if details:
        err["details"] = details
    return {"error": err}


def error(code: int, message: str = "upstream says no", *, headers: dict[str, str] | None = None, **kw: Any) -> Reply:
    return Reply(error_body(code, message, **kw), status=code, headers=headers or {})
