"""Where serve listens: ``--port`` > ``LLMPROXY_SERVER_PORT`` > config.yaml ``server`` > defaults."""

from __future__ import annotations

import os

import yaml
from django.conf import settings


def server_address() -> tuple[str, int]:
    host, port = "127.0.0.1", 8000
    path = settings.LLMPROXY.get("CONFIG")
    if path and os.path.exists(path):
        try:
            with open(path) as fh:
                data = yaml.safe_load(fh) or {}
            server = data.get("server") or {}
            host = str(server.get("host", host))
            port = int(server.get("port", port))
        except (OSError, ValueError, yaml.YAMLError):
            pass
    for prefix in ("LLMPROXY_SERVER_", "CLI_PROXY_SERVER_"):
        host = os.environ.get(prefix + "HOST", host)
        if os.environ.get(prefix + "PORT"):
            port = int(os.environ[prefix + "PORT"])
    return host, port
