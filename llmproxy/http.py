"""The shared upstream HTTP client: one aiohttp session per process.

httpx's own connection pool collapses under concurrency on this kind of machine
(encode/httpx#3215: 330-750 req/s, 5 s to first byte at 256 streams), so upstream I/O
goes through aiohttp directly. This module is the single place where aiohttp exceptions
become ``ProviderError``s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import aiohttp

from .errors import ProviderConnectionError, ProviderTimeout


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

    async def read(self) -> bytes:
        if self._body is None:
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
        if self._resp is not None:
            self._resp.close()


class HTTPClient:
    """A pooled client; create one per process (inside its event loop) and share it."""

    def __init__(self, *, limit: int = 0, timeouts: Timeouts | None = None) -> None:
        self.timeouts = timeouts or Timeouts()
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float, float], aiohttp.ClientTimeout] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=0, ttl_dns_cache=300)
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
        if self._session is not None:
            await self._session.close()
            self._session = None
