"""Budget periods as the shell sees them: a key's period, from the engine's one calendar rule.

Where a daily, weekly or monthly period starts is ``llmproxy.periods`` (the limiter's
rule); the shell applies it in UTC, as it always has. ``advance_budget_periods`` (a job)
moves each key's ``period_started_at`` with ``period_start``; the portal shows a key's
spend since ``current_period_start``. Plain functions over datetimes and the key's two
fields, no queries.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils import timezone

from llmproxy.periods import start_of

from .models import ApiKey, BudgetPeriod

#: The periods that reset (``BudgetPeriod.NONE`` never does).
PERIODS = (BudgetPeriod.DAILY.value, BudgetPeriod.WEEKLY.value, BudgetPeriod.MONTHLY.value)


def period_start(period: str, at: datetime) -> datetime:
    """The calendar start (UTC) of the daily/weekly (Monday)/monthly period containing ``at``."""
    start = start_of(period, at, UTC) if period in PERIODS else None
    if start is None:
        raise ValueError(f"not a budget period: {period!r}")
    return start


def current_period_start(key: ApiKey, now: datetime | None = None) -> datetime | None:
    """When the key's current budget period began (None: it never resets and was never reset).

    The calendar start of the period (UTC), or ``period_started_at`` when a reset
    happened later than that.
    """
    now = (now or timezone.now()).astimezone(UTC)
    period = BudgetPeriod(key.budget_period)  # an unknown value is a ValueError, as everywhere
    started: datetime | None = key.period_started_at
    if period == BudgetPeriod.NONE:
        return started
    calendar = period_start(period, now)
    return max(calendar, started) if started is not None and started <= now else calendar
