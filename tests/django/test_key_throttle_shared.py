"""Failed client-key attempts counted across processes: two throttles on the deployment's Redis.

Collected only when ``REDIS_URL`` is set (see ``conftest.py``): one process without Redis
has nothing to share, and the embedded profile must show no skipped test.
"""

from __future__ import annotations

import asyncio
import uuid

from llmproxy.throttle import AuthThrottle, ClientSettings
from proxy.serving.state import make_state_store


def test_the_failure_count_is_shared_by_processes_through_the_store() -> None:
    """Two gateways' throttles on the deployment's store: with Redis they count together."""
    conf = ClientSettings(max_key_failures=2, key_failure_window=60)
    address = f"203.0.113.{uuid.uuid4().int % 250}"

    async def run() -> list[float]:
        a, b = AuthThrottle(make_state_store()), AuthThrottle(make_state_store())
        out = [await a.failed(address, conf), await b.failed(address, conf), await a.failed(address, conf)]
        for t in (a, b):
            await t.store.aclose()
        return out

    first, second, third = asyncio.run(run())
    assert first == 0 and second == 0 and third > 0
