"""Management API: usage records, summaries and the CSV export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey, User
from proxy.jobs.rollups import day_bounds
from proxy.models import UsageDaily, UsageRecord, UsageRollupDay
from tests import factories

from .helpers import send

pytestmark = pytest.mark.django_db

CONTRACT_FIELDS = ["request_id", "created_at", "user", "key_prefix", "ingress", "model", "upstream_model", "provider",
                   "credential", "stream", "status_code", "error_type", "prompt_tokens", "completion_tokens",
                   "cached_tokens", "reasoning_tokens", "cost_usd", "latency_ms", "ttfb_ms", "attempts", "overrides"]  # fmt: skip


def day_end(day: Any) -> Any:
    return day_bounds(day)[1]


def record(key: ApiKey, when: datetime, **kw: Any) -> UsageRecord:
    fields: dict[str, Any] = {"request_id": f"req-{UsageRecord.objects.count()}", "created_at": when, "user": key.user,
                              "key": key, "key_prefix": key.prefix, "ingress": "openai_chat", "model": "gpt-test",
                              "upstream_model": "gpt-up", "provider": "up", "credential": "key-1", "status_code": 200,
                              "prompt_tokens": 100, "completion_tokens": 10, "cost_usd": Decimal("0.01"),
                              "latency_ms": 250}  # fmt: skip
    fields.update(kw)
    return UsageRecord.objects.create(**fields)


@pytest.fixture
def people() -> dict[str, Any]:
    alice, bob = factories.user("alice"), factories.user("bob")
    return {"alice": alice, "bob": bob, "alice_key": factories.api_key(alice)[0], "bob_key": factories.api_key(bob)[0]}


def test_it_lists_filters_and_paginates_usage(admin_client: Client, people: dict[str, Any]) -> None:
    now = timezone.now()
    for i in range(5):
        record(people["alice_key"], now - timedelta(minutes=i), model="gpt-test" if i % 2 else "claude-x")
    record(people["bob_key"], now - timedelta(days=3), provider="other", status_code=502, error_type="upstream_error")

    page = send(admin_client, "get", "/usage?limit=2&offset=1").json()
    assert page["count"] == 6 and len(page["items"]) == 2 and page["offset"] == 1
    first = send(admin_client, "get", "/usage?limit=1").json()["items"][0]
    assert set(CONTRACT_FIELDS) <= set(first)
    assert first["user"] == "alice" and first["cost_usd"] == 0.01

    def count(query: str) -> int:
        return int(send(admin_client, "get", "/usage?" + query).json()["count"])

    assert count("user=bob") == 1
    assert count(f"user={people['alice'].pk}") == 5
    assert count(f"key={people['alice_key'].pk}") == 5
    assert count(f"key={people['bob_key'].prefix}") == 1
    assert count("model=claude-x") == 3
    assert count("provider=other") == 1
    assert count("status_code=502") == 1
    since = (now - timedelta(days=1)).date().isoformat()
    assert count(f"since={since}") == 5
    assert count(f"until={since}") == 1


def test_it_shows_a_non_staff_user_only_their_own_usage(client: Client, people: dict[str, Any]) -> None:
    now = timezone.now()
    record(people["alice_key"], now)
    record(people["bob_key"], now)
    client.force_login(people["alice"])
    assert [r["user"] for r in send(client, "get", "/usage").json()["items"]] == ["alice"]
    assert send(client, "get", "/usage?user=bob").json()["count"] == 0
    assert [r["requests"] for r in send(client, "get", "/usage/summary?group_by=user").json()] == [1]
    lines = b"".join(client.get("/api/v1/usage/export").streaming_content).decode().splitlines()
    assert len(lines) == 2 and "alice" in lines[1]


def test_it_summarises_usage_by_day_and_model(admin_client: Client, people: dict[str, Any]) -> None:
    today = timezone.now().astimezone(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    record(people["alice_key"], today, prompt_tokens=10)
    record(people["alice_key"], today, prompt_tokens=20, status_code=429, error_type="rate_limit_exceeded")
    record(people["bob_key"], today, model="claude-x", prompt_tokens=5)
    rows = send(admin_client, "get", "/usage/summary?group_by=day,model").json()
    assert [(r["day"], r["model"], r["requests"], r["errors"], r["prompt_tokens"]) for r in rows] == [
        (today.date().isoformat(), "claude-x", 1, 0, 5),
        (today.date().isoformat(), "gpt-test", 2, 1, 30),
    ]
    by_user = send(admin_client, "get", "/usage/summary?group_by=user").json()
    assert {r["username"]: r["requests"] for r in by_user} == {"alice": 2, "bob": 1}
    by_key = send(admin_client, "get", "/usage/summary?group_by=key").json()
    assert {r["key_prefix"] for r in by_key} == {people["alice_key"].prefix, people["bob_key"].prefix}


def test_it_reports_cache_reads_and_writes_per_key_and_per_credential(
    admin_client: Client, people: dict[str, Any]
) -> None:
    now = timezone.now()
    record(people["alice_key"], now, credential="key-1", cached_tokens=900, cache_write_tokens=0)
    record(people["alice_key"], now, credential="key-1", cached_tokens=0, cache_write_tokens=1000)
    record(people["bob_key"], now, credential="key-2", cached_tokens=50, cache_write_tokens=7)
    record(people["bob_key"], now, provider="other", credential="key-2", cached_tokens=1, cache_write_tokens=2)
    by_key = send(admin_client, "get", "/usage/summary?group_by=key").json()
    assert {r["key_prefix"]: (r["cached_tokens"], r["cache_write_tokens"]) for r in by_key} == {
        people["alice_key"].prefix: (900, 1000),
        people["bob_key"].prefix: (51, 9),
    }
    by_cred = send(admin_client, "get", "/usage/summary?group_by=credential").json()
    assert [(r["provider"], r["credential"], r["cached_tokens"], r["cache_write_tokens"]) for r in by_cred] == [
        ("other", "key-2", 1, 2),
        ("up", "key-1", 900, 1000),
        ("up", "key-2", 50, 7),
    ]
    items = send(admin_client, "get", "/usage").json()["items"]
    assert sorted((i["cached_tokens"], i["cache_write_tokens"]) for i in items)[-1] == (900, 0)


def test_it_reads_rolled_up_past_days_from_the_rollups(admin_client: Client, people: dict[str, Any]) -> None:
    alice: User = people["alice"]
    key: ApiKey = people["alice_key"]
    today = timezone.now().astimezone(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    rolled_day, raw_day = today - timedelta(days=2), today - timedelta(days=1)
    # The raw rows of a rolled-up day may have been pruned: only the rollup counts then.
    record(key, rolled_day, prompt_tokens=1)
    UsageDaily.objects.create(day=rolled_day.date(), user_id=alice.pk, key_id=key.pk, model="gpt-test", provider="up",
                              requests=40, errors=2, prompt_tokens=4000, cost_usd=Decimal("1.5"))  # fmt: skip
    UsageRollupDay.objects.create(
        day=rolled_day.date(), rolled_until=day_end(rolled_day.date())
    )  # as the rollup job marks it
    record(key, raw_day, prompt_tokens=7)
    record(key, today, prompt_tokens=9)
    rows = send(admin_client, "get", "/usage/summary?group_by=day").json()
    assert [(r["day"], r["requests"], r["prompt_tokens"]) for r in rows] == [
        (rolled_day.date().isoformat(), 40, 4000),
        (raw_day.date().isoformat(), 1, 7),
        (today.date().isoformat(), 1, 9),
    ]
    assert rows[0]["cost_usd"] == 1.5 and rows[0]["errors"] == 2
    # A range starting mid-day cannot use that day's rollup: the raw rows answer.
    since = (rolled_day - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    rows = send(admin_client, "get", "/usage/summary", data={"group_by": "day", "since": since}).json()
    assert rows[0]["requests"] == 1 and rows[0]["prompt_tokens"] == 1


def test_it_rejects_an_unknown_grouping(admin_client: Client) -> None:
    resp = send(admin_client, "get", "/usage/summary?group_by=day,colour")
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"][-1] == "group_by"


def test_it_exports_usage_as_csv_with_the_contract_columns(admin_client: Client, people: dict[str, Any]) -> None:
    when = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    record(people["alice_key"], when, request_id="req-a", stream=True, ttfb_ms=40, cost_usd=None, cached_tokens=3)
    resp = admin_client.get("/api/v1/usage/export")
    assert resp.status_code == 200 and resp["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(resp.streaming_content).decode())))
    assert rows[0] == [*CONTRACT_FIELDS, "error_detail"]  # the upstream's own words: staff only
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["request_id"] == "req-a" and row["user"] == "alice" and row["key_prefix"] == people["alice_key"].prefix
    assert row["created_at"] == "2025-03-04T05:06:07+00:00"
    assert (row["stream"], row["ttfb_ms"], row["cost_usd"], row["cached_tokens"]) == ("true", "40", "", "3")


def test_it_says_which_records_have_estimated_token_counts(admin_client: Client, people: dict[str, Any]) -> None:
    now = timezone.now()
    record(people["alice_key"], now - timedelta(minutes=1), request_id="req-real")
    record(people["alice_key"], now, request_id="req-est", tokens_estimated=True)
    items = send(admin_client, "get", "/usage").json()["items"]
    assert {i["request_id"]: i["tokens_estimated"] for i in items} == {"req-est": True, "req-real": False}
    resp = admin_client.get("/api/v1/usage/export")  # the CSV keeps exactly the contract's columns
    assert "tokens_estimated" not in next(csv.reader(io.StringIO(b"".join(resp.streaming_content).decode())))


@pytest.mark.parametrize("path", ["/usage", "/usage/summary", "/usage/export"])
def test_it_takes_any_utc_offset_python_accepts_in_a_date_filter(admin_client: Client, people: dict[str, Any],
                                                                 path: str) -> None:  # fmt: skip
    # PostgreSQL refuses offsets past +-15:59 (Python takes up to +-23:59): applied here, not there.
    record(people["alice_key"], datetime(2025, 3, 4, 12, 0, tzinfo=UTC), request_id="req-tz")
    resp = admin_client.get(
        f"/api/v1{path}", {"since": "2025-03-04T23:00:00+17:11", "until": "0197-04-01T14:59:29-17:11"}
    )
    assert resp.status_code == 200
    resp = admin_client.get(f"/api/v1{path}", {"since": "2025-03-03T19:00:00-17:11"})
    assert resp.status_code == 200


def test_it_answers_422_for_a_date_filter_that_leaves_the_calendar(admin_client: Client) -> None:
    resp = send(admin_client, "get", "/usage?since=0001-01-01T00:00:00%2B05:00")
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"][-1] == "since"
