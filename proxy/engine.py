"""The serving process's gateway: one per process, kept current by a background reloader.

``start()`` runs inside the server's event loop (ASGI lifespan, or lazily on the first
request where the server has no lifespan, as with daphne). It builds the first snapshot,
then polls the shared config version every ``RELOAD_POLL_INTERVAL`` seconds and swaps in
a rebuilt snapshot when it moved. The request path only ever reads ``gateway.runtime``.
"""

from __future__ import annotations

import asyncio
import atexit
import logging

from django.conf import settings
from django.db import close_old_connections

from llmproxy.gateway import Gateway
from llmproxy.http import HTTPClient

from .resilience import make_state_store, request_refresh
from .runtime import build_runtime, current_version
from .usage import UsageWriter

log = logging.getLogger("llmproxy.engine")


class Engine:
    def __init__(self) -> None:
        conf = settings.LLMPROXY
        self.writer = UsageWriter(interval=conf["USAGE_FLUSH_INTERVAL"])
        self.gateway = Gateway(
            http=HTTPClient(), usage_sink=self.writer.add, store=make_state_store(), refresher=request_refresh
        )
        self.poll_interval = conf["RELOAD_POLL_INTERVAL"]
        self._started: asyncio.Future[None] | None = None
        self._reloader: asyncio.Task[None] | None = None
        atexit.register(self.writer.flush)

    async def ensure_started(self) -> None:
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            try:
                await self.reload(force=True)
                self.writer.start()
                self._reloader = asyncio.get_running_loop().create_task(self._poll())
                self._started.set_result(None)
            except BaseException as exc:
                self._started.set_exception(exc)
                self._started = None
                raise
        else:
            await asyncio.shield(self._started)

    async def reload(self, *, force: bool = False) -> bool:
        def _check_and_build() -> object:
            close_old_connections()
            version = current_version()
            if not force and version == self.gateway.runtime.version:
                return None
            return build_runtime(version)

        runtime = await asyncio.to_thread(_check_and_build)
        if runtime is None:
            return False
        self.gateway.swap(runtime)  # type: ignore[arg-type]
        log.info("serving config version %s", self.gateway.runtime.version)
        return True

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.reload()
            except Exception:
                log.exception("config reload failed; still serving version %s", self.gateway.runtime.version)

    async def shutdown(self) -> None:
        if self._reloader is not None:
            self._reloader.cancel()
        await self.writer.stop()
        await self.gateway.http.close()
        self._started = None


_engine: Engine | None = None


def get_engine() -> Engine:
    global _engine
    if _engine is None:
        _engine = Engine()
    return _engine


def reset_engine() -> None:
    """Forget the process engine (tests)."""
    global _engine
    _engine = None
