"""The shared config version after its counters were lost: a new key is still served.

A serving process rebuilds its snapshot when the version it polls differs from the one it
serves (``proxy.configsync.version``). Redis flushed or restarted without persistence loses
the Redis half; a database flush or restore loses the row. Either way the next change must
still read as a change, within the reload interval and not at the minute's forced rebuild.
"""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import pytest

from proxy.configsync import version
from proxy.models import ConfigVersion
from tests import factories
from tests.fakes import FakeUpstream
from tests.fakes import openai as up

#: Well inside the minute after which a process rebuilds anyway (``SPEND_FLOOR_REFRESH``):
#: a key served by then was seen by the version poll.
SEEN_WITHIN = 5.0
LOST = ["row", *(["redis", "both"] if os.environ.get("REDIS_URL") else [])]


def lose(counter: str) -> None:
    """What a flush leaves of the counters: no row, or no Redis key, or neither."""
    if counter in ("row", "both"):
        ConfigVersion.objects.all().delete()
    if counter in ("redis", "both"):
        import redis

        redis.Redis.from_url(os.environ["REDIS_URL"]).delete(version.REDIS_VERSION_KEY)


def status(live: Any, raw: str) -> int:
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(live.url + "/v1/chat/completions", headers={"authorization": f"Bearer {raw}"}, json=body,
                      timeout=10).status_code  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("counter", LOST)
def test_a_counter_that_restarted_never_reads_as_the_version_served(counter: str) -> None:
    # Served: two changes counted in both places. Then the counters are lost and the same
    # number of changes happens before the next poll: a counter restarting from zero would
    # read exactly as before, and the process would keep its old snapshot.
    ConfigVersion.objects.update_or_create(pk=1, defaults={"version": 2})
    if os.environ.get("REDIS_URL"):
        import redis

        redis.Redis.from_url(os.environ["REDIS_URL"]).set(version.REDIS_VERSION_KEY, 2)
    served = version.current_version()
    lose(counter)
    version._bump_now()
    version._bump_now()
    assert version.current_version() != served


@pytest.mark.django_db
def test_a_missing_row_starts_anywhere_but_at_one_then_counts_up_by_one() -> None:
    starts = set()
    for _ in range(3):
        ConfigVersion.objects.all().delete()
        version._bump_now()
        starts.add(last := ConfigVersion.objects.get(pk=1).version)
    assert len(starts) == 3 and all(1 <= s <= 2**31 for s in starts)
    version._bump_now()
    assert ConfigVersion.objects.get(pk=1).version == last + 1


@pytest.mark.parametrize("counter", LOST)
def test_a_key_created_after_the_counter_was_lost_is_served_within_the_reload_interval(
    live: Any, fake: FakeUpstream, counter: str
) -> None:
    factories.provider("up", fake.url + "/v1")
    fake.default("*", lambda rec: up.completion("hi"))
    _, first = factories.api_key(factories.user("alice"))
    live.reload()
    assert status(live, first) == 200
    lose(counter)
    key, raw = factories.api_key(factories.user("bob"))  # no reload: only the version poll can see it
    # Watched in the snapshot, not by calling: refused calls would spend the address's
    # failed-key budget, shared with later tests through Redis.
    deadline = time.monotonic() + SEEN_WITHIN
    while key.key_hash not in live.engine.gateway.runtime.keys and time.monotonic() < deadline:
        time.sleep(0.02)
    assert key.key_hash in live.engine.gateway.runtime.keys, f"the new key is not served after {SEEN_WITHIN} s"
    assert status(live, raw) == 200 and status(live, first) == 200
