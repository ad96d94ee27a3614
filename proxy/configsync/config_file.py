"""Where serve listens: ``--port`` > environment overrides > config.yaml ``server`` > defaults."""

from __future__ import annotations

import logging
import os

from django.conf import settings

log = logging.getLogger("llmproxy.serve")

DEFAULT = ("127.0.0.1", 8000)
_PREFIXES = ("CLI_PROXY_SERVER_", "LLMPROXY_SERVER_")


def server_address() -> tuple[str, int]:
    from llmproxy.config import ConfigError, load, loads

    path = str(settings.LLMPROXY.get("CONFIG") or "")
    if path and os.path.exists(path):
        try:
            server = load(path).server  # applies LLMPROXY_SERVER_* / CLI_PROXY_SERVER_* overrides
            return server.host, server.port
        except ConfigError as exc:
            log.error("%s is invalid, serving on the defaults: %s", path, exc)
    # No usable file: the same overrides, checked the same way (a bad port is named, not a traceback).
    env = {k: v for k, v in os.environ.items() if k.startswith(_PREFIXES)}
    try:
        server = loads("", "the environment", env=env).server
    except ConfigError as exc:
        log.error("serving on %s:%s: %s", *DEFAULT, exc)
        return DEFAULT
    return server.host, server.port
