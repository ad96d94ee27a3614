"""Which ``StateStore`` (and ``ResponseStore``) a deployment gets: Redis when a URL is given, else this process's memory.

A module of its own because the Redis store builds on ``llmproxy.state``: if ``state``
picked the store itself, the two would import each other. ``redis`` is imported only
when a URL is given, so the memory-only engine needs no Redis package.
"""

from __future__ import annotations

import os

from .responses_store import MemoryResponseStore, ResponseStore
from .state import MemoryStateStore, StateStore


def create_store(redis_url: str | None = None, *, prefix: str = "llmproxy:rt:") -> StateStore:
    """Redis when a URL is given (several processes agree), else this process's memory."""
    if redis_url:
        from ._state_redis import RedisStateStore

        return RedisStateStore(redis_url, prefix=prefix)
    return MemoryStateStore()


def create_response_store(
    redis_url: str | None = None, *, path: str | os.PathLike[str] | None = None, prefix: str = "llmproxy:resp:"
) -> ResponseStore:
    """The Responses API's stored responses: Redis when a URL is given (every process shares
    them), else this process's memory, kept in the file at ``path`` when one is given."""
    if redis_url:
        from ._responses_redis import RedisResponseStore

        return RedisResponseStore(redis_url, prefix=prefix)
    return MemoryResponseStore(path)
