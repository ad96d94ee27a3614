"""A small pipelined Redis client for the hot path's scripts: one connection per event loop.

redis-py's asyncio client spends most of a round trip's CPU in Python around the socket
(a pool with a condition and a timeout per checkout, command packing with an encoder call
per argument, a timeout per read): ~110 µs of client CPU for a bare ``PING`` on the bench
machine under load, more than Redis spends running a reservation script. This client
writes each command as one RESP array on one shared connection and matches replies to
callers in order (Redis answers a connection's commands in the order they came), so a
call is one ``write`` and one future. It speaks RESP2, ``redis://`` URLs only (password,
user and database included); ``rediss://`` and unix sockets stay with redis-py.

A reply that is an error comes back as ``RespError``; a connection that fails or a reply
that does not come within ``timeout`` fails every call waiting on that connection with
``ConnectionError`` and drops it; the next call connects again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit


class RespError(Exception):
    """An error reply from Redis (``-ERR ...``, ``-NOSCRIPT ...``)."""


class _Incomplete(Exception):
    pass


def supported(url: str) -> bool:
    return urlsplit(url).scheme == "redis"


def encode(args: tuple[Any, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(out)


def parse(buf: bytes, pos: int) -> tuple[Any, int]:
    """One reply from ``buf`` at ``pos``: (value, position after it); ``_Incomplete`` if cut short."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, line = buf[pos : pos + 1], buf[pos + 1 : end]
    pos = end + 2
    if kind == b"$":
        n = int(line)
        if n < 0:
            return None, pos
        if len(buf) < pos + n + 2:
            raise _Incomplete
        return buf[pos : pos + n], pos + n + 2
    if kind == b":":
        return int(line), pos
    if kind == b"+":
        return line, pos
    if kind == b"-":
        return RespError(line.decode(errors="replace")), pos
    if kind == b"*":
        n = int(line)
        if n < 0:
            return None, pos
        items = []
        for _ in range(n):
            item, pos = parse(buf, pos)
            items.append(item)
        return items, pos
    raise ValueError(f"not a RESP reply: {buf[pos - len(line) - 3 : pos][:40]!r}")


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.buf = b""
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos = 0
        try:
            while pos < len(buf):
                value, pos = parse(buf, pos)
                if not self.waiting:
                    raise ValueError("a reply nobody asked for")
                fut = self.waiting.popleft()
                if not fut.done():
                    fut.set_result(value)
        except _Incomplete:
            pass
        except ValueError as exc:
            self.fail(ConnectionError(f"redis: {exc}"))
            return
        self.buf = buf[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"redis: connection lost ({exc or 'closed'})"))

    def fail(self, exc: Exception) -> None:
        self.closed = True
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()


class RespClient:
    """Commands on one pipelined connection; ``call`` returns the reply (``RespError`` raised)."""

    def __init__(self, url: str, *, timeout: float = 1.0, connect_timeout: float = 3.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.db = int(parts.path.strip("/") or 0)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._conn: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None

    async def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            _, conn = await loop.create_connection(_Connection, self.host, self.port)
            hello: list[tuple[Any, ...]] = []
            if self.password is not None:
                hello.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
            if self.db:
                hello.append(("SELECT", self.db))
            replies = [self._send(conn, cmd) for cmd in hello]
            for reply in replies:
                value = await reply
                if isinstance(value, RespError):
                    conn.fail(ConnectionError(f"redis: {value}"))
                    raise ConnectionError(f"redis: {value}")
        self._conn = conn
        return conn

    def _send(self, conn: _Connection, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        conn.waiting.append(fut)
        assert conn.transport is not None
        conn.transport.write(encode(args))
        return fut

    async def call(self, *args: Any) -> Any:
        conn = await self._connection()
        fut = self._send(conn, args)
        timer = asyncio.get_running_loop().call_later(self.timeout, _expire, conn, fut, self.timeout)
        try:
            value = await fut
        finally:
            timer.cancel()
        if isinstance(value, RespError):
            raise value
        return value

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.fail(ConnectionError("redis: client closed"))


def _expire(conn: _Connection, fut: asyncio.Future[Any], timeout: float) -> None:
    if not fut.done():
        # The replies on this connection can no longer be matched to their callers: drop it.
        conn.fail(TimeoutError(f"redis: no reply within {timeout:g} s"))
