"""Download images that a client gave by URL, for upstreams that only take inline data.

Gemini's ``fileData`` takes Files-API or ``gs://`` URIs, not web URLs, so http(s)
images are fetched here and sent as base64 ``inlineData``. ``data:`` URLs are unpacked
without a fetch. Fetches go through the shared ``HTTPClient``; every failure is the
client's 400, naming the URL.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

from .errors import InvalidRequest, ProviderError
from .http import HTTPClient, Timeouts, UpstreamRequest
from .model import ImagePart, Request, ToolResultPart

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
_TIMEOUTS = Timeouts(connect=10.0, first_byte=30.0, read=30.0)
_PARALLEL = 4
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
          (b"GIF89a", "image/gif"), (b"%PDF-", "application/pdf"))  # fmt: skip


def _images(req: Request) -> Iterator[ImagePart]:
    for m in req.messages:
        for p in m.parts:
            if isinstance(p, ImagePart):
                yield p
            elif isinstance(p, ToolResultPart):
                yield from (c for c in p.content if isinstance(c, ImagePart))


def _short(url: str) -> str:
    return url if len(url) <= 120 else url[:117] + "..."


async def inline_images(req: Request, http: HTTPClient, *, max_bytes: int = DEFAULT_MAX_BYTES) -> int:
    """Replace every URL image in ``req`` (messages and tool results) by inline data.

    Returns how many images were inlined. Each distinct URL is fetched once.
    """
    unpack = [p for p in _images(req) if p.data is None and p.url and p.url.startswith("data:")]
    for p in unpack:
        _unpack_data_url(p)
    fetch = [p for p in _images(req) if p.data is None and p.url and p.url.lower().startswith(("http://", "https://"))]
    urls = list(dict.fromkeys(p.url for p in fetch if p.url))
    gate = asyncio.Semaphore(_PARALLEL)

    async def one(url: str) -> tuple[bytes, str | None]:
        async with gate:
            return await _fetch(http, url, max_bytes)

    fetched = dict(zip(urls, await asyncio.gather(*(one(u) for u in urls)), strict=True))
    for p in fetch:
        data, content_type = fetched[p.url or ""]
        media_type = _media_type(data, content_type, p.media_type)
        if media_type is None:
            raise InvalidRequest(f"image {_short(p.url or '')} is not an image (content-type {content_type})",
                                 param="image_url")  # fmt: skip
        p.data, p.media_type, p.url = base64.b64encode(data).decode(), media_type, None
    return len(unpack) + len(fetch)


def _unpack_data_url(p: ImagePart) -> None:
    header, sep, data = (p.url or "").partition(",")
    if not sep or ";base64" not in header:
        raise InvalidRequest("a data: image URL must be base64 encoded", param="image_url")
    p.media_type = header[5:].split(";")[0] or p.media_type or "image/png"
    p.data, p.url = data, None


async def _fetch(http: HTTPClient, url: str, max_bytes: int) -> tuple[bytes, str | None]:
    req = UpstreamRequest("GET", url, {"accept": "image/*,application/pdf;q=0.9,*/*;q=0.1"}, None, True)
    try:
        reply = await http.send(req, timeouts=_TIMEOUTS)
    except ProviderError as err:
        raise InvalidRequest(f"could not fetch image {_short(url)}: {err.message}", param="image_url") from None
    try:
        if reply.status >= 400:
            raise InvalidRequest(f"could not fetch image {_short(url)}: HTTP {reply.status}", param="image_url")
        length = reply.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_bytes:
            raise _too_large(url, max_bytes)
        buf = bytearray()
        async for chunk in reply.iter_chunks():
            buf += chunk
            if len(buf) > max_bytes:
                raise _too_large(url, max_bytes)
        content_type = reply.headers.get("content-type")
        return bytes(buf), content_type.split(";")[0].strip().lower() if content_type else None
    except ProviderError as err:
        raise InvalidRequest(f"could not fetch image {_short(url)}: {err.message}", param="image_url") from None
    finally:
        reply.close()


def _too_large(url: str, max_bytes: int) -> InvalidRequest:
    return InvalidRequest(f"image {_short(url)} is larger than {max_bytes} bytes", param="image_url")


def _media_type(data: bytes, content_type: str | None, declared: str | None) -> str | None:
    """The served type when it names an image, else the bytes' own signature."""
    if content_type and (content_type.startswith("image/") or content_type == "application/pdf"):
        return content_type
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if content_type in (None, "", "application/octet-stream", "binary/octet-stream"):
        return declared
    return None
