"""Bare relays: read the body, POST it upstream, return the reply. Nothing else.

They isolate the building blocks the gateway is made of (ASGI server, Channels consumer
vs plain ASGI vs a Django async view, the upstream HTTP client) so each choice can be
measured on its own; ``BENCH_RELAY`` picks the variant, ``BENCH_UPSTREAM`` the fake.

    BENCH_RELAY=asgi-aiohttp python -m bench.relays --server uvicorn --port 18200
"""

from __future__ import annotations

import argparse
import os
from typing import Any

#: variant -> (server, what it shows)
VARIANTS: dict[str, tuple[str, str]] = {
    "asgi-raw": ("uvicorn", "plain ASGI + llmproxy.http's raw HTTP/1.1 client, uvicorn (uvloop, httptools)"),
    "asgi-aiohttp": ("uvicorn", "plain ASGI + aiohttp, uvicorn (uvloop, httptools)"),
    "asgi-aiohttp-h11": ("uvicorn-h11", "plain ASGI + aiohttp, uvicorn (asyncio loop, h11)"),
    "asgi-aiohttp-granian": ("granian", "plain ASGI + aiohttp, granian"),
    "asgi-aiohttp-daphne": ("daphne", "plain ASGI + aiohttp, daphne"),
    "asgi-pyreqwest": ("uvicorn", "plain ASGI + pyreqwest (Rust reqwest/hyper client)"),
    "asgi-aiosonic": ("uvicorn", "plain ASGI + aiosonic"),
    "asgi-niquests": ("uvicorn", "plain ASGI + niquests' AsyncSession"),
    "asgi-httpx": ("uvicorn", "plain ASGI + httpx's own pool"),
    "asgi-httpx-aiohttp": ("uvicorn", "plain ASGI + httpx on an aiohttp transport"),
    "channels-aiohttp": ("uvicorn", "Channels AsyncConsumer (stock dispatch) + aiohttp"),
    "channels-lean-aiohttp": ("uvicorn", "Channels AsyncConsumer without the per-message DB hop + aiohttp"),
    "django-view-aiohttp": ("uvicorn", "Django async view (full middleware) + aiohttp"),
}

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:18001") + "/v1/chat/completions"
JSON = [(b"content-type", b"application/json")]


class Client:
    """The upstream client of the variant, created lazily inside the server's loop."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.client: Any = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self.client is None:
            self.client = self._make()
        if self.kind == "raw":
            from llmproxy.http import UpstreamRequest

            reply = await self.client.send(
                UpstreamRequest("POST", UPSTREAM, {"content-type": "application/json"}, body)
            )
            return reply.status, await reply.read()
        if self.kind == "aiohttp":
            async with self.client.post(UPSTREAM, data=body, headers={"content-type": "application/json"}) as r:
                return r.status, await r.read()
        if self.kind == "pyreqwest":
            resp = (
                await self.client.post(UPSTREAM)
                .header("content-type", "application/json")
                .body_bytes(body)
                .build()
                .send()
            )
            return resp.status, bytes(await resp.bytes())
        if self.kind == "aiosonic":
            r = await self.client.post(UPSTREAM, data=body, headers={"content-type": "application/json"})
            return r.status_code, await r.content()
        if self.kind == "niquests":
            r = await self.client.post(UPSTREAM, data=body, headers={"content-type": "application/json"})
            return r.status_code, r.content or b""
        r = await self.client.post(UPSTREAM, content=body, headers={"content-type": "application/json"})
        return r.status_code, r.content

    def _make(self) -> Any:
        if self.kind == "raw":
            from llmproxy.http import HTTPClient

            return HTTPClient()
        if self.kind == "aiohttp":
            import aiohttp

            return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        # The three below are not dependencies: run.py installs them into var/bench/clients.
        if self.kind == "pyreqwest":
            from pyreqwest.client import ClientBuilder

            return ClientBuilder().max_connections(None).build()
        if self.kind == "aiosonic":
            import aiosonic
            from aiosonic.pools import PoolConfig

            return aiosonic.HTTPClient(connector=aiosonic.TCPConnector(pool_configs={":default": PoolConfig(size=256)}))
        if self.kind == "niquests":
            import niquests

            return niquests.AsyncSession(pool_connections=4, pool_maxsize=256)
        import httpx

        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
        if self.kind == "httpx-aiohttp":
            from httpx_aiohttp import AiohttpTransport

            return httpx.AsyncClient(transport=AiohttpTransport(), limits=limits)
        return httpx.AsyncClient(limits=limits)


async def read_body(receive: Any) -> bytes:
    parts = []
    while True:
        msg = await receive()
        parts.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(parts)


def plain_app(client: Client) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        body = await read_body(receive)
        status, data = await client.post(body)
        await send({"type": "http.response.start", "status": status, "headers": JSON})
        await send({"type": "http.response.body", "body": data})

    return app


def channels_app(client: Client, lean: bool) -> Any:
    import django

    django.setup()
    from channels.consumer import AsyncConsumer
    from channels.exceptions import StopConsumer
    from channels.routing import ProtocolTypeRouter

    class Relay(AsyncConsumer):  # type: ignore[misc]
        channel_layer_alias = "__none__"

        def __init__(self) -> None:
            super().__init__()
            self.body: list[bytes] = []

        async def http_request(self, message: dict[str, Any]) -> None:
            self.body.append(message.get("body", b""))
            if message.get("more_body"):
                return
            status, data = await client.post(b"".join(self.body))
            await self.send({"type": "http.response.start", "status": status, "headers": JSON})
            await self.send({"type": "http.response.body", "body": data})

        async def http_disconnect(self, message: dict[str, Any]) -> None:
            raise StopConsumer()

    if lean:

        async def dispatch(self: Any, message: dict[str, Any]) -> None:
            await getattr(self, message["type"].replace(".", "_"))(message)

        Relay.dispatch = dispatch  # type: ignore[method-assign]
    return ProtocolTypeRouter({"http": Relay.as_asgi()})


def django_app(client: Client) -> Any:
    import django
    from django.conf import settings

    django.setup()
    settings.ROOT_URLCONF = __name__
    from django.core.asgi import get_asgi_application

    global urlpatterns, _view_client
    _view_client = client
    from django.urls import path

    urlpatterns = [path("v1/chat/completions", relay_view)]
    return get_asgi_application()


_view_client: Client | None = None
urlpatterns: list[Any] = []


async def relay_view(request: Any) -> Any:
    from django.http import HttpResponse

    assert _view_client is not None
    status, data = await _view_client.post(request.body)
    return HttpResponse(data, status=status, content_type="application/json")


relay_view.csrf_exempt = True  # type: ignore[attr-defined]


def build(variant: str) -> Any:
    transport = {"asgi-httpx": "httpx", "asgi-httpx-aiohttp": "httpx-aiohttp", "asgi-raw": "raw",
                 "asgi-pyreqwest": "pyreqwest", "asgi-aiosonic": "aiosonic", "asgi-niquests": "niquests"}.get(
        variant, "aiohttp"
    )  # fmt: skip
    client = Client(transport)
    if variant.startswith("channels"):
        return channels_app(client, lean="lean" in variant)
    if variant.startswith("django-view"):
        return django_app(client)
    return plain_app(client)


# Built where the server imports this module, not in ``python -m bench.relays`` itself.
application: Any = (
    build(os.environ["BENCH_RELAY"]) if os.environ.get("BENCH_RELAY") and __name__ != "__main__" else None
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="uvicorn")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.server == "daphne":
        from daphne.cli import CommandLineInterface

        CommandLineInterface().run(["-b", "127.0.0.1", "-p", str(args.port), "--verbosity", "0",
                                    "bench.relays:application"])  # fmt: skip
    elif args.server == "granian":
        from granian import Granian

        Granian("bench.relays:application", address="127.0.0.1", port=args.port, interface="asgi",  # type: ignore[arg-type]
                log_level="warning").serve()  # type: ignore[arg-type]  # fmt: skip
    else:
        import uvicorn

        h11 = args.server == "uvicorn-h11"
        uvicorn.run("bench.relays:application", host="127.0.0.1", port=args.port, log_level="warning",
                    access_log=False, loop="asyncio" if h11 else "uvloop", http="h11" if h11 else "httptools",
                    lifespan="off")  # fmt: skip


if __name__ == "__main__":
    main()
