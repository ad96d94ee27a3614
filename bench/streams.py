"""A streaming load client: time to first body byte and total time per SSE stream.

wrk only sees whole responses, so streams get this small raw-asyncio client (uvloop):
``--conns`` keep-alive connections each send the same request back to back until
``--seconds`` pass (or ``--count`` streams finished), and every stream's TTFB and total
time are kept. With ``--hold`` each connection sends one request, and once every
stream has its first byte the client reads the RSS of ``--rss-pid`` (scenario D's
"5,000 open streams"), then hangs up on all of them. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .upstream import run

TERMINATOR = b"\r\n0\r\n\r\n"


@dataclass(slots=True)
class Stats:
    ttfb: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


class Client(asyncio.Protocol):
    """One keep-alive connection; ``fetch()`` sends the request and waits for the whole reply."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, float, float]] | None = None
        self.first: asyncio.Future[None] | None = None
        self.lost = False
        self._reset()

    def _reset(self) -> None:
        self.head = b""
        self.in_body = False
        self.status = 0
        self.chunked = False
        self.remaining = 0
        self.tail = b""
        self.t0 = 0.0
        self.t_first = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        for fut in (self.waiter, self.first):
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionError("connection lost"))

    def fetch(self) -> asyncio.Future[tuple[int, float, float]]:
        assert self.transport is not None
        self._reset()
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        self.first = loop.create_future()
        self.t0 = time.perf_counter()
        self.transport.write(self.request)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        if not self.in_body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end].lower(), self.head[end + 4 :]
            self.in_body = True
            self.status = int(head[9:12])
            self.chunked = b"transfer-encoding: chunked" in head
            if not self.chunked:
                i = head.find(b"content-length:")
                self.remaining = int(head[i + 15 : head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None])
            if not data:
                return
        if not self.t_first:
            self.t_first = time.perf_counter()
            if self.first is not None and not self.first.done():
                self.first.set_result(None)
        if self.chunked:
            self.tail = (self.tail + data)[-16:]
            done = self.tail.endswith(TERMINATOR) or self.tail == b"0\r\n\r\n"
        else:
            self.remaining -= len(data)
            done = self.remaining <= 0
        if done and self.waiter is not None and not self.waiter.done():
            now = time.perf_counter()
            self.waiter.set_result((self.status, self.t_first - self.t0, now - self.t0))


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", "content-type: application/json",
             f"content-length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def connect(host: str, port: int, request: bytes, n: int) -> list[Client]:
    loop = asyncio.get_running_loop()
    clients: list[Client] = []
    for start in range(0, n, 250):
        batch = await asyncio.gather(
            *(loop.create_connection(lambda: Client(request), host, port) for _ in range(start, min(n, start + 250)))
        )
        clients += [proto for _, proto in batch]
    return clients


async def loop_streams(clients: list[Client], seconds: float, count: int, stagger: float = 0.0) -> tuple[Stats, float]:
    """Each connection streams back to back; ``stagger`` spreads their first requests over that many
    seconds, so arrivals are steady instead of one burst of every connection at once."""
    stats = Stats()
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    left = [count]
    rng = random.Random(7)

    async def worker(c: Client) -> None:
        if stagger:
            await asyncio.sleep(rng.uniform(0, stagger))
        while time.perf_counter() < deadline and left[0] > 0 and not c.lost:
            left[0] -= 1
            try:
                status, ttfb, total = await asyncio.wait_for(c.fetch(), 30)
            except (TimeoutError, ConnectionError):
                stats.errors += 1
                return
            stats.statuses[status] = stats.statuses.get(status, 0) + 1
            if status == 200:
                stats.ttfb.append(ttfb)
                stats.total.append(total)

    await asyncio.gather(*(worker(c) for c in clients))
    return stats, time.perf_counter() - started


async def hold(clients: list[Client], rss_pid: int, settle: float) -> dict[str, Any]:
    """Open one stream per connection, wait for all first bytes, read the server's RSS, hang up."""
    for c in clients:
        c.fetch()
    firsts = [c.first for c in clients if c.first is not None]
    started = time.perf_counter()
    done, pending = await asyncio.wait(firsts, timeout=60)
    opened = sum(1 for f in done if f.exception() is None)
    await asyncio.sleep(settle)
    still = sum(1 for c in clients if not c.lost and c.waiter is not None and not c.waiter.done())
    rss = rss_mb(rss_pid)
    for c in clients:
        if c.transport is not None:
            c.transport.close()
    return {"opened": opened, "open_at_rss": still, "rss_mb": rss, "open_seconds": round(time.perf_counter() - started, 2),
            "pending": len(pending)}  # fmt: skip


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    body = Path(args.body_file).read_bytes() if args.body_file else args.body.encode()
    request = build_request(args.host, args.port, args.path, body, headers)
    clients = await connect(args.host, args.port, request, args.conns)
    if args.hold:
        result = await hold(clients, args.rss_pid, args.settle)
    else:
        stats, elapsed = await loop_streams(clients, args.seconds, args.count or 1 << 60, args.stagger)
        ms = 1000.0
        result = {
            "streams": len(stats.total), "seconds": round(elapsed, 3), "streams_per_s": round(len(stats.total) / elapsed, 1),
            "ttfb_p50_ms": round(pct(stats.ttfb, 50) * ms, 3), "ttfb_p99_ms": round(pct(stats.ttfb, 99) * ms, 3),
            "total_p50_ms": round(pct(stats.total, 50) * ms, 3), "total_p99_ms": round(pct(stats.total, 99) * ms, 3),
            "errors": stats.errors, "statuses": {str(k): v for k, v in stats.statuses.items()},
        }  # fmt: skip
    for c in clients:
        if c.transport is not None:
            c.transport.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/v1/chat/completions")
    parser.add_argument("--body", default="")
    parser.add_argument("--body-file", default="")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--conns", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--rss-pid", type=int, default=0)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--stagger", type=float, default=0.0, help="spread the first requests over this many seconds")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    sys.stdout.write(orjson.dumps(run(amain(args))).decode() + "\n")
    os._exit(0)


if __name__ == "__main__":
    main()
