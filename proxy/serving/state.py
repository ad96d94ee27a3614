"""Routing state seen from Django: the shared store, clearing cooldowns, budget counters.

The state itself lives in the engine's ``StateStore``: Redis when ``REDIS_URL`` is set
(every process, the admin and the Celery worker see the same), else the serving
process's memory. In the embedded profile the admin runs in that serving process, so
its actions reach the live state; a separate process (a management command, a Celery
task) only reaches it through Redis. Budget periods need no live state at all: the
counter is keyed by the period's start, and the snapshot carries the settled spend.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from llmproxy.limits import spend_key, spend_ttl
from llmproxy.providers.base import Credential as EngineCredential
from llmproxy.routing import Router
from llmproxy.state import StateStore, create_store

from .runtime import bump_config_version


def make_state_store() -> StateStore:
    """The store a new gateway should use in this deployment."""
    return create_store(settings.REDIS_URL)


def process_router() -> Router:
    """This process's router if it serves requests, else one on the shared store."""
    from . import engine

    if engine._engine is not None:
        return engine._engine.gateway.router
    return Router(make_state_store())


async def request_refresh(credential: EngineCredential) -> None:
    """The gateway's hook for an OAuth credential an upstream refused: refresh it in the worker."""
    if credential.id is None:
        return
    from .tasks import refresh_credential

    await asyncio.to_thread(refresh_credential.delay, credential.id)


def shares_state() -> bool:
    """Whether what this process sees of cooldowns is what every serving process sees."""
    from . import engine

    return bool(settings.REDIS_URL) or engine._engine is not None


def clear_cooldowns(credential_id: int | None = None) -> int:
    """End the cooldowns of one credential (every model), or of all; how many ended.

    The credential serves again at once, without a half-open trial.
    """
    path = ""
    if credential_id is not None:
        from .models import Credential

        cred = Credential.objects.select_related("provider").get(pk=credential_id)
        path = f"{cred.provider.name}/{cred.name}"
    return process_router().clear_cooldowns(path)


def reset_budget_period(key_id: int, started_at: datetime | None = None) -> datetime:
    """Start a key's new budget period now (or at ``started_at``): its spend counts from zero.

    The counter is keyed by the period start, so nothing is zeroed: the new snapshot
    (the version bump below) points every process at a fresh counter.
    """
    from accounts.models import ApiKey

    start = started_at or timezone.now()
    ApiKey.objects.filter(pk=key_id).update(period_started_at=start)
    bump_config_version()
    return start


def seed_spend(key_id: int, usd: float) -> float:
    """Raise a key's live spend counter to at least ``usd`` (e.g. the usage table's sum
    after Redis lost its data); never lowers it. Returns the counter's value."""
    from accounts.models import ApiKey

    key = ApiKey.objects.get(pk=key_id)
    started = key.period_started_at.timestamp() if key.period_started_at else None
    store = process_router().store
    return store.set_spend(spend_key(key_id, started), float(usd), spend_ttl(key.budget_period), at_least=True)
