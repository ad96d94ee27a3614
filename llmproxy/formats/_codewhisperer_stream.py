"""CodeWhisperer streams: AWS event-stream frames <-> canonical events.

The reply of ``generateAssistantResponse`` is always a binary event stream (even for a
non-streaming call, which is this stream collected). There is no stop event: the stream
ends at EOF, with ``tool_calls`` if a tool use completed, else ``stop``. Kiro sends no
token counts: input tokens are ``contextUsagePercentage`` of the model's context window,
output tokens the local tokenizer's count of what was said.
"""

from __future__ import annotations

import uuid
from typing import Any

from .._json import dumps, dumps_str
from ..errors import LLMProxyError, ProviderProtocolError
from ..eventstream import FrameDecoder, encode
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
from ..tokens import count_text
from ._codewhisperer_wire import CONTEXT_WINDOW, client_tool_name, context_window, exception, frame_json

NAME = "codewhisperer"


class StreamDecoder:
    """Event-stream bytes (cut anywhere) -> canonical events; a bad frame raises at once."""

    def __init__(self, *, model: str = "") -> None:
        self._frames = FrameDecoder()
        self._model = model
        self._started = False
        self._said: list[str] = []
        self._calls: dict[str, int] = {}
        self._open: dict[str, bool] = {}
        self._done = 0
        self._percent: float | None = None
        self._finish: FinishReason | None = None

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for msg in self._frames.feed(chunk):
            self.frame(frame_json(msg), out)
        return out

    def close(self) -> list[StreamEvent]:
        self._frames.close()  # a frame cut short raises here
        if not self._started:
            raise ProviderProtocolError("upstream stream ended before any event")
        finish: FinishReason = self._finish or ("tool_calls" if self._done else "stop")
        return [StreamEnd(finish, self.usage())]

    def usage(self) -> Usage:
        window = context_window(self._model) if self._model else CONTEXT_WINDOW
        prompt = round(self._percent / 100 * window) if self._percent is not None else 0
        # Output is always the local tokenizer's count; without a contextUsageEvent the
        # prompt is 0 here, and the gateway fills in its own count (``Books.estimated``).
        return Usage(input_tokens=prompt, output_tokens=count_text("".join(self._said)), estimated=True)

    def frame(self, frame: dict[str, Any], out: list[StreamEvent]) -> None:
        """One frame as ``{"headers", "payload"}`` (``frame_json``) -> events appended to ``out``."""
        raw = frame.get("headers")
        headers: dict[str, str] = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        payload = frame.get("payload")
        kind = str(headers.get(":message-type") or "event")
        if kind == "exception" and headers.get(":exception-type") == "ContentLengthExceededException":
            self._finish = "length"  # the reply hit the output limit: what came so far stands
            return
        if kind in ("exception", "error"):
            raise exception(kind, payload, headers)
        event = str(headers.get(":event-type") or "")
        if not isinstance(payload, dict):
            raise ProviderProtocolError(f"upstream sent a {event or 'stream'} frame whose payload is not a JSON object")
        if len(payload) == 1 and isinstance(payload.get(event), dict):
            payload = payload[event]  # the wrapped form some senders use
        self._start(payload, out)
        if event == "assistantResponseEvent":
            text = payload.get("content")
            if isinstance(text, str) and text:
                self._said.append(text)
                out.append(TextDelta(text))
        elif event == "reasoningContentEvent":
            text, sig = payload.get("text"), payload.get("signature")
            if (isinstance(text, str) and text) or (isinstance(sig, str) and sig):
                self._said.append(text if isinstance(text, str) else "")
                out.append(ThinkingDelta(text if isinstance(text, str) else "",
                                         sig if isinstance(sig, str) and sig else None, NAME))  # fmt: skip
        elif event == "toolUseEvent":
            self._tool(payload, out)
        elif event == "contextUsageEvent":
            pct = payload.get("contextUsagePercentage")
            if isinstance(pct, (int, float)) and not isinstance(pct, bool):
                self._percent = float(pct)
                if pct >= 100:
                    self._finish = "length"
                out.append(UsageUpdate(self.usage()))
        elif event in ("messageMetadataEvent", "metadataEvent") and payload.get("stopReason") == "max_tokens":
            self._finish = "length"

    def _start(self, payload: dict[str, Any], out: list[StreamEvent]) -> None:
        if isinstance(payload.get("modelId"), str) and not self._model:
            self._model = payload["modelId"]
        if self._started:
            return
        self._started = True
        ident = payload.get("messageId") or payload.get("conversationId") or uuid.uuid4().hex
        out.append(StreamStart(f"kiro-{ident}", self._model))

    def _tool(self, p: dict[str, Any], out: list[StreamEvent]) -> None:
        call_id, name = p.get("toolUseId"), p.get("name")
        if not isinstance(call_id, str) or not call_id:
            raise ProviderProtocolError("upstream sent a toolUseEvent without a toolUseId")
        if call_id not in self._calls:
            if not isinstance(name, str) or not name:
                raise ProviderProtocolError("upstream sent a toolUseEvent without a name")
            self._calls[call_id] = index = len(self._calls)
            self._open[call_id] = False
            out.append(ToolCallStart(index, call_id, client_tool_name(name)))
        index = self._calls[call_id]
        piece = p.get("input")
        if isinstance(piece, dict):
            piece = dumps_str(piece)
        if isinstance(piece, str) and piece:
            self._open[call_id] = True
            self._said.append(piece)
            out.append(ToolCallDelta(index, piece))
        if p.get("stop") is True:
            if not self._open[call_id]:
                out.append(ToolCallDelta(index, "{}"))
            self._done += 1


class StreamEncoder:
    """Canonical events -> event-stream frames (what a CodeWhisperer server would send)."""

    def __init__(self, model: str = "", include_usage: bool = True, request_id: str | None = None) -> None:
        self.model = model
        self._ids: dict[int, tuple[str, str]] = {}

    def encode(self, event: StreamEvent) -> bytes:
        if isinstance(event, TextDelta) and event.text:
            return _event("assistantResponseEvent", {"content": event.text})
        if isinstance(event, ThinkingDelta) and event.text:
            return _event("reasoningContentEvent", {"text": event.text})
        if isinstance(event, ToolCallStart):
            self._ids[event.index] = (event.id, event.name)
            return b""
        if isinstance(event, ToolCallDelta) and event.index in self._ids:
            call_id, name = self._ids[event.index]
            return _event("toolUseEvent", {"toolUseId": call_id, "name": name, "input": event.arguments})
        if isinstance(event, StreamEnd):
            stops = b"".join(_event("toolUseEvent", {"toolUseId": i, "name": n, "stop": True})
                             for i, n in self._ids.values())  # fmt: skip
            self._ids.clear()
            if event.usage is not None and event.usage.input_tokens:
                pct = 100 * event.usage.input_tokens / context_window(self.model or "")
                return stops + _event("contextUsageEvent", {"contextUsagePercentage": pct})
            return stops
        return b""

    def error(self, err: LLMProxyError) -> bytes:
        kind = {429: "ThrottlingException", 400: "ValidationException"}.get(err.status, "InternalServerException")
        headers = {":message-type": "exception", ":exception-type": kind, ":content-type": "application/json"}
        return encode(headers, dumps({"message": err.message}))


def _event(name: str, payload: dict[str, Any]) -> bytes:
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return encode(headers, dumps(payload))
