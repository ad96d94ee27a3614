"""Budget period resets: move each key whose daily, weekly or monthly period ended to the new one.

Where a period starts is ``accounts.periods`` (the one home of that rule); this job only
moves ``period_started_at`` and rebuilds the snapshot once. Safe to run twice or in two
processes at once; ``proxy.tasks.advance_budget_periods`` runs it every minute.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from django.utils import timezone

from accounts.models import ApiKey
from accounts.periods import PERIODS, period_start
from proxy.configsync.version import bump_config_version

log = logging.getLogger("llmproxy.jobs")

#: Called with a key id when its budget period advanced. ``llmproxy.limits`` keys its spend
#: counters by (key id, period start), so a new start is already a fresh counter; add a
#: hook here for anything else that keeps per-period state.
BUDGET_RESET_HOOKS: list[Callable[[int], None]] = []


def advance_budget_periods(now: datetime | None = None) -> list[int]:
    """Move ``period_started_at`` to the current period's start for keys whose period ended.

    Keys with a period but no start yet get the current period's start. Each move is a
    conditional update (only if nobody moved it meanwhile), so two runs never reset a
    key twice. Returns the ids of keys that moved; the snapshot is rebuilt once after.
    """
    now = now or timezone.now()
    moved: list[int] = []
    keys = ApiKey.objects.filter(budget_period__in=PERIODS).values_list("id", "budget_period", "period_started_at")
    for key_id, period, started in keys:
        current = period_start(period, now)
        if started is not None and started >= current:
            continue
        if not ApiKey.objects.filter(pk=key_id, period_started_at=started).update(period_started_at=current):
            continue
        moved.append(key_id)
        if started is not None:
            for hook in list(BUDGET_RESET_HOOKS):
                try:
                    hook(key_id)
                except Exception:
                    log.exception("budget reset hook %r failed for key %s", hook, key_id)
    if moved:
        bump_config_version()
        log.info("advanced the budget period of %d key(s)", len(moved))
    return moved
