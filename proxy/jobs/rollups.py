"""Usage rollups and retention: daily totals recomputed from the raw rows, old raw rows purged.

Plain functions, safe to run twice or in two processes at once; ``proxy.tasks`` wraps
them for Celery. Times are UTC. Retention only ever deletes raw rows of days whose
rollup exists, so the reports keep every day.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from proxy.models import (
    UsageCredentialDaily,
    UsageDaily,
    UsageErrorDaily,
    UsageLatencyDaily,
    UsageRecord,
    UsageRollupDay,
)
from proxy.reports import latency

log = logging.getLogger("llmproxy.jobs")


#: ":2": the rollups gained latency and error tables; a new key makes the first run after
#: the upgrade recompute every day that still has raw rows.
WATERMARK_KEY = "llmproxy:usage_rollup:watermark:2"
#: Rows younger than this may still be in flight (bulk inserts commit out of id order).
SETTLE = timedelta(minutes=10)
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
    start, end = day_bounds(day)
    end = max(start, min(end, (now or timezone.now()) - SETTLE))
    groups = (
        UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
        .order_by()
        .values("user_id", "key_id", "model", "provider")
        .annotate(
            n=Count("id"),
            n_errors=Count("id", filter=Q(status_code__gte=400)),
            cost=Sum("cost_usd"),
            **{f"sum_{f}": Sum(f) for f in _SUMS},
        )
    )
    rows: dict[tuple[int, int, str, str], UsageDaily] = {}
    for g in groups:
        dims = (g["user_id"] or 0, g["key_id"] or 0, g["model"], g["provider"])
        row = rows.get(dims)
        if row is None:
            row = rows[dims] = UsageDaily(day=day, user_id=dims[0], key_id=dims[1], model=dims[2], provider=dims[3],
                                          cost_usd=Decimal(0))  # fmt: skip
        row.requests += g["n"]
        row.errors += g["n_errors"]
        row.cost_usd = (row.cost_usd + Decimal(g["cost"] or 0)).quantize(_COST_PLACES)
        for f in _SUMS:
            setattr(row, f, getattr(row, f) + (g[f"sum_{f}"] or 0))  # type: ignore[literal-required]
    latencies = [UsageLatencyDaily(day=day, model=g["model"], provider=g["provider"], metric=metric, bucket=g["bucket"],
                                   count=g["count"], sum_ms=g["sum_ms"] or 0)
                 for metric in latency.METRICS
                 for g in latency.raw_groups(UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end),
                                             metric, ("model", "provider"))]  # fmt: skip
    errors = [UsageErrorDaily(day=day, **g) for g in
              UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end, status_code__gte=400).order_by()
              .values("model", "provider", "status_code", "error_type").annotate(count=Count("id"))]  # fmt: skip
    day_rows = UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end).order_by()
    ok = Q(status_code__lt=400)
    credentials = [UsageCredentialDaily(day=day, provider=g["provider"], credential=g["credential"], requests=g["n"],
                                        errors=g["n_errors"], cost_usd=Decimal(g["cost"] or 0).quantize(_COST_PLACES),
                                        ok_requests=g["n_ok"], ok_latency_ms=g["ok_ms"] or 0,
                                        **{f: g[f"sum_{f}"] or 0 for f in _SUMS})  # type: ignore[literal-required]
                   for g in day_rows.values("provider", "credential").annotate(
                       n=Count("id"), n_errors=Count("id", filter=Q(status_code__gte=400)), cost=Sum("cost_usd"),
                       n_ok=Count("id", filter=ok), ok_ms=Sum("latency_ms", filter=ok),
                       **{f"sum_{f}": Sum(f) for f in _SUMS})]  # fmt: skip
    with transaction.atomic():
        UsageRollupDay.objects.update_or_create(day=day, defaults={"rolled_until": end})
        UsageCredentialDaily.objects.filter(day=day).delete()
        UsageCredentialDaily.objects.bulk_create(credentials, batch_size=1000)
        UsageLatencyDaily.objects.filter(day=day).delete()
        UsageLatencyDaily.objects.bulk_create(latencies, batch_size=1000)
        UsageErrorDaily.objects.filter(day=day).delete()
        UsageErrorDaily.objects.bulk_create(errors, batch_size=1000)
        existing = UsageDaily.objects.filter(day=day).values_list("id", "user_id", "key_id", "model", "provider")
        stale = [pk for pk, *dims in existing if tuple(dims) not in rows]
        if stale:
            UsageDaily.objects.filter(pk__in=stale).delete()
        if rows:
            UsageDaily.objects.bulk_create(
                list(rows.values()),
                batch_size=500,
                update_conflicts=True,
                unique_fields=["day", "user_id", "key_id", "model", "provider"],
                update_fields=["requests", "errors", "cost_usd", *_SUMS],
            )
    return len(rows)


def _days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _unfinished_days(now: datetime) -> set[date]:
    """Days rolled up while they were young that have since settled: rolled up once more, whole."""
    settled = now - SETTLE
    marks = UsageRollupDay.objects.filter(day__gte=settled.date() - timedelta(days=7), day__lt=settled.date())
    return {m.day for m in marks if m.rolled_until < day_bounds(m.day)[1]}


def _touched_days(after_id: int, upto_id: int) -> set[date]:
    qs = UsageRecord.objects.filter(id__gt=after_id, id__lte=upto_id).order_by()
    return set(qs.annotate(d=TruncDate("created_at")).values_list("d", flat=True).distinct())


def rollup_usage(now: datetime | None = None, *, retention: int | None = None) -> list[date]:
    """Recompute the daily rollups of every day that got raw rows since the last run.

    The watermark (in the cache, which is Redis in production) holds the highest row id
    of the last two runs; rows after the older one are looked at again, which catches
    rows that committed out of id order. Without a watermark (first run, cache lost)
    every day that has raw rows is recomputed. Days before the retention cutoff are only
    recomputed when they have no rollup yet: their raw rows may be partly purged.
    Returns the days recomputed.
    """
    now = now or timezone.now()
    top = UsageRecord.objects.aggregate(m=Max("id"))["m"] or 0
    state = cache.get(WATERMARK_KEY)
    if isinstance(state, (list, tuple)) and len(state) == 2 and 0 <= state[0] <= state[1] <= top:
        days = _touched_days(int(state[0]), top)
        next_state = [int(state[1]), top]
    else:
        span = UsageRecord.objects.filter(id__lte=top).aggregate(first=Min("created_at"), last=Max("created_at"))
        days = set()
        if span["first"] is not None:
            days = set(_days_between(span["first"].astimezone(UTC).date(), span["last"].astimezone(UTC).date()))
        settled = UsageRecord.objects.filter(id__lte=top, created_at__lt=now - SETTLE).aggregate(m=Max("id"))["m"]
        next_state = [min(settled or 0, top), top]
    days |= _unfinished_days(now)
    cutoff = retention_cutoff(now, retention)
    if cutoff is not None:
        old = {d for d in days if d < cutoff.date()}
        if old:
            rolled = set(UsageDaily.objects.filter(day__in=old).values_list("day", flat=True).distinct())
            days -= rolled
    done = sorted(days)
    for d in done:
        rollup_day(d, now)
    cache.set(WATERMARK_KEY, next_state, timeout=None)
    return done


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
