"""Celery tasks: thin wrappers over ``proxy.jobs``; arguments are ids and numbers, never objects.

Each periodic task first claims its job in the shared cache (``proxy.jobs.locks.claim``);
a duplicate sent by a second beat within the claim window returns None without working.
The task names (``proxy.tasks.*``) are stored in the beat schedule rows: keep them.
``request_refresh`` is how the serving gateway asks for ``refresh_credential``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from celery import shared_task

from llmproxy.providers.base import Credential as EngineCredential

from .jobs import budget_periods, rollups, token_refresh
from .jobs import health_checks as checks
from .jobs.locks import claim, release
from .jobs.schedules import lock_ttl

log = logging.getLogger("llmproxy.jobs")
T = TypeVar("T")


def _guarded(task: str, fn: Callable[[], T]) -> T | None:
    name = task.rsplit(".", 1)[-1]
    if not claim(name, lock_ttl(task)):
        log.info("%s: skipped, another run claimed it", name)
        return None
    try:
        return fn()
    except BaseException:
        release(name)
        raise


@shared_task(name="proxy.tasks.refresh_tokens", ignore_result=True)
def refresh_tokens() -> dict[str, int] | None:
    summary = _guarded("proxy.tasks.refresh_tokens", token_refresh.refresh_due_credentials)
    return None if summary is None else summary.as_dict()


@shared_task(name="proxy.tasks.refresh_credential", ignore_result=True)
def refresh_credential(credential_id: int) -> str:
    """Refresh one credential now (admin action, API), due or not."""
    return token_refresh.refresh_credential(credential_id, force=True)


async def request_refresh(credential: EngineCredential) -> None:
    """The gateway's hook for an OAuth credential an upstream refused: refresh it in the worker."""
    if credential.id is None:
        return
    await asyncio.to_thread(refresh_credential.delay, credential.id)


@shared_task(name="proxy.tasks.health_checks", ignore_result=True)
def health_checks() -> dict[str, int] | None:
    return _guarded("proxy.tasks.health_checks", checks.run_health_checks)


@shared_task(name="proxy.tasks.rollup_usage", ignore_result=True)
def rollup_usage() -> list[str] | None:
    days = _guarded("proxy.tasks.rollup_usage", rollups.rollup_usage)
    return None if days is None else [d.isoformat() for d in days]


@shared_task(name="proxy.tasks.purge_usage", ignore_result=True)
def purge_usage(retention_days: int | None = None) -> int | None:
    return _guarded("proxy.tasks.purge_usage", lambda: rollups.purge_usage(days=retention_days))


@shared_task(name="proxy.tasks.advance_budget_periods", ignore_result=True)
def advance_budget_periods() -> list[int] | None:
    return _guarded("proxy.tasks.advance_budget_periods", budget_periods.advance_budget_periods)
