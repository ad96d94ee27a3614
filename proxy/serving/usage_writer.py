"""Usage records written in batches off the request path, independent of Celery.

The gateway hands each ``UsageEvent`` to ``UsageWriter.add`` (a list append). A
background task flushes the buffer with one bulk insert per interval; a failed insert
keeps the rows for the next try, and shutdown flushes what is left.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal

from llmproxy.usage import UsageEvent
from proxy.models import UsageRecord

log = logging.getLogger("llmproxy.usage")
MAX_BUFFER = 200_000


def to_record(ev: UsageEvent) -> UsageRecord:
    u = ev.usage
    return UsageRecord(
        request_id=ev.request_id,
        created_at=datetime.fromtimestamp(ev.created_at, tz=UTC),
        user_id=ev.user_id,
        key_id=ev.key_id,
        key_prefix=ev.key_prefix,
        ingress=ev.ingress,
        model=ev.model[:200],
        upstream_model=ev.upstream_model[:200],
        provider=ev.provider,
        credential=ev.credential,
        stream=ev.stream,
        status_code=ev.status_code,
        error_type=ev.error_type[:64],
        prompt_tokens=u.input_tokens,
        completion_tokens=u.output_tokens,
        cached_tokens=u.cached_tokens,
        reasoning_tokens=u.reasoning_tokens,
        cost_usd=None if ev.cost_usd is None else Decimal(repr(round(ev.cost_usd, 8))),
        latency_ms=ev.latency_ms,
        ttfb_ms=ev.ttfb_ms,
        attempts=max(ev.attempts, 0),
    )


class UsageWriter:
    def __init__(
        self,
        interval: float = 1.0,
        batch_size: int = 2000,
        run: Callable[[Callable[[], int]], Awaitable[int]] | None = None,
    ) -> None:
        """``run`` executes the blocking flush off the event loop (default: a worker thread)."""
        self.interval = interval
        self._run_blocking = run or asyncio.to_thread
        self.batch_size = batch_size
        self._buffer: list[UsageEvent] = []
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None

    def add(self, event: UsageEvent) -> None:
        with self._lock:
            if len(self._buffer) >= MAX_BUFFER:
                log.error("usage buffer full; dropping the oldest record %s", self._buffer[0].request_id)
                self._buffer.pop(0)
            self._buffer.append(event)

    def pending(self) -> int:
        return len(self._buffer)

    def flush(self) -> int:
        """Write what is buffered now (synchronously; call from a thread or at exit)."""
        from django.db import connection

        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        try:
            UsageRecord.objects.bulk_create([to_record(ev) for ev in batch], batch_size=self.batch_size)
        except Exception:
            log.exception("usage flush of %d records failed; will retry", len(batch))
            connection.close()  # a broken connection must not poison the next attempt
            with self._lock:
                self._buffer[:0] = batch
            return 0
        return len(batch)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self._buffer:
                await self._run_blocking(self.flush)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        await self._run_blocking(self.flush)
