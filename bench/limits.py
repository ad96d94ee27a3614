"""Key + user limits and a budget reservation, as the hot path runs them (not part of the suite).

    REDIS_URL=redis://127.0.0.1:6379/15 python -m bench.limits [--n 20000] [--loop asyncio]

Measures, per request: ``Limiter.reserve`` (one Lua script: the key's and the user's RPM,
TPM, parallel cap and budget) and ``Limiter.settle`` (one more script, after the reply),
sequentially (the latency one request adds) and with 64 requests in flight (the CPU and
Redis time under load). Also the in-memory store, and the prompt estimate (tokenizer)
that only requests under a budget pay. Prints one JSON line; docs/benchmarks.md has the
figures and the machine they came from.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from typing import Any

from llmproxy.estimate import estimate
from llmproxy.limits import Limiter
from llmproxy.model import Message, Request, TextPart
from llmproxy.providers.base import ProviderConfig
from llmproxy.runtime import ApiKeyInfo, Route, Runtime, UserLimits
from llmproxy.state import StateStore
from llmproxy.stores import create_store


def _key() -> ApiKeyInfo:
    user = UserLimits(id=1, rpm=10**9, tpm=10**12, max_parallel=10**6, budget_usd=10**9, budget_period="monthly")
    return ApiKeyInfo(key_hash="h", prefix="sk-llmp-bench", id=1, user_id=1, rpm=10**9, tpm=10**12,
                      max_parallel=10**6, budget_usd=10**9, budget_period="monthly", user=user)  # fmt: skip


async def _sequential(limiter: Limiter, key: ApiKeyInfo, n: int, hot: list[float] | None = None) -> list[float]:
    """Wall µs per reserve + settle; ``hot`` gets (wall µs, client CPU µs) of each reserve alone,
    which is what the request waits for (settling runs after the reply)."""
    samples = []
    for _ in range(n):
        rid = uuid.uuid4().hex
        t, c = time.perf_counter(), time.process_time()
        res = await limiter.reserve(key, tokens=100, cost=0.001, request_id=rid)
        if hot is not None:
            hot.append((time.perf_counter() - t) * 1e6)
            hot.append((time.process_time() - c) * 1e6)
        await limiter.settle(res, tokens=120, cost=0.0009)
        samples.append((time.perf_counter() - t) * 1e6)
    return samples


async def _concurrent(limiter: Limiter, key: ApiKeyInfo, n: int, width: int = 64) -> tuple[float, float]:
    async def worker(count: int) -> None:
        for _ in range(count):
            res = await limiter.reserve(key, tokens=100, cost=0.001, request_id=uuid.uuid4().hex)
            await limiter.settle(res, tokens=120, cost=0.0009)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(n // width) for _ in range(width)))
    done = (n // width) * width
    return (time.perf_counter() - wall) / done * 1e6, (time.process_time() - cpu) / done * 1e6


async def _ping_us(url: str, n: int = 2000) -> dict[str, float]:
    """Bare round trips to the same Redis, p50 µs: what any call costs before a script runs.

    ``blocking``: one socket, send then recv, no event loop (the kernel's and Redis's share,
    the floor for any client on this machine); ``loop``: the limiter's own pipelined client
    on the event loop (adds the wake-up and the future); ``redis_py``: redis-py's asyncio
    client, which the limiter used before ``llmproxy/_resp.py``.
    """
    import socket
    from urllib.parse import urlsplit

    import redis.asyncio as aredis

    from llmproxy._resp import RespClient

    def p50(samples: list[float]) -> float:
        return round(statistics.median(samples) * 1e6, 1)

    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    blocking = []
    for _ in range(n):
        t = time.perf_counter()
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        sock.recv(64)
        blocking.append(time.perf_counter() - t)
    sock.close()
    resp, loop = RespClient(url), []
    await resp.call("PING")
    for _ in range(n):
        t = time.perf_counter()
        await resp.call("PING")
        loop.append(time.perf_counter() - t)
    resp.close()
    client, redis_py = aredis.Redis.from_url(url), []
    await client.ping()
    for _ in range(n):
        t = time.perf_counter()
        await client.ping()
        redis_py.append(time.perf_counter() - t)
    await client.aclose()
    return {"blocking": p50(blocking), "loop": p50(loop), "redis_py": p50(redis_py)}


def _evalsha_stats(url: str) -> tuple[int, int, int]:
    """(scripts run, µs inside them, other commands run: what the scripts call) on the whole server."""
    import redis

    info = redis.Redis.from_url(url).info("commandstats")
    stats = info.get("cmdstat_evalsha", {})
    skip = ("cmdstat_evalsha", "cmdstat_info", "cmdstat_ping", "cmdstat_script")
    inner = sum(int(v.get("calls", 0)) for k, v in info.items() if k not in skip)
    return int(stats.get("calls", 0)), int(stats.get("usec", 0)), inner


async def _measure(store: StateStore, n: int, url: str | None = None) -> dict[str, Any]:
    limiter, key = Limiter(store), _key()
    await _sequential(limiter, key, 200)  # warm up: connections, script cache
    before = _evalsha_stats(url) if url else (0, 0, 0)
    hot: list[float] = []
    seq = sorted(await _sequential(limiter, key, n, hot))
    after = _evalsha_stats(url) if url else (0, 0, 0)
    hot_wall, hot_cpu = sorted(hot[0::2]), sorted(hot[1::2])
    wall, cpu = await _concurrent(limiter, key, n)
    await store.aclose()
    extra: dict[str, Any] = {}
    if url:
        calls = max(1, after[0] - before[0])  # other clients' scripts on a shared server count too
        extra = {"server_us_per_script": round((after[1] - before[1]) / calls, 1),
                 # exact on a Redis of its own; other clients' commands count too on a shared one
                 "commands_per_pair": round((after[2] - before[2]) / n, 1),
                 "bare_ping_p50_us": await _ping_us(url)}  # fmt: skip
    return extra | {"reserve_p50_us": round(statistics.median(hot_wall), 1),
            "reserve_client_cpu_us": round(statistics.fmean(hot_cpu), 1),
            "p50_us": round(statistics.median(seq), 1), "p99_us": round(seq[int(len(seq) * 0.99)], 1),
            "mean_us": round(statistics.fmean(seq), 1), "in_flight_64_wall_us": round(wall, 1),
            "in_flight_64_cpu_us": round(cpu, 1)}  # fmt: skip


def _estimate_us(n: int = 2000) -> float:
    text = "Summarise the following paragraph in two sentences. " * 40  # ~ 400 tokens
    req = Request(model="gpt-4o", messages=[Message(role="user", parts=[TextPart(text)])], max_tokens=512)
    routes = Runtime.build(routes=[Route("gpt-4o", "gpt-4o", ProviderConfig(name="p", type="openai"), ())]).routes
    t = time.perf_counter()
    for _ in range(n):
        estimate(req, routes["gpt-4o"], default_output=4096)
    return (time.perf_counter() - t) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="the event loop; serve runs on uvloop whenever it is installed")  # fmt: skip
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    out: dict[str, Any] = {"memory": asyncio.run(_measure(create_store(None), args.n))}
    url = os.environ.get("REDIS_URL")
    if url:
        store = create_store(url, prefix=f"bench:{uuid.uuid4().hex}:")
        out["redis"] = asyncio.run(_measure(store, args.n, url))
        store.reset()
    out["estimate_400_tokens_us"] = round(_estimate_us(), 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
