"""Helpers over canonical stream events: collecting a stream into a Response."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from .model import (
    Part,
    Response,
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


class Collector:
    """Accumulates events into a Response: one streaming path, non-stream is collected."""

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = 0
        self.parts: list[Part] = []
        self.usage: Usage | None = None
        self.end: StreamEnd | None = None
        self._calls: dict[int, ToolCallPart] = {}

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            last = self.parts[-1] if self.parts else None
            if isinstance(last, TextPart):
                last.text += event.text
            else:
                self.parts.append(TextPart(event.text))
        elif isinstance(event, ThinkingDelta):
            last = self.parts[-1] if self.parts else None
            # A signature closes a thinking block: text after it starts the next block.
            continues = isinstance(last, ThinkingPart) and not (last.signature and event.text)
            if continues and isinstance(last, ThinkingPart) and not last.redacted and not event.redacted:
                last.text += event.text
                if event.signature:
                    last.signature = (last.signature or "") + event.signature
                    last.source = event.source
            else:
                self.parts.append(ThinkingPart(event.text, event.signature, event.source, event.redacted))
        elif isinstance(event, ToolCallStart):
            call = ToolCallPart(event.id, event.name, "", event.provider_metadata)
            self._calls[event.index] = call
            self.parts.append(call)
        elif isinstance(event, ToolCallDelta):
            open_call = self._calls.get(event.index)
            if open_call is not None:
                open_call.arguments += event.arguments
        elif isinstance(event, UsageUpdate):
            self.usage = event.usage
        elif isinstance(event, StreamStart):
            self.id, self.model, self.created = event.id, event.model, event.created
            if event.usage is not None:
                self.usage = event.usage
        elif isinstance(event, StreamEnd):
            self.end = event
            if event.usage is not None:
                self.usage = event.usage

    def response(self) -> Response:
        for call in self._calls.values():
            if not call.arguments:
                call.arguments = "{}"
        end = self.end or StreamEnd()
        return Response(
            id=self.id,
            model=self.model,
            parts=self.parts,
            finish_reason=end.finish_reason,
            usage=self.usage or Usage(),
            stop_sequence=end.stop_sequence,
            created=self.created,
        )


def collect(events: Iterable[StreamEvent]) -> Response:
    c = Collector()
    for e in events:
        c.add(e)
    return c.response()


async def acollect(events: AsyncIterator[StreamEvent]) -> Response:
    c = Collector()
    async for e in events:
        c.add(e)
    return c.response()
