"""What every transport speaks: the request, the reply, the timeouts, the interface.

``UpstreamReply`` is the one reply type the engine reads (status and headers at once;
``read()`` or ``iter_chunks()`` for the body; ``close()`` when done early); each
transport subclasses it for its own connection object, so callers never ask which
transport answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


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
    #: An outbound proxy for this request (``http://[user:pass@]host:port``, the
    #: provider's ``proxy:``); None: the environment's ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``.
    proxy: str | None = None
    #: A request that answers itself in-process (the offline demo provider):
    #: ``HTTPClient.send`` returns ``local(request)`` and touches no network.
    local: Callable[[UpstreamRequest], UpstreamReply] | None = field(default=None, repr=False)


class UpstreamReply:
    """An upstream's answer. Subclasses read the body from their own connection."""

    __slots__ = ("headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str]) -> None:
        self.status = status
        self.headers = headers

    async def read(self) -> bytes:
        """The whole body (decompressed); transport failures raise ``ProviderError``."""
        raise NotImplementedError

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; the connection is released at the end."""
        raise NotImplementedError

    def close(self) -> None:
        """Give up on the rest of the body (the connection is not reused)."""


class Transport(Protocol):
    """One way of sending requests (a pool of connections behind it)."""

    async def send(self, req: UpstreamRequest, timeouts: Timeouts) -> UpstreamReply: ...

    async def close(self) -> None: ...
