"""A key's ``allow_overrides`` (INTERFACE.md section 12): who may set it, and where it reaches.

Staff grant it (API, admin, ``create_api_key --allow-overrides``); members may give it up
but never grant it to themselves; the serving snapshot carries it; the usage record's
``overrides`` goes journal -> ingester -> row -> API and CSV.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.models import ApiKey
from llmproxy.journal import JournalWriter
from llmproxy.usage import UsageEvent
from proxy.jobs.usage_ingest import Ingester
from proxy.models import UsageRecord
from proxy.serving.snapshot import build_runtime
from tests import factories

from .helpers import send

pytestmark = pytest.mark.django_db(transaction=True)


def test_staff_grant_allow_overrides_and_the_snapshot_carries_it(admin_client: Client) -> None:
    resp = send(admin_client, "post", "/keys", {"name": "ops", "allow_overrides": True})
    assert resp.status_code == 201 and resp.json()["allow_overrides"] is True
    key = ApiKey.objects.get(pk=resp.json()["id"])
    plain, _ = factories.api_key(factories.user("carol"))
    keys = {k.id: k for k in build_runtime().keys.values()}
    assert keys[key.pk].allow_overrides and keys[key.pk].may_override
    assert not keys[plain.pk].allow_overrides and not keys[plain.pk].may_override
    resp = send(admin_client, "patch", f"/keys/{plain.pk}", {"allow_overrides": True})
    assert resp.status_code == 200 and resp.json()["allow_overrides"] is True
    assert send(admin_client, "get", f"/keys/{plain.pk}").json()["allow_overrides"] is True


def test_members_may_not_grant_it_but_may_give_it_up(client: Client) -> None:
    alice = factories.user("alice")
    client.force_login(alice)
    resp = send(client, "post", "/keys", {"name": "mine", "allow_overrides": True})
    assert resp.status_code == 403 and "allow_overrides" in resp.content.decode()
    mine = send(client, "post", "/keys", {"name": "mine"}).json()
    assert mine["allow_overrides"] is False
    resp = send(client, "patch", f"/keys/{mine['id']}", {"allow_overrides": True})
    assert resp.status_code == 403 and "allow_overrides" in resp.content.decode()
    assert ApiKey.objects.get(pk=mine["id"]).allow_overrides is False
    granted, _ = factories.api_key(alice, name="granted", allow_overrides=True)
    resp = send(client, "patch", f"/keys/{granted.pk}", {"allow_overrides": False})
    assert resp.status_code == 200 and resp.json()["allow_overrides"] is False
    assert send(client, "patch", f"/keys/{granted.pk}", {"allow_overrides": True}).status_code == 403


def test_the_create_api_key_command_grants_it() -> None:
    factories.user("dave")
    out = io.StringIO()
    call_command("create_api_key", "--user", "dave", "--allow-overrides", stdout=out, stderr=io.StringIO())
    assert ApiKey.objects.get(user__username="dave").allow_overrides is True


def test_the_usage_record_shows_the_overrides_in_the_api_and_the_csv(admin_client: Client, tmp_path: Path) -> None:
    directory = tmp_path / "usage-journal"
    writer = JournalWriter(directory)
    writer.append(UsageEvent(request_id="ov-1", created_at=1_700_000_000.0, ingress="openai_chat", model="m",
                             provider="b", status_code=200, overrides={"provider": "b", "retries": 0}))  # fmt: skip
    writer.append(UsageEvent(request_id="ov-2", created_at=1_700_000_001.0, ingress="openai_chat", model="m"))
    writer.close()
    assert Ingester(directory, quota_bytes=2**30).drain() == 2
    assert UsageRecord.objects.get(request_id="ov-1").overrides == {"provider": "b", "retries": 0}
    assert UsageRecord.objects.get(request_id="ov-2").overrides == {}
    items = {r["request_id"]: r for r in send(admin_client, "get", "/usage").json()["items"]}
    assert items["ov-1"]["overrides"] == {"provider": "b", "retries": 0} and items["ov-2"]["overrides"] == {}
    resp = send(admin_client, "get", "/usage/export")
    rows = list(csv.DictReader(io.StringIO(b"".join(resp.streaming_content).decode())))
    by_id = {r["request_id"]: r for r in rows}
    assert by_id["ov-1"]["overrides"] == '{"provider":"b","retries":0}' and by_id["ov-2"]["overrides"] == ""
    page = admin_client.get(f"/admin/proxy/usagerecord/{UsageRecord.objects.get(request_id='ov-1').pk}/change/")
    assert page.status_code == 200 and "retries" in page.content.decode()
