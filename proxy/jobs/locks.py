"""Job claims in the shared cache: a duplicate run (a second beat, a retry racing the first) is skipped.

``cache.add`` is atomic (Redis ``SET NX`` in production, shared by every process).
"""

from __future__ import annotations

import uuid

from django.core.cache import cache

LOCK_PREFIX = "llmproxy:job:"


def claim(name: str, ttl: float) -> bool:
    """Claim job ``name`` for ``ttl`` seconds; False when another run claimed it first.

    ``cache.add`` is atomic (Redis ``SET NX`` in production, shared by every process).
    A claim is kept after the run succeeds, so a duplicate sent by a second beat within
    the window is skipped; it is released when the run fails, so a retry may run.
    """
    return bool(cache.add(LOCK_PREFIX + name, uuid.uuid4().hex, timeout=max(1, int(ttl))))


def release(name: str) -> None:
    cache.delete(LOCK_PREFIX + name)
