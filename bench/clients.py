"""Upstream HTTP clients alone, in-process: CPU per request and per 50-chunk stream.

The relay table (scenario T) compares clients inside a bare ASGI relay; this isolates the
client: one process runs N requests (64 at a time) against the fake upstream with each
client and reports the process's CPU (all its threads: a Rust client's runtime threads
count) per request and per stream. Not part of ``make bench``; the compared clients are
the ones scenario T installs into var/bench-clients.

    python -m bench.clients            # raw, aiohttp, pyreqwest; 3 rounds, interleaved
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

from .procs import PY, free_port, wait_port
from .run import chat_body, ensure_relay_clients

Send = Callable[[bytes, bool], Awaitable[int]]


async def _raw() -> tuple[Send, Callable[[], Awaitable[None]]]:
    from llmproxy.http import HTTPClient, UpstreamRequest

    client = HTTPClient()

    async def send(body: bytes, stream: bool) -> int:
        reply = await client.send(UpstreamRequest("POST", URL, {"content-type": "application/json"}, body, stream))
        n = 0
        async for chunk in reply.iter_chunks():
            n += len(chunk)
        return n

    return send, client.close


async def _aiohttp() -> tuple[Send, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def send(body: bytes, stream: bool) -> int:
        async with session.post(URL, data=body, headers={"content-type": "application/json"}) as r:
            n = 0
            async for chunk in r.content.iter_any():
                n += len(chunk)
            return n

    return send, session.close


async def _pyreqwest() -> tuple[Send, Callable[[], Awaitable[None]]]:
    from pyreqwest.client import ClientBuilder

    client = ClientBuilder().max_connections(None).build()

    async def send(body: bytes, stream: bool) -> int:
        req = client.post(URL).header("content-type", "application/json").body_bytes(body).build_streamed()
        n = 0
        async with req as resp:
            reader = resp.body_reader
            while (chunk := await reader.read_chunk()) is not None:
                n += len(chunk)
        return n

    return send, client.close


CLIENTS = {"raw": _raw, "aiohttp": _aiohttp, "pyreqwest": _pyreqwest}
URL = ""


async def measure(name: str, body: bytes, stream: bool, count: int, conns: int) -> float:
    send, close = await CLIENTS[name]()
    for _ in range(50):  # warm-up: connections, caches
        await send(body, stream)
    queue = iter(range(count))

    async def worker() -> None:
        for _ in queue:
            await send(body, stream)

    cpu0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(conns)))
    cpu = time.process_time() - cpu0
    await close()
    return cpu / count * 1e6


def main() -> None:
    global URL
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    args = parser.parse_args()
    sys.path.append(ensure_relay_clients())
    port = free_port()
    up = subprocess.Popen([PY, "-m", "bench.upstream", "--port", str(port)], env=dict(os.environ))
    try:
        wait_port(port)
        URL = f"http://127.0.0.1:{port}/v1/chat/completions"
        import uvloop

        results: dict[str, dict[str, list[float]]] = {}
        for _ in range(args.rounds):
            for name in args.clients.split(","):
                out = results.setdefault(name, {"request": [], "stream": []})
                out["request"].append(uvloop.run(measure(name, chat_body("m-1-0"), False, args.count, 64)))
                out["stream"].append(uvloop.run(measure(name, chat_body("m-50-0", True), True, args.count // 4, 64)))
        for name, out in results.items():
            req = ", ".join(f"{v:.0f}" for v in out["request"])
            st = ", ".join(f"{v:.0f}" for v in out["stream"])
            print(f"{name:10} CPU µs per request: {req}; per 50-chunk stream: {st}", flush=True)
    finally:
        up.terminate()
        up.wait()


if __name__ == "__main__":
    main()
