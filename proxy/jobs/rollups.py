"""Usage rollups and retention: daily and hourly totals recomputed from the raw rows, old raw rows purged.

Plain functions, safe to run twice or in two processes at once; ``proxy.tasks`` wraps
them for Celery. Times are UTC. Retention only ever deletes raw rows of days whose
rollup exists, so the reports keep every day.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from proxy.models import UsageDaily, UsageRecord
from proxy.reports import grains, latency

log = logging.getLogger("llmproxy.jobs")


#: ":2": the rollups gained latency and error tables; a new key makes the first run after
#: the upgrade recompute every day that still has raw rows.
WATERMARK_KEY = "llmproxy:usage_rollup:watermark:2"
#: Rows younger than this may still be in flight (bulk inserts commit out of id order).
SETTLE = timedelta(minutes=10)
#: Hourly rollups are kept up to date this far back (the 24 h dashboard reads them) ...
HOURLY_SPAN = timedelta(days=2)
#: ... and deleted when older than this.
HOURLY_KEEP = timedelta(days=3)
_SUMS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens")
_COST_PLACES = Decimal("0.00000001")


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def rollup_day(day: date, now: datetime | None = None) -> int:
    """Recompute one day's rollup rows from the raw rows; returns how many groups it has.

    A day not over yet (today) is rolled up until ``SETTLE`` ago, and ``UsageRollupDay``
    records that time: the reports read the rows after it raw.

    Upserts every group and deletes groups that no longer exist, in one transaction, so a
    report never sees half a day and running it twice changes nothing. The day's latency
    histograms (``UsageLatencyDaily``) and failures (``UsageErrorDaily``) are replaced with it.
    """
    return rollup_period(grains.DAY, day, now)


def rollup_hour(hour: datetime, now: datetime | None = None) -> int:
    """``rollup_day`` for one hour (``hour``: its start), into the hourly tables and ``UsageRollupHour``."""
    return rollup_period(grains.HOUR, grains.HOUR.period_of(hour), now)


def rollup_period(grain: grains.Grain, period: date | datetime, now: datetime | None = None) -> int:
    """Recompute one period of ``grain`` (see ``rollup_day``); returns how many total groups it has."""
    start = grain.start(period)
    end = max(start, min(start + grain.step, (now or timezone.now()) - SETTLE))
    raw = UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end).order_by()
    at = {grain.field: period}
    groups = raw.values("user_id", "key_id", "model", "provider").annotate(
        n=Count("id"),
        n_errors=Count("id", filter=Q(status_code__gte=400)),
        cost=Sum("cost_usd"),
        **{f"sum_{f}": Sum(f) for f in _SUMS},
    )
    rows: dict[tuple[int, int, str, str], Any] = {}
    for g in groups:
        dims = (g["user_id"] or 0, g["key_id"] or 0, g["model"], g["provider"])
        row = rows.get(dims)
        if row is None:
            row = rows[dims] = grain.totals(**at, user_id=dims[0], key_id=dims[1], model=dims[2], provider=dims[3],
                                            cost_usd=Decimal(0))  # fmt: skip
        row.requests += g["n"]
        row.errors += g["n_errors"]
        row.cost_usd = (row.cost_usd + Decimal(g["cost"] or 0)).quantize(_COST_PLACES)
        for f in _SUMS:
            setattr(row, f, getattr(row, f) + (g[f"sum_{f}"] or 0))  # type: ignore[literal-required]
    latencies = [grain.latency(**at, model=g["model"], provider=g["provider"], metric=metric, bucket=g["bucket"],
                               count=g["count"], sum_ms=g["sum_ms"] or 0)
                 for metric in latency.METRICS
                 for g in latency.raw_groups(raw, metric, ("model", "provider"))]  # fmt: skip
    errors = [grain.errors(**at, **g) for g in
              raw.filter(status_code__gte=400).values("model", "provider", "status_code", "error_type")
              .annotate(count=Count("id"))]  # fmt: skip
    ok = Q(status_code__lt=400)
    credentials = [grain.credentials(**at, provider=g["provider"], credential=g["credential"], requests=g["n"],
                                     errors=g["n_errors"], cost_usd=Decimal(g["cost"] or 0).quantize(_COST_PLACES),
                                     ok_requests=g["n_ok"], ok_latency_ms=g["ok_ms"] or 0,
                                     **{f: g[f"sum_{f}"] or 0 for f in _SUMS})  # type: ignore[literal-required]
                   for g in raw.values("provider", "credential").annotate(
                       n=Count("id"), n_errors=Count("id", filter=Q(status_code__gte=400)), cost=Sum("cost_usd"),
                       n_ok=Count("id", filter=ok), ok_ms=Sum("latency_ms", filter=ok),
                       **{f"sum_{f}": Sum(f) for f in _SUMS})]  # fmt: skip
    with transaction.atomic():
        grain.mark.objects.update_or_create(**at, defaults={"rolled_until": end})
        for table, made in ((grain.credentials, credentials), (grain.latency, latencies), (grain.errors, errors)):
            table.objects.filter(**at).delete()
            table.objects.bulk_create(made, batch_size=1000)
        existing = grain.totals.objects.filter(**at).values_list("id", "user_id", "key_id", "model", "provider")
        stale = [pk for pk, *dims in existing if tuple(dims) not in rows]
        if stale:
            grain.totals.objects.filter(pk__in=stale).delete()
        if rows:
            grain.totals.objects.bulk_create(
                list(rows.values()),
                batch_size=500,
                update_conflicts=True,
                unique_fields=[grain.field, "user_id", "key_id", "model", "provider"],
                update_fields=["requests", "errors", "cost_usd", *_SUMS],
            )
    return len(rows)


def _days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _hours_between(first: datetime, last: datetime) -> list[datetime]:
    start = grains.HOUR.start(grains.HOUR.period_of(first))
    return [start + timedelta(hours=i) for i in range(int((last - start) // timedelta(hours=1)) + 1)]


def _unfinished(grain: grains.Grain, now: datetime, back: timedelta) -> set[Any]:
    """Periods rolled up while they were young that have since settled: rolled up once more, whole."""
    settled = now - SETTLE
    field = grain.field
    marks = grain.mark.objects.filter(**{f"{field}__gte": grain.period_of(settled - back),
                                         f"{field}__lt": grain.period_of(settled)})  # fmt: skip
    return {getattr(m, field) for m in marks if m.rolled_until < grain.start(getattr(m, field)) + grain.step}


def _unmarked_hours(now: datetime) -> set[datetime]:
    """Hours of the last ``HOURLY_SPAN`` without a mark (after the upgrade to hourly rollups, or a pause of the job)."""
    horizon = hourly_horizon(now)
    marked = set(grains.HOUR.mark.objects.filter(hour__gte=horizon).values_list("hour", flat=True))
    return set(_hours_between(horizon, now - SETTLE)) - {h.astimezone(UTC) for h in marked}


def _touched_hours(after_id: int, upto_id: int) -> set[datetime]:
    qs = UsageRecord.objects.filter(id__gt=after_id, id__lte=upto_id).order_by()
    found = qs.annotate(h=grains.HOUR.trunc("created_at")).values_list("h", flat=True).distinct()
    return {h.astimezone(UTC) for h in found}


def hourly_horizon(now: datetime) -> datetime:
    """The first hour the job keeps hourly rollups up to date for (``HOURLY_SPAN`` back)."""
    return grains.HOUR.start(grains.HOUR.period_of(now - HOURLY_SPAN))


def rollup_usage(now: datetime | None = None, *, retention: int | None = None) -> list[date]:
    """Recompute the daily rollups of every day that got raw rows since the last run, and the hourly ones.

    The watermark (in the cache, which is Redis in production) holds the highest row id
    of the last two runs; rows after the older one are looked at again, which catches
    rows that committed out of id order. Without a watermark (first run, cache lost)
    every day that has raw rows is recomputed. Days before the retention cutoff are only
    recomputed when they have no rollup yet: their raw rows may be partly purged.
    Hours are rolled up the same way, for the last ``HOURLY_SPAN`` only; hourly rows older
    than ``HOURLY_KEEP`` are deleted. Returns the days recomputed.
    """
    now = now or timezone.now()
    top = UsageRecord.objects.aggregate(m=Max("id"))["m"] or 0
    state = cache.get(WATERMARK_KEY)
    horizon = hourly_horizon(now)
    if isinstance(state, (list, tuple)) and len(state) == 2 and 0 <= state[0] <= state[1] <= top:
        hours = _touched_hours(int(state[0]), top)
        days = {h.date() for h in hours}
        next_state = [int(state[1]), top]
    else:
        span = UsageRecord.objects.filter(id__lte=top).aggregate(first=Min("created_at"), last=Max("created_at"))
        days, hours = set(), set()
        if span["first"] is not None:
            days = set(_days_between(span["first"].astimezone(UTC).date(), span["last"].astimezone(UTC).date()))
            hours = set(_hours_between(max(span["first"], horizon), max(span["last"], now - SETTLE)))
        settled = UsageRecord.objects.filter(id__lte=top, created_at__lt=now - SETTLE).aggregate(m=Max("id"))["m"]
        next_state = [min(settled or 0, top), top]
    days |= _unfinished(grains.DAY, now, timedelta(days=7))
    hours = {h for h in hours | _unfinished(grains.HOUR, now, HOURLY_SPAN) | _unmarked_hours(now) if h >= horizon}
    cutoff = retention_cutoff(now, retention)
    if cutoff is not None:
        old = {d for d in days if d < cutoff.date()}
        if old:
            rolled = set(UsageDaily.objects.filter(day__in=old).values_list("day", flat=True).distinct())
            days -= rolled
        hours = {h for h in hours if h >= cutoff}  # an hour is never recomputed from a part of its rows
    done = sorted(days)
    for d in done:
        rollup_day(d, now)
    for h in sorted(hours):
        rollup_hour(h, now)
    prune_hourly(now)
    cache.set(WATERMARK_KEY, next_state, timeout=None)
    return done


def prune_hourly(now: datetime) -> int:
    """Delete hourly rollups (and their marks) older than ``HOURLY_KEEP``; returns the marks deleted."""
    before = grains.HOUR.period_of(now - HOURLY_KEEP)
    g = grains.HOUR
    for table in (g.totals, g.latency, g.errors, g.credentials):
        table.objects.filter(hour__lt=before).delete()
    return int(g.mark.objects.filter(hour__lt=before).delete()[0])


# -- retention ------------------------------------------------------------------------------

DEFAULT_RETENTION_DAYS = 90


def retention_days() -> int:
    """``LLMPROXY_USAGE_RETENTION_DAYS`` (default 90); 0 or less keeps raw rows forever."""
    raw = os.environ.get("LLMPROXY_USAGE_RETENTION_DAYS")
    if raw is None:
        raw = str(getattr(settings, "LLMPROXY", {}).get("USAGE_RETENTION_DAYS", DEFAULT_RETENTION_DAYS))
    try:
        return int(raw)
    except ValueError:
        log.warning("LLMPROXY_USAGE_RETENTION_DAYS=%r is not a number; using %d", raw, DEFAULT_RETENTION_DAYS)
        return DEFAULT_RETENTION_DAYS


def retention_cutoff(now: datetime | None = None, days: int | None = None) -> datetime | None:
    """Midnight (UTC) before which raw rows go: whole days only, so a day is all there or all gone."""
    days = retention_days() if days is None else days
    if days <= 0:
        return None
    today = (now or timezone.now()).astimezone(UTC).date()
    return day_bounds(today - timedelta(days=days))[0]


def purge_usage(now: datetime | None = None, days: int | None = None, batch: int = 5000) -> int:
    """Delete raw usage rows older than the retention, after rolling them up; returns the count.

    Deletes in batches so SQLite's single writer (the usage flush) never waits long.
    """
    cutoff = retention_cutoff(now, days)
    if cutoff is None:
        return 0
    now = now or timezone.now()
    rollup_usage(now, retention=days)
    unrolled = (
        UsageRecord.objects.filter(created_at__lt=cutoff)
        .order_by()
        .annotate(d=TruncDate("created_at"))
        .values_list("d", flat=True)
        .distinct()
    )
    rolled = set(UsageDaily.objects.filter(day__lt=cutoff.date()).values_list("day", flat=True).distinct())
    for d in sorted(set(unrolled) - rolled):
        rollup_day(d)
    deleted = 0
    while True:
        ids = list(UsageRecord.objects.filter(created_at__lt=cutoff).order_by().values_list("id", flat=True)[:batch])
        if not ids:
            break
        deleted += UsageRecord.objects.filter(id__in=ids).delete()[0]
    if deleted:
        log.info("purged %d usage rows older than %s", deleted, cutoff.date())
    return deleted
