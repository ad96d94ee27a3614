"""Anthropic SSE streams <-> canonical stream events.

Decoding numbers tool calls by counting ``tool_use`` blocks from 0 and reads usage from
``message_start`` plus the cumulative ``message_delta``. Encoding keeps Anthropic's block
discipline for events from any upstream: one block open at a time, every thinking block
signed before it stops, and no tool-call argument lost when an upstream interleaves
parallel calls (calls that start while another streams wait, then go out whole).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._json import dumps, dumps_str, loads
from ..errors import LLMProxyError, ProviderProtocolError
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
from ..sse import SSEEvent, SSEParser, frame
from ._anthropic_wire import (
    NAME,
    decode_usage,
    encode_usage,
    error_body,
    finish_in,
    gateway_signature,
    stop_reason_out,
    stream_error,
)
from ._common import upstream_shape


class StreamDecoder:
    """Anthropic SSE bytes -> canonical events; ``event: error`` raises, ``ping`` is skipped."""

    def __init__(self) -> None:
        self._sse = SSEParser()
        self._started = False
        self._done = False
        self._counts: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # block index -> tool-call index
        self._prefilled: dict[int, str] = {}  # tool input sent whole in content_block_start
        self._finish: FinishReason = "stop"
        self._stop_sequence: str | None = None

    @upstream_shape
    def feed(self, chunk: bytes) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for ev in self._sse.feed(chunk):
            self._event(ev, out)
        return out

    @upstream_shape
    def close(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for ev in self._sse.close():
            self._event(ev, out)
        if not self._done:
            raise ProviderProtocolError("upstream stream ended before message_stop")
        return out

    def _event(self, ev: SSEEvent, out: list[StreamEvent]) -> None:
        if self._done or not ev.data:
            return
        try:
            data = loads(ev.data)
        except ValueError:
            raise ProviderProtocolError("upstream sent a stream event that is not JSON") from None
        if not isinstance(data, dict):
            return
        kind = data.get("type") or ev.event
        if kind == "ping":
            return
        if kind == "error":
            raise stream_error(data)
        if kind == "message_start":
            message = data.get("message")
            self._start(message if isinstance(message, dict) else {}, out)
            return
        self._start({}, out)
        if kind == "content_block_start":
            self._block_start(data, out)
        elif kind == "content_block_delta":
            self._block_delta(data, out)
        elif kind == "content_block_stop":
            self._flush_prefilled(data.get("index"), out)
        elif kind == "message_delta":
            self._message_delta(data, out)
        elif kind == "message_stop":
            self._done = True
            out.append(StreamEnd(self._finish, decode_usage(self._counts), self._stop_sequence))

    def _start(self, message: dict[str, Any], out: list[StreamEvent]) -> None:
        if self._started:
            return
        self._started = True
        usage = message.get("usage")
        if isinstance(usage, dict):
            self._counts.update({k: v for k, v in usage.items() if v is not None})
        out.append(StreamStart(str(message.get("id") or ""), str(message.get("model") or ""),
                               usage=decode_usage(usage) if isinstance(usage, dict) else None))  # fmt: skip

    def _block_start(self, data: dict[str, Any], out: list[StreamEvent]) -> None:
        index = data.get("index")
        block = data.get("content_block")
        block = block if isinstance(block, dict) else {}
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            out.append(TextDelta(str(block["text"])))
        elif kind == "thinking":
            if block.get("thinking"):
                out.append(ThinkingDelta(str(block["thinking"]), source=NAME))
            if block.get("signature"):
                out.append(ThinkingDelta(signature=str(block["signature"]), source=NAME))
        elif kind == "redacted_thinking":
            out.append(ThinkingDelta(signature=str(block.get("data") or ""), source=NAME, redacted=True))
        elif kind == "tool_use" and isinstance(index, int):
            n = self._tools[index] = len(self._tools)
            out.append(ToolCallStart(n, str(block.get("id") or f"toolu_{n}"), str(block.get("name") or "")))
            args = block.get("input")
            if isinstance(args, dict) and args:
                self._prefilled[index] = dumps_str(args)

    def _block_delta(self, data: dict[str, Any], out: list[StreamEvent]) -> None:
        delta = data.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            out.append(TextDelta(str(delta["text"])))
        elif kind == "thinking_delta" and delta.get("thinking"):
            out.append(ThinkingDelta(str(delta["thinking"]), source=NAME))
        elif kind == "signature_delta" and delta.get("signature"):
            out.append(ThinkingDelta(signature=str(delta["signature"]), source=NAME))
        elif kind == "input_json_delta" and data.get("index") in self._tools:
            self._prefilled.pop(data["index"], None)  # deltas follow: they are the input
            if delta.get("partial_json"):
                out.append(ToolCallDelta(self._tools[data["index"]], str(delta["partial_json"])))

    def _flush_prefilled(self, index: Any, out: list[StreamEvent]) -> None:
        args = self._prefilled.pop(index, None) if isinstance(index, int) else None
        if args is not None:
            out.append(ToolCallDelta(self._tools[index], args))

    def _message_delta(self, data: dict[str, Any], out: list[StreamEvent]) -> None:
        delta = data.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        if delta.get("stop_reason"):
            self._finish = finish_in(delta["stop_reason"])
            if self._finish == "stop" and self._tools:
                self._finish = "tool_calls"
        if isinstance(delta.get("stop_sequence"), str):
            self._stop_sequence = delta["stop_sequence"]
        usage = data.get("usage")
        if isinstance(usage, dict):  # cumulative counts: later values replace earlier ones
            self._counts.update({k: v for k, v in usage.items() if v is not None})
            out.append(UsageUpdate(decode_usage(self._counts)))


@dataclass(slots=True)
class _Call:
    id: str
    name: str
    arguments: str = ""


class StreamEncoder:
    """Canonical events -> Anthropic SSE (``event:`` lines), for a client of this dialect.

    Blocks never interleave: a new kind of content stops the open block. Usage always goes
    out (Anthropic streams have no opt-out), so ``include_usage`` is accepted and unused.
    """

    def __init__(self, *, model: str, include_usage: bool = True, request_id: str = "") -> None:
        self.model = model
        self.include_usage = include_usage
        self._id = f"msg_{request_id}" if request_id else ""
        self._started = False
        self._ended = False
        self._index = 0  # of the open block, or of the next one
        self._open: str | None = None  # text | thinking | tool | None
        self._thinking: list[str] = []
        self._signature: str | None = None  # Anthropic's own, for the open thinking block
        self._live: int | None = None  # the tool call streaming in the open block
        self._waiting: dict[int, _Call] = {}
        self._usage: Usage | None = None
        self._tool_calls = False

    def encode(self, event: StreamEvent) -> bytes:
        if self._ended:
            return b""
        if isinstance(event, StreamStart):
            return self._message_start(event)
        out = self._message_start(None)
        if isinstance(event, TextDelta):
            out += self._text(event.text)
        elif isinstance(event, ThinkingDelta):
            out += self._thinking_delta(event)
        elif isinstance(event, ToolCallStart):
            out += self._tool_start(event)
        elif isinstance(event, ToolCallDelta):
            out += self._tool_delta(event)
        elif isinstance(event, UsageUpdate):
            self._usage = event.usage
        elif isinstance(event, StreamEnd):
            out += self._end(event)
        return out

    def error(self, err: LLMProxyError) -> bytes:
        """A mid-stream failure: ``event: error`` with the Anthropic error body."""
        self._ended = True
        return frame(dumps(error_body(err)[1]), "error")

    def _frame(self, data: dict[str, Any]) -> bytes:
        return frame(dumps(data), data["type"])

    def _message_start(self, event: StreamStart | None) -> bytes:
        if self._started:
            return b""
        self._started = True
        upstream_id = event.id if event is not None else ""
        msg_id = self._id or (upstream_id if upstream_id.startswith("msg") else f"msg_{upstream_id or 'llmproxy'}")
        if event is not None and event.usage is not None:
            self._usage = event.usage
        message: dict[str, Any] = {"id": msg_id, "type": "message", "role": "assistant", "model": self.model,
                                   "content": [], "stop_reason": None, "stop_sequence": None,
                                   "usage": encode_usage(self._usage or Usage())}  # fmt: skip
        return self._frame({"type": "message_start", "message": message})

    def _begin(self, kind: str, block: dict[str, Any]) -> bytes:
        self._open = kind
        return self._frame({"type": "content_block_start", "index": self._index, "content_block": block})

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return self._frame({"type": "content_block_delta", "index": self._index, "delta": delta})

    def _stop(self) -> bytes:
        out = b""
        if self._open == "thinking":
            signature = self._signature or gateway_signature("".join(self._thinking))
            out += self._delta({"type": "signature_delta", "signature": signature})
            self._thinking, self._signature = [], None
        out += self._frame({"type": "content_block_stop", "index": self._index})
        self._index += 1
        self._open = self._live = None
        return out

    def _close(self) -> bytes:
        """Stop the open block, then send the tool calls that waited for it, each whole."""
        out = self._stop() if self._open else b""
        for index in sorted(self._waiting):
            call = self._waiting.pop(index)
            out += self._begin("tool", {"type": "tool_use", "id": call.id, "name": call.name, "input": {}})
            if call.arguments:
                out += self._delta({"type": "input_json_delta", "partial_json": call.arguments})
            out += self._stop()
        return out

    def _text(self, text: str) -> bytes:
        if not text:
            return b""
        out = b"" if self._open == "text" else self._close() + self._begin("text", {"type": "text", "text": ""})
        return out + self._delta({"type": "text_delta", "text": text})

    def _thinking_delta(self, e: ThinkingDelta) -> bytes:
        signed = e.source == NAME and bool(e.signature)
        if e.redacted:  # only Anthropic can read its redacted payloads
            if not signed:
                return b""
            return (
                self._close()
                + self._begin("redacted", {"type": "redacted_thinking", "data": e.signature})
                + self._stop()
            )
        if not e.text and not signed:
            return b""
        out = b""
        if self._open != "thinking" or (e.text and self._signature is not None):
            out += self._close() + self._begin("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        if e.text:
            self._thinking.append(e.text)
            out += self._delta({"type": "thinking_delta", "thinking": e.text})
        if signed:
            self._signature = (self._signature or "") + str(e.signature)
        return out

    def _tool_start(self, e: ToolCallStart) -> bytes:
        self._tool_calls = True
        if self._open == "tool":  # another call streams: this one waits and goes out whole
            if e.index != self._live:
                self._waiting.setdefault(e.index, _Call(e.id, e.name))
            return b""
        out = self._close()
        self._live = e.index
        return out + self._begin("tool", {"type": "tool_use", "id": e.id, "name": e.name, "input": {}})

    def _tool_delta(self, e: ToolCallDelta) -> bytes:
        if not e.arguments:
            return b""
        if self._open == "tool" and e.index == self._live:
            return self._delta({"type": "input_json_delta", "partial_json": e.arguments})
        call = self._waiting.get(e.index)
        if call is not None:
            call.arguments += e.arguments
        return b""

    def _end(self, e: StreamEnd) -> bytes:
        out = self._close()
        self._ended = True
        usage = e.usage or self._usage or Usage()
        reason = stop_reason_out(e.finish_reason, tool_calls=self._tool_calls, stop_sequence=e.stop_sequence)
        delta = {"stop_reason": reason, "stop_sequence": e.stop_sequence if reason == "stop_sequence" else None}
        out += self._frame({"type": "message_delta", "delta": delta, "usage": encode_usage(usage)})
        return out + self._frame({"type": "message_stop"})
