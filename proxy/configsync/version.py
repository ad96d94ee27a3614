"""The shared config version: bumped after every config change, polled by every process.

Every change to a config model bumps a version after commit, in a place all processes
see: Redis when ``REDIS_URL`` is set, the database row ``ConfigVersion`` always. Each
serving process polls ``current_version`` cheaply (off the request path); when it moved,
it rebuilds its snapshot (``proxy.serving.snapshot``).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F

from proxy.models import ConfigVersion

log = logging.getLogger("llmproxy.runtime")
REDIS_VERSION_KEY = "llmproxy:config_version"


def _redis() -> Any:
    url = settings.REDIS_URL
    if not url:
        return None
    import redis

    return redis.Redis.from_url(url, socket_timeout=2)


def bump_config_version() -> None:
    """Schedule a version bump for when the current transaction commits."""
    transaction.on_commit(_bump_now)


def _bump_now() -> None:
    updated = ConfigVersion.objects.filter(pk=1).update(version=F("version") + 1)
    if not updated:
        _obj, created = ConfigVersion.objects.get_or_create(pk=1, defaults={"version": 1})
        if not created:
            ConfigVersion.objects.filter(pk=1).update(version=F("version") + 1)
    r = _redis()
    if r is not None:
        try:
            r.incr(REDIS_VERSION_KEY)
        except Exception:
            log.warning("could not bump the config version in Redis; processes fall back to the database")


def current_version() -> int:
    """The shared version (Redis plus database, so neither alone can hide a change)."""
    row = ConfigVersion.objects.filter(pk=1).values_list("version", flat=True).first() or 0
    r = _redis()
    if r is not None:
        try:
            return int(row) * 1_000_000 + int(r.get(REDIS_VERSION_KEY) or 0)
        except Exception:
            pass
    return int(row)
