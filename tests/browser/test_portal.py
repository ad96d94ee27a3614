"""The members' portal in a real browser: a key created, shown once, revoked; usage as a chart,
a filtered table and CSV; staff looking at someone else's."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import ApiKey, hash_key
from proxy.models import UsageRecord
from tests import factories
from tests.browser.conftest import WIDTHS, no_horizontal_scroll, resize, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def usage(key: ApiKey, n: int, model: str = "gpt-test", days_ago: int = 0) -> None:
    for _ in range(n):
        UsageRecord.objects.create(request_id=uuid.uuid4().hex, created_at=timezone.now() - timedelta(days=days_ago),
                                   user=key.user, key=key, key_prefix=key.prefix, ingress="openai_chat", model=model,
                                   provider="up", status_code=200, prompt_tokens=10, completion_tokens=5,
                                   cost_usd=Decimal("0.001"))  # fmt: skip


def test_a_member_creates_and_revokes_a_key_and_downloads_csv(live: Any, page: Page, shoot: Any) -> None:
    alice = factories.user("alice")
    alice.budget_usd, alice.budget_period = Decimal("5"), "daily"
    alice.save()
    mine, _ = factories.api_key(alice, name="laptop")
    other, _ = factories.api_key(factories.user("bob"), name="bobs")
    usage(mine, 3)
    usage(other, 2)
    page.goto(live.url + "/")  # not signed in: the portal sends a member to its sign-in page
    expect(page.locator("#id_username")).to_be_visible()
    shoot(page, "portal-sign-in")
    sign_in(page, live.url + "/accounts/login/", "alice", "pw-alice")
    expect(page.locator("h1")).to_be_visible()
    expect(page.locator("#usage-chart")).to_have_attribute("data-ready", "1")
    assert page.locator('[data-metric="requests"]').inner_text() == "3"  # alice's rows only
    assert page.locator("#f-user").count() == 0  # a member cannot pick another user
    mine_row = page.locator("#limits tbody tr").first  # the budget, what is left and the time to its reset
    expect(mine_row).to_contain_text("$5.00")
    expect(mine_row).to_contain_text(re.compile(r"in \d+\s(hours?|minutes?).*\(daily\)"))
    shoot(page, "portal")
    resize(page, *WIDTHS["phone"])
    assert no_horizontal_scroll(page) == 0
    revoke = page.locator("#keys tr", has_text="laptop").get_by_role("button", name="Revoke").bounding_box()
    assert revoke is not None and revoke["x"] + revoke["width"] <= WIDTHS["phone"][0]  # on screen, no sideways scroll
    resize(page, *WIDTHS["desktop"])

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
    row = page.locator("#keys tr", has_text="from the browser")
    row.get_by_role("button", name="Revoke").click()
    expect(page.locator(".messages")).to_contain_text("revoked")
    expect(page.locator("#keys tr", has_text="from the browser")).to_contain_text("revoked")
    created.refresh_from_db()
    assert created.revoked

    # The link, fetched with the browser's own session cookie (the member's rows only).
    link = page.get_by_role("link", name="Download CSV")
    got = page.request.get(live.url + (link.get_attribute("href") or ""))
    assert got.status == 200 and got.headers["content-disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(got.text())))
    assert len(rows) == 3 and {r["key_prefix"] for r in rows} == {mine.prefix}


def test_a_member_filters_the_table_and_the_csv_by_key_model_and_date(live: Any, page: Page, shoot: Any) -> None:
    dana = factories.user("dana")
    laptop, _ = factories.api_key(dana, name="laptop")
    ci, _ = factories.api_key(dana, name="ci")
    usage(laptop, 2)
    usage(ci, 3, model="claude-test")
    usage(ci, 4, model="claude-test", days_ago=10)
    sign_in(page, live.url + "/accounts/login/", "dana", "pw-dana")
    expect(page.locator('[data-metric="requests"]')).to_have_text("9")  # the default window: 30 days
    page.select_option("#f-key", label="ci")
    page.get_by_role("button", name="Show").click()
    expect(page.locator('[data-metric="requests"]')).to_have_text("7")
    page.select_option("#f-model", "claude-test")
    page.fill("#f-since", (timezone.now() - timedelta(days=2)).date().isoformat())
    page.get_by_role("button", name="Show").click()
    expect(page.locator('[data-metric="requests"]')).to_have_text("3")
    expect(page.locator("#usage tbody tr")).to_have_count(1)
    expect(page.locator("#usage tbody tr")).to_contain_text("claude-test")
    expect(page.locator("#usage-chart")).to_have_attribute("data-ready", "1")
    shoot(page, "portal-filtered")
    got = page.request.get(live.url + (page.get_by_role("link", name="Download CSV").get_attribute("href") or ""))
    rows = list(csv.DictReader(io.StringIO(got.text())))
    assert len(rows) == 3 and {(r["key_prefix"], r["model"]) for r in rows} == {(ci.prefix, "claude-test")}


def test_staff_see_any_users_portal_from_the_admin(live: Any, page: Page, shoot: Any) -> None:
    erin = factories.user("erin")
    key, _ = factories.api_key(erin, name="erins")
    usage(key, 5)
    factories.user("root", staff=True)
    sign_in(page, live.url + f"/admin/login/?next=/admin/accounts/user/{erin.pk}/change/", "root", "pw-root")
    page.locator("#llp-user-portal").click()
    expect(page.locator("h1")).to_have_text("Usage and keys of erin")
    expect(page.locator('[data-metric="requests"]')).to_have_text("5")
    expect(page.locator("#usage-chart")).to_have_attribute("data-ready", "1")
    expect(page.locator("#limits tbody tr").first).to_contain_text("erin (all keys)")  # not "you"
    expect(page.locator("#limits")).to_contain_text("erins")
    shoot(page, "portal-staff-view")
    page.fill("#f-user", "root")  # the same box takes them back to their own
    page.get_by_role("button", name="Show").click()
    expect(page.locator("h1")).to_have_text("Your usage and keys")
    expect(page.locator('[data-metric="requests"]')).to_have_text("0")
