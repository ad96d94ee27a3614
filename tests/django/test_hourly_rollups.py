"""The hourly rollups: the 24 h dashboard read from them (and the raw rows after the mark) equals the raw rows.

The clock is frozen (``timezone.now`` patched) at 12:34:56 so the current hour has rows
before the rollup's mark (12:24:56, ten minutes back) and after it, and the window's
first hour lies in yesterday.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.cache import cache
from django.db.models import Count, Q, Sum
from django.utils import timezone

from proxy.jobs import rollups
from proxy.models import (
    UsageCredentialHourly,
    UsageHourly,
    UsageLatencyHourly,
    UsageRecord,
    UsageRollupDay,
    UsageRollupHour,
)
from proxy.reports import buckets, dashboard, grains

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 34, 56, tzinfo=UTC)
MARK = NOW - rollups.SETTLE


@pytest.fixture(autouse=True)
def frozen(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    cache.delete(rollups.WATERMARK_KEY)
    return NOW


_N = [0]


def rec(at: datetime, **kw: Any) -> UsageRecord:
    _N[0] += 1
    i = _N[0]
    row: dict[str, Any] = {"request_id": f"h-{i}", "created_at": at, "ingress": "openai_chat",
                           "model": ("gpt-a", "gpt-b", "claude")[i % 3], "provider": ("up", "up", "anth")[i % 3],
                           "credential": f"c{i % 2}", "user_id": (None, 1, 2)[i % 3], "key_id": (None, 11, 12, 13)[i % 4],
                           "status_code": 429 if i % 7 == 0 else 200, "error_type": "rate_limit" if i % 7 == 0 else "",
                           "prompt_tokens": 10 + i, "completion_tokens": 3 * i, "cached_tokens": i % 5,
                           "cost_usd": Decimal("0.00012345") * i, "latency_ms": 37 * i % 2000 + 5,
                           "ttfb_ms": 11 * i % 700 if i % 2 else None, **kw}  # fmt: skip
    return UsageRecord.objects.create(**row)


def seed() -> None:
    """Rows in every hour from 30 hours back to now: some before the window, most in it, some after the mark."""
    for h in range(30, 0, -1):
        for minute in (3, 29, 51):
            rec(NOW - timedelta(hours=h, minutes=minute))
    for back in (timedelta(minutes=30), timedelta(minutes=11), timedelta(minutes=9), timedelta(minutes=1)):
        rec(NOW - back)  # the current hour: two before the mark, two after


def exact_percentile(values: list[int], p: float) -> int:
    ranked = sorted(values)
    return ranked[max(1, math.ceil(p * len(ranked) - 1e-9)) - 1]


def assert_dashboard_equals_raw(board: dashboard.Dashboard) -> None:
    raw = UsageRecord.objects.filter(created_at__gte=board.window.since)
    got = raw.aggregate(n=Count("id"), e=Count("id", filter=Q(status_code__gte=400)), p=Sum("prompt_tokens"),
                        c=Sum("completion_tokens"), k=Sum("cached_tokens"), cost=Sum("cost_usd"))  # fmt: skip
    t = board.totals
    assert (t.requests, t.errors, t.prompt_tokens, t.completion_tokens, t.cached_tokens) == (
        got["n"], got["e"], got["p"], got["c"], got["k"])  # fmt: skip
    assert t.cost_usd == pytest.approx(float(got["cost"]), abs=1e-9)
    per_model = dict(raw.order_by().values("model").annotate(n=Count("id")).values_list("model", "n"))
    assert {r.name: r.totals.requests for r in board.models} == per_model
    per_cred = dict(raw.order_by().values("credential").annotate(n=Count("id")).values_list("credential", "n"))
    assert {r.name: r.totals.requests for r in board.credential_rows} == {f"{p}/{c}": n for p, c, n in
        raw.order_by().values("provider", "credential").annotate(n=Count("id")).values_list("provider", "credential", "n")}  # fmt: skip
    assert sum(per_cred.values()) == got["n"]
    failures = Counter(raw.filter(status_code__gte=400).values_list("status_code", "error_type"))
    assert {(e.status_code, e.error_type): e.count for e in board.errors} == dict(failures)
    for metric, latency in (("latency_ms", board.latency), ("ttfb_ms", board.ttfb)):
        values = list(raw.filter(status_code__lt=400, **{f"{metric}__isnull": False}).values_list(metric, flat=True))
        assert latency.count == len(values) > 0
        assert latency.avg_ms == pytest.approx(sum(values) / len(values))
        for p, shown in ((0.5, latency.p50_ms), (0.95, latency.p95_ms)):
            assert shown == buckets.upper(buckets.bucket_of(exact_percentile(values, p)))
    hours = Counter(grains.HOUR.period_of(at) for at in raw.values_list("created_at", flat=True))
    assert {b.start: b.requests for b in board.traffic if b.requests} == dict(hours)
    split = {s["name"]: sum(s["requests"]) for s in board.charts["split"]["model"]}
    assert split == per_model


def test_the_24h_dashboard_from_hourly_rollups_equals_the_raw_rows() -> None:
    seed()
    rollups.rollup_usage(NOW)
    current = NOW.replace(minute=0, second=0, microsecond=0)
    assert UsageRollupHour.objects.get(hour=current).rolled_until == MARK
    assert UsageRollupHour.objects.get(hour=current - timedelta(hours=1)).rolled_until == current
    board = dashboard.build("24h", NOW)
    p = dashboard.parts(board.window)
    assert p.grain is grains.HOUR and len(p.rolled) == 24  # every hour of the window from the rollups
    assert UsageRecord.objects.filter(p.raw).filter(created_at__gte=board.window.since).count() == 2  # after the mark
    assert_dashboard_equals_raw(board)


def test_it_reads_the_rollups_before_the_mark_and_catches_up_on_the_next_run() -> None:
    seed()
    rollups.rollup_usage(NOW)
    before = dashboard.build("24h", NOW).totals.requests
    late = rec(NOW - timedelta(hours=3), model="late-model")  # committed late, before the mark
    rec(NOW - timedelta(minutes=2))  # after the mark: shown at once
    assert dashboard.build("24h", NOW).totals.requests == before + 1  # the late row waits for the job
    rollups.rollup_usage(NOW)
    board = dashboard.build("24h", NOW)
    assert board.totals.requests == before + 2
    assert "late-model" in {r.name for r in board.models}
    assert UsageHourly.objects.filter(hour=grains.HOUR.period_of(late.created_at), model="late-model").exists()
    assert_dashboard_equals_raw(board)


def test_an_hour_rolled_up_young_is_rolled_up_whole_once_it_settles() -> None:
    seed()
    rollups.rollup_usage(NOW)
    current = NOW.replace(minute=0, second=0, microsecond=0)
    later = current + timedelta(hours=1, minutes=15)
    rollups.rollup_usage(later)  # no new rows: the young hour is redone because its mark fell short
    assert UsageRollupHour.objects.get(hour=current).rolled_until == current + timedelta(hours=1)
    got = UsageHourly.objects.filter(hour=current).aggregate(n=Sum("requests"))["n"]
    assert got == UsageRecord.objects.filter(created_at__gte=current).count() == 4
    assert_dashboard_equals_raw(dashboard.build("24h", later))


def test_hourly_rollups_cover_two_days_and_older_ones_are_pruned() -> None:
    rec(NOW - timedelta(days=4))
    rec(NOW - timedelta(hours=40))
    rec(NOW - timedelta(hours=1))
    old_hour = grains.HOUR.period_of(NOW - timedelta(days=4))
    UsageRollupHour.objects.create(hour=old_hour, rolled_until=old_hour + timedelta(hours=1))
    UsageHourly.objects.create(hour=old_hour, model="m", provider="p", requests=1)
    UsageLatencyHourly.objects.create(hour=old_hour, model="m", provider="p", metric="latency", bucket=3, count=1)
    UsageCredentialHourly.objects.create(hour=old_hour, provider="p", credential="c", requests=1)
    rollups.rollup_usage(NOW)
    hours = set(UsageRollupHour.objects.values_list("hour", flat=True))
    assert min(hours) == rollups.hourly_horizon(NOW) and max(hours) == NOW.replace(minute=0, second=0, microsecond=0)
    assert grains.HOUR.period_of(NOW - timedelta(hours=40)) in hours
    assert not UsageHourly.objects.filter(hour__lt=NOW - rollups.HOURLY_KEEP).exists()
    assert not UsageLatencyHourly.objects.filter(hour=old_hour).exists()
    assert not UsageCredentialHourly.objects.filter(hour=old_hour).exists()
    assert UsageRollupDay.objects.filter(day=(NOW - timedelta(days=4)).date()).exists()  # the days stay


def test_without_hourly_rollups_the_24h_dashboard_reads_the_raw_rows() -> None:
    seed()
    rollups.rollup_usage(NOW)
    UsageRollupHour.objects.all().delete()  # e.g. right after the upgrade, before the job ran
    board = dashboard.build("24h", NOW)
    assert dashboard.parts(board.window).rolled == []
    assert_dashboard_equals_raw(board)


def test_hours_without_a_mark_are_rolled_up_even_when_the_watermark_says_nothing_changed() -> None:
    seed()
    rollups.rollup_usage(NOW)
    UsageRollupHour.objects.filter(hour__lt=NOW - timedelta(hours=5)).delete()  # as before the upgrade
    UsageHourly.objects.filter(hour__lt=NOW - timedelta(hours=5)).delete()
    rollups.rollup_usage(NOW)  # the watermark is current: no row is new
    hours = set(UsageRollupHour.objects.values_list("hour", flat=True))
    assert min(hours) == rollups.hourly_horizon(NOW) and len(hours) == 49
    assert_dashboard_equals_raw(dashboard.build("24h", NOW))
    assert len(dashboard.parts(dashboard.window("24h", NOW)).rolled) == 24
