"""The aiohttp transport: GETs (image fetches, health probes: redirects, any host), pooled
requests with a connection limit, and everything when the raw transport is switched off
(``LLMPROXY_HTTP_CLIENT=aiohttp``) or httptools is missing.

Outbound proxies are aiohttp's own (``CONNECT`` for https); which proxy, if any, is the
same decision as the raw transport's (``proxies.ProxyResolver``), not aiohttp's
``trust_env``, so both transports agree and no ``.netrc`` is read.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp

from ..errors import ProviderConnectionError, ProviderTimeout
from .base import Timeouts, UpstreamReply, UpstreamRequest
from .proxies import Proxy, ProxyResolver


class AiohttpReply(UpstreamReply):
    __slots__ = ("_body", "_resp")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        super().__init__(resp.status, resp.headers)
        self._resp = resp
        self._body: bytes | None = None

    async def read(self) -> bytes:
        if self._body is None:
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
        self._resp.close()


class AiohttpTransport:
    def __init__(self, *, limit: int = 0, proxies: ProxyResolver | None = None) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float, float], aiohttp.ClientTimeout] = {}
        self.proxies = proxies or ProxyResolver()

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

    def _proxy(self, req: UpstreamRequest) -> Proxy | None:
        parts = urlsplit(req.url)
        if not parts.hostname:
            return None
        tls = parts.scheme == "https"
        try:
            port = parts.port or (443 if tls else 80)
        except ValueError:
            return None
        return self.proxies.resolve(tls, parts.hostname, port, req.proxy)

    async def send(self, req: UpstreamRequest, t: Timeouts) -> UpstreamReply:
        session = self._get_session()
        via = self._proxy(req)
        # aiohttp moves an ``Authorization`` of the proxy headers to ``Proxy-Authorization``
        # (on the request for http upstreams, on CONNECT for https ones).
        proxy_headers = {"Authorization": via.authorization} if via is not None and via.authorization else None
        try:
            # asyncio.timeout, not wait_for: wait_for wraps every request in a new Task.
            async with asyncio.timeout(t.connect + t.first_byte):
                resp = await session.request(
                    req.method, req.url, headers=req.headers, data=req.body, timeout=self._timeout(t, req.stream),
                    proxy=via.url if via is not None else None, proxy_headers=proxy_headers,
                )  # fmt: skip
        except TimeoutError:
            raise ProviderTimeout("upstream did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise ProviderConnectionError(f"could not reach upstream: {type(exc).__name__}") from None
        return AiohttpReply(resp)

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
