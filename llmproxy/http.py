"""The shared upstream HTTP client: one pooled client per process.

LLM calls (POST) go through a small HTTP/1.1 client built on asyncio protocols and
httptools' C parser: keep-alive pool per host, one write per request, body chunks handed
over as they arrive. aiohttp, which it replaced on the hot path, spent about a third of
the gateway's CPU per request on request/response objects, cookie, tracing and
payload machinery that a gateway does not use (docs/benchmarks.md). aiohttp still
serves GETs (image fetches, health probes: redirects, arbitrary hosts), connection
limits, and everything when ``LLMPROXY_HTTP_CLIENT=aiohttp`` is set or httptools is
missing. httpx's own pool is not used at all: it collapses under concurrency
(encode/httpx#3215). This module is the single place where transport errors become
``ProviderError``s.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .errors import ProviderConnectionError, ProviderProtocolError, ProviderTimeout

try:
    import httptools
except ImportError:  # pragma: no cover - uvicorn[standard] brings it
    httptools = None  # type: ignore[assignment]


@dataclass(slots=True)
class Timeouts:
    connect: float = 10.0
    # Time to the response headers (the model thinking before its first token).
    first_byte: float = 300.0
    # Longest silence between two chunks of a streamed reply.
    read: float = 300.0


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None
    stream: bool = False


@dataclass(slots=True)
class UpstreamReply:
    status: int
    headers: Mapping[str, str]
    _resp: aiohttp.ClientResponse | None = field(default=None, repr=False)
    _body: bytes | None = None
    _raw: _Response | None = field(default=None, repr=False)
    _wait: float = 300.0  # the longest silence while reading the body

    async def read(self) -> bytes:
        if self._body is None:
            if self._raw is not None:
                self._body = await self._raw.read_all(self._wait)
                return self._body
            assert self._resp is not None
            try:
                self._body = await self._resp.read()
            except TimeoutError:
                raise ProviderTimeout("upstream timed out while sending its reply") from None
            except aiohttp.ClientError as exc:
                raise ProviderConnectionError(f"upstream connection failed: {type(exc).__name__}") from None
            finally:
                self._resp.release()
        return self._body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        if self._body is not None:
            yield self._body
            return
        if self._raw is not None:
            raw, wait = self._raw, self._wait
            try:
                while (chunk := await raw.next_chunk(wait)) is not None:
                    yield chunk
            finally:
                raw.close()
            return
        assert self._resp is not None
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except TimeoutError:
            raise ProviderTimeout("upstream stream stalled") from None
        except aiohttp.ClientError as exc:
            raise ProviderConnectionError(f"upstream stream broke: {type(exc).__name__}") from None
        finally:
            self._resp.release()

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
        if self._resp is not None:
            self._resp.close()


class HTTPClient:
    """A pooled client; create one per process (inside its event loop) and share it."""

    def __init__(self, *, limit: int = 0, timeouts: Timeouts | None = None) -> None:
        self.timeouts = timeouts or Timeouts()
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float, float], aiohttp.ClientTimeout] = {}
        use_raw = os.environ.get("LLMPROXY_HTTP_CLIENT", "raw").strip().lower() != "aiohttp"
        self._pool: _Pool | None = _Pool() if use_raw and httptools is not None and limit == 0 else None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # A context made now (not aiohttp's import-time one) so both transports trust the
            # same CAs, SSL_CERT_FILE / SSL_CERT_DIR included.
            connector = aiohttp.TCPConnector(
                limit=self._limit, limit_per_host=0, ttl_dns_cache=300, ssl=ssl.create_default_context()
            )
            # No cookie jar: upstream cookies must not leak between credentials and users, and
            # filtering a jar on every request is measurable work for nothing.
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def send(self, req: UpstreamRequest, *, timeouts: Timeouts | None = None) -> UpstreamReply:
        t = timeouts or self.timeouts
        if self._pool is not None and req.method == "POST":
            target = _target(req.url)
            if target is not None:
                return await self._pool.send(target, req, t)
        session = self._get_session()
        try:
            # asyncio.timeout, not wait_for: wait_for wraps every request in a new Task.
            async with asyncio.timeout(t.connect + t.first_byte):
                resp = await session.request(
                    req.method, req.url, headers=req.headers, data=req.body, timeout=self._timeout(t, req.stream)
                )
        except TimeoutError:
            raise ProviderTimeout("upstream did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise ProviderConnectionError(f"could not reach upstream: {type(exc).__name__}") from None
        return UpstreamReply(resp.status, resp.headers, resp)

    def _timeout(self, t: Timeouts, stream: bool) -> aiohttp.ClientTimeout:
        """aiohttp's per-request timeout, built once per (timeouts, stream) rather than per request."""
        key = (t.connect, t.read if stream else t.first_byte)
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(total=None, sock_connect=key[0], sock_read=key[1])
        return timeout

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        if self._session is not None:
            await self._session.close()
            self._session = None


# -- the raw HTTP/1.1 client ------------------------------------------------------------

#: (https?, host, port, request target, Host header) for a URL, cached: URLs are few.
_Target = tuple[bool, str, int, str, str]
_targets: dict[str, _Target | None] = {}
#: Stop reading from an upstream when this much body is buffered and unread.
_HIGH_WATER = 1 << 20
#: Idle keep-alive connections older than this are closed instead of reused (servers
#: commonly drop idle ones after 60 s; reusing one they just dropped costs a retry).
_IDLE_SECONDS = 30.0
#: Idle connections kept per upstream host; a burst beyond it closes the surplus.
_MAX_IDLE = 1024


def _target(url: str) -> _Target | None:
    hit = _targets.get(url, False)
    if hit is not False:
        return hit  # type: ignore[return-value]
    parts = urlsplit(url)
    target: _Target | None = None
    if parts.scheme in ("http", "https") and parts.hostname:
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        host = parts.hostname
        hostport = f"[{host}]" if ":" in host else host
        if parts.port:
            hostport += f":{parts.port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        target = (tls, host, port, path, hostport)
    if len(_targets) > 4096:
        _targets.clear()
    _targets[url] = target
    return target


def _head(method: str, target: _Target, headers: Mapping[str, str], body: bytes | None) -> bytes:
    lines = [f"{method} {target[3]} HTTP/1.1\r\nhost: {target[4]}\r\n"]
    names = set()
    for name, value in headers.items():
        value = str(value)
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ProviderProtocolError(f"refusing to send a header with a line break ({name!r})")
        low = name.lower()
        names.add(low)
        if low not in ("host", "content-length", "transfer-encoding", "connection"):
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


class _Response:
    """One upstream response body: fed by its connection, read by the gateway."""

    __slots__ = ("_chunks", "_size", "_waiter", "conn", "done", "error", "headers", "status")

    def __init__(self, conn: _Conn) -> None:
        self.conn: _Conn | None = conn
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
        if self._size > _HIGH_WATER and self.conn is not None:
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


class _Conn(asyncio.Protocol):
    """One keep-alive connection to an upstream; one request at a time."""

    def __init__(self, pool: _Pool, key: tuple[bool, str, int]) -> None:
        self.pool, self.key = pool, key
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.resp: _Response | None = None
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
            self.head.set_exception(_Lost(self.received))
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

    def start(self, data: list[bytes]) -> tuple[asyncio.Future[None], _Response]:
        assert self.transport is not None
        self.status, self.headers, self.received, self.inflate = 0, [], 0, None
        self.head = asyncio.get_running_loop().create_future()
        self.resp = _Response(self)
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


class _Lost(ConnectionError):
    """The connection closed before the response headers; ``received`` says if anything came."""

    def __init__(self, received: int) -> None:
        super().__init__("connection lost")
        self.received = received


class _Pool:
    """Idle keep-alive connections per (tls, host, port); connections are opened on demand."""

    def __init__(self) -> None:
        self.idle: dict[tuple[bool, str, int], list[_Conn]] = {}
        self._ssl: ssl.SSLContext | None = None

    def release(self, conn: _Conn) -> None:
        now = time.monotonic()
        conn.idle_since = now
        idle = self.idle.setdefault(conn.key, [])
        # Reuse is LIFO, so the oldest idle connection sits at the bottom: retire it here
        # when it has aged out or the pile is over its cap (one per release, amortised).
        if idle and (len(idle) >= _MAX_IDLE or now - idle[0].idle_since > _IDLE_SECONDS):
            idle.pop(0).abort()
        idle.append(conn)

    def forget(self, conn: _Conn) -> None:
        idle = self.idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    def _reuse(self, key: tuple[bool, str, int]) -> _Conn | None:
        idle = self.idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < _IDLE_SECONDS:
                return conn
            conn.abort()
        return None

    async def _open(self, key: tuple[bool, str, int], t: Timeouts) -> _Conn:
        tls, host, port = key
        if tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(t.connect):
                _, conn = await loop.create_connection(lambda: _Conn(self, key), host, port,
                                                       ssl=self._ssl if tls else None)  # fmt: skip
        except TimeoutError:
            raise ProviderTimeout("could not connect to upstream in time") from None
        except (OSError, ssl.SSLError) as exc:
            raise ProviderConnectionError(f"could not reach upstream: {type(exc).__name__}") from None
        return conn

    async def send(self, target: _Target, req: UpstreamRequest, t: Timeouts) -> UpstreamReply:
        key = (target[0], target[1], target[2])
        data = [_head(req.method, target, req.headers, req.body)]
        if req.body:
            data.append(req.body)
        conn: _Conn | None = None
        try:
            async with asyncio.timeout(t.connect + t.first_byte):
                for attempt in (0, 1):
                    conn = self._reuse(key) if attempt == 0 else None
                    reused = conn is not None
                    if conn is None:
                        conn = await self._open(key, t)
                    head, resp = conn.start(data)
                    try:
                        await head
                        break
                    except _Lost as lost:
                        # A kept-alive connection the server had just closed: nothing was
                        # processed, so one retry on a fresh connection is safe.
                        if reused and not lost.received and attempt == 0:
                            continue
                        raise ProviderConnectionError("upstream closed the connection before answering") from None
        except TimeoutError:
            if conn is not None:
                conn.abort()
            raise ProviderTimeout("upstream did not answer in time") from None
        except BaseException:
            if conn is not None:
                conn.abort()
            raise
        return UpstreamReply(
            resp.status, _headers(resp.headers), _raw=resp, _wait=t.read if req.stream else t.first_byte
        )

    def close(self) -> None:
        for conns in list(self.idle.values()):
            for conn in list(conns):
                conn.abort()
        self.idle.clear()


def _headers(raw: list[tuple[bytes, bytes]]) -> Mapping[str, str]:
    from multidict import CIMultiDict

    return CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw)
