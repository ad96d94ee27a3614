"""The dashboard from the rollups alone: totals, latency, failures and credentials survive the raw rows' purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from proxy.jobs import rollups
from proxy.models import UsageLatencyDaily, UsageRecord, UsageRollupDay
from proxy.reports import buckets, dashboard, queries

pytestmark = pytest.mark.django_db


def rec(at: datetime, i: int, **kw: object) -> UsageRecord:
    row = {"request_id": f"r-{i}", "created_at": at, "ingress": "openai_chat", "model": "gpt-a", "provider": "up",
           "credential": "k1", "status_code": 200, "prompt_tokens": 10, "completion_tokens": 5,
           "cost_usd": Decimal("0.01"), "latency_ms": 100 * (i + 1), "ttfb_ms": 50, **kw}  # fmt: skip
    return UsageRecord.objects.create(**row)


def test_a_purged_day_still_shows_from_its_rollups() -> None:
    now = timezone.now()
    midnight = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    old = midnight - timedelta(days=2) + timedelta(hours=5)
    for i in range(4):
        rec(old, i)
    rec(old, 9, status_code=429, error_type="rate_limit", credential="k2")
    rec(now, 20, credential="k2", latency_ms=700)  # today, younger than the rollup's settle time: read raw
    cache_key = rollups.WATERMARK_KEY
    from django.core.cache import cache

    cache.delete(cache_key)
    rollups.rollup_usage(now)
    assert UsageRollupDay.objects.get(day=old.date()).rolled_until == midnight - timedelta(days=1)
    assert UsageLatencyDaily.objects.filter(day=old.date(), metric="latency").count() == 4
    UsageRecord.objects.filter(created_at__lt=midnight).delete()  # purged: only the rollups know that day

    board = dashboard.build("7d", now)
    assert (board.totals.requests, board.totals.errors) == (6, 1)
    assert [(e.status_code, e.error_type, e.count) for e in board.errors] == [(429, "rate_limit", 1)]
    creds = {r.name: (r.totals.requests, r.totals.errors, r.avg_latency_ms) for r in board.credential_rows}
    assert creds == {"up/k1": (4, 0, 250.0), "up/k2": (2, 1, 700.0)}
    # Latency of the successful requests: 100..400 ms from the rollup, 700 ms raw.
    assert board.latency.count == 5 and board.latency.avg_ms == pytest.approx(340.0)
    assert board.latency.p50_ms == buckets.upper(buckets.bucket_of(300))
    assert board.ttfb.count == 5
    assert queries.count(queries.UsageFilter()) == 6  # the API's count: rollups + raw
