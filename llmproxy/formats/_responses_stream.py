"""Responses streams: upstream SSE -> canonical events, canonical events -> client SSE."""

from __future__ import annotations

import time
from typing import Any

from .._json import dumps, loads
from ..errors import LLMProxyError, ProviderError, ProviderProtocolError
from ..model import (
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
from ._responses_wire import (
    NAME,
    decode_usage,
    failure,
    finish_in,
    finish_status,
    message_item,
    output_text,
    response_object,
    with_meta,
)


class StreamDecoder:
    """Responses SSE (bytes) -> canonical events.

    ``function_call_arguments.done``, ``output_item.done`` and the terminal response are
    authoritative: whatever arguments or text they hold that no delta delivered are sent
    then (an upstream that skips deltas otherwise loses them, litellm#27144).
    """

    def __init__(self) -> None:
        self._sse = SSEParser()
        self._started = False
        self._done = False
        self._calls: dict[int, tuple[int, str]] = {}  # output_index -> (tool index, arguments sent)
        self._texts: dict[int, str] = {}  # output_index -> text sent
        self._finished: set[int] = set()
        self._summary: dict[int, int] = {}  # output_index -> last summary_index seen
        #: One past the last ``sequence_number`` seen: where the gateway's own error event
        #: goes on when a passthrough stream fails (``StreamEncoder.resume``).
        self.next_sequence = 0

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
            raise ProviderProtocolError("upstream Responses stream ended without a terminal event")
        return out

    def _event(self, data: str, out: list[StreamEvent]) -> None:
        if self._done or not data or data == "[DONE]":
            return
        try:
            ev = loads(data)
        except ValueError:
            raise ProviderProtocolError("upstream sent a stream event that is not JSON") from None
        if not isinstance(ev, dict):
            return
        kind = ev.get("type")
        if kind == "error":
            raise ProviderError(str(ev.get("message") or "upstream stream error"), code="upstream_stream_error")
        if kind == "response.failed":
            raise failure(ev.get("response") or {})
        seq = ev.get("sequence_number")
        if isinstance(seq, int) and not isinstance(seq, bool):
            self.next_sequence = seq + 1
        resp: dict[str, Any] = ev["response"] if isinstance(ev.get("response"), dict) else {}
        if not self._started:
            self._started = True
            out.append(
                StreamStart(str(resp.get("id") or ""), str(resp.get("model") or ""), int(resp.get("created_at") or 0))
            )
        idx = ev.get("output_index")
        if kind in ("response.output_text.delta", "response.refusal.delta") and isinstance(ev.get("delta"), str):
            self._text(int(idx or 0), ev["delta"], out)
        elif kind == "response.reasoning_summary_text.delta":
            self._summary_delta(int(idx or 0), int(ev.get("summary_index") or 0), str(ev.get("delta") or ""), out)
        elif kind == "response.reasoning_text.delta" and ev.get("delta"):
            out.append(ThinkingDelta(str(ev["delta"]), source=NAME))
        elif kind == "response.output_item.added" and isinstance(ev.get("item"), dict):
            self._item_added(int(idx or 0), ev["item"], out)
        elif kind == "response.function_call_arguments.delta":
            self._arguments(int(idx or 0), str(ev.get("delta") or ""), out)
        elif kind == "response.function_call_arguments.done":
            self._arguments_done(int(idx or 0), ev.get("arguments"), out)
        elif kind == "response.output_item.done" and isinstance(ev.get("item"), dict):
            self._item_done(int(idx or 0), ev["item"], out)
        elif kind in ("response.completed", "response.incomplete"):
            self._terminal(resp, out)

    def _text(self, idx: int, delta: str, out: list[StreamEvent]) -> None:
        if delta:
            self._texts[idx] = self._texts.get(idx, "") + delta
            out.append(TextDelta(delta))

    def _summary_delta(self, idx: int, summary_index: int, delta: str, out: list[StreamEvent]) -> None:
        last = self._summary.get(idx)
        if last is not None and summary_index != last:
            out.append(ThinkingDelta("\n\n", source=NAME))
        self._summary[idx] = summary_index
        if delta:
            out.append(ThinkingDelta(delta, source=NAME))

    def _item_added(self, idx: int, item: dict[str, Any], out: list[StreamEvent]) -> None:
        if item.get("type") != "function_call" or idx in self._calls:
            return
        call_id = str(item.get("call_id") or item.get("id") or f"call_{len(self._calls)}")
        self._calls[idx] = (len(self._calls), "")
        out.append(
            ToolCallStart(self._calls[idx][0], call_id, str(item.get("name") or ""), with_meta(id=item.get("id")))
        )
        if isinstance(item.get("arguments"), str):
            self._arguments(idx, item["arguments"], out)

    def _arguments(self, idx: int, delta: str, out: list[StreamEvent]) -> None:
        if idx in self._calls and delta:
            index, sent = self._calls[idx]
            self._calls[idx] = (index, sent + delta)
            out.append(ToolCallDelta(index, delta))

    def _arguments_done(self, idx: int, arguments: Any, out: list[StreamEvent]) -> None:
        """Send what the deltas missed; a mismatch cannot be retracted, so it is left."""
        if idx not in self._calls or not isinstance(arguments, str):
            return
        sent = self._calls[idx][1]
        if arguments.startswith(sent):
            self._arguments(idx, arguments[len(sent) :], out)

    def _item_done(self, idx: int, item: dict[str, Any], out: list[StreamEvent]) -> None:
        if idx in self._finished:
            return
        self._finished.add(idx)
        kind = item.get("type")
        if kind == "function_call":
            if idx not in self._calls:
                self._item_added(idx, item, out)
            self._arguments_done(idx, item.get("arguments"), out)
        elif kind == "message":
            text = "".join(str(c.get("text") or c.get("refusal") or "") for c in item.get("content") or [])
            sent = self._texts.get(idx, "")
            if text.startswith(sent):
                self._text(idx, text[len(sent) :], out)
        elif kind == "reasoning":
            if idx not in self._summary:
                summary = [str(s.get("text") or "") for s in item.get("summary") or [] if isinstance(s, dict)]
                if any(summary):
                    out.append(ThinkingDelta("\n\n".join(summary), source=NAME))
            if isinstance(item.get("encrypted_content"), str) and item["encrypted_content"]:
                out.append(ThinkingDelta("", signature=item["encrypted_content"], source=NAME))

    def _terminal(self, resp: dict[str, Any], out: list[StreamEvent]) -> None:
        for i, item in enumerate(resp.get("output") or []):
            if isinstance(item, dict):
                self._item_done(i, item, out)
        self._done = True
        usage = decode_usage(resp.get("usage")) if resp.get("usage") else None
        finish = finish_in(resp.get("status"), resp.get("incomplete_details"), bool(self._calls))
        out.append(StreamEnd(finish, usage))


class StreamEncoder:
    """Canonical events -> the Responses event sequence, for a client of this dialect.

    Items are emitted one after another, as OpenAI does. A tool call that starts while
    another is still open (its arguments do not parse yet) is buffered and emitted once
    the open one closes, so interleaved parallel-call deltas never mix. ``response.completed`` (or
    ``response.incomplete``) carries every finished item and the usage; no ``[DONE]``.
    ``include_usage`` is accepted for a uniform constructor: Responses always reports usage.
    """

    def __init__(self, *, model: str, include_usage: bool = True, request_id: str = "") -> None:
        self.model = model
        self.include_usage = include_usage
        self._base = request_id or "llmproxy"
        self._id = f"resp_{self._base}"
        self._created = int(time.time())
        self._seq = 0
        self._started = False
        self._ended = False
        self._items: list[dict[str, Any]] = []
        self._open: _OpenItem | None = None
        self._pending: dict[int, _Call] = {}  # tool index -> call waiting its turn
        self._usage: Usage | None = None

    def _emit(self, kind: str, **fields: Any) -> bytes:
        body = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        data: bytes = frame(dumps(body), event=kind)
        return data

    def _snapshot(self, status: str, output: list[dict[str, Any]], usage: Usage | None = None) -> dict[str, Any]:
        return response_object(self._id, self.model, self._created, status, output, usage)

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._emit("response.created", response=self._snapshot("in_progress", [])) + self._emit(
            "response.in_progress", response=self._snapshot("in_progress", [])
        )

    def encode(self, event: StreamEvent) -> bytes:
        if self._ended:
            return b""
        if isinstance(event, StreamStart):
            if event.created:
                self._created = event.created
            if event.usage is not None:
                self._usage = event.usage
            return self._start()
        out = self._start()
        if isinstance(event, TextDelta):
            out += self._text(event.text) if event.text else b""
        elif isinstance(event, ThinkingDelta):
            out += self._thinking(event)
        elif isinstance(event, ToolCallStart):
            out += self._tool_start(event)
        elif isinstance(event, ToolCallDelta):
            out += self._tool_delta(event)
        elif isinstance(event, UsageUpdate):
            self._usage = event.usage
        elif isinstance(event, StreamEnd):
            out += self._finish(event)
        return out

    def _close(self) -> bytes:
        out = b""
        if self._open is not None:
            item, self._open = self._open, None
            out += item.close(self)
        while self._open is None and self._pending:
            index = min(self._pending)
            out += self._open_call(self._pending.pop(index))
            if self._open is not None:
                out += self._open.close(self)
                self._open = None
        return out

    def _text(self, text: str) -> bytes:
        out = b""
        if not isinstance(self._open, _Message):
            out += self._close()
            self._open = _Message(f"msg_{self._base}_{len(self._items)}", len(self._items))
            out += self._open.open(self)
        return out + self._open.add(self, text)

    def _thinking(self, event: ThinkingDelta) -> bytes:
        signature = event.signature if event.source == NAME and not event.redacted else None
        if event.redacted or not (event.text or signature):
            return b""
        out = b""
        if not isinstance(self._open, _Reasoning):
            out += self._close()
            self._open = _Reasoning(f"rs_{self._base}_{len(self._items)}", len(self._items))
            out += self._open.open(self)
        if signature:
            self._open.encrypted = (self._open.encrypted or "") + signature
        return out + (self._open.add(self, event.text) if event.text else b"")

    def _tool_start(self, event: ToolCallStart) -> bytes:
        call = _Call(event.index, event.id, event.name)
        if isinstance(self._open, _Call) and (self._pending or not _complete_json(self._open.arguments)):
            self._pending[event.index] = call  # the open call may still get deltas
            return b""
        return self._close() + self._open_call(call)

    def _open_call(self, call: _Call) -> bytes:
        call.item_id, call.output_index = f"fc_{self._base}_{len(self._items)}", len(self._items)
        self._open = call
        buffered, call.arguments = call.arguments, ""
        return call.open(self) + (call.add(self, buffered) if buffered else b"")

    def _tool_delta(self, event: ToolCallDelta) -> bytes:
        if isinstance(self._open, _Call) and self._open.index == event.index:
            return self._open.add(self, event.arguments)
        if event.index in self._pending:
            self._pending[event.index].arguments += event.arguments
        return b""  # a delta for a call already closed has nowhere to go

    def _finish(self, event: StreamEnd) -> bytes:
        out = self._close()
        self._ended = True
        if event.usage is not None:
            self._usage = event.usage
        snapshot = self._snapshot("completed", list(self._items), self._usage or Usage())
        finish_status(snapshot, event.finish_reason)
        kind = {"incomplete": "response.incomplete", "failed": "response.failed"}.get(
            snapshot["status"], "response.completed"
        )
        return out + self._emit(kind, response=snapshot)

    def resume(self, next_sequence: int) -> None:
        """Go on from a relayed stream: the upstream's bytes already opened the response, so
        the next event this encoder writes (an error) continues its sequence numbers."""
        self._started = True
        self._seq = next_sequence

    def error(self, err: LLMProxyError) -> bytes:
        """A mid-stream failure: open items are closed (every added gets its done), then
        ``response.failed`` with the error; nothing follows it."""
        if self._ended:
            return b""
        out = self._start() + self._close()
        self._ended = True
        snapshot = self._snapshot("failed", list(self._items), self._usage)
        code = "rate_limit_exceeded" if err.status == 429 else "server_error"
        snapshot["error"] = {"code": code, "message": err.message}
        return out + self._emit("response.failed", response=snapshot)


def _complete_json(text: str) -> bool:
    """Whether a call's arguments already parse, so no sane upstream adds more."""
    try:
        loads(text)
    except ValueError:
        return False
    return True


class _OpenItem:
    item_id: str
    output_index: int

    def open(self, enc: StreamEncoder) -> bytes:
        raise NotImplementedError

    def close(self, enc: StreamEncoder) -> bytes:
        raise NotImplementedError


class _Message(_OpenItem):
    def __init__(self, item_id: str, output_index: int) -> None:
        self.item_id, self.output_index, self.text = item_id, output_index, ""

    def _where(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "output_index": self.output_index, "content_index": 0}

    def open(self, enc: StreamEncoder) -> bytes:
        return enc._emit(
            "response.output_item.added",
            output_index=self.output_index,
            item=message_item(self.item_id, [], "in_progress"),
        ) + enc._emit("response.content_part.added", **self._where(), part=output_text(""))

    def add(self, enc: StreamEncoder, text: str) -> bytes:
        self.text += text
        return enc._emit("response.output_text.delta", **self._where(), delta=text, logprobs=[])

    def close(self, enc: StreamEncoder) -> bytes:
        item = message_item(self.item_id, [self.text])
        enc._items.append(item)
        return (
            enc._emit("response.output_text.done", **self._where(), text=self.text, logprobs=[])
            + enc._emit("response.content_part.done", **self._where(), part=output_text(self.text))
            + enc._emit("response.output_item.done", output_index=self.output_index, item=item)
        )


class _Reasoning(_OpenItem):
    def __init__(self, item_id: str, output_index: int) -> None:
        self.item_id, self.output_index = item_id, output_index
        self.text: str | None = None  # None until the summary part is opened
        self.encrypted: str | None = None

    def _item(self) -> dict[str, Any]:
        summary = [] if self.text is None else [{"type": "summary_text", "text": self.text}]
        item: dict[str, Any] = {"type": "reasoning", "id": self.item_id, "summary": summary}
        if self.encrypted:
            item["encrypted_content"] = self.encrypted
        return item

    def _where(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "output_index": self.output_index, "summary_index": 0}

    def open(self, enc: StreamEncoder) -> bytes:
        item = {"type": "reasoning", "id": self.item_id, "summary": []}
        return enc._emit("response.output_item.added", output_index=self.output_index, item=item)

    def add(self, enc: StreamEncoder, text: str) -> bytes:
        out = b""
        if self.text is None:
            self.text = ""
            out = enc._emit(
                "response.reasoning_summary_part.added", **self._where(), part={"type": "summary_text", "text": ""}
            )
        self.text += text
        return out + enc._emit("response.reasoning_summary_text.delta", **self._where(), delta=text)

    def close(self, enc: StreamEncoder) -> bytes:
        out = b""
        if self.text is not None:
            part = {"type": "summary_text", "text": self.text}
            out = enc._emit("response.reasoning_summary_text.done", **self._where(), text=self.text) + enc._emit(
                "response.reasoning_summary_part.done", **self._where(), part=part
            )
        item = self._item()
        enc._items.append(item)
        return out + enc._emit("response.output_item.done", output_index=self.output_index, item=item)


class _Call(_OpenItem):
    def __init__(self, index: int, call_id: str, name: str) -> None:
        self.index, self.call_id, self.name, self.arguments = index, call_id, name, ""
        self.item_id, self.output_index = "", 0

    def _item(self, status: str) -> dict[str, Any]:
        return {"type": "function_call", "id": self.item_id, "call_id": self.call_id, "name": self.name,
                "arguments": self.arguments, "status": status}  # fmt: skip

    def open(self, enc: StreamEncoder) -> bytes:
        return enc._emit("response.output_item.added", output_index=self.output_index, item=self._item("in_progress"))

    def add(self, enc: StreamEncoder, delta: str) -> bytes:
        self.arguments += delta
        return enc._emit(
            "response.function_call_arguments.delta", item_id=self.item_id, output_index=self.output_index, delta=delta
        )

    def close(self, enc: StreamEncoder) -> bytes:
        # Arguments are never empty on the wire, and .done must equal the deltas.
        out = b"" if self.arguments else self.add(enc, "{}")
        item = self._item("completed")
        enc._items.append(item)
        return (
            out
            + enc._emit(
                "response.function_call_arguments.done",
                item_id=self.item_id,
                output_index=self.output_index,
                arguments=item["arguments"],
            )
            + enc._emit("response.output_item.done", output_index=self.output_index, item=item)
        )
