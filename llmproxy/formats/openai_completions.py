"""Legacy OpenAI Completions (``/v1/completions``) -> canonical and back.

The gateway serves this old endpoint with chat models: the prompt becomes one user
message and the reply's text comes back as ``choices[0].text``. Features that only a
raw completion model has (``echo``, ``suffix``, ``logprobs``, ``best_of``, several
prompts) are refused with a 400 that says so, rather than silently ignored.
"""

from __future__ import annotations

import time
from typing import Any

from .._json import dumps
from ..errors import InvalidRequest, LLMProxyError
from ..model import (
    FinishReason,
    Message,
    Request,
    Response,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    Usage,
    UsageUpdate,
)
from ..sse import frame
from ._common import field_type, require_str
from ._openai_wire import encode_usage, error_body

__all__ = ["NAME", "StreamEncoder", "decode_request", "encode_response", "error_body"]

NAME = "openai_completions"
_KNOWN = {
    "model", "prompt", "max_tokens", "temperature", "top_p", "stop", "stream", "stream_options", "seed", "user",
    "n", "echo", "suffix", "logprobs", "best_of",
}  # fmt: skip


def _flag(value: Any, name: str) -> bool:
    """A JSON boolean (``field_type`` refuses bools, being made for numbers)."""
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be a boolean", param=name)
    return value


def decode_request(body: dict[str, Any]) -> Request:
    model = require_str(body, "model")
    _refuse_unsupported(body)
    req = Request(model=model, messages=[Message("user", [TextPart(_prompt(body.get("prompt")))])])
    if body.get("max_tokens") is not None:
        req.max_tokens = field_type(body["max_tokens"], int, "max_tokens")
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            setattr(req, name, float(field_type(body[name], (int, float), name)))
    stop = body.get("stop")
    if stop is not None:
        req.stop = [stop] if isinstance(stop, str) else list(field_type(stop, list, "stop"))
    if body.get("stream") is not None:
        req.stream = _flag(body["stream"], "stream")
    opts = body.get("stream_options")
    req.include_usage = bool(isinstance(opts, dict) and opts.get("include_usage"))
    if body.get("seed") is not None:
        req.seed = field_type(body["seed"], int, "seed")
    if body.get("user") is not None:
        req.user = field_type(body["user"], str, "user")
    req.extra = {k: v for k, v in body.items() if k not in _KNOWN}
    return req


def _prompt(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        if len(prompt) > 1:
            raise InvalidRequest(
                "only one prompt per request is supported; send one request per prompt", param="prompt"
            )
        return str(prompt[0])
    if isinstance(prompt, list) and prompt:
        raise InvalidRequest("token-id prompts are not supported; send the prompt as a string", param="prompt")
    raise InvalidRequest("'prompt' is required and must be a string", param="prompt")


def _refuse_unsupported(body: dict[str, Any]) -> None:
    """Options a chat model cannot honour: a 400 beats a silently different answer."""
    if body.get("echo"):
        raise InvalidRequest("'echo' is not supported by this gateway", param="echo")
    if body.get("suffix"):
        raise InvalidRequest("'suffix' (insertion) is not supported by this gateway", param="suffix")
    if body.get("logprobs") is not None:
        raise InvalidRequest("'logprobs' is not supported by this gateway", param="logprobs")
    for name in ("n", "best_of"):
        if body.get(name) not in (None, 1):
            raise InvalidRequest(f"'{name}' must be 1: one completion per request is supported", param=name)


def _finish_out(reason: FinishReason) -> str:
    return reason if reason in ("length", "content_filter") else "stop"


def _completion_id(rid: str) -> str:
    return rid if rid.startswith("cmpl-") else f"cmpl-{rid or 'llmproxy'}"


def encode_response(resp: Response) -> dict[str, Any]:
    return {
        "id": _completion_id(resp.id),
        "object": "text_completion",
        "created": resp.created or int(time.time()),
        "model": resp.model,
        "choices": [
            {"text": resp.text(), "index": 0, "logprobs": None, "finish_reason": _finish_out(resp.finish_reason)}
        ],
        "usage": encode_usage(resp.usage),
    }


class StreamEncoder:
    """Canonical events -> ``text_completion`` chunks, an optional usage chunk, ``[DONE]``.

    Thinking and tool calls have no place in a completion and are not sent.
    """

    def __init__(self, *, model: str, include_usage: bool, request_id: str = "") -> None:
        self.model = model
        self.include_usage = include_usage
        self._id = _completion_id(request_id)
        self._created = int(time.time())
        self._ended = False
        self._usage: Usage | None = None

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        body: dict[str, Any] = {"id": self._id, "object": "text_completion", "created": self._created,
                                "model": self.model, "choices": choices}  # fmt: skip
        if self.include_usage:
            body["usage"] = usage
        data: bytes = frame(dumps(body))
        return data

    @staticmethod
    def _choice(text: str, finish: str | None = None) -> dict[str, Any]:
        return {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}

    def encode(self, event: StreamEvent) -> bytes:
        if self._ended:
            return b""
        if isinstance(event, StreamStart):
            if event.created:
                self._created = event.created
            self._usage = event.usage or self._usage
        elif isinstance(event, TextDelta) and event.text:
            return self._chunk([self._choice(event.text)])
        elif isinstance(event, UsageUpdate):
            self._usage = event.usage
        elif isinstance(event, StreamEnd):
            self._ended = True
            out = self._chunk([self._choice("", _finish_out(event.finish_reason))])
            if self.include_usage:
                out += self._chunk([], encode_usage(event.usage or self._usage or Usage()))
            return out + b"data: [DONE]\n\n"
        return b""

    def error(self, err: LLMProxyError) -> bytes:
        """A mid-stream failure: an error chunk, then the terminator."""
        self._ended = True
        data: bytes = frame(dumps(error_body(err)[1]))
        return data + b"data: [DONE]\n\n"
