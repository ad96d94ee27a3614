"""The live feed's sending side: each finished request, pushed to the staff watching over a WebSocket.

The usage sink calls ``publish(event)`` once per request. It never touches the database
and never waits: when someone watches, it appends a small dict to a buffer, and one
task per process sends the buffer to the channel-layer group every ``FLUSH_INTERVAL``
(so the fan-out costs a few messages a second, whatever the traffic). When nobody
watches, ``publish`` returns at once.

Who watches: a feed connected to this process counts at once. Feeds connected to
other processes only matter when the channel layer crosses processes (Redis); they
keep a short-lived mark in the shared state store, which each process reads at most
every ``CHECK_INTERVAL`` seconds, in the background. Without Redis each process's
feed shows that process's requests. The watching side (the WebSocket consumer the admin
connects to) is ``proxy.reports.live``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from llmproxy.state import StateStore
from llmproxy.usage import UsageEvent

from . import current
from .state import make_state_store

log = logging.getLogger("llmproxy.live")

PATH = "/admin/live/"
GROUP = "llmproxy-live"
FLUSH_INTERVAL = 0.2
MAX_PENDING = 500  # per flush; beyond it a burst is counted, not shown
CHECK_INTERVAL = 2.0
WATCH_KEY = "live:watching"
WATCH_TTL = 30.0


def payload(event: UsageEvent) -> dict[str, Any]:
    """What the feed shows of one request (JSON- and msgpack-safe)."""
    u = event.usage
    return {
        "request_id": event.request_id,
        "time": datetime.fromtimestamp(event.created_at, UTC).isoformat(timespec="milliseconds"),
        "user_id": event.user_id,
        "key_prefix": event.key_prefix,
        "ingress": event.ingress,
        "model": event.model,
        "provider": event.provider,
        "credential": event.credential,
        "stream": event.stream,
        "status": event.status_code,
        "error_type": event.error_type,
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "cached_tokens": u.cached_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "cost_usd": event.cost_usd,
        "latency_ms": event.latency_ms,
        "ttfb_ms": event.ttfb_ms,
        "attempts": event.attempts,
    }


class Feed:
    """This process's side of the feed: who watches, and the buffer waiting to be sent."""

    def __init__(self) -> None:
        self.local = 0  # feeds connected to this process
        self.remote = False  # the shared mark says some process has a feed
        self.checked_at = float("-inf")
        self.pending: list[dict[str, Any]] = []
        self.dropped = 0
        self._flusher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._store: StateStore | None = None

    @property
    def crosses_processes(self) -> bool:
        return bool(settings.REDIS_URL)

    def publish(self, event: UsageEvent) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on a server loop (a command, a test without one): nobody can be listening
        if not self.local and self.crosses_processes and time.monotonic() - self.checked_at >= CHECK_INTERVAL:
            self.checked_at = time.monotonic()
            self._spawn(loop, self._check())
        if not (self.local or self.remote):
            return
        if len(self.pending) >= MAX_PENDING:
            self.dropped += 1
        else:
            self.pending.append(payload(event))
        if self._flusher is None or self._flusher.done() or self._flusher.get_loop() is not loop:
            self._flusher = loop.create_task(self._flush())

    async def _flush(self) -> None:
        """Send the buffer every FLUSH_INTERVAL until it stays empty (events may arrive while sending)."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            batch, self.pending = self.pending, []
            dropped, self.dropped = self.dropped, 0
            layer = get_channel_layer()
            if not batch or layer is None:
                return
            try:
                await layer.group_send(GROUP, {"type": "usage.events", "events": batch, "dropped": dropped})
            except Exception as exc:  # a full or unreachable layer costs the feed a batch, nothing else
                log.warning("live feed: could not send %d events: %s", len(batch), exc)

    async def _check(self) -> None:
        try:
            self.remote = await self.store().get(WATCH_KEY) is not None
        except Exception as exc:
            log.debug("live feed: could not read the watch mark: %s", exc)

    async def mark_watching(self) -> None:
        """Refresh the shared mark while a feed is connected here (Redis only)."""
        while True:
            try:
                await self.store().put(WATCH_KEY, "1", WATCH_TTL)
            except Exception as exc:
                log.debug("live feed: could not write the watch mark: %s", exc)
            await asyncio.sleep(WATCH_TTL / 3)

    def store(self) -> StateStore:
        """The serving engine's store (its connections), else one of our own."""
        if self._store is None:
            served = current.gateway()
            self._store = served.router.store if served is not None else make_state_store()
        return self._store

    def _spawn(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> None:
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


FEED = Feed()


def publish(event: UsageEvent) -> None:
    """Show a finished request to the admins watching (call from the usage sink; never blocks)."""
    FEED.publish(event)
