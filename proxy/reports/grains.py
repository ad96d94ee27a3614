"""The rollups' two grains, day and hour: which tables hold each, and how a period maps to times.

The daily rollups (``UsageDaily`` and its latency, failure and credential tables, marked by
``UsageRollupDay``) cover every retained day; the hourly ones (``UsageHourly`` ...,
``UsageRollupHour``) the last few days, for the 24 h dashboard. Both are written by
``proxy.jobs.rollups`` from the same queries and read by the dashboard the same way, so one
description of a grain serves the job and the reports alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Func, IntegerField
from django.db.models.functions import TruncDate, TruncHour

from proxy.models import (
    UsageCredentialDaily,
    UsageCredentialHourly,
    UsageDaily,
    UsageErrorDaily,
    UsageErrorHourly,
    UsageHourly,
    UsageLatencyDaily,
    UsageLatencyHourly,
    UsageRollupDay,
    UsageRollupHour,
)


@dataclass(frozen=True, slots=True)
class Grain:
    """One rollup grain: its period column (``day`` or ``hour``), length and tables."""

    field: str
    step: timedelta
    totals: Any  # the model classes (their managers differ in type only)
    latency: Any
    errors: Any
    credentials: Any
    mark: Any

    def start(self, period: date | datetime) -> datetime:
        """When ``period`` (a day's date or an hour's start) begins, in UTC."""
        if isinstance(period, datetime):
            return period.astimezone(UTC)
        return datetime.combine(period, time(0), tzinfo=UTC)

    def period_of(self, at: datetime) -> date | datetime:
        """The period ``at`` falls in."""
        at = at.astimezone(UTC)
        if self.field == "day":
            return at.date()
        return at.replace(minute=0, second=0, microsecond=0)

    def trunc(self, column: str) -> Func:
        """SQL: the period of a timestamp column (UTC)."""
        return TruncDate(column, tzinfo=UTC) if self.field == "day" else TruncHour(column, tzinfo=UTC)

    def key(self, expression: Any) -> Any:
        """SQL: a period (``field`` or ``trunc``) as the charts index it: days as dates, hours as epoch seconds.

        An hour read as a number, not a ``timestamptz``, spares the 24 h page parsing
        thousands of timestamps (a quarter of its read time).
        """
        return expression if self.field == "day" else EpochSeconds(expression)

    def key_of(self, start: datetime) -> Any:
        """``key`` of the period starting at ``start``, computed in Python."""
        return start.date() if self.field == "day" else int(start.timestamp())


class EpochSeconds(Func):
    """Seconds since 1970 (UTC) of a timestamp, as an integer."""

    output_field = IntegerField()
    template = "CAST(strftime('%%%%s', %(expressions)s) AS INTEGER)"  # SQLite (% doubled for the template, then for the driver)

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return self.as_sql(compiler, connection, template="CAST(EXTRACT(EPOCH FROM %(expressions)s) AS BIGINT)",
                           **extra_context)  # fmt: skip


DAY = Grain("day", timedelta(days=1), UsageDaily, UsageLatencyDaily, UsageErrorDaily, UsageCredentialDaily,
            UsageRollupDay)  # fmt: skip
HOUR = Grain("hour", timedelta(hours=1), UsageHourly, UsageLatencyHourly, UsageErrorHourly, UsageCredentialHourly,
             UsageRollupHour)  # fmt: skip
