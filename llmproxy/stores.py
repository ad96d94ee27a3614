"""Which ``StateStore`` a deployment gets: Redis when a URL is given, else this process's memory.

A module of its own because the Redis store builds on ``llmproxy.state``: if ``state``
picked the store itself, the two would import each other. ``redis`` is imported only
when a URL is given, so the memory-only engine needs no Redis package.
"""

from __future__ import annotations

from .state import MemoryStateStore, StateStore


def create_store(redis_url: str | None = None, *, prefix: str = "llmproxy:rt:") -> StateStore:
    """Redis when a URL is given (several processes agree), else this process's memory."""
    if redis_url:
        from ._state_redis import RedisStateStore

        return RedisStateStore(redis_url, prefix=prefix)
    return MemoryStateStore()
