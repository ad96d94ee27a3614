"""Calendar budget periods: the one definition the limiter, the jobs, the reports and the portal share.

A ``daily`` period starts at local midnight, ``weekly`` on Monday at midnight, ``monthly``
on the first of the month at midnight, all in one time zone (``LLMPROXY_TIME_ZONE``,
default UTC). ``none`` is one period that never ends. Bounds are computed from the wall
clock, never stored, so every process and machine agrees on when a budget resets and a
new period needs no job to zero anything: its counters simply have a new name.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PERIODS = ("none", "daily", "weekly", "monthly")
#: The noun a message uses: ``key budget of 5.00 USD per month reached``.
NOUNS = {"daily": "day", "weekly": "week", "monthly": "month"}


@lru_cache(maxsize=32)
def zone(name: str | None) -> tzinfo:
    """The ``tzinfo`` for an IANA name (``UTC`` when empty); ValueError for an unknown one."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _midnight(day: datetime, tz: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def start_of(period: str, at: datetime, tz: tzinfo) -> datetime | None:
    """The local start of the period containing ``at`` (None for ``none``)."""
    if period not in PERIODS:
        raise ValueError(f"not a budget period: {period!r}")
    if period == "none":
        return None
    local = at.astimezone(tz)
    if period == "daily":
        return _midnight(local, tz)
    if period == "weekly":
        return _midnight(local - timedelta(days=local.weekday()), tz)
    return datetime(local.year, local.month, 1, tzinfo=tz)


def next_start(period: str, start: datetime, tz: tzinfo) -> datetime:
    """The start of the period after the one starting at ``start`` (DST-proof: by calendar)."""
    if period == "daily":
        day = start + timedelta(days=1, hours=12)  # noon of the next day, whatever DST did
        return _midnight(day, tz)
    if period == "weekly":
        return _midnight(start + timedelta(days=7, hours=12), tz)
    if period == "monthly":
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        return datetime(year, month, 1, tzinfo=tz)
    raise ValueError(f"period {period!r} has no end")


def bounds(period: str, at: float, tz: tzinfo) -> tuple[float, float | None]:
    """``(start, end)`` as Unix times of the period containing ``at``; ``(0, None)`` for ``none``."""
    start = start_of(period, datetime.fromtimestamp(at, tz), tz)
    if start is None:
        return 0.0, None
    return start.timestamp(), next_start(period, start, tz).timestamp()


class PeriodClock:
    """``bounds`` with the current period of each kind remembered (the hot path asks often)."""

    __slots__ = ("_cache", "tz")

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self._cache: dict[str, tuple[float, float | None]] = {}

    def bounds(self, period: str, now: float) -> tuple[float, float | None]:
        hit = self._cache.get(period)
        if hit is not None and hit[0] <= now and (hit[1] is None or now < hit[1]):
            return hit
        found = bounds(period, now, self.tz)
        self._cache[period] = found
        return found
