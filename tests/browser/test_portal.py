"""The members' portal in a real browser: a key created, shown once, revoked; usage as CSV."""

from __future__ import annotations

import csv
import io
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import ApiKey, hash_key
from proxy.models import UsageRecord
from tests import factories
from tests.browser.conftest import no_horizontal_scroll, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_member_creates_and_revokes_a_key_and_downloads_csv(live: Any, page: Page, shoot: Any) -> None:
    alice = factories.user("alice")
    mine, _ = factories.api_key(alice, name="laptop")
    other, _ = factories.api_key(factories.user("bob"), name="bobs")
    for key, n in ((mine, 3), (other, 2)):
        for _ in range(n):
            UsageRecord.objects.create(request_id=uuid.uuid4().hex, created_at=timezone.now(), user=key.user, key=key,
                                       key_prefix=key.prefix, ingress="openai_chat", model="gpt-test", provider="up",
                                       status_code=200, prompt_tokens=10, completion_tokens=5,
                                       cost_usd=Decimal("0.001"))  # fmt: skip
    sign_in(page, live.url + "/accounts/login/", "alice", "pw-alice")
    expect(page.locator("h1")).to_be_visible()
    expect(page.locator("#usage-chart")).to_have_attribute("data-ready", "1")
    assert page.locator('[data-metric="requests"]').inner_text() == "3"  # alice's rows only
    shoot(page, "portal")
    page.set_viewport_size({"width": 390, "height": 844})
    assert no_horizontal_scroll(page) == 0
    page.set_viewport_size({"width": 1280, "height": 900})

    page.fill("input[name=name]", "from the browser")
    page.locator("form[action$='keys/new'] [type=submit]").click()
    shown = page.locator("#new-key").inner_text().strip()
    created = ApiKey.objects.get(user=alice, name="from the browser")
    assert shown.startswith(created.prefix) and created.key_hash == hash_key(shown)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    page.get_by_role("button", name="Copy to clipboard").click()
    expect(page.locator("#copy-key")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == shown
    shoot(page, "portal-key-created")
    page.goto(live.url + "/")
    row = page.locator("tr", has_text="from the browser")
    row.get_by_role("button", name="Revoke").click()
    page.wait_for_load_state()
    created.refresh_from_db()
    assert created.revoked

    # The link, fetched with the browser's own session cookie (the member's rows only).
    link = page.get_by_role("link", name="Download CSV")
    got = page.request.get(live.url + (link.get_attribute("href") or ""))
    assert got.status == 200 and got.headers["content-disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(got.text())))
    assert len(rows) == 3 and {r["key_prefix"] for r in rows} == {mine.prefix}
