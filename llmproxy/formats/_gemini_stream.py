"""Gemini streams: ``alt=sse`` frames or one JSON array, to and from canonical events."""

from __future__ import annotations

import codecs
import time
from typing import Any

from .._json import dumps, loads
from ..errors import LLMProxyError, ProviderProtocolError
from ..model import (
    FinishReason,
    Part,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ToolCallDelta,
    ToolCallPart,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from ..sse import SSEParser, frame
from ._common import upstream_shape
from ._gemini_wire import (
    FINISH_OUT,
    NAME,
    candidate,
    decode_usage,
    encode_usage,
    error_body,
    finish_in,
    gemini_meta,
    norm,
    reply_call,
    response_part,
    signature_from_id,
    upstream_error,
    valid_signature,
)


class _JSONSequence:
    """Splits a streamed JSON array (``[{...},{...}]``) into its top-level object texts."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._cur: list[str] = []
        self._depth = 0
        self._in_str = False
        self._escaped = False

    @property
    def pending(self) -> bool:
        return self._depth > 0

    def feed(self, chunk: bytes) -> list[str]:
        out: list[str] = []
        for ch in self._utf8.decode(chunk):
            if self._depth == 0:
                if ch == "{":
                    self._depth, self._cur = 1, ["{"]
                elif ch not in "[],\r\n\t ":
                    raise ProviderProtocolError("upstream sent a JSON stream that is not an array of objects")
                continue
            self._cur.append(ch)
            if self._in_str:
                if self._escaped:
                    self._escaped = False
                elif ch == "\\":
                    self._escaped = True
                elif ch == '"':
                    self._in_str = False
            elif ch == '"':
                self._in_str = True
            elif ch in "{[":
                self._depth += 1
            elif ch in "}]":
                self._depth -= 1
                if self._depth == 0:
                    out.append("".join(self._cur))
                    self._cur = []
        return out


class StreamDecoder:
    """Gemini stream bytes (``alt=sse`` frames or a JSON array) -> canonical events.

    A ``functionCall`` arrives whole, so it becomes a ToolCallStart plus one
    ToolCallDelta with the full arguments. The stream has no terminator: ``close()`` at
    EOF emits StreamEnd with the last ``finishReason`` seen.
    """

    def __init__(self) -> None:
        self._sse = SSEParser()
        self._json = _JSONSequence()
        self._mode: str | None = None
        self._head = b""
        self._started = False
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None
        self._calls = 0

    @upstream_shape
    def feed(self, chunk: bytes) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if self._mode is None:
            self._head += chunk
            start = self._head.lstrip()
            if not start:
                return out
            self._mode = "json" if start[:1] in (b"[", b"{") else "sse"
            chunk, self._head = self._head, b""
        if self._mode == "json":
            for text in self._json.feed(chunk):
                self._data(text, out)
        else:
            for ev in self._sse.feed(chunk):
                self._data(ev.data, out)
        return out

    @upstream_shape
    def close(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if self._mode == "sse":
            for ev in self._sse.close():
                self._data(ev.data, out)
        if self._finish is None or self._json.pending:
            raise ProviderProtocolError("upstream stream ended before it finished")
        finish: FinishReason = "tool_calls" if self._finish == "stop" and self._calls else self._finish
        out.append(StreamEnd(finish, self._usage))
        return out

    def _data(self, data: str, out: list[StreamEvent]) -> None:
        if not data.strip():
            return
        try:
            chunk = loads(data)
        except ValueError:
            raise ProviderProtocolError("upstream sent a stream chunk that is not JSON") from None
        for c in chunk if isinstance(chunk, list) else [chunk]:
            self._chunk(norm(c), out)

    def _chunk(self, c: dict[str, Any], out: list[StreamEvent]) -> None:
        if c.get("error"):
            raise upstream_error(c["error"])
        if not self._started:
            self._started = True
            out.append(StreamStart(str(c.get("responseId") or ""), str(c.get("modelVersion") or "")))
        cands = c.get("candidates")
        if isinstance(cands, list) and cands:
            cand = norm(cands[0])
            for raw in norm(cand.get("content")).get("parts") or []:
                self._part(response_part(raw), out)
            if cand.get("finishReason"):
                self._finish = finish_in(cand["finishReason"], False)
        elif norm(c.get("promptFeedback")).get("blockReason"):
            self._finish = "content_filter"
        if c.get("usageMetadata"):
            self._usage = decode_usage(c["usageMetadata"])
            out.append(UsageUpdate(self._usage))

    def _part(self, part: Part | None, out: list[StreamEvent]) -> None:
        if isinstance(part, TextPart) and part.text:
            out.append(TextDelta(part.text))
        elif isinstance(part, ThinkingPart) and (part.text or part.signature):
            out.append(ThinkingDelta(part.text, part.signature, NAME))
        elif isinstance(part, ToolCallPart):
            out.append(ToolCallStart(self._calls, part.id, part.name, part.provider_metadata))
            out.append(ToolCallDelta(self._calls, part.arguments))
            self._calls += 1


class StreamEncoder:
    """Canonical events -> Gemini chunks, as ``data:`` frames or one JSON array (``sse=False``).

    Each chunk is held until the next one exists, so the last chunk carries real parts
    together with ``finishReason`` and ``usageMetadata`` (google-genai's chat history
    drops a turn whose chunks have no parts). Tool calls are buffered until complete,
    because Gemini sends every ``functionCall`` whole.
    """

    def __init__(self, *, model: str, include_usage: bool = True, request_id: str = "", sse: bool = True) -> None:
        self.model = model
        self.include_usage = include_usage
        self.sse = sse
        self._id = request_id or f"llmproxy-{int(time.time())}"
        self._held: list[dict[str, Any]] | None = None
        self._calls: dict[int, list[Any]] = {}
        self._usage: Usage | None = None
        self._opened = False
        self._ended = False

    def _frame(self, body: dict[str, Any]) -> bytes:
        if self.sse:
            return frame(dumps(body))
        prefix = b"," if self._opened else b"["
        self._opened = True
        return prefix + dumps(body)

    def _chunk(self, parts: list[dict[str, Any]], finish: str | None = None, usage: Usage | None = None) -> bytes:
        body: dict[str, Any] = {"candidates": [candidate(parts, finish)]}
        if usage is not None:
            body["usageMetadata"] = encode_usage(usage)
        body["modelVersion"] = self.model
        body["responseId"] = self._id
        return self._frame(body)

    def _release(self) -> bytes:
        held, self._held = self._held, None
        return self._chunk(held) if held else b""

    def _flush_calls(self) -> list[dict[str, Any]]:
        parts = [reply_call(c[0], c[1], c[3], c[2]) for _, c in sorted(self._calls.items())]
        self._calls = {}
        return parts

    def _emit(self, parts: list[dict[str, Any]]) -> bytes:
        out = b""
        calls = self._flush_calls()
        for pending in (calls, parts):
            if pending:
                out += self._release()
                self._held = pending
        return out

    def encode(self, event: StreamEvent) -> bytes:
        if self._ended:
            return b""
        if isinstance(event, TextDelta):
            return self._emit([{"text": event.text}]) if event.text else b""
        if isinstance(event, ThinkingDelta):
            sig = valid_signature(event.signature) if event.source == NAME else None
            if event.redacted or not (event.text or sig):
                return b""
            return self._emit([{"text": event.text, "thought": True, **({"thoughtSignature": sig} if sig else {})}])
        if isinstance(event, ToolCallStart):
            sig = gemini_meta(event.provider_metadata).get("thought_signature") or signature_from_id(event.id)
            self._calls[event.index] = [event.id, event.name, sig, ""]
        elif isinstance(event, ToolCallDelta) and event.index in self._calls:
            self._calls[event.index][3] += event.arguments
        elif isinstance(event, UsageUpdate):
            self._usage = event.usage
        elif isinstance(event, StreamEnd):
            self._ended = True
            parts = (self._held or []) + self._flush_calls()
            self._held = None
            usage = (event.usage or self._usage or Usage()) if self.include_usage else None
            out = self._chunk(parts, FINISH_OUT[event.finish_reason], usage)
            return out if self.sse else out + b"]"
        return b""

    def resume(self, next_sequence: int) -> None:
        """Go on from a relayed JSON-array stream: ``next_sequence`` of its elements already
        went out, so the next one this encoder writes (an error) follows a comma; with none
        sent it opens the array itself. ``alt=sse`` frames need no such thing."""
        self._opened = next_sequence > 0

    def error(self, err: LLMProxyError) -> bytes:
        """A mid-stream failure: what was held, then ``{"error": ...}``; EOF ends the stream."""
        if self._ended:
            return b""
        out = self._release()
        self._ended = True
        return out + self._frame(error_body(err)[1]) + (b"" if self.sse else b"]")
