"""The raw transport: a keep-alive pool of HTTP/1.1 connections (``_h1.Conn``), for POSTs.

One write per request, body chunks handed over as they arrive, a stale kept-alive
connection retried once on a fresh one. Through an outbound proxy, http upstreams get
absolute-form requests on a connection to the proxy, https upstreams a ``CONNECT``
tunnel with TLS to the upstream inside it; pooled connections are keyed by upstream
and proxy, so a tunnel is reused like any connection.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

from ..errors import ProviderConnectionError, ProviderTimeout
from ._h1 import Conn, Lost, Response, head, headers_of
from .base import Timeouts, UpstreamReply, UpstreamRequest
from .proxies import Proxy, ProxyResolver

#: Idle keep-alive connections older than this are closed instead of reused (servers
#: commonly drop idle ones after 60 s; reusing one they just dropped costs a retry).
_IDLE_SECONDS = 30.0
#: Idle connections kept per upstream host; a burst beyond it closes the surplus.
_MAX_IDLE = 1024
#: (tls, host, port, proxy) -> a pool of connections.
_Key = tuple[bool, str, int, Proxy | None]


class _Route:
    """How one URL is reached (with one proxy setting): pool key, request target, Host."""

    __slots__ = ("auth", "hostport", "key", "target")

    def __init__(self, key: _Key, target: str, hostport: str, auth: str | None) -> None:
        self.key, self.target, self.hostport, self.auth = key, target, hostport, auth


class RawReply(UpstreamReply):
    __slots__ = ("_body", "_resp", "_wait")

    def __init__(self, status: int, headers: Mapping[str, str], resp: Response, wait: float) -> None:
        super().__init__(status, headers)
        self._resp = resp
        self._wait = wait  # the longest silence while reading the body
        self._body: bytes | None = None

    async def read(self) -> bytes:
        if self._body is None:
            self._body = await self._resp.read_all(self._wait)
        return self._body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        if self._body is not None:
            yield self._body
            return
        resp, wait = self._resp, self._wait
        try:
            while (chunk := await resp.next_chunk(wait)) is not None:
                yield chunk
        finally:
            resp.close()

    def close(self) -> None:
        self._resp.close()


class RawTransport:
    """Idle keep-alive connections per (tls, host, port, proxy); connections are opened on demand."""

    def __init__(self, proxies: ProxyResolver | None = None) -> None:
        self.idle: dict[_Key, list[Conn]] = {}
        self._ssl: ssl.SSLContext | None = None
        self.proxies = proxies or ProxyResolver()
        self._routes: dict[tuple[str, str | None], _Route | None] = {}

    def route(self, url: str, proxy: str | None = None) -> _Route | None:
        """How to reach ``url`` (None: not an http(s) URL this transport can send to); cached."""
        hit = self._routes.get((url, proxy), False)
        if hit is not False:
            return hit  # type: ignore[return-value]
        parts = urlsplit(url)
        found: _Route | None = None
        if parts.scheme in ("http", "https") and parts.hostname:
            tls = parts.scheme == "https"
            port = parts.port or (443 if tls else 80)
            host = parts.hostname
            hostport = f"[{host}]" if ":" in host else host
            if parts.port:
                hostport += f":{parts.port}"
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            via = self.proxies.resolve(tls, host, port, proxy)
            if via is not None and not tls:  # plain http through a proxy: absolute-form, proxy credentials
                found = _Route((tls, host, port, via), f"http://{hostport}{path}", hostport, via.authorization)
            else:
                found = _Route((tls, host, port, via), path, hostport, None)
        if len(self._routes) > 4096:
            self._routes.clear()
        self._routes[(url, proxy)] = found
        return found

    def release(self, conn: Conn) -> None:
        now = time.monotonic()
        conn.idle_since = now
        idle = self.idle.setdefault(conn.key, [])  # type: ignore[arg-type]
        # Reuse is LIFO, so the oldest idle connection sits at the bottom: retire it here
        # when it has aged out or the pile is over its cap (one per release, amortised).
        if idle and (len(idle) >= _MAX_IDLE or now - idle[0].idle_since > _IDLE_SECONDS):
            idle.pop(0).abort()
        idle.append(conn)

    def forget(self, conn: Conn) -> None:
        idle = self.idle.get(conn.key)  # type: ignore[call-overload]
        if idle and conn in idle:
            idle.remove(conn)

    def _reuse(self, key: _Key) -> Conn | None:
        idle = self.idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < _IDLE_SECONDS:
                return conn
            conn.abort()
        return None

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _open(self, key: _Key, t: Timeouts) -> Conn:
        tls, host, port, via = key
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(t.connect):
                if via is None:
                    _, conn = await loop.create_connection(lambda: Conn(self, key), host, port,
                                                           ssl=self._context() if tls else None)  # fmt: skip
                elif not tls:
                    _, conn = await loop.create_connection(lambda: Conn(self, key), via.host, via.port)
                else:
                    conn = await self._tunnel(key, via)
        except TimeoutError:
            raise ProviderTimeout("could not connect to upstream in time") from None
        except (OSError, ssl.SSLError) as exc:
            raise ProviderConnectionError(f"could not reach upstream: {type(exc).__name__}") from None
        return conn

    async def _tunnel(self, key: _Key, via: Proxy) -> Conn:
        """A ``CONNECT`` tunnel through ``via`` to the upstream, TLS to the upstream inside it."""
        _, host, port, _ = key
        loop = asyncio.get_running_loop()
        tunnel = _Tunnel(loop)
        transport, _ = await loop.create_connection(lambda: tunnel, via.host, via.port)
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = [f"CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n"]
        if via.authorization:
            lines.append(f"proxy-authorization: {via.authorization}\r\n")
        lines.append("\r\n")
        transport.write("".join(lines).encode("latin-1"))
        try:
            status = await tunnel.answered
        except BaseException:
            transport.abort()
            raise
        if status != 200:
            transport.abort()
            raise ProviderConnectionError(f"the outbound proxy refused the tunnel to {authority}: HTTP {status}")
        conn = Conn(self, key)
        tls = await loop.start_tls(transport, conn, self._context(), server_hostname=host)
        if tls is None:  # pragma: no cover - only when the transport closed meanwhile
            raise ProviderConnectionError("the outbound proxy closed the tunnel")
        conn.connection_made(tls)
        return conn

    async def send(self, req: UpstreamRequest, t: Timeouts) -> UpstreamReply:
        route = self.route(req.url, req.proxy)
        if route is None:
            raise ProviderConnectionError(f"cannot send to {req.url!r}: not an http(s) URL")
        key = route.key
        data = [head(req.method, route.target, route.hostport, req.headers, req.body, route.auth)]
        if req.body:
            data.append(req.body)
        conn: Conn | None = None
        try:
            async with asyncio.timeout(t.connect + t.first_byte):
                for attempt in (0, 1):
                    conn = self._reuse(key) if attempt == 0 else None
                    reused = conn is not None
                    if conn is None:
                        conn = await self._open(key, t)
                    answered, resp = conn.start(data)
                    try:
                        await answered
                        break
                    except Lost as lost:
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
        return RawReply(resp.status, headers_of(resp.headers), resp, t.read if req.stream else t.first_byte)

    async def close(self) -> None:
        for conns in list(self.idle.values()):
            for conn in list(conns):
                conn.abort()
        self.idle.clear()


class _Tunnel(asyncio.Protocol):
    """Reads the proxy's answer to ``CONNECT`` (its status line and headers), nothing more."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.answered: asyncio.Future[int] = loop.create_future()
        self._buf = b""

    def data_received(self, data: bytes) -> None:
        if self.answered.done():
            return
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > 65536:
                self.answered.set_exception(ProviderConnectionError("the outbound proxy sent an oversized answer"))
            return
        line = self._buf.split(b"\r\n", 1)[0].split()
        try:
            status = int(line[1]) if len(line) >= 2 and line[0].startswith(b"HTTP/") else 0
        except ValueError:
            status = 0
        self.answered.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answered.done():
            self.answered.set_exception(ProviderConnectionError("the outbound proxy closed the connection"))
