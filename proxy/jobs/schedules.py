"""The periodic jobs, as django-celery-beat rows an admin can see, change and disable.

``setup_schedules`` creates the rows that are missing and leaves existing ones alone, so
an admin's change (another interval, a disabled task) survives restarts and migrations.
To stop a job, disable its row rather than deleting it: a deleted row comes back on the
next ``migrate`` or beat start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import DatabaseError, connections, transaction

log = logging.getLogger("llmproxy.jobs")


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    task: str
    every: int  # seconds
    description: str
    #: How long a run claims the job (see ``proxy.jobs.locks.claim``): a second beat's duplicate
    #: inside this window is skipped. About half the default interval.
    lock_ttl: float


SCHEDULES: tuple[Schedule, ...] = (
    Schedule("llmproxy: refresh tokens", "proxy.tasks.refresh_tokens", 300,
             "Refresh OAuth tokens that expire within 10 minutes.", 120),
    Schedule("llmproxy: health checks", "proxy.tasks.health_checks", 30,
             "Probe each credential; routing skips unhealthy ones.", 15),
    Schedule("llmproxy: usage rollups", "proxy.tasks.rollup_usage", 300,
             "Recompute the daily usage rollups for the days that got new requests.", 120),
    Schedule("llmproxy: usage retention", "proxy.tasks.purge_usage", 3600,
             "Delete raw usage rows older than LLMPROXY_USAGE_RETENTION_DAYS (rollups stay).", 1800),
    Schedule("llmproxy: budget periods", "proxy.tasks.advance_budget_periods", 60,
             "Start a new budget period for keys whose daily/weekly/monthly period ended.", 30),
)  # fmt: skip

BY_TASK = {s.task: s for s in SCHEDULES}
_ADVISORY_LOCK = 0x11A9_5C4E  # any constant; serialises concurrent setups on PostgreSQL


def lock_ttl(task: str) -> float:
    return BY_TASK[task].lock_ttl


def setup_schedules(using: str = "default") -> int:
    """Create the missing schedule rows; return how many were created. Safe to call concurrently."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    created = 0
    try:
        with transaction.atomic(using=using):
            if connections[using].vendor == "postgresql":
                with connections[using].cursor() as cur:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK])
            existing = set(PeriodicTask.objects.using(using).values_list("name", flat=True))
            for s in SCHEDULES:
                if s.name in existing:
                    continue
                interval = (
                    IntervalSchedule.objects.using(using)
                    .filter(every=s.every, period=IntervalSchedule.SECONDS)
                    .order_by("id")
                    .first()
                ) or IntervalSchedule.objects.using(using).create(every=s.every, period=IntervalSchedule.SECONDS)
                PeriodicTask.objects.using(using).create(
                    name=s.name, task=s.task, interval=interval, description=s.description
                )
                created += 1
    except DatabaseError:
        log.exception("could not set up the periodic job schedules")
        return 0
    if created:
        log.debug("created %d periodic job schedule(s)", created)
    return created
