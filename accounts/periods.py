"""Budget periods as the shell sees them: a key's period, from the engine's one calendar rule.

Where a daily, weekly or monthly period starts is ``llmproxy.periods`` (the limiter's
rule), in ``LLMPROXY_TIME_ZONE`` (``settings.LLMPROXY["TIME_ZONE"]``, default UTC). ``advance_budget_periods`` (a job)
moves each key's ``period_started_at`` with ``period_start``; the portal shows a key's
spend since ``current_period_start``. Plain functions over datetimes and the key's two
fields, no queries.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from django.conf import settings
from django.utils import timezone

from llmproxy.periods import next_start, start_of, zone

from .models import ApiKey, BudgetPeriod, User

#: The periods that reset (``BudgetPeriod.NONE`` never does).
PERIODS = (BudgetPeriod.DAILY.value, BudgetPeriod.WEEKLY.value, BudgetPeriod.MONTHLY.value)


def time_zone() -> tzinfo:
    """The zone budget periods follow (``LLMPROXY_TIME_ZONE``)."""
    return zone(settings.LLMPROXY.get("TIME_ZONE") or "UTC")


def period_start(period: str, at: datetime) -> datetime:
    """The calendar start of the daily/weekly (Monday)/monthly period containing ``at``."""
    start = start_of(period, at, time_zone()) if period in PERIODS else None
    if start is None:
        raise ValueError(f"not a budget period: {period!r}")
    return start


def period_resets_at(period: str, now: datetime | None = None) -> datetime | None:
    """When the current period of ``period`` ends and its spend starts again from zero."""
    if period not in PERIODS:
        return None
    tz = time_zone()
    return next_start(period, period_start(period, now or timezone.now()), tz).astimezone(UTC)


def current_period_start(key: ApiKey | User, now: datetime | None = None) -> datetime | None:
    """When the key's (or user's) budget period began (None: it never resets and was never reset).

    The calendar start of the period (UTC), or ``period_started_at`` when a reset
    happened later than that.
    """
    now = (now or timezone.now()).astimezone(UTC)
    period = BudgetPeriod(key.budget_period)  # an unknown value is a ValueError, as everywhere
    started: datetime | None = getattr(key, "period_started_at", None)
    if period == BudgetPeriod.NONE:
        return started
    calendar = period_start(period, now)
    return max(calendar, started) if started is not None and started <= now else calendar
