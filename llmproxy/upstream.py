"""One upstream round trip, written once: send the built request, read, classify failures.

The gateway, the side endpoints, the health probes, the shell's credential test and
``Executor.execute`` all go through here, so an error status becomes the same
``ProviderError`` (with the upstream's own reset time on a 429) wherever it happens.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from ._json import loads
from .errors import ProviderError, ProviderProtocolError
from .http import HTTPClient, Timeouts, UpstreamReply, UpstreamRequest
from .resets import reset_after


class Classifier(Protocol):
    """What an executor offers for failures (``Executor.classify``)."""

    def classify(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError: ...


def failure(executor: Classifier, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
    """An error status -> the executor's error, with the reset time of a 429 when it said one."""
    err = executor.classify(status, headers, body)
    if status == 429 and err.retry_after is None:
        err.retry_after = reset_after(headers, body, time.time())
    return err


async def fetch(http: HTTPClient, req: UpstreamRequest, *, timeouts: Timeouts | None = None) -> tuple[int, bytes]:
    """Send and read, whatever the status: for callers that judge the status themselves."""
    reply = await http.send(req, timeouts=timeouts)
    return reply.status, await reply.read()


async def send(
    http: HTTPClient, executor: Classifier, req: UpstreamRequest, *, timeouts: Timeouts | None = None
) -> UpstreamReply:
    """Send ``req``; an error status is read and raised as the executor classifies it."""
    reply = await http.send(req, timeouts=timeouts)
    if reply.status >= 400:
        data = await reply.read()
        raise failure(executor, reply.status, reply.headers, data)
    return reply


def json_object(data: bytes, who: str = "") -> dict[str, Any]:
    """An upstream reply body that must be a JSON object (``who``: the provider, for the message)."""
    prefix = f"{who}: " if who else ""
    try:
        out = loads(data)
    except ValueError:
        raise ProviderProtocolError(f"{prefix}upstream reply is not JSON") from None
    if not isinstance(out, dict):
        raise ProviderProtocolError(f"{prefix}upstream reply is not a JSON object")
    return out


async def call_json(
    http: HTTPClient, executor: Classifier, req: UpstreamRequest, *, timeouts: Timeouts | None = None
) -> dict[str, Any]:
    """Send, read and parse a non-streaming call whose reply is a JSON object."""
    reply = await send(http, executor, req, timeouts=timeouts)
    return json_object(await reply.read())
