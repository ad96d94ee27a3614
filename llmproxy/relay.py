"""Relaying one upstream stream to the client, chunk by chunk, after the first byte.

The gateway has already read the first chunk (a stream that breaks at once fails over);
from here on the client holds a 200, so an upstream failure becomes an error event in
the client's dialect and the candidate cools in the background. Passthrough streams go
out byte for byte (with the public model name put back), in whole SSE events or JSON-array
elements only, so the gateway's error after a cut follows a complete one; translated ones
are decoded to canonical events and encoded again. Whatever happens, usage is settled and
the call recorded exactly once, when the relay ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from ._json import loads
from ._json_array import ArrayRelay
from ._sse_cut import event_end, whole_events
from .bookkeeping import Books
from .errors import LLMProxyError, ProviderError
from .exchange import Exchange
from .http import UpstreamReply
from .model import StreamEnd, StreamEvent, TextDelta, ThinkingDelta, ToolCallDelta, UsageUpdate
from .model import Usage as TokenUsage
from .tokens import count_text


class StreamRelay:
    """An async iterator of the bytes to send to the client for one upstream stream."""

    __slots__ = ("array", "books", "chunks", "decoder", "delivered", "encoder", "end", "ended", "error", "ex",
                 "first", "held", "public_model", "relayed", "rename", "reply", "said", "status", "ttfb",
                 "upstream_model", "usage")  # fmt: skip

    def __init__(
        self,
        ex: Exchange,
        books: Books,
        reply: UpstreamReply,
        chunks: AsyncIterator[bytes],
        first: bytes,
        encoder: Any,
    ) -> None:
        assert ex.request is not None and ex.candidate is not None and ex.upstream_codec is not None
        self.ex, self.books, self.reply = ex, books, reply
        self.chunks, self.first, self.encoder = chunks, first, encoder
        self.decoder = ex.upstream_codec.StreamDecoder()
        self.public_model = ex.request.model
        self.upstream_model = ex.candidate.route.upstream_model
        self.rename = self.upstream_model != self.public_model
        #: A passthrough chunk's unfinished last event, held back: sent, it would run into the
        #: gateway's error frame if the upstream cut there (and the model name may be split
        #: across two network chunks; a client cannot use half an event anyway).
        self.held = b""
        #: The blank line that ends this SSE stream's events, learnt from its first line ending.
        self.end: bytes | None = None
        #: A passthrough JSON-array stream (Gemini without ``alt=sse``) goes out in whole elements:
        #: ``held`` keeps the unfinished one, so an upstream error element never half reaches the client.
        self.array = ArrayRelay() if ex.passthrough and not ex.call.sse else None
        self.usage: TokenUsage | None = None
        #: The text and tool arguments the stream carried: counted if it ends without usage.
        self.said: list[str] = []
        self.status, self.error = 200, ""
        self.ttfb: float | None = None
        #: The upstream's end of stream was decoded / its bytes went out and the consumer came back
        #: for more: a client that leaves after that (having read ``[DONE]``, ``message_stop``...)
        #: while the upstream has yet to close got the whole reply, not a 499.
        self.ended = self.delivered = False
        #: The upstream's error event (passthrough only): the client got the gateway's in its place.
        self.relayed: ProviderError | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._run()

    async def _run(self) -> AsyncIterator[bytes]:
        try:
            pending: list[bytes] = [self.first] if self.first else []
            while True:
                for chunk in pending:
                    out = self._relay(chunk)
                    if out:
                        if self.ttfb is None:
                            self.ttfb = time.monotonic()
                        yield out
                        self.delivered = self.ended
                try:
                    pending = [await self.chunks.__anext__()]
                except StopAsyncIteration:
                    break
            if self.relayed is not None:
                # The client already holds an error event in the upstream's place: another would end the stream twice.
                self._cool(self.relayed)
                return
            tail = self.decoder.close()  # before the held bytes: a stream cut mid-element fails without them
            if self.held:
                yield self._release()
            if self.array is not None:
                yield self._named(self.array.close())
            self._note_usage(tail)
            if not self.ex.passthrough:
                out = b"".join(self.encoder.encode(e) for e in tail)
                if out:
                    yield out
        except ProviderError as err:
            self.status, self.error = err.status, err.code
            self._cool(err)  # after the first byte: an error event, and the credential cools
            if self.array is not None:  # half an element stays unsent: the gateway's follows the last whole one
                self.encoder.resume(self.array.elements)
            self.held = b""  # half an event stays unsent: the gateway's error follows the last whole one
            if self.ex.passthrough and self.array is None:
                _resume(self.encoder, self.decoder)  # the upstream's bytes opened the response, not the encoder
            yield self.encoder.error(self.books.disclose(self.ex, err))
        except (asyncio.CancelledError, GeneratorExit):
            # A client that leaves after the upstream's error event saw that error; one that leaves
            # after the end of the reply saw all of it.
            if self.relayed is None and not self.delivered:
                self.status, self.error = 499, "client_disconnected"
            raise
        finally:
            self.reply.close()
            self.books.settle(self.ex, self.usage, self.status, self.error)
            self.books.record(self.ex, self.ttfb)

    def _relay(self, chunk: bytes) -> bytes:
        """One upstream chunk -> the bytes for the client (usage noted on the way)."""
        passthrough = self.ex.passthrough
        if self.relayed is not None and passthrough:
            return b""  # after the error event (or element) the stream is over for the client
        try:
            events = self.decoder.feed(chunk)
        except ProviderError as err:
            if not passthrough:
                raise
            self.status, self.error, self.relayed = 502, err.code, err
            return self._replace_error(chunk, self.books.disclose(self.ex, err))  # the detail for staff
        self._note_usage(events)
        if self.array is not None:
            return self._named(self.array.feed(chunk))
        if passthrough:
            return self._named(self._whole(self.held + chunk if self.held else chunk))
        return b"".join(self.encoder.encode(e) for e in events)

    def _whole(self, data: bytes) -> bytes:
        """The whole SSE events of ``data``; the unfinished rest is held for the next chunk."""
        end = self.end or event_end(data)
        if end is None:
            self.held = data
            return b""
        self.end = end
        cut = whole_events(data, end)
        if cut == len(data):  # the usual chunk: it ends an event, nothing to copy
            self.held = b""
            return data
        self.held = data[cut:]
        return data[:cut]

    def _named(self, data: bytes) -> bytes:
        """Passthrough bytes with the public model name (whole events or elements only)."""
        return _rename(data, self.upstream_model, self.public_model) if self.rename and data else data

    def _replace_error(self, chunk: bytes, shown: LLMProxyError) -> bytes:
        """The passthrough bytes before the upstream's error event or element, then the gateway's own (section 11)."""
        if self.array is not None:
            data = self.array.until_error(chunk)
            self.encoder.resume(self.array.elements)  # the array is open when an element went out
        else:
            data = _before_error(self.held + chunk)
            _resume(self.encoder, self.decoder)
        self.held = b""
        ours: bytes = self.encoder.error(shown)
        return self._named(data) + ours

    def _release(self) -> bytes:
        out, self.held = _rename(self.held, self.upstream_model, self.public_model), b""
        return out

    def _note_usage(self, events: list[StreamEvent]) -> None:
        """Keep the stream's usage, with the gateway's own counts where the upstream gave none
        (filled in before the client's encoder sees it, so its usage and the record agree)."""
        for e in events:
            if isinstance(e, (TextDelta, ThinkingDelta)):
                self.said.append(e.text)
            elif isinstance(e, ToolCallDelta):
                self.said.append(e.arguments)
            elif isinstance(e, (UsageUpdate, StreamEnd)) and e.usage is not None:
                e.usage = self.usage = self.books.estimated(self.ex, e.usage)
            elif isinstance(e, StreamEnd) and self.usage is None:
                # A stream that ended without usage (an OpenAI client that did not ask for it, on
                # passthrough): what was said, counted here, and the prompt (``Books.estimated``).
                counted = TokenUsage(output_tokens=count_text("".join(self.said)), estimated=True)
                e.usage = self.usage = self.books.estimated(self.ex, counted)
            if isinstance(e, StreamEnd):
                self.ended = True

    def _cool(self, err: ProviderError) -> None:
        plan, cand = self.ex.plan, self.ex.candidate
        if plan is not None and cand is not None and self.ex.cools(err):
            self.books.spawn(self.books.after_failure(plan, cand, err))


def _resume(encoder: object, decoder: object) -> None:
    """Let the client's encoder go on from the relayed upstream stream (Responses numbers its events)."""
    resume, nxt = getattr(encoder, "resume", None), getattr(decoder, "next_sequence", None)
    if callable(resume) and isinstance(nxt, int):
        resume(nxt)


def _before_error(data: bytes) -> bytes:
    """The complete SSE frames of ``data`` before the first one that is an error event."""
    frames = data.replace(b"\r\n", b"\n").split(b"\n\n")
    kept: list[bytes] = []
    for frame in frames[:-1]:  # the last piece is unfinished (or empty)
        if _is_error_frame(frame):
            break
        kept.append(frame + b"\n\n")
    return b"".join(kept)


def _is_error_frame(frame: bytes) -> bool:
    payload = b"".join(line[5:].strip() for line in frame.split(b"\n") if line.startswith(b"data:"))
    if frame.startswith((b"event: error", b"event:error")):
        return True
    try:
        obj = loads(payload)
    except ValueError:
        return bool(payload) and payload != b"[DONE]"  # garbage where an event belongs
    return isinstance(obj, dict) and (
        isinstance(obj.get("error"), dict) or obj.get("type") in ("error", "response.failed")
    )


def _rename(chunk: bytes, upstream: str, public: str) -> bytes:
    """Replace the upstream model name with the public one in a passthrough chunk."""
    up, pub = upstream.encode(), public.encode()
    for key in (b'"model":"', b'"model": "', b'"modelVersion":"', b'"modelVersion": "'):
        chunk = chunk.replace(key + up + b'"', key + pub + b'"')
    return chunk
