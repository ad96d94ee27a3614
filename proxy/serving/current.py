"""The process's current gateway: set by the serving engine, read by everyone else.

``process_engine.get_engine()`` registers the gateway it builds here; the routing state
seen from Django (``state``), the live feed and the admin read it to reach the live
cooldowns and counters of this process. A process that serves nothing (a management
command, a Celery worker) has none, and readers fall back to the shared store. This
module imports nothing of the shell, so anything may read it without an import circle.
"""

from __future__ import annotations

from llmproxy.gateway import Gateway

_gateway: Gateway | None = None


def gateway() -> Gateway | None:
    """The gateway serving requests in this process, or None."""
    return _gateway


def set_gateway(gw: Gateway | None) -> None:
    """Called by the serving engine when it is built (and with None when it is forgotten)."""
    global _gateway
    _gateway = gw
