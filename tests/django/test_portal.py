"""The users' portal at /: keys, usage of the last 30 days, budgets."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey, User, hash_key
from proxy.models import UsageRecord
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(client: Client) -> User:
    user = factories.user("alice")
    client.force_login(user)
    return user


def test_it_sends_anonymous_visitors_to_the_login_page(client: Client) -> None:
    resp = client.get("/")
    assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/")
    assert b'name="password"' in client.get("/accounts/login/").content


def test_it_logs_a_non_staff_user_in(client: Client) -> None:
    factories.user("alice")
    resp = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice"})
    assert resp.status_code == 302 and resp["Location"] == "/"
    assert b"Your keys and usage" in client.get("/").content


def test_it_shows_the_users_keys_usage_and_budget(client: Client, alice: User) -> None:
    key, _ = factories.api_key(alice, name="laptop", budget_usd=Decimal("5"), budget_period="monthly")
    other, _ = factories.api_key(factories.user("bob"), name="bobs-key")
    now = timezone.now()
    for i, (k, cost) in enumerate(((key, "1.25"), (key, "0.5"), (other, "9"))):
        UsageRecord.objects.create(request_id=f"r{i}", created_at=now, user=k.user, key=k, key_prefix=k.prefix,
                                   ingress="openai_chat", model="gpt-test", status_code=200, prompt_tokens=1000,
                                   completion_tokens=10, cost_usd=Decimal(cost))  # fmt: skip
    UsageRecord.objects.create(request_id="old", created_at=now - timedelta(days=45), user=alice, key=key,
                               ingress="openai_chat", model="ancient-model", status_code=200)  # fmt: skip
    html = client.get("/").content.decode()
    assert "laptop" in html and key.prefix in html
    assert "bobs-key" not in html and other.prefix not in html
    assert "gpt-test" in html and "2000" in html  # two requests of 1000 prompt tokens
    assert "ancient-model" not in html
    assert "1.7500" in html and "3.2500" in html  # spent this month, remaining of 5


def test_it_shows_a_new_key_once(client: Client, alice: User) -> None:
    resp = client.post("/keys/new", {"name": "ci"})
    assert resp.status_code == 200
    assert "no-store" in resp["Cache-Control"] or "no-cache" in resp["Cache-Control"]
    raw = re.search(r"sk-llmp-[A-Za-z0-9_-]+", resp.content.decode())
    assert raw is not None
    key = ApiKey.objects.get(user=alice)
    assert key.name == "ci" and key.key_hash == hash_key(raw.group(0))
    assert raw.group(0).encode() not in client.get("/").content


def test_it_revokes_only_the_users_own_keys(client: Client, alice: User) -> None:
    mine, _ = factories.api_key(alice)
    theirs, _ = factories.api_key(factories.user("bob"))
    assert client.post(f"/keys/{theirs.pk}/revoke").status_code == 404
    resp = client.post(f"/keys/{mine.pk}/revoke")
    assert resp.status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.revoked and not theirs.revoked
    assert "revoked" in client.get("/").content.decode()


def test_it_filters_by_model_and_key_and_charts_the_days(client: Client, alice: User) -> None:
    a, _ = factories.api_key(alice, name="a")
    b, _ = factories.api_key(alice, name="b")
    now = timezone.now()
    for i, (k, model, days_ago) in enumerate(((a, "m1", 0), (a, "m2", 0), (b, "m1", 2), (b, "m1", 40))):
        UsageRecord.objects.create(request_id=f"f{i}", created_at=now - timedelta(days=days_ago), user=alice, key=k,
                                   key_prefix=k.prefix, ingress="openai_chat", model=model, status_code=200,
                                   prompt_tokens=10, completion_tokens=1, cost_usd=Decimal("0.01"))  # fmt: skip
    html = client.get("/").content.decode()
    assert re.search(r'data-metric="requests">3<', html)  # the 30 days by default
    chart = json.loads(re.search(r'id="usage-chart-data" type="application/json">(.*?)</script>', html).group(1))
    assert len(chart["buckets"]) == 30 and sum(chart["totals"]["requests"]) == 3
    assert {s["name"]: sum(s["requests"]) for s in chart["split"]["model"]} == {"m1": 2, "m2": 1}
    assert re.search(r'data-metric="requests">2<', client.get("/", {"model": "m1"}).content.decode())
    assert re.search(r'data-metric="requests">1<', client.get("/", {"key": b.pk}).content.decode())
    since = (now - timedelta(days=45)).date().isoformat()
    wide = client.get("/", {"since": since}).content.decode()
    assert re.search(r'data-metric="requests">4<', wide) and f"since={since}" in wide  # the CSV link too
    bad = client.get("/", {"since": "yesterday", "key": "x"}).content.decode()
    assert "must be a date" in bad and "must be a key id" in bad


def test_staff_see_another_users_portal_and_members_do_not(client: Client, alice: User) -> None:
    bob = factories.user("bob")
    factories.api_key(bob, name="bobs-key", budget_usd=Decimal("2"), budget_period="daily")
    assert "bobs-key" not in client.get("/", {"user": "bob"}).content.decode()  # alice is no staff: her own page
    staff = Client()
    staff.force_login(factories.user("sam", staff=True))
    page = staff.get("/", {"user": "bob"}).content.decode()
    assert "Usage and keys of bob" in page and "bobs-key" in page and "Revoke" not in page
    assert re.search(r'UTC">in \d+\xa0(hour|minute)', page)  # bob's daily budget resets at midnight
    assert "user=" + str(bob.pk) in page  # the CSV link exports bob's rows
    assert staff.get("/", {"user": "nobody"}).status_code == 404
