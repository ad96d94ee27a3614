"""In-process micro-measurements: no sockets, so no noise from the other processes.

They answer the questions a load test cannot split out: what one translated chunk
costs the codecs, and what orjson saves over the standard library per request.
"""

from __future__ import annotations

import json
import time
from typing import Any

import orjson

from .upstream import anthropic_frames, anthropic_reply, openai_frames, openai_reply


def _unchunk(frames: list[bytes]) -> list[bytes]:
    """The SSE payloads of chunked-encoding frames, as the gateway's reader sees them."""
    out = []
    for f in frames:
        size, _, rest = f.partition(b"\r\n")
        out.append(rest[: int(size, 16)])
    return out


def _best(fn: Any, repeat: int = 7, number: int = 50) -> float:
    """Best-of-``repeat`` seconds per call (the minimum is the least disturbed figure)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t) / number)
    return best


def codec_chunk_cost(chunks: int = 50) -> dict[str, float]:
    """Anthropic stream -> canonical events -> OpenAI Chat SSE, per upstream frame, in µs."""
    from llmproxy import formats

    up, down = formats.get("anthropic"), formats.get("openai_chat")
    frames = _unchunk(anthropic_frames(f"m-{chunks}-0"))
    passthrough = _unchunk(openai_frames(f"m-{chunks}-0"))

    def translate() -> None:
        dec, enc = up.StreamDecoder(), down.StreamEncoder(model="bench", include_usage=True, request_id="r")
        for f in frames:
            for e in dec.feed(f):
                enc.encode(e)
        for e in dec.close():
            enc.encode(e)

    def decode_only() -> None:
        dec = down.StreamDecoder()
        for f in passthrough:
            dec.feed(f)
        dec.close()

    t = _best(translate)
    p = _best(decode_only)
    return {"us_per_chunk": round(t / len(frames) * 1e6, 2), "frames": len(frames),
            "passthrough_decode_us_per_chunk": round(p / len(passthrough) * 1e6, 2)}  # fmt: skip


def relay_chunk_cost(relay_cls: Any = None, chunks: int = 50) -> dict[str, float]:
    """``StreamRelay._relay`` per upstream chunk of a passthrough OpenAI Chat stream, in µs:
    as the upstream framed it (one event a chunk) and with every event split in two, each
    with and without the model rename. ``relay_cls`` lets a before/after run pass the old class."""
    from types import SimpleNamespace

    from llmproxy import formats
    from llmproxy.relay import StreamRelay

    cls = relay_cls or StreamRelay
    codec = formats.get("openai_chat")
    aligned = _unchunk(openai_frames(f"m-{chunks}-0"))
    split = [half for f in aligned for half in (f[: len(f) // 2], f[len(f) // 2 :])]
    books = SimpleNamespace(estimated=lambda ex, usage: usage)

    def run(frames: list[bytes], rename: bool) -> None:
        r = object.__new__(cls)
        r.ex, r.books, r.decoder = SimpleNamespace(passthrough=True), books, codec.StreamDecoder()
        r.relayed = r.array = r.usage = None
        r.rename, r.upstream_model, r.public_model = rename, "bench-up", "bench"
        r.held, r.said = b"", []
        if "end" in cls.__slots__:
            r.end = None
        for f in frames:
            r._relay(f)

    out: dict[str, float] = {}
    for name, frames in (("aligned", aligned), ("split", split)):
        for rename in (False, True):
            key = f"{name}{'_rename' if rename else ''}_us_per_chunk"
            out[key] = round(_best(lambda: run(frames, rename)) / len(frames) * 1e6, 2)  # noqa: B023
    return out


def json_costs() -> dict[str, float]:
    """Parse a request body and a reply, re-serialise the reply: orjson vs the standard library."""
    from .run import chat_body

    req = chat_body("bench-chat")
    reply = openai_reply("m-1-0")
    reply = reply[reply.find(b"\r\n\r\n") + 4 :]
    areply = anthropic_reply("m-1-0")
    areply = areply[areply.find(b"\r\n\r\n") + 4 :]

    def with_orjson() -> None:
        orjson.loads(req)
        orjson.dumps(orjson.loads(reply))
        orjson.loads(areply)

    def with_json() -> None:
        json.loads(req)
        json.dumps(json.loads(reply), separators=(",", ":")).encode()
        json.loads(areply)

    return {"orjson_us": round(_best(with_orjson, number=2000) * 1e6, 2),
            "json_us": round(_best(with_json, number=2000) * 1e6, 2)}  # fmt: skip


if __name__ == "__main__":
    print(json_costs())
    try:
        print(codec_chunk_cost())
    except Exception as exc:  # the Anthropic codec may not be there yet
        print("codec:", type(exc).__name__, exc)
