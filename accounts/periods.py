"""Budget periods: where a key's daily, weekly or monthly period starts. The one home of that rule.

Calendar periods in UTC: a day starts at midnight, a week on Monday, a month on the 1st.
``advance_budget_periods`` (a job) moves each key's ``period_started_at`` with
``period_start``; the portal shows a key's spend since ``current_period_start``. Plain
functions over datetimes and the key's two fields, no queries.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django.utils import timezone

from .models import ApiKey, BudgetPeriod

#: The periods that reset (``BudgetPeriod.NONE`` never does).
PERIODS = (BudgetPeriod.DAILY.value, BudgetPeriod.WEEKLY.value, BudgetPeriod.MONTHLY.value)


def period_start(period: str, at: datetime) -> datetime:
    """The calendar start (UTC) of the daily/weekly (Monday)/monthly period containing ``at``."""
    midnight = datetime.combine(at.astimezone(UTC).date(), time.min, tzinfo=UTC)
    if period == BudgetPeriod.DAILY:
        return midnight
    if period == BudgetPeriod.WEEKLY:
        return midnight - timedelta(days=midnight.weekday())
    if period == BudgetPeriod.MONTHLY:
        return midnight.replace(day=1)
    raise ValueError(f"not a budget period: {period!r}")


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
