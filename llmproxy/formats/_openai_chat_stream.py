"""OpenAI Chat streams: chunk SSE <-> canonical stream events."""

from __future__ import annotations

import time
from typing import Any

from .._json import dumps, dumps_str, loads
from ..errors import LLMProxyError, ProviderError, ProviderProtocolError
from ..model import (
    FinishReason,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from ..sse import SSEParser, frame
from ._common import upstream_shape
from ._openai_wire import FINISH_IN, decode_usage, encode_usage, error_body, finish_out


class StreamDecoder:
    """OpenAI chunk stream (bytes) -> canonical events.

    Tool-call fragments are merged by ``index``; a stream where every call reuses
    index 0 but with a new ``id`` is renumbered (litellm#33678). ``finish_reason`` is
    held until the usage chunk or ``[DONE]`` so StreamEnd carries the final usage.
    """

    def __init__(self) -> None:
        self._sse = SSEParser()
        self._started = False
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None
        self._index_map: dict[int, int] = {}
        self._ids: dict[int, str] = {}
        self._next = 0
        self._saw_tools = False
        self._done = False

    @upstream_shape
    def feed(self, chunk: bytes) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for ev in self._sse.feed(chunk):
            self._event(ev.data, out)
        return out

    @upstream_shape
    def close(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for ev in self._sse.close():
            self._event(ev.data, out)
        if not self._done:
            if self._finish is None:
                raise ProviderProtocolError("upstream stream ended before it finished")
            self._end(out)
        return out

    def _end(self, out: list[StreamEvent]) -> None:
        if self._done:
            return
        self._done = True
        finish = self._finish or "stop"
        if finish == "stop" and self._saw_tools:
            finish = "tool_calls"
        out.append(StreamEnd(finish, self._usage))

    def _event(self, data: str, out: list[StreamEvent]) -> None:
        if data == "[DONE]":
            self._end(out)
            return
        if not data or self._done:
            return
        try:
            chunk = loads(data)
        except ValueError:
            raise ProviderProtocolError("upstream sent a stream chunk that is not JSON") from None
        if not isinstance(chunk, dict):
            return
        if "error" in chunk and not chunk.get("choices"):
            err = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
            raise ProviderError(str(err.get("message") or "upstream error"), code="upstream_stream_error")
        if not self._started:
            self._started = True
            out.append(
                StreamStart(str(chunk.get("id") or ""), str(chunk.get("model") or ""), int(chunk.get("created") or 0))
            )
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out.append(ThinkingDelta(reasoning))
            content = delta.get("content")
            if isinstance(content, str) and content:
                out.append(TextDelta(content))
            for call in delta.get("tool_calls") or []:
                self._tool_fragment(call, out)
            if choice.get("finish_reason"):
                self._finish = FINISH_IN.get(choice["finish_reason"], "stop")
        if chunk.get("usage"):
            self._usage = decode_usage(chunk["usage"])
            out.append(UsageUpdate(self._usage))
            if self._finish is not None:
                self._end(out)

    def _tool_fragment(self, call: dict[str, Any], out: list[StreamEvent]) -> None:
        raw = int(call.get("index", 0))
        fn = call.get("function") or {}
        cid = call.get("id")
        if raw not in self._index_map or (cid and self._ids.get(raw) not in (None, cid)):
            self._index_map[raw] = self._next
            self._ids[raw] = cid or f"call_{self._next}"
            self._next += 1
            self._saw_tools = True
            out.append(ToolCallStart(self._index_map[raw], self._ids[raw], str(fn.get("name") or "")))
        args = fn.get("arguments")
        if args:
            out.append(ToolCallDelta(self._index_map[raw], args if isinstance(args, str) else dumps_str(args)))


class StreamEncoder:
    """Canonical events -> OpenAI chunk stream bytes, for a client of this dialect."""

    def __init__(self, *, model: str, include_usage: bool, request_id: str = "") -> None:
        self.model = model
        self.include_usage = include_usage
        self._id = f"chatcmpl-{request_id}" if request_id else "chatcmpl-llmproxy"
        self._created = int(time.time())
        self._head = b""
        self._role_sent = False
        self._ended = False
        self._tools = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        body: dict[str, Any] = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if self.include_usage:
            body["usage"] = None
        return frame(dumps(body))

    def _role(self) -> bytes:
        if self._role_sent:
            return b""
        self._role_sent = True
        return self._chunk({"role": "assistant", "content": ""})

    def encode(self, event: StreamEvent) -> bytes:
        if self._ended:
            return b""
        if isinstance(event, StreamStart):
            if event.created:
                self._created = event.created
            return self._role()
        if isinstance(event, TextDelta):
            return self._role() + self._chunk({"content": event.text}) if event.text else b""
        if isinstance(event, ThinkingDelta):
            if not event.text:
                return b""
            return self._role() + self._chunk({"reasoning_content": event.text})
        if isinstance(event, ToolCallStart):
            self._tools = True
            return self._role() + self._chunk(
                {"tool_calls": [{"index": event.index, "id": event.id, "type": "function",
                                 "function": {"name": event.name, "arguments": ""}}]}
            )  # fmt: skip
        if isinstance(event, ToolCallDelta):
            return self._chunk({"tool_calls": [{"index": event.index, "function": {"arguments": event.arguments}}]})
        if isinstance(event, StreamEnd):
            self._ended = True
            finish = event.finish_reason
            if finish == "stop" and self._tools:
                finish = "tool_calls"
            out = self._role() + self._chunk({}, finish_out(finish))
            if self.include_usage:
                out += frame(
                    dumps(
                        {
                            "id": self._id,
                            "object": "chat.completion.chunk",
                            "created": self._created,
                            "model": self.model,
                            "choices": [],
                            "usage": encode_usage(event.usage or Usage()),
                        }
                    )
                )
            return out + b"data: [DONE]\n\n"
        return b""

    def error(self, err: LLMProxyError) -> bytes:
        """A mid-stream failure: an error chunk, then the terminator."""
        self._ended = True
        return frame(dumps(error_body(err)[1])) + b"data: [DONE]\n\n"
