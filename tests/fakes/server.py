"""A scriptable HTTP server on loopback, in its own thread and event loop.

Tests queue replies per path (or a default), the server answers requests in order and
records each request (method, path, query, headers, JSON body). Replies are either a
whole body (``Reply``) or a stream of frames (``Stream``) with optional pacing, a cut
after N frames (connection dropped), or a stall.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None


@dataclass
class Stream:
    frames: list[bytes]
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "text/event-stream"})
    delay: float = 0.0  # between frames
    cut_after: int | None = None  # drop the connection after this many frames
    stall_after: int | None = None  # stop sending (keep the connection open) after N frames


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    #: For streams: "complete", or "aborted" when the client went away mid-stream.
    outcome: str = ""


Script = Reply | Stream | Callable[["Recorded"], "Reply | Stream"]


class FakeUpstream:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._queues: dict[str, deque[Script]] = {}
        self._default: dict[str, Script] = {}
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    # -- scripting ------------------------------------------------------------------
    def queue(self, path: str, *scripts: Script) -> None:
        self._queues.setdefault(path, deque()).extend(scripts)

    def default(self, path: str, script: Script) -> None:
        self._default[path] = script

    def reset(self) -> None:
        self.requests.clear()
        self._queues.clear()
        self._default.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def last(self) -> Recorded:
        return self.requests[-1]

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> FakeUpstream:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        async def _stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        fut = asyncio.run_coroutine_threadsafe(_stop(), self._loop)
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()

    def _pick(self, path: str) -> Script | None:
        for key in (path, "*"):
            q = self._queues.get(key)
            if q:
                return q.popleft()
        for key in (path, "*"):
            if key in self._default:
                return self._default[key]
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        rec = Recorded(
            request.method, request.path, dict(request.query), {k.lower(): v for k, v in request.headers.items()}, body
        )
        self.requests.append(rec)
        script = self._pick(request.path)
        if script is None:
            return web.json_response({"error": {"message": f"fake: nothing scripted for {request.path}"}}, status=599)
        if callable(script):
            script = script(rec)
        if isinstance(script, Reply):
            if script.delay:
                await asyncio.sleep(script.delay)
            data = script.raw if script.raw is not None else json.dumps(script.body).encode()
            headers = {"content-type": "application/json", **script.headers}
            return web.Response(body=data, status=script.status, headers=headers)
        resp = web.StreamResponse(status=script.status, headers=script.headers)
        await resp.prepare(request)
        try:
            for i, chunk in enumerate(script.frames):
                if script.cut_after is not None and i >= script.cut_after:
                    assert request.transport is not None
                    request.transport.close()
                    rec.outcome = "cut"
                    return resp
                if script.stall_after is not None and i >= script.stall_after:
                    await asyncio.sleep(3600)
                if script.delay and i:
                    await asyncio.sleep(script.delay)
                await resp.write(chunk)
            await resp.write_eof()
            rec.outcome = "complete"
        except (asyncio.CancelledError, ConnectionResetError):
            rec.outcome = "aborted"
            raise
        return resp
