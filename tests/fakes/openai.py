"""Builders for OpenAI Chat wire replies, as OpenAI sends them."""

from __future__ import annotations

import json
from typing import Any

from .server import Reply, Stream


def usage(prompt: int = 10, completion: int = 5, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def completion(
    text: str | None = "Hello!",
    *,
    model: str = "gpt-up",
    tool_calls: list[dict[str, Any]] | None = None,
    finish: str | None = None,
    prompt: int = 10,
    completion_tokens: int = 5,
    cached: int = 0,
) -> Reply:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": c.get("id", f"call_{i}"),
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))},
            }
            for i, c in enumerate(tool_calls)
        ]
    return Reply({
        "id": "chatcmpl-up1", "object": "chat.completion", "created": 1730000000, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish or ("tool_calls" if tool_calls else "stop")}],
        "usage": usage(prompt, completion_tokens, cached),
    })  # fmt: skip


def _chunk(delta: dict[str, Any], finish: str | None = None, model: str = "gpt-up") -> bytes:
    body = {"id": "chatcmpl-up1", "object": "chat.completion.chunk", "created": 1730000000, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    return f"data: {json.dumps(body)}\n\n".encode()


def stream(
    texts: list[str],
    *,
    model: str = "gpt-up",
    tool_calls: list[dict[str, Any]] | None = None,
    prompt: int = 10,
    completion_tokens: int = 5,
    with_usage: bool = True,
    finish: str | None = None,
    **kw: Any,
) -> Stream:
    frames = [_chunk({"role": "assistant", "content": ""}, model=model)]
    frames += [_chunk({"content": t}, model=model) for t in texts]
    for i, c in enumerate(tool_calls or []):
        args = json.dumps(c.get("arguments", {}))
        frames.append(
            _chunk(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": c.get("id", f"call_{i}"),
                            "type": "function",
                            "function": {"name": c["name"], "arguments": ""},
                        }
                    ]
                },
                model=model,
            )
        )
        half = len(args) // 2
        for piece in (args[:half], args[half:]):
            frames.append(_chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}, model=model))
    frames.append(_chunk({}, finish or ("tool_calls" if tool_calls else "stop"), model=model))
    if with_usage:
        body = {
            "id": "chatcmpl-up1",
            "object": "chat.completion.chunk",
            "created": 1730000000,
            "model": model,
            "choices": [],
            "usage": usage(prompt, completion_tokens),
        }
        frames.append(f"data: {json.dumps(body)}\n\n".encode())
    frames.append(b"data: [DONE]\n\n")
    return Stream(frames, **kw)


def error(status: int, message: str = "upstream says no", headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        {"error": {"message": message, "type": "server_error", "code": None}}, status=status, headers=headers or {}
    )
