"""Download images that a client gave by URL, for upstreams that only take inline data.

Gemini's ``fileData`` takes Files-API or ``gs://`` URIs, not web URLs, so http(s)
images are fetched here and sent as base64 ``inlineData``. ``data:`` URLs are unpacked
without a fetch. Fetches go through ``netguard`` (public addresses only, checked
redirects, a size cap); every failure is the client's 400 naming the URL and a fixed
reason, never what the fetched server answered.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

from .errors import InvalidRequest
from .http import HTTPClient
from .model import ImagePart, Request, ToolResultPart
from .netguard import DEFAULT_MAX_BYTES, FetchRefused, GuardedFetcher, ImageSettings, Lookup

__all__ = ["DEFAULT_MAX_BYTES", "ImageSettings", "inline_images"]

_ACCEPT = "image/*,application/pdf;q=0.9"
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


async def inline_images(
    req: Request,
    http: HTTPClient | None = None,
    *,
    settings: ImageSettings | None = None,
    max_bytes: int | None = None,
    lookup: Lookup | None = None,
) -> int:
    """Replace every URL image in ``req`` (messages and tool results) by inline data.

    Returns how many images were inlined. Each distinct URL is fetched once, through the
    guard of ``settings`` (default: public addresses only, 20 MB). ``http`` is not used:
    the shared client connects wherever DNS says, which the guard must not allow.
    """
    del http
    settings = settings or ImageSettings()
    if max_bytes is not None:
        settings = ImageSettings(settings.allow_private, settings.allow_hosts, max_bytes)
    unpack = [p for p in _images(req) if p.data is None and p.url and p.url.startswith("data:")]
    for p in unpack:
        _unpack_data_url(p)
    fetch = [p for p in _images(req) if p.data is None and p.url and p.url.lower().startswith(("http://", "https://"))]
    if not fetch:
        return len(unpack)
    urls = list(dict.fromkeys(p.url for p in fetch if p.url))
    gate = asyncio.Semaphore(_PARALLEL)
    async with GuardedFetcher(settings, lookup=lookup) as fetcher:

        async def one(url: str) -> tuple[bytes, str]:
            async with gate:
                try:
                    got = await fetcher.get(url, _ACCEPT)
                except FetchRefused as exc:
                    raise _refused(url, exc.reason) from None
            media_type = _media_type(got.data, got.content_type)
            if media_type is None:
                raise _refused(url, "is not an image")
            return got.data, media_type

        fetched = dict(zip(urls, await asyncio.gather(*(one(u) for u in urls)), strict=True))
    for p in fetch:
        data, media_type = fetched[p.url or ""]
        p.data, p.media_type, p.url = base64.b64encode(data).decode(), media_type, None
    return len(unpack) + len(fetch)


def _refused(url: str, reason: str) -> InvalidRequest:
    return InvalidRequest(f"image URL {_short(url)} was refused: it {reason}", param="image_url")


def _unpack_data_url(p: ImagePart) -> None:
    header, sep, data = (p.url or "").partition(",")
    if not sep or ";base64" not in header:
        raise InvalidRequest("a data: image URL must be base64 encoded", param="image_url")
    p.media_type = header[5:].split(";")[0] or p.media_type or "image/png"
    p.data, p.url = data, None


def _media_type(data: bytes, content_type: str | None) -> str | None:
    """The served type when it names an image (or PDF); for an untyped body, its signature."""
    if content_type and (content_type.startswith("image/") or content_type == "application/pdf"):
        return content_type
    if content_type not in (None, "", "application/octet-stream", "binary/octet-stream"):
        return None
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
