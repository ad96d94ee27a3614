"""Usage lists page by keyset (created_at, id), never by OFFSET or COUNT: the admin list and the API."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from proxy.models import UsageRecord
from proxy.reports import keyset
from tests import factories

pytestmark = pytest.mark.django_db

LIST = "/admin/proxy/usagerecord/"


@pytest.fixture
def rows() -> list[UsageRecord]:
    now = timezone.now()
    out = []
    for i in range(7):  # two rows share a microsecond: the id breaks the tie
        at = now - timedelta(minutes=i if i != 4 else 3)
        out.append(UsageRecord.objects.create(request_id=f"req-{i}", created_at=at, ingress="openai_chat",
                                              model="gpt-a" if i % 2 else "gpt-b", provider="up", status_code=200))  # fmt: skip
    return sorted(out, key=lambda r: (r.created_at, r.pk), reverse=True)


@pytest.fixture
def client() -> Client:
    c = Client()
    c.force_login(factories.user("sam", staff=True))
    return c


def test_a_cursor_round_trips_and_bad_ones_are_refused() -> None:
    at = timezone.now()
    assert keyset.decode(keyset.encode(at, 42)) == (at, 42)
    for bad in ("", "x.1", "1", "1.2.3", "9" * 30 + ".1"):
        with pytest.raises(keyset.BadCursor):
            keyset.decode(bad)


def test_keyset_pages_cover_every_row_once_in_order(rows: list[UsageRecord]) -> None:
    seen, cursor = [], None
    while True:
        page = keyset.page(UsageRecord.objects.all(), cursor, 3)
        seen += [r.pk for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [r.pk for r in rows]


def test_the_admin_list_pages_by_cursor_without_offset_or_count(client: Client, settings: Any,
                                                               rows: list[UsageRecord]) -> None:  # fmt: skip
    from proxy.admin import UsageRecordAdmin

    UsageRecordAdmin.list_per_page = 3
    try:
        with CaptureQueriesContext(connection) as queries:
            first = client.get(LIST).content.decode()
        sql = " ".join(q["sql"] for q in queries.captured_queries if "proxy_usagerecord" in q["sql"])
        assert "OFFSET" not in sql and "COUNT(" not in sql.upper()
        assert [r.request_id in first for r in rows] == [True] * 3 + [False] * 4
        link = re.search(r'<a href="(\?[^"]*before=[^"]+)" id="llp-older">', first)
        assert link, first[-2000:]
        second = client.get(LIST + link.group(1).replace("&amp;", "&")).content.decode()
        assert [r.request_id in second for r in rows] == [False] * 3 + [True] * 3 + [False]
        assert 'id="llp-newest"' in second
        filtered = client.get(LIST, {"model": "gpt-a"}).content.decode()
        shown = [r.model for r in rows if f"{r.request_id}…" in filtered]
        assert shown == ["gpt-a"] * 3, shown
        assert client.get(LIST, {"before": "nonsense"}).status_code == 302  # Django's "bad filter" redirect
    finally:
        UsageRecordAdmin.list_per_page = 100


def test_the_api_pages_by_cursor(rows: list[UsageRecord]) -> None:
    api = Client()
    api.force_login(factories.user("root", staff=True))
    first = api.get("/api/v1/usage", {"limit": 3}).json()
    assert [i["request_id"] for i in first["items"]] == [r.request_id for r in rows[:3]]
    assert first["count"] == 7 and first["next_cursor"]
    second = api.get("/api/v1/usage", {"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [i["request_id"] for i in second["items"]] == [r.request_id for r in rows[3:6]]
    last = api.get("/api/v1/usage", {"limit": 3, "cursor": second["next_cursor"]}).json()
    assert [i["request_id"] for i in last["items"]] == [rows[6].request_id] and last["next_cursor"] is None
    bad = api.get("/api/v1/usage", {"cursor": "nope"})
    assert bad.status_code == 422 and "cursor" in bad.content.decode()


def test_the_csv_export_walks_keyset_pages_and_keeps_every_row(rows: list[UsageRecord], monkeypatch: Any) -> None:
    from proxy.reports import queries

    monkeypatch.setattr(queries, "CSV_PAGE", 2)
    lines = list(queries.csv_lines(queries.records(queries.UsageFilter())))
    assert lines[0].startswith("request_id,")
    assert [line.split(",", 1)[0] for line in lines[1:]] == [r.request_id for r in rows]
