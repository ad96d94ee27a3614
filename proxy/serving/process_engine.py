"""The per-process engine: the serving process's gateway, kept current by a background reloader.

``ensure_started()`` runs inside the server's event loop (ASGI lifespan, or lazily on
the first request where the server has no lifespan, as with daphne). It builds the
first snapshot, then polls the shared config version every ``RELOAD_POLL_INTERVAL``
seconds and swaps in a rebuilt snapshot when it moved. The request path only ever reads
``gateway.runtime``.

All of the engine's database work (version polls, snapshot builds) runs
on one dedicated thread: it keeps one connection per process instead of one per worker
thread, and shutdown can close that connection deterministically. ``get_engine`` registers
the gateway in ``current``, where the rest of the shell reads it.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from django.conf import settings
from django.db import connections

from llmproxy import scrub
from llmproxy.gateway import Gateway
from llmproxy.http import HTTPClient
from llmproxy.runtime import Runtime
from llmproxy.usage import UsageEvent
from proxy.configsync.accounts import make_keeper
from proxy.configsync.version import current_version
from proxy.configsync.watch import start_watcher, stop_watcher
from proxy.tasks import request_refresh

from . import current, heap, live_feed
from .process_counters import CounterFile, Counts, counters_dir
from .snapshot import build_runtime
from .state import make_response_store, make_state_store
from .usage_journal import make_writer

log = logging.getLogger("llmproxy.engine")
#: ``logging.request_log``: one line per LLM request (the site's LOGGING turns it on or off).
requests_log = logging.getLogger("llmproxy.requests")
#: The /metrics family of ``Limiter.store_errors`` (labels: kind, outcome).
STORE_ERRORS = "llmproxy_limits_store_errors_total"
_T = TypeVar("_T")
#: Called (on the engine's database thread) after each snapshot build: the site re-reads
#: what the watched file says beyond the snapshot (logging, management access).
_reload_hooks: list[Callable[[], object]] = []


def on_reload(hook: Callable[[], object]) -> None:
    """Run ``hook`` after every snapshot build of this process (once per distinct hook)."""
    if hook not in _reload_hooks:
        _reload_hooks.append(hook)


def _guarded(fn: Callable[[], _T]) -> _T:
    """Run ``fn``; after a database error drop the connection so the next call reconnects."""
    try:
        return fn()
    except Exception:
        connections.close_all()
        raise


def log_request(event: UsageEvent) -> None:
    """The ``logging.request_log`` line for one finished request (its fields also as ``extra``)."""
    fields = {"request_id": event.request_id, "ingress": event.ingress, "model": event.model,
              "status": event.status_code, "latency_ms": event.latency_ms, "stream": event.stream,
              "provider": event.provider, "key_prefix": event.key_prefix, "error_type": event.error_type}  # fmt: skip
    requests_log.info("request %s %s model=%s status=%d latency_ms=%d", event.request_id, event.ingress,
                      event.model or "-", event.status_code, event.latency_ms, extra=fields)  # fmt: skip


class Engine:
    def __init__(self) -> None:
        conf = settings.LLMPROXY
        self.db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmproxy-db")
        self.journal = make_writer()
        http = HTTPClient()
        self.gateway = Gateway(http=http, usage_sink=self._on_usage, store=make_state_store(),
                               refresher=request_refresh, tokens=make_keeper(http, self.run_db),
                               responses=make_response_store())  # fmt: skip
        self.poll_interval = conf["RELOAD_POLL_INTERVAL"]
        self._started: asyncio.Future[None] | None = None
        self._reloader: asyncio.Task[None] | None = None
        #: This process's own counters, written for /metrics' node-wide view (process_counters).
        self.counters = CounterFile(counters_dir(), self.process_counts)
        self._counters_task: asyncio.Task[None] | None = None
        atexit.register(self.journal.close)
        atexit.register(self.counters.flush_logged)

    def process_counts(self) -> Counts:
        """The counters only this process knows, by /metrics family name."""
        return {STORE_ERRORS: {key: n for key, n in self.gateway.limiter.store_errors.items()}}

    def _on_usage(self, event: UsageEvent) -> None:
        # Called before the response's last byte: the record is on disk (page cache) before
        # the client can see the response complete. Metrics are counted by the ingester.
        self.journal.append(event)
        live_feed.publish(event)
        if requests_log.isEnabledFor(logging.INFO):
            log_request(event)

    async def run_db(self, fn: Callable[[], _T]) -> _T:
        """Run blocking database work on the engine's database thread."""
        return await asyncio.get_running_loop().run_in_executor(self.db, _guarded, fn)

    async def ensure_started(self) -> None:
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            try:
                await self.reload(force=True)
                scrub.guard_handlers()  # whatever handlers the server set up scrub too
                start_watcher()  # returns at once; only one process holds the lease and applies
                self._reloader = asyncio.get_running_loop().create_task(self._poll())
                self._counters_task = asyncio.get_running_loop().create_task(self.counters.run())
                heap.settle()  # start-up's objects out of every later collection's way
                self._started.set_result(None)
            except BaseException as exc:
                self._started.set_exception(exc)
                self._started = None
                raise
        elif not self._started.done():
            await asyncio.shield(self._started)

    async def reload(self, *, force: bool = False) -> bool:
        def _check_and_build() -> Runtime | None:
            version = current_version()
            if not force and version == self.gateway.runtime.version:
                return None
            runtime = build_runtime(version)
            runtime.scrubber  # noqa: B018 - built here, off the event loop
            for hook in _reload_hooks:
                try:
                    hook()
                except Exception:
                    log.exception("a reload hook failed")
            return runtime

        runtime = await self.run_db(_check_and_build)
        if runtime is None:
            return False
        previous = self.gateway.runtime.version
        self.gateway.swap(runtime)
        scrub.set_active(runtime.scrubber)  # the log filter keeps this snapshot's secrets out of every line
        # The periodic forced rebuild (spend floors, each minute) keeps the version: not news.
        log.log(
            logging.DEBUG if runtime.version == previous else logging.INFO, "serving config version %s", runtime.version
        )
        return True

    async def _poll(self) -> None:
        refresh = float(settings.LLMPROXY.get("SPEND_FLOOR_REFRESH") or 60.0)
        built = time.monotonic()
        failing = ""  # the last failure logged: a database that is down is reported once, not 4x a second
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                # Rebuilt now and then without a config change too: the snapshot's spend
                # floors (from the usage records) catch up, e.g. after Redis lost its counters.
                stale = time.monotonic() - built > refresh
                if await self.reload(force=stale) or stale:
                    built = time.monotonic()
                if failing:
                    log.info("config reload works again; serving version %s", self.gateway.runtime.version)
                    failing = ""
            except Exception as exc:
                if repr(exc) != failing:
                    failing = repr(exc)
                    log.exception("config reload failed; still serving version %s", self.gateway.runtime.version)

    async def shutdown(self) -> None:
        stop_watcher()
        if self._reloader is not None:
            self._reloader.cancel()
            self._reloader = None
        if self._counters_task is not None:
            self._counters_task.cancel()  # writes the counts once more on its way out
            self._counters_task = None
        self.journal.close()  # seals this process's segment: the ingester may delete it once written
        await self.gateway.http.close()
        await self.gateway.conversations.drain()
        await self.gateway.conversations.store.aclose()
        await self.run_db(connections.close_all)
        self._started = None


_engine: Engine | None = None


def get_engine() -> Engine:
    global _engine
    if _engine is None:
        _engine = Engine()
        current.set_gateway(_engine.gateway)
    return _engine


def reset_engine() -> None:
    """Forget the process engine (tests)."""
    global _engine
    _engine = None
    current.set_gateway(None)
