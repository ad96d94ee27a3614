"""``RedisResponseStore``: stored Responses API responses shared by every process on one Redis.

One key per response (``{prefix}r:{owner}:{id}``, the record as JSON) and one per item
(``{prefix}i:{owner}:{item id}``, the item), each with the retention as its TTL, so
Redis forgets them by itself. A save is one pipelined round trip.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio as aredis

from ._json import dumps, loads
from .responses_store import ResponseStore, StoredResponse
from .state import StoreError


class RedisResponseStore(ResponseStore):
    shared = True

    def __init__(
        self, url: str, *, prefix: str = "llmproxy:resp:", timeout: float = 2.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.url = url
        self.clock = clock
        self.prefix = prefix
        self._timeout = timeout
        self._client: aredis.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _redis(self) -> aredis.Redis:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:  # a client's connections belong to one loop
            pool = aredis.BlockingConnectionPool.from_url(self.url, max_connections=32, timeout=5 * self._timeout,
                                                          socket_timeout=self._timeout,
                                                          socket_connect_timeout=self._timeout)  # fmt: skip
            self._client, self._loop = aredis.Redis(connection_pool=pool), loop
        return self._client

    def _rkey(self, owner: str, response_id: str) -> str:
        return f"{self.prefix}r:{owner}:{response_id}"

    def _ikey(self, owner: str, item_id: str) -> str:
        return f"{self.prefix}i:{owner}:{item_id}"

    async def save(self, record: StoredResponse) -> None:
        ttl = int((record.expires_at - self.clock()) * 1000)
        if ttl <= 0:
            return
        try:
            async with self._redis().pipeline(transaction=False) as pipe:
                pipe.set(self._rkey(record.owner, record.id), dumps(record.to_dict()), px=ttl)
                for item in record.items():
                    pipe.set(self._ikey(record.owner, item["id"]), dumps(item), px=ttl)
                await pipe.execute()
        except (TimeoutError, redis.RedisError, OSError) as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from None

    async def _get(self, key: str) -> Any:
        try:
            raw = await self._redis().get(key)
        except (TimeoutError, redis.RedisError, OSError) as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from None
        return None if raw is None else loads(raw)

    async def get(self, owner: str, response_id: str) -> StoredResponse | None:
        data = await self._get(self._rkey(owner, response_id))
        if not isinstance(data, dict):
            return None
        record = StoredResponse.from_dict(data)
        return record if record.expires_at > self.clock() else None

    async def item(self, owner: str, item_id: str) -> dict[str, Any] | None:
        data = await self._get(self._ikey(owner, item_id))
        return data if isinstance(data, dict) else None

    async def delete(self, owner: str, response_id: str) -> bool:
        record = await self.get(owner, response_id)
        if record is None:
            return False
        keys = [self._rkey(owner, response_id), *(self._ikey(owner, i["id"]) for i in record.items())]
        try:
            await self._redis().delete(*keys)
        except (TimeoutError, redis.RedisError, OSError) as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from None
        return True

    async def aclose(self) -> None:
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            await client.aclose(close_connection_pool=True)
