"""A fast fake upstream for the benchmarks: raw asyncio (uvloop), canned bytes, no framework.

It must never be the bottleneck, so every reply is pre-encoded once per model name and
a request costs one header scan and one write. The upstream model name carries the
script: ``m-<chunks>-<interval_ms>`` streams that many content chunks that far apart
(``m-50-0``: 50 chunks back to back; ``m-20-25``: 20 chunks over 0.5 s). Paths ending
in ``/chat/completions`` answer in OpenAI Chat, paths ending in ``/messages`` in
Anthropic Messages; a body with ``"stream":true`` gets an SSE stream.

Run: ``python -m bench.upstream --port 18001``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from typing import Any

import orjson

JSON_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
CHUNK_END = b"0\r\n\r\n"
WORD = "lorem "


def script(model: str) -> tuple[int, float]:
    """``m-50-0`` -> (50 chunks, 0.0 s apart); anything else is one chunk, no pause."""
    parts = model.split("-")
    if len(parts) == 3 and parts[0] == "m":
        try:
            return max(1, int(parts[1])), max(0.0, float(parts[2]) / 1000)
        except ValueError:
            pass
    return 1, 0.0


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def openai_reply(model: str) -> bytes:
    chunks, _ = script(model)
    body = orjson.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1730000000, "model": model,
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": WORD * chunks, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 42, "completion_tokens": chunks, "total_tokens": 42 + chunks,
                  "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}},
    })  # fmt: skip
    return JSON_HEAD % len(body) + body


def openai_frames(model: str) -> list[bytes]:
    chunks, _ = script(model)

    def frame(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        body = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1730000000,
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        body.update(extra)
        return chunked(b"data: " + orjson.dumps(body) + b"\n\n")

    usage = {"prompt_tokens": 42, "completion_tokens": chunks, "total_tokens": 42 + chunks}
    out = [frame({"role": "assistant", "content": ""})]
    out += [frame({"content": WORD}) for _ in range(chunks)]
    out.append(frame({}, "stop"))
    out.append(frame({}, None, choices=[], usage=usage))
    out.append(chunked(b"data: [DONE]\n\n") + CHUNK_END)
    return out


def anthropic_reply(model: str) -> bytes:
    chunks, _ = script(model)
    body = orjson.dumps({
        "id": "msg_bench", "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": WORD * chunks}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 42, "output_tokens": chunks, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0},
    })  # fmt: skip
    return JSON_HEAD % len(body) + body


def anthropic_frames(model: str) -> list[bytes]:
    chunks, _ = script(model)

    def event(name: str, data: dict[str, Any]) -> bytes:
        return chunked(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")

    start = {"type": "message_start", "message": {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 42, "output_tokens": 1}}}  # fmt: skip
    out = [event("message_start", start),
           event("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}})]  # fmt: skip
    delta = event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": WORD}})  # fmt: skip
    out += [delta] * chunks
    out.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    out.append(event("message_delta", {"type": "message_delta",
                                       "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                       "usage": {"output_tokens": chunks}}))  # fmt: skip
    out.append(event("message_stop", {"type": "message_stop"}) + CHUNK_END)
    return out


class Canned:
    """Pre-encoded replies per (dialect, model, stream), built on first use."""

    def __init__(self) -> None:
        self.cache: dict[tuple[bytes, bytes, bool], Any] = {}

    def get(self, path: bytes, model: bytes, stream: bool) -> Any:
        key = (path, model, stream)
        hit = self.cache.get(key)
        if hit is None:
            name = model.decode()
            if path.endswith(b"/chat/completions"):
                hit = openai_frames(name) if stream else openai_reply(name)
            elif path.endswith(b"/messages"):
                hit = anthropic_frames(name) if stream else anthropic_reply(name)
            else:
                hit = NOT_FOUND
            if isinstance(hit, list):
                hit = (hit, script(name)[1])
            self.cache[key] = hit
        return hit


CANNED = Canned()


class Upstream(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.streams: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        for task in self.streams:
            task.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf = self.buf + data if self.buf else data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end]
            length = _content_length(head)
            total = end + 4 + length
            if len(self.buf) < total:
                return
            body = self.buf[end + 4 : total]
            self.buf = self.buf[total:]
            self.answer(head, body)

    def answer(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        path = head[: head.find(b"\r\n")].split(b" ")[1].split(b"?")[0]
        model = _model(body)
        stream = b'"stream":true' in body or b'"stream": true' in body
        canned = CANNED.get(path, model, stream)
        if isinstance(canned, bytes):
            self.transport.write(canned)
            return
        frames, interval = canned
        if interval == 0:
            self.transport.write(SSE_HEAD)
            for f in frames:
                self.transport.write(f)
            return
        task = asyncio.get_running_loop().create_task(self.paced(frames, interval))
        self.streams.add(task)
        task.add_done_callback(self.streams.discard)

    async def paced(self, frames: list[bytes], interval: float) -> None:
        transport = self.transport
        if transport is None:
            return
        transport.write(SSE_HEAD + frames[0])
        for f in frames[1:]:
            await asyncio.sleep(interval)
            if transport.is_closing():
                return
            transport.write(f)


def _content_length(head: bytes) -> int:
    low = head.lower()
    i = low.find(b"content-length:")
    if i < 0:
        return 0
    j = low.find(b"\r\n", i)
    return int(low[i + 15 : j if j >= 0 else None])


def _model(body: bytes) -> bytes:
    i = body.find(b'"model":')
    if i < 0:
        return b""
    i = body.find(b'"', i + 8)
    return body[i + 1 : body.find(b'"', i + 1)]


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, host, port, backlog=4096, reuse_address=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18001)
    args = parser.parse_args()
    print(f"bench upstream on {args.host}:{args.port} (pid {os.getpid()})", flush=True)
    try:
        run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


def run(coro: Any) -> Any:
    """Run on uvloop when it is installed (it is, with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


if __name__ == "__main__":
    main()
