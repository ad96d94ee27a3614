"""Where serve listens: ``--port`` > environment overrides > config.yaml ``server`` > defaults."""

from __future__ import annotations

import logging
import os

from django.conf import settings

log = logging.getLogger("llmproxy.serve")


def server_address() -> tuple[str, int]:
    path = str(settings.LLMPROXY.get("CONFIG") or "")
    if path and os.path.exists(path):
        from llmproxy.config import ConfigError, load

        try:
            server = load(path).server  # applies LLMPROXY_SERVER_* / CLI_PROXY_SERVER_* overrides
            return server.host, server.port
        except ConfigError as exc:
            log.error("%s is invalid, serving on the defaults: %s", path, exc)
    host, port = "127.0.0.1", 8000
    for prefix in ("CLI_PROXY_SERVER_", "LLMPROXY_SERVER_"):
        host = os.environ.get(prefix + "HOST", host)
        if os.environ.get(prefix + "PORT"):
            port = int(os.environ[prefix + "PORT"])
    return host, port
