"""ASGI entry point: LLM routes to Channels consumers, everything else to Django.

The LLM path never enters Django's request cycle (no view, no middleware). The
lifespan protocol starts each process's engine (snapshot, reloader, usage writer) and
flushes usage on shutdown; servers without lifespan start it on the first request.
"""

from __future__ import annotations

import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmproxy_site.settings")
django.setup()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

from proxy.reports.live import websocket_application  # noqa: E402
from proxy.serving import routes  # noqa: E402
from proxy.serving.process_engine import get_engine, on_reload  # noqa: E402

from .logsetup import reapply  # noqa: E402

# Edits of logging: and management.allow_remote in the watched file apply on reload.
on_reload(reapply)

# The admin's and portal's CSS/JS, straight from the apps' static folders: no web server
# in front is needed, in the embedded profile or in the containers.
django_app = ASGIStaticFilesHandler(get_asgi_application())
NOT_FOUND_BODY = (
    b'{"error":{"message":"Unknown endpoint","type":"invalid_request_error","param":null,"code":"not_found"}}'
)


async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"]
    app = routes.resolve(scope["method"], path)
    if app is not None:
        await app(scope, receive, send)
    elif routes.is_llm_path(path):
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": NOT_FOUND_BODY})
    else:
        await django_app(scope, receive, send)


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await get_engine().ensure_started()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await get_engine().shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


application = ProtocolTypeRouter({"http": http_app, "lifespan": lifespan, "websocket": websocket_application})
