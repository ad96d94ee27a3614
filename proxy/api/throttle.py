"""Failed management-key attempts, throttled per client address (``clients:`` in config.yaml).

The LLM endpoints count failures in the engine's state store (``llmproxy.throttle``); the
management API is Django, so it counts them in the shared cache (Redis when configured,
so every process counts together): at most ``clients.max_key_failures`` wrong bearer keys
per address per ``clients.key_failure_window`` (a fixed window), then 429 with
``Retry-After`` until the window ends. A valid key, or a browser session, is served
meanwhile, as on the LLM endpoints. A cache that cannot answer lets the failure through
as a plain 401.
"""

from __future__ import annotations

import logging
import math
import time

from django.core.cache import cache
from django.http import HttpRequest

from proxy.clients import client_of, client_settings

log = logging.getLogger("llmproxy.throttle")
_PREFIX = "llmproxy:mgmt-keyfail:"
__all__ = ["TooManyKeyFailures", "client_of", "client_settings", "forget_failures", "key_failed"]


class TooManyKeyFailures(Exception):
    """Raised by the bearer check; rendered as 429 with ``Retry-After`` by the API."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed API key attempts from this address; retry later")
        self.retry_after = retry_after


def forget_failures() -> None:
    """Drop every address's count (tests; an operator after a false alarm)."""
    backend = getattr(cache, "_cache", None)
    if isinstance(backend, dict):  # LocMemCache: its own keys
        for key in [k for k in backend if _PREFIX in str(k)]:
            backend.pop(key, None)
        return
    client = backend.get_client(None, write=True) if backend is not None else None
    if client is not None:
        keys = list(client.scan_iter(match=f"*{_PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)


def key_failed(request: HttpRequest, now: float | None = None) -> None:
    """Count one wrong management key from the request's address; raise once it is over its budget."""
    conf = client_settings()
    limit, window = conf.max_key_failures, max(conf.key_failure_window, 1.0)
    address = client_of(request, conf)
    if limit <= 0 or not address:
        return
    now = time.time() if now is None else now
    slot = int(now // window)
    key = f"{_PREFIX}{address}:{slot}"
    try:
        cache.add(key, 0, timeout=math.ceil(window) + 1)
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        count = 1
    except Exception:  # the cache is down: fail open
        log.warning("management key throttling skipped: the cache did not answer", exc_info=True)
        return
    if count > limit:
        if count == limit + 1:
            log.warning("client %s: too many failed management API key attempts; throttled", address)
        raise TooManyKeyFailures(max(1, math.ceil((slot + 1) * window - now)))
