"""The pipelined RESP client of the hot path's scripts, against a scripted fake Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from llmproxy._resp import RespClient, RespError, _Incomplete, encode, parse, supported
from llmproxy._state_redis import RedisStateStore
from llmproxy.state import StoreError


def test_encode_is_one_resp_array_of_bulk_strings() -> None:
    assert (
        encode(("EVALSHA", "ab", 1, b"k", 0.5))
        == b"*5\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$1\r\nk\r\n$3\r\n0.5\r\n"
    )


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"+OK\r\n", b"OK"),
        (b":42\r\n", 42),
        (b"$3\r\nabc\r\n", b"abc"),
        (b"$-1\r\n", None),
        (b"*2\r\n$1\r\n0\r\n:1\r\n", [b"0", 1]),
        (b"*2\r\n*1\r\n:1\r\n$0\r\n\r\n", [[1], b""]),
    ],
)
def test_parse_each_reply_kind(raw: bytes, value: object) -> None:
    assert parse(raw, 0) == (value, len(raw))


def test_parse_an_error_reply_is_a_resp_error() -> None:
    value, _ = parse(b"-NOSCRIPT No matching script\r\n", 0)
    assert isinstance(value, RespError) and str(value).startswith("NOSCRIPT")


@pytest.mark.parametrize("cut", [b"$3\r\nab", b"*2\r\n:1\r\n", b":4"])
def test_parse_a_reply_cut_short_waits_for_more(cut: bytes) -> None:
    with pytest.raises(_Incomplete):
        parse(cut, 0)


def test_only_plain_redis_urls_take_the_fast_client() -> None:
    assert supported("redis://127.0.0.1:6379/9")
    assert not supported("rediss://example.com:6380/0")
    assert not supported("unix:///run/redis.sock")


Handler = Callable[[list[bytes]], bytes | None]


async def fake_redis(handler: Handler) -> tuple[asyncio.Server, int, list[list[bytes]]]:
    """A server answering each RESP command with ``handler(args)`` (None: no answer)."""
    seen: list[list[bytes]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        while data := await reader.read(65536):
            buf += data
            while True:
                try:
                    args, pos = parse(buf, 0)
                except _Incomplete:
                    break
                buf = buf[pos:]
                seen.append(args)
                reply = handler(args)
                if reply is not None:
                    writer.write(reply)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


def test_pipelined_calls_get_their_own_replies_in_order() -> None:
    async def run() -> None:
        server, port, seen = await fake_redis(lambda args: b"$%d\r\n%b\r\n" % (len(args[1]), args[1]))
        client = RespClient(f"redis://:s3cret@127.0.0.1:{port}/3")
        out = await asyncio.gather(*(client.call("ECHO", f"m{i}") for i in range(50)))
        assert out == [f"m{i}".encode() for i in range(50)]
        assert seen[0] == [b"AUTH", b"s3cret"] and seen[1] == [b"SELECT", b"3"]
        client.close()
        server.close()

    asyncio.run(run())


def test_an_error_reply_raises_and_the_connection_stays() -> None:
    async def run() -> None:
        replies = iter([b"-ERR wrong\r\n", b"+PONG\r\n"])
        server, port, _ = await fake_redis(lambda args: next(replies))
        client = RespClient(f"redis://127.0.0.1:{port}/0")
        with pytest.raises(RespError, match="ERR wrong"):
            await client.call("X")
        assert await client.call("PING") == b"PONG"
        client.close()
        server.close()

    asyncio.run(run())


def test_no_reply_in_time_fails_the_call_and_the_next_one_reconnects() -> None:
    async def run() -> None:
        answer = {"now": False}
        server, port, seen = await fake_redis(lambda args: b"+PONG\r\n" if answer["now"] else None)
        client = RespClient(f"redis://127.0.0.1:{port}/0", timeout=0.05)
        with pytest.raises(TimeoutError):
            await client.call("PING")
        answer["now"] = True
        assert await client.call("PING") == b"PONG"
        assert len(seen) == 2
        client.close()
        server.close()

    asyncio.run(run())


def test_a_store_on_an_unreachable_redis_raises_store_error() -> None:
    async def run() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        store = RedisStateStore(f"redis://127.0.0.1:{port}/0", timeout=0.2)
        with pytest.raises(StoreError, match="redis"):
            await store._run("reserve", ["k"], [1])
        await store.aclose()

    asyncio.run(run())


def test_a_store_loads_its_script_when_redis_does_not_know_it() -> None:
    async def run() -> None:
        loaded: list[bytes] = []

        def handler(args: list[bytes]) -> bytes:
            if args[0] == b"SCRIPT":
                loaded.append(args[2])
                return b"$40\r\n" + b"0" * 40 + b"\r\n"
            if args[0] == b"EVALSHA" and not loaded:
                return b"-NOSCRIPT No matching script. Please use EVAL.\r\n"
            return b":1\r\n"

        server, port, seen = await fake_redis(handler)
        store = RedisStateStore(f"redis://127.0.0.1:{port}/0", prefix="p:")
        assert await store._run("settle", ["a"], ["1"]) == 1
        assert len(loaded) == 1 and b"ZREM" in loaded[0]
        assert [a[0] for a in seen] == [b"EVALSHA", b"SCRIPT", b"EVALSHA"]
        assert seen[0][2:4] == [b"1", b"p:a"]
        await store.aclose()
        server.close()

    asyncio.run(run())
