"""The raw client's HTTP/1.1 connection: an asyncio protocol on httptools' C parser.

One ``Conn`` carries one request at a time over a keep-alive connection; its
``Response`` is the body as it arrives, fed by the parser and read by the engine (with
back-pressure: reading pauses at ``HIGH_WATER`` unread bytes). The pool that owns the
connections lives in ``raw.py``.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from collections.abc import Hashable, Mapping
from typing import Any, Protocol

import httptools
from multidict import CIMultiDict

from ..errors import ProviderConnectionError, ProviderProtocolError, ProviderTimeout

#: Stop reading from an upstream when this much body is buffered and unread.
HIGH_WATER = 1 << 20


class Owner(Protocol):
    """The pool a connection returns to when its response is complete."""

    def release(self, conn: Conn) -> None: ...

    def forget(self, conn: Conn) -> None: ...


def head(method: str, target: str, hostport: str, headers: Mapping[str, str], body: bytes | None,
         proxy_auth: str | None = None) -> bytes:  # fmt: skip
    """The request head, one buffer: ``target`` is the path (or the absolute URL, to a proxy)."""
    lines = [f"{method} {target} HTTP/1.1\r\nhost: {hostport}\r\n"]
    if proxy_auth is not None:
        lines.append(f"proxy-authorization: {proxy_auth}\r\n")
    names = set()
    for name, value in headers.items():
        value = str(value)
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ProviderProtocolError(f"refusing to send a header with a line break ({name!r})")
        low = name.lower()
        names.add(low)
        if low not in ("host", "content-length", "transfer-encoding", "connection", "proxy-authorization"):
            lines.append(f"{name}: {value}\r\n")
    if "accept-encoding" not in names:
        lines.append("accept-encoding: gzip, deflate\r\n")
    if "accept" not in names:
        lines.append("accept: */*\r\n")
    if body is not None:
        lines.append(f"content-length: {len(body)}\r\n")
    lines.append("\r\n")
    text = "".join(lines)
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


class Response:
    """One upstream response body: fed by its connection, read by the gateway."""

    __slots__ = ("_chunks", "_size", "_waiter", "conn", "done", "error", "headers", "status")

    def __init__(self, conn: Conn) -> None:
        self.conn: Conn | None = conn
        # Copied from the connection when the head arrives: by the time the sender looks,
        # a finished connection may already be serving someone else's request.
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self.done = False
        self.error: Exception | None = None

    # -- fed by the connection
    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > HIGH_WATER and self.conn is not None:
            self.conn.pause()
        self._wake()

    def finish(self, error: Exception | None = None) -> None:
        if not self.done:
            self.done, self.error = True, error
            self.conn = None if error is not None else self.conn
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- read by the gateway
    async def _wait(self, seconds: float) -> None:
        # A bare call_later rather than asyncio.timeout(): this runs once per streamed chunk,
        # and the context manager's bookkeeping was ~7% of the CPU of paced streams.
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(seconds, _expire, waiter)
        try:
            await waiter
        except TimeoutError:
            self.close()
            raise ProviderTimeout("upstream went silent while sending its reply") from None
        finally:
            timer.cancel()
            self._waiter = None

    def _take(self) -> bytes:
        data = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        if self.conn is not None:
            self.conn.resume()
        return data

    async def next_chunk(self, wait: float) -> bytes | None:
        """Everything that arrived since the last call; None at the end of the body."""
        while not self._chunks:
            if self.done:
                if self.error is not None:
                    raise self.error
                return None
            await self._wait(wait)
        return self._take()

    async def read_all(self, wait: float) -> bytes:
        while not self.done:
            await self._wait(wait)
        if self.error is not None:
            raise self.error
        return self._take() if self._chunks else b""

    def close(self) -> None:
        """The reader is done with it: an unfinished response cannot leave its connection reusable."""
        if not self.done:
            self.done = True
            conn, self.conn = self.conn, None
            if conn is not None:
                conn.abort()
        self._chunks.clear()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Conn(asyncio.Protocol):
    """One keep-alive connection to an upstream; one request at a time."""

    def __init__(self, pool: Owner, key: Hashable) -> None:
        self.pool, self.key = pool, key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.resp: Response | None = None
        self.head: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = False
        self.inflate: Any = None
        self.received = 0
        self.closed = False
        self.paused = False
        self.idle_since = 0.0

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProviderProtocolError(f"upstream sent malformed HTTP: {exc}"))
            self.abort()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.head is not None and not self.head.done():
            self.head.set_exception(Lost(self.received))
        resp, self.resp = self.resp, None
        if resp is not None and not resp.done:
            if self.status and not self._framed:
                if self.inflate is not None:
                    resp.feed(self.inflate.flush())
                resp.finish()  # a body delimited by the end of the connection
            else:
                resp.finish(ProviderConnectionError("upstream closed the connection mid-reply"))

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            self.headers = []
            return
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        self._framed = False
        for name, value in self.headers:
            low = name.lower()
            if low == b"content-encoding":
                enc = value.strip().lower()
                if enc in (b"gzip", b"x-gzip", b"deflate"):
                    self.inflate = zlib.decompressobj(47)  # gzip or zlib header, detected
                elif enc not in (b"identity", b""):
                    self._fail(ProviderProtocolError(f"upstream used unsupported content-encoding {enc.decode()!r}"))
            elif low in (b"content-length", b"transfer-encoding"):
                self._framed = True
        if self.resp is not None:
            self.resp.status, self.resp.headers = status, self.headers
        if self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.inflate is not None:
            try:
                body = self.inflate.decompress(body)
            except zlib.error:
                self._fail(ProviderProtocolError("upstream sent a body that does not decompress"))
                self.abort()
                return
        if body and self.resp is not None:
            self.resp.feed(body)

    def on_message_complete(self) -> None:
        if not self.status:
            return  # the end of a 1xx interim response
        resp, self.resp = self.resp, None
        if self.inflate is not None and resp is not None:
            tail = self.inflate.flush()
            if tail:
                resp.feed(tail)
        self.inflate = None
        if resp is not None:
            resp.conn = None
            resp.finish()
        if self.keep_alive and not self.closed:
            self.resume()
            self.pool.release(self)
        else:
            self.abort()

    # -- ours
    _framed = False

    def start(self, data: list[bytes]) -> tuple[asyncio.Future[None], Response]:
        assert self.transport is not None
        self.status, self.headers, self.received, self.inflate = 0, [], 0, None
        self.head = asyncio.get_running_loop().create_future()
        self.resp = Response(self)
        self.transport.writelines(data)
        return self.head, self.resp

    def _fail(self, err: Exception) -> None:
        if self.head is not None and not self.head.done():
            self.head.set_exception(err)
        if self.resp is not None:
            self.resp.finish(err)

    def pause(self) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.abort()


class Lost(ConnectionError):
    """The connection closed before the response headers; ``received`` says if anything came."""

    def __init__(self, received: int) -> None:
        super().__init__("connection lost")
        self.received = received


def headers_of(raw: list[tuple[bytes, bytes]]) -> Mapping[str, str]:
    return CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw)
