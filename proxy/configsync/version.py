"""The shared config version: bumped after every config change, polled by every process.

Every change to a config model bumps a version after commit, in a place all processes
see: Redis when ``REDIS_URL`` is set, the database row ``ConfigVersion`` always. Each
serving process polls ``current_version`` cheaply (off the request path); when it moved,
it rebuilds its snapshot (``proxy.serving.snapshot``).

"Moved" means "differs", never "grew": losing a counter (Redis flushed or restarted without
persistence, the row gone with a database flush or restore) reads as a change too, and
the row always counts, so the next change after the loss is seen at the next poll. A
missing row restarts at a random number (``fresh_start``) so that a counter lost and
bumped back within one poll cannot land on the version a process already serves.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from proxy.models import ConfigVersion

log = logging.getLogger("llmproxy.runtime")
REDIS_VERSION_KEY = "llmproxy:config_version"


_client: tuple[int, str, Any] | None = None


def _redis() -> Any:
    """One client per process (and URL): every serving process polls 4 times a second, and a
    new client per poll cost ~1.5 ms of CPU (a connection each time) on the engine's thread."""
    global _client
    url = settings.REDIS_URL
    if not url:
        return None
    if _client is None or _client[0] != os.getpid() or _client[1] != url:
        import redis

        _client = (os.getpid(), url, redis.Redis.from_url(url, socket_timeout=2))
    return _client[2]


def bump_config_version() -> None:
    """Schedule a version bump for when the current transaction commits."""
    transaction.on_commit(_bump_now)


def fresh_start() -> int:
    """Where a missing row starts counting: a random number, not 1.

    A process rebuilds when the version it reads differs from the one it serves. A counter
    that restarted from zero (the row deleted by a database flush or restore, Redis flushed
    too) and was bumped as often as before within one poll would read as the very version
    the process serves, and it would keep serving the old snapshot (a key just created
    refused) until its periodic rebuild. Starting anywhere in 2**31 makes that a one in two
    billion chance, and keeps ``row * 1e6`` within a float's exact integers for /metrics."""
    return 1 + secrets.randbelow(2**31)


def _bump_now() -> None:
    updated = ConfigVersion.objects.filter(pk=1).update(version=F("version") + 1)
    if not updated:
        _obj, created = ConfigVersion.objects.get_or_create(pk=1, defaults={"version": fresh_start()})
        if not created:
            ConfigVersion.objects.filter(pk=1).update(version=F("version") + 1)
    r = _redis()
    if r is not None:
        try:
            r.incr(REDIS_VERSION_KEY)
        except Exception:
            log.warning("could not bump the config version in Redis; processes fall back to the database")


def _row_version() -> int:
    # One plain query: the ORM's query building was most of a poll's CPU (on the engine's
    # thread, holding the GIL while requests wait).
    table = connection.ops.quote_name(ConfigVersion._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT version FROM {table} WHERE id = %s", [1])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def current_version() -> int:
    """The shared version (Redis plus database, so neither alone can hide a change)."""
    row = _row_version()
    r = _redis()
    if r is not None:
        try:
            return int(row) * 1_000_000 + int(r.get(REDIS_VERSION_KEY) or 0)
        except Exception:
            pass
    return int(row)
