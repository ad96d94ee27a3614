"""Streamed text responses (CSV) that stay streamed under ASGI.

Django serves a ``StreamingHttpResponse`` over a *sync* iterator under ASGI by reading it
whole into memory first (with a warning): a 10-million-row export would sit in RAM. Under
ASGI the lines are handed over in batches by an async iterator that reads the database in
Django's sync thread; under WSGI (and the test client) the plain iterator streams as is.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse

BATCH = 1000


async def _batches(lines: Iterator[str], size: int) -> AsyncIterator[str]:
    def take() -> str:
        return "".join(itertools.islice(lines, size))

    while chunk := await sync_to_async(take, thread_sensitive=True)():
        yield chunk


def streamed(request: HttpRequest, lines: Iterator[str], content_type: str, filename: str) -> StreamingHttpResponse:
    """A download of ``lines`` that is never held whole in memory."""
    content = _batches(lines, BATCH) if isinstance(request, ASGIRequest) else lines
    response = StreamingHttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
