"""The admin dashboard at /admin/ and the credentials' state with its clear buttons."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from proxy.jobs.rollups import day_bounds
from proxy.models import (
    Credential,
    HealthStatus,
    UsageDaily,
    UsageErrorDaily,
    UsageLatencyDaily,
    UsageRecord,
    UsageRollupDay,
)
from proxy.reports import buckets, dashboard
from tests import factories

pytestmark = pytest.mark.django_db

INDEX = "/admin/"


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def staff() -> User:
    return factories.user("sam", staff=True)


@pytest.fixture
def client(staff: User) -> Client:
    c = Client()
    c.force_login(staff)
    return c


def day_end(day: Any) -> Any:
    return day_bounds(day)[1]


def usage(at: datetime, **fields: Any) -> UsageRecord:
    row = {"request_id": f"req-{UsageRecord.objects.count()}", "ingress": "openai_chat", "model": "gpt-a",
           "provider": "up", "credential": "key-1", "status_code": 200, **fields}  # fmt: skip
    return UsageRecord.objects.create(created_at=at, **row)


@pytest.fixture
def seeded() -> datetime:
    """Today: three raw rows. Two days ago: a rollup (and a raw row it supersedes). Ten days ago: out of range."""
    now = timezone.now()
    midnight = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
    today = midnight + (now - midnight) / 2  # today, and in the past, whatever the hour
    usage(today, prompt_tokens=100, completion_tokens=50, cost_usd=Decimal("0.01"), latency_ms=100)
    usage(today, prompt_tokens=200, completion_tokens=100, cost_usd=Decimal("0.02"), latency_ms=300)
    usage(today, model="gpt-b", provider="other", status_code=502, error_type="upstream_error", latency_ms=900)
    two_days_ago = midnight - timedelta(days=2) + timedelta(hours=3)
    usage(two_days_ago, prompt_tokens=7, completion_tokens=7, cost_usd=Decimal("9"), latency_ms=200)
    UsageDaily.objects.create(day=two_days_ago.date(), model="gpt-a", provider="up", requests=10, errors=1,
                              prompt_tokens=1000, completion_tokens=500, cost_usd=Decimal("1.5"))  # fmt: skip
    UsageRollupDay.objects.create(
        day=two_days_ago.date(), rolled_until=day_end(two_days_ago.date())
    )  # as the rollup job marks it
    UsageLatencyDaily.objects.create(day=two_days_ago.date(), model="gpt-a", provider="up", metric="latency",
                                     bucket=buckets.bucket_of(200), count=1, sum_ms=200)  # fmt: skip
    UsageErrorDaily.objects.create(day=two_days_ago.date(), model="gpt-a", provider="up", status_code=429,
                                   error_type="rate_limit", count=1)  # fmt: skip
    usage(midnight - timedelta(days=10), prompt_tokens=5000, latency_ms=5000)
    return now


def ms(value: int) -> str:
    """A latency as the dashboard shows a percentile: the top of its histogram bucket (at most 10 % high)."""
    top = buckets.upper(buckets.bucket_of(value))
    assert value <= top <= value * 1.1
    return str(top)


def metric(html: str, name: str) -> str:
    found = re.search(rf'data-metric="{name}">([^<]*)<', html)
    assert found, name
    return found.group(1)


def chart_json(html: str) -> Any:
    found = re.search(r'<script id="llp-chart-data" type="application/json">(.*?)</script>', html, re.S)
    assert found, "no chart data on the page"
    return json.loads(found.group(1))


def test_it_shows_the_last_24_hours_from_the_raw_rows(client: Client, seeded: datetime) -> None:
    resp = client.get(INDEX)
    assert resp.status_code == 200
    html = resp.content.decode()
    assert (metric(html, "requests"), metric(html, "errors"), metric(html, "error_rate")) == ("3", "1", "33.3%")
    assert (metric(html, "tokens"), metric(html, "prompt_tokens"), metric(html, "completion_tokens")) == (
        "450", "300", "150")  # fmt: skip
    assert metric(html, "cost_usd") == "$0.0300"
    # Latency of the successful requests only: 100 and 300 ms; a percentile is its histogram bucket's top.
    assert (metric(html, "p50_ms"), metric(html, "avg_ms"), metric(html, "p95_ms")) == (ms(100), "200", ms(300))
    charts = chart_json(html)
    bars = charts["totals"]["requests"]
    assert len(bars) == 24 and sum(bars) == 3 and max(bars) == 3 and charts["hourly"] is True
    assert sum(charts["totals"]["errors"]) == 1
    assert {s["name"]: sum(s["requests"]) for s in charts["split"]["model"]} == {"gpt-a": 2, "gpt-b": 1}
    assert re.search(r"<td>502</td><td>upstream_error</td><td class=\"num\">1</td>", html)
    assert 'id="content-main"' in html and reverse("admin:proxy_usagerecord_changelist") in html  # the app list stays


def test_it_shows_prompt_cache_reads_and_writes_per_credential(client: Client) -> None:
    now = timezone.now()
    usage(now, credential="key-1", prompt_tokens=1000, cached_tokens=0, cache_write_tokens=900)
    usage(now, credential="key-1", prompt_tokens=1000, cached_tokens=900, cache_write_tokens=0)
    usage(now, credential="key-2", prompt_tokens=1000, cached_tokens=0, cache_write_tokens=900)
    html = client.get(INDEX).content.decode()
    assert (metric(html, "cached_tokens"), metric(html, "cache_write_tokens")) == ("900", "1,800")
    table = html[html.index('id="llp-by-credential"') :]
    rows = dict(re.findall(r'<tr data-name="(up/key-\d)">(.*?)</tr>', table, re.S)[:2])
    assert set(rows) == {"up/key-1", "up/key-2"}
    cells = {name: re.findall(r'<td class="num">([^<]*)</td>', row) for name, row in rows.items()}
    assert cells["up/key-1"][:6] == ["2", "0", "2,000", "0", "900", "900"]
    assert cells["up/key-2"][4:6] == ["0", "900"]


def test_it_merges_rollups_of_past_days_with_todays_rows(client: Client, seeded: datetime) -> None:
    html = client.get(INDEX, {"window": "7d"}).content.decode()
    assert (metric(html, "requests"), metric(html, "errors")) == ("13", "2")
    assert (metric(html, "prompt_tokens"), metric(html, "completion_tokens")) == ("1,300", "650")
    assert metric(html, "cost_usd") == "$1.5300"  # the rollup, not the raw row of that day ($9)
    # Latency: today's raw rows (100, 300 ms) and the latency rollup of two days ago (200 ms).
    assert (metric(html, "p50_ms"), metric(html, "avg_ms"), metric(html, "p95_ms")) == (ms(200), "200", ms(300))
    assert re.search(r"<td>429</td><td>rate_limit</td><td class=\"num\">1</td>", html)  # the error rollup
    board = dashboard.build("7d", seeded)
    assert [(r.name, r.totals.requests, r.totals.errors, r.totals.prompt_tokens) for r in board.models] == [
        ("gpt-a", 12, 1, 1300), ("gpt-b", 1, 1, 0)]  # fmt: skip
    assert [(r.name, r.totals.requests, round(r.totals.cost_usd, 6)) for r in board.providers] == [
        ("up", 12, 1.53), ("other", 1, 0.0)]  # fmt: skip
    assert [b.requests for b in board.traffic] == [0, 0, 0, 0, 10, 0, 3]
    charts = chart_json(html)
    assert charts["totals"]["requests"] == [0, 0, 0, 0, 10, 0, 3] and charts["hourly"] is False
    assert {s["name"]: sum(s["requests"]) for s in charts["split"]["provider"]} == {"up": 12, "other": 1}
    assert '<tr data-name="gpt-a"><td>gpt-a' in html


def test_it_reaches_back_30_days(seeded: datetime) -> None:
    board = dashboard.build("30d", seeded)
    assert (board.totals.requests, board.totals.prompt_tokens) == (14, 6300)  # now with the 10-day-old row
    assert len(board.traffic) == 30 and [b.requests for b in board.traffic if b.requests] == [1, 10, 3]
    assert (board.latency.count, board.latency.p50_ms, board.latency.p95_ms) == (4, int(ms(200)), int(ms(5000)))


def test_it_falls_back_to_the_default_window(client: Client, seeded: datetime) -> None:
    assert dashboard.build("forever", seeded).window.name == "24h"
    assert 'class="selected" aria-current="page">Last 24 hours' in client.get(INDEX, {"window": "x"}).content.decode()


def test_it_redirects_non_staff_to_the_login(seeded: datetime) -> None:
    anonymous = Client().get(INDEX)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    c = Client()
    c.force_login(factories.user("alice"))
    resp = c.get(INDEX)
    assert resp.status_code == 302 and resp["Location"].startswith("/admin/login/")
    assert b"data-metric" not in c.get(INDEX, follow=True).content


def test_it_shows_each_credentials_probe(client: Client) -> None:
    p = factories.provider("up", "http://127.0.0.1:9/v1", credentials=2)
    k1 = p.credentials.get(name="key-1")
    HealthStatus.objects.create(credential=k1, state="unhealthy", latency_ms=42, error="HTTP 401 bad key",
                                checked_at=timezone.now())  # fmt: skip
    html = client.get(INDEX).content.decode()
    row = re.search(rf'<tr data-credential="{k1.pk}">(.*?)</tr>', html, re.S)
    assert row and "llp-unhealthy" in row.group(1) and "42 ms" in row.group(1) and "HTTP 401 bad key" in row.group(1)
    listing = client.get(reverse("admin:proxy_credential_changelist")).content.decode()
    assert 'class="llp-state llp-unhealthy"' in listing and "unhealthy, 42 ms" in listing
    assert 'class="llp-state llp-ready"' in listing  # key-2: never probed, no cooldown


def cool(live: Any, key: str, reason: str) -> None:
    store = live.engine.gateway.router.store
    live.call(store.cool(key, base=60.0, fixed=None, cap=600.0, reason=reason, now=time.time()))


def cooldown_keys(live: Any) -> list[str]:
    return sorted(live.engine.gateway.router.store.list_cooldowns())


@pytest.mark.django_db(transaction=True)
def test_it_shows_the_stores_cooldowns_and_clears_them(live: Any, client: Client) -> None:
    p = factories.provider("up", "http://127.0.0.1:9/v1", credentials=2)
    k1, k2 = Credential.objects.filter(provider=p).order_by("name")
    cool(live, "up/key-1/gpt-up", "rate_limited")
    cool(live, "up/key-2", "auth")
    listing_url = reverse("admin:proxy_credential_changelist")
    listing = client.get(listing_url).content.decode()
    assert re.search(r"gpt-up: rate_limited, failures 1, (59|60) s left", listing)
    assert re.search(r"all models: auth, failures 1, (59|60) s left", listing)
    assert listing.count('class="llp-state llp-cooling"') == 2
    page = client.get(reverse("admin:proxy_provider_change", args=[p.pk])).content.decode()
    assert f'name="credential" value="{k1.pk}">Clear</button>' in page and 'name="provider"' in page
    assert "llp-cooling" in client.get(INDEX).content.decode()

    clear = reverse("admin:proxy_credential_clear_cooldowns")
    resp = client.post(clear, {"credential": str(k1.pk), "next": listing_url})
    assert resp.status_code == 302 and resp["Location"] == listing_url
    assert cooldown_keys(live) == ["up/key-2"]
    assert "Ended 1 cooldown." in client.get(listing_url).content.decode()
    client.post(clear, {"provider": str(p.pk)})
    assert cooldown_keys(live) == []

    cool(live, "up/key-1", "auth")
    client.post(listing_url, {"action": "clear_selected_cooldowns", "_selected_action": [k1.pk, k2.pk]})
    assert cooldown_keys(live) == []
    cool(live, "up/key-2/gpt-up", "error")
    cool(live, "other/key-9", "error")  # not a credential in the database: "all" still ends it
    assert client.post(clear, {"all": "1", "next": "https://evil.example/"})["Location"] == listing_url
    assert cooldown_keys(live) == []


def test_it_refuses_to_clear_on_a_get_or_for_non_staff(client: Client) -> None:
    clear = reverse("admin:proxy_credential_clear_cooldowns")
    assert client.get(clear).status_code == 405
    c = Client()
    c.force_login(factories.user("alice"))
    resp = c.post(clear, {"all": "1"})
    assert resp.status_code == 302 and resp["Location"].startswith("/admin/login/")
