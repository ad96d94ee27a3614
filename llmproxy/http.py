"""The shared upstream HTTP client: one pooled client per process.

``HTTPClient.send`` picks a transport (``llmproxy._transports``) per request: LLM calls
(POST) go through the raw HTTP/1.1 client on asyncio protocols and httptools' C parser
(keep-alive pool per host, one write per request, body chunks handed over as they
arrive); aiohttp, which it replaced on the hot path, spent about a third of the
gateway's CPU per request on machinery a gateway does not use (docs/benchmarks.md).
aiohttp still serves GETs (image fetches, health probes: redirects, arbitrary hosts),
connection limits, and everything when ``LLMPROXY_HTTP_CLIENT=aiohttp`` is set or
httptools is missing. httpx's own pool is not used at all: it collapses under
concurrency (encode/httpx#3215). Both transports honour outbound proxies the same way
(``UpstreamRequest.proxy``, else ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``). The
transports are the single place where transport errors become ``ProviderError``s.
"""

from __future__ import annotations

import os

from ._transports.aio import AiohttpTransport
from ._transports.base import Timeouts, Transport, UpstreamReply, UpstreamRequest
from ._transports.proxies import ProxyResolver, mask_proxy, parse_proxy

try:
    from ._transports.raw import RawTransport
except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
    RawTransport = None  # type: ignore[assignment,misc]

__all__ = ["HTTPClient", "Timeouts", "Transport", "UpstreamReply", "UpstreamRequest", "mask_proxy", "parse_proxy"]


class HTTPClient:
    """A pooled client; create one per process (inside its event loop) and share it."""

    def __init__(self, *, limit: int = 0, timeouts: Timeouts | None = None) -> None:
        self.timeouts = timeouts or Timeouts()
        proxies = ProxyResolver()
        self._aio = AiohttpTransport(limit=limit, proxies=proxies)
        use_raw = os.environ.get("LLMPROXY_HTTP_CLIENT", "raw").strip().lower() != "aiohttp"
        self._raw: RawTransport | None = (
            RawTransport(proxies) if use_raw and RawTransport is not None and limit == 0 else None
        )

    async def send(self, req: UpstreamRequest, *, timeouts: Timeouts | None = None) -> UpstreamReply:
        if req.local is not None:
            return req.local(req)
        t = timeouts or self.timeouts
        if self._raw is not None and req.method == "POST" and self._raw.route(req.url, req.proxy) is not None:
            return await self._raw.send(req, t)
        return await self._aio.send(req, t)

    async def close(self) -> None:
        if self._raw is not None:
            await self._raw.close()
        await self._aio.close()
