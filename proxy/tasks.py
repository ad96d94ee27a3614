"""Celery tasks: thin wrappers over ``proxy.jobs``; arguments are ids and numbers, never objects.

Each periodic task first claims its job in the shared cache (``proxy.jobs.claim``); a
duplicate sent by a second beat within the claim window returns None without working.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from celery import shared_task

from . import jobs
from .schedules import lock_ttl

log = logging.getLogger("llmproxy.jobs")
T = TypeVar("T")


def _guarded(task: str, fn: Callable[[], T]) -> T | None:
    name = task.rsplit(".", 1)[-1]
    if not jobs.claim(name, lock_ttl(task)):
        log.info("%s: skipped, another run claimed it", name)
        return None
    try:
        return fn()
    except BaseException:
        jobs.release(name)
        raise


@shared_task(name="proxy.tasks.refresh_tokens", ignore_result=True)
def refresh_tokens() -> dict[str, int] | None:
    summary = _guarded("proxy.tasks.refresh_tokens", jobs.refresh_due_credentials)
    return None if summary is None else summary.as_dict()


@shared_task(name="proxy.tasks.refresh_credential", ignore_result=True)
def refresh_credential(credential_id: int) -> str:
    """Refresh one credential now (admin action, API), due or not."""
    return jobs.refresh_credential(credential_id, force=True)


@shared_task(name="proxy.tasks.health_checks", ignore_result=True)
def health_checks() -> Any:
    try:
        from proxy.health import run_health_checks  # the routing side's probe loop; imported when it runs
    except ModuleNotFoundError as exc:
        if exc.name != "proxy.health":
            raise
        _warn_once("health checks are not available in this build (no proxy.health); skipping")
        return None
    return _guarded("proxy.tasks.health_checks", run_health_checks)


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


@shared_task(name="proxy.tasks.rollup_usage", ignore_result=True)
def rollup_usage() -> list[str] | None:
    days = _guarded("proxy.tasks.rollup_usage", jobs.rollup_usage)
    return None if days is None else [d.isoformat() for d in days]


@shared_task(name="proxy.tasks.purge_usage", ignore_result=True)
def purge_usage(retention_days: int | None = None) -> int | None:
    return _guarded("proxy.tasks.purge_usage", lambda: jobs.purge_usage(days=retention_days))


@shared_task(name="proxy.tasks.advance_budget_periods", ignore_result=True)
def advance_budget_periods() -> list[int] | None:
    return _guarded("proxy.tasks.advance_budget_periods", jobs.advance_budget_periods)
